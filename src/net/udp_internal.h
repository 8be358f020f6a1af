/* SPDX-License-Identifier: MIT */
/*
 * What endpoints (endpoint.c) need of datagram ports beyond the public
 * tw_udp_listen(): a UNIX socket file's mode and the stale-file sentence.
 */
#ifndef TWINE_UDP_INTERNAL_H
#define TWINE_UDP_INTERNAL_H

#include <twine/udp.h>

/* tw_udp_listen(), with @p mode (or -1 for what the umask gives) set on a
 * UNIX socket file right after it is bound. @p why receives a sentence
 * when the stale-file rule refuses the path (-EADDRINUSE). */
int tw__udp_listen(tw_reactor *r, const tw_address *addr, int mode, tw_datagram_protocol *p,
                   tw_udp_port **out, const char **why);

#endif
