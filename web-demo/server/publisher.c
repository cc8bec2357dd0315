/*
 * publisher: POST /api/publish to the gateways, one message at a time, with
 * failover (see publisher.h).
 *
 * A request is a heap object with its own socket: created for one exchange
 * (connect, write the whole request, read until the answer is complete or
 * the gateway closes), closed after it, freed in its close callback. The
 * publisher keeps one timer, used for the request's deadline while one is
 * in flight and for the retry delay when every gateway failed. Messages
 * are the complete JSON bodies, built once when queued.
 */
#include "publisher.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "log.h"

#define RESP_MAX 4096
#define RETRY_MIN_MS 250
#define RETRY_MAX_MS 2000

typedef struct request request;

struct demo_publisher {
    uv_loop_t *loop;
    const demo_config *cfg;
    struct sockaddr_storage addrs[DEMO_MAX_GATEWAYS];
    size_t n_addrs;
    char *queue[DEMO_PUBLISH_QUEUE]; /* ring of request bodies, owned */
    size_t head, count;
    uv_timer_t timer;
    request *inflight;
    size_t cur;        /* the gateway tried first: the last one that worked */
    size_t failures;   /* gateways that failed for the message at the head */
    uint64_t retry_ms; /* next delay once every gateway failed */
    int waiting;       /* the timer is a retry delay */
    int handles;       /* timer + in-flight socket; freed at 0 when closing */
    int closing;
};

/* One HTTP exchange with one gateway. */
struct request {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t wr;
    demo_publisher *pub;
    char *out; /* the serialized request, owned */
    char resp[RESP_MAX + 1];
    size_t resp_len;
    int done;
};

static void kick(demo_publisher *p);

static void maybe_free(demo_publisher *p)
{
    if (p->closing && p->handles == 0)
        free(p);
}

static void on_request_closed(uv_handle_t *h)
{
    request *r = h->data;
    demo_publisher *p = r->pub;
    free(r->out);
    free(r);
    p->handles--;
    maybe_free(p);
}

static void pop_head(demo_publisher *p)
{
    free(p->queue[p->head]);
    p->queue[p->head] = NULL;
    p->head = (p->head + 1) % DEMO_PUBLISH_QUEUE;
    p->count--;
}

static void on_retry(uv_timer_t *t)
{
    demo_publisher *p = t->data;
    p->waiting = 0;
    kick(p);
}

/* The head message failed on the current gateway: try the next one, or wait
 * when every gateway failed for it. */
static void fail_over(demo_publisher *p, const char *why)
{
    const demo_gateway *g = &p->cfg->gateways[p->cur];
    demo_warn("publish_failed", "gateway %s:%d: %s; trying the next one", g->host, g->port, why);
    p->cur = (p->cur + 1) % p->n_addrs;
    if (++p->failures < p->n_addrs) {
        kick(p);
        return;
    }
    p->failures = 0;
    p->waiting = 1;
    uv_timer_start(&p->timer, on_retry, p->retry_ms, 0);
    p->retry_ms = p->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : p->retry_ms * 2;
}

/* Ends the exchange with HTTP status `status` (0: no answer, `why` says why). */
static void finish(request *r, int status, const char *why)
{
    demo_publisher *p = r->pub;
    char reason[64];
    if (r->done)
        return;
    r->done = 1;
    uv_close((uv_handle_t *)&r->tcp, on_request_closed);
    if (p->closing)
        return;
    uv_timer_stop(&p->timer);
    p->inflight = NULL;
    if (status >= 200 && status < 300) {
        p->failures = 0;
        p->retry_ms = RETRY_MIN_MS;
        pop_head(p);
        kick(p);
    } else if (status >= 400 && status < 500) {
        /* The message itself or the key is wrong: retrying cannot help. */
        demo_error("publish_refused", "gateway answered %d: %.200s", status, r->resp);
        pop_head(p);
        kick(p);
    } else {
        if (status)
            snprintf(reason, sizeof(reason), "HTTP %d", status);
        fail_over(p, status ? reason : why);
    }
}

/* The status of a complete answer, 0 while it is incomplete, -1 if garbled. */
static int parse_response(request *r, int eof)
{
    const char *end, *cl;
    int status;
    r->resp[r->resp_len] = '\0';
    if (sscanf(r->resp, "HTTP/1.%*d %d", &status) != 1)
        return eof || r->resp_len >= 16 ? -1 : 0;
    end = strstr(r->resp, "\r\n\r\n");
    if (!end)
        return eof ? -1 : 0;
    cl = strcasestr(r->resp, "\r\nContent-Length:");
    if (!eof && cl && cl < end) {
        size_t want = strtoul(cl + 17, NULL, 10);
        if (r->resp_len < (size_t)(end + 4 - r->resp) + want)
            return 0;
    } else if (!eof) {
        return 0;
    }
    return status;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    request *r = h->data;
    *buf = uv_buf_init(r->resp + r->resp_len, (unsigned)(RESP_MAX - r->resp_len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    request *r = s->data;
    int st;
    if (r->done)
        return;
    if (nread > 0)
        r->resp_len += (size_t)nread;
    if (nread < 0 && nread != UV_EOF) {
        finish(r, 0, uv_strerror((int)nread));
        return;
    }
    st = parse_response(r, nread == UV_EOF || r->resp_len == RESP_MAX);
    if (st < 0)
        finish(r, 0, "garbled answer");
    else if (st > 0)
        finish(r, st, NULL);
}

static void on_written(uv_write_t *w, int status)
{
    request *r = w->data;
    if (status < 0)
        finish(r, 0, uv_strerror(status));
}

static void on_connect(uv_connect_t *c, int status)
{
    request *r = c->data;
    uv_buf_t b;
    if (r->done)
        return;
    if (status < 0) {
        finish(r, 0, uv_strerror(status));
        return;
    }
    b = uv_buf_init(r->out, (unsigned)strlen(r->out));
    r->wr.data = r;
    if (uv_write(&r->wr, (uv_stream_t *)&r->tcp, &b, 1, on_written) < 0 ||
        uv_read_start((uv_stream_t *)&r->tcp, on_alloc, on_read) < 0)
        finish(r, 0, "write failed");
}

static void on_timeout(uv_timer_t *t)
{
    demo_publisher *p = t->data;
    if (p->inflight)
        finish(p->inflight, 0, "timed out");
}

static char *serialize(const demo_publisher *p, const demo_gateway *g, const char *body)
{
    size_t blen = strlen(body), cap = 512 + strlen(p->cfg->api_key) + blen;
    char *out = malloc(cap);
    if (out)
        snprintf(out, cap,
                 "POST /api/publish HTTP/1.1\r\nHost: %s:%d\r\n"
                 "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                 g->host, g->port, p->cfg->api_key, blen, body);
    return out;
}

/* Starts the next exchange when there is a message and nothing in flight. */
static void kick(demo_publisher *p)
{
    const demo_gateway *g;
    request *r;
    if (p->closing || p->inflight || p->waiting || p->count == 0)
        return;
    g = &p->cfg->gateways[p->cur];
    r = calloc(1, sizeof(*r));
    if (!r || !(r->out = serialize(p, g, p->queue[p->head]))) {
        free(r);
        p->waiting = 1;
        uv_timer_start(&p->timer, on_retry, RETRY_MAX_MS, 0);
        return;
    }
    r->pub = p;
    uv_tcp_init(p->loop, &r->tcp);
    r->tcp.data = r;
    r->connect.data = r;
    p->handles++;
    p->inflight = r;
    uv_timer_start(&p->timer, on_timeout, DEMO_PUBLISH_TIMEOUT_MS, 0);
    if (uv_tcp_connect(&r->connect, &r->tcp, (const struct sockaddr *)&p->addrs[p->cur],
                       on_connect) < 0)
        finish(r, 0, "connect failed");
}

int demo_publisher_publish(demo_publisher *p, const char *channel, const char *data_json)
{
    json_error_t jerr;
    json_t *data = json_loads(data_json, JSON_DECODE_ANY, &jerr), *body;
    char *text;
    if (!data || p->count == DEMO_PUBLISH_QUEUE) {
        json_decref(data);
        return -1;
    }
    body = json_pack("{s:s,s:o}", "channel", channel, "data", data);
    text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text)
        return -1;
    p->queue[(p->head + p->count) % DEMO_PUBLISH_QUEUE] = text;
    p->count++;
    kick(p);
    return 0;
}

static int resolve(const demo_gateway *g, struct sockaddr_storage *out, char *err, size_t errlen)
{
    struct addrinfo hints = {0}, *res = NULL;
    char port[8];
    int rc;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof(port), "%d", g->port);
    rc = getaddrinfo(g->host, port, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(err, errlen, "gateway %s:%d: %s", g->host, g->port, gai_strerror(rc));
        return -1;
    }
    memcpy(out, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

demo_publisher *demo_publisher_new(uv_loop_t *loop, const demo_config *cfg, char *err,
                                   size_t errlen)
{
    demo_publisher *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->loop = loop;
    p->cfg = cfg;
    p->retry_ms = RETRY_MIN_MS;
    for (size_t i = 0; i < cfg->n_gateways; i++)
        if (resolve(&cfg->gateways[i], &p->addrs[i], err, errlen) < 0)
            goto err;
    p->n_addrs = cfg->n_gateways;
    if (p->n_addrs == 0) {
        snprintf(err, errlen, "no gateway to publish to");
        goto err;
    }
    uv_timer_init(loop, &p->timer);
    p->timer.data = p;
    p->handles = 1;
    return p;
err:
    free(p);
    return NULL;
}

static void on_timer_closed(uv_handle_t *h)
{
    demo_publisher *p = h->data;
    p->handles--;
    maybe_free(p);
}

void demo_publisher_close(demo_publisher *p)
{
    if (!p || p->closing)
        return;
    p->closing = 1;
    if (p->count)
        demo_warn("publish_dropped", "%zu queued messages dropped at exit", p->count);
    while (p->count)
        pop_head(p);
    if (p->inflight)
        finish(p->inflight, 0, "closing");
    uv_close((uv_handle_t *)&p->timer, on_timer_closed);
}
