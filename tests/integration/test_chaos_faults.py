"""Bounded fault tests on loopback (issue 7, item 4: faults).

egressd runs as real processes against the fake orchestrator while one thing
goes wrong at a time:

- its state_dir (the SQLite database files) is on a tmpfs that fills up;
- an external writer holds the write lock of every database file;
- the orchestrator answers every request with 500 for a while;
- the control socket is flooded with junk and idle connections.

Each test asserts what the daemon must still do: no crash, no spin, every
accepted operation reported exactly once, a clear log line, recovery once
the fault is gone.

EGRESSD_CHAOS_SCALE (float, default 1) scales the long fault durations (CI
runs the sanitizer build with a smaller one); each has a floor of a few
seconds.  EGRESSD_TEST_TIMEOUT_SCALE stretches the deadlines as everywhere.
"""

import errno
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import (Control, binary, cpu_seconds, db_files,  # noqa: E402
                    db_query, render_config)
from proto_helpers import (  # noqa: E402
    EP_OPERATION, EP_RESULT, EP_STREAM, SCALE, SHORT, kick,
    pid_alive, requests, wait_results, wait_until)
from delivery import assert_delivered  # noqa: E402
from proto_helpers import agent, orch, workdir  # noqa: E402,F401 (fixtures)

CHAOS = float(os.environ.get("EGRESSD_CHAOS_SCALE", "1") or "1")
HEALTH = "/api/v1/test/health"
COMMAND = "/api/v1/agent/execute/command"
POLL_INTERVAL = 1.0
OUTBOX_DEADLINE = 60.0 * SCALE

# A slow command, so some operations are in flight when a fault starts.
OPERATIONS = """operations: {
  command: {
    enabled = true;
    commands = (
      { name = "nap"; argv = [ "/bin/sleep", "{secs}" ]; timeout = 30.0; }
    );
  };
};
"""


def chaos(seconds, floor):
    """A fault duration: seconds * EGRESSD_CHAOS_SCALE, at least floor."""
    return max(floor, seconds * CHAOS)


# --------------------------------------------------------------------------
# helpers

def start_agent(agent, **sections):
    """egressd with the command handler on (the operations section is a
    list of groups, appended as text)."""
    a = agent(start=False, **sections)
    with open(a.config, "w") as f:
        f.write(render_config(a.cfg, OPERATIONS))
    a.start()
    return a


def nap(secs):
    return {"path": COMMAND, "operation": {"name": "nap",
                                           "args": {"secs": str(secs)}}}


def outbox_rows(state_dir):
    """The operation IDs in the outbox of every database file."""
    return [r[0] for r in db_query(state_dir,
                                   "SELECT operation_id FROM outbox")]


def wait_outbox_empty(state_dir, timeout=OUTBOX_DEADLINE):
    wait_until(lambda: not outbox_rows(state_dir), timeout,
               msg=f"the outbox in {state_dir} to be empty")


def assert_delivered_once(orch, op_ids):
    """The delivery rule with no re-send allowed (no worker dies here and
    every injected failure is an answer), so exactly one recorded result per
    operation; and exactly one acknowledged result PUT, and none after it."""
    assert_delivered(orch, op_ids, allowed_dups=0, timeout=0)
    puts = {}
    for r in requests(orch, endpoint=EP_RESULT):
        op_id = r["path"].split("/")[-2]
        puts.setdefault(op_id, []).append(r)
    for op_id in op_ids:
        mine = puts.get(op_id, [])
        ok = [p for p in mine if p["status"] and 200 <= p["status"] < 300]
        assert len(ok) == 1, \
            f"{op_id}: {len(ok)} acknowledged PUTs of {len(mine)}"
        assert mine[-1]["seq"] == ok[0]["seq"], \
            f"{op_id}: result sent again after it was acknowledged"
    assert orch.state()["duplicate_results"] == 0


def assert_no_spin(a, seconds):
    """Over seconds of wall time, no egressd process used more than half a
    CPU (a busy loop uses all of one)."""
    pids = [a.pid] + sorted(a.worker_pids())
    before = {p: cpu_seconds(p) for p in pids}
    t0 = time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - t0
    for p in pids:
        if not pid_alive(p):
            continue
        used = cpu_seconds(p) - before[p]
        assert used < 0.5 * wall, \
            f"pid {p} used {used:.2f}s of CPU in {wall:.2f}s: spinning"


def egressctl(a, *args):
    return subprocess.run([binary("EGRESSCTL_BIN"), "-c", a.config]
                          + list(args), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=SHORT)


def live_processes(state_dir):
    """Agent processes not ended, of every database file, read-only."""
    return db_query(state_dir, "SELECT pid, operation_id, status FROM "
                    "processes WHERE ended_at IS NULL")


def check_result(op_id, result):
    """A result delivered during or after a database outage: the
    operation's own, or the clear error of one whose agent process the
    database refused to create."""
    if "error" not in result:
        return "ok"
    assert result.get("error_type") == "internal", (op_id, result)
    assert "database is unavailable" in result["error"], (op_id, result)
    return "refused"


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def settled_fd_count(pid):
    """pid's descriptors once the last control connection is closed (the
    master notices a client's close a moment after the client)."""
    counts = []
    for _ in range(5):
        time.sleep(0.1)
        counts.append(fd_count(pid))
    return min(counts)


# --------------------------------------------------------------------------
# 1. the state_dir on a full file system

TMPFS_SIZE = "2m"


@pytest.fixture
def small_tmpfs():
    """A 2 MiB tmpfs mounted on a fresh directory, unmounted at teardown
    (after the agent fixture's teardown: request it first).  Skipped where
    mounting is not permitted (not root, no CAP_SYS_ADMIN)."""
    d = tempfile.mkdtemp(prefix="egchaos-fs-", dir="/tmp")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o",
                        f"size={TMPFS_SIZE},mode=0700", "tmpfs", d],
                       capture_output=True, text=True, timeout=SHORT)
    if r.returncode != 0:
        os.rmdir(d)
        pytest.skip(f"cannot mount a tmpfs here (needs root or "
                    f"CAP_SYS_ADMIN): {r.stderr.strip()}")
    try:
        yield d
    finally:
        deadline = time.monotonic() + SHORT
        while subprocess.run(["umount", d], capture_output=True,
                             timeout=SHORT).returncode != 0:
            if time.monotonic() >= deadline:
                # still busy: detach it, so nothing stays mounted
                subprocess.run(["umount", "-l", d], timeout=SHORT)
                break
            time.sleep(0.2)
        os.rmdir(d)


def fill(directory):
    """Fill the file system of directory with one file; return its path."""
    path = os.path.join(directory, "filler")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (65536, 4096, 1):
            chunk = b"\0" * size
            while True:
                try:
                    if os.write(fd, chunk) == 0:
                        break
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    st = os.statvfs(directory)
    assert st.f_bavail == 0, f"{directory} not full: {st}"
    return path


def test_state_dir_full(small_tmpfs, orch, agent):
    """The file system under the database fills up while egressd runs:
    operations go on being answered (their own result, or a clear error
    when no agent process could be recorded), results the outbox could not
    take and the orchestrator rejected wait in memory and are delivered
    later, nothing spins, the log says the disk is full; once there is
    room again, operations run, the late exits are written and every
    result was delivered exactly once."""
    a = start_agent(agent, server={"workers": 2, "state_dir": small_tmpfs},
                    orchestrator={"poll_interval": POLL_INTERVAL})
    h = a.wait_ready(2)
    pids = a.worker_pids(h)
    state = a.state_dir
    files = db_files(state)
    assert files and all(p.startswith(small_tmpfs) for p in files), files
    before = orch.enqueue([{} for _ in range(3)])["operation_ids"]
    kick(orch)
    res = wait_results(orch, before)
    assert all(res[i][0]["result"].get("status") == "ok" for i in before)
    # slow operations whose ends fall in the outage
    slow = orch.enqueue([nap(2), nap(2)])["operation_ids"]
    kick(orch)
    wait_until(lambda: len(live_processes(state)) == 2,
               msg="2 agent processes running")

    at = len(a.log())
    filler = fill(small_tmpfs)
    # the orchestrator rejects results too for a while: what the outbox
    # could not take waits in memory
    orch.set_faults(fail={EP_RESULT: [1000000, 500]})
    during = orch.enqueue([{} for _ in range(6)] + [nap(0), nap(0)])[
        "operation_ids"]
    kick(orch)
    a.wait_log("and not in the outbox; kept in memory", start=at)
    assert_no_spin(a, 2.0)
    orch.set_faults(fail={EP_RESULT: 0})
    res = wait_results(orch, slow + during)
    kinds = {i: check_result(i, res[i][0]["result"])
             for i in slow + during}
    print("while full:", kinds)
    assert os.statvfs(small_tmpfs).f_bavail == 0, "space came back"
    a.check_alive()
    hh = a.health()
    assert hh["status"] in ("healthy", "degraded"), hh
    log = a.log()[at:]
    for op_id in [i for i in during if kinds[i] == "refused"]:
        assert f"operation {op_id}: agent process not created: database " \
            "or disk is full" in log, op_id
        # Its error result is small: it may still fit where a process did
        # not (which writes a full disk lets through is SQLite's choice).
        assert f"outbox: result for {op_id} not stored (database or disk " \
            "is full)" in log or f"result for {op_id} not delivered after " \
            "3 tries (HTTP 500); kept in the outbox" in log, op_id
    assert "exit not recorded (database or disk is full); retrying" in log

    # space again: new operations run, the outage's leftovers are written
    os.unlink(filler)
    after = orch.enqueue([{} for _ in range(4)] + [nap(0)])["operation_ids"]
    kick(orch)
    res = wait_results(orch, after)
    assert all("error" not in res[i][0]["result"] for i in after), res
    wait_outbox_empty(state)
    wait_until(lambda: not live_processes(state), OUTBOX_DEADLINE,
               msg="every agent process recorded as ended")
    time.sleep(2.5 * POLL_INTERVAL)
    ids = before + slow + during + after
    assert_delivered_once(orch, ids)
    assert len(orch.get_results()) == len(ids)
    assert a.worker_pids() == pids, "a worker was replaced"
    assert "exit recorded late" in a.log()[at:]
    assert db_query(state, "PRAGMA integrity_check") == \
        [("ok",)] * len(db_files(state))
    a.check_alive()


def assert_refused_to_start(a, state_dir):
    """egressd exits at once with a start-up error naming the database and
    the full disk, and leaves no pidfile, socket or worker behind."""
    rc = a.wait_exit()
    assert rc == 1, f"exit status {rc}"
    err = a.stderr()
    line = [ln for ln in err.splitlines() if "egressd.db" in ln]
    assert line, err
    assert state_dir in line[0], line
    assert "database or disk is full" in line[0] or \
        "No space left on device" in line[0], line
    assert line[0].split(": ", 1)[1] in a.log(), "not in the log file"
    assert "spawned worker" not in a.log()
    assert not os.path.exists(a.pidfile)
    assert not os.path.exists(a.sock)


def serve_a_few(orch, a):
    a.wait_ready(2)
    ids = orch.enqueue([{}, {}, nap(0)])["operation_ids"]
    kick(orch)
    res = wait_results(orch, ids)
    assert all("error" not in res[i][0]["result"] for i in ids), res
    return ids


def test_start_on_full_state_dir(small_tmpfs, orch, agent):
    """Start-up on a full state_dir is refused with a clear error (exit 1),
    with or without a database there already; once there is room, the same
    state_dir works."""
    conf = {"server": {"workers": 2, "state_dir": small_tmpfs},
            "orchestrator": {"poll_interval": POLL_INTERVAL}}
    # no database yet: it cannot be created
    filler = fill(small_tmpfs)
    assert_refused_to_start(start_agent(agent, **conf), small_tmpfs)
    os.unlink(filler)
    a = start_agent(agent, **conf)
    ids = serve_a_few(orch, a)
    a.signal(signal.SIGTERM)
    assert a.wait_exit() == 0
    # a database there: its WAL and shared memory cannot be created
    filler = fill(small_tmpfs)
    assert_refused_to_start(start_agent(agent, **conf), small_tmpfs)
    os.unlink(filler)
    b = start_agent(agent, **conf)
    ids += serve_a_few(orch, b)
    wait_outbox_empty(b.state_dir)
    assert_delivered_once(orch, ids)
    b.check_alive()


# --------------------------------------------------------------------------
# 2. the database write-locked by another process

class Locker:
    """Another process's connections holding the write lock of every
    database file (BEGIN EXCLUSIVE on a WAL database: writers wait, readers
    go on); every file, so that each worker meets the lock whatever file
    its slot writes (store.files)."""

    def __init__(self, state_dir):
        self.cons = []
        try:
            for path in db_files(state_dir):
                self.cons.append(sqlite3.connect(path, timeout=30,
                                                 isolation_level=None))
        except BaseException:
            self.close()
            raise
        assert self.cons, f"no database file in {state_dir}"

    def lock(self):
        for con in self.cons:
            con.execute("BEGIN EXCLUSIVE")
            # a write, so the lock is surely the writer's lock
            con.execute("PRAGMA user_version")

    def release(self):
        for con in self.cons:
            if con.in_transaction:
                con.execute("ROLLBACK")

    def close(self):
        try:
            self.release()
        finally:
            for con in self.cons:
                con.close()


def test_database_locked_by_external_writer(orch, agent):
    """Another process holds the write lock for 10 s while operations keep
    coming: each SQLite call of a worker waits busy_timeout (a fifth of
    the hold, so the waits do not end just as the lock does) and gives up,
    several in a row, longer together than worker_timeout.  No worker is
    taken for hung (the master's health stays healthy or degraded, never
    down), every operation is reported exactly once, exits refused
    meanwhile are recorded late, and readers (egressctl ps, the master's
    health) never wait."""
    hold = chaos(10.0, 4.0)
    # A few waits in a row fit in the hold, so some calls are refused (an
    # exit, a spawn) and others succeed after it; together they outlast
    # worker_timeout.
    busy = round(0.2 * hold, 1)
    a = start_agent(agent, server={"workers": 2,
                                   "worker_timeout": max(4.0, 2 * busy + 0.5)},
                    store={"busy_timeout": busy},
                    orchestrator={"poll_interval": POLL_INTERVAL})
    h = a.wait_ready(2)
    pids = a.worker_pids(h)
    state = a.state_dir
    # slow operations running when the lock is taken: their exits fall in it
    ids = orch.enqueue([nap(1) for _ in range(4)])["operation_ids"]
    kick(orch)
    wait_until(lambda: len(live_processes(state)) == 4,
               msg="4 agent processes running")
    at = len(a.log())
    locker = Locker(state)
    try:
        locker.lock()
        t_lock = time.monotonic()
        time.sleep(1.5)                 # the naps end, their exits wait
        ps = egressctl(a, "ps")
        while time.monotonic() - t_lock < hold:
            ids += orch.enqueue([{}, nap(0)])["operation_ids"]
            kick(orch)
            rep = a.health()            # the master does not wait
            assert rep["status"] in ("healthy", "degraded"), rep
            time.sleep(0.5)
        assert len(live_processes(state)) >= 1   # reads go on meanwhile
        locker.release()
    finally:
        locker.close()
    # a writer does not block readers in WAL mode: ps lists the naps
    assert ps.returncode == 0, f"egressctl ps while locked: {ps.stderr}"
    assert COMMAND in ps.stdout, ps.stdout

    res = wait_results(orch, ids, timeout=OUTBOX_DEADLINE)
    kinds = {i: check_result(i, res[i][0]["result"]) for i in ids}
    assert all(kinds[i] == "ok" for i in ids[:4]), \
        f"an operation running before the lock failed: {res}"
    wait_outbox_empty(state)
    # every agent process ends: the refused exits are written late
    wait_until(lambda: not live_processes(state), OUTBOX_DEADLINE,
               msg="every agent process recorded as ended")
    time.sleep(2.5 * POLL_INTERVAL)     # sweeps: nothing sent again
    assert_delivered_once(orch, ids)
    assert len(orch.get_results()) == len(ids)

    log = a.log()[at:]
    assert "sent no heartbeat" not in log, "a waiting worker was killed"
    assert a.worker_pids() == pids, "a worker was replaced"
    assert "exit not recorded (database: locked); retrying" in log, log
    assert "exit recorded late" in log, log
    refused = [i for i in ids if kinds[i] == "refused"]
    for op_id in refused:
        assert f"operation {op_id}: agent process not created: " \
            f"database: locked" in log, op_id
    print(f"{len(ids)} operations, {len(refused)} refused while locked")
    a.check_alive()


# --------------------------------------------------------------------------
# 3. the orchestrator answers 500 to everything for a while

RESULT_DELAYS = (1.0, 2.0)              # DESIGN section 2: 3 tries, 1 s, 2 s
STREAM_BACKOFF = (2.0, 240.0, 0.2)      # first, max, jitter


def stream_attempts_bound(seconds):
    """Most stream connects in seconds: 2 s, doubling, -20% jitter."""
    first, most, jitter = STREAM_BACKOFF
    n, t, d = 1, 0.0, first
    while t + d * (1 - jitter) <= seconds:
        t += d * (1 - jitter)
        n += 1
        d = min(2 * d, most)
    return n


def per_second(reqs, t0, t1):
    """Requests per whole second of [t0, t1): a list of counts."""
    counts = [0] * max(1, int(t1 - t0 + 0.999))
    for r in reqs:
        if t0 <= r["time"] < t1:
            counts[min(len(counts) - 1, int(r["time"] - t0))] += 1
    return counts


def test_orchestrator_500s_no_request_storm(orch, agent):
    """Every orchestrator call answered 500 for 30 s: each endpoint is
    called no more than its back-off allows, and once the 500s stop the
    results held back and the operations queued meanwhile are delivered,
    each acknowledged exactly once."""
    workers, every = 2, POLL_INTERVAL
    a = agent(server={"workers": workers},
              orchestrator={"poll_interval": every})
    a.wait_ready(2)
    assert orch.wait_counts(SHORT, streams=1)
    state = a.state_dir
    # results held back: rejected before the outage starts
    orch.set_faults(fail={EP_RESULT: [1000000, 500]})
    held = orch.enqueue([{} for _ in range(6)])["operation_ids"]
    kick(orch)
    wait_until(lambda: {r["path"].split("/")[-2] for r in
                        requests(orch, endpoint=EP_RESULT)} >= set(held),
               msg="a rejected PUT for every held result")

    span = chaos(30.0, 8.0)
    at = len(a.log())
    orch.set_faults(fail={"*": [1000000, 500]}, close_streams=True)
    t0 = time.time()
    queued = orch.enqueue([{} for _ in range(10)])["operation_ids"]
    end = time.monotonic() + span
    while time.monotonic() < end:
        a.check_alive()
        time.sleep(0.5)
    t1 = time.time()
    orch.set_faults(fail={"*": 0, EP_RESULT: 0})
    elapsed = t1 - t0

    # what the 500s drew, per endpoint
    def during(endpoint):
        return [r for r in requests(orch, endpoint=endpoint)
                if t0 <= r["time"] < t1]
    gets, puts = during(EP_OPERATION), during(EP_RESULT)
    streams = during(EP_STREAM)
    others = [r for r in requests(orch) if t0 <= r["time"] < t1 and
              r["endpoint"] not in (EP_OPERATION, EP_RESULT, EP_STREAM,
                                    "heartbeat")]
    held_n = len(held)
    # a held result: 3 tries (1 s, 2 s apart), then back in the outbox
    # until a sweep (every poll_interval) claims it again
    cycle = sum(RESULT_DELAYS) + every
    put_bound = held_n * 3 * (elapsed / cycle + 2)
    # each worker polls once per poll_interval after a failure, and once
    # more after each result it gives up on
    get_bound = workers * (elapsed / every + 2) + held_n * (elapsed / cycle
                                                              + 2)
    stream_bound = stream_attempts_bound(elapsed) + 1
    summary = (f"{elapsed:.1f}s: {len(gets)} GET operation (bound "
               f"{get_bound:.0f}), {len(puts)} PUT result ({put_bound:.0f}), "
               f"{len(streams)} stream ({stream_bound}); per second GET "
               f"{max(per_second(gets, t0, t1))}, PUT "
               f"{max(per_second(puts, t0, t1))}")
    print(summary)
    assert len(gets) <= get_bound, summary
    assert len(puts) <= put_bound, summary
    assert len(streams) <= stream_bound, summary
    assert not others, [(r["endpoint"], r["time"] - t0) for r in others]
    # no burst either: in any second, at most two tries of a held result
    # (1 s apart) and a GET per worker plus one per held result given up
    assert max(per_second(puts, t0, t1)) <= 2 * held_n, summary
    assert max(per_second(gets, t0, t1)) <= 2 * workers + held_n, summary
    assert all(r["status"] == 500 for r in gets + puts + streams)
    # each worker kept polling: it is not stuck
    assert len({r["instance_id"] for r in gets}) == workers, summary
    log = a.log()[at:]
    assert "GET operation failed (HTTP 500" in log, log[-3000:]
    assert "kept in the outbox" in log, log[-3000:]

    # the 500s stop: everything goes out, once
    res = wait_results(orch, held + queued, timeout=OUTBOX_DEADLINE)
    assert all(res[i][0]["result"].get("status") == "ok"
               for i in held + queued), res
    wait_outbox_empty(state)
    time.sleep(2.5 * every)
    assert_delivered_once(orch, held + queued)
    assert len(orch.get_results()) == len(held) + len(queued)
    # the stream comes back at its next back-off step
    failed = len([r for r in requests(orch, endpoint=EP_STREAM)
                  if r["status"] == 500])
    first, most, jitter = STREAM_BACKOFF
    step = min(first * 2 ** failed, most) * (1 + jitter)
    assert orch.wait_counts(step + SHORT, streams=1), \
        f"the stream did not come back within {step:.0f}s"
    a.check_alive()


# --------------------------------------------------------------------------
# 4. the control socket flooded with junk

CTL_MAX_CLIENTS = 64                    # include/master/control.h
CTL_MAX_LINE = 64 * 1024
FLOOD_THREADS = 6
FLOOD_IDLE = 24                         # connections that never write
STORM_BURST = 5                         # connect-and-close per round
# At most FLOOD_IDLE + FLOOD_THREADS * STORM_BURST + 1 connections are open
# at once (one the client closed before the master accepted it is done at
# accept; one closed later counts until the master sees it go): under the
# limit, so a health request is never refused for room.
assert FLOOD_IDLE + FLOOD_THREADS * STORM_BURST + 1 < CTL_MAX_CLIENTS


def connect(path, timeout=2.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
    except OSError:
        s.close()
        raise
    return s


def junk(kind, rng):
    if kind == "random":
        return os.urandom(rng.randint(1, 8192)) + b"\n"
    if kind == "huge":                  # over the line limit, no newline
        return b"{" + b"x" * (CTL_MAX_LINE + rng.randint(1, 65536))
    if kind == "partial_json":
        return rng.choice([b'{"cmd": "heal', b'{"cmd":', b'[{"cmd"', b"{"])
    if kind == "non_utf8":
        return b'{"cmd":"\xff\xfe\xfd"}\n\xc3\x28\xa0\xa1\n{"cmd":"h\x80"}\n'
    if kind == "unterminated":
        return b'{"cmd":"health"}'
    if kind == "many_lines":            # replies never read
        return b"junk\n" * rng.randint(100, 3000)
    if kind == "nul":
        return b"\0" * rng.randint(1, 1000) + b"\n"
    if kind == "deep":
        return b"[" * 5000 + b"]" * 5000 + b"\n"
    raise ValueError(kind)


# Lines that must each get a clear error reply in valid JSON (UTF-8).
JUNK_LINES = (b"\xff\xfe\xfd", b'{"cmd":"\xff\xfe"}',
              b'{"cmd":"st\xc3\x28"}', b'{"cmd":"x\\n2026 forged log line"}',
              b"\0" * 10, b"[" * 5000 + b"]" * 5000, b'{"cmd":"\xc3\xa9"}')

JUNK_KINDS = ("random", "huge", "partial_json", "non_utf8", "unterminated",
              "many_lines", "nul", "deep")


def flood(path, stop, seed, counts):
    rng = random.Random(seed)
    while not stop.is_set():
        kind = rng.choice(JUNK_KINDS + ("storm",))
        counts[kind] = counts.get(kind, 0) + 1
        if kind == "storm":
            for _ in range(STORM_BURST):
                try:
                    connect(path).close()
                except OSError:
                    counts["connect_failed"] = \
                        counts.get("connect_failed", 0) + 1
            continue
        try:
            s = connect(path)
        except OSError:
            counts["connect_failed"] = counts.get("connect_failed", 0) + 1
            continue
        try:
            s.sendall(junk(kind, rng))
            if rng.random() < 0.5:
                s.recv(4096)            # sometimes read a reply
        except OSError:
            pass                        # reset by the master: fine
        finally:
            s.close()


def test_control_socket_flood(orch, agent):
    a = agent(server={"workers": 2})
    h = a.wait_ready(2)
    pids = a.worker_pids(h)
    baseline = settled_fd_count(a.pid)
    at = len(a.log())

    stop = threading.Event()
    counts = [{} for _ in range(FLOOD_THREADS)]
    idle = []
    threads = [threading.Thread(target=flood, daemon=True,
                                args=(a.sock, stop, seed, counts[seed]))
               for seed in range(FLOOD_THREADS)]
    checks = 0
    try:
        idle = [connect(a.sock) for _ in range(FLOOD_IDLE)]
        for t in threads:
            t.start()
        end = time.monotonic() + chaos(10.0, 3.0)
        while time.monotonic() < end:
            # a fresh connection is answered all the while
            rep = a.health()
            assert rep["ready"] == 2, rep
            checks += 1
            time.sleep(0.1)
    finally:
        stop.set()
        for t in threads:
            t.join(SHORT)
        for s in idle:
            s.close()
    assert not any(t.is_alive() for t in threads), "a flood thread hung"
    total = {}
    for c in counts:
        for k, v in c.items():
            total[k] = total.get(k, 0) + v
    print(f"flood: {total}, {checks} health checks")
    assert checks >= 3
    assert all(total.get(k, 0) > 0 for k in JUNK_KINDS + ("storm",)), total
    assert total.get("connect_failed", 0) == 0, total

    # every flood connection is gone: so are the master's descriptors
    wait_until(lambda: fd_count(a.pid) <= baseline, SHORT,
               msg=f"master fds back to {baseline} (now "
                   f"{fd_count(a.pid)})")
    rep = a.health()
    assert rep["status"] == "healthy" and a.worker_pids(rep) == pids, rep
    assert_no_spin(a, 1.0)
    log = a.log()[at:]
    assert f"control: request over {CTL_MAX_LINE} bytes; closing that " \
        "connection" in log
    assert "control: malformed request: not valid JSON" in log
    assert "refusing another" not in log, "the flood hit the limit"
    # each junk line is answered with a clear error, in valid JSON, and
    # none of it forges a log line
    with Control(a.sock) as c:
        for line in JUNK_LINES:
            rep = c.request(line)
            assert rep.get("ok") is False and rep.get("error"), (line, rep)
            assert rep["error"].startswith("malformed request"), (line, rep)
    assert "\n2026 forged" not in a.log()

    # the limit: with every slot taken by silent connections, a new one is
    # told so at once; it works again when they go
    idle = []
    wait_until(lambda: fd_count(a.pid) <= baseline, SHORT,
               msg="the last connection to be closed")
    try:
        idle = [connect(a.sock) for _ in range(CTL_MAX_CLIENTS)]
        wait_until(lambda: fd_count(a.pid) >= baseline + CTL_MAX_CLIENTS,
                   SHORT, msg="the master to accept them all")
        with Control(a.sock) as c:      # refused before it can ask
            rep = c.read_reply()
            assert c.rfile.readline() == b"", "connection not closed"
        assert rep == {"ok": False, "error": "too many connections"}, rep
        a.wait_log(f"control: {CTL_MAX_CLIENTS} connections open; "
                   "refusing another", start=at)
    finally:
        for s in idle:
            s.close()
    wait_until(lambda: fd_count(a.pid) <= baseline, SHORT,
               msg=f"master fds back to {baseline}")
    rep = a.health()
    assert rep["status"] == "healthy", rep
    # the workers never noticed
    ids = orch.enqueue([{} for _ in range(4)])["operation_ids"]
    kick(orch)
    wait_results(orch, ids)
    assert_delivered_once(orch, ids)
    assert a.worker_pids() == pids
    a.check_alive()
