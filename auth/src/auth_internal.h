/*
 * What the three files of auth/ share and nothing outside needs: the layout
 * of a keyring, which keys.c builds and jwt.c reads while verifying.
 *
 * Each key carries the set of JWS algorithms it may verify, decided once from
 * the key's type when it is added. Verification then only asks "may this key
 * verify this alg?", which is how the algorithm stays pinned to the key and
 * an attacker's choice of `alg` can never change how a key is used.
 */
#ifndef AUTH_INTERNAL_H
#define AUTH_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <jwt.h>

#include "auth/auth.h"

/* The bit of one libjwt algorithm in auth__key.algs. */
#define AUTH__ALG_BIT(alg) (1u << (unsigned)(alg))
#define AUTH__HMAC_ALGS                                                                            \
    (AUTH__ALG_BIT(JWT_ALG_HS256) | AUTH__ALG_BIT(JWT_ALG_HS384) | AUTH__ALG_BIT(JWT_ALG_HS512))
/* RSA-PSS, which libjwt 1.10 does not know (pss.c verifies it): codes after
 * libjwt's own, so that one bit set holds both. */
#define AUTH__ALG_PS256 ((jwt_alg_t)(JWT_ALG_TERM + 1))
#define AUTH__ALG_PS384 ((jwt_alg_t)(JWT_ALG_TERM + 2))
#define AUTH__ALG_PS512 ((jwt_alg_t)(JWT_ALG_TERM + 3))
#define AUTH__IS_PSS(alg) ((alg) >= AUTH__ALG_PS256 && (alg) <= AUTH__ALG_PS512)
#define AUTH__RSA_ALGS                                                                             \
    (AUTH__ALG_BIT(JWT_ALG_RS256) | AUTH__ALG_BIT(JWT_ALG_RS384) | AUTH__ALG_BIT(JWT_ALG_RS512) | \
     AUTH__ALG_BIT(AUTH__ALG_PS256) | AUTH__ALG_BIT(AUTH__ALG_PS384) |                           \
     AUTH__ALG_BIT(AUTH__ALG_PS512))

/* One verification key, immutable once in a keyring. */
struct auth__key {
    char *kid;               /* NULL for a key without id */
    unsigned char *material; /* the HMAC secret or the PEM text, as libjwt takes it */
    size_t len;
    unsigned algs; /* AUTH__ALG_BIT of every algorithm this key may verify */
};

struct auth_keyring {
    struct auth__key *keys;
    size_t n_keys;
    size_t cap;
    char *issuer;   /* required `iss`, or NULL */
    char *audience; /* required `aud` member, or NULL */
    int64_t leeway; /* seconds, 0..AUTH_MAX_LEEWAY */
};

/* 1 when `channel` is a user: channel that is not `sub`'s own (perms.c):
 * no token may open it. */
int auth__private_to_another(const char *channel, const char *sub);

/* Checks a PS256/384/512 signature `sig` of `input` (the token's first two
 * segments and their dot) with the RSA key k. AUTH_OK, AUTH_ESIGNATURE,
 * AUTH_EALG (not a PS alg), AUTH_ENOMEM. */
int auth__pss_verify(const struct auth__key *k, jwt_alg_t alg, const char *input, size_t input_len,
                     const unsigned char *sig, size_t sig_len);

/* The key whose kid equals `kid`, or NULL. */
const struct auth__key *auth__keyring_find(const auth_keyring *kr, const char *kid);

#endif
