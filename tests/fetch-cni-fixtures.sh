#!/bin/sh
# Fetches Debian's containernetworking-plugins package for each architecture
# named and unpacks its plugins into build/fixtures/cni/<arch>/: real CNI
# plugin binaries for the tests to build tarballs from. Needs root (apt).
set -eu
dest=${FIXTURES_DIR:-build/fixtures}/cni
native=$(dpkg --print-architecture)

missing() {
    for arch in "$@"; do
        [ -e "$dest/$arch/bridge" ] || echo "$arch"
    done
}

todo=$(missing "$@")
[ -n "$todo" ] || exit 0
for arch in $todo; do
    if [ "$arch" != "$native" ] && ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
        dpkg --add-architecture "$arch"
    fi
done

fetch() {
    arch=$1
    work=$(mktemp -d)
    chmod 755 "$work"
    if (cd "$work" && apt-get download -qq -o APT::Sandbox::User=root "containernetworking-plugins:$arch"); then
        dpkg-deb -x "$work"/containernetworking-plugins_*_"$arch".deb "$work/x"
        mkdir -p "$dest/$arch"
        cp "$work"/x/usr/lib/cni/* "$dest/$arch/"
        echo "fixtures: $(ls "$dest/$arch" | wc -l) CNI plugins for $arch in $dest/$arch"
    fi
    rm -rf "$work"
}

# Mirrors are sometimes mid-sync ("File has unexpected size"): an index that
# failed for one architecture need not stop the others, so each attempt
# updates, fetches what it can, and the next attempt retries the rest.
for attempt in 1 2 3 4; do
    apt-get update -qq || echo "apt-get update reported errors (attempt $attempt); fetching what it can"
    for arch in $todo; do
        fetch "$arch"
    done
    todo=$(missing "$@")
    [ -n "$todo" ] || exit 0
    sleep $((attempt * 10))
done
echo "could not fetch containernetworking-plugins for:" $todo >&2
exit 1
