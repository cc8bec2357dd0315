/*
 * auth: JWT verification and channel permissions for wsgw.
 *
 * This library decides who a connection is and what it may do. It wraps
 * libjwt 1.10 and closes the holes that version leaves open (see
 * shared/platform-notes.md): it never passes a NULL key, pins the token's
 * algorithm to the type of the key that verified it, checks exp/nbf/iat/iss/aud
 * itself, caps the token length before decoding, and reads claims through
 * jansson so their JSON types are checked. It also validates channel names and
 * matches channel patterns. It knows nothing of WebSockets or Redis.
 *
 * Errors are negative AUTH_E* codes; auth_strerror() gives the short reason
 * the gateway sends as the WebSocket close reason (e.g. "token expired").
 */
#ifndef AUTH_AUTH_H
#define AUTH_AUTH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AUTH_MAX_TOKEN_BYTES 8192    /* longer tokens are refused undecoded */
#define AUTH_MIN_HMAC_SECRET 32      /* shorter HMAC secrets are refused */
#define AUTH_MAX_SUB_LEN 128         /* sub: 1..128 of [A-Za-z0-9_.@-] */
#define AUTH_MAX_CHANNEL_LEN 128     /* channel: at most 128 of [A-Za-z0-9_.:@-] */
#define AUTH_MAX_PATTERNS 256        /* more channels/publish entries: invalid */
#define AUTH_DEFAULT_LEEWAY 30       /* seconds of clock skew allowed */
#define AUTH_MAX_LEEWAY 300          /* auth_keyring_set_leeway clamps to 0..this */
#define AUTH_MIN_RSA_BITS 2048       /* smaller RSA keys are refused (RFC 7518 3.3) */

/* Error codes. Each has a short close reason (auth_strerror). */
#define AUTH_OK 0
#define AUTH_EMALFORMED -1       /* "invalid token": not three base64url parts, bad JSON */
#define AUTH_ETOOLONG -2         /* "token too long": over AUTH_MAX_TOKEN_BYTES */
#define AUTH_ESIGNATURE -3       /* "invalid signature" */
#define AUTH_EALG -4             /* "algorithm not allowed": none, or not the key's family */
#define AUTH_EUNKNOWNKID -5      /* "unknown key id" */
#define AUTH_EEXPIRED -6         /* "token expired" */
#define AUTH_ENOEXP -7           /* "missing exp" */
#define AUTH_ENOTYET -8          /* "token not yet valid": nbf or iat in the future */
#define AUTH_EISSUER -9          /* "wrong issuer" */
#define AUTH_EAUDIENCE -10       /* "wrong audience" */
#define AUTH_ESUB -11            /* "invalid sub" */
#define AUTH_ECLAIMS -12         /* "invalid claims": channels/publish/channel of wrong type */
#define AUTH_EWEAKKEY -13        /* "hmac secret too short" (configuration) */
#define AUTH_EKEY -14            /* "invalid key" (configuration: unreadable PEM) */
#define AUTH_ENOKEY -15          /* "no key configured" */
#define AUTH_ENOMEM -16          /* "out of memory" */
#define AUTH_EWRONGSUB -17       /* "sub mismatch": subscription/refresh token for another user */
#define AUTH_EWRONGCHANNEL -18   /* "channel mismatch": subscription token for another channel */
#define AUTH_EDUPKID -19         /* "duplicate key id" (configuration) */
#define AUTH_EPRIVATE -20        /* "private channel": another user's user: channel */

/* The short, stable reason for a code, for close frames and logs. Never NULL. */
const char *auth_strerror(int code);

/* A set of verification keys plus the claim policy. Built once at startup,
 * then only read: safe to share by every connection of a process. */
typedef struct auth_keyring auth_keyring;

/* Returns a new empty keyring with the default leeway, or NULL on OOM. */
auth_keyring *auth_keyring_new(void);
void auth_keyring_free(auth_keyring *kr);

/* Adds an HMAC secret (accepts HS256/384/512 tokens). kid may be NULL for a
 * key that has no id. Copies the secret. Returns AUTH_OK, AUTH_EWEAKKEY when
 * len < AUTH_MIN_HMAC_SECRET, AUTH_EDUPKID, AUTH_ENOMEM. */
int auth_keyring_add_hmac(auth_keyring *kr, const char *kid, const unsigned char *secret,
                          size_t len);

/* Adds an RSA or EC public key in PEM. The key type decides the accepted
 * algorithms: RSA -> RS256/384/512 and PS256/384/512, EC -> the one ES*
 * algorithm of its curve (P-256 -> ES256, P-384 -> ES384, P-521 -> ES512,
 * as RFC 7518 3.4 pins them). Copies the PEM. Returns AUTH_OK, AUTH_EKEY for anything that is not such a
 * key (private keys, certificates, other curves and key types, and RSA keys
 * under AUTH_MIN_RSA_BITS included), AUTH_EDUPKID, AUTH_ENOMEM. */
int auth_keyring_add_pem(auth_keyring *kr, const char *kid, const char *pem, size_t len);

/* Optional policy. issuer/audience are copied; NULL clears. They return
 * AUTH_OK or AUTH_ENOMEM. The leeway is clamped to 0..AUTH_MAX_LEEWAY. */
int auth_keyring_set_issuer(auth_keyring *kr, const char *issuer);
int auth_keyring_set_audience(auth_keyring *kr, const char *audience);
void auth_keyring_set_leeway(auth_keyring *kr, int64_t seconds);
size_t auth_keyring_count(const auth_keyring *kr);

/* What a verified connection token grants. Owned by the caller after
 * auth_verify_connection succeeds; release with auth_claims_free. */
typedef struct auth_claims {
    char *sub;            /* malloc'd (at most AUTH_MAX_SUB_LEN); NULL when not verified */
    int64_t exp;
    char **channels;      /* patterns the user may subscribe to */
    size_t n_channels;
    char **publish;       /* patterns the user may publish to */
    size_t n_publish;
} auth_claims;

void auth_claims_free(auth_claims *c);

/* Verifies a connection token at time `now` (unix seconds): length cap,
 * structure, kid -> key (no kid: every key whose family fits the alg is tried),
 * alg pinned to the key family, signature, exp required and > now - leeway,
 * nbf/iat <= now + leeway, iss/aud when configured, sub syntax, channels and
 * publish arrays of strings (each a valid pattern). The token need not be NUL
 * terminated. exp/nbf/iat must be JSON integers: any other type (string,
 * float, null) gives AUTH_ECLAIMS, as does (when an audience is configured) an
 * aud that is neither a string nor an array of strings. A header or payload
 * that is not a JSON object, or has duplicate names, gives AUTH_EMALFORMED.
 * On AUTH_OK fills *out (which the caller frees); on error *out is left
 * zeroed and the code says why. */
int auth_verify_connection(const auth_keyring *kr, const char *token, size_t len, int64_t now,
                           auth_claims *out);

/* Verifies a subscription token: same checks as a connection token, plus
 * `sub` must equal `sub` (else AUTH_EWRONGSUB) and the `channel` claim must be
 * present and equal `channel` (else AUTH_EWRONGCHANNEL; AUTH_ECLAIMS when it
 * is not a string). No token opens another user's `user:` channel, however
 * it was signed (AUTH_EPRIVATE): those are private by the protocol, not by
 * the issuer's care. On AUTH_OK stores the token's exp in *exp. */
int auth_verify_subscription(const auth_keyring *kr, const char *token, size_t len, int64_t now,
                             const char *sub, const char *channel, int64_t *exp);

/* Channel names: 1..AUTH_MAX_CHANNEL_LEN bytes of [A-Za-z0-9_.:@-], of the
 * form namespace:name with both parts non-empty. Returns 1 if valid. */
int auth_channel_valid(const char *channel, size_t len);

/* sub syntax: 1..128 of [A-Za-z0-9_.@-]. Returns 1 if valid. */
int auth_sub_valid(const char *sub, size_t len);

/* A pattern is a channel name, or a prefix ending in '*' ("chat:*", "*"):
 * 1..AUTH_MAX_CHANNEL_LEN bytes, '*' only as the last byte, the rest of
 * [A-Za-z0-9_.:@-]. Returns 1 if `pattern` is one. */
int auth_pattern_valid(const char *pattern, size_t len);

/* Returns 1 if `channel` matches `pattern` (see auth_pattern_valid). */
int auth_pattern_match(const char *pattern, const char *channel);

/* Permission decisions from the protocol's Channels section.
 * subscribe: user:<sub> only for its own sub; otherwise a matching `channels`
 * pattern (user: channels of others are refused even if a pattern matches).
 * publish: never user:; otherwise a matching `publish` pattern.
 * Return 1 when allowed. The channel must already be valid. */
int auth_can_subscribe(const auth_claims *c, const char *channel);
int auth_can_publish(const auth_claims *c, const char *channel);

/* Signs a token with an HMAC secret (HS256), for `wsgw token`, tests and the
 * demo backend. claims_json is a JSON object text (e.g. {"sub":"alice",
 * "exp":...}); kid may be NULL. On AUTH_OK *out is a malloc'd NUL-terminated
 * token the caller frees with free(). Returns AUTH_EWEAKKEY for a secret
 * shorter than AUTH_MIN_HMAC_SECRET, AUTH_ECLAIMS when claims_json is not a
 * JSON object, AUTH_ENOMEM. */
int auth_sign_hs256(const unsigned char *secret, size_t len, const char *kid,
                    const char *claims_json, char **out);

#ifdef __cplusplus
}
#endif
#endif
