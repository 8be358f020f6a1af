/* SPDX-License-Identifier: MIT */
/*
 * The policy factory shared by its parts: the wrapper that forwards between
 * the real transport and the wrapped protocol (wrapper.c), the throttle
 * (throttle.c), the per-peer count (peer_limit.c) and the traffic log
 * (traffic_log.c). The wrapper owns every connection's state; each part
 * keeps its fields here and is called at the points named below.
 */
#ifndef TWINE_POLICY_INTERNAL_H
#define TWINE_POLICY_INTERNAL_H

#include <stdint.h>
#include <twine/address.h>
#include <twine/policies.h>
#include <twine/transport.h>

#include "core/list_internal.h"

/* A token bucket: @c level bytes may pass now; it refills at @c rate a
 * second up to a tenth of a second's worth, and goes negative by what
 * passed beyond it. rate 0: no limit. */
typedef struct tw__bucket {
    double rate, level, last;
} tw__bucket;

/* An IP address as the per-peer count keys it. */
typedef struct tw__peer_key {
    unsigned char family; /* AF_INET or AF_INET6; 0: not counted */
    unsigned char addr[16];
} tw__peer_key;

typedef struct tw__peer_count {
    tw__peer_key key;
    unsigned count;
} tw__peer_count;

typedef struct tw__policy_factory {
    tw_factory base;
    tw_reactor *reactor;
    tw_factory *wrapped; /* borrowed */
    tw_policy_options opts;
    tw__list conns; /* every connection made and not yet lost */
    unsigned long next_id;
    /* throttle.c: the limits shared by every connection */
    tw__bucket in, out;
    tw_call *in_resume, *out_resume; /* pending while the factory is throttled */
    /* peer_limit.c */
    tw__peer_count *peers;
    size_t npeers, peers_cap;
    unsigned long long peer_refused; /* connections refused by max_per_peer */
} tw__policy_factory;

/* The stages of one wrapped connection's flow, as flags that each say who
 * asked for a pause, so that a pause ends only when nobody wants it. */
enum {
    TW__PC_INNER_READ_PAUSED = 1 << 0, /* the wrapped protocol paused reading */
    TW__PC_READ_THROTTLED = 1 << 1,    /* its own read rate is over the limit */
    TW__PC_READ_STOPPED = 1 << 2,      /* the real transport was told to stop reading */
    TW__PC_WM_PAUSED = 1 << 3,         /* the real transport's queue is over its high mark */
    TW__PC_WRITE_THROTTLED = 1 << 4,   /* its own write rate is over the limit */
    TW__PC_PROTO_PAUSED = 1 << 5,      /* the wrapped protocol was told pause_producing */
    TW__PC_PROD_PAUSED = 1 << 6,       /* its streaming producer was told to pause */
    TW__PC_PULL_WANTED = 1 << 7,       /* a pull came while throttled: ask once free */
    TW__PC_MADE = 1 << 8,              /* connection_made ran: on f->conns */
    TW__PC_LOST = 1 << 9               /* connection_lost ran: the real transport is gone */
};

typedef struct tw__policy_conn {
    tw_protocol base;       /* what the real transport drives */
    tw_transport transport; /* what the wrapped protocol writes to; its
                             * protocol field is that protocol (owned: destroyed
                             * with the connection), the one place it is kept,
                             * so that startTLS can put the TLS layer there */
    tw_producer proxy;      /* registered on the real transport for the wrapped producer */
    tw__link link;          /* f->conns, from connection_made to connection_lost */
    tw__policy_factory *f;
    tw_producer *producer;  /* the wrapped protocol's registered producer, borrowed */
    int streaming;
    unsigned flags;
    unsigned long id;       /* for the traffic log */
    tw__peer_key peer;      /* counted in f->peers when family != 0 */
    tw__bucket in, out;
    tw_call *in_resume, *out_resume; /* pending while the connection is throttled */
} tw__policy_conn;

/* wrapper.c: make the real transport read, and the wrapped side produce,
 * exactly as the flags now ask. */
void tw__policy_update_read(tw__policy_conn *c);
void tw__policy_update_write(tw__policy_conn *c);

/* throttle.c */
void tw__throttle_factory_init(tw__policy_factory *f);
void tw__throttle_factory_done(tw__policy_factory *f);
void tw__throttle_conn_init(tw__policy_conn *c);
void tw__throttle_conn_done(tw__policy_conn *c);
void tw__throttle_read(tw__policy_conn *c, size_t bytes);
void tw__throttle_wrote(tw__policy_conn *c, size_t bytes);
int tw__throttle_reads_held(const tw__policy_conn *c);
int tw__throttle_writes_held(const tw__policy_conn *c);

/* peer_limit.c: admit a connection from @p peer, counting it in *key.
 * @return 0, or TW_ESTATE when the peer holds max_per_peer already;
 * -ENOMEM. */
int tw__peers_admit(tw__policy_factory *f, const tw_address *peer, tw__peer_key *key);
/* The connection counted under @p key has ended. */
void tw__peers_leave(tw__policy_factory *f, const tw__peer_key *key);
void tw__peers_free(tw__policy_factory *f);

/* traffic_log.c: @p dir is '<' for bytes received, '>' for bytes sent. */
void tw__traffic_made(tw__policy_conn *c);
void tw__traffic_bytes(tw__policy_conn *c, char dir, const void *data, size_t len);
void tw__traffic_lost(tw__policy_conn *c, const tw_failure *reason);

#endif
