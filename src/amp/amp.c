/* SPDX-License-Identifier: MIT */
/*
 * AMP connections: the protocol that reads boxes off a transport and routes
 * them, as Twisted's AMP class (BinaryBoxProtocol + BoxDispatcher +
 * CommandLocator) does.
 *
 * Two tables live on each connection. Outgoing calls wait in `calls`, keyed
 * by the _ask tag they were sent with, until an _answer or _error with that
 * tag fires their deferred. Incoming requests whose responders have not
 * answered yet wait in `requests`; each one is the argument of a callback
 * pair on the responder's deferred, and owns itself: when the connection
 * goes first, the request is detached (its connection pointer cleared) and
 * the deferred cancelled, so a late answer finds no connection and is
 * dropped, and the memory goes when the deferred lets go of the pair. A
 * request whose responder answered before returning never leaves the stack
 * of the read that brought it, and neither do its arguments and its answer
 * box; the request's box goes back to the parser for the next one.
 *
 * The rules for which failures close the connection are Twisted's, listed in
 * amp.h. A connection that twine decided to close stops dispatching at once.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <twine/amp.h>
#include <twine/log.h>

#include "amp/amp_internal.h"
#include "defer/deferred_internal.h"

/* Look up a key given as a string literal, without measuring it each time. */
#define BOX_GET(box, key, len) tw_amp_box_getn((box), (key), sizeof(key) - 1, (len))

/* ------------------------------------------------------------ dispatcher */

typedef struct responder {
    const tw_amp_command *command;
    tw_amp_responder_fn fn;
    void *arg;
} responder;

struct tw_amp_dispatcher {
    responder *items;
    size_t count, cap;
};

static const responder *dispatcher_lookup(const tw_amp_dispatcher *d, const char *name,
                                          size_t len)
{
    for (size_t i = 0; i < d->count; i++) {
        const char *n = d->items[i].command->name;
        if (strlen(n) == len && memcmp(n, name, len) == 0)
            return &d->items[i];
    }
    return NULL;
}

TW_API int tw_amp_register(tw_amp_dispatcher *d, const tw_amp_command *command,
                           tw_amp_responder_fn fn, void *arg)
{
    if (d == NULL || command == NULL || command->name == NULL || command->name[0] == '\0' ||
        strlen(command->name) > TW_AMP_MAX_VALUE_LENGTH || fn == NULL)
        return -EINVAL;
    if (dispatcher_lookup(d, command->name, strlen(command->name)) != NULL)
        return -EEXIST;
    if (d->count == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        responder *items = realloc(d->items, cap * sizeof *items);
        if (items == NULL)
            return -ENOMEM;
        d->items = items;
        d->cap = cap;
    }
    d->items[d->count++] = (responder){command, fn, arg};
    return 0;
}

TW_API const tw_amp_command *tw_amp_dispatcher_find(const tw_amp_dispatcher *d,
                                                    const char *name)
{
    if (d == NULL || name == NULL)
        return NULL;
    const responder *r = dispatcher_lookup(d, name, strlen(name));
    return r != NULL ? r->command : NULL;
}

TW_API size_t tw_amp_dispatcher_count(const tw_amp_dispatcher *d)
{
    return d != NULL ? d->count : 0;
}

/* ------------------------------------------------------------ errors */

/*
 * An AMP error is two failures: the outer one's message is the code, its
 * cause's message the description, both TW_EREMOTE, and the cause has no
 * cause of its own. tw_failure_format() then reads "CODE: description".
 */
TW_API tw_failure *tw_amp_error_new(const char *code, const char *description)
{
    tw_failure *desc = tw_failure_new(TW_EREMOTE, "%s", description != NULL ? description : "");
    return tw_failure_wrap(desc, TW_EREMOTE, "%s", code != NULL ? code : "");
}

TW_API int tw_amp_error_info(const tw_failure *f, const char **code, const char **description)
{
    for (; f != NULL; f = tw_failure_cause(f)) {
        const tw_failure *c = tw_failure_cause(f);
        if (tw_failure_code(f) == TW_EREMOTE && c != NULL && tw_failure_code(c) == TW_EREMOTE &&
            tw_failure_cause(c) == NULL) {
            if (code != NULL)
                *code = tw_failure_message(f);
            if (description != NULL)
                *description = tw_failure_message(c);
            return 0;
        }
    }
    return -ENOENT;
}

static void values_free_fn(void *v)
{
    tw_amp_values_free(v);
}

static void box_free_fn(void *b)
{
    tw_amp_box_free(b);
}

TW_API tw_deferred *tw_amp_succeed(tw_amp_values *values)
{
    return tw_deferred_succeed(values, values != NULL ? values_free_fn : NULL);
}

TW_API tw_deferred *tw_amp_fail(const char *code, const char *description)
{
    return tw_deferred_fail(tw_amp_error_new(code, description));
}

/* ------------------------------------------------------------ factory */

typedef struct amp_factory {
    tw_factory base;
    tw_amp_dispatcher dispatcher;
    size_t max_box, max_pending;
    tw_amp_connected_fn connected;
    tw_amp_lost_fn lost;
    void *cb_arg;
} amp_factory;

typedef struct call {
    struct call *next, *prev;
    tw_deferred *d;                /* our reference, until we fire it */
    const tw_amp_command *command; /* NULL for a raw call */
    size_t taglen;
    char tag[20];
    char name[]; /* the command's name, for messages */
} call;

typedef struct request {
    struct request *next, *prev;
    tw_amp *amp; /* NULL once detached from a lost connection */
    tw_deferred *d;
    const tw_amp_command *command;
    const char *ask; /* the _ask tag: the request box's while on the stack, else tag */
    size_t asklen;
    int has_ask;
    char tag[]; /* the _ask tag, copied once the request outlives its box */
} request;

struct tw_amp {
    tw_protocol base;
    amp_factory *factory;
    tw_amp_parser *parser;
    uint64_t counter;
    call *calls;
    size_t ncalls;
    request *requests;
    size_t nrequests;
    size_t max_pending;
    tw_failure *lost_reason;
    unsigned closing : 1;        /* twine or the peer is closing it */
    unsigned lost : 1;           /* connection_lost ran */
    unsigned paused_pending : 1; /* reading paused: too many requests pending */
    unsigned in_feed : 1;        /* the parser is being fed: no nested feed */
    unsigned char *held;         /* bytes read but not parsed while paused_pending */
    size_t held_len;
    unsigned paused_write : 1;   /* reading paused: the peer does not read */
};

static const tw_protocol_ops amp_protocol_ops;
static const tw_factory_ops amp_factory_ops;

static amp_factory *as_amp_factory(tw_factory *f)
{
    if (f == NULL || f->ops != &amp_factory_ops)
        return NULL;
    return tw_container_of(f, amp_factory, base);
}

TW_API tw_amp *tw_amp_from_protocol(tw_protocol *p)
{
    if (p == NULL || p->ops != &amp_protocol_ops)
        return NULL;
    return tw_container_of(p, tw_amp, base);
}

TW_API tw_transport *tw_amp_transport(tw_amp *amp)
{
    return amp != NULL && !amp->lost ? amp->base.transport : NULL;
}

TW_API int tw_amp_closed(const tw_amp *amp)
{
    return amp == NULL || amp->closing;
}

TW_API size_t tw_amp_outstanding(const tw_amp *amp)
{
    return amp != NULL ? amp->ncalls : 0;
}

/* ------------------------------------------------------------ sending */

static const char *peer_name(tw_amp *amp, char *buf, size_t len)
{
    tw_address a;
    if (amp->base.transport == NULL || tw_transport_get_peer(amp->base.transport, &a) < 0)
        return "the peer";
    return tw_address_format(&a, buf, len);
}

static void amp_close(tw_amp *amp)
{
    if (amp->closing)
        return;
    amp->closing = 1;
    tw_transport_lose_connection(amp->base.transport);
}

TW_API void tw_amp_lose_connection(tw_amp *amp)
{
    if (amp != NULL && !amp->lost)
        amp_close(amp);
}

/* Log why the peer broke the protocol, and close. */
static void violation(tw_amp *amp, const char *fmt, ...) TW_PRINTF(2, 3);

static void violation(tw_amp *amp, const char *fmt, ...)
{
    char why[512], where[TW_ADDRSTRLEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    tw_log(TW_LOG_WARN, "amp", "closing the connection with %s: %s",
           peer_name(amp, where, sizeof where), why);
    amp_close(amp);
}

/*
 * @return 0, or a negative code when the box could not be encoded or sent.
 * Boxes sent while a read is processed (answers of responders that answer
 * at once, above all) leave together when it ends: the transport batches
 * them, so a pipelining peer costs one system call per read.
 */
static int send_box(tw_amp *amp, const tw_amp_box *box)
{
    if (amp->lost)
        return TW_ESTATE;
    size_t n = tw_amp_box_encoded_size(box);
    char stackbuf[1024];
    char *buf = n <= sizeof stackbuf ? stackbuf : malloc(n);
    if (buf == NULL)
        return -ENOMEM;
    tw_amp_box_encode(box, buf, n);
    int rc = tw_transport_write(amp->base.transport, buf, n);
    if (buf != stackbuf)
        free(buf);
    return rc;
}

/* Python's repr() of a bytes object, which Twisted puts in UNHANDLED. */
static char *py_bytes_repr(const char *s, size_t n)
{
    int quote = '\'';
    if (memchr(s, '\'', n) != NULL && memchr(s, '"', n) == NULL)
        quote = '"';
    char *out = malloc(4 * n + 4);
    if (out == NULL)
        return NULL;
    size_t at = 0;
    out[at++] = 'b';
    out[at++] = (char)quote;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == quote || c == '\\') {
            out[at++] = '\\';
            out[at++] = (char)c;
        } else if (c == '\t') {
            out[at++] = '\\';
            out[at++] = 't';
        } else if (c == '\n') {
            out[at++] = '\\';
            out[at++] = 'n';
        } else if (c == '\r') {
            out[at++] = '\\';
            out[at++] = 'r';
        } else if (c < 0x20 || c >= 0x7f) {
            at += (size_t)sprintf(out + at, "\\x%02x", c);
        } else {
            out[at++] = (char)c;
        }
    }
    out[at++] = (char)quote;
    out[at] = '\0';
    return out;
}

/*
 * Send an _error box. A description longer than a value may be is as fatal
 * here as Twisted's TooLong there: the connection closes.
 */
static void send_error(tw_amp *amp, const char *tag, size_t taglen, const char *code,
                       const char *description)
{
    tw_amp_box box;
    tw__amp_box_init(&box);
    int rc = tw_amp_box_set(&box, "_error", 6, tag, taglen);
    if (rc == 0)
        rc = tw_amp_box_set_str(&box, "_error_code", code);
    if (rc == 0)
        rc = tw_amp_box_set_str(&box, "_error_description", description);
    if (rc == 0)
        rc = send_box(amp, &box);
    tw__amp_box_release(&box);
    if (rc < 0 && rc != TW_ESTATE) {
        tw_log(TW_LOG_ERROR, "amp", "could not send the %s error: %s", code, tw_strerror(rc));
        amp_close(amp);
    }
}

/* ------------------------------------------------------------ requests */

static void request_unlink(tw_amp *amp, request *rq)
{
    if (rq->prev != NULL)
        rq->prev->next = rq->next;
    else
        amp->requests = rq->next;
    if (rq->next != NULL)
        rq->next->prev = rq->prev;
    rq->next = rq->prev = NULL;
    amp->nrequests--;
}

static void feed_held(tw_amp *amp);

static void update_reading(tw_amp *amp)
{
    if (amp->lost || amp->base.transport == NULL)
        return;
    int want_pause = amp->paused_pending || amp->paused_write;
    if (want_pause)
        tw_transport_pause_producing(amp->base.transport);
    else
        tw_transport_resume_producing(amp->base.transport);
}

static const tw_amp_error_spec *declared_error(const tw_amp_command *c, const char *code)
{
    for (const tw_amp_error_spec *e = c->errors; e != NULL && e->code != NULL; e++)
        if (strcmp(e->code, code) == 0)
            return e;
    return NULL;
}

/*
 * The responder failed. An AMP error is answered with its code, declared or
 * not, as Twisted answers any RemoteAmpError; a declared one may fill in
 * its description and close the connection. Anything else is UNKNOWN, and
 * closes it.
 */
static void request_failed(tw_amp *amp, request *rq, const tw_failure *f)
{
    const char *code = NULL, *desc = NULL;
    if (tw_amp_error_info(f, &code, &desc) == 0 && rq->has_ask) {
        const tw_amp_error_spec *spec = declared_error(rq->command, code);
        if (spec != NULL && desc[0] == '\0' && spec->description != NULL)
            desc = spec->description;
        send_error(amp, rq->ask, rq->asklen, code, desc);
        if (spec != NULL && spec->fatal)
            amp_close(amp);
        return;
    }
    char text[512];
    tw_failure_format(f, text, sizeof text);
    if (rq->has_ask) {
        tw_log(TW_LOG_WARN, "amp", "%s failed with an error that is not an AMP error (%s); "
                                   "answering UNKNOWN and closing the connection",
               rq->command->name, text);
        send_error(amp, rq->ask, rq->asklen, "UNKNOWN", "Unknown Error");
    } else {
        tw_log(TW_LOG_WARN, "amp", "%s, sent without _ask, failed (%s); closing the connection",
               rq->command->name, text);
    }
    amp_close(amp);
}

static void request_answer(tw_amp *amp, request *rq, const tw_amp_values *values)
{
    if (!rq->has_ask)
        return;
    char err[256] = "";
    /* On the stack: a typical answer fits the box's inline storage. */
    tw_amp_box box;
    tw__amp_box_init(&box);
    int rc = tw_amp_values_to_box(rq->command->response, values, &box, 0, err, sizeof err);
    if (rc == 0)
        rc = tw_amp_box_set(&box, "_answer", 7, rq->ask, rq->asklen);
    if (rc == 0) {
        rc = send_box(amp, &box);
        if (rc == TW_ESTATE)
            rc = 0; /* closing: the answer is dropped, as the transport drops it */
    }
    tw__amp_box_release(&box);
    if (rc < 0) {
        tw_log(TW_LOG_WARN, "amp", "the response of %s does not encode (%s); answering UNKNOWN "
                                   "and closing the connection",
               rq->command->name, err[0] ? err : tw_strerror(rc));
        send_error(amp, rq->ask, rq->asklen, "UNKNOWN", "Unknown Error");
        amp_close(amp);
    }
}

static void request_done(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    request *rq = arg;
    tw_amp *amp = rq->amp;
    tw_deferred *ours = rq->d;
    rq->d = NULL;
    if (amp == NULL) {
        /* The connection is gone; nobody is left to tell, failure or not. */
        tw_failure_unref(tw_result_take_failure(res));
        tw_deferred_unref(ours);
        return;
    }
    rq->amp = NULL;
    request_unlink(amp, rq);
    if (tw_result_is_failure(res)) {
        tw_failure *f = tw_result_take_failure(res);
        if (!amp->closing)
            request_failed(amp, rq, f);
        tw_failure_unref(f);
    } else if (!amp->closing) {
        request_answer(amp, rq, tw_result_value(res));
    }
    if (amp->paused_pending && amp->nrequests < amp->max_pending / 2 + 1) {
        amp->paused_pending = 0;
        if (amp->held_len > 0 && !amp->in_feed)
            feed_held(amp);
        update_reading(amp);
    }
    tw_deferred_unref(ours);
}

static void request_free(void *arg)
{
    request *rq = arg;
    if (rq->amp != NULL)
        request_unlink(rq->amp, rq);
    free(rq);
}

static void command_received(tw_amp *amp, const tw_amp_box *box)
{
    size_t namelen, asklen = 0;
    const char *name = BOX_GET(box, "_command", &namelen);
    const char *ask = BOX_GET(box, "_ask", &asklen);
    const responder *r = dispatcher_lookup(&amp->factory->dispatcher, name, namelen);
    if (r == NULL) {
        char *shown = py_bytes_repr(name, namelen);
        if (shown == NULL) {
            amp_close(amp);
            return;
        }
        if (ask != NULL) {
            size_t len = strlen(shown) + sizeof "Unhandled Command: ";
            char *desc = malloc(len);
            if (desc != NULL) {
                snprintf(desc, len, "Unhandled Command: %s", shown);
                send_error(amp, ask, asklen, "UNHANDLED", desc);
                free(desc);
            } else {
                amp_close(amp);
            }
        } else {
            violation(amp, "unhandled command %s sent without _ask", shown);
        }
        free(shown);
        return;
    }

    char err[256];
    /* The arguments are only lent to the responder, so they can live here. */
    tw_amp_values args;
    tw__amp_values_init(&args);
    if (tw__amp_values_decode(r->command->arguments, box, &args, err, sizeof err) < 0) {
        tw__amp_values_release(&args);
        char where[TW_ADDRSTRLEN];
        tw_log(TW_LOG_WARN, "amp", "%s from %s has bad arguments (%s); %sclosing the connection",
               r->command->name, peer_name(amp, where, sizeof where), err,
               ask != NULL ? "answering UNKNOWN and " : "");
        if (ask != NULL)
            send_error(amp, ask, asklen, "UNKNOWN", "Unknown Error");
        amp_close(amp);
        return;
    }

    /*
     * The request starts on the stack: most responders answer at once, and
     * then it is done with before this returns. Only one whose deferred is
     * still pending moves to the heap.
     */
    request local = {.amp = amp, .command = r->command, .ask = ask, .asklen = asklen,
                     .has_ask = ask != NULL};
    local.next = amp->requests;
    if (amp->requests != NULL)
        amp->requests->prev = &local;
    amp->requests = &local;
    amp->nrequests++;

    tw_deferred *d = r->fn(amp, &args, r->arg);
    tw__amp_values_release(&args);
    if (d == NULL)
        d = tw_deferred_fail(tw_failure_new(-ENOMEM, "the responder of %s returned no deferred",
                                            r->command->name));
    if (d == NULL) {
        if (local.amp != NULL)
            request_unlink(amp, &local);
        if (ask != NULL)
            send_error(amp, ask, asklen, "UNKNOWN", "Unknown Error");
        amp_close(amp);
        return;
    }
    local.d = d;
    if (tw__deferred_run_settled(d, request_done, request_done, &local))
        return; /* answered, unlinked, and our reference to d released */

    request *rq = malloc(sizeof *rq + asklen + 1);
    if (rq != NULL) {
        *rq = local;
        if (ask != NULL)
            memcpy(rq->tag, ask, asklen);
        rq->tag[asklen] = '\0';
        rq->ask = rq->tag;
        if (rq->amp != NULL) {
            /* Take the stack request's place in the list. */
            if (rq->prev != NULL)
                rq->prev->next = rq;
            else
                amp->requests = rq;
            if (rq->next != NULL)
                rq->next->prev = rq;
        }
    }
    if (rq == NULL || tw_deferred_add_callbacks_full(d, request_done, request_done, rq,
                                                     request_free) < 0) {
        if (rq != NULL) {
            if (rq->amp != NULL)
                request_unlink(amp, rq);
            free(rq);
        } else if (local.amp != NULL) {
            request_unlink(amp, &local);
        }
        tw_deferred_cancel(d);
        tw_deferred_unref(d);
        if (ask != NULL)
            send_error(amp, ask, asklen, "UNKNOWN", "Unknown Error");
        amp_close(amp);
    }
    /* rq may be gone now: the deferred may have fired meanwhile. */
}

/* ------------------------------------------------------------ calls */

static void call_unlink(tw_amp *amp, call *c)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        amp->calls = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
    amp->ncalls--;
}

static call *call_find(tw_amp *amp, const char *tag, size_t len)
{
    for (call *c = amp->calls; c != NULL; c = c->next)
        if (c->taglen == len && memcmp(c->tag, tag, len) == 0)
            return c;
    return NULL;
}

/* Fire a call's deferred with a value or a failure, then forget it. */
static void call_finish(call *c, void *value, tw_free_fn free_fn, tw_failure *failure)
{
    if (failure != NULL)
        tw_deferred_errback(c->d, failure);
    else
        tw_deferred_callback(c->d, value, free_fn);
    tw_deferred_unref(c->d);
    free(c);
}

/* @return 1 when the box was taken over. */
static int answer_received(tw_amp *amp, tw_amp_box *box)
{
    size_t taglen;
    const char *tag = BOX_GET(box, "_answer", &taglen);
    call *c = call_find(amp, tag, taglen);
    if (c == NULL) {
        violation(amp, "an answer for a call never made (_answer of %zu bytes)", taglen);
        return 0;
    }
    call_unlink(amp, c);
    if (c->command == NULL) {
        tw_amp_box_remove(box, "_answer");
        call_finish(c, box, box_free_fn, NULL);
        return 1;
    }
    char err[256];
    tw_amp_values *values = tw_amp_values_from_box(c->command->response, box, err, sizeof err);
    if (values == NULL)
        call_finish(c, NULL, NULL,
                    tw_failure_new(TW_EPROTO, "the answer to %s does not decode: %s", c->name,
                                   err));
    else
        call_finish(c, values, values_free_fn, NULL);
    return 0;
}

static void error_received(tw_amp *amp, const tw_amp_box *box)
{
    size_t taglen;
    const char *tag = BOX_GET(box, "_error", &taglen);
    call *c = call_find(amp, tag, taglen);
    if (c == NULL) {
        violation(amp, "an error for a call never made (_error of %zu bytes)", taglen);
        return;
    }
    const char *code = tw_amp_box_get(box, "_error_code", NULL);
    const char *desc = tw_amp_box_get(box, "_error_description", NULL);
    if (code == NULL || desc == NULL) {
        violation(amp, "an _error box without %s",
                  code == NULL ? "_error_code" : "_error_description");
        return; /* the call fails when the connection is lost */
    }
    call_unlink(amp, c);
    call_finish(c, NULL, NULL, tw_amp_error_new(code, desc));
}

static tw_failure *lost_failure(tw_amp *amp, const char *name)
{
    tw_failure *cause = amp->lost_reason != NULL ? tw_failure_ref(amp->lost_reason) : NULL;
    return tw_failure_wrap(cause, TW_ECONNLOST,
                           "the AMP connection was lost before %s was answered", name);
}

/* Send @p box (taken over) as command @p name and track the answer. */
static tw_deferred *start_call(tw_amp *amp, const char *name, tw_amp_box *box,
                               const tw_amp_command *command)
{
    size_t namelen = strlen(name);
    if (amp->lost) {
        tw_amp_box_free(box);
        return tw_deferred_fail(lost_failure(amp, name));
    }
    call *c = calloc(1, sizeof *c + namelen + 1);
    tw_deferred *d = c != NULL ? tw_deferred_new(NULL, NULL) : NULL;
    if (d == NULL) {
        free(c);
        tw_amp_box_free(box);
        return NULL;
    }
    memcpy(c->name, name, namelen + 1);
    c->command = command;
    c->taglen = (size_t)snprintf(c->tag, sizeof c->tag, "%" PRIx64, ++amp->counter);
    int rc = tw_amp_box_set(box, "_command", 8, name, namelen);
    if (rc == 0)
        rc = tw_amp_box_set(box, "_ask", 4, c->tag, c->taglen);
    if (rc == 0) {
        rc = send_box(amp, box);
        if (rc == TW_ESTATE)
            rc = 0; /* closing: the call fails when the connection is lost */
    }
    tw_amp_box_free(box);
    if (rc < 0) {
        free(c);
        tw_deferred_errback(d, tw_failure_new(rc, "could not send %s: %s", name,
                                              tw_strerror(rc)));
        return d;
    }
    c->d = tw_deferred_ref(d);
    c->next = amp->calls;
    if (amp->calls != NULL)
        amp->calls->prev = c;
    amp->calls = c;
    amp->ncalls++;
    return d;
}

TW_API tw_deferred *tw_amp_call_remote(tw_amp *amp, const tw_amp_command *command,
                                       const tw_amp_values *args)
{
    if (amp == NULL || command == NULL || command->name == NULL)
        return tw_deferred_fail(tw_failure_new(-EINVAL, "call_remote needs a connection and a "
                                                        "named command"));
    tw_amp_box *box = tw_amp_box_new();
    if (box == NULL)
        return NULL;
    char err[256];
    int rc = tw_amp_values_to_box(command->arguments, args, box, 1, err, sizeof err);
    if (rc < 0) {
        tw_amp_box_free(box);
        return tw_deferred_fail(tw_failure_new(rc, "cannot call %s: %s", command->name, err));
    }
    return start_call(amp, command->name, box, command);
}

static tw_amp_box *box_copy(const tw_amp_box *src)
{
    tw_amp_box *box = tw_amp_box_new();
    for (size_t i = 0; box != NULL && i < tw_amp_box_count(src); i++) {
        const char *k, *v;
        size_t kl, vl;
        tw_amp_box_entry(src, i, &k, &kl, &v, &vl);
        if (tw_amp_box_set(box, k, kl, v, vl) < 0) {
            tw_amp_box_free(box);
            box = NULL;
        }
    }
    return box;
}

TW_API tw_deferred *tw_amp_call_remote_box(tw_amp *amp, const char *command,
                                           const tw_amp_box *args)
{
    if (amp == NULL || command == NULL || command[0] == '\0' ||
        strlen(command) > TW_AMP_MAX_VALUE_LENGTH)
        return tw_deferred_fail(tw_failure_new(-EINVAL, "call_remote_box needs a connection "
                                                        "and a command name"));
    tw_amp_box *box = box_copy(args);
    if (box == NULL)
        return NULL;
    return start_call(amp, command, box, NULL);
}

TW_API int tw_amp_send(tw_amp *amp, const tw_amp_command *command, const tw_amp_values *args)
{
    if (amp == NULL || command == NULL || command->name == NULL)
        return -EINVAL;
    if (amp->closing)
        return TW_ESTATE;
    tw_amp_box *box = tw_amp_box_new();
    if (box == NULL)
        return -ENOMEM;
    int rc = tw_amp_values_to_box(command->arguments, args, box, 1, NULL, 0);
    if (rc == 0)
        rc = tw_amp_box_set_str(box, "_command", command->name);
    amp->counter++; /* Twisted takes a tag even when it does not send it */
    if (rc == 0)
        rc = send_box(amp, box);
    tw_amp_box_free(box);
    return rc;
}

/* ------------------------------------------------------------ protocol */

static int box_received(tw_amp_box *box, void *arg)
{
    tw_amp *amp = arg;
    int taken = 0;
    if (BOX_GET(box, "_answer", NULL) != NULL)
        taken = answer_received(amp, box);
    else if (BOX_GET(box, "_error", NULL) != NULL)
        error_received(amp, box);
    else if (BOX_GET(box, "_command", NULL) != NULL)
        command_received(amp, box);
    else
        violation(amp, "a box with %zu keys and none of _command, _answer or _error",
                  tw_amp_box_count(box));
    if (!taken)
        tw__amp_parser_recycle(amp->parser, box);
    /* A responder that closed or aborted the transport itself ends the
     * delivery too: the boxes after it have no connection to answer on. */
    if (amp->closing || tw_transport_disconnecting(amp->base.transport))
        return 1;
    /* Pending responders are counted per box, not per read: past the
     * limit the rest of the read waits, unparsed, until answers go out. */
    return amp->nrequests >= amp->max_pending ? 1 : 0;
}

static void amp_connection_made(tw_protocol *p)
{
    tw_amp *amp = tw_amp_from_protocol(p);
    if (amp->factory->connected != NULL)
        amp->factory->connected(amp, amp->factory->cb_arg);
}

/* Keep what a stopped parse left: a copy of at most one read. */
static void hold_rest(tw_amp *amp, const unsigned char *rest, size_t n)
{
    unsigned char *h = realloc(amp->held, amp->held_len + n);
    if (h == NULL) {
        violation(amp, "out of memory");
        return;
    }
    memcpy(h + amp->held_len, rest, n);
    amp->held = h;
    amp->held_len += n;
}

static void feed(tw_amp *amp, const unsigned char *data, size_t len)
{
    amp->in_feed = 1;
    size_t used = 0;
    int rc = tw_amp_parser_feed(amp->parser, data, len, box_received, amp, &used);
    amp->in_feed = 0;
    if (rc < 0 && !amp->closing)
        violation(amp, "%s", tw_amp_parser_error(amp->parser));
    else if (rc > 0 && used < len && !amp->closing &&
             !tw_transport_disconnecting(amp->base.transport))
        hold_rest(amp, data + used, len - used);
    /* Idle connections keep no buffer. */
    tw__amp_parser_trim(amp->parser);
    if (!amp->closing && !amp->paused_pending && amp->nrequests >= amp->max_pending) {
        amp->paused_pending = 1;
        update_reading(amp);
    }
}

/* Parse what waited while too many requests were pending. */
static void feed_held(tw_amp *amp)
{
    unsigned char *buf = amp->held;
    size_t n = amp->held_len;
    amp->held = NULL;
    amp->held_len = 0;
    if (!amp->closing)
        feed(amp, buf, n);
    free(buf);
}

static void amp_data_received(tw_protocol *p, const void *data, size_t len)
{
    tw_amp *amp = tw_amp_from_protocol(p);
    if (amp->closing)
        return;
    if (amp->held_len > 0) {
        /* Read before the pause took effect: it queues behind the rest. */
        hold_rest(amp, data, len);
        return;
    }
    feed(amp, data, len);
}

static void amp_connection_lost(tw_protocol *p, const tw_failure *reason)
{
    tw_amp *amp = tw_amp_from_protocol(p);
    amp->lost = 1;
    amp->closing = 1;
    amp->lost_reason = tw_failure_ref((tw_failure *)reason);

    /* Every call still waiting fails; callbacks may call again, and fail at once. */
    while (amp->calls != NULL) {
        call *c = amp->calls;
        call_unlink(amp, c);
        call_finish(c, NULL, NULL, lost_failure(amp, c->name));
    }
    /* Responders still running are cancelled; their answers have nowhere to go. */
    while (amp->requests != NULL) {
        request *rq = amp->requests;
        request_unlink(amp, rq);
        rq->amp = NULL;
        tw_deferred *d = rq->d;
        rq->d = NULL;
        tw_deferred_cancel(d); /* may free rq */
        tw_deferred_unref(d);
    }
    if (amp->factory->lost != NULL)
        amp->factory->lost(amp, reason, amp->factory->cb_arg);
}

static void amp_pause_producing(tw_protocol *p)
{
    tw_amp *amp = tw_amp_from_protocol(p);
    amp->paused_write = 1;
    update_reading(amp);
}

static void amp_resume_producing(tw_protocol *p)
{
    tw_amp *amp = tw_amp_from_protocol(p);
    amp->paused_write = 0;
    update_reading(amp);
}

static void amp_destroy(tw_protocol *p)
{
    tw_amp *amp = tw_amp_from_protocol(p);
    tw_amp_parser_free(amp->parser);
    tw_failure_unref(amp->lost_reason);
    free(amp->held);
    free(amp);
}

static size_t amp_buffered_input(tw_protocol *p)
{
    return tw_amp_parser_buffered(tw_amp_from_protocol(p)->parser);
}

static const tw_protocol_ops amp_protocol_ops = {
    .buffered_input = amp_buffered_input,
    .connection_made = amp_connection_made,
    .data_received = amp_data_received,
    .connection_lost = amp_connection_lost,
    .pause_producing = amp_pause_producing,
    .resume_producing = amp_resume_producing,
    .destroy = amp_destroy,
};

static tw_protocol *amp_build(tw_factory *f, const tw_address *peer)
{
    (void)peer;
    amp_factory *af = as_amp_factory(f);
    tw_amp *amp = calloc(1, sizeof *amp);
    if (amp == NULL)
        return NULL;
    amp->parser = tw_amp_parser_new(af->max_box);
    if (amp->parser == NULL) {
        free(amp);
        return NULL;
    }
    amp->base.ops = &amp_protocol_ops;
    amp->factory = af;
    amp->max_pending = af->max_pending;
    return &amp->base;
}

static void amp_factory_destroy(tw_factory *f)
{
    amp_factory *af = as_amp_factory(f);
    free(af->dispatcher.items);
    free(af);
}

static const tw_factory_ops amp_factory_ops = {
    .build_protocol = amp_build,
    .destroy = amp_factory_destroy,
};

TW_API tw_factory *tw_amp_factory_new(void)
{
    amp_factory *af = calloc(1, sizeof *af);
    if (af == NULL)
        return NULL;
    tw_factory_init(&af->base, &amp_factory_ops);
    af->max_box = TW_AMP_DEFAULT_MAX_BOX_SIZE;
    af->max_pending = TW_AMP_DEFAULT_MAX_PENDING;
    return &af->base;
}

TW_API tw_amp_dispatcher *tw_amp_factory_dispatcher(tw_factory *f)
{
    amp_factory *af = as_amp_factory(f);
    return af != NULL ? &af->dispatcher : NULL;
}

TW_API int tw_amp_factory_set_callbacks(tw_factory *f, tw_amp_connected_fn connected,
                                        tw_amp_lost_fn lost, void *arg)
{
    amp_factory *af = as_amp_factory(f);
    if (af == NULL)
        return -EINVAL;
    af->connected = connected;
    af->lost = lost;
    af->cb_arg = arg;
    return 0;
}

TW_API int tw_amp_factory_set_limits(tw_factory *f, size_t max_box_size, size_t max_pending)
{
    amp_factory *af = as_amp_factory(f);
    if (af == NULL)
        return -EINVAL;
    af->max_box = max_box_size ? max_box_size : TW_AMP_DEFAULT_MAX_BOX_SIZE;
    af->max_pending = max_pending ? max_pending : TW_AMP_DEFAULT_MAX_PENDING;
    return 0;
}
