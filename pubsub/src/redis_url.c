/*
 * Redis URLs, as operators write them in the gateway's --redis option:
 *   redis://[[user]:password@]host[:port][/[db]]
 * Parsed strictly: a URL that is not understood in full is refused rather
 * than half used, since a wrong host or db would fail only much later, and
 * quietly.
 *
 * Username: Redis 6 ACL users are supported (AUTH <user> <password>), so
 * the userinfo part is never silently dropped. A user without a password
 * is refused: AUTH needs one, and "redis://secret@host" is ambiguous
 * between clients (some read it as a password).
 */
#include <arpa/inet.h>
#include <limits.h>
#include <string.h>
#include <strings.h>

#include "pubsub/pubsub.h"

#define SCHEME "redis://"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes [s, end) into dst (cap bytes with the NUL). */
static int decode(const char *s, const char *end, char *dst, size_t cap)
{
    size_t n = 0;

    while (s < end) {
        int c = (unsigned char)*s++;
        if (c == '%') {
            int hi = s < end ? hexval(s[0]) : -1;
            int lo = s + 1 < end ? hexval(s[1]) : -1;
            if (hi < 0 || lo < 0)
                return -1;
            c = hi * 16 + lo;
            s += 2;
        }
        if (c == 0 || n + 1 >= cap)
            return -1;
        dst[n++] = (char)c;
    }
    dst[n] = '\0';
    return 0;
}

/* user:password, either part percent-encoded; the password is required. */
static int parse_userinfo(const char *s, const char *end, ps_redis_url *u)
{
    const char *colon = memchr(s, ':', (size_t)(end - s));

    if (!colon)
        return -1;
    if (decode(s, colon, u->username, sizeof(u->username)) < 0 ||
        decode(colon + 1, end, u->password, sizeof(u->password)) < 0)
        return -1;
    /* "redis://:@host" means no password; "user:@host" means nothing. */
    if (u->username[0] && !u->password[0])
        return -1;
    return 0;
}

/* A decimal number of at most maxdigits digits in [s, end), <= max. */
static int parse_uint(const char *s, const char *end, int maxdigits, long max, long *out)
{
    long v = 0;

    if (s == end || end - s > maxdigits)
        return -1;
    for (; s < end; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (*s - '0');
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

static int host_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_';
}

/* "[v6]" in [s, end) into u->host, or -1. */
static int parse_ipv6(const char *s, const char *end, ps_redis_url *u)
{
    struct in6_addr a;
    size_t n = (size_t)(end - s);

    if (n < 3 || s[0] != '[' || end[-1] != ']' || n - 2 >= sizeof(u->host))
        return -1;
    memcpy(u->host, s + 1, n - 2);
    u->host[n - 2] = '\0';
    return inet_pton(AF_INET6, u->host, &a) == 1 ? 0 : -1;
}

static int parse_hostport(const char *s, const char *end, ps_redis_url *u)
{
    const char *colon = s[0] == '[' ? memchr(s, ']', (size_t)(end - s)) : s;
    const char *hend;
    long port;
    size_t i, n;

    if (!colon)
        return -1;
    colon = memchr(colon, ':', (size_t)(end - colon));
    hend = colon ? colon : end;
    if (colon && (parse_uint(colon + 1, end, 5, 65535, &port) < 0 || port == 0))
        return -1;
    if (colon)
        u->port = (int)port;
    if (s[0] == '[')
        return parse_ipv6(s, hend, u);
    n = (size_t)(hend - s);
    if (n == 0 || n >= sizeof(u->host))
        return -1;
    for (i = 0; i < n; i++)
        if (!host_char(s[i]))
            return -1;
    memcpy(u->host, s, n);
    u->host[n] = '\0';
    return 0;
}

/* "" or "/" or "/<db>" at s, up to the end of the string. */
static int parse_path(const char *s, ps_redis_url *u)
{
    long db;

    if (s[0] == '\0' || (s[0] == '/' && s[1] == '\0'))
        return 0;
    if (s[0] != '/' || parse_uint(s + 1, s + strlen(s), 10, INT_MAX, &db) < 0)
        return -1;
    u->db = (int)db;
    return 0;
}

int ps_redis_url_parse(const char *url, ps_redis_url *out)
{
    ps_redis_url u;
    const char *auth, *end, *at;

    if (!url || !out || strncasecmp(url, SCHEME, strlen(SCHEME)) != 0)
        return PS_EINVAL;
    memset(&u, 0, sizeof(u));
    u.port = 6379;
    auth = url + strlen(SCHEME);
    /* The authority ends at the path; a query or fragment then fails the
     * path check. Userinfo runs to the last '@' so that an unescaped '@' in
     * a password still parses. */
    end = auth + strcspn(auth, "/?#");
    at = memrchr(auth, '@', (size_t)(end - auth));
    if (at && parse_userinfo(auth, at, &u) < 0)
        return PS_EINVAL;
    if (parse_hostport(at ? at + 1 : auth, end, &u) < 0 || parse_path(end, &u) < 0)
        return PS_EINVAL;
    *out = u;
    return PS_OK;
}
