"""An orchestrator that may be compromised (docs/SECURITY.md): whatever it
sends, it cannot forge a log line, drive the operator's terminal through
egressctl, or steer a result to another endpoint."""

import json
import time
import os
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import binary, db_query, render_config, run_tool  # noqa: E402
from proto_helpers import (  # noqa: E402
    DEADLINE, SHORT, kick, results_by_id, wait_results, wait_until)
from proto_helpers import agent, orch, workdir  # noqa: E402,F401 (fixtures)

FORGED = "2026-01-01T00:00:00.000Z egressd[1] info master: forged"
ESC = "\x1b[2J\x1b]0;owned\x07"


def egressctl(a, *args):
    p = run_tool([binary("EGRESSCTL_BIN"), "-c", a.config, *args])
    assert p.returncode == 0, (args, p.returncode, p.stdout, p.stderr)
    return p.stdout


def assert_no_control(text, what):
    bad = sorted({c for c in text if (ord(c) < 0x20 and c != "\n")
                  or 0x7f <= ord(c) <= 0x9f})
    assert not bad, f"{what} holds control characters {bad!r}"


def test_log_lines_cannot_be_forged(orch, agent):
    """Orchestrator strings written into the text log: a newline does not
    start a line of its own, an escape sequence does not reach the file."""
    a = agent()
    a.wait_ready(2)
    orch.send_event({"type": "welcome",
                     "agent_id": "x\n" + FORGED + ESC + "\u009b31m"})
    wait_until(lambda: "welcome (agent_id x\\n" in a.log(),
               msg="the welcome logged")
    log = a.log()
    assert not [ln for ln in log.splitlines() if ln.startswith(FORGED)], \
        "a forged log line"
    assert_no_control(log, "the log")
    line = next(ln for ln in log.splitlines() if "welcome (agent_id x" in ln)
    assert line.endswith("forged\\x1b[2J\\x1b]0;owned\\x07\\u009b31m)"), line


def test_json_log_stays_valid_json(orch, agent):
    """The JSON log format: control characters, C1 and bytes that are not
    UTF-8 make no invalid line."""
    a = agent(log={"format": "json"})
    a.wait_ready(2)
    orch.send_event({"type": "welcome", "agent_id": "y\n" + ESC + "\u0085"})
    wait_until(lambda: "welcome (agent_id y" in a.log(),
               msg="the welcome logged")
    for ln in a.log().splitlines():
        rec = json.loads(ln)
        assert_no_control(ln, "a JSON log line")
        if "welcome (agent_id y" in rec["msg"]:
            assert rec["msg"].endswith("y\n" + ESC + "\u0085)"), rec


def test_egressctl_output_is_escaped(orch, agent):
    """An operation path is the agent process's image: egressctl ps and
    audit print it escaped, --json keeps it exact."""
    a = agent()
    a.wait_ready(2)
    path = "/api/v1/x" + ESC + "\n    1        0  EXITED fake"
    (op,) = orch.enqueue({"path": path})["operation_ids"]
    kick(orch)
    wait_results(orch, [op])
    for args in (("ps", "--all"), ("audit",)):
        out = egressctl(a, *args)
        assert_no_control(out, "egressctl " + " ".join(args))
        forged = [ln for ln in out.splitlines()
                  if ln.startswith("    1        0  EXITED")]
        assert not forged, f"a forged row: {forged}"
    ps = egressctl(a, "ps", "--all")
    assert "/api/v1/x\\x1b[2J\\x1b]0;owned\\x07\\n    1" in ps, ps
    pid = next(int(ln.split()[0]) for ln in ps.splitlines()
               if "/api/v1/x" in ln)
    text = egressctl(a, "inspect", str(pid))
    assert_no_control(text, "egressctl inspect")
    exact = json.loads(egressctl(a, "inspect", "--json", str(pid)))
    assert exact["image"] == path


def test_dot_segment_ids_are_refused(orch, agent):
    """Operation IDs "." and ".." would turn the result PUT into a PUT to
    another endpoint: they are dropped with a log line and nothing is sent
    for them."""
    a = agent()
    a.wait_ready(2)
    ops = orch.enqueue([{"operation_id": ".."}, {"operation_id": "."},
                        {}])["operation_ids"]
    kick(orch)
    wait_results(orch, ops[2:])
    wait_until(lambda: a.log().count("without a usable") >= 2,
               msg="both refusals logged")
    puts = [r["path"] for r in orch.get_requests(method="PUT")]
    assert puts and all(p.startswith("/api/v1/agent/operations/" + ops[2])
                        for p in puts), puts


def _proc_read(pid, name):
    with open(f"/proc/{pid}/{name}", "rb") as f:
        return f.read()


def test_token_leaves_every_environ(orch, agent):
    """$EGRESSD_TOKEN is not only unset but zeroed: /proc/PID/environ of
    the master and of the workers forked from it does not show it, and
    their core dumps are off."""
    a = agent(use_token_file=False, env={"EGRESSD_TOKEN": orch.token})
    h = a.wait_ready(2)
    pids = [a.proc.pid] + sorted(a.worker_pids(h))
    for pid in pids:
        assert orch.token.encode() not in _proc_read(pid, "environ"), pid
        limits = _proc_read(pid, "limits").decode()
        core = next(ln for ln in limits.splitlines()
                    if ln.startswith("Max core file size"))
        assert core.split()[4] == "0", core
        assert os.stat(f"/proc/{pid}/environ").st_uid == 0, \
            f"pid {pid} is dumpable"
    ids = orch.enqueue([{}])["operation_ids"]
    kick(orch)
    wait_results(orch, ids)


def test_core_dumps_allowed_by_config(orch, agent):
    a = agent(server={"core_dumps": True})
    h = a.wait_ready(2)
    for pid in [a.proc.pid] + sorted(a.worker_pids(h)):
        assert os.stat(f"/proc/{pid}/environ").st_uid == os.getuid(), pid


# --------------------------------------------------------------------------
# Pushed operations obey worker.max_inflight.

COMMAND_PATH = "/api/v1/agent/execute/command"


def _one_at_a_time_agent(agent, workdir_path, workers=1):
    """egressd with max_inflight 1 and a command that reports how many of
    its kind run at its start (a marker file each in a directory)."""
    marks = os.path.join(workdir_path, "running")
    os.mkdir(marks)
    script = (f"d={marks}; touch $d/$$; ls $d | wc -l; sleep 0.2; "
              "rm -f $d/$$")
    a = agent(start=False, server={"workers": workers},
              worker={"max_inflight": 1})
    with open(a.config, "w") as f:
        f.write(render_config(a.cfg, f"""operations: {{
  command: {{
    enabled = true;
    commands = (
      {{ name = "mark"; argv = [ "/bin/sh", "-c", "{script}" ];
        timeout = 30.0; }}
    );
  }};
}};
"""))
    a.start()
    return a


def test_pushes_obey_max_inflight(orch, agent, workdir):
    """30 slow commands pushed over SSE at once, max_inflight 1, one
    worker: the worker never runs more than one (its reported in-flight,
    and the commands themselves, see at most one), the rest wait (in the
    master's push queue or the worker's), and all 30 are reported."""
    a = _one_at_a_time_agent(agent, workdir)
    a.wait_ready(1)
    assert orch.wait_counts(SHORT, streams=1)
    rep = orch.push([{"path": COMMAND_PATH, "operation": {"name": "mark"}}
                     for _ in range(30)])
    assert rep["delivered"] == 1
    ids = rep["operation_ids"]
    seen = []

    def sample():
        h = a.health()
        seen.extend(w["inflight"] for w in h["workers"])
        with orch.lock:
            have = {r["operation_id"] for r in orch.results}
        return set(ids) <= have
    wait_until(sample, timeout=4 * DEADLINE, msg="all 30 results")
    res = wait_results(orch, ids)
    assert seen and max(seen) <= 1, f"in-flight samples up to {max(seen)}"
    counts = [res[i][0]["result"].get("stdout") for i in ids]
    assert counts == ["1\n"] * 30, counts
    assert orch.state()["duplicate_results"] == 0
    assert "dropped" not in a.log()


# --------------------------------------------------------------------------
# goodbye on every new stream: no restart storm.

def test_goodbye_on_every_stream_backs_off(orch, agent):
    """An orchestrator that says goodbye on every new stream: goodbye
    restarts go through the crash-loop back-off (0.5 s doubling), so two
    restarts are at least 0.5 s apart (min_uptime is 1 s here) and the
    spawns over a window stay within workers * (2 + 2 * seconds); the
    daemon keeps running and answers."""
    workers = 2
    a = agent(server={"workers": workers})
    a.wait_ready(workers)
    orch.set_faults(goodbye_on_connect=True)
    orch.close_streams()
    a.wait_log("orchestrator said goodbye")
    t0 = time.monotonic()
    start = a.log().count("spawned worker")
    time.sleep(5)
    spawns = a.log().count("spawned worker") - start
    elapsed = time.monotonic() - t0
    bound = workers * (2 + 2 * elapsed)
    assert spawns <= bound, f"{spawns} spawns in {elapsed:.1f}s"
    a.check_alive()
    assert a.health()["state"] == "running"
    # once the orchestrator stops, the agent serves again
    orch.set_faults(goodbye_on_connect=False)
    a.wait_ready(workers, timeout=4 * DEADLINE)
    ids = orch.enqueue([{}])["operation_ids"]
    kick(orch)
    wait_results(orch, ids)


BATCH = "/api/v1/agent/execute/batch"
STORAGE_READ = "/api/v1/agent/execute/storage/read"


def _storage_agent(agent, workdir):
    root = os.path.join(workdir, "objects")
    os.makedirs(root)
    with open(os.path.join(root, "k"), "w") as f:
        f.write("stored")
    a = agent(operations={"storage": {"enabled": True, "root": root}})
    a.wait_ready(2)
    return a


def _pid_of(a, op_id):
    ((pid,),) = db_query(a.state_dir, "SELECT pid FROM processes WHERE "
                         "operation_id = ?", (op_id,))
    return pid


def _audit_images(a, pid):
    rows = json.loads(egressctl(a, "audit", "--pid", str(pid), "--json"))
    return json.loads(egressctl(a, "inspect", "--json", str(pid)))["image"], rows


def test_full_download_cannot_change_the_stub_path(orch, agent, workdir):
    """A stub whose path is batch, downloaded in full with a storage read:
    refused (invalid_request); storage never runs under batch's grants."""
    a = _storage_agent(agent, workdir)
    (op,) = orch.enqueue({"path": BATCH, "size_exceeded": True,
                          "full": {"path": STORAGE_READ,
                                   "operation": {"key": "k"}}})["operation_ids"]
    kick(orch)
    (r,) = wait_results(orch, [op])[op]
    res = r["result"]
    assert res.get("error_type") == "invalid_request", res
    assert "path" in res["error"] and "stored" not in json.dumps(res), res
    image, audit = _audit_images(a, res["pid"])
    assert image == BATCH
    # Nothing ran: no capability was checked, no handler acted.
    assert [x["action"] for x in audit] == ["process.spawn", "process.exit"], \
        audit


def test_full_download_cannot_change_the_operation_id(orch, agent, workdir):
    _storage_agent(agent, workdir)
    (op,) = orch.enqueue({"path": STORAGE_READ, "size_exceeded": True,
                          "operation": {"key": "k"},
                          "full": {"operation_id": "someone-else"}})[
                              "operation_ids"]
    kick(orch)
    (r,) = wait_results(orch, [op])[op]
    res = r["result"]
    assert res.get("error_type") == "invalid_request", res
    assert "operation_id" in res["error"] and "stored" not in json.dumps(res)
    assert "someone-else" not in results_by_id(orch)


def test_full_download_with_its_stub_path_runs(orch, agent, workdir):
    a = _storage_agent(agent, workdir)
    (op,) = orch.enqueue({"path": STORAGE_READ, "size_exceeded": True,
                          "operation": {"key": "k"}})["operation_ids"]
    kick(orch)
    (r,) = wait_results(orch, [op])[op]
    res = r["result"]
    assert "error" not in res and "stored" in json.dumps(res), res
    image, _ = _audit_images(a, _pid_of(a, op))
    assert image == STORAGE_READ


# --------------------------------------------------------------------------
# No result is ever dropped: an oversized one is replaced before its first
# try, a permanent refusal replaces it once, then it is a dead letter.

def _outbox_rows(a):
    return db_query(a.state_dir, "SELECT operation_id, replaced, dead_at, "
                    "dead_reason FROM outbox")


def _result_puts(orch, op):
    return [r for r in orch.get_requests(endpoint="result")
            if op in r["path"]]


def test_oversized_result_is_replaced_before_its_first_try(orch, agent,
                                                           workdir):
    """An 8000-byte file read with max_body_bytes 4096: the result (over
    10 KiB once base64'd) is never sent; a limit_exceeded error takes its
    place from the first try on, and survives three failed tries and the
    outbox sweep that used to delete it."""
    root = os.path.join(workdir, "objects")
    os.makedirs(root)
    with open(os.path.join(root, "big"), "wb") as f:
        f.write(os.urandom(8000))
    a = agent(orchestrator={"max_body_bytes": 4096},
              operations={"storage": {"enabled": True, "root": root}})
    a.wait_ready(2)
    orch.set_faults(fail={"result": {"count": 3, "status": 503}})
    (op,) = orch.enqueue({"path": STORAGE_READ,
                          "operation": {"key": "big"}})["operation_ids"]
    kick(orch)
    (r,) = wait_results(orch, [op], timeout=4 * DEADLINE)[op]
    res = r["result"]
    assert res.get("error_type") == "limit_exceeded", res
    assert "max_body_bytes" in res["error"] and isinstance(res["pid"], int)
    puts = _result_puts(orch, op)
    assert len(puts) == 4, [p["status"] for p in puts]
    assert all(p["body_size"] <= 4096 for p in puts)
    assert all(p["body"]["result"]["error_type"] == "limit_exceeded"
               for p in puts)
    assert "deleted" not in a.log()
    wait_until(lambda: _outbox_rows(a) == [], msg="outbox row gone on 2xx")
    # The exit record tells the same story as the result sent.
    info = json.loads(egressctl(a, "inspect", "--json", str(res["pid"])))
    assert info["status"] == "FAILED", info


def test_refused_result_is_replaced_once(orch, agent):
    """400 for a result: it is not retried as is; one error result saying
    why goes in its place and is taken."""
    a = agent()
    a.wait_ready(2)
    orch.set_faults(fail={"result": {"count": 1, "status": 400}})
    (op,) = orch.enqueue([{}])["operation_ids"]
    kick(orch)
    (r,) = wait_results(orch, [op])[op]
    res = r["result"]
    assert res.get("error_type") == "internal", res
    assert "HTTP 400" in res["error"], res
    assert [p["status"] for p in _result_puts(orch, op)] == [400, 200]
    a.wait_log(f"result for {op} refused")


def test_result_refused_twice_is_a_kept_dead_letter(orch, agent):
    """422 for the result and for the error sent in its place: the row
    stays in the outbox as a dead letter (logged, counted), no sweep sends
    it again, and it does not hold up the shutdown notice."""
    a = agent()
    a.wait_ready(2)
    orch.set_faults(fail={"result": {"count": 2, "status": 422}})
    (op,) = orch.enqueue([{}])["operation_ids"]
    kick(orch)
    a.wait_log(f"result for {op} can never be sent", timeout=DEADLINE)
    rows = _outbox_rows(a)
    assert len(rows) == 1 and rows[0][0] == op and rows[0][1] == 1, rows
    assert rows[0][2] is not None and "HTTP 422" in rows[0][3], rows
    wait_until(lambda: "egressd_results_dead_lettered_total 1" in
               egressctl(a, "metrics"), msg="dead letter counted")
    # Three more polls: a sweep ran at least once; nothing was sent again.
    polls = len(orch.get_requests(endpoint="operation"))
    wait_until(lambda: len(orch.get_requests(endpoint="operation")) >=
               polls + 3, timeout=4 * DEADLINE, msg="three more polls")
    assert len(_result_puts(orch, op)) == 2
    assert orch.get_results() == []
    a.stop()
    assert "wait in the outbox" not in a.log()
    assert len(_outbox_rows(a)) == 1


def test_damaged_outbox_row_is_kept_not_deleted(orch, agent):
    """A row whose text does not parse (damaged on disk) becomes a dead
    letter; it used to be deleted."""
    a = agent()
    a.wait_ready(2)
    a.stop()
    con = sqlite3.connect(os.path.join(a.dir, "egressd.db"), timeout=5)
    with con:
        con.execute("INSERT INTO outbox (operation_id, result, instance_id, "
                    "created_at, next_attempt) VALUES ('op-damaged', "
                    "'{\"result\": tru', 'gone', 0, 0)")
    con.close()
    a.start()
    a.wait_log("result for op-damaged can never be sent", timeout=DEADLINE)
    (row,) = _outbox_rows(a)
    assert row[0] == "op-damaged" and row[2] is not None, row
    assert "deleted" not in a.log()
    assert _result_puts(orch, "op-damaged") == []
