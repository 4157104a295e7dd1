#!/bin/sh
# Fetches Debian's containernetworking-plugins package for each architecture
# named and unpacks its plugins into build/fixtures/cni/<arch>/: real CNI
# plugin binaries for the tests to build tarballs from.
#
# The machine's package configuration is left as it is: each architecture's
# index is fetched into a private apt state under a scratch directory (the
# machine's own sources, that architecture only), and the package is only
# downloaded and unpacked, never installed. Needs root (apt's sandbox).
set -eu
dest=${FIXTURES_DIR:-build/fixtures}/cni

missing() {
    for arch in "$@"; do
        [ -e "$dest/$arch/bridge" ] || echo "$arch"
    done
}

todo=$(missing "$@")
[ -n "$todo" ] || exit 0

fetch() {
    arch=$1
    work=$(mktemp -d)
    chmod 755 "$work"
    mkdir -p "$work/state/lists/partial" "$work/cache/archives/partial"
    set -- -qq -o "Dir::State=$work/state" -o "Dir::Cache=$work/cache" \
        -o "APT::Architecture=$arch" -o "APT::Architectures=$arch" \
        -o APT::Sandbox::User=root -o Debug::NoLocking=1
    # A mirror mid-sync fails some index ("File has unexpected size"): what
    # did arrive may still hold the package, so the download decides.
    apt-get "$@" update || echo "fixtures: apt-get update for $arch reported errors; trying the download"
    if (cd "$work" && apt-get "$@" download "containernetworking-plugins"); then
        dpkg-deb -x "$work"/containernetworking-plugins_*_"$arch".deb "$work/x"
        mkdir -p "$dest/$arch"
        cp "$work"/x/usr/lib/cni/* "$dest/$arch/"
        echo "fixtures: $(ls "$dest/$arch" | wc -l) CNI plugins for $arch in $dest/$arch"
    fi
    rm -rf "$work"
}

for attempt in 1 2 3 4; do
    for arch in $todo; do
        fetch "$arch"
    done
    todo=$(missing "$@")
    [ -n "$todo" ] || exit 0
    sleep $((attempt * 10))
done
echo "could not fetch containernetworking-plugins for:" $todo >&2
exit 1
