#!/usr/bin/env bash
# Property-based check of the metadata store's HTTP API from the OpenAPI document it serves
# (schemathesis, from PyPI): for every operation, no 5xx, no status, content type or body that
# the document does not allow, and no schema-violating request accepted. Authenticated with a
# token minted by `recorder-daemon token` for a global administrator. The audit trail the run
# leaves behind must verify.
#   scripts/store-api-check.sh [SECONDS]      (time budget, default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}

bash scripts/setup.sh python3-venv
venv=${SCHEMATHESIS_VENV:-$HOME/.cache/recorder-daemon-schemathesis}
if [ ! -x "$venv/bin/schemathesis" ]; then
  echo "== installing schemathesis into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'schemathesis>=4,<5'
fi

cargo build --locked -q -p recorder-daemon
bin=${CARGO_TARGET_DIR:-target}/debug/recorder-daemon
work=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
cat > "$work/daemon.toml" <<TOML
global_admins = ["admin@contoso.example"]
ingest_key = "schemathesis-ingest"
TOML
"$bin" serve --config "$work/daemon.toml" --data-dir "$work/data" > "$work/serve.out" &
pid=$!
url=
for _ in $(seq 100); do
  url=$(sed -n 's/^recorder-daemon serve: //p' "$work/serve.out")
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "serve did not start" >&2; exit 1; }
token=$("$bin" token --upn admin@contoso.example --ttl 2h --config "$work/daemon.toml" --data-dir "$work/data")
echo "== schemathesis against $url for ${secs}s" >&2
# From the scratch directory: schemathesis leaves its cache (.schemathesis/) in the working one.
(cd "$work" && "$venv/bin/schemathesis" run "$url/api/v1/openapi.json" \
  -H "Authorization: Bearer $token" \
  -c not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection \
  --phases "${SCHEMATHESIS_PHASES:-examples,fuzzing,stateful}" --max-time "$secs" -w 2)
kill "$pid"; wait "$pid" || true; pid=
"$bin" audit verify --config "$work/daemon.toml" --data-dir "$work/data"
