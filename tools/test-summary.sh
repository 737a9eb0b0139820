#!/usr/bin/env bash
# test-summary.sh TALLY: prints the closing line of `make test` from the per-stage counts.
set -euo pipefail
awk '{ p += $1; f += $2 } END { printf "%d passed, %d failed\n", p, f; exit (f > 0) }' "$1"
