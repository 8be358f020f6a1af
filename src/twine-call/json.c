/* SPDX-License-Identifier: MIT */
/*
 * The JSON form of AMP boxes, with Debian's jansson for the JSON itself and
 * OpenSSL's base64 for values that are not text.
 *
 * AMP is untyped on the wire, so answers are printed as JSON strings (the
 * bytes received) and never guessed into numbers. JSON's own types are
 * accepted on input and written the way Twisted's AMP types write them: 13,
 * 0.5, True. Bytes that are not UTF-8 cannot be a JSON string; they travel
 * as {"base64": "..."} both ways, so an answer can be sent back as it was
 * printed.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <openssl/evp.h>

#include "twine-call.h"

static char *base64_encode(const void *data, size_t len)
{
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    if (out != NULL)
        EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    return out;
}

/* @return the decoded bytes (malloc'd) and their length, or NULL. */
static unsigned char *base64_decode(const char *text, size_t textlen, size_t *len)
{
    if (textlen % 4 != 0)
        return NULL;
    unsigned char *out = malloc(textlen / 4 * 3 + 1);
    if (out == NULL)
        return NULL;
    int n = EVP_DecodeBlock(out, (const unsigned char *)text, (int)textlen);
    if (n < 0) {
        free(out);
        return NULL;
    }
    /* EVP_DecodeBlock counts the padding as zero bytes. */
    size_t pad = textlen >= 1 && text[textlen - 1] == '=' ? 1 : 0;
    pad += textlen >= 2 && text[textlen - 2] == '=' ? 1 : 0;
    *len = (size_t)n - pad;
    return out;
}

json_t *tc_json_bytes(const char *s, size_t len)
{
    if (tc_utf8_valid(s, len))
        return json_stringn(s, len);
    char *b64 = base64_encode(s, len);
    json_t *v = b64 != NULL ? json_pack("{s:s}", "base64", b64) : NULL;
    free(b64);
    return v;
}

/* A key that is not UTF-8 in the text form's notation (text.c), as a string. */
static char *key_text(const char *k, size_t kl)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (f == NULL)
        return NULL;
    tc_text_put(f, k, kl, 1);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

json_t *tc_json_from_box(const tw_amp_box *box)
{
    json_t *obj = json_object();
    for (size_t i = 0; obj != NULL && i < tw_amp_box_count(box); i++) {
        const char *k, *v;
        size_t kl, vl;
        tw_amp_box_entry(box, i, &k, &kl, &v, &vl);
        json_t *value = tc_json_bytes(v, vl);
        char *key = tc_utf8_valid(k, kl) ? NULL : key_text(k, kl);
        int rc = -1;
        if (value != NULL && tc_utf8_valid(k, kl))
            rc = json_object_setn_new(obj, k, kl, value);
        else if (value != NULL && key != NULL)
            rc = json_object_set_new(obj, key, value);
        else
            json_decref(value);
        free(key);
        if (rc < 0) {
            json_decref(obj);
            obj = NULL;
        }
    }
    return obj;
}

/* The bytes a JSON value stands for, malloc'd in @p out; @return 0 or EX_*. */
static int value_bytes(const char *key, const json_t *v, char **out, size_t *len, char *err,
                       size_t errlen)
{
    char num[64];
    const char *text = num;
    size_t n;
    switch (json_typeof(v)) {
    case JSON_STRING:
        text = json_string_value(v);
        n = json_string_length(v);
        break;
    case JSON_INTEGER:
        n = (size_t)snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        n = tw_amp_float_repr(json_real_value(v), num, sizeof num);
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        n = (size_t)snprintf(num, sizeof num, "%s", json_is_true(v) ? "True" : "False");
        break;
    case JSON_OBJECT: {
        const json_t *b64 = json_object_get(v, "base64");
        if (json_object_size(v) == 1 && json_is_string(b64)) {
            *out = (char *)base64_decode(json_string_value(b64), json_string_length(b64), len);
            if (*out != NULL)
                return 0;
            snprintf(err, errlen, "key '%s': its base64 value is not valid base64", key);
            return EX_DATAERR;
        }
    }
        /* fall through */
    default:
        snprintf(err, errlen,
                 "key '%s': AMP values are strings, numbers, true, false or "
                 "{\"base64\": \"...\"}, not this JSON %s",
                 key, json_is_object(v) ? "object" : json_is_array(v) ? "array" : "null");
        return EX_DATAERR;
    }
    *out = malloc(n + 1);
    if (*out == NULL)
        return EX_OSERR;
    memcpy(*out, text, n);
    *len = n;
    return 0;
}

int tc_json_to_box(const json_t *obj, tw_amp_box *box, char *err, size_t errlen)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        char *bytes;
        size_t len;
        int code = value_bytes(key, v, &bytes, &len, err, errlen);
        if (code != 0)
            return code;
        char what[64];
        snprintf(what, sizeof what, "key '%.40s'", key);
        code = tc_box_set(box, key, strlen(key), bytes, len, what, EX_DATAERR, err, errlen);
        free(bytes);
        if (code != 0)
            return code;
    }
    return 0;
}
