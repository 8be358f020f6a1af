/* SPDX-License-Identifier: MIT */
/*
 * Telling the service manager how start-up and shutdown go (systemd's
 * Type=notify): READY=1 once every endpoint listens and privileges are
 * gone, STOPPING=1 when a graceful stop begins. The protocol is the one
 * sd_notify(3) documents: one datagram of newline-separated assignments to
 * the AF_UNIX socket named by $NOTIFY_SOCKET, a path, or an abstract name
 * when it starts with '@'. It is small and stable enough to speak directly,
 * so reactord needs no libsystemd.
 *
 * The variable is read once and removed from the environment at start-up,
 * as sd_notify(unset_environment=1) would, so that no module or child
 * process speaks for reactord. Only the process systemd knows as the main
 * one (the server, or the workers' supervisor) calls rd_notify(). A socket
 * is made for each message: there are two in a process's life, and an open
 * one would have to survive the daemon's closing of inherited descriptors.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/fd_internal.h"
#include "reactord.h"

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* a datagram socket raises no SIGPIPE, and it is ignored */
#endif

static struct sockaddr_un notify_addr;
static socklen_t notify_len; /* 0: no service manager is listening */
static int warned;

void rd_notify_init(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (path == NULL)
        return;
    size_t n = strlen(path);
    if ((path[0] == '/' || path[0] == '@') && n >= 2 && n < sizeof notify_addr.sun_path) {
        notify_addr.sun_family = AF_UNIX;
        memcpy(notify_addr.sun_path, path, n);
        if (path[0] == '@')
            notify_addr.sun_path[0] = '\0'; /* the abstract namespace */
        notify_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n +
                                 (path[0] == '/' ? 1 : 0));
    } else {
        tw_log(TW_LOG_WARN, "reactord",
               "NOTIFY_SOCKET='%s' is not a UNIX socket path or abstract name; the service "
               "manager will not be told when reactord is ready", path);
    }
    unsetenv("NOTIFY_SOCKET");
}

void rd_notify(const char *state)
{
    if (notify_len == 0)
        return;
    int fd = tw__socket(AF_UNIX, SOCK_DGRAM, 0, O_CLOEXEC);
    int rc = fd < 0 ? -errno : 0;
    if (rc == 0) {
        ssize_t w;
        do
            w = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&notify_addr,
                       notify_len);
        while (w < 0 && errno == EINTR);
        if (w < 0)
            rc = -errno;
        close(fd);
    }
    if (rc < 0 && !warned) {
        warned = 1; /* once: the manager that vanished will not come back */
        tw_log(TW_LOG_WARN, "reactord", "cannot notify the service manager at NOTIFY_SOCKET: %s",
               strerror(-rc));
    }
}
