/*
 * conn: one client WebSocket connection and its send queue.
 *
 * The queue is a ring of frame pointers that grows by doubling up to
 * GW_QUEUE_MAX_FRAMES, so an idle connection holds no ring at all. The bound
 * is what keeps one stalled phone from eating the process: a client whose
 * queue would pass the frame or byte bound is closed with 4008 ("too slow")
 * and its frames are released at once; everybody else is unaffected, because
 * the frames are shared and each queue only holds references.
 *
 * Closing never frees anything here: the conn is lws's per-session data, and
 * lws calls LWS_CALLBACK_CLOSED (gw_conn_release) before it frees it.
 */
#include "conn.h"

#include <stdlib.h>
#include <string.h>

#include "flush.h"
#include "log.h"
#include "timers.h"

/* lws's private opcode for a close frame. lws-write.h leaves it out
 * ("handled by lws_close_reason()"), but ops-ws.c maps 4 to a close frame. */
#define GW_LWS_WRITE_CLOSE ((enum lws_write_protocol)4)

/* Seconds a closing connection may take to flush its close frame before lws
 * drops it hard: a peer that never becomes writable must not keep it. */
#define CLOSE_FLUSH_SECONDS 5
/* A close frame's payload is at most 125 bytes: the code and 123 of text. */
#define CLOSE_REASON_MAX 123

_Static_assert(GW_QUEUE_MAX_FRAMES <= UINT16_MAX, "the ring's counters are 16 bits");

static void queue_clear(gw_conn *c)
{
    while (c->q_count) {
        ps_frame_unref(c->q[c->q_head]);
        c->q_head = (uint16_t)((c->q_head + 1) % c->q_cap);
        c->q_count--;
    }
    c->q_bytes = 0;
}

static int queue_grow(gw_conn *c)
{
    size_t cap = c->q_cap ? c->q_cap * 2 : 8;
    ps_frame **q;
    if (cap > GW_QUEUE_MAX_FRAMES)
        cap = GW_QUEUE_MAX_FRAMES;
    q = malloc(cap * sizeof(*q));
    if (!q)
        return -1;
    /* Unroll the ring into the new array so the head is at 0 again. */
    for (size_t i = 0; i < c->q_count; i++)
        q[i] = c->q[(c->q_head + i) % c->q_cap];
    free(c->q);
    c->q = q;
    c->q_head = 0;
    c->q_cap = (uint16_t)cap;
    return 0;
}

int gw_conn_send_owned(gw_conn *c, ps_frame *f)
{
    if (!f)
        return -1;
    if (c->state == GW_CONN_CLOSING) {
        ps_frame_unref(f);
        return -1;
    }
    if (c->q_count == GW_QUEUE_MAX_FRAMES || c->q_bytes + f->len > (size_t)c->srv->cfg->max_queue_bytes) {
        ps_frame_unref(f);
        c->srv->counters.slow_drops++;
        gw_warn("slow_consumer", c->id, "queue bound reached: %u frames, %u bytes", c->q_count,
                c->q_bytes);
        gw_conn_close(c, 4008, "too slow");
        return -1;
    }
    if (c->q_count == c->q_cap && queue_grow(c) < 0) {
        ps_frame_unref(f);
        gw_conn_close(c, 1011, "out of memory");
        return -1;
    }
    c->q[(c->q_head + c->q_count) % c->q_cap] = f;
    c->q_count++;
    c->q_bytes += f->len;
    gw_flush_add(c->srv, c);
    return 0;
}

int gw_conn_send(gw_conn *c, ps_frame *f)
{
    return gw_conn_send_owned(c, ps_frame_ref(f));
}

/* What every way of closing shares: no more input or output, and out of
 * the auth FIFO. Returns 0 when the connection was closing already. */
static int begin_close(gw_conn *c, int code, const char *reason)
{
    if (c->state == GW_CONN_CLOSING)
        return 0;
    c->state = GW_CONN_CLOSING;
    c->close_code = (uint16_t)code;
    c->close_reason = reason ? reason : "";
    queue_clear(c);
    gw_timers_authed(c->srv, c);
    return 1;
}

void gw_conn_close(gw_conn *c, int code, const char *reason)
{
    if (!begin_close(c, code, reason))
        return;
    gw_debug("conn_closing", c->id, "code %d: %s", code, reason);
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, CLOSE_FLUSH_SECONDS);
    lws_callback_on_writable(c->wsi);
}

void gw_conn_peer_closing(gw_conn *c)
{
    /* Code 0: lws answers the peer's close itself; nothing more of ours
     * may follow it on the wire. */
    begin_close(c, 0, NULL);
}

void gw_conn_hangup(gw_conn *c)
{
    if (!begin_close(c, 0, NULL)) /* code 0: send_close sends no frame */
        return;
    /* Not LWS_TO_KILL_ASYNC: measured with lws 4.1.6 on our libuv loop, a
     * zero timeout set outside lws's own service never fired, and the
     * connection stayed. */
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, 1);
    lws_callback_on_writable(c->wsi);
}

/* Sends the close frame ourselves: lws 4.1.6 as Debian builds it drops the
 * TCP connection without one when a WRITEABLE callback returns -1 after
 * lws_close_reason(), and clients would then see 1006 instead of our code. */
static int send_close(gw_conn *c)
{
    unsigned char buf[LWS_PRE + 2 + CLOSE_REASON_MAX];
    unsigned char *p = buf + LWS_PRE;
    size_t rlen;
    if (!c->close_code)
        return -1; /* gw_conn_hangup: no frame, and no reason set */
    rlen = strnlen(c->close_reason, CLOSE_REASON_MAX);
    p[0] = (unsigned char)(c->close_code >> 8);
    p[1] = (unsigned char)(c->close_code & 0xff);
    memcpy(p + 2, c->close_reason, rlen);
    lws_write(c->wsi, p, 2 + rlen, GW_LWS_WRITE_CLOSE);
    return -1;
}

static ps_frame *queue_pop(gw_conn *c)
{
    ps_frame *f = c->q[c->q_head];
    c->q_head = (uint16_t)((c->q_head + 1) % c->q_cap);
    c->q_count--;
    c->q_bytes -= f->len;
    return f;
}

/* Writes a WebSocket text frame header (server side: unmasked) at p and
 * returns its length. */
static size_t frame_header(unsigned char *p, size_t len)
{
    p[0] = 0x81; /* FIN, text */
    if (len < 126) {
        p[1] = (unsigned char)len;
        return 2;
    }
    if (len <= 0xffff) {
        p[1] = 126;
        p[2] = (unsigned char)(len >> 8);
        p[3] = (unsigned char)len;
        return 4;
    }
    p[1] = 127;
    for (int i = 0; i < 8; i++)
        p[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    return 10;
}

/* Write coalescing: when several frames wait, they are framed into one
 * buffer and go out in one raw write, so a busy broadcast costs fewer
 * syscalls than deliveries. Safe because no extension (permessage-deflate)
 * is negotiated: a raw write is exactly what lws would have framed. The
 * scratch buffer is shared by every connection of the process: lws copies
 * whatever the kernel did not take before lws_write returns. */
static int write_coalesced(gw_conn *c)
{
    static unsigned char scratch[LWS_PRE + GW_COALESCE_BYTES];
    unsigned char *start = scratch + LWS_PRE, *p = start;
    size_t frames = 0;

    while (c->q_count) {
        ps_frame *f = c->q[c->q_head];
        if ((size_t)(p - start) + 10 + f->len > GW_COALESCE_BYTES)
            break;
        f = queue_pop(c);
        p += frame_header(p, f->len);
        memcpy(p, ps_frame_data(f), f->len);
        p += f->len;
        ps_frame_unref(f);
        frames++;
    }
    c->srv->counters.writes++;
    c->srv->counters.bytes_out += (uint64_t)(p - start);
    if (frames > 1)
        c->srv->counters.coalesced_frames += frames;
    return lws_write(c->wsi, start, (size_t)(p - start), LWS_WRITE_RAW) < 0 ? -1 : 0;
}

/* One frame, sent from its own shared buffer without a copy. */
static int write_one(gw_conn *c)
{
    ps_frame *f = queue_pop(c);
    int n = lws_write(c->wsi, ps_frame_data(f), f->len, LWS_WRITE_TEXT);
    c->srv->counters.writes++;
    c->srv->counters.bytes_out += f->len;
    ps_frame_unref(f);
    return n < 0 ? -1 : 0;
}

void gw_conn_wait_writable(gw_conn *c)
{
    c->srv->counters.write_waits++;
    lws_callback_on_writable(c->wsi);
}

/* Sends what is queued: several frames in one write when they fit, else
 * the first one alone; asks for WRITEABLE when frames remain. One
 * lws_write per call: lws keeps what the kernel did not take and holds back
 * the next WRITEABLE until it drained. */
static int write_queued(gw_conn *c)
{
    int rc;
    if (c->q_count > 1 && c->q[(c->q_head + 1) % c->q_cap]->len + c->q[c->q_head]->len + 20 <=
                              GW_COALESCE_BYTES)
        rc = write_coalesced(c);
    else
        rc = write_one(c);
    if (rc < 0)
        return -1;
    if (c->q_count)
        gw_conn_wait_writable(c);
    return 0;
}

void gw_conn_flush(gw_conn *c)
{
    if (c->state == GW_CONN_CLOSING || c->q_count == 0)
        return;
    /* lws still holds part of an earlier write: writing now would append
     * to its unbounded buffer. WRITEABLE comes once that part drained. */
    if (lws_partial_buffered(c->wsi)) {
        gw_conn_wait_writable(c);
        return;
    }
    if (write_queued(c) < 0)
        gw_conn_hangup(c); /* the socket failed: lws closes it at WRITEABLE */
}

int gw_conn_on_writable(gw_conn *c)
{
    if (c->state == GW_CONN_CLOSING)
        return send_close(c);
    if (c->ping_state == GW_PING_DUE) {
        /* Keepalive (timers.c). The PING takes this WRITEABLE; queued
         * frames follow at the next. It carries a payload because lws
         * 4.1.6 never reports an empty PONG (LWS_CALLBACK_RECEIVE_PONG is
         * skipped for a zero length): an answering peer would look dead. */
        unsigned char ping[LWS_PRE + 4] = {[LWS_PRE] = 'w', 's', 'g', 'w'};
        c->ping_state = GW_PING_SENT;
        if (lws_write(c->wsi, ping + LWS_PRE, 4, LWS_WRITE_PING) < 0)
            return -1;
        if (c->q_count)
            lws_callback_on_writable(c->wsi);
        return 0;
    }
    if (c->q_count == 0)
        return 0;
    return write_queued(c);
}

int gw_conn_rx_append(gw_conn *c, const void *in, size_t len)
{
    /* The caller has checked the total against --max-message-bytes, so the
     * buffer is bounded; grow it exactly. */
    char *rx = realloc(c->rx, c->rx_len + len);
    if (!rx)
        return -1;
    memcpy(rx + c->rx_len, in, len);
    c->rx = rx;
    c->rx_len += len;
    return 0;
}

void gw_conn_rx_reset(gw_conn *c)
{
    free(c->rx);
    c->rx = NULL;
    c->rx_len = 0;
}

void gw_conn_queue_release(gw_conn *c)
{
    queue_clear(c);
    free(c->q);
    c->q = NULL;
    c->q_head = 0;
    c->q_cap = 0;
}

void gw_conn_release(gw_conn *c)
{
    gw_flush_remove(c->srv, c);
    gw_conn_queue_release(c);
    gw_conn_rx_reset(c);
    gw_timers_authed(c->srv, c);
    auth_claims_free(&c->claims);
}
