/*
 * RSA-PSS signatures (PS256/384/512), which libjwt 1.10 cannot verify.
 *
 * The protocol lets an RSA key verify its own RS* and PS* algorithms; for
 * PS* this file asks OpenSSL directly, with RFC 7518 3.5's parameters
 * pinned rather than read from the signature: MGF1 with the same hash, and
 * a salt exactly as long as the hash (RSA_PSS_SALTLEN_DIGEST; a signer that
 * used another length is refused, not guessed). jwt.c has already split
 * and decoded the token; this only checks the signature of its first two
 * segments, with a key that keys.c has pinned to the RSA algorithms.
 */
#include <limits.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "auth_internal.h"

static const EVP_MD *md_of(jwt_alg_t alg)
{
    if (alg == AUTH__ALG_PS256)
        return EVP_sha256();
    if (alg == AUTH__ALG_PS384)
        return EVP_sha384();
    if (alg == AUTH__ALG_PS512)
        return EVP_sha512();
    return NULL;
}

static EVP_PKEY *rsa_key(const struct auth__key *k)
{
    EVP_PKEY *pk = NULL;
    BIO *bio;

    if (k->len > INT_MAX || !(bio = BIO_new_mem_buf(k->material, (int)k->len)))
        return NULL;
    pk = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (pk && EVP_PKEY_base_id(pk) != EVP_PKEY_RSA) {
        EVP_PKEY_free(pk);
        pk = NULL;
    }
    return pk;
}

int auth__pss_verify(const struct auth__key *k, jwt_alg_t alg, const char *input, size_t input_len,
                     const unsigned char *sig, size_t sig_len)
{
    const EVP_MD *md = md_of(alg);
    EVP_PKEY *pk = NULL;
    EVP_MD_CTX *ctx = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    int rc = AUTH_ENOMEM;

    if (!md)
        return AUTH_EALG;
    if (!(pk = rsa_key(k))) {
        rc = AUTH_ESIGNATURE; /* keys.c read it at start: only an allocation fails here */
        goto done;
    }
    if (!(ctx = EVP_MD_CTX_new()))
        goto done;
    rc = AUTH_ESIGNATURE;
    /* RFC 8017 8.1.2: exactly the modulus's length. OpenSSL's PSS path takes
     * a shorter one (leading zero bytes dropped), which would give one token
     * two spellings. */
    if (sig_len != (size_t)EVP_PKEY_get_size(pk))
        goto done;
    /* pctx belongs to ctx: freed with it. */
    if (EVP_DigestVerifyInit(ctx, &pctx, md, NULL, pk) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) != 1 ||
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1)
        goto done;
    rc = EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)input, input_len) == 1
             ? AUTH_OK
             : AUTH_ESIGNATURE;

done:
    /* A failed check leaves errors on the thread's OpenSSL queue, where the
     * TLS code of the same thread would later mistake them for its own. */
    ERR_clear_error();
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pk);
    return rc;
}
