/* SPDX-License-Identifier: MIT */
/*
 * The module ABI. A module is a shared object exporting exactly one
 * descriptor, made with TW_PLUGIN(). reactord (or any embedder) looks the
 * descriptor up by name, checks its magic and ABI version, validates the
 * operator's key=value options against the module's option table, and then
 * uses the module according to its type.
 *
 * The descriptor is generic, as nginx's ngx_module_t is: what every module
 * has (magic, version, name, description, options), a type, and a context
 * whose layout the type defines. A protocol module (TW_PLUGIN_PROTOCOL)
 * makes stream factories and, optionally, datagram protocols; an AMP
 * commands module (TW_PLUGIN_AMP_COMMANDS) adds commands to an AMP server.
 * A new kind of module gets a new type number and its own context struct;
 * the descriptor stays as it is.
 *
 * Programs that link protocols in (reactord's built-ins) register their
 * descriptors with tw_plugin_registry_add_builtin(); protocols/echo.c is
 * the template a module author copies.
 *
 * ABI rules: the major version changes when the descriptor's layout, a
 * context's layout or the meaning of a field changes; a module built for
 * another major is refused. The minor version grows when fields are
 * appended to a context or types are added; a loader accepts any module
 * whose minor is not newer than its own.
 */
#ifndef TWINE_PLUGIN_H
#define TWINE_PLUGIN_H

#include <stdint.h>
#include <twine/common.h>
#include <twine/protocol.h>
#include <twine/reactor.h>

TW_BEGIN_DECLS

#define TW_PLUGIN_MAGIC 0x7477706cu /* "twpl" */
#define TW_PLUGIN_ABI_MAJOR 2 /* 2: a type and a context */
#define TW_PLUGIN_ABI_MINOR 0

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

/** Parsed and validated options, handed to the module's constructors. */
typedef struct tw_options tw_options;

/** Module types: each names the struct its descriptor's ctx points to. */
#define TW_PLUGIN_PROTOCOL 1u     /**< ctx: const tw_plugin_protocol * */
#define TW_PLUGIN_AMP_COMMANDS 2u /**< ctx: const tw_plugin_amp_commands * */

/**
 * The factory constructor. It receives the validated options (borrowed for
 * the call) and returns a factory the caller owns and frees with
 * tw_factory_free(), or NULL after writing one sentence into @p err.
 */
typedef tw_factory *(*tw_plugin_factory_fn)(tw_reactor *r, const tw_options *opts, char *err,
                                            size_t errlen);

struct tw_amp_dispatcher;
struct tw_datagram_protocol;

/**
 * The datagram constructor: a protocol that can also serve over UDP (as
 * echo does, RFC 862) returns one datagram protocol per UDP port; the port
 * takes ownership of it (see twine/udp.h). NULL after writing one sentence
 * into @p err.
 */
typedef struct tw_datagram_protocol *(*tw_plugin_datagram_fn)(tw_reactor *r, const tw_options *opts,
                                                              char *err, size_t errlen);

/**
 * Add a module's commands to an AMP dispatcher with tw_amp_register()
 * (twine/amp.h). @p opts are the module's options, borrowed for the call;
 * what it registers must outlive the dispatcher (static command
 * descriptions do).
 * @return 0, or a negative code after writing one sentence into @p err.
 */
typedef int (*tw_plugin_amp_fn)(struct tw_amp_dispatcher *d, const tw_options *opts, char *err,
                                size_t errlen);

/** The context of a TW_PLUGIN_PROTOCOL module: a protocol reactord serves. */
typedef struct tw_plugin_protocol {
    tw_plugin_factory_fn make_factory;   /**< required: serve over streams */
    tw_plugin_datagram_fn make_datagram; /**< optional: serve over UDP too */
} tw_plugin_protocol;

/**
 * The context of a TW_PLUGIN_AMP_COMMANDS module: commands added to an AMP
 * protocol's dispatcher (`reactord -p amp --amp-commands NAME`).
 */
typedef struct tw_plugin_amp_commands {
    tw_plugin_amp_fn register_commands; /**< required */
} tw_plugin_amp_commands;

typedef struct tw_plugin {
    uint32_t magic;     /**< TW_PLUGIN_MAGIC */
    uint16_t abi_major; /**< TW_PLUGIN_ABI_MAJOR when built */
    uint16_t abi_minor; /**< TW_PLUGIN_ABI_MINOR when built */
    uint32_t type;      /**< TW_PLUGIN_PROTOCOL, TW_PLUGIN_AMP_COMMANDS, ... */
    const char *name;
    const char *description; /**< one line */
    const tw_option_spec *options;
    const void *ctx; /**< the type's context; read it with tw_plugin_context() */
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
 *     TW_PLUGIN(echo, .type = TW_PLUGIN_PROTOCOL, .name = "echo",
 *               .description = "RFC 862 echo",
 *               .ctx = &(const tw_plugin_protocol){.make_factory = echo_factory});
 *
 * Built with TW_PLUGIN_BUILTIN defined, the descriptor is instead the
 * object tw_builtin_plugin_ID, for a program that links the module in.
 */
#define TW_PLUGIN(id, ...)                                                                         \
    TW_PLUGIN_DEFINE_(id) = {.magic = TW_PLUGIN_MAGIC,                                           \
                             .abi_major = TW_PLUGIN_ABI_MAJOR,                                   \
                             .abi_minor = TW_PLUGIN_ABI_MINOR,                                   \
                             __VA_ARGS__}

/**
 * Check a descriptor: its magic, its ABI version, a name, a known type with
 * a context that has the type's required constructor.
 * @param origin where it came from, for the message ("built-in" or a path).
 * @return 0, or -EINVAL after writing one sentence (for a version mismatch
 *         it names both versions).
 */
TW_API int tw_plugin_check(const tw_plugin *p, const char *origin, char *err, size_t errlen);

/**
 * @return the module's context when it is of type @p type (cast it to the
 *         type's struct), else NULL.
 */
TW_API const void *tw_plugin_context(const tw_plugin *p, uint32_t type);

/**
 * @return a short name of the module's type ("protocol", "AMP commands"),
 *         static; "unknown" for a type this twine does not know.
 */
TW_API const char *tw_plugin_type_name(const tw_plugin *p);

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

/*
 * Loading modules from files.
 *
 * A module file is opened with dlopen(RTLD_NOW | RTLD_LOCAL): every symbol
 * it needs must resolve at load time, and its own symbols stay private, so
 * two modules never see each other. It must export TW_PLUGIN_SYMBOL_NAME.
 * Every refusal is one sentence that names the file: a file that is not a
 * shared object or needs a symbol nothing provides, a missing descriptor, a
 * wrong magic, an ABI mismatch (the sentence gives both versions), an
 * invalid protocol name.
 *
 * Naming rule: the module for protocol NAME is the file NAME.so, and it must
 * declare NAME (letters, digits, '_', '-' and '.', not starting with '.').
 *
 * Search order: the built-ins a program registered first, then the
 * directories in the order they were added to a registry. reactord adds each --plugin-path, then each
 * entry of TWINE_PLUGIN_PATH, then tw_plugin_installed_dir(). The first
 * match wins; a module whose name is already taken by a built-in or by a
 * module found earlier is refused as a duplicate, naming both.
 *
 * A module is unloaded when its registry is freed (or the module closed),
 * so every factory made from it must be freed before that.
 */

/** One module file opened by tw_plugin_load(). */
typedef struct tw_plugin_module tw_plugin_module;

/**
 * Open a module file and check its descriptor.
 * @param path the file; a name without '/' is taken relative to the current
 *        directory, never looked up in the library path.
 * @param out receives the module, which the caller closes with
 *        tw_plugin_module_close().
 * @return 0; -ENOENT when the file does not exist; -ENOEXEC when it cannot
 *         be loaded (not a shared object, an unresolved symbol) or exports
 *         no descriptor; -EINVAL for a wrong magic, an ABI mismatch or a
 *         malformed descriptor. On error one sentence naming @p path is in
 *         @p err and nothing stays loaded.
 */
TW_API int tw_plugin_load(const char *path, tw_plugin_module **out, char *err, size_t errlen);

/** @return the module's checked descriptor, valid until the module is closed. */
TW_API const tw_plugin *tw_plugin_module_descriptor(const tw_plugin_module *m);

/** @return the path the module was loaded from (owned by the module). */
TW_API const char *tw_plugin_module_path(const tw_plugin_module *m);

/** Unload the module. Every factory it made must be freed first. NULL is ignored. */
TW_API void tw_plugin_module_close(tw_plugin_module *m);

/** @return the directory modules are installed in ($(pkglibdir)/protocols), static. */
TW_API const char *tw_plugin_installed_dir(void);

/** The origin a registry reports for built-in modules. */
#define TW_PLUGIN_ORIGIN_BUILTIN "built-in"

/**
 * The modules one program knows: those its caller linked in and registered
 * (its built-ins) and those loaded from files.
 */
typedef struct tw_plugin_registry tw_plugin_registry;

/**
 * Make an empty registry: no module and no search directory.
 * @return the registry, freed with tw_plugin_registry_free(), or NULL when
 *         memory runs out.
 */
TW_API tw_plugin_registry *tw_plugin_registry_new(void);

/**
 * Register a module linked into the program (reactord registers its
 * built-in protocols so). It is checked as a loaded module is and reported
 * with the origin TW_PLUGIN_ORIGIN_BUILTIN. Register built-ins before
 * loading any file, so that they come first in the search order.
 * @param p borrowed: it must outlive the registry (static storage does).
 * @return 0; -EINVAL for a descriptor tw_plugin_check() refuses or an
 *         invalid name; -EEXIST when its name is registered already; or
 *         -ENOMEM. On error one sentence is in @p err.
 */
TW_API int tw_plugin_registry_add_builtin(tw_plugin_registry *reg, const tw_plugin *p, char *err,
                                          size_t errlen);

/** Unload every module the registry loaded and free it. NULL is ignored. */
TW_API void tw_plugin_registry_free(tw_plugin_registry *reg);

/**
 * Append @p dir (copied) to the search directories. An empty string is
 * ignored; the directory need not exist.
 * @return 0 or -ENOMEM.
 */
TW_API int tw_plugin_registry_add_dir(tw_plugin_registry *reg, const char *dir);

/**
 * Append every entry of a colon-separated list, as TWINE_PLUGIN_PATH holds,
 * in order; empty entries are skipped. NULL is ignored.
 * @return 0 or -ENOMEM.
 */
TW_API int tw_plugin_registry_add_path(tw_plugin_registry *reg, const char *list);

/** @return how many search directories were added. */
TW_API size_t tw_plugin_registry_dir_count(const tw_plugin_registry *reg);

/** @return search directory @p i (owned by the registry), or NULL past the end. */
TW_API const char *tw_plugin_registry_dir(const tw_plugin_registry *reg, size_t i);

/**
 * Load the module file @p path into the registry.
 * @param out if non-NULL, receives its descriptor.
 * @return 0; the codes of tw_plugin_load(); or -EEXIST when its protocol
 *         name is already registered (the sentence names both origins).
 *         On error nothing stays loaded.
 */
TW_API int tw_plugin_registry_load(tw_plugin_registry *reg, const char *path,
                                   const tw_plugin **out, char *err, size_t errlen);

/**
 * Find the module for protocol @p name: a registered one, else the first
 * NAME.so in the search directories, which is loaded and must declare
 * @p name.
 * @return 0 and *out; -ENOENT when no module provides it (the sentence lists
 *         the registered protocols, so call tw_plugin_registry_scan() first
 *         for a complete list); or the refusal of the NAME.so found, whose
 *         sentence names the file. A module refused is never passed over
 *         for one later in the search order.
 */
TW_API int tw_plugin_registry_find(tw_plugin_registry *reg, const char *name,
                                   const tw_plugin **out, char *err, size_t errlen);

/** Called once per module file refused by tw_plugin_registry_scan(). */
typedef void (*tw_plugin_refusal_fn)(const char *path, int code, const char *sentence,
                                     void *arg);

/**
 * Load every *.so in every search directory, in search order and, within a
 * directory, in name order. Files already loaded are skipped.
 * @param on_refusal called for each file refused (NULL: they are logged as
 *        warnings); it must not use the registry.
 * @return how many files were refused.
 */
TW_API size_t tw_plugin_registry_scan(tw_plugin_registry *reg, tw_plugin_refusal_fn on_refusal,
                                      void *arg);

/** Called with the path of one module file (owned by the caller of @p fn). */
typedef void (*tw_plugin_file_fn)(const char *path, void *arg);

/**
 * Call @p fn synchronously with the path of every *.so in every search
 * directory, in the order tw_plugin_registry_scan() loads them, loading
 * none: a program may list them, or load each where it chooses (reactord
 * loads each in a child process, so a module that crashes while loading
 * takes only that child down). @p fn must not change the search path.
 * @return how many files there are.
 */
TW_API size_t tw_plugin_registry_files(const tw_plugin_registry *reg, tw_plugin_file_fn fn,
                                       void *arg);

/**
 * Load one module file as tw_plugin_registry_scan() does: with
 * tw_plugin_registry_load(), then the naming rule (NAME.so declares NAME).
 * @return 0, also when the file is loaded already; the codes of
 *         tw_plugin_registry_load(); or -EINVAL for a module whose file
 *         name is not its protocol's. On error one sentence naming @p path
 *         is in @p err and the file stays unregistered.
 */
TW_API int tw_plugin_registry_scan_file(tw_plugin_registry *reg, const char *path, char *err,
                                        size_t errlen);

/** @return how many modules are registered, built-ins included. */
TW_API size_t tw_plugin_registry_count(const tw_plugin_registry *reg);

/**
 * @return registered module @p i (built-ins first, then in load order), or
 *         NULL past the end.
 * @param origin if non-NULL, receives TW_PLUGIN_ORIGIN_BUILTIN or the file's
 *        path, owned by the registry.
 */
TW_API const tw_plugin *tw_plugin_registry_at(const tw_plugin_registry *reg, size_t i,
                                              const char **origin);

TW_END_DECLS

#endif
