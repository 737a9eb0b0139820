"""Host names in `nodes`: peers' names are looked up by the node's resolver thread, never on
a loop (io/resolver.h, docs/node.md "The kernel seam"). A cluster whose nodes are all named
`localhost` forms and serves writes; and while a lookup hangs (the fault-test build's
test-resolve-delay-ms), the node's only loop keeps answering its clients."""

import os
import threading
import time
import unittest

import harness
from harness import Cluster, TestFailure, deadline_loop

FAULTS_BIN = os.path.join(os.path.dirname(harness.DEFAULT_BIN), "ringraftd-faults")
DELAY_MS = 3000
LATENCY_MAX_S = 0.100


class ResolverTests(unittest.TestCase):
    def test_host_names_form_a_cluster_and_serve_writes(self):
        """Three nodes named `localhost` in `nodes` elect leaders for every group, take
        writes through every node and read them back through another."""
        with Cluster(n=3, groups=8, host="localhost") as c:
            self.assertIn("localhost:", c.nodes_setting())
            c.start()
            for i, x in enumerate(c.nodes):
                with x.client() as cl:
                    for k in range(30):
                        self.assertEqual(cl.call("SET", "k%d-%d" % (i, k), "v%d" % k), "OK")
            for i in range(3):
                other = c.node((i + 1) % 3 + 1)
                with other.client() as cl:
                    for k in range(30):
                        self.assertEqual(cl.call("GET", "k%d-%d" % (i, k)), b"v%d" % k)
            # Node 1 dials nodes 2 and 3 (the lower id dials): by name.
            log = c.node(1).log_text()
            for peer in (2, 3):
                self.assertIn("peer %d: connected (outbound)" % peer, log)

    def test_loop_serves_clients_while_a_lookup_hangs(self):
        """Node 1 (one worker) looks host names up only after test-resolve-delay-ms (3 s, as
        for a DNS server that does not answer). Node 4, named `localhost`, is added while a
        client measures PING and GET on node 1: every answer comes within 100 ms, and node 1
        reaches node 4 only once the delayed lookup answered. With the lookup on the loop
        (as before the resolver thread) the loop stalls for the 3 s and this fails."""
        if not os.access(FAULTS_BIN, os.X_OK):
            raise TestFailure("no %s (make FLAVOUR=debug build/debug/ringraftd-faults)"
                              % FAULTS_BIN)
        with Cluster(n=3, spares=1, groups=8, bin=FAULTS_BIN) as c:
            n1 = c.node(1)
            n1.extra = ["--test-resolve-delay-ms", str(DELAY_MS)]
            c.node(4).host = "localhost"
            c.start()
            with n1.client() as cl:
                self.assertEqual(cl.call("SET", "probe", "v"), "OK")
            c.join_node(4)
            added = {}

            def add():
                try:
                    added["text"] = n1.call("RAFT", "ADDNODE", 4, c.address(4),
                                            timeout=90).decode()
                except Exception as e:  # reported by the main thread
                    added["error"] = repr(e)

            connected_line = "peer 4: connected (outbound)"
            t = threading.Thread(target=add)
            worst = {"PING": 0.0, "GET": 0.0}
            samples = 0
            connected_after = None
            with n1.client(timeout=10) as cl:
                start = time.monotonic()
                t.start()
                while time.monotonic() - start < DELAY_MS / 1000 + 2.0:
                    for cmd in (("PING",), ("GET", "probe")):
                        t0 = time.monotonic()
                        reply = cl.call(*cmd)
                        worst[cmd[0]] = max(worst[cmd[0]], time.monotonic() - t0)
                        self.assertIn(reply, ("PONG", b"v"))
                    samples += 1
                    if connected_after is None and connected_line in n1.log_text():
                        connected_after = time.monotonic() - start
                    time.sleep(0.01)
            t.join(90)
            print("%d samples while node 1's lookup of node 4 was delayed %d ms: worst PING "
                  "%.1f ms, worst GET %.1f ms; node 1 reached node 4 after %s s"
                  % (samples, DELAY_MS, worst["PING"] * 1000, worst["GET"] * 1000,
                     "%.2f" % connected_after if connected_after is not None else "(not yet)"))
            self.assertNotIn("error", added, added.get("error"))
            self.assertIn("nodeset ok", added["text"])
            self.assertLess(worst["PING"], LATENCY_MAX_S)
            self.assertLess(worst["GET"], LATENCY_MAX_S)
            # The delay was in effect: node 1 dialed node 4 only after it.
            if connected_after is None:
                for _ in deadline_loop(20, 0.1):
                    if connected_line in n1.log_text():
                        break
                else:
                    raise TestFailure("node 1 never connected to node 4\n" + n1.log_tail())
            else:
                self.assertGreaterEqual(connected_after, DELAY_MS / 1000 * 0.9)


if __name__ == "__main__":
    unittest.main()
