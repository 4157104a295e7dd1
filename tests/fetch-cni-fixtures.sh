#!/bin/sh
# Fetches Debian's containernetworking-plugins package for each architecture
# named and unpacks its plugins into build/fixtures/cni/<arch>/: real CNI
# plugin binaries for the tests to build tarballs from. Needs root (apt).
set -eu
dest=${FIXTURES_DIR:-build/fixtures}/cni
native=$(dpkg --print-architecture)
update=
for arch in "$@"; do
    [ -e "$dest/$arch/bridge" ] && continue
    update=1
    if [ "$arch" != "$native" ] && ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
        dpkg --add-architecture "$arch"
    fi
done
[ -n "$update" ] || exit 0
apt-get update -qq
for arch in "$@"; do
    [ -e "$dest/$arch/bridge" ] && continue
    work=$(mktemp -d)
    chmod 755 "$work"
    (cd "$work" && apt-get download -qq -o APT::Sandbox::User=root "containernetworking-plugins:$arch")
    dpkg-deb -x "$work"/containernetworking-plugins_*_"$arch".deb "$work/x"
    mkdir -p "$dest/$arch"
    cp "$work"/x/usr/lib/cni/* "$dest/$arch/"
    rm -rf "$work"
    echo "fixtures: $(ls "$dest/$arch" | wc -l) CNI plugins for $arch in $dest/$arch"
done
