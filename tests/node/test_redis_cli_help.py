"""redis-cli builds its help and hints from COMMAND DOCS: run it interactively (on a
pseudo-terminal) against a node and read what `help` shows. Also CONFIG GET with several
patterns, as Redis 7 clients send it."""

import os
import pty
import re
import select
import time
import unittest

from harness import Cluster

ANSI = re.compile(rb"\x1b\[[0-9;]*[A-Za-z]")


def interactive_redis_cli(port, lines, timeout=20):
    """Types `lines` into an interactive redis-cli; returns what it printed, without colours
    and carriage returns."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: redis-cli on the terminal, no history file, no line editing
        os.environ["TERM"] = "dumb"
        os.environ["REDISCLI_HISTFILE"] = "/dev/null"
        os.environ["REDISCLI_RCFILE"] = "/dev/null"
        os.execvp("redis-cli", ["redis-cli", "-h", "127.0.0.1", "-p", str(port)])
    out = b""
    deadline = time.monotonic() + timeout

    def read_until(marker, start=0):
        """Reads until what arrived after out[start] ends with marker."""
        nonlocal out
        while time.monotonic() < deadline and not out[start:].endswith(marker):
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                try:
                    out += os.read(fd, 65536)
                except OSError:  # the child exited
                    return

    prompt = b"127.0.0.1:%d> " % port
    try:
        read_until(prompt)
        for line in lines:
            mark = len(out)
            os.write(fd, line.encode() + b"\r")
            read_until(prompt, mark)
        mark = len(out)
        os.write(fd, b"quit\r")
        read_until(b"\n", mark)
    finally:
        for _ in range(50):
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)
    return ANSI.sub(b"", out).replace(b"\r", b"").decode(errors="replace")


class RedisCliHelpTests(unittest.TestCase):
    def test_help_comes_from_command_docs(self):
        with Cluster(1, groups=2) as c:
            c.start()
            port = c.node(1).port
            out = interactive_redis_cli(port, ["help set", "help xgroup create", "help @stream"])
            self.assertIn("SET key value [NX|XX] [GET] [EX seconds|PX milliseconds|"
                          "EXAT unix-time-seconds|PXAT unix-time-milliseconds|KEEPTTL]", out)
            self.assertIn("summary: Sets a key to a string value", out)
            self.assertIn("group: string", out)
            self.assertIn("XGROUP CREATE key group id|$ [MKSTREAM] [ENTRIESREAD entries-read]",
                          out)
            # The stream group lists every stream command the node knows, and no other.
            names = sorted(n.decode() for n in (e[0] for e in c.node(1).call("COMMAND"))
                           if n.startswith(b"x"))
            listed = re.findall(r"^  (X[A-Z]+)(?: [A-Z]+)?(?: |$)", out, re.M)
            self.assertEqual(sorted(set(x.lower() for x in listed)), names)
            # What else clients ask at start: CONFIG GET takes several patterns (Redis 7),
            # each setting answered once.
            pairs = c.node(1).call("CONFIG", "GET", "save", "append*", "appendonly")
            self.assertEqual(dict(zip(pairs[::2], pairs[1::2])),
                             {b"save": b"", b"appendonly": b"yes", b"appendfsync": b"always"})
            self.assertEqual(len(pairs), 6)


if __name__ == "__main__":
    unittest.main()
