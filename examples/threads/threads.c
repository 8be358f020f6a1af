/* SPDX-License-Identifier: MIT */
/*
 * threads: blocking work on the reactor's thread pool with
 * tw_defer_to_thread(), Twisted's deferToThread.
 *
 * The program counts the primes in [2, LIMIT) in chunks of CHUNK numbers.
 * Every chunk is one job handed to the pool, all at once: the pool runs
 * them on at most THREADS threads, which it starts as the work arrives,
 * and each job's result -- a count it allocates -- comes back to the
 * reactor's thread as the value of a deferred. The callbacks add the counts
 * up without a lock, because they all run on the reactor's thread; when the
 * last chunk reported, the reactor stops, which stops and joins the pool. A
 * timed call stops it after a minute anyway, so a lost result ends the
 * program with an error instead of hanging it.
 *
 *   threads [THREADS [LIMIT]]    defaults: 4 threads, LIMIT 200000
 *
 * It exits 0 when the total matches a count made afterwards on the main
 * thread alone. make check also runs it built with -fsanitize=thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <twine.h>

#define CHUNK 1000UL

/* Reactor-side state: only the reactor's thread touches it. */
typedef struct app {
    tw_reactor *r;
    unsigned long chunks, reported, total;
} app;

/* One job: its numbers, [lo, hi). Owned by the reactor's thread, lent to
 * the pool thread while the job runs, freed by the job's release. */
typedef struct chunk {
    app *a;
    unsigned long lo, hi;
} chunk;

static int is_prime(unsigned long n)
{
    for (unsigned long d = 2; d * d <= n; d++)
        if (n % d == 0)
            return 0;
    return n >= 2;
}

/* Runs on a pool thread: the count, as a value the deferred will own. */
static void *count_primes(void *arg, tw_free_fn *free_fn, tw_failure **failure)
{
    const chunk *c = arg;
    unsigned long *count = malloc(sizeof *count);
    if (count == NULL) {
        *failure = tw_failure_new(-ENOMEM, "no memory for the count of [%lu, %lu)", c->lo, c->hi);
        return NULL;
    }
    *count = 0;
    for (unsigned long n = c->lo; n < c->hi; n++)
        *count += (unsigned long)is_prime(n);
    *free_fn = free;
    return count;
}

/* Runs on the reactor's thread, once per chunk, with its count. */
static void on_count(tw_deferred *d, tw_result *res, void *arg)
{
    app *a = arg;
    (void)d;
    a->total += *(unsigned long *)tw_result_value(res);
    if (++a->reported == a->chunks)
        tw_reactor_stop(a->r);
}

static void on_error(tw_deferred *d, tw_result *res, void *arg)
{
    app *a = arg;
    (void)d;
    char text[256];
    tw_failure_format(tw_result_failure(res), text, sizeof text);
    fprintf(stderr, "threads: a chunk failed: %s\n", text);
    tw_failure_unref(tw_result_take_failure(res));
    tw_reactor_stop(a->r);
}

static void give_up(void *arg)
{
    app *a = arg;
    fprintf(stderr, "threads: only %lu of %lu chunks reported within a minute\n", a->reported,
            a->chunks);
    tw_reactor_stop(a->r);
}

int main(int argc, char **argv)
{
    app a = {0};
    long threads = argc > 1 ? atol(argv[1]) : 4;
    unsigned long limit = argc > 2 ? strtoul(argv[2], NULL, 10) : 200000;
    if (threads < 1 || threads > 64 || limit < 2) {
        fprintf(stderr, "usage: threads [THREADS (1-64) [LIMIT (>= 2)]]\n");
        return 2;
    }
    a.r = tw_reactor_new();
    if (a.r == NULL || tw_reactor_set_thread_pool_size(a.r, (size_t)threads) < 0 ||
        tw_reactor_call_later(a.r, 60, give_up, &a, NULL) < 0) {
        fprintf(stderr, "threads: cannot create the reactor\n");
        return 1;
    }
    for (unsigned long lo = 2; lo < limit; lo += CHUNK) {
        chunk *c = malloc(sizeof *c);
        if (c == NULL) {
            fprintf(stderr, "threads: out of memory\n");
            return 1;
        }
        *c = (chunk){.a = &a, .lo = lo, .hi = lo + CHUNK < limit ? lo + CHUNK : limit};
        tw_deferred *d = tw_defer_to_thread(a.r, count_primes, c, free);
        if (d == NULL || tw_deferred_add_callbacks(d, on_count, on_error, &a) < 0) {
            fprintf(stderr, "threads: cannot hand chunk [%lu, %lu) to the pool\n", c->lo, c->hi);
            return 1;
        }
        tw_deferred_unref(d); /* the pool holds it until it fires */
        a.chunks++;
    }
    printf("%lu chunks queued for at most %ld threads\n", a.chunks, threads);
    tw_reactor_run(a.r);
    printf("all %lu chunks done on %ld threads: %lu primes\n", a.reported, threads, a.total);
    tw_reactor_free(a.r);

    /* The check: the same count, made again on this thread alone. */
    unsigned long expected = 0;
    for (unsigned long n = 2; n < limit; n++)
        expected += (unsigned long)is_prime(n);
    int ok = a.reported == a.chunks && a.total == expected;
    printf("counted again: %lu primes below %lu: %s\n", expected, limit, ok ? "match" : "MISMATCH");
    return ok ? 0 : 1;
}
