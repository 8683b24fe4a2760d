#!/usr/bin/env bash
# The main job: record a captured SRTP call end to end on the embedded defaults, then let
# independent tools (opusinfo, ogginfo) judge the files.
#   scripts/run.sh [CAPTURE [--srtp-key KEY]...]   (default: the committed srtp-80 fixture)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
cargo build --release --locked -q -p bot-host

out=out/demo
rm -rf "$out"
if [ $# -gt 0 ]; then
  capture=$1; shift
  args=("$@")
else
  capture=fixtures/calls/srtp-80.pcap
  key=$(sed -n 's/.*"srtp_key": *"\([^"]*\)".*/\1/p' fixtures/calls/srtp-80.truth.json | head -n1)
  args=(--srtp-key "$key")
fi
echo "recording $capture" >&2
target/release/bot-host replay "$capture" --out "$out" "${args[@]}"
for f in "$out"/*.ogg; do
  echo "--- opusinfo $f" >&2
  opusinfo "$f" | sed -n '/Playback length/p;/Pre-skip/p;/WARNING/p'
  ogginfo "$f" | grep -iE 'warning|error' || true
done
echo "Recording written to $out/: one .ogg per participant, mixed.ogg (everyone), segments.json (who spoke when), meta.json. Play with any browser or: opusdec $out/mixed.ogg - | aplay" >&2
