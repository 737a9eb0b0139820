"""Regression tests from the review of the node: client sessions across restarts and
failovers, whole-keyspace commands, clients paused for output room."""

import threading
import time
import unittest

from harness import Cluster, RespError, encode_command


class SessionTests(unittest.TestCase):
    def test_new_clients_after_a_restart_are_new_sessions(self):
        """Client ids carry the node's boot count: a client of a restarted node must not
        inherit an earlier client's session (its writes would be answered from that
        session's cache and never applied)."""
        with Cluster(1, groups=4) as c:
            c.start()
            node = c.node(1)
            for k in range(50):
                self.assertEqual(node.call("SET", "k%d" % k, "old"), "OK")
            self.assertEqual(node.call("INCR", "n"), 1)
            node.stop()
            node.start()
            c.wait_ready(30)
            for k in range(50):
                self.assertEqual(node.call("SET", "k%d" % k, "new"), "OK")
            self.assertEqual(node.call("INCR", "n"), 2)
            for k in range(50):
                self.assertEqual(node.call("GET", "k%d" % k), b"new")

    def test_pipelined_writes_survive_a_failover_exactly_once(self):
        """One client pipelines INCRs on distinct keys through node 1 while the leader of
        most groups is killed. Every reply is either the incremented value (applied once:
        the key reads 1) or an error saying the outcome is unknown (the key reads 0 or 1),
        or one saying it never left (the key reads 0); never "already applied"."""
        with Cluster(3, groups=16) as c:
            c.start()
            entry = c.node(1)
            victim = max((x for x in c.nodes if x.id != 1),
                         key=lambda x: c.leaders_by_node(via=entry).get(x.id, 0))
            replies = {}

            def load():
                with entry.client(timeout=60) as cl:
                    cmds = [("INCR", "p:%d" % i) for i in range(3000)]
                    for i, rep in enumerate(cl.pipeline(cmds, chunk=100)):
                        replies[i] = rep

            t = threading.Thread(target=load)
            t.start()
            time.sleep(0.3)
            victim.kill()
            t.join(120)
            self.assertFalse(t.is_alive())
            c.wait_ready(30)
            for i, rep in replies.items():
                value = entry.call("GET", "p:%d" % i)
                value = int(value) if value is not None else 0
                if isinstance(rep, RespError):
                    text = str(rep)
                    self.assertNotIn("already applied", text, "p:%d" % i)
                    if text.startswith("CLUSTERDOWN"):
                        self.assertEqual(value, 0, "p:%d: %s" % (i, text))
                    else:
                        self.assertTrue(text.startswith("TIMEOUT"), text)
                        self.assertIn(value, (0, 1), "p:%d" % i)
                else:
                    self.assertEqual(rep, 1, "p:%d" % i)
                    self.assertEqual(value, 1, "p:%d applied more than once?" % i)


class KeyspaceTests(unittest.TestCase):
    def test_keys_and_scan_see_every_key(self):
        with Cluster(3, groups=8) as c:
            c.start()
            n = c.node(2)
            keys = {"key:%d" % i for i in range(300)}
            with n.client() as cl:
                cl.pipeline([("SET", k, "v") for k in sorted(keys)])
            self.assertEqual(n.call("DBSIZE"), 300)
            got = {k.decode() for k in n.call("KEYS", "*")}
            self.assertEqual(got, keys)
            got = {k.decode() for k in n.call("KEYS", "key:1*")}
            self.assertEqual(got, {k for k in keys if k.startswith("key:1")})
            seen, cursor, calls = set(), b"0", 0
            while True:
                cursor, batch = n.call("SCAN", cursor, "COUNT", "50")
                seen |= {k.decode() for k in batch}
                calls += 1
                if cursor == b"0":
                    break
                self.assertLess(calls, 1000, "SCAN does not finish")
            self.assertEqual(seen, keys)
            seen, cursor = set(), b"0"
            while True:
                cursor, batch = n.call("SCAN", cursor, "MATCH", "key:2*", "COUNT", "1000")
                seen |= {k.decode() for k in batch}
                if cursor == b"0":
                    break
            self.assertEqual(seen, {k for k in keys if k.startswith("key:2")})


class OutputLimitTests(unittest.TestCase):
    def test_client_paused_for_output_room_reads_again(self):
        """Past half its output limit a client is not read; once the output drains it must
        be read again. 60 GETs of a 256 KiB value (15 MiB of replies, limit 16 MiB) are sent
        without reading, then PING: every reply, PONG last, must arrive."""
        limit = 16 << 20
        with Cluster(1, groups=2, extra=["--client-output-buffer-limit", str(limit)]) as c:
            c.start()
            node = c.node(1)
            self.assertEqual(node.call("SET", "big", "x" * (256 << 10)), "OK")
            with node.client(timeout=20) as cl:
                cl.send_raw(b"".join(encode_command("GET", "big") for _ in range(60)))
                time.sleep(0.5)  # the replies pile up: the node stops reading this client
                cl.send_raw(encode_command("PING"))
                replies = [cl.read_reply() for _ in range(61)]
            self.assertTrue(all(len(r) == 256 << 10 for r in replies[:60]))
            self.assertEqual(replies[60], "PONG")


if __name__ == "__main__":
    unittest.main()
