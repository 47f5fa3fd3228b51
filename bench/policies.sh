#!/usr/bin/env bash
# Cost of the resource policies end to end: one sluice (bench/sluice-policies.yaml)
# in front of one sluice-mock-upstream; closed-loop throughput with oha,
# rotating three keys BENCH_ROUNDS times each: one without policies, one
# under every limit kind (3 rate limits, a token limit, 2 budgets, a
# concurrency queue), and one under exactly the list of issue 4's bar (3
# rate limits, a token reservation, a budget); prints the median
# requests/s of each and the ratios to the plain key.
#   bench/policies.sh            (needs oha and the release binaries; builds them)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}
BIN=$CARGO_TARGET_DIR/release
OHA=${OHA:-$(command -v oha || echo "$HOME/.cargo/bin/oha")}
SECS=${BENCH_RPS_SECS:-10}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNS:-50}
PORT=${BENCH_PORT_BASE:-19300}
OUT=${BENCH_OUT:-bench/results/policies-$(date -u +%Y%m%dT%H%M%SZ)}
[ -x "$OHA" ] || { echo "oha not found (cargo install oha --locked)" >&2; exit 1; }
[ "${BENCH_BUILD:-1}" = 0 ] || cargo build --release -p sluice -p sluice-testkit --bins >&2
mkdir -p "$OUT"
PIDS=()
trap 'for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done' EXIT
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }
"$BIN/sluice-mock-upstream" --listen "127.0.0.1:$PORT" --threads 1 >"$OUT/mock.log" 2>&1 &
PIDS+=($!)
wait_port "$PORT"
BENCH_MOCK_PORT=$PORT BENCH_MOCK_STREAM_PORT=$((PORT + 1)) BENCH_MOCK_SLOW_PORT=$((PORT + 2)) \
BENCH_SLUICE_PORT=$((PORT + 3)) BENCH_SLUICE_ADMIN_PORT=$((PORT + 4)) \
    "$BIN/sluice" serve --config "${BENCH_CONFIG:-bench/sluice-policies.yaml}" >"$OUT/sluice.log" 2>"$OUT/sluice.stderr" &
PIDS+=($!)
wait_port $((PORT + 3))
run() { # name key model
    timeout $((SECS + 30)) "$OHA" --no-tui --output-format json -z "${SECS}s" -w -c "$CONNS" -m POST \
        -H "authorization: Bearer $2" -H 'content-type: application/json' \
        -d "{\"model\":\"$3\",\"messages\":[{\"role\":\"user\",\"content\":\"Say something for the benchmark.\"}],\"max_tokens\":16}" \
        "http://127.0.0.1:$((PORT + 3))/v1/chat/completions" >"$OUT/$1.json"
}
run warmup-plain sk-bench-0000000000000000 gpt-4o-mini
run warmup-policies sk-bench-policies-0000000000 gpt-4o-mini-policed
run warmup-issue sk-bench-issue-set-00000000 gpt-4o-mini-limited
# Each round runs the three keys; the order rotates every round so none
# always runs first (the VM drifts within seconds).
one() { # which round
    case $1 in
        plain) run "plain-$2" sk-bench-0000000000000000 gpt-4o-mini ;;
        policies) run "policies-$2" sk-bench-policies-0000000000 gpt-4o-mini-policed ;;
        issue) run "issue-$2" sk-bench-issue-set-00000000 gpt-4o-mini-limited ;;
    esac
}
for i in $(seq 1 "$ROUNDS"); do
    case $((i % 3)) in
        1) order="plain policies issue" ;;
        2) order="policies issue plain" ;;
        0) order="issue plain policies" ;;
    esac
    for which in $order; do one "$which" "$i"; done
done
python3 - "$OUT" "$ROUNDS" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def rps(name):
    d = json.load(open(f"{out}/{name}.json"))
    ok = d.get("statusCodeDistribution", {}).get("200", 0)
    if ok != sum(d.get("statusCodeDistribution", {}).values()):
        sys.exit(f"{name}: not every answer was 200: {d.get('statusCodeDistribution')}")
    return d["summary"]["requestsPerSec"]
plain = [rps(f"plain-{i}") for i in range(1, rounds + 1)]
p = statistics.median(plain)
print(f"plain key:              {p:8.0f} req/s (rounds: {', '.join(f'{x:.0f}' for x in plain)})")
for name, what in (("policies", "every policy kind"), ("issue", "the issue's list")):
    pol = [rps(f"{name}-{i}") for i in range(1, rounds + 1)]
    q = statistics.median(pol)
    pairs = [100 * b / a for a, b in zip(plain, pol)]
    print(f"{what + ':':23} {q:8.0f} req/s (rounds: {', '.join(f'{x:.0f}' for x in pol)})")
    print(f"  ratio of the medians: {100 * q / p:.1f} % (bar: at least 95 %); "
          f"median of the rounds' ratios: {statistics.median(pairs):.1f} % "
          f"(rounds: {', '.join(f'{x:.1f}' for x in pairs)})")
PY
