"""Processes, network namespaces and mounts for the fault suite (docs/faults.md).

Every ringraftd-faults process is started here, in its own session, with PR_SET_PDEATHSIG
(it dies with the runner), and stopped only by its PID. Network namespaces, the bridge,
blackhole routes and tmpfs mounts are created here too, recorded in a state file, and
removed in close() (called from a finally, atexit and the SIGTERM handler); a later run
also removes what a runner that was SIGKILLed left behind (its state file names its PID).
"""

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "node"))

import harness  # noqa: E402  (Resp, parse_info, parse_raft_status, ports, SAN_ENV)
from harness import ConnectionClosed, Resp, RespError  # noqa: E402,F401

CLIENT_PORT = 7001  # in namespaces every node has its own address: the same ports for all
PEER_PORT = 17001


def sh(*args, check=True):
    r = subprocess.run(list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(args), r.stdout.decode(errors="replace").strip()))
    return r


# ---- network namespaces ------------------------------------------------------------------------

class NetUnavailable(Exception):
    """Network namespaces cannot be used here (the partition schedules are skipped)."""


class Net:
    """One namespace per node, each with a veth pair to a bridge in the root namespace:
    node i is 10.77.X.i, the bridge (where clients connect from) 10.77.X.254. X is chosen
    free at set-up. A partition is a set of blackhole routes inside the namespaces: a node
    cut from j drops every packet it sends to j (both sides get the route, so both
    directions are cut); the clients' path through the bridge is never cut."""

    def __init__(self, n, state_dir):
        self.n = n
        self.x = None
        self.state_file = None
        self.state_dir = state_dir
        self.blocked = set()  # (i, j): node i drops what it sends to j

    @staticmethod
    def probe():
        """None if namespaces work here, else the reason they do not."""
        if os.geteuid() != 0:
            return "not root (namespaces, bridges and routes need CAP_NET_ADMIN)"
        if subprocess.run(["which", "ip"], stdout=subprocess.DEVNULL).returncode != 0:
            return "no 'ip' command (iproute2)"
        name = "rrfprobe%d" % os.getpid()
        r = sh("ip", "netns", "add", name, check=False)
        if r.returncode != 0:
            return "ip netns add failed: %s" % r.stdout.decode(errors="replace").strip()
        sh("ip", "netns", "del", name, check=False)
        r = sh("ip", "link", "add", name[:15], "type", "bridge", check=False)
        if r.returncode != 0:
            return "cannot create a bridge: %s" % r.stdout.decode(errors="replace").strip()
        sh("ip", "link", "del", name[:15], check=False)
        return None

    def ns(self, i):
        return "rrf%dn%d" % (self.x, i)

    def addr(self, i):
        return "10.77.%d.%d" % (self.x, i)

    def bridge(self):
        return "rrf%dbr" % self.x

    def setup(self):
        cleanup_stale(self.state_dir)
        links = sh("ip", "-o", "link", "show").stdout.decode()
        free = [x for x in range(1, 250) if ("rrf%dbr:" % x) not in links]
        if not free:
            raise NetUnavailable("no free bridge name rrfNbr")
        self.x = random.Random(os.getpid()).choice(free)
        os.makedirs(self.state_dir, exist_ok=True)
        self.state_file = os.path.join(self.state_dir, "net-%d.json" % os.getpid())
        with open(self.state_file, "w") as f:
            json.dump({"pid": os.getpid(), "x": self.x, "n": self.n}, f)
        br = self.bridge()
        sh("ip", "link", "add", br, "type", "bridge")
        sh("ip", "addr", "add", "10.77.%d.254/24" % self.x, "dev", br)
        sh("ip", "link", "set", br, "up")
        for i in range(1, self.n + 1):
            ns, host, peer = self.ns(i), "rrf%dh%d" % (self.x, i), "rrf%dc%d" % (self.x, i)
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", host, "type", "veth", "peer", "name", peer)
            sh("ip", "link", "set", peer, "netns", ns)
            sh("ip", "-n", ns, "addr", "add", "%s/24" % self.addr(i), "dev", peer)
            sh("ip", "-n", ns, "link", "set", peer, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "link", "set", host, "master", br)
            sh("ip", "link", "set", host, "up")
        # The bridge forwards once its ports are up; wait until every address answers (a
        # refused connection to a closed port is an answer).
        for i in range(1, self.n + 1):
            for _ in range(50):
                try:
                    socket.create_connection((self.addr(i), 9), timeout=0.5).close()
                    break
                except ConnectionRefusedError:
                    break
                except OSError:
                    time.sleep(0.1)
            else:
                raise NetUnavailable("10.77.%d.%d does not answer through the bridge"
                                     % (self.x, i))

    def cut(self, i, j):
        """Cuts the link between nodes i and j (both directions)."""
        for a, b in ((i, j), (j, i)):
            if (a, b) not in self.blocked:
                sh("ip", "-n", self.ns(a), "route", "add", "blackhole", "%s/32" % self.addr(b))
                self.blocked.add((a, b))

    def partition(self, sides):
        """Cuts every link between nodes of different sides (lists of node ids); a node in
        no side keeps its links (a bridge node)."""
        side_of = {i: k for k, side in enumerate(sides) for i in side}
        for i in side_of:
            for j in side_of:
                if i < j and side_of[i] != side_of[j]:
                    self.cut(i, j)

    def heal(self):
        for a, b in sorted(self.blocked):
            sh("ip", "-n", self.ns(a), "route", "del", "blackhole", "%s/32" % self.addr(b),
               check=False)
        self.blocked.clear()

    def teardown(self):
        if self.x is None:
            return
        self.heal()
        for i in range(1, self.n + 1):
            sh("ip", "netns", "del", self.ns(i), check=False)
        sh("ip", "link", "del", self.bridge(), check=False)
        if self.state_file and os.path.exists(self.state_file):
            os.unlink(self.state_file)
        self.x = None


def cleanup_stale(state_dir):
    """Removes namespaces and mounts left by a runner that died without cleaning up."""
    if not os.path.isdir(state_dir):
        return
    for name in os.listdir(state_dir):
        path = os.path.join(state_dir, name)
        try:
            with open(path) as f:
                st = json.load(f)
        except (OSError, ValueError):
            continue
        try:
            os.kill(st["pid"], 0)
            continue  # its runner still runs
        except ProcessLookupError:
            pass
        if name.startswith("net-"):
            for i in range(1, st["n"] + 1):
                sh("ip", "netns", "del", "rrf%dn%d" % (st["x"], i), check=False)
            sh("ip", "link", "del", "rrf%dbr" % st["x"], check=False)
        elif name.startswith("mount-"):
            sh("umount", "-l", st["path"], check=False)
        os.unlink(path)


class Tmpfs:
    """A size-limited tmpfs mounted on path (a node's data directory), and a filler file
    beside the data that takes the space left."""

    def __init__(self, path, size_bytes, state_dir):
        self.path = path
        self.size = size_bytes
        self.state_dir = state_dir
        self.state_file = os.path.join(state_dir, "mount-%d.json" % os.getpid())
        self.mounted = False

    @staticmethod
    def probe(state_dir):
        """None if a tmpfs can be mounted here, else the reason it cannot."""
        if os.geteuid() != 0:
            return "not root (mounting a tmpfs needs CAP_SYS_ADMIN)"
        path = os.path.join(state_dir, "probe-%d" % os.getpid())
        os.makedirs(path, exist_ok=True)
        r = sh("mount", "-t", "tmpfs", "-o", "size=1m", "rrf-probe", path, check=False)
        if r.returncode != 0:
            os.rmdir(path)
            return "mount -t tmpfs failed: %s" % r.stdout.decode(errors="replace").strip()
        sh("umount", path, check=False)
        os.rmdir(path)
        return None

    def mount(self):
        os.makedirs(self.path, exist_ok=True)
        os.makedirs(self.state_dir, exist_ok=True)
        with open(self.state_file, "w") as f:
            json.dump({"pid": os.getpid(), "path": self.path}, f)
        sh("mount", "-t", "tmpfs", "-o", "size=%d" % self.size, "rrf-tmpfs", self.path)
        self.mounted = True

    def filler(self):
        return os.path.join(self.path, "FILLER")

    def fill(self):
        """Writes the filler until the file system is full; returns the bytes written."""
        total = 0
        fd = os.open(self.filler(), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            for size in (65536, 4096, 512):
                chunk = b"\xa5" * size
                while True:
                    try:
                        n = os.write(fd, chunk)
                    except OSError:
                        break
                    total += n
                    if n < size:
                        break
        finally:
            os.close(fd)
        return total

    def free(self):
        try:
            os.unlink(self.filler())
        except FileNotFoundError:
            pass

    def grow(self, size_bytes):
        sh("mount", "-o", "remount,size=%d" % size_bytes, self.path)
        self.size = size_bytes

    def unmount(self):
        if self.mounted:
            if sh("umount", self.path, check=False).returncode != 0:
                sh("umount", "-l", self.path, check=False)
            self.mounted = False
        if os.path.exists(self.state_file):
            os.unlink(self.state_file)


# ---- nodes ---------------------------------------------------------------------------------------

class Node:
    def __init__(self, cluster, node_id, host, port, peer_port, netns=None):
        self.cluster = cluster
        self.id = node_id
        self.host = host
        self.port = port
        self.peer_port = peer_port
        self.netns = netns
        self.dir = os.path.join(cluster.dir, "node%d" % node_id)
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "ringraftd.log")
        self.proc = None
        self.extra = []
        self.expected_exit = True
        self.exits = []  # (status, expected) of every run that ended
        self.paused = False

    def argv(self):
        c = self.cluster
        a = [c.bin, "--node-id", str(self.id), "--cluster-id", c.cluster_id,
             "--cluster-secret", c.secret, "--nodes", c.nodes_setting(), "--dir", self.data,
             "--bind", self.host, "--workers", str(c.workers), "--groups", str(c.groups),
             "--loglevel", "notice"]
        a += list(c.extra) + list(self.extra)
        if self.netns:
            a = ["ip", "netns", "exec", self.netns] + a
        return a

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _note_exit(self):
        if self.proc is not None and self.proc.poll() is not None and not getattr(
                self.proc, "_noted", False):
            self.proc._noted = True
            self.exits.append((self.proc.returncode, self.expected_exit))

    def start(self):
        assert not self.running()
        self._note_exit()
        os.makedirs(self.dir, exist_ok=True)
        env = dict(os.environ)
        env.update(harness.SAN_ENV)
        with open(self.log, "ab") as log:
            log.write(("==== faults: starting node %d: %s\n" % (self.id, " ".join(self.argv())))
                      .encode())
            log.flush()
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True,
                                         preexec_fn=harness._child_setup)
        harness._live[self.proc.pid] = self.proc
        self.expected_exit = False
        self.paused = False

    def signal(self, sig):
        if self.running():
            os.kill(self.proc.pid, sig)

    def _wait(self, timeout):
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        harness._live.pop(self.proc.pid, None)
        self._note_exit()
        return True

    def kill(self):
        """SIGKILL (a crash; the page cache survives)."""
        if not self.running():
            self._note_exit()
            return
        self.expected_exit = True
        os.kill(self.proc.pid, signal.SIGKILL)
        if self.paused:
            os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False
        self._wait(10)

    def stop(self, timeout=15):
        if not self.running():
            self._note_exit()
            return
        self.expected_exit = True
        if self.paused:
            self.resume()
        os.kill(self.proc.pid, signal.SIGTERM)
        if not self._wait(timeout):
            self.kill()

    def pause(self):
        if self.running():
            os.kill(self.proc.pid, signal.SIGSTOP)
            self.paused = True

    def resume(self):
        if self.running() and self.paused:
            os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def power_loss(self, send=True):
        """SIGUSR1 (test-power-loss): the node reverts what its WAL had not synced and
        exits. Falls back to SIGKILL if it does not exit in time (reported). send=False:
        the signal was sent already (several nodes at once); only wait."""
        if not self.running():
            return True
        self.expected_exit = True
        if send:
            os.kill(self.proc.pid, signal.SIGUSR1)
        if self._wait(15):
            return True
        self.kill()
        return False

    def client(self, timeout=5.0):
        return Resp(self.port, host=self.host, timeout=timeout)

    def call(self, *args, timeout=5.0):
        with self.client(timeout) as c:
            return c.call(*args)

    def ping(self):
        try:
            return self.call("PING", timeout=2.0) == "PONG"
        except (OSError, RespError, ConnectionClosed, ValueError):
            return False

    def log_text(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines=20):
        text = self.log_text().splitlines()
        return "---- node %d log (%s), last %d lines:\n%s" % (self.id, self.log, lines,
                                                               "\n".join(text[-lines:]))


def accepts_setting(bin_path, key, value):
    """True if this ringraftd knows the setting (--check-config accepts it)."""
    r = subprocess.run([bin_path, "--" + key, value, "--check-config"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=30)
    return r.returncode == 0


class Cluster:
    """N nodes of ringraftd-faults, on 127.0.0.1 (free ports) or each in its own network
    namespace (net: a Net that is set up)."""

    def __init__(self, bin, dir, n=3, groups=8, workers=1, extra=(), net=None):
        self.bin = os.path.abspath(bin)
        self.dir = dir
        self.groups = groups
        self.workers = workers
        self.extra = list(extra)
        self.net = net
        self.cluster_id = "0x%016x" % (random.getrandbits(63) | 1)
        self.secret = "%032x" % random.getrandbits(128)
        os.makedirs(dir, exist_ok=True)
        if net is not None and accepts_setting(self.bin, "protected-mode", "no"):
            # Clients reach namespaced nodes from the bridge's address, not from loopback:
            # a build with protected mode (no requirepass: loopback clients only) must be
            # told to serve them.
            self.extra.append("--protected-mode")
            self.extra.append("no")
        if net is not None:
            self.nodes = [Node(self, i, net.addr(i), CLIENT_PORT, PEER_PORT, net.ns(i))
                          for i in range(1, n + 1)]
        else:
            bases = harness.free_port_ranges([1] * n + [workers] * n)
            self.nodes = [Node(self, i + 1, "127.0.0.1", bases[i], bases[n + i])
                          for i in range(n)]

    def nodes_setting(self):
        return ",".join("%d=%s:%d@%d" % (x.id, x.host, x.port, x.peer_port) for x in self.nodes)

    def node(self, i):
        return self.nodes[i - 1]

    def running(self):
        return [x for x in self.nodes if x.running() and not x.paused]

    def start(self, timeout=60):
        for x in self.nodes:
            if not x.running():
                x.start()
        self.wait_ready(timeout)

    def wait_ready(self, timeout=60, nodes=None):
        """Every running node answers PING and sees a leader for every group. Returns the
        seconds it took; raises RuntimeError after timeout."""
        t0 = time.monotonic()
        nodes = nodes or self.running()
        last = {}
        while time.monotonic() - t0 < timeout:
            ok = True
            for x in nodes:
                if not x.running():
                    raise RuntimeError("node %d exited while waiting for the cluster\n%s"
                                       % (x.id, x.log_tail()))
                try:
                    info = harness.parse_info(x.call("INFO", "raft", timeout=2.0))
                    last[x.id] = info.get("groups_with_leader")
                    if int(info.get("groups_with_leader", -1)) != self.groups:
                        ok = False
                except (OSError, RespError, ConnectionClosed, ValueError) as e:
                    last[x.id] = repr(e)
                    ok = False
            if ok:
                return time.monotonic() - t0
            time.sleep(0.1)
        raise RuntimeError("cluster not ready after %ds: groups_with_leader per node %s of %d"
                           % (timeout, last, self.groups))

    def leaders(self):
        """{group: leader node id} as the running nodes report it (a group's leader is
        the one the node that believes it leads, or else the majority's view)."""
        votes = {}
        for x in self.running():
            try:
                st = harness.parse_raft_status(x.call("RAFT", "STATUS", timeout=2.0))
            except (OSError, RespError, ConnectionClosed, ValueError):
                continue
            for g, f in st.items():
                if f.get("role") == "leader":
                    votes[g] = x.id
                elif g not in votes and f.get("leader"):
                    votes[g] = f["leader"]
        return votes

    def groups_led(self):
        led = {x.id: 0 for x in self.nodes}
        for g, leader in self.leaders().items():
            if leader in led:
                led[leader] += 1
        return led

    def group_of(self, key):
        for x in self.running():
            try:
                slot = x.call("CLUSTER", "KEYSLOT", key, timeout=2.0)
                return slot * self.groups // 16384
            except (OSError, RespError, ConnectionClosed):
                continue
        raise RuntimeError("no node answers CLUSTER KEYSLOT")

    def sanitizer_reports(self):
        found = []
        for x in self.nodes:
            for line in x.log_text().splitlines():
                if any(m in line for m in harness.SANITIZER_MARKERS) or \
                        "assertion failed" in line:
                    found.append("node %d: %s" % (x.id, line))
        return found[:20]

    def unexpected_exits(self):
        out = []
        for x in self.nodes:
            x._note_exit()
            out += ["node %d exited by itself with status %s" % (x.id, st)
                    for st, expected in x.exits if not expected]
        return out

    def close(self):
        for x in self.nodes:
            if x.proc is not None and x.proc.poll() is None:
                x.resume()
                x.expected_exit = True
                os.kill(x.proc.pid, signal.SIGKILL)
                x._wait(10)
