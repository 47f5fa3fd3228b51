#!/usr/bin/env bash
# Finds or starts the Postgres and Redis the tests need, and exports
# SLUICE_TEST_POSTGRES_URL and SLUICE_TEST_REDIS_URL for them.
#
# Sourced by scripts/test.sh (`sluice_services_up`, then the tests; servers
# this script started are stopped on exit). Run directly to check the
# bootstrap alone: `bash scripts/test-services.sh` starts or finds both,
# proves they answer, and stops what it started.
#
# Order, for each service:
#   1. SLUICE_TEST_POSTGRES_URL / SLUICE_TEST_REDIS_URL, when set;
#   2. a server already answering on the probe address (Postgres: database
#      `test` as user `postgres`, created when missing; Redis: PING);
#   3. a private server started from the installed binaries (installed with
#      apt-get when missing and running as root), on port 55432 / 56379.
# Probe addresses: SLUICE_TEST_PG_PROBE_HOST/PORT (127.0.0.1:5432) and
# SLUICE_TEST_REDIS_PROBE_HOST/PORT (127.0.0.1:6379); private ports:
# SLUICE_TEST_PG_PORT (55432) and SLUICE_TEST_REDIS_PORT (56379).

_sluice_started_pg_dir=""
_sluice_started_pg_bin=""
_sluice_started_redis_port=""

_sluice_log() { echo "== test services: $*" >&2; }
_sluice_die() { echo "== test services: ERROR: $*" >&2; exit 1; }

# Does anything accept TCP connections on host:port?
_sluice_tcp_open() {
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

_sluice_as_root() { [ "$(id -u)" = 0 ]; }

_sluice_apt_install() {
  _sluice_as_root || return 1
  command -v apt-get >/dev/null || return 1
  _sluice_log "installing $* with apt-get"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1 ||
    { DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1; }
}

# --- Postgres ---------------------------------------------------------------

_sluice_pg_answers() { # url
  command -v psql >/dev/null || return 1
  psql "$1" -Atqc 'SELECT 1' >/dev/null 2>&1
}

_sluice_pg_existing() {
  local host="${SLUICE_TEST_PG_PROBE_HOST:-127.0.0.1}" port="${SLUICE_TEST_PG_PROBE_PORT:-5432}"
  if command -v pg_isready >/dev/null; then
    pg_isready -q -h "$host" -p "$port" -t 3 || return 1
  else
    _sluice_tcp_open "$host" "$port" || return 1
  fi
  local url="postgres://postgres@$host:$port/test"
  if ! _sluice_pg_answers "$url"; then
    _sluice_log "no database \`test\` on $host:$port yet; creating it"
    psql -h "$host" -p "$port" -U postgres -d postgres -qc 'CREATE DATABASE test' >/dev/null 2>&1 || true
    _sluice_pg_answers "$url" || { _sluice_log "cannot use postgres@$host:$port/test"; return 1; }
  fi
  SLUICE_TEST_POSTGRES_URL="$url"
}

_sluice_pg_bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
  done
  command -v initdb >/dev/null && command -v pg_ctl >/dev/null &&
    { dirname "$(command -v initdb)"; return 0; }
  return 1
}

# Runs a command as the postgres user when we are root (initdb and the
# server refuse to run as root), else as ourselves.
_sluice_pg_run() {
  if _sluice_as_root; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

_sluice_pg_private() {
  local bin port="${SLUICE_TEST_PG_PORT:-55432}" dir
  bin="$(_sluice_pg_bindir)" || { _sluice_apt_install postgresql && bin="$(_sluice_pg_bindir)"; } ||
    _sluice_die "no Postgres found: set SLUICE_TEST_POSTGRES_URL, run one on 127.0.0.1:5432, or install postgresql"
  while _sluice_tcp_open 127.0.0.1 "$port"; do port=$((port + 1)); done
  if _sluice_as_root; then
    # The postgres user must own the data directory and reach it.
    id postgres >/dev/null 2>&1 || _sluice_die "running as root but there is no \`postgres\` user to run Postgres as"
    dir="$(mktemp -d "${TMPDIR:-/tmp}/sluice-test-pg.XXXXXX")"
    chown postgres: "$dir"
  else
    dir="$CARGO_TARGET_DIR/test-pg"
    rm -rf "$dir" && mkdir -p "$dir"
  fi
  _sluice_log "starting a private Postgres ($bin) on 127.0.0.1:$port in $dir"
  _sluice_pg_run "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; _sluice_die "initdb failed"; }
  _sluice_started_pg_dir="$dir" _sluice_started_pg_bin="$bin"
  _sluice_pg_run "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off" start >/dev/null ||
    { cat "$dir/server.log" >&2; _sluice_die "the private Postgres did not start"; }
  psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -qc 'CREATE DATABASE test' >/dev/null ||
    _sluice_die "creating database \`test\` on the private Postgres failed"
  SLUICE_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/test"
}

_sluice_pg_stop() {
  [ -n "$_sluice_started_pg_dir" ] || return 0
  _sluice_log "stopping the private Postgres"
  _sluice_pg_run "$_sluice_started_pg_bin/pg_ctl" -D "$_sluice_started_pg_dir/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$_sluice_started_pg_dir"
  _sluice_started_pg_dir=""
}

# --- Redis ------------------------------------------------------------------

_sluice_redis_answers() { # host port
  if command -v redis-cli >/dev/null; then
    [ "$(redis-cli -h "$1" -p "$2" ping 2>/dev/null)" = PONG ]
  else
    local reply
    reply="$( (exec 3<>"/dev/tcp/$1/$2" && printf 'PING\r\n' >&3 && timeout 2 head -c 5 <&3) 2>/dev/null)"
    [ "$reply" = "+PONG" ]
  fi
}

_sluice_redis_existing() {
  local host="${SLUICE_TEST_REDIS_PROBE_HOST:-127.0.0.1}" port="${SLUICE_TEST_REDIS_PROBE_PORT:-6379}"
  _sluice_redis_answers "$host" "$port" || return 1
  SLUICE_TEST_REDIS_URL="redis://$host:$port"
}

_sluice_redis_private() {
  local port="${SLUICE_TEST_REDIS_PORT:-56379}" i
  command -v redis-server >/dev/null || _sluice_apt_install redis-server ||
    _sluice_die "no Redis found: set SLUICE_TEST_REDIS_URL, run one on 127.0.0.1:6379, or install redis-server"
  while _sluice_tcp_open 127.0.0.1 "$port"; do port=$((port + 1)); done
  _sluice_log "starting a private Redis on 127.0.0.1:$port"
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --pidfile "${TMPDIR:-/tmp}/sluice-test-redis-$port.pid" --logfile "" >/dev/null ||
    _sluice_die "the private Redis did not start"
  _sluice_started_redis_port="$port"
  for i in $(seq 50); do
    _sluice_redis_answers 127.0.0.1 "$port" && break
    sleep 0.1
  done
  _sluice_redis_answers 127.0.0.1 "$port" || _sluice_die "the private Redis does not answer"
  SLUICE_TEST_REDIS_URL="redis://127.0.0.1:$port"
}

_sluice_redis_stop() {
  [ -n "$_sluice_started_redis_port" ] || return 0
  _sluice_log "stopping the private Redis"
  local pidfile="${TMPDIR:-/tmp}/sluice-test-redis-$_sluice_started_redis_port.pid"
  local pid i
  if [ -f "$pidfile" ]; then
    pid="$(cat "$pidfile")"
    kill "$pid" 2>/dev/null || true
    for i in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    rm -f "$pidfile"
  fi
  _sluice_started_redis_port=""
}

# --- entry points -------------------------------------------------------------

sluice_services_down() {
  _sluice_pg_stop
  _sluice_redis_stop
}

sluice_services_up() {
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}"
  trap sluice_services_down EXIT
  if [ -z "${SLUICE_TEST_POSTGRES_URL:-}" ]; then
    _sluice_pg_existing || _sluice_pg_private
  fi
  if [ -z "${SLUICE_TEST_REDIS_URL:-}" ]; then
    _sluice_redis_existing || _sluice_redis_private
  fi
  export SLUICE_TEST_POSTGRES_URL SLUICE_TEST_REDIS_URL
  _sluice_log "Postgres $SLUICE_TEST_POSTGRES_URL, Redis $SLUICE_TEST_REDIS_URL"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  sluice_services_up
  _sluice_pg_answers "$SLUICE_TEST_POSTGRES_URL" || _sluice_die "Postgres at $SLUICE_TEST_POSTGRES_URL does not answer"
  redis_hostport="${SLUICE_TEST_REDIS_URL#redis://}"
  _sluice_redis_answers "${redis_hostport%:*}" "${redis_hostport##*:}" ||
    _sluice_die "Redis at $SLUICE_TEST_REDIS_URL does not answer"
  _sluice_log "both answer"
fi
