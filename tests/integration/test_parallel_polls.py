"""worker.parallel_polls: GET operation requests in flight at once, and the
one commit shared by the brief operations that arrive together.

While the orchestrator has work, a worker keeps up to worker.parallel_polls
GETs of /api/v1/agent/operation in flight, each taking a free slot of
worker.max_inflight; after an answer without an operation (204) it goes back
to one poll per orchestrator.poll_interval.  Operations that finish at once
(health) accepted in one pass of the worker's loop are written in one
transaction, and each result is committed before its first PUT.

The fake orchestrator's GET answer is slowed down here (in the handler, not
under its lock), so the GETs that overlap are counted where they are served.
"""

import os
import re
import signal
import sqlite3
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import db_files, db_query  # noqa: E402
from proto_helpers import (  # noqa: E402
    DEADLINE, EP_OPERATION, SHORT, FakeOrchestrator, kick, requests,
    results_by_id, wait_results, wait_until)
from proto_helpers import agent, orch, workdir  # noqa: E402,F401

HEALTH = "/api/v1/test/health"
GET_DELAY = 0.5         # each GET answer: long enough that a burst overlaps


def count_overlapping_gets(orch, delay=GET_DELAY):
    """Serve every GET operation after `delay`; -> a dict whose "max" is the
    most GETs served at the same time."""
    seen = {"now": 0, "max": 0}
    lock = threading.Lock()
    original = FakeOrchestrator._ep_operation.__get__(orch)

    def ep_operation(instance_id, op_id, raw):
        with lock:
            seen["now"] += 1
            seen["max"] = max(seen["max"], seen["now"])
        try:
            time.sleep(delay)
            return original(instance_id, op_id, raw)
        finally:
            with lock:
                seen["now"] -= 1
    orch._ep_operation = ep_operation
    return seen


def one_worker(agent, polls, inflight=8, poll_interval=2.0):
    a = agent(server={"workers": 1},
              orchestrator={"poll_interval": poll_interval},
              worker={"max_inflight": inflight, "parallel_polls": polls})
    a.wait_ready(1)
    return a


def run_health(orch, n):
    """n health operations, each answered once; -> their IDs."""
    ids = orch.enqueue([{"path": HEALTH} for _ in range(n)])["operation_ids"]
    kick(orch)
    res = wait_results(orch, ids, timeout=4 * SHORT + n * GET_DELAY)
    assert all(len(res[i]) == 1 for i in ids), res
    assert all(res[i][0]["result"].get("status") == "ok" for i in ids), res
    assert orch.state()["duplicate_results"] == 0
    return ids


def test_parallel_polls_keep_that_many_gets_in_flight(orch, agent):
    """parallel_polls 3: with work waiting, three GETs overlap, never four;
    every operation is answered once."""
    seen = count_overlapping_gets(orch)
    one_worker(agent, polls=3)
    run_health(orch, 12)
    assert seen["max"] == 3, seen


def test_parallel_polls_take_free_slots_only(orch, agent):
    """max_inflight 3, parallel_polls 8: a GET in flight holds a slot, and
    so does the operation that came with the answer opening them until its
    result is acknowledged, so no more than two GETs overlap."""
    seen = count_overlapping_gets(orch)
    one_worker(agent, polls=8, inflight=3)
    run_health(orch, 8)
    assert seen["max"] == 2, seen


def test_one_poll_at_a_time_with_parallel_polls_1(orch, agent):
    """parallel_polls 1 fetches one operation at a time, as before."""
    seen = count_overlapping_gets(orch)
    one_worker(agent, polls=1)
    run_health(orch, 6)
    assert seen["max"] == 1, seen


def test_no_work_goes_back_to_one_poll_per_interval(orch, agent):
    """Once the queue is empty the GETs in flight end on 204 and the
    worker polls once per poll_interval again: no GET loop."""
    one_worker(agent, polls=4, poll_interval=1.0)
    run_health(orch, 20)
    time.sleep(1.0)                     # the burst's last 204s
    t0 = time.time()
    time.sleep(3.0)
    gets = requests(orch, endpoint=EP_OPERATION, since_time=t0,
                    until_time=t0 + 3.0)
    # 3 poll intervals: 3 polls, one more for where the window falls.
    assert len(gets) <= 4, [round(r["time"] - t0, 2) for r in gets]


def test_a_get_in_flight_does_not_make_the_worker_busy(orch, agent):
    """max_inflight 1 and a slow GET always in flight: the GET keeps the
    slot from the worker's other fetches, but the idle worker is ready,
    not busy (the master would push nothing to it), and does not flip
    between the two with every poll."""
    count_overlapping_gets(orch)
    a = one_worker(agent, polls=4, inflight=1, poll_interval=0.2)
    states = set()
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        states |= {w["state"] for w in a.health()["workers"]}
        time.sleep(0.05)
    assert states == {"ready"}, states


def test_each_result_is_committed_before_its_put(orch, agent):
    """Operations of a shared commit: when a result PUT arrives, its
    process has ended in the database and its outbox row is there."""
    a = one_worker(agent, polls=4)
    missing = []
    original = FakeOrchestrator._ep_result.__get__(orch)

    def ep_result(instance_id, op_id, raw):
        rows = db_query(a.state_dir, "SELECT p.status FROM outbox o JOIN "
                        "processes p ON p.pid = o.pid WHERE "
                        "o.operation_id = ?", (op_id,))
        if rows != [("EXITED",)]:
            missing.append((op_id, rows))
        return original(instance_id, op_id, raw)
    orch._ep_result = ep_result
    run_health(orch, 40)
    assert missing == []


def run_sql(state_dir, statements):
    """Run statements on every database file in state_dir, as an outside
    writer would."""
    for path in db_files(state_dir):
        con = sqlite3.connect(path, timeout=10)
        try:
            for sql in statements:
                con.execute(sql)
            con.commit()
        finally:
            con.close()


def test_group_rolled_back_by_sqlite_loses_and_doubles_nothing(orch, agent):
    """Eight health operations pushed while the worker is stopped arrive
    together: one group, one transaction.  The third one's outbox row
    makes SQLite roll the whole transaction back; the fifth and sixth
    cannot record their exit at first.  The three whose records went with
    the rollback are stored again before their PUT; the five that ran
    after it committed on their own, and their exits, retried, land once
    the fault is gone: every operation is answered once, with its own
    result, and no process is left running in the database."""
    a = one_worker(agent, polls=4, poll_interval=60.0)
    ids = [f"grp-{i}" for i in range(8)]
    run_sql(a.state_dir, [
        "CREATE TABLE test_rollback (id TEXT PRIMARY KEY)",
        "CREATE TABLE test_no_exit (id TEXT PRIMARY KEY)",
        f"INSERT INTO test_rollback VALUES ('{ids[2]}')",
        f"INSERT INTO test_no_exit VALUES ('{ids[4]}'), ('{ids[5]}')",
        # the exit's own row (pid set); a result stored again has none
        "CREATE TRIGGER test_rollback BEFORE INSERT ON outbox WHEN "
        "NEW.pid IS NOT NULL AND NEW.operation_id IN (SELECT id FROM "
        "test_rollback) BEGIN SELECT RAISE(ROLLBACK, 'injected'); END",
        "CREATE TRIGGER test_no_exit BEFORE UPDATE OF ended_at ON processes "
        "WHEN NEW.ended_at IS NOT NULL AND NEW.operation_id IN (SELECT id "
        # an error of the database, as a full disk would be: retried
        "FROM test_no_exit) BEGIN SELECT json('not json'); END"])
    unstored = []
    original = FakeOrchestrator._ep_result.__get__(orch)

    def ep_result(instance_id, op_id, raw):
        if not db_query(a.state_dir, "SELECT 1 FROM outbox WHERE "
                        "operation_id = ?", (op_id,)):
            unstored.append(op_id)
        return original(instance_id, op_id, raw)
    orch._ep_result = ep_result
    (pid,) = a.worker_pids()
    assert orch.wait_counts(SHORT, streams=1)
    os.kill(pid, signal.SIGSTOP)
    try:
        mark = len(a.log())
        orch.push([{"operation_id": i, "path": HEALTH} for i in ids])
        wait_until(lambda: a.log()[mark:].count("handed to worker") == 8,
                   msg="eight pushes handed to the stopped worker")
    finally:
        os.kill(pid, signal.SIGCONT)
    res = wait_results(orch, ids)
    run_sql(a.state_dir, ["DROP TRIGGER test_rollback",
                          "DROP TRIGGER test_no_exit"])
    wait_until(lambda: db_query(a.state_dir, "SELECT operation_id FROM "
                                "processes WHERE ended_at IS NULL AND "
                                "operation_id LIKE 'grp-%'") == [],
               timeout=4 * DEADLINE, msg="every exit recorded")
    a.stop()
    res = results_by_id(orch)
    assert {i: len(res[i]) for i in ids} == dict.fromkeys(ids, 1), res
    assert all(res[i][0]["result"].get("status") == "ok" for i in ids), res
    assert unstored == []
    # the pids of the rolled-back spawns are not given again
    pids = [res[i][0]["result"]["agent_pid"] for i in ids]
    assert len(set(pids)) == len(ids), pids
    redone = set(re.findall(r"operation (grp-\d)\): its records were not "
                            r"committed", a.log()))
    assert redone == set(ids[:3]), redone
