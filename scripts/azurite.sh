#!/usr/bin/env bash
# Azurite, the Azure Storage emulator (npm package `azurite`), for the Azure backend's tests
# (recorder-daemon/tests/azurite.rs) and the upload benchmark (scripts/bench-azure.sh).
#
#   azurite.sh install        install into $AZURITE_HOME (default ~/.cache/recorder-azurite)
#                             when missing; needs node + npm (Debian: apt-get install nodejs npm)
#   azurite.sh bin            print the path of azurite-blob
#   azurite.sh start [PORT]   start the Blob service on 127.0.0.1:PORT (default: a free port)
#                             with a temporary data folder; prints the port
#   azurite.sh stop PORT      stop the Azurite started on PORT and remove its data folder
set -euo pipefail

AZURITE_HOME="${AZURITE_HOME:-$HOME/.cache/recorder-azurite}"
BIN="$AZURITE_HOME/node_modules/.bin/azurite-blob"
RUN="$AZURITE_HOME/run"

install() {
  if [ -x "$BIN" ]; then return 0; fi
  if ! command -v npm >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
      echo "azurite: installing nodejs + npm" >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y nodejs npm >&2 \
        || { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y nodejs npm >&2; }
    else
      echo "azurite: npm is missing; install node + npm and rerun" >&2
      exit 1
    fi
  fi
  echo "azurite: npm install azurite into $AZURITE_HOME" >&2
  mkdir -p "$AZURITE_HOME"
  npm install --prefix "$AZURITE_HOME" --no-audit --no-fund azurite >&2
  [ -x "$BIN" ] || { echo "azurite: $BIN missing after npm install" >&2; exit 1; }
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start() {
  install
  local port="${1:-$(free_port)}"
  mkdir -p "$RUN"
  local dir
  dir="$(mktemp -d -t azurite-data.XXXXXX)"
  "$BIN" --blobHost 127.0.0.1 --blobPort "$port" --location "$dir" \
    --skipApiVersionCheck --loose >"$dir/azurite.log" 2>&1 &
  local pid=$!
  echo "$pid $dir" >"$RUN/$port"
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      cat "$dir/azurite.log" >&2
      rm -rf "$dir" "$RUN/$port"
      echo "azurite: exited before listening" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "azurite: not listening on $port after 30 s" >&2
  stop "$port"
  exit 1
}

stop() {
  local port="$1"
  [ -f "$RUN/$port" ] || { echo "azurite: nothing started on $port" >&2; exit 1; }
  local pid dir
  read -r pid dir <"$RUN/$port"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  case "$dir" in */azurite-data.*) rm -rf "$dir" ;; esac
  rm -f "$RUN/$port"
}

case "${1:-}" in
  install) install ;;
  bin) install; echo "$BIN" ;;
  start) shift; start "$@" ;;
  stop) shift; [ $# -eq 1 ] || { echo "usage: $0 stop PORT" >&2; exit 2; }; stop "$1" ;;
  *) echo "usage: $0 install | bin | start [PORT] | stop PORT" >&2; exit 2 ;;
esac
