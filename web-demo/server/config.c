/*
 * config: options of wsgw-demo, parsed with getopt_long.
 *
 * Gateways come either as ports (--gateway-ports 8081,8082: the browser URL
 * is ws://<the hostname the page was loaded from>:<port>/ws and the backend
 * publishes to 127.0.0.1:<port>) or as URLs (--gateway ws://host:port/ws,
 * repeatable: given to browsers as is, published to at host:port). The order
 * is the failover order for publishing.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <auth/auth.h>

#define FILE_MAX (64 * 1024)
#define API_KEY_MIN 16

void demo_config_usage(FILE *out)
{
    fprintf(out,
            "usage: wsgw-demo --insecure-demo --secret-file PATH --api-key-file PATH [options]\n"
            "The web demo's backend: serves the page, signs tokens for any name typed in\n"
            "(demo only), and runs simulated jobs that publish progress through the gateways.\n"
            "  --insecure-demo         required: acknowledges that logins are not checked\n"
            "  --listen HOST:PORT      where the page is served (default 127.0.0.1:8080)\n"
            "  --secret-file PATH      the gateways' --jwt-secret-file (HMAC, >= 32 bytes)\n"
            "  --api-key-file PATH     a gateway API key file (its first key is used)\n"
            "  --gateway-ports LIST    gateway ports on this host (default 8081,8082)\n"
            "  --gateway URL           a gateway's ws:// URL, repeatable (instead of ports)\n"
            "  --static-dir DIR        the page's files (default: the web-demo source folder)\n"
            "  --job-seconds N         duration of a simulated job (default 10)\n"
            "  --token-ttl SECONDS     lifetime of the tokens it signs (default 3600)\n"
            "  --fail-percent N        chance that a simulated job fails (default 15)\n");
}

int demo_parse_hostport(const char *s, size_t len, char *host, size_t hostlen, int *port)
{
    const char *colon = NULL, *h = s;
    size_t hl;
    long p = 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] == ':')
            colon = s + i;
    if (!colon || colon + 1 == s + len || (size_t)(s + len - colon) > 6)
        return -1;
    for (const char *d = colon + 1; d < s + len; d++) {
        if (*d < '0' || *d > '9')
            return -1;
        p = p * 10 + (*d - '0');
    }
    hl = (size_t)(colon - s);
    if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']') {
        h = s + 1;
        hl -= 2;
    }
    if (hl == 0 || hl >= hostlen || p < 1 || p > 65535)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)p;
    return 0;
}

static int add_port(demo_config *c, const char *s, size_t n)
{
    char buf[8], *end;
    long p;
    if (n == 0 || n >= sizeof(buf) || c->n_gateways == DEMO_MAX_GATEWAYS)
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    p = strtol(buf, &end, 10);
    if (*end || p < 1 || p > 65535)
        return -1;
    demo_gateway *g = &c->gateways[c->n_gateways++];
    memset(g, 0, sizeof(*g));
    snprintf(g->host, sizeof(g->host), "127.0.0.1");
    g->port = (int)p;
    return 0;
}

static int parse_ports(demo_config *c, const char *list)
{
    c->n_gateways = 0;
    c->by_ports = 1;
    for (const char *p = list;;) {
        size_t n = strcspn(p, ",");
        if (add_port(c, p, n) < 0)
            return -1;
        if (!p[n])
            return 0;
        p += n + 1;
    }
}

/* "ws://host:port[/path]" -> a gateway. Only ws: the backend publishes over
 * plain HTTP to the same host and port. */
static int add_url(demo_config *c, const char *url)
{
    const char *hp, *slash;
    demo_gateway *g;
    if (strncmp(url, "ws://", 5) != 0 || strlen(url) >= sizeof(g->url) ||
        c->n_gateways == DEMO_MAX_GATEWAYS)
        return -1;
    hp = url + 5;
    slash = strchr(hp, '/');
    g = &c->gateways[c->n_gateways];
    memset(g, 0, sizeof(*g));
    if (demo_parse_hostport(hp, slash ? (size_t)(slash - hp) : strlen(hp), g->host, sizeof(g->host),
                            &g->port) < 0)
        return -1;
    snprintf(g->url, sizeof(g->url), "%s", url);
    c->n_gateways++;
    return 0;
}

static int read_file(const char *path, char **buf, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    size_t n;
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    *buf = malloc(FILE_MAX + 1);
    if (!*buf) {
        fclose(f);
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    n = fread(*buf, 1, FILE_MAX + 1, f);
    fclose(f);
    if (n > FILE_MAX) {
        free(*buf);
        *buf = NULL;
        snprintf(err, errlen, "%s: larger than %d bytes", path, FILE_MAX);
        return -1;
    }
    (*buf)[n] = '\0';
    *len = n;
    return 0;
}

/* The secret as the gateway reads it: trailing CR/LF are not part of it. */
static int load_secret(demo_config *c, char *err, size_t errlen)
{
    if (read_file(c->secret_file, &c->secret, &c->secret_len, err, errlen) < 0)
        return -1;
    while (c->secret_len &&
           (c->secret[c->secret_len - 1] == '\n' || c->secret[c->secret_len - 1] == '\r'))
        c->secret[--c->secret_len] = '\0';
    if (c->secret_len < AUTH_MIN_HMAC_SECRET) {
        snprintf(err, errlen, "--secret-file %s: shorter than %d bytes", c->secret_file,
                 AUTH_MIN_HMAC_SECRET);
        return -1;
    }
    return 0;
}

/* The first key line of the file, as the gateway reads key files: blank
 * lines and #-comments skipped, trailing whitespace trimmed. */
static int load_api_key(demo_config *c, char *err, size_t errlen)
{
    char *buf;
    size_t len;
    if (read_file(c->api_key_file, &buf, &len, err, errlen) < 0)
        return -1;
    for (char *line = buf; line < buf + len;) {
        size_t n = strcspn(line, "\n");
        char *next = line + n + (line[n] == '\n');
        while (n && (line[n - 1] == ' ' || line[n - 1] == '\t' || line[n - 1] == '\r'))
            n--;
        if (n && line[0] != '#') {
            c->api_key = strndup(line, n);
            break;
        }
        line = next;
    }
    memset(buf, 0, len);
    free(buf);
    if (!c->api_key || strlen(c->api_key) < API_KEY_MIN || strpbrk(c->api_key, " \t")) {
        snprintf(err, errlen, "--api-key-file %s: no usable key (16+ visible characters)",
                 c->api_key_file);
        return -1;
    }
    return 0;
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

enum {
    O_LISTEN = 1,
    O_SECRET,
    O_APIKEY,
    O_PORTS,
    O_GATEWAY,
    O_STATIC,
    O_INSECURE,
    O_JOBSEC,
    O_TTL,
    O_FAILPCT,
    O_HELP
};

static int parse_one(demo_config *c, int ch, int *urls_given, char *err, size_t errlen)
{
    switch (ch) {
    case O_LISTEN:
        if (demo_parse_hostport(optarg, strlen(optarg), c->listen_host, sizeof(c->listen_host),
                                &c->listen_port) == 0)
            return 0;
        snprintf(err, errlen, "--listen: expected HOST:PORT, got '%s'", optarg);
        return -1;
    case O_SECRET:
        c->secret_file = optarg;
        return 0;
    case O_APIKEY:
        c->api_key_file = optarg;
        return 0;
    case O_STATIC:
        c->static_dir = optarg;
        return 0;
    case O_INSECURE:
        c->insecure_demo = 1;
        return 0;
    case O_PORTS:
        if (*urls_given == 0 && parse_ports(c, optarg) == 0)
            return 0;
        snprintf(err, errlen, "--gateway-ports: expected ports like 8081,8082 (and no --gateway)");
        return -1;
    case O_GATEWAY:
        if (*urls_given == 0) {
            c->n_gateways = 0;
            c->by_ports = 0;
        }
        (*urls_given)++;
        if (c->by_ports == 0 && add_url(c, optarg) == 0)
            return 0;
        snprintf(err, errlen, "--gateway: expected ws://HOST:PORT/ws (at most %d), got '%s'",
                 DEMO_MAX_GATEWAYS, optarg);
        return -1;
    case O_JOBSEC:
        if (parse_int(optarg, 3, 3600, &c->job_seconds) == 0)
            return 0;
        snprintf(err, errlen, "--job-seconds: expected 3..3600");
        return -1;
    case O_TTL:
        if (parse_int(optarg, 60, 86400, &c->token_ttl) == 0)
            return 0;
        snprintf(err, errlen, "--token-ttl: expected 60..86400");
        return -1;
    case O_FAILPCT:
        if (parse_int(optarg, 0, 100, &c->fail_percent) == 0)
            return 0;
        snprintf(err, errlen, "--fail-percent: expected 0..100");
        return -1;
    default:
        snprintf(err, errlen, "unknown or incomplete option (see --help)");
        return -1;
    }
}

static void set_defaults(demo_config *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->listen_host, sizeof(c->listen_host), "127.0.0.1");
    c->listen_port = 8080;
    c->static_dir = WSGW_DEMO_STATIC_DIR;
    c->job_seconds = 10;
    c->token_ttl = 3600;
    c->fail_percent = 15;
    parse_ports(c, "8081,8082");
}

int demo_config_load(demo_config *c, int argc, char **argv, char *err, size_t errlen, FILE *out)
{
    static const struct option longopts[] = {{"listen", required_argument, NULL, O_LISTEN},
                                             {"secret-file", required_argument, NULL, O_SECRET},
                                             {"api-key-file", required_argument, NULL, O_APIKEY},
                                             {"gateway-ports", required_argument, NULL, O_PORTS},
                                             {"gateway", required_argument, NULL, O_GATEWAY},
                                             {"static-dir", required_argument, NULL, O_STATIC},
                                             {"insecure-demo", no_argument, NULL, O_INSECURE},
                                             {"job-seconds", required_argument, NULL, O_JOBSEC},
                                             {"token-ttl", required_argument, NULL, O_TTL},
                                             {"fail-percent", required_argument, NULL, O_FAILPCT},
                                             {"help", no_argument, NULL, O_HELP},
                                             {NULL, 0, NULL, 0}};
    int ch, urls = 0;

    set_defaults(c);
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (ch == O_HELP) {
            demo_config_usage(out);
            return 1;
        }
        if (parse_one(c, ch, &urls, err, errlen) < 0)
            return -1;
    }
    if (optind < argc) {
        snprintf(err, errlen, "unexpected argument '%s'", argv[optind]);
        return -1;
    }
    if (!c->insecure_demo) {
        snprintf(err, errlen,
                 "refusing to start without --insecure-demo: this backend signs a "
                 "token for any name typed into its page (a demo, not a login)");
        return -1;
    }
    if (!c->secret_file || !c->api_key_file) {
        snprintf(err, errlen, "--secret-file and --api-key-file are required");
        return -1;
    }
    return load_secret(c, err, errlen) < 0 ? -1 : load_api_key(c, err, errlen);
}

void demo_config_free(demo_config *c)
{
    if (c->secret) {
        memset(c->secret, 0, c->secret_len);
        free(c->secret);
    }
    if (c->api_key) {
        memset(c->api_key, 0, strlen(c->api_key));
        free(c->api_key);
    }
    c->secret = c->api_key = NULL;
}
