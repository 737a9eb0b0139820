"""tools/ringraft-cluster restart, add, remove and replace on a local cluster of
build/debug/ringraftd: the tool's own commands, checked through RAFT STATUS and the data."""

import os
import random
import shlex
import shutil
import subprocess
import tempfile
import unittest

import harness
from harness import Resp, TestFailure

TOOL = os.path.join(harness.REPO, "tools", "ringraft-cluster")


def free_base(count=5):
    """A base port P with P+1..P+count and P+10001..P+10000+count free (one worker). Both
    ranges stay below the kernel's ephemeral ports (32768 and up here), which the nodes'
    own outgoing connections take: a free port there can be taken before a node binds it."""
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    for _ in range(200):
        p = random.randrange(2000, max(2001, low - 10000 - count - 1))
        if all(harness._port_free(p + i) and harness._port_free(p + 10000 + i)
               for i in range(1, count + 1)):
            return p
    raise TestFailure("no free port range")


class ClusterToolTests(unittest.TestCase):
    def tool(self, *args):
        r = subprocess.run([TOOL] + list(args) + ["--dir", self.dir], capture_output=True,
                           timeout=400, env=dict(os.environ, **harness.SAN_ENV))
        out = r.stdout.decode() + r.stderr.decode()
        if r.returncode != 0:
            raise TestFailure("ringraft-cluster %s failed:\n%s" % (" ".join(args), out))
        return out

    def call(self, node, *args):
        with Resp(self.base + node, timeout=15) as c:
            return c.call(*args)

    def conf(self, node):
        with open(os.path.join(self.dir, "node%d" % node, "ringraft.conf")) as f:
            return f.read()

    def voters(self, node, want):
        """Waits until every group on `node` has (voters, learners) == want (RAFT STATUS
        publishes configurations once a second); returns what it saw last."""
        for _ in harness.deadline_loop(10, 0.2):
            st = harness.parse_raft_status(self.call(node, "RAFT", "STATUS"))
            seen = {(g["voters"], g["learners"]) for g in st.values()}
            if seen == {want}:
                break
        return seen

    def pid(self, node):
        with open(os.path.join(self.dir, "node%d" % node, "pid")) as f:
            return int(f.read())

    def log(self, node):
        with open(os.path.join(self.dir, "node%d" % node, "ringraftd.log"),
                  errors="replace") as f:
            return f.read()

    def check_restart(self, node):
        """restart I: node I exits cleanly on the tool's SIGTERM, a new process starts on
        the same config and data, answers, and serves what was written before."""
        old = self.pid(node)
        old_run_id = harness.parse_info(self.call(node, "INFO", "server"))["run_id"]
        stops = self.log(node).count("received SIGTERM; shutting down")
        out = self.tool("restart", str(node))
        self.assertIn("node %d: SIGTERM sent to pid %d" % (node, old), out)
        self.assertIn("node %d: stopped" % node, out)
        self.assertNotIn("SIGKILL", out)
        self.assertIn("node %d answers PING" % node, out)
        new = self.pid(node)
        self.assertNotEqual(new, old, "pid file after restart %d" % node)
        try:
            with open("/proc/%d/status" % old) as f:
                state = [x.split()[1] for x in f if x.startswith("State:")][0]
        except FileNotFoundError:
            state = "gone"
        self.assertIn(state, ("gone", "Z"), "the old process %d after restart" % old)
        # The log: one more clean shutdown, then the tool's start and the new process ready.
        text = self.log(node)
        self.assertEqual(text.count("received SIGTERM; shutting down"), stops + 1)
        after = text.rsplit("received SIGTERM; shutting down", 1)[1]
        i = after.find("[main] stopped")
        j = after.find("ringraft-cluster: starting node %d" % node, i)
        k = after.find("ringraftd node %d ready" % node, j)
        self.assertTrue(0 <= i < j < k, "node %d's log after the SIGTERM:\n%s" % (node, after))
        info = harness.parse_info(self.call(node, "INFO", "server"))
        self.assertEqual(int(info["process_id"]), new)
        self.assertNotEqual(info["run_id"], old_run_id)
        self.assertEqual(self.call(node, "PING"), "PONG")
        got = None
        for _ in harness.deadline_loop(30, 0.2):  # its groups may be electing a leader
            try:
                with Resp(self.base + node, timeout=15) as c:
                    got = c.pipeline([("GET", "k:%d" % i) for i in range(300)])
                if all(isinstance(g, bytes) for g in got):
                    break
            except (OSError, harness.ConnectionClosed):
                continue
        self.assertEqual([g.decode() if isinstance(g, bytes) else g for g in got],
                         ["v%d" % i for i in range(300)], "reads through node %d" % node)

    def test_add_remove_replace(self):
        self.dir = tempfile.mkdtemp(prefix="ringraft-tool-test-")
        self.base = free_base()
        ok = False
        try:
            # The start's flags (RR_NODE_EXTRA's too: the uring-off stage) reach the nodes
            # that add and replace start.
            flags = shlex.split(os.environ.get("RR_NODE_EXTRA", "")) + \
                ["--slowlog-max-len", "77"]
            subprocess.run([TOOL, "start", "3", "--dir", self.dir, "--base-port",
                            str(self.base), "--groups", "8", "--bin", harness.DEFAULT_BIN,
                            "--"] + flags,
                           check=True, capture_output=True, timeout=60,
                           env=dict(os.environ, **harness.SAN_ENV))
            with Resp(self.base + 1, timeout=15) as c:
                c.pipeline([("SET", "k:%d" % i, "v%d" % i) for i in range(300)])
            self.check_restart(2)
            out = self.tool("add", "4")
            self.assertIn("node 4: a voter of every group", out)
            self.assertIn("\nslowlog-max-len 77\n", self.conf(4))
            self.assertEqual(self.voters(4, (4, 0)), {(4, 0)})
            self.tool("remove", "2")
            self.assertEqual(self.voters(1, (3, 0)), {(3, 0)})
            out = self.tool("replace", "3")
            self.assertIn("node 3: data directory deleted", out)
            self.assertIn("\nslowlog-max-len 77\n", self.conf(3))
            self.assertEqual(self.voters(3, (3, 0)), {(3, 0)})
            with open(os.path.join(self.dir, "members")) as f:
                self.assertEqual(f.read().split(), ["1", "4", "3"])
            status = self.tool("status")
            self.assertRegex(status, r"\n2\s+-\s+stopped")
            # The replaced node holds the data: with node 1 stopped, {3, 4} serve every read.
            subprocess.run([TOOL, "kill", "1", "--dir", self.dir], check=True,
                           capture_output=True, timeout=30)
            for _ in harness.deadline_loop(30, 0.2):
                try:
                    with Resp(self.base + 3, timeout=15) as c:
                        got = c.pipeline([("GET", "k:%d" % i) for i in range(300)])
                    break
                except harness.RespError:
                    continue
            self.assertEqual([g.decode() for g in got], ["v%d" % i for i in range(300)])
            ok = True
        finally:
            subprocess.run([TOOL, "stop", "--dir", self.dir], capture_output=True, timeout=60)
            if ok:
                shutil.rmtree(self.dir, ignore_errors=True)
            else:
                print("cluster directory kept: %s" % self.dir)


if __name__ == "__main__":
    unittest.main()
