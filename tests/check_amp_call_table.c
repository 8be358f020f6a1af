/* SPDX-License-Identifier: MIT */
/*
 * The table of outstanding AMP calls (src/amp/amp_call_table.c), compiled
 * into this test: every call is found by the text of its tag whatever
 * order calls come and go in, text that is not exactly a tag the
 * connection hands out finds nothing, lookups stay a few probes long, and
 * the table's size follows the calls it holds.
 */
#include "config.h"

#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amp/amp_conn_internal.h"

static tw__amp_call *new_call(uint64_t tag)
{
    tw__amp_call *c = calloc(1, sizeof *c + 1);
    ck_assert_ptr_nonnull(c);
    c->tag = tag;
    return c;
}

static void add(tw__amp_call_table *t, tw__amp_call *c)
{
    ck_assert_int_eq(tw__amp_call_table_reserve(t), 0);
    tw__amp_call_table_add(t, c);
}

static tw__amp_call *find_num(const tw__amp_call_table *t, uint64_t tag)
{
    char text[17];
    int n = snprintf(text, sizeof text, "%" PRIx64, tag);
    return tw__amp_call_table_find(t, text, (size_t)n);
}

static size_t nslots(const tw__amp_call_table *t)
{
    return t->slots != NULL ? (size_t)1 << t->bits : 0;
}

/* The longest distance, in probes, between a call's home slot and where it is. */
static size_t longest_probe(const tw__amp_call_table *t)
{
    size_t n = nslots(t), mask = n - 1, worst = 0;
    for (size_t i = 0; i < n; i++) {
        if (t->slots[i] == NULL)
            continue;
        size_t home = (size_t)((t->slots[i]->tag * UINT64_C(0x9E3779B97F4A7C15)) >>
                               (64 - t->bits));
        size_t d = (i - home) & mask;
        if (d > worst)
            worst = d;
    }
    return worst;
}

static void drain(tw__amp_call_table *t)
{
    tw__amp_call *c;
    while ((c = tw__amp_call_table_first(t)) != NULL) {
        tw__amp_call_table_remove(t, c);
        free(c);
    }
    tw__amp_call_table_release(t);
}

START_TEST(test_an_empty_table_finds_nothing_and_holds_no_memory)
{
    tw__amp_call_table t = {0};
    ck_assert_ptr_null(tw__amp_call_table_find(&t, "1", 1));
    ck_assert_ptr_null(tw__amp_call_table_first(&t));
    ck_assert_uint_eq(nslots(&t), 0);
    tw__amp_call_table_release(&t);
}
END_TEST

START_TEST(test_calls_answered_in_order_are_found_in_a_few_probes)
{
    enum { N = 20000 };
    tw__amp_call_table t = {0};
    tw__amp_call **calls = malloc(N * sizeof *calls);
    for (uint64_t i = 0; i < N; i++) {
        calls[i] = new_call(i + 1);
        add(&t, calls[i]);
    }
    ck_assert_uint_eq(t.list.count, N);
    ck_assert_uint_ge(nslots(&t), 2 * N);
    ck_assert_uint_le(nslots(&t), 4 * N);
    ck_assert_uint_le(longest_probe(&t), 4);
    /* The newest first: the order a lost connection fails them in. */
    ck_assert_ptr_eq(tw__amp_call_table_first(&t), calls[N - 1]);
    for (uint64_t i = 0; i < N; i++) {
        ck_assert_ptr_eq(find_num(&t, i + 1), calls[i]);
        tw__amp_call_table_remove(&t, calls[i]);
        ck_assert_ptr_null(find_num(&t, i + 1));
        free(calls[i]);
        if (i % 997 == 0)
            ck_assert_uint_le(longest_probe(&t), 4);
    }
    /* The burst is over: the memory went back. */
    ck_assert_uint_eq(t.list.count, 0);
    ck_assert_uint_eq(nslots(&t), 8);
    free(calls);
    tw__amp_call_table_release(&t);
}
END_TEST

START_TEST(test_calls_removed_in_any_order_leave_the_rest_findable)
{
    enum { N = 4096 };
    tw__amp_call_table t = {0};
    tw__amp_call **calls = calloc(N, sizeof *calls);
    srand(16);
    uint64_t next = 1;
    size_t live = 0;
    /* Calls come and go at random; a few stay outstanding for long. */
    for (int step = 0; step < 200000; step++) {
        size_t i = (size_t)rand() % N;
        if (calls[i] == NULL) {
            calls[i] = new_call(next++);
            add(&t, calls[i]);
            live++;
        } else if (i % 64 != 0) {
            tw__amp_call_table_remove(&t, calls[i]);
            free(calls[i]);
            calls[i] = NULL;
            live--;
        }
        ck_assert_uint_eq(t.list.count, live);
        ck_assert_uint_le(nslots(&t), live < 4 ? 8 : 8 * live);
    }
    for (size_t i = 0; i < N; i++)
        if (calls[i] != NULL)
            ck_assert_ptr_eq(find_num(&t, calls[i]->tag), calls[i]);
    ck_assert_uint_le(longest_probe(&t), 16);
    /* Tags handed out and answered find nothing. */
    size_t gone = 0;
    for (uint64_t tag = 1; tag < next; tag++) {
        tw__amp_call *c = find_num(&t, tag);
        if (c == NULL)
            gone++;
        else
            ck_assert_uint_eq(c->tag, tag);
    }
    ck_assert_uint_eq(gone, next - 1 - live);
    drain(&t);
    free(calls);
}
END_TEST

START_TEST(test_text_that_is_not_exactly_a_handed_out_tag_finds_nothing)
{
    tw__amp_call_table t = {0};
    add(&t, new_call(1));
    add(&t, new_call(0xab));
    add(&t, new_call(UINT64_MAX));
    ck_assert_ptr_nonnull(tw__amp_call_table_find(&t, "1", 1));
    ck_assert_ptr_nonnull(tw__amp_call_table_find(&t, "ab", 2));
    ck_assert_ptr_nonnull(tw__amp_call_table_find(&t, "ffffffffffffffff", 16));
    /* Twisted compares tags as bytes: other spellings of the numbers are
     * other tags, and so is anything longer than a 64-bit counter. */
    const char *forged[] = {"01",   "001", "AB",  "aB",  "+1",  " 1",  "1 ", "0x1",
                            "0",    "",    "-1",  "1\0", "g",   "ab\n", "1ffffffffffffffff",
                            "10000000000000001", "0ffffffffffffffff"};
    for (size_t i = 0; i < sizeof forged / sizeof forged[0]; i++) {
        size_t len = strlen(forged[i]);
        if (strcmp(forged[i], "1\0") == 0)
            len = 2;
        ck_assert_msg(tw__amp_call_table_find(&t, forged[i], len) == NULL, "%s found", forged[i]);
    }
    ck_assert_ptr_null(tw__amp_call_table_find(&t, NULL, 0));
    drain(&t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("amp_call_table");
    TCase *tc = tcase_create("table");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_an_empty_table_finds_nothing_and_holds_no_memory);
    tcase_add_test(tc, test_calls_answered_in_order_are_found_in_a_few_probes);
    tcase_add_test(tc, test_calls_removed_in_any_order_leave_the_rest_findable);
    tcase_add_test(tc, test_text_that_is_not_exactly_a_handed_out_tag_finds_nothing);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
