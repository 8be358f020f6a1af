/* SPDX-License-Identifier: MIT */
/*
 * Listening sockets. A listener accepts connections on a TCP (IPv4 or IPv6)
 * or UNIX stream address and hands each one to a factory-built protocol over
 * a stream transport.
 *
 * Ownership: the caller owns the listener and releases it with
 * tw_listener_close(). tw_reactor_stop() and tw_reactor_free() stop it (it
 * stops accepting and its socket is closed), but the handle stays valid and
 * the caller still releases it. tw_reactor_stop() first accepts the
 * connections already waiting in the backlog (their clients' handshakes
 * are complete), so that they close in order with the other open
 * connections instead of being reset with the socket. The factory is borrowed and must outlive the
 * listener; the listener counts itself as one of the factory's users.
 */
#ifndef TWINE_LISTENER_H
#define TWINE_LISTENER_H

#include <twine/address.h>
#include <twine/common.h>
#include <twine/protocol.h>
#include <twine/proxy.h>
#include <twine/reactor.h>
#include <twine/transport.h>

TW_BEGIN_DECLS

typedef struct tw_listener tw_listener;

/**
 * One connection a listener accepted, as it ended: what an access log
 * writes. Given to tw_listen_options.on_close, valid during that call.
 */
typedef struct tw_conn_record {
    /** The peer's address: with the PROXY protocol, the client its header
     *  named (the balancer's own for a LOCAL header or a connection that
     *  sent no valid header); len 0 when memory for the connection's
     *  record ran out (then the figures below but the reason and code
     *  are 0 too). */
    tw_address peer;
    tw_address host;              /**< the local address; len 0 when it could not be read */
    double duration;              /**< seconds from the accept to the end */
    unsigned long long bytes_in;  /**< bytes read from the peer */
    unsigned long long bytes_out; /**< bytes sent to the peer (taken by the kernel) */
    tw_close_reason reason;       /**< why it ended */
    int code;                     /**< what connection_lost reported: TW_EDONE, a negated errno... */
} tw_conn_record;

/** See tw_listen_options.on_close. */
typedef void (*tw_conn_closed_fn)(const tw_conn_record *rec, void *arg);

/** Why a listener turned a connection away (tw_conn_stats.refused). */
typedef enum tw_refusal {
    /** "max_connections": accepted and closed at once, over max_connections */
    TW_REFUSE_MAX_CONNECTIONS = 0,
    /** "descriptors": out of descriptors (EMFILE, ENFILE) or kernel memory;
     *  the waiting client was accepted on the spare descriptor and closed */
    TW_REFUSE_DESCRIPTORS,
    /** "factory": the factory's build_protocol returned NULL (a policy
     *  factory's per-peer limit is one such refusal: see
     *  tw_policy_factory_refused()) */
    TW_REFUSE_FACTORY,
    TW_REFUSE_REASONS /**< how many reasons there are */
} tw_refusal;

/** @return the stable name of @p r ("max_connections", ...), or "unknown". Never NULL. */
TW_API const char *tw_refusal_name(tw_refusal r);

/**
 * Why a TLS handshake failed (tw_conn_stats.tls_failures), whichever side
 * found out. The names of tw_tls_failure_name() are stable: metrics use
 * them as label values.
 */
typedef enum tw_tls_failure {
    /** "timeout": not done within the context's handshake timeout, or
     *  closed by an idle timeout before it was */
    TW_TLS_FAIL_TIMEOUT = 0,
    /** "protocol_error": the peer's bytes broke the handshake (not TLS at
     *  all, a bad ClientHello, no version or cipher in common) */
    TW_TLS_FAIL_PROTOCOL,
    /** "verify_failed": a certificate did not verify: the peer's here, or
     *  ours at the peer (its alert says so), or a required one was missing */
    TW_TLS_FAIL_VERIFY,
    /** "peer_closed": the peer closed or reset the connection first */
    TW_TLS_FAIL_PEER_CLOSED,
    /** "local": this side closed it first (its protocol, a shutdown, an
     *  abort, memory running out) */
    TW_TLS_FAIL_LOCAL,
    TW_TLS_FAILURES /**< how many reasons there are */
} tw_tls_failure;

/** @return the stable name of @p f ("timeout", ...), or "unknown". Never NULL. */
TW_API const char *tw_tls_failure_name(tw_tls_failure f);

/**
 * A listener's counters since it started, or the reactor's for the
 * connections no listener accepted (tw_reactor_conn_stats()). Counting is plain increments on
 * the paths where the events happen; nothing is counted twice and nothing
 * is sampled, so accepted == open + the sum of closed at any moment.
 */
typedef struct tw_conn_stats {
    unsigned long long accepted; /**< connections given to a protocol */
    unsigned long long open;     /**< of those, the ones whose protocol is not gone yet */
    unsigned long long refused[TW_REFUSE_REASONS]; /**< turned away before any protocol, by reason */
    unsigned long long closed[TW_CLOSE_REASONS];   /**< ended, by reason (tw_close_reason) */
    unsigned long long bytes_in;  /**< read from every connection, closed or open */
    unsigned long long bytes_out; /**< taken by the kernel for every connection, closed or open */
    /** TLS handshakes completed on these connections: a tw_tls_factory_new()
     *  factory's, an ssl: or tls: endpoint's, tw_transport_start_tls()'s */
    unsigned long long tls_handshakes;
    /** TLS handshakes that failed, by reason (tw_tls_failure); such a
     *  connection is also counted closed, by its close reason */
    unsigned long long tls_failures[TW_TLS_FAILURES];
} tw_conn_stats;

typedef struct tw_listen_options {
    int backlog;    /**< listen(2) backlog; default 511 */
    int reuse_port; /**< set SO_REUSEPORT to share the port between processes */
    int v6_only;    /**< set IPV6_V6ONLY on IPv6 listeners (default 0, dual stack) */
    /**
     * Most connections open at once; 0 for no limit. A connection past the
     * limit is accepted and closed at once (so its client is not left
     * hanging in the backlog), counted, and logged at most once a second.
     */
    size_t max_connections;
    /**
     * Close connections that neither received nor sent anything for this
     * many seconds (connection_lost reports TW_EIDLE); 0 for never.
     */
    double idle_timeout;
    /**
     * Nonzero: every connection starts with a PROXY protocol header (version
     * 1 or 2) from a load balancer such as HAProxy; the factory builds the
     * protocol only once it is read, for the client it names, and
     * tw_transport_get_peer() reports that client. See <twine/proxy.h>.
     */
    int proxy_protocol;
    /**
     * With proxy_protocol: seconds the header may take before the
     * connection is closed; default (and 0 means) TW_PROXY_HEADER_TIMEOUT.
     */
    double proxy_header_timeout;
    /**
     * NULL, or called from the loop for each connection the listener
     * accepted, once its protocol heard connection_lost and was destroyed,
     * with the record of the connection (an access log). It may log, count
     * or close the listener; it must not free the reactor. The addresses
     * are read only when it is set.
     */
    tw_conn_closed_fn on_close;
    void *on_close_arg; /**< passed to on_close */
} tw_listen_options;

/** Fill @p o with the defaults. */
TW_API void tw_listen_options_init(tw_listen_options *o);

/**
 * Listen on @p addr (IPv4, IPv6 or UNIX). A restarted server can bind at
 * once: on TCP SO_REUSEADDR is set, so old connections in TIME_WAIT do not
 * block the port; on a UNIX path the listener owns its socket file, as
 * endpoint strings' unix: servers do: a stale socket file (one nobody
 * accepts on) is removed before binding, a live socket or any other kind
 * of file is refused with -EADDRINUSE and left alone, and the file twine
 * created is removed when the listener stops (unless another server has
 * replaced it since). Abstract UNIX addresses have no file.
 *
 * @param opts NULL for the defaults.
 * @param out receives the listener on success.
 * @return 0, or a negated errno (-EADDRINUSE, -EACCES, ...); on error
 *         nothing is left open and the factory was not started.
 */
TW_API int tw_listen(tw_reactor *r, const tw_address *addr, const tw_listen_options *opts,
                     tw_factory *f, tw_listener **out);

/**
 * Listen on an already bound and listening socket (systemd socket
 * activation, or a descriptor inherited from a supervisor). The listener
 * takes ownership of @p fd.
 * @return 0, or a negated errno.
 */
TW_API int tw_listen_fd(tw_reactor *r, int fd, const tw_listen_options *opts, tw_factory *f,
                        tw_listener **out);

/** The bound address (with the real port after binding port 0). @return 0 or a negated errno. */
TW_API int tw_listener_address(const tw_listener *l, tw_address *out);

/** @return how many connections this listener accepted that are still open. */
TW_API size_t tw_listener_connections(const tw_listener *l);

/** @return how many connections were refused because of max_connections. */
TW_API unsigned long long tw_listener_rejected(const tw_listener *l);

/**
 * Fill @p out with the counters of @p l (see tw_conn_stats), the bytes of
 * its open connections included, as of now. A copy of a few counters:
 * cheap enough to call at any time. Works after the listener stopped too
 * (its connections may still be open). Never calls back.
 * @return 0.
 */
TW_API int tw_listener_stats(const tw_listener *l, tw_conn_stats *out);

/**
 * Fill @p out with the counters of the stream connections of @p r that no
 * listener accepted: those made by tw_connect(), by client endpoints
 * (tw_endpoint_connect(), tw_connect_tls(), Happy Eyeballs) and reconnecting
 * clients, and those given to tw_transport_adopt(). Added to every
 * listener's tw_listener_stats(), they count each connection of the
 * reactor once. Here accepted counts the connections given to a protocol
 * (made or adopted), refused[TW_REFUSE_FACTORY] those whose factory's
 * build_protocol returned NULL (the other refusals stay 0), and open,
 * closed, the bytes and the TLS handshakes mean what they mean for a
 * listener. Counting starts with the reactor's first stream. Never calls
 * back.
 * @return 0.
 */
TW_API int tw_reactor_conn_stats(const tw_reactor *r, tw_conn_stats *out);

/**
 * Stop listening and free the listener. Connections it accepted stay open.
 * It may be called from anywhere, as Twisted's stopListening(): from the
 * factory's build_protocol and from the callbacks of the protocols it
 * accepted too; no connection is accepted after it. The handle is invalid
 * afterwards. NULL is ignored.
 */
TW_API void tw_listener_close(tw_listener *l);

TW_END_DECLS

#endif
