/* SPDX-License-Identifier: MIT */
/*
 * Private state of the reactor, shared by the files that implement it:
 * reactor.c (loop, stop, signals), timer.c (timed calls), the poller
 * (poller_internal.h), and the hooks upper layers register with: closeables
 * (connections and listening ports) that stop and free must reach, and
 * services (the thread pool) that stop and free must tell. The reactor
 * calls them through their ops and knows none of them by name.
 */
#ifndef TWINE_REACTOR_INTERNAL_H
#define TWINE_REACTOR_INTERNAL_H

#include <pthread.h>
#include <stdint.h>
#include <twine/reactor.h>

struct event;
struct tw__poller;
struct tw__outq;

/* Size of the one read buffer a reactor lends to every stream read. */
#define TW__READ_SIZE 65536

#include "core/list_internal.h"

/* Anything the reactor must close on stop or free registers one of these. */
typedef struct tw__closeable tw__closeable;
typedef struct tw__closeable_ops {
    /* Begin a graceful close (flush, then close). */
    void (*lose)(tw__closeable *c);
    /* Close now; must unregister @p c before returning. */
    void (*abort)(tw__closeable *c);
    /* Connections that hold input (NULL for the others): how many bytes
     * their protocol holds, counted in r->input_held... */
    size_t (*held)(tw__closeable *c);
    /* ...and close because the reactor's input budget is exceeded, giving
     * back all of it (held is 0 afterwards). */
    void (*shed)(tw__closeable *c);
} tw__closeable_ops;

struct tw__closeable {
    tw__link link;
    const tw__closeable_ops *ops;
};

/* Something of an upper layer that lives as long as the reactor and must
 * hear of its stop and free (the thread pool). */
typedef struct tw__service tw__service;
typedef struct tw__service_ops {
    /* The "during" shutdown phase began, before listeners close; may count
     * what it waits for in r->phase_waiting (tw__shutdown_step_done).
     * NULL when there is nothing to do then. */
    void (*stop)(tw__service *s);
    /* tw_reactor_free(): release everything, @p s included. */
    void (*free)(tw__service *s);
} tw__service_ops;

struct tw__service {
    tw__service *next;
    const tw__service_ops *ops;
};

/* Writes an upper layer holds back while a dispatch runs and passes down
 * when the outermost one returns, before the streams send their batches
 * (the TLS layer: the plaintext written in one callback becomes one record,
 * not one per write). On r->held_writes while @c queued. */
typedef struct tw__held_write {
    tw__link link;
    void (*release)(struct tw__held_write *w); /* pass the held writes down */
    int queued;
} tw__held_write;

typedef struct tw__timer_heap {
    tw_call **items;
    size_t count, cap;
} tw__timer_heap;

/* The system events triggers belong to. */
enum { TW__EVENT_SHUTDOWN, TW__EVENT_STARTUP };

/* Where startup stands (startup.c). */
enum {
    TW__STARTUP_NONE,        /* not begun: run, or the first loop pass, begins it */
    TW__STARTUP_IN_PROGRESS, /* its phases are running */
    TW__STARTUP_DONE,        /* every phase ran */
    TW__STARTUP_ABANDONED    /* a stop came first; NONE again once it completes */
};

/* A system event trigger (triggers.c): @c fn, or for call_when_running a
 * plain @c call that returns nothing. */
typedef struct tw__trigger {
    struct tw__trigger *next;
    int event;
    tw_trigger_phase phase;
    tw_trigger_fn fn;
    tw_call_fn call;
    void *arg;
    tw_trigger_id id;
} tw__trigger;

/* A call handed over by tw_reactor_call_from_thread() (threads.c), or a
 * node embedded in its owner (the thread pool's), which the queue never
 * frees. */
typedef struct tw__thread_call {
    struct tw__thread_call *next;
    tw_call_fn fn;
    tw_call_fn release; /* runs instead of fn if the reactor is freed first */
    void *arg;
    int embedded;
} tw__thread_call;

typedef struct tw__thread_queue {
    pthread_mutex_t lock;
    tw__thread_call *head, *tail;
    int wake_read, wake_write; /* eventfd: both the same descriptor */
    struct tw__thread_wake *wake; /* watches wake_read (threads.c) */
} tw__thread_queue;

struct tw_reactor {
    struct event_base *base;
    int owns_base;
    int running;
    int stopping;
    double shutdown_timeout;
    double linger_timeout; /* how long a closing stream waits for the peer's EOF */
    size_t input_budget;   /* bytes of input protocols may hold in all; 0: none */
    size_t input_held;     /* what they hold now (tw__closeable_ops.held) */
    double (*clock)(void *arg); /* replaced by tests' fake clock */
    void *clock_arg;

    tw__timer_heap timers;
    uint64_t next_seq;
    struct event *timer_ev;
    tw_call *drain_call; /* fires when the shutdown timeout passes */

    tw__list conns;     /* tw__closeable of open connections */
    tw__list listeners; /* tw__closeable of listening ports */

    struct event *sig_int, *sig_term;
    struct event *iterate_ev; /* bounds tw_reactor_iterate()'s wait */
    unsigned char *read_buf; /* TW__READ_SIZE bytes, lent to stream reads */

    tw__trigger *triggers;  /* in the order they were added */
    tw_trigger_id next_trigger_id;
    int phase;              /* shutdown phase running, -1 before stop */
    size_t phase_waiting;   /* deferreds (and drains) the phase waits for */
    int draining;           /* the "during" phase waits for connections */
    tw__link *trigger_waits; /* trigger deferreds the stop waits for (triggers.c) */

    /* How many of twine's callbacks of this reactor are on the stack (an
     * event dispatch, a stop, a free): tw_reactor_free() is refused there,
     * since the code under those callbacks still uses the reactor. */
    int depth;
    int freeing;

    int startup;            /* TW__STARTUP_* */
    int startup_phase;      /* startup phase running */
    size_t startup_waiting; /* deferreds that phase waits for */
    unsigned startup_gen;   /* changes when a startup begins or is abandoned */
    int is_running;         /* tw_reactor_running() */
    struct event *startup_ev; /* begins startup on a host's first loop pass */

    tw__thread_queue threads;
    struct tw__pool *pool; /* threadpool.c; NULL until work first arrives */
    size_t pool_size;      /* the pool's bound on threads */
    tw__service *services; /* most recent first */

    struct tw__poller *poller; /* every descriptor's readiness (poller_internal.h) */

    /* Writes made inside a dispatch are gathered per stream (the batch,
     * owned by src/net) and sent by flush_batch when the outermost
     * dispatch returns: see tw__leave(). src/net sets the hook with its
     * first stream. */
    struct tw__outq *batch;
    void (*flush_batch)(tw_reactor *r);
    /* What the streams of the reactor share, and the counters of those no
     * listener accepted (src/net's stream.c); NULL before the first stream. */
    struct tw__streams *streams;
    struct tw__outq *spare_outq; /* emptied queues kept for reuse */
    unsigned spare_outq_count;
    size_t spare_outq_bytes; /* their buffers' capacity, bounded */
    tw__list held_writes; /* tw__held_write: released first, by tw__flush_writes() */
};

/* Bracket a dispatch into code that may call back the user (see depth). */
static inline void tw__enter(tw_reactor *r)
{
    r->depth++;
}

/* Release the held writes, then send the batches (see tw__leave). */
void tw__flush_writes(tw_reactor *r);

static inline void tw__leave(tw_reactor *r)
{
    /* Leaving the outermost dispatch: what was written inside it goes out
     * now, one system call per connection. */
    if (--r->depth == 0 && (r->batch != NULL || r->held_writes.head != NULL))
        tw__flush_writes(r);
}

/* Hold @p w's writes until the outermost dispatch returns. Idempotent. */
void tw__hold_writes(tw_reactor *r, tw__held_write *w);
/* Forget @p w (its owner is going away). Idempotent. */
void tw__unhold_writes(tw_reactor *r, tw__held_write *w);

void tw__reactor_register_conn(tw_reactor *r, tw__closeable *c);
void tw__reactor_unregister_conn(tw_reactor *r, tw__closeable *c);
void tw__reactor_register_listener(tw_reactor *r, tw__closeable *c);
void tw__reactor_unregister_listener(tw_reactor *r, tw__closeable *c);

/* Over the input budget: shed, in order, the connection that holds the
 * most (tw__closeable_ops.shed), until the total is back under it. */
void tw__reactor_enforce_budget(tw_reactor *r);

/* Tell @p s of the reactor's stop and free from now on. */
void tw__reactor_add_service(tw_reactor *r, tw__service *s);

/* timer.c */
int tw__timers_init(tw_reactor *r);
void tw__timers_free(tw_reactor *r);
void tw__timers_cancel_all(tw_reactor *r);
double tw__monotonic(void *unused);

/* threads.c */
int tw__threads_init(tw_reactor *r);
void tw__threads_free(tw_reactor *r);

/* threads.c: queue @p c (fn and arg set, embedded) to run on the reactor's
 * thread, as tw_reactor_call_from_thread() does; safe from any thread. */
void tw__threads_post(tw_reactor *r, tw__thread_call *c);
/* threads.c: take @p c back out of the queue if it is there. */
void tw__threads_unpost(tw_reactor *r, tw__thread_call *c);

/* triggers.c: add a trigger of @p event (TW__EVENT_*) running @p fn, or
 * @p call when @p fn is NULL. @return 0, -EINVAL or -ENOMEM. */
int tw__triggers_add(tw_reactor *r, int event, tw_trigger_phase phase, tw_trigger_fn fn,
                     tw_call_fn call, void *arg, tw_trigger_id *id);
/* What a phase's sequencer is told when a deferred it waited for fired:
 * @p gen is the startup generation at the time the phase ran. */
typedef void (*tw__trigger_done_fn)(tw_reactor *r, unsigned gen);
/* triggers.c: run the triggers of @p event's @p phase; each deferred they
 * return counts in phase_waiting (shutdown) or startup_waiting (startup)
 * until it fires, then @p done is called. */
void tw__triggers_run(tw_reactor *r, int event, tw_trigger_phase phase,
                      tw__trigger_done_fn done);
void tw__triggers_free(tw_reactor *r);

/* startup.c */
int tw__startup_init(tw_reactor *r);
void tw__startup_free(tw_reactor *r);
/* Begin startup unless it began already or the reactor is stopping. */
void tw__startup_begin(tw_reactor *r);
/* One thing the current startup phase waited for is done (@p gen: the
 * startup it belonged to). */
void tw__startup_step_done(tw_reactor *r, unsigned gen);
/* The shutdown's "during" phase began: not running any more. */
void tw__startup_stop(tw_reactor *r);
/* Shutdown completed: the next tw_reactor_run() starts up again. */
void tw__startup_reset(tw_reactor *r);

/* reactor.c: one of the things the current phase waits for is done. */
void tw__shutdown_step_done(tw_reactor *r);

#endif
