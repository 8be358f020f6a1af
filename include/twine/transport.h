/* SPDX-License-Identifier: MIT */
/*
 * Transports: the connection a protocol writes to. The calls here work on
 * every kind of stream transport (TCP over IPv4 and IPv6, UNIX sockets, and
 * the test kit's string transport, <twine/testing.h>), and on the pipe
 * transports over other descriptors (tw_transport_adopt_pipe(), standard
 * IO, a process endpoint), whose differences their constructors state.
 *
 * Writes never block. Inside one of twine's callbacks, a connection's
 * writes are gathered and leave in one system call when the callback
 * returns; outside any, a write goes straight to the socket when nothing is
 * queued. Only what the kernel refuses stays queued. The queue has a high
 * and a low watermark: crossing the high one calls the protocol's
 * pause_producing, draining below the low one calls resume_producing.
 * While a producer is registered (tw_transport_register_producer()) only
 * that producer is paused and resumed, as in Twisted, where only the
 * registered producer hears of the watermarks; a protocol paused before the
 * registration still gets its resume_producing.
 *
 * Nothing here calls the protocol back synchronously except
 * pause_producing/resume_producing: connection_lost always runs later, from
 * the loop, so a protocol may close its own transport inside data_received
 * and keep using both until the callback returns.
 */
#ifndef TWINE_TRANSPORT_H
#define TWINE_TRANSPORT_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <twine/address.h>
#include <twine/common.h>
#include <twine/protocol.h>
#include <twine/reactor.h>

TW_BEGIN_DECLS

/**
 * The most descriptors that go with one message of tw_transport_send_fds(),
 * and that one read hands to file_descriptor_received (the rest are closed).
 */
#define TW_TRANSPORT_FDS_MAX 16

/** Who is at the other end of a UNIX socket (tw_transport_get_peer_credentials()). */
typedef struct tw_peer_credentials {
    pid_t pid; /**< the peer's process, or -1 where the system does not say */
    uid_t uid; /**< its effective user */
    gid_t gid; /**< its effective group */
} tw_peer_credentials;

/** Default write-queue watermarks. */
#define TW_WRITE_HIGH_WATERMARK (64 * 1024)
#define TW_WRITE_LOW_WATERMARK (16 * 1024)

/**
 * A producer: something that writes into a transport (a consumer) and can be
 * told to pause, resume or stop, as Twisted's IPushProducer/IPullProducer.
 * Embed it in your own struct and recover yours with tw_container_of().
 */
typedef struct tw_producer tw_producer;

typedef struct tw_producer_ops {
    /** Streaming producers: the transport's queue rose above its high watermark. */
    void (*pause_producing)(tw_producer *p);
    /**
     * Streaming producers: the queue drained below the low watermark.
     * Pull producers: the queue is empty; write the next piece now.
     */
    void (*resume_producing)(tw_producer *p);
    /** The connection is gone; produce nothing more. Called once. */
    void (*stop_producing)(tw_producer *p);
} tw_producer_ops;

struct tw_producer {
    const tw_producer_ops *ops;
};

/**
 * Why a connection ended, as its listener's statistics
 * (tw_listener_stats()) and close hook count it, or the reactor's for the
 * connections no listener accepted (tw_reactor_conn_stats()). A TLS
 * connection names the reasons TLS decides (a broken handshake or record
 * is a protocol error, the handshake timeout a timeout, the peer's
 * close_notify or FIN the peer's close). A stream transport works
 * most of them out itself; a protocol that closes for a reason of its own
 * names it first with tw_transport_set_close_reason(). The names of
 * tw_close_reason_name() are stable: metrics use them as label values.
 */
typedef enum tw_close_reason {
    TW_CLOSE_PEER = 0,       /**< "peer": the peer closed it (its FIN) */
    TW_CLOSE_LOCAL,          /**< "local": the protocol closed it */
    TW_CLOSE_IDLE,           /**< "idle_timeout": the listener's idle timeout */
    TW_CLOSE_TIMEOUT,        /**< "timeout": a protocol's own timeout (tw_timeout, a PROXY header) */
    TW_CLOSE_TOO_LONG,       /**< "too_long": over-long input (a line, a frame, a box) */
    TW_CLOSE_PROTOCOL_ERROR, /**< "protocol_error": the peer broke the protocol */
    TW_CLOSE_REFUSED,        /**< "refused": refused once accepted (a wrapped factory's choice) */
    TW_CLOSE_OVERLOAD,       /**< "overload": the reactor's input budget was exceeded */
    TW_CLOSE_SHUTDOWN,       /**< "shutdown": the reactor stopped */
    TW_CLOSE_ABORT,          /**< "abort": tw_transport_abort_connection() */
    TW_CLOSE_ERROR,          /**< "error": a socket error, such as a reset by the peer */
    TW_CLOSE_REASONS         /**< how many reasons there are */
} tw_close_reason;

/**
 * @return the stable name of @p reason ("peer", "idle_timeout", ...), or
 *         "unknown" for a value out of range. Never NULL.
 */
TW_API const char *tw_close_reason_name(tw_close_reason reason);

/** The operations a transport implementation provides. */
typedef struct tw_transport_ops {
    int (*writev)(tw_transport *t, const struct iovec *iov, int iovcnt);
    void (*lose_connection)(tw_transport *t);
    void (*abort_connection)(tw_transport *t);
    int (*lose_write_connection)(tw_transport *t);
    void (*pause_producing)(tw_transport *t);
    void (*resume_producing)(tw_transport *t);
    int (*get_peer)(tw_transport *t, tw_address *out);
    int (*get_host)(tw_transport *t, tw_address *out);
    size_t (*write_buffer_size)(tw_transport *t);
    void (*set_write_watermarks)(tw_transport *t, size_t high, size_t low);
    int (*fileno)(tw_transport *t); /**< NULL: no descriptor */
    int (*register_producer)(tw_transport *t, tw_producer *p, int streaming);
    void (*unregister_producer)(tw_transport *t);
    int (*disconnecting)(tw_transport *t);
    /** NULL: the transport keeps no statistics (see tw_transport_set_close_reason()) */
    void (*set_close_reason)(tw_transport *t, tw_close_reason reason);
    /** NULL: descriptors cannot be sent (not a UNIX stream). */
    int (*send_fds)(tw_transport *t, const void *data, size_t len, const int *fds, int nfds);
} tw_transport_ops;

struct tw_transport {
    const tw_transport_ops *ops; /**< private to the implementation */
    tw_protocol *protocol;       /**< read-only: the protocol it drives (tw_transport_start_tls() puts its TLS layer here) */
    tw_reactor *reactor;         /**< read-only; may be NULL for a string transport */
};

/**
 * Queue @p len bytes for sending; the bytes are copied (or sent at once).
 * Writes made inside one of twine's callbacks (data_received, a timer, a
 * deferred's callback fired from those) are gathered and leave together,
 * in one system call per connection, when the outermost callback returns;
 * a write made outside every callback goes out at once. Either way no
 * write waits for the next loop pass.
 * Writes made after tw_transport_lose_connection() are still taken and sent
 * before the FIN, as Twisted takes them until the connection is lost.
 * @return 0; TW_ESTATE after abort, after the write side was shut (FIN sent)
 *         or once the connection is lost (the data is dropped, as Twisted
 *         drops it); -ENOMEM.
 *         A socket error is not returned here: it closes the connection and
 *         reaches connection_lost with its errno.
 */
TW_API int tw_transport_write(tw_transport *t, const void *data, size_t len);

/** Gathering form of tw_transport_write(): one system call for all parts. */
TW_API int tw_transport_writev(tw_transport *t, const struct iovec *iov, int iovcnt);

/**
 * Close in order: everything queued (and written until then) is sent, then
 * a FIN, and connection_lost(TW_EDONE) follows from the loop. Input is no
 * longer delivered: what arrives is discarded, and after the FIN the socket
 * lingers until the peer's EOF or the reactor's linger timeout
 * (tw_reactor_set_linger_timeout()), so the close sends no reset. Idempotent.
 */
TW_API void tw_transport_lose_connection(tw_transport *t);

/**
 * Close now with a TCP RST, dropping anything queued;
 * connection_lost(TW_EABORTED) follows from the loop. Idempotent.
 */
TW_API void tw_transport_abort_connection(tw_transport *t);

/**
 * Half-close: shutdown(SHUT_WR) once the queue has flushed; reading goes on.
 * The protocol's write_connection_lost runs after the shutdown.
 * @return 0, or TW_ESTATE if the transport is closing or not a socket stream.
 */
TW_API int tw_transport_lose_write_connection(tw_transport *t);

/**
 * @return nonzero once tw_transport_lose_connection() or
 *         tw_transport_abort_connection() was called or the connection is
 *         closing for another reason (Twisted's transport.disconnecting):
 *         a protocol delivering buffered messages stops there.
 */
TW_API int tw_transport_disconnecting(tw_transport *t);

/** Stop reading from the peer (the transport as a producer). Idempotent. */
TW_API void tw_transport_pause_producing(tw_transport *t);

/** Resume reading after tw_transport_pause_producing(). Idempotent. */
TW_API void tw_transport_resume_producing(tw_transport *t);

/** The remote address. @return 0, or a negated errno. */
TW_API int tw_transport_get_peer(tw_transport *t, tw_address *out);

/** The local address. @return 0, or a negated errno. */
TW_API int tw_transport_get_host(tw_transport *t, tw_address *out);

/** @return the bytes queued and not yet accepted by the kernel. */
TW_API size_t tw_transport_write_buffer_size(tw_transport *t);

/**
 * Set the queue's watermarks (defaults 64 KiB / 16 KiB). @p low is clamped
 * to @p high.
 */
TW_API void tw_transport_set_write_watermarks(tw_transport *t, size_t high, size_t low);

/**
 * Register @p p to feed this transport, as Twisted's registerProducer.
 * A streaming producer (@p streaming nonzero) writes on its own and is
 * paused and resumed as the queue crosses the watermarks, instead of the
 * protocol (which hears nothing of the watermarks while a producer is
 * registered, as in Twisted). A pull producer
 * (@p streaming zero) is asked for more with resume_producing each time the
 * queue empties, starting at once (from the loop, not from this call). When
 * the connection ends the producer gets stop_producing and is unregistered.
 *
 * The producer is borrowed: it must stay valid until it is unregistered or
 * has received stop_producing.
 * @return 0; TW_ESTATE if a producer is already registered or the
 *         connection is closing (a closing transport calls stop_producing
 *         on @p p at once, as Twisted does).
 */
TW_API int tw_transport_register_producer(tw_transport *t, tw_producer *p, int streaming);

/** Forget the registered producer without calling it. Idempotent. */
TW_API void tw_transport_unregister_producer(tw_transport *t);

/**
 * Say why the connection is about to close, before closing it, so that its
 * statistics and close hook (tw_listen_options.on_close) report @p reason
 * rather than TW_CLOSE_LOCAL. The first reason given wins, and one the
 * transport found itself first (the peer's FIN, an error) is kept: the
 * reason is what ended the connection, not the last thing said about it.
 * It changes nothing else: connection_lost still reports the close's code.
 * Transports that keep no statistics ignore it. Never calls back.
 */
TW_API void tw_transport_set_close_reason(tw_transport *t, tw_close_reason reason);

/**
 * @return the transport's socket descriptor, for setsockopt() and the like,
 *         or -1 for transports without one. The transport keeps owning it.
 */
TW_API int tw_transport_fileno(tw_transport *t);

/**
 * Send @p nfds descriptors over a UNIX stream transport with the @p len
 * bytes of @p data, as Twisted's sendFileDescriptor: the descriptors go
 * with the first byte of @p data (SCM_RIGHTS), and the bytes take their
 * place in the stream like any write (batched, queued, flushed before a
 * close). The transport sends duplicates, made here: the caller keeps its
 * descriptors and may close them at once. Duplicates not sent yet are
 * closed when the connection ends. The peer's protocol gets them through
 * file_descriptor_received.
 * @return 0; -EINVAL for @p len 0 (descriptors need a byte to ride on) or
 *         @p nfds outside 1..TW_TRANSPORT_FDS_MAX; -EBADF for a descriptor
 *         that is not open; -EOPNOTSUPP for a transport that is not a UNIX
 *         stream; TW_ESTATE and -ENOMEM as tw_transport_write(). On error
 *         nothing was sent.
 */
TW_API int tw_transport_send_fds(tw_transport *t, const void *data, size_t len, const int *fds,
                                 int nfds);

/**
 * The credentials of the process at the other end of a UNIX transport:
 * SO_PEERCRED on Linux (the peer as it was when it connected, or when the
 * listening side called listen()), getpeereid() elsewhere (no pid). Never
 * calls back.
 * @return 0; -EOPNOTSUPP for a transport that is not over a UNIX socket;
 *         another negated errno from the system.
 */
TW_API int tw_transport_get_peer_credentials(tw_transport *t, tw_peer_credentials *out);

/**
 * Adopt an already connected descriptor, as Twisted's
 * adoptStreamConnection does: build a protocol with @p f and run it over
 * @p fd. A stream socket (TCP or UNIX) becomes a stream transport. Any
 * other descriptor (a pipe, a FIFO, a terminal, a character device, a
 * regular file) becomes a pipe transport that reads it, writes it or both,
 * as its access mode (O_RDONLY, O_WRONLY, O_RDWR) allows: see
 * tw_transport_adopt_pipe() for how such a transport behaves.
 * The transport takes ownership of @p fd (made non-blocking); it closes it
 * on error. connection_made runs before this returns.
 * @return 0; -ECONNREFUSED if the factory refused; -ENOMEM; a negated
 *         errno for a descriptor that cannot be used (-EBADF).
 */
TW_API int tw_transport_adopt(tw_reactor *r, int fd, tw_factory *f);

/**
 * Run a protocol built by @p f over two descriptors that are not sockets:
 * it reads @p read_fd and writes @p write_fd (either may be -1, not both),
 * as Twisted's StandardIO does with a pair of pipes. Both are taken (made
 * non-blocking and close-on-exec, closed with the transport or on error).
 *
 * The transport keeps the stream transport's rules: writes never block
 * and go out at once (a pipe write is not batched), the rest queued with
 * the same watermarks and producers; a regular file, which cannot be
 * polled, is read a chunk per loop pass. EOF on @p read_fd ends the
 * connection after the queue flushed, unless the protocol has
 * read_connection_lost (half-close), which it then hears; a terminal's EIO
 * counts as EOF. tw_transport_lose_write_connection() closes @p write_fd
 * once flushed (the reader's EOF). A write error (EPIPE, without SIGPIPE)
 * ends the connection with that errno. tw_transport_get_peer() and
 * get_host() return -ENOTSOCK; tw_transport_fileno() is @p read_fd while it
 * is open, then @p write_fd.
 * connection_made runs before this returns.
 * @return 0; -EINVAL for no descriptor or the same one twice (dup() it);
 *         -ECONNREFUSED if the factory refused; -ENOMEM; a negated errno.
 */
TW_API int tw_transport_adopt_pipe(tw_reactor *r, int read_fd, int write_fd, tw_factory *f);

TW_END_DECLS

#endif
