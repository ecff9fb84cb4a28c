"""Chaos on the process model, under load, on loopback (issue 7, item 4).

The real egressd runs against the fake orchestrator while a feeder thread
keeps the fake's queue full (health operations with a few slower command
ones mixed in), and the test does something rude to the processes:

  - kills workers with SIGKILL at random (test_long_kill9_workers_under_load);
  - stops the master with SIGSTOP for longer than server.worker_timeout,
    then lets it go on (test_master_sigstop_under_load);
  - sends 100 HUPs in a row, some back to back
    (test_long_hup_storm_under_load);
  - says goodbye in the middle of a rolling restart
    (test_goodbye_during_rolling_restart).

Afterwards the delivery rule holds (DESIGN section 4, docs/OPERATIONS.md
"Delivery", checked by delivery.assert_delivered): every operation is
reported; one whose GET answer died with a SIGKILLed worker before the worker
made it an agent process is handed out again by the fake orchestrator after
the shutdown notice the master sends for that worker; a second report is the
same result, and a re-send the agent counted and logged.  The database (read
with sqlite3) is the other witness: every operation reported became an agent
process, and the result names that process's pid.

The long tests are named test_long_* (select them with -k long).  Their
durations scale with EGRESSD_CHAOS_SCALE (float, default 1.0; CI runs the
sanitizer build with a smaller one), never below a few seconds.  Every wait
is bounded and every process is stopped by the agent fixture.
"""

import os
import random
import signal
import threading
import time

import pytest

from proto_helpers import orch, agent, kick, results_by_id  # noqa: F401
from common import (DEADLINE, SCALE, SHORT, children_of, db_count, db_query,
                    pid_alive, sigkill, wait_until)
from delivery import assert_delivered, counted, wait_reported
from test_agent_processes import COMMAND, SLEEP_COMMANDS
from test_reload import _HoldWriteLock

CHAOS_SCALE = float(os.environ.get("EGRESSD_CHAOS_SCALE", "1") or "1")
SETTLE = DEADLINE * 3           # for a loaded daemon to drain its work


def chaos_seconds(base, minimum=4.0):
    """A chaos phase's length: base seconds times EGRESSD_CHAOS_SCALE."""
    return max(minimum, base * CHAOS_SCALE)


# --------------------------------------------------------------------------
# load

class Feeder(threading.Thread):
    """Keeps the fake orchestrator's queue fed until stop(): whenever fewer
    than `low` operations wait, it enqueues a batch (about one in
    `slow_every` a command that sleeps) and kicks the agent.  Every id it
    enqueued is in .ids."""

    def __init__(self, orch, batch=20, low=20, slow_every=8, seed=1):
        super().__init__(daemon=True)
        self.orch = orch
        self.batch = batch
        self.low = low
        self.slow_every = slow_every
        self.rng = random.Random(seed)
        self.ids = []
        self.batches = 0
        self.error = None
        self._stop_ev = threading.Event()

    def _ops(self):
        ops = []
        for _ in range(self.batch):
            if self.slow_every and self.rng.randrange(self.slow_every) == 0:
                secs = self.rng.choice(("0.1", "0.2", "0.3"))
                ops.append({"path": COMMAND, "operation": {
                    "name": "sleep", "args": {"secs": secs}}})
            else:
                ops.append({"operation": {"chaos": True}})
        return ops

    def run(self):
        try:
            while not self._stop_ev.wait(0.05):
                with self.orch.lock:
                    waiting = len(self.orch.queue)
                if waiting >= self.low:
                    continue
                self.ids += self.orch.enqueue(self._ops())["operation_ids"]
                self.batches += 1
                kick(self.orch)
        except Exception as e:      # re-raised by stop()
            self.error = e

    def stop(self):
        self._stop_ev.set()
        self.join(SHORT)
        assert not self.is_alive(), "the feeder thread did not stop"
        if self.error is not None:
            raise self.error
        return list(self.ids)


# --------------------------------------------------------------------------
# checks

def queue_length(orch):
    with orch.lock:
        return len(orch.queue)


def wait_settled(a, orch, ids, timeout=SETTLE):
    """Wait until every operation in ids is reported, the queue is empty,
    no agent process is live and the outbox is empty."""
    wait_reported(orch, ids, timeout)

    def settled():
        live = db_count(a.state_dir, "SELECT count(*) FROM processes "
                        "WHERE ended_at IS NULL")
        outbox = db_count(a.state_dir, "SELECT count(*) FROM outbox")
        return live == 0 and outbox == 0 and queue_length(orch) == 0
    wait_until(settled, timeout, interval=0.2, msg="all work settled")


def result_pid(result):
    """The agent pid a result names (health: agent_pid, errors: pid)."""
    if not isinstance(result, dict):
        return None
    return result.get("agent_pid", result.get("pid"))


def killed_instances(a, killed_pids):
    """Instance IDs (workers table) of the worker pids the test killed."""
    if not killed_pids:
        return set()
    rows = db_query(a.state_dir, "SELECT instance_id, pid FROM workers")
    return {iid for iid, pid in rows if pid in killed_pids}


def check_delivered(a, orch, ids, killed_pids=(), killed_iids=()):
    """After the work settled: the delivery rule for every operation in ids
    (delivery.assert_delivered, against the re-sends the agent counted);
    an operation handed out more than once was handed out again after the
    shutdown notice of a worker the test killed (named by pid, looked up
    in the workers table: one killed before the master heard its HELLO,
    and by instance ID); and the database agrees.  Return (handed out
    again, reported twice) counts."""
    wait_settled(a, orch, ids)
    time.sleep(1.5)     # a second delivery would come with the next sweep
    extra = assert_delivered(orch, ids, allowed_dups=counted(a))
    killed = killed_instances(a, set(killed_pids)) | set(killed_iids)
    res = results_by_id(orch)
    spawned = dict(db_query(a.state_dir, "SELECT operation_id, pid FROM "
                            "processes WHERE parent_pid IS NULL AND "
                            "operation_id IS NOT NULL"))
    taken = {}
    for t in orch.get_taken():
        taken.setdefault(t["operation_id"], []).append(t["instance_id"])
    requeued = {}
    for r in orch.get_requeued():
        requeued.setdefault(r["operation_id"], []).append(r["instance_id"])
    problems = []
    for op in ids:
        takers = taken.get(op, [])
        if not takers:
            problems.append(f"{op}: reported but never handed out")
        elif takers[:-1] != requeued.get(op, [])[:len(takers) - 1] or \
                not set(takers[:-1]) <= killed:
            problems.append(f"{op}: handed to {takers}, re-queued by the "
                            f"notices of {requeued.get(op, [])}, of which "
                            f"the test killed "
                            f"{sorted(set(takers[:-1]) & killed)}")
        if op not in spawned:
            problems.append(f"{op}: reported but no agent process: "
                            f"{res[op][0]['result']}")
            continue
        first = res[op][0]["result"]
        if result_pid(first) is not None and result_pid(first) != \
                spawned[op]:
            problems.append(f"{op}: result names pid {result_pid(first)}, "
                            f"the database {spawned[op]}")
    assert not problems, f"{len(problems)} of {len(ids)} operations: " \
        + "; ".join(problems[:20])
    unknown = set(res) - set(ids)
    assert not unknown, f"results for operations never queued: {unknown}"
    return sum(len(v) for v in requeued.values()), sum(extra.values())


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return None


def same_cmdline(pid):
    """Live pids whose command line is pid's (the master and its forked,
    never exec'd, workers), pid included."""
    mine = cmdline(pid)
    out = set()
    for name in os.listdir("/proc"):
        if name.isdigit() and pid_alive(int(name)) and \
                cmdline(int(name)) == mine:
            out.add(int(name))
    return out


def assert_no_strays(a, worker_pids):
    """The master's children are exactly worker_pids, no other process runs
    its command line (config under the test's directory), and every worker
    it ever had is gone."""
    master = a.pid
    kids = {p for p in children_of(master) if pid_alive(p)}
    assert kids == set(worker_pids), \
        f"master {master} children {sorted(kids)}, workers " \
        f"{sorted(worker_pids)}"
    procs = same_cmdline(master)
    assert procs == {master} | set(worker_pids), \
        f"processes running {cmdline(master)!r}: {sorted(procs)}"
    a.note_children()
    old = [p for p in a.known_pids - set(worker_pids) if pid_alive(p)]
    assert not old, f"earlier workers still alive: {old}"


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise ValueError("no VmRSS")


# --------------------------------------------------------------------------
# 1. SIGKILL random workers under load

def test_long_kill9_workers_under_load(orch, agent):
    """LONG: 60 s (scaled) of SIGKILLs to random workers while the queue
    is kept full; every operation reported, by the delivery rule."""
    a = agent(server={"workers": 3, "min_uptime": 0.1},
              orchestrator={"poll_interval": 0.3},
              operations={"command": SLEEP_COMMANDS})
    a.wait_ready(3)
    feeder = Feeder(orch)
    feeder.start()
    rng = random.Random(11)
    killed, killed_iids = set(), set()
    deadline = time.monotonic() + chaos_seconds(60.0)
    try:
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(0.3, 0.9))
            a.check_alive()
            ws = a.health()["workers"]
            if ws:
                victim = rng.choice(ws)
                sigkill(victim["pid"])
                killed.add(victim["pid"])
                killed_iids.add(victim.get("instance_id"))
    finally:
        ids = feeder.stop()

    def replaced():
        h = a.wait_ready(3, timeout=DEADLINE * 2)
        return h if not a.worker_ids(h) & killed_iids else None
    wait_until(replaced, DEADLINE * 2, msg="3 workers none of them killed")
    again, dups = check_delivered(a, orch, ids, killed, killed_iids)
    assert len(killed) >= 4 and len(ids) >= 100, (len(killed), len(ids))
    assert not a.worker_ids() & killed_iids
    print(f"{len(ids)} operations, {len(killed)} workers killed, "
          f"{again} handed out again, {dups} reported twice")


# --------------------------------------------------------------------------
# 2. SIGSTOP the master under load

def test_master_sigstop_under_load(orch, agent):
    """The master stopped for 3 x server.worker_timeout: the workers go
    on serving, and once it continues it supervises again without killing
    a worker for the heartbeats it could not read while stopped."""
    timeout = 2.0 * SCALE
    a = agent(server={"workers": 2, "worker_timeout": timeout,
                      "min_uptime": 0.1},
              store={"busy_timeout": 1.0},
              orchestrator={"poll_interval": 0.3},
              operations={"command": SLEEP_COMMANDS})
    h0 = a.wait_ready(2)
    before = {w["pid"]: w["instance_id"] for w in h0["workers"]}
    feeder = Feeder(orch)
    feeder.start()
    stopped_for = max(3 * timeout, chaos_seconds(8.0))
    killed = set()
    try:
        wait_until(lambda: len(orch.get_results()) >= 20, SHORT,
                   msg="the load to run")
        mark = len(a.log())
        t_stop = time.time()
        a.signal(signal.SIGSTOP)
        try:
            time.sleep(stopped_for)
            t_cont = time.time()
        finally:
            a.signal(signal.SIGCONT)
        during = [r for r in orch.get_results()
                  if t_stop + 1.0 <= r["time"] <= t_cont]
        assert during, "no result arrived while the master was stopped"
        assert {r["instance_id"] for r in during} <= set(before.values())

        # Supervision resumes: the same workers, none timed out.
        h = a.wait_ready(2)
        assert {w["pid"]: w["instance_id"] for w in h["workers"]} == before
        time.sleep(timeout + 1.0)   # a late liveness verdict would show
        h = a.wait_ready(2)
        assert a.worker_pids(h) == set(before)
        log = a.log()[mark:]
        assert "sending SIGABRT" not in log and "SIGKILL" not in log, \
            log[-3000:]
        assert all(pid_alive(p) for p in before)

        # ... and a worker killed now is replaced.
        victim = sorted(before)[0]
        sigkill(victim)
        killed.add(victim)

        def replaced():
            h = a.wait_ready(2)
            return h if victim not in a.worker_pids(h) else None
        h = wait_until(replaced, DEADLINE,
                       msg="the killed worker's replacement")
        assert h["ready"] == h["target"] == 2
        assert a.worker_pids(h) - set(before), h
    finally:
        ids = feeder.stop()
    again, dups = check_delivered(a, orch, ids, killed,
                                  {before[p] for p in killed})
    print(f"stopped {stopped_for:.1f}s, {len(during)} results meanwhile; "
          f"{len(ids)} operations, {again} handed out again, {dups} twice")


# --------------------------------------------------------------------------
# 3. 100 HUPs in a row

def hup_storm(a, count, rng):
    """count HUPs, 20-50 ms apart, with a run of back-to-back ones every
    tenth."""
    sent = 0
    while sent < count:
        burst = 3 if sent % 10 == 9 else 1
        for _ in range(min(burst, count - sent)):
            a.signal(signal.SIGHUP)
            sent += 1
        time.sleep(rng.uniform(0.02, 0.05))
    return sent


def settled_master(a, n, generation):
    """Wait until n workers of generation are ready and the master has
    nothing else: its children are exactly those workers."""
    def ok():
        h = a.wait_ready(n, generation=generation)
        pids = a.worker_pids(h)
        kids = {p for p in children_of(a.pid) if pid_alive(p)}
        st = a.status()
        return h if kids == pids and st["state"] == "running" else None
    return wait_until(ok, DEADLINE * 2, interval=0.2,
                      msg=f"{n} workers of generation {generation} alone")


def sanitized(pid):
    """Whether pid runs with AddressSanitizer (the shared runtime)."""
    with open(f"/proc/{pid}/maps") as f:
        return "libasan" in f.read()


def master_fds_rss(a):
    return fd_count(a.pid), rss_kib(a.pid)


def test_long_hup_storm_under_load(orch, agent):
    """LONG: 100 HUPs in a row under load: N workers of the newest
    generation, no fd or memory growth in the master, no stray process,
    every operation reported, by the delivery rule."""
    n = 3
    a = agent(server={"workers": n, "graceful_timeout": 5.0},
              orchestrator={"poll_interval": 0.3},
              operations={"command": SLEEP_COMMANDS})
    a.wait_ready(n)
    rng = random.Random(5)
    # Warm up (allocator, libcurl, log buffers) with a few reloads, then
    # take the baseline once the master has settled.
    for _ in range(3):
        a.signal(signal.SIGHUP)
        time.sleep(0.05)
    gen = a.status()["generation"]
    settled_master(a, n, gen)
    time.sleep(0.5)
    fds0, rss0 = master_fds_rss(a)

    feeder = Feeder(orch)
    feeder.start()
    try:
        mark = len(a.log())
        storms = max(1, round(CHAOS_SCALE))
        for _ in range(storms):
            hup_storm(a, 100, rng)
            time.sleep(0.2)
        sent = 100 * storms
        # HUPs that arrive together may be one signal: the master sees
        # between 1 and `sent` of them, and each it sees is one reload.
        def reloads():
            return a.log()[mark:].count("SIGHUP: reloading")
        wait_until(lambda: a.status()["generation"] == gen + reloads(),
                   DEADLINE, msg="every HUP taken")
        gen_after = a.status()["generation"]
        assert gen < gen_after <= gen + sent, (gen, gen_after, sent)
        h = settled_master(a, n, gen_after)
        assert {w["generation"] for w in h["workers"]} == {gen_after}
    finally:
        ids = feeder.stop()
    check_delivered(a, orch, ids)

    h = settled_master(a, n, gen_after)
    assert_no_strays(a, a.worker_pids(h))
    # fds: back to the baseline once transient ones (control connections,
    # a reconnecting stream) are closed.
    wait_until(lambda: fd_count(a.pid) <= fds0, DEADLINE,
               msg=f"the master's fds back to {fds0} (now "
                   f"{fd_count(a.pid)})")
    fds1, rss1 = master_fds_rss(a)
    # AddressSanitizer's quarantine keeps freed memory resident; there
    # LeakSanitizer (at exit, checked by the fixture) stands in.
    if not sanitized(a.pid):
        assert rss1 - rss0 < 1024, f"master RSS grew {rss0} -> {rss1} KiB"
    print(f"{sent} HUPs, {gen_after - gen} reloads, fds {fds0} -> {fds1}, "
          f"RSS {rss0} -> {rss1} KiB, {len(ids)} operations")


# --------------------------------------------------------------------------
# 4. goodbye in the middle of a rolling restart

@pytest.mark.parametrize("on_goodbye", ["restart", "exit"])
def test_goodbye_during_rolling_restart(orch, agent, on_goodbye):
    """HUP with the new generation held back at boot, then goodbye with
    operations in flight: each one reported once, then server.on_goodbye
    decides: fresh workers of a new generation, or the master's exit 0;
    no stray process either way."""
    n = 2
    a = agent(server={"workers": n, "on_goodbye": on_goodbye,
                      "graceful_timeout": 5.0},
              orchestrator={"poll_interval": 0.3},
              operations={"command": SLEEP_COMMANDS})
    h0 = a.wait_ready(n)
    old_iids = a.worker_ids(h0)

    slow = orch.enqueue([{"path": COMMAND, "operation": {
        "name": "sleep", "args": {"secs": "1.5"}}} for _ in range(3)])[
        "operation_ids"]
    quick = orch.enqueue([{} for _ in range(10)])["operation_ids"]
    kick(orch)
    wait_until(lambda: {t["operation_id"] for t in orch.get_taken()} >=
               set(slow), SHORT, msg="the slow operations taken")

    hold = _HoldWriteLock(a.state_dir, 2.0, lambda: a.health())
    hold.start()
    a.signal(signal.SIGHUP)
    wait_until(lambda: a.status()["state"] == "reloading", SHORT,
               msg="the rolling restart to begin")
    mid = a.health()
    assert len(mid["workers"]) > n, \
        f"no new worker booting mid-roll: {mid}"
    live = db_count(a.state_dir, "SELECT count(*) FROM processes WHERE "
                    "ended_at IS NULL AND parent_pid IS NULL")
    a.note_children()
    more = orch.enqueue([{} for _ in range(5)])["operation_ids"]
    mark = len(a.log())
    assert orch.goodbye("chaos")["delivered"] >= 1
    assert hold.released.wait(DEADLINE)
    assert isinstance(hold.at_release, dict), hold.at_release

    ids = slow + quick + more
    if on_goodbye == "exit":
        assert a.wait_exit(DEADLINE) == 0
        # the master is gone: its workers must be too
        strays = [p for p in a.known_pids if pid_alive(p)]
        assert not strays, f"workers outlived the master: {strays}"
        assert "exiting once the workers are gone" in a.log()[mark:]
        assert not os.path.exists(a.pidfile), "pidfile left behind"
        # What was taken was reported, once (no worker died: nothing is
        # re-sent); what was not stays queued.
        taken = {t["operation_id"] for t in orch.get_taken()}
        assert_delivered(orch, [op for op in ids if op in taken],
                         allowed_dups=0, timeout=0)
        res = results_by_id(orch)
        assert not [op for op in ids if op not in taken and op in res]
        assert set(slow) <= taken
        assert not db_count(a.state_dir, "SELECT count(*) FROM outbox")
        assert not db_count(a.state_dir, "SELECT count(*) FROM processes "
                            "WHERE ended_at IS NULL")
    else:
        # goodbye bumps the generation past the HUP's (2): 3
        h = a.wait_ready(n, generation=3, exclude_ids=old_iids,
                         timeout=DEADLINE * 2)
        assert a.status()["generation"] == 3
        check_delivered(a, orch, ids)
        h = settled_master(a, n, 3)
        assert_no_strays(a, a.worker_pids(h))
        assert not a.worker_ids(h) & old_iids
    # every ready worker of the first generation told the orchestrator
    shut = {r["instance_id"] for r in orch.get_requests(endpoint="shutdown")}
    assert old_iids <= shut, (old_iids, shut)
    print(f"goodbye ({on_goodbye}) mid-roll with {live} operations "
          f"live; {len(ids)} operations")


# --------------------------------------------------------------------------
# 5. a SIGKILLed worker's commands do not outlive it

def sleep_children(pid):
    return [c for c in children_of(pid)
            if (cmdline(c) or b"").startswith(b"/bin/sleep\0")]


def test_killed_worker_takes_its_command_along(orch, agent):
    """A command runs under its worker's supervision (timeout, output
    cap): when the worker is SIGKILLed, the command must not run on
    unsupervised."""
    a = agent(server={"workers": 1},
              operations={"command": SLEEP_COMMANDS})
    (wpid,) = a.worker_pids(a.wait_ready(1))
    (op,) = orch.enqueue({"path": COMMAND, "operation": {
        "name": "sleep", "args": {"secs": "30"}}})["operation_ids"]
    kick(orch)
    (child,) = wait_until(lambda: sleep_children(wpid), SHORT,
                          msg="the command's process")
    sigkill(wpid)
    try:
        wait_until(lambda: not pid_alive(child), SHORT,
                   msg=f"the command (pid {child}) to end with its worker")
    finally:
        sigkill(child)
    r = wait_until(lambda: orch.get_results(operation_id=op), DEADLINE,
                   msg="the operation's result")
    assert len(r) == 1 and r[0]["result"]["error_type"] == "internal", r
