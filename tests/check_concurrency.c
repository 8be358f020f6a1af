/* SPDX-License-Identifier: MIT */
/*
 * The deferred concurrency primitives (twine/concurrency.h) and their
 * companions in twine/deferred.h: DeferredSemaphore, DeferredLock and
 * DeferredQueue with Twisted's rules, maybe_deferred, and DeferredList's
 * fire_on_one_callback / fire_on_one_errback / consume_errors. Values are
 * heap integers whose destructor counts, so ownership is asserted; a
 * captured log proves no failure went unhandled.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <twine.h>

static int freed;      /* value destructor calls */
static int unhandled;  /* "deferred" log records: unhandled failures */

static int *new_int(int v)
{
    int *p = malloc(sizeof *p);
    ck_assert_ptr_nonnull(p);
    *p = v;
    return p;
}

static void free_int(void *p)
{
    freed++;
    free(p);
}

static void capture_log(tw_log_level level, const char *subsystem, const char *message, void *arg)
{
    (void)level;
    (void)message;
    (void)arg;
    if (strcmp(subsystem, "deferred") == 0)
        unhandled++;
}

static void setup(void)
{
    freed = 0;
    unhandled = 0;
    tw_log_set_handler(capture_log, NULL);
}

static void teardown(void)
{
    tw_log_set_handler(NULL, NULL);
    ck_assert_int_eq(unhandled, 0);
}

/* What a callback saw; failures are handled. */
typedef struct probe {
    int calls;
    int failed;
    int code;
    void *value; /* borrowed: what the chain held */
} probe;

static void observe(tw_deferred *d, tw_result *res, void *arg)
{
    probe *p = arg;
    (void)d;
    p->calls++;
    p->failed = tw_result_is_failure(res);
    if (p->failed) {
        p->code = tw_failure_code(tw_result_failure(res));
        tw_failure_unref(tw_result_take_failure(res));
    } else {
        p->value = tw_result_value(res);
    }
}

static tw_deferred *watched(tw_deferred *d, probe *p)
{
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(tw_deferred_add_both(d, observe, p), 0);
    return d;
}

/* ---- Semaphore ---------------------------------------------------------- */

START_TEST(test_semaphore_without_tokens_cannot_be_made)
{
    ck_assert_ptr_null(tw_deferred_semaphore_new(0));
}
END_TEST

START_TEST(test_semaphore_acquire_fires_at_once_while_tokens_remain)
{
    tw_deferred_semaphore *s = tw_deferred_semaphore_new(2);
    probe a = {0}, b = {0}, c = {0};
    tw_deferred *da = watched(tw_deferred_semaphore_acquire(s), &a);
    tw_deferred *db = watched(tw_deferred_semaphore_acquire(s), &b);
    tw_deferred *dc = watched(tw_deferred_semaphore_acquire(s), &c);
    ck_assert_int_eq(a.calls, 1);
    ck_assert_ptr_eq(a.value, s);
    ck_assert_int_eq(b.calls, 1);
    ck_assert_int_eq(c.calls, 0);
    ck_assert_uint_eq(tw_deferred_semaphore_tokens(s), 0);
    ck_assert_uint_eq(tw_deferred_semaphore_waiting(s), 1);
    ck_assert_int_eq(tw_deferred_semaphore_release(s), 0);
    ck_assert_int_eq(c.calls, 1);
    ck_assert_int_eq(c.failed, 0);
    ck_assert_uint_eq(tw_deferred_semaphore_tokens(s), 0);
    tw_deferred_unref(da);
    tw_deferred_unref(db);
    tw_deferred_unref(dc);
    tw_deferred_semaphore_free(s);
}
END_TEST

START_TEST(test_semaphore_waiters_are_served_first_come_first_served)
{
    tw_deferred_semaphore *s = tw_deferred_semaphore_new(1);
    probe held = {0}, w[3] = {{0}};
    tw_deferred *dh = watched(tw_deferred_semaphore_acquire(s), &held);
    tw_deferred *dw[3];
    for (int i = 0; i < 3; i++)
        dw[i] = watched(tw_deferred_semaphore_acquire(s), &w[i]);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(tw_deferred_semaphore_release(s), 0);
        for (int j = 0; j < 3; j++)
            ck_assert_int_eq(w[j].calls, j <= i);
    }
    ck_assert_int_eq(tw_deferred_semaphore_release(s), 0);
    ck_assert_uint_eq(tw_deferred_semaphore_tokens(s), 1);
    tw_deferred_unref(dh);
    for (int i = 0; i < 3; i++)
        tw_deferred_unref(dw[i]);
    tw_deferred_semaphore_free(s);
}
END_TEST

START_TEST(test_semaphore_release_beyond_its_tokens_is_refused)
{
    tw_deferred_semaphore *s = tw_deferred_semaphore_new(1);
    ck_assert_int_eq(tw_deferred_semaphore_release(s), TW_ESTATE);
    tw_deferred_unref(tw_deferred_semaphore_acquire(s));
    ck_assert_int_eq(tw_deferred_semaphore_release(s), 0);
    ck_assert_int_eq(tw_deferred_semaphore_release(s), TW_ESTATE);
    ck_assert_uint_eq(tw_deferred_semaphore_tokens(s), 1);
    tw_deferred_semaphore_free(s);
}
END_TEST

START_TEST(test_semaphore_cancelled_waiter_fails_and_takes_no_token)
{
    tw_deferred_semaphore *s = tw_deferred_semaphore_new(1);
    probe held = {0}, gone = {0}, next = {0};
    tw_deferred *dh = watched(tw_deferred_semaphore_acquire(s), &held);
    tw_deferred *dg = watched(tw_deferred_semaphore_acquire(s), &gone);
    tw_deferred *dn = watched(tw_deferred_semaphore_acquire(s), &next);
    ck_assert_int_eq(tw_deferred_cancel(dg), 0);
    ck_assert_int_eq(gone.calls, 1);
    ck_assert_int_eq(gone.code, TW_ECANCELLED);
    ck_assert_uint_eq(tw_deferred_semaphore_waiting(s), 1);
    ck_assert_int_eq(tw_deferred_semaphore_release(s), 0);
    ck_assert_int_eq(next.calls, 1);
    ck_assert_int_eq(next.failed, 0);
    ck_assert_int_eq(gone.calls, 1);
    ck_assert_int_eq(tw_deferred_semaphore_release(s), 0);
    ck_assert_uint_eq(tw_deferred_semaphore_tokens(s), 1);
    tw_deferred_unref(dh);
    tw_deferred_unref(dg);
    tw_deferred_unref(dn);
    tw_deferred_semaphore_free(s);
}
END_TEST

START_TEST(test_semaphore_free_fails_its_waiters)
{
    tw_deferred_semaphore *s = tw_deferred_semaphore_new(1);
    probe held = {0}, w = {0};
    tw_deferred *dh = watched(tw_deferred_semaphore_acquire(s), &held);
    tw_deferred *dw = watched(tw_deferred_semaphore_acquire(s), &w);
    tw_deferred_semaphore_free(s);
    ck_assert_int_eq(w.calls, 1);
    ck_assert_int_eq(w.code, TW_ECANCELLED);
    tw_deferred_unref(dh);
    tw_deferred_unref(dw);
}
END_TEST

/* A run() body: the value it makes, a failure, or a deferred to wait on. */
typedef struct body {
    int calls;
    int fail;
    tw_deferred *wait_on;
    tw_deferred_semaphore *s;
    size_t tokens_inside;
} body;

static void run_body(tw_deferred *d, tw_result *res, void *arg)
{
    body *b = arg;
    (void)d;
    b->calls++;
    if (b->s != NULL)
        b->tokens_inside = tw_deferred_semaphore_tokens(b->s);
    if (b->fail)
        tw_result_set_failure(res, tw_failure_new(TW_EFAIL, "body failed"));
    else if (b->wait_on != NULL)
        ck_assert_int_eq(tw_result_set_deferred(res, b->wait_on), 0);
    else
        tw_result_set_value(res, new_int(7), free_int);
}

START_TEST(test_semaphore_run_releases_after_a_value)
{
    tw_deferred_semaphore *s = tw_deferred_semaphore_new(1);
    body b = {.s = s};
    probe p = {0};
    tw_deferred *d = watched(tw_deferred_semaphore_run(s, run_body, &b), &p);
    ck_assert_int_eq(b.calls, 1);
    ck_assert_uint_eq(b.tokens_inside, 0);
    ck_assert_int_eq(p.calls, 1);
    ck_assert_int_eq(*(int *)p.value, 7);
    ck_assert_uint_eq(tw_deferred_semaphore_tokens(s), 1);
    tw_deferred_unref(d);
    ck_assert_int_eq(freed, 1);
    tw_deferred_semaphore_free(s);
}
END_TEST

START_TEST(test_semaphore_run_releases_after_a_failure)
{
    tw_deferred_semaphore *s = tw_deferred_semaphore_new(1);
    body b = {.fail = 1};
    probe p = {0};
    tw_deferred *d = watched(tw_deferred_semaphore_run(s, run_body, &b), &p);
    ck_assert_int_eq(p.failed, 1);
    ck_assert_int_eq(p.code, TW_EFAIL);
    ck_assert_uint_eq(tw_deferred_semaphore_tokens(s), 1);
    tw_deferred_unref(d);
    tw_deferred_semaphore_free(s);
}
END_TEST

START_TEST(test_semaphore_run_holds_the_token_until_its_deferred_fires)
{
    tw_deferred_semaphore *s = tw_deferred_semaphore_new(1);
    tw_deferred *work = tw_deferred_new(NULL, NULL);
    body first = {.wait_on = work}, second = {0};
    probe p1 = {0}, p2 = {0};
    tw_deferred *d1 = watched(tw_deferred_semaphore_run(s, run_body, &first), &p1);
    tw_deferred *d2 = watched(tw_deferred_semaphore_run(s, run_body, &second), &p2);
    ck_assert_int_eq(first.calls, 1);
    ck_assert_int_eq(second.calls, 0); /* waits for the token */
    ck_assert_int_eq(p1.calls, 0);
    tw_deferred_errback(work, tw_failure_new(TW_EFAIL, "async failure"));
    ck_assert_int_eq(p1.calls, 1);
    ck_assert_int_eq(p1.code, TW_EFAIL);
    ck_assert_int_eq(second.calls, 1); /* the failure released the token */
    ck_assert_int_eq(p2.calls, 1);
    ck_assert_uint_eq(tw_deferred_semaphore_tokens(s), 1);
    tw_deferred_unref(work);
    tw_deferred_unref(d1);
    tw_deferred_unref(d2);
    tw_deferred_semaphore_free(s);
    ck_assert_int_eq(freed, 1);
}
END_TEST

START_TEST(test_semaphore_run_cancelled_while_waiting_never_runs)
{
    tw_deferred_semaphore *s = tw_deferred_semaphore_new(1);
    tw_deferred *held = tw_deferred_semaphore_acquire(s);
    body b = {0};
    probe p = {0};
    tw_deferred *d = watched(tw_deferred_semaphore_run(s, run_body, &b), &p);
    ck_assert_int_eq(tw_deferred_cancel(d), 0);
    ck_assert_int_eq(p.code, TW_ECANCELLED);
    ck_assert_int_eq(tw_deferred_semaphore_release(s), 0);
    ck_assert_int_eq(b.calls, 0);
    ck_assert_uint_eq(tw_deferred_semaphore_tokens(s), 1);
    tw_deferred_unref(held);
    tw_deferred_unref(d);
    tw_deferred_semaphore_free(s);
}
END_TEST

START_TEST(test_semaphore_freed_while_a_run_waits_stays_valid_until_it_ends)
{
    tw_deferred_semaphore *s = tw_deferred_semaphore_new(1);
    tw_deferred *work = tw_deferred_new(NULL, NULL);
    body b = {.wait_on = work};
    probe p = {0};
    tw_deferred *d = watched(tw_deferred_semaphore_run(s, run_body, &b), &p);
    tw_deferred_semaphore_free(s); /* the run still holds it (ASan checks) */
    tw_deferred_callback(work, new_int(3), free_int);
    ck_assert_int_eq(p.calls, 1);
    ck_assert_int_eq(*(int *)p.value, 3);
    tw_deferred_unref(work);
    tw_deferred_unref(d);
    ck_assert_int_eq(freed, 1);
}
END_TEST

/* ---- Lock --------------------------------------------------------------- */

START_TEST(test_lock_is_held_by_one_at_a_time)
{
    tw_deferred_lock *l = tw_deferred_lock_new();
    probe a = {0}, b = {0};
    ck_assert_int_eq(tw_deferred_lock_locked(l), 0);
    tw_deferred *da = watched(tw_deferred_lock_acquire(l), &a);
    ck_assert_ptr_eq(a.value, l);
    ck_assert_int_ne(tw_deferred_lock_locked(l), 0);
    tw_deferred *db = watched(tw_deferred_lock_acquire(l), &b);
    ck_assert_int_eq(b.calls, 0);
    ck_assert_int_eq(tw_deferred_lock_release(l), 0);
    ck_assert_int_eq(b.calls, 1);
    ck_assert_int_ne(tw_deferred_lock_locked(l), 0);
    ck_assert_int_eq(tw_deferred_lock_release(l), 0);
    ck_assert_int_eq(tw_deferred_lock_locked(l), 0);
    ck_assert_int_eq(tw_deferred_lock_release(l), TW_ESTATE);
    tw_deferred_unref(da);
    tw_deferred_unref(db);
    tw_deferred_lock_free(l);
}
END_TEST

enum { CHAIN = 20000 };
static int chain_served;

static void release_in_callback(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    chain_served++;
    ck_assert_ptr_eq(tw_result_value(res), arg);
    ck_assert_int_eq(tw_deferred_lock_release(arg), 0);
}

START_TEST(test_lock_released_inside_its_own_callbacks_serves_every_waiter)
{
    /* Each waiter releases from its callback: a recursive hand-over would
     * need CHAIN stack frames. */
    tw_deferred_lock *l = tw_deferred_lock_new();
    tw_deferred *held = tw_deferred_lock_acquire(l);
    chain_served = 0;
    for (int i = 0; i < CHAIN; i++) {
        tw_deferred *d = tw_deferred_lock_acquire(l);
        ck_assert_int_eq(tw_deferred_add_callback(d, release_in_callback, l), 0);
        tw_deferred_unref(d); /* the lock holds it while it waits */
    }
    ck_assert_int_eq(tw_deferred_lock_release(l), 0);
    ck_assert_int_eq(chain_served, CHAIN);
    ck_assert_int_eq(tw_deferred_lock_locked(l), 0);
    tw_deferred_unref(held);
    tw_deferred_lock_free(l);
}
END_TEST

static void free_lock_in_callback(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    (void)res;
    tw_deferred_lock_free(arg);
}

START_TEST(test_lock_freed_inside_a_waiters_callback_fails_the_rest)
{
    tw_deferred_lock *l = tw_deferred_lock_new();
    tw_deferred *held = tw_deferred_lock_acquire(l);
    tw_deferred *first = tw_deferred_lock_acquire(l);
    ck_assert_int_eq(tw_deferred_add_callback(first, free_lock_in_callback, l), 0);
    probe rest = {0};
    tw_deferred *second = watched(tw_deferred_lock_acquire(l), &rest);
    ck_assert_int_eq(tw_deferred_lock_release(l), 0);
    ck_assert_int_eq(rest.calls, 1);
    ck_assert_int_eq(rest.code, TW_ECANCELLED);
    tw_deferred_unref(held);
    tw_deferred_unref(first);
    tw_deferred_unref(second);
}
END_TEST

static void lock_body(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    (void)res;
    ck_assert_int_ne(tw_deferred_lock_locked(arg), 0);
}

START_TEST(test_lock_run_holds_the_lock_while_it_runs)
{
    tw_deferred_lock *l = tw_deferred_lock_new();
    probe p = {0};
    tw_deferred *d = watched(tw_deferred_lock_run(l, lock_body, l), &p);
    ck_assert_int_eq(p.calls, 1);
    ck_assert_int_eq(p.failed, 0);
    ck_assert_int_eq(tw_deferred_lock_locked(l), 0);
    tw_deferred_unref(d);
    tw_deferred_lock_free(l);
}
END_TEST

/* ---- Queue -------------------------------------------------------------- */

START_TEST(test_queue_get_then_put_fires_the_getter_with_the_value)
{
    tw_deferred_queue *q = tw_deferred_queue_new(TW_DEFERRED_QUEUE_UNBOUNDED,
                                                 TW_DEFERRED_QUEUE_UNBOUNDED);
    probe p = {0};
    tw_deferred *d = watched(tw_deferred_queue_get(q), &p);
    ck_assert_int_eq(p.calls, 0);
    ck_assert_uint_eq(tw_deferred_queue_waiting(q), 1);
    ck_assert_int_eq(tw_deferred_queue_put(q, new_int(5), free_int), 0);
    ck_assert_int_eq(p.calls, 1);
    ck_assert_int_eq(*(int *)p.value, 5);
    ck_assert_uint_eq(tw_deferred_queue_waiting(q), 0);
    ck_assert_uint_eq(tw_deferred_queue_pending(q), 0);
    ck_assert_int_eq(freed, 0); /* the getter's chain owns it */
    tw_deferred_unref(d);
    ck_assert_int_eq(freed, 1);
    tw_deferred_queue_free(q);
}
END_TEST

START_TEST(test_queue_items_wait_in_order_for_getters)
{
    tw_deferred_queue *q = tw_deferred_queue_new(TW_DEFERRED_QUEUE_UNBOUNDED, 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(tw_deferred_queue_put(q, new_int(i), free_int), 0);
    ck_assert_uint_eq(tw_deferred_queue_pending(q), 3);
    for (int i = 0; i < 3; i++) {
        probe p = {0};
        tw_deferred *d = watched(tw_deferred_queue_get(q), &p);
        ck_assert_int_eq(p.calls, 1);
        ck_assert_int_eq(*(int *)p.value, i);
        tw_deferred_unref(d);
    }
    ck_assert_int_eq(freed, 3);
    tw_deferred_queue_free(q);
}
END_TEST

START_TEST(test_queue_put_beyond_size_overflows_and_the_caller_keeps_the_value)
{
    tw_deferred_queue *q = tw_deferred_queue_new(2, TW_DEFERRED_QUEUE_UNBOUNDED);
    ck_assert_int_eq(tw_deferred_queue_put(q, new_int(1), free_int), 0);
    ck_assert_int_eq(tw_deferred_queue_put(q, new_int(2), free_int), 0);
    int *third = new_int(3);
    ck_assert_int_eq(tw_deferred_queue_put(q, third, free_int), TW_EOVERFLOW);
    ck_assert_int_eq(freed, 0);
    ck_assert_uint_eq(tw_deferred_queue_pending(q), 2);
    /* Once a getter made room, the put goes through. */
    tw_deferred_unref(tw_deferred_queue_get(q));
    ck_assert_int_eq(freed, 1);
    ck_assert_int_eq(tw_deferred_queue_put(q, third, free_int), 0);
    tw_deferred_queue_free(q); /* destroys the two still queued */
    ck_assert_int_eq(freed, 3);
}
END_TEST

START_TEST(test_queue_of_size_zero_only_hands_items_to_waiting_getters)
{
    tw_deferred_queue *q = tw_deferred_queue_new(0, TW_DEFERRED_QUEUE_UNBOUNDED);
    int v = 1;
    ck_assert_int_eq(tw_deferred_queue_put(q, &v, NULL), TW_EOVERFLOW);
    probe p = {0};
    tw_deferred *d = watched(tw_deferred_queue_get(q), &p);
    ck_assert_int_eq(tw_deferred_queue_put(q, &v, NULL), 0);
    ck_assert_ptr_eq(p.value, &v);
    tw_deferred_unref(d);
    tw_deferred_queue_free(q);
}
END_TEST

START_TEST(test_queue_get_beyond_backlog_underflows)
{
    tw_deferred_queue *q = tw_deferred_queue_new(TW_DEFERRED_QUEUE_UNBOUNDED, 1);
    probe a = {0}, b = {0};
    tw_deferred *da = watched(tw_deferred_queue_get(q), &a);
    tw_deferred *db = watched(tw_deferred_queue_get(q), &b);
    ck_assert_int_eq(a.calls, 0);
    ck_assert_int_eq(b.calls, 1);
    ck_assert_int_eq(b.code, TW_EUNDERFLOW);
    ck_assert_uint_eq(tw_deferred_queue_waiting(q), 1);
    tw_deferred_unref(db);
    tw_deferred_queue_free(q);
    ck_assert_int_eq(a.code, TW_ECANCELLED);
    tw_deferred_unref(da);
}
END_TEST

START_TEST(test_queue_cancelled_getter_takes_no_item)
{
    tw_deferred_queue *q = tw_deferred_queue_new(TW_DEFERRED_QUEUE_UNBOUNDED,
                                                 TW_DEFERRED_QUEUE_UNBOUNDED);
    probe gone = {0}, next = {0};
    tw_deferred *dg = watched(tw_deferred_queue_get(q), &gone);
    tw_deferred *dn = watched(tw_deferred_queue_get(q), &next);
    ck_assert_int_eq(tw_deferred_cancel(dg), 0);
    ck_assert_int_eq(gone.code, TW_ECANCELLED);
    ck_assert_uint_eq(tw_deferred_queue_waiting(q), 1);
    ck_assert_int_eq(tw_deferred_queue_put(q, new_int(8), free_int), 0);
    ck_assert_int_eq(next.calls, 1);
    ck_assert_int_eq(*(int *)next.value, 8);
    ck_assert_int_eq(tw_deferred_cancel(dg), 0); /* fired: nothing happens */
    ck_assert_int_eq(gone.calls, 1);
    tw_deferred_unref(dg);
    tw_deferred_unref(dn);
    tw_deferred_queue_free(q);
    ck_assert_int_eq(freed, 1);
}
END_TEST

static void free_queue_in_callback(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    (void)res;
    tw_deferred_queue_free(arg);
}

START_TEST(test_queue_freed_inside_a_getters_callback)
{
    tw_deferred_queue *q = tw_deferred_queue_new(TW_DEFERRED_QUEUE_UNBOUNDED,
                                                 TW_DEFERRED_QUEUE_UNBOUNDED);
    tw_deferred *first = tw_deferred_queue_get(q);
    ck_assert_int_eq(tw_deferred_add_callback(first, free_queue_in_callback, q), 0);
    probe rest = {0};
    tw_deferred *second = watched(tw_deferred_queue_get(q), &rest);
    ck_assert_int_eq(tw_deferred_queue_put(q, new_int(1), free_int), 0);
    ck_assert_int_eq(rest.code, TW_ECANCELLED);
    tw_deferred_unref(first);
    tw_deferred_unref(second);
    ck_assert_int_eq(freed, 1);
}
END_TEST

/* ---- maybe_deferred ------------------------------------------------------ */

START_TEST(test_maybe_deferred_wraps_a_value_a_failure_or_a_deferred)
{
    body value = {0}, failure = {.fail = 1};
    probe pv = {0}, pf = {0}, pd = {0};
    tw_deferred *dv = watched(tw_maybe_deferred(run_body, &value), &pv);
    ck_assert_int_eq(value.calls, 1);
    ck_assert_int_eq(*(int *)pv.value, 7);
    tw_deferred *df = watched(tw_maybe_deferred(run_body, &failure), &pf);
    ck_assert_int_eq(pf.code, TW_EFAIL);

    tw_deferred *later = tw_deferred_new(NULL, NULL);
    body async = {.wait_on = later};
    tw_deferred *dd = watched(tw_maybe_deferred(run_body, &async), &pd);
    ck_assert_int_eq(pd.calls, 0);
    tw_deferred_callback(later, new_int(4), free_int);
    ck_assert_int_eq(*(int *)pd.value, 4);
    tw_deferred_unref(later);
    tw_deferred_unref(dv);
    tw_deferred_unref(df);
    tw_deferred_unref(dd);
    ck_assert_int_eq(freed, 2);
    ck_assert_ptr_null(tw_maybe_deferred(NULL, NULL));
}
END_TEST

/* ---- DeferredList flags -------------------------------------------------- */

START_TEST(test_list_fire_on_one_callback_fires_at_the_first_value)
{
    tw_deferred *in[3] = {tw_deferred_new(NULL, NULL), tw_deferred_new(NULL, NULL),
                          tw_deferred_new(NULL, NULL)};
    tw_deferred *l = tw_deferred_list_full(in, 3, TW_DEFERRED_LIST_FIRE_ON_ONE_CALLBACK |
                                                       TW_DEFERRED_LIST_CONSUME_ERRORS);
    probe p = {0};
    watched(l, &p);
    tw_deferred_errback(in[0], tw_failure_new(TW_EFAIL, "first fails"));
    ck_assert_int_eq(p.calls, 0);
    tw_deferred_callback(in[2], new_int(2), free_int);
    ck_assert_int_eq(p.calls, 1);
    tw_deferred_outcomes *o = p.value;
    ck_assert_uint_eq(o->fired_by, 2);
    ck_assert_int_eq(o->items[2].ok, 1);
    ck_assert_int_eq(*(int *)o->items[2].value, 2);
    ck_assert_int_eq(o->items[0].ok, 0);
    ck_assert_int_eq(tw_failure_code(o->items[0].failure), TW_EFAIL);
    ck_assert_int_eq(o->items[1].ok, 0);
    ck_assert_ptr_null(o->items[1].failure);
    /* A later input keeps its own value. */
    probe late = {0};
    tw_deferred_callback(in[1], new_int(1), free_int);
    watched(in[1], &late);
    ck_assert_int_eq(*(int *)late.value, 1);
    tw_deferred_unref(l);
    ck_assert_int_eq(freed, 1);
    for (int i = 0; i < 3; i++)
        tw_deferred_unref(in[i]);
    ck_assert_int_eq(freed, 2);
}
END_TEST

START_TEST(test_list_fire_on_one_callback_with_every_input_failed_fires_with_all)
{
    tw_deferred *in[2] = {tw_deferred_new(NULL, NULL), tw_deferred_new(NULL, NULL)};
    probe p = {0};
    tw_deferred *l = watched(tw_deferred_list_full(in, 2, TW_DEFERRED_LIST_FIRE_ON_ONE_CALLBACK |
                                                              TW_DEFERRED_LIST_CONSUME_ERRORS),
                             &p);
    tw_deferred_errback(in[0], tw_failure_new(TW_EFAIL, "a"));
    tw_deferred_errback(in[1], tw_failure_new(TW_ETIMEDOUT, "b"));
    ck_assert_int_eq(p.calls, 1);
    ck_assert_int_eq(p.failed, 0);
    tw_deferred_outcomes *o = p.value;
    ck_assert_uint_eq(o->fired_by, o->count);
    ck_assert_int_eq(tw_failure_code(o->items[1].failure), TW_ETIMEDOUT);
    tw_deferred_unref(l);
    tw_deferred_unref(in[0]);
    tw_deferred_unref(in[1]);
}
END_TEST

START_TEST(test_list_without_consume_errors_leaves_failures_to_their_inputs)
{
    tw_deferred *in[1] = {tw_deferred_new(NULL, NULL)};
    probe p = {0}, own = {0};
    tw_deferred *l = watched(tw_deferred_list_full(in, 1, 0), &p);
    tw_deferred_errback(in[0], tw_failure_new(TW_EFAIL, "kept"));
    tw_deferred_outcomes *o = p.value;
    ck_assert_int_eq(tw_failure_code(o->items[0].failure), TW_EFAIL);
    watched(in[0], &own); /* the input's chain still has it */
    ck_assert_int_eq(own.failed, 1);
    ck_assert_int_eq(own.code, TW_EFAIL);
    tw_deferred_unref(l);
    tw_deferred_unref(in[0]);
}
END_TEST

static void read_first_error(tw_deferred *d, tw_result *res, void *arg)
{
    size_t *index = arg;
    (void)d;
    const tw_failure *f = tw_result_failure(res);
    ck_assert_int_eq(tw_failure_code(f), TW_EFAIL);
    ck_assert_int_eq(tw_deferred_gather_index(f, index), 0);
    ck_assert_str_eq(tw_failure_message(tw_failure_cause(f)), "second");
    tw_failure_unref(tw_result_take_failure(res));
}

START_TEST(test_list_fire_on_one_errback_wraps_the_first_failure)
{
    tw_deferred *in[2] = {tw_deferred_new(NULL, NULL), tw_deferred_new(NULL, NULL)};
    tw_deferred *l = tw_deferred_list_full(in, 2, TW_DEFERRED_LIST_FIRE_ON_ONE_ERRBACK |
                                                       TW_DEFERRED_LIST_CONSUME_ERRORS);
    size_t index = 99;
    ck_assert_int_eq(tw_deferred_add_errback(l, read_first_error, &index), 0);
    tw_deferred_errback(in[1], tw_failure_new(TW_EFAIL, "second"));
    ck_assert_uint_eq(index, 1);
    tw_deferred_callback(in[0], NULL, NULL);
    tw_deferred_unref(l);
    tw_deferred_unref(in[0]);
    tw_deferred_unref(in[1]);
}
END_TEST

START_TEST(test_list_full_refuses_unknown_flags)
{
    tw_deferred *in[1] = {tw_deferred_new(NULL, NULL)};
    ck_assert_ptr_null(tw_deferred_list_full(in, 1, 8));
    tw_deferred_callback(in[0], NULL, NULL);
    tw_deferred_unref(in[0]);
}
END_TEST

static Suite *concurrency_suite(void)
{
    Suite *s = suite_create("concurrency");
    TCase *tc = tcase_create("semaphore");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_semaphore_without_tokens_cannot_be_made);
    tcase_add_test(tc, test_semaphore_acquire_fires_at_once_while_tokens_remain);
    tcase_add_test(tc, test_semaphore_waiters_are_served_first_come_first_served);
    tcase_add_test(tc, test_semaphore_release_beyond_its_tokens_is_refused);
    tcase_add_test(tc, test_semaphore_cancelled_waiter_fails_and_takes_no_token);
    tcase_add_test(tc, test_semaphore_free_fails_its_waiters);
    tcase_add_test(tc, test_semaphore_run_releases_after_a_value);
    tcase_add_test(tc, test_semaphore_run_releases_after_a_failure);
    tcase_add_test(tc, test_semaphore_run_holds_the_token_until_its_deferred_fires);
    tcase_add_test(tc, test_semaphore_run_cancelled_while_waiting_never_runs);
    tcase_add_test(tc, test_semaphore_freed_while_a_run_waits_stays_valid_until_it_ends);
    suite_add_tcase(s, tc);

    tc = tcase_create("lock");
    tcase_set_timeout(tc, 60); /* sanitizer builds run the long chain slowly */
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_lock_is_held_by_one_at_a_time);
    tcase_add_test(tc, test_lock_released_inside_its_own_callbacks_serves_every_waiter);
    tcase_add_test(tc, test_lock_freed_inside_a_waiters_callback_fails_the_rest);
    tcase_add_test(tc, test_lock_run_holds_the_lock_while_it_runs);
    suite_add_tcase(s, tc);

    tc = tcase_create("queue");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_queue_get_then_put_fires_the_getter_with_the_value);
    tcase_add_test(tc, test_queue_items_wait_in_order_for_getters);
    tcase_add_test(tc, test_queue_put_beyond_size_overflows_and_the_caller_keeps_the_value);
    tcase_add_test(tc, test_queue_of_size_zero_only_hands_items_to_waiting_getters);
    tcase_add_test(tc, test_queue_get_beyond_backlog_underflows);
    tcase_add_test(tc, test_queue_cancelled_getter_takes_no_item);
    tcase_add_test(tc, test_queue_freed_inside_a_getters_callback);
    suite_add_tcase(s, tc);

    tc = tcase_create("maybe_deferred and list");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_maybe_deferred_wraps_a_value_a_failure_or_a_deferred);
    tcase_add_test(tc, test_list_fire_on_one_callback_fires_at_the_first_value);
    tcase_add_test(tc, test_list_fire_on_one_callback_with_every_input_failed_fires_with_all);
    tcase_add_test(tc, test_list_without_consume_errors_leaves_failures_to_their_inputs);
    tcase_add_test(tc, test_list_fire_on_one_errback_wraps_the_first_failure);
    tcase_add_test(tc, test_list_full_refuses_unknown_flags);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(concurrency_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
