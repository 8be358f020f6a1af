/* SPDX-License-Identifier: MIT */
/*
 * What a UNIX stream socket carries beside bytes: descriptors (SCM_RIGHTS)
 * sent with data, received with it under a bound, and the peer's
 * credentials. The stream transport (stream.c) and the public transport
 * calls (transport.c) use these; they know nothing of streams.
 */
#ifndef TWINE_UNIXMSG_INTERNAL_H
#define TWINE_UNIXMSG_INTERNAL_H

#include <sys/types.h>
#include <sys/uio.h>
#include <twine/transport.h>

/* Send @p iov with the @p nfds descriptors @p fds attached to its first
 * byte, never raising SIGPIPE. @return as sendmsg(2): bytes sent (the
 * descriptors went when it is positive), or -1 with errno set. */
ssize_t tw__unix_send_fds(int fd, const struct iovec *iov, const int *fds, int nfds);

/*
 * Read up to @p len bytes into @p buf, with the descriptors that came with
 * them. At most @p max descriptors land in @p fds (close-on-exec); the
 * ones beyond @p max are closed here, and *@p dropped counts them and the
 * ones the kernel dropped for want of room, so that none ever leaks.
 * @return as recv(2); the descriptors are the caller's even when it
 *         returns 0.
 */
ssize_t tw__unix_recv_fds(int fd, void *buf, size_t len, int *fds, int max, int *nfds,
                          int *dropped);

/* Duplicate @p n descriptors close-on-exec into @p out. @return 0, or a
 * negated errno (-EBADF for one that is not open) with none duplicated. */
int tw__dup_fds(const int *fds, int n, int *out);

/* Close the @p n descriptors of @p fds. */
void tw__close_fds(const int *fds, int n);

/* The credentials of the process at the other end of the UNIX socket
 * @p fd. @return 0, or a negated errno. */
int tw__unix_peer_credentials(int fd, tw_peer_credentials *out);

#endif
