/* SPDX-License-Identifier: MIT */
/*
 * One serving process: a reactor, the protocol's factory, a listener per
 * endpoint. The order is what makes a safe server: listen while still
 * privileged, then give up privileges, then change directory, and only then
 * report "started", so that a start-up report of success means the server
 * is reachable and no longer root.
 *
 * Signals: SIGTERM, SIGINT and SIGQUIT stop accepting at once and let open
 * connections drain for --shutdown-timeout seconds before they are
 * aborted, then the process exits 0; a second one during the drain aborts
 * the connections still open at once, as operators of nginx and twistd
 * expect. SIGHUP and SIGUSR1 (twistd's and nginx's log-rotation signal)
 * reopen the log file; SIGHUP also reloads ssl: endpoints' certificates
 * (new connections get the new one; a file that no longer loads, or that
 * the dropped user may not read, keeps the old one and says so); SIGUSR2 is logged and ignored. No signal an
 * operator commonly sends kills the process without its shutdown path.
 * They are libevent signal events on the reactor's own base, so their
 * handlers run in the loop like any other callback.
 *
 * Unless it is a worker, the process tells the service manager READY=1
 * once it serves, and STOPPING=1 when a graceful stop begins (notify.c).
 *
 * The process's figures (rd_figures) are its listeners' and its factory's
 * counters: it serves them on --metrics itself, or, as a worker, answers
 * the supervisor's requests for them; with --access-log each listener logs
 * every connection that ends; and when the loop returns, each listener's
 * totals are logged.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "reactord.h"

typedef struct {
    tw_reactor *r;
    double drain;
    int notify; /* the process the service manager watches (not a worker) */
    rd_run *run;
} serve_ctx;

static const int stop_signals[] = {SIGTERM, SIGINT, SIGQUIT};
static const int reopen_signals[] = {SIGHUP, SIGUSR1};
#define NSIGNALS 6 /* the above and SIGUSR2 */

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    serve_ctx *s = arg;
    if (!tw_reactor_stopping(s->r)) {
        tw_log(TW_LOG_INFO, rd_logging_system(),
               "%s: no longer accepting; open connections may drain for up to %g s",
               rd_signal_name((int)sig), s->drain);
        if (s->notify)
            rd_notify("STOPPING=1");
        tw_reactor_stop(s->r);
        return;
    }
    tw_log(TW_LOG_INFO, rd_logging_system(),
           "%s again: closing the connections still open now", rd_signal_name((int)sig));
    tw_reactor_set_shutdown_timeout(s->r, 0);
}

static void on_reopen(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    serve_ctx *s = arg;
    rd_logging_reopen((int)sig);
    /* New certificates for new connections; open ones keep theirs. */
    if (sig == SIGHUP)
        for (size_t i = 0; i < s->run->nendpoints; i++)
            rd_endpoint_reload_tls(s->run->endpoints[i]);
}

static void on_ignored(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    (void)arg;
    tw_log(TW_LOG_INFO, rd_logging_system(), "%s: ignored", rd_signal_name((int)sig));
}

/* A worker tells its supervisor that its loop still turns. */
static tw_deferred *heartbeat(void *arg)
{
    const rd_worker *w = arg;
    ssize_t n = write(w->beat_fd, "", 1);
    (void)n; /* a full pipe already says it */
    return NULL;
}

/* Whether any of --throttle-*, --max-per-peer or --log-traffic was given. */
static int wants_policies(const rd_config *cfg)
{
    const tw_policy_options *o = &cfg->policy;
    return o->read_limit > 0 || o->write_limit > 0 || o->connection_read_limit > 0 ||
           o->connection_write_limit > 0 || o->max_per_peer > 0 || o->log_traffic;
}

static void scrape(struct evbuffer *out, void *arg)
{
    rd_metrics_render(arg, out, 1);
}

/* "peer 3, idle_timeout 2" for the nonzero counters of @p v. */
static void describe_counts(char *buf, size_t len, const unsigned long long *v, int n,
                            const char *(*name)(int))
{
    size_t at = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && at < len; i++)
        if (v[i] > 0)
            at += (size_t)snprintf(buf + at, len - at, "%s%s %llu", at ? ", " : "", name(i), v[i]);
}

static const char *refusal_name(int i)
{
    return tw_refusal_name((tw_refusal)i);
}

static const char *close_name(int i)
{
    return tw_close_reason_name((tw_close_reason)i);
}

static const char *tls_failure_name(int i)
{
    return tw_tls_failure_name((tw_tls_failure)i);
}

/* At shutdown: what each listener did, in one line each. */
static void log_totals(const rd_figures *fig)
{
    for (size_t i = 0; i < fig->n; i++) {
        if (fig->listeners[i] == NULL)
            continue;
        tw_conn_stats st;
        tw_listener_stats(fig->listeners[i], &st);
        unsigned long long refused = 0, closed = 0;
        for (int k = 0; k < TW_REFUSE_REASONS; k++)
            refused += st.refused[k];
        for (int k = 0; k < TW_CLOSE_REASONS; k++)
            closed += st.closed[k];
        char why_refused[256], why_closed[512];
        describe_counts(why_refused, sizeof why_refused, st.refused, TW_REFUSE_REASONS,
                        refusal_name);
        describe_counts(why_closed, sizeof why_closed, st.closed, TW_CLOSE_REASONS, close_name);
        char tls[320] = "";
        if (rd_figures_tls(fig, i, &st)) {
            unsigned long long failed = 0;
            for (int k = 0; k < TW_TLS_FAILURES; k++)
                failed += st.tls_failures[k];
            char why_failed[256];
            describe_counts(why_failed, sizeof why_failed, st.tls_failures, TW_TLS_FAILURES,
                            tls_failure_name);
            snprintf(tls, sizeof tls, ", %llu TLS handshakes, %llu failed%s%s%s",
                     st.tls_handshakes, failed, failed ? " (" : "", why_failed,
                     failed ? ")" : "");
        }
        tw_log(TW_LOG_INFO, rd_logging_system(),
               "totals for %s: %llu accepted, %llu refused%s%s%s, %llu closed%s%s%s, "
               "%llu bytes received, %llu bytes sent%s",
               fig->names[i], st.accepted, refused, refused ? " (" : "", why_refused,
               refused ? ")" : "", closed, closed ? " (" : "", why_closed, closed ? ")" : "",
               st.bytes_in, st.bytes_out, tls);
    }
}

static int watch_signals(tw_reactor *r, serve_ctx *s, struct event *ev[NSIGNALS])
{
    struct event_base *base = tw_reactor_event_base(r);
    int n = 0;
    for (size_t i = 0; i < sizeof stop_signals / sizeof *stop_signals; i++)
        ev[n++] = evsignal_new(base, stop_signals[i], on_stop, s);
    for (size_t i = 0; i < sizeof reopen_signals / sizeof *reopen_signals; i++)
        ev[n++] = evsignal_new(base, reopen_signals[i], on_reopen, s);
    ev[n++] = evsignal_new(base, SIGUSR2, on_ignored, s);
    for (int i = 0; i < n; i++)
        if (ev[i] == NULL || evsignal_add(ev[i], NULL) < 0)
            return rd_error(EX_OSERR, "cannot watch the signals an operator sends");
    return 0;
}

int rd_serve(rd_run *run, const rd_worker *w)
{
    const rd_config *cfg = run->app->cfg;
    tw_factory *f = NULL;
    tw_factory *policies[RD_MAX_LISTEN] = {NULL};
    tw_listener *listeners[RD_MAX_LISTEN] = {NULL};
    tw_udp_port *ports_udp[RD_MAX_LISTEN] = {NULL};
    struct event *sig[NSIGNALS] = {NULL};
    tw_looping_call *heartbeat_call = NULL;
    rd_metrics_server *metrics = NULL;
    struct bufferevent *metrics_link = NULL;
    rd_figures fig = {.protocol = NULL};
    rd_access access[RD_MAX_LISTEN];
    char ports[RD_MAX_LISTEN * 8] = "";
    size_t at = 0;
    int rc;

    tw_reactor *r = tw_reactor_new();
    if (r == NULL)
        return rd_error(EX_OSERR, "cannot create the event loop: out of memory or descriptors");
    tw_reactor_set_shutdown_timeout(r, cfg->shutdown_timeout);
    tw_reactor_set_input_budget(r, cfg->input_budget);
    serve_ctx ctx = {r, cfg->shutdown_timeout, w == NULL, run};

    /* Watched from the start: a SIGTERM during start-up waits for the loop,
     * which then stops at once, instead of killing a half-started server. */
    if ((rc = watch_signals(r, &ctx, sig)) != 0)
        goto out;
    if ((rc = rd_plugins_make_factory(run->app, r, &f)) != 0)
        goto out;
    /* Bound while still privileged, as the endpoints are, and first, so a
     * port in use is the only thing said. Scrapes come from the loop, once
     * the figures are complete. */
    if (cfg->metrics != NULL && w == NULL &&
        (rc = rd_metrics_serve(cfg->metrics, tw_reactor_event_base(r), scrape, &fig, &metrics)) !=
            0)
        goto out;
    fig.protocol = run->app->plugin->name;
    fig.factory = f;
    fig.n = run->nendpoints;
    for (size_t i = 0; i < run->nendpoints; i++) {
        rd_endpoint *e = run->endpoints[i];
        tw_address bound;
        tw_listen_options lo = cfg->listen_opts;
        lo.reuse_port = w != NULL; /* workers share each port */
        fig.names[i] = rd_endpoint_describe(e);
        if (cfg->access_log) {
            access[i] = (rd_access){cfg->access_log, fig.names[i], fig.protocol};
            lo.on_close = rd_access_log;
            lo.on_close_arg = &access[i];
        }
        if (rd_endpoint_is_datagram(e)) {
            tw_datagram_protocol *p;
            if ((rc = rd_plugins_make_datagram(run->app, r, &p)) != 0)
                goto out;
            if ((rc = rd_endpoint_listen_udp(e, r, p, &ports_udp[i])) != 0) {
                if (p->ops->destroy != NULL)
                    p->ops->destroy(p);
                goto out;
            }
            tw_udp_port_address(ports_udp[i], &bound);
        } else {
            tw_factory *served = f;
            if (wants_policies(cfg)) {
                /* One per endpoint: its limits are that listener's. */
                int err = tw_policy_factory_new(r, f, &cfg->policy, &policies[i]);
                if (err < 0) {
                    rc = rd_error(EX_OSERR, "cannot apply the connection policies: %s",
                                  tw_strerror(err));
                    goto out;
                }
                served = policies[i];
            }
            if ((rc = rd_endpoint_listen(e, r, served, &lo, &listeners[i])) != 0)
                goto out;
            fig.listeners[i] = listeners[i];
            fig.tls[i] = rd_endpoint_is_tls(e);
            fig.policies[i] = policies[i];
            tw_listener_address(listeners[i], &bound);
        }
        char where[TW_ADDRSTRLEN];
        tw_log(TW_LOG_INFO, rd_logging_system(), "%s listening on %s%s", run->app->plugin->name,
               !rd_endpoint_is_datagram(e)               ? ""
               : tw_address_family(&bound) == AF_UNIX ? "unixgram "
                                                      : "udp ",
               tw_address_format(&bound, where, sizeof where));
        at += (size_t)snprintf(ports + at, sizeof ports - at, "%s%d", i ? " " : "",
                               tw_address_port(&bound));
    }
    if (w != NULL && w->metrics_fd >= 0 &&
        (rc = rd_metrics_worker_start(w, tw_reactor_event_base(r), &fig, &metrics_link)) != 0)
        goto out;
    if ((rc = rd_credentials_apply(&run->creds)) != 0 ||
        (rc = rd_plugins_add_amp_commands(run->app, f)) != 0)
        goto out;
    if (run->chdir != NULL && chdir(run->chdir) < 0) {
        rc = rd_error(errno == EACCES ? EX_NOPERM : EX_CONFIG, "cannot change directory to %s: %s",
                      run->chdir, strerror(errno));
        goto out;
    }

    if (w != NULL && w->beat_every > 0) {
        tw_looping_call *beat = tw_looping_call_new(r, heartbeat, (void *)w);
        if (beat == NULL || tw_looping_call_start(beat, w->beat_every, 1, NULL) < 0) {
            tw_looping_call_free(beat);
            rc = rd_error(EX_OSERR, "cannot start the heartbeat: out of memory");
            goto out;
        }
        heartbeat_call = beat;
    }
    if (w == NULL)
        tw_log(TW_LOG_INFO, "reactord", "reactord %s (pid %ld) serving protocol '%s' from %s",
               tw_version(), (long)getpid(), run->app->plugin->name, run->app->origin);
    /* A worker tells its supervisor the ports it got, for port 0. */
    rd_status_report(0, w != NULL ? ports : NULL);
    if (w == NULL) {
        /* A daemon is not the process systemd started: name the main one. */
        char state[160];
        snprintf(state, sizeof state, "READY=1\nSTATUS=serving protocol '%s'\nMAINPID=%ld",
                 run->app->plugin->name, (long)getpid());
        rd_notify(state);
    }
    int err = tw_reactor_run(r);
    if (err < 0)
        rc = rd_error(EX_SOFTWARE, "the event loop failed: %s", tw_strerror(err));
    else
        tw_log(TW_LOG_INFO, rd_logging_system(), "stopped");
    log_totals(&fig);

out:
    rd_metrics_server_free(metrics);
    if (metrics_link != NULL)
        bufferevent_free(metrics_link);
    else if (w != NULL && w->metrics_fd >= 0)
        close(w->metrics_fd);
    tw_looping_call_free(heartbeat_call);
    for (int i = 0; i < NSIGNALS; i++)
        if (sig[i] != NULL)
            event_free(sig[i]);
    for (size_t i = 0; i < run->nendpoints; i++) {
        tw_listener_close(listeners[i]);
        tw_udp_port_close(ports_udp[i]);
    }
    tw_reactor_free(r);
    for (size_t i = 0; i < run->nendpoints; i++)
        tw_factory_free(policies[i]);
    tw_factory_free(f);
    return rc;
}
