#!/usr/bin/env python3
"""The several-hosts example of docs/operations.md ("Several hosts"), run as it is written.

    python3 tests/multihost/run.py [--bin PATH] [--out DIR] [--mutant advertise|bind]
                                   [--no-self-check]

One network namespace per host (tests/faults/cluster.py's Net: node i is 10.77.X.i, a
bridge in the root namespace, 10.77.X.254, plays the operator's machine), one ringraftd
per namespace. The config files are assembled from the blocks the document marks with
`<!-- multihost: NAME -->`, and the marked shell blocks are run as they are; the only
changes are the subnet (10.77.0. becomes 10.77.X.), the data directory (/var/lib/ringraft
becomes the host's directory under OUT) and /backup (a directory under OUT). So the
document's example cannot drift from what is tested.

The run: the first start of hosts 1-3 (the check-start block, every host serving, CLUSTER
NODES on every host giving each node its own address), then with a client writing keys
through every member: host 4 added and promoted (add-4), holding every group's data;
host 3 killed, removed (remove-3), its data directory deleted, started with join yes and
added again (add-3); a rolling restart of the four nodes; every acknowledged write read back
through every host and every group's copy equal on every node (RAFT DIGEST); a backup
(backup, on host 1), writes after it, every node stopped and restored on empty data
directories (restore, restore-nodes): every key acknowledged before the backup is served,
none written after it.

Before that, unless --no-self-check, the same first start with host 3's config advertising
127.0.0.1 for node 3 (a hand-built mistake): the address check must fail, naming it.
--mutant runs the whole example with such a mistake instead (advertise: node 3's own nodes
entry says 127.0.0.1; bind: host 3 binds 127.0.0.1) and passes only if the run fails.

Needs root and `ip netns`; otherwise it says why and passes as skipped. Every process is
stopped by its pid (and dies with the runner: PR_SET_PDEATHSIG); namespaces and the bridge
are removed at the end, or by the next run if this one was killed. Appends "passed failed"
to $RR_TEST_TALLY when set. Exit status 0 on success (or skip), 1 on failure. The run's
directory under OUT (default build/multihost) is removed when it ends as it should.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "faults"))
sys.path.insert(0, os.path.join(ROOT, "tests", "node"))

import cluster as fc  # noqa: E402  (Net, sh)
import harness  # noqa: E402  (Resp, parse_info, parse_raft_status, SAN_ENV, _child_setup)
from harness import ConnectionClosed, Resp, RespError  # noqa: E402

DOC = os.path.join(ROOT, "docs", "operations.md")
DOC_SUBNET = "10.77.0."
DOC_DATA = "/var/lib/ringraft"
DOC_BACKUP = "/backup"
MARK = re.compile(r"^<!-- multihost: ([a-z0-9-]+) -->$")
NET_ERRORS = (OSError, RespError, ConnectionClosed, ValueError)


class Failure(AssertionError):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def doc_blocks(path):
    """{name: text} of every block marked `<!-- multihost: NAME -->`: the indented lines
    after the mark (blank lines between them kept), without their 4-space indent."""
    lines = open(path).read().splitlines()
    blocks = {}
    for k, line in enumerate(lines):
        m = MARK.match(line)
        if not m:
            continue
        j = k + 1
        while j < len(lines) and lines[j].strip() == "":
            j += 1
        body = []
        while j < len(lines) and (lines[j].startswith("    ") or lines[j].strip() == ""):
            body.append(lines[j][4:])
            j += 1
        while body and body[-1].strip() == "":
            body.pop()
        if not body or m.group(1) in blocks:
            raise SystemExit("%s: mark %s has no block after it, or appears twice"
                             % (path, m.group(1)))
        blocks[m.group(1)] = "\n".join(body) + "\n"
    return blocks


def setting(text, key):
    """The last value of `key` in a config text."""
    value = None
    for line in text.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[0] == key:
            value = parts[1].strip()
    return value


class Host:
    def __init__(self, run, i):
        self.run = run
        self.id = i
        self.ns = run.net.ns(i)
        self.addr = run.net.addr(i)
        self.dir = os.path.join(run.out, "host%d" % i)
        self.data = os.path.join(self.dir, "data")
        self.conf = os.path.join(self.dir, "ringraft.conf")
        self.log = os.path.join(self.dir, "ringraftd.log")
        self.proc = None

    def local(self, text):
        """The document's text for this host: its subnet, data directory and backup."""
        return self.run.local(text).replace(DOC_DATA, self.data)

    def write_conf(self, text):
        os.makedirs(self.dir, exist_ok=True)
        with open(self.conf, "w") as f:
            f.write(self.local(text))
        os.chmod(self.conf, 0o600)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self):
        assert not self.running()
        os.makedirs(self.dir, exist_ok=True)
        argv = ["ip", "netns", "exec", self.ns, self.run.bin, self.conf]
        env = dict(os.environ)
        env.update(harness.SAN_ENV)
        with open(self.log, "ab") as log:
            log.write(("==== multihost: starting host %d: %s\n" % (self.id, " ".join(argv)))
                      .encode())
            log.flush()
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True,
                                         preexec_fn=harness._child_setup)
        harness._live[self.proc.pid] = self.proc

    def _reap(self, timeout):
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        harness._live.pop(self.proc.pid, None)
        return self.proc.returncode

    def stop(self):
        """SIGTERM (systemctl stop): a clean shutdown exits 0."""
        os.kill(self.proc.pid, signal.SIGTERM)
        rc = self._reap(20)
        if rc is None:
            self.kill()
        check(rc == 0, "host %d: exit status %s after SIGTERM\n%s" % (self.id, rc, self.tail()))

    def kill(self):
        if self.running():
            os.kill(self.proc.pid, signal.SIGKILL)
            self._reap(10)

    def client(self, timeout=5.0):
        return Resp(7001, host=self.addr, timeout=timeout, password=self.run.password)

    def call(self, *args, timeout=5.0):
        with self.client(timeout) as c:
            return c.call(*args)

    def tail(self, lines=25):
        try:
            text = open(self.log, "rb").read().decode(errors="replace").splitlines()
        except FileNotFoundError:
            text = []
        return "---- host %d log (%s), last %d lines:\n%s" % (self.id, self.log, lines,
                                                              "\n".join(text[-lines:]))


class Writer(threading.Thread):
    """Writes mh:N = vN through the hosts in `targets`, in turn, one request at a time;
    a write is acknowledged when it answered OK (a failed or timed-out one is not counted:
    it may or may not have been applied)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.targets = []
        self.acked = {}
        self.failed = 0
        self.n = 0
        self.halt = threading.Event()
        self.lock = threading.Lock()

    def set_targets(self, hosts):
        with self.lock:
            self.targets = list(hosts)

    def run(self):
        conns = {}
        k = 0
        while not self.halt.is_set():
            with self.lock:
                targets = list(self.targets)
            if not targets:
                time.sleep(0.05)
                continue
            h = targets[k % len(targets)]
            k += 1
            self.n += 1
            key, value = "mh:%d" % self.n, "v%d" % self.n
            try:
                if h.id not in conns:
                    conns[h.id] = h.client(timeout=5.0)
                if conns[h.id].call("SET", key, value) == "OK":
                    self.acked[key] = value
            except NET_ERRORS:
                self.failed += 1
                c = conns.pop(h.id, None)
                if c is not None:
                    c.close()
                time.sleep(0.05)
            time.sleep(0.002)
        for c in conns.values():
            c.close()

    def stop(self):
        self.halt.set()
        self.join(10)


class Run:
    def __init__(self, args, net, blocks, mutant=None):
        self.bin = os.path.abspath(args.bin)
        self.out = os.path.join(args.out, "run-%s" % (mutant or "example"))
        shutil.rmtree(self.out, ignore_errors=True)
        os.makedirs(self.out)
        self.net = net
        self.blocks = blocks
        self.mutant = mutant
        self.backup_dir = os.path.join(self.out, "backup")
        self.password = setting(blocks["common"], "requirepass")
        self.groups = int(setting(blocks["common"], "groups"))
        self.hosts = {i: Host(self, i) for i in range(1, 5)}
        self.t0 = time.monotonic()

    def local(self, text):
        return (text.replace(DOC_SUBNET, "10.77.%d." % self.net.x)
                .replace(DOC_BACKUP, self.backup_dir))

    def say(self, what):
        print("multihost: [%5.1fs] %s" % (time.monotonic() - self.t0, what), flush=True)

    def conf_text(self, host_block, extra=""):
        text = self.blocks["common"] + self.blocks[host_block] + extra
        if self.mutant == "advertise" and host_block.startswith("host-3"):
            # Node 3's own entry advertises loopback; the other nodes' entries are right.
            nodes = setting(text, "nodes")
            text += "nodes %s\n" % re.sub(r"(^|,)3=[^:,]+:", r"\g<1>3=127.0.0.1:", nodes)
        if self.mutant == "bind" and host_block.startswith("host-3"):
            text += "bind 127.0.0.1\n"
        return text

    def sh(self, name, host=None, timeout=120):
        """Runs the marked shell block `name` with bash, on the operator's machine (the root
        namespace) or on host `host` (its namespace); returns its output."""
        script = self.hosts[host].local(self.blocks[name]) if host else self.local(
            self.blocks[name])
        argv = ["bash", "-eu", "-c", script]
        if host:
            argv = ["ip", "netns", "exec", self.hosts[host].ns] + argv
        env = dict(os.environ, REDISCLI_AUTH=self.password)
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                             start_new_session=True)
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
            raise Failure("block %s did not finish in %d s" % (name, timeout))
        out = out.decode(errors="replace")
        check(p.returncode == 0, "block %s failed (exit %d):\n%s" % (name, p.returncode, out))
        return out

    def wait_ready(self, hosts, timeout=60):
        """Every host answers and sees a leader for every group."""
        end = time.monotonic() + timeout
        last = {}
        while time.monotonic() < end:
            ok = True
            for h in hosts:
                check(h.running(), "host %d exited\n%s" % (h.id, h.tail()))
                try:
                    info = harness.parse_info(h.call("INFO", "raft", timeout=2.0))
                    last[h.id] = info.get("groups_with_leader")
                    ok = ok and int(last[h.id]) == self.groups
                except NET_ERRORS as e:
                    last[h.id] = repr(e)
                    ok = False
            if ok:
                return
            time.sleep(0.2)
        raise Failure("hosts not ready after %d s: groups_with_leader %s of %d\n%s"
                      % (timeout, last, self.groups, "\n".join(h.tail() for h in hosts)))

    def wait_ping(self, h, timeout=30):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            check(h.running(), "host %d exited\n%s" % (h.id, h.tail()))
            try:
                if h.call("PING", timeout=2.0) == "PONG":
                    return
            except NET_ERRORS:
                pass
            time.sleep(0.1)
        raise Failure("host %d does not answer at %s:7001\n%s" % (h.id, h.addr, h.tail()))

    def check_addresses(self, hosts, members):
        """CLUSTER NODES through every host lists exactly the members, each at its own
        host's address and ports."""
        want = {i: "%s:7001@17001" % self.hosts[i].addr for i in members}
        for h in hosts:
            text = h.call("CLUSTER", "NODES").decode()
            got = {}
            for line in text.splitlines():
                f = line.split()
                got[int(f[6])] = f[1]
            check(got == want, "CLUSTER NODES through host %d (%s) gives %s, expected %s"
                  % (h.id, h.addr, got, want))

    def check_four_voters(self, h, timeout=30):
        """Every group's configuration, as host h sees it (RAFT STATUS, published once a
        second), has 4 voters and no learner. With check_addresses showing a node set of
        exactly nodes 1-4 (a superset of every configuration), that is all four."""
        end = time.monotonic() + timeout
        while True:
            st = harness.parse_raft_status(h.call("RAFT", "STATUS"))
            bad = [g for g, f in st.items() if f.get("voters") != 4 or f.get("learners") != 0]
            if not bad and len(st) == self.groups:
                return
            if time.monotonic() > end:
                raise Failure("host %d: groups %s do not have 4 voters and no learner"
                              % (h.id, bad[:8]))
            time.sleep(0.5)

    def check_keys(self, hosts, expect, absent=()):
        for h in hosts:
            keys = sorted(expect)
            with h.client(timeout=30) as c:
                got = c.pipeline([("GET", k) for k in keys])
                miss = [(k, expect[k], v) for k, v in zip(keys, got)
                        if not isinstance(v, bytes) or v.decode() != expect[k]]
                check(not miss, "host %d: %d of %d acknowledged keys wrong, e.g. %s"
                      % (h.id, len(miss), len(keys), miss[:5]))
                if absent:
                    got = c.pipeline([("GET", k) for k in absent])
                    back = [k for k, v in zip(absent, got) if v is not None]
                    check(not back, "host %d: keys written after the backup are back: %s"
                          % (h.id, back[:5]))

    def check_copies(self, hosts, timeout=30):
        """Every group's state (RAFT DIGEST) is the same on every host, at the same applied
        index."""
        end = time.monotonic() + timeout
        pending = list(range(self.groups))
        while pending:
            left = []
            for g in pending:
                seen = set()
                for h in hosts:
                    d = dict(x.split(":", 1) for x in h.call("RAFT", "DIGEST", g).decode().split())
                    seen.add((d["applied"], d["digest"]))
                if len(seen) != 1:
                    left.append((g, sorted(seen)))
            if not left:
                return
            if time.monotonic() > end:
                raise Failure("groups whose copies differ: %s" % left[:4])
            pending = [g for g, _ in left]
            time.sleep(0.3)

    def sanitizer_reports(self):
        found = []
        for h in self.hosts.values():
            try:
                text = open(h.log, "rb").read().decode(errors="replace")
            except FileNotFoundError:
                continue
            for line in text.splitlines():
                if any(m in line for m in harness.SANITIZER_MARKERS) or \
                        "assertion failed" in line:
                    found.append("host %d: %s" % (h.id, line))
        return found

    def close(self):
        for h in self.hosts.values():
            h.kill()

    # ---- the phases ---------------------------------------------------------------------

    def first_start(self):
        h1, h2, h3 = (self.hosts[i] for i in (1, 2, 3))
        for h in (h1, h2, h3):
            h.write_conf(self.conf_text("host-%d" % h.id))
            r = subprocess.run([self.bin, h.conf, "--check-config"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
            check(r.returncode == 0, "host %d: --check-config: %s" % (h.id, r.stdout.decode()))
        for h in (h1, h2, h3):
            h.start()
        for h in (h1, h2, h3):
            self.wait_ping(h)
        self.wait_ready([h1, h2, h3])
        self.check_addresses([h1, h2, h3], [1, 2, 3])
        out = self.sh("check-start", timeout=60)
        check(out.splitlines()[:2] == ["OK", "hello"], "check-start printed:\n%s" % out)
        self.say("hosts 1-3 started; every node advertised at its own address")

    def example(self):
        hosts = self.hosts
        self.first_start()
        w = Writer()
        w.set_targets([hosts[1], hosts[2], hosts[3]])
        w.start()
        try:
            self.grow_replace_restart(w)
        finally:
            w.stop()
        self.say("writer: %d writes acknowledged, %d failed" % (len(w.acked), w.failed))
        check(len(w.acked) > 100, "too few acknowledged writes: %d" % len(w.acked))
        every = list(hosts.values())
        self.check_keys(every, w.acked)
        self.check_copies(every)
        self.say("every acknowledged write reads back through every host; copies equal")
        self.backup_restore(w.acked)

    def grow_replace_restart(self, w):
        hosts = self.hosts
        h4 = hosts[4]
        h4.write_conf(self.conf_text("host-4"))
        h4.start()
        self.wait_ping(h4)
        try:
            r = h4.call("GET", "greeting", timeout=20.0)  # request-timeout-ms is 5 s
        except RespError as e:
            r = e
        check(isinstance(r, RespError) and str(r).startswith("CLUSTERDOWN no leader"),
              "host 4, before RAFT ADDNODE: GET answered %r, not -CLUSTERDOWN" % (r,))
        out = self.sh("add-4")
        check("addnode 4:" in out and " 0 failed" in out, "add-4 printed:\n%s" % out)
        for h in hosts.values():
            self.check_four_voters(h)
        self.check_addresses(hosts.values(), [1, 2, 3, 4])
        w.set_targets(list(hosts.values()))
        self.check_keys([h4], dict(w.acked))
        self.say("host 4 added and promoted; it serves every key written so far")

        h3 = hosts[3]
        w.set_targets([hosts[1], hosts[2], h4])
        h3.kill()
        self.sh("remove-3")
        shutil.rmtree(h3.data)
        h3.write_conf(self.conf_text("host-3-join"))
        h3.start()
        self.wait_ping(h3)
        out = self.sh("add-3")
        check("addnode 3:" in out and " 0 failed" in out, "add-3 printed:\n%s" % out)
        for h in hosts.values():
            self.check_four_voters(h)
        self.check_addresses(hosts.values(), [1, 2, 3, 4])
        w.set_targets(list(hosts.values()))
        self.say("host 3 replaced on an empty data directory")

        for i in (1, 2, 3, 4):
            h = hosts[i]
            h.stop()
            h.start()
            self.wait_ready([h])
            v = harness.parse_info(h.call("INFO", "server")).get("ringraft_version")
            check(v, "host %d: INFO server has no ringraft_version" % i)
        self.wait_ready(list(hosts.values()))
        self.say("rolling restart of hosts 1-4 done")

    def backup_restore(self, acked):
        hosts = self.hosts
        os.makedirs(self.backup_dir, exist_ok=True)
        self.sh("backup", host=1)
        check(os.path.getsize(os.path.join(self.backup_dir, "ringraft.tar")) > 0, "empty backup")
        later = ["mh:after:%d" % k for k in range(50)]
        with hosts[2].client() as c:
            for k in later:
                check(c.call("SET", k, "x") == "OK", "SET %s failed" % k)
        self.say("backup taken on host 1; 50 keys written after it")
        for h in hosts.values():
            h.stop()
        for h in hosts.values():
            os.rename(h.data, h.data + ".lost")
            os.makedirs(h.data)
            self.sh("restore", host=h.id)
            block = "host-%d" % h.id
            text = "".join(line + "\n" for line in self.blocks[block].splitlines()
                           if line.split() != ["join", "yes"])
            self.blocks["restored-%d" % h.id] = text
            h.write_conf(self.conf_text("restored-%d" % h.id, self.blocks["restore-nodes"]))
        for h in hosts.values():
            h.start()
        self.wait_ready(list(hosts.values()))
        self.check_addresses(hosts.values(), [1, 2, 3, 4])
        self.check_keys(list(hosts.values()), acked, absent=later)
        self.say("restored on 4 empty data directories: %d keys back, none written after the "
                 "backup" % len(acked))
        for h in hosts.values():
            h.stop()


def one_run(args, net, blocks, mutant, phase):
    """(ok, message) of running `phase` ('example' or 'first_start'). The run's directory
    (logs, data directories: a few GiB of WAL segments) is removed when the run ended as
    it should (the example passed, a mutant was caught), kept otherwise."""
    run = Run(args, net, blocks, mutant)
    ok, msg = False, ""
    try:
        getattr(run, phase)()
        reports = run.sanitizer_reports()
        check(not reports, "sanitizer reports or failed assertions:\n" + "\n".join(reports[:20]))
        ok = True
    except Failure as e:
        msg = str(e)
    except NET_ERRORS as e:  # a node that does not answer as it should
        msg = "%r\n%s" % (e, traceback.format_exc())
    finally:
        run.close()
    if ok == (mutant is None):
        shutil.rmtree(run.out, ignore_errors=True)
    return ok, msg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "debug", "ringraftd"))
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "multihost"))
    ap.add_argument("--mutant", choices=["advertise", "bind"])
    ap.add_argument("--no-self-check", action="store_true")
    args = ap.parse_args()
    args.out = os.path.abspath(args.out)  # the shell blocks cd into data directories
    blocks = doc_blocks(DOC)
    need = ["host-1", "host-2", "host-3", "common", "check-start", "host-4", "add-4", "remove-3",
            "host-3-join", "add-3", "backup", "restore", "restore-nodes"]
    missing = [b for b in need if b not in blocks]
    if missing:
        print("multihost: FAILED: %s lacks the blocks %s" % (DOC, missing))
        return 1
    why = fc.Net.probe()
    if why is None and shutil.which("redis-cli") is None:
        why = "no redis-cli (Debian package redis-tools)"
    passed = failed = 0
    if why is not None:
        print("multihost: SKIPPED: %s" % why)
    else:
        os.makedirs(args.out, exist_ok=True)
        net = fc.Net(4, os.path.join(args.out, ".state"))
        try:
            net.setup()
            print("multihost: hosts at 10.77.%d.1-4, binary %s" % (net.x, args.bin), flush=True)
            t0 = time.monotonic()
            if args.mutant:
                ok, msg = one_run(args, net, blocks, args.mutant, "example")
                print("multihost: mutant %s %s [%.0fs]\n%s" % (
                    args.mutant, "NOT CAUGHT" if ok else "caught", time.monotonic() - t0, msg))
                passed, failed = (0, 1) if ok else (1, 0)
            else:
                if not args.no_self_check:
                    ok, msg = one_run(args, net, blocks, "advertise", "first_start")
                    caught = not ok and "CLUSTER NODES through host 3" in msg and \
                        "127.0.0.1" in msg
                    print("multihost: self-check, host 3 advertising 127.0.0.1: %s [%.0fs]%s"
                          % ("caught" if caught else "NOT CAUGHT", time.monotonic() - t0,
                             "" if caught else "\n" + msg), flush=True)
                    passed, failed = (passed + 1, failed) if caught else (passed, failed + 1)
                t1 = time.monotonic()
                ok, msg = one_run(args, net, blocks, None, "example")
                print("multihost: example %s [%.0fs]%s" % (
                    "passed" if ok else "FAILED", time.monotonic() - t1, "" if ok else "\n" + msg))
                passed, failed = (passed + 1, failed) if ok else (passed, failed + 1)
        finally:
            net.teardown()
    tally = os.environ.get("RR_TEST_TALLY")
    if tally:
        with open(tally, "a") as f:
            f.write("%d %d\n" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
