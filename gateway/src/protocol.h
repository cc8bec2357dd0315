/*
 * protocol: the client side of wire protocol v1, as data.
 *
 * Parses one client text message into a gw_cmd and builds the gateway's
 * replies as shared frames. Pure functions: no connection, no network, so
 * every malformed variant can be unit tested. The rules live in
 * shared/protocol-v1.md and docs/protocol.md.
 */
#ifndef GW_PROTOCOL_H
#define GW_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#include <auth/auth.h>
#include <jansson.h>
#include <pubsub/pubsub.h>

typedef enum gw_cmd_type {
    GW_CMD_AUTH,
    GW_CMD_SUBSCRIBE,
    GW_CMD_UNSUBSCRIBE,
    GW_CMD_PUBLISH,
    GW_CMD_REFRESH,
    GW_CMD_PING,
} gw_cmd_type;

/* Outcome of parsing. */
#define GW_PARSE_OK 0
#define GW_PARSE_NOT_JSON -1   /* not a JSON object at all */
#define GW_PARSE_BAD -2        /* an object, but not a valid command */

typedef struct gw_since {
    int present;
    int64_t offset;
    char epoch[65];
} gw_since;

/* A parsed command. root owns the JSON; token and data borrow from it and
 * live until gw_cmd_clear. */
typedef struct gw_cmd {
    json_t *root;
    gw_cmd_type type;
    int typed;                              /* type was read (also on GW_PARSE_BAD) */
    int has_id;
    int64_t id;
    char channel[AUTH_MAX_CHANNEL_LEN + 1]; /* subscribe, unsubscribe, publish */
    const char *token;                      /* auth, refresh; subscribe: optional */
    size_t token_len;
    json_t *data;                           /* publish */
    gw_since since;                         /* subscribe: optional */
} gw_cmd;

/* Parses len bytes of text. On GW_PARSE_OK fills *cmd (clear it after). On
 * GW_PARSE_BAD, *cmd still has has_id/id when the message carried a valid id
 * (so the error reply can echo it) and *why says what is wrong (static text).
 * On GW_PARSE_NOT_JSON *why says that too. */
int gw_cmd_parse(const char *buf, size_t len, gw_cmd *cmd, const char **why);
void gw_cmd_clear(gw_cmd *cmd);

/* Reply frames, each with `headroom` free bytes in front, refs = 1, NULL on
 * OOM. id is echoed when has_id. */
ps_frame *gw_frame_from_json(json_t *obj, size_t headroom);
ps_frame *gw_reply_auth_ok(const char *user, const char *conn, int64_t exp, size_t headroom);
/* {"type":type[,"id":id][,"channel":channel]}: subscribed, unsubscribed,
 * published, pong. channel may be NULL. */
ps_frame *gw_reply_simple(const char *type, int has_id, int64_t id, const char *channel,
                          size_t headroom);
/* {"type":"published"[,"id":id][,"offset":N,"epoch":"E"]}; res may be NULL. */
ps_frame *gw_reply_published(int has_id, int64_t id, const ps_publish_result *res,
                             size_t headroom);
ps_frame *gw_reply_refreshed(int has_id, int64_t id, int64_t exp, size_t headroom);
/* {"type":"error"[,"id":id],"code":code,"message":message[,"channel":channel]} */
ps_frame *gw_reply_error(int has_id, int64_t id, const char *code, const char *message,
                         const char *channel, size_t headroom);

/* Error codes of the protocol. */
#define GW_ERR_BAD_REQUEST "bad_request"
#define GW_ERR_FORBIDDEN "forbidden"
#define GW_ERR_RATE_LIMITED "rate_limited"
#define GW_ERR_LIMIT_EXCEEDED "limit_exceeded"
#define GW_ERR_UNAVAILABLE "unavailable"

#endif
