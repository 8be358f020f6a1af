/* SPDX-License-Identifier: MIT */
/*
 * Which protocol reactord serves, and where it came from. The search path is
 * the operator's --plugin-path directories in order, then TWINE_PLUGIN_PATH,
 * then the installed module directory; built-ins come before all of them.
 * This file also answers --list-protocols and --help-protocol, and hands an
 * AMP factory the commands of each module named by --amp-commands.
 *
 * Loading a module runs its code, so reactord loads only the modules asked
 * for: the protocol's while it may still be root, those of --amp-commands
 * after privileges are dropped (before, only their files are looked for),
 * and never another file of the search path; --list-protocols loads each file in
 * a short-lived child, so a module that crashes is one warning naming it;
 * the protocols an unknown name is compared with are file names, not
 * loaded modules. Module code that reactord runs while starting is
 * guarded (guard.c), so a crash in it is reported naming the module.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <sys/wait.h>
#include <unistd.h>
#include <twine/amp.h>

#include "../../protocols/builtin.h"
#include "reactord.h"

int rd_plugins_open(rd_app *app)
{
    app->reg = tw_plugin_registry_new();
    if (app->reg == NULL)
        return rd_error(EX_OSERR, "out of memory creating the module registry");
    char err[1024];
    int rc = tw__builtin_register(app->reg, err, sizeof err);
    if (rc < 0)
        return rd_error(EX_SOFTWARE, "%s", err);
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

/* ---------------------------------------------------------- --list-protocols */

static void print_line(const tw_plugin *p, const char *origin)
{
    printf("%-12s %s (%s%s)\n", p->name, p->description ? p->description : "", origin,
           p->type == TW_PLUGIN_AMP_COMMANDS ? "; AMP commands, for --amp-commands" : "");
}

typedef struct {
    rd_app *app;
    char **ok; /* files that loaded, in order */
    size_t nok, cap;
} listing;

/* In a child: load the files that loaded before (so a protocol declared
 * twice is refused as the registry refuses it), then @p path, and print
 * its line or its refusal. */
static void list_in_child(listing *l, const char *path)
{
    char err[1024];
    for (size_t i = 0; i < l->nok; i++)
        tw_plugin_registry_scan_file(l->app->reg, l->ok[i], err, sizeof err);
    size_t before = tw_plugin_registry_count(l->app->reg);
    if (tw_plugin_registry_scan_file(l->app->reg, path, err, sizeof err) < 0) {
        fprintf(stderr, "reactord: warning: %s\n", err);
        fflush(NULL);
        _exit(1);
    }
    if (tw_plugin_registry_count(l->app->reg) > before) {
        const char *origin;
        const tw_plugin *p = tw_plugin_registry_at(l->app->reg, before, &origin);
        print_line(p, origin);
    }
    fflush(NULL);
    _exit(0);
}

static void list_file(const char *path, void *arg)
{
    listing *l = arg;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        list_in_child(l, path);
    int status = 0;
    if (pid < 0) {
        fprintf(stderr, "reactord: warning: cannot fork to load %s: %s\n", path,
                strerror(errno));
        return;
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFSIGNALED(status)) {
        fprintf(stderr, "reactord: warning: module %s crashed while loading, with signal %d "
                        "(%s); it is not listed\n",
                path, WTERMSIG(status), strsignal(WTERMSIG(status)));
        return;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return;
    if (l->nok == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        char **v = realloc(l->ok, cap * sizeof *v);
        if (v == NULL)
            return;
        l->ok = v;
        l->cap = cap;
    }
    if ((l->ok[l->nok] = strdup(path)) != NULL)
        l->nok++;
}

int rd_plugins_list(rd_app *app)
{
    for (size_t i = 0; i < tw_plugin_registry_count(app->reg); i++) {
        const char *origin;
        const tw_plugin *p = tw_plugin_registry_at(app->reg, i, &origin);
        print_line(p, origin);
    }
    listing l = {app, NULL, 0, 0};
    tw_plugin_registry_files(app->reg, list_file, &l);
    for (size_t i = 0; i < l.nok; i++)
        free(l.ok[i]);
    free(l.ok);
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

typedef struct {
    char text[1024];
    size_t at;
} name_list;

/* Append @p name once ("a, b, c"). */
static void add_name(const char *name, name_list *l)
{
    size_t n = strlen(name);
    for (const char *at = l->text; (at = strstr(at, name)) != NULL; at += n)
        if ((at == l->text || at[-1] == ' ') && (at[n] == ',' || at[n] == '\0'))
            return;
    int k = snprintf(l->text + l->at, sizeof l->text - l->at, "%s%s", l->at ? ", " : "", name);
    if (k > 0 && (size_t)k < sizeof l->text - l->at)
        l->at += (size_t)k;
}

static void add_file_name(const char *path, void *arg)
{
    const char *base = strrchr(path, '/');
    char name[256];
    snprintf(name, sizeof name, "%s", base != NULL ? base + 1 : path);
    size_t n = strlen(name);
    if (n > 3)
        name[n - 3] = '\0'; /* NAME.so */
    add_name(name, arg);
}

static const char *origin_of(const rd_app *app, const tw_plugin *p)
{
    const char *origin = TW_PLUGIN_ORIGIN_BUILTIN;
    for (size_t i = 0; i < tw_plugin_registry_count(app->reg); i++)
        if (tw_plugin_registry_at(app->reg, i, &origin) == p)
            break;
    return origin;
}

/* One sentence for a name no module provides, listing every protocol there
 * is by file name: loading them all would run their code just to print
 * their names. */
static int unknown(const rd_app *app, const char *name, int for_amp_commands)
{
    name_list known = {"", 0};
    for (size_t i = 0; i < tw_plugin_registry_count(app->reg); i++)
        add_name(tw_plugin_registry_at(app->reg, i, NULL)->name, &known);
    tw_plugin_registry_files(app->reg, add_file_name, &known);
    if (for_amp_commands)
        return rd_error(EX_USAGE, "unknown module '%s' for --amp-commands; known modules: %s",
                        name, known.text);
    return rd_error(EX_USAGE, "unknown protocol '%s'; known protocols: %s", name, known.text);
}

/* Load (if it is a file) and return the module of @p name, and nothing
 * else: tw_plugin_registry_find() opens NAME.so only. */
static int find(rd_app *app, const char *name, const tw_plugin **out, const char **origin)
{
    char err[1024], what[600];
    snprintf(what, sizeof what, "the module of protocol '%s', while loading,", name);
    rd_guard_begin(what);
    int rc = tw_plugin_registry_find(app->reg, name, out, err, sizeof err);
    rd_guard_end();
    if (rc == 0) {
        *origin = origin_of(app, *out);
        return 0;
    }
    if (rc != -ENOENT)
        return rd_error(EX_CONFIG, "%s", err);
    return unknown(app, name, 0);
}

int rd_plugins_help(rd_app *app, const char *name)
{
    const tw_plugin *p;
    const char *origin;
    int rc = find(app, name, &p, &origin);
    if (rc != 0)
        return rc;
    printf("%s: %s\n", p->name, p->description ? p->description : "");
    printf("Origin: %s\n", origin);
    if (p->type == TW_PLUGIN_AMP_COMMANDS)
        printf("Adds AMP commands to an AMP protocol: reactord --protocol amp "
               "--amp-commands %s\n",
               p->name);
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

/* The first of built-ins and search directories wins; say so when a file
 * of the same name is passed over, or an operator may believe it serves. */
static void log_shadowed(const rd_app *app)
{
    for (size_t i = 0; i < tw_plugin_registry_dir_count(app->reg); i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.so", tw_plugin_registry_dir(app->reg, i),
                 app->plugin->name);
        if (strcmp(path, app->origin) != 0 && access(path, F_OK) == 0)
            tw_log(TW_LOG_WARN, "reactord",
                   "protocol '%s' is served from %s; the module %s, later in the search "
                   "order, is not loaded",
                   app->plugin->name, app->origin, path);
    }
}

/* Whether module @p name is there to be loaded later: registered, or a
 * NAME.so in the search path. Nothing is loaded. */
static int available(const rd_app *app, const char *name)
{
    for (size_t i = 0; i < tw_plugin_registry_count(app->reg); i++)
        if (strcmp(tw_plugin_registry_at(app->reg, i, NULL)->name, name) == 0)
            return 1;
    if (strchr(name, '/') != NULL)
        return 0;
    for (size_t i = 0; i < tw_plugin_registry_dir_count(app->reg); i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.so", tw_plugin_registry_dir(app->reg, i), name);
        if (access(path, F_OK) == 0)
            return 1;
    }
    return 0;
}

int rd_plugins_resolve(rd_app *app)
{
    int rc = find(app, app->cfg->protocol, &app->plugin, &app->origin);
    if (rc != 0)
        return rc;
    app->proto = tw_plugin_context(app->plugin, TW_PLUGIN_PROTOCOL);
    if (app->plugin->type == TW_PLUGIN_AMP_COMMANDS)
        return rd_error(EX_USAGE,
                        "module '%s' (%s) adds AMP commands and is not a protocol; serve it "
                        "with --protocol amp --amp-commands %s",
                        app->plugin->name, app->origin, app->plugin->name);
    if (app->proto == NULL)
        return rd_error(EX_USAGE, "module '%s' (%s) is a %s module, not a protocol",
                        app->plugin->name, app->origin, tw_plugin_type_name(app->plugin));
    log_shadowed(app);
    /* Those are loaded once privileges are dropped; a typo is told now. */
    for (size_t i = 0; i < app->cfg->namp_commands; i++)
        if (!available(app, app->cfg->amp_commands[i]))
            return unknown(app, app->cfg->amp_commands[i], 1);
    char err[1024];
    app->opts = tw_options_parse(app->plugin->options, app->cfg->options, app->cfg->noptions,
                                 err, sizeof err);
    if (app->opts == NULL)
        return rd_error(EX_USAGE, "protocol '%s': %s", app->plugin->name, err);
    return 0;
}

/* Load the --amp-commands module @p name and add its commands to @p d. */
static int add_amp_commands(rd_app *app, tw_amp_dispatcher *d, const char *name)
{
    const tw_plugin *p;
    const char *origin;
    int rc = find(app, name, &p, &origin);
    if (rc != 0)
        return rc;
    const tw_plugin_amp_commands *c = tw_plugin_context(p, TW_PLUGIN_AMP_COMMANDS);
    if (c == NULL)
        return rd_error(EX_USAGE,
                        "--amp-commands %s: module '%s' (%s) is a %s module, which adds no "
                        "AMP commands",
                        name, p->name, origin, tw_plugin_type_name(p));
    char err[1024] = "", what[600];
    tw_options *defaults = tw_options_parse(p->options, NULL, 0, err, sizeof err);
    if (defaults == NULL)
        return rd_error(EX_CONFIG, "module '%s' (%s): %s", p->name, origin, err);
    size_t before = tw_amp_dispatcher_count(d);
    snprintf(what, sizeof what, "module '%s' (%s), adding its AMP commands,", p->name, origin);
    rd_guard_begin(what);
    rc = c->register_commands(d, defaults, err, sizeof err);
    rd_guard_end();
    tw_options_free(defaults);
    if (rc < 0)
        return rd_error(EX_CONFIG, "module '%s' (%s) could not add its AMP commands: %s", p->name,
                        origin, err[0] ? err : tw_strerror(rc));
    tw_log(TW_LOG_INFO, "reactord", "module '%s' (%s) added %zu AMP commands", p->name, origin,
           tw_amp_dispatcher_count(d) - before);
    return 0;
}

int rd_plugins_add_amp_commands(rd_app *app, tw_factory *f)
{
    tw_amp_dispatcher *d = tw_amp_factory_dispatcher(f);
    for (size_t i = 0; i < app->cfg->namp_commands; i++) {
        int rc = add_amp_commands(app, d, app->cfg->amp_commands[i]);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int rd_plugins_make_factory(rd_app *app, tw_reactor *r, tw_factory **out)
{
    char err[1024] = "", what[600];
    snprintf(what, sizeof what, "protocol '%s' (%s), starting,", app->plugin->name, app->origin);
    rd_guard_begin(what);
    tw_factory *f = app->proto->make_factory(r, app->opts, err, sizeof err);
    rd_guard_end();
    if (f == NULL)
        return rd_error(EX_CONFIG, "protocol '%s' could not start: %s", app->plugin->name,
                        err[0] ? err : "its module gave no reason");
    /* Told before anything listens, though the commands come later. */
    if (app->cfg->namp_commands > 0 && tw_amp_factory_dispatcher(f) == NULL) {
        tw_factory_free(f);
        return rd_error(EX_USAGE,
                        "--amp-commands needs an AMP protocol such as amp; protocol '%s' is not "
                        "one",
                        app->plugin->name);
    }
    *out = f;
    return 0;
}

int rd_plugins_make_datagram(rd_app *app, tw_reactor *r, tw_datagram_protocol **out)
{
    tw_plugin_datagram_fn make = app->proto->make_datagram;
    char err[1024] = "";
    char what[600];
    snprintf(what, sizeof what, "protocol '%s' (%s), starting over UDP,", app->plugin->name,
             app->origin);
    rd_guard_begin(what);
    tw_datagram_protocol *p = make != NULL ? make(r, app->opts, err, sizeof err) : NULL;
    rd_guard_end();
    if (p == NULL)
        return rd_error(EX_CONFIG, "protocol '%s' could not start over UDP: %s",
                        app->plugin->name, err[0] ? err : "its module gave no reason");
    *out = p;
    return 0;
}

int rd_plugins_check_endpoints(rd_app *app, rd_endpoint *const *e, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (rd_endpoint_is_datagram(e[i]) && app->proto->make_datagram == NULL)
            return rd_error(EX_USAGE,
                            "protocol '%s' cannot serve the endpoint '%s': its module has no "
                            "datagram protocol, so it serves tcp, tcp6, unix and systemd "
                            "endpoints only",
                            app->plugin->name, rd_endpoint_describe(e[i]));
    return 0;
}
