/*
 * tokens: signing and checking the demo's JWTs (see tokens.h).
 *
 * Claims are built with jansson, so a user name can never break the JSON;
 * names are validated first anyway, to the gateway's sub syntax. The bearer
 * token of POST /demo/jobs is verified exactly as a gateway verifies it
 * (auth_verify_connection), which is how the demo knows who starts a job.
 */
#include "tokens.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <auth/auth.h>
#include <jansson.h>

struct demo_tokens {
    const demo_config *cfg;
    auth_keyring *keys;
};

int demo_name_valid(const char *name)
{
    size_t n = strlen(name);
    return n >= 1 && n <= DEMO_NAME_MAX && auth_sub_valid(name, n);
}

/* Signs `claims` (a JSON object, which this function takes). */
static int sign(const demo_tokens *t, json_t *claims, char **out)
{
    char *text = claims ? json_dumps(claims, JSON_COMPACT) : NULL;
    int rc = -1;
    json_decref(claims);
    if (text && auth_sign_hs256((const unsigned char *)t->cfg->secret, t->cfg->secret_len, NULL,
                                text, out) == AUTH_OK)
        rc = 0;
    free(text);
    return rc;
}

int demo_tokens_connection(const demo_tokens *t, const char *name, char **out, int64_t *exp)
{
    json_int_t now = (json_int_t)time(NULL);
    *exp = (int64_t)now + t->cfg->token_ttl;
    return sign(t,
                json_pack("{s:s,s:I,s:I,s:[s],s:[s]}", "sub", name, "iat", now, "exp",
                          (json_int_t)*exp, "channels", "chat:*", "publish", "chat:*"),
                out);
}

int demo_tokens_subscription(const demo_tokens *t, const char *sub, const char *channel, char **out,
                             int64_t *exp)
{
    json_int_t now = (json_int_t)time(NULL);
    *exp = (int64_t)now + t->cfg->token_ttl;
    return sign(t,
                json_pack("{s:s,s:s,s:I,s:I}", "sub", sub, "channel", channel, "iat", now, "exp",
                          (json_int_t)*exp),
                out);
}

int demo_tokens_user(const demo_tokens *t, const char *authorization, char *sub, size_t sublen,
                     const char **why)
{
    auth_claims claims;
    int rc;
    if (strncmp(authorization, "Bearer ", 7) != 0) {
        *why = "expected Authorization: Bearer <connection token>";
        return -1;
    }
    rc = auth_verify_connection(t->keys, authorization + 7, strlen(authorization + 7),
                                (int64_t)time(NULL), &claims);
    if (rc != AUTH_OK) {
        *why = auth_strerror(rc);
        return -1;
    }
    snprintf(sub, sublen, "%s", claims.sub);
    auth_claims_free(&claims);
    return 0;
}

demo_tokens *demo_tokens_new(const demo_config *cfg, char *err, size_t errlen)
{
    demo_tokens *t = calloc(1, sizeof(*t));
    int rc;
    if (!t || !(t->keys = auth_keyring_new())) {
        snprintf(err, errlen, "out of memory");
        goto err;
    }
    t->cfg = cfg;
    rc = auth_keyring_add_hmac(t->keys, NULL, (const unsigned char *)cfg->secret, cfg->secret_len);
    if (rc != AUTH_OK) {
        snprintf(err, errlen, "--secret-file %s: %s", cfg->secret_file, auth_strerror(rc));
        goto err;
    }
    return t;
err:
    demo_tokens_free(t);
    return NULL;
}

void demo_tokens_free(demo_tokens *t)
{
    if (!t)
        return;
    auth_keyring_free(t->keys);
    free(t);
}
