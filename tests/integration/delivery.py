"""The delivery rule, checked the same way by every test that checks delivery.

docs/OPERATIONS.md ("Delivery") states it:

  - every operation an agent takes is reported at least once: a result
    waits in the durable outbox until the orchestrator acknowledges it, and
    an operation taken by a worker that died before it made the operation
    an agent process is handed out again by the orchestrator after the
    shutdown notice the master sends for that worker;
  - the same result goes to the orchestrator a second time only when the
    agent cannot know that the first one arrived: the worker that sent it
    died before it deleted its outbox row, or the answer to a try was lost.
    Each such re-send is counted in egressd_results_resent_total and logged
    ("outbox: result for OP is sent again, possibly a duplicate (...)")
    before it goes out.  The count is an upper bound: a try that never
    arrived is counted all the same.

assert_delivered(orch, ids, allowed_dups=...) checks the results the fake
orchestrator recorded against that rule.  allowed_dups is 0 (the default:
nothing may be reported twice), a number, or counted(agent): the re-sends
that agent counted (its metric, read with `egressctl metrics`, and the
operation IDs its log lines name) must cover every second report.
"""

import collections
import re
import time

from common import DEADLINE, POLL, SHORT, binary, run_tool

RESENT_METRIC = "egressd_results_resent_total"
RESENT_LINE = re.compile(
    r"outbox: result for (\S+) is sent again, possibly a duplicate")


class Resends:
    """Re-sends an agent counted: total (the metric) and ids (a Counter of
    the operation IDs its log lines name)."""

    def __init__(self, total, ids):
        self.total = total
        self.ids = ids

    def __repr__(self):
        return f"Resends(total={self.total}, ids={dict(self.ids)})"


def counted_resends(a):
    """The re-sends agent a (running) counted so far."""
    p = run_tool([binary("EGRESSCTL_BIN"), "-c", a.config, "metrics"])
    assert p.returncode == 0, f"egressctl metrics: {p.returncode} {p.stderr}"
    m = re.search(rf"^{RESENT_METRIC} (\d+)$", p.stdout, re.M)
    assert m, f"no {RESENT_METRIC} in egressctl metrics:\n{p.stdout}"
    return Resends(int(m.group(1)),
                   collections.Counter(RESENT_LINE.findall(a.log())))


def counted(a):
    """allowed_dups for assert_delivered: what agent a counted, read when
    the check is made."""
    return lambda: counted_resends(a)


def results_by_id(orch):
    out = {}
    for r in orch.get_results():
        out.setdefault(r["operation_id"], []).append(r)
    return out


def _whereabouts(orch, missing):
    """For a failure message: who took each missing operation, and whether
    a shutdown notice re-queued it."""
    taken = collections.defaultdict(list)
    for t in orch.get_taken():
        taken[t["operation_id"]].append(t["instance_id"])
    requeued = {r["operation_id"] for r in orch.get_requeued()}
    with orch.lock:
        queued = {op.get("operation_id") for op in orch.queue
                  if isinstance(op, dict)}
    return [f"{op} (taken by {taken.get(op, [])}"
            f"{', re-queued' if op in requeued else ''}"
            f"{', still queued' if op in queued else ''})"
            for op in sorted(missing)[:20]]


def wait_reported(orch, ids, timeout=DEADLINE):
    """Wait until every operation in ids has at least one result; return
    {id: [result records]} (of every operation reported)."""
    want = set(ids)

    def reported():
        with orch.lock:
            return want <= orch.result_ids
    if not orch.wait_for(reported, timeout):
        missing = want - set(results_by_id(orch))
        raise AssertionError(
            f"{len(missing)} of {len(want)} operations not reported within "
            f"{timeout:.0f}s: {'; '.join(_whereabouts(orch, missing))}")
    return results_by_id(orch)


def assert_delivered(orch, ids, allowed_dups=0, timeout=DEADLINE):
    """Every operation in ids reported at least once (waiting up to
    timeout); one reported more than once reported with the same result
    each time, and only as a counted re-send (allowed_dups, see the module
    docstring).  Returns {id: extra reports} of the operations reported
    more than once."""
    res = wait_reported(orch, ids, timeout)
    extra, problems = {}, []
    for op in ids:
        recs = res[op]
        if len(recs) < 2:
            continue
        extra[op] = len(recs) - 1
        first = recs[0]["result"]
        if any(r["result"] != first for r in recs[1:]):
            problems.append(f"{op}: different results: "
                            f"{[(r['instance_id'], r['result']) for r in recs]}")
    assert not problems, f"{len(problems)} operations: " + \
        "; ".join(problems[:10])
    total = sum(extra.values())
    if not callable(allowed_dups):
        assert total <= allowed_dups, \
            f"{total} second reports, {allowed_dups} allowed: {extra}"
        return extra
    # A re-send is counted before it goes out, but the count reaches the
    # master in a frame it may not have read yet: wait for it (bounded).
    deadline = time.monotonic() + SHORT
    while True:
        got = allowed_dups()
        uncounted = {op: n for op, n in extra.items() if got.ids[op] < n}
        if total <= got.total and not uncounted:
            return extra
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"{total} second reports, {got.total} counted re-sends; "
                f"reported more often than logged as re-sent: {uncounted}; "
                f"counted: {got}")
        time.sleep(POLL * 5)
