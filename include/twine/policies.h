/* SPDX-License-Identifier: MIT */
/*
 * Connection policies, as Twisted's twisted.protocols.policies: a
 * resettable per-connection timeout (TimeoutMixin), and a wrapping factory
 * that puts a policy protocol between each transport and the protocol the
 * wrapped factory builds: a bandwidth throttle (ThrottlingFactory), a limit
 * on the connections one peer may hold (LimitConnectionsByPeer) and a
 * traffic log (TrafficLoggingFactory).
 *
 * The wrapped protocol sees an ordinary transport: every call of
 * twine/transport.h works on it and reaches the real one, and the real
 * transport's events reach the wrapped protocol, with the policy's own
 * pauses added:
 *
 *     real transport <-> policy protocol <-> wrapped protocol
 *                        (counts, pauses,     (built by the wrapped factory;
 *                         logs, refuses)       its factory field is that one)
 *
 * Throttling works as Twisted's does, by pausing, never by holding bytes
 * back: past the read limit the transport stops reading until the rate is
 * back under it; past the write limit the wrapped protocol (or its
 * registered producer) hears pause_producing, and resume_producing once the
 * rate is back under it, and a pull producer is asked for its next piece
 * only then. What a protocol writes while paused still goes out, so a
 * protocol that ignores pause_producing is not slowed, as in Twisted. Rates
 * are kept with a token bucket that holds a tenth of a second's worth, so
 * over any stretch of time the bytes moved stay within that much plus one
 * read (64 KiB) or one write of the limit.
 */
#ifndef TWINE_POLICIES_H
#define TWINE_POLICIES_H

#include <stddef.h>
#include <twine/common.h>
#include <twine/protocol.h>
#include <twine/reactor.h>

TW_BEGIN_DECLS

/* ------------------------------------------------------------ timeouts */

typedef struct tw_timeout tw_timeout;

/** Called when a timeout passes; see tw_timeout_init(). */
typedef void (*tw_timeout_fn)(tw_timeout *t);

/**
 * A resettable timeout for one connection, as Twisted's TimeoutMixin: a
 * protocol (server or client) embeds one, sets it with tw_timeout_set(),
 * restarts it with tw_timeout_reset() on whatever it counts as activity
 * (typically each data_received), and hears timeout_connection when a whole
 * period passed without a reset. All fields are private except where marked.
 */
struct tw_timeout {
    tw_protocol *protocol;            /**< read-only: whose transport is closed */
    tw_timeout_fn timeout_connection; /**< public: NULL closes (see tw_timeout_init()) */
    double period;                    /* seconds; 0 when not set */
    tw_call *call;                    /* the pending timeout, owned */
    int closing;                      /* the default handler closed once already */
};

/**
 * Initialise @p t for protocol @p p, unset. Nothing is allocated.
 * @p timeout_connection runs (from the loop) when a period passes without a
 * reset; the timeout is then unset. NULL means Twisted's default, closing
 * the connection with tw_transport_lose_connection(); should the close still
 * not be done one period later (a peer that does not read what is queued),
 * the connection is aborted.
 */
TW_API void tw_timeout_init(tw_timeout *t, tw_protocol *p, tw_timeout_fn timeout_connection);

/**
 * Start (or restart) the countdown: the timeout passes @p seconds from now
 * unless reset. @p seconds 0 unsets it, as Twisted's setTimeout(None). The
 * protocol must have a transport on a reactor (set it in connection_made
 * or later). Never calls back synchronously.
 * @return 0; -EINVAL for a negative or non-finite @p seconds; TW_ESTATE
 *         without a transport or reactor; -ENOMEM.
 */
TW_API int tw_timeout_set(tw_timeout *t, double seconds);

/** Restart the countdown of a set timeout (Twisted's resetTimeout); nothing if unset. */
TW_API void tw_timeout_reset(tw_timeout *t);

/** @return the period set, in seconds, or 0 when the timeout is unset. */
TW_API double tw_timeout_period(const tw_timeout *t);

/**
 * Unset @p t and release what it holds. Call it from connection_lost (or
 * destroy): a timeout must not outlive its protocol. Idempotent.
 */
TW_API void tw_timeout_cleanup(tw_timeout *t);

/* ------------------------------------------------------------ wrapping policies */

/** What a policy factory applies to each connection; 0 turns a policy off. */
typedef struct tw_policy_options {
    /** Bytes per second read from all the factory's connections together
     *  (Twisted's ThrottlingFactory readLimit); 0: no limit. */
    double read_limit;
    /** Bytes per second written by all its connections together (writeLimit). */
    double write_limit;
    /** Bytes per second read from each connection on its own. */
    double connection_read_limit;
    /** Bytes per second written to each connection on its own. */
    double connection_write_limit;
    /**
     * Connections one peer IP address may hold at once (Twisted's
     * LimitConnectionsByPeer); the next is refused (closed at once, the
     * wrapped factory never asked) and logged at info level. IPv4 peers seen
     * as IPv4-mapped IPv6 addresses count as the IPv4 address. UNIX-socket
     * peers have no address to tell them apart and are not limited.
     */
    unsigned max_per_peer;
    /**
     * Nonzero: log each connection's traffic, both ways, as a hex dump at
     * TW_LOG_DEBUG under the subsystem "traffic" (Twisted's
     * TrafficLoggingFactory), plus its start and end. Nothing is formatted
     * while the log level is above debug.
     */
    int log_traffic;
} tw_policy_options;

/** Fill @p o with every policy off. */
TW_API void tw_policy_options_init(tw_policy_options *o);

/**
 * Make a factory that wraps each protocol @p wrapped builds in the
 * policies of @p o (copied). Listen or connect with it as with @p wrapped;
 * the limits of @p o that say "together" apply to every connection the new
 * factory serves, so a factory per listener gives per-listener limits.
 *
 * @p wrapped is borrowed and must outlive the new factory, which counts as
 * one of its users while it has users itself (start_factory/stop_factory
 * pass through), and passes client_connection_failed/lost through. Free the
 * new factory with tw_factory_free() once its listeners and connections are
 * closed; that leaves @p wrapped alone. Never calls back synchronously.
 * @return 0 and *@p out; -EINVAL for a negative or non-finite limit; -ENOMEM.
 */
TW_API int tw_policy_factory_new(tw_reactor *r, tw_factory *wrapped, const tw_policy_options *o,
                                 tw_factory **out);

/**
 * @return how many connections the per-peer limit (max_per_peer) of the
 *         policy factory @p f refused; 0 for any other factory. Each was
 *         accepted by its listener and refused by the factory, so the
 *         listener counts it as a TW_REFUSE_FACTORY refusal too.
 */
TW_API unsigned long long tw_policy_factory_refused(const tw_factory *f);

/**
 * @return the protocol that @p wrapped built inside a protocol of a policy
 *         factory (tw_policy_factory_new()), or @p p itself for any other.
 */
TW_API tw_protocol *tw_policy_unwrap(tw_protocol *p);

TW_END_DECLS

#endif
