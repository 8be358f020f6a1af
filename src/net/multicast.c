/* SPDX-License-Identifier: MIT */
/*
 * Multicast and broadcast options of UDP ports (<twine/multicast.h>): thin
 * setsockopt calls made uniform across the two families. IPv4 names an
 * interface by an address it has (struct ip_mreq), IPv6 by its index
 * (struct ipv6_mreq); both are given an address here, and IPv6 finds the
 * index of the interface that holds it with getifaddrs, so the caller
 * writes the same thing for both. Option sizes follow the narrowest the
 * systems accept: BSDs take IPv4's TTL and loop as an unsigned char.
 */
#include "config.h"

#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <twine/multicast.h>

/* The port's socket and family, or a negated errno. */
static int port_socket(tw_udp_port *u, int *family)
{
    int fd = tw_udp_port_fileno(u);
    if (fd < 0)
        return TW_ESTATE;
    tw_address a;
    tw_udp_port_address(u, &a);
    *family = tw_address_family(&a);
    if (*family != AF_INET && *family != AF_INET6)
        return -EAFNOSUPPORT;
    return fd;
}

static const struct in_addr *v4(const tw_address *a)
{
    return &((const struct sockaddr_in *)&a->u.storage)->sin_addr;
}

static const struct sockaddr_in6 *v6(const tw_address *a)
{
    return (const struct sockaddr_in6 *)&a->u.storage;
}

/* The index of the interface that has the IPv6 address @p a. */
static int v6_index(const tw_address *a, unsigned *out)
{
    if (v6(a)->sin6_scope_id != 0) {
        *out = v6(a)->sin6_scope_id;
        return 0;
    }
    struct ifaddrs *list;
    if (getifaddrs(&list) < 0)
        return -errno;
    int rc = -ENODEV;
    for (struct ifaddrs *i = list; i != NULL; i = i->ifa_next) {
        if (i->ifa_addr == NULL || i->ifa_addr->sa_family != AF_INET6)
            continue;
        const struct sockaddr_in6 *have = (const struct sockaddr_in6 *)i->ifa_addr;
        if (memcmp(&have->sin6_addr, &v6(a)->sin6_addr, sizeof have->sin6_addr) == 0) {
            unsigned idx = if_nametoindex(i->ifa_name);
            if (idx != 0) {
                *out = idx;
                rc = 0;
            }
            break;
        }
    }
    freeifaddrs(list);
    return rc;
}

/* 0 when some interface has the IPv4 address @p a (or it is the
 * wildcard, the kernel's choice), -ENODEV otherwise: the systems disagree
 * on the errno they give for it, so twine answers first. */
static int v4_exists(const tw_address *a)
{
    if (v4(a)->s_addr == htonl(INADDR_ANY))
        return 0;
    struct ifaddrs *list;
    if (getifaddrs(&list) < 0)
        return -errno;
    int rc = -ENODEV;
    for (struct ifaddrs *i = list; i != NULL; i = i->ifa_next) {
        if (i->ifa_addr != NULL && i->ifa_addr->sa_family == AF_INET &&
            ((const struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr == v4(a)->s_addr) {
            rc = 0;
            break;
        }
    }
    freeifaddrs(list);
    return rc;
}

static int membership(tw_udp_port *u, const tw_address *group, const tw_address *iface, int join)
{
    int family, fd = port_socket(u, &family);
    if (fd < 0)
        return fd;
    if (tw_address_family(group) != family ||
        (iface != NULL && tw_address_family(iface) != family))
        return -EAFNOSUPPORT;
    int rc;
    if (family == AF_INET) {
        if (!IN_MULTICAST(ntohl(v4(group)->s_addr)))
            return -EINVAL;
        struct ip_mreq m;
        memset(&m, 0, sizeof m);
        m.imr_multiaddr = *v4(group);
        m.imr_interface.s_addr = htonl(INADDR_ANY);
        if (iface != NULL) {
            if ((rc = v4_exists(iface)) < 0)
                return rc;
            m.imr_interface = *v4(iface);
        }
        rc = setsockopt(fd, IPPROTO_IP, join ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP, &m,
                        sizeof m);
    } else {
        if (!IN6_IS_ADDR_MULTICAST(&v6(group)->sin6_addr))
            return -EINVAL;
        struct ipv6_mreq m;
        memset(&m, 0, sizeof m);
        m.ipv6mr_multiaddr = v6(group)->sin6_addr;
        if (iface != NULL && (rc = v6_index(iface, &m.ipv6mr_interface)) < 0)
            return rc;
        rc = setsockopt(fd, IPPROTO_IPV6, join ? IPV6_JOIN_GROUP : IPV6_LEAVE_GROUP, &m, sizeof m);
    }
    return rc < 0 ? -errno : 0;
}

TW_API int tw_udp_join_group(tw_udp_port *u, const tw_address *group, const tw_address *iface)
{
    return membership(u, group, iface, 1);
}

TW_API int tw_udp_leave_group(tw_udp_port *u, const tw_address *group, const tw_address *iface)
{
    return membership(u, group, iface, 0);
}

/* Set a small option: an unsigned char for IPv4 (as BSDs require), an int
 * for IPv6. */
static int set_small(tw_udp_port *u, int v4_opt, int v6_opt, int value)
{
    int family, fd = port_socket(u, &family);
    if (fd < 0)
        return fd;
    int rc;
    if (family == AF_INET) {
        unsigned char c = (unsigned char)value;
        rc = setsockopt(fd, IPPROTO_IP, v4_opt, &c, sizeof c);
    } else {
        rc = setsockopt(fd, IPPROTO_IPV6, v6_opt, &value, sizeof value);
    }
    return rc < 0 ? -errno : 0;
}

/* Read one back; Linux answers IPv4's in an int when given room for one. */
static int get_small(tw_udp_port *u, int v4_opt, int v6_opt)
{
    int family, fd = port_socket(u, &family);
    if (fd < 0)
        return fd;
    union {
        int i;
        unsigned char c;
    } v;
    memset(&v, 0, sizeof v);
    socklen_t len = sizeof v.i;
    if (getsockopt(fd, family == AF_INET ? IPPROTO_IP : IPPROTO_IPV6,
                   family == AF_INET ? v4_opt : v6_opt, &v, &len) < 0)
        return -errno;
    return len == sizeof v.c ? v.c : v.i;
}

TW_API int tw_udp_set_ttl(tw_udp_port *u, int ttl)
{
    if (ttl < 0 || ttl > 255)
        return -EINVAL;
    return set_small(u, IP_MULTICAST_TTL, IPV6_MULTICAST_HOPS, ttl);
}

TW_API int tw_udp_get_ttl(tw_udp_port *u)
{
    return get_small(u, IP_MULTICAST_TTL, IPV6_MULTICAST_HOPS);
}

TW_API int tw_udp_set_loopback_mode(tw_udp_port *u, int on)
{
    return set_small(u, IP_MULTICAST_LOOP, IPV6_MULTICAST_LOOP, on ? 1 : 0);
}

TW_API int tw_udp_get_loopback_mode(tw_udp_port *u)
{
    int v = get_small(u, IP_MULTICAST_LOOP, IPV6_MULTICAST_LOOP);
    return v < 0 ? v : v != 0;
}

TW_API int tw_udp_set_outgoing_interface(tw_udp_port *u, const tw_address *iface)
{
    int family, fd = port_socket(u, &family);
    if (fd < 0)
        return fd;
    if (tw_address_family(iface) != family)
        return -EAFNOSUPPORT;
    int rc;
    if (family == AF_INET) {
        if ((rc = v4_exists(iface)) < 0)
            return rc;
        rc = setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, v4(iface), sizeof(struct in_addr));
    } else {
        unsigned idx;
        if ((rc = v6_index(iface, &idx)) < 0)
            return rc;
        rc = setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &idx, sizeof idx);
    }
    return rc < 0 ? -errno : 0;
}

TW_API int tw_udp_set_broadcast_allowed(tw_udp_port *u, int on)
{
    int family, fd = port_socket(u, &family);
    if (fd < 0)
        return fd;
    if (family != AF_INET)
        return -EAFNOSUPPORT;
    int v = on ? 1 : 0;
    return setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &v, sizeof v) < 0 ? -errno : 0;
}

TW_API int tw_udp_get_broadcast_allowed(tw_udp_port *u)
{
    int family, fd = port_socket(u, &family);
    if (fd < 0)
        return fd;
    if (family != AF_INET)
        return -EAFNOSUPPORT;
    int v = 0;
    socklen_t len = sizeof v;
    if (getsockopt(fd, SOL_SOCKET, SO_BROADCAST, &v, &len) < 0)
        return -errno;
    return v != 0;
}
