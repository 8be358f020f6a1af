/* SPDX-License-Identifier: MIT */
/*
 * Fuzzing the strports endpoint parser.
 *
 * The input, NUL-terminated, is parsed both as a server and as a client
 * description, with an error buffer of a size taken from the input and
 * allocated to exactly that size. A parse either fails with -EINVAL and a
 * NUL-terminated sentence that fits, or gives an endpoint of the right role
 * whose fields are in range; tw_endpoint_format() of it must parse back
 * (same role) to an equal endpoint and format to the same text, and a
 * format into a short buffer must be a NUL-terminated prefix of the full
 * text.
 *
 * Input: [error buffer size][short format size] then the description.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/socket.h>
#include <twine.h>
#include <twine/endpoint.h>

#include "fuzz.h"

static int same_text(const char *a, const char *b, size_t size)
{
    return memchr(a, '\0', size) != NULL && memchr(b, '\0', size) != NULL && strcmp(a, b) == 0;
}

static int same_endpoint(const tw_endpoint *a, const tw_endpoint *b)
{
    int same_timeout = (isnan(a->timeout) && isnan(b->timeout)) ||
                       (a->timeout == b->timeout && !signbit(a->timeout) == !signbit(b->timeout));
    return a->type == b->type && a->client == b->client &&
           same_text(a->host, b->host, sizeof a->host) &&
           same_text(a->interface, b->interface, sizeof a->interface) && a->port == b->port &&
           same_text(a->path, b->path, sizeof a->path) && a->backlog == b->backlog &&
           a->mode == b->mode && a->lockfile == b->lockfile && same_timeout &&
           same_text(a->bind_address, b->bind_address, sizeof a->bind_address) &&
           a->domain == b->domain && a->index == b->index &&
           a->proxy_protocol == b->proxy_protocol;
}

static void check_fields(const tw_endpoint *e, int client)
{
    FZ_CHECK(e->client == client, "a %s description gave a %s endpoint",
             client ? "client" : "server", e->client ? "client" : "server");
    FZ_CHECK(memchr(e->host, '\0', sizeof e->host) && memchr(e->path, '\0', sizeof e->path) &&
                 memchr(e->interface, '\0', sizeof e->interface) &&
                 memchr(e->bind_address, '\0', sizeof e->bind_address),
             "a text field is not NUL-terminated");
    switch (e->type) {
    case TW_ENDPOINT_TCP:
    case TW_ENDPOINT_TCP6:
    case TW_ENDPOINT_UDP:
        FZ_CHECK(e->port >= (client ? 1 : 0) && e->port <= 65535, "port %d", e->port);
        if (client)
            FZ_CHECK(e->host[0] != '\0', "a client without a host");
        break;
    case TW_ENDPOINT_UNIX:
        FZ_CHECK(e->path[0] != '\0', "a unix endpoint without a path");
        FZ_CHECK(e->mode >= -1 && e->mode <= 07777, "mode %o", (unsigned)e->mode);
        FZ_CHECK(e->lockfile == 0 || e->lockfile == 1, "lockfile %d", e->lockfile);
        break;
    case TW_ENDPOINT_UNIXGRAM:
        FZ_CHECK(e->path[0] != '\0', "a unixgram endpoint without a path");
        FZ_CHECK(e->mode >= -1 && e->mode <= 07777, "mode %o", (unsigned)e->mode);
        break;
    case TW_ENDPOINT_SYSTEMD:
        FZ_CHECK(!client, "a systemd client");
        FZ_CHECK(e->domain == AF_INET || e->domain == AF_INET6 || e->domain == AF_UNIX, "domain %d",
                 e->domain);
        FZ_CHECK(e->index >= 0 && e->index <= 65535, "index %d", e->index);
        break;
    default:
        FZ_CHECK(0, "unknown type %d", (int)e->type);
    }
    FZ_CHECK(e->backlog >= 0, "backlog %d", e->backlog);
    FZ_CHECK(e->proxy_protocol == 0 || (!client && e->type != TW_ENDPOINT_UDP),
             "a PROXY header on a %s %d endpoint", client ? "client" : "server", (int)e->type);
    FZ_CHECK(isfinite(e->timeout) && e->timeout >= 0, "timeout %g", e->timeout);
}

static void check_role(const char *s, int client, size_t errlen, size_t short_len)
{
    int (*parse)(const char *, tw_endpoint *, char *, size_t) =
        client ? tw_endpoint_parse_client : tw_endpoint_parse_server;

    /* An error buffer of exactly errlen bytes: ASan sees any overrun. */
    char *err = errlen > 0 ? malloc(errlen) : NULL;
    FZ_CHECK(errlen == 0 || err != NULL, "out of memory");
    if (err != NULL)
        memset(err, 'Z', errlen);
    tw_endpoint e;
    memset(&e, 0x5a, sizeof e);
    int rc = parse(s, &e, err, errlen);
    FZ_CHECK(rc == 0 || rc == -EINVAL, "parse returned %d", rc);
    if (rc < 0) {
        if (err != NULL) {
            FZ_CHECK(memchr(err, '\0', errlen) != NULL, "the error is not NUL-terminated");
            FZ_CHECK(errlen < 2 || err[0] != '\0', "an error without a sentence");
        }
        free(err);
        return;
    }
    free(err);
    check_fields(&e, client);

    char text[TW_ENDPOINT_STRLEN];
    FZ_CHECK(tw_endpoint_format(&e, text, sizeof text) == text, "format returns its buffer");
    size_t len = strlen(text);
    FZ_CHECK(len + 1 < sizeof text, "format filled its whole buffer: '%s'", text);

    tw_endpoint back;
    char err2[512];
    memset(&back, 0xa5, sizeof back);
    rc = parse(text, &back, err2, sizeof err2);
    FZ_CHECK(rc == 0, "'%s' (from '%s') does not parse back: %s", text, s, err2);
    FZ_CHECK(same_endpoint(&e, &back), "'%s' parses back to another endpoint than '%s'", text, s);
    char again[TW_ENDPOINT_STRLEN];
    tw_endpoint_format(&back, again, sizeof again);
    FZ_CHECK(strcmp(text, again) == 0, "'%s' formats again as '%s'", text, again);

    /* A short buffer gets a NUL-terminated prefix. */
    short_len = short_len % (len + 2);
    if (short_len > 0) {
        char *small = malloc(short_len);
        FZ_CHECK(small != NULL, "out of memory");
        tw_endpoint_format(&e, small, short_len);
        size_t n = strnlen(small, short_len);
        FZ_CHECK(n < short_len, "a short format is not NUL-terminated");
        FZ_CHECK(n == (len < short_len - 1 ? len : short_len - 1) && memcmp(small, text, n) == 0,
                 "a %zu-byte format is not a prefix of '%s'", short_len, text);
        free(small);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_quiet_logs();
    fz_in in = {data, size};
    uint8_t e = fz_byte(&in, 255);
    size_t errlen = e < 64 ? e : e < 255 ? 64 + (size_t)(e - 64) * 4 : 1024;
    size_t short_len = fz_byte(&in, 0);
    char *s = malloc(in.n + 1);
    FZ_CHECK(s != NULL, "out of memory");
    memcpy(s, in.p, in.n);
    s[in.n] = '\0';
    check_role(s, 0, errlen, short_len);
    check_role(s, 1, errlen, short_len);
    free(s);
    return 0;
}
