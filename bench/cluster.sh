#!/usr/bin/env bash
# bench/cluster.sh [BUILD_DIR] — issue 17's bench: jobs/s with 1, 2 and 3 daemons sharing
# one PostgreSQL store on this machine, beside one daemon on its own SQLite store (W9's
# setting). The workload is W9's: JOBS one-epoch softmax jobs on a 150 x 4 dataset,
# submitted by 4 concurrent clients (round-robin over the daemons; 429 -> retry after
# 10 ms) until every job is terminal. jobs/s = JOBS / (first submit .. last terminal).
# PostgreSQL is a throwaway cluster (tests/pg_server.sh: Debian's postgresql, fsync off,
# as in the tests); each run gets a fresh database. Each daemon: workers = WORKERS
# (default 2), lease_s = 15, checkpoint_interval_s = 30 (the defaults).
# REPEAT=n (default 3) runs of each; medians are printed.
set -u
B=${1:-build}
JOBS=${JOBS:-400}
REPEAT=${REPEAT:-3}
WORKERS=${WORKERS:-2}
PY=/usr/bin/python3
DIR=$(mktemp -d /tmp/traind-cluster-bench-XXXXXX)
PGDIR=$(mktemp -d /tmp/traind-cluster-pg-XXXXXX)
PGPORT=$((20000 + $$ % 30000))
PIDS=""
stop_daemons() {
    for p in $PIDS; do kill "$p" 2>/dev/null; done
    for p in $PIDS; do wait "$p" 2>/dev/null; done
    PIDS=""
}
cleanup() {
    stop_daemons
    tests/pg_server.sh stop "$PGDIR"
    rm -rf "$DIR"
}
trap cleanup EXIT
tests/pg_server.sh start "$PGDIR" "$PGPORT" || exit 1
. "$(dirname "$0")/common.sh"

# start_daemon NAME STORE: prints its port
start_daemon() {
    local d=$DIR/$1
    rm -rf "$d"; mkdir -p "$d"
    printf 'workers = %s\nmax_queued_jobs = 64\nnode_name = %s\n' "$WORKERS" "$1" >"$d/conf"
    [ -n "$2" ] && printf 'store = %s\n' "$2" >>"$d/conf"
    "$B/traind" --config "$d/conf" --listen 127.0.0.1:0 --state-dir "$d/state" >"$d/log" 2>&1 &
    PIDS="$PIDS $!"
    for _ in $(seq 200); do
        port=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$d/log" | head -1 | cut -d: -f2)
        [ -n "$port" ] && { echo "$port"; return; }
        sleep 0.05
    done
    echo "bench: daemon $1 did not start:" >&2; cat "$d/log" >&2; exit 1
}

# run PORT... : prints jobs/s
run() {
    $PY - "$JOBS" "$@" <<'EOF'
import json, sys, threading, time, urllib.request, urllib.error
jobs, ports = int(sys.argv[1]), [int(p) for p in sys.argv[2:]]
def call(port, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    r = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                               headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(r, timeout=60) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None
X = [[(i * 7 % 13) / 13, (i * 5 % 11) / 11, (i % 7) / 7, (i * 3 % 5) / 5] for i in range(150)]
y = [i % 3 for i in range(150)]
st, ds = call(ports[0], "POST", "/v1/datasets", {"X": X, "y": y})
assert st == 201, st
body = {"model": "softmax", "dataset": ds["id"], "hyperparameters": {"epochs": 1}}
ids, lock, n = [], threading.Lock(), [0]
def client(k):
    while True:
        with lock:
            if n[0] >= jobs:
                return
            n[0] += 1
            i = n[0]
        port = ports[i % len(ports)]
        while True:
            st, j = call(port, "POST", "/v1/jobs", body)
            if st == 202:
                with lock:
                    ids.append((port, j["id"]))
                break
            assert st == 429, st
            time.sleep(0.01)
t0 = time.time()
th = [threading.Thread(target=client, args=(k,)) for k in range(4)]
for t in th: t.start()
for t in th: t.join()
pending = list(ids)
while pending:
    port, jid = pending[-1]
    st, j = call(port, "GET", f"/v1/jobs/{jid}")
    if j["state"] in ("succeeded", "failed", "cancelled"):
        assert j["state"] == "succeeded", j
        pending.pop()
    else:
        time.sleep(0.005)
print(f"{jobs / (time.time() - t0):.0f}")
EOF
}

printf '%-40s %10s\n' "setup ($JOBS one-epoch jobs, 4 clients)" "jobs/s"
vals=""
for _ in $(seq "$REPEAT"); do
    p=$(start_daemon solo "")
    vals="$vals $(run "$p")"
    stop_daemons
done
printf '%-40s %10s\n' "1 daemon, SQLite (W9's setting)" "$(echo $vals | tr ' ' '\n' | median)"
for n in 1 2 3; do
    vals=""
    for r in $(seq "$REPEAT"); do
        db="b${n}_$r"
        psql -q "host=$PGDIR port=$PGPORT user=traind dbname=postgres" -c "CREATE DATABASE $db" || exit 1
        uri="postgresql:///$db?host=$PGDIR&port=$PGPORT&user=traind"
        ports=""
        for k in $(seq "$n"); do ports="$ports $(start_daemon "d$k" "$uri")"; done
        vals="$vals $(run $ports)"
        stop_daemons
    done
    printf '%-40s %10s\n' "$n daemon(s), one PostgreSQL" "$(echo $vals | tr ' ' '\n' | median)"
done
