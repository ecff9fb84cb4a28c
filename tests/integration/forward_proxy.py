"""A tiny HTTP forward proxy for tests (Python stdlib only): CONNECT
tunnels for https:// and absolute-URI requests for http://, as squid or
tinyproxy serve them.  It listens on 127.0.0.1 and records the target of
every request, so a test can tell that traffic went through it.

    with ForwardProxy() as p:
        url = p.url                  # http://127.0.0.1:PORT
        ...
        p.targets                    # ["127.0.0.1:8080", ...]
"""

import select
import socket
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TUNNEL_IDLE = 30.0      # seconds a quiet tunnel stays open


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_CONNECT(self):
        host, _, port = self.path.rpartition(":")
        self.server.proxy.note(self.path)
        try:
            upstream = socket.create_connection((host, int(port)), 5)
        except (OSError, ValueError):
            self.send_error(502, "cannot reach " + self.path)
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        self._pipe(self.connection, upstream)

    def _pipe(self, a, b):
        socks = [a, b]
        try:
            while True:
                ready, _, _ = select.select(socks, [], [], TUNNEL_IDLE)
                if not ready:
                    return
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)
        except OSError:
            return
        finally:
            b.close()
            self.close_connection = True

    def _forward(self):
        url = urllib.parse.urlsplit(self.path)
        self.server.proxy.note(url.netloc)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            upstream = socket.create_connection(
                (url.hostname, url.port or 80), 5)
        except OSError:
            self.send_error(502, "cannot reach " + url.netloc)
            return
        target = url.path + ("?" + url.query if url.query else "")
        lines = [f"{self.command} {target or '/'} HTTP/1.1"]
        for k, v in self.headers.items():
            if k.lower() not in ("proxy-connection", "connection",
                                 "proxy-authorization"):
                lines.append(f"{k}: {v}")
        lines.append("Connection: close")
        upstream.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        # the answer goes back as it comes; the connection then closes
        self.close_connection = True
        try:
            while True:
                data = upstream.recv(65536)
                if not data:
                    break
                self.connection.sendall(data)
        except OSError:
            pass
        finally:
            upstream.close()

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = _forward


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class ForwardProxy:
    def __init__(self):
        self.targets = []
        self.lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.proxy = self
        self._thread = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def note(self, target):
        with self.lock:
            self.targets.append(target)

    def seen(self):
        with self.lock:
            return list(self.targets)

    def start(self):
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
            name="forward-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
