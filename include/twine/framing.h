/* SPDX-License-Identifier: MIT */
/*
 * Length-prefixed framing: the other answer to "TCP is a byte stream". Each
 * message ("string") is sent after its length, either as a big-endian
 * integer of 1, 2 or 4 bytes (Twisted's Int8StringReceiver,
 * Int16StringReceiver and Int32StringReceiver) or as a netstring,
 * "LEN:PAYLOAD," with LEN in decimal (Twisted's NetstringReceiver).
 *
 * Like the line receiver, a tw_string_receiver is a component a protocol
 * embeds and feeds from its data_received; it calls string_received once per
 * complete message, however the stream was chunked, and writes through the
 * protocol's transport.
 *
 * The network is hostile, so every length is checked against max_length
 * (default 99999, as in Twisted) before a byte is allocated for it:
 *   - integer prefixes: a length over max_length calls
 *     length_limit_exceeded, which by default logs the reason and closes the
 *     connection;
 *   - netstrings: a length with a leading zero ("03:"), a length over
 *     max_length (rejected as soon as its digits exceed it, before the
 *     colon), anything but digits before the colon, and a payload not
 *     followed by a comma are protocol errors: the reason is logged and the
 *     connection closed, as Twisted's NetstringReceiver does.
 * After either, the receiver drops what it buffered and ignores every later
 * byte (tw_string_receiver_broken() tells).
 *
 * Complete messages are handed out straight from the caller's chunk when
 * possible; a message split across chunks is gathered into one buffer of
 * exactly its size. Data handed to a callback is borrowed for the call. A
 * handler that closes the transport stops the delivery of the messages that
 * followed it in the same chunk, and tw_string_receiver_pause_producing()
 * stops delivery until tw_string_receiver_resume_producing().
 */
#ifndef TWINE_FRAMING_H
#define TWINE_FRAMING_H

#include <stddef.h>
#include <stdint.h>
#include <twine/common.h>
#include <twine/protocol.h>

TW_BEGIN_DECLS

/** Default longest message, as Twisted's MAX_LENGTH. */
#define TW_STRING_DEFAULT_MAX_LENGTH 99999

/** How the length of each message is sent. */
typedef enum tw_framing {
    TW_FRAMING_INT8 = 1,     /**< one byte */
    TW_FRAMING_INT16 = 2,    /**< two bytes, big-endian */
    TW_FRAMING_INT32 = 4,    /**< four bytes, big-endian */
    TW_FRAMING_NETSTRING = 0 /**< "LEN:PAYLOAD," */
} tw_framing;

typedef struct tw_string_receiver tw_string_receiver;

typedef struct tw_string_receiver_ops {
    /** Required. One message arrived; @p data is borrowed for the call. */
    void (*string_received)(tw_string_receiver *sr, const void *data, size_t len);
    /**
     * Optional, integer prefixes only: a prefix announced @p length bytes,
     * more than max_length. The receiver is already broken (see above).
     * NULL logs the reason and closes the connection with
     * tw_transport_lose_connection().
     */
    void (*length_limit_exceeded)(tw_string_receiver *sr, uint64_t length);
} tw_string_receiver_ops;

/** Embed this in a protocol; all fields are private except where marked. */
struct tw_string_receiver {
    const tw_string_receiver_ops *ops; /**< public */
    tw_protocol *protocol;             /**< read-only: whose transport is written to */
    size_t max_length;
    size_t length;       /* the current message's length, or the digits so far */
    char *payload;       /* a message split across chunks, gathered */
    size_t have;         /* bytes of it (and of its comma) received */
    char *pending;       /* bytes not parsed yet: paused, or fed from a callback */
    size_t pending_len, pending_cap;
    unsigned char framing;
    unsigned char state;
    unsigned char prefix_have; /* prefix bytes (or length digits) received */
    unsigned char flags;
    unsigned char prefix[4];
};

/**
 * Initialise @p sr for protocol @p p with the given framing and
 * max_length TW_STRING_DEFAULT_MAX_LENGTH. Nothing is allocated. @p p and
 * @p ops are borrowed and must outlive @p sr.
 * @return 0, or -EINVAL for an unknown @p framing.
 */
TW_API int tw_string_receiver_init(tw_string_receiver *sr, tw_protocol *p, tw_framing framing,
                                   const tw_string_receiver_ops *ops);

/**
 * Release what @p sr buffers. Not from inside one of its callbacks. @p sr
 * may be initialised again afterwards.
 */
TW_API void tw_string_receiver_cleanup(tw_string_receiver *sr);

/** @return the framing given to tw_string_receiver_init(). */
TW_API tw_framing tw_string_receiver_framing(const tw_string_receiver *sr);

/**
 * Set the longest message accepted. It applies to the next length read (a
 * message whose length was already accepted is still delivered).
 */
TW_API void tw_string_receiver_set_max_length(tw_string_receiver *sr, size_t max_length);

/** @return the longest message accepted. */
TW_API size_t tw_string_receiver_max_length(const tw_string_receiver *sr);

/**
 * Feed bytes received from the peer; the protocol's data_received calls
 * this. Callbacks run synchronously from inside this call unless paused.
 * @p data is only read during the call. From inside a callback the bytes are
 * queued and parsed once the callback returns.
 * @return 0; TW_EPROTO if the bytes broke the framing (the connection is
 *         being closed; see above); -ENOMEM if they could not be buffered,
 *         in which case the transport was aborted.
 */
TW_API int tw_string_receiver_data_received(tw_string_receiver *sr, const void *data,
                                            size_t len);

/**
 * Write @p data with its length prefix (or as a netstring) in one
 * tw_transport_writev().
 * @return 0; TW_ETOOBIG, writing nothing, when the prefix cannot express
 *         @p len (256 bytes or more for int8, 65536 for int16, 2^32 for
 *         int32); otherwise what the transport returned (0 also after
 *         lose_connection; TW_ESTATE once the connection was aborted, its
 *         write side shut or lost, or when the protocol has no transport).
 */
TW_API int tw_string_receiver_send_string(tw_string_receiver *sr, const void *data, size_t len);

/**
 * Stop delivering messages (buffered ones included) and stop reading from
 * the transport. Idempotent; from a callback it takes effect once the
 * callback returns.
 */
TW_API void tw_string_receiver_pause_producing(tw_string_receiver *sr);

/**
 * Clear the pause, resume reading from the transport and deliver what was
 * buffered, which may call back synchronously (not from inside a callback,
 * where the running delivery simply goes on).
 */
TW_API void tw_string_receiver_resume_producing(tw_string_receiver *sr);

/** @return nonzero while paused. */
TW_API int tw_string_receiver_paused(const tw_string_receiver *sr);

/** @return nonzero once the peer broke the framing or exceeded the limit. */
TW_API int tw_string_receiver_broken(const tw_string_receiver *sr);

/**
 * @return the bytes of memory @p sr holds for partial and unparsed data, so
 *         that a test or an operator can see that it stays bounded.
 */
TW_API size_t tw_string_receiver_buffered(const tw_string_receiver *sr);

TW_END_DECLS

#endif
