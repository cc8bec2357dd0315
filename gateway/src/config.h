/*
 * config: the gateway's settings, from the command line and the environment.
 *
 * One table of options drives both sources and `wsgw --help`, so a flag, its
 * WSGW_<FLAG> variable and its documentation cannot drift apart. The
 * environment is read first and the command line overrides it; repeatable
 * flags (--jwt-public-key) take a comma-separated list in the environment.
 */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define GW_LIST_MAX 16 /* items of a repeatable flag */

/* The values of a repeatable flag. */
typedef struct gw_strlist {
    char *items[GW_LIST_MAX];
    size_t n;
} gw_strlist;

/* History settings of one channel namespace (--history). */
typedef struct gw_namespace {
    char name[64];        /* "job", "chat", ...; "" ends the table */
    uint32_t size;        /* messages kept; 0: no history */
    uint32_t ttl_s;       /* seconds kept after the last publish */
    int latest;           /* deliver the latest message on subscribe */
} gw_namespace;

enum gw_log_level { GW_LOG_DEBUG, GW_LOG_INFO, GW_LOG_WARN, GW_LOG_ERROR };

typedef struct gw_config {
    char *listen;              /* HOST:PORT as given */
    char listen_host[64];      /* parsed from listen */
    int listen_port;
    char *redis_url;           /* NULL: in-process bus */
    char *redis_prefix;
    char *jwt_secret_file;
    gw_strlist jwt_public_keys;  /* "[KID=]PATH" each */
    char *jwt_issuer;
    char *jwt_audience;
    int64_t jwt_leeway_seconds;
    int64_t auth_timeout_ms;
    int64_t max_message_bytes;
    int64_t ping_interval_s;   /* WebSocket PING after this much silence */
    int64_t ping_timeout_s;    /* hang up when no PONG within this */
    int64_t handshake_timeout_s; /* TCP open but no finished upgrade: dropped (lws timeout_secs) */
    int64_t max_connections;   /* WebSocket connections; 0: from RLIMIT_NOFILE (client_limits.c) */
    int64_t max_connects_per_ip; /* new connections per second per address; 0: no limit */
    int64_t max_subscriptions; /* per connection, the user: channel not counted */
    int64_t publish_rate;      /* client publishes per second (token bucket refill) */
    int64_t publish_burst;     /* token bucket size */
    int64_t max_queue_bytes;   /* send queue bound in bytes; past it: 4008 */
    gw_strlist allowed_origins; /* Origin values allowed to upgrade; empty: any */
    int64_t workers;           /* processes sharing the port (supervisor.c) */
    int64_t drain_seconds;     /* SIGTERM: 1001 closes spread over this window */
    gw_strlist history;        /* "NS=SIZE:TTL[:latest]" each, over the defaults */
    gw_namespace namespaces[GW_LIST_MAX + 4]; /* defaults + --history, parsed */
    int64_t recovery_max;      /* most messages one recovery replays */
    gw_strlist api_key_files;  /* backend API keys, one per line */
    char *static_dir;          /* GET / and files (static_dir.c); NULL: none */
    int log_level;
} gw_config;

/* Fills *c from the environment and argv (argv[0] is the program or the
 * subcommand name). Returns 0 on success, 1 when --help was printed to out,
 * -1 on a bad option with a one-line message in err. The caller frees *c with
 * gw_config_free in every case. */
int gw_config_load(gw_config *c, int argc, char **argv, char *err, size_t errlen, FILE *out);
void gw_config_free(gw_config *c);
void gw_config_usage(FILE *out);

/* The history settings of channel's namespace, or NULL when it keeps none. */
const gw_namespace *gw_config_namespace(const gw_config *c, const char *channel);

/* Fills c->namespaces from the defaults and c->history (done by
 * gw_config_load; `wsgw publish` calls it on its own --history list).
 * Returns 0, or -1 with a one-line message in err. */
int gw_config_parse_namespaces(gw_config *c, char *err, size_t errlen);

/* Splits "host:port" (IPv4, name or [IPv6]). Returns 0 or -1. */
int gw_parse_hostport(const char *s, char *host, size_t hostlen, int *port);

#endif
