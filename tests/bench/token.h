/*
 * token: HS256 JWTs for the bench's simulated users.
 *
 * The bench signs its own tokens with OpenSSL rather than through libwsgw_auth
 * so that it measures a gateway without sharing code with it: a signing bug in
 * the library cannot hide a verification bug in the gateway, and the bench
 * builds even while the library changes.
 */
#ifndef BENCH_TOKEN_H
#define BENCH_TOKEN_H

#include <stddef.h>

/* Signs claims_json (a JSON object text) with HS256 and `secret`; kid may be
 * NULL. Returns a malloc'd NUL-terminated token the caller frees, or NULL when
 * out of memory. */
char *bench_token_hs256(const unsigned char *secret, size_t secret_len, const char *kid,
                        const char *claims_json);

/* Writes the unpadded base64url encoding of src into dst, which must hold
 * 4 * ((n + 2) / 3) + 1 bytes. Returns the length written. */
size_t bench_b64url(char *dst, const unsigned char *src, size_t n);

#endif
