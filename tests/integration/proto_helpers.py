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

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "orchestrator"))

from fake_orchestrator import FakeOrchestrator  # noqa: E402

SCALE = float(os.environ.get("EGRESSD_TEST_TIMEOUT_SCALE", "1") or "1")
DEADLINE = 20.0 * SCALE          # anything that should happen, happens by then
SHORT = 10.0 * SCALE
STOP_WAIT = 15.0 * SCALE         # teardown: TERM, then SIGKILL after this
POLL = 0.05

TOKEN_ID = "tid"
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                     "runtime error:")

EP_OPERATION = "operation"
EP_RESULT = "result"
EP_REQUEST = "request"
EP_HEARTBEAT = "heartbeat"
EP_SHUTDOWN = "shutdown"
EP_STREAM = "stream"


# --------------------------------------------------------------------------
# generic

def wait_until(pred, timeout=DEADLINE, interval=POLL, msg="condition"):
    """Call pred() until it returns something truthy and return that value.
    Exceptions (connection refused while starting, ...) count as "not yet".
    On timeout raise AssertionError with msg and the last value/error."""
    deadline = time.monotonic() + timeout
    last, last_exc = None, None
    while True:
        try:
            last = pred()
            last_exc = None
            if last:
                return last
        except (OSError, ValueError, KeyError, TypeError, EOFError,
                AssertionError) as e:
            last_exc = e
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:.1f}s waiting for {msg}; "
                f"last value: {last!r}; last error: {last_exc!r}")
        time.sleep(interval)


def proc_state(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rindex(b")") + 2:].split()[0].decode()


def pid_alive(pid):
    """True when pid exists and is not a zombie."""
    return proc_state(pid) not in (None, "Z", "X")


def children_of(pid):
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
            if int(data[data.rindex(b")") + 2:].split()[1]) == pid:
                out.append(int(name))
        except (OSError, ValueError, IndexError):
            pass
    return out


def is_egressd(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"egressd" in f.read()
    except OSError:
        return False


def binary(var):
    path = os.environ.get(var)
    if not path:
        pytest.fail(f"{var} is not set: point it at the built binary",
                    pytrace=False)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"{var}={path}: no such executable", pytrace=False)
    return os.path.abspath(path)


# --------------------------------------------------------------------------
# configuration

def _value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    raise TypeError(f"cannot render {v!r}")


def render_config(sections):
    lines = []
    for name, keys in sections.items():
        lines.append(f"{name}: {{")
        for k, v in keys.items():
            lines.append(f"  {k} = {_value(v)};")
        lines.append("};")
    return "\n".join(lines) + "\n"


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


def merge(cfg, overrides):
    """overrides: {section: {key: value}}; None removes a key."""
    for section, keys in (overrides or {}).items():
        sec = cfg.setdefault(section, {})
        for k, v in keys.items():
            if v is None:
                sec.pop(k, None)
            else:
                sec[k] = v
    return cfg


def new_token():
    return "tok-" + secrets.token_hex(16)


def free_closed_port():
    """A TCP port on 127.0.0.1 that nothing listens on (just released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --------------------------------------------------------------------------
# control socket

def ctl(sock_path, req, timeout=SHORT):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(sock_path)
        s.sendall((json.dumps(req) + "\n").encode())
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    finally:
        s.close()
    if not buf:
        raise EOFError("control socket closed without a reply")
    return json.loads(buf)


# --------------------------------------------------------------------------
# the daemon

class Agent:
    """One egressd master (and its workers) in its own directory."""

    def __init__(self, bin_path, workdir, url, token, overrides=None,
                 token_mode=0o600, use_token_file=True, env=None):
        self.bin = bin_path
        self.dir = workdir
        self.token = token
        self.known_pids = set()
        self.proc = None
        self.env = dict(os.environ)
        self.env.pop("EGRESSD_TOKEN", None)
        self.env.pop("EGRESSD_TOKEN_ID", None)
        self.env.update(env or {})
        cfg = base_config(url)
        if use_token_file:
            path = os.path.join(workdir, "token")
            with open(path, "w") as f:
                f.write(token + "\n")
            os.chmod(path, token_mode)
        else:
            cfg["orchestrator"]["token_file"] = ""
        self.cfg = merge(cfg, overrides)
        self.config = os.path.join(workdir, "egressd.conf")
        self.write_config()
        self.stdout_path = os.path.join(workdir, "stdout.txt")
        self.stderr_path = os.path.join(workdir, "stderr.txt")

    def write_config(self, overrides=None):
        merge(self.cfg, overrides)
        tmp = self.config + ".tmp"
        with open(tmp, "w") as f:
            f.write(render_config(self.cfg))
        os.replace(tmp, self.config)

    # paths
    @property
    def sock(self):
        return os.path.join(self.dir, "egressd.sock")

    @property
    def pidfile(self):
        return os.path.join(self.dir, "egressd.pid")

    @property
    def logfile(self):
        return os.path.join(self.dir, "egressd.log")

    @property
    def pid(self):
        return self.proc.pid

    # process
    def start(self):
        with open(self.stdout_path, "ab") as out, \
                open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(
                [self.bin, "-c", self.config], cwd=self.dir,
                stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                env=self.env)
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.note_children()
        os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout=DEADLINE):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"egressd (pid {self.proc.pid}) did not "
                                 f"exit within {timeout:.1f}s") from None

    def note_children(self):
        if self.running():
            self.known_pids.update(children_of(self.proc.pid))

    def check_alive(self):
        if self.proc.poll() is not None:
            raise AssertionError(
                f"egressd exited with {self.proc.returncode}\n"
                f"stderr: {self.stderr()[-4000:]}\n"
                f"log tail: {self.log()[-4000:]}")

    def stop(self):
        """TERM, wait up to STOP_WAIT, SIGKILL; then kill any worker left."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.note_children()
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(STOP_WAIT)
            except subprocess.TimeoutExpired:
                self.note_children()
                self.proc.kill()
                self.proc.wait(SHORT)
        for pid in self.known_pids:
            if pid_alive(pid) and is_egressd(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for pid in self.known_pids:
            deadline = time.monotonic() + SHORT
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(POLL)

    # output
    def _read(self, path):
        try:
            with open(path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log(self):
        return self._read(self.logfile)

    def stderr(self):
        return self._read(self.stderr_path)

    def stdout(self):
        return self._read(self.stdout_path)

    def wait_log(self, needle, timeout=SHORT, start=0):
        """Wait for needle in egressd.log (after character offset start)."""
        return wait_until(lambda: needle in self.log()[start:], timeout,
                          msg=f"log line containing {needle!r}")

    # control socket
    def ctl(self, req, timeout=SHORT):
        rep = ctl(self.sock, req, timeout)
        if isinstance(rep, dict) and isinstance(rep.get("workers"), list):
            for w in rep["workers"]:
                if isinstance(w, dict) and isinstance(w.get("pid"), int):
                    self.known_pids.add(w["pid"])
        return rep

    def health(self):
        rep = self.ctl({"cmd": "health"})
        assert rep.get("ok") is True, f"health failed: {rep!r}"
        return rep

    def status(self):
        rep = self.ctl({"cmd": "status"})
        assert rep.get("ok") is True, f"status failed: {rep!r}"
        return rep

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

def _failed(request):
    for when in ("setup", "call"):
        rep = getattr(request.node, "rep_" + when, None)
        if rep is not None and rep.failed:
            return True
    return False


@pytest.fixture
def orch():
    """A started FakeOrchestrator (SSE heartbeat every 0.5 s)."""
    o = FakeOrchestrator("127.0.0.1", 0, TOKEN_ID, new_token(), 0.5)
    o.start()
    yield o
    o.stop()


@pytest.fixture
def workdir(request):
    d = tempfile.mkdtemp(prefix="egproto-", dir="/tmp")
    yield d
    if _failed(request):
        print(f"\n[kept test directory {d}]")
    else:
        shutil.rmtree(d, ignore_errors=True)


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
        hits = [ln for ln in a.stderr().splitlines()
                if any(m in ln for m in SANITIZER_MARKERS)]
        if hits:
            sanitizer.append(f"{a.dir}: {hits[:5]}")
    if sanitizer:
        pytest.fail("sanitizer reports on stderr: " + "; ".join(sanitizer),
                    pytrace=False)
