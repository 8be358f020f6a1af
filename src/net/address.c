/* SPDX-License-Identifier: MIT */
/*
 * tw_address: parse and print socket addresses without DNS. Name resolution
 * is asynchronous and lives with the client code; everything here is a pure
 * function of its input.
 *
 * An abstract UNIX name (Linux) is sun_path[0] == '\0' followed by exactly
 * len - offsetof(sun_path) - 1 bytes: its length is part of the name, so
 * the address is built and read by length, never with string functions.
 * Its text form escapes every byte outside printable ASCII, and '\', as
 * \xHH, so that parsing gives back the very same bytes.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <twine/address.h>

TW_API int tw_address_from_ip(tw_address *out, const char *host, int port)
{
    memset(out, 0, sizeof *out);
    if (port < 0 || port > 65535)
        return -EINVAL;
    if (host == NULL || *host == '\0')
        host = "0.0.0.0";
    struct sockaddr_in *sin = (struct sockaddr_in *)&out->u.storage;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->u.storage;
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        out->len = sizeof *sin;
        return 0;
    }
    /* Accept the bracketed form people copy from URLs: [::1]. */
    char buf[INET6_ADDRSTRLEN + 2];
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof buf) {
        memcpy(buf, host + 1, n - 2);
        buf[n - 2] = '\0';
        host = buf;
    }
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        out->len = sizeof *sin6;
        return 0;
    }
    return -EINVAL;
}

#ifdef __linux__
#define HAVE_ABSTRACT 1
#else
#define HAVE_ABSTRACT 0
#endif

#define SUN_OFF offsetof(struct sockaddr_un, sun_path)

TW_API int tw_address_from_unix_abstract(tw_address *out, const void *name, size_t len)
{
    memset(out, 0, sizeof *out);
    struct sockaddr_un *sun = (struct sockaddr_un *)&out->u.storage;
    if (len == 0)
        return -EINVAL;
    if (len >= sizeof sun->sun_path)
        return -ENAMETOOLONG;
    if (!HAVE_ABSTRACT)
        return -EAFNOSUPPORT;
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path + 1, name, len);
    out->len = (socklen_t)(SUN_OFF + 1 + len);
    return 0;
}

TW_API int tw_address_unix_abstract(const tw_address *a, const char **name, size_t *len)
{
    const struct sockaddr_un *sun = (const struct sockaddr_un *)&a->u.storage;
    if (tw_address_family(a) != AF_UNIX || a->len <= SUN_OFF + 1 || sun->sun_path[0] != '\0')
        return 0;
    if (name != NULL)
        *name = sun->sun_path + 1;
    if (len != NULL)
        *len = a->len - SUN_OFF - 1;
    return 1;
}

TW_API int tw_address_from_unix(tw_address *out, const char *path)
{
    memset(out, 0, sizeof *out);
    struct sockaddr_un *sun = (struct sockaddr_un *)&out->u.storage;
    size_t n = strlen(path);
    if (n == 0)
        return -EINVAL;
    if (path[0] == '@')
        return tw_address_from_unix_abstract(out, path + 1, n - 1);
    if (n >= sizeof sun->sun_path)
        return -ENAMETOOLONG;
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, path, n + 1);
    out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return 0;
}

TW_API int tw_address_family(const tw_address *a)
{
    return a->len == 0 ? AF_UNSPEC : a->u.sa.sa_family;
}

TW_API int tw_address_port(const tw_address *a)
{
    switch (tw_address_family(a)) {
    case AF_INET:
        return ntohs(((const struct sockaddr_in *)&a->u.storage)->sin_port);
    case AF_INET6:
        return ntohs(((const struct sockaddr_in6 *)&a->u.storage)->sin6_port);
    default:
        return -1;
    }
}

/* "unix:@" and the name, escaped so that tw_address_parse() reads it back. */
static void format_abstract(const char *name, size_t n, char *buf, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t used = (size_t)snprintf(buf, len, "unix:@");
    for (size_t i = 0; i < n && used < len; i++) {
        unsigned char c = (unsigned char)name[i];
        char esc[5] = {(char)c, 0};
        if (c <= 0x20 || c >= 0x7f || c == '\\') {
            esc[0] = '\\';
            esc[1] = 'x';
            esc[2] = hex[c >> 4];
            esc[3] = hex[c & 15];
        }
        size_t elen = strlen(esc);
        if (used + elen >= len)
            break; /* truncated, but never in the middle of an escape */
        memcpy(buf + used, esc, elen + 1);
        used += elen;
    }
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int parse_abstract(tw_address *out, const char *text)
{
    char name[sizeof ((struct sockaddr_un *)0)->sun_path];
    size_t n = 0;
    for (const char *s = text; *s != '\0'; n++) {
        if (n == sizeof name)
            return -ENAMETOOLONG;
        if (*s != '\\') {
            name[n] = *s++;
            continue;
        }
        int hi, lo;
        if (s[1] != 'x' || (hi = hexval(s[2])) < 0 || (lo = hexval(s[3])) < 0)
            return -EINVAL;
        name[n] = (char)(hi << 4 | lo);
        s += 4;
    }
    return tw_address_from_unix_abstract(out, name, n);
}

TW_API int tw_address_parse(tw_address *out, const char *text)
{
    memset(out, 0, sizeof *out);
    if (text == NULL)
        return -EINVAL;
    if (strncmp(text, "unix:", 5) == 0) {
        if (text[5] == '@')
            return parse_abstract(out, text + 6);
        return tw_address_from_unix(out, text + 5);
    }
    /* HOST:PORT, the host bracketed when it is IPv6. */
    const char *colon = strrchr(text, ':');
    if (colon == NULL || colon == text || colon[1] == '\0')
        return -EINVAL;
    size_t hlen = (size_t)(colon - text);
    char host[INET6_ADDRSTRLEN + 2];
    if (hlen >= sizeof host)
        return -EINVAL;
    memcpy(host, text, hlen);
    host[hlen] = '\0';
    if (strchr(host, ':') != NULL && host[0] != '[')
        return -EINVAL; /* "::1:80" is ambiguous; the format brackets it */
    int port = 0;
    for (const char *p = colon + 1; *p != '\0'; p++) {
        if (*p < '0' || *p > '9' || port > 65535)
            return -EINVAL;
        port = port * 10 + (*p - '0');
    }
    if (host[0] == '\0')
        return -EINVAL;
    return tw_address_from_ip(out, host, port);
}

TW_API char *tw_address_format(const tw_address *a, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN];
    if (len == 0)
        return buf;
    switch (tw_address_family(a)) {
    case AF_INET:
        inet_ntop(AF_INET, &((const struct sockaddr_in *)&a->u.storage)->sin_addr, host,
                  sizeof host);
        snprintf(buf, len, "%s:%d", host, tw_address_port(a));
        break;
    case AF_INET6:
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&a->u.storage)->sin6_addr, host,
                  sizeof host);
        snprintf(buf, len, "[%s]:%d", host, tw_address_port(a));
        break;
    case AF_UNIX: {
        const struct sockaddr_un *sun = (const struct sockaddr_un *)&a->u.storage;
        const char *name;
        size_t n;
        if (tw_address_unix_abstract(a, &name, &n)) {
            format_abstract(name, n, buf, len);
            break;
        }
        size_t max = a->len > SUN_OFF ? a->len - SUN_OFF : 0;
        snprintf(buf, len, "unix:%.*s", (int)strnlen(sun->sun_path, max), sun->sun_path);
        break;
    }
    default:
        snprintf(buf, len, "(no address)");
        break;
    }
    return buf;
}
