#!/usr/bin/env bash
# bench/npy_w10.sh BUILD_DIR — W10 of BENCH.md: POST /v1/datasets of a 400 MB float32 .npy
# (100000 x 1000, made once with /usr/bin/python3 + numpy, kept in BUILD_DIR/bench/w10.npy)
# with curl -T (streamed from the file; --data-binary @file would first read all of it
# into curl's memory), end to end (until the 201: written, read back for the checksum, fsynced,
# renamed, row inserted), beside the peer: copying the same file into the state_dir with
# fsync (cp, then sync of that file). Prints MB/s of each, the ratio (target >= 0.5) and
# the daemon's peak memory growth (VmHWM after - VmRSS before; target <= 128 MB).
# REPEAT=n (default 3) runs; medians. The page cache is not dropped: both sides read the
# source file from it.
set -u
B=${1:-build}
REPEAT=${REPEAT:-3}
PY=/usr/bin/python3
. "$(dirname "$0")/common.sh"
bench_dir w10
now() { date +%s.%N; }

NPY=$B/bench/w10.npy
if [ ! -s "$NPY" ]; then
    mkdir -p "$B/bench"
    $PY -c "import numpy as np, sys; np.save(sys.argv[1], np.random.default_rng(0).standard_normal((100000, 1000), dtype=np.float32))" "$NPY" || exit 1
fi
BYTES=$(stat -c %s "$NPY")
cat "$NPY" >/dev/null                     # both sides read it from the page cache

bench_daemon "$B" 'max_body_mb = 1024\n' || { echo "W10: not run"; exit 1; }
RSS0=$(awk '/^VmRSS:/ {print $2}' "/proc/$PID/status")

copy_s=() post_s=()
for i in $(seq "$REPEAT"); do
    t0=$(now)
    cp "$NPY" "$DIR/state/copy.npy" && sync "$DIR/state/copy.npy"
    t1=$(now)
    copy_s+=("$(echo "$t1 - $t0" | bc -l)")
    rm -f "$DIR/state/copy.npy"
    t0=$(now)
    out=$(curl -sS -X POST -H 'Content-Type: application/x-npy' -T "$NPY" \
          "$URL/v1/datasets")
    t1=$(now)
    id=$(echo "$out" | $PY -c "import sys, json; print(json.load(sys.stdin)['id'])") ||
        { echo "W10: upload failed: $out"; exit 1; }
    post_s+=("$(echo "$t1 - $t0" | bc -l)")
    curl -sS -X DELETE "$URL/v1/datasets/$id" >/dev/null
done
HWM=$(awk '/^VmHWM:/ {print $2}' "/proc/$PID/status")
c=$(printf '%s\n' "${copy_s[@]}" | median)
p=$(printf '%s\n' "${post_s[@]}" | median)
mb=$(echo "$BYTES / 1000000" | bc -l)
printf 'W10  POST %.0f MB .npy: %.0f MB/s (%.2f s)   copy+fsync: %.0f MB/s (%.2f s)   ratio %.2f (>= 0.5)   peak memory growth %.1f MB (<= 128)\n' \
    "$mb" "$(echo "$mb / $p" | bc -l)" "$p" "$(echo "$mb / $c" | bc -l)" "$c" \
    "$(echo "$c / $p" | bc -l)" "$(echo "($HWM - $RSS0) / 1024" | bc -l)"
