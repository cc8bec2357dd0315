/*
 * ipc: record framing over pipes; see ipc.h.
 */
#include "ipc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct ipc_header {
    uint32_t type;
    uint32_t len;
} ipc_header;

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int ipc_send(int fd, uint32_t type, const void *body, uint32_t len)
{
    ipc_header h = {type, len};
    char small[256];
    /* Small records go out in one write, so the reader never sees a header
     * without its body and pipes keep them atomic (PIPE_BUF). */
    if (sizeof(h) + len <= sizeof(small)) {
        memcpy(small, &h, sizeof(h));
        memcpy(small + sizeof(h), body, len);
        return write_all(fd, small, sizeof(h) + len);
    }
    if (write_all(fd, (const char *)&h, sizeof(h)) < 0)
        return -1;
    return write_all(fd, body, len);
}

static int reserve(ipc_reader *r, size_t extra)
{
    size_t cap = r->cap ? r->cap : 4096;
    char *b;
    if (r->len + extra <= r->cap)
        return 0;
    while (cap < r->len + extra)
        cap *= 2;
    b = realloc(r->buf, cap);
    if (!b)
        return -1;
    r->buf = b;
    r->cap = cap;
    return 0;
}

int ipc_feed(ipc_reader *r, const char *data, size_t n, ipc_record_cb cb, void *arg)
{
    size_t off = 0;
    if (r->corrupt || reserve(r, n) < 0)
        return -1;
    memcpy(r->buf + r->len, data, n);
    r->len += n;
    while (r->len - off >= sizeof(ipc_header)) {
        ipc_header h;
        memcpy(&h, r->buf + off, sizeof(h));
        if (h.len > IPC_MAX_RECORD) {
            r->corrupt = 1;
            return -1;
        }
        if (r->len - off - sizeof(h) < h.len)
            break;
        cb(arg, h.type, r->buf + off + sizeof(h), h.len);
        off += sizeof(h) + h.len;
    }
    memmove(r->buf, r->buf + off, r->len - off);
    r->len -= off;
    return 0;
}

void ipc_reader_free(ipc_reader *r)
{
    free(r->buf);
    memset(r, 0, sizeof(*r));
}
