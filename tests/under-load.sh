#!/usr/bin/env bash
# Runs a command (a suite) beside busy loops that keep every core loaded,
# for a number of rounds, and says how each round ended: the check that
# the suite gives the same answer on a loaded machine (issue 32;
# docs/engineers/testing.md). `make test-loaded` runs it on a suite.
# `tests/under-load.sh <hogs> <rounds> -- <command>...`
set -u
hogs=$1 rounds=$2
shift 2
[ "${1:-}" = -- ] && shift
pids=()
trap 'kill "${pids[@]}" 2>/dev/null' EXIT
for _ in $(seq "$hogs"); do
    sh -c 'while :; do :; done' &
    pids+=($!)
done
failed=0
for round in $(seq "$rounds"); do
    start=$(date +%s)
    if "$@"; then result=passed; else result=FAILED; failed=$((failed + 1)); fi
    echo "== round $round of $rounds beside $hogs busy loops: $result in $(($(date +%s) - start)) s"
done
[ "$failed" = 0 ]
