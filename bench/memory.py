#!/usr/bin/python3
"""Where an idle egressd's resident pages are, mapping by mapping.

For each binary (default $EGRESSD_BIN), --runs times, the binaries taking
turns: an orchestrator and egressd with --workers workers, as in load.py's
idle figure (1 s after every worker is ready); then, for the master and for
the worker with the largest RSS, each mapping of /proc/PID/smaps grouped
(OpenSSL, GnuTLS, libcurl's other dependencies, SQLite, libc, the heap...)
with three figures in KiB, the median over the runs:

  RSS         resident pages, shared ones included in full;
  PSS         as the kernel counts it: a shared page divided among every
              process on the machine that maps it, so it moves with what
              else runs (other daemons, other test runs);
  PSS alone   each resident page divided among egressd's own processes
              only (the master and its workers, from /proc/PID/pagemap's
              frame numbers): the PSS egressd would have alone on the
              machine.  Needs root (the frame numbers read as 0 otherwise);
              "-" without.

Not part of `make bench`; asserts nothing.  Every process it starts is
stopped at the end, also on error, ^C or SIGTERM.

    EGRESSD_BIN=build/egressd /usr/bin/python3 bench/memory.py [--workers 4]
        [--runs 3] [--orchestrator c|python | --no-orchestrator]
        [--detail] [--json PATH] [BINARY ...]
"""

import argparse
import collections
import contextlib
import os
import re
import statistics
import struct
import sys
import time

import harness
from harness import BenchError

SETTLE = 1.0                    # after ready, as load.py's idle figure
PAGE_KIB = 4
PFN_MASK = (1 << 55) - 1
PRESENT = 1 << 63

# Mapping names (a library's short name) by group, in the order printed.
GROUPS = (
    ("OpenSSL", ("libcrypto", "libssl")),
    ("GnuTLS and its own", ("libgnutls", "libp11-kit", "libtasn1",
                            "libnettle", "libhogweed", "libgmp")),
    ("libcurl's other dependencies", (
        "libkrb5", "libgssapi_krb5", "libk5crypto", "libkrb5support",
        "libcom_err", "libkeyutils", "libldap", "liblber", "libsasl2",
        "libssh2", "librtmp", "libnghttp2", "libzstd", "libbrotlidec",
        "libbrotlicommon", "libz", "libpsl", "libidn2", "libunistring",
        "libresolv", "libffi")),
    ("libcurl", ("libcurl",)),
    ("SQLite", ("libsqlite3",)),
    ("libc, ld.so, libm", ("libc", "ld-linux", "libm")),
    ("egressd (text, data)", ("egressd",)),
    ("cJSON, libconfig, libuuid", ("libcjson", "libconfig", "libuuid")),
    ("heap (malloc)", ("[heap]",)),
    ("anonymous, stack, -shm", ("[anon]", "[stack]", "[vdso]",
                                "egressd.db-shm")),
)


def short_name(path):
    """libcrypto for /usr/lib/x86_64-linux-gnu/libcrypto.so.3."""
    if path == "":
        return "[anon]"
    if path.startswith("["):
        return path
    base = os.path.basename(path)
    if base.startswith("ld-linux"):
        return "ld-linux"
    m = re.match(r"(lib[^.]*?)(-[0-9.]+)?\.so", base)
    return m.group(1) if m else base


def group_of(name):
    for title, members in GROUPS:
        if name in members:
            return title
    return "other"


def mappings(pid):
    """[(start, end, short name)] of pid."""
    out = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            p = line.split(None, 5)
            start, end = (int(x, 16) for x in p[0].split("-"))
            out.append((start, end, short_name(p[5].strip() if len(p) > 5
                                               else "")))
    return out


def resident_frames(pid):
    """{short name: [frame number of each resident page]}; vsyscall and
    mappings the kernel will not show are skipped."""
    frames = collections.defaultdict(list)
    with open(f"/proc/{pid}/pagemap", "rb") as pm:
        for start, end, name in mappings(pid):
            if name == "[vsyscall]":
                continue
            pm.seek(start // 4096 * 8)
            try:
                data = pm.read((end - start) // 4096 * 8)
            except OSError:
                continue
            frames[name] += [v & PFN_MASK for (v,) in
                             struct.iter_unpack("Q", data) if v & PRESENT]
    return frames


def smaps_pss(pid):
    """{short name: (RSS, PSS)} in KiB, from smaps."""
    out = collections.defaultdict(lambda: [0, 0])
    name = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            p = line.split()
            if re.match(r"^[0-9a-f]+-[0-9a-f]+$", p[0]):
                name = short_name(" ".join(p[5:]) if len(p) > 5 else "")
            elif p[0] == "Rss:":
                out[name][0] += int(p[1])
            elif p[0] == "Pss:":
                out[name][1] += int(p[1])
    return out


def measure(pids):
    """{pid: {short name: [RSS, PSS, PSS alone or None]}}."""
    frames = {pid: resident_frames(pid) for pid in pids}
    owners = collections.Counter()
    known = False
    for fr in frames.values():
        for pages in fr.values():
            owners.update(set(pages))
            known = known or any(pages)
    out = {}
    for pid in pids:
        rows = {}
        for name, (rss, pss) in smaps_pss(pid).items():
            alone = (sum(PAGE_KIB / owners[p] for p in frames[pid][name])
                     if known else None)
            rows[name] = [rss, pss, alone]
        out[pid] = rows
    return out


def one_run(binary, args):
    """{"master": rows, "worker": rows} of one idle daemon."""
    with harness.workdir() as wd, \
            (contextlib.nullcontext() if args.no_orchestrator else
             harness.orchestrator(args.orchestrator, wd)) as orch, \
            harness.daemon(binary, wd, orch.url if orch else "",
                           args.workers, args.timeout) as d:
        time.sleep(SETTLE)
        workers = d.worker_pids()
        if not workers:
            raise BenchError("no worker to measure")
        m = measure([d.pid] + workers)
        largest = max(workers, key=lambda p: sum(r[0] for r in
                                                 m[p].values()))
        return {"master": m[d.pid], "worker": m[largest]}


def grouped(rows, detail):
    out = collections.defaultdict(lambda: [0, 0, 0.0, True])
    for name, (rss, pss, alone) in rows.items():
        key = name if detail else group_of(name)
        g = out[key]
        g[0] += rss
        g[1] += pss
        g[2] += alone or 0.0
        g[3] = g[3] and alone is not None
    return out


def median_table(runs, role, detail):
    """{row: (RSS, PSS, PSS alone or None)}, medians over the runs."""
    per_run = [grouped(r[role], detail) for r in runs]
    keys = {k for g in per_run for k in g}
    table = {}
    for k in keys:
        vals = [g.get(k, [0, 0, 0.0, True]) for g in per_run]
        alone = (statistics.median(v[2] for v in vals)
                 if all(v[3] for v in vals) else None)
        table[k] = (statistics.median(v[0] for v in vals),
                    statistics.median(v[1] for v in vals), alone)
    totals = [[sum(v[i] or 0 for v in grouped(r[role], detail).values())
               for i in range(3)] for r in runs]
    table["total"] = tuple(statistics.median(t[i] for t in totals)
                           for i in range(3))
    if table[next(iter(keys))][2] is None:
        table["total"] = table["total"][:2] + (None,)
    return table


def order(table, detail):
    if detail:
        rows = sorted((k for k in table if k != "total"),
                      key=lambda k: -table[k][0])
    else:
        rows = [t for t, _ in GROUPS if t in table]
        rows += [k for k in table if k not in rows and k != "total"]
    return rows + ["total"]


def cell(v):
    return "-" if v is None else f"{v:.0f}"


def report(results, args):
    for role in ("master", "worker"):
        tables = {b: median_table(runs, role, args.detail)
                  for b, runs in results.items()}
        rows = []
        for t in tables.values():
            rows += [r for r in order(t, args.detail) if r not in rows]
        rows.remove("total")
        rows.append("total")
        print(f"\n{role}{' (largest RSS)' if role == 'worker' else ''}, "
              f"{args.workers} workers, idle, KiB, median of {args.runs}: "
              f"RSS / PSS / PSS alone")
        for i, b in enumerate(results):
            print(f"  [{i + 1}] {b}")
        for r in rows:
            if all(not any(tables[b].get(r, (0, 0, 0))) for b in results):
                continue        # [vvar] and the like: nothing resident
            cells = "   ".join(
                " ".join(f"{cell(v):>6s}" for v in
                         tables[b].get(r, (0, 0, 0)))
                for b in results)
            print(f"  {r[:30]:30s} {cells}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("binaries", nargs="*",
                    help="egressd binaries (default $EGRESSD_BIN)")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--orchestrator", choices=("python", "c"),
                    default="python")
    ap.add_argument("--no-orchestrator", action="store_true",
                    help="orchestrator.url empty: no stream, no polling")
    ap.add_argument("--detail", action="store_true",
                    help="one row per library instead of groups")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--json", help="also write every run's rows here")
    args = ap.parse_args()
    harness.terminate_on_sigterm()
    binaries = args.binaries or [harness.egressd_binary()]
    results = {b: [] for b in binaries}
    try:
        for _ in range(args.runs):
            for b in binaries:
                results[b].append(one_run(b, args))
    except (BenchError, OSError) as e:
        print(f"memory: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    report(results, args)
    if args.json:
        harness.write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
