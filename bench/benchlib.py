"""benchlib: what the benchmark scripts share: a RESP call, INFO, free ports, /proc CPU
counters, and starting and stopping redis-server and local ringraft clusters that the script
owns (stopped by PID, also on errors and on SIGTERM/SIGINT).

Python 3 standard library only."""

import atexit
import os
import signal
import shutil
import socket
import subprocess
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
LIVE = []  # Popen objects started here and not stopped yet


def log(prefix, msg):
    sys.stderr.write("[%s] %s\n" % (prefix, msg))
    sys.stderr.flush()


# ---- RESP ----------------------------------------------------------------------------------

def resp_call(port, *args, timeout=5.0):
    """One command on a fresh connection to 127.0.0.1:port; returns the reply (strings as
    str, integers as int, arrays as lists); raises RuntimeError on an error reply."""
    req = b"*%d\r\n" % len(args) + b"".join(
        b"$%d\r\n%s\r\n" % (len(a), a) for a in (str(x).encode() for x in args))
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(req)
        return _read(s.makefile("rb"))


def _read(f):
    line = f.readline()
    if not line:
        raise ConnectionError("connection closed")
    t, body = line[:1], line[1:-2]
    if t == b"+":
        return body.decode()
    if t == b"-":
        raise RuntimeError(body.decode())
    if t == b":":
        return int(body)
    if t == b"$":
        n = int(body)
        return None if n < 0 else f.read(n + 2)[:-2].decode(errors="replace")
    if t == b"*":
        n = int(body)
        return None if n < 0 else [_read(f) for _ in range(n)]
    raise RuntimeError("bad reply %r" % line)


def info(port, section=None):
    text = resp_call(port, "INFO", section) if section else resp_call(port, "INFO")
    out = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            out[k] = v
    return out


# ---- ports and /proc -----------------------------------------------------------------------

def port_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_block(start, size):
    """The first port base >= start (in steps of 1000) with size free ports after it."""
    for base in range(start, 60000, 1000):
        if all(port_free(p) for p in range(base, base + size)):
            return base
    raise SystemExit("no free block of %d ports from %d" % (size, start))


def cpu_ticks(pid):
    """utime + stime of process pid (all its threads), in clock ticks."""
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])


def cpu_seconds(pids):
    return sum(cpu_ticks(p) for p in pids) / CLK_TCK


# ---- processes -----------------------------------------------------------------------------

def stop(proc, timeout=10.0):
    """SIGTERM, wait, SIGKILL after timeout. Returns the exit status."""
    if proc in LIVE:
        LIVE.remove(proc)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def _stop_all():
    for p in list(LIVE):
        stop(p, 5.0)


def _on_signal(signum, frame):
    _stop_all()
    sys.exit(128 + signum)


atexit.register(_stop_all)
signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)


def wait_ping(port, proc, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if resp_call(port, "PING", timeout=1) == "PONG":
                return
        except (OSError, RuntimeError):
            pass
        if proc.poll() is not None:
            raise SystemExit("%s exited with status %s during start-up" % (what, proc.returncode))
        if time.monotonic() > deadline:
            raise SystemExit("%s does not answer PING after %.0f s" % (what, timeout))
        time.sleep(0.05)


class RedisServer:
    """redis-server with an append-only file: fsync = "always" or "everysec"."""

    def __init__(self, port, data_dir, log_dir, fsync):
        self.port = port
        self.dir = os.path.join(data_dir, "redis-" + fsync)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.log = os.path.join(log_dir, "redis-%s.log" % fsync)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--appendonly", "yes", "--appendfsync", fsync, "--save", "",
             "--auto-aof-rewrite-percentage", "0", "--daemonize", "no", "--logfile", self.log],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        LIVE.append(self.proc)
        self.pids = [self.proc.pid]
        wait_ping(port, self.proc, "redis-server (%s)" % fsync)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        return stop(self.proc)


class RingraftCluster:
    """A local N-node ringraft cluster on 127.0.0.1: node i serves clients on base + i and
    peers on base + 100 + 10 * i (+ worker); returns once every node sees a leader for every
    group and the leaders have spread (or a bound passed)."""

    def __init__(self, binary, base, data_dir, log_dir, nodes=3, groups=64, workers=1,
                 extra=(), tag="ringraft"):
        self.base, self.groups, self.n = base, groups, nodes
        self.dir = os.path.join(data_dir, tag)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        spec = ",".join("%d=127.0.0.1:%d@%d" % (i, base + i, base + 100 + 10 * i)
                        for i in range(1, nodes + 1))
        self.procs, self.logs = [], []
        for i in range(1, nodes + 1):
            logf = os.path.join(log_dir, "%s-node%d.log" % (tag, i))
            self.logs.append(logf)
            with open(logf + ".out", "w") as out:
                p = subprocess.Popen(
                    [binary, "--node-id", str(i), "--nodes", spec,
                     "--dir", os.path.join(self.dir, "n%d" % i), "--logfile", logf,
                     "--workers", str(workers), "--groups", str(groups)] + list(extra),
                    stdout=out, stderr=subprocess.STDOUT)
            LIVE.append(p)
            self.procs.append(p)
        self.pids = [p.pid for p in self.procs]
        for i in range(1, nodes + 1):
            wait_ping(self.port(i), self.procs[i - 1], "ringraftd node %d" % i)
        self.wait_ready()

    def port(self, i):
        return self.base + i

    def wait_ready(self, timeout=60.0):
        deadline = time.monotonic() + timeout
        target = -(-self.groups // self.n)
        while time.monotonic() < deadline:
            try:
                r = info(self.port(1), "raft")
                led = [int(r.get("groups_led_by_node_%d" % i, 0)) for i in range(1, self.n + 1)]
                if int(r.get("groups_with_leader", -1)) == self.groups and max(led) <= target:
                    return
            except (OSError, RuntimeError, ValueError):
                pass
            if not self.alive():
                raise SystemExit("a ringraftd node died during start-up; logs: %s" % self.logs)
            time.sleep(0.2)

    def alive(self):
        return all(p.poll() is None for p in self.procs)

    def counters(self):
        total = {}
        for i in range(1, self.n + 1):
            for k, v in info(self.port(i)).items():
                try:
                    total[k] = total.get(k, 0) + float(v)
                except ValueError:
                    pass
        return total

    def stop(self):
        return [stop(p, 15.0) for p in self.procs]
