#!/usr/bin/env python3
"""Compare the state machine's replies with redis-server's, byte for byte.

    tools/redis-compare.py [--replay build/debug/tools/sm-replay] [--redis-server PATH]
                           [--emit-c] [SCRIPT...]

Each SCRIPT (default: tests/service/redis-compare/*.txt) holds one command per line, split as
a shell would (quotes for spaces and empty strings); blank lines and lines starting with '#'
are skipped. The tool starts a throwaway redis-server (its own port and directory, no
persistence; stopped by its PID at the end) and, per script, a fresh sm-replay (tools/
sm_replay.c), sends FLUSHALL to the server, then feeds every command to both and compares
the raw replies.

Time. Redis reads its clock (delivery times, seen times, idle times); the state machine uses
the time stamped on each write. Before each command the tool asks the server for TIME and
stamps the command with it, so both sides see (nearly) the same time. Replies that report
time-derived values (XPENDING's idle, XINFO CONSUMERS' idle, XINFO STREAM FULL's seen-time and
delivery times) are compared with those values allowed to differ by --tolerance-ms; all
other bytes must be equal. ringraft measures idle times in reads against the last applied
write (the state machine's clock), Redis against the moment of the read: the tolerance
covers the gap in a script that runs in milliseconds. XINFO STREAM's radix-tree-keys and
radix-tree-nodes describe Redis's encoding: they are compared only for streams of at most
100 entries (docs/client-protocol.md).

--random N [--seed S] also runs N random command sequences (consumer group commands on two
streams with small ID spaces, so that they collide: deliveries, claims, acks, deletions,
trims, group ID changes), each compared the same way.

--emit-c prints, per script, a C array of {command, Redis's reply} pairs (for the cmocka
tests: tests/service/cgroup_cases.h), leaving out the replies that depend on time (all of them
reads, so the sequence applies the same writes).

Exit status: 0 if every reply matched, 1 otherwise.
"""
import argparse
import glob
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def encode(args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


class Reader:
    """Reads whole RESP2 replies from a binary stream, keeping the raw bytes."""

    def __init__(self, f):
        self.f = f

    def line(self):
        data = self.f.readline()
        if not data.endswith(b"\r\n"):
            raise EOFError("connection closed mid-reply")
        return data

    def reply(self):
        raw = self.line()
        t = raw[:1]
        if t in (b"+", b"-"):
            return raw, (t.decode(), raw[1:-2])
        if t == b":":
            return raw, (":", int(raw[1:-2]))
        if t == b"$":
            n = int(raw[1:-2])
            if n < 0:
                return raw, ("$", None)
            body = self.f.read(n + 2)
            return raw + body, ("$", body[:-2])
        if t == b"*":
            n = int(raw[1:-2])
            if n < 0:
                return raw, ("*", None)
            items = []
            for _ in range(n):
                r, tree = self.reply()
                raw += r
                items.append(tree)
            return raw, ("*", items)
        raise ValueError("bad reply line %r" % raw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    def __init__(self, binary):
        self.dir = tempfile.mkdtemp(prefix="rr-redis-compare-")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile",
             os.path.join(self.dir, "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", self.port))
                break
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.05)
        self.reader = Reader(self.sock.makefile("rb"))

    def call(self, args):
        self.sock.sendall(encode(args))
        return self.reader.reply()

    def time_ms(self):
        _, (_, items) = self.call(["TIME"])
        return int(items[0][1]) * 1000 + int(items[1][1]) // 1000

    def stop(self):
        try:
            self.sock.close()
        finally:
            self.proc.terminate()  # this process only, by its PID
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            shutil.rmtree(self.dir, ignore_errors=True)


class Replay:
    def __init__(self, binary):
        self.proc = subprocess.Popen([binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.reader = Reader(self.proc.stdout)

    def call(self, args, time_ms, clock=False):
        """clock: first apply a no-op entry at time_ms (the state machine's clock, which
        reads measure idle times with, becomes time_ms)."""
        self.proc.stdin.write(b"@%s%d\r\n" % (b"@" if clock else b"", time_ms) + encode(args))
        self.proc.stdin.flush()
        return self.reader.reply()

    def stop(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


# ---- time-derived values ----------------------------------------------------------------

TIMED = object()  # a node whose value depends on the clock


def as_map(items):
    return {items[i][1]: i + 1 for i in range(0, len(items) - 1, 2)
            if items[i][0] == "$" and items[i][1] is not None}


def mark(tree, i):
    kind, items = tree
    items[i] = (TIMED, items[i])


def is_read(args):
    name = args[0].lower()
    return name in ("xpending", "xinfo", "xrange", "xrevrange", "xlen", "xread", "get",
                    "ttl", "pttl", "type", "exists")


def mark_time_fields(args, tree):
    """Marks the values that depend on when commands ran (by the command's shape)."""
    name = [a.lower() if isinstance(a, str) else a for a in args]
    kind, items = tree
    if kind != "*" or items is None:
        return
    if name[0] == "xpending" and len(args) > 3:
        for e in items:
            if e[0] == "*" and e[1] is not None and len(e[1]) == 4:
                mark(e, 2)
    elif name[0] == "xinfo" and len(name) > 1 and name[1] == "consumers":
        for c in items:
            m = as_map(c[1])
            if b"idle" in m:
                mark(c, m[b"idle"])
    elif name[0] == "xinfo" and len(name) > 3 and name[1] == "stream" and name[3] == "full":
        m = as_map(items)
        for g in items[m[b"groups"]][1] if b"groups" in m else []:
            gm = as_map(g[1])
            for p in g[1][gm[b"pending"]][1]:
                mark(p, 2)
            for c in g[1][gm[b"consumers"]][1]:
                cm = as_map(c[1])
                mark(c, cm[b"seen-time"])
                for p in c[1][cm[b"pending"]][1]:
                    mark(p, 1)
    if name[0] == "xinfo" and len(name) > 1 and name[1] == "stream":
        m = as_map(items)
        if b"length" in m and items[m[b"length"]][1] > 100:
            mark(tree, m[b"radix-tree-keys"])
            mark(tree, m[b"radix-tree-nodes"])


def same(a, b, tolerance):
    """Compares two parsed replies; TIMED values within the tolerance (radix fields: any)."""
    if a[0] is TIMED or b[0] is TIMED:
        if a[0] is not TIMED or b[0] is not TIMED:
            return False
        x, y = a[1], b[1]
        if x[0] != y[0]:
            return False
        if x[0] == ":":
            return abs(x[1] - y[1]) <= tolerance
        return True
    if a[0] != b[0]:
        return False
    if a[0] == "*" and a[1] is not None and b[1] is not None:
        return len(a[1]) == len(b[1]) and all(same(x, y, tolerance) for x, y in zip(a[1], b[1]))
    return a[1] == b[1]


def has_timed(tree):
    if tree[0] is TIMED:
        return True
    return tree[0] == "*" and tree[1] is not None and any(has_timed(t) for t in tree[1])


def c_literal(raw):
    out = []
    for b in raw:
        c = chr(b)
        if c == "\r":
            out.append("\\r")
        elif c == "\n":
            out.append("\\n")
        elif c in '"\\':
            out.append("\\" + c)
        elif 32 <= b < 127:
            out.append(c)
        else:
            out.append("\\x%02x\"\"" % b)
    return '"' + "".join(out) + '"'


def random_script(rng, length):
    """A random command sequence (lines) over keys s1{t} and s2{t}, groups g1 g2 and
    consumers c1..c3, IDs 1-0 .. 40-0."""
    import random as _random  # noqa: F401 (rng is a random.Random)
    keys = ["s1{t}", "s2{t}"]
    groups = ["g1", "g2"]
    consumers = ["c1", "c2", "c3"]
    nxt = {k: 1 for k in keys}

    def some_id():
        r = rng.random()
        if r < 0.1:
            return rng.choice(["-", "+", "0", "0-0"])
        top = max(nxt.values())
        return "%d-%d" % (rng.randint(0, top + 1), rng.choice([0, 0, 0, 1]))

    def min_idle():
        return rng.choice(["0", "0", "1000000000", "-5", "4000000"])

    lines = []
    for k in keys:  # a start that the random commands can work on
        for _ in range(3):
            lines.append("xadd %s %d-0 f %d" % (k, nxt[k], nxt[k]))
            nxt[k] += 1
        for g in groups:
            lines.append("xgroup create %s %s 0" % (k, g))
    for _ in range(length):
        k = rng.choice(keys)
        g = rng.choice(groups)
        c = rng.choice(consumers)
        op = rng.random()
        if op < 0.18:
            lines.append("xadd %s %d-0 f %d" % (k, nxt[k], nxt[k]))
            nxt[k] += rng.randint(1, 2)
        elif op < 0.22:
            lines.append("xgroup create %s %s %s%s" % (
                k, g, rng.choice(["0", "$", some_id()]),
                rng.choice(["", "", " mkstream", " entriesread %d" % rng.randint(-1, 5)])))
        elif op < 0.24:
            lines.append("xgroup setid %s %s %s%s" % (
                k, g, rng.choice(["0", "$", some_id()]),
                rng.choice(["", " entriesread %d" % rng.randint(-1, 8)])))
        elif op < 0.25:
            lines.append("xgroup destroy %s %s" % (k, g))
        elif op < 0.27:
            lines.append("xgroup %s %s %s %s" % (
                rng.choice(["createconsumer", "delconsumer"]), k, g, c))
        elif op < 0.45:
            n = rng.choice([1, 1, 2])
            ks = [rng.choice(keys) for _ in range(n)]
            ids = [rng.choice([">", ">", ">", "0", some_id()]) for _ in range(n)]
            opts = rng.choice(["", "count 1 ", "count 2 ", "count 5 ", "noack ", "count 2 noack "])
            lines.append("xreadgroup group %s %s %sstreams %s %s" % (
                g, c, opts, " ".join(ks), " ".join(ids)))
        elif op < 0.53:
            lines.append("xack %s %s %s" % (k, g, " ".join(some_id() for _ in range(rng.randint(1, 3)))))
        elif op < 0.61:
            opts = " ".join(rng.sample(["force", "justid", "idle 5000000", "retrycount 3",
                                        "lastid %s" % some_id(), "time 1000"], rng.randint(0, 2)))
            lines.append("xclaim %s %s %s %s %s %s" % (
                k, g, c, min_idle(), " ".join(some_id() for _ in range(rng.randint(1, 3))), opts))
        elif op < 0.67:
            lines.append("xautoclaim %s %s %s %s %s%s" % (
                k, g, c, min_idle(), rng.choice(["0", "-", some_id(), "(" + some_id()]),
                rng.choice(["", " count 1", " count 2", " justid", " count 3 justid"])))
        elif op < 0.72:
            lines.append("xdel %s %s" % (k, some_id()))
        elif op < 0.74:
            lines.append("xtrim %s %s" % (k, rng.choice(["maxlen 3", "maxlen 0", "minid 10",
                                                          "minid = %d" % rng.randint(0, 30)])))
        elif op < 0.82:
            lines.append("xpending %s %s%s" % (k, g, rng.choice([
                "", " - + 10", " - + 3 %s" % c, " %s + 5" % some_id(),
                " idle 1000000000 - + 10", " (%s + 10" % some_id()])))
        elif op < 0.95:
            lines.append(rng.choice([
                "xinfo groups %s" % k, "xinfo consumers %s %s" % (k, g), "xinfo stream %s" % k,
                "xinfo stream %s full" % k, "xinfo stream %s full count 2" % k]))
        elif op < 0.96:
            lines.append("del %s" % k)
        else:
            lines.append(rng.choice(["xlen %s" % k, "xrange %s - +" % k]))
    return lines


def run_script(path, redis, replay_bin, args, lines=None):
    ok = True
    redis.call(["FLUSHALL"])
    replay = Replay(replay_bin)
    count = 0
    if args.emit_c:
        name = os.path.splitext(os.path.basename(path))[0].replace("-", "_")
        print("/* %s */" % os.path.relpath(path, ROOT))
        print("static const struct t_case cases_%s[] = {" % name)
    try:
        with (open(path) if lines is None else _Lines(lines)) as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                cmd = shlex.split(line)
                if args.delay_ms:
                    time.sleep(args.delay_ms / 1000.0)
                t = redis.time_ms()
                raw_r, tree_r = redis.call(cmd)
                # With a delay, a read's idle times would differ from Redis's by design (they
                # are measured up to the last applied write, docs/client-protocol.md): a no-op
                # entry first brings the clock to now, as a leader's next entry would, so that
                # only times a write set (or failed to set) can differ.
                raw_s, tree_s = replay.call(cmd, t, clock=args.delay_ms > 0 and is_read(cmd))
                count += 1
                mark_time_fields(cmd, tree_r)
                mark_time_fields(cmd, tree_s)
                timed = has_timed(tree_r)
                match = same(tree_r, tree_s, args.tolerance_ms) if timed else raw_r == raw_s
                if args.emit_c and not timed:
                    print("    {%s,\n     %s}," % (c_literal(line.encode()), c_literal(raw_r)))
                if args.verbose and timed:
                    print("%s:%d: %s (time-dependent values compared within %d ms)" % (
                        os.path.relpath(path, ROOT), lineno, line, args.tolerance_ms))
                    print("  redis:    %r" % raw_r)
                    print("  ringraft: %r" % raw_s)
                if not match:
                    ok = False
                    print("%s:%d: %s" % (os.path.relpath(path, ROOT), lineno, line))
                    print("  redis:    %r" % raw_r)
                    print("  ringraft: %r" % raw_s)
    finally:
        replay.stop()
        if args.emit_c:
            print("};\n")
    return ok, count


EMIT_C_HEAD = """/* Consumer group commands with the replies redis-server 7.0.15 gave, generated by
 *   tools/redis-compare.py --emit-c > tests/service/cgroup_cases.h
 * from the scripts in tests/service/redis-compare/ (the replies that depend on time are
 * left out; they are all reads). test_cgroup.c replays each array on a fresh state machine.
 */
#ifndef RR_TESTS_SERVICE_CGROUP_CASES_H
#define RR_TESTS_SERVICE_CGROUP_CASES_H

/* clang-format off */
"""

EMIT_C_TAIL = """/* clang-format on */

#endif
"""


class _Lines:
    def __init__(self, lines):
        self.lines = lines

    def __enter__(self):
        return iter(self.lines)

    def __exit__(self, *exc):
        return False


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--replay", default=os.path.join(ROOT, "build/debug/tools/sm-replay"))
    p.add_argument("--redis-server", default=shutil.which("redis-server") or "redis-server")
    p.add_argument("--tolerance-ms", type=int, default=100)
    p.add_argument("--delay-ms", type=int, default=0,
                   help="pause before each command, so that time-derived values differ "
                        "clearly when a command sets a time it should not (or misses one); "
                        "reads are preceded by a no-op entry at the current time")
    p.add_argument("--emit-c", action="store_true")
    p.add_argument("--verbose", action="store_true", help="show the time-dependent replies")
    p.add_argument("--random", type=int, default=0, help="random sequences to run")
    p.add_argument("--random-length", type=int, default=200)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--skip-missing", action="store_true",
                   help="exit 0 with a note when redis-server is not installed (make test)")
    p.add_argument("scripts", nargs="*")
    args = p.parse_args()
    scripts = args.scripts or sorted(glob.glob(os.path.join(ROOT, "tests/service/redis-compare/*.txt")))
    if args.skip_missing and shutil.which(args.redis_server) is None:
        print("redis-server not installed: comparison skipped")
        return 0
    redis = Redis(args.redis_server)
    failed = 0
    total = 0
    if args.emit_c:
        print(EMIT_C_HEAD, end="")
    try:
        _, (_, version) = redis.call(["INFO", "server"])
        ver = [l for l in version.decode().split("\r\n") if l.startswith("redis_version:")]
        if not args.emit_c:
            print("redis-server %s, %d scripts" % (ver[0].split(":")[1] if ver else "?", len(scripts)))
        for path in scripts:
            ok, n = run_script(path, redis, args.replay, args)
            total += n
            failed += 0 if ok else 1
        import random
        for i in range(args.random):
            rng = random.Random(args.seed * 1000003 + i)
            ok, n = run_script("random-%d-%d" % (args.seed, i), redis, args.replay, args,
                               random_script(rng, args.random_length))
            total += n
            failed += 0 if ok else 1
    finally:
        redis.stop()
    tally = os.environ.get("RR_TEST_TALLY")
    if tally and not args.emit_c:
        runs = len(scripts) + args.random
        with open(tally, "a") as f:
            f.write("%d %d\n" % (runs - failed, failed))
    if args.emit_c:
        print(EMIT_C_TAIL, end="")
    else:
        print("%d commands compared; %s" % (total, "all replies match" if failed == 0 else
                                             "%d scripts differ" % failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
