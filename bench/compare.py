#!/usr/bin/env python3
"""compare: ringraft side by side with what users run today (`make bench-compare`).

Starts, on this machine and in one run, a single redis-server 7 with the append-only file
and `appendfsync always` (durable: fsync before every reply), the same with `appendfsync
everysec` (labelled: not durable, up to a second of acknowledged writes lost in a crash), and
a local 3-node ringraft cluster (make run's configuration: 64 groups, 1 worker per node).
Runs the same redis-benchmark workloads against each, interleaved (for each workload, every
system in turn, for each round): SET, GET and XADD, with -c 1 and -c 50, -P 1 and -P 16,
-r 1000000, -d 16; ringraft twice, through one node that forwards what it does not lead,
and with --cluster (each client straight to a group's leader). redis-benchmark has no
duration option, so each run's request count is sized from a short probe of the same
system and workload to about COMPARE_SECONDS.

Prints one table (median over the rounds): throughput, p50 and p99 latency, CPU time of the
server processes per operation (utime + stime from /proc, all ringraftd nodes summed), and
what each system promises. Results also go to OUT/compare.csv and OUT/results.md, logs to
OUT/logs. Stops everything it started.

Environment (all optional):
  COMPARE_SECONDS   target seconds per run (default 5)
  COMPARE_ROUNDS    rounds per cell (default 1; medians when more)
  COMPARE_QUICK=1   smoke: SET and XADD at -c 50 -P 16 only, 1 s runs
  COMPARE_SHAPES    only these -c x -P shapes, e.g. "1x16,50x16" (default: all four)
  COMPARE_OUT       output directory (default build/bench-compare)
  COMPARE_BIN       ringraftd (default build/release/ringraftd)
  COMPARE_PORT      first port tried (default 7600)
"""

import csv
import os
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = os.environ.get("COMPARE_QUICK") == "1"
SECONDS = float(os.environ.get("COMPARE_SECONDS", "1" if QUICK else "5"))
ROUNDS = int(os.environ.get("COMPARE_ROUNDS", "1"))
OUT = os.path.abspath(os.environ.get("COMPARE_OUT", os.path.join(REPO, "build", "bench-compare")))
BIN = os.path.abspath(os.environ.get("COMPARE_BIN", os.path.join(REPO, "build", "release",
                                                                 "ringraftd")))
BASE = int(os.environ.get("COMPARE_PORT", "7600"))

WORKLOADS = {
    "SET": ["-t", "set"],
    "GET": ["-t", "get"],
    "XADD": ["XADD", "s:{tag}:__rand_int__", "*", "f", "v"],
}
SHAPES = [(1, 1), (50, 1), (1, 16), (50, 16)]
if QUICK:
    WORKLOADS = {k: WORKLOADS[k] for k in ("SET", "XADD")}
    SHAPES = [(50, 16)]
if os.environ.get("COMPARE_SHAPES"):
    SHAPES = [tuple(int(x) for x in shape.split("x"))
              for shape in os.environ["COMPARE_SHAPES"].split(",")]

PROMISE = {
    "redis always": "1 copy; fsync before each reply",
    "redis everysec": "1 copy; fsync once a second: NOT durable",
    "ringraft (one node)": "3 copies; fsync on a majority before each reply",
    "ringraft (--cluster)": "3 copies; fsync on a majority before each reply",
}
START = time.monotonic()


def say(msg):
    benchlib.log("compare %5.0fs" % (time.monotonic() - START), msg)


def ensure_tools():
    """redis-server and redis-benchmark from Debian, installed when missing."""
    missing = [t for t in ("redis-server", "redis-benchmark")
               if subprocess.run(["sh", "-c", "command -v " + t],
                                 stdout=subprocess.DEVNULL).returncode != 0]
    if not missing:
        return
    pkgs = ["redis-server" if "redis-server" in missing else "redis-tools"]
    say("installing %s" % " ".join(pkgs))
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(sudo + ["apt-get", "install", "-y", "-qq"] + pkgs, check=True, env=env)


def bench(port, workload, clients, pipeline, n, cluster):
    """One redis-benchmark run: (ok, rps, p50 ms, p99 ms, error text)."""
    # redis-benchmark 7.0 --cluster aborts ("All clients disconnected") when -n is not a
    # multiple of -P: seen against a real 3-master Redis Cluster as well as against ringraft.
    # Every system gets the same rounded count.
    n = -(-n // pipeline) * pipeline
    cmd = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", str(clients),
           "-P", str(pipeline), "-r", "1000000", "-d", "16", "-n", str(n), "--csv"]
    if cluster:
        cmd.insert(1, "--cluster")
    cmd += WORKLOADS[workload]
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=60 + 4 * SECONDS)
    except subprocess.TimeoutExpired:
        return False, None, None, None, "redis-benchmark timed out"
    text = p.stdout.decode(errors="replace")
    for line in text.splitlines():
        f = next(csv.reader([line]))
        if len(f) == 8 and f[0] != "test":
            if p.returncode != 0 or "ERR" in text or "Error" in text:
                return False, None, None, None, text[-500:]
            return True, float(f[1]), float(f[4]), float(f[6]), ""
    return False, None, None, None, text[-500:]


def probe_n(port, workload, clients, pipeline, cluster):
    """A request count for about SECONDS, from a short run."""
    small = max(200, clients * pipeline * 20)
    ok, rps, _, _, _ = bench(port, workload, clients, pipeline, small, cluster)
    if not ok or not rps:
        return small
    return int(max(small, min(rps * SECONDS, 5_000_000)))


def main():
    ensure_tools()
    if not os.access(BIN, os.X_OK):
        raise SystemExit("no ringraftd at %s (make)" % BIN)
    os.makedirs(OUT, exist_ok=True)
    logs, data = os.path.join(OUT, "logs"), os.path.join(OUT, "data")
    os.makedirs(logs, exist_ok=True)
    base = benchlib.free_block(BASE, 200)
    say("starting redis-server (always, everysec) and a 3-node ringraft cluster; ports %d+"
        % base)
    redis_always = benchlib.RedisServer(base + 50, data, logs, "always")
    redis_everysec = benchlib.RedisServer(base + 51, data, logs, "everysec")
    ring = benchlib.RingraftCluster(BIN, base, data, logs)
    systems = [
        ("redis always", redis_always.port, False, redis_always),
        ("redis everysec", redis_everysec.port, False, redis_everysec),
        ("ringraft (one node)", ring.port(1), False, ring),
        ("ringraft (--cluster)", ring.port(1), True, ring),
    ]
    results = {}  # (system, workload, c, P) -> list of dicts
    failures = []
    cells = [(w, c, p) for w in WORKLOADS for (c, p) in SHAPES]
    total = len(cells) * len(systems) * ROUNDS
    done = 0
    try:
        for rnd in range(ROUNDS):
            for workload, clients, pipeline in cells:
                for name, port, cluster, target in systems:
                    done += 1
                    say("%d/%d round %d: %s %s -c %d -P %d" % (done, total, rnd + 1, name,
                                                              workload, clients, pipeline))
                    n = probe_n(port, workload, clients, pipeline, cluster)
                    cpu0 = benchlib.cpu_seconds(target.pids)
                    ok, rps, p50, p99, err = bench(port, workload, clients, pipeline, n,
                                                   cluster)
                    cpu = benchlib.cpu_seconds(target.pids) - cpu0
                    if not target.alive():
                        raise SystemExit("%s died during %s; logs in %s" % (name, workload, logs))
                    if not ok:
                        failures.append("%s %s -c %d -P %d: %s" % (name, workload, clients,
                                                                  pipeline, err.strip()))
                        continue
                    results.setdefault((name, workload, clients, pipeline), []).append(
                        {"rps": rps, "p50": p50, "p99": p99, "cpu_us": cpu * 1e6 / n, "n": n})
    finally:
        ring.stop()
        redis_always.stop()
        redis_everysec.stop()
    report(systems, cells, results, failures)
    tally = os.environ.get("RR_TEST_TALLY")
    if tally and QUICK:  # the make test smoke counts as one test
        with open(tally, "a") as f:
            f.write("%d %d\n" % (0 if failures else 1, 1 if failures else 0))
    return 1 if failures else 0


def med(rows, key):
    return statistics.median(r[key] for r in rows)


def report(systems, cells, results, failures):
    lines = ["| workload | -c | -P | system | requests/s | p50 ms | p99 ms | CPU us/op | "
             "vs redis always (req/s) | promise |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    with open(os.path.join(OUT, "compare.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["workload", "clients", "pipeline", "system", "round", "requests", "rps",
                    "p50_ms", "p99_ms", "cpu_us_per_op"])
        for (name, workload, c, p), rows in sorted(results.items()):
            for i, r in enumerate(rows):
                w.writerow([workload, c, p, name, i + 1, r["n"], r["rps"], r["p50"], r["p99"],
                            "%.2f" % r["cpu_us"]])
    for workload, c, p in cells:
        base = results.get(("redis always", workload, c, p))
        for name, _, _, _ in systems:
            rows = results.get((name, workload, c, p))
            if not rows:
                lines.append("| %s | %d | %d | %s | failed | | | | | %s |"
                             % (workload, c, p, name, PROMISE[name]))
                continue
            ratio = "%.2fx" % (med(rows, "rps") / med(base, "rps")) if base else ""
            lines.append("| %s | %d | %d | %s | %.0f | %.3f | %.3f | %.1f | %s | %s |"
                         % (workload, c, p, name, med(rows, "rps"), med(rows, "p50"),
                            med(rows, "p99"), med(rows, "cpu_us"), ratio, PROMISE[name]))
    text = "\n".join(lines) + "\n"
    if failures:
        text += "\nFailed runs:\n" + "\n".join("- " + f for f in failures) + "\n"
    text += ("\n%d round(s), about %.1f s per run, medians; machine: %d CPUs, %s. CPU us/op is "
             "the servers' own CPU (all three ringraftd nodes summed), not redis-benchmark's.\n"
             % (ROUNDS, SECONDS, os.cpu_count(), os.uname().release))
    with open(os.path.join(OUT, "results.md"), "w") as f:
        f.write(text)
    sys.stdout.write(text)
    say("table in %s, raw numbers in %s" % (os.path.join(OUT, "results.md"),
                                            os.path.join(OUT, "compare.csv")))


if __name__ == "__main__":
    sys.exit(main())
