"""The state files under a running daemon (issue 20).

One daemon per state directory whatever happens to the pidfile; a database
(or its WAL) removed while running is noticed, holds new work back and
never leads to an empty new file; a database the daemon may not write is
refused at start.  Each fault asserts what the operator sees (egressctl
status and health keep answering and say what is wrong) and what the
orchestrator gets (every operation accepted before the fault reported,
none of them failed by the fault).  The faults the daemon already
survived (a truncated database or one of random bytes at start, state_dir
replaced by a file, the log directory removed before USR1) stay here as
regression tests.
"""

import os
import pwd
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import (DEADLINE, SHORT, binary, children_of, ctl,  # noqa: E402
                    db_count, db_files, db_query, render_config, sigkill,
                    wait_until)
from proto_helpers import kick, wait_results  # noqa: E402
from proto_helpers import agent, orch, workdir  # noqa: E402,F401 (fixtures)

COMMAND = "/api/v1/agent/execute/command"
GUARD_EVERY = 2.0               # STATEGUARD_EVERY in src/master/master_priv.h
GUARD_QUIET = 10.0              # STATEGUARD_QUIET: the look while watched

OPERATIONS = """operations: {
  command: {
    enabled = true;
    commands = (
      { name = "nap"; argv = [ "/bin/sleep", "{secs}" ]; timeout = 30.0; }
    );
  };
};
"""


def nap(secs):
    return {"path": COMMAND, "operation": {"name": "nap",
                                           "args": {"secs": str(secs)}}}


def configure(a, **server):
    """Rewrite a's config with the command handler on and server keys."""
    a.cfg["server"].update(server)
    with open(a.config, "w") as f:
        f.write(render_config(a.cfg, OPERATIONS))


def db_file(a, name="egressd.db"):
    return os.path.join(a.dir, name)


def live_processes(state_dir):
    """Agent processes not ended, of every database file."""
    return db_query(state_dir, "SELECT pid FROM processes "
                    "WHERE ended_at IS NULL")


def run_second(a, config=None):
    """egressd on a's config (or config), expected to refuse and exit."""
    proc = subprocess.Popen([binary("EGRESSD_BIN"), "-c", config or a.config],
                            cwd=a.dir, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        out, err = proc.communicate(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        kids = children_of(proc.pid)
        proc.kill()
        for k in kids:
            sigkill(k)
        proc.communicate()
        raise AssertionError("a second egressd on the same state_dir kept "
                             "running") from None
    return proc.returncode, out + err


def egressctl(config, *args):
    return subprocess.run([binary("EGRESSCTL_BIN"), "-c", config] +
                          list(args), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=SHORT)


def health(sock):
    rep = ctl(sock, {"cmd": "health"})
    assert rep.get("ok") is True, rep
    return rep


def reason(rep, needle):
    """The degraded reason containing needle, or None."""
    for r in rep.get("reasons", []):
        if needle in r["reason"]:
            return r["reason"]
    return None


def wait_ready(sock, n):
    def ok():
        h = health(sock)
        return h if h["ready"] == n and len(h["workers"]) == n and \
            h["status"] == "healthy" else None
    return wait_until(ok, msg=f"{n} ready workers, healthy")


def all_ok(orch, ids):
    """Every operation reported once, by its own result (no error)."""
    res = wait_results(orch, ids)
    for op_id in ids:
        assert len(res[op_id]) == 1, (op_id, res[op_id])
        assert "error" not in res[op_id][0]["result"], (op_id, res[op_id])


def start_naps(orch, a, n, secs):
    ids = orch.enqueue([nap(secs) for _ in range(n)])["operation_ids"]
    kick(orch)
    wait_until(lambda: len(live_processes(a.state_dir)) == n,
               msg=f"{n} agent processes running")
    return ids


# --------------------------------------------------------------------------
# fault 1: two masters on one state directory

def test_second_daemon_on_the_same_state_dir_is_refused(orch, agent):
    """Another pidfile and control socket, the same state_dir: refused
    before it touches the database, naming the directory and the pid; the
    first master's running operations end with their own results."""
    a = agent(start=False)
    configure(a, workers=2)
    a.start()
    wait_ready(a.sock, 2)
    ids = start_naps(orch, a, 4, 2)

    b = agent(start=False, sub="b")
    configure(b, state_dir=a.dir)
    rc, msg = run_second(b)
    assert rc != 0
    lines = [ln for ln in msg.splitlines() if a.dir in ln]
    assert len(lines) == 1 and str(a.pid) in lines[0], msg
    assert not os.path.exists(b.pidfile), "the refused start left a pidfile"

    all_ok(orch, ids)
    assert "worker gone" not in a.log() + b.log()
    assert health(a.sock)["status"] == "healthy"


def test_runtime_dir_removed_then_second_start(orch, agent):
    """The runtime directory (pidfile, control socket) is removed and made
    again empty, as an init script would, then egressd is started again on
    the same config: it is refused naming the running pid, the first master
    writes its pidfile and binds its socket again, egressctl reaches it,
    and no operation it runs is failed."""
    a = agent(start=False)
    run = os.path.join(a.dir, "run")
    os.mkdir(run)
    configure(a, workers=2, pidfile="run/egressd.pid",
              control_socket="run/egressd.sock")
    pidfile, sock = os.path.join(run, "egressd.pid"), \
        os.path.join(run, "egressd.sock")
    a.start()
    wait_ready(sock, 2)
    ids = start_naps(orch, a, 4, 3)
    at = len(a.log())

    shutil.rmtree(run)
    os.mkdir(run)
    rc, msg = run_second(a)
    assert rc != 0 and str(a.pid) in msg, msg

    def recreated():
        with open(pidfile) as f:
            return f.read() == f"{a.pid}\n" and \
                health(sock)["pid"] == a.pid
    wait_until(recreated, msg="the pidfile and control socket made again")
    st = egressctl(a.config, "status")
    assert st.returncode == 0 and str(a.pid) in st.stdout, st
    log = a.log()[at:]
    assert "was removed or replaced; written again" in log, log
    assert "was removed or replaced; bound again" in log, log

    # the directory itself gone: the master makes it again
    shutil.rmtree(run)
    wait_until(recreated, msg="the runtime directory made again")
    all_ok(orch, ids)
    assert "worker gone" not in a.log()
    wait_ready(sock, 2)


def test_pidfile_removed_is_heard_of(orch, agent):
    """With no control query to set a look off (health, status and
    metrics look at the database), a pidfile removed from an idle master's
    watched folder is written again on inotify's word, half a second
    later, not at the next look of the fallback timer (every GUARD_QUIET
    while watched: a broken watch fails this most of the time)."""
    a = agent(start=False)
    run = os.path.join(a.dir, "run")
    os.mkdir(run)
    configure(a, workers=1, pidfile="run/egressd.pid",
              control_socket="run/egressd.sock")
    pidfile = os.path.join(run, "egressd.pid")
    a.start()
    wait_ready(os.path.join(run, "egressd.sock"), 1)
    time.sleep(1.0)                     # the looks start-up set off
    at = len(a.log())
    os.unlink(pidfile)
    a.wait_log("was removed or replaced; written again",
               timeout=GUARD_QUIET / 2, start=at)
    with open(pidfile) as f:
        assert f.read() == f"{a.pid}\n"
    a.check_alive()


# --------------------------------------------------------------------------
# fault 2: the database or its WAL deleted while running

def test_database_deleted_while_running(orch, agent):
    """egressd.db unlinked while operations run: health names it within a
    guard period or two, the workers finish and deliver what they hold,
    none is started again, and nothing creates an empty new file."""
    a = agent(start=False)
    configure(a, workers=2)
    a.start()
    wait_ready(a.sock, 2)
    # Quick ones too, answered before: what the orchestrator still queues
    # at the unlink is not taken any more (the state guard hears of it
    # within a second), and stays the orchestrator's.
    quick = orch.enqueue([{} for _ in range(8)])["operation_ids"]
    kick(orch)
    all_ok(orch, quick)
    ids = start_naps(orch, a, 4, 2)
    at = len(a.log())

    assert len(live_processes(a.state_dir)) == 4, "the naps ended already"
    os.unlink(db_file(a))
    t0 = time.monotonic()
    rep = wait_until(lambda: reason(health(a.sock), "egressd.db was removed"),
                     msg="a degraded reason naming the removed database")
    noticed = time.monotonic() - t0
    all_ok(orch, ids)
    wait_until(lambda: not health(a.sock)["workers"],
               msg="the workers drained and gone")
    time.sleep(2 * GUARD_EVERY)         # passes that must not respawn
    h = health(a.sock)
    assert h["workers"] == [] and h["status"] in ("degraded", "down"), h
    assert reason(h, "no new work is taken"), h
    assert not os.path.exists(db_file(a)), "an empty database was created"
    st = egressctl(a.config, "status")
    assert st.returncode == 0 and "reason: database" in st.stdout, st
    hc = egressctl(a.config, "health")
    assert hc.returncode in (1, 2) and "was removed" in hc.stdout, hc
    log = a.log()[at:]
    for bad in ("no such table", "cannot boot", "spawned worker"):
        assert bad not in log, f"{bad!r} after the database went: {log}"
    print(f"database removal reported after {noticed:.1f}s: {rep}")


def test_wal_deleted_while_running(orch, agent):
    """The WAL of every database file (egressd.db-wal, and egressd-N.db-wal
    with store.files: whichever the naps' workers write) unlinked while
    operations run: noticed, the workers drain (their connections still
    hold the old WAL, and the last one of each file writes it back into
    the database), then work resumes with nothing lost: every operation's
    agent process is in the database."""
    a = agent(start=False)
    configure(a, workers=2)
    a.start()
    wait_ready(a.sock, 2)
    ids = start_naps(orch, a, 4, 2)
    at = len(a.log())

    wals = [path + "-wal" for path in db_files(a.state_dir)]
    assert wals and db_file(a, "egressd.db-wal") in wals, wals
    for wal in wals:
        os.unlink(wal)
    t0 = time.monotonic()
    wait_until(lambda: reason(health(a.sock), "its WAL"),
               msg="a degraded reason naming the removed WAL")
    noticed = time.monotonic() - t0
    all_ok(orch, ids)
    wait_ready(a.sock, 2)
    assert not health(a.sock).get("reasons"), "the reason stayed"
    after = orch.enqueue([{} for _ in range(4)])["operation_ids"]
    kick(orch)
    all_ok(orch, after)

    assert db_query(a.state_dir, "PRAGMA integrity_check") == \
        [("ok",)] * len(wals)
    marks = ",".join("?" * len(ids + after))
    n = db_count(a.state_dir, f"SELECT count(*) FROM processes WHERE "
                 f"operation_id IN ({marks})", ids + after)
    assert n == len(ids + after), "agent processes lost with the WAL"
    log = a.log()[at:]
    assert "is itself again; taking work" in log, log
    assert "cannot boot" not in log and "malformed" not in log, log
    print(f"WAL removal reported after {noticed:.1f}s")


def test_state_dir_replaced_by_a_file(orch, agent):
    """state_dir removed and a file put in its place: the database is gone
    for the master, which says so and holds work; nothing crashes."""
    a = agent(start=False)
    state = os.path.join(a.dir, "state")
    os.mkdir(state)
    configure(a, workers=2, state_dir="state")
    a.start()
    wait_ready(a.sock, 2)
    shutil.rmtree(state)
    with open(state, "w") as f:
        f.write("not a directory\n")
    wait_until(lambda: reason(health(a.sock), "was removed"),
               msg="a degraded reason naming the database")
    wait_until(lambda: not health(a.sock)["workers"],
               msg="the workers drained and gone")
    assert egressctl(a.config, "status").returncode == 0
    a.check_alive()


# --------------------------------------------------------------------------
# fault 3: a database the daemon may not write

def _nobody():
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        return None


def test_read_only_database_refused(orch, agent):
    """Mode 0444 and a daemon that is not root: refused at start with one
    line naming the file and its mode, no pidfile left behind.  Run as
    root, the daemon drops to nobody (server.user) before it opens the
    database."""
    a = agent(start=False)
    state = os.path.join(a.dir, "state")
    os.mkdir(state)
    db = os.path.join(state, "egressd.db")
    sqlite3.connect(db).close()
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE t(x)")
    con.close()
    server = {"workers": 1, "state_dir": "state"}
    if os.geteuid() == 0:
        nobody = _nobody()
        assert nobody is not None, "no user 'nobody' to run the test as"
        os.chmod(a.dir, 0o755)
        os.chown(state, nobody.pw_uid, nobody.pw_gid)
        os.chown(db, nobody.pw_uid, nobody.pw_gid)
        server["user"] = "nobody"
    os.chmod(db, 0o444)
    configure(a, **server)
    rc, msg = run_second(a)
    assert rc != 0, msg
    lines = [ln for ln in msg.splitlines() if db in ln]
    assert len(lines) == 1 and "read-only" in lines[0] and \
        "0444" in lines[0], msg
    if "user" not in server:    # after a drop the root-owned one stays
        assert not os.path.exists(a.pidfile)


# --------------------------------------------------------------------------
# faults that already held: kept as regression tests

def _refused_naming(a, needle):
    rc, msg = run_second(a)
    assert rc != 0, msg
    lines = [ln for ln in msg.splitlines() if needle in ln]
    assert len(lines) == 1, msg
    assert not os.path.exists(a.pidfile)
    return lines[0]


def test_truncated_database_refused(orch, agent):
    a = agent(start=False)
    configure(a, workers=1)
    a.start()
    wait_ready(a.sock, 1)
    a.signal(signal.SIGTERM)
    a.wait_exit()
    db = db_file(a)
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE filler(x)")
    con.executemany("INSERT INTO filler VALUES (?)",
                    [("x" * 500,) for _ in range(200)])
    con.commit()
    con.close()
    size = os.path.getsize(db)
    with open(db, "r+b") as f:
        f.truncate(size // 2)
    _refused_naming(a, db)


def test_random_bytes_database_refused(orch, agent):
    a = agent(start=False)
    configure(a, workers=1)
    with open(db_file(a), "wb") as f:
        f.write(os.urandom(64 * 1024))
    _refused_naming(a, db_file(a))


def test_log_dir_removed_then_usr1(orch, agent):
    """The log's directory removed, then USR1: the reopen fails, the
    daemon goes on answering; once the directory is back, USR1 writes a
    new log."""
    a = agent(start=False)
    logs = os.path.join(a.dir, "logs")
    os.mkdir(logs)
    a.cfg["log"]["file"] = "logs/egressd.log"
    configure(a, workers=2)
    a.start()
    wait_ready(a.sock, 2)
    shutil.rmtree(logs)
    a.signal(signal.SIGUSR1)
    time.sleep(0.5)
    assert health(a.sock)["ready"] == 2
    os.mkdir(logs)
    a.signal(signal.SIGUSR1)
    wait_until(lambda: os.path.exists(os.path.join(logs, "egressd.log")),
               msg="a new log file after the second USR1")
    wait_ready(a.sock, 2)
    a.check_alive()
