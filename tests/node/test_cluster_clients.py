"""Cluster-aware clients: CLUSTER SLOTS / SHARDS / NODES name each group's leader,
redis-cli -c and redis-benchmark --cluster work against the cluster, and a node in redirect
mode answers -MOVED (and redis-cli -c follows it)."""

import time
import unittest

from harness import Cluster, deadline_loop, redis_benchmark, redis_cli
from test_benchmark import benchmark_errors


def slots_table(node):
    """CLUSTER SLOTS as [(first, last, leader port)]."""
    out = []
    for entry in node.call("CLUSTER", "SLOTS"):
        out.append((int(entry[0]), int(entry[1]), int(entry[2][1])))
    return sorted(out)


class ClusterClientTests(unittest.TestCase):
    def test_slots_name_the_leaders(self):
        with Cluster(3, groups=16) as c:
            c.start()
            # A stable view: every group has a leader and nothing moved between the reads
            # (leader balance transfers groups during the first seconds).
            for _ in deadline_loop(30, 0.2):
                table = slots_table(c.node(1))
                st = c.node(1).raft_status()
                if all(g.get("leader") for g in st.values()) and table == slots_table(c.node(1)):
                    break
            self.assertEqual(table[0][0], 0)
            self.assertEqual(table[-1][1], 16383)
            for (a, b), (a2, _b2) in zip([(t[0], t[1]) for t in table[:-1]],
                                         [(t[0], t[1]) for t in table[1:]]):
                self.assertEqual(a2, b + 1, "slot ranges contiguous")
            ports = {x.id: x.port for x in c.nodes}
            for g, (first, last, port) in enumerate(table):
                self.assertEqual(port, ports[int(st[g]["leader"])], "group %d" % g)
            shards = c.node(2).call("CLUSTER", "SHARDS")
            self.assertEqual(len(shards), 16)
            nodes_text = c.node(3).call("CLUSTER", "NODES")
            if isinstance(nodes_text, bytes):
                nodes_text = nodes_text.decode()
            self.assertEqual(len(nodes_text.strip().splitlines()), 3)
            self.assertEqual(redis_cli(c.node(1).port, "CLUSTER", "KEYSLOT", "123456789"),
                             (0, "12739"))

    def test_redis_cli_c_and_benchmark_cluster(self):
        with Cluster(3, groups=16) as c:
            c.start()
            # redis-benchmark --cluster refuses a cluster where one master holds every slot:
            # wait for leader balance to give every node some groups (it starts 2 s in).
            for _ in deadline_loop(30, 0.2):
                if all(v > 0 for v in c.leaders_by_node().values()):
                    break
            for x in c.nodes:
                for k in range(20):
                    self.assertEqual(redis_cli(x.port, "-c", "SET", "c:%d:%d" % (x.id, k), k),
                                     (0, "OK"))
            for x in c.nodes:
                self.assertEqual(redis_cli(x.port, "-c", "GET", "c:3:19"), (0, "19"))
            rc, out = redis_benchmark(c.node(1).port,
                                      ["--cluster", "-t", "set,get", "-r", "100000", "-n", "20000",
                                       "-c", "50", "-P", "16", "-q"], timeout=120)
            self.assertEqual(rc, 0, out[-2000:])
            self.assertEqual(benchmark_errors(out), [], out[-2000:])
            self.assertIn("SET:", out)
            sizes = {x.id: x.call("DBSIZE") for x in c.nodes}
            self.assertEqual(len(set(sizes.values())), 1, sizes)

    def test_redirect_mode_answers_moved(self):
        with Cluster(3, groups=16, extra=["--redirect", "yes"]) as c:
            c.start()
            for _ in deadline_loop(30, 0.2):  # leaders spread (see above)
                if all(v > 0 for v in c.leaders_by_node().values()):
                    break
            moved = 0
            for k in range(40):
                key = "r:%d" % k
                rc, out = redis_cli(c.node(1).port, "SET", key, k)
                if out.startswith("MOVED"):
                    moved += 1
                    slot, addr = out.split()[1:3]
                    self.assertEqual(int(slot), int(redis_cli(c.node(1).port, "CLUSTER",
                                                              "KEYSLOT", key)[1]))
                else:
                    self.assertEqual(out, "OK")
                # redis-cli -c follows the redirection.
                self.assertEqual(redis_cli(c.node(1).port, "-c", "SET", key, k), (0, "OK"))
                self.assertEqual(redis_cli(c.node(2).port, "-c", "GET", key), (0, str(k)))
            self.assertGreater(moved, 0, "some of 40 keys are led by another node")

    def test_redirect_mode_answers_tryagain_without_leader(self):
        """Redirect mode: a request for a group that has no leader waits for the election, and
        gets -TRYAGAIN once it has waited two rounds of the longest election timeout (0.8 s
        by default) with none elected; not -MOVED to a dead node, and not -CLUSTERDOWN after
        request-timeout-ms. Two of three nodes are killed, so no election can succeed."""
        with Cluster(3, groups=4, extra=["--redirect", "yes",
                                         "--request-timeout-ms", "30000"]) as c:
            c.start()
            c.node(2).kill()
            c.node(3).kill()
            # Node 1 forgets every leader: followers at their election timeout, its own
            # leaderships by check-quorum.
            for _ in deadline_loop(30, 0.1):
                status = c.node(1).raft_status()
                if status and all(g["leader"] == 0 for g in status.values()):
                    break
            else:
                self.fail("node 1 still names leaders: %r" % c.node(1).raft_status())
            # Knowing no leader, it names itself in every CLUSTER answer: one map.
            me = c.node(1).call("CLUSTER", "MYID")
            for shard in c.node(1).call("CLUSTER", "SHARDS"):
                nodes = dict(zip(shard[::2], shard[1::2]))[b"nodes"]
                masters = [dict(zip(x[::2], x[1::2]))[b"id"] for x in nodes
                           if dict(zip(x[::2], x[1::2]))[b"role"] == b"master"]
                self.assertEqual(masters, [me], "CLUSTER SHARDS: %r" % (shard,))
            self.assertEqual({e[2][2] for e in c.node(1).call("CLUSTER", "SLOTS")}, {me})
            for key in ("t:1", "t:2", "t:3"):
                start = time.monotonic()
                rc, out = redis_cli(c.node(1).port, "SET", key, "v", timeout=40)
                waited = time.monotonic() - start
                self.assertTrue(out.startswith("TRYAGAIN"), "SET %s: %r" % (key, out))
                self.assertGreaterEqual(waited, 0.7, "answered before the election could end")
                self.assertLess(waited, 10, "waited like -CLUSTERDOWN, not -TRYAGAIN")
            # Reads wait and give up the same way.
            rc, out = redis_cli(c.node(1).port, "GET", "t:1", timeout=40)
            self.assertTrue(out.startswith("TRYAGAIN"), "GET: %r" % out)
            self.assertGreaterEqual(int(c.node(1).info("stats").get("redirects", "0")), 4)
            # Once a majority is back, the same write goes through (redis-cli -c follows
            # any -MOVED) and nothing of the refused attempts was applied.
            c.node(2).start()
            c.node(2).wait_ping()
            for _ in deadline_loop(60, 0.2):
                rc, out = redis_cli(c.node(1).port, "-c", "SET", "t:1", "w", timeout=40)
                if out == "OK":
                    break
            else:
                self.fail("no write after a majority returned: %r" % out)
            self.assertEqual(redis_cli(c.node(1).port, "-c", "GET", "t:2", timeout=40),
                             (0, ""))


if __name__ == "__main__":
    unittest.main()
