/*
 * Channel permissions: the syntax of channel names, subs and patterns, and
 * the two decisions the gateway asks for every subscribe and publish.
 *
 * The rules come from the protocol's Channels section. `user:<sub>` channels
 * are private: only their owner may subscribe, whatever patterns the token
 * carries, and no client may publish to any of them (backends do). Everything
 * else is decided by the token's `channels` and `publish` patterns, which are
 * exact names or prefixes ending in '*'.
 *
 * Character classes are spelled out rather than taken from <ctype.h> so that
 * the locale can never widen them.
 */
#include <string.h>

#include "auth_internal.h"

#define USER_PREFIX "user:"
#define USER_PREFIX_LEN (sizeof(USER_PREFIX) - 1)

static int is_alnum(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

/* [A-Za-z0-9_.@-]: the characters of a sub. */
static int is_sub_char(unsigned char ch)
{
    return is_alnum(ch) || ch == '_' || ch == '.' || ch == '@' || ch == '-';
}

/* A channel adds ':' to the sub characters, so user:<sub> is always spelled
 * with channel characters. */
static int is_channel_char(unsigned char ch)
{
    return is_sub_char(ch) || ch == ':';
}

static int all_channel_chars(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (!is_channel_char((unsigned char)s[i]))
            return 0;
    }
    return 1;
}

int auth_sub_valid(const char *sub, size_t len)
{
    if (!sub || len == 0 || len > AUTH_MAX_SUB_LEN)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (!is_sub_char((unsigned char)sub[i]))
            return 0;
    }
    return 1;
}

int auth_channel_valid(const char *channel, size_t len)
{
    const char *colon;

    if (!channel || len == 0 || len > AUTH_MAX_CHANNEL_LEN)
        return 0;
    if (!all_channel_chars(channel, len))
        return 0;
    /* namespace:name, both non-empty; the name may hold further colons. */
    colon = memchr(channel, ':', len);
    return colon && colon != channel && colon != channel + len - 1;
}

int auth_pattern_valid(const char *pattern, size_t len)
{
    if (!pattern || len == 0 || len > AUTH_MAX_CHANNEL_LEN)
        return 0;
    if (pattern[len - 1] == '*')
        return all_channel_chars(pattern, len - 1);
    return auth_channel_valid(pattern, len);
}

int auth_pattern_match(const char *pattern, const char *channel)
{
    size_t plen;

    if (!pattern || !channel)
        return 0;
    plen = strlen(pattern);
    if (plen > 0 && pattern[plen - 1] == '*')
        return strncmp(pattern, channel, plen - 1) == 0;
    return strcmp(pattern, channel) == 0;
}

static int any_match(char *const *patterns, size_t n, const char *channel)
{
    for (size_t i = 0; i < n; i++) {
        if (auth_pattern_match(patterns[i], channel))
            return 1;
    }
    return 0;
}

static int is_user_channel(const char *channel)
{
    return strncmp(channel, USER_PREFIX, USER_PREFIX_LEN) == 0;
}

/* Shared by the pattern check below and by subscription tokens (jwt.c), so
 * that neither patterns nor a signed token can open another's channel. */
int auth__private_to_another(const char *channel, const char *sub)
{
    if (!is_user_channel(channel))
        return 0;
    return !sub || sub[0] == '\0' || strcmp(channel + USER_PREFIX_LEN, sub) != 0;
}

/* Both decisions re-check the channel name although callers promise a valid
 * one: a permission check is the wrong place to trust a precondition. */
int auth_can_subscribe(const auth_claims *c, const char *channel)
{
    if (!c || !channel || !auth_channel_valid(channel, strlen(channel)))
        return 0;
    if (is_user_channel(channel))
        return !auth__private_to_another(channel, c->sub);
    return any_match(c->channels, c->n_channels, channel);
}

int auth_can_publish(const auth_claims *c, const char *channel)
{
    if (!c || !channel || !auth_channel_valid(channel, strlen(channel)))
        return 0;
    if (is_user_channel(channel))
        return 0;
    return any_match(c->publish, c->n_publish, channel);
}
