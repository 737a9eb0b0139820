"""Commands through every node of a 3-node cluster (redis-cli), and malformed RESP."""

import os
import unittest

from harness import Cluster, Resp, RespError, deadline_loop, redis_cli


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


    def test_node_commands(self):
        """Commands the node answers itself, through every node of one cluster: FLUSHALL and
        FLUSHDB (keys of many groups, written through every node, are gone everywhere),
        CONFIG GET (what redis-benchmark and redis-cli ask; the settings
        docs/client-protocol.md lists), CLIENT ID / SETNAME / GETNAME, ECHO, SELECT and
        TYPE."""
        with Cluster(3, groups=16) as c:
            c.start()
            self.check_flush(c)
            self.check_config_get(c)
            self.check_client_and_echo(c)
            self.check_select_and_type(c)

    def check_flush(self, c):
        for via, command in ((2, ("FLUSHALL",)), (3, ("FLUSHDB",)), (1, ("FLUSHDB", "ASYNC"))):
            tag = "-".join(command).lower()
            keys = []
            for x in c.nodes:
                names = ["%s:%d:%d" % (tag, x.id, k) for k in range(20)]
                with x.client() as conn:
                    self.assertEqual(conn.pipeline([("SET", k, "v") for k in names]),
                                     ["OK"] * len(names), "SETs through node %d" % x.id)
                    stream = "%s:stream:%d" % (tag, x.id)
                    self.assertRegex(conn.call("XADD", stream, "*", "f", "v"), rb"^\d+-\d+$")
                keys += names + [stream]
            with c.node(1).client() as conn:
                slots = conn.pipeline([("CLUSTER", "KEYSLOT", k) for k in keys])
            groups = {slot * c.groups // 16384 for slot in slots}
            self.assertGreaterEqual(len(groups), 12, "%s: keys in groups %s" % (tag, groups))
            for x in c.nodes:
                self.assertEqual(x.call("DBSIZE"), len(keys), "%s: DBSIZE on node %d before"
                                 % (tag, x.id))
            # A mistyped option is Redis's syntax error and flushes nothing.
            for bad in (command + ("bad",), command + ("async", "sync")):
                with self.assertRaisesRegex(RespError, r"^ERR syntax error$"):
                    c.node(via).call(*bad)
            self.assertEqual(c.node(via).call("DBSIZE"), len(keys), "after a refused flush")
            self.assertEqual(c.node(via).call(*command), "OK", "%s through node %d"
                             % (" ".join(command), via))
            for x in c.nodes:
                with x.client() as conn:
                    self.assertEqual(conn.call("DBSIZE"), 0, "%s: DBSIZE on node %d"
                                     % (tag, x.id))
                    self.assertEqual(conn.call("KEYS", "*"), [], "%s: KEYS on node %d"
                                     % (tag, x.id))
                    strings = [k for k in keys if ":stream:" not in k]
                    left = [(k, v) for k, v in zip(strings, conn.pipeline([("GET", k)
                                                                           for k in strings]))
                            if v is not None]
                    self.assertEqual(left, [], "%s: still readable on node %d" % (tag, x.id))
                    for y in c.nodes:
                        stream = "%s:stream:%d" % (tag, y.id)
                        self.assertEqual(conn.call("XLEN", stream), 0)
                        self.assertEqual(conn.call("TYPE", stream), "none")
            # And the keyspace takes writes again.
            self.assertEqual(c.node(via).call("SET", tag + ":after", "x"), "OK")
            for x in c.nodes:
                self.assertEqual(x.call("DBSIZE"), 1, "%s: DBSIZE after a new SET" % tag)
            self.assertEqual(c.node(via).call("DEL", tag + ":after"), 1)

    def check_config_get(self, c):
        # docs/client-protocol.md, "Node commands": the settings CONFIG GET answers.
        documented = {"save", "appendonly", "appendfsync", "port", "dir", "maxclients",
                      "databases", "cluster-enabled", "proto-max-bulk-len", "maxmemory",
                      "maxmemory-policy", "protected-mode", "requirepass"}
        for x in c.nodes:
            with x.client() as conn:
                # redis-benchmark asks these two before it starts.
                self.assertEqual(conn.call("CONFIG", "GET", "save"), [b"save", b""])
                self.assertEqual(conn.call("CONFIG", "GET", "appendonly"),
                                 [b"appendonly", b"yes"])
                reply = conn.call("CONFIG", "GET", "*")
                self.assertEqual(len(reply) % 2, 0)
                table = dict(zip(reply[0::2], reply[1::2]))
                self.assertEqual(len(table), len(reply) // 2, "CONFIG GET * repeats a name")
                self.assertEqual({k.decode() for k in table}, documented,
                                 "CONFIG GET * on node %d" % x.id)
                self.assertEqual(table[b"port"], str(x.port).encode())
                self.assertEqual(table[b"dir"], x.data.encode())
                self.assertEqual(table[b"databases"], b"1")
                self.assertEqual(table[b"cluster-enabled"], b"yes")
                self.assertEqual(table[b"appendfsync"], b"always")
                self.assertEqual(table[b"maxmemory-policy"], b"noeviction")
                # A pattern matches as in Redis (glob, case-insensitive); no match: empty.
                self.assertEqual(sorted(conn.call("CONFIG", "GET", "MAX*")[0::2]),
                                 [b"maxclients", b"maxmemory", b"maxmemory-policy"])
                self.assertEqual(conn.call("CONFIG", "GET", "no-such-setting"), [])
                # Several patterns (Redis 7): each matching setting once.
                reply = conn.call("CONFIG", "GET", "save", "append*", "appendonly")
                self.assertEqual(sorted(reply[0::2]), [b"appendfsync", b"appendonly", b"save"])
                with self.assertRaisesRegex(RespError, r"^ERR wrong number of arguments for "
                                            r"'config\|get' command$"):
                    conn.call("CONFIG", "GET")
            # redis-cli's own view.
            self.assertEqual(redis_cli(x.port, "CONFIG", "GET", "appendonly"),
                             (0, "appendonly\nyes"))

    def check_client_and_echo(self, c):
        ids = []
        conns = [x.client() for x in c.nodes for _ in range(2)]
        try:
            for conn in conns:
                cid = conn.call("CLIENT", "ID")
                self.assertIsInstance(cid, int)
                self.assertGreater(cid, 0)
                self.assertEqual(conn.call("CLIENT", "ID"), cid, "CLIENT ID changed")
                ids.append(cid)
            self.assertEqual(len(set(ids)), len(ids), "CLIENT IDs of 6 connections: %s" % ids)
            a, b = conns[0], conns[1]  # two connections to node 1
            self.assertIsNone(a.call("CLIENT", "GETNAME"))
            self.assertEqual(a.call("CLIENT", "SETNAME", "worker-7"), "OK")
            self.assertEqual(a.call("CLIENT", "GETNAME"), b"worker-7")
            self.assertIsNone(b.call("CLIENT", "GETNAME"), "a name set on another connection")
            self.assertEqual(a.call("SET", "named", "1"), "OK")  # the name stays over commands
            self.assertEqual(a.call("CLIENT", "GETNAME"), b"worker-7")
            with self.assertRaisesRegex(RespError, r"^ERR Client names cannot contain spaces, "
                                        r"newlines or special characters\.$"):
                a.call("CLIENT", "SETNAME", "two words")
            self.assertEqual(a.call("CLIENT", "GETNAME"), b"worker-7")
            # Subcommand arities and the name's length, with Redis 7.0's wording where it
            # has one (it keeps names of any length; a node keeps 63 bytes).
            for args, sub in ((("SETNAME", "a", "b"), "setname"), (("SETNAME",), "setname"),
                              (("ID", "x"), "id"), (("GETNAME", "x"), "getname"),
                              (("SETINFO", "lib-name"), "setinfo")):
                with self.assertRaisesRegex(RespError, r"^ERR wrong number of arguments for "
                                            r"'client\|%s' command$" % sub):
                    a.call("CLIENT", *args)
            self.assertEqual(a.call("CLIENT", "SETNAME", "n" * 63), "OK")
            with self.assertRaisesRegex(RespError, r"^ERR Client names are limited to 63 bytes$"):
                a.call("CLIENT", "SETNAME", "n" * 64)
            self.assertEqual(a.call("CLIENT", "GETNAME"), b"n" * 63)
            self.assertEqual(a.call("CLIENT", "SETNAME", ""), "OK")  # clears it, as in Redis
            self.assertIsNone(a.call("CLIENT", "GETNAME"))
            for conn in conns:
                self.assertEqual(conn.call("ECHO", "hello"), b"hello")
                self.assertEqual(conn.call("ECHO", ""), b"")
                self.assertEqual(conn.call("ECHO", b"a\r\nb\x00c"), b"a\r\nb\x00c")
        finally:
            for conn in conns:
                conn.close()
        self.assertEqual(redis_cli(c.node(3).port, "ECHO", "hi there"), (0, "hi there"))

    def check_select_and_type(self, c):
        self.assertEqual(c.node(1).call("SET", "type:s", "v"), "OK")
        self.assertRegex(c.node(2).call("XADD", "type:x", "*", "f", "v"), rb"^\d+-\d+$")
        for x in c.nodes:
            with x.client() as conn:
                self.assertEqual(conn.call("SELECT", "0"), "OK")
                # Redis in cluster mode: the same error text.
                with self.assertRaisesRegex(RespError,
                                            r"^ERR SELECT is not allowed in cluster mode$"):
                    conn.call("SELECT", "1")
                for bad in ("abc", "00", "-0", "1x"):  # Redis's integer check comes first
                    with self.assertRaisesRegex(RespError,
                                                r"^ERR value is not an integer or out of range$"):
                        conn.call("SELECT", bad)
                self.assertEqual(conn.call("GET", "type:s"), b"v", "after SELECT 1's error")
                self.assertEqual(conn.call("TYPE", "type:s"), "string")
                self.assertEqual(conn.call("TYPE", "type:x"), "stream")
                self.assertEqual(conn.call("TYPE", "type:none"), "none")
            self.assertEqual(redis_cli(x.port, "TYPE", "type:x"), (0, "stream"))


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
