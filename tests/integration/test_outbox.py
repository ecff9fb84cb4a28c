"""The durable result outbox (table `outbox` in each database file in
state_dir: egressd.db, and egressd-N.db with store.files).

Every operation result is written to the outbox before its first PUT and
deleted once the orchestrator acknowledges it (2xx).  A worker tries a result
3 times (1 s, then 2 s apart); after that the row stays ("kept in the outbox")
and is retried at every sweep (each orchestrator.poll_interval, and right
after the first successful poll at boot), up to 3 tries per sweep.  Rows of a
worker that is gone are taken over by a live worker at its next sweep; rows of
a live worker are not stolen.  A result acknowledged once is never sent again,
but for the one window of the delivery rule (delivery.py): a worker killed
between the orchestrator's 2xx and the row's delete leaves the row, and the
worker that takes it over sends the same result again, counted and logged.

The fake orchestrator answers a "fail" fault with the injected status without
processing the request: such a PUT is in get_requests() (status 500) but not in
get_results().  So "delivered exactly once" means exactly one recorded result,
and exactly one 2xx result PUT, which is the last result PUT for that
operation.
"""

import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import db_files, db_query  # noqa: E402
from proto_helpers import (  # noqa: E402
    DEADLINE, EP_RESULT, SCALE, SHORT, kick, requests, wait_results,
    wait_until)
from proto_helpers import agent, orch, pid_alive, workdir  # noqa: E402,F401
from delivery import assert_delivered, counted, counted_resends  # noqa: E402

POLL_INTERVAL = 1.0
OUTBOX_DEADLINE = 60.0 * SCALE          # long enough for several sweeps
# The orchestrator settings every test here uses: quick sweeps.
ORCH = {"poll_interval": POLL_INTERVAL}
# Two workers that share one outbox: with a database file each (store.files
# = 0, the default) they never meet in one, and what these tests say of
# claims between workers could not fail.  test_store_files.py covers the
# files.
ONE_FILE = {"files": 1}


# --------------------------------------------------------------------------
# helpers

def outbox_rows(state_dir):
    """Every outbox row of every database file in state_dir as a dict,
    read-only, by operation ID.  Raises sqlite3.Error when there is no
    database or the table is not there (wait_until counts that as "not
    yet")."""
    return sorted(db_query(state_dir, "SELECT operation_id, result, "
                           "instance_id, attempts, next_attempt FROM outbox",
                           dicts=True), key=lambda r: r["operation_id"])


def outbox_ids(state_dir):
    return {r["operation_id"] for r in outbox_rows(state_dir)}


def wait_outbox_empty(state_dir, timeout=OUTBOX_DEADLINE):
    wait_until(lambda: not outbox_rows(state_dir), timeout,
               msg=f"the outbox in {state_dir} to be empty")


def wait_outbox_holds(state_dir, ids, timeout=DEADLINE):
    """Wait until every id in ids has a row; return the rows (dicts) by id."""
    want = set(ids)

    def ok():
        rows = {r["operation_id"]: r for r in outbox_rows(state_dir)}
        return rows if want <= set(rows) else None
    return wait_until(ok, timeout, msg=f"outbox rows for {sorted(want)}")


def set_result_failing(orch, on):
    """Every result PUT answered 500 (not processed) while on."""
    orch.set_faults(fail={"result": [1000000, 500] if on else 0})


def result_puts(orch, op_id):
    return [r for r in requests(orch, endpoint=EP_RESULT)
            if r["path"].endswith(f"/operations/{op_id}/result")]


def assert_delivered_once(orch, op_ids):
    """The delivery rule with no re-send allowed (every failure injected
    here is an answer: nothing the orchestrator took is sent again), so
    exactly one recorded result per operation; and exactly one 2xx PUT, and
    no result PUT for it after the acknowledged one."""
    assert_delivered(orch, op_ids, allowed_dups=0, timeout=0)
    for op_id in op_ids:
        puts = result_puts(orch, op_id)
        assert all(p["status"] is not None for p in puts), \
            f"{op_id}: a result PUT still unanswered: {puts}"
        ok = [p for p in puts if 200 <= p["status"] < 300]
        assert len(ok) == 1, \
            f"{op_id}: {len(ok)} acknowledged PUTs of {len(puts)}: " \
            f"{[(p['seq'], p['status'], p['instance_id']) for p in puts]}"
        assert puts[-1]["seq"] == ok[0]["seq"], \
            f"{op_id}: result sent again after it was acknowledged: " \
            f"{[(p['seq'], p['status'], p['instance_id']) for p in puts]}"
    assert orch.state()["duplicate_results"] == 0


def check_row_result(row, delivered):
    """The row's result column holds the result JSON (the bare result, or
    the {"result": ...} body that is PUT)."""
    stored = json.loads(row["result"])
    assert stored == delivered or (isinstance(stored, dict) and
                                   stored.get("result") == delivered), \
        f"outbox result {row['result']!r} is not the delivered {delivered!r}"


def pid_of(a, instance_id):
    for w in a.health()["workers"]:
        if w["instance_id"] == instance_id:
            return w["pid"]
    return None


# --------------------------------------------------------------------------
# 1. a result rejected 8 times is kept and delivered by a later sweep

def test_result_kept_in_outbox_until_acknowledged(orch, agent):
    a = agent(server={"workers": 1}, orchestrator=ORCH)
    (iid,) = a.worker_ids(a.wait_ready(1))
    state = a.state_dir
    # The first PUT is held 1 s by the fake: while it is, the row must
    # already be in the outbox (written before the first PUT).
    orch.set_faults(delay={"result": 1.0})
    orch.fail_next(EP_RESULT, 8, 500)
    (op,) = orch.enqueue({})["operation_ids"]
    kick(orch)
    wait_until(lambda: result_puts(orch, op), msg="the first result PUT")
    rows = {r["operation_id"]: r for r in outbox_rows(state)}
    assert op in rows, f"no outbox row while the first PUT is in flight: " \
        f"{rows}"
    assert rows[op]["instance_id"] == iid, rows[op]
    orch.set_faults(delay={"result": 0})

    a.wait_log("kept in the outbox", timeout=DEADLINE)
    assert op in outbox_ids(state)
    res = wait_results(orch, [op], timeout=OUTBOX_DEADLINE)
    wait_outbox_empty(state)
    time.sleep(2.5 * POLL_INTERVAL)          # two more sweeps: nothing resent
    assert_delivered_once(orch, [op])
    check_row_result(rows[op], res[op][0]["result"])
    assert res[op][0]["result"].get("status") == "ok", res[op]
    assert res[op][0]["instance_id"] == iid
    puts = result_puts(orch, op)
    assert [p["status"] for p in puts] == [500] * 8 + [200], \
        [(p["status"], p["instance_id"]) for p in puts]
    # the first three tries are 1 s, then 2 s apart (after each answer; the
    # first answer came after the fake's 1 s delay)
    t = [p["time"] for p in puts]
    assert 1.8 <= t[1] - t[0] <= 2.0 + 1.0 * SCALE, t[:3]
    assert 1.8 <= t[2] - t[1] <= 2.0 + 1.0 * SCALE, t[:3]
    assert not outbox_rows(state)
    a.check_alive()


# --------------------------------------------------------------------------
# 2. undelivered results survive a restart

def test_outbox_survives_restart(orch, agent):
    a = agent(server={"workers": 1}, orchestrator=ORCH)
    (old_iid,) = a.worker_ids(a.wait_ready(1))
    state = a.state_dir
    set_result_failing(orch, True)
    ops = orch.enqueue([{} for _ in range(3)])["operation_ids"]
    kick(orch)
    wait_outbox_holds(state, ops)
    a.signal(signal.SIGTERM)
    assert a.wait_exit() == 0
    rows = {r["operation_id"]: r for r in outbox_rows(state)}
    assert set(rows) == set(ops), f"outbox after the stop: {rows}"
    assert {r["instance_id"] for r in rows.values()} == {old_iid}, rows
    assert not orch.get_results(), "a result recorded despite the fault"

    set_result_failing(orch, False)
    # a second egressd (own directory for pidfile, socket and log) on the
    # same state_dir
    t0 = time.time()
    b = agent(server={"workers": 1, "state_dir": os.path.abspath(a.dir)},
              orchestrator=ORCH)
    (new_iid,) = b.worker_ids(b.wait_ready(1))
    assert new_iid != old_iid
    res = wait_results(orch, ops, timeout=OUTBOX_DEADLINE)
    wait_outbox_empty(state)
    time.sleep(2.5 * POLL_INTERVAL)
    assert_delivered_once(orch, ops)
    for op in ops:
        assert res[op][0]["instance_id"] == new_iid, res[op]
        assert res[op][0]["time"] >= t0
        check_row_result(rows[op], res[op][0]["result"])
    assert b.dir != a.dir
    assert not db_files(b.dir), \
        "the second egressd did not use the first's state_dir"
    b.check_alive()


# --------------------------------------------------------------------------
# 3. a killed worker's rows are taken over; a live worker's are not stolen

def test_takeover_from_killed_worker(orch, agent):
    a = agent(server={"workers": 2}, store=ONE_FILE,
              orchestrator=ORCH)
    a.wait_ready(2)
    state = a.state_dir
    set_result_failing(orch, True)
    (op,) = orch.enqueue({})["operation_ids"]
    kick(orch)
    row = wait_outbox_holds(state, [op])[op]
    owner = row["instance_id"]
    assert owner in a.worker_ids(), f"row owner {owner} is no worker"
    # past the first three tries and a few sweeps: the other (live) worker
    # does not steal the row
    a.wait_log("kept in the outbox", timeout=DEADLINE)
    time.sleep(3.5 * POLL_INTERVAL)
    puts = result_puts(orch, op)
    assert len(puts) > 3, f"no sweep retried the row: {len(puts)} PUTs"
    assert {p["instance_id"] for p in puts} == {owner}, \
        f"the row of a live worker was retried by another: " \
        f"{[(p['seq'], p['instance_id']) for p in puts]}"
    assert outbox_rows(state)[0]["instance_id"] == owner

    pid = pid_of(a, owner)
    assert pid, f"no worker pid for {owner}"
    t_kill = time.time()
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(pid), msg=f"worker {pid} to die")
    set_result_failing(orch, False)
    res = wait_results(orch, [op], timeout=OUTBOX_DEADLINE)
    wait_outbox_empty(state)
    time.sleep(2.5 * POLL_INTERVAL)
    assert_delivered_once(orch, [op])
    (r,) = res[op]
    assert r["instance_id"] != owner, \
        f"delivered by the killed worker {owner}"
    assert r["time"] >= t_kill
    assert r["instance_id"] in a.worker_ids(), r
    a.wait_ready(2)
    a.check_alive()


# --------------------------------------------------------------------------
# 4. a flapping orchestrator: no result lost, none sent twice

def test_no_duplicates_under_flapping(orch, agent):
    a = agent(server={"workers": 2}, store=ONE_FILE,
              orchestrator=ORCH)
    a.wait_ready(2)
    state = a.state_dir
    ops = orch.enqueue([{} for _ in range(30)])["operation_ids"]
    kick(orch)
    kick(orch)
    end = time.monotonic() + 10.0
    on = True
    while time.monotonic() < end:       # failing half of the time
        set_result_failing(orch, on)
        on = not on
        time.sleep(0.5)
        kick(orch)
    set_result_failing(orch, False)
    wait_results(orch, ops, timeout=OUTBOX_DEADLINE + 30.0 * SCALE)
    wait_outbox_empty(state)
    time.sleep(2.5 * POLL_INTERVAL)
    failed = [r for r in requests(orch, endpoint=EP_RESULT)
              if r["status"] == 500]
    assert failed, "the flapping never hit a result PUT"
    assert_delivered_once(orch, ops)
    assert len(orch.get_results()) == len(ops)
    assert not outbox_rows(state)
    a.check_alive()


# --------------------------------------------------------------------------
# 5. a crash (every process killed at once) loses no result either

def test_outbox_survives_crash(orch, agent):
    """The whole agent dies at once (power loss, OOM kill of the group): its
    workers never record that they stopped.  They are gone all the same, so
    the next egressd on the same state_dir delivers their rows."""
    a = agent(server={"workers": 2}, orchestrator=ORCH)
    h = a.wait_ready(2)
    old_ids = a.worker_ids(h)
    pids = [a.pid] + sorted(a.worker_pids(h))
    state = a.state_dir
    set_result_failing(orch, True)
    ops = orch.enqueue([{} for _ in range(3)])["operation_ids"]
    kick(orch)
    wait_outbox_holds(state, ops)
    for pid in pids:                    # freeze all, then kill all: nobody
        os.kill(pid, signal.SIGSTOP)    # sees the others go
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    assert a.wait_exit() == -signal.SIGKILL
    for pid in pids:
        wait_until(lambda: not pid_alive(pid), msg=f"pid {pid} to die")
    rows = {r["operation_id"]: r for r in outbox_rows(state)}
    assert set(rows) == set(ops), f"outbox after the crash: {rows}"
    assert {r["instance_id"] for r in rows.values()} <= old_ids, rows

    set_result_failing(orch, False)
    b = agent(server={"workers": 2, "state_dir": os.path.abspath(a.dir)},
              orchestrator=ORCH)
    new_ids = b.worker_ids(b.wait_ready(2))
    res = wait_results(orch, ops, timeout=OUTBOX_DEADLINE)
    wait_outbox_empty(state)
    time.sleep(2.5 * POLL_INTERVAL)
    assert_delivered_once(orch, ops)
    for op in ops:
        assert res[op][0]["instance_id"] in new_ids, res[op]
    b.check_alive()


# --------------------------------------------------------------------------
# 6. acknowledged, then killed before the delete: sent again, counted

def test_acknowledged_row_of_a_killed_worker_is_sent_again(orch, agent):
    """The window of the delivery rule: the fake takes the result and
    answers 200 while the worker is stopped; the worker is killed before
    it could delete its row.  The other worker takes the row over and sends
    the same result again, counting and logging the re-send; the master's
    shutdown notice for the dead worker comes after that, and re-queues
    nothing (the operation is reported)."""
    a = agent(server={"workers": 2}, store=ONE_FILE, orchestrator=ORCH)
    a.wait_ready(2)
    state = a.state_dir
    orch.set_faults(delay={"result": 1.0})
    (op,) = orch.enqueue({})["operation_ids"]
    kick(orch)
    (put,) = wait_until(lambda: result_puts(orch, op),
                        msg="the result PUT held by the fake")
    owner = put["instance_id"]
    pid = pid_of(a, owner)
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_until(lambda: result_puts(orch, op)[0]["status"] == 200,
                   msg="the PUT answered 200")
        assert op in outbox_ids(state), "the row went before the 2xx was read"
        orch.set_faults(delay={"result": 0})
    finally:
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(pid), msg=f"worker {pid} to die")
    wait_until(lambda: len(orch.get_results(operation_id=op)) == 2,
               OUTBOX_DEADLINE, msg="the result sent again")
    wait_outbox_empty(state)
    time.sleep(2.5 * POLL_INTERVAL)
    assert assert_delivered(orch, [op], allowed_dups=counted(a)) == {op: 1}
    first, again = orch.get_results(operation_id=op)
    assert first["instance_id"] == owner and again["instance_id"] != owner
    assert counted_resends(a).total == 1
    assert f"outbox: result for {op} is sent again, possibly a duplicate " \
        "(its row was taken from a worker that had tried to send it)" \
        in a.log()
    (notice,) = wait_until(lambda: requests(orch, endpoint="shutdown",
                                            instance_id=owner),
                           msg="the notice for the dead worker")
    assert notice["time"] >= again["time"]
    assert orch.get_requeued() == []
    a.check_alive()


# --------------------------------------------------------------------------
# 7. a worker that stops with results in the outbox leaves its notice to
#    the master

def test_stopping_worker_with_results_left_leaves_its_notice(orch, agent):
    """A rolling restart retires a worker whose result the orchestrator
    keeps refusing: its notice would have the orchestrator hand that
    operation out again while its result waits in the outbox.  So it sends
    none; the master sends it once the new worker has delivered the
    result."""
    a = agent(server={"workers": 1}, orchestrator=ORCH)
    (old,) = a.worker_ids(a.wait_ready(1))
    state = a.state_dir
    set_result_failing(orch, True)
    (op,) = orch.enqueue({})["operation_ids"]
    kick(orch)
    wait_outbox_holds(state, [op])
    a.signal(signal.SIGHUP)
    a.wait_log("1 results of this worker wait in the outbox; the master "
               "sends the shutdown notice once they are delivered",
               timeout=DEADLINE)
    a.wait_log(f"worker instance {old} stopped with results in the outbox")
    (new,) = a.worker_ids(a.wait_ready(1, exclude_ids=[old]))
    time.sleep(2 * POLL_INTERVAL)
    assert not requests(orch, endpoint="shutdown", instance_id=old), \
        "a notice while the result still waits"
    assert orch.get_requeued() == []

    set_result_failing(orch, False)
    (rec,) = wait_results(orch, [op], timeout=OUTBOX_DEADLINE)[op]
    assert rec["instance_id"] == new
    (notice,) = wait_until(lambda: requests(orch, endpoint="shutdown",
                                            instance_id=old),
                           msg="the master's notice for the old worker")
    assert notice["time"] >= rec["time"]
    a.wait_log(f"orchestrator notified of the shutdown of stopped worker "
               f"instance {old}")
    assert orch.get_requeued() == []
    wait_outbox_empty(state)
    time.sleep(2.5 * POLL_INTERVAL)
    assert_delivered_once(orch, [op])
    a.check_alive()


# --------------------------------------------------------------------------
# 8. the boot sweep: right after the first successful poll, not a
#    poll_interval later

def test_boot_sweep_is_prompt(orch, agent):
    a = agent(server={"workers": 1}, orchestrator=ORCH)
    a.wait_ready(1)
    state = a.state_dir
    set_result_failing(orch, True)
    ops = orch.enqueue([{} for _ in range(2)])["operation_ids"]
    kick(orch)
    wait_outbox_holds(state, ops)
    a.signal(signal.SIGTERM)
    assert a.wait_exit() == 0
    rows = outbox_rows(state)
    assert {r["operation_id"] for r in rows} == set(ops)
    # the rows are due (next_attempt passed) before the new agent boots, so
    # its boot sweep has to send them
    due = max(r["next_attempt"] for r in rows)
    wait_until(lambda: time.time() > due + 0.2, timeout=DEADLINE,
               msg="the rows to be due")

    set_result_failing(orch, False)
    b = agent(server={"workers": 1, "state_dir": os.path.abspath(a.dir)},
              orchestrator={"poll_interval": 30.0})
    b.wait_ready(1)
    t_ready = time.monotonic()
    wait_results(orch, ops, timeout=5.0 * SCALE)
    assert time.monotonic() - t_ready < 5.0 * SCALE
    wait_outbox_empty(state, timeout=SHORT)
    assert_delivered_once(orch, ops)
    b.check_alive()
