/* SPDX-License-Identifier: MIT */
/*
 * Module descriptors and their options: the checks every module passes
 * before it is used, whether it is built in or loaded from a file (its
 * version, then what its type requires of its context), and the
 * validation of the operator's key=value options against the module's
 * option table, so that a module never sees a malformed value.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <twine/plugin.h>

struct tw_options {
    const tw_option_spec *spec;
    size_t n;
    char *values[]; /* one per spec entry; NULL when absent */
};

/* The constructor a module of a known type must have, or NULL for an
 * unknown type. A loader of this ABI knows every type of its minor. */
static const char *missing_constructor(const tw_plugin *p)
{
    switch (p->type) {
    case TW_PLUGIN_PROTOCOL: {
        const tw_plugin_protocol *c = p->ctx;
        return c == NULL || c->make_factory == NULL ? "make_factory" : "";
    }
    case TW_PLUGIN_AMP_COMMANDS: {
        const tw_plugin_amp_commands *c = p->ctx;
        return c == NULL || c->register_commands == NULL ? "register_commands" : "";
    }
    default:
        return NULL;
    }
}

TW_API int tw_plugin_check(const tw_plugin *p, const char *origin, char *err, size_t errlen)
{
    if (p->magic != TW_PLUGIN_MAGIC) {
        snprintf(err, errlen, "%s is not a twine protocol module (bad magic 0x%08x)", origin,
                 (unsigned)p->magic);
        return -EINVAL;
    }
    /* Only the fields above are common to every major: read no further. */
    if (p->abi_major != TW_PLUGIN_ABI_MAJOR || p->abi_minor > TW_PLUGIN_ABI_MINOR) {
        snprintf(err, errlen,
                 "%s was built for module ABI %u.%u, but this twine provides ABI %u.%u", origin,
                 (unsigned)p->abi_major, (unsigned)p->abi_minor, TW_PLUGIN_ABI_MAJOR,
                 TW_PLUGIN_ABI_MINOR);
        return -EINVAL;
    }
    if (p->name == NULL || p->name[0] == '\0') {
        snprintf(err, errlen, "%s has a descriptor without a name", origin);
        return -EINVAL;
    }
    const char *missing = missing_constructor(p);
    if (missing == NULL) {
        snprintf(err, errlen,
                 "%s declares module type %u, which this twine (module ABI %u.%u) does not know",
                 origin, (unsigned)p->type, TW_PLUGIN_ABI_MAJOR, TW_PLUGIN_ABI_MINOR);
        return -EINVAL;
    }
    if (missing[0] != '\0') {
        snprintf(err, errlen, "%s is a %s module without the %s its type requires", origin,
                 tw_plugin_type_name(p), missing);
        return -EINVAL;
    }
    return 0;
}

TW_API const void *tw_plugin_context(const tw_plugin *p, uint32_t type)
{
    return p->type == type ? p->ctx : NULL;
}

TW_API const char *tw_plugin_type_name(const tw_plugin *p)
{
    switch (p->type) {
    case TW_PLUGIN_PROTOCOL:
        return "protocol";
    case TW_PLUGIN_AMP_COMMANDS:
        return "AMP commands";
    default:
        return "unknown";
    }
}

static int parse_bool(const char *v, int *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0)
            return *out = 1, 0;
        if (strcasecmp(v, no[i]) == 0)
            return *out = 0, 0;
    }
    return -EINVAL;
}

static int parse_int(const char *v, long long *out)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (*v == '\0' || *end != '\0' || errno != 0)
        return -EINVAL;
    *out = x;
    return 0;
}

static int parse_double(const char *v, double *out)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (*v == '\0' || *end != '\0' || errno != 0 || !isfinite(x))
        return -EINVAL;
    *out = x;
    return 0;
}

static int valid_value(tw_option_type type, const char *v)
{
    long long i;
    double d;
    int b;
    switch (type) {
    case TW_OPTION_INT:
        return parse_int(v, &i) == 0;
    case TW_OPTION_BOOL:
        return parse_bool(v, &b) == 0;
    case TW_OPTION_DOUBLE:
        return parse_double(v, &d) == 0;
    default:
        return 1;
    }
}

static const char *const type_names[] = {"text", "an integer", "a boolean", "a number"};

static void list_keys(const tw_option_spec *spec, char *buf, size_t len)
{
    size_t at = 0;
    buf[0] = '\0';
    for (size_t i = 0; spec != NULL && spec[i].name != NULL && at < len; i++) {
        int n = snprintf(buf + at, len - at, "%s%s", i ? ", " : "", spec[i].name);
        if (n < 0)
            break;
        at += (size_t)n;
    }
    if (buf[0] == '\0')
        snprintf(buf, len, "none");
}

TW_API tw_options *tw_options_parse(const tw_option_spec *spec, const char *const *kv,
                                    size_t n, char *err, size_t errlen)
{
    size_t count = 0;
    while (spec != NULL && spec[count].name != NULL)
        count++;
    tw_options *o = calloc(1, sizeof *o + count * sizeof(char *));
    if (o == NULL) {
        snprintf(err, errlen, "out of memory parsing options");
        return NULL;
    }
    o->spec = spec;
    o->n = count;

    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(kv[i], '=');
        if (eq == NULL || eq == kv[i]) {
            snprintf(err, errlen, "option '%s' is not of the form key=value", kv[i]);
            goto fail;
        }
        size_t klen = (size_t)(eq - kv[i]);
        size_t j = 0;
        while (j < count && !(strlen(spec[j].name) == klen && !strncmp(spec[j].name, kv[i], klen)))
            j++;
        if (j == count) {
            char keys[512];
            list_keys(spec, keys, sizeof keys);
            snprintf(err, errlen, "unknown option '%.*s'; valid options: %s", (int)klen, kv[i],
                     keys);
            goto fail;
        }
        if (!valid_value(spec[j].type, eq + 1)) {
            snprintf(err, errlen, "option '%s' must be %s, not '%s'", spec[j].name,
                     type_names[spec[j].type], eq + 1);
            goto fail;
        }
        free(o->values[j]);
        if ((o->values[j] = strdup(eq + 1)) == NULL) {
            snprintf(err, errlen, "out of memory parsing options");
            goto fail;
        }
    }
    for (size_t j = 0; j < count; j++) {
        if (o->values[j] == NULL && spec[j].default_value != NULL &&
            (o->values[j] = strdup(spec[j].default_value)) == NULL) {
            snprintf(err, errlen, "out of memory parsing options");
            goto fail;
        }
    }
    return o;

fail:
    tw_options_free(o);
    return NULL;
}

TW_API void tw_options_free(tw_options *o)
{
    if (o == NULL)
        return;
    for (size_t i = 0; i < o->n; i++)
        free(o->values[i]);
    free(o);
}

TW_API const char *tw_options_get(const tw_options *o, const char *name)
{
    for (size_t i = 0; o != NULL && i < o->n; i++)
        if (strcmp(o->spec[i].name, name) == 0)
            return o->values[i];
    return NULL;
}

TW_API long long tw_options_get_int(const tw_options *o, const char *name, long long fallback)
{
    const char *v = tw_options_get(o, name);
    long long x;
    return v != NULL && parse_int(v, &x) == 0 ? x : fallback;
}

TW_API int tw_options_get_bool(const tw_options *o, const char *name, int fallback)
{
    const char *v = tw_options_get(o, name);
    int b;
    return v != NULL && parse_bool(v, &b) == 0 ? b : fallback;
}

TW_API double tw_options_get_double(const tw_options *o, const char *name, double fallback)
{
    const char *v = tw_options_get(o, name);
    double d;
    return v != NULL && parse_double(v, &d) == 0 ? d : fallback;
}
