#!/bin/sh
# pg_server.sh — a throwaway PostgreSQL for the tests and the bench (Debian's postgresql).
#   pg_server.sh start DIR PORT   initdb into DIR/data (user "traind", trust auth), start on
#                                 PORT with its unix socket in DIR and no TCP listener
#   pg_server.sh stop DIR         stop it (immediate) and remove DIR
# As root, the cluster runs as the unprivileged user postgres (initdb refuses root).
set -eu
cmd=$1 dir=$2
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$BIN" ] || { echo "pg_server.sh: no /usr/lib/postgresql/*/bin (make test-deps)" >&2; exit 1; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case $cmd in
start)
    port=$3
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    as_pg "$BIN/initdb" -D "$dir/data" -A trust -U traind --no-sync >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; exit 1; }
    as_pg "$BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
        -o "-p $port -k $dir -c listen_addresses='' -c fsync=off -c max_connections=300" \
        start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    ;;
stop)
    [ -d "$dir/data" ] && as_pg "$BIN/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
*) echo "usage: pg_server.sh start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
