"""Membership and leadership from the command line (RAFT ADDNODE, PROMOTE, REMOVENODE,
TRANSFER) on real ringraftd processes: growing and shrinking under a write load, replacing a
node whose data directory was deleted, the bootstrap configuration kept on disk, and the
spread of leaders after a restart."""

import os
import socket
import struct
import threading
import time
import unittest

import harness
from harness import Cluster, ConnectionClosed, RespError, TestFailure, deadline_loop

FRAME_NODESET = 8  # io/wire/frame.h


def member_call(node, *args):
    """A membership command; returns its per-group report, failing unless every part is ok."""
    text = node.call("RAFT", *args, timeout=90).decode()
    head = text.splitlines()[0]
    if not head.endswith(" 0 failed") or "error" in text:
        raise TestFailure("RAFT %s through node %d:\n%s" % (" ".join(map(str, args)), node.id,
                                                            text))
    return text


def wait_config(nodes, voters, learners=0, timeout=30):
    """Every group on every node shows that many voters and learners, none pending."""
    last = None
    for _ in deadline_loop(timeout, 0.2):
        ok = True
        for x in nodes:
            st = x.raft_status()
            last = (x.id, st)
            for g in st.values():
                if (g["voters"] != voters or g["learners"] != learners or
                        g.get("config") == "pending"):
                    ok = False
        if ok:
            return
    raise TestFailure("configurations not %d voters / %d learners after %ds; node %d sees %s"
                      % (voters, learners, timeout, last[0], last[1]))


def spread(node):
    """{node id: groups led} from the 'leaders:' line of RAFT STATUS."""
    text = node.call("RAFT", "STATUS").decode()
    line = [ln for ln in text.splitlines() if ln.startswith("leaders:")][0]
    return {int(k): int(v) for k, v in (item.split("=") for item in line.split()[1:])}


def wait_even_spread(node, ids, groups, timeout=30):
    """Each of `ids` leads floor or ceil of groups / len(ids) groups, every group led."""
    last = None
    for _ in deadline_loop(timeout, 0.2):
        last = spread(node)
        counts = [last.get(i, 0) for i in ids]
        if sum(counts) == groups and max(counts) - min(counts) <= 1:
            return last
    raise TestFailure("leaders not spread evenly over %s after %ds: %s" % (ids, timeout, last))


class Writer(threading.Thread):
    """SETs distinct keys through one node until stopped; remembers what was acknowledged."""

    def __init__(self, node, prefix):
        super().__init__(daemon=True)
        self.node = node
        self.prefix = prefix
        self.acked = {}
        self.failed = 0
        self.stop = threading.Event()

    def run(self):
        i = 0
        conn = None
        while not self.stop.is_set():
            key, value = "%s:%d" % (self.prefix, i), "v%d" % i
            try:
                if conn is None:
                    conn = self.node.client(timeout=15)
                if conn.call("SET", key, value) == "OK":
                    self.acked[key] = value
                i += 1
            except RespError:
                self.failed += 1  # TIMEOUT or CLUSTERDOWN: outcome unknown, key not counted
                i += 1
            except (OSError, ConnectionClosed):
                self.failed += 1
                conn = None
                time.sleep(0.05)
        if conn is not None:
            conn.close()


def check_acked(node, writers):
    """Every acknowledged write reads back through `node`."""
    with node.client(timeout=15) as c:
        for w in writers:
            keys = sorted(w.acked)
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                got = c.pipeline([("GET", k) for k in chunk])
                for k, v in zip(chunk, got):
                    if v is None or v.decode() != w.acked[k]:
                        raise TestFailure("acknowledged write %s=%s lost: node %d reads %r"
                                          % (k, w.acked[k], node.id, v))


class MembershipTests(unittest.TestCase):
    def test_grow_to_five_and_shrink_to_three_under_load(self):
        """3 -> 5 nodes (two learners added, caught up, promoted) and back to 3 (an added node
        and an original one removed) while two clients write; no acknowledged write lost."""
        with Cluster(n=3, spares=2, groups=16) as c:
            c.start()
            n1, n3 = c.node(1), c.node(3)
            writers = [Writer(n1, "w1"), Writer(n3, "w3")]
            for w in writers:
                w.start()
            time.sleep(1.0)
            c.join_node(4)
            c.join_node(5)
            for i in (4, 5):
                text = member_call(n1, "ADDNODE", i, c.address(i))
                self.assertIn("nodeset ok", text)
            wait_config(c.running_nodes(), voters=3, learners=2)
            for i in (4, 5):
                member_call(c.node(3), "PROMOTE", i)
            wait_config(c.running_nodes(), voters=5)
            grown = wait_even_spread(n1, [1, 2, 3, 4, 5], c.groups)
            print("after growing: leaders %s; acknowledged %d, unknown %d"
                  % (grown, sum(len(w.acked) for w in writers), sum(w.failed for w in writers)))
            time.sleep(1.0)
            for i in (4, 2):
                text = member_call(n1, "REMOVENODE", i)
                self.assertIn("nodeset ok", text)
            wait_config([c.node(1), c.node(3), c.node(5)], voters=3)
            time.sleep(1.0)
            for w in writers:
                w.stop.set()
            for w in writers:
                w.join(30)
            acked = sum(len(w.acked) for w in writers)
            print("acknowledged %d writes, %d with unknown outcome"
                  % (acked, sum(w.failed for w in writers)))
            self.assertGreater(acked, 200)
            # The removed nodes go away; the remaining three serve everything.
            c.node(2).stop()
            c.node(4).stop()
            c.wait_ready(nodes=[c.node(1), c.node(3), c.node(5)])
            for x in (c.node(1), c.node(3), c.node(5)):
                check_acked(x, writers)
            self.assertEqual(n1.call("SET", "after", "shrink"), "OK")
            shrunk = wait_even_spread(n1, [1, 3, 5], c.groups)
            print("after shrinking: leaders %s" % shrunk)
            # The node set followed: CLUSTER NODES lists exactly the members.
            listed = n1.call("CLUSTER", "NODES").decode().splitlines()
            self.assertEqual(len(listed), 3, listed)
            # Removal is durable: a restarted member still has three voters and no node 2.
            c.node(5).stop()
            c.node(5).start()
            c.wait_ready(nodes=[c.node(1), c.node(3), c.node(5)])
            wait_config([c.node(5)], voters=3)
            with open(os.path.join(c.node(5).data, "NODES")) as f:
                nodes_file = f.read()
            self.assertNotIn("node 2 ", nodes_file)
            self.assertNotIn("node 4 ", nodes_file)

    def test_replace_node_whose_data_was_deleted(self):
        """Node 3 loses its data directory: it is removed, started afresh as a joining
        server, added back as a learner, caught up from the log and promoted; then the
        cluster survives losing node 1, so node 3 holds a working copy. Two workers per node:
        every worker's peers follow the node set."""
        with Cluster(n=3, groups=16, workers=2) as c:
            c.start()
            n1 = c.node(1)
            with n1.client() as cl:
                cl.pipeline([("SET", "k:%d" % i, "v%d" % i) for i in range(2000)])
            c.node(3).kill()
            member_call(n1, "REMOVENODE", 3)
            wait_config([c.node(1), c.node(2)], voters=2)
            c.join_node(3, wipe=True)
            member_call(n1, "ADDNODE", 3, c.address(3))
            member_call(c.node(2), "PROMOTE", 3)
            wait_config(c.running_nodes(), voters=3)
            with open(os.path.join(c.node(3).data, "BOOTSTRAP")) as f:
                boot = f.read()
            self.assertIn("voters 1,2\n", boot)
            self.assertIn("join yes", boot)
            # Node 3 has every entry: with node 1 gone, {2, 3} is a majority of every group.
            c.node(1).kill()
            c.wait_ready(nodes=[c.node(2), c.node(3)], timeout=40)
            with c.node(3).client(timeout=15) as cl:
                got = cl.pipeline([("GET", "k:%d" % i) for i in range(2000)])
            self.assertEqual([g.decode() for g in got], ["v%d" % i for i in range(2000)])
            self.assertEqual(c.node(3).call("SET", "after", "replace"), "OK")
            # A restart of the replaced node keeps its bootstrap (it never campaigns from it).
            c.node(3).stop()
            c.node(3).join = False
            c.node(3).start()
            c.wait_ready(nodes=[c.node(2), c.node(3)], timeout=40)
            self.assertIn("bootstrap: 2 voters (joined)", c.node(3).log_text())

    def test_bootstrap_is_read_from_disk(self):
        """Later starts use the bootstrap configuration recorded at the first one, not the
        `nodes` they are given: a node restarted with a longer node list still counts three
        voters (with four it could not elect anything while node 4 does not exist)."""
        with Cluster(n=3, spares=1, groups=8) as c:
            c.start()
            x = c.node(2)
            x.stop()
            x.extra = ["--nodes", c.nodes_setting() + ",4=" + c.address(4)]
            x.start()
            c.wait_ready()
            self.assertIn("bootstrap: 3 voters; node set: 3 nodes", x.log_text())
            st = x.raft_status()
            self.assertEqual({g["voters"] for g in st.values()}, {3})

    def test_malformed_and_refused_changes(self):
        """Malformed membership commands (a host with a space or a newline among them) get an
        error and change nothing; a change a group refuses is reported per group."""
        with Cluster(n=3, groups=4) as c:
            c.start()
            n1 = c.node(1)
            for args in (("ADDNODE", "x", "127.0.0.1:1"), ("ADDNODE", "4", "nohost"),
                         ("ADDNODE", "4"), ("PROMOTE", "0"), ("TRANSFER", "4", "1"),
                         ("FROB",),
                         # Hosts DIR/NODES cannot hold as one word (the node would write
                         # them, then refuse the file at its next start).
                         ("ADDNODE", "4", "a b:7001"), ("ADDNODE", "4", "a\nnode 9 x 1 1:7001")):
                with self.assertRaises(RespError, msg=str(args)):
                    n1.call("RAFT", *args)
            text = n1.call("RAFT", "PROMOTE", "7", timeout=30).decode()
            self.assertTrue(text.startswith("promote 7: 0 ok, 4 failed"), text)
            self.assertIn("group:2 error:ERR node 7 is not a learner of group 2", text)
            with self.assertRaisesRegex(RespError, "node 2 is in the node set at"):
                n1.call("RAFT", "ADDNODE", "2", "127.0.0.1:1@2")
            text = n1.call("RAFT", "ADDNODE", "2", c.address(2), timeout=30).decode()
            self.assertIn("error:ERR node 2 is already a voter", text)
            wait_config(c.running_nodes(), voters=3)

    def test_transfer_and_leader_spread_after_restart(self):
        """RAFT TRANSFER moves one group's leadership; leader balance spreads leaders within
        one group of even, and again after the node leading most of them is restarted."""
        with Cluster(n=3, groups=16) as c:
            c.start()
            first = wait_even_spread(c.node(1), [1, 2, 3], c.groups)
            st = c.node(1).raft_status()
            g = 0
            target = 1 if st[g]["leader"] != 1 else 2
            # The part answers ok once `target` leads the group (leader balance may hand it
            # back to its preferred node a second later).
            text = member_call(c.node(3), "TRANSFER", g, target)
            self.assertIn("group:%d ok" % g, text)
            busiest = max(first, key=first.get)
            c.node(busiest).kill()
            others = [x for x in c.nodes if x.id != busiest]
            c.wait_ready(nodes=others)
            c.node(busiest).start()
            c.wait_ready()
            t0 = time.monotonic()
            after = wait_even_spread(others[0], [1, 2, 3], c.groups)
            print("spread before %s, after restarting node %d %s (%.1fs)"
                  % (first, busiest, after, time.monotonic() - t0))



def encode_nodeset(index, nodes):
    """FRAME_NODESET payload (io/nodeset.c): u64 index, u32 count, (u32 id, u16 port, u16 peer
    port, u8 host length, host) per node."""
    out = struct.pack("<QI", index, len(nodes))
    for node_id, host, port, peer in nodes:
        out += struct.pack("<IHHB", node_id, port, peer, len(host)) + host.encode()
    return out


def decode_nodeset(payload):
    index, count = struct.unpack("<QI", payload[:12])
    off, nodes = 12, []
    for _ in range(count):
        node_id, port, peer, hl = struct.unpack("<IHHB", payload[off:off + 9])
        nodes.append((node_id, payload[off + 9:off + 9 + hl].decode(), port, peer))
        off += 9 + hl
    return index, nodes


class NodeSetExchangeTests(unittest.TestCase):
    def test_peers_exchange_node_sets(self):
        """A node sends its node set on a new peer connection and adopts a peer's set with a
        higher group 0 index (the path for node-set entries a snapshot compacted away), then
        passes it on; a set with a lower index changes nothing; a malformed one closes the
        connection. Played by a hand-made peer standing in for node 2."""
        with Cluster(n=3, groups=4) as c:
            c.start()
            c.node(2).stop()
            n3 = c.node(3)
            secret = c.secret.encode()
            cid = int(c.cluster_id, 16)
            nonce = struct.unpack("<Q", os.urandom(8))[0]
            hs = harness.encode_handshake(cid, node=2, worker=0, groups=c.groups,
                                          workers=c.workers, receiver=3, nonce=nonce,
                                          proof=harness.handshake_proof(secret, cid, nonce, 2, 0))
            s = socket.create_connection(("127.0.0.1", n3.peer_port), timeout=5)
            s.sendall(harness.encode_frame(harness.FRAME_HANDSHAKE, hs))
            buf, frames = b"", []
            for _ in deadline_loop(5, 0.01):
                buf += s.recv(65536)
                while True:
                    f = harness.decode_frame(buf)
                    if f is None:
                        break
                    frames.append(f[:2])
                    buf = f[2]
                if any(t == FRAME_NODESET for t, _ in frames):
                    break
            self.assertEqual(frames[0][0], harness.FRAME_HANDSHAKE_ACK)
            self.assertTrue(harness.decode_handshake_ack(frames[0][1])[0])
            sets = [decode_nodeset(p) for t, p in frames if t == FRAME_NODESET]
            self.assertEqual(len(sets), 1, frames)
            index, nodes = sets[0]
            self.assertEqual(index, 0)
            self.assertEqual(sorted(x[0] for x in nodes), [1, 2, 3])
            newer = nodes + [(9, "127.0.0.1", 1, 2)]
            s.sendall(harness.encode_frame(FRAME_NODESET, encode_nodeset(1000, newer)))
            for x in (n3, c.node(1)):  # node 3 adopts it and passes it on to node 1
                for _ in deadline_loop(10, 0.1):
                    if "9=" in x.call("RAFT", "STATUS").decode().splitlines()[1]:
                        break
                else:
                    self.fail("node %d did not adopt the newer node set" % x.id)
                with open(os.path.join(x.data, "NODES")) as f:
                    text = f.read()
                self.assertIn("index 1000\n", text)
                self.assertIn("node 9 127.0.0.1 1 2\n", text)
            s.sendall(harness.encode_frame(FRAME_NODESET, encode_nodeset(999, nodes)))
            s.sendall(harness.encode_frame(FRAME_NODESET, b"\x01\x02"))
            s.settimeout(5)
            try:
                while s.recv(65536):
                    pass
            except ConnectionResetError:
                pass
            s.close()
            self.assertIn("malformed node set", n3.log_text())
            self.assertIn("9=", n3.call("RAFT", "STATUS").decode().splitlines()[1])


if __name__ == "__main__":
    unittest.main()
