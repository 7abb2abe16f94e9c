# bench/common.sh — sourced by the bench scripts (bash): the median of a column of numbers,
# a JSON field of stdin, and bench_dir NAME: a temporary directory in $DIR for one daemon
# (its pid in $PID, set by the script), both cleaned up on exit.
PY=${PY:-/usr/bin/python3}

# median of the numbers on stdin ("nan" when there are none)
median() { sort -g | awk '{a[NR]=$1} END {if (NR) print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2); else print "nan"}'; }

# json_field '["id"]' < body: that field of the JSON document on stdin
json_field() { $PY -c "import sys, json; print(json.load(sys.stdin)$1)"; }

bench_cleanup() {
    [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$DIR"
}

bench_dir() {
    DIR=$(mktemp -d "${TMPDIR:-/tmp}/traind-$1-XXXXXX")
    PID=
    trap bench_cleanup EXIT
}

# bench_daemon BUILD_DIR CONFIG_TEXT: starts $BUILD_DIR/traind on a free loopback port with
# CONFIG_TEXT as its config file, state in $DIR/state; sets PID, PORT and URL. Returns 1
# (with the daemon's log on stdout) if it does not listen within 10 s.
bench_daemon() {
    printf '%b' "$2" >"$DIR/traind.conf"
    "$1/traind" --config "$DIR/traind.conf" --listen 127.0.0.1:0 --state-dir "$DIR/state" \
        >"$DIR/log" 2>&1 &
    PID=$!
    PORT=
    for _ in $(seq 100); do
        PORT=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$DIR/log" | head -1 | cut -d: -f2)
        [ -n "$PORT" ] && break
        sleep 0.1
    done
    [ -n "$PORT" ] || { echo "the daemon did not start:"; cat "$DIR/log"; return 1; }
    URL=http://127.0.0.1:$PORT
}
