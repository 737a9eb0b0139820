"""Host names in `nodes`: peers' names are looked up by the node's resolver thread, never on
a loop (io/resolver.h, docs/node.md "The kernel seam"). A cluster whose nodes are all named
`localhost` forms and serves writes; and while a lookup hangs (the fault-test build's
test-resolve-delay-ms), the node's only loop keeps answering its clients."""

import os
import re
import threading
import time
import unittest

import harness
from harness import Cluster, TestFailure, deadline_loop

FAULTS_BIN = os.path.join(os.path.dirname(harness.DEFAULT_BIN), "ringraftd-faults")
DELAY_MS = 3000
# Replies while the lookup is held: 99% within 100 ms and every one within 500 ms. The hold
# is 3000 ms, so a loop that waits for the lookup fails either; the 1% and the 500 ms leave
# room for the scheduler of a loaded machine (seen: one 132 ms GET at load average 6 on 2
# cores, the lookup not involved).
LATENCY_P99_S = 0.100
LATENCY_MAX_S = 0.500


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
        client measures PING and GET on node 1: the answers come within 100 ms (99% of them;
        every one within 500 ms), and node 1
        reaches node 4 only once the delayed lookup answered, and again after node 4
        restarted (a name is looked up again before each reconnection). With the lookup on the loop
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
            times = {"PING": [], "GET": []}
            samples = 0
            connected_after = None
            with n1.client(timeout=10) as cl:
                start = time.monotonic()
                t.start()
                while time.monotonic() - start < DELAY_MS / 1000 + 2.0:
                    for cmd in (("PING",), ("GET", "probe")):
                        t0 = time.monotonic()
                        reply = cl.call(*cmd)
                        times[cmd[0]].append(time.monotonic() - t0)
                        self.assertIn(reply, ("PONG", b"v"))
                    samples += 1
                    if connected_after is None and connected_line in n1.log_text():
                        connected_after = time.monotonic() - start
                    time.sleep(0.01)
            t.join(90)
            p99 = {k: sorted(v)[int(len(v) * 0.99)] for k, v in times.items()}
            worst = {k: max(v) for k, v in times.items()}
            print("%d samples while node 1's lookup of node 4 was delayed %d ms: PING p99 %.1f "
                  "ms, worst %.1f ms; GET p99 %.1f ms, worst %.1f ms; node 1 reached node 4 "
                  "after %s s"
                  % (samples, DELAY_MS, p99["PING"] * 1000, worst["PING"] * 1000,
                     p99["GET"] * 1000, worst["GET"] * 1000,
                     "%.2f" % connected_after if connected_after is not None else "(not yet)"))
            self.assertNotIn("error", added, added.get("error"))
            self.assertIn("nodeset ok", added["text"])
            for k in times:
                self.assertLess(p99[k], LATENCY_P99_S, k)
                self.assertLess(worst[k], LATENCY_MAX_S, k)
            # The delay was in effect: node 1 dialed node 4 only after it.
            if connected_after is None:
                for _ in deadline_loop(20, 0.1):
                    if connected_line in n1.log_text():
                        break
                else:
                    raise TestFailure("node 1 never connected to node 4\n" + n1.log_tail())
            else:
                self.assertGreaterEqual(connected_after, DELAY_MS / 1000 * 0.9)
            # A lost connection: node 1 looks the name up again before dialing anew (so that a
            # changed record is used), and the reconnection waits for the delayed lookup.
            n4 = c.node(4)
            before = n1.log_text().count(connected_line)
            n4.kill()
            t0 = time.monotonic()
            n4.start()
            for _ in deadline_loop(30, 0.05):
                if n1.log_text().count(connected_line) > before:
                    break
            else:
                raise TestFailure("node 1 did not reconnect to node 4\n" + n1.log_tail())
            again = time.monotonic() - t0
            print("node 1 reconnected to the restarted node 4 after %.2f s" % again)
            self.assertGreaterEqual(again, DELAY_MS / 1000 * 0.9)

    def test_a_name_that_does_not_resolve_is_retried_with_backoff(self):
        """Node 3's host cannot be resolved (`-bad-`: getaddrinfo refuses it without asking
        a DNS server). Nodes 1 and 2 serve on without it, and node 1 looks the name up again
        after each backoff step (50 ms doubling to 2 s), logging each failure once: a
        handful of attempts in seconds, not one per tick (10 ms)."""
        with Cluster(n=3, groups=8) as c:
            c.node(3).host = "-bad-"
            n1, n2 = c.node(1), c.node(2)
            n1.start()
            n2.start()
            c.wait_ready(nodes=[n1, n2])
            with n1.client() as cl:
                self.assertEqual(cl.call("SET", "k", "v"), "OK")
            started = time.monotonic()
            time.sleep(6)
            lines = [ln for ln in n1.log_text().splitlines()
                     if "peer 3: cannot resolve -bad-" in ln]
            # The log's rate limit folds repeats into "(N similar suppressed)": count them.
            attempts = len(lines) + sum(int(m.group(1)) for ln in lines
                                        for m in [re.search(r"\((\d+) similar suppressed\)",
                                                            ln)] if m)
            print("node 1: %d failed lookups of node 3 in about %.1f s; last: %s"
                  % (attempts, time.monotonic() - started, lines[-1] if lines else "-"))
            self.assertGreaterEqual(attempts, 4)
            self.assertLessEqual(attempts, 20)
            self.assertIn("retrying in 2000 ms", lines[-1])


if __name__ == "__main__":
    unittest.main()
