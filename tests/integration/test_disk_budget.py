"""Bounded disk (store.max_bytes): a soak at a small scale drives
operations until the database has passed its budget several times; the
files and their WALs (every file of store.files, each with its share)
stay within the budget plus a stated slack, the oldest finished operations
go first, a running operation and an undelivered result (a dead letter)
keep their trees, egressctl ps and audit still work and every file passes
integrity_check.  When undelivered results alone exceed the budget nothing
is pruned and health says degraded, with the reason, until they are
delivered."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import (binary, db_count, db_files, db_query,  # noqa: E402
                    render_config, run_tool)
from proto_helpers import (  # noqa: E402
    DEADLINE, kick, wait_results, wait_until)
from proto_helpers import agent, orch, workdir  # noqa: E402,F401 (fixtures)

MIB = 1024 * 1024
BUDGET = 2 * MIB
# What the budget may be passed by, at most (docs/OPERATIONS.md): what is
# written between two looks of the master at the file, and free pages not
# yet given back.
SLACK = BUDGET // 4
PASSES = 3                      # the budget's worth of data written, at least
ROUND = 100                     # operations enqueued at a time
STORAGE_READ = "/api/v1/agent/execute/storage/read"
COMMAND = "/api/v1/agent/execute/command"
PAYLOAD = 3000                  # bytes of the file each operation reads
BIG_PAYLOAD = 30000             # ... in the test of undelivered results

OPERATIONS = """operations: {
  storage: { enabled = true; root = "objects"; };
  command: {
    enabled = true;
    commands = (
      { name = "hold"; argv = [ "/bin/sh", "-c", "exec sleep 120" ];
        timeout = 120.0; }
    );
  };
};
"""


def start_agent(agent, workdir, max_bytes, **sections):
    root = os.path.join(workdir, "objects")
    os.makedirs(root, exist_ok=True)
    for key, size in (("blob", PAYLOAD), ("big", BIG_PAYLOAD)):
        with open(os.path.join(root, key), "w") as f:
            f.write("x" * size)
    sections.setdefault("orchestrator", {"poll_interval": 1.0})
    a = agent(start=False, store={"max_bytes": max_bytes}, **sections)
    with open(a.config, "w") as f:
        f.write(render_config(a.cfg, OPERATIONS))
    a.start()
    a.wait_ready(2)
    return a


def on_disk(a, suffixes=("", "-wal")):
    """Bytes of the database files plus their WALs (suffixes ("",): the
    files alone), as the file system says, every file together: the budget
    bounds them all."""
    total = 0
    for path in db_files(a.state_dir):
        for suffix in suffixes:
            try:
                total += os.stat(path + suffix).st_size
            except FileNotFoundError:
                pass
    return total


def egressctl(a, *args):
    p = run_tool([binary("EGRESSCTL_BIN"), "-c", a.config, *args])
    assert p.returncode == 0, f"egressctl {args}: {p.returncode} {p.stderr}"
    return p.stdout


def reads(n, key="blob"):
    return [{"path": STORAGE_READ, "operation": {"key": key}}
            for _ in range(n)]


def dead_letter(orch, a):
    """One operation whose result the orchestrator refuses twice (422):
    kept in the outbox for good.  -> its agent pid."""
    orch.set_faults(fail={"result": {"count": 2, "status": 422}})
    (op,) = orch.enqueue(reads(1))["operation_ids"]
    kick(orch)
    a.wait_log(f"result for {op} can never be sent", timeout=DEADLINE)
    ((pid,),) = db_query(a.state_dir, "SELECT pid FROM outbox WHERE "
                         "operation_id = ?", (op,))
    assert pid is not None
    return pid


def running(orch, a):
    """One operation that runs for the whole test. -> its agent pid."""
    (op,) = orch.enqueue([{"path": COMMAND,
                           "operation": {"name": "hold"}}])["operation_ids"]
    kick(orch)
    rows = wait_until(lambda: db_query(
        a.state_dir, "SELECT pid FROM processes WHERE operation_id = ? AND "
        "ended_at IS NULL", (op,)), msg="the held command running")
    return rows[0][0]


def tree_kept(a, pid):
    objects = db_count(a.state_dir, "SELECT count(*) FROM objects WHERE "
                       "owner_pid = ?", (pid,))
    return bool(db_query(a.state_dir, "SELECT 1 FROM processes WHERE "
                         "pid = ?", (pid,))) and objects > 0


def test_soak_stays_within_budget(orch, agent, workdir):
    a = start_agent(agent, workdir, BUDGET)
    orch.set_faults(piggyback=True)
    dead = dead_letter(orch, a)
    held = running(orch, a)
    first = None
    done, settled, peak_file = 0, 0, 0
    # Until the operations run are PASSES times those the budget holds.
    while True:
        ids = orch.enqueue(reads(ROUND))["operation_ids"]
        first = first or ids[0]
        kick(orch)
        wait_results(orch, ids, timeout=2 * DEADLINE)
        peak_file = max(peak_file, on_disk(a, ("",)))
        looked_after(a)
        settled = max(settled, on_disk(a))
        done += ROUND
        kept = db_count(a.state_dir, "SELECT count(*) FROM processes")
        if done >= PASSES * kept:
            break
    # Between rounds, once the master has looked: files and WALs.  While
    # the workers write, the files alone (a WAL grows with every commit
    # until a checkpoint can restart it).
    assert settled <= BUDGET + SLACK, (settled, BUDGET + SLACK)
    assert peak_file <= BUDGET + SLACK, (peak_file, BUDGET + SLACK)
    # The oldest finished operations went, the kept trees did not.
    assert db_count(a.state_dir, "SELECT count(*) FROM processes WHERE "
                    "operation_id = ?", (first,)) == 0
    assert tree_kept(a, dead) and tree_kept(a, held)
    assert db_query(a.state_dir, "SELECT ended_at FROM processes WHERE "
                    "pid = ?", (held,)) == [(None,)]
    st = status(a)["database"]
    assert st["max_bytes"] == BUDGET and st["degraded"] is None, st
    assert st["rows"]["processes"] > 0 and st["rows"]["outbox"] == 1, st
    assert st["oldest"]["undelivered_result"] is not None, st
    metrics = egressctl(a, "metrics")
    assert "egressd_db_pruned_rows_total " in metrics
    assert f"\negressd_db_pruned_rows_total 0\n" not in metrics
    assert "egressd_db_bytes " in metrics
    assert str(held) in egressctl(a, "ps")
    assert egressctl(a, "audit", "--limit", "5").strip()
    a.stop()
    assert on_disk(a) <= BUDGET + SLACK
    files = len(db_files(a.state_dir))
    assert db_query(a.state_dir, "PRAGMA integrity_check") == \
        [("ok",)] * files
    assert db_query(a.state_dir, "PRAGMA auto_vacuum") == [(2,)] * files


def status(a):
    return json.loads(egressctl(a, "status", "--json"))


def looked_after(a):
    """Wait until the master has looked at the sizes (and run the pass a
    look starts) twice since now: a whole look began after this round, so
    at most one round of data comes between two looks."""
    seen = status(a)["database"]["size_checks"]
    wait_until(lambda: status(a)["database"]["size_checks"] >= seen + 2,
               msg="two looks at the database size")


def test_undelivered_results_alone_over_budget_degrade(orch, agent,
                                                        workdir):
    """Results the orchestrator does not take (503) fill a 1 MiB budget:
    nothing is pruned, health is degraded with the reason, the agent goes
    on serving; once they are delivered the budget is kept again."""
    # Quick sweeps of many rows, so the delivery at the end is quick.
    a = start_agent(agent, workdir, MIB, worker={"max_inflight": 64},
                    orchestrator={"poll_interval": 0.5})
    orch.set_faults(fail={"result": {"count": 1000000, "status": 503}})
    ids = []
    while on_disk(a) <= MIB:
        ids += orch.enqueue(reads(10, "big"))["operation_ids"]
        kick(orch)
        wait_until(lambda: db_count(a.state_dir, "SELECT count(*) FROM "
                                    "outbox") == len(ids),
                   timeout=2 * DEADLINE, msg="every result in the outbox")

    def degraded():
        h = a.health()
        return h if h["status"] == "degraded" else None
    h = wait_until(degraded, msg="health degraded by the database")
    assert any("undelivered results" in r["reason"] for r in h["reasons"]), h
    a.wait_log("nothing is pruned until results are delivered")
    assert status(a)["database"]["pruned_rows"] == 0
    assert db_count(a.state_dir, "SELECT count(*) FROM processes WHERE "
                    "operation_id IS NOT NULL") == len(ids)
    # Still serving: the health operation runs (its result waits too).
    (op,) = orch.enqueue([{}])["operation_ids"]
    kick(orch)
    wait_until(lambda: db_query(a.state_dir, "SELECT 1 FROM outbox WHERE "
                                "operation_id = ?", (op,)), msg="served")
    p = run_tool([binary("EGRESSCTL_BIN"), "-c", a.config, "health"])
    assert p.returncode == 1 and "undelivered results" in p.stdout, p
    # Delivered, their outbox rows go: the budget is kept again.
    orch.set_faults(clear=True)
    wait_results(orch, ids + [op], timeout=4 * DEADLINE)
    a.wait_log("database: back within store.max_bytes", timeout=DEADLINE)
    wait_until(lambda: a.health()["status"] == "healthy",
               msg="healthy again")
    assert status(a)["database"]["degraded"] is None


def db_bytes(st):
    return st["database"]["file_bytes"] + st["database"]["wal_bytes"]


def test_idle_file_is_looked_at_less_often(orch, agent, workdir):
    """A file that does not change is looked at less and less often (at
    most every 4 s, with room enough below the budget), so an idle master
    is not woken every second for nothing; status still reports the sizes
    of now, not of the last look."""
    a = start_agent(agent, workdir, 1024 * MIB)
    wait_until(lambda: status(a)["database"]["size_checks"] >= 3,
               msg="the first looks at the database size")
    time.sleep(2.0)
    seen = status(a)["database"]["size_checks"]
    time.sleep(8.0)
    looks = status(a)["database"]["size_checks"] - seen
    # Once a second before; timers that fire late only make this fewer.
    assert looks <= 5, f"{looks} looks at an idle file in 8 s"

    ids = orch.enqueue(reads(20))["operation_ids"]
    kick(orch)
    wait_results(orch, ids)
    wait_until(lambda: db_bytes(status(a)) == on_disk(a),
               msg="status reports the file and WAL sizes of now")
    a.check_alive()
