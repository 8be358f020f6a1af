/* SPDX-License-Identifier: MIT */
/*
 * An in-memory client/server pump (Twisted's iosim / loopback): two
 * protocols joined by two in-memory transports, with bytes moved between
 * them only when the test says so. A whole conversation then runs
 * deterministically in one thread with no sockets and no reactor, and a
 * test can stop it after any number of steps.
 */
#ifndef TWINE_TESTS_MEMPUMP_H
#define TWINE_TESTS_MEMPUMP_H

#include "memtransport.h"

typedef struct tu_pump {
    tu_mem *client, *server;
    size_t client_sent, server_sent; /* bytes moved so far, each way */
} tu_pump;

/*
 * Join @p client and @p server (connection_made runs on each, server first,
 * as an accept precedes the client's connect completing). The pump owns
 * both protocols from now on. @return 0, or -1 when memory ran out.
 */
int tu_pump_connect(tu_pump *pump, tw_protocol *client, tw_protocol *server);

/*
 * Move what each side wrote to the other, in chunks of at most @p chunk
 * bytes (0: all at once), and deliver closes, until nothing moves or
 * @p max_rounds rounds passed. @return the rounds that moved something.
 */
size_t tu_pump_flush(tu_pump *pump, size_t chunk, size_t max_rounds);

/* Lose both sides (if not lost) and free both transports and protocols. */
void tu_pump_free(tu_pump *pump);

#endif
