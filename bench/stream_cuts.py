#!/usr/bin/python3
"""Forced event-stream cuts under load: what is lost, how fast it resumes.

egressd runs against the Python fake orchestrator (tests/orchestrator), which
numbers its events and replays what follows a Last-Event-ID.  A thread pushes
operations over the stream at a steady rate; meanwhile the stream is cut
--cuts times, each time in the middle of a pushed operation's event, and two
more operations are pushed while it is down.  poll_interval is long, so only
the stream (and its replay) can deliver them.  Prints, and writes as JSON
with --json: the reconnects that sent Last-Event-ID, pushed operations
delivered, lost (no result by the end) and duplicated, and the reconnect time (from the cut to the new stream request
reaching the orchestrator) p50, p99 and max.  Asserts nothing.

    EGRESSD_BIN=build/egressd /usr/bin/python3 bench/stream_cuts.py [--cuts 100]
"""

import argparse
import os
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "orchestrator"))
sys.path.insert(0, HERE)

from fake_orchestrator import FakeOrchestrator  # noqa: E402
import harness  # noqa: E402

RECONNECT_WAIT = 30.0       # one reconnect, at most (then the run stops)


def pusher(orch, rate, stop, ids):
    """Push one operation every 1/rate s until stop is set."""
    period = 1.0 / rate
    next_at = time.monotonic()
    while not stop.is_set():
        ids.extend(orch.push({})["operation_ids"])
        next_at += period
        stop.wait(max(0.0, next_at - time.monotonic()))


def one_cut(orch, ids):
    """Cut the stream in the middle of a push; -> reconnect time, s."""
    with orch.lock:
        connects = orch.stream_connects
    cut_at = time.time()
    ids.extend(orch.push({}, cut=True)["operation_ids"])
    ids.extend(orch.push([{}, {}])["operation_ids"])    # while it is down
    if not orch.wait_for(lambda: orch.stream_connects > connects,
                         RECONNECT_WAIT):
        raise harness.BenchError(f"no reconnect within {RECONNECT_WAIT}s")
    stream = orch.get_requests(endpoint="stream")[-1]
    return stream["time"] - cut_at, stream["last_event_id"] is not None


def percentile(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


def run(args):
    orch = FakeOrchestrator("127.0.0.1", 0, harness.TOKEN_ID, harness.TOKEN,
                            heartbeat_interval=1.0).start()
    orch.set_faults(sse_retry_ms=args.retry_ms if args.retry_ms >= 0
                    else None)
    ids, times, resumed = [], [], 0
    stop = threading.Event()
    try:
        with harness.workdir(args.keep) as d, \
                harness.daemon(harness.egressd_binary(), d, orch.url,
                               args.workers, 30.0, poll_interval=600.0,
                               heartbeat=args.heartbeat) as eg:
            if args.keep:
                print(f"workdir {d}", file=sys.stderr)
            if not orch.wait_counts(10.0, streams=1):
                raise harness.BenchError("the stream never opened")
            load = threading.Thread(target=pusher,
                                    args=(orch, args.rate, stop, ids))
            load.start()
            try:
                for _ in range(args.cuts):
                    took, with_id = one_cut(orch, ids)
                    times.append(took)
                    resumed += with_id
            finally:
                stop.set()
                load.join()
            want = set(ids)
            orch.wait_for(lambda: want <= orch.result_ids, args.drain)
            eg.health()     # still answering
    finally:
        orch.stop()
    counts = {}
    for r in orch.get_results():
        counts[r["operation_id"]] = counts.get(r["operation_id"], 0) + 1
    delivered = sum(1 for i in ids if counts.get(i, 0) >= 1)
    return {
        "cuts": len(times), "resumed_with_id": resumed,
        "pushed": len(ids), "delivered": delivered,
        "lost": len(ids) - delivered,
        "duplicated": sum(1 for i in ids if counts.get(i, 0) > 1),
        "replayed_events": orch.state()["replay"]["replayed_events"],
        "retry_ms": args.retry_ms,
        "reconnect_p50_s": round(percentile(times, 50), 3),
        "reconnect_p99_s": round(percentile(times, 99), 3),
        "reconnect_max_s": round(max(times), 3),
        "reconnect_mean_s": round(statistics.mean(times), 3),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cuts", type=int, default=100)
    ap.add_argument("--rate", type=float, default=20.0,
                    help="pushed operations per second besides the cuts")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--retry-ms", type=int, default=1000,
                    help="the retry: the fake sends (egressd keeps 1-240 s); "
                    "-1: none, egressd's own 2 s")
    ap.add_argument("--heartbeat", type=float, default=0.5,
                    help="worker.heartbeat_interval: the master counts a "
                    "push against a worker's room until a heartbeat")
    ap.add_argument("--drain", type=float, default=120.0,
                    help="seconds to wait for every result after the cuts")
    ap.add_argument("--json", help="write the figures here too")
    ap.add_argument("--keep", action="store_true", help="keep the workdir")
    args = ap.parse_args()
    harness.terminate_on_sigterm()
    try:
        figures = run(args)
    except harness.BenchError as err:
        print(f"stream_cuts: {err}", file=sys.stderr)
        return 2
    for key, value in figures.items():
        print(f"{key:18} {value}")
    if args.json:
        harness.write_json(args.json, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
