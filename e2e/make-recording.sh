#!/usr/bin/env bash
# Writes a three-speaker (plus one short fourth) meeting recording as bot-host seals one:
# mixed.ogg (Ogg Opus, 48 kHz mono) and segments.json (who spoke when), into $1.
# Each turn is real speech synthesised by espeak-ng in its own voice; the turns are laid end
# to end with short pauses, so every segment boundary is known exactly from the clip lengths.
set -euo pipefail
out=$1
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

turns=(
  "Alice Archer|en-us+f3|Good morning everyone, let us start the quarterly review."
  "Bob Baker|en-gb|Thanks Alice. Sales grew by twelve percent this quarter."
  "Carol Chen|en-us+f5|Support tickets went down, and response times improved."
  "Alice Archer|en-us+f3|Great work. Bob, what about the new accounts?"
  "Bob Baker|en-gb|We signed four new accounts in the north region."
  "Carol Chen|en-us+f5|I will send the support figures after the call."
  "Dave Diaz|en-us+m3|Thank you, bye."
)
gap=0.4
sox -n -r 48000 -c 1 -b 16 "$work/gap.wav" trim 0 "$gap"
parts=("$work/gap.wav")
segs="["
t=$gap
i=0
for turn in "${turns[@]}"; do
  IFS='|' read -r who voice text <<<"$turn"
  espeak-ng -v "$voice" -s 165 -w "$work/raw$i.wav" "$text"
  sox "$work/raw$i.wav" -r 48000 -c 1 -b 16 "$work/t$i.wav"
  len=$(soxi -D "$work/t$i.wav")
  end=$(python3 -c "print(round($t + $len, 3))")
  [ "$i" -gt 0 ] && segs+=","
  segs+=$(python3 -c "import json;print(json.dumps({'participant':'$who','start_ms':round($t*1000,3),'end_ms':round($end*1000,3)}))")
  parts+=("$work/t$i.wav" "$work/gap.wav")
  t=$(python3 -c "print(round($end + $gap, 3))")
  i=$((i + 1))
done
segs+="]"
sox "${parts[@]}" -b 16 "$work/mix.wav"
opusenc --quiet --bitrate 32 "$work/mix.wav" "$out/mixed.ogg"
python3 -c "import json,sys;json.dump(json.loads(sys.argv[1]),open(sys.argv[2],'w'),indent=2)" "$segs" "$out/segments.json"
