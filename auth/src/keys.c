/*
 * The keyring: the verification keys and the claim policy (issuer, audience,
 * leeway) a gateway process loads once at startup and then only reads.
 *
 * Adding a key is where its algorithms are decided, from what the key is and
 * never from what a token claims: an HMAC secret verifies HS256/384/512, an
 * RSA public key RS256/384/512 and PS256/384/512, an EC public key only the
 * ES* algorithm of its curve. OpenSSL identifies the key type; a PEM it
 * cannot read as a public key of those kinds is refused here rather than
 * failing every token later. Weak keys are refused so that the gateway does
 * not start with them: short HMAC secrets (AUTH_EWEAKKEY) and RSA moduli
 * under 2048 bits (AUTH_EKEY, since the reason text of AUTH_EWEAKKEY speaks
 * of HMAC secrets).
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>

#include "auth_internal.h"

auth_keyring *auth_keyring_new(void)
{
    auth_keyring *kr = calloc(1, sizeof(*kr));

    if (kr)
        kr->leeway = AUTH_DEFAULT_LEEWAY;
    return kr;
}

void auth_keyring_free(auth_keyring *kr)
{
    if (!kr)
        return;
    for (size_t i = 0; i < kr->n_keys; i++) {
        /* Secrets should not outlive the keyring in freed heap memory. */
        OPENSSL_cleanse(kr->keys[i].material, kr->keys[i].len);
        free(kr->keys[i].material);
        free(kr->keys[i].kid);
    }
    free(kr->keys);
    free(kr->issuer);
    free(kr->audience);
    free(kr);
}

const struct auth__key *auth__keyring_find(const auth_keyring *kr, const char *kid)
{
    for (size_t i = 0; i < kr->n_keys; i++) {
        if (kr->keys[i].kid && strcmp(kr->keys[i].kid, kid) == 0)
            return &kr->keys[i];
    }
    return NULL;
}

static int grow(auth_keyring *kr)
{
    size_t cap = kr->cap ? kr->cap * 2 : 4;
    struct auth__key *keys;

    if (kr->n_keys < kr->cap)
        return AUTH_OK;
    keys = realloc(kr->keys, cap * sizeof(*keys));
    if (!keys)
        return AUTH_ENOMEM;
    kr->keys = keys;
    kr->cap = cap;
    return AUTH_OK;
}

/* Appends a copy of the key. The material gets a NUL after it so a PEM can
 * also be read as a string, which costs nothing for an HMAC secret. */
static int push_key(auth_keyring *kr, const char *kid, const void *material, size_t len,
                    unsigned algs)
{
    struct auth__key k = {.len = len, .algs = algs};

    if (kid && auth__keyring_find(kr, kid))
        return AUTH_EDUPKID;
    if (grow(kr) != AUTH_OK)
        return AUTH_ENOMEM;
    k.material = malloc(len + 1);
    if (!k.material)
        goto err;
    memcpy(k.material, material, len);
    k.material[len] = '\0';
    if (kid && !(k.kid = strdup(kid)))
        goto err;
    kr->keys[kr->n_keys++] = k;
    return AUTH_OK;

err:
    free(k.material);
    return AUTH_ENOMEM;
}

int auth_keyring_add_hmac(auth_keyring *kr, const char *kid, const unsigned char *secret,
                          size_t len)
{
    if (!kr || !secret)
        return AUTH_EKEY;
    if (len < AUTH_MIN_HMAC_SECRET)
        return AUTH_EWEAKKEY;
    if (len > INT_MAX) /* libjwt takes the key length as an int */
        return AUTH_EKEY;
    return push_key(kr, kid, secret, len, AUTH__HMAC_ALGS);
}

/* RFC 7518 3.4 ties each ES* algorithm to one curve; libjwt does not check
 * the curve, so the pairing is enforced by giving the key only its own alg. */
static unsigned ec_algs(const EVP_PKEY *pk)
{
    char name[64];
    int nid;

    if (!EVP_PKEY_get_group_name(pk, name, sizeof(name), NULL))
        return 0;
    nid = OBJ_txt2nid(name);
    if (nid == NID_X9_62_prime256v1)
        return AUTH__ALG_BIT(JWT_ALG_ES256);
    if (nid == NID_secp384r1)
        return AUTH__ALG_BIT(JWT_ALG_ES384);
    if (nid == NID_secp521r1)
        return AUTH__ALG_BIT(JWT_ALG_ES512);
    return 0;
}

/* Reads the PEM the way libjwt will (PEM_read_bio_PUBKEY) and decides the
 * algorithms of the key from its type. */
static int pem_algs(const char *pem, size_t len, unsigned *algs)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *pk = NULL;
    int rc = AUTH_EKEY;

    *algs = 0;
    if (!bio)
        return AUTH_ENOMEM;
    pk = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    if (!pk)
        goto done;
    if (EVP_PKEY_base_id(pk) == EVP_PKEY_RSA) {
        *algs = AUTH__RSA_ALGS;
        rc = EVP_PKEY_get_bits(pk) < AUTH_MIN_RSA_BITS ? AUTH_EKEY : AUTH_OK;
    } else if (EVP_PKEY_base_id(pk) == EVP_PKEY_EC) {
        *algs = ec_algs(pk);
        rc = *algs ? AUTH_OK : AUTH_EKEY;
    }

done:
    /* A failed read leaves errors on the thread's OpenSSL queue, where the
     * TLS code of the same thread would later mistake them for its own. */
    ERR_clear_error();
    EVP_PKEY_free(pk);
    BIO_free(bio);
    return rc;
}

int auth_keyring_add_pem(auth_keyring *kr, const char *kid, const char *pem, size_t len)
{
    unsigned algs;
    int rc;

    if (!kr || !pem || len == 0 || len > INT_MAX)
        return AUTH_EKEY;
    rc = pem_algs(pem, len, &algs);
    if (rc != AUTH_OK)
        return rc;
    return push_key(kr, kid, pem, len, algs);
}

static int set_string(char **dst, const char *value)
{
    char *copy = NULL;

    if (value && !(copy = strdup(value)))
        return AUTH_ENOMEM;
    free(*dst);
    *dst = copy;
    return AUTH_OK;
}

int auth_keyring_set_issuer(auth_keyring *kr, const char *issuer)
{
    return set_string(&kr->issuer, issuer);
}

int auth_keyring_set_audience(auth_keyring *kr, const char *audience)
{
    return set_string(&kr->audience, audience);
}

void auth_keyring_set_leeway(auth_keyring *kr, int64_t seconds)
{
    if (seconds < 0)
        seconds = 0;
    if (seconds > AUTH_MAX_LEEWAY)
        seconds = AUTH_MAX_LEEWAY;
    kr->leeway = seconds;
}

size_t auth_keyring_count(const auth_keyring *kr)
{
    return kr ? kr->n_keys : 0;
}
