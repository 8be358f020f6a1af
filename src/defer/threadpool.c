/* SPDX-License-Identifier: MIT */
/*
 * The reactor's thread pool (twine/threadpool.h): a FIFO of jobs under one
 * mutex, worker threads that take jobs from it, and a second list of
 * finished jobs that the reactor's thread collects.
 *
 * Hand-over. A worker that finishes a job appends it to the done list and,
 * unless a delivery is already pending, posts the pool's one embedded
 * tw__thread_call through the reactor's call_from_thread queue, so handing
 * results back never allocates on a worker. deliver() takes the whole done
 * list at once and, on the reactor's thread, runs each job's release, fires
 * its deferred and frees it.
 *
 * Ownership. The pool owns a job from submission to delivery or drop. A
 * job of tw_defer_to_thread() is also its deferred's canceller argument, so
 * it is counted: one reference for the pool, one for the deferred (let go
 * when the deferred fires or is released). Reference counts and deferreds
 * are touched on the reactor's thread only; workers touch a job's work and
 * result fields, handed over under the mutex.
 *
 * Stop. In the "during" shutdown phase the pool refuses new work, lets the
 * queue run dry and, once every job was delivered, joins its threads and
 * tells the reactor (tw__shutdown_step_done). tw_reactor_free() instead
 * drops what has not started and joins after the running jobs. The pool
 * hears of both as a service of the reactor (reactor_internal.h).
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <twine/threadpool.h>

#include "defer/deferred_internal.h"
#include "core/list_internal.h"
#include "core/reactor_internal.h"

enum job_state { QUEUED, RUNNING, DONE };

typedef struct job {
    tw__link link; /* first: a job is its link, on the queue or the done list */
    struct tw__pool *pool; /* NULL once delivered or dropped */
    int refs;
    enum job_state state;
    tw_thread_fn fn;    /* tw_defer_to_thread() */
    tw_call_fn call;    /* tw_call_in_thread() */
    void *arg;
    tw_call_fn release;
    tw_deferred *d; /* the pool's hold, for tw_defer_to_thread() */
    void *value;    /* the result, written by the worker */
    tw_free_fn free_fn;
    tw_failure *failure;
} job;

typedef struct tw__pool {
    tw__service service; /* first: the reactor's stop and free reach it */
    tw_reactor *r;
    pthread_mutex_t lock;
    pthread_cond_t work; /* signalled when a job or a stop arrives */
    /* Under lock: */
    tw__list queue, done;
    size_t busy;          /* jobs running */
    size_t live;          /* threads alive */
    size_t max;           /* copy of r->pool_size for the workers */
    int stopping;         /* workers exit once the queue is empty */
    int posted;           /* the delivery node is in the reactor's queue */
    /* Reactor thread only: */
    pthread_t *threads;   /* every thread started and not yet joined */
    size_t nthreads, cap;
    int phase_held;       /* counted in r->phase_waiting */
    tw__thread_call post;
} tw__pool;

static void job_unref(job *j)
{
    if (--j->refs == 0)
        free(j);
}

static void job_unref_cb(void *arg)
{
    job_unref(arg);
}

/* ---- Workers ------------------------------------------------------------ */

static void run_job(job *j)
{
    if (j->call != NULL) {
        j->call(j->arg);
        return;
    }
    tw_free_fn free_fn = NULL;
    tw_failure *failure = NULL;
    void *value = j->fn(j->arg, &free_fn, &failure);
    if (failure != NULL && free_fn != NULL)
        free_fn(value); /* a failure wins; the value has no owner */
    j->value = failure != NULL ? NULL : value;
    j->free_fn = failure != NULL ? NULL : free_fn;
    j->failure = failure;
}

static void *worker(void *arg)
{
    tw__pool *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (p->queue.head == NULL && !p->stopping && p->live <= p->max)
            pthread_cond_wait(&p->work, &p->lock);
        if (p->queue.head == NULL || p->live > p->max)
            break; /* stopping with nothing left, or a surplus thread */
        job *j = (job *)tw__list_shift(&p->queue);
        j->state = RUNNING;
        p->busy++;
        pthread_mutex_unlock(&p->lock);
        run_job(j);
        pthread_mutex_lock(&p->lock);
        p->busy--;
        j->state = DONE;
        tw__list_append(&p->done, &j->link);
        if (!p->posted) {
            p->posted = 1;
            tw__threads_post(p->r, &p->post);
        }
    }
    p->live--;
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* Start one more thread; called with the lock held. @return 0 or -errno. */
static int spawn(tw__pool *p)
{
    if (p->nthreads == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 4;
        pthread_t *t = realloc(p->threads, cap * sizeof *t);
        if (t == NULL)
            return -ENOMEM;
        p->threads = t;
        p->cap = cap;
    }
    /* Signals belong to the reactor's thread: workers start with all blocked. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&p->threads[p->nthreads], NULL, worker, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return -rc;
    p->nthreads++;
    p->live++;
    return 0;
}

/* ---- The reactor's side ------------------------------------------------- */

static void join_all(tw__pool *p)
{
    for (size_t i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    p->nthreads = 0;
}

/* Hand a finished job's outcome over; the job leaves the pool. A
 * tw_call_in_thread() job ran instead of its release, so it has none here. */
static void finish(job *j)
{
    j->pool = NULL;
    if (j->release != NULL && j->call == NULL)
        j->release(j->arg);
    tw_deferred *d = j->d;
    j->d = NULL;
    if (d != NULL) {
        if (tw_deferred_called(d)) {
            /* Cancelled while it ran: the result has nobody to go to. */
            if (j->free_fn != NULL)
                j->free_fn(j->value);
            tw_failure_unref(j->failure);
        } else if (j->failure != NULL) {
            tw_deferred_errback(d, j->failure);
        } else {
            tw_deferred_callback(d, j->value, j->free_fn);
        }
        tw_deferred_unref(d);
    }
    job_unref(j);
}

/* A job that will not run: release its argument, let its deferred go. */
static void drop(job *j)
{
    j->pool = NULL;
    if (j->release != NULL)
        j->release(j->arg);
    tw_deferred_unref(j->d);
    j->d = NULL;
    if (j->free_fn != NULL)
        j->free_fn(j->value);
    tw_failure_unref(j->failure);
    job_unref(j);
}

/* Once a stopping pool has nothing left, its threads are on their way out. */
static void maybe_stopped(tw__pool *p)
{
    pthread_mutex_lock(&p->lock);
    int drained = p->stopping && p->queue.head == NULL && p->busy == 0 && p->done.head == NULL;
    pthread_mutex_unlock(&p->lock);
    if (!drained)
        return;
    join_all(p);
    pthread_mutex_lock(&p->lock);
    p->stopping = 0; /* the next work after the reactor ran again restarts it */
    pthread_mutex_unlock(&p->lock);
    if (p->phase_held) {
        p->phase_held = 0;
        tw__shutdown_step_done(p->r);
    }
}

static void deliver(void *arg)
{
    tw__pool *p = arg;
    pthread_mutex_lock(&p->lock);
    tw__list done = p->done;
    p->done = (tw__list){0};
    p->posted = 0;
    pthread_mutex_unlock(&p->lock);
    job *j;
    while ((j = (job *)tw__list_shift(&done)) != NULL)
        finish(j);
    maybe_stopped(p);
}

static const tw__service_ops pool_service_ops;

static tw__pool *pool_get(tw_reactor *r)
{
    if (r->pool != NULL)
        return r->pool;
    tw__pool *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    if (pthread_mutex_init(&p->lock, NULL) != 0) {
        free(p);
        return NULL;
    }
    if (pthread_cond_init(&p->work, NULL) != 0) {
        pthread_mutex_destroy(&p->lock);
        free(p);
        return NULL;
    }
    p->r = r;
    p->max = r->pool_size;
    p->post = (tw__thread_call){.fn = deliver, .arg = p, .embedded = 1};
    p->service.ops = &pool_service_ops;
    tw__reactor_add_service(r, &p->service);
    r->pool = p;
    return p;
}

/* The "during" phase began, or later: new work is refused until run returns. */
static int refusing(const tw_reactor *r)
{
    return r->stopping && r->phase != TW_TRIGGER_BEFORE;
}

/* Start threads while queued jobs outnumber the threads not running one
 * (idle, or started and not yet waiting) and the bound allows; called with
 * the lock held. @return 0, or -errno when not even one thread exists. */
static int grow(tw__pool *p)
{
    int rc = 0;
    while (p->queue.count > p->live - p->busy && p->live < p->max && (rc = spawn(p)) == 0)
        ;
    return p->live > 0 ? 0 : rc;
}

/* Queue @p j for the workers. @return 0 or -errno (then it is not queued). */
static int submit(tw_reactor *r, job *j)
{
    tw__pool *p = pool_get(r);
    if (p == NULL)
        return -ENOMEM;
    j->pool = p;
    j->state = QUEUED;
    pthread_mutex_lock(&p->lock);
    tw__list_append(&p->queue, &j->link);
    int rc = grow(p);
    if (rc < 0)
        tw__list_remove(&p->queue, &j->link);
    else
        pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->lock);
    return rc;
}

/* Canceller of tw_defer_to_thread()'s deferred: a job still queued leaves
 * the queue; one already running cannot be stopped, and finish() destroys
 * its result. */
static void cancel_job(tw_deferred *d, void *arg)
{
    job *j = arg;
    (void)d;
    tw__pool *p = j->pool;
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->lock);
    int queued = j->state == QUEUED;
    if (queued)
        tw__list_remove(&p->queue, &j->link);
    pthread_mutex_unlock(&p->lock);
    if (queued)
        drop(j);
}

TW_API tw_deferred *tw_defer_to_thread(tw_reactor *r, tw_thread_fn fn, void *arg,
                                       tw_call_fn release)
{
    if (fn == NULL)
        return NULL;
    if (refusing(r))
        return tw_deferred_fail(tw_failure_new(TW_ESHUTDOWN, "defer_to_thread: the reactor is stopping"));
    job *j = calloc(1, sizeof *j);
    if (j == NULL)
        return NULL;
    *j = (job){.refs = 2, .fn = fn, .arg = arg, .release = release};
    tw_deferred *d = tw__deferred_new_full(cancel_job, j, job_unref_cb, __FILE__, __LINE__);
    if (d == NULL) {
        free(j);
        return NULL;
    }
    j->d = tw_deferred_ref(d);
    if (submit(r, j) < 0) {
        j->release = NULL; /* the caller keeps arg */
        j->pool = NULL;
        tw_deferred_unref(j->d);
        j->d = NULL;
        job_unref(j);
        /* The deferred never fired and nobody can fire it: release it. The
         * canceller's reference goes with it. */
        tw_deferred_unref(d);
        return NULL;
    }
    return d;
}

TW_API int tw_call_in_thread(tw_reactor *r, tw_call_fn fn, void *arg, tw_call_fn release)
{
    if (fn == NULL)
        return -EINVAL;
    if (refusing(r))
        return TW_ESHUTDOWN;
    job *j = calloc(1, sizeof *j);
    if (j == NULL)
        return -ENOMEM;
    *j = (job){.refs = 1, .call = fn, .arg = arg, .release = release};
    int rc = submit(r, j);
    if (rc < 0)
        free(j);
    return rc;
}

/* The "during" shutdown phase: finish the queue, counting in phase_waiting. */
static void pool_stop(tw__service *s)
{
    tw__pool *p = (tw__pool *)s;
    tw_reactor *r = p->r;
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    r->phase_waiting++; /* until maybe_stopped() sees the queue run dry */
    p->phase_held = 1;
    maybe_stopped(p);
}

static void pool_free(tw__service *s)
{
    tw__pool *p = (tw__pool *)s;
    tw_reactor *r = p->r;
    r->pool = NULL;
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    tw__list queued = p->queue;
    p->queue = (tw__list){0};
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    join_all(p); /* waits for the jobs running now */
    if (p->posted)
        tw__threads_unpost(r, &p->post); /* the delivery will not run */
    job *j;
    while ((j = (job *)tw__list_shift(&queued)) != NULL)
        drop(j);
    /* Finished but not delivered: the reactor is going, so is the result. */
    while ((j = (job *)tw__list_shift(&p->done)) != NULL)
        drop(j);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->lock);
    free(p->threads);
    free(p);
}

static const tw__service_ops pool_service_ops = {pool_stop, pool_free};

TW_API int tw_reactor_set_thread_pool_size(tw_reactor *r, size_t threads)
{
    if (threads == 0)
        return -EINVAL;
    r->pool_size = threads;
    tw__pool *p = r->pool;
    if (p != NULL) {
        pthread_mutex_lock(&p->lock);
        p->max = threads;
        /* Surplus idle threads exit; queued work may start more threads. */
        pthread_cond_broadcast(&p->work);
        grow(p);
        pthread_mutex_unlock(&p->lock);
    }
    return 0;
}

TW_API size_t tw_reactor_thread_pool_size(const tw_reactor *r)
{
    return r->pool_size;
}

TW_API size_t tw_reactor_thread_pool_threads(tw_reactor *r)
{
    tw__pool *p = r->pool;
    if (p == NULL)
        return 0;
    pthread_mutex_lock(&p->lock);
    size_t n = p->live;
    pthread_mutex_unlock(&p->lock);
    return n;
}
