"""Commands through every node of a 3-node cluster (redis-cli), and malformed RESP."""

import os
import unittest

from harness import Cluster, Resp, deadline_loop, redis_cli


class CommandTests(unittest.TestCase):
    def test_commands_through_every_node(self):
        """SET/GET/INCR/XADD/XRANGE via redis-cli on each node: any node accepts any
        command (it forwards to the group's leader) and every node reads the result."""
        with Cluster(3, groups=16) as c:
            c.start()
            ports = [x.port for x in c.nodes]
            for x in c.nodes:
                for k in range(20):  # 20 keys: several groups, led by different nodes
                    key = "k:%d:%d" % (x.id, k)
                    self.assertEqual(redis_cli(x.port, "SET", key, "v%d" % k), (0, "OK"),
                                     "SET %s on node %d" % (key, x.id))
                    self.assertEqual(redis_cli(x.port, "INCR", "counter"), (0, str(x.id * 20 - 19 + k)),
                                     "INCR on node %d" % x.id)
            for x in c.nodes:
                for y in c.nodes:
                    for k in (0, 7, 19):
                        self.assertEqual(redis_cli(x.port, "GET", "k:%d:%d" % (y.id, k)),
                                         (0, "v%d" % k),
                                         "GET k:%d:%d on node %d" % (y.id, k, x.id))
                self.assertEqual(redis_cli(x.port, "GET", "counter"), (0, "60"))
                self.assertEqual(redis_cli(x.port, "GET", "nosuchkey"), (0, ""))
            ids = []
            for i, p in enumerate(ports):
                rc, out = redis_cli(p, "XADD", "stream", "*", "field", "value%d" % i)
                self.assertEqual(rc, 0)
                self.assertRegex(out, r"^\d+-\d+$", "XADD on port %d: %r" % (p, out))
                ids.append(out)
            self.assertEqual(ids, sorted(ids, key=lambda s: tuple(map(int, s.split("-")))),
                             "stream ids not increasing")
            for p in ports:
                rc, out = redis_cli(p, "XRANGE", "stream", "-", "+")
                self.assertEqual(rc, 0)
                lines = out.splitlines()
                self.assertEqual(lines, [v for i, id_ in enumerate(ids)
                                         for v in (id_, "field", "value%d" % i)],
                                 "XRANGE on port %d" % p)
                self.assertEqual(redis_cli(p, "XLEN", "stream"), (0, "3"))
                # A command's own error goes back through the forwarding node unchanged.
                rc, out = redis_cli(p, "INCR", "k:1:0")
                self.assertIn("ERR value is not an integer or out of range", out)


# (request bytes, expected error reply text): each must get Redis's error and be closed.
MALFORMED = [
    ("bad multibulk length", b"*abc\r\n", "ERR Protocol error: invalid multibulk length"),
    ("expected $", b"*2\r\n$3\r\nfoo\r\n:1\r\n", "ERR Protocol error: expected '$', got ':'"),
    ("huge bulk length", b"*1\r\n$99999999999999\r\n", "ERR Protocol error: invalid bulk length"),
    ("negative bulk length", b"*1\r\n$-5\r\n", "ERR Protocol error: invalid bulk length"),
    ("unbalanced quotes inline", b'SET "foo bar\r\n',
     "ERR Protocol error: unbalanced quotes in request"),
    ("binary garbage after *", b"*\xff\xfe\x00\x01\r\n",
     "ERR Protocol error: invalid multibulk length"),
    ("binary garbage, no newline", bytes((i * 7 + 3) % 256 for i in range(70000)).replace(
        b"\n", b"x").replace(b"\r", b"y").replace(b"*", b"z"),
     "ERR Protocol error: too big inline request"),
]


class MalformedRespTests(unittest.TestCase):
    def test_malformed_requests(self):
        """Each malformed request gets its Redis error text and the connection closes,
        while another client's connection keeps being served."""
        with Cluster(3, groups=8) as c:
            c.start()
            x = c.node(1)
            bystander = Resp(x.port)
            self.assertEqual(bystander.call("SET", "bystander", "0"), "OK")
            for n, (name, data, want) in enumerate(MALFORMED):
                with self.subTest(case=name):
                    bad = Resp(x.port)
                    self.assertEqual(bad.call("PING"), "PONG")
                    try:
                        # A good request first: its reply must not be lost to the close.
                        bad.send_raw(b"ECHO before\r\n" + data)
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # closed while we were still sending: the replies may be in
                    closed = bad.wait_closed(5)
                    reply = bad.buf
                    bad.close()
                    self.assertEqual(reply[:200], b"$6\r\nbefore\r\n-" + want.encode() + b"\r\n",
                                     "%s: replies before the close" % name)
                    self.assertTrue(closed, "%s: connection not closed after the error" % name)
                    self.assertEqual(bystander.call("INCR", "bystander"), n + 1,
                                     "other connection after %s" % name)
                    self.assertEqual(bystander.call("PING"), "PONG")
            # Workers publish their counters periodically: give them a moment.
            for _ in deadline_loop(3, 0.1):
                errors = int(x.info("stats").get("protocol_errors", 0))
                if errors >= len(MALFORMED):
                    break
            self.assertGreaterEqual(errors, len(MALFORMED), "INFO stats protocol_errors")
            bystander.close()
            for y in c.nodes:
                self.assertTrue(y.ping(), "node %d after the malformed requests" % y.id)

    def test_quit_replies_then_closes(self):
        """QUIT answers +OK after the replies before it, then the connection closes."""
        with Cluster(1, groups=2) as c:
            c.start()
            conn = Resp(c.node(1).port)
            conn.send_raw(b"PING\r\nQUIT\r\n")
            closed = conn.wait_closed(5)
            self.assertEqual(conn.buf, b"+PONG\r\n+OK\r\n")
            self.assertTrue(closed, "connection not closed after QUIT")
            conn.close()


if __name__ == "__main__":
    unittest.main()
