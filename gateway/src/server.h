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

typedef struct gw_counters {
    uint64_t conns_total;
    uint64_t auth_ok;
    uint64_t auth_failed;
    uint64_t messages_in;      /* from the bus */
    uint64_t deliveries;       /* frames queued to clients by fan-out */
    uint64_t bad_envelopes;
    uint64_t client_publishes;
    uint64_t slow_drops;
    uint64_t writes;           /* lws_write calls for client frames */
    uint64_t bytes_out;        /* bytes of client frames written */
    uint64_t coalesced_frames; /* frames that went out several to a write */
} gw_counters;

typedef struct gw_server {
    const gw_config *cfg;
    uv_loop_t *loop;
    struct lws_context *ctx;
    struct lws_vhost *vhost;
    gw_listener listener;
    uv_signal_t sig_term;
    uv_signal_t sig_int;
    uv_timer_t stop_timer;      /* bounds the wait for clients to close */
    auth_keyring *keys;
    struct gw_api_keys *api_keys; /* NULL: POST /api/publish disabled (http_api.c) */
    ps_bus *bus;
    ps_subs *subs;
    gw_conn *conns;             /* uthash by serial: live WebSocket connections */
    gw_conn *authing_head;      /* the auth FIFO, oldest first (timers.c) */
    gw_conn *authing_tail;
    uv_timer_t auth_timer;      /* follows authing_head's deadline */
    uv_timer_t tick;            /* 1 s: token expiry and keepalive */
    int timers_started;
    uint64_t next_serial;
    uint64_t next_token;        /* matches history reads to what asked for them */
    char id_prefix[12];         /* random per process: connection ids stay unique */
    int bus_up;
    int stopping;               /* SIGTERM seen: no new clients, closing the rest */
    int exit_code;
    gw_counters counters;
} gw_server;

/* Builds everything the process needs: keys, bus, lws context, listener.
 * Returns 0, or -1 with the reason already logged. gw_server_destroy undoes
 * whatever was built, also after a failure. */
int gw_server_init(gw_server *s, const gw_config *cfg, uv_loop_t *loop);
/* Runs the loop until a signal has stopped everything. Returns the exit code. */
int gw_server_run(gw_server *s);
void gw_server_destroy(gw_server *s);

/* Starts the orderly stop: listener closed, clients closed with 1001, bus
 * stopped, lws context destroyed once the clients are gone. */
void gw_server_stop(gw_server *s);

/* 1 while the process accepts clients and its bus is up (/readyz). */
int gw_server_ready(const gw_server *s);

/* Called when the last client closed during a stop. */
void gw_server_clients_gone(gw_server *s);

#endif
