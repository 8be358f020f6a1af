/* SPDX-License-Identifier: MIT */
/*
 * The TLS connection: a protocol that the stream transport drives with
 * ciphertext (base) and a transport that the protocol inside writes
 * plaintext to (transport), with one OpenSSL SSL object between them, as
 * Twisted's TLSMemoryBIOProtocol. It is built by the wrapping factory
 * (factory.c) for ssl:/tls: endpoints, or put between a live stream and
 * its protocol by tw_transport_start_tls().
 *
 * Ciphertext in: the SSL reads each data_received's bytes where the stream
 * holds them, through a BIO of our own; the plaintext it yields goes to the
 * inner protocol, record by record, unless the protocol paused reading
 * (then the records wait: what OpenSSL has not read is copied into @c keep,
 * the stream is paused, and a call from the loop delivers them on resume).
 * Ciphertext out: the same BIO hands every record straight to the stream
 * with tw_transport_write(), so it joins the stream's batch or queue with
 * no copy of ours.
 *
 * An idle connection holds nothing but OpenSSL's own state: no ciphertext
 * buffer (a memory BIO would keep its grown buffer after it is drained),
 * no plaintext buffer (@c pending is given back once encrypted), no record
 * buffers (SSL_MODE_RELEASE_BUFFERS), and the text of a failure only once
 * there is one. bench/README.md has the breakdown of what OpenSSL keeps.
 *
 * Plaintext out: writes gather in @c pending and are encrypted together
 * (one SSL_write, so one record per 16 KiB) when the outermost callback
 * returns (core's held writes, run just before the streams send their
 * batches), at once when made outside every callback, and at once when
 * they reach a record's worth. Before the handshake is done they wait.
 *
 * The stages only move forward: HANDSHAKING, OPEN, CLOSED (close_notify
 * sent and the stream told to close, or aborted, or failed), LOST (the
 * stream's connection_lost ran). A requested close or half-close is a flag
 * until the pending plaintext is encrypted; the close_notify then follows
 * it, and the stream's own close sends FIN and lingers.
 *
 * The inner protocol hears connection_made when the handshake is done (so
 * tw_tls_get_info() answers in it); one started by tw_transport_start_tls()
 * heard it long before. One that never heard it is destroyed without
 * connection_lost, as a stream destroys a protocol that never started.
 *
 * Each handshake's outcome is counted once, in the stream's counters (its
 * listener's or the reactor's: net/stream_internal.h): completed, or
 * failed with the reason of the moment it stopped being possible. A close
 * TLS decides names its reason to the stream first (a broken handshake or
 * record is a protocol error, the handshake timeout a timeout, the peer's
 * close_notify or FIN the peer's), so the close is counted for that.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <twine/log.h>

#include "core/buf_internal.h"
#include "core/reactor_internal.h"
#include "net/stream_internal.h"
#include "tls/tls_internal.h"

/* The most plaintext one record carries: pending writes that reach it are
 * encrypted at once rather than held. */
#define RECORD_MAX 16384

enum { S_HANDSHAKING, S_OPEN, S_CLOSED, S_LOST };

enum {
    F_SERVER = 1 << 0,         /* answers the handshake */
    F_MADE = 1 << 1,           /* the inner protocol heard connection_made */
    F_LOSE_REQ = 1 << 2,       /* lose_connection: close_notify once pending is out */
    F_WRITE_SHUT_REQ = 1 << 3, /* lose_write_connection: the same, then half-close */
    F_WRITE_SHUT = 1 << 4,     /* close_notify sent by a half-close */
    F_READ_PAUSED = 1 << 5,    /* the inner protocol paused reading */
    F_PEER_CLOSED = 1 << 6,    /* the peer's close_notify came */
    F_PEER_TOLD = 1 << 7,      /* the inner protocol heard read_connection_lost */
    F_STARTED = 1 << 8,        /* made by tw_transport_start_tls() */
    F_COUNTED = 1 << 9         /* the handshake's outcome was counted */
};

typedef struct tls_conn {
    tw_protocol base;       /* driven by the stream: ciphertext */
    tw_transport transport; /* what the inner protocol writes to: plaintext */
    tw__held_write held;    /* pending is encrypted when the dispatch returns */
    tw_protocol *inner;     /* owned: destroyed with the connection */
    tw__tls_factory *tf;    /* referenced; NULL for start_tls */
    tw_tls_context *ctx;    /* referenced */
    SSL *ssl;
    const char *in; /* the data_received under way: ciphertext read in place */
    size_t in_len;
    char *keep; /* ciphertext OpenSSL has not read yet, from earlier reads */
    size_t keep_len, keep_off;
    char *pending; /* plaintext written, until it is encrypted */
    size_t pending_len, pending_cap;
    tw_call *timer; /* the handshake timeout */
    tw_call *drain; /* delivers what waited while reading was paused */
    int error;      /* the reason the inner protocol hears, or 0 for the stream's */
    char *why;      /* that reason in words, or NULL */
    unsigned flags;
    int stage;
} tls_conn;

static const tw_protocol_ops base_ops;
static const tw_transport_ops tls_transport_ops;

static tls_conn *conn_of(tw_protocol *p)
{
    return tw_container_of(p, tls_conn, base);
}

static tls_conn *conn_of_transport(tw_transport *t)
{
    return tw_container_of(t, tls_conn, transport);
}

static tw_transport *real(tls_conn *c)
{
    return c->base.transport;
}

static tw_reactor *reactor(tls_conn *c)
{
    return c->transport.reactor;
}

/* ---------------------------------------------------------------- the BIO */

/* Records go straight to the stream, which batches or queues them. */
static int bio_write(BIO *b, const char *data, int len)
{
    tls_conn *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (c->stage == S_LOST || tw_transport_write(real(c), data, (size_t)len) < 0)
        return -1;
    return len;
}

/* Ciphertext not yet read by OpenSSL. */
static size_t unread(const tls_conn *c)
{
    return c->keep_len - c->keep_off + c->in_len;
}

/* Kept bytes first: they came before the read under way. An empty BIO
 * means "wait for more", never end of file (the stream reports the EOF). */
static int bio_read(BIO *b, char *out, int len)
{
    tls_conn *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    size_t want = (size_t)len, n;
    if (c->keep_off < c->keep_len) {
        n = c->keep_len - c->keep_off;
        n = n < want ? n : want;
        memcpy(out, c->keep + c->keep_off, n);
        c->keep_off += n;
        if (c->keep_off == c->keep_len) {
            free(c->keep);
            c->keep = NULL;
            c->keep_len = c->keep_off = 0;
        }
        return (int)n;
    }
    if (c->in_len == 0) {
        BIO_set_retry_read(b);
        return -1;
    }
    n = c->in_len < want ? c->in_len : want;
    memcpy(out, c->in, n);
    c->in += n;
    c->in_len -= n;
    return (int)n;
}

/* The rest of the read under way is the stream's: copy what OpenSSL left
 * of it, to be read before the next. @return 0 or -ENOMEM. */
static int keep_unread(tls_conn *c)
{
    int rc = 0;
    if (c->in_len > 0) {
        size_t left = c->keep_len - c->keep_off;
        if (c->in_len > SIZE_MAX - left) {
            rc = -ENOMEM;
        } else {
            char *k = malloc(left + c->in_len);
            if (k == NULL) {
                rc = -ENOMEM;
            } else {
                if (left > 0)
                    memcpy(k, c->keep + c->keep_off, left);
                memcpy(k + left, c->in, c->in_len);
                free(c->keep);
                c->keep = k;
                c->keep_len = left + c->in_len;
                c->keep_off = 0;
            }
        }
    }
    c->in = NULL;
    c->in_len = 0;
    return rc;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num, (void)ptr;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_PENDING: {
        size_t n = unread(BIO_get_data(b));
        return n > LONG_MAX ? LONG_MAX : (long)n;
    }
    default:
        return 0;
    }
}

/* One method for the process, made on first use. */
static BIO_METHOD *stream_method;
static pthread_once_t stream_method_once = PTHREAD_ONCE_INIT;

static void make_method(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "twine stream");
    if (m != NULL && (BIO_meth_set_write(m, bio_write) != 1 || BIO_meth_set_read(m, bio_read) != 1 ||
                      BIO_meth_set_ctrl(m, bio_ctrl) != 1)) {
        BIO_meth_free(m);
        m = NULL;
    }
    stream_method = m;
}

static BIO_METHOD *bio_method(void)
{
    pthread_once(&stream_method_once, make_method);
    return stream_method;
}

/* ---------------------------------------------------------------- ending */

static void describe_peer(tls_conn *c, char *buf, size_t len)
{
    tw_address a;
    if (c->stage != S_LOST && tw_transport_get_peer(real(c), &a) == 0)
        tw_address_format(&a, buf, len);
    else
        snprintf(buf, len, "%s", "?");
}

static void cancel_call(tw_call **call)
{
    if (*call != NULL) {
        tw_call_cancel(*call);
        tw_call_release(*call);
        *call = NULL;
    }
}

/* Count the handshake's outcome in the stream's counters, once: @p ok, or
 * failed for @p why. */
static void count_handshake(tls_conn *c, int ok, tw_tls_failure why)
{
    if (c->flags & F_COUNTED)
        return;
    c->flags |= F_COUNTED;
    tw__stream_note_tls(real(c), ok, why);
}

/* The handshake stops here, before it completed, for @p why. */
static void handshake_failed(tls_conn *c, tw_tls_failure why)
{
    if (c->stage == S_HANDSHAKING)
        count_handshake(c, 0, why);
}

/* Which side's certificate the handshake failed on, from OpenSSL's queued
 * error (before tw__tls_reason() empties the queue), or a broken protocol. */
static tw_tls_failure handshake_error(void)
{
    unsigned long e = ERR_peek_last_error();
    if (ERR_GET_LIB(e) != ERR_LIB_SSL)
        return TW_TLS_FAIL_PROTOCOL;
    switch (ERR_GET_REASON(e)) {
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
#ifdef SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
#endif
        return TW_TLS_FAIL_VERIFY;
    default:
        return TW_TLS_FAIL_PROTOCOL;
    }
}

/* Why a handshake fails that the stream ends under it: its close reason
 * says how. */
static tw_tls_failure failure_below(tls_conn *c)
{
    tw_close_reason why = TW_CLOSE_LOCAL;
    tw__stream_close_reason(real(c), &why);
    return why == TW_CLOSE_PEER || why == TW_CLOSE_ERROR       ? TW_TLS_FAIL_PEER_CLOSED
           : why == TW_CLOSE_IDLE || why == TW_CLOSE_TIMEOUT ? TW_TLS_FAIL_TIMEOUT
                                                             : TW_TLS_FAIL_LOCAL;
}

/* The connection cannot go on: log why once, remember it for the inner
 * protocol, name @p close_why to the stream, and close (what OpenSSL
 * queued, an alert, goes first). */
static void fail(tls_conn *c, int code, int abort, tw_close_reason close_why, const char *fmt,
                 ...) TW_PRINTF(5, 6);

static void fail(tls_conn *c, int code, int abort, tw_close_reason close_why, const char *fmt,
                 ...)
{
    if (c->stage >= S_CLOSED)
        return;
    char why[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    char peer[TW_ADDRSTRLEN];
    describe_peer(c, peer, sizeof peer);
    tw_log(TW_LOG_WARN, "tls", "closing the TLS connection %s %s: %s",
           c->flags & F_SERVER ? "from" : "to", peer, why);
    c->why = strdup(why); /* NULL when out of memory: the code still tells */
    c->error = code;
    c->stage = S_CLOSED;
    cancel_call(&c->timer);
    if (reactor(c) != NULL)
        tw__unhold_writes(reactor(c), &c->held);
    tw_transport_set_close_reason(real(c), close_why);
    if (abort)
        tw_transport_abort_connection(real(c));
    else
        tw_transport_lose_connection(real(c));
}

/* OpenSSL refused: fail with its reason. */
static void fail_ssl(tls_conn *c, const char *during)
{
    char reason[160];
    tw__tls_reason(c->ssl, reason, sizeof reason);
    fail(c, TW_ETLS, 0, TW_CLOSE_PROTOCOL_ERROR, "%s: %s", during, reason);
}

/* Send close_notify; what the peer answers is not waited for. */
static void send_close_notify(tls_conn *c)
{
    if (SSL_shutdown(c->ssl) < 0)
        ERR_clear_error(); /* a peer that left already: the FIN says the rest */
}

/* ---------------------------------------------------------------- plaintext out */

/* Encrypt what is pending, then carry out a close asked for meanwhile. */
static void release(tls_conn *c)
{
    if (c->stage != S_OPEN)
        return;
    if (c->pending_len > 0) {
        int n = SSL_write(c->ssl, c->pending, (int)c->pending_len);
        if (n <= 0) {
            fail_ssl(c, "cannot encrypt");
            return;
        }
        /* The BIO takes everything, so SSL_write never writes part. The
         * buffer goes back: an idle connection should hold none. */
        free(c->pending);
        c->pending = NULL;
        c->pending_len = c->pending_cap = 0;
    }
    if (c->flags & F_LOSE_REQ) {
        c->stage = S_CLOSED;
        cancel_call(&c->drain);
        send_close_notify(c);
        tw_transport_lose_connection(real(c));
        return;
    }
    if ((c->flags & F_WRITE_SHUT_REQ) && !(c->flags & F_WRITE_SHUT)) {
        c->flags |= F_WRITE_SHUT;
        send_close_notify(c);
        tw_transport_lose_write_connection(real(c));
    }
}

static void held_release(tw__held_write *w)
{
    release(tw_container_of(w, tls_conn, held));
}

/* Encrypt now, or when the outermost callback returns if one runs. */
static void schedule_release(tls_conn *c)
{
    if (c->stage != S_OPEN)
        return; /* the handshake's end releases it */
    tw_reactor *r = reactor(c);
    if (r != NULL && r->depth > 0 && c->pending_len < RECORD_MAX)
        tw__hold_writes(r, &c->held);
    else
        release(c);
}

/* ---------------------------------------------------------------- plaintext in */

static void lose(tls_conn *c);

/* The peer's close_notify: the end of its data, as a FIN is for TCP. */
static void peer_closed(tls_conn *c)
{
    c->flags |= F_PEER_CLOSED;
    tw_protocol *p = c->inner;
    if ((c->flags & F_MADE) && p->ops->read_connection_lost != NULL) {
        if (!(c->flags & F_PEER_TOLD)) {
            c->flags |= F_PEER_TOLD;
            p->ops->read_connection_lost(p);
        }
        return;
    }
    if (c->stage < S_LOST)
        tw_transport_set_close_reason(real(c), TW_CLOSE_PEER);
    lose(c);
}

/* Hand the inner protocol what OpenSSL decrypts, until it pauses or closes. */
static void deliver(tls_conn *c)
{
    char buf[RECORD_MAX];
    while (c->stage == S_OPEN && !(c->flags & (F_READ_PAUSED | F_LOSE_REQ | F_PEER_CLOSED))) {
        int n = SSL_read(c->ssl, buf, sizeof buf);
        if (n > 0) {
            c->inner->ops->data_received(c->inner, buf, (size_t)n);
            continue;
        }
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return;
        if (e == SSL_ERROR_ZERO_RETURN) {
            peer_closed(c);
            return;
        }
        fail_ssl(c, "bad record");
        return;
    }
}

static void handshake_done(tls_conn *c)
{
    count_handshake(c, 1, TW_TLS_FAIL_LOCAL);
    c->stage = S_OPEN;
    cancel_call(&c->timer);
    if (!(c->flags & F_MADE)) {
        c->flags |= F_MADE;
        if (c->inner->ops->connection_made != NULL)
            c->inner->ops->connection_made(c->inner);
        tw__tls_factory *tf = c->tf;
        if (tf != NULL && tf->connected != NULL && c->stage == S_OPEN) {
            tw_deferred *d = tf->connected;
            tf->connected = NULL;
            tw_deferred_callback(d, c->inner, NULL);
            tw_deferred_unref(d);
        }
    }
    schedule_release(c);
}

static void handshake(tls_conn *c)
{
    int n = SSL_do_handshake(c->ssl);
    if (n == 1) {
        handshake_done(c);
        return;
    }
    int e = SSL_get_error(c->ssl, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return;
    handshake_failed(c, handshake_error());
    fail_ssl(c, "the handshake failed");
}

static void drain_later(void *arg)
{
    tls_conn *c = arg;
    tw_call_release(c->drain);
    c->drain = NULL;
    deliver(c);
}

static void handshake_expired(void *arg)
{
    tls_conn *c = arg;
    tw_call_release(c->timer);
    c->timer = NULL;
    handshake_failed(c, TW_TLS_FAIL_TIMEOUT);
    fail(c, TW_ETIMEDOUT, 1, TW_CLOSE_TIMEOUT, "no handshake within %g s",
         c->ctx->handshake_timeout);
}

/* ---------------------------------------------------------------- the protocol the stream drives */

static void start(tls_conn *c)
{
    tw_reactor *r = reactor(c);
    if (r != NULL && c->ctx->handshake_timeout > 0 &&
        tw_reactor_call_later(r, c->ctx->handshake_timeout, handshake_expired, c, &c->timer) < 0)
        c->timer = NULL; /* out of memory: no timeout rather than no connection */
    handshake(c);
}

static void base_made(tw_protocol *p)
{
    tls_conn *c = conn_of(p);
    c->transport.reactor = p->transport->reactor;
    start(c);
}

/* The ciphertext read cannot be kept: the connection cannot go on. */
static void out_of_memory(tls_conn *c)
{
    handshake_failed(c, TW_TLS_FAIL_LOCAL);
    fail(c, -ENOMEM, 1, TW_CLOSE_ABORT, "out of memory");
}

static void base_data(tw_protocol *p, const void *data, size_t len)
{
    tls_conn *c = conn_of(p);
    if (c->stage >= S_CLOSED)
        return;
    c->in = data;
    c->in_len = len;
    if (c->keep != NULL && keep_unread(c) < 0) {
        /* Earlier bytes wait, and these cannot join them behind. */
        out_of_memory(c);
        return;
    }
    if (c->stage == S_HANDSHAKING)
        handshake(c);
    if (c->stage == S_OPEN)
        deliver(c);
    if (c->stage >= S_CLOSED) {
        c->in = NULL;
        c->in_len = 0;
    } else if (keep_unread(c) < 0) {
        out_of_memory(c);
    }
}

static void base_lost(tw_protocol *p, const tw_failure *reason)
{
    tls_conn *c = conn_of(p);
    int was = c->stage;
    if (was == S_HANDSHAKING)
        handshake_failed(c, failure_below(c)); /* the stream ended it under the handshake */
    c->stage = S_LOST;
    cancel_call(&c->timer);
    cancel_call(&c->drain);
    if (reactor(c) != NULL)
        tw__unhold_writes(reactor(c), &c->held);
    if (c->tf != NULL && c->tf->conn == p)
        c->tf->conn = NULL;
    tw_failure *own = NULL;
    if (c->error != 0)
        reason = own = tw_failure_new(c->error, "%s", c->why != NULL ? c->why : "out of memory");
    else if (was == S_HANDSHAKING)
        reason = own = tw_failure_new(TW_ETLS, "the connection ended during the handshake (%s)",
                                      tw_failure_message(reason));
    if (c->flags & F_MADE) {
        c->inner->ops->connection_lost(c->inner, reason);
    } else if (c->tf != NULL && !(c->flags & F_SERVER)) {
        /* A client whose handshake never finished: its connect failed. */
        tw__tls_factory *tf = c->tf;
        tf->inner_failed = 1;
        if (tf->connected != NULL) {
            tw_deferred *d = tf->connected;
            tf->connected = NULL;
            tw_deferred_errback(d, tw_failure_ref((tw_failure *)reason));
            tw_deferred_unref(d);
        }
        tw_factory *w = tf->wrapped;
        if (w->ops->client_connection_failed != NULL)
            w->ops->client_connection_failed(w, reason);
    }
    tw_failure_unref(own);
}

/* The stream's EOF. After close_notify it is the end of an orderly close;
 * without one, the peer (or someone on the path) cut the data short. */
static void base_read_lost(tw_protocol *p)
{
    tls_conn *c = conn_of(p);
    if (c->stage >= S_CLOSED)
        return;
    if (c->stage == S_HANDSHAKING) {
        handshake_failed(c, TW_TLS_FAIL_PEER_CLOSED);
        fail(c, TW_ETLS, 0, TW_CLOSE_PEER, "the peer closed during the handshake");
        return;
    }
    if (!(c->flags & F_PEER_CLOSED)) {
        fail(c, TW_ETLS, 0, TW_CLOSE_PEER,
             "the peer closed without close_notify (the data may be truncated)");
        return;
    }
    if (c->flags & F_PEER_TOLD)
        return; /* the inner protocol is half-closed already, and decides */
    lose(c);
}

static void base_write_lost(tw_protocol *p)
{
    tls_conn *c = conn_of(p);
    if ((c->flags & F_MADE) && c->inner->ops->write_connection_lost != NULL)
        c->inner->ops->write_connection_lost(c->inner);
}

static void base_pause(tw_protocol *p)
{
    tls_conn *c = conn_of(p);
    if ((c->flags & F_MADE) && c->stage < S_LOST && c->inner->ops->pause_producing != NULL)
        c->inner->ops->pause_producing(c->inner);
}

static void base_resume(tw_protocol *p)
{
    tls_conn *c = conn_of(p);
    if ((c->flags & F_MADE) && c->stage < S_LOST && c->inner->ops->resume_producing != NULL)
        c->inner->ops->resume_producing(c->inner);
}

static void base_destroy(tw_protocol *p)
{
    tls_conn *c = conn_of(p);
    cancel_call(&c->timer);
    cancel_call(&c->drain);
    if (reactor(c) != NULL)
        tw__unhold_writes(reactor(c), &c->held);
    if (c->inner->ops->destroy != NULL)
        c->inner->ops->destroy(c->inner);
    SSL_free(c->ssl);
    free(c->pending);
    free(c->keep);
    free(c->why);
    tw_tls_context_unref(c->ctx);
    if (c->tf != NULL)
        tw__tls_factory_unref(c->tf);
    free(c);
}

/* The stream closes for a reason of its own (an idle timeout, a graceful
 * stop, the input budget), noted there already: end the session as the
 * inner protocol's own lose_connection would, so the peer reads the close
 * as an orderly one (what is pending, then close_notify, then FIN). */
static void base_close_requested(tw_protocol *p)
{
    tls_conn *c = conn_of(p);
    if (c->stage == S_HANDSHAKING) {
        /* No session to end yet, and the plaintext waiting for one will
         * not get it: the handshake failed for the stream's reason. */
        handshake_failed(c, failure_below(c));
        c->pending_len = 0;
    }
    lose(c);
}

static size_t base_buffered(tw_protocol *p)
{
    tls_conn *c = conn_of(p);
    size_t n = unread(c) + (size_t)SSL_pending(c->ssl);
    if ((c->flags & F_MADE) && c->inner->ops->buffered_input != NULL)
        n += c->inner->ops->buffered_input(c->inner);
    return n;
}

/* The stream tells of its EOF through read_connection_lost, always: TLS
 * must know whether close_notify came first. */
static const tw_protocol_ops base_ops = {
    .connection_made = base_made,
    .data_received = base_data,
    .connection_lost = base_lost,
    .read_connection_lost = base_read_lost,
    .write_connection_lost = base_write_lost,
    .pause_producing = base_pause,
    .resume_producing = base_resume,
    .destroy = base_destroy,
    .buffered_input = base_buffered,
    .close_requested = base_close_requested,
};

/* ---------------------------------------------------------------- the inner protocol's transport */

static int takes_writes(const tls_conn *c)
{
    return c->stage < S_CLOSED && !(c->flags & (F_WRITE_SHUT_REQ | F_WRITE_SHUT));
}

static int tls_writev(tw_transport *t, const struct iovec *iov, int iovcnt)
{
    tls_conn *c = conn_of_transport(t);
    if (!takes_writes(c))
        return TW_ESTATE;
    size_t total;
    int rc = tw__iov_total(iov, iovcnt, &total);
    if (rc < 0 || total == 0)
        return rc;
    if (total > (size_t)INT_MAX - c->pending_len)
        return -ENOMEM; /* SSL_write takes an int */
    if (c->stage == S_OPEN && c->pending_len == 0 && iovcnt == 1 && total >= RECORD_MAX) {
        /* A full record or more with nothing gathered before it: encrypt
         * it from the caller's buffer, sparing a copy; gathering only
         * helps writes smaller than a record. */
        if (SSL_write(c->ssl, iov[0].iov_base, (int)total) <= 0)
            fail_ssl(c, "cannot encrypt");
        return 0;
    }
    if (tw__buf_reserve(&c->pending, &c->pending_cap, c->pending_len, total, 1024, NULL) < 0)
        return -ENOMEM;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len == 0)
            continue;
        memcpy(c->pending + c->pending_len, iov[i].iov_base, iov[i].iov_len);
        c->pending_len += iov[i].iov_len;
    }
    schedule_release(c);
    return 0;
}

static void lose(tls_conn *c)
{
    if (c->stage >= S_CLOSED || (c->flags & F_LOSE_REQ))
        return;
    if (c->stage == S_HANDSHAKING && c->pending_len == 0) {
        /* Nothing to protect yet: no close_notify without a session. */
        handshake_failed(c, TW_TLS_FAIL_LOCAL);
        c->stage = S_CLOSED;
        cancel_call(&c->timer);
        tw_transport_lose_connection(real(c));
        return;
    }
    c->flags |= F_LOSE_REQ;
    schedule_release(c);
}

static void tls_lose(tw_transport *t)
{
    lose(conn_of_transport(t));
}

static void tls_abort(tw_transport *t)
{
    tls_conn *c = conn_of_transport(t);
    if (c->stage >= S_LOST)
        return;
    if (c->stage < S_CLOSED) {
        handshake_failed(c, TW_TLS_FAIL_LOCAL);
        c->stage = S_CLOSED;
        cancel_call(&c->timer);
        if (reactor(c) != NULL)
            tw__unhold_writes(reactor(c), &c->held);
    }
    tw_transport_abort_connection(real(c));
}

static int tls_lose_write(tw_transport *t)
{
    tls_conn *c = conn_of_transport(t);
    if (c->stage >= S_CLOSED || (c->flags & (F_LOSE_REQ | F_WRITE_SHUT_REQ)))
        return TW_ESTATE;
    c->flags |= F_WRITE_SHUT_REQ;
    schedule_release(c);
    return 0;
}

static void tls_pause(tw_transport *t)
{
    tls_conn *c = conn_of_transport(t);
    c->flags |= F_READ_PAUSED;
    cancel_call(&c->drain);
    if (c->stage < S_LOST)
        tw_transport_pause_producing(real(c));
}

static void tls_resume(tw_transport *t)
{
    tls_conn *c = conn_of_transport(t);
    if (!(c->flags & F_READ_PAUSED) || c->stage >= S_LOST)
        return;
    c->flags &= ~(unsigned)F_READ_PAUSED;
    tw_transport_resume_producing(real(c));
    /* Records that came before the pause still wait in OpenSSL; the
     * stream will not read them again, so deliver them from the loop. */
    tw_reactor *r = reactor(c);
    if (c->stage == S_OPEN && c->drain == NULL && r != NULL &&
        (SSL_pending(c->ssl) > 0 || unread(c) > 0) &&
        tw_reactor_call_later(r, 0, drain_later, c, &c->drain) < 0)
        c->drain = NULL;
}

static int tls_get_peer(tw_transport *t, tw_address *out)
{
    tls_conn *c = conn_of_transport(t);
    return c->stage >= S_LOST ? -ENOTCONN : tw_transport_get_peer(real(c), out);
}

static int tls_get_host(tw_transport *t, tw_address *out)
{
    tls_conn *c = conn_of_transport(t);
    return c->stage >= S_LOST ? -ENOTCONN : tw_transport_get_host(real(c), out);
}

static size_t tls_buffer_size(tw_transport *t)
{
    tls_conn *c = conn_of_transport(t);
    return c->pending_len + (c->stage >= S_LOST ? 0 : tw_transport_write_buffer_size(real(c)));
}

static void tls_set_watermarks(tw_transport *t, size_t high, size_t low)
{
    tls_conn *c = conn_of_transport(t);
    if (c->stage < S_LOST)
        tw_transport_set_write_watermarks(real(c), high, low);
}

static int tls_fileno(tw_transport *t)
{
    tls_conn *c = conn_of_transport(t);
    return c->stage >= S_LOST ? -1 : tw_transport_fileno(real(c));
}

/* The stream paces the producer by its queue, which is where the
 * encrypted bytes wait. */
static int tls_register_producer(tw_transport *t, tw_producer *p, int streaming)
{
    tls_conn *c = conn_of_transport(t);
    if (c->stage >= S_LOST) {
        if (p->ops->stop_producing != NULL)
            p->ops->stop_producing(p);
        return TW_ESTATE;
    }
    return tw_transport_register_producer(real(c), p, streaming);
}

static void tls_unregister_producer(tw_transport *t)
{
    tls_conn *c = conn_of_transport(t);
    if (c->stage < S_LOST)
        tw_transport_unregister_producer(real(c));
}

/* The stream counts the close; the reason the inner protocol names goes
 * there, as it would without TLS. */
static void tls_set_close_reason(tw_transport *t, tw_close_reason reason)
{
    tls_conn *c = conn_of_transport(t);
    if (c->stage < S_LOST)
        tw_transport_set_close_reason(real(c), reason);
}

static int tls_disconnecting(tw_transport *t)
{
    tls_conn *c = conn_of_transport(t);
    return c->stage >= S_CLOSED || (c->flags & F_LOSE_REQ) || tw_transport_disconnecting(real(c));
}

static const tw_transport_ops tls_transport_ops = {
    .writev = tls_writev,
    .lose_connection = tls_lose,
    .abort_connection = tls_abort,
    .lose_write_connection = tls_lose_write,
    .pause_producing = tls_pause,
    .resume_producing = tls_resume,
    .get_peer = tls_get_peer,
    .get_host = tls_get_host,
    .write_buffer_size = tls_buffer_size,
    .set_write_watermarks = tls_set_watermarks,
    .fileno = tls_fileno,
    .register_producer = tls_register_producer,
    .unregister_producer = tls_unregister_producer,
    .disconnecting = tls_disconnecting,
    .set_close_reason = tls_set_close_reason,
};

/* ---------------------------------------------------------------- making one */

/* Whether @p host is an IP address: checked as one, never sent as SNI. */
static int numeric_host(const char *host)
{
    tw_address a;
    return tw_address_from_ip(&a, host, 0) == 0;
}

/* Name the server to send and check on a client's SSL. */
static int set_server_name(tls_conn *c, const char *host)
{
    if (host == NULL)
        return c->ctx->verify ? -EINVAL : 0;
    if (numeric_host(host)) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);
        if (c->ctx->verify && X509_VERIFY_PARAM_set1_ip_asc(vp, host) != 1)
            return -EINVAL;
        return 0;
    }
    if (SSL_set_tlsext_host_name(c->ssl, host) != 1)
        return -EINVAL;
    if (c->ctx->verify) {
        SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (SSL_set1_host(c->ssl, host) != 1)
            return -EINVAL;
    }
    return 0;
}

int tw__tls_conn_new(tw_tls_context *ctx, tw__tls_factory *tf, tw_protocol *inner,
                     tw_tls_side side, const char *hostname, tw_protocol **out)
{
    BIO_METHOD *m = bio_method();
    if (m == NULL)
        return -ENOMEM;
    tls_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return -ENOMEM;
    c->ssl = SSL_new(ctx->ssl_ctx);
    BIO *bio = BIO_new(m);
    if (c->ssl == NULL || bio == NULL || tw__tls_tickets_attach(ctx, c->ssl) < 0) {
        SSL_free(c->ssl);
        BIO_free(bio);
        free(c);
        ERR_clear_error();
        return -ENOMEM;
    }
    BIO_set_data(bio, c);
    BIO_set_init(bio, 1);
    /* One BIO both ways: the SSL takes the one reference. */
    SSL_set_bio(c->ssl, bio, bio);
    c->ctx = tw_tls_context_ref(ctx);
    if (side == TW_TLS_SERVER) {
        c->flags |= F_SERVER;
        SSL_set_accept_state(c->ssl);
    } else {
        SSL_set_connect_state(c->ssl);
        int rc = set_server_name(c, hostname != NULL ? hostname : ctx->hostname);
        if (rc < 0) {
            SSL_free(c->ssl);
            tw_tls_context_unref(c->ctx);
            free(c);
            ERR_clear_error();
            return rc;
        }
    }
    c->inner = inner;
    c->tf = tf;
    if (tf != NULL)
        tw__tls_factory_ref(tf);
    c->base.ops = &base_ops;
    c->transport.ops = &tls_transport_ops;
    c->transport.protocol = inner;
    c->held.release = held_release;
    c->stage = S_HANDSHAKING;
    inner->transport = &c->transport;
    *out = &c->base;
    return 0;
}

tw_protocol *tw__tls_conn_inner(tw_protocol *p)
{
    return p != NULL && p->ops == &base_ops ? conn_of(p)->inner : NULL;
}

TW_API int tw_transport_start_tls(tw_transport *t, tw_tls_context *ctx, tw_tls_side server_side)
{
    if (t == NULL || ctx == NULL)
        return -EINVAL;
    if (t->ops == &tls_transport_ops || tw_transport_disconnecting(t) ||
        tw_transport_fileno(t) < 0 || t->protocol == NULL)
        return TW_ESTATE;
    tw_protocol *inner = t->protocol;
    tw_protocol *base;
    int rc = tw__tls_conn_new(ctx, NULL, inner, server_side, NULL, &base);
    if (rc < 0)
        return rc;
    tls_conn *c = conn_of(base);
    c->flags |= F_MADE | F_STARTED;
    base->transport = t;
    base->factory = inner->factory;
    c->transport.reactor = t->reactor;
    /* From here the stream drives the TLS layer, which drives the protocol. */
    t->protocol = base;
    start(c);
    return 0;
}

TW_API int tw_transport_is_tls(tw_transport *t)
{
    return t != NULL && t->ops == &tls_transport_ops;
}

static void copy(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src != NULL ? src : "");
}

TW_API int tw_tls_get_info(tw_transport *t, tw_tls_info *out)
{
    if (!tw_transport_is_tls(t))
        return TW_ESTATE;
    tls_conn *c = conn_of_transport(t);
    memset(out, 0, sizeof *out);
    out->handshake_done = c->stage >= S_OPEN && SSL_is_init_finished(c->ssl);
    copy(out->version, sizeof out->version, SSL_get_version(c->ssl));
    copy(out->cipher, sizeof out->cipher, SSL_get_cipher_name(c->ssl));
    const unsigned char *alpn;
    unsigned alpn_len;
    SSL_get0_alpn_selected(c->ssl, &alpn, &alpn_len);
    if (alpn != NULL)
        snprintf(out->alpn, sizeof out->alpn, "%.*s", (int)alpn_len, (const char *)alpn);
    copy(out->server_name, sizeof out->server_name,
         SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name));
    X509 *peer = SSL_get1_peer_certificate(c->ssl);
    if (peer != NULL) {
        BIO *b = BIO_new(BIO_s_mem());
        if (b != NULL) {
            X509_NAME_print_ex(b, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253);
            char *text;
            long n = BIO_get_mem_data(b, &text);
            snprintf(out->peer_subject, sizeof out->peer_subject, "%.*s", (int)n, text);
            BIO_free(b);
        }
        long v = SSL_get_verify_result(c->ssl);
        out->peer_verified = v == X509_V_OK;
        if (v != X509_V_OK)
            copy(out->verify_error, sizeof out->verify_error, X509_verify_cert_error_string(v));
        X509_free(peer);
    }
    ERR_clear_error();
    return 0;
}
