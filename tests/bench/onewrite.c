/*
 * onewrite: the one-write ceiling of a broadcast, the baseline wsgw's write
 * coalescing is measured against (docs/benchmarks.md).
 *
 * A WebSocket server reduced to what a broadcast needs and nothing else: it
 * accepts clients, completes the upgrade, answers the wsgw client's "auth"
 * and "subscribe" messages without checking them (so wsgw-bench runs the very
 * same scenario against it), subscribes to one Redis channel, and for each
 * message builds the frame once and hands it to every subscriber with one
 * plain write() each. No queue, no JSON, no allocation per delivery: a server
 * that does one syscall per delivery cannot do less work per delivery, so its
 * rate is the most any one-write design gets from one core. A client whose
 * socket buffer is full is dropped and counted, never waited for.
 *
 *   onewrite --listen 127.0.0.1:8095 --redis 127.0.0.1:6379 [--channel wsgw:chat:bench]
 *
 * It runs until SIGINT or SIGTERM, then prints its counts on stderr.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#define IN_CAP 2048 /* a client's unparsed bytes; more closes it */
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum { ST_HTTP = 1, ST_OPEN, ST_SUBSCRIBED };

typedef struct client {
    int st;
    int sub_pos; /* index in subs[], when subscribed */
    size_t in_len;
    char in[IN_CAP];
} client;

static client **clients; /* by descriptor */
static int *subs, n_subs, max_fd;
static volatile sig_atomic_t stop;
static unsigned long long n_msgs, n_deliveries, n_dropped;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int parse_addr(const char *s, struct sockaddr_in *sa)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    if (!colon || colon - s >= (long)sizeof(host))
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)atoi(colon + 1));
    return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

static void drop(int ep, int fd)
{
    client *c = clients[fd];
    if (c->st == ST_SUBSCRIBED) {
        /* Keep subs[] dense: the last one takes the hole. */
        int last = subs[--n_subs];
        subs[c->sub_pos] = last;
        clients[last]->sub_pos = c->sub_pos;
    }
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    free(c);
    clients[fd] = NULL;
}

/* Sends a small control frame or response; it fits any fresh socket buffer. */
static int send_all(int fd, const char *d, size_t n)
{
    return write(fd, d, n) == (ssize_t)n ? 0 : -1;
}

static int send_text(int fd, const char *msg)
{
    char f[256];
    size_t n = strlen(msg);
    f[0] = (char)0x81;
    f[1] = (char)n;
    memcpy(f + 2, msg, n);
    return send_all(fd, f, n + 2);
}

/* Returns bytes consumed, 0 for more input, -1 to close. */
static long on_http(client *c, int fd)
{
    char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4), *k, key[64], buf[128], resp[256];
    unsigned char sha[SHA_DIGEST_LENGTH];
    char accept[32];
    size_t kl;
    if (!end)
        return 0;
    *end = '\0';
    if (!(k = strcasestr(c->in, "\r\nSec-WebSocket-Key:")))
        return -1;
    k += 20;
    while (*k == ' ')
        k++;
    kl = strcspn(k, "\r");
    if (kl >= sizeof(key))
        return -1;
    memcpy(key, k, kl);
    key[kl] = '\0';
    snprintf(buf, sizeof(buf), "%s%s", key, WS_GUID);
    SHA1((unsigned char *)buf, strlen(buf), sha);
    EVP_EncodeBlock((unsigned char *)accept, sha, SHA_DIGEST_LENGTH);
    snprintf(resp, sizeof(resp),
             "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
             "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
             accept);
    if (send_all(fd, resp, strlen(resp)) < 0)
        return -1;
    c->st = ST_OPEN;
    return end + 4 - c->in;
}

/* One masked client frame; returns bytes consumed, 0 for more, -1 to close. */
static long on_frame(client *c, int fd)
{
    unsigned char *d = (unsigned char *)c->in;
    size_t h = 6, len;
    if (c->in_len < 2)
        return 0;
    len = d[1] & 0x7f;
    if (len == 126) {
        if (c->in_len < 4)
            return 0;
        len = (size_t)d[2] << 8 | d[3];
        h = 8;
    } else if (len == 127) {
        return -1;
    }
    if (c->in_len < h + len)
        return 0;
    for (size_t i = 0; i < len; i++)
        d[h + i] ^= d[h - 4 + (i & 3)];
    if ((d[0] & 0x0f) == 0x8)
        return -1;
    if ((d[0] & 0x0f) == 0x1 && memmem(d + h, len, "\"type\":\"auth\"", 13)) {
        if (send_text(fd, "{\"type\":\"auth_ok\",\"user\":\"bench\"}") < 0)
            return -1;
    } else if ((d[0] & 0x0f) == 0x1 && memmem(d + h, len, "\"type\":\"subscribe\"", 18) &&
               c->st == ST_OPEN) {
        if (send_text(fd, "{\"type\":\"subscribed\",\"id\":1}") < 0)
            return -1;
        c->st = ST_SUBSCRIBED;
        c->sub_pos = n_subs;
        subs[n_subs++] = fd;
    }
    return (long)(h + len);
}

static void on_client(int ep, int fd)
{
    client *c = clients[fd];
    ssize_t n = read(fd, c->in + c->in_len, IN_CAP - c->in_len);
    long used;
    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            drop(ep, fd);
        return;
    }
    c->in_len += (size_t)n;
    while (c->in_len && (used = c->st == ST_HTTP ? on_http(c, fd) : on_frame(c, fd)) != 0) {
        if (used < 0) {
            drop(ep, fd);
            return;
        }
        memmove(c->in, c->in + used, c->in_len - (size_t)used);
        c->in_len -= (size_t)used;
    }
    if (c->in_len == IN_CAP)
        drop(ep, fd);
}

static void on_accept(int ep, int lfd)
{
    int fd, one = 1;
    struct epoll_event ev = {.events = EPOLLIN};
    while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
        client *c = fd < max_fd ? calloc(1, sizeof(*c)) : NULL;
        if (!c) {
            close(fd);
            continue;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c->st = ST_HTTP;
        clients[fd] = c;
        ev.data.fd = fd;
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
}

/* The measured loop: one pre-built frame, one write() per subscriber. */
static void broadcast(int ep, const char *chan, const char *payload, size_t plen)
{
    static char frame[70000];
    char pre[192];
    size_t h, pl, n;
    /* {"data":...} from Redis becomes {"type":"message","channel":C,"data":...},
     * the frame wsgw would send. */
    pl = (size_t)snprintf(pre, sizeof(pre), "{\"type\":\"message\",\"channel\":\"%s\",", chan);
    n = pl + plen - 1;
    if (plen < 2 || payload[0] != '{' || pl >= sizeof(pre) || n > 65535)
        return;
    frame[0] = (char)0x81;
    if (n < 126) {
        frame[1] = (char)n;
        h = 2;
    } else {
        frame[1] = 126;
        frame[2] = (char)(n >> 8);
        frame[3] = (char)n;
        h = 4;
    }
    memcpy(frame + h, pre, pl);
    memcpy(frame + h + pl, payload + 1, plen - 1);
    n += h;
    n_msgs++;
    for (int i = 0; i < n_subs; i++) {
        int fd = subs[i];
        if (write(fd, frame, n) == (ssize_t)n) {
            n_deliveries++;
        } else {
            n_dropped++;
            drop(ep, fd);
            i--; /* the last subscriber moved into this slot */
        }
    }
}

static void on_redis(int ep, int rfd, redisReader *rd, const char *strip)
{
    char buf[65536];
    ssize_t n = read(rfd, buf, sizeof(buf));
    void *reply;
    if (n <= 0) {
        if (n == 0 || errno != EAGAIN) {
            fprintf(stderr, "onewrite: redis connection lost\n");
            stop = 1;
        }
        return;
    }
    redisReaderFeed(rd, buf, (size_t)n);
    while (redisReaderGetReply(rd, &reply) == REDIS_OK && reply) {
        redisReply *r = reply;
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
            strcmp(r->element[0]->str, "message") == 0) {
            const char *chan = r->element[1]->str;
            if (strncmp(chan, strip, strlen(strip)) == 0)
                chan += strlen(strip);
            broadcast(ep, chan, r->element[2]->str, r->element[2]->len);
        }
        freeReplyObject(r);
    }
}

static int listen_on(const struct sockaddr_in *sa)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (fd < 0 || bind(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0 || listen(fd, 4096) < 0)
        return -1;
    return fd;
}

static int redis_subscribe(const struct sockaddr_in *sa, const char *channel)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    char cmd[512];
    int n = snprintf(cmd, sizeof(cmd), "*2\r\n$9\r\nSUBSCRIBE\r\n$%zu\r\n%s\r\n", strlen(channel),
                     channel);
    if (fd < 0 || connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0 ||
        send_all(fd, cmd, (size_t)n) < 0)
        return -1;
    return fd;
}

int main(int argc, char **argv)
{
    struct sockaddr_in la, ra;
    const char *listen_s = NULL, *redis_s = NULL, *channel = "wsgw:chat:bench";
    struct epoll_event ev = {.events = EPOLLIN}, evs[256];
    struct rlimit rl;
    redisReader *rd;
    int lfd, rfd, ep;

    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--listen") == 0)
            listen_s = argv[i + 1];
        else if (strcmp(argv[i], "--redis") == 0)
            redis_s = argv[i + 1];
        else if (strcmp(argv[i], "--channel") == 0)
            channel = argv[i + 1];
    }
    if (!listen_s || !redis_s || parse_addr(listen_s, &la) < 0 || parse_addr(redis_s, &ra) < 0) {
        fprintf(stderr, "usage: onewrite --listen HOST:PORT --redis HOST:PORT [--channel C]\n");
        return 2;
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    max_fd = rl.rlim_cur > 1 << 20 ? 1 << 20 : (int)rl.rlim_cur;
    clients = calloc((size_t)max_fd, sizeof(*clients));
    subs = calloc((size_t)max_fd, sizeof(*subs));
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (!clients || !subs || (lfd = listen_on(&la)) < 0 ||
        (rfd = redis_subscribe(&ra, channel)) < 0) {
        fprintf(stderr, "onewrite: cannot listen on %s or reach redis %s: %s\n", listen_s, redis_s,
                strerror(errno));
        return 2;
    }
    rd = redisReaderCreate();
    ep = epoll_create1(0);
    ev.data.fd = lfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    ev.data.fd = rfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, rfd, &ev);
    fprintf(stderr, "onewrite: listening on %s, channel %s\n", listen_s, channel);
    while (!stop) {
        int n = epoll_wait(ep, evs, 256, 1000);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd)
                on_accept(ep, lfd);
            else if (fd == rfd)
                on_redis(ep, rfd, rd, "wsgw:");
            else if (clients[fd])
                on_client(ep, fd);
        }
    }
    fprintf(stderr,
            "onewrite: %llu messages, %llu deliveries, %llu clients dropped (full socket)\n",
            n_msgs, n_deliveries, n_dropped);
    redisReaderFree(rd);
    return 0;
}
