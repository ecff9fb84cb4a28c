"""The orchestrator token: a private token file or the environment, and the
secret never written to any log line (DESIGN.md section 2)."""

import os
import signal
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from proto_helpers import (  # noqa: E402
    DEADLINE, EP_HEARTBEAT, SCALE, SHORT, TOKEN_ID, kick, new_token,
    requests, wait_results, wait_until)
from proto_helpers import agent, orch, workdir  # noqa: E402,F401 (fixtures)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_token_file_must_be_private(orch, agent, mode):
    a = agent(token_mode=mode)
    rc = a.wait_exit(5.0 * SCALE)
    assert rc == 1, f"exit status {rc} with a token file of mode {mode:04o}"
    token_path = os.path.join(a.dir, "token")
    assert not os.path.exists(a.pidfile), "pidfile left behind"
    assert not os.path.exists(a.sock), "control socket left behind"
    out = a.stderr() + a.stdout()
    logged = [ln for ln in a.log().splitlines() if token_path in ln]
    on_stderr = [ln for ln in out.splitlines() if token_path in ln]
    assert logged or on_stderr, \
        f"no message naming {token_path}; stderr {out!r}; log {a.log()!r}"
    # the refusal must reach whoever started egressd, not only the log file
    assert len(on_stderr) == 1, \
        f"no one-line message naming {token_path} on stderr/stdout " \
        f"(stderr {a.stderr()!r}); log lines naming it: {logged}"
    assert orch.state()["requests"] == 0, "requests made with a leaked token"
    assert orch.token not in out + a.log()


def test_token_file_private_is_accepted(orch, agent):
    a = agent(token_mode=0o400)
    a.wait_ready(2)
    reqs = orch.get_requests()
    assert reqs, "no request reached the orchestrator"
    assert all(r["auth_ok"] for r in reqs)


def test_token_file_through_secret_volume_symlinks(orch, agent, workdir):
    """A Kubernetes Secret volume: token -> ..data/token, ..data -> a
    timestamped directory holding the private file.  The symlinks are
    followed and the mode check applies to the file they lead to
    (contrib/kubernetes.yaml relies on it)."""
    vol = os.path.join(workdir, "secret")
    stamp = os.path.join(vol, "..2026_01_01_00_00_00.000000000")
    os.makedirs(stamp)
    with open(os.path.join(stamp, "token"), "w") as f:
        f.write(orch.token + "\n")
    os.chmod(os.path.join(stamp, "token"), 0o400)
    os.symlink(os.path.basename(stamp), os.path.join(vol, "..data"))
    os.symlink("..data/token", os.path.join(vol, "token"))
    link = os.path.join(vol, "token")
    assert os.path.islink(link)
    a = agent(use_token_file=False, orchestrator={"token_file": link})
    a.wait_ready(2)
    reqs = orch.get_requests()
    assert reqs and all(r["auth_ok"] for r in reqs)


def test_token_from_environment(orch, agent):
    a = agent(use_token_file=False, env={"EGRESSD_TOKEN": orch.token})
    a.wait_ready(2)
    ids = orch.enqueue([{}, {}])["operation_ids"]
    kick(orch)
    wait_results(orch, ids)
    reqs = orch.get_requests()
    assert reqs and all(r["auth_ok"] for r in reqs)
    assert orch.token not in a.log() + a.stderr() + a.stdout()


def test_token_id_from_environment(orch, agent):
    a = agent(use_token_file=False, orchestrator={"token_id": ""},
              env={"EGRESSD_TOKEN": orch.token, "EGRESSD_TOKEN_ID": TOKEN_ID})
    a.wait_ready(2)
    reqs = orch.get_requests()
    assert reqs, "no request reached the orchestrator"
    assert all(r["auth_ok"] for r in reqs)


def test_token_rotated_on_reload(orch, agent):
    a = agent()
    h = a.wait_ready(2)
    old_ids = {w["instance_id"] for w in h["workers"]}
    old_token = orch.token
    new = new_token()
    path = os.path.join(a.dir, "token")
    with open(path, "w") as f:
        f.write(new + "\n")
    os.chmod(path, 0o600)
    with orch.lock:
        orch.token = new
    a.signal(signal.SIGHUP)
    a.wait_ready(2, exclude_ids=old_ids)
    mark = max(r["seq"] for r in orch.get_requests())
    ids = orch.enqueue([{}, {}])["operation_ids"]
    kick(orch)
    wait_results(orch, ids)
    after = orch.get_requests(since=mark)
    assert after and all(r["auth_ok"] for r in after)
    text = a.log() + a.stderr() + a.stdout()
    assert old_token not in text and new not in text


def test_token_never_logged(orch, agent):
    """Debug logging, every endpoint exercised, failures included: the token
    appears in no log line, on stderr or on stdout."""
    token = orch.token
    orch.set_faults(push_metrics=True, heartbeat_interval=0.3)
    a = agent(worker={"max_inflight": 1, "backpressure_heartbeat": 0.2},
              orchestrator={"events_timeout": 5.0})
    a.wait_ready(2)
    # operations: plain, unknown path, size-exceeded, pushed
    orch.set_faults(delay={"result": 0.8})
    ids = orch.enqueue([{}, {"path": "/no/such/path"},
                        {"operation": {"trace_id": "t"},
                         "size_exceeded": True}])["operation_ids"]
    kick(orch)
    kick(orch)
    assert orch.wait_counts(SHORT, streams=1)
    ids += orch.push({})["operation_ids"]
    wait_results(orch, ids)
    orch.set_faults(delay={"result": 0})
    # failures: result 500 (retried), auth failures, a 404 full download
    orch.fail_next("result", 1, 500)
    (op,) = orch.enqueue({})["operation_ids"]
    kick(orch)
    wait_results(orch, [op])
    orch.set_faults(auth_fail=True)
    kick(orch)
    time.sleep(1.0)
    orch.close_streams(clean=False)     # reconnects into a 401
    time.sleep(1.0)
    orch.set_faults(auth_fail=False)
    a.signal(signal.SIGHUP)             # reload re-reads the token
    a.wait_ready(2, timeout=DEADLINE)
    assert orch.wait_counts(DEADLINE, streams=1)
    orch.goodbye("rotate")              # shutdown notices, new workers
    wait_until(lambda: orch.state()["instances"] and
               sum(i["shutdowns"] for i in
                   orch.state()["instances"].values()) >= 4,
               msg="shutdown notices after goodbye")
    a.wait_ready(2, timeout=DEADLINE)
    a.signal(signal.SIGTERM)
    assert a.wait_exit(DEADLINE) == 0

    counts = orch.state()["counts"]
    # (metrics: asked for by push_metrics; test_protocol.py::test_push_metrics
    # checks that it is sent)
    for ep in ("stream", "operation", "result", "request", "heartbeat",
               "shutdown"):
        assert counts[ep] >= 1, f"endpoint {ep} not exercised: {counts}"
    assert requests(orch, endpoint=EP_HEARTBEAT)
    log = a.log()
    assert " debug " in log, "debug lines were not logged"
    for name, text in (("egressd.log", log), ("stderr", a.stderr()),
                       ("stdout", a.stdout())):
        for needle in (token, token[4:], token[4:20]):
            hits = [ln for ln in text.splitlines() if needle in ln]
            assert not hits, f"token in {name}: {hits[:3]}"
