"""Observability: the Prometheus endpoint (metrics-port) of every node of a cluster, its
naming conventions and histograms, bad HTTP requests refused without disturbing the node;
SLOWLOG (bounded, newest first, Redis's truncation rules, passwords never logged); INFO's
memory, limits and latencystats sections."""

import re
import socket
import time
import unittest
import urllib.error
import urllib.request

from harness import Cluster, Resp, deadline_loop, free_port_ranges

# Histograms of sizes (no unit): records per WAL flush, frames per peer send batch.
SIZE_FAMILIES = ("ringraft_wal_flush_records", "ringraft_peer_send_frames")
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (-?[0-9.eE+-]+|\+Inf|NaN)$')


def scrape(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return r.read().decode()


def parse_metrics(text):
    """{(name, labels): value} and {family: type}; asserts the exposition format."""
    samples, types, helps = {}, {}, set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helps.add(line.split()[2])
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            types[name] = kind
            continue
        m = SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        samples[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return samples, types, helps


def batch_size_problems(samples):
    """What is wrong with the batch size histograms of one scrape ([] if nothing)."""
    problems = []
    for name, total, items in (
            ("ringraft_wal_flush_records", "ringraft_wal_flushes_total",
             "ringraft_wal_records_total"),
            ("ringraft_peer_send_frames", "ringraft_peer_sends_total",
             "ringraft_peer_frames_sent_total")):
        buckets = sorted((float(re.search(r'le="([^"]+)"', lab).group(1)), v)
                         for (n, lab), v in samples.items() if n == name + "_bucket")
        counts = [v for _, v in buckets]
        count = samples.get((name + "_count", ""), -1)
        hsum = samples.get((name + "_sum", ""), -1)
        if len(counts) != 25 or counts != sorted(counts):
            problems.append("%s: buckets %s" % (name, counts))
        elif buckets[-1] != (float("inf"), count):
            problems.append("%s: +Inf %s, count %s" % (name, buckets[-1], count))
        if count <= 0 or hsum < count:
            problems.append("%s: count %s, sum %s" % (name, count, hsum))
        if name == "ringraft_wal_flush_records":
            # Every flush and its records, exactly.
            if count != samples[(total, "")] or hsum != samples[(items, "")]:
                problems.append("%s: count %s sum %s, flushes %s records %s" % (
                    name, count, hsum, samples[(total, "")], samples[(items, "")]))
        elif count > samples[(total, "")] or hsum > samples[(items, "")]:
            # Sends also count continuations of partial sends; frames still queued are
            # not in a batch yet.
            problems.append("%s: count %s sum %s, sends %s frames %s" % (
                name, count, hsum, samples[(total, "")], samples[(items, "")]))
    return problems


def raw_http(port, data, read_after=0.0):
    """Sends raw bytes, returns the status line (or '' if closed without an answer).
    read_after: seconds to wait before reading, so the server has answered and closed
    before the client reads (its answer must survive unread request bytes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        time.sleep(read_after)
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    return buf.split(b"\r\n", 1)[0].decode()


class ObservabilityTests(unittest.TestCase):
    def test_metrics_endpoint(self):
        ports = free_port_ranges([1, 1, 1])
        with Cluster(3, groups=8) as c:
            for x, p in zip(c.nodes, ports):
                x.extra = ["--metrics-port", str(p)]
            c.start()
            with c.node(1).client() as conn:
                replies = conn.pipeline([("SET", "k%d" % i, "v") for i in range(200)] +
                                        [("GET", "k%d" % i) for i in range(100)])
            self.assertTrue(all(not isinstance(r, Exception) for r in replies))
            c.node(1).call("RAFT", "SNAPSHOT", 0)
            # Counters and histograms are published every 100 ms, group roles once a second:
            # wait until they show (on a loaded machine a group may be between leaders, and
            # node 1 applies as a follower what other nodes' leaders committed a bit later).
            for _ in deadline_loop(10):
                samples, types, helps = parse_metrics(scrape(ports[0]))
                key = ("ringraft_request_duration_seconds_count", '{class="read"}')
                if (samples.get(key, 0) >= 100 and
                        samples.get(("ringraft_groups_with_leader", ""), 0) == 8 and
                        samples.get(("ringraft_applied_entries_total", ""), 0) >= 200 and
                        samples.get(("ringraft_snapshots_taken_total", ""), 0) >= 1):
                    break
            for family, kind in types.items():
                self.assertTrue(family.startswith("ringraft_"), family)
                self.assertIn(family, helps)
                if kind == "counter":
                    self.assertTrue(family.endswith("_total"), family)
                if kind == "histogram" and family not in SIZE_FAMILIES:
                    self.assertTrue(family.endswith("_seconds"), family)
            for (name, _labels) in samples:
                family = re.sub(r"_(bucket|sum|count)$", "", name)
                self.assertTrue(name in types or family in types, name)
            self.assertEqual(samples[("ringraft_groups", "")], 8)
            self.assertEqual(samples[("ringraft_groups_with_leader", "")], 8)
            self.assertGreaterEqual(samples[("ringraft_applied_entries_total", "")], 200)
            self.assertGreaterEqual(samples[("ringraft_snapshots_taken_total", "")], 1)
            self.assertGreater(samples[("ringraft_snapshot_written_bytes_total", "")], 0)
            self.assertGreaterEqual(samples[("ringraft_wal_segments", "")], 1)
            self.assertGreater(samples[("ringraft_wal_disk_bytes", "")], 0)
            self.assertIn(("ringraft_snapshot_last_duration_seconds", '{worker="0"}'), samples)
            # Histograms: cumulative buckets, +Inf equal to the count.
            for cls, least in (("write", 200), ("read", 100)):
                name = "ringraft_request_duration_seconds"
                buckets = sorted(((float(re.search(r'le="([^"]+)"', lab).group(1)), v)
                                  for (n, lab), v in samples.items()
                                  if n == name + "_bucket" and 'class="%s"' % cls in lab))
                counts = [v for _, v in buckets]
                self.assertEqual(counts, sorted(counts), "buckets must be cumulative")
                total = samples[(name + "_count", '{class="%s"}' % cls)]
                self.assertEqual(buckets[-1], (float("inf"), total))
                self.assertGreaterEqual(total, least)
                self.assertGreater(samples[(name + "_sum", '{class="%s"}' % cls)], 0)
            # Batch sizes: cumulative buckets whose +Inf is the count; every flush and every
            # peer send batch is counted, and a batch holds at least one record or frame.
            # A worker publishes its counters and then its histograms while a scrape reads
            # them, so one scrape may mix two publications: scrape until one agrees (the
            # cluster goes quiet); a counting error never does.
            problems = batch_size_problems(samples)
            if problems:
                for _ in deadline_loop(10):
                    time.sleep(0.2)
                    problems = batch_size_problems(parse_metrics(scrape(ports[0]))[0])
                    if not problems:
                        break
            self.assertEqual(problems, [])
            # Every node serves its own.
            for p in ports[1:]:
                s2, _, _ = parse_metrics(scrape(p))
                self.assertEqual(s2[("ringraft_groups", "")], 8)
            # Bad requests get an HTTP error and nothing else changes.
            self.assertEqual(raw_http(ports[0], b"GET /nope HTTP/1.1\r\n\r\n"),
                             "HTTP/1.1 404 Not Found")
            self.assertEqual(raw_http(ports[0], b"POST /metrics HTTP/1.1\r\n\r\n"),
                             "HTTP/1.1 405 Method Not Allowed")
            self.assertEqual(raw_http(ports[0], b"\x00\xff garbage\r\n\r\n"),
                             "HTTP/1.1 400 Bad Request")
            for wait in (0.0, 0.3):
                self.assertEqual(raw_http(ports[0], b"GET /" + b"a" * 20000, wait),
                                 "HTTP/1.1 431 Request Header Fields Too Large")
            # The server drops what follows an answer for a bounded time, then closes.
            with socket.create_connection(("127.0.0.1", ports[0]), timeout=10) as s:
                s.sendall(b"GET /" + b"a" * 20000)
                self.assertTrue(s.recv(65536).startswith(b"HTTP/1.1 431"))
                self.assertEqual(s.recv(65536), b"", "EOF after the answer")
                with self.assertRaises(OSError):
                    for _ in deadline_loop(10):
                        s.sendall(b"a" * 4096)  # reset once the server has closed
                        time.sleep(0.05)
            with self.assertRaises(urllib.error.HTTPError):
                urllib.request.urlopen("http://127.0.0.1:%d/" % ports[0], timeout=10)
            self.assertEqual(c.node(1).call("PING"), "PONG")
            parse_metrics(scrape(ports[0]))

    def test_metrics_connections_back_to_back(self):
        # A client that stops at Content-Length and closes at once (urllib does) ends the
        # lingering close while its shutdown may still be in flight; that fd number is given
        # to the next connection at once. Every answer must still arrive whole: a shutdown
        # or close meant for the old connection must never reach the new one.
        port = free_port_ranges([1])[0]
        with Cluster(1, groups=1, extra=["--metrics-port", str(port)]) as c:
            c.start()
            missing = []
            for i in range(1500):
                request = b"GET /metrics HTTP/1.1\r\n\r\n" if i % 4 == 0 else \
                    b"GET /nope HTTP/1.1\r\n\r\n"
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                        s.sendall(request)
                        with s.makefile("rb") as f:
                            status = f.readline()
                            length = -1
                            while True:
                                line = f.readline()
                                if line.lower().startswith(b"content-length:"):
                                    length = int(line.split(b":")[1])
                                if line in (b"\r\n", b""):
                                    break
                            body = f.read(length) if length >= 0 else b""
                    if not status.startswith(b"HTTP/1.1 ") or len(body) != length:
                        missing.append((i, status, length, len(body)))
                except OSError as e:  # a reset: the answer was lost too
                    missing.append((i, repr(e)))
            self.assertEqual(missing, [])
            self.assertEqual(c.node(1).call("PING"), "PONG")

    def test_slowlog(self):
        with Cluster(3, groups=8, password="pw",
                     extra=["--slowlog-log-slower-than", "0", "--slowlog-max-len", "5"]) as c:
            c.start()
            with c.node(2).client() as conn:  # its AUTH is not logged
                conn.call("SLOWLOG", "RESET")
                with c.node(2).client():  # AUTH, on another connection
                    pass
                with Resp(c.node(2).port) as other:
                    other.call("HELLO", "2", "AUTH", "default", "pw")
                logged = [e[3][0].upper() for e in conn.call("SLOWLOG", "GET", "-1")]
                self.assertEqual(logged, [b"SLOWLOG"])  # the RESET, no AUTH, no HELLO
                conn.call("SET", "a", "x" * 200)
                [set_a] = conn.call("SLOWLOG", "GET", "1")  # the newest: SET
                self.assertEqual(set_a[3], [b"SET", b"a", b"x" * 128 + b"... (72 more bytes)"])
                conn.call("GET", "a")
                conn.call("CLIENT", "SETNAME", "tester")
                conn.call("MSET", *["{t}%d" % i for i in range(40)])
                self.assertEqual(conn.call("SLOWLOG", "LEN"), 5)  # bounded
                entries = conn.call("SLOWLOG", "GET", "3")
                self.assertEqual(len(entries), 3)
                ids = [e[0] for e in entries]
                self.assertEqual(ids, sorted(ids, reverse=True))
                newest = entries[0]
                self.assertEqual(newest[3], [b"SLOWLOG", b"LEN"])
                mset = entries[1]
                self.assertEqual(len(mset[3]), 32)
                self.assertEqual(mset[3][31], b"... (10 more arguments)")
                self.assertEqual(mset[5], b"tester")
                self.assertRegex(mset[4].decode(), r"^127\.0\.0\.1:\d+$")
                self.assertGreaterEqual(mset[2], 0)
                all_entries = conn.call("SLOWLOG", "GET", "-1")
                self.assertEqual(len(all_entries), 5)
                args = [e[3] for e in all_entries]
                self.assertFalse(any(a[0].upper() in (b"AUTH", b"HELLO") for a in args))
                self.assertEqual(conn.call("SLOWLOG", "RESET"), "OK")
                self.assertEqual(conn.call("SLOWLOG", "LEN"), 1)  # the RESET itself
                with self.assertRaises(Exception) as e:
                    conn.call("SLOWLOG", "NOPE")
                self.assertIn("Try SLOWLOG HELP", str(e.exception))

    def test_info_sections(self):
        with Cluster(1, groups=4, extra=["--maxmemory", "1gb"]) as c:
            c.start()
            n = c.node(1)
            n.call("SET", "k", "v")
            mem = n.info("memory")
            self.assertEqual(mem["maxmemory"], str(1 << 30))
            self.assertEqual(mem["maxmemory_human"], "1.00G")
            limits = n.info("limits")
            for key in ("maxclients", "maxmemory", "client_query_buffer_limit",
                        "client_output_buffer_limit", "proto_max_bulk_len", "pipeline_max",
                        "peer_output_limit", "worker_inflight_limit", "request_timeout_ms"):
                self.assertIn(key, limits)
            with n.client() as conn:
                conn.pipeline([("SET", "k%d" % i, "v") for i in range(3000)])
            stats = n.info("stats")
            for _ in deadline_loop(5):
                stats = n.info("stats")
                if int(stats["total_commands_processed"]) >= 3000:
                    break
            self.assertGreaterEqual(int(stats["total_commands_processed"]), 3000)
            self.assertGreater(float(stats["instantaneous_ops_per_sec"]), 0)
            batching = n.info("batching")
            self.assertGreater(float(batching["instantaneous_wal_flushes_per_sec"]), 0)
            # One node: no peers, so no peer sends (client replies are not peer sends).
            self.assertEqual(batching["peer_sends"], "0")
            self.assertEqual(batching["peer_frames_sent"], "0")
            # Interval figures: totals that a reader subtracts. INFO reads the counters and
            # then the histograms while the worker may publish: read until one INFO agrees.
            for _ in deadline_loop(10):
                batching = n.info("batching")
                flush = dict(kv.split("=") for kv in batching["wal_flush_usec"].split(","))
                sizes = dict(kv.split("=") for kv in batching["wal_flush_records"].split(","))
                if (flush["count"] == sizes["count"] == batching["wal_flushes"] and
                        sizes["sum"] == batching["wal_records"]):
                    break
                time.sleep(0.2)
            flush = dict(kv.split("=") for kv in batching["wal_flush_usec"].split(","))
            self.assertEqual(flush["count"], batching["wal_flushes"])
            self.assertGreater(int(flush["sum"]), 0)
            queue = dict(kv.split("=") for kv in batching["wal_queue_usec"].split(","))
            self.assertGreater(int(queue["count"]), 0)
            # Each worker's flush quantiles: a flush takes some microseconds, p99 >= p50.
            wq = dict(kv.split("=") for kv in batching["worker0_wal_flush_us"].split(","))
            self.assertGreater(int(wq["p50"]), 0)
            self.assertGreaterEqual(int(wq["p99"]), int(wq["p50"]))
            sizes = dict(kv.split("=") for kv in batching["wal_flush_records"].split(","))
            self.assertEqual(sizes["count"], batching["wal_flushes"])
            self.assertEqual(sizes["sum"], batching["wal_records"])
            bounds = [k for k in sizes if k.startswith("le_")]
            self.assertEqual(bounds[:4], ["le_1", "le_2", "le_3", "le_4"])
            cum = [int(sizes[k]) for k in bounds]
            self.assertEqual(cum, sorted(cum))
            self.assertEqual(cum[-1], int(sizes["count"]))  # 3000 SETs: no flush above 4096
            self.assertGreater(int(sizes["count"]), cum[0], "some flush held 2 records or more")
            frames = dict(kv.split("=") for kv in batching["peer_send_frames"].split(","))
            self.assertEqual(frames["count"], "0")
            self.assertRegex(batching["worker0_wal_flush_records"], r"^p50=\d+,p99=\d+,max=\d+$")
            self.assertGreater(float(batching["instantaneous_wal_bytes_per_sec"]), 0)
            lat = n.info("latencystats")
            self.assertRegex(lat["worker0_write_usec"], r"^count=\d+,p50=[0-9.]+,p99=")


if __name__ == "__main__":
    unittest.main()
