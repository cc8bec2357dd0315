/*
 * server: one gateway process.
 *
 * Owns the libuv loop's participants: the lws context (on our loop, as the
 * platform notes require), our own listening socket, the bus, the
 * subscription table, the table of live connections and the signal handlers.
 * Connections (conn.c) and their commands (session.c) reach shared state
 * through the gw_server they point at.
 */
#ifndef GW_SERVER_H
#define GW_SERVER_H

#include <stdint.h>

#include <auth/auth.h>
#include <libwebsockets.h>
#include <pubsub/pubsub.h>
#include <uv.h>

#include "config.h"
#include "listener.h"

typedef struct gw_conn gw_conn;

/* Stages of a stop (drain.c). */
enum {
    GW_STOP_NONE,     /* serving */
    GW_STOP_DRAINING, /* /readyz 503, no upgrades, clients closed a few at a time */
    GW_STOP_CLOSING,  /* listener closed, every client asked to close */
    GW_STOP_DONE,     /* bus stopped, lws context being destroyed */
};

/* Auth outcomes are counted by reason: slot -rc for AUTH_OK and each AUTH_E*
 * code of auth.h, then the two failures that are the gateway's own. */
#define GW_AUTH_TIMEOUT 20  /* 4002: no auth message in time */
#define GW_AUTH_PROTOCOL 21 /* 1008: the first message was not auth */
#define GW_AUTH_OUTCOMES 22
/* Buckets of the publish-to-fan-out latency histogram (metrics.c). */
#define GW_LATENCY_BUCKETS 14

typedef struct gw_counters {
    uint64_t conns_total;
    uint64_t auth[GW_AUTH_OUTCOMES]; /* gw_metrics_auth() */
    uint64_t latency[GW_LATENCY_BUCKETS + 1]; /* per bucket, the last is +Inf */
    uint64_t latency_count;
    double latency_sum_s;
    uint64_t messages_in;      /* from the bus */
    uint64_t deliveries;       /* frames queued to clients by fan-out */
    uint64_t bad_envelopes;
    uint64_t client_publishes;
    uint64_t slow_drops;
    uint64_t writes;           /* lws_write calls for client frames */
    uint64_t bytes_out;        /* bytes of client frames written */
    uint64_t coalesced_frames; /* frames that went out several to a write */
    uint64_t write_waits;      /* times frames were left for a WRITEABLE callback (conn.c) */
    /* limits (client_limits.c, session.c): what was refused or closed, per limit */
    uint64_t limit_conns_refused;    /* upgrades refused with 503: --max-connections */
    uint64_t limit_ip_refused;       /* closed at accept: --max-connects-per-ip */
    uint64_t limit_origin_refused;   /* upgrades refused with 403: --allowed-origin */
    uint64_t limit_subs_refused;     /* limit_exceeded: --max-subscriptions */
    uint64_t limit_rate_limited;     /* rate_limited replies: --publish-rate */
    uint64_t limit_rate_closes;      /* closed with 4029 */
    uint64_t limit_too_big;          /* closed with 1009: --max-message-bytes */
    uint64_t limit_binary;           /* closed with 1003 */
    uint64_t limit_handshake_timeouts; /* dropped before the upgrade finished */
    uint64_t sub_token_expiries;     /* subscriptions ended with their token */
} gw_counters;

typedef struct gw_server {
    const gw_config *cfg;
    uv_loop_t *loop;
    struct lws_context *ctx;
    struct lws_vhost *vhost;
    gw_listener listener;
    uv_signal_t sig_term;
    uv_signal_t sig_int;
    uv_timer_t stop_timer;      /* bounds the wait for clients to close (drain.c) */
    uv_timer_t drain_timer;     /* steps of the drain (drain.c) */
    uint64_t drain_started_ms;
    uint64_t drain_window_ms;
    size_t drain_total;         /* clients when the drain began */
    size_t drain_closed;        /* of them, asked to close so far */
    auth_keyring *keys;
    struct gw_api_keys *api_keys; /* NULL: POST /api/publish disabled (http_api.c) */
    struct gw_static *statics;  /* --static-dir's files; NULL: none (static_dir.c) */
    ps_bus *bus;
    ps_subs *subs;
    gw_conn *conns;             /* uthash by serial: live WebSocket connections */
    gw_conn *authing_head;      /* the auth FIFO, oldest first (timers.c) */
    gw_conn *authing_tail;
    uv_timer_t auth_timer;      /* follows authing_head's deadline */
    uv_timer_t tick;            /* 1 s: token expiry and keepalive */
    int timers_started;
    uv_prepare_t flusher;       /* writes queued frames before the loop sleeps (flush.c) */
    gw_conn **flush;            /* connections with frames to write (flush.c) */
    size_t flush_len, flush_cap;
    int flush_started;
    uint64_t next_serial;
    uint64_t next_token;        /* matches history reads to what asked for them */
    char id_prefix[12];         /* random per process: connection ids stay unique */
    int bus_up;
    int stopping;               /* GW_STOP_*: 0 while serving */
    int exit_code;
    gw_counters counters;
    int64_t max_connections;    /* --max-connections resolved (client_limits.c) */
    struct gw_ip_table *ips;    /* connects per address; NULL: no limit (client_limits.c) */
} gw_server;

/* Builds everything the process needs: keys, bus, lws context, listener.
 * Returns 0, or -1 with the reason already logged. gw_server_destroy undoes
 * whatever was built, also after a failure. */
int gw_server_init(gw_server *s, const gw_config *cfg, uv_loop_t *loop);
/* Runs the loop until a signal has stopped everything. Returns the exit code. */
int gw_server_run(gw_server *s);
void gw_server_destroy(gw_server *s);

/* Starts the orderly stop (drain.c): clients closed with 1001 spread over
 * window_ms (0: at once; also cuts a running drain short), then the bus
 * stopped and the lws context destroyed once the clients are gone. */
void gw_server_stop(gw_server *s, uint64_t window_ms);
/* Stops without clients to wait for (after a failed init). */
void gw_server_stop_now(gw_server *s);
/* Closes the signal handles (drain.c calls it once the stop finishes). */
void gw_server_close_signals(gw_server *s);

/* 1 while the process accepts clients and its bus is up (/readyz). */
int gw_server_ready(const gw_server *s);

/* Called when the last client closed during a stop (session.c). */
void gw_server_clients_gone(gw_server *s);

#endif
