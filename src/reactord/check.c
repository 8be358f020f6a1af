/* SPDX-License-Identifier: MIT */
/*
 * reactord --check, nginx's -t: would this command line start? By the time
 * it gets here main.c has done every check a start does before forking:
 * the options, the protocol (its module loaded, so a module that is refused
 * or crashes says so here), each -o option against the module's table, each
 * endpoint's syntax, what --workers can share, the user and group, and the
 * --chdir directory. What is left is the module's own judgement of its
 * option values, which it gives only when asked to make its factory (and
 * its datagram protocol, for udp: endpoints); so they are made, on an event
 * loop that never runs, and freed. Nothing listens, forks, or writes a file,
 * and privileges are kept, so the check can run beside the live server.
 *
 * Not checked, because only starting can tell: whether the ports are free
 * and the paths writable. A systemd: endpoint run without socket activation
 * is checked for its syntax only, as the sentence says.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "reactord.h"

int rd_check(rd_run *run)
{
    tw_reactor *r = tw_reactor_new();
    if (r == NULL)
        return rd_error(EX_OSERR, "cannot create the event loop: out of memory or descriptors");
    tw_factory *f = NULL;
    int rc = rd_plugins_make_factory(run->app, r, &f);
    int deferred = 0;
    for (size_t i = 0; i < run->nendpoints && rc == 0; i++) {
        const rd_endpoint *e = run->endpoints[i];
        if (rd_endpoint_is_activated(e) && tw_endpoint_activated_fds() < 0)
            deferred = 1;
        if (!rd_endpoint_is_datagram(e))
            continue;
        tw_datagram_protocol *p;
        if ((rc = rd_plugins_make_datagram(run->app, r, &p)) == 0 && p->ops->destroy != NULL)
            p->ops->destroy(p);
    }
    tw_factory_free(f);
    tw_reactor_free(r);
    if (rc != 0)
        return rc;

    char where[1024] = "";
    size_t at = 0;
    for (size_t i = 0; i < run->nendpoints && at < sizeof where; i++)
        at += (size_t)snprintf(where + at, sizeof where - at, "%s%s", i ? ", " : "",
                               rd_endpoint_describe(run->endpoints[i]));
    printf("reactord: the configuration is valid: protocol '%s' (%s) on %s%s\n",
           run->app->plugin->name, run->app->origin, where,
           deferred ? "; the systemd: endpoints are checked against the sockets systemd "
                      "passes when it starts reactord"
                    : "");
    return fflush(stdout) == 0 ? 0 : rd_error(EX_IOERR, "cannot write to standard output");
}
