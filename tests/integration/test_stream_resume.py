"""The event stream resumes where it broke off (issue 19, DESIGN section 2).

The fake orchestrator numbers every event and replays what followed the
Last-Event-ID a reconnecting stream sends.  A stream cut in the middle of an
event, with operations pushed and a goodbye sent while it is down, loses
nothing: each pushed operation runs exactly once and the goodbye is obeyed.
A pushed operation whose worker dies before taking it goes to another
worker; one the worker took is reported by the master's recovery, once.
"""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import db_count  # noqa: E402
from proto_helpers import (  # noqa: E402
    EP_SHUTDOWN, EP_STREAM, SHORT, pid_alive, requests, wait_results,
    wait_until)
from proto_helpers import agent, orch, workdir  # noqa: E402,F401 (fixtures)
from delivery import assert_delivered  # noqa: E402

COMMAND = "/api/v1/agent/execute/command"
SLEEP_COMMANDS = {"enabled": True, "commands": [
    {"name": "sleep", "argv": ["/bin/sleep", "{secs}"], "timeout": 60.0}]}


def _has_process(a, op):
    """op is an agent process in the database (committed)."""
    return db_count(a.state_dir, "SELECT count(*) FROM processes WHERE "
                    "operation_id = ?", (op,)) > 0


def _resumed_streams(orch):
    return [r for r in requests(orch, endpoint=EP_STREAM)
            if r["last_event_id"] is not None]


def test_stream_cut_mid_event_loses_no_push_and_no_goodbye(orch, agent):
    orch.set_faults(sse_retry_ms=1000)      # reconnect after about 1 s
    a = agent()
    h = a.wait_ready(2)
    old_ids = a.worker_ids(h)
    assert orch.wait_counts(SHORT, streams=1)
    a.wait_log("events: welcome")           # its ID is committed
    connects = orch.state()["stream_connects"]

    # The stream breaks in the middle of this event; the rest is sent
    # while it is down (or, under load, on the new stream: the same).
    cut = orch.push({}, cut=True)["operation_ids"]
    later = orch.push([{}, {}])["operation_ids"]
    orch.goodbye("replaced while the stream was down")
    ids = cut + later

    wait_until(lambda: orch.state()["stream_connects"] > connects,
               msg="the stream to reconnect")
    resumed = _resumed_streams(orch)
    assert resumed, "the reconnect sent no Last-Event-ID"
    assert int(resumed[0]["last_event_id"]) > 0

    # Every pushed operation runs exactly once ...
    res = wait_results(orch, ids)
    assert_delivered(orch, ids, allowed_dups=0)
    assert all(len(res[i]) == 1 for i in ids), res
    # ... and the goodbye is obeyed: each old worker says goodbye, and
    # new ones take their place.
    wait_until(lambda: {r["instance_id"] for r in
                        requests(orch, endpoint=EP_SHUTDOWN)} >= old_ids,
               msg="a shutdown notice from each old worker")
    a.wait_ready(2, exclude_ids=old_ids)
    assert orch.state()["replay"]["replayed_events"] >= 1
    assert "events: goodbye" in a.log() or "goodbye" in a.log()


def test_push_to_a_worker_killed_before_taking_it_is_redelivered(orch,
                                                                  agent):
    """The worker is stopped, the operation is sent to it (the frame waits
    in its channel), then it is killed: nothing took the operation, so the
    master hands it to the worker that replaces it."""
    a = agent(server={"workers": 1})
    (victim,) = a.wait_ready(1)["workers"]
    assert orch.wait_counts(SHORT, streams=1)
    os.kill(victim["pid"], signal.SIGSTOP)
    try:
        (op,) = orch.push({})["operation_ids"]
        a.wait_log(f"pushed operation {op} handed to worker")
    finally:
        os.kill(victim["pid"], signal.SIGKILL)
    wait_until(lambda: not pid_alive(victim["pid"]), timeout=SHORT,
               msg="the stopped worker to die")
    (rec,) = wait_results(orch, [op])[op]
    assert "error" not in rec["result"], rec
    assert rec["instance_id"] != victim["instance_id"]
    assert f"pushed operation {op} was not taken by worker" in a.log()
    assert_delivered(orch, [op], allowed_dups=0)


def test_push_taken_by_a_worker_that_dies_is_reported_once(orch, agent):
    """A pushed operation the worker made an agent process is not sent
    again when the worker dies: the master's recovery reports it."""
    a = agent(server={"workers": 1}, operations={"command": SLEEP_COMMANDS})
    (victim,) = a.wait_ready(1)["workers"]
    assert orch.wait_counts(SHORT, streams=1)
    (op,) = orch.push({"path": COMMAND, "operation": {
        "name": "sleep", "args": {"secs": "30"}}})["operation_ids"]
    a.wait_log(f"operation {op} accepted (push)")
    # Accepted is logged before its agent process is committed: the test
    # is about a push the worker made a process of.
    wait_until(lambda: _has_process(a, op), SHORT,
               msg=f"operation {op} an agent process")
    os.kill(victim["pid"], signal.SIGKILL)
    (rec,) = wait_results(orch, [op])[op]
    assert rec["result"]["error"] == "worker died: signal 9", rec
    a.wait_ready(1, exclude_ids={victim["instance_id"]})
    # The decision was made when the worker was reaped, before the new
    # one started: it was not handed out again.
    assert f"pushed operation {op} was not taken" not in a.log()
    assert f"pushed operation {op} (unknown" not in a.log()
    assert_delivered(orch, [op], allowed_dups=0)
