/*
 * http_api: POST /api/publish, how backends publish through a gateway.
 *
 * Three parts: the API key set (loaded once at startup from --api-key-file,
 * compared in constant time), the parsing of a request body into a list of
 * (channel, data) messages, and the lws glue that reads the body, publishes
 * on the bus and answers once the bus has answered. The first two are pure
 * and unit-tested; `wsgw publish` shares gw_api_publish and
 * gw_api_result_json so the CLI and HTTP publish the same way.
 */
#ifndef GW_HTTP_API_H
#define GW_HTTP_API_H

#include <stddef.h>

#include <jansson.h>
#include <libwebsockets.h>
#include <pubsub/pubsub.h>

#include "config.h"
#include "server.h"

#define GW_API_PATH "/api/publish"
#define GW_API_KEY_MIN 16                    /* shorter keys stop the gateway at start */
#define GW_API_KEY_MAX 1024                  /* longer lines are refused as keys */
#define GW_API_BATCH_MAX 1000                /* messages in one batch request; more: 413 */
#define GW_API_BATCH_MAX_BYTES (1024 * 1024) /* body of a batch request; more: 413 */

/* ------------------------------------------------------------ API keys */

/* The accepted API keys, kept as SHA-256 digests only. */
typedef struct gw_api_keys gw_api_keys;

/* Returns an empty key set, or NULL on OOM. */
gw_api_keys *gw_api_keys_new(void);
void gw_api_keys_free(gw_api_keys *k);

/* Adds the keys of one key file's text (len bytes; `name` is used in
 * messages): one key per line, blank lines and lines starting with '#'
 * skipped, trailing spaces, tabs and CRs trimmed. A key must be
 * GW_API_KEY_MIN..GW_API_KEY_MAX bytes of visible ASCII. Returns the number
 * of keys added (0 is allowed here), or -1 with a one-line reason in err. */
int gw_api_keys_add_text(gw_api_keys *k, const char *text, size_t len, const char *name, char *err,
                         size_t errlen);

/* Loads every file of --api-key-file. On 0, *out is the key set (caller
 * frees), or NULL when no file is configured (the API is disabled). -1 with
 * err set when a file is unreadable, holds a bad key or holds no key at all:
 * the gateway refuses to start. Reads files: call at startup only. */
int gw_api_keys_load(const gw_strlist *files, gw_api_keys **out, char *err, size_t errlen);

size_t gw_api_keys_count(const gw_api_keys *k);

/* 1 when key (len bytes) is one of the set, else 0. Compares the key's
 * SHA-256 digest with every stored digest, with no early exit: the time
 * depends on neither which key matched nor how much of one did. */
int gw_api_keys_match(const gw_api_keys *k, const char *key, size_t len);

/* Finds the key in an Authorization header value "Bearer <key>" (scheme
 * case-insensitive, spaces around the key ignored). Returns 0 with *key
 * pointing into header, -1 when the value is not a non-empty bearer token. */
int gw_api_bearer(const char *header, size_t len, const char **key, size_t *key_len);

/* ------------------------------------------------------------ request bodies */

/* One message of a request. channel and data borrow from the body's root. */
typedef struct gw_api_msg {
    const char *channel; /* NULL when error is set */
    json_t *data;        /* any JSON value, null included */
    const char *error;   /* batch only: why this message is refused, else NULL */
} gw_api_msg;

typedef struct gw_api_body {
    json_t *root; /* owns everything */
    int batch;    /* 1: {"messages":[...]}, 0: {"channel":..,"data":..} */
    size_t n;     /* 1 for a single message */
    gw_api_msg *msgs;
} gw_api_body;

/* Parses a request body of len bytes. A single message larger than
 * max_single bytes (the whole body counts) is 413, as is a batch of more than
 * GW_API_BATCH_MAX messages or GW_API_BATCH_MAX_BYTES. In a batch, a message
 * that is bad on its own (not an object, no or bad channel, no data) gets its
 * own error and the others go ahead; a bad single message is a 400. A "from"
 * and any other unknown field are ignored. Returns 0 (clear *out with
 * gw_api_body_clear), or the HTTP status (400, 413, 500 on OOM) with *why a
 * static reason and *out empty. */
int gw_api_parse_body(const char *body, size_t len, size_t max_single, gw_api_body *out,
                      const char **why);
void gw_api_body_clear(gw_api_body *b);

/* ------------------------------------------------------------ publishing */

/* Publishes data to channel as the system (an envelope without "from"),
 * with the history policy of the channel's namespace in cfg, or none when
 * with_history is 0. Returns what ps_bus_publish returns (cb follows only for
 * PS_OK), or PS_ETOOBIG when the envelope is over max_bytes. */
int gw_api_publish(ps_bus *bus, const gw_config *cfg, const char *channel, json_t *data,
                   size_t max_bytes, int with_history, ps_publish_cb *cb, void *udata);

/* The JSON a successful publish answers: {"offset":N,"epoch":"E"}, or {}
 * when res is NULL (no history). NULL on OOM; the caller owns it. */
json_t *gw_api_result_json(const ps_publish_result *res);

/* ------------------------------------------------------------ lws glue */

/* Loads the keys of s->cfg->api_key_files into s->api_keys (NULL: none
 * configured, the endpoint answers 401 "publish API disabled") and logs the
 * outcome. Returns 0, or -1 with the reason logged: the gateway must not
 * start. gw_api_keys_free(s->api_keys) undoes it. */
int gw_api_init(gw_server *s);

/* Per-request state of an /api/publish request (http_api.c). */
typedef struct gw_api_req gw_api_req;

/* LWS_CALLBACK_HTTP on GW_API_PATH: checks method, key and length, then
 * waits for the body. Returns what the lws callback returns. */
int gw_api_on_http(gw_server *s, struct lws *wsi, gw_conn *c);

/* 1 when reason is one gw_api_callback handles (HTTP_BODY,
 * HTTP_BODY_COMPLETION, HTTP_WRITEABLE, HTTP_DROP_PROTOCOL, CLOSED_HTTP) and
 * c, lws's per-session data, holds an /api/publish request. Other reasons
 * may pass something else as user: c is not read for them. */
int gw_api_owns(enum lws_callback_reasons reason, const gw_conn *c);

/* Those reasons for such a connection. Returns what the lws callback
 * returns. */
int gw_api_callback(gw_server *s, struct lws *wsi, enum lws_callback_reasons reason, gw_conn *c,
                    void *in, size_t len);

#endif
