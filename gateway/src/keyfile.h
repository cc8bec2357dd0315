/*
 * keyfile: the token keys named in the configuration, loaded into a keyring.
 *
 * Shared by the gateway and `wsgw token`, so both read a secret file the same
 * way: trailing newlines (as `echo` and Kubernetes secrets leave them) are
 * not part of the secret.
 */
#ifndef GW_KEYFILE_H
#define GW_KEYFILE_H

#include <stddef.h>

#include <auth/auth.h>

#include "config.h"

/* Reads a whole file of at most max bytes. On 0, *buf is malloc'd (NUL
 * terminated, caller frees) and *len its length; -1 with err set otherwise. */
int gw_read_file(const char *path, size_t max, char **buf, size_t *len, char *err, size_t errlen);

/* Reads an HMAC secret file and strips trailing CR/LF. Same contract. */
int gw_read_secret(const char *path, char **buf, size_t *len, char *err, size_t errlen);

/* Builds the keyring from --jwt-secret-file, --jwt-public-key and the claim
 * policy. Returns a keyring the caller frees, or NULL with err set (a weak
 * secret or an unreadable key: the gateway refuses to start). */
auth_keyring *gw_keyring_from_config(const gw_config *cfg, char *err, size_t errlen);

#endif
