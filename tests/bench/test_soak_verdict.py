"""The soak's verdict (bench/soak_cluster.py) on hand-built samples: steady runs pass, and
each kind of growth it must catch fails it, alone."""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
import soak_cluster  # noqa: E402

RATE = 1000.0


def steady(n=20):
    return [{"t": k, "rps": RATE, "p99_us": 500.0, "errors": 0, "rss": [100000, 100000, 100000],
             "fds": [16, 16, 16]} for k in range(n)]


class VerdictTests(unittest.TestCase):
    def check(self, samples, ok, word=None):
        got, lines = soak_cluster.verdict(samples, 4, RATE)
        self.assertEqual(got, ok, "\n".join(lines))
        if word is not None:
            self.assertTrue(any(word in line and "FAIL" in line for line in lines), lines)

    def test_steady_passes(self):
        self.check(steady(), True)

    def test_rss_growth_on_one_node_fails(self):
        s = steady()
        s[-1]["rss"][1] = 112000  # +12% on node 2
        self.check(s, False, "node 2 RSS")

    def test_rss_growth_during_warm_up_is_ignored(self):
        s = steady()
        s[0]["rss"] = [50000, 50000, 50000]
        self.check(s, True)

    def test_p99_doubling_fails_and_one_slow_interval_does_not(self):
        s = steady()
        s[-1]["p99_us"] = 5000.0  # one slow interval: the median of the last third holds
        s[-4]["p99_us"] = 5000.0  # and two
        self.check(s, True)
        for x in s[-5:]:
            x["p99_us"] = 1200.0
        self.check(s, False, "p99")

    def test_errors_fail(self):
        s = steady()
        s[5]["errors"] = 1
        self.check(s, False, "errors")

    def test_fd_leak_fails_and_a_moment_of_snapshot_files_does_not(self):
        s = steady()
        s[-1]["fds"][0] = 40  # one sample during snapshots
        s[-3]["fds"][0] = 36
        self.check(s, True)
        for x in s[-5:]:
            x["fds"][0] = 40
        self.check(s, False, "node 1 open files")

    def test_rate_not_delivered_fails(self):
        s = steady()
        for x in s:
            x["rps"] = 0.5 * RATE
        self.check(s, False, "delivered")

    def test_too_few_samples_fail(self):
        self.check(steady(3), False)


if __name__ == "__main__":
    unittest.main()
