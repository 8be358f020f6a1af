/* SPDX-License-Identifier: MIT */
/*
 * Protocol modules loaded from files, and the registry that decides which
 * module a protocol name means. A module is trusted with the whole process
 * once it is loaded, so everything that can be checked is checked before
 * its descriptor is used: that it loads with every symbol resolved, that it
 * exports a descriptor, its magic and ABI version, and that its name is a
 * valid file name which no other module already took. A module that fails
 * is unloaded at once and refused with one sentence naming the file.
 */
#include "config.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <twine/log.h>
#include <twine/plugin.h>

#ifndef TW_PLUGIN_INSTALLED_DIR
#define TW_PLUGIN_INSTALLED_DIR "/usr/local/lib/twine/protocols"
#endif

#define MODULE_SUFFIX ".so"

struct tw_plugin_module {
    void *handle;
    const tw_plugin *plugin;
    char path[];
};

typedef struct {
    const tw_plugin *plugin;
    tw_plugin_module *module; /* NULL for a built-in */
} entry;

struct tw_plugin_registry {
    entry *entries;
    size_t n, cap;
    char **dirs;
    size_t ndirs;
};

TW_API const char *tw_plugin_installed_dir(void)
{
    return TW_PLUGIN_INSTALLED_DIR;
}

/* A protocol name becomes a file name (NAME.so), so it must be one. */
static int valid_name(const char *name)
{
    if (name[0] == '\0' || name[0] == '.' || strlen(name) > 128)
        return 0;
    for (const char *c = name; *c != '\0'; c++) {
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '_' || *c == '-' || *c == '.'))
            return 0;
    }
    return 1;
}

/* dlerror() usually starts with the path; the sentence names it already. */
static const char *dl_reason(const char *path)
{
    const char *e = dlerror();
    if (e == NULL)
        return "unknown reason";
    size_t n = strlen(path);
    if (strncmp(e, path, n) == 0 && e[n] == ':' && e[n + 1] == ' ')
        e += n + 2;
    return e;
}

TW_API int tw_plugin_load(const char *path, tw_plugin_module **out, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot load module %s: %s", path, strerror(e));
        return -e;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "cannot load module %s: it is not a regular file", path);
        return -ENOEXEC;
    }
    /* Without a '/' dlopen() would search the library path instead. */
    int relative = strchr(path, '/') == NULL;
    size_t len = strlen(path) + (relative ? 2 : 0);
    tw_plugin_module *m = malloc(sizeof *m + len + 1);
    if (m == NULL) {
        snprintf(err, errlen, "out of memory loading module %s", path);
        return -ENOMEM;
    }
    snprintf(m->path, len + 1, "%s%s", relative ? "./" : "", path);

    dlerror();
    m->handle = dlopen(m->path, RTLD_NOW | RTLD_LOCAL);
    if (m->handle == NULL) {
        snprintf(err, errlen, "cannot load module %s: %s", path, dl_reason(m->path));
        free(m);
        return -ENOEXEC;
    }
    const tw_plugin *p = dlsym(m->handle, TW_PLUGIN_SYMBOL_NAME);
    int rc = 0;
    if (p == NULL) {
        snprintf(err, errlen,
                 "module %s does not export the symbol %s; a module defines it with TW_PLUGIN()",
                 path, TW_PLUGIN_SYMBOL_NAME);
        rc = -ENOEXEC;
    } else if (p->magic != TW_PLUGIN_MAGIC) {
        snprintf(err, errlen,
                 "module %s is not a twine protocol module: its descriptor's magic is 0x%08x, "
                 "expected 0x%08x",
                 path, (unsigned)p->magic, (unsigned)TW_PLUGIN_MAGIC);
        rc = -EINVAL;
    } else if ((rc = tw_plugin_check(p, path, err, errlen)) < 0) {
        /* the sentence names both ABI versions */
    } else if (!valid_name(p->name)) {
        snprintf(err, errlen,
                 "module %s declares the protocol name '%s'; a name is letters, digits, '_', "
                 "'-' and '.', and does not start with '.'",
                 path, p->name);
        rc = -EINVAL;
    }
    if (rc < 0) {
        dlclose(m->handle);
        free(m);
        return rc;
    }
    m->plugin = p;
    *out = m;
    return 0;
}

TW_API const tw_plugin *tw_plugin_module_descriptor(const tw_plugin_module *m)
{
    return m->plugin;
}

TW_API const char *tw_plugin_module_path(const tw_plugin_module *m)
{
    return m->path;
}

TW_API void tw_plugin_module_close(tw_plugin_module *m)
{
    if (m == NULL)
        return;
    dlclose(m->handle);
    free(m);
}

static int push_entry(tw_plugin_registry *reg, const tw_plugin *p, tw_plugin_module *m)
{
    if (reg->n == reg->cap) {
        size_t cap = reg->cap ? reg->cap * 2 : 16;
        entry *v = realloc(reg->entries, cap * sizeof *v);
        if (v == NULL)
            return -ENOMEM;
        reg->entries = v;
        reg->cap = cap;
    }
    reg->entries[reg->n++] = (entry){p, m};
    return 0;
}

static const entry *lookup(const tw_plugin_registry *reg, const char *name)
{
    for (size_t i = 0; i < reg->n; i++)
        if (strcmp(reg->entries[i].plugin->name, name) == 0)
            return &reg->entries[i];
    return NULL;
}

static const char *origin_of(const entry *e)
{
    return e->module != NULL ? e->module->path : TW_PLUGIN_ORIGIN_BUILTIN;
}

TW_API tw_plugin_registry *tw_plugin_registry_new(void)
{
    return calloc(1, sizeof(tw_plugin_registry));
}

static int refuse_duplicate(const tw_plugin_registry *reg, const tw_plugin *p, const char *origin,
                            char *err, size_t errlen)
{
    const entry *dup = lookup(reg, p->name);
    if (dup == NULL)
        return 0;
    if (strcmp(origin, TW_PLUGIN_ORIGIN_BUILTIN) == 0)
        snprintf(err, errlen, "the built-in module '%s' is registered twice", p->name);
    else
        snprintf(err, errlen,
                 "module %s declares protocol '%s', which %s%s already provides; a protocol "
                 "name is taken by the first module in the search order",
                 origin, p->name, dup->module != NULL ? "the module " : "the ",
                 dup->module != NULL ? origin_of(dup) : "built-in module");
    return -EEXIST;
}

TW_API int tw_plugin_registry_add_builtin(tw_plugin_registry *reg, const tw_plugin *p, char *err,
                                          size_t errlen)
{
    int rc = tw_plugin_check(p, TW_PLUGIN_ORIGIN_BUILTIN, err, errlen);
    if (rc < 0)
        return rc;
    if (!valid_name(p->name)) {
        snprintf(err, errlen, "the built-in module '%s' has an invalid name", p->name);
        return -EINVAL;
    }
    if ((rc = refuse_duplicate(reg, p, TW_PLUGIN_ORIGIN_BUILTIN, err, errlen)) < 0)
        return rc;
    if (push_entry(reg, p, NULL) < 0) {
        snprintf(err, errlen, "out of memory registering the built-in module '%s'", p->name);
        return -ENOMEM;
    }
    return 0;
}

TW_API void tw_plugin_registry_free(tw_plugin_registry *reg)
{
    if (reg == NULL)
        return;
    for (size_t i = 0; i < reg->n; i++)
        tw_plugin_module_close(reg->entries[i].module);
    for (size_t i = 0; i < reg->ndirs; i++)
        free(reg->dirs[i]);
    free(reg->dirs);
    free(reg->entries);
    free(reg);
}

TW_API int tw_plugin_registry_add_dir(tw_plugin_registry *reg, const char *dir)
{
    if (dir == NULL || dir[0] == '\0')
        return 0;
    char **v = realloc(reg->dirs, (reg->ndirs + 1) * sizeof *v);
    if (v == NULL)
        return -ENOMEM;
    reg->dirs = v;
    if ((v[reg->ndirs] = strdup(dir)) == NULL)
        return -ENOMEM;
    reg->ndirs++;
    return 0;
}

TW_API int tw_plugin_registry_add_path(tw_plugin_registry *reg, const char *list)
{
    if (list == NULL)
        return 0;
    char *copy = strdup(list);
    if (copy == NULL)
        return -ENOMEM;
    int rc = 0;
    char *save = NULL;
    for (char *d = strtok_r(copy, ":", &save); d != NULL && rc == 0; d = strtok_r(NULL, ":", &save))
        rc = tw_plugin_registry_add_dir(reg, d);
    free(copy);
    return rc;
}

TW_API size_t tw_plugin_registry_dir_count(const tw_plugin_registry *reg)
{
    return reg->ndirs;
}

TW_API const char *tw_plugin_registry_dir(const tw_plugin_registry *reg, size_t i)
{
    return i < reg->ndirs ? reg->dirs[i] : NULL;
}

/* Whether @p path names the file of a module already loaded. */
static int already_loaded(const tw_plugin_registry *reg, const char *path)
{
    struct stat a, b;
    if (stat(path, &a) < 0)
        return 0;
    for (size_t i = 0; i < reg->n; i++) {
        const tw_plugin_module *m = reg->entries[i].module;
        if (m != NULL && stat(m->path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
            return 1;
    }
    return 0;
}

TW_API int tw_plugin_registry_load(tw_plugin_registry *reg, const char *path,
                                   const tw_plugin **out, char *err, size_t errlen)
{
    tw_plugin_module *m;
    int rc = tw_plugin_load(path, &m, err, errlen);
    if (rc < 0)
        return rc;
    if ((rc = refuse_duplicate(reg, m->plugin, path, err, errlen)) < 0) {
        tw_plugin_module_close(m);
        return rc;
    }
    if (push_entry(reg, m->plugin, m) < 0) {
        snprintf(err, errlen, "out of memory loading module %s", path);
        tw_plugin_module_close(m);
        return -ENOMEM;
    }
    if (out != NULL)
        *out = m->plugin;
    return 0;
}

static char *join(const char *dir, const char *file)
{
    size_t n = strlen(dir) + strlen(file) + 2;
    char *s = malloc(n);
    if (s != NULL)
        snprintf(s, n, "%s/%s", dir, file);
    return s;
}

static void list_known(const tw_plugin_registry *reg, char *buf, size_t len)
{
    size_t at = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < reg->n && at < len; i++) {
        int k = snprintf(buf + at, len - at, "%s%s", i ? ", " : "", reg->entries[i].plugin->name);
        if (k < 0)
            break;
        at += (size_t)k;
    }
}

/* A module file must declare the protocol it is named after. */
static int check_file_name(tw_plugin_registry *reg, const char *path, const char *name,
                           char *err, size_t errlen)
{
    entry *last = &reg->entries[reg->n - 1];
    if (strcmp(last->plugin->name, name) == 0)
        return 0;
    snprintf(err, errlen,
             "module %s declares protocol '%s'; the module of protocol '%s' must be named "
             "%s" MODULE_SUFFIX,
             path, last->plugin->name, last->plugin->name, last->plugin->name);
    tw_plugin_module_close(last->module);
    reg->n--;
    return -EINVAL;
}

TW_API int tw_plugin_registry_find(tw_plugin_registry *reg, const char *name,
                                   const tw_plugin **out, char *err, size_t errlen)
{
    const entry *e = lookup(reg, name);
    if (e != NULL) {
        *out = e->plugin;
        return 0;
    }
    if (valid_name(name)) {
        char file[160];
        snprintf(file, sizeof file, "%s" MODULE_SUFFIX, name);
        for (size_t i = 0; i < reg->ndirs; i++) {
            char *path = join(reg->dirs[i], file);
            if (path == NULL) {
                snprintf(err, errlen, "out of memory looking for protocol '%s'", name);
                return -ENOMEM;
            }
            struct stat st;
            if (stat(path, &st) < 0) {
                free(path);
                continue;
            }
            const tw_plugin *p;
            int rc = tw_plugin_registry_load(reg, path, &p, err, errlen);
            if (rc == 0)
                rc = check_file_name(reg, path, name, err, errlen);
            free(path);
            if (rc < 0)
                return rc;
            *out = p;
            return 0;
        }
    }
    char known[1024];
    list_known(reg, known, sizeof known);
    snprintf(err, errlen, "unknown protocol '%s'; known protocols: %s", name, known);
    return -ENOENT;
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && strcmp(s + n - k, suffix) == 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.so names in @p dir, sorted; NULL with *n == 0 when there are none. */
static char **list_modules(const char *dir, size_t *n)
{
    *n = 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return NULL;
    char **names = NULL;
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || !has_suffix(de->d_name, MODULE_SUFFIX))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            char **v = realloc(names, cap * sizeof *v);
            if (v == NULL)
                break;
            names = v;
        }
        if ((names[*n] = strdup(de->d_name)) == NULL)
            break;
        (*n)++;
    }
    closedir(d);
    if (*n > 1)
        qsort(names, *n, sizeof *names, by_name);
    return names;
}

TW_API size_t tw_plugin_registry_files(const tw_plugin_registry *reg, tw_plugin_file_fn fn,
                                       void *arg)
{
    size_t count = 0;
    for (size_t i = 0; i < reg->ndirs; i++) {
        size_t n;
        char **names = list_modules(reg->dirs[i], &n);
        for (size_t j = 0; j < n; j++) {
            char *path = join(reg->dirs[i], names[j]);
            if (path != NULL) {
                count++;
                fn(path, arg);
            }
            free(path);
            free(names[j]);
        }
        free(names);
    }
    return count;
}

TW_API int tw_plugin_registry_scan_file(tw_plugin_registry *reg, const char *path, char *err,
                                        size_t errlen)
{
    if (already_loaded(reg, path))
        return 0;
    int rc = tw_plugin_registry_load(reg, path, NULL, err, errlen);
    if (rc < 0)
        return rc;
    const char *base = strrchr(path, '/');
    base = base != NULL ? base + 1 : path;
    size_t n = strlen(base);
    char name[256];
    if (!has_suffix(base, MODULE_SUFFIX) || n - strlen(MODULE_SUFFIX) >= sizeof name)
        n = 0;
    else
        n -= strlen(MODULE_SUFFIX);
    memcpy(name, base, n);
    name[n] = '\0';
    return check_file_name(reg, path, name, err, errlen);
}

typedef struct {
    tw_plugin_registry *reg;
    tw_plugin_refusal_fn on_refusal;
    void *arg;
    size_t refused;
} scan_state;

static void scan_one(const char *path, void *arg)
{
    scan_state *st = arg;
    char err[1024];
    int rc = tw_plugin_registry_scan_file(st->reg, path, err, sizeof err);
    if (rc == 0)
        return;
    st->refused++;
    if (st->on_refusal != NULL)
        st->on_refusal(path, rc, err, st->arg);
    else
        tw_log(TW_LOG_WARN, "plugin", "%s", err);
}

TW_API size_t tw_plugin_registry_scan(tw_plugin_registry *reg, tw_plugin_refusal_fn on_refusal,
                                      void *arg)
{
    scan_state st = {reg, on_refusal, arg, 0};
    tw_plugin_registry_files(reg, scan_one, &st);
    return st.refused;
}

TW_API size_t tw_plugin_registry_count(const tw_plugin_registry *reg)
{
    return reg->n;
}

TW_API const tw_plugin *tw_plugin_registry_at(const tw_plugin_registry *reg, size_t i,
                                              const char **origin)
{
    if (i >= reg->n)
        return NULL;
    if (origin != NULL)
        *origin = origin_of(&reg->entries[i]);
    return reg->entries[i].plugin;
}
