/*
 * config: the gateway's settings, from the command line and the environment.
 *
 * Every option is one row of `options[]`: its flag, the kind of value, where
 * it lands in gw_config, its default and its help line. The loader walks the
 * table twice, once for WSGW_<FLAG> variables and once for argv (getopt_long
 * built from the same rows), and --help prints the rows. Validation that
 * involves several options (the port, the key set) happens after both passes.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

enum opt_kind { OPT_STR, OPT_INT, OPT_LIST, OPT_LEVEL };

typedef struct opt_def {
    const char *name;   /* flag without dashes; env is WSGW_ + upper(name) */
    enum opt_kind kind;
    size_t offset;      /* into gw_config */
    const char *dflt;   /* NULL: unset */
    int64_t min, max;   /* for OPT_INT */
    const char *arg;    /* placeholder in --help */
    const char *help;
} opt_def;

#define OFF(f) offsetof(gw_config, f)

static const opt_def options[] = {
    {"listen", OPT_STR, OFF(listen), "127.0.0.1:8080", 0, 0, "HOST:PORT",
     "address to listen on for WebSocket and HTTP"},
    {"redis", OPT_STR, OFF(redis_url), NULL, 0, 0, "URL",
     "redis://[[user]:password@]host[:port][/db]; absent: in-process bus (one process)"},
    {"redis-prefix", OPT_STR, OFF(redis_prefix), "wsgw:", 0, 0, "PREFIX",
     "prefix of every Redis channel name"},
    {"jwt-secret-file", OPT_STR, OFF(jwt_secret_file), NULL, 0, 0, "PATH",
     "HMAC secret (at least 32 bytes) for HS256/384/512 tokens"},
    {"jwt-public-key", OPT_LIST, OFF(jwt_public_keys), NULL, 0, 0, "[KID=]PATH",
     "RSA or EC public key (PEM); repeatable; env: comma-separated"},
    {"jwt-issuer", OPT_STR, OFF(jwt_issuer), NULL, 0, 0, "ISS", "required iss claim"},
    {"jwt-audience", OPT_STR, OFF(jwt_audience), NULL, 0, 0, "AUD", "required aud claim"},
    {"jwt-leeway-seconds", OPT_INT, OFF(jwt_leeway_seconds), "30", 0, 300, "N",
     "clock skew allowed on exp/nbf/iat"},
    {"auth-timeout-ms", OPT_INT, OFF(auth_timeout_ms), "5000", 50, 600000, "MS",
     "time a new connection has to send its auth message"},
    {"max-message-bytes", OPT_INT, OFF(max_message_bytes), "65536", 256, 16777216, "N",
     "largest inbound message; larger ones close the connection with 1009"},
    {"ping-interval-seconds", OPT_INT, OFF(ping_interval_s), "25", 1, 3600, "N",
     "send a WebSocket ping after this much silence"},
    {"ping-timeout-seconds", OPT_INT, OFF(ping_timeout_s), "60", 2, 7200, "N",
     "drop a peer that has not answered a ping for this long"},
    {"handshake-timeout-seconds", OPT_INT, OFF(handshake_timeout_s), "10", 1, 300, "N",
     "drop a TCP connection that has not finished its HTTP request or upgrade in this time"},
    {"max-connections", OPT_INT, OFF(max_connections), "0", 0, 10000000, "N",
     "WebSocket connections per process; beyond it the upgrade gets HTTP 503; "
     "0: the open-file limit less a reserve"},
    {"max-connects-per-ip", OPT_INT, OFF(max_connects_per_ip), "0", 0, 1000000, "N",
     "new connections per second from one IP address; more are closed at accept; 0: no limit"},
    {"max-subscriptions", OPT_INT, OFF(max_subscriptions), "100", 1, 100000, "N",
     "channels one connection may hold (its own user: channel not counted); "
     "more: limit_exceeded"},
    {"publish-rate", OPT_INT, OFF(publish_rate), "20", 1, 1000000, "N",
     "client publishes per second per connection (token bucket refill); more: rate_limited"},
    {"publish-burst", OPT_INT, OFF(publish_burst), "100", 1, 1000000, "N",
     "client publishes a connection may send at once (token bucket size)"},
    {"max-queue-bytes", OPT_INT, OFF(max_queue_bytes), "1048576", 4096, 1073741824, "N",
     "bytes queued to one client; past it (or 4096 messages) it is closed with 4008"},
    {"allowed-origin", OPT_LIST, OFF(allowed_origins), NULL, 0, 0, "ORIGIN",
     "Origin allowed to upgrade, e.g. https://app.example.com (repeatable; none: any); "
     "others get HTTP 403"},
    {"workers", OPT_INT, OFF(workers), "1", 1, 256, "N",
     "worker processes sharing the port (SO_REUSEPORT); a supervisor restarts crashed ones"},
    {"drain-seconds", OPT_INT, OFF(drain_seconds), "10", 0, 3600, "N",
     "on SIGTERM, close clients with 1001 spread over this many seconds, then exit"},
    {"history", OPT_LIST, OFF(history), NULL, 0, 0, "NS=SIZE:TTL[:latest]",
     "history of a namespace (repeatable); defaults: job=100:86400:latest, "
     "chat=100:86400, user=100:3600; SIZE 0 turns it off"},
    {"recovery-max-messages", OPT_INT, OFF(recovery_max), "1000", 1, 100000, "N",
     "most messages one subscribe with since replays; beyond: recovered false"},
    {"api-key-file", OPT_LIST, OFF(api_key_files), NULL, 0, 0, "PATH",
     "API keys for POST /api/publish, one per line (repeatable: rotation)"},
    {"static-dir", OPT_STR, OFF(static_dir), NULL, 0, 0, "DIR",
     "serve the files under DIR at GET / (index.html) and their paths, e.g. a web page; "
     "listed at start"},
    {"log-level", OPT_LEVEL, OFF(log_level), "info", 0, 0, "LEVEL",
     "debug, info, warn or error"},
};

#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

static const char *level_names[] = {"debug", "info", "warn", "error"};

static void env_name(const opt_def *o, char *buf, size_t len)
{
    size_t i = (size_t)snprintf(buf, len, "WSGW_");
    for (const char *p = o->name; *p && i + 1 < len; p++)
        buf[i++] = (*p == '-') ? '_' : (char)toupper((unsigned char)*p);
    buf[i] = '\0';
}

static int set_int(const opt_def *o, gw_config *c, const char *v, char *err, size_t errlen)
{
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || end == v || *end || n < o->min || n > o->max) {
        snprintf(err, errlen, "--%s: expected an integer from %lld to %lld, got '%s'", o->name,
                 (long long)o->min, (long long)o->max, v);
        return -1;
    }
    *(int64_t *)((char *)c + o->offset) = n;
    return 0;
}

static int set_level(const opt_def *o, gw_config *c, const char *v, char *err, size_t errlen)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(v, level_names[i]) == 0) {
            *(int *)((char *)c + o->offset) = i;
            return 0;
        }
    }
    snprintf(err, errlen, "--%s: expected debug, info, warn or error, got '%s'", o->name, v);
    return -1;
}

static int add_list_item(const opt_def *o, gw_config *c, const char *v, size_t len, char *err,
                         size_t errlen)
{
    gw_strlist *l = (gw_strlist *)((char *)c + o->offset);
    if (len == 0)
        return 0;
    if (l->n == GW_LIST_MAX) {
        snprintf(err, errlen, "--%s: at most %d values", o->name, GW_LIST_MAX);
        return -1;
    }
    l->items[l->n++] = strndup(v, len);
    return 0;
}

static void list_clear(gw_strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    l->n = 0;
}

/* Applies one value. `from_env` lists split on commas; a flag is one item. */
static int set_opt(const opt_def *o, gw_config *c, const char *v, int from_env, char *err,
                   size_t errlen)
{
    char **slot;
    switch (o->kind) {
    case OPT_STR:
        slot = (char **)((char *)c + o->offset);
        free(*slot);
        *slot = strdup(v);
        return 0;
    case OPT_INT:
        return set_int(o, c, v, err, errlen);
    case OPT_LEVEL:
        return set_level(o, c, v, err, errlen);
    case OPT_LIST:
        if (!from_env)
            return add_list_item(o, c, v, strlen(v), err, errlen);
        for (const char *p = v; *p;) {
            size_t n = strcspn(p, ",");
            if (add_list_item(o, c, p, n, err, errlen) < 0)
                return -1;
            p += n + (p[n] == ',');
        }
        return 0;
    }
    return -1;
}

static int load_defaults(gw_config *c, char *err, size_t errlen)
{
    for (size_t i = 0; i < N_OPTIONS; i++) {
        if (options[i].dflt && set_opt(&options[i], c, options[i].dflt, 0, err, errlen) < 0)
            return -1;
    }
    return 0;
}

static int load_env(gw_config *c, char *err, size_t errlen)
{
    char name[64];
    for (size_t i = 0; i < N_OPTIONS; i++) {
        env_name(&options[i], name, sizeof(name));
        const char *v = getenv(name);
        if (v && *v && set_opt(&options[i], c, v, 1, err, errlen) < 0)
            return -1;
    }
    return 0;
}

/* An environment list is replaced, not extended, by flags on the command
 * line: the first flag of a list clears what the environment gave it. */
static void clear_env_list(const opt_def *o, gw_config *c, uint64_t *cleared)
{
    uint64_t bit = (uint64_t)1 << (o - options);
    if (*cleared & bit)
        return;
    list_clear((gw_strlist *)((char *)c + o->offset));
    *cleared |= bit;
}

static int load_argv(gw_config *c, int argc, char **argv, char *err, size_t errlen, FILE *out)
{
    struct option longopts[N_OPTIONS + 2];
    uint64_t cleared = 0; /* one bit per option: at most 64 options */
    _Static_assert(N_OPTIONS <= 64, "clear_env_list keeps one bit per option");
    for (size_t i = 0; i < N_OPTIONS; i++)
        longopts[i] = (struct option){options[i].name, required_argument, NULL, (int)i};
    longopts[N_OPTIONS] = (struct option){"help", no_argument, NULL, 'h' + 1000};
    longopts[N_OPTIONS + 1] = (struct option){NULL, 0, NULL, 0};

    optind = 1;
    opterr = 0;
    for (;;) {
        int idx = getopt_long(argc, argv, "", longopts, NULL);
        if (idx == -1)
            break;
        if (idx == 'h' + 1000) {
            gw_config_usage(out);
            return 1;
        }
        if (idx == '?' || idx == ':' || idx < 0 || (size_t)idx >= N_OPTIONS) {
            snprintf(err, errlen, "unknown or incomplete option '%s' (see --help)",
                     argv[optind - 1]);
            return -1;
        }
        if (options[idx].kind == OPT_LIST)
            clear_env_list(&options[idx], c, &cleared);
        if (set_opt(&options[idx], c, optarg, 0, err, errlen) < 0)
            return -1;
    }
    if (optind < argc) {
        snprintf(err, errlen, "unexpected argument '%s' (see --help)", argv[optind]);
        return -1;
    }
    return 0;
}

int gw_parse_hostport(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon = strrchr(s, ':');
    const char *h = s;
    size_t hl;
    if (!colon)
        return -1;
    hl = (size_t)(colon - s);
    if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']') {
        h = s + 1;
        hl -= 2;
    }
    if (hl == 0 || hl >= hostlen)
        return -1;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || p < 0 || p > 65535)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)p;
    return 0;
}

static const gw_namespace default_namespaces[] = {
    {"job", 100, 86400, 1},
    {"chat", 100, 86400, 0},
    {"user", 100, 3600, 0},
};

static gw_namespace *find_namespace(gw_config *c, const char *name)
{
    for (gw_namespace *ns = c->namespaces; ns->name[0]; ns++) {
        if (strcmp(ns->name, name) == 0)
            return ns;
    }
    return NULL;
}

/* "NS=SIZE:TTL[:latest]" -> a namespace row, replacing a default of that name. */
static int parse_history(gw_config *c, const char *spec, size_t *n, char *err, size_t errlen)
{
    gw_namespace ns = {0};
    char name[64], tail[16] = "";
    unsigned long long size, ttl;
    int k = sscanf(spec, "%63[A-Za-z0-9_.@-]=%llu:%llu:%15s", name, &size, &ttl, tail);
    gw_namespace *slot;

    if (k < 3 || size > 100000 || ttl < 1 || ttl > 30 * 86400 ||
        (k == 4 && strcmp(tail, "latest") != 0)) {
        snprintf(err, errlen,
                 "--history: expected NS=SIZE:TTL[:latest] (SIZE <= 100000, TTL 1..2592000 s), "
                 "got '%s'",
                 spec);
        return -1;
    }
    snprintf(ns.name, sizeof(ns.name), "%s", name);
    ns.size = (uint32_t)size;
    ns.ttl_s = (uint32_t)ttl;
    ns.latest = k == 4;
    slot = find_namespace(c, name);
    if (!slot)
        slot = &c->namespaces[(*n)++];
    *slot = ns;
    return 0;
}

int gw_config_parse_namespaces(gw_config *c, char *err, size_t errlen)
{
    size_t n = sizeof(default_namespaces) / sizeof(default_namespaces[0]);
    memset(c->namespaces, 0, sizeof(c->namespaces));
    memcpy(c->namespaces, default_namespaces, sizeof(default_namespaces));
    for (size_t i = 0; i < c->history.n; i++) {
        if (parse_history(c, c->history.items[i], &n, err, errlen) < 0)
            return -1;
    }
    return 0;
}

const gw_namespace *gw_config_namespace(const gw_config *c, const char *channel)
{
    const char *colon = strchr(channel, ':');
    size_t len = colon ? (size_t)(colon - channel) : 0;
    for (const gw_namespace *ns = c->namespaces; ns->name[0]; ns++) {
        if (strlen(ns->name) == len && memcmp(ns->name, channel, len) == 0)
            return ns->size ? ns : NULL;
    }
    return NULL;
}

static int validate(gw_config *c, char *err, size_t errlen)
{
    if (gw_parse_hostport(c->listen, c->listen_host, sizeof(c->listen_host), &c->listen_port)) {
        snprintf(err, errlen, "--listen: expected HOST:PORT, got '%s'", c->listen);
        return -1;
    }
    if (!c->jwt_secret_file && c->jwt_public_keys.n == 0) {
        snprintf(err, errlen,
                 "no token key: give --jwt-secret-file and/or --jwt-public-key");
        return -1;
    }
    if (c->workers > 1 && !c->redis_url) {
        /* Each worker would have its own in-process bus: clients of one
         * would never see messages published on another. */
        snprintf(err, errlen, "--workers %lld needs --redis: workers share messages through it",
                 (long long)c->workers);
        return -1;
    }
    if (c->ping_timeout_s <= c->ping_interval_s) {
        snprintf(err, errlen, "--ping-timeout-seconds must be larger than --ping-interval-seconds");
        return -1;
    }
    return gw_config_parse_namespaces(c, err, errlen);
}

int gw_config_load(gw_config *c, int argc, char **argv, char *err, size_t errlen, FILE *out)
{
    int rc;
    memset(c, 0, sizeof(*c));
    err[0] = '\0';
    if (load_defaults(c, err, errlen) < 0 || load_env(c, err, errlen) < 0)
        return -1;
    rc = load_argv(c, argc, argv, err, errlen, out);
    if (rc != 0)
        return rc;
    return validate(c, err, errlen);
}

void gw_config_free(gw_config *c)
{
    for (size_t i = 0; i < N_OPTIONS; i++) {
        if (options[i].kind == OPT_STR) {
            char **slot = (char **)((char *)c + options[i].offset);
            free(*slot);
            *slot = NULL;
        }
    }
    for (size_t i = 0; i < N_OPTIONS; i++) {
        if (options[i].kind == OPT_LIST)
            list_clear((gw_strlist *)((char *)c + options[i].offset));
    }
}

void gw_config_usage(FILE *out)
{
    char env[64], flag[64];
    fprintf(out, "usage: wsgw [OPTIONS]            run the gateway\n"
                 "       wsgw token [OPTIONS]      print a signed token (wsgw token --help)\n"
                 "       wsgw publish [OPTIONS]    publish one message (wsgw publish --help)\n"
                 "\nOptions (each also settable as the environment variable shown):\n");
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const opt_def *o = &options[i];
        env_name(o, env, sizeof(env));
        snprintf(flag, sizeof(flag), "--%s %s", o->name, o->arg);
        fprintf(out, "  %-34s %s\n  %-34s   [%s%s%s]\n", flag, o->help, "", env,
                o->dflt ? ", default " : "", o->dflt ? o->dflt : "");
    }
    fprintf(out, "  %-34s %s\n", "--help", "print this help");
}
