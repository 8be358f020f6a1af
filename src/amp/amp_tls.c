/* SPDX-License-Identifier: MIT */
/*
 * AMP's StartTLS, wire-compatible with Twisted's amp.StartTLS: the client
 * asks with an empty StartTLS box; the server answers with an empty box in
 * the clear and switches to TLS as its answer leaves; the client switches
 * when the answer comes. Both keep speaking AMP, now encrypted.
 *
 * As in Twisted (BinaryBoxProtocol._prepareTLS), the client holds every box
 * it would send between its request and the answer, and sends them once
 * TLS is on, so none goes out in the clear by accident; if the server
 * refuses, they go out as they are, since the connection goes on in the
 * clear. The server takes the switch as its answer's last act
 * (amp_requests.c), so nothing it writes after the answer is in the clear.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <twine/log.h>
#include <twine/tls.h>

#include "amp/amp_conn_internal.h"
#include "core/buf_internal.h"

static const tw_amp_arg no_args[] = {{NULL, NULL, 0}};

TW_API const tw_amp_command tw_amp_start_tls_command = {
    .name = "StartTLS",
    .arguments = no_args,
    .response = no_args,
};

/* ------------------------------------------------------------ the server */

static tw_deferred *answer_start_tls(tw_amp *amp, const tw_amp_values *args, void *arg)
{
    (void)args;
    tw_transport *t = amp->base.transport;
    if (tw_transport_is_tls(t))
        return tw_deferred_fail(tw_failure_new(TW_ESTATE, "TLS is already on"));
    /* The switch happens as the answer leaves (amp_requests.c). */
    amp->tls_on_answer = arg;
    return tw_amp_succeed(NULL);
}

TW_API int tw_amp_serve_start_tls(tw_amp_dispatcher *d, tw_tls_context *ctx)
{
    if (d == NULL || ctx == NULL || tw_tls_context_side(ctx) != TW_TLS_SERVER)
        return -EINVAL;
    int rc = tw_amp_register(d, &tw_amp_start_tls_command, answer_start_tls, ctx);
    if (rc == 0)
        d->tls = tw_tls_context_ref(ctx); /* released with the dispatcher */
    return rc;
}

void tw__amp_answered_start_tls(tw_amp *amp)
{
    tw_tls_context *ctx = amp->tls_on_answer;
    amp->tls_on_answer = NULL;
    int rc = tw_transport_start_tls(amp->base.transport, ctx, TW_TLS_SERVER);
    if (rc < 0) {
        char peer[TW_ADDRSTRLEN + 16];
        tw_log(TW_LOG_WARN, "amp", "cannot start TLS with %s: %s; closing the connection",
               tw__amp_peer_name(amp, peer, sizeof peer), tw_strerror(rc));
        tw__amp_close(amp);
    }
}

/* ------------------------------------------------------------ the client */

/* Send what was held for after the switch, encrypted or not. */
static void release_held(tw_amp *amp)
{
    char *buf = amp->tls_held;
    size_t len = amp->tls_held_len;
    amp->tls_pending = 0;
    amp->tls_held = NULL;
    amp->tls_held_len = amp->tls_held_cap = 0;
    if (len > 0 && !amp->lost && !amp->closing)
        tw_transport_write(amp->base.transport, buf, len);
    free(buf);
}

typedef struct starting {
    tw_amp *amp;
    tw_tls_context *ctx; /* referenced */
} starting;

static void starting_free(starting *s)
{
    tw_tls_context_unref(s->ctx);
    free(s);
}

/* The answer came: switch, then let the held boxes and the caller go on. */
static void answered(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    starting *s = arg;
    tw_amp *amp = s->amp;
    if (!amp->lost && !amp->closing) {
        int rc = tw_transport_start_tls(amp->base.transport, s->ctx, TW_TLS_CLIENT);
        if (rc < 0) {
            tw_result_set_failure(res, tw_failure_new(rc, "cannot start TLS: %s",
                                                      tw_strerror(rc)));
            amp->tls_pending = 0;
            free(amp->tls_held);
            amp->tls_held = NULL;
            amp->tls_held_len = amp->tls_held_cap = 0;
            tw__amp_close(amp); /* the peer is in TLS already */
            starting_free(s);
            return;
        }
    }
    release_held(amp);
    starting_free(s);
}

static void refused(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    (void)res;
    starting *s = arg;
    if (!s->amp->lost)
        release_held(s->amp);
    else
        s->amp->tls_pending = 0;
    starting_free(s);
}

TW_API tw_deferred *tw_amp_start_tls(tw_amp *amp, tw_tls_context *ctx)
{
    if (amp == NULL || ctx == NULL || tw_tls_context_side(ctx) != TW_TLS_CLIENT)
        return tw_deferred_fail(tw_failure_new(-EINVAL, "StartTLS needs a client TLS context"));
    if (amp->tls_pending || tw_transport_is_tls(amp->base.transport))
        return tw_deferred_fail(tw_failure_new(TW_ESTATE, "TLS is already on or starting"));
    starting *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->amp = amp;
    s->ctx = tw_tls_context_ref(ctx);
    tw_deferred *d = tw__amp_call_command(amp, &tw_amp_start_tls_command, NULL, NULL);
    if (d == NULL) {
        starting_free(s);
        return NULL;
    }
    if (tw_deferred_called(d)) { /* the request could not go out */
        starting_free(s);
        return d;
    }
    amp->tls_pending = 1; /* from here, boxes wait for the switch */
    if (tw_deferred_add_callbacks(d, answered, refused, s) < 0) {
        amp->tls_pending = 0;
        starting_free(s);
    }
    return d;
}

int tw__amp_hold_for_tls(tw_amp *amp, const void *data, size_t len)
{
    if (tw__buf_reserve(&amp->tls_held, &amp->tls_held_cap, amp->tls_held_len, len, 1024, NULL) < 0)
        return -ENOMEM;
    memcpy(amp->tls_held + amp->tls_held_len, data, len);
    amp->tls_held_len += len;
    return 0;
}
