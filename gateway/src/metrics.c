/*
 * metrics: the process's counters in Prometheus text format (/metrics).
 *
 * Rendering walks a table of (name, type, help, value) rows so that adding a
 * metric is one line. Values are read from counters the hot paths already
 * keep; nothing here is computed per message.
 */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <uthash.h>

#include "conn.h"

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
        {"wsgw_auth_ok_total", "counter", "Successful authentications.", (double)k->auth_ok},
        {"wsgw_auth_failed_total", "counter", "Failed authentications.", (double)k->auth_failed},
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
        {"wsgw_bus_up", "gauge", "1 while the message bus link is up.", s->bus_up},
        {"wsgw_bus_reconnects_total", "counter", "Bus reconnects.", (double)b->reconnects},
        {"wsgw_bus_publish_errors_total", "counter", "Failed bus publishes.",
         (double)b->publish_errors},
    };
    out o = {buf, len, 0};
    if (len)
        buf[0] = '\0';
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        put(&o, "# HELP %s %s\n# TYPE %s %s\n%s %.0f\n", rows[i].name, rows[i].help,
            rows[i].name, rows[i].type, rows[i].name, rows[i].value);
    }
    return o.used;
}
