"""redis-benchmark against every node: no errors, and everything written is readable."""

import re
import unittest

from harness import Cluster, redis_benchmark

KEY_RE = re.compile(rb"^key:\d{12}$")


def benchmark_errors(text):
    """Lines of redis-benchmark output that report a failure."""
    bad = ("Error from server", "Server closed the connection", "Could not connect",
           "Error writing", "Error:", "ERR ")
    return [line for line in text.splitlines() if any(b in line for b in bad)]


class BenchmarkTests(unittest.TestCase):
    def test_error_replies_are_reported(self):
        """benchmark_errors sees a server's error replies in redis_benchmark's output: an
        unknown command, and INCR of a string (a command the leader's state machine
        refuses, forwarded or not)."""
        with Cluster(1, groups=2) as c:
            c.start()
            x = c.node(1)
            self.assertEqual(x.call("SET", "notanumber", "abc"), "OK")
            for args, want in ((["nosuchcommand"], "ERR unknown command 'nosuchcommand'"),
                               (["-P", "4", "incr", "notanumber"],
                                "ERR value is not an integer or out of range")):
                rc, out = redis_benchmark(x.port, ["-n", "10", "-c", "1", "-q"] + args,
                                          timeout=60)
                errors = benchmark_errors(out)
                self.assertTrue(any(want in line for line in errors),
                                "%s: exit status %d, benchmark_errors %r, output:\n%s"
                                % (args, rc, errors, out[-2000:]))
            self.assertEqual(x.call("GET", "notanumber"), b"abc")

    def test_set_get_benchmark_then_read_back(self):
        """redis-benchmark -t set,get -r 100000 -n 20000 -c 50 -P 16 on each node with zero
        errors; then the key:NNNNNNNNNNNN keys are the same on every node, each holds the
        benchmark's value (read through another node), and DBSIZE agrees."""
        with Cluster(3, groups=16) as c:
            c.start()
            for x in c.nodes:
                rc, out = redis_benchmark(x.port, ["-t", "set,get", "-r", "100000", "-n", "20000",
                                                   "-c", "50", "-P", "16", "-q"], timeout=150)
                self.assertEqual(rc, 0, "redis-benchmark on node %d exited %d:\n%s"
                                 % (x.id, rc, out[-2000:]))
                self.assertEqual(benchmark_errors(out), [],
                                 "redis-benchmark on node %d reported errors" % x.id)
                self.assertRegex(out, r"SET: [\d.]+ requests per second",
                                 "node %d: no SET result" % x.id)
                self.assertRegex(out, r"GET: [\d.]+ requests per second",
                                 "node %d: no GET result" % x.id)
            keysets = {}
            for x in c.nodes:
                with x.client(timeout=60) as conn:
                    keys = conn.call("KEYS", "key:*")
                    dbsize = conn.call("DBSIZE")
                self.assertTrue(all(KEY_RE.match(k) for k in keys),
                                "node %d: unexpected key names %r" % (x.id, keys[:5]))
                keysets[x.id] = set(keys)
                self.assertEqual(len(keys), len(keysets[x.id]), "node %d: KEYS repeats" % x.id)
                self.assertEqual(dbsize, len(keys), "node %d: DBSIZE vs KEYS key:*" % x.id)
            # 60000 SETs over 100000 random keys: about 45000 distinct; far fewer means
            # lost writes.
            self.assertGreater(len(keysets[1]), 30000, "too few keys after 60000 SETs")
            for x in c.nodes[1:]:
                self.assertEqual(keysets[x.id], keysets[1],
                                 "node %d sees other keys than node 1 (%d vs %d)"
                                 % (x.id, len(keysets[x.id]), len(keysets[1])))
            # Read every key back, each through a different node than the one listing it.
            # redis-benchmark writes the same 3-byte value (-d 3) to every key.
            keys = sorted(keysets[1])
            value = c.node(1).call("GET", keys[0])
            self.assertIsInstance(value, bytes)
            self.assertEqual(len(value), 3, "value of %r" % keys[0])
            for i, x in enumerate(c.nodes):
                part = keys[i::len(c.nodes)]
                with x.client(timeout=60) as conn:
                    replies = conn.pipeline([("GET", k) for k in part])
                bad = [(k, v) for k, v in zip(part, replies) if v != value]
                self.assertEqual(bad[:5], [], "node %d: %d of %d keys unreadable or wrong"
                                 % (x.id, len(bad), len(part)))

    def test_xadd_benchmark(self):
        """redis-benchmark -n 5000 -c 20 -P 8 xadd mystream '*' f v: XLEN 5000 on every
        node, ids strictly increasing."""
        with Cluster(3, groups=16) as c:
            c.start()
            x = c.node(2)
            rc, out = redis_benchmark(x.port, ["-n", "5000", "-c", "20", "-P", "8", "-q",
                                               "xadd", "mystream", "*", "f", "v"], timeout=120)
            self.assertEqual(rc, 0, "redis-benchmark exited %d:\n%s" % (rc, out[-2000:]))
            self.assertEqual(benchmark_errors(out), [], "redis-benchmark reported errors")
            for y in c.nodes:
                self.assertEqual(y.call("XLEN", "mystream"), 5000, "XLEN on node %d" % y.id)
            with c.node(3).client(timeout=60) as conn:
                entries = conn.call("XRANGE", "mystream", "-", "+")
            self.assertEqual(len(entries), 5000)
            ids = [tuple(int(p) for p in e[0].split(b"-")) for e in entries]
            self.assertTrue(all(a < b for a, b in zip(ids, ids[1:])), "ids not increasing")
            self.assertTrue(all(e[1] == [b"f", b"v"] for e in entries), "entry fields")


if __name__ == "__main__":
    unittest.main()
