/*
 * nchan: the subscriber URL and the HTTP publisher of --target nchan; see
 * nchan.h.
 *
 * Each channel is published on one fixed connection (a hash of its name), so
 * that its messages reach Nchan in the order they were sent: nginx answers
 * the requests of one connection in order, but two connections race. The
 * response parser needs only what Nchan's publisher sends: a status line and
 * a Content-Length body (a 201 or 202 with the channel's statistics).
 */
#include "nchan.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <uv.h>

#define HTTP_MAX_HEAD 8192 /* a longer response head is an error */

typedef struct http_conn {
    uv_tcp_t tcp;
    struct nchan_pub *np;
    uint32_t outstanding; /* requests sent, response not yet parsed */
    int open;
    char *rbuf; /* bytes of an incomplete response */
    size_t rlen, rcap;
} http_conn;

struct nchan_pub {
    bench_pub *p;
    http_conn *conns;
    uint32_t n, connected;
    char *req; /* one request being written */
    size_t req_cap;
    char rtmp[64 * 1024]; /* read buffer shared by the connections */
};

void bench_nchan_target(const bench_config *cfg, uint32_t idx, char *out, size_t cap)
{
    char chan[192];
    bench_channel_of(cfg, idx, chan, sizeof(chan));
    snprintf(out, cap, "%s%s", cfg->path, chan);
}

/* A connection that broke takes its outstanding requests with it. */
static void conn_lost(http_conn *c, const char *why)
{
    bench_pub *p = c->np->p;
    p->errors += c->outstanding;
    c->outstanding = 0;
    c->open = 0;
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, NULL);
    if (!p->stopping)
        bench_pub_fail(p, "nchan publisher: %s", why);
}

/* Returns the bytes of one response consumed, 0 when it is incomplete, or
 * -1 when it cannot be parsed. */
static long parse_response(http_conn *c, const char *d, size_t len)
{
    bench_pub *p = c->np->p;
    const char *end = memmem(d, len, "\r\n\r\n", 4), *cl;
    size_t head, body = 0;
    int status;
    if (!end)
        return len > HTTP_MAX_HEAD ? -1 : 0;
    head = (size_t)(end - d) + 4;
    if (head < 12 || memcmp(d, "HTTP/1.", 7) != 0 || sscanf(d + 9, "%3d", &status) != 1)
        return -1;
    for (cl = d; (cl = memmem(cl, head - (size_t)(cl - d), "\r\n", 2)) && cl < end; cl += 2) {
        if (strncasecmp(cl + 2, "content-length:", 15) == 0) {
            body = strtoul(cl + 17, NULL, 10);
            break;
        }
    }
    if (len < head + body)
        return 0;
    if (status / 100 == 2) {
        p->acked++;
        /* 202: stored, but no subscriber was there to get it. */
        if (status == 202)
            p->zero_receivers++;
    } else {
        p->errors++;
        snprintf(p->error, sizeof(p->error), "nchan publish: HTTP %d", status);
    }
    c->outstanding--;
    return (long)(head + body);
}

static size_t consume(http_conn *c, const char *d, size_t len, int *bad)
{
    size_t off = 0;
    long n;
    while (c->outstanding && (n = parse_response(c, d + off, len - off)) > 0)
        off += (size_t)n;
    *bad = c->outstanding && parse_response(c, d + off, len - off) < 0;
    return off;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    http_conn *c = h->data;
    *buf = uv_buf_init(c->np->rtmp, sizeof(c->np->rtmp));
}

static int keep(http_conn *c, const char *d, size_t n)
{
    if (c->rlen + n > c->rcap) {
        size_t cap = (c->rlen + n) * 2;
        char *b = realloc(c->rbuf, cap);
        if (!b)
            return -1;
        c->rbuf = b;
        c->rcap = cap;
    }
    memcpy(c->rbuf + c->rlen, d, n);
    c->rlen += n;
    return 0;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    http_conn *c = s->data;
    bench_pub *p = c->np->p;
    uint64_t before = p->acked + p->errors;
    size_t used;
    int bad = 0;
    if (nread == 0)
        return;
    if (nread < 0) {
        conn_lost(c, nread == UV_EOF ? "connection closed by nginx" : uv_strerror((int)nread));
        return;
    }
    if (c->rlen) {
        if (keep(c, buf->base, (size_t)nread) < 0) {
            conn_lost(c, "out of memory");
            return;
        }
        used = consume(c, c->rbuf, c->rlen, &bad);
        memmove(c->rbuf, c->rbuf + used, c->rlen - used);
        c->rlen -= used;
    } else {
        used = consume(c, buf->base, (size_t)nread, &bad);
        if (used < (size_t)nread && keep(c, buf->base + used, (size_t)nread - used) < 0)
            bad = 1;
    }
    if (bad)
        conn_lost(c, "unparsable response");
    else if (p->acked + p->errors != before)
        p->cb(p->arg);
}

static void on_connect(uv_connect_t *req, int status)
{
    http_conn *c = req->handle->data;
    struct nchan_pub *np = c->np;
    free(req);
    if (status < 0) {
        conn_lost(c, uv_strerror(status));
        return;
    }
    c->open = 1;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
        conn_lost(c, "cannot read");
        return;
    }
    if (++np->connected == np->n && !np->p->failed) {
        np->p->ready = 1;
        np->p->cb(np->p->arg);
    }
}

int bench_nchan_pub_start(bench_pub *p)
{
    struct nchan_pub *np = calloc(1, sizeof(*np));
    if (!np || !(np->conns = calloc(p->cfg->http_conns, sizeof(http_conn)))) {
        free(np);
        snprintf(p->error, sizeof(p->error), "out of memory");
        return -1;
    }
    np->p = p;
    np->n = p->cfg->http_conns;
    p->http = np;
    for (uint32_t i = 0; i < np->n; i++) {
        http_conn *c = &np->conns[i];
        uv_connect_t *req = malloc(sizeof(*req));
        int rc;
        c->np = np;
        uv_tcp_init(p->loop, &c->tcp);
        c->tcp.data = c;
        uv_tcp_nodelay(&c->tcp, 1);
        if (!req || (rc = uv_tcp_connect(req, &c->tcp, (const struct sockaddr *)&p->cfg->dst,
                                         on_connect)) < 0) {
            free(req);
            snprintf(p->error, sizeof(p->error), "nchan publisher connect: %s",
                     req ? uv_strerror(rc) : "out of memory");
            /* The handles already made close with the loop's run down. */
            np->n = i + 1;
            for (uint32_t j = 0; j < np->n; j++)
                uv_close((uv_handle_t *)&np->conns[j].tcp, NULL);
            return -1;
        }
    }
    return 0;
}

static uint32_t hash(const char *s)
{
    uint32_t h = 2166136261u;
    while (*s)
        h = (h ^ (unsigned char)*s++) * 16777619u;
    return h;
}

int bench_nchan_pub_send(bench_pub *p, const char *channel, const char *data, size_t len)
{
    struct nchan_pub *np = p->http;
    http_conn *c = &np->conns[hash(channel) % np->n];
    char head[512];
    int n;
    if (!c->open || c->outstanding >= p->cfg->http_depth)
        return -1;
    if (np->req_cap < len + sizeof(head)) {
        char *b = realloc(np->req, len + sizeof(head));
        if (!b)
            return -1;
        np->req = b;
        np->req_cap = len + sizeof(head);
    }
    n = snprintf(head, sizeof(head),
                 "POST %s%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                 "Content-Length: %zu\r\n\r\n",
                 p->cfg->pub_path, channel, p->cfg->host_header, len);
    memcpy(np->req, head, (size_t)n);
    memcpy(np->req + n, data, len);
    if (bench_stream_write((uv_stream_t *)&c->tcp, np->req, (size_t)n + len) < 0) {
        conn_lost(c, "write failed");
        return -1;
    }
    c->outstanding++;
    p->sent++;
    return 0;
}

void bench_nchan_pub_stop(bench_pub *p)
{
    struct nchan_pub *np = p->http;
    if (!np)
        return;
    for (uint32_t i = 0; i < np->n; i++)
        conn_lost(&np->conns[i], "stopped");
}

void bench_nchan_pub_free(bench_pub *p)
{
    struct nchan_pub *np = p->http;
    if (!np)
        return;
    for (uint32_t i = 0; i < np->n; i++)
        free(np->conns[i].rbuf);
    free(np->conns);
    free(np->req);
    free(np);
    p->http = NULL;
}
