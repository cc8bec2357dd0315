/*
 * options: the command line of wsgw-bench, turned into a bench_config.
 *
 * Every address the bench will connect to or bind is checked here to be in
 * 127.0.0.0/8: this tool generates load, and load may only ever go to this
 * machine's loopback. Limits are checked here too, so that the rest of the
 * program can trust the configuration (counts fit the per-process fd limit,
 * the run is bounded in time).
 */
#include "bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PER_PROC_MAX 19000      /* under the ~20,000 fd hard limit, with room */
#define PER_PROC_DEFAULT 15000  /* --procs default: ceil(N / this) */
#define PER_SRC_DEFAULT 10000   /* default source spread: one address per this many */
#define SECRET_MAX 65536

enum {
    O_URL = 256, O_CONNECTIONS, O_PROCS, O_SOURCE_IPS, O_CONNECT_RATE, O_MAX_PENDING,
    O_CONNECT_TIMEOUT, O_SECRET_FILE, O_KID, O_ISSUER, O_AUDIENCE, O_PATTERN, O_CHANNEL,
    O_JOB_PREFIX, O_PUBLISH_VIA, O_REDIS, O_PREFIX, O_RATE, O_CLOSED_LOOP, O_WINDOW,
    O_DURATION, O_MESSAGES, O_PAYLOAD, O_DRAIN, O_IDLE, O_PID, O_JSON, O_QUIET, O_HELP,
    O_TARGET, O_PUB_PATH, O_HTTP_CONNS, O_HTTP_DEPTH, O_SETTLE,
};

static const struct option long_opts[] = {
    {"url", required_argument, NULL, O_URL},
    {"target", required_argument, NULL, O_TARGET},
    {"settle", required_argument, NULL, O_SETTLE},
    {"pub-path", required_argument, NULL, O_PUB_PATH},
    {"http-conns", required_argument, NULL, O_HTTP_CONNS},
    {"http-depth", required_argument, NULL, O_HTTP_DEPTH},
    {"connections", required_argument, NULL, O_CONNECTIONS},
    {"procs", required_argument, NULL, O_PROCS},
    {"source-ips", required_argument, NULL, O_SOURCE_IPS},
    {"connect-rate", required_argument, NULL, O_CONNECT_RATE},
    {"max-pending", required_argument, NULL, O_MAX_PENDING},
    {"connect-timeout", required_argument, NULL, O_CONNECT_TIMEOUT},
    {"secret-file", required_argument, NULL, O_SECRET_FILE},
    {"kid", required_argument, NULL, O_KID},
    {"issuer", required_argument, NULL, O_ISSUER},
    {"audience", required_argument, NULL, O_AUDIENCE},
    {"pattern", required_argument, NULL, O_PATTERN},
    {"channel", required_argument, NULL, O_CHANNEL},
    {"job-prefix", required_argument, NULL, O_JOB_PREFIX},
    {"publish-via", required_argument, NULL, O_PUBLISH_VIA},
    {"redis", required_argument, NULL, O_REDIS},
    {"prefix", required_argument, NULL, O_PREFIX},
    {"rate", required_argument, NULL, O_RATE},
    {"closed-loop", no_argument, NULL, O_CLOSED_LOOP},
    {"window", required_argument, NULL, O_WINDOW},
    {"duration", required_argument, NULL, O_DURATION},
    {"messages", required_argument, NULL, O_MESSAGES},
    {"payload-bytes", required_argument, NULL, O_PAYLOAD},
    {"drain-timeout", required_argument, NULL, O_DRAIN},
    {"idle", no_argument, NULL, O_IDLE},
    {"pid", required_argument, NULL, O_PID},
    {"json", required_argument, NULL, O_JSON},
    {"quiet", no_argument, NULL, O_QUIET},
    {"help", no_argument, NULL, O_HELP},
    {NULL, 0, NULL, 0},
};

static const char usage_text[] =
    "usage: wsgw-bench --secret-file F [options]\n"
    "       wsgw-bench --target nchan --url ws://127.0.0.1:PORT/sub/ [options]\n"
    "\n"
    "Opens N WebSocket connections to a wsgw gateway on loopback, authenticates\n"
    "each with a token it signs (HS256), subscribes them, publishes sequenced,\n"
    "timestamped messages and reports connect rate, deliveries/s, publish-to-receive\n"
    "latency and lost/duplicate counts. Exit code 0: all delivered exactly once;\n"
    "1: a connection failed or a message was lost, duplicated, reordered or\n"
    "misrouted; 2: bad usage or setup.\n"
    "\n"
    "target and connections:\n"
    "  --url ws://127.0.0.1:8080/ws   gateway (loopback addresses only)\n"
    "  --connections N                connections to open (default 100)\n"
    "  --procs K                      worker processes (default ceil(N/15000))\n"
    "  --source-ips A[-B]             loopback source addresses, used round robin\n"
    "                                 (default 127.0.0.2 onwards, one per 10,000)\n"
    "  --connect-rate C               new connections per second (default 5000)\n"
    "  --max-pending P                per process, connects not yet ready (default 500)\n"
    "  --connect-timeout S            seconds for one connection to be ready (default 15)\n"
    "  --target wsgw|nchan            server under test (default wsgw). nchan: the URL\n"
    "                                 path is the subscriber location, the channel is\n"
    "                                 appended to it, no auth; publishing is HTTP POST\n"
    "tokens:\n"
    "  --secret-file F                HMAC secret the gateway verifies with (required)\n"
    "  --kid ID  --issuer ISS  --audience AUD   claims/header to match the gateway's config\n"
    "subscriptions:\n"
    "  --pattern broadcast|per-job    all on one channel, or job:<i> each (default broadcast)\n"
    "  --channel NAME                 broadcast channel (default chat:bench)\n"
    "  --job-prefix P                 per-job channel prefix (default job:)\n"
    "publishing:\n"
    "  --publish-via redis|ws|http    Redis PUBLISH (default when --redis given), a\n"
    "                                 WebSocket client's publish command, or HTTP POST\n"
    "                                 (nchan only, its default)\n"
    "  --redis redis://127.0.0.1:6379 Redis the gateway listens to\n"
    "  --prefix wsgw:                 Redis channel prefix\n"
    "  --pub-path /pub/               nchan: publisher location (channel appended)\n"
    "  --http-conns N                 nchan: keep-alive publishing connections (default 8)\n"
    "  --http-depth D                 nchan: requests pipelined per connection (default 32)\n"
    "  --rate R                       messages per second (default 100)\n"
    "  --closed-loop                  publish as fast as deliveries complete\n"
    "  --window W                     closed loop: messages in flight (default 1)\n"
    "  --duration S                   seconds of publishing (default 10)\n"
    "  --messages M                   stop after M messages (default: duration only)\n"
    "  --payload-bytes B              size of each message's data object (default 100)\n"
    "  --drain-timeout S              seconds to wait for late deliveries (default 10)\n"
    "  --settle S                     seconds between all connections ready and the first\n"
    "                                 publish (default 0; nchan: 1, see nchan.h)\n"
    "modes and output:\n"
    "  --idle                         connect, authenticate, subscribe, hold --duration\n"
    "                                 seconds; no publishing\n"
    "  --pid PID                      gateway process: report its RSS before/after\n"
    "  --json FILE                    also write the report as JSON (- for stdout)\n"
    "  --quiet                        no progress lines on stderr\n";

static int bad(const char *opt, const char *v, const char *why)
{
    fprintf(stderr, "wsgw-bench: --%s %s: %s\n", opt, v, why);
    return -1;
}

static int is_loopback(struct in_addr a)
{
    return (ntohl(a.s_addr) >> 24) == 127;
}

static int parse_num(const char *opt, const char *v, double lo, double hi, double *out)
{
    char *end;
    double d;
    errno = 0;
    d = strtod(v, &end);
    if (errno || end == v || *end || !(d >= lo && d <= hi)) {
        fprintf(stderr, "wsgw-bench: --%s: expected a number from %g to %g, got '%s'\n", opt, lo,
                hi, v);
        return -1;
    }
    *out = d;
    return 0;
}

static int parse_u32(const char *opt, const char *v, double lo, double hi, uint32_t *out)
{
    double d;
    if (parse_num(opt, v, lo, hi, &d) < 0)
        return -1;
    if (d != floor(d))
        return bad(opt, v, "expected an integer");
    *out = (uint32_t)d;
    return 0;
}

/* HOST[:PORT] into a loopback sockaddr; "localhost" means 127.0.0.1. */
static int parse_hostport(const char *opt, const char *s, size_t n, int defport,
                          struct sockaddr_in *sa)
{
    char host[64];
    const char *colon = memchr(s, ':', n);
    size_t hl = colon ? (size_t)(colon - s) : n;
    long port = defport;
    memset(sa, 0, sizeof(*sa));
    if (hl == 0 || hl >= sizeof(host))
        return bad(opt, s, "expected HOST:PORT");
    memcpy(host, s, hl);
    host[hl] = '\0';
    if (colon) {
        char *end;
        port = strtol(colon + 1, &end, 10);
        if (end != s + n || port < 1 || port > 65535)
            return bad(opt, s, "bad port");
    }
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
        return bad(opt, s, "host must be an IPv4 loopback address (127.x.y.z) or localhost");
    if (!is_loopback(sa->sin_addr))
        return bad(opt, s, "refusing a non-loopback target: load goes to 127.0.0.0/8 only");
    return 0;
}

static int parse_url(bench_config *cfg, const char *url)
{
    const char *hp = url + 5, *slash;
    if (strncmp(url, "ws://", 5) != 0)
        return bad("url", url, "expected ws://HOST:PORT/PATH (no TLS on loopback)");
    slash = strchr(hp, '/');
    if (parse_hostport("url", hp, slash ? (size_t)(slash - hp) : strlen(hp), 80, &cfg->dst) < 0)
        return -1;
    snprintf(cfg->host_header, sizeof(cfg->host_header), "%.*s",
             (int)(slash ? (size_t)(slash - hp) : strlen(hp)), hp);
    if (slash && strlen(slash) >= sizeof(cfg->path))
        return bad("url", url, "path too long");
    snprintf(cfg->path, sizeof(cfg->path), "%s", slash ? slash : "/");
    snprintf(cfg->url, sizeof(cfg->url), "%s", url);
    return 0;
}

static int parse_redis(bench_config *cfg, const char *url)
{
    const char *hp = url + 8;
    size_t n;
    if (strncmp(url, "redis://", 8) != 0 || strchr(hp, '@'))
        return bad("redis", url, "expected redis://HOST:PORT (no password)");
    n = strcspn(hp, "/");
    if (hp[n] && strcmp(hp + n, "/") != 0 && strcmp(hp + n, "/0") != 0)
        return bad("redis", url, "only database 0 is supported (PUBLISH ignores it anyway)");
    if (parse_hostport("redis", hp, n, 6379, &cfg->redis) < 0)
        return -1;
    cfg->have_redis = 1;
    return 0;
}

static int parse_sources(bench_config *cfg, const char *v)
{
    char a[32], b[32];
    const char *dash = strchr(v, '-');
    struct in_addr lo, hi;
    snprintf(a, sizeof(a), "%.*s", dash ? (int)(dash - v) : (int)strlen(v), v);
    snprintf(b, sizeof(b), "%s", dash ? dash + 1 : a);
    if (inet_pton(AF_INET, a, &lo) != 1 || inet_pton(AF_INET, b, &hi) != 1)
        return bad("source-ips", v, "expected A or A-B, IPv4 addresses");
    if (!is_loopback(lo) || !is_loopback(hi) || ntohl(hi.s_addr) < ntohl(lo.s_addr))
        return bad("source-ips", v, "expected an ascending range inside 127.0.0.0/8");
    cfg->src_first = ntohl(lo.s_addr);
    cfg->src_count = ntohl(hi.s_addr) - cfg->src_first + 1;
    return 0;
}

static int read_secret(bench_config *cfg, const char *path)
{
    FILE *f = fopen(path, "rb");
    size_t n;
    if (!f)
        return bad("secret-file", path, strerror(errno));
    free(cfg->secret); /* the last --secret-file wins */
    cfg->secret = malloc(SECRET_MAX + 1);
    n = cfg->secret ? fread(cfg->secret, 1, SECRET_MAX + 1, f) : 0;
    fclose(f);
    /* Trailing newlines are not part of the key: the gateway strips them too. */
    while (n && (cfg->secret[n - 1] == '\n' || cfg->secret[n - 1] == '\r'))
        n--;
    if (n == 0 || n > SECRET_MAX)
        return bad("secret-file", path, "empty, unreadable or larger than 64 KiB");
    cfg->secret_len = n;
    return 0;
}

static int parse_choice(const char *opt, const char *v, const char *a, const char *b, int *out)
{
    if (strcmp(v, a) == 0)
        *out = 0;
    else if (strcmp(v, b) == 0)
        *out = 1;
    else
        return bad(opt, v, "unknown choice");
    return 0;
}

static int copy_str(const char *opt, const char *v, char *dst, size_t cap)
{
    if (strlen(v) == 0 || strlen(v) >= cap)
        return bad(opt, v, "empty or too long");
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}

static int apply(bench_config *cfg, int o, const char *v, const char **via)
{
    int choice;
    double d;
    switch (o) {
    case O_URL: return parse_url(cfg, v);
    case O_TARGET:
        if (parse_choice("target", v, "wsgw", "nchan", &choice) < 0)
            return -1;
        cfg->target = choice ? BENCH_TARGET_NCHAN : BENCH_TARGET_WSGW;
        return 0;
    case O_PUB_PATH:
        if (v[0] != '/')
            return bad("pub-path", v, "expected a path starting with /");
        return copy_str("pub-path", v, cfg->pub_path, sizeof(cfg->pub_path));
    case O_HTTP_CONNS: return parse_u32("http-conns", v, 1, 256, &cfg->http_conns);
    case O_HTTP_DEPTH: return parse_u32("http-depth", v, 1, 10000, &cfg->http_depth);
    case O_CONNECTIONS: return parse_u32("connections", v, 1, BENCH_MAX_CONNECTIONS, &cfg->connections);
    case O_PROCS: return parse_u32("procs", v, 1, BENCH_MAX_PROCS, &cfg->procs);
    case O_SOURCE_IPS: return parse_sources(cfg, v);
    case O_CONNECT_RATE: return parse_num("connect-rate", v, 1, 1e6, &cfg->connect_rate);
    case O_MAX_PENDING: return parse_u32("max-pending", v, 1, PER_PROC_MAX, &cfg->max_pending);
    case O_CONNECT_TIMEOUT: return parse_num("connect-timeout", v, 0.1, 600, &cfg->connect_timeout);
    case O_SECRET_FILE: return read_secret(cfg, v);
    case O_KID: cfg->kid = v; return 0;
    case O_ISSUER: cfg->issuer = v; return 0;
    case O_AUDIENCE: cfg->audience = v; return 0;
    case O_PATTERN:
        if (parse_choice("pattern", v, "broadcast", "per-job", &choice) < 0)
            return -1;
        cfg->pattern = choice ? BENCH_PER_JOB : BENCH_BROADCAST;
        return 0;
    case O_CHANNEL: return copy_str("channel", v, cfg->channel, sizeof(cfg->channel));
    case O_JOB_PREFIX: return copy_str("job-prefix", v, cfg->job_prefix, sizeof(cfg->job_prefix));
    case O_PUBLISH_VIA: *via = v; return 0;
    case O_REDIS: return parse_redis(cfg, v);
    case O_PREFIX: return copy_str("prefix", v, cfg->redis_prefix, sizeof(cfg->redis_prefix));
    case O_RATE: return parse_num("rate", v, 0.1, 1e7, &cfg->rate);
    case O_CLOSED_LOOP: cfg->closed_loop = 1; return 0;
    case O_WINDOW: return parse_u32("window", v, 1, 1000000, &cfg->window);
    case O_DURATION: return parse_num("duration", v, 0.1, 86400, &cfg->duration);
    case O_MESSAGES:
        if (parse_num("messages", v, 1, 1e12, &d) < 0)
            return -1;
        cfg->messages = (uint64_t)d;
        return 0;
    case O_PAYLOAD: return parse_u32("payload-bytes", v, 0, 60000, &cfg->payload_bytes);
    case O_DRAIN: return parse_num("drain-timeout", v, 0.1, 600, &cfg->drain_timeout);
    case O_SETTLE: return parse_num("settle", v, 0, 600, &cfg->settle);
    case O_IDLE: cfg->idle = 1; return 0;
    case O_PID:
        if (parse_num("pid", v, 1, 1 << 30, &d) < 0)
            return -1;
        cfg->pid = (int)d;
        return 0;
    case O_JSON: cfg->json_path = v; return 0;
    case O_QUIET: cfg->quiet = 1; return 0;
    default: return -1;
    }
}

static void set_defaults(bench_config *cfg)
{
    struct timespec ts;
    memset(cfg, 0, sizeof(*cfg));
    parse_url(cfg, "ws://127.0.0.1:8080/ws");
    cfg->connections = 100;
    cfg->connect_rate = 5000;
    cfg->max_pending = 500;
    cfg->connect_timeout = 15;
    cfg->pattern = BENCH_BROADCAST;
    strcpy(cfg->channel, "chat:bench");
    strcpy(cfg->job_prefix, "job:");
    strcpy(cfg->redis_prefix, "wsgw:");
    strcpy(cfg->pub_path, "/pub/");
    cfg->http_conns = 8;
    cfg->http_depth = 32;
    cfg->window = 1;
    cfg->duration = 10;
    cfg->payload_bytes = 100;
    cfg->drain_timeout = 10;
    cfg->settle = -1;
    clock_gettime(CLOCK_REALTIME, &ts);
    /* Kept below 2^53 so that any JSON parser on the way keeps it exact. */
    cfg->run_id = ((uint64_t)ts.tv_sec * 1000003u ^ (uint64_t)ts.tv_nsec ^
                   (uint64_t)getpid() << 20) & ((UINT64_C(1) << 53) - 1);
}

/* Fills what depends on other options, and rejects combinations. */
static int finish(bench_config *cfg, const char *via)
{
    uint32_t per_proc;
    if (!cfg->secret && cfg->target == BENCH_TARGET_WSGW) {
        fprintf(stderr, "wsgw-bench: --secret-file is required (the gateway's HMAC secret)\n");
        return -1;
    }
    if (!cfg->procs)
        cfg->procs = (cfg->connections + PER_PROC_DEFAULT - 1) / PER_PROC_DEFAULT;
    if (cfg->procs > cfg->connections)
        cfg->procs = cfg->connections;
    per_proc = (cfg->connections + cfg->procs - 1) / cfg->procs;
    if (per_proc > PER_PROC_MAX) {
        fprintf(stderr, "wsgw-bench: %u connections per process exceed the fd limit: raise --procs\n",
                per_proc);
        return -1;
    }
    if (!cfg->src_count) {
        cfg->src_first = (127u << 24) | 2;
        cfg->src_count = (cfg->connections + PER_SRC_DEFAULT - 1) / PER_SRC_DEFAULT;
    }
    if (via && strcmp(via, "http") == 0)
        cfg->via = BENCH_VIA_HTTP;
    else if (via && strcmp(via, "ws") == 0)
        cfg->via = BENCH_VIA_WS;
    else if (via && strcmp(via, "redis") == 0)
        cfg->via = BENCH_VIA_REDIS;
    else if (via)
        return bad("publish-via", via, "unknown choice");
    else if (cfg->target == BENCH_TARGET_NCHAN)
        cfg->via = BENCH_VIA_HTTP;
    else
        cfg->via = cfg->have_redis ? BENCH_VIA_REDIS : BENCH_VIA_WS;
    /* Nchan has no wsgw publish command and its Redis layout is its own;
     * wsgw has no plain-body HTTP publisher. */
    if ((cfg->via == BENCH_VIA_HTTP) != (cfg->target == BENCH_TARGET_NCHAN)) {
        fprintf(stderr, "wsgw-bench: --target nchan publishes with --publish-via http, and only it does\n");
        return -1;
    }
    if (!cfg->idle && cfg->via == BENCH_VIA_REDIS && !cfg->have_redis) {
        fprintf(stderr, "wsgw-bench: --publish-via redis needs --redis redis://127.0.0.1:PORT\n");
        return -1;
    }
    if (cfg->settle < 0)
        cfg->settle = cfg->target == BENCH_TARGET_NCHAN ? 1 : 0;
    if (cfg->closed_loop && cfg->rate > 0) {
        fprintf(stderr, "wsgw-bench: --rate and --closed-loop exclude each other\n");
        return -1;
    }
    if (!cfg->closed_loop && cfg->rate == 0)
        cfg->rate = 100;
    return 0;
}

int bench_options_parse(bench_config *cfg, int argc, char **argv)
{
    const char *via = NULL;
    int o;
    set_defaults(cfg);
    opterr = 0;
    while ((o = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
        if (o == O_HELP) {
            fputs(usage_text, stdout);
            return 1;
        }
        if (o == '?') {
            fprintf(stderr, "wsgw-bench: unknown or incomplete option '%s' (see --help)\n",
                    argv[optind - 1]);
            return -1;
        }
        if (apply(cfg, o, optarg, &via) < 0)
            return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "wsgw-bench: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    return finish(cfg, via);
}

void bench_options_free(bench_config *cfg)
{
    free(cfg->secret);
    cfg->secret = NULL;
}
