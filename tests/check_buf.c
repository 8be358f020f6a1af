/* SPDX-License-Identifier: MIT */
/*
 * The growable-buffer helper (src/core/buf.c), compiled into this test:
 * capacities double from the minimum, sizes that would wrap are refused
 * before anything is allocated, and a buffer that starts in a caller's
 * inline array moves to the heap with its bytes.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf_internal.h"

START_TEST(test_capacity_doubles_from_the_minimum_until_the_need_fits)
{
    ck_assert_uint_eq(tw__buf_next_cap(0, 0, 1, 256), 256);
    ck_assert_uint_eq(tw__buf_next_cap(0, 0, 257, 256), 512);
    ck_assert_uint_eq(tw__buf_next_cap(512, 500, 100, 256), 1024);
    ck_assert_uint_eq(tw__buf_next_cap(0, 0, 5, 0), 8);
    ck_assert_uint_eq(tw__buf_next_cap(64, 64, 1000, 64), 2048);
}
END_TEST

START_TEST(test_sizes_that_would_wrap_are_refused)
{
    /* used + more past SIZE_MAX: no capacity at all. */
    ck_assert_uint_eq(tw__buf_next_cap(256, 100, SIZE_MAX - 99, 256), 0);
    ck_assert_uint_eq(tw__buf_next_cap(0, SIZE_MAX, 1, 0), 0);
    /* Doubling would wrap: exactly the need. */
    size_t big = SIZE_MAX / 2 + 1;
    ck_assert_uint_eq(tw__buf_next_cap(big, big, big - 1, 0), SIZE_MAX);
    ck_assert_uint_eq(tw__buf_next_cap(big, 10, big, 0), big + 10);
    /* And the buffer is left as it was. */
    char *data = malloc(16);
    size_t cap = 16;
    ck_assert_int_eq(tw__buf_reserve(&data, &cap, 8, SIZE_MAX - 7, 16, NULL), -ENOMEM);
    ck_assert_uint_eq(cap, 16);
    ck_assert_ptr_nonnull(data);
    free(data);
}
END_TEST

START_TEST(test_a_heap_buffer_grows_in_place_and_keeps_its_bytes)
{
    char *data = NULL;
    size_t cap = 0, used = 0;
    for (int i = 0; i < 1000; i++) {
        ck_assert_int_eq(tw__buf_reserve(&data, &cap, used, 3, 32, NULL), 0);
        ck_assert_uint_ge(cap, used + 3);
        memcpy(data + used, "abc", 3);
        used += 3;
    }
    ck_assert_uint_eq(cap, 4096);
    for (size_t i = 0; i < used; i++)
        ck_assert_int_eq(data[i], "abc"[i % 3]);
    /* Room already there: nothing moves. */
    char *before = data;
    ck_assert_int_eq(tw__buf_reserve(&data, &cap, used, cap - used, 32, NULL), 0);
    ck_assert_ptr_eq(data, before);
    free(data);
}
END_TEST

START_TEST(test_an_inline_buffer_moves_to_the_heap_with_its_bytes)
{
    char local[8];
    char *data = local;
    size_t cap = sizeof local;
    memcpy(local, "12345678", 8);
    ck_assert_int_eq(tw__buf_reserve(&data, &cap, 6, 2, 4, local), 0);
    ck_assert_ptr_eq(data, local); /* it fits */
    ck_assert_int_eq(tw__buf_reserve(&data, &cap, 8, 1, 4, local), 0);
    ck_assert_ptr_ne(data, local);
    ck_assert_uint_eq(cap, 16);
    ck_assert_int_eq(memcmp(data, "12345678", 8), 0);
    free(data);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("buf");
    TCase *tc = tcase_create("grow");
    tcase_add_test(tc, test_capacity_doubles_from_the_minimum_until_the_need_fits);
    tcase_add_test(tc, test_sizes_that_would_wrap_are_refused);
    tcase_add_test(tc, test_a_heap_buffer_grows_in_place_and_keeps_its_bytes);
    tcase_add_test(tc, test_an_inline_buffer_moves_to_the_heap_with_its_bytes);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
