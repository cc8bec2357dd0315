/*
 * client_limits: admission checks and the publish token bucket.
 *
 * The per-address table counts connects in a fixed one-second window that
 * starts with an address's first connect; the 1 s tick (timers.c) drops the
 * windows that have passed, so the table holds about the addresses of the
 * last second or two. It is bounded: when it is full, new addresses are let
 * through untracked rather than refused, since an attack from that many
 * addresses at once is one this limit cannot stop anyway (--max-connections
 * still holds), and refusing would lock out every newcomer.
 *
 * The check runs on the bare accepted fd, before lws allocates anything for
 * it, and a refused connection is simply closed: the cheapest answer to a
 * connect flood, which is what this limit is for.
 */
#include "client_limits.h"

#include <netinet/in.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#define HASH_NONFATAL_OOM 1
#include <uthash.h>

#include "conn.h"
#include "log.h"
#include "server.h"
#include "timers.h"

#define IP_TABLE_MAX 65536   /* addresses tracked at once */
#define IP_WINDOW_MS 1000
#define FD_RESERVE 256       /* fds kept back from --max-connections 0 */

/* ------------------------------------------------------------ token bucket */

void gw_rate_init(gw_rate *r, int64_t burst, uint64_t now_ms)
{
    r->milli = (uint32_t)(burst * 1000);
    r->last_ms = (uint32_t)now_ms;
    r->strike_ms = 0;
    r->strikes = 0;
}

static void refill(gw_rate *r, int64_t rate, int64_t burst, uint32_t now)
{
    uint64_t elapsed = (uint32_t)(now - r->last_ms);
    uint64_t milli = r->milli + elapsed * (uint64_t)rate; /* rate/s = rate thousandths/ms */
    uint64_t cap = (uint64_t)burst * 1000;
    r->milli = (uint32_t)(milli > cap ? cap : milli);
    r->last_ms = now;
}

int gw_rate_take(gw_rate *r, int64_t rate, int64_t burst, uint64_t now_ms)
{
    uint32_t now = (uint32_t)now_ms;
    refill(r, rate, burst, now);
    if (r->milli >= 1000) {
        r->milli -= 1000;
        return GW_RATE_OK;
    }
    if (r->strikes == 0 || (uint32_t)(now - r->strike_ms) >= GW_RATE_ABUSE_WINDOW_MS) {
        r->strike_ms = now;
        r->strikes = 0;
    }
    r->strikes++;
    return (int64_t)r->strikes > rate * GW_RATE_ABUSE_FACTOR ? GW_RATE_ABUSE : GW_RATE_LIMITED;
}

/* ------------------------------------------------------------ per address */

typedef struct ip_entry {
    uint8_t addr[16]; /* IPv4 as an IPv4-mapped IPv6 address */
    uint64_t window_ms;
    uint32_t count;
    UT_hash_handle hh;
} ip_entry;

struct gw_ip_table {
    ip_entry *byaddr;
};

gw_ip_table *gw_ip_table_new(void)
{
    return calloc(1, sizeof(gw_ip_table));
}

void gw_ip_table_free(gw_ip_table *t)
{
    ip_entry *e, *tmp;
    if (!t)
        return;
    HASH_ITER(hh, t->byaddr, e, tmp)
    {
        HASH_DEL(t->byaddr, e);
        free(e);
    }
    free(t);
}

size_t gw_ip_table_size(const gw_ip_table *t)
{
    return t ? HASH_COUNT(t->byaddr) : 0;
}

void gw_ip_table_prune(gw_ip_table *t, uint64_t now_ms)
{
    ip_entry *e, *tmp;
    if (!t)
        return;
    HASH_ITER(hh, t->byaddr, e, tmp)
    {
        if (now_ms - e->window_ms >= IP_WINDOW_MS) {
            HASH_DEL(t->byaddr, e);
            free(e);
        }
    }
}

/* The peer's address in 16 bytes. Returns 0, or -1 (not an IP socket). */
static int peer_key(int fd, uint8_t key[16])
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    memset(key, 0, 16);
    if (ss.ss_family == AF_INET) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &((struct sockaddr_in *)&ss)->sin_addr, 4);
        return 0;
    }
    if (ss.ss_family == AF_INET6) {
        memcpy(key, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
        return 0;
    }
    return -1;
}

/* Counts one connect of key. Returns 1 when it is within the limit. */
static int ip_admit(gw_ip_table *t, const uint8_t key[16], uint64_t now_ms, int64_t limit)
{
    ip_entry *e;
    HASH_FIND(hh, t->byaddr, key, 16, e);
    if (e && now_ms - e->window_ms >= IP_WINDOW_MS) {
        e->window_ms = now_ms;
        e->count = 0;
    }
    if (!e) {
        if (HASH_COUNT(t->byaddr) >= IP_TABLE_MAX || !(e = calloc(1, sizeof(*e))))
            return 1; /* untracked: see the top of the file */
        memcpy(e->addr, key, 16);
        e->window_ms = now_ms;
        HASH_ADD(hh, t->byaddr, addr, 16, e);
        if (!e->hh.tbl) { /* uthash could not grow: nonfatal OOM */
            free(e);
            return 1;
        }
    }
    if ((int64_t)e->count >= limit)
        return 0;
    e->count++;
    return 1;
}

int gw_limits_admit_fd(gw_server *s, int fd)
{
    uint8_t key[16];
    if (!s->ips || peer_key(fd, key) < 0)
        return 1;
    if (ip_admit(s->ips, key, gw_timers_now_ms(s), s->cfg->max_connects_per_ip))
        return 1;
    s->counters.limit_ip_refused++;
    return 0;
}

/* ------------------------------------------------------------ upgrades */

int gw_limits_origin_allowed(const gw_strlist *allowed, const char *origin)
{
    /* No Origin header: not a browser, and a non-browser client could send
     * any Origin it likes, so the check protects nothing there. */
    if (allowed->n == 0 || !origin)
        return 1;
    for (size_t i = 0; i < allowed->n; i++) {
        if (strcmp(allowed->items[i], origin) == 0)
            return 1;
    }
    return 0;
}

int64_t gw_limits_max_connections(const gw_config *cfg)
{
    struct rlimit rl;
    if (cfg->max_connections > 0)
        return cfg->max_connections;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY ||
        rl.rlim_cur > 10000000)
        return 1000000;
    return rl.rlim_cur > 2 * FD_RESERVE ? (int64_t)rl.rlim_cur - FD_RESERVE
                                        : (int64_t)rl.rlim_cur / 2;
}

unsigned int gw_limits_check_upgrade(gw_server *s, struct lws *wsi)
{
    char origin[256];
    int n;
    if ((int64_t)HASH_COUNT(s->conns) >= s->max_connections) {
        s->counters.limit_conns_refused++;
        gw_debug("connection_limit", NULL, "%lld connections: upgrade refused with 503",
                (long long)s->max_connections);
        return HTTP_STATUS_SERVICE_UNAVAILABLE;
    }
    if (s->cfg->allowed_origins.n == 0)
        return 0;
    n = lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN);
    /* An Origin too long for the buffer matches no configured one. */
    if (gw_limits_origin_allowed(&s->cfg->allowed_origins,
                                 n > 0 ? origin : n < 0 ? "" : NULL))
        return 0;
    s->counters.limit_origin_refused++;
    gw_debug("origin_refused", NULL, "origin '%s' is not allowed", n > 0 ? origin : "");
    return HTTP_STATUS_FORBIDDEN;
}
