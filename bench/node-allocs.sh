#!/usr/bin/env bash
# node-allocs.sh: heap allocations per acknowledged write on a local 3-node cluster.
# Every node runs with bench/alloc_count.so preloaded; after a warm-up, each node's count is
# read before and after N SETs through node 1 (redis-benchmark -c 50 -P 16), and the sum of
# the three deltas is divided by N. Usage: bench/node-allocs.sh [N] (default 200000).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
BIN=build/release/ringraftd
LIB=build/release/bench/alloc_count.so
DIR=$(mktemp -d /tmp/ringraft-allocs.XXXXXX)
BASE=$((20000 + RANDOM % 20000))
NODES="1=127.0.0.1:$((BASE+1))@$((BASE+101)),2=127.0.0.1:$((BASE+2))@$((BASE+102)),3=127.0.0.1:$((BASE+3))@$((BASE+103))"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT
for i in 1 2 3; do
    ALLOC_COUNT_SITES=1 ALLOC_COUNT_FILE=$DIR/allocs$i LD_PRELOAD=$PWD/$LIB "$BIN" --node-id $i --nodes "$NODES" \
        --dir "$DIR/n$i" --logfile "$DIR/n$i.log" &
    pids+=($!)
done
for _ in $(seq 100); do
    ok=$(redis-cli -p $((BASE+1)) info raft 2>/dev/null | tr -d '\r' | sed -n 's/^groups_with_leader://p' || true)
    [ "${ok:-0}" = 64 ] && break
    sleep 0.1
done
redis-benchmark -p $((BASE+1)) -t set -r 1000000 -d 16 -c 50 -P 16 -n 20000 -q >/dev/null
sleep 1
for p in "${pids[@]}"; do kill -USR2 "$p"; done
sleep 0.5
redis-benchmark -p $((BASE+1)) -t set -r 1000000 -d 16 -c 50 -P 16 -n "$N" -q >/dev/null
sleep 1
for p in "${pids[@]}"; do kill -USR2 "$p"; done
sleep 0.5
total=0
for i in 1 2 3; do
    a=$(sed -n 's/^allocs //p' "$DIR/allocs$i" | head -1)
    b=$(sed -n 's/^allocs //p' "$DIR/allocs$i" | tail -1)
    echo "node $i: $((b - a)) allocations during $N writes ($(echo "scale=2; ($b - $a) / $N" | bc) per write)"
    total=$((total + b - a))
done
echo "cluster: $(echo "scale=2; $total / $N" | bc) heap allocations per acknowledged write (3 nodes summed)"
python3 - "$DIR" "$N" <<'PY'
import collections, subprocess, sys
d, n = sys.argv[1], int(sys.argv[2])
delta = collections.Counter()
for i in (1, 2, 3):
    dumps, cur = [], None
    for line in open(f"{d}/allocs{i}"):
        f = line.split()
        if f[0] == "allocs":
            cur = {}
            dumps.append(cur)
        elif f[0] == "site" and cur is not None:
            cur[(f[1], f[2])] = int(f[3])
    if len(dumps) >= 2:
        for k, v in dumps[-1].items():
            delta[k] += v - dumps[0].get(k, 0)
names = {}
for (obj, off), _ in delta.most_common(25):
    r = subprocess.run(["addr2line", "-f", "-i", "-C", "-e", obj, off], capture_output=True, text=True)
    fns = r.stdout.split("\n")[0::2]
    names[(obj, off)] = " < ".join(x for x in fns if x)[:110] or obj
print("top allocation sites (3 nodes summed, per acknowledged write):")
for k, v in delta.most_common(25):
    if v > 0:
        print(f"  {v / n:6.2f}  {names[k]}")
PY
