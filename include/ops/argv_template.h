/*
 * ops/argv_template: a configured command's argv template
 * (operations.command.commands[].argv) filled in with an operation's
 * "args", for ops/command.  Pure: no I/O and no state, it only allocates;
 * running the result is ops/command's business.
 *
 * The rules:
 *
 * - A "{param}" in an argv string (param: [A-Za-z_][A-Za-z0-9_]*, of any
 *   length, matched case for case) is replaced by args.param, a string or
 *   a number; any other brace is literal (a script in argv says $VAR, not
 *   ${VAR}).
 *   Every placeholder needs its argument and every argument a placeholder.
 * - A value stays inside its argv string whatever it contains; it must be
 *   valid UTF-8, 1..ARGVT_VALUE_MAX bytes, without control characters
 *   (below U+0020, U+007F), and may begin with '-' only where it would not
 *   begin an argv string (text before it in the template, "--path={path}")
 *   or after a literal "--" argv string, so an argument cannot turn into an
 *   option.
 * - A number is written as an integer when it is one and below 10^15 in
 *   magnitude, else as printf's "%.17g" writes it: 42, 0.25, 1e+20
 *   and 0.1 as 0.10000000000000001.
 * - The template's own text, braces that are no placeholder included, is
 *   copied unchanged: the output has one string per template string.
 *
 * A refusal is a message for the caller (an invalid_request), naming the
 * argument as "args.NAME: ..." (NAME cut at 64 bytes).
 */
#ifndef EGRESSD_OPS_ARGV_TEMPLATE_H
#define EGRESSD_OPS_ARGV_TEMPLATE_H

#include <stddef.h>

struct cJSON;

#define ARGVT_VALUE_MAX	4096	/* bytes of one argument value */

/*
 * The argc strings of tmpl with args in place, NULL-terminated, for
 * argvt_free.  args is NULL, a JSON null (no arguments) or an object;
 * command is the command's name, for the messages.  NULL on refusal with
 * the reason in why, or out of memory with why empty.
 */
char **argvt_expand(char *const *tmpl, size_t argc, const struct cJSON *args,
    const char *command, char *why, size_t whylen);

/* Free a NULL-terminated vector of malloc'd strings (NULL is fine). */
void argvt_free(char **v);

#endif
