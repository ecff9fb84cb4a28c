"""Shared pieces of the load and callgrind benchmarks (bench/load.py,
bench/callgrind.py): an orchestrator (the Python fake or the C orchd), an
egressd daemon configured against it, process accounting from /proc, and the
cleanup that stops every process a benchmark started, also on error, ^C or
SIGTERM.

The process helpers (alive, children, stop, wait) are tests/procutil.py's,
shared with the integration tests and re-exported here for the benchmarks.

Not a benchmark itself; Python standard library only.
"""

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))
import procutil  # noqa: E402
from procutil import (children_of, pid_alive, sigkill,  # noqa: E402,F401
                      stop_process, wait_gone)

FAKE = os.path.join(REPO, "tests", "orchestrator", "fake_orchestrator.py")
TOKEN_ID = "bench"
TOKEN = "bench-secret"
HEALTH_POLL = 0.002             # control-socket polling for roll timing, s
STATE_POLL = 0.02               # orchestrator /admin/state polling, s
PR_SET_PDEATHSIG = 1
# The master's first database housekeeping pass runs 1 s after start
# (src/master/master_db.c), the next a minute later.  A benchmark that
# subtracts a short run from a long one waits this long once the workers
# are ready, so that the pass falls before the work in both runs, not
# within the long one alone (3.8 million instructions of the master's).
HOUSEKEEPING_SETTLE = 2.0

_libc = ctypes.CDLL(None, use_errno=True)


class BenchError(Exception):
    """A benchmark could not run as planned; the message says what was seen."""


def _die_with_parent():
    """In a child before exec: SIGTERM when the benchmark dies, so nothing
    outlives a benchmark that was killed without running its cleanup."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def spawn(argv, **kw):
    """Popen with the parent-death signal set."""
    return subprocess.Popen(argv, preexec_fn=_die_with_parent, **kw)


def terminate_on_sigterm():
    """A TERM to the benchmark unwinds through every finally block."""
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(128 + s))


# -- /proc -----------------------------------------------------------------

def cpu_seconds(pid):
    """User + system CPU of pid, in seconds (0 when it is gone)."""
    try:
        return procutil.cpu_seconds(pid)
    except (OSError, IndexError, ValueError):
        return 0.0


def smaps_rollup(pid):
    """The KiB fields of /proc/PID/smaps_rollup, by name ({} when gone)."""
    vals = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[-1] == "kB":
                    vals[parts[0].rstrip(":")] = int(parts[1])
    except OSError:
        pass
    return vals


class HealthClient:
    """{"cmd":"health"} over one kept control-socket connection.  The class
    using it sets sock_path and health_timeout; every worker pid a reply
    names is added to self.seen (for the final cleanup)."""

    sock = None
    rbuf = b""

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None
            self.rbuf = b""

    def health(self):
        """One round trip; None while the control socket is not up."""
        try:
            if self.sock is None:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(self.health_timeout)
                try:
                    s.connect(self.sock_path)
                except OSError:
                    s.close()
                    return None
                self.sock = s
            self.sock.sendall(b'{"cmd":"health"}\n')
            while b"\n" not in self.rbuf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise OSError("control socket closed")
                self.rbuf += chunk
        except OSError:
            self.close()
            return None
        line, self.rbuf = self.rbuf.split(b"\n", 1)
        reply = json.loads(line)
        for w in reply.get("workers", []):
            if isinstance(w.get("pid"), (int, float)):
                self.seen.add(int(w["pid"]))
        return reply

    def describe(self, last):
        """What a failed wait reports: the last health reply."""
        return f"; last health: {summary(last)}"

    def wait_for(self, what, done, timeout=None, poll=HEALTH_POLL):
        """Poll health until done(reply); the monotonic time it was seen.
        The class also sets self.proc (the master's Popen)."""
        timeout = self.health_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        last = None
        while True:
            if self.proc is None or self.proc.poll() is not None:
                status = self.proc.returncode if self.proc else None
                raise BenchError(f"{what}: the master exited with status "
                                 f"{status}{self.describe(last)}")
            reply = self.health()
            now = time.monotonic()
            if reply is not None:
                last = reply
                if done(reply):
                    return now
            if now > deadline:
                raise BenchError(f"{what}: not reached within "
                                 f"{timeout:.0f}s{self.describe(last)}")
            time.sleep(poll)


def summary(reply):
    """One line of a health reply, for error messages."""
    if reply is None:
        return "no reply (control socket not up)"
    ws = ", ".join(f"{w.get('id')}:{w.get('pid')}/g{w.get('generation')}/"
                   f"{w.get('state')}{'/retiring' if w.get('retiring') else ''}"
                   for w in reply.get("workers", []))
    return (f"status {reply.get('status')}, state {reply.get('state')}, "
            f"generation {reply.get('generation')}, ready "
            f"{reply.get('ready')}/{reply.get('target')} [{ws}]")


# -- orchestrator ----------------------------------------------------------

def orchd_binary():
    """The C orchestrator: $ORCHD_BIN, else bench/orchd beside egressd."""
    env = os.environ.get("ORCHD_BIN")
    if env:
        return env
    egressd = os.environ.get("EGRESSD_BIN",
                             os.path.join(REPO, "build", "egressd"))
    return os.path.join(os.path.dirname(egressd), "bench", "orchd")


class Orchestrator:
    """The fake orchestrator ("python") or orchd ("c"), in its own process
    so that its CPU is counted apart from egressd's.  Both print their port
    on their first stdout line ("LISTENING N" / "port N").  heartbeat is
    the stream's heartbeat interval, for either (orchd's own default is
    1 s: the master would wake every second)."""

    def __init__(self, kind, workdir, heartbeat=5.0, timeout=15.0):
        self.kind = kind
        out_path = os.path.join(workdir, f"orchestrator-{os.getpid()}.out")
        if kind == "python":
            argv = [sys.executable, FAKE, "--port", "0", "--token-id",
                    TOKEN_ID, "--token", TOKEN, "--quiet",
                    "--heartbeat-interval", str(heartbeat)]
        elif kind == "c":
            binary = orchd_binary()
            if not os.access(binary, os.X_OK):
                raise BenchError(f"orchd: {binary} is not an executable; "
                                 f"build it or set ORCHD_BIN")
            argv = [binary, "-p", "0", "-t", TOKEN, "-H",
                    str(heartbeat)]
        else:
            raise BenchError(f"unknown orchestrator {kind!r}")
        # The token ID, for an orchestrator that wants one too.
        env = dict(os.environ, EGRESSD_TOKEN_ID=TOKEN_ID,
                   EGRESSD_TOKEN=TOKEN)
        with open(out_path, "wb") as out:
            self.proc = spawn(argv, stdout=out, stdin=subprocess.DEVNULL,
                              env=env)
        self.port = self._port(out_path, timeout)
        self.url = f"http://127.0.0.1:{self.port}"

    def _port(self, path, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.kind} orchestrator exited with "
                                 f"status {self.proc.returncode}")
            with open(path, "rb") as f:
                data = f.read()
            if b"\n" in data:
                words = data.split(b"\n", 1)[0].split()
                if words and words[-1].isdigit():
                    return int(words[-1])
                raise BenchError(f"orchestrator said {data[:80]!r}, not "
                                 f"its port")
            time.sleep(0.01)
        raise BenchError(f"{self.kind} orchestrator did not start within "
                         f"{timeout:.0f}s")

    def admin(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data,
                                     method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"{}")

    def state(self):
        return self.admin("GET", "/admin/state")

    def enqueue(self, n, path="/api/v1/test/health"):
        ops = [{"path": path} for _ in range(n)]
        self.admin("POST", "/admin/enqueue", {"operations": ops})

    def work_available(self, times=1):
        for _ in range(times):
            self.admin("POST", "/admin/event", {"type": "work_available"})

    def wait_results(self, n, timeout, on_progress=None):
        """Poll /admin/state until it counts n results; the last state."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.state()
            if on_progress is not None:
                on_progress(st)
            if st["results"] >= n:
                return st
            if time.monotonic() > deadline:
                raise BenchError(f"{st['results']} of {n} results after "
                                 f"{timeout:.0f}s")
            time.sleep(STATE_POLL)

    def cpu(self):
        return cpu_seconds(self.proc.pid)

    def stop(self):
        stop_process(self.proc, 10)


# -- egressd ---------------------------------------------------------------

CONFIG = """\
# generated by bench/harness.py
server: {{ workers = {workers}; pidfile = "egressd.pid"; state_dir = ".";
          control_socket = "egressd.sock"; graceful_timeout = 10.0;
          worker_timeout = {worker_timeout}; on_goodbye = "restart"; }};
log: {{ file = "egressd.log"; level = "warning"; }};
orchestrator: {{ url = "{url}"; token_id = "{token_id}";
                token_file = "token"; poll_interval = {poll_interval}; }};
worker: {{ max_inflight = {max_inflight};{polls}
          heartbeat_interval = {heartbeat}; }};
"""


class Daemon(HealthClient):
    """One egressd master in its own directory, against an orchestrator.
    wrapper: argv put before egressd (e.g. valgrind); extra: configuration
    text appended (more groups); files: store.files (None: as many as the
    workers, up to 8, as docs/OPERATIONS.md advises); polls:
    worker.parallel_polls (None: egressd's default)."""

    def __init__(self, binary, workdir, url, workers, max_inflight=8,
                 poll_interval=60.0, heartbeat=5.0, worker_timeout=30.0,
                 wrapper=(), extra="", files=None, polls=None):
        self.dir = workdir
        self.workers = workers
        token = os.path.join(workdir, "token")
        with open(token, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(token, 0o600)
        self.conf = os.path.join(workdir, "egressd.conf")
        with open(self.conf, "w") as f:
            f.write(CONFIG.format(workers=workers, url=url, token_id=TOKEN_ID,
                                  poll_interval=poll_interval,
                                  max_inflight=max_inflight,
                                  polls="" if polls is None else
                                  f" parallel_polls = {polls};",
                                  heartbeat=heartbeat,
                                  worker_timeout=worker_timeout) + extra)
            if "store:" not in extra:
                f.write("\nstore: { files = %d; };\n" % (
                    files if files is not None else min(workers, 8)))
        self.sock_path = os.path.join(workdir, "egressd.sock")
        self.health_timeout = 10
        self.seen = set()
        err = open(os.path.join(workdir, "stderr.txt"), "wb")
        self.proc = spawn(list(wrapper) + [binary, "-c", self.conf],
                          cwd=workdir, stdin=subprocess.DEVNULL,
                          stdout=err, stderr=err)
        err.close()

    @property
    def pid(self):
        return self.proc.pid

    def worker_pids(self):
        pids = children_of(self.proc.pid)
        self.seen.update(pids)
        return pids

    def cpu(self):
        """CPU of the master and its current workers, seconds."""
        return cpu_seconds(self.pid) + sum(cpu_seconds(p)
                                           for p in self.worker_pids())

    def signal(self, signo):
        if self.proc.poll() is None:
            self.proc.send_signal(signo)

    def describe(self, last):
        return super().describe(last) + self.log_tail()

    def wait_ready(self, timeout, poll=0.01):
        n = self.workers
        self.wait_for(f"{n} workers ready", lambda r: r.get("ready") == n
                      and r.get("target") == n and
                      len(r.get("workers", [])) == n, timeout, poll)
        return self.health()

    def log_tail(self, lines=6):
        out = []
        for name in ("stderr.txt", "egressd.log"):
            try:
                with open(os.path.join(self.dir, name),
                          errors="replace") as f:
                    out += [f"\n    {name}: {line.rstrip()}"
                            for line in f.readlines()[-lines:]]
            except OSError:
                pass
        return "".join(out)

    def _ours(self, pid):
        """Still one of ours: working in our directory."""
        try:
            return (os.path.realpath(f"/proc/{pid}/cwd") ==
                    os.path.realpath(self.dir))
        except OSError:
            return False

    def stop(self, wait=30.0):
        """TERM to the master, KILL after wait s, then KILL any worker that
        outlived it.  Returns the master's exit status."""
        self.close()
        self.worker_pids()
        status = stop_process(self.proc, wait)
        for pid in sorted(self.seen):
            if pid_alive(pid) and self._ours(pid):
                sigkill(pid)
        return status


def rolled_to(n, gen):
    """A health predicate: the rolling restart to generation gen is done."""
    def done(r):
        ws = r.get("workers", [])
        return (r.get("generation") == gen and r.get("ready") == n and
                r.get("target") == n and len(ws) == n and
                all(w.get("generation") == gen and not w.get("retiring")
                    for w in ws))
    return done


@contextlib.contextmanager
def workdir(keep=False):
    d = tempfile.mkdtemp(prefix="egressd-bench-")
    try:
        yield d
    finally:
        if not keep:
            shutil.rmtree(d, ignore_errors=True)


@contextlib.contextmanager
def orchestrator(kind, directory, **kw):
    orch = Orchestrator(kind, directory, **kw)
    try:
        yield orch
    finally:
        orch.stop()


@contextlib.contextmanager
def daemon(binary, directory, url, workers, timeout, **kw):
    """egressd with every worker ready; stopped on the way out."""
    d = Daemon(binary, directory, url, workers, **kw)
    try:
        d.wait_ready(timeout)
        yield d
    finally:
        d.stop()


def control(path, cmd, timeout):
    """One request on a fresh connection to the control socket at path:
    the reply, decoded.  Raises OSError or ValueError."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        s.sendall(json.dumps({"cmd": cmd}).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        return json.loads(buf)
    finally:
        s.close()


def worker_counts(parser, text):
    """--workers "1,2": the counts, or parser.error() when not counts >= 1."""
    try:
        counts = [int(w) for w in text.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        parser.error("--workers: a comma-separated list of counts >= 1")
    return counts


def egressd_binary():
    return os.environ.get("EGRESSD_BIN") or os.path.join(REPO, "build",
                                                         "egressd")


def write_json(path, data):
    """Atomically, so a reader never sees half a file."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
