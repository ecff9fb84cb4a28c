/*
 * textfile: metrics.textfile, the Prometheus exposition for
 * node_exporter's textfile collector (nothing connects in to egressd, so
 * nothing listens for a scrape).  The master writes it every
 * metrics.textfile_interval on a timer of its loop, and at once after a
 * start or reload: the text goes to PATH.tmp beside it, then rename()
 * replaces PATH, so a reader sees the old file or the new one, never half
 * of one.  A failing write is logged once, and its recovery too.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/evloop.h"
#include "core/log.h"
#include "master_priv.h"

#define TEXTFILE_SUFFIX ".tmp"	/* not *.prom: the collector skips it */
#define TEXTFILE_MODE 0644	/* node_exporter often runs as its own user */

static int
textfile_write_all(int fd, const char *text, size_t len)
{
	ssize_t n;

	while (len > 0) {
		if ((n = write(fd, text, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		text += n;
		len -= (size_t)n;
	}
	return 0;
}

/* PATH.tmp, then rename over PATH; -1 with errno and *what on failure. */
static int
textfile_replace(const char *path, const char *text, const char **what)
{
	size_t len = strlen(path) + sizeof(TEXTFILE_SUFFIX);
	char *tmp;
	int fd, saved;

	if ((tmp = malloc(len)) == NULL) {
		*what = "memory";
		return -1;
	}
	snprintf(tmp, len, "%s%s", path, TEXTFILE_SUFFIX);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
	    TEXTFILE_MODE);
	if (fd == -1 || textfile_write_all(fd, text, strlen(text)) == -1 ||
	    close(fd) == -1) {
		saved = errno;
		*what = fd == -1 ? "open" : "write";
		if (fd != -1)
			(void)unlink(tmp);	/* close() after a write error */
		free(tmp);
		errno = saved;
		return -1;
	}
	if (rename(tmp, path) == -1) {
		saved = errno;
		*what = "rename";
		(void)unlink(tmp);
		free(tmp);
		errno = saved;
		return -1;
	}
	free(tmp);
	return 0;
}

static void
textfile_write(struct master *m)
{
	const char *path = m->cfg->metrics.textfile, *what = "render";
	char *text = master_ctl_render_metrics(m);
	int rc = -1;

	if (text != NULL)
		rc = textfile_replace(path, text, &what);
	else
		errno = ENOMEM;
	free(text);
	if (rc == -1 && !m->textfile_failing)
		log_warn("metrics.textfile %s: %s", path, what);
	else if (rc == 0 && m->textfile_failing)
		log_info("metrics.textfile %s: written again", path);
	m->textfile_failing = rc == -1;
}

static void
textfile_on_timer(void *arg)
{
	struct master *m = arg;

	if (m->state != MS_RUNNING)
		return;		/* stopping: the last one stays */
	evloop_timer_add(m->loop, &m->textfile, clock_mono() +
	    m->cfg->metrics.textfile_interval);
	textfile_write(m);
}

void
textfile_start(struct master *m)
{
	textfile_stop(m);
	evloop_timer_init(&m->textfile, textfile_on_timer, m);
	m->textfile_failing = 0;
	if (m->cfg->metrics.textfile[0] != '\0')
		evloop_timer_add(m->loop, &m->textfile, 0);
}

void
textfile_stop(struct master *m)
{
	evloop_timer_cancel(&m->textfile);
}
