"""ringraftd's configuration: bad settings and foreign data directories are refused with a
clear message and a non-zero exit; --dump-config round-trips; the built-in default serves."""

import os
import re
import subprocess
import tempfile
import unittest

from harness import DEFAULT_BIN, SAN_ENV, Cluster, free_port_ranges, redis_cli


def run(args, timeout=20):
    env = dict(os.environ)
    env.update(SAN_ENV)
    p = subprocess.run([DEFAULT_BIN] + args, capture_output=True, text=True, timeout=timeout,
                       env=env)
    return p.returncode, p.stdout + p.stderr


class ConfigTests(unittest.TestCase):
    def test_bad_settings_are_refused(self):
        cases = [
            (["--workers", "0"], "bad value for workers"),
            (["--groups", "abc"], "bad value for groups"),
            (["--no-such-setting", "1"], "unknown setting 'no-such-setting'"),
            (["--node-id", "4"], "node-id 4 is not in the node list"),
            (["--nodes", "1=127.0.0.1"], "bad value for nodes"),
            (["--disk-batching", "sometimes"], "bad value for disk-batching"),
            (["--heartbeat-ticks", "30", "--election-ticks", "20"], "heartbeat-ticks (30)"),
            (["--groups", "2", "--workers", "4"], "groups (2) must be at least workers (4)"),
            (["--check-config", "--workers"], "expected --SETTING VALUE"),
        ]
        for args, text in cases:
            if "--check-config" not in args:
                args = args + ["--check-config"]
            rc, out = run(args)
            self.assertEqual(rc, 2, "%s: %s" % (args, out))
            self.assertIn(text, out, args)

    def test_config_file_errors_name_the_line(self):
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
            f.write("# a comment\nworkers 2\n\ngroups lots\n")
        try:
            rc, out = run([f.name, "--check-config"])
            self.assertEqual(rc, 2, out)
            self.assertIn("%s:4: bad value for groups: 'lots'" % f.name, out)
        finally:
            os.unlink(f.name)

    def test_dump_config_round_trips(self):
        rc, dump = run(["--workers", "2", "--groups", "128", "--disk-batching", "linger:200",
                        "--dump-config"])
        self.assertEqual(rc, 0, dump)
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
            f.write(dump)
        try:
            rc, again = run([f.name, "--dump-config"])
            self.assertEqual(rc, 0, again)
            self.assertEqual(dump, again)
            self.assertIn("disk-batching linger:200", again)
        finally:
            os.unlink(f.name)

    def test_settings_do_not_override_each_other(self):
        # Each setting is independent of the order they come in: net-batching once reset
        # quiesce, lazy-commit and disk-flushes-in-flight to its own preferences.
        rc, dump = run(["--quiesce", "no", "--lazy-commit", "no", "--disk-flushes-in-flight",
                        "2", "--net-batching", "adaptive", "--dump-config"])
        self.assertEqual(rc, 0, dump)
        for line in ("quiesce no", "lazy-commit no", "disk-flushes-in-flight 2",
                     "net-batching adaptive"):
            self.assertIn(line + "\n", dump)

    def test_malloc_tunables(self):
        """malloc-hugepages (the default) starts ringraftd again with its glibc malloc
        tunables; `no` does not, and an operator's own glibc.malloc tunables are kept."""
        want = ("glibc.malloc.hugetlb=1:glibc.malloc.arena_max=1:"
                "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824")
        own = "glibc.malloc.arena_max=2"
        for extra, env, expect in ((), None, want), (("--malloc-hugepages", "no"), None, None), \
                ((), own, own):
            saved = os.environ.get("GLIBC_TUNABLES")
            if env is None:
                os.environ.pop("GLIBC_TUNABLES", None)
            else:
                os.environ["GLIBC_TUNABLES"] = env
            try:
                with Cluster(1, groups=2, extra=extra) as c:
                    c.start()
                    log = c.node(1).log_text()
            finally:
                if saved is None:
                    os.environ.pop("GLIBC_TUNABLES", None)
                else:
                    os.environ["GLIBC_TUNABLES"] = saved
            # The node logs the tunables it runs with (glibc cuts /proc/PID/environ's copy).
            line = [x for x in log.splitlines() if "malloc: GLIBC_TUNABLES=" in x]
            if expect is None:
                self.assertEqual(line, [], extra)
            else:
                self.assertEqual(len(line), 1, log)
                self.assertTrue(line[0].endswith("malloc: GLIBC_TUNABLES=" + expect), line)

    def test_foreign_data_directory_is_refused(self):
        """A node started on a data directory created for another cluster, node, G or W
        refuses to start (exit status 1) and names both identities, the directory's and the
        configured one; the directory is left untouched and its own node starts on it."""
        with Cluster(1, groups=8) as c:
            c.start()
            node = c.node(1)
            node.stop()
            ident = open(os.path.join(node.data, "IDENTITY")).read()
            port, peer = free_port_ranges([1, 1])
            for flag, value, line in (("--cluster-id", "0x1234", "cluster-id 0x0000000000001234"),
                                      ("--groups", "16", "groups 16"),
                                      ("--workers", "2", "workers 2"),
                                      ("--node-id", "2", "node-id 2")):
                args = node.argv()[1:]
                i = args.index(flag)
                args[i + 1] = value
                if flag == "--node-id":
                    # Node 2 must be in the node list, or the setting is refused before the
                    # data directory is looked at.
                    i = args.index("--nodes")
                    args[i + 1] += ",2=127.0.0.1:%d@%d" % (port, peer)
                rc, out = run(args, timeout=30)
                self.assertEqual(rc, 1, "%s %s: %s" % (flag, value, out[-500:]))
                self.assertIn("data directory %s belongs to another cluster, node or shape"
                              % node.data, out)
                m = re.search(r"it holds:  (.*?)\n\n  configured: (.*?)\n\n", out, re.S)
                self.assertIsNotNone(m, "%s %s: identities not named: %s" % (flag, value, out))
                self.assertEqual(m.group(1) + "\n", ident, "%s %s: held identity" % (flag, value))
                self.assertIn(line, m.group(2).splitlines(), "%s %s: configured" % (flag, value))
                self.assertNotIn(line, ident.splitlines())
                self.assertEqual(open(os.path.join(node.data, "IDENTITY")).read(), ident)
            node.start()
            node.wait_ping()

    def test_second_process_on_a_directory_is_refused(self):
        with Cluster(1, groups=8) as c:
            c.start()
            rc, out = run(c.node(1).argv()[1:], timeout=30)
            self.assertEqual(rc, 1, out[-500:])
            self.assertIn("is in use by another process", out)
            self.assertEqual(c.node(1).call("PING"), "PONG")


class DefaultTests(unittest.TestCase):
    def test_default_single_node(self):
        """With only --dir and free ports, the built-in default is a single-node cluster
        that serves writes."""
        port, peer = free_port_ranges([1, 1])
        with tempfile.TemporaryDirectory() as d:
            env = dict(os.environ)
            env.update(SAN_ENV)
            p = subprocess.Popen([DEFAULT_BIN, "--dir", os.path.join(d, "data"), "--nodes",
                                  "1=127.0.0.1:%d@%d" % (port, peer)], cwd=d, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.STDOUT, env=env, start_new_session=True)
            try:
                for _ in range(200):
                    if redis_cli(port, "PING")[1] == "PONG":
                        break
                    if p.poll() is not None:
                        self.fail("ringraftd exited with %s" % p.returncode)
                    __import__("time").sleep(0.05)
                self.assertEqual(redis_cli(port, "SET", "k", "v"), (0, "OK"))
                self.assertEqual(redis_cli(port, "GET", "k"), (0, "v"))
            finally:
                p.terminate()
                self.assertEqual(p.wait(timeout=20), 0)


if __name__ == "__main__":
    unittest.main()
