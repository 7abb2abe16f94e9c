"""bench/small.py — the small-data workloads of BENCH.md, end to end over HTTP:
  W8  one softmax job, full-batch GD (lr 0.1, zero-initialised like the peer), 150 x 4,
      K=3, 10000 epochs: the time from POST /v1/jobs until GET /v1/jobs/{id} says
      succeeded (polled every 1 ms). Prints "<x> ms/job".
  W9  400 one-epoch softmax jobs on a 150 x 4 dataset, submitted by 4 concurrent clients
      (a 429 is retried at once): the time from the first submission until every job is
      terminal (polled with GET /v1/jobs?state=queued|running&limit=1). Prints
      "<x> jobs/s" and "<x> ms/job".
The data is synthetic (fixed seed), the same as the peer's (bench/peers/softmax_small.py).
Usage: python3 bench/small.py w8|w9 TRAIND_BINARY [REPEAT]
Each repeat starts a fresh daemon (workers = cores, a temporary state_dir); the median of
the repeats is printed last. Needs only the Python standard library."""
import http.client
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

N, D, K = 150, 4, 3


def dataset():
    """150 x 4, 3 classes: three Gaussian blobs (seed 0), like iris in shape."""
    rng = random.Random(0)
    centres = [[rng.gauss(0, 2) for _ in range(D)] for _ in range(K)]
    X, y = [], []
    for i in range(N):
        k = i % K
        X.append([round(centres[k][j] + rng.gauss(0, 1), 6) for j in range(D)])
        y.append(k)
    return X, y


class Daemon:
    def __init__(self, binary):
        self.dir = tempfile.mkdtemp(prefix="traind-small-")
        self.log = open(os.path.join(self.dir, "log"), "w+")
        conf = os.environ.get("TRAIND_CONF")  # optional settings, e.g. to profile
        self.proc = subprocess.Popen([binary, "--listen", "127.0.0.1:0", "--state-dir",
                                      os.path.join(self.dir, "state")] +
                                     (["--config", conf] if conf else []),
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.port = None
        for _ in range(200):
            with open(self.log.name) as f:
                m = re.search(r"listening on 127\.0\.0\.1:(\d+)", f.read())
            if m:
                self.port = int(m.group(1))
                break
            time.sleep(0.05)
        if not self.port:
            self.close()
            sys.exit("the daemon did not start")

    def conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)

    def close(self):
        self.proc.terminate()
        self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def call(c, method, path, body=None):
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    return r.status, json.loads(data) if data else None


def upload(d):
    X, y = dataset()
    c = d.conn()
    st, out = call(c, "POST", "/v1/datasets", {"X": X, "y": y})
    c.close()
    if st != 201:
        sys.exit("dataset upload: %d %s" % (st, out))
    # a daemon runs for long; one just started still has OpenBLAS's server thread spinning
    # on a core for its first ~0.1-0.3 s (it sleeps once idle that long): let it settle
    time.sleep(0.5)
    return out["id"]


def w8(d):
    ds = upload(d)
    hp = {"optimizer": "sgd", "lr": 0.1, "epochs": 10000, "batch_size": 0, "l2": 0,
          "shuffle": False, "n_iter_no_change": 0, "tol": 0}
    c = d.conn()
    t0 = time.perf_counter()
    st, job = call(c, "POST", "/v1/jobs", {"model": "softmax", "dataset": ds,
                                          "hyperparameters": hp})
    if st != 202:
        sys.exit("POST /v1/jobs: %d %s" % (st, job))
    path = "/v1/jobs/" + job["id"]
    while job["state"] in ("queued", "running"):
        time.sleep(0.001)
        st, job = call(c, "GET", path)
    t = time.perf_counter() - t0
    if job["state"] != "succeeded" or job["progress"]["epoch"] != 10000:
        sys.exit("W8 job ended %s: %s" % (job["state"], job.get("error")))
    print("W8 %.1f ms/job (10000 epochs, %.2f us/epoch, loss %.5f)"
          % (1e3 * t, 1e6 * t / 10000, job["metrics"]["loss"]))
    return 1e3 * t


def w9(d, jobs=400, clients=4):
    ds = upload(d)
    body = {"model": "softmax", "dataset": ds, "hyperparameters": {"epochs": 1}}
    retries = [0] * clients
    errors = []

    def client(i):
        c = d.conn()
        for _ in range(jobs // clients):
            while True:
                st, out = call(c, "POST", "/v1/jobs", body)
                if st == 202:
                    break
                if st != 429:
                    errors.append("%d %s" % (st, out))
                    return
                retries[i] += 1
        c.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    t_submit = time.perf_counter() - t0
    if errors:
        sys.exit("W9 submission failed: " + errors[0])
    c = d.conn()
    # nothing goes back to queued once every job is submitted: no queued job, then no
    # running job, means every job is terminal
    for state in ("queued", "running"):
        while call(c, "GET", "/v1/jobs?limit=1&state=" + state)[1]["jobs"]:
            time.sleep(0.0005)
    t = time.perf_counter() - t0
    st, out = call(c, "GET", "/v1/jobs?limit=1000&state=succeeded")
    if len(out["jobs"]) != jobs:
        sys.exit("W9: %d of %d jobs succeeded" % (len(out["jobs"]), jobs))
    print("W9 %.0f jobs/s  %.3f ms/job (%d jobs, %d clients, %d retries after 429; "
          "submitted in %.0f ms)" % (jobs / t, 1e3 * t / jobs, jobs, clients, sum(retries),
                                    1e3 * t_submit))
    return jobs / t


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("w8", "w9"):
        sys.exit(__doc__)
    repeat = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    figs = []
    for _ in range(repeat):
        d = Daemon(sys.argv[2])
        try:
            figs.append(w8(d) if sys.argv[1] == "w8" else w9(d))
        finally:
            d.close()
    med = statistics.median(figs)
    if sys.argv[1] == "w8":
        print("median %.1f ms/job" % med)
    else:
        print("median %.0f jobs/s" % med)


if __name__ == "__main__":
    main()
