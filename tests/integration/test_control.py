"""The control socket protocol and egressctl."""

import json
import os
import signal
import socket
import time

import pytest

from conftest import (SHORT, Control, pid_alive, run_ctl, wait_until,
                      write_config)

BAD_REQUESTS = [
    b"garbage",
    b"{not json",
    b'{"cmd":"status"',
    b"[1, 2, 3]",
    b'["status"]',
    b'"status"',
    b"42",
    b"null",
    b'{"cmd":"frobnicate"}',
    b"{}",
    b'{"command":"status"}',
    b'{"cmd":5}',
    b'{"cmd":null}',
    b'{"cmd":"scale","workers":"3"}',
    b'{"cmd":"scale"}',
    b'{"cmd":"health","worker":9999}',
    b'{"cmd":"health","worker":"x"}',
    b'{"cmd":"stop","fast":"yes"}',
]


def _assert_error(rep, req):
    assert isinstance(rep, dict), (req, rep)
    assert rep.get("ok") is False, (req, rep)
    assert isinstance(rep.get("error"), str) and rep["error"], (req, rep)


def test_malformed_requests(egressd):
    d = egressd(wait=4)
    h0 = d.health()
    pids = {w["pid"] for w in h0["workers"]}

    with Control(d.sock) as c:
        for req in BAD_REQUESTS:
            _assert_error(c.request(req), req)
            # the connection stays usable after an error
            rep = c.request({"cmd": "status"})
            assert rep.get("ok") is True, (req, rep)
            assert rep["pid"] == d.pid

        # a valid per-worker health request on the same connection
        wid = h0["workers"][0]["id"]
        rep = c.request({"cmd": "health", "worker": wid})
        assert rep["ok"] is True, rep
        assert [w["id"] for w in rep["workers"]] == [wid], rep

        # two requests in one write: two replies, in order
        c.send_raw(b'{"cmd":"status"}\n{"cmd":"health"}\n')
        r1, r2 = c.read_reply(), c.read_reply()
        assert r1["ok"] and "state" in r1, r1
        assert r2["ok"] and isinstance(r2["workers"], list), r2

    # clients that send a request and leave without reading the reply
    for _ in range(20):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(d.sock)
        s.sendall(b'{"cmd":"health"}\n')
        s.close()

    # a 100 KiB line without a newline: error reply, then the connection
    # is closed by the master
    with Control(d.sock) as c:
        try:
            c.send_raw(b"a" * (100 * 1024))
        except (BrokenPipeError, ConnectionResetError):
            pass
        _assert_error(c.read_reply(), "100 KiB line")
        assert c.rfile.readline() == b"", "connection not closed"

    # 50 idle connections (one with half a request) do not block the master
    idle = [Control(d.sock) for _ in range(50)]
    try:
        idle[0].send_raw(b'{"cmd":"sta')
        s = d.status()
        assert s["pid"] == d.pid and s["workers"] == 4, s
    finally:
        for c in idle:
            c.close()

    d.check_alive()
    h = d.health()
    assert {w["pid"] for w in h["workers"]} == pids, h
    assert h["ready"] == 4 and h["status"] == "healthy", h
    assert all(pid_alive(p) for p in pids)
    assert d.status()["state"] == "running"


def test_scale_and_reload_requests(egressd):
    d = egressd(wait=4)
    rep = d.ctl({"cmd": "reload"})
    assert rep.get("ok") is True, rep
    d.wait_ready(4, generation=2)
    rep = d.ctl({"cmd": "scale", "workers": 2})
    assert rep.get("ok") is True and rep.get("target") == 2, rep
    d.wait_ready(2)
    rep = d.ctl({"cmd": "scale", "workers": 3})
    assert rep.get("ok") is True and rep.get("target") == 3, rep
    d.wait_ready(3)
    rep = d.ctl({"cmd": "stop", "fast": False})
    assert rep.get("ok") is True, rep
    assert d.wait_exit() == 0


def test_egressctl_without_daemon(workdir, egressctl_bin):
    sock = os.path.join(workdir, "egressd.sock")
    r = run_ctl(egressctl_bin, "-s", sock, "health")
    assert r.returncode == 2, r
    msg = (r.stderr + r.stdout).strip()
    assert msg, "egressctl said nothing"
    low = msg.lower()
    assert sock in msg or "connect" in low or "not running" in low \
        or "unreachable" in low, msg

    conf = write_config(workdir)
    r = run_ctl(egressctl_bin, "-c", conf, "health")
    assert r.returncode == 2, r
    assert (r.stderr + r.stdout).strip()

    r = run_ctl(egressctl_bin, "-s", sock, "status")
    assert r.returncode != 0, r


def test_egressctl_commands(egressd, egressctl_bin):
    d = egressd(wait=4)

    r = run_ctl(egressctl_bin, "-c", d.config, "status")
    assert r.returncode == 0, r
    assert str(d.pid) in r.stdout, r.stdout

    r = run_ctl(egressctl_bin, "-s", d.sock, "health")
    assert r.returncode == 0, r
    assert "healthy" in r.stdout.lower(), r.stdout

    r = run_ctl(egressctl_bin, "-s", d.sock, "health", "--json")
    assert r.returncode == 0, r
    rep = json.loads(r.stdout)
    assert rep["ok"] is True and rep["status"] == "healthy", rep
    assert len(rep["workers"]) == 4 and rep["pid"] == d.pid, rep

    wid = rep["workers"][2]["id"]
    r = run_ctl(egressctl_bin, "-s", d.sock, "health", "--json", wid)
    assert r.returncode == 0, r
    one = json.loads(r.stdout)
    assert [w["id"] for w in one["workers"]] == [wid], one

    r = run_ctl(egressctl_bin, "-s", d.sock, "health", "9999")
    assert r.returncode != 0, r

    r = run_ctl(egressctl_bin, "-s", d.sock, "reload")
    assert r.returncode == 0, r
    d.wait_ready(4, generation=2)

    r = run_ctl(egressctl_bin, "-c", d.config, "scale", "3")
    assert r.returncode == 0, r
    d.wait_ready(3)
    pids = {w["pid"] for w in d.workers()}

    r = run_ctl(egressctl_bin, "-s", d.sock, "stop")
    assert r.returncode == 0, r
    assert d.wait_exit() == 0
    wait_until(lambda: not [p for p in pids if pid_alive(p)],
               msg="workers to exit")
    assert not os.path.exists(d.pidfile)
    assert not os.path.exists(d.sock)


def test_egressctl_stop_fast(egressd, egressctl_bin):
    d = egressd(wait=2, server={"workers": 2})
    pids = {w["pid"] for w in d.workers()}
    r = run_ctl(egressctl_bin, "-s", d.sock, "stop", "--fast")
    assert r.returncode == 0, r
    assert d.wait_exit() == 0
    wait_until(lambda: not [p for p in pids if pid_alive(p)],
               msg="workers to exit")


def test_deep_health_asks_every_worker(egressd, egressctl_bin):
    d = egressd(wait=3, server={"workers": 3})
    ids = {w["pid"]: w["instance_id"] for w in d.health()["workers"]}

    r = run_ctl(egressctl_bin, "-s", d.sock, "health", "--deep", "--json")
    assert r.returncode == 0, r
    rep = json.loads(r.stdout)
    assert rep["ok"] is True and len(rep["workers"]) == 3, rep
    for w in rep["workers"]:
        live = w["live"]
        assert isinstance(live, dict), w
        # the detail comes from the worker itself
        assert live["pid"] == w["pid"], w
        assert live["instance_id"] == ids[w["pid"]], w
        assert live["state"] == "ready", w

    r = run_ctl(egressctl_bin, "-s", d.sock, "health", "--deep")
    assert r.returncode == 0, r
    assert r.stdout.count("live: ready") == 3, r.stdout

    with Control(d.sock) as c:
        rep = c.request({"cmd": "health", "deep": "yes"})
        _assert_error(rep, "deep must be a boolean")


def test_deep_health_does_not_wait_for_a_hung_worker(egressd):
    d = egressd(wait=2, server={"workers": 2, "worker_timeout": 30.0})
    victim = d.health()["workers"][0]
    os.kill(victim["pid"], signal.SIGSTOP)
    try:
        with Control(d.sock) as deep, Control(d.sock) as other:
            t0 = time.monotonic()
            deep.send_raw(b'{"cmd":"health","deep":true}\n')
            # the master keeps serving while the deep request waits
            rep = other.request({"cmd": "status"})
            assert rep["ok"] is True and rep["pid"] == d.pid, rep
            rep = deep.read_reply()
            waited = time.monotonic() - t0
        ws = {w["pid"]: w for w in rep["workers"]}
        assert ws[victim["pid"]]["live"] is None, rep
        others = [w for p, w in ws.items() if p != victim["pid"]]
        assert others, rep
        assert all(isinstance(w["live"], dict) for w in others), rep
        assert waited < SHORT, waited
    finally:
        os.kill(victim["pid"], signal.SIGCONT)
