#!/usr/bin/env bash
# Runs one step of a `make test` stage and adds its wall-clock and CPU
# time (user + system, its own and its children's) to the stage's row in
# $STAGES_FILE (default build/stages.tsv): `tests/stages/time.sh <stage>
# <command>...`. Exits as the command exits. A stage's CPU time over its
# wall time is how many cores it kept busy: below 2 on this 2-core
# machine, a core sat idle.
set -u
stage=$1
shift
file=${STAGES_FILE:-build/stages.tsv}
mkdir -p "$(dirname "$file")"
start=$(date +%s.%N)
"$@"
rc=$?
end=$(date +%s.%N)
# `times`: the shell's own user and system time, then its children's
# (run in this shell, not a pipeline's subshell, which has no children).
out=$(mktemp)
times >"$out"
read -r cu cs < <(tail -n 1 "$out")
rm -f "$out"
seconds() { awk -v t="$1" 'BEGIN { split(t, p, "m"); sub("s", "", p[2]); printf "%.1f", p[1] * 60 + p[2] }'; }
cpu=$(awk -v u="$(seconds "$cu")" -v s="$(seconds "$cs")" 'BEGIN { printf "%.1f", u + s }')
wall=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
printf '%s\t%s\t%s\t%s\n' "$stage" "$wall" "$cpu" "$rc" >>"$file"
exit "$rc"
