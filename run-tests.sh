#!/bin/sh
# One command from a fresh Debian machine to every test: install the
# dependencies, build twice (plain, then with ASan+UBSan), run the unit and
# integration suites on both builds, replay the fuzz inputs, run `make
# distcheck`, and print the totals as one line.
top=$(cd "$(dirname "$0")" && pwd)
cd "$top" || exit 1
sh scripts/install-deps.sh || exit 1
status=0
for variant in plain sanitize; do
	dir=build-test-$variant
	args=
	[ $variant = sanitize ] && args=--enable-sanitizers
	rm -rf "$dir"
	echo "== $variant build"
	if ! sh scripts/build.sh "$dir" $args; then
		echo "build ($variant) failed"
		echo "0 passed, 1 failed"
		exit 1
	fi
	echo "== $variant tests"
	# Sanitized binaries are slower: deadlines (not durations) stretch.
	scale=1
	[ $variant = sanitize ] && scale=2
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	EGRESSD_TEST_TIMEOUT_SCALE=$scale \
	    make -C "$dir" check >/dev/null 2>&1 || status=1
	sh tests/summary.sh "$dir" "$variant"
done
# Every committed fuzz seed and regression input, once, under libFuzzer
# with ASan+UBSan (clang); one test per target.  `make fuzz` explores more.
echo "== fuzz regression inputs"
log=build-test-plain/fuzz-regress.log
: >"$log"
for t in $(sed -n 's/^FUZZ_TARGETS = //p' fuzz/fuzz.mk); do
	if make -C build-test-plain fuzz-regress FUZZ_TARGETS="$t" \
	    >>"$log" 2>&1; then
		echo "fuzz PASS: $t" >>"$log"
	else
		echo "fuzz FAIL: $t" >>"$log"
		status=1
	fi
done
grep '^fuzz ' "$log"
# The release tarball builds, passes its unit tests and lint checks,
# installs and uninstalls cleanly out of its own tree: one test.  The
# integration suite already ran twice on this tree, so distcheck's own
# `make check` runs only the rest (TESTS is expanded in its Makefile).
echo "== distcheck"
log=build-test-plain/distcheck.log
if make -C build-test-plain distcheck \
    TESTS='$(UNIT_TESTS) tests/check-layers.sh tests/check-man.sh' \
    >"$log" 2>&1; then
	echo "distcheck PASS" >>"$log"
else
	echo "distcheck FAIL (build-test-plain/distcheck.log)" >>"$log"
	status=1
fi
tail -n 1 "$log"
sh tests/summary.sh --total build-test-plain build-test-sanitize
exit $status
