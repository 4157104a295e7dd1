#!/usr/bin/env bash
# Runs a command (a suite) beside what other jobs on a shared machine do,
# for a number of rounds, and says how each round ended: the check that
# the suite gives the same answer on a busy machine (issue 32;
# docs/engineers/testing.md). `make test-loaded` runs it on a suite.
# Beside the command:
# - a busy loop per <hogs>, keeping every core loaded;
# - a writer that fills and fsyncs a file, again and again (a build);
# - as root, an interface that comes up and goes away every half second
#   with an address of its own (a container's or a compose network's),
#   the host change that once rewrote a converged unit's cache.
# `tests/under-load.sh <hogs> <rounds> -- <command>...`
set -u
hogs=$1 rounds=$2
shift 2
[ "${1:-}" = -- ] && shift
pids=()
scratch=$(mktemp -d)
churn=kwload0
cleanup() {
    kill "${pids[@]}" 2>/dev/null
    wait 2>/dev/null
    ip link del "$churn" 2>/dev/null
    rm -rf "$scratch"
}
trap cleanup EXIT
for _ in $(seq "$hogs"); do
    sh -c 'while :; do :; done' &
    pids+=($!)
done
sh -c 'while :; do dd if=/dev/zero of="$1/fill" bs=1M count=32 conv=fsync 2>/dev/null; done' sh "$scratch" &
pids+=($!)
if ip link add "$churn" type veth peer name "${churn}p" 2>/dev/null; then
    ip link del "$churn"
    sh -c 'while :; do
        ip link add "$1" type veth peer name "$1p" && ip addr add 198.51.100.77/24 dev "$1" \
            && ip link set "$1" up && ip link set "$1p" up
        sleep 0.5
        ip link del "$1"
        sleep 0.5
    done' sh "$churn" 2>/dev/null &
    pids+=($!)
    churning="an interface coming and going"
else
    churning="no interface churn (not root)"
fi
failed=0
for round in $(seq "$rounds"); do
    start=$(date +%s)
    if "$@"; then result=passed; else result=FAILED; failed=$((failed + 1)); fi
    echo "== round $round of $rounds beside $hogs busy loops, a writer and $churning: $result in $(($(date +%s) - start)) s"
done
[ "$failed" = 0 ]
