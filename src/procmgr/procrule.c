/* procrule: pure rules of agent processes (see include/procmgr/procrule.h). */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "procmgr/procrule.h"

static const char *const procrule_status_names[] = {
	"CREATED", "RUNNABLE", "PAUSED", "WAITING_EVENT", "EXITED", "FAILED",
	"KILLED"
};
static const char *const procrule_signal_names[] = {
	"PAUSE", "RESUME", "CANCEL", "TERMINATE"
};
static const char *const procrule_fork_mode_names[] = {
	"RESTRICTED", "COPY", "SPECULATIVE", "WORKER"
};
static const char *const procrule_view_mode_names[] = {
	"MUTABLE", "COPY_ON_WRITE", "EPHEMERAL", "READ_ONLY"
};

#define PROCRULE_NELEM(a) (sizeof(a) / sizeof((a)[0]))

_Static_assert(PROCRULE_NELEM(procrule_status_names) == PROCRULE_NSTATUS,
    "a name for each status");
_Static_assert(PROCRULE_NELEM(procrule_signal_names) == PROCRULE_NSIGNALS,
    "a name for each signal");
_Static_assert(PROCRULE_NELEM(procrule_fork_mode_names) ==
    PROCRULE_NFORK_MODES, "a name for each fork mode");
_Static_assert(PROCRULE_NELEM(procrule_view_mode_names) ==
    PROCRULE_NVIEW_MODES, "a name for each view mode");

const char *
procrule_status_name(enum proc_status s)
{
	if ((unsigned)s >= PROCRULE_NELEM(procrule_status_names))
		return "UNKNOWN";
	return procrule_status_names[s];
}

static int
procrule_name_index(const char *const *names, size_t n, const char *name)
{
	size_t i;

	for (i = 0; name != NULL && i < n; i++)
		if (strcasecmp(names[i], name) == 0)
			return (int)i;
	return -1;
}

int
procrule_status_parse(const char *name, enum proc_status *out)
{
	int i = procrule_name_index(procrule_status_names,
	    PROCRULE_NELEM(procrule_status_names), name);

	if (i == -1)
		return -1;
	*out = (enum proc_status)i;
	return 0;
}

int
procrule_status_terminal(enum proc_status s)
{
	return s == PS_EXITED || s == PS_FAILED || s == PS_KILLED;
}

int
procrule_signal_transition(enum proc_status from, enum proc_signal sig)
{
	if (procrule_status_terminal(from))
		return -1;
	switch (sig) {
	case PSIG_PAUSE:
		return from == PS_PAUSED ? -1 : PS_PAUSED;
	case PSIG_RESUME:
		return from == PS_PAUSED ? PS_RUNNABLE : -1;
	case PSIG_CANCEL:
	case PSIG_TERMINATE:
		return PS_KILLED;
	}
	return -1;
}

const char *
procrule_signal_name(enum proc_signal sig)
{
	if ((unsigned)sig >= PROCRULE_NELEM(procrule_signal_names))
		return "UNKNOWN";
	return procrule_signal_names[sig];
}

int
procrule_signal_parse(const char *name, enum proc_signal *out)
{
	int i = procrule_name_index(procrule_signal_names,
	    PROCRULE_NELEM(procrule_signal_names), name);

	if (i == -1)
		return -1;
	*out = (enum proc_signal)i;
	return 0;
}

const char *
procrule_fork_mode_name(enum fork_mode m)
{
	if ((unsigned)m >= PROCRULE_NELEM(procrule_fork_mode_names))
		return "UNKNOWN";
	return procrule_fork_mode_names[m];
}

int
procrule_fork_mode_parse(const char *name, enum fork_mode *out)
{
	int i = procrule_name_index(procrule_fork_mode_names,
	    PROCRULE_NELEM(procrule_fork_mode_names), name);

	if (i == -1)
		return -1;
	*out = (enum fork_mode)i;
	return 0;
}

enum view_mode
procrule_fork_view_mode(enum fork_mode m)
{
	switch (m) {
	case FORK_COPY:
		return VIEW_COPY_ON_WRITE;
	case FORK_SPECULATIVE:
		return VIEW_EPHEMERAL;
	case FORK_WORKER:
	case FORK_RESTRICTED:
		break;
	}
	return VIEW_READ_ONLY;
}

const char *
procrule_view_mode_name(enum view_mode m)
{
	if ((unsigned)m >= PROCRULE_NELEM(procrule_view_mode_names))
		return "UNKNOWN";
	return procrule_view_mode_names[m];
}

struct proc_budget
procrule_child_budget(const struct proc_budget *parent, int divisor,
    int min_tool_calls, int min_child_processes)
{
	struct proc_budget b;

	if (divisor < 1)
		divisor = 1;
	b.max_tool_calls = parent->max_tool_calls / divisor;
	if (b.max_tool_calls < min_tool_calls)
		b.max_tool_calls = min_tool_calls;
	b.max_child_processes = parent->max_child_processes / divisor;
	if (b.max_child_processes < min_child_processes)
		b.max_child_processes = min_child_processes;
	b.max_runtime_seconds = parent->max_runtime_seconds;
	return b;
}

static int
procrule_cwd_fail(char *err, size_t errlen, const char *why, const char *path)
{
	snprintf(err, errlen, "working directory %s: %.200s", why, path);
	return -1;
}

/*
 * What "." and ".." took away may leave a drive ("./C:x") or white space
 * ("./ a") at an end of the result, which normalising it again would refuse
 * or trim: refused here too, so that a result always normalises to itself.
 */
static int
procrule_cwd_settled(const char *out, const char *path, char *err,
    size_t errlen)
{
	size_t n = strlen(out);

	if (n > 1 && isalpha((unsigned char)out[0]) && out[1] == ':')
		return procrule_cwd_fail(err, errlen,
		    "must be workspace-relative", path);
	if (isspace((unsigned char)out[0]) ||
	    isspace((unsigned char)out[n - 1]))
		return procrule_cwd_fail(err, errlen,
		    "has white space at an end once normalised", path);
	return 0;
}

int
procrule_normalize_cwd(const char *path, char *out, size_t outlen, char *err,
    size_t errlen)
{
	const char *p, *end, *seg;
	size_t o = 0, n, len;

	if (path == NULL)
		path = ".";
	/* Surrounding white space is no part of a path. */
	for (p = path; isspace((unsigned char)*p); p++)
		;
	for (end = p + strlen(p); end > p &&
	    isspace((unsigned char)end[-1]); end--)
		;
	len = (size_t)(end - p);
	if (len > 0 && (*p == '/' || *p == '\\' ||
	    (len > 1 && isalpha((unsigned char)p[0]) && p[1] == ':')))
		return procrule_cwd_fail(err, errlen,
		    "must be workspace-relative", path);
	while (p < end) {
		for (seg = p; p < end && *p != '/' && *p != '\\'; p++)
			;
		n = (size_t)(p - seg);
		if (p < end)
			p++;
		if (n == 0 || (n == 1 && seg[0] == '.'))
			continue;
		if (n == 2 && seg[0] == '.' && seg[1] == '.') {
			if (o == 0)
				return procrule_cwd_fail(err, errlen,
				    "escapes workspace root", path);
			while (o > 0 && out[o - 1] != '/')
				o--;
			if (o > 0)
				o--;
			continue;
		}
		if (o + (o > 0) + n + 1 > outlen)
			return procrule_cwd_fail(err, errlen, "too long", path);
		if (o > 0)
			out[o++] = '/';
		memcpy(out + o, seg, n);
		o += n;
	}
	if (o == 0) {
		if (outlen < 2)
			return procrule_cwd_fail(err, errlen, "too long", path);
		out[o++] = '.';
	}
	out[o] = '\0';
	return procrule_cwd_settled(out, path, err, errlen);
}
