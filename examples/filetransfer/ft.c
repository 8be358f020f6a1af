/* SPDX-License-Identifier: MIT */
/*
 * The parts of the file-transfer protocol (ft.h) that the module and the
 * client share, bodies aside (body.c): header frames, and SHA-256 through
 * OpenSSL's EVP interface.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ft.h"

int ft_parse(const void *frame, size_t len, ft_header *h)
{
    if (len >= sizeof h->line || memchr(frame, '\0', len) != NULL)
        return -1;
    memcpy(h->line, frame, len);
    h->line[len] = '\0';
    char *rest = strchr(h->line, ' ');
    if (rest == NULL || rest[1] == '\0')
        return -1;
    *rest++ = '\0';
    h->verb = h->line;
    h->sha = NULL;
    h->size = 0;
    h->text = rest;
    if (strcmp(h->verb, "get") == 0 || strcmp(h->verb, "error") == 0)
        return 0;
    if (strcmp(h->verb, "put") != 0 && strcmp(h->verb, "ok") != 0)
        return -1;
    char *end;
    errno = 0;
    unsigned long long size = strtoull(rest, &end, 10);
    char *sha = end + 1;
    if (!isdigit((unsigned char)rest[0]) || errno != 0 || *end != ' ' ||
        strspn(sha, "0123456789abcdef") != FT_HEX_LEN || sha[FT_HEX_LEN] != ' ' ||
        sha[FT_HEX_LEN + 1] == '\0')
        return -1;
    h->size = size;
    h->sha = sha;
    sha[FT_HEX_LEN] = '\0';
    h->text = sha + FT_HEX_LEN + 1;
    return 0;
}

int ft_send_header(tw_string_receiver *sr, const char *verb, uint64_t size, const char *sha,
                   const char *text)
{
    char line[sizeof((ft_header *)0)->line];
    int n = sha != NULL ? snprintf(line, sizeof line, "%s %" PRIu64 " %s %s", verb, size, sha, text)
                        : snprintf(line, sizeof line, "%s %s", verb, text);
    if (n < 0 || (size_t)n >= sizeof line)
        return TW_ETOOBIG;
    return tw_string_receiver_send_string(sr, line, (size_t)n);
}

EVP_MD_CTX *ft_sha_new(void)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        ctx = NULL;
    }
    return ctx;
}

void ft_sha_finish(EVP_MD_CTX *ctx, char hex[FT_HEX_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx, md, &n);
    EVP_MD_CTX_free(ctx);
    for (unsigned int i = 0; i < n && i < FT_HEX_LEN / 2; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    hex[FT_HEX_LEN] = '\0';
}

int ft_sha_fd(int fd, char hex[FT_HEX_LEN + 1], uint64_t *size)
{
    static unsigned char buf[FT_CHUNK];
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EINVAL; /* a device such as /dev/zero might never end */
    EVP_MD_CTX *ctx = ft_sha_new();
    ssize_t n;
    *size = 0;
    while (ctx != NULL && (n = pread(fd, buf, sizeof buf, (off_t)*size)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int err = errno;
            EVP_MD_CTX_free(ctx);
            return -err;
        }
        EVP_DigestUpdate(ctx, buf, (size_t)n);
        *size += (uint64_t)n;
    }
    if (ctx == NULL)
        return -ENOMEM;
    ft_sha_finish(ctx, hex);
    return 0;
}

const char *ft_sink_check(ft_sink *k, const char *want, char sha[FT_HEX_LEN + 1])
{
    ft_sha_finish(k->sha, sha);
    k->sha = NULL;
    if (k->error != 0)
        return strerror(-k->error);
    return strcmp(sha, want) == 0 ? NULL : "its SHA-256 is not the one announced";
}
