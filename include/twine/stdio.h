/* SPDX-License-Identifier: MIT */
/*
 * The standard IO transport (Twisted's StandardIO): run a protocol over
 * the program's own stdin and stdout, through the reactor.
 */
#ifndef TWINE_STDIO_H
#define TWINE_STDIO_H

#include <twine/common.h>
#include <twine/protocol.h>
#include <twine/reactor.h>
#include <twine/transport.h>

TW_BEGIN_DECLS

/**
 * Build a protocol with @p f and connect it to @p stdin_fd (read) and
 * @p stdout_fd (written): usually 0 and 1; either may be -1. The
 * transport works on copies (dup) of them, so closing it leaves 0 and 1
 * open; they are made non-blocking while it runs (the flag belongs to the
 * open file, shared with the shell) and get their original flags back
 * when it closes. Pipes, terminals and regular files redirected in all
 * work; the transport otherwise behaves as tw_transport_adopt_pipe() says:
 * the same watermarks and producers as a stream, EOF on stdin ends the
 * connection unless the protocol has read_connection_lost, and
 * tw_transport_lose_write_connection() closes the copy of stdout.
 * connection_made runs before this returns.
 * @param out if non-NULL, receives the transport (valid until
 *        connection_lost).
 * @return 0; -EINVAL when both are -1; -ECONNREFUSED if the factory
 *         refused; -ENOMEM; a negated errno (-EBADF for a closed one).
 */
TW_API int tw_stdio_start(tw_reactor *r, tw_factory *f, int stdin_fd, int stdout_fd,
                          tw_transport **out);

TW_END_DECLS

#endif
