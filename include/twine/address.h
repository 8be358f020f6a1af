/* SPDX-License-Identifier: MIT */
/*
 * tw_address: a socket address of any family (IPv4, IPv6, UNIX) as a plain
 * value that can be copied and compared, with parsing and formatting for
 * people ("127.0.0.1:9000", "[::1]:9000", "unix:/run/x.sock").
 *
 * Linux also names UNIX sockets in an abstract namespace, with no file: the
 * name starts with a NUL byte and is exactly as long as the address says
 * (no terminating NUL; it may hold any byte). People write such a name with
 * a leading '@' ("unix:@app", as systemd and ss(8) do), and twine formats it
 * that way, escaping bytes that are not printable ASCII, and '\', as \xHH.
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

/**
 * Longest text tw_address_format() writes, with its NUL: room for an
 * abstract UNIX name of 107 bytes that all need escaping.
 */
#define TW_ADDRSTRLEN 440

/**
 * Set @p out from a numeric host ("127.0.0.1", "::1", "" or NULL for the
 * IPv4 wildcard, "::" for the IPv6 wildcard) and a port. No DNS lookup.
 * @return 0, or -EINVAL for a host that is not a numeric address or a port
 *         outside 0..65535.
 */
TW_API int tw_address_from_ip(tw_address *out, const char *host, int port);

/**
 * Set @p out to a UNIX-domain path, or, when @p path starts with '@', to the
 * abstract name made of the bytes after it (Linux; write "./@x" for a file
 * named "@x").
 * @return 0; -EINVAL for an empty path or a bare "@"; -ENAMETOOLONG when
 *         it does not fit sun_path (107 bytes of path or of abstract name);
 *         -EAFNOSUPPORT for an abstract name where the system has no
 *         abstract namespace.
 */
TW_API int tw_address_from_unix(tw_address *out, const char *path);

/**
 * Set @p out to the abstract UNIX name of exactly @p len bytes at @p name
 * (any bytes, NUL included; the leading NUL of the socket address is added
 * here), as Twisted spells "\0name".
 * @return 0; -EINVAL when @p len is 0; -ENAMETOOLONG above 107 bytes;
 *         -EAFNOSUPPORT where the system has no abstract namespace.
 */
TW_API int tw_address_from_unix_abstract(tw_address *out, const void *name, size_t len);

/**
 * @return 1 when @p a is an abstract UNIX name (then *@p name points into
 *         @p a at its bytes and *@p len is their count, when those are not
 *         NULL), 0 otherwise.
 */
TW_API int tw_address_unix_abstract(const tw_address *a, const char **name, size_t *len);

/**
 * Parse what tw_address_format() writes: "127.0.0.1:9000", "[::1]:9000",
 * "unix:/path" or "unix:@name" (with its \xHH escapes). Numeric only: no
 * DNS lookup.
 * @return 0; -EINVAL for text that is none of these (a bad escape, a port
 *         outside 0..65535, an IPv6 address without brackets);
 *         -ENAMETOOLONG or -EAFNOSUPPORT as tw_address_from_unix().
 */
TW_API int tw_address_parse(tw_address *out, const char *text);

/** @return the address family (AF_INET, AF_INET6, AF_UNIX) or AF_UNSPEC. */
TW_API int tw_address_family(const tw_address *a);

/** @return the port of an IP address, or -1 for other families. */
TW_API int tw_address_port(const tw_address *a);

/**
 * Write "127.0.0.1:9000", "[::1]:9000", "unix:/path" or "unix:@name" into
 * @p buf; an unbound UNIX socket's address is "unix:".
 * @return @p buf, always NUL-terminated (truncated if @p len is short).
 */
TW_API char *tw_address_format(const tw_address *a, char *buf, size_t len);

TW_END_DECLS

#endif
