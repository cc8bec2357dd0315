/*
 * drain: how a gateway process stops without a reconnect storm.
 *
 * SIGTERM (a rolling deploy, a scale-down) starts a drain: /readyz turns 503
 * at once so the load balancer stops sending new clients, upgrades are
 * refused, and the clients already here are closed with 1001 a few at a
 * time, evenly over --drain-seconds. Closing them all in the same second
 * would make them all reconnect to the remaining processes in the same
 * second, each with its auth and its resubscribes. The listener stays open
 * during the window so health checks still get their answer.
 *
 * At the end of the window (or at once for SIGINT, a second signal, or
 * --drain-seconds 0) the listener closes and whoever is left is closed;
 * once the clients are gone, or after a grace period for those that never
 * answer, the bus stops and the lws context is destroyed from inside the
 * loop; gw_server_destroy finishes after uv_run returns, as the platform
 * notes prescribe.
 */
#include "server.h"

#include <uthash.h>

#include "conn.h"
#include "flush.h"
#include "log.h"
#include "timers.h"

/* Step of the drain: 10 closing rounds a second. */
#define DRAIN_STEP_MS 100
/* How long clients get to take their 1001 after the last of them was asked
 * (the conn's own close-flush bound is 5 s; this is the process's). */
#define STOP_GRACE_MS 6000

static void on_handle_closed(uv_handle_t *h)
{
    (void)h;
}

static void finish_stop(gw_server *s)
{
    /* Also here, not only in close_all: when the last client leaves on its
     * own during the drain window, the stop ends without close_all, and an
     * open listener would keep the loop (and the process) alive. */
    gw_listener_stop(&s->listener);
    if (!uv_is_closing((uv_handle_t *)&s->stop_timer))
        uv_close((uv_handle_t *)&s->stop_timer, on_handle_closed);
    if (!uv_is_closing((uv_handle_t *)&s->drain_timer))
        uv_close((uv_handle_t *)&s->drain_timer, on_handle_closed);
    gw_timers_stop(s);
    gw_flush_stop(s);
    gw_server_close_signals(s);
    if (s->bus)
        ps_bus_stop(s->bus);
    /* First destroy from inside the loop: lws closes its handles; the
     * second call after uv_run returns frees the context. */
    if (s->ctx)
        lws_context_destroy(s->ctx);
}

void gw_server_clients_gone(gw_server *s)
{
    if (s->stopping == GW_STOP_DRAINING || s->stopping == GW_STOP_CLOSING) {
        s->stopping = GW_STOP_DONE;
        finish_stop(s);
    }
}

static void on_stop_timer(uv_timer_t *t)
{
    gw_server *s = t->data;
    gw_warn("stop_timeout", NULL, "%u clients did not close in time; closing the rest",
            HASH_COUNT(s->conns));
    gw_server_clients_gone(s);
}

/* Asks up to n clients that are not closing yet to close with 1001.
 * Returns how many it asked. */
static size_t close_some(gw_server *s, size_t n)
{
    gw_conn *c, *tmp;
    size_t done = 0;
    HASH_ITER(hh, s->conns, c, tmp)
    {
        if (done == n)
            break;
        if (c->state == GW_CONN_CLOSING)
            continue;
        gw_conn_close(c, LWS_CLOSE_STATUS_GOINGAWAY, "server shutting down");
        done++;
    }
    return done;
}

/* The window is over (or was zero): nobody new, everybody out. */
static void close_all(gw_server *s)
{
    s->stopping = GW_STOP_CLOSING;
    uv_timer_stop(&s->drain_timer);
    gw_listener_stop(&s->listener);
    close_some(s, (size_t)-1);
    if (!s->conns) {
        gw_server_clients_gone(s);
        return;
    }
    uv_timer_start(&s->stop_timer, on_stop_timer, STOP_GRACE_MS, 0);
}

static void on_drain_step(uv_timer_t *t)
{
    gw_server *s = t->data;
    uint64_t elapsed = gw_timers_now_ms(s) - s->drain_started_ms;
    size_t target;

    if (elapsed >= s->drain_window_ms) {
        close_all(s);
        return;
    }
    /* Clients closed so far follow a straight line from 0 to all. */
    target = (size_t)((double)s->drain_total * (double)elapsed / (double)s->drain_window_ms);
    if (target > s->drain_closed)
        s->drain_closed += close_some(s, target - s->drain_closed);
}

void gw_server_stop(gw_server *s, uint64_t window_ms)
{
    if (s->stopping == GW_STOP_DRAINING && window_ms == 0) {
        gw_info("drain_cut_short", NULL, "closing the remaining %u clients now",
                HASH_COUNT(s->conns));
        close_all(s);
        return;
    }
    if (s->stopping)
        return;
    s->drain_total = HASH_COUNT(s->conns);
    s->drain_closed = 0;
    s->drain_started_ms = gw_timers_now_ms(s);
    s->drain_window_ms = window_ms;
    if (window_ms == 0 || s->drain_total == 0) {
        gw_info("stopping", NULL, "closing %zu clients with 1001", s->drain_total);
        close_all(s);
        return;
    }
    s->stopping = GW_STOP_DRAINING;
    gw_info("draining", NULL, "closing %zu clients with 1001 over %llu ms", s->drain_total,
            (unsigned long long)window_ms);
    uv_timer_start(&s->drain_timer, on_drain_step, DRAIN_STEP_MS, DRAIN_STEP_MS);
}

void gw_server_stop_now(gw_server *s)
{
    if (!s->stopping) {
        s->stopping = GW_STOP_DONE;
        gw_listener_stop(&s->listener);
        finish_stop(s);
    }
}
