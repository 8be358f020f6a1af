/* SPDX-License-Identifier: MIT */
/*
 * Endpoints: strports descriptions parsed into tw_endpoint values, and
 * listening or connecting with them.
 *
 * Parsing happens in two passes. The tokenizer splits the description into
 * segments on unescaped ':' and each segment into key and value on its
 * unescaped '=', removing the escapes; it remembers each segment as written
 * so that an error can quote it. The binder then maps segments onto the
 * type's parameters -- keys first, then positional segments into the
 * parameters still free, in the type's order -- and checks every value.
 *
 * UNIX servers own their socket file as every UNIX listener does
 * (listener.c: a stale one is removed before binding, the file goes when
 * the listener stops); with lockfile=1 they also hold PATH.lock, dropped
 * when the listener stops.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <twine/connect.h>
#include <twine/endpoint.h>
#include <twine/log.h>

#include "net/listener_internal.h"
#include "net/udp_internal.h"

#define MAX_SEGMENTS 16

/* ---------------------------------------------------------------- parsing */

typedef enum {
    P_PORT,
    P_INTERFACE,
    P_BACKLOG,
    P_HOST,
    P_PATH,
    P_MODE,
    P_LOCKFILE,
    P_TIMEOUT,
    P_BIND,
    P_DOMAIN,
    P_INDEX,
    P_ATTEMPT_DELAY,
    P_PRIVATE_KEY,
    P_CERT_KEY,
    P_CHAIN,
    P_TRUST_ROOTS,
    P_CERTIFICATE,
    P_COUNT,
    P_NONE = -1
} param;

static const char *const param_names[P_COUNT] = {
    "port", "interface", "backlog", "host", "path", "mode",
    "lockfile", "timeout", "bindAddress", "domain", "index", "attemptDelay",
    "privateKey", "certKey", "extraCertChain", "trustRoots", "certificate",
};

typedef struct keyword {
    const char *name;
    param id;
} keyword;

#define MAX_KEYS 8

typedef struct spec {
    const char *name;
    tw_endpoint_type type;
    int client;
    param positional[4];    /* in order; P_NONE ends the list early */
    keyword keys[MAX_KEYS]; /* accepted keys; a NULL name ends the list */
    param required[2];
    int tls;
} spec;

/* Positional orders follow Twisted's parsers, so its descriptions carry over. */
static const spec specs[] = {
    {"tcp", TW_ENDPOINT_TCP, 0,
     {P_PORT, P_INTERFACE, P_BACKLOG, P_NONE},
     {{"port", P_PORT}, {"interface", P_INTERFACE}, {"backlog", P_BACKLOG}},
     {P_PORT, P_NONE},
     0},
    {"tcp6", TW_ENDPOINT_TCP6, 0,
     {P_PORT, P_BACKLOG, P_INTERFACE, P_NONE},
     {{"port", P_PORT}, {"interface", P_INTERFACE}, {"backlog", P_BACKLOG}},
     {P_PORT, P_NONE},
     0},
    {"unix", TW_ENDPOINT_UNIX, 0,
     {P_PATH, P_MODE, P_BACKLOG, P_LOCKFILE},
     {{"address", P_PATH}, {"path", P_PATH}, {"mode", P_MODE}, {"backlog", P_BACKLOG},
      {"lockfile", P_LOCKFILE}},
     {P_PATH, P_NONE},
     0},
    {"udp", TW_ENDPOINT_UDP, 0,
     {P_PORT, P_INTERFACE, P_NONE, P_NONE},
     {{"port", P_PORT}, {"interface", P_INTERFACE}},
     {P_PORT, P_NONE},
     0},
    {"unixgram", TW_ENDPOINT_UNIXGRAM, 0,
     {P_PATH, P_MODE, P_NONE, P_NONE},
     {{"address", P_PATH}, {"path", P_PATH}, {"mode", P_MODE}},
     {P_PATH, P_NONE},
     0},
    {"systemd", TW_ENDPOINT_SYSTEMD, 0,
     {P_DOMAIN, P_INDEX, P_NONE, P_NONE},
     {{"domain", P_DOMAIN}, {"index", P_INDEX}},
     {P_DOMAIN, P_INDEX},
     0},
    {"tcp", TW_ENDPOINT_TCP, 1,
     {P_HOST, P_PORT, P_NONE, P_NONE},
     {{"host", P_HOST},
      {"port", P_PORT},
      {"timeout", P_TIMEOUT},
      {"bindAddress", P_BIND},
      {"attemptDelay", P_ATTEMPT_DELAY}},
     {P_HOST, P_PORT},
     0},
    {"unix", TW_ENDPOINT_UNIX, 1,
     {P_PATH, P_NONE, P_NONE, P_NONE},
     {{"path", P_PATH}, {"timeout", P_TIMEOUT}},
     {P_PATH, P_NONE},
     0},
    {"ssl", TW_ENDPOINT_TCP, 0,
     {P_PORT, P_PRIVATE_KEY, P_CERT_KEY, P_NONE},
     {{"port", P_PORT},
      {"privateKey", P_PRIVATE_KEY},
      {"certKey", P_CERT_KEY},
      {"extraCertChain", P_CHAIN},
      {"interface", P_INTERFACE},
      {"backlog", P_BACKLOG}},
     {P_PORT, P_NONE},
     1},
    {"tls", TW_ENDPOINT_TCP, 1,
     {P_HOST, P_PORT, P_NONE, P_NONE},
     {{"host", P_HOST},
      {"port", P_PORT},
      {"timeout", P_TIMEOUT},
      {"bindAddress", P_BIND},
      {"trustRoots", P_TRUST_ROOTS},
      {"certificate", P_CERTIFICATE},
      {"privateKey", P_PRIVATE_KEY},
      {"attemptDelay", P_ATTEMPT_DELAY}},
     {P_HOST, P_PORT},
     1},
    {"unixgram", TW_ENDPOINT_UNIXGRAM, 1,
     {P_PATH, P_BIND, P_NONE, P_NONE},
     {{"path", P_PATH}, {"bindAddress", P_BIND}},
     {P_PATH, P_NONE},
     0},
};

typedef struct segment {
    const char *raw; /* as written, for messages */
    int rawlen;
    const char *key; /* unescaped; NULL for a positional segment */
    const char *value;
} segment;

typedef struct parser {
    const char *desc;
    char *err;
    size_t errlen;
    char *buf; /* the unescaped segments, NUL-separated */
    segment seg[MAX_SEGMENTS];
    int nseg;
} parser;

static int perr(parser *p, const char *fmt, ...) TW_PRINTF(2, 3);

static int perr(parser *p, const char *fmt, ...)
{
    if (p->err == NULL || p->errlen == 0)
        return -EINVAL;
    int n = snprintf(p->err, p->errlen, "bad endpoint '%s': ", p->desc);
    if (n >= 0 && (size_t)n < p->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

static int tokenize(parser *p)
{
    const char *s = p->desc;
    char *out = p->buf;
    while (1) {
        if (p->nseg == MAX_SEGMENTS)
            return perr(p, "more than %d segments", MAX_SEGMENTS);
        segment *seg = &p->seg[p->nseg++];
        seg->raw = s;
        seg->key = NULL;
        seg->value = out;
        int equals = 0;
        for (; *s != '\0' && *s != ':'; s++) {
            if (*s == '\\') {
                if (s[1] == '\0')
                    return perr(p, "it ends with a lone '\\'");
                *out++ = *++s;
            } else if (*s == '=') {
                if (++equals > 1) {
                    const char *end = strchr(s, ':');
                    int len = end != NULL ? (int)(end - seg->raw) : (int)strlen(seg->raw);
                    return perr(p, "segment '%.*s' has more than one '=' (escape it as '\\=')",
                                len, seg->raw);
                }
                *out++ = '\0';
                seg->key = seg->value;
                seg->value = out;
            } else {
                *out++ = *s;
            }
        }
        *out++ = '\0';
        seg->rawlen = (int)(s - seg->raw);
        if (seg->rawlen == 0)
            return perr(p, "segment %d is empty", p->nseg);
        if (seg->key != NULL && *seg->key == '\0')
            return perr(p, "segment '%.*s' has no name before '='", seg->rawlen, seg->raw);
        if (*s == '\0')
            return 0;
        s++; /* past ':' */
    }
}

static int all_digits(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s != '\0'; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

/* A decimal number from @p min to @p max, digits only. */
static int parse_number(const char *s, long min, long max, long *out)
{
    if (!all_digits(s) || strlen(s) > 10)
        return -1;
    long v = strtol(s, NULL, 10);
    if (v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int copy_text(parser *p, char *dst, size_t size, const char *what, const char *value)
{
    size_t n = strlen(value);
    if (n >= size)
        return perr(p, "%s '%.40s...' is too long (at most %zu bytes)", what, value, size - 1);
    memcpy(dst, value, n + 1);
    return 0;
}

static int copy_file(parser *p, char *dst, size_t size, const char *what, const char *value)
{
    if (*value == '\0')
        return perr(p, "%s is empty", what);
    return copy_text(p, dst, size, what, value);
}

static int is_ip(const char *s, int *family)
{
    tw_address a;
    if (tw_address_from_ip(&a, s, 0) < 0)
        return 0;
    *family = tw_address_family(&a);
    return 1;
}

/* Check one value and store it in @p e. */
static int bind_value(parser *p, const spec *sp, tw_endpoint *e, param id, const char *v)
{
    long n;
    int family;
    switch (id) {
    case P_PORT:
        if (parse_number(v, sp->client ? 1 : 0, 65535, &n) < 0)
            return perr(p, "port '%s' is not a number from %d to 65535", v, sp->client ? 1 : 0);
        e->port = (int)n;
        return 0;
    case P_INTERFACE:
        if (*v != '\0' && !is_ip(v, &family))
            return perr(p, "interface '%s' is not a numeric IP address", v);
        if (*v != '\0' && sp->type == TW_ENDPOINT_TCP6 && family != AF_INET6)
            return perr(p, "interface '%s' is not an IPv6 address", v);
        return copy_text(p, e->interface, sizeof e->interface, "interface", v);
    case P_BACKLOG:
        if (parse_number(v, 1, INT_MAX, &n) < 0)
            return perr(p, "backlog '%s' is not a number from 1 to %d", v, INT_MAX);
        e->backlog = (int)n;
        return 0;
    case P_HOST:
        if (*v == '\0')
            return perr(p, "host is empty");
        return copy_text(p, e->host, sizeof e->host, "host", v);
    case P_PATH:
        if (*v == '\0')
            return perr(p, "path is empty");
        if (strlen(v) >= sizeof e->path)
            return perr(p, "path '%s' is too long for a UNIX socket (at most %zu bytes)", v,
                        sizeof e->path - 1);
        return copy_text(p, e->path, sizeof e->path, "path", v);
    case P_MODE: {
        char *end;
        if (*v == '\0' || strspn(v, "01234567") != strlen(v) ||
            (n = strtol(v, &end, 8)) > 07777)
            return perr(p, "mode '%s' is not an octal number from 0 to 7777", v);
        e->mode = (int)n;
        return 0;
    }
    case P_LOCKFILE:
        if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0)
            return perr(p, "lockfile '%s' is not 0 or 1", v);
        e->lockfile = v[0] == '1';
        return 0;
    case P_TIMEOUT: {
        char *end;
        double t = *v != '\0' ? strtod(v, &end) : -1;
        if (*v == '\0' || *end != '\0' || !isfinite(t) || t < 0)
            return perr(p, "timeout '%s' is not a number of seconds", v);
        e->timeout = t;
        return 0;
    }
    case P_ATTEMPT_DELAY: {
        char *end;
        double t = *v != '\0' ? strtod(v, &end) : -1;
        if (*v == '\0' || *end != '\0' || !isfinite(t) || t < TW_CONNECT_ATTEMPT_DELAY_MIN)
            return perr(p, "attemptDelay '%s' is not a number of seconds from %g", v,
                        TW_CONNECT_ATTEMPT_DELAY_MIN);
        e->attempt_delay = t;
        return 0;
    }
    case P_BIND:
        if (sp->type == TW_ENDPOINT_UNIXGRAM) {
            /* A UNIX datagram client binds a path (or @name) to be answered at. */
            if (*v == '\0' || strlen(v) >= TW_ENDPOINT_PATH_MAX)
                return perr(p, "bindAddress '%s' is not a UNIX socket path of 1 to %d bytes", v,
                            TW_ENDPOINT_PATH_MAX - 1);
            return copy_text(p, e->bind_address, sizeof e->bind_address, "bindAddress", v);
        }
        if (!is_ip(v, &family))
            return perr(p, "bindAddress '%s' is not a numeric IP address", v);
        return copy_text(p, e->bind_address, sizeof e->bind_address, "bindAddress", v);
    case P_DOMAIN:
        if (strcmp(v, "INET") == 0)
            e->domain = AF_INET;
        else if (strcmp(v, "INET6") == 0)
            e->domain = AF_INET6;
        else if (strcmp(v, "UNIX") == 0)
            e->domain = AF_UNIX;
        else
            return perr(p, "domain '%s' is not INET, INET6 or UNIX", v);
        return 0;
    case P_PRIVATE_KEY:
        return copy_file(p, e->private_key, sizeof e->private_key, "privateKey", v);
    case P_CERT_KEY:
        return copy_file(p, e->certificate, sizeof e->certificate, "certKey", v);
    case P_CERTIFICATE:
        return copy_file(p, e->certificate, sizeof e->certificate, "certificate", v);
    case P_CHAIN:
        return copy_file(p, e->cert_chain, sizeof e->cert_chain, "extraCertChain", v);
    case P_TRUST_ROOTS:
        return copy_file(p, e->trust_roots, sizeof e->trust_roots, "trustRoots", v);
    case P_INDEX:
        if (parse_number(v, 0, 65535, &n) < 0)
            return perr(p, "index '%s' is not a number from 0 to 65535", v);
        e->index = (int)n;
        return 0;
    default:
        return perr(p, "internal error");
    }
}

static const spec *find_spec(const char *name, int client, int *other_role)
{
    *other_role = 0;
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        if (strcmp(specs[i].name, name) != 0)
            continue;
        if (specs[i].client == client)
            return &specs[i];
        *other_role = 1;
    }
    return NULL;
}

static void endpoint_defaults(tw_endpoint *e, const spec *sp)
{
    memset(e, 0, sizeof *e);
    e->type = sp->type;
    e->client = sp->client;
    e->port = -1;
    e->mode = -1;
    e->timeout = sp->client ? TW_CONNECT_TIMEOUT : 0;
    e->attempt_delay = sp->client && sp->type == TW_ENDPOINT_TCP ? TW_CONNECT_ATTEMPT_DELAY : 0;
    e->domain = AF_UNSPEC;
    e->tls = sp->tls;
}

static int parse(const char *s, int client, tw_endpoint *out, char *err, size_t errlen)
{
    parser p;
    memset(&p, 0, sizeof p);
    p.desc = s != NULL ? s : "";
    p.err = err;
    p.errlen = errlen;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (*p.desc == '\0')
        return perr(&p, "the description is empty");
    p.buf = malloc(strlen(p.desc) + 2);
    if (p.buf == NULL)
        return -ENOMEM;
    int rc = tokenize(&p);
    if (rc < 0)
        goto out;

    /* "haproxy:" wraps the server endpoint that follows it. */
    int first = 0, proxied = 0;
    if (p.seg[0].key == NULL && strcmp(p.seg[0].value, "haproxy") == 0) {
        if (client) {
            rc = perr(&p, "haproxy endpoints can only be listened on");
            goto out;
        }
        if (p.nseg < 2) {
            rc = perr(&p, "haproxy needs the endpoint it wraps, as in haproxy:tcp:9000");
            goto out;
        }
        proxied = 1;
        first = 1;
    }
    /* The type, or a bare port for "tcp". */
    const char *type = p.seg[first].value;
    if (p.seg[first].key != NULL) {
        rc = perr(&p, "it must start with the endpoint type (such as tcp or unix), not '%.*s'",
                  p.seg[first].rawlen, p.seg[first].raw);
        goto out;
    }
    if (!client && all_digits(type))
        type = "tcp";
    else
        first++;
    int other_role;
    const spec *sp = find_spec(type, client, &other_role);
    if (sp == NULL) {
        if (other_role)
            rc = perr(&p, "%s endpoints can only be %s", type,
                      client ? "listened on" : "connected to");
        else
            rc = perr(&p, "unknown endpoint type '%s'", type);
        goto out;
    }
    if (proxied && (sp->type == TW_ENDPOINT_UDP || sp->type == TW_ENDPOINT_UNIXGRAM)) {
        rc = perr(&p, "haproxy wraps stream endpoints; %s carries datagrams", sp->name);
        goto out;
    }
    endpoint_defaults(out, sp);
    out->proxy_protocol = proxied;

    const char *given[P_COUNT] = {0};
    for (int i = first; i < p.nseg; i++) {
        const segment *seg = &p.seg[i];
        if (seg->key == NULL)
            continue;
        param id = P_NONE;
        for (int k = 0; k < MAX_KEYS && sp->keys[k].name != NULL; k++)
            if (strcmp(sp->keys[k].name, seg->key) == 0)
                id = sp->keys[k].id;
        if (id == P_NONE) {
            rc = perr(&p, "unknown option '%s' for %s", seg->key, sp->name);
            goto out;
        }
        if (given[id] != NULL) {
            rc = perr(&p, "option '%s' is given twice", param_names[id]);
            goto out;
        }
        given[id] = seg->value;
    }
    int slot = 0;
    for (int i = first; i < p.nseg; i++) {
        const segment *seg = &p.seg[i];
        if (seg->key != NULL)
            continue;
        while (slot < 4 && sp->positional[slot] != P_NONE && given[sp->positional[slot]] != NULL)
            slot++;
        if (slot == 4 || sp->positional[slot] == P_NONE) {
            rc = perr(&p, "unexpected argument '%.*s' for %s", seg->rawlen, seg->raw, sp->name);
            goto out;
        }
        given[sp->positional[slot++]] = seg->value;
    }
    for (int i = 0; i < 2; i++) {
        param id = sp->required[i];
        if (id != P_NONE && given[id] == NULL) {
            rc = perr(&p, "missing %s for %s", param_names[id], sp->name);
            goto out;
        }
    }
    for (int id = 0; id < P_COUNT; id++) {
        if (given[id] != NULL && (rc = bind_value(&p, sp, out, (param)id, given[id])) < 0)
            goto out;
    }
    if (sp->tls && !client) {
        /* Twisted's defaults: server.pem holds both, unless told otherwise. */
        if (out->private_key[0] == '\0')
            strcpy(out->private_key, "server.pem");
        if (out->certificate[0] == '\0')
            strcpy(out->certificate, out->private_key);
    }
    if (sp->tls && client && (out->private_key[0] != '\0') != (out->certificate[0] != '\0')) {
        rc = perr(&p, "certificate and privateKey go together");
        goto out;
    }
    /* An abstract name has no file to set a mode on or to lock beside. */
    if (out->path[0] == '@' && (given[P_MODE] != NULL || given[P_LOCKFILE] != NULL)) {
        rc = perr(&p, "%s applies to a socket file, and the abstract name '%s' has none",
                  given[P_MODE] != NULL ? "mode" : "lockfile", out->path);
        goto out;
    }
    rc = 0;
out:
    free(p.buf);
    return rc;
}

TW_API int tw_endpoint_parse_server(const char *s, tw_endpoint *out, char *err, size_t errlen)
{
    return parse(s, 0, out, err, errlen);
}

TW_API int tw_endpoint_parse_client(const char *s, tw_endpoint *out, char *err, size_t errlen)
{
    return parse(s, 1, out, err, errlen);
}

/* ---------------------------------------------------------------- formatting */

typedef struct text {
    char *buf;
    size_t len, used;
} text;

static void put(text *o, const char *s, int escape)
{
    for (; *s != '\0'; s++) {
        if (escape && (*s == ':' || *s == '=' || *s == '\\'))
            put(o, "\\", 0);
        if (o->used + 1 < o->len)
            o->buf[o->used++] = *s;
    }
    o->buf[o->used < o->len ? o->used : o->len - 1] = '\0';
}

static void putf(text *o, const char *fmt, ...) TW_PRINTF(2, 3);

static void putf(text *o, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    put(o, tmp, 0);
}

static void put_option(text *o, const char *key, const char *value)
{
    putf(o, ":%s=", key);
    put(o, value, 1);
}

/* The shortest text that reads back as @p v. */
static void put_seconds(text *o, const char *key, double v)
{
    char tmp[40];
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    put_option(o, key, tmp);
}

static void put_client_options(text *o, const tw_endpoint *e)
{
    if (e->type != TW_ENDPOINT_UNIXGRAM && e->timeout != TW_CONNECT_TIMEOUT)
        put_seconds(o, "timeout", e->timeout);
    if (e->bind_address[0] != '\0')
        put_option(o, "bindAddress", e->bind_address);
    if (e->type == TW_ENDPOINT_TCP && e->attempt_delay != TW_CONNECT_ATTEMPT_DELAY &&
        e->attempt_delay != 0)
        put_seconds(o, "attemptDelay", e->attempt_delay);
}

static void format_tls(text *o, const tw_endpoint *e)
{
    if (e->client) {
        put(o, "tls:", 0);
        put(o, e->host, 1);
        putf(o, ":%d", e->port);
        if (e->trust_roots[0] != '\0')
            put_option(o, "trustRoots", e->trust_roots);
        if (e->certificate[0] != '\0')
            put_option(o, "certificate", e->certificate);
        if (e->private_key[0] != '\0')
            put_option(o, "privateKey", e->private_key);
        put_client_options(o, e);
        return;
    }
    putf(o, "ssl:%d", e->port);
    put_option(o, "privateKey", e->private_key);
    put_option(o, "certKey", e->certificate);
    if (e->cert_chain[0] != '\0')
        put_option(o, "extraCertChain", e->cert_chain);
    if (e->interface[0] != '\0')
        put_option(o, "interface", e->interface);
    if (e->backlog > 0)
        putf(o, ":backlog=%d", e->backlog);
}

TW_API char *tw_endpoint_format(const tw_endpoint *e, char *buf, size_t len)
{
    if (len == 0)
        return buf;
    text o = {buf, len, 0};
    buf[0] = '\0';
    if (!e->client && e->proxy_protocol)
        put(&o, "haproxy:", 0);
    if (e->tls && e->type == TW_ENDPOINT_TCP) {
        format_tls(&o, e);
        return buf;
    }
    switch (e->type) {
    case TW_ENDPOINT_TCP:
    case TW_ENDPOINT_TCP6:
    case TW_ENDPOINT_UDP:
        put(&o, e->type == TW_ENDPOINT_TCP ? "tcp:" : e->type == TW_ENDPOINT_TCP6 ? "tcp6:" : "udp:",
            0);
        if (e->client) {
            put(&o, e->host, 1);
            putf(&o, ":%d", e->port);
        } else {
            putf(&o, "%d", e->port);
            if (e->interface[0] != '\0')
                put_option(&o, "interface", e->interface);
            if (e->backlog > 0)
                putf(&o, ":backlog=%d", e->backlog);
        }
        break;
    case TW_ENDPOINT_UNIX:
    case TW_ENDPOINT_UNIXGRAM:
        put(&o, e->type == TW_ENDPOINT_UNIX ? "unix:" : "unixgram:", 0);
        put(&o, e->path, 1);
        if (!e->client) {
            if (e->mode >= 0)
                putf(&o, ":mode=%04o", (unsigned)e->mode);
            if (e->backlog > 0)
                putf(&o, ":backlog=%d", e->backlog);
            if (e->lockfile)
                put(&o, ":lockfile=1", 0);
        }
        break;
    case TW_ENDPOINT_SYSTEMD:
        putf(&o, "systemd:domain=%s:index=%d",
             e->domain == AF_INET6 ? "INET6" : e->domain == AF_UNIX ? "UNIX" : "INET", e->index);
        break;
    default:
        put(&o, "(unknown endpoint)", 0);
        return buf;
    }
    if (e->client)
        put_client_options(&o, e);
    return buf;
}

/* ---------------------------------------------------------------- listening */

/* The lock file a UNIX listener with lockfile=1 holds until it stops. */
typedef struct unix_lock {
    int fd;
    char path[TW_ENDPOINT_PATH_MAX + sizeof ".lock"];
} unix_lock;

static void unix_lock_release(void *arg)
{
    unix_lock *u = arg;
    /* Unlink before unlocking, so the next server never locks a file that
     * is about to disappear (take_lock checks for that too). */
    unlink(u->path);
    close(u->fd);
    free(u);
}

static tw_failure *errno_failure(int code, const char *fmt, ...) TW_PRINTF(2, 3);

/* A failure whose message ends with the errno's name and text. */
static tw_failure *errno_failure(int code, const char *fmt, ...)
{
    char what[TW_ENDPOINT_STRLEN + 128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    tw_failure *plain = tw_failure_new(code, NULL);
    tw_failure *f = tw_failure_new(code, "%s: %s", what, tw_failure_message(plain));
    tw_failure_unref(plain);
    return f;
}

/* flock PATH.lock; @return 0, -EADDRINUSE if another process holds it, or -errno. */
static int take_lock(const char *lock_path, int *out)
{
    for (int tries = 0; tries < 8; tries++) {
        int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0)
            return -errno;
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
            int err = errno;
            close(fd);
            return err == EWOULDBLOCK ? -EADDRINUSE : -err;
        }
        /* The previous holder unlinks the file before unlocking it; if we
         * locked such an orphan, the path now names another file: retry. */
        struct stat held, named;
        if (fstat(fd, &held) == 0 && stat(lock_path, &named) == 0 && held.st_dev == named.st_dev &&
            held.st_ino == named.st_ino) {
            char pid[32];
            int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
            if (ftruncate(fd, 0) == 0 && write(fd, pid, (size_t)n) < 0) {
                /* the pid is for people; the lock works without it */
            }
            *out = fd;
            return 0;
        }
        close(fd);
    }
    return -EADDRINUSE;
}

static int listen_unix(tw_reactor *r, const tw_endpoint *e, const tw_listen_options *o,
                       tw_factory *f, const char *desc, tw_listener **out, tw_failure **fail)
{
    tw_address addr;
    int rc = tw_address_from_unix(&addr, e->path);
    if (rc < 0) {
        *fail = errno_failure(rc, "cannot listen on %s", desc);
        return rc;
    }
    unix_lock *lock = NULL;
    const char *why = NULL;
    if (e->lockfile) {
        lock = calloc(1, sizeof *lock);
        if (lock == NULL)
            return -ENOMEM;
        snprintf(lock->path, sizeof lock->path, "%s.lock", e->path);
        if ((rc = take_lock(lock->path, &lock->fd)) < 0) {
            free(lock);
            lock = NULL;
            if (rc == -EADDRINUSE)
                why = "another server holds its lock file";
            goto fail;
        }
    }
    /* The listener applies the stale-file rule and owns the socket file. */
    if ((rc = tw__listen(r, &addr, e->mode, o, f, out, &why)) < 0)
        goto fail;
    if (lock != NULL)
        tw__listener_on_stop(*out, unix_lock_release, lock);
    return 0;

fail:
    if (lock != NULL)
        unix_lock_release(lock);
    if (why != NULL)
        *fail = tw_failure_new(rc, "cannot listen on %s: %s", desc, why);
    else
        *fail = errno_failure(rc, "cannot listen on %s", desc);
    return rc;
}

static const char *family_name(int family)
{
    return family == AF_INET ? "INET" : family == AF_INET6 ? "INET6" : family == AF_UNIX ? "UNIX"
                                                                                         : "other";
}

TW_API int tw_endpoint_activated_fds(void)
{
    const char *pid_text = getenv("LISTEN_PID"), *fds_text = getenv("LISTEN_FDS");
    long pid, nfds;
    if (pid_text == NULL || fds_text == NULL)
        return -ENOENT;
    if (parse_number(pid_text, 1, LONG_MAX, &pid) < 0 || parse_number(fds_text, 0, 65536, &nfds) < 0)
        return -EINVAL;
    return pid == (long)getpid() ? (int)nfds : -ESRCH;
}

/* Socket activation, as sd_listen_fds(3): descriptors from 3 on, for us
 * only. @return 0 with the descriptor of @p e in *@p out, or a negated
 * errno with *@p fail set. */
static int systemd_fd(const tw_endpoint *e, const char *desc, int *out, tw_failure **fail)
{
    int nfds = tw_endpoint_activated_fds();
    if (nfds == -ENOENT) {
        *fail = tw_failure_new(-ENOENT,
                               "cannot listen on %s: LISTEN_PID and LISTEN_FDS are not set (the "
                               "process was not started by systemd socket activation)",
                               desc);
        return -ENOENT;
    }
    if (nfds == -ESRCH) {
        *fail = tw_failure_new(-ENOENT,
                               "cannot listen on %s: LISTEN_PID is %.20s, not this process (%ld)",
                               desc, getenv("LISTEN_PID"), (long)getpid());
        return -ENOENT;
    }
    if (nfds < 0) {
        *fail = tw_failure_new(-EINVAL,
                               "cannot listen on %s: LISTEN_PID '%.20s' or LISTEN_FDS '%.20s' is "
                               "not a number in range",
                               desc, getenv("LISTEN_PID"), getenv("LISTEN_FDS"));
        return -EINVAL;
    }
    if (e->index >= nfds) {
        *fail = tw_failure_new(-EBADF,
                               "cannot listen on %s: systemd passed %d descriptor(s), so index "
                               "%d is out of range",
                               desc, nfds, e->index);
        return -EBADF;
    }
    int fd = 3 + e->index;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int type = 0, accepting = 0;
    socklen_t ilen = sizeof type;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0 ||
        getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &ilen) < 0 ||
        (ilen = sizeof accepting, getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &ilen)) < 0) {
        int rc = errno == ENOTSOCK ? -ENOTSOCK : -errno;
        *fail = errno_failure(rc, "cannot listen on %s: descriptor %d", desc, fd);
        return rc;
    }
    /* systemd's ListenStream=PORT makes a dual-stack IPv6 socket, so INET
     * accepts either IP family, as Twisted's adoption does. */
    int family = ss.ss_family;
    int fits = e->domain == AF_INET ? (family == AF_INET || family == AF_INET6) : family == e->domain;
    if (!fits || type != SOCK_STREAM || !accepting) {
        *fail = tw_failure_new(-EINVAL,
                               "cannot listen on %s: descriptor %d is %s %s socket, not a "
                               "listening %s stream socket",
                               desc, fd, accepting ? "a listening" : "a", family_name(family),
                               family_name(e->domain));
        return -EINVAL;
    }
    *out = fd;
    return 0;
}

static int listen_systemd(tw_reactor *r, const tw_endpoint *e, const tw_listen_options *o,
                          tw_factory *f, const char *desc, tw_listener **out, tw_failure **fail)
{
    int fd;
    int rc = systemd_fd(e, desc, &fd, fail);
    if (rc < 0)
        return rc;
    rc = tw_listen_fd(r, fd, o, f, out);
    if (rc < 0)
        *fail = errno_failure(rc, "cannot listen on %s", desc);
    return rc;
}

/* The sentence of @p f into @p err, and its code. */
static int fail_with(tw_failure *f, char *err, size_t errlen)
{
    int rc = tw_failure_code(f);
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s", tw_failure_message(f));
    tw_failure_unref(f);
    return rc;
}

TW_API int tw_endpoint_bind(const tw_endpoint *e, const tw_listen_options *opts, int *out,
                            char *err, size_t errlen)
{
    if (e == NULL || out == NULL)
        return fail_with(tw_failure_new(-EINVAL, "bind: no endpoint"), err, errlen);
    char desc[TW_ENDPOINT_STRLEN];
    tw_endpoint_format(e, desc, sizeof desc);
    if (e->client || e->type == TW_ENDPOINT_UDP || e->type == TW_ENDPOINT_UNIXGRAM ||
        e->proxy_protocol || e->lockfile)
        return fail_with(tw_failure_new(-EINVAL,
                                        "cannot listen on %s alone: it is no tcp, tcp6, unix or "
                                        "systemd server endpoint (a lock file or a PROXY header "
                                        "needs a listener)",
                                        desc),
                         err, errlen);
    tw_listen_options o;
    if (opts != NULL)
        o = *opts;
    else
        tw_listen_options_init(&o);
    if (e->backlog > 0)
        o.backlog = e->backlog;
    tw_failure *why = NULL;
    const char *sentence = NULL;
    tw_address addr;
    struct stat st;
    int rc, fd = -1;
    switch (e->type) {
    case TW_ENDPOINT_TCP:
    case TW_ENDPOINT_TCP6: {
        const char *iface = e->interface;
        if (*iface == '\0')
            iface = e->type == TW_ENDPOINT_TCP6 ? "::" : "0.0.0.0";
        rc = tw_address_from_ip(&addr, iface, e->port);
        if (rc == 0)
            rc = tw__listen_socket(&addr, -1, &o, &fd, &st, &sentence);
        break;
    }
    case TW_ENDPOINT_UNIX:
        rc = tw_address_from_unix(&addr, e->path);
        if (rc == 0)
            rc = tw__listen_socket(&addr, e->mode, &o, &fd, &st, &sentence);
        break;
    case TW_ENDPOINT_SYSTEMD:
        rc = systemd_fd(e, desc, &fd, &why);
        if (rc == 0) {
            int fl = fcntl(fd, F_GETFL);
            if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
                rc = -errno;
            else
                fcntl(fd, F_SETFD, FD_CLOEXEC);
        }
        break;
    default:
        rc = -EINVAL;
        break;
    }
    if (rc < 0) {
        if (why == NULL && sentence != NULL)
            why = tw_failure_new(rc, "cannot listen on %s: %s", desc, sentence);
        if (why == NULL)
            why = errno_failure(rc, "cannot listen on %s", desc);
        return fail_with(why, err, errlen);
    }
    *out = fd;
    return 0;
}

static void close_listener(void *l)
{
    tw_listener_close(l);
}

TW_API tw_deferred *tw_endpoint_listen(tw_reactor *r, const tw_endpoint *e,
                                       const tw_listen_options *opts, tw_factory *f)
{
    if (r == NULL || e == NULL || f == NULL)
        return tw_deferred_fail(tw_failure_new(-EINVAL, "listen: no reactor, endpoint or factory"));
    char desc[TW_ENDPOINT_STRLEN];
    tw_endpoint_format(e, desc, sizeof desc);
    if (e->client)
        return tw_deferred_fail(
            tw_failure_new(-EINVAL, "cannot listen on %s: it is a client endpoint", desc));
    if (e->tls)
        return tw_deferred_fail(tw_failure_new(
            -EPROTONOSUPPORT, "cannot listen on %s in the clear: listen with tw_listen_tls()",
            desc));
    if (tw_reactor_stopping(r))
        return tw_deferred_fail(tw_failure_new(
            TW_ESHUTDOWN, "cannot listen on %s: the reactor is shutting down", desc));
    tw_listen_options o;
    if (opts != NULL)
        o = *opts;
    else
        tw_listen_options_init(&o);
    if (e->backlog > 0)
        o.backlog = e->backlog;
    if (e->proxy_protocol) {
        if (e->type == TW_ENDPOINT_UDP || e->type == TW_ENDPOINT_UNIXGRAM)
            return tw_deferred_fail(tw_failure_new(
                -EINVAL, "cannot listen on %s: a PROXY header comes on stream connections", desc));
        o.proxy_protocol = 1;
    }

    tw_listener *l = NULL;
    tw_failure *why = NULL;
    tw_address addr;
    int rc;
    switch (e->type) {
    case TW_ENDPOINT_TCP:
    case TW_ENDPOINT_TCP6: {
        const char *iface = e->interface;
        if (*iface == '\0')
            iface = e->type == TW_ENDPOINT_TCP6 ? "::" : "0.0.0.0";
        rc = tw_address_from_ip(&addr, iface, e->port);
        if (rc == 0)
            rc = tw_listen(r, &addr, &o, f, &l);
        break;
    }
    case TW_ENDPOINT_UNIX:
        rc = listen_unix(r, e, &o, f, desc, &l, &why);
        break;
    case TW_ENDPOINT_SYSTEMD:
        rc = listen_systemd(r, e, &o, f, desc, &l, &why);
        break;
    case TW_ENDPOINT_UDP:
    case TW_ENDPOINT_UNIXGRAM:
        rc = -EPROTONOSUPPORT;
        why = tw_failure_new(rc,
                             "cannot listen on %s: a datagram port carries datagrams, not the "
                             "stream connections a factory serves",
                             desc);
        break;
    default:
        rc = -EINVAL;
        break;
    }
    if (rc < 0) {
        if (why == NULL)
            why = errno_failure(rc, "cannot listen on %s", desc);
        return tw_deferred_fail(why);
    }
    return tw_deferred_succeed(l, close_listener);
}

static void close_udp_port(void *u)
{
    tw_udp_port_close(u);
}

TW_API tw_deferred *tw_endpoint_listen_udp(tw_reactor *r, const tw_endpoint *e,
                                           tw_datagram_protocol *p)
{
    if (r == NULL || e == NULL || p == NULL)
        return tw_deferred_fail(tw_failure_new(-EINVAL, "listen: no reactor, endpoint or protocol"));
    char desc[TW_ENDPOINT_STRLEN];
    tw_endpoint_format(e, desc, sizeof desc);
    if (e->client || (e->type != TW_ENDPOINT_UDP && e->type != TW_ENDPOINT_UNIXGRAM) ||
        e->proxy_protocol)
        return tw_deferred_fail(tw_failure_new(
            -EINVAL, "cannot listen for datagrams on %s: it is no udp or unixgram server", desc));
    if (tw_reactor_stopping(r))
        return tw_deferred_fail(tw_failure_new(
            TW_ESHUTDOWN, "cannot listen on %s: the reactor is shutting down", desc));
    tw_address addr;
    int rc;
    if (e->type == TW_ENDPOINT_UDP)
        rc = tw_address_from_ip(&addr, e->interface[0] != '\0' ? e->interface : "0.0.0.0", e->port);
    else
        rc = tw_address_from_unix(&addr, e->path);
    tw_udp_port *port = NULL;
    const char *why = NULL;
    if (rc == 0)
        rc = tw__udp_listen(r, &addr, e->type == TW_ENDPOINT_UNIXGRAM ? e->mode : -1, p, &port,
                            &why);
    if (rc < 0 && why != NULL)
        return tw_deferred_fail(tw_failure_new(rc, "cannot listen on %s: %s", desc, why));
    if (rc < 0)
        return tw_deferred_fail(errno_failure(rc, "cannot listen on %s", desc));
    return tw_deferred_succeed(port, close_udp_port);
}

TW_API tw_deferred *tw_endpoint_connect_datagram(tw_reactor *r, const tw_endpoint *e,
                                                 tw_datagram_protocol *p)
{
    if (r == NULL || e == NULL || p == NULL)
        return tw_deferred_fail(tw_failure_new(-EINVAL, "connect: no reactor, endpoint or protocol"));
    char desc[TW_ENDPOINT_STRLEN];
    tw_endpoint_format(e, desc, sizeof desc);
    if (!e->client || e->type != TW_ENDPOINT_UNIXGRAM)
        return tw_deferred_fail(tw_failure_new(
            -EINVAL, "cannot connect a datagram port to %s: it is no unixgram client", desc));
    if (tw_reactor_stopping(r))
        return tw_deferred_fail(tw_failure_new(
            TW_ESHUTDOWN, "cannot connect to %s: the reactor is shutting down", desc));
    tw_address peer, local;
    int rc = tw_address_from_unix(&peer, e->path);
    if (rc == 0 && e->bind_address[0] != '\0')
        rc = tw_address_from_unix(&local, e->bind_address);
    tw_udp_port *port = NULL;
    if (rc == 0)
        rc = tw_datagram_connect(r, &peer, e->bind_address[0] != '\0' ? &local : NULL, p, &port);
    if (rc < 0)
        return tw_deferred_fail(errno_failure(rc, "cannot connect to %s", desc));
    return tw_deferred_succeed(port, close_udp_port);
}

TW_API tw_deferred *tw_endpoint_connect(tw_reactor *r, const tw_endpoint *e, tw_factory *f)
{
    if (r == NULL || e == NULL || f == NULL)
        return tw_deferred_fail(tw_failure_new(-EINVAL, "connect: no reactor, endpoint or factory"));
    char desc[TW_ENDPOINT_STRLEN];
    tw_endpoint_format(e, desc, sizeof desc);
    if (!e->client)
        return tw_deferred_fail(
            tw_failure_new(-EINVAL, "cannot connect to %s: it is a server endpoint", desc));
    if (e->tls)
        return tw_deferred_fail(tw_failure_new(
            -EPROTONOSUPPORT, "cannot connect to %s in the clear: connect with tw_connect_tls()",
            desc));
    if (e->type == TW_ENDPOINT_UNIXGRAM)
        return tw_deferred_fail(tw_failure_new(-EPROTONOSUPPORT,
                                               "cannot connect to %s: a datagram port carries "
                                               "datagrams, not the stream a factory serves",
                                               desc));
    tw_connect_options o;
    tw_connect_options_init(&o);
    o.timeout = e->timeout;
    o.attempt_delay = e->attempt_delay;
    if (e->bind_address[0] != '\0' && tw_address_from_ip(&o.bind_address, e->bind_address, 0) < 0)
        return tw_deferred_fail(tw_failure_new(
            -EINVAL, "cannot connect to %s: bindAddress is not a numeric IP address", desc));
    switch (e->type) {
    case TW_ENDPOINT_TCP:
        return tw_connect_tcp(r, e->host, e->port, &o, f);
    case TW_ENDPOINT_UNIX:
        return tw_connect_unix(r, e->path, &o, f);
    default:
        return tw_deferred_fail(
            tw_failure_new(-EINVAL, "cannot connect to %s: not a client endpoint type", desc));
    }
}

TW_API tw_deferred *tw_listen_string(tw_reactor *r, const char *description,
                                     const tw_listen_options *opts, tw_factory *f)
{
    tw_endpoint e;
    char err[TW_ENDPOINT_STRLEN];
    int rc = tw_endpoint_parse_server(description, &e, err, sizeof err);
    if (rc < 0)
        return tw_deferred_fail(tw_failure_new(rc, "%s", rc == -EINVAL ? err : tw_strerror(rc)));
    return tw_endpoint_listen(r, &e, opts, f);
}

TW_API tw_deferred *tw_connect_string(tw_reactor *r, const char *description, tw_factory *f)
{
    tw_endpoint e;
    char err[TW_ENDPOINT_STRLEN];
    int rc = tw_endpoint_parse_client(description, &e, err, sizeof err);
    if (rc < 0)
        return tw_deferred_fail(tw_failure_new(rc, "%s", rc == -EINVAL ? err : tw_strerror(rc)));
    return tw_endpoint_connect(r, &e, f);
}
