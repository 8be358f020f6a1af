/* SPDX-License-Identifier: MIT */
/*
 * The filetransfer module's connection, shared by its three parts:
 * filetransfer.c (the descriptor, the factory and the request dispatch),
 * get.c and put.c. One request is served at a time per connection.
 */
#ifndef FT_SERVER_H
#define FT_SERVER_H

#include "ft.h"

typedef struct ft_server {
    tw_factory base;
    int root;              /* the directory everything is confined to */
    unsigned long uploads; /* numbers the temporary files */
} ft_server;

typedef struct ft_conn {
    tw_protocol base;
    tw_string_receiver sr;
    ft_server *srv;
    int fd, dir;   /* the request's file and its directory, or -1 */
    int receiving; /* a put's body is arriving */
    char leaf[FT_LEAF_MAX + 1], tmp[64], sha[FT_HEX_LEN + 1], name[FT_NAME_MAX + 1];
    uint64_t size, hashed;
    EVP_MD_CTX *hash; /* get: hashing before the header */
    tw_call *step;    /* get: the next hashing step */
    ft_sink sink;     /* put */
    ft_sender sender; /* get */
} ft_conn;

/* Back to idle: close what the last request opened, drop a partial upload. */
void ft_reset(ft_conn *c);
/* Send an error frame with @p why, then ft_reset(). */
void ft_refuse(ft_conn *c, const char *why);

/* get NAME */
void ft_serve_get(ft_conn *c, const char *name);
/* put SIZE SHA256 NAME: the body frames go to ft_put_body(). */
void ft_serve_put(ft_conn *c, const ft_header *h);
void ft_put_body(ft_conn *c, const void *data, size_t len);

#endif
