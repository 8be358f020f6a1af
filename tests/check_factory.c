/* SPDX-License-Identifier: MIT */
/*
 * tw_factory_for_protocol(), Twisted's Factory.forProtocol: one zeroed
 * protocol of the size asked for per connection, running the caller's
 * callbacks, freed by the factory after the caller's destroy released what
 * it held; and a size too small for a protocol refused. Run under ASan, a
 * leak or a double free of the protocols shows here too.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <twine.h>
#include <twine/testing.h>

/* A protocol with state of its own past the embedded tw_protocol. */
typedef struct {
    tw_protocol base;
    char *held; /* allocated by connection_made, released by destroy */
    size_t received;
    char tail[200];
} counter;

static int destroyed;
static tw_protocol *last_destroyed;

static void counter_made(tw_protocol *p)
{
    counter *c = tw_container_of(p, counter, base);
    ck_assert_ptr_null(c->held); /* zeroed */
    ck_assert_uint_eq(c->received, 0);
    for (size_t i = 0; i < sizeof c->tail; i++)
        ck_assert_int_eq(c->tail[i], 0);
    c->held = strdup("held");
    tw_transport_write(p->transport, "hi\n", 3);
}

static void counter_data(tw_protocol *p, const void *data, size_t len)
{
    counter *c = tw_container_of(p, counter, base);
    c->received += len;
    memset(c->tail, 'x', sizeof c->tail); /* all of the size is writable */
    char line[32];
    int n = snprintf(line, sizeof line, "%zu\n", c->received);
    tw_transport_write(p->transport, line, (size_t)n);
    (void)data;
}

static void counter_lost(tw_protocol *p, const tw_failure *reason)
{
    (void)p;
    (void)reason;
}

static void counter_destroy(tw_protocol *p)
{
    counter *c = tw_container_of(p, counter, base);
    free(c->held);
    c->held = NULL;
    destroyed++;
    last_destroyed = p;
}

static const tw_protocol_ops counter_ops = {
    .connection_made = counter_made,
    .data_received = counter_data,
    .connection_lost = counter_lost,
    .destroy = counter_destroy,
};

START_TEST(test_each_connection_gets_its_own_zeroed_protocol_running_the_callbacks)
{
    destroyed = 0;
    tw_factory *f = tw_factory_for_protocol(&counter_ops, sizeof(counter));
    ck_assert_ptr_nonnull(f);
    tw_string_transport *a = tw_string_transport_open(NULL, f);
    tw_string_transport *b = tw_string_transport_open(NULL, f);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_ne(a->base.protocol, b->base.protocol);
    ck_assert_ptr_eq(a->base.protocol->factory, f);
    ck_assert(tw_string_transport_output_is(a, "hi\n"));
    tw_string_transport_clear_output(a);
    tw_string_transport_feed_str(a, "abc");
    tw_string_transport_feed_str(a, "de");
    ck_assert(tw_string_transport_output_is(a, "3\n5\n"));
    tw_string_transport_feed_str(b, "z");
    ck_assert(tw_string_transport_output_is(b, "hi\n1\n"));
    ck_assert_uint_eq(tw_container_of(b->base.protocol, counter, base)->received, 1);
    tw_protocol *pa = a->base.protocol;
    tw_string_transport_free(a);
    ck_assert_int_eq(destroyed, 1);
    ck_assert_ptr_eq(last_destroyed, pa);
    tw_string_transport_free(b);
    ck_assert_int_eq(destroyed, 2);
    tw_factory_free(f);
}
END_TEST

static const tw_protocol_ops plain_ops = {.connection_lost = counter_lost};

START_TEST(test_a_protocol_without_destroy_is_still_freed)
{
    /* No destroy of the caller's: the factory frees the memory (ASan
     * reports a leak otherwise), and the caller's ops stay untouched. */
    tw_factory *f = tw_factory_for_protocol(&plain_ops, sizeof(tw_protocol));
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_null(plain_ops.destroy);
    for (int i = 0; i < 3; i++) {
        tw_string_transport *t = tw_string_transport_open(NULL, f);
        ck_assert_ptr_nonnull(t);
        ck_assert_ptr_nonnull(t->base.protocol->ops->destroy);
        ck_assert_ptr_eq(t->base.protocol->ops->connection_lost, counter_lost);
        tw_string_transport_feed_str(t, "ignored"); /* no data_received: dropped */
        tw_string_transport_free(t);
    }
    tw_factory_free(f);
}
END_TEST

START_TEST(test_a_size_smaller_than_a_protocol_is_refused)
{
    errno = 0;
    ck_assert_ptr_null(tw_factory_for_protocol(&plain_ops, sizeof(tw_protocol) - 1));
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_ptr_null(tw_factory_for_protocol(NULL, sizeof(tw_protocol)));
    ck_assert_int_eq(errno, EINVAL);
}
END_TEST

static Suite *factory_suite(void)
{
    Suite *s = suite_create("factory");
    TCase *tc = tcase_create("for_protocol");
    tcase_add_test(tc, test_each_connection_gets_its_own_zeroed_protocol_running_the_callbacks);
    tcase_add_test(tc, test_a_protocol_without_destroy_is_still_freed);
    tcase_add_test(tc, test_a_size_smaller_than_a_protocol_is_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(factory_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
