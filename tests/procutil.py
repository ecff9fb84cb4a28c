"""Process helpers shared by the integration tests (tests/integration/
common.py) and the benchmarks (bench/harness.py): a pid's state, parent,
children and CPU time from /proc, killing, waiting for processes to exit,
and stopping a process started with subprocess.  Linux only; standard
library only.

One rule throughout: a zombie is not alive.  A process in state Z (or X,
while its parent reaps it) has exited and only its exit status is left;
kill(pid, 0) still succeeds on it, so that test is not used here.  Counted
as alive, a zombie would make a wait for its exit last until its parent
gets round to reaping it, or for ever when the parent is stopped.
"""

import os
import signal
import subprocess
import time

POLL = 0.02                     # polling interval of the waits, seconds
TICKS = os.sysconf("SC_CLK_TCK")


def proc_state(pid):
    """The state letter of /proc/PID/stat, or None if there is no such pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # comm may contain spaces and parentheses: the state follows the last ')'
    return data[data.rindex(b")") + 2:].split()[0].decode()


def pid_alive(pid):
    """True when pid exists and is not a zombie."""
    return proc_state(pid) not in (None, "Z", "X")


def ppid_of(pid):
    """The parent pid of pid (from /proc/PID/status)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("PPid:"):
                return int(line.split()[1])
    return None


def _children_by_scan(pid):
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if ppid_of(int(name)) == pid:
                out.append(int(name))
        except (OSError, ValueError, IndexError):
            pass
    return sorted(out)


def children_of(pid):
    """The pids whose parent is pid, sorted; [] when pid is gone.  Zombies
    are included: they stay their parent's children until it reaps them.

    From the children files of pid's threads (/proc/PID/task/TID/children),
    or, on a kernel built without them, from every process's PPid."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    out = set()
    for tid in tids:
        path = f"/proc/{pid}/task/{tid}"
        try:
            with open(f"{path}/children") as f:
                out.update(int(p) for p in f.read().split())
        except FileNotFoundError:
            if os.path.isdir(path):     # no children files at all
                return _children_by_scan(pid)
        except (OSError, ValueError):   # the thread ended meanwhile
            pass
    return sorted(out)


def cpu_seconds(pid):
    """User + system CPU time pid has used so far, in seconds; OSError when
    there is no such process."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    fields = data[data.rindex(b")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def sigkill(pid):
    """SIGKILL pid; no error if it is already gone."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wait_gone(pids, timeout, poll=POLL):
    """Wait until none of pids is alive, for at most timeout seconds.
    Returns the pids still alive then: [] when they all went."""
    deadline = time.monotonic() + timeout
    while any(pid_alive(p) for p in pids):
        if time.monotonic() >= deadline:
            return [p for p in pids if pid_alive(p)]
        time.sleep(poll)
    return []


def stop_process(proc, wait, kids=(), before_kill=None, kill_wait=None):
    """Stop proc (a subprocess.Popen): SIGTERM, then, when it has not
    exited within wait seconds, before_kill() (if given) and SIGKILL, and
    wait kill_wait seconds for it (None: as long as it takes).  Then
    SIGKILL each pid of kids still alive.  Returns proc's exit status."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            if before_kill is not None:
                before_kill()
            proc.kill()
            proc.wait(kill_wait)
    for pid in kids:
        if pid_alive(pid):
            sigkill(pid)
    return proc.returncode
