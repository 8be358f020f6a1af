/* SPDX-License-Identifier: MIT */
/*
 * The PROXY protocol's wrapping factory (proxy.c), which a listener puts in
 * front of its factory when tw_listen_options.proxy_protocol is set.
 */
#ifndef TWINE_PROXY_INTERNAL_H
#define TWINE_PROXY_INTERNAL_H

#include <twine/protocol.h>

/*
 * A factory whose protocols read a PROXY header within @p header_timeout
 * seconds (0 for TW_PROXY_HEADER_TIMEOUT), then run a protocol of @p inner
 * built for the peer the header names. Starting and stopping it starts and
 * stops @p inner, which it borrows. The caller frees it with
 * tw__proxy_factory_free() once no connection it built is left.
 * @return the factory, or NULL when memory runs out.
 */
tw_factory *tw__proxy_factory_new(tw_factory *inner, double header_timeout);

/* Free a factory made by tw__proxy_factory_new(). NULL is ignored. */
void tw__proxy_factory_free(tw_factory *f);

#endif
