/* SPDX-License-Identifier: MIT */
/*
 * TLS (twine/tls.h): contexts, the TLS transport, the ssl:/tls: endpoints
 * and startTLS, between twine peers and against a bare OpenSSL peer driven
 * by the test itself over a socketpair, whose bytes the test sees, so it
 * can count the records on the wire and cut the connection as it likes.
 *
 * The certificates come from tests/tls/mkcerts.sh, run once per test
 * program into a fresh directory: no key is ever committed.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#ifdef HAVE_MALLINFO2
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <twine.h>
#include <twine/amp.h>
#include <twine/line.h>
#include <twine/tls.h>

#include "recorder.h"
#include "testutil.h"
#include "tlscerts.h"

/* ------------------------------------------------------------ the protocols */

/* What one side's protocols saw. */
typedef struct side {
    int made, lost, destroyed;
    int lost_code;
    char lost_message[512];
    tw_tls_info info; /* at connection_made */
    int info_rc;
    char got[65536];
    size_t got_len;
    int eof; /* read_connection_lost */
    int pauses, resumes;
    int write_lost; /* write_connection_lost */
    tw_transport *t;
} side;

static side srv, cli;

typedef struct {
    tw_protocol base;
    side *s;
    int mode;
    tw_line_receiver lr; /* M_LINE */
} tproto;

enum {
    M_ECHO,      /* echo what arrives */
    M_SEND,      /* client: write "hello" at connection_made, collect */
    M_THOUSAND,  /* one thousand one-byte writes per data_received */
    M_BYE,       /* answer "ok" and lose_connection */
    M_STARTTLS_S,/* server: "STARTTLS\n" -> "GO\n", startTLS, then echo */
    M_STARTTLS_C,/* client: send "STARTTLS\n", on "GO\n" startTLS and send "secret" */
    M_HALF,      /* half-close aware echo that answers the EOF with "eof" and closes */
    M_SENDLINE,  /* client: write "hello\n" at connection_made, collect */
    M_FLOOD,     /* write 1 MiB in 16 KiB pieces per data_received */
    M_WELCOME,   /* server: write "welcome" at connection_made, then collect */
    M_HOARD,     /* hold every byte (buffered_input), answer the first with "ack" */
    M_LINE,      /* a line receiver of at most 8 bytes a line: longer closes as too_long */
    M_HALF_WRITE, /* on "half": lose_write_connection, then collect what still comes */
    M_PAUSE      /* collect; pause reading at the first data_received */
};

static tw_tls_context *starttls_server, *starttls_client;

static void t_made(tw_protocol *p)
{
    tproto *t = (tproto *)p;
    side *s = t->s;
    s->made++;
    s->t = p->transport;
    s->info_rc = tw_tls_get_info(p->transport, &s->info);
    if (t->mode == M_SEND)
        tw_transport_write(p->transport, "hello", 5);
    if (t->mode == M_SENDLINE)
        tw_transport_write(p->transport, "hello\n", 6);
    if (t->mode == M_STARTTLS_C)
        tw_transport_write(p->transport, "STARTTLS\n", 9);
    if (t->mode == M_WELCOME)
        tw_transport_write(p->transport, "welcome", 7);
}

static void t_data(tw_protocol *p, const void *data, size_t len)
{
    tproto *t = (tproto *)p;
    side *s = t->s;
    if (s->got_len + len <= sizeof s->got) {
        memcpy(s->got + s->got_len, data, len);
        s->got_len += len;
    }
    switch (t->mode) {
    case M_ECHO:
    case M_HALF:
        tw_transport_write(p->transport, data, len);
        break;
    case M_THOUSAND:
        for (int i = 0; i < 1000; i++)
            ck_assert_int_eq(tw_transport_write(p->transport, "x", 1), 0);
        break;
    case M_FLOOD: {
        /* A small kernel buffer, so the queue is twine's on any socket. */
        int sndbuf = 16384;
        setsockopt(tw_transport_fileno(p->transport), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
        static char piece[16384];
        memset(piece, 'f', sizeof piece);
        for (int i = 0; i < 64; i++)
            ck_assert_int_eq(tw_transport_write(p->transport, piece, sizeof piece), 0);
        /* What waits counts the encrypted queue: over the high mark now. */
        ck_assert_uint_gt(tw_transport_write_buffer_size(p->transport), 64 * 1024);
        break;
    }
    case M_PAUSE:
        if (s->got_len == len)
            tw_transport_pause_producing(p->transport);
        break;
    case M_BYE:
        tw_transport_write(p->transport, "ok", 2);
        tw_transport_lose_connection(p->transport);
        break;
    case M_HOARD:
        if (s->got_len == len)
            tw_transport_write(p->transport, "ack", 3);
        break;
    case M_LINE:
        tw_line_receiver_data_received(&t->lr, data, len);
        break;
    case M_HALF_WRITE:
        if (s->got_len == 4 && memcmp(s->got, "half", 4) == 0) {
            tw_transport_write(p->transport, "bye", 3);
            ck_assert_int_eq(tw_transport_lose_write_connection(p->transport), 0);
        }
        break;
    case M_STARTTLS_S:
        if (s->got_len == 9 && memcmp(s->got, "STARTTLS\n", 9) == 0) {
            tw_transport_write(p->transport, "GO\n", 3);
            ck_assert_int_eq(tw_transport_start_tls(p->transport, starttls_server, TW_TLS_SERVER), 0);
            s->got_len = 0;
        } else if (tw_transport_is_tls(p->transport)) {
            tw_transport_write(p->transport, data, len);
        }
        break;
    case M_STARTTLS_C:
        if (s->got_len == 3 && memcmp(s->got, "GO\n", 3) == 0) {
            ck_assert_int_eq(tw_transport_start_tls(p->transport, starttls_client, TW_TLS_CLIENT), 0);
            ck_assert(tw_transport_is_tls(p->transport));
            s->t = p->transport;
            tw_transport_write(p->transport, "secret", 6);
            s->got_len = 0;
        }
        break;
    default:
        break;
    }
}

static void t_lost(tw_protocol *p, const tw_failure *reason)
{
    side *s = ((tproto *)p)->s;
    s->lost++;
    s->lost_code = tw_failure_code(reason);
    tw_failure_format(reason, s->lost_message, sizeof s->lost_message);
    s->t = NULL;
}

static void t_read_lost(tw_protocol *p)
{
    side *s = ((tproto *)p)->s;
    s->eof = 1;
    tw_transport_write(p->transport, "eof", 3);
    tw_transport_lose_connection(p->transport);
}

static void t_pause(tw_protocol *p)
{
    ((tproto *)p)->s->pauses++;
}

static void t_resume(tw_protocol *p)
{
    ((tproto *)p)->s->resumes++;
}

static void t_write_lost(tw_protocol *p)
{
    ((tproto *)p)->s->write_lost++;
}

static size_t t_hoarded(tw_protocol *p)
{
    return ((tproto *)p)->s->got_len;
}

static size_t t_line_buffered(tw_protocol *p)
{
    return tw_line_receiver_buffered(&((tproto *)p)->lr);
}

static void t_line(tw_line_receiver *lr, const char *line, size_t len)
{
    tw_line_receiver_send_line(lr, line, len);
}

static const tw_line_receiver_ops t_line_ops = {.line_received = t_line};

static void t_destroy(tw_protocol *p)
{
    tproto *t = (tproto *)p;
    t->s->destroyed++;
    if (t->mode == M_LINE)
        tw_line_receiver_cleanup(&t->lr);
    free(p);
}

static const tw_protocol_ops t_ops = {
    .connection_made = t_made,
    .data_received = t_data,
    .connection_lost = t_lost,
    .pause_producing = t_pause,
    .resume_producing = t_resume,
    .destroy = t_destroy,
};
static const tw_protocol_ops t_half_ops = {
    .connection_made = t_made,
    .data_received = t_data,
    .connection_lost = t_lost,
    .read_connection_lost = t_read_lost,
    .destroy = t_destroy,
};
static const tw_protocol_ops t_hoard_ops = {
    .connection_made = t_made,
    .data_received = t_data,
    .connection_lost = t_lost,
    .destroy = t_destroy,
    .buffered_input = t_hoarded,
};
static const tw_protocol_ops t_line_proto_ops = {
    .connection_made = t_made,
    .data_received = t_data,
    .connection_lost = t_lost,
    .destroy = t_destroy,
    .buffered_input = t_line_buffered,
};
static const tw_protocol_ops t_half_write_ops = {
    .connection_made = t_made,
    .data_received = t_data,
    .connection_lost = t_lost,
    .write_connection_lost = t_write_lost,
    .destroy = t_destroy,
};

typedef struct {
    tw_factory base;
    side *s;
    int mode;
    int failed;
    char failed_message[512];
} tfactory;

static tw_protocol *tf_build(tw_factory *f, const tw_address *peer)
{
    (void)peer;
    tfactory *tf = (tfactory *)f;
    tproto *t = calloc(1, sizeof *t);
    t->base.ops = tf->mode == M_HALF         ? &t_half_ops
                  : tf->mode == M_HOARD      ? &t_hoard_ops
                  : tf->mode == M_LINE       ? &t_line_proto_ops
                  : tf->mode == M_HALF_WRITE ? &t_half_write_ops
                                             : &t_ops;
    t->s = tf->s;
    t->mode = tf->mode;
    if (t->mode == M_LINE) {
        tw_line_receiver_init(&t->lr, &t->base, &t_line_ops);
        tw_line_receiver_set_max_length(&t->lr, 8);
    }
    return &t->base;
}

static void tf_failed(tw_factory *f, const tw_failure *reason)
{
    tfactory *tf = (tfactory *)f;
    tf->failed++;
    tw_failure_format(reason, tf->failed_message, sizeof tf->failed_message);
}

static const tw_factory_ops tf_ops = {.build_protocol = tf_build,
                                      .client_connection_failed = tf_failed};

static void tf_init(tfactory *f, side *s, int mode)
{
    memset(f, 0, sizeof *f);
    tw_factory_init(&f->base, &tf_ops);
    f->s = s;
    f->mode = mode;
}

static tw_reactor *r;

static void setup(void)
{
    memset(&srv, 0, sizeof srv);
    memset(&cli, 0, sizeof cli);
    r = tw_reactor_new();
    ck_assert_ptr_nonnull(r);
}

static void teardown(void)
{
    tw_reactor_free(r);
    r = NULL;
}

/* ------------------------------------------------------------ helpers */

static tw_tls_context *server_ctx(const char *certname, const char *keyname)
{
    char err[TW_TLS_ERRLEN];
    tw_tls_context *ctx = tw_tls_context_new(TW_TLS_SERVER, err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    int rc = tw_tls_context_use_certificate(ctx, tu_tls_cert(certname), tu_tls_cert(keyname), NULL,
                                            err,
                                            sizeof err);
    ck_assert_msg(rc == 0, "%s", err);
    return ctx;
}

static tw_tls_context *client_ctx(const char *roots)
{
    char err[TW_TLS_ERRLEN];
    tw_tls_context *ctx = tw_tls_context_new(TW_TLS_CLIENT, err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    if (roots != NULL) {
        int rc = tw_tls_context_set_trust_roots(ctx, tu_tls_cert(roots), err, sizeof err);
        ck_assert_msg(rc == 0, "%s", err);
    }
    return ctx;
}

/* Listen with TLS on 127.0.0.1 with @p ctx and @p opts (NULL for the
 * defaults); @return the port. */
static int listen_tls_with(tw_tls_context *ctx, const tw_listen_options *opts, tfactory *f,
                           tw_listener **out)
{
    tw_endpoint e;
    char err[256];
    ck_assert_int_eq(tw_endpoint_parse_server("tcp:0:interface=127.0.0.1", &e, err, sizeof err), 0);
    tu_outcome o = {0};
    tu_watch(tw_listen_tls(r, &e, opts, ctx, &f->base), &o);
    ck_assert_msg(o.fired && o.ok, "%s", o.message);
    *out = o.value;
    tw_address a;
    ck_assert_int_eq(tw_listener_address(*out, &a), 0);
    return tw_address_port(&a);
}

static int listen_tls(tw_tls_context *ctx, tfactory *f, tw_listener **out)
{
    return listen_tls_with(ctx, NULL, f, out);
}

static void connect_tls(const char *desc, tw_tls_context *ctx, tfactory *f, tu_outcome *o)
{
    tw_endpoint e;
    char err[512];
    ck_assert_msg(tw_endpoint_parse_client(desc, &e, err, sizeof err) == 0, "%s", err);
    tu_watch(tw_connect_tls(r, &e, ctx, &f->base), o);
}

static void run_ms(int ms)
{
    spin_ms(r, ms);
}

/* ------------------------------------------------------------ endpoints */

START_TEST(test_ssl_server_endpoint_parses_twisted_syntax)
{
    tw_endpoint e;
    char err[512], text[TW_ENDPOINT_STRLEN];
    ck_assert_int_eq(tw_endpoint_parse_server("ssl:8443:privateKey=k.pem:certKey=c.pem:"
                                              "extraCertChain=ch.pem:interface=127.0.0.1:backlog=7",
                                              &e, err, sizeof err),
                     0);
    ck_assert(e.tls);
    ck_assert_int_eq(e.type, TW_ENDPOINT_TCP);
    ck_assert_int_eq(e.port, 8443);
    ck_assert_str_eq(e.private_key, "k.pem");
    ck_assert_str_eq(e.certificate, "c.pem");
    ck_assert_str_eq(e.cert_chain, "ch.pem");
    ck_assert_str_eq(e.interface, "127.0.0.1");
    ck_assert_int_eq(e.backlog, 7);
    ck_assert_str_eq(tw_endpoint_format(&e, text, sizeof text),
                     "ssl:8443:privateKey=k.pem:certKey=c.pem:extraCertChain=ch.pem:"
                     "interface=127.0.0.1:backlog=7");
    /* Twisted's defaults: server.pem holds both. */
    ck_assert_int_eq(tw_endpoint_parse_server("ssl:443", &e, err, sizeof err), 0);
    ck_assert_str_eq(e.private_key, "server.pem");
    ck_assert_str_eq(e.certificate, "server.pem");
    /* Positional, as Twisted: port, privateKey, certKey. */
    ck_assert_int_eq(tw_endpoint_parse_server("ssl:443:k.pem:c.pem", &e, err, sizeof err), 0);
    ck_assert_str_eq(e.private_key, "k.pem");
    ck_assert_str_eq(e.certificate, "c.pem");
    ck_assert_int_eq(tw_endpoint_parse_server("ssl:443:sslmethod=x", &e, err, sizeof err), -EINVAL);
    ck_assert_msg(strstr(err, "unknown option 'sslmethod'") != NULL, "%s", err);
}
END_TEST

START_TEST(test_tls_client_endpoint_parses_twisted_syntax)
{
    tw_endpoint e;
    char err[512], text[TW_ENDPOINT_STRLEN];
    ck_assert_int_eq(tw_endpoint_parse_client("tls:example.com:443:timeout=5:trustRoots=/ca:"
                                              "certificate=c.pem:privateKey=k.pem:"
                                              "bindAddress=127.0.0.1",
                                              &e, err, sizeof err),
                     0);
    ck_assert(e.tls && e.client);
    ck_assert_str_eq(e.host, "example.com");
    ck_assert_int_eq(e.port, 443);
    ck_assert_str_eq(e.trust_roots, "/ca");
    ck_assert_str_eq(tw_endpoint_format(&e, text, sizeof text),
                     "tls:example.com:443:trustRoots=/ca:certificate=c.pem:privateKey=k.pem:"
                     "timeout=5:bindAddress=127.0.0.1");
    ck_assert_int_eq(tw_endpoint_parse_client("tls:h:1:certificate=c.pem", &e, err, sizeof err),
                     -EINVAL);
    ck_assert_msg(strstr(err, "go together") != NULL, "%s", err);
}
END_TEST

START_TEST(test_plain_listen_and_connect_refuse_tls_endpoints)
{
    tw_endpoint e;
    char err[512];
    tfactory f;
    tf_init(&f, &srv, M_ECHO);
    ck_assert_int_eq(tw_endpoint_parse_server("ssl:0:interface=127.0.0.1", &e, err, sizeof err), 0);
    tu_outcome o = {0};
    tu_watch(tw_endpoint_listen(r, &e, NULL, &f.base), &o);
    ck_assert(o.fired && !o.ok);
    ck_assert_int_eq(o.code, -EPROTONOSUPPORT);
    ck_assert_int_eq(tw_endpoint_parse_client("tls:localhost:1", &e, err, sizeof err), 0);
    tu_outcome c = {0};
    tu_watch(tw_endpoint_connect(r, &e, &f.base), &c);
    ck_assert(c.fired && !c.ok);
    ck_assert_int_eq(c.code, -EPROTONOSUPPORT);
}
END_TEST

/* ------------------------------------------------------------ contexts */

START_TEST(test_context_refuses_expired_certificate)
{
    char err[TW_TLS_ERRLEN];
    tw_tls_context *ctx = tw_tls_context_new(TW_TLS_SERVER, err, sizeof err);
    ck_assert_int_eq(tw_tls_context_use_certificate(ctx, tu_tls_cert("expired.pem"),
                                                    tu_tls_cert("expired.key"),
                                                    NULL, err, sizeof err),
                     -EINVAL);
    ck_assert_msg(strstr(err, "expired on 2020-02-01") != NULL, "%s", err);
    tw_tls_context_unref(ctx);
}
END_TEST

START_TEST(test_context_refuses_key_of_another_certificate)
{
    char err[TW_TLS_ERRLEN];
    tw_tls_context *ctx = tw_tls_context_new(TW_TLS_SERVER, err, sizeof err);
    ck_assert_int_eq(tw_tls_context_use_certificate(ctx, tu_tls_cert("server.pem"),
                                                    tu_tls_cert("other.key"),
                                                    NULL, err, sizeof err),
                     -EINVAL);
    ck_assert_msg(strstr(err, "does not match the certificate") != NULL, "%s", err);
    ck_assert_int_eq(tw_tls_context_use_certificate(ctx, tu_tls_cert("missing.pem"), NULL, NULL,
                                                    err,
                                                    sizeof err),
                     -ENOENT);
    ck_assert_msg(strstr(err, "missing.pem") != NULL, "%s", err);
    /* A reload that fails keeps what was loaded; one that works replaces it. */
    ck_assert_int_eq(tw_tls_context_use_certificate(ctx, tu_tls_cert("server.pem"),
                                                    tu_tls_cert("server.key"),
                                                    NULL, err, sizeof err),
                     0);
    tw_tls_context_unref(ctx);
}
END_TEST

START_TEST(test_insecure_and_client_options_need_the_right_side)
{
    char err[TW_TLS_ERRLEN];
    tw_tls_context *s = tw_tls_context_new(TW_TLS_SERVER, err, sizeof err);
    tw_tls_context *c = tw_tls_context_new(TW_TLS_CLIENT, err, sizeof err);
    ck_assert_int_eq(tw_tls_context_set_insecure_no_verify(s, 1), -EINVAL);
    ck_assert_int_eq(tw_tls_context_require_client_certificate(c, 1), -EINVAL);
    ck_assert_int_eq(tw_tls_context_set_hostname(s, "x"), -EINVAL);
    const char *too_long[] = {""};
    ck_assert_int_eq(tw_tls_context_set_alpn(c, too_long, 1), -EINVAL);
    /* A verifying client with no name to check cannot be wrapped. */
    tfactory f;
    tf_init(&f, &cli, M_SEND);
    tw_factory *wrapped;
    ck_assert_int_eq(tw_tls_factory_new(c, NULL, &f.base, &wrapped), -EINVAL);
    tw_tls_context_unref(s);
    tw_tls_context_unref(c);
}
END_TEST

/* ------------------------------------------------------------ twine to twine */

START_TEST(test_echo_over_tls_verifies_the_server_and_reports_the_session)
{
    tw_tls_context *sctx = server_ctx("server.pem", "server.key");
    tfactory sf, cf;
    tf_init(&sf, &srv, M_ECHO);
    tf_init(&cf, &cli, M_SEND);
    tw_listener *l;
    int port = listen_tls(sctx, &sf, &l);
    char desc[256];
    snprintf(desc, sizeof desc, "tls:localhost:%d:trustRoots=%s", port, tu_tls_cert("ca.pem"));
    tu_outcome o = {0};
    connect_tls(desc, NULL, &cf, &o);
    spin(r, &o.fired, 5000);
    ck_assert_msg(o.ok, "%s", o.message);
    ck_assert_ptr_eq(o.value, cli.t->protocol); /* the factory's own protocol */
    for (int i = 0; i < 200 && cli.got_len < 5; i++)
        run_ms(10);
    ck_assert_int_eq(cli.got_len, 5);
    ck_assert(memcmp(cli.got, "hello", 5) == 0);
    ck_assert_int_eq(cli.info_rc, 0);
    ck_assert(cli.info.handshake_done);
    ck_assert_str_eq(cli.info.version, "TLSv1.3");
    ck_assert(cli.info.peer_verified);
    ck_assert_str_eq(cli.info.peer_subject, "CN=localhost");
    ck_assert_str_eq(cli.info.server_name, "localhost");
    ck_assert_int_eq(srv.made, 1);
    ck_assert_str_eq(srv.info.server_name, "localhost");
    ck_assert_str_eq(srv.info.peer_subject, "");
    /* An orderly close: the server hears a clean end. */
    tw_transport_lose_connection(cli.t);
    spin(r, &srv.lost, 3000);
    ck_assert_int_eq(srv.lost_code, TW_EDONE);
    spin(r, &cli.lost, 3000);
    ck_assert_int_eq(cli.lost_code, TW_EDONE);
    tw_listener_close(l);
    tw_tls_context_unref(sctx);
}
END_TEST

START_TEST(test_wrong_hostname_fails_the_connect_with_a_clear_reason)
{
    tw_tls_context *sctx = server_ctx("server.pem", "server.key");
    tw_tls_context *cctx = client_ctx("ca.pem");
    ck_assert_int_eq(tw_tls_context_set_hostname(cctx, "wrong.example"), 0);
    tfactory sf, cf;
    tf_init(&sf, &srv, M_ECHO);
    tf_init(&cf, &cli, M_SEND);
    tw_listener *l;
    int port = listen_tls(sctx, &sf, &l);
    char desc[64];
    snprintf(desc, sizeof desc, "tls:127.0.0.1:%d", port);
    tu_outcome o = {0};
    connect_tls(desc, cctx, &cf, &o);
    spin(r, &o.fired, 5000);
    ck_assert(o.fired && !o.ok);
    ck_assert_int_eq(o.code, TW_ETLS);
    ck_assert_msg(strstr(o.message, "hostname mismatch") != NULL, "%s", o.message);
    ck_assert_int_eq(cli.made, 0);
    ck_assert_int_eq(cf.failed, 1);
    run_ms(50);
    ck_assert_int_eq(cli.destroyed, 1);
    ck_assert_int_eq(srv.made, 0);
    tw_listener_close(l);
    tw_tls_context_unref(cctx);
    tw_tls_context_unref(sctx);
}
END_TEST

START_TEST(test_self_signed_is_refused_unless_trusted)
{
    tw_tls_context *sctx = server_ctx("self.pem", "self.key");
    tfactory sf, cf;
    tf_init(&sf, &srv, M_ECHO);
    tf_init(&cf, &cli, M_SEND);
    tw_listener *l;
    int port = listen_tls(sctx, &sf, &l);
    char desc[512];
    snprintf(desc, sizeof desc, "tls:localhost:%d", port); /* the system's roots */
    tu_outcome o = {0};
    connect_tls(desc, NULL, &cf, &o);
    spin(r, &o.fired, 5000);
    ck_assert(o.fired && !o.ok);
    ck_assert_int_eq(o.code, TW_ETLS);
    ck_assert_msg(strstr(o.message, "self-signed") != NULL, "%s", o.message);

    snprintf(desc, sizeof desc, "tls:localhost:%d:trustRoots=%s", port, tu_tls_cert("self.pem"));
    tu_outcome ok = {0};
    connect_tls(desc, NULL, &cf, &ok);
    spin(r, &ok.fired, 5000);
    ck_assert_msg(ok.ok, "%s", ok.message);
    tw_transport_abort_connection(cli.t);
    spin(r, &cli.lost, 3000);
    tw_listener_close(l);
    tw_tls_context_unref(sctx);
}
END_TEST

START_TEST(test_insecure_client_accepts_any_certificate)
{
    tw_tls_context *sctx = server_ctx("self.pem", "self.key");
    tw_tls_context *cctx = client_ctx(NULL);
    ck_assert_int_eq(tw_tls_context_set_insecure_no_verify(cctx, 1), 0);
    tfactory sf, cf;
    tf_init(&sf, &srv, M_ECHO);
    tf_init(&cf, &cli, M_SEND);
    tw_listener *l;
    int port = listen_tls(sctx, &sf, &l);
    char desc[64];
    snprintf(desc, sizeof desc, "tls:127.0.0.1:%d", port);
    tu_outcome o = {0};
    connect_tls(desc, cctx, &cf, &o);
    spin(r, &o.fired, 5000);
    ck_assert_msg(o.ok, "%s", o.message);
    ck_assert(!cli.info.peer_verified);
    ck_assert_msg(strstr(cli.info.verify_error, "self-signed") != NULL, "%s",
                  cli.info.verify_error);
    tw_transport_abort_connection(cli.t);
    spin(r, &cli.lost, 3000);
    tw_listener_close(l);
    tw_tls_context_unref(cctx);
    tw_tls_context_unref(sctx);
}
END_TEST

START_TEST(test_alpn_picks_the_servers_first_shared_protocol)
{
    tw_tls_context *sctx = server_ctx("server.pem", "server.key");
    tw_tls_context *cctx = client_ctx("ca.pem");
    const char *offered[] = {"spdy/1", "http/1.1", "h2"};
    const char *accepted[] = {"h2", "http/1.1"};
    ck_assert_int_eq(tw_tls_context_set_alpn(cctx, offered, 3), 0);
    ck_assert_int_eq(tw_tls_context_set_alpn(sctx, accepted, 2), 0);
    tfactory sf, cf;
    tf_init(&sf, &srv, M_ECHO);
    tf_init(&cf, &cli, M_SEND);
    tw_listener *l;
    int port = listen_tls(sctx, &sf, &l);
    char desc[64];
    snprintf(desc, sizeof desc, "tls:localhost:%d", port);
    tu_outcome o = {0};
    connect_tls(desc, cctx, &cf, &o);
    spin(r, &o.fired, 5000);
    ck_assert_msg(o.ok, "%s", o.message);
    ck_assert_str_eq(cli.info.alpn, "h2");
    spin(r, &srv.made, 3000);
    ck_assert_str_eq(srv.info.alpn, "h2");
    tw_transport_abort_connection(cli.t);
    spin(r, &cli.lost, 3000);
    tw_listener_close(l);
    tw_tls_context_unref(cctx);
    tw_tls_context_unref(sctx);
}
END_TEST

static tw_tls_context *other_ctx;

static tw_tls_context *choose(const char *name, void *arg)
{
    (void)arg;
    return strcmp(name, "other.test") == 0 ? other_ctx : NULL;
}

START_TEST(test_sni_callback_selects_the_certificate)
{
    tw_tls_context *sctx = server_ctx("server.pem", "server.key");
    other_ctx = server_ctx("other.pem", "other.key");
    ck_assert_int_eq(tw_tls_context_set_sni_callback(sctx, choose, NULL), 0);
    tw_tls_context *cctx = client_ctx("ca.pem");
    ck_assert_int_eq(tw_tls_context_set_hostname(cctx, "other.test"), 0);
    tfactory sf, cf;
    tf_init(&sf, &srv, M_ECHO);
    tf_init(&cf, &cli, M_SEND);
    tw_listener *l;
    int port = listen_tls(sctx, &sf, &l);
    char desc[64];
    snprintf(desc, sizeof desc, "tls:127.0.0.1:%d", port);
    tu_outcome o = {0};
    connect_tls(desc, cctx, &cf, &o);
    spin(r, &o.fired, 5000);
    /* It verifies as other.test only if other.pem was the one presented. */
    ck_assert_msg(o.ok, "%s", o.message);
    ck_assert_str_eq(cli.info.peer_subject, "CN=other.test");
    spin(r, &srv.made, 3000);
    ck_assert_str_eq(srv.info.server_name, "other.test");
    tw_transport_abort_connection(cli.t);
    spin(r, &cli.lost, 3000);
    tw_listener_close(l);
    tw_tls_context_unref(cctx);
    tw_tls_context_unref(other_ctx);
    tw_tls_context_unref(sctx);
}
END_TEST

START_TEST(test_required_client_certificate_is_checked)
{
    char err[TW_TLS_ERRLEN];
    tw_tls_context *sctx = server_ctx("server.pem", "server.key");
    ck_assert_int_eq(tw_tls_context_set_trust_roots(sctx, tu_tls_cert("ca.pem"), err, sizeof err),
                     0);
    ck_assert_int_eq(tw_tls_context_require_client_certificate(sctx, 1), 0);
    tfactory sf, cf;
    tf_init(&sf, &srv, M_ECHO);
    tf_init(&cf, &cli, M_SEND);
    tw_listener *l;
    int port = listen_tls(sctx, &sf, &l);

    /* Without one: refused. TLS 1.3 clients finish first, then hear the alert. */
    char desc[1024];
    snprintf(desc, sizeof desc, "tls:localhost:%d:trustRoots=%s", port, tu_tls_cert("ca.pem"));
    tu_outcome o = {0};
    connect_tls(desc, NULL, &cf, &o);
    spin(r, &o.fired, 5000);
    if (o.ok)
        spin(r, &cli.lost, 5000);
    ck_assert_int_eq(o.ok ? cli.lost_code : o.code, TW_ETLS);
    run_ms(50);
    ck_assert_int_eq(srv.made, 0);

    /* With one the CA signed: accepted, and the server sees who. */
    memset(&cli, 0, sizeof cli);
    snprintf(desc, sizeof desc, "tls:localhost:%d:trustRoots=%s:certificate=%s:privateKey=%s", port,
             tu_tls_cert("ca.pem"), tu_tls_cert("client.pem"), tu_tls_cert("client.key"));
    tu_outcome ok = {0};
    connect_tls(desc, NULL, &cf, &ok);
    spin(r, &ok.fired, 5000);
    ck_assert_msg(ok.ok, "%s", ok.message);
    for (int i = 0; i < 200 && cli.got_len < 5; i++)
        run_ms(10);
    ck_assert_int_eq(cli.got_len, 5);
    ck_assert_int_eq(srv.made, 1);
    ck_assert_str_eq(srv.info.peer_subject, "CN=twine client");
    ck_assert(srv.info.peer_verified);
    tw_transport_abort_connection(cli.t);
    spin(r, &cli.lost, 3000);
    tw_listener_close(l);
    tw_tls_context_unref(sctx);
}
END_TEST

static void start_tls_between_twine_peers(int policies)
{
    char err[TW_TLS_ERRLEN];
    tw_tls_context *sctx = server_ctx("server.pem", "server.key");
    tw_tls_context *cctx = client_ctx("ca.pem");
    ck_assert_int_eq(tw_tls_context_set_hostname(cctx, "localhost"), 0);
    tfactory sf, cf;
    tf_init(&sf, &srv, M_STARTTLS_S);
    tf_init(&cf, &cli, M_STARTTLS_C);
    tw_listener *l;
    tw_address a;
    ck_assert_int_eq(tw_address_from_ip(&a, "127.0.0.1", 0), 0);
    /* Through the policy wrapper too: it drives whatever protocol its
     * transport names, so the TLS layer put there is the one it feeds. */
    tw_factory *served = &sf.base, *wrapped = NULL;
    if (policies) {
        tw_policy_options po;
        tw_policy_options_init(&po);
        po.max_per_peer = 4;
        ck_assert_int_eq(tw_policy_factory_new(r, &sf.base, &po, &wrapped), 0);
        served = wrapped;
    }
    ck_assert_int_eq(tw_listen(r, &a, NULL, served, &l), 0);
    tw_listener_address(l, &a);
    (void)err;
    starttls_server = sctx;
    starttls_client = cctx;
    tw_endpoint e;
    char desc[64];
    snprintf(desc, sizeof desc, "tcp:127.0.0.1:%d", tw_address_port(&a));
    ck_assert_int_eq(tw_endpoint_parse_client(desc, &e, NULL, 0), 0);
    tu_outcome o = {0};
    tu_watch(tw_endpoint_connect(r, &e, &cf.base), &o);
    spin(r, &o.fired, 3000);
    ck_assert(o.ok);
    for (int i = 0; i < 300 && cli.got_len < 6; i++)
        tw_reactor_iterate(r, 0.01);
    ck_assert_int_eq(cli.got_len, 6);
    ck_assert(memcmp(cli.got, "secret", 6) == 0);
    tw_tls_info info;
    ck_assert_int_eq(tw_tls_get_info(cli.t, &info), 0);
    ck_assert(info.handshake_done);
    ck_assert(info.peer_verified);
    tw_transport_lose_connection(cli.t);
    spin(r, &srv.lost, 3000);
    ck_assert_int_eq(srv.lost_code, TW_EDONE);
    tw_listener_close(l);
    run_ms(20);
    tw_factory_free(wrapped);
    tw_tls_context_unref(cctx);
    tw_tls_context_unref(sctx);
}

START_TEST(test_start_tls_switches_a_live_connection)
{
    start_tls_between_twine_peers(0);
}
END_TEST

START_TEST(test_start_tls_works_through_the_policy_wrapper)
{
    start_tls_between_twine_peers(1);
}
END_TEST


/* ------------------------------------------------------------ against a bare OpenSSL peer */

/* An OpenSSL client over one end of a socketpair whose other end a twine
 * TLS server adopted. The test moves the bytes, so it sees the records. */
typedef struct raw {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *in, *out;
    size_t records;     /* application data records read */
    unsigned char hdr[5];
    size_t hdr_have;    /* of the current record's header */
    size_t body_left;   /* of the current record's body */
    int eof;
    char plain[65536];
    size_t plain_len;
    size_t total;       /* plaintext read in all */
    int wrap;           /* keep only the last of it in plain */
    int closed_notify;  /* SSL_read saw close_notify (SSL_ERROR_ZERO_RETURN) */
    int bad_eof;        /* SSL_read failed instead: a FIN without close_notify */
    int wfd;            /* over two pipes, the one written to (fd, non-blocking, is read) */
} raw;

static void raw_count(raw *c, const unsigned char *b, size_t n)
{
    while (n > 0) {
        if (c->body_left > 0) {
            size_t k = n < c->body_left ? n : c->body_left;
            c->body_left -= k;
            b += k;
            n -= k;
            continue;
        }
        c->hdr[c->hdr_have++] = *b++;
        n--;
        if (c->hdr_have == 5) {
            c->hdr_have = 0;
            c->body_left = (size_t)c->hdr[3] << 8 | c->hdr[4];
            if (c->hdr[0] == 23)
                c->records++;
        }
    }
}

/* Send what the client's SSL wrote; once the server is gone (an alert
 * after its FIN), it may find nobody. */
static void raw_flush_out(raw *c)
{
    char buf[16384];
    int n;
    while ((n = BIO_read(c->out, buf, sizeof buf)) > 0)
        if (tu_write_all(c->wfd > 0 ? c->wfd : c->fd, buf, (size_t)n) != 0)
            ck_assert_msg(c->eof, "cannot write to the server: %s", strerror(errno));
}

/* Move bytes both ways once, and read what plaintext there is. */
static void raw_pump(raw *c)
{
    char buf[16384];
    int n;
    raw_flush_out(c);
    ssize_t got;
    while ((got = c->wfd > 0 ? read(c->fd, buf, sizeof buf)
                             : recv(c->fd, buf, sizeof buf, MSG_DONTWAIT)) > 0) {
        raw_count(c, (unsigned char *)buf, (size_t)got);
        BIO_write(c->in, buf, (int)got);
    }
    if (got == 0 && !c->eof) {
        c->eof = 1;
        /* From here an empty BIO is the end, as for a socket: SSL_read
         * tells a clean close (close_notify) from a cut one. */
        BIO_set_mem_eof_return(c->in, 0);
    }
    if (!SSL_is_init_finished(c->ssl)) {
        SSL_do_handshake(c->ssl);
    } else {
        while ((n = SSL_read(c->ssl, c->plain + c->plain_len, (int)(sizeof c->plain - c->plain_len))) > 0) {
            c->plain_len += (size_t)n;
            c->total += (size_t)n;
            if (c->wrap && c->plain_len > sizeof c->plain / 2)
                c->plain_len = 0;
        }
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_ZERO_RETURN)
            c->closed_notify = 1;
        else if (e != SSL_ERROR_WANT_READ && !c->closed_notify)
            c->bad_eof = 1;
    }
    ERR_clear_error();
    raw_flush_out(c);
}

static void raw_spin(raw *c, int ms)
{
    long long end = tu_now_ms() + ms;
    while (tu_now_ms() < end) {
        tw_reactor_iterate(r, 0.002);
        raw_pump(c);
    }
}

/* The raw client over @p fd, connected and not yet in the handshake. */
static void raw_init(raw *c, int fd, int max_version)
{
    c->fd = fd;
    c->ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_max_proto_version(c->ctx, max_version);
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
    c->ssl = SSL_new(c->ctx);
    c->in = BIO_new(BIO_s_mem());
    c->out = BIO_new(BIO_s_mem());
    SSL_set_bio(c->ssl, c->in, c->out);
    SSL_set_connect_state(c->ssl);
    SSL_set_tlsext_host_name(c->ssl, "localhost");
}

/* A twine TLS server of @p mode on one end, the raw client on the other. */
static void raw_start(raw *c, tw_tls_context *sctx, int mode, int max_version, tfactory *sf,
                      tw_factory **wrapped)
{
    memset(c, 0, sizeof *c);
    tf_init(sf, &srv, mode);
    ck_assert_int_eq(tw_tls_factory_new(sctx, NULL, &sf->base, wrapped), 0);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ck_assert_int_eq(tw_transport_adopt(r, sv[0], *wrapped), 0);
    raw_init(c, sv[1], max_version);
}

/* The raw client over TCP to a twine TLS listener on 127.0.0.1:@p port;
 * with @p rcvbuf, a receive buffer that small (so that what the client
 * does not read waits in the server's queue, not in the kernel's). */
static void raw_connect_with(raw *c, int port, int max_version, int rcvbuf)
{
    memset(c, 0, sizeof *c);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    if (rcvbuf > 0)
        ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf), 0);
    tw_address a;
    ck_assert_int_eq(tw_address_from_ip(&a, "127.0.0.1", port), 0);
    ck_assert_int_eq(connect(fd, &a.u.sa, a.len), 0);
    raw_init(c, fd, max_version);
}

static void raw_connect(raw *c, int port, int max_version)
{
    raw_connect_with(c, port, max_version, 0);
}

static void raw_handshake(raw *c)
{
    for (int i = 0; i < 500 && !SSL_is_init_finished(c->ssl); i++)
        raw_spin(c, 5);
    ck_assert(SSL_is_init_finished(c->ssl));
    raw_spin(c, 50); /* TLS 1.3 session tickets */
}

static void raw_send(raw *c, const char *text)
{
    ck_assert_int_gt(SSL_write(c->ssl, text, (int)strlen(text)), 0);
    raw_pump(c);
}

/* Run the loop and the raw client until @p n bytes of plaintext came
 * (the caller asserts how many did). */
static void raw_wait_plain(raw *c, size_t n)
{
    for (int i = 0; i < 200 && c->plain_len < n; i++)
        raw_spin(c, 5);
}

static void raw_stop(raw *c)
{
    SSL_free(c->ssl);
    SSL_CTX_free(c->ctx);
    if (c->fd >= 0)
        close(c->fd);
    if (c->wfd > 0)
        close(c->wfd);
}

static void thousand_writes_make_few_records(int version)
{
    tw_tls_context *sctx = server_ctx("server.pem", "server.key");
    raw c;
    tfactory sf;
    tw_factory *w;
    raw_start(&c, sctx, M_THOUSAND, version, &sf, &w);
    raw_handshake(&c);
    c.records = 0;
    raw_send(&c, "go");
    raw_wait_plain(&c, 1000);
    ck_assert_int_eq(c.plain_len, 1000);
    ck_assert_msg(c.records <= 2, "1000 one-byte writes made %zu records", c.records);
    raw_stop(&c);
    spin(r, &srv.lost, 3000);
    tw_factory_free(w);
    tw_tls_context_unref(sctx);
}

START_TEST(test_thousand_small_writes_make_at_most_two_records_tls13)
{
    thousand_writes_make_few_records(TLS1_3_VERSION);
}
END_TEST

START_TEST(test_thousand_small_writes_make_at_most_two_records_tls12)
{
    thousand_writes_make_few_records(TLS1_2_VERSION);
}
END_TEST

START_TEST(test_garbage_instead_of_client_hello_closes_without_a_protocol)
{
    tw_tls_context *sctx = server_ctx("server.pem", "server.key");
    raw c;
    tfactory sf;
    tw_factory *w;
    raw_start(&c, sctx, M_ECHO, TLS1_3_VERSION, &sf, &w);
    ck_assert_int_eq(tu_write_all(c.fd, "GET / HTTP/1.0\r\n\r\n", 18), 0);
    for (int i = 0; i < 300 && !c.eof; i++) {
        tw_reactor_iterate(r, 0.005);
        char buf[512];
        ssize_t n = recv(c.fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN))
            c.eof = 1;
    }
    ck_assert(c.eof);
    spin(r, &srv.destroyed, 3000);
    ck_assert_int_eq(srv.made, 0);
    ck_assert_int_eq(srv.destroyed, 1);
    raw_stop(&c);
    tw_factory_free(w);
    tw_tls_context_unref(sctx);
}
END_TEST

START_TEST(test_stalled_handshake_times_out)
{
    tw_tls_context *sctx = server_ctx("server.pem", "server.key");
    ck_assert_int_eq(tw_tls_context_set_handshake_timeout(sctx, 0.2), 0);
    raw c;
    tfactory sf;
    tw_factory *w;
    raw_start(&c, sctx, M_ECHO, TLS1_3_VERSION, &sf, &w);
    long long start = tu_now_ms();
    for (int i = 0; i < 400 && !c.eof; i++) {
        tw_reactor_iterate(r, 0.005);
        char buf[512];
        ssize_t n = recv(c.fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN))
            c.eof = 1;
    }
    ck_assert(c.eof);
    ck_assert_int_ge(tu_now_ms() - start, 150);
    spin(r, &srv.destroyed, 3000);
    ck_assert_int_eq(srv.made, 0);
    raw_stop(&c);
    tw_factory_free(w);
    tw_tls_context_unref(sctx);
}
END_TEST

START_TEST(test_close_without_close_notify_is_a_truncation)
{
    tw_tls_context *sctx = server_ctx("server.pem", "server.key");
    raw c;
    tfactory sf;
    tw_factory *w;
    raw_start(&c, sctx, M_ECHO, TLS1_3_VERSION, &sf, &w);
    raw_handshake(&c);
    raw_send(&c, "hi");
    raw_wait_plain(&c, 2);
    ck_assert_int_eq(c.plain_len, 2);
    shutdown(c.fd, SHUT_WR); /* FIN, no close_notify */
    for (int i = 0; i < 300 && !srv.lost; i++)
        raw_spin(&c, 5);
    ck_assert_int_eq(srv.lost, 1);
    ck_assert_int_eq(srv.lost_code, TW_ETLS);
    ck_assert_msg(strstr(srv.lost_message, "close_notify") != NULL, "%s", srv.lost_message);
    raw_stop(&c);
    tw_factory_free(w);
    tw_tls_context_unref(sctx);
}
END_TEST

START_TEST(test_lose_connection_sends_close_notify_then_fin)
{
    tw_tls_context *sctx = server_ctx("server.pem", "server.key");
    raw c;
    tfactory sf;
    tw_factory *w;
    raw_start(&c, sctx, M_BYE, TLS1_3_VERSION, &sf, &w);
    raw_handshake(&c);
    raw_send(&c, "bye");
    for (int i = 0; i < 300 && !c.eof; i++)
        raw_spin(&c, 5);
    ck_assert_int_eq(c.plain_len, 2);
    ck_assert(memcmp(c.plain, "ok", 2) == 0);
    ck_assert(c.closed_notify);
    ck_assert(c.eof);
    raw_stop(&c);
    spin(r, &srv.lost, 3000);
    ck_assert_int_eq(srv.lost_code, TW_EDONE);
    tw_factory_free(w);
    tw_tls_context_unref(sctx);
}
END_TEST

START_TEST(test_peer_close_notify_is_a_half_close_for_aware_protocols)
{
    tw_tls_context *sctx = server_ctx("server.pem", "server.key");
    raw c;
    tfactory sf;
    tw_factory *w;
    raw_start(&c, sctx, M_HALF, TLS1_3_VERSION, &sf, &w);
    raw_handshake(&c);
    raw_send(&c, "ab");
    ck_assert_int_eq(SSL_shutdown(c.ssl), 0); /* our close_notify; we still read */
    raw_pump(&c);
    for (int i = 0; i < 300 && !c.eof; i++)
        raw_spin(&c, 5);
    ck_assert(srv.eof);
    ck_assert_int_eq(c.plain_len, 5);
    ck_assert(memcmp(c.plain, "abeof", 5) == 0);
    ck_assert(c.closed_notify);
    raw_stop(&c);
    spin(r, &srv.lost, 3000);
    ck_assert_int_eq(srv.lost_code, TW_EDONE);
    tw_factory_free(w);
    tw_tls_context_unref(sctx);
}
END_TEST

/* ------------------------------------------------------------ closes the stream decides, over TLS */

/* Run the loop and the raw client until the server's FIN came. */
static void raw_wait_eof(raw *c, int ms)
{
    long long end = tu_now_ms() + ms;
    while (!c->eof && tu_now_ms() < end)
        raw_spin(c, 5);
    raw_pump(c); /* what the FIN ended */
    ck_assert_msg(c->eof, "the server never closed");
}

/* The end an orderly TLS close makes: everything (@p text last, when not
 * NULL), then close_notify (SSL_read's SSL_ERROR_ZERO_RETURN, not an
 * unexpected EOF), then the FIN. */
static void assert_clean_end(const raw *c, const char *text)
{
    if (text != NULL) {
        size_t n = strlen(text);
        ck_assert_uint_ge(c->plain_len, n);
        ck_assert_msg(memcmp(c->plain + c->plain_len - n, text, n) == 0, "got '%.*s'",
                      (int)c->plain_len, c->plain);
    }
    ck_assert_msg(c->closed_notify, "FIN without close_notify: a truncation to the peer");
    ck_assert(!c->bad_eof);
    ck_assert(c->eof);
}

static unsigned long long closed_as(tw_listener *l, tw_close_reason why)
{
    tw_conn_stats st;
    ck_assert_int_eq(tw_listener_stats(l, &st), 0);
    return st.closed[why];
}

/* One connection to @p port: a handshake offering @p sess (when not NULL;
 * with @p tickets 0 the client takes no ticket), an echo, an orderly
 * close. @return the session it ended with, the caller's to free; *@p
 * reused says whether @p sess was resumed. */
static SSL_SESSION *session_round(int port, int version, int tickets, SSL_SESSION *sess,
                                  int *reused)
{
    int lost = srv.lost;
    raw c;
    raw_connect(&c, port, version);
    if (!tickets)
        SSL_set_options(c.ssl, SSL_OP_NO_TICKET);
    if (sess != NULL)
        ck_assert_int_eq(SSL_set_session(c.ssl, sess), 1);
    raw_handshake(&c);
    raw_send(&c, "ping");
    raw_wait_plain(&c, 4);
    ck_assert_int_eq(c.plain_len, 4);
    ck_assert_int_eq(SSL_version(c.ssl), version);
    *reused = SSL_session_reused(c.ssl);
    SSL_SESSION *now = SSL_get1_session(c.ssl);
    ck_assert_ptr_nonnull(now);
    SSL_shutdown(c.ssl);
    raw_pump(&c);
    raw_stop(&c);
    for (int i = 0; i < 600 && srv.lost == lost; i++)
        tw_reactor_iterate(r, 0.005);
    ck_assert_int_eq(srv.lost, lost + 1);
    return now;
}

/* A client that comes back with the session of its last connection
 * resumes it: through a TLS 1.3 ticket, or, under TLS 1.2, the ticket or
 * the server's session cache (the client below takes no ticket). */
static void resumes(int version, int tickets)
{
    tw_tls_context *sctx = server_ctx("server.pem", "server.key");
    tfactory sf;
    tf_init(&sf, &srv, M_ECHO);
    tw_listener *l;
    int port = listen_tls(sctx, &sf, &l);
    int reused;
    SSL_SESSION *first = session_round(port, version, tickets, NULL, &reused);
    ck_assert(!reused);
    ck_assert(SSL_SESSION_is_resumable(first));
    SSL_SESSION *second = session_round(port, version, tickets, first, &reused);
    ck_assert_msg(reused, "the session was not resumed");
    SSL_SESSION_free(first);
    SSL_SESSION_free(second);
    tw_listener_close(l);
    tw_tls_context_unref(sctx);
}

START_TEST(test_tls13_sessions_resume_through_tickets)
{
    resumes(TLS1_3_VERSION, 1);
}
END_TEST

START_TEST(test_tls12_sessions_resume_through_tickets)
{
    resumes(TLS1_2_VERSION, 1);
}
END_TEST

START_TEST(test_tls12_sessions_resume_through_the_server_cache)
{
    resumes(TLS1_2_VERSION, 0);
}
END_TEST

/* Sleep until @p into seconds after the wall clock's next multiple of
 * @p period. */
static void sleep_into_next_period(double period, double into)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double now = (double)ts.tv_sec + ts.tv_nsec / 1e9;
    double until = (floor(now / period) + 1) * period + into;
    double wait = until - now;
    struct timespec d = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
    while (nanosleep(&d, &d) < 0 && errno == EINTR) {
    }
}

/* Ticket keys turn with the period: a ticket resumes in the period it
 * was sealed in and in the next, not after. */
START_TEST(test_session_ticket_keys_turn_over_each_period)
{
    tw_tls_context *sctx = server_ctx("server.pem", "server.key");
    ck_assert_int_eq(tw_tls_context_set_ticket_key_period(sctx, 0.5), -EINVAL);
    ck_assert_int_eq(tw_tls_context_set_ticket_key_period(sctx, NAN), -EINVAL);
    tw_tls_context *cctx = tw_tls_context_new(TW_TLS_CLIENT, NULL, 0);
    ck_assert_int_eq(tw_tls_context_set_ticket_key_period(cctx, 2), -EINVAL);
    tw_tls_context_unref(cctx);
    const double period = 2;
    ck_assert_int_eq(tw_tls_context_set_ticket_key_period(sctx, period), 0);
    tfactory sf;
    tf_init(&sf, &srv, M_ECHO);
    tw_listener *l;
    int port = listen_tls(sctx, &sf, &l);
    int reused;
    sleep_into_next_period(period, 0.05);
    SSL_SESSION *sealed = session_round(port, TLS1_3_VERSION, 1, NULL, &reused);
    ck_assert(!reused);
    sleep_into_next_period(period, 0.05);
    SSL_SESSION *renewed = session_round(port, TLS1_3_VERSION, 1, sealed, &reused);
    ck_assert_msg(reused, "a ticket of the last period was refused");
    sleep_into_next_period(period, 0.05);
    SSL_SESSION *again = session_round(port, TLS1_3_VERSION, 1, renewed, &reused);
    ck_assert_msg(reused, "the renewed ticket was refused");
    SSL_SESSION *late = session_round(port, TLS1_3_VERSION, 1, sealed, &reused);
    ck_assert_msg(!reused, "a ticket two periods old still opened");
    SSL_SESSION_free(sealed);
    SSL_SESSION_free(renewed);
    SSL_SESSION_free(again);
    SSL_SESSION_free(late);
    tw_listener_close(l);
    tw_tls_context_unref(sctx);
}
END_TEST

START_TEST(test_idle_timeout_over_tls_sends_close_notify_then_fin)
{
    tw_tls_context *sctx = server_ctx("server.pem", "server.key");
    tfactory sf;
    tf_init(&sf, &srv, M_WELCOME);
    tw_listen_options o;
    tw_listen_options_init(&o);
    o.idle_timeout = 0.3;
    tw_listener *l;
    int port = listen_tls_with(sctx, &o, &sf, &l);
    raw c;
    raw_connect(&c, port, TLS1_3_VERSION);
    raw_handshake(&c);
    raw_wait_eof(&c, 5000);
    assert_clean_end(&c, "welcome");
    spin(r, &srv.lost, 3000);
    ck_assert_int_eq(srv.lost_code, TW_EIDLE);
    ck_assert_uint_eq(closed_as(l, TW_CLOSE_IDLE), 1);
    raw_stop(&c);
    tw_listener_close(l);
    tw_tls_context_unref(sctx);
}
END_TEST

START_TEST(test_graceful_stop_over_tls_sends_the_queue_then_close_notify_then_fin)
{
    tw_tls_context *sctx = server_ctx("server.pem", "server.key");
    tfactory sf;
    tf_init(&sf, &srv, M_FLOOD);
    tw_listener *l;
    int port = listen_tls(sctx, &sf, &l);
    raw c;
    raw_connect_with(&c, port, TLS1_3_VERSION, 16384);
    raw_handshake(&c);
    c.wrap = 1;
    raw_send(&c, "go");
    /* The server writes 1 MiB that the client does not read yet: most of
     * it waits in the server's queue when the stop begins. */
    for (int i = 0; i < 200 && srv.pauses == 0; i++)
        tw_reactor_iterate(r, 0.005);
    ck_assert_int_eq(srv.pauses, 1);
    tw_reactor_set_shutdown_timeout(r, 20);
    tw_reactor_stop(r);
    raw_wait_eof(&c, 15000);
    ck_assert_uint_eq(c.total, 1024 * 1024);
    assert_clean_end(&c, NULL);
    spin(r, &srv.lost, 3000);
    ck_assert_int_eq(srv.lost_code, TW_EDONE);
    ck_assert_uint_eq(closed_as(l, TW_CLOSE_SHUTDOWN), 1);
    raw_stop(&c);
    tw_listener_close(l);
    tw_tls_context_unref(sctx);
}
END_TEST

START_TEST(test_input_budget_over_tls_sends_close_notify_then_fin)
{
    tw_tls_context *sctx = server_ctx("server.pem", "server.key");
    tw_reactor_set_input_budget(r, 16384);
    tfactory sf;
    tf_init(&sf, &srv, M_HOARD);
    tw_listener *l;
    int port = listen_tls(sctx, &sf, &l);
    raw c;
    raw_connect(&c, port, TLS1_3_VERSION);
    raw_handshake(&c);
    raw_send(&c, "first");
    raw_wait_plain(&c, 3);
    /* The protocol holds all it is given: past the budget, it is closed. */
    static char big[40000];
    memset(big, 'b', sizeof big);
    ck_assert_int_eq(SSL_write(c.ssl, big, (int)sizeof big), (int)sizeof big);
    raw_wait_eof(&c, 5000);
    ck_assert_uint_eq(c.plain_len, 3);
    assert_clean_end(&c, "ack");
    spin(r, &srv.lost, 3000);
    ck_assert_int_eq(srv.lost_code, -ENOBUFS);
    ck_assert_uint_eq(closed_as(l, TW_CLOSE_OVERLOAD), 1);
    raw_stop(&c);
    tw_listener_close(l);
    tw_tls_context_unref(sctx);
}
END_TEST

START_TEST(test_graceful_stop_over_tls_behind_a_proxy_header_sends_close_notify)
{
    tw_tls_context *sctx = server_ctx("server.pem", "server.key");
    tfactory sf;
    tf_init(&sf, &srv, M_WELCOME);
    tw_listen_options o;
    tw_listen_options_init(&o);
    o.proxy_protocol = 1;
    tw_listener *l;
    int port = listen_tls_with(sctx, &o, &sf, &l);
    raw c;
    memset(&c, 0, sizeof c);
    int fd = tu_connect("127.0.0.1", port);
    ck_assert_int_ge(fd, 0);
    const char *header = "PROXY TCP4 192.0.2.1 192.0.2.2 40000 443\r\n";
    ck_assert_int_eq(tu_write_all(fd, header, strlen(header)), 0);
    raw_init(&c, fd, TLS1_3_VERSION);
    raw_handshake(&c);
    tw_reactor_stop(r);
    raw_wait_eof(&c, 5000);
    assert_clean_end(&c, "welcome");
    spin(r, &srv.lost, 3000);
    ck_assert_uint_eq(closed_as(l, TW_CLOSE_SHUTDOWN), 1);
    raw_stop(&c);
    tw_listener_close(l);
    tw_tls_context_unref(sctx);
}
END_TEST

/* A TLS session over two pipes (the pipe transport, as over a process's
 * standard IO): a graceful stop ends it as over a socket, close_notify
 * before the pipe closes. */
START_TEST(test_graceful_stop_over_tls_on_pipes_sends_close_notify)
{
    tw_tls_context *sctx = server_ctx("server.pem", "server.key");
    tfactory sf;
    tf_init(&sf, &srv, M_WELCOME);
    tw_factory *w;
    ck_assert_int_eq(tw_tls_factory_new(sctx, NULL, &sf.base, &w), 0);
    int up[2], down[2];
    ck_assert_int_eq(pipe(up), 0);
    ck_assert_int_eq(pipe(down), 0);
    ck_assert_int_eq(tw_transport_adopt_pipe(r, up[0], down[1], w), 0);
    raw c;
    memset(&c, 0, sizeof c);
    raw_init(&c, down[0], TLS1_3_VERSION);
    c.wfd = up[1];
    ck_assert_int_eq(fcntl(down[0], F_SETFL, O_NONBLOCK), 0);
    signal(SIGPIPE, SIG_IGN); /* a server gone too early fails the test, not the process */
    raw_handshake(&c);
    tw_reactor_stop(r);
    raw_wait_eof(&c, 5000);
    assert_clean_end(&c, "welcome");
    spin(r, &srv.lost, 3000);
    ck_assert_int_eq(srv.lost_code, TW_EDONE);
    raw_stop(&c);
    tw_factory_free(w);
    tw_tls_context_unref(sctx);
}
END_TEST

START_TEST(test_graceful_stop_after_start_tls_through_the_policy_wrapper_sends_close_notify)
{
    tw_tls_context *sctx = server_ctx("server.pem", "server.key");
    starttls_server = sctx;
    tfactory sf;
    tf_init(&sf, &srv, M_STARTTLS_S);
    tw_policy_options po;
    tw_policy_options_init(&po);
    tw_factory *pf;
    ck_assert_int_eq(tw_policy_factory_new(r, &sf.base, &po, &pf), 0);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ck_assert_int_eq(tw_transport_adopt(r, sv[0], pf), 0);
    ck_assert_int_eq(tu_write_all(sv[1], "STARTTLS\n", 9), 0);
    char go[3];
    size_t have = 0;
    for (int i = 0; i < 400 && have < 3; i++) {
        tw_reactor_iterate(r, 0.005);
        ssize_t n = recv(sv[1], go + have, 3 - have, MSG_DONTWAIT);
        if (n > 0)
            have += (size_t)n;
    }
    ck_assert_uint_eq(have, 3);
    ck_assert(memcmp(go, "GO\n", 3) == 0);
    raw c;
    memset(&c, 0, sizeof c);
    raw_init(&c, sv[1], TLS1_3_VERSION);
    raw_handshake(&c);
    raw_send(&c, "secret");
    raw_wait_plain(&c, 6);
    ck_assert_uint_eq(c.plain_len, 6);
    tw_reactor_stop(r);
    raw_wait_eof(&c, 5000);
    assert_clean_end(&c, "secret");
    spin(r, &srv.lost, 3000);
    raw_stop(&c);
    tw_factory_free(pf);
    tw_tls_context_unref(sctx);
}
END_TEST

START_TEST(test_a_reason_named_over_tls_is_the_one_counted)
{
    tw_tls_context *sctx = server_ctx("server.pem", "server.key");
    tfactory sf;
    tf_init(&sf, &srv, M_LINE);
    tw_listener *l;
    int port = listen_tls(sctx, &sf, &l);
    raw c;
    raw_connect(&c, port, TLS1_3_VERSION);
    raw_handshake(&c);
    raw_send(&c, "short\r\n");
    raw_wait_plain(&c, 7);
    /* Longer than the receiver's 8 bytes: it names too_long and closes. */
    raw_send(&c, "much-too-long\r\n");
    raw_wait_eof(&c, 5000);
    assert_clean_end(&c, "short\r\n");
    spin(r, &srv.lost, 3000);
    ck_assert_uint_eq(closed_as(l, TW_CLOSE_TOO_LONG), 1);
    ck_assert_uint_eq(closed_as(l, TW_CLOSE_LOCAL), 0);
    raw_stop(&c);
    tw_listener_close(l);
    tw_tls_context_unref(sctx);
}
END_TEST

START_TEST(test_a_peers_orderly_close_over_tls_counts_as_the_peers)
{
    tw_tls_context *sctx = server_ctx("server.pem", "server.key");
    tfactory sf;
    tf_init(&sf, &srv, M_ECHO);
    tw_listener *l;
    int port = listen_tls(sctx, &sf, &l);
    raw c;
    raw_connect(&c, port, TLS1_3_VERSION);
    raw_handshake(&c);
    raw_send(&c, "hi");
    raw_wait_plain(&c, 2);
    ck_assert_int_ge(SSL_shutdown(c.ssl), 0);
    raw_pump(&c);
    shutdown(c.fd, SHUT_WR);
    raw_wait_eof(&c, 5000);
    assert_clean_end(&c, "hi");
    spin(r, &srv.lost, 3000);
    ck_assert_int_eq(srv.lost_code, TW_EDONE);
    ck_assert_uint_eq(closed_as(l, TW_CLOSE_PEER), 1);
    ck_assert_uint_eq(closed_as(l, TW_CLOSE_LOCAL), 0);
    raw_stop(&c);
    tw_listener_close(l);
    tw_tls_context_unref(sctx);
}
END_TEST

START_TEST(test_lose_write_connection_over_tls_sends_close_notify_then_fin_and_reads_on)
{
    tw_tls_context *sctx = server_ctx("server.pem", "server.key");
    raw c;
    tfactory sf;
    tw_factory *w;
    raw_start(&c, sctx, M_HALF_WRITE, TLS1_3_VERSION, &sf, &w);
    raw_handshake(&c);
    raw_send(&c, "half");
    raw_wait_eof(&c, 5000);
    assert_clean_end(&c, "bye");
    ck_assert_uint_eq(c.plain_len, 3);
    ck_assert_int_eq(srv.write_lost, 1);
    ck_assert_int_eq(srv.lost, 0);
    /* The peer may still send after our close_notify, and is heard. */
    raw_send(&c, "after");
    for (int i = 0; i < 200 && srv.got_len < 9; i++)
        raw_spin(&c, 5);
    ck_assert_uint_eq(srv.got_len, 9);
    ck_assert(memcmp(srv.got, "halfafter", 9) == 0);
    ck_assert_int_eq(srv.lost, 0);
    /* Then its own close ends the connection in order. */
    ck_assert_int_ge(SSL_shutdown(c.ssl), 0);
    raw_pump(&c);
    shutdown(c.fd, SHUT_WR);
    for (int i = 0; i < 600 && !srv.lost; i++)
        raw_spin(&c, 5);
    ck_assert_int_eq(srv.lost, 1);
    ck_assert_int_eq(srv.lost_code, TW_EDONE);
    raw_stop(&c);
    tw_factory_free(w);
    tw_tls_context_unref(sctx);
}
END_TEST

/* ------------------------------------------------------------ against openssl s_client/s_server and Twisted */

/* A peer program, its standard input and its merged output. */
typedef struct child {
    pid_t pid;
    int in, out;
    char buf[65536];
    size_t len;
} child;

static void child_start(child *c, const char *const *argv)
{
    memset(c, 0, sizeof *c);
    int in[2], out[2];
    ck_assert_int_eq(pipe(in), 0);
    ck_assert_int_eq(pipe(out), 0);
    c->pid = fork();
    ck_assert_int_ge(c->pid, 0);
    if (c->pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(out[1], 2);
        close(in[1]);
        close(out[0]);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    c->in = in[1];
    c->out = out[0];
    fcntl(c->out, F_SETFL, fcntl(c->out, F_GETFL) | O_NONBLOCK);
}

static void child_read(child *c)
{
    ssize_t n;
    while (c->len + 1 < sizeof c->buf &&
           (n = read(c->out, c->buf + c->len, sizeof c->buf - 1 - c->len)) > 0)
        c->len += (size_t)n;
    c->buf[c->len] = '\0';
}

/* Run the loop until the peer printed @p needle; @return whether it did. */
static int child_wait_for(child *c, const char *needle, int ms)
{
    long long end = tu_now_ms() + ms;
    while (tu_now_ms() < end) {
        child_read(c);
        if (strstr(c->buf, needle) != NULL)
            return 1;
        tw_reactor_iterate(r, 0.005);
    }
    child_read(c);
    return strstr(c->buf, needle) != NULL;
}

static void child_say(child *c, const char *text)
{
    size_t len = strlen(text);
    ck_assert_int_eq(write(c->in, text, len), (ssize_t)len); /* a pipe takes it whole */
}

static void child_stop(child *c)
{
    close(c->in);
    kill(c->pid, SIGTERM);
    if (tu_wait_child(c->pid, 3000) < 0)
        kill(c->pid, SIGKILL);
    close(c->out);
}

static const char *python(void)
{
    const char *py = getenv("PYTHON_TWISTED");
    return py != NULL && *py != '\0' ? py : "/usr/bin/python3";
}

static const char *amp_tls_peer(void)
{
    static char path[PATH_MAX];
    const char *src = getenv("TWINE_SRCDIR");
    snprintf(path, sizeof path, "%s/tests/interop/amp_tls.py", src != NULL ? src : ".");
    return path;
}

static const char *tls_peer(void)
{
    static char path[PATH_MAX];
    const char *src = getenv("TWINE_SRCDIR");
    snprintf(path, sizeof path, "%s/tests/interop/tls_peer.py", src != NULL ? src : ".");
    return path;
}

/* openssl s_server on a free port with @p extra arguments (NULL-ended). */
static int s_server(child *c, const char *certname, const char *keyname, const char *const *extra)
{
    int port = tu_closed_port();
    char accept[32];
    snprintf(accept, sizeof accept, "127.0.0.1:%d", port);
    const char *argv[32] = {"openssl", "s_server", "-accept", accept, "-rev", "-cert",
                            tu_tls_cert(certname), "-key", tu_tls_cert(keyname)};
    int n = 9;
    for (int i = 0; extra != NULL && extra[i] != NULL && n < 30; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    child_start(c, argv);
    ck_assert_msg(child_wait_for(c, "ACCEPT", 5000), "s_server did not start: %s", c->buf);
    return port;
}

/* Connect twine's client (mode M_SENDLINE) to 127.0.0.1:@p port as localhost. */
static void twine_client(int port, tw_tls_context *cctx, tfactory *cf, tu_outcome *o)
{
    char desc[64];
    snprintf(desc, sizeof desc, "tls:127.0.0.1:%d", port);
    tf_init(cf, &cli, M_SENDLINE);
    connect_tls(desc, cctx, cf, o);
    spin(r, &o->fired, 5000);
}

static void wait_got(side *s, const char *text)
{
    for (int i = 0; i < 500; i++) {
        s->got[s->got_len < sizeof s->got ? s->got_len : sizeof s->got - 1] = '\0';
        if (strstr(s->got, text) != NULL)
            return;
        run_ms(10);
    }
    ck_abort_msg("never received '%s' (got '%.*s')", text, (int)s->got_len, s->got);
}

static void twine_client_to_s_server(const char *version, const char *expect)
{
    child c;
    const char *extra[] = {version, "-alpn", "h2", NULL};
    int port = s_server(&c, "server.pem", "server.key", extra);
    tw_tls_context *cctx = client_ctx("ca.pem");
    ck_assert_int_eq(tw_tls_context_set_hostname(cctx, "localhost"), 0);
    const char *alpn[] = {"h2"};
    ck_assert_int_eq(tw_tls_context_set_alpn(cctx, alpn, 1), 0);
    tfactory cf;
    tu_outcome o = {0};
    twine_client(port, cctx, &cf, &o);
    ck_assert_msg(o.ok, "%s", o.message);
    ck_assert_str_eq(cli.info.version, expect);
    ck_assert_str_eq(cli.info.alpn, "h2");
    ck_assert(cli.info.peer_verified);
    wait_got(&cli, "olleh");
    tw_transport_lose_connection(cli.t);
    spin(r, &cli.lost, 3000);
    child_stop(&c);
    tw_tls_context_unref(cctx);
}

START_TEST(test_twine_client_to_openssl_server_tls13)
{
    twine_client_to_s_server("-tls1_3", "TLSv1.3");
}
END_TEST

START_TEST(test_twine_client_to_openssl_server_tls12)
{
    twine_client_to_s_server("-tls1_2", "TLSv1.2");
}
END_TEST

/* A server twine's client must refuse, with @p why in the failure. */
static void twine_client_refuses(const char *certname, const char *keyname, const char *host,
                                 const char *roots, const char *why)
{
    child c;
    int port = s_server(&c, certname, keyname, NULL);
    tw_tls_context *cctx = client_ctx(roots);
    ck_assert_int_eq(tw_tls_context_set_hostname(cctx, host), 0);
    tfactory cf;
    tu_outcome o = {0};
    twine_client(port, cctx, &cf, &o);
    ck_assert(o.fired && !o.ok);
    ck_assert_int_eq(o.code, TW_ETLS);
    ck_assert_msg(strstr(o.message, why) != NULL, "'%s' does not say '%s'", o.message, why);
    ck_assert_int_eq(cli.made, 0);
    child_stop(&c);
    tw_tls_context_unref(cctx);
}

START_TEST(test_twine_client_refuses_wrong_hostname_from_openssl_server)
{
    twine_client_refuses("server.pem", "server.key", "wrong.example", "ca.pem",
                         "hostname mismatch");
}
END_TEST

START_TEST(test_twine_client_refuses_expired_openssl_server)
{
    twine_client_refuses("expired.pem", "expired.key", "localhost", "ca.pem",
                         "certificate has expired");
}
END_TEST

START_TEST(test_twine_client_refuses_self_signed_openssl_server_unless_trusted)
{
    twine_client_refuses("self.pem", "self.key", "localhost", NULL, "self-signed");
    child c;
    int port = s_server(&c, "self.pem", "self.key", NULL);
    tw_tls_context *cctx = client_ctx("self.pem");
    ck_assert_int_eq(tw_tls_context_set_hostname(cctx, "localhost"), 0);
    tfactory cf;
    tu_outcome o = {0};
    twine_client(port, cctx, &cf, &o);
    ck_assert_msg(o.ok, "%s", o.message);
    wait_got(&cli, "olleh");
    tw_transport_abort_connection(cli.t);
    spin(r, &cli.lost, 3000);
    child_stop(&c);
    tw_tls_context_unref(cctx);
}
END_TEST

START_TEST(test_twine_client_certificate_to_openssl_server)
{
    const char *extra[] = {"-Verify", "1", "-CAfile", tu_tls_cert("ca.pem"), NULL};
    char err[TW_TLS_ERRLEN];
    /* Without one the server refuses (TLS 1.3: after the client finished). */
    child c;
    int port = s_server(&c, "server.pem", "server.key", extra);
    tw_tls_context *cctx = client_ctx("ca.pem");
    ck_assert_int_eq(tw_tls_context_set_hostname(cctx, "localhost"), 0);
    tfactory cf;
    tu_outcome o = {0};
    twine_client(port, cctx, &cf, &o);
    if (o.ok)
        spin(r, &cli.lost, 5000);
    ck_assert_int_eq(o.ok ? cli.lost_code : o.code, TW_ETLS);
    child_stop(&c);
    /* With one the CA signed, it answers. */
    memset(&cli, 0, sizeof cli);
    port = s_server(&c, "server.pem", "server.key", extra);
    ck_assert_int_eq(tw_tls_context_use_certificate(cctx, tu_tls_cert("client.pem"),
                                                    tu_tls_cert("client.key"),
                                                    NULL, err, sizeof err),
                     0);
    tu_outcome ok = {0};
    twine_client(port, cctx, &cf, &ok);
    ck_assert_msg(ok.ok, "%s", ok.message);
    wait_got(&cli, "olleh");
    tw_transport_abort_connection(cli.t);
    spin(r, &cli.lost, 3000);
    child_stop(&c);
    tw_tls_context_unref(cctx);
}
END_TEST

/* openssl s_client against an echo server of twine's with @p sctx. */
static void s_client(child *c, int port, const char *const *extra)
{
    char connect[32];
    snprintf(connect, sizeof connect, "127.0.0.1:%d", port);
    const char *argv[32] = {"openssl", "s_client", "-connect", connect, "-CAfile",
                            tu_tls_cert("ca.pem")};
    int n = 6;
    for (int i = 0; extra != NULL && extra[i] != NULL && n < 30; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    child_start(c, argv);
}

static void openssl_client_to_twine(const char *version, const char *expect)
{
    tw_tls_context *sctx = server_ctx("server.pem", "server.key");
    const char *alpn[] = {"h2", "http/1.1"};
    ck_assert_int_eq(tw_tls_context_set_alpn(sctx, alpn, 2), 0);
    tfactory sf;
    tf_init(&sf, &srv, M_ECHO);
    tw_listener *l;
    int port = listen_tls(sctx, &sf, &l);
    child c;
    const char *extra[] = {version, "-servername", "localhost", "-verify_return_error",
                           "-alpn", "http/1.1", NULL};
    s_client(&c, port, extra);
    ck_assert_msg(child_wait_for(&c, "Verify return code: 0 (ok)", 5000), "%s", c.buf);
    ck_assert_msg(strstr(c.buf, expect) != NULL, "no '%s' in %s", expect, c.buf);
    ck_assert_msg(strstr(c.buf, "ALPN protocol: http/1.1") != NULL, "%s", c.buf);
    child_say(&c, "ping-twine\n");
    ck_assert_msg(child_wait_for(&c, "ping-twine\n", 5000), "%s", c.buf);
    ck_assert_str_eq(srv.info.alpn, "http/1.1");
    child_stop(&c);
    spin(r, &srv.lost, 3000);
    tw_listener_close(l);
    tw_tls_context_unref(sctx);
}

START_TEST(test_openssl_client_to_twine_server_tls13)
{
    openssl_client_to_twine("-tls1_3", "New, TLSv1.3");
}
END_TEST

START_TEST(test_openssl_client_to_twine_server_tls12)
{
    openssl_client_to_twine("-tls1_2", "New, TLSv1.2");
}
END_TEST

START_TEST(test_openssl_client_sni_selects_twine_certificate)
{
    tw_tls_context *sctx = server_ctx("server.pem", "server.key");
    other_ctx = server_ctx("other.pem", "other.key");
    ck_assert_int_eq(tw_tls_context_set_sni_callback(sctx, choose, NULL), 0);
    tfactory sf;
    tf_init(&sf, &srv, M_ECHO);
    tw_listener *l;
    int port = listen_tls(sctx, &sf, &l);
    child c;
    const char *extra[] = {"-servername", "other.test", "-verify_hostname", "other.test",
                           "-verify_return_error", NULL};
    s_client(&c, port, extra);
    ck_assert_msg(child_wait_for(&c, "Verify return code: 0 (ok)", 5000), "%s", c.buf);
    ck_assert_msg(strstr(c.buf, "CN = other.test") != NULL, "%s", c.buf);
    child_stop(&c);
    spin(r, &srv.lost, 3000);
    tw_listener_close(l);
    tw_tls_context_unref(other_ctx);
    tw_tls_context_unref(sctx);
}
END_TEST

START_TEST(test_openssl_client_certificate_required_by_twine)
{
    char err[TW_TLS_ERRLEN];
    tw_tls_context *sctx = server_ctx("server.pem", "server.key");
    ck_assert_int_eq(tw_tls_context_set_trust_roots(sctx, tu_tls_cert("ca.pem"), err, sizeof err),
                     0);
    ck_assert_int_eq(tw_tls_context_require_client_certificate(sctx, 1), 0);
    tfactory sf;
    tf_init(&sf, &srv, M_ECHO);
    tw_listener *l;
    int port = listen_tls(sctx, &sf, &l);
    child c;
    const char *none[] = {"-servername", "localhost", NULL};
    s_client(&c, port, none);
    child_say(&c, "x\n");
    ck_assert_msg(child_wait_for(&c, "certificate required", 5000), "%s", c.buf);
    child_stop(&c);
    ck_assert_int_eq(srv.made, 0);
    const char *with[] = {"-servername", "localhost", "-cert", tu_tls_cert("client.pem"), "-key",
                          tu_tls_cert("client.key"), NULL};
    s_client(&c, port, with);
    child_say(&c, "from-a-client\n");
    ck_assert_msg(child_wait_for(&c, "from-a-client\n", 5000), "%s", c.buf);
    ck_assert_int_eq(srv.made, 1);
    ck_assert_str_eq(srv.info.peer_subject, "CN=twine client");
    child_stop(&c);
    spin(r, &srv.lost, 3000);
    tw_listener_close(l);
    tw_tls_context_unref(sctx);
}
END_TEST

/* Twisted's peer in @p mode, waiting for its "PORT n". @return n. */
static int twisted_server(child *c, const char *mode)
{
    const char *argv[] = {python(),
                          tls_peer(),
                          mode,
                          tu_tls_cert("server.pem"),
                          tu_tls_cert("server.key"),
                          NULL};
    child_start(c, argv);
    ck_assert_msg(child_wait_for(c, "PORT ", 15000), "Twisted did not start: %s", c->buf);
    int port = 0;
    ck_assert_int_eq(sscanf(strstr(c->buf, "PORT "), "PORT %d", &port), 1);
    return port;
}

START_TEST(test_twine_client_to_twisted_tls_server)
{
    child c;
    int port = twisted_server(&c, "server");
    tw_tls_context *cctx = client_ctx("ca.pem");
    ck_assert_int_eq(tw_tls_context_set_hostname(cctx, "localhost"), 0);
    tfactory cf;
    tu_outcome o = {0};
    twine_client(port, cctx, &cf, &o);
    ck_assert_msg(o.ok, "%s", o.message);
    wait_got(&cli, "hello\n");
    tw_transport_lose_connection(cli.t);
    spin(r, &cli.lost, 3000);
    ck_assert_int_eq(cli.lost_code, TW_EDONE);
    child_stop(&c);
    tw_tls_context_unref(cctx);
}
END_TEST

/* twine's line client: a line receiver over a tls: client endpoint. It
 * sends the lines in connection_made and keeps what comes back. */
#define LINES 5
static char line_out[LINES][10000];
static size_t line_out_len[LINES];

typedef struct line_client {
    tw_protocol base;
    tw_line_receiver lr;
    char got[LINES + 1][10016];
    size_t got_len[LINES + 1];
    int lines, made, lost, lost_code;
} line_client;

static line_client lc;

static void lc_line(tw_line_receiver *lr, const char *line, size_t len)
{
    line_client *c = tw_container_of(lr, line_client, lr);
    ck_assert_int_le(c->lines, LINES);
    ck_assert_uint_le(len, sizeof c->got[0]);
    memcpy(c->got[c->lines], line, len);
    c->got_len[c->lines++] = len;
    if (c->lines == LINES + 1)
        tw_transport_lose_connection(c->base.transport);
}

static const tw_line_receiver_ops lc_line_ops = {.line_received = lc_line};

static void lc_made(tw_protocol *p)
{
    line_client *c = tw_container_of(p, line_client, base);
    c->made = 1;
    for (int i = 0; i < LINES; i++)
        ck_assert_int_eq(tw_line_receiver_send_line(&c->lr, line_out[i], line_out_len[i]), 0);
}

static void lc_data(tw_protocol *p, const void *data, size_t len)
{
    line_client *c = tw_container_of(p, line_client, base);
    tw_line_receiver_data_received(&c->lr, data, len);
}

static void lc_lost(tw_protocol *p, const tw_failure *reason)
{
    line_client *c = tw_container_of(p, line_client, base);
    c->lost = 1;
    c->lost_code = tw_failure_code(reason);
}

static void lc_destroy(tw_protocol *p)
{
    tw_line_receiver_cleanup(&tw_container_of(p, line_client, base)->lr);
}

static const tw_protocol_ops lc_ops = {.connection_made = lc_made,
                                       .data_received = lc_data,
                                       .connection_lost = lc_lost,
                                       .destroy = lc_destroy};

static tw_protocol *lc_build(tw_factory *f, const tw_address *peer)
{
    (void)f, (void)peer;
    memset(&lc, 0, sizeof lc);
    lc.base.ops = &lc_ops;
    tw_line_receiver_init(&lc.lr, &lc.base, &lc_line_ops);
    return &lc.base;
}

static const tw_factory_ops lc_factory_ops = {.build_protocol = lc_build};

START_TEST(test_twine_line_client_to_twisted_tls_line_server)
{
    /* Every byte but CR and LF; a lone LF and a lone CR; an empty line; a
     * long one; and a plain one. */
    size_t n = 0;
    for (int b = 0; b < 256; b++)
        if (b != '\r' && b != '\n')
            line_out[0][n++] = (char)b;
    line_out_len[0] = n;
    strcpy(line_out[1], "a lone \n and a lone \r inside");
    line_out_len[1] = strlen(line_out[1]);
    line_out_len[2] = 0;
    for (size_t i = 0; i < sizeof line_out[3]; i++)
        line_out[3][i] = (char)('a' + i % 26);
    line_out_len[3] = sizeof line_out[3];
    strcpy(line_out[4], "last");
    line_out_len[4] = 4;

    child c;
    int port = twisted_server(&c, "line-server");
    char desc[PATH_MAX + 64], err[256];
    snprintf(desc, sizeof desc, "tls:localhost:%d:trustRoots=%s", port, tu_tls_cert("ca.pem"));
    tw_endpoint e;
    ck_assert_msg(tw_endpoint_parse_client(desc, &e, err, sizeof err) == 0, "%s", err);
    tw_factory f;
    tw_factory_init(&f, &lc_factory_ops);
    tu_outcome o = {0};
    tu_watch(tw_connect_tls(r, &e, NULL, &f), &o);
    spin(r, &o.fired, 10000);
    ck_assert_msg(o.ok, "%s", o.message);
    spin(r, &lc.lost, 10000);
    ck_assert_int_eq(lc.lost_code, TW_EDONE);
    ck_assert_int_eq(lc.lines, LINES + 1);
    ck_assert_uint_eq(lc.got_len[0], 18);
    ck_assert(memcmp(lc.got[0], "hello from twisted", 18) == 0);
    for (int i = 0; i < LINES; i++) {
        ck_assert_uint_eq(lc.got_len[i + 1], 5 + line_out_len[i]);
        ck_assert_msg(memcmp(lc.got[i + 1], "echo:", 5) == 0 &&
                          memcmp(lc.got[i + 1] + 5, line_out[i], line_out_len[i]) == 0,
                      "line %d came back changed", i);
    }
    /* Our close was an orderly one to Twisted too: close_notify, then FIN. */
    ck_assert_msg(child_wait_for(&c, "CLOSED ", 10000), "%s", c.buf);
    ck_assert_msg(strstr(c.buf, "CLOSED ConnectionDone") != NULL, "%s", c.buf);
    child_stop(&c);
}
END_TEST

START_TEST(test_twisted_client_to_twine_tls_server)
{
    tw_tls_context *sctx = server_ctx("server.pem", "server.key");
    tfactory sf;
    tf_init(&sf, &srv, M_ECHO);
    tw_listener *l;
    int port = listen_tls(sctx, &sf, &l);
    char portstr[16], roots[PATH_MAX + 8];
    snprintf(portstr, sizeof portstr, "%d", port);
    snprintf(roots, sizeof roots, "%s", tu_tls_cert("roots"));
    const char *argv[] = {python(), tls_peer(), "client", "localhost", portstr, roots,
                          "from-twisted", NULL};
    child c;
    child_start(&c, argv);
    ck_assert_msg(child_wait_for(&c, "from-twisted\n", 15000), "%s", c.buf);
    ck_assert_int_eq(tu_wait_child(c.pid, 20000), 0); /* a loaded machine starts Python slowly */
    close(c.in);
    close(c.out);
    spin(r, &srv.lost, 3000);
    ck_assert_int_eq(srv.lost_code, TW_EDONE);
    tw_listener_close(l);
    tw_tls_context_unref(sctx);
}
END_TEST

START_TEST(test_twine_start_tls_to_twisted_start_tls)
{
    child c;
    int port = twisted_server(&c, "starttls-server");
    starttls_client = client_ctx("ca.pem");
    ck_assert_int_eq(tw_tls_context_set_hostname(starttls_client, "localhost"), 0);
    tfactory cf;
    tf_init(&cf, &cli, M_STARTTLS_C);
    tw_endpoint e;
    char desc[64];
    snprintf(desc, sizeof desc, "tcp:127.0.0.1:%d", port);
    ck_assert_int_eq(tw_endpoint_parse_client(desc, &e, NULL, 0), 0);
    tu_outcome o = {0};
    tu_watch(tw_endpoint_connect(r, &e, &cf.base), &o);
    spin(r, &o.fired, 5000);
    ck_assert(o.ok);
    wait_got(&cli, "secret");
    tw_tls_info info;
    ck_assert_int_eq(tw_tls_get_info(cli.t, &info), 0);
    ck_assert(info.peer_verified);
    tw_transport_lose_connection(cli.t);
    spin(r, &cli.lost, 3000);
    child_stop(&c);
    tw_tls_context_unref(starttls_client);
}
END_TEST

START_TEST(test_twisted_start_tls_to_twine_start_tls)
{
    starttls_server = server_ctx("server.pem", "server.key");
    tfactory sf;
    tf_init(&sf, &srv, M_STARTTLS_S);
    tw_listener *l;
    tw_address a;
    ck_assert_int_eq(tw_address_from_ip(&a, "127.0.0.1", 0), 0);
    ck_assert_int_eq(tw_listen(r, &a, NULL, &sf.base, &l), 0);
    tw_listener_address(l, &a);
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", tw_address_port(&a));
    const char *argv[] = {python(), tls_peer(), "starttls-client", "127.0.0.1", portstr,
                          tu_tls_cert("ca.pem"), "twisted-secret", NULL};
    child c;
    child_start(&c, argv);
    ck_assert_msg(child_wait_for(&c, "twisted-secret\n", 15000), "%s", c.buf);
    ck_assert_int_eq(tu_wait_child(c.pid, 20000), 0); /* a loaded machine starts Python slowly */
    close(c.in);
    close(c.out);
    spin(r, &srv.lost, 3000);
    tw_listener_close(l);
    tw_tls_context_unref(starttls_server);
}
END_TEST

/* ------------------------------------------------------------ AMP StartTLS */

static const tw_amp_arg sum_args[] = {{"a", TW_AMP_T_INTEGER, 0}, {"b", TW_AMP_T_INTEGER, 0}, {NULL, NULL, 0}};
static const tw_amp_arg sum_response[] = {{"total", TW_AMP_T_INTEGER, 0}, {NULL, NULL, 0}};
static const tw_amp_command sum_command = {.name = "Sum", .arguments = sum_args,
                                           .response = sum_response};

static tw_deferred *sum_responder(tw_amp *amp, const tw_amp_values *args, void *arg)
{
    (void)amp;
    (void)arg;
    int64_t a = 0, b = 0;
    tw_amp_values_get_integer(args, "a", &a);
    tw_amp_values_get_integer(args, "b", &b);
    tw_amp_values *v = tw_amp_values_new();
    tw_amp_values_set_integer(v, "total", a + b);
    return tw_amp_succeed(v);
}

/* What one AMP call came back with. */
typedef struct amp_out {
    int fired, ok;
    int64_t total;
    char message[256];
} amp_out;

static void amp_out_cb(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    amp_out *o = arg;
    o->fired = 1;
    o->ok = 1;
    const tw_amp_values *v = tw_result_value(res);
    if (v != NULL)
        tw_amp_values_get_integer(v, "total", &o->total);
}

static void amp_out_eb(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    amp_out *o = arg;
    o->fired = 1;
    tw_failure *f = tw_result_take_failure(res);
    tw_failure_format(f, o->message, sizeof o->message);
    tw_failure_unref(f);
}

static void amp_watch(tw_deferred *d, amp_out *o)
{
    ck_assert_ptr_nonnull(d);
    tw_deferred_add_callbacks(d, amp_out_cb, amp_out_eb, o);
    tw_deferred_unref(d);
}

static tw_amp *amp_connect(int port, tw_factory *f)
{
    tw_endpoint e;
    char desc[64];
    snprintf(desc, sizeof desc, "tcp:127.0.0.1:%d", port);
    ck_assert_int_eq(tw_endpoint_parse_client(desc, &e, NULL, 0), 0);
    tu_outcome o = {0};
    tu_watch(tw_endpoint_connect(r, &e, f), &o);
    spin(r, &o.fired, 5000);
    ck_assert_msg(o.ok, "%s", o.message);
    return tw_amp_from_protocol(o.value);
}

/* StartTLS, and a call made before the answer, which must wait for TLS. */
static void amp_start_tls_and_sum(tw_amp *amp, tw_tls_context *cctx)
{
    amp_out started = {0}, sum = {0};
    amp_watch(tw_amp_start_tls(amp, cctx), &started);
    tw_amp_values *args = tw_amp_values_new();
    tw_amp_values_set_integer(args, "a", 13);
    tw_amp_values_set_integer(args, "b", 81);
    amp_watch(tw_amp_call_remote(amp, &sum_command, args), &sum);
    tw_amp_values_free(args);
    spin(r, &sum.fired, 5000);
    ck_assert_msg(started.fired && started.ok, "%s", started.message);
    ck_assert_msg(sum.ok, "%s", sum.message);
    ck_assert_int_eq(sum.total, 94);
    tw_tls_info info;
    ck_assert_int_eq(tw_tls_get_info(tw_amp_transport(amp), &info), 0);
    ck_assert(info.handshake_done);
    ck_assert(info.peer_verified);
    ck_assert_str_eq(info.peer_subject, "CN=localhost");
    /* Only one TLS per connection, as in Twisted. */
    amp_out again = {0};
    amp_watch(tw_amp_start_tls(amp, cctx), &again);
    ck_assert(again.fired && !again.ok);
}

START_TEST(test_amp_start_tls_between_twine_peers)
{
    tw_tls_context *sctx = server_ctx("server.pem", "server.key");
    tw_factory *sf = tw_amp_factory_new();
    ck_assert_int_eq(tw_amp_register(tw_amp_factory_dispatcher(sf), &sum_command, sum_responder,
                                     NULL),
                     0);
    ck_assert_int_eq(tw_amp_serve_start_tls(tw_amp_factory_dispatcher(sf), sctx), 0);
    tw_tls_context_unref(sctx); /* the dispatcher holds it */
    tw_listener *l;
    tw_address a;
    ck_assert_int_eq(tw_address_from_ip(&a, "127.0.0.1", 0), 0);
    ck_assert_int_eq(tw_listen(r, &a, NULL, sf, &l), 0);
    tw_listener_address(l, &a);
    tw_factory *cf = tw_amp_factory_new();
    tw_amp *amp = amp_connect(tw_address_port(&a), cf);
    tw_tls_context *cctx = client_ctx("ca.pem");
    ck_assert_int_eq(tw_tls_context_set_hostname(cctx, "localhost"), 0);
    amp_start_tls_and_sum(amp, cctx);
    tw_amp_lose_connection(amp);
    run_ms(50);
    tw_listener_close(l);
    run_ms(20);
    tw_tls_context_unref(cctx);
    tw_factory_free(cf);
    tw_factory_free(sf);
}
END_TEST

START_TEST(test_amp_start_tls_is_unknown_without_a_server_context)
{
    tw_factory *sf = tw_amp_factory_new();
    tw_listener *l;
    tw_address a;
    ck_assert_int_eq(tw_address_from_ip(&a, "127.0.0.1", 0), 0);
    ck_assert_int_eq(tw_listen(r, &a, NULL, sf, &l), 0);
    tw_listener_address(l, &a);
    tw_factory *cf = tw_amp_factory_new();
    tw_amp *amp = amp_connect(tw_address_port(&a), cf);
    tw_tls_context *cctx = client_ctx("ca.pem");
    ck_assert_int_eq(tw_tls_context_set_hostname(cctx, "localhost"), 0);
    amp_out started = {0};
    amp_watch(tw_amp_start_tls(amp, cctx), &started);
    spin(r, &started.fired, 5000);
    ck_assert(started.fired && !started.ok);
    ck_assert_msg(strstr(started.message, "UNHANDLED") != NULL, "%s", started.message);
    ck_assert(!tw_transport_is_tls(tw_amp_transport(amp)));
    tw_amp_lose_connection(amp);
    run_ms(50);
    tw_listener_close(l);
    run_ms(20);
    tw_tls_context_unref(cctx);
    tw_factory_free(cf);
    tw_factory_free(sf);
}
END_TEST

START_TEST(test_twine_amp_start_tls_to_twisted)
{
    const char *argv[] = {python(), amp_tls_peer(), "server", tu_tls_cert("server.pem"),
                          tu_tls_cert("server.key"), NULL};
    child c;
    child_start(&c, argv);
    ck_assert_msg(child_wait_for(&c, "PORT ", 15000), "Twisted did not start: %s", c.buf);
    int port = 0;
    ck_assert_int_eq(sscanf(strstr(c.buf, "PORT "), "PORT %d", &port), 1);
    tw_factory *cf = tw_amp_factory_new();
    tw_amp *amp = amp_connect(port, cf);
    tw_tls_context *cctx = client_ctx("ca.pem");
    ck_assert_int_eq(tw_tls_context_set_hostname(cctx, "localhost"), 0);
    amp_start_tls_and_sum(amp, cctx);
    tw_amp_lose_connection(amp);
    run_ms(50);
    child_stop(&c);
    tw_tls_context_unref(cctx);
    tw_factory_free(cf);
}
END_TEST

START_TEST(test_twisted_amp_start_tls_to_twine)
{
    tw_tls_context *sctx = server_ctx("server.pem", "server.key");
    tw_factory *sf = tw_amp_factory_new();
    ck_assert_int_eq(tw_amp_register(tw_amp_factory_dispatcher(sf), &sum_command, sum_responder,
                                     NULL),
                     0);
    ck_assert_int_eq(tw_amp_serve_start_tls(tw_amp_factory_dispatcher(sf), sctx), 0);
    tw_tls_context_unref(sctx);
    tw_listener *l;
    tw_address a;
    ck_assert_int_eq(tw_address_from_ip(&a, "127.0.0.1", 0), 0);
    ck_assert_int_eq(tw_listen(r, &a, NULL, sf, &l), 0);
    tw_listener_address(l, &a);
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", tw_address_port(&a));
    const char *argv[] = {python(), amp_tls_peer(), "client", "127.0.0.1", portstr,
                          tu_tls_cert("ca.pem"), NULL};
    child c;
    child_start(&c, argv);
    ck_assert_msg(child_wait_for(&c, "total=94 peer=localhost\n", 15000), "%s", c.buf);
    ck_assert_int_eq(tu_wait_child(c.pid, 20000), 0); /* a loaded machine starts Python slowly */
    close(c.in);
    close(c.out);
    run_ms(50);
    tw_listener_close(l);
    run_ms(20);
    tw_factory_free(sf);
}
END_TEST

START_TEST(test_watermarks_count_the_encrypted_queue)
{
    tw_tls_context *sctx = server_ctx("server.pem", "server.key");
    raw c;
    tfactory sf;
    tw_factory *w;
    raw_start(&c, sctx, M_FLOOD, TLS1_3_VERSION, &sf, &w);
    raw_handshake(&c);
    raw_send(&c, "go");
    /* The peer reads nothing: the queue passes the high mark. */
    for (int i = 0; i < 100 && srv.pauses == 0; i++)
        tw_reactor_iterate(r, 0.005);
    ck_assert_int_eq(srv.pauses, 1);
    ck_assert_int_eq(srv.resumes, 0);
    /* It reads: the queue drains below the low mark and the writer resumes. */
    for (int i = 0; i < 2000 && c.plain_len < 65536 * 8; i++) {
        raw_spin(&c, 2);
        c.plain_len = c.plain_len > 60000 ? 0 : c.plain_len; /* keep reading */
        if (srv.resumes > 0)
            break;
    }
    ck_assert_int_eq(srv.resumes, 1);
    raw_stop(&c);
    spin(r, &srv.lost, 3000);
    tw_factory_free(w);
    tw_tls_context_unref(sctx);
}
END_TEST

/* Records that came in the read during which the protocol paused wait
 * until it resumes, and then come in order. */
START_TEST(test_records_read_while_paused_come_on_resume_in_order)
{
    tw_tls_context *sctx = server_ctx("server.pem", "server.key");
    raw c;
    tfactory sf;
    tw_factory *w;
    raw_start(&c, sctx, M_PAUSE, TLS1_3_VERSION, &sf, &w);
    raw_handshake(&c);
    /* Three records leave in one write, so the server reads them at once. */
    ck_assert_int_eq(SSL_write(c.ssl, "one,", 4), 4);
    ck_assert_int_eq(SSL_write(c.ssl, "two,", 4), 4);
    ck_assert_int_eq(SSL_write(c.ssl, "three", 5), 5);
    raw_pump(&c);
    raw_spin(&c, 200);
    ck_assert_uint_eq(srv.got_len, 4);
    ck_assert(memcmp(srv.got, "one,", 4) == 0);
    ck_assert_ptr_nonnull(srv.t);
    tw_transport_resume_producing(srv.t);
    for (int i = 0; i < 100 && srv.got_len < 13; i++)
        raw_spin(&c, 5);
    ck_assert_uint_eq(srv.got_len, 13);
    ck_assert(memcmp(srv.got, "one,two,three", 13) == 0);
    raw_stop(&c);
    spin(r, &srv.lost, 3000);
    tw_factory_free(w);
    tw_tls_context_unref(sctx);
}
END_TEST

/* Bytes of the heap in use, or 0 where the C library does not tell (the
 * test then checks only that the echo comes). */
static size_t heap_in_use(void)
{
#ifdef HAVE_MALLINFO2
    struct mallinfo2 m = mallinfo2();
    return m.uordblks + m.hblkhd;
#else
    return 0;
#endif
}

/* Once its echo is sent, a connection holds no buffer for it: neither the
 * ciphertext it read nor the plaintext it wrote (OpenSSL's record buffers
 * are released too). An idle connection's memory is what it held before. */
START_TEST(test_an_idle_connection_keeps_no_buffers_after_an_echo)
{
    tw_tls_context *sctx = server_ctx("server.pem", "server.key");
    raw c;
    tfactory sf;
    tw_factory *w;
    raw_start(&c, sctx, M_ECHO, TLS1_3_VERSION, &sf, &w);
    raw_handshake(&c);
    /* One echo first: whatever the first records make once for good is
     * made before counting. The client's memory BIOs keep the largest
     * buffer they ever held, so they are grown past the echo's size. */
    raw_send(&c, "first");
    for (int i = 0; i < 100 && c.plain_len < 5; i++)
        raw_spin(&c, 5);
    ck_assert_uint_eq(c.plain_len, 5);
    static char scratch[16384];
    BIO *bios[] = {c.in, c.out};
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(BIO_write(bios[i], scratch, (int)sizeof scratch), (int)sizeof scratch);
        ck_assert_int_eq(BIO_read(bios[i], scratch, (int)sizeof scratch), (int)sizeof scratch);
    }
    raw_spin(&c, 20);
    size_t before = heap_in_use();
    static char big[3000];
    memset(big, 'b', sizeof big);
    ck_assert_int_eq(SSL_write(c.ssl, big, (int)sizeof big), (int)sizeof big);
    raw_pump(&c);
    raw_wait_plain(&c, 5 + sizeof big);
    ck_assert_uint_eq(c.plain_len, 5 + sizeof big);
    raw_spin(&c, 20);
    size_t after = heap_in_use();
    ck_assert_msg(after < before + 256, "an idle connection grew by %zd bytes after an echo",
                  (ssize_t)(after - before));
    raw_stop(&c);
    spin(r, &srv.lost, 3000);
    tw_factory_free(w);
    tw_tls_context_unref(sctx);
}
END_TEST

static Suite *tls_suite(void)
{
    Suite *s = suite_create("tls");
    TCase *tc = tcase_create("tls");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_ssl_server_endpoint_parses_twisted_syntax);
    tcase_add_test(tc, test_tls_client_endpoint_parses_twisted_syntax);
    tcase_add_test(tc, test_plain_listen_and_connect_refuse_tls_endpoints);
    tcase_add_test(tc, test_context_refuses_expired_certificate);
    tcase_add_test(tc, test_context_refuses_key_of_another_certificate);
    tcase_add_test(tc, test_insecure_and_client_options_need_the_right_side);
    tcase_add_test(tc, test_echo_over_tls_verifies_the_server_and_reports_the_session);
    tcase_add_test(tc, test_wrong_hostname_fails_the_connect_with_a_clear_reason);
    tcase_add_test(tc, test_self_signed_is_refused_unless_trusted);
    tcase_add_test(tc, test_insecure_client_accepts_any_certificate);
    tcase_add_test(tc, test_alpn_picks_the_servers_first_shared_protocol);
    tcase_add_test(tc, test_sni_callback_selects_the_certificate);
    tcase_add_test(tc, test_required_client_certificate_is_checked);
    tcase_add_test(tc, test_start_tls_switches_a_live_connection);
    tcase_add_test(tc, test_start_tls_works_through_the_policy_wrapper);
    tcase_add_test(tc, test_thousand_small_writes_make_at_most_two_records_tls13);
    tcase_add_test(tc, test_thousand_small_writes_make_at_most_two_records_tls12);
    tcase_add_test(tc, test_garbage_instead_of_client_hello_closes_without_a_protocol);
    tcase_add_test(tc, test_stalled_handshake_times_out);
    tcase_add_test(tc, test_close_without_close_notify_is_a_truncation);
    tcase_add_test(tc, test_lose_connection_sends_close_notify_then_fin);
    tcase_add_test(tc, test_peer_close_notify_is_a_half_close_for_aware_protocols);
    tcase_add_test(tc, test_watermarks_count_the_encrypted_queue);
    tcase_add_test(tc, test_tls13_sessions_resume_through_tickets);
    tcase_add_test(tc, test_tls12_sessions_resume_through_tickets);
    tcase_add_test(tc, test_tls12_sessions_resume_through_the_server_cache);
    tcase_add_test(tc, test_session_ticket_keys_turn_over_each_period);
    tcase_add_test(tc, test_idle_timeout_over_tls_sends_close_notify_then_fin);
    tcase_add_test(tc, test_graceful_stop_over_tls_sends_the_queue_then_close_notify_then_fin);
    tcase_add_test(tc, test_input_budget_over_tls_sends_close_notify_then_fin);
    tcase_add_test(tc, test_graceful_stop_over_tls_behind_a_proxy_header_sends_close_notify);
    tcase_add_test(tc, test_graceful_stop_after_start_tls_through_the_policy_wrapper_sends_close_notify);
    tcase_add_test(tc, test_graceful_stop_over_tls_on_pipes_sends_close_notify);
    tcase_add_test(tc, test_a_reason_named_over_tls_is_the_one_counted);
    tcase_add_test(tc, test_a_peers_orderly_close_over_tls_counts_as_the_peers);
    tcase_add_test(tc, test_lose_write_connection_over_tls_sends_close_notify_then_fin_and_reads_on);
    tcase_add_test(tc, test_records_read_while_paused_come_on_resume_in_order);
    tcase_add_test(tc, test_an_idle_connection_keeps_no_buffers_after_an_echo);
    tcase_add_test(tc, test_amp_start_tls_between_twine_peers);
    tcase_add_test(tc, test_amp_start_tls_is_unknown_without_a_server_context);
    suite_add_tcase(s, tc);

    TCase *io = tcase_create("interop");
    tcase_add_checked_fixture(io, setup, teardown);
    tcase_set_timeout(io, 60);
    tcase_add_test(io, test_twine_client_to_openssl_server_tls13);
    tcase_add_test(io, test_twine_client_to_openssl_server_tls12);
    tcase_add_test(io, test_twine_client_refuses_wrong_hostname_from_openssl_server);
    tcase_add_test(io, test_twine_client_refuses_expired_openssl_server);
    tcase_add_test(io, test_twine_client_refuses_self_signed_openssl_server_unless_trusted);
    tcase_add_test(io, test_twine_client_certificate_to_openssl_server);
    tcase_add_test(io, test_openssl_client_to_twine_server_tls13);
    tcase_add_test(io, test_openssl_client_to_twine_server_tls12);
    tcase_add_test(io, test_openssl_client_sni_selects_twine_certificate);
    tcase_add_test(io, test_openssl_client_certificate_required_by_twine);
    tcase_add_test(io, test_twine_client_to_twisted_tls_server);
    tcase_add_test(io, test_twisted_client_to_twine_tls_server);
    tcase_add_test(io, test_twine_line_client_to_twisted_tls_line_server);
    tcase_add_test(io, test_twine_start_tls_to_twisted_start_tls);
    tcase_add_test(io, test_twisted_start_tls_to_twine_start_tls);
    tcase_add_test(io, test_twine_amp_start_tls_to_twisted);
    tcase_add_test(io, test_twisted_amp_start_tls_to_twine);
    suite_add_tcase(s, io);
    return s;
}

int main(void)
{
    tu_tls_make_certs("tls-certs");
    SRunner *sr = srunner_create(tls_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    tu_tls_remove_certs();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
