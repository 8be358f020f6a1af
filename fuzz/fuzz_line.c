/* SPDX-License-Identifier: MIT */
/*
 * Fuzzing the line receiver against Twisted's LineReceiver.
 *
 * The stream is fed to a real tw_line_receiver (over the in-memory
 * transport) in random chunks, and to a model: a line-by-line transcription
 * of Twisted's LineReceiver.dataReceived, one buffer and no cleverness. Both
 * run the same handler script, which switches to raw mode and back
 * (set_line_mode with the raw bytes it did not take), feeds bytes from
 * inside callbacks, closes the connection, pauses and resumes, and changes
 * the delimiter and max_length. The two must report the same events in the
 * same order -- lines, raw data with its chunking, over-long data -- and
 * leave the same bytes buffered. On the twine side every byte fed must also
 * be accounted for: delivered (with its delimiter) or still buffered.
 *
 * Input: [delimiter kind][max_length][flags][seed x4][script length][script]
 * [custom delimiter bytes, when chosen] then the stream.
 */
#include "config.h"

#include <string.h>
#include <twine.h>
#include <twine/line.h>

#include "evlog.h"
#include "fuzz.h"
#include <twine/testing.h>

/* Bytes handlers may feed in one run, so that a handler feeding every line back ends. */
#define FEED_BUDGET 4096
/* Events in one run: a bound on work, whatever the script does. */
#define EVENT_BUDGET 20000

enum { EV_LINE = 'L', EV_RAW = 'R', EV_EXCEEDED = 'X' };

/* ------------------------------------------------------------ the script */

/*
 * What handlers can do, on either side. Handlers are written once against
 * this table, so that twine and the model run exactly the same code.
 */
typedef struct side {
    void (*set_raw)(void *ctx);
    void (*set_line)(void *ctx, const void *extra, size_t len);
    void (*feed)(void *ctx, const void *data, size_t len);
    void (*lose)(void *ctx);
    void (*abort_)(void *ctx);
    void (*pause)(void *ctx);
    void (*resume)(void *ctx);
    void (*set_delim)(void *ctx, const void *d, size_t len);
    void (*set_max)(void *ctx, size_t max);
    void (*send_line)(void *ctx, const void *line, size_t len);
} side;

typedef struct run {
    const side *ops;
    void *ctx;
    const uint8_t *script;
    size_t script_len, step;
    size_t fed_by_handlers; /* against FEED_BUDGET */
    fz_evlog log;
    int echo;
} run;

static uint8_t next_action(run *r)
{
    if (r->script_len == 0)
        return 0;
    return r->script[r->step++ % r->script_len];
}

static const char *const feeds[] = {"x",  "ab\r\n", "\n", "line\r\nnext",
                                    "\r", "\0\0",   "a",  "zz\nzz\r\n"};
static const char *const delims[] = {"\n", "\r\n", "\0", "ab", "aab", "\r\n\r\n", "x", "\r"};

static void handler_feed(run *r, const void *data, size_t len)
{
    if (r->fed_by_handlers + len > FEED_BUDGET)
        return;
    r->fed_by_handlers += len;
    r->ops->feed(r->ctx, data, len);
}

static void on_line(run *r, const char *line, size_t len)
{
    fz_evlog_add(&r->log, EV_LINE, line, len);
    if (r->echo)
        r->ops->send_line(r->ctx, line, len);
    if (r->log.events > EVENT_BUDGET)
        return;
    uint8_t a = next_action(r);
    switch (a & 15) {
    case 6:
        r->ops->set_raw(r->ctx);
        break;
    case 7: {
        size_t i = (a >> 4) & 7;
        handler_feed(r, feeds[i], i == 5 ? 2 : strlen(feeds[i]));
        break;
    }
    case 8:
        r->ops->lose(r->ctx);
        break;
    case 9:
        r->ops->abort_(r->ctx);
        break;
    case 10:
        r->ops->pause(r->ctx);
        break;
    case 11:
        r->ops->pause(r->ctx);
        r->ops->resume(r->ctx);
        break;
    case 12: {
        const char *d = delims[(a >> 4) & 7];
        r->ops->set_delim(r->ctx, d, ((a >> 4) & 7) == 2 ? 1 : strlen(d));
        break;
    }
    case 13:
        r->ops->set_max(r->ctx, (size_t)(a >> 4) * 3);
        break;
    case 14:
        r->ops->set_raw(r->ctx);
        handler_feed(r, line, len); /* the line again, as raw data */
        break;
    case 15:
        handler_feed(r, line, len); /* the line again, without its delimiter */
        r->ops->resume(r->ctx);
        break;
    default:
        break;
    }
}

static void on_raw(run *r, const void *data, size_t len)
{
    fz_evlog_add(&r->log, EV_RAW, data, len);
    if (r->log.events > EVENT_BUDGET)
        return;
    uint8_t a = next_action(r);
    switch (a & 7) {
    case 3:
    case 4:
    case 5: {
        /* Take some bytes, give the rest back in line mode, as a protocol
         * reading a body of known length does. */
        size_t take = (size_t)(a >> 3) % (len + 1);
        r->ops->set_line(r->ctx, (const char *)data + take, len - take);
        break;
    }
    case 6:
        r->ops->lose(r->ctx);
        break;
    case 7:
        r->ops->pause(r->ctx);
        break;
    default:
        break;
    }
}

static void on_exceeded(run *r, const void *data, size_t len)
{
    fz_evlog_add(&r->log, EV_EXCEEDED, data, len);
    if (r->log.events > EVENT_BUDGET)
        return;
    uint8_t a = next_action(r);
    switch (a & 7) {
    case 1:
        r->ops->lose(r->ctx);
        break;
    case 2:
        handler_feed(r, feeds[(a >> 3) & 7], strlen(feeds[(a >> 3) & 7]));
        break;
    case 3:
        r->ops->set_max(r->ctx, (size_t)(a >> 3) * 5);
        break;
    case 4:
        r->ops->set_raw(r->ctx);
        break;
    default:
        break;
    }
}

/* ------------------------------------------------------------ twine's side */

typedef struct tproto {
    tw_protocol base;
    tw_line_receiver lr;
    tw_string_transport *mem;
    run run;
    size_t delivered; /* bytes handed to callbacks, line delimiters included */
    size_t fed;       /* bytes given to the receiver, by the driver or the handlers */
    int dropped;      /* an over-long line went to the default handler */
} tproto;

static tproto *tp_of(tw_line_receiver *lr)
{
    return tw_container_of(lr, tproto, lr);
}

static void t_line(tw_line_receiver *lr, const char *line, size_t len)
{
    tproto *t = tp_of(lr);
    size_t dlen;
    const void *d = tw_line_receiver_delimiter(lr, &dlen);
    FZ_CHECK(len <= tw_line_receiver_max_length(lr), "a %zu-byte line passed max_length %zu", len,
             tw_line_receiver_max_length(lr));
    FZ_CHECK(len < dlen || memmem(line, len, d, dlen) == NULL, "a line holds its delimiter");
    t->delivered += len + dlen;
    on_line(&t->run, line, len);
}

static void t_raw(tw_line_receiver *lr, const void *data, size_t len)
{
    tproto *t = tp_of(lr);
    FZ_CHECK(len > 0, "raw_data_received with no bytes");
    t->delivered += len;
    on_raw(&t->run, data, len);
}

static void t_exceeded(tw_line_receiver *lr, const char *data, size_t len)
{
    tproto *t = tp_of(lr);
    t->delivered += len;
    on_exceeded(&t->run, data, len);
}

static const tw_line_receiver_ops t_ops = {t_line, t_exceeded, t_raw};
static const tw_line_receiver_ops t_ops_default_exceeded = {t_line, NULL, t_raw};

static void t_set_raw(void *ctx)
{
    tw_line_receiver_set_raw_mode(&((tproto *)ctx)->lr);
}
static void t_set_line(void *ctx, const void *extra, size_t len)
{
    tproto *t = ctx;
    t->fed += len;
    FZ_CHECK(tw_line_receiver_set_line_mode(&t->lr, extra, len) == 0, "set_line_mode failed");
}
static void t_feed(void *ctx, const void *data, size_t len)
{
    tproto *t = ctx;
    t->fed += len;
    FZ_CHECK(tw_line_receiver_data_received(&t->lr, data, len) == 0, "data_received failed");
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
    tw_line_receiver_pause_producing(&((tproto *)ctx)->lr);
}
static void t_resume(void *ctx)
{
    tw_line_receiver_resume_producing(&((tproto *)ctx)->lr);
}
static void t_set_delim(void *ctx, const void *d, size_t len)
{
    FZ_CHECK(tw_line_receiver_set_delimiter(&((tproto *)ctx)->lr, d, len) == 0,
             "set_delimiter refused %zu bytes", len);
}
static void t_set_max(void *ctx, size_t max)
{
    tw_line_receiver_set_max_length(&((tproto *)ctx)->lr, max);
}
static void t_send_line(void *ctx, const void *line, size_t len)
{
    int rc = tw_line_receiver_send_line(&((tproto *)ctx)->lr, line, len);
    FZ_CHECK(rc == 0 || rc == TW_ESTATE, "send_line returned %d", rc);
}

static const side twine_side = {t_set_raw, t_set_line, t_feed,      t_lose,    t_abort,
                                t_pause,   t_resume,   t_set_delim, t_set_max, t_send_line};

static void tp_data_received(tw_protocol *p, const void *data, size_t len)
{
    tproto *t = tw_container_of(p, tproto, base);
    t_feed(t, data, len);
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

/* Twisted's LineReceiver, transcribed: one buffer, searched from its start. */
typedef struct model {
    uint8_t *buf;
    size_t len, cap;
    int line_mode, paused, busy, closing, default_exceeded;
    uint8_t delim[TW_LINE_MAX_DELIMITER];
    size_t dlen, max_length;
    run run;
} model;

static void m_append(model *m, const void *data, size_t len)
{
    fz_append(&m->buf, &m->len, &m->cap, data, len);
}

/* Take the first @p n bytes out of the buffer, as a new string. */
static uint8_t *m_take(model *m, size_t n)
{
    uint8_t *s = malloc(n ? n : 1);
    FZ_CHECK(s != NULL, "out of memory");
    memcpy(s, m->buf, n);
    memmove(m->buf, m->buf + n, m->len - n);
    m->len -= n;
    return s;
}

static void m_exceeded(model *m, uint8_t *data, size_t len)
{
    if (m->default_exceeded)
        m->closing = 1; /* transport.loseConnection() */
    else
        on_exceeded(&m->run, data, len);
    free(data);
}

static void m_data_received(model *m, const void *data, size_t len)
{
    if (m->busy) {
        m_append(m, data, len);
        return;
    }
    m->busy = 1;
    m_append(m, data, len);
    while (m->len > 0 && !m->paused) {
        if (m->line_mode) {
            const uint8_t *hit =
                m->len >= m->dlen ? memmem(m->buf, m->len, m->delim, m->dlen) : NULL;
            if (hit == NULL) {
                if (m->len >= m->max_length + m->dlen) {
                    size_t n = m->len;
                    m_exceeded(m, m_take(m, n), n);
                }
                break;
            }
            size_t line_len = (size_t)(hit - m->buf);
            if (line_len > m->max_length) {
                size_t n = m->len;
                m_exceeded(m, m_take(m, n), n);
                break;
            }
            uint8_t *line = m_take(m, line_len);
            free(m_take(m, m->dlen));
            on_line(&m->run, (const char *)line, line_len);
            free(line);
            if (m->closing)
                break;
        } else {
            size_t n = m->len;
            uint8_t *raw = m_take(m, n);
            on_raw(&m->run, raw, n);
            free(raw);
        }
    }
    m->busy = 0;
}

static void m_set_raw(void *ctx)
{
    ((model *)ctx)->line_mode = 0;
}
static void m_set_line(void *ctx, const void *extra, size_t len)
{
    model *m = ctx;
    m->line_mode = 1;
    if (len > 0)
        m_data_received(m, extra, len);
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
static void m_set_delim(void *ctx, const void *d, size_t len)
{
    model *m = ctx;
    memcpy(m->delim, d, len);
    m->dlen = len;
}
static void m_set_max(void *ctx, size_t max)
{
    ((model *)ctx)->max_length = max;
}
static void m_send_line(void *ctx, const void *line, size_t len)
{
    (void)ctx;
    (void)line;
    (void)len;
}

static const side model_side = {m_set_raw, m_set_line, m_feed,      m_lose,    m_lose,
                                m_pause,   m_resume,   m_set_delim, m_set_max, m_send_line};

/* ------------------------------------------------------------ the driver */

typedef struct config {
    uint8_t delim[TW_LINE_MAX_DELIMITER];
    size_t dlen; /* 0: the default */
    size_t max_length;
    int default_exceeded, echo, outside_calls;
    fz_rng rng;
    const uint8_t *script;
    size_t script_len;
    const uint8_t *stream;
    size_t stream_len;
} config;

/*
 * What the driver does between chunks, the same on both sides: resume a
 * paused receiver, hand the chunk over through set_line_mode in raw mode,
 * change the delimiter or max_length while a partial line is buffered.
 */
typedef struct outside {
    int resume, via_line_mode;
    int new_delim; /* index into delims, or -1 */
    long new_max;  /* or -1 */
} outside;

static outside outside_step(const config *c, fz_rng *rng)
{
    outside o = {0, 0, -1, -1};
    if (!c->outside_calls)
        return o;
    uint32_t x = fz_rng_next(rng);
    o.resume = (x & 3) == 0;
    o.via_line_mode = (x & 12) == 0;
    if ((x & 0x70) == 0)
        o.new_delim = (int)((x >> 8) & 7);
    if ((x & 0x380) == 0)
        o.new_max = (long)((x >> 12) & 31);
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_quiet_logs();
    fz_in in = {data, size};
    config c;
    memset(&c, 0, sizeof c);
    uint8_t kind = fz_byte(&in, 0);
    uint8_t maxb = fz_byte(&in, 255);
    uint8_t flags = fz_byte(&in, 0);
    fz_rng_seed(&c.rng, &in);
    size_t got;
    c.script = fz_bytes(&in, fz_byte(&in, 0) % 32, &c.script_len);
    switch (kind & 3) {
    case 0:
        c.dlen = 0;
        break;
    case 1:
        c.delim[0] = '\n';
        c.dlen = 1;
        break;
    case 2: {
        const uint8_t *d = fz_bytes(&in, 1 + ((kind >> 2) & 3), &got);
        if (got > 0) {
            memcpy(c.delim, d, got);
            c.dlen = got;
        }
        break;
    }
    default:
        memcpy(c.delim, "\r\n\r\n", 4);
        c.dlen = 4;
        break;
    }
    c.max_length = maxb < 128 ? maxb % 32 : maxb < 255 ? maxb : TW_LINE_DEFAULT_MAX_LENGTH;
    c.default_exceeded = flags & 1;
    c.echo = (flags >> 1) & 1;
    c.outside_calls = (flags >> 2) & 1;
    c.stream = in.p;
    c.stream_len = in.n;

    /* twine */
    tproto *t = calloc(1, sizeof *t);
    FZ_CHECK(t != NULL, "out of memory");
    t->base.ops = &tp_ops;
    tw_line_receiver_init(&t->lr, &t->base, c.default_exceeded ? &t_ops_default_exceeded : &t_ops);
    if (c.dlen > 0)
        FZ_CHECK(tw_line_receiver_set_delimiter(&t->lr, c.delim, c.dlen) == 0, "set_delimiter");
    tw_line_receiver_set_max_length(&t->lr, c.max_length);
    t->run = (run){&twine_side, t, c.script, c.script_len, 0, 0, {0}, c.echo};
    t->mem = tw_string_transport_new(NULL, &t->base);
    FZ_CHECK(t->mem != NULL, "out of memory");

    /* the model */
    model *m = calloc(1, sizeof *m);
    FZ_CHECK(m != NULL, "out of memory");
    m->line_mode = 1;
    m->default_exceeded = c.default_exceeded;
    if (c.dlen > 0) {
        memcpy(m->delim, c.delim, c.dlen);
        m->dlen = c.dlen;
    } else {
        memcpy(m->delim, "\r\n", 2);
        m->dlen = 2;
    }
    m->max_length = c.max_length;
    m->run = (run){&model_side, m, c.script, c.script_len, 0, 0, {0}, 0};

    /* The same chunks and outside calls for both: replay the generator. */
    for (int pass = 0; pass < 2; pass++) {
        fz_rng rng = c.rng;
        size_t at = 0;
        const side *s = pass == 0 ? &twine_side : &model_side;
        void *ctx = pass == 0 ? (void *)t : (void *)m;
        while (at < c.stream_len) {
            int closing = pass == 0 ? t->mem->closing : m->closing;
            if (closing)
                break; /* a closing transport reads nothing more */
            size_t n = fz_chunk(&rng, c.stream_len - at);
            outside o = outside_step(&c, &rng);
            if (o.new_delim >= 0)
                s->set_delim(ctx, delims[o.new_delim],
                             o.new_delim == 2 ? 1 : strlen(delims[o.new_delim]));
            if (o.new_max >= 0)
                s->set_max(ctx, (size_t)o.new_max);
            int raw = pass == 0 ? !tw_line_receiver_line_mode(&t->lr) : !m->line_mode;
            if (o.via_line_mode && raw)
                s->set_line(ctx, c.stream + at, n);
            else
                s->feed(ctx, c.stream + at, n);
            at += n;
            closing = pass == 0 ? t->mem->closing : m->closing;
            int paused = pass == 0 ? tw_line_receiver_paused(&t->lr) : m->paused;
            if (o.resume && paused && !closing)
                s->resume(ctx);
        }
        /* At the end, a paused receiver is resumed once, if still open. */
        int closing = pass == 0 ? t->mem->closing : m->closing;
        int paused = pass == 0 ? tw_line_receiver_paused(&t->lr) : m->paused;
        if (paused && !closing)
            s->resume(ctx);
    }

    /* The same events, the same leftovers, the same state. */
    FZ_CHECK(fz_evlog_same(&t->run.log, &m->run.log),
             "twine's events differ from Twisted's (%zu vs %zu events)", t->run.log.events,
             m->run.log.events);
    size_t buffered = tw_line_receiver_buffered(&t->lr);
    FZ_CHECK(buffered == m->len, "twine buffers %zu bytes, Twisted %zu", buffered, m->len);
    FZ_CHECK(!tw_line_receiver_line_mode(&t->lr) == !m->line_mode, "modes differ");
    FZ_CHECK(!tw_line_receiver_paused(&t->lr) == !m->paused, "pause states differ");
    FZ_CHECK(!t->mem->closing == !m->closing, "connection states differ");
    if (!c.default_exceeded)
        FZ_CHECK(t->fed + 0 == t->delivered + buffered,
                 "%zu bytes fed, %zu delivered + %zu buffered", t->fed, t->delivered, buffered);

    tw_string_transport_free(t->mem); /* no destroy op: t is ours */
    tw_line_receiver_cleanup(&t->lr);
    free(t->run.log.p);
    free(t);
    free(m->buf);
    free(m->run.log.p);
    free(m);
    return 0;
}
