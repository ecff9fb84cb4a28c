#!/bin/sh
# Configure and build out of tree: scripts/build.sh BUILDDIR [configure args]
set -e
top=$(cd "$(dirname "$0")/.." && pwd)
dir=$1
shift
[ -x "$top/configure" ] || "$top/bootstrap.sh" >/dev/null 2>&1
mkdir -p "$dir"
cd "$dir"
[ -f Makefile ] || "$top/configure" -q "$@"
make -j"$(nproc)" >/dev/null
