/* SPDX-License-Identifier: MIT */
/*
 * reactord's internal interfaces, shared by its files. Each file owns one
 * concept: the command line (options.c), the protocol modules (plugins.c),
 * the crash guard around their code (guard.c), the listening endpoints
 * (endpoints.c), the start-up report (status.c), daemonising (daemon.c),
 * the pidfile (pidfile.c), privileges and process settings (privileges.c),
 * logging (logging.c), the service manager's notifications (notify.c),
 * the configuration check (check.c), one serving process (serve.c), the
 * worker supervisor (workers.c), the metrics text (metrics.c), the
 * metrics endpoint (metrics_http.c), the workers' share of the metrics
 * (metrics_workers.c), the process's own figures (process.c) and the
 * access log (access_log.c). main.c puts them in order.
 *
 * Errors travel as a sysexits.h code plus one sentence held by status.c
 * (rd_error), so every function unwinds normally and the sentence reaches
 * the operator once: on stderr, or through the status pipe of a daemon or
 * worker whose stderr is no longer a terminal.
 */
#ifndef REACTORD_H
#define REACTORD_H

#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>
#include <twine.h>
#include <twine/udp.h>

struct evbuffer;
struct event_base;

#define RD_MAX_LISTEN 32
#define RD_MAX_OPTIONS 64
#define RD_MAX_PLUGIN_PATHS 32
#define RD_MAX_AMP_COMMANDS 32

/* ------------------------------------------------------------ options.c */

typedef struct rd_config {
    const char *protocol;
    const char *listen[RD_MAX_LISTEN]; /* endpoint descriptions, in order */
    size_t nlisten;
    const char *ports[RD_MAX_LISTEN]; /* --port shorthands, made tcp: later */
    size_t nports;
    const char *interface; /* for --port */
    const char *options[RD_MAX_OPTIONS];
    size_t noptions;
    const char *plugin_path[RD_MAX_PLUGIN_PATHS];
    size_t nplugin_path;
    const char *amp_commands[RD_MAX_AMP_COMMANDS]; /* --amp-commands modules */
    size_t namp_commands;
    int list_protocols;
    const char *help_protocol;
    int daemon;
    const char *pidfile;
    const char *logfile;
    int syslog; /* --syslog: records go to syslog(3), not to a file */
    int check; /* --check: validate the configuration, start nothing */
    tw_log_format log_format;
    tw_log_level log_level;
    const char *user;
    const char *group;
    const char *chdir;
    int umask; /* -1: leave it alone */
    tw_listen_options listen_opts;
    double shutdown_timeout;
    size_t input_budget; /* --input-budget, bytes */
    tw_policy_options policy; /* --throttle-*, --max-per-peer, --log-traffic */
    unsigned workers; /* 0: no supervisor */
    double worker_timeout; /* seconds without a heartbeat; 0: never */
    const char *metrics; /* --metrics ENDPOINT, or NULL */
    int access_log;      /* --access-log: 0 off, else RD_ACCESS_TEXT or RD_ACCESS_JSON */
} rd_config;

enum { RD_ACCESS_TEXT = 1, RD_ACCESS_JSON = 2 };

/* Parse argv into @p cfg. --help and --version are answered here, with
 * *done set. @return 0, or a sysexits code with the sentence recorded. */
int rd_options_parse(int argc, char **argv, rd_config *cfg, int *done);

/* The manual's worth of --help. */
void rd_options_usage(FILE *out);

/* ------------------------------------------------------------ status.c */

/* Record the sentence of a failure. @return @p code, for `return rd_error(...)`. */
int rd_error(int code, const char *fmt, ...) TW_PRINTF(2, 3);

/* The sentence last recorded by rd_error(). */
const char *rd_error_message(void);

/* Send the start-up outcome through @p fd instead of stderr (daemon,
 * worker); @p reader_logs when the reader logs the sentence itself (a
 * worker's supervisor), so a failure here is not logged twice. */
void rd_status_use_pipe(int fd, int reader_logs);

/* The descriptor set by rd_status_use_pipe(), or -1. */
int rd_status_pipe(void);

/* Report the outcome: code 0 with @p detail (may be NULL) means started.
 * Only the first report of a process is sent; the pipe is closed after it. */
void rd_status_report(int code, const char *detail);

/* Tell the operator about @p code and the recorded sentence (stderr or the
 * pipe), once, and log it (rd_logging_fatal); then return @p code. */
int rd_status_fail(int code);

/* rd_status_fail() without logging: for a sentence already logged by the
 * process that failed (a daemon, for the shell that waited for it). */
int rd_status_print(int code);

/* From a crash handler: report @p sentence with @p code as rd_status_fail()
 * would, with write(2) alone, then log it, under an alarm that ends the
 * process should the crash have left the log unusable. */
void rd_status_crash(int code, const char *sentence);

/* Read one report from a status pipe until EOF or @p timeout_ms.
 * @return 1 with *code and @p msg set, 0 on EOF without a report, -1 on
 * timeout. */
int rd_status_read(int fd, int *code, char *msg, size_t len, int timeout_ms);

/* A parsed listening endpoint (endpoints.c). */
typedef struct rd_endpoint rd_endpoint;

/* ------------------------------------------------------------ plugins.c */

typedef struct rd_app {
    const rd_config *cfg;
    tw_plugin_registry *reg;
    const tw_plugin *plugin;
    const tw_plugin_protocol *proto; /* the plugin's context */
    const char *origin;
    tw_options *opts;
} rd_app;

/* Make the registry with the search path of @p cfg. @return 0 or a code. */
int rd_plugins_open(rd_app *app);

/* Print --list-protocols. @return the exit code. */
int rd_plugins_list(rd_app *app);

/* Print --help-protocol NAME. @return the exit code. */
int rd_plugins_help(rd_app *app, const char *name);

/* Find the protocol of cfg->protocol and validate the -o options. */
int rd_plugins_resolve(rd_app *app);

/* Make the protocol's factory, refusing one that is not an AMP factory when
 * --amp-commands was given. @return 0 or a code. */
int rd_plugins_make_factory(rd_app *app, tw_reactor *r, tw_factory **out);

/* Give the factory (an AMP one when there are any) the commands of each
 * --amp-commands module, loading only those: call it after dropping
 * privileges. @return 0 or a code. */
int rd_plugins_add_amp_commands(rd_app *app, tw_factory *f);

/* Make the module's datagram protocol for one udp: endpoint. */
int rd_plugins_make_datagram(rd_app *app, tw_reactor *r, struct tw_datagram_protocol **out);

/* Refuse endpoints the protocol cannot serve (udp: without a datagram
 * protocol), before anything starts. */
int rd_plugins_check_endpoints(rd_app *app, rd_endpoint *const *e, size_t n);

void rd_plugins_close(rd_app *app);

/* ------------------------------------------------------------ guard.c */

/* Until rd_guard_end(), a crash (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT)
 * ends the process with exit code 70 and the sentence "@p what crashed
 * with signal N (NAME)", reported as rd_status_fail() reports one. */
void rd_guard_begin(const char *what);

/* Restore the handlers rd_guard_begin() replaced. */
void rd_guard_end(void);

/* ------------------------------------------------------------ endpoints.c */

/* Parse one endpoint description. @return 0, or EX_USAGE naming the segment. */
int rd_endpoint_parse(const char *desc, rd_endpoint **out);
/* ssl: read the certificate and key again (SIGHUP); connections keep the
 * one they began with, and a failure keeps the old one (logged).
 * @return 0, or the negated errno of the failure. */
int rd_endpoint_reload_tls(rd_endpoint *e);

void rd_endpoint_free(rd_endpoint *e);

/* For --check run away from systemd: accept a systemd: endpoint on its
 * syntax alone when no sockets were passed (with sockets, its index is
 * still checked against them). */
void rd_endpoint_defer_activation_check(void);

/* Whether it is a systemd: endpoint. */
int rd_endpoint_is_activated(const rd_endpoint *e);

/* The description as given, for messages. */
const char *rd_endpoint_describe(const rd_endpoint *e);

/* Whether processes may each listen on it with SO_REUSEPORT. */
int rd_endpoint_shareable(const rd_endpoint *e);

/* Whether it asks for port 0, to be resolved by the first worker. */
int rd_endpoint_wants_any_port(const rd_endpoint *e);

/* Pin the port that port 0 was given, so later workers share it. */
void rd_endpoint_set_port(rd_endpoint *e, int port);

/* Whether it is an ssl: endpoint. */
int rd_endpoint_is_tls(const rd_endpoint *e);

/* Whether it is a udp: endpoint, served by the module's datagram protocol. */
int rd_endpoint_is_datagram(const rd_endpoint *e);

/* Fail with EX_UNAVAILABLE, as listening would, when another socket
 * listens on the TCP port of @p e (a port 0 is always free): for workers,
 * whose SO_REUSEPORT would otherwise share it silently. @return 0 or a code. */
int rd_endpoint_check_free(const rd_endpoint *e, const tw_listen_options *opts);

/* Listen on a stream endpoint. @return 0, or a sysexits code with the
 * sentence recorded. */
int rd_endpoint_listen(rd_endpoint *e, tw_reactor *r, tw_factory *f,
                       const tw_listen_options *opts, tw_listener **out);

/* Bind a udp: endpoint for @p p; on error @p p is still the caller's. */
int rd_endpoint_listen_udp(rd_endpoint *e, tw_reactor *r, struct tw_datagram_protocol *p,
                           struct tw_udp_port **out);

/* ------------------------------------------------------------ privileges.c */

struct rd_credentials {
    int change;  /* nonzero if --user or --group was given */
    uid_t uid;
    gid_t gid;
    char *user; /* for initgroups; NULL with --group alone; owned */
};
typedef struct rd_credentials rd_credentials;

/* Look the names up (before forking, so a typo fails fast). */
int rd_credentials_resolve(const rd_config *cfg, rd_credentials *out);

/* Switch to the credentials, irrevocably; refuse to go on if it fails. */
int rd_credentials_apply(const rd_credentials *c);

/* Make @p path absolute against the current directory (caller frees). */
char *rd_absolute_path(const char *path);

/* ------------------------------------------------------------ daemon.c */

/* Detach: double fork and setsid. In the original process (*parent is 1)
 * it waits for the daemon's start-up report and returns its code, with its
 * sentence recorded; the middle process (*parent is 2) returns at once, to
 * exit; in the daemon (*parent is 0) it returns 0, or a code on failure. */
int rd_daemonize(int *parent);

/* Point stdin, stdout and stderr at /dev/null. */
int rd_detach_stdio(void);

/* ------------------------------------------------------------ pidfile.c */

/* Create the pidfile for this process; a live owner is refused, a stale
 * one removed with a log line. @return 0 or a code. */
int rd_pidfile_acquire(const char *path);

/* Remove the pidfile if this process created it. */
void rd_pidfile_release(void);

/* ------------------------------------------------------------ logging.c */

/* Level and format, before anything is logged. */
void rd_logging_configure(const rd_config *cfg);

/* Open the log file of the configuration, if any, owned by @p owner when
 * privileges will be dropped (so that process can reopen it); NULL keeps
 * the owner. @return 0 or a code. */
int rd_logging_open(const struct rd_credentials *owner);

/* Log a fatal @p sentence in the configured log and format, opening the log
 * file if start-up failed before it was opened. @return 1 when that log is
 * standard error in JSON (the record is the operator's sentence there), 0
 * when stderr still needs the plain sentence. */
int rd_logging_fatal(const char *sentence);

/* The subsystem this process logs under: "reactord", or "worker N". */
void rd_logging_name_process(const char *name);
const char *rd_logging_system(void);

/* "SIGTERM" and the other signals an operator sends, for log lines. */
const char *rd_signal_name(int sig);

/* SIGHUP or SIGUSR1 (@p sig): reopen the log file and say so. */
void rd_logging_reopen(int sig);

/* What starts a line that reactord itself writes to stderr at error
 * priority: "<3>" when stderr is the journal, else "". */
const char *rd_logging_error_prefix(void);

/* The daemon closed the descriptors it inherited: forget syslog's. */
void rd_logging_detached(void);

/* ------------------------------------------------------------ notify.c */

/* Take $NOTIFY_SOCKET from the environment (once, at start-up). */
void rd_notify_init(void);

/* Send @p state ("READY=1", "STOPPING=1", ...) to the service manager, if
 * one gave a NOTIFY_SOCKET; a failure is logged once as a warning. */
void rd_notify(const char *state);

/* ------------------------------------------------------------ serve.c */

typedef struct rd_worker {
    unsigned index;    /* 1-based */
    int beat_fd;       /* the heartbeat pipe to the supervisor */
    double beat_every; /* seconds between heartbeats; 0: none */
    int metrics_fd;    /* the supervisor asks for the metrics here; -1: no --metrics */
} rd_worker;

typedef struct rd_run {
    rd_app *app;
    rd_endpoint *endpoints[RD_MAX_LISTEN];
    size_t nendpoints;
    rd_credentials creds;
    const char *chdir; /* absolute, or NULL */
} rd_run;

/* Serve until SIGTERM or SIGINT, in this process. @p w is NULL unless this
 * is a worker. @return the exit code. */
int rd_serve(rd_run *run, const rd_worker *w);

/* ------------------------------------------------------------ check.c */

/* --check: make the protocol's factory (and datagram protocol) without
 * listening, then free them and say the configuration is valid.
 * @return 0, or the code starting would have failed with. */
int rd_check(rd_run *run);

/* ------------------------------------------------------------ workers.c */

/* Refuse endpoints that workers cannot share, before anything starts. */
int rd_workers_check(const rd_run *run);

/* Run cfg->workers supervised worker processes. @return the exit code. */
int rd_supervise(rd_run *run);

/* ------------------------------------------------------------ process.c */

typedef struct rd_process_figures {
    double start_time;  /* seconds since the Unix epoch */
    double uptime;      /* seconds */
    double cpu_seconds; /* user and system */
    double rss_bytes, virtual_bytes, open_fds, max_fds; /* -1 when unknown */
} rd_process_figures;

/* The process starts now (main(), and each worker after its fork). */
void rd_process_mark_start(void);

void rd_process_read(rd_process_figures *p);

/* ------------------------------------------------------------ metrics.c */

/* What one serving process counts: its listeners, by endpoint, and its
 * protocol's factory. The pointers are borrowed. */
typedef struct rd_figures {
    const char *protocol;
    size_t n;
    const char *names[RD_MAX_LISTEN];        /* endpoint descriptions */
    tw_listener *listeners[RD_MAX_LISTEN];   /* NULL for a udp: endpoint */
    tw_factory *policies[RD_MAX_LISTEN];     /* the policy factory of each, or NULL */
    tw_factory *factory;                     /* the protocol's (AMP: its dispatcher counts) */
    int tls[RD_MAX_LISTEN];                  /* an ssl: endpoint */
} rd_figures;

/* Whether the @p i th listener of @p fig, whose counters are @p st, has
 * TLS figures to show: an ssl: endpoint, or one whose connections
 * switched to TLS (StartTLS). */
int rd_figures_tls(const rd_figures *fig, size_t i, const tw_conn_stats *st);

/* Write the figures as exposition text: with @p headers, HELP and TYPE
 * lines too (a process that serves its own metrics); without, the samples
 * alone, for rd_metrics_merge(). */
void rd_metrics_render(const rd_figures *f, struct evbuffer *out, int headers);

/* The supervisor's own samples: workers running, restarts. */
void rd_metrics_render_supervisor(struct evbuffer *out, unsigned running,
                                  unsigned long long restarts);

/* Samples written without headers, by a worker (labelled worker="N") or
 * by the supervisor itself (worker NULL: no label added). */
typedef struct rd_metrics_part {
    const char *text;
    size_t len;
    const char *worker;
} rd_metrics_part;

/* Write every family once, its HELP and TYPE then its samples from each
 * part in turn. */
void rd_metrics_merge(struct evbuffer *out, const rd_metrics_part *parts, size_t n);

/* ------------------------------------------------------------ metrics_http.c */

typedef struct rd_metrics_server rd_metrics_server;

/* Write the exposition of a scrape into @p out. */
typedef void (*rd_scrape_fn)(struct evbuffer *out, void *arg);

/* Refuse a --metrics endpoint that does not parse or cannot serve HTTP.
 * @return 0, or EX_USAGE with the sentence recorded. */
int rd_metrics_check_endpoint(const char *desc);

/* Bind the --metrics endpoint @p desc and answer GET /metrics on @p base
 * with what @p fn writes. @return 0, or a sysexits code with the sentence
 * recorded (EX_UNAVAILABLE for a port in use). */
int rd_metrics_serve(const char *desc, struct event_base *base, rd_scrape_fn fn, void *arg,
                     rd_metrics_server **out);

/* Stop serving, close the socket and its connections, and remove a UNIX
 * socket file. NULL is ignored. */
void rd_metrics_server_free(rd_metrics_server *s);

/* The same without removing the file: for a forked child's copy. */
void rd_metrics_server_forget(rd_metrics_server *s);

/* ------------------------------------------------------------ metrics_workers.c */

#define RD_MAX_WORKERS 1024
#define RD_MAX_WORKERS_METRICS RD_MAX_WORKERS

/* In a worker: answer the supervisor's requests on w->metrics_fd (which
 * the bufferevent in *@p out then owns) with the samples of @p f, from the
 * loop of @p base. @return 0 or a code. */
struct bufferevent;
int rd_metrics_worker_start(const rd_worker *w, struct event_base *base, const rd_figures *f,
                            struct bufferevent **out);

/* The supervisor's end of one worker's metrics stream. */
typedef struct rd_metrics_peer {
    int fd;             /* non-blocking; -1 while the worker is not running */
    unsigned index;     /* the worker's number, for its label */
    struct evbuffer *in; /* what it sent and was not taken yet */
} rd_metrics_peer;

/* In the supervisor: ask each of the @p n workers for its samples, wait at
 * most @p timeout_ms for them all, and write the merged exposition, with
 * the supervisor's own samples. A worker that does not answer in time is
 * left out of this scrape. */
void rd_metrics_collect(struct evbuffer *out, rd_metrics_peer *peers, size_t n, unsigned running,
                        unsigned long long restarts, int timeout_ms);

/* ------------------------------------------------------------ access_log.c */

/* What the access log of one listener says about it. */
typedef struct rd_access {
    int format; /* RD_ACCESS_TEXT or RD_ACCESS_JSON */
    const char *listener, *protocol;
} rd_access;

/* The listener's close hook (tw_listen_options.on_close); @p arg is an rd_access. */
void rd_access_log(const tw_conn_record *rec, void *arg);

#endif
