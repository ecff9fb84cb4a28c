#!/bin/sh
# The layering rules of docs/ARCHITECTURE.md, read from the objects of this
# build: no call up into a higher folder, no circle between modules.
srcdir=${EGRESSD_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
exec /usr/bin/python3 "$srcdir/scripts/check-layers.py" .
