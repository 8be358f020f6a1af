/*
 * The protocol module ABI. A module is a shared object exporting exactly one
 * descriptor, made with TW_PLUGIN(). reactord (or any embedder) looks the
 * descriptor up by name, checks its magic and ABI version, validates the
 * operator's key=value options against the module's option table, and asks
 * the module for a factory.
 *
 * Built-in protocols use the very same descriptor, so protocols/echo.c is
 * the template a module author copies.
 *
 * ABI rules: the major version changes when the descriptor's layout or the
 * meaning of a field changes; a module built for another major is refused.
 * The minor version grows when fields are appended; a loader accepts any
 * module whose minor is not newer than its own.
 */
#ifndef TWINE_PLUGIN_H
#define TWINE_PLUGIN_H

#include <stdint.h>
#include <twine/common.h>
#include <twine/protocol.h>
#include <twine/reactor.h>

TW_BEGIN_DECLS

#define TW_PLUGIN_MAGIC 0x7477706cu /* "twpl" */
#define TW_PLUGIN_ABI_MAJOR 1
#define TW_PLUGIN_ABI_MINOR 1 /* 1: make_datagram */

/** The symbol every module exports. */
#define TW_PLUGIN_SYMBOL_NAME "tw_plugin_descriptor"

typedef enum {
    TW_OPTION_STRING = 0,
    TW_OPTION_INT = 1,  /**< decimal integer, range-checked against long long */
    TW_OPTION_BOOL = 2, /**< true/false, yes/no, on/off, 1/0 */
    TW_OPTION_DOUBLE = 3
} tw_option_type;

/** One entry of a module's option table; the table ends with a NULL name. */
typedef struct tw_option_spec {
    const char *name;
    tw_option_type type;
    const char *default_value; /**< NULL: no default (the value is absent) */
    const char *help;
} tw_option_spec;

/** Parsed and validated options, handed to the factory constructor. */
typedef struct tw_options tw_options;

/**
 * The factory constructor. It receives the validated options (borrowed for
 * the call) and returns a factory the caller owns and frees with
 * tw_factory_free(), or NULL after writing one sentence into @p err.
 */
typedef tw_factory *(*tw_plugin_factory_fn)(tw_reactor *r, const tw_options *opts, char *err,
                                            size_t errlen);

struct tw_datagram_protocol;

/**
 * The datagram constructor (ABI 1.1): a module that can also serve over UDP
 * (as echo does, RFC 862) returns one datagram protocol per UDP port; the
 * port takes ownership of it (see twine/udp.h). NULL after writing one
 * sentence into @p err.
 */
typedef struct tw_datagram_protocol *(*tw_plugin_datagram_fn)(tw_reactor *r, const tw_options *opts,
                                                              char *err, size_t errlen);

typedef struct tw_plugin {
    uint32_t magic;     /**< TW_PLUGIN_MAGIC */
    uint16_t abi_major; /**< TW_PLUGIN_ABI_MAJOR when built */
    uint16_t abi_minor; /**< TW_PLUGIN_ABI_MINOR when built */
    const char *name;
    const char *description; /**< one line */
    const tw_option_spec *options;
    tw_plugin_factory_fn make_factory;
    /* ABI 1.1. Read it with tw_plugin_datagram_hook(): a 1.0 module lacks it. */
    tw_plugin_datagram_fn make_datagram; /**< optional: serve over UDP too */
} tw_plugin;

#ifdef TW_PLUGIN_BUILTIN
#define TW_PLUGIN_DEFINE_(id) const tw_plugin tw_builtin_plugin_##id
#else
#define TW_PLUGIN_DEFINE_(id) TW_API const tw_plugin tw_plugin_descriptor
#endif

/**
 * Define the module's descriptor. @p id is a C identifier for the module;
 * the remaining arguments are designated initialisers, e.g.
 *
 *     TW_PLUGIN(echo, .name = "echo", .description = "RFC 862 echo",
 *               .make_factory = echo_factory);
 */
#define TW_PLUGIN(id, ...)                                                                         \
    TW_PLUGIN_DEFINE_(id) = {.magic = TW_PLUGIN_MAGIC,                                           \
                             .abi_major = TW_PLUGIN_ABI_MAJOR,                                   \
                             .abi_minor = TW_PLUGIN_ABI_MINOR,                                   \
                             __VA_ARGS__}

/**
 * Check a descriptor's magic and ABI version.
 * @param origin where it came from, for the message ("built-in" or a path).
 * @return 0, or -EINVAL after writing one sentence naming both versions.
 */
TW_API int tw_plugin_check(const tw_plugin *p, const char *origin, char *err, size_t errlen);

/**
 * @return the module's datagram constructor, or NULL when it has none or
 *         was built for ABI 1.0.
 */
TW_API tw_plugin_datagram_fn tw_plugin_datagram_hook(const tw_plugin *p);

/** @return the number of built-in modules. */
TW_API size_t tw_plugin_builtin_count(void);

/** @return built-in module @p i (static storage), or NULL past the end. */
TW_API const tw_plugin *tw_plugin_builtin(size_t i);

/** @return the built-in module called @p name, or NULL. */
TW_API const tw_plugin *tw_plugin_builtin_find(const char *name);

/**
 * Parse "key=value" strings against @p spec, filling in defaults.
 * @return the options (the caller frees them with tw_options_free()), or
 *         NULL after writing one sentence into @p err: an unknown key (the
 *         sentence lists the valid ones), a value of the wrong type, or no
 *         memory.
 */
TW_API tw_options *tw_options_parse(const tw_option_spec *spec, const char *const *kv,
                                    size_t n, char *err, size_t errlen);

/** Free parsed options. NULL is ignored. */
TW_API void tw_options_free(tw_options *o);

/** @return the option's value as text (borrowed), or NULL when absent. */
TW_API const char *tw_options_get(const tw_options *o, const char *name);

/** @return the option as an integer, or @p fallback when absent. */
TW_API long long tw_options_get_int(const tw_options *o, const char *name, long long fallback);

/** @return the option as a boolean (0/1), or @p fallback when absent. */
TW_API int tw_options_get_bool(const tw_options *o, const char *name, int fallback);

/** @return the option as a double, or @p fallback when absent. */
TW_API double tw_options_get_double(const tw_options *o, const char *name, double fallback);

TW_END_DECLS

#endif
