/* SPDX-License-Identifier: MIT */
/*
 * The PROXY protocol (HAProxy's, versions 1 and 2): a load balancer that
 * relays TCP connections opens each one with a header naming the client it
 * accepted, so the server behind it can see the real peer instead of the
 * balancer's address. Twisted calls the same thing its haproxy: endpoint.
 *
 * A server turns it on per listener: tw_listen_options.proxy_protocol, or
 * an endpoint description prefixed with "haproxy:" ("haproxy:tcp:9000",
 * "haproxy:unix:/run/app.sock"). Each accepted connection must then start
 * with a version 1 or version 2 header within
 * tw_listen_options.proxy_header_timeout seconds. The factory's
 * build_protocol runs only once the header is complete, with the address
 * the proxy reported, and the protocol's data_received never sees a byte of
 * the header; tw_transport_get_peer() and tw_transport_get_host() report the
 * proxy's source and destination. A header that is missing, malformed, too
 * long or late closes the connection (a FIN, no protocol is built) and
 * logs the reason on the "proxy" subsystem.
 *
 * A header that says the proxy speaks for itself (version 2's LOCAL
 * command, a health check) or gives no usable address (version 1's
 * UNKNOWN, version 2's UNSPEC family) keeps the connection's real
 * addresses, as the specification asks.
 *
 * tw_proxy_parse() is the parser the listeners use, for programs that read
 * the header from a transport of their own.
 */
#ifndef TWINE_PROXY_H
#define TWINE_PROXY_H

#include <stddef.h>
#include <twine/address.h>
#include <twine/common.h>

TW_BEGIN_DECLS

/** The longest version 1 header, "PROXY " to the CRLF included. */
#define TW_PROXY_V1_MAX 107
/**
 * The longest version 2 header accepted: the 16-byte fixed part and up to
 * this many bytes of addresses and TLVs (the format allows 65535; an
 * address block takes at most 216, and HAProxy's TLVs fit well within).
 */
#define TW_PROXY_V2_MAX_LENGTH 2048
/** The longest header of either version. */
#define TW_PROXY_HEADER_MAX (16 + TW_PROXY_V2_MAX_LENGTH)
/** The default tw_listen_options.proxy_header_timeout, in seconds. */
#define TW_PROXY_HEADER_TIMEOUT 5.0

/** What a PROXY header says. */
typedef struct tw_proxy_header {
    int version; /**< 1 or 2 */
    /**
     * 1 when the header carries no client address: version 2's LOCAL
     * command, version 1's UNKNOWN, version 2's UNSPEC family. The
     * connection's own addresses stand, and @c source and @c destination
     * are empty (len 0).
     */
    int local;
    tw_address source;      /**< the client the proxy accepted */
    tw_address destination; /**< the address the client connected to */
} tw_proxy_header;

/**
 * Parse a PROXY header at the start of @p data, which holds the first
 * @p len bytes of a connection. Incremental by repetition: call it again
 * with more bytes while it returns 0. It decides as early as the bytes
 * allow (a first byte that starts neither version fails at once) and never
 * reads past TW_PROXY_HEADER_MAX bytes. Never allocates; never calls back.
 *
 * @param out filled when the header is complete; unspecified otherwise.
 * @param why if non-NULL, receives on error a static sentence saying what
 *        is wrong ("no PROXY header", "version 1 header has no CRLF within 107
 *        bytes", ...).
 * @return the header's length in bytes (the application's data starts
 *         there); 0 when @p data is a valid beginning and more bytes are
 *         needed; TW_EPROTO for bytes that are no valid header; TW_ETOOBIG
 *         for a header past the limits above.
 */
TW_API int tw_proxy_parse(const void *data, size_t len, tw_proxy_header *out,
                          const char **why);

TW_END_DECLS

#endif
