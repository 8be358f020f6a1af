/* SPDX-License-Identifier: MIT */
/*
 * AMP's wire format and argument types, without a connection: golden bytes
 * taken from Twisted, the incremental parser fed at every split point, its
 * bounds, and each type's encoding and decoding against Python's rules.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__SANITIZE_ADDRESS__)
/* libasan's own count; its header is not installed everywhere. */
size_t __sanitizer_get_current_allocated_bytes(void);
#elif defined(__GLIBC__)
#include <malloc.h>
#endif
#include <twine.h>

#include "ampbytes.h"

/* amp.ListOf(amp.Integer()).toString([1, 22, 333]) */
static const unsigned char LIST_OF_INTEGERS[] = {0x00, 0x01, '1', 0x00, 0x02, '2', '2',
                                                 0x00, 0x03, '3', '3', '3'};

/* amp.ListOf(amp.ListOf(amp.String())).toString([[b'a'], [], [b'bc', b'']]) */
static const unsigned char LIST_OF_LISTS[] = {0x00, 0x03, 0x00, 0x01, 'a', 0x00, 0x00,
                                              0x00, 0x06, 0x00, 0x02, 'b', 'c', 0x00, 0x00};

static const tw_amp_arg SUM_ARGS[] = {
    {"a", TW_AMP_T_INTEGER, 0},
    {"b", TW_AMP_T_INTEGER, 0},
    {NULL, NULL, 0},
};

/* ------------------------------------------------------------ helpers */

typedef struct {
    tw_amp_box *boxes[16];
    size_t n;
} collected;

static int collect(tw_amp_box *box, void *arg)
{
    collected *c = arg;
    ck_assert_uint_lt(c->n, 16);
    c->boxes[c->n++] = box;
    return 0;
}

static void collected_free(collected *c)
{
    for (size_t i = 0; i < c->n; i++)
        tw_amp_box_free(c->boxes[i]);
    c->n = 0;
}

static void assert_value(const tw_amp_box *b, const char *key, const char *want)
{
    size_t len;
    const char *v = tw_amp_box_get(b, key, &len);
    ck_assert_msg(v != NULL, "key %s is missing", key);
    ck_assert_uint_eq(len, strlen(want));
    ck_assert(memcmp(v, want, len) == 0);
}

static void assert_sum_request(const tw_amp_box *b)
{
    ck_assert_uint_eq(tw_amp_box_count(b), 4);
    assert_value(b, "_ask", "1");
    assert_value(b, "_command", "Sum");
    assert_value(b, "a", "13");
    assert_value(b, "b", "81");
}

/* Encode @p b and compare with @p want. */
static void assert_encodes_to(const tw_amp_box *b, const unsigned char *want, size_t len)
{
    unsigned char buf[256];
    size_t n = tw_amp_box_encode(b, buf, sizeof buf);
    ck_assert_uint_eq(n, len);
    ck_assert_uint_eq(tw_amp_box_encoded_size(b), len);
    ck_assert(memcmp(buf, want, len) == 0);
}

static const char *repr(double x)
{
    static char buf[40];
    size_t n = tw_amp_float_repr(x, buf, sizeof buf);
    ck_assert_uint_lt(n, sizeof buf);
    return buf;
}

/* ------------------------------------------------------------ encoding */

START_TEST(test_sum_request_encodes_to_twisteds_bytes_whatever_the_insertion_order)
{
    tw_amp_box *b = tw_amp_box_new();
    ck_assert_int_eq(tw_amp_box_set_str(b, "b", "81"), 0);
    ck_assert_int_eq(tw_amp_box_set_str(b, "_command", "Sum"), 0);
    ck_assert_int_eq(tw_amp_box_set_str(b, "a", "13"), 0);
    ck_assert_int_eq(tw_amp_box_set_str(b, "_ask", "1"), 0);
    assert_encodes_to(b, SUM_REQUEST, sizeof SUM_REQUEST);
    tw_amp_box_free(b);
}
END_TEST

START_TEST(test_sum_answer_encodes_to_twisteds_bytes)
{
    tw_amp_box *b = tw_amp_box_new();
    ck_assert_int_eq(tw_amp_box_set_str(b, "total", "94"), 0);
    ck_assert_int_eq(tw_amp_box_set_str(b, "_answer", "1"), 0);
    assert_encodes_to(b, SUM_ANSWER, sizeof SUM_ANSWER);
    tw_amp_box_free(b);
}
END_TEST

START_TEST(test_typed_sum_arguments_encode_to_the_golden_values)
{
    tw_amp_values *v = tw_amp_values_new();
    tw_amp_values_set_integer(v, "a", 13);
    tw_amp_values_set_integer(v, "b", 81);
    tw_amp_box *b = tw_amp_box_new();
    ck_assert_int_eq(tw_amp_values_to_box(SUM_ARGS, v, b, 1, NULL, 0), 0);
    tw_amp_box_set_str(b, "_command", "Sum");
    tw_amp_box_set_str(b, "_ask", "1");
    assert_encodes_to(b, SUM_REQUEST, sizeof SUM_REQUEST);
    tw_amp_box_free(b);
    tw_amp_values_free(v);
}
END_TEST

START_TEST(test_keys_sort_bytewise_as_python_sorts_bytes)
{
    /* sorted([b'aa', b'a', b'_', b'B', b'\xff', b'Z']) ==
     *     [b'B', b'Z', b'_', b'a', b'aa', b'\xff'] */
    tw_amp_box *b = tw_amp_box_new();
    const char *keys[] = {"aa", "a", "_", "B", "\xff", "Z"};
    for (size_t i = 0; i < 6; i++)
        ck_assert_int_eq(tw_amp_box_set_str(b, keys[i], ""), 0);
    const char *want[] = {"B", "Z", "_", "a", "aa", "\xff"};
    for (size_t i = 0; i < 6; i++) {
        const char *k;
        ck_assert_int_eq(tw_amp_box_entry(b, i, &k, NULL, NULL, NULL), 0);
        ck_assert_str_eq(k, want[i]);
    }
    ck_assert_int_eq(tw_amp_box_entry(b, 6, NULL, NULL, NULL, NULL), -ENOENT);
    tw_amp_box_free(b);
}
END_TEST

START_TEST(test_setting_a_key_again_replaces_its_value)
{
    tw_amp_box *b = tw_amp_box_new();
    tw_amp_box_set_str(b, "k", "first");
    tw_amp_box_set_str(b, "k", "2nd");
    ck_assert_uint_eq(tw_amp_box_count(b), 1);
    assert_value(b, "k", "2nd");
    ck_assert_uint_eq(tw_amp_box_encoded_size(b), 2 + 1 + 2 + 3 + 2);
    ck_assert_int_eq(tw_amp_box_remove(b, "k"), 0);
    ck_assert_int_eq(tw_amp_box_remove(b, "k"), -ENOENT);
    ck_assert_uint_eq(tw_amp_box_encoded_size(b), 2);
    tw_amp_box_free(b);
}
END_TEST

START_TEST(test_box_refuses_keys_outside_1_to_255_bytes_and_values_over_65535)
{
    tw_amp_box *b = tw_amp_box_new();
    char *big = calloc(1, 65536);
    memset(big, 'k', 256);
    ck_assert_int_eq(tw_amp_box_set(b, big, 0, "v", 1), -EINVAL);
    ck_assert_int_eq(tw_amp_box_set(b, big, 256, "v", 1), -EINVAL);
    ck_assert_int_eq(tw_amp_box_set(b, big, 255, "v", 1), 0);
    ck_assert_int_eq(tw_amp_box_set(b, "v", 1, big, 65536), TW_ETOOBIG);
    ck_assert_int_eq(tw_amp_box_set(b, "v", 1, big, 65535), 0);
    ck_assert_uint_eq(tw_amp_box_count(b), 2);
    free(big);
    tw_amp_box_free(b);
}
END_TEST

START_TEST(test_encode_reports_the_size_needed_when_the_buffer_is_short)
{
    tw_amp_box *b = tw_amp_box_new();
    tw_amp_box_set_str(b, "total", "94");
    tw_amp_box_set_str(b, "_answer", "1");
    unsigned char small[4] = {0xee, 0xee, 0xee, 0xee};
    ck_assert_uint_eq(tw_amp_box_encode(b, small, sizeof small), sizeof SUM_ANSWER);
    ck_assert_uint_eq(small[0], 0xee); /* nothing written */
    tw_amp_box_free(b);
}
END_TEST

/* ------------------------------------------------------------ parser */

START_TEST(test_golden_request_decodes_to_its_typed_arguments)
{
    tw_amp_parser *p = tw_amp_parser_new(0);
    collected c = {0};
    ck_assert_int_eq(tw_amp_parser_feed(p, SUM_REQUEST, sizeof SUM_REQUEST, collect, &c, NULL),
                     0);
    ck_assert_uint_eq(c.n, 1);
    assert_sum_request(c.boxes[0]);
    char err[128];
    tw_amp_values *v = tw_amp_values_from_box(SUM_ARGS, c.boxes[0], err, sizeof err);
    ck_assert_msg(v != NULL, "%s", err);
    int64_t a, b;
    ck_assert_int_eq(tw_amp_values_get_integer(v, "a", &a), 0);
    ck_assert_int_eq(tw_amp_values_get_integer(v, "b", &b), 0);
    ck_assert_int_eq(a, 13);
    ck_assert_int_eq(b, 81);
    ck_assert_uint_eq(tw_amp_values_count(v), 2);
    tw_amp_values_free(v);
    collected_free(&c);
    tw_amp_parser_free(p);
}
END_TEST

START_TEST(test_parser_gives_the_same_boxes_at_every_split_point)
{
    /* Two requests and an answer back to back, split in two at every byte. */
    unsigned char stream[sizeof SUM_REQUEST * 2 + sizeof SUM_ANSWER];
    memcpy(stream, SUM_REQUEST, sizeof SUM_REQUEST);
    memcpy(stream + sizeof SUM_REQUEST, SUM_ANSWER, sizeof SUM_ANSWER);
    memcpy(stream + sizeof SUM_REQUEST + sizeof SUM_ANSWER, SUM_REQUEST, sizeof SUM_REQUEST);
    for (size_t split = 0; split <= sizeof stream; split++) {
        tw_amp_parser *p = tw_amp_parser_new(0);
        collected c = {0};
        ck_assert_int_eq(tw_amp_parser_feed(p, stream, split, collect, &c, NULL), 0);
        ck_assert_int_eq(
            tw_amp_parser_feed(p, stream + split, sizeof stream - split, collect, &c, NULL), 0);
        ck_assert_msg(c.n == 3, "split at %zu gave %zu boxes", split, c.n);
        assert_sum_request(c.boxes[0]);
        assert_value(c.boxes[1], "total", "94");
        assert_value(c.boxes[1], "_answer", "1");
        assert_sum_request(c.boxes[2]);
        ck_assert_uint_eq(tw_amp_parser_buffered(p), 0);
        collected_free(&c);
        tw_amp_parser_free(p);
    }
}
END_TEST

START_TEST(test_parser_gives_the_same_boxes_one_byte_at_a_time)
{
    tw_amp_parser *p = tw_amp_parser_new(0);
    collected c = {0};
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < sizeof SUM_REQUEST; i++) {
            ck_assert_uint_eq(c.n, (size_t)round);
            ck_assert_int_eq(tw_amp_parser_feed(p, SUM_REQUEST + i, 1, collect, &c, NULL), 0);
        }
    }
    ck_assert_uint_eq(c.n, 2);
    assert_sum_request(c.boxes[0]);
    assert_sum_request(c.boxes[1]);
    collected_free(&c);
    tw_amp_parser_free(p);
}
END_TEST

START_TEST(test_parser_accepts_keys_in_any_order_and_a_repeated_key_keeps_the_last)
{
    static const unsigned char unsorted[] = {
        0x00, 0x01, 'b', 0x00, 0x01, '1',
        0x00, 0x01, 'a', 0x00, 0x01, '2',
        0x00, 0x01, 'b', 0x00, 0x01, '3',
        0x00, 0x00,
    };
    tw_amp_parser *p = tw_amp_parser_new(0);
    collected c = {0};
    ck_assert_int_eq(tw_amp_parser_feed(p, unsorted, sizeof unsorted, collect, &c, NULL), 0);
    ck_assert_uint_eq(c.n, 1);
    ck_assert_uint_eq(tw_amp_box_count(c.boxes[0]), 2);
    assert_value(c.boxes[0], "a", "2");
    assert_value(c.boxes[0], "b", "3");
    collected_free(&c);
    tw_amp_parser_free(p);
}
END_TEST

START_TEST(test_parser_accepts_a_key_of_255_bytes)
{
    unsigned char buf[2 + 255 + 2 + 2];
    buf[0] = 0x00;
    buf[1] = 0xff;
    memset(buf + 2, 'k', 255);
    memset(buf + 257, 0, 4); /* empty value, end of box */
    tw_amp_parser *p = tw_amp_parser_new(0);
    collected c = {0};
    ck_assert_int_eq(tw_amp_parser_feed(p, buf, sizeof buf, collect, &c, NULL), 0);
    ck_assert_uint_eq(c.n, 1);
    size_t kl;
    ck_assert_int_eq(tw_amp_box_entry(c.boxes[0], 0, NULL, &kl, NULL, NULL), 0);
    ck_assert_uint_eq(kl, 255);
    collected_free(&c);
    tw_amp_parser_free(p);
}
END_TEST

START_TEST(test_parser_rejects_a_key_of_256_bytes_as_soon_as_its_length_arrives)
{
    static const unsigned char start[] = {0x00, 0x01, 'a', 0x00, 0x01, '1', 0x01, 0x00};
    tw_amp_parser *p = tw_amp_parser_new(0);
    collected c = {0};
    size_t used;
    ck_assert_int_eq(tw_amp_parser_feed(p, start, sizeof start, collect, &c, &used), TW_EPROTO);
    ck_assert_uint_eq(used, sizeof start);
    ck_assert_uint_eq(c.n, 0);
    ck_assert_ptr_nonnull(strstr(tw_amp_parser_error(p), "256"));
    ck_assert_uint_eq(tw_amp_parser_buffered(p), 0);
    /* Broken for good: later bytes are refused the same way. */
    ck_assert_int_eq(tw_amp_parser_feed(p, SUM_REQUEST, sizeof SUM_REQUEST, collect, &c, &used),
                     TW_EPROTO);
    ck_assert_uint_eq(used, 0);
    ck_assert_uint_eq(c.n, 0);
    tw_amp_parser_free(p);
}
END_TEST

START_TEST(test_parser_delivers_a_value_of_65535_bytes_and_an_empty_one)
{
    size_t len = 2 + 1 + 2 + 65535 + 2 + 1 + 2 + 2;
    unsigned char *buf = malloc(len);
    unsigned char *at = buf;
    *at++ = 0;
    *at++ = 1;
    *at++ = 'v';
    *at++ = 0xff;
    *at++ = 0xff;
    memset(at, 'x', 65535);
    at += 65535;
    *at++ = 0;
    *at++ = 1;
    *at++ = 'e';
    *at++ = 0;
    *at++ = 0;
    *at++ = 0;
    *at++ = 0;
    tw_amp_parser *p = tw_amp_parser_new(0);
    collected c = {0};
    ck_assert_int_eq(tw_amp_parser_feed(p, buf, len, collect, &c, NULL), 0);
    ck_assert_uint_eq(c.n, 1);
    size_t vl;
    const char *v = tw_amp_box_get(c.boxes[0], "v", &vl);
    ck_assert_uint_eq(vl, 65535);
    ck_assert_int_eq(v[0], 'x');
    ck_assert_int_eq(v[65534], 'x');
    ck_assert_int_eq(v[65535], '\0');
    ck_assert_ptr_nonnull(tw_amp_box_get(c.boxes[0], "e", &vl));
    ck_assert_uint_eq(vl, 0);
    collected_free(&c);
    tw_amp_parser_free(p);
    free(buf);
}
END_TEST

START_TEST(test_parser_refuses_a_value_past_the_box_limit_before_allocating_it)
{
    /* A 64-byte limit; the value announces 65535 bytes and sends none. */
    static const unsigned char start[] = {0x00, 0x01, 'v', 0xff, 0xff};
    tw_amp_parser *p = tw_amp_parser_new(64);
    collected c = {0};
    ck_assert_int_eq(tw_amp_parser_feed(p, start, sizeof start, collect, &c, NULL), TW_ETOOBIG);
    ck_assert_uint_eq(tw_amp_parser_buffered(p), 0);
    ck_assert_ptr_nonnull(strstr(tw_amp_parser_error(p), "64"));
    tw_amp_parser_free(p);
}
END_TEST

START_TEST(test_parser_counts_every_key_of_a_box_against_its_limit)
{
    /* Many small pairs, none of them large: the box as a whole is. */
    tw_amp_parser *p = tw_amp_parser_new(1000);
    collected c = {0};
    unsigned char pair[] = {0x00, 0x02, 'k', 0, 0x00, 0x04, 'v', 'v', 'v', 'v'};
    int rc = 0;
    for (int i = 0; i < 200 && rc == 0; i++) {
        pair[3] = (unsigned char)i;
        rc = tw_amp_parser_feed(p, pair, sizeof pair, collect, &c, NULL);
    }
    ck_assert_int_eq(rc, TW_ETOOBIG);
    ck_assert_uint_eq(c.n, 0);
    ck_assert_uint_eq(tw_amp_parser_buffered(p), 0);
    tw_amp_parser_free(p);
}
END_TEST

/* A box of @p nkeys distinct 5-byte keys, each with a value of @p vlen
 * bytes, in the given order: 0 ascending, 1 descending, 2 shuffled; with
 * @p repeat, every key twice. @return its bytes (malloc'd), *len its size. */
static unsigned char *many_keys_box(size_t nkeys, size_t vlen, int order, int repeat, size_t *len)
{
    size_t entries = nkeys * (repeat ? 2 : 1);
    size_t size = entries * (2 + 5 + 2 + vlen) + 2;
    unsigned char *buf = malloc(size), *at = buf;
    size_t *idx = malloc(entries * sizeof *idx);
    for (size_t i = 0; i < entries; i++)
        idx[i] = order == 1 ? nkeys - 1 - i % nkeys : i % nkeys;
    unsigned long long seed = 7;
    for (size_t i = entries; order == 2 && i > 1; i--) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t j = (size_t)(seed >> 33) % i, t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
    for (size_t i = 0; i < entries; i++) {
        size_t k = idx[i];
        *at++ = 0;
        *at++ = 5;
        for (int b = 4; b >= 0; b--)
            *at++ = (unsigned char)(k >> (8 * b));
        *at++ = (unsigned char)(vlen >> 8);
        *at++ = (unsigned char)vlen;
        memset(at, (int)(i < nkeys ? 'a' : 'b'), vlen);
        at += vlen;
    }
    *at++ = 0;
    *at++ = 0;
    free(idx);
    *len = (size_t)(at - buf);
    return buf;
}

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Parse @p buf whole; @return the CPU seconds it took, *rc the result. */
static double timed_parse(const unsigned char *buf, size_t len, collected *c, int *rc)
{
    tw_amp_parser *p = tw_amp_parser_new(0);
    double t0 = cpu_seconds();
    *rc = tw_amp_parser_feed(p, buf, len, collect, c, NULL);
    double took = cpu_seconds() - t0;
    tw_amp_parser_free(p);
    return took;
}

START_TEST(test_parser_refuses_a_box_of_more_than_the_most_keys)
{
    size_t len;
    unsigned char *buf = many_keys_box(TW_AMP_MAX_KEYS, 0, 1, 0, &len);
    collected c = {0};
    int rc;
    timed_parse(buf, len, &c, &rc);
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(c.n, 1);
    ck_assert_uint_eq(tw_amp_box_count(c.boxes[0]), TW_AMP_MAX_KEYS);
    collected_free(&c);
    free(buf);

    buf = many_keys_box(TW_AMP_MAX_KEYS + 1, 0, 0, 0, &len);
    memset(&c, 0, sizeof c);
    timed_parse(buf, len, &c, &rc);
    ck_assert_int_eq(rc, TW_ETOOBIG);
    ck_assert_uint_eq(c.n, 0);
    free(buf);
}
END_TEST

/* Inserting each key in place made a 1 MiB box of 116,479 keys in
 * descending order cost 2.3 s of CPU. Every 1 MiB box must now be cheap
 * whatever its key order: the target is 20 ms on the development machine,
 * asserted with a generous margin for sanitizer builds and busy machines. */
START_TEST(test_no_1mib_box_costs_much_cpu_whatever_its_key_order)
{
    static const struct {
        const char *what;
        size_t nkeys, vlen;
        int order, repeat, ok;
    } cases[] = {
        {"116,479 keys, descending", 116479, 0, 1, 0, 0},
        {"116,479 keys, shuffled", 116479, 0, 2, 0, 0},
        {"4,096 keys, descending, 246-byte values", TW_AMP_MAX_KEYS, 246, 1, 0, 1},
        {"4,096 keys, shuffled, 246-byte values", TW_AMP_MAX_KEYS, 246, 2, 0, 1},
        {"2,048 keys twice, shuffled", TW_AMP_MAX_KEYS / 2, 246, 2, 1, 1},
        {"4,096 keys, ascending", TW_AMP_MAX_KEYS, 246, 0, 0, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len;
        unsigned char *buf = many_keys_box(cases[i].nkeys, cases[i].vlen, cases[i].order,
                                           cases[i].repeat, &len);
        ck_assert_uint_le(len, TW_AMP_DEFAULT_MAX_BOX_SIZE);
        ck_assert_uint_gt(len, TW_AMP_DEFAULT_MAX_BOX_SIZE - 4096);
        collected c = {0};
        int rc;
        double took = timed_parse(buf, len, &c, &rc);
        printf("1 MiB AMP box, %s: %.2f ms of CPU\n", cases[i].what, took * 1e3);
        fflush(stdout);
        ck_assert_msg(took < 0.2, "%s took %.1f ms", cases[i].what, took * 1e3);
        ck_assert_int_eq(rc, cases[i].ok ? 0 : TW_ETOOBIG);
        if (cases[i].ok) {
            ck_assert_uint_eq(c.n, 1);
            tw_amp_box *box = c.boxes[0];
            ck_assert_uint_eq(tw_amp_box_count(box), cases[i].nkeys);
            /* Sorted as Twisted sorts, the later of a repeated key kept. */
            unsigned char key[5] = {0, 0, 0, 0, 1};
            size_t vlen;
            const char *v = tw_amp_box_getn(box, key, 5, &vlen);
            ck_assert_ptr_nonnull(v);
            ck_assert_uint_eq(vlen, cases[i].vlen);
            ck_assert_int_eq(cases[i].vlen > 0 ? v[0] : 'a', cases[i].repeat ? 'b' : 'a');
            const char *prev = NULL, *k;
            size_t klen;
            for (size_t e = 0; tw_amp_box_entry(box, e, &k, &klen, NULL, NULL) == 0; e++) {
                ck_assert(prev == NULL || memcmp(prev, k, 5) < 0);
                prev = k;
            }
            size_t unique = cases[i].repeat ? (len - 2) / 2 + 2 : len;
            ck_assert_uint_eq(tw_amp_box_encoded_size(box), unique);
        }
        collected_free(&c);
        free(buf);
    }
}
END_TEST

START_TEST(test_parser_hands_over_an_empty_box_for_the_protocol_to_reject)
{
    static const unsigned char empty[] = {0x00, 0x00};
    tw_amp_parser *p = tw_amp_parser_new(0);
    collected c = {0};
    ck_assert_int_eq(tw_amp_parser_feed(p, empty, sizeof empty, collect, &c, NULL), 0);
    ck_assert_uint_eq(c.n, 1);
    ck_assert_uint_eq(tw_amp_box_count(c.boxes[0]), 0);
    collected_free(&c);
    tw_amp_parser_free(p);
}
END_TEST

static int stop_after_one(tw_amp_box *box, void *arg)
{
    (void)arg;
    tw_amp_box_free(box);
    return 7;
}

START_TEST(test_a_callback_can_stop_the_parse_and_learn_how_much_was_used)
{
    unsigned char stream[sizeof SUM_REQUEST * 2];
    memcpy(stream, SUM_REQUEST, sizeof SUM_REQUEST);
    memcpy(stream + sizeof SUM_REQUEST, SUM_REQUEST, sizeof SUM_REQUEST);
    tw_amp_parser *p = tw_amp_parser_new(0);
    size_t used;
    ck_assert_int_eq(tw_amp_parser_feed(p, stream, sizeof stream, stop_after_one, NULL, &used),
                     7);
    ck_assert_uint_eq(used, sizeof SUM_REQUEST);
    tw_amp_parser_free(p);
}
END_TEST

/* ------------------------------------------------------------ Float */

START_TEST(test_float_repr_matches_python)
{
    /* Each pair is x and repr(x) as Python 3 prints it. */
    ck_assert_str_eq(repr(1.0), "1.0");
    ck_assert_str_eq(repr(0.1), "0.1");
    ck_assert_str_eq(repr(1e100), "1e+100");
    ck_assert_str_eq(repr(1e-5), "1e-05");
    ck_assert_str_eq(repr(1e-4), "0.0001");
    ck_assert_str_eq(repr(1e16), "1e+16");
    ck_assert_str_eq(repr(1e15), "1000000000000000.0");
    ck_assert_str_eq(repr(123456789012345678.0), "1.2345678901234568e+17");
    ck_assert_str_eq(repr(-0.0), "-0.0");
    ck_assert_str_eq(repr(0.0), "0.0");
    ck_assert_str_eq(repr(5e-324), "5e-324");
    ck_assert_str_eq(repr(1.7976931348623157e308), "1.7976931348623157e+308");
    ck_assert_str_eq(repr(0.1 + 0.2), "0.30000000000000004");
    ck_assert_str_eq(repr(2.5), "2.5");
    ck_assert_str_eq(repr(-100.0), "-100.0");
    ck_assert_str_eq(repr(1.0 / 3), "0.3333333333333333");
    ck_assert_str_eq(repr(9007199254740992.0), "9007199254740992.0");
    ck_assert_str_eq(repr(1e22), "1e+22");
    ck_assert_str_eq(repr(1e23), "1e+23");
    ck_assert_str_eq(repr(INFINITY), "inf");
    ck_assert_str_eq(repr(-INFINITY), "-inf");
    ck_assert_str_eq(repr(NAN), "nan");
    ck_assert_str_eq(repr(-NAN), "nan");
}
END_TEST

START_TEST(test_float_repr_reads_back_to_the_same_double)
{
    /* A sweep over many magnitudes, powers of two (where the gap below a
     * double is half the gap above) included. */
    unsigned long long seed = 12345;
    for (int i = 0; i < 20000; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        double x;
        if (i % 2 == 0) {
            memcpy(&x, &seed, sizeof x);
            if (!isfinite(x))
                continue;
        } else {
            x = ldexp(1.0, (int)(seed >> 33) % 2098 - 1074);
        }
        char buf[40];
        tw_amp_float_repr(x, buf, sizeof buf);
        double y;
        ck_assert_int_eq(tw_amp_float_parse(buf, strlen(buf), &y), 0);
        ck_assert_msg(memcmp(&x, &y, sizeof x) == 0, "%s does not read back", buf);
    }
}
END_TEST

static double parsed(const char *s)
{
    double x;
    ck_assert_msg(tw_amp_float_parse(s, strlen(s), &x) == 0, "'%s' was refused", s);
    return x;
}

START_TEST(test_float_decoding_accepts_what_python_float_accepts)
{
    ck_assert(parsed("1.5") == 1.5);
    ck_assert(parsed(" 1.5\n") == 1.5);
    ck_assert(parsed(".5") == 0.5);
    ck_assert(parsed("5.") == 5.0);
    ck_assert(parsed("1_0.2_5") == 10.25);
    ck_assert(parsed("1E+05") == 1e5);
    ck_assert(parsed("1e1_0") == 1e10);
    ck_assert(parsed("1e500") == INFINITY);
    ck_assert(parsed("-1e-500") == 0 && signbit(parsed("-1e-500")));
    ck_assert(parsed("inf") == INFINITY);
    ck_assert(parsed("-Infinity") == -INFINITY);
    ck_assert(parsed("+iNf") == INFINITY);
    ck_assert(isnan(parsed("nan")));
    ck_assert(isnan(parsed("-NaN")));
    ck_assert(parsed("0.1") == 0.1);
    ck_assert(parsed("2.2250738585072014e-308") == 2.2250738585072014e-308);
}
END_TEST

START_TEST(test_float_decoding_refuses_what_python_float_refuses)
{
    const char *bad[] = {"", " ", ".", "e5", "1e", "1e+", "0x10", "1_e5", "1e_5", "1__0",
                         "_1", "1_", "1.5_", "infinit", "infinityy", "nan(1)", "1 2", "--1",
                         "\x1c" "1.0", "1.0\0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t len = strlen(bad[i]) + (i == sizeof bad / sizeof bad[0] - 1 ? 1 : 0);
        ck_assert_msg(tw_amp_float_parse(bad[i], len, NULL) == -EINVAL, "'%s' was accepted",
                      bad[i]);
    }
}
END_TEST

/* ------------------------------------------------------------ Integer */

static int64_t parsed_int(const char *s)
{
    int64_t v;
    ck_assert_msg(tw_amp_integer_parse(s, strlen(s), &v) == 0, "'%s' was refused", s);
    return v;
}

START_TEST(test_integer_decoding_accepts_what_python_int_accepts)
{
    ck_assert_int_eq(parsed_int("13"), 13);
    ck_assert_int_eq(parsed_int(" 12 "), 12);
    ck_assert_int_eq(parsed_int("\t\v12\f\r\n"), 12);
    ck_assert_int_eq(parsed_int("1_000"), 1000);
    ck_assert_int_eq(parsed_int("+5"), 5);
    ck_assert_int_eq(parsed_int("-0"), 0);
    ck_assert_int_eq(parsed_int("007"), 7);
    ck_assert_int_eq(parsed_int("9223372036854775807"), INT64_MAX);
    ck_assert_int_eq(parsed_int("-9223372036854775808"), INT64_MIN);
}
END_TEST

START_TEST(test_integer_decoding_refuses_bad_text_and_values_outside_64_bits)
{
    const char *bad[] = {"", " ", "notanumber", "1__2", "_1", "1_", "0x10", "1 2", "+",
                         "- 1", "1.0", "\x1c" "1", "١"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(tw_amp_integer_parse(bad[i], strlen(bad[i]), NULL) == -EINVAL,
                      "'%s' was accepted", bad[i]);
    ck_assert_int_eq(tw_amp_integer_parse("9223372036854775808", 19, NULL), -ERANGE);
    ck_assert_int_eq(tw_amp_integer_parse("-9223372036854775809", 20, NULL), -ERANGE);
    /* Bad text is bad text, however long. */
    ck_assert_int_eq(tw_amp_integer_parse("99999999999999999999x", 21, NULL), -EINVAL);
}
END_TEST

/* ------------------------------------------------------------ typed values */

static const tw_amp_arg ALL_TYPES[] = {
    {"i", TW_AMP_T_INTEGER, 0},
    {"s", TW_AMP_T_STRING, 0},
    {"u", TW_AMP_T_UNICODE, 0},
    {"b", TW_AMP_T_BOOLEAN, 0},
    {"f", TW_AMP_T_FLOAT, 0},
    {"l", TW_AMP_LIST_OF(TW_AMP_T_INTEGER), 0},
    {"ll", TW_AMP_LIST_OF(TW_AMP_LIST_OF(TW_AMP_T_STRING)), 0},
    {"o", TW_AMP_T_UNICODE, 1},
    {NULL, NULL, 0},
};

static tw_amp_values *all_types_values(void)
{
    tw_amp_values *v = tw_amp_values_new();
    tw_amp_values_set_integer(v, "i", -42);
    tw_amp_values_set_string(v, "s", "a\0b", 3);
    tw_amp_values_set_unicode(v, "u", "h\xc3\xa9llo \xe2\x98\xba");
    tw_amp_values_set_boolean(v, "b", 1);
    tw_amp_values_set_float(v, "f", 0.1);
    tw_amp_value ints[] = {{.kind = TW_AMP_INTEGER, .u.integer = 1},
                           {.kind = TW_AMP_INTEGER, .u.integer = 22},
                           {.kind = TW_AMP_INTEGER, .u.integer = 333}};
    tw_amp_value l = {.kind = TW_AMP_LIST, .u.list = {ints, 3}};
    ck_assert_int_eq(tw_amp_values_set(v, "l", &l), 0);
    tw_amp_value s1[] = {{.kind = TW_AMP_STRING, .u.bytes = {"a", 1}}};
    tw_amp_value s3[] = {{.kind = TW_AMP_STRING, .u.bytes = {"bc", 2}},
                         {.kind = TW_AMP_STRING, .u.bytes = {"", 0}}};
    tw_amp_value inner[] = {{.kind = TW_AMP_LIST, .u.list = {s1, 1}},
                            {.kind = TW_AMP_LIST, .u.list = {NULL, 0}},
                            {.kind = TW_AMP_LIST, .u.list = {s3, 2}}};
    tw_amp_value ll = {.kind = TW_AMP_LIST, .u.list = {inner, 3}};
    ck_assert_int_eq(tw_amp_values_set(v, "ll", &ll), 0);
    return v;
}

START_TEST(test_every_type_encodes_as_twisted_encodes_it)
{
    tw_amp_values *v = all_types_values();
    tw_amp_box *b = tw_amp_box_new();
    char err[128] = "";
    ck_assert_msg(tw_amp_values_to_box(ALL_TYPES, v, b, 1, err, sizeof err) == 0, "%s", err);
    size_t len;
    ck_assert(memcmp(tw_amp_box_get(b, "i", &len), "-42", 3) == 0 && len == 3);
    ck_assert(memcmp(tw_amp_box_get(b, "s", &len), "a\0b", 3) == 0 && len == 3);
    assert_value(b, "u", "h\xc3\xa9llo \xe2\x98\xba");
    assert_value(b, "b", "True");
    assert_value(b, "f", "0.1");
    const char *l = tw_amp_box_get(b, "l", &len);
    ck_assert_uint_eq(len, sizeof LIST_OF_INTEGERS);
    ck_assert(memcmp(l, LIST_OF_INTEGERS, len) == 0);
    const char *ll = tw_amp_box_get(b, "ll", &len);
    ck_assert_uint_eq(len, sizeof LIST_OF_LISTS);
    ck_assert(memcmp(ll, LIST_OF_LISTS, len) == 0);
    /* The optional argument had no value, so it is not in the box. */
    ck_assert_ptr_null(tw_amp_box_get(b, "o", NULL));
    ck_assert_uint_eq(tw_amp_box_count(b), 7);
    tw_amp_box_free(b);
    tw_amp_values_free(v);
}
END_TEST

START_TEST(test_every_type_decodes_back_to_the_same_values)
{
    tw_amp_values *v = all_types_values();
    tw_amp_values_set_unicode(v, "o", "present");
    tw_amp_box *b = tw_amp_box_new();
    ck_assert_int_eq(tw_amp_values_to_box(ALL_TYPES, v, b, 1, NULL, 0), 0);
    char err[128];
    tw_amp_values *back = tw_amp_values_from_box(ALL_TYPES, b, err, sizeof err);
    ck_assert_msg(back != NULL, "%s", err);
    int64_t i;
    tw_amp_values_get_integer(back, "i", &i);
    ck_assert_int_eq(i, -42);
    const char *s;
    size_t len;
    ck_assert_int_eq(tw_amp_values_get_string(back, "s", &s, &len), 0);
    ck_assert(len == 3 && memcmp(s, "a\0b", 3) == 0);
    ck_assert_int_eq(tw_amp_values_get_string(back, "u", &s, &len), 0);
    ck_assert_str_eq(s, "h\xc3\xa9llo \xe2\x98\xba");
    ck_assert_int_eq(tw_amp_values_get(back, "u")->kind, TW_AMP_UNICODE);
    int flag;
    tw_amp_values_get_boolean(back, "b", &flag);
    ck_assert_int_eq(flag, 1);
    double f;
    tw_amp_values_get_float(back, "f", &f);
    ck_assert(f == 0.1);
    const tw_amp_value *l = tw_amp_values_get(back, "l");
    ck_assert_int_eq(l->kind, TW_AMP_LIST);
    ck_assert_uint_eq(l->u.list.count, 3);
    ck_assert_int_eq(l->u.list.items[2].u.integer, 333);
    const tw_amp_value *ll = tw_amp_values_get(back, "ll");
    ck_assert_uint_eq(ll->u.list.count, 3);
    ck_assert_uint_eq(ll->u.list.items[1].u.list.count, 0);
    ck_assert_uint_eq(ll->u.list.items[2].u.list.count, 2);
    ck_assert_str_eq(ll->u.list.items[2].u.list.items[0].u.bytes.data, "bc");
    ck_assert_int_eq(tw_amp_values_get_string(back, "o", &s, NULL), 0);
    ck_assert_str_eq(s, "present");
    tw_amp_values_free(back);
    tw_amp_box_free(b);
    tw_amp_values_free(v);
}
END_TEST

START_TEST(test_list_decoding_ignores_a_truncated_last_element_as_twisted_does)
{
    /* amp.ListOf(amp.Integer()).fromString(b'\x00\x011\x00\x05ab') == [1] */
    static const tw_amp_type list_of_integers = {TW_AMP_LIST, TW_AMP_T_INTEGER};
    static const tw_amp_arg spec[] = {{"l", &list_of_integers, 0}, {NULL, NULL, 0}};
    tw_amp_box *b = tw_amp_box_new();
    tw_amp_box_set(b, "l", 1, "\x00\x01" "1\x00\x05" "ab", 7);
    tw_amp_values *v = tw_amp_values_from_box(spec, b, NULL, 0);
    ck_assert_ptr_nonnull(v);
    const tw_amp_value *l = tw_amp_values_get(v, "l");
    ck_assert_uint_eq(l->u.list.count, 1);
    ck_assert_int_eq(l->u.list.items[0].u.integer, 1);
    tw_amp_values_free(v);
    tw_amp_box_free(b);
}
END_TEST

/* Heap bytes in use now, or 0 where the C library cannot tell. */
static size_t heap_in_use(void)
{
#if defined(__SANITIZE_ADDRESS__)
    return __sanitizer_get_current_allocated_bytes();
#elif defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd; /* small chunks and mmapped ones */
#else
    return 0;
#endif
}

/* A 65,534-byte ListOf(String) of 32,767 empty strings took 1.8 MB of heap
 * to decode (28 times its size, a malloc per element): bounded now by one
 * tw_amp_value and the bytes per element. */
START_TEST(test_list_of_strings_decodes_within_a_bounded_expansion)
{
    static const tw_amp_type list_of_strings = {TW_AMP_LIST, TW_AMP_T_STRING};
    static const tw_amp_type list_of_unicode = {TW_AMP_LIST, TW_AMP_T_UNICODE};
    const tw_amp_type *types[] = {&list_of_strings, &list_of_unicode};
    size_t len = 65534;
    char *raw = calloc(1, len);
    for (size_t t = 0; t < 2; t++) {
        tw_amp_arg spec[] = {{"l", types[t], 0}, {NULL, NULL, 0}};
        tw_amp_box *b = tw_amp_box_new();
        ck_assert_int_eq(tw_amp_box_set(b, "l", 1, raw, len), 0);
        size_t before = heap_in_use();
        tw_amp_values *v = tw_amp_values_from_box(spec, b, NULL, 0);
        size_t used = heap_in_use() - before;
        ck_assert_ptr_nonnull(v);
        const tw_amp_value *l = tw_amp_values_get(v, "l");
        ck_assert_uint_eq(l->u.list.count, len / 2);
        ck_assert_uint_eq(l->u.list.items[len / 2 - 1].u.bytes.len, 0);
        ck_assert_str_eq(l->u.list.items[7].u.bytes.data, "");
        printf("ListOf %s, 32,767 empty elements: %zu bytes of heap (%.1fx)\n",
               t == 0 ? "String" : "Unicode", used, (double)used / (double)len);
        fflush(stdout);
        if (before != 0)
            ck_assert_uint_le(used, 14 * len);
        /* A copy of it is packed too, and frees the same way. */
        tw_amp_values *copy = tw_amp_values_new();
        ck_assert_int_eq(tw_amp_values_set(copy, "l", l), 0);
        ck_assert_uint_eq(tw_amp_values_get(copy, "l")->u.list.count, len / 2);
        tw_amp_values_free(copy);
        tw_amp_values_free(v);
        tw_amp_box_free(b);
    }
    /* Elements of every length, the last one truncated and ignored. */
    tw_amp_arg spec[] = {{"l", &list_of_unicode, 0}, {NULL, NULL, 0}};
    tw_amp_box *b = tw_amp_box_new();
    tw_amp_box_set(b, "l", 1, "\x00\x02h\xc3\x00\x00\x00\x03" "abc\x00\x05" "ab", 15);
    ck_assert_ptr_null(tw_amp_values_from_box(spec, b, NULL, 0)); /* "h\xc3" is not UTF-8 */
    tw_amp_box_set(b, "l", 1, "\x00\x03h\xc3\xa9\x00\x00\x00\x03" "abc\x00\x05" "ab", 16);
    tw_amp_values *v = tw_amp_values_from_box(spec, b, NULL, 0);
    ck_assert_ptr_nonnull(v);
    const tw_amp_value *l = tw_amp_values_get(v, "l");
    ck_assert_uint_eq(l->u.list.count, 3);
    ck_assert_str_eq(l->u.list.items[0].u.bytes.data, "h\xc3\xa9");
    ck_assert_uint_eq(l->u.list.items[1].u.bytes.len, 0);
    ck_assert_str_eq(l->u.list.items[2].u.bytes.data, "abc");
    tw_amp_values_free(v);
    tw_amp_box_free(b);
    free(raw);
}
END_TEST

static int decodes(const tw_amp_type *t, const char *raw, size_t len)
{
    tw_amp_arg spec[] = {{"x", t, 0}, {NULL, NULL, 0}};
    tw_amp_box *b = tw_amp_box_new();
    tw_amp_box_set(b, "x", 1, raw, len);
    char err[128];
    tw_amp_values *v = tw_amp_values_from_box(spec, b, err, sizeof err);
    tw_amp_box_free(b);
    int ok = v != NULL;
    tw_amp_values_free(v);
    return ok;
}

START_TEST(test_boolean_is_exactly_true_or_false)
{
    ck_assert(decodes(TW_AMP_T_BOOLEAN, "True", 4));
    ck_assert(decodes(TW_AMP_T_BOOLEAN, "False", 5));
    ck_assert(!decodes(TW_AMP_T_BOOLEAN, "true", 4));
    ck_assert(!decodes(TW_AMP_T_BOOLEAN, "1", 1));
    ck_assert(!decodes(TW_AMP_T_BOOLEAN, "True ", 5));
    ck_assert(!decodes(TW_AMP_T_BOOLEAN, "", 0));
}
END_TEST

START_TEST(test_unicode_is_strict_utf8_both_ways)
{
    ck_assert(decodes(TW_AMP_T_UNICODE, "h\xc3\xa9", 3));
    ck_assert(decodes(TW_AMP_T_UNICODE, "\xf4\x8f\xbf\xbf", 4));  /* U+10FFFF */
    ck_assert(decodes(TW_AMP_T_UNICODE, "a\0b", 3));              /* U+0000 is text */
    ck_assert(!decodes(TW_AMP_T_UNICODE, "\xc0\x80", 2));         /* overlong */
    ck_assert(!decodes(TW_AMP_T_UNICODE, "\xe0\x80\xaf", 3));     /* overlong */
    ck_assert(!decodes(TW_AMP_T_UNICODE, "\xed\xa0\x80", 3));     /* surrogate */
    ck_assert(!decodes(TW_AMP_T_UNICODE, "\xf4\x90\x80\x80", 4)); /* past U+10FFFF */
    ck_assert(!decodes(TW_AMP_T_UNICODE, "\xc3", 1));             /* truncated */
    ck_assert(!decodes(TW_AMP_T_UNICODE, "\xff", 1));

    static const tw_amp_arg spec[] = {{"u", TW_AMP_T_UNICODE, 0}, {NULL, NULL, 0}};
    tw_amp_values *v = tw_amp_values_new();
    tw_amp_values_set_unicode(v, "u", "\xed\xa0\x80");
    tw_amp_box *b = tw_amp_box_new();
    char err[128];
    ck_assert_int_eq(tw_amp_values_to_box(spec, v, b, 1, err, sizeof err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "UTF-8"));
    tw_amp_box_free(b);
    tw_amp_values_free(v);
}
END_TEST

START_TEST(test_a_missing_required_argument_fails_and_an_optional_one_is_left_out)
{
    tw_amp_box *b = tw_amp_box_new();
    tw_amp_box_set_str(b, "a", "1");
    char err[128];
    ck_assert_ptr_null(tw_amp_values_from_box(SUM_ARGS, b, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "'b'"));

    static const tw_amp_arg opt[] = {{"a", TW_AMP_T_INTEGER, 0}, {"z", TW_AMP_T_STRING, 1},
                                     {NULL, NULL, 0}};
    tw_amp_values *v = tw_amp_values_from_box(opt, b, err, sizeof err);
    ck_assert_ptr_nonnull(v);
    ck_assert_ptr_null(tw_amp_values_get(v, "z"));
    ck_assert_uint_eq(tw_amp_values_count(v), 1);
    tw_amp_values_free(v);
    tw_amp_box_free(b);
}
END_TEST

START_TEST(test_encoding_checks_kinds_names_and_lengths)
{
    tw_amp_box *b = tw_amp_box_new();
    tw_amp_values *v = tw_amp_values_new();
    char err[128];
    tw_amp_values_set_string(v, "a", "13", 2); /* a String where an Integer belongs */
    tw_amp_values_set_integer(v, "b", 81);
    ck_assert_int_eq(tw_amp_values_to_box(SUM_ARGS, v, b, 1, err, sizeof err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "Integer"));

    tw_amp_values_set_integer(v, "a", 13);
    tw_amp_values_set_integer(v, "c", 1);
    ck_assert_int_eq(tw_amp_values_to_box(SUM_ARGS, v, b, 1, err, sizeof err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "c is not a valid argument"));
    /* Responses, like Twisted's, ignore what the command does not list. */
    ck_assert_int_eq(tw_amp_values_to_box(SUM_ARGS, v, b, 0, err, sizeof err), 0);

    static const tw_amp_arg spec[] = {{"s", TW_AMP_T_STRING, 0}, {NULL, NULL, 0}};
    char *big = calloc(1, 65536);
    tw_amp_values_set_string(v, "s", big, 65536);
    ck_assert_int_eq(tw_amp_values_to_box(spec, v, b, 0, err, sizeof err), TW_ETOOBIG);
    free(big);
    tw_amp_values_free(v);
    tw_amp_box_free(b);
}
END_TEST

START_TEST(test_values_refuse_malformed_input)
{
    tw_amp_values *v = tw_amp_values_new();
    tw_amp_value bad = {.kind = (tw_amp_kind)99};
    ck_assert_int_eq(tw_amp_values_set(v, "x", &bad), -EINVAL);
    ck_assert_int_eq(tw_amp_values_set_integer(v, "", 1), -EINVAL);
    tw_amp_value mixed[] = {{.kind = TW_AMP_INTEGER, .u.integer = 1},
                            {.kind = TW_AMP_BOOLEAN, .u.boolean = 1}};
    tw_amp_value l = {.kind = TW_AMP_LIST, .u.list = {mixed, 2}};
    ck_assert_int_eq(tw_amp_values_set(v, "l", &l), -EINVAL);
    ck_assert_uint_eq(tw_amp_values_count(v), 0);
    int64_t i;
    ck_assert_int_eq(tw_amp_values_get_integer(v, "x", &i), -ENOENT);
    tw_amp_values_set_boolean(v, "x", 1);
    ck_assert_int_eq(tw_amp_values_get_integer(v, "x", &i), -EINVAL);
    tw_amp_values_free(v);
}
END_TEST

START_TEST(test_amp_errors_carry_their_code_and_description)
{
    tw_failure *f = tw_amp_error_new("ZERO_DIVISION", "division by zero");
    ck_assert_int_eq(tw_failure_code(f), TW_EREMOTE);
    const char *code, *desc;
    ck_assert_int_eq(tw_amp_error_info(f, &code, &desc), 0);
    ck_assert_str_eq(code, "ZERO_DIVISION");
    ck_assert_str_eq(desc, "division by zero");
    char text[128];
    tw_failure_format(f, text, sizeof text);
    ck_assert_str_eq(text, "ZERO_DIVISION: division by zero");
    /* Found through a wrapping failure too. */
    tw_failure *w = tw_failure_wrap(f, TW_EFAIL, "while dividing");
    ck_assert_int_eq(tw_amp_error_info(w, &code, NULL), 0);
    ck_assert_str_eq(code, "ZERO_DIVISION");
    tw_failure_unref(w);
    tw_failure *plain = tw_failure_new(TW_EREMOTE, "not an AMP error");
    ck_assert_int_eq(tw_amp_error_info(plain, NULL, NULL), -ENOENT);
    tw_failure_unref(plain);
}
END_TEST

/*
 * Boxes and value sets keep small contents inside themselves and spill to
 * the heap past that; many keys, long values and churn must read back the
 * same whichever storage holds them.
 */
START_TEST(test_large_boxes_and_sets_keep_every_entry_through_churn)
{
    tw_amp_box *b = tw_amp_box_new();
    char key[16], value[600];
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < 40; i++) {
            snprintf(key, sizeof key, "k%02d", i);
            size_t len = (size_t)((i * 37 + round * 11) % (int)sizeof value);
            memset(value, 'a' + (i + round) % 26, len);
            ck_assert_int_eq(tw_amp_box_set(b, key, strlen(key), value, len), 0);
        }
        if (round % 2 == 0)
            for (int i = 0; i < 40; i += 3) {
                snprintf(key, sizeof key, "k%02d", i);
                ck_assert_int_eq(tw_amp_box_remove(b, key), 0);
            }
    }
    /* The last round (odd) set every key and removed none. */
    ck_assert_uint_eq(tw_amp_box_count(b), 40);
    size_t wire = 2;
    for (int i = 0; i < 40; i++) {
        snprintf(key, sizeof key, "k%02d", i);
        size_t len, want = (size_t)((i * 37 + 49 * 11) % (int)sizeof value);
        const char *v = tw_amp_box_get(b, key, &len);
        ck_assert_ptr_nonnull(v);
        ck_assert_uint_eq(len, want);
        for (size_t j = 0; j < len; j++)
            ck_assert_int_eq(v[j], 'a' + (i + 49) % 26);
        ck_assert_int_eq(v[len], '\0');
        wire += 4 + strlen(key) + len;
        const char *k;
        ck_assert_int_eq(tw_amp_box_entry(b, (size_t)i, &k, NULL, NULL, NULL), 0);
        ck_assert_str_eq(k, key);
    }
    ck_assert_uint_eq(tw_amp_box_encoded_size(b), wire);
    tw_amp_box_free(b);

    tw_amp_values *v = tw_amp_values_new();
    char name[80];
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof name, "a-rather-long-argument-name-%02d-that-fills-storage", i);
        memset(value, 'x', 100);
        ck_assert_int_eq(tw_amp_values_set_string(v, name, value, (size_t)(i * 5)), 0);
        ck_assert_int_eq(tw_amp_values_set_integer(v, "n", i), 0);
    }
    ck_assert_uint_eq(tw_amp_values_count(v), 21);
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof name, "a-rather-long-argument-name-%02d-that-fills-storage", i);
        const char *data;
        size_t len;
        ck_assert_int_eq(tw_amp_values_get_string(v, name, &data, &len), 0);
        ck_assert_uint_eq(len, (size_t)(i * 5));
        ck_assert_int_eq(data[len], '\0');
    }
    int64_t n;
    ck_assert_int_eq(tw_amp_values_get_integer(v, "n", &n), 0);
    ck_assert_int_eq(n, 19);
    tw_amp_values_free(v);
}
END_TEST

static Suite *amp_box_suite(void)
{
    Suite *s = suite_create("amp-box");
    TCase *wire = tcase_create("wire");
    tcase_set_timeout(wire, 30);
    tcase_add_test(wire, test_sum_request_encodes_to_twisteds_bytes_whatever_the_insertion_order);
    tcase_add_test(wire, test_sum_answer_encodes_to_twisteds_bytes);
    tcase_add_test(wire, test_typed_sum_arguments_encode_to_the_golden_values);
    tcase_add_test(wire, test_keys_sort_bytewise_as_python_sorts_bytes);
    tcase_add_test(wire, test_setting_a_key_again_replaces_its_value);
    tcase_add_test(wire, test_box_refuses_keys_outside_1_to_255_bytes_and_values_over_65535);
    tcase_add_test(wire, test_encode_reports_the_size_needed_when_the_buffer_is_short);
    tcase_add_test(wire, test_large_boxes_and_sets_keep_every_entry_through_churn);
    suite_add_tcase(s, wire);

    TCase *parser = tcase_create("parser");
    tcase_set_timeout(parser, 30);
    tcase_add_test(parser, test_golden_request_decodes_to_its_typed_arguments);
    tcase_add_test(parser, test_parser_gives_the_same_boxes_at_every_split_point);
    tcase_add_test(parser, test_parser_gives_the_same_boxes_one_byte_at_a_time);
    tcase_add_test(parser, test_parser_accepts_keys_in_any_order_and_a_repeated_key_keeps_the_last);
    tcase_add_test(parser, test_parser_accepts_a_key_of_255_bytes);
    tcase_add_test(parser, test_parser_rejects_a_key_of_256_bytes_as_soon_as_its_length_arrives);
    tcase_add_test(parser, test_parser_delivers_a_value_of_65535_bytes_and_an_empty_one);
    tcase_add_test(parser, test_parser_refuses_a_value_past_the_box_limit_before_allocating_it);
    tcase_add_test(parser, test_parser_counts_every_key_of_a_box_against_its_limit);
    tcase_add_test(parser, test_parser_hands_over_an_empty_box_for_the_protocol_to_reject);
    tcase_add_test(parser, test_parser_refuses_a_box_of_more_than_the_most_keys);
    tcase_add_test(parser, test_no_1mib_box_costs_much_cpu_whatever_its_key_order);
    tcase_add_test(parser, test_a_callback_can_stop_the_parse_and_learn_how_much_was_used);
    suite_add_tcase(s, parser);

    TCase *types = tcase_create("types");
    tcase_set_timeout(types, 60);
    tcase_add_test(types, test_float_repr_matches_python);
    tcase_add_test(types, test_float_repr_reads_back_to_the_same_double);
    tcase_add_test(types, test_float_decoding_accepts_what_python_float_accepts);
    tcase_add_test(types, test_float_decoding_refuses_what_python_float_refuses);
    tcase_add_test(types, test_integer_decoding_accepts_what_python_int_accepts);
    tcase_add_test(types, test_integer_decoding_refuses_bad_text_and_values_outside_64_bits);
    tcase_add_test(types, test_every_type_encodes_as_twisted_encodes_it);
    tcase_add_test(types, test_every_type_decodes_back_to_the_same_values);
    tcase_add_test(types, test_list_decoding_ignores_a_truncated_last_element_as_twisted_does);
    tcase_add_test(types, test_list_of_strings_decodes_within_a_bounded_expansion);
    tcase_add_test(types, test_boolean_is_exactly_true_or_false);
    tcase_add_test(types, test_unicode_is_strict_utf8_both_ways);
    tcase_add_test(types, test_a_missing_required_argument_fails_and_an_optional_one_is_left_out);
    tcase_add_test(types, test_encoding_checks_kinds_names_and_lengths);
    tcase_add_test(types, test_values_refuse_malformed_input);
    tcase_add_test(types, test_amp_errors_carry_their_code_and_description);
    suite_add_tcase(s, types);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(amp_box_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
