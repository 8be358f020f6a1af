/* SPDX-License-Identifier: MIT */
/*
 * Built as peerecho.so: echo that first tells each client who it is. On
 * connection_made it writes "peer ADDRESS\n" with what
 * tw_transport_get_peer() says and logs the same line, then sends back
 * every byte. Behind a load balancer speaking the PROXY protocol, a client
 * compares the line with its own address to check that twine sees the
 * client, not the balancer (tests/check_haproxy.sh).
 */
#include <stdio.h>
#include <stdlib.h>
#include <twine.h>

static void peerecho_made(tw_protocol *p)
{
    tw_address a;
    char who[TW_ADDRSTRLEN] = "?";
    if (tw_transport_get_peer(p->transport, &a) == 0)
        tw_address_format(&a, who, sizeof who);
    char line[TW_ADDRSTRLEN + 8];
    int n = snprintf(line, sizeof line, "peer %s\n", who);
    tw_log(TW_LOG_INFO, "peerecho", "peer %s", who);
    tw_transport_write(p->transport, line, (size_t)n);
}

static void peerecho_data(tw_protocol *p, const void *data, size_t len)
{
    tw_transport_write(p->transport, data, len);
}

static void peerecho_lost(tw_protocol *p, const tw_failure *reason)
{
    (void)p;
    (void)reason;
}

static void peerecho_destroy(tw_protocol *p)
{
    free(p);
}

static const tw_protocol_ops peerecho_ops = {
    .connection_made = peerecho_made,
    .data_received = peerecho_data,
    .connection_lost = peerecho_lost,
    .destroy = peerecho_destroy,
};

static tw_protocol *peerecho_build(tw_factory *f, const tw_address *peer)
{
    (void)f;
    (void)peer;
    tw_protocol *p = calloc(1, sizeof *p);
    if (p != NULL)
        p->ops = &peerecho_ops;
    return p;
}

static void peerecho_factory_destroy(tw_factory *f)
{
    free(f);
}

static const tw_factory_ops peerecho_factory_ops = {
    .build_protocol = peerecho_build,
    .destroy = peerecho_factory_destroy,
};

static tw_factory *peerecho_make_factory(tw_reactor *r, const tw_options *opts, char *err,
                                         size_t errlen)
{
    (void)r;
    (void)opts;
    tw_factory *f = malloc(sizeof *f);
    if (f == NULL) {
        snprintf(err, errlen, "out of memory creating the peerecho factory");
        return NULL;
    }
    tw_factory_init(f, &peerecho_factory_ops);
    return f;
}

TW_PLUGIN(peerecho, .type = TW_PLUGIN_PROTOCOL, .name = "peerecho",
          .description = "echo that first writes 'peer ADDRESS' as the transport reports it",
          .ctx = &(const tw_plugin_protocol){.make_factory = peerecho_make_factory});
