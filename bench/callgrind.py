#!/usr/bin/python3
"""Instructions per operation of egressd, counted by callgrind: a figure
that does not move with the machine's load, unlike a time.

usage: /usr/bin/python3 bench/callgrind.py [--ops N] [--workers LIST]
           [--orchestrator K] [--timeout T] [--parallel-polls N]
           [--json PATH] [--keep DIR]

  --ops N            operations in the long run (default 1000); the short
                     run does N/2
  --workers LIST      egressd's worker counts, each measured on its own
                     (default 1; e.g. 1,2); the worker figure is the sum
                     over the workers, so that what two connections
                     writing one database cost each other shows
  --orchestrator K   python (default) or c, as in load.py
  --timeout T        give up on any one wait after T seconds (default 300)
  --parallel-polls N worker.parallel_polls (default: egressd's, 4)
  --json PATH        also write the figures to PATH
  --keep DIR         copy the callgrind.out files into DIR

Binaries: $EGRESSD_BIN (default <repo>/build/egressd); valgrind on $PATH.

egressd with one worker (or W; worker.max_inflight 8) runs whole under
`valgrind --tool=callgrind --trace-children=yes`, so the master and the
worker it forks each write their own callgrind.out.PID when they exit.
Once every worker is ready and the master's first housekeeping pass is
done (harness.py), N /api/v1/test/health operations are queued and one
work_available event per worker sent; when the orchestrator has
N results, egressd gets SIGTERM and stops gracefully.  The same again with N/2
operations.  Boot, the stream, the graceful stop and the shutdown notice
are the same in both runs, so

    Ir per operation = (Ir(N) - Ir(N/2)) / (N/2)

for the worker and for the master (Ir: instructions executed, callgrind's
"totals").  The two runs last different times, so heartbeats differ too;
they are made rare (worker heartbeat 30 s, the orchestrator's stream
heartbeat 60 s) so that they do not show.  Every process started is
stopped at the end.
"""

import argparse
import glob
import os
import shutil
import subprocess
import sys
import time

import harness
from harness import BenchError


def totals(path):
    """Ir of one callgrind.out file ("totals:" or "summary:" line)."""
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith(("totals:", "summary:")):
                return int(line.split()[1])
    raise BenchError(f"{path}: no totals line")


def one_run(args, n, workers):
    """Ir of the master and of the worker(s) for n operations."""
    with harness.workdir() as wd, \
            harness.orchestrator(args.orchestrator, wd,
                                 heartbeat=60.0) as orch:
        out = os.path.join(wd, "callgrind.out.%p")
        d = harness.Daemon(args.egressd, wd, orch.url, workers,
                           heartbeat=30.0,
                           worker_timeout=3600.0,
                           polls=args.parallel_polls,
                           wrapper=["valgrind", "--tool=callgrind",
                                    "--trace-children=yes",
                                    f"--callgrind-out-file={out}"])
        try:
            d.wait_ready(args.timeout, poll=0.2)
            time.sleep(harness.HOUSEKEEPING_SETTLE)
            orch.admin("POST", "/admin/faults", {"piggyback": False})
            orch.enqueue(n)
            orch.work_available(workers)
            orch.wait_results(n, args.timeout)
        finally:
            status = d.stop(wait=args.timeout)
        if status != 0:
            raise BenchError(f"egressd under callgrind exited with status "
                             f"{status}{d.log_tail()}")
        files = glob.glob(os.path.join(wd, "callgrind.out.*"))
        if args.keep:
            os.makedirs(args.keep, exist_ok=True)
            for f in files:
                shutil.copy(f, os.path.join(args.keep, f"{workers}-w-{n}-ops-"
                                            + os.path.basename(f)))
        master = os.path.join(wd, f"callgrind.out.{d.pid}")
        if master not in files or len(files) < 2:
            raise BenchError(f"expected the master's and a worker's "
                             f"callgrind.out, found {files}")
        return {"ops": n, "master_ir": totals(master),
                "worker_ir": sum(totals(f) for f in files if f != master),
                "worker_files": len(files) - 1}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ops", type=int, default=1000)
    ap.add_argument("--workers", default="1")
    ap.add_argument("--orchestrator", choices=("python", "c"),
                    default="python")
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--parallel-polls", type=int, default=None,
                    help="worker.parallel_polls (default: egressd's)")
    ap.add_argument("--json")
    ap.add_argument("--keep")
    args = ap.parse_args()
    if args.ops < 2:
        ap.error("--ops >= 2")
    counts = harness.worker_counts(ap, args.workers)
    args.egressd = harness.egressd_binary()
    harness.terminate_on_sigterm()
    if shutil.which("valgrind") is None:
        print("callgrind.py: valgrind not found", file=sys.stderr)
        return 2
    try:
        figs = [measure(args, w) for w in counts]
    except KeyboardInterrupt:
        print("callgrind.py: interrupted; every process it started is "
              "stopped", file=sys.stderr)
        return 130
    except (BenchError, subprocess.SubprocessError) as e:
        print(f"callgrind.py: {e}", file=sys.stderr)
        return 2
    # The first count's figures at the top level, as before; all of them
    # in by_workers.
    out = dict(figs[0])
    out["by_workers"] = figs
    if args.json:
        harness.write_json(args.json, out)
    return 0


def measure(args, workers):
    """The figures of one worker count, printed as they come."""
    long_run = one_run(args, args.ops, workers)
    short_run = one_run(args, args.ops // 2, workers)
    dn = long_run["ops"] - short_run["ops"]
    fig = {"workers": workers, "runs": [long_run, short_run],
           "worker_ir_per_op": (long_run["worker_ir"] -
                                short_run["worker_ir"]) / dn,
           "master_ir_per_op": (long_run["master_ir"] -
                                short_run["master_ir"]) / dn}
    for r in fig["runs"]:
        print(f"{workers} worker(s), {r['ops']:>6} operations: worker Ir "
              f"{r['worker_ir']:,}, master Ir {r['master_ir']:,}")
    print(f"{workers} worker(s), Ir per operation: worker "
          f"{fig['worker_ir_per_op']:,.0f}, master "
          f"{fig['master_ir_per_op']:,.0f}")
    return fig


if __name__ == "__main__":
    sys.exit(main())
