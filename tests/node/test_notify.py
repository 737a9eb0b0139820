"""ringraftd speaks systemd's notify protocol (io/notify.c, Type=notify in
tools/dist/ringraftd.service): READY=1 once it serves, STOPPING=1 when a shutdown begins,
sent to the datagram socket named by $NOTIFY_SOCKET."""

import os
import socket
import subprocess
import tempfile
import unittest

from harness import DEFAULT_BIN, SAN_ENV, free_port_ranges, redis_cli


class NotifyTests(unittest.TestCase):
    def run_node(self, d, notify_socket):
        port, peer = free_port_ranges([1, 1])
        env = dict(os.environ)
        env.update(SAN_ENV)
        env["NOTIFY_SOCKET"] = notify_socket
        p = subprocess.Popen([DEFAULT_BIN, "--dir", os.path.join(d, "data"), "--groups", "4",
                              "--nodes", "1=127.0.0.1:%d@%d" % (port, peer)], cwd=d,
                             stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env,
                             start_new_session=True)
        return p, port

    def check_ready_then_stopping(self, sock, notify_socket):
        with tempfile.TemporaryDirectory() as d:
            p, port = self.run_node(d, notify_socket)
            try:
                sock.settimeout(60)
                ready = sock.recv(4096).decode()
                self.assertEqual(ready, "READY=1")
                # Ready means listening: PING answers at once.
                self.assertEqual(redis_cli(port, "PING"), (0, "PONG"))
                p.terminate()
                stopping = sock.recv(4096).decode()
                self.assertEqual(stopping, "STOPPING=1")
                self.assertEqual(p.wait(timeout=30), 0)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()

    def test_ready_and_stopping_on_a_path_socket(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "notify")
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                s.bind(path)
                self.check_ready_then_stopping(s, path)

    def test_ready_and_stopping_on_an_abstract_socket(self):
        name = "ringraft-test-notify-%d" % os.getpid()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.bind("\0" + name)
            self.check_ready_then_stopping(s, "@" + name)

    def test_bad_socket_name_is_logged_and_the_node_serves(self):
        with tempfile.TemporaryDirectory() as d:
            log = os.path.join(d, "log")
            port, peer = free_port_ranges([1, 1])
            env = dict(os.environ)
            env.update(SAN_ENV)
            env["NOTIFY_SOCKET"] = "relative/name"
            p = subprocess.Popen([DEFAULT_BIN, "--dir", os.path.join(d, "data"), "--groups",
                                  "4", "--logfile", log, "--nodes",
                                  "1=127.0.0.1:%d@%d" % (port, peer)], cwd=d,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env,
                                 start_new_session=True)
            try:
                for _ in range(400):
                    if redis_cli(port, "PING") == (0, "PONG"):
                        break
                    self.assertIsNone(p.poll(), "ringraftd exited")
                    __import__("time").sleep(0.05)
                self.assertEqual(redis_cli(port, "PING"), (0, "PONG"))
                p.terminate()
                self.assertEqual(p.wait(timeout=30), 0)
                text = open(log).read()
                self.assertIn("cannot notify the service manager ($NOTIFY_SOCKET) of READY=1",
                              text)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()


if __name__ == "__main__":
    unittest.main()
