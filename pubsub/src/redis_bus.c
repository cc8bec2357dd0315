/*
 * The Redis bus: how gateway processes hear each other, and backends reach
 * them, through Redis PUBLISH/SUBSCRIBE on channels named <prefix><channel>.
 *
 * Two hiredis async connections ("links") on the caller's libuv loop, through
 * pubsub's own adapter (redis_uv.c):
 *   - sub: SUBSCRIBE/UNSUBSCRIBE and the messages. A subscribed Redis
 *     connection can run nothing else, hence the second link.
 *   - cmd: PUBLISH, and the history scripts (redis_scripts.c) with EVALSHA;
 *     a batch publish with history is one EVALSHA, and arrives on sub as
 *     one message holding an array of envelopes, split here (deliver).
 *
 * Group commit: publishes and history reads are checked when asked for
 * (every error a caller hears at once comes then) and queued; a libuv
 * prepare handle sends the queue in order at the end of the loop turn,
 * just before the loop waits for I/O, unless commands sent earlier still
 * await their replies: then the queue waits for the last of those, and
 * goes at the end of the turn that brought it (one flush in flight at a
 * time). An idle bus thus sends within the turn, and a busy one gathers
 * what arrives during a Redis round trip into the next flush, which is
 * what makes runs (below) long under load; nothing waits longer than one
 * round trip more. Each run of consecutive history publishes (concurrent
 * HTTP requests, WebSocket clients of one chat channel, many jobs) goes as
 * ONE publish script, in groups of one channel and policy each: a group
 * is stored and published as an explicit batch would be, and the
 * script's fixed cost (the EVALSHA and its round trip) is paid once per
 * run, not per message. Each caller still gets its own callback, in issue
 * order, with its own first offset and its group's own outcome. Keeping
 * one ordered queue for everything, plain publishes and reads included,
 * keeps the order the link had when each command went out at once: across
 * channels, and a read after a publish sees it.
 *
 * Each link goes WAITING (a timer: zero at start, then the backoff) ->
 * CONNECTING (TCP, then AUTH/SELECT/[cmd only: SCRIPT LOAD]/PING answered)
 * -> [sub only: SYNCING, every wanted channel subscribed again and
 * confirmed] -> READY. The bus is up while both links are READY; on_state
 * reports each change. A link that drops or fails goes back to WAITING with
 * capped exponential backoff and full jitter, forever; stop() moves both to
 * CLOSED.
 *
 * The bus keeps the set of channels the gateway wants (the desired set), not
 * hiredis: after any reconnect the sub link subscribes that set again, a
 * subscribe while the link is down is only remembered, an unsubscribe while
 * down only forgotten. Messages on a channel no longer in the set (sent
 * before Redis processed our UNSUBSCRIBE) are dropped here.
 *
 * on_subscribed tells the gateway that a channel's messages now all reach
 * it, which is when its history read may start (a read that Redis runs after
 * the SUBSCRIBE, plus what arrives live, misses nothing). So it speaks only
 * for the confirmation of the last SUBSCRIBE/UNSUBSCRIBE sent for a channel
 * on the current sub context (counted in `inflight`: an earlier confirmation
 * is about to be undone by an UNSUBSCRIBE already on its way), and only
 * while the cmd link is READY, so that the read it starts is accepted: a
 * confirmation that arrives with cmd down waits in `unreported` until cmd
 * is READY again, and is forgotten if the sub context goes first.
 *
 * Scripts: SCRIPT LOAD runs in the cmd handshake, which keeps the SHA1s (the
 * scripts' text never changes, so neither do they). A script command that
 * meets NOSCRIPT (SCRIPT FLUSH, a Redis restarted between handshake and
 * command, a failover) loads the script again and is resent once, the same
 * request riding on the new command so that the bookkeeping never sees it
 * twice.
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
 * Bounds: at most MAX_OUTSTANDING publishes and history reads together,
 * MAX_OUTSTANDING_BYTES of payload, are queued or await their reply
 * (beyond either: PS_EUNAVAILABLE at once); this also bounds hiredis's
 * output buffer, which holds nothing else of size, the copies queued
 * history publishes keep until they are sent, and the copies script
 * commands keep for their one resend. Each payload is at most max_payload
 * bytes (PS_ETOOBIG). The size of a history reply is bounded by the
 * caller's policy (size x payload), not here.
 *
 * Liveness: TCP keepalive (hiredis's, 15 s) catches dead peers and cut
 * networks on both links. A Redis that stays connected but stops answering
 * (a stopped process, an endless script) would leave publishes pending
 * forever, so the cmd link PINGs every connect timeout while READY and is
 * failed when a PING is still unanswered at the next tick. The sub link is
 * probed at the same pace, because it can wedge alone (a proxy or NAT that
 * dropped only that flow, a Redis that killed or paused just that client):
 * then messages stop while every publish still succeeds, and nothing else
 * would notice. The probe is SUBSCRIBE + UNSUBSCRIBE of PROBE_CHANNEL, not
 * PING: in subscribed mode hiredis 0.14 parks a PING's callback on a list
 * that the ["pong", ""] reply never pops (the callback would run only at
 * disconnect, one more kept per probe), while a SUBSCRIBE confirmation is
 * routed by channel name to on_sub_reply. The channel has no prefix and no
 * ':', so it is no gateway channel, and it exists only for a round trip.
 *
 * Both links name themselves (CLIENT SETNAME wsgw-sub-<pid>, wsgw-cmd-<pid>)
 * so that an operator, or a test, can tell them apart in CLIENT LIST.
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
#include "redis_scripts.h"
#include "redis_uv.h"

#define MAX_OUTSTANDING 100000
#define MAX_OUTSTANDING_BYTES (64u * 1024u * 1024u)
#define PREFIX_MAX 64
#define DEFAULT_PREFIX "wsgw:"
#define DEFAULT_CONNECT_TIMEOUT_MS 2000
#define DEFAULT_BACKOFF_MIN_MS 100
#define DEFAULT_BACKOFF_MAX_MS 5000
#define PROBE_CHANNEL "__wsgw_probe__"
/* Channels whose TTL refresh the bus remembers (ttl_refresh.c), about 100
 * bytes each; beyond, the least recently refreshed cost a refresh more. */
#define REFRESH_MAX 65536

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
    int ping_pending;  /* a heartbeat PING (cmd) or probe (sub) awaits its reply */
    uv_timer_t timer;  /* backoff delay, connect timeout, or heartbeat */
} rlink;

/* One caller's share of a publish command: count messages, from message
 * `first` of its group on (their offsets follow the first one's). */
typedef struct member {
    ps_publish_cb *cb;
    void *udata;
    size_t count, first;
    size_t group; /* a publish script's: which group of the command */
} member;

/* One group of a publish script command (consecutive messages to one
 * channel under one policy): the channel and ttl ps__refresh_done records
 * when the group refreshes TTLs (a malloc'd copy, else NULL), and, once
 * Redis answered, the group's own outcome. */
typedef struct group {
    char *refreshes;
    uint32_t ttl_s;
    int status;
    ps_publish_result res;
} group;

/* One publish or history read the bus owes an outcome, from the call that
 * asked for it until complete(). It waits in the queue until the end of
 * the loop turn (flush), then rides on one command on the cmd link: a
 * PUBLISH, a publish script or a history script. A run of history
 * publishes (one channel or several) becomes one publish script: the
 * first req of the run then carries every caller as a member, and the
 * others go.
 * hiredis holds a sent req as privdata and hands it back exactly once per
 * command sent (with the reply, or NULL when the context dies); the bus
 * lists every req in `pending` so that stop() can complete it first. */
typedef struct req {
    struct req *prev, *next; /* pending: every req not yet completed */
    struct req *qnext;       /* queue, flushing or a run: not sent yet */
    redis_bus *bus;
    int script;             /* enum ps__script, or -1: a plain PUBLISH */
    ps_history_cb *hist_cb; /* set: a history read */
    void *udata;            /* history reads */
    member one;             /* publishes: the caller, or the first of a run */
    member *many;           /* a run of several callers: malloc'd, in issue order */
    size_t nmembers, reported;
    /* While its members are told: the outcome, for finish_reporting. */
    int outcome;
    const ps_publish_result *outcome_res;
    size_t len;   /* payload bytes, for the byte bound */
    size_t count; /* publishes: messages in the command (a batch has several) */
    char *cmd;    /* the command to send; scripts keep it for the resend */
    size_t cmd_len;
    /* A history publish until it is sent: its copy of the messages (text
     * and channel in `data`), from which its run's command is built. */
    char *data;
    const char *channel;
    ps_history_policy hist;
    ps_payload msg1, *msgs; /* msgs is &msg1 for one message */
    ps__parts parts;
    /* A publish script's groups, in command order (malloc'd), when it was
     * built (for ps__refresh_done), and whether their outcomes are in. */
    group *groups;
    size_t ngroups;
    uint64_t built_ms;
    int answered;
    int resent; /* after NOSCRIPT, once */
    int done;   /* outcome reported; now only waiting for hiredis to let go */
} req;

/* A script the cmd link loads; its SHA1 as Redis reported it. */
typedef struct script_slot {
    redis_bus *bus;
    enum ps__script which;
    char sha[41];
} script_slot;

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
    ps__chanset *channels;   /* the desired set */
    ps__chanset *inflight;   /* sub context: SUBSCRIBE/UNSUBSCRIBE unconfirmed, per channel */
    ps__chanset *unreported; /* confirmed while cmd was not READY */
    script_slot scripts[PS__SCRIPTS];
    req *pending;
    size_t npending, pending_bytes; /* reqs not yet completed, sent or not */
    req *queue, *queue_tail;        /* issued this loop turn, in order */
    req *flushing;                  /* taken from the queue, not yet sent */
    size_t unanswered;              /* reqs sent whose reply hiredis still owes */
    req *reporting;                 /* whose members complete() is telling */
    uv_prepare_t flusher;           /* sends the queue at the end of the turn */
    int up, ever_up;
    int stopping;
    int handles_open;    /* link timers and flusher until their close callbacks */
    int destroy_pending; /* destroy came before those */
    uint64_t rng;
    ps__rng epochs;
    ps__refresh refreshed; /* when this process last refreshed which TTLs */
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

static void report_unreported(redis_bus *b);

static void link_ready(rlink *l)
{
    uint32_t every = l->bus->connect_timeout_ms;

    l->state = LINK_READY;
    l->attempt = 0;
    l->ping_pending = 0;
    uv_timer_start(&l->timer, on_link_timer, every, every);
    update_state(l->bus);
    if (!l->is_sub)
        report_unreported(l->bus);
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

/* The link no longer has a context. What the sub link counted about its
 * context's subscriptions goes with it. */
static void link_detach(rlink *l)
{
    l->ac = NULL;
    if (l->is_sub) {
        ps__chanset_clear(&l->bus->inflight);
        ps__chanset_clear(&l->bus->unreported);
    }
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
    link_detach(l);
    link_retry(l);
    update_state(l->bus);
}

/* We give up on the link's context (timeout, refused handshake, silence).
 * The bus is marked down before the context goes, so that publish
 * callbacks failed by the free already see it down. */
static void link_fail(rlink *l)
{
    redisAsyncContext *ac = l->ac;

    link_detach(l);
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

/* Our channel name in a Redis channel name (<prefix><channel>), or NULL.
 * hiredis NUL-terminates string replies: the name is a C string. */
static const char *unprefixed(const redis_bus *b, const redisReply *ch)
{
    if (ch->type != REDIS_REPLY_STRING || (size_t)ch->len <= b->prefix_len ||
        memcmp(ch->str, b->prefix, b->prefix_len) != 0)
        return NULL;
    return ch->str + b->prefix_len;
}

static int wanted(const redis_bus *b, const char *name)
{
    return ps__chanset_has(b->channels, name, strlen(name));
}

/* Hands each envelope of a message (one, or a batch's array) to
 * on_message, in order. on_message may unsubscribe the channel or stop the
 * bus: what is left of a batch then goes too, as a message arriving after
 * that would. */
static void deliver(rlink *l, const redisReply *r)
{
    redis_bus *b = l->bus;
    const redisReply *payload = r->element[2];
    const char *name = unprefixed(b, r->element[1]);
    ps__splitter sp;
    const char *text;
    size_t len;

    if (!name || payload->type != REDIS_REPLY_STRING)
        return;
    ps__envelopes_begin(&sp, payload->str, (size_t)payload->len);
    while (!b->stopping && wanted(b, name) && ps__envelopes_next(&sp, &text, &len)) {
        b->base.stats.messages_in++;
        b->base.cb.on_message(b->base.cb.udata, name, text, len);
    }
    ps__envelopes_end(&sp);
}

/* Tells on_subscribed, or keeps the news until the cmd link is READY. Should
 * remembering fail (OOM), telling at once is the lesser harm: the read the
 * gateway starts fails with PS_EUNAVAILABLE, which it handles anyway. */
static void report_subscribed(redis_bus *b, const char *name)
{
    if (!b->base.cb.on_subscribed)
        return;
    if (b->cmd.state != LINK_READY && ps__chanset_add(&b->unreported, name) >= 0)
        return;
    b->base.cb.on_subscribed(b->base.cb.udata, name);
}

static void report_unreported(redis_bus *b)
{
    char name[PS__CHANNEL_MAX + 1];

    while (!b->stopping && b->cmd.state == LINK_READY && ps__chanset_pop(&b->unreported, name))
        if (wanted(b, name))
            b->base.cb.on_subscribed(b->base.cb.udata, name);
}

/* A SUBSCRIBE (subscribed = 1) or UNSUBSCRIBE was confirmed. */
static void confirmed(rlink *l, const redisReply *r, int subscribed)
{
    redis_bus *b = l->bus;
    const char *name = unprefixed(b, r->element[1]);
    int last = name && ps__chanset_adjust(&b->inflight, name, -1) == 0;

    if (subscribed && last && wanted(b, name))
        report_subscribed(b, name);
    if (subscribed && !b->stopping && l->state == LINK_SYNCING)
        sync_progress(l);
}

static int is_probe(const redisReply *ch)
{
    return ch->type == REDIS_REPLY_STRING && (size_t)ch->len == sizeof(PROBE_CHANNEL) - 1 &&
           memcmp(ch->str, PROBE_CHANNEL, sizeof(PROBE_CHANNEL) - 1) == 0;
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
    if (is_probe(r->element[1])) {
        if (strcasecmp(kind, "subscribe") == 0)
            l->ping_pending = 0;
        return;
    }
    if (strcasecmp(kind, "message") == 0)
        deliver(l, r);
    else if (strcasecmp(kind, "subscribe") == 0)
        confirmed(l, r, 1);
    else if (strcasecmp(kind, "unsubscribe") == 0)
        confirmed(l, r, 0);
}

/* SUBSCRIBE or UNSUBSCRIBE <prefix><channel> on the sub link. hiredis
 * refuses UNSUBSCRIBE when it believes nothing is subscribed; then nothing
 * is, and -1 is only informative. A command sent awaits its confirmation in
 * `inflight` (were counting to fail on OOM, a confirmation would speak
 * early, no worse than without the count). */
static int send_sub(rlink *l, const char *verb, const char *channel)
{
    redis_bus *b = l->bus;
    int rc = redisAsyncCommand(l->ac, on_sub_reply, l, "%s %b%b", verb, b->prefix, b->prefix_len,
                               channel, strlen(channel));

    if (rc != REDIS_OK)
        return -1;
    ps__chanset_adjust(&b->inflight, channel, 1);
    return 0;
}

/* Commands can go out on the sub link (after the handshake). */
static int sub_live(const rlink *l)
{
    return l->ac && (l->state == LINK_SYNCING || l->state == LINK_READY);
}

/* ------------------------------------------------------------ handshake */

static void handshake_step(rlink *l, redisAsyncContext *ac, const redisReply *r)
{
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

static void on_handshake_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    handshake_step(priv, ac, reply);
}

/* A name is for operators only: a Redis that refuses CLIENT SETNAME (an ACL
 * without it) must not keep the bus down, so an error counts as done. */
static void on_setname_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    static const redisReply done = {.type = REDIS_REPLY_STATUS};
    const redisReply *r = reply;

    handshake_step(priv, ac, r && r->type == REDIS_REPLY_ERROR ? &done : r);
}

/* SCRIPT LOAD answers with the SHA1 that EVALSHA then names. */
static void on_script_loaded(redisAsyncContext *ac, void *reply, void *priv)
{
    script_slot *s = priv;
    rlink *l = &s->bus->cmd;
    const redisReply *r = reply;

    if (r && ac == l->ac && r->type == REDIS_REPLY_STRING && r->len == 40)
        memcpy(s->sha, r->str, 41);
    handshake_step(l, ac, r);
}

static int send_script_load(rlink *l, script_slot *s, redisCallbackFn *fn)
{
    const char *text = ps__script_text(s->which);

    if (redisAsyncCommand(l->ac, fn, s, "SCRIPT LOAD %b", text, strlen(text)) != REDIS_OK)
        return -1;
    return 0;
}

/* The reload after NOSCRIPT: only the SHA1 matters here; the resent
 * command reports any failure. */
static void on_script_reloaded(redisAsyncContext *ac, void *reply, void *priv)
{
    script_slot *s = priv;
    rlink *l = &s->bus->cmd;
    const redisReply *r = reply;

    if (ac != l->ac || s->bus->stopping)
        return;
    if (!r)
        link_lost(l, ac);
    else if (r->type == REDIS_REPLY_STRING && r->len == 40)
        memcpy(s->sha, r->str, 41);
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

/* AUTH and SELECT when configured, the scripts on cmd, then PING: its
 * reply says the link works. Sent at once, since hiredis reports the
 * connect only after a first write. SELECT only on cmd: pub/sub ignores the
 * db. A Redis that refuses SCRIPT LOAD (an ACL without scripting) keeps the
 * bus down with that reply as the error: better than failing later, one
 * publish at a time. */
static int send_handshake(rlink *l)
{
    const ps_redis_url *u = &l->bus->url;
    char db[16], name[48];
    const char *argv[3];
    int rc = 0, i;

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
    snprintf(name, sizeof(name), "wsgw-%s-%ld", l->name, (long)getpid());
    if (redisAsyncCommand(l->ac, on_setname_reply, l, "CLIENT SETNAME %s", name) == REDIS_OK)
        l->handshake_left++;
    else
        rc = -1;
    for (i = 0; i < PS__SCRIPTS && !l->is_sub; i++) {
        if (send_script_load(l, &l->bus->scripts[i], on_script_loaded) == 0)
            l->handshake_left++;
        else
            rc = -1;
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

/* The sub link's probe (see the top of the file). Both commands go out
 * together; the SUBSCRIBE confirmation clears ping_pending in on_sub_reply. */
static int send_probe(rlink *l)
{
    if (redisAsyncCommand(l->ac, on_sub_reply, l, "SUBSCRIBE " PROBE_CHANNEL) != REDIS_OK)
        return -1;
    redisAsyncCommand(l->ac, on_sub_reply, l, "UNSUBSCRIBE " PROBE_CHANNEL);
    return 0;
}

/* A link's heartbeat tick: the previous PING (cmd) or probe (sub) must have
 * been answered; a link that stays connected but silent is rebuilt. */
static void heartbeat(rlink *l)
{
    int rc;
    if (l->ping_pending) {
        set_error(l, "no answer to %s within %u ms", l->is_sub ? "a probe" : "PING",
                  (unsigned)l->bus->connect_timeout_ms);
        link_fail(l);
        return;
    }
    rc = l->is_sub ? send_probe(l) : redisAsyncCommand(l->ac, on_ping_reply, l, "PING");
    if (rc == REDIS_OK)
        l->ping_pending = 1;
}

static void on_link_timer(uv_timer_t *t)
{
    rlink *l = t->data;

    if (l->state == LINK_WAITING) {
        link_connect(l);
    } else if (l->state == LINK_CONNECTING || l->state == LINK_SYNCING) {
        set_error(l, "connect timeout after %u ms", (unsigned)l->bus->connect_timeout_ms);
        link_fail(l);
    } else if (l->state == LINK_READY) {
        heartbeat(l);
    }
}

/* ------------------------------------------------------------ commands */

static void free_groups(req *q)
{
    size_t i;

    for (i = 0; i < q->ngroups; i++)
        free(q->groups[i].refreshes);
    free(q->groups);
    q->groups = NULL;
    q->ngroups = 0;
}

static void req_free(req *q)
{
    if (q->cmd)
        redisFreeCommand(q->cmd);
    if (q->msgs != &q->msg1)
        free(q->msgs);
    ps__parts_clear(&q->parts);
    free(q->data);
    free(q->many);
    free_groups(q);
    free(q);
}

/* Frees a chain of reqs that never reached hiredis (already completed). */
static void free_chain(req **head)
{
    req *q;

    while ((q = *head)) {
        *head = q->qnext;
        req_free(q);
    }
}

/* Takes q off the pending list and the bounds. */
static void unlist(req *q)
{
    redis_bus *b = q->bus;

    if (q->prev)
        q->prev->next = q->next;
    else
        b->pending = q->next;
    if (q->next)
        q->next->prev = q->prev;
    b->npending--;
    b->pending_bytes -= q->len;
}

/* Tells each caller of a publish its outcome, in issue order: with PS_OK
 * and history, its own first offset. A callback may stop the bus, which
 * then tells the callers left the same outcome from inside stop
 * (finish_reporting), since no callback may follow stop; `reported` keeps
 * each told once. */
static void report_members(req *q, int status, const ps_publish_result *res)
{
    redis_bus *b = q->bus;
    ps_bus_stats *st = &b->base.stats;
    req *outer = b->reporting;
    ps_publish_result mine;

    b->reporting = q;
    q->outcome = status;
    q->outcome_res = res;
    while (q->reported < q->nmembers) {
        const member *m = q->many ? &q->many[q->reported] : &q->one;
        int mst = status;
        const ps_publish_result *mres = res;
        q->reported++;
        if (status == PS_OK && q->answered) {
            /* A publish script: each group answered for itself. */
            mst = q->groups[m->group].status;
            mres = mst == PS_OK ? &q->groups[m->group].res : NULL;
        }
        *(mst == PS_OK ? &st->publishes : &st->publish_errors) += m->count;
        if (mres) {
            mine = *mres;
            mine.offset += (int64_t)m->first;
        }
        if (m->cb)
            m->cb(m->udata, mst, mres ? &mine : NULL);
    }
    b->reporting = outer;
}

/* Counts and reports an outcome, once. res and h only with PS_OK. */
static void complete(req *q, int status, const ps_publish_result *res, const ps_history *h)
{
    ps_bus_stats *st = &q->bus->base.stats;

    if (q->done)
        return;
    q->done = 1;
    unlist(q);
    if (q->hist_cb) {
        *(status == PS_OK ? &st->history_reads : &st->history_errors) += 1;
        q->hist_cb(q->udata, status, h);
    } else {
        report_members(q, status, res);
    }
}

/* Takes in each group's outcome from a publish script's reply (of the
 * right shape), and records the TTL refreshes that happened. */
static void take_groups(req *q, const redisReply *r)
{
    redis_bus *b = q->bus;
    const char *err;
    size_t i;

    for (i = 0; i < q->ngroups; i++) {
        group *g = &q->groups[i];
        g->status = ps__script_publish_group(r, i, &g->res, &err);
        if (err)
            set_error(&b->cmd, "EVALSHA: %s", err);
        else if (g->status != PS_OK)
            set_error(&b->cmd, "EVALSHA: unexpected reply");
        if (g->status == PS_OK && g->refreshes)
            ps__refresh_done(&b->refreshed, g->refreshes, g->ttl_s, q->built_ms);
    }
    q->answered = 1;
}

/* A reply that is not an error: what it means depends on the command. A
 * script reply of the wrong shape means someone else wrote our keys. */
static void complete_with(req *q, const redisReply *r)
{
    ps_history h;
    int rc = PS_OK;

    if (q->hist_cb)
        rc = ps__script_history_reply(r, &h);
    else if (q->script >= 0 && (rc = ps__script_publish_reply(r, q->ngroups)) == PS_OK)
        take_groups(q, r);
    if (rc == PS_EINVAL)
        set_error(&q->bus->cmd, "EVALSHA: unexpected reply");
    if (rc != PS_OK)
        complete(q, rc, NULL, NULL);
    else if (q->hist_cb)
        complete(q, PS_OK, NULL, &h);
    else
        complete(q, PS_OK, NULL, NULL);
    if (rc == PS_OK && q->hist_cb)
        free((void *)h.entries);
}

static void on_req_reply(redisAsyncContext *ac, void *reply, void *priv);
static void on_flush(uv_prepare_t *h);

/* The script is gone from Redis: load it again and resend the command,
 * both queued now so that Redis runs them in this order. Returns 1 when q
 * now rides on the resent command. */
static int resend(req *q, redisAsyncContext *ac)
{
    redis_bus *b = q->bus;

    if (q->resent || q->done || q->script < 0 || ac != b->cmd.ac || b->stopping)
        return 0;
    q->resent = 1;
    if (send_script_load(&b->cmd, &b->scripts[q->script], on_script_reloaded) < 0)
        return 0;
    return redisAsyncFormattedCommand(ac, on_req_reply, q, q->cmd, q->cmd_len) == REDIS_OK;
}

static void on_req_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    req *q = priv;
    redis_bus *b = q->bus;
    const redisReply *r = reply;

    if (!r) {
        /* The link died with this command in flight: say so first. */
        link_lost(&b->cmd, ac);
        complete(q, b->stopping ? PS_ECLOSED : PS_EUNAVAILABLE, NULL, NULL);
    } else if (ps__is_noscript(r) && resend(q, ac)) {
        return;
    } else if (r->type == REDIS_REPLY_ERROR) {
        set_error(&b->cmd, "%s: %s", q->script < 0 ? "PUBLISH" : "EVALSHA", r->str);
        complete(q, ps__refusal_status(r->str), NULL, NULL);
    } else {
        complete_with(q, r);
    }
    req_free(q);
    /* The last answer is in: what queued meanwhile goes at the end of
     * this turn, as one flush (see flush). */
    if (--b->unanswered == 0 && b->queue && !b->stopping)
        uv_prepare_start(&b->flusher, on_flush);
}

/* Room for one more req carrying len payload bytes; queued reqs count. */
static int has_room(const redis_bus *b, size_t len)
{
    return b->npending < MAX_OUTSTANDING && len <= MAX_OUTSTANDING_BYTES - b->pending_bytes;
}

/* Lists q and queues it for the next flush. Publishes and reads
 * wait there alike, so that the cmd link sends everything in the order it
 * was asked for (a read sees the publishes asked for before it). */
static void enqueue(redis_bus *b, req *q)
{
    q->next = b->pending;
    if (b->pending)
        b->pending->prev = q;
    b->pending = q;
    b->npending++;
    b->pending_bytes += q->len;
    if (b->queue_tail)
        b->queue_tail->qnext = q;
    else
        b->queue = q;
    b->queue_tail = q;
    uv_prepare_start(&b->flusher, on_flush);
}

static req *req_new(redis_bus *b, int script, void *udata)
{
    req *q = calloc(1, sizeof(*q));

    if (!q)
        return NULL;
    q->bus = b;
    q->script = script;
    q->udata = udata;
    q->msgs = &q->msg1;
    return q;
}

static ps__script_target target_of(const redis_bus *b, enum ps__script which, const char *channel)
{
    ps__script_target t = {b->prefix, b->prefix_len, channel, b->scripts[which].sha};

    return t;
}

/* A plain PUBLISH, formatted now: the payload is the caller's only until
 * the call returns. */
static int format_plain(redis_bus *b, req *q, const char *channel, const ps_payload *msg)
{
    int len = redisFormatCommand(&q->cmd, "PUBLISH %b%b %b", b->prefix, b->prefix_len, channel,
                                 strlen(channel), msg->text, msg->len);

    if (len < 0)
        return PS_ENOMEM;
    q->cmd_len = (size_t)len;
    return PS_OK;
}

/* Copies a history publish's channel, messages and checks into q (parts
 * moves in), for the run flush() builds its command from. */
static int keep_messages(req *q, const char *channel, const ps_payload *msgs, size_t n,
                         ps__parts *parts, const ps_history_policy *hist)
{
    size_t clen = strlen(channel) + 1, i, at = clen;

    q->parts = *parts;
    parts->many = NULL;
    q->hist = *hist;
    if (!(q->data = malloc(clen + parts->total)) ||
        (n > 1 && !(q->msgs = malloc(n * sizeof(*q->msgs))))) {
        q->msgs = &q->msg1;
        return PS_ENOMEM;
    }
    memcpy(q->data, channel, clen);
    q->channel = q->data;
    for (i = 0; i < n; i++) {
        memcpy(q->data + at, msgs[i].text, msgs[i].len);
        q->msgs[i] = (ps_payload){q->data + at, msgs[i].len};
        at += msgs[i].len;
    }
    return PS_OK;
}

/* Why msgs cannot be sent now, or PS_OK with parts filled. */
static int can_publish(const redis_bus *b, const ps_payload *msgs, size_t n, int with_history,
                       ps__parts *parts)
{
    int rc = ps__parts_check(parts, msgs, n, with_history, b->max_payload);

    if (b->stopping)
        return PS_ECLOSED;
    if (rc != PS_OK)
        return rc;
    if (!b->up || !b->cmd.ac || !has_room(b, parts->total))
        return PS_EUNAVAILABLE;
    return PS_OK;
}

/* One message, or with history a batch of them. Checked now (every error
 * the caller hears at once), sent with the next flush (see the top). */
static int redis_publish(ps_bus *base, const char *channel, const ps_payload *msgs, size_t n,
                         const ps_history_policy *hist, ps_publish_cb *cb, void *udata)
{
    redis_bus *b = (redis_bus *)base;
    ps__parts parts;
    req *q = NULL;
    int rc = can_publish(b, msgs, n, hist != NULL, &parts);

    if (rc == PS_OK && !(q = req_new(b, hist ? PS__SCRIPT_PUBLISH : -1, NULL)))
        rc = PS_ENOMEM;
    if (q) {
        q->one = (member){cb, udata, n, 0, 0};
        q->nmembers = 1;
        q->len = parts.total;
        q->count = n;
    }
    if (rc == PS_OK)
        rc = hist ? keep_messages(q, channel, msgs, n, &parts, hist)
                  : format_plain(b, q, channel, &msgs[0]);
    if (rc == PS_OK)
        enqueue(b, q);
    else if (q)
        req_free(q);
    ps__parts_clear(&parts);
    return rc;
}

/* Reads need only the cmd link: they work while the sub link resubscribes,
 * which is when on_subscribed asks for them. */
static int redis_history(ps_bus *base, const char *channel, int64_t since, size_t limit,
                         const ps_history_policy *hist, ps_history_cb *cb, void *udata)
{
    redis_bus *b = (redis_bus *)base;
    ps__script_target t = target_of(b, PS__SCRIPT_HISTORY, channel);
    char epoch[PS__EPOCH_LEN + 1];
    long n;
    req *q;

    if (b->stopping)
        return PS_ECLOSED;
    if (b->cmd.state != LINK_READY || !b->cmd.ac || !has_room(b, 0))
        return PS_EUNAVAILABLE;
    q = req_new(b, PS__SCRIPT_HISTORY, udata);
    if (!q)
        return PS_ENOMEM;
    q->hist_cb = cb;
    ps__epoch_new(&b->epochs, epoch);
    n = ps__script_history_cmd(&q->cmd, &t, since, limit, hist, epoch);
    if (n < 0) {
        req_free(q);
        return PS_ENOMEM;
    }
    q->cmd_len = (size_t)n;
    enqueue(b, q);
    return PS_OK;
}

/* ------------------------------------------------------------ group commit */

/* A run: consecutive history publishes, sent as one publish script
 * instead of one each. Within it, each stretch of messages to one channel
 * under one policy is a group (one meta read, one stream entry, one
 * PUBLISH); groups of other channels ride along, so that the script's
 * fixed cost (the EVALSHA itself, its round trip) is paid once per run
 * even when every message goes to another channel (many jobs reporting
 * at once). Redis runs the groups in issue order. Bounded like the HTTP
 * API's runs, so that one script call stays short for everyone else on
 * that Redis; a batch over the bounds goes alone, as it came. A run needs
 * all its keys on one Redis: a bus for Redis Cluster would form runs per
 * hash slot. */
#define RUN_MAX 100
#define RUN_MAX_BYTES (256u * 1024u)

static int is_hist_publish(const req *q)
{
    return q->script == PS__SCRIPT_PUBLISH && q->data;
}

/* Can next join a run that holds count messages of len bytes? */
static int joins(const redis_bus *b, const req *next, size_t count, size_t len)
{
    size_t max_bytes = b->max_payload < RUN_MAX_BYTES ? b->max_payload : RUN_MAX_BYTES;

    return is_hist_publish(next) && count + next->count <= RUN_MAX && len + next->len <= max_bytes;
}

/* Moves from b->flushing onto q's qnext chain the publishes that join it. */
static void take_run(redis_bus *b, req *q)
{
    size_t count = q->count, len = q->len;
    req **tail = &q->qnext;

    while (b->flushing && joins(b, b->flushing, count, len)) {
        req *next = b->flushing;
        b->flushing = next->qnext;
        next->qnext = NULL;
        count += next->count;
        len += next->len;
        *tail = next;
        tail = &next->qnext;
    }
}

/* Does r continue the group that prev is in? */
static int same_group(const req *prev, const req *r)
{
    return strcmp(prev->channel, r->channel) == 0 && prev->hist.size == r->hist.size &&
           prev->hist.ttl_s == r->hist.ttl_s;
}

/* The messages, checks and callers of the run q heads, side by side, cut
 * into groups. Each group's parts point into `partv` (not owned). */
typedef struct run_parts {
    ps_payload *msgs;
    ps__part *partv;
    ps__parts *gparts;
    ps__publish_group *groups;
    char (*epochs)[PS__EPOCH_LEN + 1];
    member *members;
    size_t ngroups;
} run_parts;

static void run_parts_free(run_parts *g)
{
    free(g->msgs);
    free(g->partv);
    free(g->gparts);
    free(g->groups);
    free(g->epochs);
    free(g->members);
}

static int gather_alloc(const req *q, run_parts *g)
{
    size_t n = 0, k = 0, ng = 0;
    const req *r, *prev = NULL;

    for (r = q; r; prev = r, r = r->qnext) {
        n += r->count;
        k++;
        ng += !prev || !same_group(prev, r);
    }
    g->msgs = malloc(n * sizeof(*g->msgs));
    g->partv = malloc(n * sizeof(*g->partv));
    g->gparts = calloc(ng, sizeof(*g->gparts));
    g->groups = calloc(ng, sizeof(*g->groups));
    g->epochs = malloc(ng * sizeof(*g->epochs));
    g->members = malloc(k * sizeof(*g->members));
    return g->msgs && g->partv && g->gparts && g->groups && g->epochs && g->members ? PS_OK
                                                                                    : PS_ENOMEM;
}

/* Lays the run's messages out group after group, one member per req. */
static int gather(redis_bus *b, const req *q, run_parts *g)
{
    size_t n = 0, k = 0, i, at = 0;
    const req *r, *prev = NULL;
    ps__parts *gp = NULL;

    if (gather_alloc(q, g) != PS_OK)
        return PS_ENOMEM;
    for (r = q; r; prev = r, r = r->qnext, k++) {
        if (!prev || !same_group(prev, r)) {
            ps__publish_group *pg = &g->groups[g->ngroups];
            gp = &g->gparts[g->ngroups];
            ps__epoch_new(&b->epochs, g->epochs[g->ngroups]);
            *pg = (ps__publish_group){.channel = r->channel,
                                      .msgs = &g->msgs[n],
                                      .parts = gp,
                                      .hist = &r->hist,
                                      .epoch = g->epochs[g->ngroups]};
            g->ngroups++;
            at = 0;
        }
        g->members[k] = r->one;
        g->members[k].group = g->ngroups - 1;
        g->members[k].first = at;
        for (i = 0; i < r->count; i++, n++, at++) {
            g->msgs[n] = r->msgs[i];
            g->partv[n] = *ps__part_at(&r->parts, i);
        }
        gp->n += r->count;
        gp->total += r->len;
        gp->one = g->partv[n - gp->n];
        gp->many = gp->n > 1 ? &g->partv[n - gp->n] : NULL;
    }
    return PS_OK;
}

/* Which groups refresh their keys' TTLs (ttl_refresh.c), noted in q for
 * the reply (a copy of the channel each). */
static int plan_refreshes(redis_bus *b, req *q, run_parts *g)
{
    size_t i;

    q->built_ms = uv_now(b->loop);
    if (!(q->groups = calloc(g->ngroups, sizeof(*q->groups))))
        return PS_ENOMEM;
    q->ngroups = g->ngroups;
    for (i = 0; i < g->ngroups; i++) {
        ps__publish_group *pg = &g->groups[i];
        if (!ps__refresh_due(&b->refreshed, pg->channel, pg->hist->ttl_s, q->built_ms))
            continue;
        if (!(q->groups[i].refreshes = strdup(pg->channel)))
            return PS_ENOMEM;
        q->groups[i].ttl_s = pg->hist->ttl_s;
        pg->refresh = 1;
    }
    return PS_OK;
}

/* Makes q the run's one command: its members are every caller of the run
 * and its bounds theirs; the others go. Returns PS_OK or PS_ENOMEM (then
 * nothing changed but q's groups, which are dropped). */
static int merge_run(redis_bus *b, req *q)
{
    run_parts g = {0};
    req *r;
    long len;
    int rc = gather(b, q, &g);

    if (rc == PS_OK)
        rc = plan_refreshes(b, q, &g);
    if (rc == PS_OK) {
        len = ps__script_publish_cmd(&q->cmd, b->prefix, b->prefix_len,
                                     b->scripts[PS__SCRIPT_PUBLISH].sha, g.groups, g.ngroups);
        rc = len < 0 ? PS_ENOMEM : PS_OK;
        q->cmd_len = len < 0 ? 0 : (size_t)len;
    }
    if (rc != PS_OK) {
        free_groups(q);
    } else {
        q->nmembers = 0;
        q->many = g.members;
        g.members = NULL;
        while ((r = q->qnext)) {
            q->qnext = r->qnext;
            unlist(r);
            q->nmembers++;
            q->count += r->count;
            q->len += r->len;
            b->pending_bytes += r->len;
            req_free(r);
        }
        q->nmembers++;
    }
    run_parts_free(&g);
    return rc;
}

/* Builds the command of the run q heads (plain publishes and reads were
 * formatted when asked for). On failure each req of the run fails with
 * rc. */
static int build(redis_bus *b, req *q)
{
    int rc = PS_OK;
    req *r;

    if (is_hist_publish(q))
        rc = merge_run(b, q);
    if (rc == PS_OK)
        return PS_OK;
    while ((r = q)) {
        q = r->qnext;
        complete(r, rc, NULL, NULL);
        req_free(r);
    }
    return rc;
}

/* Sends q (one command) and lets go of what only building it needed.
 * hiredis copies the command into its output buffer here; a plain PUBLISH
 * needs no copy for a resend. */
static void send_req(redis_bus *b, req *q)
{
    if (b->cmd.state != LINK_READY || !b->cmd.ac ||
        redisAsyncFormattedCommand(b->cmd.ac, on_req_reply, q, q->cmd, q->cmd_len) != REDIS_OK) {
        /* The link went down this turn, after the publish was accepted. */
        complete(q, PS_EUNAVAILABLE, NULL, NULL);
        req_free(q);
        return;
    }
    b->unanswered++;
    if (q->script < 0) {
        redisFreeCommand(q->cmd);
        q->cmd = NULL;
    }
    free(q->data);
    q->data = NULL;
    if (q->msgs != &q->msg1)
        free(q->msgs);
    q->msgs = &q->msg1;
    ps__parts_clear(&q->parts);
}

/* The end of the loop turn: unless the previous flush still awaits
 * replies, sends what was queued, in order, each run of history publishes
 * as one command. What callbacks queue meanwhile waits for the next
 * flush; a stop from one of them completes (PS_ECLOSED) and frees what is
 * still in b->flushing. */
static void flush(redis_bus *b)
{
    uv_prepare_stop(&b->flusher);
    if (b->unanswered > 0)
        return; /* the last reply of the previous flush restarts us */
    b->flushing = b->queue;
    b->queue = b->queue_tail = NULL;
    while (b->flushing && !b->stopping) {
        req *q = b->flushing;
        b->flushing = q->qnext;
        q->qnext = NULL;
        if (is_hist_publish(q))
            take_run(b, q);
        if (build(b, q) == PS_OK)
            send_req(b, q);
    }
}

static void on_flush(uv_prepare_t *h)
{
    flush(h->data);
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
     * context is going away: the next sync covers that too. During a sync
     * the bus is up only once this one is confirmed as well. */
    if (sub_live(&b->sub) && send_sub(&b->sub, "SUBSCRIBE", channel) == 0 &&
        b->sub.state == LINK_SYNCING)
        b->sub.resub_left++;
    return PS_OK;
}

static int redis_unsubscribe(ps_bus *base, const char *channel)
{
    redis_bus *b = (redis_bus *)base;

    if (b->stopping)
        return PS_ECLOSED;
    if (!ps__chanset_remove(&b->channels, channel))
        return PS_ENOENT;
    ps__chanset_remove(&b->unreported, channel);
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
    ps__refresh_clear(&b->refreshed);
    ps__chanset_clear(&b->channels);
    ps__chanset_clear(&b->inflight);
    ps__chanset_clear(&b->unreported);
    free(b);
}

static void handle_closed(redis_bus *b)
{
    if (--b->handles_open == 0 && b->destroy_pending)
        free_bus(b);
}

static void on_timer_closed(uv_handle_t *h)
{
    handle_closed(((rlink *)h->data)->bus);
}

static void on_flusher_closed(uv_handle_t *h)
{
    handle_closed(h->data);
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

/* Stopped from inside a publish callback: the callers of that command not
 * yet told hear its outcome now, from inside stop. */
static void finish_reporting(redis_bus *b)
{
    req *q = b->reporting;

    if (q)
        report_members(q, q->outcome, q->outcome_res);
}

static void redis_stop(ps_bus *base)
{
    redis_bus *b = (redis_bus *)base;

    if (b->stopping)
        return;
    b->stopping = 1;
    b->up = 0;
    /* Publish and history callbacks first, while nothing is torn down:
     * they may call into the bus (which now answers PS_ECLOSED). Queued
     * reqs are listed too; hiredis never saw them, so they go here. */
    finish_reporting(b);
    while (b->pending)
        complete(b->pending, PS_ECLOSED, NULL, NULL);
    free_chain(&b->queue);
    b->queue_tail = NULL;
    free_chain(&b->flushing);
    uv_close((uv_handle_t *)&b->flusher, on_flusher_closed);
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
    .history = redis_history,
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
    int i;

    if (!loop || !opts || !cb || !cb->on_message)
        return NULL;
    b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    ps__refresh_init(&b->refreshed, REFRESH_MAX);
    b->base.ops = &redis_ops;
    b->base.cb = *cb;
    b->loop = loop;
    if (take_options(b, opts) < 0 || ps__rng_seed(&b->epochs) < 0)
        goto err;
    b->rng = (uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)b) | 1;
    for (i = 0; i < PS__SCRIPTS; i++) {
        b->scripts[i].bus = b;
        b->scripts[i].which = (enum ps__script)i;
    }
    link_init(b, &b->sub, "sub", 1);
    link_init(b, &b->cmd, "cmd", 0);
    /* The flusher runs only while something is queued, and never keeps the
     * loop alive on its own. */
    uv_prepare_init(loop, &b->flusher);
    b->flusher.data = b;
    uv_unref((uv_handle_t *)&b->flusher);
    b->handles_open++;
    return &b->base;
err:
    free(b);
    return NULL;
}
