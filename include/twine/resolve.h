/* SPDX-License-Identifier: MIT */
/*
 * Asynchronous name resolution. Each reactor has one resolver, made the
 * first time it is needed: libevent's evdns on the reactor's event_base,
 * configured like the C library's resolver from /etc/resolv.conf (name
 * servers, search list, options) and /etc/hosts. Without a usable
 * resolv.conf it asks a name server on 127.0.0.1, as the C library does.
 * Lookups never block the loop.
 *
 * tw_reactor_stop() and tw_reactor_free() fail the lookups still pending
 * with TW_ESHUTDOWN and discard the resolver, with the configuration set by
 * tw_resolver_configure(); a later lookup makes a new one from the system
 * configuration.
 */
#ifndef TWINE_RESOLVE_H
#define TWINE_RESOLVE_H

#include <stddef.h>
#include <twine/address.h>
#include <twine/common.h>
#include <twine/deferred.h>
#include <twine/reactor.h>

TW_BEGIN_DECLS

/** The value a lookup fires with: the addresses found, in the order to try them. */
typedef struct tw_address_list {
    size_t count;          /**< at least 1 */
    tw_address items[];    /**< IPv4 addresses first, then IPv6, without duplicates */
} tw_address_list;

/** How a reactor's resolver is set up; see tw_resolver_configure(). */
typedef struct tw_resolver_options {
    /** resolv.conf to read: NULL for /etc/resolv.conf, "" for none. */
    const char *resolv_conf;
    /** hosts file to read: NULL for /etc/hosts, "" for none. */
    const char *hosts;
    /**
     * A name server, "IP", "IP:PORT" or "[IPv6]:PORT", that replaces the
     * ones resolv_conf lists (its search list and options still apply);
     * NULL to use resolv_conf's.
     */
    const char *nameserver;
    /** Seconds to wait for an answer before asking again; 0 for resolv.conf's (or 5). */
    double timeout;
    /** How many times to ask; 0 for resolv.conf's (or 3). */
    int attempts;
} tw_resolver_options;

/** Fill @p o with the defaults: the system configuration. */
TW_API void tw_resolver_options_init(tw_resolver_options *o);

/**
 * Give @p r a resolver set up from @p o, replacing the one it had. Lookups
 * already under way finish on the old one.
 * @param o NULL for the defaults; its strings are only read during the call.
 * @return 0; -EINVAL for a nameserver that is not a numeric address, a
 *         negative or non-finite timeout, or negative attempts; -ENOENT for
 *         a hosts file or resolv.conf that cannot be read (only when named
 *         explicitly: missing system files fall back to the defaults);
 *         TW_ESHUTDOWN while the reactor is stopping; -ENOMEM.
 */
TW_API int tw_resolver_configure(tw_reactor *r, const tw_resolver_options *o);

/**
 * Look up the addresses of @p host (a name, or a numeric IPv4/IPv6 address,
 * which needs no lookup) for TCP.
 * @param port stored in every address (0..65535).
 * @param family AF_UNSPEC for IPv4 and IPv6, AF_INET or AF_INET6 for one.
 * @return a new deferred reference (see deferred.h), or NULL when memory
 *         runs out. It fires with a tw_address_list, which the chain owns
 *         (destroyed with free()). It has already fired on return when the
 *         answer needs no name server: a numeric host, an entry in the hosts
 *         file, or an error in the arguments. Otherwise it fires from the
 *         loop. It fails with -EINVAL for bad arguments, TW_ENOTFOUND ("host
 *         name not found") when the name does not exist or has no address
 *         of the family asked for, -EHOSTUNREACH when a numeric @p host is
 *         not of that family, -EAGAIN when the name servers did not answer
 *         or failed,
 *         TW_ESHUTDOWN when the reactor stops first, and TW_ECANCELLED when
 *         cancelled (which abandons the query).
 */
TW_API tw_deferred *tw_resolve(tw_reactor *r, const char *host, int port, int family);

TW_END_DECLS

#endif
