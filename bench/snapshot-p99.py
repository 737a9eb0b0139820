#!/usr/bin/env python3
"""Write latency while a large snapshot is written (make bench-snapshot).

One ringraftd (release build) with one group, loaded with SNAP_BENCH_BYTES of string values
(default 1 GiB, 1 KiB values), every automatic snapshot off. A first RAFT SNAPSHOT compacts
the log of the load (its duration and size are reported). Then, ROUNDS times:

  idle:   a closed-loop client SETs random existing keys (100-byte values, one at a time) for
          IDLE seconds; its p50/p99/p99.9 latencies are the reference;
  during: the same client runs while RAFT SNAPSHOT writes the whole keyspace again; only the
          requests issued between the snapshot's start and the moment it is durable count.

Prints a markdown table and the ratio p99(during) / p99(idle) per round. Environment:
SNAP_BENCH_BYTES, SNAP_BENCH_VALUE, SNAP_BENCH_ROUNDS (2), SNAP_BENCH_IDLE (10 s),
SNAP_BENCH_SLICE (the node's snapshot-slice-bytes, default its default), RINGRAFTD."""

import os
import random
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "node"))

from harness import Cluster, deadline_loop  # noqa: E402

BYTES = int(os.environ.get("SNAP_BENCH_BYTES", str(1 << 30)))
VALUE = int(os.environ.get("SNAP_BENCH_VALUE", "1024"))
ROUNDS = int(os.environ.get("SNAP_BENCH_ROUNDS", "2"))
IDLE = float(os.environ.get("SNAP_BENCH_IDLE", "10"))
SLICE = os.environ.get("SNAP_BENCH_SLICE")
BIN = os.environ.get("RINGRAFTD", os.path.join(HERE, "..", "build", "release", "ringraftd"))


def pct(samples, q):
    if not samples:
        return float("nan")
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


def snapshot_index(node):
    # RAFT STATUS is cheap (RAFT DIGEST hashes the whole state: never poll it here).
    return node.raft_status()[0]["snapshot"]


def load(node, keys):
    value = "x" * VALUE
    t0 = time.monotonic()
    with node.client(timeout=120) as c:
        for k in range(0, keys, 1000):
            r = c.pipeline([("SET", "key:%d" % i, value) for i in range(k, min(keys, k + 1000))],
                           chunk=1000)
            bad = [x for x in r if x != "OK"]
            if bad:
                raise SystemExit("load failed: %s" % bad[:3])
    return time.monotonic() - t0


def snapshot(node, timeout=600):
    """RAFT SNAPSHOT 0 and wait until it is durable; returns (seconds, file bytes)."""
    t0 = time.monotonic()
    want = node.call("RAFT", "SNAPSHOT", 0)
    for _ in deadline_loop(timeout, 0.005):
        if snapshot_index(node) >= want:
            break
    dt = time.monotonic() - t0
    info = node.info("snapshots")
    last = dict(kv.split("=") for kv in info["worker0_last_snapshot"].split(","))
    return dt, int(last["bytes"]), int(last["ms"])


class Client(threading.Thread):
    """Closed loop: one SET at a time on a random existing key; (start, latency) samples."""

    def __init__(self, node, keys):
        super().__init__(daemon=True)
        self.node = node
        self.keys = keys
        self.stop = threading.Event()
        self.samples = []

    def run(self):
        rng = random.Random(1)
        value = "y" * 100
        with self.node.client(timeout=30) as c:
            while not self.stop.is_set():
                k = rng.randrange(self.keys)
                t0 = time.perf_counter()
                r = c.call("SET", "key:%d" % k, value)
                t1 = time.perf_counter()
                if r != "OK":
                    raise SystemExit("SET failed: %r" % r)
                self.samples.append((t0, t1 - t0))


def window(samples, start, end):
    return [lat for t, lat in samples if start <= t and t < end]


def fmt(us):
    return "%.0f" % (us * 1e6)


def main():
    keys = BYTES // VALUE
    extra = ["--snapshot-log-bytes", "0", "--snapshot-worker-log-bytes", "0",
             "--snapshot-wal-segments", "0", "--quiesce", "no", "--wal-segment-bytes",
             str(256 << 20)]
    if SLICE:
        extra += ["--snapshot-slice-bytes", SLICE]
    with Cluster(1, groups=1, bin=BIN, extra=extra) as c:
        c.start()
        node = c.node(1)
        print("loading %d keys of %d bytes (%.2f GiB of values)..." % (keys, VALUE,
                                                                       keys * VALUE / 2**30),
              flush=True)
        dt = load(node, keys)
        print("loaded in %.1f s" % dt, flush=True)
        s_dt, s_bytes, s_ms = snapshot(node)
        print("first snapshot (compacts the load's log): %d keys, %.2f GiB file, %.2f s "
              "(node: %d ms)" % (keys, s_bytes / 2**30, s_dt, s_ms), flush=True)
        rows = []
        for rnd in range(ROUNDS):
            cl = Client(node, keys)
            cl.start()
            time.sleep(1.0)  # warm
            i0 = time.perf_counter()
            time.sleep(IDLE)
            i1 = time.perf_counter()
            d0 = time.perf_counter()
            d_dt, d_bytes, d_ms = snapshot(node)
            d1 = time.perf_counter()
            cl.stop.set()
            cl.join()
            idle = window(cl.samples, i0, i1)
            during = window(cl.samples, d0, d1)
            rows.append((rnd + 1, len(idle), pct(idle, 0.5), pct(idle, 0.99), pct(idle, 0.999),
                         len(during), pct(during, 0.5), pct(during, 0.99), pct(during, 0.999),
                         max(during) if during else float("nan"), d_dt, d_bytes))
            print("round %d: idle p99 %s us, during p99 %s us (snapshot %.2f s, %.2f GiB)"
                  % (rnd + 1, fmt(rows[-1][3]), fmt(rows[-1][7]), d_dt, d_bytes / 2**30),
                  flush=True)
        print()
        print("| round | idle n | idle p50 us | idle p99 us | idle p99.9 us | during n | "
              "during p50 us | during p99 us | during p99.9 us | during max us | snapshot s | "
              "snapshot GiB | p99 ratio |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            print("| %d | %d | %s | %s | %s | %d | %s | %s | %s | %s | %.2f | %.2f | %.2f |"
                  % (r[0], r[1], fmt(r[2]), fmt(r[3]), fmt(r[4]), r[5], fmt(r[6]), fmt(r[7]),
                     fmt(r[8]), fmt(r[9]), r[10], r[11] / 2**30, r[7] / r[3]))


if __name__ == "__main__":
    main()
