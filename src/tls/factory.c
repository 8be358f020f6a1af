/* SPDX-License-Identifier: MIT */
/*
 * The wrapping factory (Twisted's TLSMemoryBIOFactory): each connection it
 * builds is a TLS connection (connection.c) around a protocol of the
 * wrapped factory, which hears start, stop and the client callbacks as if
 * it served the connection itself.
 *
 * Its memory is counted: the owner holds one reference and each connection
 * another, since a connection that outlives its listener still reaches its
 * factory when it ends. A factory made by tw_listen_tls() or
 * tw_connect_tls() has no owner the caller sees: its owner's reference is
 * given up when its last user (the listener, or the one connection) stops.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tls/tls_internal.h"

static tw__tls_factory *factory_of(tw_factory *f)
{
    return tw_container_of(f, tw__tls_factory, base);
}

void tw__tls_factory_ref(tw__tls_factory *tf)
{
    tf->refs++;
}

void tw__tls_factory_unref(tw__tls_factory *tf)
{
    if (--tf->refs > 0)
        return;
    if (tf->connected != NULL) {
        tw_deferred *d = tf->connected;
        tf->connected = NULL;
        tw_deferred_errback(d, tw_failure_new(TW_ECONNLOST, "the TLS connection was never made"));
        tw_deferred_unref(d);
    }
    tw_tls_context_unref(tf->ctx);
    free(tf->hostname);
    free(tf);
}

static tw_protocol *tls_build(tw_factory *fb, const tw_address *peer)
{
    tw__tls_factory *tf = factory_of(fb);
    tw_factory *w = tf->wrapped;
    tw_protocol *inner = w->ops->build_protocol(w, peer);
    if (inner == NULL)
        return NULL;
    inner->factory = w;
    tw_protocol *base;
    if (tw__tls_conn_new(tf->ctx, tf, inner, tf->ctx->side, tf->hostname, &base) < 0) {
        if (inner->ops->destroy != NULL)
            inner->ops->destroy(inner);
        return NULL;
    }
    if (tf->connected != NULL)
        tf->conn = base; /* tw_connect_tls's one connection, for a cancel */
    return base;
}

static void tls_start_factory(tw_factory *fb)
{
    tw_factory_start(factory_of(fb)->wrapped);
}

static void tls_stop_factory(tw_factory *fb)
{
    tw__tls_factory *tf = factory_of(fb);
    tw_factory_stop(tf->wrapped);
    if (tf->owner_is_users) {
        tf->owner_is_users = 0;
        tw__tls_factory_unref(tf);
    }
}

/* The TCP connect failed: there was no TLS connection to tell. */
static void tls_client_failed(tw_factory *fb, const tw_failure *reason)
{
    tw__tls_factory *tf = factory_of(fb);
    if (tf->connected != NULL) {
        tw_deferred *d = tf->connected;
        tf->connected = NULL;
        tw_deferred_errback(d, tw_failure_ref((tw_failure *)reason));
        tw_deferred_unref(d);
    }
    tw_factory *w = tf->wrapped;
    if (w->ops->client_connection_failed != NULL)
        w->ops->client_connection_failed(w, reason);
}

/* A connection ended; one whose handshake failed was reported as a failed
 * connect already (connection.c), just before this. */
static void tls_client_lost(tw_factory *fb, const tw_failure *reason)
{
    tw__tls_factory *tf = factory_of(fb);
    if (tf->inner_failed) {
        tf->inner_failed = 0;
        return;
    }
    tw_factory *w = tf->wrapped;
    if (w->ops->client_connection_lost != NULL)
        w->ops->client_connection_lost(w, reason);
}

static void tls_factory_destroy(tw_factory *fb)
{
    tw__tls_factory_unref(factory_of(fb));
}

static const tw_factory_ops tls_factory_ops = {
    .build_protocol = tls_build,
    .start_factory = tls_start_factory,
    .stop_factory = tls_stop_factory,
    .client_connection_failed = tls_client_failed,
    .client_connection_lost = tls_client_lost,
    .destroy = tls_factory_destroy,
};

TW_API int tw_tls_factory_new(tw_tls_context *ctx, const char *hostname, tw_factory *wrapped,
                              tw_factory **out)
{
    if (ctx == NULL || wrapped == NULL || out == NULL)
        return -EINVAL;
    if (ctx->side == TW_TLS_CLIENT && ctx->verify && hostname == NULL && ctx->hostname == NULL)
        return -EINVAL;
    tw__tls_factory *tf = calloc(1, sizeof *tf);
    if (tf == NULL)
        return -ENOMEM;
    if (hostname != NULL && (tf->hostname = strdup(hostname)) == NULL) {
        free(tf);
        return -ENOMEM;
    }
    tw_factory_init(&tf->base, &tls_factory_ops);
    tf->wrapped = wrapped;
    tf->ctx = tw_tls_context_ref(ctx);
    tf->refs = 1;
    *out = &tf->base;
    return 0;
}

TW_API tw_protocol *tw_tls_unwrap(tw_protocol *p)
{
    tw_protocol *inner = tw__tls_conn_inner(p);
    return inner != NULL ? inner : p;
}
