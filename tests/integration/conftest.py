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

import os
import re
import subprocess

import pytest

from common import (DEADLINE, SHORT, EgressdProcess, binary, children_of,
                    fail_on_sanitizer_report, failed, merge, render_config,
                    run_tool, sanitizer_reports, sigkill, wait_until,
                    workdir_fixture)
# for the test modules
from common import Control, pid_alive, ppid_of  # noqa: F401

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

@pytest.fixture
def egressd_bin():
    return binary("EGRESSD_BIN")


@pytest.fixture
def egressctl_bin():
    return binary("EGRESSCTL_BIN")


# --------------------------------------------------------------------------
# generic helpers

def merged_config(**overrides):
    """DEFAULT_CONFIG with per-section overrides, e.g.
    merged_config(server={"workers": 2}).  A value of None removes a key."""
    return merge({s: dict(k) for s, k in DEFAULT_CONFIG.items()}, overrides)


def write_config(directory, name="egressd.conf", extra="", **overrides):
    """Write a test configuration into directory and return its path."""
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(render_config(merged_config(**overrides), extra))
    return path


# --------------------------------------------------------------------------
# the daemon

class Daemon(EgressdProcess):
    """egressd with a config written by write_config (DEFAULT_CONFIG)."""

    term_wait = DEADLINE

    @property
    def state_dir(self):
        """server.state_dir: "." in DEFAULT_CONFIG, the config's folder."""
        return os.path.dirname(self.config)

    @property
    def db(self):
        """The first database file (store.files: common.db_files)."""
        return os.path.join(self.state_dir, "egressd.db")

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


# --------------------------------------------------------------------------
# fixtures

@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


workdir = workdir_fixture("egit-")


@pytest.fixture
def egressd(request, workdir, egressd_bin):
    """Factory: egressd(wait=N, args=(), env=None, **config_overrides)
    writes a config into the test directory, starts the daemon (with env
    as its whole environment, when given), and (when wait is an int) waits
    for N ready workers.  Everything is stopped at teardown."""
    started = []

    def start(wait=None, args=(), config=None, env=None, **overrides):
        if config is None:
            config = write_config(workdir, **overrides)
        d = Daemon(egressd_bin, workdir, config, args, env=env)
        started.append(d)
        d.start()
        if wait is not None:
            d.wait_ready(wait)
        return d

    yield start

    was_failed = failed(request)
    for d in started:
        d.stop()
    reports = []
    for d in started:
        out, err = d.output()
        hits = sanitizer_reports(err)
        if hits:
            reports.append(f"{d.dir}: {hits[:5]}")
        if was_failed or hits:
            print(f"\n===== egressd pid {d.proc.pid if d.proc else '-'} "
                  f"exit {d.proc.returncode if d.proc else '-'} =====")
            print(f"--- stdout ---\n{out[-8000:]}")
            print(f"--- stderr ---\n{err[-8000:]}")
            print(f"--- {d.logfile} (tail) ---\n{d.log()[-20000:]}")
    if reports:
        pytest.fail("sanitizer reports on stderr: " + "; ".join(reports),
                    pytrace=False)



def run_ctl(egressctl_bin, *args, timeout=SHORT):
    """Run egressctl; return CompletedProcess (text)."""
    return run_tool([egressctl_bin, *args], timeout=timeout)


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
            sigkill(k)
        out, err = proc.communicate()
        raise AssertionError(
            f"egressd {' '.join(map(str, args))} did not exit within "
            f"{timeout:.0f}s (it kept running)\nstderr: {err}")
    fail_on_sanitizer_report("egressd " + " ".join(map(str, args)), err)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
