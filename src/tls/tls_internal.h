/* SPDX-License-Identifier: MIT */
/*
 * What the files of src/tls share: the context's fields (context.c), which
 * the connections (connection.c) read when they make their SSL objects,
 * and the wrapping factory (factory.c), which connections tell of their
 * handshake's outcome.
 */
#ifndef TWINE_TLS_INTERNAL_H
#define TWINE_TLS_INTERNAL_H

#include <openssl/ssl.h>
#include <twine/deferred.h>
#include <twine/tls.h>

/* A server context's session ticket keys (tickets.c). */
typedef struct tw__tls_tickets tw__tls_tickets;

struct tw_tls_context {
    SSL_CTX *ssl_ctx;
    unsigned refs;
    tw_tls_side side;
    int verify;                 /* clients: verify the server (not insecure) */
    double handshake_timeout;   /* seconds; 0: none */
    char *hostname;             /* clients: the default name to send and check */
    unsigned char *alpn;        /* the ALPN list in wire format (length-prefixed names) */
    size_t alpn_len;
    tw_tls_sni_fn sni;
    void *sni_arg;
    tw__tls_tickets *tickets;   /* servers: the keys that seal session tickets */
};

/* The wrapping factory (factory.c). */
typedef struct tw__tls_factory {
    tw_factory base;
    tw_factory *wrapped;    /* borrowed */
    tw_tls_context *ctx;    /* referenced */
    char *hostname;         /* clients: the name to check; NULL for the context's */
    unsigned refs;          /* the owner's (while set) and each connection's */
    int owner_is_users;     /* tw_listen_tls/tw_connect_tls: freed when its users stop */
    int inner_failed;       /* a connection failed before its protocol was made */
    tw_deferred *connected; /* tw_connect_tls: fires with the handshake; owned */
    tw_deferred *connecting; /* tw_connect_tls: the TCP connect, until it fires */
    tw_protocol *conn;       /* tw_connect_tls: its connection, until it is lost */
} tw__tls_factory;

/* factory.c */
void tw__tls_factory_ref(tw__tls_factory *tf);
void tw__tls_factory_unref(tw__tls_factory *tf);

/* connection.c: a TLS connection carrying @p inner, for the stream that
 * will drive its protocol (returned through @p out); @p tf may be NULL.
 * @return 0, -EINVAL (a client with no name to check), -ENOMEM. */
int tw__tls_conn_new(tw_tls_context *ctx, tw__tls_factory *tf, tw_protocol *inner,
                     tw_tls_side side, const char *hostname, tw_protocol **out);

/* connection.c: the protocol a TLS connection's base carries, or NULL when
 * @p p is no TLS connection's base. */
tw_protocol *tw__tls_conn_inner(tw_protocol *p);

/* tickets.c: give the server context @p ctx its turning ticket keys.
 * @return 0 or -ENOMEM. */
int tw__tls_tickets_init(tw_tls_context *ctx);
void tw__tls_tickets_free(tw__tls_tickets *t);

/* tickets.c: @p ssl, made from @p ctx, seals and opens its tickets with
 * @p ctx's keys whatever context an SNI callback moves it to.
 * @return 0 or -ENOMEM. */
int tw__tls_tickets_attach(tw_tls_context *ctx, SSL *ssl);

/* context.c: one sentence for the error OpenSSL queued (emptying the
 * queue), with the certificate verification's reason when @p ssl has one. */
void tw__tls_reason(SSL *ssl, char *buf, size_t len);

#endif
