#!/usr/bin/env bash
# The kernel seam (docs/node.md "The kernel seam"): the node's loop code reaches the kernel
# only through io/kernel.c, so that a simulator can replace that one file. This check lists
# every call, in io/ and storage/wal*, of a system call, a clock, a socket or file function
# or a liburing function that enters the kernel or reads the ring, outside io/kernel.c (the
# node's seam) and storage/wal_kernel.c (the WAL's seam for owners without one: tests, tools,
# benchmarks). A call is allowed only inside a function named in the allowlist below, each
# with the reason it is not loop code. liburing's helpers that only fill memory the caller
# owns or shares (io_uring_prep_*, io_uring_sqe_set_*, io_uring_cqe_get_*,
# io_uring_buf_ring_*) are not contacts and are allowed everywhere.
#
# Usage: tools/check-seam.sh [file...]   (default: io/ with service/ and wire/, storage/wal*)
#        tools/check-seam.sh --self-test  (the check finds direct calls and only those)
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = --self-test ]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    cat >"$tmp/loop.c" <<'C'
/* close(fd) in a comment is not a call, */
static void loop(struct x *x, int fd)
{
    const char *s = "nor write(fd) in a string"; // nor read(fd) here
    io_uring_prep_close(sqe, fd);
    io_uring_sqe_set_data64(sqe, 0);
    x->read(x, wal_close(fd));
    close(fd);
    io_uring_submit(ring);
}
C
    out=$("$0" "$tmp/loop.c" 2>&1)
    if [ "$(grep -c 'outside the seam' <<<"$out")" -eq 2 ] && grep -q ' close() in loop' <<<"$out" &&
        grep -q ' io_uring_submit() in loop' <<<"$out"; then
        echo "seam: self-test ok"
        exit 0
    fi
    echo "seam: self-test failed; the check said:" >&2
    echo "$out" >&2
    exit 1
fi

# file:function, then the reason. Start-up runs before the loop, shutdown after it, the main
# thread never runs a loop; test builds' hooks are compiled out of ringraftd.
allow=$(
    sed -e 's/[[:space:]]*#.*//' -e '/^$/d' <<'ALLOW'
io/main.c:*                             # the process's main thread: options, log file, start
io/config.c:config_load_file            # start-up: the configuration file
io/config.c:config_write                # --dump-config (main thread, before start-up)
io/config.c:write_comment               # --sample-config
io/config.c:config_write_sample         # --sample-config
io/config.c:config_write_help           # --help
io/node.c:check_identity                # start-up: the data directory's identity
io/node.c:mkdir_p                       # start-up
io/node.c:next_boot                     # start-up
io/node.c:node_run                      # the main thread: start-up, its signal wait, shutdown
io/nodeset.c:read_set                   # start-up: DIR/NODES
io/nodeset.c:read_bootstrap             # start-up: DIR/BOOTSTRAP
io/notify.c:notify_send                 # the main thread: READY=1 and STOPPING=1
io/peer.c:node_listen                   # start-up: the listening sockets
io/worker.c:ring_setup                  # start-up: the ring and its feature probe
io/conn.c:conn_setup_buffers            # start-up: registers the provided-buffer ring
io/snapshot.c:snapshot_worker_open      # start-up: the snapshot directory
io/snapshot.c:snapshot_startup_load     # start-up: stale snapshot files
storage/wal.c:wal_open                  # start-up (blocking by contract)
storage/wal.c:wal_close                 # shutdown, after the loop
storage/wal.c:close_if_open             # shutdown: wal_close's
storage/wal_recover.c:*                 # start-up: recovery
storage/wal_segment.c:wal_lock_dir      # start-up
storage/wal_segment.c:open_segment_file # start-up: recovery's first segment
storage/wal_segment.c:write_full        # start-up: recovery's first segment
storage/wal_segment.c:prepare_sync      # start-up: recovery's first segment
storage/wal_segment.c:wal_segment_create_sync # start-up: recovery's first segment
storage/wal_segment.c:open_direct_sync  # start-up: O_DIRECT descriptors (wal_open)
storage/wal_segment.c:wal_direct_probe  # start-up: does the file system take O_DIRECT
storage/wal_segment.c:wal_direct_start  # start-up: the active segment's last block
storage/wal_read.c:wal_pread_full       # start-up and tools (wal_read_blocking)
storage/wal_testing.c:*                 # test builds only (RR_STORAGE_TESTING)
ALLOW
)

calls='socket|socketpair|setsockopt|getsockopt|bind|listen|connect|accept4?|shutdown|send|sendto|sendmsg|recv|recvfrom|recvmsg|getaddrinfo|getnameinfo|close|read|write|pread|pwrite|readv|writev|preadv2?|pwritev2?|open|openat|creat|unlink|unlinkat|rename|renameat2?|mkdir|mkdirat|rmdir|fsync|fdatasync|sync_file_range|fallocate|ftruncate|truncate|fstat|stat|lstat|fstatat|statx|dup2?|dup3|pipe2?|eventfd|eventfd_read|eventfd_write|fcntl|ioctl|flock|opendir|readdir|closedir|fopen|fdopen|fclose|fread|fwrite|clock_gettime|gettimeofday|time|getrandom|rand|random|getpid|gettid|getrusage|kill|raise|nanosleep|usleep|sleep|poll|ppoll|select|epoll_[a-z_]+|syscall|getpeername|getsockname|access|faccessat|fdopendir|fscanf|fgets|printf|fprintf|vfprintf|fputs|fputc|puts|perror'
liburing='io_uring_[a-z0-9_]+'
liburing_memory='io_uring_(prep_[a-z0-9_]+|sqe_set_[a-z0-9_]+|cqe_get_[a-z0-9_]+|buf_ring_[a-z0-9_]+)'

if [ $# -gt 0 ]; then
    files=("$@")
else
    files=(io/*.c io/*.h io/service/*.[ch] io/wire/*.[ch] storage/wal*.c storage/wal*.h)
fi

found=$(
    for f in "${files[@]}"; do
        case "$f" in
        io/kernel.c | io/kernel.h | storage/wal_kernel.c) continue ;;
        esac
        awk -v file="$f" -v calls="$calls" -v lu="$liburing" -v lum="$liburing_memory" '
            BEGIN { fn = "(file scope)"; cand = ""; incomment = 0 }
            {
                line = $0
                # Comments and strings are not calls.
                if (incomment) {
                    if (sub(/.*\*\//, "", line)) incomment = 0; else next
                }
                gsub(/"([^"\\]|\\.)*"/, "\"\"", line)
                gsub(/\/\*([^*]|\*+[^*\/])*\*+\//, "", line)
                if (sub(/\/\*.*/, "", line)) incomment = 1
                sub(/\/\/.*/, "", line)
                # Function tracking (clang-format: name at column 0, braces at column 0).
                if (line ~ /^[A-Za-z_]/ && line ~ /\(/ && line !~ /^#/) {
                    c = line; sub(/\(.*/, "", c); sub(/.*[^A-Za-z0-9_]/, "", c); cand = c
                }
                if (line ~ /^\{/) fn = cand
                if (line ~ /^\}/) { fn = "(file scope)"; next }
                rest = line
                while (match(rest, "(^|[^A-Za-z0-9_.>])(" calls "|" lu ")[ \t]*\\(")) {
                    name = substr(rest, RSTART, RLENGTH)
                    rest = substr(rest, RSTART + RLENGTH)
                    sub(/^[^A-Za-z_]/, "", name); sub(/[ \t]*\($/, "", name)
                    if (name ~ "^(" lum ")$") continue
                    printf "%s:%d:%s:%s\n", file, NR, fn, name
                }
            }' "$f"
    done
)

[ -n "${SEAM_DUMP:-}" ] && echo "$found"
bad=0
while IFS= read -r hit; do
    [ -n "$hit" ] || continue
    IFS=: read -r file line fn name <<<"$hit"
    if grep -qxF "$file:$fn" <<<"$allow" || grep -qxF "$file:*" <<<"$allow"; then
        continue
    fi
    echo "$file:$line: $name() in $fn: a kernel contact outside the seam (io/kernel.h)" >&2
    bad=1
done <<<"$found"
# An entry that allows nothing (renamed, moved, or no longer calling the kernel) goes.
if [ $# -eq 0 ]; then
    while IFS= read -r entry; do
        file=${entry%%:*} fn=${entry#*:}
        if [ "$fn" = "*" ]; then
            grep -q "^$file:" <<<"$found" && continue
        else
            grep -q "^$file:[0-9]*:$fn:" <<<"$found" && continue
        fi
        echo "tools/check-seam.sh: allowlist entry $entry allows nothing: remove it" >&2
        bad=1
    done <<<"$allow"
fi
[ $bad -eq 0 ] && echo "seam: ok"
exit $bad
