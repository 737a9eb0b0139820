#!/usr/bin/env bash
# The dependency rule: core/ is pure. Nothing in core/ includes io/, storage/, liburing,
# sockets, threads, clocks or file I/O headers, or calls I/O functions.
set -uo pipefail
cd "$(dirname "$0")/.."
bad=0
forbidden_includes='#[[:space:]]*include[[:space:]]*[<"](liburing|sys/socket|netinet/|arpa/|pthread|threads|time|sys/time|unistd|fcntl|sys/stat|sys/mman|sys/uio|stdio|signal|dirent|poll|sys/epoll|sys/eventfd|linux/)[^">]*[">]'
if grep -rnE "$forbidden_includes" core; then
    echo "layering: core/ includes a header that does I/O, threads or clocks" >&2
    bad=1
fi
if grep -rnE '#[[:space:]]*include[[:space:]]*"(io|storage|tests|tools|bench)/' core; then
    echo "layering: core/ includes io/, storage/ or another outer layer" >&2
    bad=1
fi
# Direct calls that do I/O or read clocks or global randomness, outside comments and strings.
# Calls through a struct member (ops->read(...)) are not the libc functions.
if grep -rnE '(^|[^>.[:alnum:]_])(printf|fprintf|puts|fopen|open|read|write|close|socket|clock_gettime|gettimeofday|time|rand|srand|random|getenv|exit|abort|fsync|fdatasync)[[:space:]]*\(' core \
    | grep -vE '^\S+:[0-9]+:[[:space:]]*(\*|/\*|//)'; then
    echo "layering: core/ calls an I/O, clock, randomness or process function" >&2
    bad=1
fi
if grep -rnE '#[[:space:]]*include[[:space:]]*"(io)/' storage 2>/dev/null; then
    echo "layering: storage/ includes io/" >&2
    bad=1
fi
if grep -rnE '#[[:space:]]*include[[:space:]]*"core/' storage 2>/dev/null | grep -vE '"core/(base/|limits\.h)'; then
    echo "layering: storage/ may use core/base/ and core/limits.h only" >&2
    bad=1
fi
[ $bad -eq 0 ] && echo "layering: ok"
exit $bad
