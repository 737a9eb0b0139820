#!/usr/bin/env python3
"""agreement: does ringraft-bench measure what redis-benchmark measures?

On the same closed-loop workloads against the same server, ringraft-bench's throughput and
p50 must agree with redis-benchmark's within 10%: medians over ROUNDS interleaved runs
(redis-benchmark, ringraft-bench, then the other order in the next round), with the same
connections (-c), pipeline (-P), threads (1 each), request count (-n), key range (-r /
--keys, uniform) and value size (-d). Two targets:

  ringraft   a fresh local 3-node ringraftd cluster (release build, G=64, W=1), every
             request through node 1, which forwards what it does not lead;
  redis      one redis-server (no persistence): the reference where the server is fast
             and the generator's own cost shows most.

Workloads: SET then GET (the keys SET wrote), each with -c 50 -P 16 and -c 1 -P 1. Also
printed: each tool's own CPU per run (user + system of the child, in cores over its run).

With --pin (the default on 2 or more CPUs) the servers run on CPU 0 and the generators on
CPU 1 (sched_setaffinity on every thread of the servers, taskset for the tools): otherwise
the generator and the server share every core and the cheaper generator leaves the server
more CPU, which moves throughput by more than the 10% looked for.

    python3 bench/agreement.py [--rounds N] [--targets ringraft,redis] [--scale F] [--no-pin]
                               [--bench PATH] [--smoke]
    make bench-agreement

Prints a markdown table and a verdict per line, and writes them (and every run, as CSV) to
build/bench-agreement/ (or AGREEMENT_OUT). The exit status is the verdict against the ringraft
cluster (the criterion); the redis-server lines are a reference, where the generators' own
cost shows. Everything runs on 127.0.0.1 on free ports; every process started is stopped by
its PID (also on Ctrl-C). Needs redis-server and redis-benchmark (Debian's redis-server and
redis-tools), ringraftd (RINGRAFTD, default build/release/ringraftd) and ringraft-bench
(--bench, default build/release/bench/ringraft-bench).
"""

import argparse
import csv
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "node"))
os.environ.setdefault("RINGRAFTD", os.path.join(REPO, "build/release/ringraftd"))
import harness  # noqa: E402  (path set above)

OUT = os.path.abspath(os.environ.get("AGREEMENT_OUT",
                                     os.path.join(REPO, "build/bench-agreement")))
# Cluster and redis data under OUT, not in the shared /tmp.
os.makedirs(os.path.join(OUT, "tmp"), exist_ok=True)
tempfile.tempdir = os.path.join(OUT, "tmp")

RBENCH = os.path.join(REPO, "build/release/bench/ringraft-bench")
KEYS = 100000
VALUE = 16
TOLERANCE = 0.10
# (workload, clients, pipeline, requests against ringraft, requests against redis)
CONFIGS = [
    ("set", 50, 16, 100000, 400000),
    ("get", 50, 16, 100000, 400000),
    ("set", 1, 1, 1500, 20000),
    ("get", 1, 1, 3000, 20000),
]
RUN_TIMEOUT = 300
GEN_PREFIX = []  # ["taskset", "-c", "1"] with --pin
SERVER_CPUS = None  # {0} with --pin


def pin_process(pid):
    """Every thread of pid (and threads it starts later: they inherit) onto SERVER_CPUS."""
    if SERVER_CPUS is None:
        return
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            os.sched_setaffinity(int(tid), SERVER_CPUS)
        except OSError:
            pass


def progress(msg):
    sys.stderr.write("[agreement %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def run_measured(cmd):
    """Runs cmd; returns (exit status, stdout, wall s, cpu s, stderr). CPU is the child's own
    (user + system over all its threads), from the children's times around the run."""
    before = os.times()
    t0 = time.monotonic()
    p = subprocess.Popen(GEN_PREFIX + cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        return -1, "", 1.0, float("nan"), "timed out: " + " ".join(cmd)
    wall = time.monotonic() - t0
    after = os.times()
    cpu = (after.children_user - before.children_user) + \
        (after.children_system - before.children_system)
    return p.returncode, out.decode(errors="replace"), wall, cpu, err.decode(errors="replace")


def redis_benchmark(port, op, c, p, n):
    cmd = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-t", op, "-r", str(KEYS),
           "-d", str(VALUE), "-c", str(c), "-P", str(p), "-n", str(n), "--csv"]
    rc, out, wall, cpu, err = run_measured(cmd)
    for row in csv.reader(out.splitlines()):
        if row and row[0] == op.upper():
            rps, p50 = float(row[1]), float(row[4])
            bad = rc != 0 or "rror" in err
            return {"rps": rps, "p50_ms": p50, "cpu_cores": cpu / wall, "ok": not bad,
                    "errors": err.strip()[-300:] if bad else ""}
    return {"rps": float("nan"), "p50_ms": float("nan"), "cpu_cores": float("nan"), "ok": False,
            "errors": (out + err)[-300:]}


def ringraft_bench(port, op, c, p, n):
    cmd = [RBENCH, "-h", "127.0.0.1", "-p", str(port), "-t", op, "--keys", str(KEYS),
           "-d", str(VALUE), "-c", str(c), "-P", str(p), "-n", str(n), "-T", "1", "--json",
           "--quiet"]
    rc, out, wall, cpu, err = run_measured(cmd)
    try:
        r = json.loads(out)
    except ValueError:
        return {"rps": float("nan"), "p50_ms": float("nan"), "cpu_cores": float("nan"),
                "ok": False, "errors": (out + err)[-300:]}
    ok = rc == 0 and r["errors_total"] == 0
    # Compared: the p50 under redis-benchmark's latency definition (a pipelined batch's first
    # reply, for all of it); shown beside it: ringraft-bench's own (each request's reply).
    return {"rps": r["rps"], "p50_ms": r["latency_first_reply_us"]["p50"] / 1000.0,
            "p50_own_ms": r["latency_us"]["all"]["p50"] / 1000.0, "cpu_cores": cpu / wall,
            "ok": ok, "errors": "" if ok else json.dumps(r["errors"])}


TOOLS = {"redis-benchmark": redis_benchmark, "ringraft-bench": ringraft_bench}


# ---- targets -----------------------------------------------------------------------------------

class RedisTarget:
    name = "redis"

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ringraft-agreement-redis-")
        self.port = harness.free_port_ranges([1])[0]
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--save", "", "--appendonly", "no", "--daemonize", "no",
             "--logfile", os.path.join(self.dir, "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in harness.deadline_loop(10, 0.05):
            try:
                with harness.Resp(self.port, timeout=1) as r:
                    if r.call("PING") == "PONG":
                        pin_process(self.proc.pid)
                        return
            except (OSError, harness.ConnectionClosed):
                pass
        raise SystemExit("agreement: redis-server did not answer PING")

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class RingraftTarget:
    name = "ringraft"

    def __init__(self):
        self.cluster = harness.Cluster(3, groups=64, loglevel="warning")
        self.cluster.start(timeout=60)
        # Leader balance moves leaderships for a while after start: wait for it (bounded).
        for _ in harness.deadline_loop(30, 0.5):
            led = self.cluster.leaders_by_node()
            if sum(led.values()) == 64 and max(led.values()) <= 22:
                break
        self.port = self.cluster.node(1).port
        for x in self.cluster.nodes:
            pin_process(x.pid)

    def alive(self):
        return all(x.running() for x in self.cluster.nodes)

    def stop(self):
        if not self.alive():
            progress("ringraft: a node exited: %s" % [(x.id, x.proc.returncode)
                                                       for x in self.cluster.nodes])
        self.cluster.stop_all()
        self.cluster.__exit__(None, None, None)


# ---- the comparison ----------------------------------------------------------------------------

def med(xs):
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else float("nan")


def compare(make_target, rounds, scale, runs):
    """Runs every configuration with both tools, rounds times. A server that dies during a
    pair (seen after it) is replaced by a fresh one and the pair run again (twice at most):
    a pair only counts when both runs met the same live server."""
    target = make_target()
    restarts = 0
    try:
        for rnd in range(rounds):
            order = list(TOOLS) if rnd % 2 == 0 else list(reversed(TOOLS))
            for op, c, p, n_rr, n_redis in CONFIGS:
                n = max(1, int((n_rr if target.name == "ringraft" else n_redis) * scale))
                while True:
                    pair = []
                    for tool in order:
                        r = TOOLS[tool](target.port, op, c, p, n)
                        r.update(target=target.name, tool=tool, op=op, c=c, p=p, n=n,
                                 round=rnd + 1)
                        pair.append(r)
                        progress("%s round %d %s -c %d -P %d %s: %.0f req/s p50 %.3f ms "
                                 "cpu %.2f%s" % (target.name, rnd + 1, op, c, p, tool,
                                                 r["rps"], r["p50_ms"], r["cpu_cores"],
                                                 "" if r["ok"] else " ERRORS " + r["errors"]))
                    if target.alive() or restarts >= 2:
                        runs.extend(pair)
                        break
                    restarts += 1
                    progress("%s died during the pair: starting a fresh one" % target.name)
                    target.stop()
                    target = make_target()
                    if op == "get":  # the new server has no keys: write them again
                        TOOLS["ringraft-bench"](target.port, "set", 50, 16, n)
    finally:
        target.stop()


def paired(rb, rrb, key):
    """Median over rounds of ringraft-bench / redis-benchmark within the same round: the two
    ran back to back, so load that changes from round to round cancels out."""
    by_round = {r["round"]: r[key] for r in rb}
    return med([r[key] / by_round[r["round"]] for r in rrb if r["round"] in by_round])


def table(runs, targets):
    lines = ["| target | workload | redis-benchmark req/s | ringraft-bench req/s | ratio "
             "(paired) | redis-benchmark p50 ms | ringraft-bench p50 ms | ratio (paired) "
             "| ringraft-bench own p50 ms | CPU cores rb / rrb | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    ok_by_target = {}
    for t in targets:
        ok_by_target[t] = True
        for op, c, p, _, _ in CONFIGS:
            sel = {tool: [r for r in runs if r["target"] == t and r["op"] == op and r["c"] == c
                          and r["p"] == p and r["tool"] == tool] for tool in TOOLS}
            rb, rrb = sel["redis-benchmark"], sel["ringraft-bench"]
            if not rb or not rrb:
                continue
            m = {k: (med([r[k] for r in rb]), med([r[k] for r in rrb]))
                 for k in ("rps", "p50_ms", "cpu_cores")}
            rr, rr_paired = m["rps"][1] / m["rps"][0], paired(rb, rrb, "rps")
            rp, rp_paired = m["p50_ms"][1] / m["p50_ms"][0], paired(rb, rrb, "p50_ms")
            errors = not all(r["ok"] for r in rb + rrb)
            ok = abs(rr_paired - 1) <= TOLERANCE and abs(rp_paired - 1) <= TOLERANCE \
                and not errors
            ok_by_target[t] = ok_by_target[t] and ok

            def rng(rs, k, fmt="%.0f"):
                return (fmt + "-" + fmt) % (min(r[k] for r in rs), max(r[k] for r in rs))
            lines.append("| %s | %s -c %d -P %d | %.0f (%s) | %.0f (%s) | %.2f (%.2f) "
                         "| %.3f | %.3f | %.2f (%.2f) | %.3f | %.2f / %.2f | %s |"
                         % (t, op.upper(), c, p, m["rps"][0], rng(rb, "rps"), m["rps"][1],
                            rng(rrb, "rps"), rr, rr_paired, m["p50_ms"][0], m["p50_ms"][1], rp,
                            rp_paired, med([r["p50_own_ms"] for r in rrb]), m["cpu_cores"][0],
                            m["cpu_cores"][1],
                            "agree" if ok else ("**errors**" if errors else "**disagree**")))
    return lines, ok_by_target


def main():
    global GEN_PREFIX, SERVER_CPUS, RBENCH
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--targets", default="ringraft,redis")
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies every -n")
    ap.add_argument("--no-pin", action="store_true",
                    help="do not put servers on CPU 0 and generators on CPU 1")
    ap.add_argument("--bench", default=RBENCH, help="the ringraft-bench binary")
    ap.add_argument("--smoke", action="store_true",
                    help="check the tool end to end (exit 0 when every run completed without "
                         "errors), not the verdict: for make test, with --rounds 1 --scale 0.05")
    args = ap.parse_args()
    RBENCH = os.path.abspath(args.bench)
    if not args.no_pin and len(os.sched_getaffinity(0)) >= 2 and shutil.which("taskset"):
        cpus = sorted(os.sched_getaffinity(0))
        SERVER_CPUS = {cpus[0]}
        GEN_PREFIX = ["taskset", "-c", str(cpus[1])]
    for tool in ("redis-server", "redis-benchmark"):
        if shutil.which(tool) is None:
            raise SystemExit("agreement: %s not found (apt-get install redis-server redis-tools)"
                             % tool)
    if not os.access(RBENCH, os.X_OK) or not os.access(os.environ["RINGRAFTD"], os.X_OK):
        raise SystemExit("agreement: build first (make)")
    os.makedirs(OUT, exist_ok=True)
    signal.signal(signal.SIGINT, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    runs = []
    targets = [t for t in args.targets.split(",") if t]
    for name in targets:
        progress("starting %s" % name)
        compare(RingraftTarget if name == "ringraft" else RedisTarget, args.rounds, args.scale,
                runs)
        progress("stopped %s" % name)
    lines, ok_by_target = table(runs, targets)
    head = ["ringraft-bench vs redis-benchmark, %d rounds, medians (range), -r/--keys %d, "
            "-d %d, one thread each, %s; %s"
            % (args.rounds, KEYS, VALUE, "servers on CPU %s, generators on CPU %s"
               % (min(SERVER_CPUS), GEN_PREFIX[-1]) if SERVER_CPUS else "not pinned",
               time.strftime("%F %T"))]
    # The criterion is agreement against the ringraft cluster. Against redis-server, answering
    # in tens of microseconds, the generators' own per-request cost is a visible share of
    # each round trip (docs/benchmarks.md), so those lines are a reference, not the verdict.
    verdicts = []
    for t in targets:
        verdicts.append("verdict against %s%s: %s (tolerance %.0f%% on the paired ratios of "
                        "throughput and p50; p50 compared under redis-benchmark's definition)"
                        % (t, "" if t == "ringraft" else " (reference)",
                           "AGREE" if ok_by_target[t] else "DISAGREE", TOLERANCE * 100))
    ok = ok_by_target.get("ringraft", all(ok_by_target.values()))
    if args.smoke:
        ok = bool(runs) and all(r["ok"] for r in runs)
        verdicts.append("smoke: %d runs, %s" % (len(runs), "all completed without errors"
                                                 if ok else "FAILED (errors or no result)"))
    text = "\n".join(head + [""] + lines + [""] + verdicts) + "\n"
    print(text)
    with open(os.path.join(OUT, "results.md"), "w") as f:
        f.write(text)
    with open(os.path.join(OUT, "runs.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["target", "round", "tool", "op", "c", "p", "n", "rps",
                                          "p50_ms", "p50_own_ms", "cpu_cores", "ok", "errors"],
                           restval="")
        w.writeheader()
        for r in runs:
            w.writerow(r)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
