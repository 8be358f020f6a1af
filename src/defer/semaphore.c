/* SPDX-License-Identifier: MIT */
/*
 * DeferredSemaphore and DeferredLock (a semaphore of one token): a count of
 * free tokens and a FIFO of waiting acquirers, each a deferred the
 * semaphore holds until it fires it.
 *
 * Tokens are handed out by one loop (hand_out); a release made while that
 * loop runs -- from a waiter's callback -- only adds the token back and
 * lets the loop pass it on, so a chain of waiters each releasing in its
 * callback costs no stack. The semaphore is reference-counted: its owner
 * holds one reference, the hand-out loop one while it runs, and each run()
 * one from acquiring to releasing, so freeing it from inside any of those
 * leaves the memory valid until the last of them lets go.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <twine/concurrency.h>

#include "defer/deferred_internal.h"

struct tw_deferred_semaphore {
    size_t refs;
    int freed;            /* the owner let go: hand nothing out any more */
    int handing;          /* hand_out() is on the stack */
    size_t tokens, limit; /* free tokens, and how many exist */
    void *self;           /* what acquirers receive: the semaphore or its lock */
    tw__waiters waiters;  /* first come first served */
};

/* The lock is a semaphore of one token; the semaphore comes first, so the
 * allocation's address is both. */
struct tw_deferred_lock {
    tw_deferred_semaphore sem;
};

static void sem_unref(tw_deferred_semaphore *s)
{
    if (--s->refs == 0)
        free(s);
}

static void hand_out(tw_deferred_semaphore *s)
{
    if (s->handing)
        return; /* the loop below is running and will see the token */
    s->handing = 1;
    s->refs++;
    while (!s->freed && s->tokens > 0 && s->waiters.list.head != NULL) {
        tw_deferred *d = tw__waiters_shift(&s->waiters);
        s->tokens--;
        tw_deferred_callback(d, s->self, NULL);
        tw_deferred_unref(d);
    }
    s->handing = 0;
    sem_unref(s);
}

static void sem_init(tw_deferred_semaphore *s, size_t tokens, void *self)
{
    *s = (tw_deferred_semaphore){.refs = 1, .tokens = tokens, .limit = tokens, .self = self};
}

TW_API tw_deferred_semaphore *tw_deferred_semaphore_new(size_t tokens)
{
    if (tokens == 0)
        return NULL;
    tw_deferred_semaphore *s = malloc(sizeof *s);
    if (s != NULL)
        sem_init(s, tokens, s);
    return s;
}

TW_API void tw_deferred_semaphore_free(tw_deferred_semaphore *s)
{
    if (s == NULL || s->freed)
        return;
    s->freed = 1;
    s->refs++; /* an errback below may release a run's token */
    tw_deferred *d;
    while ((d = tw__waiters_shift(&s->waiters)) != NULL) {
        tw_deferred_errback(d, tw_failure_new(TW_ECANCELLED, "semaphore freed while waiting"));
        tw_deferred_unref(d);
    }
    s->refs--; /* the owner's; ours is still held, so this is never the last */
    sem_unref(s);
}

TW_API tw_deferred *tw_deferred_semaphore_acquire(tw_deferred_semaphore *s)
{
    if (s->tokens > 0 && s->waiters.list.head == NULL) {
        tw_deferred *d = tw_deferred_succeed(s->self, NULL);
        if (d != NULL)
            s->tokens--;
        return d;
    }
    return tw__waiters_add(&s->waiters, __FILE__, __LINE__);
}

TW_API int tw_deferred_semaphore_release(tw_deferred_semaphore *s)
{
    if (s->tokens >= s->limit)
        return TW_ESTATE;
    s->tokens++;
    hand_out(s);
    return 0;
}

/* A run() holds the semaphore from acquiring to releasing; this is the
 * release, as the arg_free of the entry watching what fn made, so it comes
 * whether that entry runs or its deferred is dropped unfired. */
static void run_release(void *arg)
{
    tw_deferred_semaphore *s = arg;
    tw_deferred_semaphore_release(s);
    sem_unref(s);
}

typedef struct run_ctx {
    tw_deferred_semaphore *s;
    tw_deferred_fn fn;
    void *arg;
} run_ctx;

static void run_acquired(tw_deferred *d, tw_result *res, void *arg)
{
    run_ctx *c = arg;
    (void)d;
    tw_deferred_semaphore *s = c->s;
    s->refs++;
    tw_deferred *inner = tw_maybe_deferred(c->fn, c->arg);
    if (inner == NULL) {
        run_release(s);
        tw_result_set_failure(res, tw_failure_new(-ENOMEM, "semaphore run: out of memory"));
        return;
    }
    if (tw_deferred_add_callbacks_full(inner, NULL, NULL, s, run_release) < 0)
        run_release(s); /* cannot watch it: give the token back now */
    tw_result_set_deferred(res, inner);
    tw_deferred_unref(inner);
}

TW_API tw_deferred *tw_deferred_semaphore_run(tw_deferred_semaphore *s, tw_deferred_fn fn,
                                              void *arg)
{
    if (fn == NULL)
        return NULL;
    run_ctx *c = malloc(sizeof *c);
    if (c == NULL)
        return NULL;
    *c = (run_ctx){.s = s, .fn = fn, .arg = arg};
    tw_deferred *d = tw_deferred_semaphore_acquire(s);
    if (d == NULL) {
        free(c);
        return NULL;
    }
    if (tw_deferred_add_callbacks_full(d, run_acquired, NULL, c, free) < 0) {
        free(c);
        /* Undo the acquire: a token taken goes back, a wait is withdrawn. */
        if (tw_deferred_called(d)) {
            tw_deferred_semaphore_release(s);
        } else {
            tw_deferred_cancel(d);
        }
        tw_deferred_unref(d);
        return NULL;
    }
    return d;
}

TW_API size_t tw_deferred_semaphore_tokens(const tw_deferred_semaphore *s)
{
    return s->tokens;
}

TW_API size_t tw_deferred_semaphore_waiting(const tw_deferred_semaphore *s)
{
    return s->waiters.list.count;
}

TW_API tw_deferred_lock *tw_deferred_lock_new(void)
{
    tw_deferred_lock *l = malloc(sizeof *l);
    if (l != NULL)
        sem_init(&l->sem, 1, l);
    return l;
}

TW_API void tw_deferred_lock_free(tw_deferred_lock *l)
{
    if (l != NULL)
        tw_deferred_semaphore_free(&l->sem);
}

TW_API tw_deferred *tw_deferred_lock_acquire(tw_deferred_lock *l)
{
    return tw_deferred_semaphore_acquire(&l->sem);
}

TW_API int tw_deferred_lock_release(tw_deferred_lock *l)
{
    return tw_deferred_semaphore_release(&l->sem);
}

TW_API tw_deferred *tw_deferred_lock_run(tw_deferred_lock *l, tw_deferred_fn fn, void *arg)
{
    return tw_deferred_semaphore_run(&l->sem, fn, arg);
}

TW_API int tw_deferred_lock_locked(const tw_deferred_lock *l)
{
    return l->sem.tokens == 0;
}
