/* SPDX-License-Identifier: MIT */
/*
 * The standard IO transport (Twisted's StandardIO): a protocol reads the
 * program's stdin and writes its stdout through the reactor, as a pipe
 * transport (net/pipe_internal.h) over copies of descriptors 0 and 1, so
 * pipes, files redirected in (read a chunk per loop pass, since they
 * cannot be polled) and terminals all work, with the usual flow control.
 *
 * Non-blocking mode belongs to the open file, which the shell and other
 * processes share: the transport puts each descriptor's original flags
 * back when it closes, so a terminal is not left non-blocking.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <twine/stdio.h>

#include "net/pipe_internal.h"

TW_API int tw_stdio_start(tw_reactor *r, tw_factory *f, int stdin_fd, int stdout_fd,
                          tw_transport **out)
{
    if (stdin_fd < 0 && stdout_fd < 0)
        return -EINVAL;
    int rfd = -1, wfd = -1;
    if (stdin_fd >= 0 && (rfd = fcntl(stdin_fd, F_DUPFD_CLOEXEC, 3)) < 0)
        return -errno;
    if (stdout_fd >= 0 && (wfd = fcntl(stdout_fd, F_DUPFD_CLOEXEC, 3)) < 0) {
        int err = -errno;
        if (rfd >= 0)
            close(rfd);
        return err;
    }
    return tw__pipe_transport_start(r, rfd, wfd, f, 1, out);
}
