"""The upgrade operation (DESIGN.md section 5) end to end: an operation from
the fake orchestrator changes an allowed key in egressd's configuration file,
the master rolls the workers to a new generation that runs with it, and
refused upgrades leave the file and the workers as they were."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import binary, run_tool  # noqa: E402
from proto_helpers import (  # noqa: E402
    DEADLINE, kick, pid_alive, run_operations, wait_results,
    wait_until)
from proto_helpers import agent, orch, workdir  # noqa: E402,F401 (fixtures)

UPGRADE_PATH = "/api/v1/upgrade"
HEALTH_PATH = "/api/v1/test/health"
OBSERVE = 1.5       # seconds in which a refused upgrade must not reload


def start_agent(agent, capabilities=None, start=True):
    upgrade = {"enabled": True,
               "allow_keys": ["worker.max_inflight",
                              "orchestrator.poll_interval"]}
    if capabilities is not None:
        upgrade["capabilities"] = capabilities
    return agent(start=start, operations={"upgrade": upgrade})


def run_ops(orch, path, ops):
    return run_operations(orch, [{"path": path, "operation": op}
                                 for op in ops])


def read(path):
    with open(path, "rb") as f:
        return f.read()


def config_ok(path):
    """egressd -t: the file as the daemon would load it at start-up."""
    p = run_tool([binary("EGRESSD_BIN"), "-t", "-c", path], timeout=DEADLINE)
    return p.returncode == 0, p.stdout + p.stderr


def test_upgrade_rolls_the_workers(orch, agent):
    a = start_agent(agent)
    h = a.wait_ready(2)
    old_ids = a.worker_ids(h)
    old_pids = a.worker_pids(h)
    gen = a.status()["generation"]
    before = read(a.config)

    (r,) = run_ops(orch, UPGRADE_PATH,
                   [{"changes": {"worker.max_inflight": 1,
                                 "orchestrator.poll_interval": 2.0}}])
    assert r["result"] == {"changed": ["worker.max_inflight"],
                           "unchanged": ["orchestrator.poll_interval"],
                           "config": a.config, "reloading": True}, r
    assert r["instance_id"] in old_ids

    # the master restarts every worker into the next generation
    h2 = a.wait_ready(2, generation=gen + 1, exclude_ids=old_ids)
    assert a.status()["generation"] == gen + 1
    new_ids = a.worker_ids(h2)
    wait_until(lambda: not [p for p in old_pids if pid_alive(p)],
               msg="old workers to exit")

    # the file holds the change and still loads; the old one is kept
    ok, out = config_ok(a.config)
    assert ok, out
    assert b"max_inflight = 1;" in read(a.config)
    assert read(a.config + ".bak") == before

    # the new workers serve operations with max_inflight 1: an operation
    # whose result is held keeps its worker at capacity, and the log says
    # so with the new limit (a new worker logs it the first time)
    mark = len(a.log())
    orch.set_faults(delay={"result": 2.0})
    ids = orch.enqueue([{"path": HEALTH_PATH}])["operation_ids"]
    kick(orch)
    a.wait_log("at max_inflight (1)", timeout=DEADLINE, start=mark)
    orch.set_faults(delay={"result": 0})
    (r,) = wait_results(orch, ids)[ids[0]]
    assert r["instance_id"] in new_ids
    assert r["result"]["generation"] == gen + 1


def test_refused_upgrades_change_nothing(orch, agent):
    # the agent process may write poll_interval only
    a = start_agent(agent, capabilities=[
        "config:orchestrator.poll_interval write"])
    h = a.wait_ready(2)
    ids, gen = a.worker_ids(h), a.status()["generation"]
    before, st = read(a.config), os.stat(a.config)

    res = run_ops(orch, UPGRADE_PATH, [
        {"changes": {"orchestrator.poll_interval": 1.0,
                     "server.workers": 3}},
        {"changes": {"worker.max_inflight": 2}},
        {"changes": {"orchestrator.poll_interval": 0.001}},
        {"changes": {"orchestrator.poll_interval": "often"}},
        {"changes": {"orchestrator.poll_interval": 2.0}},
    ])
    denied, no_cap, bad, wrong_type, same = [r["result"] for r in res]
    assert denied.get("error_type") == "capability_denied", denied
    assert "server.workers" in denied["error"], denied
    assert no_cap.get("error_type") == "capability_denied", no_cap
    assert bad.get("error_type") == "invalid_request", bad
    assert "orchestrator.poll_interval: must be between" in bad["error"], \
        bad
    assert wrong_type.get("error_type") == "invalid_request", wrong_type
    assert "orchestrator.poll_interval" in wrong_type["error"], wrong_type
    # the value it already has: nothing to write, nothing to reload
    assert same == {"changed": [], "unchanged": [
        "orchestrator.poll_interval"], "config": a.config,
        "reloading": False}, same

    time.sleep(OBSERVE)         # observation window: no reload may start
    a.check_alive()
    h2 = a.health()
    assert a.status()["generation"] == gen
    assert a.worker_ids(h2) == ids, h2
    assert read(a.config) == before
    st2 = os.stat(a.config)
    assert (st2.st_ino, st2.st_mtime_ns) == (st.st_ino, st.st_mtime_ns)
    assert not os.path.exists(a.config + ".bak")
    assert not [n for n in os.listdir(a.dir) if ".upgrade." in n]


def test_symlinked_config_is_not_upgraded(orch, agent):
    a = start_agent(agent, start=False)
    real = os.path.join(a.dir, "real.conf")
    os.rename(a.config, real)
    os.symlink("real.conf", a.config)
    before = read(real)
    a.start()
    h = a.wait_ready(2)
    gen = a.status()["generation"]

    (r,) = run_ops(orch, UPGRADE_PATH,
                   [{"changes": {"worker.max_inflight": 2}}])
    assert r["result"].get("error_type") == "unsupported", r
    assert "symlink" in r["result"]["error"], r

    time.sleep(OBSERVE)         # observation window: no reload may start
    assert a.status()["generation"] == gen
    assert a.worker_ids() == a.worker_ids(h)
    assert os.path.islink(a.config)
    assert read(real) == before
    assert not os.path.exists(a.config + ".bak")
    assert not os.path.exists(real + ".bak")
