#!/usr/bin/env python3
"""node-memory: where an idle node's memory goes, per allocation site.

Starts a fresh local 3-node ringraftd cluster of G groups and W workers with
bench/live_bytes.so preloaded, waits for every group to have a leader and for the cluster to
settle (SETTLE seconds after the leaders, so that leader balance and heap trims are done),
then has each node write its live heap bytes per allocation site, its mallinfo2 and VmRSS.
Prints, per node, the sites holding the most bytes (function and line from addr2line), the
heap's free bytes and RSS; with two G values (the default, 64 and 4096) it prints the
difference per extra group, site by site, which is what the node issue's target measures.
After settling it also measures each node's CPU over --cpu-seconds and its VmRSS from /proc
(the target's own figures: < 1% of a core, <= 2 KiB per group per node); --rss-only runs
without the preloaded library and prints only those.

Usage: bench/node-memory.py [--groups 64,4096] [--workers 1] [--settle 40] [--top 25]
                            [--cpu-seconds 20] [--rss-only] [--port 7850]
                            [--bin build/release/ringraftd] [--out DIR]
"""

import argparse
import collections
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NODES = 3


def info(port, section):
    s = socket.create_connection(("127.0.0.1", port), timeout=2)
    try:
        s.sendall(b"*2\r\n$4\r\nINFO\r\n$%d\r\n%s\r\n" % (len(section), section.encode()))
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            if data.startswith(b"$"):
                n = int(data[1:data.index(b"\r\n")])
                if len(data) >= data.index(b"\r\n") + 2 + n + 2:
                    break
    finally:
        s.close()
    out = {}
    for line in data.decode(errors="replace").split("\r\n"):
        if ":" in line:
            k, v = line.split(":", 1)
            out[k] = v
    return out


def last_dump(path):
    with open(path) as f:
        lines = f.read().split("\n")
    dumps, cur = [], []
    for line in lines:
        if line == "end":
            dumps.append(cur)
            cur = []
        elif line:
            cur.append(line)
    return dumps[-1]


def parse_dump(path):
    """The last complete dump in path: ({(obj, off): (count, requested, usable)}, mallinfo,
    rss_kb)."""
    lines = last_dump(path)
    sites, mi, rss = {}, {}, 0
    for line in lines:
        p = line.split()
        if p[0] == "site":
            obj, off = p[2].rsplit("+", 1)
            key = (obj, int(off, 16))
            c, r, u = int(p[4]), int(p[6]), int(p[8])
            pk, na = (int(p[10]), int(p[12])) if len(p) > 12 else (0, 0)
            old = sites.get(key, (0, 0, 0, 0, 0))
            sites[key] = (old[0] + c, old[1] + r, old[2] + u, old[3] + pk, old[4] + na)
        elif p[0] == "mallinfo":
            mi = {p[i]: int(p[i + 1]) for i in range(1, len(p), 2)}
        elif p[0] == "vmrss_kb":
            rss = int(p[1])
    return sites, mi, rss


_names = {}


def name_of(obj, off):
    key = (obj, off)
    if key in _names:
        return _names[key]
    name = "%s+%#x" % (os.path.basename(obj), off)
    if os.path.exists(obj):
        try:
            out = subprocess.run(["addr2line", "-f", "-i", "-e", obj, "%#x" % (off - 1)],
                                 capture_output=True, text=True, timeout=10).stdout.split("\n")
            if out and out[0] != "??":
                loc = out[1].rsplit("/", 2)[-2:] if len(out) > 1 else ["?"]
                name = "%s (%s)" % (out[0], "/".join(loc))
        except (OSError, subprocess.TimeoutExpired):
            pass
    _names[key] = name
    return name


def parse_smaps(path):
    """[(kind, size_kb, rss_kb)] per mapping; kind names what it is."""
    maps, cur = [], None
    with open(path) as f:
        for line in f:
            p = line.split()
            if "-" in p[0] and len(p) >= 5 and ":" not in p[0]:
                name = " ".join(p[5:])
                lo, hi = (int(x, 16) for x in p[0].split("-"))
                cur = {"size": (hi - lo) // 1024, "name": name, "rss": 0, "nr": False}
                maps.append(cur)
            elif p[0] == "Rss:":
                cur["rss"] = int(p[1])
            elif p[0] == "VmFlags:":
                cur["nr"] = "nr" in p[1:]
    out = []
    for m in maps:
        name = m["name"]
        if name.startswith("/dev/zero"):
            kind = "live_bytes.so tables (not counted)"
        elif name == "" and m["nr"]:
            kind = "thread arena heaps (malloc)"
        elif name == "[heap]":
            kind = "main arena heap (malloc)"
        elif name == "":
            kind = "other anonymous (mmapped blocks, rings)"
        elif name.startswith("/"):
            kind = "file " + os.path.basename(name)
        else:
            kind = name
        out.append((kind, m["size"], m["rss"]))
    return out


def smaps_summary(path):
    agg = collections.defaultdict(lambda: [0, 0, 0])
    for kind, size, rss in parse_smaps(path):
        a = agg[kind]
        a[0] += 1
        a[1] += size
        a[2] += rss
    return agg


def parse_big(path):
    """{site name: [blocks, size, resident]} of the blocks >= 64 KiB in the last dump."""
    agg = collections.defaultdict(lambda: [0, 0, 0])
    for line in last_dump(path):
        p = line.split()
        if p[0] == "big":
            obj, off = p[2].rsplit("+", 1)
            a = agg[name_of(obj, int(off, 16))]
            a[0] += 1
            a[1] += int(p[4])
            a[2] += int(p[6])
    return agg


def by_name(sites):
    agg = collections.defaultdict(lambda: [0, 0, 0, 0, 0])
    for (obj, off), v in sites.items():
        a = agg[name_of(obj, off)]
        for k in range(5):
            a[k] += v[k]
    return agg


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_ticks(pid):
    """utime + stime of pid, in clock ticks (/proc/PID/stat fields 14 and 15)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def run_cluster(args, groups, out, proc):
    """Runs a cluster of `groups` groups; returns the leaders per node and fills proc[groups]
    with each node's CPU (% of one core over args.cpu_seconds after settling) and VmRSS (KiB,
    at the end of that window), both from /proc."""
    data = tempfile.mkdtemp(prefix="ringraft-mem.", dir=args.tmp)
    nodes = ",".join("%d=127.0.0.1:%d@%d" % (i, args.port + i, args.port + 100 + 20 * i)
                     for i in range(1, NODES + 1))
    procs = []
    env = dict(os.environ)
    if not args.rss_only:
        env["LD_PRELOAD"] = os.path.abspath(args.lib)
    try:
        for i in range(1, NODES + 1):
            env["LIVE_BYTES_FILE"] = os.path.join(out, "g%d-w%d-n%d.txt" % (groups, args.workers, i))
            if os.path.exists(env["LIVE_BYTES_FILE"]):
                os.unlink(env["LIVE_BYTES_FILE"])
            procs.append(subprocess.Popen(
                [args.bin, "--node-id", str(i), "--nodes", nodes, "--dir",
                 os.path.join(data, "n%d" % i), "--logfile", os.path.join(data, "n%d.log" % i),
                 "--workers", str(args.workers), "--groups", str(groups)] + args.extra,
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 300
        while True:
            try:
                if all(int(info(args.port + i, "raft").get("groups_with_leader", -1)) == groups
                       for i in range(1, NODES + 1)):
                    break
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError("cluster G=%d did not elect leaders" % groups)
            time.sleep(0.3)
        print("G=%d W=%d: leaders; settling %d s" % (groups, args.workers, args.settle),
              file=sys.stderr)
        t0 = time.monotonic()
        while time.monotonic() - t0 < args.settle:
            time.sleep(min(5, args.settle))
            print("  %3.0f s: VmRSS %s MiB" % (time.monotonic() - t0, "/".join(
                "%.1f" % (rss_kb(p.pid) / 1024) for p in procs)), file=sys.stderr)
        tck = os.sysconf("SC_CLK_TCK")
        c0, w0 = [cpu_ticks(p.pid) for p in procs], time.monotonic()
        time.sleep(args.cpu_seconds)
        c1, el = [cpu_ticks(p.pid) for p in procs], time.monotonic() - w0
        proc[groups] = [(100.0 * (b - a) / tck / el, rss_kb(p.pid))
                        for a, b, p in zip(c0, c1, procs)]
        print("G=%d W=%d: CPU over %.0f s %s %% of a core; VmRSS %s MiB" % (
            groups, args.workers, el, "/".join("%.2f" % c for c, _ in proc[groups]),
            "/".join("%.1f" % (r / 1024) for _, r in proc[groups])), file=sys.stderr)
        if args.rss_only:
            return "?"
        r = info(args.port + 1, "raft")
        led = "/".join(r.get("groups_led_by_node_%d" % i, "?") for i in range(1, NODES + 1))
        for i, p in enumerate(procs):
            with open("/proc/%d/smaps" % p.pid) as f:
                smaps = f.read()
            with open(os.path.join(out, "g%d-w%d-n%d.smaps" % (groups, args.workers, i + 1)),
                      "w") as f:
                f.write(smaps)
        sizes = []
        for i, p in enumerate(procs):
            path = os.path.join(out, "g%d-w%d-n%d.txt" % (groups, args.workers, i + 1))
            sizes.append(os.path.getsize(path) if os.path.exists(path) else 0)
            p.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + 60
        for i, p in enumerate(procs):
            path = os.path.join(out, "g%d-w%d-n%d.txt" % (groups, args.workers, i + 1))
            while time.monotonic() < deadline:
                if os.path.exists(path) and os.path.getsize(path) > sizes[i]:
                    with open(path) as f:
                        if f.read().endswith("\nend\n"):
                            break
                time.sleep(0.5)
        return led
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(data, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--groups", default="64,4096")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--settle", type=int, default=40)
    ap.add_argument("--cpu-seconds", type=int, default=20,
                    help="after settling: the window over which each node's CPU is measured")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--port", type=int, default=7850)
    ap.add_argument("--bin", default=os.path.join(REPO, "build/release/ringraftd"))
    ap.add_argument("--lib", default=os.path.join(REPO, "build/release/bench/live_bytes.so"))
    ap.add_argument("--out", default=os.path.join(REPO, "build/node-memory"))
    ap.add_argument("--tmp", default=None)
    ap.add_argument("--reuse", action="store_true", help="analyse the dumps in --out again")
    ap.add_argument("--rss-only", action="store_true",
                    help="no live_bytes.so: print VmRSS over time and the smaps breakdown only")
    ap.add_argument("extra", nargs="*", help="more ringraftd arguments (after --)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    gs = [int(x) for x in args.groups.split(",")]
    led, proc = {}, {}
    for g in gs:
        if not args.reuse:
            led[g] = run_cluster(args, g, args.out, proc)
    if proc:
        print("## from /proc: CPU (%% of one core over %d s) and VmRSS per node" % args.cpu_seconds)
        for g in gs:
            print("G=%d W=%d: CPU %s %%; VmRSS %s KiB" % (
                g, args.workers, " / ".join("%.2f" % c for c, _ in proc[g]),
                " / ".join("%d" % r for _, r in proc[g])))
        if len(gs) == 2:
            lo, hi = gs
            print("VmRSS per extra group: %s B (node 1 / 2 / 3)" % " / ".join(
                "%.0f" % ((proc[hi][i][1] - proc[lo][i][1]) * 1024 / (hi - lo))
                for i in range(NODES)))
    if args.rss_only:
        return
    res = {}
    for g in gs:
        for i in range(1, NODES + 1):
            path = os.path.join(args.out, "g%d-w%d-n%d.txt" % (g, args.workers, i))
            res[(g, i)] = parse_dump(path)
    for g in gs:
        print("\n## G=%d W=%d (leaders per node %s)" % (g, args.workers, led.get(g, "?")))
        for i in range(1, NODES + 1):
            sites, mi, rss = res[(g, i)]
            live = sum(v[2] for v in sites.values())
            print("node %d: VmRSS %.1f MiB; heap: arena %.1f MiB, mmapped %.1f MiB, in use %.1f "
                  "MiB, free %.1f MiB; live blocks (usable bytes) %.1f MiB" % (
                      i, rss / 1024, mi.get("arena", 0) / 2**20, mi.get("hblkhd", 0) / 2**20,
                      mi.get("uordblks", 0) / 2**20, mi.get("fordblks", 0) / 2**20, live / 2**20))
    if len(gs) == 2:
        lo, hi = gs
        extra = hi - lo
        print("\n## per extra group: (G=%d - G=%d) / %d, per node" % (hi, lo, extra))
        for i in range(1, NODES + 1):
            s_lo, mi_lo, rss_lo = res[(lo, i)]
            s_hi, mi_hi, rss_hi = res[(hi, i)]
            a_lo, a_hi = by_name(s_lo), by_name(s_hi)
            diff = []
            for k in set(a_lo) | set(a_hi):
                x, y = a_lo.get(k, [0] * 5), a_hi.get(k, [0] * 5)
                diff.append((k, (y[0] - x[0]) / extra, (y[1] - x[1]) / extra,
                             (y[2] - x[2]) / extra))
            diff.sort(key=lambda d: -abs(d[3]))
            blocks = sum(d[1] for d in diff)
            usable = sum(d[3] for d in diff)
            print("\nnode %d: RSS %+.0f B/group; heap in use %+.0f, free %+.0f, arena+mmap %+.0f;"
                  " live blocks %+.2f/group, usable %+.0f B/group (+%.0f chunk headers)" % (
                      i, (rss_hi - rss_lo) * 1024 / extra,
                      (mi_hi["uordblks"] - mi_lo["uordblks"]) / extra,
                      (mi_hi["fordblks"] - mi_lo["fordblks"]) / extra,
                      (mi_hi["arena"] + mi_hi["hblkhd"] - mi_lo["arena"] - mi_lo["hblkhd"]) / extra,
                      blocks, usable, 8 * blocks))
            sm_lo = smaps_summary(os.path.join(args.out, "g%d-w%d-n%d.smaps" % (lo, args.workers, i)))
            sm_hi = smaps_summary(os.path.join(args.out, "g%d-w%d-n%d.smaps" % (hi, args.workers, i)))
            rows = []
            for k in set(sm_lo) | set(sm_hi):
                x, y = sm_lo.get(k, [0, 0, 0]), sm_hi.get(k, [0, 0, 0])
                rows.append((k, y[2] - x[2], y[2], y[0]))
            rows.sort(key=lambda r: -abs(r[1]))
            print("  RSS by mapping (Rss at G=%d - at G=%d, per extra group; then KiB at G=%d):"
                  % (hi, lo, hi))
            for k, d, tot, n in rows:
                if d != 0 or tot > 512:
                    print("    %-40s %+8.0f B/group  %8d KiB in %d mapping(s)"
                          % (k[:40], d * 1024 / extra, tot, n))
            b_lo, b_hi = parse_big(os.path.join(args.out, "g%d-w%d-n%d.txt" % (lo, args.workers, i))), \
                parse_big(os.path.join(args.out, "g%d-w%d-n%d.txt" % (hi, args.workers, i)))
            print("  blocks >= 64 KiB: resident bytes per extra group (then at G=%d: blocks, "
                  "KiB, resident KiB):" % hi)
            rows = []
            for k in set(b_lo) | set(b_hi):
                x, y = b_lo.get(k, [0, 0, 0]), b_hi.get(k, [0, 0, 0])
                rows.append((k, (y[2] - x[2]) / extra, y))
            rows.sort(key=lambda r: -abs(r[1]))
            for k, d, y in rows:
                print("    %-50s %+7.0f B/group  %3d %8d %8d" % (k[:50], d, y[0], y[1] // 1024,
                                                               y[2] // 1024))
            print("  %-60s %8s %10s %10s" % ("site", "blocks", "requested", "usable"))
            for k, c, r, u in diff[:args.top]:
                print("  %-60s %8.2f %10.0f %10.0f" % (k[:60], c, r, u))
            peaks = sorted(a_hi.items(), key=lambda kv: -kv[1][3])
            print("  burst footprint at G=%d: sites by peak live bytes (per group), allocations"
                  " per group" % hi)
            for k, v in peaks[:args.top]:
                print("    %-58s %8.0f %8.1f" % (k[:58], v[3] / hi, v[4] / hi))


if __name__ == "__main__":
    main()
