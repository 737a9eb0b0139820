#!/usr/bin/env python3
"""Runs the node process tests (tests/node/test_*.py), each under its own timeout.

    python3 tests/node/run.py [--bin PATH] [--timeout SECONDS] [-v] [PATTERN ...]

PATTERN selects tests whose id (e.g. test_peer.PeerTests.test_garbage) contains it. Prints
one line per test and a summary; appends "passed failed" to $RR_TEST_TALLY when set (as
tools/run-tests.sh does). Exit status 0 only if every selected test passed.
RR_KEEP_CLUSTER=1 keeps every cluster directory (logs, data) for inspection.
"""

import argparse
import os
import signal
import sys
import time
import traceback
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


class TestTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise TestTimeout("test exceeded its time limit")


def iter_tests(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from iter_tests(t)
        else:
            yield t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", help="ringraftd to test (default build/debug/ringraftd)")
    ap.add_argument("--timeout", type=int, default=180, help="seconds per test")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("patterns", nargs="*")
    args = ap.parse_args()
    if args.bin:
        os.environ["RINGRAFTD"] = os.path.abspath(args.bin)
    import harness  # after RINGRAFTD is set

    loader = unittest.TestLoader()
    suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)
    tests = [t for t in iter_tests(suite)
             if not args.patterns or any(p in t.id() for p in args.patterns)]
    if any(isinstance(t, unittest.loader._FailedTest) for t in tests):
        for t in tests:
            if isinstance(t, unittest.loader._FailedTest):
                print("cannot load %s" % t.id())
                try:
                    t.debug()
                except Exception:
                    traceback.print_exc()
    print("node tests: %d, binary %s, %ds each" % (len(tests), harness.DEFAULT_BIN,
                                                    args.timeout))
    signal.signal(signal.SIGALRM, _alarm)
    passed = failed = 0
    failures = []
    for t in tests:
        if harness.terminated:
            print("terminated: %d tests not run" % (len(tests) - passed - failed))
            failed += 1
            break
        start = time.monotonic()
        result = unittest.TestResult()
        print("--- %s" % t.id(), flush=True)
        signal.alarm(args.timeout)
        try:
            t.run(result)
        except TestTimeout:
            result.errors.append((t, "timed out after %ds" % args.timeout))
        finally:
            signal.alarm(0)
            harness._kill_all_live()
        wall = time.monotonic() - start
        problems = result.errors + result.failures
        if problems or result.unexpectedSuccesses:
            failed += 1
            failures.append(t.id())
            print("FAILED %s (%.1fs)" % (t.id(), wall))
            for _, text in problems:
                print(text)
        elif result.skipped:
            print("skipped %s: %s" % (t.id(), result.skipped[0][1]))
        else:
            passed += 1
            print("ok %s (%.1fs)" % (t.id(), wall), flush=True)
    print("node tests: %d passed, %d failed%s" % (passed, failed,
                                                   (": " + ", ".join(failures)) if failures else ""))
    tally = os.environ.get("RR_TEST_TALLY")
    if tally:
        with open(tally, "a") as f:
            f.write("%d %d\n" % (passed, failed))
    return 1 if failed or not tests else 0


if __name__ == "__main__":
    sys.exit(main())
