/* SPDX-License-Identifier: MIT */
/*
 * The test kit: what twisted.internet.testing gives a Twisted user, for
 * unit-testing a protocol without sockets, without a running loop and
 * without waiting for real time.
 *
 *   tw_string_transport  a transport that records what the protocol writes
 *                        and how it closes, and lets the test feed bytes,
 *                        end the input and lose the connection
 *                        (Twisted's StringTransport);
 *   tw_pump              two string transports joined back to back, moving
 *                        bytes between a client and a server protocol only
 *                        when the test says so, in chunks of any size
 *                        (Twisted's iosim.connect / IOPump);
 *   tw_clock             a reactor whose time moves only when the test
 *                        advances it, driving timed calls, looping calls and
 *                        deferred timeouts (Twisted's task.Clock);
 *   tw_deferred_success_result / _failure_result / _has_result
 *                        read a deferred that has already fired (Twisted's
 *                        successResultOf, failureResultOf, assertNoResult).
 *
 * The kit is part of libtwine, as twisted.internet.testing is part of
 * Twisted: a test links `pkg-config --libs twine` and nothing more, and the
 * kit can never disagree with the library it stands in for (the string
 * transport implements the library's tw_transport_ops, the result readers
 * use the deferred's own notion of "settled"). It depends on no test
 * framework: every call returns what it saw, and the test asserts with
 * whatever it uses (Check, CUnit, plain assert()).
 *
 * Nothing here is thread-safe; a test drives everything from one thread.
 */
#ifndef TWINE_TESTING_H
#define TWINE_TESTING_H

#include <stddef.h>
#include <twine/address.h>
#include <twine/common.h>
#include <twine/deferred.h>
#include <twine/failure.h>
#include <twine/protocol.h>
#include <twine/reactor.h>
#include <twine/transport.h>

TW_BEGIN_DECLS

/* ---- String transport --------------------------------------------------- */

/**
 * An in-memory transport: every tw_transport_* call works on it, as on a
 * socket stream, with no socket behind it.
 *
 *   - Every accepted write is appended to an output record the test reads
 *     (tw_string_transport_output()) and may clear. @c write_error, when
 *     the test sets it nonzero, is returned by every write instead.
 *   - lose_connection, abort_connection and lose_write_connection are
 *     counted. As on a stream, writes made after lose_connection are still
 *     recorded (they would go out before the FIN); after an abort or
 *     lose_write_connection, or once the connection is lost, they are
 *     refused with TW_ESTATE. connection_lost is not called from inside the
 *     protocol's call (a socket would call it later, from the loop): the
 *     test delivers it with tw_string_transport_run_close() or
 *     tw_string_transport_lose().
 *   - Reading: the protocol's tw_transport_pause_producing() /
 *     resume_producing() are counted and tracked in @c reading_paused.
 *     tw_string_transport_feed() delivers whatever @c reading_paused says
 *     (the test decides what was already in flight), but nothing once the
 *     protocol closed, the input ended or the connection was lost.
 *   - Flow control: in "hold" mode written bytes also stay queued in a
 *     simulated kernel queue until tw_string_transport_drain(); crossing the
 *     high watermark calls the protocol's pause_producing and draining to
 *     the low one resume_producing, exactly as the stream transport does.
 *     A registered producer is driven the same way, instead of the
 *     protocol (which then hears nothing of the watermarks, as with the
 *     stream transport and in Twisted): a streaming one is
 *     paused and resumed at the watermarks, a pull one is asked for more
 *     each time the queue empties, and it gets stop_producing when the
 *     connection is lost.
 *   - Addresses: @c peer and @c host (127.0.0.1:40000 and 127.0.0.1:7 by
 *     default) answer tw_transport_get_peer()/get_host(); set them freely.
 *     tw_transport_fileno() is -1: there is no descriptor.
 *
 * Fields marked read-only are the test's to read; the rest are its to set.
 * The transport owns its protocol (as a socket transport does) and calls
 * its destroy op in tw_string_transport_free().
 */
typedef struct tw_string_transport {
    tw_transport base; /**< read-only; base.protocol is the protocol under test */

    char *out;      /**< private: use tw_string_transport_output() */
    size_t out_len; /**< read-only: bytes in the output record */
    size_t out_cap; /**< private */
    size_t writes;  /**< read-only: writes accepted */
    int write_error; /**< public: nonzero makes every write return it */

    int lose_calls, abort_calls, lose_write_calls; /**< read-only */
    int pause_calls, resume_calls; /**< read-only: of reading, by the protocol */
    int reading_paused;            /**< read-only */
    int closing;                   /**< read-only: lose or abort was called */
    int write_shut_requested;      /**< read-only: lose_write_connection was called */
    int read_eof;                  /**< read-only: tw_string_transport_feed_eof() ran */

    int hold;           /**< read-only: see tw_string_transport_set_hold() */
    size_t queued;      /**< read-only: bytes in the simulated kernel queue */
    size_t high_wm, low_wm; /**< read-only: the watermarks */
    int producer_paused; /**< read-only: the protocol's pause_producing was called */
    int producer_pause_calls, producer_resume_calls; /**< read-only */
    tw_producer *producer;  /**< read-only: the registered producer (borrowed) */
    int streaming;          /**< read-only: it is a streaming producer */
    int registered_paused;  /**< read-only: the streaming producer is paused */

    int made, lost;  /**< read-only: connection_made / connection_lost delivered */
    int lost_code;   /**< read-only: the code connection_lost got */
    int write_lost;  /**< read-only: write_connection_lost was delivered */
    tw_factory *factory; /**< private: set by tw_string_transport_open() */

    tw_address peer, host; /**< public */
} tw_string_transport;

/**
 * Attach a new string transport to @p p (p->transport is set) and call its
 * connection_made, which may write at once.
 * @param r the reactor the protocol sees as p->transport->reactor (for its
 *        timed calls: pass tw_clock_reactor() to drive them), or NULL.
 * @param p taken over: tw_string_transport_free() calls p->ops->destroy.
 * @return the transport, owned by the caller (tw_string_transport_free()),
 *         or NULL when memory ran out (@p p is then untouched and not
 *         destroyed).
 */
TW_API tw_string_transport *tw_string_transport_new(tw_reactor *r, tw_protocol *p);

/**
 * Build a protocol with @p f for a peer at 127.0.0.1:40000, count the
 * connection as a user of @p f (tw_factory_start()) and call
 * connection_made, as a listener would.
 * @param r as for tw_string_transport_new().
 * @param f borrowed; it must outlive the transport.
 * @return the transport, owned by the caller, or NULL if the factory refused
 *         or memory ran out (the factory user is then released again).
 */
TW_API tw_string_transport *tw_string_transport_open(tw_reactor *r, tw_factory *f);

/**
 * Deliver @p len bytes to data_received, synchronously (@p data is
 * borrowed for the call). Ignored once the protocol closed, the input ended
 * or the connection was lost, as a socket delivers nothing then.
 */
TW_API void tw_string_transport_feed(tw_string_transport *t, const void *data, size_t len);

/** tw_string_transport_feed() of the NUL-terminated string @p s. */
TW_API void tw_string_transport_feed_str(tw_string_transport *t, const char *s);

/**
 * The peer ended its output (a FIN), as a socket's EOF: a protocol with
 * read_connection_lost gets it now and may go on writing; any other is
 * closed, getting connection_lost(TW_EDONE) now. Idempotent; ignored once
 * the protocol closed or the connection was lost.
 */
TW_API void tw_string_transport_feed_eof(tw_string_transport *t);

/**
 * @return the bytes written so far, in order (borrowed, valid until the
 *         next write or clear; not NUL-terminated; NULL when nothing was
 *         ever written). *@p len receives their count when @p len is not
 *         NULL.
 */
TW_API const char *tw_string_transport_output(const tw_string_transport *t, size_t *len);

/** @return nonzero if the output is exactly the NUL-terminated @p s. */
TW_API int tw_string_transport_output_is(const tw_string_transport *t, const char *s);

/** Forget the output recorded so far (Twisted's StringTransport.clear). */
TW_API void tw_string_transport_clear_output(tw_string_transport *t);

/**
 * Turn hold mode on or off. While on, written bytes stay queued until
 * tw_string_transport_drain(); turning it off drains everything, which may
 * call resume_producing synchronously.
 */
TW_API void tw_string_transport_set_hold(tw_string_transport *t, int on);

/**
 * Let the simulated kernel take @p n queued bytes ((size_t)-1: all). Calls,
 * synchronously, the protocol's resume_producing and a paused streaming
 * producer's resume_producing when the queue falls to the low watermark,
 * and a pull producer's resume_producing when it empties.
 */
TW_API void tw_string_transport_drain(tw_string_transport *t, size_t n);

/**
 * Ask a registered pull producer for its next piece (its resume_producing,
 * synchronously).
 * @return 0, or TW_ESTATE when no pull producer is registered.
 */
TW_API int tw_string_transport_pull(tw_string_transport *t);

/**
 * Do what the loop does after the protocol's call returned: deliver
 * write_connection_lost after lose_write_connection once the queue is
 * empty, and connection_lost -- TW_EABORTED after an abort, TW_EDONE after
 * lose_connection once the queue is empty. Calls back synchronously.
 * @return 1 if connection_lost was delivered now, else 0.
 */
TW_API int tw_string_transport_run_close(tw_string_transport *t);

/**
 * The connection went away (the peer reset it, the network failed): deliver
 * connection_lost(@p code) now unless it already ran; a registered producer
 * gets stop_producing first. @p code is a TW_E* code or a negated errno.
 */
TW_API void tw_string_transport_lose(tw_string_transport *t, int code);

/**
 * Deliver connection_lost if it has not run (TW_EABORTED or TW_EDONE if the
 * protocol closed, else TW_ECONNLOST), destroy the protocol, release the
 * factory user counted by tw_string_transport_open() (stop_factory may
 * run), and free @p t. All of it happens synchronously, in that order.
 * NULL is ignored.
 */
TW_API void tw_string_transport_free(tw_string_transport *t);

/* ---- Loopback pump ------------------------------------------------------ */

/**
 * A client and a server protocol joined by two string transports. Nothing
 * moves until tw_pump_flush(), so a whole conversation runs in one thread,
 * deterministically, and the test may look between any two steps. What a
 * side closes reaches the other as a socket would say it: after a
 * lose_connection, once all it wrote was delivered, connection_lost(TW_EDONE)
 * on both sides; after an abort, what was not delivered yet is dropped and
 * the peer gets -ECONNRESET; after a lose_write_connection the peer's input
 * ends (tw_string_transport_feed_eof()) once all was delivered.
 *
 * The addresses mirror each other: the client's peer is the server's host
 * (127.0.0.1:7), the server's peer the client's host (127.0.0.1:40000).
 */
typedef struct tw_pump {
    tw_string_transport *client, *server; /**< read-only */
    size_t client_sent, server_sent; /**< read-only: bytes moved so far, each way */
} tw_pump;

/**
 * Join @p client and @p server: connection_made runs on each, the server's
 * first (an accept precedes the client's connect completing), and may write.
 * @param r the reactor both protocols see (see tw_string_transport_new()),
 *        or NULL.
 * @param client taken over, as @p server: tw_pump_free() destroys both.
 * @return 0, or -ENOMEM (nothing was taken over, no callback ran).
 */
TW_API int tw_pump_connect(tw_pump *pump, tw_reactor *r, tw_protocol *client, tw_protocol *server);

/**
 * Move what each side wrote to the other in chunks of at most @p chunk
 * bytes (0: all there is), and deliver closes, until nothing moves or
 * @p max_rounds rounds passed. With @p chunk 1 every split point of a
 * message is exercised. Calls the protocols back synchronously.
 * @return the rounds that moved something.
 */
TW_API size_t tw_pump_flush(tw_pump *pump, size_t chunk, size_t max_rounds);

/**
 * Free both sides as tw_string_transport_free() does: connection_lost
 * (TW_ECONNLOST unless the side closed) runs synchronously on each side not
 * yet lost, then both protocols are destroyed and both transports freed.
 */
TW_API void tw_pump_free(tw_pump *pump);

/* ---- Clock -------------------------------------------------------------- */

/** A reactor on the test's time (Twisted's task.Clock). */
typedef struct tw_clock tw_clock;

/**
 * Make a clock at 0 seconds with a reactor of its own whose time moves
 * only by tw_clock_advance(). Anything built on that reactor (timed calls,
 * looping calls, deferred timeouts, tw_defer_later) then runs when the test
 * advances the clock, never by itself: the loop need not run.
 * @return a clock owned by the caller (tw_clock_free()), or NULL when memory
 *         or descriptors ran out.
 */
TW_API tw_clock *tw_clock_new(void);

/** @return the clock's reactor (borrowed; it lives as long as @p c). */
TW_API tw_reactor *tw_clock_reactor(tw_clock *c);

/** @return the clock's time in seconds (what tw_reactor_seconds() says). */
TW_API double tw_clock_seconds(const tw_clock *c);

/**
 * Move the time forward by @p seconds and run, synchronously and in order,
 * every call that is then due -- including calls those calls schedule for
 * a time already reached, as Twisted's Clock.advance does (so a callback
 * that keeps rescheduling itself with delay 0 never lets this return).
 * @return 0, or -EINVAL for a negative or non-finite @p seconds (nothing
 *         runs).
 */
TW_API int tw_clock_advance(tw_clock *c, double seconds);

/** Free the clock and its reactor (pending calls are released). NULL is ignored. */
TW_API void tw_clock_free(tw_clock *c);

/* ---- Reading a deferred that already fired ------------------------------ */

/**
 * @return nonzero if @p d has a result a callback added now would see at
 *         once: it fired and is neither paused nor waiting on another
 *         deferred nor running its chain. Zero is Twisted's assertNoResult.
 */
TW_API int tw_deferred_has_result(const tw_deferred *d);

/**
 * Read @p d's success value, as Twisted's successResultOf.
 * @param value receives the value.
 * @param free_fn NULL to peek: the chain keeps the value, which stays valid
 *        while @p d does. Otherwise the value is taken out: the caller owns
 *        it and destroys it with what *@p free_fn receives (maybe NULL), and
 *        the chain goes on with a NULL value.
 * @return 0; TW_ESTATE when @p d has no result yet (tw_deferred_has_result()
 *         is zero); -ENOMSG when its result is a failure, which stays in
 *         place (read it with tw_deferred_failure_result()). On error
 *         nothing changes.
 */
TW_API int tw_deferred_success_result(tw_deferred *d, void **value, tw_free_fn *free_fn);

/**
 * Take @p d's failure, as Twisted's failureResultOf: the failure is handled
 * and the chain goes on with a NULL value.
 * @param failure receives the caller's reference (tw_failure_unref()).
 * @return 0; TW_ESTATE when @p d has no result yet; -ENOMSG when its result
 *         is a success value. On error nothing changes.
 */
TW_API int tw_deferred_failure_result(tw_deferred *d, tw_failure **failure);

TW_END_DECLS

#endif
