"""Storage operations (DESIGN.md section 5) through the real daemon: a
write/read/list/delete round trip under operations.storage.root, and escapes
(../, absolute keys, symlinks out of the root) and oversize writes refused
with error results while the workers go on."""

import base64
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from proto_helpers import kick, run_operations, wait_results  # noqa: E402
from proto_helpers import agent, orch, workdir  # noqa: E402,F401 (fixtures)

STORAGE = "/api/v1/agent/execute/storage/"
HEALTH_PATH = "/api/v1/test/health"
MAX_BYTES = 4096
SECRET = b"outside the root\n"


def _start(agent, workdir, **storage):
    """egressd with storage enabled on workdir/objects, beside
    workdir/outside/secret; -> (agent, root, outside)."""
    root = os.path.join(workdir, "objects")
    outside = os.path.join(workdir, "outside")
    os.makedirs(root)
    os.makedirs(outside)
    with open(os.path.join(outside, "secret"), "wb") as f:
        f.write(SECRET)
    group = {"enabled": True, "root": root, "max_bytes": MAX_BYTES}
    group.update(storage)
    a = agent(operations={"storage": group})
    a.wait_ready(2)
    return a, root, outside


def _run(orch, ops):
    """Run [(method, body), ...] (in any order, on any worker); -> their
    results, in the order given."""
    return [r["result"] for r in run_operations(
        orch, [{"path": STORAGE + m, "operation": b} for m, b in ops])]


def _ok(result, what):
    assert "error" not in result, f"{what}: {result}"
    return result


def _tree(path):
    """{relative path: bytes or None for a directory or symlink}."""
    out = {}
    for d, dirs, files in os.walk(path):
        for name in dirs + files:
            p = os.path.join(d, name)
            rel = os.path.relpath(p, path)
            if os.path.islink(p) or os.path.isdir(p):
                out[rel] = None
            else:
                with open(p, "rb") as f:
                    out[rel] = f.read()
    return out


def test_storage_round_trip(orch, agent, workdir):
    a, root, _ = _start(agent, workdir)
    blob = bytes(range(256)) * 3
    objects = {
        "docs/a.txt": "h\u00e9llo",
        "docs/sub/b.txt": "second",
        "docs-index": "top level",
        "conf/app.json": '{"n": 1, "list": [true, null]}',
    }
    ops = [("write", {"key": k, "data": v}) for k, v in objects.items()]
    ops.append(("write", {"key": "bin/blob", "encoding": "base64",
                          "data": base64.b64encode(blob).decode()}))
    for (method, body), r in zip(ops, _run(orch, ops)):
        _ok(r, f"write {body['key']}")
        assert r["key"] == body["key"]
    sizes = {k: len(v.encode()) for k, v in objects.items()}
    sizes["bin/blob"] = len(blob)
    assert {k: len(v) for k, v in _tree(root).items() if v is not None} \
        == sizes, "files on disk differ from what was written"

    reads = _run(orch, [("read", {"key": k}) for k in objects] +
                 [("read", {"key": "bin/blob"}),
                  ("read_json", {"key": "conf/app.json"}),
                  ("exists", {"key": "docs/a.txt"}),
                  ("exists", {"key": "docs/missing"}),
                  ("read", {"key": "docs/missing"})])
    for k, r in zip(objects, reads):
        _ok(r, f"read {k}")
        assert (r["key"], r["encoding"], r["data"], r["size"]) == \
            (k, "utf-8", objects[k], sizes[k])
    r = _ok(reads[4], "read bin/blob")
    assert r["encoding"] == "base64" and r["size"] == len(blob)
    assert base64.b64decode(r["data"]) == blob
    r = _ok(reads[5], "read_json")
    assert r["data"] == {"n": 1, "list": [True, None]}
    assert reads[6] == {"key": "docs/a.txt", "exists": True}
    assert reads[7] == {"key": "docs/missing", "exists": False}
    assert reads[8].get("error_type") == "not_found", reads[8]

    # every key, two at a time, in sorted order; then a prefix
    keys, cursor = [], None
    for _ in range(10):
        body = {"limit": 2}
        if cursor is not None:
            body["cursor"] = cursor
        (r,) = _run(orch, [("list_objects", body)])
        _ok(r, f"list_objects {body}")
        assert len(r["keys"]) <= 2
        keys += r["keys"]
        cursor = r["next_cursor"]
        if cursor is None:
            break
        assert cursor == r["keys"][-1]
    assert keys == sorted(sizes), keys
    (r,) = _run(orch, [("list_objects", {"prefix": "docs/"})])
    assert _ok(r, "list docs/") == {"keys": ["docs/a.txt", "docs/sub/b.txt"],
                                    "next_cursor": None}

    dels = _run(orch, [("delete", {"key": "docs/a.txt"}),
                       ("delete", {"key": "docs/never"})])
    assert _ok(dels[0], "delete") == {"key": "docs/a.txt", "deleted": True}
    assert _ok(dels[1], "delete") == {"key": "docs/never", "deleted": False}
    assert not os.path.exists(os.path.join(root, "docs", "a.txt"))
    (r,) = _run(orch, [("list_objects", {"prefix": "docs"})])
    assert _ok(r, "list docs")["keys"] == ["docs-index", "docs/sub/b.txt"]
    a.check_alive()


def test_storage_refusals(orch, agent, workdir):
    a, root, outside = _start(agent, workdir)
    os.symlink("../outside", os.path.join(root, "out"))
    os.symlink(os.path.join(outside, "secret"), os.path.join(root, "sfile"))
    before_out = _tree(outside)
    before_work = sorted(os.listdir(workdir))
    pids = a.worker_pids()

    cases = [
        (("read", {"key": "../outside/secret"}), "invalid_request"),
        (("write", {"key": "../outside/evil", "data": "x"}),
         "invalid_request"),
        (("write", {"key": "a/../../escape", "data": "x"}),
         "invalid_request"),
        (("read", {"key": "/etc/passwd"}), "invalid_request"),
        (("delete", {"key": "../outside/secret"}), "invalid_request"),
        (("list_objects", {"prefix": "../"}), "invalid_request"),
        (("read", {"key": "sfile"}), "capability_denied"),
        (("read", {"key": "out/secret"}), "capability_denied"),
        (("write", {"key": "out/evil", "data": "x"}), "capability_denied"),
        (("write", {"key": "out/new/evil", "data": "x"}),
         "capability_denied"),
        (("write", {"key": "sfile", "data": "x"}), "capability_denied"),
        (("delete", {"key": "out/secret"}), "capability_denied"),
        (("write", {"key": "big/one", "data": "x" * (MAX_BYTES + 1)}),
         "limit_exceeded"),
        (("write", {"key": "big/two", "encoding": "base64",
                    "data": base64.b64encode(b"\0" * (MAX_BYTES + 3))
                    .decode()}), "limit_exceeded"),
        (("write", {"key": "k"}), "invalid_request"),
        (("rename", {"key": "k"}), "unsupported"),
    ]
    results = _run(orch, [op for op, _ in cases])
    for (op, want), r in zip(cases, results):
        assert r.get("error_type") == want, f"{op}: {r}"
        assert r.get("error"), f"{op}: {r}"

    assert _tree(outside) == before_out, "outside the root changed"
    assert sorted(os.listdir(workdir)) == before_work
    assert sorted(os.listdir(root)) == ["out", "sfile"], \
        "something was created under the root"
    with open(os.path.join(outside, "secret"), "rb") as f:
        assert f.read() == SECRET

    # the workers go on: same processes, storage and health still answer
    ids = orch.enqueue([{"path": HEALTH_PATH},
                        {"path": HEALTH_PATH}])["operation_ids"]
    kick(orch)
    res = wait_results(orch, ids)
    for op_id in ids:
        assert res[op_id][0]["result"].get("status") == "ok", res[op_id]
    (w,) = _run(orch, [("write", {"key": "after", "data": "still here"})])
    _ok(w, "write after refusals")
    (r,) = _run(orch, [("read", {"key": "after"})])
    assert _ok(r, "read after refusals")["data"] == "still here"
    a.check_alive()
    assert a.worker_pids() == pids, "a worker was replaced"


def test_storage_no_symlinks(orch, agent, workdir):
    a, root, _ = _start(agent, workdir, no_symlinks=True)
    with open(os.path.join(root, "real.txt"), "w") as f:
        f.write("real")
    os.symlink("real.txt", os.path.join(root, "alias"))
    res = _run(orch, [("read", {"key": "alias"}),
                      ("read", {"key": "real.txt"}),
                      ("list_objects", {})])
    assert res[0].get("error_type") == "capability_denied", res[0]
    assert "no_symlinks" in res[0]["error"]
    assert _ok(res[1], "read real.txt")["data"] == "real"
    assert _ok(res[2], "list")["keys"] == ["real.txt"]
    a.check_alive()


def test_storage_nul_refused(orch, agent, workdir):
    """A JSON string with \\u0000 is refused, never written cut short at the
    NUL; the same bytes as base64 are written whole."""
    a, root, _ = _start(agent, workdir)
    results = _run(orch, [
        ("write", {"key": "n", "data": "ab\x00cd"}),
        ("write", {"key": "n\x00x", "data": "ab"}),
        ("list_objects", {"prefix": "\x00"}),
    ])
    for r in results:
        assert r.get("error_type") == "invalid_request", r
    assert "NUL" in results[0]["error"], results[0]
    assert os.listdir(root) == []
    (w,) = _run(orch, [("write", {"key": "n", "encoding": "base64",
                                  "data": base64.b64encode(b"ab\0cd")
                                  .decode()})])
    assert _ok(w, "base64 write")["size"] == 5
    with open(os.path.join(root, "n"), "rb") as f:
        assert f.read() == b"ab\0cd"
    a.check_alive()


def test_storage_names_not_utf8(orch, agent, workdir):
    """A file name that is not UTF-8 is listed with \\xHH for each byte
    that is not (results stay valid UTF-8), and that spelling reads it."""
    a, root, _ = _start(agent, workdir)
    with open(os.path.join(os.fsencode(root), b"caf\xe9"), "wb") as f:
        f.write(b"latin-1 name")
    with open(os.path.join(root, "caf\u00e9"), "wb") as f:
        f.write(b"utf-8 name")
    (r,) = _run(orch, [("list_objects", {})])
    assert _ok(r, "list")["keys"] == ["caf\u00e9", "caf\\xE9"], r
    rd, bad = _run(orch, [("read", {"key": "caf\\xE9"}),
                          ("read", {"key": "caf\\xe9"})])
    assert _ok(rd, "read")["data"] == "latin-1 name"
    assert rd["key"] == "caf\\xE9"
    assert bad.get("error_type") == "invalid_request", bad
    a.check_alive()


def test_storage_symlink_out_of_prefix(orch, agent, workdir):
    """With storage:allowed/* only, a symlink under allowed/ leading to
    forbidden/ reaches nothing there: the capability is checked on the key
    a path resolves to, for every method."""
    a, root, _ = _start(agent, workdir, capabilities=[
        "storage:allowed/* read,write,delete"])
    os.makedirs(os.path.join(root, "allowed"))
    os.makedirs(os.path.join(root, "forbidden"))
    with open(os.path.join(root, "forbidden", "secret.txt"), "wb") as f:
        f.write(b"forbidden data")
    with open(os.path.join(root, "allowed", "ok.txt"), "wb") as f:
        f.write(b"fine")
    os.symlink("../forbidden", os.path.join(root, "allowed", "link"))
    os.symlink("../forbidden/secret.txt",
               os.path.join(root, "allowed", "slink"))
    os.symlink("ok.txt", os.path.join(root, "allowed", "inner"))
    before = _tree(os.path.join(root, "forbidden"))

    cases = [
        ("read", {"key": "allowed/link/secret.txt"}),
        ("read", {"key": "allowed/slink"}),
        ("read_json", {"key": "allowed/slink"}),
        ("exists", {"key": "allowed/link/secret.txt"}),
        ("exists", {"key": "allowed/link/nothing"}),
        ("write", {"key": "allowed/link/secret.txt", "data": "x"}),
        ("write", {"key": "allowed/link/new/file", "data": "x"}),
        ("delete", {"key": "allowed/link/secret.txt"}),
        ("read", {"key": "forbidden/secret.txt"}),
    ]
    results = _run(orch, cases)
    for op, r in zip(cases, results):
        assert r.get("error_type") == "capability_denied", (op, r)
        assert "forbidden data" not in str(r)
    ok, inner, listing = _run(orch, [
        ("read", {"key": "allowed/ok.txt"}),
        ("read", {"key": "allowed/inner"}),
        ("list_objects", {"prefix": "allowed/"})])
    assert _ok(ok, "read ok")["data"] == "fine"
    assert _ok(inner, "read inner")["data"] == "fine"
    assert _ok(listing, "list")["keys"] == ["allowed/inner",
                                            "allowed/ok.txt"]
    assert _tree(os.path.join(root, "forbidden")) == before
    a.check_alive()
