#!/bin/sh
# Brings up a Debian bookworm system container with systemd and snapd, for
# the integration suite: `tests/lxd/setup.sh <work dir> <container>`.
#
# - LXD: starts the daemon itself when none answers (this machine has no
#   systemd), with a `dir` pool in <work>/pool, no networks, and a default
#   profile holding only a root disk: the container has no network at all.
# - The image: debootstrap from the machine's own Debian mirror, cached in
#   build/lxd-cache-iproute2 between local runs.
# - The container: privileged with nesting, with the host's loop devices in
#   its profile before launch (snapd mounts each snap on one), and <work>/sim
#   mounted at the same path, where the simulated unit lives.
# - Inside: udevd allowed to start on a read-only /sys, snapd's store caches
#   pre-created (else every snapd start stalls retrying the store), snapd
#   seeded, and a metadata-only `core` snap so classic snaps install offline.
# Everything it creates is listed in <work>/created for teardown.sh.
set -eu
work=$1 name=$2
# Named for the image's packages: a change to them builds a new image.
cache=$(pwd)/build/lxd-cache-iproute2
mkdir -p "$work/pool" "$work/sim" "$cache"
created="$work/created"
: > "$created"

if ! lxc info >/dev/null 2>&1; then
    setsid lxd --logfile "$work/lxd.log" </dev/null >/dev/null 2>&1 &
    echo "daemon $!" >> "$created"
    lxd waitready --timeout 60
fi

if ! lxc storage show kwtest >/dev/null 2>&1; then
    lxc storage create kwtest dir source="$work/pool" >/dev/null
    echo "pool kwtest" >> "$created"
fi
if ! lxc profile show default | grep -q 'pool: kwtest'; then
    lxc profile device remove default root >/dev/null 2>&1 || true
    lxc profile device add default root disk path=/ pool=kwtest >/dev/null
fi

# The image, built once.
if [ ! -f "$cache/rootfs.tar.gz" ]; then
    mirror=$(sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
    mirror=${mirror:-http://deb.debian.org/debian}
    # Mirrors are sometimes mid-sync: try again before giving up.
    for attempt in 1 2 3; do
        [ -x "$cache/rootfs/usr/bin/snap" ] && break
        rm -rf "$cache/rootfs"
        debootstrap --variant=minbase \
            --include=systemd,systemd-sysv,snapd,squashfs-tools,udev,dbus,dbus-user-session,libpam-systemd,procps,iproute2 \
            bookworm "$cache/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
            { echo "debootstrap failed (attempt $attempt):"; tail -3 "$work/debootstrap.log"; sleep $((attempt * 10)); }
    done
    [ -x "$cache/rootfs/usr/bin/snap" ] || { echo "cannot build the container image"; exit 1; }
    root=$cache/rootfs
    mkdir -p "$root/etc/systemd/system/systemd-udevd.service.d"
    printf '[Unit]\nConditionPathIsReadWrite=\n' > "$root/etc/systemd/system/systemd-udevd.service.d/lxd.conf"
    mkdir -p "$root/var/cache/snapd"
    touch -d '2000-01-01' "$root/var/cache/snapd/sections" "$root/var/cache/snapd/names"
    # Classic snaps need /snap; Debian keeps them in /var/lib/snapd/snap.
    ln -sfn /var/lib/snapd/snap "$root/snap"
    echo kw-lxd > "$root/etc/hostname"
    tar -C "$root" -czf "$cache/rootfs.tar.gz.tmp" .
    mv "$cache/rootfs.tar.gz.tmp" "$cache/rootfs.tar.gz"
fi
if ! lxc image info kwtest >/dev/null 2>&1; then
    meta=$(mktemp -d)
    printf 'architecture: x86_64\ncreation_date: %s\nproperties:\n  os: debian\n  release: bookworm\n  description: kubernetes-worker test image\n' "$(date +%s)" > "$meta/metadata.yaml"
    tar -C "$meta" -czf "$work/metadata.tar.gz" metadata.yaml
    rm -rf "$meta"
    lxc image import "$work/metadata.tar.gz" "$cache/rootfs.tar.gz" --alias kwtest >/dev/null
    echo "image kwtest" >> "$created"
fi

if ! lxc profile show kwtest >/dev/null 2>&1; then
    lxc profile create kwtest >/dev/null
    echo "profile kwtest" >> "$created"
    lxc profile set kwtest security.privileged=true security.nesting=true
    lxc profile device add kwtest loop-control unix-char path=/dev/loop-control >/dev/null
    for i in 0 1 2 3 4 5 6 7; do
        [ -e /dev/loop$i ] || mknod -m 660 /dev/loop$i b 7 $i
        lxc profile device add kwtest loop$i unix-block path=/dev/loop$i >/dev/null
    done
fi

lxc init kwtest "$name" --profile default --profile kwtest >/dev/null
echo "container $name" >> "$created"
lxc config device add "$name" sim disk source="$work/sim" path="$work/sim" >/dev/null
lxc start "$name"

inside() { lxc exec "$name" -- "$@"; }
for _ in $(seq 120); do
    state=$(inside systemctl is-system-running 2>/dev/null || true)
    case $state in running|degraded) break ;; esac
    sleep 1
done
echo "container $name: systemd $state"
inside systemctl start snapd.socket snapd.service
inside snap wait system seed.loaded

# A metadata-only core: classic snaps need a base installed, and the real
# one comes from the store.
core=$(mktemp -d)
mkdir -p "$core/tree/meta"
printf 'name: core\nversion: 16-test\ntype: os\narchitectures: [amd64]\n' > "$core/tree/meta/snap.yaml"
mksquashfs "$core/tree" "$core/core.snap" -quiet -all-root -noappend -no-xattrs >/dev/null
lxc file push "$core/core.snap" "$name/root/core.snap" >/dev/null
rm -rf "$core"
inside snap install --dangerous /root/core.snap
inside snap list
