#!/usr/bin/env bash
# A throwaway PostgreSQL for the tests: its own data directory, listening on
# one address (loopback by default), trust authentication for that address's
# subnet, fsync on (the store's durability is tested).
#
#   tests/scripts/postgres.sh start DIR [PORT [LISTEN]]   prints the admin URL
#   tests/scripts/postgres.sh stop DIR
#
# Run as root, the server runs as the `postgres` user (initdb refuses root).
# Needs Debian's postgresql package (initdb, pg_ctl).
set -euo pipefail
cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR [PORT [LISTEN]]" >&2; exit 2; }
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bin/initdb" ] || { echo "error: PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 2; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case $cmd in
  start)
    port=${3:-55432}; listen=${4:-127.0.0.1}
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    if [ ! -f "$dir/PG_VERSION" ]; then
      as_pg "$bin/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 >"$dir.initdb.log" 2>&1 ||
        { cat "$dir.initdb.log" >&2; exit 1; }
      # Hosts on the listening address's own subnet (the test's namespaces).
      echo "host all all samenet trust" >>"$dir/pg_hba.conf"
    fi
    as_pg "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
      -o "-h $listen -p $port -k $dir -c max_connections=200 -c fsync=on" start >/dev/null ||
      { cat "$dir/server.log" >&2; exit 1; }
    echo "postgres://postgres@$listen:$port/postgres"
    ;;
  stop)
    as_pg "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null
    ;;
  *) echo "usage: $0 start|stop DIR [PORT [LISTEN]]" >&2; exit 2 ;;
esac
