"""orchestrator.proxy / no_proxy (issue 14): the configured proxy overrides
libcurl's environment, the start-up log names it without credentials, and
`egressd -T` reports each step.  The proxy is tests/integration/
forward_proxy.py (stdlib), so the suite needs no proxy package."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import binary, run_tool  # noqa: E402
from forward_proxy import ForwardProxy  # noqa: E402
from proto_helpers import (  # noqa: E402
    DEADLINE, free_closed_port, run_operations)
from proto_helpers import agent, orch, workdir  # noqa: E402,F401 (fixtures)


def hostport(url):
    return url.split("://", 1)[1]


def test_orchestrator_through_the_configured_proxy(orch, agent):
    with ForwardProxy() as p:
        creds_url = p.url.replace("http://", "http://user:s3cret@")
        # the environment names a dead proxy: the key overrides it
        a = agent(orchestrator={"proxy": creds_url},
                  env={"http_proxy": f"http://127.0.0.1:{free_closed_port()}"})
        a.wait_ready(2)
        (r,) = run_operations(orch, [{"path": "/api/v1/test/health"}])
        assert "generation" in r["result"], r
        assert hostport(orch.url) in p.seen(), p.seen()
        log = a.log()
        assert f"through proxy {p.url} (from orchestrator.proxy)" in log
        assert "s3cret" not in log
        a.stop()


def test_no_proxy_and_upper_case_http_proxy(orch, agent):
    dead = f"http://127.0.0.1:{free_closed_port()}"
    # libcurl ignores HTTP_PROXY (upper case) for http:// URLs; no_proxy
    # spares the orchestrator's host from the configured proxy
    a = agent(orchestrator={"proxy": dead, "no_proxy": "127.0.0.1"},
              env={"HTTP_PROXY": dead})
    a.wait_ready(2)
    assert "direct connection, no proxy" in a.log()


def test_verify_reports_each_step(orch, agent):
    a = agent(start=False)
    p = run_tool([binary("EGRESSD_BIN"), "-T", "-c", a.config],
                 timeout=DEADLINE)
    assert p.returncode == 0, p.stdout + p.stderr
    for line in ("proxy: none", "dns: ok", "connect: ok, 127.0.0.1 port",
                 "tls: not used", "http: status 200",
                 "auth: ok, token ID tid accepted"):
        assert line in p.stdout, p.stdout

    # a refused token is the auth step's failure; egressctl verify agrees
    with open(os.path.join(a.dir, "token"), "w") as f:
        f.write("wrong\n")
    p = run_tool([binary("EGRESSCTL_BIN"), "-c", a.config, "verify"],
                 timeout=DEADLINE)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "http: status 401" in p.stdout, p.stdout
    assert "auth: failed: HTTP 401" in p.stdout, p.stdout

    # a dead proxy is named as the proxy's failure, not the target's
    a.write_config({"orchestrator": {
        "proxy": f"http://127.0.0.1:{free_closed_port()}"}})
    p = run_tool([binary("EGRESSD_BIN"), "-T", "-c", a.config],
                 timeout=DEADLINE)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "proxy: failed: proxy http://127.0.0.1:" in p.stdout, p.stdout


def test_t_names_each_missing_thing(agent, workdir):
    a = agent(url="http://127.0.0.1:9", token="t", start=False,
              server={"state_dir": "missing", "pidfile": "nodir/x.pid"},
              orchestrator={"ca_file": "ca.pem"})
    os.chmod(os.path.join(a.dir, "token"), 0o640)
    with open(os.path.join(a.dir, "ca.pem"), "w") as f:
        f.write("not a certificate\n")
    p = run_tool([binary("EGRESSD_BIN"), "-t", "-c", a.config],
                 timeout=DEADLINE)
    assert p.returncode == 2, p.stdout + p.stderr
    lines = p.stderr.splitlines()
    for key in ("server.state_dir:", "server.pidfile:",
                "orchestrator.token_file:", "orchestrator.ca_file:"):
        assert sum(1 for ln in lines if ln.startswith(key)) == 1, lines
    assert "holds no PEM certificate" in p.stderr
    assert "chmod 600" in p.stderr
