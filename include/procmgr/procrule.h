/*
 * procrule: the pure rules of agent processes — status, signal, fork and
 * view mode names, the transitions a signal makes, a child's budget and
 * the normalisation of a working directory.  No I/O: procmgr.c applies
 * them over the database, unit tests and fuzz/fuzz_path.c call them
 * directly.
 */
#ifndef EGRESSD_PROCRULE_H
#define EGRESSD_PROCRULE_H

#include <stddef.h>

enum proc_status {
	PS_CREATED, PS_RUNNABLE, PS_PAUSED, PS_WAITING_EVENT,
	PS_EXITED, PS_FAILED, PS_KILLED
};
enum fork_mode { FORK_RESTRICTED, FORK_COPY, FORK_SPECULATIVE, FORK_WORKER };
enum view_mode { VIEW_MUTABLE, VIEW_COPY_ON_WRITE, VIEW_EPHEMERAL,
    VIEW_READ_ONLY };
enum proc_signal { PSIG_PAUSE, PSIG_RESUME, PSIG_CANCEL, PSIG_TERMINATE };

/* How many of each there are: values from 0 up to the count less one. */
#define PROCRULE_NSTATUS (PS_KILLED + 1)
#define PROCRULE_NFORK_MODES (FORK_WORKER + 1)
#define PROCRULE_NVIEW_MODES (VIEW_READ_ONLY + 1)
#define PROCRULE_NSIGNALS (PSIG_TERMINATE + 1)

struct proc_budget {
	int max_tool_calls;
	int max_child_processes;
	double max_runtime_seconds;
};

const char *procrule_status_name(enum proc_status s);
int procrule_status_parse(const char *name, enum proc_status *out);
int procrule_status_terminal(enum proc_status s);
/* The status a signal leads to, or -1 when it does not apply. */
int procrule_signal_transition(enum proc_status from, enum proc_signal sig);
const char *procrule_signal_name(enum proc_signal sig);
int procrule_signal_parse(const char *name, enum proc_signal *out);
const char *procrule_fork_mode_name(enum fork_mode m);
/* Any case. */
int procrule_fork_mode_parse(const char *name, enum fork_mode *out);
enum view_mode procrule_fork_view_mode(enum fork_mode m);
const char *procrule_view_mode_name(enum view_mode m);
/* max(min, parent // divisor) for tool calls and children; runtime kept. */
struct proc_budget procrule_child_budget(const struct proc_budget *parent,
    int divisor, int min_tool_calls, int min_child_processes);
/*
 * Workspace-relative normalisation: "" and "." give "."; "a/./b/" gives
 * "a/b"; backslashes count as slashes; absolute paths ("/x", "C:\\x",
 * "C:x", "\\\\host") and escapes above the root ("../x", "a/../../b") are
 * refused with -1 and a reason in err, and so is a result that would not
 * normalise to itself ("./C:x", "./ a").
 */
int procrule_normalize_cwd(const char *path, char *out, size_t outlen,
    char *err, size_t errlen);

#endif
