/* SPDX-License-Identifier: MIT */
/*
 * One serving process: a reactor, the protocol's factory, a listener per
 * endpoint. The order is what makes a safe server: listen while still
 * privileged, then give up privileges, then change directory, and only then
 * report "started", so that a start-up report of success means the server
 * is reachable and no longer root.
 *
 * Signals: SIGTERM and SIGINT stop accepting at once and let open
 * connections drain for --shutdown-timeout seconds before they are closed,
 * then the process exits 0; SIGHUP reopens the log file. They are libevent
 * signal events on the reactor's own base, so their handlers run in the
 * loop like any other callback.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>
#include <event2/event.h>

#include "reactord.h"

typedef struct {
    tw_reactor *r;
    double drain;
} serve_ctx;

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    serve_ctx *s = arg;
    if (!tw_reactor_stopping(s->r))
        tw_log(TW_LOG_INFO, rd_logging_system(),
               "%s: no longer accepting; open connections may drain for up to %g s",
               sig == SIGTERM ? "SIGTERM" : "SIGINT", s->drain);
    tw_reactor_stop(s->r);
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    (void)arg;
    rd_logging_reopen();
}

static int watch_signals(tw_reactor *r, serve_ctx *s, struct event *ev[3])
{
    struct event_base *base = tw_reactor_event_base(r);
    ev[0] = evsignal_new(base, SIGTERM, on_stop, s);
    ev[1] = evsignal_new(base, SIGINT, on_stop, s);
    ev[2] = evsignal_new(base, SIGHUP, on_hup, s);
    for (int i = 0; i < 3; i++)
        if (ev[i] == NULL || evsignal_add(ev[i], NULL) < 0)
            return rd_error(EX_OSERR, "cannot watch SIGTERM, SIGINT and SIGHUP");
    return 0;
}

int rd_serve(rd_run *run, const rd_worker *w)
{
    const rd_config *cfg = run->app->cfg;
    tw_factory *f = NULL;
    tw_listener *listeners[RD_MAX_LISTEN] = {NULL};
    tw_udp_port *ports_udp[RD_MAX_LISTEN] = {NULL};
    struct event *sig[3] = {NULL, NULL, NULL};
    char ports[RD_MAX_LISTEN * 8] = "";
    size_t at = 0;
    int rc;

    tw_reactor *r = tw_reactor_new();
    if (r == NULL)
        return rd_error(EX_OSERR, "cannot create the event loop: out of memory or descriptors");
    tw_reactor_set_shutdown_timeout(r, cfg->shutdown_timeout);
    serve_ctx ctx = {r, cfg->shutdown_timeout};

    /* Watched from the start: a SIGTERM during start-up waits for the loop,
     * which then stops at once, instead of killing a half-started server. */
    if ((rc = watch_signals(r, &ctx, sig)) != 0)
        goto out;
    if ((rc = rd_plugins_make_factory(run->app, r, &f)) != 0)
        goto out;
    tw_listen_options lo = cfg->listen_opts;
    lo.reuse_port = w != NULL; /* workers share each port */
    for (size_t i = 0; i < run->nendpoints; i++) {
        rd_endpoint *e = run->endpoints[i];
        tw_address bound;
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
            if ((rc = rd_endpoint_listen(e, r, f, &lo, &listeners[i])) != 0)
                goto out;
            tw_listener_address(listeners[i], &bound);
        }
        char where[TW_ADDRSTRLEN];
        tw_log(TW_LOG_INFO, rd_logging_system(), "%s listening on %s%s", run->app->plugin->name,
               rd_endpoint_is_datagram(e) ? "udp " : "",
               tw_address_format(&bound, where, sizeof where));
        at += (size_t)snprintf(ports + at, sizeof ports - at, "%s%d", i ? " " : "",
                               tw_address_port(&bound));
    }
    if ((rc = rd_credentials_apply(&run->creds)) != 0)
        goto out;
    if (run->chdir != NULL && chdir(run->chdir) < 0) {
        rc = rd_error(errno == EACCES ? EX_NOPERM : EX_CONFIG, "cannot change directory to %s: %s",
                      run->chdir, strerror(errno));
        goto out;
    }

    if (w == NULL)
        tw_log(TW_LOG_INFO, "reactord", "reactord %s (pid %ld) serving protocol '%s' from %s",
               tw_version(), (long)getpid(), run->app->plugin->name, run->app->origin);
    /* A worker tells its supervisor the ports it got, for port 0. */
    rd_status_report(0, w != NULL ? ports : NULL);
    int err = tw_reactor_run(r);
    if (err < 0)
        rc = rd_error(EX_SOFTWARE, "the event loop failed: %s", tw_strerror(err));
    else
        tw_log(TW_LOG_INFO, rd_logging_system(), "stopped");

out:
    for (int i = 0; i < 3; i++)
        if (sig[i] != NULL)
            event_free(sig[i]);
    for (size_t i = 0; i < run->nendpoints; i++) {
        tw_listener_close(listeners[i]);
        tw_udp_port_close(ports_udp[i]);
    }
    tw_reactor_free(r);
    tw_factory_free(f);
    return rc;
}
