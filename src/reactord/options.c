/* SPDX-License-Identifier: MIT */
/*
 * reactord's command line. Every option is checked here, before anything
 * starts, so a typo costs the operator one sentence and exit code 64 rather
 * than a half-started server. Options that need other knowledge (a module's
 * option table, an endpoint's syntax, a user name) are checked as soon as
 * that knowledge is at hand, still before anything listens.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "reactord.h"

void rd_options_usage(FILE *out)
{
    fprintf(out,
            "Usage: reactord --protocol NAME (--listen ENDPOINT | --port PORT)... [options]\n"
            "Run a twine protocol module as a network server.\n"
            "\n"
            "Protocol:\n"
            "  -p, --protocol NAME        the protocol to serve (see --list-protocols)\n"
            "  -o, --option KEY=VALUE     set a protocol option (repeatable; see\n"
            "                             --help-protocol NAME)\n"
            "      --plugin-path DIR      search DIR for protocol modules NAME.so, before\n"
            "                             TWINE_PLUGIN_PATH and %s (repeatable)\n"
            "      --amp-commands NAME    add the AMP commands of module NAME to the AMP\n"
            "                             protocol served (repeatable)\n"
            "      --list-protocols       list the protocols, where each comes from, and exit\n"
            "      --help-protocol NAME   describe a protocol and its options, and exit\n"
            "\n"
            "Listening:\n"
            "  -l, --listen ENDPOINT      listen on ENDPOINT (repeatable): tcp:PORT\n"
            "                             [:interface=ADDR][:backlog=N], tcp6:PORT[...],\n"
            "                             unix:PATH[:mode=0666][:lockfile=1],\n"
            "                             udp:PORT[:interface=ADDR], unixgram:PATH[:mode=0666],\n"
            "                             systemd:domain=INET:index=N (a PATH of @NAME is an\n"
            "                             abstract name on Linux);\n"
            "                             haproxy:ENDPOINT behind a PROXY protocol balancer;\n"
            "                             ssl:PORT:privateKey=KEY.pem:certKey=CERT.pem\n"
            "                             [:extraCertChain=CHAIN.pem][:interface=ADDR] for TLS\n"
            "                             (read at start; SIGHUP reloads the certificate)\n"
            "      --port PORT            the same as --listen tcp:PORT (repeatable)\n"
            "      --interface ADDR       bind every --port to ADDR (default: all IPv4)\n"
            "      --max-connections N    per endpoint and process (with --workers, in each\n"
            "                             worker), accept at most N connections at once;\n"
            "                             more are accepted and closed at once\n"
            "      --idle-timeout S       close connections silent for S seconds\n"
            "      --shutdown-timeout S   on SIGTERM, let connections drain S seconds\n"
            "                             before closing them (default 30)\n"
            "      --proxy-header-timeout S\n"
            "                             on haproxy: endpoints, close connections whose\n"
            "                             PROXY header is not in after S seconds (default 5)\n"
            "      --input-budget BYTES   input that protocols may hold across all\n"
            "                             connections; past it the one holding the most\n"
            "                             is closed (default 268435456)\n"
            "      --throttle-in BYTES    read at most BYTES a second from each connection\n"
            "      --throttle-out BYTES   write at most BYTES a second to each connection\n"
            "      --throttle-total-in BYTES   read at most BYTES a second from all the\n"
            "                             connections of each endpoint together\n"
            "      --throttle-total-out BYTES  the same for writes\n"
            "      --max-per-peer N       per endpoint, accept at most N connections at\n"
            "                             once from one IP address; more are closed at once\n"
            "      --log-traffic          log every connection's bytes as a hex dump (at\n"
            "                             debug level: with --log-level debug)\n"
            "      --workers N            run N worker processes sharing each TCP port\n"
            "                             with SO_REUSEPORT, restarted if they die\n"
            "      --worker-timeout S     restart a worker silent for S seconds (default 30;\n"
            "                             0: never)\n"
            "\n"
            "Process:\n"
            "  -d, --daemon               detach; exit with the daemon's start-up status\n"
            "      --pidfile PATH         write the process id to PATH; refuse to start while\n"
            "                             a live process owns it\n"
            "      --user USER            switch to USER (name or uid) after listening\n"
            "      --group GROUP          switch to GROUP (name or gid) after listening\n"
            "      --chdir DIR            change to DIR after listening (a daemon's default\n"
            "                             is /)\n"
            "      --umask MASK           set the file mode mask (octal, e.g. 022)\n"
            "\n"
            "Logging:\n"
            "      --logfile PATH         append the log to PATH ('-': standard error, the\n"
            "                             default); SIGHUP reopens it\n"
            "      --log-format FORMAT    text (default) or json, one record a line\n"
            "      --log-level LEVEL      debug, info (default), warn or error\n"
            "      --syslog               send the log to syslog (facility daemon) instead\n"
            "                             (when standard error is the journal, its lines\n"
            "                             carry the journal's <N> priorities by themselves)\n"
            "      --access-log[=FORMAT]  log one info line per closed connection (peer,\n"
            "                             local endpoint, duration, bytes each way, reason)\n"
            "                             as text (default) or json\n"
            "\n"
            "Metrics:\n"
            "      --metrics ENDPOINT     serve Prometheus metrics (text format 0.0.4) at\n"
            "                             http://ENDPOINT/metrics, e.g.\n"
            "                             tcp:9100:interface=127.0.0.1; with --workers the\n"
            "                             supervisor serves every worker's, labelled\n"
            "                             worker=\"N\"\n"
            "\n"
            "  -t, --check                check the options, the protocol and its options,\n"
            "                             the endpoints and the user, then exit: 0 if\n"
            "                             reactord would start; nothing listens\n"
            "  -h, --help                 show this help and exit\n"
            "  -V, --version              show the version and exit\n"
            "\n"
            "SIGTERM, SIGINT or SIGQUIT stops gracefully and exits 0 (a second one closes the\n"
            "connections still open at once); SIGHUP or SIGUSR1 reopens the log.\n"
            "Exit codes (sysexits.h): 64 usage, 67 unknown user or group, 69 unavailable\n"
            "(address in use, pidfile held), 70 internal error, 71 system error, 73 cannot\n"
            "create a file, 77 permission denied, 78 configuration (a module refused).\n"
            "\n"
            "Examples:\n"
            "  reactord --protocol echo --port 9000\n"
            "  reactord -p line -l tcp:9001 -l unix:/run/line.sock -o max-length=4096\n"
            "  reactord -p echo --port 7 --user nobody --daemon --pidfile /run/echo.pid \\\n"
            "           --logfile /var/log/echo.log\n",
            tw_plugin_installed_dir());
}

static int parse_port(const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno != 0 || v < 0 || v > 65535)
        return -1;
    return (int)v;
}

static int parse_seconds(const char *flag, const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || errno != 0 || !isfinite(v) || v < 0 || v > 1e9)
        return rd_error(EX_USAGE, "%s needs a number of seconds, not '%s'", flag, s);
    *out = v;
    return 0;
}

static int parse_count(const char *flag, const char *s, unsigned long long max,
                       unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s == '\0' || *s == '-' || *end != '\0' || errno != 0 || v == 0 || v > max)
        return rd_error(EX_USAGE, "%s needs a whole number from 1 to %llu, not '%s'", flag, max,
                        s);
    *out = v;
    return 0;
}

/* A bandwidth limit, in bytes a second. */
static int parse_rate(const char *flag, const char *s, double *out)
{
    unsigned long long v;
    if (parse_count(flag, s, 1ULL << 40, &v) != 0)
        return EX_USAGE;
    *out = (double)v;
    return 0;
}

static int append(const char **v, size_t *n, size_t max, const char *what, const char *s)
{
    if (*n == max)
        return rd_error(EX_USAGE, "at most %zu %s can be given", max, what);
    v[(*n)++] = s;
    return 0;
}

enum {
    OPT_PORT = 256,
    OPT_INTERFACE,
    OPT_SHUTDOWN,
    OPT_LIST,
    OPT_HELP_PROTOCOL,
    OPT_PLUGIN_PATH,
    OPT_PIDFILE,
    OPT_LOGFILE,
    OPT_LOGFORMAT,
    OPT_LOGLEVEL,
    OPT_USER,
    OPT_GROUP,
    OPT_CHDIR,
    OPT_UMASK,
    OPT_MAXCONN,
    OPT_IDLE,
    OPT_WORKERS,
    OPT_WORKER_TIMEOUT,
    OPT_INPUT_BUDGET,
    OPT_SYSLOG,
    OPT_PROXY_TIMEOUT,
    OPT_THROTTLE_IN,
    OPT_THROTTLE_OUT,
    OPT_THROTTLE_TOTAL_IN,
    OPT_THROTTLE_TOTAL_OUT,
    OPT_MAX_PER_PEER,
    OPT_LOG_TRAFFIC,
    OPT_AMP_COMMANDS,
    OPT_METRICS,
    OPT_ACCESS_LOG
};

static const struct option longopts[] = {
    {"protocol", required_argument, NULL, 'p'},
    {"listen", required_argument, NULL, 'l'},
    {"port", required_argument, NULL, OPT_PORT},
    {"interface", required_argument, NULL, OPT_INTERFACE},
    {"option", required_argument, NULL, 'o'},
    {"plugin-path", required_argument, NULL, OPT_PLUGIN_PATH},
    {"amp-commands", required_argument, NULL, OPT_AMP_COMMANDS},
    {"list-protocols", no_argument, NULL, OPT_LIST},
    {"help-protocol", required_argument, NULL, OPT_HELP_PROTOCOL},
    {"daemon", no_argument, NULL, 'd'},
    {"pidfile", required_argument, NULL, OPT_PIDFILE},
    {"logfile", required_argument, NULL, OPT_LOGFILE},
    {"log-format", required_argument, NULL, OPT_LOGFORMAT},
    {"log-level", required_argument, NULL, OPT_LOGLEVEL},
    {"syslog", no_argument, NULL, OPT_SYSLOG},
    {"check", no_argument, NULL, 't'},
    {"user", required_argument, NULL, OPT_USER},
    {"group", required_argument, NULL, OPT_GROUP},
    {"chdir", required_argument, NULL, OPT_CHDIR},
    {"umask", required_argument, NULL, OPT_UMASK},
    {"shutdown-timeout", required_argument, NULL, OPT_SHUTDOWN},
    {"max-connections", required_argument, NULL, OPT_MAXCONN},
    {"idle-timeout", required_argument, NULL, OPT_IDLE},
    {"workers", required_argument, NULL, OPT_WORKERS},
    {"worker-timeout", required_argument, NULL, OPT_WORKER_TIMEOUT},
    {"input-budget", required_argument, NULL, OPT_INPUT_BUDGET},
    {"proxy-header-timeout", required_argument, NULL, OPT_PROXY_TIMEOUT},
    {"throttle-in", required_argument, NULL, OPT_THROTTLE_IN},
    {"throttle-out", required_argument, NULL, OPT_THROTTLE_OUT},
    {"throttle-total-in", required_argument, NULL, OPT_THROTTLE_TOTAL_IN},
    {"throttle-total-out", required_argument, NULL, OPT_THROTTLE_TOTAL_OUT},
    {"max-per-peer", required_argument, NULL, OPT_MAX_PER_PEER},
    {"log-traffic", no_argument, NULL, OPT_LOG_TRAFFIC},
    {"metrics", required_argument, NULL, OPT_METRICS},
    {"access-log", optional_argument, NULL, OPT_ACCESS_LOG},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

static int parse_one(int c, const char *arg, rd_config *cfg)
{
    unsigned long long n;
    switch (c) {
    case 'p':
        cfg->protocol = arg;
        return 0;
    case 'l':
        return append(cfg->listen, &cfg->nlisten, RD_MAX_LISTEN, "endpoints", arg);
    case OPT_PORT:
        if (parse_port(arg) < 0)
            return rd_error(EX_USAGE, "--port needs a number from 0 to 65535, not '%s'", arg);
        return append(cfg->ports, &cfg->nports, RD_MAX_LISTEN, "ports", arg);
    case OPT_INTERFACE:
        cfg->interface = arg;
        return 0;
    case 'o':
        return append(cfg->options, &cfg->noptions, RD_MAX_OPTIONS, "options", arg);
    case OPT_PLUGIN_PATH:
        if (arg[0] == '\0')
            return rd_error(EX_USAGE, "--plugin-path needs a directory");
        return append(cfg->plugin_path, &cfg->nplugin_path, RD_MAX_PLUGIN_PATHS,
                      "plugin paths", arg);
    case OPT_AMP_COMMANDS:
        if (arg[0] == '\0')
            return rd_error(EX_USAGE, "--amp-commands needs a module name");
        return append(cfg->amp_commands, &cfg->namp_commands, RD_MAX_AMP_COMMANDS,
                      "AMP command modules", arg);
    case OPT_LIST:
        cfg->list_protocols = 1;
        return 0;
    case OPT_HELP_PROTOCOL:
        cfg->help_protocol = arg;
        return 0;
    case 'd':
        cfg->daemon = 1;
        return 0;
    case 't':
        cfg->check = 1;
        return 0;
    case OPT_SYSLOG:
        cfg->syslog = 1;
        return 0;
    case OPT_PIDFILE:
        if (arg[0] == '\0')
            return rd_error(EX_USAGE, "--pidfile needs a path");
        cfg->pidfile = arg;
        return 0;
    case OPT_LOGFILE:
        if (arg[0] == '\0')
            return rd_error(EX_USAGE, "--logfile needs a path, or '-' for standard error");
        cfg->logfile = arg;
        return 0;
    case OPT_LOGFORMAT:
        if (strcmp(arg, "text") == 0)
            cfg->log_format = TW_LOG_TEXT;
        else if (strcmp(arg, "json") == 0)
            cfg->log_format = TW_LOG_JSON;
        else
            return rd_error(EX_USAGE, "--log-format must be text or json, not '%s'", arg);
        return 0;
    case OPT_LOGLEVEL:
        if (tw_log_level_parse(arg, &cfg->log_level) < 0)
            return rd_error(EX_USAGE, "--log-level must be debug, info, warn or error, not '%s'",
                            arg);
        return 0;
    case OPT_USER:
        cfg->user = arg;
        return 0;
    case OPT_GROUP:
        cfg->group = arg;
        return 0;
    case OPT_CHDIR:
        if (arg[0] == '\0')
            return rd_error(EX_USAGE, "--chdir needs a directory");
        cfg->chdir = arg;
        return 0;
    case OPT_UMASK: {
        char *end;
        errno = 0;
        long v = strtol(arg, &end, 8);
        if (*arg == '\0' || *end != '\0' || errno != 0 || v < 0 || v > 0777)
            return rd_error(EX_USAGE, "--umask needs an octal mask from 0 to 0777, not '%s'", arg);
        cfg->umask = (int)v;
        return 0;
    }
    case OPT_SHUTDOWN:
        return parse_seconds("--shutdown-timeout", arg, &cfg->shutdown_timeout);
    case OPT_IDLE:
        return parse_seconds("--idle-timeout", arg, &cfg->listen_opts.idle_timeout);
    case OPT_PROXY_TIMEOUT:
        return parse_seconds("--proxy-header-timeout", arg,
                             &cfg->listen_opts.proxy_header_timeout);
    case OPT_MAXCONN:
        if (parse_count("--max-connections", arg, (unsigned long long)SIZE_MAX / 2, &n) != 0)
            return EX_USAGE;
        cfg->listen_opts.max_connections = (size_t)n;
        return 0;
    case OPT_WORKERS:
        if (parse_count("--workers", arg, RD_MAX_WORKERS, &n) != 0)
            return EX_USAGE;
        cfg->workers = (unsigned)n;
        return 0;
    case OPT_WORKER_TIMEOUT:
        return parse_seconds("--worker-timeout", arg, &cfg->worker_timeout);
    case OPT_INPUT_BUDGET:
        if (parse_count("--input-budget", arg, (unsigned long long)SIZE_MAX / 2, &n) != 0)
            return EX_USAGE;
        cfg->input_budget = (size_t)n;
        return 0;
    case OPT_THROTTLE_IN:
        return parse_rate("--throttle-in", arg, &cfg->policy.connection_read_limit);
    case OPT_THROTTLE_OUT:
        return parse_rate("--throttle-out", arg, &cfg->policy.connection_write_limit);
    case OPT_THROTTLE_TOTAL_IN:
        return parse_rate("--throttle-total-in", arg, &cfg->policy.read_limit);
    case OPT_THROTTLE_TOTAL_OUT:
        return parse_rate("--throttle-total-out", arg, &cfg->policy.write_limit);
    case OPT_MAX_PER_PEER:
        if (parse_count("--max-per-peer", arg, 1000000, &n) != 0)
            return EX_USAGE;
        cfg->policy.max_per_peer = (unsigned)n;
        return 0;
    case OPT_LOG_TRAFFIC:
        cfg->policy.log_traffic = 1;
        return 0;
    case OPT_METRICS:
        cfg->metrics = arg;
        return rd_metrics_check_endpoint(arg);
    case OPT_ACCESS_LOG:
        if (arg == NULL || strcmp(arg, "text") == 0)
            cfg->access_log = RD_ACCESS_TEXT;
        else if (strcmp(arg, "json") == 0)
            cfg->access_log = RD_ACCESS_JSON;
        else
            return rd_error(EX_USAGE, "--access-log takes text or json, not '%s'", arg);
        return 0;
    default:
        return rd_error(EX_SOFTWARE, "option %d is not handled", c);
    }
}

int rd_options_parse(int argc, char **argv, rd_config *cfg, int *done)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->shutdown_timeout = 30;
    cfg->input_budget = TW_REACTOR_DEFAULT_INPUT_BUDGET;
    cfg->worker_timeout = 30;
    cfg->umask = -1;
    cfg->log_level = TW_LOG_INFO;
    cfg->log_format = TW_LOG_TEXT;
    tw_listen_options_init(&cfg->listen_opts);
    tw_policy_options_init(&cfg->policy);
    *done = 0;

    int c, rc;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":p:l:o:dthV", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            rd_options_usage(stdout);
            *done = 1;
            return 0;
        case 'V':
            printf("reactord (twine) %s, module ABI %d.%d\n", tw_version(), TW_PLUGIN_ABI_MAJOR,
                   TW_PLUGIN_ABI_MINOR);
            *done = 1;
            return 0;
        case ':':
            return rd_error(EX_USAGE, "option '%s' needs a value; see --help", argv[optind - 1]);
        case '?':
            return rd_error(EX_USAGE, "unknown option '%s'; see --help", argv[optind - 1]);
        default:
            if ((rc = parse_one(c, optarg, cfg)) != 0)
                return rc;
        }
    }
    if (optind < argc)
        return rd_error(EX_USAGE, "unexpected argument '%s'; see --help", argv[optind]);
    if (cfg->syslog && cfg->logfile != NULL)
        return rd_error(EX_USAGE, "--syslog and --logfile both say where the log goes; give one");
    if (cfg->syslog && cfg->log_format == TW_LOG_JSON)
        return rd_error(EX_USAGE, "--log-format json applies to a log file or standard error, "
                                  "not to --syslog, whose records are plain messages");
    if (cfg->list_protocols || cfg->help_protocol != NULL)
        return 0;
    if (cfg->protocol == NULL)
        return rd_error(EX_USAGE, "no protocol given; use --protocol NAME (see --list-protocols)");
    if (cfg->nlisten + cfg->nports == 0)
        return rd_error(EX_USAGE, "nowhere to listen; use --listen ENDPOINT or --port PORT");
    if (cfg->nlisten + cfg->nports > RD_MAX_LISTEN)
        return rd_error(EX_USAGE, "at most %d endpoints can be given", RD_MAX_LISTEN);
    if (cfg->interface != NULL && cfg->nports == 0)
        return rd_error(EX_USAGE, "--interface applies to --port; give the interface in the "
                                  "endpoint instead, e.g. tcp:9000:interface=127.0.0.1");
    return 0;
}
