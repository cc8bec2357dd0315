/*
 * message: encoding and decoding of the bench data object; see message.h.
 *
 * Decoding runs once per delivery, hundreds of thousands of times a second,
 * so it is a memmem and hand-rolled integer parsing rather than a JSON
 * library: the bench must stay cheaper than the gateway it measures. The key
 * "bench" cannot occur elsewhere in a frame because channel names and user
 * ids have no quotes.
 */
#include "message.h"

#include <stdio.h>
#include <string.h>

size_t bench_msg_encode(char *buf, size_t cap, const bench_msg *m, size_t size)
{
    size_t n = (size_t)snprintf(buf, cap, "{\"bench\":[%llu,%llu,%llu,%llu],\"pad\":\"",
                                (unsigned long long)m->run_id, (unsigned long long)m->seq,
                                (unsigned long long)m->t_ns, (unsigned long long)m->channel);
    size_t pad = size > n + 2 ? size - n - 2 : 0;
    memset(buf + n, 'x', pad);
    n += pad;
    buf[n++] = '"';
    buf[n++] = '}';
    return n;
}

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r'))
        p++;
    return p;
}

/* Reads one unsigned integer; NULL when there is none. */
static const char *read_uint(const char *p, const char *end, uint64_t *out)
{
    uint64_t v = 0;
    const char *s = p = skip_ws(p, end);
    while (p < end && *p >= '0' && *p <= '9' && p - s < 20)
        v = v * 10 + (uint64_t)(*p++ - '0');
    *out = v;
    return p > s ? p : NULL;
}

int bench_msg_decode(const char *frame, size_t len, bench_msg *out)
{
    const char *end = frame + len, *p = memmem(frame, len, "\"bench\"", 7);
    uint64_t v[4];
    if (!p)
        return 0;
    p = skip_ws(p + 7, end);
    if (p >= end || *p++ != ':')
        return -1;
    p = skip_ws(p, end);
    if (p >= end || *p++ != '[')
        return -1;
    for (int i = 0; i < 4; i++) {
        if (!(p = read_uint(p, end, &v[i])))
            return -1;
        p = skip_ws(p, end);
        if (p >= end || *p++ != (i < 3 ? ',' : ']'))
            return -1;
    }
    out->run_id = v[0];
    out->seq = v[1];
    out->t_ns = v[2];
    out->channel = v[3];
    return 1;
}
