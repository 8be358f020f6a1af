/* SPDX-License-Identifier: MIT */
/*
 * Becoming a daemon: fork, setsid, fork again, so the server is neither a
 * process group leader nor attached to a terminal it could reacquire, and
 * its standard streams point at /dev/null.
 *
 * The operator's shell must still learn whether the server started. The
 * original process therefore waits on a status pipe until the daemon has
 * loaded its protocol, listened, switched user and written its pidfile, and
 * exits with the daemon's code and sentence; only then is the daemon
 * considered started. A daemon that fails leaves nothing behind.
 *
 * A daemon keeps no descriptor it inherited besides its standard streams,
 * the status pipe and the sockets systemd passed (LISTEN_FDS): whatever
 * else the starting shell or service manager left open is closed, as
 * daemon(7) asks.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <sys/wait.h>
#include <unistd.h>
#include <twine/endpoint.h>

#include "core/fd_internal.h"
#include "reactord.h"

/* The original process: wait for the verdict and pass it on. */
static int wait_for_daemon(int fd, pid_t middle)
{
    int code = 0;
    char msg[1024];
    int got = rd_status_read(fd, &code, msg, sizeof msg, -1);
    close(fd);
    int status;
    while (waitpid(middle, &status, 0) < 0 && errno == EINTR)
        ;
    if (got != 1)
        return rd_error(EX_SOFTWARE, "the daemon exited during start-up without reporting "
                                     "why; see its log file");
    if (code != 0)
        return rd_error(code, "%s", msg);
    return 0;
}

/* Close every descriptor above stderr but @p keep and the @p activated
 * sockets from descriptor 3 on. */
static void close_inherited(int keep, int activated)
{
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 65536)
        max = 65536;
    for (int fd = 3 + (activated > 0 ? activated : 0); fd < max; fd++)
        if (fd != keep)
            close(fd);
}

int rd_daemonize(int *parent)
{
    *parent = 0;
    /* Only the first process can tell: LISTEN_PID names it. */
    int activated = tw_endpoint_activated_fds();
    int p[2];
    if (tw__pipe(p, O_CLOEXEC) < 0)
        return rd_error(EX_OSERR, "cannot create the daemon's status pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(p[0]);
        close(p[1]);
        return rd_error(EX_OSERR, "cannot fork the daemon: %s", strerror(e));
    }
    if (pid > 0) {
        close(p[1]);
        *parent = 1;
        return wait_for_daemon(p[0], pid);
    }
    close(p[0]);
    rd_status_use_pipe(p[1], 0);
    /* The middle process leaves through main() like the others, so that it
     * frees what it inherited; a failure here is reported by it. */
    *parent = 2;
    if (setsid() < 0)
        return rd_error(EX_OSERR, "cannot start a new session: %s", strerror(errno));
    pid = fork();
    if (pid < 0)
        return rd_error(EX_OSERR, "cannot fork the daemon: %s", strerror(errno));
    if (pid > 0) {
        rd_status_use_pipe(-1, 0); /* the daemon reports, not us */
        close(p[1]);
        return 0;
    }
    *parent = 0;
    close_inherited(p[1], activated);
    rd_logging_detached();
    return rd_detach_stdio();
}

int rd_detach_stdio(void)
{
    int fd = open("/dev/null", O_RDWR);
    if (fd < 0)
        return rd_error(EX_OSERR, "cannot open /dev/null: %s", strerror(errno));
    for (int i = 0; i < 3; i++) {
        if (fd != i && dup2(fd, i) < 0) {
            int e = errno;
            close(fd);
            return rd_error(EX_OSERR, "cannot redirect standard stream %d: %s", i, strerror(e));
        }
    }
    if (fd > 2)
        close(fd);
    return 0;
}
