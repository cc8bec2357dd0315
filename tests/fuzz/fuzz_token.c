/*
 * fuzz_token: libFuzzer target for the token verifier (auth/), the code
 * every connection's first message and every refresh and subscription
 * token go through before anything else is trusted.
 *
 * The first byte of an input picks a mode (bits 0-1), a variant (bits 2-3)
 * and a keyring (bit 4); the rest is the body:
 *   0  raw: the body is the token text, exactly as a client sends it.
 *   1  signed: the body is a header and a payload JSON text separated by a
 *      NUL byte (no NUL: a default header and the body as the payload); the
 *      target encodes them and signs with an HMAC secret of the keyring
 *      (variant: HS256, HS384, HS512, or HS256 with the key that has no
 *      kid), so that the fuzzer reaches the claim checks behind the
 *      signature, which random bytes never would.
 *   2  forged: as 1, signed with what an attacker has: the RSA or the EC
 *      public key's PEM used as an HMAC secret (algorithm confusion), a
 *      secret not in the keyring, or no signature. Must never verify.
 *   3  asymmetric: as 1, signed with the keyring's EC P-256 key (ES256), its
 *      RSA key (RS256 or RS512), or ES256 in DER form instead of the raw
 *      R||S of RFC 7518 3.4, which must never verify.
 * The keyring is one of two with the same keys: without a claim policy
 * (bit 4 clear), or requiring an issuer and an audience with no leeway. A
 * token is verified as a connection token and, when that succeeds, as a
 * subscription token. Besides memory errors, leaks and undefined
 * behaviour, the target aborts when a code has no reason text, when a
 * forged token verifies, when accepted claims break the documented syntax
 * (sub, exp, patterns) or the privacy of user: channels, or when the two
 * entry points disagree. The keys are generated at start-up, so no key
 * material lives in the repository; the clock is fixed (NOW) so that a
 * finding replays. make_seeds.py writes the seeds with these conventions.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "fuzz_check.h"
#include "auth/auth.h"

#define NOW ((int64_t)1700000000)
#define ISSUER "https://issuer.example"
#define AUDIENCE "wsgw"
#define SUB "alice"
#define CHANNEL "job:42"
/* Room for any signature made here (RSA 2048: 256 bytes, DER ECDSA: 72). */
#define MAX_SIG 512


enum { MODE_RAW, MODE_SIGNED, MODE_FORGED, MODE_ASYM };

/* The fixed HMAC secrets: A has kid "hs1", B has no kid; C is not in the
 * keyring. The seed corpus holds tokens signed with A and B. */
static const char SECRET_A[] = "wsgw-fuzz-secret-A-0123456789abcdef";
static const char SECRET_B[] = "wsgw-fuzz-secret-B-0123456789abcdef";
static const char SECRET_C[] = "wsgw-fuzz-secret-C-0123456789abcdef";

/* Keys and keyrings built once in LLVMFuzzerInitialize, kept for the life
 * of the process. */
static struct {
    EVP_PKEY *rsa, *ec;
    char *rsa_pem, *ec_pem;
    auth_keyring *plain;  /* no issuer or audience, default leeway */
    auth_keyring *policy; /* issuer and audience required, no leeway */
} G;

int LLVMFuzzerInitialize(int *argc, char ***argv);

/* ------------------------------------------------------------ set-up */

static char *public_pem(EVP_PKEY *pk)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *mem, *pem;
    long n;

    CHECK(bio && PEM_write_bio_PUBKEY(bio, pk) == 1);
    n = BIO_get_mem_data(bio, &mem);
    CHECK(n > 0 && (pem = malloc((size_t)n + 1)) != NULL);
    memcpy(pem, mem, (size_t)n);
    pem[n] = '\0';
    BIO_free(bio);
    return pem;
}

static auth_keyring *keyring(int policy)
{
    auth_keyring *kr = auth_keyring_new();

    CHECK(kr != NULL);
    CHECK(auth_keyring_add_hmac(kr, "hs1", (const unsigned char *)SECRET_A, sizeof(SECRET_A) - 1) ==
          AUTH_OK);
    CHECK(auth_keyring_add_hmac(kr, NULL, (const unsigned char *)SECRET_B, sizeof(SECRET_B) - 1) ==
          AUTH_OK);
    CHECK(auth_keyring_add_pem(kr, "rsa1", G.rsa_pem, strlen(G.rsa_pem)) == AUTH_OK);
    CHECK(auth_keyring_add_pem(kr, "ec1", G.ec_pem, strlen(G.ec_pem)) == AUTH_OK);
    if (policy) {
        CHECK(auth_keyring_set_issuer(kr, ISSUER) == AUTH_OK);
        CHECK(auth_keyring_set_audience(kr, AUDIENCE) == AUTH_OK);
        auth_keyring_set_leeway(kr, 0);
    }
    return kr;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    G.rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    G.ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    CHECK(G.rsa && G.ec);
    G.rsa_pem = public_pem(G.rsa);
    G.ec_pem = public_pem(G.ec);
    G.plain = keyring(0);
    G.policy = keyring(1);
    return 0;
}

/* ------------------------------------------------------------ building tokens */

/* Appends the unpadded base64url text of len bytes at *p. */
static void put_b64url(char **p, const unsigned char *in, size_t len)
{
    int n = EVP_EncodeBlock((unsigned char *)*p, in, (int)len);

    while (n > 0 && (*p)[n - 1] == '=')
        n--;
    for (int i = 0; i < n; i++)
        (*p)[i] = (*p)[i] == '+' ? '-' : (*p)[i] == '/' ? '_' : (*p)[i];
    *p += n;
}

static size_t hmac_sign(const EVP_MD *md, const char *key, size_t key_len, const char *in,
                        size_t len, unsigned char *sig)
{
    unsigned sig_len = 0;

    CHECK(HMAC(md, key, (int)key_len, (const unsigned char *)in, len, sig, &sig_len));
    return sig_len;
}

/* A DER ECDSA signature as JWS spells it: R and S, 32 bytes each. */
static size_t der_to_raw(const unsigned char *der, size_t der_len, unsigned char *sig)
{
    const unsigned char *p = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
    const BIGNUM *r, *s;

    CHECK(es != NULL);
    ECDSA_SIG_get0(es, &r, &s);
    CHECK(BN_bn2binpad(r, sig, 32) == 32 && BN_bn2binpad(s, sig + 32, 32) == 32);
    ECDSA_SIG_free(es);
    return 64;
}

static size_t pkey_sign(EVP_PKEY *pk, const EVP_MD *md, const char *in, size_t len,
                        unsigned char *sig)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t sig_len = MAX_SIG;

    CHECK(ctx && EVP_DigestSignInit(ctx, NULL, md, NULL, pk) == 1);
    CHECK(EVP_DigestSign(ctx, sig, &sig_len, (const unsigned char *)in, len) == 1);
    EVP_MD_CTX_free(ctx);
    return sig_len;
}

/* Signs header.payload (at tok, len bytes) as mode/variant say; returns the
 * signature's length in sig (0: none). */
static size_t sign(int mode, int variant, const char *tok, size_t len, unsigned char *sig)
{
    static const char *const secrets[] = {SECRET_A, SECRET_B, SECRET_A, SECRET_B};
    unsigned char der[MAX_SIG];
    size_t n;

    if (mode == MODE_SIGNED) {
        const EVP_MD *md = variant == 1 ? EVP_sha384() : variant == 2 ? EVP_sha512() : EVP_sha256();
        return hmac_sign(md, secrets[variant], strlen(secrets[variant]), tok, len, sig);
    }
    if (mode == MODE_FORGED) {
        if (variant == 0)
            return hmac_sign(EVP_sha256(), G.rsa_pem, strlen(G.rsa_pem), tok, len, sig);
        if (variant == 1)
            return hmac_sign(EVP_sha256(), G.ec_pem, strlen(G.ec_pem), tok, len, sig);
        if (variant == 2)
            return hmac_sign(EVP_sha256(), SECRET_C, strlen(SECRET_C), tok, len, sig);
        return 0;
    }
    if (variant == 1)
        return pkey_sign(G.rsa, EVP_sha256(), tok, len, sig);
    if (variant == 2)
        return pkey_sign(G.rsa, EVP_sha512(), tok, len, sig);
    n = pkey_sign(G.ec, EVP_sha256(), tok, len, der);
    if (variant == 3) {
        memcpy(sig, der, n);
        return n;
    }
    return der_to_raw(der, n, sig);
}

static const char *default_header(int mode, int variant)
{
    static const char *const hs[] = {"{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"hs1\"}",
                                     "{\"alg\":\"HS384\"}", "{\"alg\":\"HS512\",\"kid\":\"hs1\"}",
                                     "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"};
    static const char *const asym[] = {"{\"alg\":\"ES256\",\"kid\":\"ec1\"}",
                                       "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}",
                                       "{\"alg\":\"RS512\"}", "{\"alg\":\"ES256\"}"};

    if (mode == MODE_ASYM)
        return asym[variant];
    if (mode == MODE_FORGED)
        return variant == 1 ? "{\"alg\":\"HS256\",\"kid\":\"ec1\"}" : hs[0];
    return hs[variant];
}

/* Builds base64url(header).base64url(payload).base64url(signature) from a
 * body "header\0payload" or "payload". Returns a malloc'd NUL-terminated
 * token. */
static char *build_token(int mode, int variant, const uint8_t *body, size_t size, size_t *len)
{
    const uint8_t *nul = memchr(body, '\0', size);
    const char *hdr = nul ? (const char *)body : default_header(mode, variant);
    size_t hdr_len = nul ? (size_t)(nul - body) : strlen(hdr);
    const uint8_t *pay = nul ? nul + 1 : body;
    size_t pay_len = nul ? size - hdr_len - 1 : size;
    unsigned char sig[MAX_SIG];
    size_t sig_len;
    char *tok = malloc((hdr_len + pay_len + MAX_SIG) / 3 * 4 + 32), *p = tok;

    CHECK(tok != NULL);
    put_b64url(&p, (const unsigned char *)hdr, hdr_len);
    *p++ = '.';
    put_b64url(&p, pay, pay_len);
    sig_len = sign(mode, variant, tok, (size_t)(p - tok), sig);
    *p++ = '.';
    put_b64url(&p, sig, sig_len);
    *p = '\0';
    *len = (size_t)(p - tok);
    return tok;
}

/* ------------------------------------------------------------ checks */

static void check_claims(const auth_keyring *kr, const auth_claims *c)
{
    char chan[AUTH_MAX_CHANNEL_LEN + 16];

    CHECK(auth_sub_valid(c->sub, strlen(c->sub)));
    CHECK(c->exp > NOW - (kr == G.policy ? 0 : AUTH_DEFAULT_LEEWAY));
    CHECK(c->n_channels <= AUTH_MAX_PATTERNS && c->n_publish <= AUTH_MAX_PATTERNS);
    CHECK(c->n_channels == 0 || c->channels != NULL);
    CHECK(c->n_publish == 0 || c->publish != NULL);
    for (size_t i = 0; i < c->n_channels; i++)
        CHECK(auth_pattern_valid(c->channels[i], strlen(c->channels[i])));
    for (size_t i = 0; i < c->n_publish; i++)
        CHECK(auth_pattern_valid(c->publish[i], strlen(c->publish[i])));
    /* The permission rules for private channels hold whatever the patterns. */
    snprintf(chan, sizeof(chan), "user:%s", c->sub);
    CHECK(!auth_can_publish(c, chan));
    CHECK(auth_can_subscribe(c, chan) == auth_channel_valid(chan, strlen(chan)));
    CHECK(!auth_can_subscribe(c, "user:someone-else") || strcmp(c->sub, "someone-else") == 0);
    (void)auth_can_subscribe(c, CHANNEL);
    (void)auth_can_publish(c, CHANNEL);
}

/* Both entry points share every check up to the claims (jwt.c), so the
 * subscription path is only worth its cost for a token that verified; an
 * RS or ES verification costs a PEM parse in libjwt each time. */
static void verify(const auth_keyring *kr, const char *tok, size_t len, int forged)
{
    auth_claims claims;
    int64_t exp = -1;
    int rc = auth_verify_connection(kr, tok, len, NOW, &claims);
    int rc_sub;

    CHECK(strcmp(auth_strerror(rc), "unknown error") != 0);
    CHECK(!forged || rc != AUTH_OK);
    if (rc != AUTH_OK) {
        /* On error the claims are left zeroed: nothing to free or misuse. */
        CHECK(!claims.sub && !claims.channels && !claims.publish);
        CHECK(claims.n_channels == 0 && claims.n_publish == 0);
        return;
    }
    check_claims(kr, &claims);
    /* A subscription token is a connection token with two more checks. */
    rc_sub = auth_verify_subscription(kr, tok, len, NOW, SUB, CHANNEL, &exp);
    CHECK(strcmp(auth_strerror(rc_sub), "unknown error") != 0);
    if (strcmp(claims.sub, SUB) != 0)
        CHECK(rc_sub == AUTH_EWRONGSUB);
    if (rc_sub == AUTH_OK)
        CHECK(strcmp(claims.sub, SUB) == 0 && exp == claims.exp);
    auth_claims_free(&claims);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int mode, variant;
    char *tok;
    size_t len;

    if (size == 0)
        return 0;
    mode = data[0] & 3;
    variant = (data[0] >> 2) & 3;
    if (mode == MODE_RAW) {
        /* Not NUL terminated, as the gateway passes it. */
        tok = malloc(size - 1 ? size - 1 : 1);
        CHECK(tok != NULL);
        memcpy(tok, data + 1, size - 1);
        len = size - 1;
    } else {
        tok = build_token(mode, variant, data + 1, size - 1, &len);
    }
    verify(data[0] & 16 ? G.policy : G.plain, tok, len,
           mode == MODE_FORGED || (mode == MODE_ASYM && variant == 3));
    free(tok);
    return 0;
}
