#!/usr/bin/env python3
"""Smoke test of ringraft-bench (bench/rbench), a stage of `make test`.

Against a fresh 3-node ringraftd cluster (tests/node/harness.py): every workload for about
1 s closed loop and 1 s open loop, each with non-zero throughput, zero errors and valid JSON;
CSV and the table once each; --nodes and --cluster; --hist-out and --merge. Against small
fake servers written here: -MOVED followed (with --cluster), and bad replies (garbage, a
reply of the wrong type, a closed connection) counted as errors, never a crash; -a (AUTH).

    python3 tests/bench/smoke.py [--bench PATH] [--bin RINGRAFTD]

Prints one line per check and "bench smoke: N passed, N failed"; appends "passed failed" to
$RR_TEST_TALLY when set. Every process it starts is stopped by PID (the harness's cleanup).
"""

import argparse
import csv
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "node"))

WORKLOADS = ["set", "get", "incr", "xadd", "xrange", "xread", "get:90,set:10"]
RUN_TIMEOUT = 60  # seconds for one ringraft-bench run (it is bounded by its own options)

results = []  # (name, ok, detail)


def check(name, ok, detail=""):
    results.append((name, ok, detail))
    print("%s %s%s" % ("ok" if ok else "FAILED", name, (": " + detail) if detail else ""),
          flush=True)
    return ok


def run_bench(bench, args):
    """Runs ringraft-bench; returns (exit status, stdout, stderr)."""
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "abort_on_error=1:detect_leaks=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    p = subprocess.run([bench] + args, capture_output=True, timeout=RUN_TIMEOUT, env=env)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def run_json(bench, name, args):
    """A run with --json: the parsed result, or None after recording a failure."""
    rc, out, err = run_bench(bench, args + ["--json"])
    if rc != 0:
        check(name, False, "exit %d: %s" % (rc, err[-1500:]))
        return None
    try:
        return json.loads(out)
    except ValueError as e:
        check(name, False, "invalid JSON (%s): %s" % (e, out[:500]))
        return None


def expect_clean(name, r, ops=None):
    if r is None:
        return
    problems = []
    if not r["rps"] > 0 or not r["replies"] > 0:
        problems.append("no throughput (rps %s, replies %s)" % (r["rps"], r["replies"]))
    if r["errors_total"] != 0:
        problems.append("errors %s" % r["errors"])
    for op in ops or []:
        if r["latency_us"].get(op, {}).get("count", 0) == 0:
            problems.append("no %s replies" % op)
    lat = r["latency_us"]["all"]
    if not 0 < lat["p50"] <= lat["p99"] <= lat["max"]:
        problems.append("latency percentiles out of order: %s" % lat)
    check(name, not problems, "; ".join(problems) or "%.0f req/s, p50 %.0f us, cpu %.2f"
          % (r["rps"], lat["p50"], r["cpu"]["cores"]))


# ---- fake servers ---------------------------------------------------------------------------

def read_request(f):
    """One multibulk request from a file object; None at EOF."""
    line = f.readline()
    if not line:
        return None
    if not line.startswith(b"*"):
        return [line.strip()]
    args = []
    for _ in range(int(line[1:])):
        n = int(f.readline()[1:])
        args.append(f.read(n + 2)[:-2])
    return args


class FakeServer:
    """Answers each request with handler(args, state) (bytes, or None to close the
    connection); state is a dict per connection."""

    def __init__(self, handler):
        self.handler = handler
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.requests = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        f = conn.makefile("rb")
        state = {}
        try:
            while True:
                args = read_request(f)
                if args is None:
                    return
                self.requests += 1
                reply = self.handler(args, state)
                if reply is None:
                    return
                conn.sendall(reply)
        except (OSError, ValueError):
            pass
        finally:
            conn.close()

    def close(self):
        self.sock.close()


def slots_reply(port):
    return b"*1\r\n*3\r\n:0\r\n:16383\r\n*3\r\n$9\r\n127.0.0.1\r\n:%d\r\n$2\r\nid\r\n" % port


def fake_checks(bench):
    # -MOVED: node A owns every slot by its CLUSTER SLOTS, but answers -MOVED to B for SET.
    b = FakeServer(lambda args, state: b"+OK\r\n")
    a_port = []

    def a_handler(args, state):
        if args[0].upper() == b"CLUSTER":
            return slots_reply(a_port[0])
        return b"-MOVED 1234 127.0.0.1:%d\r\n" % b.port

    a = FakeServer(a_handler)
    a_port.append(a.port)
    # B must be known for an immediate redirect; else the request waits for the refresh.
    r = run_json(bench, "fake -MOVED", ["-p", str(a.port), "--cluster", "-c", "2", "-P", "2",
                                        "-n", "200", "--quiet", "--timeout", "5"])
    if r is not None:
        check("fake -MOVED followed", r["replies"] == 200 and r["errors_total"] == 0
              and r["redirects"] >= 1 and r["slot_map_refreshes"] >= 1,
              "replies %s errors %s redirects %s refreshes %s"
              % (r["replies"], r["errors"], r["redirects"], r["slot_map_refreshes"]))
    a.close()
    b.close()
    bad = {
        "protocol": lambda args, state: b"!garbage\r\n",
        "unexpected": lambda args, state: b":1\r\n",
        "closed": lambda args, state: None,
        "ERR": lambda args, state: b"-ERR nope\r\n",
    }
    for kind, handler in bad.items():
        s = FakeServer(handler)
        r = run_json(bench, "fake %s" % kind, ["-p", str(s.port), "-c", "2", "--duration", "0.5",
                                               "--quiet", "--timeout", "1"])
        if r is not None:
            check("fake %s counted" % kind, r["errors"].get(kind, 0) > 0 and r["replies"] == 0,
                  "errors %s" % r["errors"])
        s.close()
    # -a: AUTH first on every connection (a server with requirepass).
    def auth_handler(args, state):
        if args[0].upper() == b"AUTH":
            state["ok"] = args[1:] == [b"sekret"]
            return b"+OK\r\n" if state["ok"] else b"-WRONGPASS invalid password\r\n"
        return b"+OK\r\n" if state.get("ok") else b"-NOAUTH Authentication required.\r\n"

    s = FakeServer(auth_handler)
    for pw, expect in (("sekret", None), ("wrong", "WRONGPASS"), (None, "NOAUTH")):
        args = ["-p", str(s.port), "-c", "2", "-P", "3", "--quiet", "--timeout", "1"]
        args += ["-a", pw] if pw else []
        r = run_json(bench, "-a %s" % pw, args + (["-n", "300"] if not expect
                                                 else ["--duration", "0.5"]))
        if r is None:
            continue
        if expect is None:
            check("-a right password", r["replies"] == 300 and r["errors_total"] == 0,
                  "replies %s errors %s" % (r["replies"], r["errors"]))
        else:
            check("-a %s: %s counted" % (pw, expect), r["errors"].get(expect, 0) > 0
                  and r["replies"] == 0, "errors %s" % r["errors"])
    s.close()


# ---- against the cluster ----------------------------------------------------------------------

def cluster_checks(bench, c):
    port = str(c.node(1).port)
    common = ["-p", port, "-c", "4", "-P", "4", "--quiet", "--keys", "1000", "--streams", "4",
              "-d", "8", "--timeout", "10"]
    for w in WORKLOADS:
        ops = [x.split(":")[0] for x in w.split(",")]
        expect_clean("closed loop %s" % w,
                     run_json(bench, w, common + ["--mix", w, "--duration", "1"]), ops)
        r = run_json(bench, w, common + ["--mix", w, "--duration", "1", "--rate", "400"])
        expect_clean("open loop %s" % w, r, ops)
        if r is not None:
            check("open loop %s lateness reported" % w, r["lateness_us"]["count"] > 0
                  and r["mode"] == "open", "lateness %s" % r["lateness_us"])
    nodes = ",".join("127.0.0.1:%d" % x.port for x in c.nodes)
    expect_clean("--nodes", run_json(bench, "--nodes", ["--nodes", nodes] + common[2:]
                                     + ["--duration", "1", "--mix", "get:50,set:50"]))
    r = run_json(bench, "--cluster", common + ["--cluster", "--duration", "1"])
    expect_clean("--cluster", r)
    if r is not None:
        check("--cluster knows every node", r["nodes"] == 3, "nodes %s" % r["nodes"])
    rc, out, err = run_bench(bench, common + ["-n", "300", "--csv"])
    try:
        rows = list(csv.DictReader(io.StringIO(out)))
        ok = rc == 0 and rows[-1]["op"] == "all" and int(rows[-1]["replies"]) == 300 \
            and float(rows[-1]["rps"]) > 0 and int(rows[-1]["errors"]) == 0
        check("--csv -n 300", ok, out[-300:] if not ok else "")
    except (ValueError, KeyError, IndexError) as e:
        check("--csv -n 300", False, "%s: %s %s" % (e, out[-300:], err[-300:]))
    loud = [a for a in common if a != "--quiet"]
    rc, out, err = run_bench(bench, loud + ["--duration", "1.2", "--mix", "set:1,get:1"])
    ok = rc == 0 and "req/s" in out and "errors: none" in out and "[" in err and "total" in err
    check("table and progress line", ok, "" if ok else out[-500:] + err[-500:])
    with tempfile.TemporaryDirectory() as d:
        files = [os.path.join(d, "h%d" % i) for i in range(2)]
        counts = []
        for f in files:
            r = run_json(bench, "--hist-out", common + ["-n", "200", "--hist-out", f])
            counts.append(r["replies"] if r else -1)
        r = run_json(bench, "--merge", ["--merge"] + files)
        check("--merge adds up runs", r is not None and r["latency_us"]["count"] == sum(counts)
              == 400, "merged %s, runs %s" % (r and r["latency_us"]["count"], counts))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", default=os.path.join(REPO, "build/debug/bench/ringraft-bench"))
    ap.add_argument("--bin", help="ringraftd (default build/debug/ringraftd)")
    args = ap.parse_args()
    if args.bin:
        os.environ["RINGRAFTD"] = os.path.abspath(args.bin)
    import harness  # after RINGRAFTD is set

    start = time.monotonic()
    try:
        fake_checks(args.bench)
        with harness.Cluster(3, groups=8) as c:
            c.start()
            cluster_checks(args.bench, c)
    except Exception as e:  # a crash of the harness or a hung run is a failure, reported
        check("smoke run", False, repr(e))
    passed = sum(1 for r in results if r[1])
    failed = len(results) - passed
    print("bench smoke: %d passed, %d failed (%.0f s)" % (passed, failed,
                                                           time.monotonic() - start))
    tally = os.environ.get("RR_TEST_TALLY")
    if tally:
        with open(tally, "a") as f:
            f.write("%d %d\n" % (passed, failed))
    return 1 if failed or not results else 0


if __name__ == "__main__":
    sys.exit(main())
