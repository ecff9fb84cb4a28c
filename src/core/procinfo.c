/* procinfo: /proc readers and descriptor hygiene (see include/core/procinfo.h). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/procinfo.h"

uint64_t
procinfo_rss(pid_t pid)
{
	char path[64];
	unsigned long long size, resident;
	FILE *fp;
	int n;

	if (pid == 0)
		snprintf(path, sizeof(path), "/proc/self/statm");
	else
		snprintf(path, sizeof(path), "/proc/%ld/statm", (long)pid);
	if ((fp = fopen(path, "re")) == NULL)
		return 0;
	n = fscanf(fp, "%llu %llu", &size, &resident);
	fclose(fp);
	if (n != 2)
		return 0;
	return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static int
procinfo_kept(int fd, const int *keep, int nkeep)
{
	int i;

	for (i = 0; i < nkeep; i++)
		if (keep[i] == fd)
			return 1;
	return 0;
}

void
procinfo_close_fds_except(const int *keep, int nkeep)
{
	DIR *dir;
	struct dirent *de;
	int fd, dfd, max;

	if ((dir = opendir("/proc/self/fd")) == NULL) {
		/* No /proc: walk the whole descriptor range instead. */
		max = (int)sysconf(_SC_OPEN_MAX);
		for (fd = 3; fd < max; fd++)
			if (!procinfo_kept(fd, keep, nkeep))
				close(fd);
		return;
	}
	dfd = dirfd(dir);
	while ((de = readdir(dir)) != NULL) {
		fd = atoi(de->d_name);
		if (de->d_name[0] < '0' || de->d_name[0] > '9' || fd < 3 ||
		    fd == dfd || procinfo_kept(fd, keep, nkeep))
			continue;
		close(fd);
	}
	closedir(dir);
}

/*
 * Fields after the command name, which is in parentheses and may hold
 * anything, so the last ')' ends it: state is field 3, utime 14, stime 15,
 * starttime 22 (proc(5)).
 */
int
procinfo_parse_stat(const char *stat, double btime, long ticks,
    double *cpu_seconds, double *start_time)
{
	unsigned long long utime, stime, start;
	const char *p = strrchr(stat, ')');

	if (p == NULL || ticks <= 0 || sscanf(p + 1, " %*c %*d %*d %*d %*d "
	    "%*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d %llu",
	    &utime, &stime, &start) != 3)
		return -1;
	*cpu_seconds = (double)(utime + stime) / (double)ticks;
	*start_time = btime + (double)start / (double)ticks;
	return 0;
}

/* The boot time does not change: read once per process (and its forks). */
static double
procinfo_btime(void)
{
	static double btime;
	char line[256];
	FILE *fp;

	if (btime > 0 || (fp = fopen("/proc/stat", "re")) == NULL)
		return btime;
	while (fgets(line, sizeof(line), fp) != NULL)
		if (sscanf(line, "btime %lf", &btime) == 1)
			break;
	fclose(fp);
	return btime;
}

static unsigned long
procinfo_count_fds(void)
{
	struct dirent *de;
	unsigned long n = 0;
	DIR *dir;

	if ((dir = opendir("/proc/self/fd")) == NULL)
		return 0;
	while ((de = readdir(dir)) != NULL)
		if (de->d_name[0] >= '0' && de->d_name[0] <= '9')
			n++;
	closedir(dir);
	return n > 0 ? n - 1 : 0;	/* not the listing's own */
}

void
procinfo_self(struct procinfo_self *out)
{
	char stat[1024];
	size_t len;
	FILE *fp;

	memset(out, 0, sizeof(*out));
	out->rss = procinfo_rss(0);
	out->fds = procinfo_count_fds();
	if ((fp = fopen("/proc/self/stat", "re")) == NULL)
		return;
	len = fread(stat, 1, sizeof(stat) - 1, fp);
	fclose(fp);
	stat[len] = '\0';
	if (procinfo_parse_stat(stat, procinfo_btime(), sysconf(_SC_CLK_TCK),
	    &out->cpu_seconds, &out->start_time) == -1) {
		out->cpu_seconds = 0;
		out->start_time = 0;
	}
}
