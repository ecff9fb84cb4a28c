/* sigpipe: the signal self-pipe (see include/core/sigpipe.h). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "core/sigpipe.h"

/*
 * Process-wide: the handler can reach nothing else.  Written only by
 * sigpipe_open()/sigpipe_close(), read by the handler.
 */
static volatile sig_atomic_t sigpipe_wr = -1;
static int sigpipe_rd = -1;

static void
sigpipe_handler(int signo)
{
	unsigned char byte = (unsigned char)signo;
	int saved = errno;

	/* A full pipe drops the byte; the signal is already pending anyway. */
	if (write(sigpipe_wr, &byte, 1) < 0)
		(void)0;
	errno = saved;
}

int
sigpipe_open(void)
{
	int fds[2];

	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) == -1)
		return -1;
	sigpipe_rd = fds[0];
	sigpipe_wr = fds[1];
	return sigpipe_rd;
}

int
sigpipe_catch(int signo)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = sigpipe_handler;
	sa.sa_flags = SA_RESTART;
	sigfillset(&sa.sa_mask);
	return sigaction(signo, &sa, NULL);
}

int
sigpipe_next(void)
{
	unsigned char byte;
	ssize_t n;

	do
		n = read(sigpipe_rd, &byte, 1);
	while (n == -1 && errno == EINTR);
	return n == 1 ? byte : 0;
}

void
sigpipe_close(void)
{
	if (sigpipe_rd >= 0)
		close(sigpipe_rd);
	if (sigpipe_wr >= 0)
		close(sigpipe_wr);
	sigpipe_rd = -1;
	sigpipe_wr = -1;
}

void
sigpipe_reset_all(void)
{
	struct sigaction sa;
	int signo;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (signo = 1; signo < NSIG; signo++) {
		if (signo == SIGKILL || signo == SIGSTOP)
			continue;
		(void)sigaction(signo, &sa, NULL);	/* EINVAL for RT gaps */
	}
}

void
sigpipe_unblock_all(void)
{
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}
