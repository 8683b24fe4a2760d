#!/usr/bin/env bash
# Runs every cargo-fuzz target. --short: 20 s each (CI); default: 5 min each.
# Needs a nightly toolchain and cargo-fuzz; both are set up here when rustup can, otherwise
# the runs are skipped with a message (the corpora are still replayed by `cargo test`).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=300
[ "${1:-}" = "--short" ] && secs=20

if ! rustup toolchain list 2>/dev/null | grep -q nightly; then
  if ! rustup toolchain install nightly --profile minimal >/dev/null 2>&1; then
    echo "fuzz: no nightly toolchain can be had here; skipping fuzz runs" >&2
    exit 0
  fi
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked -q || { echo "fuzz: cargo-fuzz could not be installed; skipping" >&2; exit 0; }
fi
cd fuzz
# cargo-fuzz keeps its own target directory (sanitizer flags); FUZZ_TARGET_DIR moves it.
target_dir=()
[ -n "${FUZZ_TARGET_DIR:-}" ] && target_dir=(--target-dir "$FUZZ_TARGET_DIR")
for t in $(cargo +nightly fuzz list); do
  echo "fuzz: $t for ${secs}s" >&2
  mkdir -p corpus/$t
  # New inputs go to a scratch dir so the committed corpus only grows on purpose.
  scratch=$(mktemp -d)
  if ! cargo +nightly fuzz run "${target_dir[@]}" "$t" "$scratch" corpus/$t -- -max_total_time=$secs -max_len=4096 >"$scratch.log" 2>&1; then
    grep -E "panicked at|SUMMARY|Test unit written|^thread" "$scratch.log" | head -n 20 >&2
    echo "fuzz: $t FAILED; the input is in fuzz/artifacts/$t/ (add it to fuzz/corpus/$t/ with the fix)" >&2
    exit 1
  fi
  tail -n 1 "$scratch.log" >&2
  rm -rf "$scratch" "$scratch.log"
done
