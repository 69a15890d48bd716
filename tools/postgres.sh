#!/usr/bin/env bash
# A throwaway PostgreSQL on loopback, for the registry at scale and its tests.
#
#   tools/postgres.sh run -- COMMAND...   start a server, run COMMAND with AGORA_POSTGRES_URL set, then stop the
#                                         server and delete its data (whatever COMMAND's exit status)
#
# The server listens on 127.0.0.1:${AGORA_POSTGRES_PORT:-55432} only, trusts local connections and keeps its data in
# a fresh temporary folder. Debian's postgresql package is installed when missing and we are root; as another user
# the server binaries must already be installed. Exit status 3: no server could be started (COMMAND did not run).
set -euo pipefail

PORT=${AGORA_POSTGRES_PORT:-55432}

find_bin() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1
}

as_owner() {  # run a server command as the data folder's owner (postgres refuses to run as root)
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi
}

start() {
  local bin
  bin=$(find_bin)
  if [ -z "$bin" ]; then
    [ "$(id -u)" = 0 ] || { echo "postgres: not installed and not root (apt-get install postgresql)" >&2; return 1; }
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    bin=$(find_bin)
  fi
  DATA=$(mktemp -d /tmp/agora-pg.XXXXXX)
  [ "$(id -u)" = 0 ] && chown postgres "$DATA"
  as_owner "$bin/initdb -D $DATA -A trust -U postgres" >/dev/null
  as_owner "$bin/pg_ctl -D $DATA -l $DATA/log -w -o '-p $PORT -k /tmp -c listen_addresses=127.0.0.1' start" >/dev/null
  STOP="$bin/pg_ctl -D $DATA -m fast stop"
  export AGORA_POSTGRES_URL="postgresql+asyncpg://postgres@127.0.0.1:$PORT/postgres"
  echo "postgres: PostgreSQL on 127.0.0.1:$PORT ($AGORA_POSTGRES_URL)" >&2
}

stop() {
  as_owner "$STOP" >/dev/null 2>&1 || true
  rm -rf "$DATA"
}

case "${1:-}" in
  run)
    shift
    [ "${1:-}" = "--" ] && shift
    [ $# -gt 0 ] || { echo "usage: tools/postgres.sh run -- COMMAND..." >&2; exit 2; }
    start || exit 3
    trap stop EXIT
    "$@"
    ;;
  *)
    echo "usage: tools/postgres.sh run -- COMMAND..." >&2
    exit 2
    ;;
esac
