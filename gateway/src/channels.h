/*
 * channels: what a process knows about each channel its clients hold, and
 * how messages reach them in order, once each.
 *
 * Per channel (ps_subs channel data): whether the bus has confirmed the
 * subscription, and on history channels the last offset delivered live and
 * its epoch, so a lost Redis message shows as a jump and is filled from the
 * stream. Per subscription (ps_subs link data): its state (waiting for the
 * bus, reading history, live), the last offset the client got (so stored and
 * live copies of a message reach it once) and the live messages held back
 * while its history read is in flight.
 */
#ifndef GW_CHANNELS_H
#define GW_CHANNELS_H

#include <stdint.h>

#include "conn.h"
#include "protocol.h"
#include "server.h"

/* Subscribes c to cmd->channel (permission already checked) and answers
 * `subscribed` when the subscription is live: at once on a confirmed channel
 * without history, after the bus confirms it, or after the history read that
 * `since` (or the latest state) needs. Errors are answered here too.
 * token_exp: the exp of the subscription token that allowed it, 0 when the
 * connection's patterns did (gw_channels_expire ends it then). */
void gw_channels_subscribe(gw_server *s, gw_conn *c, const gw_cmd *cmd, int64_t token_exp);

/* The 1 s tick found c->sub_exp (plus the leeway) passed: ends each
 * subscription whose token expired, with an error event naming the channel,
 * unless the connection's patterns (after a refresh) now allow it; then
 * sets c->sub_exp to the next expiry. */
void gw_channels_expire(gw_server *s, gw_conn *c, int64_t now_s);

/* The subscription every connection gets to its own user: channel at auth:
 * live at once, no reply, no history read. */
int gw_channels_subscribe_user(gw_server *s, gw_conn *c, const char *channel);

/* Unsubscribes c from channel (no reply). Returns 0 or PS_ENOENT. */
int gw_channels_unsubscribe(gw_server *s, gw_conn *c, const char *channel);

/* c closed: every subscription and what it held goes. */
void gw_channels_remove_conn(gw_server *s, gw_conn *c);

/* Bus callbacks (udata is the gw_server). */
void gw_channels_on_message(void *udata, const char *channel, const char *payload, size_t len);
void gw_channels_on_subscribed(void *udata, const char *channel);
/* The bus is up again: fills that failed on the link are retried. */
void gw_channels_on_bus_up(gw_server *s);
/* The bus went down: every channel waits for its next confirmation. */
void gw_channels_on_bus_down(gw_server *s);

#endif
