#!/bin/sh
# Run the pytest integration suite against the freshly built binaries.
# `make check` sets EGRESSD_BIN, EGRESSCTL_BIN, ORCHD_BIN and EGRESSD_SRCDIR.
#
# The tests spend most of their time waiting on daemons, so they run in
# EGRESSD_TEST_JOBS processes (default 4; 1 runs them one by one) when
# pytest-xdist (Debian's python3-pytest-xdist) is installed.
srcdir=${EGRESSD_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$srcdir" || exit 99
jobs=${EGRESSD_TEST_JOBS:-4}
parallel=
if [ "$jobs" -gt 1 ] 2>/dev/null &&
    /usr/bin/python3 -c 'import xdist' 2>/dev/null; then
	parallel="-n $jobs"
fi
# $parallel is unquoted on purpose: empty, or two words.
exec /usr/bin/python3 -m pytest -q -p no:cacheprovider $parallel \
	tests/orchestrator tests/integration "$@"
