/*
 * The Redis bus: how gateway processes hear each other, and backends reach
 * them, through Redis PUBLISH/SUBSCRIBE on channels named <prefix><channel>.
 *
 * Two hiredis async connections ("links") on the caller's libuv loop, through
 * pubsub's own adapter (redis_uv.c):
 *   - sub: SUBSCRIBE/UNSUBSCRIBE and the messages. A subscribed Redis
 *     connection can run nothing else, hence the second link.
 *   - cmd: PUBLISH.
 * Each link goes WAITING (a timer: zero at start, then the backoff) ->
 * CONNECTING (TCP, then AUTH/SELECT/PING answered) -> [sub only: SYNCING,
 * every wanted channel subscribed again and confirmed] -> READY. The bus is
 * up while both links are READY; on_state reports each change. A link that
 * drops or fails goes back to WAITING with capped exponential backoff and
 * full jitter, forever; stop() moves both to CLOSED.
 *
 * The bus keeps the set of channels the gateway wants (the desired set), not
 * hiredis: after any reconnect the sub link subscribes that set again, a
 * subscribe while the link is down is only remembered, an unsubscribe while
 * down only forgotten. Messages on a channel no longer in the set (sent
 * before Redis processed our UNSUBSCRIBE) are dropped here.
 *
 * hiredis 0.14.1 facts this file is built on (shared/platform-notes.md):
 *   - a failed connect calls only the connect callback, and the context is
 *     freed right after it returns: every hiredis callback first detaches
 *     the context from its link (link_lost), and reconnects come from a timer;
 *   - the connect callback waits for a first write: the handshake is sent at
 *     once, and its PING reply, not the connect callback, marks the link
 *     usable; the timer that bounds the handshake is also the only connect
 *     timeout hiredis gets;
 *   - when a context dies, every pending callback runs with reply == NULL,
 *     subscription callbacks included: NULL means "this context is gone";
 *   - redisAsyncFree inside a reply callback is deferred by hiredis until
 *     that callback returns (REDIS_IN_CALLBACK), so stop() may be called
 *     from any of our callbacks; onConnect/onDisconnect run outside that
 *     protection, which is why they never call out before detaching.
 *   - one reply callback serves the whole sub link: hiredis routes pub/sub
 *     replies by channel name through its own dict (and ignores the callback
 *     given to UNSUBSCRIBE), refuses UNSUBSCRIBE once it believes nothing is
 *     subscribed (harmless: then nothing is), and keeps repeated
 *     subscribe/unsubscribe of one channel straight with a pending counter
 *     (checked against redis-server in tests/unit/test_redis_bus.c).
 *
 * Bounds: at most MAX_OUTSTANDING publishes, MAX_OUTSTANDING_BYTES of
 * payload, await their reply (beyond either: PS_EUNAVAILABLE at once); this
 * also bounds hiredis's output buffer, which holds nothing else of size.
 * Each payload is at most max_payload bytes (PS_ETOOBIG).
 *
 * Liveness: TCP keepalive (hiredis's, 15 s) catches dead peers and cut
 * networks on both links. A Redis that stays connected but stops answering
 * (a stopped process, an endless script) would leave publishes pending
 * forever, so the cmd link PINGs every connect timeout while READY and is
 * failed when a PING is still unanswered at the next tick. The sub link
 * cannot PING in subscribed mode (hiredis 0.14 misroutes the reply), but a
 * stalled Redis stalls cmd as well and takes the bus down.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "bus_internal.h"
#include "redis_uv.h"

#define MAX_OUTSTANDING 100000
#define MAX_OUTSTANDING_BYTES (64u * 1024u * 1024u)
#define PREFIX_MAX 64
#define DEFAULT_PREFIX "wsgw:"
#define DEFAULT_CONNECT_TIMEOUT_MS 2000
#define DEFAULT_BACKOFF_MIN_MS 100
#define DEFAULT_BACKOFF_MAX_MS 5000

enum link_state {
    LINK_WAITING,    /* no context; the timer will connect */
    LINK_CONNECTING, /* context up to the PING reply; the timer is the timeout */
    LINK_SYNCING,    /* sub only: resubscribing; the timer is still the timeout */
    LINK_READY,
    LINK_CLOSED, /* stopped */
};

typedef struct redis_bus redis_bus;

typedef struct rlink {
    redis_bus *bus;
    const char *name; /* "sub" or "cmd", for error messages */
    int is_sub;
    enum link_state state;
    redisAsyncContext *ac; /* NULL unless CONNECTING/SYNCING/READY */
    unsigned attempt;      /* failures since the last READY: the backoff exponent */
    unsigned handshake_left;
    size_t resub_left; /* SUBSCRIBE confirmations still due while SYNCING */
    int ping_pending;  /* cmd: a heartbeat PING awaits its reply */
    uv_timer_t timer;  /* backoff delay, connect timeout, or cmd heartbeat */
} rlink;

/* One PUBLISH awaiting its reply. hiredis holds it as privdata and hands it
 * back exactly once (with the reply, or NULL when the context dies); the
 * bus lists it so that stop() can complete it first. */
typedef struct pub_req {
    struct pub_req *prev, *next;
    redis_bus *bus;
    ps_publish_cb *cb;
    void *udata;
    size_t len; /* payload bytes, for the byte bound */
    int done;   /* outcome reported; now only waiting for hiredis to let go */
} pub_req;

struct redis_bus {
    ps_bus base;
    uv_loop_t *loop;
    char ip[INET6_ADDRSTRLEN];
    ps_redis_url url;
    char prefix[PREFIX_MAX + 1];
    size_t prefix_len;
    uint32_t connect_timeout_ms, backoff_min_ms, backoff_max_ms;
    size_t max_payload;
    rlink sub, cmd;
    ps__chanset *channels; /* the desired set */
    pub_req *pending;
    size_t npending, pending_bytes;
    int up, ever_up;
    int stopping;
    int handles_open;    /* the two link timers until their close callbacks */
    int destroy_pending; /* destroy came before those */
    uint64_t rng;
    char errstr[256];
};

static void link_connect(rlink *l);

/* ------------------------------------------------------------ small helpers */

static void set_error(rlink *l, const char *fmt, ...)
{
    redis_bus *b = l->bus;
    int n = snprintf(b->errstr, sizeof(b->errstr), "redis %s link: ", l->name);
    va_list ap;

    if (n < 0 || (size_t)n >= sizeof(b->errstr))
        return;
    va_start(ap, fmt);
    vsnprintf(b->errstr + n, sizeof(b->errstr) - (size_t)n, fmt, ap);
    va_end(ap);
}

/* xorshift64*: jitter needs spread, not secrecy. */
static uint64_t next_random(redis_bus *b)
{
    b->rng ^= b->rng >> 12;
    b->rng ^= b->rng << 25;
    b->rng ^= b->rng >> 27;
    return b->rng * 2685821657736338717ull;
}

/* Full jitter: uniform in [0, min(max, min * 2^attempt)]. Spreads the
 * reconnects of many gateway processes after a Redis restart. */
static uint64_t backoff_ms(redis_bus *b, unsigned attempt)
{
    uint64_t cap = b->backoff_min_ms;

    while (attempt-- > 0 && cap < b->backoff_max_ms)
        cap *= 2;
    if (cap > b->backoff_max_ms)
        cap = b->backoff_max_ms;
    return next_random(b) % (cap + 1);
}

/* ------------------------------------------------------------ bus state */

/* Recomputes up/down and tells on_state of a change. Called last in every
 * path that changes a link, since the callback may stop the bus. */
static void update_state(redis_bus *b)
{
    int up = b->sub.state == LINK_READY && b->cmd.state == LINK_READY;

    if (b->stopping || up == b->up)
        return;
    b->up = up;
    if (up) {
        if (b->ever_up)
            b->base.stats.reconnects++;
        b->ever_up = 1;
        b->errstr[0] = '\0';
    }
    if (b->base.cb.on_state)
        b->base.cb.on_state(b->base.cb.udata, up);
}

static void on_link_timer(uv_timer_t *t);

static void link_ready(rlink *l)
{
    uint32_t every = l->bus->connect_timeout_ms;

    l->state = LINK_READY;
    l->attempt = 0;
    l->ping_pending = 0;
    if (l->is_sub)
        uv_timer_stop(&l->timer);
    else
        uv_timer_start(&l->timer, on_link_timer, every, every);
    update_state(l->bus);
}

/* Schedules the next connect of a link that has no context. */
static void link_retry(rlink *l)
{
    redis_bus *b = l->bus;
    uint64_t delay;

    if (b->stopping)
        return;
    delay = backoff_ms(b, l->attempt);
    if (l->attempt < 32)
        l->attempt++;
    l->state = LINK_WAITING;
    uv_timer_start(&l->timer, on_link_timer, delay, 0);
}

/* hiredis is freeing ac (a callback saw it die): let go of it, and only
 * then tell anyone, so that nothing called from here can touch it. */
static void link_lost(rlink *l, const redisAsyncContext *ac)
{
    if (ac != l->ac)
        return;
    if (ac->c.err)
        set_error(l, "%s", ac->c.errstr);
    else
        set_error(l, "connection closed");
    l->ac = NULL;
    link_retry(l);
    update_state(l->bus);
}

/* We give up on the link's context (timeout, refused handshake, silence).
 * The bus is marked down before the context goes, so that publish
 * callbacks failed by the free already see it down. */
static void link_fail(rlink *l)
{
    redisAsyncContext *ac = l->ac;

    l->ac = NULL;
    link_retry(l);
    update_state(l->bus);
    /* Runs the context's pending callbacks with NULL (at once, or when the
     * current hiredis callback returns); they find it detached. */
    if (ac)
        redisAsyncFree(ac);
}

/* ------------------------------------------------------------ sub link */

static int send_sub(rlink *l, const char *verb, const char *channel);

static void resubscribe_one(void *arg, const char *channel)
{
    rlink *l = arg;

    if (send_sub(l, "SUBSCRIBE", channel) == 0)
        l->resub_left++;
}

/* After the handshake: subscribe the whole desired set again, and be READY
 * once Redis has confirmed each of them. Redis answers in order, so the
 * first resub_left confirmations are these. */
static void start_sync(rlink *l)
{
    l->state = LINK_SYNCING;
    l->resub_left = 0;
    ps__chanset_foreach(l->bus->channels, resubscribe_one, l);
    if (l->resub_left == 0)
        link_ready(l);
}

/* One more resubscription confirmed. The connect timeout restarts with each
 * one: it is there to catch a Redis that stopped answering, and a large set
 * may take longer than one timeout to confirm in full. */
static void sync_progress(rlink *l)
{
    if (--l->resub_left == 0)
        link_ready(l);
    else
        uv_timer_start(&l->timer, on_link_timer, l->bus->connect_timeout_ms, 0);
}

static void deliver(rlink *l, const redisReply *r)
{
    redis_bus *b = l->bus;
    const redisReply *ch = r->element[1], *payload = r->element[2];
    const char *name;
    size_t len;

    if (ch->type != REDIS_REPLY_STRING || payload->type != REDIS_REPLY_STRING)
        return;
    if ((size_t)ch->len <= b->prefix_len || memcmp(ch->str, b->prefix, b->prefix_len) != 0)
        return;
    /* hiredis NUL-terminates string replies: name is a C string. */
    name = ch->str + b->prefix_len;
    len = (size_t)ch->len - b->prefix_len;
    if (!ps__chanset_has(b->channels, name, len))
        return;
    b->base.stats.messages_in++;
    b->base.cb.on_message(b->base.cb.udata, name, payload->str, (size_t)payload->len);
}

/* The one reply callback of the sub link: subscribe and unsubscribe
 * confirmations and messages, all ["kind", channel, x]. */
static void on_sub_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    rlink *l = priv;
    const redisReply *r = reply;
    const char *kind;

    if (ac != l->ac || l->bus->stopping)
        return;
    if (!r) {
        link_lost(l, ac);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return;
    kind = r->element[0]->str;
    if (strcasecmp(kind, "message") == 0)
        deliver(l, r);
    else if (strcasecmp(kind, "subscribe") == 0 && l->state == LINK_SYNCING)
        sync_progress(l);
}

/* SUBSCRIBE or UNSUBSCRIBE <prefix><channel> on the sub link. hiredis
 * refuses UNSUBSCRIBE when it believes nothing is subscribed; then nothing
 * is, and -1 is only informative. */
static int send_sub(rlink *l, const char *verb, const char *channel)
{
    redis_bus *b = l->bus;
    int rc = redisAsyncCommand(l->ac, on_sub_reply, l, "%s %b%b", verb, b->prefix, b->prefix_len,
                               channel, strlen(channel));

    return rc == REDIS_OK ? 0 : -1;
}

/* Commands can go out on the sub link (after the handshake). */
static int sub_live(const rlink *l)
{
    return l->ac && (l->state == LINK_SYNCING || l->state == LINK_READY);
}

/* ------------------------------------------------------------ handshake */

static void on_handshake_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    rlink *l = priv;
    const redisReply *r = reply;

    if (ac != l->ac || l->bus->stopping)
        return;
    if (!r) {
        link_lost(l, ac);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        set_error(l, "%s", r->str);
        link_fail(l);
        return;
    }
    if (--l->handshake_left > 0)
        return;
    if (l->is_sub)
        start_sync(l);
    else
        link_ready(l);
}

static int send_handshake_cmd(rlink *l, int argc, const char **argv)
{
    size_t lens[3];
    int i;

    for (i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    if (redisAsyncCommandArgv(l->ac, on_handshake_reply, l, argc, argv, lens) != REDIS_OK)
        return -1;
    l->handshake_left++;
    return 0;
}

/* AUTH and SELECT when configured, then PING: its reply says the link
 * works. Sent at once, since hiredis reports the connect only after a first
 * write. SELECT only on cmd: pub/sub ignores the db. */
static int send_handshake(rlink *l)
{
    const ps_redis_url *u = &l->bus->url;
    char db[16];
    const char *argv[3];
    int rc = 0;

    l->handshake_left = 0;
    if (u->password[0] && u->username[0]) {
        argv[0] = "AUTH", argv[1] = u->username, argv[2] = u->password;
        rc |= send_handshake_cmd(l, 3, argv);
    } else if (u->password[0]) {
        argv[0] = "AUTH", argv[1] = u->password;
        rc |= send_handshake_cmd(l, 2, argv);
    }
    if (u->db != 0 && !l->is_sub) {
        snprintf(db, sizeof(db), "%d", u->db);
        argv[0] = "SELECT", argv[1] = db;
        rc |= send_handshake_cmd(l, 2, argv);
    }
    argv[0] = "PING";
    rc |= send_handshake_cmd(l, 1, argv);
    return rc;
}

/* ------------------------------------------------------------ connecting */

static void on_connect(const redisAsyncContext *ac, int status)
{
    /* Success is seen through the PING reply; a failure means hiredis frees
     * ac right after this returns. */
    if (status != REDIS_OK)
        link_lost(ac->data, ac);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    link_lost(ac->data, ac);
}

/* A fresh context for l, attached and with the handshake queued; NULL
 * (error recorded) if any step failed. */
static redisAsyncContext *open_context(rlink *l)
{
    redis_bus *b = l->bus;
    redisAsyncContext *ac = redisAsyncConnect(b->ip, b->url.port);

    if (!ac) {
        set_error(l, "out of memory");
        return NULL;
    }
    if (ac->err || ps__redis_uv_attach(ac, b->loop) != 0) {
        set_error(l, "%s", ac->err ? ac->errstr : "cannot watch the socket");
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = l;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    redisEnableKeepAlive(&ac->c);
    return ac;
}

static void link_connect(rlink *l)
{
    redisAsyncContext *ac = open_context(l);

    if (!ac) {
        link_retry(l);
        return;
    }
    l->ac = ac;
    l->state = LINK_CONNECTING;
    if (send_handshake(l) < 0) {
        set_error(l, "cannot queue the handshake");
        link_fail(l);
        return;
    }
    uv_timer_start(&l->timer, on_link_timer, l->bus->connect_timeout_ms, 0);
}

static void on_ping_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    rlink *l = priv;

    if (ac != l->ac || l->bus->stopping)
        return;
    if (!reply)
        link_lost(l, ac);
    else
        l->ping_pending = 0;
}

/* The cmd link's heartbeat tick: the previous PING must have been answered. */
static void heartbeat(rlink *l)
{
    if (l->ping_pending) {
        set_error(l, "no answer to PING within %u ms", (unsigned)l->bus->connect_timeout_ms);
        link_fail(l);
    } else if (redisAsyncCommand(l->ac, on_ping_reply, l, "PING") == REDIS_OK) {
        l->ping_pending = 1;
    }
}

static void on_link_timer(uv_timer_t *t)
{
    rlink *l = t->data;

    if (l->state == LINK_WAITING) {
        link_connect(l);
    } else if (l->state == LINK_CONNECTING || l->state == LINK_SYNCING) {
        set_error(l, "connect timeout after %u ms", (unsigned)l->bus->connect_timeout_ms);
        link_fail(l);
    } else if (l->state == LINK_READY && !l->is_sub) {
        heartbeat(l);
    }
}

/* ------------------------------------------------------------ publishing */

static void complete(pub_req *req, int status)
{
    redis_bus *b = req->bus;

    if (req->done)
        return;
    req->done = 1;
    if (req->prev)
        req->prev->next = req->next;
    else
        b->pending = req->next;
    if (req->next)
        req->next->prev = req->prev;
    b->npending--;
    b->pending_bytes -= req->len;
    if (status == PS_OK)
        b->base.stats.publishes++;
    else
        b->base.stats.publish_errors++;
    if (req->cb)
        req->cb(req->udata, status);
}

static void on_publish_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    pub_req *req = priv;
    redis_bus *b = req->bus;
    const redisReply *r = reply;
    int status = PS_OK;

    if (!r) {
        /* The link died with this publish in flight: say so first. */
        link_lost(&b->cmd, ac);
        status = b->stopping ? PS_ECLOSED : PS_EUNAVAILABLE;
    } else if (r->type == REDIS_REPLY_ERROR) {
        set_error(&b->cmd, "PUBLISH: %s", r->str);
        status = PS_EUNAVAILABLE;
    }
    complete(req, status);
    free(req);
}

static int redis_publish(ps_bus *base, const char *channel, const char *payload, size_t len,
                         ps_publish_cb *cb, void *udata)
{
    redis_bus *b = (redis_bus *)base;
    pub_req *req;

    if (b->stopping)
        return PS_ECLOSED;
    if (len > b->max_payload)
        return PS_ETOOBIG;
    if (!b->up || !b->cmd.ac || b->npending >= MAX_OUTSTANDING ||
        len > MAX_OUTSTANDING_BYTES - b->pending_bytes)
        return PS_EUNAVAILABLE;
    req = calloc(1, sizeof(*req));
    if (!req)
        return PS_ENOMEM;
    req->bus = b;
    req->cb = cb;
    req->udata = udata;
    req->len = len;
    /* hiredis copies the payload into its output buffer here. */
    if (redisAsyncCommand(b->cmd.ac, on_publish_reply, req, "PUBLISH %b%b %b", b->prefix,
                          b->prefix_len, channel, strlen(channel), payload, len) != REDIS_OK) {
        free(req);
        return PS_EUNAVAILABLE;
    }
    req->next = b->pending;
    if (b->pending)
        b->pending->prev = req;
    b->pending = req;
    b->npending++;
    b->pending_bytes += len;
    return PS_OK;
}

/* ------------------------------------------------------------ subscriptions */

static int redis_subscribe(ps_bus *base, const char *channel)
{
    redis_bus *b = (redis_bus *)base;
    int rc;

    if (b->stopping)
        return PS_ECLOSED;
    rc = ps__chanset_add(&b->channels, channel);
    if (rc <= 0)
        return rc; /* PS_OK when already wanted, or PS_ENOMEM */
    /* Otherwise the next sync subscribes it. A failed send means the
     * context is going away: the next sync covers that too. */
    if (sub_live(&b->sub))
        send_sub(&b->sub, "SUBSCRIBE", channel);
    return PS_OK;
}

static int redis_unsubscribe(ps_bus *base, const char *channel)
{
    redis_bus *b = (redis_bus *)base;

    if (b->stopping)
        return PS_ECLOSED;
    if (!ps__chanset_remove(&b->channels, channel))
        return PS_ENOENT;
    if (sub_live(&b->sub))
        send_sub(&b->sub, "UNSUBSCRIBE", channel);
    return PS_OK;
}

/* ------------------------------------------------------------ life cycle */

static int redis_is_up(const ps_bus *base)
{
    return ((const redis_bus *)base)->up;
}

static const char *redis_last_error(const ps_bus *base)
{
    return ((const redis_bus *)base)->errstr;
}

static void free_bus(redis_bus *b)
{
    ps__chanset_clear(&b->channels);
    free(b);
}

static void on_timer_closed(uv_handle_t *h)
{
    redis_bus *b = ((rlink *)h->data)->bus;

    if (--b->handles_open == 0 && b->destroy_pending)
        free_bus(b);
}

static void close_link(rlink *l)
{
    redisAsyncContext *ac = l->ac;

    l->ac = NULL;
    l->state = LINK_CLOSED;
    uv_close((uv_handle_t *)&l->timer, on_timer_closed);
    if (ac)
        redisAsyncFree(ac);
}

static void redis_stop(ps_bus *base)
{
    redis_bus *b = (redis_bus *)base;

    if (b->stopping)
        return;
    b->stopping = 1;
    b->up = 0;
    /* Publish callbacks first, while nothing is torn down: they may call
     * into the bus (which now answers PS_ECLOSED). */
    while (b->pending)
        complete(b->pending, PS_ECLOSED);
    close_link(&b->sub);
    close_link(&b->cmd);
}

static void redis_destroy(ps_bus *base)
{
    redis_bus *b = (redis_bus *)base;

    redis_stop(base);
    if (b->handles_open == 0)
        free_bus(b);
    else
        b->destroy_pending = 1;
}

static const ps_bus_ops redis_ops = {
    .subscribe = redis_subscribe,
    .unsubscribe = redis_unsubscribe,
    .publish = redis_publish,
    .is_up = redis_is_up,
    .stop = redis_stop,
    .destroy = redis_destroy,
    .last_error = redis_last_error,
};

/* host -> numeric address, once, at startup (getaddrinfo blocks). IPv4 is
 * preferred when a name has both, as "localhost" often does while Redis
 * may listen on 127.0.0.1 only. */
static int resolve(const char *host, char *ip, size_t iplen)
{
    struct addrinfo hints, *res, *ai, *pick = NULL;
    const void *addr;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, NULL, &hints, &res) != 0)
        return -1;
    for (ai = res; ai; ai = ai->ai_next)
        if (ai->ai_family == AF_INET || (ai->ai_family == AF_INET6 && !pick))
            pick = ai;
    if (pick && pick->ai_family == AF_INET)
        addr = &((struct sockaddr_in *)pick->ai_addr)->sin_addr;
    else if (pick)
        addr = &((struct sockaddr_in6 *)pick->ai_addr)->sin6_addr;
    if (!pick || !inet_ntop(pick->ai_family, addr, ip, (socklen_t)iplen)) {
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    return 0;
}

static int take_options(redis_bus *b, const ps_redis_opts *o)
{
    const char *prefix = o->prefix ? o->prefix : DEFAULT_PREFIX;
    size_t i;

    b->prefix_len = strlen(prefix);
    if (b->prefix_len > PREFIX_MAX || !o->url.host[0] || o->url.port < 1 || o->url.port > 65535 ||
        o->url.db < 0)
        return -1;
    for (i = 0; i < b->prefix_len; i++)
        if ((unsigned char)prefix[i] < 0x21 || (unsigned char)prefix[i] > 0x7e)
            return -1;
    memcpy(b->prefix, prefix, b->prefix_len + 1);
    b->url = o->url;
    b->connect_timeout_ms =
        o->connect_timeout_ms ? o->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
    b->backoff_min_ms = o->backoff_min_ms ? o->backoff_min_ms : DEFAULT_BACKOFF_MIN_MS;
    b->backoff_max_ms = o->backoff_max_ms ? o->backoff_max_ms : DEFAULT_BACKOFF_MAX_MS;
    if (b->backoff_max_ms < b->backoff_min_ms)
        b->backoff_max_ms = b->backoff_min_ms;
    b->max_payload = o->max_payload ? o->max_payload : PS__DEFAULT_MAX_PAYLOAD;
    /* A payload over the in-flight bound could never be sent. */
    if (b->max_payload > MAX_OUTSTANDING_BYTES)
        return -1;
    return resolve(o->url.host, b->ip, sizeof(b->ip));
}

/* Both links start WAITING with a zero delay: the first connect happens on
 * the loop, like every later one, and never calls back from here. */
static void link_init(redis_bus *b, rlink *l, const char *name, int is_sub)
{
    l->bus = b;
    l->name = name;
    l->is_sub = is_sub;
    l->state = LINK_WAITING;
    uv_timer_init(b->loop, &l->timer);
    l->timer.data = l;
    uv_timer_start(&l->timer, on_link_timer, 0, 0);
    b->handles_open++;
}

ps_bus *ps_redis_bus_new(uv_loop_t *loop, const ps_redis_opts *opts, const ps_bus_callbacks *cb)
{
    redis_bus *b;

    if (!loop || !opts || !cb || !cb->on_message)
        return NULL;
    b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->base.ops = &redis_ops;
    b->base.cb = *cb;
    b->loop = loop;
    if (take_options(b, opts) < 0)
        goto err;
    b->rng = (uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)b) | 1;
    link_init(b, &b->sub, "sub", 1);
    link_init(b, &b->cmd, "cmd", 0);
    return &b->base;
err:
    free(b);
    return NULL;
}
