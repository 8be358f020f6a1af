/* SPDX-License-Identifier: MIT */
/*
 * The per-peer connection limit (Twisted's LimitConnectionsByPeer): how
 * many connections each peer IP address holds, so that the next one past
 * max_per_peer is refused before the wrapped factory builds anything. The
 * counts live in an array searched linearly; an entry goes when its count
 * reaches zero, so the array holds one entry per address connected now and
 * a search costs at most the number of connections open.
 */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <twine/log.h>

#include "policy/policy_internal.h"

/* The key of @p a; family 0 for an address that is not IP. */
static void key_of(const tw_address *a, tw__peer_key *k)
{
    memset(k, 0, sizeof *k);
    if (a == NULL || a->len == 0)
        return;
    if (a->u.sa.sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)&a->u.storage;
        k->family = AF_INET;
        memcpy(k->addr, &in->sin_addr, 4);
    } else if (a->u.sa.sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)&a->u.storage;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            k->family = AF_INET; /* the same peer over a dual-stack socket */
            memcpy(k->addr, in6->sin6_addr.s6_addr + 12, 4);
        } else {
            k->family = AF_INET6;
            memcpy(k->addr, &in6->sin6_addr, 16);
        }
    }
}

static tw__peer_count *find(tw__policy_factory *f, const tw__peer_key *k)
{
    for (size_t i = 0; i < f->npeers; i++)
        if (memcmp(&f->peers[i].key, k, sizeof *k) == 0)
            return &f->peers[i];
    return NULL;
}

int tw__peers_admit(tw__policy_factory *f, const tw_address *peer, tw__peer_key *key)
{
    memset(key, 0, sizeof *key);
    if (f->opts.max_per_peer == 0)
        return 0;
    tw__peer_key k;
    key_of(peer, &k);
    if (k.family == 0)
        return 0;
    tw__peer_count *e = find(f, &k);
    if (e != NULL && e->count >= f->opts.max_per_peer) {
        char where[TW_ADDRSTRLEN] = "?";
        tw_address_format(peer, where, sizeof where);
        tw_log(TW_LOG_INFO, "policy",
               "refusing a connection from %s: that address holds %u already, the most allowed",
               where, e->count);
        f->peer_refused++;
        return TW_ESTATE;
    }
    if (e == NULL) {
        if (f->npeers == f->peers_cap) {
            size_t cap = f->peers_cap ? f->peers_cap * 2 : 16;
            tw__peer_count *p = realloc(f->peers, cap * sizeof *p);
            if (p == NULL)
                return -ENOMEM;
            f->peers = p;
            f->peers_cap = cap;
        }
        e = &f->peers[f->npeers++];
        e->key = k;
        e->count = 0;
    }
    e->count++;
    *key = k;
    return 0;
}

void tw__peers_leave(tw__policy_factory *f, const tw__peer_key *key)
{
    if (key->family == 0)
        return;
    tw__peer_count *e = find(f, key);
    if (e == NULL || --e->count > 0)
        return;
    *e = f->peers[--f->npeers]; /* order does not matter */
}

void tw__peers_free(tw__policy_factory *f)
{
    free(f->peers);
    f->peers = NULL;
    f->npeers = f->peers_cap = 0;
}
