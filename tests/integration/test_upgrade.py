"""USR2 and egressctl upgrade: the binary replaced under a running daemon.

The daemon runs from a copy of EGRESSD_BIN in the test's directory; the
test puts another binary at that path (EGRESSD_NEXT_BIN, built by `make
check` as tests/egressd-next: the same sources reporting VERSION+next) and
asks for the upgrade.  The master keeps its PID, every worker ends on the
new binary (/proc/PID/exe and the version in status), and nothing the
orchestrator handed out is lost or reported twice.  A binary that is
missing, fails its configuration check, exits at once, reads another state
version, or crashes after the exec leaves the old daemon serving, and the
failure is reported.
"""

import os
import shutil
import signal
import socket
import stat
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from proto_helpers import (  # noqa: E402
    DEADLINE, SHORT, Agent, kick, run_operations, wait_until)
from proto_helpers import orch, workdir  # noqa: E402,F401 (fixtures)
from common import binary, render_config, run_tool  # noqa: E402
from delivery import assert_delivered  # noqa: E402

WORKERS = 4
COMMAND_PATH = "/api/v1/agent/execute/command"
# A command that takes a while: operations are in flight across the exec.
OPERATIONS = """operations: {
  command: {
    enabled = true;
    commands = ( { name = "nap"; argv = [ "/bin/sleep", "0.3" ]; } );
  };
};
"""


@pytest.fixture
def daemon(orch, workdir):
    """Factory: daemon(binary_path, env=None, **sections) starts egressd
    from binary_path against orch; everything is stopped at teardown."""
    started = []

    def make(bin_path, env=None, **sections):
        sections.setdefault("server", {})
        sections["server"].setdefault("workers", WORKERS)
        a = Agent(bin_path, workdir, orch.url, orch.token, sections, env=env)
        started.append(a)
        with open(a.config, "w") as f:
            f.write(render_config(a.cfg, OPERATIONS))
        a.start()
        return a
    yield make
    for a in started:
        try:
            a.stop()
        finally:
            a.dump()


def install(src, dst):
    """Put src at dst the way a package manager does: a new file renamed
    over the old one (the running image stays, as a deleted file)."""
    tmp = dst + ".new"
    shutil.copyfile(src, tmp)
    os.chmod(tmp, 0o755)
    os.replace(tmp, dst)


def write_script(path, body):
    tmp = path + ".new"
    with open(tmp, "w") as f:
        f.write("#!/bin/sh\n" + body)
    os.chmod(tmp, stat.S_IRWXU)
    os.replace(tmp, path)


@pytest.fixture
def bindir(workdir):
    """workdir/bin/egressd: a copy of EGRESSD_BIN the test may replace."""
    d = os.path.join(workdir, "bin")
    os.makedirs(d)
    install(binary("EGRESSD_BIN"), os.path.join(d, "egressd"))
    return d


def version_of(path):
    r = run_tool([path, "-V"])
    assert r.returncode == 0, r
    return r.stdout.split()[1]


def upgrade(a):
    """egressctl upgrade; -> (exit status, stdout, stderr)."""
    r = run_tool([binary("EGRESSCTL_BIN"), "-c", a.config, "upgrade"],
                 timeout=DEADLINE)
    return r.returncode, r.stdout, r.stderr


def exe_of(pid):
    return os.readlink(f"/proc/{pid}/exe")


def all_on(a, exe, version):
    """status when every worker runs version from exe (and only them)."""
    a.check_alive()
    st = a.status()
    table = st["worker_table"]
    if st["version"] != version or len(table) != WORKERS or \
            st["ready"] != WORKERS or st["state"] != "running":
        return None
    for w in table:
        if w["version"] != version or not w["ready"] or \
                exe_of(w["pid"]) != exe:
            return None
    return st


def serving(a, orch, pids):
    """The daemon still answers, with the same workers, and runs work."""
    a.check_alive()
    st = a.status()
    assert {w["pid"] for w in st["worker_table"]} == pids, st
    assert st["ready"] == WORKERS, st
    res = run_operations(orch, [{} for _ in range(4)])
    assert all(r["result"].get("status") == "ok" for r in res), res
    return st


def succeeded(result):
    """A health operation's result, or the nap command's."""
    return result.get("status") == "ok" or result.get("exit_code") == 0


class Feeder:
    """Operations queued continuously until stopped, every 0.1 s: four
    health checks and a 0.3 s command, so that some are always running."""

    def __init__(self, orch):
        self.orch = orch
        self.ids, self.errors = [], []
        self.done = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        try:
            while not self.done.is_set():
                ops = [{} for _ in range(4)] + [
                    {"path": COMMAND_PATH, "operation": {"name": "nap"}}]
                self.ids.extend(self.orch.enqueue(ops)["operation_ids"])
                kick(self.orch)
                time.sleep(0.1)
        except Exception as e:          # reported by the test
            self.errors.append(e)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.t.join(DEADLINE)
        assert not self.t.is_alive() and not self.errors, self.errors


class ReadyWatch:
    """Samples the master's ready count while an upgrade runs; the lowest
    one seen is what the test checks (replies lost to the exec itself are
    counted apart: the master answers them again once it is back)."""

    def __init__(self, a):
        self.a = a
        self.lowest = None
        self.samples = 0
        self.unanswered = 0
        self.done = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.done.is_set():
            try:
                n = self.a.ctl({"cmd": "status"}, timeout=SHORT)["ready"]
                self.samples += 1
                self.lowest = n if self.lowest is None else \
                    min(self.lowest, n)
            except (OSError, ValueError, KeyError):
                self.unanswered += 1
            time.sleep(0.02)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.t.join(DEADLINE)


def test_usr2_under_load_moves_every_worker_to_the_new_binary(
        orch, daemon, bindir):
    exe = os.path.join(bindir, "egressd")
    old, new = version_of(exe), version_of(binary("EGRESSD_NEXT_BIN"))
    assert old != new
    a = daemon(exe)
    a.wait_ready(WORKERS)
    master = a.pid
    assert all_on(a, exe, old)
    with Feeder(orch) as feed, ReadyWatch(a) as watch:
        time.sleep(0.5)
        install(binary("EGRESSD_NEXT_BIN"), exe)
        a.note_children()
        a.signal(signal.SIGUSR2)
        st = wait_until(lambda: all_on(a, exe, new), DEADLINE,
                        msg=f"every worker on egressd {new} from {exe}")
        time.sleep(0.5)
    assert a.pid == master and a.running()
    assert exe_of(master) == exe, "the master runs the new file"
    assert st["pid"] == master and st["upgrade"]["from"] == old, st
    assert watch.samples > 0 and watch.lowest >= 1, \
        f"a moment with no worker ready: lowest {watch.lowest}"
    assert len(feed.ids) > 0
    assert_delivered(orch, feed.ids)    # none lost, none twice
    assert all(succeeded(r["result"]) for r in orch.get_results()), \
        [r for r in orch.get_results() if not succeeded(r["result"])][:5]
    assert "not recorded as stopped" not in a.log()
    assert f"upgrade from egressd {old} to {new} done" in a.log()
    # egressctl status shows the versions, the master's and the workers'
    r = run_tool([binary("EGRESSCTL_BIN"), "-c", a.config, "status"])
    assert r.returncode == 0 and f"egressd {new} (pid {master})" in \
        r.stdout and r.stdout.count(f", egressd {new}, ready") == WORKERS, \
        r.stdout


def test_egressctl_upgrade_waits_and_reports_the_new_version(
        orch, daemon, bindir):
    exe = os.path.join(bindir, "egressd")
    new = version_of(binary("EGRESSD_NEXT_BIN"))
    a = daemon(exe)
    a.wait_ready(WORKERS)
    install(binary("EGRESSD_NEXT_BIN"), exe)
    a.note_children()
    rc, out, err = upgrade(a)
    assert rc == 0, (out, err)
    assert f"egressd {new}" in out and f"{WORKERS}/{WORKERS} workers " \
        "ready" in out, out
    # answered once every slot's new worker is ready; the old ones leave
    wait_until(lambda: all_on(a, exe, new), SHORT, msg="old workers gone")
    # the new image can be upgraded again (back to the first binary)
    install(binary("EGRESSD_BIN"), exe)
    a.note_children()
    rc, out, err = upgrade(a)
    assert rc == 0, (out, err)
    old = version_of(exe)
    wait_until(lambda: all_on(a, exe, old), SHORT, msg=f"back on {old}")


def test_systemd_hears_reloading_then_ready_naming_the_new_version(
        orch, daemon, bindir, workdir):
    exe = os.path.join(bindir, "egressd")
    new = version_of(binary("EGRESSD_NEXT_BIN"))
    path = os.path.join(workdir, "notify")
    sd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sd.bind(path)
        sd.settimeout(SHORT)
        a = daemon(exe, env={"NOTIFY_SOCKET": path})
        a.wait_ready(WORKERS)
        msgs = []
        while not any(m.startswith("READY=1") for m in msgs):
            msgs.append(sd.recv(4096).decode())
        install(binary("EGRESSD_NEXT_BIN"), exe)
        a.note_children()
        a.signal(signal.SIGUSR2)
        after = []
        while not any(m.startswith("READY=1") for m in after):
            after.append(sd.recv(4096).decode())
    finally:
        sd.close()
    assert after[0].startswith("RELOADING=1") and new in after[0], after
    assert f"STATUS=egressd {new}: {WORKERS} workers ready" in after[-1], \
        after
    wait_until(lambda: all_on(a, exe, new), SHORT, msg="old workers gone")


def refused(a, orch, expect):
    """egressctl upgrade fails with expect in its message; the daemon
    keeps its workers and serves."""
    a.wait_ready(WORKERS)
    before = a.status()
    pids = {w["pid"] for w in before["worker_table"]}
    rc, out, err = upgrade(a)
    assert rc == 1, (rc, out, err)
    assert expect in err, err
    st = serving(a, orch, pids)
    assert st["version"] == before["version"]
    assert expect in st["upgrade"]["failure"], st
    return st


def test_upgrade_to_a_missing_binary_is_refused(orch, daemon, bindir):
    exe = os.path.join(bindir, "egressd")
    a = daemon(exe)
    a.wait_ready(WORKERS)
    os.unlink(exe)
    refused(a, orch, "no such file")


def test_upgrade_to_a_file_that_is_not_executable_is_refused(orch, daemon,
                                                              bindir):
    exe = os.path.join(bindir, "egressd")
    a = daemon(exe)
    a.wait_ready(WORKERS)
    os.chmod(exe, 0o644)
    refused(a, orch, "Permission denied")


def test_upgrade_to_a_binary_whose_check_fails_is_refused(orch, daemon,
                                                          bindir):
    exe = os.path.join(bindir, "egressd")
    a = daemon(exe)
    a.wait_ready(WORKERS)
    write_script(exe, 'echo "egressd: config.conf:3: no such key" >&2\n'
                 "exit 2\n")
    refused(a, orch, "failed with status 2: egressd: config.conf:3: no "
            "such key")
    # USR2 says the same in the log
    start = len(a.log())
    a.signal(signal.SIGUSR2)
    a.wait_log("upgrade refused: the new binary's check", start=start)


def test_upgrade_to_a_binary_that_exits_at_once_is_refused(orch, daemon,
                                                           bindir):
    exe = os.path.join(bindir, "egressd")
    a = daemon(exe)
    a.wait_ready(WORKERS)
    write_script(exe, "exit 0\n")
    refused(a, orch, "does not take over a running egressd")


def test_upgrade_to_a_binary_of_another_state_version_is_refused(
        orch, daemon, bindir):
    exe = os.path.join(bindir, "egressd")
    a = daemon(exe)
    a.wait_ready(WORKERS)
    write_script(exe, 'echo "egressd-upgrade-state: 7 9 9.9.9"\n')
    refused(a, orch, "reads upgrade states 7 to 9")


def test_new_binary_crashing_after_exec_goes_back_to_the_old(
        orch, daemon, bindir):
    exe = os.path.join(bindir, "egressd")
    old = version_of(exe)
    # Only the test build acts on it: the new image aborts after the exec.
    a = daemon(exe, env={"EGRESSD_TEST_UPGRADE_CRASH": "1"})
    a.wait_ready(WORKERS)
    master = a.pid
    install(binary("EGRESSD_NEXT_BIN"), exe)
    st = refused(a, orch, "crashed (signal 06) before it adopted the "
                 "workers")
    assert a.pid == master and st["pid"] == master
    assert st["version"] == old
    # the old image runs again, from the file the package replaced
    assert exe_of(master) == exe + " (deleted)"
    assert "egressd " + old + " took the workers back" in a.log()
