#!/usr/bin/env bash
# Cost of the request log end to end: two sluice processes in front of one
# sluice-mock-upstream, the core benchmark's config without a store
# (sluice-bench.yaml) and the same with a SQLite store and the request log
# (sluice-request-log.yaml); closed-loop throughput with oha, alternating,
# BENCH_ROUNDS times each. Prints the median requests/s of both and their
# ratio, then stops the logging sluice gracefully and counts its records in
# the store against the requests it answered (none may be missing), and
# reads its request-log metrics (written, spilled, dropped).
#   bench/request_log.sh         (needs oha and the release binaries; builds them)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}
BIN=$CARGO_TARGET_DIR/release
OHA=${OHA:-$(command -v oha || echo "$HOME/.cargo/bin/oha")}
SECS=${BENCH_RPS_SECS:-10}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNS:-50}
PORT=${BENCH_PORT_BASE:-19400}
OUT=${BENCH_OUT:-$PWD/bench/results/request-log-$(date -u +%Y%m%dT%H%M%SZ)}
[ -x "$OHA" ] || { echo "oha not found (cargo install oha --locked)" >&2; exit 1; }
[ "${BENCH_BUILD:-1}" = 0 ] || cargo build --release -p sluice -p sluice-testkit --bins >&2
mkdir -p "$OUT"
PIDS=()
trap 'for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done' EXIT
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }
"$BIN/sluice-mock-upstream" --listen "127.0.0.1:$PORT" --threads 1 >"$OUT/mock.log" 2>&1 &
PIDS+=($!)
wait_port "$PORT"
export BENCH_MOCK_PORT=$PORT BENCH_MOCK_STREAM_PORT=$PORT BENCH_MOCK_SLOW_PORT=$PORT
BENCH_SLUICE_PORT=$((PORT + 1)) BENCH_SLUICE_ADMIN_PORT=$((PORT + 2)) \
    "$BIN/sluice" serve --config bench/sluice-bench.yaml >/dev/null 2>"$OUT/plain.stderr" &
PIDS+=($!)
BENCH_SLUICE_PORT=$((PORT + 3)) BENCH_SLUICE_ADMIN_PORT=$((PORT + 4)) \
BENCH_STORE_FILE="$OUT/store.db" BENCH_SPILL_DIR="$OUT/spill" \
    "$BIN/sluice" serve --config bench/sluice-request-log.yaml >/dev/null 2>"$OUT/logged.stderr" &
LOGGED=$!
PIDS+=($LOGGED)
wait_port $((PORT + 1))
wait_port $((PORT + 3))
run() { # name port
    timeout $((SECS + 30)) "$OHA" --no-tui --output-format json -z "${SECS}s" -w -c "$CONNS" -m POST \
        -H "authorization: Bearer sk-bench-0000000000000000" -H 'content-type: application/json' \
        -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say something for the benchmark."}],"max_tokens":16}' \
        "http://127.0.0.1:$2/v1/chat/completions" >"$OUT/$1.json"
}
run warmup-plain $((PORT + 1))
run warmup-logged $((PORT + 3))
# Each round is a pair; the order flips every round so neither side always
# runs first (the VM drifts within seconds).
for i in $(seq 1 "$ROUNDS"); do
    if [ $((i % 2)) = 1 ]; then
        run "plain-$i" $((PORT + 1))
        run "logged-$i" $((PORT + 3))
    else
        run "logged-$i" $((PORT + 3))
        run "plain-$i" $((PORT + 1))
    fi
done
curl -s "http://127.0.0.1:$((PORT + 4))/metrics" >"$OUT/logged-metrics.txt"
kill -TERM "$LOGGED"
wait "$LOGGED" || true
python3 - "$OUT" "$ROUNDS" <<'PY'
import glob, json, sqlite3, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def stats(name):
    d = json.load(open(f"{out}/{name}.json"))
    codes = d.get("statusCodeDistribution", {})
    if codes.get("200", 0) != sum(codes.values()):
        sys.exit(f"{name}: not every answer was 200: {codes}")
    return d["summary"]["requestsPerSec"], codes.get("200", 0)
plain = [stats(f"plain-{i}")[0] for i in range(1, rounds + 1)]
logged = [stats(f"logged-{i}")[0] for i in range(1, rounds + 1)]
p, q = statistics.median(plain), statistics.median(logged)
print(f"request log off:  {p:8.0f} req/s (rounds: {', '.join(f'{x:.0f}' for x in plain)})")
print(f"request log on:   {q:8.0f} req/s (rounds: {', '.join(f'{x:.0f}' for x in logged)})")
print(f"ratio of the medians: {100 * q / p:.1f} %")
pairs = [100 * b / a for a, b in zip(plain, logged)]
print(f"median of the paired rounds' ratios: {statistics.median(pairs):.1f} % "
      f"(pairs: {', '.join(f'{x:.1f}' for x in pairs)})")
answered = sum(stats(n)[1] for n in ["warmup-logged"] + [f"logged-{i}" for i in range(1, rounds + 1)])
db = sqlite3.connect(f"{out}/store.db")
tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table' AND name GLOB 'request_log_[0-9]*'")]
records = sum(db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables)
rollup = db.execute("SELECT COALESCE(SUM(requests), 0) FROM usage_daily").fetchone()[0]
print(f"answered 200 (oha): {answered}; records in the store: {records}; in the daily rollup: {rollup}")
metrics = {}
for line in open(f"{out}/logged-metrics.txt"):
    if line.startswith("sluice_request_log_"):
        name, value = line.rsplit(" ", 1)
        metrics[name] = float(value)
for k, v in sorted(metrics.items()):
    if not k.startswith("sluice_request_log_flush_seconds"):
        print(f"  {k} {v:.0f}")
spill = glob.glob(f"{out}/spill/*.jsonl")
print(f"spill files left: {len(spill)}")
PY
