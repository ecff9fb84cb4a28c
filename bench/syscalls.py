#!/usr/bin/python3
"""System calls per operation of egressd, counted by strace: like the
instructions of callgrind.py, a count, not a time.

usage: /usr/bin/python3 bench/syscalls.py [--ops N] [--workers LIST]
           [--top K] [--orchestrator K] [--timeout T] [--parallel-polls N]
           [--json PATH] [--keep DIR]

  --ops N            operations in the long run (default 2000); the short
                     run does N/2
  --workers LIST     egressd's worker counts, each measured on its own
                     (default 1; e.g. 1,2); the worker figure is the sum
                     over the workers
  --top K            system calls listed by name, the workers' most
                     frequent (default 10; fdatasync and fsync are listed
                     whenever they occur)
  --orchestrator K   python (default) or c, as in load.py
  --timeout T        give up on any one wait after T seconds (default 120)
  --parallel-polls N worker.parallel_polls (default: egressd's, 4)
  --json PATH        also write the figures to PATH
  --keep DIR         copy the strace output files into DIR

Binaries: $EGRESSD_BIN (default <repo>/build/egressd); strace on $PATH.

egressd with one worker (or W; worker.max_inflight 8) starts under
`strace -f -ff -I 2 -o trace`, so every process and thread it starts
writes its own trace.PID, one line per system call.  Once every worker is
ready and the master's first housekeeping pass is done (harness.py), N
/api/v1/test/health operations are queued and one work_available event per
worker sent; when the orchestrator has N results, strace gets SIGTERM: it
detaches from every process and passes the SIGTERM on to the master
(-I 2: strace does not ignore it), so the traces end there and the
graceful stop runs untraced.  The stop is left out because it does not
cancel: the last process to close the database checkpoints what is left
of the WAL, an amount that depends on N, and that is the master or a
worker as the race goes (thousands of pread64 in the master in one run
and none in the next).  The same again with N/2 operations.  Boot, the
stream and the detaching are the same in both runs, so

    system calls per operation = (calls(N) - calls(N/2)) / (N/2)

for the workers (every trace but the master's: the workers, their threads
and anything they fork) and for the master, in all and for each system
call by name.  Heartbeats are made rare (worker heartbeat 30 s, stream
heartbeat 60 s) so that the runs' different lengths add none.  Unlike an
instruction count, a system call count moves a little with timing: a
poll that finds two replies ready is one call, not two, and two workers
waiting for the write lock retry it in short sleeps (fcntl, pread64 of the
pages the other one changed, clock_nanosleep: the 2-worker figure depends
on how much the two overlapped, which the sendto count per worker in the
output shows).  strace slows every call, which changes that timing too;
the counts are of what egressd asks the kernel, not of what it costs.

Every process started is stopped at the end, also on error, ^C or SIGTERM.
"""

import argparse
import collections
import glob
import os
import re
import shutil
import subprocess
import sys
import time

import harness
from harness import BenchError

SYSCALL = re.compile(rb"^([a-z_][a-z0-9_]*)\(")
FAILED = re.compile(rb"\) += -1 ")
ALWAYS = ("fdatasync", "fsync")        # listed whenever they occur
HEARTBEAT = 30.0                # worker heartbeat under strace, s
# strace's child is the master, and a parent-death signal set before
# strace's exec is not inherited: setpriv sets one for the master, so that
# egressd stops even when strace is killed outright (a SIGTERM to strace,
# as harness.spawn's parent-death signal, it passes on itself).
PDEATHSIG = ["setpriv", "--pdeathsig", "TERM"] \
    if shutil.which("setpriv") else []
STREAM_HEARTBEAT = 60.0         # the orchestrator's, s


def count(path):
    """System calls of one trace file by name, and how many failed.

    A call that blocked while another traced thread ran is split by strace
    into "NAME(... <unfinished ...>" and "<... NAME resumed> ..."; the
    first line counts it, the second does not.  Signals ("--- SIG") and
    exits ("+++") are not calls."""
    calls, failed = collections.Counter(), 0
    with open(path, "rb") as f:
        for line in f:
            m = SYSCALL.match(line)
            if m is None:
                continue
            calls[m.group(1).decode()] += 1
            if FAILED.search(line):
                failed += 1
    return calls, failed


def traced_pids(d):
    """egressd's master (strace's one child: Daemon.pid is strace's) and
    its workers; all of them killed by d.stop() if they outlive strace."""
    kids = harness.children_of(d.pid)
    if len(kids) != 1:
        raise BenchError(f"strace (pid {d.pid}) has {len(kids)} children "
                         f"{kids}, expected egressd's master alone")
    workers = harness.children_of(kids[0])
    d.seen.update(kids + workers)
    return kids[0], workers


def detach_and_stop(d, pids, timeout):
    """SIGTERM to strace: it detaches from every process it traces, so the
    stop is not counted, and passes the SIGTERM on to the one it started,
    the master, which stops gracefully.  Then wait for strace, and for
    the master and workers (no longer anyone's children here) to exit."""
    d.close()
    d.proc.terminate()
    try:
        d.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"strace did not exit within {timeout:.0f}s of "
                         f"SIGTERM")
    left = harness.wait_gone(pids, timeout)
    if left:
        raise BenchError(f"egressd's processes {left} still alive "
                         f"{timeout:.0f}s after SIGTERM{d.log_tail()}")


def one_run(args, n, workers):
    """System calls of the master and of the workers for n operations."""
    with harness.workdir() as wd, \
            harness.orchestrator(args.orchestrator, wd,
                                 heartbeat=STREAM_HEARTBEAT) as orch:
        prefix = os.path.join(wd, "trace")
        d = harness.Daemon(args.egressd, wd, orch.url, workers,
                           heartbeat=HEARTBEAT,
                           worker_timeout=4 * HEARTBEAT,
                           polls=args.parallel_polls,
                           wrapper=["strace", "-f", "-ff", "-qq", "-s", "0",
                                    "-I", "2", "-o", prefix] + PDEATHSIG)
        try:
            d.wait_ready(args.timeout, poll=0.05)
            time.sleep(harness.HOUSEKEEPING_SETTLE)
            master, wpids = traced_pids(d)
            orch.admin("POST", "/admin/faults", {"piggyback": False})
            orch.enqueue(n)
            orch.work_available(workers)
            orch.wait_results(n, args.timeout)
            detach_and_stop(d, [master] + wpids, args.timeout)
        finally:
            # Whatever is still running (an error above): strace, then the
            # master and workers it would leave behind.
            d.stop(wait=10)
        files = glob.glob(prefix + ".*")
        if args.keep:
            os.makedirs(args.keep, exist_ok=True)
            for f in files:
                shutil.copy(f, os.path.join(args.keep, f"{workers}-w-{n}-ops-"
                                            + os.path.basename(f)))
        mfile = f"{prefix}.{master}"
        if mfile not in files or len(files) < 2:
            raise BenchError(f"expected the master's and a worker's trace, "
                             f"found {files}")
        run = {"ops": n, "files": len(files)}
        mcalls, mfailed = count(mfile)
        wcalls, wfailed, sendto = collections.Counter(), 0, []
        for f in files:
            if f != mfile:
                c, e = count(f)
                wcalls.update(c)
                wfailed += e
                if c["sendto"]:
                    sendto.append(c["sendto"])
        run.update(master_calls=sum(mcalls.values()), master_failed=mfailed,
                   master_by_name=dict(mcalls),
                   worker_calls=sum(wcalls.values()), worker_failed=wfailed,
                   worker_by_name=dict(wcalls),
                   worker_sendto=sendto)
        return run


def per_op(long_run, short_run, who):
    """(long - short) / dn for the total, the failed and each name."""
    dn = long_run["ops"] - short_run["ops"]
    a, b = long_run[f"{who}_by_name"], short_run[f"{who}_by_name"]
    by_name = {k: (a.get(k, 0) - b.get(k, 0)) / dn for k in set(a) | set(b)}
    return ((long_run[f"{who}_calls"] - short_run[f"{who}_calls"]) / dn,
            (long_run[f"{who}_failed"] - short_run[f"{who}_failed"]) / dn,
            by_name)


def top_names(by_name, k):
    """The k most frequent calls, then those of ALWAYS that occur."""
    names = [n for n, v in sorted(by_name.items(), key=lambda x: -x[1])
             if v > 0][:k]
    return names + [n for n in ALWAYS if n not in names and
                    by_name.get(n, 0) > 0]


def measure(args, workers):
    """The figures of one worker count, printed as they come."""
    long_run = one_run(args, args.ops, workers)
    short_run = one_run(args, args.ops // 2, workers)
    fig = {"workers": workers, "runs": [long_run, short_run]}
    for who in ("worker", "master"):
        total, failed, by_name = per_op(long_run, short_run, who)
        fig[f"{who}_per_op"] = total
        fig[f"{who}_failed_per_op"] = failed
        fig[f"{who}_by_name_per_op"] = by_name
    fig["top"] = [[n, fig["worker_by_name_per_op"][n]]
                  for n in top_names(fig["worker_by_name_per_op"], args.top)]
    for r in fig["runs"]:
        # Two sendto per operation (GET, PUT): how the work was shared.
        print(f"{workers} worker(s), {r['ops']:>6} operations: worker "
              f"calls {r['worker_calls']:,}, master calls "
              f"{r['master_calls']:,} ({r['files']} traces; sendto by "
              f"worker {'/'.join(map(str, sorted(r['worker_sendto'])))})")
    print(f"{workers} worker(s), system calls per operation: worker "
          f"{fig['worker_per_op']:.1f} ({fig['worker_failed_per_op']:.1f} "
          f"failed), master {fig['master_per_op']:.2f}")
    print("  worker, by name: " + ", ".join(
        f"{n} {v:.2f}" for n, v in fig["top"]), flush=True)
    return fig


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ops", type=int, default=2000)
    ap.add_argument("--workers", default="1")
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--orchestrator", choices=("python", "c"),
                    default="python")
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--parallel-polls", type=int, default=None,
                    help="worker.parallel_polls (default: egressd's)")
    ap.add_argument("--json")
    ap.add_argument("--keep")
    args = ap.parse_args()
    if args.ops < 2:
        ap.error("--ops >= 2")
    if args.top < 1:
        ap.error("--top >= 1")
    counts = harness.worker_counts(ap, args.workers)
    args.egressd = harness.egressd_binary()
    harness.terminate_on_sigterm()
    if shutil.which("strace") is None:
        print("syscalls.py: strace not found", file=sys.stderr)
        return 2
    try:
        figs = [measure(args, w) for w in counts]
    except KeyboardInterrupt:
        print("syscalls.py: interrupted; every process it started is "
              "stopped", file=sys.stderr)
        return 130
    except (BenchError, subprocess.SubprocessError, OSError) as e:
        print(f"syscalls.py: {e}", file=sys.stderr)
        return 2
    if args.json:
        harness.write_json(args.json, {"by_workers": figs})
    return 0


if __name__ == "__main__":
    sys.exit(main())
