/*
 * Unit tests of the pure parts of gateway/src/http_api.c: API key files and
 * their constant-time check, the Authorization header, request bodies into
 * (channel, data) messages with every refusal a backend author can hit, and
 * the publish path on the in-process bus (no "from", size limit, result).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "http_api.h"

static char err[512];

#define KEY_A "0123456789abcdef"                  /* exactly 16 bytes */
#define KEY_B "k2-ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ" /* a second key: rotation */

/* ------------------------------------------------------------ key files */

static void test_key_text(void **state)
{
    /* KEY_A with trailing blanks and CRLF, a blank line, spaces only, KEY_B
     * commented out, then KEY_B without a final newline. */
    const char text[] = "# production keys\n"
                        "\n"
                        "0123456789abcdef  \t\r\n"
                        "   \n"
                        "#k2-ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ\n"
                        "k2-ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ";
    gw_api_keys *k = gw_api_keys_new();
    (void)state;
    assert_int_equal(gw_api_keys_add_text(k, text, strlen(text), "f", err, sizeof(err)), 2);
    assert_int_equal(gw_api_keys_count(k), 2);
    assert_true(gw_api_keys_match(k, KEY_A, strlen(KEY_A)));
    assert_true(gw_api_keys_match(k, KEY_B, strlen(KEY_B)));
    /* Trailing whitespace is not part of a key; a prefix, an extension or
     * a commented-out key is not a key. */
    assert_false(gw_api_keys_match(k, KEY_A " ", strlen(KEY_A) + 1));
    assert_false(gw_api_keys_match(k, KEY_A, strlen(KEY_A) - 1));
    assert_false(gw_api_keys_match(k, KEY_A "x", strlen(KEY_A) + 1));
    assert_false(gw_api_keys_match(k, "#" KEY_B, strlen(KEY_B) + 1));
    assert_false(gw_api_keys_match(k, "", 0));
    assert_false(gw_api_keys_match(NULL, KEY_A, strlen(KEY_A)));
    gw_api_keys_free(k);
}

static void expect_key_error(const char *text, const char *what)
{
    gw_api_keys *k = gw_api_keys_new();
    err[0] = '\0';
    assert_int_equal(gw_api_keys_add_text(k, text, strlen(text), "keys.txt", err, sizeof(err)), -1);
    assert_non_null(strstr(err, what));
    assert_non_null(strstr(err, "keys.txt"));
    gw_api_keys_free(k);
}

static void test_key_refusals(void **state)
{
    char long_key[GW_API_KEY_MAX + 2];
    (void)state;
    expect_key_error(KEY_A "\n0123456789abcde\n", "line 2: key shorter than 16 bytes");
    expect_key_error("0123456789 abcdef\n", "spaces or control characters");
    expect_key_error("  " KEY_A "\n", "spaces or control characters");
    expect_key_error("0123456789abcdef\x01\n", "spaces or control characters");
    expect_key_error("0123456789abcdef\xc3\xa9\n", "spaces or control characters");
    memset(long_key, 'k', sizeof(long_key) - 1);
    long_key[sizeof(long_key) - 1] = '\0';
    expect_key_error(long_key, "longer than 1024 bytes");
    /* The key itself never appears in the message. */
    expect_key_error("secret-but-short\x7f\n", "line 1");
    assert_null(strstr(err, "secret"));
}

static void test_key_lengths(void **state)
{
    char max_key[GW_API_KEY_MAX + 1];
    gw_api_keys *k = gw_api_keys_new();
    (void)state;
    /* The bounds are inclusive: 16 and 1024 bytes are keys. */
    assert_int_equal(gw_api_keys_add_text(k, KEY_A, 16, "f", err, sizeof(err)), 1);
    memset(max_key, 'm', GW_API_KEY_MAX);
    max_key[GW_API_KEY_MAX] = '\0';
    assert_int_equal(gw_api_keys_add_text(k, max_key, GW_API_KEY_MAX, "f", err, sizeof(err)), 1);
    assert_true(gw_api_keys_match(k, max_key, GW_API_KEY_MAX));
    assert_int_equal(gw_api_keys_add_text(k, "# only\n\n", 8, "f", err, sizeof(err)), 0);
    assert_int_equal(gw_api_keys_count(k), 2);
    gw_api_keys_free(k);
}

static char *write_temp(const char *text)
{
    char *path = strdup("/tmp/wsgw-test-keys-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void test_key_files(void **state)
{
    gw_strlist files = {0};
    gw_api_keys *k = (gw_api_keys *)1;
    char *a = write_temp(KEY_A "\n"), *b = write_temp("# rotated in\n" KEY_B "\n");
    char *empty = write_temp("# nothing yet\n\n");
    (void)state;

    /* No file: the API is disabled, which is not an error. */
    assert_int_equal(gw_api_keys_load(&files, &k, err, sizeof(err)), 0);
    assert_null(k);

    files.items[0] = a;
    files.items[1] = b;
    files.n = 2;
    assert_int_equal(gw_api_keys_load(&files, &k, err, sizeof(err)), 0);
    assert_int_equal(gw_api_keys_count(k), 2);
    assert_true(gw_api_keys_match(k, KEY_A, strlen(KEY_A)));
    assert_true(gw_api_keys_match(k, KEY_B, strlen(KEY_B)));
    gw_api_keys_free(k);

    files.items[1] = empty;
    assert_int_equal(gw_api_keys_load(&files, &k, err, sizeof(err)), -1);
    assert_null(k);
    assert_non_null(strstr(err, "no key"));

    files.items[1] = "/nonexistent/wsgw-keys";
    assert_int_equal(gw_api_keys_load(&files, &k, err, sizeof(err)), -1);
    assert_null(k);
    assert_non_null(strstr(err, "--api-key-file /nonexistent/wsgw-keys"));

    unlink(a);
    unlink(b);
    unlink(empty);
    free(a);
    free(b);
    free(empty);
}

/* ------------------------------------------------------------ Authorization */

static void expect_bearer(const char *header, const char *key)
{
    const char *k = NULL;
    size_t n = 0;
    if (!key) {
        assert_int_equal(gw_api_bearer(header, strlen(header), &k, &n), -1);
        return;
    }
    assert_int_equal(gw_api_bearer(header, strlen(header), &k, &n), 0);
    assert_int_equal(n, strlen(key));
    assert_memory_equal(k, key, n);
}

static void test_bearer(void **state)
{
    (void)state;
    expect_bearer("Bearer " KEY_A, KEY_A);
    expect_bearer("bearer " KEY_A, KEY_A);
    expect_bearer("BEARER\t  " KEY_A "  ", KEY_A);
    expect_bearer("  Bearer " KEY_A, KEY_A);
    expect_bearer("Bearer", NULL);
    expect_bearer("Bearer ", NULL);
    expect_bearer("Bearer    ", NULL);
    expect_bearer("Bearer" KEY_A, NULL);
    expect_bearer("Basic dXNlcjpwYXNz", NULL);
    expect_bearer(KEY_A, NULL);
    expect_bearer("", NULL);
}

/* ------------------------------------------------------------ bodies */

#define SINGLE_MAX 256

static int parse(const char *body, gw_api_body *b, const char **why)
{
    *why = NULL;
    return gw_api_parse_body(body, strlen(body), SINGLE_MAX, b, why);
}

static void expect_refusal(const char *body, int status, const char *why_expected)
{
    gw_api_body b;
    const char *why;
    assert_int_equal(parse(body, &b, &why), status);
    assert_string_equal(why, why_expected);
    assert_null(b.root);
    assert_null(b.msgs);
}

static void test_single(void **state)
{
    gw_api_body b;
    const char *why;
    (void)state;
    assert_int_equal(parse("{\"channel\":\"job:42\",\"data\":{\"progress\":40},"
                           "\"from\":\"mallory\",\"extra\":1}",
                           &b, &why),
                     0);
    assert_int_equal(b.batch, 0);
    assert_int_equal(b.n, 1);
    assert_string_equal(b.msgs[0].channel, "job:42");
    assert_null(b.msgs[0].error);
    assert_int_equal(json_integer_value(json_object_get(b.msgs[0].data, "progress")), 40);
    gw_api_body_clear(&b);

    /* data may be any JSON value, null included. */
    assert_int_equal(parse("{\"channel\":\"user:alice\",\"data\":null}", &b, &why), 0);
    assert_true(json_is_null(b.msgs[0].data));
    gw_api_body_clear(&b);
    assert_int_equal(parse("{\"data\":\"text\",\"channel\":\"chat:lobby\"}", &b, &why), 0);
    assert_string_equal(json_string_value(b.msgs[0].data), "text");
    gw_api_body_clear(&b);
}

static void test_single_refusals(void **state)
{
    char big[SINGLE_MAX + 64];
    (void)state;
    expect_refusal("", 400, "body is not a JSON object");
    expect_refusal("not json", 400, "body is not a JSON object");
    expect_refusal("[{\"channel\":\"job:1\",\"data\":1}]", 400, "body is not a JSON object");
    expect_refusal("42", 400, "body is not a JSON object");
    expect_refusal("{\"channel\":\"job:1\",\"data\":1} trailing", 400, "body is not a JSON object");
    expect_refusal("{\"channel\":\"job:1\",\"channel\":\"job:2\",\"data\":1}", 400,
                   "body is not a JSON object");
    expect_refusal("{}", 400, "missing channel");
    expect_refusal("{\"data\":1}", 400, "missing channel");
    expect_refusal("{\"channel\":42,\"data\":1}", 400, "bad channel name");
    expect_refusal("{\"channel\":null,\"data\":1}", 400, "bad channel name");
    expect_refusal("{\"channel\":\"nocolon\",\"data\":1}", 400, "bad channel name");
    expect_refusal("{\"channel\":\"job:\",\"data\":1}", 400, "bad channel name");
    expect_refusal("{\"channel\":\":42\",\"data\":1}", 400, "bad channel name");
    expect_refusal("{\"channel\":\"job:4 2\",\"data\":1}", 400, "bad channel name");
    expect_refusal("{\"channel\":\"job:42/x\",\"data\":1}", 400, "bad channel name");
    expect_refusal("{\"channel\":\"job:42\"}", 400, "missing data");
    /* The whole body counts against --max-message-bytes. */
    snprintf(big, sizeof(big), "{\"channel\":\"job:1\",\"data\":\"%0*d\"}", SINGLE_MAX, 0);
    expect_refusal(big, 413, "message larger than --max-message-bytes");
}

static void test_long_channel(void **state)
{
    char body[512], name[AUTH_MAX_CHANNEL_LEN + 2];
    gw_api_body b;
    const char *why;
    (void)state;
    memset(name, 'a', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    name[3] = ':';
    name[AUTH_MAX_CHANNEL_LEN] = '\0'; /* exactly 128 bytes: fine */
    snprintf(body, sizeof(body), "{\"channel\":\"%s\",\"data\":1}", name);
    assert_int_equal(gw_api_parse_body(body, strlen(body), 4096, &b, &why), 0);
    gw_api_body_clear(&b);
    name[AUTH_MAX_CHANNEL_LEN] = 'a'; /* 129 bytes */
    snprintf(body, sizeof(body), "{\"channel\":\"%s\",\"data\":1}", name);
    assert_int_equal(gw_api_parse_body(body, strlen(body), 4096, &b, &why), 400);
    assert_string_equal(why, "bad channel name");
}

static void test_batch(void **state)
{
    gw_api_body b;
    const char *why;
    (void)state;
    assert_int_equal(parse("{\"messages\":["
                           "{\"channel\":\"job:1\",\"data\":{\"state\":\"queued\"}},"
                           "{\"channel\":\"bad\",\"data\":1},"
                           "{\"data\":1},"
                           "{\"channel\":\"job:2\"},"
                           "7,"
                           "{\"channel\":\"job:3\",\"data\":[1,2],\"from\":\"x\"}]}",
                           &b, &why),
                     0);
    assert_int_equal(b.batch, 1);
    assert_int_equal(b.n, 6);
    assert_null(b.msgs[0].error);
    assert_string_equal(b.msgs[0].channel, "job:1");
    assert_string_equal(b.msgs[1].error, "bad channel name");
    assert_null(b.msgs[1].channel);
    assert_string_equal(b.msgs[2].error, "missing channel");
    assert_string_equal(b.msgs[3].error, "missing data");
    assert_string_equal(b.msgs[4].error, "message is not an object");
    assert_null(b.msgs[5].error);
    assert_string_equal(b.msgs[5].channel, "job:3");
    assert_int_equal(json_array_size(b.msgs[5].data), 2);
    gw_api_body_clear(&b);
}

static void test_batch_refusals(void **state)
{
    gw_api_body b;
    const char *why;
    char *body;
    size_t len, n;
    (void)state;
    expect_refusal("{\"messages\":{}}", 400, "messages must be an array");
    expect_refusal("{\"messages\":null}", 400, "messages must be an array");
    expect_refusal("{\"messages\":[]}", 400, "messages is empty");
    expect_refusal("{\"messages\":[{\"channel\":\"job:1\",\"data\":1}],\"channel\":\"job:2\"}", 400,
                   "give either channel and data, or messages");
    expect_refusal("{\"messages\":[{\"channel\":\"job:1\",\"data\":1}],\"data\":2}", 400,
                   "give either channel and data, or messages");

    /* 1000 messages pass, 1001 do not; a batch may exceed the single limit. */
    body = malloc(64 * 1024);
    for (n = 1000; n <= 1001; n++) {
        len = (size_t)sprintf(body, "{\"messages\":[");
        for (size_t i = 0; i < n; i++)
            len += (size_t)sprintf(body + len, "%s{\"channel\":\"job:%zu\",\"data\":1}",
                                   i ? "," : "", i);
        len += (size_t)sprintf(body + len, "]}");
        if (n == 1000) {
            assert_int_equal(gw_api_parse_body(body, len, SINGLE_MAX, &b, &why), 0);
            assert_int_equal(b.n, 1000);
            assert_string_equal(b.msgs[999].channel, "job:999");
            gw_api_body_clear(&b);
        } else {
            assert_int_equal(gw_api_parse_body(body, len, SINGLE_MAX, &b, &why), 413);
            assert_string_equal(why, "more than 1000 messages in one batch");
        }
    }
    free(body);

    /* Over 1 MiB in all: 413 whatever the form, before parsing. */
    len = GW_API_BATCH_MAX_BYTES + 1;
    body = malloc(GW_API_BATCH_MAX_BYTES + 256);
    memset(body, ' ', len);
    memcpy(body, "{\"messages\":[]", 14);
    body[len - 1] = '}';
    assert_int_equal(gw_api_parse_body(body, len, SINGLE_MAX, &b, &why), 413);
    assert_null(b.root);
    /* ... and a batch over 1 MiB is refused even when --max-message-bytes
     * is larger. */
    len = (size_t)sprintf(body, "{\"messages\":[{\"channel\":\"job:1\",\"data\":\"");
    memset(body + len, 'x', GW_API_BATCH_MAX_BYTES);
    len += GW_API_BATCH_MAX_BYTES;
    len += (size_t)sprintf(body + len, "\"}]}");
    assert_int_equal(gw_api_parse_body(body, len, 4 * GW_API_BATCH_MAX_BYTES, &b, &why), 413);
    assert_string_equal(why, "batch larger than 1 MiB");
    free(body);
}

/* ------------------------------------------------------------ publishing */

static void test_result_json(void **state)
{
    ps_publish_result res = {.offset = 7, .epoch = "q3CkV0xZ"};
    json_t *j;
    char *s;
    (void)state;
    j = gw_api_result_json(NULL);
    s = json_dumps(j, JSON_COMPACT);
    assert_string_equal(s, "{}");
    free(s);
    json_decref(j);
    j = gw_api_result_json(&res);
    s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(s, "{\"epoch\":\"q3CkV0xZ\",\"offset\":7}");
    free(s);
    json_decref(j);
}

typedef struct inproc_seen {
    char payload[256];
    int messages, published, status, had_res;
} inproc_seen;

static void seen_message(void *udata, const char *channel, const char *payload, size_t len)
{
    inproc_seen *s = udata;
    (void)channel;
    snprintf(s->payload, sizeof(s->payload), "%.*s", (int)len, payload);
    s->messages++;
}

static void seen_published(void *udata, int status, const ps_publish_result *res)
{
    inproc_seen *s = udata;
    s->published++;
    s->status = status;
    s->had_res = res != NULL;
}

static void test_publish_inproc(void **state)
{
    uv_loop_t loop;
    inproc_seen seen = {0};
    ps_bus_callbacks cb = {.on_message = seen_message, .udata = &seen};
    gw_config cfg;
    ps_bus *bus;
    json_t *data = json_pack("{s:i}", "progress", 40);
    (void)state;

    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(gw_config_parse_namespaces(&cfg, err, sizeof(err)), 0);
    uv_loop_init(&loop);
    bus = ps_inproc_bus_new(&loop, &cb);
    assert_non_null(bus);
    assert_int_equal(ps_bus_subscribe(bus, "other:1"), PS_OK);
    /* A namespace without history: plain publish, no result, no "from". */
    assert_int_equal(gw_api_publish(bus, &cfg, "other:1", data, 1024, 1, seen_published, &seen),
                     PS_OK);
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(seen.published, 1);
    assert_int_equal(seen.status, PS_OK);
    assert_false(seen.had_res);
    assert_int_equal(seen.messages, 1);
    /* The envelope carries the publish time for the latency histogram. */
    {
        static const char head[] = "{\"data\":{\"progress\":40},\"ts\":";
        ps_envelope env;
        assert_memory_equal(seen.payload, head, sizeof(head) - 1);
        assert_int_equal(ps_envelope_parse(seen.payload, strlen(seen.payload), &env), PS_OK);
        assert_true(env.ts_ms > 1700000000000 && env.ts_ms <= ps_now_ms());
        ps_envelope_clear(&env);
    }
    /* The size limit applies to the envelope, before the bus sees it. */
    assert_int_equal(gw_api_publish(bus, &cfg, "other:1", data, 10, 1, seen_published, &seen),
                     PS_ETOOBIG);
    ps_bus_stop(bus);
    uv_run(&loop, UV_RUN_DEFAULT);
    ps_bus_destroy(bus);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(seen.published, 1);
    json_decref(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_text),        cmocka_unit_test(test_key_refusals),
        cmocka_unit_test(test_key_lengths),     cmocka_unit_test(test_key_files),
        cmocka_unit_test(test_bearer),          cmocka_unit_test(test_single),
        cmocka_unit_test(test_single_refusals), cmocka_unit_test(test_long_channel),
        cmocka_unit_test(test_batch),           cmocka_unit_test(test_batch_refusals),
        cmocka_unit_test(test_result_json),     cmocka_unit_test(test_publish_inproc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
