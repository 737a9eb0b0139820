"""Process-test harness for ringraftd: free ports, N-node clusters in a temp dir, a tiny RESP
client, readiness waits, and cleanup of every process it started (by PID).

Python 3 standard library only. Used by tests/node/test_*.py through tests/node/run.py.

Ports. Each node gets a client port and a range of W peer ports (worker w listens on
peer_port + w); all are checked free on 127.0.0.1 by binding them, and no two ranges of
one cluster overlap. Processes. Every ringraftd runs in its own session with its output in
DIR/nodeI/ringraftd.log, and with PR_SET_PDEATHSIG so it dies with the test process even if
that is SIGKILLed; on normal exit (atexit, finally, SIGTERM from the stage timeout) the
harness SIGKILLs every process it started that still runs, by PID.
"""

import atexit
import ctypes
import os
import random
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_BIN = os.environ.get("RINGRAFTD", os.path.join(REPO, "build", "debug", "ringraftd"))

# Processes killed by a signal must not lose the report to a leak check, and a sanitizer
# error must abort (so it shows as a crash, and in the log).
SAN_ENV = {
    "ASAN_OPTIONS": "abort_on_error=1:detect_leaks=0",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
}

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer",
                     "SUMMARY: UndefinedBehaviorSanitizer")


class TestFailure(AssertionError):
    pass


def deadline_loop(timeout_s, interval_s=0.05):
    """Yields until timeout_s has passed (at least once)."""
    end = time.monotonic() + timeout_s
    while True:
        yield
        if time.monotonic() >= end:
            return
        time.sleep(interval_s)


# ---- ports ---------------------------------------------------------------------------------

def _port_free(port):
    if port <= 1024 or port > 65535:
        return False
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _ephemeral_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def _below_ephemeral_port():
    """A port under the kernel's ephemeral range, which no outgoing connection takes."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low = int(f.read().split()[0])
    return random.randrange(2000, max(2001, low - 64))


def free_port_ranges(widths, below_ephemeral=True):
    """One free range of consecutive ports per entry of widths, no two overlapping; every
    port of a range is checked free by binding it. below_ephemeral (the default): ports under
    the kernel's ephemeral range, which no outgoing connection takes between the check and
    the node's bind (in the ephemeral range one did: "Address already in use" at start-up
    on a busy machine); else ports the kernel hands out for port 0."""
    taken = set()
    out = []
    for width in widths:
        for _ in range(200):
            base = _below_ephemeral_port() if below_ephemeral else _ephemeral_port()
            ports = range(base, base + width)
            if any(p in taken for p in ports):
                continue
            if all(_port_free(p) for p in ports):
                out.append(base)
                taken.update(ports)
                break
        else:
            raise RuntimeError("no free range of %d ports found" % width)
    return out


# ---- RESP ----------------------------------------------------------------------------------

class RespError(Exception):
    """An error reply (-ERR ...): str(e) is the text after '-'."""


class ConnectionClosed(Exception):
    pass


def encode_command(*args):
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, int):
            a = str(a)
        if isinstance(a, str):
            a = a.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(parts)


class Resp:
    """A tiny blocking RESP2 client. Replies: str for +simple, bytes for $bulk, int, list,
    None for nil; an -error reply comes back as a RespError object (raised by call())."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0, password=None):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        if password is not None:
            try:
                self.call("AUTH", password)
            except BaseException:
                self.close()
                raise

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionClosed("connection closed by the server")
        self.buf += chunk

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            self._fill()

    def read_reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RespError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self._fill()
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data
        if kind == b"*":
            n = int(rest)
            if n < 0:
                return None
            return [self.read_reply() for _ in range(n)]
        raise ValueError("bad RESP reply line %r" % line)

    def call(self, *args):
        self.sock.sendall(encode_command(*args))
        r = self.read_reply()
        if isinstance(r, RespError):
            raise r
        return r

    def pipeline(self, commands, chunk=500):
        """Sends the commands in pipelined chunks; returns every reply (errors as
        RespError objects, not raised)."""
        out = []
        for k in range(0, len(commands), chunk):
            part = commands[k:k + chunk]
            self.sock.sendall(b"".join(encode_command(*c) for c in part))
            out.extend(self.read_reply() for _ in part)
        return out

    def wait_closed(self, timeout=5.0):
        """True if the server closes the connection within timeout (data before the close
        is appended to self.buf)."""
        self.sock.settimeout(timeout)
        end = time.monotonic() + timeout
        try:
            while time.monotonic() < end:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
        return False


def parse_info(text):
    if isinstance(text, bytes):
        text = text.decode()
    out = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            out[k.strip()] = v.strip()
    return out


def parse_raft_status(text):
    """RAFT STATUS: a header line, then 'group:G role:R term:T leader:L commit:C applied:A
    ...' per group. Returns {group: {field: value}} (numbers as int)."""
    if isinstance(text, bytes):
        text = text.decode()
    groups = {}
    for line in text.splitlines():
        if not line.startswith("group:"):
            continue
        fields = {}
        for item in line.split():
            k, _, v = item.partition(":")
            fields[k] = int(v) if re.fullmatch(r"-?\d+", v) else v
        groups[fields["group"]] = fields
    return groups


# ---- xxh3 through ctypes (for hand-made peer frames) ------------------------------------------

_xxh = None


def xxh3_64(data):
    global _xxh
    if _xxh is None:
        for name in ("libxxhash.so.0", "libxxhash.so"):
            try:
                _xxh = ctypes.CDLL(name)
                break
            except OSError:
                continue
        if _xxh is None:
            raise RuntimeError("libxxhash not found (apt-get install libxxhash-dev)")
        _xxh.XXH3_64bits.restype = ctypes.c_uint64
        _xxh.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    return _xxh.XXH3_64bits(data, len(data))


def xxh3_128_seeded(data, seed):
    """XXH3_128bits_withSeed: (low64, high64)."""
    xxh3_64(b"")  # loads the library

    class H128(ctypes.Structure):
        _fields_ = [("low64", ctypes.c_uint64), ("high64", ctypes.c_uint64)]

    fn = _xxh.XXH3_128bits_withSeed
    fn.restype = H128
    fn.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64]
    h = fn(data, len(data), seed)
    return h.low64, h.high64


def handshake_proof(secret, cluster_id, nonce, node, worker):
    """io/wire/frame.c handshake_proof: XXH3-128 seeded with the cluster id over the secret,
    nonce, node and worker; low half first."""
    low, high = xxh3_128_seeded(secret + struct.pack("<QII", nonce, node, worker), cluster_id)
    return struct.pack("<QQ", low, high)


FRAME_MAGIC = 0x31465252
FRAME_HANDSHAKE = 1
FRAME_HANDSHAKE_ACK = 2


def encode_frame(ftype, payload):
    """io/wire/frame.h: u32 magic, u16 version, u16 type, u32 length, u32 flags, u64 xxh3 of
    header[0,16) || payload; little-endian."""
    head = struct.pack("<IHHII", FRAME_MAGIC, 1, ftype, len(payload), 0)
    return head + struct.pack("<Q", xxh3_64(head + payload)) + payload


def encode_handshake(cluster_id, node, worker, groups, workers, receiver, nonce, proof):
    """Payload of FRAME_HANDSHAKE (56 bytes, io/wire/frame.c HS_OFF_*)."""
    assert len(proof) == 16
    return struct.pack("<IQIIIIIQ", 1, cluster_id, node, worker, groups, workers, receiver,
                       nonce) + proof


def decode_frame(buf):
    """(type, payload, rest) of the first whole frame in buf, or None if incomplete."""
    if len(buf) < 24:
        return None
    magic, _ver, ftype, length, _flags, _sum = struct.unpack("<IHHIIQ", buf[:24])
    if magic != FRAME_MAGIC:
        raise ValueError("bad magic in reply frame")
    if len(buf) < 24 + length:
        return None
    return ftype, buf[24:24 + length], buf[24 + length:]


def decode_handshake_ack(payload):
    """(accepted, refusal, reason) of a FRAME_HANDSHAKE_ACK payload (104 bytes)."""
    _ver, accepted, n, refusal = struct.unpack("<IBBH", payload[:8])
    return bool(accepted), refusal, payload[8:8 + n].decode(errors="replace")


# ---- processes ---------------------------------------------------------------------------

_live = {}  # pid -> Popen of every ringraftd started and not yet reaped


def _kill_all_live():
    for pid, proc in list(_live.items()):
        if proc.poll() is None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        _live.pop(pid, None)


atexit.register(_kill_all_live)


terminated = False  # set on SIGTERM: the runner stops after the current test


def _on_sigterm(signum, frame):
    global terminated
    terminated = True
    raise SystemExit("terminated by signal %d" % signum)


signal.signal(signal.SIGTERM, _on_sigterm)

_libc = ctypes.CDLL(None, use_errno=True)


def _child_setup():
    # Runs in the child between fork and exec: die with the test process.
    _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Node:
    def __init__(self, cluster, node_id, port, peer_port):
        self.cluster = cluster
        self.id = node_id
        self.port = port
        self.peer_port = peer_port
        self.dir = os.path.join(cluster.dir, "node%d" % node_id)
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "ringraftd.log")
        self.proc = None
        self.extra = []
        self.expected_exit = False  # set by kill()/stop(): any other exit is a crash
        self.crashes = []  # exit statuses of runs that ended without kill()/stop()
        self.join = False  # started with `join yes` (a server being added: join_node)
        self.host = cluster.host  # its host in `nodes`: an IPv4 literal or a name

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def argv(self):
        c = self.cluster
        a = [c.bin,
             "--node-id", str(self.id),
             "--cluster-id", c.cluster_id,
             "--cluster-secret", c.secret,
             "--nodes", c.nodes_setting(self),
             "--dir", self.data,
             "--workers", str(c.workers),
             "--groups", str(c.groups),
             "--loglevel", c.loglevel]
        if self.join:
            a += ["--join", "yes"]
        return a + list(c.extra) + list(self.extra)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def settings(self):
        """The settings this node runs with (its argv through ringraftd --dump-config):
        {name: value as a string}, e.g. settings()["election-ticks"]."""
        env = dict(os.environ)
        env.update(SAN_ENV)
        r = subprocess.run(self.argv() + ["--dump-config"], capture_output=True, text=True,
                           timeout=30, env=env)
        if r.returncode != 0:
            raise TestFailure("ringraftd --dump-config exited %d: %s"
                              % (r.returncode, r.stdout + r.stderr))
        out = {}
        for line in r.stdout.splitlines():
            if line and not line.startswith("#"):
                k, _, v = line.partition(" ")
                out[k] = v
        return out

    def election_timeout_s(self):
        """The shortest election timeout (election-ticks x tick-ms): a follower that stops
        hearing from its leader waits a random time in [this, twice this)."""
        s = self.settings()
        return int(s["election-ticks"]) * int(s["tick-ms"]) / 1000.0

    def start(self):
        assert not self.running(), "node %d already running" % self.id
        self.note_exit()
        self.expected_exit = False
        os.makedirs(self.dir, exist_ok=True)
        env = dict(os.environ)
        env.update(SAN_ENV)
        with open(self.log, "ab") as log:
            log.write(("==== harness: starting node %d: %s\n"
                       % (self.id, " ".join(self.argv()))).encode())
            log.flush()
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True, preexec_fn=_child_setup)
        _live[self.proc.pid] = self.proc

    def _reap(self, timeout):
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        _live.pop(self.proc.pid, None)
        return rc

    def note_exit(self):
        """Records the previous run's exit if nobody asked for it (an assertion trap, a
        sanitizer abort, a fatal error)."""
        if self.proc is not None and self.proc.poll() is not None and not self.expected_exit:
            self.crashes.append(self.proc.returncode)
            self.expected_exit = True

    def kill(self):
        """SIGKILL (a crash). Returns the exit status (-9)."""
        self.note_exit()
        if not self.running():
            return self.proc.returncode if self.proc else None
        self.expected_exit = True
        os.kill(self.proc.pid, signal.SIGKILL)
        return self._reap(10)

    def stop(self, timeout=15, sig=signal.SIGTERM):
        """SIGTERM (or sig), wait; returns the exit status (0 for a clean shutdown).
        SIGKILLs and raises if it does not exit in time."""
        self.note_exit()
        if not self.running():
            return self.proc.returncode if self.proc else None
        self.expected_exit = True
        os.kill(self.proc.pid, sig)
        rc = self._reap(timeout)
        if rc is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self._reap(10)
            raise TestFailure("node %d did not exit within %ds of %s\n%s"
                              % (self.id, timeout, signal.Signals(sig).name, self.log_tail()))
        return rc

    def client(self, timeout=10.0):
        return Resp(self.port, timeout=timeout, password=self.cluster.password)

    def call(self, *args, timeout=10.0):
        with self.client(timeout) as c:
            return c.call(*args)

    def ping(self):
        try:
            with Resp(self.port, timeout=2.0, password=self.cluster.password) as c:
                return c.call("PING") == "PONG"
        except (OSError, RespError, ConnectionClosed, ValueError):
            return False

    def info(self, section="raft"):
        return parse_info(self.call("INFO", section))

    def raft_status(self):
        return parse_raft_status(self.call("RAFT", "STATUS"))

    def log_text(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines=30):
        text = self.log_text().splitlines()
        return "---- node %d log (%s), last %d lines:\n%s" % (
            self.id, self.log, lines, "\n".join(text[-lines:]))

    def wait_ping(self, timeout=20):
        for _ in deadline_loop(timeout, 0.1):
            if self.ping():
                return
            if not self.running():
                raise TestFailure("node %d exited (status %s) before answering PING\n%s"
                                  % (self.id, self.proc.returncode, self.log_tail()))
        raise TestFailure("node %d (port %d) does not answer PING after %ds\n%s"
                          % (self.id, self.port, timeout, self.log_tail()))


class Cluster:
    """An N-node cluster on 127.0.0.1 in a temp dir. Use as a context manager: the exit
    kills every node; the directory is removed unless keep (or RR_KEEP_CLUSTER=1) is set
    or the block raised (then its path is printed with the logs' tails)."""

    def __init__(self, n=3, workers=1, groups=16, extra=(), bin=None, loglevel="notice",
                 tick_ms=None, keep=False, password=None, spares=0, host="127.0.0.1"):
        self.bin = os.path.abspath(bin or DEFAULT_BIN)
        # host: every node's host in `nodes` (Node.host changes one), e.g. "localhost": the
        # nodes resolve it; the harness's own clients always use 127.0.0.1.
        self.host = host
        if not os.access(self.bin, os.X_OK):
            raise RuntimeError("no ringraftd at %s (make FLAVOUR=debug build/debug/ringraftd)"
                               % self.bin)
        self.workers = workers
        self.groups = groups
        # RR_NODE_EXTRA: flags every node of every test gets (the uring-off stage).
        self.extra = shlex.split(os.environ.get("RR_NODE_EXTRA", "")) + list(extra)
        if tick_ms is not None:
            self.extra += ["--tick-ms", str(tick_ms)]
        # password: every node requires it (requirepass); the harness's clients send AUTH.
        self.password = password
        if password is not None:
            self.extra += ["--requirepass", password]
        self.loglevel = loglevel
        self.keep = keep or os.environ.get("RR_KEEP_CLUSTER") == "1"
        self.dir = tempfile.mkdtemp(prefix="ringraft-node-test-")
        self.cluster_id = "0x%016x" % (random.getrandbits(63) | 1)
        self.secret = "%032x" % random.getrandbits(128)
        # spares: nodes with ports reserved but outside the initial membership, started later
        # with join_node (RAFT ADDNODE grows the cluster to them).
        total = n + spares
        bases = free_port_ranges([1] * n + [workers] * n)
        later = free_port_ranges([1] * spares + [workers] * spares)
        self.nodes = [Node(self, i + 1, bases[i], bases[n + i]) for i in range(n)]
        self.nodes += [Node(self, n + i + 1, later[i], later[spares + i])
                       for i in range(spares)]
        self.members = [x.id for x in self.nodes[:n]]  # the initial membership

    def address(self, node_id):
        x = self.node(node_id)
        return "%s:%d@%d" % (x.host, x.port, x.peer_port)

    def nodes_setting(self, node=None):
        """The `nodes` a node is started with: the initial members (and itself, for a joining
        node)."""
        ids = list(self.members)
        if node is not None and node.id not in ids:
            ids.append(node.id)
        return ",".join("%d=%s" % (i, self.address(i)) for i in ids)

    def node(self, node_id):
        return self.nodes[node_id - 1]

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        failed = exc_type is not None
        for x in self.nodes:
            x.note_exit()
            if x.running():
                x.kill()
        problems = self.sanitizer_reports()
        crashed = ["node %d exited by itself with status %s" % (x.id, st)
                   for x in self.nodes for st in x.crashes]
        if crashed:
            problems = "\n".join(crashed + ([problems] if problems else []))
        if failed or problems:
            for x in self.nodes:
                print(x.log_tail(40))
            if problems:
                print(problems)
            print("cluster directory kept: %s" % self.dir)
        elif not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        if problems and not failed:
            raise TestFailure("a node crashed or reported a sanitizer error:\n" + problems)
        return False

    def sanitizer_reports(self):
        found = []
        for x in self.nodes:
            for line in x.log_text().splitlines():
                if any(m in line for m in SANITIZER_MARKERS):
                    found.append("node %d: %s" % (x.id, line))
        return "\n".join(found[:20])

    def start(self, wait=True, timeout=30):
        for x in self.nodes:
            if not x.running() and (x.id in self.members or x.proc is not None):
                x.start()
        if wait:
            self.wait_ready(timeout)
        return self

    def running_nodes(self):
        return [x for x in self.nodes if x.running()]

    def wait_ready(self, timeout=30, nodes=None):
        """Every (running) node answers PING and sees a leader for every group."""
        nodes = nodes or self.running_nodes()
        end = time.monotonic() + timeout
        for x in nodes:
            x.wait_ping(max(1, end - time.monotonic()))
        last = {}
        for _ in deadline_loop(max(1, end - time.monotonic()), 0.1):
            ok = True
            for x in nodes:
                try:
                    info = x.info("raft")
                except (OSError, RespError, ConnectionClosed) as e:
                    last[x.id] = repr(e)
                    ok = False
                    continue
                last[x.id] = info.get("groups_with_leader")
                if int(info.get("groups_with_leader", -1)) != self.groups:
                    ok = False
            if ok:
                return
        raise TestFailure("not every group has a leader after %ds: groups_with_leader per node "
                          "%s (of %d)\n%s" % (timeout, last, self.groups,
                                              "\n".join(x.log_tail(15) for x in nodes)))

    def join_node(self, node_id, wipe=False):
        """Starts node_id as a server being added (`join yes`), after deleting its data
        directory if wipe. It serves once a member's RAFT ADDNODE reaches it."""
        x = self.node(node_id)
        if wipe:
            shutil.rmtree(x.data, ignore_errors=True)
        x.join = True
        x.start()
        x.wait_ping()
        return x

    def leaders_by_node(self, via=None):
        """{node id: groups it leads}, from INFO raft of `via` (default: first running)."""
        via = via or self.running_nodes()[0]
        info = via.info("raft")
        return {x.id: int(info.get("groups_led_by_node_%d" % x.id, 0)) for x in self.nodes}

    def stop_all(self):
        """SIGTERM every node together; returns {node id: exit status}."""
        for x in self.running_nodes():
            x.expected_exit = True
            os.kill(x.pid, signal.SIGTERM)
        out = {}
        for x in self.nodes:
            if x.proc is not None:
                out[x.id] = x.stop()
        return out


def redis_cli(port, *args, timeout=10, input=None):
    """Runs redis-cli against 127.0.0.1:port; returns (exit status, stdout)."""
    r = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port)] + [str(a) for a in args],
                       capture_output=True, timeout=timeout, input=input)
    return r.returncode, r.stdout.decode(errors="replace").rstrip("\n")


def redis_benchmark(port, args, timeout=120):
    """Runs redis-benchmark -e against 127.0.0.1:port; returns (status, stdout+stderr).

    Error replies (-ERR, -BUSY, -TIMEOUT, ...) must show in the output, where
    test_benchmark.benchmark_errors finds them: redis-benchmark 6 prints them ("Error from
    server: ...", at most one a second) only with -e and otherwise goes on as if they were
    answers; redis-benchmark 7 ignores -e (it prints a warning saying so), prints the first
    error reply the same way and exits with status 1."""
    r = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-e"] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    # Progress lines end in \r; keep the final ones readable.
    text = r.stdout.decode(errors="replace").replace("\r", "\n")
    return r.returncode, text
