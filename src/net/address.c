/* SPDX-License-Identifier: MIT */
/*
 * tw_address: parse and print socket addresses without DNS. Name resolution
 * is asynchronous and lives with the client code; everything here is a pure
 * function of its input.
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

TW_API int tw_address_from_unix(tw_address *out, const char *path)
{
    memset(out, 0, sizeof *out);
    struct sockaddr_un *sun = (struct sockaddr_un *)&out->u.storage;
    size_t n = strlen(path);
    if (n == 0)
        return -EINVAL;
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
        size_t max = a->len > offsetof(struct sockaddr_un, sun_path)
                         ? a->len - offsetof(struct sockaddr_un, sun_path)
                         : 0;
        snprintf(buf, len, "unix:%.*s", (int)strnlen(sun->sun_path, max), sun->sun_path);
        break;
    }
    default:
        snprintf(buf, len, "(no address)");
        break;
    }
    return buf;
}
