"""The peer port refuses strangers: wrong cluster id, wrong secret, garbage bytes."""

import os
import socket
import struct
import unittest

from harness import (FRAME_HANDSHAKE, FRAME_HANDSHAKE_ACK, Cluster, decode_frame,
                     decode_handshake_ack, deadline_loop, encode_frame, encode_handshake)

HANDSHAKE_REFUSE_CLUSTER = 3
HANDSHAKE_REFUSE_SECRET = 4


def peer_exchange(port, data, timeout=5.0):
    """Sends data to a peer port; returns (bytes received until the close, closed?)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    got = b""
    closed = False
    try:
        s.sendall(data)
        while True:
            chunk = s.recv(65536)
            if not chunk:
                closed = True
                break
            got += chunk
    except ConnectionResetError:
        closed = True
    except socket.timeout:
        pass
    finally:
        s.close()
    return got, closed


def refused_count(node):
    return node.log_text().count("refused peer handshake")


def serving(test, c, tag):
    """Every node still answers, every group has a leader, writes go through."""
    c.wait_ready(15)
    for x in c.nodes:
        test.assertEqual(x.call("SET", "%s:%d" % (tag, x.id), "ok"), "OK")
    for x in c.nodes:
        for y in c.nodes:
            test.assertEqual(x.call("GET", "%s:%d" % (tag, y.id)), b"ok")


class PeerPortTests(unittest.TestCase):
    def handshake(self, c, target, cluster_id, proof):
        hs = encode_handshake(cluster_id, node=2, worker=0, groups=c.groups, workers=c.workers,
                              receiver=target.id, nonce=struct.unpack("<Q", os.urandom(8))[0],
                              proof=proof)
        got, closed = peer_exchange(target.peer_port, encode_frame(FRAME_HANDSHAKE, hs))
        self.assertTrue(closed, "connection with a bad handshake left open")
        frame = decode_frame(got)
        self.assertIsNotNone(frame, "no complete reply frame before the close: %r" % got[:64])
        ftype, payload, _ = frame
        self.assertEqual(ftype, FRAME_HANDSHAKE_ACK)
        return decode_handshake_ack(payload)

    def test_wrong_cluster_id_and_secret_refused(self):
        """A handshake with another cluster id, and one with a proof made from another
        secret, are answered with a refusing ack naming the reason, closed, logged
        ("refused peer handshake") and counted (INFO peer_handshakes_refused); the cluster
        keeps serving."""
        with Cluster(3, groups=8) as c:
            c.start()
            target = c.node(1)
            real_id = int(c.cluster_id, 16)
            before = refused_count(target)
            counted = int(target.info("batching")["peer_handshakes_refused"])
            accepted, refusal, reason = self.handshake(c, target, real_id ^ 0x5a5a, os.urandom(16))
            self.assertFalse(accepted)
            self.assertEqual(refusal, HANDSHAKE_REFUSE_CLUSTER, reason)
            self.assertIn("cluster id", reason)
            accepted, refusal, reason = self.handshake(c, target, real_id, os.urandom(16))
            self.assertFalse(accepted)
            self.assertEqual(refusal, HANDSHAKE_REFUSE_SECRET, reason)
            self.assertIn("secret", reason)
            for _ in deadline_loop(3, 0.1):
                if refused_count(target) >= before + 2:
                    break
            self.assertEqual(refused_count(target), before + 2,
                             "log lines 'refused peer handshake' on node 1")
            # Counted in INFO batching (workers publish their counters periodically).
            after = counted
            for _ in deadline_loop(3, 0.1):
                after = int(target.info("batching")["peer_handshakes_refused"])
                if after >= counted + 2:
                    break
            self.assertEqual(after, counted + 2, "INFO batching peer_handshakes_refused")
            serving(self, c, "after-handshakes")

    def test_garbage_refused(self):
        """Bytes that are not a frame (HTTP, random, a frame with a bad checksum) are
        refused at once and counted (INFO peer_frames_rejected); the cluster keeps
        serving."""
        with Cluster(3, groups=8) as c:
            c.start()
            target = c.node(2)
            before = int(target.info("batching").get("peer_frames_rejected", 0))
            good = encode_frame(FRAME_HANDSHAKE, b"\0" * 56)
            bad_sum = good[:16] + bytes([good[16] ^ 1]) + good[17:]
            cases = [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", os.urandom(4096), bad_sum,
                     b"RRF1" + b"\xff" * 60]
            for data in cases:
                got, closed = peer_exchange(target.peer_port, data)
                self.assertTrue(closed, "peer port left a connection sending %r open" % data[:16])
                self.assertEqual(got, b"", "reply to garbage %r" % data[:16])
            after = before
            for _ in deadline_loop(3, 0.1):
                after = int(target.info("batching").get("peer_frames_rejected", 0))
                if after >= before + len(cases):
                    break
            self.assertEqual(after, before + len(cases), "INFO batching peer_frames_rejected")
            self.assertGreaterEqual(target.log_text().count("inbound peer connection: bad frame"),
                                    len(cases))
            serving(self, c, "after-garbage")


if __name__ == "__main__":
    unittest.main()
