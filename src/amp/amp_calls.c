/* SPDX-License-Identifier: MIT */
/*
 * Outgoing AMP calls and their answers, Twisted's callRemote side of
 * BoxDispatcher. A call sends a box with a fresh _ask tag and waits in the
 * connection's call table until an _answer or _error with that tag fires
 * its deferred, or the connection is lost and fails it. The connection owns
 * each waiting call and a reference to its deferred; the caller gets its
 * own reference.
 *
 * Each call is counted once in its factory's counters (amp_call_stats.c),
 * when its outcome is known: where it finishes, or where it fails before
 * it was sent. A deferred that fired before the call finished was
 * cancelled by its caller, and counts so.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <twine/amp.h>

#include "amp/amp_conn_internal.h"
#include "amp/amp_internal.h"

/* The longest tag: a 64-bit counter in hex, and a NUL. */
#define TAG_TEXT 17

static void values_free_fn(void *v)
{
    tw_amp_values_free(v);
}

static void box_free_fn(void *b)
{
    tw_amp_box_free(b);
}

TW_API size_t tw_amp_outstanding(const tw_amp *amp)
{
    return amp != NULL ? amp->calls.list.count : 0;
}

static void count(tw_amp *amp, const char *name, tw_amp_call_outcome o)
{
    tw__amp_count_call(&amp->factory->calls, name, o);
}

/* Fire a call's deferred with a value or a failure, counted as @p o, then
 * forget it. */
static void call_finish(tw_amp *amp, tw__amp_call *c, tw_amp_call_outcome o, void *value,
                        tw_free_fn free_fn, tw_failure *failure)
{
    tw__amp_call_table_remove(&amp->calls, c);
    count(amp, c->name, tw_deferred_called(c->d) ? TW_AMP_CALL_CANCELLED : o);
    tw_factory *f = c->switch_to;
    if (failure != NULL && f != NULL) {
        /* The switch failed: the connection speaks AMP again, and the
         * factory hears it, as Twisted's clientConnectionFailed. */
        amp->locked = 0;
        if (f->ops->client_connection_failed != NULL)
            f->ops->client_connection_failed(f, failure);
        tw_factory_stop(f);
    }
    if (failure != NULL)
        tw_deferred_errback(c->d, failure);
    else
        tw_deferred_callback(c->d, value, free_fn);
    tw_deferred_unref(c->d);
    free(c);
}

/* A protocol switch was answered: the new protocol takes the connection
 * over, then the call fires, as Twisted's switchNow runs first. */
static void switch_answered(tw_amp *amp, tw__amp_call *c, tw_amp_values *values)
{
    tw_factory *f = c->switch_to;
    tw_address peer;
    if (tw_transport_get_peer(amp->base.transport, &peer) < 0)
        memset(&peer, 0, sizeof peer);
    tw_protocol *p = f->ops->build_protocol(f, &peer);
    if (p == NULL) {
        tw_amp_values_free(values);
        tw__amp_close(amp);
        call_finish(amp, c, TW_AMP_CALL_ANSWERED, NULL, NULL,
                    tw_failure_new(-ENOMEM, "the factory refused the protocol %s switches to",
                                   c->name));
        return;
    }
    p->factory = f;
    c->switch_to = NULL; /* the switched connection counts it now */
    tw__amp_switch(amp, p, f);
    call_finish(amp, c, TW_AMP_CALL_ANSWERED, values, values_free_fn, NULL);
}

int tw__amp_answer_received(tw_amp *amp, tw_amp_box *box)
{
    size_t taglen;
    const char *tag = TW__AMP_GET(box, "_answer", &taglen);
    tw__amp_call *c = tw__amp_call_table_find(&amp->calls, tag, taglen);
    if (c == NULL) {
        tw__amp_violation(amp, "an answer for a call never made (_answer of %zu bytes)", taglen);
        return 0;
    }
    if (c->command == NULL) {
        tw_amp_box_remove(box, "_answer");
        call_finish(amp, c, TW_AMP_CALL_ANSWERED, box, box_free_fn, NULL);
        return 1;
    }
    char err[256];
    tw_amp_values *values = tw_amp_values_from_box(c->command->response, box, err, sizeof err);
    if (values == NULL)
        call_finish(amp, c, TW_AMP_CALL_BAD_ANSWER, NULL, NULL,
                    tw_failure_new(TW_EPROTO, "the answer to %s does not decode: %s", c->name,
                                   err));
    else if (c->switch_to != NULL)
        switch_answered(amp, c, values);
    else
        call_finish(amp, c, TW_AMP_CALL_ANSWERED, values, values_free_fn, NULL);
    return 0;
}

void tw__amp_error_received(tw_amp *amp, const tw_amp_box *box)
{
    size_t taglen;
    const char *tag = TW__AMP_GET(box, "_error", &taglen);
    tw__amp_call *c = tw__amp_call_table_find(&amp->calls, tag, taglen);
    if (c == NULL) {
        tw__amp_violation(amp, "an error for a call never made (_error of %zu bytes)", taglen);
        return;
    }
    const char *code = tw_amp_box_get(box, "_error_code", NULL);
    const char *desc = tw_amp_box_get(box, "_error_description", NULL);
    if (code == NULL || desc == NULL) {
        tw__amp_violation(amp, "an _error box without %s",
                          code == NULL ? "_error_code" : "_error_description");
        return; /* the call fails when the connection is lost */
    }
    call_finish(amp, c, TW_AMP_CALL_ERROR, NULL, NULL, tw_amp_error_new(code, desc));
}

static tw_failure *lost_failure(tw_amp *amp, const char *name)
{
    tw_failure *cause = amp->lost_reason != NULL ? tw_failure_ref(amp->lost_reason) : NULL;
    return tw_failure_wrap(cause, TW_ECONNLOST,
                           "the AMP connection was lost before %s was answered", name);
}

void tw__amp_calls_fail(tw_amp *amp)
{
    /* Callbacks may call again; those fail at once, as the connection is lost. */
    tw__amp_call *c;
    while ((c = tw__amp_call_table_first(&amp->calls)) != NULL)
        call_finish(amp, c, TW_AMP_CALL_LOST, NULL, NULL, lost_failure(amp, c->name));
}

tw_deferred *tw__amp_start_call(tw_amp *amp, const char *name, tw_amp_box *box,
                                const tw_amp_command *command, tw_factory *switch_to)
{
    size_t namelen = strlen(name);
    if (amp->lost) {
        tw_amp_box_free(box);
        count(amp, name, TW_AMP_CALL_NOT_SENT);
        return tw_deferred_fail(lost_failure(amp, name));
    }
    if (amp->locked) {
        /* Twisted's ProtocolSwitched. */
        tw_amp_box_free(box);
        count(amp, name, TW_AMP_CALL_NOT_SENT);
        return tw_deferred_fail(tw_failure_new(TW_ESTATE, "cannot call %s: the connection %s "
                                                          "protocols, no AMP traffic is allowed",
                                               name, amp->inner != NULL ? "switched"
                                                                         : "is switching"));
    }
    tw__amp_call *c = calloc(1, sizeof *c + namelen + 1);
    tw_deferred *d = c != NULL ? tw_deferred_new(NULL, NULL) : NULL;
    if (d == NULL) {
        free(c);
        tw_amp_box_free(box);
        count(amp, name, TW_AMP_CALL_NOT_SENT);
        return NULL;
    }
    memcpy(c->name, name, namelen + 1);
    c->command = command;
    c->tag = ++amp->counter;
    char tag[TAG_TEXT];
    size_t taglen = (size_t)snprintf(tag, sizeof tag, "%" PRIx64, c->tag);
    int rc = tw_amp_box_set(box, "_command", 8, name, namelen);
    if (rc == 0)
        rc = tw_amp_box_set(box, "_ask", 4, tag, taglen);
    /* Room in the table first: once the box is out, tracking cannot fail. */
    if (rc == 0)
        rc = tw__amp_call_table_reserve(&amp->calls);
    if (rc == 0) {
        rc = tw__amp_send_box(amp, box);
        if (rc == TW_ESTATE)
            rc = 0; /* closing: the call fails when the connection is lost */
    }
    tw_amp_box_free(box);
    if (rc == 0 && amp->lost) {
        /* The write lost the connection, after the calls were failed. */
        free(c);
        count(amp, name, TW_AMP_CALL_LOST);
        tw_deferred_errback(d, lost_failure(amp, name));
        return d;
    }
    if (rc < 0) {
        free(c);
        count(amp, name, TW_AMP_CALL_NOT_SENT);
        tw_deferred_errback(d, tw_failure_new(rc, "could not send %s: %s", name,
                                              tw_strerror(rc)));
        return d;
    }
    c->d = tw_deferred_ref(d);
    tw__amp_call_table_add(&amp->calls, c);
    if (switch_to != NULL) {
        /* Sent: nothing more goes out until the answer says how it went. */
        c->switch_to = switch_to;
        amp->locked = 1;
        tw_factory_start(switch_to);
    }
    return d;
}

TW_API tw_deferred *tw_amp_call_remote(tw_amp *amp, const tw_amp_command *command,
                                       const tw_amp_values *args)
{
    if (amp == NULL || command == NULL || command->name == NULL)
        return tw_deferred_fail(tw_failure_new(-EINVAL, "call_remote needs a connection and a "
                                                        "named command"));
    if (command->protocol_switch)
        return tw_deferred_fail(tw_failure_new(-EINVAL, "%s switches protocols: call it with "
                                                        "tw_amp_call_switch()", command->name));
    return tw__amp_call_command(amp, command, args, NULL);
}

tw_deferred *tw__amp_call_command(tw_amp *amp, const tw_amp_command *command,
                                  const tw_amp_values *args, tw_factory *switch_to)
{
    tw_amp_box *box = tw_amp_box_new();
    if (box == NULL) {
        count(amp, command->name, TW_AMP_CALL_NOT_SENT);
        return NULL;
    }
    char err[256];
    int rc = tw_amp_values_to_box(command->arguments, args, box, 1, err, sizeof err);
    if (rc < 0) {
        tw_amp_box_free(box);
        count(amp, command->name, TW_AMP_CALL_NOT_SENT);
        return tw_deferred_fail(tw_failure_new(rc, "cannot call %s: %s", command->name, err));
    }
    return tw__amp_start_call(amp, command->name, box, command, switch_to);
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
    if (box == NULL) {
        count(amp, command, TW_AMP_CALL_NOT_SENT);
        return NULL;
    }
    return tw__amp_start_call(amp, command, box, NULL, NULL);
}

TW_API int tw_amp_send(tw_amp *amp, const tw_amp_command *command, const tw_amp_values *args)
{
    if (amp == NULL || command == NULL || command->name == NULL)
        return -EINVAL;
    if (amp->closing || amp->locked)
        return TW_ESTATE;
    tw_amp_box *box = tw_amp_box_new();
    if (box == NULL)
        return -ENOMEM;
    int rc = tw_amp_values_to_box(command->arguments, args, box, 1, NULL, 0);
    if (rc == 0)
        rc = tw_amp_box_set_str(box, "_command", command->name);
    amp->counter++; /* Twisted takes a tag even when it does not send it */
    if (rc == 0)
        rc = tw__amp_send_box(amp, box);
    tw_amp_box_free(box);
    return rc;
}
