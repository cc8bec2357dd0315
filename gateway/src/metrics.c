/*
 * metrics: the process's counters in Prometheus text format (/metrics).
 *
 * Rendering walks a table of (name, type, help, value) rows so that adding a
 * metric is one line; auth outcomes (a counter labelled by result) and the
 * latency histogram follow. Values are read from counters the hot paths
 * already keep; per message only the histogram does any work: one bucket
 * search among 14 bounds.
 *
 * The latency is publish to fan-out: from the publish time the publisher
 * wrote into the envelope ("ts", wall clock) to the moment this process
 * queued the frame to its subscribers. Messages published straight into
 * Redis without "ts" are not observed. Across hosts it includes their
 * clock difference.
 */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>
#include <uthash.h>

#include "conn.h"

/* Upper bounds (seconds) of the latency buckets; +Inf follows. */
static const double latency_bounds[GW_LATENCY_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

/* Label of each auth outcome slot (gw_counters.auth). */
static const char *const auth_results[GW_AUTH_OUTCOMES] = {
    [0] = "ok",
    [-AUTH_EMALFORMED] = "malformed",
    [-AUTH_ETOOLONG] = "too_long",
    [-AUTH_ESIGNATURE] = "bad_signature",
    [-AUTH_EALG] = "algorithm",
    [-AUTH_EUNKNOWNKID] = "unknown_kid",
    [-AUTH_EEXPIRED] = "expired",
    [-AUTH_ENOEXP] = "missing_exp",
    [-AUTH_ENOTYET] = "not_yet_valid",
    [-AUTH_EISSUER] = "issuer",
    [-AUTH_EAUDIENCE] = "audience",
    [-AUTH_ESUB] = "bad_sub",
    [-AUTH_ECLAIMS] = "bad_claims",
    [GW_AUTH_TIMEOUT] = "timeout",
    [GW_AUTH_PROTOCOL] = "protocol_violation",
};

void gw_metrics_auth(gw_server *s, int outcome)
{
    int slot = outcome <= 0 ? -outcome : outcome;
    if (slot >= GW_AUTH_OUTCOMES || !auth_results[slot])
        slot = -AUTH_EMALFORMED; /* a code auth.h may add later: count it somewhere */
    s->counters.auth[slot]++;
}

void gw_metrics_latency(gw_server *s, int64_t published_ms)
{
    gw_counters *k = &s->counters;
    double v;
    int i = 0;
    if (published_ms < 0)
        return;
    v = (double)(ps_now_ms() - published_ms) / 1000.0;
    if (v < 0)
        v = 0; /* a publisher's clock ahead of ours */
    while (i < GW_LATENCY_BUCKETS && v > latency_bounds[i])
        i++;
    k->latency[i]++;
    k->latency_count++;
    k->latency_sum_s += v;
}

/* Resident set size from /proc/self/statm (pages), or 0 when unreadable. */
static double rss_bytes(void)
{
    unsigned long size, resident;
    FILE *f = fopen("/proc/self/statm", "r");
    int n;
    if (!f)
        return 0;
    n = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    return n == 2 ? (double)resident * (double)sysconf(_SC_PAGESIZE) : 0;
}
#include "client_limits.h"

typedef struct row {
    const char *name;
    const char *type;
    const char *help;
    double value;
} row;

typedef struct out {
    char *buf;
    size_t len, used;
} out;

static void put(out *o, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (o->used >= o->len)
        return;
    va_start(ap, fmt);
    n = vsnprintf(o->buf + o->used, o->len - o->used, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->used += (size_t)n < o->len - o->used ? (size_t)n : o->len - o->used - 1;
}

static void render_auth(out *o, const gw_counters *k)
{
    put(o, "# HELP wsgw_auth_total Authentication attempts by result.\n"
           "# TYPE wsgw_auth_total counter\n");
    for (int i = 0; i < GW_AUTH_OUTCOMES; i++) {
        if (auth_results[i])
            put(o, "wsgw_auth_total{result=\"%s\"} %llu\n", auth_results[i],
                (unsigned long long)k->auth[i]);
    }
}

static void render_latency(out *o, const gw_counters *k)
{
    uint64_t cumulative = 0;
    put(o, "# HELP wsgw_delivery_latency_seconds From publish to fan-out on this process.\n"
           "# TYPE wsgw_delivery_latency_seconds histogram\n");
    for (int i = 0; i < GW_LATENCY_BUCKETS; i++) {
        cumulative += k->latency[i];
        put(o, "wsgw_delivery_latency_seconds_bucket{le=\"%g\"} %llu\n", latency_bounds[i],
            (unsigned long long)cumulative);
    }
    put(o, "wsgw_delivery_latency_seconds_bucket{le=\"+Inf\"} %llu\n",
        (unsigned long long)k->latency_count);
    put(o, "wsgw_delivery_latency_seconds_sum %.6f\n", k->latency_sum_s);
    put(o, "wsgw_delivery_latency_seconds_count %llu\n", (unsigned long long)k->latency_count);
}

size_t gw_metrics_render(const gw_server *s, char *buf, size_t len)
{
    const gw_counters *k = &s->counters;
    const ps_bus_stats *b = &s->bus->stats;
    row rows[] = {
        {"wsgw_connections", "gauge", "Open WebSocket connections.", HASH_COUNT(s->conns)},
        {"wsgw_connections_total", "counter", "WebSocket connections accepted.",
         (double)k->conns_total},
        {"wsgw_channels", "gauge", "Channels with local subscribers.",
         (double)ps_subs_channels(s->subs)},
        {"wsgw_subscriptions", "gauge", "Subscriptions held by local clients.",
         (double)ps_subs_pairs(s->subs)},
        {"wsgw_process_resident_memory_bytes", "gauge", "Resident set size of this process.",
         rss_bytes()},
        {"wsgw_bus_messages_in_total", "counter", "Messages received from the bus.",
         (double)k->messages_in},
        {"wsgw_deliveries_total", "counter", "Messages queued to clients.",
         (double)k->deliveries},
        {"wsgw_bad_envelopes_total", "counter", "Bus payloads dropped as malformed.",
         (double)k->bad_envelopes},
        {"wsgw_client_publishes_total", "counter", "Publishes by clients.",
         (double)k->client_publishes},
        {"wsgw_slow_consumer_drops_total", "counter", "Clients closed with 4008.",
         (double)k->slow_drops},
        {"wsgw_writes_total", "counter", "Writes of client frames (several frames may share one).",
         (double)k->writes},
        {"wsgw_bytes_out_total", "counter", "Bytes of client frames written.", (double)k->bytes_out},
        {"wsgw_coalesced_frames_total", "counter", "Frames sent several to one write.",
         (double)k->coalesced_frames},
        {"wsgw_write_waits_total", "counter",
         "Times a client's frames had to wait for its socket to drain.", (double)k->write_waits},
        {"wsgw_bus_up", "gauge", "1 while the message bus link is up.", s->bus_up},
        {"wsgw_bus_reconnects_total", "counter", "Bus reconnects.", (double)b->reconnects},
        {"wsgw_bus_publish_errors_total", "counter", "Failed bus publishes.",
         (double)b->publish_errors},
        /* limits (client_limits.c): one counter per limit, named after its flag */
        {"wsgw_limit_max_connections_total", "counter",
         "Upgrades refused with 503 at --max-connections.", (double)k->limit_conns_refused},
        {"wsgw_limit_connects_per_ip_total", "counter",
         "Connections closed at accept by --max-connects-per-ip.", (double)k->limit_ip_refused},
        {"wsgw_limit_origin_total", "counter", "Upgrades refused with 403 by --allowed-origin.",
         (double)k->limit_origin_refused},
        {"wsgw_limit_subscriptions_total", "counter",
         "Subscribes refused with limit_exceeded (--max-subscriptions).",
         (double)k->limit_subs_refused},
        {"wsgw_limit_publish_rate_total", "counter",
         "Publishes refused with rate_limited (--publish-rate).", (double)k->limit_rate_limited},
        {"wsgw_limit_publish_rate_closes_total", "counter",
         "Connections closed with 4029 for sustained publishing over the rate.",
         (double)k->limit_rate_closes},
        {"wsgw_limit_message_too_big_total", "counter",
         "Connections closed with 1009 (--max-message-bytes).", (double)k->limit_too_big},
        {"wsgw_limit_binary_frames_total", "counter", "Connections closed with 1003.",
         (double)k->limit_binary},
        {"wsgw_limit_handshake_timeouts_total", "counter",
         "Connections closed before a complete HTTP request (--handshake-timeout-seconds, "
         "or the peer left).",
         (double)k->limit_handshake_timeouts},
        {"wsgw_ip_table_entries", "gauge", "Addresses tracked by --max-connects-per-ip.",
         (double)gw_ip_table_size(s->ips)},
        {"wsgw_subscription_token_expiries_total", "counter",
         "Subscriptions ended because their subscription token expired.",
         (double)k->sub_token_expiries},
    };
    out o = {buf, len, 0};
    if (len)
        buf[0] = '\0';
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        put(&o, "# HELP %s %s\n# TYPE %s %s\n%s %.0f\n", rows[i].name, rows[i].help,
            rows[i].name, rows[i].type, rows[i].name, rows[i].value);
    }
    render_auth(&o, k);
    render_latency(&o, k);
    return o.used;
}
