/* SPDX-License-Identifier: MIT */
/*
 * Which protocol reactord serves, and where it came from. The search path is
 * the operator's --plugin-path directories in order, then TWINE_PLUGIN_PATH,
 * then the installed module directory; built-ins come before all of them.
 * This file also answers --list-protocols and --help-protocol, and hands an
 * AMP factory the commands of every module that has an AMP hook.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <twine/amp.h>

#include "reactord.h"

int rd_plugins_open(rd_app *app)
{
    app->reg = tw_plugin_registry_new();
    if (app->reg == NULL)
        return rd_error(EX_OSERR, "out of memory creating the module registry");
    int rc = 0;
    for (size_t i = 0; i < app->cfg->nplugin_path && rc == 0; i++) {
        /* Absolute, so a later --chdir or daemon chdir cannot change them. */
        char *dir = rd_absolute_path(app->cfg->plugin_path[i]);
        rc = dir != NULL ? tw_plugin_registry_add_dir(app->reg, dir) : -ENOMEM;
        free(dir);
    }
    if (rc == 0)
        rc = tw_plugin_registry_add_path(app->reg, getenv("TWINE_PLUGIN_PATH"));
    if (rc == 0)
        rc = tw_plugin_registry_add_dir(app->reg, tw_plugin_installed_dir());
    if (rc < 0)
        return rd_error(EX_OSERR, "out of memory setting the module search path");
    return 0;
}

void rd_plugins_close(rd_app *app)
{
    tw_options_free(app->opts);
    app->opts = NULL;
    tw_plugin_registry_free(app->reg);
    app->reg = NULL;
}

static void warn_refusal(const char *path, int code, const char *sentence, void *arg)
{
    (void)path;
    (void)code;
    (void)arg;
    fprintf(stderr, "reactord: warning: %s\n", sentence);
}

static void ignore_refusal(const char *path, int code, const char *sentence, void *arg)
{
    (void)path;
    (void)code;
    (void)sentence;
    (void)arg;
}

int rd_plugins_list(rd_app *app)
{
    tw_plugin_registry_scan(app->reg, warn_refusal, NULL);
    for (size_t i = 0; i < tw_plugin_registry_count(app->reg); i++) {
        const char *origin;
        const tw_plugin *p = tw_plugin_registry_at(app->reg, i, &origin);
        printf("%-12s %s (%s%s)\n", p->name, p->description ? p->description : "", origin,
               tw_plugin_amp_hook(p) != NULL ? "; adds AMP commands" : "");
    }
    return fflush(stdout) == 0 ? 0 : EX_IOERR;
}

static const char *type_name(tw_option_type t)
{
    switch (t) {
    case TW_OPTION_INT:
        return "INTEGER";
    case TW_OPTION_BOOL:
        return "BOOLEAN";
    case TW_OPTION_DOUBLE:
        return "NUMBER";
    default:
        return "TEXT";
    }
}

static int find(rd_app *app, const char *name, const tw_plugin **out)
{
    char err[1024];
    int rc = tw_plugin_registry_find(app->reg, name, out, err, sizeof err);
    if (rc == 0) {
        const char *origin = TW_PLUGIN_ORIGIN_BUILTIN;
        for (size_t i = 0; i < tw_plugin_registry_count(app->reg); i++)
            if (tw_plugin_registry_at(app->reg, i, &origin) == *out)
                break;
        app->origin = origin;
        return 0;
    }
    if (rc != -ENOENT)
        return rd_error(EX_CONFIG, "%s", err);
    /* List every protocol there is, not only those loaded so far. */
    tw_plugin_registry_scan(app->reg, ignore_refusal, NULL);
    char known[1024];
    size_t at = 0;
    known[0] = '\0';
    for (size_t i = 0; i < tw_plugin_registry_count(app->reg) && at < sizeof known; i++) {
        int n = snprintf(known + at, sizeof known - at, "%s%s", i ? ", " : "",
                         tw_plugin_registry_at(app->reg, i, NULL)->name);
        if (n < 0)
            break;
        at += (size_t)n;
    }
    return rd_error(EX_USAGE, "unknown protocol '%s'; known protocols: %s", name, known);
}

int rd_plugins_help(rd_app *app, const char *name)
{
    const tw_plugin *p;
    int rc = find(app, name, &p);
    if (rc != 0)
        return rc;
    printf("%s: %s\n", p->name, p->description ? p->description : "");
    printf("Origin: %s\n", app->origin);
    if (tw_plugin_amp_hook(p) != NULL)
        printf("Adds its AMP commands to AMP protocols served with it in the search path.\n");
    if (p->options == NULL || p->options[0].name == NULL) {
        printf("Options: none\n");
    } else {
        printf("Options (-o KEY=VALUE):\n");
        for (const tw_option_spec *o = p->options; o->name != NULL; o++) {
            char head[96];
            snprintf(head, sizeof head, "%s=%s", o->name, type_name(o->type));
            printf("  %-28s %s", head, o->help ? o->help : "");
            if (o->default_value != NULL)
                printf(" (default: %s)", o->default_value);
            else
                printf(" (no default)");
            printf("\n");
        }
    }
    return fflush(stdout) == 0 ? 0 : EX_IOERR;
}

int rd_plugins_resolve(rd_app *app)
{
    int rc = find(app, app->cfg->protocol, &app->plugin);
    if (rc != 0)
        return rc;
    char err[1024];
    app->opts = tw_options_parse(app->plugin->options, app->cfg->options, app->cfg->noptions,
                                 err, sizeof err);
    if (app->opts == NULL)
        return rd_error(EX_USAGE, "protocol '%s': %s", app->plugin->name, err);
    return 0;
}

/* Every module in the search path that has an AMP hook adds its commands. */
static int add_amp_commands(rd_app *app, tw_amp_dispatcher *d)
{
    tw_plugin_registry_scan(app->reg, NULL, NULL);
    for (size_t i = 0; i < tw_plugin_registry_count(app->reg); i++) {
        const char *origin;
        const tw_plugin *p = tw_plugin_registry_at(app->reg, i, &origin);
        tw_plugin_amp_fn hook = tw_plugin_amp_hook(p);
        if (hook == NULL || p == app->plugin)
            continue;
        char err[1024] = "";
        tw_options *defaults = tw_options_parse(p->options, NULL, 0, err, sizeof err);
        if (defaults == NULL)
            return rd_error(EX_CONFIG, "module '%s' (%s): %s", p->name, origin, err);
        size_t before = tw_amp_dispatcher_count(d);
        int rc = hook(d, defaults, err, sizeof err);
        tw_options_free(defaults);
        if (rc < 0)
            return rd_error(EX_CONFIG, "module '%s' (%s) could not add its AMP commands: %s",
                            p->name, origin, err[0] ? err : tw_strerror(rc));
        tw_log(TW_LOG_INFO, "reactord", "module '%s' (%s) added %zu AMP commands", p->name,
               origin, tw_amp_dispatcher_count(d) - before);
    }
    return 0;
}

int rd_plugins_make_factory(rd_app *app, tw_reactor *r, tw_factory **out)
{
    char err[1024] = "";
    tw_factory *f = app->plugin->make_factory(r, app->opts, err, sizeof err);
    if (f == NULL)
        return rd_error(EX_CONFIG, "protocol '%s' could not start: %s", app->plugin->name,
                        err[0] ? err : "its module gave no reason");
    tw_amp_dispatcher *d = tw_amp_factory_dispatcher(f);
    if (d != NULL) {
        int rc = add_amp_commands(app, d);
        if (rc != 0) {
            tw_factory_free(f);
            return rc;
        }
    }
    *out = f;
    return 0;
}

int rd_plugins_make_datagram(rd_app *app, tw_reactor *r, tw_datagram_protocol **out)
{
    tw_plugin_datagram_fn make = tw_plugin_datagram_hook(app->plugin);
    char err[1024] = "";
    tw_datagram_protocol *p = make != NULL ? make(r, app->opts, err, sizeof err) : NULL;
    if (p == NULL)
        return rd_error(EX_CONFIG, "protocol '%s' could not start over UDP: %s",
                        app->plugin->name, err[0] ? err : "its module gave no reason");
    *out = p;
    return 0;
}

int rd_plugins_check_endpoints(rd_app *app, rd_endpoint *const *e, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (rd_endpoint_is_datagram(e[i]) && tw_plugin_datagram_hook(app->plugin) == NULL)
            return rd_error(EX_USAGE,
                            "protocol '%s' cannot serve the endpoint '%s': its module has no "
                            "datagram protocol, so it serves tcp, tcp6, unix and systemd "
                            "endpoints only",
                            app->plugin->name, rd_endpoint_describe(e[i]));
    return 0;
}
