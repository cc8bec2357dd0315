/*
 * timers: every per-connection deadline of a process, without a timer per
 * connection.
 *
 * lws keeps its timers in one sorted list and inserts by walking it, so a
 * timer per connection costs O(connections) to arm: measured, 59% of the CPU
 * while 15,000 clients connect. The deadlines here need no such list:
 *  - the auth timeout is the same for everybody, so connections waiting for
 *    their auth message form a FIFO and one uv_timer follows its head;
 *  - token expiry and keepalive pings need second precision, so one 1 s
 *    tick walks the connections (tens of microseconds at 20,000).
 */
#ifndef GW_TIMERS_H
#define GW_TIMERS_H

#include "server.h"

typedef struct gw_conn gw_conn;

/* Starts the auth timer and the tick on s->loop. */
void gw_timers_start(gw_server *s);
/* Closes both handles (the loop finishes closing them). */
void gw_timers_stop(gw_server *s);

/* c is waiting for its auth message: it closes with 4002 at the deadline. */
void gw_timers_authing(gw_server *s, gw_conn *c);
/* c left the auth phase (authenticated, closing or closed). */
void gw_timers_authed(gw_server *s, gw_conn *c);

/* Milliseconds on the loop's clock (uv_now), for last-seen stamps. */
uint64_t gw_timers_now_ms(const gw_server *s);

#endif
