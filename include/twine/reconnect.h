/* SPDX-License-Identifier: MIT */
/*
 * A reconnecting client service, as Twisted's ClientService (and its older
 * ReconnectingClientFactory): it keeps one connection to a client endpoint
 * up, reconnecting after every failure or loss with exponential backoff.
 *
 * Backoff. The n-th retry in a row waits
 *     min(initial_delay * factor^(n-1), max_delay)
 * seconds, multiplied by a random number between 1 - jitter and 1 + jitter
 * so that many clients of one server do not retry in lockstep. A connection
 * that succeeds resets the count by itself: after it is lost the next retry
 * waits initial_delay again. There is no reset call to forget.
 *
 * The factory. The service connects with its own factory, which asks the
 * caller's factory to build each protocol and passes on its
 * start_factory/stop_factory (around the service running),
 * client_connection_failed and client_connection_lost. The caller's
 * protocol sees its own factory in p->factory and the real transport in
 * p->transport; the transport's protocol field, though, is the service's
 * thin wrapper around it.
 *
 * A reactor's stop (tw_reactor_stop()) ends the service when its
 * connection or attempt ends: it stops as tw_reconnect_stop() does, and
 * once the stop completed, tw_reconnect_start() starts it again.
 *
 * Callbacks: tw_reconnect_stop() and tw_reconnect_free() may be called from
 * any callback, the service's own and its protocol's included.
 *
 * Ownership: the caller owns the service and frees it with
 * tw_reconnect_free(), before freeing the reactor. The endpoint is copied;
 * the factory is borrowed and must outlive the service and its connections.
 */
#ifndef TWINE_RECONNECT_H
#define TWINE_RECONNECT_H

#include <twine/common.h>
#include <twine/deferred.h>
#include <twine/endpoint.h>
#include <twine/protocol.h>
#include <twine/reactor.h>

TW_BEGIN_DECLS

typedef struct tw_reconnect tw_reconnect;

typedef struct tw_reconnect_options {
    double initial_delay; /**< seconds before the first retry; default 1 */
    double factor;        /**< growth of each further delay (>= 1); default 2 */
    double max_delay;     /**< cap on the delay; default 60 */
    double jitter;        /**< relative randomness, 0 to 1; default 0.1 */
    /**
     * Retries after a failed first attempt, as Twisted's maxRetries: the
     * service gives up when the first attempt and max_retries retries all
     * failed in a row (max_retries + 1 failures); 0 never gives up.
     */
    unsigned max_retries;
    unsigned seed;        /**< seed of the jitter's random numbers; 0 picks one */
} tw_reconnect_options;

/** Fill @p o with the defaults. */
TW_API void tw_reconnect_options_init(tw_reconnect_options *o);

/**
 * Make a service that will keep connecting to the client endpoint @p e with
 * @p f once started.
 * @param o NULL for the defaults; copied.
 * @return 0 and the service in @p out; -EINVAL for a server endpoint or
 *         options out of range (negative or non-finite delays, factor < 1,
 *         jitter outside 0..1, max_delay < initial_delay); -ENOMEM.
 */
TW_API int tw_reconnect_new(tw_reactor *r, const tw_endpoint *e, tw_factory *f,
                            const tw_reconnect_options *o, tw_reconnect **out);

/**
 * Start connecting; the first attempt begins from the loop, at once.
 * @return 0; TW_ESTATE if it is already running; TW_ESHUTDOWN while the
 *         reactor is stopping.
 */
TW_API int tw_reconnect_start(tw_reconnect *rc);

/**
 * Stop trying: a pending retry is cancelled, an attempt under way is
 * cancelled (the factory hears client_connection_failed with TW_ECANCELLED),
 * and deferreds from tw_reconnect_when_connected() still waiting fail with
 * TW_ECANCELLED. With @p disconnect, the current connection is also closed
 * (lose_connection: after its output is flushed); without, it stays up,
 * but is not replaced when it ends. Idempotent. May call back synchronously.
 */
TW_API void tw_reconnect_stop(tw_reconnect *rc, int disconnect);

/**
 * Stop (disconnecting) and free the service. Its memory goes once the
 * current connection, if any, has ended. NULL is ignored.
 */
TW_API void tw_reconnect_free(tw_reconnect *rc);

/**
 * Wait for a connection, as ClientService.whenConnected().
 * @return a new deferred reference, or NULL when memory runs out. It fires
 *         with the caller's protocol (borrowed, valid until destroyed): at
 *         once when connected now, otherwise when the next connection is
 *         made. It fails with TW_ECANCELLED when the service stops first,
 *         or with the last failure when it gives up (max_retries).
 */
TW_API tw_deferred *tw_reconnect_when_connected(tw_reconnect *rc);

/** @return the caller's protocol of the current connection, or NULL. */
TW_API tw_protocol *tw_reconnect_protocol(const tw_reconnect *rc);

/** @return failed attempts in a row since the last connection (or the start). */
TW_API unsigned tw_reconnect_attempts(const tw_reconnect *rc);

/** @return the delay chosen for the pending retry in seconds, or 0 when none is pending. */
TW_API double tw_reconnect_delay(const tw_reconnect *rc);

/** @return how many connections the service has made since it was created. */
TW_API unsigned long tw_reconnect_connections(const tw_reconnect *rc);

/** @return nonzero between tw_reconnect_start() and stop (or giving up). */
TW_API int tw_reconnect_running(const tw_reconnect *rc);

TW_END_DECLS

#endif
