"""Forwarded requests travel in batches: one FORWARD_BATCH frame carries the forwards a node
has for a peer when its output is sent, one FORWARD_REPLY_BATCH the replies, once the peer
announced the feature in a PING (io/wire/forward.h); a malformed batch is refused whole."""

import os
import socket
import struct
import time
import unittest

import harness
from harness import Cluster, deadline_loop

FRAME_FORWARD = 4
FRAME_FORWARD_REPLY = 5
FRAME_PING = 6
FRAME_FORWARD_BATCH = 9
FRAME_FORWARD_REPLY_BATCH = 10
FORWARD_FEATURE_BATCH = 1
CMD_WRITE = 1


def encode_forward(req_id, client_id, seq, group, args):
    """A FORWARD payload (docs/wire-format.md, "Forwarded requests")."""
    out = struct.pack("<QQQQIBI", req_id, client_id, seq, seq, group, CMD_WRITE, len(args))
    for a in args:
        out += struct.pack("<I", len(a)) + a
    return out


def encode_batch(records):
    return b"".join(struct.pack("<I", len(r)) + r for r in records)


def decode_batch(payload):
    out, off = [], 0
    while off < len(payload):
        (n,) = struct.unpack("<I", payload[off:off + 4])
        out.append(payload[off + 4:off + 4 + n])
        off += 4 + n
    return out


def stat(node, section, key):
    return int(node.info(section)[key])


class FakePeer:
    """A hand-made node 2 on node 3's peer port (node 2 itself stopped)."""

    def __init__(self, c, target):
        secret = c.secret.encode()
        cid = int(c.cluster_id, 16)
        nonce = struct.unpack("<Q", os.urandom(8))[0]
        hs = harness.encode_handshake(cid, node=2, worker=0, groups=c.groups, workers=c.workers,
                                      receiver=target.id, nonce=nonce,
                                      proof=harness.handshake_proof(secret, cid, nonce, 2, 0))
        self.s = socket.create_connection(("127.0.0.1", target.peer_port), timeout=5)
        self.s.sendall(harness.encode_frame(harness.FRAME_HANDSHAKE, hs))
        self.buf = b""
        self.frames = []

    def read_until(self, pred, timeout=10):
        for _ in deadline_loop(timeout, 0.01):
            try:
                chunk = self.s.recv(65536)
            except socket.timeout:
                chunk = b""
            self.buf += chunk
            while True:
                f = harness.decode_frame(self.buf)
                if f is None:
                    break
                self.frames.append(f[:2])
                self.buf = f[2]
            if pred(self.frames):
                return True
        return False

    def closed(self, timeout=5):
        self.s.settimeout(timeout)
        try:
            while self.s.recv(65536):
                pass
        except ConnectionResetError:
            pass
        except socket.timeout:
            return False
        return True

    def close(self):
        self.s.close()


class ForwardBatchTests(unittest.TestCase):
    def test_pipelined_forwards_share_frames(self):
        """Writes pipelined through node 1, most of them for groups led elsewhere, are
        forwarded in batch frames: node 1 sends fewer peer frames than it forwards requests
        (one frame per forward, as before batching, would be more), every write is answered
        +OK once and every node reads every value."""
        with Cluster(3, groups=16) as c:
            c.start()
            # Leader balance (from 2 s in) gives the other nodes groups to forward to.
            for _ in deadline_loop(30, 0.2):
                if all(v > 0 for v in c.leaders_by_node().values()):
                    break
            n1 = c.node(1)
            fwd0 = stat(n1, "stats", "forwarded_out")
            frames0 = stat(n1, "batching", "peer_frames_sent")
            n = 3000
            with n1.client() as conn:
                replies = conn.pipeline([("SET", "fb:%d" % i, "v%d" % i) for i in range(n)])
            self.assertEqual(replies, ["OK"] * n)
            # Workers publish their counters at each sweep (every 100 ms): read them once two
            # readings a sweep and a half apart agree.
            last = None
            for _ in deadline_loop(5, 0.15):
                now = stat(n1, "stats", "forwarded_out")
                if now == last:
                    break
                last = now
            forwards = stat(n1, "stats", "forwarded_out") - fwd0
            frames = stat(n1, "batching", "peer_frames_sent") - frames0
            self.assertGreater(forwards, 100, "too few forwards to tell anything")
            self.assertLess(frames, forwards,
                            "%d peer frames for %d forwards: not batched" % (frames, forwards))
            print("note: %d forwards in %d peer frames (Raft's included)" % (forwards, frames))
            for x in c.nodes:
                with x.client() as conn:
                    got = conn.pipeline([("GET", "fb:%d" % i) for i in range(0, n, 7)])
                self.assertEqual(got, [b"v%d" % i for i in range(0, n, 7)], "node %d" % x.id)

    def test_batches_answered_in_batches_and_malformed_refused_whole(self):
        """A peer that announced the feature gets its batch of forwards answered with a
        FORWARD_REPLY_BATCH holding a reply per forward (by id). A batch whose last record
        is malformed closes the connection, is counted (INFO peer_frames_rejected), and none
        of its records is acted on (INFO forwarded_in unchanged). Played by a hand-made peer
        standing in for node 2."""
        with Cluster(3, groups=4) as c:
            c.start()
            c.node(2).stop()
            n3 = c.node(3)
            p = FakePeer(c, n3)
            self.assertTrue(p.read_until(lambda fs: any(t == FRAME_PING for t, _ in fs)),
                            "no PING with the features after the handshake: %r" % p.frames)
            self.assertEqual(p.frames[0][0], harness.FRAME_HANDSHAKE_ACK)
            ping = [x for t, x in p.frames if t == FRAME_PING][0]
            self.assertEqual(struct.unpack("<Q", ping[:8])[0] & FORWARD_FEATURE_BATCH,
                             FORWARD_FEATURE_BATCH)
            p.s.sendall(harness.encode_frame(FRAME_PING, struct.pack("<Q", FORWARD_FEATURE_BATCH)))
            client = struct.unpack("<Q", os.urandom(8))[0] | 1
            in0 = stat(n3, "stats", "forwarded_in")
            ids = [0x7700 + g for g in range(c.groups)]
            batch = encode_batch([encode_forward(ids[g], client + g, 1, g,
                                                 [b"SET", b"fbk%d" % g, b"x"])
                                  for g in range(c.groups)])
            p.s.sendall(harness.encode_frame(FRAME_FORWARD_BATCH, batch))

            def replied(fs):
                got = set()
                for t, x in fs:
                    if t == FRAME_FORWARD_REPLY_BATCH:
                        got.update(struct.unpack("<Q", r[:8])[0] for r in decode_batch(x))
                return got >= set(ids)

            self.assertTrue(p.read_until(replied, 15), "replies: %r" % p.frames[-5:])
            self.assertFalse(any(t == FRAME_FORWARD_REPLY for t, _ in p.frames),
                             "a reply outside a batch to a peer that takes batches")
            # Workers publish their counters at each sweep (every 100 ms).
            for _ in deadline_loop(3, 0.05):
                if stat(n3, "stats", "forwarded_in") >= in0 + c.groups:
                    break
            self.assertEqual(stat(n3, "stats", "forwarded_in"), in0 + c.groups)

            rejected0 = stat(n3, "batching", "peer_frames_rejected")
            in1 = stat(n3, "stats", "forwarded_in")
            good = encode_forward(0x9900, client, 2, 0, [b"SET", b"fbk-bad", b"y"])
            bad = good[:-1]  # its last argument runs past the record
            p.s.sendall(harness.encode_frame(FRAME_FORWARD_BATCH, encode_batch([good, bad])))
            self.assertTrue(p.closed(), "connection left open after a malformed batch")
            p.close()
            for _ in deadline_loop(3, 0.1):
                if stat(n3, "batching", "peer_frames_rejected") > rejected0:
                    break
            self.assertEqual(stat(n3, "batching", "peer_frames_rejected"), rejected0 + 1)
            time.sleep(0.5)  # several sweeps: a record acted on would be published by now
            self.assertEqual(stat(n3, "stats", "forwarded_in"), in1,
                             "a record of a refused batch was acted on")
            self.assertIn("malformed forward batch", n3.log_text())


if __name__ == "__main__":
    unittest.main()
