"""Tests of bench/orchd, the benchmarks' C orchestrator: the agent protocol,
the admin subset it shares with the fake, and clean answers to bad requests.

The binary comes from $ORCHD_BIN (set by `make check`), else build/bench/orchd
in the repository; the tests are skipped when it is not built.  Every orchd
started here is stopped, and every wait has a bound.
"""

import http.client
import json
import os
import select
import signal
import socket
import subprocess
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ORCHD = os.environ.get("ORCHD_BIN", os.path.join(REPO, "build", "bench", "orchd"))
TOKEN_ID, TOKEN = "tid", "s3cret"
TIMEOUT = 5.0
AUTH = {"x-mcd-id": TOKEN_ID, "x-mcd-token": TOKEN,
        "x-mcd-agent-instance-id": "w1"}

pytestmark = pytest.mark.skipif(
    not (os.path.isfile(ORCHD) and os.access(ORCHD, os.X_OK)),
    reason=f"orchd not built ({ORCHD}); set ORCHD_BIN")


class Orchd:
    def __init__(self, *args):
        self.proc = subprocess.Popen(
            [ORCHD, "-p", "0", "-i", TOKEN_ID, "-t", TOKEN, *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        ready, _, _ = select.select([self.proc.stdout], [], [], TIMEOUT)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("port "):
            self.stop()
            raise AssertionError(f"orchd did not start: {line!r}")
        self.port = int(line.split()[1])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return self.proc.returncode


@pytest.fixture
def orchd():
    server = Orchd("-H", "0.2")
    try:
        yield server
    finally:
        assert server.stop() == 0


def call(orchd, method, path, body=None, headers=None, conn=None, raw=None):
    """One request -> (status, parsed JSON or None, response)."""
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", orchd.port,
                                              timeout=TIMEOUT)
    try:
        data = raw if raw is not None else (
            None if body is None else json.dumps(body).encode())
        conn.request(method, path, body=data, headers=dict(headers or {}))
        resp = conn.getresponse()
        text = resp.read()
        return resp.status, json.loads(text) if text else None, resp
    finally:
        if own:
            conn.close()


def admin(orchd, method, path, body=None):
    status, reply, _ = call(orchd, method, path, body)
    assert status == 200, (path, status, reply)
    return reply


def agent(orchd, method, path, body=None, conn=None, instance="w1"):
    return call(orchd, method, path, body,
                dict(AUTH, **{"x-mcd-agent-instance-id": instance}), conn)


def get_op(orchd, conn=None):
    return agent(orchd, "GET", "/api/v1/agent/operation", conn=conn)


def put_result(orchd, op_id, result, conn=None):
    return agent(orchd, "PUT", f"/api/v1/agent/operations/{op_id}/result",
                 {"result": result}, conn=conn)


def raw_exchange(orchd, data):
    """Send raw bytes; -> everything read until the server closes."""
    with socket.create_connection(("127.0.0.1", orchd.port), TIMEOUT) as s:
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk


class Stream:
    """GET /stream over a raw socket; the chunked framing is kept."""

    def __init__(self, orchd, instance="m1"):
        self.sock = socket.create_connection(("127.0.0.1", orchd.port), TIMEOUT)
        head = "".join(f"{k}: {v}\r\n" for k, v in dict(
            AUTH, **{"x-mcd-agent-instance-id": instance}).items())
        self.sock.sendall(f"GET /stream HTTP/1.1\r\nHost: x\r\n{head}"
                          f"Accept: text/event-stream\r\n\r\n".encode())
        self.buf = b""

    def until(self, needle):
        """Read until needle has arrived (bounded); -> all read so far."""
        deadline = time.monotonic() + TIMEOUT
        while needle not in self.buf:
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} not seen in {self.buf!r}")
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError(f"stream ended before {needle!r}: "
                                     f"{self.buf!r}")
            self.buf += chunk
        return self.buf

    def until_closed(self):
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            chunk = self.sock.recv(65536)
            if not chunk:
                return self.buf
            self.buf += chunk
        raise AssertionError("stream not closed")

    def close(self):
        self.sock.close()


@pytest.fixture
def stream(orchd):
    opened = []

    def open_stream(instance="m1"):
        s = Stream(orchd, instance)
        opened.append(s)
        return s
    try:
        yield open_stream
    finally:
        for s in opened:
            s.close()


def wait_state(orchd, pred):
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        state = admin(orchd, "GET", "/admin/state")
        if pred(state):
            return state
        time.sleep(0.01)
    raise AssertionError(f"state never matched: {state}")


# ----- command line ------------------------------------------------------------

def test_help_and_missing_token():
    out = subprocess.run([ORCHD, "--help"], capture_output=True, timeout=TIMEOUT)
    assert out.returncode == 0 and b"/admin/enqueue" in out.stdout
    env = {k: v for k, v in os.environ.items() if not k.startswith("EGRESSD_TOKEN")}
    out = subprocess.run([ORCHD, "-p", "0"], capture_output=True, env=env,
                         timeout=TIMEOUT)
    assert out.returncode == 2 and b"--token" in out.stderr


def test_token_from_environment_and_sigint():
    env = dict(os.environ, EGRESSD_TOKEN_ID="eid", EGRESSD_TOKEN="esecret")
    proc = subprocess.Popen([ORCHD, "-p", "0"], stdout=subprocess.PIPE, env=env)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], TIMEOUT)
        port = int(proc.stdout.readline().split()[1]) if ready else 0
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
        conn.request("GET", "/api/v1/agent/operation",
                     headers={"x-mcd-id": "eid", "x-mcd-token": "esecret"})
        assert conn.getresponse().status == 204
        conn.close()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


# ----- the operation cycle ----------------------------------------------------

def test_enqueue_get_put_results(orchd):
    reply = admin(orchd, "POST", "/admin/enqueue", {"operations": [
        {"path": "/api/v1/test/health", "operation": {"trace_id": "t1"}},
        {"operation_id": "given", "extra": 1}]})
    first, second = reply["operation_ids"]
    assert second == "given" and reply["queue_length"] == 2
    conn = http.client.HTTPConnection("127.0.0.1", orchd.port, timeout=TIMEOUT)
    try:
        status, op, _ = get_op(orchd, conn)
        assert status == 200 and op == {"operation_id": first,
                                        "path": "/api/v1/test/health",
                                        "operation": {"trace_id": "t1"}}
        status, op, _ = get_op(orchd, conn)
        assert op == {"operation_id": "given", "path": "/api/v1/test/health",
                      "operation": {}, "extra": 1}
        status, body, resp = get_op(orchd, conn)
        assert status == 204 and body is None
        assert put_result(orchd, first, {"ok": True}, conn)[:2] == (200, {})
    finally:
        conn.close()
    state = admin(orchd, "GET", "/admin/state")
    assert state["results"] == 1 and state["duplicate_results"] == 0
    assert state["queue_length"] == 0 and state["taken"] == 2
    assert state["counts"]["operation"] == 3 and state["counts"]["result"] == 1
    assert state["instances"]["w1"]["empty_polls"] == 1
    res = admin(orchd, "GET", "/admin/results")
    assert res["count"] == 1
    assert res["results"][0]["operation_id"] == first
    assert res["results"][0]["instance_id"] == "w1"
    assert res["results"][0]["result"] == {"ok": True}


def test_compact_enqueue_generates_unique_ids(orchd):
    reply = admin(orchd, "POST", "/admin/enqueue",
                  {"count": 5, "path": "/api/v1/test/echo",
                   "operation": {"x": "y"}})
    assert reply["count"] == 5 and reply["queue_length"] == 5
    ids = set()
    for _ in range(5):
        status, op, _ = get_op(orchd)
        assert status == 200
        assert op["path"] == "/api/v1/test/echo" and op["operation"] == {"x": "y"}
        ids.add(op["operation_id"])
    assert len(ids) == 5
    assert reply["first_operation_id"] in ids and reply["last_operation_id"] in ids
    assert get_op(orchd)[0] == 204
    more = admin(orchd, "POST", "/admin/enqueue", {"count": 2})
    assert more["first_operation_id"] not in ids
    for bad in ({"count": 0}, {"count": 1.5}, {"count": "3"},
                {"count": 2, "path": 7}):
        assert call(orchd, "POST", "/admin/enqueue", bad)[0] == 400


def test_duplicate_results_are_counted(orchd):
    for result in ({"a": 1}, {"a": 2}):
        assert put_result(orchd, "op-x", result)[0] == 200
    assert put_result(orchd, "op-y", None)[0] == 200
    state = admin(orchd, "GET", "/admin/state")
    assert state["results"] == 3 and state["duplicate_results"] == 1
    res = admin(orchd, "GET", "/admin/results?operation_id=op-x")
    assert res["count"] == 2
    assert [r["duplicate"] for r in res["results"]] == [False, True]
    assert admin(orchd, "GET", "/admin/results?list=0") == {"count": 3}
    status, reply, _ = agent(orchd, "PUT", "/api/v1/agent/operations/op-z/result",
                             {"no_result": 1})
    assert status == 400 and "error" in reply


def test_piggyback(orchd):
    admin(orchd, "POST", "/admin/enqueue", {"operations": [
        {"operation_id": "p1"}, {"operation_id": "p2"}]})
    assert put_result(orchd, "x", 1)[1] == {}
    faults = admin(orchd, "POST", "/admin/faults", {"piggyback": True})
    assert faults["faults"]["piggyback"] is True
    status, reply, _ = put_result(orchd, "p0", 1)
    assert status == 200
    assert reply["next_operation"]["operation_id"] == "p1"
    assert put_result(orchd, "p1", 1)[1]["next_operation"]["operation_id"] == "p2"
    assert put_result(orchd, "p2", 1)[1] == {}
    assert admin(orchd, "GET", "/admin/state")["taken"] == 2
    cleared = admin(orchd, "POST", "/admin/faults", {"clear": True})
    assert cleared["faults"]["piggyback"] is False


def test_agent_auth_and_routes(orchd):
    assert call(orchd, "GET", "/api/v1/agent/operation")[0] == 401
    bad = dict(AUTH, **{"x-mcd-token": "wrong"})
    assert call(orchd, "GET", "/api/v1/agent/operation", headers=bad)[0] == 401
    assert agent(orchd, "GET", "/api/v1/agent/nope")[0] == 404
    assert agent(orchd, "POST", "/api/v1/agent/operation")[0] == 405
    assert agent(orchd, "GET", "/api/v1/agent/operations/a/request")[0] == 404
    for ep in ("heartbeat", "shutdown", "logs", "metrics"):
        assert agent(orchd, "POST", f"/api/v1/agent/{ep}")[:2] == (200, {})
    state = admin(orchd, "GET", "/admin/state")
    assert state["instances"]["w1"]["heartbeats"] == 1
    assert state["instances"]["w1"]["shutdowns"] == 1
    assert state["counts"]["unknown"] == 1
    admin(orchd, "POST", "/admin/faults", {"refuse_all": True})
    assert get_op(orchd)[0] == 503


def test_keep_alive_and_pipelining(orchd):
    admin(orchd, "POST", "/admin/enqueue", {"count": 2})
    req = "".join(f"{k}: {v}\r\n" for k, v in AUTH.items())
    one = f"GET /api/v1/agent/operation HTTP/1.1\r\nHost: x\r\n{req}\r\n"
    last = (f"GET /api/v1/agent/operation HTTP/1.1\r\nHost: x\r\n{req}"
            f"Connection: close\r\n\r\n")
    out = raw_exchange(orchd, (one * 2 + last).encode())
    assert out.count(b"HTTP/1.1 200 OK") == 2
    assert out.count(b"HTTP/1.1 204 No Content") == 1
    assert b"Connection: close" in out


def test_chunked_body_and_expect_continue(orchd):
    body = json.dumps({"result": {"big": "x" * 3000}}).encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 1000]), body[i:i + 1000])
                      for i in range(0, len(body), 1000)) + b"0\r\n\r\n"
    head = "".join(f"{k}: {v}\r\n" for k, v in AUTH.items())
    with socket.create_connection(("127.0.0.1", orchd.port), TIMEOUT) as s:
        s.sendall(f"PUT /api/v1/agent/operations/c1/result HTTP/1.1\r\n"
                  f"Host: x\r\n{head}Transfer-Encoding: chunked\r\n\r\n"
                  .encode() + chunks)
        s.sendall(f"PUT /api/v1/agent/operations/c2/result HTTP/1.1\r\n"
                  f"Host: x\r\n{head}Content-Length: {len(body)}\r\n"
                  f"Expect: 100-continue\r\nConnection: close\r\n\r\n".encode())
        got = b""
        while b"100 Continue" not in got:
            chunk = s.recv(65536)
            assert chunk, got
            got += chunk
        assert got.startswith(b"HTTP/1.1 200 OK")
        s.sendall(body)
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    assert got.count(b"HTTP/1.1 200 OK") == 2
    res = admin(orchd, "GET", "/admin/results")["results"]
    assert [r["operation_id"] for r in res] == ["c1", "c2"]
    assert res[0]["result"]["big"] == "x" * 3000


# ----- the event stream ---------------------------------------------------------

def test_stream_events_heartbeats_goodbye(orchd, stream):
    s = stream("m1")
    head = s.until(b'"type":"welcome"')
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"Content-Type: text/event-stream" in head
    assert b"Transfer-Encoding: chunked" in head
    wait_state(orchd, lambda st: st["streams_open"] == 1)
    assert admin(orchd, "POST", "/admin/event",
                 {"type": "work_available"}) == {"delivered": 1}
    s.until(b'data: {"type":"work_available"}\n\n')
    s.until(b'"type":"heartbeat"')          # every 0.2 s here
    admin(orchd, "POST", "/admin/event",
          {"data": "a\nb", "event": "x", "id": 7})
    s.until(b"id: 7\nevent: x\ndata: a\ndata: b\n\n")
    # Targeted at another instance: nothing for this stream.
    assert admin(orchd, "POST", "/admin/event?instance_id=other",
                 {"type": "work_available"}) == {"delivered": 0}
    reply = admin(orchd, "POST", "/admin/goodbye", {"reason": "bye", "close": True})
    assert reply == {"delivered": 1}
    out = s.until_closed()
    assert out.rstrip(b"\r\n").endswith(b"0")      # the last chunk
    assert b'"type":"goodbye","reason":"bye"' in out
    state = wait_state(orchd, lambda st: st["streams_open"] == 0)
    assert state["stream_connects"] == 1 and state["sse_heartbeats"] >= 1
    assert state["instances"]["m1"]["stream_connects"] == 1


def test_push_and_comment_heartbeats(orchd, stream):
    s = stream("m2")
    s.until(b'"type":"welcome"')
    admin(orchd, "POST", "/admin/faults", {"heartbeat_comments": True})
    s.until(b": heartbeat\n\n")
    reply = admin(orchd, "POST", "/admin/push", {"operation_id": "pushed"})
    assert reply == {"operation_ids": ["pushed"], "delivered": 1}
    s.until(b'"operation_id":"pushed"')


def test_sigterm_ends_streams_cleanly(stream):
    server = Orchd()
    s = Stream(server)
    try:
        s.until(b'"type":"welcome"')
        assert server.stop() == 0
        assert s.until_closed().rstrip(b"\r\n").endswith(b"0")
    finally:
        s.close()
        server.stop()


# ----- bad requests -----------------------------------------------------------

def test_bad_requests_get_4xx_and_the_server_survives(orchd):
    for data in (b"garbage\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                 b"get /x HTTP/1.1\r\n\r\n", b"GET nopath HTTP/1.1\r\n\r\n"):
        out = raw_exchange(orchd, data)
        assert out.startswith(b"HTTP/1.1 400 ") or \
            out.startswith(b"HTTP/1.1 505 "), (data, out)
    out = raw_exchange(orchd, b"GET / HTTP/1.1\r\nX: " + b"a" * 40000 +
                       b"\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 431 ")
    out = raw_exchange(orchd, b"GET / HTTP/1.1\r\nno colon here\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 ")
    out = raw_exchange(orchd, b"POST /admin/event HTTP/1.1\r\n"
                       b"Content-Length: 99999999999\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 413 ")
    out = raw_exchange(orchd, b"POST /admin/event HTTP/1.1\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\nzz\r\n")
    assert out.startswith(b"HTTP/1.1 400 ")
    # Bad JSON on a kept-alive connection: 400, and the connection still works.
    conn = http.client.HTTPConnection("127.0.0.1", orchd.port, timeout=TIMEOUT)
    try:
        status, reply, _ = call(orchd, "POST", "/admin/enqueue", raw=b"{nope",
                                conn=conn)
        assert status == 400 and "JSON" in reply["error"]
        assert call(orchd, "POST", "/admin/enqueue", raw=b"[]", conn=conn)[0] == 400
        assert call(orchd, "POST", "/admin/faults", {"delay": {}},
                    conn=conn)[0] == 400
        assert call(orchd, "POST", "/admin/faults", {"bogus": 1},
                    conn=conn)[0] == 400
        assert call(orchd, "POST", "/admin/faults", {"piggyback": 1},
                    conn=conn)[0] == 400
        assert call(orchd, "GET", "/admin/nothing", conn=conn)[0] == 404
        assert call(orchd, "GET", "/admin/enqueue", conn=conn)[0] == 405
        assert call(orchd, "GET", "/admin/state", conn=conn)[0] == 200
    finally:
        conn.close()
    # A client that vanishes mid-request does no harm.
    with socket.create_connection(("127.0.0.1", orchd.port), TIMEOUT) as s:
        s.sendall(b"PUT /api/v1/agent/operations/a/result HTTP/1.1\r\n"
                  b"Content-Length: 100\r\n\r\n{")
    assert admin(orchd, "GET", "/admin/state")["results"] == 0
    assert admin(orchd, "GET", "/admin/faults")["piggyback"] is False


def test_reset(orchd, stream):
    s = stream("m3")
    s.until(b'"type":"welcome"')
    admin(orchd, "POST", "/admin/enqueue", {"count": 3})
    put_result(orchd, "r", 1)
    admin(orchd, "POST", "/admin/faults", {"piggyback": True})
    assert admin(orchd, "POST", "/admin/reset", {}) == {"ok": True}
    state = admin(orchd, "GET", "/admin/state")
    assert state["queue_length"] == 0 and state["results"] == 0
    assert state["faults"]["piggyback"] is False and state["streams_open"] == 1
    admin(orchd, "POST", "/admin/reset", {"close_streams": True})
    s.until_closed()
    wait_state(orchd, lambda st: st["streams_open"] == 0)
