/*
 * escape: control characters made visible.
 *
 * Text that comes from outside (an orchestrator, an operation body, a
 * file name, the database) must not forge a line in a log or in
 * egressctl's output, nor drive the terminal that shows it.  Escaped:
 * newline, carriage return and tab as \n, \r, \t; every other C0 byte
 * and DEL as \xHH; the C1 controls U+0080..U+009F as \u00HH; a byte that
 * is not part of valid UTF-8 as \xHH.  Everything else, valid UTF-8
 * included, passes unchanged.  A backslash is not escaped: the escapes
 * make text readable, they are not meant to be decoded.
 */
#ifndef EGRESSD_ESCAPE_H
#define EGRESSD_ESCAPE_H

#include <stddef.h>

#define ESCAPE_KEEP_NEWLINE 0x1	/* multi-line text: '\n' stays */

/* Whether in holds anything escape_text would change. */
int escape_needed(const char *in, int flags);

/*
 * in, escaped, into out (at most outlen bytes with the NUL; never ends in
 * the middle of an escape or a UTF-8 character); returns out.
 */
char *escape_text(char *out, size_t outlen, const char *in, int flags);

/* A malloc'd escaped copy of in; NULL when out of memory. */
char *escape_dup(const char *in, int flags);

struct cJSON;
/*
 * Escape every string value in o, in place, before it is printed as text;
 * -1 when out of memory (o is then partly escaped).
 */
int escape_json_strings(struct cJSON *o, int flags);

#endif
