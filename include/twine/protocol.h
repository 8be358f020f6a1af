/* SPDX-License-Identifier: MIT */
/*
 * Protocols and factories, with Twisted's lifecycle.
 *
 * A protocol is the per-connection object: a table of callbacks (ops) plus
 * state. A user's protocol embeds struct tw_protocol as a member and gets
 * back to itself with tw_container_of(). A factory builds one protocol per
 * connection and has start/stop hooks that run when the first listener (or
 * client connection) starts using it and when the last one stops.
 *
 * Lifecycle of one connection:
 *   build_protocol(factory, peer)   may refuse by returning NULL
 *   connection_made(p)              p->transport is set
 *   data_received(p, data, len)*    data is borrowed for the call only
 *   connection_lost(p, reason)      exactly once, reason borrowed
 *   destroy(p)                      after connection_lost returned
 *
 * Ownership: the transport owns its protocol from build_protocol() until it
 * calls ops->destroy (which may be NULL when the protocol's memory is owned
 * elsewhere). The factory is owned by whoever made it; listeners and
 * connections borrow it, so it must outlive them.
 */
#ifndef TWINE_PROTOCOL_H
#define TWINE_PROTOCOL_H

#include <stddef.h>
#include <twine/address.h>
#include <twine/common.h>
#include <twine/failure.h>

TW_BEGIN_DECLS

typedef struct tw_protocol tw_protocol;
typedef struct tw_factory tw_factory;
typedef struct tw_transport tw_transport;

typedef struct tw_protocol_ops {
    /** The connection is up; p->transport may be written to. */
    void (*connection_made)(tw_protocol *p);
    /** Bytes arrived. @p data is valid only during the call. */
    void (*data_received)(tw_protocol *p, const void *data, size_t len);
    /**
     * The connection is gone. @p reason is borrowed (tw_failure_ref() it to
     * keep it): TW_EDONE for a clean close, TW_EABORTED after
     * tw_transport_abort_connection(), a negated errno such as -ECONNRESET
     * otherwise.
     */
    void (*connection_lost)(tw_protocol *p, const tw_failure *reason);
    /**
     * Optional. When set, the peer's EOF (half-close) calls this instead of
     * closing the connection; the protocol may still write, then close.
     */
    void (*read_connection_lost)(tw_protocol *p);
    /** Optional. Our side's shutdown(SHUT_WR) completed. */
    void (*write_connection_lost)(tw_protocol *p);
    /** Optional. The transport's write buffer rose above its high watermark. */
    void (*pause_producing)(tw_protocol *p);
    /** Optional. The write buffer drained below its low watermark. */
    void (*resume_producing)(tw_protocol *p);
    /** Optional. Free the protocol; called once, after connection_lost. */
    void (*destroy)(tw_protocol *p);
    /**
     * Optional. How many bytes of the peer's input the protocol holds now
     * (a partial line, message or box: tw_line_receiver_buffered(),
     * tw_string_receiver_buffered(), tw_amp_parser_buffered()). The
     * transport asks after each data_received and counts the answer against
     * the reactor's input budget (tw_reactor_set_input_budget()).
     */
    size_t (*buffered_input)(tw_protocol *p);
    /**
     * Optional, UNIX stream transports: the peer sent a descriptor
     * (SCM_RIGHTS, tw_transport_send_fds()), as Twisted's
     * fileDescriptorReceived. The protocol owns @p fd from here on and
     * closes it. Called once per descriptor, in the order sent, just before
     * the data_received carrying the bytes they came with; at most
     * TW_TRANSPORT_FDS_MAX per read, and the transport closes any beyond
     * that. Without this op, and once the protocol closes its transport,
     * received descriptors are closed.
     */
    void (*file_descriptor_received)(tw_protocol *p, int fd);
    /**
     * Optional, for a protocol that is a layer of its own between the
     * transport and another protocol (TLS, a wrapper): the transport
     * decided to close for a reason of its own (its listener's idle
     * timeout, a graceful stop's drain, the reactor's input budget; the
     * reason is noted already and is what the statistics count) and asks
     * the layer to end its part in order first. The layer finishes what
     * it must (TLS: encrypt what is pending, then send close_notify) and
     * then calls tw_transport_lose_connection() on its transport, whose
     * close then sends what is queued, the FIN, and lingers; a wrapper
     * forwards the call to the protocol it wraps, or closes its transport
     * when that protocol has no such op. Called at most once per
     * connection, never after the transport began closing; a layer that
     * has not closed when the transport closes for a reason of its own
     * again is closed under it. Without this op the transport closes as
     * tw_transport_lose_connection() would.
     */
    void (*close_requested)(tw_protocol *p);
} tw_protocol_ops;

struct tw_protocol {
    const tw_protocol_ops *ops; /**< public: set by the builder */
    tw_transport *transport;    /**< read-only: set before connection_made */
    tw_factory *factory;        /**< read-only: the factory that built it, or NULL */
};

typedef struct tw_factory_ops {
    /**
     * Build a protocol for a connection from (or to) @p peer, or refuse it by
     * returning NULL, which closes the connection at once.
     */
    tw_protocol *(*build_protocol)(tw_factory *f, const tw_address *peer);
    /** Optional. The first listener or connection started using @p f. */
    void (*start_factory)(tw_factory *f);
    /** Optional. The last listener or connection stopped using @p f. */
    void (*stop_factory)(tw_factory *f);
    /** Optional, client factories: an outgoing connection failed. */
    void (*client_connection_failed)(tw_factory *f, const tw_failure *reason);
    /** Optional, client factories: an established outgoing connection ended. */
    void (*client_connection_lost)(tw_factory *f, const tw_failure *reason);
    /** Optional. Free the factory; called by tw_factory_free(). */
    void (*destroy)(tw_factory *f);
} tw_factory_ops;

struct tw_factory {
    const tw_factory_ops *ops; /**< public */
    unsigned users;            /**< private: listeners and connections using it */
};

/** Initialise the base of a factory. */
TW_API void tw_factory_init(tw_factory *f, const tw_factory_ops *ops);

/**
 * Free a factory through ops->destroy. The caller must have closed every
 * listener and connection using it. NULL is ignored.
 */
TW_API void tw_factory_free(tw_factory *f);

/**
 * Count a new user of @p f, calling start_factory for the first. Listeners
 * and client connections do this; custom transports may too.
 */
TW_API void tw_factory_start(tw_factory *f);

/** Drop a user, calling stop_factory after the last. */
TW_API void tw_factory_stop(tw_factory *f);

/**
 * A factory that builds one protocol of @p ops per connection, as Twisted's
 * Factory.forProtocol does, for protocols that need no state of the
 * factory's own.
 *
 * Each protocol is @p size zeroed bytes, whose first member is the struct
 * tw_protocol (so tw_container_of() reaches the rest). Its ops are a copy
 * of @p ops kept by the factory, whose destroy frees the protocol's memory
 * after calling @p ops->destroy, which must therefore release only what the
 * protocol holds, never the protocol itself (NULL when it holds nothing).
 * A protocol built here must keep the ops it was given.
 *
 * @param ops borrowed for the call (the factory keeps a copy).
 * @param size at least sizeof(tw_protocol).
 * @return the factory, owned by the caller and freed with tw_factory_free()
 *         after every connection it built is gone; NULL when @p size is too
 *         small (errno EINVAL) or memory runs out (errno ENOMEM).
 */
TW_API tw_factory *tw_factory_for_protocol(const tw_protocol_ops *ops, size_t size);

TW_END_DECLS

#endif
