/* SPDX-License-Identifier: MIT */
/*
 * Fuzzing the length-prefixed receivers: int8, int16, int32 and netstrings.
 *
 * As for the line receiver, the stream goes in random chunks to a real
 * tw_string_receiver (over the in-memory transport) and to a model that
 * keeps one buffer and parses each message again from its start, following
 * framing.h's rules to the letter. Both run the same handler script (feeding
 * frames and garbage from inside callbacks, closing, pausing, resuming,
 * changing max_length, echoing with send_string); max lengths are small so
 * the limits are hit. They must report the same messages, the same limit
 * errors and the same return codes, and end in the same state; while the
 * receiver is neither paused nor closing, what it buffers must stay within
 * one message of the largest max_length it was given.
 *
 * Input: [framing][max_length][flags][seed x4][script length][script] then
 * the stream.
 */
#include "config.h"

#include <string.h>
#include <twine.h>
#include <twine/framing.h>

#include "evlog.h"
#include "fuzz.h"
#include <twine/testing.h>

#define FEED_BUDGET 4096
#define EVENT_BUDGET 20000

enum { EV_STRING = 'S', EV_LIMIT = 'E', EV_RC = 'F' };

/* ------------------------------------------------------------ the script */

typedef struct side {
    void (*feed)(void *ctx, const void *data, size_t len);
    void (*lose)(void *ctx);
    void (*abort_)(void *ctx);
    void (*pause)(void *ctx);
    void (*resume)(void *ctx);
    void (*set_max)(void *ctx, size_t max);
    void (*send)(void *ctx, const void *data, size_t len);
} side;

typedef struct run {
    const side *ops;
    void *ctx;
    tw_framing framing;
    const uint8_t *script;
    size_t script_len, step;
    size_t fed_by_handlers;
    size_t max_seen; /* the largest max_length set */
    fz_evlog log;
} run;

static uint8_t next_action(run *r)
{
    if (r->script_len == 0)
        return 0;
    return r->script[r->step++ % r->script_len];
}

static const char *const garbage[] = {"0:,", "12:", "x", "01:a,", ":", "3:abc;", "5", ","};

/* Frame @p payload for @p framing into @p out (room for len + 24). */
static size_t frame(tw_framing framing, const void *payload, size_t len, uint8_t *out)
{
    size_t n = 0;
    if (framing == TW_FRAMING_NETSTRING) {
        n = (size_t)snprintf((char *)out, 24, "%zu:", len);
    } else {
        for (unsigned i = 0; i < (unsigned)framing; i++)
            out[n++] = (uint8_t)(len >> (8 * ((unsigned)framing - 1 - i)));
    }
    memcpy(out + n, payload, len);
    n += len;
    if (framing == TW_FRAMING_NETSTRING)
        out[n++] = ',';
    return n;
}

static void handler_feed(run *r, const void *data, size_t len)
{
    if (r->fed_by_handlers + len > FEED_BUDGET)
        return;
    r->fed_by_handlers += len;
    r->ops->feed(r->ctx, data, len);
}

static void on_string(run *r, const void *data, size_t len)
{
    fz_evlog_add(&r->log, EV_STRING, data, len);
    if (r->log.events > EVENT_BUDGET)
        return;
    uint8_t a = next_action(r);
    switch (a & 15) {
    case 6:
    case 7: {
        /* The message again, framed: a peer echoing back. */
        size_t n = len < 200 ? len : 200;
        uint8_t buf[256];
        handler_feed(r, buf, frame(r->framing, data, n, buf));
        break;
    }
    case 8: {
        const char *g = garbage[(a >> 4) & 7];
        handler_feed(r, g, strlen(g));
        break;
    }
    case 9:
        r->ops->lose(r->ctx);
        break;
    case 10:
        r->ops->abort_(r->ctx);
        break;
    case 11:
        r->ops->pause(r->ctx);
        break;
    case 12:
        r->ops->pause(r->ctx);
        r->ops->resume(r->ctx);
        break;
    case 13: {
        size_t max = (size_t)(a >> 4) * 7;
        if (max > r->max_seen)
            r->max_seen = max;
        r->ops->set_max(r->ctx, max);
        break;
    }
    case 14:
        r->ops->send(r->ctx, data, len);
        break;
    case 15:
        handler_feed(r, data, len); /* unframed: whatever it parses as */
        break;
    default:
        break;
    }
}

static void on_limit(run *r, uint64_t length)
{
    fz_evlog_add_u64(&r->log, EV_LIMIT, length);
    uint8_t a = next_action(r);
    switch (a & 3) {
    case 1:
        r->ops->lose(r->ctx);
        break;
    case 2:
        handler_feed(r, "\0\0\0\0", 4); /* ignored: the receiver is broken */
        break;
    case 3:
        r->ops->resume(r->ctx);
        break;
    default:
        break;
    }
}

/* ------------------------------------------------------------ twine's side */

typedef struct tproto {
    tw_protocol base;
    tw_string_receiver sr;
    tw_string_transport *mem;
    run run;
} tproto;

static void t_string(tw_string_receiver *sr, const void *data, size_t len)
{
    tproto *t = tw_container_of(sr, tproto, sr);
    on_string(&t->run, data, len);
}

static void t_limit(tw_string_receiver *sr, uint64_t length)
{
    tproto *t = tw_container_of(sr, tproto, sr);
    FZ_CHECK(tw_string_receiver_broken(sr), "length_limit_exceeded before the receiver broke");
    FZ_CHECK(length > tw_string_receiver_max_length(sr), "%llu is within max_length %zu",
             (unsigned long long)length, tw_string_receiver_max_length(sr));
    on_limit(&t->run, length);
}

static const tw_string_receiver_ops t_ops = {t_string, t_limit};
static const tw_string_receiver_ops t_ops_default_limit = {t_string, NULL};

static void t_feed(void *ctx, const void *data, size_t len)
{
    tproto *t = ctx;
    int rc = tw_string_receiver_data_received(&t->sr, data, len);
    FZ_CHECK(rc == 0 || rc == TW_EPROTO, "data_received returned %d", rc);
}
static void t_lose(void *ctx)
{
    tw_transport_lose_connection(((tproto *)ctx)->base.transport);
}
static void t_abort(void *ctx)
{
    tw_transport_abort_connection(((tproto *)ctx)->base.transport);
}
static void t_pause(void *ctx)
{
    tw_string_receiver_pause_producing(&((tproto *)ctx)->sr);
}
static void t_resume(void *ctx)
{
    tw_string_receiver_resume_producing(&((tproto *)ctx)->sr);
}
static void t_set_max(void *ctx, size_t max)
{
    tw_string_receiver_set_max_length(&((tproto *)ctx)->sr, max);
}
static void t_send(void *ctx, const void *data, size_t len)
{
    tproto *t = ctx;
    tw_framing f = tw_string_receiver_framing(&t->sr);
    int expect = (f == TW_FRAMING_INT8 && len >= 256) || (f == TW_FRAMING_INT16 && len >= 65536)
                     ? TW_ETOOBIG
                 : t->mem->closing ? TW_ESTATE
                                   : 0;
    size_t before;
    tw_string_transport_output(t->mem, &before);
    int rc = tw_string_receiver_send_string(&t->sr, data, len);
    FZ_CHECK(rc == expect, "send_string of %zu bytes returned %d, not %d", len, rc, expect);
    if (rc == 0) {
        /* What was written is the message, framed. */
        size_t after;
        const char *out = tw_string_transport_output(t->mem, &after);
        uint8_t *want = malloc(len + 24);
        FZ_CHECK(want != NULL, "out of memory");
        size_t n = frame(f, data, len, want);
        FZ_CHECK(after - before == n && memcmp(out + before, want, n) == 0,
                 "send_string wrote the wrong bytes");
        free(want);
    }
}

static const side twine_side = {t_feed, t_lose, t_abort, t_pause, t_resume, t_set_max, t_send};

static void tp_data_received(tw_protocol *p, const void *data, size_t len)
{
    t_feed(tw_container_of(p, tproto, base), data, len);
}

static void tp_connection_lost(tw_protocol *p, const tw_failure *reason)
{
    (void)p;
    (void)reason;
}

static const tw_protocol_ops tp_ops = {
    .data_received = tp_data_received,
    .connection_lost = tp_connection_lost,
};

/* ------------------------------------------------------------ the model */

typedef struct model {
    uint8_t *buf;
    size_t len, cap;
    tw_framing framing;
    size_t max_length;
    int paused, busy, broken, closing, default_limit;
    run run;
} model;

static void m_append(model *m, const void *data, size_t len)
{
    fz_append(&m->buf, &m->len, &m->cap, data, len);
}

static void m_drop(model *m, size_t n)
{
    memmove(m->buf, m->buf + n, m->len - n);
    m->len -= n;
}

static void m_break(model *m)
{
    m->broken = 1;
    m->len = 0;
}

/*
 * Parse the message at the front of the buffer.
 * @return 1 if one was delivered, 0 if more bytes are needed, -1 if the
 *         framing broke.
 */
static int m_parse_one(model *m)
{
    size_t hdr, length;
    if (m->framing == TW_FRAMING_NETSTRING) {
        size_t i = 0;
        uint64_t v = 0;
        for (;; i++) {
            if (i == m->len)
                return 0;
            uint8_t c = m->buf[i];
            if (c == ':') {
                if (i == 0) {
                    m_break(m);
                    m->closing = 1;
                    return -1;
                }
                break;
            }
            if (c < '0' || c > '9' || (i > 0 && v == 0) ||
                v * 10 + (uint64_t)(c - '0') > m->max_length) {
                m_break(m);
                m->closing = 1;
                return -1;
            }
            v = v * 10 + (uint64_t)(c - '0');
        }
        hdr = i + 1;
        length = (size_t)v;
        if (m->len < hdr + length + 1)
            return 0;
        if (m->buf[hdr + length] != ',') {
            m_break(m);
            m->closing = 1;
            return -1;
        }
    } else {
        hdr = (size_t)m->framing;
        if (m->len < hdr)
            return 0;
        uint64_t v = 0;
        for (size_t i = 0; i < hdr; i++)
            v = v << 8 | m->buf[i];
        if (v > m->max_length) {
            m_break(m);
            if (m->default_limit)
                m->closing = 1;
            else
                on_limit(&m->run, v);
            return -1;
        }
        length = (size_t)v;
        if (m->len < hdr + length)
            return 0;
    }
    uint8_t *msg = malloc(length ? length : 1);
    FZ_CHECK(msg != NULL, "out of memory");
    memcpy(msg, m->buf + hdr, length);
    m_drop(m, hdr + length + (m->framing == TW_FRAMING_NETSTRING ? 1 : 0));
    on_string(&m->run, msg, length);
    free(msg);
    return 1;
}

static int m_data_received(model *m, const void *data, size_t len)
{
    if (m->broken)
        return TW_EPROTO;
    m_append(m, data, len);
    if (m->busy)
        return 0;
    m->busy = 1;
    int rc = 0;
    while (!m->paused && !m->broken) {
        int r = m_parse_one(m);
        if (r < 0)
            rc = TW_EPROTO;
        if (r <= 0)
            break;
        if (m->closing)
            break;
    }
    if (m->broken)
        m->len = 0;
    m->busy = 0;
    return rc;
}

static void m_feed(void *ctx, const void *data, size_t len)
{
    m_data_received(ctx, data, len);
}
static void m_lose(void *ctx)
{
    ((model *)ctx)->closing = 1;
}
static void m_pause(void *ctx)
{
    ((model *)ctx)->paused = 1;
}
static void m_resume(void *ctx)
{
    model *m = ctx;
    m->paused = 0;
    m_data_received(m, NULL, 0);
}
static void m_set_max(void *ctx, size_t max)
{
    ((model *)ctx)->max_length = max;
}
static void m_send(void *ctx, const void *data, size_t len)
{
    (void)ctx;
    (void)data;
    (void)len;
}

static const side model_side = {m_feed, m_lose, m_lose, m_pause, m_resume, m_set_max, m_send};

/* ------------------------------------------------------------ the driver */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_quiet_logs();
    fz_in in = {data, size};
    static const tw_framing framings[] = {TW_FRAMING_NETSTRING, TW_FRAMING_INT8, TW_FRAMING_INT16,
                                          TW_FRAMING_INT32};
    tw_framing framing = framings[fz_byte(&in, 0) & 3];
    uint8_t maxb = fz_byte(&in, 16);
    uint8_t flags = fz_byte(&in, 0);
    fz_rng seed;
    fz_rng_seed(&seed, &in);
    size_t script_len;
    const uint8_t *script = fz_bytes(&in, fz_byte(&in, 0) % 32, &script_len);
    size_t max_length = maxb < 200 ? maxb % 40 : maxb < 255 ? 300 : TW_STRING_DEFAULT_MAX_LENGTH;
    int default_limit = flags & 1, outside_resume = (flags >> 1) & 1;
    const uint8_t *stream = in.p;
    size_t stream_len = in.n;

    tproto *t = calloc(1, sizeof *t);
    FZ_CHECK(t != NULL, "out of memory");
    t->base.ops = &tp_ops;
    FZ_CHECK(tw_string_receiver_init(&t->sr, &t->base, framing,
                                     default_limit ? &t_ops_default_limit : &t_ops) == 0,
             "init");
    tw_string_receiver_set_max_length(&t->sr, max_length);
    t->run = (run){&twine_side, t, framing, script, script_len, 0, 0, max_length, {0}};
    t->mem = tw_string_transport_new(NULL, &t->base);
    FZ_CHECK(t->mem != NULL, "out of memory");

    model *m = calloc(1, sizeof *m);
    FZ_CHECK(m != NULL, "out of memory");
    m->framing = framing;
    m->max_length = max_length;
    m->default_limit = default_limit;
    m->run = (run){&model_side, m, framing, script, script_len, 0, 0, max_length, {0}};

    for (int pass = 0; pass < 2; pass++) {
        fz_rng rng = seed;
        size_t at = 0;
        while (at < stream_len) {
            int closing = pass == 0 ? t->mem->closing : m->closing;
            if (closing)
                break;
            size_t n = fz_chunk(&rng, stream_len - at);
            int rc;
            if (pass == 0) {
                rc = tw_string_receiver_data_received(&t->sr, stream + at, n);
                fz_evlog_add_u64(&t->run.log, EV_RC, (uint64_t)(int64_t)rc);
                if (!tw_string_receiver_paused(&t->sr) && !t->mem->closing &&
                    !tw_string_receiver_broken(&t->sr)) {
                    size_t b = tw_string_receiver_buffered(&t->sr);
                    FZ_CHECK(b <= t->run.max_seen + 1,
                             "%zu bytes buffered, max_length was never over %zu", b,
                             t->run.max_seen);
                }
            } else {
                rc = m_data_received(m, stream + at, n);
                fz_evlog_add_u64(&m->run.log, EV_RC, (uint64_t)(int64_t)rc);
            }
            at += n;
            uint32_t x = fz_rng_next(&rng);
            closing = pass == 0 ? t->mem->closing : m->closing;
            int paused = pass == 0 ? tw_string_receiver_paused(&t->sr) : m->paused;
            if (outside_resume && (x & 3) == 0 && paused && !closing)
                (pass == 0 ? t_resume : m_resume)(pass == 0 ? (void *)t : (void *)m);
        }
        int closing = pass == 0 ? t->mem->closing : m->closing;
        int paused = pass == 0 ? tw_string_receiver_paused(&t->sr) : m->paused;
        if (paused && !closing)
            (pass == 0 ? t_resume : m_resume)(pass == 0 ? (void *)t : (void *)m);
    }

    FZ_CHECK(fz_evlog_same(&t->run.log, &m->run.log),
             "twine's events differ from the model's (%zu vs %zu events)", t->run.log.events,
             m->run.log.events);
    FZ_CHECK(!tw_string_receiver_broken(&t->sr) == !m->broken, "broken states differ");
    FZ_CHECK(!tw_string_receiver_paused(&t->sr) == !m->paused, "pause states differ");
    FZ_CHECK(!t->mem->closing == !m->closing, "connection states differ");
    if (m->broken)
        FZ_CHECK(tw_string_receiver_buffered(&t->sr) == 0, "a broken receiver holds %zu bytes",
                 tw_string_receiver_buffered(&t->sr));

    tw_string_transport_free(t->mem);
    tw_string_receiver_cleanup(&t->sr);
    free(t->run.log.p);
    free(t);
    free(m->buf);
    free(m->run.log.p);
    free(m);
    return 0;
}
