/* SPDX-License-Identifier: MIT */
/*
 * The table of built-in protocol modules. Each entry is the descriptor its
 * module defined with TW_PLUGIN(), exactly as an external module would
 * export it; this file only lists them and hands them to a registry, so
 * that the registry in libtwine needs to know none of them.
 */
#include "config.h"

#include <string.h>

#include "builtin.h"

extern const tw_plugin tw_builtin_plugin_amp;
extern const tw_plugin tw_builtin_plugin_chargen;
extern const tw_plugin tw_builtin_plugin_daytime;
extern const tw_plugin tw_builtin_plugin_discard;
extern const tw_plugin tw_builtin_plugin_echo;
extern const tw_plugin tw_builtin_plugin_line;
extern const tw_plugin tw_builtin_plugin_time;

static const tw_plugin *const builtins[] = {
    &tw_builtin_plugin_echo,
    &tw_builtin_plugin_line,
    &tw_builtin_plugin_discard,
    &tw_builtin_plugin_chargen,
    &tw_builtin_plugin_daytime,
    &tw_builtin_plugin_time,
    &tw_builtin_plugin_amp,
};

#define NBUILTINS (sizeof builtins / sizeof builtins[0])

size_t tw__builtin_count(void)
{
    return NBUILTINS;
}

const tw_plugin *tw__builtin_at(size_t i)
{
    return i < NBUILTINS ? builtins[i] : NULL;
}

const tw_plugin *tw__builtin_find(const char *name)
{
    for (size_t i = 0; i < NBUILTINS; i++)
        if (strcmp(builtins[i]->name, name) == 0)
            return builtins[i];
    return NULL;
}

const tw_plugin_protocol *tw__builtin_protocol(const char *name)
{
    const tw_plugin *p = tw__builtin_find(name);
    return p != NULL ? tw_plugin_context(p, TW_PLUGIN_PROTOCOL) : NULL;
}

int tw__builtin_register(tw_plugin_registry *reg, char *err, size_t errlen)
{
    for (size_t i = 0; i < NBUILTINS; i++) {
        int rc = tw_plugin_registry_add_builtin(reg, builtins[i], err, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}
