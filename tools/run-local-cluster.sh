#!/usr/bin/env bash
# run-local-cluster.sh [DIR]: `make run`. Starts a local 3-node cluster of the release
# build (tools/ringraft-cluster, cluster directory DIR, default build/run-cluster), says how
# to connect, follows the nodes' logs in the foreground and stops the cluster cleanly on
# Ctrl-C (SIGINT) or SIGTERM. The data stays in DIR: the next `make run` continues it
# (remove DIR to start afresh).
set -euo pipefail
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(cd "$script_dir/.." && pwd)
dir=${1:-$repo_dir/build/run-cluster}
nodes=${RUN_NODES:-3}
cluster=$script_dir/ringraft-cluster

tail_pid=""
stopping=0
cleanup() {
    [ "$stopping" -eq 0 ] || return 0
    stopping=1
    trap - INT TERM
    echo
    echo "stopping the cluster in $dir"
    if [ -n "$tail_pid" ]; then
        kill "$tail_pid" 2>/dev/null || true
        wait "$tail_pid" 2>/dev/null || true
    fi
    "$cluster" stop --dir "$dir" || true
}
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM
trap 'cleanup' EXIT

"$cluster" start "$nodes" --dir "$dir" --bin "$repo_dir/build/release/ringraftd"
# shellcheck disable=SC1091
. "$dir/cluster.env"
cat <<EOM

ringraft: $nodes nodes running, data and logs in $dir/nodeI/
  connect:        redis-cli -p $((BASE_PORT + 1))       (any node accepts any command)
  cluster-aware:  redis-cli -c -p $((BASE_PORT + 1))
  state:          tools/ringraft-cluster status --dir $dir
  crash a node:   tools/ringraft-cluster kill 2 --dir $dir    (then: restart 2 --dir $dir)
Following the logs; Ctrl-C stops the cluster.

EOM
logs=()
for ((i = 1; i <= nodes; i++)); do
    logs+=("$dir/node$i/ringraftd.log")
done
tail -n 5 -F "${logs[@]}" &
tail_pid=$!
wait "$tail_pid" || true
