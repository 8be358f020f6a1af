/* SPDX-License-Identifier: MIT */
/*
 * What the files of an AMP connection share: the factory that builds it,
 * the responder table it dispatches to, the connection itself, and the
 * functions one part calls in another.
 *
 *   amp_factory.c     the factory: limits, callbacks, building connections
 *   amp_dispatcher.c  the responder table, by command name
 *   amp_connection.c  the protocol: reading boxes, routing them, sending
 *                     boxes, pausing, closing, losing the connection
 *   amp_requests.c    incoming commands: running responders, answering
 *   amp_calls.c       outgoing calls, waiting for their answers
 *   amp_call_table.c  the outstanding calls indexed by their _ask tag
 *   amp_call_stats.c  the calls made, counted by command and outcome
 *   amp_switch.c      protocol switches: handing the transport over
 *   amp_tls.c         StartTLS: switching the transport to TLS, both sides
 *   amp_errors.c      AMP errors as failures
 *
 * One connection is used from one thread, the reactor's; nothing here locks.
 */
#ifndef TWINE_AMP_CONN_INTERNAL_H
#define TWINE_AMP_CONN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <twine/amp.h>
#include <twine/tls.h>

#include "core/list_internal.h"

/* Look up a key given as a string literal, without measuring it each time. */
#define TW__AMP_GET(box, key, len) tw_amp_box_getn((box), (key), sizeof(key) - 1, (len))

/* ------------------------------------------------------------ dispatcher */

typedef struct tw__amp_responder {
    const tw_amp_command *command;
    tw_amp_responder_fn fn;
    void *arg;
    unsigned long long outcomes[TW_AMP_OUTCOMES]; /* requests, by how they ended */
} tw__amp_responder;

struct tw_amp_dispatcher {
    tw__amp_responder *items;
    size_t count, cap;
    unsigned long long unhandled; /* requests for commands nobody registered */
    tw_tls_context *tls; /* StartTLS's server context, referenced, or NULL */
};

/* Count a request for the @p i th command of @p d as ending with @p o. */
static inline void tw__amp_count(tw_amp_dispatcher *d, size_t i, tw_amp_outcome o)
{
    d->items[i].outcomes[o]++;
}

/* The responder of the command named @p name (@p len bytes), or NULL. */
const tw__amp_responder *tw__amp_dispatcher_lookup(const tw_amp_dispatcher *d, const char *name,
                                                   size_t len);
/* Free the table; @p d itself is its owner's. */
void tw__amp_dispatcher_release(tw_amp_dispatcher *d);

/* ------------------------------------------------------------ call counters */

/* The calls made to one command name, by outcome. */
typedef struct tw__amp_called {
    char *name; /* owned */
    unsigned long long outcomes[TW_AMP_CALL_OUTCOMES];
} tw__amp_called;

/* The calls a factory's connections made, one entry per command name in
 * the order first called; zero-initialised is empty. */
typedef struct tw__amp_call_stats {
    tw__amp_called *items;
    size_t count, cap;
} tw__amp_call_stats;

/* Count a call to @p name as ending with @p o. A name that finds no
 * memory for its entry goes uncounted. */
void tw__amp_count_call(tw__amp_call_stats *s, const char *name, tw_amp_call_outcome o);
/* Free the entries; @p s itself is its owner's. */
void tw__amp_call_stats_release(tw__amp_call_stats *s);

/* ------------------------------------------------------------ factory */

typedef struct tw__amp_factory {
    tw_factory base;
    tw_amp_dispatcher dispatcher;
    tw__amp_call_stats calls; /* the calls its connections made */
    size_t max_box, max_pending;
    tw_amp_connected_fn connected;
    tw_amp_lost_fn lost;
    void *cb_arg;
} tw__amp_factory;

/* A new connection for @p f (amp_connection.c), or NULL when memory runs out. */
tw_protocol *tw__amp_connection_new(tw__amp_factory *f);

/* ------------------------------------------------------------ call table */

typedef struct tw__amp_call {
    tw__link link;                 /* in the connection's calls, newest first */
    uint64_t tag;                  /* the _ask tag, sent as lowercase hex */
    tw_deferred *d;                /* our reference, until we fire it */
    const tw_amp_command *command; /* NULL for a raw call */
    tw_factory *switch_to;         /* a protocol switch's factory (counted a user), or NULL */
    char name[];                   /* the command's name, for messages */
} tw__amp_call;

/*
 * The outstanding calls of one connection, found by tag in constant time:
 * an open-addressed table of the calls (Fibonacci hashing of the tags,
 * which the connection hands out itself, so a peer cannot choose where
 * they land), at least twice as large as the calls it holds and at most
 * eight times (a minimum of 8 slots), plus the list, in the order the calls
 * were made, that a lost connection fails them in. Zero-initialised is empty.
 */
typedef struct tw__amp_call_table {
    tw__amp_call **slots;
    unsigned bits; /* slots has 1 << bits entries, or is NULL */
    tw__list list;
} tw__amp_call_table;

/* Make room for one more call. @return 0 or -ENOMEM. */
int tw__amp_call_table_reserve(tw__amp_call_table *t);
/* Add @p c, whose tag no other call has, after a tw__amp_call_table_reserve().
 * Cannot fail: each reserve keeps half the table free, so even adds nested
 * between a reserve and its add find a free slot. */
void tw__amp_call_table_add(tw__amp_call_table *t, tw__amp_call *c);
/* The call whose tag's text is @p tag (@p len bytes), or NULL. Any bytes
 * are safe: text that is not a tag this table could hold finds nothing. */
tw__amp_call *tw__amp_call_table_find(const tw__amp_call_table *t, const char *tag, size_t len);
/* Take @p c, which must be in @p t, out of it. */
void tw__amp_call_table_remove(tw__amp_call_table *t, tw__amp_call *c);
/* The newest call, or NULL when none is outstanding. */
tw__amp_call *tw__amp_call_table_first(const tw__amp_call_table *t);
/* Free the slots; the table must be empty. */
void tw__amp_call_table_release(tw__amp_call_table *t);

/* ------------------------------------------------------------ connection */

struct tw_amp {
    tw_protocol base;
    tw__amp_factory *factory;
    tw_amp_parser *parser;
    uint64_t counter;          /* the last _ask tag handed out */
    tw__amp_call_table calls;  /* outgoing calls waiting for an answer */
    tw__list requests;         /* incoming requests whose responders run */
    size_t max_pending;
    tw_failure *lost_reason;
    unsigned closing : 1;        /* twine or the peer is closing it */
    unsigned lost : 1;           /* connection_lost ran */
    unsigned paused_pending : 1; /* reading paused: too many requests pending */
    unsigned in_feed : 1;        /* the parser is being fed: no nested feed */
    unsigned char *held;         /* bytes read but not parsed while paused_pending */
    size_t held_len;
    unsigned paused_write : 1;   /* reading paused: the peer does not read */
    unsigned locked : 1;         /* a switch is pending or done: no AMP box goes out */
    tw_protocol *inner;          /* the protocol switched to, owned; NULL while AMP */
    tw_factory *inner_factory;   /* the caller's switch factory, a counted user, or NULL */
    /* StartTLS (amp_tls.c) */
    tw_tls_context *tls_on_answer; /* server: switch to TLS with it once the answer is out */
    unsigned tls_pending : 1;      /* client: asked, not answered; boxes are held */
    char *tls_held;                /* client: the boxes held meanwhile, encoded */
    size_t tls_held_len, tls_held_cap;
};

/*
 * Encode and send @p box. @return 0, TW_ESTATE once the connection is lost,
 * or a negative code when the box could not be encoded or sent.
 */
int tw__amp_send_box(tw_amp *amp, const tw_amp_box *box);
/* Close the transport (it flushes what was written); twine stops dispatching. */
void tw__amp_close(tw_amp *amp);
/* Log, as a warning, why the peer broke the protocol, and close. */
void tw__amp_violation(tw_amp *amp, const char *fmt, ...) TW_PRINTF(2, 3);
/* The peer's address as text in @p buf, or "the peer". */
const char *tw__amp_peer_name(tw_amp *amp, char *buf, size_t len);
/* A request left the list: resume reading if it was paused for too many. */
void tw__amp_request_finished(tw_amp *amp);
/* The transport's connection_lost, destroy and producer calls, as AMP
 * handles them; a switched connection runs them after its protocol's. */
void tw__amp_connection_lost(tw_protocol *p, const tw_failure *reason);
void tw__amp_destroy(tw_protocol *p);
/* Deliver @p len bytes to the protocol switched to, unless the transport
 * is closing or the connection is lost. */
void tw__amp_switched_data(tw_amp *amp, const void *data, size_t len);

/* ------------------------------------------------------------ switches */

/* The ops of a switched connection, with and without half-close. */
extern const tw_protocol_ops tw__amp_switched_ops;
extern const tw_protocol_ops tw__amp_switched_half_close_ops;
/*
 * The switch's answer went out, or came in: hand the transport to @p p
 * (owned from now on), and run its connection_made. Outside a feed, the
 * bytes already read go to it at once; inside one, the feed hands it the
 * rest of the read when the parser returns.
 * @param client_factory the caller's factory, notified when the connection
 *        is lost, or NULL on the responder's side.
 */
void tw__amp_switch(tw_amp *amp, tw_protocol *p, tw_factory *client_factory);

/* ------------------------------------------------------------ StartTLS */

/* The server's answer to StartTLS went out: switch to TLS. */
void tw__amp_answered_start_tls(tw_amp *amp);
/* Client: keep @p len encoded bytes until the switch. @return 0 or -ENOMEM. */
int tw__amp_hold_for_tls(tw_amp *amp, const void *data, size_t len);

/* ------------------------------------------------------------ requests */

/* Run the responder of a box with a _command, and answer it. */
void tw__amp_command_received(tw_amp *amp, const tw_amp_box *box);
/* The connection is lost: cancel every responder still running. */
void tw__amp_requests_cancel(tw_amp *amp);

/* ------------------------------------------------------------ calls */

/* Fire the call a box with an _answer answers. @return 1 when the box was
 * taken over (a raw call's result), else 0. */
int tw__amp_answer_received(tw_amp *amp, tw_amp_box *box);
/* Fail the call a box with an _error answers. */
void tw__amp_error_received(tw_amp *amp, const tw_amp_box *box);
/* The connection is lost: fail every call still waiting. */
void tw__amp_calls_fail(tw_amp *amp);
/* Send @p box (taken over) as command @p name and track the answer; a
 * protocol switch when @p switch_to is not NULL. */
tw_deferred *tw__amp_start_call(tw_amp *amp, const char *name, tw_amp_box *box,
                                const tw_amp_command *command, tw_factory *switch_to);
/* Encode @p args as @p command's arguments, then tw__amp_start_call(). */
tw_deferred *tw__amp_call_command(tw_amp *amp, const tw_amp_command *command,
                                  const tw_amp_values *args, tw_factory *switch_to);

#endif
