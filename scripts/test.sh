#!/usr/bin/env bash
# The test command of the README, and what CI runs.
# Installs what is missing, regenerates the full fixture set, checks formatting and lints,
# then runs every test of the workspace (unit, integration over every impaired fixture,
# RFC vectors, fuzz corpus replays), then the property-based check of the store's HTTP API
# (schemathesis, scripts/store-api-check.sh; docs/store.md), the fault drill (kill -9 of a bot
# and of the daemon under live calls, scripts/fault-drill.sh; docs/fault-drill.md), the web
# interface's end-to-end tests in a real browser (scripts/ui-test.sh; docs/ui.md), then the
# main job end to end, on SQLite and local storage, then on PostgreSQL and Azurite with two
# bot-host pairs (scripts/e2e-main.sh; docs/operations.md, "End-to-end checks").
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
# Azurite (npm) for the Azure Blob backend tests (recorder-daemon/tests/azurite.rs).
bash scripts/azurite.sh install
echo "== fixtures" >&2
bash fixtures/generate.sh fixtures/generated >&2
bash fixtures/generate.sh --dual-long >&2   # into fixtures/generated/long/
echo "== fmt, clippy" >&2
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== tests (the store's pg_ tests against a throw-away PostgreSQL: scripts/pg-test.sh)" >&2
bash scripts/pg-test.sh cargo test --workspace --locked
echo "== store API, property-based (schemathesis)" >&2
bash scripts/store-api-check.sh 45
echo "== fault drill: kill -9 of a bot-host mid-call and of recorder-daemon mid-upload (docs/fault-drill.md)" >&2
bash scripts/fault-drill.sh
echo "== web interface, end to end in headless chromium (Playwright)" >&2
bash scripts/ui-test.sh
echo "== the main job, end to end (scripts/e2e-main.sh)" >&2
bash scripts/e2e-main.sh
bash scripts/e2e-main.sh --postgres --azurite --pairs 2
# The one-hour dual-bot alignment check (800 ms offset, 100 ppm drift): two hours of packets,
# so in release.
cargo test --release --locked -p media-core --test merge -- --ignored
