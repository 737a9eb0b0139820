"""An idle node sleeps: once every group of a worker is quiesced, the worker wakes for its
100 ms sweeps only, not at every tick (io/worker.c, next_wake_ms; docs/node.md, "One loop
iteration"). Counted from the kernel's side: the voluntary context switches of each worker
thread (/proc/PID/task/TID/status), not from anything the node reports."""

import os
import time
import unittest

from harness import Cluster

TICK_MS = 10  # ringraftd's default tick-ms: a worker that woke every tick would switch 100/s
# A parked worker wakes about 10 times a second for its sweeps (plus a few for the sweeps'
# own completions); one woken at every tick, 100 times or more.
MAX_SWITCHES_PER_S = 40
SETTLED_SWITCHES_PER_S = 20


def worker_switches(pid):
    """{thread name: voluntary context switches} of the node's worker threads."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        base = "/proc/%d/task/%s/" % (pid, tid)
        try:
            with open(base + "comm") as f:
                name = f.read().strip()
            if not name.startswith("ringraft-w"):
                continue
            with open(base + "status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        out[name] = int(line.split()[1])
        except FileNotFoundError:
            continue  # a thread that exited meanwhile
    return out


def switch_rates(pid, seconds):
    a = worker_switches(pid)
    t0 = time.monotonic()
    time.sleep(seconds)
    b = worker_switches(pid)
    el = time.monotonic() - t0
    return {k: (b[k] - a[k]) / el for k in a if k in b}


class IdleTests(unittest.TestCase):
    def test_idle_workers_wake_for_sweeps_not_ticks(self):
        # Leader balance off: its transfers would wake groups again during the measurement.
        with Cluster(3, workers=2, groups=16, tick_ms=TICK_MS,
                     extra=("--leader-balance", "no")) as c:
            c.start()
            for i in range(32):
                self.assertEqual(c.node(i % 3 + 1).call("SET", "k%d" % i, "v"), "OK")
            node = c.node(1)
            # The groups quiesce after half an election timeout without work. Wait until a
            # whole second is quiet (a worker that wakes at every tick never gets there).
            deadline = time.monotonic() + 20
            rates = switch_rates(node.pid, 1.0)
            self.assertEqual(sorted(rates), ["ringraft-w0", "ringraft-w1"],
                             "worker threads named ringraft-wN")
            while max(rates.values()) > SETTLED_SWITCHES_PER_S and time.monotonic() < deadline:
                rates = switch_rates(node.pid, 1.0)
            rates = switch_rates(node.pid, 3.0)
            print("idle worker wake-ups per second on node 1: %s"
                  % ", ".join("%s %.1f" % kv for kv in sorted(rates.items())))
            for name, rate in rates.items():
                self.assertLessEqual(rate, MAX_SWITCHES_PER_S, "%s wakes too often" % name)
            # Still serving: a write wakes its group on every node and is acknowledged.
            self.assertEqual(c.node(2).call("SET", "after", "idle"), "OK")
            self.assertEqual(c.node(3).call("GET", "after"), b"idle")


if __name__ == "__main__":
    unittest.main()
