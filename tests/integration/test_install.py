"""What `make install` leaves on a machine, and the man pages against the
code: an edited configuration survives a second install (and an
uninstall), egressd.conf.default is always this version's, the unit, the
tmpfiles and logrotate snippets and the init script land with their modes
and name the installed paths; every key of conf/egressd.conf has its entry
in egressd.conf(5), every option of `egressd -h` and every command of
`egressctl -h` theirs in egressd(8) and egressctl(8).

The install runs `make` in the build directory (EGRESSD_BUILDDIR, set by
`make check`, else the directory of EGRESSD_BIN) into a temporary DESTDIR.
"""

import os
import re
import stat
import subprocess

import pytest

from common import SHORT, binary, run_tool, workdir_fixture

workdir = workdir_fixture("eginst-")

SRCDIR = os.environ.get("EGRESSD_SRCDIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONF = os.path.join(SRCDIR, "conf", "egressd.conf")
EDIT = "# edited by the operator\n"


def builddir():
    d = os.environ.get("EGRESSD_BUILDDIR") or os.path.dirname(
        binary("EGRESSD_BIN"))
    if not os.path.isfile(os.path.join(d, "Makefile")):
        pytest.fail(f"no Makefile in the build directory {d}: set "
                    "EGRESSD_BUILDDIR", pytrace=False)
    return d


def make(target, destdir):
    # Not the jobserver of a `make check` this may run under.
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEFILES")}
    r = subprocess.run(["make", "-C", builddir(), target,
                        f"DESTDIR={destdir}"], env=env,
                       stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=SHORT * 6)
    assert r.returncode == 0, f"make {target}: {r.stdout}\n{r.stderr}"
    return r.stdout


def find(root, name, under):
    """The one file called name in a directory ending in under."""
    hits = [os.path.join(d, name) for d, _, files in os.walk(root)
            if name in files and d.endswith(under)]
    assert len(hits) == 1, f"{name} under */{under}: {hits}"
    return hits[0]


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def test_install_twice_keeps_an_edited_config(workdir):
    dest = os.path.join(workdir, "root")
    make("install", dest)
    conf = find(dest, "egressd.conf", "/etc/egressd")
    default = find(dest, "egressd.conf.default", "/etc/egressd")
    assert read(conf) == read(CONF) == read(default)
    sbin = os.path.dirname(find(dest, "egressd", "/sbin"))
    assert mode(os.path.join(sbin, "egressd")) == 0o755
    assert mode(os.path.join(sbin, "egressctl")) == 0o755
    files = {
        "unit": find(dest, "egressd.service", "/systemd/system"),
        "tmpfiles": find(dest, "egressd.conf", "/tmpfiles.d"),
        "logrotate": find(dest, "egressd", "/etc/logrotate.d"),
        "init": find(dest, "egressd", "/etc/init.d"),
        "man8": find(dest, "egressd.8", "/man/man8"),
        "ctl8": find(dest, "egressctl.8", "/man/man8"),
        "man5": find(dest, "egressd.conf.5", "/man/man5"),
    }
    want = {"init": 0o755}
    for what, path in files.items():
        assert mode(path) == want.get(what, 0o644), (what, oct(mode(path)))
    for path in (conf, default):
        assert mode(path) == 0o644, path

    # The unit and the init script name where this install put things.
    installed_conf = conf[len(dest):]
    unit = read(files["unit"])
    sbin_path = sbin[len(dest):]
    assert (f"ExecStart={sbin_path}/egressd -c {installed_conf}\n"
            in unit), unit
    assert f"\nCONFIG={installed_conf}\n" in read(files["init"])
    assert installed_conf in read(files["man5"])

    # The operator edits; a second install keeps it, refreshes .default.
    with open(conf, "a", encoding="utf-8") as f:
        f.write(EDIT)
    with open(default, "w", encoding="utf-8") as f:
        f.write("stale\n")
    out = make("install", dest)
    assert "kept as it is" in out
    assert read(conf) == read(CONF) + EDIT
    assert read(default) == read(CONF)
    assert mode(files["init"]) == 0o755

    # Uninstall takes everything but the edited configuration.
    make("uninstall", dest)
    left = [os.path.join(d, f) for d, _, fs in os.walk(dest) for f in fs]
    assert left == [conf], left


def conf_keys():
    """[(group.path, key)] of conf/egressd.conf in order: the keys that
    start a line inside a group (list entries are documented with their
    list's key)."""
    keys, stack, pending = [], [], None
    for line in read(CONF).splitlines():
        line = line.split("#", 1)[0].strip()
        if m := re.fullmatch(r"(\w+)\s*:", line):
            pending = m.group(1)
        elif line == "{" and pending:
            stack.append(pending)
            pending = None
        elif line.startswith("}"):
            stack.pop()
        elif (m := re.match(r"(\w+)\s*=", line)) and stack:
            keys.append((".".join(stack), m.group(1)))
    return keys


def man_entries(page):
    """[(subsection, name)] of every `.It Cm name` in docs/PAGE."""
    out, section = [], ""
    for line in read(os.path.join(SRCDIR, "docs", page)).splitlines():
        if line.startswith(".Ss "):
            section = line[4:].strip()
        elif m := re.match(r"\.It Cm (\S+)", line):
            out.append((section, m.group(1)))
    return out


def test_every_config_key_in_the_man_page():
    keys = conf_keys()
    assert len(keys) > 60 and ("server", "workers") in keys
    entries = man_entries("egressd.conf.5")
    missing = [f"{g}.{k}" for g, k in keys if (g, k) not in entries]
    assert not missing, f"keys without an entry in egressd.conf(5): " \
        f"{missing}"
    # In the file's order, so a reader can go from one to the other.
    order = [e for e in entries if e in keys]
    assert order == keys


def test_every_option_and_command_in_the_man_pages():
    egressd = run_tool([binary("EGRESSD_BIN"), "-h"])
    assert egressd.returncode == 0
    page = read(os.path.join(SRCDIR, "docs", "egressd.8"))
    flags = re.findall(r"^\s+-(\w)\b", egressd.stdout, re.M)
    assert len(flags) >= 6
    for flag in flags:
        assert f".It Fl {flag}" in page, f"egressd -{flag} not in egressd(8)"

    ctl = run_tool([binary("EGRESSCTL_BIN"), "-h"])
    assert ctl.returncode == 0
    page = read(os.path.join(SRCDIR, "docs", "egressctl.8"))
    flags = re.findall(r"^\s+-(\w)\b", ctl.stdout, re.M)
    commands = re.findall(r"^  (\w+)\b", ctl.stdout.split("commands:")[1],
                          re.M)
    assert len(flags) >= 5 and len(commands) >= 9
    for flag in flags:
        assert f".It Fl {flag}" in page, f"egressctl -{flag} not in the page"
    documented = {name for _, name in man_entries("egressctl.8")}
    missing = set(commands) - documented
    assert not missing, f"egressctl commands not in egressctl(8): {missing}"
    # Each command's options, as the help shows them, are in its entry.
    for line in ctl.stdout.split("commands:")[1].splitlines():
        if m := re.match(r"^  (\w+) (.*?)(\s{2,}|$)", line):
            for opt in re.findall(r"--([\w-]+)", m.group(2)):
                assert f"Fl -{opt}" in page, f"{m.group(1)} --{opt}"
