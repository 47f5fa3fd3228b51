#!/usr/bin/env bash
# Instructions per request of sluice, counted by valgrind callgrind
# (deterministic, unlike wall-clock figures on a shared machine).
#
# One sluice (bench/sluice-policies.yaml with `server.workers: 1`) runs
# under callgrind in front of one sluice-mock-upstream, on 127.0.0.1 only.
# For each key — a key without policies (`plain`), the key under every
# limit kind (`policed`) and the key under issue 4's list (`issue`: 3 rate
# limits, a token reservation, a budget) — sluice is started afresh, warmed up with
# CALLGRIND_WARMUP requests, its counters are zeroed (callgrind_control -z),
# CALLGRIND_N requests are sent with oha (-c 10), and the counters are
# dumped: instructions of every sluice thread (workers, log sink, timers)
# over those requests, divided by CALLGRIND_N. An idle stretch of the same
# length costs next to nothing (timers only; measure it with CALLGRIND_N=0).
#   bench/callgrind.sh                    # both keys, 2,000 requests each
#   CALLGRIND_KEYS=policed bench/callgrind.sh
# Outputs land in $CALLGRIND_OUT (default bench/results/callgrind-<time>/):
# callgrind.<key>.out for `callgrind_annotate --inclusive=yes`.
# Needs valgrind, oha and the release binaries (BENCH_BUILD=0 skips the build).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}
BIN=$CARGO_TARGET_DIR/release
OHA=${OHA:-$(command -v oha || echo "$HOME/.cargo/bin/oha")}
N=${CALLGRIND_N:-2000}
WARMUP=${CALLGRIND_WARMUP:-200}
KEYS=${CALLGRIND_KEYS:-plain policed issue}
PORT=${BENCH_PORT_BASE:-19400}
OUT=${CALLGRIND_OUT:-bench/results/callgrind-$(date -u +%Y%m%dT%H%M%SZ)}
[ -x "$OHA" ] || { echo "oha not found (cargo install oha --locked)" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "valgrind not found" >&2; exit 1; }
[ "${BENCH_BUILD:-1}" = 0 ] || cargo build --release -p sluice -p sluice-testkit --bins >&2
mkdir -p "$OUT"
# The policies config with one worker: a single event loop is what the
# counts are most stable with.
awk '{ print } /^server:/ { print "  workers: 1" }' bench/sluice-policies.yaml >"$OUT/config.yaml"

PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
# Waits until process $1 used no CPU for a second (start-up work such as
# loading tokenizer tables runs in the background), at most 120 s.
wait_quiet() {
    local last=-1 now
    for _ in $(seq 1 120); do
        now=$(awk '{ print $14 + $15 }' "/proc/$1/stat")
        [ "$now" = "$last" ] && return 0
        last=$now
        sleep 1
    done
    echo "sluice never went quiet" >&2; exit 1
}
wait_port() { for _ in $(seq 1 600); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

"$BIN/sluice-mock-upstream" --listen "127.0.0.1:$PORT" --threads 1 >"$OUT/mock.log" 2>&1 &
PIDS+=($!)
wait_port "$PORT"

load() { # key model count
    [ "$3" -gt 0 ] || return 0
    timeout 300 "$OHA" --no-tui --output-format json -n "$3" -c 10 -m POST \
        -H "authorization: Bearer $1" -H 'content-type: application/json' \
        -d '{"model":"'"$2"'","messages":[{"role":"user","content":"Say something for the benchmark."}],"max_tokens":16}' \
        "http://127.0.0.1:$((PORT + 3))/v1/chat/completions" >"$OUT/oha.json"
    python3 - "$OUT/oha.json" "$3" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
codes = d.get("statusCodeDistribution", {})
if codes.get("200", 0) != int(sys.argv[2]):
    sys.exit(f"not every answer was 200: {codes}")
PY
}

for name in $KEYS; do
    case $name in
        plain) key=sk-bench-0000000000000000 model=gpt-4o-mini ;;
        policed) key=sk-bench-policies-0000000000 model=gpt-4o-mini-policed ;;
        issue) key=sk-bench-issue-set-00000000 model=gpt-4o-mini-limited ;;
        *) echo "unknown key $name (plain, policed, issue)" >&2; exit 1 ;;
    esac
    file="$OUT/callgrind.$name.out"
    BENCH_MOCK_PORT=$PORT BENCH_MOCK_STREAM_PORT=$((PORT + 1)) BENCH_MOCK_SLOW_PORT=$((PORT + 2)) \
    BENCH_SLUICE_PORT=$((PORT + 3)) BENCH_SLUICE_ADMIN_PORT=$((PORT + 4)) \
        valgrind --tool=callgrind --callgrind-out-file="$file" \
        "$BIN/sluice" serve --config "$OUT/config.yaml" >"$OUT/sluice.$name.log" 2>"$OUT/sluice.$name.stderr" &
    vg=$!
    PIDS+=("$vg")
    wait_port $((PORT + 3))
    wait_quiet "$vg"
    load "$key" "$model" "$WARMUP"
    callgrind_control -z "$vg" >/dev/null 2>&1
    load "$key" "$model" "$N"
    callgrind_control -d "$vg" >/dev/null 2>&1
    kill -INT "$vg" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$vg" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$vg" 2>/dev/null || true
    wait "$vg" 2>/dev/null || true
    PIDS=("${PIDS[@]/$vg/}")
    # The dump after zeroing is $file.1 (the final one at exit is $file).
    total=$(grep -h '^summary:' "$file.1" | awk '{ print $2 }')
    mv "$file.1" "$file"
    python3 -c "import sys; n = int(sys.argv[2]); t = int(sys.argv[1]); print(f'$name: {t:,} instructions over {n:,} requests' + (f' = {t / n / 1000:.1f}k per request' if n else ''))" "$total" "$N" | tee -a "$OUT/summary.txt"
done
