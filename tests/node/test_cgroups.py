"""Stream consumer groups through a 3-node cluster: redis-cli against a follower (writes and
reads are forwarded to the group's leader), and a leader killed while consumers read and
acknowledge: no delivery or acknowledgement a client was told about is lost, and no entry is
delivered twice."""

import random
import time
import unittest

from harness import Cluster, ConnectionClosed, RespError, deadline_loop, redis_cli

STREAM = "jobs"
GROUP = "workers"


def leader_of(cluster, key, via=None):
    """The node leading the Raft group that holds key."""
    via = via or cluster.running_nodes()[0]
    slot = via.call("CLUSTER", "KEYSLOT", key)
    group = slot * cluster.groups // 16384
    return cluster.node(via.raft_status()[group]["leader"])


def ids_of(xread_reply):
    """The entry IDs of an XREADGROUP reply with one stream (nil: none)."""
    if xread_reply is None:
        return []
    return [e[0].decode() for e in xread_reply[0][1]]


class Outcome(Exception):
    """The node could not say whether the command was applied (TIMEOUT, a lost connection)."""


def call_any(nodes, *args, timeout=5.0, tries=60):
    """Sends the command to the nodes in turn until one answers. A reply that says the
    command was not applied (CLUSTERDOWN, BUSY, refused connection) is retried; one whose
    outcome is unknown (TIMEOUT, the connection lost after sending) raises Outcome."""
    last = None
    for k in range(tries):
        node = nodes[k % len(nodes)]
        try:
            conn = node.client(timeout=timeout)
        except OSError as e:
            last = e
            time.sleep(0.1)
            continue
        try:
            reply = conn.call(*args)
            return reply
        except RespError as e:
            text = str(e)
            if text.startswith("CLUSTERDOWN") or text.startswith("BUSY"):
                last = e
                time.sleep(0.1)
                continue
            if text.startswith("TIMEOUT"):
                raise Outcome(text)
            raise
        except (OSError, ConnectionClosed) as e:
            raise Outcome(repr(e))
        finally:
            conn.close()
    raise AssertionError("no node answered %r: %r" % (args, last))


class ConsumerGroupTests(unittest.TestCase):
    def test_redis_cli_through_a_follower(self):
        """redis-cli on a node that does not lead the stream's group: every consumer group
        command works there, replies as Redis's."""
        with Cluster(3, groups=4) as c:
            c.start()
            leader = leader_of(c, STREAM)
            follower = next(x for x in c.nodes if x is not leader)
            port = follower.port

            def cli(*args):
                rc, out = redis_cli(port, *args)
                self.assertEqual(rc, 0, "redis-cli %s: %s" % (" ".join(map(str, args)), out))
                return out

            self.assertEqual(cli("XGROUP", "CREATE", STREAM, GROUP, "$", "MKSTREAM"), "OK")
            self.assertEqual(cli("XGROUP", "CREATE", STREAM, GROUP, "$"),
                             "BUSYGROUP Consumer Group name already exists")
            for k in range(1, 6):
                self.assertEqual(cli("XADD", STREAM, "%d-1" % k, "job", str(k)), "%d-1" % k)
            self.assertEqual(cli("XREADGROUP", "GROUP", GROUP, "alice", "COUNT", "2", "STREAMS",
                                 STREAM, ">"),
                             "jobs\n1-1\njob\n1\n2-1\njob\n2")
            self.assertEqual(cli("XREADGROUP", "GROUP", GROUP, "bob", "STREAMS", STREAM, ">"),
                             "jobs\n3-1\njob\n3\n4-1\njob\n4\n5-1\njob\n5")
            self.assertEqual(cli("XACK", STREAM, GROUP, "1-1", "4-1"), "2")
            self.assertEqual(cli("XPENDING", STREAM, GROUP), "3\n2-1\n5-1\nalice\n1\nbob\n2")
            self.assertEqual(cli("XCLAIM", STREAM, GROUP, "carol", "0", "2-1", "JUSTID"), "2-1")
            self.assertEqual(cli("XAUTOCLAIM", STREAM, GROUP, "carol", "0", "0", "COUNT", "1",
                                 "JUSTID"), "3-1\n2-1")
            out = cli("XINFO", "GROUPS", STREAM)
            self.assertEqual(out, "name\nworkers\nconsumers\n3\npending\n3\nlast-delivered-id\n"
                             "5-1\nentries-read\n5\nlag\n0")
            self.assertIn("carol", cli("XINFO", "CONSUMERS", STREAM, GROUP))
            self.assertEqual(cli("XGROUP", "DELCONSUMER", STREAM, GROUP, "bob"), "2")
            self.assertEqual(cli("XGROUP", "CREATECONSUMER", STREAM, GROUP, "dave"), "1")
            self.assertIn("max-deleted-entry-id", cli("XINFO", "STREAM", STREAM, "FULL"))
            self.assertIn("Subcommands are:", cli("XGROUP", "HELP"))
            self.assertEqual(cli("XGROUP", "FOO"), "ERR unknown subcommand 'FOO'. Try XGROUP HELP.")
            self.assertEqual(cli("XREADGROUP", "GROUP", "nope", "x", "STREAMS", STREAM, ">"),
                             "NOGROUP No such key 'jobs' or consumer group 'nope' in XREADGROUP "
                             "with GROUP option")
            # BLOCK with nothing new waits for its timeout, then nil (test_xreadgroup_block).
            t0 = time.monotonic()
            self.assertEqual(cli("XREADGROUP", "GROUP", GROUP, "alice", "BLOCK", "700",
                                 "STREAMS", STREAM, ">"), "")
            self.assertGreaterEqual(time.monotonic() - t0, 0.65)
            self.assertLess(time.monotonic() - t0, 5)
            # COMMAND knows the subcommands and their keys.
            info = follower.call("COMMAND", "INFO", "xgroup", "xgroup|create", "xreadgroup")
            self.assertEqual(info[0][0], b"xgroup")
            self.assertEqual([s[0] for s in info[0][9]],
                             [b"xgroup|help", b"xgroup|createconsumer", b"xgroup|delconsumer",
                              b"xgroup|destroy", b"xgroup|setid", b"xgroup|create"])
            self.assertEqual(info[1][:6], [b"xgroup|create", -5, ["write", "denyoom"], 2, 2, 1])
            self.assertEqual(info[2][:3], [b"xreadgroup", -7, ["write", "blocking",
                                                              "movablekeys"]])
            # Every node reads the same state (reads go to the leader after a ReadIndex).
            replies = [x.call("XPENDING", STREAM, GROUP, "-", "+", "10") for x in c.nodes]
            self.assertEqual(replies[0], replies[1])
            self.assertEqual(replies[0], replies[2])
            self.assertEqual([e[0] for e in replies[0]], [b"2-1"])

    def test_no_delivery_or_ack_lost_across_failover(self):
        """Consumers read with XREADGROUP and acknowledge with XACK through every node while
        the stream's leader is killed and later restarted. Afterwards (and after one more
        failover): every entry delivered in a reply a client received is either pending for
        that consumer or was acknowledged; every acknowledgement a client received holds;
        no entry was delivered twice; every entry was delivered."""
        rng = random.Random(7)
        with Cluster(3, groups=4) as c:
            c.start()
            nodes = list(c.nodes)
            call_any(nodes, "XGROUP", "CREATE", STREAM, GROUP, "0", "MKSTREAM")
            added = []
            next_id = [1]

            def produce(live, n):
                """XADD n entries with explicit IDs; an unknown outcome is retried, and "equal
                or smaller" then means the first attempt was applied."""
                for _ in range(n):
                    i = "%d-0" % next_id[0]
                    for _ in range(20):
                        try:
                            call_any(live, "XADD", STREAM, i, "n", str(next_id[0]))
                            break
                        except Outcome:
                            time.sleep(0.2)
                        except RespError as e:
                            self.assertIn("equal or smaller", str(e))
                            break
                    else:
                        self.fail("XADD %s never answered" % i)
                    added.append(i)
                    next_id[0] += 1

            produce(nodes, 60)
            delivered = {}  # id -> consumer, from XREADGROUP replies clients received
            acked = set()   # ids whose XACK reply a client received
            unknown_reads = 0
            victim = leader_of(c, STREAM)
            killed_at = 30
            restarted_at = 80
            for step in range(140):
                if step == killed_at:
                    victim.kill()
                elif step == restarted_at:
                    victim.start()
                    victim.wait_ping(20)
                live = [x for x in nodes if x.running()]
                rng.shuffle(live)
                produce(live, 2)
                consumer = "c%d" % rng.randint(1, 3)
                try:
                    reply = call_any(live, "XREADGROUP", "GROUP", GROUP, consumer, "COUNT", "3",
                                     "STREAMS", STREAM, ">")
                except Outcome:
                    unknown_reads += 1
                    continue
                for i in ids_of(reply):
                    self.assertNotIn(i, delivered, "entry %s delivered twice" % i)
                    delivered[i] = consumer
                # Acknowledge some of what this consumer holds (not in the last steps, so that
                # some stay pending), retrying an XACK whose outcome is unknown until a node
                # answers (acknowledging twice is harmless).
                mine = [i for i, who in delivered.items() if who == consumer and i not in acked]
                to_ack = [i for i in mine if step < 110 and rng.random() < 0.4]
                if to_ack:
                    for _ in range(20):
                        try:
                            call_any(live, "XACK", STREAM, GROUP, *to_ack)
                            acked.update(to_ack)
                            break
                        except Outcome:
                            time.sleep(0.2)
            c.wait_ready(30)
            self.assertGreater(len(delivered), 100)

            def check(via):
                pel = call_any(via, "XPENDING", STREAM, GROUP, "-", "+", "100000")
                pending = {e[0].decode(): e[1].decode() for e in pel}
                for i in acked:
                    self.assertNotIn(i, pending, "acknowledged entry %s is pending again" % i)
                for i, who in delivered.items():
                    if i not in acked:
                        self.assertEqual(pending.get(i), who,
                                         "delivered entry %s not pending for %s" % (i, who))
                # Pending entries no client heard of came from replies lost in the failover.
                lost = set(pending) - set(delivered)
                if unknown_reads == 0:
                    self.assertEqual(lost, set())
                return lost

            lost = check(nodes)
            # Drain what is left: each remaining entry once, and then all were delivered.
            rest = []
            for _ in range(200):
                reply = call_any(nodes, "XREADGROUP", "GROUP", GROUP, "drain", "COUNT", "50",
                                 "STREAMS", STREAM, ">")
                if reply is None:
                    break
                rest.extend(ids_of(reply))
            seen = list(delivered) + list(lost) + rest
            self.assertEqual(len(seen), len(set(seen)), "an entry was delivered twice")
            self.assertEqual(sorted(seen, key=lambda i: int(i.split("-")[0])), added)
            groups = call_any(nodes, "XINFO", "GROUPS", STREAM)
            info = dict(zip(groups[0][0::2], groups[0][1::2]))
            self.assertEqual(info[b"last-delivered-id"], added[-1].encode())
            self.assertEqual(info[b"entries-read"], len(added))
            self.assertEqual(info[b"lag"], 0)
            # One more failover: the state is the same on the node that takes over.
            leader_of(c, STREAM).kill()
            survivors = [x for x in nodes if x.running()]
            c.wait_ready(30, nodes=survivors)
            for i in rest:
                delivered[i] = "drain"
            for i in lost:
                delivered.setdefault(i, call_any(survivors, "XPENDING", STREAM, GROUP, i, i,
                                                 "1")[0][1].decode())
            check(survivors)
            self.assertGreater(len(delivered) - len(acked), 10)
            print("%d added, %d delivered, %d acknowledged, %d reads with an unknown outcome"
                  % (len(added), len(delivered), len(acked), unknown_reads))


if __name__ == "__main__":
    unittest.main()
