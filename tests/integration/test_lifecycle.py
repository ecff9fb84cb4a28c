"""Start, stop, scale and log reopening of the master/worker process model."""

import os
import signal
import stat
import time

import pytest

from common import db_files, db_query
from conftest import (DEADLINE, UUID4_RE, pid_alive, ppid_of, run_egressd,
                      wait_until, write_config)


def _wait_gone(pids, timeout=DEADLINE):
    wait_until(lambda: not [p for p in pids if pid_alive(p)], timeout,
               msg=f"processes {sorted(pids)} to exit")


def test_version(egressd_bin):
    r = run_egressd(egressd_bin, "-V")
    assert r.returncode == 0, r
    out = (r.stdout + r.stderr).strip()
    assert out.startswith("egressd "), out
    assert len(out.split()) >= 2 and out.split()[1][0].isdigit(), out


def test_start_four_workers_then_graceful_stop(egressd):
    d = egressd(wait=4)
    h = d.health()

    assert h["pid"] == d.pid
    assert h["status"] == "healthy"
    assert h["generation"] == 1
    assert h["target"] == 4 and h["ready"] == 4

    ws = h["workers"]
    pids = [w["pid"] for w in ws]
    ids = [w["id"] for w in ws]
    iids = [w["instance_id"] for w in ws]
    assert len(set(pids)) == 4, pids
    assert d.pid not in pids
    assert len(set(ids)) == 4, ids
    assert len(set(iids)) == 4, iids
    for w in ws:
        assert UUID4_RE.match(w["instance_id"]), w
        assert w["generation"] == 1, w
        assert w["state"] == "ready", w
        assert w["health"] == "ok", w
        assert w["restarts"] == 0, w
        for k in ("uptime", "heartbeat_age"):
            assert isinstance(w[k], (int, float)) and w[k] >= 0, (k, w)
        assert w["heartbeat_age"] < 2 * 0.5 + 0.5, w
        for k in ("inflight", "done", "failed", "rss"):
            assert isinstance(w[k], int) and w[k] >= 0, (k, w)
        assert w["rss"] > 0, w
        assert pid_alive(w["pid"]), w
        assert ppid_of(w["pid"]) == d.pid, w

    # pidfile: the master's pid and a newline
    with open(d.pidfile) as f:
        assert f.read() == f"{d.pid}\n"

    # control socket: a socket, mode 0600
    st = os.stat(d.sock)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)

    # status
    s = d.status()
    assert s["pid"] == d.pid
    assert isinstance(s["version"], str) and s["version"]
    assert s["generation"] == 1
    assert s["target"] == 4 and s["workers"] == 4 and s["ready"] == 4
    assert s["state"] == "running"
    assert isinstance(s["uptime"], (int, float)) and s["uptime"] >= 0
    assert os.path.realpath(s["config"]) == os.path.realpath(d.config)

    # database: every file WAL, one workers row per instance id (in the
    # file of the worker's slot: store.files)
    modes = [m for (m,) in db_query(d.state_dir, "PRAGMA journal_mode")]
    assert modes and all(m.lower() == "wal" for m in modes), \
        (db_files(d.state_dir), modes)

    def rows_for_all():
        rows = {r["instance_id"]: r for r in db_query(
            d.state_dir, "SELECT instance_id, pid, generation FROM workers",
            dicts=True)}
        return rows if all(i in rows for i in iids) else None
    rows = wait_until(rows_for_all, msg="a workers row per instance id")
    for w in ws:
        r = rows[w["instance_id"]]
        assert r["pid"] == w["pid"], (r, w)
        assert r["generation"] == 1, r

    # graceful stop
    log_mark = len(d.log())
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0
    _wait_gone(pids)
    assert not os.path.exists(d.pidfile)
    assert not os.path.exists(d.sock)

    # Workers' exit statuses are only visible in the master's log, which
    # logs each exit with its status or signal.
    tail = d.log()[log_mark:].splitlines()
    for p in pids:
        exits = [l for l in tail if f"pid {p})" in l and
                 ("exit" in l or "signal" in l or "killed" in l)]
        assert exits, f"no exit logged for worker pid {p}:\n" + "\n".join(tail)
        assert any("status 0" in l for l in exits) and \
            not any("signal" in l or "SIGKILL" in l for l in exits), \
            f"worker pid {p} did not exit 0 on TERM: {exits}"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGQUIT],
                         ids=["INT", "QUIT"])
def test_fast_stop(egressd, sig):
    d = egressd(wait=4)
    pids = [w["pid"] for w in d.workers()]
    d.signal(sig)
    assert d.wait_exit() == 0
    _wait_gone(pids)
    assert not os.path.exists(d.pidfile)
    assert not os.path.exists(d.sock)


def test_workers_option_overrides_config(egressd):
    d = egressd(wait=2, args=["-w", "2"])
    assert d.status()["target"] == 2
    # the command line still wins after a reload of the file
    d.signal(signal.SIGHUP)
    d.wait_ready(2, generation=2)


def test_ttin_ttou(egressd):
    d = egressd(wait=4)
    orig = {w["pid"] for w in d.workers()}

    d.signal(signal.SIGTTIN)
    h = d.wait_ready(5)
    assert orig <= {w["pid"] for w in h["workers"]}, \
        "TTIN must not replace existing workers"

    # Signals of one kind do not queue: wait for each to take effect.
    d.signal(signal.SIGTTOU)
    d.wait_ready(4)
    d.signal(signal.SIGTTOU)
    h = d.wait_ready(3)
    assert d.status()["target"] == 3
    left = {w["pid"] for w in h["workers"]}
    gone = (orig | d.known_pids) - left
    _wait_gone(gone)


def test_ttou_never_below_one(egressd):
    d = egressd(wait=1, server={"workers": 1})
    (w0,) = d.workers()
    d.signal(signal.SIGTTOU)
    time.sleep(1.0)                       # observation window
    d.check_alive()
    h = d.health()
    assert h["target"] == 1, h
    assert [w["pid"] for w in h["workers"]] == [w0["pid"]], h
    assert h["workers"][0]["state"] == "ready", h
    assert pid_alive(w0["pid"])


def _fds_pointing_to(pids, path):
    holders = []
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == path:
                    holders.append((pid, fd))
            except OSError:
                pass
    return holders


def test_usr1_reopens_logs(egressd):
    d = egressd(wait=2, server={"workers": 2})
    pids = [d.pid] + [w["pid"] for w in d.workers()]
    rotated = d.logfile + ".1"
    os.rename(d.logfile, rotated)

    d.signal(signal.SIGUSR1)
    # master and every worker let go of the rotated file
    wait_until(lambda: not _fds_pointing_to(pids, rotated),
               msg=f"all processes to close {rotated}")
    wait_until(lambda: os.path.exists(d.logfile),
               msg=f"a new {d.logfile}")
    size = os.path.getsize(rotated)

    d.signal(signal.SIGTTIN)
    d.wait_ready(3)
    wait_until(lambda: "spawned worker" in d.log(),
               msg="'spawned worker' in the new log file")
    assert os.path.getsize(rotated) == size, \
        "lines were still written to the rotated log after USR1"
    d.check_alive()


def _startup_error(r, workdir, needle):
    """The one stderr line naming needle.  A refused start must be visible
    to whoever ran the command, not only in the log file."""
    lines = [l for l in r.stderr.splitlines() if needle in l]
    log = os.path.join(workdir, "egressd.log")
    in_log = ""
    if os.path.exists(log):
        with open(log) as f:
            in_log = "".join(l for l in f if needle in l)
    assert len(lines) == 1, (
        f"expected one line on stderr naming {needle}; stderr: {r.stderr!r}"
        f"; matching log lines: {in_log!r}")
    return lines[0]


def test_missing_state_dir(workdir, egressd_bin):
    conf = write_config(workdir, server={"state_dir": "no/such/state"})
    r = run_egressd(egressd_bin, "-c", conf, cwd=workdir)
    assert r.returncode != 0
    _startup_error(r, workdir, "no/such/state")
    assert not os.path.exists(os.path.join(workdir, "egressd.pid"))
    assert not os.path.exists(os.path.join(workdir, "egressd.sock"))


def test_garbage_database_at_start(workdir, egressd_bin):
    conf = write_config(workdir)
    with open(os.path.join(workdir, "egressd.db"), "wb") as f:
        f.write(b"this is not an SQLite database\n" * 256)
    r = run_egressd(egressd_bin, "-c", conf, cwd=workdir)
    assert r.returncode != 0
    _startup_error(r, workdir, "egressd.db")
    assert not os.path.exists(os.path.join(workdir, "egressd.pid"))
    assert not os.path.exists(os.path.join(workdir, "egressd.sock"))
