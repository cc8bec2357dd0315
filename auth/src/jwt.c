/*
 * Token verification and signing: the only file that calls libjwt.
 *
 * libjwt 1.10 verifies a signature and nothing else, and even that only
 * safely when the caller pins the algorithm (shared/platform-notes.md). So a
 * token goes through these steps, each of which can refuse it with its own
 * code:
 *   1. length cap and structure (exactly three strict base64url segments),
 *      before anything is decoded;
 *   2. our own parse of header and payload (jansson, duplicate names
 *      refused): `alg` must name a signing algorithm spelled exactly, `kid`
 *      picks the key; a payload that is no JSON object is "invalid token"
 *      whatever its signature;
 *   3. libjwt checks the signature with a key allowed to verify that alg, and
 *      jwt_get_alg() must agree afterwards (RSA-PSS, which libjwt lacks, is
 *      checked by OpenSSL in pss.c);
 *   4. only then are the claims of our parsed payload looked at, with their
 *      JSON types enforced: exp/nbf/iat, iss/aud, sub, channels/publish.
 * Parsing the payload before the signature check costs nothing new: libjwt
 * parses it before checking too. libjwt's claim getters are not used: they
 * read "exp":"1" or 1.5 as 0.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/err.h>

#include "auth_internal.h"

/* Bytes one decoded segment can take: 3 per 4 characters, plus a tail. */
#define SEGMENT_BYTES (AUTH_MAX_TOKEN_BYTES / 4 * 3 + 3)

/* A token being verified: a NUL-terminated copy (libjwt wants a C string)
 * and its three segments, pointing into that copy. */
struct token {
    char text[AUTH_MAX_TOKEN_BYTES + 1];
    const char *seg[3];
    size_t seg_len[3];
};

const char *auth_strerror(int code)
{
    static const char *const reasons[] = {
        [-AUTH_OK] = "ok",
        [-AUTH_EMALFORMED] = "invalid token",
        [-AUTH_ETOOLONG] = "token too long",
        [-AUTH_ESIGNATURE] = "invalid signature",
        [-AUTH_EALG] = "algorithm not allowed",
        [-AUTH_EUNKNOWNKID] = "unknown key id",
        [-AUTH_EEXPIRED] = "token expired",
        [-AUTH_ENOEXP] = "missing exp",
        [-AUTH_ENOTYET] = "token not yet valid",
        [-AUTH_EISSUER] = "wrong issuer",
        [-AUTH_EAUDIENCE] = "wrong audience",
        [-AUTH_ESUB] = "invalid sub",
        [-AUTH_ECLAIMS] = "invalid claims",
        [-AUTH_EWEAKKEY] = "hmac secret too short",
        [-AUTH_EKEY] = "invalid key",
        [-AUTH_ENOKEY] = "no key configured",
        [-AUTH_ENOMEM] = "out of memory",
        [-AUTH_EWRONGSUB] = "sub mismatch",
        [-AUTH_EWRONGCHANNEL] = "channel mismatch",
        [-AUTH_EDUPKID] = "duplicate key id",
        [-AUTH_EPRIVATE] = "private channel",
    };

    if (code > 0 || (size_t)-code >= sizeof(reasons) / sizeof(reasons[0]) || !reasons[-code])
        return "unknown error";
    return reasons[-code];
}

/* RFC 7515 names are case-sensitive; libjwt's jwt_str_alg() is not, and
 * knows "none", so the header's alg is looked up here instead. */
static jwt_alg_t alg_from_name(const char *name)
{
    static const struct {
        const char *name;
        jwt_alg_t alg;
    } algs[] = {
        {"HS256", JWT_ALG_HS256}, {"HS384", JWT_ALG_HS384}, {"HS512", JWT_ALG_HS512},
        {"RS256", JWT_ALG_RS256}, {"RS384", JWT_ALG_RS384}, {"RS512", JWT_ALG_RS512},
        {"ES256", JWT_ALG_ES256}, {"ES384", JWT_ALG_ES384}, {"ES512", JWT_ALG_ES512},
        {"PS256", AUTH__ALG_PS256}, {"PS384", AUTH__ALG_PS384}, {"PS512", AUTH__ALG_PS512},
    };

    for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
        if (strcmp(name, algs[i].name) == 0)
            return algs[i].alg;
    }
    return JWT_ALG_INVAL;
}

static int b64url_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '-')
        return 62;
    if (ch == '_')
        return 63;
    return -1;
}

/* Strict unpadded base64url (RFC 7515 2): the URL alphabet only, no '=',
 * and the unused bits of the last character zero, so that a token has one
 * spelling only. `out` (SEGMENT_BYTES) may be NULL to only check. */
static int b64url_decode(const char *in, size_t len, unsigned char *out, size_t *out_len)
{
    unsigned acc = 0, bits = 0;
    size_t n = 0;

    if (len % 4 == 1)
        return AUTH_EMALFORMED;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)in[i]);

        if (v < 0)
            return AUTH_EMALFORMED;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (out)
                out[n] = (unsigned char)(acc >> bits);
            n++;
        }
        acc &= (1u << bits) - 1;
    }
    if (acc != 0)
        return AUTH_EMALFORMED;
    *out_len = n;
    return AUTH_OK;
}

/* Exactly three segments, each valid base64url. The signature may be empty
 * here so that an unsigned alg:none token is refused for its alg. */
static int split_token(struct token *t)
{
    const char *p = t->text;
    size_t n;

    for (int i = 0; i < 2; i++) {
        const char *dot = strchr(p, '.');

        if (!dot || dot == p)
            return AUTH_EMALFORMED;
        t->seg[i] = p;
        t->seg_len[i] = (size_t)(dot - p);
        p = dot + 1;
    }
    t->seg[2] = p;
    t->seg_len[2] = strlen(p);
    for (int i = 0; i < 3; i++) {
        if (b64url_decode(t->seg[i], t->seg_len[i], NULL, &n) != AUTH_OK)
            return AUTH_EMALFORMED;
    }
    return AUTH_OK;
}

/* Decodes a header or payload segment into a JSON object. Duplicate names
 * are refused: libjwt would let the last one win, a classic way to make two
 * parsers disagree about a token. */
static int decode_object(const char *seg, size_t len, json_t **out)
{
    unsigned char buf[SEGMENT_BYTES];
    json_error_t jerr;
    size_t n;

    *out = NULL;
    if (b64url_decode(seg, len, buf, &n) != AUTH_OK)
        return AUTH_EMALFORMED;
    *out = json_loadb((const char *)buf, n, JSON_REJECT_DUPLICATES, &jerr);
    if (json_is_object(*out))
        return AUTH_OK;
    json_decref(*out);
    *out = NULL;
    return AUTH_EMALFORMED;
}

/* Reads alg and kid from the header. `crit` is refused because we implement
 * no extension (RFC 7515 4.1.11); `typ`, when present, must be what libjwt
 * also insists on, so that both parsers agree. *kid borrows from hdr. */
static int read_header(const json_t *hdr, jwt_alg_t *alg, const char **kid)
{
    const json_t *jalg = json_object_get(hdr, "alg");
    const json_t *jkid = json_object_get(hdr, "kid");
    const json_t *typ = json_object_get(hdr, "typ");

    if (!json_is_string(jalg) || (jkid && !json_is_string(jkid)))
        return AUTH_EMALFORMED;
    if (typ && (!json_is_string(typ) || strcasecmp(json_string_value(typ), "JWT") != 0))
        return AUTH_EMALFORMED;
    if (json_object_get(hdr, "crit"))
        return AUTH_EMALFORMED;
    *alg = alg_from_name(json_string_value(jalg));
    if (*alg == JWT_ALG_INVAL)
        return AUTH_EALG;
    *kid = jkid ? json_string_value(jkid) : NULL;
    return AUTH_OK;
}

/* PS*: the signature segment decoded, checked by pss.c over the first two
 * segments (split_token has validated all three). */
static int try_pss(const struct auth__key *k, const struct token *t, jwt_alg_t alg)
{
    unsigned char sig[SEGMENT_BYTES];
    size_t n;

    if (b64url_decode(t->seg[2], t->seg_len[2], sig, &n) != AUTH_OK)
        return AUTH_EMALFORMED;
    return auth__pss_verify(k, alg, t->text, t->seg_len[0] + 1 + t->seg_len[1], sig, n);
}

/* One signature check with one key. The key is never NULL (libjwt would then
 * accept any token) and is only used for an alg it is pinned to. */
static int try_key(const struct auth__key *k, const struct token *t, jwt_alg_t alg)
{
    jwt_t *jwt = NULL;
    int rc;

    if (!(k->algs & AUTH__ALG_BIT(alg)))
        return AUTH_EALG;
    if (AUTH__IS_PSS(alg))
        return try_pss(k, t, alg);
    rc = jwt_decode(&jwt, t->text, k->material, (int)k->len);
    /* A failed check leaves errors on the thread's OpenSSL queue, where the
     * TLS code of the same thread would later mistake them for its own. */
    ERR_clear_error();
    if (rc != 0)
        return rc == ENOMEM ? AUTH_ENOMEM : AUTH_ESIGNATURE;
    /* The same pin once more, on what libjwt actually verified with. */
    rc = jwt_get_alg(jwt) == alg ? AUTH_OK : AUTH_EALG;
    jwt_free(jwt);
    return rc;
}

/* kid present: that key or nothing. No kid: every key pinned to the alg is
 * tried; none at all means the alg is not one we accept. */
static int verify_signature(const auth_keyring *kr, const struct token *t, jwt_alg_t alg,
                            const char *kid)
{
    int rc = AUTH_EALG;

    if (kid) {
        const struct auth__key *k = auth__keyring_find(kr, kid);

        return k ? try_key(k, t, alg) : AUTH_EUNKNOWNKID;
    }
    for (size_t i = 0; i < kr->n_keys; i++) {
        if (!(kr->keys[i].algs & AUTH__ALG_BIT(alg)))
            continue;
        rc = try_key(&kr->keys[i], t, alg);
        if (rc == AUTH_OK || rc == AUTH_ENOMEM)
            return rc;
    }
    return rc;
}

/* An optional NumericDate; only a JSON integer is one here. */
static int int_claim(const json_t *claims, const char *name, int *present, int64_t *v)
{
    const json_t *j = json_object_get(claims, name);

    *present = j != NULL;
    if (!j)
        return AUTH_OK;
    if (!json_is_integer(j))
        return AUTH_ECLAIMS;
    *v = json_integer_value(j);
    return AUTH_OK;
}

/* now -/+ leeway without overflow; token values never enter arithmetic. */
static int64_t earliest(int64_t now, int64_t leeway)
{
    return now < INT64_MIN + leeway ? INT64_MIN : now - leeway;
}

static int64_t latest(int64_t now, int64_t leeway)
{
    return now > INT64_MAX - leeway ? INT64_MAX : now + leeway;
}

static int check_times(const json_t *claims, int64_t now, int64_t leeway)
{
    int64_t exp = 0, nbf = 0, iat = 0;
    int has_exp, has_nbf, has_iat, rc;

    if ((rc = int_claim(claims, "exp", &has_exp, &exp)) != AUTH_OK ||
        (rc = int_claim(claims, "nbf", &has_nbf, &nbf)) != AUTH_OK ||
        (rc = int_claim(claims, "iat", &has_iat, &iat)) != AUTH_OK)
        return rc;
    if (!has_exp)
        return AUTH_ENOEXP;
    if (exp <= earliest(now, leeway))
        return AUTH_EEXPIRED;
    if ((has_nbf && nbf > latest(now, leeway)) || (has_iat && iat > latest(now, leeway)))
        return AUTH_ENOTYET;
    return AUTH_OK;
}

static int check_issuer(const auth_keyring *kr, const json_t *claims)
{
    const json_t *iss = json_object_get(claims, "iss");

    if (!kr->issuer)
        return AUTH_OK;
    if (!json_is_string(iss) || strcmp(json_string_value(iss), kr->issuer) != 0)
        return AUTH_EISSUER;
    return AUTH_OK;
}

/* RFC 7519 4.1.3: aud is a string or an array of strings; one match is
 * enough. */
static int check_audience(const auth_keyring *kr, const json_t *claims)
{
    const json_t *aud = json_object_get(claims, "aud");
    int found = 0;

    if (!kr->audience)
        return AUTH_OK;
    if (!aud)
        return AUTH_EAUDIENCE;
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), kr->audience) == 0 ? AUTH_OK : AUTH_EAUDIENCE;
    if (!json_is_array(aud))
        return AUTH_ECLAIMS;
    for (size_t i = 0; i < json_array_size(aud); i++) {
        const json_t *v = json_array_get(aud, i);

        if (!json_is_string(v))
            return AUTH_ECLAIMS;
        found |= strcmp(json_string_value(v), kr->audience) == 0;
    }
    return found ? AUTH_OK : AUTH_EAUDIENCE;
}

static int check_sub(const json_t *claims)
{
    const json_t *sub = json_object_get(claims, "sub");

    if (!json_is_string(sub) || !auth_sub_valid(json_string_value(sub), json_string_length(sub)))
        return AUTH_ESUB;
    return AUTH_OK;
}

/* channels/publish: absent, or an array of at most AUTH_MAX_PATTERNS valid
 * patterns. */
static int check_patterns(const json_t *claims, const char *name)
{
    const json_t *arr = json_object_get(claims, name);

    if (!arr)
        return AUTH_OK;
    if (!json_is_array(arr) || json_array_size(arr) > AUTH_MAX_PATTERNS)
        return AUTH_ECLAIMS;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *v = json_array_get(arr, i);

        if (!json_is_string(v) || !auth_pattern_valid(json_string_value(v), json_string_length(v)))
            return AUTH_ECLAIMS;
    }
    return AUTH_OK;
}

static int check_claims(const auth_keyring *kr, const json_t *claims, int64_t now)
{
    int rc;

    if ((rc = check_times(claims, now, kr->leeway)) != AUTH_OK ||
        (rc = check_issuer(kr, claims)) != AUTH_OK ||
        (rc = check_audience(kr, claims)) != AUTH_OK || (rc = check_sub(claims)) != AUTH_OK ||
        (rc = check_patterns(claims, "channels")) != AUTH_OK)
        return rc;
    return check_patterns(claims, "publish");
}

/* Steps 1-4 of the file comment. On AUTH_OK *claims is the verified payload,
 * which the caller releases with json_decref. */
static int verify_token(const auth_keyring *kr, const char *token, size_t len, int64_t now,
                        json_t **claims)
{
    struct token t;
    json_t *hdr = NULL;
    const char *kid = NULL;
    jwt_alg_t alg = JWT_ALG_INVAL;
    int rc;

    *claims = NULL;
    if (!kr || kr->n_keys == 0)
        return AUTH_ENOKEY;
    if (len > AUTH_MAX_TOKEN_BYTES)
        return AUTH_ETOOLONG;
    /* A NUL inside would make libjwt see less than we checked. */
    if (!token || len == 0 || memchr(token, '\0', len))
        return AUTH_EMALFORMED;
    memcpy(t.text, token, len);
    t.text[len] = '\0';
    if ((rc = split_token(&t)) != AUTH_OK ||
        (rc = decode_object(t.seg[0], t.seg_len[0], &hdr)) != AUTH_OK)
        goto err;
    if ((rc = read_header(hdr, &alg, &kid)) != AUTH_OK ||
        (rc = decode_object(t.seg[1], t.seg_len[1], claims)) != AUTH_OK)
        goto err;
    rc = t.seg_len[2] ? verify_signature(kr, &t, alg, kid) : AUTH_ESIGNATURE;
    if (rc != AUTH_OK || (rc = check_claims(kr, *claims, now)) != AUTH_OK)
        goto err;
    json_decref(hdr);
    return AUTH_OK;

err:
    json_decref(hdr);
    json_decref(*claims);
    *claims = NULL;
    return rc;
}

/* Copies a validated pattern array. *out and *n are kept consistent at each
 * step so auth_claims_free can undo a partial copy. */
static int copy_patterns(const json_t *arr, char ***out, size_t *n)
{
    size_t count = json_array_size(arr);

    if (count == 0)
        return AUTH_OK;
    *out = calloc(count, sizeof(**out));
    if (!*out)
        return AUTH_ENOMEM;
    for (size_t i = 0; i < count; i++) {
        (*out)[i] = strdup(json_string_value(json_array_get(arr, i)));
        if (!(*out)[i])
            return AUTH_ENOMEM;
        (*n)++;
    }
    return AUTH_OK;
}

static int fill_claims(const json_t *claims, auth_claims *out)
{
    const json_t *sub = json_object_get(claims, "sub");
    int rc;

    /* check_sub() bounded the length to AUTH_MAX_SUB_LEN. Allocated, not a
     * fixed array: claims live in every connection, and names are short. */
    out->sub = strdup(json_string_value(sub));
    if (!out->sub)
        return AUTH_ENOMEM;
    out->exp = json_integer_value(json_object_get(claims, "exp"));
    rc = copy_patterns(json_object_get(claims, "channels"), &out->channels, &out->n_channels);
    if (rc != AUTH_OK)
        return rc;
    return copy_patterns(json_object_get(claims, "publish"), &out->publish, &out->n_publish);
}

int auth_verify_connection(const auth_keyring *kr, const char *token, size_t len, int64_t now,
                           auth_claims *out)
{
    json_t *claims;
    int rc;

    if (!out)
        return AUTH_EMALFORMED;
    memset(out, 0, sizeof(*out));
    rc = verify_token(kr, token, len, now, &claims);
    if (rc != AUTH_OK)
        return rc;
    rc = fill_claims(claims, out);
    json_decref(claims);
    if (rc != AUTH_OK)
        auth_claims_free(out);
    return rc;
}

void auth_claims_free(auth_claims *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_channels; i++)
        free(c->channels[i]);
    for (size_t i = 0; i < c->n_publish; i++)
        free(c->publish[i]);
    free(c->channels);
    free(c->publish);
    free(c->sub);
    memset(c, 0, sizeof(*c));
}

/* The subscription-specific checks, on a token already verified. */
static int check_subscription(const json_t *claims, const char *sub, const char *channel)
{
    const json_t *jchan = json_object_get(claims, "channel");

    if (!sub || strcmp(json_string_value(json_object_get(claims, "sub")), sub) != 0)
        return AUTH_EWRONGSUB;
    if (jchan && !json_is_string(jchan))
        return AUTH_ECLAIMS;
    if (!jchan || !channel || strcmp(json_string_value(jchan), channel) != 0)
        return AUTH_EWRONGCHANNEL;
    if (auth__private_to_another(channel, sub))
        return AUTH_EPRIVATE;
    return AUTH_OK;
}

int auth_verify_subscription(const auth_keyring *kr, const char *token, size_t len, int64_t now,
                             const char *sub, const char *channel, int64_t *exp)
{
    json_t *claims;
    int rc;

    rc = verify_token(kr, token, len, now, &claims);
    if (rc != AUTH_OK)
        return rc;
    rc = check_subscription(claims, sub, channel);
    if (rc == AUTH_OK && exp)
        *exp = json_integer_value(json_object_get(claims, "exp"));
    json_decref(claims);
    return rc;
}

int auth_sign_hs256(const unsigned char *secret, size_t len, const char *kid,
                    const char *claims_json, char **out)
{
    jwt_t *jwt = NULL;
    int rc = AUTH_ENOMEM;

    if (!out)
        return AUTH_ECLAIMS;
    *out = NULL;
    if (!secret || len < AUTH_MIN_HMAC_SECRET)
        return AUTH_EWEAKKEY;
    if (len > INT_MAX) /* libjwt takes the key length as an int */
        return AUTH_EKEY;
    if (!claims_json)
        return AUTH_ECLAIMS;
    if (jwt_new(&jwt) != 0)
        return AUTH_ENOMEM;
    /* jwt_add_grants_json refuses text that is not a JSON object. */
    if (jwt_add_grants_json(jwt, claims_json) != 0) {
        rc = AUTH_ECLAIMS;
        goto done;
    }
    if ((kid && jwt_add_header(jwt, "kid", kid) != 0) ||
        jwt_set_alg(jwt, JWT_ALG_HS256, secret, (int)len) != 0)
        goto done;
    *out = jwt_encode_str(jwt);
    rc = *out ? AUTH_OK : AUTH_ENOMEM;

done:
    jwt_free(jwt);
    ERR_clear_error();
    return rc;
}
