/* SPDX-License-Identifier: MIT */
/*
 * UDP: datagram protocols on a bound UDP port, IPv4 or IPv6, as Twisted's
 * DatagramProtocol and listenUDP. Each datagram arrives whole with the
 * address it came from; writes go out whole or not at all. A port may be
 * connected to one peer, after which the kernel filters what arrives and a
 * peer that is not listening is reported through connection_refused.
 *
 * Ownership: the caller owns the port and frees it with
 * tw_udp_port_close(); the port owns its protocol from tw_udp_listen() on
 * and calls its destroy op after stop_protocol. tw_reactor_stop() stops the
 * port (stop_protocol runs); the handle stays valid until closed.
 */
#ifndef TWINE_UDP_H
#define TWINE_UDP_H

#include <stddef.h>
#include <twine/address.h>
#include <twine/common.h>
#include <twine/reactor.h>

TW_BEGIN_DECLS

typedef struct tw_udp_port tw_udp_port;
typedef struct tw_datagram_protocol tw_datagram_protocol;

typedef struct tw_datagram_ops {
    /** Optional. The port is bound; p->port may be written to. */
    void (*start_protocol)(tw_datagram_protocol *p);
    /** A datagram arrived. @p data and @p from are valid during the call only. */
    void (*datagram_received)(tw_datagram_protocol *p, const void *data, size_t len,
                              const tw_address *from);
    /** Optional. A connected port's peer refused a datagram (ICMP unreachable). */
    void (*connection_refused)(tw_datagram_protocol *p);
    /** Optional. The port stopped; nothing more arrives. */
    void (*stop_protocol)(tw_datagram_protocol *p);
    /** Optional. Free the protocol; called once, after stop_protocol. */
    void (*destroy)(tw_datagram_protocol *p);
} tw_datagram_ops;

struct tw_datagram_protocol {
    const tw_datagram_ops *ops; /**< public: set by the builder */
    tw_udp_port *port;          /**< read-only: set before start_protocol */
};

/**
 * Bind a UDP port on @p addr (port 0 picks one) and run @p p on it.
 * start_protocol runs before this returns.
 * @return 0, or a negated errno (-EADDRINUSE, ...); on error the protocol
 *         was not started and is still the caller's.
 */
TW_API int tw_udp_listen(tw_reactor *r, const tw_address *addr, tw_datagram_protocol *p,
                         tw_udp_port **out);

/**
 * Send one datagram to @p to, or to the connected peer when @p to is NULL.
 * @return 0; -EMSGSIZE for a datagram the socket cannot carry;
 *         -ECONNREFUSED on a connected port whose peer refused an earlier
 *         datagram (connection_refused was called too); -EAGAIN when the
 *         socket buffer is full (UDP drops; so does twine); -EDESTADDRREQ
 *         without @p to on an unconnected port; TW_ESTATE once stopped.
 */
TW_API int tw_udp_write(tw_udp_port *u, const void *data, size_t len, const tw_address *to);

/**
 * Connect the port to @p peer: only its datagrams arrive, writes may omit
 * the address, and refusals are reported.
 * @return 0, or a negated errno.
 */
TW_API int tw_udp_connect(tw_udp_port *u, const tw_address *peer);

/** The bound address. @return 0 or a negated errno. */
TW_API int tw_udp_port_address(const tw_udp_port *u, tw_address *out);

/**
 * Stop the port (stop_protocol, then destroy, both synchronously) and free
 * it. It may be called from inside the port's own callbacks, as Twisted's
 * stopListening(): no datagram is delivered after it, and the memory goes
 * once that callback returned. The handle is invalid afterwards. NULL is
 * ignored.
 */
TW_API void tw_udp_port_close(tw_udp_port *u);

TW_END_DECLS

#endif
