"""What start-up leaves to first use: the libraries' process-wide state.

GnuTLS comes in with libcurl's LDAP and RTMP support and is never used;
its load-time initialisation is skipped (src/master/main.c).  libcurl's
own initialisation, which loads OpenSSL's configuration, is made by the
first HTTP client of the process (src/core/httpc.c): never in a master
without an orchestrator, and before the first fork in one with.  Both
are memory (bench/README.md, "Memory"); these tests see them from outside:
GnuTLS logs its initialisation when GNUTLS_DEBUG_LEVEL is set, and OpenSSL
opening a FIFO named by OPENSSL_CONF blocks until someone writes to it.
"""

import errno
import os

import pytest

from conftest import DEADLINE, children_of, wait_until
from proto_helpers import (free_closed_port, new_token, reload_ctl,
                           tls_orchestrator)
from proto_helpers import agent  # noqa: F401 (fixture)


def _maps(pid):
    with open(f"/proc/{pid}/maps") as f:
        return f.read()


def _fifo_reader(path):
    """Whether a process has the FIFO open for reading (is blocked in it)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as e:
        if e.errno == errno.ENXIO:
            return False
        raise
    os.close(fd)            # the reader sees an empty file and goes on
    return True


@pytest.fixture
def openssl_fifo(workdir):
    """OPENSSL_CONF as a FIFO; a reader left blocked is let go at the end."""
    path = os.path.join(workdir, "openssl.cnf")
    os.mkfifo(path)
    yield path
    _fifo_reader(path)


def test_gnutls_is_not_initialised(egressd):
    d = egressd(wait=1, server={"workers": 1},
                env=dict(os.environ, GNUTLS_DEBUG_LEVEL="2"))
    if "libgnutls" not in _maps(d.pid):
        pytest.skip("this egressd does not load GnuTLS")
    h = d.health()
    assert h["ready"] == 1, h
    # gnutls_global_init() says "Enabled GnuTLS ... logging" at this level.
    assert "gnutls[" not in d.stderr(), d.stderr()[-2000:]


def test_no_orchestrator_no_openssl(egressd, openssl_fifo):
    # Were libcurl initialised, the master would stay blocked in the FIFO.
    d = egressd(wait=2, server={"workers": 2},
                env=dict(os.environ, OPENSSL_CONF=openssl_fifo))
    assert not _fifo_reader(openssl_fifo)
    assert len(children_of(d.pid)) == 2


def _blocked_in_fifo(pid):
    """Whether pid waits in open() for the FIFO's writer."""
    try:
        with open(f"/proc/{pid}/wchan") as f:
            return f.read().strip() == "wait_for_partner"
    except OSError:
        return False


def test_openssl_initialised_before_the_first_fork(agent, openssl_fifo):
    url = f"http://127.0.0.1:{free_closed_port()}"
    a = agent(url=url, token=new_token(), server={"workers": 2},
              env={"OPENSSL_CONF": openssl_fifo})

    def blocked():
        a.check_alive()
        return _blocked_in_fifo(a.pid)
    # Made once, by the master, before any worker: they inherit it.
    wait_until(blocked, DEADLINE, msg="the master to open OPENSSL_CONF")
    assert children_of(a.pid) == []
    assert _fifo_reader(openssl_fifo)       # let it go on
    wait_until(lambda: len(children_of(a.pid)) == 2, DEADLINE,
               msg="2 workers forked")


def test_https_orchestrator_added_by_a_reload(agent, workdir):
    # libcurl and OpenSSL made at a reload, by a master that ran without
    # them: the generation it forks then speaks TLS.
    o, cert = tls_orchestrator(workdir)
    try:
        a = agent(url="", token=o.token, server={"workers": 2})
        a.wait_ready(2, generation=1)
        a.write_config({"orchestrator": {"url": o.url, "ca_file": cert}})
        rc, out = reload_ctl(a)
        assert rc == 0, out
        a.wait_ready(2, generation=2)
        assert o.url.startswith("https://"), o.url
        wait_until(lambda: a.status()["stream"]["state"] == "connected",
                   DEADLINE, msg="the event stream over TLS")
    finally:
        o.stop()
