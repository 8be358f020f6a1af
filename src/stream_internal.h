/*
 * The stream transport shared by TCP, TCP6 and UNIX connections, whether
 * accepted by a listener or made by a client connect.
 */
#ifndef TWINE_STREAM_INTERNAL_H
#define TWINE_STREAM_INTERNAL_H

#include <twine/listener.h>
#include <twine/protocol.h>
#include <twine/transport.h>

/*
 * Wrap the connected, non-blocking socket @p fd in a stream transport, build
 * its protocol with @p f and call connection_made. The stream takes @p fd
 * (closing it on every error). @p listener, when set, is told when the
 * connection ends.
 * @return 0; -ECONNREFUSED when the factory refused the connection;
 *         -ENOMEM.
 */
int tw__stream_start(tw_reactor *r, int fd, tw_factory *f, const tw_address *peer,
                     tw_listener *listener);

/* Close, with reason TW_EIDLE, every connection of @p l that was silent for
 * @p timeout seconds. */
void tw__stream_close_idle(tw_reactor *r, tw_listener *l, double timeout);

/* listener.c: a connection that a listener accepted has ended. */
void tw__listener_connection_done(tw_listener *l);

/* listener.c: the listener's idle timeout in seconds, 0 for none. */
double tw__listener_idle_timeout(const tw_listener *l);

#endif
