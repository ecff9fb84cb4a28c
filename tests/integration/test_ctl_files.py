"""egressctl ps, inspect, audit and the summary of status --json read every
database file of the state directory (store.files: egressd.db and
egressd-N.db), whatever store.files says now.

The files are made here: egressd runs once with store.files = 1 against
the fake orchestrator and writes egressd.db (only) with real rows;
egressd-N.db is a copy of it with every pid moved past (N - 1) * 10^12, as
a file of its own has them (procmgr/store.h), and its times and goals
changed so that the files' rows can be told apart and interleave."""

import json
import os
import shutil
import sqlite3
import tempfile

import pytest

from proto_helpers import (TOKEN_ID, Agent, FakeOrchestrator,  # noqa: F401
                           agent, new_token, orch, run_operations)
from common import binary, run_tool

SPAN = 10 ** 12                 # STORE_PID_SPAN
HEALTH = "/api/v1/test/health"
BATCH = "/api/v1/agent/execute/batch"
HEALTH_OPS = 3                  # roots besides the batch
ONE_FILE = {"store": {"files": 1}}  # every worker writes egressd.db


def egressctl(state_dir, *args, check=True):
    p = run_tool([binary("EGRESSCTL_BIN"), "-d", state_dir, *args])
    if check and p.returncode != 0:
        raise AssertionError(f"egressctl {args}: {p.returncode} "
                             f"{p.stdout} {p.stderr}")
    return p


def operations(o):
    """A batch of two, then (so that a root follows one with children)
    HEALTH_OPS health operations."""
    subs = [{"path": HEALTH, "operation": {"child": i}} for i in range(2)]
    run_operations(o, [{"path": BATCH, "operation": {
        "mode": "worker", "operations": subs}}])
    run_operations(o, [{"operation": {"n": i}} for i in range(HEALTH_OPS)])


@pytest.fixture(scope="module")
def first_file():
    """egressd.db with real rows, made once for the module: a batch of
    two and three health operations, run by egressd and stopped.  -> its
    path (a template: tests copy it)."""
    bin_path = binary("EGRESSD_BIN")
    d = tempfile.mkdtemp(prefix="egctlf-", dir="/tmp")
    try:
        make_first_file(bin_path, d)
        yield os.path.join(d, "egressd.db")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def make_first_file(bin_path, d):
    o = FakeOrchestrator("127.0.0.1", 0, TOKEN_ID, new_token(), 0.5)
    o.start()
    a = Agent(bin_path, d, o.url, o.token,
              dict(ONE_FILE, process={"max_child_processes": 2}))
    made = False
    try:
        a.start()
        a.wait_ready(2)
        operations(o)
        a.stop()
        made = True
    finally:
        a.stop()
        if not made:
            a.dump()
        o.stop()


@pytest.fixture
def state(first_file):
    """A state directory holding a copy of first_file as egressd.db."""
    d = tempfile.mkdtemp(prefix="egctlf-", dir="/tmp")
    copy_db(first_file, os.path.join(d, "egressd.db"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def copy_db(src, dst):
    s = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
    t = sqlite3.connect(dst)
    try:
        s.backup(t)
    finally:
        s.close()
        t.close()


def add_file(state_dir, number, dt=0.0, src=None):
    """egressd-<number>.db in state_dir: a copy of src (egressd.db) with
    every pid moved past (number - 1) * SPAN, every time moved by dt
    seconds, and number in every goal ({"file": number})."""
    path = os.path.join(state_dir, f"egressd-{number}.db")
    copy_db(src or os.path.join(state_dir, "egressd.db"), path)
    base = (number - 1) * SPAN
    db = sqlite3.connect(path)
    try:
        db.executescript(f"""
            UPDATE processes SET pid = pid + {base},
                parent_pid = parent_pid + {base},
                root_pid = root_pid + {base},
                created_at = created_at + {dt},
                updated_at = updated_at + {dt},
                ended_at = ended_at + {dt};
            UPDATE objects SET owner_pid = owner_pid + {base},
                created_at = created_at + {dt};
            UPDATE objects SET payload = json_set(payload, '$.file',
                {number}) WHERE oid IN (SELECT goal_oid FROM processes);
            UPDATE views SET pid = pid + {base};
            UPDATE capabilities SET subject = subject + {base};
            UPDATE events SET pid = pid + {base},
                created_at = created_at + {dt};
            UPDATE audit SET pid = pid + {base},
                created_at = created_at + {dt};
            UPDATE outbox SET pid = pid + {base},
                created_at = created_at + {dt};
            UPDATE sqlite_sequence SET seq = seq + {base}
                WHERE name = 'processes';
        """)
        db.commit()
    finally:
        db.close()
    return path


def rows(path, sql, *args):
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def db_file(state_dir, number):
    return os.path.join(state_dir, "egressd.db" if number == 1
                        else f"egressd-{number}.db")


def ps_pids(out):
    """The pid column of ps, in order, each with its depth in the tree
    (the indent of its image)."""
    lines = out.splitlines()
    assert lines[0].split() == ["PID", "PPID", "STATUS", "AGE", "TOOLS",
                                "CHILDREN", "IMAGE"], out
    start = lines[0].index("IMAGE")
    found = []
    for line in lines[1:]:
        image = line[start:]
        found.append((int(line.split()[0]),
                      (len(image) - len(image.lstrip())) // 2))
    return found


def tree(state_dir, numbers):
    """ps --all as the files hold it: roots by pid, each followed by its
    children (depth-first, by pid); each pid with its depth."""
    procs = []
    for n in numbers:
        procs += rows(db_file(state_dir, n),
                      "SELECT pid, parent_pid FROM processes")
    out = []

    def walk(parent, depth):
        for pid, _ in sorted(p for p in procs if p[1] == parent):
            out.append((pid, depth))
            walk(pid, depth + 1)
    walk(None, 0)
    return out


def test_ps_shows_the_processes_of_every_file(state):
    one = ps_pids(egressctl(state, "ps", "--all").stdout)
    # One file: as before, its processes as a tree.
    assert one == tree(state, [1])
    assert len(one) == HEALTH_OPS + 1 + 2 and max(p for p, _ in one) < SPAN
    add_file(state, 2)
    both = ps_pids(egressctl(state, "ps", "--all").stdout)
    assert both == tree(state, [1, 2])
    assert both[len(one):] == [(p + SPAN, d) for p, d in one]
    # The batch's children, under their parent in file 2.
    assert [d for _, d in both[len(one):]].count(1) == 2


def test_ps_limit_keeps_the_most_recent_roots_of_every_file(state):
    """File 2's pids are all higher, but its operations older: --limit
    keeps the most recent by time, not the highest pids."""
    add_file(state, 2, dt=-1000.0)
    roots = HEALTH_OPS + 1
    out = egressctl(state, "ps", "--all", "--limit", str(roots)).stdout
    assert all(p < SPAN for p, d in ps_pids(out) if d == 0)
    assert len([p for p, d in ps_pids(out) if d == 0]) == roots
    out = egressctl(state, "ps", "--all", "--limit",
                    str(roots + 1)).stdout
    newest2 = max(p for (p,) in rows(
        db_file(state, 2), "SELECT pid FROM processes WHERE parent_pid "
        "IS NULL ORDER BY created_at DESC LIMIT 1"))
    top = [p for p, d in ps_pids(out) if d == 0]
    assert len(top) == roots + 1 and top[-1] == newest2, out


def inspect(state_dir, pid):
    return json.loads(egressctl(state_dir, "inspect", "--json",
                                str(pid)).stdout)


def test_inspect_finds_a_process_in_any_file(state):
    """Files 1 and 3 (no 2): a process of file 3 with its goal, view,
    capabilities, children and events, each from its own file (object and
    view ids repeat across the files)."""
    add_file(state, 3)
    ((batch,),) = rows(db_file(state, 1), "SELECT pid FROM processes "
                       "WHERE image = ?", BATCH)
    (child, _), _ = rows(db_file(state, 1), "SELECT pid, view_id FROM "
                         "processes WHERE parent_pid = ? ORDER BY pid",
                         batch)
    first, third = inspect(state, batch), inspect(state, batch + 2 * SPAN)
    assert third["pid"] == batch + 2 * SPAN and third["image"] == BATCH
    assert third["goal"] == dict(first["goal"], file=3)
    assert "file" not in first["goal"]
    assert [c["pid"] for c in third["children"]] == \
        [c["pid"] + 2 * SPAN for c in first["children"]]
    assert len(third["capabilities"]) == len(first["capabilities"]) > 0
    assert [e["type"] for e in third["events"]] == \
        [e["type"] for e in first["events"]]
    kid = inspect(state, child + 2 * SPAN)
    assert kid["parent_pid"] == batch + 2 * SPAN
    assert kid["goal"] == dict(inspect(state, child)["goal"], file=3)
    assert kid["view_mode"] == "READ_ONLY"
    p = egressctl(state, "inspect", str(2 * SPAN + 10 ** 6), check=False)
    assert p.returncode == 1 and "no agent process" in p.stderr


def test_audit_limit_gives_the_most_recent_of_every_file(state):
    """Rows of the two files interleave in time (and tie: file 1 first);
    --limit N gives the N most recent of both, oldest first."""
    add_file(state, 2)
    t0 = 1.7e9
    for n, odd in ((1, "0"), (2, "id % 2")):
        db = sqlite3.connect(db_file(state, n))
        db.execute(f"UPDATE audit SET created_at = {t0} + 2 * id + {odd}")
        db.commit()
        db.close()
    every = []
    for n in (1, 2):
        every += [(r[3], n, r[0], r[1], r[2]) for r in rows(
            db_file(state, n), "SELECT id, action, pid, created_at "
            "FROM audit")]
    every.sort()
    limit = len(every) // 2 + 1
    want = [(i, action, pid, t) for t, _, i, action, pid in every[-limit:]]
    got = json.loads(egressctl(state, "audit", "--json", "--limit",
                               str(limit)).stdout)
    assert [(r["id"], r["action"], r["pid"], r["created_at"])
            for r in got] == want
    pids = {pid for _, _, pid, _ in want if pid is not None}
    assert min(pids) < SPAN < max(pids), want
    # The text form, in the same order.
    lines = egressctl(state, "audit", "--limit", str(limit)).stdout
    assert [int(ln.split()[1]) for ln in lines.splitlines()[1:]] == \
        [i for i, _, _, _ in want]
    # --pid finds a process's rows in its file.
    ((root,),) = rows(db_file(state, 2), "SELECT pid FROM processes "
                      "WHERE image = ?", BATCH)
    mine = json.loads(egressctl(state, "audit", "--json", "--pid",
                                str(root)).stdout)
    assert mine and {r["pid"] for r in mine} == {root}
    assert [r["id"] for r in mine] == [i for (i,) in rows(
        db_file(state, 2), "SELECT id FROM audit WHERE pid = ? ORDER BY "
        "created_at, id", root)]


def test_a_file_that_cannot_be_read_is_named(state):
    path = os.path.join(state, "egressd-2.db")
    with open(path, "wb") as f:
        f.write(b"not a database, " * 512)
    for args in (["ps", "--all"], ["audit"], ["inspect", "1"]):
        p = egressctl(state, *args, check=False)
        assert p.returncode == 2 and p.stdout == "", (args, p)
        assert f"database {path}: file is not a database" in p.stderr, p
    os.remove(path)
    os.mkdir(path)
    p = egressctl(state, "ps", check=False)
    assert p.returncode == 2 and f"database {path}: " in p.stderr, p


def test_egressd_db_missing_beside_another_file_is_said(state):
    add_file(state, 2)
    os.remove(os.path.join(state, "egressd.db"))
    p = egressctl(state, "ps", check=False)
    assert p.returncode == 2, p
    assert (f"database {state}/egressd.db: no such file, yet "
            f"{state}/egressd-2.db exists") in p.stderr, p


def test_status_summary_counts_every_file(orch, agent):
    """status --json of a running daemon (writing egressd.db only): the
    rows of egressd.db and egressd-3.db, the oldest of either (file 3's,
    made older)."""
    a = agent(**ONE_FILE)
    a.wait_ready(2)
    operations(orch)
    add_file(a.dir, 3, dt=-1000.0)
    st = json.loads(run_tool([binary("EGRESSCTL_BIN"), "-c", a.config,
                              "status", "--json"]).stdout)["database"]
    count = "SELECT count(*) FROM processes"
    ((n1,),) = rows(db_file(a.dir, 1), count)
    ((n3,),) = rows(db_file(a.dir, 3), count)
    assert n1 == n3 > 0 and st["rows"]["processes"] == n1 + n3, st
    ((oldest,),) = rows(db_file(a.dir, 3), "SELECT min(created_at) FROM "
                        "processes")
    assert st["oldest"]["process"] == pytest.approx(oldest), st
    ((finished,),) = rows(db_file(a.dir, 3), "SELECT min(ended_at) FROM "
                          "processes WHERE parent_pid IS NULL")
    assert st["oldest"]["finished_operation"] == pytest.approx(finished)
