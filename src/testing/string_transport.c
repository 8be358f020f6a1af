/* SPDX-License-Identifier: MIT */
/*
 * The string transport of the test kit (include/twine/testing.h): a
 * tw_transport_ops table whose "socket" is an output record and a counter
 * of queued bytes. It keeps the stream transport's rules (src/net/stream.c) --
 * writes refused once closing, watermarks crossed on the way up and down,
 * producers paused, pulled and stopped -- so that a protocol tested here
 * behaves the same over a socket; only the timing is the test's: what the
 * loop would do later (connection_lost, write_connection_lost) happens when
 * the test calls tw_string_transport_run_close().
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testing/testing_internal.h"

static tw_string_transport *from(tw_transport *t)
{
    return tw_container_of(t, tw_string_transport, base);
}

static void check_high_watermark(tw_string_transport *m)
{
    if (m->queued <= m->high_wm)
        return;
    tw_protocol *p = m->base.protocol;
    if (m->producer == NULL && !m->producer_paused) { /* a registered one instead */
        m->producer_paused = 1;
        m->producer_pause_calls++;
        if (p->ops->pause_producing != NULL)
            p->ops->pause_producing(p);
    }
    tw_producer *prod = m->producer;
    if (prod != NULL && m->streaming && !m->registered_paused) {
        m->registered_paused = 1;
        if (prod->ops->pause_producing != NULL)
            prod->ops->pause_producing(prod);
    }
}

static int mem_writev(tw_transport *t, const struct iovec *iov, int iovcnt)
{
    tw_string_transport *m = from(t);
    /* After lose_connection a stream still takes writes and sends them
     * before its FIN; only an abort, a shut write side or a lost
     * connection refuse them. */
    if (m->abort_calls > 0 || m->write_shut_requested || m->lost)
        return TW_ESTATE;
    if (iovcnt < 0)
        return -EINVAL;
    if (m->write_error != 0)
        return m->write_error;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > SIZE_MAX / 2 - total)
            return -ENOMEM; /* a record that large could never be allocated */
        total += iov[i].iov_len;
    }
    if (total == 0)
        return 0;
    if (total > SIZE_MAX / 2 - m->out_len)
        return -ENOMEM;
    if (m->out_len + total > m->out_cap) {
        size_t cap = m->out_cap ? m->out_cap : 1024;
        while (cap < m->out_len + total)
            cap *= 2;
        char *p = realloc(m->out, cap);
        if (p == NULL)
            return -ENOMEM;
        m->out = p;
        m->out_cap = cap;
    }
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > 0)
            memcpy(m->out + m->out_len, iov[i].iov_base, iov[i].iov_len);
        m->out_len += iov[i].iov_len;
    }
    m->writes++;
    if (m->hold) {
        m->queued += total;
        check_high_watermark(m);
    }
    return 0;
}

static void mem_lose(tw_transport *t)
{
    tw_string_transport *m = from(t);
    m->lose_calls++;
    m->closing = 1;
}

static void mem_abort(tw_transport *t)
{
    tw_string_transport *m = from(t);
    m->abort_calls++;
    m->closing = 1;
    m->queued = 0;
}

static int mem_lose_write(tw_transport *t)
{
    tw_string_transport *m = from(t);
    if (m->closing || m->write_shut_requested || m->lost)
        return TW_ESTATE;
    m->lose_write_calls++;
    m->write_shut_requested = 1;
    return 0;
}

static void mem_pause(tw_transport *t)
{
    tw_string_transport *m = from(t);
    m->pause_calls++;
    m->reading_paused = 1;
}

static void mem_resume(tw_transport *t)
{
    tw_string_transport *m = from(t);
    m->resume_calls++;
    m->reading_paused = 0;
}

static int mem_get_peer(tw_transport *t, tw_address *out)
{
    *out = from(t)->peer;
    return 0;
}

static int mem_get_host(tw_transport *t, tw_address *out)
{
    *out = from(t)->host;
    return 0;
}

static size_t mem_buffer_size(tw_transport *t)
{
    return from(t)->queued;
}

static void mem_set_watermarks(tw_transport *t, size_t high, size_t low)
{
    tw_string_transport *m = from(t);
    m->high_wm = high;
    m->low_wm = low > high ? high : low;
}

static int mem_register_producer(tw_transport *t, tw_producer *prod, int streaming)
{
    tw_string_transport *m = from(t);
    if (m->producer != NULL)
        return TW_ESTATE;
    if (m->closing || m->lost) {
        if (prod->ops->stop_producing != NULL)
            prod->ops->stop_producing(prod);
        return TW_ESTATE;
    }
    m->producer = prod;
    m->streaming = streaming != 0;
    m->registered_paused = 0;
    if (m->streaming)
        check_high_watermark(m);
    return 0;
}

static void mem_unregister_producer(tw_transport *t)
{
    tw_string_transport *m = from(t);
    m->producer = NULL;
    m->registered_paused = 0;
}

static int mem_disconnecting(tw_transport *t)
{
    const tw_string_transport *m = from(t);
    return m->closing || m->lost;
}

static int mem_fileno(tw_transport *t)
{
    (void)t;
    return -1; /* no descriptor behind it, as documented for tw_transport_fileno() */
}

static const tw_transport_ops mem_ops = {
    .writev = mem_writev,
    .lose_connection = mem_lose,
    .abort_connection = mem_abort,
    .lose_write_connection = mem_lose_write,
    .pause_producing = mem_pause,
    .resume_producing = mem_resume,
    .get_peer = mem_get_peer,
    .get_host = mem_get_host,
    .write_buffer_size = mem_buffer_size,
    .set_write_watermarks = mem_set_watermarks,
    .fileno = mem_fileno,
    .register_producer = mem_register_producer,
    .unregister_producer = mem_unregister_producer,
    .disconnecting = mem_disconnecting,
};

tw_string_transport *tw__string_transport_attach(tw_reactor *r, tw_protocol *p)
{
    tw_string_transport *m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    m->base.ops = &mem_ops;
    m->base.protocol = p;
    m->base.reactor = r;
    m->high_wm = TW_WRITE_HIGH_WATERMARK;
    m->low_wm = TW_WRITE_LOW_WATERMARK;
    tw_address_from_ip(&m->peer, "127.0.0.1", 40000);
    tw_address_from_ip(&m->host, "127.0.0.1", 7);
    p->transport = &m->base;
    return m;
}

void tw__string_transport_make(tw_string_transport *m)
{
    tw_protocol *p = m->base.protocol;
    m->made = 1;
    if (p->ops->connection_made != NULL)
        p->ops->connection_made(p);
}

TW_API tw_string_transport *tw_string_transport_new(tw_reactor *r, tw_protocol *p)
{
    tw_string_transport *m = tw__string_transport_attach(r, p);
    if (m != NULL)
        tw__string_transport_make(m);
    return m;
}

TW_API tw_string_transport *tw_string_transport_open(tw_reactor *r, tw_factory *f)
{
    tw_address peer;
    tw_address_from_ip(&peer, "127.0.0.1", 40000);
    tw_factory_start(f);
    tw_protocol *p = f->ops->build_protocol(f, &peer);
    if (p == NULL) {
        tw_factory_stop(f);
        return NULL;
    }
    p->factory = f;
    tw_string_transport *m = tw__string_transport_attach(r, p);
    if (m == NULL) {
        if (p->ops->destroy != NULL)
            p->ops->destroy(p);
        tw_factory_stop(f);
        return NULL;
    }
    m->factory = f;
    tw__string_transport_make(m);
    return m;
}

TW_API void tw_string_transport_feed(tw_string_transport *m, const void *data, size_t len)
{
    tw_protocol *p = m->base.protocol;
    if (!m->lost && !m->closing && !m->read_eof && p->ops->data_received != NULL)
        p->ops->data_received(p, data, len);
}

TW_API void tw_string_transport_feed_str(tw_string_transport *m, const char *s)
{
    tw_string_transport_feed(m, s, strlen(s));
}

static void deliver_lost(tw_string_transport *m, int code)
{
    if (m->lost)
        return;
    m->lost = 1;
    m->lost_code = code;
    tw_producer *prod = m->producer;
    m->producer = NULL;
    if (prod != NULL && prod->ops->stop_producing != NULL)
        prod->ops->stop_producing(prod);
    tw_protocol *p = m->base.protocol;
    tw_failure *reason = tw_failure_new(code, NULL);
    if (p->ops->connection_lost != NULL)
        p->ops->connection_lost(p, reason);
    tw_failure_unref(reason);
}

TW_API void tw_string_transport_feed_eof(tw_string_transport *m)
{
    if (m->lost || m->closing || m->read_eof)
        return;
    m->read_eof = 1;
    tw_protocol *p = m->base.protocol;
    /* As src/net/stream.c: half-close only for a protocol that opted in and
     * whose own output is still open; any other EOF closes. */
    if (p->ops->read_connection_lost != NULL && !m->write_shut_requested) {
        p->ops->read_connection_lost(p);
        return;
    }
    deliver_lost(m, TW_EDONE);
}

TW_API const char *tw_string_transport_output(const tw_string_transport *m, size_t *len)
{
    if (len != NULL)
        *len = m->out_len;
    return m->out;
}

TW_API int tw_string_transport_output_is(const tw_string_transport *m, const char *s)
{
    size_t n = strlen(s);
    return m->out_len == n && (n == 0 || memcmp(m->out, s, n) == 0);
}

TW_API void tw_string_transport_clear_output(tw_string_transport *m)
{
    m->out_len = 0;
}

TW_API void tw_string_transport_set_hold(tw_string_transport *m, int on)
{
    m->hold = on;
    if (!on)
        tw_string_transport_drain(m, (size_t)-1);
}

TW_API void tw_string_transport_drain(tw_string_transport *m, size_t n)
{
    m->queued = n >= m->queued ? 0 : m->queued - n;
    if (m->lost)
        return;
    tw_protocol *p = m->base.protocol;
    if (m->producer_paused && m->queued <= m->low_wm) {
        m->producer_paused = 0;
        m->producer_resume_calls++;
        if (p->ops->resume_producing != NULL)
            p->ops->resume_producing(p);
    }
    tw_producer *prod = m->producer;
    if (prod != NULL && m->streaming && m->registered_paused && m->queued <= m->low_wm) {
        m->registered_paused = 0;
        if (prod->ops->resume_producing != NULL)
            prod->ops->resume_producing(prod);
    } else if (prod != NULL && !m->streaming && m->queued == 0 && !m->closing) {
        tw_string_transport_pull(m);
    }
}

TW_API int tw_string_transport_pull(tw_string_transport *m)
{
    tw_producer *prod = m->producer;
    if (prod == NULL || m->streaming)
        return TW_ESTATE;
    if (prod->ops->resume_producing != NULL)
        prod->ops->resume_producing(prod);
    return 0;
}

TW_API int tw_string_transport_run_close(tw_string_transport *m)
{
    if (m->lost)
        return 0;
    tw_protocol *p = m->base.protocol;
    if (m->write_shut_requested && !m->write_lost && m->queued == 0) {
        m->write_lost = 1;
        if (p->ops->write_connection_lost != NULL)
            p->ops->write_connection_lost(p);
        /* Both directions are shut now: the connection is over. */
        if (m->read_eof) {
            deliver_lost(m, TW_EDONE);
            return 1;
        }
    }
    if (m->abort_calls > 0) {
        deliver_lost(m, TW_EABORTED);
        return 1;
    }
    if (m->lose_calls > 0 && m->queued == 0) {
        deliver_lost(m, TW_EDONE);
        return 1;
    }
    return 0;
}

TW_API void tw_string_transport_lose(tw_string_transport *m, int code)
{
    deliver_lost(m, code);
}

TW_API void tw_string_transport_free(tw_string_transport *m)
{
    if (m == NULL)
        return;
    if (!m->lost)
        deliver_lost(m, m->abort_calls ? TW_EABORTED : m->lose_calls ? TW_EDONE : TW_ECONNLOST);
    tw_protocol *p = m->base.protocol;
    if (p->ops->destroy != NULL)
        p->ops->destroy(p);
    if (m->factory != NULL)
        tw_factory_stop(m->factory);
    free(m->out);
    free(m);
}
