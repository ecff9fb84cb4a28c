"""Agent processes (DESIGN section 4): every operation is one, recorded in the
shared database; egressctl ps/inspect/audit read it; runtime budgets kill;
a worker killed mid-operation has its processes failed and their results
delivered by another worker, and what it took without starting is handed
out again after the master's shutdown notice for it (the delivery rule:
delivery.py); batches run children."""

import json
import os
import random
import signal
import time

from proto_helpers import orch, agent, kick, requests, wait_results  # noqa: F401
from common import (DEADLINE, SHORT, binary, db_count, db_query, run_tool,
                    sigkill, wait_until)
from delivery import assert_delivered, counted, wait_reported

HEALTH = "/api/v1/test/health"
COMMAND = "/api/v1/agent/execute/command"
BATCH = "/api/v1/agent/execute/batch"

SLEEP_COMMANDS = {"enabled": True, "commands": [
    {"name": "sleep", "argv": ["/bin/sleep", "{secs}"], "timeout": 60.0}]}


def egressctl(a, *args, check=True):
    p = run_tool([binary("EGRESSCTL_BIN"), "-c", a.config, *args])
    if check and p.returncode != 0:
        raise AssertionError(f"egressctl {args}: {p.returncode} "
                             f"{p.stdout} {p.stderr}")
    return p


def inspect(a, pid):
    return json.loads(egressctl(a, "inspect", "--json", str(pid)).stdout)


def one_result(results, op_id):
    rs = results[op_id]
    assert len(rs) == 1, f"{op_id}: {len(rs)} results"
    return rs[0]["result"]


def test_each_operation_is_an_agent_process(orch, agent):
    a = agent()
    a.wait_ready(2)
    ids = orch.enqueue([{"operation": {"n": i}} for i in range(3)])[
        "operation_ids"]
    kick(orch)
    res = wait_results(orch, ids)
    pids = [one_result(res, i)["agent_pid"] for i in ids]
    assert len(set(pids)) == 3 and all(p > 0 for p in pids)
    p = inspect(a, pids[0])
    assert p["status"] == "EXITED"
    assert p["image"] == HEALTH
    assert p["operation_id"] == ids[0]
    assert p["goal"] == {"n": 0}
    assert p["result"]["agent_pid"] == pids[0]
    ps = egressctl(a, "ps", "--all").stdout
    for pid in pids:
        assert any(line.split()[0] == str(pid) and "EXITED" in line
                   for line in ps.splitlines()[1:]), ps
    audit = json.loads(egressctl(a, "audit", "--pid", str(pids[1]),
                                 "--json").stdout)
    actions = [r["action"] for r in audit]
    assert actions[0] == "process.spawn" and "process.exit" in actions
    # Nothing is live once every result is in.
    assert len(egressctl(a, "ps").stdout.splitlines()) == 1


def test_egressctl_reads_the_database_after_the_daemon_stopped(orch, agent):
    a = agent()
    a.wait_ready(2)
    (op,) = orch.enqueue({})["operation_ids"]
    kick(orch)
    pid = one_result(wait_results(orch, [op]), op)["agent_pid"]
    a.stop()
    assert inspect(a, pid)["status"] == "EXITED"
    assert str(pid) in egressctl(a, "ps", "--all").stdout
    assert "process.exit" in egressctl(a, "audit", "--since", "1h").stdout


def test_egressctl_bad_requests(orch, agent):
    a = agent()
    a.wait_ready(2)
    p = egressctl(a, "inspect", "987654321", check=False)
    assert p.returncode == 1 and "no agent process 987654321" in p.stderr
    p = egressctl(a, "audit", "--since", "yesterday", check=False)
    assert p.returncode == 2 and "--since takes" in p.stderr
    p = egressctl(a, "inspect", check=False)
    assert p.returncode == 2 and "needs an agent process id" in p.stderr
    p = egressctl(a, "ps", "--worker", "x", check=False)
    assert p.returncode == 2 and "positive number" in p.stderr
    p = run_tool([binary("EGRESSCTL_BIN"), "-d", "/nonexistent", "ps"])
    assert p.returncode == 2 and "database" in p.stderr


def test_unsupported_path_is_a_failed_process(orch, agent):
    a = agent()
    a.wait_ready(2)
    (op,) = orch.enqueue({"path": "/api/v1/no/such"})["operation_ids"]
    kick(orch)
    r = one_result(wait_results(orch, [op]), op)
    assert r["error_type"] == "unsupported" and r["pid"] > 0
    assert inspect(a, r["pid"])["status"] == "FAILED"


def test_batch_runs_children_and_reports_each(orch, agent):
    a = agent(process={"max_child_processes": 2})
    a.wait_ready(2)
    subs = [{"path": HEALTH, "operation": {"i": i}} for i in range(3)]
    (op,) = orch.enqueue({"path": BATCH, "operation": {
        "mode": "worker", "operations": subs}})["operation_ids"]
    kick(orch)
    r = one_result(wait_results(orch, [op]), op)
    st = [c["status"] for c in r["results"]]
    assert st == ["EXITED", "EXITED", "REFUSED"], r
    assert r["results"][2]["result"]["error_type"] == "limit_exceeded"
    assert r["failed"] == 1
    parent = r["results"][0]["result"]["agent_pid"]
    kids = inspect(a, r["results"][0]["pid"])
    assert kids["parent_pid"] is not None and kids["image"] == HEALTH
    assert kids["view_mode"] == "READ_ONLY"
    assert parent == r["results"][0]["pid"]
    root = inspect(a, kids["parent_pid"])
    assert root["image"] == BATCH and root["status"] == "EXITED"
    assert sorted(c["pid"] for c in root["children"]) == \
        sorted(c["pid"] for c in r["results"][:2])


def test_batch_bad_bodies_are_error_results(orch, agent):
    a = agent()
    a.wait_ready(2)
    bodies = [{}, {"operations": []}, {"operations": [{"operation": {}}]},
              {"mode": "sideways", "operations": [{"path": HEALTH}]},
              {"operations": [{"path": HEALTH}] * 17}]
    ids = orch.enqueue([{"path": BATCH, "operation": b} for b in bodies])[
        "operation_ids"]
    kick(orch)
    res = wait_results(orch, ids)
    types = [one_result(res, i).get("error_type") for i in ids]
    assert types[:3] == ["invalid_request"] * 3
    # A bad mode refuses every child; the batch reports them.
    assert one_result(res, ids[3])["results"][0]["status"] == "REFUSED"
    assert types[4] == "limit_exceeded"


def test_runtime_budget_kills_the_process(orch, agent):
    a = agent(process={"max_runtime_seconds": 0.5},
              operations={"command": SLEEP_COMMANDS})
    a.wait_ready(2)
    (op,) = orch.enqueue({"path": COMMAND, "operation": {
        "name": "sleep", "args": {"secs": "30"}}})["operation_ids"]
    kick(orch)
    r = one_result(wait_results(orch, [op], timeout=SHORT), op)
    assert r["error_type"] == "timeout" and "runtime budget" in r["error"]
    assert inspect(a, r["pid"])["status"] == "KILLED"


def test_worker_killed_mid_operation_is_reported_once(orch, agent):
    a = agent(orchestrator={"poll_interval": 0.5},
              operations={"command": SLEEP_COMMANDS})
    a.wait_ready(2)
    (op,) = orch.enqueue({"path": COMMAND, "operation": {
        "name": "sleep", "args": {"secs": "30"}}})["operation_ids"]
    kick(orch)
    wait_until(lambda: orch.get_taken(), timeout=SHORT, msg="op taken")
    taker = orch.get_taken()[0]["instance_id"]
    h = a.health()
    victim = [w for w in h["workers"] if w["instance_id"] == taker][0]
    wait_until(lambda: "sleep" in egressctl(a, "ps").stdout or
               COMMAND in egressctl(a, "ps").stdout, timeout=SHORT)
    os.kill(victim["pid"], signal.SIGKILL)
    r = one_result(wait_results(orch, [op]), op)
    assert r["error_type"] == "internal"
    assert r["error"] == "worker died: signal 9"
    assert inspect(a, r["pid"])["status"] == "FAILED"
    # The master tells the orchestrator the victim is gone, once the error
    # result queued for it is delivered: the operation was started, so it
    # is not handed out again.
    (notice,) = wait_until(lambda: requests(orch, endpoint="shutdown",
                                            instance_id=taker),
                           timeout=SHORT, msg="the dead worker's notice")
    (rec,) = orch.get_results(operation_id=op)
    assert notice["time"] >= rec["time"], (notice, rec)
    assert orch.get_requeued() == []
    time.sleep(1.5)     # a second delivery would come with the next sweep
    # The master queued that result; nobody had sent it before.
    assert_delivered(orch, [op], allowed_dups=0)


def test_operation_taken_by_a_worker_that_died_is_handed_out_again(orch,
                                                                   agent):
    """The worker's GET is answered while it is stopped, then it is
    killed: the operation was taken but never became an agent process.
    The master sends the shutdown notice for it, the orchestrator hands
    the operation out again, and the new worker reports it."""
    a = agent(server={"workers": 1}, orchestrator={"poll_interval": 0.5})
    h = a.wait_ready(1)
    (victim,) = h["workers"]
    orch.set_faults(delay={"operation": 1.0})
    (op,) = orch.enqueue({})["operation_ids"]
    kick(orch)

    def get_waiting():
        return [r for r in requests(orch, endpoint="operation",
                                    instance_id=victim["instance_id"])
                if r["status"] is None]
    wait_until(get_waiting, timeout=SHORT, msg="a GET held by the fake")
    os.kill(victim["pid"], signal.SIGSTOP)
    try:
        wait_until(lambda: [t for t in orch.get_taken()
                            if t["operation_id"] == op], timeout=SHORT,
                   msg="the operation handed to the stopped worker")
        orch.set_faults(delay={"operation": 0})
    finally:
        sigkill(victim["pid"])
    (t,) = orch.get_taken()[:1]
    assert t["instance_id"] == victim["instance_id"], t
    r = one_result(wait_results(orch, [op]), op)
    assert r.get("status") == "ok", r
    (rec,) = orch.get_results(operation_id=op)
    assert rec["instance_id"] != victim["instance_id"]
    assert [(q["operation_id"], q["instance_id"]) for q in
            orch.get_requeued()] == [(op, victim["instance_id"])]
    assert requests(orch, endpoint="shutdown",
                    instance_id=victim["instance_id"])
    a.wait_log(f"orchestrator notified of the shutdown of dead worker "
               f"instance {victim['instance_id']}")
    assert not db_count(a.state_dir, "SELECT count(*) FROM processes "
                        "WHERE instance_id = ?", (victim["instance_id"],))
    assert_delivered(orch, [op], allowed_dups=0)


def test_every_operation_delivered_while_workers_are_killed(orch, agent):
    """Random SIGKILLs while operations arrive: every operation is reported
    (those a victim took without starting them after its shutdown notice);
    a second report is the same result, counted as a re-send."""
    a = agent(server={"workers": 3, "min_uptime": 0.1},
              orchestrator={"poll_interval": 0.3})
    a.wait_ready(3)
    ids = []
    rng = random.Random(7)
    deadline = time.monotonic() + 6.0
    while time.monotonic() < deadline:
        ids += orch.enqueue([{} for _ in range(20)])["operation_ids"]
        kick(orch)
        time.sleep(0.3)
        pids = sorted(a.worker_pids())
        if pids:
            sigkill(rng.choice(pids))
    a.wait_ready(3)
    wait_reported(orch, ids, timeout=DEADLINE * 2)

    def settled():
        live = db_count(a.state_dir, "SELECT count(*) FROM processes "
                        "WHERE ended_at IS NULL")
        outbox = db_count(a.state_dir, "SELECT count(*) FROM outbox")
        return live == 0 and outbox == 0 and not orch.state()[
            "queue_length"]
    wait_until(settled, timeout=DEADLINE * 2, msg="all work settled")
    time.sleep(1.5)     # a second delivery would come with the next sweep
    extra = assert_delivered(orch, ids, allowed_dups=counted(a))
    # Every operation reported became an agent process.
    spawned = {r[0] for r in db_query(
        a.state_dir, "SELECT operation_id FROM processes "
        "WHERE parent_pid IS NULL")}
    assert set(ids) <= spawned, sorted(set(ids) - spawned)[:20]
    requeued = orch.get_requeued()
    print(f"{len(ids)} operations, {len(requeued)} handed out again after "
          f"a shutdown notice, {sum(extra.values())} reported twice")
