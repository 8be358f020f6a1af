/* SPDX-License-Identifier: MIT */
/*
 * What the fuzz harnesses share: the libFuzzer entry point, a reader that
 * takes a harness's settings from the front of its input, a small PRNG for
 * chunk splits, and the check that turns a broken invariant into a crash
 * libFuzzer records.
 *
 * A harness reads its settings first (a byte when one is left, a default
 * otherwise) so that any input is valid and mutating the settings bytes
 * explores other configurations of the same stream.
 */
#ifndef TWINE_FUZZ_H
#define TWINE_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <twine/log.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Crash with a message: libFuzzer saves the input, replay_main fails. */
#define FZ_CHECK(cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant broken: %s: ", __FILE__, __LINE__, #cond);           \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#ifdef FUZZ_UBSAN_DEFAULTS
/*
 * fuzz/build.sh builds UBSan recoverable so that the known, still open
 * findings listed in fuzz/known-ub.supp can be skipped; every other report
 * stops the run as a crash.
 */
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void)
{
    return FUZZ_UBSAN_DEFAULTS;
}
#endif

typedef struct fz_in {
    const uint8_t *p;
    size_t n;
} fz_in;

/* The next byte, or @p dflt once the input ran out. */
static inline uint8_t fz_byte(fz_in *in, uint8_t dflt)
{
    if (in->n == 0)
        return dflt;
    in->n--;
    return *in->p++;
}

/* Up to @p want bytes; *got says how many there were. */
static inline const uint8_t *fz_bytes(fz_in *in, size_t want, size_t *got)
{
    const uint8_t *p = in->p;
    *got = want < in->n ? want : in->n;
    in->p += *got;
    in->n -= *got;
    return p;
}

/* xorshift32: deterministic chunk sizes from a seed taken from the input. */
typedef struct fz_rng {
    uint32_t s;
} fz_rng;

static inline void fz_rng_seed(fz_rng *r, fz_in *in)
{
    uint32_t s = 0;
    for (int i = 0; i < 4; i++)
        s = (s << 8) | fz_byte(in, 0);
    r->s = s != 0 ? s : 0x9e3779b9u;
}

static inline uint32_t fz_rng_next(fz_rng *r)
{
    uint32_t x = r->s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return r->s = x;
}

/*
 * The length of the next chunk of a stream with @p left bytes to go: mostly
 * short (1-8 bytes, to cut through every header), sometimes one byte,
 * sometimes long, sometimes everything. Never 0 while bytes are left.
 */
static inline size_t fz_chunk(fz_rng *r, size_t left)
{
    if (left == 0)
        return 0;
    uint32_t x = fz_rng_next(r);
    size_t n;
    switch (x & 3) {
    case 0:
        n = 1;
        break;
    case 1:
        n = 1 + ((x >> 2) & 7);
        break;
    case 2:
        n = 1 + ((x >> 2) & 255);
        break;
    default:
        n = left;
        break;
    }
    return n < left ? n : left;
}

static void fz_log_discard(tw_log_level level, const char *subsystem, const char *message,
                           void *arg)
{
    (void)level;
    (void)subsystem;
    (void)message;
    (void)arg;
}

/* Records are still formatted (that code runs too), then dropped. */
static inline void fz_quiet_logs(void)
{
    tw_log_set_level(TW_LOG_DEBUG);
    tw_log_set_handler(fz_log_discard, NULL);
}

#endif
