#!/usr/bin/env python3
"""batching_check.py OUT: checks what `bench/batching.py --smoke --out OUT` produced (the
test-bench-batching stage of make test): the CSV files have every column and one median row
per strategy and load point, the figures are sane (requests answered without errors,
percentiles ordered, flushes and peer frames counted, the `none` disk strategy flushing
exactly one record per flush and the others at least one), the markdown table has a line
per row, and the plots are real SVG and PNG files. Appends "passed failed" to
$RR_TEST_TALLY when set; exit status 1 on any failure."""

import csv
import os
import sys
import xml.etree.ElementTree as ET

CHECKS = []


def check(name, ok, detail=""):
    CHECKS.append((name, bool(ok)))
    print("%s %s%s" % ("ok  " if ok else "FAIL", name, (": " + detail) if detail and not ok
                       else ""))


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def main():
    out = sys.argv[1]
    runs_path, res_path = os.path.join(out, "runs.csv"), os.path.join(out, "results.csv")
    check("runs.csv and results.csv exist", os.path.isfile(runs_path) and
          os.path.isfile(res_path))
    if not CHECKS[-1][1]:
        return finish()
    runs, res = rows(runs_path), rows(res_path)
    need = {"strategy", "disk", "net", "load", "rps", "p50_ms", "p99_ms", "p999_ms",
            "fsyncs_per_s", "records_per_flush", "model_batch", "batch_p50", "batch_p99",
            "bytes_per_flush", "flush_ms", "queue_ms", "frames_per_s", "frames_per_send",
            "errors"}
    check("results.csv has every column", res and need <= set(res[0]),
          "missing %s" % (need - set(res[0]) if res else need))
    pairs = {(r["strategy"], r["load"]) for r in res}
    check("one median row per strategy and load point (2 x 2)", len(res) == 4 and
          len(pairs) == 4, "%d rows" % len(res))
    check("runs.csv has a row per run", len(runs) == 4, "%d rows" % len(runs))
    for r in res:
        tag = "%s, %s" % (r["strategy"], r["load"])
        f = {k: float(r[k] or "nan") for k in need - {"strategy", "disk", "net", "load"}}
        check(tag + ": requests answered, no errors", f["rps"] > 0 and f["errors"] == 0,
              "rps %s errors %s" % (r["rps"], r["errors"]))
        check(tag + ": p50 <= p99 <= p99.9", 0 < f["p50_ms"] <= f["p99_ms"] <= f["p999_ms"])
        check(tag + ": flushes and peer frames counted",
              f["fsyncs_per_s"] > 0 and f["frames_per_s"] > 0 and f["flush_ms"] > 0 and
              f["frames_per_send"] >= 1 and f["bytes_per_flush"] > 0)
        if r["disk"] == "none":
            check(tag + ": none flushes exactly one record per flush",
                  f["records_per_flush"] == 1 and f["batch_p99"] == 1 and f["model_batch"] == 1,
                  "records/flush %s batch p99 %s" % (r["records_per_flush"], r["batch_p99"]))
        else:
            check(tag + ": at least one record per flush, p50 <= p99",
                  f["records_per_flush"] >= 1 and 1 <= f["batch_p50"] <= f["batch_p99"])
    md = os.path.join(out, "results.md")
    text = open(md).read() if os.path.isfile(md) else ""
    lines = [x for x in text.splitlines() if x.startswith("| ")]
    check("results.md: header and a table line per row",
          len(lines) == 1 + len(res) and lines[0].startswith("| disk / net | load | req/s"),
          "%d table lines" % len(lines))
    check("results.md: no problems seen", "Problems seen: none" in text)
    for name in ("throughput-p99", "latency-cdf", "batch-size"):
        svg = os.path.join(out, "plots", name + ".svg")
        png = os.path.join(out, "plots", name + ".png")
        try:
            root = ET.parse(svg).getroot()
            ok = root.tag.endswith("svg") and os.path.getsize(svg) > 2000
        except (OSError, ET.ParseError):
            ok = False
        check("plots/%s.svg is an SVG drawing" % name, ok)
        try:
            with open(png, "rb") as f:
                ok = f.read(8) == b"\x89PNG\r\n\x1a\n" and os.path.getsize(png) > 2000
        except OSError:
            ok = False
        check("plots/%s.png is a PNG image" % name, ok)
    return finish()


def finish():
    passed = sum(1 for _, ok in CHECKS if ok)
    failed = len(CHECKS) - passed
    print("batching lab checks: %d passed, %d failed" % (passed, failed))
    tally = os.environ.get("RR_TEST_TALLY")
    if tally:
        with open(tally, "a") as f:
            f.write("%d %d\n" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
