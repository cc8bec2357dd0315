/*
 * test_bench: unit tests of the bench's own building blocks, so that a
 * number the bench reports can be trusted: histogram quantiles within their
 * stated error, the message codec against the ways a gateway may re-encode
 * JSON, and tokens that are well-formed HS256 JWTs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "hist.h"
#include "message.h"
#include "token.h"

#define LOG_STEP(v) ((v) * 101 / 100 + 1) /* about 1% apart: many octaves */

static void test_hist_exact_small_values(void **state)
{
    bench_hist h;
    hist_init(&h);
    for (uint64_t v = 1; v <= 100; v++)
        hist_add(&h, v);
    assert_int_equal(hist_quantile(&h, 0.5), 50);
    assert_int_equal(hist_quantile(&h, 0.99), 99);
    assert_int_equal(hist_quantile(&h, 1.0), 100);
    assert_int_equal(h.min, 1);
    assert_int_equal(h.sum / h.count, 50);
}

/* The value of the rank-th smallest sample of the LOG_STEP series. */
static uint64_t series_rank(uint64_t rank)
{
    uint64_t v = 1000, seen = 0;
    for (; v <= 1000000000; v = LOG_STEP(v))
        if (++seen == rank)
            return v;
    return 0;
}

static void test_hist_relative_error(void **state)
{
    bench_hist h;
    hist_init(&h);
    /* 1 us .. 1 s: every quantile at most 1/64 above the true value. */
    for (uint64_t v = 1000; v <= 1000000000; v = LOG_STEP(v))
        hist_add(&h, v);
    for (int i = 1; i < 10; i++) {
        double q = i / 10.0;
        uint64_t truth = series_rank((uint64_t)(q * (double)h.count + 0.999999));
        uint64_t got = hist_quantile(&h, q);
        assert_true(got >= truth);
        assert_true((double)(got - truth) <= (double)truth / 64 + 1);
    }
    assert_int_equal(hist_quantile(&h, 1.0), h.max);
}

static void test_hist_merge_and_clamp(void **state)
{
    bench_hist a, b;
    hist_init(&a);
    hist_init(&b);
    hist_add(&a, 5);
    hist_add(&b, UINT64_MAX); /* clamped into the last bucket; max stays exact */
    hist_merge(&a, &b);
    assert_int_equal(a.count, 2);
    assert_int_equal(a.min, 5);
    assert_true(a.max == UINT64_MAX);
    assert_true(hist_quantile(&a, 0.5) == 5);
}

static void test_msg_roundtrip_and_size(void **state)
{
    char buf[1200];
    bench_msg in = {9007199254740991ull, 42, 123456789012345ull, 7}, out;
    size_t n = bench_msg_encode(buf, sizeof(buf), &in, 1000);
    assert_int_equal(n, 1000);
    assert_int_equal(bench_msg_decode(buf, n, &out), 1);
    assert_memory_equal(&in, &out, sizeof(in));
    n = bench_msg_encode(buf, sizeof(buf), &in, 0); /* no pad: the bare object */
    assert_true(n < 100 && buf[n - 1] == '}');
    assert_int_equal(bench_msg_decode(buf, n, &out), 1);
}

static void test_msg_decode_in_envelope(void **state)
{
    const char *compact = "{\"type\":\"message\",\"channel\":\"chat:bench\",\"data\":"
                          "{\"bench\":[1,2,3,4],\"pad\":\"xx\"},\"from\":\"bench-publisher\"}";
    const char *spaced =
        "{\"type\": \"message\", \"data\": {\"pad\": \"x\", \"bench\" : [ 1, 2 ,\n3, 4 ]}}";
    bench_msg m;
    assert_int_equal(bench_msg_decode(compact, strlen(compact), &m), 1);
    assert_true(m.run_id == 1 && m.seq == 2 && m.t_ns == 3 && m.channel == 4);
    assert_int_equal(bench_msg_decode(spaced, strlen(spaced), &m), 1);
    assert_true(m.run_id == 1 && m.seq == 2 && m.t_ns == 3 && m.channel == 4);
}

static void test_msg_decode_rejects(void **state)
{
    const char *none = "{\"type\":\"subscribed\",\"id\":1,\"channel\":\"chat:bench\"}";
    const char *bad[] = {"{\"bench\":[1,2,3]}", "{\"bench\":[1,2,3,x]}", "{\"bench\":{}}",
                         "{\"bench\":[1,2,3,4", "{\"bench\""};
    bench_msg m;
    assert_int_equal(bench_msg_decode(none, strlen(none), &m), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(bench_msg_decode(bad[i], strlen(bad[i]), &m), -1);
}

static void test_token_hs256(void **state)
{
    static const unsigned char secret[] = "0123456789abcdef0123456789abcdef";
    char *t = bench_token_hs256(secret, 32, NULL, "{\"sub\":\"bench-1\",\"exp\":1}");
    char *dot1, *dot2, sig[64];
    unsigned char mac[32];
    unsigned int len = 0;
    assert_non_null(t);
    dot1 = strchr(t, '.');
    dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    assert_non_null(dot2);
    /* {"alg":"HS256","typ":"JWT"} in base64url, without padding */
    assert_memory_equal(t, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9", (size_t)(dot1 - t));
    assert_null(strchr(t, '='));
    HMAC(EVP_sha256(), secret, 32, (const unsigned char *)t, (size_t)(dot2 - t), mac, &len);
    bench_b64url(sig, mac, len);
    assert_string_equal(dot2 + 1, sig);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hist_exact_small_values),
        cmocka_unit_test(test_hist_relative_error),
        cmocka_unit_test(test_hist_merge_and_clamp),
        cmocka_unit_test(test_msg_roundtrip_and_size),
        cmocka_unit_test(test_msg_decode_in_envelope),
        cmocka_unit_test(test_msg_decode_rejects),
        cmocka_unit_test(test_token_hs256),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
