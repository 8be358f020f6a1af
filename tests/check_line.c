/* SPDX-License-Identifier: MIT */
/*
 * The line receiver, against Twisted's LineReceiver rules: delimiters,
 * max_length boundaries, raw mode, stopping and pausing from handlers, and
 * the same lines whatever way the stream is chunked (every split point, and
 * one byte at a time). Driven over the in-memory transport.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <twine.h>
#include <twine/line.h>

#include <twine/testing.h>
#include "testutil.h"

/* What a test protocol does, and when (counted in lines, from 1). */
typedef struct {
    const char *delimiter; /* NULL: the default */
    size_t max_length;     /* 0: the default */
    int close_at, abort_at, pause_at, pause_resume_at, raw_at, feed_at, delim_at;
    const char *feed;      /* fed from the handler of line feed_at */
    const char *new_delim; /* set from the handler of line delim_at */
    size_t raw_take;       /* raw mode: take this many bytes, then line mode again */
    int override_exceeded;
    int echo; /* send_line every line */
} behaviour;

typedef struct {
    tw_protocol base;
    tw_line_receiver lr;
    const behaviour *b;
    char *log;
    size_t log_len, log_cap;
    int lines, raws, exceeded;
    size_t raw_have;
    char raw[64]; /* raw bytes gathered until raw_take of them arrived */
} tproto;

static void note(tproto *t, char tag, const void *data, size_t len)
{
    size_t need = t->log_len + len + 4;
    if (need > t->log_cap) {
        size_t cap = t->log_cap ? t->log_cap : 256;
        while (cap < need)
            cap *= 2;
        t->log = realloc(t->log, cap);
        ck_assert_ptr_nonnull(t->log);
        t->log_cap = cap;
    }
    t->log[t->log_len++] = tag;
    t->log[t->log_len++] = '(';
    memcpy(t->log + t->log_len, data, len);
    t->log_len += len;
    t->log[t->log_len++] = ')';
    t->log[t->log_len] = '\0';
}

static void on_line(tw_line_receiver *lr, const char *line, size_t len)
{
    tproto *t = tw_container_of(lr, tproto, lr);
    const behaviour *b = t->b;
    t->lines++;
    note(t, 'L', line, len);
    if (b->echo)
        tw_line_receiver_send_line(lr, line, len);
    if (t->lines == b->close_at)
        tw_transport_lose_connection(t->base.transport);
    if (t->lines == b->abort_at)
        tw_transport_abort_connection(t->base.transport);
    if (t->lines == b->pause_at)
        tw_line_receiver_pause_producing(lr);
    if (t->lines == b->pause_resume_at) {
        tw_line_receiver_pause_producing(lr);
        tw_line_receiver_resume_producing(lr);
    }
    if (t->lines == b->raw_at) {
        t->raw_have = 0;
        tw_line_receiver_set_raw_mode(lr);
    }
    if (t->lines == b->feed_at)
        tw_line_receiver_data_received(lr, b->feed, strlen(b->feed));
    if (t->lines == b->delim_at)
        tw_line_receiver_set_delimiter(lr, b->new_delim, strlen(b->new_delim));
}

static void on_raw(tw_line_receiver *lr, const void *data, size_t len)
{
    tproto *t = tw_container_of(lr, tproto, lr);
    t->raws++;
    size_t want = t->b->raw_take;
    if (want == 0) {
        note(t, 'R', data, len);
        return;
    }
    ck_assert_uint_le(want, sizeof t->raw);
    size_t take = len < want - t->raw_have ? len : want - t->raw_have;
    memcpy(t->raw + t->raw_have, data, take);
    t->raw_have += take;
    if (t->raw_have == want) {
        note(t, 'R', t->raw, want);
        tw_line_receiver_set_line_mode(lr, (const char *)data + take, len - take);
    }
}

static void on_too_long(tw_line_receiver *lr, const char *data, size_t len)
{
    tproto *t = tw_container_of(lr, tproto, lr);
    t->exceeded++;
    note(t, 'X', data, len);
}

static const tw_line_receiver_ops with_default_exceeded = {
    .line_received = on_line,
    .raw_data_received = on_raw,
};

static const tw_line_receiver_ops with_own_exceeded = {
    .line_received = on_line,
    .raw_data_received = on_raw,
    .line_length_exceeded = on_too_long,
};

static void tp_data(tw_protocol *p, const void *data, size_t len)
{
    tproto *t = tw_container_of(p, tproto, base);
    ck_assert_int_eq(tw_line_receiver_data_received(&t->lr, data, len), 0);
}

static void tp_pause(tw_protocol *p)
{
    tw_line_receiver_pause_producing(&tw_container_of(p, tproto, base)->lr);
}

static void tp_resume(tw_protocol *p)
{
    tw_line_receiver_resume_producing(&tw_container_of(p, tproto, base)->lr);
}

static void tp_lost(tw_protocol *p, const tw_failure *reason)
{
    (void)p;
    (void)reason;
}

static void tp_destroy(tw_protocol *p)
{
    tproto *t = tw_container_of(p, tproto, base);
    tw_line_receiver_cleanup(&t->lr);
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
    tw_line_receiver_init(&t->lr, &t->base,
                          b->override_exceeded ? &with_own_exceeded : &with_default_exceeded);
    if (b->delimiter != NULL)
        ck_assert_int_eq(
            tw_line_receiver_set_delimiter(&t->lr, b->delimiter, strlen(b->delimiter)), 0);
    if (b->max_length > 0)
        tw_line_receiver_set_max_length(&t->lr, b->max_length);
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

/* Feed @p in cut at the given offsets (ascending); return the event log (caller frees). */
static char *run_cuts(const behaviour *b, const char *in, size_t len, const size_t *cuts,
                      size_t ncuts, int *lose_calls)
{
    tw_string_transport *m = open_with(b);
    size_t at = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        tw_string_transport_feed(m, in + at, end - at);
        at = end;
    }
    char *log = strdup(log_of(m));
    if (lose_calls != NULL)
        *lose_calls = m->lose_calls;
    tw_string_transport_free(m);
    return log;
}

static char *cuts_run(const void *b, const void *in, size_t len, const size_t *cuts,
                      size_t ncuts)
{
    return run_cuts(b, in, len, cuts, ncuts, NULL);
}

/* The log of @p in must be @p expected however the input is cut. */
static void check_every_split(const behaviour *b, const char *in, const char *expected)
{
    tu_check_every_split(cuts_run, b, in, strlen(in), expected, 64);
}

START_TEST(test_lines_are_split_on_crlf_by_default)
{
    behaviour b = {0};
    tw_string_transport *m = open_with(&b);
    size_t dlen;
    const char *d = tw_line_receiver_delimiter(&proto_of(m)->lr, &dlen);
    ck_assert_uint_eq(dlen, 2);
    ck_assert_int_eq(memcmp(d, "\r\n", 2), 0);
    ck_assert_uint_eq(tw_line_receiver_max_length(&proto_of(m)->lr), 16384);
    tw_string_transport_feed_str(m, "hello\r\nworld\r\n");
    ck_assert_str_eq(log_of(m), "L(hello)L(world)");
    ck_assert_int_eq(m->lose_calls, 0);
    tw_string_transport_free(m);
}
END_TEST

START_TEST(test_every_split_point_gives_the_same_lines)
{
    behaviour b = {0};
    check_every_split(&b, "one\r\n\r\ntwo\rthree\n\r\nfour\r\n\r\r\n",
                      "L(one)L()L(two\rthree\n)L(four)L(\r)");
}
END_TEST

START_TEST(test_a_bare_lf_is_not_a_crlf_delimiter)
{
    behaviour b = {0};
    check_every_split(&b, "a\nb\r\n", "L(a\nb)");
}
END_TEST

START_TEST(test_lf_delimiter_splits_on_newlines_at_every_split_point)
{
    behaviour b = {.delimiter = "\n"};
    check_every_split(&b, "alpha\nbeta\r\n\ngamma", "L(alpha)L(beta\r)L()");
}
END_TEST

START_TEST(test_multibyte_delimiter_with_partial_matches_at_every_split_point)
{
    behaviour b = {.delimiter = "<END>"};
    check_every_split(&b, "a<EN<END>b<<END><END>c<ENDd<END>",
                      "L(a<EN)L(b<)L()L(c<ENDd)");
}
END_TEST

START_TEST(test_delimiter_must_be_one_to_sixteen_bytes)
{
    tw_line_receiver lr;
    tw_line_receiver_init(&lr, NULL, &with_default_exceeded);
    ck_assert_int_eq(tw_line_receiver_set_delimiter(&lr, "", 0), -EINVAL);
    ck_assert_int_eq(tw_line_receiver_set_delimiter(&lr, "0123456789abcdefX", 17), -EINVAL);
    size_t dlen;
    tw_line_receiver_delimiter(&lr, &dlen);
    ck_assert_uint_eq(dlen, 2);
    ck_assert_int_eq(tw_line_receiver_set_delimiter(&lr, "0123456789abcdef", 16), 0);
    tw_line_receiver_delimiter(&lr, &dlen);
    ck_assert_uint_eq(dlen, 16);
    tw_line_receiver_cleanup(&lr);
}
END_TEST

START_TEST(test_line_of_exactly_max_length_is_accepted_at_every_split_point)
{
    behaviour b = {.max_length = 5};
    check_every_split(&b, "12345\r\nabcde\r\n", "L(12345)L(abcde)");
}
END_TEST

START_TEST(test_partial_line_with_a_delimiter_prefix_waits_at_max_length)
{
    /* Twisted: "xyz\r" then "\n" works at MAX_LENGTH 3. */
    behaviour b = {.max_length = 3, .override_exceeded = 1};
    tw_string_transport *m = open_with(&b);
    tw_string_transport_feed_str(m, "xyz\r");
    ck_assert_str_eq(log_of(m), "");
    ck_assert_uint_eq(tw_line_receiver_buffered(&proto_of(m)->lr), 4);
    tw_string_transport_feed_str(m, "\n");
    ck_assert_str_eq(log_of(m), "L(xyz)");
    ck_assert_uint_eq(tw_line_receiver_buffered(&proto_of(m)->lr), 0);
    tw_string_transport_free(m);
}
END_TEST

START_TEST(test_without_delimiter_the_line_is_too_long_at_max_plus_delimiter_bytes)
{
    behaviour b = {.max_length = 3, .override_exceeded = 1};
    tw_string_transport *m = open_with(&b);
    tw_string_transport_feed_str(m, "abcd"); /* 4 < 3 + 2 bytes: not yet */
    ck_assert_str_eq(log_of(m), "");
    tw_string_transport_feed_str(m, "e"); /* 5 = 3 + 2 bytes and no delimiter */
    ck_assert_str_eq(log_of(m), "X(abcde)");
    ck_assert_uint_eq(tw_line_receiver_buffered(&proto_of(m)->lr), 0);
    tw_string_transport_free(m);
}
END_TEST

START_TEST(test_too_long_line_closes_the_connection_by_default)
{
    behaviour b = {.max_length = 3};
    tw_string_transport *m = open_with(&b);
    tw_string_transport_feed_str(m, "ok\r\ntoolong\r\nnever\r\n");
    ck_assert_str_eq(log_of(m), "L(ok)");
    ck_assert_int_eq(m->lose_calls, 1);
    ck_assert_int_eq(m->abort_calls, 0);
    ck_assert_int_eq(tw_string_transport_run_close(m), 1);
    ck_assert_int_eq(m->lost_code, TW_EDONE);
    tw_string_transport_free(m);
}
END_TEST

START_TEST(test_too_long_line_with_delimiter_gets_the_line_and_the_rest_of_the_buffer)
{
    /* As Twisted: line + delimiter + everything after it, buffer emptied. */
    behaviour b = {.max_length = 3, .override_exceeded = 1};
    tw_string_transport *m = open_with(&b);
    tw_string_transport_feed_str(m, "abcd\r\nok\r\npart");
    ck_assert_str_eq(log_of(m), "X(abcd\r\nok\r\npart)");
    ck_assert_uint_eq(tw_line_receiver_buffered(&proto_of(m)->lr), 0);
    ck_assert_int_eq(m->lose_calls, 0);
    tw_string_transport_feed_str(m, "ok\r\n");
    ck_assert_str_eq(log_of(m), "X(abcd\r\nok\r\npart)L(ok)");
    tw_string_transport_free(m);
}
END_TEST

START_TEST(test_one_over_max_length_is_refused_at_every_split_point)
{
    behaviour b = {.max_length = 5};
    const char *in = "123456\r\nafter\r\n";
    size_t len = strlen(in);
    for (size_t i = 0; i <= len; i++) {
        size_t cut[1] = {i};
        int lose = 0;
        char *log = run_cuts(&b, in, len, cut, 1, &lose);
        ck_assert_msg(strcmp(log, "") == 0, "split at %zu delivered %s", i, log);
        ck_assert_int_eq(lose, 1);
        free(log);
    }
    size_t cuts[32];
    for (size_t i = 0; i + 1 < len; i++)
        cuts[i] = i + 1;
    int lose = 0;
    char *log = run_cuts(&b, in, len, cuts, len - 1, &lose);
    ck_assert_str_eq(log, "");
    ck_assert_int_eq(lose, 1);
    free(log);
}
END_TEST

START_TEST(test_overridden_line_length_exceeded_keeps_the_connection)
{
    behaviour b = {.max_length = 2, .override_exceeded = 1};
    tw_string_transport *m = open_with(&b);
    tw_string_transport_feed_str(m, "abc\r\n");
    tw_string_transport_feed_str(m, "ab\r\n");
    ck_assert_str_eq(log_of(m), "X(abc\r\n)L(ab)");
    ck_assert_int_eq(proto_of(m)->exceeded, 1);
    ck_assert_int_eq(m->lose_calls, 0);
    tw_string_transport_free(m);
}
END_TEST

START_TEST(test_max_length_can_be_changed)
{
    behaviour b = {.override_exceeded = 1};
    tw_string_transport *m = open_with(&b);
    tproto *t = proto_of(m);
    tw_line_receiver_set_max_length(&t->lr, 1);
    ck_assert_uint_eq(tw_line_receiver_max_length(&t->lr), 1);
    tw_string_transport_feed_str(m, "a\r\nbb\r\n");
    ck_assert_str_eq(log_of(m), "L(a)X(bb\r\n)");
    tw_string_transport_free(m);
}
END_TEST

START_TEST(test_send_line_writes_the_line_then_the_delimiter)
{
    behaviour b = {0};
    tw_string_transport *m = open_with(&b);
    tproto *t = proto_of(m);
    ck_assert_int_eq(tw_line_receiver_send_line(&t->lr, "hi", 2), 0);
    ck_assert_int_eq(tw_line_receiver_send_line(&t->lr, "", 0), 0);
    ck_assert(tw_string_transport_output_is(m, "hi\r\n\r\n"));
    ck_assert_uint_eq(m->writes, 2);
    tw_line_receiver_set_delimiter(&t->lr, "\n", 1);
    tw_string_transport_clear_output(m);
    tw_line_receiver_send_line(&t->lr, "x", 1);
    ck_assert(tw_string_transport_output_is(m, "x\n"));
    /* taken after lose_connection, sent before the FIN (as Twisted does) */
    tw_transport_lose_connection(&m->base);
    ck_assert_int_eq(tw_line_receiver_send_line(&t->lr, "late", 4), 0);
    ck_assert(tw_string_transport_output_is(m, "x\nlate\n"));
    tw_transport_abort_connection(&m->base);
    ck_assert_int_eq(tw_line_receiver_send_line(&t->lr, "gone", 4), TW_ESTATE);
    ck_assert(tw_string_transport_output_is(m, "x\nlate\n"));
    tw_string_transport_free(m);
}
END_TEST

START_TEST(test_send_line_without_a_transport_is_refused)
{
    tw_protocol p = {0};
    tw_line_receiver lr;
    tw_line_receiver_init(&lr, &p, &with_default_exceeded);
    ck_assert_int_eq(tw_line_receiver_send_line(&lr, "x", 1), TW_ESTATE);
    tw_line_receiver_cleanup(&lr);
}
END_TEST

START_TEST(test_raw_mode_gets_the_rest_of_the_buffer_and_later_chunks)
{
    behaviour b = {.raw_at = 1};
    tw_string_transport *m = open_with(&b);
    tw_string_transport_feed_str(m, "go\r\nraw\r\nbytes");
    ck_assert_str_eq(log_of(m), "L(go)R(raw\r\nbytes)");
    ck_assert_int_eq(tw_line_receiver_line_mode(&proto_of(m)->lr), 0);
    tw_string_transport_feed_str(m, "more\r\n");
    ck_assert_str_eq(log_of(m), "L(go)R(raw\r\nbytes)R(more\r\n)");
    ck_assert_uint_eq(tw_line_receiver_buffered(&proto_of(m)->lr), 0);
    tw_string_transport_free(m);
}
END_TEST

START_TEST(test_set_line_mode_parses_extra_at_every_split_point)
{
    /* A header line, a 5-byte body in raw mode, then lines again. */
    behaviour b = {.raw_at = 1, .raw_take = 5};
    check_every_split(&b, "HEAD\r\nhelloNEXT\r\nLAST\r\n", "L(HEAD)R(hello)L(NEXT)L(LAST)");
}
END_TEST

START_TEST(test_set_line_mode_outside_a_callback_delivers_at_once)
{
    behaviour b = {0};
    tw_string_transport *m = open_with(&b);
    tproto *t = proto_of(m);
    tw_line_receiver_set_raw_mode(&t->lr);
    ck_assert_int_eq(tw_line_receiver_set_line_mode(&t->lr, "a\r\nb", 4), 0);
    ck_assert_int_eq(tw_line_receiver_line_mode(&t->lr), 1);
    ck_assert_str_eq(log_of(m), "L(a)");
    tw_string_transport_feed_str(m, "\r\n");
    ck_assert_str_eq(log_of(m), "L(a)L(b)");
    ck_assert_int_eq(tw_line_receiver_set_line_mode(&t->lr, NULL, 0), 0);
    tw_string_transport_free(m);
}
END_TEST

START_TEST(test_closing_from_a_handler_stops_the_buffered_lines)
{
    behaviour b = {.close_at = 2};
    tw_string_transport *m = open_with(&b);
    tw_string_transport_feed_str(m, "a\r\nb\r\nc\r\nd\r\n");
    ck_assert_str_eq(log_of(m), "L(a)L(b)");
    ck_assert_int_eq(m->lose_calls, 1);
    tw_string_transport_free(m);
}
END_TEST

START_TEST(test_aborting_from_a_handler_stops_the_buffered_lines)
{
    behaviour b = {.abort_at = 1};
    tw_string_transport *m = open_with(&b);
    tw_string_transport_feed_str(m, "a\r\nb\r\nc\r\n");
    ck_assert_str_eq(log_of(m), "L(a)");
    ck_assert_int_eq(m->abort_calls, 1);
    ck_assert_int_eq(tw_string_transport_run_close(m), 1);
    ck_assert_int_eq(m->lost_code, TW_EABORTED);
    tw_string_transport_free(m);
}
END_TEST

START_TEST(test_pausing_from_a_handler_stops_delivery_until_resumed)
{
    behaviour b = {.pause_at = 1};
    tw_string_transport *m = open_with(&b);
    tproto *t = proto_of(m);
    tw_string_transport_feed_str(m, "a\r\nb\r\nc\r\n");
    ck_assert_str_eq(log_of(m), "L(a)");
    ck_assert(tw_line_receiver_paused(&t->lr));
    ck_assert_int_eq(m->reading_paused, 1);
    ck_assert_uint_eq(tw_line_receiver_buffered(&t->lr), 6);
    tw_string_transport_feed_str(m, "d\r\n"); /* already in flight when reading stopped */
    ck_assert_str_eq(log_of(m), "L(a)");
    tw_line_receiver_resume_producing(&t->lr);
    ck_assert_str_eq(log_of(m), "L(a)L(b)L(c)L(d)");
    ck_assert_int_eq(m->reading_paused, 0);
    ck_assert(!tw_line_receiver_paused(&t->lr));
    ck_assert_uint_eq(tw_line_receiver_buffered(&t->lr), 0);
    tw_string_transport_free(m);
}
END_TEST

START_TEST(test_pause_and_resume_inside_a_handler_keeps_going)
{
    behaviour b = {.pause_resume_at = 1};
    check_every_split(&b, "a\r\nb\r\nc\r\n", "L(a)L(b)L(c)");
}
END_TEST

START_TEST(test_paused_raw_data_waits_for_resume)
{
    behaviour b = {.raw_at = 1};
    tw_string_transport *m = open_with(&b);
    tproto *t = proto_of(m);
    tw_line_receiver_pause_producing(&t->lr);
    tw_string_transport_feed_str(m, "x\r\nraw");
    ck_assert_str_eq(log_of(m), "");
    tw_line_receiver_resume_producing(&t->lr);
    ck_assert_str_eq(log_of(m), "L(x)R(raw)");
    tw_string_transport_free(m);
}
END_TEST

START_TEST(test_write_buffer_high_watermark_pauses_the_lines)
{
    /* An echoing protocol whose peer does not read: the queue passes the
     * high watermark, the transport calls pause_producing, lines stop. */
    behaviour b = {.echo = 1};
    tw_string_transport *m = open_with(&b);
    tproto *t = proto_of(m);
    tw_transport_set_write_watermarks(&m->base, 10, 4);
    tw_string_transport_set_hold(m, 1);
    tw_string_transport_feed_str(m, "aaaa\r\nbbbb\r\ncccc\r\n");
    ck_assert_str_eq(log_of(m), "L(aaaa)L(bbbb)");
    ck_assert_int_eq(m->producer_pause_calls, 1);
    ck_assert(tw_line_receiver_paused(&t->lr));
    ck_assert_int_eq(m->reading_paused, 1);
    tw_string_transport_drain(m, 8);
    ck_assert_str_eq(log_of(m), "L(aaaa)L(bbbb)L(cccc)");
    ck_assert_int_eq(m->reading_paused, 0);
    ck_assert(tw_string_transport_output_is(m, "aaaa\r\nbbbb\r\ncccc\r\n"));
    tw_string_transport_free(m);
}
END_TEST

START_TEST(test_data_fed_from_a_handler_is_queued_behind_the_buffer)
{
    /* Twisted appends it to the end of its buffer: "part" came first. */
    behaviour b = {.feed_at = 1, .feed = "X\r\n"};
    tw_string_transport *m = open_with(&b);
    tw_string_transport_feed_str(m, "a\r\nb\r\npart");
    ck_assert_str_eq(log_of(m), "L(a)L(b)L(partX)");
    tw_string_transport_free(m);
    /* The same when the first line was already buffered. */
    m = open_with(&b);
    tw_string_transport_feed_str(m, "a");
    tw_string_transport_feed_str(m, "\r\nb\r\npart");
    ck_assert_str_eq(log_of(m), "L(a)L(b)L(partX)");
    tw_string_transport_free(m);
}
END_TEST

START_TEST(test_data_fed_by_a_handler_that_paused_keeps_stream_order)
{
    behaviour b = {.pause_at = 1, .feed_at = 1, .feed = "X\r\n"};
    tw_string_transport *m = open_with(&b);
    tw_string_transport_feed_str(m, "a\r\nb\r\n");
    ck_assert_str_eq(log_of(m), "L(a)");
    tw_line_receiver_resume_producing(&proto_of(m)->lr);
    ck_assert_str_eq(log_of(m), "L(a)L(b)L(X)");
    tw_string_transport_free(m);
}
END_TEST

START_TEST(test_changing_the_delimiter_in_a_handler_applies_to_the_rest)
{
    behaviour b = {.delim_at = 1, .new_delim = ";"};
    check_every_split(&b, "first\r\nb;c\r\n;", "L(first)L(b)L(c\r\n)");
}
END_TEST

START_TEST(test_nothing_stays_buffered_after_whole_lines)
{
    behaviour b = {0};
    tw_string_transport *m = open_with(&b);
    tproto *t = proto_of(m);
    tw_string_transport_feed_str(m, "a\r\nb");
    ck_assert_uint_eq(tw_line_receiver_buffered(&t->lr), 1);
    tw_string_transport_feed_str(m, "\r\n");
    ck_assert_uint_eq(tw_line_receiver_buffered(&t->lr), 0);
    ck_assert_ptr_null(t->lr.buf); /* an idle receiver holds no memory */
    tw_string_transport_free(m);
}
END_TEST

START_TEST(test_finding_the_delimiter_in_a_long_line_is_linear)
{
    /* 8 MiB in 64-byte chunks: a scan from the start of the line at every
     * chunk would read ~2^39 bytes and time out; a resumed scan reads 8 MiB. */
    enum { TOTAL = 8 << 20, CHUNK = 64 };
    behaviour b = {.max_length = TOTAL};
    tw_string_transport *m = open_with(&b);
    tproto *t = proto_of(m);
    char chunk[CHUNK];
    memset(chunk, 'q', sizeof chunk);
    chunk[CHUNK - 1] = '\r'; /* a delimiter prefix in every chunk */
    long long t0 = tu_now_ms();
    for (size_t at = 0; at < TOTAL; at += CHUNK)
        tw_string_transport_feed(m, chunk, CHUNK);
    tw_string_transport_feed_str(m, "\r\n");
    ck_assert_int_eq(t->lines, 1);
    ck_assert_uint_eq(t->log_len, (size_t)TOTAL + 3);
    ck_assert_uint_eq(tw_line_receiver_buffered(&t->lr), 0);
    ck_assert_int_lt(tu_now_ms() - t0, 20000);
    tw_string_transport_free(m);
}
END_TEST

START_TEST(test_many_lines_in_one_chunk_are_all_delivered_in_order)
{
    behaviour b = {.echo = 1};
    tw_string_transport *m = open_with(&b);
    enum { N = 10000 };
    char *in = malloc(N * 8);
    size_t len = 0;
    for (int i = 0; i < N; i++)
        len += (size_t)sprintf(in + len, "%05d\r\n", i);
    tw_string_transport_feed(m, in, len);
    ck_assert_int_eq(proto_of(m)->lines, N);
    size_t out_len;
    const char *out = tw_string_transport_output(m, &out_len);
    ck_assert_uint_eq(out_len, len);
    ck_assert_int_eq(memcmp(out, in, len), 0);
    free(in);
    tw_string_transport_free(m);
}
END_TEST

static Suite *line_suite(void)
{
    Suite *s = suite_create("line");
    TCase *tc = tcase_create("receiver");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_lines_are_split_on_crlf_by_default);
    tcase_add_test(tc, test_every_split_point_gives_the_same_lines);
    tcase_add_test(tc, test_a_bare_lf_is_not_a_crlf_delimiter);
    tcase_add_test(tc, test_lf_delimiter_splits_on_newlines_at_every_split_point);
    tcase_add_test(tc, test_multibyte_delimiter_with_partial_matches_at_every_split_point);
    tcase_add_test(tc, test_delimiter_must_be_one_to_sixteen_bytes);
    tcase_add_test(tc, test_line_of_exactly_max_length_is_accepted_at_every_split_point);
    tcase_add_test(tc, test_partial_line_with_a_delimiter_prefix_waits_at_max_length);
    tcase_add_test(tc, test_without_delimiter_the_line_is_too_long_at_max_plus_delimiter_bytes);
    tcase_add_test(tc, test_too_long_line_closes_the_connection_by_default);
    tcase_add_test(tc, test_too_long_line_with_delimiter_gets_the_line_and_the_rest_of_the_buffer);
    tcase_add_test(tc, test_one_over_max_length_is_refused_at_every_split_point);
    tcase_add_test(tc, test_overridden_line_length_exceeded_keeps_the_connection);
    tcase_add_test(tc, test_max_length_can_be_changed);
    tcase_add_test(tc, test_send_line_writes_the_line_then_the_delimiter);
    tcase_add_test(tc, test_send_line_without_a_transport_is_refused);
    tcase_add_test(tc, test_raw_mode_gets_the_rest_of_the_buffer_and_later_chunks);
    tcase_add_test(tc, test_set_line_mode_parses_extra_at_every_split_point);
    tcase_add_test(tc, test_set_line_mode_outside_a_callback_delivers_at_once);
    tcase_add_test(tc, test_closing_from_a_handler_stops_the_buffered_lines);
    tcase_add_test(tc, test_aborting_from_a_handler_stops_the_buffered_lines);
    tcase_add_test(tc, test_pausing_from_a_handler_stops_delivery_until_resumed);
    tcase_add_test(tc, test_pause_and_resume_inside_a_handler_keeps_going);
    tcase_add_test(tc, test_paused_raw_data_waits_for_resume);
    tcase_add_test(tc, test_write_buffer_high_watermark_pauses_the_lines);
    tcase_add_test(tc, test_data_fed_from_a_handler_is_queued_behind_the_buffer);
    tcase_add_test(tc, test_data_fed_by_a_handler_that_paused_keeps_stream_order);
    tcase_add_test(tc, test_changing_the_delimiter_in_a_handler_applies_to_the_rest);
    tcase_add_test(tc, test_nothing_stays_buffered_after_whole_lines);
    tcase_add_test(tc, test_finding_the_delimiter_in_a_long_line_is_linear);
    tcase_add_test(tc, test_many_lines_in_one_chunk_are_all_delivered_in_order);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(line_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
