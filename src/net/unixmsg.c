/* SPDX-License-Identifier: MIT */
/*
 * Descriptors and credentials over UNIX stream sockets (unixmsg_internal.h).
 *
 * Received descriptors are installed by the kernel into this process as
 * the message is read, so every path that does not hand one to a protocol
 * must close it: the control buffer has room for the most the kernel lets
 * one message carry (SCM_MAX_FD, 253 on Linux), everything past the
 * caller's bound is closed here, and a truncated control message
 * (MSG_CTRUNC, where the kernel itself discards what did not fit) is
 * counted as dropped too. MSG_CMSG_CLOEXEC makes them close-on-exec
 * atomically where the system has it; elsewhere they get FD_CLOEXEC at
 * once, before any code of the caller runs.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "net/unixmsg_internal.h"

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif
#ifndef MSG_CMSG_CLOEXEC
#define MSG_CMSG_CLOEXEC 0
#endif

/* The most descriptors one message may carry (Linux's SCM_MAX_FD). */
#define RECV_FDS_ROOM 253

ssize_t tw__unix_send_fds(int fd, const struct iovec *iov, const int *fds, int nfds)
{
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * TW_TRANSPORT_FDS_MAX)];
    } control;
    memset(&control, 0, sizeof control);
    struct msghdr msg = {.msg_iov = (struct iovec *)iov,
                         .msg_iovlen = 1,
                         .msg_control = control.buf,
                         .msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
    ssize_t w;
    do
        w = sendmsg(fd, &msg, MSG_NOSIGNAL);
    while (w < 0 && errno == EINTR);
    return w;
}

ssize_t tw__unix_recv_fds(int fd, void *buf, size_t len, int *fds, int max, int *nfds,
                          int *dropped)
{
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * RECV_FDS_ROOM)];
    } control;
    struct iovec iov = {buf, len};
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = control.buf,
                         .msg_controllen = sizeof control.buf};
    *nfds = 0;
    *dropped = 0;
    ssize_t n;
    do
        n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return n;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0))
            continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        const unsigned char *data = CMSG_DATA(c);
        for (size_t i = 0; i < count; i++) {
            int got;
            memcpy(&got, data + i * sizeof(int), sizeof got); /* CMSG_DATA may be unaligned */
            if (!MSG_CMSG_CLOEXEC)
                fcntl(got, F_SETFD, FD_CLOEXEC);
            if (*nfds < max) {
                fds[(*nfds)++] = got;
            } else {
                close(got);
                ++*dropped;
            }
        }
    }
    if (msg.msg_flags & MSG_CTRUNC)
        ++*dropped; /* the kernel discarded some: at least one more than we saw */
    return n;
}

int tw__dup_fds(const int *fds, int n, int *out)
{
    for (int i = 0; i < n; i++) {
        out[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
        if (out[i] < 0) {
            int err = errno;
            tw__close_fds(out, i);
            return -err;
        }
    }
    return 0;
}

void tw__close_fds(const int *fds, int n)
{
    for (int i = 0; i < n; i++)
        close(fds[i]);
}

int tw__unix_peer_credentials(int fd, tw_peer_credentials *out)
{
#if defined(SO_PEERCRED) && defined(__linux__)
    struct ucred uc;
    socklen_t len = sizeof uc;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
        return -errno;
    out->pid = uc.pid;
    out->uid = uc.uid;
    out->gid = uc.gid;
#else
    uid_t uid;
    gid_t gid;
    if (getpeereid(fd, &uid, &gid) < 0)
        return -errno;
    out->pid = -1; /* getpeereid does not say */
    out->uid = uid;
    out->gid = gid;
#endif
    return 0;
}
