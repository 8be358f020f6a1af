/* SPDX-License-Identifier: MIT */
/*
 * The rshell module's wire format and its two objects, shared by rshell.c
 * (the descriptor, the allowlist and the connection) and job.c (one running
 * command). Every frame is a 4-byte big-endian length, then that many
 * bytes, the first of which is a tag:
 *
 *   client -> server   'a' ARG     one argv element, in order (argv[0]: a
 *                                  command of the allowlist)
 *                      'r'         run the command built so far, its
 *                                  stdin empty (it reads EOF at once)
 *                      's'         run it with its stdin open: fed by
 *                      'i' DATA    frames, until
 *                      'c'         closes it (the command reads EOF)
 *   server -> client   'o' DATA    the command's standard output
 *                      'e' DATA    its standard error
 *                      'x' STATUS  the end: "exit N" or "signal N", then
 *                                  " timeout" or " output-limit" when the
 *                                  server killed it
 *                      '!' TEXT    refused, one sentence; nothing ran
 *
 * One command runs at a time on a connection; after its 'x' frame the next
 * request may follow. 'i' and 'c' frames that arrive after the command
 * ended (the client could not know) are dropped.
 */
#ifndef RSHELL_H
#define RSHELL_H

#include <stddef.h>
#include <twine.h>
#include <twine/framing.h>
#include <twine/process.h>

#define RS_ARG_MAX 4096            /* the longest argument, in bytes */
#define RS_FRAME_MAX (RS_ARG_MAX + 1)

typedef struct rs_command {
    char *name; /* as the client names it: the allowlist's entry */
    char *path; /* the absolute path run */
} rs_command;

typedef struct rs_server {
    tw_factory base;
    tw_reactor *reactor;
    rs_command *commands;
    size_t n_commands;
    char *path_env;  /* "PATH=...": the child's whole environment */
    char *cwd;       /* the child's working directory */
    double timeout;  /* seconds a command may run */
    size_t max_output; /* bytes of stdout and stderr together */
    size_t max_args;
    int remote;      /* serve peers that are neither loopback nor UNIX */
} rs_server;

typedef struct rs_job rs_job;

typedef struct rs_conn {
    tw_protocol base;
    tw_string_receiver sr;
    rs_server *srv;
    char **argv; /* the request being received: argc strings, NULL-terminated */
    size_t argc;
    rs_job *job; /* the running command, or NULL */
} rs_conn;

/* Send one frame: @p tag, then @p len bytes of @p data. */
void rs_send(rs_conn *c, char tag, const void *data, size_t len);

/* Send a '!' frame with a sentence. */
void rs_refuse(rs_conn *c, const char *fmt, ...) TW_PRINTF(2, 3);

/*
 * Run @p path with @p argv (argv[0] replaced by @p path) for @p c, which
 * must have no job running. @return 0, or the negative errno of the spawn
 * (nothing runs then).
 */
int rs_job_start(rs_conn *c, const char *path, char *const *argv, int keep_stdin);

/* The client's 'i' frame: @p len bytes for the command's stdin. While the
 * pipe is full past its high watermark the connection is not read, so the
 * client waits instead of the server's memory growing. */
void rs_job_stdin(rs_job *j, const void *data, size_t len);

/* The client's 'c' frame: close the command's stdin once written. */
void rs_job_close_stdin(rs_job *j);

/* The connection went away: kill its command and forget the connection. */
void rs_job_orphan(rs_job *j);

#endif
