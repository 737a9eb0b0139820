#!/usr/bin/env python3
"""node-targets: measures ringraftd against the node's targets and prints one table
(`make bench-node`; docs/benchmarks.md, "Node targets").

Every figure is printed beside a baseline measured in the same run, runs of the things
compared are interleaved, and medians over the rounds are reported, because the machine
this was written on has 2 cores and a shared, noisy disk.

  1. SET throughput, p50, p99 of `redis-benchmark -t set -r 1000000 -d 16 -c 50 -P 16 -n N`:
     (a) redis-server 7, appendonly yes, appendfsync always, save '', fresh data dir;
     (b) a fresh 3-node ringraft cluster (G=64, W=1), every request through node 1, which
         forwards what it does not lead; (c) the same cluster with `--cluster` (each
         client straight to a leader). Rounds run a, b, c, a, b, c, ...
  2. CPU per acknowledged write: utime+stime (/proc/PID/stat) of every ringraftd process,
     summed, over the requests completed, against redis-server's, in the same runs.
  3. `-c 1 -P 1` p50 of ringraft (cluster mode: each request to its group's leader) against
     the floor: one loopback TCP round trip + one 4 KiB pwrite+fdatasync on a prepared file
     in the cluster's file system (bench/node_floor.c), measured in the same rounds; and,
     for reference, against the floor of three replicas sharing that disk (the second of
     three such writes to be durable, two of them starting one round trip later), once for
     a write on an idle disk and once for writes back to back, as -c 1 sends them.
  4. Throughput for G = 1, 8, 64, 512 and W = 1, 2, a fresh cluster each, the command of
     (b) with fewer requests, relative to the best of the set; flagged when more than 10%
     below G=1/W=1.
  5. 4096 idle groups (W = 1 and 2): once every group has a leader (and leadership has
     spread or a bound passed), CPU per node over 20 s (percent of one core) and VmRSS per
     node against the same node with G=64; bytes per extra group.

Beside each figure: fsyncs per second and bytes per fsync, from INFO batching's wal_flushes
and wal_bytes (deltas over the run, summed over the nodes); for redis-server from the
fdatasync/fsync system calls counted with `perf stat` (when perf can) and the AOF growth.

Output: a markdown table on stdout and in OUT/results.md, raw numbers as CSV in OUT
(runs.csv, floor.csv, idle.csv), logs of every node and redis-server in OUT/logs, perf
profiles in OUT/perf-*. Progress on stderr.

Environment (all optional):
  BENCH_QUICK=1           a tiny version of every part (seconds; CI smoke)
  BENCH_ROUNDS            rounds of parts 1-3 (default 3)
  BENCH_REQUESTS          -n of parts 1-2 (default: sized to ~7 s of the baseline, from a
                          calibration run of redis-server)
  BENCH_SCALE_REQUESTS    -n of part 4 (default: a third of BENCH_REQUESTS)
  BENCH_SCALE_ROUNDS      rounds of part 4 (default 3)
  BENCH_LAT_REQUESTS      -n of the -c 1 runs of part 3 (default 2000)
  BENCH_IDLE_GROUPS       G of part 5 (default 4096)
  BENCH_IDLE_WORKERS      W values of part 5 (default "1,2")
  BENCH_IDLE_SECONDS      CPU measurement window of part 5 (default 20)
  BENCH_IDLE_ROUNDS       rounds of part 5 (default 3): per node, medians over rounds
  BENCH_PARTS             which parts to run (default "1,2,3,4,5"; 1 and 2 share runs)
  BENCH_PERF              1 (default in full runs): perf record -g of node 1 during an
                          extra (b) run, not counted in the medians
  BENCH_OUT               output directory (default build/bench-node)
  BENCH_DATA              data directory of the clusters, redis and the floor file
                          (default OUT/data)
  BENCH_BIN               ringraftd (default build/release/ringraftd)
  BENCH_FLOOR_BIN         node_floor (default build/release/bench/node_floor)
  BENCH_BASE_PORT         first port used (default 7400; moved up if taken)
"""

import csv
import itertools
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import cpu_ticks, info, port_free, resp_call  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NODES = 3
CLK_TCK = os.sysconf("SC_CLK_TCK")
BENCH_ARGS = ["-t", "set", "-r", "1000000", "-d", "16"]
LOAD_ARGS = ["-c", "50", "-P", "16"]
LAT_ARGS = ["-c", "1", "-P", "1"]
ERROR_MARKERS = ("Error", "ERR", "error", "Server closed the connection", "Could not connect",
                 "TIMEOUT", "CLUSTERDOWN", "BUSY", "MOVED", "ASK ")


def env_int(name, default):
    v = os.environ.get(name, "")
    return int(v) if v.strip() else default


QUICK = os.environ.get("BENCH_QUICK", "0") not in ("", "0")
OUT = os.path.abspath(os.environ.get("BENCH_OUT", os.path.join(REPO, "build/bench-node")))
DATA = os.path.abspath(os.environ.get("BENCH_DATA", os.path.join(OUT, "data")))
LOGS = os.path.join(OUT, "logs")
BIN = os.path.abspath(os.environ.get("BENCH_BIN", os.path.join(REPO, "build/release/ringraftd")))
FLOOR_BIN = os.path.abspath(os.environ.get(
    "BENCH_FLOOR_BIN", os.path.join(REPO, "build/release/bench/node_floor")))
ROUNDS = env_int("BENCH_ROUNDS", 1 if QUICK else 3)
SCALE_ROUNDS = env_int("BENCH_SCALE_ROUNDS", 1 if QUICK else 3)
LAT_REQUESTS = env_int("BENCH_LAT_REQUESTS", 200 if QUICK else 2000)
FLOOR_SAMPLES = 100 if QUICK else 1000
IDLE_GROUPS = env_int("BENCH_IDLE_GROUPS", 256 if QUICK else 4096)
IDLE_WORKERS = [int(w) for w in os.environ.get("BENCH_IDLE_WORKERS",
                                               "1" if QUICK else "1,2").split(",") if w]
IDLE_SECONDS = env_int("BENCH_IDLE_SECONDS", 3 if QUICK else 20)
IDLE_ROUNDS = env_int("BENCH_IDLE_ROUNDS", 1 if QUICK else 3)
IDLE_BALANCE_WAIT = 5 if QUICK else 180
SCALE_GROUPS = [1, 64] if QUICK else [1, 8, 64, 512]
SCALE_WORKERS = [1, 2]
BASE_GROUPS = 64
PARTS = set(os.environ.get("BENCH_PARTS", "1,2,3,4,5").split(","))
PERF = env_int("BENCH_PERF", 0 if QUICK else 1) == 1

problems = []      # (where, what) strings for the report
LIVE = []          # Popen objects of servers this script started and has not stopped
progress_t0 = time.monotonic()


def progress(msg):
    sys.stderr.write("[bench-node %5.0fs] %s\n" % (time.monotonic() - progress_t0, msg))
    sys.stderr.flush()


def problem(where, what):
    problems.append((where, what))
    progress("PROBLEM %s: %s" % (where, what.splitlines()[0] if what else ""))


# ---- /proc ---------------------------------------------------------------------------------

def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def system_busy():
    """(busy, total) jiffies of the whole machine, for the foreign-load column."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


# ---- ports ---------------------------------------------------------------------------------

class Ports:
    """Node i (1-based) serves clients on base+i, peers on base+100+10*i+w; redis-server on
    base+50. A block of 200 ports is taken only if all of it is free."""

    def __init__(self, start):
        for base in range(start, 60000, 1000):
            if all(port_free(p) for p in range(base, base + 200)):
                self.base = base
                return
        raise SystemExit("node-targets: no free block of 200 ports from %d" % start)

    def client(self, i):
        return self.base + i

    def peer(self, i):
        return self.base + 100 + 10 * i

    def redis(self):
        return self.base + 50


# ---- processes -----------------------------------------------------------------------------

def stop_pid(proc, name, timeout=10.0):
    """SIGTERM, wait, SIGKILL after timeout. Returns the exit status."""
    if proc in LIVE:
        LIVE.remove(proc)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            problem(name, "did not exit within %.0f s of SIGTERM; killed (pid %d)"
                    % (timeout, proc.pid))
            proc.kill()
            proc.wait()
    return proc.returncode


class Redis:
    def __init__(self, ports, tag):
        self.port = ports.redis()
        self.dir = os.path.join(DATA, "redis")
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.log = os.path.join(LOGS, "redis-%s.log" % tag)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", self.dir, "--appendonly", "yes", "--appendfsync", "always",
             "--save", "", "--auto-aof-rewrite-percentage", "0", "--daemonize", "no",
             "--logfile", self.log],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        LIVE.append(self.proc)
        self.pids = [self.proc.pid]
        deadline = time.monotonic() + 10
        while True:
            try:
                resp_call(self.port, "PING", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise SystemExit("node-targets: redis-server did not start (%s)" % self.log)
                time.sleep(0.05)

    def counters(self):
        p = info(self.port, "persistence")
        return {"aof_bytes": int(p.get("aof_current_size", 0))}

    def stop(self):
        rc = stop_pid(self.proc, "redis-server")
        if rc not in (0, -signal.SIGTERM):
            problem("redis-server", "exit status %s" % rc)


class StartError(Exception):
    pass


class RunFailed(Exception):
    """A node died during a measured run; args[0] is the run's (failed) result."""


class Cluster:
    """A fresh local 3-node ringraft cluster: data in DATA/cluster, logs in LOGS."""

    def __init__(self, ports, groups, workers, tag, extra=()):
        self.ports, self.groups, self.workers, self.tag = ports, groups, workers, tag
        self.dir = os.path.join(DATA, "cluster")
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        nodes = ",".join("%d=127.0.0.1:%d@%d" % (i, ports.client(i), ports.peer(i))
                         for i in range(1, NODES + 1))
        self.procs, self.logs = [], []
        for i in range(1, NODES + 1):
            log = os.path.join(LOGS, "%s-node%d.log" % (tag, i))
            self.logs.append(log)
            out = open(log + ".out", "w")
            self.procs.append(subprocess.Popen(
                [BIN, "--node-id", str(i), "--nodes", nodes,
                 "--dir", os.path.join(self.dir, "n%d" % i), "--logfile", log,
                 "--workers", str(workers), "--groups", str(groups)] + list(extra),
                stdout=out, stderr=subprocess.STDOUT))
            LIVE.append(self.procs[-1])
            out.close()
        self.pids = [p.pid for p in self.procs]
        self.started = time.monotonic()

    def port(self, i):
        return self.ports.client(i)

    def alive(self, where):
        dead = [(i + 1, p.returncode) for i, p in enumerate(self.procs) if p.poll() is not None]
        for i, rc in dead:
            problem(where, "ringraftd node %d (%s) exited with status %s; log %s"
                    % (i, self.tag, rc, self.logs[i - 1]))
        return not dead

    def wait_leaders(self, timeout):
        """Until every node reports groups_with_leader == G. Returns seconds taken."""
        deadline = time.monotonic() + timeout
        while True:
            ok = True
            for i in range(1, NODES + 1):
                try:
                    r = info(self.port(i), "raft")
                    ok = ok and int(r.get("groups_with_leader", -1)) == self.groups
                except (OSError, RuntimeError, ValueError):
                    ok = False
                if not ok:
                    break
            if ok:
                return time.monotonic() - self.started
            if not self.alive("start-up %s" % self.tag):
                raise StartError("a node died during start-up (%s)" % self.tag)
            if time.monotonic() > deadline:
                problem("start-up %s" % self.tag,
                        "not every group had a leader after %.0f s" % timeout)
                return float("nan")
            time.sleep(0.2)

    def leaders(self):
        r = info(self.port(1), "raft")
        return [int(r.get("groups_led_by_node_%d" % i, 0)) for i in range(1, NODES + 1)]

    def wait_balance(self, timeout):
        """Until node 1 sees a leader for every group and no node leads more than ceil(G/N)
        (leader balance done), at most timeout seconds. Returns (balanced, distribution)."""
        deadline = time.monotonic() + timeout
        target = math.ceil(self.groups / NODES)
        while True:
            d = self.leaders()
            ok = sum(d) == self.groups and max(d) <= target
            if ok or time.monotonic() > deadline:
                return ok, d
            time.sleep(0.5)

    def counters(self):
        c = {"wal_flushes": 0, "wal_bytes": 0, "request_timeouts": 0, "busy_rejects": 0,
             "protocol_errors": 0, "forwarded_out": 0, "proposals": 0}
        for i in range(1, NODES + 1):
            d = info(self.port(i))
            for k in c:
                c[k] += int(d.get(k, 0))
        return c

    def stop(self):
        for i, p in enumerate(self.procs):
            rc = stop_pid(p, "ringraftd node %d (%s)" % (i + 1, self.tag))
            if rc != 0:
                problem("stop %s" % self.tag, "ringraftd node %d exited with status %s"
                        % (i + 1, rc))
        for log in self.logs:
            scan_log(log, self.tag)


def scan_log(path, tag):
    """Warnings and errors in a node's log (and its stdout/stderr) become problems."""
    bad = []
    for p in (path, path + ".out"):
        try:
            with open(p, errors="replace") as f:
                for line in f:
                    if re.search(r"\b(warning|error|fatal|panic)\b|assert|Sanitizer", line,
                                 re.IGNORECASE):
                        bad.append(line.rstrip())
        except FileNotFoundError:
            pass
    if bad:
        problem("log %s" % os.path.basename(path),
                "%d warning/error lines, first: %s" % (len(bad), " | ".join(bad[:3])))


# ---- redis-benchmark -----------------------------------------------------------------------

def bench_timeout(n):
    return min(600.0, 30.0 + n / 2000.0)


def redis_benchmark(port, n, conn_args, cluster_mode, where, perf_pid=None, perf_out=None):
    """Runs redis-benchmark; returns dict(rps, p50, p99 in ms, elapsed s, ok)."""
    cmd = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port)] + BENCH_ARGS + conn_args \
        + ["-n", str(n), "--csv"]
    if cluster_mode:
        cmd.insert(1, "--cluster")
    perf = None
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if perf_pid is not None:
        time.sleep(1.0)
        perf = subprocess.Popen(["perf", "record", "-g", "-p", str(perf_pid), "-o", perf_out,
                                 "--", "sleep", "4"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        out, _ = proc.communicate(timeout=bench_timeout(n))
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        problem(where, "redis-benchmark did not finish within %.0f s (hang?): %s\n%s"
                % (bench_timeout(n), " ".join(cmd), out.decode(errors="replace")[-2000:]))
        out = b""
    elapsed = time.monotonic() - t0
    if perf is not None:
        perf.wait(timeout=30)
    text = out.decode(errors="replace")
    res = {"rps": float("nan"), "p50": float("nan"), "p99": float("nan"), "elapsed": elapsed,
           "ok": False}
    for line in text.splitlines():
        m = re.match(r'"SET","([\d.]+)","[\d.]+","[\d.]+","([\d.]+)","[\d.]+","([\d.]+)"', line)
        if m:
            res.update(rps=float(m.group(1)), p50=float(m.group(2)), p99=float(m.group(3)),
                       ok=proc.returncode == 0)
    errs = [line for line in text.splitlines()
            if any(e in line for e in ERROR_MARKERS) and not line.startswith('"')]
    if errs or proc.returncode != 0 or not res["ok"]:
        res["ok"] = False
        problem(where, "redis-benchmark exit %s, %d error lines: %s\ncommand: %s\n%s"
                % (proc.returncode, len(errs), " | ".join(errs[:3]), " ".join(cmd),
                   text[-1500:]))
    return res


def measured_run(target, port, n, conn_args, cluster_mode, where, load=None, **kw):
    """One redis-benchmark run (or of `load`, a function called as redis_benchmark is) with
    the CPU, WAL and foreign-load deltas around it."""
    t0 = [cpu_ticks(p) for p in target.pids]
    c0 = target.counters()
    s0 = system_busy()
    perf_sys = None
    if isinstance(target, Redis):
        perf_sys = start_syscall_count(target.pids[0], where)
    r = (load or redis_benchmark)(port, n, conn_args, cluster_mode, where, **kw)
    fsyncs = stop_syscall_count(perf_sys)
    s1 = system_busy()
    if isinstance(target, Cluster) and not target.alive(where):
        # A node died: what it did is lost with it; the run counts as failed.
        r.update(ok=False, rps=float("nan"), p50=float("nan"), p99=float("nan"), crashed=True)
        nan = float("nan")
        r.update(cpu_s=nan, cpu_us_per_write=nan, n=n, machine_busy_cores=nan, fsyncs=nan,
                 fsync_bytes=nan, fsyncs_per_s=nan, bytes_per_fsync=nan)
        raise RunFailed(r)
    c1 = target.counters()
    t1 = [cpu_ticks(p) for p in target.pids]
    ticks = sum(b - a for a, b in zip(t0, t1))
    r["cpu_s"] = ticks / CLK_TCK
    r["cpu_us_per_write"] = r["cpu_s"] * 1e6 / n
    r["n"] = n
    busy = (s1[0] - s0[0]) / max(1, s1[1] - s0[1]) * os.cpu_count()
    # Cores busy with anything but the target and redis-benchmark is not measured
    # directly; the machine-wide busy cores are recorded for the noise discussion.
    r["machine_busy_cores"] = busy
    if isinstance(target, Redis):
        r["fsyncs"] = fsyncs
        r["fsync_bytes"] = c1["aof_bytes"] - c0["aof_bytes"]
    else:
        r["fsyncs"] = c1["wal_flushes"] - c0["wal_flushes"]
        r["fsync_bytes"] = c1["wal_bytes"] - c0["wal_bytes"]
        for k in ("request_timeouts", "busy_rejects", "protocol_errors"):
            if c1[k] != c0[k]:
                problem(where, "INFO %s rose by %d during the run" % (k, c1[k] - c0[k]))
        r["forwarded"] = c1["forwarded_out"] - c0["forwarded_out"]
    el = r["elapsed"]
    r["fsyncs_per_s"] = r["fsyncs"] / el if r["fsyncs"] == r["fsyncs"] else float("nan")
    r["bytes_per_fsync"] = (r["fsync_bytes"] / r["fsyncs"]
                            if r["fsyncs"] and r["fsyncs"] == r["fsyncs"] else float("nan"))
    return r


def start_syscall_count(pid, where):
    """perf stat of redis-server's fdatasync+fsync calls (its WAL flushes); None if perf
    cannot (then the fsync columns of redis rows are n/a)."""
    if shutil.which("perf") is None:
        return None
    out = os.path.join(OUT, "perf-stat-redis.tmp")
    p = subprocess.Popen(["perf", "stat", "-x", ",", "-o", out, "-e",
                          "syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync",
                          "-p", str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    return (p, out)


def stop_syscall_count(h):
    if h is None:
        return float("nan")
    p, out = h
    p.send_signal(signal.SIGINT)
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        return float("nan")
    n = 0
    try:
        with open(out) as f:
            for line in f:
                parts = line.strip().split(",")
                if len(parts) > 2 and parts[2].startswith("syscalls:") and parts[0].isdigit():
                    n += int(parts[0])
                elif len(parts) > 2 and parts[2].startswith("syscalls:"):
                    return float("nan")
        os.unlink(out)
    except FileNotFoundError:
        return float("nan")
    return n


# ---- statistics and table ------------------------------------------------------------------

def med(xs):
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else float("nan")


def spread(xs):
    xs = [x for x in xs if x == x]
    return (min(xs), max(xs)) if xs else (float("nan"), float("nan"))


def fmt(x, digits=None):
    if x is None or x != x:
        return "n/a"
    if digits is not None:
        return "%.*f" % (digits, x)
    if abs(x) >= 1000:
        return "%.0f" % x
    if abs(x) >= 100:
        return "%.0f" % x
    if abs(x) >= 10:
        return "%.1f" % x
    return "%.2f" % x


def ratio(a, b):
    return a / b if a == a and b == b and b else float("nan")


ROWS = []


def row(part, what, value, baseline, r, rng, fps, bpf, note=""):
    ROWS.append([part, what, value, baseline, r, rng, fps, bpf, note])


CSV_RUNS = []


def record(part, rnd, config, res):
    d = {"part": part, "round": rnd, "config": config}
    d.update(res)
    CSV_RUNS.append(d)


def write_csv(name, rows):
    if not rows:
        return
    keys = []
    for r in rows:
        for k in r:
            if k not in keys:
                keys.append(k)
    with open(os.path.join(OUT, name), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow(r)


# ---- parts ---------------------------------------------------------------------------------

def calibrate(ports):
    if os.environ.get("BENCH_REQUESTS", "").strip():
        return int(os.environ["BENCH_REQUESTS"])
    if QUICK:
        return 20000
    progress("calibrating -n on the baseline (redis-server, 200000 requests, not counted)")
    red = Redis(ports, "calibrate")
    try:
        r = redis_benchmark(red.port, 200000, LOAD_ARGS, False, "calibration")
    finally:
        red.stop()
    rps = r["rps"] if r["rps"] == r["rps"] else 50000
    n = int(round(rps * 7 / 50000.0)) * 50000
    return max(100000, min(n, 2000000))


def parts_1_to_3(ports, n):
    runs = {"a": [], "b": [], "c": [], "a1": [], "c1": [], "floor": []}
    floor_dir = os.path.join(DATA, "floor")
    os.makedirs(floor_dir, exist_ok=True)
    want_lat = "3" in PARTS
    want_load = bool(PARTS & {"1", "2"})
    for rnd in range(1, ROUNDS + 1):
        progress("parts 1-3, round %d/%d: (a) redis-server AOF always, -n %d" % (rnd, ROUNDS, n))
        red = Redis(ports, "r%d" % rnd)
        try:
            if want_load:
                runs["a"].append(measured_run(red, red.port, n, LOAD_ARGS, False,
                                              "(a) round %d" % rnd))
                record("1", rnd, "a redis", runs["a"][-1])
            if want_lat:
                progress("round %d/%d: redis-server -c 1 -P 1, -n %d" % (rnd, ROUNDS, LAT_REQUESTS))
                runs["a1"].append(measured_run(red, red.port, LAT_REQUESTS, LAT_ARGS, False,
                                               "(a) -c1 round %d" % rnd))
                record("3", rnd, "a redis -c1", runs["a1"][-1])
        finally:
            red.stop()
        progress("round %d/%d: fresh cluster G=%d W=1" % (rnd, ROUNDS, BASE_GROUPS))
        cl = Cluster(ports, BASE_GROUPS, 1, "r%d" % rnd)
        try:
            cl.wait_leaders(60)
            cl.wait_balance(5 if QUICK else 20)
            if want_load:
                progress("round %d/%d: (b) ringraft through node 1 (forwarding), -n %d"
                         % (rnd, ROUNDS, n))
                runs["b"].append(measured_run(cl, cl.port(1), n, LOAD_ARGS, False,
                                              "(b) round %d" % rnd))
                record("1", rnd, "b ringraft via node 1", runs["b"][-1])
                progress("round %d/%d: (c) ringraft --cluster, -n %d" % (rnd, ROUNDS, n))
                runs["c"].append(measured_run(cl, cl.port(1), n, LOAD_ARGS, True,
                                              "(c) round %d" % rnd))
                record("1", rnd, "c ringraft --cluster", runs["c"][-1])
            if want_lat:
                progress("round %d/%d: ringraft --cluster -c 1 -P 1, -n %d"
                         % (rnd, ROUNDS, LAT_REQUESTS))
                runs["c1"].append(measured_run(cl, cl.port(1), LAT_REQUESTS, LAT_ARGS, True,
                                               "(c) -c1 round %d" % rnd))
                record("3", rnd, "c ringraft --cluster -c1", runs["c1"][-1])
            cl.alive("round %d" % rnd)
        except (RunFailed, StartError):
            pass   # already a problem; the round's remaining ringraft runs are missing
        finally:
            cl.stop()
        if want_lat:
            progress("round %d/%d: floor (loopback RTT, 4 KiB pwrite+fdatasync)" % (rnd, ROUNDS))
            runs["floor"].append(floor(floor_dir, rnd))
    if PERF and want_load:
        perf_run(ports, n)
    return runs


def floor(dirpath, rnd):
    p = subprocess.run([FLOOR_BIN, dirpath, str(FLOOR_SAMPLES)], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=300)
    text = p.stdout.decode(errors="replace")
    d = {"round": rnd}
    for k, v in re.findall(r"(\w+)=([\d.]+)", text):
        d[k] = float(v)
    if p.returncode != 0 or "fsync_p50_us" not in d:
        problem("floor round %d" % rnd, "node_floor failed: %s" % text)
    return d


def perf_run(ports, n):
    """An extra (b) run, not counted, with perf record -g on node 1 for 4 s."""
    if shutil.which("perf") is None:
        problem("perf", "perf not found; no profile")
        return
    progress("perf: extra (b) run with perf record -g -p <node 1> for 4 s (not counted)")
    cl = Cluster(ports, BASE_GROUPS, 1, "perf")
    data = os.path.join(OUT, "perf-b-node1.data")
    try:
        cl.wait_leaders(60)
        cl.wait_balance(20)
        redis_benchmark(cl.port(1), n, LOAD_ARGS, False, "(b) perf run",
                        perf_pid=cl.pids[0], perf_out=data)
    finally:
        cl.stop()
    for name, extra in (("symbols", ["--no-children", "--sort", "symbol"]),
                        ("children", ["--children", "--sort", "symbol"]),
                        ("dso", ["--no-children", "--sort", "dso"])):
        with open(os.path.join(OUT, "perf-b-node1-%s.txt" % name), "w") as f:
            subprocess.run(["perf", "report", "-i", data, "--stdio", "-g", "none",
                            "--percent-limit", "0.7"] + extra,
                           stdout=f, stderr=subprocess.DEVNULL, timeout=300)


def report_parts_1_to_3(runs, n):
    a, b, c = runs["a"], runs["b"], runs["c"]
    cmd = "SET -r 1000000 -d 16 -c 50 -P 16 -n %d" % n

    def m(rs, k):
        return med([r[k] for r in rs])

    def rg(rs, k, d=None):
        lo, hi = spread([r[k] for r in rs])
        return "%s-%s" % (fmt(lo, d), fmt(hi, d))

    def fs(rs):
        return fmt(m(rs, "fsyncs_per_s")), fmt(m(rs, "bytes_per_fsync"))

    base_rps, base_p50, base_p99 = m(a, "rps"), m(a, "p50"), m(a, "p99")
    if a:
        row("1a", "redis-server 7 AOF always, %s: req/s" % cmd, fmt(base_rps), "(baseline)",
            "1.00", rg(a, "rps"), *fs(a), "fsyncs counted with perf stat; bytes = AOF growth")
        row("1a", "  p50 / p99 ms", "%s / %s" % (fmt(base_p50), fmt(base_p99)), "(baseline)",
            "1.00", "p99 %s" % rg(a, "p99"), "", "")
    for rs, label, what in ((b, "1b", "ringraft 3 nodes G=64 W=1, all through node 1 (forwards)"),
                            (c, "1c", "ringraft, same cluster, redis-benchmark --cluster")):
        if not rs:
            continue
        row(label, "%s: req/s" % what, fmt(m(rs, "rps")), fmt(base_rps),
            fmt(ratio(m(rs, "rps"), base_rps), 2), rg(rs, "rps"), *fs(rs),
            "fsyncs/bytes: wal_flushes/wal_bytes, 3 nodes")
        row(label, "  p50 / p99 ms", "%s / %s" % (fmt(m(rs, "p50")), fmt(m(rs, "p99"))),
            "%s / %s" % (fmt(base_p50), fmt(base_p99)),
            "%s / %s" % (fmt(ratio(m(rs, "p50"), base_p50), 2),
                         fmt(ratio(m(rs, "p99"), base_p99), 2)),
            "p99 %s" % rg(rs, "p99"), "", "")
    if "2" in PARTS and a:
        base_cpu = m(a, "cpu_us_per_write")
        row("2", "CPU per acknowledged write, redis-server (us)", fmt(base_cpu), "(baseline)",
            "1.00", rg(a, "cpu_us_per_write"), *fs(a))
        for rs, label in ((b, "(b) via node 1"), (c, "(c) --cluster")):
            if rs:
                row("2", "CPU per acknowledged write, ringraft %s, sum of 3 nodes (us)" % label,
                    fmt(m(rs, "cpu_us_per_write")), fmt(base_cpu),
                    fmt(ratio(m(rs, "cpu_us_per_write"), base_cpu), 2),
                    rg(rs, "cpu_us_per_write"), *fs(rs))
    fl = runs["floor"]
    if runs["c1"] and fl:
        rtt = med([f.get("rtt_p50_us", float("nan")) for f in fl]) / 1000
        fsy = med([f.get("fsync_p50_us", float("nan")) for f in fl]) / 1000
        fl_ms = med([(f.get("rtt_p50_us", float("nan")) + f.get("fsync_p50_us", float("nan")))
                     / 1000 for f in fl])
        c1 = runs["c1"]
        row("3", "-c 1 -P 1 p50 ms, ringraft --cluster (to the key's leader)",
            fmt(m(c1, "p50"), 3), fmt(fl_ms, 3), fmt(ratio(m(c1, "p50"), fl_ms), 1),
            rg(c1, "p50", 3), *fs(c1),
            "floor = loopback RTT p50 %.3f + 4 KiB pwrite+fdatasync p50 %.3f" % (rtt, fsy))
        sh_ms = med([(f.get("rtt_p50_us", float("nan")) + f.get("shared_p50_us", float("nan")))
                     / 1000 for f in fl])
        row("3", "  against the floor of 3 replicas on this one disk (ms)", fmt(m(c1, "p50"), 3),
            fmt(sh_ms, 3), fmt(ratio(m(c1, "p50"), sh_ms), 1), "", "", "",
            "floor = loopback RTT p50 + the second of three 4 KiB write+fdatasync on one disk "
            "(two starting one RTT later) p50 %.3f" % (med([f.get("shared_p50_us", float("nan"))
                                                            for f in fl]) / 1000))
        su_ms = med([(f.get("rtt_p50_us", float("nan")) + f.get("sustained_p50_us", float("nan")))
                     / 1000 for f in fl])
        row("3", "  against that floor with writes back to back (ms)", fmt(m(c1, "p50"), 3),
            fmt(su_ms, 3), fmt(ratio(m(c1, "p50"), su_ms), 1), "", "", "",
            "floor = loopback RTT p50 + the same, each write starting one RTT after the "
            "previous one's majority, as -c 1 sends them, p50 %.3f"
            % (med([f.get("sustained_p50_us", float("nan")) for f in fl]) / 1000))
        if runs["a1"]:
            a1 = runs["a1"]
            row("3", "  for reference: redis-server AOF always, -c 1 -P 1 p50 ms",
                fmt(m(a1, "p50"), 3), fmt(fl_ms, 3), fmt(ratio(m(a1, "p50"), fl_ms), 1),
                rg(a1, "p50", 3), *fs(a1))


def part_4(ports, n):
    # ringraftd needs G >= W (every worker serves a group): G=1 W=2 is not a configuration.
    configs = [(g, w) for w in SCALE_WORKERS for g in SCALE_GROUPS if g >= w]
    res = {cfg: [] for cfg in configs}
    for rnd in range(1, SCALE_ROUNDS + 1):
        k = (rnd - 1) % len(configs)
        order = configs[k:] + configs[:k]          # rotate so no config is always first
        for g, w in order:
            progress("part 4, round %d/%d: fresh cluster G=%d W=%d, -n %d"
                     % (rnd, SCALE_ROUNDS, g, w, n))
            cl = Cluster(ports, g, w, "g%dw%d-r%d" % (g, w, rnd))
            try:
                cl.wait_leaders(60 + g / 10)
                bal, dist = cl.wait_balance(5 if QUICK else 30)
                r = measured_run(cl, cl.port(1), n, LOAD_ARGS, False,
                                 "(4) G=%d W=%d round %d" % (g, w, rnd))
                r["balanced"] = bal
                r["leaders"] = "/".join(map(str, dist))
                res[(g, w)].append(r)
                record("4", rnd, "G=%d W=%d" % (g, w), r)
                cl.alive("(4) G=%d W=%d" % (g, w))
            except StartError:
                pass
            except RunFailed as e:
                r = e.args[0]
                r["balanced"] = bal
                r["leaders"] = "/".join(map(str, dist))
                res[(g, w)].append(r)
                record("4", rnd, "G=%d W=%d" % (g, w), r)
            finally:
                cl.stop()
    meds = {cfg: med([r["rps"] for r in rs]) for cfg, rs in res.items()}
    best = max(v for v in meds.values() if v == v) if any(v == v for v in meds.values()) \
        else float("nan")
    ref = meds.get((1, 1), float("nan"))
    for (g, w) in configs:
        rs = res[(g, w)]
        if not rs:
            row("4", "G=%d W=%d" % (g, w), "n/a", "", "", "", "", "", "no run started")
            continue
        lo, hi = spread([r["rps"] for r in rs])
        rel_ref = ratio(meds[(g, w)], ref)
        flag = "**more than 10% below G=1/W=1**" if rel_ref == rel_ref and rel_ref < 0.9 else ""
        unbal = sum(1 for r in rs if not r["balanced"])
        note = "vs G=1/W=1 %s %s" % (fmt(rel_ref, 2), flag)
        crashed = sum(1 for r in rs if r.get("crashed"))
        if crashed:
            note += "; **a node crashed in %d of %d runs** (see Problems)" % (crashed, len(rs))
        if unbal:
            note += "; leaders not yet spread in %d run(s) (%s)" % (
                unbal, ", ".join(r["leaders"] for r in rs if not r["balanced"]))
        row("4", "G=%d W=%d via node 1, -n %d: req/s" % (g, w, n), fmt(meds[(g, w)]),
            "%s (best)" % fmt(best), fmt(ratio(meds[(g, w)], best), 2),
            "%s-%s" % (fmt(lo), fmt(hi)),
            fmt(med([r["fsyncs_per_s"] for r in rs])), fmt(med([r["bytes_per_fsync"] for r in rs])),
            note)


def part_5(ports):
    rows = []
    for rnd, w, g in itertools.product(range(1, IDLE_ROUNDS + 1), IDLE_WORKERS,
                                       (BASE_GROUPS, IDLE_GROUPS)):
        progress("part 5, round %d/%d: fresh idle cluster G=%d W=%d"
                 % (rnd, IDLE_ROUNDS, g, w))
        cl = Cluster(ports, g, w, "idle-g%dw%d-r%d" % (g, w, rnd))
        try:
            t_lead = cl.wait_leaders(120 + g / 20)
            bal, dist = cl.wait_balance(IDLE_BALANCE_WAIT)
            t_settle = time.monotonic() - cl.started
            time.sleep(1 if QUICK else 3)
            progress("part 5: G=%d W=%d leaders after %.1f s, spread %s after %.1f s; "
                     "measuring %d s" % (g, w, t_lead, "/".join(map(str, dist)), t_settle,
                                         IDLE_SECONDS))
            c0 = cl.counters()
            t0 = [cpu_ticks(p) for p in cl.pids]
            w0 = time.monotonic()
            time.sleep(IDLE_SECONDS)
            t1 = [cpu_ticks(p) for p in cl.pids]
            el = time.monotonic() - w0
            c1 = cl.counters()
            dist1 = cl.leaders()
            rss = [rss_bytes(p) for p in cl.pids]
            cl.alive("(5) G=%d W=%d" % (g, w))
            for i in range(NODES):
                rows.append({"round": rnd, "groups": g, "workers": w, "node": i + 1,
                             "leaders_s": round(t_lead, 2), "settled_s": round(t_settle, 2),
                             "balanced": bal, "leaders_before": "/".join(map(str, dist)),
                             "leaders_after": "/".join(map(str, dist1)),
                             "cpu_pct": 100.0 * (t1[i] - t0[i]) / CLK_TCK / el,
                             "rss_bytes": rss[i], "seconds": round(el, 2),
                             "wal_flushes": c1["wal_flushes"] - c0["wal_flushes"],
                             "wal_bytes": c1["wal_bytes"] - c0["wal_bytes"]})
        except StartError:
            pass
        finally:
            cl.stop()
    extra = IDLE_GROUPS - BASE_GROUPS

    def cell(g, w, rnd, node):
        return next((r for r in rows if (r["groups"], r["workers"], r["round"], r["node"]) ==
                     (g, w, rnd, node)), None)

    for w in IDLE_WORKERS:
        # Per node: the median over rounds of its CPU, its RSS, and its RSS difference between
        # the two G of one round (one RSS reading moves with the last heap trim and the 2 MiB
        # pages: about +-512 B per group in one difference).
        cpu_b, cpu_s, rss_b, rss_s, per, ranges = [], [], [], [], [], []
        for node in range(1, NODES + 1):
            pairs = [(cell(IDLE_GROUPS, w, rnd, node), cell(BASE_GROUPS, w, rnd, node))
                     for rnd in range(1, IDLE_ROUNDS + 1)]
            pairs = [(b, s) for b, s in pairs if b is not None and s is not None]
            if not pairs:
                break
            cpu_b.append(med([b["cpu_pct"] for b, _ in pairs]))
            cpu_s.append(med([s["cpu_pct"] for _, s in pairs]))
            rss_b.append(med([b["rss_bytes"] for b, _ in pairs]))
            rss_s.append(med([s["rss_bytes"] for _, s in pairs]))
            d = [(b["rss_bytes"] - s["rss_bytes"]) / extra for b, s in pairs]
            per.append(med(d))
            ranges.append("%.0f-%.0f" % (min(d), max(d)))
        if len(per) < NODES:
            continue
        big = [r for r in rows if r["workers"] == w and r["groups"] == IDLE_GROUPS]
        el = sum(r["seconds"] for r in big)
        fps = sum(r["wal_flushes"] for r in big) / el
        bpf = ratio(sum(r["wal_bytes"] for r in big), sum(r["wal_flushes"] for r in big))
        row("5", "idle G=%d W=%d: CPU per node, %% of one core (nodes 1/2/3)" % (IDLE_GROUPS, w),
            "/".join(fmt(x, 1) for x in cpu_b), "/".join(fmt(x, 1) for x in cpu_s) + " (G=64)",
            fmt(ratio(statistics.mean(cpu_b), statistics.mean(cpu_s)), 1),
            "", fmt(fps), fmt(bpf),
            "medians of %d round(s); leaders %.0f s after start; leaders per node %s (%s)"
            % (IDLE_ROUNDS, big[0]["leaders_s"], big[0]["leaders_after"],
               "spread" if big[0]["balanced"] and big[0]["leaders_before"] ==
               big[0]["leaders_after"] else "balance still moving leaders"))
        row("5", "idle G=%d W=%d: VmRSS per node MiB; bytes per extra group" % (IDLE_GROUPS, w),
            "/".join(fmt(x / 1048576, 1) for x in rss_b),
            "/".join(fmt(x / 1048576, 1) for x in rss_s) + " (G=64)",
            "", "%s B/group" % "/".join("%.0f" % x for x in per), "", "",
            "(RSS(G=%d) - RSS(G=64)) / %d, same node and round; medians of %d round(s), "
            "ranges %s" % (IDLE_GROUPS, extra, IDLE_ROUNDS, " / ".join(ranges)))
    write_csv("idle.csv", rows)


# ---- main ----------------------------------------------------------------------------------

def describe_machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    fs = subprocess.run(["df", "-T", DATA], stdout=subprocess.PIPE,
                        stderr=subprocess.DEVNULL).stdout.decode().splitlines()[-1:]
    rb = subprocess.run(["redis-server", "--version"], stdout=subprocess.PIPE).stdout.decode()
    return ("%d cores (%s), kernel %s, data on %s; %s"
            % (os.cpu_count(), cpu, os.uname().release,
               " ".join(fs[0].split()[:2]) if fs else "?", rb.split(" sha")[0].strip()))


def main():
    global BIN
    for tool in ("redis-server", "redis-benchmark"):
        if shutil.which(tool) is None:
            raise SystemExit("node-targets: %s not found (apt-get install redis-server)" % tool)
    for b in (BIN, FLOOR_BIN):
        if not os.access(b, os.X_OK):
            raise SystemExit("node-targets: %s not built (make bench-node builds it)" % b)
    shutil.rmtree(LOGS, ignore_errors=True)
    shutil.rmtree(DATA, ignore_errors=True)
    os.makedirs(LOGS)
    os.makedirs(DATA)
    # Every cluster of the run starts the same binary, even if a build relinks BIN meanwhile.
    snap = os.path.join(OUT, "ringraftd")
    shutil.copy2(BIN, snap + ".tmp")
    os.replace(snap + ".tmp", snap)
    BIN = snap
    commit = subprocess.run(["git", "-C", REPO, "log", "-1", "--format=%h"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout.decode().strip()
    dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no",
                            "io", "core", "storage"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL).stdout.decode().strip()
    build_id = "ringraftd of %s%s, built %s" % (
        commit or "?", " + uncommitted changes" if dirty else "",
        time.strftime("%H:%M:%S", time.localtime(os.path.getmtime(snap))))
    ports = Ports(env_int("BENCH_BASE_PORT", 7400))
    machine = describe_machine() + "; " + build_id
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    progress("%s; ports %d..%d; output %s" % (machine, ports.base, ports.base + 199, OUT))
    n = calibrate(ports)
    scale_n = env_int("BENCH_SCALE_REQUESTS", max(10000, n // 3 // 10000 * 10000) if not QUICK
                      else 10000)
    runs = None
    if PARTS & {"1", "2", "3"}:
        runs = parts_1_to_3(ports, n)
        report_parts_1_to_3(runs, n)
        write_csv("floor.csv", runs["floor"])
    if "4" in PARTS:
        part_4(ports, scale_n)
    if "5" in PARTS:
        part_5(ports)
    write_csv("runs.csv", CSV_RUNS)

    lines = ["# ringraft node targets (make bench-node)", "",
             "%s; started %s; %d round(s) of parts 1-3, %d of part 4%s. Medians over rounds; "
             "range = min-max over rounds." % (machine, started, ROUNDS, SCALE_ROUNDS,
                                              " (BENCH_QUICK)" if QUICK else ""), "",
             "| part | measurement | value | baseline | ratio | range | fsyncs/s | bytes/fsync "
             "| note |", "|---|---|---|---|---|---|---|---|---|"]
    for r in ROWS:
        lines.append("| " + " | ".join(str(x) for x in r) + " |")
    busy = med([r.get("machine_busy_cores", float("nan")) for r in CSV_RUNS])
    lines += ["", "Machine-wide busy cores during the load runs (median, everything included): "
              "%s of %d." % (fmt(busy), os.cpu_count())]
    if problems:
        lines += ["", "## Problems seen", ""]
        for where, what in problems:
            lines.append("- **%s**: %s" % (where, what.replace("\n", " <br> ")[:3000]))
    else:
        lines += ["", "No problems seen (redis-benchmark errors, hangs, node exits, INFO "
                  "timeouts/rejects, warnings in node logs)."]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(OUT, "results.md"), "w") as f:
        f.write(text)
    sys.stdout.write(text)
    progress("done: %s/results.md, runs.csv, floor.csv, idle.csv" % OUT)
    return 0


def on_signal(signum, _frame):
    raise KeyboardInterrupt("signal %d" % signum)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        sys.exit(main())
    finally:
        # Interrupted or failed: stop what this script started, by pid, and nothing else.
        for p in list(LIVE):
            stop_pid(p, "pid %d" % p.pid, timeout=5)
