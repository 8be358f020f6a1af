/* SPDX-License-Identifier: MIT */
/*
 * The in-memory pump: see mempump.h. A close on one side is delivered to
 * the other as the peer's clean EOF (TW_EDONE), or as a reset (-ECONNRESET)
 * when it was an abort, exactly the reasons a socket would give.
 */
#include "config.h"

#include <errno.h>

#include "mempump.h"

int tu_pump_connect(tu_pump *pump, tw_protocol *client, tw_protocol *server)
{
    pump->client_sent = pump->server_sent = 0;
    pump->server = tu_mem_new(server);
    if (pump->server == NULL)
        return -1;
    pump->client = tu_mem_new(client);
    if (pump->client == NULL) {
        tu_mem_free(pump->server);
        pump->server = NULL;
        return -1;
    }
    return 0;
}

/* Move up to @p chunk bytes of @p from's output to @p to. @return bytes moved. */
static size_t move(tu_mem *from, tu_mem *to, size_t chunk, size_t *sent)
{
    size_t len;
    const char *out = tu_mem_output(from, &len);
    if (*sent >= len || to->lost || from->abort_calls > 0)
        return 0; /* an abort drops what was not delivered yet */
    size_t n = len - *sent;
    if (chunk > 0 && n > chunk)
        n = chunk;
    tu_mem_feed(to, out + *sent, n);
    *sent += n;
    return n;
}

/* A side that closed, once all it wrote was delivered, ends its peer too. */
static int propagate_close(tu_mem *from, tu_mem *to, size_t sent)
{
    size_t len;
    tu_mem_output(from, &len);
    int aborted = from->abort_calls > 0;
    /* A lose flushes first; an abort drops whatever was not delivered. */
    if (!from->closing || from->lost || (!aborted && sent < len))
        return 0;
    tu_mem_run_close(from);
    if (!to->lost)
        tu_mem_lose(to, aborted ? -ECONNRESET : TW_EDONE);
    return 1;
}

size_t tu_pump_flush(tu_pump *pump, size_t chunk, size_t max_rounds)
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

void tu_pump_free(tu_pump *pump)
{
    tu_mem_free(pump->client);
    tu_mem_free(pump->server);
    pump->client = pump->server = NULL;
}
