/*
 * Unit tests of gateway/src/protocol.c: parsing of every client command and
 * every malformed variant, and the exact text of the replies.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "protocol.h"

static int parse(const char *text, gw_cmd *cmd, const char **why)
{
    return gw_cmd_parse(text, strlen(text), cmd, why);
}

/* Parses text, expects GW_PARSE_BAD with a reason containing `needle`. */
static void expect_bad(const char *text, const char *needle)
{
    gw_cmd cmd;
    const char *why = NULL;
    int rc = parse(text, &cmd, &why);
    if (rc != GW_PARSE_BAD)
        fail_msg("expected GW_PARSE_BAD for %s, got %d", text, rc);
    assert_non_null(why);
    if (!strstr(why, needle))
        fail_msg("reason '%s' for %s lacks '%s'", why, text, needle);
    gw_cmd_clear(&cmd);
}

static void expect_not_json(const char *text, size_t len)
{
    gw_cmd cmd;
    const char *why = NULL;
    assert_int_equal(gw_cmd_parse(text, len, &cmd, &why), GW_PARSE_NOT_JSON);
    assert_null(cmd.root);
    assert_non_null(why);
}

static void test_auth(void **state)
{
    gw_cmd cmd;
    const char *why;
    (void)state;
    assert_int_equal(parse("{\"type\":\"auth\",\"token\":\"a.b.c\"}", &cmd, &why), GW_PARSE_OK);
    assert_int_equal(cmd.type, GW_CMD_AUTH);
    assert_int_equal(cmd.token_len, 5);
    assert_memory_equal(cmd.token, "a.b.c", 5);
    assert_false(cmd.has_id);
    gw_cmd_clear(&cmd);
    expect_bad("{\"type\":\"auth\"}", "token");
    expect_bad("{\"type\":\"auth\",\"token\":\"\"}", "token");
    expect_bad("{\"type\":\"auth\",\"token\":42}", "token");
}

static void test_subscribe(void **state)
{
    gw_cmd cmd;
    const char *why;
    (void)state;
    assert_int_equal(parse("{\"type\":\"subscribe\",\"id\":1,\"channel\":\"job:42\"}", &cmd, &why),
                     GW_PARSE_OK);
    assert_int_equal(cmd.type, GW_CMD_SUBSCRIBE);
    assert_true(cmd.has_id);
    assert_int_equal(cmd.id, 1);
    assert_string_equal(cmd.channel, "job:42");
    assert_null(cmd.token);
    assert_false(cmd.since.present);
    gw_cmd_clear(&cmd);

    assert_int_equal(parse("{\"type\":\"subscribe\",\"id\":2,\"channel\":\"job:42\",\"token\":\"t\","
                           "\"since\":{\"offset\":7,\"epoch\":\"Ab-9_\"}}",
                           &cmd, &why),
                     GW_PARSE_OK);
    assert_non_null(cmd.token);
    assert_true(cmd.since.present);
    assert_int_equal(cmd.since.offset, 7);
    assert_string_equal(cmd.since.epoch, "Ab-9_");
    gw_cmd_clear(&cmd);
}

static void test_subscribe_malformed(void **state)
{
    (void)state;
    expect_bad("{\"type\":\"subscribe\"}", "channel");
    expect_bad("{\"type\":\"subscribe\",\"channel\":7}", "channel");
    expect_bad("{\"type\":\"subscribe\",\"channel\":\"nocolon\"}", "bad channel");
    expect_bad("{\"type\":\"subscribe\",\"channel\":\"job:4 2\"}", "bad channel");
    expect_bad("{\"type\":\"subscribe\",\"channel\":\"job:42\",\"token\":5}", "token");
    expect_bad("{\"type\":\"subscribe\",\"channel\":\"job:1\",\"since\":5}", "since");
    expect_bad("{\"type\":\"subscribe\",\"channel\":\"job:1\",\"since\":{\"offset\":-1,"
               "\"epoch\":\"e\"}}",
               "since");
    expect_bad("{\"type\":\"subscribe\",\"channel\":\"job:1\",\"since\":{\"offset\":1.5,"
               "\"epoch\":\"e\"}}",
               "since");
    expect_bad("{\"type\":\"subscribe\",\"channel\":\"job:1\",\"since\":{\"offset\":1}}", "since");
    expect_bad("{\"type\":\"subscribe\",\"channel\":\"job:1\",\"since\":{\"offset\":1,"
               "\"epoch\":\"a b\"}}",
               "since");
}

static void test_channel_length(void **state)
{
    char msg[512], ch[200];
    gw_cmd cmd;
    const char *why;
    (void)state;
    memset(ch, 'a', sizeof(ch));
    memcpy(ch, "job:", 4);
    ch[128] = '\0'; /* exactly 128 bytes: allowed */
    snprintf(msg, sizeof(msg), "{\"type\":\"unsubscribe\",\"channel\":\"%s\"}", ch);
    assert_int_equal(parse(msg, &cmd, &why), GW_PARSE_OK);
    assert_int_equal(strlen(cmd.channel), 128);
    gw_cmd_clear(&cmd);
    ch[128] = 'a';
    ch[129] = '\0'; /* 129: refused */
    snprintf(msg, sizeof(msg), "{\"type\":\"unsubscribe\",\"channel\":\"%s\"}", ch);
    expect_bad(msg, "bad channel");
}

static void test_publish(void **state)
{
    gw_cmd cmd;
    const char *why;
    (void)state;
    assert_int_equal(parse("{\"type\":\"publish\",\"id\":3,\"channel\":\"chat:lobby\","
                           "\"data\":{\"text\":\"hi\"},\"from\":\"mallory\"}",
                           &cmd, &why),
                     GW_PARSE_OK);
    assert_int_equal(cmd.type, GW_CMD_PUBLISH);
    assert_string_equal(cmd.channel, "chat:lobby");
    assert_true(json_is_object(cmd.data));
    gw_cmd_clear(&cmd);
    /* Any JSON value is data, null included. */
    assert_int_equal(parse("{\"type\":\"publish\",\"channel\":\"chat:x\",\"data\":null}", &cmd, &why),
                     GW_PARSE_OK);
    assert_true(json_is_null(cmd.data));
    gw_cmd_clear(&cmd);
    expect_bad("{\"type\":\"publish\",\"channel\":\"chat:x\"}", "data");
    expect_bad("{\"type\":\"publish\",\"data\":1}", "channel");
}

static void test_other_commands(void **state)
{
    gw_cmd cmd;
    const char *why;
    (void)state;
    assert_int_equal(parse("{\"type\":\"ping\",\"id\":5}", &cmd, &why), GW_PARSE_OK);
    assert_int_equal(cmd.type, GW_CMD_PING);
    assert_int_equal(cmd.id, 5);
    gw_cmd_clear(&cmd);
    assert_int_equal(parse("{\"type\":\"refresh\",\"id\":4,\"token\":\"x.y.z\"}", &cmd, &why),
                     GW_PARSE_OK);
    assert_int_equal(cmd.type, GW_CMD_REFRESH);
    gw_cmd_clear(&cmd);
    assert_int_equal(parse("{\"type\":\"unsubscribe\",\"id\":2,\"channel\":\"job:42\"}", &cmd, &why),
                     GW_PARSE_OK);
    assert_int_equal(cmd.type, GW_CMD_UNSUBSCRIBE);
    gw_cmd_clear(&cmd);
    expect_bad("{\"type\":\"refresh\"}", "token");
    expect_bad("{\"type\":\"unsubscribe\"}", "channel");
}

static void test_head_errors(void **state)
{
    gw_cmd cmd;
    const char *why;
    (void)state;
    expect_bad("{}", "type");
    expect_bad("{\"type\":5}", "type");
    expect_bad("{\"type\":\"dance\"}", "unknown type");
    expect_bad("{\"type\":\"ping\",\"id\":\"7\"}", "id");
    expect_bad("{\"type\":\"ping\",\"id\":1.5}", "id");
    /* The id is kept for the error reply when it was valid. */
    assert_int_equal(parse("{\"type\":\"dance\",\"id\":9}", &cmd, &why), GW_PARSE_BAD);
    assert_true(cmd.has_id);
    assert_int_equal(cmd.id, 9);
    gw_cmd_clear(&cmd);
}

static void test_not_json(void **state)
{
    (void)state;
    expect_not_json("", 0);
    expect_not_json("hello", 5);
    expect_not_json("[1,2]", 5);
    expect_not_json("\"auth\"", 6);
    expect_not_json("{\"type\":\"ping\"", 14);
    expect_not_json("{\"type\":\"ping\"} x", 17);
    expect_not_json("{\"type\":\"ping\",\"type\":\"auth\"}", 29); /* duplicate keys */
    expect_not_json("{\"type\":\"\xff\"}", 11);                   /* invalid UTF-8 */
    expect_not_json("{\"a\":\"\\u0000\"}", 14);                   /* NUL in a string */
    /* Not NUL terminated: parse stops at len. */
    expect_not_json("{\"type\":\"ping\"}", 10);
}

static void test_replies(void **state)
{
    ps_frame *f;
    (void)state;
    f = gw_reply_auth_ok("alice", "c-1", 1700000000, 16);
    assert_non_null(f);
    assert_int_equal(f->headroom, 16);
    assert_string_equal((char *)ps_frame_data(f),
                        "{\"type\":\"auth_ok\",\"user\":\"alice\",\"conn\":\"c-1\",\"exp\":1700000000}");
    ps_frame_unref(f);
    f = gw_reply_simple("subscribed", 1, 1, "job:42", 16);
    assert_string_equal((char *)ps_frame_data(f),
                        "{\"type\":\"subscribed\",\"channel\":\"job:42\",\"id\":1}");
    assert_int_equal(f->len, strlen((char *)ps_frame_data(f)));
    ps_frame_unref(f);
    f = gw_reply_simple("pong", 0, 0, NULL, 0);
    assert_string_equal((char *)ps_frame_data(f), "{\"type\":\"pong\"}");
    ps_frame_unref(f);
    f = gw_reply_error(1, 3, GW_ERR_FORBIDDEN, "no", "chat:x", 16);
    assert_string_equal((char *)ps_frame_data(f), "{\"type\":\"error\",\"code\":\"forbidden\","
                                                  "\"message\":\"no\",\"channel\":\"chat:x\",\"id\":3}");
    ps_frame_unref(f);
    {
        ps_publish_result res = {.offset = 7, .epoch = "Ep0"};
        f = gw_reply_published(1, 3, &res, 16);
        assert_string_equal((char *)ps_frame_data(f),
                            "{\"type\":\"published\",\"offset\":7,\"epoch\":\"Ep0\",\"id\":3}");
        ps_frame_unref(f);
        f = gw_reply_published(0, 0, NULL, 16);
        assert_string_equal((char *)ps_frame_data(f), "{\"type\":\"published\"}");
        ps_frame_unref(f);
    }
    f = gw_reply_refreshed(1, 4, 99, 16);
    assert_string_equal((char *)ps_frame_data(f), "{\"type\":\"refreshed\",\"exp\":99,\"id\":4}");
    ps_frame_unref(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth),           cmocka_unit_test(test_subscribe),
        cmocka_unit_test(test_subscribe_malformed), cmocka_unit_test(test_channel_length),
        cmocka_unit_test(test_publish),        cmocka_unit_test(test_other_commands),
        cmocka_unit_test(test_head_errors),    cmocka_unit_test(test_not_json),
        cmocka_unit_test(test_replies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
