"""XREAD BLOCK on a 3-node cluster: woken by a write made through any node (served at the
group's leader, also when the request was forwarded), nil at the BLOCK timeout, at once when
entries are there, every waiting client woken by one write, and nothing left waiting when a
blocked client disconnects (also when its read waits at another node's leader)."""

import subprocess
import threading
import time
import unittest

from harness import Cluster, Resp, deadline_loop

GROUPS = 8


def leader_of(c, key):
    """The node leading key's group, from CLUSTER KEYSLOT and RAFT STATUS."""
    n1 = c.node(1)
    slot = n1.call("CLUSTER", "KEYSLOT", key)
    group = slot * GROUPS // 16384
    for _ in deadline_loop(10):
        leader = n1.raft_status()[group]["leader"]
        if leader:
            return c.node(leader)
    raise AssertionError("no leader for %s" % key)


def blocked_clients(node):
    return int(node.info("clients")["blocked_clients"])


class BlockedRead(threading.Thread):
    """XREAD ... on its own connection in a thread; .reply and .seconds when done."""

    def __init__(self, port, *args):
        super().__init__(daemon=True)
        self.conn = Resp(port, timeout=30)
        self.args = args
        self.reply = self.error = None
        self.seconds = None

    def run(self):
        t0 = time.monotonic()
        try:
            self.reply = self.conn.call("XREAD", *self.args)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e
        self.seconds = time.monotonic() - t0
        self.conn.close()


class XreadBlockTests(unittest.TestCase):
    def test_block(self):
        with Cluster(3, groups=GROUPS) as c:
            c.start()
            leader = leader_of(c, "s")
            other = [x for x in c.nodes if x is not leader]
            # Already there: answered at once.
            first_id = leader.call("XADD", "s", "*", "f", "v0").decode()
            t = BlockedRead(other[0].port, "BLOCK", "5000", "STREAMS", "s", "0")
            t.start()
            t.join(10)
            self.assertEqual(t.reply, [[b"s", [[first_id.encode(), [b"f", b"v0"]]]]])
            self.assertLess(t.seconds, 2)
            # Timeout: nil after about the BLOCK time.
            t = BlockedRead(other[1].port, "BLOCK", "400", "STREAMS", "s", "$")
            t.start()
            t.join(10)
            self.assertIsNone(t.error)
            self.assertIsNone(t.reply)
            self.assertGreaterEqual(t.seconds, 0.35)
            self.assertLess(t.seconds, 3)
            # Woken by a write through a third node: one at the leader, one forwarded, one
            # with BLOCK 0; '$' means entries after the call, so only the new one comes back.
            waiters = [BlockedRead(leader.port, "BLOCK", "10000", "STREAMS", "s", "$"),
                       BlockedRead(other[0].port, "BLOCK", "10000", "STREAMS", "s", "$"),
                       BlockedRead(other[1].port, "COUNT", "5", "BLOCK", "0", "STREAMS", "s",
                                   "$")]
            for w in waiters:
                w.start()
            for _ in deadline_loop(10):
                if blocked_clients(leader) == 3:
                    break
            self.assertEqual(blocked_clients(leader), 3)
            time.sleep(0.2)
            new_id = other[1].call("XADD", "s", "*", "f", "v1").decode()
            for w in waiters:
                w.join(10)
                self.assertIsNone(w.error)
                self.assertEqual(w.reply, [[b"s", [[new_id.encode(), [b"f", b"v1"]]]]])
            for _ in deadline_loop(5):  # published every 100 ms
                if blocked_clients(leader) == 0:
                    break
            self.assertEqual(blocked_clients(leader), 0)
            # redis-cli's own XREAD BLOCK.
            p = subprocess.Popen(["redis-cli", "-p", str(other[0].port), "XREAD", "BLOCK",
                                  "10000", "STREAMS", "s", "$"], stdout=subprocess.PIPE)
            for _ in deadline_loop(10):
                if blocked_clients(leader) == 1:
                    break
            leader.call("XADD", "s", "*", "f", "v2")
            out, _ = p.communicate(timeout=20)
            self.assertIn(b"v2", out)

    def test_disconnect_while_blocked(self):
        with Cluster(3, groups=GROUPS) as c:
            c.start()
            leader = leader_of(c, "q")
            other = [x for x in c.nodes if x is not leader][0]
            for node in (leader, other):  # local, then forwarded (cancelled at the leader)
                conns = []
                for _ in range(3):
                    r = Resp(node.port)
                    r.send_raw(b"*6\r\n$5\r\nXREAD\r\n$5\r\nBLOCK\r\n$1\r\n0\r\n$7\r\nSTREAMS\r\n"
                               b"$1\r\nq\r\n$1\r\n$\r\n")
                    conns.append(r)
                for _ in deadline_loop(10):
                    if blocked_clients(leader) == 3:
                        break
                self.assertEqual(blocked_clients(leader), 3)
                for r in conns:
                    r.close()
                for _ in deadline_loop(5):
                    if blocked_clients(leader) == 0:
                        break
                self.assertEqual(blocked_clients(leader), 0, "blocked reads left after close")
                self.assertEqual(int(node.info("clients")["connected_clients"]), 1)
            # The node keeps serving, and a later write wakes nobody stale.
            self.assertTrue(leader.call("XADD", "q", "*", "f", "v"))

    def test_errors(self):
        with Cluster(1, groups=2) as c:
            c.start()
            n = c.node(1)
            with n.client() as conn:
                for args, err in [(("BLOCK", "-1", "STREAMS", "s", "$"), "ERR timeout is negative"),
                                  (("BLOCK", "x", "STREAMS", "s", "$"),
                                   "ERR timeout is not an integer or out of range")]:
                    with self.assertRaises(Exception) as e:
                        conn.call("XREAD", *args)
                    self.assertIn(err, str(e.exception))
                conn.call("SET", "str", "x")
                with self.assertRaises(Exception) as e:
                    conn.call("XREAD", "BLOCK", "100", "STREAMS", "str", "$")
                self.assertIn("WRONGTYPE", str(e.exception))


if __name__ == "__main__":
    unittest.main()
