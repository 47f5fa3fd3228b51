#!/usr/bin/env bash
# Runs bench/run.sh N times (default 3) and prints each bar's median over
# the runs (bench/median.py): one run on a shared VM is not a verdict.
#   bench/median.sh [N]        (same environment variables as bench/run.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-3}
DIRS=()
for i in $(seq 1 "$N"); do
    OUT=$PWD/bench/results/$(date -u +%Y%m%dT%H%M%SZ)-m$i
    BENCH_OUT=$OUT bash bench/run.sh >"$OUT.log" 2>&1 || { echo "run $i failed: $OUT.log" >&2; exit 1; }
    [ "$i" = 1 ] && export BENCH_BUILD=0
    DIRS+=("$OUT")
    echo "run $i: $OUT" >&2
done
python3 bench/median.py "${DIRS[@]}"
