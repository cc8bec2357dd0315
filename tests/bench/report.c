/*
 * report: verdict, table and JSON of a run; see report.h.
 */
#include "report.h"

#include <arpa/inet.h>
#include <string.h>

#include <jansson.h>

#define MAX_REASONS 12

typedef struct reasons {
    char text[MAX_REASONS][96];
    int n;
} reasons;

uint64_t bench_result_lost(const bench_result *r)
{
    return r->expected > r->f.unique ? r->expected - r->f.unique : 0;
}

static void add_reason(reasons *rs, const char *what, uint64_t n)
{
    if (n == 0 || rs->n == MAX_REASONS)
        return;
    snprintf(rs->text[rs->n++], sizeof(rs->text[0]), "%llu %s", (unsigned long long)n, what);
}

/* Everything a user of the gateway would notice, each a reason to fail. */
static void collect_reasons(const bench_result *r, const bench_config *cfg, reasons *rs)
{
    memset(rs, 0, sizeof(*rs));
    add_reason(rs, "connections not ready", r->attempted - r->ready);
    add_reason(rs, "worker processes died", r->crashed_workers);
    add_reason(rs, "ready connections closed by the gateway", r->f.disconnects);
    add_reason(rs, "deliveries lost", bench_result_lost(r));
    add_reason(rs, "duplicate deliveries", r->f.duplicates);
    add_reason(rs, "deliveries out of order", r->f.reordered);
    add_reason(rs, "deliveries to the wrong connection", r->f.misrouted);
    add_reason(rs, "publishes refused or unacknowledged", r->pub_errors);
    add_reason(rs, "run interrupted", (uint64_t)r->interrupted);
    if (!cfg->idle && r->sent == 0 && r->ready > 0)
        add_reason(rs, "nothing published", 1);
}

int bench_result_exit_code(const bench_result *r, const bench_config *cfg)
{
    reasons rs;
    collect_reasons(r, cfg, &rs);
    return rs.n ? 1 : 0;
}

static const char *fmt_ns(char *buf, size_t n, uint64_t ns)
{
    if (ns < 10000)
        snprintf(buf, n, "%.2f us", (double)ns / 1e3);
    else if (ns < 10000000)
        snprintf(buf, n, "%.3f ms", (double)ns / 1e6);
    else if (ns < 10000000000ull)
        snprintf(buf, n, "%.1f ms", (double)ns / 1e6);
    else
        snprintf(buf, n, "%.2f s", (double)ns / 1e9);
    return buf;
}

static double per_s(uint64_t n, double s)
{
    return s > 0 ? (double)n / s : 0;
}

static void source_range(const bench_config *cfg, char *out, size_t n)
{
    struct in_addr a = {htonl(cfg->src_first)}, b = {htonl(cfg->src_first + cfg->src_count - 1)};
    char sa[INET_ADDRSTRLEN], sb[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &a, sa, sizeof(sa));
    inet_ntop(AF_INET, &b, sb, sizeof(sb));
    snprintf(out, n, "%s-%s", sa, sb);
}

static const char *bench_via_name(bench_via v)
{
    return v == BENCH_VIA_REDIS ? "redis" : v == BENCH_VIA_WS ? "ws" : "http";
}

static const char *mode_name(const bench_config *cfg)
{
    return cfg->idle ? "idle" : cfg->closed_loop ? "closed-loop" : "rate";
}

static void table_latency(FILE *out, const char *label, const bench_hist *h)
{
    char a[32], b[32], c[32], d[32], e[32], m[32];
    if (h->count == 0) {
        fprintf(out, "%-18s none recorded\n", label);
        return;
    }
    fprintf(out, "%-18s p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  mean %s\n", label,
            fmt_ns(a, sizeof(a), hist_quantile(h, 0.5)), fmt_ns(b, sizeof(b), hist_quantile(h, 0.9)),
            fmt_ns(c, sizeof(c), hist_quantile(h, 0.99)),
            fmt_ns(d, sizeof(d), hist_quantile(h, 0.999)), fmt_ns(e, sizeof(e), h->max),
            fmt_ns(m, sizeof(m), h->sum / h->count));
}

static void table_connect(FILE *out, const bench_result *r, const bench_config *cfg)
{
    char src[48];
    source_range(cfg, src, sizeof(src));
    fprintf(out, "%-18s %u ready of %u, %u procs, sources %s\n", "connections", r->ready,
            r->attempted, cfg->procs, src);
    if (r->ready < r->attempted)
        fprintf(out, "%-18s connect %u, handshake %u, auth %u, subscribe %u, timeout %u, "
                "died with a worker %u\n%-18s e.g. %s\n", "  not ready:", r->fails.connect,
                r->fails.handshake, r->fails.auth, r->fails.subscribe, r->fails.timeout,
                r->lost_to_crashes, "", r->example_error);
    fprintf(out, "%-18s %.0f conn/s (%u in %.2f s, connect+upgrade%s)\n", "connect rate",
            per_s(r->ready, r->connect_seconds), r->ready, r->connect_seconds,
            cfg->target == BENCH_TARGET_NCHAN ? "" : "+auth+subscribe");
    table_latency(out, "connect latency", &r->connect);
}

static void table_delivery(FILE *out, const bench_result *r, const bench_config *cfg)
{
    fprintf(out, "%-18s %llu msgs via %s in %.2f s (%.1f msg/s), %llu acked, %llu errors\n",
            "published", (unsigned long long)r->sent,
            bench_via_name(cfg->via), r->publish_seconds,
            per_s(r->sent, r->publish_seconds), (unsigned long long)r->acked,
            (unsigned long long)r->pub_errors);
    if (r->pub_error[0])
        fprintf(out, "%-18s %s\n", "  last error:", r->pub_error);
    if (r->zero_receivers && cfg->via == BENCH_VIA_HTTP)
        fprintf(out, "%-18s %llu POST answered 202: no subscriber on that channel\n",
                "  hint:", (unsigned long long)r->zero_receivers);
    else if (r->zero_receivers)
        fprintf(out, "%-18s %llu PUBLISH reached no Redis subscriber (is the gateway on this Redis and prefix?)\n",
                "  hint:", (unsigned long long)r->zero_receivers);
    fprintf(out, "%-18s %llu of %llu expected in %.2f s: %.0f deliveries/s\n", "deliveries",
            (unsigned long long)r->f.unique, (unsigned long long)r->expected, r->delivery_seconds,
            per_s(r->f.unique, r->delivery_seconds));
    fprintf(out, "%-18s lost %llu, duplicates %llu, reordered %llu, misrouted %llu, "
            "disconnects %u\n", "correctness", (unsigned long long)bench_result_lost(r),
            (unsigned long long)r->f.duplicates, (unsigned long long)r->f.reordered,
            (unsigned long long)r->f.misrouted, r->f.disconnects);
    for (uint32_t i = 0; i < r->f.n_codes; i++)
        fprintf(out, "%-18s close %d: %u connections\n", "", r->f.codes[i].code,
                r->f.codes[i].count);
    table_latency(out, "latency", &r->f.latency);
    if (r->publish_seconds > 0 && r->gw_cpu_s >= 0)
        fprintf(out, "%-18s server %.0f%%, ", "cpu", r->gw_cpu_s * 100 / r->publish_seconds);
    else if (r->publish_seconds > 0)
        fprintf(out, "%-18s server unknown (no --pid), ", "cpu");
    if (r->publish_seconds > 0)
        fprintf(out, "bench workers %.0f%% of one core while publishing\n",
                r->bench_cpu_s >= 0 ? r->bench_cpu_s * 100 / r->publish_seconds : 0.0);
}

static void table_memory(FILE *out, const bench_result *r, const bench_config *cfg)
{
    if (cfg->pid && r->gw_rss_before_kb) {
        double per = r->ready ? ((double)r->gw_rss_after_kb - (double)r->gw_rss_before_kb) * 1024 /
                                    r->ready : 0;
        fprintf(out, "%-18s %.1f MiB -> %.1f MiB: %.0f bytes per connection\n", "gateway RSS",
                (double)r->gw_rss_before_kb / 1024, (double)r->gw_rss_after_kb / 1024, per);
    }
    fprintf(out, "%-18s %.1f MiB in workers (%.0f bytes per connection)\n", "bench RSS",
            (double)r->bench_rss_kb / 1024,
            r->attempted ? (double)r->bench_rss_kb * 1024 / r->attempted : 0);
}

void bench_report_table(FILE *out, const bench_result *r, const bench_config *cfg)
{
    reasons rs;
    fprintf(out, "\n== wsgw-bench %s%s: %s, %s %s\n", mode_name(cfg),
            cfg->target == BENCH_TARGET_NCHAN ? " (nchan)" : "", cfg->url,
            cfg->pattern == BENCH_BROADCAST ? "broadcast on" : "per-job on",
            cfg->pattern == BENCH_BROADCAST ? cfg->channel : cfg->job_prefix);
    table_connect(out, r, cfg);
    if (!cfg->idle)
        table_delivery(out, r, cfg);
    table_memory(out, r, cfg);
    collect_reasons(r, cfg, &rs);
    fprintf(out, "%-18s %s\n", "result", rs.n ? "FAIL" : "PASS");
    for (int i = 0; i < rs.n; i++)
        fprintf(out, "%-18s %s\n", "", rs.text[i]);
    fflush(out);
}

/* ---- JSON -------------------------------------------------------------- */

static json_t *latency_json(const bench_hist *h)
{
    if (h->count == 0)
        return json_pack("{s:i}", "count", 0);
    return json_pack("{s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "count", (json_int_t)h->count,
                     "min", h->min / 1e6, "p50", hist_quantile(h, 0.5) / 1e6,
                     "p90", hist_quantile(h, 0.9) / 1e6, "p99", hist_quantile(h, 0.99) / 1e6,
                     "p999", hist_quantile(h, 0.999) / 1e6, "max", h->max / 1e6,
                     "mean", (double)h->sum / (double)h->count / 1e6);
}

static json_t *config_json(const bench_config *cfg)
{
    char src[48];
    source_range(cfg, src, sizeof(src));
    return json_pack("{s:s, s:s, s:i, s:i, s:s, s:s, s:s, s:s, s:s, s:f, s:i, s:f, s:I, s:i, s:f}",
                     "target", cfg->target == BENCH_TARGET_NCHAN ? "nchan" : "wsgw", "url", cfg->url, "connections", (int)cfg->connections, "procs",
                     (int)cfg->procs, "source_ips", src, "pattern",
                     cfg->pattern == BENCH_BROADCAST ? "broadcast" : "per-job", "channel",
                     cfg->pattern == BENCH_BROADCAST ? cfg->channel : cfg->job_prefix,
                     "publish_via", bench_via_name(cfg->via), "mode",
                     mode_name(cfg), "rate", cfg->closed_loop ? 0.0 : cfg->rate, "window",
                     (int)cfg->window, "duration_s", cfg->duration, "messages",
                     (json_int_t)cfg->messages, "payload_bytes", (int)cfg->payload_bytes,
                     "connect_rate", cfg->connect_rate);
}

static json_t *connect_json(const bench_result *r)
{
    json_t *j = json_pack("{s:i, s:i, s:i, s:{s:i, s:i, s:i, s:i, s:i, s:i}, s:f, s:f}",
                          "attempted", (int)r->attempted, "ready", (int)r->ready, "failed",
                          (int)(r->attempted - r->ready), "failures", "connect",
                          (int)r->fails.connect, "handshake", (int)r->fails.handshake, "auth",
                          (int)r->fails.auth, "subscribe", (int)r->fails.subscribe, "timeout",
                          (int)r->fails.timeout, "worker_died", (int)r->lost_to_crashes,
                          "seconds", r->connect_seconds, "rate_per_s",
                          per_s(r->ready, r->connect_seconds));
    json_object_set_new(j, "latency_ms", latency_json(&r->connect));
    if (r->example_error[0])
        json_object_set_new(j, "example_error", json_string(r->example_error));
    return j;
}

static json_t *delivery_json(const bench_result *r)
{
    json_t *codes = json_object();
    for (uint32_t i = 0; i < r->f.n_codes; i++) {
        char k[16];
        snprintf(k, sizeof(k), "%d", r->f.codes[i].code);
        json_object_set_new(codes, k, json_integer(r->f.codes[i].count));
    }
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:i, s:o, s:f, s:f}",
                     "expected", (json_int_t)r->expected, "delivered", (json_int_t)r->f.unique,
                     "received_total", (json_int_t)r->f.deliveries, "lost",
                     (json_int_t)bench_result_lost(r), "duplicates", (json_int_t)r->f.duplicates,
                     "reordered", (json_int_t)r->f.reordered, "misrouted",
                     (json_int_t)r->f.misrouted, "foreign", (json_int_t)r->f.foreign,
                     "other_frames", (json_int_t)r->f.other_frames, "disconnects",
                     (int)r->f.disconnects, "close_codes", codes, "seconds", r->delivery_seconds,
                     "deliveries_per_s", per_s(r->f.unique, r->delivery_seconds));
}

static json_t *memory_json(const bench_result *r, const bench_config *cfg)
{
    json_t *j = json_pack("{s:I, s:f}", "bench_rss_kb", (json_int_t)r->bench_rss_kb,
                          "bench_bytes_per_connection",
                          r->attempted ? (double)r->bench_rss_kb * 1024 / r->attempted : 0.0);
    if (cfg->pid && r->gw_rss_before_kb) {
        json_object_set_new(j, "gateway_pid", json_integer(cfg->pid));
        json_object_set_new(j, "gateway_rss_before_kb", json_integer((json_int_t)r->gw_rss_before_kb));
        json_object_set_new(j, "gateway_rss_after_kb", json_integer((json_int_t)r->gw_rss_after_kb));
        json_object_set_new(j, "gateway_bytes_per_connection",
                            json_real(r->ready ? ((double)r->gw_rss_after_kb -
                                                  (double)r->gw_rss_before_kb) * 1024 / r->ready
                                               : 0.0));
    }
    return j;
}

static json_t *result_json(const bench_result *r, const bench_config *cfg)
{
    reasons rs;
    json_t *why = json_array(), *j;
    collect_reasons(r, cfg, &rs);
    for (int i = 0; i < rs.n; i++)
        json_array_append_new(why, json_string(rs.text[i]));
    j = json_pack("{s:s, s:I, s:s, s:o, s:i, s:o, s:o}", "tool", "wsgw-bench", "run_id",
                  (json_int_t)cfg->run_id, "result", rs.n ? "fail" : "pass", "failures", why,
                  "exit_code", rs.n ? 1 : 0, "config", config_json(cfg), "connect",
                  connect_json(r));
    if (!cfg->idle) {
        json_object_set_new(j, "publish",
                            json_pack("{s:I, s:I, s:I, s:I, s:f, s:f, s:s}", "sent",
                                      (json_int_t)r->sent, "acked", (json_int_t)r->acked,
                                      "errors", (json_int_t)r->pub_errors, "zero_receivers",
                                      (json_int_t)r->zero_receivers, "seconds", r->publish_seconds,
                                      "rate_per_s", per_s(r->sent, r->publish_seconds),
                                      "last_error", r->pub_error));
        json_object_set_new(j, "delivery", delivery_json(r));
        json_object_set_new(j, "latency_ms", latency_json(&r->f.latency));
        if (r->publish_seconds > 0)
            json_object_set_new(
                j, "cpu_pct_while_publishing",
                json_pack("{s:o, s:o}", "server",
                          r->gw_cpu_s >= 0 ? json_real(r->gw_cpu_s * 100 / r->publish_seconds)
                                           : json_null(),
                          "bench_workers",
                          r->bench_cpu_s >= 0 ? json_real(r->bench_cpu_s * 100 / r->publish_seconds)
                                              : json_null()));
    }
    json_object_set_new(j, "memory", memory_json(r, cfg));
    json_object_set_new(j, "interrupted", json_boolean(r->interrupted));
    json_object_set_new(j, "stalled", json_boolean(r->stalled));
    return j;
}

int bench_report_json(const char *path, const bench_result *r, const bench_config *cfg)
{
    json_t *j = result_json(r, cfg);
    int rc;
    if (!j)
        return -1;
    if (strcmp(path, "-") == 0) {
        rc = json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
        fputc('\n', stdout);
        fflush(stdout);
    } else {
        rc = json_dump_file(j, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    }
    json_decref(j);
    return rc == 0 ? 0 : -1;
}
