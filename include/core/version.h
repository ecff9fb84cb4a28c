/* version: the one place the program's version string comes from. */
#ifndef EGRESSD_VERSION_H
#define EGRESSD_VERSION_H

#ifdef PACKAGE_VERSION
#define EGRESSD_VERSION PACKAGE_VERSION
#else
#define EGRESSD_VERSION "0.0.0"
#endif

#endif
