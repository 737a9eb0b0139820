#!/usr/bin/env bash
# Installs the Debian packages the build and the tests need when any is missing (apt-get
# as root, sudo otherwise). Quiet when everything is present.
set -euo pipefail
need=()
have_header() { [ -e "/usr/include/$1" ]; }
have_cmd() { command -v "$1" >/dev/null 2>&1; }
# The build itself (Makefile): cc (Debian's gcc package provides it), make, ar (binutils)
# and the C library's headers. No pkg-config: the Makefile names its libraries directly.
have_cmd cc || need+=(gcc)
have_cmd make || need+=(make)
have_cmd ar || need+=(binutils)
have_header stdio.h || need+=(libc6-dev)
have_header liburing.h || need+=(liburing-dev)
have_header xxhash.h || need+=(libxxhash-dev)
have_header cmocka.h || need+=(libcmocka-dev)
# The install tests (tests/install): groff renders the man pages, mandoc lints them, man -l
# (man-db) shows them.
have_cmd groff || need+=(groff-base)
have_cmd mandoc || need+=(mandoc)
have_cmd man || need+=(man-db)
# The node tests and `make run` (tests/node, tools/ringraft-cluster): redis-cli and
# redis-benchmark talk to the nodes, the tests are Python 3 (standard library only).
{ have_cmd redis-cli && have_cmd redis-benchmark; } || need+=(redis-tools)
# bench/compare.py and bench/node-targets.py measure against a real redis-server.
have_cmd redis-server || need+=(redis-server)
have_cmd python3 || need+=(python3)
# bench/batching.py (make bench) draws its plots with gnuplot (SVG and PNG, no X11).
have_cmd gnuplot || need+=(gnuplot-nox)
# The fuzz targets (tests/fuzz, make fuzz and the test-fuzz stage): clang with libFuzzer and
# the sanitizer runtimes. The compiler alone is not enough (the runtimes are a separate
# package), so the check builds a trivial fuzzer.
have_fuzzer() {
    local dir rc
    dir=$(mktemp -d) || return 1
    printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n);\n%s\n' \
        'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }' \
        >"$dir/f.c"
    clang -fsanitize=fuzzer,address,undefined -o "$dir/f" "$dir/f.c" >/dev/null 2>&1
    rc=$?
    rm -rf "$dir"
    return $rc
}
if ! have_cmd clang; then
    need+=(clang libclang-rt-14-dev)
elif ! have_fuzzer; then
    need+=(libclang-rt-14-dev)
fi
[ ${#need[@]} -eq 0 ] && exit 0
echo "installing missing packages: ${need[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "need root or sudo to install ${need[*]}" >&2; exit 1; }
    sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
# Packages with a service (redis-server) must not start it: the tools start their own
# servers on their own ports. policy-rc.d answering 101 tells invoke-rc.d not to.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod +x "$policy"
    own_policy=1
fi
rc=0
$sudo apt-get update -qq && $sudo apt-get install -y -qq "${need[@]}" || rc=$?
[ $own_policy -eq 1 ] && $sudo rm -f "$policy"
exit $rc
