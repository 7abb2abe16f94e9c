#!/usr/bin/env python3
"""soak.py BIN [SECONDS] — load soak of a traind binary (make soak, SOAK_SECONDS).

Starts BIN on an ephemeral port over a fresh state directory (workers 2, a checkpoint
every second) and, for SECONDS (default 60), runs:
  jobs     two threads that each loop: store a dataset now and then (JSON or CSV), submit
           a softmax / mlp / gmm / embed_gmm job, follow it (status polls, or its event
           stream), cancel one in five while it runs, read its losses (JSON and CSV),
           model and predictions, delete it, and now and then delete a dataset and send
           a bad request (400 / 404 / 422 answers are expected there)
  status   one thread of GET /v1/jobs pages, /v1/jobs/{id}, /metrics, /healthz, /readyz
and samples the daemon's VmRSS, VmHWM, threads and open descriptors every 2 s. It prints
the figures at the start (before any traffic), after the warm-up (the first 10% of the
run, at least 5 s: SQLite's cache, malloc arenas and thread stacks are in place by then)
and at the end, then stops the daemon with SIGTERM.

Fails (exit 1) on any 5xx answer, dropped connection or unexpected status, a daemon exit
code other than 0 at SIGTERM, descriptors growing by more than 16 after the warm-up, or
RSS growing by more than SOAK_MAX_GROWTH_MB (default 64) after the warm-up. Python's
standard library only."""
import http.client
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

BIN = sys.argv[1] if len(sys.argv) > 1 else "build/traind"
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
MAX_GROWTH_MB = float(os.environ.get("SOAK_MAX_GROWTH_MB", "64"))


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.by_status = {}
        self.failures = []
        self.jobs = {}

    def count(self, status):
        with self.lock:
            self.by_status[status] = self.by_status.get(status, 0) + 1

    def fail(self, what):
        with self.lock:
            if len(self.failures) < 20:
                self.failures.append(what)
            self.by_status["fail"] = self.by_status.get("fail", 0) + 1

    def job_done(self, model, state):
        with self.lock:
            k = model + " " + state
            self.jobs[k] = self.jobs.get(k, 0) + 1


ST = Stats()
STOP = threading.Event()


def call(port, method, path, body=None, ctype="application/json", expect=(200,),
         headers=None):
    """One request on its own connection; returns (status, body bytes) or (None, b"")."""
    h = {"Connection": "close"}
    if body is not None:
        h["Content-Type"] = ctype
    if headers:
        h.update(headers)
    if isinstance(body, str):
        body = body.encode()
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
    except Exception as e:  # a dropped connection is a failure
        ST.fail("%s %s: %s" % (method, path, e))
        return None, b""
    ST.count(r.status)
    if r.status >= 500 or r.status not in expect:
        ST.fail("%s %s -> %d %s" % (method, path, r.status, data[:200]))
    return r.status, data


def js(data):
    try:
        return json.loads(data)
    except ValueError:
        return {}


def dataset_body(rng, labelled, n, d, k):
    X = [[round(rng.gauss(0, 1) + (i % k), 4) for _ in range(d)] for i in range(n)]
    body = {"name": "soak", "X": X}
    if labelled:
        body["y"] = [i % k for i in range(n)]
    return json.dumps(body)


def csv_body(rng, n, d, k):
    lines = ["%s,%d" % (",".join("%.4f" % (rng.gauss(0, 1) + i % k) for _ in range(d)), i % k)
             for i in range(n)]
    return "\n".join(lines) + "\n"


JOBS = [
    ("softmax", {"epochs": 40, "lr": 0.2, "batch_size": 32, "optimizer": "adam"}),
    ("mlp", {"hidden": [16], "epochs": 8, "batch_size": 32}),
    ("gmm", {"components": 3, "max_iter": 15}),
    ("embed_gmm", {"iterations": 12, "hidden": [16], "embedding_dim": 2, "components": 3,
                   "warmup_iterations": 4}),
]


def job_loop(port, seed):
    rng = random.Random(seed)
    datasets = []
    n_iter = 0
    while not STOP.is_set():
        n_iter += 1
        if len(datasets) < 2 or rng.random() < 0.1:
            if rng.random() < 0.3:
                st, b = call(port, "POST", "/v1/datasets?label_column=last&header=false",
                             csv_body(rng, 200, 6, 3), ctype="text/csv", expect=(201,))
            else:
                st, b = call(port, "POST", "/v1/datasets", dataset_body(rng, True, 240, 6, 3),
                             expect=(201,))
            if st == 201:
                datasets.append(js(b)["id"])
        if len(datasets) > 3:
            old = datasets.pop(0)
            call(port, "DELETE", "/v1/datasets/" + old, expect=(204, 409))
        model, hp = JOBS[n_iter % len(JOBS)]
        hp = dict(hp, seed=rng.randrange(1000))
        body = json.dumps({"model": model, "dataset": rng.choice(datasets),
                           "hyperparameters": hp})
        key = {"Idempotency-Key": "k%d-%d" % (seed, n_iter)} if rng.random() < 0.3 else None
        st, b = call(port, "POST", "/v1/jobs", body, expect=(202, 429), headers=key)
        if st != 202:
            time.sleep(0.2)
            continue
        job = js(b)["id"]
        if key:  # the repeat answers the same job
            st2, b2 = call(port, "POST", "/v1/jobs", body, expect=(202,), headers=key)
            if st2 == 202 and js(b2).get("id") != job:
                ST.fail("idempotent repeat gave another job")
        cancel = rng.random() < 0.2
        if rng.random() < 0.3 and not cancel:
            call(port, "GET", "/v1/jobs/%s/events" % job)  # ends at the terminal state
        state = "queued"
        t0 = time.time()
        while not STOP.is_set() and time.time() - t0 < 120:
            st, b = call(port, "GET", "/v1/jobs/" + job)
            state = js(b).get("state", "?")
            if state in ("succeeded", "failed", "cancelled"):
                break
            if cancel and state == "running":
                call(port, "POST", "/v1/jobs/%s/cancel" % job, expect=(202, 409))
            time.sleep(0.05)
        ST.job_done(model, state)
        if state == "failed":
            ST.fail("job %s (%s) failed: %s" % (job, model, js(b).get("error")))
        call(port, "GET", "/v1/jobs/%s/losses" % job)
        call(port, "GET", "/v1/jobs/%s/losses?format=csv" % job)
        if state == "succeeded":
            call(port, "GET", "/v1/jobs/%s/model" % job)
            call(port, "POST", "/v1/jobs/%s/predict" % job,
                 json.dumps({"X": [[0.1 * j for j in range(6)], [1] * 6]}))
        if rng.random() < 0.2:  # error paths: their allocations must not leak either
            call(port, "POST", "/v1/jobs", '{"model": "softmax", "dataset": ', expect=(400,))
            call(port, "GET", "/v1/jobs/job_nope", expect=(404,))
            call(port, "POST", "/v1/loss", '{"loss": "cross_entropy", "logits": [[1, 2]], '
                 '"target": [7]}', expect=(422,))
        if state in ("succeeded", "failed", "cancelled"):
            call(port, "DELETE", "/v1/jobs/" + job, expect=(204,))


def status_loop(port):
    while not STOP.is_set():
        st, b = call(port, "GET", "/v1/jobs?limit=20")
        jobs = js(b).get("jobs", []) if st == 200 else []
        for j in jobs[:3]:
            call(port, "GET", "/v1/jobs/" + j["id"], expect=(200, 404))
        call(port, "GET", "/v1/datasets")
        call(port, "GET", "/metrics")
        call(port, "GET", "/healthz")
        call(port, "GET", "/readyz")
        call(port, "POST", "/v1/loss", '{"loss": "contrastive", "a": [[1, 2]], "b": [[0, 1]], '
             '"similar": [1]}')
        time.sleep(0.005)


def proc_figures(pid):
    f = {}
    with open("/proc/%d/status" % pid) as s:
        for line in s:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "Threads"):
                f[k] = int(v.split()[0])
    f["fds"] = len(os.listdir("/proc/%d/fd" % pid))
    return f


def main():
    tmp = tempfile.mkdtemp(prefix="traind-soak-")
    conf = os.path.join(tmp, "traind.conf")
    with open(conf, "w") as c:
        c.write("workers = 2\ncheckpoint_interval_s = 1\nmax_queued_jobs = 16\n"
                "log_level = info\n")
    log = open(os.path.join(tmp, "traind.log"), "w+")
    p = subprocess.Popen([BIN, "--config", conf, "--listen", "127.0.0.1:0", "--state-dir",
                          os.path.join(tmp, "state")], stdout=log, stderr=log)
    port = None
    for _ in range(200):
        with open(log.name) as lf:
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", lf.read())
        if m:
            port = int(m.group(1))
            break
        if p.poll() is not None:
            break
        time.sleep(0.05)
    if not port:
        print("soak: the daemon did not start:\n" + open(log.name).read())
        return 1
    start = proc_figures(p.pid)
    t0 = time.time()
    warm_at = max(5.0, 0.1 * SECONDS)
    threads = [threading.Thread(target=job_loop, args=(port, s)) for s in (1, 2)]
    threads.append(threading.Thread(target=status_loop, args=(port,)))
    for t in threads:
        t.start()
    samples = []
    warm = None
    while time.time() - t0 < SECONDS:
        time.sleep(min(2.0, max(0.0, SECONDS - (time.time() - t0))))
        f = proc_figures(p.pid)
        f["t"] = time.time() - t0
        samples.append(f)
        if warm is None and f["t"] >= warm_at:
            warm = f
    STOP.set()
    for t in threads:
        t.join()
    end = proc_figures(p.pid)
    end["t"] = time.time() - t0
    warm = warm or end
    p.send_signal(signal.SIGTERM)
    try:
        code = p.wait(30)
    except subprocess.TimeoutExpired:
        p.kill()
        code = -1

    mb = lambda kb: kb / 1024.0
    print("soak: %.0f s against %s (pid %d)" % (end["t"], BIN, p.pid))
    print("  requests by status: %s" % ", ".join(
        "%s: %d" % (k, v) for k, v in sorted(ST.by_status.items(), key=lambda kv: str(kv[0]))))
    print("  jobs: %s" % ", ".join("%s %d" % kv for kv in sorted(ST.jobs.items())))
    print("  %-22s %10s %10s %8s %6s" % ("", "VmRSS MB", "VmHWM MB", "threads", "fds"))
    for name, f in (("start", start), ("after warm-up (%.0f s)" % warm["t"], warm),
                    ("end (%.0f s)" % end["t"], end)):
        print("  %-22s %10.1f %10.1f %8d %6d" % (name, mb(f["VmRSS"]), mb(f["VmHWM"]),
                                                   f["Threads"], f["fds"]))
    step = max(1, len(samples) // 10)
    print("  RSS over time (MB): " + " ".join(
        "%.0fs:%.1f" % (s["t"], mb(s["VmRSS"])) for s in samples[::step]))
    growth = mb(end["VmRSS"] - warm["VmRSS"])
    print("  RSS growth after warm-up: %+.1f MB (limit %.0f MB); daemon exit code %d"
          % (growth, MAX_GROWTH_MB, code))
    bad = []
    if ST.failures:
        bad.append("%d failed requests or jobs, e.g.:\n    %s" % (
            ST.by_status.get("fail", 0), "\n    ".join(ST.failures)))
    if code != 0:
        bad.append("daemon exit code %d at SIGTERM:\n%s" % (code, open(log.name).read()[-4000:]))
    if growth > MAX_GROWTH_MB:
        bad.append("RSS grew by %.1f MB after the warm-up" % growth)
    if end["fds"] > warm["fds"] + 16:
        bad.append("descriptors grew from %d to %d" % (warm["fds"], end["fds"]))
    if bad:
        print("soak: FAILED: " + "\n  ".join(bad))
        print("  (state and log kept in %s)" % tmp)
        return 1
    shutil.rmtree(tmp, ignore_errors=True)
    print("soak: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
