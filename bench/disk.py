#!/usr/bin/python3
"""Bounded disk (store.max_bytes): the database's size over a long run of
health operations, bytes per operation, and egressd's CPU per operation
before pruning starts and while it runs.  It prints figures and asserts
nothing.

usage: /usr/bin/python3 bench/disk.py [--ops N] [--max-bytes B]
           [--workers W] [--every S] [--csv PATH] [--png PATH]
           [--json PATH] [--timeout T] [--keep]

  --ops N          health operations in all (default 1000000)
  --max-bytes B    store.max_bytes (default 67108864, 64 MiB)
  --workers W      egressd workers (default 1)
  --every S        seconds between samples (default 1)
  --csv PATH       samples: seconds,operations,file_bytes,wal_bytes,
                   pruned_rows (default bench/results/disk.csv of the
                   build directory)
  --png PATH       the plot of the file and WAL over the operations, drawn
                   by gnuplot when it is installed
  --json PATH      also write the figures to PATH
  --timeout T      give up when no result came for T seconds (default 120)
  --keep           keep the working directory (egressd.log, the database)

egressd runs against bench/orchd (piggybacked results, so the orchestrator
is not what limits the rate); operations are queued in chunks as results
come.  Figures: bytes per operation (database file plus WAL divided by the
operations, once the file reached half the budget and before anything was
pruned), the largest file and file + WAL seen once the budget was reached,
and egressd's CPU (master and workers, user + system) per operation over
the operations before the first pruning and over those after it.
"""

import argparse
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402

CHUNK = 20000           # operations queued at a time
LOW_WATER = 10000       # queue more when fewer than this wait


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ops", type=int, default=1000000)
    ap.add_argument("--max-bytes", type=int, default=64 * 1024 * 1024)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--every", type=float, default=1.0)
    ap.add_argument("--csv")
    ap.add_argument("--png")
    ap.add_argument("--json")
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    args.egressd = harness.egressd_binary()
    out = os.path.join(os.path.dirname(args.egressd), "bench", "results")
    args.csv = args.csv or os.path.join(out, "disk.csv")
    os.makedirs(os.path.dirname(os.path.abspath(args.csv)), exist_ok=True)
    return args


def sizes(d):
    out = []
    for suffix in ("", "-wal"):
        try:
            out.append(os.stat(os.path.join(d.dir, "egressd.db" +
                                            suffix)).st_size)
        except FileNotFoundError:
            out.append(0)
    return out


def pruned(d):
    """The master's count, over the control socket (egressctl status
    --json would also count rows: a long read that holds the WAL)."""
    try:
        return harness.control(d.sock_path, "status", 30)["database"][
            "pruned_rows"]
    except (OSError, ValueError, KeyError):
        return 0


def run(args):
    samples, marks = [], {}
    extra = f"store: {{ max_bytes = {args.max_bytes}; }};\n"
    with harness.workdir(args.keep) as wd, \
            harness.orchestrator("c", wd) as orch, \
            harness.daemon(args.egressd, wd, orch.url, args.workers,
                           args.timeout, extra=extra) as d:
        orch.admin("POST", "/admin/faults", {"piggyback": True})
        queued = min(CHUNK, args.ops)
        orch.enqueue(queued)
        t0, cpu0 = time.monotonic(), d.cpu()
        orch.work_available(args.workers)
        last, last_t = 0, t0
        while True:
            time.sleep(args.every)
            done = orch.state()["results"]
            now = time.monotonic()
            if done > last:
                last, last_t = done, now
            elif now - last_t > args.timeout:
                raise harness.BenchError(f"no result for {args.timeout}s "
                                         f"at {done}")
            if queued - done < LOW_WATER and queued < args.ops:
                n = min(CHUNK, args.ops - queued)
                orch.enqueue(n)
                queued += n
                orch.work_available(args.workers)
            file_b, wal_b = sizes(d)
            rows = pruned(d)
            samples.append((now - t0, done, file_b, wal_b, rows))
            if rows == 0 and file_b + wal_b >= args.max_bytes // 2:
                marks.setdefault("half", (done, file_b + wal_b))
            if rows > 0 and "prune" not in marks:
                marks["prune"] = (done, d.cpu() - cpu0)
            if done >= args.ops:
                break
        cpu = d.cpu() - cpu0
    return samples, marks, cpu


def figures(args, samples, marks, cpu):
    fig = {"ops": args.ops, "max_bytes": args.max_bytes,
           "workers": args.workers}
    if "half" in marks:
        done, b = marks["half"]
        fig["bytes_per_op"] = b / max(done, 1)
    if "prune" in marks:
        done, cpu_before = marks["prune"]
        fig["cpu_us_per_op_before_pruning"] = cpu_before / done * 1e6
        after = [s for s in samples if s[1] > done]
        fig["cpu_us_per_op_pruning"] = (cpu - cpu_before) / max(
            samples[-1][1] - done, 1) * 1e6
        fig["max_file_bytes"] = max(s[2] for s in after) if after else 0
        fig["max_file_wal_bytes"] = max(s[2] + s[3] for s in after) \
            if after else 0
    fig["seconds"] = samples[-1][0]
    fig["ops_per_s"] = samples[-1][1] / samples[-1][0]
    return fig


def plot(args, csv_path):
    if not args.png or shutil.which("gnuplot") is None:
        return
    mib = 1024 * 1024
    script = f"""set terminal pngcairo size 900,500 noenhanced
set output '{args.png}'
set datafile separator ','
set title 'egressd database size, store.max_bytes = {args.max_bytes // mib} MiB'
set xlabel 'operations'
set ylabel 'MiB'
set key top left
set grid
plot '{csv_path}' every ::1 using 2:($3/{mib}) with lines title 'file', \\
     '' every ::1 using 2:(($3+$4)/{mib}) with lines title 'file + WAL', \\
     {args.max_bytes / mib} with lines dashtype 2 title 'max_bytes'
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=False)


def main():
    args = parse_args()
    harness.terminate_on_sigterm()
    samples, marks, cpu = run(args)
    with open(args.csv, "w") as f:
        f.write("seconds,operations,file_bytes,wal_bytes,pruned_rows\n")
        for s in samples:
            f.write("%.2f,%d,%d,%d,%d\n" % s)
    plot(args, args.csv)
    fig = figures(args, samples, marks, cpu)
    for k, v in fig.items():
        print(f"{k:32} {v:.1f}" if isinstance(v, float) else
              f"{k:32} {v}")
    if args.json:
        harness.write_json(args.json, fig)


if __name__ == "__main__":
    main()
