#!/usr/bin/env bash
# make bench: the BENCH.md workloads W1-W11, traind beside its peer from the same run. The peers are bench/peers/*.py (the workloads of BENCH.md in PyTorch and
# scikit-learn); they need /usr/bin/python3 with python3-torch / python3-sklearn; without them
# traind's figure is printed alone. Benchmarks never fail the build on a slow figure.
# Usage: bench/run.sh BUILD_DIR   (REPEAT=n runs each side n times and takes the median)
set -u
B=${1:-build}
REPEAT=${REPEAT:-3}
PEERS=$(cd "$(dirname "$0")/peers" && pwd)
PY=/usr/bin/python3
have_torch=0
$PY -c 'import torch' 2>/dev/null && have_torch=1
have_sklearn=0
$PY -c 'import sklearn' 2>/dev/null && have_sklearn=1

. "$(dirname "$0")/common.sh" # median, json_field

# run N times: a command whose output contains "<x> ms/epoch"; prints the median x
ms_per_epoch() {
    for _ in $(seq "$REPEAT"); do
        "$@" 2>/dev/null | grep -o '[0-9.]* ms/epoch' | head -1 | cut -d' ' -f1
    done | median
}

# the same for "<x> ms/iter" (the first such figure of the output), or the figure after
# a given label ("all 20 iterations <x> ms/iter")
ms_per_iter() {
    for _ in $(seq "$REPEAT"); do
        "$@" 2>/dev/null | grep -o '[0-9.]* ms/iter' | head -1 | cut -d' ' -f1
    done | median
}
ms_per_iter_all() {
    for _ in $(seq "$REPEAT"); do
        "$@" 2>/dev/null | grep -o 'iterations [0-9.]* ms/iter' | head -1 | cut -d' ' -f2
    done | median
}

row() { # id, what, traind ms, peer ms, target text
    local ratio="n/a"
    if [ "$4" != "n/a" ] && [ "$4" != "nan" ]; then
        ratio=$(awk -v a="$3" -v b="$4" 'BEGIN {printf "%.1fx", b / a}')
    fi
    printf '%-4s %-44s %10s %12s %8s   %s\n' "$1" "$2" "$3" "$4" "$ratio" "$5"
}

printf '%-4s %-44s %10s %12s %8s   %s\n' id workload "traind ms" "peer ms" "speedup" target
peer() { if [ $have_torch = 1 ]; then ms_per_epoch $PY "$PEERS/$@"; else echo n/a; fi; }

t=$(ms_per_epoch "$B/bench/bench_softmax" gd 100000 256 10 20)
p=$(peer softmax.py gd 100000 256 10 20)
row W1 "softmax full-batch GD, 100000x256, K=10 /epoch" "$t" "$p" ">= 6x PyTorch"

t=$(ms_per_epoch "$B/bench/bench_softmax" adam 100000 256 10 2)
p=$(peer softmax.py adam 100000 256 10 2)
row W2 "softmax Adam batch 256, 100000x256 /epoch" "$t" "$p" ">= 10x PyTorch"

# W3: scikit-learn reports (whole fit incl. its k-means init) / iterations; traind's W3 row
# is the median EM iteration, W3+ the whole fit incl. k-means init / iterations.
if [ $have_sklearn = 1 ]; then
    p=$(ms_per_iter $PY "$PEERS/gmm.py" 100000 16 10 20)
else
    p=n/a
fi
t=$(ms_per_iter "$B/bench/bench_gmm" 100000 16 10 20)
row W3 "gmm full cov EM, 100000x16, M=10 /iteration" "$t" "$p" ">= 10x scikit-learn"
t=$(ms_per_iter_all "$B/bench/bench_gmm" 100000 16 10 20)
row W3+ "  same, whole fit incl. k-means init / 20" "$t" "$p" "(like the peer's figure)"

# W4: embed_gmm. One set of runs per side gives both figures: the median ms/iteration
# (traind: median of iterations 2..100, iteration 1 also runs the k-means++ init; the peer:
# its mean) and the flatness ratio, mean of the last 10% of iterations / first 10%.
w4_runs() { for _ in $(seq "$REPEAT"); do "$@" 2>/dev/null; done; }
flat() { grep -o 'first [0-9]*: [0-9.]* ms, last [0-9]*: [0-9.]* ms' | awk '{printf "%.3f\n", $7 / $3}' | median; }
w4t=$(w4_runs "$B/bench/bench_embed" 10000 64 128 16 10 512 100)
t=$(echo "$w4t" | grep -o 'median [0-9.]* ms/iter' | awk '{print $2}' | median)
tr=$(echo "$w4t" | flat)
if [ $have_torch = 1 ]; then
    w4p=$(w4_runs $PY "$PEERS/embed_gmm.py" 10000 64 128 16 10 512 100)
    p=$(echo "$w4p" | grep -o '[0-9.]* ms/iter' | cut -d' ' -f1 | median)
    pr=$(echo "$w4p" | flat)
else
    p=n/a pr=n/a
fi
row W4 "embed_gmm 10000x64-128-16 M=10 P=512 /iter" "$t" "$p" ">= 10x PyTorch"
printf '%-4s %-44s %10s %12s %8s   %s\n' W4r "  iteration time, last 10% / first 10%" "$tr" "$pr" "" \
    "<= 1.1 (flat)"

t=$(ms_per_epoch "$B/bench/bench_mlp" 60000 784 256 128 10 128 1)
p=$(peer mlp.py 60000 784 256 128 10 128 1)
row W7 "mlp 784-256-128-10 ReLU, Adam b128, 60000 /epoch" "$t" "$p" ">= 3x PyTorch"

"$(dirname "$0")/http.sh" "$B" # W6 and W5: the HTTP edge (its own peer: Python json + numpy)

# W8 and W9: small data end to end over HTTP (bench/small.py, a fresh daemon per run);
# W8's peer is the 10-line PyTorch loop on the same data (peers/softmax_small.py)
med_of() { grep -o "median [0-9.]* $1" | head -1 | cut -d' ' -f2; }
t=$($PY "$(dirname "$0")/small.py" w8 "$B/traind" "$REPEAT" 2>/dev/null | med_of ms/job)
if [ $have_torch = 1 ]; then
    p=$($PY "$PEERS/softmax_small.py" "$REPEAT" 2>/dev/null | med_of ms/job)
else
    p=n/a
fi
row W8 "softmax GD 150x4 K=3, 10000 epochs, POST->done ms" "${t:-nan}" "${p:-nan}" ">= 5x PyTorch"
t=$($PY "$(dirname "$0")/small.py" w9 "$B/traind" "$REPEAT" 2>/dev/null | med_of jobs/s)
printf '%-4s %-44s %10s %12s %8s   %s
' W9 "400 one-epoch jobs, 4 clients: jobs/s" "${t:-nan}" "—" "" \
    ">= 1000 jobs/s"

"$(dirname "$0")/npy_w10.sh" "$B" # W10: a 400 MB .npy upload beside cp + fsync
"$(dirname "$0")/mem_w11.sh" "$B" # W11: 4 jobs on one 95 MiB dataset, anonymous memory

[ $have_torch = 1 ] || echo "(peers not run: /usr/bin/python3 lacks torch; apt-get install python3-torch python3-sklearn)"
[ $have_sklearn = 1 ] || echo "(W3 peer not run: /usr/bin/python3 lacks sklearn; apt-get install python3-sklearn)"
echo "medians of $REPEAT runs each; 2-core machine, shared and noisy: compare the ratio, not the absolute times"
