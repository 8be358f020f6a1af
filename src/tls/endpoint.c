/* SPDX-License-Identifier: MIT */
/*
 * TLS endpoints: ssl: servers and tls: clients (parsed with every other
 * endpoint by src/net), listened on and connected to here, each with a
 * wrapping factory (factory.c) that lives as long as its listener or its
 * connection.
 *
 * A client's deferred waits for the handshake, not for TCP, so a server
 * that fails verification is a failed connect with OpenSSL's reason, and
 * the factory's protocol is never made.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tls/tls_internal.h"

TW_API int tw_tls_context_from_endpoint(const tw_endpoint *e, tw_tls_context **out, char *err,
                                        size_t errlen)
{
    if (e == NULL || !e->tls) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "%s", "not a TLS endpoint");
        return -EINVAL;
    }
    tw_tls_context *ctx = tw_tls_context_new(e->client ? TW_TLS_CLIENT : TW_TLS_SERVER, err, errlen);
    if (ctx == NULL)
        return -ENOMEM;
    int rc = 0;
    if (!e->client)
        rc = tw_tls_context_use_certificate(ctx, e->certificate, e->private_key,
                                            e->cert_chain[0] != '\0' ? e->cert_chain : NULL, err,
                                            errlen);
    if (rc == 0 && e->client && e->trust_roots[0] != '\0')
        rc = tw_tls_context_set_trust_roots(ctx, e->trust_roots, err, errlen);
    if (rc == 0 && e->client && e->certificate[0] != '\0')
        rc = tw_tls_context_use_certificate(ctx, e->certificate, e->private_key, NULL, err,
                                            errlen);
    if (rc == 0 && e->client)
        rc = tw_tls_context_set_hostname(ctx, e->host);
    if (rc < 0) {
        tw_tls_context_unref(ctx);
        return rc;
    }
    *out = ctx;
    return 0;
}

/* A context for @p e: @p given (another reference to it), or the one @p e
 * describes. @return 0, or a failure's code with *@p why set. */
static int context_for(const tw_endpoint *e, tw_tls_context *given, tw_tls_context **ctx,
                       tw_failure **why)
{
    if (given != NULL) {
        *ctx = tw_tls_context_ref(given);
        return 0;
    }
    char err[TW_TLS_ERRLEN];
    int rc = tw_tls_context_from_endpoint(e, ctx, err, sizeof err);
    if (rc < 0)
        *why = tw_failure_new(rc, "%s", err);
    return rc;
}

/* A wrapping factory whose owner is its users (factory.c). */
static int owned_factory(tw_tls_context *ctx, const char *host, tw_factory *f,
                         tw__tls_factory **out)
{
    tw_factory *fb;
    int rc = tw_tls_factory_new(ctx, host, f, &fb);
    if (rc < 0)
        return rc;
    *out = tw_container_of(fb, tw__tls_factory, base);
    return 0;
}

TW_API tw_deferred *tw_listen_tls(tw_reactor *r, const tw_endpoint *e,
                                  const tw_listen_options *opts, tw_tls_context *ctx,
                                  tw_factory *f)
{
    if (r == NULL || e == NULL || f == NULL)
        return tw_deferred_fail(tw_failure_new(-EINVAL, "listen: no reactor, endpoint or factory"));
    if (e->client || e->type == TW_ENDPOINT_UDP)
        return tw_deferred_fail(
            tw_failure_new(-EINVAL, "TLS listens on stream server endpoints only"));
    if (ctx != NULL && ctx->side != TW_TLS_SERVER)
        return tw_deferred_fail(
            tw_failure_new(-EINVAL, "cannot listen with a client's TLS context"));
    tw_tls_context *use;
    tw_failure *why = NULL;
    int rc = context_for(e, ctx, &use, &why);
    if (rc < 0)
        return tw_deferred_fail(why);
    tw__tls_factory *tf;
    rc = owned_factory(use, NULL, f, &tf);
    tw_tls_context_unref(use);
    if (rc < 0)
        return tw_deferred_fail(tw_failure_new(rc, "cannot listen with TLS: %s", tw_strerror(rc)));
    tw_endpoint plain = *e;
    plain.tls = 0;
    tf->owner_is_users = 1;
    tw_deferred *d = tw_endpoint_listen(r, &plain, opts, &tf->base);
    if (tf->base.users == 0) {
        /* Never started (listening failed): nobody will stop it. */
        tf->owner_is_users = 0;
        tw__tls_factory_unref(tf);
    }
    return d;
}

/* The TCP connect's outcome: a success waits for the handshake; a
 * failure was told through the factory (client_connection_failed) unless
 * the connect never started. */
static void connect_done(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    tw__tls_factory *tf = arg;
    if (tf->connecting != NULL) {
        tw_deferred_unref(tf->connecting);
        tf->connecting = NULL;
    }
    if (tw_result_is_failure(res)) {
        tw_failure *why = tw_result_take_failure(res);
        if (tf->connected != NULL) {
            tw_deferred *mine = tf->connected;
            tf->connected = NULL;
            tw_deferred_errback(mine, why);
            tw_deferred_unref(mine);
        } else {
            tw_failure_unref(why);
        }
        if (tf->owner_is_users && tf->base.users == 0) {
            tf->owner_is_users = 0; /* never started, so never stopped */
            tw__tls_factory_unref(tf);
        }
    } else {
        tw_free_fn none; /* the connection, borrowed: nothing to free */
        tw_result_take_value(res, &none);
    }
    tw__tls_factory_unref(tf);
}

static void cancel_connect(tw_deferred *d, void *arg)
{
    (void)d;
    tw__tls_factory *tf = arg;
    /* The cancel fails d itself; nothing else may fire it now. */
    if (tf->connected != NULL) {
        tw_deferred *mine = tf->connected;
        tf->connected = NULL;
        tw_deferred_unref(mine);
    }
    if (tf->conn != NULL)
        tw_transport_abort_connection(tf->conn->transport);
    else if (tf->connecting != NULL)
        tw_deferred_cancel(tf->connecting);
}

TW_API tw_deferred *tw_connect_tls(tw_reactor *r, const tw_endpoint *e, tw_tls_context *ctx,
                                   tw_factory *f)
{
    if (r == NULL || e == NULL || f == NULL)
        return tw_deferred_fail(tw_failure_new(-EINVAL, "connect: no reactor, endpoint or factory"));
    if (!e->client)
        return tw_deferred_fail(tw_failure_new(-EINVAL, "cannot connect to a server endpoint"));
    if (ctx != NULL && ctx->side != TW_TLS_CLIENT)
        return tw_deferred_fail(
            tw_failure_new(-EINVAL, "cannot connect with a server's TLS context"));
    tw_tls_context *use;
    tw_failure *why = NULL;
    int rc = context_for(e, ctx, &use, &why);
    if (rc < 0)
        return tw_deferred_fail(why);
    /* The context's own name wins; otherwise the host connected to. */
    const char *host = use->hostname != NULL ? NULL : e->type == TW_ENDPOINT_TCP ? e->host : NULL;
    tw__tls_factory *tf;
    rc = owned_factory(use, host, f, &tf);
    tw_tls_context_unref(use);
    if (rc < 0)
        return tw_deferred_fail(tw_failure_new(
            rc, "cannot connect with TLS: %s",
            rc == -EINVAL ? "no server name to verify the certificate against" : tw_strerror(rc)));
    tw_deferred *d = tw_deferred_new(cancel_connect, tf);
    if (d == NULL) {
        tw__tls_factory_unref(tf);
        return NULL;
    }
    tf->connected = tw_deferred_ref(d); /* the caller's reference is d */
    tf->owner_is_users = 1;
    tw_endpoint plain = *e;
    plain.tls = 0;
    tw__tls_factory_ref(tf); /* for connect_done */
    tw_deferred *tcp = tw_endpoint_connect(r, &plain, &tf->base);
    if (tcp == NULL) {
        tf->connected = NULL;
        tw_deferred_unref(d); /* the factory's reference */
        tf->owner_is_users = 0;
        tw__tls_factory_unref(tf);
        tw__tls_factory_unref(tf);
        tw_deferred_unref(d);
        return NULL;
    }
    tf->connecting = tw_deferred_ref(tcp);
    tw_deferred_add_both(tcp, connect_done, tf);
    tw_deferred_unref(tcp);
    return d;
}
