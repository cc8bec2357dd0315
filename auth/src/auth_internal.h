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
#define AUTH__RSA_ALGS                                                                             \
    (AUTH__ALG_BIT(JWT_ALG_RS256) | AUTH__ALG_BIT(JWT_ALG_RS384) | AUTH__ALG_BIT(JWT_ALG_RS512))

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

/* The key whose kid equals `kid`, or NULL. */
const struct auth__key *auth__keyring_find(const auth_keyring *kr, const char *kid);

#endif
