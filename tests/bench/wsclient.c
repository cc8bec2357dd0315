/*
 * wsclient: the upgrade, framing and buffering of a bench connection; see
 * wsclient.h for the scope and the memory model.
 *
 * Writes try the socket first (uv_try_write) and copy only what the kernel
 * did not take, so the common small frame costs no allocation. Reads are
 * parsed in place in the loop's shared buffer; only a frame cut by a read
 * boundary is copied to the connection's carry buffer.
 */
#include "wsclient.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <sys/socket.h>

#include "bench.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_MAX_RESPONSE 8192    /* a longer HTTP response head is an error */

static uint64_t prng_next(ws_shared *sh)
{
    /* xorshift64*: masks need no cryptographic strength against our own
     * gateway, only to vary, and this costs nothing per frame. */
    uint64_t x = sh->prng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    sh->prng = x;
    return x * UINT64_C(2685821657736338717);
}

void ws_shared_init(ws_shared *sh, const char *host, const char *path, uint64_t seed)
{
    snprintf(sh->host, sizeof(sh->host), "%s", host);
    snprintf(sh->path, sizeof(sh->path), "%s", path);
    sh->prng = seed ? seed : UINT64_C(0x9e3779b97f4a7c15);
}

static void on_handle_closed(uv_handle_t *h)
{
    ws_client *c = h->data;
    free(c->carry);
    free(c->frag);
    c->carry = c->frag = NULL;
    c->carry_len = c->carry_cap = c->frag_len = c->frag_cap = 0;
}

static void close_handle(ws_client *c)
{
    c->stage = WS_CLOSED;
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

/* Ends the connection and tells the owner, once. */
static void fail(ws_client *c, int code, const char *why)
{
    int stage = c->stage;
    if (stage == WS_CLOSED)
        return;
    close_handle(c);
    c->cb->closed(c, stage, code, why);
}

static int send_frame(ws_client *c, int opcode, const char *data, size_t len)
{
    char stack[2048], *f = stack;
    size_t h = 2;
    uint32_t mask = (uint32_t)prng_next(c->sh);
    unsigned char *m = (unsigned char *)&mask;
    int rc;

    if (len + 14 > sizeof(stack) && !(f = malloc(len + 14)))
        return UV_ENOMEM;
    f[0] = (char)(0x80 | opcode);
    if (len < 126) {
        f[1] = (char)(0x80 | len);
    } else if (len < 65536) {
        f[1] = (char)(0x80 | 126);
        f[2] = (char)(len >> 8);
        f[3] = (char)len;
        h = 4;
    } else {
        f[1] = (char)(0x80 | 127);
        for (int i = 0; i < 8; i++)
            f[2 + i] = (char)((uint64_t)len >> (56 - 8 * i));
        h = 10;
    }
    memcpy(f + h, m, 4);
    h += 4;
    for (size_t i = 0; i < len; i++)
        f[h + i] = (char)(data[i] ^ m[i & 3]);
    rc = bench_stream_write((uv_stream_t *)&c->tcp, f, h + len);
    if (f != stack)
        free(f);
    return rc;
}

static void expected_accept(char out[29], const char *key)
{
    char buf[64];
    unsigned char sha[SHA_DIGEST_LENGTH];
    int n = snprintf(buf, sizeof(buf), "%s%s", key, WS_GUID);
    SHA1((const unsigned char *)buf, (size_t)n, sha);
    EVP_EncodeBlock((unsigned char *)out, sha, SHA_DIGEST_LENGTH);
}

static int send_upgrade(ws_client *c)
{
    uint64_t r[2] = {prng_next(c->sh), prng_next(c->sh)};
    char key[32], req[640], target[320];
    int n;
    EVP_EncodeBlock((unsigned char *)key, (const unsigned char *)r, 16);
    expected_accept(c->accept, key);
    if (c->cb->target)
        c->cb->target(c, target, sizeof(target));
    else
        snprintf(target, sizeof(target), "%s", c->sh->path);
    n = snprintf(req, sizeof(req),
                 "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                 target, c->sh->host, key);
    return bench_stream_write((uv_stream_t *)&c->tcp, req, (size_t)n);
}

/* Returns 1 when the response head (len bytes, ending in CRLFCRLF) carries
 * the accept value we expect. */
static int accept_matches(const ws_client *c, const char *head, size_t len)
{
    static const char name[] = "\r\nsec-websocket-accept:";
    const size_t nl = sizeof(name) - 1;
    for (size_t i = 0; i + nl < len; i++) {
        if (strncasecmp(head + i, name, nl) != 0)
            continue;
        i += nl;
        while (i < len && (head[i] == ' ' || head[i] == '\t'))
            i++;
        return len - i >= 28 && memcmp(head + i, c->accept, 28) == 0;
    }
    return 0;
}

/* Returns the bytes of the response head consumed, 0 when incomplete, or -1
 * when the connection failed. */
static long parse_upgrade(ws_client *c, const char *d, size_t len)
{
    const char *end = memmem(d, len, "\r\n\r\n", 4);
    size_t hl;
    if (!end) {
        if (len > WS_MAX_RESPONSE)
            fail(c, 1006, "upgrade response too long");
        return len > WS_MAX_RESPONSE ? -1 : 0;
    }
    hl = (size_t)(end - d) + 4;
    if (hl < 12 || memcmp(d, "HTTP/1.1 101", 12) != 0) {
        char why[80];
        const char *eol = memchr(d, '\r', hl);
        snprintf(why, sizeof(why), "upgrade refused: %.*s", (int)(eol ? eol - d : 40), d);
        fail(c, 1006, why);
        return -1;
    }
    if (!accept_matches(c, d, hl)) {
        fail(c, 1006, "bad Sec-WebSocket-Accept");
        return -1;
    }
    c->stage = WS_OPEN;
    c->cb->open(c);
    return (long)hl;
}

static int append(char **buf, uint32_t *len, uint32_t *cap, const char *d, size_t n)
{
    if (*len + n > *cap) {
        size_t nc = *cap ? *cap : 256;
        char *b;
        while (nc < *len + n)
            nc *= 2;
        if (!(b = realloc(*buf, nc)))
            return -1;
        *buf = b;
        *cap = (uint32_t)nc;
    }
    memcpy(*buf + *len, d, n);
    *len += (uint32_t)n;
    return 0;
}

static void on_close_frame(ws_client *c, const unsigned char *p, size_t len)
{
    int code = len >= 2 ? (p[0] << 8 | p[1]) : 1005;
    char why[128];
    unsigned char echo[2] = {(unsigned char)(code >> 8), (unsigned char)code};
    snprintf(why, sizeof(why), "%.*s", len > 2 ? (int)(len - 2) : 0, (const char *)p + 2);
    /* Echo the code, as RFC 6455 5.5.1 asks, before the handle goes. */
    send_frame(c, 0x8, (const char *)echo, len >= 2 ? 2 : 0);
    fail(c, code, why[0] ? why : "closed by peer");
}

/* Data frames: text is delivered whole; binary (never sent by wsgw) is
 * skipped, fragments included. */
static void on_data_frame(ws_client *c, int op, int fin, const char *p, size_t len)
{
    if ((op == 0 && !c->in_frag) || (op != 0 && c->in_frag)) {
        fail(c, 1002, "bad fragmentation");
        return;
    }
    if (op == 1 && fin) {
        c->cb->text(c, p, len);
        return;
    }
    if (op != 0)
        c->in_frag = (uint8_t)op;
    if (c->in_frag == 1 && (c->frag_len + len > WS_MAX_MESSAGE ||
                            append(&c->frag, &c->frag_len, &c->frag_cap, p, len) < 0)) {
        fail(c, 1009, "message too big");
        return;
    }
    if (fin) {
        if (c->in_frag == 1)
            c->cb->text(c, c->frag, c->frag_len);
        c->in_frag = 0;
        c->frag_len = 0;
    }
}

static void on_frame(ws_client *c, int op, int fin, const unsigned char *p, size_t len)
{
    if (op >= 0x8 && (!fin || len > 125)) {
        fail(c, 1002, "bad control frame");
        return;
    }
    switch (op) {
    case 0x0: case 0x1: case 0x2:
        on_data_frame(c, op, fin, (const char *)p, len);
        break;
    case 0x8:
        on_close_frame(c, p, len);
        break;
    case 0x9:
        send_frame(c, 0xA, (const char *)p, len);
        break;
    case 0xA:
        break;
    default:
        fail(c, 1002, "unknown opcode");
    }
}

/* Returns the bytes of one frame consumed, or 0 when the frame is
 * incomplete or the connection failed. */
static size_t parse_frame(ws_client *c, const unsigned char *d, size_t len)
{
    uint64_t plen;
    size_t h = 2;
    if (len < 2)
        return 0;
    if ((d[0] & 0x70) || (d[1] & 0x80)) {
        fail(c, 1002, (d[1] & 0x80) ? "masked server frame" : "reserved bits set");
        return 0;
    }
    plen = d[1] & 0x7f;
    if (plen == 126) {
        if (len < 4)
            return 0;
        plen = (uint64_t)d[2] << 8 | d[3];
        h = 4;
    } else if (plen == 127) {
        if (len < 10)
            return 0;
        plen = 0;
        for (int i = 0; i < 8; i++)
            plen = plen << 8 | d[2 + i];
        h = 10;
    }
    if (plen > WS_MAX_MESSAGE) {
        fail(c, 1009, "frame too big");
        return 0;
    }
    if (len - h < plen)
        return 0;
    on_frame(c, d[0] & 0x0f, d[0] & 0x80, d + h, (size_t)plen);
    return h + (size_t)plen;
}

/* Parses what it can; returns the bytes consumed. Stops when the
 * connection closes. */
static size_t consume(ws_client *c, const char *d, size_t len)
{
    size_t off = 0, n;
    if (c->stage == WS_HANDSHAKE) {
        long hl = parse_upgrade(c, d, len);
        if (hl <= 0)
            return 0;
        off = (size_t)hl;
    }
    while (c->stage == WS_OPEN && (n = parse_frame(c, (const unsigned char *)d + off, len - off)))
        off += n;
    return off;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    ws_client *c = h->data;
    *buf = uv_buf_init(c->sh->rbuf, sizeof(c->sh->rbuf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    ws_client *c = s->data;
    size_t used;
    if (nread == 0 || c->stage == WS_CLOSED)
        return;
    if (nread < 0) {
        fail(c, 1006, nread == UV_EOF ? "closed without a close frame" : uv_strerror((int)nread));
        return;
    }
    if (c->carry_len) {
        if (append(&c->carry, &c->carry_len, &c->carry_cap, buf->base, (size_t)nread) < 0) {
            fail(c, 1009, "out of memory");
            return;
        }
        used = consume(c, c->carry, c->carry_len);
        if (c->stage != WS_CLOSED) {
            memmove(c->carry, c->carry + used, c->carry_len - used);
            c->carry_len -= (uint32_t)used;
        }
        return;
    }
    used = consume(c, buf->base, (size_t)nread);
    if (c->stage != WS_CLOSED && used < (size_t)nread &&
        append(&c->carry, &c->carry_len, &c->carry_cap, buf->base + used, (size_t)nread - used) < 0)
        fail(c, 1009, "out of memory");
}

static void on_connect(uv_connect_t *req, int status)
{
    ws_client *c = req->handle->data;
    int rc;
    free(req);
    if (c->stage == WS_CLOSED)
        return;
    if (status < 0) {
        fail(c, 1006, uv_strerror(status));
        return;
    }
    c->stage = WS_HANDSHAKE;
    if ((rc = send_upgrade(c)) < 0 ||
        (rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read)) < 0)
        fail(c, 1006, uv_strerror(rc));
}

/* Binding to a chosen loopback source spreads connections over more
 * (source, port) pairs; IP_BIND_ADDRESS_NO_PORT defers the port choice to
 * connect(), so each source address gets the whole ephemeral range per
 * destination instead of one shared range. */
static int bind_source(ws_client *c, const struct sockaddr_in *src)
{
    uv_os_fd_t fd;
    int one = 1;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    return uv_tcp_bind(&c->tcp, (const struct sockaddr *)src, 0);
}

int ws_client_connect(ws_client *c, uv_loop_t *loop, ws_shared *sh, const struct sockaddr_in *src,
                      const struct sockaddr_in *dst, const ws_client_cb *cb)
{
    uv_connect_t *req = NULL;
    int rc;
    void *owner = c->data;

    memset(c, 0, sizeof(*c));
    c->data = owner;
    c->cb = cb;
    c->sh = sh;
    if ((rc = uv_tcp_init_ex(loop, &c->tcp, AF_INET)) < 0)
        return rc;
    c->tcp.data = c;
    c->stage = WS_CONNECTING;
    if (src && (rc = bind_source(c, src)) < 0)
        goto err;
    uv_tcp_nodelay(&c->tcp, 1);
    if (!(req = malloc(sizeof(*req)))) {
        rc = UV_ENOMEM;
        goto err;
    }
    if ((rc = uv_tcp_connect(req, &c->tcp, (const struct sockaddr *)dst, on_connect)) < 0)
        goto err;
    return 0;
err:
    free(req);
    close_handle(c);
    return rc;
}

int ws_client_send_text(ws_client *c, const char *data, size_t len)
{
    if (c->stage != WS_OPEN)
        return UV_ENOTCONN;
    return send_frame(c, 0x1, data, len);
}

size_t ws_client_queued(const ws_client *c)
{
    return c->tcp.write_queue_size;
}

void ws_client_close(ws_client *c, int code)
{
    unsigned char p[2] = {(unsigned char)(code >> 8), (unsigned char)code};
    if (c->stage == WS_IDLE || c->stage == WS_CLOSED)
        return;
    /* Best effort: a frame that cannot go out at once would be cancelled by
     * the close anyway. */
    if (c->stage == WS_OPEN && c->tcp.write_queue_size == 0)
        send_frame(c, 0x8, (const char *)p, 2);
    close_handle(c);
}
