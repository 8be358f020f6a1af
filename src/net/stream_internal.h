/* SPDX-License-Identifier: MIT */
/*
 * The stream transport shared by TCP, TCP6 and UNIX connections, whether
 * accepted by a listener or made by a client connect.
 */
#ifndef TWINE_STREAM_INTERNAL_H
#define TWINE_STREAM_INTERNAL_H

#include <twine/listener.h>
#include <twine/protocol.h>
#include <twine/transport.h>

/* How a stream came to be, which decides who hears of its end. */
typedef enum {
    TW__STREAM_ACCEPTED, /* by a listener, which counts it */
    TW__STREAM_ADOPTED,  /* tw_transport_adopt(): a user of its factory */
    TW__STREAM_CLIENT    /* an outgoing connect: also client_connection_lost */
} tw__stream_origin;

/*
 * Wrap the connected, non-blocking socket @p fd in a stream transport, build
 * its protocol with @p f and call connection_made. The stream takes @p fd
 * (closing it on every error). @p listener must be set for accepted
 * streams and is told when the connection ends. Adopted and client streams
 * count as users of @p f (tw_factory_start/stop) for their lifetime; client
 * streams also call the factory's client_connection_lost when they end.
 * @param out if non-NULL, receives the protocol (valid until destroy).
 * @return 0; -ECONNREFUSED when the factory refused the connection;
 *         -ENOMEM.
 */
int tw__stream_start(tw_reactor *r, int fd, tw_factory *f, const tw_address *peer,
                     tw__stream_origin origin, tw_listener *listener, tw_protocol **out);

/* Close, with reason TW_EIDLE, every connection of @p l that was silent for
 * @p timeout seconds. */
void tw__stream_close_idle(tw_reactor *r, tw_listener *l, double timeout);

/* listener.c: a connection that a listener accepted has ended. */
void tw__listener_connection_done(tw_listener *l);

/* listener.c: run @p fn(@p arg) once, when @p l stops listening (closed by
 * its owner, by tw_reactor_stop() or by tw_reactor_free()); endpoints use it
 * to remove a UNIX socket file and its lock. One hook per listener. */
void tw__listener_on_stop(tw_listener *l, void (*fn)(void *arg), void *arg);

/* listener.c: tw_listen(), with @p mode (or -1 for what the umask gives)
 * set on a UNIX socket file before it accepts. @p why receives a sentence
 * when the stale-file rule refuses the path (-EADDRINUSE). */
int tw__listen(tw_reactor *r, const tw_address *addr, int mode, const tw_listen_options *opts,
               tw_factory *f, tw_listener **out, const char **why);

/* listener.c: the listener's idle timeout in seconds, 0 for none. */
double tw__listener_idle_timeout(const tw_listener *l);

#endif
