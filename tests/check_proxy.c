/* SPDX-License-Identifier: MIT */
/*
 * The PROXY protocol: the header parser on each version's edge cases
 * (every split point, the length limits, bad signatures, UNKNOWN and LOCAL,
 * IPv6, UNIX), and listeners with proxy_protocol over loopback TCP: the
 * factory and get_peer see the client the header names, the protocol never
 * sees the header, and a bad, missing or late header closes the connection
 * with a logged reason. The real HAProxy in front of reactord is
 * tests/check_haproxy.sh.
 */
#include "config.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <twine.h>

#include "recorder.h"
#include "testutil.h"

static const uint8_t v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* A version 2 header: signature, @p ver_cmd, @p fam, then @p body. */
static size_t v2(uint8_t *out, uint8_t ver_cmd, uint8_t fam, const void *body, size_t len)
{
    memcpy(out, v2_sig, 12);
    out[12] = ver_cmd;
    out[13] = fam;
    out[14] = (uint8_t)(len >> 8);
    out[15] = (uint8_t)len;
    if (len > 0)
        memcpy(out + 16, body, len);
    return 16 + len;
}

static void assert_ip(const tw_address *a, const char *text)
{
    char buf[TW_ADDRSTRLEN];
    ck_assert_str_eq(tw_address_format(a, buf, sizeof buf), text);
}

static int parse(const void *data, size_t len, tw_proxy_header *h)
{
    const char *why = NULL;
    int rc = tw_proxy_parse(data, len, h, &why);
    if (rc < 0)
        ck_assert_ptr_nonnull(why);
    return rc;
}

/* Every proper prefix of a valid header asks for more. */
static void assert_prefixes_wait(const void *data, size_t len)
{
    tw_proxy_header h;
    for (size_t n = 0; n < len; n++)
        ck_assert_msg(parse(data, n, &h) == 0, "the first %zu of %zu bytes were decided", n, len);
}

/* ------------------------------------------------------------ version 1 */

START_TEST(test_v1_tcp4_gives_both_addresses_and_its_length)
{
    const char *s = "PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\nhello";
    tw_proxy_header h;
    ck_assert_int_eq(parse(s, strlen(s), &h), (int)strlen(s) - 5);
    ck_assert_int_eq(h.version, 1);
    ck_assert_int_eq(h.local, 0);
    assert_ip(&h.source, "192.0.2.7:56324");
    assert_ip(&h.destination, "198.51.100.1:443");
}
END_TEST

START_TEST(test_v1_tcp6)
{
    const char *s = "PROXY TCP6 2001:db8::1 ::1 65535 0\r\n";
    tw_proxy_header h;
    ck_assert_int_eq(parse(s, strlen(s), &h), (int)strlen(s));
    assert_ip(&h.source, "[2001:db8::1]:65535");
    assert_ip(&h.destination, "[::1]:0");
}
END_TEST

START_TEST(test_v1_unknown_keeps_the_real_addresses_and_ignores_the_rest)
{
    tw_proxy_header h;
    ck_assert_int_eq(parse("PROXY UNKNOWN\r\nx", 16, &h), 15);
    ck_assert_int_eq(h.local, 1);
    ck_assert_int_eq(h.source.len, 0);
    const char *s = "PROXY UNKNOWN ffff::1 whatever 1 2\r\n";
    ck_assert_int_eq(parse(s, strlen(s), &h), (int)strlen(s));
    ck_assert_int_eq(h.local, 1);
}
END_TEST

START_TEST(test_v1_waits_at_every_split_point)
{
    const char *s = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    ck_assert_uint_eq(strlen(s), 104);
    assert_prefixes_wait(s, strlen(s));
    tw_proxy_header h;
    ck_assert_int_eq(parse(s, strlen(s), &h), 104);
}
END_TEST

START_TEST(test_v1_of_exactly_107_bytes_is_accepted_and_108_refused)
{
    char s[200];
    memset(s, 'x', sizeof s);
    memcpy(s, "PROXY UNKNOWN ", 14);
    memcpy(s + 105, "\r\n", 2);
    tw_proxy_header h;
    ck_assert_int_eq(parse(s, 107, &h), 107);
    memset(s, 'x', sizeof s);
    memcpy(s, "PROXY UNKNOWN ", 14);
    memcpy(s + 106, "\r\n", 2);
    ck_assert_int_eq(parse(s, 106, &h), 0); /* could still end at 107 */
    ck_assert_int_eq(parse(s, 107, &h), TW_ETOOBIG);
    ck_assert_int_eq(parse(s, 200, &h), TW_ETOOBIG);
}
END_TEST

START_TEST(test_v1_bad_lines_are_protocol_errors)
{
    static const char *const bad[] = {
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",   /* port out of range */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 123456\r\n",  /* six digits */
        "PROXY TCP4 ::1 ::1 1 2\r\n",               /* family mismatch */
        "PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",      /* two spaces */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",         /* a field missing */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",     /* one too many */
        "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
        "PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",       /* case matters */
        "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY UNKNOWNX\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",        /* CR without LF */
        "PROXY TCP4 1.2.3.4\n",                     /* LF alone */
        "PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n",     /* a NUL */
        "PROXY \r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tw_proxy_header h;
        size_t len = strlen(bad[i]);
        if (i == 13)
            len = 33;
        ck_assert_msg(parse(bad[i], len, &h) == TW_EPROTO, "'%s' was not refused", bad[i]);
    }
}
END_TEST

START_TEST(test_no_signature_is_refused_at_the_first_wrong_byte)
{
    tw_proxy_header h;
    const char *why = NULL;
    ck_assert_int_eq(tw_proxy_parse("G", 1, &h, &why), TW_EPROTO);
    ck_assert_str_eq(why, "no PROXY header");
    ck_assert_int_eq(parse("PROX", 4, &h), 0);
    ck_assert_int_eq(parse("PROXZ", 5, &h), TW_EPROTO);
    ck_assert_int_eq(parse("PROXY", 5, &h), 0);
    ck_assert_int_eq(parse("PROXYX", 6, &h), TW_EPROTO);
    uint8_t b[12];
    memcpy(b, v2_sig, 12);
    ck_assert_int_eq(parse(b, 11, &h), 0);
    b[11] = 0x0B;
    ck_assert_int_eq(parse(b, 12, &h), TW_EPROTO);
    b[4] = 0x01;
    ck_assert_int_eq(parse(b, 5, &h), TW_EPROTO);
}
END_TEST

/* ------------------------------------------------------------ version 2 */

START_TEST(test_v2_inet_proxy)
{
    uint8_t body[12] = {192, 0, 2, 7, 198, 51, 100, 1, 0xDC, 0x04, 0x01, 0xBB};
    uint8_t b[64];
    size_t n = v2(b, 0x21, 0x11, body, sizeof body);
    memcpy(b + n, "data", 4);
    tw_proxy_header h;
    ck_assert_int_eq(parse(b, n + 4, &h), 28);
    ck_assert_int_eq(h.version, 2);
    ck_assert_int_eq(h.local, 0);
    assert_ip(&h.source, "192.0.2.7:56324");
    assert_ip(&h.destination, "198.51.100.1:443");
    assert_prefixes_wait(b, n);
}
END_TEST

START_TEST(test_v2_inet6_proxy)
{
    uint8_t body[36] = {0};
    inet_pton(AF_INET6, "2001:db8::5", body);
    inet_pton(AF_INET6, "::1", body + 16);
    body[32] = 0x12, body[33] = 0x34, body[34] = 0x00, body[35] = 0x50;
    uint8_t b[64];
    size_t n = v2(b, 0x21, 0x21, body, sizeof body);
    tw_proxy_header h;
    ck_assert_int_eq(parse(b, n, &h), 52);
    assert_ip(&h.source, "[2001:db8::5]:4660");
    assert_ip(&h.destination, "[::1]:80");
}
END_TEST

START_TEST(test_v2_unix_proxy)
{
    uint8_t body[216] = {0};
    strcpy((char *)body, "/run/client.sock");
    strcpy((char *)body + 108, "/run/app.sock");
    uint8_t b[256];
    size_t n = v2(b, 0x21, 0x31, body, sizeof body);
    tw_proxy_header h;
    ck_assert_int_eq(parse(b, n, &h), 232);
    ck_assert_int_eq(tw_address_family(&h.source), AF_UNIX);
    assert_ip(&h.source, "unix:/run/client.sock");
    assert_ip(&h.destination, "unix:/run/app.sock");
    /* An unnamed client socket is the family alone. */
    memset(body, 0, 108);
    v2(b, 0x21, 0x31, body, sizeof body);
    ck_assert_int_eq(parse(b, n, &h), 232);
    ck_assert_uint_eq(h.source.len, offsetof(struct sockaddr_un, sun_path));
}
END_TEST

START_TEST(test_v2_local_and_unspec_keep_the_real_addresses)
{
    uint8_t b[64];
    tw_proxy_header h;
    size_t n = v2(b, 0x20, 0x00, NULL, 0); /* LOCAL, a health check */
    ck_assert_int_eq(parse(b, n, &h), 16);
    ck_assert_int_eq(h.local, 1);
    ck_assert_int_eq(h.source.len, 0);
    uint8_t body[12] = {1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2};
    n = v2(b, 0x20, 0x11, body, sizeof body); /* LOCAL with an address: ignored */
    ck_assert_int_eq(parse(b, n, &h), 28);
    ck_assert_int_eq(h.local, 1);
    n = v2(b, 0x21, 0x00, "xyz", 3); /* PROXY, UNSPEC: skipped */
    ck_assert_int_eq(parse(b, n, &h), 19);
    ck_assert_int_eq(h.local, 1);
}
END_TEST

START_TEST(test_v2_tlvs_after_the_addresses_are_skipped)
{
    uint8_t body[12 + 7] = {10, 0, 0, 1, 10, 0, 0, 2, 0, 80, 0, 81,
                            0x04, 0x00, 0x04, 'n', 'o', 'o', 'p'}; /* PP2_TYPE_NOOP */
    uint8_t b[64];
    size_t n = v2(b, 0x21, 0x11, body, sizeof body);
    tw_proxy_header h;
    ck_assert_int_eq(parse(b, n, &h), 35);
    assert_ip(&h.source, "10.0.0.1:80");
}
END_TEST

START_TEST(test_v2_bad_fixed_parts_are_refused)
{
    uint8_t body[216] = {0};
    uint8_t b[256];
    tw_proxy_header h;
    v2(b, 0x11, 0x11, body, 12); /* version 1 in the binary format */
    ck_assert_int_eq(parse(b, 16, &h), TW_EPROTO);
    v2(b, 0x22, 0x11, body, 12); /* command 2 */
    ck_assert_int_eq(parse(b, 16, &h), TW_EPROTO);
    v2(b, 0x21, 0x41, body, 12); /* family 4 */
    ck_assert_int_eq(parse(b, 16, &h), TW_EPROTO);
    v2(b, 0x21, 0x13, body, 12); /* transport 3 */
    ck_assert_int_eq(parse(b, 16, &h), TW_EPROTO);
    size_t n = v2(b, 0x21, 0x11, body, 11); /* too short for INET */
    ck_assert_int_eq(parse(b, n, &h), TW_EPROTO);
    n = v2(b, 0x21, 0x21, body, 35); /* too short for INET6 */
    ck_assert_int_eq(parse(b, n, &h), TW_EPROTO);
    n = v2(b, 0x21, 0x31, body, 215); /* too short for UNIX */
    ck_assert_int_eq(parse(b, n, &h), TW_EPROTO);
}
END_TEST

START_TEST(test_v2_oversized_is_refused_from_its_fixed_part)
{
    uint8_t b[16];
    memcpy(b, v2_sig, 12);
    b[12] = 0x21, b[13] = 0x11;
    b[14] = (TW_PROXY_V2_MAX_LENGTH + 1) >> 8;
    b[15] = (TW_PROXY_V2_MAX_LENGTH + 1) & 0xff;
    tw_proxy_header h;
    ck_assert_int_eq(parse(b, 16, &h), TW_ETOOBIG);
    b[14] = 0xff, b[15] = 0xff;
    ck_assert_int_eq(parse(b, 16, &h), TW_ETOOBIG);
    /* The limit itself is a valid header, once all of it is in. */
    uint8_t *big = calloc(1, TW_PROXY_HEADER_MAX);
    ck_assert_ptr_nonnull(big);
    size_t n = v2(big, 0x21, 0x11, NULL, 0);
    big[14] = TW_PROXY_V2_MAX_LENGTH >> 8;
    big[15] = TW_PROXY_V2_MAX_LENGTH & 0xff;
    ck_assert_int_eq(parse(big, n + TW_PROXY_V2_MAX_LENGTH - 1, &h), 0);
    ck_assert_int_eq(parse(big, TW_PROXY_HEADER_MAX, &h), TW_PROXY_HEADER_MAX);
    free(big);
}
END_TEST

/* ------------------------------------------------------------ listeners */

/* A protocol that notes what it was built for and what it received. */
typedef struct {
    tw_factory base;
    int built, made, lost, destroyed;
    tw_address built_peer, peer, host;
    char data[4096];
    size_t len;
    int echo;
} peer_factory;

typedef struct {
    tw_protocol base;
    peer_factory *pf;
} peer_proto;

static void pp_made(tw_protocol *p)
{
    peer_proto *pp = (peer_proto *)p;
    pp->pf->made++;
    ck_assert_int_eq(tw_transport_get_peer(p->transport, &pp->pf->peer), 0);
    ck_assert_int_eq(tw_transport_get_host(p->transport, &pp->pf->host), 0);
}

static void pp_data(tw_protocol *p, const void *data, size_t len)
{
    peer_proto *pp = (peer_proto *)p;
    peer_factory *pf = pp->pf;
    ck_assert_uint_le(pf->len + len, sizeof pf->data);
    memcpy(pf->data + pf->len, data, len);
    pf->len += len;
    if (pf->echo)
        tw_transport_write(p->transport, data, len);
}

static void pp_lost(tw_protocol *p, const tw_failure *reason)
{
    (void)reason;
    ((peer_proto *)p)->pf->lost++;
}

static void pp_destroy(tw_protocol *p)
{
    ((peer_proto *)p)->pf->destroyed++;
    free(p);
}

static const tw_protocol_ops pp_ops = {
    .connection_made = pp_made,
    .data_received = pp_data,
    .connection_lost = pp_lost,
    .destroy = pp_destroy,
};

static tw_protocol *pf_build(tw_factory *f, const tw_address *peer)
{
    peer_factory *pf = (peer_factory *)f;
    peer_proto *pp = calloc(1, sizeof *pp);
    pp->base.ops = &pp_ops;
    pp->pf = pf;
    pf->built++;
    pf->built_peer = *peer;
    return &pp->base;
}

static const tw_factory_ops pf_ops = {.build_protocol = pf_build};

/* What the "proxy" subsystem logged. */
static char proxy_log[2048];

static void capture(tw_log_level level, const char *subsystem, const char *message, void *arg)
{
    (void)level;
    (void)arg;
    if (strcmp(subsystem, "proxy") == 0) {
        size_t n = strlen(proxy_log);
        snprintf(proxy_log + n, sizeof proxy_log - n, "%s\n", message);
    }
}

typedef struct {
    tw_reactor *r;
    peer_factory pf;
    tw_listener *l;
    int port;
    int fd;
} bench;

static void setup(bench *b, double header_timeout)
{
    memset(b, 0, sizeof *b);
    proxy_log[0] = '\0';
    tw_log_set_handler(capture, NULL);
    b->r = tw_reactor_new();
    ck_assert_ptr_nonnull(b->r);
    tw_factory_init(&b->pf.base, &pf_ops);
    tw_listen_options o;
    tw_listen_options_init(&o);
    ck_assert(o.proxy_header_timeout == TW_PROXY_HEADER_TIMEOUT);
    o.proxy_protocol = 1;
    if (header_timeout > 0)
        o.proxy_header_timeout = header_timeout;
    tw_address a;
    tw_address_from_ip(&a, "127.0.0.1", 0);
    ck_assert_int_eq(tw_listen(b->r, &a, &o, &b->pf.base, &b->l), 0);
    tw_address bound;
    tw_listener_address(b->l, &bound);
    b->port = tw_address_port(&bound);
    b->fd = tu_connect("127.0.0.1", b->port);
    ck_assert_int_ge(b->fd, 0);
}

static void teardown(bench *b)
{
    if (b->fd >= 0)
        close(b->fd);
    tw_listener_close(b->l);
    tw_reactor_free(b->r);
    tw_log_set_handler(NULL, NULL);
}

/* Send @p s in pieces of @p step bytes, running the loop between them. */
static void send_in_steps(bench *b, const char *s, size_t len, size_t step)
{
    for (size_t at = 0; at < len; at += step) {
        size_t n = len - at < step ? len - at : step;
        ck_assert_int_eq(tu_write_all(b->fd, s + at, n), 0);
        spin_ms(b->r, 5);
    }
}

START_TEST(test_listener_builds_the_protocol_for_the_client_the_header_names)
{
    bench b;
    setup(&b, 0);
    spin_ms(b.r, 20);
    ck_assert_int_eq(b.pf.built, 0); /* nothing before the header */
    const char *s = "PROXY TCP4 203.0.113.9 192.0.2.1 40000 9000\r\nhello";
    ck_assert_int_eq(tu_write_all(b.fd, s, strlen(s)), 0);
    spin(b.r, &b.pf.made, 2000);
    spin_ms(b.r, 20);
    ck_assert_int_eq(b.pf.built, 1);
    assert_ip(&b.pf.built_peer, "203.0.113.9:40000");
    assert_ip(&b.pf.peer, "203.0.113.9:40000");
    assert_ip(&b.pf.host, "192.0.2.1:9000");
    ck_assert_uint_eq(b.pf.len, 5);
    ck_assert(memcmp(b.pf.data, "hello", 5) == 0);
    teardown(&b);
}
END_TEST

START_TEST(test_a_header_split_across_reads_is_put_together)
{
    for (size_t step = 1; step <= 7; step += 3) {
        bench b;
        setup(&b, 0);
        b.pf.echo = 1;
        const char *s = "PROXY TCP6 2001:db8::7 ::1 1234 80\r\nping";
        send_in_steps(&b, s, strlen(s), step);
        spin(b.r, &b.pf.made, 2000);
        assert_ip(&b.pf.peer, "[2001:db8::7]:1234");
        char buf[4];
        int done = 0;
        spin(b.r, &done, 50);
        ck_assert_uint_eq(tu_read_exact(b.fd, buf, 4, 1000), 4);
        ck_assert(memcmp(buf, "ping", 4) == 0);
        ck_assert_uint_eq(b.pf.len, 4);
        teardown(&b);
    }
}
END_TEST

START_TEST(test_v2_local_reports_the_real_peer)
{
    bench b;
    setup(&b, 0);
    uint8_t h[16];
    v2(h, 0x20, 0x00, NULL, 0);
    ck_assert_int_eq(tu_write_all(b.fd, h, sizeof h), 0);
    spin(b.r, &b.pf.made, 2000);
    struct sockaddr_in mine;
    socklen_t len = sizeof mine;
    getsockname(b.fd, (struct sockaddr *)&mine, &len);
    ck_assert_int_eq(tw_address_port(&b.pf.peer), ntohs(mine.sin_port));
    ck_assert_int_eq(tw_address_port(&b.pf.host), b.port);
    teardown(&b);
}
END_TEST

START_TEST(test_v2_unix_source_through_a_tcp_listener)
{
    bench b;
    setup(&b, 0);
    uint8_t body[216] = {0};
    strcpy((char *)body, "/run/haproxy-client");
    strcpy((char *)body + 108, "/run/front.sock");
    uint8_t h[256];
    size_t n = v2(h, 0x21, 0x31, body, sizeof body);
    memcpy(h + n, "x", 1);
    ck_assert_int_eq(tu_write_all(b.fd, h, n + 1), 0);
    spin(b.r, &b.pf.made, 2000);
    spin_ms(b.r, 20);
    assert_ip(&b.pf.peer, "unix:/run/haproxy-client");
    ck_assert_uint_eq(b.pf.len, 1);
    teardown(&b);
}
END_TEST

START_TEST(test_a_connection_without_a_header_is_closed_and_logged)
{
    bench b;
    setup(&b, 0);
    const char *s = "GET / HTTP/1.0\r\n\r\n";
    ck_assert_int_eq(tu_write_all(b.fd, s, strlen(s)), 0);
    int eof = 0;
    long long until = tu_now_ms() + 2000;
    while (eof == 0 && tu_now_ms() < until) {
        spin_ms(b.r, 10);
        eof = tu_wait_eof(b.fd, 1);
    }
    ck_assert_int_eq(eof, 1);
    ck_assert_int_eq(b.pf.built, 0);
    ck_assert_ptr_nonnull(strstr(proxy_log, "no PROXY header"));
    teardown(&b);
}
END_TEST

START_TEST(test_an_oversized_v1_line_is_closed_and_logged)
{
    bench b;
    setup(&b, 0);
    char s[300];
    memset(s, 'a', sizeof s);
    memcpy(s, "PROXY UNKNOWN ", 14);
    send_in_steps(&b, s, sizeof s, 50);
    int eof = 0;
    long long until = tu_now_ms() + 2000;
    while (eof == 0 && tu_now_ms() < until) {
        spin_ms(b.r, 10);
        eof = tu_wait_eof(b.fd, 1);
    }
    ck_assert_int_eq(eof, 1);
    ck_assert_int_eq(b.pf.built, 0);
    ck_assert_ptr_nonnull(strstr(proxy_log, "107 bytes"));
    teardown(&b);
}
END_TEST

START_TEST(test_a_late_header_closes_after_the_timeout)
{
    bench b;
    setup(&b, 0.2);
    long long start = tu_now_ms();
    ck_assert_int_eq(tu_write_all(b.fd, "PROXY TCP4 ", 11), 0); /* and no more */
    int eof = 0;
    while (eof == 0 && tu_now_ms() < start + 3000) {
        spin_ms(b.r, 10);
        eof = tu_wait_eof(b.fd, 1);
    }
    long long took = tu_now_ms() - start;
    ck_assert_int_eq(eof, 1);
    ck_assert_int_ge(took, 190);
    ck_assert_int_eq(b.pf.built, 0);
    ck_assert_ptr_nonnull(strstr(proxy_log, "no complete PROXY header within 0.2 s"));
    teardown(&b);
}
END_TEST

START_TEST(test_bad_header_timeouts_are_refused)
{
    tw_reactor *r = tw_reactor_new();
    peer_factory pf;
    memset(&pf, 0, sizeof pf);
    tw_factory_init(&pf.base, &pf_ops);
    tw_listen_options o;
    tw_listen_options_init(&o);
    o.proxy_protocol = 1;
    o.proxy_header_timeout = -1;
    tw_address a;
    tw_address_from_ip(&a, "127.0.0.1", 0);
    tw_listener *l = NULL;
    ck_assert_int_eq(tw_listen(r, &a, &o, &pf.base, &l), -EINVAL);
    o.proxy_header_timeout = 0.0 / 0.0;
    ck_assert_int_eq(tw_listen(r, &a, &o, &pf.base, &l), -EINVAL);
    tw_reactor_free(r);
}
END_TEST

/* ------------------------------------------------------------ endpoints */

START_TEST(test_haproxy_endpoints_parse_and_format_back)
{
    tw_endpoint e;
    char err[256], text[TW_ENDPOINT_STRLEN];
    ck_assert_int_eq(tw_endpoint_parse_server("haproxy:tcp:9000:interface=127.0.0.1", &e, err,
                                              sizeof err), 0);
    ck_assert_int_eq(e.proxy_protocol, 1);
    ck_assert_int_eq(e.type, TW_ENDPOINT_TCP);
    ck_assert_int_eq(e.port, 9000);
    ck_assert_str_eq(tw_endpoint_format(&e, text, sizeof text),
                     "haproxy:tcp:9000:interface=127.0.0.1");
    ck_assert_int_eq(tw_endpoint_parse_server("haproxy:9001", &e, err, sizeof err), 0);
    ck_assert_int_eq(e.proxy_protocol, 1);
    ck_assert_int_eq(e.port, 9001);
    ck_assert_int_eq(tw_endpoint_parse_server("haproxy:unix:/tmp/x.sock", &e, err, sizeof err), 0);
    ck_assert_int_eq(e.type, TW_ENDPOINT_UNIX);
    ck_assert_int_eq(tw_endpoint_parse_server("tcp:9000", &e, err, sizeof err), 0);
    ck_assert_int_eq(e.proxy_protocol, 0);

    ck_assert_int_eq(tw_endpoint_parse_server("haproxy:udp:53", &e, err, sizeof err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "udp"));
    ck_assert_int_eq(tw_endpoint_parse_server("haproxy", &e, err, sizeof err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "haproxy:tcp:9000"));
    ck_assert_int_eq(tw_endpoint_parse_server("haproxy:haproxy:tcp:1", &e, err, sizeof err),
                     -EINVAL);
    ck_assert_int_eq(tw_endpoint_parse_client("haproxy:tcp:localhost:1", &e, err, sizeof err),
                     -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "listened on"));
}
END_TEST

START_TEST(test_listen_string_with_haproxy_reads_the_header)
{
    tw_reactor *r = tw_reactor_new();
    peer_factory pf;
    memset(&pf, 0, sizeof pf);
    tw_factory_init(&pf.base, &pf_ops);
    tu_outcome o;
    tu_watch(tw_listen_string(r, "haproxy:tcp:0:interface=127.0.0.1", NULL, &pf.base), &o);
    ck_assert_int_eq(o.ok, 1);
    tw_listener *l = o.value;
    tw_address bound;
    tw_listener_address(l, &bound);
    int fd = tu_connect("127.0.0.1", tw_address_port(&bound));
    const char *s = "PROXY TCP4 198.51.100.20 127.0.0.1 5555 80\r\n";
    ck_assert_int_eq(tu_write_all(fd, s, strlen(s)), 0);
    spin(r, &pf.made, 2000);
    assert_ip(&pf.peer, "198.51.100.20:5555");
    close(fd);
    tw_listener_close(l);
    tw_reactor_free(r);
}
END_TEST

static Suite *proxy_suite(void)
{
    Suite *s = suite_create("proxy");
    TCase *p = tcase_create("parser");
    tcase_add_test(p, test_v1_tcp4_gives_both_addresses_and_its_length);
    tcase_add_test(p, test_v1_tcp6);
    tcase_add_test(p, test_v1_unknown_keeps_the_real_addresses_and_ignores_the_rest);
    tcase_add_test(p, test_v1_waits_at_every_split_point);
    tcase_add_test(p, test_v1_of_exactly_107_bytes_is_accepted_and_108_refused);
    tcase_add_test(p, test_v1_bad_lines_are_protocol_errors);
    tcase_add_test(p, test_no_signature_is_refused_at_the_first_wrong_byte);
    tcase_add_test(p, test_v2_inet_proxy);
    tcase_add_test(p, test_v2_inet6_proxy);
    tcase_add_test(p, test_v2_unix_proxy);
    tcase_add_test(p, test_v2_local_and_unspec_keep_the_real_addresses);
    tcase_add_test(p, test_v2_tlvs_after_the_addresses_are_skipped);
    tcase_add_test(p, test_v2_bad_fixed_parts_are_refused);
    tcase_add_test(p, test_v2_oversized_is_refused_from_its_fixed_part);
    suite_add_tcase(s, p);
    TCase *l = tcase_create("listener");
    tcase_set_timeout(l, 30);
    tcase_add_test(l, test_listener_builds_the_protocol_for_the_client_the_header_names);
    tcase_add_test(l, test_a_header_split_across_reads_is_put_together);
    tcase_add_test(l, test_v2_local_reports_the_real_peer);
    tcase_add_test(l, test_v2_unix_source_through_a_tcp_listener);
    tcase_add_test(l, test_a_connection_without_a_header_is_closed_and_logged);
    tcase_add_test(l, test_an_oversized_v1_line_is_closed_and_logged);
    tcase_add_test(l, test_a_late_header_closes_after_the_timeout);
    tcase_add_test(l, test_bad_header_timeouts_are_refused);
    suite_add_tcase(s, l);
    TCase *e = tcase_create("endpoint");
    tcase_add_test(e, test_haproxy_endpoints_parse_and_format_back);
    tcase_add_test(e, test_listen_string_with_haproxy_reads_the_header);
    suite_add_tcase(s, e);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(proxy_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
