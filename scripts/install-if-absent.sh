#!/bin/sh
# install-if-absent.sh INSTALL MODE SRC DST: install SRC as DST with MODE,
# unless DST exists.  `make install` uses it for what lives under
# $(sysconfdir): an operator's edits there are never overwritten.
install=$1
mode=$2
src=$3
dst=$4
if [ -e "$dst" ] || [ -L "$dst" ]; then
	if cmp -s "$src" "$dst"; then
		echo "$dst: unchanged"
	else
		echo "$dst: exists, kept as it is (this version's: $src)"
	fi
	exit 0
fi
exec $install -m "$mode" "$src" "$dst"
