/*
 * session: what a client connection says and how the gateway answers.
 *
 * This is the lws protocol callback for WebSocket connections. It assembles
 * complete text messages (enforcing --max-message-bytes and refusing binary
 * frames), runs the first-message authentication, then dispatches each
 * command of protocol v1 to a small handler. Every handler answers with a
 * reply or an error frame and keeps the connection open; only protocol
 * violations before auth, bad tokens and oversized or binary frames close it,
 * each with its documented code. HTTP requests on the same port are passed to
 * http.c.
 */
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channels.h"
#include "conn.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "protocol.h"
#include "timers.h"

/* A publish on its way to the bus. It names the connection by serial, not by
 * pointer, because the connection may close before the bus answers. */
typedef struct pending_publish {
    gw_server *srv;
    uint64_t serial;
    int has_id;
    int64_t id;
    char channel[AUTH_MAX_CHANNEL_LEN + 1]; /* an error names it, as every error does */
} pending_publish;

/* Wall-clock seconds for the token checks. Not time(NULL): on Linux it
 * reads the coarse clock, a few milliseconds behind the one an issuer (or
 * a test) reads, so right after a second boundary a fresh token's iat
 * would be one second in the future, refused when the leeway is 0. */
static int64_t now_s(void)
{
    return ps_now_ms() / 1000;
}

static gw_server *server_of(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}

static void reply_error(gw_conn *c, const gw_cmd *cmd, const char *code, const char *msg,
                        const char *channel)
{
    gw_conn_send_owned(c, gw_reply_error(cmd->has_id, cmd->id, code, msg, channel, LWS_PRE));
}

static void reply_simple(gw_conn *c, const gw_cmd *cmd, const char *type, const char *channel)
{
    gw_conn_send_owned(c, gw_reply_simple(type, cmd->has_id, cmd->id, channel, LWS_PRE));
}

/* The connection's own channel, user:<sub>, into buf. */
#define USER_CHANNEL_LEN (AUTH_MAX_SUB_LEN + 6)
static const char *user_channel_of(const gw_conn *c, char buf[USER_CHANNEL_LEN])
{
    snprintf(buf, USER_CHANNEL_LEN, "user:%s", c->claims.sub);
    return buf;
}

/* ------------------------------------------------------------ auth phase */

static void handle_auth(gw_conn *c, const char *buf, size_t len)
{
    gw_cmd cmd;
    const char *why;
    char user_channel[USER_CHANNEL_LEN];
    int rc = gw_cmd_parse(buf, len, &cmd, &why);

    if (!cmd.typed || cmd.type != GW_CMD_AUTH) {
        gw_metrics_auth(c->srv, GW_AUTH_PROTOCOL);
        gw_info("auth_protocol_violation", c->id, "%s",
                rc == GW_PARSE_OK ? "first message is not auth" : why);
        gw_conn_close(c, 1008, rc == GW_PARSE_NOT_JSON ? why : "expected auth message");
        goto out;
    }
    if (rc != GW_PARSE_OK) {
        /* An auth message without a usable token: a token that fails. */
        gw_metrics_auth(c->srv, AUTH_EMALFORMED);
        gw_info("auth_failed", c->id, "%s", why);
        gw_conn_close(c, 4001, auth_strerror(AUTH_EMALFORMED));
        goto out;
    }
    rc = auth_verify_connection(c->srv->keys, cmd.token, cmd.token_len, now_s(), &c->claims);
    gw_metrics_auth(c->srv, rc);
    if (rc != AUTH_OK) {
        gw_info("auth_failed", c->id, "%s", auth_strerror(rc));
        gw_conn_close(c, 4001, auth_strerror(rc));
        goto out;
    }
    c->state = GW_CONN_OPEN;
    gw_rate_init(&c->pub_rate, c->srv->cfg->publish_burst, gw_timers_now_ms(c->srv));
    gw_timers_authed(c->srv, c); /* expiry: the tick checks claims.exp (timers.c) */
    gw_conn_send_owned(c, gw_reply_auth_ok(c->claims.sub, c->id, c->claims.exp, LWS_PRE));
    rc = gw_channels_subscribe_user(c->srv, c, user_channel_of(c, user_channel));
    if (rc < 0 && rc != PS_EEXISTS)
        gw_warn("user_channel_failed", c->id, "%s", ps_strerror(rc));
    gw_info("auth_ok", c->id, "user %s", c->claims.sub);
out:
    gw_cmd_clear(&cmd);
}

/* ------------------------------------------------------------ commands */

/* Allowed by the connection token's patterns, or by a subscription token for
 * exactly this channel and user. Returns 1 with *token_exp the subscription
 * token's exp (0: the patterns allow it, nothing expires), or 0 with *why. */
static int may_subscribe(gw_conn *c, const gw_cmd *cmd, int64_t *token_exp, const char **why)
{
    int64_t exp;
    int rc;
    *token_exp = 0;
    if (auth_can_subscribe(&c->claims, cmd->channel))
        return 1;
    if (!cmd->token) {
        *why = "not allowed to subscribe to this channel";
        return 0;
    }
    rc = auth_verify_subscription(c->srv->keys, cmd->token, cmd->token_len, now_s(),
                                  c->claims.sub, cmd->channel, &exp);
    if (rc != AUTH_OK) {
        *why = auth_strerror(rc);
        return 0;
    }
    *token_exp = exp;
    return 1;
}

/* --max-subscriptions: one more channel would pass it. The connection's own
 * user: channel, which it never asked for, does not count. */
static int over_subscription_limit(gw_conn *c, const char *channel)
{
    char user_channel[USER_CHANNEL_LEN];
    size_t held;
    if (ps_subs_has(c->srv->subs, channel, c))
        return 0; /* a resubscribe adds nothing */
    held = ps_subs_count(c->srv->subs, c) -
           (size_t)ps_subs_has(c->srv->subs, user_channel_of(c, user_channel), c);
    return (int64_t)held >= c->srv->cfg->max_subscriptions;
}

static void cmd_subscribe(gw_conn *c, gw_cmd *cmd)
{
    const char *why;
    int64_t token_exp;
    /* Before the permission check: at the limit, no token is verified. */
    if (over_subscription_limit(c, cmd->channel)) {
        c->srv->counters.limit_subs_refused++;
        reply_error(c, cmd, GW_ERR_LIMIT_EXCEEDED, "too many subscriptions", cmd->channel);
        return;
    }
    if (!may_subscribe(c, cmd, &token_exp, &why)) {
        reply_error(c, cmd, GW_ERR_FORBIDDEN, why, cmd->channel);
        return;
    }
    if (!c->srv->bus_up && !ps_subs_has(c->srv->subs, cmd->channel, c)) {
        reply_error(c, cmd, GW_ERR_UNAVAILABLE, "message bus unavailable, retry", cmd->channel);
        return;
    }
    /* The reply comes from channels.c once the subscription is live. */
    gw_channels_subscribe(c->srv, c, cmd, token_exp);
}

static void cmd_unsubscribe(gw_conn *c, gw_cmd *cmd)
{
    /* Unsubscribing from a channel one does not hold is not an error: the
     * outcome the client asked for holds either way. */
    gw_channels_unsubscribe(c->srv, c, cmd->channel);
    reply_simple(c, cmd, "unsubscribed", cmd->channel);
}

static void on_published(void *udata, int status, const ps_publish_result *res)
{
    pending_publish *p = udata;
    gw_conn *c = NULL;
    HASH_FIND(hh, p->srv->conns, &p->serial, sizeof(p->serial), c);
    if (c && c->state == GW_CONN_OPEN) {
        gw_cmd reply_to = {.has_id = p->has_id, .id = p->id};
        if (status == PS_OK)
            gw_conn_send_owned(c, gw_reply_published(p->has_id, p->id, res, LWS_PRE));
        else
            reply_error(c, &reply_to, GW_ERR_UNAVAILABLE, ps_strerror(status), p->channel);
    }
    free(p);
}

/* The publish token bucket: 1 when this publish may go on; otherwise it was
 * answered rate_limited, or the connection is closing with 4029. Every
 * publish command counts, allowed or not, so a flood of forbidden ones is
 * metered too. */
static int publish_allowed_now(gw_conn *c, const gw_cmd *cmd)
{
    const gw_config *cfg = c->srv->cfg;
    switch (gw_rate_take(&c->pub_rate, cfg->publish_rate, cfg->publish_burst,
                         gw_timers_now_ms(c->srv))) {
    case GW_RATE_OK:
        return 1;
    case GW_RATE_LIMITED:
        c->srv->counters.limit_rate_limited++;
        reply_error(c, cmd, GW_ERR_RATE_LIMITED, "too many publishes, slow down", cmd->channel);
        return 0;
    default:
        c->srv->counters.limit_rate_closes++;
        gw_info("rate_limit_close", c->id, "user %s kept publishing while rate limited",
                c->claims.sub);
        gw_conn_close(c, 4029, "rate limited");
        return 0;
    }
}

static void cmd_publish(gw_conn *c, gw_cmd *cmd)
{
    char *payload = NULL;
    size_t len;
    pending_publish *p = NULL;
    const gw_namespace *ns;
    ps_history_policy policy;
    int rc;

    if (!publish_allowed_now(c, cmd))
        return;
    if (!auth_can_publish(&c->claims, cmd->channel)) {
        reply_error(c, cmd, GW_ERR_FORBIDDEN, "not allowed to publish to this channel",
                    cmd->channel);
        return;
    }
    if (!c->srv->bus_up) {
        reply_error(c, cmd, GW_ERR_UNAVAILABLE, "message bus unavailable, retry", cmd->channel);
        return;
    }
    /* The gateway stamps the sender; a "from" the client sent is not read. */
    if (ps_envelope_encode(cmd->data, c->claims.sub, ps_now_ms(), &payload, &len) != PS_OK ||
        !(p = malloc(sizeof(*p)))) {
        reply_error(c, cmd, GW_ERR_UNAVAILABLE, "out of memory", cmd->channel);
        goto out;
    }
    *p = (pending_publish){c->srv, c->serial, cmd->has_id, cmd->id, ""};
    snprintf(p->channel, sizeof(p->channel), "%s", cmd->channel);
    ns = gw_config_namespace(c->srv->cfg, cmd->channel);
    if (ns)
        policy = (ps_history_policy){ns->size, ns->ttl_s};
    rc = ps_bus_publish(c->srv->bus, cmd->channel, payload, len, ns ? &policy : NULL,
                        on_published, p);
    if (rc != PS_OK) {
        free(p);
        reply_error(c, cmd, rc == PS_ETOOBIG ? GW_ERR_BAD_REQUEST : GW_ERR_UNAVAILABLE,
                    ps_strerror(rc), cmd->channel);
        goto out;
    }
    c->srv->counters.client_publishes++;
out:
    free(payload);
}

static void cmd_refresh(gw_conn *c, gw_cmd *cmd)
{
    auth_claims fresh = {0};
    int rc = auth_verify_connection(c->srv->keys, cmd->token, cmd->token_len, now_s(), &fresh);
    if (rc == AUTH_OK && strcmp(fresh.sub, c->claims.sub) != 0)
        rc = AUTH_EWRONGSUB;
    if (rc != AUTH_OK) {
        /* The old token and its expiry stay in force. */
        auth_claims_free(&fresh);
        reply_error(c, cmd, GW_ERR_FORBIDDEN, auth_strerror(rc), NULL);
        return;
    }
    auth_claims_free(&c->claims);
    c->claims = fresh; /* the tick now checks the new exp */
    gw_conn_send_owned(c, gw_reply_refreshed(cmd->has_id, cmd->id, c->claims.exp, LWS_PRE));
}

static void handle_command(gw_conn *c, const char *buf, size_t len)
{
    gw_cmd cmd;
    const char *why;
    int rc = gw_cmd_parse(buf, len, &cmd, &why);
    if (rc != GW_PARSE_OK) {
        /* The channel is set once it was read and valid: the error names
         * it then, like every other error about a channel. */
        reply_error(c, &cmd, GW_ERR_BAD_REQUEST, why, cmd.channel[0] ? cmd.channel : NULL);
        goto out;
    }
    switch (cmd.type) {
    case GW_CMD_AUTH:
        reply_error(c, &cmd, GW_ERR_BAD_REQUEST, "already authenticated", NULL);
        break;
    case GW_CMD_SUBSCRIBE:
        cmd_subscribe(c, &cmd);
        break;
    case GW_CMD_UNSUBSCRIBE:
        cmd_unsubscribe(c, &cmd);
        break;
    case GW_CMD_PUBLISH:
        cmd_publish(c, &cmd);
        break;
    case GW_CMD_REFRESH:
        cmd_refresh(c, &cmd);
        break;
    case GW_CMD_PING:
        reply_simple(c, &cmd, "pong", NULL);
        break;
    }
out:
    gw_cmd_clear(&cmd);
}

/* ------------------------------------------------------------ lws events */

static void on_established(gw_server *s, gw_conn *c, struct lws *wsi)
{
    c->wsi = wsi;
    c->srv = s;
    c->serial = ++s->next_serial;
    snprintf(c->id, sizeof(c->id), "%s-%llx", s->id_prefix, (unsigned long long)c->serial);
    c->state = GW_CONN_AUTHING;
    HASH_ADD(hh, s->conns, serial, sizeof(c->serial), c);
    c->registered = 1;
    s->counters.conns_total++;
    c->last_seen_ms = gw_timers_now_ms(s);
    gw_timers_authing(s, c);
    gw_debug("conn_open", c->id, NULL);
}

static void handle_message(gw_conn *c, const char *buf, size_t len)
{
    if (c->state == GW_CONN_AUTHING)
        handle_auth(c, buf, len);
    else if (c->state == GW_CONN_OPEN)
        handle_command(c, buf, len);
}

/* Any data or PONG from the peer proves it is there (keepalive, timers.c). */
static void seen(gw_conn *c)
{
    c->last_seen_ms = gw_timers_now_ms(c->srv);
    c->ping_state = GW_PING_IDLE;
}

/* lws hands a message over in pieces (fragments, or rx_buffer_size chunks of
 * one frame). Small complete messages are handled in place; others are
 * assembled, after checking the total against the limit. */
static void on_receive(gw_conn *c, const char *in, size_t len)
{
    struct lws *wsi = c->wsi;
    size_t rem = lws_remaining_packet_payload(wsi);
    int final = lws_is_final_fragment(wsi) && rem == 0;

    if (c->state == GW_CONN_CLOSING)
        return;
    seen(c);
    if (lws_frame_is_binary(wsi)) {
        c->srv->counters.limit_binary++;
        gw_conn_close(c, 1003, "binary frames are not supported");
        return;
    }
    if (c->rx_len + len + rem > (size_t)c->srv->cfg->max_message_bytes) {
        c->srv->counters.limit_too_big++;
        gw_conn_close(c, 1009, "message too big");
        return;
    }
    if (final && c->rx_len == 0) {
        handle_message(c, in, len);
        return;
    }
    if (gw_conn_rx_append(c, in, len) < 0) {
        gw_conn_close(c, 1011, "out of memory");
        return;
    }
    if (final) {
        handle_message(c, c->rx, c->rx_len);
        gw_conn_rx_reset(c);
    }
}

static void on_closed(gw_server *s, gw_conn *c)
{
    /* An upgrade the filter refused closes too, but it never was
     * established: there is nothing of ours to release. */
    if (!c->srv)
        return;
    if (c->registered) {
        HASH_DELETE(hh, s->conns, c);
        c->registered = 0;
        gw_channels_remove_conn(s, c);
    }
    gw_debug("conn_closed", c->id, NULL);
    gw_conn_release(c);
    if (s->stopping && !s->conns)
        gw_server_clients_gone(s);
}

/* A connection's HTTP request (plain or upgrade) was complete. The mark is
 * lws's opaque per-connection pointer, so it costs the connection nothing. */
static void mark_request_seen(struct lws *wsi)
{
    static char request_seen;
    lws_set_opaque_user_data(wsi, &request_seen);
}

int gw_session_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                        size_t len)
{
    gw_server *s = server_of(wsi);
    gw_conn *c = user;

    switch (reason) {
    case LWS_CALLBACK_FILTER_HTTP_CONNECTION:
        mark_request_seen(wsi);
        return gw_http_callback(s, wsi, reason, user, in, len);
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        mark_request_seen(wsi);
        return gw_http_filter_upgrade(s, wsi);
    case LWS_CALLBACK_WSI_DESTROY:
        /* Closed before a whole request arrived: lws's handshake timeout
         * (--handshake-timeout-seconds), or a peer that gave up. */
        if (!lws_get_opaque_user_data(wsi))
            s->counters.limit_handshake_timeouts++;
        return gw_http_callback(s, wsi, reason, user, in, len);
    case LWS_CALLBACK_ESTABLISHED:
        on_established(s, c, wsi);
        return 0;
    case LWS_CALLBACK_RECEIVE:
        on_receive(c, in, len);
        return 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        gw_conn_peer_closing(c);
        return 0;
    case LWS_CALLBACK_RECEIVE_PONG:
        seen(c);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return gw_conn_on_writable(c);
    case LWS_CALLBACK_CLOSED:
        on_closed(s, c);
        return 0;
    default:
        return gw_http_callback(s, wsi, reason, user, in, len);
    }
}
