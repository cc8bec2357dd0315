/*
 * Unit tests of gateway/src/config.c: defaults, WSGW_* variables, flags
 * overriding them, repeatable keys, and the refusals an operator must see.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"

static char err[512];

static int load(gw_config *c, int argc, char **argv)
{
    FILE *devnull = fopen("/dev/null", "w");
    int rc = gw_config_load(c, argc, argv, err, sizeof(err), devnull);
    fclose(devnull);
    return rc;
}

static void clear_env(void)
{
    unsetenv("WSGW_LISTEN");
    unsetenv("WSGW_JWT_SECRET_FILE");
    unsetenv("WSGW_JWT_PUBLIC_KEY");
    unsetenv("WSGW_MAX_MESSAGE_BYTES");
    unsetenv("WSGW_REDIS");
}

static void test_defaults(void **state)
{
    gw_config c;
    char *argv[] = {"wsgw", "--jwt-secret-file", "/s", NULL};
    (void)state;
    clear_env();
    assert_int_equal(load(&c, 3, argv), 0);
    assert_string_equal(c.listen_host, "127.0.0.1");
    assert_int_equal(c.listen_port, 8080);
    assert_null(c.redis_url);
    assert_string_equal(c.redis_prefix, "wsgw:");
    assert_int_equal(c.jwt_leeway_seconds, 30);
    assert_int_equal(c.auth_timeout_ms, 5000);
    assert_int_equal(c.max_message_bytes, 65536);
    assert_int_equal(c.log_level, GW_LOG_INFO);
    gw_config_free(&c);
}

static void test_env_and_flags(void **state)
{
    gw_config c;
    char *argv[] = {"wsgw", "--listen", "0.0.0.0:9000", NULL};
    (void)state;
    clear_env();
    setenv("WSGW_LISTEN", "127.0.0.1:7000", 1);
    setenv("WSGW_JWT_SECRET_FILE", "/env/secret", 1);
    setenv("WSGW_MAX_MESSAGE_BYTES", "2048", 1);
    setenv("WSGW_REDIS", "redis://127.0.0.1:6379", 1);
    assert_int_equal(load(&c, 3, argv), 0);
    /* The flag wins over the variable; the variables fill the rest. */
    assert_string_equal(c.listen_host, "0.0.0.0");
    assert_int_equal(c.listen_port, 9000);
    assert_string_equal(c.jwt_secret_file, "/env/secret");
    assert_int_equal(c.max_message_bytes, 2048);
    assert_string_equal(c.redis_url, "redis://127.0.0.1:6379");
    gw_config_free(&c);
    clear_env();
}

static void test_public_keys(void **state)
{
    gw_config c;
    char *argv[] = {"wsgw", "--jwt-public-key", "k3=/c.pem", NULL};
    (void)state;
    clear_env();
    setenv("WSGW_JWT_PUBLIC_KEY", "k1=/a.pem,/b.pem", 1);
    assert_int_equal(load(&c, 1, argv), 0);
    assert_int_equal(c.jwt_public_keys.n, 2);
    assert_string_equal(c.jwt_public_keys.items[0], "k1=/a.pem");
    assert_string_equal(c.jwt_public_keys.items[1], "/b.pem");
    gw_config_free(&c);
    /* Flags replace the environment's list rather than extend it. */
    assert_int_equal(load(&c, 3, argv), 0);
    assert_int_equal(c.jwt_public_keys.n, 1);
    assert_string_equal(c.jwt_public_keys.items[0], "k3=/c.pem");
    gw_config_free(&c);
    clear_env();
}

static void expect_error(int argc, char **argv, const char *needle)
{
    gw_config c;
    assert_int_equal(load(&c, argc, argv), -1);
    if (!strstr(err, needle))
        fail_msg("error '%s' lacks '%s'", err, needle);
    gw_config_free(&c);
}

static void test_refusals(void **state)
{
    char *no_key[] = {"wsgw", NULL};
    char *bad_listen[] = {"wsgw", "--jwt-secret-file", "/s", "--listen", "nope", NULL};
    char *bad_port[] = {"wsgw", "--jwt-secret-file", "/s", "--listen", "h:99999", NULL};
    char *bad_int[] = {"wsgw", "--jwt-secret-file", "/s", "--auth-timeout-ms", "soon", NULL};
    char *low_int[] = {"wsgw", "--jwt-secret-file", "/s", "--max-message-bytes", "1", NULL};
    char *bad_level[] = {"wsgw", "--jwt-secret-file", "/s", "--log-level", "loud", NULL};
    char *unknown[] = {"wsgw", "--jwt-secret-file", "/s", "--frobnicate", "1", NULL};
    char *stray[] = {"wsgw", "--jwt-secret-file", "/s", "extra", NULL};
    (void)state;
    clear_env();
    expect_error(1, no_key, "no token key");
    expect_error(5, bad_listen, "--listen");
    expect_error(5, bad_port, "--listen");
    expect_error(5, bad_int, "--auth-timeout-ms");
    expect_error(5, low_int, "--max-message-bytes");
    expect_error(5, bad_level, "--log-level");
    expect_error(5, unknown, "--frobnicate");
    expect_error(4, stray, "extra");
}

static void test_help(void **state)
{
    gw_config c;
    char *argv[] = {"wsgw", "--help", NULL};
    (void)state;
    clear_env();
    assert_int_equal(load(&c, 2, argv), 1);
    gw_config_free(&c);
}

static void test_hostport(void **state)
{
    char host[64];
    int port;
    (void)state;
    assert_int_equal(gw_parse_hostport("[::1]:80", host, sizeof(host), &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 80);
    assert_int_equal(gw_parse_hostport("localhost:0", host, sizeof(host), &port), 0);
    assert_int_equal(gw_parse_hostport(":80", host, sizeof(host), &port), -1);
    assert_int_equal(gw_parse_hostport("host:", host, sizeof(host), &port), -1);
    assert_int_equal(gw_parse_hostport("host:-1", host, sizeof(host), &port), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults), cmocka_unit_test(test_env_and_flags),
        cmocka_unit_test(test_public_keys), cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_help), cmocka_unit_test(test_hostport),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
