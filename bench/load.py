#!/usr/bin/python3
"""Load benchmark for egressd: throughput and CPU per operation against a
peer doing the same work in Python, memory idle and under load, and a
rolling restart (SIGHUP) under load with lost and duplicated operations
counted.  It prints figures; the only check is lost = duplicated = 0 on
HUP (exit status 1 otherwise).

usage: /usr/bin/python3 bench/load.py [--workers 1,2,4] [--ops N]
           [--hup-runs R] [--hup-ops N] [--hup-workers W] [--no-peer]
           [--orchestrator python|c] [--timeout T]
           [--parallel-polls N] [--json PATH]

  --workers LIST     egressd worker counts, and peer process counts
                     (default 1,2,4)
  --ops N            health operations per throughput run (default 3000)
  --hup-runs R       rolling restarts under load (default 3; 0 skips)
  --hup-ops N        operations queued for each of them (default 3000)
  --hup-workers W    workers for them (default 4)
  --no-peer          egressd only
  --orchestrator K   python (tests/orchestrator/fake_orchestrator.py, the
                     default) or c (orchd: $ORCHD_BIN, else bench/orchd
                     beside egressd)
  --timeout T        give up on any one wait after T seconds (default 120)
  --parallel-polls N worker.parallel_polls of the throughput runs (default:
                     egressd's, 4; 1 fetches one operation at a time)
  --json PATH        also write every figure to PATH

Binaries: $EGRESSD_BIN (default <repo>/build/egressd).

1. Throughput, for each worker count W: a fresh orchestrator and egressd
   with W workers (worker.max_inflight 8, poll_interval 60 s,
   parallel_polls as given); 1 s after
   every worker is ready, RSS and PSS of the master and of each worker
   (/proc/PID/smaps_rollup: "idle").  N /api/v1/test/health operations are
   queued, W work_available events sent (the master pokes one worker per
   event, round-robin, so every worker starts polling), and the clock runs
   until the orchestrator counts N results (/admin/state polled every
   20 ms).  When it counts N/2, memory is read again ("load").  Printed:
   ops/s, egressd's CPU (master + workers, user + system from
   /proc/PID/stat) per operation in microseconds, and the orchestrator's.
   Each operation's result goes through the PUT, not piggybacked.
2. The peer (bench/peer.py, Python + requests), for each count P = W: a
   fresh orchestrator, P peer processes started and connected, N operations
   queued, "go": the clock runs until the orchestrator counts N results.
   Printed: ops/s, the peers' CPU per operation (their own os.times() over
   the loop), the orchestrator's; and egressd / peer ratios.
3. HUP under load, R times: W workers, N operations queued and W
   work_available events sent; when N/4 results are in, SIGHUP; the roll
   is timed from the signal until the control socket's health shows the
   new generation complete (W workers, all of it, none retiring; polled
   every 2 ms).  Then every result is waited for, and the orchestrator's
   count gives the operations lost (queued, never answered) and duplicated
   (answered more than once).  Both must be 0.

Every process started is stopped at the end, even on error, ^C or SIGTERM.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time

import harness
from harness import BenchError

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, "peer.py")
SETTLE = 1.0                    # after ready, before the idle memory figure
MEMORY_KEYS = ("Rss", "Pss", "Pss_Anon", "Pss_File", "Private_Dirty")


def memory(d):
    """smaps_rollup of the master and of every worker."""
    def pick(pid):
        m = harness.smaps_rollup(pid)
        return {k: m.get(k, 0) for k in MEMORY_KEYS}
    return {"master": pick(d.pid),
            "workers": [pick(p) for p in d.worker_pids()]}


def egressd_version(binary):
    try:
        out = subprocess.run([binary, "-V"], capture_output=True, text=True,
                             timeout=10).stdout.split()
        return out[-1] if out else "0"
    except (OSError, subprocess.SubprocessError):
        return "0"


def run_egressd(args, workers):
    with harness.workdir() as wd, \
            harness.orchestrator(args.orchestrator, wd) as orch, \
            harness.daemon(args.egressd, wd, orch.url, workers,
                           args.timeout, polls=args.parallel_polls) as d:
        time.sleep(SETTLE)
        idle = memory(d)
        orch.admin("POST", "/admin/faults", {"piggyback": False})
        orch.enqueue(args.ops)
        load = {}

        def sample(st):
            if not load and st["results"] >= args.ops // 2:
                load.update(memory(d))
        cpu0, ocpu0 = d.cpu(), orch.cpu()
        t0 = time.monotonic()
        orch.work_available(workers)
        orch.wait_results(args.ops, args.timeout, sample)
        wall = time.monotonic() - t0
        cpu, ocpu = d.cpu() - cpu0, orch.cpu() - ocpu0
    return {"workers": workers, "ops": args.ops, "wall": wall,
            "ops_per_s": args.ops / wall, "cpu_us_per_op":
            cpu / args.ops * 1e6, "orch_cpu_us_per_op":
            ocpu / args.ops * 1e6, "memory_idle": idle,
            "memory_load": load}


def start_peer(args, orch, wd, slot):
    token = os.path.join(wd, "token")
    if not os.path.exists(token):
        with open(token, "w") as f:
            f.write(harness.TOKEN + "\n")
    db = os.path.join(wd, "peer.db")
    open(db, "a").close()
    return harness.spawn(
        [sys.executable, PEER, "--url", orch.url, "--token-id",
         harness.TOKEN_ID, "--token-file", token, "--version",
         args.version, "--db", db, "--slot", str(slot)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def run_peer(args, procs_n):
    with harness.workdir() as wd, \
            harness.orchestrator(args.orchestrator, wd) as orch:
        peers = []
        try:
            for i in range(procs_n):
                peers.append(start_peer(args, orch, wd, i + 1))
            for p in peers:
                if p.stdout.readline().strip() != "ready":
                    raise BenchError("a peer did not start")
            orch.admin("POST", "/admin/faults", {"piggyback": False})
            orch.enqueue(args.ops)
            ocpu0 = orch.cpu()
            t0 = time.monotonic()
            for p in peers:
                p.stdin.write("go\n")
                p.stdin.flush()
            orch.wait_results(args.ops, args.timeout)
            wall = time.monotonic() - t0
            ocpu = orch.cpu() - ocpu0
            reports = []
            for p in peers:
                line = p.stdout.readline()
                p.wait(args.timeout)
                reports.append(json.loads(line))
        finally:
            for p in peers:
                harness.stop_process(p, 5)
    cpu = sum(r["cpu"] for r in reports)
    return {"processes": procs_n, "ops": args.ops, "wall": wall,
            "ops_per_s": args.ops / wall,
            "cpu_us_per_op": cpu / args.ops * 1e6,
            "orch_cpu_us_per_op": ocpu / args.ops * 1e6,
            "errors": sum(r["errors"] for r in reports),
            "ops_per_process": [r["ops"] for r in reports]}


def hup_once(args):
    n, w = args.hup_ops, args.hup_workers
    with harness.workdir() as wd, \
            harness.orchestrator(args.orchestrator, wd) as orch, \
            harness.daemon(args.egressd, wd, orch.url, w,
                           args.timeout) as d:
        gen = d.health()["generation"]
        orch.admin("POST", "/admin/faults", {"piggyback": False})
        orch.enqueue(n)
        orch.work_available(w)
        before = orch.wait_results(n // 4, args.timeout)
        t_hup = time.monotonic()
        d.signal(signal.SIGHUP)
        t_rolled = d.wait_for("HUP under load", harness.rolled_to(w, gen + 1),
                              args.timeout)
        during = orch.state()
        try:
            orch.wait_results(n, args.timeout)
        except BenchError as e:     # counted as lost below
            print(f"  HUP under load: {e}", file=sys.stderr)
        time.sleep(0.5)         # a late duplicate would arrive by now
        st = orch.state()
    if "duplicate_results" not in st:
        raise BenchError("the orchestrator's /admin/state has no "
                         "\"duplicate_results\"; lost and duplicated "
                         "operations cannot be counted")
    dup = st["duplicate_results"]
    return {"workers": w, "ops": n, "rolled_ms": (t_rolled - t_hup) * 1e3,
            "results_at_hup": before["results"],
            "results_at_rolled": during["results"],
            "queue_at_rolled": during.get("queue_length"),
            "lost": n - (st["results"] - dup), "duplicated": dup}


def hup_under_load(args):
    runs = []
    for _ in range(args.hup_runs):
        try:
            runs.append(hup_once(args))
        except BenchError as e:
            print(f"  HUP run failed: {e}", file=sys.stderr)
            runs.append({"workers": args.hup_workers, "ops": args.hup_ops,
                         "failed": str(e), "lost": None, "duplicated": None})
    return runs


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--ops", type=int, default=3000)
    ap.add_argument("--hup-runs", type=int, default=3)
    ap.add_argument("--hup-ops", type=int, default=3000)
    ap.add_argument("--hup-workers", type=int, default=4)
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--orchestrator", choices=("python", "c"),
                    default="python")
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--parallel-polls", type=int, default=None,
                    help="worker.parallel_polls (default: egressd's)")
    ap.add_argument("--json")
    args = ap.parse_args()
    try:
        args.workers = [int(x) for x in args.workers.split(",") if x]
    except ValueError:
        ap.error("--workers: comma-separated integers")
    if not args.workers or min(args.workers) < 1 or args.ops < 2 or \
            args.hup_ops < 8 or args.hup_workers < 1:
        ap.error("worker counts >= 1, --ops >= 2, --hup-ops >= 8")
    args.egressd = harness.egressd_binary()
    args.version = egressd_version(args.egressd)
    return args


def print_memory(label, mem):
    if not mem:
        print(f"  {label}: not sampled")
        return
    ws = mem["workers"]
    print(f"  {label}: master RSS {mem['master']['Rss']} PSS "
          f"{mem['master']['Pss']} KiB; workers RSS "
          f"{'/'.join(str(w['Rss']) for w in ws)} PSS "
          f"{'/'.join(str(w['Pss']) for w in ws)} KiB")


def main():
    args = parse_args()
    harness.terminate_on_sigterm()
    figures = {"orchestrator": args.orchestrator, "egressd": [],
               "peer": [], "hup": []}
    status = 0
    print(f"egressd: {args.egressd} ({args.version}); orchestrator: "
          f"{args.orchestrator}; {args.ops} health operations per run")
    print(f"{'who':<8}{'n':>3}{'ops/s':>9}{'CPU us/op':>11}"
          f"{'orch us/op':>12}")
    try:
        for w in args.workers:
            r = run_egressd(args, w)
            figures["egressd"].append(r)
            print(f"{'egressd':<8}{w:>3}{r['ops_per_s']:>9.0f}"
                  f"{r['cpu_us_per_op']:>11.0f}"
                  f"{r['orch_cpu_us_per_op']:>12.0f}", flush=True)
            print_memory("idle", r["memory_idle"])
            print_memory("load", r["memory_load"])
            if args.no_peer:
                continue
            p = run_peer(args, w)
            figures["peer"].append(p)
            print(f"{'peer':<8}{w:>3}{p['ops_per_s']:>9.0f}"
                  f"{p['cpu_us_per_op']:>11.0f}"
                  f"{p['orch_cpu_us_per_op']:>12.0f}   egressd/peer "
                  f"ops/s {r['ops_per_s'] / p['ops_per_s']:.2f}, peer/"
                  f"egressd CPU {p['cpu_us_per_op'] / r['cpu_us_per_op']:.2f}",
                  flush=True)
        if args.hup_runs > 0:
            figures["hup"] = hup_under_load(args)
            for h in figures["hup"]:
                if "failed" in h:
                    print(f"HUP under load: failed: {h['failed']}")
                    status = 1
                    continue
                during = h["results_at_rolled"] - h["results_at_hup"]
                print(f"HUP under load, {h['workers']} workers: rolled in "
                      f"{h['rolled_ms']:.1f} ms ({during} "
                      f"results during the roll, {h['queue_at_rolled']} "
                      f"queued at its end); lost {h['lost']}, duplicated "
                      f"{h['duplicated']}", flush=True)
                if h["lost"] != 0 or h["duplicated"] != 0:
                    status = 1
            ok = [h["rolled_ms"] for h in figures["hup"] if "failed" not in h]
            if ok:
                print(f"HUP under load: median {statistics.median(ok):.1f} "
                      f"ms, max {max(ok):.1f} ms over {len(ok)} runs")
    except KeyboardInterrupt:
        print("load.py: interrupted; every process it started is stopped",
              file=sys.stderr)
        return 130
    except BenchError as e:
        print(f"load.py: {e}", file=sys.stderr)
        status = 2
    finally:
        if args.json:
            harness.write_json(args.json, figures)
    if status == 1:
        print("load.py: operations lost or duplicated on HUP",
              file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
