/* procinfo: /proc readers and descriptor hygiene (see include/core/procinfo.h). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
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
