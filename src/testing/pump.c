/* SPDX-License-Identifier: MIT */
/*
 * The loopback pump of the test kit (include/twine/testing.h): two string
 * transports whose output records are each other's input. Each side's
 * @c *_sent counts how much of its record the other has been fed, so a
 * round moves at most one chunk each way and a test can stop after any
 * round. Closes travel behind the bytes, as a FIN follows the data on a
 * socket: a lose or a half-close reaches the peer only once everything
 * written before it was delivered, while an abort (a reset) overtakes what
 * was still in flight. The reasons are a socket's: the peer's clean EOF
 * (TW_EDONE) or -ECONNRESET.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "testing/testing_internal.h"

TW_API int tw_pump_connect(tw_pump *pump, tw_reactor *r, tw_protocol *client, tw_protocol *server)
{
    pump->client_sent = pump->server_sent = 0;
    pump->server = tw__string_transport_attach(r, server);
    if (pump->server == NULL) {
        pump->client = NULL;
        return -ENOMEM;
    }
    pump->client = tw__string_transport_attach(r, client);
    if (pump->client == NULL) {
        server->transport = NULL;
        free(pump->server); /* nothing ran on it: no record, no callback */
        pump->server = NULL;
        return -ENOMEM;
    }
    /* Each side's peer is the other's host. */
    tw_address_from_ip(&pump->client->host, "127.0.0.1", 40000);
    tw_address_from_ip(&pump->client->peer, "127.0.0.1", 7);
    pump->server->peer = pump->client->host;
    pump->server->host = pump->client->peer;
    tw__string_transport_make(pump->server);
    tw__string_transport_make(pump->client);
    return 0;
}

/* Move up to @p chunk bytes of @p from's output to @p to. @return bytes moved. */
static size_t move(tw_string_transport *from, tw_string_transport *to, size_t chunk, size_t *sent)
{
    size_t len;
    const char *out = tw_string_transport_output(from, &len);
    if (*sent >= len || to->lost || to->read_eof || from->abort_calls > 0)
        return 0; /* an abort drops what was not delivered yet */
    size_t n = len - *sent;
    if (chunk > 0 && n > chunk)
        n = chunk;
    tw_string_transport_feed(to, out + *sent, n);
    *sent += n;
    return n;
}

/*
 * Once all @p from wrote before closing was delivered (at once for an
 * abort), end it and its peer. @return 1 if something was delivered.
 */
static int propagate_close(tw_string_transport *from, tw_string_transport *to, size_t sent)
{
    size_t len;
    tw_string_transport_output(from, &len);
    int aborted = from->abort_calls > 0;
    if (from->lost || (!aborted && sent < len))
        return 0;
    if (from->closing) {
        tw_string_transport_run_close(from);
        if (!to->lost)
            tw_string_transport_lose(to, aborted ? -ECONNRESET : TW_EDONE);
        return 1;
    }
    if (from->write_shut_requested && !to->read_eof && !to->lost) {
        tw_string_transport_run_close(from); /* write_connection_lost */
        tw_string_transport_feed_eof(to);
        /* A peer that does not half-close answers the FIN by closing. */
        if (to->lost && !from->lost)
            tw_string_transport_lose(from, TW_EDONE);
        return 1;
    }
    return 0;
}

TW_API size_t tw_pump_flush(tw_pump *pump, size_t chunk, size_t max_rounds)
{
    size_t rounds = 0;
    while (rounds < max_rounds) {
        size_t moved = move(pump->client, pump->server, chunk, &pump->client_sent);
        moved += move(pump->server, pump->client, chunk, &pump->server_sent);
        int closed = propagate_close(pump->client, pump->server, pump->client_sent);
        closed += propagate_close(pump->server, pump->client, pump->server_sent);
        if (moved == 0 && closed == 0)
            break;
        rounds++;
    }
    return rounds;
}

TW_API void tw_pump_free(tw_pump *pump)
{
    tw_string_transport_free(pump->client);
    tw_string_transport_free(pump->server);
    pump->client = pump->server = NULL;
}
