"""A new node joins a cluster whose leaders have compacted their logs past the start: it can
only catch up through InstallSnapshot, in several chunks per group. Added as a learner
(RAFT ADDNODE) while clients write, promoted (RAFT PROMOTE), then checked: every group's
state identical on all four nodes (RAFT DIGEST), every key and every acknowledged write read
back, the snapshots counted as received and installed on the new node, and its copy still
identical after it is killed and restarted from the files it installed."""

import time
import unittest

from harness import Cluster, TestFailure, deadline_loop
from test_membership import Writer, check_acked, member_call, wait_config
from test_snapshots import digest_map, wait_same_state

G = 4
TRAILING = 5
CHUNK_BYTES = 256 << 10  # core/limits.h RAFT_SNAPSHOT_CHUNK_BYTES
VALUE = "v" * 1000
KEYS = 6000  # about 6 MB of state: 1.5 MB per group, several chunks each


def leader_snapshots(c):
    """{group: snapshot index at the group's leader}, from each leader's own RAFT STATUS."""
    out = {}
    for x in c.running_nodes():
        for g, f in x.raft_status().items():
            if f["role"] == "leader":
                out[g] = f["snapshot"]
    return out


def wait_compacted(c, timeout=60):
    """Waits until the leader of every group has a snapshot far enough that its log no
    longer holds the first entries (it keeps TRAILING entries before the snapshot): a node
    with an empty log can only be caught up by InstallSnapshot."""
    last = None
    for _ in deadline_loop(timeout, 0.2):
        last = leader_snapshots(c)
        if len(last) == G and all(s > TRAILING + 1 for s in last.values()):
            return last
    raise TestFailure("leaders did not compact past the start after %ds: %s" % (timeout, last))


def snap_info(node):
    return {k: int(v) for k, v in node.info("snapshots").items() if v.isdigit()}


class SnapshotJoinTests(unittest.TestCase):
    def test_new_node_catches_up_through_chunked_snapshots(self):
        extra = ["--snapshot-log-bytes", "256k", "--snapshot-trailing-entries", str(TRAILING)]
        with Cluster(3, spares=1, groups=G, workers=2, extra=extra) as c:
            c.start()
            n1, n4 = c.node(1), c.node(4)
            with n1.client(timeout=60) as cl:
                for k in range(0, KEYS, 500):
                    r = cl.pipeline([("SET", "big:%d" % i, VALUE + str(i))
                                     for i in range(k, k + 500)])
                    self.assertEqual([x for x in r if x != "OK"], [])
            compacted = wait_compacted(c)
            sent_before = sum(snap_info(c.node(i))["snapshot_chunks_sent"] for i in (1, 2, 3))
            writers = [Writer(n1, "w1"), Writer(c.node(3), "w3")]
            for w in writers:
                w.start()
            try:
                time.sleep(0.5)
                c.join_node(4)
                t0 = time.monotonic()
                self.assertIn("nodeset ok", member_call(n1, "ADDNODE", 4, c.address(4)))
                wait_config(c.running_nodes(), voters=3, learners=1)
                # The learner holds a snapshot of every group before it is promoted.
                for _ in deadline_loop(60, 0.2):
                    if all(v[2] > 0 for v in digest_map(n4, G).values()):
                        break
                else:
                    raise TestFailure("node 4 did not install every group's snapshot: %s\n%s"
                                      % (digest_map(n4, G), n4.log_tail(30)))
                caught_up_s = time.monotonic() - t0
                member_call(c.node(2), "PROMOTE", 4)
                wait_config(c.running_nodes(), voters=4)
                time.sleep(0.5)
            finally:
                for w in writers:
                    w.stop.set()
                for w in writers:
                    w.join(30)
            acked = sum(len(w.acked) for w in writers)
            self.assertGreater(acked, 50, "the writers got too few writes through")

            # Identical state on every node, group by group (applied index and digest).
            agreed = wait_same_state(self, c.nodes, timeout=60, groups=G)
            info = snap_info(n4)
            sent = sum(snap_info(c.node(i))["snapshot_chunks_sent"] for i in (1, 2, 3))
            print("leaders' snapshots at %s; node 4 installed %d snapshots from %d chunks "
                  "(%d bytes; %d chunks sent by the leaders), refused %d, in %.1f s; "
                  "%d writes acknowledged, %d unknown; state %s"
                  % (compacted, info["snapshots_installed"], info["snapshot_chunks_received"],
                     info["snapshot_bytes_received"], sent - sent_before,
                     info["snapshots_refused"], caught_up_s, acked,
                     sum(w.failed for w in writers), agreed))
            raw = n4.info("snapshots")
            print("node 4's install barriers (every WAL operation of the worker waits): %s"
                  % {k: v for k, v in raw.items() if k.endswith("_last_install")})
            self.assertGreaterEqual(info["snapshots_installed"], G,
                                    "node 4 did not catch up every group by snapshot")
            # Each snapshot went in several chunks: on average more than one chunk's bytes.
            self.assertGreaterEqual(info["snapshot_chunks_received"],
                                    2 * info["snapshots_installed"])
            self.assertGreater(info["snapshot_bytes_received"],
                               info["snapshots_installed"] * CHUNK_BYTES)
            self.assertGreaterEqual(sent - sent_before, info["snapshot_chunks_received"])

            def check_all(node):
                with node.client(timeout=60) as cl:
                    got = cl.pipeline([("GET", "big:%d" % i) for i in range(KEYS)])
                bad = [i for i, v in enumerate(got) if v != (VALUE + str(i)).encode()]
                self.assertEqual(bad[:5], [], "node %d: %d keys missing or wrong"
                                 % (node.id, len(bad)))
                check_acked(node, writers)

            check_all(n4)
            check_all(n1)

            # The installed files hold the same state: node 4 killed and restarted from them
            # (and its WAL tail) agrees again, digest for digest.
            before = digest_map(n4, G)
            n4.kill()
            n4.join = False
            n4.start()
            n4.wait_ping(30)
            c.wait_ready(nodes=c.running_nodes(), timeout=40)
            after = wait_same_state(self, c.nodes, timeout=60, groups=G)
            for g in range(G):
                self.assertGreaterEqual(after[g][0], before[g][0])
            check_all(n4)


if __name__ == "__main__":
    unittest.main()
