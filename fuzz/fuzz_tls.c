/* SPDX-License-Identifier: MIT */
/*
 * Fuzzing the server side of the TLS transport (src/tls/connection.c) in
 * memory: a TLS factory around an echo protocol, on the test kit's string
 * transport, fed the input as a client's bytes in chunks a connection's
 * reads could deliver, then an EOF, then the close.
 *
 * The certificate is made in memory once, with OpenSSL (a P-256 key and a
 * self-signed certificate), so the harness needs no file.
 *
 * Invariants: no crash, nothing leaks (LeakSanitizer); the protocol inside
 * hears connection_made at most once, never data before it, and
 * connection_lost exactly once if and only if it was made; the TLS layer's
 * held input stays bounded (one read's worth and a record), whatever comes.
 *
 * Input: [seed x4] then the client's bytes.
 */
#include "config.h"

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <twine.h>
#include <twine/testing.h>
#include <twine/tls.h>

#include "fuzz.h"

typedef struct {
    tw_protocol base;
} echo;

static int made, lost, data_before_made, destroyed;

static void echo_made(tw_protocol *p)
{
    (void)p;
    made++;
}

static void echo_data(tw_protocol *p, const void *data, size_t len)
{
    if (!made)
        data_before_made = 1;
    tw_transport_write(p->transport, data, len);
}

static void echo_lost(tw_protocol *p, const tw_failure *reason)
{
    (void)p;
    (void)reason;
    lost++;
}

static void echo_destroy(tw_protocol *p)
{
    (void)p;
    destroyed++;
}

static const tw_protocol_ops echo_ops = {
    .connection_made = echo_made,
    .data_received = echo_data,
    .connection_lost = echo_lost,
};

static tw_tls_context *server_context(void)
{
    static tw_tls_context *ctx;
    if (ctx != NULL)
        return ctx;
    ctx = tw_tls_context_new(TW_TLS_SERVER, NULL, 0);
    FZ_CHECK(ctx != NULL, "no TLS context");
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    FZ_CHECK(key != NULL && x != NULL, "no key");
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1,
                               -1, 0);
    X509_set_issuer_name(x, name);
    FZ_CHECK(X509_sign(x, key, EVP_sha256()) > 0, "cannot sign");
    SSL_CTX *s = tw_tls_context_openssl(ctx);
    FZ_CHECK(SSL_CTX_use_certificate(s, x) == 1 && SSL_CTX_use_PrivateKey(s, key) == 1,
             "cannot use the certificate");
    X509_free(x);
    EVP_PKEY_free(key);
    return ctx; /* kept for the whole run, as a server keeps its context */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_quiet_logs();
    fz_in in = {data, size};
    fz_rng rng;
    fz_rng_seed(&rng, &in);
    made = lost = data_before_made = destroyed = 0;

    tw_protocol_ops ops = echo_ops;
    ops.destroy = echo_destroy;
    tw_factory *inner = tw_factory_for_protocol(&ops, sizeof(echo));
    FZ_CHECK(inner != NULL, "out of memory");
    tw_factory *tls;
    FZ_CHECK(tw_tls_factory_new(server_context(), NULL, inner, &tls) == 0, "no TLS factory");
    tw_string_transport *t = tw_string_transport_open(NULL, tls);
    FZ_CHECK(t != NULL, "no transport");

    while (in.n > 0) {
        size_t got;
        const uint8_t *chunk = fz_bytes(&in, fz_chunk(&rng, in.n), &got);
        tw_string_transport_feed(t, chunk, got);
        FZ_CHECK(made <= 1, "connection_made %d times", made);
        FZ_CHECK(!data_before_made, "data before connection_made");
        tw_protocol *p = t->base.protocol;
        size_t held = p->ops->buffered_input(p);
        FZ_CHECK(held <= got + 2 * 16384 + 256, "%zu bytes held after a chunk of %zu", held, got);
        /* Answers leave at once; the test keeps no more than a window. */
        tw_string_transport_clear_output(t);
    }
    tw_string_transport_feed_eof(t);
    tw_string_transport_run_close(t);
    tw_string_transport_lose(t, TW_EDONE);
    FZ_CHECK(lost == (made ? 1 : 0), "made %d, lost %d", made, lost);
    tw_string_transport_free(t);
    FZ_CHECK(destroyed == 1, "destroyed %d times", destroyed);
    tw_factory_free(tls);
    tw_factory_free(inner);
    return 0;
}
