#!/usr/bin/env bash
# Installs the Debian packages the build needs when any is missing (apt-get as root, sudo
# otherwise). Quiet when everything is present.
set -euo pipefail
need=()
have_header() { [ -e "/usr/include/$1" ]; }
have_header liburing.h || need+=(liburing-dev)
have_header xxhash.h || need+=(libxxhash-dev)
have_header cmocka.h || need+=(libcmocka-dev)
[ ${#need[@]} -eq 0 ] && exit 0
echo "installing missing packages: ${need[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "need root or sudo to install ${need[*]}" >&2; exit 1; }
    sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${need[@]}"
