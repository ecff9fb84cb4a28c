"""Helpers shared by the integration test modules.

conftest.py (process-model tests) and proto_helpers.py (orchestrator-protocol
tests) both build on these: deadlines, polling, binary lookup, libconfig
rendering and merging, reading the database files (store.files: every
file's rows together), the control-socket client, the process class their
Daemon and Agent extend, and the temporary directory fixture.  The /proc
inspection and process helpers come from tests/procutil.py, shared with the
benchmarks, and are re-exported here.  Apart from pytest itself, only the
standard library.

EGRESSD_TEST_TIMEOUT_SCALE (float, default 1) multiplies every deadline, for
slow builds (AddressSanitizer, valgrind).
"""

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from procutil import (children_of, cpu_seconds,  # noqa: E402,F401
                      pid_alive, ppid_of, sigkill, stop_process, wait_gone)

SCALE = float(os.environ.get("EGRESSD_TEST_TIMEOUT_SCALE", "1") or "1")
DEADLINE = 20.0 * SCALE          # generous upper bound for anything to happen
SHORT = 10.0 * SCALE
POLL = 0.02                      # polling interval

# What a wait_until predicate may raise while the condition does not hold yet.
NOT_YET = (OSError, EOFError, ValueError, KeyError, TypeError, AssertionError,
           sqlite3.Error)


# --------------------------------------------------------------------------
# waiting

# What AddressSanitizer, LeakSanitizer and UBSan print when they find
# something; a sanitized build's report on stderr fails the test that ran it.
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                     "runtime error:")


def sanitizer_reports(text):
    """The lines of a process's stderr that are sanitizer reports."""
    return [ln for ln in text.splitlines()
            if any(m in ln for m in SANITIZER_MARKERS)]


def run_tool(argv, timeout=None):
    """Run a program to completion (text output captured).  It must not
    leave a sanitizer report, whatever its exit status: a leak on a refusing
    path would otherwise go unseen."""
    r = subprocess.run([str(a) for a in argv], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True,
                       timeout=timeout or SHORT)
    fail_on_sanitizer_report(" ".join(map(str, argv)), r.stderr)
    return r


def fail_on_sanitizer_report(what, err):
    hits = sanitizer_reports(err or "")
    if hits:
        pytest.fail(f"sanitizer report from {what}: {hits[:5]}\n"
                    f"{err[-4000:]}", pytrace=False)


def wait_until(pred, timeout=DEADLINE, interval=POLL, msg="condition"):
    """Call pred() until it returns something truthy; return that value.

    Exceptions raised by pred (connection refused while the daemon starts,
    the connection closed without a reply, a reply that does not parse yet,
    a database being written, ...: see NOT_YET) count as "not yet".  On
    timeout raise AssertionError with msg, the last value and the last
    exception."""
    deadline = time.monotonic() + timeout
    last, last_exc = None, None
    while True:
        try:
            last = pred()
            last_exc = None
            if last:
                return last
        except NOT_YET as e:
            last_exc = e
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:.1f}s waiting for {msg}; "
                f"last value: {last!r}; last error: {last_exc!r}")
        time.sleep(interval)


# --------------------------------------------------------------------------
# processes

def is_egressd(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"egressd" in f.read()
    except OSError:
        return False


def binary(var):
    """The absolute path of the executable named by environment variable var;
    the test fails (no skip) when it is unset or not an executable."""
    path = os.environ.get(var)
    if not path:
        pytest.fail(f"{var} is not set: point it at the built binary "
                    f"(e.g. {var}=/tmp/itbuild/{var[:-4].lower()})",
                    pytrace=False)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"{var}={path}: no such executable", pytrace=False)
    return os.path.abspath(path)


# --------------------------------------------------------------------------
# configuration

def render_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)) and v and \
            all(isinstance(x, dict) for x in v):
        # a list of groups, e.g. operations.command.commands
        return "( " + ", ".join(
            "{ " + " ".join(f"{k} = {render_value(x2)};"
                            for k, x2 in x.items()) + " }" for x in v) + " )"
    if isinstance(v, (list, tuple)):
        return "[ " + ", ".join(render_value(x) for x in v) + " ]"
    raise TypeError(f"cannot render {v!r}")


def render_config(cfg, extra=""):
    """Render a {section: {key: value}} dict as libconfig text, one key per
    line (so tests can compute line numbers).  A dict value becomes a nested
    group; extra is appended verbatim."""
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


def merge(cfg, overrides):
    """Apply overrides ({section: {key: value}}; a value of None removes the
    key) to cfg in place; return cfg."""
    for section, keys in (overrides or {}).items():
        sec = cfg.setdefault(section, {})
        for k, v in keys.items():
            if v is None:
                sec.pop(k, None)
            else:
                sec[k] = v
    return cfg


# --------------------------------------------------------------------------
# the database files

# store.files spreads the workers over up to this many files
# (CONFIG_STORE_FILES_MAX): egressd.db, then egressd-2.db .. egressd-8.db
# (STORE_FILE_NAME, STORE_FILE_PREFIX N STORE_FILE_SUFFIX in procmgr/store.h).
DB_FILES_MAX = 8
DB_TIMEOUT = 5.0            # seconds a read waits for a lock


def db_file_name(n):
    """The name of database file n (1-based)."""
    return "egressd.db" if n == 1 else f"egressd-{n}.db"


def db_files(state_dir):
    """The database files there are in state_dir, in file order (a worker
    of slot S writes file (S - 1) % store.files + 1)."""
    paths = (os.path.join(state_dir, db_file_name(n))
             for n in range(1, DB_FILES_MAX + 1))
    return [p for p in paths if os.path.exists(p)]


def db_query(state_dir, sql, params=(), dicts=False):
    """The rows of sql run read-only on each database file in state_dir,
    concatenated in file order (tuples, or dicts when dicts is true).  An
    aggregate gives one row per file: db_count sums them.  Raises
    sqlite3.OperationalError when there is no file at all, as opening a
    missing file read-only does (wait_until counts it as "not yet")."""
    paths = db_files(state_dir)
    if not paths:
        raise sqlite3.OperationalError(f"no database file in {state_dir}")
    rows = []
    for path in paths:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True,
                              timeout=DB_TIMEOUT)
        try:
            if dicts:
                con.row_factory = sqlite3.Row
            rows += [dict(r) if dicts else r
                     for r in con.execute(sql, params)]
        finally:
            con.close()
    return rows


def db_count(state_dir, sql, params=()):
    """The sum over every database file of sql's one value (count(*),
    sum(...)); a NULL counts as 0."""
    return sum(r[0] or 0 for r in db_query(state_dir, sql, params))


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

class EgressdProcess:
    """One egressd master (and its workers) run as `egressd -c config ARGS`
    in workdir, stdout and stderr appended to files there.  The control
    socket, pidfile and log are the config's egressd.sock, egressd.pid and
    egressd.log next to it.  stop() stops every process it started."""

    term_wait = DEADLINE        # stop(): SIGTERM, then SIGKILL after this

    def __init__(self, bin_path, workdir, config, args=(), env=None):
        self.bin = bin_path
        self.dir = workdir
        self.config = config
        self.args = list(args)
        self.env = env              # None: inherit the environment
        self.proc = None
        self.known_pids = set()     # every worker pid ever observed
        self.stdout_path = os.path.join(workdir, "stdout.txt")
        self.stderr_path = os.path.join(workdir, "stderr.txt")

    # paths (relative to the config's directory)
    def _path(self, name):
        return os.path.join(os.path.dirname(self.config), name)

    @property
    def sock(self):
        return self._path("egressd.sock")

    @property
    def pidfile(self):
        return self._path("egressd.pid")

    @property
    def logfile(self):
        return self._path("egressd.log")

    @property
    def pid(self):
        return self.proc.pid

    # process
    def start(self):
        with open(self.stdout_path, "ab") as out, \
                open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(
                [self.bin, "-c", self.config] + self.args, cwd=self.dir,
                stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                env=self.env)
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
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
        """SIGTERM, wait up to term_wait, SIGKILL; then SIGKILL every worker
        ever seen that is still an egressd, and wait for them to go."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.note_children()
            stop_process(self.proc, self.term_wait,
                         before_kill=self.note_children, kill_wait=SHORT)
        for pid in self.known_pids:
            if pid_alive(pid) and is_egressd(pid):
                sigkill(pid)
        wait_gone(self.known_pids, SHORT, POLL)

    # output
    @staticmethod
    def _read(path):
        try:
            with open(path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log(self, path=None):
        return self._read(path or self.logfile)

    def stdout(self):
        return self._read(self.stdout_path)

    def stderr(self):
        return self._read(self.stderr_path)

    def output(self):
        return self.stdout(), self.stderr()

    # control socket
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
        """health on a fresh connection, or on conn (a Control) if given."""
        rep = conn.request({"cmd": "health"}) if conn else \
            self.ctl({"cmd": "health"})
        self._note(rep)
        assert rep.get("ok") is True, f"health failed: {rep!r}"
        return rep

    def status(self):
        rep = self.ctl({"cmd": "status"})
        assert rep.get("ok") is True, f"status failed: {rep!r}"
        return rep


# --------------------------------------------------------------------------
# fixtures

def failed(request):
    """True when the test's setup or call phase failed (the rep_* attributes
    are set by the pytest_runtest_makereport hook in conftest.py)."""
    for when in ("setup", "call"):
        rep = getattr(request.node, "rep_" + when, None)
        if rep is not None and rep.failed:
            return True
    return False


def workdir_fixture(prefix):
    """A `workdir` fixture whose directories are named /tmp/<prefix>XXXX."""
    @pytest.fixture(name="workdir")
    def workdir(request):
        """A short private directory under /tmp (sockets need short paths).
        Removed after a passing test, kept after a failing one."""
        d = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
        yield d
        if failed(request):
            print(f"\n[kept test directory {d}]")
        else:
            shutil.rmtree(d, ignore_errors=True)
    return workdir
