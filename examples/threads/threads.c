/* SPDX-License-Identifier: MIT */
/*
 * threads: worker threads hand their results to the reactor with
 * tw_reactor_call_from_thread(), the one twine function that is safe to
 * call from any thread.
 *
 * Each of WORKERS threads counts the primes in its share of [2, LIMIT), one
 * chunk at a time, and sends every chunk's count to the reactor's thread as
 * a report it allocates and the reactor frees. The reactor adds the counts
 * up -- without a lock, because only its thread touches the totals -- and
 * when every worker has sent its last report it prints the totals and stops.
 * A timed call stops it after a minute anyway, so a lost report ends the
 * program with an error instead of hanging it.
 *
 *   threads [WORKERS [LIMIT]]    defaults: 4 workers, LIMIT 200000
 *
 * It exits 0 when the total matches a count made afterwards on the main
 * thread alone. make check runs it built with -fsanitize=thread as well.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <twine.h>

#define CHUNK 1000UL
#define MAX_WORKERS 64

typedef struct {
    struct app *app;
    int id;
    unsigned long lo, hi; /* this worker's numbers: [lo, hi) */
    pthread_t thread;
} worker;

/* Reactor-side state: only the reactor's thread writes it. */
typedef struct app {
    tw_reactor *r;
    int workers, finished;
    unsigned long total, reports, per_worker[MAX_WORKERS];
    worker w[MAX_WORKERS];
} app;

/* One chunk's result, made by a worker and freed by the reactor. */
typedef struct {
    worker *w;
    unsigned long primes;
    int last;
} report;

static int is_prime(unsigned long n)
{
    for (unsigned long d = 2; d * d <= n; d++)
        if (n % d == 0)
            return 0;
    return n >= 2;
}

/* Runs on the reactor's thread, in the order the reports were sent. */
static void on_report(void *arg)
{
    report *rep = arg;
    app *a = rep->w->app;
    a->total += rep->primes;
    a->reports++;
    a->per_worker[rep->w->id] += rep->primes;
    if (rep->last) {
        printf("worker %d: %lu primes in [%lu, %lu)\n", rep->w->id, a->per_worker[rep->w->id],
               rep->w->lo, rep->w->hi);
        if (++a->finished == a->workers) {
            printf("all %d workers done: %lu primes in %lu reports\n", a->workers, a->total,
                   a->reports);
            tw_reactor_stop(a->r);
        }
    }
    free(rep);
}

static void *work(void *arg)
{
    worker *w = arg;
    unsigned long lo = w->lo;
    do { /* at least one report, so an empty share still finishes */
        unsigned long hi = lo + CHUNK < w->hi ? lo + CHUNK : w->hi;
        report *rep = malloc(sizeof *rep);
        if (rep == NULL)
            return NULL; /* the reactor's time limit reports the loss */
        *rep = (report){.w = w, .last = hi == w->hi};
        for (unsigned long n = lo; n < hi; n++)
            rep->primes += (unsigned long)is_prime(n);
        if (tw_reactor_call_from_thread(w->app->r, on_report, rep) < 0) {
            free(rep);
            return NULL;
        }
        lo = hi;
    } while (lo < w->hi);
    return NULL;
}

static void give_up(void *arg)
{
    app *a = arg;
    fprintf(stderr, "threads: only %d of %d workers reported within a minute\n", a->finished,
            a->workers);
    tw_reactor_stop(a->r);
}

int main(int argc, char **argv)
{
    static app a; /* large; zeroed */
    a.workers = argc > 1 ? atoi(argv[1]) : 4;
    unsigned long limit = argc > 2 ? strtoul(argv[2], NULL, 10) : 200000;
    if (a.workers < 1 || a.workers > MAX_WORKERS || limit < 2) {
        fprintf(stderr, "usage: threads [WORKERS (1-%d) [LIMIT (>= 2)]]\n", MAX_WORKERS);
        return 2;
    }
    a.r = tw_reactor_new();
    if (a.r == NULL || tw_reactor_call_later(a.r, 60, give_up, &a, NULL) < 0) {
        fprintf(stderr, "threads: cannot create the reactor\n");
        return 1;
    }
    /* Workers may report before the loop runs; their calls wait in order. */
    for (int i = 0; i < a.workers; i++) {
        worker *w = &a.w[i];
        *w = (worker){.app = &a, .id = i, .lo = 2 + (limit - 2) * (unsigned long)i / a.workers,
                      .hi = 2 + (limit - 2) * (unsigned long)(i + 1) / a.workers};
        if (pthread_create(&w->thread, NULL, work, w) != 0) {
            fprintf(stderr, "threads: cannot start worker %d\n", i);
            return 1;
        }
    }
    tw_reactor_run(a.r);
    /* Join before freeing: a worker may still be inside call_from_thread. */
    for (int i = 0; i < a.workers; i++)
        pthread_join(a.w[i].thread, NULL);
    tw_reactor_free(a.r);

    /* The check: the same count, made again on this thread alone. */
    unsigned long expected = 0;
    for (unsigned long n = 2; n < limit; n++)
        expected += (unsigned long)is_prime(n);
    int ok = a.finished == a.workers && a.total == expected;
    printf("counted again: %lu primes below %lu: %s\n", expected, limit, ok ? "match" : "MISMATCH");
    return ok ? 0 : 1;
}
