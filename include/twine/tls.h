/* SPDX-License-Identifier: MIT */
/*
 * TLS: OpenSSL contexts and the TLS transport.
 *
 * A context (tw_tls_context) holds what every connection of one side
 * shares: the certificate, its key and chain, the trust roots, whether a
 * client certificate is required, the ALPN list. Its defaults are the safe
 * ones: TLS 1.2 and 1.3 only, no renegotiation, no compression, the
 * server's cipher preference, session resumption, buffers released while
 * a connection is idle; a client verifies the server's chain against the
 * system's trust store and checks its name, and always sends that name as
 * SNI. Only tw_tls_context_set_insecure_no_verify() turns verification off.
 * A server resumes sessions through tickets (TLS 1.3 and 1.2), sealed
 * with keys that turn every hour (tw_tls_context_set_ticket_key_period()),
 * and, for TLS 1.2 clients that take no ticket, through the context's
 * session cache.
 *
 * The TLS transport is layered on a stream transport: the stream moves the
 * ciphertext, and the protocol above sees plaintext through the ordinary
 * tw_transport calls. Writes made inside one callback are encrypted
 * together when it returns, so a thousand small writes make one record,
 * not a thousand. Watermarks and pause_producing/resume_producing count
 * the encrypted queue plus the plaintext not yet encrypted.
 *
 * A connection's protocol hears connection_made once the handshake is
 * done, so tw_tls_get_info() already answers there; a handshake that fails
 * (or takes longer than the context's handshake timeout, 10 s by default)
 * closes the connection with one logged reason, and the protocol built for
 * it is destroyed without hearing anything. Closing keeps its meaning:
 * tw_transport_lose_connection() sends what is queued, then close_notify,
 * then FIN; tw_transport_lose_write_connection() sends close_notify then
 * FIN and goes on reading; tw_transport_abort_connection() resets. A peer
 * that sends FIN without close_notify (a truncation attack, or a sloppy
 * peer) ends the connection with TW_ETLS, as does a bad record. The closes
 * a stream transport decides itself (a listener's idle timeout, a graceful
 * stop's drain, the reactor's input budget) end the same orderly way: the
 * stream asks the TLS layer first (the protocol op close_requested), which
 * encrypts what is pending and sends close_notify, and the stream then
 * sends what is queued, the FIN, and lingers; the reason the stream noted
 * (idle_timeout, shutdown, overload) is the one its listener counts. A
 * reason the protocol names (tw_transport_set_close_reason()) reaches the
 * stream through the TLS transport, and a close the peer began counts as
 * the peer's. (Max-connections closes a connection before any TLS, and
 * an abort sends no close_notify.)
 *
 * Kernel TLS is not offered: twine's TLS hands every record to the stream
 * through a BIO of its own (so records join the batched write path), while
 * kTLS needs OpenSSL's socket BIO; and Debian 12's OpenSSL 3.0 is built
 * without it (`openssl list -disabled` names KTLS), on kernels that often
 * offer no "tls" in /proc/sys/net/ipv4/tcp_available_ulp.
 *
 * Contexts are reference-counted: every connection holds one, so the
 * creator may release its reference while connections still run.
 *
 * Each handshake is counted once in the counters of the stream it runs on
 * (tw_listener_stats() for a listener's connections, tw_reactor_conn_stats()
 * for the others): tls_handshakes when it completes, tls_failures by
 * tw_tls_failure when it does not.
 */
#ifndef TWINE_TLS_H
#define TWINE_TLS_H

#include <stddef.h>
#include <twine/common.h>
#include <twine/deferred.h>
#include <twine/endpoint.h>
#include <twine/listener.h>
#include <twine/protocol.h>
#include <twine/reactor.h>
#include <twine/transport.h>

TW_BEGIN_DECLS

/** An OpenSSL context for one side of many connections; opaque. */
typedef struct tw_tls_context tw_tls_context;

/** Which side a context (and a connection) plays. */
typedef enum tw_tls_side {
    TW_TLS_CLIENT = 0, /**< connects: verifies the server, sends SNI */
    TW_TLS_SERVER = 1  /**< accepts: presents a certificate */
} tw_tls_side;

/** The default handshake timeout, in seconds. */
#define TW_TLS_HANDSHAKE_TIMEOUT 10.0

/** Seconds a server's session ticket key is used for (an hour). */
#define TW_TLS_TICKET_KEY_PERIOD 3600.0

/** Room for a one-sentence error from the calls below, with its NUL. */
#define TW_TLS_ERRLEN 256

/**
 * A new context for @p side with the safe defaults described above. A
 * client context trusts the system's store; a server context has no
 * certificate until tw_tls_context_use_certificate().
 * @param err if non-NULL, receives one sentence on error (@p errlen bytes).
 * @return the context, with one reference owned by the caller; NULL when
 *         OpenSSL could not make one (out of memory).
 */
TW_API tw_tls_context *tw_tls_context_new(tw_tls_side side, char *err, size_t errlen);

/** Take another reference to @p ctx. @return @p ctx. */
TW_API tw_tls_context *tw_tls_context_ref(tw_tls_context *ctx);

/** Release a reference; the last one frees the context. NULL is ignored. */
TW_API void tw_tls_context_unref(tw_tls_context *ctx);

/** @return the side @p ctx was made for. */
TW_API tw_tls_side tw_tls_context_side(const tw_tls_context *ctx);

/**
 * Load the certificate to present from the PEM file @p cert_file, its key
 * from @p key_file (NULL: the same file) and intermediate certificates
 * from @p chain_file (NULL: those that follow the first certificate in
 * @p cert_file, if any). Everything is read and checked before the context
 * changes, so calling this again (a reload) either replaces all of it or
 * nothing; connections already made keep what they started with.
 * Never calls back.
 * @return 0; -ENOENT or -EACCES (a file missing or unreadable), -EINVAL
 *         (not PEM, a key that does not match the certificate, or a
 *         certificate that has expired or is not yet valid), -ENOMEM; with
 *         one sentence naming the file in @p err.
 */
TW_API int tw_tls_context_use_certificate(tw_tls_context *ctx, const char *cert_file,
                                          const char *key_file, const char *chain_file,
                                          char *err, size_t errlen);

/**
 * Trust only the certificate authorities in @p path (a PEM file of one or
 * more certificates, or a directory of such files, as Twisted's trustRoots;
 * other files there are skipped) instead of the system's store. A server with a required client certificate checks
 * the clients against these.
 * @return 0; -ENOENT, -EACCES or -EINVAL (nothing usable in @p path) with a
 *         sentence in @p err.
 */
TW_API int tw_tls_context_set_trust_roots(tw_tls_context *ctx, const char *path, char *err,
                                          size_t errlen);

/**
 * Servers: ask every client for a certificate and refuse the handshake
 * when it sends none or one that does not verify against the trust roots.
 * @return 0, or -EINVAL for a client context.
 */
TW_API int tw_tls_context_require_client_certificate(tw_tls_context *ctx, int require);

/**
 * Clients: do not verify the server's certificate or name. For tests
 * against throw-away certificates only; the name says what it is.
 * @return 0, or -EINVAL for a server context.
 */
TW_API int tw_tls_context_set_insecure_no_verify(tw_tls_context *ctx, int insecure);

/**
 * Clients: the server name sent as SNI and checked against the server's
 * certificate, for connections that are not given one (tw_connect_tls()
 * gives the endpoint's host). The string is copied.
 * @return 0; -EINVAL for a server context or an empty name; -ENOMEM.
 */
TW_API int tw_tls_context_set_hostname(tw_tls_context *ctx, const char *hostname);

/**
 * The ALPN protocols offered (clients) or accepted (servers), most
 * preferred first, such as {"h2", "http/1.1"}. A server picks the first of
 * its own that the client offers, and goes on without ALPN when none is
 * shared. The strings are copied.
 * @return 0; -EINVAL for an empty name or one longer than 255 bytes;
 *         -ENOMEM.
 */
TW_API int tw_tls_context_set_alpn(tw_tls_context *ctx, const char *const *protocols,
                                   size_t count);

/**
 * Servers: choose the context (hence the certificate) for the name a
 * client sent as SNI. Called during the handshake with @p name (never
 * NULL); returns a context whose certificate answers that name, borrowed
 * (it must live as long as @p ctx), or NULL to keep @p ctx.
 */
typedef tw_tls_context *(*tw_tls_sni_fn)(const char *name, void *arg);

/**
 * Servers: set the SNI callback (NULL removes it). @p arg is borrowed.
 * @return 0, or -EINVAL for a client context.
 */
TW_API int tw_tls_context_set_sni_callback(tw_tls_context *ctx, tw_tls_sni_fn fn, void *arg);

/**
 * Seconds a handshake may take before the connection is closed
 * (default TW_TLS_HANDSHAKE_TIMEOUT); 0 for no limit.
 * @return 0, or -EINVAL for a negative or non-finite value.
 */
TW_API int tw_tls_context_set_handshake_timeout(tw_tls_context *ctx, double seconds);

/**
 * Servers: how long each session ticket key seals tickets (default
 * TW_TLS_TICKET_KEY_PERIOD). Keys turn at multiples of @p seconds on the
 * wall clock; a ticket is accepted under its own period's key and the
 * next period's (and then replaced), so it resumes for between one and
 * two periods, within OpenSSL's session timeout (two hours unless the
 * SSL_CTX says otherwise). Each key is derived one way from the one
 * before, so a key read from a process's memory opens no older ticket;
 * processes forked after the context was made turn the same keys at the
 * same moments. Calling this starts a new series (tickets sealed before
 * are no longer opened): call it before forking.
 * @return 0, -EINVAL for a client context or fewer than 1 second,
 *         -ENOMEM.
 */
TW_API int tw_tls_context_set_ticket_key_period(tw_tls_context *ctx, double seconds);

/**
 * The OpenSSL SSL_CTX behind @p ctx (an `SSL_CTX *`), for settings twine
 * does not wrap (cipher lists, a session cache). Borrowed; changes apply
 * to connections made afterwards.
 */
TW_API void *tw_tls_context_openssl(tw_tls_context *ctx);

/**
 * A factory that runs TLS on each connection, with @p ctx, and the
 * protocols of @p wrapped inside it (Twisted's TLSMemoryBIOFactory). Listen
 * or connect with it as with any factory; the listener or connect sees the
 * TLS layer's protocol, and tw_tls_unwrap() finds @p wrapped's.
 * @param ctx referenced by the factory and by each connection.
 * @param hostname clients: the server name to send and check, copied; NULL
 *        for the context's (tw_tls_context_set_hostname()).
 * @param wrapped borrowed: it must outlive the factory.
 * @return 0 and the factory in *@p out (owned by the caller, freed with
 *         tw_factory_free() once its connections are gone); -EINVAL when
 *         a client has no name to check while verifying; -ENOMEM.
 */
TW_API int tw_tls_factory_new(tw_tls_context *ctx, const char *hostname, tw_factory *wrapped,
                              tw_factory **out);

/**
 * @return the protocol that @p p, a TLS layer's protocol built by a
 *         tw_tls_factory_new() factory, carries; @p p itself otherwise.
 */
TW_API tw_protocol *tw_tls_unwrap(tw_protocol *p);

/**
 * Switch a live connection to TLS (Twisted's startTLS): bytes written to
 * @p t before this call go out in the clear, bytes written after it are
 * encrypted once the handshake is done. The protocol keeps running; it is
 * given a TLS transport (its transport field changes) and hears only
 * plaintext from now on. Call it from the protocol's own callback, as
 * Twisted's startTLS is called.
 * @param t a stream transport (TCP or UNIX) that is open.
 * @param server_side TW_TLS_SERVER to answer the handshake, TW_TLS_CLIENT
 *        to start it (checking the context's hostname).
 * @return 0; TW_ESTATE when @p t is closing, already TLS, or not a stream
 *         transport; -EINVAL for a client context with no hostname while
 *         verifying; -ENOMEM.
 */
TW_API int tw_transport_start_tls(tw_transport *t, tw_tls_context *ctx, tw_tls_side server_side);

/** What a connection negotiated, for logs and decisions. */
typedef struct tw_tls_info {
    int handshake_done;     /**< 1 once the handshake completed */
    char version[16];       /**< "TLSv1.3", "TLSv1.2" */
    char cipher[64];        /**< OpenSSL's cipher name */
    char alpn[256];         /**< the protocol ALPN chose; "" for none */
    char server_name[256];  /**< SNI: sent (clients) or received (servers); "" */
    char peer_subject[256]; /**< the peer certificate's subject (RFC 2253); "" for none */
    int peer_verified;      /**< 1 when the peer's certificate verified */
    char verify_error[128]; /**< why it did not, "" when it did or there was none */
} tw_tls_info;

/**
 * Describe the TLS layer of @p t, the transport a TLS connection's
 * protocol writes to.
 * @return 0; TW_ESTATE when @p t is not a TLS transport.
 */
TW_API int tw_tls_get_info(tw_transport *t, tw_tls_info *out);

/** @return nonzero when @p t is a TLS transport. */
TW_API int tw_transport_is_tls(tw_transport *t);

/**
 * The context a TLS endpoint (ssl: server, tls: client) describes: for a
 * server its certificate, key and chain; for a client its trust roots,
 * its own certificate and key when given, and the endpoint's host as the
 * name to check. Files are read now, so a server can read its key before
 * dropping privileges.
 * @return 0 and a new context reference in *@p out; -EINVAL for an endpoint
 *         that is not TLS; a file's error as tw_tls_context_use_certificate()
 *         gives it, with its sentence in @p err.
 */
TW_API int tw_tls_context_from_endpoint(const tw_endpoint *e, tw_tls_context **out, char *err,
                                        size_t errlen);

/**
 * Listen on the stream endpoint @p e with TLS: as tw_endpoint_listen(), each
 * connection running TLS with @p ctx (NULL: the context the endpoint
 * describes, read now) around a protocol of @p f.
 * @return as tw_endpoint_listen(); the deferred fails with the file's
 *         error (-ENOENT, -EACCES, -EINVAL) and its sentence when the
 *         endpoint's certificate or key cannot be used.
 */
TW_API tw_deferred *tw_listen_tls(tw_reactor *r, const tw_endpoint *e,
                                  const tw_listen_options *opts, tw_tls_context *ctx,
                                  tw_factory *f);

/**
 * Connect to the client endpoint @p e with TLS (@p ctx NULL: the context
 * the endpoint describes), checking the server against the endpoint's host
 * unless @p ctx names another.
 * @return a new deferred reference, or NULL when memory runs out. It fires
 *         once the handshake is done, with @p f's protocol (borrowed, valid
 *         until it is destroyed), which heard connection_made just before;
 *         or fails: with the connect's failure, or with TW_ETLS and
 *         OpenSSL's reason ("certificate verify failed: hostname mismatch")
 *         when the handshake fails, and then @p f's
 *         client_connection_failed hears the same. Cancelling it before it
 *         fires aborts the connection.
 */
TW_API tw_deferred *tw_connect_tls(tw_reactor *r, const tw_endpoint *e, tw_tls_context *ctx,
                                   tw_factory *f);

TW_END_DECLS

#endif
