#!/bin/sh
# The man pages as `make install` installs them (made from docs/ in the
# build directory), linted: `mandoc -Tlint` at warning level (Debian's
# mandoc), else `groff -ww`.  Any message fails the test.
status=0
for page in egressd.8 egressctl.8 egressd.conf.5; do
	if [ ! -f "$page" ]; then
		echo "$page: not built (make all makes it from docs/)"
		status=1
		continue
	fi
	if command -v mandoc >/dev/null 2>&1; then
		out=$(mandoc -Tlint -W warning "$page" 2>&1) || status=1
	else
		out=$(groff -mandoc -ww -z "$page" 2>&1) || status=1
	fi
	if [ -n "$out" ]; then
		echo "$out"
		status=1
	fi
done
[ $status -eq 0 ] && echo "man pages: no warnings"
exit $status
