"""Health and metrics that see the orchestrator (issue 14): `egressctl
health` turns degraded (exit 1, with its reason) when no worker has had a
successful exchange for health.stale_after and healthy again once one has;
a result older than health.outbox_max_age degrades it too; status and
health carry the contact, stream and outbox sections; metrics.textfile is
written for node_exporter in a format a strict parser accepts; a stream
that connects but sends no heartbeat is logged with a hint at response
buffering; and while the orchestrator cannot be reached at start systemd
hears STATUS= lines with the last error."""

import json
import math
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from proto_helpers import (  # noqa: E402
    DEADLINE, SHORT, TOKEN_ID, free_closed_port, kick, new_token,
    wait_until)
from proto_helpers import agent, orch, workdir  # noqa: E402,F401 (fixtures)
from common import binary, run_tool  # noqa: E402
from fake_orchestrator import FakeOrchestrator  # noqa: E402

STALE = 2.0
FAST = {"orchestrator": {"poll_interval": 0.5},
        "health": {"stale_after": STALE}}

TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}
NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
SAMPLE_RE = re.compile(
    r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="
    r'"(?:[^"\\\n]|\\[\\"n])*",?)*)\})? (\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
HIST_SUFFIXES = ("_bucket", "_sum", "_count")


def _family_of(name, types):
    if name in types:
        return name
    for suffix in HIST_SUFFIXES:
        base = name[:-len(suffix)]
        if name.endswith(suffix) and types.get(base) == "histogram":
            return base
    return None


def parse_exposition(text):
    """The text exposition format, strictly (what `promtool check metrics`
    insists on): HELP and TYPE once per family and before its samples, a
    family's lines together, samples only of declared families, counters
    named *_total, no series twice, values that are floats, histograms
    cumulative up to +Inf == _count.  -> {(name, labels): value}."""
    assert text.endswith("\n"), "exposition must end with a newline"
    types, helps, samples, done = {}, set(), {}, set()
    current = None
    for line in text.splitlines():
        assert line, "empty line in the exposition"
        if line.startswith("#"):
            parts = line.split(" ", 3)
            assert len(parts) >= 3 and parts[1] in ("HELP", "TYPE"), line
            name = parts[2]
            assert NAME_RE.match(name), line
            if name != current:
                assert name not in done, f"family {name} split: {line}"
                if current is not None:
                    done.add(current)
                current = name
            if parts[1] == "HELP":
                assert name not in helps, f"second HELP: {line}"
                assert len(parts) == 4 and parts[3].strip(), line
                helps.add(name)
            else:
                assert name not in types, f"second TYPE: {line}"
                assert len(parts) == 4 and parts[3] in TYPES, line
                assert not any(n for (n, _) in samples
                               if _family_of(n, {name: parts[3]}) == name), \
                    f"TYPE after samples: {line}"
                types[name] = parts[3]
                if parts[3] == "counter":
                    assert name.endswith("_total"), f"counter {name}"
            continue
        m = SAMPLE_RE.match(line)
        assert m, f"not a sample line: {line!r}"
        family = _family_of(m.group(1), types)
        assert family is not None, f"sample of no declared family: {line}"
        assert family == current, f"family {family} not together: {line}"
        pairs = LABEL_RE.findall(m.group(2) or "")
        names = [k for k, _ in pairs]
        assert len(names) == len(set(names)), f"label twice: {line}"
        key = (m.group(1), tuple(sorted(pairs)))
        assert key not in samples, f"series twice: {line}"
        value = float(m.group(3))       # "+Inf", "NaN" parse too
        samples[key] = value
    for name, kind in types.items():
        assert name in helps, f"{name} has no HELP"
        if kind == "histogram":
            buckets = sorted(
                (float(dict(lbl)["le"]), v) for (n, lbl), v in samples.items()
                if n == name + "_bucket")
            assert buckets and buckets[-1][0] == math.inf, name
            assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:]))
            assert buckets[-1][1] == samples[(name + "_count", ())]
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def health(a):
    """(exit status, the --json reply) of `egressctl health`."""
    p = run_tool([binary("EGRESSCTL_BIN"), "-c", a.config, "health",
                  "--json"])
    return p.returncode, json.loads(p.stdout)


def wait_health(a, rc, timeout=DEADLINE):
    """Wait until `egressctl health` exits rc; -> (seconds, reply)."""
    t0 = time.monotonic()
    rep = wait_until(lambda: (lambda r: r[1] if r[0] == rc else None)(
        health(a)), timeout, msg=f"egressctl health exit {rc}")
    return time.monotonic() - t0, rep


def test_orchestrator_loss_degrades_then_recovers(orch, agent):
    a = agent(**FAST)
    a.wait_ready(2)
    _, rep = wait_health(a, 0)
    assert rep["status"] == "healthy" and rep["reasons"] == [], rep
    assert rep["contact"]["up"] is True, rep
    assert rep["contact"]["stale_after"] == STALE, rep
    assert rep["stream"]["state"] == "connected", rep
    assert rep["outbox"] == {"rows": 0, "dead": 0, "oldest_age": 0,
                             "max_age": 3600}, rep
    for w in rep["workers"]:
        assert w["orchestrator"]["state"] == "connected", w
        assert w["orchestrator"]["failures"] == 0, w

    orch.stop()
    took, rep = wait_health(a, 1)
    print(f"orchestrator loss to degraded: {took:.2f}s "
          f"(stale_after {STALE}s, poll_interval 0.5s)")
    assert rep["status"] == "degraded", rep
    assert any("no successful exchange with the orchestrator" in r["reason"]
               and "health.stale_after 2s" in r["reason"]
               for r in rep["reasons"]), rep
    assert rep["contact"]["up"] is False, rep
    assert rep["contact"]["contact_age"] > STALE, rep
    p = run_tool([binary("EGRESSCTL_BIN"), "-c", a.config, "health"])
    assert p.returncode == 1, p
    assert "reason: no successful exchange" in p.stdout, p.stdout
    # the links say why, per worker and for the stream
    wait_until(lambda: all(
        w["orchestrator"]["state"] == "backing_off" and
        w["orchestrator"]["failures"] >= 1 and
        w["orchestrator"]["last_error"] for w in health(a)[1]["workers"]),
        SHORT, msg="every worker backing off with an error")
    st = a.status()
    assert st["stream"]["state"] in ("backing_off", "connecting"), st
    assert st["stream"]["last_error"], st

    orch.start()            # the same port
    took, rep = wait_health(a, 0)
    print(f"orchestrator back to healthy: {took:.2f}s")
    assert rep["status"] == "healthy" and rep["reasons"] == [], rep
    assert rep["contact"]["up"] is True, rep


def test_old_outbox_row_degrades(orch, agent):
    a = agent(orchestrator={"poll_interval": 0.5},
              health={"outbox_max_age": 1.0})
    a.wait_ready(2)
    orch.set_faults(fail={"result": [1000, 500]})
    orch.enqueue([{}])
    kick(orch)
    _, rep = wait_health(a, 1)
    reason = [r["reason"] for r in rep["reasons"]
              if "wait in the outbox" in r["reason"]]
    assert reason and "health.outbox_max_age 1s" in reason[0], rep
    assert rep["outbox"]["rows"] == 1 and rep["outbox"]["oldest_age"] > 1, \
        rep
    orch.set_faults(clear=True)
    wait_until(lambda: orch.get_results(), DEADLINE, msg="the result")
    _, rep = wait_health(a, 0)
    assert rep["outbox"]["rows"] == 0, rep


def test_textfile_metrics(orch, agent):
    a = agent(metrics={"textfile": "egressd.prom", "textfile_interval": 1.0},
              **FAST)
    a.wait_ready(2)
    path = os.path.join(a.dir, "egressd.prom")

    def scrape_file(pred):
        def ok():
            try:
                with open(path) as f:
                    s = parse_exposition(f.read())
            except FileNotFoundError:
                return None
            return s if pred(s) else None
        return ok

    s = wait_until(scrape_file(lambda s: value(
        s, "egressd_workers_ready") == 2 and value(
        s, "egressd_orchestrator_up") == 1 and value(
        s, "egressd_stream_connected") == 1), DEADLINE,
        msg="a textfile with 2 ready workers, in contact")
    assert os.stat(path).st_mode & 0o777 == 0o644
    assert value(s, "egressd_orchestrator_last_contact_timestamp_seconds") \
        > time.time() - 60
    assert value(s, "egressd_outbox_rows") == 0
    assert value(s, "egressd_outbox_dead_rows") == 0
    assert value(s, "egressd_outbox_oldest_age_seconds") == 0
    assert value(s, "egressd_result_deliveries_failed_total") == 0
    assert [k for k in s if k[0] == "egressd_build_info"], s
    procs = {dict(lbl)["role"] for (n, lbl) in s
             if n == "process_resident_memory_bytes"}
    assert procs == {"master", "worker"}, procs
    for name in ("process_resident_memory_bytes", "process_open_fds",
                 "process_cpu_seconds_total", "process_start_time_seconds"):
        series = [v for (n, _), v in s.items() if n == name]
        assert len(series) == 3, (name, series)      # master + 2 workers
    starts = [v for (n, _), v in s.items()
              if n == "process_start_time_seconds"]
    assert all(time.time() - 600 < v <= time.time() for v in starts), starts
    assert all(v > 0 for (n, _), v in s.items() if n == "process_open_fds")

    # egressctl metrics is the same exposition
    p = run_tool([binary("EGRESSCTL_BIN"), "-c", a.config, "metrics"])
    assert p.returncode == 0, p
    assert value(parse_exposition(p.stdout), "egressd_workers") == 2

    orch.stop()
    wait_until(scrape_file(lambda s: value(
        s, "egressd_orchestrator_up") == 0 and value(
        s, "egressd_stream_connected") == 0), DEADLINE,
        msg="a textfile saying the orchestrator is down")


def test_silent_stream_hints_at_buffering(orch, agent):
    orch.set_faults(heartbeats=False)
    a = agent(orchestrator={"events_timeout": 1.0})
    a.wait_ready(2)
    a.wait_log("may be buffering the response", DEADLINE)
    assert "proxy_buffering off" in a.log()
    rep = wait_until(lambda: (lambda st: st if "buffering" in
                              st["stream"]["last_error"] else None)(
        a.status()), SHORT, msg="the stream's error naming buffering")
    assert rep["stream"]["state"] in ("backing_off", "connecting",
                                      "connected"), rep


def test_systemd_status_while_waiting(agent, workdir):
    port = free_closed_port()
    token = new_token()
    path = os.path.join(workdir, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    seen = []

    def got(needle):
        def ok():
            try:
                seen.append(sock.recv(4096).decode())
            except socket.timeout:
                pass
            return any(needle in m for m in seen)
        return ok

    orch = None
    try:
        a = agent(url=f"http://127.0.0.1:{port}", token=token,
                  env={"NOTIFY_SOCKET": path},
                  orchestrator={"poll_interval": 0.5})
        wait_until(got("STATUS=waiting for the orchestrator (0/2 workers "
                       "ready): "), DEADLINE, msg="a waiting STATUS line")
        line = [m for m in seen if "STATUS=waiting" in m][0]
        assert "onnect" in line, line       # curl's connect error
        assert not any("READY=1" in m for m in seen), seen
        orch = FakeOrchestrator("127.0.0.1", port, TOKEN_ID, token, 0.5)
        orch.start()
        wait_until(got("READY=1"), DEADLINE, msg="READY=1")
        a.check_alive()
    finally:
        sock.close()
        if orch is not None:
            orch.stop()
