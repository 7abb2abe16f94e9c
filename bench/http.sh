#!/usr/bin/env bash
# bench/http.sh BUILD_DIR — the HTTP workloads of BENCH.md, called by bench/run.sh:
#   W6  POST /v1/datasets of a 20000 x 256 JSON body as Python's json.dumps writes it
#       (made once with /usr/bin/python3, kept in BUILD_DIR/bench/w6.json), end to end
#       with curl: MB/s, and the daemon's peak memory growth (VmHWM after - before);
#       beside the peer: Python json.loads + numpy float32 of the same file, this run.
#   W5  wrk -t2 -c64 -d10s on GET /v1/jobs/{id}: requests/s, p99, errors; then the same
#       while a long softmax job (full-batch GD on the W6 dataset) trains on every core.
# REPEAT=n (default 3) runs of each; medians are printed. Needs curl and wrk
# (apt-get install wrk); without wrk the W5 rows say so.
set -u
B=${1:-build}
REPEAT=${REPEAT:-3}
W5_SECONDS=${W5_SECONDS:-10}
PY=/usr/bin/python3
. "$(dirname "$0")/common.sh"
bench_dir bench

row() { # id, what, traind, peer, ratio, target
    printf '%-4s %-44s %10s %12s %8s   %s\n' "$1" "$2" "$3" "$4" "$5" "$6"
}
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$PID/status"; }

# ---- the daemon -----------------------------------------------------------------------
bench_daemon "$B" '' || { echo "W5/W6: not run"; exit 0; }

# ---- W6 -------------------------------------------------------------------------------
BODY=$B/bench/w6.json
if [ ! -s "$BODY" ]; then
    mkdir -p "$B/bench"
    $PY - "$BODY" <<'EOF'
import json, random, sys
random.seed(0)
N, D = 20000, 256
X = [[random.random() for _ in range(D)] for _ in range(N)]
y = [random.randrange(10) for _ in range(N)]
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(json.dumps({"X": X, "y": y}))
EOF
    mv "$BODY.tmp" "$BODY"
fi
BYTES=$(stat -c %s "$BODY")
MB=$(awk -v b="$BYTES" 'BEGIN {printf "%.0f", b / 1e6}')
before=$(hwm_kb)
DS=
for _ in $(seq "$REPEAT"); do
    out=$(curl -s -o "$DIR/resp" -w '%{time_total} %{http_code}' -H 'Content-Type: application/json' \
          --data-binary @"$BODY" "$URL/v1/datasets")
    if [ "${out#* }" = 201 ]; then
        DS=$(json_field '["id"]' <"$DIR/resp")
        awk -v b="$BYTES" -v t="${out% *}" 'BEGIN {printf "%.0f\n", b / t / 1e6}'
    fi
done >"$DIR/w6"
t=$(median <"$DIR/w6")
grew=$(awk -v a="$(hwm_kb)" -v b="$before" 'BEGIN {printf "%.1f", (a - b) / 1024}')
matrix=$(awk 'BEGIN {printf "%.1f", 20000 * 256 * 4 / 1048576}')
limit=$(awk -v m="$matrix" 'BEGIN {printf "%.1f", m + 64}')
if $PY -c 'import numpy' 2>/dev/null; then
    for _ in $(seq "$REPEAT"); do
        $PY - "$BODY" <<'EOF'
import json, resource, sys, time
import numpy as np
text = open(sys.argv[1]).read()
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
d = json.loads(text)
X = np.asarray(d["X"], dtype=np.float32)
y = np.asarray(d["y"], dtype=np.int32)
t = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{len(text) / t / 1e6:.0f} {rss / 1024:.0f} {(rss - rss0) / 1024:.0f}")
EOF
    done >"$DIR/peer"
    p=$(cut -d' ' -f1 "$DIR/peer" | median)
    ppeak=$(cut -d' ' -f2 "$DIR/peer" | median)
    pgrew=$(cut -d' ' -f3 "$DIR/peer" | median)
    ratio=$(awk -v a="$t" -v b="$p" 'BEGIN {printf "%.1fx", a / b}')
else
    p=n/a ppeak=n/a pgrew=n/a ratio=n/a
fi
row W6 "POST /v1/datasets 20000x256 JSON (${MB} MB)" "$t MB/s" "$p MB/s" "$ratio" \
    ">= 300 MB/s end to end"
row "" "  daemon peak RSS growth (VmHWM after - before)" "+$grew MiB" "$ppeak MiB" "" \
    "<= $limit MiB (float32 X $matrix + 64); peer: peak RSS, +$pgrew past its text"

# ---- W5 -------------------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
    row W5 "GET /v1/jobs/{id}, wrk -t2 -c64" "n/a" "" "" "wrk missing: apt-get install wrk"
    exit 0
fi
# wrk's summary: "<req/s> <p99 ms> <errors>"
wrk_run() {
    wrk -t2 -c64 -d"${W5_SECONDS}s" --latency "$1" 2>/dev/null | awk '
        /Requests\/sec/ {rps = $2}
        /^ +99%/ {v = $2; u = v; sub(/[a-z]+$/, "", v); sub(/^[0-9.]+/, "", u);
                  p99 = (u == "us") ? v / 1000 : (u == "s") ? v * 1000 : v}
        /Socket errors/ {gsub(/,/, ""); err += $4 + $6 + $8 + $10}
        /Non-2xx/ {err += $5}
        END {printf "%.0f %.2f %d\n", rps, p99, err}'
}
w5_rows() { # id, what, file of runs
    local rps p99 err
    rps=$(cut -d' ' -f1 "$3" | median)
    p99=$(cut -d' ' -f2 "$3" | median)
    err=$(awk '{s += $3} END {print s + 0}' "$3")
    row "$1" "$2" "$rps/s" "" "" ">= 20000 req/s"
    row "" "  p99 latency; errors (all runs)" "${p99} ms" "" "" "<= 20 ms; $err errors (target 0)"
}
small=$(curl -s -H 'Content-Type: application/json' -d '{"X":[[1,2],[3,4],[5,6]],"y":[0,1,0]}' \
        "$URL/v1/datasets" | json_field '["id"]')
JOB=$(curl -s -H 'Content-Type: application/json' \
      -d "{\"model\":\"softmax\",\"dataset\":\"$small\",\"hyperparameters\":{\"epochs\":5}}" \
      "$URL/v1/jobs" | json_field '["id"]')
for _ in $(seq 50); do
    [ "$(curl -s "$URL/v1/jobs/$JOB" | json_field '["state"]')" = succeeded ] && break
    sleep 0.1
done
for _ in $(seq "$REPEAT"); do wrk_run "$URL/v1/jobs/$JOB"; done >"$DIR/w5"
w5_rows W5 "GET /v1/jobs/{id}, wrk -t2 -c64 -d${W5_SECONDS}s" "$DIR/w5"

if [ -n "$DS" ]; then
    LONG=$(curl -s -H 'Content-Type: application/json' \
           -d "{\"model\":\"softmax\",\"dataset\":\"$DS\",\"hyperparameters\":{\"epochs\":1000000}}" \
           "$URL/v1/jobs" | json_field '["id"]')
    sleep 1
    e0=$(curl -s "$URL/v1/jobs/$LONG" | json_field '["progress"]["epoch"]')
    for _ in $(seq "$REPEAT"); do wrk_run "$URL/v1/jobs/$LONG"; done >"$DIR/w5t"
    e1=$(curl -s "$URL/v1/jobs/$LONG" | json_field '["progress"]["epoch"]')
    state=$(curl -s "$URL/v1/jobs/$LONG" | json_field '["state"]')
    curl -s -X POST "$URL/v1/jobs/$LONG/cancel" >/dev/null
    w5_rows W5t "  same while softmax GD 20000x256 trains" "$DIR/w5t"
    echo "     (the job was $state on every core and ran $((e1 - e0)) epochs meanwhile)"
fi
