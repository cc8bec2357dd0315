/*
 * tokens: the JWTs wsgw-demo hands to its page, signed HS256 with the
 * gateways' secret through the auth library (libjwt underneath).
 *
 * This is the part a real backend does after its own login: it decides what
 * a user may do and says so in the token's claims. The demo lets anyone in
 * under any valid name (hence --insecure-demo): a connection token may read
 * and write every chat room; job channels are opened one at a time by
 * subscription tokens, for the job the user started.
 */
#ifndef DEMO_TOKENS_H
#define DEMO_TOKENS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define DEMO_NAME_MAX 32 /* demo user names: 1..32 of [A-Za-z0-9_.@-] */

typedef struct demo_tokens demo_tokens;

/* Returns the signer/verifier for cfg's secret (cfg must outlive it), or
 * NULL with a reason in err. */
demo_tokens *demo_tokens_new(const demo_config *cfg, char *err, size_t errlen);
void demo_tokens_free(demo_tokens *t);

/* 1 when `name` is an acceptable demo user name. */
int demo_name_valid(const char *name);

/* A connection token for `name`. On 0, *out is malloc'd (caller frees) and
 * *exp the expiry; -1 when out of memory. */
int demo_tokens_connection(const demo_tokens *t, const char *name, char **out, int64_t *exp);

/* A subscription token for `sub` and exactly `channel`; like the above. */
int demo_tokens_subscription(const demo_tokens *t, const char *sub, const char *channel, char **out,
                             int64_t *exp);

/* Checks "Bearer <connection token>" (an Authorization header) and copies
 * the token's user into sub. Returns 0, or -1 when the header or token is
 * not valid (why: a short reason, static). */
int demo_tokens_user(const demo_tokens *t, const char *authorization, char *sub, size_t sublen,
                     const char **why);

#endif
