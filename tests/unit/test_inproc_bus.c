/*
 * Unit tests of the in-process bus (pubsub/src/inproc_bus.c).
 *
 * What the gateway relies on: a publish reaches this process's subscribers
 * of that channel only, once, in order, on a later turn of the loop (never
 * from inside ps_bus_publish), the publish callback follows the delivery,
 * and stop() completes whatever is still queued with PS_ECLOSED and then
 * stays silent. Every test ends with the loop closing cleanly (no handle
 * left behind) and, under ASan, no leak.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pubsub/pubsub.h"

/* Everything the bus told us, in order, as text: "S1" state up, "M<ch>=<payload>"
 * a message, "P<tag>:<status>" a publish outcome. */
typedef struct fixture {
    uv_loop_t loop;
    ps_bus *bus;
    char log[1 << 16];
    int messages, states, publishes;
    int in_publish;      /* set around ps_bus_publish calls */
    int stop_on_message; /* call ps_bus_stop from on_message */
    int republish;       /* publish once more from on_message */
} fixture;

static void logf_(fixture *f, const char *fmt, ...)
{
    size_t n = strlen(f->log);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(f->log + n, sizeof(f->log) - n, fmt, ap);
    va_end(ap);
}

static int publish(fixture *f, const char *channel, const char *payload, const char *tag);

static void on_message(void *udata, const char *channel, const char *payload, size_t len)
{
    fixture *f = udata;

    assert_false(f->in_publish); /* never re-entrant */
    f->messages++;
    logf_(f, "M%s=%.*s;", channel, (int)len, payload);
    if (f->republish) {
        f->republish = 0;
        assert_int_equal(publish(f, channel, "again", "r"), PS_OK);
    }
    if (f->stop_on_message)
        ps_bus_stop(f->bus);
}

static void on_state(void *udata, int up)
{
    fixture *f = udata;

    f->states++;
    logf_(f, "S%d;", up);
}

/* The fixture of the running test (cmocka runs them one at a time), so that
 * a publish callback's udata can be just its tag. */
static fixture *current;

static void on_published(void *udata, int status)
{
    fixture *f = current;

    assert_false(f->in_publish);
    f->publishes++;
    logf_(f, "P%s:%d;", (const char *)udata, status);
}

static int publish(fixture *f, const char *channel, const char *payload, const char *tag)
{
    int rc;

    f->in_publish = 1;
    rc = ps_bus_publish(f->bus, channel, payload, strlen(payload), on_published, (void *)tag);
    f->in_publish = 0;
    return rc;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    ps_bus_callbacks cb = {on_message, on_state, f};

    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->bus = ps_inproc_bus_new(&f->loop, &cb);
    assert_non_null(f->bus);
    current = f;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;

    ps_bus_stop(f->bus);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    ps_bus_destroy(f->bus);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

static void run_once(fixture *f)
{
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

/* ---- tests -------------------------------------------------------------- */

static void state_up_from_the_loop(void **state)
{
    fixture *f = *state;

    assert_int_equal(ps_bus_is_up(f->bus), 1);
    assert_int_equal(f->states, 0); /* not from inside ps_inproc_bus_new */
    run_once(f);
    assert_string_equal(f->log, "S1;");
    run_once(f);
    assert_int_equal(f->states, 1);
    assert_string_equal(ps_bus_last_error(f->bus), "");
}

static void delivered_on_a_later_iteration(void **state)
{
    fixture *f = *state;

    run_once(f);
    f->log[0] = '\0';
    assert_int_equal(ps_bus_subscribe(f->bus, "job:42"), PS_OK);
    assert_int_equal(ps_bus_subscribe(f->bus, "job:42"), PS_OK); /* idempotent */
    assert_int_equal(publish(f, "job:42", "{\"data\":{\"progress\":40}}", "a"), PS_OK);
    assert_string_equal(f->log, ""); /* nothing yet */
    run_once(f);
    /* Delivery first, then the publish callback, each once. */
    assert_string_equal(f->log, "Mjob:42={\"data\":{\"progress\":40}};Pa:0;");
    run_once(f);
    assert_int_equal(f->messages, 1);
    assert_int_equal(f->publishes, 1);
    assert_int_equal(f->bus->stats.messages_in, 1);
    assert_int_equal(f->bus->stats.publishes, 1);
}

static void only_subscribed_channels(void **state)
{
    fixture *f = *state;

    run_once(f);
    f->log[0] = '\0';
    ps_bus_subscribe(f->bus, "job:1");
    ps_bus_subscribe(f->bus, "job:2");
    assert_int_equal(ps_bus_unsubscribe(f->bus, "job:2"), PS_OK);
    assert_int_equal(ps_bus_unsubscribe(f->bus, "job:2"), PS_ENOENT);
    publish(f, "job:2", "x", "unsub");
    publish(f, "job:3", "y", "never");
    publish(f, "job:10", "z", "prefix");
    publish(f, "job:1", "w", "sub");
    run_once(f);
    /* A publish nobody hears still succeeds, as with Redis. */
    assert_string_equal(f->log, "Punsub:0;Pnever:0;Pprefix:0;Mjob:1=w;Psub:0;");
    assert_int_equal(f->bus->stats.messages_in, 1);
    assert_int_equal(f->bus->stats.publishes, 4);
}

static void order_is_kept(void **state)
{
    fixture *f = *state;
    char payload[16], want[64];
    int i;

    ps_bus_subscribe(f->bus, "chat:x");
    run_once(f);
    for (i = 0; i < 3000; i++) {
        snprintf(payload, sizeof(payload), "%d", i);
        assert_int_equal(publish(f, "chat:x", payload, "o"), PS_OK);
    }
    f->log[0] = '\0';
    /* At most a batch per iteration, all of them in the end, in order. */
    for (i = 0; i < 10 && f->messages < 3000; i++)
        run_once(f);
    assert_int_equal(f->messages, 3000);
    assert_int_equal(f->publishes, 3000);
    assert_true(i > 1);
    assert_non_null(strstr(f->log, "Mchat:x=0;Po:0;Mchat:x=1;Po:0;Mchat:x=2;"));
    snprintf(want, sizeof(want), "Mchat:x=2998;Po:0;Mchat:x=2999;Po:0;");
    assert_string_equal(f->log + strlen(f->log) - strlen(want), want);
}

static void publish_from_a_callback_waits(void **state)
{
    fixture *f = *state;

    ps_bus_subscribe(f->bus, "chat:x");
    run_once(f);
    f->log[0] = '\0';
    f->republish = 1;
    publish(f, "chat:x", "first", "1");
    run_once(f);
    assert_string_equal(f->log, "Mchat:x=first;P1:0;");
    run_once(f);
    assert_string_equal(f->log, "Mchat:x=first;P1:0;Mchat:x=again;Pr:0;");
}

static void stop_completes_pending(void **state)
{
    fixture *f = *state;

    ps_bus_subscribe(f->bus, "job:1");
    run_once(f);
    f->log[0] = '\0';
    publish(f, "job:1", "a", "a");
    publish(f, "job:1", "b", "b");
    ps_bus_stop(f->bus);
    /* Completed inside stop, in order, not delivered. */
    assert_string_equal(f->log, "Pa:-4;Pb:-4;");
    assert_int_equal(ps_bus_is_up(f->bus), 0);
    assert_int_equal(publish(f, "job:1", "c", "c"), PS_ECLOSED);
    assert_int_equal(ps_bus_subscribe(f->bus, "job:2"), PS_ECLOSED);
    ps_bus_stop(f->bus); /* twice is harmless */
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_string_equal(f->log, "Pa:-4;Pb:-4;"); /* and nothing after */
    assert_int_equal(f->bus->stats.publish_errors, 2);
}

static void stop_from_on_message(void **state)
{
    fixture *f = *state;

    ps_bus_subscribe(f->bus, "job:1");
    run_once(f);
    f->log[0] = '\0';
    f->stop_on_message = 1;
    publish(f, "job:1", "a", "a");
    publish(f, "job:1", "b", "b");
    run_once(f);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_string_equal(f->log, "Mjob:1=a;Pa:-4;Pb:-4;");
}

static void refused_publishes(void **state)
{
    fixture *f = *state;
    static char big[1024 * 1024 + 1];
    int i, rc = PS_OK;

    assert_int_equal(ps_bus_publish(f->bus, "job:1", big, sizeof(big), NULL, NULL), PS_ETOOBIG);
    assert_int_equal(ps_bus_publish(f->bus, "", "x", 1, NULL, NULL), PS_EINVAL);
    assert_int_equal(ps_bus_publish(f->bus, "a b", "x", 1, NULL, NULL), PS_EINVAL);
    assert_int_equal(ps_bus_publish(f->bus, NULL, "x", 1, NULL, NULL), PS_EINVAL);
    assert_int_equal(ps_bus_subscribe(f->bus, "bad\nname"), PS_EINVAL);
    /* The queue is bounded: 65536 wait, the next is refused at once. */
    for (i = 0; i < 65536 && rc == PS_OK; i++)
        rc = ps_bus_publish(f->bus, "job:1", "x", 1, NULL, NULL);
    assert_int_equal(rc, PS_OK);
    assert_int_equal(ps_bus_publish(f->bus, "job:1", "x", 1, NULL, NULL), PS_EUNAVAILABLE);
    /* A NULL callback is fine; the outcome is still counted. */
    ps_bus_stop(f->bus);
    assert_int_equal(f->bus->stats.publish_errors, 65536);
    assert_int_equal(f->publishes, 0);
}

static void destroy_before_the_loop_ran(void **state)
{
    uv_loop_t loop;
    ps_bus_callbacks cb = {on_message, NULL, NULL};
    ps_bus *b;

    assert_int_equal(uv_loop_init(&loop), 0);
    b = ps_inproc_bus_new(&loop, &cb);
    assert_non_null(b);
    assert_int_equal(ps_bus_publish(b, "job:1", "x", 1, NULL, NULL), PS_OK);
    ps_bus_destroy(b); /* the last free waits for the close callback */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    ps_bus_destroy(NULL);
    assert_null(ps_inproc_bus_new(&loop, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(state_up_from_the_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(delivered_on_a_later_iteration, setup, teardown),
        cmocka_unit_test_setup_teardown(only_subscribed_channels, setup, teardown),
        cmocka_unit_test_setup_teardown(order_is_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(publish_from_a_callback_waits, setup, teardown),
        cmocka_unit_test_setup_teardown(stop_completes_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(stop_from_on_message, setup, teardown),
        cmocka_unit_test_setup_teardown(refused_publishes, setup, teardown),
        cmocka_unit_test(destroy_before_the_loop_ran),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
