/*
 * token: HS256 signing with OpenSSL's one-shot HMAC; see token.h for why the
 * bench signs by itself.
 */
#include "token.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

size_t bench_b64url(char *dst, const unsigned char *src, size_t n)
{
    int len = EVP_EncodeBlock((unsigned char *)dst, src, (int)n);
    /* RFC 7515 wants the URL alphabet and no padding. */
    while (len > 0 && dst[len - 1] == '=')
        len--;
    dst[len] = '\0';
    for (int i = 0; i < len; i++) {
        if (dst[i] == '+')
            dst[i] = '-';
        else if (dst[i] == '/')
            dst[i] = '_';
    }
    return (size_t)len;
}

char *bench_token_hs256(const unsigned char *secret, size_t secret_len, const char *kid,
                        const char *claims_json)
{
    char header[256];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    size_t hlen, clen = strlen(claims_json), cap, n;
    char *out;

    if (kid)
        snprintf(header, sizeof(header), "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", kid);
    else
        snprintf(header, sizeof(header), "{\"alg\":\"HS256\",\"typ\":\"JWT\"}");
    hlen = strlen(header);
    cap = 4 * ((hlen + 2) / 3) + 4 * ((clen + 2) / 3) + 4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 4;
    out = malloc(cap);
    if (!out)
        return NULL;
    n = bench_b64url(out, (const unsigned char *)header, hlen);
    out[n++] = '.';
    n += bench_b64url(out + n, (const unsigned char *)claims_json, clen);
    if (!HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)out, n, mac, &mac_len)) {
        free(out);
        return NULL;
    }
    out[n++] = '.';
    bench_b64url(out + n, mac, mac_len);
    return out;
}
