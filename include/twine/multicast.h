/* SPDX-License-Identifier: MIT */
/*
 * Multicast and broadcast on UDP ports, as Twisted's IReactorMulticast
 * and its ports' broadcast switch: join and leave groups, the TTL and
 * loopback of what the port sends to a group, the interface it leaves by,
 * and whether it may send to a broadcast address.
 *
 * An interface is named, as in Twisted, by an address it has: 127.0.0.1
 * for IPv4's loopback, ::1 for IPv6's (IPv6 joins by interface index,
 * which twine finds from the address, or takes from a link-local
 * address's scope). NULL lets the kernel choose from its routes. A group
 * is a tw_address whose port is ignored; it must be of the port's family.
 *
 * Several ports (in one process or several) may bind the same port number
 * to receive one group: tw_udp_listen() sets SO_REUSEADDR on UDP ports.
 *
 * Every call acts on the port's socket at once and never calls back. On a
 * stopped port or a UNIX datagram port they return TW_ESTATE or
 * -EAFNOSUPPORT.
 */
#ifndef TWINE_MULTICAST_H
#define TWINE_MULTICAST_H

#include <twine/address.h>
#include <twine/common.h>
#include <twine/udp.h>

TW_BEGIN_DECLS

/**
 * Receive the datagrams sent to the multicast @p group on the interface
 * that has the address @p iface (NULL: the kernel's choice), as Twisted's
 * joinGroup.
 * @return 0; -EINVAL for an address that is not multicast;
 *         -EAFNOSUPPORT when @p group or @p iface is not of the port's
 *         family (or the port is a UNIX one); -ENODEV when no interface has
 *         @p iface; -EADDRINUSE when the port is already a member on that
 *         interface; another negated errno from the kernel.
 */
TW_API int tw_udp_join_group(tw_udp_port *u, const tw_address *group, const tw_address *iface);

/**
 * Stop receiving @p group on that interface, as Twisted's leaveGroup.
 * @return 0; -EADDRNOTAVAIL (or -ENOENT on some systems) when the port is
 *         not a member there; otherwise as tw_udp_join_group().
 */
TW_API int tw_udp_leave_group(tw_udp_port *u, const tw_address *group, const tw_address *iface);

/**
 * The time to live (IPv4) or hop limit (IPv6) of the datagrams the port
 * sends to groups; 1, the default, keeps them on the local network.
 * @return 0; -EINVAL outside 0..255; TW_ESTATE, -EAFNOSUPPORT.
 */
TW_API int tw_udp_set_ttl(tw_udp_port *u, int ttl);

/** @return the port's multicast TTL (0..255), or a negated errno. */
TW_API int tw_udp_get_ttl(tw_udp_port *u);

/**
 * Whether the datagrams the port sends to a group are also delivered to
 * members on this host, this port included (on by default), as Twisted's
 * setLoopbackMode.
 * @return 0; TW_ESTATE, -EAFNOSUPPORT.
 */
TW_API int tw_udp_set_loopback_mode(tw_udp_port *u, int on);

/** @return 1 or 0 for the port's loopback mode, or a negated errno. */
TW_API int tw_udp_get_loopback_mode(tw_udp_port *u);

/**
 * Send what goes to groups by the interface that has the address
 * @p iface, as Twisted's setOutgoingInterface.
 * @return 0; -ENODEV when no interface has it; otherwise as
 *         tw_udp_join_group().
 */
TW_API int tw_udp_set_outgoing_interface(tw_udp_port *u, const tw_address *iface);

/**
 * Allow (or forbid, the default) sending to broadcast addresses
 * (SO_BROADCAST), as Twisted's setBroadcastAllowed. IPv4 only: IPv6 has no
 * broadcast.
 * @return 0; TW_ESTATE, -EAFNOSUPPORT.
 */
TW_API int tw_udp_set_broadcast_allowed(tw_udp_port *u, int on);

/** @return 1 or 0 for whether broadcast is allowed, or a negated errno. */
TW_API int tw_udp_get_broadcast_allowed(tw_udp_port *u);

TW_END_DECLS

#endif
