/* SPDX-License-Identifier: MIT */
/*
 * UNIX socket files (unixfile_internal.h). A file left by a server that
 * died is a socket nobody answers on: connecting to it is refused, which
 * tells it apart from a live server, so it can be removed without asking
 * the operator, while a live socket or any other kind of file is refused.
 * The owner remembers the device and inode it bound, so stopping never
 * removes a file that a newer server put at the same path.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <twine/log.h>

#include "core/fd_internal.h"
#include "net/unixfile_internal.h"

const char *tw__unix_path(const tw_address *addr)
{
    const size_t at = offsetof(struct sockaddr_un, sun_path);
    const char *path = ((const struct sockaddr_un *)&addr->u.storage)->sun_path;
    if (tw_address_family(addr) != AF_UNIX || addr->len <= at || path[0] == '\0' ||
        memchr(path, '\0', addr->len - at) == NULL)
        return NULL;
    return path;
}

int tw__unix_clear_stale(const tw_address *addr, int type, const char **why)
{
    const char *path = tw__unix_path(addr);
    struct stat st;
    if (path == NULL)
        return 0;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISSOCK(st.st_mode)) {
        *why = "the path exists and is not a socket";
        return -EADDRINUSE;
    }
    int s = tw__socket(AF_UNIX, type, 0, O_NONBLOCK | O_CLOEXEC);
    if (s < 0)
        return -errno;
    int rc = connect(s, &addr->u.sa, addr->len);
    int err = rc < 0 ? errno : 0;
    close(s);
    if (err == 0 || err == EAGAIN || err == EINPROGRESS) {
        *why = type == SOCK_DGRAM ? "a datagram socket is already bound there"
                                  : "a server is already listening there";
        return -EADDRINUSE;
    }
    if (err == EPROTOTYPE) {
        /* A live socket of the other type answers with this; a dead one
         * would have refused. */
        *why = "a socket of another type is bound there";
        return -EADDRINUSE;
    }
    if (err == ENOENT)
        return 0;
    if (err != ECONNREFUSED)
        return -err;
    if (unlink(path) < 0 && errno != ENOENT)
        return -errno;
    tw_log(TW_LOG_INFO, "unix", "removed stale socket file %s", path);
    return 0;
}

int tw__unix_file_claim(tw__unix_file *f, const char *path, int mode)
{
    struct stat st;
    if ((mode >= 0 && chmod(path, (mode_t)mode) < 0) || lstat(path, &st) < 0)
        return -errno;
    f->owned = 1;
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    return 0;
}

void tw__unix_file_remove(tw__unix_file *f, const char *path)
{
    struct stat st;
    if (!f->owned || path == NULL)
        return;
    if (lstat(path, &st) == 0 && st.st_dev == f->dev && st.st_ino == f->ino)
        unlink(path);
    f->owned = 0;
}
