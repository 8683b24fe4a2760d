#!/usr/bin/env bash
# Runs a command against a throw-away PostgreSQL server (docs/postgres.md, "Tests").
#   scripts/pg-test.sh                  -> cargo test -p recorder-daemon pg_
#   scripts/pg-test.sh CMD ARGS...      -> CMD ARGS... (e.g. cargo test --workspace --locked)
# Debian's server (installed when missing) runs as the `postgres` user (it refuses root) on
# 127.0.0.1 and a free port, with its data and socket in a temporary directory; the command
# sees RECORDER_TEST_PG_URL (a superuser URL: the tests create and drop their own databases).
# The server is stopped and the directory deleted on exit, whatever the command's outcome.
set -euo pipefail
cd "$(dirname "$0")/.."

find_bin() {
  local b
  for b in /usr/lib/postgresql/*/bin/"$1"; do
    [ -x "$b" ] && { echo "$b"; return 0; }
  done
  return 1
}
if ! find_bin initdb >/dev/null; then
  bash scripts/setup.sh postgresql
fi
initdb=$(find_bin initdb)
pg_ctl=$(find_bin pg_ctl)
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin postgres
  as_pg=(runuser -u postgres --)
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/recorder-pg.XXXXXX")
cleanup() {
  "${as_pg[@]}" "$pg_ctl" -D "$tmp/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
chmod 755 "$tmp"
[ ${#as_pg[@]} -eq 0 ] || chown postgres "$tmp"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
password=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
echo "$password" >"$tmp/pw"
[ ${#as_pg[@]} -eq 0 ] || chown postgres "$tmp/pw"
"${as_pg[@]}" "$initdb" -D "$tmp/data" -U recorder --pwfile="$tmp/pw" --auth=scram-sha-256 \
  -E UTF8 --locale=C.UTF-8 >"$tmp/initdb.log" 2>&1 || { cat "$tmp/initdb.log" >&2; exit 1; }
# fsync off by default: a test server's data is thrown away, crash safety is not what is
# tested (RECORDER_PG_FSYNC=on for benchmark figures).
"${as_pg[@]}" "$pg_ctl" -D "$tmp/data" -l "$tmp/server.log" -w -t 60 start \
  -o "-k $tmp -p $port -c listen_addresses=127.0.0.1 -c fsync=${RECORDER_PG_FSYNC:-off} -c max_connections=200" >/dev/null \
  || { cat "$tmp/server.log" >&2; exit 1; }

export RECORDER_TEST_PG_URL="postgres://recorder:$password@127.0.0.1:$port/postgres"
echo "pg-test: PostgreSQL $("$pg_ctl" --version | awk '{print $3}') on 127.0.0.1:$port" >&2
if [ $# -eq 0 ]; then
  set -- cargo test -p recorder-daemon pg_
fi
"$@"
