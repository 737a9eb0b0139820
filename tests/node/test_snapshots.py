"""Snapshots on real nodes: restart from snapshot + WAL tail gives the same state (per-group
digest, consumer groups included), and a follower kept away while the leaders compact past it catches up through
InstallSnapshot and then serves the same data."""

import json
import os
import shutil
import signal
import subprocess
import time
import unittest

from harness import REPO, Cluster, TestFailure, deadline_loop

RINGRAFT_WAL = os.environ.get("RINGRAFT_WAL",
                              os.path.join(REPO, "build", "debug", "tools", "ringraft-wal"))

G = 8


def digest_map(node, groups=G):
    """{group: "applied:N digest:HEX"} of this node's copy of every group."""
    out = {}
    for g in range(groups):
        text = node.call("RAFT", "DIGEST", g).decode()
        fields = dict(f.split(":", 1) for f in text.split())
        out[g] = (int(fields["applied"]), fields["digest"], int(fields["snapshot"]))
    return out


def states(node, groups=G):
    """{group: digest} (the state alone, whatever the applied index)."""
    return {g: d for g, (_, d, _) in digest_map(node, groups).items()}


def wait_same_state(test, nodes, timeout=30, groups=G, at_least=None):
    """Waits until every node has the same (applied, digest) for every group, and, with
    at_least ({group: (applied, ...)}), has applied at least that far: nodes restarted
    together agree at once on the state of their snapshots, before they learn the commit
    index that lets them apply the log tail."""
    last = None
    for _ in deadline_loop(timeout, 0.2):
        maps = [digest_map(x, groups) for x in nodes]
        last = maps
        if at_least is not None and any(m[g][0] < at_least[g][0] for m in maps for g in m):
            continue
        if all({g: v[:2] for g, v in m.items()} == {g: v[:2] for g, v in maps[0].items()}
               for m in maps):
            return maps[0]
    raise TestFailure("nodes %s never agreed on every group's state: %s"
                      % ([x.id for x in nodes],
                         "\n".join("node %d: %s" % (x.id, m) for x, m in zip(nodes, last))))


def wait_leaders_among(nodes, timeout=20, groups=G):
    """Waits until every group is led by one of `nodes`, as each of them sees it."""
    ids = {x.id for x in nodes}
    last = None
    for _ in deadline_loop(timeout, 0.1):
        last = [{g: f["leader"] for g, f in x.raft_status().items()} for x in nodes]
        if all(len(m) == groups and all(v in ids for v in m.values()) for m in last):
            return
    raise TestFailure("groups not all led by nodes %s after %ds: %s" % (sorted(ids), timeout, last))


def write_data(node, tag, n=1500):
    with node.client(timeout=30) as c:
        replies = c.pipeline([("SET", "%s:%d" % (tag, i), "v-%s-%d" % (tag, i)) for i in range(n)])
        bad = [r for r in replies if r != "OK"]
        if bad:
            raise TestFailure("writes %s through node %d failed: %s" % (tag, node.id, bad[:3]))
        c.pipeline([("INCR", "ctr:%d" % (i % 16)) for i in range(200)])
        c.pipeline([("XADD", "log:%d" % (i % 8), "*", "i", str(i)) for i in range(200)])
        # Consumer groups ride in the streams' images: groups, consumers, pending entries.
        group = "g-%s" % tag
        c.pipeline([("XGROUP", "CREATE", "log:%d" % i, group, "0", "MKSTREAM") for i in range(8)])
        read = c.pipeline([("XREADGROUP", "GROUP", group, "c%d" % (i % 3), "COUNT", "7",
                            "STREAMS", "log:%d" % (i % 8), ">") for i in range(40)])
        if not any(isinstance(r, list) and r for r in read):
            raise TestFailure("XREADGROUP through node %d delivered nothing: %s"
                              % (node.id, read[:3]))
        c.pipeline([("XAUTOCLAIM", "log:%d" % i, group, "c9", "0", "0", "COUNT", "3")
                    for i in range(8)])


def check_data(test, node, tag, n=1500):
    with node.client(timeout=30) as c:
        got = c.pipeline([("GET", "%s:%d" % (tag, i)) for i in range(n)])
    bad = [i for i, v in enumerate(got) if v != ("v-%s-%d" % (tag, i)).encode()]
    test.assertEqual(bad[:5], [], "node %d: %d keys of %s missing or wrong" % (node.id, len(bad), tag))


def snapshot_all(test, nodes, groups=G, timeout=20):
    """RAFT SNAPSHOT every group on every node, then waits until each file is durable (the
    group's snapshot index reaches the index asked for)."""
    want = {}
    for x in nodes:
        for g in range(groups):
            want[(x.id, g)] = x.call("RAFT", "SNAPSHOT", g)
    for _ in deadline_loop(timeout, 0.2):
        done = True
        for x in nodes:
            m = digest_map(x, groups)
            for g in range(groups):
                if m[g][2] < want[(x.id, g)]:
                    done = False
        if done:
            return
    raise TestFailure("snapshots not durable after %ds" % timeout)


class SnapshotTests(unittest.TestCase):
    def test_restart_from_snapshot_and_log_tail(self):
        """Every group snapshotted on every node, more writes after (the WAL tail), then the
        whole cluster stopped and started, and later killed -9 and started: each node comes
        back from its snapshot plus the tail with every group's state identical (digest) to
        before, and serves the data."""
        with Cluster(3, groups=G) as c:
            c.start()
            write_data(c.node(1), "a")
            snapshot_all(self, c.nodes)
            write_data(c.node(2), "b")
            before = wait_same_state(self, c.nodes)
            self.assertTrue(all(s > 0 for _, _, s in before.values()), before)
            per_node = {x.id: states(x) for x in c.nodes}
            self.assertEqual(c.stop_all(), {1: 0, 2: 0, 3: 0})
            c.start(timeout=40)
            wait_same_state(self, c.nodes, at_least=before)
            for x in c.nodes:
                self.assertEqual(states(x), per_node[x.id], "node %d after restart" % x.id)
                check_data(self, x, "a")
                check_data(self, x, "b")
                m = digest_map(x)
                self.assertTrue(all(s > 0 for _, _, s in m.values()),
                                "node %d restarted without its snapshots: %s" % (x.id, m))
            # Again after a crash of every node (no clean shutdown).
            write_data(c.node(3), "c")
            snapshot_all(self, c.nodes)
            write_data(c.node(1), "d", n=300)
            before = wait_same_state(self, c.nodes)
            per_node = {x.id: states(x) for x in c.nodes}
            for x in c.nodes:
                x.kill()
            c.start(timeout=40)
            wait_same_state(self, c.nodes, at_least=before)
            for x in c.nodes:
                self.assertEqual(states(x), per_node[x.id], "node %d after kill -9" % x.id)
                for tag in ("a", "b", "c"):
                    check_data(self, x, tag)

    def _follower_catches_up(self, pause, extra=()):
        with Cluster(3, groups=G, extra=["--snapshot-trailing-entries", "5"] + list(extra)) as c:
            c.start()
            write_data(c.node(1), "a", n=300)
            victim = c.node(3)
            others = [c.node(1), c.node(2)]
            wait_same_state(self, c.nodes)
            pause(victim, True)
            wait_leaders_among(others)
            # Some writes the victim does not answer, then a pause: its leaders stop
            # pipelining to it (no answer within an election timeout) and probe instead, so
            # what follows is not sent to it ahead of time (a stopped process's sockets still
            # take bytes until their buffers fill).
            write_data(c.node(1), "b0", n=200)
            time.sleep(1.5)
            write_data(c.node(1), "b", n=3000)
            snapshot_all(self, others)
            # The leaders' logs now start past the victim's last entry (5 trailing entries
            # kept): only a snapshot can bring it back.
            behind = digest_map(c.node(1))
            t0 = time.monotonic()
            pause(victim, False)
            victim.wait_ping(20)
            agreed = wait_same_state(self, c.nodes, timeout=40)
            caught_up_s = time.monotonic() - t0
            installed = 0
            for _ in deadline_loop(5, 0.1):  # counters are published every 100 ms
                installed = int(victim.info("snapshots")["snapshots_installed"])
                if installed > 0:
                    break
            self.assertGreater(installed, 0, "the victim caught up without a snapshot")
            print("victim installed %d snapshots and caught up %d groups in %.1f s "
                  "(resumed to identical state); groups at %s" % (
                      installed, len(agreed), caught_up_s,
                      {g: v[0] for g, v in agreed.items()}))
            check_data(self, victim, "a", n=300)
            check_data(self, victim, "b", n=3000)
            # It keeps working: new writes reach it, and it restarts from what it installed.
            write_data(c.node(2), "c", n=300)
            wait_same_state(self, c.nodes)
            mine = states(victim)
            victim.stop()
            victim.start()
            victim.wait_ping(20)
            wait_same_state(self, c.nodes)
            self.assertEqual(states(victim), mine, "the victim after a restart")
            check_data(self, victim, "c", n=300)
            self.assertGreaterEqual(min(v[0] for v in behind.values()), 1)

    def test_follower_stopped_catches_up_by_snapshot(self):
        """A follower stopped while the leaders write and compact past it catches up through
        InstallSnapshot when it returns, with identical data."""
        def pause(node, down):
            if down:
                node.stop()
            else:
                node.start()
        self._follower_catches_up(pause)

    def test_follower_sigstopped_catches_up_by_snapshot(self):
        """The same with SIGSTOP / SIGCONT: the follower's connections stay open while it
        cannot run. Quiescence is off here: a quiesced group whose leader is stopped (not
        dead: its connections stay up) is never replaced, as nothing reports it down."""
        def pause(node, down):
            os.kill(node.pid, signal.SIGSTOP if down else signal.SIGCONT)
        self._follower_catches_up(pause, extra=["--quiesce", "no"])


class SnapshotDuringWritesTests(unittest.TestCase):
    def test_snapshot_taken_while_writing_restarts_identical(self):
        """A snapshot of a 100k-key group written a 4 KiB slice per loop iteration while
        overwrites, deletes, expiring keys and new keys keep coming: the image must be the
        state at its index, so a node killed right after and restarted from it plus the WAL
        tail must agree with the others (per-group digest)."""
        with Cluster(3, groups=1, extra=["--snapshot-slice-bytes", "4096",
                                         "--snapshot-log-bytes", "0",
                                         "--snapshot-worker-log-bytes", "0",
                                         "--snapshot-wal-segments", "0"]) as c:
            c.start()
            with c.node(1).client(timeout=60) as cl:
                for k in range(0, 100000, 2000):
                    r = cl.pipeline([("SET", "k:%d" % i, "v%d-%s" % (i, "x" * 64))
                                     for i in range(k, k + 2000)])
                    self.assertEqual([x for x in r if x != "OK"], [])
                # Keys that writes will change in ways a replay does not repeat exactly
                # (a counter, a growing string, a stream): an image holding their later
                # state would diverge once the WAL tail is applied on top of it.
                cl.pipeline([("SET", "n:%d" % i, "0") for i in range(5000)])
                cl.pipeline([("SET", "a:%d" % i, "a") for i in range(5000)])
                cl.pipeline([("XADD", "s:%d" % i, "*", "f", "v") for i in range(500)])
            wait_same_state(self, c.nodes, groups=1, timeout=60)
            node = c.node(2)
            before = digest_map(node, groups=1)[0]
            import random
            import threading
            rng = random.Random(3)
            stop = threading.Event()
            done = {"batches": 0, "during": 0}
            state = {"snapshotting": False}

            def writer():
                with c.node(1).client(timeout=60) as cl:
                    while not stop.is_set():
                        cmds = []
                        for _ in range(100):
                            i = rng.randrange(120000)
                            op = rng.randrange(7)
                            if op == 0:
                                cmds.append(("DEL", "k:%d" % i))
                            elif op == 1:
                                cmds.append(("SET", "k:%d" % i, "w%d" % i, "PX", "50"))
                            elif op == 2:
                                cmds.append(("INCR", "n:%d" % (i % 5000)))
                            elif op == 3:
                                cmds.append(("APPEND", "a:%d" % (i % 5000), "+"))
                            elif op == 4:
                                cmds.append(("XADD", "s:%d" % (i % 500), "*", "g", str(i)))
                            else:
                                cmds.append(("SET", "k:%d" % i, "u%d" % i))
                        during = state["snapshotting"]
                        cl.pipeline(cmds)
                        done["batches"] += 1
                        if during and state["snapshotting"]:
                            done["during"] += 1

            t = threading.Thread(target=writer, daemon=True)
            t.start()
            time.sleep(0.5)
            state["snapshotting"] = True
            want = node.call("RAFT", "SNAPSHOT", 0)
            self.assertGreater(want, before[2])
            for _ in deadline_loop(60, 0.01):
                if digest_map(node, groups=1)[0][2] >= want:
                    break
            state["snapshotting"] = False
            time.sleep(0.3)
            stop.set()
            t.join()
            batches = done["during"]
            self.assertGreater(batches, 2, "the snapshot ended before writes overlapped it")
            snap = digest_map(node, groups=1)[0][2]
            self.assertGreaterEqual(snap, want)
            print("snapshot at %d written while %d batches of 100 writes ran" % (snap, batches))
            wait_same_state(self, c.nodes, groups=1, timeout=60)
            node.kill()
            node.start()
            node.wait_ping(30)
            agreed = wait_same_state(self, c.nodes, groups=1, timeout=60)
            self.assertEqual(digest_map(node, groups=1)[0][2], snap,
                             "the restarted node did not start from the snapshot")
            print("after restart: %s" % (agreed[0],))


class LargeSnapshotTests(unittest.TestCase):
    GROUPS = 4
    VALUE = "v" * 1000

    def _setup(self, c):
        """Stops node 3, writes about 6 MB (1.5 MB of state per group, several 256 KiB chunks
        each), snapshots every group on the two others. Returns the victim."""
        c.start()
        victim = c.node(3)
        others = [c.node(1), c.node(2)]
        victim.stop()
        wait_leaders_among(others, groups=self.GROUPS)
        with c.node(1).client(timeout=60) as cl:
            for k in range(0, 6000, 500):
                r = cl.pipeline([("SET", "big:%d" % i, self.VALUE + str(i))
                                 for i in range(k, k + 500)])
                self.assertEqual([x for x in r if x != "OK"], [])
        snapshot_all(self, others, groups=self.GROUPS, timeout=60)
        return victim, others

    def _check_victim(self, c, victim):
        wait_same_state(self, c.nodes, timeout=60, groups=self.GROUPS)
        with victim.client(timeout=60) as cl:
            got = cl.pipeline([("GET", "big:%d" % i) for i in range(6000)])
        bad = [i for i, v in enumerate(got) if v != (self.VALUE + str(i)).encode()]
        self.assertEqual(bad[:5], [], "victim: %d keys missing or wrong" % len(bad))

    def test_large_snapshots_sent_in_chunks(self):
        """Snapshots of about 1.5 MB per group go to a returning follower in 256 KiB chunks
        read from the leaders' files (the core holds no image), each acknowledged once the
        follower synced it, and install with identical state."""
        with Cluster(3, groups=self.GROUPS, extra=["--snapshot-trailing-entries", "5"]) as c:
            victim, others = self._setup(c)
            t0 = time.monotonic()
            victim.start()
            victim.wait_ping(20)
            wait_same_state(self, c.nodes, timeout=60, groups=self.GROUPS)
            caught_up_s = time.monotonic() - t0
            self._check_victim(c, victim)
            chunks = sum(int(x.info("snapshots")["snapshot_chunks_sent"]) for x in others)
            installed = int(victim.info("snapshots")["snapshots_installed"])
            print("victim installed %d snapshots from %d chunks; caught up in %.1f s from its "
                  "start (process start and WAL recovery included)" % (
                      installed, chunks, caught_up_s))
            self.assertGreater(installed, 0)
            self.assertGreater(chunks, 4 * installed, "the transfers were not chunked")

    def test_damaged_snapshot_file_is_not_sent(self):
        """A byte flipped inside the leaders' snapshot files (a data record): the leader finds
        the damage when it reads a chunk (every record is verified before it is sent), sends
        nothing of it, and takes a new snapshot; the follower installs that one, never the
        damaged bytes."""
        with Cluster(3, groups=self.GROUPS, extra=["--snapshot-trailing-entries", "5"]) as c:
            victim, others = self._setup(c)
            damaged = 0
            for x in others:
                wal = os.path.join(x.data, "wal-0")
                for f in os.listdir(wal):
                    if f.startswith("snap-") and ".tmp" not in f:
                        path = os.path.join(wal, f)
                        size = os.path.getsize(path)
                        with open(path, "r+b") as fh:
                            fh.seek(size // 2)
                            b = fh.read(1)
                            fh.seek(size // 2)
                            fh.write(bytes([b[0] ^ 0x5a]))
                        damaged += 1
            self.assertGreaterEqual(damaged, 2 * self.GROUPS)
            # New entries, so the replacement snapshot has something newer to cover.
            with c.node(1).client(timeout=30) as cl:
                cl.pipeline([("SET", "after:%d" % i, "x") for i in range(200)])
            victim.start()
            victim.wait_ping(20)
            self._check_victim(c, victim)
            logs = "".join(x.log_text() for x in others)
            self.assertIn("is damaged", logs)
            self.assertGreater(int(victim.info("snapshots")["snapshots_installed"]), 0)


class StaleWalSuffixTests(unittest.TestCase):
    def _term(self, x):
        return x.raft_status()[0]["term"]

    def _restart_until_term(self, c, x, term):
        """Restarts the single node until group 0's term is at least `term`; returns it."""
        t = 0
        while t < term:
            c.start()
            t = self._term(x)
            self.assertEqual(c.stop_all(), {1: 0})
        return t

    def test_stale_wal_suffix_behind_snapshot_dropped_at_start(self):
        """The state a crash leaves between a received snapshot's rename and the WAL's
        truncation behind it: the newest snapshot covers (I, T) while the WAL holds a
        suffix of the history the snapshot replaced, of a lower term at I and past I (the
        hard state's term is T or above). The node starts from the snapshot without that
        suffix, and queues its truncation. Built from two histories of one node: A writes
        entries in a low term, B starts fresh, reaches a higher term and snapshots; B's
        snapshot file is put beside A's WAL."""
        with Cluster(1, groups=1) as c:
            x = c.node(1)
            c.start()
            with x.client(timeout=30) as cl:
                self.assertEqual(set(cl.pipeline([("SET", "a:%d" % i, "stale")
                                                  for i in range(300)])), {"OK"})
            term_a = self._term(x)
            self.assertEqual(c.stop_all(), {1: 0})
            history_a = x.data + ".a"
            os.rename(x.data, history_a)
            # History B: fresh, in a term above A's, 50 writes and a snapshot.
            self._restart_until_term(c, x, term_a + 1)
            c.start()
            with x.client(timeout=30) as cl:
                self.assertEqual(set(cl.pipeline([("SET", "b:%d" % i, "new")
                                                  for i in range(50)])), {"OK"})
            snap_i = x.call("RAFT", "SNAPSHOT", 0)
            snap_t = self._term(x)
            for _ in deadline_loop(20, 0.1):
                if digest_map(x, 1)[0][2] >= snap_i:
                    break
            self.assertEqual(c.stop_all(), {1: 0})
            self.assertGreater(snap_i, 50)
            self.assertLess(snap_i, 300)
            history_b = x.data + ".b"
            os.rename(x.data, history_b)
            # A's hard state reaches B's term (the leader's term reached the follower before
            # its snapshot did); its entries at and after snap_i stay of term_a < snap_t.
            os.rename(history_a, x.data)
            self._restart_until_term(c, x, snap_t)
            wal = os.path.join(x.data, "wal-0")
            self.assertEqual([f for f in os.listdir(wal) if f.startswith("snap-")], [])
            for f in os.listdir(os.path.join(history_b, "wal-0")):
                if f.startswith("snap-") and ".tmp" not in f:
                    shutil.copy(os.path.join(history_b, "wal-0", f), wal)
            mark = len(x.log_text())
            c.start()
            self.assertIn("of another history", x.log_text()[mark:])
            st = x.raft_status()[0]
            self.assertEqual(st["snapshot"], snap_i)
            self.assertLessEqual(st["last"], snap_i + 1)  # the new leader's entry at most
            with x.client(timeout=30) as cl:
                self.assertEqual(cl.pipeline([("GET", "b:%d" % i) for i in range(50)]),
                                 [b"new"] * 50)
                self.assertEqual(cl.pipeline([("GET", "a:%d" % i) for i in range(300)]),
                                 [None] * 300)
            # The truncation was queued and made durable (a single node never truncates
            # otherwise), and the suffix stays gone at the next start.
            self.assertEqual(c.stop_all(), {1: 0})
            dump = subprocess.run([RINGRAFT_WAL, "dump", "--json", wal], capture_output=True,
                                  check=True).stdout.decode()
            recs = [json.loads(line) for line in dump.splitlines() if line.startswith("{")]
            truncations = [r["index"] for r in recs if r["type"] == "truncate" and r["group"] == 0]
            self.assertEqual(truncations, [snap_i + 1])
            mark = len(x.log_text())
            c.start()
            self.assertNotIn("of another history", x.log_text()[mark:])
            self.assertEqual(x.raft_status()[0]["snapshot"], snap_i)
            with x.client(timeout=30) as cl:
                self.assertEqual(cl.call("GET", "b:7"), b"new")
                self.assertIsNone(cl.call("GET", "a:299"))


class LeftBehindTransferTests(unittest.TestCase):
    VALUE = "v" * 1000
    NO_AUTO = ["--snapshot-log-bytes", "0", "--snapshot-worker-log-bytes", "0",
               "--snapshot-wal-segments", "0", "--snapshot-trailing-entries", "5"]

    def test_transfer_left_by_a_dead_leader_is_dropped(self):
        """The leader dies while a follower receives its snapshot; the new leader, which
        never compacted, catches the follower up with entries. The follower drops the
        transfer left behind (its temporary file goes) and can take snapshots again."""
        with Cluster(3, groups=1, extra=self.NO_AUTO) as c:
            c.start()
            leader = c.node(c.node(1).raft_status()[0]["leader"])
            victim, middle = [x for x in c.nodes if x is not leader]
            victim.stop()
            for _ in deadline_loop(20, 0.1):
                if leader.raft_status()[0]["leader"] == leader.id:
                    break
            with leader.client(timeout=60) as cl:
                for k in range(0, 6000, 500):
                    r = cl.pipeline([("SET", "big:%d" % i, self.VALUE + str(i))
                                     for i in range(k, k + 500)])
                    self.assertEqual([x for x in r if x != "OK"], [])
            snapshot_all(self, [leader], groups=1, timeout=60)
            self.assertEqual(digest_map(middle, 1)[0][2], 0, "the middle node snapshotted")
            wal = os.path.join(victim.data, "wal-0")
            victim.start()
            seen = False
            for _ in deadline_loop(30, 0.005):
                if os.path.isdir(wal) and any(f.endswith(".tmp") for f in os.listdir(wal)):
                    seen = True
                    break
            self.assertTrue(seen, "the victim never started receiving the snapshot")
            leader.kill()
            victim.wait_ping(20)
            if int(victim.info("snapshots")["snapshots_installed"]) > 0:
                self.skipTest("the transfer finished before its leader was killed")
            wait_same_state(self, [victim, middle], timeout=60, groups=1)
            for _ in deadline_loop(20, 0.1):
                if not any(f.endswith(".tmp") for f in os.listdir(wal)):
                    break
            self.assertEqual([f for f in os.listdir(wal) if f.endswith(".tmp")], [],
                             "the transfer's temporary file was left behind")
            self.assertEqual(int(victim.info("snapshots")["snapshots_installed"]), 0)
            self.assertGreaterEqual(int(victim.info("snapshots")["snapshots_dropped"]), 1)
            # The group snapshots again on the victim.
            snapshot_all(self, [victim], groups=1, timeout=30)
            self.assertGreater(digest_map(victim, 1)[0][2], 0)


if __name__ == "__main__":
    unittest.main()
