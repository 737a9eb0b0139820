"""XREADGROUP BLOCK on a 3-node cluster: a consumer with nothing to read waits at the
stream's leader (also when it asked a follower) and is served when a write through any node
gives its group new entries, each entry to one consumer; nil at the BLOCK timeout (and no
consumer created, as in Redis); Redis's errors when the group or the stream goes away while
it waits; and a consumer waiting through a follower while the leader is killed is served by
the new leader, the entry delivered once."""

import threading
import time
import unittest

from harness import Cluster, Resp, RespError, deadline_loop

GROUPS = 4


def leader_of(c, key):
    """The node leading key's group, from CLUSTER KEYSLOT and RAFT STATUS."""
    via = c.running_nodes()[0]
    slot = via.call("CLUSTER", "KEYSLOT", key)
    group = slot * GROUPS // 16384
    for _ in deadline_loop(20):
        leader = via.raft_status()[group]["leader"]
        if leader and c.node(leader).running():
            return c.node(leader)
    raise AssertionError("no leader for %s" % key)


def blocked_clients(node):
    return int(node.info("clients")["blocked_clients"])


def wait_blocked(c, n, timeout=10):
    """Waits until n clients wait, counted on every running node (each waits at the node
    that led its stream's group when it was proposed; leadership may move meanwhile)."""
    counts = None
    for _ in deadline_loop(timeout):
        counts = [blocked_clients(x) for x in c.running_nodes()]
        if sum(counts) == n:
            return
    raise AssertionError("blocked_clients %r, expected %d in all" % (counts, n))


class BlockedReadGroup(threading.Thread):
    """XREADGROUP GROUP g <consumer> ... on its own connection in a thread; .reply, .error
    and .seconds when done."""

    def __init__(self, port, consumer, *args, group="g"):
        super().__init__(daemon=True)
        self.conn = Resp(port, timeout=60)
        self.args = ("XREADGROUP", "GROUP", group, consumer) + args
        self.reply = self.error = None
        self.seconds = None
        self.start()

    def run(self):
        t0 = time.monotonic()
        try:
            self.reply = self.conn.call(*self.args)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e
        self.seconds = time.monotonic() - t0
        self.conn.close()

    def ids(self):
        self.join(30)
        self.assertion()
        if self.reply is None:
            return []
        return [e[0].decode() for e in self.reply[0][1]]

    def assertion(self):
        if self.is_alive():
            raise AssertionError("XREADGROUP %r still waiting" % (self.args,))
        if self.error is not None:
            raise AssertionError("XREADGROUP %r: %r" % (self.args, self.error))


class XreadgroupBlockTests(unittest.TestCase):
    def test_woken_by_writes_each_entry_once(self):
        with Cluster(3, groups=GROUPS) as c:
            c.start()
            leader = leader_of(c, "s")
            other = [x for x in c.nodes if x is not leader]
            leader.call("XGROUP", "CREATE", "s", "g", "$", "MKSTREAM")
            # One consumer on the leader, one through a follower: both wait at the leader.
            a = BlockedReadGroup(leader.port, "ca", "BLOCK", "20000", "STREAMS", "s", ">")
            wait_blocked(c, 1)
            b = BlockedReadGroup(other[0].port, "cb", "BLOCK", "20000", "STREAMS", "s", ">")
            wait_blocked(c, 2)
            # A write through the third node: one of them gets it, the other keeps waiting.
            other[1].call("XADD", "s", "1-0", "f", "v1")
            for _ in deadline_loop(10):
                if not a.is_alive() or not b.is_alive():
                    break
            time.sleep(0.3)
            self.assertEqual(sum(1 for t in (a, b) if t.is_alive()), 1,
                             "one entry served exactly one of two waiting consumers")
            wait_blocked(c, 1)
            other[1].call("XADD", "s", "2-0", "f", "v2")
            got = {"ca": a.ids(), "cb": b.ids()}
            self.assertEqual(sorted(got["ca"] + got["cb"]), ["1-0", "2-0"])
            self.assertEqual(len(got["ca"]), 1)
            wait_blocked(c, 0)
            pending = leader.call("XPENDING", "s", "g", "-", "+", "10")
            self.assertEqual({(p[0].decode(), p[1].decode()) for p in pending},
                             {(got["ca"][0], "ca"), (got["cb"][0], "cb")})
            self.assertTrue(all(p[3] == 1 for p in pending), pending)
            # Entries already there are served at once, BLOCK or not.
            other[0].call("XADD", "s", "3-0", "f", "v3")
            t0 = time.monotonic()
            reply = other[0].call("XREADGROUP", "GROUP", "g", "ca", "BLOCK", "5000", "STREAMS",
                                  "s", ">")
            self.assertLess(time.monotonic() - t0, 2.0)
            self.assertEqual(reply[0][1][0][0], b"3-0")

    def test_timeout_is_nil_and_creates_no_consumer(self):
        with Cluster(3, groups=GROUPS) as c:
            c.start()
            leader = leader_of(c, "s")
            other = [x for x in c.nodes if x is not leader]
            leader.call("XGROUP", "CREATE", "s", "g", "$", "MKSTREAM")
            for node in (leader, other[0]):
                t = BlockedReadGroup(node.port, "late", "COUNT", "1", "BLOCK", "500", "STREAMS",
                                     "s", ">")
                t.join(30)
                t.assertion()
                self.assertIsNone(t.reply)
                self.assertGreaterEqual(t.seconds, 0.45)
                self.assertLess(t.seconds, 5.0)
            self.assertEqual(leader.call("XINFO", "CONSUMERS", "s", "g"), [])
            wait_blocked(c, 0)
            # Unrelated writes to the same Raft group wake it without serving it.
            t = BlockedReadGroup(other[1].port, "c", "BLOCK", "1500", "STREAMS", "s", ">")
            wait_blocked(c, 1)
            for i in range(5):
                other[1].call("SET", "{s}k%d" % i, "x")
            self.assertTrue(t.is_alive())
            t.join(30)
            t.assertion()
            self.assertIsNone(t.reply)
            self.assertGreaterEqual(t.seconds, 1.4)

    def test_group_or_stream_gone(self):
        with Cluster(3, groups=GROUPS) as c:
            c.start()
            leader = leader_of(c, "s")
            other = [x for x in c.nodes if x is not leader]
            leader.call("XGROUP", "CREATE", "s", "g", "$", "MKSTREAM")
            t = BlockedReadGroup(other[0].port, "c", "BLOCK", "0", "STREAMS", "s", ">")
            wait_blocked(c, 1)
            other[1].call("XGROUP", "DESTROY", "s", "g")
            t.join(10)
            self.assertIsInstance(t.error, RespError)
            self.assertEqual(str(t.error),
                             "NOGROUP the consumer group this client was blocked on no longer "
                             "exists")
            leader.call("XGROUP", "CREATE", "s", "g", "$")
            t = BlockedReadGroup(other[0].port, "c", "BLOCK", "0", "STREAMS", "s", ">")
            wait_blocked(c, 1)
            other[1].call("DEL", "s")
            t.join(10)
            self.assertIsInstance(t.error, RespError)
            self.assertEqual(str(t.error), "UNBLOCKED the stream key no longer exists")
            wait_blocked(c, 0)

    def test_waiting_through_a_failover(self):
        """A consumer waits through a follower; the leader is killed; the follower asks the
        new leader, where it waits again; the entry added then is delivered to it once."""
        with Cluster(3, groups=GROUPS) as c:
            c.start()
            leader = leader_of(c, "s")
            follower = [x for x in c.nodes if x is not leader][0]
            follower.call("XGROUP", "CREATE", "s", "g", "$", "MKSTREAM")
            t = BlockedReadGroup(follower.port, "c", "BLOCK", "40000", "STREAMS", "s", ">")
            wait_blocked(c, 1)
            # The node it waits at (the leader then; leadership may have moved since).
            holder = next(x for x in c.nodes if blocked_clients(x) == 1)
            self.assertIsNot(holder, follower, "the request waits at the node it came through")
            leader = holder
            leader.kill()
            new = None
            for _ in deadline_loop(30):
                try:
                    new = leader_of(c, "s")
                    if blocked_clients(new) == 1:
                        break
                except (OSError, RespError, AssertionError):
                    pass
            self.assertIsNotNone(new)
            wait_blocked(c, 1)
            self.assertIsNot(new, leader)
            self.assertTrue(t.is_alive())
            for _ in deadline_loop(20):
                try:
                    follower.call("XADD", "s", "1-0", "f", "v")
                    break
                except RespError as e:
                    if "equal or smaller" in str(e):
                        break
            self.assertEqual(t.ids(), ["1-0"])
            pending = new.call("XPENDING", "s", "g", "-", "+", "10")
            self.assertEqual([(p[0], p[1], p[3]) for p in pending], [(b"1-0", b"c", 1)])
            leader.start()
            leader.wait_ping(20)
            c.wait_ready()
            for node in c.nodes:
                self.assertEqual(node.call("XPENDING", "s", "g", "-", "+", "10"), pending)


if __name__ == "__main__":
    unittest.main()
