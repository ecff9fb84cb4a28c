"""The http operation (/api/v1/agent/execute/http, DESIGN.md section 5)
through the real daemon, against two local HTTP servers on 127.0.0.1: one
in operations.http.allow, one not (which must never see a request, even
when the allowed one redirects to it).

The handler completes asynchronously (OPS_PENDING, then ops_finish from the
worker's loop); these tests need a worker that passes its configuration,
loop and curl multi to handlers and delivers pending results."""

import json
import os
import posixpath
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from proto_helpers import SHORT, run_operations  # noqa: E402
from proto_helpers import agent, orch, workdir  # noqa: E402,F401 (fixtures)

HTTP_PATH = "/api/v1/agent/execute/http"
MAX_BYTES = 1000
MAX_REDIRECTS = 3
BIG = MAX_BYTES * 5


class Site:
    """A threaded HTTP server recording every request it receives."""

    def __init__(self, other_port=None):
        self.requests = []
        self.lock = threading.Lock()
        self.release = threading.Event()     # ends slow answers
        self.other_port = other_port
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self, status, body=b"", headers=()):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _handle(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                with site.lock:
                    site.requests.append({
                        "method": self.command, "path": self.path,
                        "headers": {k.lower(): v
                                    for k, v in self.headers.items()},
                        "body": body.decode("latin-1")})
                site.route(self, body)

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def route(self, h, body):
        if h.path == "/ok":
            h._answer(200, b"hello", [("Content-Type", "text/plain"),
                                      ("X-Rep", "a"), ("X-Rep", "b")])
        elif h.path == "/echo":
            h._answer(200, json.dumps({
                "method": h.command, "body": body.decode("latin-1"),
                "headers": {k.lower(): v for k, v in h.headers.items()},
            }).encode())
        elif h.path == "/redir-in":
            h._answer(302, b"moved", [("Location", "/ok")])
        elif h.path == "/redir-out":
            h._answer(302, b"", [("Location", f"http://127.0.0.1:"
                                              f"{self.other_port}/stolen")])
        elif h.path == "/redir-loop":
            h._answer(307, b"", [("Location", "/redir-loop")])
        elif h.path == "/big":
            h._answer(200, b"z" * BIG)
        elif h.path == "/slow":
            self.release.wait(SHORT)
            h._answer(200, b"late")
        else:
            h._answer(404)

    def paths(self):
        with self.lock:
            return [r["path"] for r in self.requests]

    def start(self):
        self.thread.start()

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(SHORT)


@pytest.fixture
def sites():
    """(allowed, other): two started servers; allowed redirects to other."""
    other = Site()
    allowed = Site(other_port=other.port)
    other.start()
    allowed.start()
    yield allowed, other
    allowed.stop()
    other.stop()


def start(agent, site):
    a = agent(operations={"http": {
        "enabled": True, "allow": [f"http://127.0.0.1:{site.port}"],
        "max_bytes": MAX_BYTES, "timeout": 5.0,
        "max_redirects": MAX_REDIRECTS}})
    a.wait_ready(2)
    return a


def run_ops(orch, bodies):
    """Enqueue one http operation per body; -> their results, in order."""
    return [r["result"] for r in run_operations(
        orch, [{"path": HTTP_PATH, "operation": b} for b in bodies])]


def assert_error(result, error_type, needle):
    assert result.get("error_type") == error_type, result
    assert needle in result.get("error", ""), result


def test_request_and_headers(orch, agent, sites):
    allowed, other = sites
    start(agent, allowed)
    ok, echo = run_ops(orch, [
        {"method": "GET", "url": allowed.url("/ok")},
        {"method": "POST", "url": allowed.url("/echo"), "body": "payload",
         "headers": {"X-Test": "yes", "Authorization": "Bearer sekrit",
                     "Cookie": "c=crumb", "Host": "evil.example",
                     "Content-Type": "text/x-test"}},
    ])
    assert ok.get("status") == 200, ok
    assert ok["body"] == "hello" and ok["encoding"] == "utf-8"
    assert ok["truncated"] is False
    assert ok["headers"]["x-rep"] == "a, b"
    assert ok["headers"]["content-type"] == "text/plain"

    seen = json.loads(echo["body"])
    assert seen["method"] == "POST" and seen["body"] == "payload"
    assert seen["headers"]["x-test"] == "yes"
    assert seen["headers"]["content-type"] == "text/x-test"
    assert seen["headers"]["host"] == f"127.0.0.1:{allowed.port}"
    assert "authorization" not in seen["headers"], seen
    assert "cookie" not in seen["headers"], seen
    assert other.paths() == []


def test_redirects_stay_in_the_allow_list(orch, agent, sites):
    allowed, other = sites
    start(agent, allowed)
    inside, outside, loop = run_ops(orch, [
        {"method": "GET", "url": allowed.url("/redir-in")},
        {"method": "GET", "url": allowed.url("/redir-out")},
        {"method": "GET", "url": allowed.url("/redir-loop")},
    ])
    assert inside.get("status") == 200 and inside["body"] == "hello", inside
    assert inside["url"] == allowed.url("/ok")
    assert_error(outside, "capability_denied", "operations.http.allow")
    assert_error(loop, "limit_exceeded", f"more than {MAX_REDIRECTS}")
    assert "/redir-out" in allowed.paths()
    assert allowed.paths().count("/redir-loop") == MAX_REDIRECTS + 1
    # the server outside the list never saw a request
    assert other.paths() == []


def test_size_and_time_limits(orch, agent, sites):
    allowed, other = sites
    start(agent, allowed)
    big, slow = run_ops(orch, [
        {"method": "GET", "url": allowed.url("/big")},
        {"method": "GET", "url": allowed.url("/slow"), "timeout": 0.5},
    ])
    assert big.get("status") == 200, big
    assert big["truncated"] is True
    assert big["body"] == "z" * MAX_BYTES
    assert_error(slow, "timeout", "within 0.5 s")
    # the worker goes on serving
    (again,) = run_ops(orch, [{"method": "GET", "url": allowed.url("/ok")}])
    assert again.get("status") == 200, again


def test_refusals(orch, agent, sites):
    allowed, other = sites
    start(agent, allowed)
    elsewhere, trace, crlf = run_ops(orch, [
        {"method": "GET", "url": other.url("/direct")},
        {"method": "TRACE", "url": allowed.url("/ok")},
        {"method": "GET", "url": allowed.url("/ok"),
         "headers": {"X-Bad": "a\r\nX-Injected: 1"}},
    ])
    assert_error(elsewhere, "capability_denied", "operations.http.allow")
    assert_error(trace, "invalid_request", "method")
    assert_error(crlf, "invalid_request", "CR, LF")
    assert other.paths() == []
    assert allowed.paths() == []


def test_nul_refused(orch, agent, sites):
    """A JSON string with \\u0000 is refused, never sent cut short at the
    NUL: a body, a header value, the URL."""
    allowed, other = sites
    start(agent, allowed)
    results = run_ops(orch, [
        {"method": "POST", "url": allowed.url("/echo"),
         "body": "head\x00tail"},
        {"method": "GET", "url": allowed.url("/ok"),
         "headers": {"X-A": "v\x00w"}},
        {"method": "GET", "url": allowed.url("/ok\x00/x")},
    ])
    for r in results:
        assert r.get("error_type") == "invalid_request", r
    assert "NUL" in results[0]["error"], results[0]
    assert allowed.paths() == [] and other.paths() == []


class StaticSite(Site):
    """Answers like a static file server: the path is percent-decoded and
    its dot segments resolved, /secret.txt holds the secret, anything
    under /public/ answers with its own path."""

    def route(self, h, body):
        path = posixpath.normpath(urllib.parse.unquote(h.path))
        if path == "/secret.txt":
            h._answer(200, b"TOP SECRET")
        elif path.startswith("/public/"):
            h._answer(200, path.encode())
        else:
            h._answer(404)


@pytest.fixture
def static_site():
    site = StaticSite()
    site.start()
    yield site
    site.stop()


def test_allow_list_sees_normalised_urls(orch, agent, static_site):
    """With only /public allowed, no encoding of ".." reaches /secret.txt:
    the URL is normalised (RFC 3986) before the allow-list is consulted,
    an encoded / or \\ in the path and a raw \\ are refused, and the
    request goes out in the normal form."""
    site = static_site
    a = agent(operations={"http": {
        "enabled": True, "allow": [site.url("/public")],
        "max_bytes": MAX_BYTES, "timeout": 5.0}})
    a.wait_ready(2)
    base = site.url("")
    escapes = ["/public/%2e%2e/secret.txt", "/public/%2E%2E/secret.txt",
               "/public/.%2e/secret.txt", "/public/x/%2e%2e/%2e%2e/secret.txt"]
    invalid = ["/public/..%2Fsecret.txt", "/public/..%2fsecret.txt",
               "/public/..%5Csecret.txt", "/public\\..\\secret.txt",
               "/public/..;/secret.txt"]
    results = run_ops(orch, [{"method": "GET", "url": base + p}
                             for p in escapes + invalid])
    for p, r in zip(escapes, results):
        assert r.get("error_type") == "capability_denied", (p, r)
        assert "TOP SECRET" not in str(r)
    for p, r in zip(invalid, results[len(escapes):]):
        assert r.get("error_type") == "invalid_request", (p, r)
    assert site.paths() == []
    (ok,) = run_ops(orch, [{"method": "GET",
                            "url": base + "/public/./x/../%79%7E"}])
    assert ok.get("status") == 200, ok
    assert ok["body"] == "/public/y~"
    assert ok["url"] == base + "/public/y~"
    assert site.paths() == ["/public/y~"]


def test_through_the_configured_proxy(orch, agent, sites):
    from forward_proxy import ForwardProxy
    from proto_helpers import free_closed_port
    allowed, other = sites
    with ForwardProxy() as p:
        a = agent(operations={"http": {
            "enabled": True, "allow": [f"http://127.0.0.1:{allowed.port}"],
            "proxy": p.url}})
        a.wait_ready(2)
        (ok,) = run_ops(orch, [{"method": "GET", "url": allowed.url("/ok")}])
        assert ok.get("status") == 200, ok
        assert f"127.0.0.1:{allowed.port}" in p.seen(), p.seen()
        a.stop()
    # a dead proxy is reported as the proxy's failure, not the site's
    dead = f"http://127.0.0.1:{free_closed_port()}"
    b = agent(sub="dead", operations={"http": {
        "enabled": True, "allow": [f"http://127.0.0.1:{allowed.port}"],
        "proxy": dead}})
    b.wait_ready(2)
    (err,) = run_ops(orch, [{"method": "GET", "url": allowed.url("/ok")}])
    assert f"proxy {dead} failed" in err.get("error", ""), err
