/* SPDX-License-Identifier: MIT */
/*
 * What a process costs, for the metrics: start time and uptime, CPU time,
 * resident and virtual memory, open descriptors and the descriptor limit,
 * read as Prometheus' client libraries read them (process_* names), from
 * /proc on Linux. Where a figure cannot be read it is reported as unknown
 * (-1) and left out of the exposition, never guessed.
 *
 * The start is marked by main() and again in each worker after its fork,
 * so every process reports its own.
 */
#include "config.h"

#include <dirent.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "reactord.h"

static double started_wall, started_mono;

static double clock_seconds(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void rd_process_mark_start(void)
{
    started_wall = clock_seconds(CLOCK_REALTIME);
    started_mono = clock_seconds(CLOCK_MONOTONIC);
}

/* Resident and virtual size from /proc/self/statm, in pages. */
static void read_memory(rd_process_figures *p)
{
    p->rss_bytes = p->virtual_bytes = -1;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return;
    unsigned long size, resident;
    long page = sysconf(_SC_PAGESIZE);
    if (fscanf(f, "%lu %lu", &size, &resident) == 2 && page > 0) {
        p->virtual_bytes = (double)size * (double)page;
        p->rss_bytes = (double)resident * (double)page;
    }
    fclose(f);
}

/* The entries of /proc/self/fd, less the one that reads it. */
static double count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    double n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1;
}

void rd_process_read(rd_process_figures *p)
{
    p->start_time = started_wall;
    p->uptime = clock_seconds(CLOCK_MONOTONIC) - started_mono;
    struct rusage ru;
    p->cpu_seconds = 0;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        p->cpu_seconds = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    read_memory(p);
    p->open_fds = count_fds();
    struct rlimit rl;
    p->max_fds = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                     ? (double)rl.rlim_cur
                     : -1;
}
