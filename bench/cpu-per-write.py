#!/usr/bin/env python3
"""cpu-per-write: CPU per acknowledged write of a local 3-node ringraft cluster against one
redis-server (appendfsync always), in the same run (`make bench-cpu`; docs/benchmarks.md,
"CPU per write, quick").

The load is part 1 of node-targets.py: `redis-benchmark -t set -r 1000000 -d 16 -c 50
-P 16 -n N`, (a) against redis-server, (b) through node 1 of a fresh G=64 W=1 cluster, (c)
the same cluster with `--cluster`. CPU = utime+stime of the server processes (all threads,
io-wq workers included) over the run / N; for ringraft the three nodes summed. Rounds are
interleaved (a, b, c, a, b, c, ...) and medians printed.

Several ringraftd binaries can be compared in one run (`--bin old=PATH --bin new=PATH`):
each round runs redis-server, then each binary's fresh cluster, in an order rotated every
round, so that a before/after comparison sees the same machine load.

  python3 bench/cpu-per-write.py [-n 300000] [--rounds 3] [--bin NAME=PATH ...] [--perf DIR]
                                 [--groups 64[,G...]] [--workers 1] [--no-redis]
                                 [--no-cluster]

--groups takes one G or several, comma-separated (`--groups 1,64,512`): each round then runs
every binary at every G, the order of the (G, binary) pairs rotated every round, so that runs
at different G, like runs of different binaries, see the same machine load. --no-cluster
skips (c) (and (e) with --rbench).

--perf DIR records `perf record -g` of every node (and redis-server) during the runs of the
last round into DIR (one file per process and run; `perf report -i FILE`). Uses the same
ports, data and log directories as node-targets.py (BENCH_OUT, default build/bench-cpu).

--rbench adds, on the same cluster, (d) and (e): the same load from ringraft-bench
(build/release/bench/ringraft-bench: `-c 50 -P 16 -t set -d 16 --keys 1000000`) through node
1 and with its --cluster (each request to its key's leader). redis-benchmark's --cluster
gives each pipeline of 16 one hash tag, so (c) sends 16 consecutive writes to one group,
while (b) spreads them over the groups: (b) - (c) is forwarding plus that difference of key
pattern. ringraft-bench keeps the keys uniform in both, so (d) - (e) is forwarding alone.
"""

import argparse
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
os.environ.setdefault("BENCH_OUT", os.path.join(REPO, "build/bench-cpu"))
_spec = importlib.util.spec_from_file_location("node_targets",
                                               os.path.join(HERE, "node-targets.py"))
nt = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nt)


class Perf:
    """perf record -g of the given pids for the duration of one run (None: no recording)."""

    def __init__(self, out_dir, tag, pids):
        self.procs = []
        if out_dir is None or shutil.which("perf") is None:
            return
        os.makedirs(out_dir, exist_ok=True)
        for i, pid in enumerate(pids):
            path = os.path.join(out_dir, "%s-%d.data" % (tag, i + 1))
            self.procs.append(subprocess.Popen(
                ["perf", "record", "-g", "-p", str(pid), "-o", path],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(0.5)

    def stop(self):
        for p in self.procs:
            p.send_signal(signal.SIGINT)
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def minflt(pid):
    """Minor page faults of process pid (all its threads)."""
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[7])


def run(target, port, n, cluster_mode, where, perf_dir, tag, load=None):
    perf = Perf(perf_dir, tag, target.pids)
    f0 = sum(minflt(p) for p in target.pids)
    try:
        r = nt.measured_run(target, port, n, nt.LOAD_ARGS, cluster_mode, where, load=load)
    finally:
        perf.stop()
    r["faults_per_write"] = (sum(minflt(p) for p in target.pids) - f0) / n
    return r


RBENCH = os.path.join(REPO, "build/release/bench/ringraft-bench")


def rbench(port, n, conn_args, cluster_mode, where, **kw):
    """ringraft-bench in redis_benchmark's place (measured_run): the same load, uniform keys
    in both modes. Returns dict(rps, p50, p99 in ms, elapsed s, ok)."""
    cmd = [RBENCH, "-p", str(port), "-t", "set", "-d", "16", "--keys", "1000000", "-n",
           str(n), "--json", "--quiet"] + conn_args
    if cluster_mode:
        cmd.append("--cluster")
    t0 = time.monotonic()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=nt.bench_timeout(n))
    elapsed = time.monotonic() - t0
    res = {"rps": float("nan"), "p50": float("nan"), "p99": float("nan"), "elapsed": elapsed,
           "ok": False}
    try:
        j = json.loads(proc.stdout.decode(errors="replace"))
        lat = j["latency_us"]["all"]
        errors = int(j.get("errors_total", 0))
        res.update(rps=float(j["rps"]), p50=lat["p50"] / 1000.0, p99=lat["p99"] / 1000.0,
                   ok=proc.returncode == 0 and errors == 0)
    except (ValueError, KeyError, TypeError):
        pass
    if not res["ok"]:
        nt.problem(where, "ringraft-bench exit %s: %s\n%s" % (
            proc.returncode, " ".join(cmd), proc.stdout.decode(errors="replace")[-1500:]))
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=300000, help="requests per run (default 300000)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--bin", action="append", default=[],
                    help="NAME=PATH of a ringraftd (default: build/release/ringraftd)")
    ap.add_argument("--perf", metavar="DIR", help="perf record every server in the last round")
    ap.add_argument("--no-redis", action="store_true", help="skip redis-server")
    ap.add_argument("--groups", default=str(nt.BASE_GROUPS),
                    help="G, or several comma-separated (default 64)")
    ap.add_argument("--no-cluster", action="store_true", help="skip (c) --cluster")
    ap.add_argument("--workers", type=int, default=1, help="W (default 1)")
    ap.add_argument("--rbench", action="store_true",
                    help="also (d) and (e): ringraft-bench through node 1 and --cluster")
    args = ap.parse_args()
    try:
        groups = [int(g) for g in args.groups.split(",")]
    except ValueError:
        raise SystemExit("cpu-per-write: --groups takes numbers, comma-separated")
    if not groups or min(groups) < 1:
        raise SystemExit("cpu-per-write: --groups takes numbers of at least 1")
    bins = []
    for b in args.bin or ["ringraft=" + nt.BIN]:
        name, _, path = b.partition("=")
        if not path:
            name, path = "ringraft", name
        path = os.path.abspath(path)
        if not os.access(path, os.X_OK):
            raise SystemExit("cpu-per-write: %s is not an executable" % path)
        # A copy: a build that relinks the binary meanwhile cannot mix two in one run.
        snap = os.path.join(nt.OUT, "ringraftd-" + name)
        shutil.copy2(path, snap + ".tmp")
        os.replace(snap + ".tmp", snap)
        bins.append((name, snap))
    shutil.rmtree(nt.LOGS, ignore_errors=True)
    shutil.rmtree(nt.DATA, ignore_errors=True)
    os.makedirs(nt.LOGS)
    os.makedirs(nt.DATA)
    ports = nt.Ports(nt.env_int("BENCH_BASE_PORT", 7400))
    gdesc = ",".join(str(g) for g in groups)
    nt.progress("%s; -n %d, %d rounds, G=%s W=%d, binaries %s" % (
        nt.describe_machine(), args.n, args.rounds, gdesc, args.workers,
        ", ".join(n for n, _ in bins)))
    res = {}  # config -> list of run results

    def add(key, r):
        res.setdefault(key, []).append(r)
        nt.progress("  %-28s %7.0f req/s  p50/p99 %s/%s ms  %6.2f us/write  %5.3f faults/write"
                    "  (busy cores %.2f)"
                    % (key, r["rps"], nt.fmt(r["p50"]), nt.fmt(r["p99"]), r["cpu_us_per_write"],
                       r["faults_per_write"], r["machine_busy_cores"]))

    for rnd in range(1, args.rounds + 1):
        perf_dir = args.perf if rnd == args.rounds else None
        if not args.no_redis:
            red = nt.Redis(ports, "r%d" % rnd)
            try:
                add("redis", run(red, red.port, args.n, False, "(a) round %d" % rnd, perf_dir,
                                 "redis-r%d" % rnd))
            finally:
                red.stop()
        pairs = [(g, name, path) for g in groups for name, path in bins]
        k = (rnd - 1) % len(pairs)
        for g, name, path in pairs[k:] + pairs[:k]:
            nt.BIN = path
            # One G: the names of earlier runs; several: G is part of every name.
            label = name if len(groups) == 1 else "%s G=%d" % (name, g)
            tag = label.replace(" ", "-").replace("=", "")
            cl = nt.Cluster(ports, g, args.workers, "%s-r%d" % (tag, rnd))
            try:
                cl.wait_leaders(60)
                cl.wait_balance(20)
                add(label + " (b) via node 1",
                    run(cl, cl.port(1), args.n, False, "(b) %s round %d" % (label, rnd),
                        perf_dir, "%s-b-node" % tag))
                if not args.no_cluster:
                    add(label + " (c) --cluster",
                        run(cl, cl.port(1), args.n, True, "(c) %s round %d" % (label, rnd),
                            perf_dir, "%s-c-node" % tag))
                if args.rbench:
                    add(label + " (d) rbench via node 1",
                        run(cl, cl.port(1), args.n, False, "(d) %s round %d" % (label, rnd),
                            perf_dir, "%s-d-node" % tag, load=rbench))
                    if not args.no_cluster:
                        add(label + " (e) rbench --cluster",
                            run(cl, cl.port(1), args.n, True, "(e) %s round %d" % (label, rnd),
                                perf_dir, "%s-e-node" % tag, load=rbench))
            except (nt.RunFailed, nt.StartError):
                pass
            finally:
                cl.stop()

    base = nt.med([r["cpu_us_per_write"] for r in res.get("redis", [])])
    lines = ["", "-n %d, %d rounds, G=%s W=%d, medians (range)"
             % (args.n, args.rounds, gdesc, args.workers), "",
             "| configuration | us CPU / write | x redis | page faults / write | req/s "
             "| p50 / p99 ms | busy cores |", "|---|---|---|---|---|---|---|"]
    for key, rs in res.items():
        us = [r["cpu_us_per_write"] for r in rs]
        lo, hi = nt.spread(us)
        lines.append("| %s | %s (%s-%s) | %s | %s | %s | %s / %s | %s |" % (
            key, nt.fmt(nt.med(us)), nt.fmt(lo), nt.fmt(hi),
            nt.fmt(nt.ratio(nt.med(us), base)),
            nt.fmt(nt.med([r["faults_per_write"] for r in rs]), 3),
            nt.fmt(nt.med([r["rps"] for r in rs])),
            nt.fmt(nt.med([r["p50"] for r in rs])), nt.fmt(nt.med([r["p99"] for r in rs])),
            nt.fmt(nt.med([r["machine_busy_cores"] for r in rs]))))
    for where, what in nt.problems:
        lines.append("PROBLEM %s: %s" % (where, what.splitlines()[0] if what else ""))
    sys.stdout.write("\n".join(lines) + "\n")
    return 1 if nt.problems else 0


if __name__ == "__main__":
    os.makedirs(nt.OUT, exist_ok=True)
    signal.signal(signal.SIGTERM, nt.on_signal)
    try:
        sys.exit(main())
    finally:
        for p in list(nt.LIVE):
            nt.stop_pid(p, "pid %d" % p.pid, timeout=5)
