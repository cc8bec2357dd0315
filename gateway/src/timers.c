/*
 * timers: every per-connection deadline of a process, without a timer per
 * connection.
 *
 * The auth FIFO is an intrusive doubly-linked list through the connections
 * (auth_prev/auth_next), ordered by arrival and so by deadline. The tick
 * closes connections whose token expired (4003), ends subscriptions whose
 * subscription token expired (each connection keeps only the earliest such
 * exp, so this costs one comparison per connection), forgets the per-address
 * connect windows that have passed (client_limits.c), asks lws to send a
 * WebSocket PING to a connection that has been silent for
 * --ping-interval-seconds, and drops one that has stayed silent for
 * --ping-timeout-seconds (a vanished phone). Anything received counts as a
 * sign of life, PONGs included.
 */
#include "timers.h"


#include "channels.h"
#include "conn.h"
#include "client_limits.h"
#include "log.h"
#include "metrics.h"

#define TICK_MS 1000

uint64_t gw_timers_now_ms(const gw_server *s)
{
    return uv_now(s->loop);
}

static void on_auth_timer(uv_timer_t *t);

static void rearm(gw_server *s)
{
    uint64_t now = gw_timers_now_ms(s);
    gw_conn *head = s->authing_head;
    if (!head) {
        uv_timer_stop(&s->auth_timer);
        return;
    }
    uv_timer_start(&s->auth_timer, on_auth_timer,
                   head->auth_deadline_ms > now ? head->auth_deadline_ms - now : 0, 0);
}

static void unlink_authing(gw_server *s, gw_conn *c)
{
    if (c->auth_prev)
        c->auth_prev->auth_next = c->auth_next;
    else if (s->authing_head == c)
        s->authing_head = c->auth_next;
    else
        return; /* not in the list */
    if (c->auth_next)
        c->auth_next->auth_prev = c->auth_prev;
    else
        s->authing_tail = c->auth_prev;
    c->auth_prev = c->auth_next = NULL;
}

static void on_auth_timer(uv_timer_t *t)
{
    gw_server *s = t->data;
    uint64_t now = gw_timers_now_ms(s);
    gw_conn *c;
    while ((c = s->authing_head) && c->auth_deadline_ms <= now) {
        unlink_authing(s, c);
        gw_info("auth_timeout", c->id, NULL);
        gw_metrics_auth(s, GW_AUTH_TIMEOUT);
        gw_conn_close(c, 4002, "auth timeout");
    }
    rearm(s);
}

void gw_timers_authing(gw_server *s, gw_conn *c)
{
    c->auth_deadline_ms = gw_timers_now_ms(s) + (uint64_t)s->cfg->auth_timeout_ms;
    c->auth_next = NULL;
    c->auth_prev = s->authing_tail;
    if (s->authing_tail)
        s->authing_tail->auth_next = c;
    else
        s->authing_head = c;
    s->authing_tail = c;
    if (s->authing_head == c)
        rearm(s);
}

void gw_timers_authed(gw_server *s, gw_conn *c)
{
    int was_head = s->authing_head == c;
    unlink_authing(s, c);
    if (was_head)
        rearm(s);
}

/* Expiry and keepalive for one connection. */
static void tick_conn(gw_server *s, gw_conn *c, int64_t now_s, uint64_t now_ms)
{
    uint64_t silent = now_ms - c->last_seen_ms;
    if (c->state == GW_CONN_CLOSING)
        return;
    if (c->q_count == 0 && c->q) {
        /* An idle connection gives its send ring back: 80 bytes of each
         * idle connection, and a busy one keeps its ring between writes. */
        gw_conn_queue_release(c);
    }
    if (c->state == GW_CONN_OPEN &&
        now_s >= c->claims.exp + s->cfg->jwt_leeway_seconds) {
        gw_info("token_expired", c->id, "user %s", c->claims.sub);
        gw_conn_close(c, 4003, "token expired");
        return;
    }
    if (c->state == GW_CONN_OPEN && c->sub_exp &&
        now_s >= c->sub_exp + s->cfg->jwt_leeway_seconds)
        gw_channels_expire(s, c, now_s);
    if (silent >= (uint64_t)s->cfg->ping_timeout_s * 1000) {
        gw_info("peer_timeout", c->id, "silent for %llu ms", (unsigned long long)silent);
        gw_conn_hangup(c);
        return;
    }
    if (silent >= (uint64_t)s->cfg->ping_interval_s * 1000 && c->ping_state == GW_PING_IDLE) {
        c->ping_state = GW_PING_DUE;
        lws_callback_on_writable(c->wsi);
    }
}

static void on_tick(uv_timer_t *t)
{
    gw_server *s = t->data;
    int64_t now_s = ps_now_ms() / 1000; /* the clock session.c verifies with */
    uint64_t now_ms = gw_timers_now_ms(s);
    gw_conn *c, *tmp;
    HASH_ITER(hh, s->conns, c, tmp)
    {
        tick_conn(s, c, now_s, now_ms);
    }
    gw_ip_table_prune(s->ips, now_ms);
}

void gw_timers_start(gw_server *s)
{
    uv_timer_init(s->loop, &s->auth_timer);
    uv_timer_init(s->loop, &s->tick);
    s->auth_timer.data = s->tick.data = s;
    uv_timer_start(&s->tick, on_tick, TICK_MS, TICK_MS);
    s->timers_started = 1;
}

static void on_closed(uv_handle_t *h)
{
    (void)h;
}

void gw_timers_stop(gw_server *s)
{
    if (!s->timers_started)
        return;
    s->timers_started = 0;
    uv_close((uv_handle_t *)&s->auth_timer, on_closed);
    uv_close((uv_handle_t *)&s->tick, on_closed);
}
