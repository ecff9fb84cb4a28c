#!/bin/sh
# Run the pytest integration suite against the freshly built binaries.
# `make check` sets EGRESSD_BIN, EGRESSCTL_BIN, ORCHD_BIN and EGRESSD_SRCDIR.
srcdir=${EGRESSD_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$srcdir" || exit 99
exec /usr/bin/python3 -m pytest -q -p no:cacheprovider \
	tests/orchestrator tests/integration "$@"
