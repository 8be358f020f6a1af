/* SPDX-License-Identifier: MIT */
/*
 * The stream transport shared by TCP, TCP6 and UNIX connections, whether
 * accepted by a listener or made by a client connect. Listeners, connects
 * and adoption call into it; it calls none of them back except through the
 * group hook below, so the dependency runs one way.
 */
#ifndef TWINE_STREAM_INTERNAL_H
#define TWINE_STREAM_INTERNAL_H

#include <stdint.h>
#include <twine/address.h>
#include <twine/listener.h>
#include <twine/protocol.h>
#include <twine/transport.h>

#include "core/list_internal.h"

/* How a stream came to be, which decides who hears of its end. */
typedef enum {
    TW__STREAM_ACCEPTED, /* by a listener, whose group counts it */
    TW__STREAM_ADOPTED,  /* tw_transport_adopt(): a user of its factory */
    TW__STREAM_CLIENT    /* an outgoing connect: also client_connection_lost */
} tw__stream_origin;

/* What a member keeps about itself for its owner's close records (an
 * access log), only when the group asks: most groups pay nothing for it. */
typedef struct tw__stream_record {
    tw_address peer, host;        /* host len 0 when getsockname failed */
    double started;               /* reactor seconds */
    double duration;              /* seconds, filled in at the end */
    uint64_t bytes_in, bytes_out; /* read from the socket, taken by the kernel */
} tw__stream_record;

/* How a member of a group ended. */
typedef struct tw__stream_end {
    tw_close_reason reason;
    int code;                          /* what connection_lost reported */
    const tw__stream_record *record;   /* with want_records, else NULL */
} tw__stream_end;

/* The connections one owner counts, embedded in that owner: a listener's
 * group holds those it accepted, the reactor's (stream.c) those no listener
 * accepted (connects and adoptions). A stream is a member from its start
 * until its protocol is gone; the owner then hears of it through
 * member_done, and a listener sweeps its members for idle ones without
 * looking at any other connection of the reactor. */
typedef struct tw__stream_group {
    tw__list members;    /* the member streams */
    double idle_timeout; /* seconds of silence that close a member; 0: never */
    int want_records;    /* members keep a record, for member_done's end */
    /* Bytes read from and sent to the members so far, the open ones too. */
    uint64_t bytes_in, bytes_out;
    /* TLS handshakes on the members, as the layer above told them
     * (tw__stream_note_tls): completed, and failed by reason. */
    uint64_t tls_handshakes, tls_failures[TW_TLS_FAILURES];
    /* A member's protocol heard connection_lost and was destroyed. */
    void (*member_done)(struct tw__stream_group *g, const tw__stream_end *end);
} tw__stream_group;

/*
 * Wrap the connected, non-blocking socket @p fd in a stream transport, build
 * its protocol with @p f and call connection_made. The stream takes @p fd
 * (closing it on every error). @p group must be set for accepted streams,
 * which join it; the others join the reactor's group (tw_reactor_conn_stats()),
 * which counts them. Adopted and client streams count as users of @p f
 * (tw_factory_start/stop) for their lifetime; client streams also call the
 * factory's client_connection_lost when they end.
 * @param out if non-NULL, receives the protocol (valid until destroy).
 * @return 0; -ECONNREFUSED when the factory refused the connection;
 *         -ENOMEM. On error @p group did not gain a member.
 */
int tw__stream_start(tw_reactor *r, int fd, tw_factory *f, const tw_address *peer,
                     tw__stream_origin origin, tw__stream_group *group, tw_protocol **out);

/* The client a PROXY header named for the stream transport @p t: its
 * close record reports it as the peer. Nothing for any other transport,
 * or a stream that keeps no record. */
void tw__stream_note_peer(tw_transport *t, const tw_address *peer);

/* A TLS layer on the stream transport @p t finished its handshake: @p ok,
 * or it failed for @p why. Counted in the stream's group; nothing for any
 * other transport, or a stream whose protocol is gone. */
void tw__stream_note_tls(tw_transport *t, int ok, tw_tls_failure why);

/* Why the stream transport @p t is ending, as its group will count it,
 * asked by the layer above from its connection_lost. @return 0, or
 * -EINVAL for any other transport. */
int tw__stream_close_reason(tw_transport *t, tw_close_reason *out);

/* Close, with reason TW_EIDLE, every member of @p g that was silent for
 * g->idle_timeout seconds. */
void tw__stream_close_idle(tw_reactor *r, tw__stream_group *g);

#endif
