#!/usr/bin/env bash
# Upload benchmark of the Azure Blob backend against Azurite on loopback (docs/azure.md).
#   bash scripts/bench-azure.sh [SIZES [bench-azure options]]   (SIZES default 1M,50M)
# Starts Azurite, mints a container SAS, creates the test files, PUTs each file with
# `curl -T` (one Put Blob: the ceiling), runs `recorder-daemon bench-azure` on the same files
# and SAS URL, prints both, stops Azurite. Files live in a temporary folder, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES="${1:-1M,50M}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
# BENCH_PROFILE=dev reuses the test build (dependencies are optimised there too).
if [ "${BENCH_PROFILE:-release}" = dev ]; then
  cargo build --locked -q -p recorder-daemon
  BIN="$CARGO_TARGET_DIR/debug/recorder-daemon"
else
  cargo build --release --locked -q -p recorder-daemon
  BIN="$CARGO_TARGET_DIR/release/recorder-daemon"
fi

PORT="$(bash scripts/azurite.sh start)"
DATA="$(mktemp -d -t bench-azure.XXXXXX)"
cleanup() { bash scripts/azurite.sh stop "$PORT" || true; rm -rf "$DATA"; }
trap cleanup EXIT

SAS="$("$BIN" bench-azure --emulator "http://127.0.0.1:$PORT/devstoreaccount1" --mint-sas)"
BASE="${SAS%%\?*}"
QUERY="${SAS#*\?}"

bytes() {
  local n="${1%[KkMmGg]}"
  case "$1" in
    *[Kk]) echo $((n << 10)) ;; *[Mm]) echo $((n << 20)) ;; *[Gg]) echo $((n << 30)) ;; *) echo "$n" ;;
  esac
}

echo "== curl -T (one Put Blob per file)"
IFS=, read -r -a list <<<"$SIZES"
for s in "${list[@]}"; do
  f="$DATA/$s.bin"
  head -c "$(bytes "$s")" /dev/urandom >"$f"
  # Best of 3 (1 for files of 100 MiB and more).
  runs=3; [ "$(bytes "$s")" -ge $((100 << 20)) ] && runs=1
  best=0
  for i in $(seq 1 "$runs"); do
    speed="$(curl -sS -f -o /dev/null -T "$f" -H "x-ms-blob-type: BlockBlob" \
      -w '%{speed_upload}' "$BASE/curl-$s-$i.bin?$QUERY")"
    best="$(python3 -c "print(max($best, $speed))")"
  done
  python3 -c "print('curl $s: %.1f MiB/s (best of $runs)' % ($best / 1048576))"
done

echo "== recorder-daemon bench-azure"
"$BIN" bench-azure --sas-url "$SAS" --sizes "$SIZES" --dir "$DATA" "${@:2}"
