/* SPDX-License-Identifier: MIT */
/*
 * Fuzzing the PROXY protocol header parser (tw_proxy_parse).
 *
 * The input, copied into a buffer of exactly its size so that ASan sees
 * any read past it, is parsed whole and then as growing prefixes that end
 * at chunk boundaries, as a connection's reads would deliver it. The
 * answers must form one story: 0 ("more") for every prefix until a
 * decision, then the same decision for every longer prefix -- the same
 * length and the same addresses for a header, the same error for an error
 * -- and no undecided answer once TW_PROXY_HEADER_MAX bytes are in. A
 * header is at most 107 bytes in version 1 and TW_PROXY_HEADER_MAX in
 * version 2; a local one carries no address, another carries two of one
 * family (IPv4 or IPv6 in version 1; IPv4, IPv6 or UNIX in version 2).
 *
 * Input: [seed x4] then the connection's first bytes.
 */
#include "config.h"

#include <string.h>
#include <sys/socket.h>
#include <twine.h>
#include <twine/proxy.h>

#include "fuzz.h"

static int same_address(const tw_address *a, const tw_address *b)
{
    return a->len == b->len && memcmp(&a->u.storage, &b->u.storage, a->len) == 0;
}

static void check_header(const tw_proxy_header *h, int rc)
{
    FZ_CHECK(h->version == 1 || h->version == 2, "version %d", h->version);
    FZ_CHECK(h->version == 2 || rc <= TW_PROXY_V1_MAX, "a version 1 header of %d bytes", rc);
    FZ_CHECK(rc <= TW_PROXY_HEADER_MAX, "a header of %d bytes", rc);
    if (h->local) {
        FZ_CHECK(h->source.len == 0 && h->destination.len == 0, "a local header with addresses");
        return;
    }
    int f = tw_address_family(&h->source);
    FZ_CHECK(f == tw_address_family(&h->destination), "source and destination families differ");
    FZ_CHECK(f == AF_INET || f == AF_INET6 || (h->version == 2 && f == AF_UNIX),
             "family %d in a version %d header", f, h->version);
    FZ_CHECK(h->source.len <= sizeof h->source.u.storage, "an address of %u bytes",
             (unsigned)h->source.len);
    char a[TW_ADDRSTRLEN], b[TW_ADDRSTRLEN];
    tw_address_format(&h->source, a, sizeof a);
    tw_address_format(&h->destination, b, sizeof b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_quiet_logs();
    fz_in in = {data, size};
    fz_rng rng;
    fz_rng_seed(&rng, &in);
    size_t len = in.n;
    uint8_t *buf = malloc(len > 0 ? len : 1);
    FZ_CHECK(buf != NULL, "out of memory");
    memcpy(buf, in.p, len);

    tw_proxy_header whole;
    const char *why = NULL;
    int rc = tw_proxy_parse(buf, len, &whole, &why);
    FZ_CHECK(rc >= 0 || rc == TW_EPROTO || rc == TW_ETOOBIG, "parse returned %d", rc);
    FZ_CHECK(rc < 0 || (size_t)rc <= len, "a header of %d bytes in %zu", rc, len);
    FZ_CHECK(rc != 0 || len < TW_PROXY_HEADER_MAX, "%zu bytes left undecided", len);
    FZ_CHECK(rc >= 0 || (why != NULL && why[0] != '\0'), "an error without a sentence");
    if (rc > 0)
        check_header(&whole, rc);

    /* The prefixes a connection's reads would give, and every one around
     * the decision. */
    int decided = 0;
    for (size_t n = 0; n <= len;) {
        tw_proxy_header h;
        int r = tw_proxy_parse(buf, n, &h, NULL);
        if (r == 0) {
            FZ_CHECK(!decided, "%zu bytes undecided after a decision", n);
            FZ_CHECK(n < TW_PROXY_HEADER_MAX, "%zu bytes left undecided", n);
        } else {
            decided = 1;
            FZ_CHECK(r == rc, "%zu bytes gave %d, all %zu gave %d", n, r, len, rc);
            if (r > 0)
                FZ_CHECK(h.version == whole.version && h.local == whole.local &&
                             same_address(&h.source, &whole.source) &&
                             same_address(&h.destination, &whole.destination),
                         "%zu bytes gave another header than all %zu", n, len);
        }
        if (n == len)
            break;
        size_t step = fz_chunk(&rng, len - n);
        if (rc > 0 && n < (size_t)rc && n + step > (size_t)rc)
            step = (size_t)rc - n; /* the exact end of the header too */
        n += step;
    }
    free(buf);
    return 0;
}
