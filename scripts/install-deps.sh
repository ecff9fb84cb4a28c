#!/bin/sh
# Install every build, test and demo dependency from Debian's packages.
set -e
PKGS="build-essential autoconf automake pkg-config \
libcurl4-openssl-dev libcjson-dev libsqlite3-dev uuid-dev libconfig-dev \
libcmocka-dev python3 python3-pytest python3-pytest-xdist procps \
clang libclang-rt-dev valgrind gnuplot-nox python3-requests mandoc \
strace"
# promtool (tests/integration/test_metrics.py checks the exposition with it);
# without its recommends (node-exporter, a service), and optional: the test
# says it is skipped when promtool is missing.
OPTIONAL_PKGS="prometheus"
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
if [ "${EGRESSD_SKIP_APT:-0}" != 1 ]; then
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $PKGS \
	    >/dev/null
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
	    --no-install-recommends $OPTIONAL_PKGS >/dev/null ||
	    echo "install-deps: $OPTIONAL_PKGS not installed; the tests that" \
	    "need it are skipped" >&2
fi
