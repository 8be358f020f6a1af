/* SPDX-License-Identifier: MIT */
/*
 * Descriptors born non-blocking and close-on-exec. Where the system has the
 * flag forms (SOCK_NONBLOCK|SOCK_CLOEXEC, accept4, pipe2: Linux, FreeBSD)
 * they are used; where it lacks them (macOS) the same descriptor gets the
 * same flags from fcntl right after it is made. configure finds which; on
 * Linux the fallbacks are built and tested with
 *
 *   ./configure ac_cv_func_accept4=no ac_cv_func_pipe2=no \
 *       ac_cv_have_decl_SOCK_NONBLOCK=no ac_cv_have_decl_SOCK_CLOEXEC=no
 *
 * The fallback leaves a window between creation and fcntl in which another
 * thread's fork+exec inherits the descriptor. twine forks only from
 * reactord's single thread, so no twine descriptor leaks that way.
 *
 * Each call takes O_NONBLOCK and O_CLOEXEC in @p flags (either, both or
 * none) and returns like the system call it wraps: a descriptor (or 0) on
 * success, -1 with errno set on failure, having closed whatever it made.
 * The functions are static inline, so that reactord, twine-call and the
 * tests, which link only libtwine's public API, share this one copy.
 * Include config.h first.
 */
#ifndef TWINE_FD_INTERNAL_H
#define TWINE_FD_INTERNAL_H

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#if HAVE_DECL_SOCK_NONBLOCK && HAVE_DECL_SOCK_CLOEXEC
#define TW__SOCK_FLAG_FORMS 1
#else
#define TW__SOCK_FLAG_FORMS 0
#endif

/* Give @p fd what @p flags asks for with fcntl. @return 0, or -1 with
 * errno set (@p fd stays open). */
static inline int tw__fd_set_flags(int fd, int flags)
{
    if (flags & O_NONBLOCK) {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
            return -1;
    }
    if (flags & O_CLOEXEC) {
        int fl = fcntl(fd, F_GETFD);
        if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
            return -1;
    }
    return 0;
}

/* The fallback's second step: @p fd gets @p flags, or is closed with errno
 * kept. @return @p fd, or -1. */
static inline int tw__fd_finish(int fd, int flags)
{
    if (fd >= 0 && tw__fd_set_flags(fd, flags) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* tw__fd_finish() for both ends of a pipe or socket pair. @return 0, or -1
 * with errno set and both closed. */
static inline int tw__fd_pair_finish(int fds[2], int flags)
{
    if (tw__fd_set_flags(fds[0], flags) < 0 || tw__fd_set_flags(fds[1], flags) < 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        errno = e;
        return -1;
    }
    return 0;
}

#if TW__SOCK_FLAG_FORMS
/* The SOCK_* bits that carry @p flags into socket(), socketpair(), accept4(). */
static inline int tw__sock_flags(int flags)
{
    return ((flags & O_NONBLOCK) ? SOCK_NONBLOCK : 0) | ((flags & O_CLOEXEC) ? SOCK_CLOEXEC : 0);
}
#endif

/* socket(2) with @p flags. */
static inline int tw__socket(int domain, int type, int protocol, int flags)
{
#if TW__SOCK_FLAG_FORMS
    return socket(domain, type | tw__sock_flags(flags), protocol);
#else
    return tw__fd_finish(socket(domain, type, protocol), flags);
#endif
}

/* socketpair(2) with @p flags on both ends. @return 0 or -1. */
static inline int tw__socketpair(int domain, int type, int protocol, int sv[2], int flags)
{
#if TW__SOCK_FLAG_FORMS
    return socketpair(domain, type | tw__sock_flags(flags), protocol, sv);
#else
    if (socketpair(domain, type, protocol, sv) < 0)
        return -1;
    return tw__fd_pair_finish(sv, flags);
#endif
}

/* accept(2) with @p flags on the new descriptor. Without O_NONBLOCK in
 * @p flags the fallback leaves the descriptor as accept() made it, which on
 * the BSDs copies the listener's O_NONBLOCK; twine always asks for it. */
static inline int tw__accept(int lfd, struct sockaddr *sa, socklen_t *len, int flags)
{
#if defined(HAVE_ACCEPT4) && TW__SOCK_FLAG_FORMS
    return accept4(lfd, sa, len, tw__sock_flags(flags));
#else
    return tw__fd_finish(accept(lfd, sa, len), flags);
#endif
}

/* pipe(2) with @p flags on both ends. @return 0 or -1. */
static inline int tw__pipe(int p[2], int flags)
{
#ifdef HAVE_PIPE2
    return pipe2(p, flags);
#else
    if (pipe(p) < 0)
        return -1;
    return tw__fd_pair_finish(p, flags);
#endif
}

#endif
