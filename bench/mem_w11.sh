#!/usr/bin/env bash
# bench/mem_w11.sh BUILD_DIR — W11 of BENCH.md: 4 softmax jobs (full-batch GD, 20 epochs, 4 workers)
# on one 95 MiB dataset (100000 x 250 float32 and int labels, an .npz made once with
# /usr/bin/python3 + numpy, kept in BUILD_DIR/bench/w11.npz), all submitted at once:
# the daemon's anonymous memory growth (peak RssAnon while they run, sampled every 50 ms,
# minus RssAnon after the upload; target <= 48 MiB, not a copy of the dataset per job).
# REPEAT=n (default 3) runs on one daemon; the median is printed.
set -u
B=${1:-build}
REPEAT=${REPEAT:-3}
PY=/usr/bin/python3
. "$(dirname "$0")/common.sh"
bench_dir w11
anon_kb() { awk '/^RssAnon:/ {print $2}' "/proc/$PID/status"; }

NPZ=$B/bench/w11.npz
if [ ! -s "$NPZ" ]; then
    mkdir -p "$B/bench"
    $PY -c "
import numpy as np, sys
r = np.random.default_rng(0)
X = r.standard_normal((100000, 250), dtype=np.float32)
y = (X @ r.standard_normal((250, 10), dtype=np.float32)).argmax(1).astype(np.int32)
np.savez(sys.argv[1], X=X, y=y)" "$NPZ" || exit 1
fi

# the 4 jobs run at once
bench_daemon "$B" 'max_body_mb = 1024\nworkers = 4\n' || { echo "W11: not run"; exit 1; }
out=$(curl -sS -X POST -H 'Content-Type: application/zip' -T "$NPZ" "$URL/v1/datasets")
DS=$(echo "$out" | json_field "['id']") || { echo "W11: upload failed: $out"; exit 1; }

growth=()
for _ in $(seq "$REPEAT"); do
    base=$(anon_kb) peak=$base ids=()
    for _ in 1 2 3 4; do
        ids+=("$(curl -sS -X POST -H 'Content-Type: application/json' "$URL/v1/jobs" -d \
            "{\"model\":\"softmax\",\"dataset\":\"$DS\",\"hyperparameters\":{\"epochs\":20,\"batch_size\":0}}" |
            json_field "['id']")")
    done
    while :; do
        a=$(anon_kb)
        [ "$a" -gt "$peak" ] && peak=$a
        busy=0
        for id in "${ids[@]}"; do
            s=$(curl -sS "$URL/v1/jobs/$id" | json_field "['state']")
            case $s in queued | running) busy=1 ;; esac
        done
        [ $busy = 0 ] && break
        sleep 0.05
    done
    growth+=("$(echo "($peak - $base) / 1024" | bc -l)")
done
g=$(printf '%s\n' "${growth[@]}" | median)
printf '%-4s %-44s %10.1f %12s %8s   %s\n' W11 "4 softmax jobs on one 95 MiB dataset, MiB" "$g" "—" "" \
    "anonymous memory growth <= 48 MiB"
