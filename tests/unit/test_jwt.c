/*
 * Unit tests of token verification (auth/src/jwt.c, auth/src/keys.c).
 *
 * Each test states what a client would see: its token accepted with the
 * claims it carried, or refused with the documented reason. The attack
 * corpus builds hostile tokens by hand (raw_token) so that the header and
 * payload bytes are exactly what an attacker would send; honest RS/ES/HS
 * tokens come from libjwt with keys generated at start-up, so no key material
 * is stored in the repository.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "auth/auth.h"

#define NOW ((int64_t)1700000000)
#define LATER (NOW + 600)
#define HDR_HS256 "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

static const char SECRET[] = "wsgw-unit-test-secret-0123456789abcdef";
#define SECRET_LEN (sizeof(SECRET) - 1)
static const char OTHER_SECRET[] = "another-secret-that-is-long-enough-0123456789";
#define OTHER_LEN (sizeof(OTHER_SECRET) - 1)

/* PEM texts of the keys generated once for the whole group. */
static struct {
    char *rsa_pub, *rsa_priv;     /* RSA 2048, the configured key */
    char *rsa2_priv;              /* RSA 2048, an attacker's key */
    char *ec_pub, *ec_priv;       /* P-256 */
    char *ec2_priv;               /* P-256, an attacker's key */
    char *ec384_pub, *ec384_priv; /* P-384 */
    char *k1_pub;                 /* secp256k1: no JWS algorithm of ours */
    char *ed_pub;                 /* Ed25519: not supported by libjwt 1.10 */
    char *rsa1024_pub;            /* too small */
} K;

/* ---- helpers ---------------------------------------------------------- */

static char *strf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&s, fmt, ap);
    va_end(ap);
    assert_true(n >= 0);
    return s;
}

static char *b64url(const void *data, size_t len)
{
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    int n;

    assert_non_null(out);
    n = EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    while (n > 0 && out[n - 1] == '=')
        n--;
    out[n] = '\0';
    for (int i = 0; i < n; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    return out;
}

/* header.payload.signature from JSON texts taken as they are, HMAC-SHA256
 * signed with `key`, or with an empty signature when key is NULL. */
static char *raw_token(const char *header, const char *payload, const void *key, size_t key_len)
{
    char *h = b64url(header, strlen(header)), *p = b64url(payload, strlen(payload));
    char *input = strf("%s.%s", h, p), *tok, *sig;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;

    if (key) {
        assert_non_null(HMAC(EVP_sha256(), key, (int)key_len, (unsigned char *)input, strlen(input),
                             mac, &mac_len));
        sig = b64url(mac, mac_len);
        tok = strf("%s.%s", input, sig);
        free(sig);
    } else {
        tok = strf("%s.", input);
    }
    free(h);
    free(p);
    free(input);
    return tok;
}

/* RSA-PSS over SHA-`bits` of input with salt length `salt` (-1: the
 * hash's length, as RFC 7518 3.5 asks), made with OpenSSL as an issuer's
 * library would (libjwt 1.10 cannot sign PS* itself). Fills out (1024
 * bytes at least) and returns the signature's length. */
static size_t pss_sign(const char *input, int bits, int salt, const char *priv_pem,
                       unsigned char *out)
{
    const EVP_MD *md = bits == 256 ? EVP_sha256() : bits == 384 ? EVP_sha384() : EVP_sha512();
    BIO *bio = BIO_new_mem_buf(priv_pem, -1);
    EVP_PKEY *pk = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    size_t out_len = 1024;

    assert_non_null(pk);
    assert_non_null(ctx);
    assert_int_equal(EVP_DigestSignInit(ctx, &pctx, md, NULL, pk), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, salt), 1);
    assert_int_equal(EVP_DigestSign(ctx, out, &out_len, (unsigned char *)input, strlen(input)), 1);
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pk);
    BIO_free(bio);
    return out_len;
}

/* header.payload of a token whose header names `alg`. */
static char *signing_input(const char *alg, const char *claims)
{
    char *header = strf("{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg);
    char *h = b64url(header, strlen(header)), *p = b64url(claims, strlen(claims));
    char *input = strf("%s.%s", h, p);

    free(header);
    free(h);
    free(p);
    return input;
}

/* A token whose header names `alg`, signed as pss_sign does. */
static char *pss_token(const char *alg, int bits, int salt, const char *priv_pem,
                       const char *claims)
{
    char *input = signing_input(alg, claims), *sig, *tok;
    unsigned char out[1024];
    size_t n = pss_sign(input, bits, salt, priv_pem, out);

    sig = b64url(out, n);
    tok = strf("%s.%s", input, sig);
    free(input);
    free(sig);
    return tok;
}

/* An HS256 token over a printf-formatted payload, signed with SECRET. */
static char *hsf(const char *fmt, ...)
{
    va_list ap;
    char *payload = NULL, *tok;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&payload, fmt, ap);
    va_end(ap);
    assert_true(n >= 0);
    tok = raw_token(HDR_HS256, payload, SECRET, SECRET_LEN);
    free(payload);
    return tok;
}

/* A token signed by libjwt itself, as an honest issuer would. */
static char *lib_token(jwt_alg_t alg, const void *key, size_t key_len, const char *kid,
                       const char *claims)
{
    jwt_t *jwt = NULL;
    char *tok;

    assert_int_equal(jwt_new(&jwt), 0);
    assert_int_equal(jwt_add_grants_json(jwt, claims), 0);
    if (kid)
        assert_int_equal(jwt_add_header(jwt, "kid", kid), 0);
    assert_int_equal(jwt_set_alg(jwt, alg, key, (int)key_len), 0);
    tok = jwt_encode_str(jwt);
    assert_non_null(tok);
    jwt_free(jwt);
    return tok;
}

static char *pem_token(jwt_alg_t alg, const char *priv_pem, const char *kid, const char *claims)
{
    return lib_token(alg, priv_pem, strlen(priv_pem), kid, claims);
}

#define GOOD_CLAIMS "{\"sub\":\"alice\",\"exp\":1700000600}"

/* Verifies a connection token, checks that a refusal leaves the claims
 * zeroed, frees the token and returns the code. */
static int vf(const auth_keyring *kr, char *tok)
{
    static const auth_claims zero;
    auth_claims c;
    int rc;

    memset(&c, 0xa5, sizeof(c));
    rc = auth_verify_connection(kr, tok, strlen(tok), NOW, &c);
    if (rc != AUTH_OK)
        assert_memory_equal(&c, &zero, sizeof(c));
    auth_claims_free(&c);
    free(tok);
    return rc;
}

static auth_keyring *ring_hmac(void)
{
    auth_keyring *kr = auth_keyring_new();

    assert_non_null(kr);
    assert_int_equal(auth_keyring_add_hmac(kr, NULL, (const unsigned char *)SECRET, SECRET_LEN),
                     AUTH_OK);
    return kr;
}

static auth_keyring *ring_pem(const char *kid, const char *pem)
{
    auth_keyring *kr = auth_keyring_new();

    assert_non_null(kr);
    assert_int_equal(auth_keyring_add_pem(kr, kid, pem, strlen(pem)), AUTH_OK);
    return kr;
}

static char *pem_of(EVP_PKEY *pk, int private_key)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data, *copy;
    long n;

    assert_non_null(bio);
    if (private_key)
        assert_int_equal(PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL, NULL), 1);
    else
        assert_int_equal(PEM_write_bio_PUBKEY(bio, pk), 1);
    n = BIO_get_mem_data(bio, &data);
    copy = strndup(data, (size_t)n);
    assert_non_null(copy);
    BIO_free(bio);
    return copy;
}

static void keygen(EVP_PKEY *pk, char **pub, char **priv)
{
    assert_non_null(pk);
    if (pub)
        *pub = pem_of(pk, 0);
    if (priv)
        *priv = pem_of(pk, 1);
    EVP_PKEY_free(pk);
}

static int group_setup(void **state)
{
    keygen(EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048), &K.rsa_pub, &K.rsa_priv);
    keygen(EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048), NULL, &K.rsa2_priv);
    keygen(EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024), &K.rsa1024_pub, NULL);
    keygen(EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"), &K.ec_pub, &K.ec_priv);
    keygen(EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"), NULL, &K.ec2_priv);
    keygen(EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384"), &K.ec384_pub, &K.ec384_priv);
    keygen(EVP_PKEY_Q_keygen(NULL, NULL, "EC", "secp256k1"), &K.k1_pub, NULL);
    keygen(EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"), &K.ed_pub, NULL);
    return 0;
}

static int group_teardown(void **state)
{
    char **all[] = {&K.rsa_pub, &K.rsa_priv, &K.rsa2_priv,  &K.ec_pub,
                    &K.ec_priv, &K.ec2_priv, &K.ec384_pub,  &K.ec384_priv,
                    &K.k1_pub,  &K.ed_pub,   &K.rsa1024_pub};

    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        free(*all[i]);
        *all[i] = NULL;
    }
    return 0;
}

/* ---- keyring configuration ------------------------------------------- */

static void test_weak_hmac_key_refused(void **state)
{
    auth_keyring *kr = auth_keyring_new();
    const unsigned char *s = (const unsigned char *)SECRET;

    assert_int_equal(auth_keyring_add_hmac(kr, NULL, s, AUTH_MIN_HMAC_SECRET - 1), AUTH_EWEAKKEY);
    assert_int_equal(auth_keyring_add_hmac(kr, NULL, s, 0), AUTH_EWEAKKEY);
    assert_int_equal(auth_keyring_count(kr), 0);
    assert_int_equal(auth_keyring_add_hmac(kr, NULL, s, AUTH_MIN_HMAC_SECRET), AUTH_OK);
    assert_int_equal(auth_keyring_add_hmac(kr, NULL, NULL, 64), AUTH_EKEY);
    assert_int_equal(auth_keyring_count(kr), 1);
    auth_keyring_free(kr);
}

static void test_duplicate_kid_refused(void **state)
{
    auth_keyring *kr = auth_keyring_new();
    const unsigned char *s = (const unsigned char *)SECRET;

    assert_int_equal(auth_keyring_add_hmac(kr, "k1", s, SECRET_LEN), AUTH_OK);
    assert_int_equal(auth_keyring_add_hmac(kr, "k1", s, SECRET_LEN), AUTH_EDUPKID);
    assert_int_equal(auth_keyring_add_pem(kr, "k1", K.rsa_pub, strlen(K.rsa_pub)), AUTH_EDUPKID);
    /* Keys without id never clash. */
    assert_int_equal(auth_keyring_add_hmac(kr, NULL, s, SECRET_LEN), AUTH_OK);
    assert_int_equal(auth_keyring_add_hmac(kr, NULL, s, SECRET_LEN), AUTH_OK);
    assert_int_equal(auth_keyring_count(kr), 3);
    auth_keyring_free(kr);
}

static int add_pem(auth_keyring *kr, const char *pem)
{
    return auth_keyring_add_pem(kr, NULL, pem, strlen(pem));
}

static void test_pem_key_types(void **state)
{
    auth_keyring *kr = auth_keyring_new();

    assert_int_equal(add_pem(kr, K.rsa_pub), AUTH_OK);
    assert_int_equal(add_pem(kr, K.ec_pub), AUTH_OK);
    assert_int_equal(add_pem(kr, K.ec384_pub), AUTH_OK);
    assert_int_equal(auth_keyring_count(kr), 3);
    auth_keyring_free(kr);
}

static void test_non_key_pem_refused(void **state)
{
    auth_keyring *kr = auth_keyring_new();
    const char *cert = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n"
                       "-----END CERTIFICATE-----\n";

    /* A private key is not a verification key, even though it holds one. */
    assert_int_equal(add_pem(kr, K.rsa_priv), AUTH_EKEY);
    assert_int_equal(add_pem(kr, K.ec_priv), AUTH_EKEY);
    assert_int_equal(add_pem(kr, cert), AUTH_EKEY);
    assert_int_equal(add_pem(kr, "this is not a PEM at all"), AUTH_EKEY);
    assert_int_equal(add_pem(kr, SECRET), AUTH_EKEY);
    assert_int_equal(auth_keyring_add_pem(kr, NULL, K.rsa_pub, 0), AUTH_EKEY);
    assert_int_equal(auth_keyring_add_pem(kr, NULL, K.rsa_pub, 100), AUTH_EKEY); /* cut */
    assert_int_equal(add_pem(kr, K.ed_pub), AUTH_EKEY);
    assert_int_equal(add_pem(kr, K.k1_pub), AUTH_EKEY);
    assert_int_equal(add_pem(kr, K.rsa1024_pub), AUTH_EKEY); /* < 2048 bits */
    assert_int_equal(auth_keyring_count(kr), 0);
    auth_keyring_free(kr);
}

static void test_no_key_configured(void **state)
{
    auth_keyring *kr = auth_keyring_new();

    assert_int_equal(vf(kr, hsf(GOOD_CLAIMS)), AUTH_ENOKEY);
    assert_int_equal(vf(NULL, hsf(GOOD_CLAIMS)), AUTH_ENOKEY);
    auth_keyring_free(kr);
}

static void test_strerror(void **state)
{
    assert_string_equal(auth_strerror(AUTH_OK), "ok");
    assert_string_equal(auth_strerror(AUTH_EMALFORMED), "invalid token");
    assert_string_equal(auth_strerror(AUTH_ETOOLONG), "token too long");
    assert_string_equal(auth_strerror(AUTH_ESIGNATURE), "invalid signature");
    assert_string_equal(auth_strerror(AUTH_EALG), "algorithm not allowed");
    assert_string_equal(auth_strerror(AUTH_EUNKNOWNKID), "unknown key id");
    assert_string_equal(auth_strerror(AUTH_EEXPIRED), "token expired");
    assert_string_equal(auth_strerror(AUTH_ENOEXP), "missing exp");
    assert_string_equal(auth_strerror(AUTH_ENOTYET), "token not yet valid");
    assert_string_equal(auth_strerror(AUTH_EISSUER), "wrong issuer");
    assert_string_equal(auth_strerror(AUTH_EAUDIENCE), "wrong audience");
    assert_string_equal(auth_strerror(AUTH_ESUB), "invalid sub");
    assert_string_equal(auth_strerror(AUTH_ECLAIMS), "invalid claims");
    assert_string_equal(auth_strerror(AUTH_EWEAKKEY), "hmac secret too short");
    assert_string_equal(auth_strerror(AUTH_EKEY), "invalid key");
    assert_string_equal(auth_strerror(AUTH_ENOKEY), "no key configured");
    assert_string_equal(auth_strerror(AUTH_ENOMEM), "out of memory");
    assert_string_equal(auth_strerror(AUTH_EWRONGSUB), "sub mismatch");
    assert_string_equal(auth_strerror(AUTH_EWRONGCHANNEL), "channel mismatch");
    assert_string_equal(auth_strerror(AUTH_EDUPKID), "duplicate key id");
    assert_string_equal(auth_strerror(AUTH_EPRIVATE), "private channel");
    assert_string_equal(auth_strerror(-21), "unknown error");
    assert_string_equal(auth_strerror(7), "unknown error");
}

/* ---- valid tokens ------------------------------------------------------ */

static void test_hs256_valid_claims(void **state)
{
    auth_keyring *kr = ring_hmac();
    char *tok = hsf("{\"sub\":\"alice@example.com\",\"exp\":%lld,\"iat\":%lld,\"nbf\":%lld,"
                    "\"channels\":[\"chat:*\",\"job:42\"],\"publish\":[\"chat:lobby\"],"
                    "\"extra\":{\"ignored\":true}}",
                    (long long)LATER, (long long)NOW, (long long)NOW);
    auth_claims c;

    assert_int_equal(auth_verify_connection(kr, tok, strlen(tok), NOW, &c), AUTH_OK);
    assert_string_equal(c.sub, "alice@example.com");
    assert_int_equal(c.exp, LATER);
    assert_int_equal(c.n_channels, 2);
    assert_string_equal(c.channels[0], "chat:*");
    assert_string_equal(c.channels[1], "job:42");
    assert_int_equal(c.n_publish, 1);
    assert_string_equal(c.publish[0], "chat:lobby");
    auth_claims_free(&c);
    assert_null(c.channels);
    assert_int_equal(c.n_channels, 0);
    free(tok);
    auth_keyring_free(kr);
}

static void test_no_patterns_means_none(void **state)
{
    auth_keyring *kr = ring_hmac();
    char *tok = hsf("{\"sub\":\"bob\",\"exp\":%lld,\"channels\":[]}", (long long)LATER);
    auth_claims c;

    assert_int_equal(auth_verify_connection(kr, tok, strlen(tok), NOW, &c), AUTH_OK);
    assert_string_equal(c.sub, "bob");
    assert_int_equal(c.n_channels, 0);
    assert_null(c.channels);
    assert_int_equal(c.n_publish, 0);
    assert_null(c.publish);
    auth_claims_free(&c);
    free(tok);
    auth_keyring_free(kr);
}

static void test_hs384_hs512_valid(void **state)
{
    auth_keyring *kr = ring_hmac();

    assert_int_equal(vf(kr, lib_token(JWT_ALG_HS384, SECRET, SECRET_LEN, NULL, GOOD_CLAIMS)),
                     AUTH_OK);
    assert_int_equal(vf(kr, lib_token(JWT_ALG_HS512, SECRET, SECRET_LEN, NULL, GOOD_CLAIMS)),
                     AUTH_OK);
    auth_keyring_free(kr);
}

static void test_rs256_valid(void **state)
{
    auth_keyring *kr = ring_pem(NULL, K.rsa_pub);
    char *tok = pem_token(JWT_ALG_RS256, K.rsa_priv, NULL,
                          "{\"sub\":\"carol\",\"exp\":1700000600,\"channels\":[\"job:*\"]}");
    auth_claims c;

    assert_int_equal(auth_verify_connection(kr, tok, strlen(tok), NOW, &c), AUTH_OK);
    assert_string_equal(c.sub, "carol");
    assert_int_equal(c.n_channels, 1);
    assert_string_equal(c.channels[0], "job:*");
    auth_claims_free(&c);
    free(tok);
    assert_int_equal(vf(kr, pem_token(JWT_ALG_RS512, K.rsa_priv, NULL, GOOD_CLAIMS)), AUTH_OK);
    auth_keyring_free(kr);
}

static void test_es256_valid(void **state)
{
    auth_keyring *kr = ring_pem(NULL, K.ec_pub);

    assert_int_equal(vf(kr, pem_token(JWT_ALG_ES256, K.ec_priv, NULL, GOOD_CLAIMS)), AUTH_OK);
    auth_keyring_free(kr);
    kr = ring_pem(NULL, K.ec384_pub);
    assert_int_equal(vf(kr, pem_token(JWT_ALG_ES384, K.ec384_priv, NULL, GOOD_CLAIMS)), AUTH_OK);
    auth_keyring_free(kr);
}

/* RSA keys verify PS256/384/512 too (protocol-v1.md: an RSA key accepts its
 * own RS and PS algorithms), with RFC
 * 7518's parameters pinned: salt as long as the hash, MGF1 of the same. */
static void test_ps256_384_512_valid(void **state)
{
    auth_keyring *kr = ring_pem(NULL, K.rsa_pub);
    char *tok = pss_token("PS256", 256, RSA_PSS_SALTLEN_DIGEST, K.rsa_priv,
                          "{\"sub\":\"dave\",\"exp\":1700000600}");
    auth_claims c;

    assert_int_equal(auth_verify_connection(kr, tok, strlen(tok), NOW, &c), AUTH_OK);
    assert_string_equal(c.sub, "dave");
    auth_claims_free(&c);
    free(tok);
    assert_int_equal(vf(kr, pss_token("PS384", 384, RSA_PSS_SALTLEN_DIGEST, K.rsa_priv,
                                      GOOD_CLAIMS)),
                     AUTH_OK);
    assert_int_equal(vf(kr, pss_token("PS512", 512, RSA_PSS_SALTLEN_DIGEST, K.rsa_priv,
                                      GOOD_CLAIMS)),
                     AUTH_OK);
    /* The claims are still checked after the signature. */
    assert_int_equal(vf(kr, pss_token("PS256", 256, RSA_PSS_SALTLEN_DIGEST, K.rsa_priv,
                                      "{\"sub\":\"alice\",\"exp\":1699999000}")),
                     AUTH_EEXPIRED);
    auth_keyring_free(kr);
}

static void test_pss_refusals(void **state)
{
    auth_keyring *rsa = ring_pem(NULL, K.rsa_pub);
    auth_keyring *ec = ring_pem(NULL, K.ec_pub);
    auth_keyring *hmac = ring_hmac();
    char *tok, *dot;

    /* Another key, another hash than the header says, another salt. */
    assert_int_equal(vf(rsa, pss_token("PS256", 256, RSA_PSS_SALTLEN_DIGEST, K.rsa2_priv,
                                       GOOD_CLAIMS)),
                     AUTH_ESIGNATURE);
    assert_int_equal(vf(rsa, pss_token("PS256", 384, RSA_PSS_SALTLEN_DIGEST, K.rsa_priv,
                                       GOOD_CLAIMS)),
                     AUTH_ESIGNATURE);
    assert_int_equal(vf(rsa, pss_token("PS256", 256, 0, K.rsa_priv, GOOD_CLAIMS)),
                     AUTH_ESIGNATURE);
    /* PKCS#1 v1.5 under a PS name, and PSS under an RS name. */
    tok = pem_token(JWT_ALG_RS256, K.rsa_priv, NULL, GOOD_CLAIMS);
    dot = strchr(tok, '.');
    {
        static const char ps_header[] = "{\"alg\":\"PS256\",\"typ\":\"JWT\"}";
        char *hb = b64url(ps_header, strlen(ps_header));
        assert_int_equal(vf(rsa, strf("%s%s", hb, dot)), AUTH_ESIGNATURE);
        free(hb);
    }
    free(tok);
    assert_int_equal(vf(rsa, pss_token("RS256", 256, RSA_PSS_SALTLEN_DIGEST, K.rsa_priv,
                                       GOOD_CLAIMS)),
                     AUTH_ESIGNATURE);
    /* Only RSA keys take PS*; a tampered payload fails. */
    assert_int_equal(vf(ec, pss_token("PS256", 256, RSA_PSS_SALTLEN_DIGEST, K.rsa_priv,
                                      GOOD_CLAIMS)),
                     AUTH_EALG);
    assert_int_equal(vf(hmac, pss_token("PS256", 256, RSA_PSS_SALTLEN_DIGEST, K.rsa_priv,
                                        GOOD_CLAIMS)),
                     AUTH_EALG);
    /* Another payload under a good signature. */
    tok = pss_token("PS256", 256, RSA_PSS_SALTLEN_DIGEST, K.rsa_priv, GOOD_CLAIMS);
    dot = strchr(tok, '.');
    {
        static const char other[] = "{\"sub\":\"mallory\",\"exp\":1700000600}";
        char *pb = b64url(other, strlen(other));
        *dot = '\0';
        assert_int_equal(vf(rsa, strf("%s.%s%s", tok, pb, strchr(dot + 1, '.'))),
                         AUTH_ESIGNATURE);
        free(pb);
    }
    free(tok);
    auth_keyring_free(rsa);
    auth_keyring_free(ec);
    auth_keyring_free(hmac);
}

/* One token, one spelling: a PSS signature must be exactly as long as the
 * modulus. PSS signing is randomized, so about one signature in 256 starts
 * with a zero byte; dropped, OpenSSL alone would still verify it. */
static void test_pss_signature_length_exact(void **state)
{
    auth_keyring *kr = ring_pem(NULL, K.rsa_pub);
    char *input = signing_input("PS256", GOOD_CLAIMS), *sig;
    unsigned char out[1024];
    size_t n = 0;
    int tries;

    for (tries = 0; tries < 20000; tries++) {
        n = pss_sign(input, 256, RSA_PSS_SALTLEN_DIGEST, K.rsa_priv, out);
        if (out[0] == 0)
            break;
    }
    assert_true(tries < 20000);
    assert_int_equal(n, 256);
    sig = b64url(out, n);
    assert_int_equal(vf(kr, strf("%s.%s", input, sig)), AUTH_OK);
    free(sig);
    sig = b64url(out + 1, n - 1);
    assert_int_equal(vf(kr, strf("%s.%s", input, sig)), AUTH_ESIGNATURE);
    free(sig);
    free(input);
    auth_keyring_free(kr);
}

static void test_sign_hs256_roundtrip(void **state)
{
    auth_keyring *kr = auth_keyring_new();
    const unsigned char *s = (const unsigned char *)SECRET;
    char *tok = NULL;

    assert_int_equal(auth_keyring_add_hmac(kr, "k1", s, SECRET_LEN), AUTH_OK);
    assert_int_equal(auth_sign_hs256(s, SECRET_LEN, "k1", GOOD_CLAIMS, &tok), AUTH_OK);
    assert_non_null(tok);
    assert_int_equal(vf(kr, tok), AUTH_OK);
    assert_int_equal(auth_sign_hs256(s, SECRET_LEN, NULL, GOOD_CLAIMS, &tok), AUTH_OK);
    assert_int_equal(vf(kr, tok), AUTH_OK);
    /* The kid really is in the header: a wrong one is looked up and missed. */
    assert_int_equal(auth_sign_hs256(s, SECRET_LEN, "k2", GOOD_CLAIMS, &tok), AUTH_OK);
    assert_int_equal(vf(kr, tok), AUTH_EUNKNOWNKID);

    tok = (char *)"untouched";
    assert_int_equal(auth_sign_hs256(s, 31, NULL, GOOD_CLAIMS, &tok), AUTH_EWEAKKEY);
    assert_null(tok);
    assert_int_equal(auth_sign_hs256(s, SECRET_LEN, NULL, "[1,2]", &tok), AUTH_ECLAIMS);
    assert_int_equal(auth_sign_hs256(s, SECRET_LEN, NULL, "{not json", &tok), AUTH_ECLAIMS);
    assert_int_equal(auth_sign_hs256(s, SECRET_LEN, NULL, NULL, &tok), AUTH_ECLAIMS);
    assert_null(tok);
    auth_keyring_free(kr);
}

static void test_token_not_nul_terminated(void **state)
{
    auth_keyring *kr = ring_hmac();
    char *tok = hsf(GOOD_CLAIMS);
    size_t len = strlen(tok);
    char *exact = malloc(len); /* no room for a NUL: ASan sees any over-read */
    char *trailing = strf("%sGARBAGE.with.dots", tok);
    auth_claims c;

    memcpy(exact, tok, len);
    assert_int_equal(auth_verify_connection(kr, exact, len, NOW, &c), AUTH_OK);
    assert_string_equal(c.sub, "alice");
    auth_claims_free(&c);
    assert_int_equal(auth_verify_connection(kr, trailing, len, NOW, &c), AUTH_OK);
    auth_claims_free(&c);
    free(exact);
    free(trailing);
    free(tok);
    auth_keyring_free(kr);
}

/* ---- attack corpus: algorithms and keys -------------------------------- */

static void test_alg_none_refused(void **state)
{
    auth_keyring *kr = ring_hmac();
    const char *hdrs[] = {"{\"alg\":\"none\",\"typ\":\"JWT\"}", "{\"alg\":\"none\"}",
                          "{\"alg\":\"None\"}", "{\"alg\":\"NONE\"}", "{\"alg\":\"\"}"};

    for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
        /* Unsigned, as the attack is usually sent ... */
        assert_int_equal(vf(kr, raw_token(hdrs[i], GOOD_CLAIMS, NULL, 0)), AUTH_EALG);
        /* ... and with a signature that is valid for the configured key. */
        assert_int_equal(vf(kr, raw_token(hdrs[i], GOOD_CLAIMS, SECRET, SECRET_LEN)), AUTH_EALG);
    }
    auth_keyring_free(kr);
}

static void test_alg_spelling_and_unknown(void **state)
{
    auth_keyring *kr = ring_hmac();

    /* libjwt matches alg names case-insensitively; RFC 7515 does not. */
    assert_int_equal(vf(kr, raw_token("{\"alg\":\"hs256\"}", GOOD_CLAIMS, SECRET, SECRET_LEN)),
                     AUTH_EALG);
    assert_int_equal(vf(kr, raw_token("{\"alg\":\"PS256\"}", GOOD_CLAIMS, SECRET, SECRET_LEN)),
                     AUTH_EALG);
    assert_int_equal(vf(kr, raw_token("{\"alg\":\"HS256 \"}", GOOD_CLAIMS, SECRET, SECRET_LEN)),
                     AUTH_EALG);
    assert_int_equal(vf(kr, raw_token("{\"typ\":\"JWT\"}", GOOD_CLAIMS, SECRET, SECRET_LEN)),
                     AUTH_EMALFORMED);
    assert_int_equal(vf(kr, raw_token("{\"alg\":256}", GOOD_CLAIMS, SECRET, SECRET_LEN)),
                     AUTH_EMALFORMED);
    assert_int_equal(vf(kr, raw_token("{\"alg\":null}", GOOD_CLAIMS, SECRET, SECRET_LEN)),
                     AUTH_EMALFORMED);
    auth_keyring_free(kr);
}

/* The known confusion attack: HS256 with the RSA public key's PEM text as the
 * HMAC secret. The attacker knows the PEM, so the MAC is "valid". */
static void test_hs256_with_rsa_pem_refused(void **state)
{
    const char *pem = K.rsa_pub;
    char *tok = raw_token(HDR_HS256, GOOD_CLAIMS, pem, strlen(pem));
    auth_keyring *kr = ring_pem(NULL, pem);
    auth_keyring *kr_kid = ring_pem("rsa", pem);
    auth_keyring *mixed = ring_hmac();
    char *tok_kid = raw_token("{\"alg\":\"HS256\",\"kid\":\"rsa\"}", GOOD_CLAIMS, pem, strlen(pem));
    jwt_t *jwt = NULL;

    /* The token is a real attack: bare libjwt accepts it with the PEM. */
    assert_int_equal(jwt_decode(&jwt, tok, (const unsigned char *)pem, (int)strlen(pem)), 0);
    jwt_free(jwt);

    assert_int_equal(vf(kr, strdup(tok)), AUTH_EALG);
    assert_int_equal(vf(kr_kid, strdup(tok_kid)), AUTH_EALG);
    /* With an HMAC key beside the RSA key only the HMAC key is tried. */
    assert_int_equal(add_pem(mixed, pem), AUTH_OK);
    assert_int_equal(vf(mixed, strdup(tok)), AUTH_ESIGNATURE);
    /* Same with libjwt as the forger, and with HS512. */
    assert_int_equal(vf(kr, lib_token(JWT_ALG_HS256, pem, strlen(pem), NULL, GOOD_CLAIMS)),
                     AUTH_EALG);
    assert_int_equal(vf(kr, lib_token(JWT_ALG_HS512, pem, strlen(pem), NULL, GOOD_CLAIMS)),
                     AUTH_EALG);
    free(tok);
    free(tok_kid);
    auth_keyring_free(kr);
    auth_keyring_free(kr_kid);
    auth_keyring_free(mixed);
}

static void test_alg_outside_key_family(void **state)
{
    auth_keyring *rsa = ring_pem(NULL, K.rsa_pub);
    auth_keyring *ec = ring_pem(NULL, K.ec_pub);
    auth_keyring *ec384 = ring_pem(NULL, K.ec384_pub);
    auth_keyring *hmac = ring_hmac();

    assert_int_equal(vf(ec, pem_token(JWT_ALG_RS256, K.rsa_priv, NULL, GOOD_CLAIMS)), AUTH_EALG);
    assert_int_equal(vf(rsa, pem_token(JWT_ALG_ES256, K.ec_priv, NULL, GOOD_CLAIMS)), AUTH_EALG);
    assert_int_equal(vf(hmac, pem_token(JWT_ALG_RS256, K.rsa_priv, NULL, GOOD_CLAIMS)), AUTH_EALG);
    assert_int_equal(vf(rsa, hsf(GOOD_CLAIMS)), AUTH_EALG);
    /* A P-384 key verifies ES384 only (RFC 7518 pins curve to alg). */
    assert_int_equal(vf(ec384, pem_token(JWT_ALG_ES256, K.ec384_priv, NULL, GOOD_CLAIMS)),
                     AUTH_EALG);
    assert_int_equal(vf(ec, pem_token(JWT_ALG_ES384, K.ec_priv, NULL, GOOD_CLAIMS)), AUTH_EALG);
    auth_keyring_free(rsa);
    auth_keyring_free(ec);
    auth_keyring_free(ec384);
    auth_keyring_free(hmac);
}

/* Replaces the payload segment of `tok` with another one, keeping the
 * header and the signature. */
static char *swap_payload(const char *tok, const char *payload)
{
    const char *dot1 = strchr(tok, '.'), *dot2 = strrchr(tok, '.');
    char *p = b64url(payload, strlen(payload));
    char *out = strf("%.*s.%s%s", (int)(dot1 - tok), tok, p, dot2);

    free(p);
    return out;
}

static void test_wrong_key_refused(void **state)
{
    auth_keyring *hmac = ring_hmac();
    auth_keyring *rsa = ring_pem(NULL, K.rsa_pub);
    auth_keyring *ec = ring_pem(NULL, K.ec_pub);
    char *tok = hsf(GOOD_CLAIMS);

    assert_int_equal(vf(hmac, raw_token(HDR_HS256, GOOD_CLAIMS, OTHER_SECRET, OTHER_LEN)),
                     AUTH_ESIGNATURE);
    assert_int_equal(vf(rsa, pem_token(JWT_ALG_RS256, K.rsa2_priv, NULL, GOOD_CLAIMS)),
                     AUTH_ESIGNATURE);
    assert_int_equal(vf(ec, pem_token(JWT_ALG_ES256, K.ec2_priv, NULL, GOOD_CLAIMS)),
                     AUTH_ESIGNATURE);
    /* A signed token whose payload was changed afterwards. */
    assert_int_equal(vf(hmac, swap_payload(tok, "{\"sub\":\"admin\",\"exp\":1700000600}")),
                     AUTH_ESIGNATURE);
    free(tok);
    tok = pem_token(JWT_ALG_RS256, K.rsa_priv, NULL, GOOD_CLAIMS);
    assert_int_equal(vf(rsa, swap_payload(tok, "{\"sub\":\"admin\",\"exp\":1700000600}")),
                     AUTH_ESIGNATURE);
    free(tok);
    auth_keyring_free(hmac);
    auth_keyring_free(rsa);
    auth_keyring_free(ec);
}

static char *kid_token(const char *kid, const char *secret)
{
    char *hdr = strf("{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", kid);
    char *tok = raw_token(hdr, GOOD_CLAIMS, secret, strlen(secret));

    free(hdr);
    return tok;
}

static void test_kid_selects_among_hmac_keys(void **state)
{
    static const char *secrets[] = {"first-secret-of-at-least-32-bytes!!",
                                    "second-secret-of-at-least-32-bytes!",
                                    "third-secret-of-at-least-32-bytes!!"};
    static const char *kids[] = {"k1", "k2", "k3"};
    auth_keyring *kr = auth_keyring_new();

    for (int i = 0; i < 3; i++)
        assert_int_equal(auth_keyring_add_hmac(kr, kids[i], (const unsigned char *)secrets[i],
                                               strlen(secrets[i])),
                         AUTH_OK);
    for (int i = 0; i < 3; i++)
        assert_int_equal(vf(kr, kid_token(kids[i], secrets[i])), AUTH_OK);
    /* The kid decides: the right secret under another kid fails. */
    assert_int_equal(vf(kr, kid_token("k1", secrets[1])), AUTH_ESIGNATURE);
    assert_int_equal(vf(kr, kid_token("k9", secrets[1])), AUTH_EUNKNOWNKID);
    assert_int_equal(vf(kr, kid_token("", secrets[1])), AUTH_EUNKNOWNKID);
    /* Without kid every HMAC key is tried. */
    assert_int_equal(vf(kr, raw_token(HDR_HS256, GOOD_CLAIMS, secrets[2], strlen(secrets[2]))),
                     AUTH_OK);
    assert_int_equal(vf(kr, raw_token(HDR_HS256, GOOD_CLAIMS, OTHER_SECRET, OTHER_LEN)),
                     AUTH_ESIGNATURE);
    assert_int_equal(vf(kr, raw_token("{\"alg\":\"HS256\",\"kid\":2}", GOOD_CLAIMS, secrets[1],
                                      strlen(secrets[1]))),
                     AUTH_EMALFORMED);
    auth_keyring_free(kr);
}

static void test_kid_across_key_families(void **state)
{
    auth_keyring *kr = auth_keyring_new();

    assert_int_equal(auth_keyring_add_hmac(kr, "h", (const unsigned char *)SECRET, SECRET_LEN),
                     AUTH_OK);
    assert_int_equal(auth_keyring_add_pem(kr, "r", K.rsa_pub, strlen(K.rsa_pub)), AUTH_OK);
    assert_int_equal(auth_keyring_add_pem(kr, "e", K.ec_pub, strlen(K.ec_pub)), AUTH_OK);
    assert_int_equal(vf(kr, pem_token(JWT_ALG_RS256, K.rsa_priv, "r", GOOD_CLAIMS)), AUTH_OK);
    assert_int_equal(vf(kr, pem_token(JWT_ALG_ES256, K.ec_priv, "e", GOOD_CLAIMS)), AUTH_OK);
    assert_int_equal(vf(kr, pem_token(JWT_ALG_ES256, K.ec_priv, NULL, GOOD_CLAIMS)), AUTH_OK);
    assert_int_equal(vf(kr, lib_token(JWT_ALG_HS256, SECRET, SECRET_LEN, "h", GOOD_CLAIMS)),
                     AUTH_OK);
    /* A kid naming a key of another family. */
    assert_int_equal(vf(kr, pem_token(JWT_ALG_RS256, K.rsa_priv, "h", GOOD_CLAIMS)), AUTH_EALG);
    assert_int_equal(vf(kr, lib_token(JWT_ALG_HS256, SECRET, SECRET_LEN, "r", GOOD_CLAIMS)),
                     AUTH_EALG);
    auth_keyring_free(kr);
}

/* ---- attack corpus: structure ----------------------------------------- */

static void test_every_truncation_refused(void **state)
{
    auth_keyring *kr = ring_hmac();
    char *tok = hsf(GOOD_CLAIMS);
    size_t len = strlen(tok);
    auth_claims c;

    for (size_t n = 0; n < len; n++) {
        int rc = auth_verify_connection(kr, tok, n, NOW, &c);

        assert_true(rc == AUTH_EMALFORMED || rc == AUTH_ESIGNATURE);
    }
    /* Without the signature segment, and with an empty one. */
    assert_int_equal(auth_verify_connection(kr, tok, (size_t)(strrchr(tok, '.') - tok), NOW, &c),
                     AUTH_EMALFORMED);
    assert_int_equal(
        auth_verify_connection(kr, tok, (size_t)(strrchr(tok, '.') - tok) + 1, NOW, &c),
        AUTH_ESIGNATURE);
    free(tok);
    auth_keyring_free(kr);
}

static void test_wrong_number_of_parts(void **state)
{
    auth_keyring *kr = ring_hmac();
    char *tok = hsf(GOOD_CLAIMS);
    const char *dot1 = strchr(tok, '.');

    assert_int_equal(vf(kr, strf("%s.%s", tok, "AAAA")), AUTH_EMALFORMED);
    assert_int_equal(vf(kr, strf("%s.", tok)), AUTH_EMALFORMED);
    assert_int_equal(vf(kr, strf("%s..", tok)), AUTH_EMALFORMED);
    assert_int_equal(vf(kr, strf("%s", dot1)), AUTH_EMALFORMED); /* no header */
    assert_int_equal(vf(kr, strf("%.*s.%s", (int)(dot1 - tok), tok, strrchr(tok, '.'))),
                     AUTH_EMALFORMED); /* no payload */
    assert_int_equal(vf(kr, strf("%.*s", (int)(dot1 - tok), tok)), AUTH_EMALFORMED);
    assert_int_equal(vf(kr, strdup("..")), AUTH_EMALFORMED);
    assert_int_equal(vf(kr, strdup(".")), AUTH_EMALFORMED);
    assert_int_equal(vf(kr, strdup("a.b.c.d")), AUTH_EMALFORMED);
    free(tok);
    auth_keyring_free(kr);
}

static void test_empty_token(void **state)
{
    auth_keyring *kr = ring_hmac();
    auth_claims c;

    assert_int_equal(vf(kr, strdup("")), AUTH_EMALFORMED);
    assert_int_equal(auth_verify_connection(kr, NULL, 0, NOW, &c), AUTH_EMALFORMED);
    assert_int_equal(auth_verify_connection(kr, NULL, 10, NOW, &c), AUTH_EMALFORMED);
    auth_keyring_free(kr);
}

static char *padded_token(size_t pad)
{
    char *fill = malloc(pad + 1), *tok;

    memset(fill, 'x', pad);
    fill[pad] = '\0';
    tok = hsf("{\"sub\":\"alice\",\"exp\":%lld,\"channels\":[\"chat:*\"],\"pad\":\"%s\"}",
              (long long)LATER, fill);
    free(fill);
    return tok;
}

static void test_token_length_cap(void **state)
{
    auth_keyring *kr = ring_hmac();
    char *big = malloc(AUTH_MAX_TOKEN_BYTES + 1);
    char *fits = NULL, *over = NULL;
    auth_claims c;

    memset(big, 'a', AUTH_MAX_TOKEN_BYTES + 1);
    assert_int_equal(auth_verify_connection(kr, big, AUTH_MAX_TOKEN_BYTES + 1, NOW, &c),
                     AUTH_ETOOLONG);
    assert_int_equal(auth_verify_connection(kr, big, SIZE_MAX, NOW, &c), AUTH_ETOOLONG);
    free(big);
    /* The largest correctly signed token within the cap is accepted; the
     * next larger one, as correctly signed, is refused for its length. */
    for (size_t pad = 5800; !over; pad++) {
        char *tok = padded_token(pad);

        if (strlen(tok) > AUTH_MAX_TOKEN_BYTES) {
            over = tok;
        } else {
            free(fits);
            fits = tok;
        }
    }
    assert_true(strlen(fits) >= AUTH_MAX_TOKEN_BYTES - 3);
    assert_int_equal(vf(kr, fits), AUTH_OK);
    assert_int_equal(vf(kr, over), AUTH_ETOOLONG);
    auth_keyring_free(kr);
}

/* Base64url value of a character, or -1. */
static int b64val(char ch)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const char *p = strchr(alphabet, ch);

    return p && ch ? (int)(p - alphabet) : -1;
}

static void test_invalid_base64_refused(void **state)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    auth_keyring *kr = ring_hmac();
    char *tok = hsf(GOOD_CLAIMS);
    size_t len = strlen(tok), p = (size_t)(strchr(tok, '.') - tok) + 3;
    const char bad[] = {'+', '/', '=', '!', ' ', '\n', '%', (char)0xc3};
    char *t;

    for (size_t i = 0; i < sizeof(bad); i++) {
        t = strdup(tok);
        t[p] = bad[i]; /* inside the payload */
        assert_int_equal(vf(kr, t), AUTH_EMALFORMED);
        t = strdup(tok);
        t[2] = bad[i]; /* inside the header */
        assert_int_equal(vf(kr, t), AUTH_EMALFORMED);
    }
    assert_int_equal(vf(kr, strf("%s=", tok)), AUTH_EMALFORMED); /* padding */
    assert_int_equal(vf(kr, strf("eyJhbGciOiJIUzI1NiJ9.A.%s", strrchr(tok, '.') + 1)),
                     AUTH_EMALFORMED); /* a 1-character segment encodes no byte */
    /* A last character with non-zero unused bits: a second spelling of the
     * same signature, which strict decoding refuses. */
    t = strdup(tok);
    t[len - 1] = alphabet[b64val(t[len - 1]) ^ 1];
    assert_int_equal(vf(kr, t), AUTH_EMALFORMED);
    /* A NUL inside the given length, also after a complete valid token,
     * where libjwt would stop reading and accept. */
    t = strdup(tok);
    t[p] = '\0';
    {
        auth_claims c;
        char *tail = strf("%s_junk", tok);

        assert_int_equal(auth_verify_connection(kr, t, len, NOW, &c), AUTH_EMALFORMED);
        tail[len] = '\0';
        assert_int_equal(auth_verify_connection(kr, tail, len + 5, NOW, &c), AUTH_EMALFORMED);
        assert_int_equal(auth_verify_connection(kr, tail, len, NOW, &c), AUTH_OK);
        auth_claims_free(&c);
        free(tail);
    }
    free(t);
    free(tok);
    auth_keyring_free(kr);
}

static void test_header_not_json(void **state)
{
    auth_keyring *kr = ring_hmac();
    const char *bad[] = {
        "not json",
        "",
        "[\"HS256\"]",
        "\"HS256\"",
        "{\"alg\":\"HS256\"",
        "{\"alg\":\"HS256\"} trailing",
        /* Duplicate alg: libjwt would take the last one. */
        "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"alg\":\"none\"}",
        "{\"alg\":\"HS256\",\"alg\":\"HS256\"}",
        "{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}",
        "{\"alg\":\"HS256\",\"typ\":7}",
        "{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(vf(kr, raw_token(bad[i], GOOD_CLAIMS, SECRET, SECRET_LEN)),
                         AUTH_EMALFORMED);
    /* typ is optional and, as for libjwt, case-insensitive. */
    assert_int_equal(vf(kr, raw_token("{\"alg\":\"HS256\"}", GOOD_CLAIMS, SECRET, SECRET_LEN)),
                     AUTH_OK);
    assert_int_equal(
        vf(kr, raw_token("{\"alg\":\"HS256\",\"typ\":\"jwt\"}", GOOD_CLAIMS, SECRET, SECRET_LEN)),
        AUTH_OK);
    auth_keyring_free(kr);
}

static void test_payload_not_json_object(void **state)
{
    auth_keyring *kr = ring_hmac();
    const char *bad[] = {"not json",
                         "[\"sub\",\"alice\"]",
                         "\"alice\"",
                         "42",
                         "",
                         "{\"sub\":\"alice\",\"exp\":1700000600",
                         GOOD_CLAIMS " {}"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(vf(kr, raw_token(HDR_HS256, bad[i], SECRET, SECRET_LEN)), AUTH_EMALFORMED);
    auth_keyring_free(kr);
}

static void test_duplicate_claims_refused(void **state)
{
    auth_keyring *kr = ring_hmac();

    /* libjwt would let the second sub win; two parsers must never disagree
     * about who a token is for. */
    assert_int_equal(
        vf(kr, hsf("{\"sub\":\"alice\",\"sub\":\"admin\",\"exp\":%lld}", (long long)LATER)),
        AUTH_EMALFORMED);
    assert_int_equal(vf(kr, hsf("{\"sub\":\"alice\",\"exp\":1,\"exp\":%lld}", (long long)LATER)),
                     AUTH_EMALFORMED);
    assert_int_equal(vf(kr, hsf("{\"sub\":\"alice\",\"exp\":%lld,\"channels\":[],"
                                "\"channels\":[\"*\"]}",
                                (long long)LATER)),
                     AUTH_EMALFORMED);
    auth_keyring_free(kr);
}

/* ---- time claims ------------------------------------------------------- */

static char *exp_token(int64_t exp)
{
    return hsf("{\"sub\":\"alice\",\"exp\":%lld}", (long long)exp);
}

static void test_exp_required_and_typed(void **state)
{
    auth_keyring *kr = ring_hmac();

    assert_int_equal(vf(kr, hsf("{\"sub\":\"alice\"}")), AUTH_ENOEXP);
    assert_int_equal(vf(kr, hsf("{\"sub\":\"alice\",\"exp\":\"%lld\"}", (long long)LATER)),
                     AUTH_ECLAIMS);
    assert_int_equal(vf(kr, hsf("{\"sub\":\"alice\",\"exp\":%lld.0}", (long long)LATER)),
                     AUTH_ECLAIMS);
    assert_int_equal(vf(kr, hsf("{\"sub\":\"alice\",\"exp\":1.7e10}")), AUTH_ECLAIMS);
    assert_int_equal(vf(kr, hsf("{\"sub\":\"alice\",\"exp\":null}")), AUTH_ECLAIMS);
    assert_int_equal(vf(kr, hsf("{\"sub\":\"alice\",\"exp\":true}")), AUTH_ECLAIMS);
    assert_int_equal(vf(kr, hsf("{\"sub\":\"alice\",\"exp\":[%lld]}", (long long)LATER)),
                     AUTH_ECLAIMS);
    /* Beyond int64: jansson refuses the whole payload. */
    assert_int_equal(vf(kr, hsf("{\"sub\":\"alice\",\"exp\":99999999999999999999}")),
                     AUTH_EMALFORMED);
    assert_int_equal(
        vf(kr, hsf("{\"sub\":\"alice\",\"exp\":%lld,\"nbf\":\"0\"}", (long long)LATER)),
        AUTH_ECLAIMS);
    assert_int_equal(vf(kr, hsf("{\"sub\":\"alice\",\"exp\":%lld,\"iat\":1.5}", (long long)LATER)),
                     AUTH_ECLAIMS);
    auth_keyring_free(kr);
}

static void test_expired_with_leeway(void **state)
{
    auth_keyring *kr = ring_hmac();

    assert_int_equal(vf(kr, exp_token(NOW - AUTH_DEFAULT_LEEWAY - 1)), AUTH_EEXPIRED);
    assert_int_equal(vf(kr, exp_token(NOW - AUTH_DEFAULT_LEEWAY)), AUTH_EEXPIRED);
    assert_int_equal(vf(kr, exp_token(NOW - AUTH_DEFAULT_LEEWAY + 1)), AUTH_OK);
    assert_int_equal(vf(kr, exp_token(NOW)), AUTH_OK);
    assert_int_equal(vf(kr, exp_token(0)), AUTH_EEXPIRED);
    assert_int_equal(vf(kr, exp_token(INT64_MIN)), AUTH_EEXPIRED);
    assert_int_equal(vf(kr, exp_token(INT64_MAX)), AUTH_OK);
    auth_keyring_free(kr);
}

static char *time_token(const char *claim, int64_t t)
{
    return hsf("{\"sub\":\"alice\",\"exp\":%lld,\"%s\":%lld}", (long long)LATER, claim,
               (long long)t);
}

static void test_nbf_iat_in_future(void **state)
{
    auth_keyring *kr = ring_hmac();
    const char *claims[] = {"nbf", "iat"};

    for (int i = 0; i < 2; i++) {
        assert_int_equal(vf(kr, time_token(claims[i], NOW + AUTH_DEFAULT_LEEWAY + 1)),
                         AUTH_ENOTYET);
        assert_int_equal(vf(kr, time_token(claims[i], INT64_MAX)), AUTH_ENOTYET);
        assert_int_equal(vf(kr, time_token(claims[i], NOW + AUTH_DEFAULT_LEEWAY)), AUTH_OK);
        assert_int_equal(vf(kr, time_token(claims[i], NOW - 3600)), AUTH_OK);
        assert_int_equal(vf(kr, time_token(claims[i], INT64_MIN)), AUTH_OK);
    }
    auth_keyring_free(kr);
}

static void test_leeway_setting(void **state)
{
    auth_keyring *kr = ring_hmac();

    auth_keyring_set_leeway(kr, 0);
    assert_int_equal(vf(kr, exp_token(NOW)), AUTH_EEXPIRED);
    assert_int_equal(vf(kr, exp_token(NOW + 1)), AUTH_OK);
    assert_int_equal(vf(kr, time_token("nbf", NOW + 1)), AUTH_ENOTYET);
    assert_int_equal(vf(kr, time_token("nbf", NOW)), AUTH_OK);
    auth_keyring_set_leeway(kr, -100); /* clamped to 0 */
    assert_int_equal(vf(kr, exp_token(NOW)), AUTH_EEXPIRED);
    auth_keyring_set_leeway(kr, 120);
    assert_int_equal(vf(kr, exp_token(NOW - 119)), AUTH_OK);
    assert_int_equal(vf(kr, time_token("iat", NOW + 120)), AUTH_OK);
    assert_int_equal(vf(kr, time_token("iat", NOW + 121)), AUTH_ENOTYET);
    auth_keyring_set_leeway(kr, INT64_MAX); /* clamped to AUTH_MAX_LEEWAY */
    assert_int_equal(vf(kr, exp_token(NOW - AUTH_MAX_LEEWAY + 1)), AUTH_OK);
    assert_int_equal(vf(kr, exp_token(NOW - AUTH_MAX_LEEWAY)), AUTH_EEXPIRED);
    auth_keyring_free(kr);
}

/* ---- iss, aud ---------------------------------------------------------- */

static char *extra_token(const char *extra)
{
    return hsf("{\"sub\":\"alice\",\"exp\":%lld%s}", (long long)LATER, extra);
}

static void test_issuer(void **state)
{
    auth_keyring *kr = ring_hmac();

    assert_int_equal(vf(kr, extra_token(",\"iss\":\"anyone\"")), AUTH_OK);
    assert_int_equal(auth_keyring_set_issuer(kr, "https://id.example.com"), AUTH_OK);
    assert_int_equal(vf(kr, extra_token(",\"iss\":\"https://id.example.com\"")), AUTH_OK);
    assert_int_equal(vf(kr, extra_token("")), AUTH_EISSUER);
    assert_int_equal(vf(kr, extra_token(",\"iss\":\"https://evil.example.com\"")), AUTH_EISSUER);
    assert_int_equal(vf(kr, extra_token(",\"iss\":\"https://id.example.com/\"")), AUTH_EISSUER);
    assert_int_equal(vf(kr, extra_token(",\"iss\":[\"https://id.example.com\"]")), AUTH_EISSUER);
    assert_int_equal(vf(kr, extra_token(",\"iss\":7")), AUTH_EISSUER);
    assert_int_equal(auth_keyring_set_issuer(kr, NULL), AUTH_OK);
    assert_int_equal(vf(kr, extra_token("")), AUTH_OK);
    auth_keyring_free(kr);
}

static void test_audience(void **state)
{
    auth_keyring *kr = ring_hmac();

    assert_int_equal(vf(kr, extra_token(",\"aud\":{\"x\":1}")), AUTH_OK); /* not configured */
    assert_int_equal(auth_keyring_set_audience(kr, "wsgw"), AUTH_OK);
    assert_int_equal(vf(kr, extra_token(",\"aud\":\"wsgw\"")), AUTH_OK);
    assert_int_equal(vf(kr, extra_token(",\"aud\":[\"billing\",\"wsgw\"]")), AUTH_OK);
    assert_int_equal(vf(kr, extra_token(",\"aud\":[\"wsgw\"]")), AUTH_OK);
    assert_int_equal(vf(kr, extra_token(",\"aud\":[\"wsgw\",\"billing\"]")), AUTH_OK);
    assert_int_equal(vf(kr, extra_token("")), AUTH_EAUDIENCE);
    assert_int_equal(vf(kr, extra_token(",\"aud\":\"billing\"")), AUTH_EAUDIENCE);
    assert_int_equal(vf(kr, extra_token(",\"aud\":\"WSGW\"")), AUTH_EAUDIENCE);
    assert_int_equal(vf(kr, extra_token(",\"aud\":[\"billing\",\"api\"]")), AUTH_EAUDIENCE);
    assert_int_equal(vf(kr, extra_token(",\"aud\":[]")), AUTH_EAUDIENCE);
    assert_int_equal(vf(kr, extra_token(",\"aud\":[\"wsgw\",7]")), AUTH_ECLAIMS);
    assert_int_equal(vf(kr, extra_token(",\"aud\":7")), AUTH_ECLAIMS);
    assert_int_equal(vf(kr, extra_token(",\"aud\":null")), AUTH_ECLAIMS);
    auth_keyring_free(kr);
}

/* ---- sub, channels, publish ------------------------------------------- */

static char *sub_token(const char *sub_json)
{
    return hsf("{\"sub\":%s,\"exp\":%lld}", sub_json, (long long)LATER);
}

static void test_sub_checked(void **state)
{
    auth_keyring *kr = ring_hmac();
    char longest[AUTH_MAX_SUB_LEN + 2];
    const char *bad[] = {"\"\"",        "\"al ice\"",   "\"a/b\"",       "\"a:b\"", "\"alice*\"",
                         "\"\\u00e9\"", "\"al\\tice\"", "\"a\\\"b\"",    "42",      "null",
                         "true",        "[\"alice\"]",  "{\"id\":\"a\"}"};
    auth_claims c;
    char *tok;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(vf(kr, sub_token(bad[i])), AUTH_ESUB);
    assert_int_equal(vf(kr, hsf("{\"exp\":%lld}", (long long)LATER)), AUTH_ESUB);
    assert_int_equal(vf(kr, sub_token("\"A-Za-z0-9_.@example.com\"")), AUTH_OK);

    memset(longest, 'a', AUTH_MAX_SUB_LEN + 1);
    longest[AUTH_MAX_SUB_LEN + 1] = '\0';
    tok = hsf("{\"sub\":\"%s\",\"exp\":%lld}", longest, (long long)LATER);
    assert_int_equal(vf(kr, tok), AUTH_ESUB); /* 129 */
    longest[AUTH_MAX_SUB_LEN] = '\0';
    tok = hsf("{\"sub\":\"%s\",\"exp\":%lld}", longest, (long long)LATER);
    assert_int_equal(auth_verify_connection(kr, tok, strlen(tok), NOW, &c), AUTH_OK); /* 128 */
    assert_string_equal(c.sub, longest);
    auth_claims_free(&c);
    free(tok);
    auth_keyring_free(kr);
}

static void test_pattern_claims_checked(void **state)
{
    auth_keyring *kr = ring_hmac();
    const char *names[] = {"channels", "publish"};
    const char *bad[] = {"\"chat:*\"",
                         "{}",
                         "null",
                         "[1]",
                         "[\"chat:*\",null]",
                         "[[\"chat:*\"]]",
                         "[\"\"]",
                         "[\"nocolon\"]",
                         "[\"chat:*x\"]",
                         "[\"*chat\"]",
                         "[\"**\"]",
                         "[\"chat:lob by\"]",
                         "[\"chat:\"]"};
    char *extra;

    for (int n = 0; n < 2; n++) {
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            extra = strf(",\"%s\":%s", names[n], bad[i]);
            assert_int_equal(vf(kr, extra_token(extra)), AUTH_ECLAIMS);
            free(extra);
        }
        extra = strf(",\"%s\":[\"*\",\"chat:*\",\"job:4*\",\"job:42\",\"chat*\"]", names[n]);
        assert_int_equal(vf(kr, extra_token(extra)), AUTH_OK);
        free(extra);
    }
    auth_keyring_free(kr);
}

/* An array claim of n patterns "p:0", "p:1", ... */
static char *many_patterns_token(const char *name, size_t n)
{
    size_t cap = n * 12 + 64, used;
    char *extra = malloc(cap), *tok;

    used = (size_t)snprintf(extra, cap, ",\"%s\":[", name);
    for (size_t i = 0; i < n; i++)
        used += (size_t)snprintf(extra + used, cap - used, "%s\"p:%zu\"", i ? "," : "", i);
    snprintf(extra + used, cap - used, "]");
    tok = extra_token(extra);
    free(extra);
    return tok;
}

static void test_pattern_count_capped(void **state)
{
    auth_keyring *kr = ring_hmac();
    char *tok = many_patterns_token("channels", AUTH_MAX_PATTERNS);
    auth_claims c;

    assert_int_equal(auth_verify_connection(kr, tok, strlen(tok), NOW, &c), AUTH_OK);
    assert_int_equal(c.n_channels, AUTH_MAX_PATTERNS);
    assert_string_equal(c.channels[AUTH_MAX_PATTERNS - 1], "p:255");
    auth_claims_free(&c);
    free(tok);
    assert_int_equal(vf(kr, many_patterns_token("channels", AUTH_MAX_PATTERNS + 1)), AUTH_ECLAIMS);
    assert_int_equal(vf(kr, many_patterns_token("publish", AUTH_MAX_PATTERNS + 1)), AUTH_ECLAIMS);
    auth_keyring_free(kr);
}

/* ---- subscription tokens ---------------------------------------------- */

static int vsub(const auth_keyring *kr, char *tok, const char *sub, const char *channel,
                int64_t *exp)
{
    int rc = auth_verify_subscription(kr, tok, strlen(tok), NOW, sub, channel, exp);

    free(tok);
    return rc;
}

static char *sub_tok(const char *sub, const char *channel_json, int64_t exp)
{
    return hsf("{\"sub\":\"%s\",\"channel\":%s,\"exp\":%lld}", sub, channel_json, (long long)exp);
}

static void test_subscription_token(void **state)
{
    auth_keyring *kr = ring_hmac();
    int64_t exp = 0;

    assert_int_equal(vsub(kr, sub_tok("alice", "\"job:42\"", LATER), "alice", "job:42", &exp),
                     AUTH_OK);
    assert_int_equal(exp, LATER);
    assert_int_equal(vsub(kr, sub_tok("alice", "\"job:42\"", LATER), "alice", "job:42", NULL),
                     AUTH_OK);
    assert_int_equal(vsub(kr, sub_tok("bob", "\"job:42\"", LATER), "alice", "job:42", &exp),
                     AUTH_EWRONGSUB);
    assert_int_equal(vsub(kr, sub_tok("alice", "\"job:42\"", LATER), "alice2", "job:42", &exp),
                     AUTH_EWRONGSUB);
    assert_int_equal(vsub(kr, sub_tok("alice", "\"job:42\"", LATER), "alice", "job:43", &exp),
                     AUTH_EWRONGCHANNEL);
    assert_int_equal(vsub(kr, sub_tok("alice", "\"job:4\"", LATER), "alice", "job:42", &exp),
                     AUTH_EWRONGCHANNEL);
    /* A pattern is not a channel: subscription tokens name one exactly. */
    assert_int_equal(vsub(kr, sub_tok("alice", "\"job:*\"", LATER), "alice", "job:42", &exp),
                     AUTH_EWRONGCHANNEL);
    assert_int_equal(vsub(kr, exp_token(LATER), "alice", "job:42", &exp), AUTH_EWRONGCHANNEL);
    assert_int_equal(vsub(kr, sub_tok("alice", "42", LATER), "alice", "job:42", &exp),
                     AUTH_ECLAIMS);
    assert_int_equal(vsub(kr, sub_tok("alice", "[\"job:42\"]", LATER), "alice", "job:42", &exp),
                     AUTH_ECLAIMS);
    auth_keyring_free(kr);
}

/* user: channels are private by the protocol: a token signed for another
 * user's channel (a careless issuer) opens nothing; one for the owner's own
 * channel is redundant but harmless. */
static void test_subscription_token_never_opens_another_users_channel(void **state)
{
    auth_keyring *kr = ring_hmac();
    int64_t exp = 0;

    assert_int_equal(
        vsub(kr, sub_tok("alice", "\"user:bob\"", LATER), "alice", "user:bob", &exp),
        AUTH_EPRIVATE);
    assert_string_equal(auth_strerror(AUTH_EPRIVATE), "private channel");
    assert_int_equal(
        vsub(kr, sub_tok("alice", "\"user:alice\"", LATER), "alice", "user:alice", &exp),
        AUTH_OK);
    /* Prefix tricks stay someone else's channel. */
    assert_int_equal(
        vsub(kr, sub_tok("alice", "\"user:alice2\"", LATER), "alice", "user:alice2", &exp),
        AUTH_EPRIVATE);
    auth_keyring_free(kr);
}

static void test_subscription_token_common_checks(void **state)
{
    auth_keyring *kr = ring_hmac();
    int64_t exp = 7;

    assert_int_equal(vsub(kr, sub_tok("alice", "\"job:42\"", NOW - 3600), "alice", "job:42", &exp),
                     AUTH_EEXPIRED);
    assert_int_equal(exp, 7);
    assert_int_equal(vsub(kr, sub_tok("al ice", "\"job:42\"", LATER), "al ice", "job:42", &exp),
                     AUTH_ESUB);
    assert_int_equal(
        vsub(kr,
             raw_token("{\"alg\":\"none\"}",
                       "{\"sub\":\"alice\",\"channel\":\"job:42\",\"exp\":1700000600}", NULL, 0),
             "alice", "job:42", &exp),
        AUTH_EALG);
    assert_int_equal(
        vsub(kr,
             raw_token(HDR_HS256, "{\"sub\":\"alice\",\"channel\":\"job:42\",\"exp\":1700000600}",
                       OTHER_SECRET, OTHER_LEN),
             "alice", "job:42", &exp),
        AUTH_ESIGNATURE);
    assert_int_equal(vsub(kr,
                          hsf("{\"sub\":\"alice\",\"channel\":\"job:42\",\"channel\":"
                              "\"job:43\",\"exp\":%lld}",
                              (long long)LATER),
                          "alice", "job:43", &exp),
                     AUTH_EMALFORMED);
    auth_keyring_free(kr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_weak_hmac_key_refused),
        cmocka_unit_test(test_duplicate_kid_refused),
        cmocka_unit_test(test_pem_key_types),
        cmocka_unit_test(test_non_key_pem_refused),
        cmocka_unit_test(test_no_key_configured),
        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_hs256_valid_claims),
        cmocka_unit_test(test_no_patterns_means_none),
        cmocka_unit_test(test_hs384_hs512_valid),
        cmocka_unit_test(test_rs256_valid),
        cmocka_unit_test(test_es256_valid),
        cmocka_unit_test(test_ps256_384_512_valid),
        cmocka_unit_test(test_pss_refusals),
        cmocka_unit_test(test_pss_signature_length_exact),
        cmocka_unit_test(test_sign_hs256_roundtrip),
        cmocka_unit_test(test_token_not_nul_terminated),
        cmocka_unit_test(test_alg_none_refused),
        cmocka_unit_test(test_alg_spelling_and_unknown),
        cmocka_unit_test(test_hs256_with_rsa_pem_refused),
        cmocka_unit_test(test_alg_outside_key_family),
        cmocka_unit_test(test_wrong_key_refused),
        cmocka_unit_test(test_kid_selects_among_hmac_keys),
        cmocka_unit_test(test_kid_across_key_families),
        cmocka_unit_test(test_every_truncation_refused),
        cmocka_unit_test(test_wrong_number_of_parts),
        cmocka_unit_test(test_empty_token),
        cmocka_unit_test(test_token_length_cap),
        cmocka_unit_test(test_invalid_base64_refused),
        cmocka_unit_test(test_header_not_json),
        cmocka_unit_test(test_payload_not_json_object),
        cmocka_unit_test(test_duplicate_claims_refused),
        cmocka_unit_test(test_exp_required_and_typed),
        cmocka_unit_test(test_expired_with_leeway),
        cmocka_unit_test(test_nbf_iat_in_future),
        cmocka_unit_test(test_leeway_setting),
        cmocka_unit_test(test_issuer),
        cmocka_unit_test(test_audience),
        cmocka_unit_test(test_sub_checked),
        cmocka_unit_test(test_pattern_claims_checked),
        cmocka_unit_test(test_pattern_count_capped),
        cmocka_unit_test(test_subscription_token),
        cmocka_unit_test(test_subscription_token_never_opens_another_users_channel),
        cmocka_unit_test(test_subscription_token_common_checks),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
