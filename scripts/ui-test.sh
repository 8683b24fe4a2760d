#!/usr/bin/env bash
# End-to-end tests of the web interface in a real browser (Debian's chromium, headless,
# driven by Playwright): builds recorder-daemon, starts it on a fresh data directory, seeds
# it (directory, access profiles of three levels, interactions posted as bot-host posts them,
# a three-speaker meeting with real audio), runs e2e/tests/, writes docs/screenshots/*.png,
# stops the daemon. Installs chromium (scripts/setup.sh) and Playwright (npm, e2e/node_modules,
# no browser download) when missing.
#   scripts/ui-test.sh [playwright args...]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

bash scripts/setup.sh # chromium, sox, espeak-ng, opus-tools
if ! command -v npm >/dev/null 2>&1; then
  echo "ui-test: installing nodejs and npm" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get install -y -q nodejs npm >&2
fi
if [ ! -d e2e/node_modules/@playwright/test ] || [ ! -d e2e/node_modules/@axe-core/playwright ]; then
  echo "ui-test: installing Playwright into e2e/node_modules" >&2
  (cd e2e && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund >&2)
fi

cargo build -q --locked -p recorder-daemon
bin=${CARGO_TARGET_DIR:-$root/target}/debug/recorder-daemon

tmp=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

data=$tmp/data
cfg=$tmp/recorder.toml
mkdir -p "$data"
ingest_key=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
cat >"$cfg" <<CONF
listen = "127.0.0.1:0"
data_dir = "$data"
tenant_id = "ui-test-tenant"
jwt_secret_hex = "$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
ingest_key = "$ingest_key"
global_admins = ["admin@contoso.example"]
CONF

# The meeting's recordings, where downloads resolve them: <storage root>/<mediaPath>/.
echo "ui-test: making the three-speaker recording" >&2
bash e2e/make-recording.sh "$data/storage/rec/meeting-primary"
cp -r "$data/storage/rec/meeting-primary" "$data/storage/rec/meeting-paired"

"$bin" serve --config "$cfg" >"$tmp/daemon.out" 2>"$tmp/daemon.err" &
pid=$!
base=""
for _ in $(seq 200); do
  base=$(sed -n 's/^recorder-daemon serve: \(http:\/\/[^ ]*\).*/\1/p' "$tmp/daemon.out" | head -n1)
  [ -n "$base" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$tmp/daemon.err" >&2; exit 1; }
  sleep 0.1
done
[ -n "$base" ] || { echo "ui-test: the daemon did not start" >&2; cat "$tmp/daemon.err" >&2; exit 1; }
base=${base%/}
echo "ui-test: recorder-daemon at $base" >&2

tok() { "$bin" token --config "$cfg" --upn "$1" --oid "$2" --ttl 2h; }
export BASE=$base INGEST_KEY=$ingest_key
export ADMIN_TOKEN=$(tok admin@contoso.example oid-admin)
export SUP_TOKEN=$(tok sup@contoso.example oid-sup)
export NOBODY_TOKEN=$(tok nobody@contoso.example oid-nobody)
export SEED_OUT=$tmp/seed.json PW_OUTPUT=$tmp/playwright
node e2e/seed.mjs
mkdir -p docs/screenshots
export SCREENSHOTS=$root/docs/screenshots
(cd e2e && npx playwright test "$@")
echo "ui-test: passed; screenshots in docs/screenshots/" >&2
