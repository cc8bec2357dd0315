/*
 * http: the small HTTP/1.1 server of wsgw-demo (see http.h).
 *
 * A connection reads into one fixed buffer until the headers and the
 * Content-Length body are complete, hands the request to the handler, writes
 * the reply in one uv_write and closes. Each connection owns two handles (the
 * socket and its idle timer) and is freed when both close callbacks have run,
 * never inside a read or write callback. The server frees itself when its
 * listener and its last connection are closed, so demo_http_stop can be
 * called from any callback.
 */
#include "http.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

typedef struct conn conn;

struct demo_http_server {
    uv_tcp_t listener;
    uv_loop_t *loop;
    demo_http_handler_cb handler;
    void *ud;
    conn *conns; /* open connections, for stop */
    size_t n_conns;
    int listener_open;
    int stopping;
};

/* One client connection, from accept to the second close callback. */
struct conn {
    uv_tcp_t tcp;
    uv_timer_t idle;
    uv_write_t wr;
    demo_http_server *srv;
    conn *prev, *next;
    char buf[DEMO_HTTP_MAX_HEADER + DEMO_HTTP_MAX_BODY + 1];
    size_t len;
    char *out;   /* the reply being written, owned */
    int handles; /* open handles; freed at 0 */
    int closing;
    int answered; /* a reply is queued: further input is ignored */
};

static const char *status_text(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 411:
        return "Length Required";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 503:
        return "Service Unavailable";
    default:
        return "Internal Server Error";
    }
}

int demo_http_reply_set(demo_http_reply *r, int status, const char *content_type, const char *data,
                        size_t len)
{
    free(r->body);
    r->body = malloc(len + 1);
    if (!r->body) {
        r->status = 500;
        r->body_len = 0;
        return -1;
    }
    memcpy(r->body, data, len);
    r->body[len] = '\0';
    r->body_len = len;
    r->status = status;
    r->content_type = content_type;
    return 0;
}

void demo_http_reply_error(demo_http_reply *r, int status, const char *reason)
{
    char body[256];
    /* Reasons are fixed strings of this program, never user input: no escaping needed. */
    int n = snprintf(body, sizeof(body), "{\"error\":\"%s\"}", reason);
    demo_http_reply_set(r, status, "application/json", body, (size_t)n);
}

int demo_http_reply_header(demo_http_reply *r, const char *name, const char *value)
{
    size_t used = strlen(r->headers);
    int n = snprintf(r->headers + used, sizeof(r->headers) - used, "%s: %s\r\n", name, value);
    if (n < 0 || (size_t)n >= sizeof(r->headers) - used) {
        r->headers[used] = '\0';
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ lifetime */

static void server_maybe_free(demo_http_server *s)
{
    if (s->stopping && !s->listener_open && s->n_conns == 0)
        free(s);
}

static void conn_on_handle_closed(uv_handle_t *h)
{
    conn *c = h->data;
    demo_http_server *s = c->srv;
    if (--c->handles > 0)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->n_conns--;
    free(c->out);
    free(c);
    server_maybe_free(s);
}

static void conn_close(conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    uv_close((uv_handle_t *)&c->tcp, conn_on_handle_closed);
    uv_close((uv_handle_t *)&c->idle, conn_on_handle_closed);
}

/* ------------------------------------------------------------ replies */

static void on_written(uv_write_t *wr, int status)
{
    conn_close(wr->data);
}

/* Serializes and writes the reply, then closes the connection; takes the
 * reply's body. */
static void conn_send(conn *c, demo_http_reply *r)
{
    const char *type = r->content_type ? r->content_type : "text/plain; charset=utf-8";
    size_t cap = 512 + strlen(r->headers) + r->body_len;
    int n;

    c->answered = 1;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->out = malloc(cap);
    if (!c->out) {
        free(r->body);
        conn_close(c);
        return;
    }
    n = snprintf(c->out, cap,
                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                 "Connection: close\r\nX-Content-Type-Options: nosniff\r\n"
                 "Referrer-Policy: no-referrer\r\n%s\r\n",
                 r->status, status_text(r->status), type, r->body_len, r->headers);
    if (r->body_len)
        memcpy(c->out + n, r->body, r->body_len);
    free(r->body);
    r->body = NULL;

    uv_buf_t b = uv_buf_init(c->out, (unsigned)((size_t)n + r->body_len));
    c->wr.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, on_written) < 0)
        conn_close(c);
}

static void conn_send_error(conn *c, int status, const char *reason)
{
    demo_http_reply r = {0};
    demo_http_reply_error(&r, status, reason);
    conn_send(c, &r);
}

/* ------------------------------------------------------------ parsing */

/* Copies a header value (leading and trailing blanks removed) into dst when
 * the line's name is `name`. Returns 1 when it was that header. */
static int take_header(const char *line, size_t len, const char *name, char *dst, size_t dstlen)
{
    size_t nl = strlen(name), vl;
    const char *v;
    if (len <= nl || line[nl] != ':' || strncasecmp(line, name, nl) != 0)
        return 0;
    v = line + nl + 1;
    vl = len - nl - 1;
    while (vl && (*v == ' ' || *v == '\t'))
        v++, vl--;
    while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
        vl--;
    if (vl >= dstlen)
        vl = dstlen - 1; /* over-long values fail their later checks */
    memcpy(dst, v, vl);
    dst[vl] = '\0';
    return 1;
}

/* "GET /path?q HTTP/1.1" -> method and path. Returns 0, or -1 when malformed. */
static int parse_request_line(const char *line, size_t len, demo_http_request *req)
{
    const char *sp1 = memchr(line, ' ', len), *sp2, *q;
    size_t tl;
    if (!sp1 || (size_t)(sp1 - line) >= sizeof(req->method))
        return -1;
    sp2 = memchr(sp1 + 1, ' ', len - (size_t)(sp1 + 1 - line));
    if (!sp2 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0)
        return -1;
    memcpy(req->method, line, (size_t)(sp1 - line));
    req->method[sp1 - line] = '\0';
    q = memchr(sp1 + 1, '?', (size_t)(sp2 - sp1 - 1));
    tl = (size_t)((q ? q : sp2) - sp1 - 1);
    if (tl == 0 || tl >= sizeof(req->path) || sp1[1] != '/')
        return -1;
    memcpy(req->path, sp1 + 1, tl);
    req->path[tl] = '\0';
    return 0;
}

/* Parses the head (which ends at `end`, the blank line). Returns 0, or an
 * HTTP status for a request to refuse; *clen receives the body length. */
static int parse_head(const char *buf, const char *end, demo_http_request *req, size_t *clen)
{
    char cl[32] = "", te[64] = "";
    const char *line = buf, *eol = strstr(buf, "\r\n");
    if (parse_request_line(line, (size_t)(eol - line), req) < 0)
        return 400;
    for (line = eol + 2; line < end; line = eol + 2) {
        eol = strstr(line, "\r\n");
        size_t len = (size_t)(eol - line);
        if (take_header(line, len, "Host", req->host, sizeof(req->host)) ||
            take_header(line, len, "Authorization", req->authorization,
                        sizeof(req->authorization)) ||
            take_header(line, len, "Content-Type", req->content_type, sizeof(req->content_type)))
            continue;
        if (!take_header(line, len, "Content-Length", cl, sizeof(cl)))
            take_header(line, len, "Transfer-Encoding", te, sizeof(te));
    }
    if (te[0])
        return 411;
    *clen = 0;
    if (cl[0]) {
        char *e;
        unsigned long long v = strtoull(cl, &e, 10);
        if (*e || !isdigit((unsigned char)cl[0]))
            return 400;
        if (v > DEMO_HTTP_MAX_BODY)
            return 413;
        *clen = (size_t)v;
    }
    return 0;
}

/* Runs the handler when the request is complete; waits for more otherwise. */
static void conn_try_request(conn *c)
{
    demo_http_request req;
    demo_http_reply reply;
    size_t clen, head_len;
    char *end;
    int st;

    c->buf[c->len] = '\0';
    end = strstr(c->buf, "\r\n\r\n");
    if ((!end && c->len >= DEMO_HTTP_MAX_HEADER) ||
        (end && (size_t)(end + 4 - c->buf) > DEMO_HTTP_MAX_HEADER)) {
        conn_send_error(c, 431, "request headers too large");
        return;
    }
    if (!end)
        return;
    memset(&req, 0, sizeof(req));
    st = parse_head(c->buf, end + 2, &req, &clen);
    if (st) {
        conn_send_error(c, st, st == 411 ? "Content-Length required" : "bad request");
        return;
    }
    head_len = (size_t)(end + 4 - c->buf);
    if (c->len < head_len + clen)
        return;
    req.body = c->buf + head_len;
    req.body_len = clen;
    c->buf[head_len + clen] = '\0';

    memset(&reply, 0, sizeof(reply));
    reply.status = 500;
    c->srv->handler(c->srv->ud, &req, &reply);
    conn_send(c, &reply);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    conn *c = h->data;
    size_t room = sizeof(c->buf) - 1 - c->len;
    *buf = uv_buf_init(c->buf + c->len, (unsigned)room);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    conn *c = st->data;
    if (c->answered || c->closing)
        return;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    c->len += (size_t)nread;
    conn_try_request(c);
    /* A full buffer without a complete request: more than the limits allow. */
    if (!c->answered && c->len >= sizeof(c->buf) - 1)
        conn_send_error(c, 413, "request too large");
}

static void on_idle(uv_timer_t *t)
{
    conn_close(t->data);
}

/* ------------------------------------------------------------ listener */

static void on_connection(uv_stream_t *ls, int status)
{
    demo_http_server *s = ls->data;
    conn *c;
    if (status < 0 || s->stopping)
        return;
    c = calloc(1, sizeof(*c));
    if (!c) {
        demo_error("http_oom", "no memory for a connection");
        return;
    }
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->idle);
    c->tcp.data = c->idle.data = c;
    c->handles = 2;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    /* Accept even over the cap so the client gets a close, not a hang. */
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) < 0 || s->n_conns > DEMO_HTTP_MAX_CONNS) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->idle, on_idle, DEMO_HTTP_IDLE_MS, 0);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void on_listener_closed(uv_handle_t *h)
{
    demo_http_server *s = h->data;
    s->listener_open = 0;
    server_maybe_free(s);
}

static int bind_listener(demo_http_server *s, const char *host, int port)
{
    struct sockaddr_storage addr;
    int rc = uv_ip4_addr(host, port, (struct sockaddr_in *)&addr);
    if (rc < 0)
        rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr);
    if (rc < 0)
        return rc;
    rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0);
    return rc < 0 ? rc : uv_listen((uv_stream_t *)&s->listener, 128, on_connection);
}

demo_http_server *demo_http_start(uv_loop_t *loop, const char *host, int port,
                                  demo_http_handler_cb handler, void *ud, char *err, size_t errlen)
{
    demo_http_server *s = calloc(1, sizeof(*s));
    int rc;
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->loop = loop;
    s->handler = handler;
    s->ud = ud;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    s->listener_open = 1;
    rc = bind_listener(s, host, port);
    if (rc < 0) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s (a numeric address is needed)", host,
                 port, uv_strerror(rc));
        demo_http_stop(s);
        return NULL;
    }
    return s;
}

void demo_http_stop(demo_http_server *s)
{
    if (s->stopping)
        return;
    s->stopping = 1;
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    for (conn *c = s->conns; c; c = c->next)
        conn_close(c);
}
