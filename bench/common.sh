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
