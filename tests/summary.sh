#!/bin/sh
# Count passed and failed tests from `make check` logs (cmocka, pytest, the
# layering and man page checks) and from run-tests.sh's fuzz replay
# (fuzz-regress.log) and distcheck (distcheck.log).
#   tests/summary.sh BUILDDIR LABEL     per build, with failing test names
#   tests/summary.sh --total DIR...     one line: "N passed, N failed"
count() {
	dir=$1
	p=0
	f=0
	for log in "$dir"/tests/unit/*.log; do
		[ -f "$log" ] || continue
		p=$((p + $(grep -c '^\[       OK \]' "$log")))
		f=$((f + $(grep '^\[  FAILED  \] ' "$log" | grep -vc 'test(s)')))
	done
	log="$dir/fuzz-regress.log"
	if [ -f "$log" ]; then
		p=$((p + $(grep -c '^fuzz PASS: ' "$log")))
		f=$((f + $(grep -c '^fuzz FAIL: ' "$log")))
	fi
	log="$dir/distcheck.log"	# run-tests.sh: one test, make distcheck
	if [ -f "$log" ]; then
		p=$((p + $(grep -c '^distcheck PASS' "$log")))
		f=$((f + $(grep -c '^distcheck FAIL' "$log")))
	fi
	# One test each: the layering rules, the man pages' lint.
	for t in check-layers check-man; do
		trs="$dir/tests/$t.sh.trs"
		if [ -f "$trs" ] && grep -q '^:test-result: PASS' "$trs"; then
			p=$((p + 1))
		else
			f=$((f + 1))
		fi
	done
	log="$dir/tests/run-integration.sh.log"
	if [ -f "$log" ]; then
		line=$(grep -E '[0-9]+ (passed|failed|error)' "$log" | tail -n 1)
		n=$(echo "$line" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+')
		p=$((p + ${n:-0}))
		n=$(echo "$line" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+')
		f=$((f + ${n:-0}))
		n=$(echo "$line" | grep -oE '[0-9]+ errors?' | grep -oE '[0-9]+')
		f=$((f + ${n:-0}))
		[ -n "$line" ] || f=$((f + 1))	# pytest never reported
	else
		f=$((f + 1))
	fi
	echo "$p $f"
}

if [ "$1" = --total ]; then
	shift
	tp=0
	tf=0
	for d in "$@"; do
		set -- $(count "$d")
		tp=$((tp + $1))
		tf=$((tf + $2))
	done
	echo "$tp passed, $tf failed"
	exit 0
fi
dir=$1
set -- $(count "$dir") "$2"
echo "$3: $1 passed, $2 failed"
grep -h '^\[  FAILED  \] ' "$dir"/tests/unit/*.log 2>/dev/null | grep -v 'test(s)'
grep -hE '^(FAILED|ERROR) ' "$dir/tests/run-integration.sh.log" 2>/dev/null
for t in check-layers check-man; do
	grep -q '^:test-result: PASS' "$dir/tests/$t.sh.trs" 2>/dev/null ||
	    echo "FAILED $t (tests/$t.sh.log)"
done
grep -h '^distcheck FAIL' "$dir/distcheck.log" 2>/dev/null
exit 0
