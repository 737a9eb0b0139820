"""Every optional io_uring feature off, two workers per node; and the probes that turn them on."""

import os
import unittest

from harness import Cluster, redis_benchmark, redis_cli
from test_benchmark import benchmark_errors

URING_OFF = ["--uring-defer-taskrun", "no", "--uring-multishot-accept", "no",
             "--uring-multishot-recv", "no",
             "--uring-msg-ring", "no"]


class UringOffTests(unittest.TestCase):
    def test_two_workers_without_optional_uring_features(self):
        """3 nodes x 2 workers with defer-taskrun, multishot accept and msg-ring off:
        the log says so, commands work through every node, a short benchmark has no errors,
        and a killed node comes back and catches up."""
        with Cluster(3, workers=2, groups=16, extra=URING_OFF) as c:
            c.start()
            for x in c.nodes:
                self.assertIn("defer_taskrun=off multishot_accept=off msg_ring=off multishot_recv=off",
                              x.log_text(), "node %d log" % x.id)
            for x in c.nodes:
                for k in range(30):
                    self.assertEqual(redis_cli(x.port, "SET", "u:%d:%d" % (x.id, k), k), (0, "OK"))
                self.assertEqual(redis_cli(x.port, "INCR", "ctr")[0], 0)
                rc, out = redis_cli(x.port, "XADD", "s", "*", "n", x.id)
                self.assertRegex(out, r"^\d+-\d+$")
            for x in c.nodes:
                for y in c.nodes:
                    self.assertEqual(redis_cli(x.port, "GET", "u:%d:29" % y.id), (0, "29"))
                self.assertEqual(redis_cli(x.port, "GET", "ctr"), (0, "3"))
                self.assertEqual(redis_cli(x.port, "XLEN", "s"), (0, "3"))
            rc, out = redis_benchmark(c.node(3).port, ["-t", "set,get", "-r", "10000", "-n", "5000",
                                                       "-c", "20", "-P", "8", "-q"], timeout=90)
            self.assertEqual(rc, 0, out[-2000:])
            self.assertEqual(benchmark_errors(out), [])
            dbsize = [x.call("DBSIZE") for x in c.nodes]
            self.assertEqual(len(set(dbsize)), 1, "DBSIZE per node %s" % dbsize)
            c.node(1).kill()
            c.node(1).start()
            c.wait_ready(30)
            self.assertEqual(c.node(1).call("GET", "u:3:29"), b"29")
            self.assertEqual(c.node(1).call("DBSIZE"), dbsize[1])

    @unittest.skipIf(tuple(int(x) for x in os.uname().release.split(".")[:2]) < (6, 1),
                     "multishot recv and SINGLE_ISSUER need Linux 6.0 and 6.1")
    @unittest.skipIf("--uring" in os.environ.get("RR_NODE_EXTRA", ""),
                     "the features are switched off for every test in this run")
    def test_features_probed_on(self):
        """By default every feature is probed at start (multishot accept and recv by a request
        of each on a socket of their own), and on a kernel that has them all they are on;
        the probes leave the ring fit for use (a client and a peer are served)."""
        with Cluster(2, workers=2, groups=4) as c:
            c.start()
            for x in c.nodes:
                self.assertIn("defer_taskrun=on multishot_accept=on msg_ring=on multishot_recv=on",
                              x.log_text(), "node %d log" % x.id)
                self.assertNotIn("probe", x.log_text(), "node %d log" % x.id)
            for k in range(20):
                self.assertEqual(redis_cli(c.node(1 + k % 2).port, "SET", "p:%d" % k, k),
                                 (0, "OK"))
            for x in c.nodes:
                self.assertEqual(redis_cli(x.port, "GET", "p:19"), (0, "19"))


if __name__ == "__main__":
    unittest.main()
