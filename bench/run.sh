#!/bin/sh
# Run every benchmark in bench/ (lifecycle.py, protocol.py) and print its figures.
#
# usage: bench/run.sh [ARGS...]     ARGS go to each benchmark (e.g. --runs 10)
#
# Binaries: $EGRESSD_BIN, by default build/egressd of this repository, and
# $EGRESSCTL_BIN, by default the egressctl beside it.  Benchmarks print
# figures and never assert; the exit status is non-zero only when a
# benchmark could not run.
set -u

benchdir=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$benchdir")
EGRESSD_BIN=${EGRESSD_BIN:-$repo/build/egressd}
EGRESSCTL_BIN=${EGRESSCTL_BIN:-$(dirname "$EGRESSD_BIN")/egressctl}
export EGRESSD_BIN EGRESSCTL_BIN

if [ ! -x "$EGRESSD_BIN" ]; then
	echo "bench/run.sh: $EGRESSD_BIN: not an executable; build egressd" \
	    "or set EGRESSD_BIN" >&2
	exit 2
fi

# Add new benchmarks here, in the order they should run.
BENCHMARKS="lifecycle.py protocol.py"

status=0
for bench in $BENCHMARKS; do
	echo "== $bench"
	/usr/bin/python3 "$benchdir/$bench" "$@" || status=$?
	echo
done
exit "$status"
