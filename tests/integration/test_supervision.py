"""The master supervises its workers: respawn, crash-loop back-off, timeouts."""

import json
import os
import signal
import time

from common import db_files
from conftest import (DEADLINE, SHORT, UUID4_RE, pid_alive, ppid_of, run_ctl,
                      wait_until)


def test_killed_worker_is_replaced(egressd):
    d = egressd(wait=4)
    # let every worker outlive server.min_uptime (1 s): a normal death
    h = wait_until(lambda: (lambda h: h if all(
        w["uptime"] >= 1.5 for w in h["workers"]) else None)(d.health()),
        msg="workers to be up for 1.5 s")
    victim = h["workers"][1]
    others = {w["id"]: w for w in h["workers"] if w["id"] != victim["id"]}
    log_mark = len(d.log())

    os.kill(victim["pid"], signal.SIGKILL)

    def replaced():
        h = d.health()
        ws = {w["id"]: w for w in h["workers"]}
        w = ws.get(victim["id"])
        if len(ws) == 4 and w and w["pid"] != victim["pid"] and \
                all(x["state"] == "ready" for x in ws.values()):
            return h
        return None
    h = wait_until(replaced, msg=f"slot {victim['id']} to get a new worker")
    ws = {w["id"]: w for w in h["workers"]}
    new = ws[victim["id"]]
    assert not pid_alive(victim["pid"])
    assert ppid_of(new["pid"]) == d.pid
    assert new["restarts"] == 1, new
    assert new["instance_id"] != victim["instance_id"]
    assert UUID4_RE.match(new["instance_id"]), new
    for wid, w in others.items():
        assert ws[wid]["pid"] == w["pid"], (wid, ws[wid], w)
        assert ws[wid]["instance_id"] == w["instance_id"]
        assert ws[wid]["restarts"] == 0, ws[wid]
    assert "spawned worker" in d.log()[log_mark:]


def test_crash_loop_backoff(egressd, egressctl_bin):
    d = egressd(wait=2, server={"workers": 2, "min_uptime": 5.0})
    pids = [w["pid"] for w in d.workers()]

    # Make the database unusable for new workers: garbage in the same
    # files, every one of them, whatever file a worker's slot writes
    # (store.files); a file put in its place is another fault, which the
    # master answers by holding work back: test_state_guard.py.
    files = db_files(d.state_dir)
    assert d.db in files, files
    for path in files:
        with open(path, "r+b") as f:
            f.write(b"\x00garbage, not an SQLite database\xff" * 512)
            f.truncate()
        for suffix in ("-wal", "-shm"):
            try:
                os.unlink(path + suffix)
            except FileNotFoundError:
                pass

    log_mark = len(d.log())
    for p in pids:
        os.kill(p, signal.SIGKILL)
    time.sleep(10.0)                               # observation window

    d.check_alive()
    new = d.log()[log_mark:]
    spawned = sum(1 for l in new.splitlines() if "spawned worker" in l)
    print(f"{spawned} forks in the 10 s window")
    assert spawned >= 2, f"the master did not respawn the workers:\n{new}"
    assert spawned < 12, \
        f"{spawned} forks in 10 s: no crash-loop back-off\n{new[-5000:]}"
    assert "crash loop" in new, new[-5000:]
    s = d.status()
    assert s["pid"] == d.pid and s["target"] == 2, s
    # no worker can boot: no capacity at all
    h = d.health()
    assert h["ready"] == 0 and h["status"] == "down", h
    r = run_ctl(egressctl_bin, "-s", d.sock, "health")
    assert r.returncode == 2, r


def test_stopped_worker_times_out(egressd, egressctl_bin):
    d = egressd(wait=4, server={"worker_timeout": 3.0},
                worker={"heartbeat_interval": 0.5},
                store={"busy_timeout": 1.0})
    h = d.health()
    victim = h["workers"][0]
    os.kill(victim["pid"], signal.SIGSTOP)
    t0 = time.monotonic()

    def degraded():
        r = run_ctl(egressctl_bin, "-s", d.sock, "health", "--json")
        return r if r.returncode == 1 else None
    r = wait_until(degraded, SHORT, interval=0.05,
                   msg="`egressctl health` to exit 1 (degraded)")
    rep = json.loads(r.stdout)
    assert rep["status"] == "degraded", rep
    ws = {w["id"]: w for w in rep["workers"]}
    assert ws[victim["id"]]["health"] == "stale", rep
    assert ws[victim["id"]]["pid"] == victim["pid"]
    others = [w for i, w in ws.items() if i != victim["id"]]
    assert others, rep
    assert all(w["health"] == "ok" for w in others), rep

    # text output says so too (still inside the stale window)
    r = run_ctl(egressctl_bin, "-s", d.sock, "health")
    if pid_alive(victim["pid"]):
        assert r.returncode == 1, r
        out = r.stdout.lower()
        assert "degraded" in out or "stale" in out, r.stdout

    # after worker_timeout (+2 s SIGKILL) it is gone and replaced
    wait_until(lambda: not pid_alive(victim["pid"]), DEADLINE,
               msg="the stopped worker to be killed")
    gone_after = time.monotonic() - t0

    def replaced():
        h = d.health()
        ws = {w["id"]: w for w in h["workers"]}
        w = ws.get(victim["id"])
        return h if (len(ws) == 4 and w and w["pid"] != victim["pid"]
                     and all(x["state"] == "ready" for x in ws.values())) \
            else None
    wait_until(replaced, msg="the stopped worker's replacement")

    def healthy():
        r = run_ctl(egressctl_bin, "-s", d.sock, "health")
        return r if r.returncode == 0 else None
    r = wait_until(healthy, msg="`egressctl health` to exit 0 again")
    assert "healthy" in r.stdout.lower(), r.stdout
    assert gone_after >= 3.0 - 0.2, \
        f"killed {gone_after:.1f}s after SIGSTOP, before worker_timeout (3 s)"
