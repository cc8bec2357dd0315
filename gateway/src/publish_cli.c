/*
 * publish_cli: `wsgw publish`, one message from a shell or a script.
 *
 * For backends without an HTTP client at hand, cron jobs and operators. It
 * builds what a gateway would (a libuv loop and a Redis bus on it), waits a
 * bounded time for the bus to come up, publishes with gw_api_publish (the
 * function behind POST /api/publish, so the envelope and the history policy
 * are the same), prints the result and shuts everything down cleanly. The
 * history policy comes from the gateway's own defaults and --history rows
 * (gw_config_parse_namespaces), so the offsets are the ones the gateways
 * hand out: pass the same --history flags the gateways run with.
 */
#include "publish_cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <auth/auth.h>
#include <jansson.h>
#include <pubsub/pubsub.h>
#include <uv.h>

#include "config.h"
#include "http_api.h"

#define DEFAULT_TIMEOUT_MS 5000
/* As redis-cli: a worker next to its Redis needs no flag (protocol-v1.md's
 * example has none). */
#define DEFAULT_REDIS "redis://127.0.0.1:6379"
#define DEFAULT_MAX_BYTES 65536
#define MAX_BYTES_LIMIT (1024 * 1024) /* the bus's own payload limit */
#define MAX_BYTES_CONFIG 16777216     /* the gateway's range of --max-message-bytes */
#define HELP_SHOWN 3                  /* parse_args: --help printed, exit 0 */

typedef struct pub_opts {
    const char *redis, *prefix, *channel, *data;
    int no_history;
    long long timeout_ms, max_bytes;
    gw_strlist history; /* owned copies; from WSGW_HISTORY unless --history is given */
} pub_opts;

/* One run: the loop, the bus on it and what came back. */
typedef struct pub_run {
    const pub_opts *o;
    uv_loop_t loop;
    uv_timer_t timer;
    ps_bus *bus;
    gw_config cfg; /* only its namespaces are used */
    ps_redis_url url;
    json_t *data;
    json_t *result; /* set when the publish succeeded */
    int sent, done;
    char err[512];
} pub_run;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: wsgw publish [--redis URL] --channel CHANNEL --data JSON [options]\n"
            "Publishes one message as a backend would through POST /api/publish and\n"
            "prints {\"offset\":N,\"epoch\":\"E\"} (history channels) or {}.\n"
            "  --redis URL             redis://[[user]:password@]host[:port][/db]\n"
            "                          (default " DEFAULT_REDIS ") [WSGW_REDIS]\n"
            "  --redis-prefix PREFIX   prefix of Redis channel names (default wsgw:)\n"
            "                          [WSGW_REDIS_PREFIX]\n"
            "  --channel CHANNEL       namespace:name, e.g. job:42\n"
            "  --data JSON             the message data, any JSON value; - reads it from stdin\n"
            "  --history NS=SIZE:TTL[:latest]\n"
            "                          history of a namespace, as given to the gateways\n"
            "                          (repeatable) [WSGW_HISTORY, comma-separated]\n"
            "  --no-history            plain PUBLISH: delivered live, kept in no history\n"
            "  --max-message-bytes N   largest message (default 65536) [WSGW_MAX_MESSAGE_BYTES]\n"
            "  --timeout-ms MS         give up after this long (default 5000)\n"
            "Exit status: 0 published, 1 failed, 2 bad usage.\n");
}

static int parse_int(const char *flag, const char *v, long long min, long long max, long long *out)
{
    char *end;
    long long n;
    errno = 0;
    n = strtoll(v, &end, 10);
    if (errno || end == v || *end || n < min || n > max) {
        fprintf(stderr, "wsgw publish: %s: expected an integer from %lld to %lld, got '%s'\n", flag,
                min, max, v);
        return -1;
    }
    *out = n;
    return 0;
}

static int add_history(pub_opts *o, const char *v, size_t len)
{
    if (len == 0)
        return 0;
    if (o->history.n == GW_LIST_MAX) {
        fprintf(stderr, "wsgw publish: --history: at most %d values\n", GW_LIST_MAX);
        return -1;
    }
    o->history.items[o->history.n++] = strndup(v, len);
    return 0;
}

static void clear_history(pub_opts *o)
{
    for (size_t i = 0; i < o->history.n; i++)
        free(o->history.items[i]);
    o->history.n = 0;
}

/* Defaults, then the environment, then the flags. */
static int load_env(pub_opts *o)
{
    const char *v;
    o->timeout_ms = DEFAULT_TIMEOUT_MS;
    o->max_bytes = DEFAULT_MAX_BYTES;
    o->redis = DEFAULT_REDIS;
    /* Empty variables count as unset, as for the gateway. */
    if ((v = getenv("WSGW_REDIS")) && *v)
        o->redis = v;
    if ((v = getenv("WSGW_REDIS_PREFIX")) && *v)
        o->prefix = v;
    if ((v = getenv("WSGW_MAX_MESSAGE_BYTES")) && *v &&
        parse_int("WSGW_MAX_MESSAGE_BYTES", v, 256, MAX_BYTES_CONFIG, &o->max_bytes) < 0)
        return 2;
    for (v = getenv("WSGW_HISTORY"); v && *v;) {
        size_t n = strcspn(v, ",");
        if (add_history(o, v, n) < 0)
            return 2;
        v += n + (v[n] == ',');
    }
    return 0;
}

/* One flag. Returns 0, HELP_SHOWN, 2 (bad value) or -1 (unknown flag). */
static int apply_opt(pub_opts *o, int ch, int *history_flags)
{
    switch (ch) {
    case 'r':
        o->redis = optarg;
        return 0;
    case 'p':
        o->prefix = optarg;
        return 0;
    case 'c':
        o->channel = optarg;
        return 0;
    case 'd':
        o->data = optarg;
        return 0;
    case 'n':
        o->no_history = 1;
        return 0;
    case 'H':
        /* Flags replace the environment's list, as for the gateway. */
        if (!(*history_flags)++)
            clear_history(o);
        return add_history(o, optarg, strlen(optarg)) < 0 ? 2 : 0;
    case 't':
        if (parse_int("--timeout-ms", optarg, 1, 600000, &o->timeout_ms) < 0)
            return 2;
        return 0;
    case 'm':
        if (parse_int("--max-message-bytes", optarg, 256, MAX_BYTES_CONFIG, &o->max_bytes) < 0)
            return 2;
        return 0;
    case 'h':
        usage(stdout);
        return HELP_SHOWN;
    default:
        return -1;
    }
}

static int parse_args(pub_opts *o, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"redis", required_argument, NULL, 'r'},
        {"redis-prefix", required_argument, NULL, 'p'},
        {"channel", required_argument, NULL, 'c'},
        {"data", required_argument, NULL, 'd'},
        {"history", required_argument, NULL, 'H'},
        {"no-history", no_argument, NULL, 'n'},
        {"timeout-ms", required_argument, NULL, 't'},
        {"max-message-bytes", required_argument, NULL, 'm'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch, rc, history_flags = 0;
    if (load_env(o) != 0)
        return 2;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        rc = apply_opt(o, ch, &history_flags);
        if (rc == -1) {
            fprintf(stderr, "wsgw publish: unknown or incomplete option '%s'\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
        if (rc != 0)
            return rc;
    }
    if (optind < argc) {
        fprintf(stderr, "wsgw publish: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    /* The bus refuses more than 1 MiB whatever the gateways accept. */
    if (o->max_bytes > MAX_BYTES_LIMIT)
        o->max_bytes = MAX_BYTES_LIMIT;
    if (!o->redis || !*o->redis || !o->channel || !o->data) {
        fprintf(stderr, "wsgw publish: --channel and --data are required, --redis may not be "
                        "empty (see --help)\n");
        return 2;
    }
    return 0;
}

/* --data, or stdin for "-", parsed as any JSON value. NULL with a message. */
static json_t *load_data(const pub_opts *o)
{
    size_t max = (size_t)o->max_bytes, len = 0;
    char *buf = NULL;
    json_error_t jerr;
    json_t *data;
    if (strcmp(o->data, "-") == 0) {
        if (!(buf = malloc(max + 1))) {
            fprintf(stderr, "wsgw publish: out of memory\n");
            return NULL;
        }
        len = fread(buf, 1, max + 1, stdin);
        if (ferror(stdin) || len > max) {
            fprintf(stderr, "wsgw publish: %s\n",
                    len > max ? "data on stdin larger than the message size limit"
                              : "cannot read data from stdin");
            free(buf);
            return NULL;
        }
    }
    data = json_loadb(buf ? buf : o->data, buf ? len : strlen(o->data),
                      JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    free(buf);
    if (!data)
        fprintf(stderr, "wsgw publish: --data is not valid JSON: %s (line %d, column %d)\n",
                jerr.text, jerr.line, jerr.column);
    return data;
}

/* ------------------------------------------------------------ the run */

static void on_timer_closed(uv_handle_t *h)
{
    (void)h;
}

/* Stops the bus and the timer; the loop then runs out of handles. */
static void finish(pub_run *r)
{
    if (r->done)
        return;
    r->done = 1;
    uv_close((uv_handle_t *)&r->timer, on_timer_closed);
    if (r->bus)
        ps_bus_stop(r->bus);
}

static void on_published(void *udata, int status, const ps_publish_result *res)
{
    pub_run *r = udata;
    if (r->done)
        return; /* PS_ECLOSED from the stop after a timeout */
    if (status == PS_OK && !(r->result = gw_api_result_json(res)))
        snprintf(r->err, sizeof(r->err), "out of memory");
    else if (status != PS_OK)
        snprintf(r->err, sizeof(r->err), "publish failed: %s", ps_strerror(status));
    finish(r);
}

static void on_state(void *udata, int up)
{
    pub_run *r = udata;
    int rc;
    if (!up || r->sent || r->done)
        return;
    r->sent = 1;
    rc = gw_api_publish(r->bus, &r->cfg, r->o->channel, r->data, (size_t)r->o->max_bytes,
                        !r->o->no_history, on_published, r);
    if (rc == PS_ETOOBIG)
        snprintf(r->err, sizeof(r->err), "message larger than %lld bytes (--max-message-bytes)",
                 r->o->max_bytes);
    else if (rc != PS_OK)
        snprintf(r->err, sizeof(r->err), "publish failed: %s", ps_strerror(rc));
    if (rc != PS_OK)
        finish(r);
}

static void on_message(void *udata, const char *channel, const char *payload, size_t len)
{
    (void)udata, (void)channel, (void)payload, (void)len; /* subscribes to nothing */
}

static void on_timeout(uv_timer_t *t)
{
    pub_run *r = t->data;
    const char *why = r->bus ? ps_bus_last_error(r->bus) : "";
    if (r->sent)
        snprintf(r->err, sizeof(r->err), "no answer from Redis at %s:%d within %lld ms",
                 r->url.host, r->url.port, r->o->timeout_ms);
    else
        snprintf(r->err, sizeof(r->err), "Redis at %s:%d not reachable within %lld ms%s%s%s",
                 r->url.host, r->url.port, r->o->timeout_ms, *why ? " (" : "", why,
                 *why ? ")" : "");
    finish(r);
}

static int start_bus(pub_run *r)
{
    ps_bus_callbacks cb = {.on_message = on_message, .on_state = on_state, .udata = r};
    ps_redis_opts ro = {0};
    ro.url = r->url;
    ro.prefix = r->o->prefix; /* NULL: "wsgw:" */
    ro.max_payload = MAX_BYTES_LIMIT;
    r->bus = ps_redis_bus_new(&r->loop, &ro, &cb);
    if (!r->bus) {
        snprintf(r->err, sizeof(r->err),
                 "cannot use Redis at %s:%d (unknown host or bad "
                 "--redis-prefix)",
                 r->url.host, r->url.port);
        return -1;
    }
    return 0;
}

/* Everything after the checks: loop, bus, publish, clean shutdown. */
static int run(pub_run *r)
{
    uv_loop_init(&r->loop);
    uv_timer_init(&r->loop, &r->timer);
    r->timer.data = r;
    if (start_bus(r) < 0)
        finish(r);
    else
        uv_timer_start(&r->timer, on_timeout, (uint64_t)r->o->timeout_ms, 0);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    ps_bus_destroy(r->bus);
    r->bus = NULL;
    uv_run(&r->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&r->loop) != 0)
        fprintf(stderr, "wsgw publish: warning: handles still open at exit\n");
    if (!r->result) {
        fprintf(stderr, "wsgw publish: %s\n", r->err[0] ? r->err : "publish failed");
        return 1;
    }
    json_dumpf(r->result, stdout, JSON_COMPACT);
    fputc('\n', stdout);
    return fflush(stdout) == 0 ? 0 : 1;
}

/* The checks that need no Redis. Returns 0 or an exit code. */
static int prepare(pub_run *r, const pub_opts *o)
{
    char err[512];
    if (!auth_channel_valid(o->channel, strlen(o->channel))) {
        fprintf(stderr,
                "wsgw publish: --channel: '%s' is not a valid channel name "
                "(namespace:name, at most 128 of A-Z a-z 0-9 _ . : @ -)\n",
                o->channel);
        return 1;
    }
    if (ps_redis_url_parse(o->redis, &r->url) != PS_OK) {
        fprintf(stderr, "wsgw publish: --redis: cannot parse '%s'\n", o->redis);
        return 2;
    }
    /* The gateway's namespace defaults, overridden by --history. */
    r->cfg.history = o->history;
    if (gw_config_parse_namespaces(&r->cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "wsgw publish: %s\n", err);
        return 2;
    }
    if (!(r->data = load_data(o)))
        return 1;
    return 0;
}

int gw_publish_main(int argc, char **argv)
{
    pub_opts o = {0};
    pub_run r;
    int rc = parse_args(&o, argc, argv);
    memset(&r, 0, sizeof(r));
    r.o = &o;
    if (rc == 0)
        rc = prepare(&r, &o);
    if (rc == 0)
        rc = run(&r);
    if (rc == HELP_SHOWN)
        rc = 0;
    json_decref(r.result);
    json_decref(r.data);
    clear_history(&o);
    return rc;
}
