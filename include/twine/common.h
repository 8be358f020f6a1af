/* SPDX-License-Identifier: MIT */
/*
 * Shared conventions of the public API: the export macro, C++ guards,
 * tw_container_of() and the error codes. Every function that can fail
 * returns 0 or a negative code: either a negated errno value (-ECONNRESET,
 * -EADDRINUSE, ...) or one of the TW_E* codes below, which lie far outside
 * the errno range so the two never collide.
 */
#ifndef TWINE_COMMON_H
#define TWINE_COMMON_H

#include <stddef.h>

#ifdef __cplusplus
#define TW_BEGIN_DECLS extern "C" {
#define TW_END_DECLS }
#else
#define TW_BEGIN_DECLS
#define TW_END_DECLS
#endif

/* libtwine is built with -fvisibility=hidden; only TW_API symbols escape. */
#if defined(__GNUC__) || defined(__clang__)
#define TW_API __attribute__((visibility("default")))
#define TW_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define TW_API
#define TW_PRINTF(fmt, args)
#endif

/**
 * The structure of type @p type that embeds the object @p ptr points to as
 * its member @p member: how a protocol, a receiver or a list node finds the
 * structure it was embedded in (the Linux kernel's container_of).
 */
#define tw_container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

TW_BEGIN_DECLS

enum {
    TW_EALREADY_FIRED = -30001, /**< a deferred was fired twice */
    TW_ECANCELLED = -30002,     /**< an operation was cancelled */
    TW_ETIMEDOUT = -30003,      /**< a deferred timed out */
    TW_EDONE = -30004,          /**< the connection was closed cleanly */
    TW_ECONNLOST = -30005,      /**< the connection was lost uncleanly */
    TW_EABORTED = -30006,       /**< the connection was aborted locally */
    TW_ESTATE = -30007,         /**< the object is not in a state that allows this */
    TW_EPROTO = -30008,         /**< the peer violated the protocol */
    TW_ETOOBIG = -30009,        /**< a message exceeds its limit */
    TW_EREMOTE = -30010,        /**< the remote side reported an error */
    TW_EFAIL = -30011,          /**< an application-defined failure */
    TW_ESHUTDOWN = -30012,      /**< the reactor is shutting down */
    TW_EIDLE = -30013,          /**< the connection was idle too long */
    TW_ENOTFOUND = -30014,      /**< a host name does not exist, or has no address of the family */
    TW_EOVERFLOW = -30015,      /**< a bounded queue is full */
    TW_EUNDERFLOW = -30016,     /**< too many getters already wait on a queue */
    TW_ETLS = -30017            /**< a TLS handshake or record failed (twine/tls.h) */
};

/**
 * Describe an error code.
 * @param code a TW_E* code or a negated errno value.
 * @return a static, human-readable string; never NULL.
 */
TW_API const char *tw_strerror(int code);

TW_END_DECLS

#endif
