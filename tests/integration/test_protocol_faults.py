"""Orchestrator protocol under faults: an unreachable or refusing orchestrator,
a silent stream, garbage and oversized SSE events, malformed and oversized
operation bodies, broken connections (DESIGN.md section 2)."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from proto_helpers import (  # noqa: E402
    DEADLINE, EP_OPERATION, EP_STREAM, SCALE, SHORT, TOKEN_ID,
    FakeOrchestrator, free_closed_port, kick, new_token, requests,
    serve_raw_operations, wait_results, wait_until)
from proto_helpers import agent, orch, workdir  # noqa: E402,F401 (fixtures)
from delivery import assert_delivered, counted  # noqa: E402


def _assert_down(a):
    h = a.health()
    assert h["ready"] == 0, f"a worker is ready without an orchestrator: {h}"
    assert h["status"] == "down", h
    assert h["workers"], f"no workers while the orchestrator is down: {h}"
    assert all(w.get("ready") is not True for w in h["workers"]), h
    return h


def _serves(orch, a, n=3, push=True):
    """New operations are still fetched (and pushed ones delivered)."""
    ids = orch.enqueue([{} for _ in range(n)])["operation_ids"]
    kick(orch)
    wait_results(orch, ids)
    if push:
        rep = orch.push([{} for _ in range(n)])
        assert rep["delivered"] >= 1, "no open stream to push on"
        wait_results(orch, rep["operation_ids"])
    a.check_alive()


# --------------------------------------------------------------------------
# 7. orchestrator down at start

def test_refusing_orchestrator_no_request_storm(orch, agent):
    orch.set_faults(refuse_all=True)
    a = agent()
    t0 = time.time()
    time.sleep(6.0)
    a.check_alive()
    _assert_down(a)
    elapsed = time.time() - t0
    gets = requests(orch, endpoint=EP_OPERATION, until_time=t0 + elapsed)
    streams = requests(orch, endpoint=EP_STREAM, until_time=t0 + elapsed)
    limit = 2 * (elapsed / 2.0 + 2)
    assert len(gets) <= limit, \
        f"{len(gets)} GET operation in {elapsed:.1f}s (limit {limit:.0f})"
    assert len(streams) <= 4, f"{len(streams)} stream connects in {elapsed:.1f}s"
    assert gets + streams, "no request reached the refusing orchestrator"
    assert all(r["status"] == 503 for r in gets + streams)

    # the orchestrator recovers: workers become ready and serve
    orch.set_faults(refuse_all=False)
    a.wait_ready(2, timeout=DEADLINE)
    ids = orch.enqueue([{} for _ in range(4)])["operation_ids"]
    wait_results(orch, ids)             # by polling: the stream may be
    a.check_alive()                     # still backing off


def test_orchestrator_unreachable_then_up(agent):
    port = free_closed_port()
    token = new_token()
    a = agent(url=f"http://127.0.0.1:{port}", token=token)
    time.sleep(2.5)
    a.check_alive()
    _assert_down(a)
    assert "stream ended" in a.log() or "reconnecting" in a.log()
    o = FakeOrchestrator("127.0.0.1", port, TOKEN_ID, token, 0.5).start()
    try:
        a.wait_ready(2, timeout=DEADLINE)
        ids = o.enqueue([{} for _ in range(4)])["operation_ids"]
        wait_results(o, ids)
        assert all(r["result"].get("status") == "ok" for r in o.get_results())
        assert o.wait_counts(30.0 * SCALE, streams=1), \
            "the stream never connected"
    finally:
        a.stop()
        o.stop()


def test_stream_backoff_grows(orch, agent):
    """Failed stream connections back off 2 s, 4 s, 8 s... (±20%)."""
    orch.set_faults(fail={"stream": [100, 503]})
    agent(server={"workers": 1})
    wait_until(lambda: len(requests(orch, endpoint=EP_STREAM)) >= 3,
               timeout=12.0 + 4.0 * SCALE, msg="3 stream attempts")
    t = [r["time"] for r in requests(orch, endpoint=EP_STREAM)]
    g1, g2 = t[1] - t[0], t[2] - t[1]
    assert 1.5 <= g1 <= 2.4 + 1.0 * SCALE, f"first back-off {g1:.2f}s"
    assert 3.1 <= g2 <= 4.8 + 1.0 * SCALE, f"second back-off {g2:.2f}s"


# --------------------------------------------------------------------------
# 8. silent stream

def test_silent_stream_reconnects(orch, agent):
    orch.set_faults(heartbeats=False)
    a = agent(orchestrator={"events_timeout": 2.0})
    assert orch.wait_counts(SHORT, stream_connects=1)
    t0 = time.monotonic()
    assert orch.wait_counts(2.0 + 2.4 + 5.0 * SCALE, stream_connects=2), \
        "no reconnect after events_timeout without heartbeats"
    waited = time.monotonic() - t0
    assert waited >= 1.8, f"reconnected after {waited:.2f}s, before the timeout"
    a.wait_log("no heartbeat")
    a.check_alive()
    # heartbeats back: the stream stays up
    orch.set_faults(heartbeats=True)
    assert orch.wait_counts(DEADLINE, streams=1)
    time.sleep(0.7)                     # a heartbeat has arrived by now
    n = orch.state()["stream_connects"]
    at = len(a.log())
    time.sleep(2.6)                     # past events_timeout since connecting
    assert "no heartbeat" not in a.log()[at:], \
        "the watchdog fired although heartbeats arrive"
    assert orch.state()["stream_connects"] == n
    a.wait_ready(2)
    _serves(orch, a)


def test_stream_closed_by_orchestrator_reconnects(orch, agent):
    a = agent()
    a.wait_ready(2)
    assert orch.wait_counts(SHORT, streams=1)
    orch.close_streams(clean=False)
    assert orch.wait_counts(2.4 + 5.0 * SCALE, stream_connects=2)
    orch.close_streams(clean=True)
    assert orch.wait_counts(2.4 + 5.0 * SCALE, stream_connects=3)
    assert orch.wait_counts(SHORT, streams=1)
    _serves(orch, a)


# --------------------------------------------------------------------------
# 9. garbage and oversized SSE

def test_garbage_sse_events(orch, agent):
    a = agent(orchestrator={"max_event_bytes": 4096})
    h = a.wait_ready(2)
    pids = {w["pid"] for w in h["workers"]}
    assert orch.wait_counts(SHORT, streams=1)
    connects = orch.state()["stream_connects"]

    expect = {
        "bad_json": "events: malformed event",
        "not_object": "not a JSON object",
        "unknown_type": "unknown event type",
    }
    for kind in ("bytes", "no_colon", "bad_json", "not_object",
                 "unknown_type"):
        at = len(a.log())
        assert orch.set_faults(garbage_sse=kind)["delivered"] == 1
        if kind in expect:
            a.wait_log(expect[kind])
            assert expect[kind] in a.log()[at:], kind
        time.sleep(0.2)
        a.check_alive()
    at = len(a.log())
    orch.set_faults(garbage_sse={"kind": "all", "bytes": 2000})
    wait_until(lambda: "events:" in a.log()[at:], msg="garbage logged")
    # an event over max_event_bytes is dropped with a log line
    at = len(a.log())
    assert orch.set_faults(oversized_sse=10000)["delivered"] == 1
    wait_until(lambda: "max_event_bytes" in a.log()[at:],
               msg="a log line about the oversized event")
    # a pushed operation after it still arrives: the stream is intact
    time.sleep(0.3)
    a.check_alive()
    assert orch.state()["stream_connects"] == connects, \
        "the stream was reconnected because of bad events"
    assert orch.state()["streams_open"] == 1
    _serves(orch, a)
    assert {w["pid"] for w in a.health()["workers"]} == pids
    # nothing of the garbage turned into a result
    assert orch.state()["duplicate_results"] == 0


def test_oversized_sse_event_unterminated_then_valid(orch, agent):
    a = agent(orchestrator={"max_event_bytes": 4096})
    a.wait_ready(2)
    assert orch.wait_counts(SHORT, streams=1)
    connects = orch.state()["stream_connects"]
    # a huge event whose end comes only with the next blank line
    orch.set_faults(oversized_sse={"bytes": 200000, "terminated": False})
    orch.send_event({"raw": "\n\n"})
    a.wait_log("max_event_bytes")
    rep = orch.push({})
    wait_results(orch, rep["operation_ids"])
    assert orch.state()["stream_connects"] == connects
    a.check_alive()


def test_sse_framing_variants(orch, agent):
    """id:/event: lines and an unchunked stream are understood."""
    orch.set_faults(sse_event_field=True, sse_id_field=True, sse_chunked=False)
    a = agent()
    a.wait_ready(2)
    assert orch.wait_counts(SHORT, streams=1)
    _serves(orch, a)


# --------------------------------------------------------------------------
# 10. malformed and oversized operation bodies

def test_malformed_operation_bodies(orch, agent):
    a = agent()
    h = a.wait_ready(2)
    pids = {w["pid"] for w in h["workers"]}
    at = len(a.log())
    bodies = [b'{"operation_id": "trunc-1", "path": ',
              b"this is not json",
              b"[1, 2, 3]",
              b'"a string"',
              b"{" * 200 + b"}" * 200,          # nested too deep
              b'{"operation_id": "badop-1", "path": "/api/v1/test/health",'
              b' "operation": [1, 2]}']
    serve_raw_operations(orch, bodies)
    for _ in range(len(bodies)):
        kick(orch)
        time.sleep(0.1)
    wait_until(lambda: len([t for t in orch.get_taken()
                            if t["via"] == "raw"]) == len(bodies),
               msg="every malformed body served")
    wait_until(lambda: a.log()[at:].count("poller:") >= 4,
               msg="log lines about the malformed operations")
    log = a.log()[at:]
    assert "not valid JSON" in log or "malformed" in log, log[-3000:]
    # an operation whose body is not an object gets an error result
    res = wait_results(orch, ["badop-1"])
    assert res["badop-1"][0]["result"].get("error_type") == "invalid_request"
    a.check_alive()
    _serves(orch, a, push=False)
    assert {w["pid"] for w in a.health()["workers"]} == pids, \
        "a worker was replaced after a malformed operation"
    assert "trunc-1" not in {r["operation_id"] for r in orch.get_results()}


def test_oversized_operation_body(orch, agent):
    a = agent(orchestrator={"max_body_bytes": 65536})
    h = a.wait_ready(2)
    pids = {w["pid"] for w in h["workers"]}
    at = len(a.log())
    orch.set_faults(oversized_operation=100000)
    kick(orch)
    wait_until(lambda: orch.get_faults()["oversized_operation"]["count"] == 0,
               msg="the oversized operation to be served")
    wait_until(lambda: "65536" in a.log()[at:],
               msg="a log line naming the body limit")
    line = [ln for ln in a.log()[at:].splitlines() if "65536" in ln][0]
    assert "warning" in line or "error" in line, line
    time.sleep(0.3)
    a.check_alive()
    _serves(orch, a, push=False)
    assert {w["pid"] for w in a.health()["workers"]} == pids
    # a body under the limit is fine
    orch.set_faults(oversized_operation=30000)
    kick(orch)
    wait_until(lambda: orch.get_faults()["oversized_operation"]["count"] == 0,
               msg="the large operation to be served")
    big = [t["operation_id"] for t in orch.get_taken() if t["via"] == "oversized"]
    wait_results(orch, big[-1:])


def test_truncated_responses(orch, agent):
    """A response cut off mid-body (drop fault) on the operation, result and
    full-request calls: nothing crashes, results are retried.  The cut 2xx
    to the result PUT lost the answer to a PUT the fake had taken: the
    retry is a duplicate, counted and logged as a re-send."""
    a = agent()
    h = a.wait_ready(2)
    pids = {w["pid"] for w in h["workers"]}
    orch.set_faults(drop={"result": 1})
    (op1,) = orch.enqueue({})["operation_ids"]
    kick(orch)
    wait_until(lambda: len(orch.get_results(operation_id=op1)) >= 2,
               msg="the retried result")
    assert assert_delivered(orch, [op1], allowed_dups=counted(a)) == {op1: 1}
    orch.set_faults(drop={"operation": 2})
    orch.enqueue([{}, {}])
    kick(orch)
    kick(orch)
    wait_until(lambda: "drop" not in orch.get_faults() or
               not orch.get_faults()["drop"], msg="drops used up")
    orch.set_faults(drop={"request": 1})
    (op2,) = orch.enqueue({"size_exceeded": True})["operation_ids"]
    kick(orch)
    res = wait_results(orch, [op2])
    assert res[op2][0]["result"].get("status") == "ok", res[op2]
    a.check_alive()
    _serves(orch, a, push=False)
    assert {w["pid"] for w in a.health()["workers"]} == pids


def test_slow_orchestrator_does_not_block_stream(orch, agent):
    """Slow operation GETs do not hold up pushed operations."""
    a = agent()
    a.wait_ready(2)
    orch.set_faults(delay={"operation": 2.0})
    kick(orch)
    time.sleep(0.3)
    t0 = time.monotonic()
    rep = orch.push({})
    wait_results(orch, rep["operation_ids"], timeout=SHORT)
    assert time.monotonic() - t0 < 1.5 * SCALE, "push waited for a slow GET"


# --------------------------------------------------------------------------
# Regressions

def test_empty_operation_replies_do_not_loop(orch, agent):
    """A 200 that holds no operation waits for the next poll_interval."""
    a = agent(server={"workers": 1})
    a.wait_ready(1)
    serve_raw_operations(orch, [b"{}"] * 50)
    t0 = time.time()
    kick(orch)
    time.sleep(1.5)
    gets = requests(orch, endpoint=EP_OPERATION, since_time=t0)
    # poll_interval is 2 s: the kick's GET, perhaps one timed poll
    assert len(gets) <= 3, f"{len(gets)} GETs in 1.5 s after empty 200s"
    a.check_alive()


def test_unframeable_pushed_operation_does_not_block_the_queue(orch, agent):
    a = agent()
    a.wait_ready(2)
    assert orch.wait_counts(SHORT, streams=1)
    at = len(a.log())
    orch.send_event({"operation_id": "x" * 70000,
                     "path": "/api/v1/test/health", "operation": {}})
    rep = orch.push([{} for _ in range(3)])
    wait_results(orch, rep["operation_ids"])
    a.wait_log("without a usable \"operation_id\"", start=at)
    a.check_alive()


def test_fast_stop_reports_cancelled_downloads(orch, agent):
    import signal
    a = agent(server={"workers": 1})
    a.wait_ready(1)
    orch.set_faults(delay={"request": 5.0})
    (op_id,) = orch.enqueue({"size_exceeded": True})["operation_ids"]
    kick(orch)
    wait_until(lambda: requests(orch, endpoint="request"),
               msg="the full-operation download to start")
    a.signal(signal.SIGINT)
    assert a.wait_exit() == 0
    res = wait_results(orch, [op_id])
    (r,) = res[op_id]
    assert r["result"].get("error_type") == "internal", r
    assert "cancelled" in r["result"]["error"], r
    assert requests(orch, endpoint="shutdown"), "no shutdown notice"
