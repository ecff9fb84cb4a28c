"""Orchestrator protocol: headers, operations, goodbye, shutdown, backpressure,
piggyback, size-exceeded, pushed operations and rolling restarts under load
(DESIGN.md sections 1-3), against the in-process fake orchestrator."""

import os
import re
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from proto_helpers import (  # noqa: E402
    DEADLINE, EP_HEARTBEAT, EP_OPERATION, EP_REQUEST, EP_RESULT,
    EP_SHUTDOWN, EP_STREAM, SCALE, SHORT, TOKEN_ID, kick, pid_alive,
    queue_raw, requests, results_by_id, serve_raw_operations, wait_results,
    wait_until)
from proto_helpers import agent, orch, workdir  # noqa: E402,F401 (fixtures)
from delivery import assert_delivered  # noqa: E402

UUID4_RE = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
UA_RE = re.compile(r"^egressd/\S+$")
HEALTH_PATH = "/api/v1/test/health"


def _seq(orch):
    with orch.lock:
        return orch.request_seq


def _check_headers(reqs):
    assert reqs, "no agent request recorded"
    for r in reqs:
        where = f"{r['method']} {r['path']} (seq {r['seq']})"
        assert r["auth_ok"] is True, \
            f"{where}: x-mcd-id / x-mcd-token missing or wrong"
        assert r["instance_id"], f"{where}: no x-mcd-agent-instance-id"
        assert UUID4_RE.match(r["instance_id"]), \
            f"{where}: instance ID {r['instance_id']!r} is not a UUID v4"
        assert r["user_agent"] and UA_RE.match(r["user_agent"]), \
            f"{where}: User-Agent {r['user_agent']!r}"


def _all_gone(pids):
    return all(not pid_alive(p) for p in pids)


# --------------------------------------------------------------------------
# 1. headers and instance IDs

def test_headers_and_instance_ids(orch, agent):
    a = agent()
    h = a.wait_ready(2)
    workers = [w["instance_id"] for w in h["workers"]]
    assert len(set(workers)) == 2, f"worker instance IDs not distinct: {workers}"
    master_id = a.status()["instance_id"]
    assert UUID4_RE.match(master_id), master_id
    assert master_id not in workers

    ids = orch.enqueue([{} for _ in range(6)])["operation_ids"]
    kick(orch)
    res = wait_results(orch, ids)
    wait_until(lambda: orch.state()["streams_open"] >= 1, msg="an open stream")

    reqs = orch.get_requests()
    _check_headers(reqs)
    version = a.status()["version"]
    assert {r["user_agent"] for r in reqs} == {f"egressd/{version}"}

    # the stream is the master's, with its own instance ID
    streams = requests(orch, endpoint=EP_STREAM)
    assert streams and {r["instance_id"] for r in streams} == {master_id}, \
        f"stream instance IDs {[r['instance_id'] for r in streams]}, " \
        f"master's {master_id}"
    # every other request comes from a worker, with its own ID
    others = [r for r in reqs if r["endpoint"] != EP_STREAM]
    assert {r["instance_id"] for r in others} <= set(workers), \
        f"requests from unknown instance IDs: " \
        f"{ {r['instance_id'] for r in others} - set(workers) }"
    # both workers polled at boot, each with its own ID
    polls = {r["instance_id"] for r in requests(orch, endpoint=EP_OPERATION)}
    assert polls == set(workers)
    # a result is sent by the worker that ran it (the health op reports it)
    for op_id, rs in res.items():
        assert len(rs) == 1
        assert rs[0]["instance_id"] in workers
        assert rs[0]["result"]["instance_id"] == rs[0]["instance_id"]

    # rolling restart: new workers, new IDs, old ones gone
    old_pids = a.worker_pids(h)
    a.signal(signal.SIGHUP)
    h2 = a.wait_ready(2, exclude_ids=workers)
    new_workers = [w["instance_id"] for w in h2["workers"]]
    assert len(set(new_workers)) == 2
    assert not set(new_workers) & set(workers)
    assert all(UUID4_RE.match(i) for i in new_workers)
    wait_until(lambda: _all_gone(old_pids), msg="old workers to exit")
    master_id2 = a.status()["instance_id"]
    assert master_id2 not in new_workers
    mark = _seq(orch)

    ids2 = orch.enqueue([{} for _ in range(6)])["operation_ids"]
    kick(orch)
    wait_results(orch, ids2)
    time.sleep(0.3)
    after = orch.get_requests(since=mark)
    _check_headers(after)
    for r in after:
        if r["endpoint"] == EP_STREAM:
            assert r["instance_id"] == master_id2
        else:
            assert r["instance_id"] in new_workers, \
                f"{r['method']} {r['path']} after the HUP from " \
                f"{r['instance_id']} (new workers: {new_workers})"
    for op_id in ids2:
        (r,) = orch.get_results(operation_id=op_id)
        assert r["instance_id"] in new_workers

    # the shutdown notices carry the same headers, each worker its own ID
    mark = _seq(orch)
    a.signal(signal.SIGTERM)
    assert a.wait_exit(DEADLINE) == 0
    shut = [r for r in orch.get_requests(since=mark)
            if r["endpoint"] == EP_SHUTDOWN]
    _check_headers(shut)
    assert sorted(r["instance_id"] for r in shut) == sorted(new_workers)


# --------------------------------------------------------------------------
# 2. operations: fetch, run, deliver

def test_operations_flow(orch, agent):
    a = agent()
    h = a.wait_ready(2)
    workers = a.worker_ids(h)
    pids = a.worker_pids(h)

    ids = orch.enqueue([{"operation": {"trace_id": f"t{i}"}}
                        for i in range(20)])["operation_ids"]
    assert len(set(ids)) == 20
    kick(orch)
    res = wait_results(orch, ids)
    time.sleep(0.3)
    assert_delivered(orch, ids)     # nobody died: nothing is sent twice
    res = results_by_id(orch)
    for op_id in ids:
        r = res[op_id][0]
        assert r["instance_id"] in workers
        assert r["result"].get("status") == "ok", r
        assert r["result"].get("instance_id") == r["instance_id"]
    assert set(res) == set(ids), f"results for unknown ids: {set(res) - set(ids)}"
    taken = orch.get_taken()
    assert sorted(t["operation_id"] for t in taken) == sorted(ids)

    # unknown path -> an "unsupported" error result
    (bad,) = orch.enqueue({"path": "/api/v1/no/such/thing"})["operation_ids"]
    # path missing or not a string -> invalid_request
    queue_raw(orch, {"operation_id": "nopath-1", "operation": {}})
    queue_raw(orch, {"operation_id": "nopath-2", "path": None,
                     "operation": {}})
    kick(orch)
    res = wait_results(orch, [bad, "nopath-1", "nopath-2"])
    (r,) = res[bad]
    assert r["result"].get("error_type") == "unsupported", r
    assert "unsupported operation path" in r["result"].get("error", ""), r
    assert "/api/v1/no/such/thing" in r["result"]["error"]
    for op_id in ("nopath-1", "nopath-2"):
        (r,) = res[op_id]
        assert r["result"].get("error_type") == "invalid_request", r
        assert r["result"].get("error"), r

    # no usable operation_id: logged and dropped; nothing crashes
    log_at = len(a.log())
    serve_raw_operations(orch, [
        b'{"path": "/api/v1/test/health", "operation": {}}'])
    queue_raw(orch, {"operation_id": 12345, "path": HEALTH_PATH,
                     "operation": {}})
    queue_raw(orch, {"operation_id": "../../etc/passwd", "path": HEALTH_PATH,
                     "operation": {}})
    queue_raw(orch, {"operation_id": "", "path": HEALTH_PATH,
                     "operation": {}})
    kick(orch)
    wait_until(lambda: orch.state()["queue_length"] == 0 and
               a.log()[log_at:].count("operation_id") >= 4,
               msg="4 'no usable operation_id' log lines")
    assert "without a usable" in a.log()[log_at:]
    ids3 = orch.enqueue([{} for _ in range(5)])["operation_ids"]
    kick(orch)
    wait_results(orch, ids3)
    a.check_alive()
    h = a.health()
    assert a.worker_pids(h) == pids, "a worker was replaced"
    assert h["ready"] == 2
    # no result was made up for the ID-less operations
    ids_seen = {r["operation_id"] for r in orch.get_results()}
    assert ids_seen == set(ids) | {bad, "nopath-1", "nopath-2"} | set(ids3), \
        f"unexpected results: {ids_seen - set(ids) - set(ids3)}"
    assert_delivered(orch, sorted(ids_seen), timeout=0)


def test_reload_keeps_the_stream(orch, agent):
    """A HUP whose orchestrator settings are unchanged keeps the event
    stream, so what the orchestrator sends meanwhile (a goodbye, a push)
    does not fall into a reconnect; changed settings open a new one."""
    a = agent()
    h = a.wait_ready(2)
    gen = h["generation"]
    assert orch.wait_counts(SHORT, streams=1)
    connects = orch.state()["stream_connects"]
    a.signal(signal.SIGHUP)
    a.wait_ready(2, generation=gen + 1)
    a.wait_log("the event stream is kept")
    assert orch.state()["stream_connects"] == connects
    ids = orch.push([{}])["operation_ids"]
    wait_results(orch, ids)

    a.write_config({"orchestrator": {"events_timeout": 90.0}})
    a.signal(signal.SIGHUP)
    a.wait_ready(2, generation=gen + 2)
    wait_until(lambda: orch.state()["stream_connects"] > connects,
               msg="a new stream for new settings")


# --------------------------------------------------------------------------
# 3. goodbye

def test_goodbye_restart(orch, agent):
    a = agent()
    h = a.wait_ready(2)
    old_ids = a.worker_ids(h)
    old_pids = a.worker_pids(h)
    gen = h["generation"]
    old_master_id = a.status()["instance_id"]
    assert orch.wait_counts(SHORT, streams=1)
    connects = orch.state()["stream_connects"]

    assert orch.goodbye("replaced by a newer agent")["delivered"] == 1

    def shutdowns_done():
        inst = orch.state()["instances"]
        return all(inst.get(i, {}).get("shutdowns", 0) >= 1 for i in old_ids)
    wait_until(shutdowns_done, msg="a shutdown notice from each old worker")
    wait_until(lambda: _all_gone(old_pids), msg="old workers to exit")
    h2 = a.wait_ready(2, exclude_ids=old_ids)
    new_ids = a.worker_ids(h2)
    assert not new_ids & old_ids
    assert all(w["generation"] == gen + 1 for w in h2["workers"]), h2
    assert not a.worker_pids(h2) & old_pids
    # a new stream, under the master's new instance ID
    wait_until(lambda: orch.state()["stream_connects"] > connects and
               orch.state()["streams_open"] >= 1, msg="the stream to reconnect")
    new_master_id = a.status()["instance_id"]
    assert new_master_id != old_master_id
    assert new_master_id not in new_ids
    wait_until(lambda: any(r["instance_id"] == new_master_id for r in
                           requests(orch, endpoint=EP_STREAM)),
               msg="a stream under the new master instance ID")

    ids = orch.enqueue([{} for _ in range(4)])["operation_ids"]
    kick(orch)
    wait_results(orch, ids)
    time.sleep(0.5)
    shut = requests(orch, endpoint=EP_SHUTDOWN)
    by_id = {}
    for r in shut:
        by_id[r["instance_id"]] = by_id.get(r["instance_id"], 0) + 1
    assert by_id == {i: 1 for i in old_ids}, \
        f"shutdown notices per instance: {by_id} (old workers {old_ids})"
    for r in orch.get_results():
        if r["operation_id"] in ids:
            assert r["instance_id"] in new_ids
    assert a.running()
    assert "goodbye" in a.log()


def test_goodbye_exit(orch, agent):
    a = agent(server={"on_goodbye": "exit"})
    h = a.wait_ready(2)
    ids = a.worker_ids(h)
    pids = a.worker_pids(h)
    assert orch.wait_counts(SHORT, streams=1)
    orch.goodbye("deregistered")
    rc = a.wait_exit(5.0 + 10.0 * SCALE)
    assert rc == 0, f"master exit status {rc}"
    assert _all_gone(pids)
    shut = requests(orch, endpoint=EP_SHUTDOWN)
    counts = {}
    for r in shut:
        counts[r["instance_id"]] = counts.get(r["instance_id"], 0) + 1
    assert counts == {i: 1 for i in ids}, \
        f"shutdown notices per instance: {counts} (workers {ids})"
    assert not os.path.exists(a.pidfile)


# --------------------------------------------------------------------------
# 4. SIGTERM with operations in flight

def test_sigterm_delivers_inflight_results(orch, agent):
    a = agent()
    h = a.wait_ready(2)
    ids_w = a.worker_ids(h)
    pids = a.worker_pids(h)
    orch.set_faults(delay={"result": 1.5})
    ids = orch.enqueue([{} for _ in range(6)])["operation_ids"]
    # wake both workers
    kick(orch)
    kick(orch)
    # in flight: every result PUT has arrived and is being held by the fake
    wait_until(lambda: len({r["path"] for r in
                            requests(orch, endpoint=EP_RESULT)}) == 6,
               msg="6 result PUTs in flight")
    assert len(orch.get_results()) == 0, "results answered before the delay?"
    t0 = time.monotonic()
    a.signal(signal.SIGTERM)
    rc = a.wait_exit(DEADLINE)
    elapsed = time.monotonic() - t0
    assert rc == 0, f"master exit status {rc}"
    assert _all_gone(pids)
    # delivered before the exit, each once: a graceful stop re-sends nothing
    assert_delivered(orch, ids, timeout=0)
    assert set(results_by_id(orch)) == set(ids)
    shut = requests(orch, endpoint=EP_SHUTDOWN)
    assert sorted(r["instance_id"] for r in shut) == sorted(ids_w), \
        f"shutdown notices from {[r['instance_id'] for r in shut]}"
    # each worker notified only after its own results were delivered
    for r in shut:
        mine = orch.get_results(instance_id=r["instance_id"])
        if mine:
            assert r["time"] >= max(x["time"] for x in mine) - 0.05, \
                f"worker {r['instance_id']} said shutdown before its results"
    assert elapsed < 5.0 + 5.0 * SCALE


# --------------------------------------------------------------------------
# 5. backpressure

def test_backpressure_heartbeats_instead_of_polls(orch, agent):
    a = agent(server={"workers": 1},
              worker={"max_inflight": 1, "backpressure_heartbeat": 0.3})
    h = a.wait_ready(1)
    (wid,) = a.worker_ids(h)
    orch.set_faults(delay={"result": 3.0})
    ids = orch.enqueue([{}, {}])["operation_ids"]
    kick(orch)
    wait_until(lambda: requests(orch, endpoint=EP_RESULT), msg="a result PUT")
    time.sleep(0.2)                     # the fake has read the delay by now
    orch.set_faults(delay={"result": 0})
    res = wait_results(orch, ids[:1], timeout=DEADLINE)
    put = requests(orch, endpoint=EP_RESULT)[0]
    done = res[ids[0]][0]["time"]
    lo, hi = put["time"] + 0.1, done - 0.1
    assert hi - lo > 2.0
    gets = requests(orch, endpoint=EP_OPERATION, instance_id=wid,
                    since_time=lo, until_time=hi)
    beats = requests(orch, endpoint=EP_HEARTBEAT, instance_id=wid,
                     since_time=lo, until_time=hi)
    assert not gets, f"{len(gets)} GET operation while at max_inflight"
    assert len(beats) >= 4, \
        f"only {len(beats)} heartbeats in {hi - lo:.1f}s at max_inflight " \
        f"(backpressure_heartbeat 0.3)"
    assert all(b["method"] == "POST" and b["auth_ok"] for b in beats)
    # the second operation is fetched once there is room again
    assert_delivered(orch, ids)
    # no longer under backpressure: heartbeats stop
    time.sleep(0.5)
    n = len(requests(orch, endpoint=EP_HEARTBEAT))
    time.sleep(1.0)
    assert len(requests(orch, endpoint=EP_HEARTBEAT)) == n, \
        "heartbeats go on without backpressure"


# --------------------------------------------------------------------------
# 6. result retries

def test_result_put_retried_until_delivered(orch, agent):
    a = agent()
    a.wait_ready(2)
    orch.fail_next("result", 2, 500)
    (op_id,) = orch.enqueue({})["operation_ids"]
    kick(orch)
    res = wait_results(orch, [op_id])
    time.sleep(0.5)
    # a 500 is an answer: the orchestrator did not take the result
    assert_delivered(orch, [op_id])
    puts = requests(orch, endpoint=EP_RESULT)
    assert len(puts) == 3, f"{len(puts)} PUTs (expected 3)"
    assert [p["status"] for p in puts] == [500, 500, 200]
    assert {p["instance_id"] for p in puts} == {res[op_id][0]["instance_id"]}
    gap1 = puts[1]["time"] - puts[0]["time"]
    gap2 = puts[2]["time"] - puts[1]["time"]
    assert 0.8 <= gap1 < 1.0 + 2.0 * SCALE, f"first retry after {gap1:.2f}s"
    assert 1.6 <= gap2 < 2.0 + 2.0 * SCALE, f"second retry after {gap2:.2f}s"


def test_result_put_gives_up_after_three_tries(orch, agent):
    a = agent()
    h = a.wait_ready(2)
    orch.fail_next("result", 3, 503)
    (op_id,) = orch.enqueue({})["operation_ids"]
    kick(orch)
    wait_until(lambda: len(requests(orch, endpoint=EP_RESULT)) >= 3,
               msg="3 result PUTs")
    time.sleep(1.5)
    assert len(requests(orch, endpoint=EP_RESULT)) == 3, "more than 3 tries"
    assert orch.get_results(operation_id=op_id) == []
    a.wait_log(f"result for {op_id} not delivered")
    # the worker keeps serving
    ids = orch.enqueue([{}, {}])["operation_ids"]
    kick(orch)
    wait_results(orch, ids)
    assert a.worker_pids() == a.worker_pids(h)


# --------------------------------------------------------------------------
# heartbeat events: push_metrics

def test_push_metrics(orch, agent):
    a = agent()
    a.wait_ready(2)
    assert orch.wait_counts(SHORT, streams=1)
    master_id = a.status()["instance_id"]
    orch.set_faults(push_metrics=True)
    wait_until(lambda: requests(orch, endpoint="metrics"), timeout=SHORT,
               msg="a POST /api/v1/agent/metrics after heartbeat events "
                   "with push_metrics: true")
    orch.set_faults(push_metrics=False)
    time.sleep(0.3)
    m = requests(orch, endpoint="metrics")[0]
    assert m["method"] == "POST" and m["auth_ok"]
    assert m["instance_id"] == master_id, \
        "metrics are pushed by the master under its own instance ID"
    assert isinstance(m["body"], dict), m["body"]
    n = len(requests(orch, endpoint="metrics"))
    time.sleep(1.5)
    assert len(requests(orch, endpoint="metrics")) == n, \
        "metrics pushed without push_metrics"


# --------------------------------------------------------------------------
# 11. piggyback

def test_piggyback_next_operation(orch, agent):
    a = agent(server={"workers": 1}, worker={"max_inflight": 1})
    a.wait_ready(1)
    orch.set_faults(piggyback=True)
    mark = _seq(orch)
    ids = orch.enqueue([{} for _ in range(6)])["operation_ids"]
    kick(orch)
    wait_results(orch, ids)
    time.sleep(0.3)
    assert_delivered(orch, ids)
    taken = orch.get_taken()
    via = {t["operation_id"]: t["via"] for t in taken}
    assert set(via) == set(ids)
    assert sum(v == "piggyback" for v in via.values()) >= 5, taken
    # piggybacked operations need no GET: one GET answered 200 in all
    ok_gets = [r for r in orch.get_requests(endpoint=EP_OPERATION, since=mark)
               if r["status"] == 200]
    assert len(ok_gets) == 1, f"{len(ok_gets)} GET operation answered 200"


def test_piggyback_with_spare_capacity(orch, agent):
    a = agent()
    a.wait_ready(2)
    orch.set_faults(piggyback=True, delay={"operation": 0.3})
    ids = orch.enqueue([{} for _ in range(12)])["operation_ids"]
    kick(orch)
    wait_results(orch, ids)
    time.sleep(0.5)
    assert_delivered(orch, ids)
    via = [t["via"] for t in orch.get_taken()]
    assert "piggyback" in via, via


# --------------------------------------------------------------------------
# 12. size-exceeded operations

def test_size_exceeded_downloads_full_operation(orch, agent):
    a = agent()
    a.wait_ready(2)
    (op_id,) = orch.enqueue({"operation": {"trace_id": "trace-se", "pad": "x"},
                             "size_exceeded": True})["operation_ids"]
    kick(orch)
    res = wait_results(orch, [op_id])
    (r,) = res[op_id]
    assert r["result"].get("status") == "ok", r
    full = requests(orch, endpoint=EP_REQUEST)
    assert [f["path"] for f in full] == \
        [f"/api/v1/agent/operations/{op_id}/request"]
    assert full[0]["method"] == "GET" and full[0]["status"] == 200
    assert full[0]["instance_id"] == r["instance_id"]
    (put,) = requests(orch, endpoint=EP_RESULT)
    assert full[0]["seq"] < put["seq"]


def test_size_exceeded_download_fails(orch, agent):
    a = agent()
    a.wait_ready(2)
    # the full body is unknown to the orchestrator: 404 three times
    queue_raw(orch, {"operation_id": "ghost-1", "path": HEALTH_PATH,
                     "operation": {"__mcd_size_exceeded__": True}})
    kick(orch)
    res = wait_results(orch, ["ghost-1"])
    full = requests(orch, endpoint=EP_REQUEST)
    assert len(full) == 3, f"{len(full)} tries of .../request"
    (r,) = res["ghost-1"]
    assert "error" in r["result"], r
    a.check_alive()


# --------------------------------------------------------------------------
# 13. pushed operations

def test_pushed_operation(orch, agent):
    a = agent()
    h = a.wait_ready(2)
    workers = a.worker_ids(h)
    assert orch.wait_counts(SHORT, streams=1)
    rep = orch.push([{"operation": {"trace_id": f"p{i}"}} for i in range(4)])
    assert rep["delivered"] == 1
    res = wait_results(orch, rep["operation_ids"])
    for op_id in rep["operation_ids"]:
        (r,) = res[op_id]
        assert r["instance_id"] in workers
        assert r["result"].get("status") == "ok"
    taken = orch.get_taken()
    assert not [t for t in taken if t["operation_id"] in rep["operation_ids"]], \
        "pushed operations were fetched with GET"
    # least-loaded: both workers got some of a burst
    rep = orch.push([{} for _ in range(10)])
    res = wait_results(orch, rep["operation_ids"])
    senders = {res[i][0]["instance_id"] for i in rep["operation_ids"]}
    assert senders == workers, f"pushed burst served by {senders} only"
    assert_delivered(orch, [r["operation_id"] for r in orch.get_results()])


def test_pushed_operation_waits_for_a_ready_worker(orch, agent):
    orch.set_faults(fail={"operation": [100000, 503]})
    a = agent()
    assert orch.wait_counts(DEADLINE, streams=1)
    time.sleep(0.5)
    h = a.health()
    assert h["ready"] == 0, h
    rep = orch.push({})
    assert rep["delivered"] == 1
    (op_id,) = rep["operation_ids"]
    wait_until(lambda: a.status().get("pushed_waiting", 1) >= 1,
               timeout=SHORT, msg="the master to hold the pushed operation")
    time.sleep(0.5)
    assert orch.get_results() == []
    orch.set_faults(fail={"operation": 0})
    assert_delivered(orch, [op_id])
    a.wait_ready(2)


# --------------------------------------------------------------------------
# 14. rolling restarts under load

def test_hup_under_load_loses_nothing(orch, agent):
    a = agent()
    h = a.wait_ready(2)
    gen = h["generation"]
    ids, errors = [], []

    def feeder():
        try:
            for _ in range(20):
                ids.extend(orch.enqueue([{} for _ in range(5)])
                           ["operation_ids"])
                kick(orch)
                time.sleep(0.15)
        except Exception as e:          # reported by the main thread
            errors.append(e)

    t = threading.Thread(target=feeder, daemon=True)
    t.start()
    time.sleep(0.8)
    a.signal(signal.SIGHUP)
    a.wait_ready(2, generation=gen + 1)
    time.sleep(0.3)
    a.signal(signal.SIGHUP)
    t.join(DEADLINE)
    assert not t.is_alive() and not errors, errors
    assert len(ids) == 100
    a.wait_ready(2, generation=gen + 2)
    wait_results(orch, ids, timeout=DEADLINE)
    time.sleep(0.5)
    # a rolling restart stops the old workers gracefully: nothing twice
    assert_delivered(orch, ids)
    assert set(results_by_id(orch)) == set(ids)
    assert orch.state()["queue_length"] == 0
    assert all(r["result"].get("status") == "ok" for r in orch.get_results())


# --------------------------------------------------------------------------
# 401 from the orchestrator: no worker is ready until it is accepted

def test_unauthorized_means_not_ready(orch, agent):
    orch.set_faults(auth_fail=True)
    a = agent(orchestrator={"poll_interval": 0.5})
    time.sleep(1.5)
    h = a.health()
    assert h["ready"] == 0 and h["status"] == "down", h
    orch.set_faults(auth_fail=False)
    a.wait_ready(2)
    assert TOKEN_ID == orch.token_id


def test_reload_without_orchestrator_keeps_running(orch, agent):
    """A reload that removes orchestrator.url: workers run standalone."""
    a = agent()
    a.wait_ready(2)
    a.write_config({"orchestrator": {"url": ""}})
    a.signal(signal.SIGHUP)
    a.wait_ready(2, generation=2)
    st = a.status()
    assert st["ok"] is True and st["orchestrator"] == "", st
    a.check_alive()
