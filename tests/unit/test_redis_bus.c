/*
 * Unit tests of the Redis bus (pubsub/src/redis_bus.c, redis_uv.c,
 * redis_url.c) against real redis-server processes on loopback.
 *
 * What a gateway would notice: the bus comes up; a backend's PUBLISH on
 * <prefix><channel> reaches on_message for subscribed channels only, with the
 * exact payload; subscriptions survive Redis restarts and Redis being down at
 * start; publishes while down fail at once, publishes cut off by a drop or by
 * stop() complete with the documented status; and Redis itself ends up with
 * exactly the subscriptions the bus wants (PUBSUB CHANNELS), also after the
 * subscribe/unsubscribe sequences that trip hiredis 0.14 up.
 *
 * on_subscribed speaks once Redis confirmed a wanted channel, again after
 * every reconnect, and not for a confirmation an unsubscribe overtook.
 *
 * Servers come from redis_server.c. The loop is driven with UV_RUN_ONCE
 * against a deadline; a 5 ms ticker keeps each turn short.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "pubsub/pubsub.h"

#include "redis_server.h"

/* ---- Redis as a backend sees it ---------------------------------------- */

/* PUBLISH as a backend does; returns the number of receivers. */
static long long backend_publish(int port, const char *channel, const char *payload)
{
    redisReply *r = sync_command(port, NULL, "PUBLISH %s %s", channel, payload);
    long long n;

    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    n = r->integer;
    freeReplyObject(r);
    return n;
}

/* 1 when PUBSUB CHANNELS is exactly the NULL-terminated list want. */
static int channels_are(int port, const char *const *want)
{
    redisReply *r = sync_command(port, NULL, "PUBSUB CHANNELS");
    size_t n = 0, i, j;
    int ok;

    while (want[n])
        n++;
    ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == n;
    for (i = 0; ok && i < n; i++) {
        int found = 0;
        for (j = 0; j < r->elements; j++)
            found |= strcmp(r->element[j]->str, want[i]) == 0;
        ok = found;
    }
    freeReplyObject(r);
    return ok;
}

/* ---- the bus under test ------------------------------------------------- */

#define MAX_MSGS 64

typedef struct fixture {
    uv_loop_t loop;
    uv_timer_t tick;
    ps_bus *bus;
    int ups, downs; /* on_state calls */
    int up;
    int nmsgs;
    struct {
        char channel[64];
        char payload[256];
        size_t len;
    } msgs[MAX_MSGS];
    int results[MAX_MSGS]; /* publish outcomes, in callback order */
    int nresults;
    int nsubscribed; /* on_subscribed calls */
    int stop_on_message;
    /* for wait predicates */
    int want_msgs, want_results, want_up, port;
    const char *const *want_channels;
} fixture;

static void on_message(void *udata, const char *channel, const char *payload, size_t len)
{
    fixture *f = udata;

    assert_true(f->nmsgs < MAX_MSGS);
    assert_true(len < sizeof(f->msgs[0].payload));
    snprintf(f->msgs[f->nmsgs].channel, sizeof(f->msgs[0].channel), "%s", channel);
    memcpy(f->msgs[f->nmsgs].payload, payload, len);
    f->msgs[f->nmsgs].payload[len] = '\0';
    f->msgs[f->nmsgs].len = len;
    f->nmsgs++;
    if (f->stop_on_message)
        ps_bus_stop(f->bus);
}

static void on_subscribed(void *udata, const char *channel)
{
    fixture *f = udata;

    f->nsubscribed++;
}

static void on_state(void *udata, int up)
{
    fixture *f = udata;

    assert_int_not_equal(up, f->up); /* only changes are reported */
    f->up = up;
    if (up)
        f->ups++;
    else
        f->downs++;
}

static fixture *current;

static void on_published(void *udata, int status, const ps_publish_result *res)
{
    fixture *f = current;

    assert_true(f->nresults < MAX_MSGS);
    f->results[f->nresults++] = status;
}

static void on_tick(uv_timer_t *t)
{
}

static void bus_new(fixture *f, const char *url, uint32_t timeout_ms)
{
    ps_bus_callbacks cb = {on_message, on_state, on_subscribed, f};
    ps_redis_opts o;

    memset(&o, 0, sizeof(o));
    assert_int_equal(ps_redis_url_parse(url, &o.url), PS_OK);
    o.prefix = "wsgw:";
    o.connect_timeout_ms = timeout_ms;
    o.backoff_min_ms = 10;
    o.backoff_max_ms = 80;
    f->bus = ps_redis_bus_new(&f->loop, &o, &cb);
    assert_non_null(f->bus);
}

static void bus_on_port(fixture *f, int port)
{
    char url[64];

    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", port);
    bus_new(f, url, 1000);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->tick);
    uv_timer_start(&f->tick, on_tick, 5, 5);
    current = f;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;

    ps_bus_stop(f->bus);
    uv_close((uv_handle_t *)&f->tick, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    ps_bus_destroy(f->bus);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    kill_extra_servers();
    return 0;
}

/* Turns the loop until pred holds or ms pass; returns pred's last value. */
static int run_until(fixture *f, int (*pred)(fixture *), int ms)
{
    uint64_t deadline = uv_hrtime() + (uint64_t)ms * 1000000u;

    while (!pred(f)) {
        if (uv_hrtime() >= deadline)
            return 0;
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    return 1;
}

static int never(fixture *f)
{
    return 0;
}

static int is_up(fixture *f)
{
    return f->up == f->want_up;
}

static int got_msgs(fixture *f)
{
    return f->nmsgs >= f->want_msgs;
}

static int got_results(fixture *f)
{
    return f->nresults >= f->want_results;
}

static int redis_channels(fixture *f)
{
    return channels_are(f->port, f->want_channels);
}

static void wait_state(fixture *f, int up)
{
    f->want_up = up;
    if (!run_until(f, is_up, WAIT_MS))
        fail_msg("bus not %s: %s", up ? "up" : "down", ps_bus_last_error(f->bus));
    assert_int_equal(ps_bus_is_up(f->bus), up);
}

static void wait_msgs(fixture *f, int n)
{
    f->want_msgs = n;
    if (!run_until(f, got_msgs, WAIT_MS))
        fail_msg("%d messages, expected %d", f->nmsgs, n);
}

static void wait_results(fixture *f, int n)
{
    f->want_results = n;
    if (!run_until(f, got_results, WAIT_MS))
        fail_msg("%d publish outcomes, expected %d", f->nresults, n);
}

static void wait_channels(fixture *f, int port, const char *const *want)
{
    f->port = port;
    f->want_channels = want;
    if (!run_until(f, redis_channels, WAIT_MS))
        fail_msg("PUBSUB CHANNELS never became the expected set");
}

static void assert_msg(const fixture *f, int i, const char *channel, const char *payload)
{
    assert_true(i < f->nmsgs);
    assert_string_equal(f->msgs[i].channel, channel);
    assert_int_equal(f->msgs[i].len, strlen(payload));
    assert_string_equal(f->msgs[i].payload, payload);
}

/* Publishes a marker on channel and waits for it: every message published
 * before it has then arrived, or never will (Redis keeps order). */
static void sync_with_marker(fixture *f, int port, const char *channel)
{
    char rc[80];
    int before = f->nmsgs;

    snprintf(rc, sizeof(rc), "wsgw:%s", channel);
    assert_true(backend_publish(port, rc, "{\"data\":\"marker\"}") >= 1);
    wait_msgs(f, before + 1);
    assert_msg(f, f->nmsgs - 1, channel, "{\"data\":\"marker\"}");
}

/* ---- tests -------------------------------------------------------------- */

static void comes_up(void **state)
{
    fixture *f = *state;
    const char *const none[] = {NULL};

    bus_on_port(f, main_server.port);
    assert_int_equal(ps_bus_is_up(f->bus), 0); /* never from inside new */
    wait_state(f, 1);
    assert_int_equal(f->ups, 1);
    assert_int_equal(f->downs, 0);
    assert_string_equal(ps_bus_last_error(f->bus), "");
    assert_int_equal(f->bus->stats.reconnects, 0);
    wait_channels(f, main_server.port, none);
}

static void backend_publish_reaches_subscriber(void **state)
{
    fixture *f = *state;
    const char *const want[] = {"wsgw:job:42", NULL};
    const char *payload = "{\"data\":{\"progress\":40,\"note\":\"a b \\\"c\\\"\"}}";

    bus_on_port(f, main_server.port);
    assert_int_equal(ps_bus_subscribe(f->bus, "job:42"), PS_OK);
    wait_state(f, 1);
    wait_channels(f, main_server.port, want);
    assert_int_equal(backend_publish(main_server.port, "wsgw:job:42", payload), 1);
    wait_msgs(f, 1);
    assert_msg(f, 0, "job:42", payload);
    /* Not subscribed, other prefix, no prefix: none of these arrive. */
    assert_int_equal(backend_publish(main_server.port, "wsgw:job:43", "{\"data\":1}"), 0);
    assert_int_equal(backend_publish(main_server.port, "other:job:42", "{\"data\":2}"), 0);
    assert_int_equal(backend_publish(main_server.port, "job:42", "{\"data\":3}"), 0);
    sync_with_marker(f, main_server.port, "job:42");
    assert_int_equal(f->nmsgs, 2);
    assert_int_equal(f->bus->stats.messages_in, 2);
}

static void publish_round_trip(void **state)
{
    fixture *f = *state;
    const char *const want[] = {"wsgw:chat:lobby", NULL};
    const char *payload = "{\"data\":{\"text\":\"hi there\"},\"from\":\"alice\"}";

    bus_on_port(f, main_server.port);
    ps_bus_subscribe(f->bus, "chat:lobby");
    wait_state(f, 1);
    wait_channels(f, main_server.port, want);
    assert_int_equal(
        ps_bus_publish(f->bus, "chat:lobby", payload, strlen(payload), NULL, on_published, NULL),
        PS_OK);
    assert_int_equal(f->nresults, 0); /* never from inside publish */
    wait_results(f, 1);
    assert_int_equal(f->results[0], PS_OK);
    wait_msgs(f, 1);
    assert_msg(f, 0, "chat:lobby", payload);
    assert_int_equal(f->bus->stats.publishes, 1);
    assert_int_equal(f->bus->stats.publish_errors, 0);
    /* A NULL callback is allowed; the payload is taken by length. */
    assert_int_equal(ps_bus_publish(f->bus, "chat:lobby", "{\"data\":1}xyz", 10, NULL, NULL, NULL),
                     PS_OK);
    wait_msgs(f, 2);
    assert_msg(f, 1, "chat:lobby", "{\"data\":1}");
}

static void unsubscribe_leaves_redis(void **state)
{
    fixture *f = *state;
    const char *const both[] = {"wsgw:job:1", "wsgw:job:2", NULL};
    const char *const two[] = {"wsgw:job:2", NULL};

    bus_on_port(f, main_server.port);
    ps_bus_subscribe(f->bus, "job:1");
    ps_bus_subscribe(f->bus, "job:2");
    wait_state(f, 1);
    wait_channels(f, main_server.port, both);
    assert_int_equal(ps_bus_unsubscribe(f->bus, "job:1"), PS_OK);
    assert_int_equal(ps_bus_unsubscribe(f->bus, "job:1"), PS_ENOENT);
    assert_int_equal(ps_bus_unsubscribe(f->bus, "job:9"), PS_ENOENT);
    wait_channels(f, main_server.port, two);
    assert_int_equal(backend_publish(main_server.port, "wsgw:job:1", "{\"data\":1}"), 0);
    sync_with_marker(f, main_server.port, "job:2");
    assert_int_equal(f->nmsgs, 1);

    /* The UNSUBSCRIBE is only queued until the loop turns, so Redis still
     * sends this message; the bus must drop it, the channel being unwanted. */
    assert_int_equal(ps_bus_unsubscribe(f->bus, "job:2"), PS_OK);
    assert_int_equal(backend_publish(main_server.port, "wsgw:job:2", "{\"data\":\"late\"}"), 1);
    {
        const char *const three[] = {"wsgw:job:3", NULL};
        ps_bus_subscribe(f->bus, "job:3");
        wait_channels(f, main_server.port, three);
    }
    sync_with_marker(f, main_server.port, "job:3");
    assert_int_equal(f->nmsgs, 2);
    assert_int_equal(f->bus->stats.messages_in, 2);
}

/* The hiredis 0.14 pitfalls: the same channel subscribed and unsubscribed
 * many times in one pipeline, the last channel unsubscribed (hiredis then
 * leaves subscribed mode) and subscribed again. */
static void subscribe_unsubscribe_churn(void **state)
{
    fixture *f = *state;
    const char *const x[] = {"wsgw:x", NULL};
    const char *const none[] = {NULL};
    int i;

    bus_on_port(f, main_server.port);
    wait_state(f, 1);
    for (i = 0; i < 50; i++) { /* all in one loop turn: one pipeline */
        assert_int_equal(ps_bus_subscribe(f->bus, "x"), PS_OK);
        assert_int_equal(ps_bus_subscribe(f->bus, "y"), PS_OK);
        assert_int_equal(ps_bus_unsubscribe(f->bus, "x"), PS_OK);
        assert_int_equal(ps_bus_unsubscribe(f->bus, "y"), PS_OK);
    }
    ps_bus_subscribe(f->bus, "x");
    wait_channels(f, main_server.port, x);
    sync_with_marker(f, main_server.port, "x");
    assert_int_equal(f->nmsgs, 1); /* exactly once */
    for (i = 0; i < 10; i++) {     /* one confirmed step at a time */
        assert_int_equal(ps_bus_unsubscribe(f->bus, "x"), PS_OK);
        wait_channels(f, main_server.port, none);
        assert_int_equal(ps_bus_subscribe(f->bus, "x"), PS_OK);
        wait_channels(f, main_server.port, x);
    }
    sync_with_marker(f, main_server.port, "x");
    assert_int_equal(f->nmsgs, 2);
    assert_int_equal(f->downs, 0);
}

static void redis_down_at_start(void **state)
{
    fixture *f = *state;
    const char *const want[] = {"wsgw:job:1", NULL};
    server *s = extra_server();
    int port = free_port();

    bus_on_port(f, port);
    assert_int_equal(ps_bus_subscribe(f->bus, "job:1"), PS_OK); /* remembered */
    assert_int_equal(ps_bus_subscribe(f->bus, "job:2"), PS_OK);
    assert_int_equal(ps_bus_unsubscribe(f->bus, "job:2"), PS_OK); /* forgotten */
    run_until(f, never, 300);                                     /* many retries */
    assert_int_equal(f->ups + f->downs, 0);
    assert_int_equal(ps_bus_is_up(f->bus), 0);
    assert_non_null(strstr(ps_bus_last_error(f->bus), "refused"));
    assert_int_equal(ps_bus_publish(f->bus, "job:1", "{\"data\":1}", 10, NULL, on_published, NULL),
                     PS_EUNAVAILABLE);

    server_start(s, port, NULL, NULL);
    wait_state(f, 1);
    assert_int_equal(f->ups, 1);
    assert_int_equal(f->bus->stats.reconnects, 0); /* the first connect */
    wait_channels(f, port, want);
    assert_int_equal(backend_publish(port, "wsgw:job:1", "{\"data\":\"late\"}"), 1);
    wait_msgs(f, 1);
    assert_msg(f, 0, "job:1", "{\"data\":\"late\"}");
    run_until(f, never, 20);
    assert_int_equal(f->nresults, 0); /* the refused publish never calls back */
}

static void restart_restores_subscriptions(void **state)
{
    fixture *f = *state;
    const char *const want[] = {"wsgw:job:5", "wsgw:chat:1", NULL};
    server *s = extra_server();
    int port = free_port();

    server_start(s, port, NULL, NULL);
    bus_on_port(f, port);
    ps_bus_subscribe(f->bus, "job:5");
    ps_bus_subscribe(f->bus, "chat:1");
    wait_state(f, 1);
    wait_channels(f, port, want);

    server_kill(s);
    wait_state(f, 0);
    assert_int_equal(f->downs, 1);
    assert_int_equal(ps_bus_publish(f->bus, "job:5", "{\"data\":1}", 10, NULL, on_published, NULL),
                     PS_EUNAVAILABLE);
    assert_true(strlen(ps_bus_last_error(f->bus)) > 0);
    ps_bus_subscribe(f->bus, "job:6"); /* while down */
    assert_int_equal(f->nsubscribed, 2);

    server_start(s, port, NULL, NULL);
    wait_state(f, 1);
    assert_int_equal(f->nsubscribed, 5); /* each channel once more */
    assert_int_equal(f->ups, 2);
    assert_int_equal(f->bus->stats.reconnects, 1);
    {
        const char *const now[] = {"wsgw:job:5", "wsgw:chat:1", "wsgw:job:6", NULL};
        wait_channels(f, port, now);
    }
    /* Up means resubscribed: no waiting needed before publishing. */
    assert_int_equal(backend_publish(port, "wsgw:chat:1", "{\"data\":\"back\"}"), 1);
    wait_msgs(f, 1);
    assert_msg(f, 0, "chat:1", "{\"data\":\"back\"}");
    assert_int_equal(f->nresults, 0);
}

static int want_count;

static int redis_channel_count(fixture *f)
{
    redisReply *r;
    long long n = -1;

    r = sync_command(f->port, NULL, "PUBSUB CHANNELS wsgw:many:*");
    if (r && r->type == REDIS_REPLY_ARRAY)
        n = (long long)r->elements;
    freeReplyObject(r);
    return n == want_count;
}

/* Thousands of channels come back after a restart, and the bus reports up
 * only once Redis has confirmed them all. */
static void many_channels_resubscribed(void **state)
{
    fixture *f = *state;
    server *s = extra_server();
    char name[32];
    int i, port = free_port();

    server_start(s, port, NULL, NULL);
    bus_on_port(f, port);
    for (i = 0; i < 5000; i++) {
        snprintf(name, sizeof(name), "many:%d", i);
        assert_int_equal(ps_bus_subscribe(f->bus, name), PS_OK);
    }
    wait_state(f, 1);
    f->port = port;
    want_count = 5000;
    assert_true(redis_channel_count(f)); /* up means all confirmed */
    server_kill(s);
    wait_state(f, 0);
    server_start(s, port, NULL, NULL);
    wait_state(f, 1);
    assert_true(redis_channel_count(f));
    assert_int_equal(backend_publish(port, "wsgw:many:4321", "{\"data\":4321}"), 1);
    wait_msgs(f, 1);
    assert_msg(f, 0, "many:4321", "{\"data\":4321}");
}

/* Redis frozen (SIGSTOP) so that publishes stay unanswered, then killed:
 * each publish in flight completes once with PS_EUNAVAILABLE. */
static void link_drop_fails_pending_publishes(void **state)
{
    fixture *f = *state;
    server *s = extra_server();
    int i;

    server_start(s, free_port(), NULL, NULL);
    bus_on_port(f, s->port);
    wait_state(f, 1);
    server_freeze(s);
    for (i = 0; i < 3; i++)
        assert_int_equal(
            ps_bus_publish(f->bus, "job:1", "{\"data\":1}", 10, NULL, on_published, NULL), PS_OK);
    run_until(f, never, 50); /* written out, no answer */
    assert_int_equal(f->nresults, 0);
    server_kill(s);
    wait_results(f, 3);
    for (i = 0; i < 3; i++)
        assert_int_equal(f->results[i], PS_EUNAVAILABLE);
    assert_int_equal(f->downs, 1);
    assert_int_equal(f->bus->stats.publish_errors, 3);
    run_until(f, never, 50);
    assert_int_equal(f->nresults, 3); /* once each */
}

/* Redis frozen while connected: nothing fails at the TCP level, but the
 * links' heartbeats notice the silence, the bus goes down and the
 * pending publish fails; thawed, it comes back. */
static void frozen_redis_detected(void **state)
{
    fixture *f = *state;
    server *s = extra_server();
    char url[64];

    server_start(s, free_port(), NULL, NULL);
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", s->port);
    bus_new(f, url, 100);
    wait_state(f, 1);
    server_freeze(s);
    assert_int_equal(ps_bus_publish(f->bus, "job:1", "{\"data\":1}", 10, NULL, on_published, NULL),
                     PS_OK);
    wait_state(f, 0);
    wait_results(f, 1);
    assert_int_equal(f->results[0], PS_EUNAVAILABLE);
    /* Whichever heartbeat saw it first: the cmd link's PING or the sub
     * link's probe. */
    assert_non_null(strstr(ps_bus_last_error(f->bus), "no answer to"));
    kill(s->pid, SIGCONT);
    wait_state(f, 1);
    assert_int_equal(f->bus->stats.reconnects, 1);
}

static void stop_completes_pending_with_closed(void **state)
{
    fixture *f = *state;
    server *s = extra_server();
    int i;

    server_start(s, free_port(), NULL, NULL);
    bus_on_port(f, s->port);
    ps_bus_subscribe(f->bus, "job:1");
    wait_state(f, 1);
    server_freeze(s);
    for (i = 0; i < 3; i++)
        ps_bus_publish(f->bus, "job:1", "{\"data\":1}", 10, NULL, on_published, NULL);
    run_until(f, never, 50);
    assert_int_equal(f->nresults, 0);
    ps_bus_stop(f->bus);
    /* Inside stop, and nothing after it: no state change either. */
    assert_int_equal(f->nresults, 3);
    for (i = 0; i < 3; i++)
        assert_int_equal(f->results[i], PS_ECLOSED);
    assert_int_equal(ps_bus_is_up(f->bus), 0);
    assert_int_equal(ps_bus_publish(f->bus, "job:1", "{}", 2, NULL, on_published, NULL),
                     PS_ECLOSED);
    assert_int_equal(ps_bus_subscribe(f->bus, "job:2"), PS_ECLOSED);
    server_kill(s);
    run_until(f, never, 50);
    assert_int_equal(f->nresults, 3);
    assert_int_equal(f->downs, 0);
}

static void stop_from_on_message(void **state)
{
    fixture *f = *state;
    const char *const want[] = {"wsgw:job:1", NULL};
    redisReply *r;

    bus_on_port(f, main_server.port);
    ps_bus_subscribe(f->bus, "job:1");
    wait_state(f, 1);
    wait_channels(f, main_server.port, want);
    f->stop_on_message = 1;
    /* One script, so both arrive in one read: the second must not be
     * delivered once the first stopped the bus. */
    r = sync_command(main_server.port, NULL, "EVAL %s 1 %s",
                     "redis.call('publish', KEYS[1], 'a'); redis.call('publish', KEYS[1], 'b')",
                     "wsgw:job:1");
    assert_non_null(r);
    freeReplyObject(r);
    wait_msgs(f, 1);
    run_until(f, never, 50);
    assert_int_equal(f->nmsgs, 1);
    assert_int_equal(f->downs, 0);
}

/* A peer that accepts TCP and never answers: the connect timeout fires. */
static void connect_timeout(void **state)
{
    fixture *f = *state;
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    char url[64];

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 64), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", ntohs(a.sin_port));
    bus_new(f, url, 50);
    run_until(f, never, 300);
    close(fd);
    assert_int_equal(f->ups, 0);
    assert_non_null(strstr(ps_bus_last_error(f->bus), "connect timeout"));
}

static void auth_and_acl_users(void **state)
{
    fixture *f = *state;
    const char *const extra[] = {"--requirepass", "s3cret", "--user", "alice", "on",
                                 ">pw",           "~*",     "&*",     "+@all", NULL};
    server *s = extra_server();
    char url[128];

    server_start(s, free_port(), "s3cret", extra);
    snprintf(url, sizeof(url), "redis://:wrong@127.0.0.1:%d", s->port);
    bus_new(f, url, 1000);
    run_until(f, never, 200);
    assert_int_equal(f->ups, 0);
    assert_non_null(strstr(ps_bus_last_error(f->bus), "WRONGPASS"));
    ps_bus_stop(f->bus);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    ps_bus_destroy(f->bus);

    snprintf(url, sizeof(url), "redis://:s3cret@127.0.0.1:%d/3", s->port);
    bus_new(f, url, 1000);
    wait_state(f, 1);
    ps_bus_stop(f->bus);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    ps_bus_destroy(f->bus);

    /* ACL user, password percent-encoded ('>' is not special, but test it) */
    f->up = 0;
    snprintf(url, sizeof(url), "redis://alice:%%70w@127.0.0.1:%d", s->port);
    bus_new(f, url, 1000);
    ps_bus_subscribe(f->bus, "job:1");
    wait_state(f, 1);
    assert_int_equal(ps_bus_publish(f->bus, "job:1", "{\"data\":1}", 10, NULL, on_published, NULL),
                     PS_OK);
    wait_msgs(f, 1);
    assert_msg(f, 0, "job:1", "{\"data\":1}");
}

/* Redis refuses the PUBLISH itself (an ACL user without the permission):
 * the publish completes with PS_EINVAL, the link stays up. */
static void publish_refused_by_redis(void **state)
{
    fixture *f = *state;
    const char *const extra[] = {"--user", "bob",   "on",       ">pw", "~*",
                                 "&*",     "+@all", "-publish", NULL};
    server *s = extra_server();
    char url[128];

    server_start(s, free_port(), NULL, extra);
    snprintf(url, sizeof(url), "redis://bob:pw@127.0.0.1:%d", s->port);
    bus_new(f, url, 1000);
    wait_state(f, 1);
    assert_int_equal(ps_bus_publish(f->bus, "job:1", "{\"data\":1}", 10, NULL, on_published, NULL),
                     PS_OK);
    wait_results(f, 1);
    assert_int_equal(f->results[0], PS_EINVAL);
    assert_int_equal(f->bus->stats.publish_errors, 1);
    assert_non_null(strstr(ps_bus_last_error(f->bus), "NOPERM"));
    assert_int_equal(ps_bus_is_up(f->bus), 1);
    assert_int_equal(f->downs, 0);
}

static int stop_on_up_state;

static void on_state_stop(void *udata, int up)
{
    fixture *f = udata;

    on_state(udata, up);
    ps_bus_stop(f->bus);
    stop_on_up_state++;
}

/* stop() from inside on_state(1) (a hiredis reply callback underneath),
 * and destroy before the loop has closed anything: no callback afterwards,
 * no leak, the loop closes. */
static void stop_from_on_state_then_destroy_early(void **state)
{
    fixture *f = *state;
    ps_bus_callbacks cb = {on_message, on_state_stop, on_subscribed, f};
    ps_redis_opts o;

    memset(&o, 0, sizeof(o));
    assert_int_equal(ps_redis_url_parse("redis://127.0.0.1", &o.url), PS_OK);
    o.url.port = main_server.port;
    f->bus = ps_redis_bus_new(&f->loop, &o, &cb);
    assert_non_null(f->bus);
    ps_bus_subscribe(f->bus, "job:1");
    f->want_up = 1;
    assert_true(run_until(f, is_up, WAIT_MS));
    assert_int_equal(stop_on_up_state, 1);
    assert_int_equal(ps_bus_is_up(f->bus), 0);
    ps_bus_destroy(f->bus); /* before the loop ran: freed by the close callbacks */
    f->bus = NULL;
    run_until(f, never, 30);
    assert_int_equal(f->ups, 1);
    assert_int_equal(f->downs, 0);
}

static void refused_arguments(void **state)
{
    fixture *f = *state;
    static char big[2048];
    ps_redis_opts o;
    ps_bus_callbacks cb = {on_message, on_state, on_subscribed, f};

    bus_on_port(f, main_server.port);
    wait_state(f, 1);
    assert_int_equal(ps_bus_subscribe(f->bus, ""), PS_EINVAL);
    assert_int_equal(ps_bus_subscribe(f->bus, "has space"), PS_EINVAL);
    assert_int_equal(ps_bus_publish(f->bus, "a\tb", "x", 1, NULL, NULL, NULL), PS_EINVAL);
    assert_int_equal(ps_bus_subscribe(f->bus, "job:1"), PS_OK);
    assert_int_equal(ps_bus_subscribe(f->bus, "job:1"), PS_OK); /* idempotent */

    /* max_payload */
    memset(&o, 0, sizeof(o));
    assert_int_equal(ps_redis_url_parse("redis://127.0.0.1", &o.url), PS_OK);
    o.url.port = main_server.port;
    o.max_payload = 1024;
    ps_bus_stop(f->bus);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    ps_bus_destroy(f->bus);
    f->up = 0;
    f->bus = ps_redis_bus_new(&f->loop, &o, &cb);
    assert_non_null(f->bus);
    wait_state(f, 1);
    assert_int_equal(ps_bus_publish(f->bus, "big", big, sizeof(big), NULL, NULL, NULL), PS_ETOOBIG);
    assert_int_equal(ps_bus_publish(f->bus, "big", big, 1024, NULL, on_published, NULL), PS_OK);
    wait_results(f, 1);
    assert_int_equal(f->results[0], PS_OK);

    /* bad options: no bus */
    o.prefix = "has space:";
    assert_null(ps_redis_bus_new(&f->loop, &o, &cb));
    o.prefix = NULL;
    snprintf(o.url.host, sizeof(o.url.host), "no-such-host.invalid");
    assert_null(ps_redis_bus_new(&f->loop, &o, &cb));
    assert_null(ps_redis_bus_new(&f->loop, &o, NULL));
}

/* ---- URLs --------------------------------------------------------------- */

static void url_parse_good(void **state)
{
    ps_redis_url u;

    assert_int_equal(ps_redis_url_parse("redis://localhost", &u), PS_OK);
    assert_string_equal(u.host, "localhost");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);
    assert_string_equal(u.password, "");
    assert_string_equal(u.username, "");

    assert_int_equal(ps_redis_url_parse("redis://:p%40ss@redis.svc:7000/5", &u), PS_OK);
    assert_string_equal(u.host, "redis.svc");
    assert_int_equal(u.port, 7000);
    assert_string_equal(u.password, "p@ss");
    assert_string_equal(u.username, "");
    assert_int_equal(u.db, 5);

    assert_int_equal(ps_redis_url_parse("REDIS://bob:se:cr@t@10.0.0.1:6380/", &u), PS_OK);
    assert_string_equal(u.username, "bob");
    assert_string_equal(u.password, "se:cr@t");
    assert_string_equal(u.host, "10.0.0.1");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 0);

    assert_int_equal(ps_redis_url_parse("redis://[::1]:6390/15", &u), PS_OK);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 6390);
    assert_int_equal(u.db, 15);

    assert_int_equal(ps_redis_url_parse("redis://:@h:1", &u), PS_OK);
    assert_string_equal(u.password, "");
    assert_int_equal(u.port, 1);
}

static void url_parse_bad(void **state)
{
    static const char *bad[] = {
        NULL,
        "",
        "localhost:6379",
        "http://localhost:6379",
        "rediss://localhost:6379",
        "redis://",
        "redis://:6379",
        "redis://host:",
        "redis://host:0",
        "redis://host:65536",
        "redis://host:-1",
        "redis://host:63x9",
        "redis://host:123456",
        "redis://host:6379/x",
        "redis://host:6379/-1",
        "redis://host:6379/1/2",
        "redis://host:6379/99999999999",
        "redis://host:6379?db=1",
        "redis://host:6379#frag",
        "redis://host:6379/1?x",
        "redis://ho st:6379",
        "redis://user@host:6379", /* a user without a password */
        "redis://user:@host:6379",
        "redis://:%zz@host",
        "redis://:%4@host",
        "redis://:a%00b@host",
        "redis://[::1",
        "redis://[nope]:6379",
        "redis://[::1]x:6379",
        "redis://host:6379 ",
    };
    size_t i;
    ps_redis_url u;

    memset(&u, 0x5a, sizeof(u));
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (ps_redis_url_parse(bad[i], &u) != PS_EINVAL)
            fail_msg("accepted: %s", bad[i] ? bad[i] : "(null)");
    assert_int_equal(u.port, 0x5a5a5a5a); /* untouched on failure */
    assert_int_equal(ps_redis_url_parse("redis://h", NULL), PS_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(url_parse_good),
        cmocka_unit_test(url_parse_bad),
        cmocka_unit_test_setup_teardown(comes_up, setup, teardown),
        cmocka_unit_test_setup_teardown(backend_publish_reaches_subscriber, setup, teardown),
        cmocka_unit_test_setup_teardown(publish_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(unsubscribe_leaves_redis, setup, teardown),
        cmocka_unit_test_setup_teardown(subscribe_unsubscribe_churn, setup, teardown),
        cmocka_unit_test_setup_teardown(redis_down_at_start, setup, teardown),
        cmocka_unit_test_setup_teardown(restart_restores_subscriptions, setup, teardown),
        cmocka_unit_test_setup_teardown(many_channels_resubscribed, setup, teardown),
        cmocka_unit_test_setup_teardown(link_drop_fails_pending_publishes, setup, teardown),
        cmocka_unit_test_setup_teardown(frozen_redis_detected, setup, teardown),
        cmocka_unit_test_setup_teardown(stop_completes_pending_with_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(stop_from_on_message, setup, teardown),
        cmocka_unit_test_setup_teardown(connect_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(auth_and_acl_users, setup, teardown),
        cmocka_unit_test_setup_teardown(publish_refused_by_redis, setup, teardown),
        cmocka_unit_test_setup_teardown(stop_from_on_state_then_destroy_early, setup, teardown),
        cmocka_unit_test_setup_teardown(refused_arguments, setup, teardown),
    };
    return cmocka_run_group_tests(tests, servers_setup, servers_teardown);
}
