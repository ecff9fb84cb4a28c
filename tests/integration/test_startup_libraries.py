"""What start-up leaves out: GnuTLS's initialisation.

GnuTLS comes in with libcurl's LDAP and RTMP support and is never used;
its load-time initialisation is skipped (src/master/main.c): memory
(bench/README.md, "Memory").  The test sees it from outside: GnuTLS logs
its initialisation when GNUTLS_DEBUG_LEVEL is set.
"""

import os

import pytest


def _maps(pid):
    with open(f"/proc/{pid}/maps") as f:
        return f.read()


def test_gnutls_is_not_initialised(egressd):
    d = egressd(wait=1, server={"workers": 1},
                env=dict(os.environ, GNUTLS_DEBUG_LEVEL="2"))
    if "libgnutls" not in _maps(d.pid):
        pytest.skip("this egressd does not load GnuTLS")
    h = d.health()
    assert h["ready"] == 1, h
    # gnutls_global_init() says "Enabled GnuTLS ... logging" at this level.
    assert "gnutls[" not in d.stderr(), d.stderr()[-2000:]
