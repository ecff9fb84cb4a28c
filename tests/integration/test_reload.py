"""HUP: configuration reload and rolling restart."""

import signal
import sqlite3
import threading
import time

import pytest

from common import db_files, db_query
from conftest import (DEADLINE, UUID4_RE, Control, pid_alive, wait_until,
                      write_config)


def _rolling_restart_min_ready(d, old_pids, n, generation, timeout=DEADLINE):
    """Send HUP and sample health every 10 ms until the new generation is
    complete.  Return (min_ready, first_violation, final_health, samples)."""
    min_ready = None
    violation = None
    samples = 0
    deadline = time.monotonic() + timeout
    with Control(d.sock) as c:
        d.signal(signal.SIGHUP)
        while True:
            h = d.health(conn=c)
            samples += 1
            ws = h["workers"]
            by_state = sum(1 for w in ws if w.get("state") == "ready")
            ready = min(by_state, h["ready"])
            if min_ready is None or ready < min_ready:
                min_ready = ready
            if ready < n and violation is None:
                violation = h
            done = (len(ws) == n and h["target"] == n
                    and all(w["generation"] == generation
                            and w["state"] == "ready" for w in ws)
                    and not old_pids & {w["pid"] for w in ws})
            if done:
                return min_ready, violation, h, samples
            assert time.monotonic() < deadline, \
                f"rolling restart not complete after {timeout:.0f}s: {h!r}"
            time.sleep(0.01)


class _HoldWriteLock(threading.Thread):
    """Hold the write lock of every database file for a while: new
    workers, which register themselves in their file at boot, cannot
    become READY until it is released.  This stretches the rolling
    restart so that sampling can see it.  (It relies on the post-fork hook
    opening the database and registering the worker before HELLO/READY,
    DESIGN section 1.)  Every file, not only egressd.db: with store.files
    each slot's worker writes its own."""

    def __init__(self, state_dir, seconds, snapshot):
        super().__init__(daemon=True)
        self.cons = []
        try:
            for path in db_files(state_dir):
                con = sqlite3.connect(path, timeout=5, isolation_level=None,
                                      check_same_thread=False)
                self.cons.append(con)
                con.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._release()
            raise
        assert self.cons, f"no database file in {state_dir}"
        self.seconds = seconds
        self.snapshot = snapshot
        self.released = threading.Event()
        self.at_release = None      # callback result just before release

    def _release(self):
        for con in self.cons:
            if con.in_transaction:
                con.execute("COMMIT")
            con.close()
        self.cons = []

    def run(self):
        time.sleep(self.seconds)
        try:
            self.at_release = self.snapshot()
        except Exception as e:      # reported by the test
            self.at_release = e
        self._release()
        self.released.set()


@pytest.mark.parametrize("slow_boot", [False, True],
                         ids=["fast-boot", "slow-boot"])
def test_hup_rolling_restart_keeps_capacity(egressd, slow_boot):
    d = egressd(wait=4)
    h0 = d.health()
    old_pids = {w["pid"] for w in h0["workers"]}
    old_iids = {w["instance_id"] for w in h0["workers"]}

    hold = None
    if slow_boot:
        hold = _HoldWriteLock(d.state_dir, 1.5,
                              lambda: (d.health(), d.status()))
        hold.start()
    min_ready, violation, h, samples = \
        _rolling_restart_min_ready(d, old_pids, 4, 2)
    if hold is not None:
        assert hold.released.wait(DEADLINE)
        snap = hold.at_release
        assert isinstance(snap, tuple), snap
        snap, st = snap
        assert st["state"] == "reloading", st
        # while the new generation could not boot, the old one kept serving
        assert {w["pid"] for w in snap["workers"]
                if w["state"] == "ready"} == old_pids, \
            f"with the new generation held back at boot, the ready " \
            f"workers should be exactly the old ones: {snap!r}"
        assert all(w["generation"] == 1 for w in snap["workers"]
                   if w["state"] == "ready"), snap
    assert min_ready >= 4, \
        f"ready workers dropped to {min_ready} during the rolling restart " \
        f"(first sample below 4: {violation!r})"

    new_pids = {w["pid"] for w in h["workers"]}
    new_iids = {w["instance_id"] for w in h["workers"]}
    assert len(new_pids) == 4 and not new_pids & old_pids
    assert len(new_iids) == 4 and not new_iids & old_iids
    assert all(UUID4_RE.match(i) for i in new_iids), new_iids
    assert h["generation"] == 2
    assert d.status()["generation"] == 2
    wait_until(lambda: not [p for p in old_pids if pid_alive(p)],
               msg="old workers to exit")

    def rows():
        rs = {r["instance_id"]: r for r in db_query(
            d.state_dir, "SELECT instance_id, pid, generation FROM workers",
            dicts=True)}
        return rs if new_iids <= rs.keys() else None
    rs = wait_until(rows, msg="workers rows for the new generation")
    assert all(rs[i]["generation"] == 2 for i in new_iids), rs
    print(f"{samples} samples, min ready {min_ready}")


def test_hup_with_broken_config_keeps_running(egressd, workdir):
    d = egressd(wait=4)
    pids = {w["pid"] for w in d.workers()}
    log_mark = len(d.log())

    write_config(workdir, server={"bogus_reload_key": 1})
    t0 = time.monotonic()
    d.signal(signal.SIGHUP)

    def refused():
        new = d.log()[log_mark:]
        for line in new.splitlines():
            if "reload" in line and \
                    "keeping the running configuration" in line:
                return new
        return None
    new = wait_until(refused, msg="a log line about the refused reload")
    assert "bogus_reload_key" in new, \
        f"the log does not say what is wrong with the config:\n{new}"

    time.sleep(max(0.0, t0 + 2.0 - time.monotonic()))   # observation window
    d.check_alive()
    h = d.health()
    assert {w["pid"] for w in h["workers"]} == pids, h
    assert all(pid_alive(p) for p in pids)
    assert all(w["state"] == "ready" for w in h["workers"]), h
    assert h["generation"] == 1, h
    assert d.status()["state"] == "running"

    # fixed config: HUP now restarts the workers
    write_config(workdir)
    d.signal(signal.SIGHUP)
    h = d.wait_ready(4, generation=2)
    assert not {w["pid"] for w in h["workers"]} & pids, h
    wait_until(lambda: not [p for p in pids if pid_alive(p)],
               msg="old workers to exit")
