#!/usr/bin/python3
"""Protocol benchmark for egressd against the bundled fake orchestrator.
It prints figures; it never asserts and never fails a build.

usage: /usr/bin/python3 bench/protocol.py [--ops N] [--goodbye-runs R]
           [--goodbye-workers W] [--timeout T] [--orchestrator python|c]
           [--workers 1,2,4] [--throughput-only]

  --ops N             health operations per throughput run (default 2000)
  --goodbye-runs R    goodbye measurements (default 20)
  --goodbye-workers W workers for the goodbye measurement (default 8)
  --timeout T         give up on any one wait after T seconds (default 60)
  --idle-seconds S    idle window for the wake-up count (default 10)
  --orchestrator O    python: the fake (default); c: bench/orchd, the C
                      orchestrator ($ORCHD_BIN, default bench/orchd beside
                      egressd)
  --workers LIST      worker counts of the throughput runs (default 2)
  --throughput-only   skip the idle and goodbye measurements
  --json PATH         also write every figure to PATH (as bench/run reads it)

Binaries: $EGRESSD_BIN (default <repo>/build/egressd).

1. Throughput, 2 workers (--workers), worker.max_inflight 8.  N
   /api/v1/test/health operations are queued in the orchestrator at once
   and one work_available event is sent; the clock runs until the
   orchestrator has recorded N results.  Printed: operations per second,
   egressd's CPU time (master + workers, user + system from /proc/PID/stat)
   per operation in microseconds, and the orchestrator's own CPU per
   operation, so the bottleneck is visible.  Twice: each operation
   fetched by its own GET, then with results piggybacking the next operation.

2. Idle wake-ups (voluntary context switches from /proc/PID/status) of the
   master and one worker over S seconds with the stream connected: expected
   one per stream heartbeat and per worker heartbeat frame (the master), one
   per heartbeat interval (a worker); polls every 60 s add nothing here.

3. goodbye -> every worker exited, with W workers and server.on_goodbye =
   "restart": the time from the fake sending the goodbye event (stamped by
   the fake) until none of the old workers is alive (a zombie is not),
   polled every 0.5 ms.  It includes each worker's POST
   /api/v1/agent/shutdown round trip.  p50, p99 and max over R runs;
   between runs the fresh workers are waited for.

The fake runs as its own process (its CPU is counted apart); every process
started is stopped at the end, even on error or ^C.
"""

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from harness import (children_of, control, cpu_seconds, stop_process,
                     wait_gone)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
FAKE = os.path.join(REPO, "tests", "orchestrator", "fake_orchestrator.py")


class Fake:
    def __init__(self, workdir):
        ready = os.path.join(workdir, "fake.port")
        self.proc = subprocess.Popen(
            [sys.executable, FAKE, "--port", "0", "--token-id", "bench",
             "--token", "bench-secret", "--quiet", "--heartbeat-interval",
             "5", "--ready-file", ready], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not os.path.exists(ready):
            if time.monotonic() > deadline:
                raise RuntimeError("fake orchestrator did not start")
            time.sleep(0.02)
        with open(ready) as f:
            self.port = int(f.read().strip())
        self.url = f"http://127.0.0.1:{self.port}"

    def admin(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data,
                                     method=method)
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"{}")

    def stop(self):
        stop_process(self.proc, 10)


class Orchd(Fake):
    """bench/orchd in place of the fake: same admin API, same token."""

    def __init__(self, workdir):
        del workdir
        self.proc = subprocess.Popen(
            [ORCHD_BIN, "--port", "0", "--token-id", "bench", "--token",
             "bench-secret", "--heartbeat-interval", "5"],
            stdout=subprocess.PIPE)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("port "):
            self.stop()
            raise RuntimeError(f"orchd did not start: {line!r}")
        self.port = int(line.split()[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        stop_process(self.proc, 10)
        self.proc.stdout.close()


ORCHESTRATORS = {"python": Fake, "c": Orchd}
ORCHESTRATOR = Fake
ORCHD_BIN = None


class Egressd:
    def __init__(self, binary, workdir, url, workers, on_goodbye="restart",
                 min_uptime=5.0):
        self.dir = workdir
        token = os.path.join(workdir, "token")
        with open(token, "w") as f:
            f.write("bench-secret\n")
        os.chmod(token, 0o600)
        conf = os.path.join(workdir, "egressd.conf")
        with open(conf, "w") as f:
            f.write(f"""
server: {{ workers = {workers}; pidfile = "egressd.pid"; state_dir = ".";
          control_socket = "egressd.sock"; graceful_timeout = 10.0;
          on_goodbye = "{on_goodbye}"; min_uptime = {min_uptime}; }};
log: {{ file = "egressd.log"; level = "warning"; }};
orchestrator: {{ url = "{url}"; token_id = "bench"; token_file = "token";
                poll_interval = 60.0; }};
worker: {{ max_inflight = 8; }};
""")
        self.proc = subprocess.Popen([binary, "-c", conf])
        self.sock = os.path.join(workdir, "egressd.sock")
        self.log = os.path.join(workdir, "egressd.log")

    def health(self):
        return control(self.sock, "health", 5)

    def wait_ready(self, n, generation=None, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                h = self.health()
                ws = [w for w in h["workers"] if not w["retiring"]]
                if (h["ready"] == n and len(h["workers"]) == n and
                        (generation is None or
                         all(w["generation"] == generation for w in ws))):
                    return h
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.01)
        raise RuntimeError(f"{n} workers not ready within {timeout}s")

    def wait_stream(self, after, timeout):
        """Until the master's stream is connected, by a connection made
        at wall time after or later; the health reply."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                st = self.health().get("stream") or {}
                if st.get("state") == "connected" and \
                        st.get("since", 0) >= after:
                    return st
            except (OSError, ValueError):
                pass
            time.sleep(0.01)
        raise RuntimeError(f"the stream did not connect again within "
                           f"{timeout}s")

    def log_count(self, text):
        """Lines of egressd.log holding text."""
        try:
            with open(self.log, errors="replace") as f:
                return sum(text in line for line in f)
        except OSError:
            return 0

    def cpu(self):
        pid = self.proc.pid
        return cpu_seconds(pid) + sum(cpu_seconds(c) for c in children_of(pid))

    def stop(self):
        stop_process(self.proc, 20, children_of(self.proc.pid))


@contextlib.contextmanager
def running(binary, workers, timeout, **kw):
    """A fake orchestrator and egressd with workers ready; both stopped and
    the directory removed on the way out, whatever happened.  kw: more
    arguments of Egressd."""
    workdir = tempfile.mkdtemp(prefix="egressd-bench-")
    fake = egressd = None
    try:
        fake = ORCHESTRATOR(workdir)
        egressd = Egressd(binary, workdir, fake.url, workers, **kw)
        egressd.wait_ready(workers, timeout=timeout)
        yield fake, egressd
    finally:
        if egressd:
            egressd.stop()
        if fake:
            fake.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def throughput(binary, n_ops, piggyback, timeout, workers=2):
    with running(binary, workers, timeout) as (fake, egressd):
        fake.admin("POST", "/admin/faults", {"piggyback": piggyback})
        ops = [{"path": "/api/v1/test/health"} for _ in range(n_ops)]
        fake.admin("POST", "/admin/enqueue", {"operations": ops})
        cpu0, fcpu0 = egressd.cpu(), cpu_seconds(fake.proc.pid)
        t0 = time.monotonic()
        fake.admin("POST", "/admin/event", {"type": "work_available"})
        deadline = t0 + timeout
        while fake.admin("GET", "/admin/state")["results"] < n_ops:
            if time.monotonic() > deadline:
                raise RuntimeError("results did not all arrive")
            time.sleep(0.02)
        wall = time.monotonic() - t0
        cpu = egressd.cpu() - cpu0
        fcpu = cpu_seconds(fake.proc.pid) - fcpu0
        return wall, cpu, fcpu


def goodbye_latencies(binary, runs, workers, timeout):
    """The goodbye->exited times, and how many restarts backed off.

    server.min_uptime = 0: a goodbye that comes within min_uptime of the
    previous one's restart counts as a goodbye loop, and the restart backs
    off (0.5 s doubling to 30 s: seven minutes over 20 runs, nearly all of
    it waiting for the fresh workers).  The back-off only delays the
    fresh workers, never the old ones' exit that is timed; without it
    every run is what the first one is, and what a single goodbye is: the
    old workers leave while the fresh ones boot."""
    out = []
    with running(binary, workers, timeout, min_uptime=0) as (fake,
                                                              egressd):
        h = egressd.wait_ready(workers, timeout=timeout)
        egressd.wait_stream(0, timeout)
        for _ in range(runs):
            old = [w["pid"] for w in h["workers"]]
            gen = h["generation"]
            t_wall = time.time()
            t0 = time.monotonic()
            sent = fake.admin("POST", "/admin/goodbye", {"reason": "bench"})
            if sent.get("delivered", 1) < 1:
                raise RuntimeError("the goodbye reached no stream")
            if wait_gone(old, timeout - (time.monotonic() - t0), 0.0005):
                raise RuntimeError("old workers did not exit")
            out.append(time.monotonic() - t0)
            h = egressd.wait_ready(workers, generation=gen + 1,
                                   timeout=timeout)
            # The next goodbye goes over the new stream.
            egressd.wait_stream(t_wall, timeout)
        backoffs = egressd.log_count("goodbye loop")
    return out, backoffs


def voluntary_switches(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches"):
                return int(line.split()[1])
    return 0


def idle_wakeups(binary, seconds, timeout):
    """Wake-ups of an idle master and worker with the stream connected."""
    with running(binary, 2, timeout) as (fake, egressd):
        time.sleep(1)
        worker = children_of(egressd.proc.pid)[0]
        m0 = voluntary_switches(egressd.proc.pid)
        w0 = voluntary_switches(worker)
        time.sleep(seconds)
        return (voluntary_switches(egressd.proc.pid) - m0,
                voluntary_switches(worker) - w0)


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ops", type=int, default=2000)
    ap.add_argument("--goodbye-runs", type=int, default=20)
    ap.add_argument("--goodbye-workers", type=int, default=8)
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--idle-seconds", type=float, default=10)
    ap.add_argument("--orchestrator", choices=sorted(ORCHESTRATORS),
                    default="python")
    ap.add_argument("--workers", default="2")
    ap.add_argument("--throughput-only", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()
    # A TERM to the benchmark unwinds through the finally blocks.
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(128 + s))
    figures = {"throughput": []}
    binary = os.environ.get("EGRESSD_BIN",
                            os.path.join(REPO, "build", "egressd"))
    global ORCHESTRATOR, ORCHD_BIN
    ORCHESTRATOR = ORCHESTRATORS[args.orchestrator]
    ORCHD_BIN = os.environ.get("ORCHD_BIN", os.path.join(
        os.path.dirname(os.path.abspath(binary)), "bench", "orchd"))
    orch = "fake" if args.orchestrator == "python" else "orchd"
    print(f"egressd: {binary}; {os.cpu_count()} CPUs; orchestrator: "
          + (FAKE if orch == "fake" else ORCHD_BIN))
    for workers in (int(w) for w in args.workers.split(",")):
        print(f"\nThroughput, {workers} workers, {args.ops} health "
              f"operations")
        print(f"{'mode':<12}{'ops/s':>10}{'egressd us/op':>16}"
              f"{orch + ' us/op':>14}")
        for piggyback in (False, True):
            wall, cpu, fcpu = throughput(binary, args.ops, piggyback,
                                         args.timeout, workers)
            print(f"{'piggyback' if piggyback else 'GET each':<12}"
                  f"{args.ops / wall:>10.0f}{cpu / args.ops * 1e6:>16.0f}"
                  f"{fcpu / args.ops * 1e6:>14.0f}", flush=True)
            figures["throughput"].append({
                "piggyback": piggyback, "workers": workers,
                "ops": args.ops, "ops_per_s": args.ops / wall,
                "cpu_us_per_op": cpu / args.ops * 1e6,
                "orch_cpu_us_per_op": fcpu / args.ops * 1e6})
    if not args.throughput_only:
        idle_and_goodbye(binary, args, figures)
    if args.json:
        with open(args.json + ".tmp", "w") as f:
            json.dump(figures, f, indent=1, sort_keys=True)
        os.replace(args.json + ".tmp", args.json)
    return 0


def idle_and_goodbye(binary, args, figures):
    master, worker = idle_wakeups(binary, args.idle_seconds, args.timeout)
    print(f"\nIdle over {args.idle_seconds:.0f} s, 2 workers, stream "
          f"heartbeat 5 s, worker heartbeat 5 s, poll_interval 60 s: "
          f"master {master} wake-ups, worker {worker}")
    figures["idle"] = {"seconds": args.idle_seconds, "workers": 2,
                       "master": master, "worker": worker}
    lat, backoffs = goodbye_latencies(binary, args.goodbye_runs,
                                      args.goodbye_workers, args.timeout)
    ms = [x * 1000 for x in lat]
    print(f"\ngoodbye -> all {args.goodbye_workers} workers exited, "
          f"{len(ms)} runs: p50 {pct(ms, 50):.1f} ms, p99 {pct(ms, 99):.1f} "
          f"ms, max {max(ms):.1f} ms, mean {statistics.mean(ms):.1f} ms; "
          f"{backoffs} restarts backed off (min_uptime 0: expected none)")
    figures["goodbye"] = {"workers": args.goodbye_workers, "ms": ms,
                          "p50": pct(ms, 50), "p99": pct(ms, 99),
                          "backoffs": backoffs}


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
