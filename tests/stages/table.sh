#!/usr/bin/env bash
# Prints the stages `make test` ran, in order, with their wall-clock and
# CPU seconds, the cores they kept busy (CPU over wall: 2 is both cores of
# the 2-core machine CI runs on), and the budget that
# docs/engineers/testing.md states for each; a stage past its budget is
# marked OVER, so the feature that grew it is seen at once. Stages can
# overlap (the LXD suite runs beside the simulated-unit suites), so the
# run's own wall time, when given, is shown too, and the `total` budget
# is held against it. `tests/stages/table.sh [build/stages.tsv] [wall s]`.
set -u
file=${1:-${STAGES_FILE:-build/stages.tsv}}
run_wall=${2:-}
doc=$(dirname "$0")/../../docs/engineers/testing.md
[ -s "$file" ] || { echo "no stage ran"; exit 0; }
# Budget rows of the doc's table: | `stage` | what it runs | N s |
budgets=$(sed -n 's/^| `\([a-z0-9-]*\)` |.*| \([0-9][0-9,]*\) s |$/\1\t\2/p' "$doc" | tr -d ,)
awk -F'\t' -v budgets="$budgets" -v run_wall="$run_wall" '
BEGIN {
    n = split(budgets, rows, "\n")
    for (i = 1; i <= n; i++) { split(rows[i], kv, "\t"); budget[kv[1]] = kv[2] }
}
{
    if (!($1 in wall)) order[++count] = $1
    wall[$1] += $2; cpu[$1] += $3
    if ($4 != 0) failed[$1] = 1
    total_wall += $2; total_cpu += $3
}
END {
    printf "\n%-22s %8s %8s %6s %8s\n", "stage", "wall s", "cpu s", "cores", "budget"
    for (i = 1; i <= count; i++) {
        s = order[i]
        b = (s in budget) ? budget[s] : "-"
        mark = ""
        if (s in failed) mark = "  FAILED"
        else if (b != "-" && wall[s] > b + 0) mark = "  OVER"
        printf "%-22s %8.1f %8.1f %6.2f %8s%s\n", s, wall[s], cpu[s], (wall[s] > 0 ? cpu[s] / wall[s] : 0), b, mark
    }
    b = ("total" in budget) ? budget["total"] : "-"
    if (run_wall == "") {
        mark = (b != "-" && total_wall > b + 0) ? "  OVER" : ""
        printf "%-22s %8.1f %8.1f %6.2f %8s%s\n", "total (stages)", total_wall, total_cpu, (total_wall > 0 ? total_cpu / total_wall : 0), b, mark
    } else {
        printf "%-22s %8.1f %8.1f %6.2f %8s\n", "sum of the stages", total_wall, total_cpu, (total_wall > 0 ? total_cpu / total_wall : 0), "-"
        mark = (b != "-" && run_wall > b + 0) ? "  OVER" : ""
        printf "%-22s %8.1f %8.1f %6.2f %8s%s\n", "total (wall)", run_wall, total_cpu, (run_wall > 0 ? total_cpu / run_wall : 0), b, mark
    }
}' "$file"
