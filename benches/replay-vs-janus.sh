#!/usr/bin/env bash
# Whole-process comparison: `bot-host replay` of a one-hour single-speaker capture (180,000
# packets) against janus-pp-rec remuxing the same packets from a Janus .mjr, in one run.
#   benches/replay-vs-janus.sh [MINUTES]      (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh janus-tools hyperfine
export LONG_MINUTES=${1:-60}
dir=target/long
mkdir -p "$dir"
bash fixtures/generate.sh --long "$dir" >/dev/null
cargo build --release --locked -q -p bot-host
hyperfine -N --warmup 1 --runs 10 --export-json "$dir/hyperfine.json" \
  -n bot-host "target/release/bot-host replay $dir/long.pcap --out $dir/ours" \
  -n janus-pp-rec "janus-pp-rec $dir/long.mjr $dir/janus.opus"
python3 - "$dir/hyperfine.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
ours, janus = r["bot-host"]["median"], r["janus-pp-rec"]["median"]
print(f"median: bot-host {ours*1000:.0f} ms, janus-pp-rec {janus*1000:.0f} ms: bot-host is {janus/ours:.1f}x faster")
PY
for f in "$dir"/ours/participant-1.ogg "$dir"/janus.opus; do
  echo "$f: $(opusinfo "$f" | grep -E 'Playback length' | xargs)"
done
