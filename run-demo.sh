#!/bin/bash
# run-demo.sh: egressd end to end, in one command, on a fresh Debian machine.
#
#   ./run-demo.sh [--keep]
#
# Installs the dependencies (scripts/install-deps.sh: apt-get, so root or
# sudo), builds egressd out of tree into build-demo/, starts the bundled
# orchestrator simulator (tests/orchestrator/fake_orchestrator.py) and
# egressd with 2 workers (conf/demo.conf, copied into a temporary run
# directory), queues operations, prints their results, `egressctl health`
# and `egressctl status`, stops egressd with SIGTERM, shows each worker's
# shutdown notice, and prints the end of egressd's log.  Exits 0 when all of
# it worked.
#
#   --keep   after the results, keep egressd running until Ctrl-C (then
#            stop it as above), to try egressctl or signals by hand
#
# EGRESSD_SKIP_APT=1 skips apt-get (the packages are already installed).
# Every wait is bounded; on any exit, error or Ctrl-C both processes are
# stopped and the run directory is removed.
set -eu -o pipefail

PY=/usr/bin/python3
ORCH_TOKEN_ID=demo
ORCH_TOKEN=demo-secret
HEALTH_WAIT=30		# seconds for every worker to be READY
RESULT_WAIT=20		# seconds for the four results
STOP_WAIT=30		# seconds for a graceful stop (graceful_timeout is 10)

usage() {
	sed -n '2,/^set -eu/{/^set -eu/d;s/^# \{0,1\}//;p}' "$0"
}

keep=0
for arg in "$@"; do
	case $arg in
	--keep) keep=1 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "run-demo.sh: unknown option '$arg'" >&2; usage >&2; exit 2 ;;
	esac
done

top=$(cd "$(dirname "$0")" && pwd)
cd "$top"

step=0
step() {
	step=$((step + 1))
	printf '\n== %d. %s\n' "$step" "$*"
}
say() { printf '   %s\n' "$*"; }
# Milliseconds on a monotonic-enough clock, and seconds since $1 of those.
now_ms() {
	local t=${EPOCHREALTIME//[!0-9]/}
	echo $((10#$t / 1000))
}
since() {
	local ms=$(($(now_ms) - $1))
	printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100))
}
die() {
	echo "run-demo.sh: $*" >&2
	exit 1
}

# A child is gone once it is a zombie or no longer exists (Linux).
alive() {
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "${st#Z}" = "$st" ]
}

# Wait up to $2 seconds for child $1 to end; reap it into $reaped_status.
reaped_status=
wait_gone() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		if ! alive "$1"; then
			reaped_status=0
			wait "$1" 2>/dev/null || reaped_status=$?
			return 0
		fi
		sleep 0.1
	done
	return 1
}

run=
orch_pid=
egressd_pid=

# Stop what is still running: TERM, a bounded wait, then KILL to the
# process group (each child was started as its own group leader).
stop_child() {
	local pid=$1 name=$2 secs=$3
	[ -n "$pid" ] || return 0
	alive "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }
	echo "run-demo.sh: stopping $name (pid $pid)" >&2
	kill -TERM "$pid" 2>/dev/null || true
	if ! wait_gone "$pid" "$secs"; then
		echo "run-demo.sh: $name did not stop in ${secs}s; SIGKILL" >&2
		kill -KILL -- "-$pid" 2>/dev/null || true
		wait_gone "$pid" 5 || true
	fi
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM HUP
	stop_child "$egressd_pid" egressd "$STOP_WAIT"
	stop_child "$orch_pid" "the orchestrator simulator" 10
	if [ -n "$run" ] && [ -d "$run" ]; then
		if [ "$rc" -ne 0 ] && [ -s "$run/egressd.out" ]; then
			echo "run-demo.sh: egressd's standard error:" >&2
			tail -n 20 "$run/egressd.out" >&2
		fi
		if [ "$rc" -ne 0 ] && [ -f "$run/egressd.log" ]; then
			echo "run-demo.sh: the last lines of egressd.log:" >&2
			tail -n 20 "$run/egressd.log" >&2
		fi
		rm -rf "$run"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

step "Installing dependencies (scripts/install-deps.sh; apt-get needs root or sudo)"
if [ "${EGRESSD_SKIP_APT:-0}" = 1 ]; then
	say "skipped (EGRESSD_SKIP_APT=1)"
else
	sh scripts/install-deps.sh || die "installing the dependencies failed"
	say "done"
fi

step "Building out of tree into build-demo/ (scripts/build.sh)"
# (binutils' harmless note about ar's "u" modifier is left out)
sh scripts/build.sh build-demo 2>&1 |
    { grep -v "modifier ignored since" || true; } || die "the build failed"
EGRESSD=$top/build-demo/egressd
EGRESSCTL=$top/build-demo/egressctl
[ -x "$EGRESSD" ] && [ -x "$EGRESSCTL" ] || die "no binaries in build-demo/"
say "$("$EGRESSD" -V), $("$EGRESSCTL" -V)"

run=$(mktemp -d "${TMPDIR:-/tmp}/egressd-demo.XXXXXX")
conf=$run/egressd.conf
ctl() { "$EGRESSCTL" -c "$conf" "$@"; }

# The admin side of the simulator, over HTTP with the standard library.
cat >"$run/demo_admin.py" <<'PYEOF'
"""run-demo.sh's client for the orchestrator simulator's admin API."""
import json
import sys
import urllib.error
import urllib.request

BASE = "http://127.0.0.1:%s" % sys.argv[2]


def call(method, path, body=None, timeout=10):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as err:   # e.g. 408 from /admin/wait
        return err.code, json.load(err)


def workers(health_file):
    """instance ID -> "worker N (pid P)", from `egressctl health --json`."""
    with open(health_file, encoding="utf-8") as f:
        health = json.load(f)
    return {w["instance_id"]: "worker %d (pid %d)" % (w["id"], w["pid"])
            for w in health.get("workers", [])}


def enqueue():
    ops = [{"operation_id": "demo-health-%d" % i, "path": "/api/v1/test/health",
            "operation": {"trace_id": "demo-trace-%d" % i}} for i in (1, 2, 3)]
    ops.append({"operation_id": "demo-unknown-1", "path": "/api/v1/demo/no-such-path",
                "operation": {}})
    _, reply = call("POST", "/admin/enqueue", {"operations": ops})
    print("   queued: %s (queue length %d)" % (" ".join(reply["operation_ids"]),
                                                reply["queue_length"]))
    for op in ops:
        print("     %-15s path %s" % (op["operation_id"], op["path"]))
    _, reply = call("POST", "/admin/event", {"type": "work_available"})
    print("   work_available event sent over the SSE stream (%d stream(s))"
          % reply["delivered"])


def results(want, timeout, health_file):
    names = workers(health_file)
    status, reply = call("GET", "/admin/wait?results=%d&timeout=%s" % (want, timeout),
                         timeout=float(timeout) + 10)
    _, reply = call("GET", "/admin/results")
    print("   %d result(s) received by the orchestrator:" % reply["count"])
    for r in reply["results"]:
        who = names.get(r["instance_id"], "instance")
        print("   - %s: from %s, instance %s" % (r["operation_id"], who,
                                                  r["instance_id"]))
        print("       %s" % json.dumps(r["result"], separators=(", ", ": ")))
    if status != 200:
        print("   timed out after %ss waiting for %d results" % (timeout, want))
        return 1
    return 0


def shutdowns(health_file, master_instance):
    names = workers(health_file)
    call("GET", "/admin/wait?shutdowns=%d&timeout=5" % len(names), timeout=15)
    _, state = call("GET", "/admin/state")
    missing = 0
    print("   per instance ID, as the orchestrator counted them:")
    for iid, name in sorted(names.items(), key=lambda kv: kv[1]):
        inst = state["instances"].get(iid, {})
        n = inst.get("shutdowns", 0)
        missing += n == 0
        print("   - %s, instance %s: %d shutdown notice(s), %d operation(s) "
              "taken, %d result(s), %d empty poll(s)"
              % (name, iid, n, inst.get("operations", 0), inst.get("results", 0),
                 inst.get("empty_polls", 0)))
    inst = state["instances"].get(master_instance)
    if inst is not None:
        print("   - master, instance %s: %d event stream connection(s) "
              "(the master sends no shutdown notice)"
              % (master_instance, inst.get("stream_connects", 0)))
    if missing:
        print("   %d worker(s) sent no shutdown notice" % missing)
    return 1 if missing else 0


def main():
    cmd = sys.argv[1]
    if cmd == "enqueue":
        return enqueue()
    if cmd == "results":
        return results(int(sys.argv[3]), sys.argv[4], sys.argv[5])
    if cmd == "shutdowns":
        return shutdowns(sys.argv[3], sys.argv[4])
    raise SystemExit("demo_admin.py: unknown command " + cmd)


sys.exit(main())
PYEOF
admin() { "$PY" "$run/demo_admin.py" "$1" "$orch_port" "${@:2}"; }

step "Starting the orchestrator simulator (tests/orchestrator/fake_orchestrator.py)"
# set -m: the child gets its own process group, so a Ctrl-C reaches only
# this script, which then stops it in order.
set -m
"$PY" tests/orchestrator/fake_orchestrator.py --port 0 \
    --token-id "$ORCH_TOKEN_ID" --token "$ORCH_TOKEN" --quiet \
    --ready-file "$run/orchestrator.port" >"$run/orchestrator.log" 2>&1 &
orch_pid=$!
set +m
for ((i = 0; i < 100; i++)); do
	[ -s "$run/orchestrator.port" ] && break
	alive "$orch_pid" || die "the simulator exited: $(cat "$run/orchestrator.log")"
	sleep 0.1
done
[ -s "$run/orchestrator.port" ] || die "the simulator did not start within 10s"
orch_port=$(cat "$run/orchestrator.port")
orch_url=http://127.0.0.1:$orch_port
say "pid $orch_pid, listening on $orch_url (token ID \"$ORCH_TOKEN_ID\")"

step "Starting egressd with 2 workers (conf/demo.conf) in $run"
sed "s|@ORCHESTRATOR_URL@|$orch_url|" conf/demo.conf >"$conf"
mkdir "$run/state"
(umask 077 && printf '%s\n' "$ORCH_TOKEN" >"$run/token")
out=$("$EGRESSD" -t -c "$conf" 2>&1) || die "$out"
say "$out"
set -m
"$EGRESSD" -c "$conf" </dev/null >"$run/egressd.out" 2>&1 &
egressd_pid=$!
set +m
say "master pid $egressd_pid; log: $run/egressd.log"
printf '   waiting for `egressctl health` to say healthy '
t0=$(now_ms)
healthy=0
for ((i = 0; i < HEALTH_WAIT * 5; i++)); do
	if ! alive "$egressd_pid"; then
		echo
		wait_gone "$egressd_pid" 1 || true
		egressd_pid=
		die "egressd exited during start-up (status $reaped_status)"
	fi
	if ctl health >/dev/null 2>&1; then
		healthy=1
		break
	fi
	printf '.'
	sleep 0.2
done
echo
[ "$healthy" = 1 ] || die "egressd was not healthy within ${HEALTH_WAIT}s"
say "healthy after $(since "$t0")s"
ctl health --json >"$run/health.json"
ctl status --json >"$run/status.json"
master_instance=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["instance_id"])' "$run/status.json")

step "Queueing operations through the simulator's admin API"
admin enqueue
admin results 4 "$RESULT_WAIT" "$run/health.json" ||
    die "not every operation produced a result"

step "egressctl health; egressctl status"
# The master's counters come with the workers' heartbeats (every 1 s here):
# give them up to 3 s to include the four operations.
for ((i = 0; i < 30; i++)); do
	n=$(ctl health --json 2>/dev/null | "$PY" -c 'import json, sys
print(sum(w["done"] + w["failed"] for w in json.load(sys.stdin)["workers"]))' \
	    2>/dev/null) || n=0
	[ "${n:-0}" -ge 4 ] && break
	sleep 0.1
done
ctl health || true
ctl status || true

if [ "$keep" = 1 ]; then
	step "Running until Ctrl-C (--keep)"
	say "try: $EGRESSCTL -c $conf status"
	say "     kill -HUP $egressd_pid    (reload: rolling restart)"
	say "     kill -TTIN $egressd_pid   (one worker more; TTOU: one fewer)"
	say "Ctrl-C stops egressd gracefully and ends the demo."
	interrupted=0
	trap 'interrupted=1' INT
	while [ "$interrupted" = 0 ] && alive "$egressd_pid"; do
		sleep 1 || true
	done
	trap 'exit 130' INT
	echo
	alive "$egressd_pid" || die "egressd exited on its own"
	say "Ctrl-C: stopping"
	ctl health --json >"$run/health.json" || true
fi

step "Stopping egressd: SIGTERM to the master (graceful stop)"
kill -TERM "$egressd_pid"
t0=$(now_ms)
wait_gone "$egressd_pid" "$STOP_WAIT" ||
    die "egressd did not exit within ${STOP_WAIT}s"
say "egressd exited with status $reaped_status after $(since "$t0")s"
egressd_pid=
[ "$reaped_status" = 0 ] || die "egressd's exit status was $reaped_status"
if [ ! -e "$run/egressd.pid" ]; then
	say "pidfile removed"
fi
admin shutdowns "$run/health.json" "$master_instance" ||
    die "a worker did not notify the orchestrator of its shutdown"

step "Stopping the orchestrator simulator"
kill -TERM "$orch_pid"
wait_gone "$orch_pid" 10 || die "the simulator did not exit within 10s"
say "exited with status $reaped_status"
orch_pid=

step "The last lines of egressd.log"
tail -n 15 "$run/egressd.log" | sed 's/^/   /'

printf '\nDemo finished: 4 operations run, 4 results delivered, graceful stop.\n'
exit 0
