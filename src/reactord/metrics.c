/* SPDX-License-Identifier: MIT */
/*
 * The figures reactord exposes, as Prometheus text (exposition format
 * 0.0.4): the families it knows, each with its HELP and TYPE, and the
 * samples of one serving process -- its listeners' counters
 * (tw_listener_stats(), TLS handshakes included, for the listeners that
 * speak TLS), the AMP dispatcher's (tw_amp_dispatcher_stats()), the AMP
 * factory's calls made (tw_amp_factory_call_stats()) and the process's
 * own (process.c). reactord only formats: every count is
 * kept by libtwine where the event happens.
 *
 * A family's samples must follow its TYPE line together, so the text is
 * written family by family. A worker writes its samples alone (no HELP or
 * TYPE) and the supervisor merges the workers' texts (rd_metrics_merge):
 * it reads each sample's family from its name, adds a worker="N" label, and
 * writes every family once, in the order of the table below, with the
 * samples of all the workers under it.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <event2/buffer.h>

#include "reactord.h"

typedef struct family {
    const char *name, *type, *help;
} family;

enum {
    F_OPEN,
    F_ACCEPTED,
    F_REFUSED,
    F_CLOSED,
    F_BYTES_IN,
    F_BYTES_OUT,
    F_TLS_HANDSHAKES,
    F_TLS_FAILURES,
    F_AMP_CALLS,
    F_AMP_UNHANDLED,
    F_AMP_CALLS_MADE,
    F_START_TIME,
    F_UPTIME,
    F_CPU,
    F_RSS,
    F_VSIZE,
    F_OPEN_FDS,
    F_MAX_FDS,
    F_WORKERS,
    F_RESTARTS,
    NFAMILIES
};

static const family families[NFAMILIES] = {
    [F_OPEN] = {"twine_connections_open", "gauge", "Connections open now, per listener."},
    [F_ACCEPTED] = {"twine_connections_accepted_total", "counter",
                    "Connections accepted and given to the protocol, per listener."},
    [F_REFUSED] = {"twine_connections_refused_total", "counter",
                   "Connections turned away before any protocol served them, by reason."},
    [F_CLOSED] = {"twine_connections_closed_total", "counter",
                  "Connections that ended, by reason."},
    [F_BYTES_IN] = {"twine_received_bytes_total", "counter",
                    "Bytes read from the connections of a listener."},
    [F_BYTES_OUT] = {"twine_sent_bytes_total", "counter",
                     "Bytes sent on the connections of a listener."},
    [F_TLS_HANDSHAKES] = {"twine_tls_handshakes_total", "counter",
                          "TLS handshakes completed on the connections of a listener."},
    [F_TLS_FAILURES] = {"twine_tls_handshake_failures_total", "counter",
                        "TLS handshakes that failed on the connections of a listener, by reason."},
    [F_AMP_CALLS] = {"twine_amp_calls_total", "counter",
                     "AMP requests received, by command and outcome."},
    [F_AMP_UNHANDLED] = {"twine_amp_unhandled_total", "counter",
                         "AMP requests for commands nobody registered (answered UNHANDLED)."},
    [F_AMP_CALLS_MADE] = {"twine_amp_calls_made_total", "counter",
                          "AMP calls the module made, by command and outcome."},
    [F_START_TIME] = {"process_start_time_seconds", "gauge",
                      "Start time of the process since the Unix epoch, in seconds."},
    [F_UPTIME] = {"reactord_uptime_seconds", "gauge", "Seconds since the process started."},
    [F_CPU] = {"process_cpu_seconds_total", "counter",
               "Total user and system CPU time spent, in seconds."},
    [F_RSS] = {"process_resident_memory_bytes", "gauge", "Resident memory size, in bytes."},
    [F_VSIZE] = {"process_virtual_memory_bytes", "gauge", "Virtual memory size, in bytes."},
    [F_OPEN_FDS] = {"process_open_fds", "gauge", "Number of open file descriptors."},
    [F_MAX_FDS] = {"process_max_fds", "gauge", "Maximum number of open file descriptors."},
    [F_WORKERS] = {"reactord_workers", "gauge", "Worker processes running (--workers)."},
    [F_RESTARTS] = {"reactord_worker_restarts_total", "counter",
                    "Worker processes restarted after they died or hung."},
};

/* Write @p s as a label value: backslash, double quote and newline escaped. */
static void put_label_value(struct evbuffer *out, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\')
            evbuffer_add(out, "\\\\", 2);
        else if (*s == '"')
            evbuffer_add(out, "\\\"", 2);
        else if (*s == '\n')
            evbuffer_add(out, "\\n", 2);
        else
            evbuffer_add(out, s, 1);
    }
}

static void header(struct evbuffer *out, int f)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", families[f].name, families[f].help,
                        families[f].name, families[f].type);
}

/* name{k1="v1",k2="v2"} with @p labels as NULL-terminated key, value pairs. */
static void sample_start(struct evbuffer *out, int f, const char *const *labels)
{
    evbuffer_add_printf(out, "%s", families[f].name);
    for (size_t i = 0; labels != NULL && labels[i] != NULL; i += 2) {
        evbuffer_add_printf(out, "%s%s=\"", i == 0 ? "{" : ",", labels[i]);
        put_label_value(out, labels[i + 1]);
        evbuffer_add(out, "\"", 1);
    }
    if (labels != NULL && labels[0] != NULL)
        evbuffer_add(out, "}", 1);
}

static void sample_u(struct evbuffer *out, int f, const char *const *labels,
                     unsigned long long v)
{
    sample_start(out, f, labels);
    evbuffer_add_printf(out, " %llu\n", v);
}

static void sample_d(struct evbuffer *out, int f, const char *const *labels, double v)
{
    sample_start(out, f, labels);
    evbuffer_add_printf(out, " %.17g\n", v);
}

int rd_figures_tls(const rd_figures *fig, size_t i, const tw_conn_stats *st)
{
    if (fig->tls[i] || st->tls_handshakes > 0)
        return 1;
    for (int r = 0; r < TW_TLS_FAILURES; r++)
        if (st->tls_failures[r] > 0)
            return 1;
    return 0;
}

/* The samples of one listener family @p f for every listener. */
static void listener_family(const rd_figures *fig, const tw_conn_stats *st, int f,
                            struct evbuffer *out)
{
    for (size_t i = 0; i < fig->n; i++) {
        if (fig->listeners[i] == NULL)
            continue;
        const tw_conn_stats *s = &st[i];
        const char *base[] = {"listener", fig->names[i], "protocol", fig->protocol, NULL};
        switch (f) {
        case F_OPEN:
            sample_u(out, f, base, s->open);
            break;
        case F_ACCEPTED:
            sample_u(out, f, base, s->accepted);
            break;
        case F_BYTES_IN:
            sample_u(out, f, base, s->bytes_in);
            break;
        case F_BYTES_OUT:
            sample_u(out, f, base, s->bytes_out);
            break;
        case F_REFUSED: {
            /* A per-peer refusal is the policy factory's: the listener saw
             * its factory refuse, so it is taken out of "factory". */
            unsigned long long per_peer = tw_policy_factory_refused(fig->policies[i]);
            for (int r = 0; r < TW_REFUSE_REASONS; r++) {
                unsigned long long v = s->refused[r];
                if (r == TW_REFUSE_FACTORY)
                    v = v >= per_peer ? v - per_peer : 0;
                const char *l[] = {"listener", fig->names[i], "protocol", fig->protocol,
                                   "reason", tw_refusal_name((tw_refusal)r), NULL};
                sample_u(out, f, l, v);
            }
            const char *l[] = {"listener", fig->names[i], "protocol", fig->protocol,
                               "reason", "per_peer_limit", NULL};
            sample_u(out, f, l, per_peer);
            break;
        }
        case F_CLOSED:
            for (int r = 0; r < TW_CLOSE_REASONS; r++) {
                const char *l[] = {"listener", fig->names[i], "protocol", fig->protocol,
                                   "reason", tw_close_reason_name((tw_close_reason)r), NULL};
                sample_u(out, f, l, s->closed[r]);
            }
            break;
        case F_TLS_HANDSHAKES:
            if (rd_figures_tls(fig, i, s))
                sample_u(out, f, base, s->tls_handshakes);
            break;
        case F_TLS_FAILURES:
            if (!rd_figures_tls(fig, i, s))
                break;
            for (int r = 0; r < TW_TLS_FAILURES; r++) {
                const char *l[] = {"listener", fig->names[i], "protocol", fig->protocol,
                                   "reason", tw_tls_failure_name((tw_tls_failure)r), NULL};
                sample_u(out, f, l, s->tls_failures[r]);
            }
            break;
        }
    }
}

static void amp_family(const rd_figures *fig, int f, struct evbuffer *out)
{
    tw_amp_dispatcher *d = fig->factory != NULL ? tw_amp_factory_dispatcher(fig->factory) : NULL;
    if (d == NULL)
        return;
    if (f == F_AMP_UNHANDLED) {
        const char *l[] = {"protocol", fig->protocol, NULL};
        sample_u(out, f, l, tw_amp_dispatcher_unhandled(d));
        return;
    }
    if (f == F_AMP_CALLS_MADE) {
        for (size_t i = 0; i < tw_amp_factory_call_count(fig->factory); i++) {
            const char *name;
            unsigned long long counts[TW_AMP_CALL_OUTCOMES];
            if (tw_amp_factory_call_stats(fig->factory, i, &name, counts) < 0)
                continue;
            for (int o = 0; o < TW_AMP_CALL_OUTCOMES; o++) {
                const char *l[] = {"protocol", fig->protocol, "command", name, "outcome",
                                   tw_amp_call_outcome_name((tw_amp_call_outcome)o), NULL};
                sample_u(out, f, l, counts[o]);
            }
        }
        return;
    }
    for (size_t i = 0; i < tw_amp_dispatcher_count(d); i++) {
        const tw_amp_command *c;
        unsigned long long counts[TW_AMP_OUTCOMES];
        if (tw_amp_dispatcher_stats(d, i, &c, counts) < 0)
            continue;
        for (int o = 0; o < TW_AMP_OUTCOMES; o++) {
            const char *l[] = {"protocol", fig->protocol, "command", c->name,
                               "outcome", tw_amp_outcome_name((tw_amp_outcome)o), NULL};
            sample_u(out, f, l, counts[o]);
        }
    }
}

static void process_family(const rd_process_figures *p, int f, struct evbuffer *out)
{
    switch (f) {
    case F_START_TIME:
        sample_d(out, f, NULL, p->start_time);
        break;
    case F_UPTIME:
        sample_d(out, f, NULL, p->uptime);
        break;
    case F_CPU:
        sample_d(out, f, NULL, p->cpu_seconds);
        break;
    case F_RSS:
        if (p->rss_bytes >= 0)
            sample_d(out, f, NULL, p->rss_bytes);
        break;
    case F_VSIZE:
        if (p->virtual_bytes >= 0)
            sample_d(out, f, NULL, p->virtual_bytes);
        break;
    case F_OPEN_FDS:
        if (p->open_fds >= 0)
            sample_d(out, f, NULL, p->open_fds);
        break;
    case F_MAX_FDS:
        if (p->max_fds >= 0)
            sample_d(out, f, NULL, p->max_fds);
        break;
    }
}

void rd_metrics_render(const rd_figures *fig, struct evbuffer *out, int headers)
{
    tw_conn_stats st[RD_MAX_LISTEN];
    for (size_t i = 0; i < fig->n; i++)
        if (fig->listeners[i] != NULL)
            tw_listener_stats(fig->listeners[i], &st[i]);
    rd_process_figures proc;
    rd_process_read(&proc);
    for (int f = 0; f < NFAMILIES; f++) {
        if (f == F_WORKERS || f == F_RESTARTS)
            continue; /* the supervisor's */
        if (headers)
            header(out, f);
        if (f <= F_TLS_FAILURES)
            listener_family(fig, st, f, out);
        else if (f <= F_AMP_CALLS_MADE)
            amp_family(fig, f, out);
        else
            process_family(&proc, f, out);
    }
}

void rd_metrics_render_supervisor(struct evbuffer *out, unsigned running,
                                  unsigned long long restarts)
{
    sample_u(out, F_WORKERS, NULL, running);
    sample_u(out, F_RESTARTS, NULL, restarts);
}

/* The family of the sample line @p line (@p len bytes), or -1. */
static int family_of(const char *line, size_t len)
{
    size_t n = 0;
    while (n < len && line[n] != '{' && line[n] != ' ')
        n++;
    for (int f = 0; f < NFAMILIES; f++)
        if (strlen(families[f].name) == n && memcmp(families[f].name, line, n) == 0)
            return f;
    return -1;
}

/* Copy the sample @p line with worker="@p worker" as its first label. */
static void put_with_worker(struct evbuffer *out, const char *line, size_t len, const char *worker)
{
    size_t n = 0;
    while (n < len && line[n] != '{' && line[n] != ' ')
        n++;
    evbuffer_add(out, line, n);
    evbuffer_add_printf(out, "{worker=\"");
    put_label_value(out, worker);
    if (n < len && line[n] == '{') {
        evbuffer_add(out, "\",", 2);
        n++;
    } else {
        evbuffer_add(out, "\"}", 2);
    }
    evbuffer_add(out, line + n, len - n);
    evbuffer_add(out, "\n", 1);
}

void rd_metrics_merge(struct evbuffer *out, const rd_metrics_part *parts, size_t n)
{
    for (int f = 0; f < NFAMILIES; f++) {
        header(out, f);
        for (size_t p = 0; p < n; p++) {
            const char *at = parts[p].text, *end = parts[p].text + parts[p].len;
            while (at < end) {
                const char *nl = memchr(at, '\n', (size_t)(end - at));
                size_t len = nl != NULL ? (size_t)(nl - at) : (size_t)(end - at);
                if (len > 0 && at[0] != '#' && family_of(at, len) == f) {
                    if (parts[p].worker != NULL) {
                        put_with_worker(out, at, len, parts[p].worker);
                    } else {
                        evbuffer_add(out, at, len);
                        evbuffer_add(out, "\n", 1);
                    }
                }
                at += len + 1;
            }
        }
    }
}
