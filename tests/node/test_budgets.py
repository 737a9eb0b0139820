"""A worker's node-wide budgets under a burst of large writes: request bytes in flight
(worker-inflight-limit: -BUSY, and what was refused was never applied) and entry bytes its
leaders proposed and have not committed (worker-uncommitted-limit: proposals wait for
commits, every write still succeeds)."""

import unittest

from harness import Cluster, RespError, deadline_loop, encode_command

VALUE = b"v" * (16 << 10)  # 16 KiB
BURST = 160                # 2.5 MiB of values in one pipeline


def stats(node, section):
    info = node.info(section)
    return {k: int(v) for k, v in info.items() if v.lstrip("-").isdigit()}


class BudgetTests(unittest.TestCase):
    def burst(self, c, tag):
        """One pipeline of BURST SETs of 16 KiB through node 1, keys in every group; returns
        the keys with their replies."""
        keys = ["%s:{%d}:%d" % (tag, k % 16, k) for k in range(BURST)]
        with c.node(1).client(timeout=60) as conn:
            replies = conn.pipeline([("SET", k, VALUE) for k in keys], chunk=BURST)
        return list(zip(keys, replies))

    def test_inflight_limit_refuses_with_busy(self):
        """With worker-inflight-limit at its 1 MiB minimum, a 2.5 MiB pipeline gets -BUSY for
        part of it, counted; a refused SET was never applied (its key is absent on every
        node); an accepted one is everywhere; the node serves normally afterwards."""
        with Cluster(3, groups=4, extra=["--worker-inflight-limit", "1048576"]) as c:
            c.start()
            replies = self.burst(c, "in")
            busy = [k for k, r in replies if isinstance(r, RespError)]
            ok = [k for k, r in replies if r == "OK"]
            self.assertEqual(len(busy) + len(ok), BURST, [r for _, r in replies][:5])
            self.assertGreater(len(busy), 0, "2.5 MiB in flight against a 1 MiB budget")
            self.assertGreater(len(ok), 0)
            for k, r in replies:
                if isinstance(r, RespError):
                    self.assertRegex(str(r), r"^BUSY too many bytes in flight on (this node|the "
                                     r"leader); try again$")
            for _ in deadline_loop(10, 0.2):
                if stats(c.node(1), "stats").get("busy_rejects", 0) >= 1:
                    break
            else:
                self.fail("busy_rejects not counted")
            for x in c.nodes:
                with x.client(timeout=60) as conn:
                    got = conn.pipeline([("EXISTS", k) for k in busy + ok])
                self.assertEqual(got[:len(busy)], [0] * len(busy),
                                 "node %d: a refused SET was applied" % x.id)
                self.assertEqual(got[len(busy):], [1] * len(ok),
                                 "node %d: an acknowledged SET is missing" % x.id)
            self.assertEqual(c.node(1).call("SET", "after", "1"), "OK")

    def test_uncommitted_limit_holds_proposals_back(self):
        """With worker-uncommitted-limit at 64 KiB (four values), the same burst is
        proposed a few entries at a time: every SET is acknowledged, the waits are counted,
        and every value is on every node."""
        with Cluster(3, groups=4, extra=["--worker-uncommitted-limit", "65536"]) as c:
            c.start()
            replies = self.burst(c, "unc")
            self.assertEqual([r for _, r in replies], ["OK"] * BURST)
            waits = 0
            for _ in deadline_loop(10, 0.2):
                waits = sum(stats(x, "limits").get("uncommitted_waits", 0) for x in c.nodes)
                if waits > 0:
                    break
            self.assertGreater(waits, 0, "no proposal waited for the 64 KiB budget")
            for x in c.nodes:
                limits = stats(x, "limits")
                self.assertEqual(limits["worker_uncommitted_limit"], 65536)
                for _ in deadline_loop(10, 0.2):  # published every tick; all committed
                    if stats(x, "limits")["uncommitted_bytes"] == 0:
                        break
                else:
                    self.fail("node %d: uncommitted bytes at rest: %r" % (x.id, stats(x, "limits")))
                with x.client(timeout=60) as conn:
                    got = conn.pipeline([("STRLEN", k) for k, _ in replies])
                self.assertEqual(got, [len(VALUE)] * BURST, "node %d" % x.id)
            # Entries larger than the whole budget (each goes alone) among many small ones
            # from other clients: the held-back groups take turns, so none starves into a
            # -BUSY at its deadline.
            big = b"B" * (96 << 10)
            commands = []
            for k in range(240):
                if k % 8 == 0:
                    commands.append(("SET", "big:{0}:%d" % k, big))
                else:
                    commands.append(("SET", "small:{%d}:%d" % (1 + k % 15, k), b"s" * 1024))
            with c.node(1).client(timeout=60) as a, c.node(1).client(timeout=60) as b:
                a.sock.sendall(b"".join(encode_command(*cmd) for cmd in commands[0::2]))
                b.sock.sendall(b"".join(encode_command(*cmd) for cmd in commands[1::2]))
                got = [a.read_reply() for _ in commands[0::2]] + \
                    [b.read_reply() for _ in commands[1::2]]
            self.assertEqual([str(g) for g in got if g != "OK"], [])
            for x in c.nodes:
                with x.client(timeout=60) as conn:
                    lens = conn.pipeline([("STRLEN", cmd[1]) for cmd in commands])
                self.assertEqual(lens, [len(cmd[2]) for cmd in commands], "node %d" % x.id)


if __name__ == "__main__":
    unittest.main()
