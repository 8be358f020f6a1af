/* SPDX-License-Identifier: MIT */
/*
 * The in-memory test transport: see memtransport.h.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "memtransport.h"

static tu_mem *from(tw_transport *t)
{
    return tw_container_of(t, tu_mem, base);
}

static void check_high_watermark(tu_mem *m)
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
    tu_mem *m = from(t);
    if (m->closing || m->write_shut_requested || m->lost)
        return TW_ESTATE;
    if (iovcnt < 0)
        return -EINVAL;
    if (m->write_error != 0)
        return m->write_error;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (total == 0)
        return 0;
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
    tu_mem *m = from(t);
    m->lose_calls++;
    m->closing = 1;
}

static void mem_abort(tw_transport *t)
{
    tu_mem *m = from(t);
    m->abort_calls++;
    m->closing = 1;
    m->queued = 0;
}

static int mem_lose_write(tw_transport *t)
{
    tu_mem *m = from(t);
    if (m->closing || m->write_shut_requested || m->lost)
        return TW_ESTATE;
    m->lose_write_calls++;
    m->write_shut_requested = 1;
    return 0;
}

static void mem_pause(tw_transport *t)
{
    tu_mem *m = from(t);
    m->pause_calls++;
    m->reading_paused = 1;
}

static void mem_resume(tw_transport *t)
{
    tu_mem *m = from(t);
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
    tu_mem *m = from(t);
    m->high_wm = high;
    m->low_wm = low > high ? high : low;
}

static int mem_register_producer(tw_transport *t, tw_producer *prod, int streaming)
{
    tu_mem *m = from(t);
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
    tu_mem *m = from(t);
    m->producer = NULL;
    m->registered_paused = 0;
}

static int mem_disconnecting(tw_transport *t)
{
    const tu_mem *m = (const tu_mem *)t;
    return m->closing || m->lost;
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
    .fileno = NULL,
    .register_producer = mem_register_producer,
    .unregister_producer = mem_unregister_producer,
    .disconnecting = mem_disconnecting,
};

static tu_mem *attach(tw_protocol *p)
{
    tu_mem *m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    m->base.ops = &mem_ops;
    m->base.protocol = p;
    m->base.reactor = NULL;
    m->high_wm = TW_WRITE_HIGH_WATERMARK;
    m->low_wm = TW_WRITE_LOW_WATERMARK;
    tw_address_from_ip(&m->peer, "127.0.0.1", 40000);
    tw_address_from_ip(&m->host, "127.0.0.1", 7);
    p->transport = &m->base;
    return m;
}

static void make(tu_mem *m)
{
    tw_protocol *p = m->base.protocol;
    m->made = 1;
    if (p->ops->connection_made != NULL)
        p->ops->connection_made(p);
}

tu_mem *tu_mem_new(tw_protocol *p)
{
    tu_mem *m = attach(p);
    if (m != NULL)
        make(m);
    return m;
}

tu_mem *tu_mem_open(tw_factory *f)
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
    tu_mem *m = attach(p);
    if (m == NULL) {
        if (p->ops->destroy != NULL)
            p->ops->destroy(p);
        tw_factory_stop(f);
        return NULL;
    }
    m->factory = f;
    make(m);
    return m;
}

void tu_mem_feed(tu_mem *m, const void *data, size_t len)
{
    tw_protocol *p = m->base.protocol;
    if (!m->lost && !m->closing && p->ops->data_received != NULL)
        p->ops->data_received(p, data, len);
}

void tu_mem_feed_str(tu_mem *m, const char *s)
{
    tu_mem_feed(m, s, strlen(s));
}

const char *tu_mem_output(const tu_mem *m, size_t *len)
{
    if (len != NULL)
        *len = m->out_len;
    return m->out;
}

int tu_mem_output_is(const tu_mem *m, const char *s)
{
    size_t n = strlen(s);
    return m->out_len == n && (n == 0 || memcmp(m->out, s, n) == 0);
}

void tu_mem_clear_output(tu_mem *m)
{
    m->out_len = 0;
}

void tu_mem_set_hold(tu_mem *m, int on)
{
    m->hold = on;
    if (!on)
        tu_mem_drain(m, (size_t)-1);
}

void tu_mem_drain(tu_mem *m, size_t n)
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
        tu_mem_pull(m);
    }
}

int tu_mem_pull(tu_mem *m)
{
    tw_producer *prod = m->producer;
    if (prod == NULL || m->streaming)
        return -1;
    if (prod->ops->resume_producing != NULL)
        prod->ops->resume_producing(prod);
    return 0;
}

static void deliver_lost(tu_mem *m, int code)
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

int tu_mem_run_close(tu_mem *m)
{
    if (m->lost)
        return 0;
    tw_protocol *p = m->base.protocol;
    if (m->write_shut_requested && !m->write_lost && m->queued == 0) {
        m->write_lost = 1;
        if (p->ops->write_connection_lost != NULL)
            p->ops->write_connection_lost(p);
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

void tu_mem_lose(tu_mem *m, int code)
{
    deliver_lost(m, code);
}

void tu_mem_free(tu_mem *m)
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
