#!/usr/bin/env python3
"""batching: the strategy lab (`make bench`, `make bench-full`; docs/benchmarks.md).

For each combination of a disk strategy (disk-batching: none, fixed:N, linger:USEC,
adaptive; in the full matrix also adaptive with two flushes in flight) and a network
strategy (net-batching: none, adaptive), starts a fresh local 3-node cluster (release
ringraftd, 64 groups, 1 worker per node) and runs the same workload at several load points
with ringraft-bench (--cluster: each request straight to its group's leader): open loop at
several offered rates, and closed loop at a few concurrencies. Around each run it reads
INFO batching from every node and reports the strategies' own figures over the measured
window: flushes (fsyncs) per second, records and bytes per flush (mean and distribution),
mean flush (write + fdatasync) time, mean queueing delay of a WAL unit before its flush,
peer frames per second and frames per send batch.

Rounds are interleaved: every round runs every strategy once (a fresh cluster each time),
in an order rotated from round to round, so load from other work on the machine spreads
over all strategies; the table gives medians over the rounds.

Output in OUT (default build/bench-batching): runs.csv (every run), results.csv (medians),
results.md (the table, the machine, the model's prediction beside the measured batch
size), plots/*.svg and *.png (gnuplot): throughput against p99, latency CDF at a fixed
load, batch size against offered load; logs/ the nodes' logs.

Usage: batching.py [--full | --smoke] [--rounds N] [--seconds S] [--warmup S] [--out DIR]
                   [--bin RINGRAFTD] [--bench RINGRAFT-BENCH] [--port P]
Python 3 standard library; gnuplot for the plots (tools/install-deps.sh installs it).
"""

import argparse
import csv
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Profiles: disk strategies (label, ringraftd flags), network strategies, load points.
# A load point: (label, rate (0 = closed loop), clients, pipeline).
PROFILES = {
    "default": {
        "disk": [("none", ["--disk-batching", "none"]),
                 ("fixed:8", ["--disk-batching", "fixed:8"]),
                 ("linger:500", ["--disk-batching", "linger:500"]),
                 ("adaptive", ["--disk-batching", "adaptive"])],
        "net": ["none", "adaptive"],
        "loads": [("open 1000/s", 1000, 16, 8), ("open 4000/s", 4000, 16, 8),
                  ("open 12000/s", 12000, 32, 8), ("closed c1", 0, 1, 1),
                  ("closed c32 P8", 0, 32, 8)],
        "cdf_load": "open 4000/s",
        "rounds": 3, "warmup": 0.5, "seconds": 2.0,
    },
    "full": {
        "disk": [("none", ["--disk-batching", "none"]),
                 ("fixed:4", ["--disk-batching", "fixed:4"]),
                 ("fixed:16", ["--disk-batching", "fixed:16"]),
                 ("fixed:64", ["--disk-batching", "fixed:64"]),
                 ("linger:100", ["--disk-batching", "linger:100"]),
                 ("linger:500", ["--disk-batching", "linger:500"]),
                 ("linger:2000", ["--disk-batching", "linger:2000"]),
                 ("adaptive", ["--disk-batching", "adaptive"]),
                 ("adaptive/2", ["--disk-batching", "adaptive", "--disk-flushes-in-flight", "2"])],
        "net": ["none", "adaptive"],
        "loads": [("open 500/s", 500, 16, 8), ("open 2000/s", 2000, 16, 8),
                  ("open 5000/s", 5000, 16, 8), ("open 10000/s", 10000, 32, 8),
                  ("open 20000/s", 20000, 64, 8), ("open 40000/s", 40000, 64, 16),
                  ("closed c1", 0, 1, 1), ("closed c16", 0, 16, 1),
                  ("closed c64 P8", 0, 64, 8)],
        "cdf_load": "open 5000/s",
        "rounds": 3, "warmup": 1.0, "seconds": 3.0,
    },
    "smoke": {
        "disk": [("none", ["--disk-batching", "none"]),
                 ("adaptive", ["--disk-batching", "adaptive"])],
        "net": ["adaptive"],
        "loads": [("open 500/s", 500, 4, 4), ("closed c4", 0, 4, 1)],
        "cdf_load": "open 500/s",
        "rounds": 1, "warmup": 0.2, "seconds": 0.6,
    },
}

SIZE_BOUNDS = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768,
               1024, 1536, 2048, 3072, 4096]


def log(msg):
    benchlib.log("batching", msg)


# ---- INFO batching: totals, and their differences over a window --------------------------

def kv_list(text):
    return {k: int(v) for k, v in (x.split("=") for x in text.split(","))}


def batching_totals(port):
    """The counters of one node's INFO batching that the lab subtracts."""
    b = benchlib.info(port, "batching")
    out = {k: int(b[k]) for k in ("wal_flushes", "wal_records", "wal_bytes",
                                  "peer_frames_sent", "peer_frame_bytes_sent", "peer_sends")}
    f, q = kv_list(b["wal_flush_usec"]), kv_list(b["wal_queue_usec"])
    out["flush_count"], out["flush_us"] = f["count"], f["sum"]
    out["queue_count"], out["queue_us"] = q["count"], q["sum"]
    for name in ("wal_flush_records", "peer_send_frames"):
        h = kv_list(b[name])
        out[name] = [h["count"], h["sum"]] + [h["le_%d" % x] for x in SIZE_BOUNDS]
    return out


def cluster_totals(cluster):
    """INFO batching of every node, summed, and the time it was read."""
    total = None
    for i in range(1, cluster.n + 1):
        t = batching_totals(cluster.port(i))
        if total is None:
            total = t
            continue
        for k, v in t.items():
            total[k] = [a + b for a, b in zip(total[k], v)] if isinstance(v, list) else \
                total[k] + v
    return total, time.monotonic()


def size_quantile(le_delta, count, q):
    """The smallest bound at or below which a fraction q of the sizes lie (from the
    cumulative counts; exact up to 4, then within the bounds' spacing)."""
    if count <= 0:
        return 0
    for bound, c in zip(SIZE_BOUNDS, le_delta):
        if c >= q * count:
            return bound
    return SIZE_BOUNDS[-1] * 2  # beyond the last bound


def window_figures(before, after, nodes):
    (a, ta), (b, tb) = before, after
    d = {k: ([y - x for x, y in zip(a[k], b[k])] if isinstance(a[k], list) else b[k] - a[k])
         for k in a}
    dt = max(tb - ta, 1e-9)
    fl = d["wal_flushes"]
    rec = d["wal_flush_records"]
    frm = d["peer_send_frames"]
    return {
        "window_s": dt,
        "fsyncs_per_s": fl / dt,  # all nodes (one disk)
        "fsyncs_per_s_node": fl / dt / nodes,
        "records_per_s_node": d["wal_records"] / dt / nodes,
        "records_per_flush": d["wal_records"] / fl if fl else 0.0,
        "bytes_per_flush": d["wal_bytes"] / fl if fl else 0.0,
        "batch_p50": size_quantile(rec[2:], rec[0], 0.5),
        "batch_p90": size_quantile(rec[2:], rec[0], 0.9),
        "batch_p99": size_quantile(rec[2:], rec[0], 0.99),
        "flush_ms": d["flush_us"] / d["flush_count"] / 1000 if d["flush_count"] else 0.0,
        "queue_ms": d["queue_us"] / d["queue_count"] / 1000 if d["queue_count"] else 0.0,
        "frames_per_s": d["peer_frames_sent"] / dt,
        "frames_per_send": frm[1] / frm[0] if frm[0] else 0.0,
        "send_batch_p99": size_quantile(frm[2:], frm[0], 0.99),
        "peer_sends_per_s": d["peer_sends"] / dt,
    }


def model_batch(disk, rec_per_s, flush_s):
    """Records per flush the model predicts for one node's WAL receiving rec_per_s records a
    second with flushes taking flush_s (docs/benchmarks.md, "The model"). One flush is in
    flight at a time (two for adaptive/2); a cycle is the hold before a flush plus the flush,
    and a busy WAL flushes what arrived during the cycle: batch = rate x cycle, at least 1."""
    if disk == "none":
        return 1.0
    if disk.startswith("linger:"):
        hold = int(disk.split(":")[1]) / 1e6
        return max(1.0, rec_per_s * (hold + flush_s))
    if disk.startswith("fixed:"):
        n = int(disk.split(":")[1])
        # Flush at n records or after 1 ms (the default max delay), whichever comes first;
        # what arrives during the flush joins the next batch.
        fill = n / rec_per_s if rec_per_s > 0 else 1e-3
        return max(1.0, rec_per_s * (min(fill, 1e-3) + flush_s), min(n, rec_per_s * flush_s))
    if disk == "adaptive/2":
        return max(1.0, rec_per_s * flush_s / 2)
    return max(1.0, rec_per_s * flush_s)  # adaptive


# ---- histograms of ringraft-bench (core/base/histogram.h's text form) --------------------

HIST_SUB_BITS = 7
HIST_SUB_COUNT = 1 << HIST_SUB_BITS


def bucket_high(b):
    if b < HIST_SUB_COUNT:
        return b
    shift = b // HIST_SUB_COUNT - 1
    sub = b % HIST_SUB_COUNT
    low = (HIST_SUB_COUNT + sub) << shift
    return low + (1 << shift) - 1


def hist_decode(text):
    """{bucket: count} of a 'hist1 COUNT SUM MIN MAX N D1 C1 ...' line."""
    f = text.split()
    assert f[0] == "hist1", text[:20]
    n = int(f[5])
    out, b = {}, 0
    for i in range(n):
        b += int(f[6 + 2 * i])
        out[b] = out.get(b, 0) + int(f[7 + 2 * i])
    return out


def cdf_points(buckets):
    """[(latency_ms, fraction at or below)] of merged buckets."""
    total = sum(buckets.values())
    pts, acc = [], 0
    for b in sorted(buckets):
        acc += buckets[b]
        # A point per 0.1% of the requests is enough for the eye (and keeps the SVG small).
        if not pts or acc / total - pts[-1][1] >= 0.001 or acc == total:
            pts.append((bucket_high(b) / 1e6, acc / total))
    return pts


# ---- one run ------------------------------------------------------------------------------

def run_load(args, cluster, load, warmup, seconds, timeout):
    label, rate, clients, pipeline = load
    cmd = [args.bench, "-p", str(cluster.port(1)), "--cluster", "-c", str(clients),
           "-P", str(pipeline), "-t", "set", "-d", "16", "--keys", "100000",
           "--warmup", str(warmup), "--duration", str(seconds), "--json", "--quiet",
           "--timeout", "5"]
    if rate:
        cmd += ["--rate", str(rate)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    benchlib.LIVE.append(p)
    # The strategies' figures cover the measured window: INFO at its start and at its end
    # (the counters are published every 100 ms, so both readings lag by up to that much).
    t_start = time.monotonic()
    time.sleep(warmup)
    before = cluster_totals(cluster)
    time.sleep(max(0.0, t_start + warmup + seconds - time.monotonic()))
    after = cluster_totals(cluster)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise RuntimeError("ringraft-bench hung (%s)" % " ".join(cmd))
    finally:
        if p in benchlib.LIVE:
            benchlib.LIVE.remove(p)
    if p.returncode != 0:
        raise RuntimeError("ringraft-bench exit %d: %s" % (p.returncode, err.strip()[-400:]))
    j = json.loads(out)
    lat = j["latency_us"]["all"]
    row = {
        "rps": j["rps"], "sent": j["sent"], "replies": j["replies"],
        "p50_ms": lat["p50"] / 1000, "p90_ms": lat["p90"] / 1000, "p99_ms": lat["p99"] / 1000,
        "p999_ms": lat["p99.9"] / 1000, "max_ms": lat["max"] / 1000,
        "errors": j["errors_total"], "unsent": j.get("unsent", 0),
        "late_p99_ms": j["lateness_us"]["p99"] / 1000 if j.get("lateness_us") else 0.0,
        "gen_cores": j["cpu"]["cores"],
    }
    if j["replies"] == 0:
        # Nothing measured was answered (a saturated cluster: the open loop's pipeline stayed
        # full of earlier requests): no latency to report, rather than zeros.
        for k in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"):
            row[k] = None
    row.update(window_figures(before, after, cluster.n))
    return row, j["histogram"]


# ---- the machine ---------------------------------------------------------------------------

def machine(data_dir):
    def sh(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    fs = sh(["findmnt", "-n", "-o", "SOURCE,FSTYPE,OPTIONS", "-T", data_dir])
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    return {"cpus": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
            "fs": fs, "loadavg_start": load}


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# ---- plots -----------------------------------------------------------------------------------

def gnuplot(script, out_dir):
    if shutil.which("gnuplot") is None:
        log("gnuplot not found (tools/install-deps.sh installs gnuplot-nox): no plots")
        return False
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True, cwd=out_dir)
    if r.returncode != 0:
        raise SystemExit("gnuplot failed: %s" % r.stderr[-2000:])
    return True


def plot_all(out, strategies, open_loads, medians, cdf_load, cdfs):
    pdir = os.path.join(out, "plots")
    os.makedirs(pdir, exist_ok=True)
    data = os.path.join(pdir, "data")
    os.makedirs(data, exist_ok=True)
    names = []
    for k, s in enumerate(strategies):
        fn = "s%d.dat" % k
        names.append((fn, s))
        with open(os.path.join(data, fn), "w") as f:
            f.write("# offered rps p99_ms records_per_flush frames_per_send p50_ms\n")
            for load in open_loads:
                m = medians.get((s, load[0]))
                if m and m["rps"] > 0 and m["p99_ms"] is not None:
                    f.write("%d %.1f %.4f %.3f %.3f %.4f\n" % (
                        load[1], m["rps"], m["p99_ms"], m["records_per_flush"],
                        m["frames_per_send"], m["p50_ms"]))
        if s in cdfs:
            with open(os.path.join(data, "cdf%d.dat" % k), "w") as f:
                for x, y in cdfs[s]:
                    f.write("%.5f %.6f\n" % (x, y))
    plots = {
        "throughput-p99": (
            "set title 'Throughput against p99 latency (open loop, SET -d 16, median of rounds)'\n"
            "set xlabel 'achieved throughput (req/s)'\nset ylabel 'p99 latency (ms)'\n"
            "set logscale y\nset key outside right\nset grid\n",
            ["'data/%s' using 2:3 with linespoints title '%s'" % (fn, s) for fn, s in names]),
        "latency-cdf": (
            "set title 'Latency CDF at %s (all rounds merged)'\n" % cdf_load +
            "set xlabel 'latency (ms)'\nset ylabel 'fraction of requests at or below'\n"
            "set logscale x\nset yrange [0:1]\nset key outside right\nset grid\n",
            ["'data/cdf%d.dat' using 1:2 with lines title '%s'" % (k, s)
             for k, (fn, s) in enumerate(names) if s in cdfs]),
        "batch-size": (
            "set title 'WAL records per flush against offered load (mean, median of rounds)'\n"
            "set xlabel 'offered load (req/s)'\nset ylabel 'records per flush'\n"
            "set logscale xy\nset key outside right\nset grid\n",
            ["'data/%s' using 1:4 with linespoints title '%s'" % (fn, s) for fn, s in names]),
    }
    files = []
    for name, (setup, series) in plots.items():
        if not series:
            continue
        body = setup + "plot " + ", \\\n     ".join(series) + "\n"
        script = ("set terminal svg size 960,560 dynamic font 'Helvetica,12'\n"
                  "set output '%s.svg'\n%s"
                  "set terminal pngcairo size 960,560 font 'Helvetica,10'\n"
                  "set output '%s.png'\nreplot\n") % (name, body, name)
        if not gnuplot(script, pdir):
            return []
        files += [os.path.join(pdir, name + ".svg"), os.path.join(pdir, name + ".png")]
    return files


# ---- the table -------------------------------------------------------------------------------

COLUMNS = [("strategy", "disk / net"), ("load", "load"), ("rps", "req/s"),
           ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"), ("p999_ms", "p99.9 ms"),
           ("fsyncs_per_s", "fsyncs/s"), ("records_per_flush", "rec/flush"),
           ("model_batch", "model"), ("batch_p50", "batch p50"), ("batch_p99", "batch p99"),
           ("bytes_per_flush", "bytes/flush"), ("flush_ms", "flush ms"),
           ("queue_ms", "queue ms"), ("frames_per_s", "frames/s"),
           ("frames_per_send", "frames/send"), ("errors", "errors"), ("unsent", "unsent"),
           ("late_p99_ms", "late p99 ms")]


def fmt(v):
    if v is None:
        return "n/a"
    if isinstance(v, str):
        return v
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return "%.0f" % v
    if abs(v) >= 10:
        return "%.1f" % v
    if abs(v) >= 1:
        return "%.2f" % v
    return "%.3f" % v


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--full", action="store_true", help="the whole matrix")
    g.add_argument("--smoke", action="store_true", help="seconds: a test of the lab itself")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--seconds", type=float, help="measured seconds per run")
    ap.add_argument("--warmup", type=float, help="warm-up seconds per run")
    ap.add_argument("--out", default=os.path.join(REPO, "build", "bench-batching"))
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "release", "ringraftd"))
    ap.add_argument("--bench", default=os.path.join(REPO, "build", "release", "bench",
                                                   "ringraft-bench"))
    ap.add_argument("--port", type=int, default=7800, help="first port tried")
    args = ap.parse_args()
    prof = PROFILES["full" if args.full else "smoke" if args.smoke else "default"]
    rounds = args.rounds or prof["rounds"]
    seconds = args.seconds or prof["seconds"]
    warmup = prof["warmup"] if args.warmup is None else args.warmup
    out = os.path.abspath(args.out)
    shutil.rmtree(out, ignore_errors=True)
    logs, data_dir = os.path.join(out, "logs"), os.path.join(out, "data")
    os.makedirs(logs)
    os.makedirs(data_dir)
    for b in (args.bin, args.bench):
        if not os.access(b, os.X_OK):
            raise SystemExit("%s is not built (make FLAVOUR=release)" % b)

    strategies = [(d, dflags, n) for d, dflags in prof["disk"] for n in prof["net"]]
    loads = prof["loads"]
    mach = machine(data_dir)
    base = benchlib.free_block(args.port, 200)
    cells_total = rounds * len(strategies) * len(loads)
    per_run = warmup + seconds + 0.6
    start_cost = 3.0  # seconds to start a cluster and wait for leaders (refined as we go)
    log("%d strategies x %d load points x %d rounds = %d runs of %.1f s; ports from %d; "
        "output in %s" % (len(strategies), len(loads), rounds, cells_total, warmup + seconds,
                          base, out))
    t0 = time.monotonic()
    done, starts, start_time = 0, 0, 0.0
    runs, hists, problems = [], {}, []
    for rnd in range(rounds):
        k = rnd % len(strategies)
        order = strategies[k:] + strategies[:k]
        for disk, dflags, net in order:
            name = "%s / %s" % (disk, net)
            tag = "%s-%s-r%d" % (disk.replace(":", "").replace("/", "x"), net, rnd + 1)
            ts = time.monotonic()
            cluster = benchlib.RingraftCluster(
                args.bin, base, data_dir, logs, nodes=3, groups=64, workers=1,
                extra=dflags + ["--net-batching", net], tag=tag)
            starts += 1
            start_time += time.monotonic() - ts
            start_cost = start_time / starts
            try:
                for load in loads:
                    left_runs = cells_total - done
                    left_starts = rounds * len(strategies) - starts
                    eta = left_runs * per_run + max(left_starts, 0) * start_cost
                    sys.stderr.write(
                        "\r[batching] run %d/%d  round %d/%d  %-22s %-14s  elapsed %s  "
                        "about %s left   " % (done + 1, cells_total, rnd + 1, rounds, name,
                                              load[0], hms(time.monotonic() - t0), hms(eta)))
                    sys.stderr.flush()
                    tr = time.monotonic()
                    try:
                        row, hist = run_load(args, cluster, load, warmup, seconds,
                                             timeout=warmup + seconds + 30)
                    except (RuntimeError, OSError, ValueError, KeyError) as e:
                        problems.append("%s, %s, round %d: %s" % (name, load[0], rnd + 1, e))
                        row, hist = None, None
                    done += 1
                    # Smooth the estimate of a run's cost with what runs really took.
                    per_run = 0.7 * per_run + 0.3 * (time.monotonic() - tr)
                    if row is None:
                        continue
                    row.update({"strategy": name, "disk": disk, "net": net, "load": load[0],
                                "offered": load[1], "clients": load[2], "pipeline": load[3],
                                "round": rnd + 1})
                    row["model_batch"] = model_batch(disk, row["records_per_s_node"],
                                                     row["flush_ms"] / 1000)
                    if row["errors"]:
                        problems.append("%s, %s, round %d: %d errors" % (
                            name, load[0], rnd + 1, row["errors"]))
                    runs.append(row)
                    if load[0] == prof["cdf_load"]:
                        for b, c in hist_decode(hist).items():
                            h = hists.setdefault(name, {})
                            h[b] = h.get(b, 0) + c
            finally:
                if not cluster.alive():
                    problems.append("%s, round %d: a node exited (logs: %s)" % (
                        name, rnd + 1, ", ".join(cluster.logs)))
                status = cluster.stop()
                if any(s not in (0, None) for s in status):
                    problems.append("%s, round %d: node exit statuses %s" % (
                        name, rnd + 1, status))
                shutil.rmtree(cluster.dir, ignore_errors=True)
    sys.stderr.write("\n")
    elapsed = time.monotonic() - t0
    mach["loadavg_end"] = loadavg()

    keys = ["strategy", "disk", "net", "load", "offered", "clients", "pipeline", "round",
            "rps", "sent", "replies", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms",
            "errors", "unsent", "late_p99_ms", "gen_cores", "window_s", "fsyncs_per_s",
            "fsyncs_per_s_node", "records_per_s_node", "records_per_flush", "model_batch",
            "bytes_per_flush", "batch_p50", "batch_p90", "batch_p99", "flush_ms", "queue_ms",
            "frames_per_s", "frames_per_send", "send_batch_p99", "peer_sends_per_s"]
    with open(os.path.join(out, "runs.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in runs:
            w.writerow({k: r[k] for k in keys})

    medians = {}
    numeric = [k for k in keys[8:]]
    for disk, _, net in strategies:
        name = "%s / %s" % (disk, net)
        for load in loads:
            rs = [r for r in runs if r["strategy"] == name and r["load"] == load[0]]
            if not rs:
                continue
            m = {}
            for k in numeric:
                vals = [r[k] for r in rs if r[k] is not None]
                m[k] = statistics.median(vals) if vals else None
            m.update({"strategy": name, "disk": disk, "net": net, "load": load[0],
                      "offered": load[1], "clients": load[2], "pipeline": load[3],
                      "rounds": len(rs)})
            medians[(name, load[0])] = m
    mkeys = ["strategy", "disk", "net", "load", "offered", "clients", "pipeline", "rounds"] + \
        numeric
    with open(os.path.join(out, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=mkeys)
        w.writeheader()
        for m in medians.values():
            w.writerow({k: m[k] for k in mkeys})

    names = ["%s / %s" % (d, n) for d, _, n in strategies]
    open_loads = [x for x in loads if x[1] > 0]
    cdfs = {s: cdf_points(h) for s, h in hists.items()}
    plots = plot_all(out, names, open_loads, medians, prof["cdf_load"], cdfs)

    lines = ["# Batching strategy lab: %s profile" % (
        "full" if args.full else "smoke" if args.smoke else "default"), ""]
    lines.append("%s; ringraftd %s; %d rounds (medians), %.1f s measured per run after "
                 "%.1f s warm-up; SET -d 16 over 100 000 keys, ringraft-bench --cluster; "
                 "3 nodes, 64 groups, 1 worker each; took %s." % (
                     time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), git_rev(), rounds,
                     seconds, warmup, hms(elapsed)))
    lines.append("")
    lines.append("Machine: %d CPUs (%s), kernel %s, data on %s; load average %s at the "
                 "start, %s at the end." % (mach["cpus"], mach["cpu_model"], mach["kernel"],
                                            mach["fs"] or "?", mach["loadavg_start"],
                                            mach["loadavg_end"]))
    lines.append("")
    lines.append("Load points: " + "; ".join(
        "%s = %s, -c %d -P %d" % (x[0], ("--rate %d" % x[1]) if x[1] else "closed loop",
                                  x[2], x[3]) for x in loads) + ".")
    lines.append("")
    lines.append("| " + " | ".join(h for _, h in COLUMNS) + " |")
    lines.append("|" + "---|" * len(COLUMNS))
    for load in loads:
        for s in names:
            m = medians.get((s, load[0]))
            if m:
                lines.append("| " + " | ".join(fmt(m[k]) for k, _ in COLUMNS) + " |")
    lines.append("")
    lines.append("fsyncs/s: WAL flushes per second of the three nodes together (one disk); "
                 "rec/flush: records per flush (mean), model: what rate x cycle predicts "
                 "(docs/benchmarks.md); batch p50/p99: from the distribution's bounds; "
                 "flush ms: mean write + fdatasync; queue ms: mean wait of a WAL unit before "
                 "its flush; frames/send: peer frames per send batch (mean); unsent: requests due in "
                 "the window that never left because every pipeline slot was taken (the "
                 "offered load was not delivered: read req/s); late p99: the generator's own "
                 "lateness (open loop); n/a: no measured request was answered.")
    lines.append("")
    if plots:
        lines.append("Plots: " + ", ".join(os.path.relpath(p, out) for p in plots))
    lines.append("")
    lines.append("Problems seen: " + ("none" if not problems else ""))
    for p in problems:
        lines.append("- " + p)
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(text)
    print(text)
    print("table: %s\nCSV: %s, %s\nplots: %s" % (
        os.path.join(out, "results.md"), os.path.join(out, "results.csv"),
        os.path.join(out, "runs.csv"), os.path.join(out, "plots") if plots else "(none)"))
    if not runs:
        raise SystemExit("no run completed")


def hms(s):
    s = int(s)
    return "%dm%02ds" % (s // 60, s % 60)


def git_rev():
    try:
        return subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=5).stdout.strip() or "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


if __name__ == "__main__":
    main()
