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
 * offset without wrapping, is computed once per process and shared; the
 * timed calls run on the connection's own reactor, so the factory holds
 * nothing and is tw_factory_for_protocol()'s.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <twine.h>

#define RING_SIZE 95    /* printable ASCII characters */
#define LINE_CHARS 72
#define PERIOD (RING_SIZE * (LINE_CHARS + 2))
#define CHUNK 16384
#define CHUNKS_PER_TURN 4

static char pattern[PERIOD + CHUNK];
static pthread_once_t pattern_once = PTHREAD_ONCE_INIT;

static void make_pattern(void)
{
    for (size_t line = 0, at = 0; line < RING_SIZE; line++) {
        for (size_t i = 0; i < LINE_CHARS; i++)
            pattern[at++] = (char)(' ' + (line + i) % RING_SIZE);
        pattern[at++] = '\r';
        pattern[at++] = '\n';
    }
    for (size_t i = PERIOD; i < sizeof pattern; i++)
        pattern[i] = pattern[i - PERIOD];
}

typedef struct {
    tw_protocol base;
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
    tw_reactor *r = c->base.transport->reactor; /* NULL on a string transport */
    if (r == NULL || tw_reactor_call_later(r, 0, on_turn, c, &c->turn) < 0) {
        tw_log(TW_LOG_ERROR, "chargen", "cannot schedule more output; closing");
        c->done = 1;
        tw_transport_lose_connection(c->base.transport);
    }
}

static void produce(chargen_protocol *c)
{
    for (int i = 0; i < CHUNKS_PER_TURN && !c->paused && !c->done; i++) {
        int rc = tw_transport_write(c->base.transport, pattern + c->offset, CHUNK);
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

static const tw_protocol_ops chargen_protocol_ops = {
    .connection_made = chargen_made,
    .data_received = chargen_data,
    .connection_lost = chargen_lost,
    .pause_producing = chargen_pause,
    .resume_producing = chargen_resume,
};

static tw_factory *chargen_make_factory(tw_reactor *r, const tw_options *opts, char *err,
                                        size_t errlen)
{
    (void)r;
    (void)opts;
    if (pthread_once(&pattern_once, make_pattern) != 0) {
        snprintf(err, errlen, "cannot compute the chargen pattern");
        return NULL;
    }
    tw_factory *f = tw_factory_for_protocol(&chargen_protocol_ops, sizeof(chargen_protocol));
    if (f == NULL)
        snprintf(err, errlen, "out of memory creating the chargen factory");
    return f;
}

TW_PLUGIN(chargen, .type = TW_PLUGIN_PROTOCOL, .name = "chargen",
          .description = "RFC 864 character generator: endless 72-character lines",
          .ctx = &(const tw_plugin_protocol){.make_factory = chargen_make_factory});
