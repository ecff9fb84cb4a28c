#!/usr/bin/python3
"""A fake egressd orchestrator for integration tests, benchmarks and the demo.

It speaks the agent side of the orchestrator protocol (DESIGN.md section 2) over
plain HTTP/1.1 with keep-alive, records every request, and adds an admin API under
``/admin/`` on the same port to queue operations, push events and inject faults.
Python 3.11 standard library only.

Command line
------------
    fake_orchestrator.py --token-id ID --token SECRET [--port 0] [--host 127.0.0.1]
        [--heartbeat-interval 1.0] [--agent-id ID] [--piggyback]
        [--max-requests N] [--quiet] [--ready-file PATH]

``--port 0`` picks a free port. When ready it prints ``LISTENING <port>`` on stdout
and writes the port to ``--ready-file`` (atomically; removed on exit). The token
defaults to ``$EGRESSD_TOKEN_ID`` / ``$EGRESSD_TOKEN``. SIGTERM and SIGINT stop it
cleanly (exit 0). Request logs go to stderr unless ``--quiet``.

Agent endpoints (need ``x-mcd-id`` and ``x-mcd-token``, else 401)
----------------------------------------------------------------
    GET  /stream                                  SSE: welcome, heartbeats, events
    GET  /api/v1/agent/operation                  200 next queued operation, 204 none
    PUT  /api/v1/agent/operations/{id}/result     {"result": R} -> 200 {} or
                                                  {"next_operation": OP} (piggyback)
    GET  /api/v1/agent/operations/{id}/request    200 full size-exceeded op, else 404
    POST /api/v1/agent/{heartbeat,shutdown,logs,metrics}   200 {}

Like a real orchestrator, the fake remembers which instance each operation was
handed to (by GET, piggyback or an SSE push, to the stream's instance) until a
result for it arrives.  A shutdown notice from an instance puts the operations
it holds back at the head of the queue, in their order, to be handed out again
("re-queued"); a gracefully stopping agent sends its notice after its last
result, so it holds none by then.  An instance that sent its notice is gone:
it is handed nothing more (a GET it sent earlier but that is answered later
gets 204, a result PUT no piggybacked operation).  A result that arrives for a
re-queued operation still waiting in the queue takes it out of the queue: it
is reported once, and not run again.

SSE events are ``id: N\\ndata: <json>\\n\\n`` (an ``event:`` line when enabled), sent
with chunked transfer encoding unless ``sse_chunked`` is false.  Every event the
fake makes gets the next number as its ID (unless ``sse_id_field`` is false), the
stream's welcome and heartbeats included.  The events that matter to the agent
(pushed operations and the events sent with ``send_event``/``goodbye``, not the
welcome, heartbeats, raw bytes or events with an explicit ID) are also kept in a
replay buffer of the last ``replay_max`` (256).  A stream that connects with
``Last-Event-ID: N`` gets, after its welcome, every kept event with an ID above N
that was sent to all streams or to its instance, in order; a pushed operation
replayed is held for the new stream's instance.  An N older than the buffer
reaches back is a gap (counted; what is kept is replayed); an N that is not a
number replays nothing.  DESIGN section 2: the orchestrator may replay, the agent
must not depend on it (``replay``: false turns it off).

Admin API (no auth, JSON bodies and replies)
--------------------------------------------
    POST /admin/enqueue   OP | {"operations": [OP...], "size_exceeded": bool}
                          -> {"operation_ids": [...], "queue_length": n}
          OP is {"operation_id"?, "path"?, "operation"?, "size_exceeded"?}; a missing
          id is generated, path defaults to /api/v1/test/health. size_exceeded keeps
          the full op for .../request and queues a stub whose body is
          {"__mcd_size_exceeded__": true}. With size_exceeded, "full"?: {...}
          overrides fields of the full op only (what .../request answers differs
          from its stub: a hostile orchestrator), e.g. {"path": P2}.
    POST /admin/push      same body as enqueue; sent over open SSE streams
                          -> {"operation_ids": [...], "delivered": n_streams}
    POST /admin/event     {"type": "work_available", ...}   the event as data
                          {"data": X, "event"?: NAME, "id"?: ID}   explicit fields
                          {"raw": "text"}   written verbatim (garbage tests)
                          -> {"delivered": n_streams}
    POST /admin/goodbye   {"reason"?: str, "close"?: bool} -> {"delivered": n}
          push, event and goodbye accept ?instance_id=ID to target one stream,
          and ?cut=1: the (last) event is kept for replay, but the streams get
          only its first half and are then closed abruptly (a stream that
          breaks in the middle of an event).
    GET  /admin/results   ?operation_id=&instance_id=  -> {"count", "results": [...]}
    GET  /admin/requests  ?path=&method=&endpoint=&instance_id=&since=SEQ
                          -> {"count", "requests": [...]}
    GET  /admin/taken     -> {"count", "taken": [{operation_id, instance_id, via}]}
    GET  /admin/requeued  -> {"count", "requeued": [{operation_id, instance_id,
                          time, reported}]}  operations a shutdown notice
                          re-queued (reported: its result came while it was
                          still queued, so it left the queue)
    GET  /admin/state     queue length, counts per endpoint, streams, requeued,
                          replay {buffered, replays, replayed_events, gaps,
                          last_event_id}, and per
                          instance ID: requests, heartbeats, shutdowns, results,
                          operations, empty_polls, full_requests, logs, metrics,
                          stream_connects, streams_open
    POST /admin/reset     {"close_streams"?: bool}  clears queue, records, faults
    GET  /admin/faults    current faults
    POST /admin/faults    merge faults (below) -> {"faults": {...}, "delivered"?: n}
    GET  /admin/wait      ?results=N&streams=N&stream_connects=N&requests=N
                          &heartbeats=N&shutdowns=N&taken=N&queue=N&timeout=S
                          200 {"ok": true, "state"} once every count >= N (queue:
                          length <= N), else 408 {"ok": false, "state"}

Faults and settings (POST /admin/faults or set_faults())
--------------------------------------------------------
Endpoints are stream, operation, result, request, heartbeat, shutdown, logs,
metrics, or "*" for all of them.
    "clear": true                      back to defaults first
    "delay": {EP: seconds}             sleep before answering
    "fail": {EP: N | [N, S] | {"count": N, "status": S}}   next N answer S (500);
                                       the request is not processed
    "drop": {EP: N}                    next N answers send headers and half the
                                       body, then close (after processing);
                                       stored as {EP: {"count": N}}
    "heartbeats": bool                 false = silent SSE stream
    "heartbeat_interval": seconds      "push_metrics": bool (in every heartbeat)
    "piggyback": bool                  result replies carry next_operation
    "auth_fail": bool                  401 for every agent request
    "refuse_all": bool                 503 for every agent request
    "oversized_operation": N | {"bytes": N, "count": K}
                                       next K GET operation replies are N bytes
    "sse_event_field", "sse_id_field", "sse_chunked": bool    SSE framing
    "goodbye_on_connect": bool         every new stream gets a goodbye event
                                       (reason "goodbye_on_connect") right after
                                       its welcome: an orchestrator that sends
                                       the agent away each time it connects
    "replay": bool                     replay after Last-Event-ID (default true)
    "sse_retry_ms": N | null           a "retry: N" line in every welcome
One-shot actions (not stored): "close_streams": true | "abort",
"garbage_sse": KIND | [KIND...] | {"kind": KIND, "bytes": N} with KIND one of
bytes, no_colon, bad_json, not_object, unknown_type, all;
"oversized_sse": N | {"bytes": N, "terminated": bool}.

Python API
----------
    orch = FakeOrchestrator("127.0.0.1", 0, "tid", "secret", 0.2).start()
    orch.url, orch.port; orch.enqueue(op); orch.push(op); orch.send_event(ev)
    orch.goodbye("reason"); orch.push(op, cut=True); orch.set_faults(fail=...)
    orch.fail_next("result", 2, 500); orch.close_streams(); orch.reset()
    orch.wait_for(lambda: len(orch.results) >= 3, timeout=5)  # -> bool
    orch.wait_counts(5, results=3, streams=1); orch.state(); orch.stop()
    orch.get_results(), get_requests(path=, method=, endpoint=, instance_id=),
    get_taken(), get_requeued(), get_faults()   (deep copies, taken under the lock)
Every admin endpoint maps to a method returning the same JSON-able dict. The state
lives in attributes (queue, results, requests, taken, held, requeued, instances,
counts, full_operations, streams, faults) guarded by ``orch.lock``; ``orch.cond`` is
notified on every change. stop() then start() rebinds the same port, keeping state.
"""

from __future__ import annotations

import argparse
import collections
import copy
import itertools
import json
import os
import queue
import re
import select
import signal
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

SIZE_EXCEEDED_KEY = "__mcd_size_exceeded__"
DEFAULT_PATH = "/api/v1/test/health"
ENDPOINTS = ("stream", "operation", "result", "request",
             "heartbeat", "shutdown", "logs", "metrics")
NO_INSTANCE = "-"                       # instance key when the header is missing
INSTANCE_COUNTERS = ("requests", "heartbeats", "shutdowns", "results", "operations",
                     "empty_polls", "full_requests", "logs", "metrics",
                     "stream_connects")
BOOL_SETTINGS = ("heartbeats", "push_metrics", "piggyback", "auth_fail", "refuse_all",
                 "sse_event_field", "sse_id_field", "sse_chunked",
                 "goodbye_on_connect", "replay")
COUNTED = {"heartbeat": "heartbeats",                            # endpoint ->
           "logs": "logs", "metrics": "metrics"}                  # its counter
ACTIONS = ("close_streams", "garbage_sse", "oversized_sse")
GARBAGE = {
    "no_colon": b"this line has no colon\nneither does this one\n\n",
    "bad_json": b'data: {"type": "heartbeat", oops\n\n',
    "not_object": b"data: [1, 2, 3]\n\n",
    "unknown_type": b'data: {"type": "no_such_event"}\n\n',
}
GARBAGE_KINDS = ("bytes",) + tuple(GARBAGE) + ("all",)
DEFAULT_GARBAGE_BYTES = 256
DEFAULT_MAX_REQUESTS = 100_000
MAX_REQUEST_BODY = 64 * 1024 * 1024
RECORD_BODY_LIMIT = 1024 * 1024         # larger bodies are recorded as a note
PEER_CHECK_INTERVAL = 0.5               # how often an idle SSE stream looks for EOF
MAX_ADMIN_WAIT = 120.0
DEFAULT_REPLAY_MAX = 256                # events kept for Last-Event-ID replay
WAIT_KEYS = ("results", "streams", "stream_connects", "requests", "heartbeats",
             "shutdowns", "taken", "queue")

# (method, path regex, endpoint); the regex group is the operation ID.
ROUTES = (
    ("GET", re.compile(r"/stream"), "stream"),
    ("GET", re.compile(r"/api/v1/agent/operation"), "operation"),
    ("PUT", re.compile(r"/api/v1/agent/operations/([^/]+)/result"), "result"),
    ("GET", re.compile(r"/api/v1/agent/operations/([^/]+)/request"), "request"),
    ("POST", re.compile(r"/api/v1/agent/heartbeat"), "heartbeat"),
    ("POST", re.compile(r"/api/v1/agent/shutdown"), "shutdown"),
    ("POST", re.compile(r"/api/v1/agent/logs"), "logs"),
    ("POST", re.compile(r"/api/v1/agent/metrics"), "metrics"),
)


def _route(method, path):
    """Return (endpoint, method_ok, operation_id); endpoint "unknown" if none."""
    for want, regex, endpoint in ROUTES:
        m = regex.fullmatch(path)
        if m:
            return endpoint, method == want, unquote(m.group(1)) if m.groups() else None
    return "unknown", False, None


def _default_faults(heartbeat_interval):
    return {"delay": {}, "fail": {}, "drop": {},
            "heartbeats": True, "heartbeat_interval": heartbeat_interval,
            "push_metrics": False, "piggyback": False, "auth_fail": False,
            "refuse_all": False, "oversized_operation": {"bytes": 0, "count": 0},
            "sse_event_field": False, "sse_id_field": True, "sse_chunked": True,
            "goodbye_on_connect": False, "replay": True, "sse_retry_ms": None}


def _number(value, what, minimum=0.0):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise ValueError(f"{what} must be a number >= {minimum}")
    return value


def _norm_fail(value):
    """N | [N, S] | {"count": N, "status": S} -> {"count", "status"} or None."""
    if isinstance(value, dict):
        count, status = value.get("count", 1), value.get("status", 500)
    elif isinstance(value, (list, tuple)) and len(value) == 2:
        count, status = value
    else:
        count, status = value, 500
    count = int(_number(count or 0, "fail count"))
    if not isinstance(status, int) or not 100 <= status <= 599:
        raise ValueError("fail status must be an HTTP status code")
    return {"count": count, "status": status} if count else None


def _norm_count(value):
    count = int(_number(int(value or 0), "drop count"))
    return {"count": count} if count else None


def _norm_delay(value):
    return _number(value or 0, "delay") or None


def _decode_body(raw):
    """A request body as recorded: parsed JSON, else text, else None."""
    if not raw:
        return None
    if len(raw) > RECORD_BODY_LIMIT:
        return f"<{len(raw)} bytes, not recorded>"
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def _oversized_operation(op_id, nbytes):
    """A valid operation JSON document of about nbytes, its ID first."""
    head = json.dumps({"operation_id": op_id, "path": DEFAULT_PATH})[:-1]
    head = (head + ', "operation": {"pad": "').encode()
    tail = b'"}}'
    return head + b"x" * max(0, nbytes - len(head) - len(tail)) + tail


class _Stream:
    """One open SSE connection; its handler thread drains `items` in order."""

    def __init__(self, instance_id):
        self.instance_id = instance_id
        self.key = instance_id or NO_INSTANCE
        self.items = queue.SimpleQueue()

    def send(self, raw):
        self.items.put(("data", raw))

    def close(self, clean=True):
        self.items.put(("close", clean))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        # a client refusing our certificate is what TLS tests provoke
        if isinstance(sys.exc_info()[1], ssl.SSLError):
            return
        super().handle_error(request, client_address)


class FakeOrchestrator:
    """The fake orchestrator: state, admin operations and the HTTP server."""

    def __init__(self, host="127.0.0.1", port=0, token_id="test-id",
                 token="test-token", heartbeat_interval=1.0, agent_id=None,
                 quiet=True, max_requests=DEFAULT_MAX_REQUESTS,
                 tls_context=None, replay_max=DEFAULT_REPLAY_MAX):
        self.host = host
        # an ssl.SSLContext (server side): serve HTTPS instead of HTTP
        self.tls_context = tls_context
        self.token_id = token_id
        self.token = token
        self.agent_id = agent_id or token_id
        self.quiet = quiet
        self.default_heartbeat_interval = _number(heartbeat_interval,
                                                  "heartbeat_interval", 0.001)
        self.max_requests = max_requests
        self.replay_max = replay_max
        self.lock = threading.RLock()    # re-entrant: predicates may call getters
        self.cond = threading.Condition(self.lock)
        self.streams = []           # open _Stream objects (kept across reset)
        self.connections = set()    # open client sockets, shut down by stop()
        self._port = port
        self._server = None
        self._thread = None
        self._op_ids = itertools.count(1)
        self._event_ids = itertools.count(1)
        self._clear_state()

    def _clear_state(self):
        """Forget everything but open streams (caller holds the lock)."""
        self.queue = collections.deque()
        self.full_operations = {}
        self.results = []
        self.result_ids = set()
        self.requests = collections.deque(maxlen=self.max_requests)
        self.request_seq = 0
        self.taken = []
        self.held = {}              # operation ID -> (instance ID, operation)
        self.requeued = []
        self.gone = set()           # instance IDs that sent a shutdown notice
        self.instances = {}
        self.counts = dict.fromkeys(ENDPOINTS + ("unknown",), 0)
        self.stream_connects = 0
        self.sse_heartbeats = 0
        self.faults = _default_faults(self.default_heartbeat_interval)
        # Replay: (event ID, bytes, target instance or None, operation or None)
        self.replay = collections.deque()
        self.replay_evicted = 0     # highest ID that left the buffer
        self.replays = 0            # streams that got a replay
        self.replayed_events = 0
        self.replay_gaps = 0        # Last-Event-ID older than the buffer
        self.last_event_id = 0      # the last ID given to an event

    # ----- lifecycle ---------------------------------------------------------

    @property
    def port(self):
        return self._port

    @property
    def url(self):
        scheme = "https" if self.tls_context is not None else "http"
        return f"{scheme}://{self.host}:{self._port}"

    def start(self):
        """Bind and serve in a daemon thread; returns self."""
        server = _Server((self.host, self._port), _Handler)
        server.orch = self
        if self.tls_context is not None:
            # the handshake happens in the handler's thread, on first read
            server.socket = self.tls_context.wrap_socket(
                server.socket, server_side=True,
                do_handshake_on_connect=False)
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever,
                                        kwargs={"poll_interval": 0.1},
                                        name="fake-orchestrator", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout=5.0):
        """Stop serving, end every stream and connection. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        with self.lock:
            streams, conns = list(self.streams), list(self.connections)
        for stream in streams:
            stream.close()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        server.server_close()
        self._thread.join(timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ----- waiting -----------------------------------------------------------

    def wait_for(self, predicate, timeout):
        """Wait until predicate() (run with the lock held) is true; -> bool."""
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    def _totals(self):
        return {"results": len(self.results), "streams": len(self.streams),
                "stream_connects": self.stream_connects,
                "requests": sum(self.counts.values()),
                "heartbeats": sum(i["heartbeats"] for i in self.instances.values()),
                "shutdowns": sum(i["shutdowns"] for i in self.instances.values()),
                "taken": len(self.taken), "queue": len(self.queue)}

    def wait_counts(self, timeout, **minimums):
        """Wait until each total (WAIT_KEYS) >= its minimum ("queue": <=); -> bool."""
        for key in minimums:
            if key not in WAIT_KEYS:
                raise ValueError(f"unknown wait key {key!r}; one of {WAIT_KEYS}")

        def reached():
            totals = self._totals()
            return all(totals[k] <= v if k == "queue" else totals[k] >= v
                       for k, v in minimums.items())
        return self.wait_for(reached, timeout)

    # ----- operations and events --------------------------------------------

    def _prepare(self, ops, size_exceeded):
        """Normalise operations (lock held); store full size-exceeded ones."""
        if isinstance(ops, dict):
            ops = [ops]
        if (not isinstance(ops, (list, tuple)) or not ops
                or not all(isinstance(op, dict) for op in ops)):
            raise ValueError('expected an operation object or {"operations": [...]}')
        out = []
        for op in ops:
            op = dict(op)
            stub = bool(op.pop("size_exceeded", size_exceeded))
            override = op.pop("full", None)
            if override is not None and not isinstance(override, dict):
                raise ValueError('"full" must be an object')
            op_id = str(op.pop("operation_id", None) or f"op-{next(self._op_ids)}")
            full = {"operation_id": op_id, "path": op.pop("path", DEFAULT_PATH),
                    "operation": op.pop("operation", {}), **op}
            if stub:
                self.full_operations[op_id] = {**full, **(override or {})}
                body = {SIZE_EXCEEDED_KEY: True}
                inner = full["operation"]
                if isinstance(inner, dict) and "trace_id" in inner:
                    body["trace_id"] = inner["trace_id"]
                full = {"operation_id": op_id, "path": full["path"], "operation": body}
            out.append(full)
        return out

    def enqueue(self, ops, size_exceeded=False):
        """Queue operations for GET /api/v1/agent/operation."""
        with self.lock:
            prepared = self._prepare(ops, size_exceeded)
            self.queue.extend(prepared)
            self.cond.notify_all()
            return {"operation_ids": [op["operation_id"] for op in prepared],
                    "queue_length": len(self.queue)}

    def _sse(self, data, event=None, event_id=None, keep=False, target=None):
        """Format one SSE event (lock held); keep: also into the replay buffer
        (for target, None = every stream)."""
        explicit = event_id is not None
        if event_id is None and self.faults["sse_id_field"]:
            event_id = self.last_event_id = next(self._event_ids)
        if event is None and self.faults["sse_event_field"] and isinstance(data, dict):
            event = data.get("type") or ("operation" if "operation_id" in data else None)
        lines = [f"id: {event_id}"] if event_id is not None else []
        if event:
            lines.append(f"event: {event}")
        text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
        lines.extend("data: " + line for line in text.split("\n"))
        raw = ("\n".join(lines) + "\n\n").encode()
        if keep and not explicit and event_id is not None:
            op = data if isinstance(data, dict) and "operation_id" in data else None
            self.replay.append((event_id, raw, target, op))
            while len(self.replay) > self.replay_max:
                self.replay_evicted = self.replay.popleft()[0]
        return raw

    def _broadcast(self, raw, instance_id=None, cut=False):
        """Queue raw bytes on the matching open streams (lock held); -> count.
        cut: only the first half, then an abrupt close."""
        targets = [s for s in self.streams
                   if instance_id is None or s.instance_id == instance_id]
        for stream in targets:
            stream.send(raw[:len(raw) // 2] if cut else raw)
            if cut:
                stream.close(clean=False)
        return len(targets)

    def _replay_for(self, instance_id, last_event_id):
        """The kept events after last_event_id for a new stream (lock held)."""
        if last_event_id is None or not self.faults["replay"]:
            return []
        try:
            after = int(last_event_id)
        except ValueError:
            return []
        if after < self.replay_evicted:
            self.replay_gaps += 1
        out = []
        for event_id, raw, target, op in self.replay:
            if event_id > after and target in (None, instance_id):
                out.append(raw)
                if op is not None and op["operation_id"] not in self.result_ids:
                    self._hold(op, instance_id)
        if out:
            self.replays += 1
            self.replayed_events += len(out)
        return out

    def push(self, ops, size_exceeded=False, instance_id=None, cut=False):
        """Send operations as SSE events on the open stream(s); cut: the
        last one breaks the streams off in its middle."""
        with self.lock:
            prepared = self._prepare(ops, size_exceeded)
            delivered = 0
            for n, op in enumerate(prepared, 1):
                raw = self._sse(op, keep=True, target=instance_id)
                delivered = self._broadcast(raw, instance_id,
                                            cut and n == len(prepared))
                for stream in self.streams:
                    if instance_id in (None, stream.instance_id):
                        self._hold(op, stream.instance_id)
            return {"operation_ids": [op["operation_id"] for op in prepared],
                    "delivered": delivered}

    def send_event(self, event, instance_id=None, cut=False):
        """Send an event: an object, {"data", "event"?, "id"?} or {"raw": text};
        cut: break the streams off in its middle."""
        if not isinstance(event, dict):
            raise ValueError("an event must be a JSON object")
        with self.lock:
            if "raw" in event:
                if not isinstance(event["raw"], str):
                    raise ValueError('"raw" must be a string')
                raw = event["raw"].encode()
            elif "data" in event and "type" not in event:
                raw = self._sse(event["data"], event.get("event"), event.get("id"))
            else:
                raw = self._sse(event, keep=True, target=instance_id)
            return {"delivered": self._broadcast(raw, instance_id, cut)}

    def goodbye(self, reason=None, close=False, instance_id=None, cut=False):
        """Send a goodbye event; close=True then ends the stream(s)."""
        event = {"type": "goodbye"}
        if reason is not None:
            event["reason"] = reason
        reply = self.send_event(event, instance_id, cut)
        if close:
            self.close_streams(instance_id=instance_id)
        return reply

    def close_streams(self, clean=True, instance_id=None):
        """End open streams (clean: final chunk; otherwise an abrupt close)."""
        with self.lock:
            targets = [s for s in self.streams
                       if instance_id is None or s.instance_id == instance_id]
        for stream in targets:
            stream.close(clean)
        return {"delivered": len(targets)}

    # ----- faults ------------------------------------------------------------

    def set_faults(self, faults=None, **changes):
        """Merge fault settings and run one-shot actions; -> {"faults", "delivered"?}."""
        changes = {**(faults or {}), **changes}
        with self.lock:
            new = (_default_faults(self.default_heartbeat_interval)
                   if changes.pop("clear", False) else copy.deepcopy(self.faults))
            actions = {k: changes.pop(k) for k in ACTIONS if k in changes}
            for key, value in changes.items():
                self._apply_fault(new, key, value)
            raws = [self._action_bytes(k, v) for k, v in actions.items()
                    if k != "close_streams"]
            self.faults = new
            delivered = 0
            for raw in raws:
                delivered = self._broadcast(raw)
            self.cond.notify_all()
            reply = {"faults": copy.deepcopy(new)}
        close = actions.get("close_streams")
        if close:
            delivered = self.close_streams(clean=close != "abort")["delivered"]
        if actions:
            reply["delivered"] = delivered
        return reply

    def fail_next(self, endpoint, count, status=500):
        return self.set_faults(fail={endpoint: {"count": count, "status": status}})

    def get_faults(self):
        with self.lock:
            return copy.deepcopy(self.faults)

    @staticmethod
    def _apply_fault(faults, key, value):
        if key in ("delay", "fail", "drop"):
            if not isinstance(value, dict):
                raise ValueError(f"{key} must be an object keyed by endpoint")
            norm = {"delay": _norm_delay, "fail": _norm_fail, "drop": _norm_count}[key]
            for endpoint, setting in value.items():
                if endpoint != "*" and endpoint not in ENDPOINTS:
                    raise ValueError(f"unknown endpoint {endpoint!r}; one of "
                                     f"{', '.join(ENDPOINTS)} or *")
                setting = norm(setting)
                if setting:
                    faults[key][endpoint] = setting
                else:
                    faults[key].pop(endpoint, None)
        elif key in BOOL_SETTINGS:
            if not isinstance(value, bool):
                raise ValueError(f"{key} must be true or false")
            faults[key] = value
        elif key == "heartbeat_interval":
            faults[key] = _number(value, key, 0.001)
        elif key == "sse_retry_ms":
            faults[key] = None if value is None else int(_number(value, key))
        elif key == "oversized_operation":
            if not isinstance(value, dict):
                value = {"bytes": value, "count": 1 if value else 0}
            faults[key] = {"bytes": int(_number(value.get("bytes", 0), "bytes")),
                           "count": int(_number(value.get("count", 1), "count"))}
        else:
            raise ValueError(f"unknown fault {key!r}")

    @staticmethod
    def _action_bytes(key, value):
        """The bytes a garbage_sse / oversized_sse action writes to streams."""
        if key == "oversized_sse":
            if not isinstance(value, dict):
                value = {"bytes": value}
            size = int(_number(value.get("bytes", 0), "oversized_sse bytes"))
            prefix = b'data: {"type":"padding","pad":"'
            event = prefix + b"x" * max(0, size - len(prefix) - 2) + b'"}'
            return event + (b"\n\n" if value.get("terminated", True) else b"")
        spec = value if isinstance(value, dict) else {"kind": value}
        kinds = spec.get("kind", "all")
        kinds = list(GARBAGE_KINDS[:-1]) if kinds == "all" else kinds
        kinds = [kinds] if isinstance(kinds, str) else kinds
        out = b""
        for kind in kinds:
            if kind == "bytes":
                size = int(_number(spec.get("bytes", DEFAULT_GARBAGE_BYTES), "bytes"))
                out += os.urandom(size) + b"\n\n"
            elif kind in GARBAGE:
                out += GARBAGE[kind]
            else:
                raise ValueError(f"unknown garbage kind {kind!r}; one of "
                                 f"{', '.join(GARBAGE_KINDS)}")
        return out

    def _take_count(self, kind, endpoint):
        """Consume one 'fail'/'drop' for endpoint or "*" (lock held); -> setting."""
        table = self.faults[kind]
        key = endpoint if endpoint in table else "*" if "*" in table else None
        if key is None:
            return None
        setting = table[key]
        setting["count"] -= 1
        if setting["count"] <= 0:
            del table[key]
        return setting

    # ----- records and queries -----------------------------------------------

    def _instance(self, instance_id, now=None):
        """Per-instance counters (lock held), created on first sight."""
        key = instance_id or NO_INSTANCE
        inst = self.instances.get(key)
        if inst is None:
            inst = self.instances[key] = dict.fromkeys(INSTANCE_COUNTERS, 0)
            inst.update(first_seen=now or time.time(), last_seen=None, user_agent=None)
        return inst

    def _record(self, handler, endpoint, path, query, raw, instance_id, authed):
        ua = handler.headers.get("User-Agent")
        with self.lock:
            self.request_seq += 1
            rec = {"seq": self.request_seq, "time": time.time(),
                   "method": handler.command, "path": path, "query": query,
                   "endpoint": endpoint, "instance_id": instance_id,
                   "user_agent": ua, "auth_ok": authed, "body": _decode_body(raw),
                   "last_event_id": handler.headers.get("Last-Event-ID"),
                   "body_size": len(raw), "status": None, "dropped": False}
            self.requests.append(rec)
            self.counts[endpoint] += 1
            inst = self._instance(instance_id, rec["time"])
            inst["requests"] += 1
            inst["last_seen"] = rec["time"]
            inst["user_agent"] = ua or inst["user_agent"]
            self.cond.notify_all()
            return rec

    def _taken(self, op_id, instance_id, via):
        self.taken.append({"operation_id": op_id, "instance_id": instance_id,
                           "via": via, "time": time.time()})
        self._instance(instance_id)["operations"] += 1

    def _hold(self, op, instance_id):
        """op is handed to instance_id until its result comes (lock held)."""
        if isinstance(op, dict) and isinstance(op.get("operation_id"), str):
            self.held[op["operation_id"]] = (instance_id, op)

    def _requeue(self, instance_id):
        """A shutdown notice: what instance_id holds goes back to the head of
        the queue, in the order it was handed out (lock held); -> count."""
        mine = [op_id for op_id, (iid, _) in self.held.items()
                if iid == instance_id and op_id not in self.result_ids]
        now = time.time()
        for op_id in reversed(mine):
            self.queue.appendleft(self.held.pop(op_id)[1])
        for op_id in mine:
            self.requeued.append({"operation_id": op_id,
                                  "instance_id": instance_id, "time": now,
                                  "reported": False})
        return len(mine)

    def _reported(self, op_id):
        """A result for op_id arrived (lock held): nobody holds it any more,
        and a re-queued copy still waiting is not handed out again."""
        self.held.pop(op_id, None)
        pending = [r for r in self.requeued
                   if r["operation_id"] == op_id and not r["reported"]]
        if not pending:
            return
        before = len(self.queue)
        self.queue = collections.deque(
            op for op in self.queue
            if not (isinstance(op, dict) and op.get("operation_id") == op_id))
        if len(self.queue) < before:
            for r in pending:
                r["reported"] = True

    def get_results(self, operation_id=None, instance_id=None):
        with self.lock:
            return [copy.deepcopy(r) for r in self.results
                    if operation_id in (None, r["operation_id"])
                    and instance_id in (None, r["instance_id"])]

    def get_requests(self, path=None, method=None, endpoint=None, instance_id=None,
                     since=0):
        with self.lock:
            return [copy.deepcopy(r) for r in self.requests
                    if path in (None, r["path"]) and method in (None, r["method"])
                    and endpoint in (None, r["endpoint"])
                    and instance_id in (None, r["instance_id"])
                    and r["seq"] > since]

    def get_taken(self):
        with self.lock:
            return copy.deepcopy(self.taken)

    def get_requeued(self):
        with self.lock:
            return copy.deepcopy(self.requeued)

    def state(self):
        """A JSON-able snapshot of counters, streams and faults."""
        with self.lock:
            instances = {key: dict(inst, streams_open=0)
                         for key, inst in self.instances.items()}
            for stream in self.streams:
                inst = instances.setdefault(
                    stream.key, dict.fromkeys(INSTANCE_COUNTERS, 0) | {"streams_open": 0})
                inst["streams_open"] += 1
            totals = self._totals()
            return {"url": self.url, "queue_length": totals["queue"],
                    "replay": {"buffered": len(self.replay), "replays": self.replays,
                               "replayed_events": self.replayed_events,
                               "gaps": self.replay_gaps,
                               "last_event_id": self.last_event_id},
                    "results": totals["results"],
                    "duplicate_results": sum(r["duplicate"] for r in self.results),
                    "taken": totals["taken"], "requeued": len(self.requeued),
                    "requests": totals["requests"],
                    "counts": dict(self.counts), "streams_open": totals["streams"],
                    "stream_connects": self.stream_connects,
                    "sse_heartbeats": self.sse_heartbeats,
                    "full_operations": len(self.full_operations),
                    "instances": instances, "faults": copy.deepcopy(self.faults)}

    def reset(self, close_streams=False):
        """Clear queue, records and faults; open streams stay unless asked."""
        with self.lock:
            self._clear_state()
            self.cond.notify_all()
        if close_streams:
            self.close_streams()
        return {"ok": True}

    # ----- agent endpoints: each returns (status, payload) ----------------------

    def _ep_operation(self, instance_id, _op_id, _raw):
        with self.lock:
            oversized = self.faults["oversized_operation"]
            if oversized["count"] > 0:
                oversized["count"] -= 1
                op_id = f"op-{next(self._op_ids)}"
                self._taken(op_id, instance_id, "oversized")
                return 200, _oversized_operation(op_id, oversized["bytes"])
            if not self.queue or instance_id in self.gone:
                self._instance(instance_id)["empty_polls"] += 1
                return 204, None
            op = self.queue.popleft()
            self._taken(op["operation_id"], instance_id, "get")
            self._hold(op, instance_id)
            return 200, op

    def _ep_result(self, instance_id, op_id, raw):
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if not isinstance(body, dict) or "result" not in body:
            return 400, {"error": 'body must be a JSON object {"result": ...}'}
        with self.lock:
            self.results.append({"seq": len(self.results) + 1, "operation_id": op_id,
                                 "instance_id": instance_id, "result": body["result"],
                                 "time": time.time(),
                                 "duplicate": op_id in self.result_ids})
            self.result_ids.add(op_id)
            self._reported(op_id)
            self._instance(instance_id)["results"] += 1
            if (self.faults["piggyback"] and self.queue
                    and instance_id not in self.gone):
                op = self.queue.popleft()
                self._taken(op["operation_id"], instance_id, "piggyback")
                self._hold(op, instance_id)
                return 200, {"next_operation": op}
            return 200, {}

    def _ep_shutdown(self, instance_id, _op_id, _raw):
        with self.lock:
            self._instance(instance_id)["shutdowns"] += 1
            self.gone.add(instance_id)
            if self._requeue(instance_id):
                self.cond.notify_all()
            return 200, {}

    def _ep_request(self, instance_id, op_id, _raw):
        with self.lock:
            full = self.full_operations.get(op_id)
            if full is None:
                return 404, {"error": f"unknown operation {op_id}"}
            self._instance(instance_id)["full_requests"] += 1
            return 200, full

    def _serve(self, endpoint, instance_id, op_id, raw):
        """Answer an authorised agent request (not the stream)."""
        if endpoint in COUNTED:
            with self.lock:
                self._instance(instance_id)[COUNTED[endpoint]] += 1
            return 200, {}
        return getattr(self, "_ep_" + endpoint)(instance_id, op_id, raw)

    def _open_stream(self, instance_id, last_event_id=None):
        """Register a stream -> (stream, replayed bytes).  One lock for both:
        an event is either replayed or queued on the stream, never both."""
        with self.lock:
            replay = self._replay_for(instance_id, last_event_id)
            stream = _Stream(instance_id)
            self.streams.append(stream)
            self.stream_connects += 1
            self._instance(instance_id)["stream_connects"] += 1
            self.cond.notify_all()
            return stream, replay

    def _close_stream(self, stream):
        with self.lock:
            if stream in self.streams:
                self.streams.remove(stream)
            self.cond.notify_all()

    def _heartbeat_event(self):
        """(bytes or None, interval) for the next stream heartbeat."""
        with self.lock:
            raw = None
            if self.faults["heartbeats"]:
                event = {"type": "heartbeat", "ts": round(time.time(), 3)}
                if self.faults["push_metrics"]:
                    event["push_metrics"] = True
                raw = self._sse(event)
                self.sse_heartbeats += 1
            return raw, self.faults["heartbeat_interval"]


def _admin_listing(name, items):
    return {"count": len(items), name: items}


def _admin_wait(orch, query, _body):
    timeout = min(float(query.pop("timeout", 5.0)), MAX_ADMIN_WAIT)
    ok = orch.wait_counts(timeout, **{k: int(v) for k, v in query.items()})
    return (200 if ok else 408), {"ok": ok, "state": orch.state()}


def _cut(query):
    return query.get("cut", "0") not in ("0", "", "false")


def _ops_and_flag(body):
    """An enqueue/push body -> (ops, size_exceeded)."""
    if isinstance(body, dict) and "operations" in body:
        return body["operations"], bool(body.get("size_exceeded", False))
    return body, False


# (method, path) -> fn(orch, query, body) returning a dict or (status, dict).
ADMIN_ROUTES = {
    ("GET", "/admin/state"): lambda o, q, b: o.state(),
    ("GET", "/admin/results"): lambda o, q, b: _admin_listing(
        "results", o.get_results(q.get("operation_id"), q.get("instance_id"))),
    ("GET", "/admin/requests"): lambda o, q, b: _admin_listing(
        "requests", o.get_requests(q.get("path"), q.get("method"), q.get("endpoint"),
                                   q.get("instance_id"), int(q.get("since", 0)))),
    ("GET", "/admin/taken"): lambda o, q, b: _admin_listing("taken", o.get_taken()),
    ("GET", "/admin/requeued"): lambda o, q, b: _admin_listing(
        "requeued", o.get_requeued()),
    ("GET", "/admin/faults"): lambda o, q, b: o.get_faults(),
    ("POST", "/admin/faults"): lambda o, q, b: o.set_faults(b),
    ("POST", "/admin/enqueue"): lambda o, q, b: o.enqueue(*_ops_and_flag(b)),
    ("POST", "/admin/push"): lambda o, q, b: o.push(
        *_ops_and_flag(b), instance_id=q.get("instance_id"), cut=_cut(q)),
    ("POST", "/admin/event"): lambda o, q, b: o.send_event(
        b, q.get("instance_id"), _cut(q)),
    ("POST", "/admin/goodbye"): lambda o, q, b: o.goodbye(
        b.get("reason"), bool(b.get("close", False)), q.get("instance_id"),
        _cut(q)),
    ("POST", "/admin/reset"): lambda o, q, b: o.reset(bool(b.get("close_streams"))),
    ("GET", "/admin/wait"): _admin_wait,
}


class _BadRequest(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class _Handler(BaseHTTPRequestHandler):
    """One client connection; HTTP/1.1 keep-alive."""

    protocol_version = "HTTP/1.1"
    # Headers and body leave in separate writes; without TCP_NODELAY the
    # second one waits for the client's delayed ACK (tens of ms per reply).
    disable_nagle_algorithm = True
    server_version = "fake-orchestrator/1.0"

    @property
    def orch(self):
        return self.server.orch

    def setup(self):
        super().setup()
        with self.orch.lock:
            self.orch.connections.add(self.connection)

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass
        with self.orch.lock:
            self.orch.connections.discard(self.connection)

    def log_message(self, fmt, *args):
        if not self.orch.quiet:
            iid = self.headers.get("x-mcd-agent-instance-id", NO_INSTANCE) \
                if getattr(self, "headers", None) else NO_INSTANCE
            sys.stderr.write(f"{time.strftime('%H:%M:%S')} {self.address_string()} "
                             f"[{iid}] {fmt % args}\n")

    def do_GET(self):
        try:
            url = urlsplit(self.path)
            try:
                raw = self._read_body()
            except _BadRequest as err:
                self.close_connection = True
                return self._send_json(err.status, {"error": str(err)})
            if url.path.startswith("/admin/"):
                self._admin(url.path, url.query, raw)
            else:
                self._agent(url.path, url.query, raw)
        except OSError:                     # the client went away
            self.close_connection = True

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    # ----- plumbing ------------------------------------------------------------

    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, total = [], 0
            while True:
                try:
                    size = int(self.rfile.readline(65537).split(b";")[0].strip(), 16)
                except ValueError:
                    raise _BadRequest(400, "bad chunk size") from None
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass                # trailers
                    return b"".join(chunks)
                total += size
                if total > MAX_REQUEST_BODY:
                    raise _BadRequest(413, "request body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise _BadRequest(400, "bad Content-Length") from None
        if not 0 <= length <= MAX_REQUEST_BODY:
            raise _BadRequest(413, "request body too large")
        return self.rfile.read(length) if length else b""

    def _abort(self):
        """Close the connection now, whatever the client expects."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send(self, status, body=b"", drop=False):
        if drop and not body:               # nothing to cut in half: just close
            return self._abort()
        self.send_response(status)
        if status != 204:
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if drop:
            self.wfile.write(body[:len(body) // 2])
            return self._abort()
        self.wfile.write(body)

    def _send_json(self, status, obj, drop=False):
        body = b"" if obj is None else (
            obj if isinstance(obj, bytes) else json.dumps(obj).encode())
        self._send(status, body, drop)

    # ----- admin -------------------------------------------------------------

    def _admin(self, path, query, raw):
        fn = ADMIN_ROUTES.get((self.command, path))
        if fn is None:
            known = any(p == path for _, p in ADMIN_ROUTES)
            return self._send_json(405 if known else 404,
                                   {"error": f"no admin route {self.command} {path}"})
        try:
            body = json.loads(raw) if raw.strip() else {}
            reply = fn(self.orch, {k: v[-1] for k, v in parse_qs(query).items()}, body)
        except (ValueError, TypeError, AttributeError, KeyError) as err:
            return self._send_json(400, {"error": str(err) or type(err).__name__})
        status, reply = reply if isinstance(reply, tuple) else (200, reply)
        self._send_json(status, reply)

    # ----- agent -------------------------------------------------------------

    def _agent(self, path, query, raw):
        orch = self.orch
        endpoint, method_ok, op_id = _route(self.command, path)
        iid = self.headers.get("x-mcd-agent-instance-id")
        authed = (self.headers.get("x-mcd-id") == orch.token_id
                  and self.headers.get("x-mcd-token") == orch.token)
        rec = orch._record(self, endpoint, path, query, raw, iid, authed)
        with orch.lock:
            delay = orch.faults["delay"].get(endpoint, orch.faults["delay"].get("*"))
        if delay:
            time.sleep(delay)
        with orch.lock:
            verdict, drop = None, False
            if orch.faults["refuse_all"]:
                verdict = 503, {"error": "service unavailable (injected)"}
            elif orch.faults["auth_fail"] or not authed:
                verdict = 401, {"error": "unauthorized: bad x-mcd-id or x-mcd-token"}
            elif endpoint == "unknown":
                verdict = 404, {"error": f"no such endpoint: {path}"}
            elif not method_ok:
                verdict = 405, {"error": f"{self.command} not allowed on {path}"}
            else:
                fail = orch._take_count("fail", endpoint)
                if fail:
                    verdict = fail["status"], {"error": "injected failure"}
                drop = verdict is None and bool(orch._take_count("drop", endpoint))
        if verdict is None and endpoint == "stream":
            return self._stream(rec, iid, drop)
        status, payload = verdict or orch._serve(endpoint, iid, op_id, raw)
        with orch.lock:
            rec["status"] = status
            rec["dropped"] = drop
            orch.cond.notify_all()
        self._send_json(status, payload, drop)

    def _sse_write(self, raw, chunked):
        if chunked and raw:
            raw = b"%x\r\n%s\r\n" % (len(raw), raw)
        if raw:
            self.wfile.write(raw)

    def _peer_closed(self):
        """True when the client has closed its side of an idle stream."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if isinstance(self.connection, ssl.SSLSocket):
                # no MSG_PEEK through TLS; a stream's client sends nothing
                # after its request, so anything readable (close_notify,
                # FIN) is its close
                return bool(readable)
            return bool(readable) and not self.connection.recv(1, socket.MSG_PEEK)
        except OSError:
            return True

    def _stream(self, rec, iid, drop):
        orch = self.orch
        with orch.lock:
            rec["status"], rec["dropped"] = 200, drop
            chunked = orch.faults["sse_chunked"]
            welcome = orch._sse({"type": "welcome", "agent_id": orch.agent_id})
            if orch.faults["sse_retry_ms"] is not None:
                welcome = b"retry: %d\n" % orch.faults["sse_retry_ms"] + welcome
            if orch.faults["goodbye_on_connect"]:
                welcome += orch._sse({"type": "goodbye",
                                      "reason": "goodbye_on_connect"})
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding" if chunked else "Connection",
                         "chunked" if chunked else "close")
        self.end_headers()
        if drop:                            # half an event, then gone
            half = welcome[:len(welcome) // 2]
            self.wfile.write((b"%x\r\n" % len(welcome)) + half if chunked else half)
            return self._abort()
        stream, replay = orch._open_stream(iid, self.headers.get("Last-Event-ID"))
        clean = True
        try:
            self._sse_write(welcome + b"".join(replay), chunked)
            with orch.lock:
                next_beat = time.monotonic() + orch.faults["heartbeat_interval"]
            while True:
                wait = min(max(0.0, next_beat - time.monotonic()), PEER_CHECK_INTERVAL)
                try:
                    kind, payload = stream.items.get(timeout=wait)
                except queue.Empty:
                    if self._peer_closed():
                        clean = False
                        break
                    if time.monotonic() >= next_beat:
                        raw, interval = orch._heartbeat_event()
                        self._sse_write(raw, chunked)
                        next_beat = time.monotonic() + interval
                    continue
                if kind == "close":
                    clean = payload
                    break
                self._sse_write(payload, chunked)
        except OSError:
            clean = False
        finally:
            orch._close_stream(stream)
        if clean and chunked:
            try:
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass
        if not clean:
            self._abort()


def _write_ready_file(path, port):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="ascii") as f:
        f.write(f"{port}\n")
    os.replace(tmp, path)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Fake egressd orchestrator (see the module docstring).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--token-id", default=os.environ.get("EGRESSD_TOKEN_ID"))
    parser.add_argument("--token", default=os.environ.get("EGRESSD_TOKEN"))
    parser.add_argument("--heartbeat-interval", type=float, default=1.0)
    parser.add_argument("--agent-id", help="agent_id in the welcome event")
    parser.add_argument("--piggyback", action="store_true",
                        help="start with next_operation piggyback on")
    parser.add_argument("--max-requests", type=int, default=DEFAULT_MAX_REQUESTS,
                        help="request records kept (oldest dropped)")
    parser.add_argument("--quiet", action="store_true", help="no request log")
    parser.add_argument("--ready-file", help="write the port here when ready")
    args = parser.parse_args(argv)
    if not args.token_id or not args.token:
        parser.error("--token-id and --token are required")
    if args.heartbeat_interval <= 0:
        parser.error("--heartbeat-interval must be > 0")

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    orch = FakeOrchestrator(args.host, args.port, args.token_id, args.token,
                            args.heartbeat_interval, args.agent_id, args.quiet,
                            args.max_requests)
    try:
        orch.start()
    except OSError as err:
        print(f"fake_orchestrator: cannot listen on {args.host}:{args.port}: {err}",
              file=sys.stderr)
        return 1
    try:
        if args.piggyback:
            orch.set_faults(piggyback=True)
        if args.ready_file:
            _write_ready_file(args.ready_file, orch.port)
        print(f"LISTENING {orch.port}", flush=True)
        while not stop.wait(1.0):
            pass
    finally:
        orch.stop()
        if args.ready_file:
            try:
                os.unlink(args.ready_file)
            except OSError:
                pass
    if not args.quiet:
        print("fake_orchestrator: stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
