"""Tests of the fake orchestrator itself (run: python3 -m pytest -q tests/orchestrator).

Every server started here is stopped, and every wait has a bound.
"""

import http.client
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_orchestrator import SIZE_EXCEEDED_KEY, FakeOrchestrator  # noqa: E402

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_orchestrator.py")
TOKEN_ID, TOKEN = "tid", "s3cret"
TIMEOUT = 5.0
AUTH = {"x-mcd-id": TOKEN_ID, "x-mcd-token": TOKEN,
        "x-mcd-agent-instance-id": "inst-1", "User-Agent": "egressd/test"}


@pytest.fixture
def orch():
    server = FakeOrchestrator("127.0.0.1", 0, TOKEN_ID, TOKEN, heartbeat_interval=0.2)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def call(orch, method, path, body=None, headers=None, conn=None):
    """One request -> (status, parsed JSON or raw bytes or None, response)."""
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", orch.port, timeout=TIMEOUT)
    try:
        data = None if body is None else json.dumps(body).encode()
        hdrs = dict(headers or {})
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw
        return resp.status, parsed, resp
    finally:
        if own:
            conn.close()


def agent(orch, method, path, body=None, instance="inst-1", conn=None):
    headers = dict(AUTH, **{"x-mcd-agent-instance-id": instance})
    return call(orch, method, path, body, headers, conn)


def admin(orch, method, path, body=None):
    status, reply, _ = call(orch, method, path, body)
    assert status == 200, (path, status, reply)
    return reply


class SSEReader:
    """Reads events from GET /stream with a socket timeout on every read."""

    def __init__(self, orch, instance="master-1", headers=None):
        self.conn = http.client.HTTPConnection("127.0.0.1", orch.port, timeout=TIMEOUT)
        hdrs = dict(AUTH, **{"x-mcd-agent-instance-id": instance,
                             "Accept": "text/event-stream"})
        self.conn.request("GET", "/stream", headers=dict(hdrs, **(headers or {})))
        self.resp = self.conn.getresponse()
        self.last_id = None     # the ID of the last event read

    def event(self):
        """The next event's data, parsed; None at end of stream."""
        fields = {}
        while True:
            line = self.resp.readline()
            if not line:
                return None
            line = line.rstrip(b"\r\n")
            if not line:
                if "id" in fields:
                    self.last_id = fields["id"]
                if "data" in fields:
                    return json.loads(fields["data"])
                continue
            name, _, value = line.decode().partition(":")
            fields[name] = value.lstrip()

    def next_of(self, kind):
        """Skip heartbeats until an event whose type is kind (bounded)."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            ev = self.event()
            if ev is None or ev.get("type") == kind or (kind == "operation"
                                                        and "operation_id" in ev):
                return ev
        raise AssertionError(f"no {kind} event within {TIMEOUT}s")

    def line_starting(self, prefix):
        """Skip raw lines until one starts with prefix (bounded)."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            line = self.resp.readline()
            if not line or line.startswith(prefix):
                return line
        raise AssertionError(f"no line starting {prefix!r} within {TIMEOUT}s")

    def close(self):
        self.conn.close()


@pytest.fixture
def sse(orch):
    readers = []

    def open_stream(instance="master-1", **kw):
        reader = SSEReader(orch, instance, **kw)
        readers.append(reader)
        return reader
    try:
        yield open_stream
    finally:
        for reader in readers:
            reader.close()


# ----- auth and the operation cycle ---------------------------------------------

def test_auth_is_required(orch):
    assert call(orch, "GET", "/api/v1/agent/operation")[0] == 401
    bad = dict(AUTH, **{"x-mcd-token": "wrong"})
    status, reply, resp = call(orch, "GET", "/api/v1/agent/operation", headers=bad)
    assert status == 401 and "error" in reply
    assert resp.getheader("Content-Type") == "application/json"
    assert agent(orch, "GET", "/api/v1/agent/operation")[0] == 204
    recs = orch.get_requests(path="/api/v1/agent/operation")
    assert [r["status"] for r in recs] == [401, 401, 204]
    assert recs[2]["user_agent"] == "egressd/test" and recs[2]["auth_ok"]
    assert TOKEN not in json.dumps(recs)


def test_enqueue_get_then_204(orch):
    reply = admin(orch, "POST", "/admin/enqueue",
                  {"path": "/api/v1/test/health", "operation": {"trace_id": "t1"}})
    (op_id,) = reply["operation_ids"]
    assert reply["queue_length"] == 1
    status, op, _ = agent(orch, "GET", "/api/v1/agent/operation", instance="w1")
    assert status == 200
    assert op == {"operation_id": op_id, "path": "/api/v1/test/health",
                  "operation": {"trace_id": "t1"}}
    status, body, resp = agent(orch, "GET", "/api/v1/agent/operation", instance="w1")
    assert status == 204 and body is None
    assert orch.get_taken()[0]["instance_id"] == "w1"
    state = admin(orch, "GET", "/admin/state")
    assert state["instances"]["w1"]["operations"] == 1
    assert state["instances"]["w1"]["empty_polls"] == 1
    assert state["counts"]["operation"] == 2


def test_enqueue_many_keeps_given_ids(orch):
    reply = orch.enqueue([{"operation_id": "a"}, {"operation_id": "b"}])
    assert reply["operation_ids"] == ["a", "b"]
    assert admin(orch, "POST", "/admin/enqueue",
                 {"operations": [{"operation_id": "c"}]})["queue_length"] == 3


def test_concurrent_polls_take_each_operation_once(orch):
    ids = orch.enqueue([{} for _ in range(200)])["operation_ids"]
    got, errors = [], []

    def poll(instance):
        conn = http.client.HTTPConnection("127.0.0.1", orch.port, timeout=TIMEOUT)
        try:
            while True:
                status, op, _ = agent(orch, "GET", "/api/v1/agent/operation",
                                      instance=instance, conn=conn)
                if status == 204:
                    return
                got.append(op["operation_id"])
        except Exception as err:                          # reported below
            errors.append(err)
        finally:
            conn.close()
    threads = [threading.Thread(target=poll, args=(f"w{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT * 4)
    assert not errors and not any(t.is_alive() for t in threads)
    assert sorted(got) == sorted(ids)
    assert sum(i["operations"] for i in orch.state()["instances"].values()) == 200


def test_result_recorded_with_instance(orch):
    status, reply, _ = agent(orch, "PUT", "/api/v1/agent/operations/op-9/result",
                             {"result": {"ok": 1}}, instance="w2")
    assert (status, reply) == (200, {})
    agent(orch, "PUT", "/api/v1/agent/operations/op-9/result", {"result": {"ok": 2}},
          instance="w3")
    results = admin(orch, "GET", "/admin/results?operation_id=op-9")["results"]
    assert [(r["instance_id"], r["result"], r["duplicate"]) for r in results] == [
        ("w2", {"ok": 1}, False), ("w3", {"ok": 2}, True)]
    assert agent(orch, "PUT", "/api/v1/agent/operations/x/result", {"nope": 1})[0] == 400


def test_piggyback_next_operation(orch):
    orch.enqueue([{"operation_id": "n1"}])
    assert agent(orch, "PUT", "/api/v1/agent/operations/o/result", {"result": 1})[1] == {}
    admin(orch, "POST", "/admin/faults", {"piggyback": True})
    status, reply, _ = agent(orch, "PUT", "/api/v1/agent/operations/o/result",
                             {"result": 1}, instance="w1")
    assert reply["next_operation"]["operation_id"] == "n1"
    assert orch.get_taken()[-1]["via"] == "piggyback"
    assert agent(orch, "PUT", "/api/v1/agent/operations/p/result",
                 {"result": 1})[1] == {}


def test_size_exceeded_stub_and_full_request(orch):
    full = {"operation_id": "big", "path": "/api/v1/agent/execute/http",
            "operation": {"trace_id": "t", "url": "https://x", "body": "y" * 1000}}
    admin(orch, "POST", "/admin/enqueue", {"operations": [full], "size_exceeded": True})
    status, stub, _ = agent(orch, "GET", "/api/v1/agent/operation")
    assert stub == {"operation_id": "big", "path": full["path"],
                    "operation": {SIZE_EXCEEDED_KEY: True, "trace_id": "t"}}
    status, got, _ = agent(orch, "GET", "/api/v1/agent/operations/big/request")
    assert (status, got) == (200, full)
    assert agent(orch, "GET", "/api/v1/agent/operations/nope/request")[0] == 404
    assert orch.state()["instances"]["inst-1"]["full_requests"] == 1


def test_size_exceeded_full_may_differ_from_its_stub(orch):
    op = {"operation_id": "two", "path": "/p/stub", "size_exceeded": True,
          "full": {"path": "/p/full", "operation_id": "other",
                   "operation": {"k": 1}}}
    admin(orch, "POST", "/admin/enqueue", op)
    status, stub, _ = agent(orch, "GET", "/api/v1/agent/operation")
    assert stub == {"operation_id": "two", "path": "/p/stub",
                    "operation": {SIZE_EXCEEDED_KEY: True}}
    status, got, _ = agent(orch, "GET", "/api/v1/agent/operations/two/request")
    assert (status, got) == (200, {"operation_id": "other", "path": "/p/full",
                                   "operation": {"k": 1}})
    status, reply, _ = call(orch, "POST", "/admin/enqueue",
                            {"path": "/p", "size_exceeded": True, "full": 3})
    assert status == 400 and "full" in reply["error"]


def test_simple_endpoints_counted_per_instance(orch):
    for path in ("heartbeat", "heartbeat", "shutdown", "logs", "metrics"):
        assert agent(orch, "POST", f"/api/v1/agent/{path}", instance="w7")[0] == 200
    agent(orch, "POST", "/api/v1/agent/metrics", {"m": 1}, instance="w8")
    inst = admin(orch, "GET", "/admin/state")["instances"]
    assert (inst["w7"]["heartbeats"], inst["w7"]["shutdowns"]) == (2, 1)
    assert (inst["w7"]["logs"], inst["w7"]["metrics"], inst["w8"]["metrics"]) == (1, 1, 1)
    reqs = admin(orch, "GET", "/admin/requests?path=/api/v1/agent/metrics&method=POST")
    assert [r["body"] for r in reqs["requests"]] == [None, {"m": 1}]
    assert agent(orch, "GET", "/api/v1/agent/heartbeat")[0] == 405
    assert agent(orch, "GET", "/api/v1/agent/nothing")[0] == 404


# ----- shutdown notices: what an instance took and did not report is re-queued --

def get_op(orch, instance):
    status, op, _ = agent(orch, "GET", "/api/v1/agent/operation", instance=instance)
    assert status == 200, status
    return op["operation_id"]


def put_result(orch, op_id, result, instance):
    status, _, _ = agent(orch, "PUT", f"/api/v1/agent/operations/{op_id}/result",
                         {"result": result}, instance=instance)
    assert status == 200


def queued_ids(orch):
    with orch.lock:
        return [op["operation_id"] for op in orch.queue]


def test_shutdown_requeues_what_the_instance_holds(orch):
    orch.enqueue([{"operation_id": i} for i in ("a", "b", "c", "d", "e")])
    assert [get_op(orch, "w1") for _ in range(3)] == ["a", "b", "c"]
    assert get_op(orch, "w2") == "d"
    put_result(orch, "b", {"ok": 1}, "w1")
    assert agent(orch, "POST", "/api/v1/agent/shutdown", instance="w1")[:2] == (200, {})
    # a and c come back first, in their order; b was reported, d is w2's
    assert queued_ids(orch) == ["a", "c", "e"]
    got = admin(orch, "GET", "/admin/requeued")
    assert got["count"] == 2
    assert [(r["operation_id"], r["instance_id"], r["reported"])
            for r in got["requeued"]] == [("a", "w1", False), ("c", "w1", False)]
    assert orch.state()["requeued"] == 2
    assert orch.state()["instances"]["w1"]["shutdowns"] == 1
    # handed out again, to whoever asks next; a second notice finds nothing
    assert get_op(orch, "w3") == "a"
    assert agent(orch, "POST", "/api/v1/agent/shutdown", instance="w1")[0] == 200
    assert queued_ids(orch) == ["c", "e"]
    assert [t["instance_id"] for t in orch.get_taken()
            if t["operation_id"] == "a"] == ["w1", "w3"]


def test_graceful_shutdown_requeues_nothing(orch):
    """An agent that stops gracefully reports everything, then notifies."""
    orch.set_faults(piggyback=True)
    orch.enqueue([{"operation_id": i} for i in ("a", "b", "c")])
    assert get_op(orch, "w1") == "a"
    put_result(orch, "a", {"ok": 1}, "w1")          # piggybacks b
    put_result(orch, "b", {"ok": 2}, "w1")          # piggybacks c
    put_result(orch, "c", {"ok": 3}, "w1")
    agent(orch, "POST", "/api/v1/agent/shutdown", instance="w1")
    assert queued_ids(orch) == [] and orch.get_requeued() == []
    assert orch.state()["duplicate_results"] == 0


def test_late_result_of_a_requeued_operation(orch):
    """The result of a re-queued operation arrives anyway (sent by another
    worker from the outbox): while the operation still waits in the queue
    it leaves the queue and is reported once; once handed out again, the
    second report is recorded as a duplicate."""
    orch.enqueue([{"operation_id": i} for i in ("a", "b")])
    assert get_op(orch, "dead") == "a" and get_op(orch, "dead") == "b"
    agent(orch, "POST", "/api/v1/agent/shutdown", instance="dead")
    assert queued_ids(orch) == ["a", "b"]
    put_result(orch, "a", {"late": True}, "w2")
    assert queued_ids(orch) == ["b"]
    assert get_op(orch, "w2") == "b"
    assert agent(orch, "GET", "/api/v1/agent/operation", instance="w2")[0] == 204
    put_result(orch, "b", {"run": 2}, "w2")
    put_result(orch, "b", {"late": True}, "w3")
    assert [(r["operation_id"], r["reported"]) for r in orch.get_requeued()] == [
        ("a", True), ("b", False)]
    assert [r["duplicate"] for r in orch.get_results(operation_id="a")] == [False]
    assert [r["duplicate"] for r in orch.get_results(operation_id="b")] == [False, True]


def test_pushed_operations_are_held_by_the_stream_instance(orch, sse):
    reader = sse("m1")
    assert reader.event()["type"] == "welcome"
    assert orch.wait_counts(TIMEOUT, streams=1)
    orch.push([{"operation_id": "p1"}, {"operation_id": "p2"}])
    put_result(orch, "p2", {"ok": 1}, "w1")     # a worker behind m1 reports
    agent(orch, "POST", "/api/v1/agent/shutdown", instance="w1")
    assert queued_ids(orch) == []               # w1 was handed nothing
    agent(orch, "POST", "/api/v1/agent/shutdown", instance="m1")
    assert queued_ids(orch) == ["p1"]


def test_a_gone_instance_is_handed_nothing(orch):
    """A GET that was sent before the notice but is answered after it gets
    nothing: the operation stays queued for a live instance."""
    orch.set_faults(piggyback=True)
    orch.enqueue([{"operation_id": i} for i in ("a", "b")])
    agent(orch, "POST", "/api/v1/agent/shutdown", instance="w1")
    assert agent(orch, "GET", "/api/v1/agent/operation", instance="w1")[0] == 204
    status, reply, _ = agent(orch, "PUT", "/api/v1/agent/operations/x/result",
                             {"result": 1}, instance="w1")
    assert (status, reply) == (200, {})
    assert queued_ids(orch) == ["a", "b"]
    assert get_op(orch, "w2") == "a"


def test_reset_forgets_what_is_held(orch):
    orch.enqueue([{"operation_id": "a"}])
    get_op(orch, "w1")
    orch.reset()
    agent(orch, "POST", "/api/v1/agent/shutdown", instance="w1")
    assert queued_ids(orch) == [] and orch.get_requeued() == []


def test_keep_alive_and_content_length(orch):
    conn = http.client.HTTPConnection("127.0.0.1", orch.port, timeout=TIMEOUT)
    try:
        agent(orch, "POST", "/api/v1/agent/heartbeat", conn=conn)
        sock = conn.sock
        status, _, resp = agent(orch, "POST", "/api/v1/agent/heartbeat", conn=conn)
        assert status == 200 and conn.sock is sock
        assert resp.getheader("Content-Length") == "2"
    finally:
        conn.close()


# ----- the event stream ----------------------------------------------------------

def test_stream_welcome_heartbeat_push_goodbye(orch, sse):
    reader = sse("m1")
    assert reader.resp.getheader("Content-Type") == "text/event-stream"
    assert reader.event() == {"type": "welcome", "agent_id": TOKEN_ID}
    beat = reader.next_of("heartbeat")
    assert isinstance(beat["ts"], float)
    pushed = admin(orch, "POST", "/admin/push",
                   {"operation_id": "p1", "path": "/api/v1/test/health"})
    assert pushed == {"operation_ids": ["p1"], "delivered": 1}
    assert reader.next_of("operation") == {"operation_id": "p1",
                                           "path": "/api/v1/test/health", "operation": {}}
    admin(orch, "POST", "/admin/event", {"type": "work_available"})
    assert reader.next_of("work_available") == {"type": "work_available"}
    assert admin(orch, "POST", "/admin/goodbye",
                 {"reason": "replaced", "close": True})["delivered"] == 1
    assert reader.next_of("goodbye") == {"type": "goodbye", "reason": "replaced"}
    assert reader.event() is None                       # closed after goodbye
    assert orch.wait_counts(TIMEOUT, streams=0)
    assert orch.state()["instances"]["m1"]["stream_connects"] == 1


def test_goodbye_on_connect(orch, sse):
    """The goodbye_on_connect fault: every new stream gets a goodbye right
    after its welcome; streams opened before it was set, and after it is
    cleared, do not."""
    before = sse("m0")
    assert before.event()["type"] == "welcome"
    orch.set_faults(goodbye_on_connect=True)
    assert orch.get_faults()["goodbye_on_connect"] is True
    for name in ("m1", "m2"):
        reader = sse(name)
        assert reader.event()["type"] == "welcome"
        assert reader.event() == {"type": "goodbye",
                                  "reason": "goodbye_on_connect"}
    assert before.next_of("heartbeat")["type"] == "heartbeat"
    orch.set_faults(goodbye_on_connect=False)
    after = sse("m3")
    assert after.event()["type"] == "welcome"
    assert after.event()["type"] == "heartbeat"


def test_multiple_streams_and_targeting(orch, sse):
    one, two = sse("m1"), sse("m2")
    assert one.event()["type"] == two.event()["type"] == "welcome"
    state = admin(orch, "GET", "/admin/wait?streams=2&timeout=5")["state"]
    assert state["instances"]["m1"]["streams_open"] == 1
    assert admin(orch, "POST", "/admin/push", {"operation_id": "x"})["delivered"] == 2
    assert admin(orch, "POST", "/admin/event?instance_id=m2",
                 {"type": "work_available"})["delivered"] == 1
    assert two.next_of("operation")["operation_id"] == "x"
    assert two.next_of("work_available")
    assert one.next_of("operation")["operation_id"] == "x"
    one.close()
    assert orch.wait_counts(TIMEOUT, streams=1)          # client EOF noticed


def test_stream_fields_heartbeat_settings_and_close(orch, sse):
    orch.set_faults(sse_event_field=True, sse_id_field=True, push_metrics=True)
    reader = sse()
    lines = [reader.resp.readline() for _ in range(4)]
    assert lines[0].startswith(b"id: ") and lines[1] == b"event: welcome\n"
    assert reader.next_of("heartbeat")["push_metrics"] is True
    orch.set_faults(heartbeats=False)
    before = orch.state()["sse_heartbeats"]
    time.sleep(0.5)
    assert orch.state()["sse_heartbeats"] == before       # silent stream
    assert admin(orch, "POST", "/admin/faults",
                 {"close_streams": True})["delivered"] == 1
    assert reader.event() is None


def test_garbage_and_oversized_sse(orch, sse):
    reader = sse()
    reader.event()
    assert orch.wait_counts(TIMEOUT, streams=1)
    admin(orch, "POST", "/admin/event", {"raw": "no colon here\n\n"})
    assert reader.line_starting(b"no colon") == b"no colon here\n"
    orch.set_faults(garbage_sse="bad_json")
    assert reader.line_starting(b'data: {"type": "heartbeat", oops')
    orch.set_faults(garbage_sse={"kind": "bytes", "bytes": 64}, oversized_sse=4096)
    assert len(reader.line_starting(b'data: {"type":"padding"')) == 4096 + 1
    assert reader.next_of("heartbeat")                    # stream still alive


# ----- faults --------------------------------------------------------------------

def test_fail_next_n_then_succeed(orch):
    admin(orch, "POST", "/admin/faults", {"fail": {"result": [2, 500]}})
    path = "/api/v1/agent/operations/r1/result"
    statuses = [agent(orch, "PUT", path, {"result": 1})[0] for _ in range(3)]
    assert statuses == [500, 500, 200]
    assert len(orch.get_results()) == 1
    assert orch.state()["counts"]["result"] == 3
    orch.fail_next("*", 1, 503)
    assert agent(orch, "POST", "/api/v1/agent/heartbeat")[0] == 503
    assert agent(orch, "POST", "/api/v1/agent/heartbeat")[0] == 200


def test_delay(orch):
    orch.set_faults(delay={"heartbeat": 0.3})
    start = time.monotonic()
    assert agent(orch, "POST", "/api/v1/agent/heartbeat")[0] == 200
    assert time.monotonic() - start >= 0.3
    start = time.monotonic()
    agent(orch, "POST", "/api/v1/agent/shutdown")
    assert time.monotonic() - start < 0.3


def test_drop_connection_mid_response(orch):
    orch.enqueue([{"operation_id": "d1"}])
    admin(orch, "POST", "/admin/faults", {"drop": {"operation": 1}})
    with pytest.raises((http.client.IncompleteRead, http.client.RemoteDisconnected,
                        ConnectionError)):
        agent(orch, "GET", "/api/v1/agent/operation")
    assert orch.get_taken()[0]["operation_id"] == "d1"    # processed, then dropped
    assert agent(orch, "GET", "/api/v1/agent/operation")[0] == 204


def test_down_auth_refuse_all_and_oversized_operation(orch):
    orch.set_faults(auth_fail=True)
    assert agent(orch, "POST", "/api/v1/agent/heartbeat")[0] == 401
    orch.set_faults(auth_fail=False, refuse_all=True)
    assert agent(orch, "GET", "/stream")[0] == 503
    assert admin(orch, "GET", "/admin/state")["faults"]["refuse_all"] is True
    orch.set_faults(clear=True, oversized_operation=100_000)
    status, op, _ = agent(orch, "GET", "/api/v1/agent/operation")
    assert status == 200 and len(json.dumps(op)) >= 99_000
    assert op["operation_id"].startswith("op-")
    assert agent(orch, "GET", "/api/v1/agent/operation")[0] == 204


def test_bad_admin_requests(orch):
    assert call(orch, "POST", "/admin/faults", {"fail": {"nowhere": 1}})[0] == 400
    assert call(orch, "POST", "/admin/faults", {"bogus": 1})[0] == 400
    assert call(orch, "POST", "/admin/enqueue", [1, 2])[0] == 400
    assert call(orch, "GET", "/admin/enqueue")[0] == 405
    assert call(orch, "GET", "/admin/nothing")[0] == 404
    assert orch.get_faults()["fail"] == {}


# ----- reset, waiting, command line ----------------------------------------------

def test_reset_and_wait(orch):
    orch.enqueue([{}, {}])
    orch.set_faults(piggyback=True)
    agent(orch, "POST", "/api/v1/agent/heartbeat")
    assert admin(orch, "POST", "/admin/reset") == {"ok": True}
    state = orch.state()
    assert (state["queue_length"], state["requests"], state["instances"]) == (0, 0, {})
    assert state["faults"]["piggyback"] is False
    status, reply, _ = call(orch, "GET", "/admin/wait?results=1&timeout=0.2")
    assert status == 408 and reply["ok"] is False
    assert not orch.wait_for(lambda: len(orch.results) >= 1, timeout=0.1)
    agent(orch, "PUT", "/api/v1/agent/operations/z/result", {"result": None})
    assert orch.wait_for(lambda: len(orch.get_results()) >= 1, timeout=TIMEOUT)


def test_stop_then_start_keeps_port_and_state():
    server = FakeOrchestrator("127.0.0.1", 0, TOKEN_ID, TOKEN)
    try:
        port = server.start().port
        server.enqueue([{"operation_id": "keep"}])
        server.stop()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        server.start()
        assert server.port == port
        _, op, _ = agent(server, "GET", "/api/v1/agent/operation")
        assert op["operation_id"] == "keep"
    finally:
        server.stop()


def test_command_line_listening_and_sigterm(tmp_path):
    ready = tmp_path / "port"
    proc = subprocess.Popen(
        [sys.executable, SCRIPT, "--port", "0", "--token-id", TOKEN_ID, "--token", TOKEN,
         "--heartbeat-interval", "0.5", "--quiet", "--ready-file", str(ready)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        readable, _, _ = select.select([proc.stdout], [], [], 10)
        assert readable, "no LISTENING line within 10 s"
        word, port = proc.stdout.readline().decode().split()
        assert word == "LISTENING" and int(port) > 0
        assert ready.read_text().strip() == port
        conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=TIMEOUT)
        conn.request("GET", "/stream", headers=AUTH)
        resp = conn.getresponse()
        assert resp.status == 200 and resp.readline().startswith(b"id: 1")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        conn.close()
        assert not ready.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()


def test_every_event_has_an_id_and_a_reconnect_gets_a_replay(orch, sse):
    first = sse()
    assert first.event()["type"] == "welcome" and first.last_id is not None
    orch.push({"operation_id": "a"})
    assert first.next_of("operation")["operation_id"] == "a"
    resume = first.last_id
    first.close()
    assert orch.wait_for(lambda: not orch.streams, TIMEOUT)
    # While no stream is open: kept, delivered to nobody yet.
    assert orch.push({"operation_id": "b"})["delivered"] == 0
    orch.goodbye("draining")
    orch.send_event({"type": "work_available"}, instance_id="someone-else")
    again = sse(headers={"Last-Event-ID": resume})
    assert again.event()["type"] == "welcome"
    assert again.event()["operation_id"] == "b"
    assert again.event() == {"type": "goodbye", "reason": "draining"}
    state = orch.state()["replay"]
    assert state["replays"] == 1 and state["replayed_events"] == 2, state
    assert [r["last_event_id"] for r in orch.get_requests(endpoint="stream")] \
        == [None, resume]
    # The replayed operation is held by the stream that got it.
    assert orch.held["b"][0] == "master-1"


def test_no_replay_without_a_usable_last_event_id(orch, sse):
    orch.push({"operation_id": "a"})
    for headers in ({}, {"Last-Event-ID": "not-a-number"}):
        reader = sse(headers=headers)
        assert reader.event()["type"] == "welcome"
        orch.send_event({"type": "work_available"})
        assert reader.next_of("work_available") == {"type": "work_available"}
        reader.close()
    assert orch.state()["replay"]["replays"] == 0


def test_replay_buffer_is_bounded_and_gaps_are_counted():
    with FakeOrchestrator("127.0.0.1", 0, TOKEN_ID, TOKEN, 60,
                          replay_max=3) as orch:
        for i in range(5):
            orch.push({"operation_id": f"op-{i}"})
        assert orch.state()["replay"]["buffered"] == 3
        reader = SSEReader(orch, headers={"Last-Event-ID": "0"})
        try:
            assert reader.event()["type"] == "welcome"
            got = [reader.event()["operation_id"] for _ in range(3)]
            assert got == ["op-2", "op-3", "op-4"]
            assert orch.state()["replay"]["gaps"] == 1
        finally:
            reader.close()


def test_cut_breaks_the_stream_in_the_middle_of_an_event(orch, sse):
    orch.set_faults(sse_retry_ms=1500)
    reader = sse()
    assert reader.line_starting(b"retry:") == b"retry: 1500\n"
    assert reader.event()["type"] == "welcome"
    resume = reader.last_id
    assert orch.wait_counts(TIMEOUT, streams=1)
    assert orch.push({"operation_id": "cut-op"}, cut=True)["delivered"] == 1
    got = b""
    try:
        while data := reader.resp.read1(65536):
            got += data
    except (http.client.IncompleteRead, OSError):
        pass                    # the final chunk never comes
    assert got and not got.endswith(b"\n\n"), got   # half an event, then EOF
    again = sse(headers={"Last-Event-ID": resume})
    assert again.event()["type"] == "welcome"
    assert again.event()["operation_id"] == "cut-op"
