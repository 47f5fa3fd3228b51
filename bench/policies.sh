#!/usr/bin/env bash
# Cost of the resource policies end to end: one sluice (bench/sluice-policies.yaml)
# in front of one sluice-mock-upstream; closed-loop throughput with oha,
# three keys: one without policies, one under every limit kind (3 rate
# limits, a token limit, 2 budgets, a concurrency queue), and one under
# exactly the list of issue 4's bar (3 rate limits, a token reservation, a
# budget). Each round runs the keys as a palindrome (plain, issue,
# policies, policies, issue, plain: the order of the first half rotates
# from round to round), so a drift of the machine that is linear over a
# round weighs the same on every key. A key's figure in a round is the
# sum of its two runs; the bar is the median over the rounds of the ratio
# to the plain key's figure in the same round. The medians of all runs
# are printed too.
#   bench/policies.sh            (needs oha and the release binaries; builds them)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}
BIN=$CARGO_TARGET_DIR/release
OHA=${OHA:-$(command -v oha || echo "$HOME/.cargo/bin/oha")}
SECS=${BENCH_RPS_SECS:-4}
ROUNDS=${BENCH_ROUNDS:-7}
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
MOCK_PID=$!
PIDS+=($!)
wait_port "$PORT"
BENCH_MOCK_PORT=$PORT BENCH_MOCK_STREAM_PORT=$((PORT + 1)) BENCH_MOCK_SLOW_PORT=$((PORT + 2)) \
BENCH_SLUICE_PORT=$((PORT + 3)) BENCH_SLUICE_ADMIN_PORT=$((PORT + 4)) \
    "$BIN/sluice" serve --config "${BENCH_CONFIG:-bench/sluice-policies.yaml}" >"$OUT/sluice.log" 2>"$OUT/sluice.stderr" &
SLUICE_PID=$!
PIDS+=($!)
wait_port $((PORT + 3))
# CPU time (user + system, clock ticks) a process has used so far.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# One run; besides oha's report, $OUT/<name>.cpu gets the CPU time each
# process used over it — sluice and the mock in clock ticks, oha (timed by
# bash) in seconds — for the CPU per request the summary prints.
run() { # name key model
    local s0 m0 s1 m1 TIMEFORMAT='%U %S'
    s0=$(ticks "$SLUICE_PID") m0=$(ticks "$MOCK_PID")
    { time timeout $((SECS + 30)) "$OHA" --no-tui --output-format json -z "${SECS}s" -w -c "$CONNS" -m POST \
        -H "authorization: Bearer $2" -H 'content-type: application/json' \
        -d "{\"model\":\"$3\",\"messages\":[{\"role\":\"user\",\"content\":\"Say something for the benchmark.\"}],\"max_tokens\":16}" \
        "http://127.0.0.1:$((PORT + 3))/v1/chat/completions" >"$OUT/$1.json"; } 2>"$OUT/$1.oha-time"
    s1=$(ticks "$SLUICE_PID") m1=$(ticks "$MOCK_PID")
    echo "$((s1 - s0)) $((m1 - m0)) $(cat "$OUT/$1.oha-time")" >"$OUT/$1.cpu"
}
run warmup-plain sk-bench-0000000000000000 gpt-4o-mini
run warmup-policies sk-bench-policies-0000000000 gpt-4o-mini-policed
run warmup-issue sk-bench-issue-set-00000000 gpt-4o-mini-limited
one() { # which run
    case $1 in
        plain) run "plain-$2" sk-bench-0000000000000000 gpt-4o-mini ;;
        policies) run "policies-$2" sk-bench-policies-0000000000 gpt-4o-mini-policed ;;
        issue) run "issue-$2" sk-bench-issue-set-00000000 gpt-4o-mini-limited ;;
    esac
}
# Each round: a palindrome of the three keys (see the top), its first
# half's order rotating so no key always runs at the edges.
for i in $(seq 1 "$ROUNDS"); do
    case $((i % 3)) in
        1) order="plain issue policies" ;;
        2) order="issue policies plain" ;;
        0) order="policies plain issue" ;;
    esac
    for which in $order; do one "$which" "$i-a"; done
    for which in $(echo "$order" | tr ' ' '\n' | tac); do one "$which" "$i-b"; done
done
python3 - "$OUT" "$ROUNDS" "$(getconf CLK_TCK)" <<'PY'
import json, statistics, sys
out, rounds, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def rps(name):
    d = json.load(open(f"{out}/{name}.json"))
    ok = d.get("statusCodeDistribution", {}).get("200", 0)
    if ok != sum(d.get("statusCodeDistribution", {}).values()):
        sys.exit(f"{name}: not every answer was 200: {d.get('statusCodeDistribution')}")
    return d["summary"]["requestsPerSec"]
def cpu(name):
    """CPU µs per request of sluice, the mock and oha over one run."""
    d = json.load(open(f"{out}/{name}.json"))
    n = sum(d.get("statusCodeDistribution", {}).values())
    s, m, ou, os_ = open(f"{out}/{name}.cpu").read().split()
    return (int(s) / hz * 1e6 / n, int(m) / hz * 1e6 / n, (float(ou) + float(os_)) * 1e6 / n)
def cpu_line(name):
    per = [cpu(f"{name}-{i}-{h}") for i in range(1, rounds + 1) for h in "ab"]
    med = [statistics.median(p[j] for p in per) for j in range(3)]
    return med, (f"  CPU per request (medians): sluice {med[0]:.2f} µs, "
                 f"mock {med[1]:.2f} µs, oha {med[2]:.2f} µs")
def runs(name):
    return [(rps(f"{name}-{i}-a"), rps(f"{name}-{i}-b")) for i in range(1, rounds + 1)]
plain = runs("plain")
p = statistics.median([x for r in plain for x in r])
print(f"plain key:              {p:8.0f} req/s (median of {2 * rounds} runs; "
      f"rounds: {', '.join(f'{a:.0f}+{b:.0f}' for a, b in plain)})")
base, text = cpu_line("plain")
print(text)
for name, what in (("policies", "every policy kind"), ("issue", "the issue's list")):
    pol = runs(name)
    q = statistics.median([x for r in pol for x in r])
    ratios = [100 * sum(b) / sum(a) for a, b in zip(plain, pol)]
    print(f"{what + ':':23} {q:8.0f} req/s (median of {2 * rounds} runs; "
          f"rounds: {', '.join(f'{a:.0f}+{b:.0f}' for a, b in pol)})")
    print(f"  median of the rounds' ratios: {statistics.median(ratios):.1f} % (bar: at least 95 %; "
          f"rounds: {', '.join(f'{x:.1f}' for x in ratios)}); ratio of the medians: {100 * q / p:.1f} %")
    med, text = cpu_line(name)
    print(text + "; over the plain key: " + ", ".join(
        f"{who} {m - b:+.2f} µs" for who, m, b in zip(("sluice", "mock", "oha"), med, base)))
PY
