#!/usr/bin/env python3
"""soak_cluster: a local 3-node cluster held at a fraction of its measured peak for a bounded
time, sampled every interval; fails on growth that a service left running for months cannot
afford (docs/benchmarks.md, "Soak").

1. Start a fresh cluster (release build by default) and measure its peak: a closed-loop
   ringraft-bench run of the workload (-c 50 -P 16) for PEAK_SECONDS.
2. Offer SOAK_LOAD (80%) of that peak in an open loop (latency counted from each request's
   intended send time) for SOAK_SECONDS, as consecutive ringraft-bench runs of INTERVAL
   seconds each. After each run, sample every node's RSS (/proc/PID/status VmRSS), open
   files (/proc/PID/fd) and the run's p99, throughput and errors.
3. Verdict, over the samples after the warm-up (the first WARMUP_FRACTION of them, at least
   one):
   - RSS: the largest RSS of each node in the last third may exceed that node's first
     sample after the warm-up by at most 10%;
   - p99: the median p99 of the last third may be at most twice the median of the first
     third (medians: one slow interval on a shared machine is not a trend);
   - open files: the median of the last third at most 16 more than after the warm-up, on
     every node (snapshots in progress hold files for a moment);
   - no error replies, no node exits, and the offered rate is delivered (>= 90%).

The workload writes and reads a bounded key space (SET and GET over --keys keys, INCR on
counters), so that the data set stops growing once every key exists: what still grows
after that is the service's own (log, sessions, buffers), which is what a soak is for.

Environment (make soak-cluster sets them): SOAK_SECONDS (600), SOAK_INTERVAL (30),
SOAK_LOAD (0.8), SOAK_BIN (build/release/ringraftd), SOAK_BENCH
(build/release/bench/ringraft-bench), SOAK_OUT (build/soak-cluster), SOAK_GROUPS (64),
SOAK_WORKERS (1), PEAK_SECONDS (10), SOAK_EXTRA (ringraftd flags; by default the log
bounds scaled down: `--snapshot-worker-log-bytes 64 MiB --snapshot-log-bytes 8 MiB`, so
that the log reaches its steady size within the warm-up: with the defaults, 512 MiB of log
per worker, it grows for minutes, which a 10-minute soak would read as a leak).
Prints one line per interval and a final verdict; exit status 0 only if every check passes.
The cluster and its logs are kept under SOAK_OUT."""

import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

WORKLOAD = ["--mix", "set:45,get:45,incr:10", "--keys", "100000", "-d", "64"]
RSS_GROWTH_MAX = 1.10
P99_GROWTH_MAX = 2.0
FD_GROWTH_MAX = 16
DELIVERED_MIN = 0.90


def env(name, default, kind=str):
    return kind(os.environ.get(name, default))


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for %d" % pid)


def open_files(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def bench_run(bench, ports, seconds, rate=0.0, warmup=0.0):
    """One ringraft-bench run over every node; returns its JSON result."""
    cmd = [bench, "--nodes", ",".join("127.0.0.1:%d" % p for p in ports), "-c", "50",
           "-P", "16", "--duration", str(seconds), "--warmup", str(warmup), "--json",
           "--quiet", "--timeout", "10"] + WORKLOAD
    if rate > 0:
        cmd += ["--rate", "%.0f" % rate]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         timeout=seconds + warmup + 60)
    if out.returncode != 0 and not out.stdout.strip():
        raise SystemExit("ringraft-bench failed: %s" % out.stderr.strip()[-500:])
    return json.loads(out.stdout)


def thirds(xs):
    k = max(1, len(xs) // 3)
    return xs[:k], xs[-k:]


def verdict(samples, warmup_n, rate):
    """The checks of the module comment over samples (dicts); returns (ok, lines)."""
    after = samples[warmup_n:]
    lines, ok = [], True
    if len(after) < 2:
        return False, ["too few samples after the warm-up (%d): raise SOAK_SECONDS" % len(after)]
    first, last = thirds(after)
    nodes = len(after[0]["rss"])
    for i in range(nodes):
        base = after[0]["rss"][i]
        peak = max(s["rss"][i] for s in last)
        growth = peak / base
        good = growth <= RSS_GROWTH_MAX
        ok &= good
        lines.append("node %d RSS: %.1f MiB after warm-up, %.1f MiB max in the last third "
                     "(x%.3f, limit x%.2f) %s" % (i + 1, base / 1024, peak / 1024, growth,
                                                  RSS_GROWTH_MAX, "ok" if good else "FAIL"))
        # Snapshots in progress hold files for a moment (a temporary and the previous one):
        # a leak is open files that stay, so the last third's median is compared.
        fd0 = after[0]["fds"][i]
        fd1 = statistics.median(s["fds"][i] for s in last)
        good = fd1 - fd0 <= FD_GROWTH_MAX
        ok &= good
        lines.append("node %d open files: %d after warm-up, median %.0f in the last third "
                     "(limit +%d) %s" % (i + 1, fd0, fd1, FD_GROWTH_MAX, "ok" if good else "FAIL"))
    p99_first = statistics.median(s["p99_us"] for s in first)
    p99_last = statistics.median(s["p99_us"] for s in last)
    good = p99_last <= P99_GROWTH_MAX * max(p99_first, 1.0)
    ok &= good
    lines.append("p99: median %.0f us in the first third, %.0f us in the last (limit x%.1f) %s"
                 % (p99_first, p99_last, P99_GROWTH_MAX, "ok" if good else "FAIL"))
    errors = sum(s["errors"] for s in samples)
    ok &= errors == 0
    lines.append("errors: %d %s" % (errors, "ok" if errors == 0 else "FAIL"))
    delivered = statistics.median(s["rps"] for s in after) / rate
    good = delivered >= DELIVERED_MIN
    ok &= good
    lines.append("delivered: %.0f%% of the offered %.0f req/s (median; limit %.0f%%) %s"
                 % (100 * delivered, rate, 100 * DELIVERED_MIN, "ok" if good else "FAIL"))
    return ok, lines


def main():
    seconds = env("SOAK_SECONDS", 600, float)
    interval = env("SOAK_INTERVAL", 30, float)
    load = env("SOAK_LOAD", 0.8, float)
    binary = env("SOAK_BIN", "build/release/ringraftd")
    bench = env("SOAK_BENCH", "build/release/bench/ringraft-bench")
    out = os.path.abspath(env("SOAK_OUT", "build/soak-cluster"))
    groups = env("SOAK_GROUPS", 64, int)
    workers = env("SOAK_WORKERS", 1, int)
    peak_seconds = env("PEAK_SECONDS", 10, float)
    extra = os.environ.get("SOAK_EXTRA", "--snapshot-worker-log-bytes 67108864 "
                           "--snapshot-log-bytes 8388608").split()
    for path in (binary, bench):
        if not os.access(path, os.X_OK):
            raise SystemExit("%s is not built" % path)
    os.makedirs(out, exist_ok=True)
    base = benchlib.free_block(17000, 200)
    benchlib.log("soak", "cluster: 3 nodes, %d groups, %d worker(s), ports %d+, data %s"
                 % (groups, workers, base, out))
    cluster = benchlib.RingraftCluster(binary, base, out, out, nodes=3, groups=groups,
                                       workers=workers, extra=extra, tag="soak")
    ports = [cluster.port(i) for i in (1, 2, 3)]
    try:
        peak = bench_run(bench, ports, peak_seconds, warmup=2)
        if peak["errors_total"] > 0 or peak["rps"] <= 0:
            raise SystemExit("peak run failed: %s" % json.dumps(peak["errors"]))
        rate = load * peak["rps"]
        benchlib.log("soak", "peak %.0f req/s (closed loop, -c 50 -P 16); offering %.0f req/s "
                     "(%.0f%%) for %.0f s in %.0f s intervals"
                     % (peak["rps"], rate, 100 * load, seconds, interval))
        samples = []
        rounds = max(1, int(round(seconds / interval)))
        warmup_n = max(1, rounds // 5)
        for k in range(rounds):
            r = bench_run(bench, ports, interval, rate=rate)
            if not cluster.alive():
                raise SystemExit("a node exited during the soak; logs: %s" % cluster.logs)
            s = {"t": (k + 1) * interval, "rps": r["rps"],
                 "p99_us": r["latency_us"]["all"]["p99"], "errors": r["errors_total"],
                 "rss": [rss_kib(p) for p in cluster.pids],
                 "fds": [open_files(p) for p in cluster.pids]}
            samples.append(s)
            print("%6.0f s  %8.0f req/s  p99 %8.0f us  errors %d  RSS MiB %s  fds %s%s"
                  % (s["t"], s["rps"], s["p99_us"], s["errors"],
                     " ".join("%.1f" % (x / 1024) for x in s["rss"]),
                     " ".join(str(x) for x in s["fds"]),
                     "  (warm-up)" if k < warmup_n else ""), flush=True)
        with open(os.path.join(out, "samples.json"), "w") as f:
            json.dump({"peak_rps": peak["rps"], "rate": rate, "interval_s": interval,
                       "warmup_samples": warmup_n, "samples": samples}, f, indent=1)
        ok, lines = verdict(samples, warmup_n, rate)
        for line in lines:
            print(line)
        print("soak-cluster: %s (%d intervals of %.0f s at %.0f req/s; samples in %s)"
              % ("PASS" if ok else "FAIL", rounds, interval, rate,
                 os.path.join(out, "samples.json")))
        return 0 if ok else 1
    finally:
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
