/*
 * Unit tests of envelopes and frames (pubsub/src/envelope.c, frame.c).
 *
 * What a subscriber would notice: a payload a backend PUBLISHes either
 * becomes exactly the documented client frame, or is refused as a whole
 * (PS_EENVELOPE) and never half-delivered; what the gateway encodes for a
 * client publish parses back to the same data and sender; a batch's array
 * of envelopes comes apart into exactly its envelopes, in order, and a
 * malformed one gives out nothing past the point it breaks.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "bus_internal.h" /* the batch splitter */
#include "pubsub/pubsub.h"

#define HEADROOM 16 /* LWS_PRE on Debian 12 */

static int parse(const char *text, ps_envelope *env)
{
    return ps_envelope_parse(text, strlen(text), env);
}

static void assert_invalid(const char *text)
{
    ps_envelope env;

    if (parse(text, &env) != PS_EENVELOPE)
        fail_msg("accepted as an envelope: %s", text);
    /* A refused payload leaves nothing to clear. */
    assert_null(env.root);
    assert_null(env.data);
    assert_null(env.from);
    assert_null(env.epoch);
    assert_int_equal(env.offset, -1);
}

/* Parses text and asserts the frame built from it on channel is want. */
static void assert_frame(const char *text, const char *channel, const char *want)
{
    ps_envelope env;
    ps_frame *f;

    assert_int_equal(parse(text, &env), PS_OK);
    f = ps_envelope_frame(&env, channel, HEADROOM);
    ps_envelope_clear(&env);
    assert_non_null(f);
    assert_int_equal(f->refs, 1);
    assert_int_equal(f->headroom, HEADROOM);
    assert_int_equal(f->len, strlen(want));
    assert_memory_equal(ps_frame_data(f), want, f->len);
    assert_int_equal(ps_frame_data(f)[f->len], '\0');
    ps_frame_unref(f);
}

/* ---- valid envelopes ---------------------------------------------------- */

static void data_of_every_type(void **state)
{
    static const char *cases[][2] = {
        {"{\"data\":{\"progress\":40}}", "{\"progress\":40}"},
        {"{\"data\":[1,2,3]}", "[1,2,3]"},
        {"{\"data\":\"text\"}", "\"text\""},
        {"{\"data\":42}", "42"},
        {"{\"data\":-1.5}", "-1.5"},
        {"{\"data\":true}", "true"},
        {"{\"data\":false}", "false"},
        {"{\"data\":null}", "null"},
        {"{\"data\":{}}", "{}"},
        {"{\"data\":\"\\u00e9t\\u00e9 \\ud83d\\ude00\"}", "\"\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80\""},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ps_envelope env;
        char *dump;
        assert_int_equal(parse(cases[i][0], &env), PS_OK);
        assert_non_null(env.data);
        assert_null(env.from);
        assert_null(env.epoch);
        assert_int_equal(env.offset, -1);
        dump = json_dumps(env.data, JSON_COMPACT | JSON_ENCODE_ANY);
        assert_string_equal(dump, cases[i][1]);
        free(dump);
        ps_envelope_clear(&env);
    }
}

static void optional_fields(void **state)
{
    ps_envelope env;
    const char *text = "{ \"epoch\": \"e-1_X\", \"offset\": 7, \"from\": \"alice@example.com\","
                       " \"data\": {\"a\": 1}, \"extra\": [\"ignored\"] }\n";

    assert_int_equal(parse(text, &env), PS_OK);
    assert_string_equal(env.from, "alice@example.com");
    assert_string_equal(env.epoch, "e-1_X");
    assert_int_equal(env.offset, 7);
    assert_true(json_is_object(env.data));
    ps_envelope_clear(&env);
    assert_null(env.root);
    ps_envelope_clear(&env); /* twice is harmless */

    assert_int_equal(parse("{\"data\":1,\"offset\":0}", &env), PS_OK);
    assert_int_equal(env.offset, 0);
    assert_int_equal(env.ts_ms, -1);
    ps_envelope_clear(&env);

    assert_int_equal(parse("{\"data\":1,\"ts\":1700000000123}", &env), PS_OK);
    assert_int_equal(env.ts_ms, 1700000000123);
    ps_envelope_clear(&env);
}

static void limits_of_from_and_epoch(void **state)
{
    char from[160], epoch[80], text[400];
    ps_envelope env;

    memset(from, 'a', 128);
    from[128] = '\0';
    memset(epoch, 'E', PS_EPOCH_MAX);
    epoch[PS_EPOCH_MAX] = '\0';
    snprintf(text, sizeof(text), "{\"data\":0,\"from\":\"%s\",\"epoch\":\"%s\"}", from, epoch);
    assert_int_equal(parse(text, &env), PS_OK);
    assert_int_equal(strlen(env.from), 128);
    assert_int_equal(strlen(env.epoch), PS_EPOCH_MAX);
    ps_envelope_clear(&env);

    snprintf(text, sizeof(text), "{\"data\":0,\"from\":\"%sa\"}", from);
    assert_invalid(text);
    snprintf(text, sizeof(text), "{\"data\":0,\"epoch\":\"%sE\"}", epoch);
    assert_invalid(text);
}

/* ---- invalid envelopes -------------------------------------------------- */

static void invalid_json(void **state)
{
    ps_envelope env;

    assert_invalid("");
    assert_invalid("not json");
    assert_invalid("{\"data\":1");
    assert_invalid("{\"data\":1}}");                /* trailing garbage */
    assert_invalid("{\"data\":1} x");               /* trailing garbage */
    assert_invalid("{\"data\":1}{\"data\":2}");     /* two documents */
    assert_invalid("{\"data\":1,\"data\":2}");      /* duplicate key */
    assert_invalid("{\"data\":{\"a\":1,\"a\":2}}"); /* duplicate, nested */
    assert_invalid("{\"data\":\"\xff\"}");          /* invalid UTF-8 */
    assert_invalid("{\"data\":\"\xc3\"}");          /* truncated UTF-8 */
    assert_invalid("{\"data\":\"a\\u0000b\"}");     /* NUL in a string */
    assert_invalid("{\"data\":NaN}");
    /* Exactly len bytes are read: the same text cut short is refused. */
    assert_int_equal(ps_envelope_parse("{\"data\":1}", 9, &env), PS_EENVELOPE);
    assert_int_equal(ps_envelope_parse(NULL, 0, &env), PS_EENVELOPE);
}

static void invalid_shape(void **state)
{
    assert_invalid("[{\"data\":1}]"); /* top-level array */
    assert_invalid("\"data\"");       /* top-level scalar */
    assert_invalid("42");
    assert_invalid("null");
    assert_invalid("{}"); /* no data */
    assert_invalid("{\"Data\":1}");
    assert_invalid("{\"from\":\"alice\"}");
}

static void invalid_fields(void **state)
{
    assert_invalid("{\"data\":1,\"from\":42}");
    assert_invalid("{\"data\":1,\"from\":null}");
    assert_invalid("{\"data\":1,\"from\":\"\"}");
    assert_invalid("{\"data\":1,\"from\":\"al ice\"}");
    assert_invalid("{\"data\":1,\"from\":\"al\\\"ice\"}");
    assert_invalid("{\"data\":1,\"from\":\"b\xc3\xa9\"}"); /* non-ASCII */
    assert_invalid("{\"data\":1,\"from\":[\"alice\"]}");
    assert_invalid("{\"data\":1,\"offset\":-1}");
    assert_invalid("{\"data\":1,\"offset\":1.0}");
    assert_invalid("{\"data\":1,\"offset\":1.5}");
    assert_invalid("{\"data\":1,\"offset\":\"7\"}");
    assert_invalid("{\"data\":1,\"offset\":null}");
    assert_invalid("{\"data\":1,\"offset\":99999999999999999999999}");
    assert_invalid("{\"data\":1,\"epoch\":7}");
    assert_invalid("{\"data\":1,\"epoch\":\"\"}");
    assert_invalid("{\"data\":1,\"epoch\":\"a.b\"}");
    assert_invalid("{\"data\":1,\"epoch\":\"a:b\"}");
    assert_invalid("{\"data\":1,\"ts\":-5}");
    assert_invalid("{\"data\":1,\"ts\":\"now\"}");
    assert_invalid("{\"data\":1,\"ts\":1.5}");
}

/* ---- frames ------------------------------------------------------------- */

static void frame_text(void **state)
{
    assert_frame("{\"data\":{\"progress\":40}}", "job:42",
                 "{\"type\":\"message\",\"channel\":\"job:42\",\"data\":{\"progress\":40}}");
    assert_frame("{\"from\":\"alice\",\"epoch\":\"Ab_9\",\"offset\":7,\"data\":[1, \"x\"]}",
                 "chat:lobby",
                 "{\"type\":\"message\",\"channel\":\"chat:lobby\",\"data\":[1,\"x\"],"
                 "\"offset\":7,\"epoch\":\"Ab_9\",\"from\":\"alice\"}");
    assert_frame("{\"data\":\"\\u00e9\\n\"}", "c",
                 "{\"type\":\"message\",\"channel\":\"c\","
                 "\"data\":\"\xc3\xa9\\n\"}");
    assert_frame("{\"data\":null,\"offset\":0}", "c",
                 "{\"type\":\"message\",\"channel\":\"c\",\"data\":null,\"offset\":0}");
    /* ts is for the gateway's metrics, not for clients */
    assert_frame("{\"data\":1,\"ts\":1700000000123}", "c",
                 "{\"type\":\"message\",\"channel\":\"c\",\"data\":1}");
}

static void frame_escapes_channel(void **state)
{
    assert_frame("{\"data\":1}", "a\"b\\c\x01",
                 "{\"type\":\"message\",\"channel\":\"a\\\"b\\\\c\\u0001\",\"data\":1}");
}

/* A frame is valid JSON whose data equals the payload's, also when the data
 * is too big for the first buffer guess. */
static void frame_large_data(void **state)
{
    size_t n = 100000, i;
    char *text = malloc(n + 64);
    ps_envelope env;
    ps_frame *f;
    json_t *back;

    strcpy(text, "{\"data\":\"");
    for (i = 0; i < n; i++)
        text[9 + i] = (char)('a' + i % 26);
    strcpy(text + 9 + n, "\"}");
    assert_int_equal(parse(text, &env), PS_OK);
    f = ps_envelope_frame(&env, "job:1", 0);
    assert_non_null(f);
    back = json_loadb((const char *)ps_frame_data(f), f->len, 0, NULL);
    assert_non_null(back);
    assert_true(json_equal(json_object_get(back, "data"), env.data));
    assert_string_equal(json_string_value(json_object_get(back, "channel")), "job:1");
    json_decref(back);
    ps_frame_unref(f);
    ps_envelope_clear(&env);
    free(text);
}

static void frame_refcount(void **state)
{
    ps_frame *f = ps_frame_new(HEADROOM, 5);

    assert_non_null(f);
    assert_int_equal(f->refs, 1);
    memcpy(ps_frame_data(f), "hello", 5);
    assert_int_equal(ps_frame_data(f)[5], '\0');
    assert_ptr_equal(ps_frame_ref(f), f);
    assert_int_equal(f->refs, 2);
    ps_frame_unref(f);
    assert_int_equal(f->refs, 1);
    assert_memory_equal(f->buf + HEADROOM, "hello", 5);
    ps_frame_unref(f); /* frees; ASan would see a leak otherwise */
    ps_frame_unref(NULL);
    assert_null(ps_frame_new(0, (size_t)-1));
}

/* ---- encode ------------------------------------------------------------- */

static void encode_round_trip(void **state)
{
    json_t *values[] = {json_pack("{s:i,s:[s,b]}", "progress", 40, "log", "x", 1),
                        json_string("caf\xc3\xa9 \"q\""),
                        json_integer(-3),
                        json_real(0.25),
                        json_true(),
                        json_null(),
                        json_array()};
    const char *froms[] = {NULL, "alice", "svc_backend-1.eu@corp"};
    size_t i, j;

    for (i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        for (j = 0; j < 3; j++) {
            char *out = NULL;
            size_t len = 0;
            ps_envelope env;
            assert_int_equal(ps_envelope_encode(values[i], froms[j], -1, &out, &len), PS_OK);
            assert_int_equal(strlen(out), len);
            assert_int_equal(ps_envelope_parse(out, len, &env), PS_OK);
            assert_true(json_equal(env.data, values[i]));
            if (froms[j])
                assert_string_equal(env.from, froms[j]);
            else
                assert_null(env.from);
            ps_envelope_clear(&env);
            free(out);
        }
        json_decref(values[i]);
    }
}

static void encode_exact_and_refused(void **state)
{
    json_t *data = json_pack("{s:i}", "n", 1);
    char *out = NULL;
    size_t len;

    assert_int_equal(ps_envelope_encode(data, "bob", -1, &out, &len), PS_OK);
    assert_string_equal(out, "{\"data\":{\"n\":1},\"from\":\"bob\"}");
    free(out);
    assert_int_equal(ps_envelope_encode(data, NULL, -1, &out, &len), PS_OK);
    assert_string_equal(out, "{\"data\":{\"n\":1}}");
    free(out);
    assert_int_equal(ps_envelope_encode(data, "bob", 1700000000123, &out, &len), PS_OK);
    assert_string_equal(out, "{\"data\":{\"n\":1},\"from\":\"bob\",\"ts\":1700000000123}");
    free(out);
    out = NULL;
    assert_int_equal(ps_envelope_encode(data, "bad sub", -1, &out, &len), PS_EINVAL);
    assert_int_equal(ps_envelope_encode(data, "", -1, &out, &len), PS_EINVAL);
    assert_int_equal(ps_envelope_encode(NULL, "bob", -1, &out, &len), PS_EINVAL);
    assert_null(out);
    json_decref(data);
}

/* The envelopes the splitter gives out for payload, joined by '|'. */
static const char *split(const char *payload)
{
    static char out[512];
    ps__splitter sp;
    const char *text;
    size_t len, at = 0;

    out[0] = '\0';
    ps__envelopes_begin(&sp, payload, strlen(payload));
    while (ps__envelopes_next(&sp, &text, &len)) {
        assert_true(at + len + 2 < sizeof(out));
        if (at)
            out[at++] = '|';
        memcpy(out + at, text, len);
        at += len;
        out[at] = '\0';
    }
    ps__envelopes_end(&sp);
    return out;
}

static void batches_split(void **state)
{
    (void)state;
    /* Not an array: the whole payload, once, blanks included. */
    assert_string_equal(split(" {\"data\":1} "), " {\"data\":1} ");
    assert_string_equal(split("raw"), "raw");
    assert_string_equal(split("[{\"data\":1,\"offset\":1}]"), "{\"data\":1,\"offset\":1}");
    assert_string_equal(split(" [ {\"data\":1} ,\n{\"data\":[2,{}]} ] "),
                        "{\"data\":1}|{\"data\":[2,{}]}");
    /* Brackets, quotes and backslashes inside strings do not count. */
    assert_string_equal(split("[{\"data\":\"}]\\\"{\"},{\"data\":\"\\\\\"}]"),
                        "{\"data\":\"}]\\\"{\"}|{\"data\":\"\\\\\"}");
    /* Broken arrays: what comes before the break, and nothing after it. */
    assert_string_equal(split("[]"), "");
    assert_string_equal(split("["), "");
    assert_string_equal(split("[1,{\"data\":1}]"), "");
    assert_string_equal(split("[{\"data\":1},2]"), "{\"data\":1}");
    assert_string_equal(split("[{\"data\":1}{\"data\":2}]"), "");
    assert_string_equal(split("[{\"data\":1},{\"data\":2}"), "{\"data\":1}");
    assert_string_equal(split("[{\"data\":1},{\"data\":2}]x"), "{\"data\":1}");
    assert_string_equal(split("[{\"data\":\"}]"), "");
    assert_string_equal(split("[{\"data\":1]]"), "");
}

/* A batch from the history script: [first offset,"epoch",envelopes...].
 * Each envelope comes out complete, with its own offset and the epoch
 * appended as a history read appends them (head, separator, fields), and
 * parses with exactly those. */
static void batches_with_a_header_split(void **state)
{
    static const char batch[] = "[41,\"E\",{\"data\":41},{\"data\":42,\"from\":\"bob\"}]";
    static const char *const broken[] = {
        "[41,{\"data\":1}]",
        "[41,\"E p\",{\"data\":1}]",
        "[41,\"\",{\"data\":1}]",
        "[1,\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef_\",{}]",
        "[41,\"E\"]",
        "[41,\"E\"",
        "[-1,\"E\",{\"data\":1}]",
        "[1.5,\"E\",{\"data\":1}]",
        "[1234567890123456789,\"E\",{\"data\":1}]",
        "[92332720368547758077,\"E\",{\"data\":1}]",
    };
    ps__splitter sp;
    ps_envelope env;
    const char *text;
    size_t len, i;
    int64_t want = 41;

    (void)state;
    assert_string_equal(split("[41,\"Ep-0_z\",{\"data\":1},{ },{\"data\":\"},\\\"{\",\"ts\":5 }]"),
                        "{\"data\":1,\"offset\":41,\"epoch\":\"Ep-0_z\"}|"
                        "{ \"offset\":42,\"epoch\":\"Ep-0_z\"}|"
                        "{\"data\":\"},\\\"{\",\"ts\":5 ,\"offset\":43,\"epoch\":\"Ep-0_z\"}");
    assert_string_equal(split(" [ 7 , \"E\" ,\n{\"data\":2} ] "),
                        "{\"data\":2,\"offset\":7,\"epoch\":\"E\"}");
    /* What the gateway then parses: data, offset, epoch, one by one. */
    ps__envelopes_begin(&sp, batch, strlen(batch));
    while (ps__envelopes_next(&sp, &text, &len)) {
        assert_int_equal(ps_envelope_parse(text, len, &env), PS_OK);
        assert_int_equal(json_integer_value(env.data), want);
        assert_int_equal(env.offset, want);
        assert_string_equal(env.epoch, "E");
        ps_envelope_clear(&env);
        want++;
    }
    ps__envelopes_end(&sp);
    assert_int_equal(want, 43);
    /* Broken headers (no epoch, a bad or empty or too long one, nothing
     * after it, an offset that is negative, not an integer or over 18
     * digits): nothing. */
    for (i = 0; i < sizeof(broken) / sizeof(broken[0]); i++)
        assert_string_equal(split(broken[i]), "");
    assert_string_equal(split("[123456789012345678,\"E\",{}]"),
                        "{\"offset\":123456789012345678,\"epoch\":\"E\"}");
    /* After the header, the same rules as for any batch. */
    assert_string_equal(split("[1,\"E\",{\"data\":1},2]"),
                        "{\"data\":1,\"offset\":1,\"epoch\":\"E\"}");
    assert_string_equal(split("[1,\"E\",{\"data\":1]]"), "");
}

static void strerror_names(void **state)
{
    assert_string_equal(ps_strerror(PS_OK), "ok");
    assert_string_equal(ps_strerror(PS_EENVELOPE), "invalid envelope");
    assert_string_equal(ps_strerror(PS_EUNAVAILABLE), "bus unavailable");
    assert_string_equal(ps_strerror(12345), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(data_of_every_type),
        cmocka_unit_test(optional_fields),
        cmocka_unit_test(limits_of_from_and_epoch),
        cmocka_unit_test(invalid_json),
        cmocka_unit_test(invalid_shape),
        cmocka_unit_test(invalid_fields),
        cmocka_unit_test(frame_text),
        cmocka_unit_test(frame_escapes_channel),
        cmocka_unit_test(frame_large_data),
        cmocka_unit_test(frame_refcount),
        cmocka_unit_test(encode_round_trip),
        cmocka_unit_test(encode_exact_and_refused),
        cmocka_unit_test(batches_split),
        cmocka_unit_test(batches_with_a_header_split),
        cmocka_unit_test(strerror_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
