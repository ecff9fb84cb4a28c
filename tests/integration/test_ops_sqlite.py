"""The sqlite operation (/api/v1/agent/execute/sqlite, DESIGN.md section 5)
through the real daemon: operations reach a worker from the fake
orchestrator and their results come back in result PUTs.

A database made here is named in operations.sqlite.databases; the tests
check a query with parameters, the row cap, that every kind of write is
refused and leaves the file byte for byte as it was, the time limit, an
unknown database and bad parameters."""

import hashlib
import os
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import render_config  # noqa: E402
from proto_helpers import run_operations  # noqa: E402
from proto_helpers import agent, orch, workdir  # noqa: E402,F401 (fixtures)

SQLITE_PATH = "/api/v1/agent/execute/sqlite"
MAX_ROWS = 3


def make_db(path):
    con = sqlite3.connect(path)
    try:
        con.executescript(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, qty REAL);"
            "INSERT INTO items VALUES (1, 'bolt', 10), (2, 'nut', 2.5),"
            " (3, 'gear', NULL), (4, 'cog', 7), (5, 'pin', 0);")
        con.commit()
    finally:
        con.close()


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def start(agent, workdir):
    """egressd with operations.sqlite naming inventory.db; -> (agent, db)."""
    db = os.path.join(workdir, "inventory.db")
    make_db(db)
    a = agent(start=False)
    ops = ("operations: {\n"
           "  sqlite: {\n"
           "    enabled = true;\n"
           "    databases = (\n"
           "      { name = \"inventory\"; path = \"inventory.db\"; } );\n"
           f"    max_rows = {MAX_ROWS};\n"
           "    timeout = 0.5;\n"
           "  };\n"
           "};\n")
    with open(a.config, "w") as f:
        f.write(render_config(a.cfg, extra=ops))
    a.start()
    a.wait_ready(2)
    return a, db


def run_ops(orch, bodies):
    """Enqueue one sqlite operation per body; -> their results, in order."""
    return [r["result"] for r in run_operations(
        orch, [{"path": SQLITE_PATH, "operation": b} for b in bodies])]


def assert_error(result, error_type, needle):
    assert result.get("error_type") == error_type, result
    assert needle in result.get("error", ""), result


def test_query_and_row_cap(orch, agent, workdir):
    a, db = start(agent, workdir)
    before = digest(db)
    sel, capped, small = run_ops(orch, [
        {"database": "inventory",
         "sql": "SELECT id, name, qty FROM items WHERE id > ? AND name <> ? "
                "ORDER BY id",
         "params": [1, "cog"]},
        {"database": "inventory", "sql": "SELECT id FROM items",
         "max_rows": 100},
        {"database": "inventory", "sql": "SELECT id FROM items ORDER BY id",
         "max_rows": 2},
    ])
    assert "error" not in sel, sel
    assert sel["columns"] == ["id", "name", "qty"]
    assert sel["rows"] == [[2, "nut", 2.5], [3, "gear", None], [5, "pin", 0]]
    assert sel["truncated"] is False
    # the configured cap wins over a larger request, a smaller one wins
    assert len(capped["rows"]) == MAX_ROWS and capped["truncated"] is True
    assert small["rows"] == [[1], [2]] and small["truncated"] is True
    assert digest(db) == before


def test_writes_refused_file_unchanged(orch, agent, workdir):
    a, db = start(agent, workdir)
    other = os.path.join(workdir, "other.db")
    make_db(other)
    before = digest(db)
    copy = os.path.join(workdir, "copy.db")
    statements = [
        "INSERT INTO items (id, name) VALUES (9, 'x')",
        "DELETE FROM items",
        "UPDATE items SET qty = 0",
        "DROP TABLE items",
        "CREATE TABLE t (a)",
        "PRAGMA query_only=0; INSERT INTO items (id) VALUES (9)",
        "PRAGMA query_only = 0",
        "PRAGMA journal_mode = WAL",
        "SELECT 1; DELETE FROM items",
        f"ATTACH '{other}' AS o",
        f"VACUUM INTO '{copy}'",
    ]
    results = run_ops(orch, [{"database": "inventory", "sql": s}
                             for s in statements])
    for sql, r in zip(statements, results):
        assert r.get("error_type") == "invalid_request", (sql, r)
    assert "write statements are not allowed" in results[0]["error"]
    assert "PRAGMA" in results[5]["error"]
    assert "one statement" in results[8]["error"]
    assert "ATTACH" in results[9]["error"]
    assert digest(db) == before
    assert not os.path.exists(copy)
    assert not os.path.exists(db + "-wal")
    # the rows are all still there
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        assert con.execute("SELECT count(*) FROM items").fetchone()[0] == 5
    finally:
        con.close()


def test_timeout_unknown_and_bad_params(orch, agent, workdir):
    a, db = start(agent, workdir)
    forever, unknown, nested, count = run_ops(orch, [
        {"database": "inventory",
         "sql": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL "
                "SELECT x + 1 FROM c) SELECT count(*) FROM c"},
        {"database": "nosuch", "sql": "SELECT 1"},
        {"database": "inventory", "sql": "SELECT ?", "params": [[1, 2]]},
        {"database": "inventory", "sql": "SELECT ?, ?", "params": [1]},
    ])
    assert_error(forever, "timeout", "time limit")
    assert_error(unknown, "not_found", "nosuch")
    assert_error(nested, "invalid_request", "params[0]")
    assert_error(count, "invalid_request", "takes 2 parameters")
    # the worker that ran the endless query goes on serving
    (again,) = run_ops(orch, [{"database": "inventory",
                               "sql": "SELECT count(*) FROM items"}])
    assert again["rows"] == [[5]], again


def test_functions_allow_list(orch, agent, workdir):
    """Only listed SQL functions run: fts3_tokenizer(), which returns a
    pointer into the worker's memory, is refused, and so is anything else
    not on the list; the usual functions work."""
    a, db = start(agent, workdir)
    tok, rnd, ver, fine = run_ops(orch, [
        {"database": "inventory", "sql": "SELECT fts3_tokenizer('simple')"},
        {"database": "inventory", "sql": "SELECT random()"},
        {"database": "inventory", "sql": "SELECT sqlite_version()"},
        {"database": "inventory",
         "sql": "SELECT count(*), sum(qty), upper(min(name)), "
                "json_extract('{\"k\": 7}', '$.k') FROM items"},
    ])
    for r in (tok, rnd, ver):
        assert_error(r, "invalid_request", "not authorized")
    assert "rows" not in tok
    assert "fts3_tokenizer" in tok["error"]
    assert fine.get("rows") == [[5, 19.5, "BOLT", 7]], fine
