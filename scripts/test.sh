#!/usr/bin/env bash
# Runs every test of sluice:
#   0. finds or starts the Postgres and Redis the tests use (see
#      scripts/test-services.sh; servers it starts are stopped on exit) and
#      exports SLUICE_TEST_POSTGRES_URL and SLUICE_TEST_REDIS_URL;
#   1. Rust unit and integration tests (real sockets, testkit mock upstreams,
#      the store on SQLite and Postgres), including the fuzz seed-corpus replay;
#   2. end-to-end tests driving the gateway with the official `openai` and
#      `anthropic` Python SDKs (installed into a venv on first use).
# Works on a fresh machine with cargo and python3; reuses $CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}"

echo "== test services (Postgres, Redis)"
# shellcheck source=scripts/test-services.sh
source scripts/test-services.sh
sluice_services_up

echo "== cargo test --workspace"
cargo test --workspace --locked

echo "== end-to-end tests with the official Python SDKs"
cargo build --locked -p sluice -p sluice-testkit --bins
VENV="$CARGO_TARGET_DIR/e2e-venv"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r e2e/requirements.txt
SLUICE_BIN="$CARGO_TARGET_DIR/debug/sluice" \
MOCK_UPSTREAM_BIN="$CARGO_TARGET_DIR/debug/sluice-testkit-server" \
  "$VENV/bin/python" -m pytest -q e2e
