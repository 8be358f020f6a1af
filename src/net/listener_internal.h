/* SPDX-License-Identifier: MIT */
/*
 * What the endpoint parser (endpoint.c) needs of listeners beyond the
 * public tw_listen(): a UNIX socket file's mode, the stale-file sentence,
 * and a hook for when the listener stops.
 */
#ifndef TWINE_LISTENER_INTERNAL_H
#define TWINE_LISTENER_INTERNAL_H

#include <sys/stat.h>
#include <twine/listener.h>

/* Run @p fn(@p arg) once, when @p l stops listening (closed by its owner,
 * by tw_reactor_stop() or by tw_reactor_free()); endpoints use it to remove
 * a UNIX socket file's lock. One hook per listener. */
void tw__listener_on_stop(tw_listener *l, void (*fn)(void *arg), void *arg);

/* tw_listen(), with @p mode (or -1 for what the umask gives) set on a UNIX
 * socket file before it accepts. @p why receives a sentence when the
 * stale-file rule refuses the path (-EADDRINUSE). */
int tw__listen(tw_reactor *r, const tw_address *addr, int mode, const tw_listen_options *opts,
               tw_factory *f, tw_listener **out, const char **why);

/* The listening socket tw__listen() serves, made alone: bound, listening,
 * non-blocking and close-on-exec, with @p mode and the stale-file rule on
 * a UNIX path (whose file's identity goes to *@p st). @return 0 with *@p
 * out, or a negated errno (with *@p why set as tw__listen() sets it). */
int tw__listen_socket(const tw_address *addr, int mode, const tw_listen_options *opts,
                      int *out, struct stat *st, const char **why);

#endif
