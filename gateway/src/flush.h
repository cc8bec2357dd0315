/*
 * flush: client frames are written before the loop sleeps, not at a
 * WRITEABLE callback.
 *
 * Redis's habit (handleClientsWithPendingWrites in beforeSleep): a
 * connection that got frames during this loop iteration goes on a list, and
 * a libuv prepare handle, which runs right before the loop polls, writes each
 * one's frames at once, coalesced into one write. Only a connection whose
 * socket could not take everything waits for a WRITEABLE callback.
 *
 * Why: on libuv, every lws_callback_on_writable() turns POLLOUT on and the
 * callback turns it off again, an epoll_ctl() each way (about 6 per delivery
 * measured under load), and the frame waits a whole loop turn for it. A
 * socket with room needs neither.
 *
 * Why it is safe: lws_write() outside WRITEABLE is what the platform notes
 * warn about only when lws still holds part of an earlier write (a second
 * write would append to an unbounded buffer). The flush checks
 * lws_partial_buffered() first and leaves such a connection to its
 * WRITEABLE callback, which lws holds back until that part drained.
 *
 * A connection that closes between the send and the flush takes itself off
 * the list (gw_flush_remove, from its CLOSED callback): the list never
 * points at a freed connection.
 */
#ifndef GW_FLUSH_H
#define GW_FLUSH_H

#include "server.h"

/* Creates the prepare handle (it does not keep the loop alive). */
void gw_flush_start(gw_server *s);
/* Flushes what is listed and closes the handle; later sends fall back to
 * WRITEABLE callbacks. */
void gw_flush_stop(gw_server *s);
/* Puts c on the list for this loop iteration (once). */
void gw_flush_add(gw_server *s, gw_conn *c);
/* Takes c off the list (it is closing for good); O(1). */
void gw_flush_remove(gw_server *s, gw_conn *c);

#endif
