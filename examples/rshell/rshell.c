/* SPDX-License-Identifier: MIT */
/*
 * rshell: run commands for a client, the socket tutorials' remote shell
 * done safely, as a twine protocol module built out of tree.
 *
 *     make
 *     reactord --plugin-path . --protocol rshell -o allow=date,uptime \
 *              --listen unix:/run/rshell/sock:mode=0600
 *     ./rsh.py unix:/run/rshell/sock date -u
 *
 * Only the commands of the allowlist run, each resolved to an absolute path
 * when the module loads; the client's frames become the argv of an exec,
 * never a shell's command line. Peers other than loopback and UNIX sockets
 * are refused unless remote=yes. README.md has the protocol (rshell.h) and
 * why each of these matters.
 *
 * This file holds the descriptor, the options and the allowlist (the
 * factory), and the connection, which gathers one request at a time and
 * hands it to job.c.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rshell.h"

void rs_send(rs_conn *c, char tag, const void *data, size_t len)
{
    unsigned char head[5];
    uint32_t n = htonl((uint32_t)(len + 1));
    memcpy(head, &n, 4);
    head[4] = (unsigned char)tag;
    struct iovec iov[2] = {{head, sizeof head}, {(void *)data, len}};
    tw_transport_writev(c->base.transport, iov, len > 0 ? 2 : 1);
}

void rs_refuse(rs_conn *c, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    rs_send(c, '!', text, strlen(text));
}

static void forget_request(rs_conn *c)
{
    for (size_t i = 0; i < c->argc; i++)
        free(c->argv[i]);
    free(c->argv);
    c->argv = NULL;
    c->argc = 0;
}

/* A peer that breaks the protocol is told why and disconnected. */
static void hang_up(rs_conn *c, const char *why)
{
    rs_refuse(c, "%s", why);
    forget_request(c);
    tw_transport_lose_connection(c->base.transport);
}

static void add_argument(rs_conn *c, const char *arg, size_t len)
{
    if (c->argc >= c->srv->max_args) {
        char why[80];
        snprintf(why, sizeof why, "more than %zu arguments", c->srv->max_args);
        hang_up(c, why);
        return;
    }
    if (memchr(arg, '\0', len) != NULL) {
        hang_up(c, "an argument holds a NUL byte");
        return;
    }
    char **argv = realloc(c->argv, (c->argc + 2) * sizeof *argv);
    char *copy = malloc(len + 1);
    if (argv != NULL)
        c->argv = argv;
    if (argv == NULL || copy == NULL) {
        free(copy);
        hang_up(c, "out of memory");
        return;
    }
    memcpy(copy, arg, len);
    copy[len] = '\0';
    c->argv[c->argc++] = copy;
    c->argv[c->argc] = NULL;
}

static const rs_command *find_command(const rs_server *srv, const char *name)
{
    for (size_t i = 0; i < srv->n_commands; i++)
        if (strcmp(srv->commands[i].name, name) == 0)
            return &srv->commands[i];
    return NULL;
}

static void run(rs_conn *c, int keep_stdin)
{
    const rs_command *cmd = c->argc > 0 ? find_command(c->srv, c->argv[0]) : NULL;
    if (c->argc == 0) {
        rs_refuse(c, "no command given");
    } else if (cmd == NULL) {
        rs_refuse(c, "'%.64s' is not an allowed command", c->argv[0]);
    } else {
        int rc = rs_job_start(c, cmd->path, c->argv, keep_stdin);
        if (rc < 0)
            rs_refuse(c, "cannot run %s: %s", cmd->path, strerror(-rc));
        else
            tw_log(TW_LOG_INFO, "rshell", "running %s with %zu argument%s", cmd->path,
                   c->argc - 1, c->argc == 2 ? "" : "s");
    }
    forget_request(c);
}

static void string_received(tw_string_receiver *sr, const void *data, size_t len)
{
    rs_conn *c = tw_container_of(sr, rs_conn, sr);
    const char *frame = data;
    char tag = len > 0 ? frame[0] : '\0';
    if (tag == 'i' || (tag == 'c' && len == 1)) {
        /* Input for the command; for one that already ended, dropped. */
        if (c->job != NULL && tag == 'i')
            rs_job_stdin(c->job, frame + 1, len - 1);
        else if (c->job != NULL)
            rs_job_close_stdin(c->job);
    } else if (c->job != NULL) {
        hang_up(c, "one command at a time: wait for its 'x' frame");
    } else if (len == 0) {
        hang_up(c, "an empty frame");
    } else if (tag == 'a') {
        add_argument(c, frame + 1, len - 1);
    } else if ((tag == 'r' || tag == 's') && len == 1) {
        run(c, tag == 's');
    } else {
        hang_up(c, "not a request frame: expected 'a' ARGUMENT, 'r' or 's'");
    }
}

static void length_limit_exceeded(tw_string_receiver *sr, uint64_t length)
{
    rs_conn *c = tw_container_of(sr, rs_conn, sr);
    char why[96];
    snprintf(why, sizeof why, "a frame of %llu bytes is over the limit of %d",
             (unsigned long long)length, RS_FRAME_MAX);
    hang_up(c, why);
}

static const tw_string_receiver_ops frame_ops = {
    .string_received = string_received,
    .length_limit_exceeded = length_limit_exceeded,
};

static void data_received(tw_protocol *p, const void *data, size_t len)
{
    tw_string_receiver_data_received(&tw_container_of(p, rs_conn, base)->sr, data, len);
}

static void connection_lost(tw_protocol *p, const tw_failure *reason)
{
    (void)reason;
    rs_conn *c = tw_container_of(p, rs_conn, base);
    if (c->job != NULL)
        rs_job_orphan(c->job);
    c->job = NULL;
}

static void destroy(tw_protocol *p)
{
    rs_conn *c = tw_container_of(p, rs_conn, base);
    forget_request(c);
    tw_string_receiver_cleanup(&c->sr);
    free(c);
}

static const tw_protocol_ops conn_ops = {
    .data_received = data_received,
    .connection_lost = connection_lost,
    .destroy = destroy,
};

/* A UNIX socket, loopback, or no address at all (a descriptor handed in). */
static int local_peer(const tw_address *peer)
{
    if (peer == NULL)
        return 1;
    switch (tw_address_family(peer)) {
    case AF_UNIX:
        return 1;
    case AF_INET:
        return (ntohl(((const struct sockaddr_in *)&peer->u.storage)->sin_addr.s_addr) >> 24) ==
               127;
    case AF_INET6: {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)&peer->u.storage)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    default:
        return 0;
    }
}

static tw_protocol *build_protocol(tw_factory *f, const tw_address *peer)
{
    rs_server *srv = tw_container_of(f, rs_server, base);
    if (!srv->remote && !local_peer(peer)) {
        char text[TW_ADDRSTRLEN];
        tw_log(TW_LOG_WARN, "rshell", "refused %s: only loopback and UNIX peers (remote=no)",
               tw_address_format(peer, text, sizeof text));
        return NULL;
    }
    rs_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->base.ops = &conn_ops;
    c->srv = srv;
    tw_string_receiver_init(&c->sr, &c->base, TW_FRAMING_INT32, &frame_ops);
    tw_string_receiver_set_max_length(&c->sr, RS_FRAME_MAX);
    return &c->base;
}

static void destroy_server(tw_factory *f)
{
    rs_server *s = tw_container_of(f, rs_server, base);
    for (size_t i = 0; i < s->n_commands; i++) {
        free(s->commands[i].name);
        free(s->commands[i].path);
    }
    free(s->commands);
    free(s->path_env);
    free(s->cwd);
    free(s);
}

static const tw_factory_ops server_ops = {
    .build_protocol = build_protocol,
    .destroy = destroy_server,
};

static int executable(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/*
 * The absolute path of @p name: itself when absolute, else the first
 * executable NAME in the directories of @p search. @return a new string,
 * or NULL with a sentence in @p err.
 */
static char *resolve(const char *name, const char *search, char *err, size_t errlen)
{
    char path[4096];
    if (strchr(name, '/') != NULL) {
        if (name[0] != '/')
            snprintf(err, errlen, "allow: '%s' is neither a bare name nor an absolute path", name);
        else if (!executable(name))
            snprintf(err, errlen, "allow: '%s' is not an executable file", name);
        else
            return strdup(name);
        return NULL;
    }
    for (const char *dir = search; *dir != '\0';) {
        size_t n = strcspn(dir, ":");
        if (n > 0 && dir[0] == '/' &&
            (size_t)snprintf(path, sizeof path, "%.*s/%s", (int)n, dir, name) < sizeof path &&
            executable(path))
            return strdup(path);
        dir += n + (dir[n] == ':');
    }
    snprintf(err, errlen, "allow: no executable '%s' in path=%s", name, search);
    return NULL;
}

/* Fill srv->commands from "cmd1,cmd2,...". @return 0, or -1 with a sentence. */
static int load_allowlist(rs_server *srv, const char *list, const char *search, char *err,
                          size_t errlen)
{
    size_t n = 1;
    for (const char *p = list; *p != '\0'; p++)
        n += *p == ',';
    if ((srv->commands = calloc(n, sizeof *srv->commands)) == NULL) {
        snprintf(err, errlen, "out of memory reading the allowlist");
        return -1;
    }
    for (const char *p = list;; p++) {
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= 256) {
            snprintf(err, errlen, "allow: each entry is a command name of 1 to 255 characters, "
                                  "separated by commas");
            return -1;
        }
        rs_command *cmd = &srv->commands[srv->n_commands];
        if ((cmd->name = strndup(p, len)) == NULL) {
            snprintf(err, errlen, "out of memory reading the allowlist");
            return -1;
        }
        srv->n_commands++;
        if ((cmd->path = resolve(cmd->name, search, err, errlen)) == NULL)
            return -1;
        p += len;
        if (*p == '\0')
            return 0;
    }
}

static tw_factory *make_server(tw_reactor *r, const tw_options *opts, char *err, size_t errlen)
{
    const char *allow = tw_options_get(opts, "allow");
    const char *search = tw_options_get(opts, "path");
    const char *cwd = tw_options_get(opts, "cwd");
    long long timeout = tw_options_get_int(opts, "timeout", 10);
    long long max_output = tw_options_get_int(opts, "max_output", 1 << 20);
    long long max_args = tw_options_get_int(opts, "max_args", 64);
    struct stat st;
    if (allow == NULL || allow[0] == '\0') {
        snprintf(err, errlen, "rshell runs only the commands it is given: -o allow=CMD1,CMD2");
        return NULL;
    }
    if (timeout < 1 || timeout > 86400 || max_output < 0 || max_args < 1 || max_args > 4096) {
        snprintf(err, errlen, "timeout must be 1 to 86400 seconds, max_output at least 0 and "
                              "max_args 1 to 4096");
        return NULL;
    }
    if (stat(cwd, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "cwd: '%s' is not a directory", cwd);
        return NULL;
    }
    rs_server *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory creating the rshell server");
        return NULL;
    }
    tw_factory_init(&s->base, &server_ops);
    s->reactor = r;
    s->timeout = (double)timeout;
    s->max_output = (size_t)max_output;
    s->max_args = (size_t)max_args;
    s->remote = tw_options_get_bool(opts, "remote", 0);
    size_t n = strlen(search) + 6;
    if ((s->path_env = malloc(n)) != NULL)
        snprintf(s->path_env, n, "PATH=%s", search);
    if (s->path_env == NULL || (s->cwd = strdup(cwd)) == NULL) {
        snprintf(err, errlen, "out of memory creating the rshell server");
        destroy_server(&s->base);
        return NULL;
    }
    if (load_allowlist(s, allow, search, err, errlen) < 0) {
        destroy_server(&s->base);
        return NULL;
    }
    return &s->base;
}

static const tw_option_spec options[] = {
    {"allow", TW_OPTION_STRING, NULL,
     "the commands a client may run, comma-separated: bare names (looked up in path when "
     "the module loads) or absolute paths"},
    {"path", TW_OPTION_STRING, "/usr/local/bin:/usr/bin:/bin",
     "where bare names of allow are looked up; also the commands' whole environment (PATH)"},
    {"cwd", TW_OPTION_STRING, "/", "the commands' working directory"},
    {"timeout", TW_OPTION_INT, "10", "seconds a command may run before it is killed"},
    {"max_output", TW_OPTION_INT, "1048576",
     "bytes of output (stdout and stderr together) sent; past them the command is killed"},
    {"max_args", TW_OPTION_INT, "64", "the most arguments a request may have, the command included"},
    {"remote", TW_OPTION_BOOL, "no",
     "also serve peers that are not loopback or UNIX sockets (there is no authentication)"},
    {NULL, 0, NULL, NULL},
};

TW_PLUGIN(rshell, .type = TW_PLUGIN_PROTOCOL, .name = "rshell",
          .description = "run allowlisted commands for a client, without a shell, with limits",
          .options = options,
          .ctx = &(const tw_plugin_protocol){.make_factory = make_server});
