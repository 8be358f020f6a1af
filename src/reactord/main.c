/*
 * reactord: run one protocol module on one or more listening endpoints, the
 * way twistd runs a Twisted application. It uses only libtwine's public
 * API; it is the library's first embedder.
 *
 * Every operator mistake ends in one sentence on stderr and a sysexits.h
 * code, before anything is left half-started.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <twine.h>

#define MAX_LISTEN 32
#define MAX_OPTIONS 64

typedef struct {
    const char *protocol;
    const char *ports[MAX_LISTEN];
    size_t nports;
    const char *interface;
    const char *options[MAX_OPTIONS];
    size_t noptions;
    double shutdown_timeout;
    tw_listen_options listen;
} config;

static const char *progname = "reactord";

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: %s --protocol NAME --port PORT [options]\n"
            "Run a twine protocol module as a network server.\n"
            "\n"
            "  -p, --protocol NAME        the protocol to serve (see --list-protocols)\n"
            "      --port PORT            listen on TCP port PORT (repeatable)\n"
            "      --interface ADDR       bind --port to ADDR (default: all IPv4 interfaces)\n"
            "  -o, --option KEY=VALUE     set a protocol option (repeatable)\n"
            "      --max-connections N    accept at most N connections at once per endpoint;\n"
            "                             more are accepted and closed at once\n"
            "      --idle-timeout S       close connections silent for S seconds\n"
            "      --shutdown-timeout S   on SIGTERM/SIGINT, let connections drain S seconds\n"
            "                             (default 30)\n"
            "      --list-protocols       list the available protocols and exit\n"
            "      --log-level LEVEL      debug, info, warn or error (default info)\n"
            "  -h, --help                 show this help and exit\n"
            "  -V, --version              show the version and exit\n"
            "\n"
            "Example: %s --protocol echo --port 9000\n",
            progname, progname);
}

static void die(int code, const char *fmt, ...) TW_PRINTF(2, 3) __attribute__((noreturn));

static void die(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", progname);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(code);
}

static void known_protocols(char *buf, size_t len)
{
    size_t at = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < tw_plugin_builtin_count() && at < len; i++) {
        int n = snprintf(buf + at, len - at, "%s%s", i ? ", " : "", tw_plugin_builtin(i)->name);
        if (n < 0)
            break;
        at += (size_t)n;
    }
}

static void list_protocols(void)
{
    for (size_t i = 0; i < tw_plugin_builtin_count(); i++) {
        const tw_plugin *p = tw_plugin_builtin(i);
        printf("%-12s %-10s %s\n", p->name, "built-in", p->description);
    }
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

static double parse_seconds(const char *flag, const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || errno != 0 || !(v >= 0) || v > 1e9)
        die(EX_USAGE, "%s needs a number of seconds, not '%s'", flag, s);
    return v;
}

static void parse_args(int argc, char **argv, config *cfg)
{
    enum {
        OPT_PORT = 256,
        OPT_INTERFACE,
        OPT_SHUTDOWN,
        OPT_LIST,
        OPT_LOGLEVEL,
        OPT_MAXCONN,
        OPT_IDLE
    };
    static const struct option longopts[] = {
        {"protocol", required_argument, NULL, 'p'},
        {"port", required_argument, NULL, OPT_PORT},
        {"interface", required_argument, NULL, OPT_INTERFACE},
        {"option", required_argument, NULL, 'o'},
        {"shutdown-timeout", required_argument, NULL, OPT_SHUTDOWN},
        {"max-connections", required_argument, NULL, OPT_MAXCONN},
        {"idle-timeout", required_argument, NULL, OPT_IDLE},
        {"list-protocols", no_argument, NULL, OPT_LIST},
        {"log-level", required_argument, NULL, OPT_LOGLEVEL},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":p:o:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'p':
            cfg->protocol = optarg;
            break;
        case OPT_PORT:
            if (parse_port(optarg) < 0)
                die(EX_USAGE, "--port needs a number from 0 to 65535, not '%s'", optarg);
            if (cfg->nports == MAX_LISTEN)
                die(EX_USAGE, "at most %d ports can be given", MAX_LISTEN);
            cfg->ports[cfg->nports++] = optarg;
            break;
        case OPT_INTERFACE:
            cfg->interface = optarg;
            break;
        case 'o':
            if (cfg->noptions == MAX_OPTIONS)
                die(EX_USAGE, "at most %d options can be given", MAX_OPTIONS);
            cfg->options[cfg->noptions++] = optarg;
            break;
        case OPT_SHUTDOWN:
            cfg->shutdown_timeout = parse_seconds("--shutdown-timeout", optarg);
            break;
        case OPT_IDLE:
            cfg->listen.idle_timeout = parse_seconds("--idle-timeout", optarg);
            break;
        case OPT_MAXCONN: {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(optarg, &end, 10);
            if (*optarg == '\0' || *optarg == '-' || *end != '\0' || errno != 0 || v == 0)
                die(EX_USAGE, "--max-connections needs a positive whole number, not '%s'", optarg);
            cfg->listen.max_connections = (size_t)v;
            break;
        }
        case OPT_LIST:
            list_protocols();
            exit(EX_OK);
        case OPT_LOGLEVEL: {
            tw_log_level level;
            if (tw_log_level_parse(optarg, &level) < 0)
                die(EX_USAGE, "--log-level must be debug, info, warn or error, not '%s'", optarg);
            tw_log_set_level(level);
            break;
        }
        case 'h':
            usage(stdout);
            exit(EX_OK);
        case 'V':
            printf("reactord (twine) %s\n", tw_version());
            exit(EX_OK);
        case ':':
            die(EX_USAGE, "option '%s' needs a value; see --help", argv[optind - 1]);
        default:
            die(EX_USAGE, "unknown option '%s'; see --help", argv[optind - 1]);
        }
    }
    if (optind < argc)
        die(EX_USAGE, "unexpected argument '%s'; see --help", argv[optind]);
    if (cfg->protocol == NULL)
        die(EX_USAGE, "no protocol given; use --protocol NAME (see --list-protocols)");
    if (cfg->nports == 0)
        die(EX_USAGE, "nowhere to listen; use --port PORT");
}

static int listen_exit_code(int err)
{
    switch (err) {
    case -EACCES:
    case -EPERM:
        return EX_NOPERM;
    case -EADDRINUSE:
    case -EADDRNOTAVAIL:
        return EX_UNAVAILABLE;
    default:
        return EX_OSERR;
    }
}

int main(int argc, char **argv)
{
    config cfg = {.shutdown_timeout = 30};
    tw_listen_options_init(&cfg.listen);
    parse_args(argc, argv, &cfg);

    const tw_plugin *plugin = tw_plugin_builtin_find(cfg.protocol);
    if (plugin == NULL) {
        char known[1024];
        known_protocols(known, sizeof known);
        die(EX_USAGE, "unknown protocol '%s'; known protocols: %s", cfg.protocol, known);
    }
    char err[1024];
    if (tw_plugin_check(plugin, "built-in module", err, sizeof err) < 0)
        die(EX_SOFTWARE, "%s", err);
    tw_options *opts = tw_options_parse(plugin->options, cfg.options, cfg.noptions, err, sizeof err);
    if (opts == NULL)
        die(EX_USAGE, "protocol '%s': %s", plugin->name, err);

    tw_reactor *r = tw_reactor_new();
    if (r == NULL)
        die(EX_OSERR, "cannot create the event loop: out of memory or descriptors");
    tw_reactor_set_shutdown_timeout(r, cfg.shutdown_timeout);
    err[0] = '\0';
    tw_factory *factory = plugin->make_factory(r, opts, err, sizeof err);
    tw_options_free(opts);
    if (factory == NULL)
        die(EX_CONFIG, "protocol '%s' could not start: %s", plugin->name,
            err[0] ? err : "no reason given");

    tw_listener *listeners[MAX_LISTEN];
    for (size_t i = 0; i < cfg.nports; i++) {
        tw_address addr;
        if (tw_address_from_ip(&addr, cfg.interface, parse_port(cfg.ports[i])) < 0)
            die(EX_USAGE, "--interface must be a numeric IPv4 or IPv6 address, not '%s'",
                cfg.interface);
        int rc = tw_listen(r, &addr, &cfg.listen, factory, &listeners[i]);
        if (rc < 0) {
            char where[TW_ADDRSTRLEN];
            die(listen_exit_code(rc), "cannot listen on %s: %s",
                tw_address_format(&addr, where, sizeof where), tw_strerror(rc));
        }
        tw_address bound;
        char where[TW_ADDRSTRLEN];
        tw_listener_address(listeners[i], &bound);
        tw_log(TW_LOG_INFO, "reactord", "%s listening on %s", plugin->name,
               tw_address_format(&bound, where, sizeof where));
    }

    if (tw_reactor_handle_signals(r) < 0)
        die(EX_OSERR, "cannot install the SIGINT/SIGTERM handlers");
    int rc = tw_reactor_run(r);
    for (size_t i = 0; i < cfg.nports; i++)
        tw_listener_close(listeners[i]);
    tw_reactor_free(r);
    tw_factory_free(factory);
    if (rc < 0) {
        fprintf(stderr, "%s: the event loop failed: %s\n", progname, tw_strerror(rc));
        return EX_SOFTWARE;
    }
    tw_log(TW_LOG_INFO, "reactord", "stopped");
    return EX_OK;
}
