/*
 * Unit tests of channel names, patterns and permissions (auth/src/perms.c).
 *
 * The claims here are built by hand, as a verified token would leave them,
 * so each test reads as the protocol's Channels section: who may subscribe
 * or publish where, and which names are channels at all.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "auth/auth.h"

static int valid(const char *channel)
{
    return auth_channel_valid(channel, strlen(channel));
}

static int pvalid(const char *pattern)
{
    return auth_pattern_valid(pattern, strlen(pattern));
}

/* Claims for `sub` with the given NULL-terminated pattern lists; they
 * borrow everything (never passed to auth_claims_free). */
static auth_claims claims_for(const char *sub, char **channels, char **publish)
{
    auth_claims c;

    memset(&c, 0, sizeof(c));
    c.sub = (char *)sub;
    c.channels = channels;
    while (channels && channels[c.n_channels])
        c.n_channels++;
    c.publish = publish;
    while (publish && publish[c.n_publish])
        c.n_publish++;
    return c;
}

static void test_channel_names_valid(void **state)
{
    char longest[AUTH_MAX_CHANNEL_LEN + 2];

    assert_true(valid("chat:lobby"));
    assert_true(valid("job:42"));
    assert_true(valid("user:alice@example.com"));
    assert_true(valid("a:b"));
    assert_true(valid("ns:with:more:colons"));
    assert_true(valid("A-Z_a.z@0-9:x_y.z@-"));

    memset(longest, 'a', sizeof(longest));
    longest[3] = ':';
    longest[AUTH_MAX_CHANNEL_LEN] = '\0';
    assert_int_equal(strlen(longest), 128);
    assert_true(valid(longest));
    longest[AUTH_MAX_CHANNEL_LEN] = 'a';
    longest[AUTH_MAX_CHANNEL_LEN + 1] = '\0';
    assert_false(valid(longest)); /* 129 bytes */
}

static void test_channel_names_invalid(void **state)
{
    const char *bad[] = {"",           "nocolon",        ":name",        "chat:",
                         ":",          "chat:lob by",    "chat:lobby!",  "chat:*",
                         "chat/lobby", "chat:lobby\n",   "ch\xc3\xa9:x", "chat:a#b",
                         "chat:a,b",   "chat:\"quoted\""};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(valid(bad[i]));
    /* The length is the caller's: a NUL inside it is a bad byte. */
    assert_false(auth_channel_valid("chat:a\0b", 8));
    assert_true(auth_channel_valid("chat:a\0b", 6));
    assert_false(auth_channel_valid(NULL, 4));
    assert_false(auth_channel_valid("chat:a", 0));
}

static void test_sub_syntax(void **state)
{
    char s[AUTH_MAX_SUB_LEN + 2];

    assert_true(auth_sub_valid("alice", 5));
    assert_true(auth_sub_valid("a.b-c_d@e", 9));
    assert_false(auth_sub_valid("", 0));
    assert_false(auth_sub_valid("a:b", 3)); /* colons belong to channels only */
    assert_false(auth_sub_valid("a b", 3));
    assert_false(auth_sub_valid("a*", 2));
    assert_false(auth_sub_valid("\xc3\xa9", 2));
    assert_false(auth_sub_valid(NULL, 3));
    memset(s, 'x', sizeof(s));
    assert_true(auth_sub_valid(s, AUTH_MAX_SUB_LEN));
    assert_false(auth_sub_valid(s, AUTH_MAX_SUB_LEN + 1));
}

static void test_pattern_syntax(void **state)
{
    char p[AUTH_MAX_CHANNEL_LEN + 2];

    assert_true(pvalid("*"));
    assert_true(pvalid("chat:*"));
    assert_true(pvalid("job:4*"));
    assert_true(pvalid("job:42"));
    assert_true(pvalid("chat*"));
    assert_true(pvalid("user:*"));
    assert_false(pvalid(""));
    assert_false(pvalid("**"));
    assert_false(pvalid("*chat"));
    assert_false(pvalid("chat:*x"));
    assert_false(pvalid("chat:a*b"));
    assert_false(pvalid("nocolon")); /* neither a channel nor a prefix */
    assert_false(pvalid("chat:"));
    assert_false(pvalid("chat: *"));
    assert_false(auth_pattern_valid(NULL, 1));

    memset(p, 'a', sizeof(p));
    p[AUTH_MAX_CHANNEL_LEN - 1] = '*';
    assert_true(auth_pattern_valid(p, AUTH_MAX_CHANNEL_LEN));
    p[AUTH_MAX_CHANNEL_LEN] = '*';
    assert_false(auth_pattern_valid(p, AUTH_MAX_CHANNEL_LEN + 1));
}

static void test_pattern_match(void **state)
{
    assert_true(auth_pattern_match("chat:lobby", "chat:lobby"));
    assert_false(auth_pattern_match("chat:lobby", "chat:lobby2"));
    assert_false(auth_pattern_match("chat:lobby", "chat:lobb"));
    assert_false(auth_pattern_match("chat:lobby", "Chat:lobby"));
    assert_true(auth_pattern_match("chat:*", "chat:lobby"));
    assert_true(auth_pattern_match("chat:*", "chat:a:b"));
    assert_false(auth_pattern_match("chat:*", "chatroom:lobby"));
    assert_false(auth_pattern_match("chat:*", "job:1"));
    assert_true(auth_pattern_match("job:4*", "job:4"));
    assert_true(auth_pattern_match("job:4*", "job:42"));
    assert_true(auth_pattern_match("job:4*", "job:4711"));
    assert_false(auth_pattern_match("job:4*", "job:5"));
    assert_false(auth_pattern_match("job:4*", "job:14"));
    assert_true(auth_pattern_match("*", "anything:at-all"));
    assert_true(auth_pattern_match("chat*", "chatroom:x"));
    assert_false(auth_pattern_match(NULL, "chat:x"));
    assert_false(auth_pattern_match("chat:*", NULL));
    assert_false(auth_pattern_match("", "chat:x"));
}

static void test_subscribe_own_user_channel_only(void **state)
{
    char *everything[] = {"*", NULL};
    char *users[] = {"user:*", "user:bob", NULL};
    auth_claims none = claims_for("alice", NULL, NULL);
    auth_claims star = claims_for("alice", everything, NULL);
    auth_claims ustar = claims_for("alice", users, NULL);

    /* Her own channel needs no pattern. */
    assert_true(auth_can_subscribe(&none, "user:alice"));
    assert_true(auth_can_subscribe(&star, "user:alice"));
    /* Others' private channels are refused whatever the patterns say. */
    assert_false(auth_can_subscribe(&none, "user:bob"));
    assert_false(auth_can_subscribe(&star, "user:bob"));
    assert_false(auth_can_subscribe(&ustar, "user:bob"));
    assert_false(auth_can_subscribe(&ustar, "user:alice2"));
    assert_false(auth_can_subscribe(&ustar, "user:alic"));
    assert_false(auth_can_subscribe(&star, "user:alice:extra"));
    /* "users:" is another namespace, governed by patterns. */
    assert_true(auth_can_subscribe(&star, "users:bob"));
    assert_false(auth_can_subscribe(&none, "users:alice"));
}

static void test_subscribe_by_pattern(void **state)
{
    char *patterns[] = {"chat:*", "job:42", NULL};
    auth_claims c = claims_for("alice", patterns, NULL);
    auth_claims none = claims_for("alice", NULL, NULL);

    assert_true(auth_can_subscribe(&c, "chat:lobby"));
    assert_true(auth_can_subscribe(&c, "job:42"));
    assert_false(auth_can_subscribe(&c, "job:421"));
    assert_false(auth_can_subscribe(&c, "job:43"));
    assert_false(auth_can_subscribe(&none, "chat:lobby"));
    /* Invalid names are never allowed, even by "*". */
    assert_false(auth_can_subscribe(&c, "chat:lob by"));
    assert_false(auth_can_subscribe(&c, "chat:"));
    assert_false(auth_can_subscribe(&c, NULL));
    assert_false(auth_can_subscribe(NULL, "chat:lobby"));
}

static void test_publish(void **state)
{
    char *everything[] = {"*", NULL};
    char *chat[] = {"chat:*", NULL};
    auth_claims star = claims_for("alice", NULL, everything);
    auth_claims c = claims_for("alice", everything, chat);
    auth_claims none = claims_for("alice", everything, NULL);

    assert_true(auth_can_publish(&star, "chat:lobby"));
    assert_true(auth_can_publish(&star, "job:42"));
    /* No client publishes to user: channels, not even its own. */
    assert_false(auth_can_publish(&star, "user:alice"));
    assert_false(auth_can_publish(&star, "user:bob"));
    assert_true(auth_can_publish(&c, "chat:lobby"));
    assert_false(auth_can_publish(&c, "job:42"));
    /* Subscribe patterns grant nothing for publishing. */
    assert_false(auth_can_publish(&none, "chat:lobby"));
    assert_false(auth_can_publish(&star, "chat:lobby!"));
    assert_false(auth_can_publish(NULL, "chat:lobby"));
}

static void test_claims_free_is_safe(void **state)
{
    auth_claims c;

    memset(&c, 0, sizeof(c));
    auth_claims_free(&c);
    auth_claims_free(NULL);
    assert_int_equal(c.n_channels, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_channel_names_valid),
        cmocka_unit_test(test_channel_names_invalid),
        cmocka_unit_test(test_sub_syntax),
        cmocka_unit_test(test_pattern_syntax),
        cmocka_unit_test(test_pattern_match),
        cmocka_unit_test(test_subscribe_own_user_channel_only),
        cmocka_unit_test(test_subscribe_by_pattern),
        cmocka_unit_test(test_publish),
        cmocka_unit_test(test_claims_free_is_safe),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
