/*
 * version: the one place the program's version string comes from.
 * EGRESSD_VERSION_SUFFIX (a string literal, e.g. -DEGRESSD_VERSION_SUFFIX=
 * '"+next"') is appended: the tests build a second binary that reports a
 * different version, to swap under a running daemon (tests/egressd-next).
 */
#ifndef EGRESSD_VERSION_H
#define EGRESSD_VERSION_H

#ifndef EGRESSD_VERSION_SUFFIX
#define EGRESSD_VERSION_SUFFIX ""
#endif

#ifdef PACKAGE_VERSION
#define EGRESSD_VERSION PACKAGE_VERSION EGRESSD_VERSION_SUFFIX
#else
#define EGRESSD_VERSION "0.0.0" EGRESSD_VERSION_SUFFIX
#endif

#endif
