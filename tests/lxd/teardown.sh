#!/bin/sh
# Removes what setup.sh created, newest first: container, profile, image,
# storage pool, and the LXD daemon if it started one (by PID).
set -u
work=$1
created="$work/created"
[ -f "$created" ] || exit 0
tac "$created" | while read -r kind what; do
    case $kind in
        container) lxc delete --force "$what" >/dev/null 2>&1 ;;
        profile) lxc profile delete "$what" >/dev/null 2>&1 ;;
        image) lxc image delete "$what" >/dev/null 2>&1 ;;
        pool)
            lxc profile device remove default root >/dev/null 2>&1
            lxc storage delete "$what" >/dev/null 2>&1 ;;
        daemon) kill "$what" 2>/dev/null; sleep 1; kill -9 "$what" 2>/dev/null ;;
    esac
done
rm -f "$created"
