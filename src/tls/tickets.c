/* SPDX-License-Identifier: MIT */
/*
 * Session ticket keys that turn over, for a server context (tls_internal.h).
 *
 * OpenSSL makes one ticket key with each SSL_CTX and keeps it as long as
 * the context lives: a key taken from a server that ran for a month opens
 * every ticket of that month, and so the sessions they resumed. Here the
 * key changes every period (an hour by default): a ticket is sealed with
 * this period's key and still accepted under the last period's, then
 * renewed; an older one gets a full handshake.
 *
 * The keys come from a hash ratchet. A 32-byte secret is drawn when the
 * context is made; at each new period the next secret is
 * HMAC-SHA256(secret, "next") and the one before the last is forgotten,
 * so what a process holds opens the tickets of two periods, never older
 * ones. Periods are counted on the wall clock from the Unix epoch, so
 * processes forked after the context was made (reactord's workers) step at
 * the same moments and keep accepting each other's tickets without
 * talking to each other. A clock set back leaves the keys as they are.
 *
 * OpenSSL calls the ticket callback of the context a connection started
 * with, even after an SNI callback switched it to another: the connection
 * carries that first context's keys (tw__tls_tickets_attach), and an SSL
 * made elsewhere uses those of the context it has.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "tls/tls_internal.h"

#define SECRET_LEN 32

/* The key of one period, as OpenSSL's ticket format wants it. */
typedef struct ticket_key {
    unsigned char name[16]; /* sent in the clear at the front of each ticket */
    unsigned char aes[32];  /* AES-256-CBC */
    unsigned char hmac[32]; /* HMAC-SHA256 */
} ticket_key;

struct tw__tls_tickets {
    double period;      /* seconds */
    long long epoch;    /* the period of cur */
    int have_old;       /* old is the period before cur's */
    unsigned char secret[SECRET_LEN];
    ticket_key cur, old;
};

static int ctx_index = -1, ssl_index = -1;
static pthread_once_t index_once = PTHREAD_ONCE_INIT;

static void make_indexes(void)
{
    ctx_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    ssl_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* HMAC-SHA256(@p key, @p label) into @p out (32 bytes). @return 0 or -1. */
static int mac(const unsigned char *key, const char *label, unsigned char out[32])
{
    size_t len = 0;
    if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, SECRET_LEN,
                  (const unsigned char *)label, strlen(label), out, 32, &len) == NULL ||
        len != 32)
        return -1;
    return 0;
}

static int derive(const unsigned char *secret, ticket_key *k)
{
    unsigned char name[32];
    if (mac(secret, "twine ticket key name", name) < 0 ||
        mac(secret, "twine ticket key aes", k->aes) < 0 ||
        mac(secret, "twine ticket key hmac", k->hmac) < 0)
        return -1;
    memcpy(k->name, name, sizeof k->name);
    OPENSSL_cleanse(name, sizeof name);
    return 0;
}

static long long epoch_at(const tw__tls_tickets *t, double now)
{
    return (long long)floor(now / t->period);
}

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Step the ratchet to the period of now. @return 0 or -1 (keys unchanged). */
static int advance(tw__tls_tickets *t)
{
    long long e = epoch_at(t, wall_now());
    if (e <= t->epoch)
        return 0;
    unsigned char s[SECRET_LEN], prev[SECRET_LEN];
    memcpy(s, t->secret, sizeof s);
    for (long long k = t->epoch; k < e; k++) {
        memcpy(prev, s, sizeof prev);
        if (mac(prev, "twine ticket key next", s) < 0) {
            OPENSSL_cleanse(s, sizeof s);
            OPENSSL_cleanse(prev, sizeof prev);
            return -1;
        }
    }
    ticket_key cur, old;
    int rc = derive(s, &cur);
    if (rc == 0 && e - t->epoch == 1)
        old = t->cur;
    else if (rc == 0)
        rc = derive(prev, &old);
    if (rc == 0) {
        memcpy(t->secret, s, sizeof s);
        t->cur = cur;
        t->old = old;
        t->have_old = 1;
        t->epoch = e;
    }
    OPENSSL_cleanse(s, sizeof s);
    OPENSSL_cleanse(prev, sizeof prev);
    OPENSSL_cleanse(&cur, sizeof cur);
    OPENSSL_cleanse(&old, sizeof old);
    return rc;
}

static tw__tls_tickets *tickets_of(SSL *s)
{
    tw__tls_tickets *t = SSL_get_ex_data(s, ssl_index);
    if (t == NULL)
        t = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(s), ctx_index);
    return t;
}

/* Set up @p cctx and @p hctx with @p k (iv given). @return 0 or -1. */
static int use_key(const ticket_key *k, const unsigned char *iv, EVP_CIPHER_CTX *cctx,
                   EVP_MAC_CTX *hctx, int enc)
{
    OSSL_PARAM params[3];
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac,
                                                  sizeof k->hmac);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();
    if (EVP_MAC_CTX_set_params(hctx, params) != 1)
        return -1;
    if (enc)
        return EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes, iv) == 1 ? 0 : -1;
    return EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes, iv) == 1 ? 0 : -1;
}

/* OpenSSL's ticket callback. Sealing: 1 (sealed), or 0 (no ticket this
 * time). Opening: 1, 2 (good, but under the last period's key: renew it)
 * or 0 (a key we no longer have: a full handshake). A failure here costs
 * the client its resumption, never the connection. */
static int ticket_cb(SSL *s, unsigned char key_name[16], unsigned char *iv,
                     EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
    tw__tls_tickets *t = tickets_of(s);
    if (t == NULL || advance(t) < 0)
        return 0;
    if (enc) {
        int ivlen = EVP_CIPHER_get_iv_length(EVP_aes_256_cbc());
        if (ivlen <= 0 || RAND_bytes(iv, ivlen) != 1)
            return 0;
        memcpy(key_name, t->cur.name, sizeof t->cur.name);
        return use_key(&t->cur, iv, cctx, hctx, 1) == 0;
    }
    if (memcmp(key_name, t->cur.name, sizeof t->cur.name) == 0)
        return use_key(&t->cur, iv, cctx, hctx, 0) == 0;
    if (t->have_old && memcmp(key_name, t->old.name, sizeof t->old.name) == 0)
        return use_key(&t->old, iv, cctx, hctx, 0) == 0 ? 2 : 0;
    return 0;
}

int tw__tls_tickets_init(tw_tls_context *ctx)
{
    if (pthread_once(&index_once, make_indexes) != 0 || ctx_index < 0 || ssl_index < 0)
        return -ENOMEM;
    tw__tls_tickets *t = calloc(1, sizeof *t);
    if (t == NULL)
        return -ENOMEM;
    t->period = TW_TLS_TICKET_KEY_PERIOD;
    t->epoch = epoch_at(t, wall_now());
    if (RAND_priv_bytes(t->secret, sizeof t->secret) != 1 || derive(t->secret, &t->cur) < 0 ||
        SSL_CTX_set_ex_data(ctx->ssl_ctx, ctx_index, t) != 1) {
        tw__tls_tickets_free(t);
        return -ENOMEM;
    }
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx->ssl_ctx, ticket_cb);
    ctx->tickets = t;
    return 0;
}

void tw__tls_tickets_free(tw__tls_tickets *t)
{
    if (t == NULL)
        return;
    OPENSSL_cleanse(t, sizeof *t);
    free(t);
}

int tw__tls_tickets_attach(tw_tls_context *ctx, SSL *ssl)
{
    if (ctx->tickets == NULL)
        return 0;
    return SSL_set_ex_data(ssl, ssl_index, ctx->tickets) == 1 ? 0 : -ENOMEM;
}

TW_API int tw_tls_context_set_ticket_key_period(tw_tls_context *ctx, double seconds)
{
    tw__tls_tickets *t = ctx->tickets;
    if (t == NULL || !(seconds >= 1) || !isfinite(seconds))
        return -EINVAL;
    /* The ratchet restarts from a fresh secret, on the new clock: tickets
     * made under the old period are no longer opened. */
    unsigned char secret[SECRET_LEN];
    ticket_key cur;
    if (RAND_priv_bytes(secret, sizeof secret) != 1 || derive(secret, &cur) < 0)
        return -ENOMEM;
    t->period = seconds;
    t->epoch = epoch_at(t, wall_now());
    memcpy(t->secret, secret, sizeof secret);
    t->cur = cur;
    t->have_old = 0;
    OPENSSL_cleanse(secret, sizeof secret);
    OPENSSL_cleanse(&cur, sizeof cur);
    return 0;
}
