/*
 * client_limits: what one client may take from a gateway process.
 *
 * Admission limits act before a connection costs anything: new connections
 * per second from one address (closed at accept), connections per process
 * and allowed Origins (refused at the upgrade with an HTTP status). Usage
 * limits act on open connections: the publish token bucket, whose state is
 * a few integers inside each gw_conn, because idle connections must stay
 * small. The subscription limit is a count the subscription table already
 * keeps (session.c checks it).
 */
#ifndef GW_CLIENT_LIMITS_H
#define GW_CLIENT_LIMITS_H

#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "config.h"

typedef struct gw_server gw_server;

/* The publish token bucket of one connection, in thousandths of a token so
 * that the refill needs no floating point. `strikes` counts refused
 * publishes since `strike_ms`, to tell a burst from sustained abuse. */
typedef struct gw_rate {
    uint32_t milli;     /* tokens x 1000 */
    uint32_t last_ms;   /* loop time of the last refill (low 32 bits; wraps safely) */
    uint32_t strike_ms; /* start of the current abuse window */
    uint32_t strikes;   /* refusals in that window */
} gw_rate;

/* Outcomes of gw_rate_take. */
enum { GW_RATE_OK, GW_RATE_LIMITED, GW_RATE_ABUSE };

/* The abuse window: more than GW_RATE_ABUSE_FACTOR x --publish-rate refused
 * publishes within GW_RATE_ABUSE_WINDOW_MS of the first refusal close the
 * connection with 4029 (the client kept sending at more than twice its rate
 * for ten seconds, or flooded). */
#define GW_RATE_ABUSE_WINDOW_MS 10000
#define GW_RATE_ABUSE_FACTOR 10

/* A full bucket, at authentication. */
void gw_rate_init(gw_rate *r, int64_t burst, uint64_t now_ms);
/* Takes one token. Returns GW_RATE_OK, GW_RATE_LIMITED (refuse this one)
 * or GW_RATE_ABUSE (refuse it and close with 4029). */
int gw_rate_take(gw_rate *r, int64_t rate, int64_t burst, uint64_t now_ms);

/* The per-address table of recent connects. NULL when --max-connects-per-ip
 * is 0. Freed with gw_ip_table_free (NULL is fine). */
typedef struct gw_ip_table gw_ip_table;
gw_ip_table *gw_ip_table_new(void);
void gw_ip_table_free(gw_ip_table *t);
/* Entries held now (a gauge for /metrics). */
size_t gw_ip_table_size(const gw_ip_table *t);
/* Drops entries whose one-second window has passed (the 1 s tick). */
void gw_ip_table_prune(gw_ip_table *t, uint64_t now_ms);

/* A freshly accepted socket: 1 to adopt it, 0 when its address has opened
 * more than --max-connects-per-ip connections in the current second (the
 * caller closes it; counted here). */
int gw_limits_admit_fd(gw_server *s, int fd);

/* The upgrade request on wsi: 0 to let it through, or the HTTP status to
 * refuse it with (503: --max-connections reached; 403: Origin not allowed).
 * Counts the refusals. */
unsigned int gw_limits_check_upgrade(gw_server *s, struct lws *wsi);

/* --max-connections with 0 resolved: the soft open-file limit less a
 * reserve for Redis, HTTP requests and upgrades in flight. */
int64_t gw_limits_max_connections(const gw_config *cfg);

/* 1 when origin (NULL: no Origin header) may upgrade under allowed. */
int gw_limits_origin_allowed(const gw_strlist *allowed, const char *origin);

#endif
