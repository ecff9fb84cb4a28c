"""Shared fixtures and helpers for the egressd process-model integration tests.

The binaries under test come from the environment:
    EGRESSD_BIN    path to egressd
    EGRESSCTL_BIN  path to egressctl
Nothing is skipped when they are missing: every test fails with a clear message.

Each test that starts a daemon does so in its own short temporary directory
(unix socket paths are limited to 108 bytes), and the fixture stops every
process it started: TERM to the master, SIGKILL after a deadline, then SIGKILL
to any worker still alive.  When a test fails, the daemon's log and output are
printed in the teardown section of the report.

EGRESSD_TEST_TIMEOUT_SCALE (float, default 1) multiplies every deadline, for
slow builds (AddressSanitizer, valgrind).
"""

import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time

import pytest

SCALE = float(os.environ.get("EGRESSD_TEST_TIMEOUT_SCALE", "1") or "1")
DEADLINE = 20.0 * SCALE          # generous upper bound for anything to happen
SHORT = 10.0 * SCALE
POLL = 0.02                      # polling interval

UUID4_RE = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

DEFAULT_CONFIG = {
    "server": {
        "workers": 4,
        "pidfile": "egressd.pid",
        "state_dir": ".",
        "control_socket": "egressd.sock",
        "graceful_timeout": 5.0,
        "worker_timeout": 10.0,
        "min_uptime": 1.0,
    },
    "log": {"file": "egressd.log", "level": "debug", "format": "text"},
    "worker": {"heartbeat_interval": 0.5},
}


# --------------------------------------------------------------------------
# binaries

def _binary(var):
    path = os.environ.get(var)
    if not path:
        pytest.fail(f"{var} is not set: point it at the built binary "
                    f"(e.g. {var}=/tmp/itbuild/{var[:-4].lower()})",
                    pytrace=False)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"{var}={path}: no such executable", pytrace=False)
    return os.path.abspath(path)


@pytest.fixture
def egressd_bin():
    return _binary("EGRESSD_BIN")


@pytest.fixture
def egressctl_bin():
    return _binary("EGRESSCTL_BIN")


# --------------------------------------------------------------------------
# generic helpers

def wait_until(pred, timeout=DEADLINE, interval=POLL, msg="condition"):
    """Call pred() until it returns something truthy; return that value.

    Exceptions raised by pred (connection refused while the daemon starts,
    a reply that does not parse yet, ...) count as "not yet".  On timeout,
    fail with msg, the last value and the last exception."""
    deadline = time.monotonic() + timeout
    last, last_exc = None, None
    while True:
        try:
            last = pred()
            last_exc = None
            if last:
                return last
        except (OSError, ValueError, KeyError, TypeError, AssertionError,
                sqlite3.Error) as e:
            last_exc = e
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:.1f}s waiting for {msg}; "
                f"last value: {last!r}; last error: {last_exc!r}")
        time.sleep(interval)


def proc_state(pid):
    """The state letter of /proc/PID/stat, or None if there is no such pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm may contain spaces and parentheses: the state follows the last ')'
    return data[data.rindex(b")") + 2:].split()[0].decode()


def pid_alive(pid):
    """True when pid exists and is not a zombie."""
    return proc_state(pid) not in (None, "Z", "X")


def ppid_of(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("PPid:"):
                return int(line.split()[1])
    return None


def children_of(pid):
    """Pids whose parent is pid (from /proc)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if ppid_of(int(name)) == pid:
                out.append(int(name))
        except (OSError, ValueError):
            pass
    return out


def is_egressd(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"egressd" in f.read()
    except OSError:
        return False


def render_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[ " + ", ".join(render_value(x) for x in v) + " ]"
    raise TypeError(f"cannot render {v!r}")


def render_config(cfg, extra=""):
    """Render a {section: {key: value}} dict as libconfig text, one key per
    line (so tests can compute line numbers)."""
    lines = []
    for section, keys in cfg.items():
        lines.append(f"{section}: {{")
        for k, v in keys.items():
            if isinstance(v, dict):
                lines.append(f"  {k}: {{")
                for k2, v2 in v.items():
                    lines.append(f"    {k2} = {render_value(v2)};")
                lines.append("  };")
            else:
                lines.append(f"  {k} = {render_value(v)};")
        lines.append("};")
    text = "\n".join(lines) + "\n"
    if extra:
        text += extra if extra.endswith("\n") else extra + "\n"
    return text


def merged_config(**overrides):
    """DEFAULT_CONFIG with per-section overrides, e.g.
    merged_config(server={"workers": 2}).  A value of None removes a key."""
    cfg = {s: dict(k) for s, k in DEFAULT_CONFIG.items()}
    for section, keys in overrides.items():
        sec = cfg.setdefault(section, {})
        for k, v in keys.items():
            if v is None:
                sec.pop(k, None)
            else:
                sec[k] = v
    return cfg


def write_config(directory, name="egressd.conf", extra="", **overrides):
    """Write a test configuration into directory and return its path."""
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(render_config(merged_config(**overrides), extra))
    return path


# --------------------------------------------------------------------------
# control socket

class Control:
    """A persistent connection to the control socket."""

    def __init__(self, path, timeout=SHORT):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        # With a timeout set the socket is non-blocking, and connect() on a
        # unix socket whose listen backlog is momentarily full fails with
        # EAGAIN where a blocking client would wait: retry until timeout.
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock.connect(path)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    self.sock.close()
                    raise
                time.sleep(0.005)
            except OSError:
                self.sock.close()
                raise
        self.rfile = self.sock.makefile("rb")

    def send_raw(self, data):
        self.sock.sendall(data)

    def read_reply(self):
        line = self.rfile.readline()
        if not line:
            raise EOFError("control connection closed without a reply")
        assert line.endswith(b"\n"), f"reply not newline-terminated: {line!r}"
        return json.loads(line)

    def request(self, req):
        """Send one request (dict, or raw bytes without the newline) and
        return the parsed reply."""
        if isinstance(req, (dict, list)):
            data = json.dumps(req).encode()
        elif isinstance(req, str):
            data = req.encode()
        else:
            data = req
        self.send_raw(data + b"\n")
        return self.read_reply()

    def close(self):
        try:
            self.rfile.close()
        finally:
            self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def ctl(sock_path, req, timeout=SHORT):
    """One request on a fresh connection."""
    with Control(sock_path, timeout) as c:
        return c.request(req)


# --------------------------------------------------------------------------
# the daemon

class Daemon:
    def __init__(self, bin_path, workdir, config, args=()):
        self.bin = bin_path
        self.dir = workdir
        self.config = config
        self.args = list(args)
        self.proc = None
        self.known_pids = set()     # every worker pid ever observed
        self.stdout_path = os.path.join(workdir, "stdout.txt")
        self.stderr_path = os.path.join(workdir, "stderr.txt")

    # paths (as set by DEFAULT_CONFIG; relative to the config's directory)
    @property
    def sock(self):
        return os.path.join(os.path.dirname(self.config), "egressd.sock")

    @property
    def pidfile(self):
        return os.path.join(os.path.dirname(self.config), "egressd.pid")

    @property
    def logfile(self):
        return os.path.join(os.path.dirname(self.config), "egressd.log")

    @property
    def db(self):
        return os.path.join(os.path.dirname(self.config), "egressd.db")

    @property
    def pid(self):
        return self.proc.pid

    def start(self):
        with open(self.stdout_path, "ab") as out, \
                open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(
                [self.bin, "-c", self.config] + self.args,
                cwd=self.dir, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def output(self):
        parts = []
        for p in (self.stdout_path, self.stderr_path):
            try:
                with open(p, errors="replace") as f:
                    parts.append(f.read())
            except OSError:
                parts.append("")
        return parts[0], parts[1]

    def log(self, path=None):
        try:
            with open(path or self.logfile, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    # control
    def ctl(self, req, timeout=SHORT):
        rep = ctl(self.sock, req, timeout)
        self._note(rep)
        return rep

    def _note(self, rep):
        if isinstance(rep, dict) and isinstance(rep.get("workers"), list):
            for w in rep["workers"]:
                if isinstance(w, dict) and isinstance(w.get("pid"), int):
                    self.known_pids.add(w["pid"])

    def health(self, conn=None):
        rep = conn.request({"cmd": "health"}) if conn else \
            self.ctl({"cmd": "health"})
        self._note(rep)
        assert rep.get("ok") is True, f"health failed: {rep!r}"
        return rep

    def status(self):
        rep = self.ctl({"cmd": "status"})
        assert rep.get("ok") is True, f"status failed: {rep!r}"
        return rep

    def workers(self):
        return self.health()["workers"]

    def ready_workers(self, h):
        return [w for w in h["workers"] if w.get("state") == "ready"]

    def wait_ready(self, n, timeout=DEADLINE, generation=None):
        """Wait until exactly n workers are alive and ready (of the given
        generation, when set) and the master's target is n; return health."""
        def ok():
            self.check_alive()
            h = self.health()
            ws = h["workers"]
            if len(ws) != n or h.get("target") != n:
                return None
            if any(w.get("state") != "ready" for w in ws):
                return None
            if generation is not None and \
                    any(w.get("generation") != generation for w in ws):
                return None
            if h.get("ready") != n:
                return None
            return h
        return wait_until(ok, timeout,
                          msg=f"{n} ready workers"
                          + (f" of generation {generation}" if generation
                             else ""))

    def check_alive(self):
        if self.proc.poll() is not None:
            out, err = self.output()
            raise AssertionError(
                f"egressd exited with {self.proc.returncode}\n"
                f"stderr: {err[-4000:]}\nlog tail: {self.log()[-4000:]}")

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout=DEADLINE):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"egressd (pid {self.proc.pid}) did not exit within "
                f"{timeout:.1f}s")

    def stop(self):
        """Stop everything this daemon started: TERM, then SIGKILL."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.known_pids.update(children_of(self.proc.pid))
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                self.known_pids.update(children_of(self.proc.pid))
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


def db_rows(db_path):
    """Rows of the workers table, as dicts, read-only."""
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        con.row_factory = sqlite3.Row
        return [dict(r) for r in con.execute(
            "SELECT instance_id, pid, generation FROM workers")]
    finally:
        con.close()


def db_journal_mode(db_path):
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        con.close()


# --------------------------------------------------------------------------
# fixtures

@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _failed(request):
    for when in ("setup", "call"):
        rep = getattr(request.node, "rep_" + when, None)
        if rep is not None and rep.failed:
            return True
    return False


@pytest.fixture
def workdir(request):
    """A short private directory under /tmp (sockets need short paths).
    Removed after a passing test, kept after a failing one."""
    d = tempfile.mkdtemp(prefix="egit-", dir="/tmp")
    yield d
    if _failed(request):
        print(f"\n[kept test directory {d}]")
    else:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def egressd(request, workdir, egressd_bin):
    """Factory: egressd(wait=N, args=(), **config_overrides) writes a config
    into the test directory, starts the daemon, and (when wait is an int)
    waits for N ready workers.  Everything is stopped at teardown."""
    started = []

    def start(wait=None, args=(), config=None, **overrides):
        if config is None:
            config = write_config(workdir, **overrides)
        d = Daemon(egressd_bin, workdir, config, args)
        started.append(d)
        d.start()
        if wait is not None:
            d.wait_ready(wait)
        return d

    yield start

    failed = _failed(request)
    for d in started:
        d.stop()
    if failed:
        for d in started:
            out, err = d.output()
            print(f"\n===== egressd pid {d.proc.pid if d.proc else '-'} "
                  f"exit {d.proc.returncode if d.proc else '-'} =====")
            print(f"--- stdout ---\n{out[-8000:]}")
            print(f"--- stderr ---\n{err[-8000:]}")
            print(f"--- {d.logfile} (tail) ---\n{d.log()[-20000:]}")


def run_ctl(egressctl_bin, *args, timeout=SHORT):
    """Run egressctl; return CompletedProcess (text)."""
    return subprocess.run([egressctl_bin] + [str(a) for a in args],
                          stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)


def run_egressd(egressd_bin, *args, timeout=DEADLINE, cwd=None):
    """Run egressd expecting it to exit by itself (config check, refusal).
    If it is still running at the deadline it is killed (with its children)
    and the call fails."""
    proc = subprocess.Popen([egressd_bin] + [str(a) for a in args],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=cwd)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kids = children_of(proc.pid)
        proc.kill()
        for k in kids:
            try:
                os.kill(k, signal.SIGKILL)
            except ProcessLookupError:
                pass
        out, err = proc.communicate()
        raise AssertionError(
            f"egressd {' '.join(map(str, args))} did not exit within "
            f"{timeout:.0f}s (it kept running)\nstderr: {err}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
