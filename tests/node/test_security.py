"""Security and limits: requirepass with AUTH and HELLO AUTH (Redis's replies, failures
counted, nothing else allowed before), protected mode (non-loopback clients refused without
a password), and maxmemory (writes that add data refused with -OOM, others still served)."""

import socket
import unittest

from harness import (Cluster, ConnectionClosed, Resp, RespError, deadline_loop, redis_benchmark,
                     redis_cli)

PASSWORD = "correct horse battery staple"
NOAUTH = "NOAUTH Authentication required."
WRONGPASS = "WRONGPASS invalid username-password pair or user is disabled."


def reply(conn, *args):
    """One command's reply; an error reply comes back as its text."""
    conn.send_raw(b"".join([b"*%d\r\n" % len(args)] +
                           [b"$%d\r\n%s\r\n" % (len(a), a) for a in
                            (x.encode() if isinstance(x, str) else x for x in args)]))
    r = conn.read_reply()
    return str(r) if isinstance(r, RespError) else r


def local_non_loopback_ipv4():
    """An IPv4 address of this machine that is not loopback, or None."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("10.255.255.255", 1))  # no packet is sent: this only picks a route
        ip = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    return None if ip.startswith("127.") else ip


class SecurityTests(unittest.TestCase):
    def test_requirepass(self):
        with Cluster(3, groups=8, password=PASSWORD) as c:
            c.start()
            n1 = c.node(1)
            with Resp(n1.port) as conn:
                self.assertEqual(reply(conn, "PING"), NOAUTH)
                self.assertEqual(reply(conn, "SET", "k", "v"), NOAUTH)
                self.assertEqual(reply(conn, "INFO"), NOAUTH)
                # Unknown commands and wrong arities are answered before authentication.
                self.assertTrue(reply(conn, "NOSUCH").startswith("ERR unknown command 'NOSUCH'"))
                self.assertEqual(reply(conn, "GET"),
                                 "ERR wrong number of arguments for 'get' command")
                self.assertEqual(reply(conn, "AUTH", "wrong"), WRONGPASS)
                self.assertEqual(reply(conn, "AUTH", "default", "wrong"), WRONGPASS)
                self.assertEqual(reply(conn, "AUTH", "alice", PASSWORD), WRONGPASS)
                self.assertEqual(reply(conn, "AUTH", PASSWORD + "x"), WRONGPASS)
                self.assertEqual(reply(conn, "AUTH", PASSWORD[:-1]), WRONGPASS)
                self.assertEqual(reply(conn, "AUTH", "a", "b", "c"), "ERR syntax error")
                self.assertEqual(reply(conn, "GET", "k"), NOAUTH)  # still not authenticated
                self.assertTrue(reply(conn, "HELLO").startswith("NOAUTH HELLO must be called"))
                self.assertEqual(reply(conn, "HELLO", "2", "AUTH", "default", "nope"), WRONGPASS)
                self.assertEqual(reply(conn, "AUTH", PASSWORD), "OK")
                self.assertEqual(reply(conn, "SET", "k", "v"), "OK")
                self.assertEqual(reply(conn, "GET", "k"), b"v")
                # A failed AUTH does not undo an earlier success.
                self.assertEqual(reply(conn, "AUTH", "wrong"), WRONGPASS)
                self.assertEqual(reply(conn, "GET", "k"), b"v")
            with Resp(c.node(2).port) as conn:
                hello = reply(conn, "HELLO", "2", "AUTH", "default", PASSWORD, "SETNAME", "app")
                self.assertIsInstance(hello, list)
                self.assertEqual(reply(conn, "CLIENT", "GETNAME"), b"app")
                self.assertEqual(reply(conn, "GET", "k"), b"v")  # forwarded or local: no auth
            with Resp(c.node(3).port) as conn:
                self.assertEqual(reply(conn, "QUIT"), "OK")  # allowed before AUTH
                conn.wait_closed()
            # Before AUTH, Redis's tighter limits: at most 10 arguments, bulks of 16 KiB.
            with Resp(n1.port) as conn:
                conn.send_raw(b"*11\r\n")
                self.assertEqual(str(conn.read_reply()),
                                 "ERR Protocol error: unauthenticated multibulk length")
                conn.wait_closed()
            with Resp(n1.port) as conn:
                conn.send_raw(b"*2\r\n$4\r\nAUTH\r\n$16385\r\n")
                self.assertEqual(str(conn.read_reply()),
                                 "ERR Protocol error: unauthenticated bulk length")
                conn.wait_closed()
            with Resp(n1.port, password=PASSWORD) as conn:
                self.assertEqual(reply(conn, "SET", "big", "x" * 20000), "OK")
            # Redis's own tools with -a.
            for x in c.nodes:
                self.assertEqual(redis_cli(x.port, "--no-auth-warning", "-a", PASSWORD, "INCR",
                                           "counter"), (0, str(x.id)))
            rc, out = redis_cli(n1.port, "GET", "counter")
            self.assertIn("NOAUTH", out)
            rc, out = redis_benchmark(n1.port, ["-a", PASSWORD, "-t", "set", "-n", "2000", "-r",
                                                "1000", "-c", "10", "-P", "4", "-q"])
            self.assertEqual(rc, 0, out)
            self.assertNotIn("ERR", out)
            self.assertNotIn("NOAUTH", out)
            stats = n1.info("stats")
            self.assertEqual(int(stats["acl_access_denied_auth"]), 7)
            limits = n1.info("limits")
            self.assertEqual(limits["requirepass"], "set")
            self.assertEqual(limits["protected_mode"], "yes")

    def test_auth_without_a_password(self):
        with Cluster(1, groups=2) as c:
            c.start()
            with Resp(c.node(1).port) as conn:
                self.assertEqual(reply(conn, "AUTH", "x"),
                                 "ERR AUTH <password> called without any password configured "
                                 "for the default user. Are you sure your configuration is "
                                 "correct?")
                self.assertEqual(reply(conn, "AUTH", "default", "anything"), "OK")
                self.assertEqual(reply(conn, "AUTH", "bob", "anything"), WRONGPASS)
                self.assertEqual(reply(conn, "PING"), "PONG")

    def test_protected_mode(self):
        ip = local_non_loopback_ipv4()
        if ip is None:
            self.skipTest("this machine has no non-loopback IPv4 address to connect from")
        cases = [([], "refused"), (["--protected-mode", "no"], "open"),
                 (["--requirepass", PASSWORD], "password")]
        for extra, expect in cases:
            with Cluster(1, groups=2, extra=["--bind", "0.0.0.0"] + extra) as c:
                c.password = PASSWORD if expect == "password" else None
                c.start()
                port = c.node(1).port
                with Resp(port, host=ip) as conn:
                    first = reply(conn, "PING")
                    if expect == "refused":
                        self.assertTrue(str(first).startswith("DENIED ringraft is running in "
                                                              "protected mode"), first)
                        conn.wait_closed()
                    elif expect == "open":
                        self.assertEqual(first, "PONG")
                    else:
                        self.assertEqual(first, NOAUTH)
                        self.assertEqual(reply(conn, "AUTH", PASSWORD), "OK")
                        self.assertEqual(reply(conn, "PING"), "PONG")
                # Loopback clients are always served.
                with c.node(1).client() as conn:
                    self.assertEqual(conn.call("PING"), "PONG")
                    refusals = int(parse(conn.call("INFO", "stats"))["protected_mode_refusals"])
                self.assertEqual(refusals, 1 if expect == "refused" else 0)

    def test_maxclients(self):
        """Past maxclients a new connection gets Redis's error and is closed; the clients
        already connected are served; a slot freed by a client that leaves is taken again."""
        with Cluster(1, groups=2, extra=["--maxclients", "3"]) as c:
            c.start()
            node = c.node(1)
            held = []
            for _ in deadline_loop(10):  # the start-up's own connections may still be closing
                if len(held) == 3:
                    break
                conn = node.client()
                try:
                    self.assertEqual(conn.call("PING"), "PONG")
                    held.append(conn)
                except (ConnectionClosed, RespError, OSError):
                    conn.close()
            self.assertEqual(len(held), 3)
            with Resp(node.port) as extra:
                r = extra.read_reply()
                self.assertIsInstance(r, RespError)
                self.assertEqual(str(r), "ERR max number of clients reached")
                self.assertTrue(extra.wait_closed())
            for conn in held:
                self.assertEqual(conn.call("PING"), "PONG")
            stats = parse(held[0].call("INFO", "stats"))
            self.assertGreaterEqual(int(stats["rejected_connections"]), 1)
            held.pop().close()
            for _ in deadline_loop(10):
                with Resp(node.port) as again:
                    try:
                        if again.call("PING") == "PONG":
                            break
                    except (ConnectionClosed, RespError, OSError):
                        pass
            else:
                self.fail("a freed client slot was not taken again")
            for conn in held:
                conn.close()

    def test_maxmemory(self):
        with Cluster(3, groups=8, extra=()) as c:
            c.node(1).extra = ["--maxmemory", "1"]  # past it as soon as memory is sampled
            c.start()
            n1, n2 = c.node(1), c.node(2)
            for _ in deadline_loop(10):
                if int(n1.info("memory")["used_memory"]) > 0:
                    break
            mem = n1.info("memory")
            self.assertGreater(int(mem["used_memory"]), 0)
            self.assertEqual(mem["maxmemory"], "1")
            self.assertEqual(mem["maxmemory_policy"], "noeviction")
            oom = "OOM command not allowed when used memory > 'maxmemory'."
            self.assertEqual(n2.call("SET", "kept", "1"), "OK")
            with n1.client() as conn:
                self.assertEqual(reply(conn, "SET", "k", "v"), oom)
                self.assertEqual(reply(conn, "INCR", "kept"), oom)
                self.assertEqual(reply(conn, "XADD", "s", "*", "f", "v"), oom)
                # Commands that read or can only free memory are still served.
                self.assertEqual(reply(conn, "GET", "k"), None)
                self.assertEqual(reply(conn, "GET", "kept"), b"1")
                self.assertEqual(reply(conn, "EXPIRE", "kept", "100"), 1)
                self.assertEqual(reply(conn, "DEL", "kept"), 1)
                self.assertEqual(reply(conn, "PING"), "PONG")
            self.assertEqual(int(n1.info("stats")["oom_rejects"]), 3)
            # The limit is the receiving node's: another node still takes writes.
            self.assertEqual(n2.call("SET", "k", "v2"), "OK")
            self.assertEqual(n1.call("GET", "k"), b"v2")


def parse(text):
    from harness import parse_info
    return parse_info(text)


if __name__ == "__main__":
    unittest.main()
