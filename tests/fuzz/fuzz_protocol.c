/*
 * fuzz_protocol: libFuzzer target for the client-message parser
 * (gateway/src/protocol.c), the first code that reads every byte a
 * WebSocket client sends after the upgrade.
 *
 * Each input is one text message as a client would send it. The target
 * parses it with gw_cmd_parse and then does what the session does next with
 * the result, so that the reply builders and the publish path see parsed
 * data of every shape too: a malformed message gets its error reply (with
 * the id echoed), a valid one its acknowledgement, and a publish is wrapped
 * into a bus envelope, parsed back and turned into the subscribers' frame.
 * Besides memory errors, leaks and undefined behaviour, it aborts when the
 * parser breaks its documented contract: a command accepted with an invalid
 * channel, an empty token or a negative `since`, a reply that is not a JSON
 * object, or a publish whose data does not survive the trip through the bus
 * unchanged.
 *
 * protocol.c belongs to the wsgw executable, not to a library, so it is
 * compiled into this target directly (tests/fuzz/CMakeLists.txt).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "protocol.h"

#define HEADROOM 16                      /* stands in for LWS_PRE */
#define SENDER "fuzz.user"               /* the sub the gateway stamps on a publish */
#define SENT_MS ((int64_t)1700000000123) /* ... and the publish time */



/* A reply frame as the connection layer gets it: refs 1, the text NUL
 * terminated after len bytes, one JSON object with the expected type and
 * the echoed id. Consumes f. */
static void check_reply(ps_frame *f, const char *type, int has_id, int64_t id)
{
    json_t *o;

    CHECK(f != NULL);
    CHECK(f->refs == 1 && f->headroom == HEADROOM);
    CHECK(ps_frame_data(f)[f->len] == '\0');
    o = json_loadb((const char *)ps_frame_data(f), f->len, JSON_REJECT_DUPLICATES, NULL);
    CHECK(json_is_object(o));
    CHECK(member_is(o, "type", type));
    if (has_id)
        CHECK(json_integer_value(json_object_get(o, "id")) == id);
    else
        CHECK(json_object_get(o, "id") == NULL);
    json_decref(o);
    ps_frame_unref(f);
}

/* The session stamps the sender into an envelope, the bus carries it, and
 * every subscriber gets the frame built from it: the data must arrive as
 * the client sent it. */
static void check_publish_path(const gw_cmd *cmd)
{
    char *payload = NULL;
    size_t len = 0;
    ps_envelope env;
    ps_frame *f;
    json_t *o;

    CHECK(ps_envelope_encode(cmd->data, SENDER, SENT_MS, &payload, &len) == PS_OK);
    CHECK(strlen(payload) == len);
    CHECK(ps_envelope_parse(payload, len, &env) == PS_OK);
    CHECK(json_equal(env.data, cmd->data));
    CHECK(env.from && strcmp(env.from, SENDER) == 0);
    CHECK(env.offset == -1 && env.epoch == NULL && env.ts_ms == SENT_MS);
    f = ps_envelope_frame(&env, cmd->channel, HEADROOM);
    CHECK(f != NULL);
    o = json_loadb((const char *)ps_frame_data(f), f->len, JSON_REJECT_DUPLICATES, NULL);
    CHECK(json_is_object(o));
    CHECK(json_equal(json_object_get(o, "data"), cmd->data));
    CHECK(member_is(o, "type", "message") && member_is(o, "channel", cmd->channel));
    CHECK(json_object_get(o, "ts") == NULL); /* for the gateway's metrics only */
    json_decref(o);
    ps_frame_unref(f);
    ps_envelope_clear(&env);
    free(payload);
}

/* The other replies carry numbers and an epoch that reach them from
 * clients (id, since) or tokens (exp): any int64 must serialise. */
static void check_replies_with_numbers(const gw_cmd *cmd)
{
    ps_publish_result res = {.offset = cmd->since.offset};

    memcpy(res.epoch, cmd->since.epoch, sizeof(res.epoch) - 1);
    check_reply(
        gw_reply_published(cmd->has_id, cmd->id, cmd->since.present ? &res : NULL, HEADROOM),
        "published", cmd->has_id, cmd->id);
    check_reply(gw_reply_refreshed(cmd->has_id, cmd->id, cmd->id, HEADROOM), "refreshed",
                cmd->has_id, cmd->id);
    check_reply(gw_reply_auth_ok(SENDER, "c-1", cmd->id, HEADROOM), "auth_ok", 0, 0);
}

/* What every accepted command promises its handler (protocol.h). */
static void check_accepted(const gw_cmd *cmd)
{
    CHECK(cmd->typed);
    CHECK(json_is_object(cmd->root));
    switch (cmd->type) {
    case GW_CMD_AUTH:
    case GW_CMD_REFRESH:
        CHECK(cmd->token && cmd->token_len > 0 && strlen(cmd->token) == cmd->token_len);
        break;
    case GW_CMD_SUBSCRIBE:
        CHECK(auth_channel_valid(cmd->channel, strlen(cmd->channel)));
        CHECK(!cmd->token || (cmd->token_len > 0 && strlen(cmd->token) == cmd->token_len));
        if (cmd->since.present)
            CHECK(cmd->since.offset >= 0 && cmd->since.epoch[0] != '\0');
        break;
    case GW_CMD_UNSUBSCRIBE:
        CHECK(auth_channel_valid(cmd->channel, strlen(cmd->channel)));
        break;
    case GW_CMD_PUBLISH:
        CHECK(auth_channel_valid(cmd->channel, strlen(cmd->channel)));
        CHECK(cmd->data != NULL);
        check_publish_path(cmd);
        break;
    case GW_CMD_PING:
        break;
    default:
        CHECK(!"unknown command type");
    }
    check_reply(gw_reply_simple("subscribed", cmd->has_id, cmd->id,
                                cmd->channel[0] ? cmd->channel : NULL, HEADROOM),
                "subscribed", cmd->has_id, cmd->id);
    check_replies_with_numbers(cmd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gw_cmd cmd;
    const char *why = NULL;
    int rc = gw_cmd_parse((const char *)data, size, &cmd, &why);

    switch (rc) {
    case GW_PARSE_OK:
        check_accepted(&cmd);
        break;
    case GW_PARSE_BAD:
    case GW_PARSE_NOT_JSON:
        CHECK(why != NULL && why[0] != '\0');
        CHECK(rc == GW_PARSE_BAD || (!cmd.typed && !cmd.has_id && cmd.root == NULL));
        check_reply(gw_reply_error(cmd.has_id, cmd.id, GW_ERR_BAD_REQUEST, why, NULL, HEADROOM),
                    "error", cmd.has_id, cmd.id);
        break;
    default:
        CHECK(!"gw_cmd_parse returned an undocumented code");
    }
    gw_cmd_clear(&cmd);
    return 0;
}
