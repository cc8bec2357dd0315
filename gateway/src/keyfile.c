/*
 * keyfile: the token keys named in the configuration, loaded into a keyring.
 *
 * Runs once at startup (it reads files, which must never happen on the
 * event loop's hot path). Every failure is a one-line reason for the
 * operator, because a gateway with a wrong key would reject every user.
 */
#include "keyfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_FILE_MAX (64 * 1024)

int gw_read_file(const char *path, size_t max, char **buf, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *b = NULL;
    size_t n;
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    b = malloc(max + 1);
    if (!b) {
        fclose(f);
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    n = fread(b, 1, max + 1, f);
    fclose(f);
    if (n > max) {
        free(b);
        snprintf(err, errlen, "%s: larger than %zu bytes", path, max);
        return -1;
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return 0;
}

int gw_read_secret(const char *path, char **buf, size_t *len, char *err, size_t errlen)
{
    if (gw_read_file(path, KEY_FILE_MAX, buf, len, err, errlen) < 0)
        return -1;
    while (*len && ((*buf)[*len - 1] == '\n' || (*buf)[*len - 1] == '\r'))
        (*buf)[--*len] = '\0';
    return 0;
}

static int add_secret(auth_keyring *kr, const char *path, char *err, size_t errlen)
{
    char *buf;
    size_t len;
    int rc;
    if (gw_read_secret(path, &buf, &len, err, errlen) < 0)
        return -1;
    rc = auth_keyring_add_hmac(kr, NULL, (unsigned char *)buf, len);
    free(buf);
    if (rc != AUTH_OK) {
        snprintf(err, errlen, "--jwt-secret-file %s: %s (need at least %d bytes)", path,
                 auth_strerror(rc), AUTH_MIN_HMAC_SECRET);
        return -1;
    }
    return 0;
}

/* "[KID=]PATH": a '=' before any '/' separates a key id. */
static int add_public_key(auth_keyring *kr, const char *spec, char *err, size_t errlen)
{
    const char *eq = strchr(spec, '=');
    const char *slash = strchr(spec, '/');
    char kid[128] = "";
    const char *path = spec;
    char *pem;
    size_t len;
    int rc;

    if (eq && (!slash || eq < slash) && (size_t)(eq - spec) < sizeof(kid)) {
        memcpy(kid, spec, (size_t)(eq - spec));
        kid[eq - spec] = '\0';
        path = eq + 1;
    }
    if (gw_read_file(path, KEY_FILE_MAX, &pem, &len, err, errlen) < 0)
        return -1;
    rc = auth_keyring_add_pem(kr, kid[0] ? kid : NULL, pem, len);
    free(pem);
    if (rc != AUTH_OK) {
        snprintf(err, errlen, "--jwt-public-key %s: %s", spec, auth_strerror(rc));
        return -1;
    }
    return 0;
}

auth_keyring *gw_keyring_from_config(const gw_config *cfg, char *err, size_t errlen)
{
    auth_keyring *kr = auth_keyring_new();
    if (!kr) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (cfg->jwt_secret_file && add_secret(kr, cfg->jwt_secret_file, err, errlen) < 0)
        goto err;
    for (size_t i = 0; i < cfg->jwt_public_keys.n; i++) {
        if (add_public_key(kr, cfg->jwt_public_keys.items[i], err, errlen) < 0)
            goto err;
    }
    if (auth_keyring_set_issuer(kr, cfg->jwt_issuer) != AUTH_OK ||
        auth_keyring_set_audience(kr, cfg->jwt_audience) != AUTH_OK) {
        snprintf(err, errlen, "out of memory");
        goto err;
    }
    auth_keyring_set_leeway(kr, cfg->jwt_leeway_seconds);
    return kr;
err:
    auth_keyring_free(kr);
    return NULL;
}
