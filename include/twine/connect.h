/* SPDX-License-Identifier: MIT */
/*
 * Outgoing stream connections (TCP over IPv4 and IPv6, and UNIX sockets),
 * as Twisted's connectTCP/connectUNIX with a client factory.
 *
 * A connect attempt looks the host up (asynchronously, see resolve.h; a
 * numeric host needs no lookup), then connects to its addresses as Happy
 * Eyeballs (RFC 8305) does, all within one timeout. The IPv6 and IPv4
 * addresses are looked up at once; connecting starts when the IPv6 ones
 * are known, or the IPv4 ones and the IPv6 lookup has had 50 ms more (the
 * Resolution Delay), and addresses known later join the attempts under
 * way. The addresses are tried IPv6 and IPv4 interleaved, IPv6 first; the first attempt starts at once and
 * each next one when the attempt delay (tw_connect_options.attempt_delay,
 * TW_CONNECT_ATTEMPT_DELAY = 250 ms by default) has passed since the
 * previous one started, or at once when the previous one failed, without
 * stopping those already under way. The first to connect wins and every
 * other socket is closed at that moment, so an address that drops packets
 * costs the attempt delay rather than the whole timeout. When every
 * address fails, the attempt fails with the error of the last one to fail.
 *
 * When the attempt succeeds the factory builds the protocol, which runs
 * over a stream transport exactly like an accepted connection; when the
 * connection ends the factory's client_connection_lost() hears of it after
 * the protocol's connection_lost(). When the attempt fails, is cancelled
 * or times out, the factory's client_connection_failed() gets the reason
 * and no protocol is built. Each attempt ends in exactly one of the two.
 *
 * The factory is borrowed and must outlive the attempt and its connection;
 * each counts as one of its users (start_factory/stop_factory). Attempts
 * under way when the reactor stops or is freed fail with TW_ESHUTDOWN.
 *
 * Nothing here calls back synchronously: the attempt starts from the loop,
 * so every outcome arrives after the connect call returned.
 */
#ifndef TWINE_CONNECT_H
#define TWINE_CONNECT_H

#include <twine/address.h>
#include <twine/common.h>
#include <twine/deferred.h>
#include <twine/protocol.h>
#include <twine/reactor.h>

TW_BEGIN_DECLS

/** The timeout a connect attempt gets unless told otherwise, as Twisted's. */
#define TW_CONNECT_TIMEOUT 30.0

/** Seconds between the starts of two connection attempts to one host's
 * addresses: RFC 8305's recommended Connection Attempt Delay. */
#define TW_CONNECT_ATTEMPT_DELAY 0.25

/** The least attempt delay allowed: RFC 8305's floor of 10 ms. */
#define TW_CONNECT_ATTEMPT_DELAY_MIN 0.01

typedef struct tw_connect_options {
    /**
     * Seconds the whole attempt (lookup and connect) may take before it
     * fails with TW_ETIMEDOUT; 0 for no limit. Default TW_CONNECT_TIMEOUT.
     */
    double timeout;
    /**
     * Local address to bind before connecting (port 0 lets the kernel
     * choose), or len 0 for none. Addresses of another family than the
     * local one are skipped.
     */
    tw_address bind_address;
    /**
     * Seconds after one connection attempt starts before the next address
     * is tried too, when the host has several (see above): at least
     * TW_CONNECT_ATTEMPT_DELAY_MIN, or 0 for TW_CONNECT_ATTEMPT_DELAY, the
     * default.
     */
    double attempt_delay;
} tw_connect_options;

/** Fill @p o with the defaults. */
TW_API void tw_connect_options_init(tw_connect_options *o);

/**
 * Connect to @p host (a name or a numeric IPv4/IPv6 address) on TCP @p port.
 *
 * @param o NULL for the defaults; copied.
 * @param f the client factory; borrowed (see above).
 * @return a new deferred reference (see deferred.h), or NULL when memory
 *         runs out (then nothing else happens). It fires from the loop with
 *         the connected protocol, after its connection_made(): a borrowed
 *         pointer, valid until the protocol is destroyed. It fails with the
 *         reason the factory's client_connection_failed() also got:
 *         a negated errno naming the error in its message (-ECONNREFUSED:
 *         "... ECONNREFUSED ..."; with several addresses, the error of the
 *         last one to fail, and the message names that address), the
 *         lookup's failure (see tw_resolve()),
 *         TW_ETIMEDOUT, TW_ESHUTDOWN, -ECONNABORTED when the factory refused
 *         to build a protocol, or TW_ECANCELLED when the deferred is
 *         cancelled first (which closes every socket of the attempt at
 *         once; a cancel from inside the protocol's connection_made comes
 *         too late and is ignored). Bad arguments (NULL reactor, factory or
 *         host, a port outside 1..65535, a negative timeout, an attempt
 *         delay below TW_CONNECT_ATTEMPT_DELAY_MIN other than 0) return a
 *         deferred that has already failed with -EINVAL, and a call made
 *         while the reactor is stopping one failed with TW_ESHUTDOWN; the
 *         factory hears nothing of those.
 */
TW_API tw_deferred *tw_connect_tcp(tw_reactor *r, const char *host, int port,
                                   const tw_connect_options *o, tw_factory *f);

/**
 * Connect to the UNIX socket at @p path. As tw_connect_tcp(), without the
 * lookup; a path too long for a socket address fails with -ENAMETOOLONG.
 */
TW_API tw_deferred *tw_connect_unix(tw_reactor *r, const char *path,
                                    const tw_connect_options *o, tw_factory *f);

/**
 * Connect to @p addr (IPv4, IPv6 or UNIX). As tw_connect_tcp(), without the
 * lookup; @p addr is copied.
 */
TW_API tw_deferred *tw_connect_address(tw_reactor *r, const tw_address *addr,
                                       const tw_connect_options *o, tw_factory *f);

TW_END_DECLS

#endif
