/* SPDX-License-Identifier: MIT */
/*
 * The TLS context (twine/tls.h): one OpenSSL SSL_CTX with twine's safe
 * defaults, and what twine adds around it (the client's default name, the
 * ALPN list, the SNI callback, the handshake timeout).
 *
 * Everything a context reads from files is read whole and checked before
 * the SSL_CTX changes, so a failed reload leaves the old certificate in
 * place, and an operator hears one sentence that names the file: OpenSSL's
 * error queue is turned into text here and emptied, never left for the
 * next caller to trip on.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "tls/tls_internal.h"

static void say(char *err, size_t errlen, const char *fmt, ...) TW_PRINTF(3, 4);

static void say(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

void tw__tls_reason(SSL *ssl, char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;
    long verify = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
    if (verify != X509_V_OK)
        snprintf(buf, len, "%s: %s", reason != NULL ? reason : "certificate verify failed",
                 X509_verify_cert_error_string(verify));
    else if (reason != NULL)
        snprintf(buf, len, "%s", reason);
    else
        snprintf(buf, len, "%s", "the connection failed");
    ERR_clear_error();
}

static int server_name_cb(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    tw_tls_context *ctx = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (name == NULL || ctx->sni == NULL)
        return SSL_TLSEXT_ERR_OK;
    tw_tls_context *chosen = ctx->sni(name, ctx->sni_arg);
    if (chosen != NULL && chosen != ctx && chosen->side == TW_TLS_SERVER)
        SSL_set_SSL_CTX(ssl, chosen->ssl_ctx);
    return SSL_TLSEXT_ERR_OK;
}

static int alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                          const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    tw_tls_context *ctx = arg;
    unsigned char *sel;
    if (ctx->alpn == NULL ||
        SSL_select_next_proto(&sel, outlen, ctx->alpn, (unsigned)ctx->alpn_len, in, inlen) !=
            OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK; /* go on without ALPN */
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

TW_API tw_tls_context *tw_tls_context_new(tw_tls_side side, char *err, size_t errlen)
{
    tw_tls_context *ctx = calloc(1, sizeof *ctx);
    if (ctx == NULL) {
        say(err, errlen, "cannot make a TLS context: out of memory");
        return NULL;
    }
    ctx->ssl_ctx = SSL_CTX_new(side == TW_TLS_SERVER ? TLS_server_method() : TLS_client_method());
    if (ctx->ssl_ctx == NULL) {
        char why[160];
        tw__tls_reason(NULL, why, sizeof why);
        say(err, errlen, "cannot make a TLS context: %s", why);
        free(ctx);
        return NULL;
    }
    ctx->refs = 1;
    ctx->side = side;
    ctx->verify = side == TW_TLS_CLIENT;
    ctx->handshake_timeout = TW_TLS_HANDSHAKE_TIMEOUT;
    SSL_CTX *s = ctx->ssl_ctx;
    SSL_CTX_set_min_proto_version(s, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(s, TLS1_3_VERSION);
    SSL_CTX_set_options(s, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* Idle connections give their read and write buffers back. */
    SSL_CTX_set_mode(s, SSL_MODE_RELEASE_BUFFERS);
    if (side == TW_TLS_CLIENT) {
        SSL_CTX_set_default_verify_paths(s);
        SSL_CTX_set_verify(s, SSL_VERIFY_PEER, NULL);
    } else {
        /* Sessions resume through tickets (on by default, their keys made
         * per context) or the cache, which needs an id context. */
        static const unsigned char sid[] = "twine";
        SSL_CTX_set_session_id_context(s, sid, sizeof sid - 1);
        SSL_CTX_set_tlsext_servername_callback(s, server_name_cb);
        SSL_CTX_set_tlsext_servername_arg(s, ctx);
        SSL_CTX_set_alpn_select_cb(s, alpn_select_cb, ctx);
        if (tw__tls_tickets_init(ctx) < 0) {
            say(err, errlen, "cannot make a TLS context: out of memory");
            SSL_CTX_free(s);
            free(ctx);
            return NULL;
        }
    }
    return ctx;
}

TW_API tw_tls_context *tw_tls_context_ref(tw_tls_context *ctx)
{
    ctx->refs++;
    return ctx;
}

TW_API void tw_tls_context_unref(tw_tls_context *ctx)
{
    if (ctx == NULL || --ctx->refs > 0)
        return;
    SSL_CTX_free(ctx->ssl_ctx);
    tw__tls_tickets_free(ctx->tickets);
    free(ctx->hostname);
    free(ctx->alpn);
    free(ctx);
}

TW_API tw_tls_side tw_tls_context_side(const tw_tls_context *ctx)
{
    return ctx->side;
}

TW_API void *tw_tls_context_openssl(tw_tls_context *ctx)
{
    return ctx->ssl_ctx;
}

/* Open @p path for reading, or say why not. */
static FILE *open_file(const char *what, const char *path, int *rc, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        *rc = -errno;
        say(err, errlen, "cannot read the %s %s: %s", what, path, strerror(errno));
    }
    return f;
}

/* "2026-01-31" for @p t. */
static void format_date(const ASN1_TIME *t, char *buf, size_t len)
{
    struct tm tm;
    if (ASN1_TIME_to_tm(t, &tm) != 1 || strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        snprintf(buf, len, "%s", "an unreadable date");
}

/* Read every certificate of @p path: the first into *@p leaf (unless it is
 * NULL), the others pushed on @p chain. @return 0 or a negated errno. */
static int read_certs(const char *what, const char *path, X509 **leaf, STACK_OF(X509) * chain,
                      char *err, size_t errlen)
{
    int rc = 0;
    FILE *f = open_file(what, path, &rc, err, errlen);
    if (f == NULL)
        return rc;
    int count = 0;
    X509 *x;
    while ((x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
        if (count++ == 0 && leaf != NULL)
            *leaf = x;
        else if (!sk_X509_push(chain, x)) {
            X509_free(x);
            rc = -ENOMEM;
            break;
        }
    }
    fclose(f);
    ERR_clear_error(); /* the end of the file reads as an error */
    if (rc == 0 && count == 0) {
        say(err, errlen, "the %s %s holds no PEM certificate", what, path);
        rc = -EINVAL;
    }
    return rc;
}

TW_API int tw_tls_context_use_certificate(tw_tls_context *ctx, const char *cert_file,
                                          const char *key_file, const char *chain_file,
                                          char *err, size_t errlen)
{
    if (ctx == NULL || cert_file == NULL) {
        say(err, errlen, "no certificate file given");
        return -EINVAL;
    }
    if (key_file == NULL)
        key_file = cert_file;
    X509 *leaf = NULL;
    EVP_PKEY *key = NULL;
    STACK_OF(X509) *chain = sk_X509_new_null();
    int rc = chain == NULL ? -ENOMEM : 0;
    if (rc == 0)
        rc = read_certs("certificate", cert_file, &leaf, chain, err, errlen);
    if (rc == 0 && chain_file != NULL) {
        /* An explicit chain replaces whatever followed the certificate. */
        while (sk_X509_num(chain) > 0)
            X509_free(sk_X509_pop(chain));
        rc = read_certs("certificate chain", chain_file, NULL, chain, err, errlen);
    }
    if (rc == 0) {
        FILE *f = open_file("private key", key_file, &rc, err, errlen);
        if (f != NULL) {
            key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
            fclose(f);
            ERR_clear_error();
            if (key == NULL) {
                say(err, errlen, "the private key %s holds no unencrypted PEM private key",
                    key_file);
                rc = -EINVAL;
            }
        }
    }
    if (rc == 0 && X509_check_private_key(leaf, key) != 1) {
        ERR_clear_error();
        say(err, errlen, "the private key %s does not match the certificate %s", key_file,
            cert_file);
        rc = -EINVAL;
    }
    if (rc == 0 && X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0) {
        char when[64];
        format_date(X509_get0_notAfter(leaf), when, sizeof when);
        say(err, errlen, "the certificate %s expired on %s", cert_file, when);
        rc = -EINVAL;
    }
    if (rc == 0 && X509_cmp_current_time(X509_get0_notBefore(leaf)) > 0) {
        char when[64];
        format_date(X509_get0_notBefore(leaf), when, sizeof when);
        say(err, errlen, "the certificate %s is not valid before %s", cert_file, when);
        rc = -EINVAL;
    }
    if (rc == 0 && SSL_CTX_use_cert_and_key(ctx->ssl_ctx, leaf, key, chain, 1) != 1) {
        char why[160];
        tw__tls_reason(NULL, why, sizeof why);
        say(err, errlen, "cannot use the certificate %s: %s", cert_file, why);
        rc = -EINVAL;
    }
    if (rc == -ENOMEM)
        say(err, errlen, "cannot load the certificate %s: out of memory", cert_file);
    X509_free(leaf);
    EVP_PKEY_free(key);
    sk_X509_pop_free(chain, X509_free);
    return rc;
}

/* Add every PEM certificate of the file @p path to @p store.
 * @return how many, or a negated errno when the file cannot be read. */
static int add_file(X509_STORE *store, STACK_OF(X509_NAME) * names, const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -errno;
    int count = 0;
    X509 *x;
    while ((x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
        if (X509_STORE_add_cert(store, x) == 1) {
            count++;
            X509_NAME *n = X509_NAME_dup(X509_get_subject_name(x));
            if (names != NULL && n != NULL && !sk_X509_NAME_push(names, n))
                X509_NAME_free(n);
        }
        X509_free(x);
    }
    fclose(f);
    ERR_clear_error(); /* the end of the file, or a file that is no PEM */
    return count;
}

/* Twisted's trustRoots: a file of PEM certificates, or a directory whose
 * files are (others, keys among them, are skipped). */
static int add_path(X509_STORE *store, STACK_OF(X509_NAME) * names, const char *path, int dir)
{
    if (!dir)
        return add_file(store, names, path);
    DIR *d = opendir(path);
    if (d == NULL)
        return -errno;
    int count = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char file[PATH_MAX];
        struct stat st;
        if (de->d_name[0] == '.' ||
            snprintf(file, sizeof file, "%s/%s", path, de->d_name) >= (int)sizeof file ||
            stat(file, &st) < 0 || !S_ISREG(st.st_mode))
            continue;
        int n = add_file(store, names, file);
        if (n > 0)
            count += n;
    }
    closedir(d);
    return count;
}

TW_API int tw_tls_context_set_trust_roots(tw_tls_context *ctx, const char *path, char *err,
                                          size_t errlen)
{
    struct stat st;
    if (path == NULL || *path == '\0') {
        say(err, errlen, "no trust roots given");
        return -EINVAL;
    }
    if (stat(path, &st) < 0) {
        int rc = -errno;
        say(err, errlen, "cannot read the trust roots %s: %s", path, strerror(errno));
        return rc;
    }
    /* A fresh store: these roots replace the system's, not join them. */
    X509_STORE *store = X509_STORE_new();
    STACK_OF(X509_NAME) *names = sk_X509_NAME_new_null();
    if (store == NULL || names == NULL) {
        X509_STORE_free(store);
        sk_X509_NAME_free(names);
        say(err, errlen, "cannot load the trust roots %s: out of memory", path);
        return -ENOMEM;
    }
    int n = add_path(store, names, path, S_ISDIR(st.st_mode));
    if (n <= 0) {
        X509_STORE_free(store);
        sk_X509_NAME_pop_free(names, X509_NAME_free);
        if (n < 0)
            say(err, errlen, "cannot read the trust roots %s: %s", path, strerror(-n));
        else
            say(err, errlen, "the trust roots %s hold no PEM certificate", path);
        return n < 0 ? n : -EINVAL;
    }
    SSL_CTX_set_cert_store(ctx->ssl_ctx, store);
    /* Servers tell clients which authorities their certificate must come from. */
    if (ctx->side == TW_TLS_SERVER)
        SSL_CTX_set_client_CA_list(ctx->ssl_ctx, names);
    else
        sk_X509_NAME_pop_free(names, X509_NAME_free);
    return 0;
}

TW_API int tw_tls_context_require_client_certificate(tw_tls_context *ctx, int require)
{
    if (ctx->side != TW_TLS_SERVER)
        return -EINVAL;
    SSL_CTX_set_verify(ctx->ssl_ctx,
                       require ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                               : SSL_VERIFY_NONE,
                       NULL);
    return 0;
}

TW_API int tw_tls_context_set_insecure_no_verify(tw_tls_context *ctx, int insecure)
{
    if (ctx->side != TW_TLS_CLIENT)
        return -EINVAL;
    ctx->verify = !insecure;
    SSL_CTX_set_verify(ctx->ssl_ctx, insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    return 0;
}

TW_API int tw_tls_context_set_hostname(tw_tls_context *ctx, const char *hostname)
{
    if (ctx->side != TW_TLS_CLIENT || hostname == NULL || *hostname == '\0')
        return -EINVAL;
    char *copy = strdup(hostname);
    if (copy == NULL)
        return -ENOMEM;
    free(ctx->hostname);
    ctx->hostname = copy;
    return 0;
}

TW_API int tw_tls_context_set_alpn(tw_tls_context *ctx, const char *const *protocols,
                                   size_t count)
{
    size_t len = 0;
    for (size_t i = 0; i < count; i++) {
        size_t n = protocols[i] != NULL ? strlen(protocols[i]) : 0;
        if (n == 0 || n > 255)
            return -EINVAL;
        len += 1 + n;
    }
    unsigned char *wire = NULL;
    if (count > 0) {
        if ((wire = malloc(len)) == NULL)
            return -ENOMEM;
        unsigned char *at = wire;
        for (size_t i = 0; i < count; i++) {
            size_t n = strlen(protocols[i]);
            *at++ = (unsigned char)n;
            memcpy(at, protocols[i], n);
            at += n;
        }
    }
    /* Clients offer the list in the ClientHello; servers choose from it in
     * alpn_select_cb. SSL_CTX_set_alpn_protos returns 0 on success. */
    if (ctx->side == TW_TLS_CLIENT &&
        SSL_CTX_set_alpn_protos(ctx->ssl_ctx, wire, (unsigned)(wire != NULL ? len : 0)) != 0) {
        free(wire);
        return -ENOMEM;
    }
    free(ctx->alpn);
    ctx->alpn = wire;
    ctx->alpn_len = wire != NULL ? len : 0;
    return 0;
}

TW_API int tw_tls_context_set_sni_callback(tw_tls_context *ctx, tw_tls_sni_fn fn, void *arg)
{
    if (ctx->side != TW_TLS_SERVER)
        return -EINVAL;
    ctx->sni = fn;
    ctx->sni_arg = arg;
    return 0;
}

TW_API int tw_tls_context_set_handshake_timeout(tw_tls_context *ctx, double seconds)
{
    if (!isfinite(seconds) || seconds < 0)
        return -EINVAL;
    ctx->handshake_timeout = seconds;
    return 0;
}
