"""A reload that cannot take the agent down (issue 14): when the new
generation fails its first exchange with the orchestrator while the old one
still gets through, the reload is rolled back: the new workers stop, the
old ones keep serving under the previous configuration, and `egressctl
reload` exits 1 with the reason.  When both generations fail (the
orchestrator is down) the reload proceeds as before."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from proto_helpers import (  # noqa: E402
    DEADLINE, free_closed_port, make_cert, pid_alive, reload_ctl,
    run_operations, tls_orchestrator, wait_until)
from proto_helpers import agent, orch, workdir  # noqa: E402,F401 (fixtures)

UPGRADE_PATH = "/api/v1/upgrade"


def assert_rolled_back(a, old_pids, rc, out, kind):
    assert rc == 1, out
    assert "rolled back" in out and f"({kind}:" in out, out
    st = a.status()
    assert st["generation"] == 1, st
    assert "rolled back" in (st["last_reload_failure"] or ""), st
    # the old workers still serve; the rejected ones are gone
    h = a.wait_ready(2, generation=1)
    assert a.worker_pids(h) == old_pids, h
    assert all(pid_alive(p) for p in old_pids)
    a.wait_log("reload to generation 2 rolled back")


def test_reload_through_a_dead_proxy_rolls_back(orch, agent):
    a = agent()
    old_pids = a.worker_pids(a.wait_ready(2))
    a.write_config({"orchestrator": {
        "proxy": f"http://127.0.0.1:{free_closed_port()}"}})

    rc, out = reload_ctl(a)
    assert_rolled_back(a, old_pids, rc, out, "proxy")
    assert "proxy http://127.0.0.1:" in out and "failed" in out, out

    # the old workers still run operations
    (r,) = run_operations(orch, [{"path": "/api/v1/test/health"}])
    assert r["result"]["generation"] == 1, r

    # the next good reload starts a fresh generation (never reused)
    a.write_config({"orchestrator": {"proxy": ""}})
    rc, out = reload_ctl(a)
    assert rc == 0, out
    assert "generation 3, 2/2 workers ready" in out, out
    a.wait_ready(2, generation=3)


def test_reload_with_a_wrong_ca_rolls_back(agent, workdir):
    o, good = tls_orchestrator(workdir)
    wrong, _ = make_cert(workdir, "other")
    try:
        a = agent(url=o.url, token=o.token,
                  orchestrator={"ca_file": good})
        old_pids = a.worker_pids(a.wait_ready(2))
        a.write_config({"orchestrator": {"ca_file": wrong}})
        rc, out = reload_ctl(a)
        assert_rolled_back(a, old_pids, rc, out, "tls")
    finally:
        a.stop()
        o.stop()


def test_reload_with_the_orchestrator_down_proceeds(orch, agent):
    a = agent(server={"graceful_timeout": 1.0})
    old_pids = a.worker_pids(a.wait_ready(2))
    orch.stop()
    a.write_config({"orchestrator": {
        "proxy": f"http://127.0.0.1:{free_closed_port()}"}})

    # neither generation gets through: no rollback, as before the rule
    rc, out = reload_ctl(a)
    assert rc == 0, out
    assert "generation 2" in out, out
    wait_until(lambda: a.status()["generation"] == 2 and
               not [p for p in old_pids if pid_alive(p)],
               msg="the old generation retired")
    assert "rolled back" not in a.log()


def test_upgrade_rejected_restores_the_file(orch, agent):
    a = agent(operations={"upgrade": {
        "enabled": True, "allow_keys": ["orchestrator.proxy"]}})
    old_pids = a.worker_pids(a.wait_ready(2))
    with open(a.config, "rb") as f:
        before = f.read()

    bad = f"http://127.0.0.1:{free_closed_port()}"
    (r,) = run_operations(orch, [{"path": UPGRADE_PATH, "operation": {
        "changes": {"orchestrator.proxy": bad}}}])
    assert r["result"]["reloading"] is True, r
    a.wait_log("reload to generation 2 rolled back", timeout=DEADLINE)
    a.wait_log("restored from", timeout=DEADLINE)
    with open(a.config, "rb") as f:
        assert f.read() == before
    h = a.wait_ready(2, generation=1)
    assert a.worker_pids(h) == old_pids, h
