#!/usr/bin/env bash
# Installs what the project needs beyond the Rust toolchain, only when it is missing.
#   libopus-dev + pkg-config : real libopus for audiopus (decode checks, fixture encoding)
#   opus-tools, vorbis-tools : opusinfo/opusdec/ogginfo, the independent checkers of our files
#   espeak-ng, sox           : speech with known turn boundaries for the fixtures
#   chromium                 : a real browser as WHIP sender (bot-host/tests/whip.rs, whip_host.rs;
#                              those tests skip without /usr/bin/chromium)
# Extra packages can be asked for: scripts/setup.sh janus-tools
set -euo pipefail

need=()
have_cmd() { command -v "$1" >/dev/null 2>&1; }
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }

have_cmd pkg-config || need+=(pkg-config)
{ have_cmd pkg-config && pkg-config --exists opus; } || need+=(libopus-dev)
have_cmd opusinfo || need+=(opus-tools)
have_cmd ogginfo || need+=(vorbis-tools)
have_cmd espeak-ng || need+=(espeak-ng)
have_cmd sox || need+=(sox)
have_cmd chromium || need+=(chromium)
for extra in "$@"; do have_pkg "$extra" || need+=("$extra"); done

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi

echo "setup: installing ${need[*]}" >&2
if ! have_cmd apt-get; then
  echo "setup: apt-get not found. Install these Debian/Ubuntu packages (or your system's equivalents) and rerun: ${need[*]}" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if have_cmd sudo; then SUDO="sudo"; else
    echo "setup: not root and no sudo. As root run: apt-get install -y ${need[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
# Package lists may be missing on a fresh machine; refresh once if an install fails.
if ! $SUDO apt-get install -y -qq "${need[@]}" >/dev/null 2>&1; then
  $SUDO apt-get update -qq >/dev/null 2>&1 || true
  if ! $SUDO apt-get install -y -qq "${need[@]}" >/dev/null; then
    echo "setup: could not install ${need[*]} with apt-get; install them by hand and rerun" >&2
    exit 1
  fi
fi
echo "setup: done" >&2
