#!/usr/bin/env python3
"""The fault suite: clients run workloads against a real ringraftd cluster while a nemesis
injects faults; every operation goes into a history that the checkers judge
(docs/faults.md).

    python3 tests/faults/run.py --bin build/debug/ringraftd-faults [--slice quick|long]
        [--seconds N] [--seeds K] [--seed S] [--out DIR] [--keep] [SCHEDULE ...]

Each schedule prints one verdict line. A failing run (or any run with --keep) keeps its
history (history.jsonl), the verdicts (verdict.txt) and the node logs under
OUT/SCHEDULE-seedS/. Exit status 0 only if every schedule passed or was skipped with a
printed reason.
"""

import argparse
import itertools
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import checkers  # noqa: E402
import cluster as cl  # noqa: E402
from cluster import ConnectionClosed, RespError  # noqa: E402

REQUEST_TIMEOUT_MS = 2000  # the nodes' request-timeout-ms
CLIENT_TIMEOUT_S = 3.5     # a client gives up on a reply after this (outcome unknown)
ELECTION_TICKS = 20        # the default: elections after 200-400 ms (tick-ms 10)


def now_ns():
    return time.monotonic_ns()


# ---- the history --------------------------------------------------------------------------------

class History:
    def __init__(self, t0):
        self.t0 = t0
        self.ops = []
        self.lock = threading.Lock()
        self.ids = itertools.count(1)

    def invoke(self, client, node, workload, f, key, value=None, final=False):
        op = {"id": next(self.ids), "client": client, "node": node, "workload": workload,
              "f": f, "key": key, "value": value, "invoke_ns": now_ns() - self.t0,
              "complete_ns": None, "outcome": None, "result": None, "final": final}
        return op

    def complete(self, op, outcome, result=None, error=None):
        op["complete_ns"] = now_ns() - self.t0
        op["outcome"] = outcome
        op["result"] = result
        if error:
            op["error"] = error
        with self.lock:
            self.ops.append(op)

    def event(self, what, **details):
        with self.lock:
            self.ops.append({"id": next(self.ids), "workload": "nemesis", "f": what,
                             "invoke_ns": now_ns() - self.t0, "complete_ns": now_ns() - self.t0,
                             "outcome": "ok", "value": details})

    def write(self, path):
        with open(path, "w") as f:
            for op in sorted(self.ops, key=lambda o: o["invoke_ns"]):
                f.write(json.dumps(op, sort_keys=True) + "\n")


def classify_error(msg):
    """An error reply's outcome for a write (docs/faults.md, "Outcomes"):
    - fail (no effect, guaranteed): -CLUSTERDOWN (the request never left the node that
      answers it: never proposed nor forwarded, io/route.c route_sweep), and errors the
      command itself earns before anything is proposed (syntax, wrong type, CROSSSLOT);
    - unknown: -TIMEOUT (proposed or forwarded, no outcome in time), -BUSY (a retry of a
      request once forwarded can meet a full leader: the first attempt may have applied),
      -ERR this node's storage failed (same: a retry reaches a node whose WAL stopped),
      and anything not recognised."""
    code = msg.split(" ", 1)[0]
    if code in ("CLUSTERDOWN", "CROSSSLOT", "WRONGTYPE", "MOVED", "ASK"):
        return "fail"
    if code == "ERR" and any(s in msg for s in ("wrong number of arguments", "syntax error",
                                                 "not an integer", "unknown command",
                                                 "Protocol error")):
        return "fail"
    return "unknown"


# ---- clients ------------------------------------------------------------------------------------

REGISTER_KEYS = ["{reg}a", "{reg}b", "{reg}c"]  # one hash tag: one group, one leader
COUNTER_KEY = "{ctr}c"
# Streams: a new key every STREAM_EPOCH_S seconds (all in one group), so that each key's
# reads (XRANGE - +, whole streams) stay short and the history bounded in long runs.
STREAM_EPOCH_S = 8.0
STREAM_KEY = "{log}s0"


def stream_key(hist):
    return "{log}s%d" % int((now_ns() - hist.t0) / 1e9 / STREAM_EPOCH_S)


class Client(threading.Thread):
    """One client: a connection to one node, operations one at a time with a short pause
    between them, every one recorded (invoke, complete, outcome). A lost connection makes
    the operation in flight unknown; the client reconnects and goes on."""

    def __init__(self, cid, node, workload, hist, stop, seed, pace_s=(0.005, 0.025)):
        super().__init__(daemon=True, name="client-%d" % cid)
        self.cid = cid
        self.node = node
        self.workload = workload
        self.hist = hist
        self.stop_ev = stop
        self.rnd = random.Random(seed)
        self.pace = pace_s
        self.conn = None
        self.n = 0

    def connect(self):
        while not self.stop_ev.is_set():
            try:
                self.conn = self.node.client(timeout=CLIENT_TIMEOUT_S)
                return True
            except OSError:
                self.stop_ev.wait(0.1)
        return False

    def next_op(self):
        r = self.rnd.random()
        self.n += 1
        if self.workload == "register":
            key = self.rnd.choice(REGISTER_KEYS)
            if r < 0.45:
                return ("read", key, None, ("GET", key))
            if r < 0.85:
                v = self.cid * 1000000 + self.n
                return ("write", key, v, ("SET", key, str(v)))
            return ("incr", key, None, ("INCR", key))
        if self.workload == "stream":
            key = stream_key(self.hist)
            if r < 0.8:
                v = "c%d-%d" % (self.cid, self.n)
                return ("xadd", key, v, ("XADD", key, "*", "v", v))
            return ("xrange", key, None, ("XRANGE", key, "-", "+"))
        return ("incr", COUNTER_KEY, None, ("INCR", COUNTER_KEY))

    def run(self):
        while not self.stop_ev.is_set():
            if self.conn is None and not self.connect():
                return
            f, key, value, cmd = self.next_op()
            run_op(self.hist, self.conn, self.cid, self.node.id, self.workload, f, key, value,
                   cmd, on_broken=self.drop)
            self.stop_ev.wait(self.rnd.uniform(*self.pace))
        if self.conn is not None:
            self.conn.close()

    def drop(self):
        if self.conn is not None:
            self.conn.close()
        self.conn = None


def decode_result(f, reply):
    if f in ("read",):
        return None if reply is None else int(reply)
    if f == "write":
        return reply
    if f == "incr":
        return reply
    if f == "xadd":
        return reply.decode() if isinstance(reply, bytes) else reply
    if f == "xrange":
        return [[e[0].decode(), e[1][1].decode()] for e in reply]
    return reply


def run_op(hist, conn, cid, node_id, workload, f, key, value, cmd, on_broken=None,
           final=False):
    """Sends one command on conn and records it. Returns the op."""
    op = hist.invoke(cid, node_id, workload, f, key, value, final)
    try:
        conn.sock.sendall(cl.harness.encode_command(*cmd))
        reply = conn.read_reply()
    except (socket.timeout, TimeoutError) as e:
        hist.complete(op, "unknown", error="client timeout: %r" % e)
        if on_broken:
            on_broken()
        return op
    except (OSError, ConnectionClosed, ValueError) as e:
        hist.complete(op, "unknown", error="connection lost: %r" % e)
        if on_broken:
            on_broken()
        return op
    if isinstance(reply, RespError):
        msg = str(reply)
        hist.complete(op, classify_error(msg) if f not in ("read", "xrange") else "fail",
                      error=msg)
        return op
    try:
        hist.complete(op, "ok", decode_result(f, reply))
    except (ValueError, TypeError, IndexError, AttributeError) as e:
        hist.complete(op, "unknown", error="unexpected reply %r: %r" % (reply, e))
    return op


def probe_writes(hist, node, cid, tag):
    """Writes every register key through node (another node than the one cut off or
    paused) and waits for the replies: once they are acknowledged, a read that returns an
    older value is stale. Recorded like any client's operations."""
    try:
        conn = node.client(timeout=CLIENT_TIMEOUT_S)
    except OSError:
        return
    try:
        for i, key in enumerate(REGISTER_KEYS):
            v = cid * 1000000 + tag * 10 + i
            run_op(hist, conn, cid, node.id, "register", "write", key, v, ("SET", key, str(v)))
    finally:
        conn.close()


def probe_connect(node):
    """Connections for probe_reads, opened before the node is paused or cut off: a
    connection accepted while a node is paused is only read once it runs again, after it
    has heard from the new leader, while one it was already reading delivers the request in
    the same batch of completions as the new leader's messages."""
    conns = []
    for _ in REGISTER_KEYS:
        try:
            conn = node.client(timeout=CLIENT_TIMEOUT_S + 6)
            # A PONG proves the node accepted the connection and reads it (connect()
            # returns once the kernel has queued it, before the node's accept).
            if conn.call("PING") != "PONG":
                raise OSError("no PONG")
            conns.append(conn)
        except (OSError, RespError, ConnectionClosed):
            conns.append(None)
    return conns


def probe_reads(c, hist, node, cid, conns):
    """Reads every register key through node on the connections of probe_connect, in
    separate threads (the node may be paused or cut off: the replies come when they come).
    Returns the threads."""
    threads = []
    for i, key in enumerate(REGISTER_KEYS):
        def one(key=key, i=i):
            conn = conns[i]
            if conn is None:
                return
            try:
                run_op(hist, conn, cid + i, node.id, "register", "read", key, None,
                       ("GET", key))
            finally:
                conn.close()
        t = threading.Thread(target=one, daemon=True)
        t.start()
        threads.append(t)
    return threads


# ---- nemeses --------------------------------------------------------------------------------------

class Nemesis:
    """A fault schedule: run(ctx) injects faults for ctx.seconds from ctx.rnd (seeded) and
    heals everything before it returns. Each step is recorded in the history."""

    needs_net = False
    nodes = 3
    extra = ()  # ringraftd flags for every node

    def __init__(self, name):
        self.name = name

    def prepare(self, ctx):
        """Before the cluster starts (mounts, per-node flags)."""

    def run(self, ctx):
        raise NotImplementedError

    def heal(self, ctx):
        """Undo every fault (called also after an exception)."""
        for x in ctx.c.nodes:
            x.resume()
        if ctx.c.net is not None:
            ctx.c.net.heal()


class Ctx:
    def __init__(self, c, hist, rnd, seconds):
        self.c = c
        self.hist = hist
        self.rnd = rnd
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self.notes = []
        self.probe_threads = []
        self.probe_cid = 900
        self.probe_n = 0

    def left(self):
        return self.end - time.monotonic()

    def sleep(self, a, b=None):
        time.sleep(max(0.0, min(self.rnd.uniform(a, b if b is not None else a),
                                max(self.left(), 0.0) + 0.5)))

    def register_leader(self):
        return self.c.leaders().get(self.c.group_of(REGISTER_KEYS[0]))

    def probe_write(self, node_id):
        self.probe_n += 1
        probe_writes(self.hist, self.c.node(node_id), 800, self.probe_n)

    def wait_writes_elsewhere(self, victim_id, timeout=10.0):
        """Waits until another node has taken the register group's leadership (so writes
        complete without the victim). Returns the new leader or None."""
        end = time.monotonic() + timeout
        g = self.c.group_of(REGISTER_KEYS[0])
        while time.monotonic() < end:
            for x in self.c.running():
                if x.id == victim_id:
                    continue
                try:
                    st = cl.harness.parse_raft_status(x.call("RAFT", "STATUS", timeout=1.0))
                except (OSError, RespError, ConnectionClosed, ValueError):
                    continue
                if st.get(g, {}).get("role") == "leader":
                    return x.id
            time.sleep(0.05)
        return None


class KillNemesis(Nemesis):
    """kill -9 of `who` (follower, leader, majority), then a restart."""

    def __init__(self, name, who):
        super().__init__(name)
        self.who = who

    def victims(self, ctx):
        nodes = [x.id for x in ctx.c.nodes]
        if self.who == "majority":
            return ctx.rnd.sample(nodes, len(nodes) // 2 + 1)
        led = ctx.c.groups_led()
        if self.who == "leader":
            return [max(sorted(led), key=lambda i: led[i])]
        # A follower: a node that leads none of the workload's groups if there is one.
        work = {ctx.c.group_of(k) for k in (REGISTER_KEYS[0], STREAM_KEY, COUNTER_KEY)}
        leaders = ctx.c.leaders()
        lead_work = {i: sum(1 for g in work if leaders.get(g) == i) for i in nodes}
        return [min(sorted(nodes), key=lambda i: (lead_work[i], led.get(i, 0)))]

    def run(self, ctx):
        while ctx.left() > 1:
            ctx.sleep(0.5, 1.5)
            vs = self.victims(ctx)
            ctx.hist.event("kill", nodes=vs, who=self.who)
            for v in vs:
                ctx.c.node(v).kill()
            ctx.sleep(1.0, 3.0)
            ctx.hist.event("restart", nodes=vs)
            for v in vs:
                ctx.c.node(v).start()
            ctx.sleep(1.0, 2.0)


class RestartAllNemesis(Nemesis):
    """kill -9 of every node at once, then all restarted together."""

    def run(self, ctx):
        while ctx.left() > 1:
            ctx.sleep(1.5, 3.0)
            ctx.hist.event("kill-all")
            for x in ctx.c.nodes:
                x.kill()
            ctx.sleep(0.2, 1.0)
            ctx.hist.event("restart-all")
            for x in ctx.c.nodes:
                x.start()
            ctx.sleep(1.5, 3.0)


class PowerLossNemesis(Nemesis):
    """SIGUSR1 (test-power-loss) to every node, or to a random majority: each reverts what
    its WAL had not synced and exits; then they restart."""

    extra = ("--test-power-loss", "yes")

    def __init__(self, name, who="all"):
        super().__init__(name)
        self.who = who

    def run(self, ctx):
        while ctx.left() > 1:
            ctx.sleep(1.0, 2.5)
            nodes = ctx.c.nodes if self.who == "all" else ctx.rnd.sample(
                ctx.c.nodes, len(ctx.c.nodes) // 2 + 1)
            ctx.hist.event("power-loss", nodes=[x.id for x in nodes])
            for x in nodes:  # the signals first, so the losses are as simultaneous as can be
                x.signal(signal.SIGUSR1)
                x.expected_exit = True
            for x in nodes:
                if not x.power_loss(send=False):
                    ctx.notes.append("node %d did not exit after SIGUSR1 (killed)" % x.id)
            ctx.sleep(0.2, 0.8)
            ctx.hist.event("restart", nodes=[x.id for x in nodes])
            for x in nodes:
                x.start()
            ctx.sleep(1.5, 3.0)


class PauseNemesis(Nemesis):
    """SIGSTOP of the register group's leader; while it is paused and another node leads,
    reads of every register key are sent through it; SIGCONT. A paused leader must not
    answer them from its old state when it resumes."""

    def run(self, ctx):
        while ctx.left() > 1:
            ctx.sleep(0.5, 1.5)
            leader = ctx.register_leader()
            if leader is None:
                continue
            victim = ctx.c.node(leader)
            conns = probe_connect(victim)
            ctx.hist.event("pause", nodes=[leader])
            victim.pause()
            new = ctx.wait_writes_elsewhere(leader)
            if new is not None:
                ctx.probe_write(new)
            ctx.hist.event("probe-reads", node=leader, new_leader=new)
            ctx.probe_threads += probe_reads(ctx.c, ctx.hist, victim, ctx.probe_cid, conns)
            ctx.probe_cid += len(REGISTER_KEYS)
            ctx.sleep(0.3, 1.0)
            ctx.hist.event("resume", nodes=[leader])
            victim.resume()
            ctx.sleep(1.0, 2.0)


class PartitionNemesis(Nemesis):
    """Network partitions between the nodes' namespaces (clients keep reaching every node):
    one random node isolated, the register leader isolated (with reads through it), a
    random majority/minority split, or a bridge (two sides that share one node)."""

    needs_net = True

    def __init__(self, name, kind, nodes=3):
        super().__init__(name)
        self.kind = kind
        self.nodes = nodes

    def sides(self, ctx):
        ids = [x.id for x in ctx.c.nodes]
        ctx.rnd.shuffle(ids)
        if self.kind == "one":
            return [[ids[0]], ids[1:]], None
        if self.kind == "leader":
            leader = ctx.register_leader() or ids[0]
            return [[leader], [i for i in ids if i != leader]], leader
        if self.kind == "halves":
            k = len(ids) // 2
            return [ids[:k], ids[k:]], None
        # bridge: ids[0] sees both sides, the sides do not see each other
        rest = ids[1:]
        k = len(rest) // 2
        return [rest[:k], rest[k:]], None

    def run(self, ctx):
        while ctx.left() > 1:
            ctx.sleep(0.5, 1.5)
            sides, isolated = self.sides(ctx)
            conns = probe_connect(ctx.c.node(isolated)) if isolated is not None else None
            ctx.hist.event("partition", kind=self.kind, sides=sides)
            ctx.c.net.partition(sides)
            if isolated is not None:
                new = ctx.wait_writes_elsewhere(isolated)
                if new is not None:
                    ctx.probe_write(new)
                ctx.hist.event("probe-reads", node=isolated, new_leader=new)
                ctx.probe_threads += probe_reads(ctx.c, ctx.hist, ctx.c.node(isolated),
                                                 ctx.probe_cid, conns)
                ctx.probe_cid += len(REGISTER_KEYS)
            ctx.sleep(2.0, 4.0)
            ctx.hist.event("heal")
            ctx.c.net.heal()
            ctx.sleep(1.0, 2.0)


class DiskFullNemesis(Nemesis):
    """One node's data directory on a small tmpfs (test-wal-segment-bytes 64 KiB, so its
    WAL rotates every few seconds); the disk is filled. The node must stop when its WAL
    cannot prepare a segment (it exits by itself: "stopping the node: no space left") while
    the others go on; a restart on the full disk must be refused; once space is freed (the
    file system grown, the filler removed) it restarts with the default segment size and
    catches up."""

    needs_mount = True
    SIZE = 8 << 20
    SIZE_AFTER = 256 << 20
    SEGMENT = 64 << 10

    def prepare(self, ctx):
        self.victim = ctx.c.node(1 + ctx.rnd.randrange(len(ctx.c.nodes)))
        self.fs = cl.Tmpfs(self.victim.data, self.SIZE, ctx.state_dir)
        self.fs.mount()
        self.victim.extra = ["--test-wal-segment-bytes", str(self.SEGMENT)]

    def run(self, ctx):
        v = self.victim
        ctx.sleep(1.0)
        n = self.fs.fill()
        ctx.hist.event("disk-full", node=v.id, filler_bytes=n)
        t0 = time.monotonic()
        while v.running() and ctx.left() > 0:
            time.sleep(0.2)
        if v.running():
            ctx.notes.append("node %d still runs after %.0f s on a full disk (its WAL did not "
                             "need a new segment)" % (v.id, time.monotonic() - t0))
        else:
            v._note_exit()
            status = v.proc.returncode
            v.exits[-1] = (status, True)  # expected: a full disk stops the node
            log = v.log_text()
            ok = "stopping the node" in log or "WAL" in log
            ctx.hist.event("node-stopped", node=v.id, status=status,
                           after_s=round(time.monotonic() - t0, 1))
            ctx.notes.append("node %d stopped %.1f s after its disk filled (exit %s)%s"
                             % (v.id, time.monotonic() - t0, status,
                                "" if ok else "; its log does not say why"))
            if not ok:
                ctx.failures.append("node %d exited on a full disk without saying why" % v.id)
            # A restart while the disk is still full must be refused, not crash.
            v.start()
            try:
                v.proc.wait(timeout=20)
                v._note_exit()
                v.exits[-1] = (v.proc.returncode, True)
                ctx.notes.append("restart on the full disk refused (exit %s)"
                                 % v.proc.returncode)
            except Exception:
                ctx.failures.append("node %d started on a full disk" % v.id)
                v.kill()
        # Space again: a larger file system, and the default segment size (a follower's
        # catch-up unit may be as large as RAFT_INFLIGHT_BYTES_MAX, 8 MiB, and the WAL refuses
        # a unit larger than a segment: 64 KiB segments were only for reaching a full disk
        # within seconds).
        self.fs.free()
        self.fs.grow(self.SIZE_AFTER)
        v.extra = []
        ctx.hist.event("disk-freed", node=v.id)
        while ctx.left() > 0:
            time.sleep(0.2)

    def heal(self, ctx):
        super().heal(ctx)
        self.fs.free()

    def cleanup(self, ctx):
        self.victim.kill()
        self.fs.unmount()


# ---- schedules ----------------------------------------------------------------------------------------

class Schedule:
    def __init__(self, name, nemesis, unsafe=None, expect_caught=False, extra=(), slices=(),
                 max_rounds=1):
        self.name = name
        self.nemesis = nemesis
        self.unsafe = unsafe
        self.expect_caught = expect_caught
        self.extra = list(extra)
        self.slices = slices
        self.max_rounds = max_rounds  # unsafe schedules: rounds until caught


SCHEDULES = [
    Schedule("kill-follower", KillNemesis("kill-follower", "follower"), slices=("long",)),
    Schedule("kill-leader", KillNemesis("kill-leader", "leader"), slices=("quick", "long")),
    Schedule("kill-majority", KillNemesis("kill-majority", "majority"), slices=("quick", "long")),
    Schedule("pause-leader", PauseNemesis("pause-leader"), slices=("quick", "long")),
    Schedule("restart-all", RestartAllNemesis("restart-all"), slices=("quick", "long")),
    # linger:20000 holds each flush 20 ms, so a power loss finds unsynced records to revert
    # (with adaptive batching the WAL is usually synced when the signal lands).
    Schedule("power-loss-all", PowerLossNemesis("power-loss-all", "all"),
             slices=("quick", "long"), extra=("--disk-batching", "linger:20000")),
    Schedule("power-loss-majority", PowerLossNemesis("power-loss-majority", "majority"),
             slices=("long",), extra=("--disk-batching", "linger:20000")),
    Schedule("partition-one", PartitionNemesis("partition-one", "one"), slices=("long",)),
    Schedule("partition-leader", PartitionNemesis("partition-leader", "leader"),
             slices=("quick", "long")),
    Schedule("partition-halves", PartitionNemesis("partition-halves", "halves", nodes=5),
             slices=("long",)),
    Schedule("partition-bridge", PartitionNemesis("partition-bridge", "bridge", nodes=5),
             slices=("quick", "long")),
    Schedule("disk-full", DiskFullNemesis("disk-full"), slices=("quick", "long")),
    # Unsafe modes: the checkers must flag these.
    # Reads through the isolated leader: the stale read the unsafe mode allows. (Pausing
    # the leader no longer shows it reliably: reads forwarded to a stopped leader go on to
    # the new one, and the old leader's late answers are dropped; docs/faults.md.)
    Schedule("unsafe-reads-partition", PartitionNemesis("partition-leader", "leader"),
             unsafe="reads-without-readindex", expect_caught=True, slices=("quick", "long"),
             max_rounds=8),
    Schedule("unsafe-ack-power-loss", PowerLossNemesis("power-loss-all", "all"),
             unsafe="ack-before-fsync", expect_caught=True, slices=("quick", "long"),
             extra=("--disk-batching", "linger:20000"), max_rounds=5),
]


# ---- one run ----------------------------------------------------------------------------------------

class Runner:
    def __init__(self, args):
        self.args = args
        self.state_dir = os.path.join(args.out, ".state")

    def run_schedule(self, sched, seed, seconds):
        """Returns (status, line): status 'pass', 'fail' or 'skip'."""
        nem = sched.nemesis
        net = None
        if nem.needs_net:
            why = cl.Net.probe()
            if why is not None:
                return "skip", "network namespaces unusable: %s" % why
        if getattr(nem, "needs_mount", False):
            why = cl.Tmpfs.probe(self.state_dir)
            if why is not None:
                return "skip", "no size-limited file system: %s" % why
        run_dir = os.path.join(self.args.out, "%s-seed%d" % (sched.name, seed))
        shutil.rmtree(run_dir, ignore_errors=True)
        os.makedirs(run_dir)
        rounds = []
        c = None
        try:
            if nem.needs_net:
                net = cl.Net(nem.nodes, self.state_dir)
                net.setup()
            for rnd_i in range(sched.max_rounds):
                res = self.one_round(sched, seed + rnd_i * 1000003, seconds, run_dir, net,
                                     rnd_i)
                rounds.append(res)
                if not sched.expect_caught or res["caught"]:
                    break
        except Exception:
            rounds.append({"error": traceback.format_exc()})
        finally:
            if net is not None:
                net.teardown()
        return self.verdict(sched, seed, rounds, run_dir)

    def one_round(self, sched, seed, seconds, run_dir, net, round_i):
        nem = sched.nemesis
        rnd = random.Random(seed)
        random.seed(seed)
        extra = ["--request-timeout-ms", str(REQUEST_TIMEOUT_MS)] + list(nem.extra) + sched.extra
        if sched.unsafe:
            extra += ["--unsafe-test-mode", sched.unsafe]
        cdir = os.path.join(run_dir, "round%d" % round_i)
        c = cl.Cluster(self.args.bin, cdir, n=nem.nodes, groups=8, extra=extra, net=net)
        t0 = now_ns()
        hist = History(t0)
        ctx = Ctx(c, hist, rnd, seconds)
        ctx.state_dir = self.state_dir
        ctx.failures = []
        res = {"round": round_i, "seed": seed, "dir": cdir}
        stop = threading.Event()
        clients = []
        try:
            nem.prepare(ctx)
            c.start(timeout=60)
            n = len(c.nodes)
            cid = 0
            for k in range(6):  # registers: 6 clients, 2 per node (3 nodes)
                clients.append(Client(cid, c.nodes[k % n], "register", hist, stop, seed + cid))
                cid += 1
            for k in range(2):
                clients.append(Client(cid, c.nodes[(k + 1) % n], "stream", hist, stop,
                                      seed + cid))
                cid += 1
            for k in range(2):
                clients.append(Client(cid, c.nodes[(k + 2) % n], "counter", hist, stop,
                                      seed + cid))
                cid += 1
            for t in clients:
                t.start()
            time.sleep(0.5)
            ctx.end = time.monotonic() + seconds
            t_nem = time.monotonic()
            try:
                nem.run(ctx)
            finally:
                nem.heal(ctx)
            res["nemesis_s"] = time.monotonic() - t_nem
            hist.event("healed")
            # Every node up again, then a little more load, then the clients stop.
            for x in c.nodes:
                if not x.running():
                    x.start()
            res["recovery_s"] = c.wait_ready(60)
            time.sleep(1.0)
            stop.set()
            for t in clients:
                t.join(CLIENT_TIMEOUT_S + 2)
            for t in ctx.probe_threads:
                t.join(CLIENT_TIMEOUT_S + 8)
            self.final_reads(c, hist)
        except Exception:
            res["error"] = traceback.format_exc()
        finally:
            stop.set()
            nem_cleanup = getattr(nem, "cleanup", None)
            c.close()
            if nem_cleanup:
                try:
                    nem_cleanup(ctx)
                except Exception:
                    res.setdefault("error", traceback.format_exc())
        hist.write(os.path.join(cdir, "history.jsonl"))
        t_check = time.monotonic()
        res["verdicts"] = checkers.check_all(hist.ops)
        res["check_s"] = time.monotonic() - t_check
        res["problems"] = c.unexpected_exits() + c.sanitizer_reports() + ctx.failures
        res["notes"] = ctx.notes
        res["ops"] = sum(1 for o in hist.ops if o.get("workload") != "nemesis")
        res["faults"] = sum(1 for o in hist.ops if o.get("workload") == "nemesis")
        res["caught"] = any(v.ok is False for v in res["verdicts"])
        return res

    def final_reads(self, c, hist):
        """After healing: every register key, every stream and the counter read through every
        node (recorded; the stream and counter reads carry final=true)."""
        streams = sorted({o["key"] for o in hist.ops if o.get("workload") == "stream"})
        for x in c.nodes:
            for attempt in range(10):
                try:
                    conn = x.client(timeout=CLIENT_TIMEOUT_S)
                except OSError:
                    time.sleep(0.5)
                    continue
                try:
                    ops = [run_op(hist, conn, 1000 + x.id, x.id, "register", "read", k, None,
                                  ("GET", k)) for k in REGISTER_KEYS]
                    ops += [run_op(hist, conn, 1000 + x.id, x.id, "stream", "xrange", k, None,
                                   ("XRANGE", k, "-", "+"), final=True) for k in streams]
                    ops.append(run_op(hist, conn, 1000 + x.id, x.id, "counter", "read",
                                      COUNTER_KEY, None, ("GET", COUNTER_KEY), final=True))
                finally:
                    conn.close()
                if all(o["outcome"] == "ok" for o in ops):
                    break
                time.sleep(0.5)

    def verdict(self, sched, seed, rounds, run_dir):
        errors = [r["error"] for r in rounds if "error" in r]
        done = [r for r in rounds if "verdicts" in r]
        caught = any(r["caught"] for r in done)
        problems = [p for r in done for p in r["problems"]]
        wall = sum(r.get("nemesis_s", 0) for r in done)
        parts = []
        for r in done:
            parts.append("round %d: %d ops, %d nemesis events, recovery %.1fs, check %.1fs; %s"
                         % (r["round"], r["ops"], r["faults"], r.get("recovery_s", -1),
                            r["check_s"], "; ".join(repr(v) for v in r["verdicts"])))
        if sched.expect_caught:
            ok = caught and not errors
            status_word = "CAUGHT" if ok else "NOT CAUGHT"
            when = next((r["round"] for r in done if r["caught"]), None)
            summary = ("unsafe-test-mode %s flagged in round %s of %d" % (sched.unsafe, when,
                                                                          len(rounds))
                       if ok else "unsafe-test-mode %s was not flagged in %d round(s)"
                       % (sched.unsafe, len(rounds)))
            # A crash or sanitizer report is a failure even here.
            if problems:
                ok = False
        else:
            invalid = [v for r in done for v in r["verdicts"] if v.ok is not True]
            ok = not errors and not invalid and not problems and done
            status_word = "PASS" if ok else "FAIL"
            summary = "all checkers valid" if ok else "; ".join(
                [repr(v) for v in invalid] + problems[:3] + [e.strip().splitlines()[-1]
                                                             for e in errors])
        line = "faults: %-22s seed %-6d %-10s %s (%.0fs of faults)" % (
            sched.name, seed, status_word, summary, wall)
        with open(os.path.join(run_dir, "verdict.txt"), "w") as f:
            f.write(line + "\n")
            for p in parts:
                f.write(p + "\n")
            for r in done:
                for v in r["verdicts"]:
                    for d in v.details:
                        f.write("  %s\n" % d)
                for n in r["notes"]:
                    f.write("  note: %s\n" % n)
            for p in problems:
                f.write("  problem: %s\n" % p)
            for e in errors:
                f.write(e + "\n")
        if self.args.verbose or not ok:
            for p in parts:
                print("    " + p)
            for r in done:
                for n in r["notes"]:
                    print("    note: %s" % n)
                for v in r["verdicts"]:
                    if v.ok is not True and not sched.expect_caught:
                        for d in v.details[:8]:
                            print("      " + d)
            for p in problems[:10]:
                print("    problem: %s" % p)
            for e in errors:
                print(e)
        if ok and not self.args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
        elif not ok:
            line += " [kept: %s]" % run_dir
        return ("pass" if ok else "fail"), line


def check_normal_build_refuses(bin_path):
    """The ringraftd beside ringraftd-faults (the normal build of the same flavour) must
    refuse every test switch at start-up. Returns (ok, line)."""
    normal = os.path.join(os.path.dirname(os.path.abspath(bin_path)), "ringraftd")
    if not os.access(normal, os.X_OK):
        return True, "faults: no normal ringraftd beside %s: refusal of the test switches " \
                     "not checked" % bin_path
    bad = []
    for flag, value in (("--unsafe-test-mode", "ack-before-fsync"),
                        ("--unsafe-test-mode", "reads-without-readindex"),
                        ("--test-power-loss", "yes"), ("--test-wal-segment-bytes", "65536")):
        r = subprocess.run([normal, flag, value, "--check-config"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=30)
        out = r.stdout.decode(errors="replace")
        if r.returncode == 0 or "only in the fault-test build" not in out:
            bad.append("%s %s: exit %d: %s" % (flag, value, r.returncode, out.strip()[:200]))
    if bad:
        return False, "faults: %s ACCEPTS a test switch: %s" % (normal, "; ".join(bad))
    return True, "faults: %s refuses unsafe-test-mode, test-power-loss and " \
                 "test-wal-segment-bytes: PASS" % normal


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="ringraftd-faults to test")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.dirname(HERE)),
                                                  "build", "faults"))
    ap.add_argument("--slice", choices=("quick", "long", "all"), default="quick")
    ap.add_argument("--seconds", type=float, default=None,
                    help="seconds of faults per schedule (quick: 10, long: 60)")
    ap.add_argument("--seeds", type=int, default=1, help="seeds per schedule")
    ap.add_argument("--seed", type=int, default=None, help="first seed (default: fixed)")
    ap.add_argument("--keep", action="store_true", help="keep every run's directory")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("schedules", nargs="*")
    args = ap.parse_args()
    if not os.access(args.bin, os.X_OK):
        print("faults: no binary at %s" % args.bin)
        return 2
    seconds = args.seconds or (10 if args.slice == "quick" else 60)
    first_seed = args.seed if args.seed is not None else 1
    chosen = [s for s in SCHEDULES
              if (args.schedules and any(p in s.name for p in args.schedules)) or
              (not args.schedules and (args.slice == "all" or args.slice in s.slices))]
    os.makedirs(args.out, exist_ok=True)
    runner = Runner(args)
    print("faults: %d schedule(s) x %d seed(s), %.0f s of faults each, binary %s"
          % (len(chosen), args.seeds, seconds, args.bin), flush=True)
    results = []
    ok, line = check_normal_build_refuses(args.bin)
    print(line, flush=True)
    results.append("pass" if ok else "fail")
    t_all = time.monotonic()
    for sched in chosen:
        for k in range(args.seeds):
            seed = first_seed + k
            t0 = time.monotonic()
            status, line = runner.run_schedule(sched, seed, seconds)
            if status == "skip":
                line = "faults: %-22s seed %-6d SKIPPED    %s" % (sched.name, seed, line)
            print("%s [%.0fs]" % (line, time.monotonic() - t0), flush=True)
            results.append(status)
    passed = results.count("pass")
    failed = results.count("fail")
    skipped = results.count("skip")
    print("faults: %d passed, %d failed, %d skipped in %.0fs"
          % (passed, failed, skipped, time.monotonic() - t_all))
    tally = os.environ.get("RR_TEST_TALLY")
    if tally:
        with open(tally, "a") as f:
            f.write("%d %d\n" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
