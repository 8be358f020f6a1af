/* SPDX-License-Identifier: MIT */
/*
 * Fuzzing an AMP connection: the dispatcher behind the box parser.
 *
 * A connection from tw_amp_factory_new() runs over the in-memory transport
 * and is fed the stream in random chunks, as a hostile peer would send it:
 * requests for commands that answer at once, fail (declared, undeclared,
 * fatal errors, NULL, a response that does not encode), answer later (fired
 * or left to be cancelled when the connection goes), close the connection
 * from their responder, call back the peer, or switch the connection to
 * another protocol (a sink); unknown commands; answers
 * and errors for the calls this side made, matching or not. Between chunks
 * some late answers fire; reading is honoured when it is paused; at the end
 * the connection is lost and everything freed, with LeakSanitizer watching.
 *
 * What this side wrote must be whole boxes, each one a request of ours
 * (_command with a new, larger _ask), an _answer or an _error; _error boxes carry
 * a code and a description, and no tag is answered more often than the
 * peer asked with it. After a switch's answer nothing more is written, and
 * the sink received exactly the stream's bytes after the Switch request.
 *
 * Input: [max box size][max pending][flags][seed x4] then the stream. Flags:
 * bits 0-1 calls this side makes at once, bit 2 answer the late requests
 * before the connection goes, bit 3 a slow reader (writes queue past a
 * small high watermark).
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <twine.h>
#include <twine/amp.h>

#include "fuzz.h"
#include <twine/testing.h>

#define MAX_LATER 64

/* ------------------------------------------------------------ commands */

static const tw_amp_type list_of_integer = {TW_AMP_LIST, &tw_amp_type_integer};

static const tw_amp_command SUM = {
    .name = "Sum",
    .arguments = (const tw_amp_arg[]){{"a", TW_AMP_T_INTEGER, 0},
                                      {"b", TW_AMP_T_INTEGER, 0},
                                      {NULL, NULL, 0}},
    .response = (const tw_amp_arg[]){{"total", TW_AMP_T_INTEGER, 0}, {NULL, NULL, 0}},
    .errors = (const tw_amp_error_spec[]){{"OVERFLOW", "too big", 0}, {NULL, NULL, 0}},
};

static const tw_amp_command ECHO = {
    .name = "Echo",
    .arguments = (const tw_amp_arg[]){{"value", TW_AMP_T_STRING, 0}, {NULL, NULL, 0}},
    .response = (const tw_amp_arg[]){{"value", TW_AMP_T_STRING, 0}, {NULL, NULL, 0}},
    .errors = NULL,
};

static const tw_amp_command TYPES = {
    .name = "Types",
    .arguments = (const tw_amp_arg[]){{"i", TW_AMP_T_INTEGER, 1},
                                      {"s", TW_AMP_T_STRING, 1},
                                      {"u", TW_AMP_T_UNICODE, 1},
                                      {"b", TW_AMP_T_BOOLEAN, 1},
                                      {"f", TW_AMP_T_FLOAT, 1},
                                      {"l", &list_of_integer, 1},
                                      {NULL, NULL, 0}},
    .response = (const tw_amp_arg[]){{"i", TW_AMP_T_INTEGER, 1},
                                     {"s", TW_AMP_T_STRING, 1},
                                     {"u", TW_AMP_T_UNICODE, 1},
                                     {"b", TW_AMP_T_BOOLEAN, 1},
                                     {"f", TW_AMP_T_FLOAT, 1},
                                     {"l", &list_of_integer, 1},
                                     {NULL, NULL, 0}},
    .errors = NULL,
};

static const tw_amp_command FAIL = {
    .name = "Fail",
    .arguments = (const tw_amp_arg[]){{"how", TW_AMP_T_STRING, 0}, {NULL, NULL, 0}},
    .response = (const tw_amp_arg[]){{"r", TW_AMP_T_INTEGER, 0}, {NULL, NULL, 0}},
    .errors = (const tw_amp_error_spec[]){
        {"BAD", "it went bad", 0}, {"FATAL", "the end", 1}, {NULL, NULL, 0}},
};

static const tw_amp_command LATER = {
    .name = "Later",
    .arguments = (const tw_amp_arg[]){{"id", TW_AMP_T_INTEGER, 0}, {NULL, NULL, 0}},
    .response = (const tw_amp_arg[]){{"id", TW_AMP_T_INTEGER, 0}, {NULL, NULL, 0}},
    .errors = NULL,
};

static const tw_amp_command QUIT = {.name = "Quit"};

static const tw_amp_command CALL = {
    .name = "Call",
    .arguments = (const tw_amp_arg[]){{"a", TW_AMP_T_INTEGER, 0}, {NULL, NULL, 0}},
    .response = NULL,
    .errors = NULL,
};

static const tw_amp_command SWITCH = {
    .name = "Switch",
    .arguments = (const tw_amp_arg[]){{"to", TW_AMP_T_STRING, 1}, {NULL, NULL, 0}},
    .protocol_switch = 1,
};

/* ------------------------------------------------------------ state */

typedef struct later_slot {
    tw_deferred *d; /* our reference */
    int64_t id;
    int cancelled;
} later_slot;

typedef struct state {
    later_slot later[MAX_LATER];
    int nlater;
    tw_amp *amp; /* while connected */
    int connected, lost;
    int initial_calls;
    tw_string_transport *m;
    /* The protocol a Switch hands the connection to: it keeps what it gets. */
    struct {
        tw_protocol base;
        unsigned char *got;
        size_t len, cap;
        int made, lost;
        size_t out_at_switch; /* what was written when it took over */
    } sink;
    int switched;
} state;

static state S;

static void values_free_fn(void *v)
{
    tw_amp_values_free(v);
}

/* The outcome of one of our calls: handled, whatever it is. */
static void call_done(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    (void)arg;
    tw_failure_unref(tw_result_take_failure(res));
}

static void call_peer(tw_amp *amp, int64_t a)
{
    tw_amp_values *v = tw_amp_values_new();
    FZ_CHECK(v != NULL, "out of memory");
    tw_amp_values_set_integer(v, "a", a);
    tw_amp_values_set_integer(v, "b", 1);
    tw_deferred *d = tw_amp_call_remote(amp, &SUM, v);
    tw_amp_values_free(v);
    FZ_CHECK(d != NULL, "call_remote returned NULL");
    tw_deferred_add_both(d, call_done, NULL);
    tw_deferred_unref(d);

    tw_amp_box *b = tw_amp_box_new();
    FZ_CHECK(b != NULL, "out of memory");
    tw_amp_box_set_str(b, "value", "raw");
    d = tw_amp_call_remote_box(amp, "Echo", b);
    tw_amp_box_free(b);
    FZ_CHECK(d != NULL, "call_remote_box returned NULL");
    tw_deferred_add_both(d, call_done, NULL);
    tw_deferred_unref(d);
}

static tw_deferred *sum_responder(tw_amp *amp, const tw_amp_values *args, void *arg)
{
    (void)amp;
    (void)arg;
    int64_t a = 0, b = 0;
    int ra = tw_amp_values_get_integer(args, "a", &a);
    int rb = tw_amp_values_get_integer(args, "b", &b);
    /* An Integer outside 64 bits decodes (as its text) but reads -ERANGE. */
    FZ_CHECK((ra == 0 || ra == -ERANGE) && (rb == 0 || rb == -ERANGE),
             "Sum ran without its arguments");
    int64_t total;
    if (ra != 0 || rb != 0 || __builtin_add_overflow(a, b, &total))
        return tw_amp_fail("OVERFLOW", NULL);
    tw_amp_values *v = tw_amp_values_new();
    FZ_CHECK(v != NULL, "out of memory");
    tw_amp_values_set_integer(v, "total", total);
    return tw_amp_succeed(v);
}

/* Echo back every argument: Echo's and Types' responder. */
static tw_deferred *mirror_responder(tw_amp *amp, const tw_amp_values *args, void *arg)
{
    (void)amp;
    (void)arg;
    tw_amp_values *v = tw_amp_values_new();
    FZ_CHECK(v != NULL, "out of memory");
    for (size_t i = 0; i < tw_amp_values_count(args); i++) {
        const char *name;
        const tw_amp_value *x;
        FZ_CHECK(tw_amp_values_entry(args, i, &name, &x) == 0, "entry");
        FZ_CHECK(tw_amp_values_set(v, name, x) == 0, "a decoded value does not copy");
    }
    return tw_amp_succeed(v);
}

static tw_deferred *fail_responder(tw_amp *amp, const tw_amp_values *args, void *arg)
{
    (void)amp;
    (void)arg;
    const char *how = "";
    size_t len = 0;
    tw_amp_values_get_string(args, "how", &how, &len);
    switch (len > 0 ? how[0] : 0) {
    case 'd':
        return tw_amp_fail("BAD", "it went bad");
    case 'e':
        return tw_amp_fail("BAD", NULL);
    case 'f':
        return tw_amp_fail("FATAL", "the end");
    case 'u':
        return tw_amp_fail("OTHER", "not in the list");
    case 'n':
        return NULL;
    case 'r':
        return tw_amp_succeed(tw_amp_values_new()); /* lacks the required r */
    case 's':
        return tw_amp_succeed(NULL);
    default:
        return tw_deferred_fail(tw_failure_new(TW_EFAIL, "boom"));
    }
}

static void later_cancel(tw_deferred *d, void *arg)
{
    (void)d;
    ((later_slot *)arg)->cancelled = 1;
}

static tw_deferred *later_responder(tw_amp *amp, const tw_amp_values *args, void *arg)
{
    (void)amp;
    (void)arg;
    if (S.nlater == MAX_LATER)
        return tw_amp_fail("BUSY", "too many");
    later_slot *slot = &S.later[S.nlater++];
    tw_amp_values_get_integer(args, "id", &slot->id);
    tw_deferred *d = tw_deferred_new(later_cancel, slot);
    FZ_CHECK(d != NULL, "out of memory");
    slot->d = tw_deferred_ref(d);
    return d;
}

static tw_deferred *quit_responder(tw_amp *amp, const tw_amp_values *args, void *arg)
{
    (void)args;
    (void)arg;
    tw_amp_lose_connection(amp);
    FZ_CHECK(tw_amp_closed(amp), "closed after lose_connection");
    return tw_amp_succeed(NULL);
}

static tw_deferred *call_responder(tw_amp *amp, const tw_amp_values *args, void *arg)
{
    (void)arg;
    int64_t a = 0;
    tw_amp_values_get_integer(args, "a", &a);
    call_peer(amp, a);
    /* And a request that wants no answer (no _ask). */
    tw_amp_values *v = tw_amp_values_new();
    FZ_CHECK(v != NULL, "out of memory");
    tw_amp_values_set_string(v, "value", "fire and forget", 15);
    int rc = tw_amp_send(amp, &ECHO, v);
    FZ_CHECK(rc == 0 || rc == TW_ESTATE, "tw_amp_send returned %d", rc);
    tw_amp_values_free(v);
    return tw_amp_succeed(NULL);
}

static void sink_made(tw_protocol *p)
{
    (void)p;
    FZ_CHECK(!S.sink.made, "the sink was connected twice");
    S.sink.made = 1;
    S.sink.out_at_switch = S.m->out_len;
}

static void sink_data(tw_protocol *p, const void *data, size_t len)
{
    (void)p;
    FZ_CHECK(S.sink.made && !S.sink.lost, "the sink got bytes outside its connection");
    FZ_CHECK(S.sink.len + len <= S.sink.cap, "the sink got more than was fed");
    memcpy(S.sink.got + S.sink.len, data, len);
    S.sink.len += len;
}

static void sink_lost(tw_protocol *p, const tw_failure *reason)
{
    (void)p;
    (void)reason;
    S.sink.lost++;
}

static void sink_destroy(tw_protocol *p)
{
    (void)p;
    S.switched = 2; /* destroyed with the connection */
}

static const tw_protocol_ops sink_ops = {
    .connection_made = sink_made,
    .data_received = sink_data,
    .connection_lost = sink_lost,
    .destroy = sink_destroy,
};

static tw_deferred *switch_responder(tw_amp *amp, const tw_amp_values *args, void *arg)
{
    (void)amp;
    (void)args;
    (void)arg;
    if (S.switched)
        return tw_amp_fail("AGAIN", "switched once already");
    S.switched = 1;
    S.sink.base.ops = &sink_ops;
    return tw_amp_switch_to(&S.sink.base);
}

/* Fire late answer @p i, if it can still be fired. */
static void later_fire(int i, int fail)
{
    later_slot *slot = &S.later[i];
    if (slot->d == NULL)
        return;
    if (!slot->cancelled && !tw_deferred_called(slot->d)) {
        int rc;
        if (fail) {
            rc = tw_deferred_errback(slot->d, tw_failure_new(TW_EFAIL, "late failure"));
        } else {
            tw_amp_values *v = tw_amp_values_new();
            FZ_CHECK(v != NULL, "out of memory");
            tw_amp_values_set_integer(v, "id", slot->id);
            rc = tw_deferred_callback(slot->d, v, values_free_fn);
        }
        FZ_CHECK(rc == 0, "firing a late answer returned %d", rc);
    }
    tw_deferred_unref(slot->d);
    slot->d = NULL;
}

static void on_connected(tw_amp *amp, void *arg)
{
    (void)arg;
    S.amp = amp;
    S.connected = 1;
    for (int i = 0; i < S.initial_calls; i++)
        call_peer(amp, i);
}

static void on_lost(tw_amp *amp, const tw_failure *reason, void *arg)
{
    (void)reason;
    (void)arg;
    FZ_CHECK(amp == S.amp, "lost another connection");
    FZ_CHECK(tw_amp_outstanding(amp) == 0, "%zu calls outstanding after the loss",
             tw_amp_outstanding(amp));
    S.amp = NULL;
    S.lost++;
}

/* ------------------------------------------------------------ checks */

/* A tag and how often the peer asked with it. */
typedef struct tags {
    struct {
        char tag[32];
        size_t len;
        long asked, answered;
    } t[256];
    size_t n;
} tags;

static long *tag_slot(tags *g, const char *tag, size_t len, int answered)
{
    for (size_t i = 0; i < g->n; i++)
        if (g->t[i].len == len && memcmp(g->t[i].tag, tag, len) == 0)
            return answered ? &g->t[i].answered : &g->t[i].asked;
    if (g->n == 256 || len > sizeof g->t[0].tag)
        return NULL;
    memcpy(g->t[g->n].tag, tag, len);
    g->t[g->n].len = len;
    g->t[g->n].asked = g->t[g->n].answered = 0;
    g->n++;
    return answered ? &g->t[g->n - 1].answered : &g->t[g->n - 1].asked;
}

typedef struct scan {
    tags *tags;
    int out; /* scanning what this side wrote */
    long next_ask;
    int overflow;
} scan;

static int scan_box(tw_amp_box *box, void *arg)
{
    scan *s = arg;
    size_t len;
    const char *v;
    if (!s->out) {
        /* The peer's requests, as this side would see them. */
        if (tw_amp_box_get(box, "_command", NULL) != NULL &&
            (v = tw_amp_box_get(box, "_ask", &len)) != NULL) {
            long *n = tag_slot(s->tags, v, len, 0);
            if (n != NULL)
                ++*n;
            else
                s->overflow = 1;
        }
        tw_amp_box_free(box);
        return 0;
    }
    int kinds = (tw_amp_box_get(box, "_command", NULL) != NULL) +
                (tw_amp_box_get(box, "_answer", NULL) != NULL) +
                (tw_amp_box_get(box, "_error", NULL) != NULL);
    FZ_CHECK(kinds == 1, "a box written with %d of _command, _answer, _error", kinds);
    if ((v = tw_amp_box_get(box, "_command", NULL)) != NULL) {
        const char *ask = tw_amp_box_get(box, "_ask", &len);
        if (ask == NULL) {
            FZ_CHECK(strcmp(v, "Echo") == 0, "our request '%s' has no _ask", v);
            tw_amp_box_free(box);
            return 0;
        }
        char *end;
        long tag = strtol(ask, &end, 16);
        FZ_CHECK(*end == '\0' && tag > s->next_ask, "our request has _ask '%s' after %lx", ask,
                 (unsigned long)s->next_ask);
        s->next_ask = tag;
    } else {
        int error = tw_amp_box_get(box, "_error", NULL) != NULL;
        v = tw_amp_box_get(box, error ? "_error" : "_answer", &len);
        if (error)
            FZ_CHECK(tw_amp_box_get(box, "_error_code", NULL) != NULL &&
                         tw_amp_box_get(box, "_error_description", NULL) != NULL,
                     "an _error without code or description");
        if (!s->overflow) {
            long *asked = tag_slot(s->tags, v, len, 0);
            long *answered = tag_slot(s->tags, v, len, 1);
            FZ_CHECK(asked != NULL && answered != NULL, "tag table");
            ++*answered;
            FZ_CHECK(*answered <= *asked, "tag '%s' answered %ld times, asked %ld", v, *answered,
                     *asked);
        }
    }
    tw_amp_box_free(box);
    return 0;
}

/* ------------------------------------------------------------ the driver */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_quiet_logs();
    fz_in in = {data, size};
    uint8_t maxb = fz_byte(&in, 255);
    uint8_t pend = fz_byte(&in, 0);
    uint8_t flags = fz_byte(&in, 0);
    fz_rng rng;
    fz_rng_seed(&rng, &in);
    size_t max_box = maxb < 255 ? 16 + (size_t)maxb * 8 : 0;
    size_t max_pending = pend % 8; /* 0: the default */

    memset(&S, 0, sizeof S);
    S.initial_calls = flags & 3;

    tw_factory *f = tw_amp_factory_new();
    FZ_CHECK(f != NULL, "out of memory");
    tw_amp_dispatcher *d = tw_amp_factory_dispatcher(f);
    FZ_CHECK(tw_amp_register(d, &SUM, sum_responder, NULL) == 0 &&
                 tw_amp_register(d, &ECHO, mirror_responder, NULL) == 0 &&
                 tw_amp_register(d, &TYPES, mirror_responder, NULL) == 0 &&
                 tw_amp_register(d, &FAIL, fail_responder, NULL) == 0 &&
                 tw_amp_register(d, &LATER, later_responder, NULL) == 0 &&
                 tw_amp_register(d, &QUIT, quit_responder, NULL) == 0 &&
                 tw_amp_register(d, &CALL, call_responder, NULL) == 0 &&
                 tw_amp_register(d, &SWITCH, switch_responder, NULL) == 0,
             "register");
    FZ_CHECK(tw_amp_factory_set_limits(f, max_box, max_pending) == 0, "limits");
    FZ_CHECK(tw_amp_factory_set_callbacks(f, on_connected, on_lost, NULL) == 0, "callbacks");

    S.sink.cap = in.n;
    S.sink.got = malloc(in.n + 1);
    FZ_CHECK(S.sink.got != NULL, "out of memory");
    tw_string_transport *m = tw_string_transport_open(NULL, f);
    S.m = m;
    FZ_CHECK(m != NULL && S.connected, "the connection did not open");
    if (flags & 8) {
        /* A peer that reads slowly: writes queue up past a small high
         * watermark, which pauses the protocol until they drain. */
        tw_transport_set_write_watermarks(&m->base, 64, 16);
        tw_string_transport_set_hold(m, 1);
    }
    size_t at = 0;
    int fired = 0;
    while (at < in.n && !m->closing) {
        if (m->reading_paused) {
            /* Nothing arrives while reading is paused: let writes drain, late answers go. */
            if (m->queued > 0) {
                tw_string_transport_drain(m, (size_t)-1);
                continue;
            }
            if (fired == S.nlater)
                break; /* paused for good: a bug the check below reports */
            later_fire(fired, fired & 1);
            fired++;
            continue;
        }
        size_t n = fz_chunk(&rng, in.n - at);
        tw_string_transport_feed(m, in.p + at, n);
        at += n;
        uint32_t x = fz_rng_next(&rng);
        if (m->hold && (x & 0x300) == 0)
            tw_string_transport_drain(m, (x >> 10) & 127);
        while (fired < S.nlater && (x & 3) == 0 && !m->closing) {
            later_fire(fired, (x >> 2) & 1);
            fired++;
            x >>= 3;
        }
    }
    FZ_CHECK(!m->reading_paused || m->closing || at == in.n,
             "reading stays paused with no request left to answer");
    if (flags & 4) {
        /* Answer the rest while still connected. */
        for (; fired < S.nlater && !m->closing; fired++)
            later_fire(fired, 0);
    }
    tw_string_transport_run_close(m);
    if (!m->lost)
        tw_string_transport_lose(m, TW_ECONNLOST);
    FZ_CHECK(S.lost == 1, "connection_lost reached the factory %d times", S.lost);
    /* Late answers after the loss: cancelled, or dropped. */
    for (; fired < S.nlater; fired++)
        later_fire(fired, fired & 1);

    /* What this side wrote. */
    tags *g = calloc(1, sizeof *g);
    FZ_CHECK(g != NULL, "out of memory");
    scan s = {g, 0, 0, 0};
    tw_amp_parser *p = tw_amp_parser_new(max_box);
    FZ_CHECK(p != NULL, "out of memory");
    if (at > 0)
        tw_amp_parser_feed(p, in.p, at, scan_box, &s, NULL);
    tw_amp_parser_free(p);

    size_t outlen;
    const char *out = tw_string_transport_output(m, &outlen);
    s.out = 1;
    p = tw_amp_parser_new(0);
    FZ_CHECK(p != NULL, "out of memory");
    int rc = outlen > 0 ? tw_amp_parser_feed(p, out, outlen, scan_box, &s, NULL) : 0;
    FZ_CHECK(rc == 0, "what was written does not parse: %s", tw_amp_parser_error(p));
    FZ_CHECK(tw_amp_parser_buffered(p) == 0, "what was written ends inside a box");
    tw_amp_parser_free(p);
    free(g);

    if (S.sink.made) {
        /* The switch's answer was the last thing written, and the sink got
         * every byte that followed the request, in order. */
        FZ_CHECK(outlen == S.sink.out_at_switch, "%zu bytes written after the switch",
                 outlen - S.sink.out_at_switch);
        FZ_CHECK(S.sink.len <= at && memcmp(S.sink.got, in.p + at - S.sink.len, S.sink.len) == 0,
                 "the sink's bytes are not the end of the stream");
        FZ_CHECK(S.sink.lost == 1, "the sink heard connection_lost %d times", S.sink.lost);
    }

    tw_string_transport_free(m);
    FZ_CHECK(S.switched != 1 || !S.sink.made, "the switched connection was not destroyed");
    free(S.sink.got);
    tw_factory_free(f);
    return 0;
}
