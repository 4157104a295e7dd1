#!/bin/sh
# Checks that a hook binary is statically linked and built for the Debian
# architecture named, and prints its size: what `make charm` ships must
# run on a bare machine of that architecture.
set -eu
binary=$1 arch=$2
case $arch in
    amd64) machine="x86-64" ;;
    s390x) machine="IBM S/390" ;;
    arm64) machine="ARM aarch64" ;;
    ppc64el) machine="64-bit PowerPC" ;;
    *) echo "unknown architecture $arch" >&2; exit 2 ;;
esac
info=$(file -b "$binary")
case $info in
    *"$machine"*static*linked*) ;;
    *) echo "$binary is not a static $arch binary: $info" >&2; exit 1 ;;
esac
case $info in
    *LSB*) [ "$arch" != s390x ] || { echo "$binary: s390x is big-endian, got: $info" >&2; exit 1; } ;;
esac
echo "$arch: $(stat -c %s "$binary") bytes, $(echo "$info" | sed 's/, BuildID.*//')"
