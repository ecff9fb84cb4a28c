"""Helpers for the orchestrator-protocol integration tests.

egressd runs as a real process against an in-process FakeOrchestrator
(tests/orchestrator/fake_orchestrator.py).  Binaries come from EGRESSD_BIN and
EGRESSCTL_BIN; EGRESSD_TEST_TIMEOUT_SCALE (float, default 1) stretches every
deadline for slow builds (AddressSanitizer, valgrind).

The test modules use the fixtures defined here by importing them:

    from proto_helpers import orch, agent   # noqa: F401  (pytest fixtures)

    def test_x(orch, agent):
        a = agent()                 # config written, egressd started
        a.wait_ready(2)
        ...

Every process a fixture starts is stopped at teardown (SIGTERM, wait, then
SIGKILL to the master and every worker it ever had), and egressd.log,
stdout and stderr are printed (pytest shows them for failing tests only).
"""

import os
import secrets
import shutil
import socket
import ssl
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "orchestrator"))

from fake_orchestrator import FakeOrchestrator  # noqa: E402

from common import (DEADLINE, SCALE, SHORT,  # noqa: E402
                    EgressdProcess, binary, merge, render_config, run_tool,
                    sanitizer_reports, wait_until, workdir_fixture)
# for the test modules
from common import pid_alive  # noqa: E402,F401

STOP_WAIT = 15.0 * SCALE         # teardown: TERM, then SIGKILL after this

TOKEN_ID = "tid"

EP_OPERATION = "operation"
EP_RESULT = "result"
EP_REQUEST = "request"
EP_HEARTBEAT = "heartbeat"
EP_SHUTDOWN = "shutdown"
EP_STREAM = "stream"


# --------------------------------------------------------------------------
# configuration

def base_config(url):
    return {
        "server": {"workers": 2, "pidfile": "egressd.pid", "state_dir": ".",
                   "control_socket": "egressd.sock", "graceful_timeout": 5.0,
                   "worker_timeout": 10.0, "min_uptime": 1.0,
                   "on_goodbye": "restart"},
        "log": {"file": "egressd.log", "level": "debug"},
        "orchestrator": {"url": url, "token_id": TOKEN_ID,
                         "token_file": "token", "poll_interval": 2.0,
                         "events_timeout": 120.0, "max_event_bytes": 1048576,
                         "max_body_bytes": 16777216},
        "worker": {"max_inflight": 8, "heartbeat_interval": 0.5,
                   "backpressure_heartbeat": 30.0},
    }


def new_token():
    return "tok-" + secrets.token_hex(16)


def reload_ctl(a):
    """egressctl reload (waits for the outcome): (exit status, output)."""
    p = run_tool([binary("EGRESSCTL_BIN"), "-s", a.sock, "reload"],
                 timeout=DEADLINE)
    return p.returncode, p.stdout + p.stderr


def make_cert(directory, name):
    """A self-signed certificate for 127.0.0.1: (cert path, key path).
    Skips the test when there is no openssl to make it."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make test certificates")
    cert = os.path.join(directory, name + ".pem")
    key = os.path.join(directory, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                    "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "1",
                    "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=DEADLINE)
    return cert, key


def tls_orchestrator(directory):
    """A fake orchestrator started on https://127.0.0.1 with a fresh
    self-signed certificate: (orchestrator, certificate path); the caller
    stops it."""
    cert, key = make_cert(directory, "orchestrator")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    o = FakeOrchestrator("127.0.0.1", 0, TOKEN_ID, new_token(), 0.5,
                         tls_context=ctx)
    o.start()
    return o, cert


def free_closed_port():
    """A TCP port on 127.0.0.1 that nothing listens on (just released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --------------------------------------------------------------------------
# the daemon

class Agent(EgressdProcess):
    """One egressd master (and its workers) in its own directory."""

    term_wait = STOP_WAIT

    def __init__(self, bin_path, workdir, url, token, overrides=None,
                 token_mode=0o600, use_token_file=True, env=None):
        environ = dict(os.environ)
        environ.pop("EGRESSD_TOKEN", None)
        environ.pop("EGRESSD_TOKEN_ID", None)
        environ.update(env or {})
        super().__init__(bin_path, workdir,
                         os.path.join(workdir, "egressd.conf"), env=environ)
        self.token = token
        cfg = base_config(url)
        if use_token_file:
            path = os.path.join(workdir, "token")
            with open(path, "w") as f:
                f.write(token + "\n")
            os.chmod(path, token_mode)
        else:
            cfg["orchestrator"]["token_file"] = ""
        self.cfg = merge(cfg, overrides)
        self.write_config()

    @property
    def state_dir(self):
        """server.state_dir, relative to the config's folder: the database
        files' folder (common.db_files)."""
        return os.path.normpath(os.path.join(
            os.path.dirname(self.config), self.cfg["server"]["state_dir"]))

    def write_config(self, overrides=None):
        merge(self.cfg, overrides)
        tmp = self.config + ".tmp"
        with open(tmp, "w") as f:
            f.write(render_config(self.cfg))
        os.replace(tmp, self.config)

    def signal(self, sig):
        self.note_children()
        super().signal(sig)

    def wait_log(self, needle, timeout=SHORT, start=0):
        """Wait for needle in egressd.log (after character offset start)."""
        return wait_until(lambda: needle in self.log()[start:], timeout,
                          msg=f"log line containing {needle!r}")

    def wait_ready(self, n, timeout=DEADLINE, generation=None,
                   exclude_ids=()):
        """Wait until exactly n workers exist, all ready (of generation,
        none of whose instance IDs is in exclude_ids); return health."""
        exclude = set(exclude_ids)

        def ok():
            self.check_alive()
            h = self.health()
            ws = h["workers"]
            if len(ws) != n or h.get("ready") != n:
                return None
            for w in ws:
                if w.get("state") != "ready" or w.get("ready") is not True:
                    return None
                if generation is not None and w.get("generation") != generation:
                    return None
                if w.get("instance_id") in exclude:
                    return None
            return h
        return wait_until(ok, timeout, msg=f"{n} ready workers")

    def worker_ids(self, h=None):
        h = h or self.health()
        return {w["instance_id"] for w in h["workers"]}

    def worker_pids(self, h=None):
        h = h or self.health()
        return {w["pid"] for w in h["workers"]}

    def dump(self):
        print(f"\n===== egressd in {self.dir} pid "
              f"{self.proc.pid if self.proc else '-'} exit "
              f"{self.proc.returncode if self.proc else '-'} =====")
        print(f"--- config ---\n{self._read(self.config)}")
        print(f"--- stdout ---\n{self.stdout()[-4000:]}")
        print(f"--- stderr ---\n{self.stderr()[-8000:]}")
        print(f"--- egressd.log (tail) ---\n{self.log()[-30000:]}")


# --------------------------------------------------------------------------
# fake orchestrator helpers

def kick(orch):
    """Tell the agent over SSE that work is waiting (saves a poll_interval)."""
    return orch.send_event({"type": "work_available"})


def results_by_id(orch):
    out = {}
    for r in orch.get_results():
        out.setdefault(r["operation_id"], []).append(r)
    return out


def wait_results(orch, op_ids, timeout=DEADLINE):
    """Wait until every id in op_ids has at least one result; return the
    {id: [results]} map (of all results)."""
    want = set(op_ids)

    def ok():
        with orch.lock:
            have = {r["operation_id"] for r in orch.results}
        return want <= have
    if not orch.wait_for(ok, timeout):
        missing = want - set(results_by_id(orch))
        raise AssertionError(f"no result within {timeout:.0f}s for "
                             f"{len(missing)} operation(s): "
                             f"{sorted(missing)[:20]}")
    return results_by_id(orch)


def run_operations(orch, ops):
    """Enqueue ops (as for orch.enqueue), tell the agent and wait; -> each
    operation's one result record, in the order given (more than one result
    for an operation fails the test)."""
    ids = orch.enqueue(ops)["operation_ids"]
    kick(orch)
    res = wait_results(orch, ids)
    for op_id, op in zip(ids, ops):
        assert len(res[op_id]) == 1, f"{op}: {res[op_id]}"
    return [res[i][0] for i in ids]


def requests(orch, endpoint=None, instance_id=None, method=None, path=None,
             since_time=None, until_time=None):
    out = orch.get_requests(path=path, method=method, endpoint=endpoint,
                            instance_id=instance_id)
    if since_time is not None:
        out = [r for r in out if r["time"] >= since_time]
    if until_time is not None:
        out = [r for r in out if r["time"] <= until_time]
    return out


def serve_raw_operations(orch, bodies):
    """The next len(bodies) GET /api/v1/agent/operation answers are 200 with
    these raw bodies (bytes), whatever the queue holds."""
    pending = list(bodies)
    original = FakeOrchestrator._ep_operation.__get__(orch)

    def ep_operation(instance_id, op_id, raw):
        with orch.lock:
            if pending:
                body = pending.pop(0)
                orch._taken("<raw>", instance_id, "raw")
                return 200, body
        return original(instance_id, op_id, raw)
    orch._ep_operation = ep_operation


def queue_raw(orch, op):
    """Queue an operation dict exactly as given (no normalisation: may lack
    "path", have a non-string operation_id, ...)."""
    with orch.lock:
        orch.queue.append(op)
        orch.cond.notify_all()


def stream_ids(orch):
    """Instance IDs that opened an SSE stream."""
    return {r["instance_id"] for r in orch.get_requests(endpoint=EP_STREAM)}


# --------------------------------------------------------------------------
# fixtures (import them into the test module)

@pytest.fixture
def orch():
    """A started FakeOrchestrator (SSE heartbeat every 0.5 s)."""
    o = FakeOrchestrator("127.0.0.1", 0, TOKEN_ID, new_token(), 0.5)
    o.start()
    yield o
    o.stop()


workdir = workdir_fixture("egproto-")


@pytest.fixture
def agent(request, workdir):
    """Factory: agent(url=None, token=None, start=True, **sections) writes a
    config (sections override base_config, e.g. worker={"max_inflight": 1})
    and starts egressd.  The URL and token default to the orch fixture's
    when that fixture is in use.  Everything is stopped at teardown."""
    started = []
    bin_path = binary("EGRESSD_BIN")

    def make(url=None, token=None, start=True, sub=None, token_mode=0o600,
             use_token_file=True, env=None, **sections):
        if url is None or token is None:
            o = request.getfixturevalue("orch")
            url = url or o.url
            token = token or o.token
        d = workdir
        if sub or started:
            d = os.path.join(workdir, sub or f"a{len(started)}")
            os.makedirs(d, exist_ok=True)
        a = Agent(bin_path, d, url, token, sections, token_mode,
                  use_token_file, env)
        started.append(a)
        if start:
            a.start()
        return a

    yield make
    sanitizer = []
    for a in started:
        try:
            a.stop()
        finally:
            a.dump()
        hits = sanitizer_reports(a.stderr())
        if hits:
            sanitizer.append(f"{a.dir}: {hits[:5]}")
    if sanitizer:
        pytest.fail("sanitizer reports on stderr: " + "; ".join(sanitizer),
                    pytrace=False)
