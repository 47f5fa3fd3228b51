#!/usr/bin/env bash
# sluice benchmark: the mock upstream directly, nginx (plain proxy_pass) in
# front of it, and sluice in front of it, measured in the same run on one
# machine. See bench/README.md for the method and caveats.
#
#   bench/run.sh                     # build (release), run, print the table
#   BENCH_RPS_SECS=20 bench/run.sh   # longer closed-loop phase, etc.
#
# Raw outputs go to bench/results/<UTC timestamp>/; the markdown summary is
# printed and also written to bench/results/SUMMARY.md (BENCH_SUMMARY).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

# ---- knobs (environment) --------------------------------------------------
: "${CARGO_TARGET_DIR:=$HOME/.cache/sluice-target}"
: "${BENCH_BUILD:=1}"              # 0: use the existing release binaries
: "${BENCH_WARMUP_SECS:=2}"        # per target, closed loop, before measuring
: "${BENCH_C1_SECS:=8}"            # latency at concurrency 1
: "${BENCH_RPS_SECS:=10}"          # closed-loop throughput
: "${BENCH_CONNS:=50}"             # connections for throughput and fixed rates
: "${BENCH_RATES:=1000 5000}"      # fixed (open-loop) rates, req/s
: "${BENCH_RATE_SECS:=10}"         # per fixed rate
: "${BENCH_STREAMS:=20}"           # concurrent streams for TTFT / chunk gaps
: "${BENCH_STREAM_SECS:=10}"
: "${BENCH_STREAM_CHUNKS:=50}"     # content chunks per paced stream
: "${BENCH_CHUNK_MS:=10}"          # spacing of paced chunks
: "${BENCH_HOLD_STREAMS:=2000}"    # concurrent open slow streams (RSS test)
: "${BENCH_HOLD_SECS:=5}"
: "${BENCH_HOLD_NGINX:=1}"         # also hold the streams through nginx (its RSS)
: "${BENCH_MOCK_THREADS:=1}"       # worker threads of each mock
: "${BENCH_PIN:=0}"                # 1: taskset load generators to CPU 1, servers to CPU 0
: "${BENCH_PORT_BASE:=19100}"      # ports BASE..BASE+7 on 127.0.0.1
: "${BENCH_KEEP_LOG:=0}"           # 1: keep sluice's full access log (~100 MB)
: "${BENCH_OUT:=$ROOT/bench/results/$(date -u +%Y%m%dT%H%M%SZ)}"
: "${BENCH_SUMMARY=$ROOT/bench/results/SUMMARY.md}"  # empty: do not write it
OHA=${OHA:-$(command -v oha || echo "$HOME/.cargo/bin/oha")}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
BIN=$CARGO_TARGET_DIR/release

MOCK_PORT=$BENCH_PORT_BASE
MOCK_STREAM_PORT=$((BENCH_PORT_BASE + 1))
MOCK_SLOW_PORT=$((BENCH_PORT_BASE + 2))
NGINX_PORT=$((BENCH_PORT_BASE + 3))
NGINX_STREAM_PORT=$((BENCH_PORT_BASE + 4))
NGINX_SLOW_PORT=$((BENCH_PORT_BASE + 5))
SLUICE_PORT=$((BENCH_PORT_BASE + 6))
SLUICE_ADMIN_PORT=$((BENCH_PORT_BASE + 7))
KEY=sk-bench-0000000000000000
BODY='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say something for the benchmark."}],"max_tokens":16}'

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# ---- prerequisites --------------------------------------------------------
[ -x "$OHA" ] || die "oha not found (cargo install oha --locked), or set OHA=/path/to/oha"
[ -x "$NGINX" ] || die "nginx not found (apt-get install -y nginx), or set NGINX=/path/to/nginx"
command -v python3 >/dev/null || die "python3 is needed for the summary"
command -v curl >/dev/null || die "curl is needed"
if [ "$BENCH_BUILD" = 1 ]; then
    log "cargo build --release (sluice, sluice-mock-upstream, sluice-stream-probe)"
    CARGO_TARGET_DIR=$CARGO_TARGET_DIR cargo build --release -q -p sluice --bin sluice \
        -p sluice-testkit --bin sluice-mock-upstream --bin sluice-stream-probe
fi
for b in sluice sluice-mock-upstream sluice-stream-probe; do
    [ -x "$BIN/$b" ] || die "$BIN/$b missing (build with BENCH_BUILD=1)"
done

# Every stream holds a client->proxy and a proxy->upstream socket.
need_fds=$((BENCH_HOLD_STREAMS * 2 + 1024))
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge "$need_fds" ] ||
    die "ulimit -n is $(ulimit -n); $need_fds needed for $BENCH_HOLD_STREAMS streams (raise the hard limit or lower BENCH_HOLD_STREAMS)"

for p in $(seq "$BENCH_PORT_BASE" $((BENCH_PORT_BASE + 7))); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        die "port $p is in use; set BENCH_PORT_BASE"
    fi
done

mkdir -p "$BENCH_OUT"
OUT=$BENCH_OUT
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "results in $OUT"

# ---- pinning --------------------------------------------------------------
PIN_LOAD=() PIN_SERVER=()
if [ "$BENCH_PIN" = 1 ]; then
    command -v taskset >/dev/null || die "BENCH_PIN=1 needs taskset"
    PIN_LOAD=(taskset -c 1)
    PIN_SERVER=(taskset -c 0)
fi

# ---- processes ------------------------------------------------------------
PIDS=()
NGINX_PREFIX=$(mktemp -d /tmp/sluice-bench-nginx.XXXXXX)
cleanup() {
    local pid
    for pid in "${PIDS[@]:-}"; do
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]:-}"; do
        [ -n "$pid" ] && wait "$pid" 2>/dev/null || true
    done
    rm -rf "$NGINX_PREFIX"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() { # port what
    local i
    for i in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    die "$2 did not listen on 127.0.0.1:$1 (see $OUT)"
}

start_mock() { # port name extra-args...
    local port=$1 name=$2
    shift 2
    "${PIN_SERVER[@]}" "$BIN/sluice-mock-upstream" --listen "127.0.0.1:$port" \
        --threads "$BENCH_MOCK_THREADS" "$@" >"$OUT/$name.log" 2>&1 &
    PIDS+=($!)
    wait_port "$port" "$name"
}

log "starting mocks, nginx, sluice"
start_mock "$MOCK_PORT" mock
start_mock "$MOCK_STREAM_PORT" mock-stream --stream-chunks "$BENCH_STREAM_CHUNKS" --chunk-delay-ms "$BENCH_CHUNK_MS"
# Slow streams: one event a second for far longer than the test holds them.
start_mock "$MOCK_SLOW_PORT" mock-slow --stream-chunks 600 --chunk-delay-ms 1000

mkdir -p "$NGINX_PREFIX/logs" "$NGINX_PREFIX/tmp"
sed -e "s/__MOCK_PORT__/$MOCK_PORT/; s/__MOCK_STREAM_PORT__/$MOCK_STREAM_PORT/; s/__MOCK_SLOW_PORT__/$MOCK_SLOW_PORT/" \
    -e "s/__NGINX_PORT__/$NGINX_PORT/; s/__NGINX_STREAM_PORT__/$NGINX_STREAM_PORT/; s/__NGINX_SLOW_PORT__/$NGINX_SLOW_PORT/" \
    "$ROOT/bench/nginx.conf" >"$NGINX_PREFIX/nginx.conf"
cp "$NGINX_PREFIX/nginx.conf" "$OUT/nginx.conf"
"${PIN_SERVER[@]}" "$NGINX" -p "$NGINX_PREFIX" -c "$NGINX_PREFIX/nginx.conf" >"$OUT/nginx.log" 2>&1 &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
wait_port "$NGINX_PORT" nginx

BENCH_MOCK_PORT=$MOCK_PORT BENCH_MOCK_STREAM_PORT=$MOCK_STREAM_PORT BENCH_MOCK_SLOW_PORT=$MOCK_SLOW_PORT \
BENCH_SLUICE_PORT=$SLUICE_PORT BENCH_SLUICE_ADMIN_PORT=$SLUICE_ADMIN_PORT BENCH_KEY=$KEY \
    "${PIN_SERVER[@]}" "$BIN/sluice" serve --config "$ROOT/bench/sluice-bench.yaml" \
    >"$OUT/sluice.log" 2>"$OUT/sluice.stderr" &
SLUICE_PID=$!
PIDS+=("$SLUICE_PID")
wait_port "$SLUICE_PORT" sluice

# Memory of sluice: VmHWM (peak) and VmRSS (now), in KiB.
mem() { # label
    local hwm rss
    hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$SLUICE_PID/status")
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$SLUICE_PID/status")
    printf '{"label":"%s","vmhwm_kib":%s,"vmrss_kib":%s}\n' "$1" "$hwm" "$rss" >>"$OUT/sluice-mem.jsonl"
}
# nginx: sum over master and workers.
nginx_mem() { # label
    local pids hwm=0 rss=0 p h r
    pids="$NGINX_PID $(pgrep -P "$NGINX_PID" || true)"
    for p in $pids; do
        h=$(awk '/^VmHWM:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        r=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        hwm=$((hwm + ${h:-0})) rss=$((rss + ${r:-0}))
    done
    printf '{"label":"%s","vmhwm_kib":%s,"vmrss_kib":%s}\n' "$1" "$hwm" "$rss" >>"$OUT/nginx-mem.jsonl"
}

sleep 1
mem idle
nginx_mem idle

# Sanity: each target answers one request with 200.
for t in "mock $MOCK_PORT" "nginx $NGINX_PORT" "sluice $SLUICE_PORT"; do
    set -- $t
    code=$(curl -s -o "$OUT/check-$1.json" -w '%{http_code}' --max-time 5 \
        -H "authorization: Bearer $KEY" -H 'content-type: application/json' \
        -d "$BODY" "http://127.0.0.1:$2/v1/chat/completions") || true
    [ "$code" = 200 ] || die "$1 answered $code to the check request (see $OUT/check-$1.json)"
done

TARGETS=("mock $MOCK_PORT" "nginx $NGINX_PORT" "sluice $SLUICE_PORT")

oha_run() { # name secs extra-oha-args... (URL appended)
    local name=$1 secs=$2 port=$3
    shift 3
    timeout $((secs + 30)) "${PIN_LOAD[@]}" "$OHA" --no-tui --output-format json \
        -z "${secs}s" -w -m POST \
        -H "authorization: Bearer $KEY" -H 'content-type: application/json' \
        -d "$BODY" "$@" "http://127.0.0.1:$port/v1/chat/completions" \
        >"$OUT/$name.json" 2>"$OUT/$name.stderr" ||
        log "oha $name exited $? (see $OUT/$name.stderr)"
}

# ---- 1. warm-up and latency at concurrency 1 ------------------------------
for t in "${TARGETS[@]}"; do
    set -- $t
    log "$1: warm-up ${BENCH_WARMUP_SECS}s at $BENCH_CONNS connections"
    oha_run "warmup-$1" "$BENCH_WARMUP_SECS" "$2" -c "$BENCH_CONNS"
done
for t in "${TARGETS[@]}"; do
    set -- $t
    log "$1: concurrency 1 for ${BENCH_C1_SECS}s"
    oha_run "c1-$1" "$BENCH_C1_SECS" "$2" -c 1
done

# ---- 2. closed-loop throughput --------------------------------------------
# CPU ticks (user+system, all threads) of the process(es) serving a target.
MOCK_PID=${PIDS[0]}
cpu_ticks() { # pids...
    local p sum=0 t
    for p in "$@"; do
        t=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)
        sum=$((sum + ${t:-0}))
    done
    echo "$sum"
}
target_pids() { # name
    case $1 in
        mock) echo "$MOCK_PID" ;;
        nginx) echo "$NGINX_PID $(pgrep -P "$NGINX_PID" | tr '\n' ' ')" ;;
        sluice) echo "$SLUICE_PID" ;;
    esac
}
for t in "${TARGETS[@]}"; do
    set -- $t
    log "$1: closed loop, $BENCH_CONNS connections, ${BENCH_RPS_SECS}s"
    # shellcheck disable=SC2046
    before=$(cpu_ticks $(target_pids "$1"))
    oha_run "rps-$1" "$BENCH_RPS_SECS" "$2" -c "$BENCH_CONNS"
    # shellcheck disable=SC2046
    after=$(cpu_ticks $(target_pids "$1"))
    printf '{"target":"%s","cpu_ticks":%s,"clk_tck":%s}\n' "$1" $((after - before)) "$(getconf CLK_TCK)" >>"$OUT/rps-cpu.jsonl"
done

# ---- 3. fixed rates (open loop, latency corrected) ------------------------
for rate in $BENCH_RATES; do
    for t in "${TARGETS[@]}"; do
        set -- $t
        log "$1: fixed $rate req/s, $BENCH_CONNS connections, ${BENCH_RATE_SECS}s"
        oha_run "rate$rate-$1" "$BENCH_RATE_SECS" "$2" -c "$BENCH_CONNS" -q "$rate" --latency-correction
    done
done
mem conns50
nginx_mem conns50

# ---- 4. streaming: time to first token, chunk gaps ------------------------
EVENTS=$((BENCH_STREAM_CHUNKS + 4)) # role, N contents, finish, usage, [DONE]
probe() { # name timeout args...
    local name=$1 secs=$2
    shift 2
    timeout "$secs" "${PIN_LOAD[@]}" "$BIN/sluice-stream-probe" --json "$@" \
        >"$OUT/$name.json" 2>"$OUT/$name.stderr" ||
        log "probe $name exited $? (see $OUT/$name.stderr)"
}
for t in "mock $MOCK_STREAM_PORT" "nginx $NGINX_STREAM_PORT" "sluice $SLUICE_PORT"; do
    set -- $t
    # Warm-up (discarded): opens the proxy's connections to the paced mock,
    # so the measured TTFT is not a handful of cold connects.
    probe "stream-warmup-$1" 30 \
        --url "http://127.0.0.1:$2/v1/chat/completions" --key "$KEY" --model bench-stream \
        ttft --concurrency "$BENCH_STREAMS" --duration-secs 1
    log "$1: $BENCH_STREAMS concurrent streams ($BENCH_STREAM_CHUNKS chunks, ${BENCH_CHUNK_MS} ms apart) for ${BENCH_STREAM_SECS}s"
    probe "stream-$1" $((BENCH_STREAM_SECS + 30)) \
        --url "http://127.0.0.1:$2/v1/chat/completions" --key "$KEY" --model bench-stream \
        ttft --concurrency "$BENCH_STREAMS" --duration-secs "$BENCH_STREAM_SECS" --expect-events "$EVENTS"
done

# ---- 5. many open streams (memory) ----------------------------------------
HOLD_TARGETS=("sluice $SLUICE_PORT")
[ "$BENCH_HOLD_NGINX" = 1 ] && HOLD_TARGETS+=("nginx $NGINX_SLOW_PORT")
for t in "${HOLD_TARGETS[@]}"; do
    set -- $t
    log "$1: $BENCH_HOLD_STREAMS open slow streams, held ${BENCH_HOLD_SECS}s"
    probe "hold-$1" $((BENCH_HOLD_SECS + 90)) \
        --url "http://127.0.0.1:$2/v1/chat/completions" --key "$KEY" --model bench-slow \
        hold --streams "$BENCH_HOLD_STREAMS" --hold-secs "$BENCH_HOLD_SECS" --ramp-per-sec 1000
    if [ "$1" = sluice ]; then mem "streams$BENCH_HOLD_STREAMS"; else nginx_mem "streams$BENCH_HOLD_STREAMS"; fi
    # The probe has dropped its streams: the proxy must have cancelled the
    # upstream ones too. Count what is still open to the slow mock.
    sleep 2
    left=$(ss -Htn state established "( dport = :$MOCK_SLOW_PORT )" 2>/dev/null | wc -l || echo "?")
    printf '{"target":"%s","upstream_streams_left":"%s"}\n' "$1" "$left" >>"$OUT/hold-leftover.jsonl"
done

# ---- errors seen by the gateways ------------------------------------------
sleep 1
curl -s --max-time 5 "http://127.0.0.1:$SLUICE_ADMIN_PORT/metrics" >"$OUT/sluice-metrics.txt" || true
cp "$NGINX_PREFIX/logs/error.log" "$OUT/nginx-error.log" 2>/dev/null || true

# ---- sluice's access log: counts, a tail, and (by default) no 100 MB file --
# Stop sluice first so its log writer has flushed every line.
kill "$SLUICE_PID" 2>/dev/null || true
wait "$SLUICE_PID" 2>/dev/null || true
python3 "$ROOT/bench/logstats.py" "$OUT/sluice.log" >"$OUT/sluice-log-stats.json" || true
tail -n 200 "$OUT/sluice.log" >"$OUT/sluice.log.tail"
[ "$BENCH_KEEP_LOG" = 1 ] || rm -f "$OUT/sluice.log"

# ---- environment and summary ----------------------------------------------
{
    echo "date_utc: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "nproc: $(nproc)"
    echo "cpu: $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
    echo "mem_total: $(free -h | awk '/^Mem:/ {print $2}')"
    echo "kernel: $(uname -r)"
    echo "git: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (dirty)')"
    echo "oha: $("$OHA" --version 2>/dev/null | head -1)"
    echo "nginx: $("$NGINX" -v 2>&1 | head -1)"
    echo "pin: $BENCH_PIN"
    echo "loadavg_start: $LOAD_START"
    echo "loadavg_end: $(cut -d' ' -f1-3 /proc/loadavg)"
    env | grep '^BENCH_' | sort
} >"$OUT/env.txt"

python3 "$ROOT/bench/summarize.py" "$OUT" | tee "$OUT/summary.md"
[ -z "$BENCH_SUMMARY" ] || cp "$OUT/summary.md" "$BENCH_SUMMARY"
log "raw results: $OUT (took ${SECONDS}s)"
