/* SPDX-License-Identifier: MIT */
/*
 * chargen: RFC 864 over TCP. The server sends lines of 72 characters until
 * the client goes away, and ignores what it receives. The 95 printable
 * ASCII characters (space to '~') form a ring; line 0 is characters 0 to
 * 71, line 1 is characters 1 to 72, and so on, each ended by CRLF, so the
 * stream repeats every 95 lines (7030 bytes).
 *
 * An endless writer is the plainest test of flow control. The protocol is
 * a producer: it writes a few chunks per turn of the loop (from a zero-delay
 * timed call, so that other connections get their turn), and stops as soon
 * as the transport calls its pause_producing because the queue crossed the
 * high watermark; resume_producing starts it again. A client that never
 * reads therefore costs at most about one high watermark plus one chunk of
 * server memory, not an ever-growing queue.
 *
 * The whole pattern, plus one chunk so that any chunk can be sent from any
 * offset without wrapping, is computed once per factory and shared.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <twine.h>

#define RING_SIZE 95    /* printable ASCII characters */
#define LINE_CHARS 72
#define PERIOD (RING_SIZE * (LINE_CHARS + 2))
#define CHUNK 16384
#define CHUNKS_PER_TURN 4

typedef struct {
    tw_factory base;
    tw_reactor *reactor;
    char pattern[PERIOD + CHUNK];
} chargen_factory;

typedef struct {
    tw_protocol base;
    chargen_factory *f;
    tw_call *turn; /* the pending zero-delay call, or NULL */
    size_t offset; /* where the next chunk starts within the period */
    int paused;
    int done;
} chargen_protocol;

static void produce(chargen_protocol *c);

static void on_turn(void *arg)
{
    chargen_protocol *c = arg;
    tw_call_release(c->turn);
    c->turn = NULL;
    produce(c);
}

static void schedule(chargen_protocol *c)
{
    if (c->turn != NULL || c->done)
        return;
    if (tw_reactor_call_later(c->f->reactor, 0, on_turn, c, &c->turn) < 0) {
        tw_log(TW_LOG_ERROR, "chargen", "cannot schedule more output; closing");
        c->done = 1;
        tw_transport_lose_connection(c->base.transport);
    }
}

static void produce(chargen_protocol *c)
{
    for (int i = 0; i < CHUNKS_PER_TURN && !c->paused && !c->done; i++) {
        int rc = tw_transport_write(c->base.transport, c->f->pattern + c->offset, CHUNK);
        if (rc < 0) {
            c->done = 1;
            if (rc != TW_ESTATE) { /* not simply closing: the stream would have a gap */
                tw_log(TW_LOG_ERROR, "chargen", "cannot queue output: %s; aborting",
                       tw_strerror(rc));
                tw_transport_abort_connection(c->base.transport);
            }
            return;
        }
        c->offset = (c->offset + CHUNK) % PERIOD;
    }
    if (!c->paused)
        schedule(c);
}

static void chargen_made(tw_protocol *p)
{
    schedule(tw_container_of(p, chargen_protocol, base));
}

static void chargen_data(tw_protocol *p, const void *data, size_t len)
{
    (void)p;
    (void)data;
    (void)len;
}

static void chargen_lost(tw_protocol *p, const tw_failure *reason)
{
    (void)reason;
    chargen_protocol *c = tw_container_of(p, chargen_protocol, base);
    c->done = 1;
    if (c->turn != NULL) {
        tw_call_cancel(c->turn);
        tw_call_release(c->turn);
        c->turn = NULL;
    }
}

static void chargen_pause(tw_protocol *p)
{
    tw_container_of(p, chargen_protocol, base)->paused = 1;
}

static void chargen_resume(tw_protocol *p)
{
    chargen_protocol *c = tw_container_of(p, chargen_protocol, base);
    c->paused = 0;
    schedule(c);
}

static void chargen_destroy(tw_protocol *p)
{
    free(tw_container_of(p, chargen_protocol, base));
}

static const tw_protocol_ops chargen_protocol_ops = {
    .connection_made = chargen_made,
    .data_received = chargen_data,
    .connection_lost = chargen_lost,
    .pause_producing = chargen_pause,
    .resume_producing = chargen_resume,
    .destroy = chargen_destroy,
};

static tw_protocol *chargen_build(tw_factory *base, const tw_address *peer)
{
    (void)peer;
    chargen_protocol *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->base.ops = &chargen_protocol_ops;
    c->f = tw_container_of(base, chargen_factory, base);
    return &c->base;
}

static void chargen_factory_destroy(tw_factory *f)
{
    free(tw_container_of(f, chargen_factory, base));
}

static const tw_factory_ops chargen_factory_ops = {
    .build_protocol = chargen_build,
    .destroy = chargen_factory_destroy,
};

static tw_factory *chargen_make_factory(tw_reactor *r, const tw_options *opts, char *err,
                                        size_t errlen)
{
    (void)opts;
    chargen_factory *f = malloc(sizeof *f);
    if (f == NULL) {
        snprintf(err, errlen, "out of memory creating the chargen factory");
        return NULL;
    }
    tw_factory_init(&f->base, &chargen_factory_ops);
    f->reactor = r;
    for (size_t line = 0, at = 0; line < RING_SIZE; line++) {
        for (size_t i = 0; i < LINE_CHARS; i++)
            f->pattern[at++] = (char)(' ' + (line + i) % RING_SIZE);
        f->pattern[at++] = '\r';
        f->pattern[at++] = '\n';
    }
    for (size_t i = PERIOD; i < sizeof f->pattern; i++)
        f->pattern[i] = f->pattern[i - PERIOD];
    return &f->base;
}

TW_PLUGIN(chargen, .name = "chargen",
          .description = "RFC 864 character generator: endless 72-character lines",
          .options = NULL, .make_factory = chargen_make_factory);
