#!/usr/bin/env bash
# The main job, on the embedded defaults:
#   1. a captured SRTP call (the committed fixture) recorded end to end by `bot-host replay`;
#   2. the whole product on this machine: recorder-daemon (metadata store, uploader to local
#      storage with a geo-redundant second copy, retention, reconciler, web UI), a primary and
#      a paired `bot-host serve` posting to it, and the simulator playing every call scenario
#      (each call type, profile rules, impairments, a paired leg losing packets, an outage of
#      the primary, forks, transfers, meetings). It waits until every recording is uploaded
#      and verified, prints the UI's address with sign-in links for an administrator and a
#      supervisor who sees only the traders' calls, and keeps running until Ctrl-C, then
#      stops everything cleanly (bots seal what they hold, the uploader takes it).
# Everything lands under out/.
#   scripts/run.sh                                   (both parts; Ctrl-C to stop)
#   scripts/run.sh --no-wait                         (stop as soon as everything is stored)
#   scripts/run.sh --realtime                        (the simulator at real time, not --fast)
#   scripts/run.sh --no-sim                          (the product only: bring your own calls)
#   scripts/run.sh CAPTURE [--srtp-key KEY]...       (replay your own capture only)
# Scale-out variants (docs/operations.md, "End-to-end checks"), combinable:
#   --postgres       the metadata store on PostgreSQL: a throw-away server (scripts/pg-test.sh),
#                    or the one RECORDER_TEST_PG_URL names; run.sh makes its own database there
#   --azurite        both storages (primary and geo copy) as containers in Azurite
#   --pairs N        N primary/paired bot-host pairs sharing the one recorder-daemon, the
#                    simulator played against each pair at once (default 1)
#   --scenario NAME  play only this simulator scenario (repeatable; `bot-host simulate --list`)
# For scripts driving the running product (scripts/e2e-main.sh, scripts/fault-drill.sh):
#   out/live/product.json  written once every process is up: URLs, tokens, pids, configs;
#   out/live/stored.json   written once the simulated calls are stored and verified (counts).
set -euo pipefail
cd "$(dirname "$0")/.."

all_args=("$@")
wait_for_ctrl_c=1
sim_mode=--fast
simulate=1
postgres=0
azurite=0
pairs=1
scenarios=()
while [ $# -gt 0 ]; do
  case "$1" in
    --no-wait) wait_for_ctrl_c=0 ;;
    --realtime) sim_mode=--realtime ;;
    --no-sim) simulate=0 ;;
    --postgres) postgres=1 ;;
    --azurite) azurite=1 ;;
    --pairs)
      [[ "${2:-}" =~ ^[1-9]$ ]] || { echo "run.sh: --pairs takes 1..9" >&2; exit 2; }
      pairs=$2; shift ;;
    --scenario)
      [ -n "${2:-}" ] || { echo "run.sh: --scenario takes a name" >&2; exit 2; }
      scenarios+=(--scenario "$2"); shift ;;
    --help | -h) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) break ;;
  esac
  shift
done

if [ "$postgres" -eq 1 ] && [ -z "${RECORDER_TEST_PG_URL:-}" ]; then
  # A throw-away server for this run, stopped and deleted when run.sh ends.
  exec bash scripts/pg-test.sh bash "$PWD/scripts/run.sh" "${all_args[@]}"
fi
bash scripts/setup.sh
cargo build --release --locked -q -p bot-host -p recorder-daemon
bin=${CARGO_TARGET_DIR:-target}/release

check_oggs() {
  for f in "$@"; do
    echo "--- opusinfo $f" >&2
    opusinfo "$f" | sed -n '/Playback length/p;/WARNING/p'
    ogginfo "$f" | grep -iE 'warning|error' || true
  done
}


out=out/demo
rm -rf "$out"
if [ $# -gt 0 ]; then
  capture=$1; shift
  echo "== recording $capture" >&2
  $bin/bot-host replay "$capture" --out "$out" "$@"
  check_oggs "$out"/*.ogg
  echo "Recording written to $out/." >&2
  exit 0
fi

key=$(sed -n 's/.*"srtp_key": *"\([^"]*\)".*/\1/p' fixtures/calls/srtp-80.truth.json | head -n1)
echo "== 1. replay: recording fixtures/calls/srtp-80.pcap" >&2
$bin/bot-host replay fixtures/calls/srtp-80.pcap --out "$out" --srtp-key "$key"
check_oggs "$out"/*.ogg

echo "== 2. the product: recorder-daemon, a primary and a paired bot-host, the simulator" >&2
live=out/live
rm -rf "$live"
mkdir -p "$live/store"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
tenant=5f2b7c3e-1a4d-4e8b-9c6f-2d3e4f5a6b7c
ingest_key=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
store_port=$(free_port)
store=http://127.0.0.1:$store_port
# Pair 1 keeps the names of the one-pair product (primary, paired); pair k > 1 adds -k.
bot_names=(); bot_roles=(); bot_pairs=(); bot_urls=()
for ((k = 1; k <= pairs; k++)); do
  for role in primary paired; do
    name=$role; [ "$k" -eq 1 ] || name=$role-$k
    bot_names+=("$name"); bot_roles+=("$role"); bot_pairs+=("$k")
    bot_urls+=("http://127.0.0.1:$(free_port)")
  done
done
primary=${bot_urls[0]}; paired=${bot_urls[1]}
toml_list() { local out="" x; for x in "$@"; do out+="${out:+, }\"$x\""; done; echo "[$out]"; }
spools=(); for name in "${bot_names[@]}"; do spools+=("$PWD/$live/$name/spool"); done

storage_kind=local; database=sqlite; pg_db=""; pg_port=""; az_port=""
pids=()
stop_all() {
  # Bots first: they seal what they hold and the uploader takes it; then the daemon.
  local n=${#pids[@]}
  for ((i = n - 1; i >= 0; i--)); do
    kill -TERM "${pids[$i]}" 2>/dev/null || true
    wait "${pids[$i]}" 2>/dev/null || true
    if [ "$i" -eq 1 ]; then sleep 3; fi   # the last seals reach storage before the daemon stops
  done
  pids=()
  if [ -n "$az_port" ]; then bash scripts/azurite.sh stop "$az_port" || true; az_port=""; fi
  if [ -n "$pg_db" ]; then
    "$psql" "$RECORDER_TEST_PG_URL" -qc "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >&2 || true
    pg_db=""
  fi
}
trap stop_all EXIT
trap 'echo; echo "stopping..." >&2; exit 0' INT TERM

profiles=$PWD/bot-host/sim-profiles.toml
if [ "$azurite" -eq 1 ]; then
  # Azurite in its own session: a Ctrl-C at the terminal must not stop it before the
  # daemon has uploaded the last seals (stop_all stops it last).
  az_port=$(setsid -w bash scripts/azurite.sh start)
  echo "azurite: Blob service on 127.0.0.1:$az_port" >&2
  storage_kind=azure
  # The same profiles, storing to the Azure storage.
  sed 's/^storage = "local"$/storage = "azure"/' bot-host/sim-profiles.toml >"$live/profiles.toml"
  profiles=$PWD/$live/profiles.toml
fi
if [ "$postgres" -eq 1 ]; then
  psql=$(command -v psql || ls /usr/lib/postgresql/*/bin/psql 2>/dev/null | head -n1)
  [ -n "$psql" ] || { echo "run.sh: psql not found" >&2; exit 1; }
  pg_db=recorder_live_$(python3 -c 'import secrets; print(secrets.token_hex(4))')
  "$psql" "$RECORDER_TEST_PG_URL" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE $pg_db" >&2
  database=postgres
  pg_port=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.urlsplit(sys.argv[1]).port or 5432)' "$RECORDER_TEST_PG_URL")
  echo "postgres: database $pg_db" >&2
fi
{
  cat <<CONF
listen = "127.0.0.1:$store_port"
data_dir = "$PWD/$live/store"
tenant_id = "$tenant"
ingest_key = "$ingest_key"
global_admins = ["admin@contoso.example"]
spool_dirs = $(toml_list "${spools[@]}")
CONF
  if [ -n "$pg_db" ]; then
    echo "database_url = \"${RECORDER_TEST_PG_URL%/*}/$pg_db\""
  fi
  if [ -n "$az_port" ]; then
    for name in azure azure-geo; do
      echo
      echo "[[storage]]"
      echo "name = \"$name\""
      echo 'kind = "azure"'
      [ "$name" = azure ] && echo 'paired = "azure-geo"'
      cat <<CONF
[storage.azure]
account = "devstoreaccount1"
# Azurite's well-known development key (public, documented by Microsoft).
account_key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
container = "$( [ "$name" = azure ] && echo recordings || echo recordings-geo )"
endpoint = "http://127.0.0.1:$az_port/devstoreaccount1"
create_container = true
CONF
    done
  else
    cat <<CONF

[[storage]]
name = "local"
kind = "local"
paired = "local-geo"

[[storage]]
name = "local-geo"
kind = "local"
CONF
  fi
  cat <<CONF

[reconcile]
bot_hosts = $(toml_list "${bot_urls[@]}")
interval_secs = 5
grace_secs = 120
CONF
} >"$live/store/recorder.toml"


# The daemon and the bots in sessions of their own: a Ctrl-C at the terminal reaches run.sh
# only, which stops them in order (bots first, then the daemon), not all at once.
setsid $bin/recorder-daemon serve --config "$live/store/recorder.toml" >"$live/store.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  curl -sf "$store/api/v1/openapi.json" >/dev/null && break
  sleep 0.1
done
token() { $bin/recorder-daemon token --config "$live/store/recorder.toml" --ttl 12h "$@"; }
admin=$(token --upn admin@contoso.example)
api() { # method path [json]
  curl -sf -X "$1" -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
    ${3:+--data "$3"} "$store$2"
}
# The directory (as Entra ID would give it) and a supervisor who sees the traders' calls only.
api POST /api/v1/directory/import '{"users": [
  {"id": "00000001-7c1e-4d2a-9b3f-00005eed0001", "userPrincipalName": "alice@contoso.example", "displayName": "Alice Archer", "recordingProfile": "Traders"},
  {"id": "00000002-7c1e-4d2a-9b3f-00005eed0002", "userPrincipalName": "bob@contoso.example", "displayName": "Bob Baker", "recordingProfile": "Traders"},
  {"id": "00000003-7c1e-4d2a-9b3f-00005eed0003", "userPrincipalName": "carol@contoso.example", "displayName": "Carol Chen", "recordingProfile": "Support"},
  {"id": "00000004-7c1e-4d2a-9b3f-00005eed0004", "userPrincipalName": "dave@contoso.example", "displayName": "Dave Dunn", "recordingProfile": "NightShift"},
  {"id": "00000005-7c1e-4d2a-9b3f-00005eed0005", "userPrincipalName": "erin@contoso.example", "displayName": "Erin Evans", "recordingProfile": "Legal"},
  {"id": "5a5a5a5a-0000-4000-8000-00000000005a", "userPrincipalName": "sam@contoso.example", "displayName": "Sam Supervisor"}],
 "groups": [
  {"id": "traders", "displayName": "Traders", "members": [{"id": "00000001-7c1e-4d2a-9b3f-00005eed0001"}, {"id": "00000002-7c1e-4d2a-9b3f-00005eed0002"}]},
  {"id": "trading-supervisors", "displayName": "Trading supervisors", "members": [{"id": "5a5a5a5a-0000-4000-8000-00000000005a"}]}]}' >/dev/null
api POST /api/v1/access-profiles '{"name": "Trading supervisors", "groups": ["trading-supervisors"],
  "callAccess": "ownAndGroups", "callAccessGroups": ["traders"],
  "permissions": ["play", "download", "tag", "addNotes"]}' >/dev/null
supervisor=$(token --upn sam@contoso.example)

start_bot() { # name role url
  local name=$1 role=$2 url=$3
  cat >"$live/$name.toml" <<CONF
listen = "${url#http://}"
data_dir = "$PWD/$live/$name"
profiles = "$profiles"
role = "$role"
store_url = "$store/api/v1/interactions?ingestKey=$ingest_key"
CONF
  setsid $bin/bot-host serve --config "$live/$name.toml" >"$live/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    curl -sf "$url/api/info" >/dev/null && return
    sleep 0.1
  done
  cat "$live/$name.log" >&2; echo "bot-host ($name) did not start" >&2; exit 1
}
for i in "${!bot_names[@]}"; do start_bot "${bot_names[$i]}" "${bot_roles[$i]}" "${bot_urls[$i]}"; done
echo "store: $store   primary bot-host: $primary   paired bot-host: $paired" >&2
for ((i = 2; i < ${#bot_names[@]}; i += 2)); do
  echo "pair ${bot_pairs[$i]}: primary bot-host: ${bot_urls[$i]}   paired bot-host: ${bot_urls[$((i + 1))]}" >&2
done
bots_json=$(for i in "${!bot_names[@]}"; do
  printf '{"role": "%s", "pair": %s, "name": "%s", "url": "%s", "config": "%s", "spool": "%s", "pid": %s}\n' \
    "${bot_roles[$i]}" "${bot_pairs[$i]}" "${bot_names[$i]}" "${bot_urls[$i]}" \
    "$PWD/$live/${bot_names[$i]}.toml" "${spools[$i]}" "${pids[$((i + 1))]}"
done)
BOTS_JSON=$bots_json python3 - "$live/product.json" <<PY
import json, os, sys
json.dump({
    "store": "$store", "ui": "$store/ui/", "tenant": "$tenant", "ingestKey": "$ingest_key",
    "adminToken": "$admin", "supervisorToken": "$supervisor",
    "storeConfig": "$PWD/$live/store/recorder.toml",
    "database": "$database", "storage": "$storage_kind", "pairs": $pairs,
    "bots": [json.loads(l) for l in os.environ["BOTS_JSON"].splitlines()],
    "daemonPid": ${pids[0]}, "runPid": $$, "bin": "$(cd "$bin" && pwd)",
    "azuritePort": ${az_port:-None}, "postgresDatabase": "$pg_db", "postgresPort": ${pg_port:-None},
}, open(sys.argv[1], "w"), indent=2)
PY
if [ "$simulate" -eq 0 ]; then
  echo "The product:        $store/ui/   (details in $live/product.json)"
  echo "  administrator:    $store/ui/#token=$admin"
  echo "  supervisor:       $store/ui/#token=$supervisor   (sam: the traders' calls only)"
  echo "Running until Ctrl-C."
  # Short sleeps: bash runs the INT/TERM trap only once the foreground command returns.
  while :; do sleep 1; done
fi
if [ "$pairs" -eq 1 ]; then
  $bin/bot-host simulate --to "$primary" --paired-to "$paired" $sim_mode --profiles "$profiles" "${scenarios[@]}"
else
  # Every pair at once against the one daemon; each run makes fresh call ids.
  sims=()
  for ((i = 0; i < ${#bot_names[@]}; i += 2)); do
    $bin/bot-host simulate --to "${bot_urls[$i]}" --paired-to "${bot_urls[$((i + 1))]}" $sim_mode \
      --profiles "$profiles" "${scenarios[@]}" >"$live/simulate-${bot_pairs[$i]}.log" 2>&1 &
    sims+=($!)
  done
  sim_failed=0
  for i in "${!sims[@]}"; do
    if ! wait "${sims[$i]}"; then sim_failed=1; fi
    echo "--- simulator, pair $((i + 1)):" >&2; tail -n 3 "$live/simulate-$((i + 1)).log" >&2
  done
  [ "$sim_failed" -eq 0 ] || { echo "run.sh: a simulator run failed (see $live/simulate-*.log)" >&2; exit 1; }
fi

echo "== waiting for every recording to be uploaded, verified and indexed" >&2
for _ in $(seq 240); do
  sealed=$(for sp in "${spools[@]}"; do find "$sp/sealed" -mindepth 1 -maxdepth 1 2>/dev/null; done | wc -l)
  busy=$(api GET "/api/v1/interactions?mediaStatus=Recording&mediaStatus=Pending&pageSize=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')
  [ "$sealed" -eq 0 ] && [ "$busy" -eq 0 ] && break
  sleep 0.5
done
total=$(api GET "/api/v1/interactions?pageSize=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')
available=$(api GET "/api/v1/interactions?mediaStatus=Available&pageSize=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')
echo "interactions in the store: $total, available: $available; still in the spools: $sealed" >&2
echo "== recorder-daemon verify (every stored recording, both storages)" >&2
if [ "$storage_kind" = azure ]; then
  # What Azurite holds, downloaded object by object through the daemon's storage client.
  stored_dirs=()
  for name in azure azure-geo; do
    rm -rf "$live/fetched/$name"
    $bin/recorder-daemon fetch --config "$live/store/recorder.toml" --storage "$name" --out "$live/fetched/$name" >&2
    stored_dirs+=("$live/fetched/$name")
  done
else
  stored_dirs=("$live/store/storage" "$live/store/storage-local-geo")
fi
mapfile -t stored < <(find "${stored_dirs[@]}" -name manifest.json -not -path '*/merged/*' -printf '%h\n' 2>/dev/null)
$bin/recorder-daemon verify "${stored[@]}" | tail -n 3
alarms=$(api GET /api/v1/alarms | python3 -c 'import json,sys; a=json.load(sys.stdin); print(len(a) if isinstance(a, list) else len(a.get("items", [])))')
echo "active alarms: $alarms (Settings > Alarms in the UI)" >&2
echo "{\"interactions\": $total, \"available\": $available, \"inSpools\": $sealed, \"alarms\": $alarms}" >"$live/stored.json"

echo
echo "Replayed recording: $out/   (one .ogg per participant, mixed.ogg, segments.json, meta.json)"
echo "The product:        $store/ui/"
echo "  administrator:    $store/ui/#token=$admin"
echo "  supervisor:       $store/ui/#token=$supervisor   (sam: the traders' calls only)"
echo "Storage:            $live/store/storage/ (+ geo copy in storage-local-geo/), metadata in $live/store/store.db"
echo "Logs:               $live/store.log, $live/primary.log, $live/paired.log"
if [ "$wait_for_ctrl_c" -eq 1 ]; then
  echo "Running until Ctrl-C."
  # Short sleeps: bash runs the INT/TERM trap only once the foreground command returns.
  while :; do sleep 1; done
fi
