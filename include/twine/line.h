/* SPDX-License-Identifier: MIT */
/*
 * The line receiver: turns a TCP byte stream into lines, with the semantics
 * of Twisted's LineReceiver, so that line-oriented protocols (chat, SMTP-like
 * commands, HTTP headers) never see how the stream happened to be chunked.
 *
 * It is a component, not a protocol: a protocol embeds a tw_line_receiver,
 * feeds it every chunk from its data_received, and gets whole lines back
 * through the receiver's callbacks, which recover the protocol with
 * tw_container_of(). Replies go through the protocol's transport.
 *
 * Rules, as in Twisted:
 *   - the delimiter is configurable (default "\r\n") and is not part of the
 *     line handed to line_received;
 *   - a line of exactly max_length bytes (default 16384) is accepted;
 *   - while no delimiter has arrived, the line counts as over-long only once
 *     max_length + strlen(delimiter) bytes are buffered, so "xyz\r" then
 *     "\n" is a line at max_length 3; a complete line longer than max_length
 *     is over-long even though its delimiter arrived. Either way
 *     line_length_exceeded gets everything buffered (the over-long line and
 *     whatever followed it), the buffer is emptied, and processing stops for
 *     that chunk. By default it closes the connection;
 *   - set_raw_mode hands the rest of the buffer, and every later chunk, to
 *     raw_data_received; set_line_mode(extra) switches back and parses
 *     @c extra as if it had just arrived;
 *   - a handler that closes the transport (lose or abort) stops the
 *     delivery of the lines still buffered from the same chunk;
 *   - tw_line_receiver_pause_producing() stops the delivery of buffered
 *     lines (and reading from the transport) until
 *     tw_line_receiver_resume_producing(), which delivers them.
 *
 * Data handed to a callback is borrowed for the duration of the call. Feeding
 * more data from inside a callback (set_line_mode(extra) from
 * raw_data_received, typically) is allowed: it is queued behind what is
 * already buffered, as in Twisted. Finding a delimiter is linear in the bytes
 * received however the stream is chunked: a scan never starts again from
 * the beginning of a partial line.
 */
#ifndef TWINE_LINE_H
#define TWINE_LINE_H

#include <stddef.h>
#include <twine/common.h>
#include <twine/protocol.h>

TW_BEGIN_DECLS

/** Default longest line, in bytes, without its delimiter. */
#define TW_LINE_DEFAULT_MAX_LENGTH 16384

/** Longest delimiter tw_line_receiver_set_delimiter() accepts. */
#define TW_LINE_MAX_DELIMITER 16

typedef struct tw_line_receiver tw_line_receiver;

typedef struct tw_line_receiver_ops {
    /**
     * Required. One line arrived, without its delimiter. @p line is borrowed
     * for the call and is not NUL-terminated.
     */
    void (*line_received)(tw_line_receiver *lr, const char *line, size_t len);
    /**
     * Optional. A line went over max_length. @p data is everything that was
     * buffered (see the rules above), borrowed for the call. NULL closes the
     * connection with tw_transport_lose_connection(); a handler that wants
     * that and more must close it itself.
     */
    void (*line_length_exceeded)(tw_line_receiver *lr, const char *data, size_t len);
    /**
     * Needed only in raw mode: bytes arrived (or were left buffered when
     * raw mode began). Borrowed for the call. With NULL, raw data is
     * dropped.
     */
    void (*raw_data_received)(tw_line_receiver *lr, const void *data, size_t len);
} tw_line_receiver_ops;

/** Embed this in a protocol; all fields are private except where marked. */
struct tw_line_receiver {
    const tw_line_receiver_ops *ops; /**< public */
    tw_protocol *protocol;           /**< read-only: whose transport is written to */
    char *buf;                       /* unprocessed bytes are buf[start, end) */
    size_t start, end, cap;
    size_t scanned;    /* no delimiter begins in buf[start, start + scanned) */
    char *pending;     /* data fed from inside a callback, queued */
    size_t pending_len, pending_cap;
    size_t max_length;
    unsigned char delimiter[TW_LINE_MAX_DELIMITER];
    unsigned char delimiter_len;
    unsigned char flags;
};

/**
 * Initialise @p lr for protocol @p p: line mode, delimiter "\r\n",
 * max_length TW_LINE_DEFAULT_MAX_LENGTH. Nothing is allocated until data
 * has to be buffered. @p p and @p ops are borrowed and must outlive @p lr;
 * @p p's transport is looked up at each write, so initialising before
 * connection_made is fine.
 */
TW_API void tw_line_receiver_init(tw_line_receiver *lr, tw_protocol *p,
                                  const tw_line_receiver_ops *ops);

/**
 * Release what @p lr buffers (the protocol's destroy is the place). It must
 * not be called from inside one of @p lr's callbacks. @p lr may be
 * initialised again afterwards.
 */
TW_API void tw_line_receiver_cleanup(tw_line_receiver *lr);

/**
 * Set the delimiter, 1 to TW_LINE_MAX_DELIMITER bytes, copied. Takes effect
 * from the next search, also when called from a callback.
 * @return 0, or -EINVAL for an empty or too long delimiter (nothing changes).
 */
TW_API int tw_line_receiver_set_delimiter(tw_line_receiver *lr, const void *delim, size_t len);

/** @return the delimiter (owned by @p lr) and its length in @p len. */
TW_API const void *tw_line_receiver_delimiter(const tw_line_receiver *lr, size_t *len);

/** Set the longest line accepted, in bytes, without the delimiter. */
TW_API void tw_line_receiver_set_max_length(tw_line_receiver *lr, size_t max_length);

/** @return the longest line accepted. */
TW_API size_t tw_line_receiver_max_length(const tw_line_receiver *lr);

/**
 * Feed bytes received from the peer; the protocol's data_received calls
 * this. The callbacks run synchronously from inside this call (unless the
 * receiver is paused). @p data is only read during the call; the part that
 * does not make a whole line yet is copied. From inside a callback the bytes
 * are queued behind what is buffered and parsed when the callback returns.
 * @return 0; -ENOMEM if the bytes could not be buffered, in which case the
 *         transport was aborted (the stream can no longer be framed).
 */
TW_API int tw_line_receiver_data_received(tw_line_receiver *lr, const void *data, size_t len);

/**
 * Write @p line followed by the delimiter, in one tw_transport_writev().
 * @return what the transport returned: 0 (also after lose_connection, as
 *         the line goes out before the FIN), TW_ESTATE once the connection
 *         was aborted, its write side shut or lost, -ENOMEM; TW_ESTATE also when the protocol has no transport.
 */
TW_API int tw_line_receiver_send_line(tw_line_receiver *lr, const void *line, size_t len);

/**
 * Switch to raw mode: the rest of the buffer and every later chunk go to
 * raw_data_received. From a line_received callback, the bytes after the
 * current line are the first raw data.
 */
TW_API void tw_line_receiver_set_raw_mode(tw_line_receiver *lr);

/**
 * Switch back to line mode and parse @p extra (may be NULL with @p len 0)
 * as if it had just been received: this is how a raw_data_received handler
 * gives back the bytes it did not consume. Called outside a callback it may
 * deliver lines synchronously.
 * @return as tw_line_receiver_data_received().
 */
TW_API int tw_line_receiver_set_line_mode(tw_line_receiver *lr, const void *extra, size_t len);

/** @return nonzero in line mode, 0 in raw mode. */
TW_API int tw_line_receiver_line_mode(const tw_line_receiver *lr);

/**
 * Stop delivering lines (buffered ones included) and stop reading from the
 * transport, as Twisted's LineReceiver.pauseProducing() does. A protocol
 * calls this from its pause_producing to stop producing replies while its
 * peer is not reading them. Idempotent; safe from a callback, where it takes
 * effect once the callback returns.
 */
TW_API void tw_line_receiver_pause_producing(tw_line_receiver *lr);

/**
 * Clear the pause, resume reading from the transport and deliver the
 * buffered lines, which may call back synchronously (not when called from
 * inside a callback: the running delivery then simply goes on).
 */
TW_API void tw_line_receiver_resume_producing(tw_line_receiver *lr);

/** @return nonzero while paused by tw_line_receiver_pause_producing(). */
TW_API int tw_line_receiver_paused(const tw_line_receiver *lr);

/** @return the number of bytes received and not delivered yet. */
TW_API size_t tw_line_receiver_buffered(const tw_line_receiver *lr);

TW_END_DECLS

#endif
