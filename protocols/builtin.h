/* SPDX-License-Identifier: MIT */
/*
 * The built-in protocol modules, as a program that links them in sees
 * them: reactord registers them in its module registry, and tests that
 * serve a built-in protocol in process look one up by name. libtwine knows
 * none of them.
 */
#ifndef TWINE_PROTOCOLS_BUILTIN_H
#define TWINE_PROTOCOLS_BUILTIN_H

#include <stddef.h>
#include <twine/plugin.h>

/* @return the number of built-in modules. */
size_t tw__builtin_count(void);

/* @return built-in module @p i (static storage), or NULL past the end. */
const tw_plugin *tw__builtin_at(size_t i);

/* @return the built-in module called @p name, or NULL. */
const tw_plugin *tw__builtin_find(const char *name);

/* @return the context of the built-in protocol module @p name, or NULL. */
const tw_plugin_protocol *tw__builtin_protocol(const char *name);

/* Register every built-in module in @p reg, in the order of the table.
 * @return 0, or the code of tw_plugin_registry_add_builtin() with its
 * sentence in @p err. */
int tw__builtin_register(tw_plugin_registry *reg, char *err, size_t errlen);

#endif
