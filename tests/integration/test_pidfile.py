"""The pidfile: one master per pidfile, stale pidfiles are replaced."""

import os
import subprocess

from conftest import pid_alive, run_egressd, write_config


def test_second_instance_refused(egressd, egressd_bin):
    d = egressd(wait=2, server={"workers": 2})
    pids = {w["pid"] for w in d.workers()}

    r = run_egressd(egressd_bin, "-c", d.config, cwd=d.dir)
    assert r.returncode == 1, r
    # the refusal must reach whoever ran the command, not only the log file
    msg = r.stderr + r.stdout
    logged = [l for l in d.log().splitlines() if "refus" in l]
    assert "pidfile" in msg.lower() and str(d.pid) in msg, \
        f"no message naming the pidfile and pid {d.pid} on stderr/stdout " \
        f"(stderr {r.stderr!r}); log lines: {logged}"

    # the first one is untouched
    d.check_alive()
    with open(d.pidfile) as f:
        assert f.read() == f"{d.pid}\n"
    assert os.path.exists(d.sock)
    s = d.status()
    assert s["pid"] == d.pid and s["ready"] == 2, s
    assert {w["pid"] for w in d.workers()} == pids
    assert all(pid_alive(p) for p in pids)


def test_stale_pidfile_replaced(egressd, workdir):
    p = subprocess.Popen(["true"])
    p.wait()
    dead = p.pid
    assert not pid_alive(dead)
    with open(os.path.join(workdir, "egressd.pid"), "w") as f:
        f.write(f"{dead}\n")

    d = egressd(wait=2, server={"workers": 2})
    with open(d.pidfile) as f:
        assert f.read() == f"{d.pid}\n"
    assert d.status()["pid"] == d.pid
