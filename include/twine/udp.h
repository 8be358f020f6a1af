/* SPDX-License-Identifier: MIT */
/*
 * Datagram ports: datagram protocols on a bound UDP port, IPv4 or IPv6, or
 * on a UNIX datagram socket, as Twisted's DatagramProtocol with listenUDP,
 * listenUNIXDatagram and connectUNIXDatagram. Each datagram arrives whole
 * with the address it came from; writes go out whole or not at all. A port
 * may be connected to one peer, after which the kernel filters what arrives
 * and a peer that is not listening is reported through connection_refused.
 *
 * UNIX datagram ports bind a path or, on Linux, an abstract name
 * ("@name", see address.h). A port bound to a path owns its socket file as
 * a UNIX listener does: a stale file (one nobody is bound to) is removed
 * before binding, a live one is refused with -EADDRINUSE, and the file is
 * removed when the port stops. A UNIX datagram larger than 64 KiB is
 * dropped (and logged once per port), never delivered cut short.
 * Multicast and broadcast on UDP ports: <twine/multicast.h>.
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
 * Bind a datagram port on @p addr and run @p p on it: a UDP port for an IP
 * address (port 0 picks one), a UNIX datagram socket for a UNIX path or
 * abstract name. start_protocol runs before this returns.
 * @return 0, or a negated errno (-EADDRINUSE, also for a UNIX path where a
 *         live socket or a file that is no socket is; -EAFNOSUPPORT for
 *         another family; TW_ESHUTDOWN while the reactor stops); on error
 *         the protocol was not started and is still the caller's.
 */
TW_API int tw_udp_listen(tw_reactor *r, const tw_address *addr, tw_datagram_protocol *p,
                         tw_udp_port **out);

/**
 * A datagram port connected to @p peer from the start, as Twisted's
 * connectUNIXDatagram (and a connected UDP port): bound to @p bind_addr,
 * or, when it is NULL, to what the system picks -- an ephemeral port for
 * UDP; for UNIX, on Linux, an abstract name of its own (autobind), so that
 * the peer can answer; elsewhere an unbound socket, which can only send.
 * Writes may omit the address, and a peer that is gone is reported
 * through connection_refused. start_protocol runs before this returns,
 * after the connect.
 * @return 0; -EAFNOSUPPORT when @p peer is neither IP nor UNIX or
 *         @p bind_addr is of another family; the connect's negated errno
 *         (-ENOENT or -ECONNREFUSED for a UNIX path nobody is bound to);
 *         as tw_udp_listen() otherwise. On error the protocol was not
 *         started and is still the caller's.
 */
TW_API int tw_datagram_connect(tw_reactor *r, const tw_address *peer, const tw_address *bind_addr,
                               tw_datagram_protocol *p, tw_udp_port **out);

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

/**
 * The bound address (for an autobound UNIX port, the abstract name the
 * system gave it). @return 0 or a negated errno.
 */
TW_API int tw_udp_port_address(const tw_udp_port *u, tw_address *out);

/**
 * @return the port's socket descriptor, for setsockopt() and the like, or
 *         -1 once it stopped. The port keeps owning it.
 */
TW_API int tw_udp_port_fileno(const tw_udp_port *u);

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
