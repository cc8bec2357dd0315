/*
 * publisher: the Redis and the WebSocket publish paths; see publisher.h.
 *
 * Both bound what they hold in flight, so that a publisher faster than the
 * system under test waits instead of growing a buffer without limit; the
 * coordinator sees the refusal and tries again on its next tick.
 */
#include "publisher.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "nchan.h"
#include "redis_uv.h"
#include "token.h"

#define REDIS_MAX_INFLIGHT 20000      /* pipelined PUBLISH commands */
/* Publish commands without a reply. The gateway queues replies per connection
 * and drops a client whose queue passes its bound (4008, "too slow"), so a
 * well-behaved client keeps its pipeline well below that. */
#define WS_MAX_INFLIGHT 1000
#define WS_MAX_QUEUED (4u << 20)      /* bytes the kernel has not taken yet */
#define PUB_SUB "bench-publisher"

void bench_pub_fail(bench_pub *p, const char *fmt, ...)
{
    va_list ap;
    if (p->failed)
        return;
    va_start(ap, fmt);
    vsnprintf(p->error, sizeof(p->error), fmt, ap);
    va_end(ap);
    p->failed = 1;
    p->ready = 0;
    p->cb(p->arg);
}

static int reserve(bench_pub *p, size_t n)
{
    char *b;
    if (n <= p->buf_cap)
        return 0;
    if (!(b = realloc(p->buf, n)))
        return -1;
    p->buf = b;
    p->buf_cap = n;
    return 0;
}

uint64_t bench_pub_inflight(const bench_pub *p)
{
    return p->sent - p->acked - p->errors;
}

/* ---- Redis ------------------------------------------------------------- */

int bench_pub_check_redis(const bench_config *cfg, char *err, size_t errlen)
{
    char ip[INET_ADDRSTRLEN];
    struct timeval tv = {2, 0};
    redisContext *c;
    redisReply *r = NULL;
    int ok;
    inet_ntop(AF_INET, &cfg->redis.sin_addr, ip, sizeof(ip));
    c = redisConnectWithTimeout(ip, ntohs(cfg->redis.sin_port), tv);
    if (!c || c->err) {
        snprintf(err, errlen, "redis %s:%d: %s", ip, ntohs(cfg->redis.sin_port),
                 c ? c->errstr : "out of memory");
        redisFree(c);
        return -1;
    }
    redisSetTimeout(c, tv);
    r = redisCommand(c, "PING");
    ok = r && r->type == REDIS_REPLY_STATUS;
    if (!ok)
        snprintf(err, errlen, "redis %s:%d: no answer to PING%s%s", ip, ntohs(cfg->redis.sin_port),
                 c->err ? ": " : "", c->err ? c->errstr : "");
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return ok ? 0 : -1;
}

static void redis_connected(const redisAsyncContext *ac, int status)
{
    bench_pub *p = ac->data;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this returns. */
        p->ac = NULL;
        bench_pub_fail(p, "redis connect: %s", ac->errstr);
    }
}

static void redis_disconnected(const redisAsyncContext *ac, int status)
{
    bench_pub *p = ac->data;
    p->ac = NULL;
    if (!p->stopping)
        bench_pub_fail(p, "redis connection lost: %s", ac->errstr[0] ? ac->errstr : "closed");
}

static void redis_reply(redisAsyncContext *ac, void *r, void *priv)
{
    bench_pub *p = priv;
    redisReply *reply = r;
    if (reply && reply->type == REDIS_REPLY_INTEGER) {
        p->acked++;
        if (reply->integer == 0)
            p->zero_receivers++;
    } else {
        p->errors++;
        snprintf(p->error, sizeof(p->error), "redis PUBLISH: %s",
                 reply && reply->str ? reply->str : "no reply (disconnected)");
    }
    p->cb(p->arg);
}

static int redis_start(bench_pub *p)
{
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &p->cfg->redis.sin_addr, ip, sizeof(ip));
    p->ac = redisAsyncConnect(ip, ntohs(p->cfg->redis.sin_port));
    if (!p->ac || p->ac->err) {
        snprintf(p->error, sizeof(p->error), "redis connect: %s",
                 p->ac ? p->ac->errstr : "out of memory");
        if (p->ac)
            redisAsyncFree(p->ac);
        p->ac = NULL;
        return -1;
    }
    p->ac->data = p;
    if (bench_redis_attach(p->ac, p->loop) != REDIS_OK) {
        snprintf(p->error, sizeof(p->error), "redis: cannot attach to the loop");
        redisAsyncFree(p->ac);
        p->ac = NULL;
        return -1;
    }
    redisAsyncSetConnectCallback(p->ac, redis_connected);
    redisAsyncSetDisconnectCallback(p->ac, redis_disconnected);
    /* hiredis queues commands until the connection is up. */
    p->ready = 1;
    return 0;
}

static int redis_send(bench_pub *p, const char *channel, const char *data, size_t len)
{
    char chan[256];
    int cl = snprintf(chan, sizeof(chan), "%s%s", p->cfg->redis_prefix, channel);
    int n;
    if (!p->ac || bench_pub_inflight(p) >= REDIS_MAX_INFLIGHT || reserve(p, len + 16) < 0)
        return -1;
    n = snprintf(p->buf, p->buf_cap, "{\"data\":%.*s}", (int)len, data);
    if (redisAsyncCommand(p->ac, redis_reply, p, "PUBLISH %b %b", chan, (size_t)cl, p->buf,
                          (size_t)n) != REDIS_OK)
        return -1;
    p->sent++;
    return 0;
}

/* ---- WebSocket --------------------------------------------------------- */

static void ws_pub_open(ws_client *ws)
{
    bench_pub *p = ws->data;
    const bench_config *cfg = p->cfg;
    char claims[512], *token, *msg;
    long long now = (long long)time(NULL);
    int n;
    n = snprintf(claims, sizeof(claims),
                 "{\"sub\":\"" PUB_SUB "\",\"iat\":%lld,\"exp\":%lld,\"publish\":[\"%s%s\"]", now,
                 now + 86400, cfg->pattern == BENCH_BROADCAST ? cfg->channel : cfg->job_prefix,
                 cfg->pattern == BENCH_BROADCAST ? "" : "*");
    if (cfg->issuer)
        n += snprintf(claims + n, sizeof(claims) - (size_t)n, ",\"iss\":\"%s\"", cfg->issuer);
    if (cfg->audience)
        n += snprintf(claims + n, sizeof(claims) - (size_t)n, ",\"aud\":\"%s\"", cfg->audience);
    snprintf(claims + n, sizeof(claims) - (size_t)n, "}");
    token = bench_token_hs256(cfg->secret, cfg->secret_len, cfg->kid, claims);
    msg = token ? malloc(strlen(token) + 32) : NULL;
    if (!msg)
        abort();
    n = sprintf(msg, "{\"type\":\"auth\",\"token\":\"%s\"}", token);
    if (ws_client_send_text(ws, msg, (size_t)n) < 0)
        bench_pub_fail(p, "publisher: cannot send auth");
    free(msg);
    free(token);
}

static void ws_pub_text(ws_client *ws, const char *msg, size_t len)
{
    bench_pub *p = ws->data;
    json_t *j = json_loadb(msg, len, 0, NULL);
    const char *type = json_string_value(json_object_get(j, "type"));
    const char *code = json_string_value(json_object_get(j, "code"));
    if (!type) {
        /* not a reply of ours */
    } else if (strcmp(type, "auth_ok") == 0 && !p->ready) {
        p->ready = 1;
        p->cb(p->arg);
    } else if (strcmp(type, "published") == 0) {
        p->acked++;
        p->cb(p->arg);
    } else if (strcmp(type, "error") == 0 && !p->ready) {
        bench_pub_fail(p, "publisher auth: %s", code ? code : "error");
    } else if (strcmp(type, "error") == 0) {
        p->errors++;
        snprintf(p->error, sizeof(p->error), "publish refused: %s", code ? code : "error");
        p->cb(p->arg);
    }
    json_decref(j);
}

static void ws_pub_closed(ws_client *ws, int stage, int code, const char *why)
{
    bench_pub *p = ws->data;
    /* Whatever was in flight has no reply coming: count it as failed. */
    p->errors += bench_pub_inflight(p);
    bench_pub_fail(p, "publisher connection closed: %s (close %d)", why, code);
}

static const ws_client_cb ws_pub_cb = {ws_pub_open, ws_pub_text, ws_pub_closed, NULL};

static int ws_start(bench_pub *p)
{
    struct sockaddr_in src = {0};
    int rc;
    if (!(p->sh = malloc(sizeof(*p->sh)))) {
        snprintf(p->error, sizeof(p->error), "out of memory");
        return -1;
    }
    ws_shared_init(p->sh, p->cfg->host_header, p->cfg->path, p->cfg->run_id ^ 0x5bd1e995u);
    src.sin_family = AF_INET;
    src.sin_addr.s_addr = htonl(p->cfg->src_first);
    p->ws.data = p;
    if ((rc = ws_client_connect(&p->ws, p->loop, p->sh, &src, &p->cfg->dst, &ws_pub_cb)) < 0) {
        snprintf(p->error, sizeof(p->error), "publisher connect: %s", uv_strerror(rc));
        return -1;
    }
    return 0;
}

static int ws_send(bench_pub *p, const char *channel, const char *data, size_t len)
{
    int n;
    if (bench_pub_inflight(p) >= WS_MAX_INFLIGHT || ws_client_queued(&p->ws) > WS_MAX_QUEUED ||
        reserve(p, len + 256) < 0)
        return -1;
    n = snprintf(p->buf, p->buf_cap, "{\"type\":\"publish\",\"id\":%llu,\"channel\":\"%s\",\"data\":%.*s}",
                 (unsigned long long)(p->sent + 1), channel, (int)len, data);
    if (ws_client_send_text(&p->ws, p->buf, (size_t)n) < 0)
        return -1;
    p->sent++;
    return 0;
}

/* ---- both -------------------------------------------------------------- */

int bench_pub_start(bench_pub *p, uv_loop_t *loop, const bench_config *cfg, bench_pub_cb cb,
                    void *arg)
{
    memset(p, 0, sizeof(*p));
    p->cfg = cfg;
    p->loop = loop;
    p->cb = cb;
    p->arg = arg;
    if (cfg->via == BENCH_VIA_HTTP)
        return bench_nchan_pub_start(p);
    return cfg->via == BENCH_VIA_REDIS ? redis_start(p) : ws_start(p);
}

int bench_pub_send(bench_pub *p, const char *channel, const char *data, size_t len)
{
    if (!p->ready || p->failed || p->stopping)
        return -1;
    if (p->cfg->via == BENCH_VIA_HTTP)
        return bench_nchan_pub_send(p, channel, data, len);
    return p->cfg->via == BENCH_VIA_REDIS ? redis_send(p, channel, data, len)
                                          : ws_send(p, channel, data, len);
}

void bench_pub_stop(bench_pub *p)
{
    if (p->stopping)
        return;
    p->stopping = 1;
    p->ready = 0;
    if (p->cfg->via == BENCH_VIA_REDIS && p->ac)
        redisAsyncDisconnect(p->ac);
    else if (p->cfg->via == BENCH_VIA_WS)
        ws_client_close(&p->ws, 1000);
    else if (p->cfg->via == BENCH_VIA_HTTP)
        bench_nchan_pub_stop(p);
}

void bench_pub_free(bench_pub *p)
{
    bench_nchan_pub_free(p);
    free(p->sh);
    free(p->buf);
    p->sh = NULL;
    p->buf = NULL;
}
