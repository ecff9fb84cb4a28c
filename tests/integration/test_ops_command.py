"""The command operation (DESIGN.md section 5) end to end: egressd runs a
configured command for an operation from the fake orchestrator and reports
its output, exit status and timeout in the operation's result."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import render_config  # noqa: E402
from proto_helpers import (  # noqa: E402
    DEADLINE, pid_alive, run_operations, wait_until)
from proto_helpers import agent, orch, workdir  # noqa: E402,F401 (fixtures)

COMMAND_PATH = "/api/v1/agent/execute/command"

# One argv string per placeholder; the sh scripts are the configuration's
# (an operation cannot reach a shell).
OPERATIONS = """operations: {
  command: {
    enabled = true;
    max_output = 4096;
    commands = (
      { name = "echo"; argv = [ "/bin/echo", "{msg}" ]; },
      { name = "count"; argv = [ "/bin/sh", "-c", "echo $#", "sh", "{a}" ]; },
      { name = "fail"; argv = [ "/bin/sh", "-c", "echo bad >&2; exit 7" ]; },
      { name = "slow"; argv = [ "/bin/sh", "-c", "echo $$; exec sleep 60" ];
        timeout = 1.0; }
    );
  };
};
"""


def start_agent(agent):
    """egressd with the command handler on (render_config cannot write a
    list of groups, so the operations section is appended as text)."""
    a = agent(start=False)
    with open(a.config, "w") as f:
        f.write(render_config(a.cfg, OPERATIONS))
    a.start()
    return a


def run_ops(orch, ops):
    return [r["result"] for r in run_operations(
        orch, [{"path": COMMAND_PATH, "operation": op} for op in ops])]


def test_command_output(orch, agent):
    a = start_agent(agent)
    h = a.wait_ready(2)
    hostile = "x; kill -9 $PPID $(id) `id` | tee /tmp/x"
    echo, count, fail = run_ops(orch, [
        {"name": "echo", "args": {"msg": "hello world"}},
        {"name": "count", "args": {"a": hostile}},
        {"name": "fail"},
    ])
    assert echo == {"exit_code": 0, "signal": None,
                    "stdout": "hello world\n", "stderr": "",
                    "timed_out": False, "truncated": False}, echo
    # the hostile argument stayed one argv string
    assert count.get("stdout") == "1\n", count
    assert fail.get("exit_code") == 7 and fail.get("stderr") == "bad\n", fail

    # refusals are error results; the workers go on
    unknown, missing = run_ops(orch, [
        {"name": "nope"},
        {"name": "echo"},
    ])
    assert unknown.get("error_type") == "not_found", unknown
    assert missing.get("error_type") == "invalid_request", missing
    assert a.worker_pids() == a.worker_pids(h)


def test_command_timeout(orch, agent):
    a = start_agent(agent)
    a.wait_ready(2)
    (r,) = run_ops(orch, [{"name": "slow"}])
    assert r.get("timed_out") is True, r
    assert r.get("exit_code") is None and r.get("signal") == 15, r
    pid = int(r["stdout"])
    wait_until(lambda: not pid_alive(pid), DEADLINE,
               msg=f"command process {pid} to be gone")
    # the worker that ran it still serves commands
    (r,) = run_ops(orch, [{"name": "echo", "args": {"msg": "after"}}])
    assert r.get("stdout") == "after\n", r
