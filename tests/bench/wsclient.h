/*
 * wsclient: a minimal RFC 6455 client written directly on libuv.
 *
 * The bench holds up to tens of thousands of connections per machine and must
 * stay cheaper than the gateway it measures, so this client does only what the
 * wsgw protocol needs: the HTTP upgrade (checking the 101 and the accept key),
 * masked text frames out, unmasked text/ping/close frames in, pong replies.
 * No extensions, no TLS. A connection costs its uv_tcp_t and a few words: all
 * connections of a loop read into one shared buffer (ws_shared) and keep bytes
 * only when a frame spans two reads.
 */
#ifndef BENCH_WSCLIENT_H
#define BENCH_WSCLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <netinet/in.h>
#include <uv.h>

#define WS_MAX_MESSAGE (1u << 20)    /* larger inbound messages close with 1009 */
#define WS_READ_BUF (64 * 1024)

/* Connection stages, also passed to the closed callback to say how far a
 * failed connection got. */
enum {
    WS_IDLE = 0,
    WS_CONNECTING,   /* TCP connect in progress */
    WS_HANDSHAKE,    /* upgrade request sent, waiting for 101 */
    WS_OPEN,         /* frames flow both ways */
    WS_CLOSED,       /* handle closed or closing; no more callbacks */
};

typedef struct ws_client ws_client;

typedef struct ws_client_cb {
    /* The upgrade succeeded; text may be sent. */
    void (*open)(ws_client *c);
    /* One whole text message, borrowed for the duration of the call. */
    void (*text)(ws_client *c, const char *msg, size_t len);
    /* The connection ended for a reason other than ws_client_close(): the
     * peer's close frame (its code), EOF or an error (1006), a protocol error
     * (1002, 1009). `stage` is how far it got; `why` is borrowed. Called at
     * most once; the client may be reused only after the loop has run. */
    void (*closed)(ws_client *c, int stage, int code, const char *why);
    /* Optional: writes this connection's request target into out (cap
     * bytes), for servers that take the channel from the URL. NULL: every
     * connection uses the shared path. */
    void (*target)(ws_client *c, char *out, size_t cap);
} ws_client_cb;

/* What every client of one loop shares: the read buffer (valid because libuv
 * calls read callbacks one at a time), the request target and a PRNG for
 * handshake keys and masks. */
typedef struct ws_shared {
    char rbuf[WS_READ_BUF];
    char host[80];       /* Host header value */
    char path[128];      /* request target */
    uint64_t prng;
} ws_shared;

struct ws_client {
    uv_tcp_t tcp;
    const ws_client_cb *cb;
    ws_shared *sh;
    char *carry;               /* bytes of an incomplete frame or response */
    uint32_t carry_len, carry_cap;
    char *frag;                /* a fragmented text message being assembled */
    uint32_t frag_len, frag_cap;
    uint8_t stage;
    uint8_t in_frag;
    char accept[29];           /* expected Sec-WebSocket-Accept */
    void *data;                /* the owner's */
};

void ws_shared_init(ws_shared *sh, const char *host, const char *path, uint64_t seed);

/* Starts connecting c from `src` (NULL: any address) to `dst`. On success
 * returns 0 and the outcome arrives through cb. On failure returns a negative
 * libuv code; the handle is then already closing and no callback follows.
 * c must stay valid until the loop has closed its handle. */
int ws_client_connect(ws_client *c, uv_loop_t *loop, ws_shared *sh, const struct sockaddr_in *src,
                      const struct sockaddr_in *dst, const ws_client_cb *cb);

/* Sends one text message. Returns 0, or a negative libuv code when the
 * connection is not open or the kernel refused; data is copied if it must wait. */
int ws_client_send_text(ws_client *c, const char *data, size_t len);

/* Bytes accepted but not yet handed to the kernel. */
size_t ws_client_queued(const ws_client *c);

/* Ends the connection from our side: a close frame with `code` when open,
 * then the handle closes. No closed callback follows. Safe to call twice. */
void ws_client_close(ws_client *c, int code);

#endif
