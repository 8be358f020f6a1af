/* SPDX-License-Identifier: MIT */
/*
 * tw_address: a socket address of any family (IPv4, IPv6, UNIX) as a plain
 * value that can be copied and compared, with parsing and formatting for
 * people ("127.0.0.1:9000", "[::1]:9000", "unix:/run/x.sock").
 */
#ifndef TWINE_ADDRESS_H
#define TWINE_ADDRESS_H

#include <sys/socket.h>
#include <twine/common.h>

TW_BEGIN_DECLS

typedef struct tw_address {
    socklen_t len; /**< bytes of @c sa in use; 0 for "no address" */
    union {
        struct sockaddr sa;
        struct sockaddr_storage storage;
    } u;
} tw_address;

/** Longest text tw_address_format() writes, with its NUL. */
#define TW_ADDRSTRLEN 120

/**
 * Set @p out from a numeric host ("127.0.0.1", "::1", "" or NULL for the
 * IPv4 wildcard, "::" for the IPv6 wildcard) and a port. No DNS lookup.
 * @return 0, or -EINVAL for a host that is not a numeric address or a port
 *         outside 0..65535.
 */
TW_API int tw_address_from_ip(tw_address *out, const char *host, int port);

/** Set @p out to a UNIX-domain path. @return 0, or -ENAMETOOLONG. */
TW_API int tw_address_from_unix(tw_address *out, const char *path);

/** @return the address family (AF_INET, AF_INET6, AF_UNIX) or AF_UNSPEC. */
TW_API int tw_address_family(const tw_address *a);

/** @return the port of an IP address, or -1 for other families. */
TW_API int tw_address_port(const tw_address *a);

/**
 * Write "127.0.0.1:9000", "[::1]:9000" or "unix:/path" into @p buf.
 * @return @p buf, always NUL-terminated (truncated if @p len is short).
 */
TW_API char *tw_address_format(const tw_address *a, char *buf, size_t len);

TW_END_DECLS

#endif
