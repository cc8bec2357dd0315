/*
 * Unit tests of gateway/src/client_limits.c: the publish token bucket (burst,
 * refill, the abuse window), the Origin check, the per-address connect
 * table and the resolution of --max-connections 0. The parts that need a
 * running server (admission of an fd, the upgrade check) are covered by
 * tests/integration/limits.test.mjs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>

#include <cmocka.h>

#include "client_limits.h"

static void bucket_burst_then_refill(void **state)
{
    gw_rate r;
    (void)state;
    gw_rate_init(&r, 5, 1000);
    for (int i = 0; i < 5; i++)
        assert_int_equal(gw_rate_take(&r, 2, 5, 1000), GW_RATE_OK);
    assert_int_equal(gw_rate_take(&r, 2, 5, 1000), GW_RATE_LIMITED);
    /* 2 per second: one token every 500 ms, and not before. */
    assert_int_equal(gw_rate_take(&r, 2, 5, 1499), GW_RATE_LIMITED);
    assert_int_equal(gw_rate_take(&r, 2, 5, 1500), GW_RATE_OK);
    assert_int_equal(gw_rate_take(&r, 2, 5, 1500), GW_RATE_LIMITED);
    /* An idle minute refills to the burst, no further. */
    for (int i = 0; i < 5; i++)
        assert_int_equal(gw_rate_take(&r, 2, 5, 61500), GW_RATE_OK);
    assert_int_equal(gw_rate_take(&r, 2, 5, 61500), GW_RATE_LIMITED);
}

static void abuse_after_ten_times_rate_refusals(void **state)
{
    gw_rate r;
    (void)state;
    gw_rate_init(&r, 1, 0);
    assert_int_equal(gw_rate_take(&r, 1, 1, 0), GW_RATE_OK);
    /* rate 1: 10 refusals are answered, the 11th within 10 s is abuse. */
    for (int i = 0; i < 10; i++)
        assert_int_equal(gw_rate_take(&r, 1, 1, 10 + (uint64_t)i), GW_RATE_LIMITED);
    assert_int_equal(gw_rate_take(&r, 1, 1, 20), GW_RATE_ABUSE);
}

static void abuse_window_restarts(void **state)
{
    gw_rate r;
    uint64_t t = 0;
    (void)state;
    gw_rate_init(&r, 1, t);
    assert_int_equal(gw_rate_take(&r, 1, 1, t), GW_RATE_OK);
    /* 9 refusals, then 10 s pass (the tokens they earn are spent first):
     * the window starts over and allows 10 more refusals. */
    for (int i = 0; i < 9; i++)
        assert_int_equal(gw_rate_take(&r, 1, 1, t + 1), GW_RATE_LIMITED);
    t += 10001;
    assert_int_equal(gw_rate_take(&r, 1, 1, t), GW_RATE_OK);
    for (int i = 0; i < 10; i++)
        assert_int_equal(gw_rate_take(&r, 1, 1, t), GW_RATE_LIMITED);
    assert_int_equal(gw_rate_take(&r, 1, 1, t), GW_RATE_ABUSE);
}

static void bucket_survives_clock_wrap(void **state)
{
    gw_rate r;
    uint64_t t = 0xfffffc00u; /* the low 32 bits wrap 1024 ms later */
    (void)state;
    gw_rate_init(&r, 1, t);
    assert_int_equal(gw_rate_take(&r, 1, 1, t), GW_RATE_OK);
    assert_int_equal(gw_rate_take(&r, 1, 1, t + 1100), GW_RATE_OK);
}

static void origins(void **state)
{
    gw_strlist none = {.n = 0};
    gw_strlist two = {.items = {"https://app.example.com", "http://localhost:3000"}, .n = 2};
    (void)state;
    assert_true(gw_limits_origin_allowed(&none, "https://evil.example"));
    assert_true(gw_limits_origin_allowed(&none, NULL));
    assert_true(gw_limits_origin_allowed(&two, "https://app.example.com"));
    assert_true(gw_limits_origin_allowed(&two, "http://localhost:3000"));
    assert_true(gw_limits_origin_allowed(&two, NULL)); /* not a browser */
    assert_false(gw_limits_origin_allowed(&two, "https://app.example.com.evil.test"));
    assert_false(gw_limits_origin_allowed(&two, "https://APP.example.com"));
    assert_false(gw_limits_origin_allowed(&two, "null"));
    assert_false(gw_limits_origin_allowed(&two, ""));
}

static void ip_table_prunes(void **state)
{
    gw_ip_table *t = gw_ip_table_new();
    (void)state;
    assert_non_null(t);
    assert_int_equal(gw_ip_table_size(t), 0);
    gw_ip_table_prune(t, 5000);
    gw_ip_table_free(t);
    gw_ip_table_free(NULL);
    assert_int_equal(gw_ip_table_size(NULL), 0);
}

static void max_connections_default(void **state)
{
    gw_config c = {0};
    struct rlimit rl;
    (void)state;
    c.max_connections = 123;
    assert_int_equal(gw_limits_max_connections(&c), 123);
    c.max_connections = 0;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur > 512)
        assert_int_equal(gw_limits_max_connections(&c), (int64_t)rl.rlim_cur - 256);
    assert_true(gw_limits_max_connections(&c) > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bucket_burst_then_refill),
        cmocka_unit_test(abuse_after_ten_times_rate_refusals),
        cmocka_unit_test(abuse_window_restarts),
        cmocka_unit_test(bucket_survives_clock_wrap),
        cmocka_unit_test(origins),
        cmocka_unit_test(ip_table_prunes),
        cmocka_unit_test(max_connections_default),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
