/*
 * conn: one client WebSocket connection and its send queue.
 *
 * A gw_conn is lws's per-session user data: lws allocates it zeroed when the
 * connection is adopted and frees it after LWS_CALLBACK_CLOSED, so the conn
 * never frees itself. Outbound frames wait in a bounded ring of shared,
 * reference-counted frames until the flush before the loop sleeps (flush.h)
 * writes them, coalesced; a socket that could not take everything gets the
 * rest at its WRITEABLE callbacks, one write each (platform notes: a second
 * lws_write before the first drained appends to an unbounded buffer). Closing is asynchronous too: gw_conn_close records the
 * code and asks for a WRITEABLE callback, where the close frame goes out.
 */
#ifndef GW_CONN_H
#define GW_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <auth/auth.h>
#include <libwebsockets.h>
#include <pubsub/pubsub.h>
#include <uthash.h>

#include "client_limits.h"
#include "server.h"

typedef enum gw_conn_state {
    GW_CONN_AUTHING, /* waiting for the first message */
    GW_CONN_OPEN,    /* authenticated */
    GW_CONN_CLOSING, /* close frame pending; input ignored */
} gw_conn_state;

/* Keepalive of a silent connection: a PING is due at the next WRITEABLE,
 * then sent; anything received resets it to IDLE. */
enum { GW_PING_IDLE, GW_PING_DUE, GW_PING_SENT };

#define GW_CONN_ID_LEN 32
#define GW_QUEUE_MAX_FRAMES 4096          /* bound by count, and by --max-queue-bytes; past either: 4008 */
#define GW_COALESCE_BYTES (64 * 1024)     /* most bytes of queued frames sent in one write */

/* Field order and widths keep the struct small: it is allocated for every
 * connection (lws's per-session data), so each byte here is a byte per idle
 * client. Queue counters fit 16 bits (the ring holds at most
 * GW_QUEUE_MAX_FRAMES) and the byte count 32 (--max-queue-bytes is at most
 * 1 GiB). */
struct gw_conn {
    struct lws *wsi;
    gw_server *srv;
    uint64_t serial;                  /* key of srv->conns */
    char id[GW_CONN_ID_LEN];
    uint8_t state;                    /* gw_conn_state */
    uint8_t registered;               /* in srv->conns */
    uint8_t ping_state;               /* GW_PING_*: keepalive (timers.c) */
    uint16_t close_code;
    uint32_t rx_len;                  /* bytes in rx (at most --max-message-bytes) */
    auth_claims claims;               /* valid once OPEN */
    uint64_t auth_deadline_ms;        /* AUTHING: 4002 at this loop time (timers.c) */
    gw_conn *auth_prev, *auth_next;   /* AUTHING: the auth FIFO (timers.c) */
    uint64_t last_seen_ms;            /* loop time anything last arrived */
    gw_rate pub_rate;                 /* OPEN: the publish token bucket (client_limits.c) */
    int64_t sub_exp;                  /* earliest exp of a subscription token held; 0: none */
    char *rx;                         /* reassembly of a fragmented message */
    ps_frame **q;                     /* ring of frames to send */
    uint16_t q_head, q_count, q_cap;  /* at most GW_QUEUE_MAX_FRAMES */
    uint32_t q_bytes;
    uint32_t flush_slot;              /* 1 + index on the server's flush list; 0: not on it (flush.c) */
    const char *close_reason;         /* static text (see gw_conn_close) */
    struct gw_api_req *api;           /* HTTP only: the /api/publish request (http_api.c) */
    UT_hash_handle hh;
};

/* Queues one frame (takes a new reference). Past the queue bound the client
 * is closed with 4008 and the frame dropped. Returns 0 or -1 when dropped. */
int gw_conn_send(gw_conn *c, ps_frame *f);
/* Like gw_conn_send but consumes the caller's reference (NULL: OOM, ignored). */
int gw_conn_send_owned(gw_conn *c, ps_frame *f);
/* Schedules a close with code and a short reason; the first call wins.
 * Queued frames are dropped. reason must outlive the connection (every
 * caller passes a literal or auth_strerror()): keeping a pointer instead of
 * a copy saves 124 bytes on every idle connection. At most 123 bytes of it
 * are sent, the most a close frame carries. */
void gw_conn_close(gw_conn *c, int code, const char *reason);
/* Drops the connection without a close frame (a peer that stopped
 * answering is not listening): at its next WRITEABLE, or after a second
 * when it never becomes writable. */
void gw_conn_hangup(gw_conn *c);
/* The peer sent a close frame: lws answers it; drop what is queued and
 * send nothing more. */
void gw_conn_peer_closing(gw_conn *c);
/* Leaves the queued frames to the next WRITEABLE callback (counted: a
 * client that keeps up never needs one). */
void gw_conn_wait_writable(gw_conn *c);
/* The flush before the loop sleeps (flush.c): writes the queued frames now
 * unless lws still holds part of an earlier write. */
void gw_conn_flush(gw_conn *c);
/* WRITEABLE: sends queued frames (one write) or the close. Returns -1 when
 * lws must close. */
int gw_conn_on_writable(gw_conn *c);
/* Releases what the conn holds (queue, rx buffer, claims). Called
 * from LWS_CALLBACK_CLOSED; lws frees the struct itself afterwards. */
void gw_conn_release(gw_conn *c);
/* Drops what is queued and frees the ring (it grows again on the next send). */
void gw_conn_queue_release(gw_conn *c);
/* Appends received bytes to the reassembly buffer. Returns 0 or -1 (OOM). */
int gw_conn_rx_append(gw_conn *c, const void *in, size_t len);
void gw_conn_rx_reset(gw_conn *c);

#endif
