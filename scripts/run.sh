#!/usr/bin/env bash
# The main job, on the embedded defaults:
#   1. a captured SRTP call (the committed fixture) recorded end to end by `bot-host replay`;
#   2. the live bot: a primary and a paired `bot-host serve`, the simulator playing every
#      call scenario (each call type, profile rules, impairments, forks, transfers, meetings)
#      against both, then the sealed recordings checked by `recorder-daemon verify`.
# Everything lands under out/.
#   scripts/run.sh                                   (both parts)
#   scripts/run.sh CAPTURE [--srtp-key KEY]...       (replay your own capture only)
set -euo pipefail
cd "$(dirname "$0")/.."

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

echo "== 2. live: a primary and a paired bot-host, the simulator playing every scenario" >&2
live=out/live
rm -rf "$live"
mkdir -p "$live"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
start_bot() { # role -> prints its HTTP URL
  local role=$1 log=$live/$1.log
  $bin/bot-host serve --role "$role" --data-dir "$live/$role" \
    --profiles bot-host/sim-profiles.toml >"$log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    url=$(sed -n 's/.*webhook \(http:\/\/[^ ]*\)\/api\/calls.*/\1/p' "$log" | head -n1)
    [ -n "$url" ] && break
    sleep 0.1
  done
  [ -n "$url" ] || { cat "$log" >&2; echo "bot-host ($role) did not start" >&2; exit 1; }
}
start_bot primary; primary=$url
start_bot paired; paired=$url
echo "primary bot-host: $primary   paired bot-host: $paired" >&2
$bin/bot-host simulate --to "$primary" --paired-to "$paired" --fast
cleanup
pids=()
trap - EXIT

echo "== recorder-daemon verify (every sealed recording, both bots)" >&2
$bin/recorder-daemon verify "$live"/primary/spool/sealed/* "$live"/paired/spool/sealed/* | tail -n 5
echo
echo "Replayed recording: $out/   (one .ogg per participant, mixed.ogg, segments.json, meta.json)"
echo "Live recordings:    $live/primary/spool/sealed/ and $live/paired/spool/sealed/ (+ manifest.json)"
echo "Logs:               $live/primary.log, $live/paired.log"
echo "Play one:           opusdec \$(ls -d $live/primary/spool/sealed/* | head -n1)/mixed.ogg - | aplay"
