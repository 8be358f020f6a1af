/* SPDX-License-Identifier: MIT */
/*
 * ftclient's state and its two halves: ftclient.c (the command line, the
 * connection, the request) and answers.c (what it does with the server's
 * frames). It makes one request over one connection, so the state is one
 * static object.
 */
#ifndef FTCLIENT_H
#define FTCLIENT_H

#include "ft.h"

typedef struct ft_client {
    tw_reactor *reactor;
    tw_protocol proto;
    tw_string_receiver sr;
    ft_sender sender;
    ft_sink sink; /* a get's body; sink.fd is LOCAL.part once opened */
    int put;      /* 1 for put, 0 for get */
    int fd;       /* put: LOCAL */
    int finished, status;
    const char *name, *local;
    char part[4096];
    char sha[FT_HEX_LEN + 1]; /* put: ours; get: the server's */
    uint64_t size;
} ft_client;

extern ft_client app;

/* Print the outcome (stdout when @p status is 0, else stderr) and stop. */
void client_finish(int status, const char *fmt, ...) TW_PRINTF(2, 3);

/* answers.c: one frame from the server. */
void client_answer(tw_string_receiver *sr, const void *data, size_t len);

#endif
