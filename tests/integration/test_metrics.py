"""Metrics and logs: `egressctl metrics` (Prometheus text) counts operations
by path and outcome with their durations, totals survive a worker's
SIGKILL, and the orchestrator's push_metrics / push_logs requests are
answered with POSTs (3 tries each) that never carry the token (DESIGN.md
sections 2, 5 and 6)."""

import json
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from proto_helpers import (  # noqa: E402
    SHORT, kick, requests, wait_results, wait_until)
from proto_helpers import agent, orch, workdir  # noqa: E402,F401 (fixtures)
from common import binary, run_tool  # noqa: E402

HEALTH = "/api/v1/test/health"
NOPE = "/api/v1/no/such/handler"
EP_METRICS = "metrics"
EP_LOGS = "logs"
BUCKETS = 16

SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def unescape(v):
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n"
                  else m.group(1), v)


def parse_prometheus(text):
    """{(name, ((label, value), ...)): float}; every line must parse."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = tuple(sorted((k, unescape(v))
                              for k, v in LABEL_RE.findall(m.group(2) or "")))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def egressctl(a, *args):
    p = run_tool([binary("EGRESSCTL_BIN"), "-c", a.config, *args])
    assert p.returncode == 0, f"egressctl {args}: {p.returncode} {p.stderr}"
    return p.stdout


def scrape(a):
    return parse_prometheus(egressctl(a, "metrics"))


def ops_count(samples, path, outcome):
    return samples.get(("egressd_operations_total",
                        (("outcome", outcome), ("path", path))), 0)


def wait_counts(a, want, timeout=SHORT):
    """Wait until egressctl metrics shows at least the {(path, outcome): n}
    counts in want (heartbeats bring them); return the samples."""
    def ok():
        s = scrape(a)
        return s if all(ops_count(s, p, o) >= n
                        for (p, o), n in want.items()) else None
    return wait_until(ok, timeout, msg=f"metrics showing {want}")


def run_ops(orch, ops):
    ids = orch.enqueue(ops)["operation_ids"]
    kick(orch)
    wait_results(orch, ids)
    return ids


def test_egressctl_metrics_counts_operations(orch, agent):
    a = agent()
    a.wait_ready(2)
    run_ops(orch, [{} for _ in range(5)] + [{"path": NOPE}])
    s = wait_counts(a, {(HEALTH, "ok"): 5, (NOPE, "unsupported"): 1})
    assert ops_count(s, HEALTH, "ok") == 5
    assert ops_count(s, NOPE, "unsupported") == 1
    assert sum(v for (name, _), v in s.items()
               if name == "egressd_operations_total") == 6
    # the histogram: cumulative buckets up to +Inf == count == 6
    count = s[("egressd_operation_duration_seconds_count", ())]
    assert count == 6
    inf = s[("egressd_operation_duration_seconds_bucket", (("le", "+Inf"),))]
    assert inf == count
    les = [(float(dict(lbl)["le"]), v) for (name, lbl), v in s.items()
           if name == "egressd_operation_duration_seconds_bucket"]
    assert len(les) == BUCKETS
    les.sort()
    assert all(a_[1] <= b_[1] for a_, b_ in zip(les, les[1:])), les
    assert s[("egressd_operation_duration_seconds_sum", ())] >= 0
    assert s[("egressd_workers", ())] == 2
    assert s[("egressd_workers_ready", ())] == 2
    assert s[("egressd_worker_restarts_total", ())] == 0
    assert s[("egressd_results_resent_total", ())] == 0
    assert s[("egressd_reloads_total", ())] == 0
    assert ("egressd_stream_reconnects_total", ()) in s
    assert ("egressd_inflight", ()) in s

    text = egressctl(a, "metrics")
    for family, kind in (("egressd_operations_total", "counter"),
                         ("egressd_operation_duration_seconds", "histogram"),
                         ("egressd_results_resent_total", "counter"),
                         ("egressd_worker_restarts_total", "counter"),
                         ("egressd_stream_reconnects_total", "counter"),
                         ("egressd_reloads_total", "counter"),
                         ("egressd_workers", "gauge"),
                         ("egressd_inflight", "gauge")):
        assert f"# TYPE {family} {kind}\n" in text, family
        assert f"# HELP {family} " in text, family
    # --json: the same figures as JSON, one entry per family (not the
    # text wrapped in the control reply)
    rep = json.loads(egressctl(a, "metrics", "--json"))
    assert "text" not in rep
    fams = {f["name"]: f for f in rep["metrics"]}
    assert {x["name"] for f in fams.values() for x in f["samples"]} == {
        name for name, _ in s}
    ops = fams["egressd_operations_total"]
    assert ops["type"] == "counter" and ops["help"]
    assert {(x["labels"]["path"], x["labels"]["outcome"], x["value"])
            for x in ops["samples"]} >= {(HEALTH, "ok", 5),
                                         (NOPE, "unsupported", 1)}
    hist = fams["egressd_operation_duration_seconds"]
    assert hist["type"] == "histogram"
    assert len(hist["samples"]) == BUCKETS + 2
    assert hist["samples"][-1]["name"].endswith("_count")
    assert hist["samples"][-1]["value"] == count
    assert fams["egressd_workers"]["samples"][0]["value"] == 2

    # a reload is counted
    a.ctl({"cmd": "reload"})
    wait_until(lambda: scrape(a)[("egressd_reloads_total", ())] == 1,
               msg="egressd_reloads_total 1")


def test_totals_survive_worker_sigkill(orch, agent):
    a = agent()
    a.wait_ready(2)
    run_ops(orch, [{} for _ in range(6)])
    wait_counts(a, {(HEALTH, "ok"): 6})
    # the heartbeats have told the master; kill the busiest worker
    h = a.health()
    victim = max(h["workers"], key=lambda w: w["done"])
    assert victim["done"] > 0
    os.kill(victim["pid"], signal.SIGKILL)
    a.wait_ready(2, exclude_ids=[victim["instance_id"]])
    s = scrape(a)
    assert ops_count(s, HEALTH, "ok") == 6, \
        "the killed worker's operations left the totals"
    assert s[("egressd_operation_duration_seconds_count", ())] == 6
    assert s[("egressd_worker_restarts_total", ())] >= 1
    # and counting goes on from there
    run_ops(orch, [{} for _ in range(2)])
    s = wait_counts(a, {(HEALTH, "ok"): 8})
    assert ops_count(s, HEALTH, "ok") == 8


def wait_posts(orch, endpoint, n, since=0):
    return wait_until(
        lambda: (lambda r: r if len(r) >= n else None)(
            orch.get_requests(endpoint=endpoint, since=since)),
        SHORT, msg=f"{n} POST(s) to {endpoint}")


def seq(orch):
    with orch.lock:
        return orch.request_seq


def test_push_metrics_carries_counters(orch, agent):
    a = agent()
    a.wait_ready(2)
    assert orch.wait_counts(SHORT, streams=1)
    master_id = a.status()["instance_id"]
    run_ops(orch, [{} for _ in range(3)] + [{"path": NOPE}])
    wait_counts(a, {(HEALTH, "ok"): 3, (NOPE, "unsupported"): 1})

    mark = seq(orch)
    orch.send_event({"type": "heartbeat", "ts": time.time(),
                     "push_metrics": True})
    (post,) = wait_posts(orch, EP_METRICS, 1, mark)
    assert post["method"] == "POST" and post["auth_ok"]
    assert post["instance_id"] == master_id
    body = post["body"]
    assert isinstance(body, dict), body
    ops = {e["path"]: e["outcomes"] for e in body["operations"]}
    assert ops[HEALTH] == {"ok": 3}
    assert ops[NOPE] == {"unsupported": 1}
    d = body["duration_seconds"]
    assert len(d["buckets"]) == BUCKETS and sum(d["buckets"]) == 4
    assert d["sum"] >= 0
    for key in ("worker_restarts", "stream_reconnects", "reloads",
                "results_resent"):
        assert body[key] == 0, key
    assert body["workers"] == 2
    assert body["done"] == 3 and body["failed"] == 1

    # an event of type push_metrics asks the same
    mark = seq(orch)
    orch.send_event({"type": "push_metrics"})
    (post,) = wait_posts(orch, EP_METRICS, 1, mark)
    assert post["body"]["operations"] == body["operations"]


def _check_lines(post, token):
    lines = post["body"]["lines"]
    assert isinstance(lines, list) and lines
    assert all(isinstance(ln, str) for ln in lines)
    assert not any(token in ln for ln in lines), "the token was pushed"
    assert token not in json.dumps(post["body"])
    return lines


def test_push_logs(orch, agent):
    a = agent()
    a.wait_ready(2)
    assert orch.wait_counts(SHORT, streams=1)
    run_ops(orch, [{}])
    mark = seq(orch)
    orch.send_event({"type": "heartbeat", "ts": time.time(),
                     "push_logs": True})
    (post,) = wait_posts(orch, EP_LOGS, 1, mark)
    assert post["instance_id"] == a.status()["instance_id"]
    lines = _check_lines(post, a.token)
    # log.file is a file: its tail holds the workers' lines too
    assert any(" worker 1: " in ln for ln in lines), lines[-20:]
    assert any(" master: " in ln for ln in lines), lines[-20:]
    assert all(ln in a.log() for ln in lines[-5:])

    mark = seq(orch)
    orch.send_event({"type": "push_logs"})
    (post,) = wait_posts(orch, EP_LOGS, 1, mark)
    _check_lines(post, a.token)


def test_push_logs_without_log_file(orch, agent):
    a = agent(log={"file": "stderr", "level": "info"})
    a.wait_ready(2)
    assert orch.wait_counts(SHORT, streams=1)
    mark = seq(orch)
    orch.send_event({"type": "push_logs"})
    (post,) = wait_posts(orch, EP_LOGS, 1, mark)
    lines = _check_lines(post, a.token)
    # the master's own recent lines, as it wrote them to stderr
    assert all(" master: " in ln for ln in lines), lines[:5]
    assert any("starting" in ln for ln in lines)
    assert lines[-1] in a.stderr()


def test_push_retried_then_given_up(orch, agent):
    a = agent()
    a.wait_ready(2)
    assert orch.wait_counts(SHORT, streams=1)

    # metrics: two 500s, then accepted on the third try
    orch.fail_next(EP_METRICS, 2, 500)
    mark = seq(orch)
    orch.send_event({"type": "push_metrics"})
    posts = wait_posts(orch, EP_METRICS, 3, mark)
    wait_until(lambda: orch.get_requests(endpoint=EP_METRICS,
                                         since=mark)[2]["status"] == 200,
               SHORT, msg="the third try answered")
    posts = orch.get_requests(endpoint=EP_METRICS, since=mark)
    assert [p["status"] for p in posts] == [500, 500, 200]
    assert posts[0]["body"] == posts[2]["body"]
    assert posts[1]["time"] < posts[2]["time"]
    a.wait_log("metrics push failed (HTTP 500); retrying in 1s")
    a.wait_log("metrics push failed (HTTP 500); retrying in 2s")

    # logs: three failures are the end of it
    orch.fail_next(EP_LOGS, 5, 503)
    mark = seq(orch)
    orch.send_event({"type": "push_logs"})
    wait_posts(orch, EP_LOGS, 3, mark)
    a.wait_log("logs push failed (HTTP 503); given up after 3 tries")
    time.sleep(1.5)
    assert len(orch.get_requests(endpoint=EP_LOGS, since=mark)) == 3
    assert orch.get_faults()["fail"][EP_LOGS]["count"] == 2
    # a later request starts afresh
    orch.set_faults(fail={EP_LOGS: 0})
    mark = seq(orch)
    orch.send_event({"type": "push_logs"})
    (post,) = wait_posts(orch, EP_LOGS, 1, mark)
    wait_until(lambda: orch.get_requests(endpoint=EP_LOGS,
                                         since=mark)[0]["status"] == 200,
               SHORT, msg="logs accepted")


def test_exposition_passes_promtool(orch, agent):
    """Prometheus's own linter finds nothing in `egressctl metrics`, with
    every family present (operations run, one error outcome, the link,
    outbox and process_* series).  promtool comes with Debian's prometheus
    package, which scripts/install-deps.sh installs."""
    import shutil
    import subprocess
    import pytest
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian package prometheus) is not installed")
    a = agent()
    a.wait_ready(2)
    run_ops(orch, [{}, {"path": NOPE}])
    wait_counts(a, {(HEALTH, "ok"): 1, (NOPE, "unsupported"): 1})
    text = egressctl(a, "metrics")
    for family in ("egressd_orchestrator_up", "egressd_outbox_rows",
                   "egressd_results_dead_lettered_total",
                   "process_resident_memory_bytes", "egressd_build_info"):
        assert f"# TYPE {family} " in text, family
    p = subprocess.run([promtool, "check", "metrics"], input=text,
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and p.stdout.strip() == "" and \
        p.stderr.strip() == "", (p.stdout, p.stderr)
