"""Configuration validation: `egressd -t` and start-up with a bad file."""

import os

import pytest

from conftest import DEFAULT_CONFIG, render_config, run_egressd

BASE = render_config(DEFAULT_CONFIG)
BASE_LINES = BASE.splitlines()


def _line_of(text, needle):
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(f"{needle!r} not in config")


def _replace(old, new):
    def f(text):
        assert old in text, old
        return text.replace(old, new, 1)
    return f


def _insert_after(needle, new_line):
    def f(text):
        lines = text.splitlines()
        i = _line_of(text, needle)
        lines.insert(i, new_line)
        return "\n".join(lines) + "\n"
    return f


def _append(block):
    return lambda text: text + block


# (id, mutation, text that marks the offending line, key in the message)
CASES = [
    ("unknown-key",
     _insert_after('pidfile = "egressd.pid";', "  bogus_key = 1;"),
     "bogus_key", "bogus_key"),
    ("unknown-section",
     _append("bogus_section: {\n  a = 1;\n};\n"),
     "bogus_section", "bogus_section"),
    ("nested-unknown-key",
     _append("operations: {\n  storage: {\n    enabled = false;\n"
             "    bogus_nested = 1;\n  };\n};\n"),
     "bogus_nested", "bogus_nested"),
    ("wrong-type-int",
     _replace("workers = 4;", 'workers = "four";'),
     "workers =", "workers"),
    ("wrong-type-float",
     _replace("graceful_timeout = 5.0;", 'graceful_timeout = "5";'),
     "graceful_timeout", "graceful_timeout"),
    ("wrong-type-bool",
     _insert_after("workers = 4;", '  daemonize = "no";'),
     "daemonize", "daemonize"),
    ("out-of-range",
     _replace("workers = 4;", "workers = 100000;"),
     "workers =", "workers"),
    ("out-of-range-zero",
     _replace("workers = 4;", "workers = 0;"),
     "workers =", "workers"),
    ("out-of-range-negative-float",
     _replace("heartbeat_interval = 0.5;", "heartbeat_interval = -1.0;"),
     "heartbeat_interval", "heartbeat_interval"),
    ("bad-enum",
     _replace('level = "debug";', 'level = "loud";'),
     "level =", "level"),
    ("bad-enum-format",
     _replace('format = "text";', 'format = "xml";'),
     "format =", "format"),
    ("syntax-error",
     _replace("graceful_timeout = 5.0;", "graceful_timeout = = 5.0;"),
     "graceful_timeout", None),
]


def _check_message(r, conf, line, key):
    assert r.returncode == 2, r
    err = r.stderr.strip()
    assert err, f"nothing on stderr (stdout: {r.stdout!r})"
    assert len(err.splitlines()) == 1, f"not one line: {err!r}"
    name = os.path.basename(conf)
    if line is not None:
        assert f"{name}:{line}" in err, \
            f"expected {name}:{line} in {err!r}"
    else:
        assert name in err, err
    if key is not None:
        assert key in err, f"expected key {key!r} in {err!r}"


@pytest.mark.parametrize("mutate,marker,key",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_check_bad_config(workdir, egressd_bin, mutate, marker, key):
    text = mutate(BASE)
    conf = os.path.join(workdir, "bad.conf")
    with open(conf, "w") as f:
        f.write(text)
    r = run_egressd(egressd_bin, "-t", "-c", conf, cwd=workdir)
    _check_message(r, conf, _line_of(text, marker), key)


def test_check_missing_file(workdir, egressd_bin):
    conf = os.path.join(workdir, "missing.conf")
    r = run_egressd(egressd_bin, "-t", "-c", conf, cwd=workdir)
    _check_message(r, conf, None, None)


def test_check_unreadable_file(workdir, egressd_bin):
    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode")
    conf = os.path.join(workdir, "secret.conf")
    with open(conf, "w") as f:
        f.write(BASE)
    os.chmod(conf, 0)
    r = run_egressd(egressd_bin, "-t", "-c", conf, cwd=workdir)
    _check_message(r, conf, None, None)


def test_check_valid_config(workdir, egressd_bin):
    conf = os.path.join(workdir, "good.conf")
    with open(conf, "w") as f:
        f.write(BASE)
    r = run_egressd(egressd_bin, "-t", "-c", conf, cwd=workdir)
    assert r.returncode == 0, r
    assert "OK" in r.stdout + r.stderr, r
    # -t starts nothing
    assert not os.path.exists(os.path.join(workdir, "egressd.pid"))
    assert not os.path.exists(os.path.join(workdir, "egressd.sock"))


@pytest.mark.parametrize("mutate,marker,key",
                         [c[1:] for c in CASES if c[0] in
                          ("unknown-key", "out-of-range", "syntax-error")],
                         ids=["unknown-key", "out-of-range", "syntax-error"])
def test_start_with_bad_config(workdir, egressd_bin, mutate, marker, key):
    text = mutate(BASE)
    conf = os.path.join(workdir, "bad.conf")
    with open(conf, "w") as f:
        f.write(text)
    r = run_egressd(egressd_bin, "-c", conf, cwd=workdir)
    _check_message(r, conf, _line_of(text, marker), key)
    assert not os.path.exists(os.path.join(workdir, "egressd.pid"))
    assert not os.path.exists(os.path.join(workdir, "egressd.sock"))
