/* SPDX-License-Identifier: MIT */
/*
 * reactord: run one protocol module on one or more listening endpoints, the
 * way twistd runs a Twisted application. It uses only libtwine's public
 * API; it is the library's first embedder.
 *
 * This file is the order of start-up, which is the whole design: everything
 * the operator typed is checked before anything forks or listens (options,
 * protocol, module options, endpoints, user and group); then the process
 * detaches if asked, opens its log, takes the pidfile, and serves, alone or
 * through supervised workers. Every failure unwinds to here and ends in one
 * sentence and a sysexits.h code, with nothing left half-started. --check
 * stops after the checks, as nginx -t does.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "reactord.h"

/* --port PORT [--interface ADDR] is tcp:PORT[:interface=ADDR]. */
static char *port_endpoint(const char *port, const char *iface)
{
    size_t n = strlen(port) + (iface ? 2 * strlen(iface) : 0) + 32;
    char *s = malloc(n);
    if (s == NULL)
        return NULL;
    size_t at = (size_t)snprintf(s, n, "tcp:%s", port);
    if (iface != NULL) {
        at += (size_t)snprintf(s + at, n - at, ":interface=");
        for (const char *c = iface; *c != '\0'; c++) {
            if (*c == ':' || *c == '\\')
                s[at++] = '\\';
            s[at++] = *c;
        }
        s[at] = '\0';
    }
    return s;
}

static int parse_endpoints(const rd_config *cfg, rd_run *run)
{
    for (size_t i = 0; i < cfg->nports; i++) {
        char *desc = port_endpoint(cfg->ports[i], cfg->interface);
        if (desc == NULL)
            return rd_error(EX_OSERR, "out of memory parsing --port %s", cfg->ports[i]);
        int rc = rd_endpoint_parse(desc, &run->endpoints[run->nendpoints]);
        free(desc);
        if (rc != 0)
            return rc;
        run->nendpoints++;
    }
    for (size_t i = 0; i < cfg->nlisten; i++) {
        int rc = rd_endpoint_parse(cfg->listen[i], &run->endpoints[run->nendpoints]);
        if (rc != 0)
            return rc;
        run->nendpoints++;
    }
    return 0;
}

int main(int argc, char **argv)
{
    rd_config cfg;
    int done;
    rd_process_mark_start();
    int rc = rd_options_parse(argc, argv, &cfg, &done);
    if (rc != 0 || done)
        return rd_status_fail(rc);
    rd_logging_configure(&cfg);
    rd_notify_init();
    /* A peer that vanished is an error code from write(), not a death. */
    signal(SIGPIPE, SIG_IGN);

    if (cfg.check)
        rd_endpoint_defer_activation_check();
    rd_app app = {.cfg = &cfg};
    rd_run run = {.app = &app};
    char *pidfile = NULL, *chdir_to = NULL;
    int parent = 0;
    if ((rc = rd_plugins_open(&app)) != 0)
        goto out;
    if (cfg.list_protocols) {
        rc = rd_plugins_list(&app);
        goto out;
    }
    if (cfg.help_protocol != NULL) {
        rc = rd_plugins_help(&app, cfg.help_protocol);
        goto out;
    }
    if ((rc = rd_plugins_resolve(&app)) != 0 || (rc = parse_endpoints(&cfg, &run)) != 0 ||
        (rc = rd_plugins_check_endpoints(&app, run.endpoints, run.nendpoints)) != 0 ||
        (cfg.workers > 0 && (rc = rd_workers_check(&run)) != 0) ||
        (rc = rd_credentials_resolve(&cfg, &run.creds)) != 0)
        goto out;
    /* Paths are the operator's, relative to where reactord was started. */
    if ((cfg.pidfile != NULL && (pidfile = rd_absolute_path(cfg.pidfile)) == NULL) ||
        (cfg.chdir != NULL && (chdir_to = rd_absolute_path(cfg.chdir)) == NULL)) {
        rc = rd_error(EX_OSERR, "out of memory");
        goto out;
    }
    struct stat st;
    if (chdir_to != NULL && stat(chdir_to, &st) < 0) {
        rc = rd_error(EX_CONFIG, "cannot use --chdir %s: %s", cfg.chdir, strerror(errno));
        goto out;
    }
    if (chdir_to != NULL && !S_ISDIR(st.st_mode)) {
        rc = rd_error(EX_CONFIG, "cannot use --chdir %s: it is not a directory", cfg.chdir);
        goto out;
    }
    if (cfg.check) {
        rc = rd_check(&run);
        goto out;
    }
    /* A daemon lets go of the directory it was started in. */
    run.chdir = chdir_to != NULL ? chdir_to : cfg.daemon ? "/" : NULL;
    if (cfg.umask >= 0)
        umask((mode_t)cfg.umask);

    if (cfg.daemon && ((rc = rd_daemonize(&parent)) != 0 || parent))
        goto out; /* the original process leaves with the daemon's verdict */
    if ((rc = rd_logging_open(&run.creds)) != 0)
        goto out;
    if (pidfile != NULL && (rc = rd_pidfile_acquire(pidfile)) != 0)
        goto out;
    rc = cfg.workers > 0 ? rd_supervise(&run) : rd_serve(&run, NULL);

out:
    /* Clean up first: whoever waits for the report may look right away. */
    rd_pidfile_release();
    for (size_t i = 0; i < run.nendpoints; i++)
        rd_endpoint_free(run.endpoints[i]);
    free(run.creds.user);
    free(pidfile);
    free(chdir_to);
    rd_plugins_close(&app);
    /* The shell that waited for a daemon prints what the daemon logged. */
    return parent == 1 ? rd_status_print(rc) : rd_status_fail(rc);
}
