/*
 * listener: our own listening socket, shared between processes.
 *
 * The socket is non-blocking; each readable event accepts until EAGAIN so a
 * burst of connections costs one wakeup. accept4() gives the new sockets
 * O_NONBLOCK and O_CLOEXEC in the same call, as lws expects of adopted fds.
 */
#include "listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LISTEN_BACKLOG 4096

static void on_readable(uv_poll_t *h, int status, int events)
{
    gw_listener *l = h->data;
    if (status < 0 || !l->active)
        return;
    for (;;) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or a transient error (EMFILE): try again on the next event */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        l->on_accept(l->arg, fd);
    }
}

static int open_socket(const char *host, int port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char portstr[8];
    int fd = -1, one = 1, err;

    snprintf(portstr, sizeof(portstr), "%d", port);
    if ((err = getaddrinfo(host, portstr, &hints, &res)) != 0)
        return -EADDRNOTAVAIL;
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto err;
    /* SO_REUSEPORT: several processes (or --workers) share the port and the
     * kernel spreads new connections across them. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, LISTEN_BACKLOG) < 0)
        goto err;
    freeaddrinfo(res);
    return fd;
err:
    err = -errno;
    if (fd >= 0)
        close(fd);
    freeaddrinfo(res);
    return err;
}

int gw_listener_start(gw_listener *l, uv_loop_t *loop, const char *host, int port,
                      gw_accept_cb *cb, void *arg)
{
    int fd = open_socket(host, port);
    if (fd < 0)
        return fd;
    l->fd = fd;
    l->on_accept = cb;
    l->arg = arg;
    uv_poll_init(loop, &l->poll, fd);
    l->poll.data = l;
    uv_poll_start(&l->poll, UV_READABLE, on_readable);
    l->active = 1;
    return 0;
}

static void on_poll_closed(uv_handle_t *h)
{
    gw_listener *l = h->data;
    close(l->fd);
    l->fd = -1;
}

void gw_listener_stop(gw_listener *l)
{
    if (!l->active)
        return;
    l->active = 0;
    /* The fd is closed only after libuv let go of the poll handle. */
    uv_close((uv_handle_t *)&l->poll, on_poll_closed);
}
