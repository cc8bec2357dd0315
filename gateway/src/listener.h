/*
 * listener: our own listening socket, shared between processes.
 *
 * lws's listen-share option does nothing in Debian's build, so the gateway
 * opens the socket itself with SO_REUSEADDR and SO_REUSEPORT (several
 * processes or workers can then share one port and the kernel spreads the
 * connections), watches it with a uv_poll_t and hands every accepted socket
 * to lws. Closing the listener is how a draining process stops taking
 * clients while its existing ones finish.
 */
#ifndef GW_LISTENER_H
#define GW_LISTENER_H

#include <uv.h>

/* Called for each accepted, non-blocking socket. The callee owns fd. */
typedef void gw_accept_cb(void *arg, int fd);

typedef struct gw_listener {
    uv_poll_t poll;
    int fd;
    int active;
    gw_accept_cb *on_accept;
    void *arg;
} gw_listener;

/* Binds host:port and starts accepting on loop. Returns 0 or -errno. */
int gw_listener_start(gw_listener *l, uv_loop_t *loop, const char *host, int port,
                      gw_accept_cb *cb, void *arg);
/* Stops accepting and closes the socket (the poll handle closes async). */
void gw_listener_stop(gw_listener *l);

#endif
