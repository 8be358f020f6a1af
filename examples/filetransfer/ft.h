/* SPDX-License-Identifier: MIT */
/*
 * The file-transfer wire format, shared by the filetransfer module and its
 * client. Every message is an int32-framed string (framing.h), which is how
 * this protocol avoids the "sticky packet" trap of a bare header followed by
 * bytes: each frame says its own length.
 *
 * A header frame is one line of text, fields separated by single spaces,
 * the name last (so it may contain spaces):
 *
 *   get NAME                  client: send me NAME
 *   put SIZE SHA256 NAME      client: store the SIZE bytes that follow as NAME
 *   ok SIZE SHA256 NAME       server: here is NAME (then SIZE bytes follow),
 *                             or NAME is stored
 *   error SENTENCE            server: refused, and why
 *
 * SHA256 is 64 lowercase hex digits. The SIZE bytes of a body follow as
 * frames of at most FT_CHUNK bytes each; the receiver counts them, hashes
 * them as they arrive and compares the digest with the header's at the end.
 * Both sides stream bodies through a pull producer (ft_sender), so neither
 * holds more than a frame of a file in memory.
 */
#ifndef FT_H
#define FT_H

#include <openssl/evp.h>
#include <stdint.h>
#include <twine.h>

#define FT_CHUNK 65536   /* the largest frame: one piece of a body */
#define FT_NAME_MAX 4095 /* the longest NAME */
#define FT_HEX_LEN 64    /* a SHA-256 in hex */

/* A parsed header frame; text is the NAME or the error SENTENCE. */
typedef struct ft_header {
    char line[FT_NAME_MAX + 96];
    const char *verb, *sha, *text;
    uint64_t size;
} ft_header;

/* Parse a header frame. @return 0, or -1 when it is not one. */
int ft_parse(const void *frame, size_t len, ft_header *h);

/* Send a header frame; sha may be NULL for get and error. */
int ft_send_header(tw_string_receiver *sr, const char *verb, uint64_t size, const char *sha,
                   const char *text);

/* ft.c: SHA-256 through OpenSSL's EVP interface. A new one, or NULL when out of memory. */
EVP_MD_CTX *ft_sha_new(void);
/* Finish @p ctx into 64 hex digits and a NUL, and free it. */
void ft_sha_finish(EVP_MD_CTX *ctx, char hex[FT_HEX_LEN + 1]);
/* Hash the regular file @p fd, blocking. @return 0 (and its size), or a negated errno. */
int ft_sha_fd(int fd, char hex[FT_HEX_LEN + 1], uint64_t *size);

/*
 * body.c: a pull producer sending @c size bytes of @c fd as body frames.
 * @c done (may be NULL) runs once: 0 when all was sent; -EIO when the file
 * ended early or could not be read, after aborting the connection (the peer
 * is owed bytes it will never get); TW_ECONNLOST when the connection went
 * first. The sender never closes @c fd.
 */
typedef struct ft_sender {
    tw_producer base;
    tw_string_receiver *sr;
    int fd;
    uint64_t offset, size;
    int reported;
    void (*done)(struct ft_sender *s, int status);
} ft_sender;

/* Start sending; @p s must stay valid until its done callback ran. */
void ft_send_file(ft_sender *s, tw_string_receiver *sr, int fd, uint64_t size,
                  void (*done)(ft_sender *s, int status));

/*
 * Server side (confine.c): resolve the client's relative path @p name
 * beneath the directory @p root. On success *dir is a new descriptor of the
 * directory that holds the last component, which is copied to @p leaf.
 * @return 0, or -1 with a sentence in @p why.
 */
#define FT_LEAF_MAX 255
int ft_resolve(int root, const char *name, int *dir, char leaf[FT_LEAF_MAX + 1], char *why,
               size_t whylen);

/* The receiving end of a body: writes it to @c fd and hashes it. */
typedef struct ft_sink {
    int fd; /* -1 drops the body */
    uint64_t left;
    EVP_MD_CTX *sha; /* NULL: no hashing */
    int error;       /* the first write error (negated errno); later frames are dropped */
} ft_sink;

/*
 * Take one body frame. @return 1 once the body is complete, 0 while more
 * is due, -1 when the frame holds more than the header announced.
 */
int ft_sink_write(ft_sink *k, const void *data, size_t len);

/*
 * The body is complete: finish its SHA-256 into @p sha. @return NULL when
 * it was all written and matches @p want, else a sentence saying why not.
 */
const char *ft_sink_check(ft_sink *k, const char *want, char sha[FT_HEX_LEN + 1]);

#endif
