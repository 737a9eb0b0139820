"""redis-benchmark against every node: no errors, and everything written is readable."""

import re
import unittest

from harness import Cluster, redis_benchmark

KEY_RE = re.compile(rb"^key:\d{12}$")
STREAM_KEY_RE = re.compile(rb"^stream:\d{12}$")


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
        """redis-benchmark -r 100000 -c 50 -P 16 -n 3200 xadd stream:__rand_int__ '*' f v on
        each node (streams spread over every group), then -n 960 xadd hot '*' f v on each
        (one stream, every node's clients at once on its leader), with zero errors. Then, on
        every node: the same set of stream keys, their XLENs summing to the number of XADDs
        sent, and each stream's entries (XRANGE) identical to node 1's, with strictly
        increasing IDs and the benchmark's fields. (-t set,get: the test above.)"""
        # -n a multiple of -P: redis-benchmark sends whole pipelines of -P commands until
        # it has sent -n, so it sends exactly -n XADDs (and waits for every reply).
        runs = [(3200, ["-r", "100000", "xadd", "stream:__rand_int__", "*", "f", "v"]),
                (960, ["xadd", "hot", "*", "f", "v"])]
        with Cluster(3, groups=16) as c:
            c.start()
            sent = 0
            for n, command in runs:
                for x in c.nodes:
                    rc, out = redis_benchmark(x.port, ["-n", str(n), "-c", "50", "-P", "16",
                                                       "-q"] + command, timeout=120)
                    self.assertEqual(rc, 0, "redis-benchmark on node %d exited %d:\n%s"
                                     % (x.id, rc, out[-2000:]))
                    self.assertEqual(benchmark_errors(out), [],
                                     "redis-benchmark on node %d reported errors" % x.id)
                    self.assertRegex(out, r"xadd [^\n]*: [\d.]+ requests per second",
                                     "node %d: no result line" % x.id)
                    sent += n
            streams = {}
            for x in c.nodes:
                with x.client(timeout=60) as conn:
                    keys = sorted(conn.call("KEYS", "*"))
                    self.assertEqual(conn.call("DBSIZE"), len(keys), "node %d: DBSIZE" % x.id)
                    lengths = conn.pipeline([("XLEN", k) for k in keys])
                    entries = conn.pipeline([("XRANGE", k, "-", "+") for k in keys])
                self.assertEqual(keys[0], b"hot", "node %d" % x.id)  # before b"stream:"
                bad = [k for k in keys[1:] if not STREAM_KEY_RE.match(k)]
                self.assertEqual(bad[:5], [], "node %d: unexpected key names" % x.id)
                # 9600 XADDs over 100000 random keys: about 9150 streams. redis-benchmark
                # 7.0 seeds random() with time(NULL) ^ getpid(), so two runs a second apart
                # may draw the same keys; one run alone makes about 3150.
                self.assertGreater(len(keys), 3000, "node %d: too few streams" % x.id)
                self.assertEqual(sum(lengths), sent,
                                 "node %d: XLEN summed over %d streams" % (x.id, len(keys)))
                self.assertEqual(lengths, [len(e) for e in entries],
                                 "node %d: XLEN vs XRANGE" % x.id)
                for k, es in zip(keys, entries):
                    ids = [tuple(int(p) for p in e[0].split(b"-")) for e in es]
                    self.assertTrue(all(a < b for a, b in zip(ids, ids[1:])),
                                    "node %d: %r: ids not increasing: %r" % (x.id, k, ids[:10]))
                    self.assertTrue(all(e[1] == [b"f", b"v"] for e in es),
                                    "node %d: %r: fields %r" % (x.id, k, es[:3]))
                streams[x.id] = dict(zip(keys, entries))
            self.assertEqual(len(streams[1][b"hot"]), 3 * 960)
            with c.node(1).client(timeout=60) as conn:
                slots = conn.pipeline([("CLUSTER", "KEYSLOT", k) for k in streams[1]])
            self.assertEqual({slot * c.groups // 16384 for slot in slots}, set(range(c.groups)),
                             "groups the streams are in")
            self.assertGreater(sum(1 for es in streams[1].values() if len(es) > 1), 100,
                               "streams with several entries")
            for x in c.nodes[1:]:
                self.assertEqual(set(streams[x.id]), set(streams[1]),
                                 "node %d: other stream keys than node 1" % x.id)
                differ = [k for k in streams[1] if streams[x.id][k] != streams[1][k]]
                self.assertEqual(differ[:5], [], "node %d: %d streams differ from node 1's"
                                 % (x.id, len(differ)))


if __name__ == "__main__":
    unittest.main()
