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
# For scripts driving the running product (scripts/e2e-main.sh, scripts/fault-drill.sh):
#   out/live/product.json  written once every process is up: URLs, tokens, pids, configs;
#   out/live/stored.json   written once the simulated calls are stored and verified (counts).
set -euo pipefail
cd "$(dirname "$0")/.."

wait_for_ctrl_c=1
sim_mode=--fast
simulate=1
while [ $# -gt 0 ]; do
  case "$1" in
    --no-wait) wait_for_ctrl_c=0 ;;
    --realtime) sim_mode=--realtime ;;
    --no-sim) simulate=0 ;;
    --help | -h) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) break ;;
  esac
  shift
done

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
primary_port=$(free_port); paired_port=$(free_port); store_port=$(free_port)
primary=http://127.0.0.1:$primary_port; paired=http://127.0.0.1:$paired_port
store=http://127.0.0.1:$store_port
cat >"$live/store/recorder.toml" <<CONF
listen = "127.0.0.1:$store_port"
data_dir = "$PWD/$live/store"
tenant_id = "$tenant"
ingest_key = "$ingest_key"
global_admins = ["admin@contoso.example"]
spool_dirs = ["$PWD/$live/primary/spool", "$PWD/$live/paired/spool"]

[[storage]]
name = "local"
kind = "local"
paired = "local-geo"

[[storage]]
name = "local-geo"
kind = "local"

[reconcile]
bot_hosts = ["$primary", "$paired"]
interval_secs = 5
grace_secs = 120
CONF

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
}
trap stop_all EXIT
trap 'echo; echo "stopping..." >&2; exit 0' INT TERM

$bin/recorder-daemon serve --config "$live/store/recorder.toml" >"$live/store.log" 2>&1 &
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

start_bot() { # role port
  local role=$1 port=$2
  cat >"$live/$role.toml" <<CONF
listen = "127.0.0.1:$port"
data_dir = "$PWD/$live/$role"
profiles = "$PWD/bot-host/sim-profiles.toml"
role = "$role"
store_url = "$store/api/v1/interactions?ingestKey=$ingest_key"
CONF
  $bin/bot-host serve --config "$live/$role.toml" >"$live/$role.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/api/info" >/dev/null && return
    sleep 0.1
  done
  cat "$live/$role.log" >&2; echo "bot-host ($role) did not start" >&2; exit 1
}
start_bot primary "$primary_port"
start_bot paired "$paired_port"
echo "store: $store   primary bot-host: $primary   paired bot-host: $paired" >&2
python3 - "$live/product.json" <<PY
import json, sys
json.dump({
    "store": "$store", "ui": "$store/ui/", "tenant": "$tenant", "ingestKey": "$ingest_key",
    "adminToken": "$admin", "supervisorToken": "$supervisor",
    "storeConfig": "$PWD/$live/store/recorder.toml",
    "bots": [
        {"role": "primary", "url": "$primary", "config": "$PWD/$live/primary.toml", "pid": ${pids[1]}},
        {"role": "paired", "url": "$paired", "config": "$PWD/$live/paired.toml", "pid": ${pids[2]}},
    ],
    "daemonPid": ${pids[0]}, "bin": "$PWD/$bin",
}, open(sys.argv[1], "w"), indent=2)
PY
if [ "$simulate" -eq 0 ]; then
  echo "The product:        $store/ui/   (details in $live/product.json)"
  echo "  administrator:    $store/ui/#token=$admin"
  echo "  supervisor:       $store/ui/#token=$supervisor   (sam: the traders' calls only)"
  echo "Running until Ctrl-C."
  while :; do sleep 3600; done
fi
$bin/bot-host simulate --to "$primary" --paired-to "$paired" $sim_mode

echo "== waiting for every recording to be uploaded, verified and indexed" >&2
for _ in $(seq 240); do
  sealed=$(find "$live"/primary/spool/sealed "$live"/paired/spool/sealed -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
  busy=$(api GET "/api/v1/interactions?mediaStatus=Recording&mediaStatus=Pending&pageSize=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')
  [ "$sealed" -eq 0 ] && [ "$busy" -eq 0 ] && break
  sleep 0.5
done
total=$(api GET "/api/v1/interactions?pageSize=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')
available=$(api GET "/api/v1/interactions?mediaStatus=Available&pageSize=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')
echo "interactions in the store: $total, available: $available; still in the spools: $sealed" >&2
echo "== recorder-daemon verify (every stored recording, both storages)" >&2
mapfile -t stored < <(find "$live/store/storage" "$live/store/storage-local-geo" -name manifest.json -not -path '*/merged/*' -printf '%h\n' 2>/dev/null)
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
  while :; do sleep 3600; done
fi
