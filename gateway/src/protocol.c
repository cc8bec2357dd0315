/*
 * protocol: the client side of wire protocol v1, as data.
 *
 * A client message is one JSON object. Parsing is strict where a mistake
 * would be silent (duplicate keys, an id that is not an integer, a channel
 * name outside the allowed alphabet) and lenient where the protocol may grow
 * (unknown extra fields are ignored). Replies are built once into frames with
 * room for the WebSocket header, so the connection layer can send them
 * without copying.
 */
#include "protocol.h"

#include <string.h>

typedef struct cmd_name {
    const char *name;
    gw_cmd_type type;
} cmd_name;

static const cmd_name cmd_names[] = {
    {"auth", GW_CMD_AUTH},       {"subscribe", GW_CMD_SUBSCRIBE},
    {"unsubscribe", GW_CMD_UNSUBSCRIBE}, {"publish", GW_CMD_PUBLISH},
    {"refresh", GW_CMD_REFRESH}, {"ping", GW_CMD_PING},
};

static int lookup_type(const char *s, gw_cmd_type *out)
{
    for (size_t i = 0; i < sizeof(cmd_names) / sizeof(cmd_names[0]); i++) {
        if (strcmp(cmd_names[i].name, s) == 0) {
            *out = cmd_names[i].type;
            return 0;
        }
    }
    return -1;
}

static int parse_channel(gw_cmd *cmd, const char **why)
{
    json_t *ch = json_object_get(cmd->root, "channel");
    if (!json_is_string(ch)) {
        *why = "channel must be a string";
        return -1;
    }
    size_t len = json_string_length(ch);
    if (!auth_channel_valid(json_string_value(ch), len)) {
        *why = "bad channel name";
        return -1;
    }
    memcpy(cmd->channel, json_string_value(ch), len);
    cmd->channel[len] = '\0';
    return 0;
}

static int parse_token(gw_cmd *cmd, int required, const char **why)
{
    json_t *tok = json_object_get(cmd->root, "token");
    if (!tok && !required)
        return 0;
    if (!json_is_string(tok) || json_string_length(tok) == 0) {
        *why = "token must be a non-empty string";
        return -1;
    }
    cmd->token = json_string_value(tok);
    cmd->token_len = json_string_length(tok);
    return 0;
}

static int epoch_valid(const char *s, size_t len)
{
    if (len == 0 || len > 64)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

static int parse_since(gw_cmd *cmd, const char **why)
{
    json_t *since = json_object_get(cmd->root, "since");
    if (!since)
        return 0;
    json_t *off = json_object_get(since, "offset");
    json_t *ep = json_object_get(since, "epoch");
    if (!json_is_object(since) || !json_is_integer(off) || json_integer_value(off) < 0 ||
        !json_is_string(ep) || !epoch_valid(json_string_value(ep), json_string_length(ep))) {
        *why = "since must be {\"offset\":<integer >= 0>,\"epoch\":\"<epoch>\"}";
        return -1;
    }
    cmd->since.present = 1;
    cmd->since.offset = json_integer_value(off);
    memcpy(cmd->since.epoch, json_string_value(ep), json_string_length(ep) + 1);
    return 0;
}

static int parse_fields(gw_cmd *cmd, const char **why)
{
    switch (cmd->type) {
    case GW_CMD_AUTH:
    case GW_CMD_REFRESH:
        return parse_token(cmd, 1, why);
    case GW_CMD_SUBSCRIBE:
        if (parse_channel(cmd, why) < 0 || parse_token(cmd, 0, why) < 0)
            return -1;
        return parse_since(cmd, why);
    case GW_CMD_UNSUBSCRIBE:
        return parse_channel(cmd, why);
    case GW_CMD_PUBLISH:
        if (parse_channel(cmd, why) < 0)
            return -1;
        cmd->data = json_object_get(cmd->root, "data");
        if (!cmd->data) {
            *why = "publish needs data";
            return -1;
        }
        return 0;
    case GW_CMD_PING:
        return 0;
    }
    return -1;
}

static int parse_head(gw_cmd *cmd, const char **why)
{
    json_t *id = json_object_get(cmd->root, "id");
    json_t *type = json_object_get(cmd->root, "type");
    if (id) {
        if (!json_is_integer(id)) {
            *why = "id must be an integer";
            return -1;
        }
        cmd->has_id = 1;
        cmd->id = json_integer_value(id);
    }
    if (!json_is_string(type)) {
        *why = "type must be a string";
        return -1;
    }
    if (lookup_type(json_string_value(type), &cmd->type) < 0) {
        *why = "unknown type";
        return -1;
    }
    cmd->typed = 1;
    return 0;
}

int gw_cmd_parse(const char *buf, size_t len, gw_cmd *cmd, const char **why)
{
    memset(cmd, 0, sizeof(*cmd));
    cmd->root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(cmd->root)) {
        *why = "message is not a JSON object";
        gw_cmd_clear(cmd);
        return GW_PARSE_NOT_JSON;
    }
    if (parse_head(cmd, why) < 0 || parse_fields(cmd, why) < 0)
        return GW_PARSE_BAD;
    return GW_PARSE_OK;
}

void gw_cmd_clear(gw_cmd *cmd)
{
    json_decref(cmd->root);
    cmd->root = NULL;
    cmd->token = NULL;
    cmd->data = NULL;
}

ps_frame *gw_frame_from_json(json_t *obj, size_t headroom)
{
    size_t len = json_dumpb(obj, NULL, 0, JSON_COMPACT);
    ps_frame *f;
    if (len == 0)
        return NULL;
    f = ps_frame_new(headroom, len);
    if (!f)
        return NULL;
    json_dumpb(obj, (char *)ps_frame_data(f), len, JSON_COMPACT);
    ps_frame_data(f)[len] = '\0';
    return f;
}

/* Builds, serialises and releases obj (which may be NULL after an OOM). */
static ps_frame *finish(json_t *obj, int has_id, int64_t id, size_t headroom)
{
    ps_frame *f = NULL;
    if (!obj)
        return NULL;
    if (has_id)
        json_object_set_new(obj, "id", json_integer(id));
    f = gw_frame_from_json(obj, headroom);
    json_decref(obj);
    return f;
}

ps_frame *gw_reply_auth_ok(const char *user, const char *conn, int64_t exp, size_t headroom)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:I}", "type", "auth_ok", "user", user, "conn", conn,
                          "exp", (json_int_t)exp);
    return finish(o, 0, 0, headroom);
}

ps_frame *gw_reply_simple(const char *type, int has_id, int64_t id, const char *channel,
                          size_t headroom)
{
    json_t *o = json_pack("{s:s}", "type", type);
    if (o && channel)
        json_object_set_new(o, "channel", json_string(channel));
    return finish(o, has_id, id, headroom);
}

ps_frame *gw_reply_published(int has_id, int64_t id, const ps_publish_result *res,
                             size_t headroom)
{
    json_t *o = json_pack("{s:s}", "type", "published");
    if (o && res) {
        json_object_set_new(o, "offset", json_integer(res->offset));
        json_object_set_new(o, "epoch", json_string(res->epoch));
    }
    return finish(o, has_id, id, headroom);
}

ps_frame *gw_reply_refreshed(int has_id, int64_t id, int64_t exp, size_t headroom)
{
    json_t *o = json_pack("{s:s,s:I}", "type", "refreshed", "exp", (json_int_t)exp);
    return finish(o, has_id, id, headroom);
}

ps_frame *gw_reply_error(int has_id, int64_t id, const char *code, const char *message,
                         const char *channel, size_t headroom)
{
    json_t *o = json_pack("{s:s,s:s,s:s}", "type", "error", "code", code, "message", message);
    if (o && channel)
        json_object_set_new(o, "channel", json_string(channel));
    return finish(o, has_id, id, headroom);
}
