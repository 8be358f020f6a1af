/* SPDX-License-Identifier: MIT */
/*
 * The table of built-in protocol modules. Each entry is the descriptor its
 * module defined with TW_PLUGIN(), exactly as an external module would
 * export it; this file only lists them.
 */
#include "config.h"

#include <string.h>
#include <twine/plugin.h>

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

TW_API size_t tw_plugin_builtin_count(void)
{
    return NBUILTINS;
}

TW_API const tw_plugin *tw_plugin_builtin(size_t i)
{
    return i < NBUILTINS ? builtins[i] : NULL;
}

TW_API const tw_plugin *tw_plugin_builtin_find(const char *name)
{
    for (size_t i = 0; i < NBUILTINS; i++)
        if (strcmp(builtins[i]->name, name) == 0)
            return builtins[i];
    return NULL;
}
