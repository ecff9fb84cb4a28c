#!/usr/bin/python3
"""Binary upgrade (SIGUSR2) under load: how long until every worker runs
the new binary, what was lost or duplicated, and whether any moment had no
worker ready.

usage: upgrade.py [--runs R] [--ops N] [--workers W] [--orchestrator KIND]
                  [--next PATH] [--json PATH] [--timeout S]

  --runs R          upgrades measured, each on a fresh daemon (default 5)
  --ops N           operations queued for each (default 3000)
  --workers W       workers (default 4)
  --orchestrator    python (the fake, default) or c (bench/orchd)
  --next PATH       the binary swapped in (default $EGRESSD_NEXT_BIN, else
                    tests/egressd-next beside egressd; `make check TESTS=`
                    builds it)

Each run copies $EGRESSD_BIN into its directory and starts egressd from
the copy, queues N health operations, and once a quarter are answered puts
the other binary at that path (a new file renamed over it, as a package
manager does) and sends SIGUSR2.  The clock stops when the control socket
reports every worker of the new version, ready, none retiring.  The ready
count is sampled throughout (every 2 ms over the control socket); the time
with none ready sums the gaps between samples that saw zero.  Lost =
queued - distinct results, duplicated = results reported twice.  Prints
figures; exits 1 only when an operation was lost or duplicated.
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from harness import BenchError  # noqa: E402


def version_of(path):
    out = subprocess.run([path, "-V"], capture_output=True, text=True,
                         timeout=10).stdout.split()
    return out[1] if len(out) > 1 else "?"


def install(src, dst):
    tmp = dst + ".new"
    shutil.copyfile(src, tmp)
    os.chmod(tmp, 0o755)
    os.replace(tmp, dst)


class Readiness:
    """A health predicate that also keeps the lowest ready count and the
    time spent with none ready (between consecutive samples)."""

    def __init__(self, workers, version):
        self.n = workers
        self.version = version
        self.lowest = None
        self.zero_s = 0.0
        self.last = None        # (time, ready) of the previous sample
        self.samples = 0

    def __call__(self, r):
        now = time.monotonic()
        ready = r.get("ready", 0)
        self.samples += 1
        self.lowest = ready if self.lowest is None else min(self.lowest,
                                                            ready)
        if self.last is not None and self.last[1] == 0:
            self.zero_s += now - self.last[0]
        self.last = (now, ready)
        ws = r.get("workers", [])
        return (ready == self.n and len(ws) == self.n and
                all(w.get("version") == self.version and
                    not w.get("retiring") for w in ws))


def run_once(args, new_version):
    n, w = args.ops, args.workers
    with harness.workdir() as wd:
        exe = os.path.join(wd, "egressd-bin")
        install(args.egressd, exe)
        with harness.orchestrator(args.orchestrator, wd) as orch, \
                harness.daemon(exe, wd, orch.url, w, args.timeout) as d:
            master = d.pid
            orch.admin("POST", "/admin/faults", {"piggyback": False})
            orch.enqueue(n)
            orch.work_available(w)
            before = orch.wait_results(n // 4, args.timeout)
            install(args.next, exe)
            watch = Readiness(w, new_version)
            t0 = time.monotonic()
            d.signal(signal.SIGUSR2)
            t1 = d.wait_for("USR2 under load", watch, args.timeout)
            during = orch.state()
            try:
                orch.wait_results(n, args.timeout)
            except BenchError as e:     # counted as lost below
                print(f"  upgrade under load: {e}", file=sys.stderr)
            time.sleep(0.5)             # a late duplicate would arrive by now
            st = orch.state()
            same_pid = d.pid == master and d.proc.poll() is None
    dup = st["duplicate_results"]
    return {"workers": w, "ops": n, "upgraded_ms": (t1 - t0) * 1e3,
            "results_at_usr2": before["results"],
            "results_at_upgraded": during["results"],
            "lowest_ready": watch.lowest, "none_ready_ms": watch.zero_s * 1e3,
            "samples": watch.samples, "same_pid": same_pid,
            "lost": n - (st["results"] - dup), "duplicated": dup}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--ops", type=int, default=3000)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--orchestrator", default="python",
                    choices=("python", "c"))
    ap.add_argument("--egressd", default=harness.egressd_binary())
    ap.add_argument("--next", default=os.environ.get("EGRESSD_NEXT_BIN"))
    ap.add_argument("--json")
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()
    if args.next is None:
        args.next = os.path.join(os.path.dirname(args.egressd), "tests",
                                 "egressd-next")
    new_version = version_of(args.next)
    if new_version == version_of(args.egressd):
        ap.error(f"{args.next} reports the same version as {args.egressd}")
    runs = []
    harness.terminate_on_sigterm()
    for i in range(args.runs):
        r = run_once(args, new_version)
        runs.append(r)
        print(f"run {i + 1}: all {r['workers']} workers on {new_version} "
              f"{r['upgraded_ms']:.1f} ms after USR2; lowest ready "
              f"{r['lowest_ready']} ({r['samples']} samples), none "
              f"ready {r['none_ready_ms']:.1f} ms; lost {r['lost']}, "
              f"duplicated {r['duplicated']}; same pid {r['same_pid']}")
    ms = [r["upgraded_ms"] for r in runs]
    print(f"USR2 -> all {args.workers} workers on the new binary, under "
          f"load: median {statistics.median(ms):.1f} ms, max "
          f"{max(ms):.1f} ms ({len(ms)} runs); lost "
          f"{sum(r['lost'] for r in runs)}, duplicated "
          f"{sum(r['duplicated'] for r in runs)}; none ready "
          f"{max(r['none_ready_ms'] for r in runs):.1f} ms at most, lowest "
          f"ready {min(r['lowest_ready'] for r in runs)}")
    if args.json:
        harness.write_json(args.json, {"upgrade": runs})
    bad = any(r["lost"] or r["duplicated"] or not r["same_pid"]
              for r in runs)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
