"""store.files: the workers spread over several database files.

Worker slot S writes file (S - 1) % files + 1: egressd.db for the first,
egressd-N.db for the others, each with the whole schema; the agent pids
of file N start past (N - 1) * 10^12, so a pid names one process across
the files.  The master makes the files at start and reads every file
there is: a dead worker's processes are failed in the file that holds
them, undelivered results of a file no worker writes any more are moved
into egressd.db, the state guard watches each file, store.max_bytes
bounds them all together, and a reload cannot change store.files.

Each test runs two workers against the fake orchestrator.  With
worker.max_inflight = 1 a worker that holds an operation does not poll,
so two "hold" commands (a shell loop that waits for a flag file the test
creates) are taken one by each worker, whatever the timing: that is how
a test puts work in both files.  The files are read with sqlite3,
read-only.
"""

import glob
import json
import os
import shlex
import signal
import sqlite3
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import binary, render_config, run_tool  # noqa: E402
from delivery import assert_delivered  # noqa: E402
from proto_helpers import (  # noqa: E402
    DEADLINE, EP_RESULT, SHORT, kick, reload_ctl, requests, wait_results,
    wait_until)
from proto_helpers import agent, orch, pid_alive, workdir  # noqa: E402,F401

PID_SPAN = 10 ** 12             # STORE_PID_SPAN in include/procmgr/store.h
COMMAND = "/api/v1/agent/execute/command"
STORAGE_READ = "/api/v1/agent/execute/storage/read"
FIRST, SECOND = "egressd.db", "egressd-2.db"
GUARD_EVERY = 2.0               # STATEGUARD_EVERY in src/master/master_priv.h
SWEEPS = 1.5                    # a few outbox sweeps at poll_interval 0.5
ORCH = {"poll_interval": 0.5}


# --------------------------------------------------------------------------
# the files

def store_files(state_dir):
    """The database files in state_dir (egressd.db, egressd-N.db), by
    name."""
    return sorted(os.path.basename(p) for p in
                  glob.glob(os.path.join(state_dir, "egressd*.db")))


def query(state_dir, name, sql, params=()):
    """The rows of sql on one database file, read-only.  Raises
    sqlite3.Error when the file or table is not there (wait_until counts
    that as "not yet")."""
    path = os.path.join(state_dir, name)
    if not os.path.exists(path):
        raise sqlite3.OperationalError(f"no database {path}")
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def rows_by_file(state_dir, sql, params=()):
    """{file name: rows} of sql run on every database file of state_dir."""
    return {name: query(state_dir, name, sql, params)
            for name in store_files(state_dir)}


def roots(state_dir, name):
    """{operation_id: (pid, instance_id, status, ended_at)} of the root
    agent processes in one file."""
    return {r[0]: r[1:] for r in query(
        state_dir, name, "SELECT operation_id, pid, instance_id, status, "
        "ended_at FROM processes WHERE parent_pid IS NULL AND operation_id "
        "IS NOT NULL")}


def live(state_dir, name, ids):
    """The operations in ids whose agent process runs in file name."""
    return {op for op, (_, _, _, ended) in roots(state_dir, name).items()
            if op in ids and ended is None}


def outbox(state_dir, name):
    return {r[0] for r in query(state_dir, name,
                                "SELECT operation_id FROM outbox")}


def on_disk(state_dir, name):
    """Bytes of one database file plus its WAL."""
    total = 0
    for suffix in ("", "-wal"):
        try:
            total += os.stat(os.path.join(state_dir, name + suffix)).st_size
        except FileNotFoundError:
            pass
    return total


# --------------------------------------------------------------------------
# the daemon and its work

def hold_commands(flag):
    """A command that runs until the file flag exists."""
    return {"enabled": True, "commands": [
        {"name": "hold", "argv": [
            "/bin/sh", "-c",
            f"while [ ! -e {shlex.quote(flag)} ]; do sleep 0.05; done"],
         "timeout": 60.0}]}


def flag_path(workdir):
    return os.path.join(workdir, "release")


def release(workdir):
    """Let every hold command end."""
    with open(flag_path(workdir), "w"):
        pass


def two_files(agent, workdir, files=2, **sections):
    """Two workers, store.files = files, one operation at a time each."""
    sections.setdefault("orchestrator", ORCH)
    a = agent(server={"workers": 2}, store={"files": files},
              worker={"max_inflight": 1},
              operations={"command": hold_commands(flag_path(workdir))},
              **sections)
    return a, a.wait_ready(2)


def slots(h):
    """{slot: worker} of a health reply."""
    return {w["id"]: w for w in h["workers"]}


def next_worker(a, slot, old):
    """Wait for slot's worker after the one of instance ID old, once it
    has said hello (its instance ID is known); -> it."""
    def found():
        w = slots(a.health()).get(slot)
        return w if w is not None and w["instance_id"] not in ("", old) \
            else None
    return wait_until(found, msg=f"slot {slot}'s next worker")


def hold_in_each_worker(orch, a, by_file):
    """Two hold commands, one taken by each worker (each may hold one);
    wait until each file of by_file ({file name: count}) runs that many
    of them.  -> their operation IDs."""
    ids = orch.enqueue([{"path": COMMAND, "operation": {"name": "hold"}}
                        for _ in range(2)])["operation_ids"]
    kick(orch)
    wait_until(lambda: all(len(live(a.dir, name, ids)) == n
                           for name, n in by_file.items()),
               msg=f"the hold commands running as {by_file}")
    return ids


def result_puts(orch, op_id):
    return [r for r in requests(orch, endpoint=EP_RESULT)
            if r["path"].endswith(f"/operations/{op_id}/result")]


def set_result_failing(orch, on):
    """Every result PUT answered 500 (not processed) while on."""
    orch.set_faults(fail={"result": [1000000, 500] if on else 0})


def results_in_each_outbox(orch, a, workdir):
    """One result in each file's outbox, the orchestrator refusing them
    (until set_result_failing(orch, False)).  -> (both operation IDs,
    the one in egressd-2.db)."""
    set_result_failing(orch, True)
    held = hold_in_each_worker(orch, a, {FIRST: 1, SECOND: 1})
    (left,) = live(a.dir, SECOND, held)
    release(workdir)
    wait_until(lambda: outbox(a.dir, FIRST) | outbox(a.dir, SECOND) ==
               set(held), msg="both results in the outboxes")
    return held, left


def restart_one_worker(agent, a, files):
    """A new agent on a's state directory (a stopped), with one worker and
    store.files = files.  -> (it, its worker's instance ID)."""
    b = agent(server={"workers": 1, "state_dir": os.path.abspath(a.dir)},
              store={"files": files}, orchestrator=ORCH)
    (iid,) = b.worker_ids(b.wait_ready(1))
    return b, iid


def health_reason(a, needle):
    """The degraded reason of a's health containing needle, or None."""
    for r in a.health().get("reasons", []):
        if needle in r["reason"]:
            return r["reason"]
    return None


# --------------------------------------------------------------------------
# 1. each worker writes the file of its slot; pids stay unique

def test_workers_write_the_file_of_their_slot(orch, agent, workdir):
    a, h = two_files(agent, workdir)
    assert store_files(a.dir) == [SECOND, FIRST], store_files(a.dir)
    one, two = slots(h)[1]["instance_id"], slots(h)[2]["instance_id"]
    reg = rows_by_file(a.dir, "SELECT instance_id, slot FROM workers "
                       "WHERE stopped_at IS NULL")
    assert (one, 1) in reg[FIRST] and (two, 2) in reg[SECOND], reg
    assert one not in {r[0] for r in reg[SECOND]}, reg
    assert two not in {r[0] for r in reg[FIRST]}, reg

    held = hold_in_each_worker(orch, a, {FIRST: 1, SECOND: 1})
    # Queued behind the holds: taken once a worker has room again.
    quick = orch.enqueue([{"operation": {"n": i}} for i in range(6)])[
        "operation_ids"]
    kick(orch)
    release(workdir)
    ids = held + quick
    res = wait_results(orch, ids)
    time.sleep(SWEEPS)          # a second delivery would come by now
    assert_delivered(orch, ids, allowed_dups=0)

    first, second = roots(a.dir, FIRST), roots(a.dir, SECOND)
    assert set(first) | set(second) == set(ids), (first, second)
    assert not set(first) & set(second), (first, second)
    assert set(held) & set(first) and set(held) & set(second)
    for name, procs, iid, lo, hi in ((FIRST, first, one, 1, PID_SPAN),
                                     (SECOND, second, two, PID_SPAN + 1,
                                      2 * PID_SPAN)):
        for op, (pid, owner, status, _) in procs.items():
            assert lo <= pid < hi, f"{name}: {op} has pid {pid}"
            assert owner == iid, f"{name}: {op} run by {owner}, not {iid}"
            assert status == "EXITED", f"{name}: {op} is {status}"
    # A result names the pid of the file its worker wrote.
    for op in quick:
        pid = res[op][0]["result"]["agent_pid"]
        assert pid == (first.get(op) or second.get(op))[0], (op, pid)
    wait_until(lambda: not any(rows_by_file(
        a.dir, "SELECT 1 FROM outbox").values()), msg="both outboxes empty")


# --------------------------------------------------------------------------
# 2. a worker killed with an operation in egressd-2.db: failed there, once

def test_worker_of_second_file_killed_mid_operation(orch, agent, workdir):
    a, h = two_files(agent, workdir)
    victim = slots(h)[2]
    held = hold_in_each_worker(orch, a, {FIRST: 1, SECOND: 1})
    (op,) = live(a.dir, SECOND, held)
    (other,) = live(a.dir, FIRST, held)
    pid = roots(a.dir, SECOND)[op][0]
    assert roots(a.dir, SECOND)[op][1] == victim["instance_id"]

    os.kill(victim["pid"], signal.SIGKILL)
    (rec,) = wait_results(orch, [op])[op]
    assert rec["result"].get("error_type") == "internal", rec
    assert rec["result"].get("error") == "worker died: signal 9", rec
    assert rec["result"].get("pid") == pid, rec
    # Queued in egressd-2.db's outbox: sent by the worker that writes it
    # now, slot 2's next one.
    new = next_worker(a, 2, victim["instance_id"])
    assert rec["instance_id"] == new["instance_id"], (rec, new)
    _, _, status, ended = roots(a.dir, SECOND)[op]
    assert status == "FAILED" and ended is not None, (status, ended)
    assert op not in roots(a.dir, FIRST)
    # The other file's operation goes on, untouched.
    assert live(a.dir, FIRST, held) == {other}
    assert not orch.get_results(operation_id=other)

    release(workdir)
    res = wait_results(orch, [other])
    assert res[other][0]["result"].get("exit_code") == 0, res[other]
    wait_until(lambda: requests(orch, endpoint="shutdown",
                                instance_id=victim["instance_id"]),
               msg="the master's notice for the killed worker")
    time.sleep(SWEEPS)
    assert_delivered(orch, held, allowed_dups=0)
    assert orch.get_requeued() == []
    wait_until(lambda: not outbox(a.dir, SECOND), msg="egressd-2.db's "
               "outbox empty")


# --------------------------------------------------------------------------
# 3. results left in a file no worker writes now are delivered

# restarted with one worker: store.files lowered to 1, or left at 2 (fewer
# workers than files)
@pytest.mark.parametrize("files", [1, 2],
                         ids=["files-lowered", "fewer-workers"])
def test_results_of_a_file_no_worker_writes_are_delivered(orch, agent,
                                                          workdir, files):
    a, _ = two_files(agent, workdir)
    held, left = results_in_each_outbox(orch, a, workdir)
    a.signal(signal.SIGTERM)
    assert a.wait_exit() == 0
    assert outbox(a.dir, SECOND) == {left}
    assert not orch.get_results(), "a result recorded despite the fault"

    set_result_failing(orch, False)
    b, iid = restart_one_worker(agent, a, files)
    res = wait_results(orch, held)
    assert res[left][0]["instance_id"] == iid, res[left]
    wait_until(lambda: not outbox(a.dir, SECOND), msg="egressd-2.db's "
               "outbox empty")
    b.wait_log(f"undelivered results moved from "
               f"{os.path.join(os.path.abspath(a.dir), SECOND)}")
    time.sleep(SWEEPS)
    assert_delivered(orch, held, allowed_dups=0)
    for op in held:
        puts = result_puts(orch, op)
        assert [p["status"] for p in puts if p["status"] == 200] == [200], \
            f"{op}: {[(p['status'], p['instance_id']) for p in puts]}"
    b.check_alive()


def test_crash_then_one_file(orch, agent, workdir):
    """The whole agent killed while each worker runs an operation, then
    started with store.files = 1: the master fails the processes in the
    file that holds each, and the error result queued in egressd-2.db is
    moved to egressd.db and delivered by the one worker."""
    a, h = two_files(agent, workdir)
    held = hold_in_each_worker(orch, a, {FIRST: 1, SECOND: 1})
    (left,) = live(a.dir, SECOND, held)
    pid = roots(a.dir, SECOND)[left][0]
    pids = [a.pid] + sorted(a.worker_pids(h))
    for p in pids:                      # freeze all, then kill all: nobody
        os.kill(p, signal.SIGSTOP)      # sees the others go
    for p in pids:
        os.kill(p, signal.SIGKILL)
    assert a.wait_exit() == -signal.SIGKILL
    for p in pids:
        wait_until(lambda: not pid_alive(p), msg=f"pid {p} to die")
    assert not outbox(a.dir, SECOND)

    b, iid = restart_one_worker(agent, a, 1)
    res = wait_results(orch, held)
    for op in held:
        (rec,) = res[op]
        assert rec["instance_id"] == iid, rec
        assert rec["result"].get("error_type") == "internal", rec
        assert "worker gone" in rec["result"].get("error", ""), rec
    assert res[left][0]["result"].get("pid") == pid, res[left]
    _, _, status, ended = roots(a.dir, SECOND)[left]
    assert status == "FAILED" and ended is not None, (status, ended)
    wait_until(lambda: not outbox(a.dir, SECOND), msg="egressd-2.db's "
               "outbox empty")
    b.wait_log(f"1 undelivered results moved from "
               f"{os.path.join(os.path.abspath(a.dir), SECOND)}")
    time.sleep(SWEEPS)
    assert_delivered(orch, held, allowed_dups=0)
    b.check_alive()


# --------------------------------------------------------------------------
# 4. the state guard watches every file

def test_second_file_removed_while_running(orch, agent, workdir):
    a, _ = two_files(agent, workdir)
    held = hold_in_each_worker(orch, a, {FIRST: 1, SECOND: 1})
    at = len(a.log())
    os.unlink(os.path.join(a.dir, SECOND))
    why = wait_until(lambda: health_reason(a, f"{SECOND} was removed"),
                     msg="a degraded reason naming egressd-2.db")
    assert "no new work is taken" in why, why
    # What the workers hold is finished and delivered; nothing new is
    # taken, no worker started, no empty file made.
    release(workdir)
    wait_results(orch, held)
    wait_until(lambda: not a.health()["workers"],
               msg="the workers drained and gone")
    (late,) = orch.enqueue({})["operation_ids"]
    kick(orch)
    time.sleep(2 * GUARD_EVERY)         # passes that must not take it
    h = a.health()
    assert h["workers"] == [] and h["status"] in ("degraded", "down"), h
    assert late not in {t["operation_id"] for t in orch.get_taken()}
    assert not os.path.exists(os.path.join(a.dir, SECOND)), \
        "an empty egressd-2.db was made"
    assert os.path.exists(os.path.join(a.dir, FIRST))
    assert_delivered(orch, held, allowed_dups=0)
    log = a.log()[at:]
    for bad in ("no such table", "cannot boot", "spawned worker"):
        assert bad not in log, f"{bad!r} after egressd-2.db went: {log}"


# --------------------------------------------------------------------------
# 5. a reload does not change store.files

@pytest.mark.parametrize("before,after", [(1, 2), (2, 1)],
                         ids=["raised", "lowered"])
def test_reload_keeps_store_files(orch, agent, workdir, before, after):
    a, _ = two_files(agent, workdir, files=before)
    a.write_config({"store": {"files": after}})
    at = len(a.log())
    rc, out = reload_ctl(a)
    assert rc == 0, out
    a.wait_log("store.files changed; it takes effect only after a restart",
               start=at)
    h = a.wait_ready(2)
    # The workers write the files as before the reload.
    by_file = {FIRST: 2} if before == 1 else {FIRST: 1, SECOND: 1}
    held = hold_in_each_worker(orch, a, by_file)
    assert store_files(a.dir) == sorted(by_file), store_files(a.dir)
    owners = {roots(a.dir, name)[op][1] for name in by_file
              for op in live(a.dir, name, held)}
    assert owners == a.worker_ids(h), (owners, h)
    release(workdir)
    wait_results(orch, held)
    time.sleep(SWEEPS)
    assert_delivered(orch, held, allowed_dups=0)
    a.check_alive()


def test_reload_with_files_0_keeps_each_worker_on_its_file(orch, agent,
                                                           workdir):
    """store.files = 0 (as many as the workers) resolves once, at start:
    a reload that changes nothing must not put the new workers on
    egressd.db alone, nor say that store.files changed."""
    a, _ = two_files(agent, workdir, files=0)
    assert store_files(a.dir) == [SECOND, FIRST]
    at = len(a.log())
    rc, out = reload_ctl(a)
    assert rc == 0, out
    h = a.wait_ready(2, generation=2)
    held = hold_in_each_worker(orch, a, {FIRST: 1, SECOND: 1})
    owners = {name: roots(a.dir, name)[op][1] for name in (FIRST, SECOND)
              for op in live(a.dir, name, held)}
    assert set(owners.values()) == a.worker_ids(h), (owners, h)
    assert "store.files changed" not in a.log()[at:]
    release(workdir)
    wait_results(orch, held)
    a.check_alive()


# --------------------------------------------------------------------------
# 7. store.max_bytes bounds the files together

MIB = 1024 * 1024
BUDGET = 2 * MIB
SLACK = BUDGET // 4             # as test_disk_budget.py (docs/OPERATIONS.md)
PASSES = 2                      # the budget's worth of data written, at least
ROUND = 100                     # operations enqueued at a time
ROUNDS_MAX = 40                 # 4000 operations: far past PASSES budgets
PAYLOAD = 3000                  # bytes of the file each operation reads
QUIET = 10.0                    # MASTER_DB_QUIET in src/master/master_db.c


def status(a):
    p = run_tool([binary("EGRESSCTL_BIN"), "-c", a.config, "status",
                  "--json"])
    assert p.returncode == 0, p
    return json.loads(p.stdout)


def looked_after(a):
    """Two looks of the master at the sizes since now (see
    test_disk_budget.py)."""
    seen = status(a)["database"]["size_checks"]
    wait_until(lambda: status(a)["database"]["size_checks"] >= seen + 2,
               msg="two looks at the database size")


def test_max_bytes_bounds_the_files_together(orch, agent, workdir):
    root = os.path.join(workdir, "objects")
    os.makedirs(root)
    with open(os.path.join(root, "blob"), "w") as f:
        f.write("x" * PAYLOAD)
    a = agent(start=False, server={"workers": 2},
              store={"files": 2, "max_bytes": BUDGET},
              worker={"max_inflight": 1}, orchestrator={"poll_interval": 1.0})
    with open(a.config, "w") as f:
        f.write(render_config(a.cfg, "operations: {\n  storage: { enabled "
                              "= true; root = \"objects\"; };\n};\n"))
    a.start()
    a.wait_ready(2)
    firsts, done, settled, peak = {}, 0, 0, {FIRST: 0, SECOND: 0}
    for _ in range(ROUNDS_MAX):
        ids = orch.enqueue([{"path": STORAGE_READ,
                             "operation": {"key": "blob"}}
                            for _ in range(ROUND)])["operation_ids"]
        kick(orch)
        wait_results(orch, ids, timeout=2 * DEADLINE)
        for name in (FIRST, SECOND):
            if name not in firsts and roots(a.dir, name):
                firsts[name] = min(roots(a.dir, name).items(),
                                   key=lambda kv: kv[1][0])[0]
        looked_after(a)
        for name in peak:
            peak[name] = max(peak[name], on_disk(a.dir, name))
        settled = max(settled, on_disk(a.dir, FIRST) + on_disk(a.dir,
                                                               SECOND))
        done += ROUND
        kept = sum(n for ((n,),) in rows_by_file(
            a.dir, "SELECT count(*) FROM processes").values())
        if done >= PASSES * kept:
            break
    else:
        pytest.fail(f"{done} operations and still {kept} kept: the files "
                    "are not pruned")
    assert settled <= BUDGET + SLACK, (settled, BUDGET + SLACK)
    # Each file within its share: both were written and both pruned.
    for name in (FIRST, SECOND):
        assert peak[name] <= BUDGET // 2 + SLACK // 2, (name, peak)
        assert firsts[name] not in roots(a.dir, name), \
            f"{name}: its first operation was not pruned"
    st = status(a)["database"]
    assert st["max_bytes"] == BUDGET and st["degraded"] is None, st
    assert st["pruned_rows"] > 0, st
    print(f"{done} operations; on disk at most {settled} bytes together, "
          f"{peak} by file")
    for name in (FIRST, SECOND):
        assert query(a.dir, name, "PRAGMA integrity_check") == [("ok",)]


def test_over_budget_warns_once_a_minute_and_stays_blocked(orch, agent,
                                                           workdir):
    """Undelivered results alone over store.max_bytes: the warning comes
    once a minute, not at every size pass (one per MASTER_DB_QUIET), and
    health stays degraded: no "back within" while it is not."""
    root = os.path.join(workdir, "objects")
    os.makedirs(root)
    with open(os.path.join(root, "blob"), "w") as f:
        f.write("x" * PAYLOAD)
    a = agent(start=False, server={"workers": 2},
              store={"files": 2, "max_bytes": MIB},
              worker={"max_inflight": 64}, orchestrator=ORCH)
    with open(a.config, "w") as f:
        f.write(render_config(a.cfg, "operations: {\n  storage: { enabled "
                              "= true; root = \"objects\"; };\n};\n"))
    a.start()
    a.wait_ready(2)
    set_result_failing(orch, True)
    ids = []
    while on_disk(a.dir, FIRST) + on_disk(a.dir, SECOND) <= MIB:
        ids += orch.enqueue([{"path": STORAGE_READ,
                              "operation": {"key": "blob"}}
                             for _ in range(50)])["operation_ids"]
        kick(orch)
        wait_until(lambda: sum(len(outbox(a.dir, n)) for n in
                               (FIRST, SECOND)) == len(ids),
                   timeout=2 * DEADLINE, msg="every result in an outbox")
    warning = "nothing is pruned until results are delivered"
    a.wait_log(warning, timeout=DEADLINE)
    # Two more size passes at least (MASTER_DB_QUIET, 10 s, apart).
    deadline = time.monotonic() + 2 * QUIET + 1
    while time.monotonic() < deadline:
        assert status(a)["database"]["degraded"], "not degraded any more"
        time.sleep(1.0)
    log = a.log()
    assert log.count(warning) == 1, log.count(warning)
    assert "back within store.max_bytes" not in log
    set_result_failing(orch, False)
    wait_results(orch, ids, timeout=2 * DEADLINE)


def test_scale_down_sends_the_results_of_the_file_left_behind(orch, agent,
                                                              workdir):
    """A scale down from 2 workers to 1 leaves egressd-2.db written by no
    slot; the result its worker could not deliver moves to egressd.db as
    soon as that worker's shutdown notice waits for it, not at the
    housekeeping passes a minute or two later: the notice would give up
    first (after 60 s) and the orchestrator hand the operation out again,
    to be run twice."""
    a, h = two_files(agent, workdir)
    held, left = results_in_each_outbox(orch, a, workdir)
    at = len(a.log())
    a.signal(signal.SIGTTOU)            # one worker fewer: slot 2 stops
    a.wait_ready(1)
    set_result_failing(orch, False)
    res = wait_results(orch, held)
    assert res[left][0]["instance_id"] == slots(h)[1]["instance_id"], \
        res[left]
    a.wait_log("undelivered results moved from "
               f"{os.path.join(a.dir, SECOND)}", start=at)
    wait_until(lambda: requests(orch, endpoint="shutdown",
                                instance_id=slots(h)[2]["instance_id"]),
               msg="the master's notice for the stopped worker")
    time.sleep(SWEEPS)
    assert_delivered(orch, held, allowed_dups=0)
    assert orch.get_requeued() == []
    assert not outbox(a.dir, SECOND) and not outbox(a.dir, FIRST)
