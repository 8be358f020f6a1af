/* SPDX-License-Identifier: MIT */
/*
 * Length-prefixed receivers (int8, int16, int32, netstrings), against
 * Twisted's IntNStringReceiver and NetstringReceiver rules: the same strings
 * at every split point and one byte at a time, the max_length boundary
 * checked before allocating, netstring syntax errors, send_string limits,
 * and stopping or pausing from a handler. Driven over the in-memory
 * transport.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <twine.h>
#include <twine/framing.h>

#include <twine/testing.h>
#include "testutil.h"

typedef struct {
    tw_framing framing;
    size_t max_length; /* 0: the default */
    int close_at, pause_at, feed_at, echo, override_limit;
    const char *feed;
    size_t feed_len;
} behaviour;

typedef struct {
    tw_protocol base;
    tw_string_receiver sr;
    const behaviour *b;
    char *log;
    size_t log_len, log_cap;
    int strings, limits;
    uint64_t last_limit;
} tproto;

static void note(tproto *t, char tag, const void *data, size_t len)
{
    char head[64];
    int h = snprintf(head, sizeof head, "%c%zu(", tag, len);
    size_t need = t->log_len + (size_t)h + len + 2;
    if (need > t->log_cap) {
        size_t cap = t->log_cap ? t->log_cap : 256;
        while (cap < need)
            cap *= 2;
        t->log = realloc(t->log, cap);
        ck_assert_ptr_nonnull(t->log);
        t->log_cap = cap;
    }
    memcpy(t->log + t->log_len, head, (size_t)h);
    t->log_len += (size_t)h;
    if (len > 0)
        memcpy(t->log + t->log_len, data, len);
    t->log_len += len;
    t->log[t->log_len++] = ')';
    t->log[t->log_len] = '\0';
}

static void on_string(tw_string_receiver *sr, const void *data, size_t len)
{
    tproto *t = tw_container_of(sr, tproto, sr);
    const behaviour *b = t->b;
    t->strings++;
    note(t, 'S', data, len);
    if (b->echo)
        tw_string_receiver_send_string(sr, data, len);
    if (t->strings == b->close_at)
        tw_transport_lose_connection(t->base.transport);
    if (t->strings == b->pause_at)
        tw_string_receiver_pause_producing(sr);
    if (t->strings == b->feed_at)
        tw_string_receiver_data_received(sr, b->feed, b->feed_len);
}

static void on_limit(tw_string_receiver *sr, uint64_t length)
{
    tproto *t = tw_container_of(sr, tproto, sr);
    t->limits++;
    t->last_limit = length;
}

static const tw_string_receiver_ops default_ops = {.string_received = on_string};
static const tw_string_receiver_ops override_ops = {.string_received = on_string,
                                                    .length_limit_exceeded = on_limit};

static void tp_data(tw_protocol *p, const void *data, size_t len)
{
    tw_string_receiver_data_received(&tw_container_of(p, tproto, base)->sr, data, len);
}

static void tp_pause(tw_protocol *p)
{
    tw_string_receiver_pause_producing(&tw_container_of(p, tproto, base)->sr);
}

static void tp_resume(tw_protocol *p)
{
    tw_string_receiver_resume_producing(&tw_container_of(p, tproto, base)->sr);
}

static void tp_lost(tw_protocol *p, const tw_failure *reason)
{
    (void)p;
    (void)reason;
}

static void tp_destroy(tw_protocol *p)
{
    tproto *t = tw_container_of(p, tproto, base);
    tw_string_receiver_cleanup(&t->sr);
    free(t->log);
    free(t);
}

static const tw_protocol_ops tproto_ops = {
    .data_received = tp_data,
    .connection_lost = tp_lost,
    .pause_producing = tp_pause,
    .resume_producing = tp_resume,
    .destroy = tp_destroy,
};

static tw_string_transport *open_with(const behaviour *b)
{
    tproto *t = calloc(1, sizeof *t);
    ck_assert_ptr_nonnull(t);
    t->base.ops = &tproto_ops;
    t->b = b;
    ck_assert_int_eq(tw_string_receiver_init(&t->sr, &t->base, b->framing,
                                             b->override_limit ? &override_ops : &default_ops),
                     0);
    if (b->max_length > 0)
        tw_string_receiver_set_max_length(&t->sr, b->max_length);
    tw_string_transport *m = tw_string_transport_new(NULL, &t->base);
    ck_assert_ptr_nonnull(m);
    return m;
}

static tproto *proto_of(tw_string_transport *m)
{
    return tw_container_of(m->base.protocol, tproto, base);
}

static const char *log_of(tw_string_transport *m)
{
    tproto *t = proto_of(m);
    return t->log != NULL ? t->log : "";
}

/* Encode, independently of the code under test. @return bytes written. */
static size_t encode(tw_framing f, const char *msg, size_t len, unsigned char *out)
{
    size_t at = 0;
    if (f == TW_FRAMING_NETSTRING) {
        at = (size_t)sprintf((char *)out, "%zu:", len);
        memcpy(out + at, msg, len);
        out[at + len] = ',';
        return at + len + 1;
    }
    for (int i = (int)f - 1; i >= 0; i--)
        out[at++] = (unsigned char)(len >> (8 * i));
    memcpy(out + at, msg, len);
    return at + len;
}

/* Feed @p in cut at @p cuts; return the event log (caller frees). */
static char *run_cuts(const behaviour *b, const unsigned char *in, size_t len,
                      const size_t *cuts, size_t ncuts)
{
    tw_string_transport *m = open_with(b);
    size_t at = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        tw_string_transport_feed(m, in + at, end - at);
        at = end;
    }
    char *log = strdup(log_of(m));
    tw_string_transport_free(m);
    return log;
}

static char *cuts_run(const void *b, const void *in, size_t len, const size_t *cuts,
                      size_t ncuts)
{
    return run_cuts(b, in, len, cuts, ncuts);
}

/* The log of @p in must be @p expected however the input is cut. */
static void check_every_split(const behaviour *b, const unsigned char *in, size_t len,
                              const char *expected)
{
    tu_check_every_split(cuts_run, b, in, len, expected, 48);
}

static const tw_framing all_framings[] = {TW_FRAMING_INT8, TW_FRAMING_INT16, TW_FRAMING_INT32,
                                          TW_FRAMING_NETSTRING};

/* A log record the way note() writes it. */
static size_t expect(char *out, const char *msg, size_t len)
{
    int n = sprintf(out, "S%zu(", len);
    memcpy(out + n, msg, len);
    out[(size_t)n + len] = ')';
    out[(size_t)n + len + 1] = '\0';
    return (size_t)n + len + 1;
}

START_TEST(test_short_strings_arrive_whole_at_every_split_point)
{
    tw_framing f = all_framings[_i];
    const char *msgs[] = {"", "a", "hello", "", "x,y:z"};
    unsigned char in[128];
    char want[256];
    size_t len = 0, wlen = 0;
    for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++) {
        len += encode(f, msgs[i], strlen(msgs[i]), in + len);
        wlen += expect(want + wlen, msgs[i], strlen(msgs[i]));
    }
    behaviour b = {.framing = f};
    check_every_split(&b, in, len, want);
}
END_TEST

START_TEST(test_long_strings_arrive_whole_at_every_split_point)
{
    tw_framing f = all_framings[_i];
    size_t big = f == TW_FRAMING_INT8 ? 255 : 700;
    char *msg = malloc(big);
    for (size_t i = 0; i < big; i++)
        msg[i] = (char)('a' + i % 26);
    unsigned char *in = malloc(2 * big + 64);
    char *want = malloc(2 * big + 64);
    size_t len = encode(f, msg, big, in);
    len += encode(f, "tail", 4, in + len);
    size_t wlen = expect(want, msg, big);
    expect(want + wlen, "tail", 4);
    behaviour b = {.framing = f};
    check_every_split(&b, in, len, want);
    free(msg);
    free(in);
    free(want);
}
END_TEST

START_TEST(test_string_of_exactly_max_length_is_accepted_at_every_split_point)
{
    tw_framing f = all_framings[_i];
    unsigned char in[64];
    size_t len = encode(f, "0123456789", 10, in);
    behaviour b = {.framing = f, .max_length = 10};
    check_every_split(&b, in, len, "S10(0123456789)");
}
END_TEST

typedef struct {
    char text[1024];
    int records;
} log_capture;

static void capture(tw_log_level level, const char *subsystem, const char *message, void *arg)
{
    (void)level;
    log_capture *c = arg;
    c->records++;
    snprintf(c->text + strlen(c->text), sizeof c->text - strlen(c->text), "%s: %s\n", subsystem,
             message);
}

START_TEST(test_length_over_max_closes_with_a_logged_reason)
{
    tw_framing f = all_framings[_i]; /* the integer prefixes; netstrings below */
    log_capture cap = {{0}, 0};
    tw_log_set_handler(capture, &cap);
    behaviour b = {.framing = f, .max_length = 10};
    tw_string_transport *m = open_with(&b);
    unsigned char in[64];
    size_t len = encode(f, "0123456789X", 11, in);
    tw_string_transport_feed(m, in, len);
    tw_log_set_handler(NULL, NULL);
    ck_assert_str_eq(log_of(m), "");
    ck_assert_int_eq(m->lose_calls, 1);
    ck_assert(tw_string_receiver_broken(&proto_of(m)->sr));
    ck_assert_uint_eq(tw_string_receiver_buffered(&proto_of(m)->sr), 0);
    ck_assert_int_eq(cap.records, 1);
    ck_assert_ptr_nonnull(strstr(cap.text, "11-byte message"));
    ck_assert_ptr_nonnull(strstr(cap.text, "127.0.0.1:40000"));
    tw_string_transport_free(m);
}
END_TEST

START_TEST(test_int32_prefix_of_all_ones_allocates_nothing_and_closes)
{
    log_capture cap = {{0}, 0};
    tw_log_set_handler(capture, &cap);
    behaviour b = {.framing = TW_FRAMING_INT32};
    tw_string_transport *m = open_with(&b);
    tproto *t = proto_of(m);
    tw_string_transport_feed(m, "\xff\xff", 2);
    ck_assert_int_eq(m->lose_calls, 0);
    tw_string_transport_feed(m, "\xff\xff" "payload", 9);
    tw_log_set_handler(NULL, NULL);
    ck_assert_int_eq(m->lose_calls, 1);
    ck_assert_uint_eq(tw_string_receiver_buffered(&t->sr), 0);
    ck_assert_ptr_null(t->sr.payload);
    ck_assert_ptr_null(t->sr.pending);
    ck_assert_int_eq(t->strings, 0);
    ck_assert_ptr_nonnull(strstr(cap.text, "4294967295-byte message"));
    ck_assert_ptr_nonnull(strstr(cap.text, "limit of 99999"));
    tw_string_transport_free(m);
}
END_TEST

START_TEST(test_bytes_after_a_broken_frame_are_ignored)
{
    tw_log_set_handler(capture, &(log_capture){{0}, 0});
    behaviour b = {.framing = TW_FRAMING_INT16, .max_length = 4, .override_limit = 1};
    tw_string_transport *m = open_with(&b);
    tproto *t = proto_of(m);
    unsigned char in[32];
    size_t len = encode(TW_FRAMING_INT16, "12345", 5, in);
    len += encode(TW_FRAMING_INT16, "ok", 2, in + len);
    ck_assert_int_eq(tw_string_receiver_data_received(&t->sr, in, len), TW_EPROTO);
    ck_assert_int_eq(tw_string_receiver_data_received(&t->sr, "\x00\x01x", 3), TW_EPROTO);
    tw_log_set_handler(NULL, NULL);
    ck_assert_int_eq(t->strings, 0);
    ck_assert_uint_eq(tw_string_receiver_buffered(&t->sr), 0);
    tw_string_transport_free(m);
}
END_TEST

START_TEST(test_length_limit_exceeded_can_be_overridden)
{
    tw_log_set_handler(capture, &(log_capture){{0}, 0});
    behaviour b = {.framing = TW_FRAMING_INT32, .max_length = 100, .override_limit = 1};
    tw_string_transport *m = open_with(&b);
    tw_string_transport_feed(m, "\x00\x00\x01\x00", 4);
    tw_log_set_handler(NULL, NULL);
    ck_assert_int_eq(proto_of(m)->limits, 1);
    ck_assert_uint_eq(proto_of(m)->last_limit, 256);
    ck_assert_int_eq(m->lose_calls, 0);
    tw_string_transport_free(m);
}
END_TEST

START_TEST(test_split_message_is_gathered_in_a_buffer_of_its_exact_size)
{
    behaviour b = {.framing = TW_FRAMING_INT32};
    tw_string_transport *m = open_with(&b);
    tproto *t = proto_of(m);
    char msg[1000];
    memset(msg, 'm', sizeof msg);
    unsigned char in[1100];
    size_t len = encode(TW_FRAMING_INT32, msg, sizeof msg, in);
    tw_string_transport_feed(m, in, 2);
    ck_assert_uint_eq(tw_string_receiver_buffered(&t->sr), 0);
    tw_string_transport_feed(m, in + 2, 2); /* the whole prefix, no payload byte yet */
    ck_assert_uint_eq(tw_string_receiver_buffered(&t->sr), 0);
    tw_string_transport_feed(m, in + 4, 10);
    ck_assert_uint_eq(tw_string_receiver_buffered(&t->sr), 1000);
    tw_string_transport_feed(m, in + 14, len - 14);
    ck_assert_int_eq(t->strings, 1);
    ck_assert_uint_eq(tw_string_receiver_buffered(&t->sr), 0);
    tw_string_transport_free(m);
}
END_TEST

/* 1,000 peers announcing 99,999 bytes and sending 5 took 98 MB: the buffer
 * grows with what arrives, never with what the prefix announces. */
START_TEST(test_split_message_buffer_grows_with_what_arrived_not_what_was_announced)
{
    for (int f = 0; f < 2; f++) {
        behaviour b = {.framing = f == 0 ? TW_FRAMING_INT32 : TW_FRAMING_NETSTRING};
        tw_string_transport *m = open_with(&b);
        tproto *t = proto_of(m);
        size_t max = TW_STRING_DEFAULT_MAX_LENGTH;
        char *msg = malloc(max);
        for (size_t i = 0; i < max; i++)
            msg[i] = (char)('a' + i % 26);
        unsigned char *in = malloc(max + 16);
        size_t len = encode(b.framing, msg, max, in);
        size_t head = len - max - (f == 1 ? 1 : 0); /* the prefix */
        tw_string_transport_feed(m, in, head + 5);
        ck_assert_uint_le(tw_string_receiver_buffered(&t->sr), 4096);
        /* It grows by doubling as the payload comes, never past twice it. */
        size_t at = head + 5;
        while (at < len) {
            size_t step = len - at < 7000 ? len - at : 7000;
            tw_string_transport_feed(m, in + at, step);
            at += step;
            if (t->strings == 0) {
                size_t got = at - head, buffered = tw_string_receiver_buffered(&t->sr);
                ck_assert_uint_ge(buffered, got);
                ck_assert_uint_le(buffered, 2 * got > 4096 ? 2 * got : 4096);
            }
        }
        ck_assert_int_eq(t->strings, 1);
        ck_assert_int_eq(strncmp(t->log, "S99999(", 7), 0);
        ck_assert_int_eq(memcmp(t->log + 7, msg, max), 0);
        ck_assert_uint_eq(tw_string_receiver_buffered(&t->sr), 0);
        free(in);
        free(msg);
        tw_string_transport_free(m);
    }
}
END_TEST

START_TEST(test_netstring_empty_string)
{
    behaviour b = {.framing = TW_FRAMING_NETSTRING};
    check_every_split(&b, (const unsigned char *)"0:,0:,", 6, "S0()S0()");
}
END_TEST

/* Feed @p in to a netstring receiver: nothing delivered, closed, reason logged. */
static void check_netstring_rejected(const char *in, size_t max_length, const char *reason)
{
    log_capture cap = {{0}, 0};
    tw_log_set_handler(capture, &cap);
    behaviour b = {.framing = TW_FRAMING_NETSTRING, .max_length = max_length};
    tw_string_transport *m = open_with(&b);
    tproto *t = proto_of(m);
    int rc = tw_string_receiver_data_received(&t->sr, in, strlen(in));
    tw_log_set_handler(NULL, NULL);
    ck_assert_msg(rc == TW_EPROTO, "'%s' was not refused (%d)", in, rc);
    ck_assert_msg(t->strings == 0, "'%s' delivered %s", in, log_of(m));
    ck_assert_int_eq(m->lose_calls, 1);
    ck_assert(tw_string_receiver_broken(&t->sr));
    ck_assert_uint_eq(tw_string_receiver_buffered(&t->sr), 0);
    ck_assert_msg(strstr(cap.text, reason) != NULL, "'%s': log '%s' lacks '%s'", in, cap.text,
                  reason);
    tw_string_transport_free(m);
}

START_TEST(test_netstring_leading_zero_is_rejected)
{
    check_netstring_rejected("03:abc,", 0, "leading zero");
    check_netstring_rejected("00:", 0, "leading zero");
    check_netstring_rejected("0000000000000000000001:x,", 0, "leading zero");
}
END_TEST

START_TEST(test_netstring_length_over_max_is_rejected_before_the_colon)
{
    /* Twisted's default MAX_LENGTH 99999: "100000" is refused at its last digit. */
    check_netstring_rejected("100000", 0, "over the limit of 99999");
    check_netstring_rejected("99999999999999999999999999999999:", 0, "over the limit");
    check_netstring_rejected("6:abcdef,", 5, "over the limit of 5");
    behaviour b = {.framing = TW_FRAMING_NETSTRING};
    tw_string_transport *m = open_with(&b);
    tw_string_transport_feed_str(m, "99999");
    ck_assert(!tw_string_receiver_broken(&proto_of(m)->sr));
    ck_assert_uint_eq(tw_string_receiver_buffered(&proto_of(m)->sr), 0);
    tw_string_transport_feed_str(m, ":ab");
    /* Accepted, but two bytes hold a small buffer, not the 100,000 announced. */
    ck_assert_uint_eq(tw_string_receiver_buffered(&proto_of(m)->sr), 4096);
    tw_string_transport_free(m);
}
END_TEST

START_TEST(test_netstring_missing_comma_is_rejected)
{
    check_netstring_rejected("3:abcX", 0, "comma");
    check_netstring_rejected("3:abc;3:abc,", 0, "comma");
    check_netstring_rejected("0:X", 0, "comma");
    /* And when the payload was gathered across chunks. */
    behaviour b = {.framing = TW_FRAMING_NETSTRING};
    tw_log_set_handler(capture, &(log_capture){{0}, 0});
    tw_string_transport *m = open_with(&b);
    tw_string_transport_feed_str(m, "3:ab");
    tw_string_transport_feed_str(m, "c.");
    tw_log_set_handler(NULL, NULL);
    ck_assert_int_eq(proto_of(m)->strings, 0);
    ck_assert_int_eq(m->lose_calls, 1);
    tw_string_transport_free(m);
}
END_TEST

START_TEST(test_netstring_without_a_length_is_rejected)
{
    check_netstring_rejected(":abc,", 0, "does not start with a length");
    check_netstring_rejected("x", 0, "not a decimal number");
    check_netstring_rejected("-1:a,", 0, "not a decimal number");
    check_netstring_rejected(" 3:abc,", 0, "not a decimal number");
    check_netstring_rejected("3 :abc,", 0, "not a decimal number");
}
END_TEST

START_TEST(test_send_string_writes_the_prefix_then_the_payload)
{
    static const struct {
        tw_framing f;
        const char *bytes;
        size_t len;
    } cases[] = {
        {TW_FRAMING_INT8, "\x05hello", 6},
        {TW_FRAMING_INT16, "\x00\x05hello", 7},
        {TW_FRAMING_INT32, "\x00\x00\x00\x05hello", 9},
        {TW_FRAMING_NETSTRING, "5:hello,", 8},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        behaviour b = {.framing = cases[i].f};
        tw_string_transport *m = open_with(&b);
        ck_assert_int_eq(tw_string_receiver_send_string(&proto_of(m)->sr, "hello", 5), 0);
        size_t len;
        const char *out = tw_string_transport_output(m, &len);
        ck_assert_uint_eq(len, cases[i].len);
        ck_assert_int_eq(memcmp(out, cases[i].bytes, len), 0);
        ck_assert_uint_eq(m->writes, 1);
        tw_string_transport_free(m);
    }
}
END_TEST

START_TEST(test_send_string_refuses_what_the_prefix_cannot_express)
{
    static char payload[65536];
    behaviour b8 = {.framing = TW_FRAMING_INT8};
    tw_string_transport *m = open_with(&b8);
    tw_string_receiver *sr = &proto_of(m)->sr;
    ck_assert_int_eq(tw_string_receiver_send_string(sr, payload, 256), TW_ETOOBIG);
    ck_assert_uint_eq(m->out_len, 0);
    ck_assert_int_eq(tw_string_receiver_send_string(sr, payload, 255), 0);
    ck_assert_uint_eq(m->out_len, 256);
    ck_assert_uint_eq((unsigned char)m->out[0], 255);
    tw_string_transport_free(m);

    behaviour b16 = {.framing = TW_FRAMING_INT16};
    m = open_with(&b16);
    sr = &proto_of(m)->sr;
    ck_assert_int_eq(tw_string_receiver_send_string(sr, payload, 65536), TW_ETOOBIG);
    ck_assert_uint_eq(m->out_len, 0);
    ck_assert_int_eq(tw_string_receiver_send_string(sr, payload, 65535), 0);
    ck_assert_uint_eq(m->out_len, 65537);
    tw_string_transport_free(m);

#if SIZE_MAX > UINT32_MAX
    behaviour b32 = {.framing = TW_FRAMING_INT32};
    m = open_with(&b32);
    sr = &proto_of(m)->sr;
    /* The length is checked before a byte of the payload is read. */
    ck_assert_int_eq(tw_string_receiver_send_string(sr, payload, (size_t)UINT32_MAX + 1),
                     TW_ETOOBIG);
    ck_assert_uint_eq(m->out_len, 0);
    tw_string_transport_free(m);
#endif
}
END_TEST

START_TEST(test_send_string_after_close_is_refused)
{
    behaviour b = {.framing = TW_FRAMING_INT16};
    tw_string_transport *m = open_with(&b);
    /* lose_connection still takes it (sent before the FIN); abort does not */
    tw_transport_lose_connection(&m->base);
    ck_assert_int_eq(tw_string_receiver_send_string(&proto_of(m)->sr, "x", 1), 0);
    ck_assert_uint_eq(m->out_len, 3);
    tw_transport_abort_connection(&m->base);
    ck_assert_int_eq(tw_string_receiver_send_string(&proto_of(m)->sr, "y", 1), TW_ESTATE);
    ck_assert_uint_eq(m->out_len, 3);
    tw_string_transport_free(m);
    tw_protocol p = {0};
    tw_string_receiver sr;
    tw_string_receiver_init(&sr, &p, TW_FRAMING_INT8, &default_ops);
    ck_assert_int_eq(tw_string_receiver_send_string(&sr, "x", 1), TW_ESTATE);
    tw_string_receiver_cleanup(&sr);
}
END_TEST

START_TEST(test_init_refuses_an_unknown_framing)
{
    tw_string_receiver sr;
    ck_assert_int_eq(tw_string_receiver_init(&sr, NULL, (tw_framing)3, &default_ops), -EINVAL);
    ck_assert_int_eq(tw_string_receiver_init(&sr, NULL, TW_FRAMING_INT16, &default_ops), 0);
    ck_assert_int_eq(tw_string_receiver_framing(&sr), TW_FRAMING_INT16);
    ck_assert_uint_eq(tw_string_receiver_max_length(&sr), 99999);
    tw_string_receiver_cleanup(&sr);
}
END_TEST

START_TEST(test_closing_from_a_handler_stops_the_following_strings)
{
    tw_framing f = all_framings[_i];
    behaviour b = {.framing = f, .close_at = 1};
    tw_string_transport *m = open_with(&b);
    unsigned char in[64];
    size_t len = encode(f, "one", 3, in);
    len += encode(f, "two", 3, in + len);
    tw_string_transport_feed(m, in, len);
    ck_assert_str_eq(log_of(m), "S3(one)");
    ck_assert_int_eq(m->lose_calls, 1);
    tw_string_transport_free(m);
}
END_TEST

START_TEST(test_pausing_from_a_handler_stops_delivery_until_resumed)
{
    tw_framing f = all_framings[_i];
    behaviour b = {.framing = f, .pause_at = 1};
    tw_string_transport *m = open_with(&b);
    tproto *t = proto_of(m);
    unsigned char in[64];
    size_t len = encode(f, "one", 3, in);
    len += encode(f, "two", 3, in + len);
    size_t third = encode(f, "three", 5, in + len);
    tw_string_transport_feed(m, in, len + 2); /* the third only partly */
    ck_assert_str_eq(log_of(m), "S3(one)");
    ck_assert(tw_string_receiver_paused(&t->sr));
    ck_assert_int_eq(m->reading_paused, 1);
    tw_string_transport_feed(m, in + len + 2, third - 2);
    ck_assert_str_eq(log_of(m), "S3(one)");
    tw_string_receiver_resume_producing(&t->sr);
    ck_assert_str_eq(log_of(m), "S3(one)S3(two)S5(three)");
    ck_assert_int_eq(m->reading_paused, 0);
    ck_assert_uint_eq(tw_string_receiver_buffered(&t->sr), 0);
    tw_string_transport_free(m);
}
END_TEST

START_TEST(test_data_fed_from_a_handler_comes_after_the_rest_of_the_chunk)
{
    tw_framing f = all_framings[_i];
    unsigned char fed[16];
    size_t fed_len = encode(f, "fed", 3, fed);
    behaviour b = {.framing = f, .feed_at = 1, .feed = (const char *)fed, .feed_len = fed_len};
    unsigned char in[64];
    size_t len = encode(f, "one", 3, in);
    len += encode(f, "two", 3, in + len);
    tw_string_transport *m = open_with(&b);
    tw_string_transport_feed(m, in, len);
    ck_assert_str_eq(log_of(m), "S3(one)S3(two)S3(fed)");
    tw_string_transport_free(m);
    /* The same when "one" was gathered from two chunks. */
    m = open_with(&b);
    tw_string_transport_feed(m, in, 2);
    tw_string_transport_feed(m, in + 2, len - 2);
    ck_assert_str_eq(log_of(m), "S3(one)S3(two)S3(fed)");
    tw_string_transport_free(m);
}
END_TEST

START_TEST(test_bytes_fed_by_a_handler_that_paused_keep_stream_order)
{
    tw_framing f = all_framings[_i];
    unsigned char fed[16];
    size_t fed_len = encode(f, "fed", 3, fed);
    behaviour b = {.framing = f, .pause_at = 1, .feed_at = 1, .feed = (const char *)fed,
                   .feed_len = fed_len};
    unsigned char in[64];
    size_t len = encode(f, "one", 3, in);
    len += encode(f, "two", 3, in + len);
    tw_string_transport *m = open_with(&b);
    tw_string_transport_feed(m, in, len);
    ck_assert_str_eq(log_of(m), "S3(one)");
    tw_string_receiver_resume_producing(&proto_of(m)->sr);
    ck_assert_str_eq(log_of(m), "S3(one)S3(two)S3(fed)");
    tw_string_transport_free(m);
}
END_TEST

START_TEST(test_write_buffer_high_watermark_pauses_the_strings)
{
    behaviour b = {.framing = TW_FRAMING_INT8, .echo = 1};
    tw_string_transport *m = open_with(&b);
    tw_transport_set_write_watermarks(&m->base, 8, 2);
    tw_string_transport_set_hold(m, 1);
    unsigned char in[64];
    size_t len = encode(TW_FRAMING_INT8, "aaaa", 4, in);
    len += encode(TW_FRAMING_INT8, "bbbb", 4, in + len);
    len += encode(TW_FRAMING_INT8, "cccc", 4, in + len);
    tw_string_transport_feed(m, in, len);
    ck_assert_str_eq(log_of(m), "S4(aaaa)S4(bbbb)");
    ck_assert(tw_string_receiver_paused(&proto_of(m)->sr));
    tw_string_transport_drain(m, 8);
    ck_assert_str_eq(log_of(m), "S4(aaaa)S4(bbbb)S4(cccc)");
    size_t out_len;
    const char *out = tw_string_transport_output(m, &out_len);
    ck_assert_uint_eq(out_len, len);
    ck_assert_int_eq(memcmp(out, in, len), 0);
    tw_string_transport_free(m);
}
END_TEST

static Suite *framing_suite(void)
{
    Suite *s = suite_create("framing");
    TCase *tc = tcase_create("receivers");
    tcase_set_timeout(tc, 60);
    int n = (int)(sizeof all_framings / sizeof all_framings[0]);
    tcase_add_loop_test(tc, test_short_strings_arrive_whole_at_every_split_point, 0, n);
    tcase_add_loop_test(tc, test_long_strings_arrive_whole_at_every_split_point, 0, n);
    tcase_add_loop_test(tc, test_string_of_exactly_max_length_is_accepted_at_every_split_point,
                        0, n);
    tcase_add_loop_test(tc, test_length_over_max_closes_with_a_logged_reason, 0, n - 1);
    tcase_add_test(tc, test_int32_prefix_of_all_ones_allocates_nothing_and_closes);
    tcase_add_test(tc, test_bytes_after_a_broken_frame_are_ignored);
    tcase_add_test(tc, test_length_limit_exceeded_can_be_overridden);
    tcase_add_test(tc, test_split_message_is_gathered_in_a_buffer_of_its_exact_size);
    tcase_add_test(tc, test_split_message_buffer_grows_with_what_arrived_not_what_was_announced);
    tcase_add_test(tc, test_netstring_empty_string);
    tcase_add_test(tc, test_netstring_leading_zero_is_rejected);
    tcase_add_test(tc, test_netstring_length_over_max_is_rejected_before_the_colon);
    tcase_add_test(tc, test_netstring_missing_comma_is_rejected);
    tcase_add_test(tc, test_netstring_without_a_length_is_rejected);
    tcase_add_test(tc, test_send_string_writes_the_prefix_then_the_payload);
    tcase_add_test(tc, test_send_string_refuses_what_the_prefix_cannot_express);
    tcase_add_test(tc, test_send_string_after_close_is_refused);
    tcase_add_test(tc, test_init_refuses_an_unknown_framing);
    tcase_add_loop_test(tc, test_closing_from_a_handler_stops_the_following_strings, 0, n);
    tcase_add_loop_test(tc, test_pausing_from_a_handler_stops_delivery_until_resumed, 0, n);
    tcase_add_loop_test(tc, test_data_fed_from_a_handler_comes_after_the_rest_of_the_chunk, 0,
                        n);
    tcase_add_loop_test(tc, test_bytes_fed_by_a_handler_that_paused_keep_stream_order, 0, n);
    tcase_add_test(tc, test_write_buffer_high_watermark_pauses_the_strings);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(framing_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
