/* SPDX-License-Identifier: MIT */
/*
 * The PROXY protocol header parser, versions 1 and 2 (HAProxy's
 * doc/proxy-protocol.txt), for the bytes a relayed connection starts with.
 *
 * The parser is a pure function of the bytes seen so far, so a caller that
 * collects a header over several reads calls it again on the longer prefix.
 * It answers as early as the bytes allow: every byte is checked against the
 * signatures as it arrives, a version 1 line is checked for its character
 * set before its CRLF is there, and a version 2 length past the limit is
 * refused as soon as the 16-byte fixed part is in. Nothing is read past
 * TW_PROXY_HEADER_MAX bytes, so a caller's buffer of that size always
 * suffices.
 *
 * Version 1: "PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n", single spaces,
 * numeric addresses of the named family, decimal ports; or "PROXY UNKNOWN"
 * followed by anything up to the CRLF, which leaves the connection's own
 * addresses. 107 bytes at most, CRLF included.
 *
 * Version 2: a 12-byte signature, the version and command byte (version 2;
 * LOCAL or PROXY), the family and transport byte, a big-endian length, then
 * the address block of the family and TLVs, which are skipped.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <twine/proxy.h>

static const char v1_sig[] = "PROXY ";
#define V1_SIG_LEN 6
static const uint8_t v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
#define V2_FIXED 16

enum { V2_LOCAL = 0x0, V2_PROXY = 0x1 };
enum { V2_UNSPEC = 0x0, V2_INET = 0x1, V2_INET6 = 0x2, V2_UNIX = 0x3 };
/* Bytes of the address block of each family. */
enum { V2_INET_LEN = 12, V2_INET6_LEN = 36, V2_UNIX_LEN = 216 };

static int fail(const char **why, int code, const char *sentence)
{
    if (why != NULL)
        *why = sentence;
    return code;
}

/* ---------------------------------------------------------------- version 1 */

/* A port: 1 to 5 digits, 0 to 65535. */
static int v1_port(const char *s, size_t n, int *out)
{
    if (n == 0 || n > 5)
        return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v > 65535)
        return -1;
    *out = (int)v;
    return 0;
}

/* A numeric address of @p family; INET6_ADDRSTRLEN bounds the text. */
static int v1_ip(int family, const char *s, size_t n, int port, tw_address *out)
{
    char text[INET6_ADDRSTRLEN];
    if (n == 0 || n >= sizeof text)
        return -1;
    memcpy(text, s, n);
    text[n] = '\0';
    memset(out, 0, sizeof *out);
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&out->u.storage;
        if (inet_pton(AF_INET, text, &sin->sin_addr) != 1)
            return -1;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        out->len = sizeof *sin;
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->u.storage;
        if (inet_pton(AF_INET6, text, &sin6->sin6_addr) != 1)
            return -1;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        out->len = sizeof *sin6;
    }
    return 0;
}

/* The fields after "PROXY TCP4 " or "PROXY TCP6 ", up to (not with) the CR. */
static int v1_addresses(int family, const char *s, size_t n, tw_proxy_header *out,
                        const char **why)
{
    const char *field[4];
    size_t flen[4];
    size_t at = 0;
    for (int i = 0; i < 4; i++) {
        field[i] = s + at;
        const char *sp = memchr(s + at, ' ', n - at);
        size_t end = sp != NULL ? (size_t)(sp - s) : n;
        flen[i] = end - at;
        if ((i < 3) != (sp != NULL))
            return fail(why, TW_EPROTO,
                        "version 1 header does not have exactly four fields after its protocol");
        at = end + 1;
    }
    int sport, dport;
    if (v1_port(field[2], flen[2], &sport) < 0 || v1_port(field[3], flen[3], &dport) < 0)
        return fail(why, TW_EPROTO, "version 1 header has a port that is not 0 to 65535");
    if (v1_ip(family, field[0], flen[0], sport, &out->source) < 0 ||
        v1_ip(family, field[1], flen[1], dport, &out->destination) < 0)
        return fail(why, TW_EPROTO,
                    "version 1 header has an address that is not a numeric address of its family");
    return 0;
}

static int v1_parse(const char *s, size_t len, tw_proxy_header *out, const char **why)
{
    size_t n = len < TW_PROXY_V1_MAX ? len : TW_PROXY_V1_MAX;
    size_t cr = 0;
    int found = 0;
    /* Printable ASCII up to the CR, which must be followed by LF. */
    for (size_t i = V1_SIG_LEN; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\r') {
            if (i + 1 < n && s[i + 1] != '\n')
                return fail(why, TW_EPROTO, "version 1 header has a CR not followed by LF");
            if (i + 1 < n) {
                cr = i;
                found = 1;
            }
            break;
        }
        if (c < 0x20 || c > 0x7e)
            return fail(why, TW_EPROTO, "version 1 header has a byte that is not printable ASCII");
    }
    if (!found)
        return len >= TW_PROXY_V1_MAX
                   ? fail(why, TW_ETOOBIG, "version 1 header has no CRLF within 107 bytes")
                   : 0;

    const char *proto = s + V1_SIG_LEN;
    size_t rest = cr - V1_SIG_LEN;
    memset(out, 0, sizeof *out);
    out->version = 1;
    if (rest >= 7 && memcmp(proto, "UNKNOWN", 7) == 0 && (rest == 7 || proto[7] == ' ')) {
        out->local = 1; /* the rest of the line is ignored, as the format says */
        return (int)cr + 2;
    }
    int family;
    if (rest >= 5 && memcmp(proto, "TCP4 ", 5) == 0)
        family = AF_INET;
    else if (rest >= 5 && memcmp(proto, "TCP6 ", 5) == 0)
        family = AF_INET6;
    else
        return fail(why, TW_EPROTO, "version 1 header names no protocol of TCP4, TCP6, UNKNOWN");
    int rc = v1_addresses(family, proto + 5, rest - 5, out, why);
    return rc < 0 ? rc : (int)cr + 2;
}

/* ---------------------------------------------------------------- version 2 */

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

/* One sun_path of the address block (108 bytes, NUL-padded). */
static void v2_unix(const uint8_t *p, tw_address *out)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)&out->u.storage;
    const size_t at = offsetof(struct sockaddr_un, sun_path);
    const size_t room = sizeof sun->sun_path < 108 ? sizeof sun->sun_path : 108;
    memset(out, 0, sizeof *out);
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, p, room);
    size_t used = room;
    while (used > 0 && sun->sun_path[used - 1] == '\0')
        used--;
    /* A named path keeps its NUL, when there is room; an unnamed socket
     * is the family alone, as getpeername() gives it. */
    if (used > 0 && sun->sun_path[0] != '\0' && used < room)
        used++;
    out->len = (socklen_t)(at + used);
}

static int v2_parse(const uint8_t *p, size_t len, tw_proxy_header *out, const char **why)
{
    if (len < V2_FIXED)
        return 0;
    uint8_t version = p[12] >> 4, command = p[12] & 0x0f;
    uint8_t family = p[13] >> 4, transport = p[13] & 0x0f;
    size_t length = be16(p + 14);
    if (version != 2)
        return fail(why, TW_EPROTO, "version 2 signature with a version other than 2");
    if (command != V2_LOCAL && command != V2_PROXY)
        return fail(why, TW_EPROTO, "version 2 header with a command other than LOCAL or PROXY");
    if (family > V2_UNIX || transport > 2)
        return fail(why, TW_EPROTO, "version 2 header with an unknown family or transport");
    if (length > TW_PROXY_V2_MAX_LENGTH)
        return fail(why, TW_ETOOBIG, "version 2 header longer than the limit");
    if (len < V2_FIXED + length)
        return 0;

    const uint8_t *a = p + V2_FIXED;
    memset(out, 0, sizeof *out);
    out->version = 2;
    size_t need = family == V2_INET    ? V2_INET_LEN
                  : family == V2_INET6 ? V2_INET6_LEN
                  : family == V2_UNIX  ? V2_UNIX_LEN
                                       : 0;
    if (command == V2_PROXY && length < need)
        return fail(why, TW_EPROTO, "version 2 header too short for its address family");
    if (command == V2_LOCAL || family == V2_UNSPEC) {
        out->local = 1;
        return (int)(V2_FIXED + length);
    }
    switch (family) {
    case V2_INET: {
        struct sockaddr_in *s = (struct sockaddr_in *)&out->source.u.storage;
        struct sockaddr_in *d = (struct sockaddr_in *)&out->destination.u.storage;
        s->sin_family = d->sin_family = AF_INET;
        memcpy(&s->sin_addr, a, 4);
        memcpy(&d->sin_addr, a + 4, 4);
        memcpy(&s->sin_port, a + 8, 2);
        memcpy(&d->sin_port, a + 10, 2);
        out->source.len = out->destination.len = sizeof *s;
        break;
    }
    case V2_INET6: {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&out->source.u.storage;
        struct sockaddr_in6 *d = (struct sockaddr_in6 *)&out->destination.u.storage;
        s->sin6_family = d->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, a, 16);
        memcpy(&d->sin6_addr, a + 16, 16);
        memcpy(&s->sin6_port, a + 32, 2);
        memcpy(&d->sin6_port, a + 34, 2);
        out->source.len = out->destination.len = sizeof *s;
        break;
    }
    default:
        v2_unix(a, &out->source);
        v2_unix(a + 108, &out->destination);
        break;
    }
    return (int)(V2_FIXED + length);
}

TW_API int tw_proxy_parse(const void *data, size_t len, tw_proxy_header *out, const char **why)
{
    const uint8_t *p = data;
    if (len == 0)
        return 0;
    if (p[0] == (uint8_t)v1_sig[0]) {
        size_t n = len < V1_SIG_LEN ? len : V1_SIG_LEN;
        if (memcmp(p, v1_sig, n) != 0)
            return fail(why, TW_EPROTO, "no PROXY header");
        return n < V1_SIG_LEN ? 0 : v1_parse((const char *)p, len, out, why);
    }
    size_t n = len < sizeof v2_sig ? len : sizeof v2_sig;
    if (memcmp(p, v2_sig, n) != 0)
        return fail(why, TW_EPROTO, "no PROXY header");
    return v2_parse(p, len, out, why);
}
