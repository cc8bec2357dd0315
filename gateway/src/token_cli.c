/*
 * token_cli: `wsgw token`, which prints a signed HS256 token.
 *
 * For development, tests and scripts: a backend in production signs its own
 * tokens with its JWT library. The claims are checked with the same rules
 * the gateway applies, so a token this command prints is one the gateway
 * accepts (given the same secret, issuer and audience).
 */
#include "token_cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <auth/auth.h>
#include <jansson.h>

#include "keyfile.h"

typedef struct token_opts {
    const char *secret_file, *sub, *channels, *publish, *channel, *kid, *iss, *aud;
    long long ttl;
} token_opts;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: wsgw token --secret-file PATH --sub USER [options]\n"
            "  --secret-file PATH   HMAC secret (at least 32 bytes; trailing newlines ignored)\n"
            "                       [WSGW_JWT_SECRET_FILE]\n"
            "  --sub USER           the user (1..128 of A-Z a-z 0-9 _ . @ -)\n"
            "  --channels LIST      comma-separated patterns the user may subscribe to\n"
            "  --publish LIST       comma-separated patterns the user may publish to\n"
            "  --channel CHANNEL    make a subscription token for exactly this channel\n"
            "  --ttl SECONDS        lifetime (default 3600)\n"
            "  --kid ID             key id header\n"
            "  --iss ISSUER         iss claim\n"
            "  --aud AUDIENCE       aud claim\n");
}

/* "a,b,c" -> ["a","b","c"], each checked as a pattern. NULL on a bad one. */
static json_t *pattern_list(const char *list, const char *flag)
{
    json_t *arr = json_array();
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        char item[AUTH_MAX_CHANNEL_LEN + 2];
        if (n > 0) {
            int ok = n < sizeof(item);
            if (ok) {
                memcpy(item, p, n);
                item[n] = '\0';
                ok = auth_pattern_valid(item, n);
            }
            if (!ok) {
                fprintf(stderr, "wsgw token: %s: bad pattern '%.*s'\n", flag, (int)n, p);
                json_decref(arr);
                return NULL;
            }
            json_array_append_new(arr, json_string(item));
        }
        p += n + (p[n] == ',');
    }
    return arr;
}

static int add_list(json_t *claims, const char *key, const char *list, const char *flag)
{
    json_t *arr;
    if (!list)
        return 0;
    arr = pattern_list(list, flag);
    if (!arr)
        return -1;
    json_object_set_new(claims, key, arr);
    return 0;
}

static json_t *build_claims(const token_opts *o)
{
    int64_t now = (int64_t)time(NULL);
    json_t *c = json_pack("{s:s,s:I,s:I}", "sub", o->sub, "iat", (json_int_t)now, "exp",
                          (json_int_t)(now + o->ttl));
    if (!c)
        return NULL;
    if (o->channel)
        json_object_set_new(c, "channel", json_string(o->channel));
    if (o->iss)
        json_object_set_new(c, "iss", json_string(o->iss));
    if (o->aud)
        json_object_set_new(c, "aud", json_string(o->aud));
    if (add_list(c, "channels", o->channels, "--channels") < 0 ||
        add_list(c, "publish", o->publish, "--publish") < 0) {
        json_decref(c);
        return NULL;
    }
    return c;
}

static int parse_args(token_opts *o, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"secret-file", required_argument, NULL, 's'}, {"sub", required_argument, NULL, 'u'},
        {"channels", required_argument, NULL, 'c'},    {"publish", required_argument, NULL, 'p'},
        {"channel", required_argument, NULL, 'C'},     {"ttl", required_argument, NULL, 't'},
        {"kid", required_argument, NULL, 'k'},         {"iss", required_argument, NULL, 'i'},
        {"aud", required_argument, NULL, 'a'},         {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int ch;
    char *end;
    o->ttl = 3600;
    o->secret_file = getenv("WSGW_JWT_SECRET_FILE");
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 's': o->secret_file = optarg; break;
        case 'u': o->sub = optarg; break;
        case 'c': o->channels = optarg; break;
        case 'p': o->publish = optarg; break;
        case 'C': o->channel = optarg; break;
        case 'k': o->kid = optarg; break;
        case 'i': o->iss = optarg; break;
        case 'a': o->aud = optarg; break;
        case 't':
            o->ttl = strtoll(optarg, &end, 10);
            if (*end || end == optarg || o->ttl < 1 || o->ttl > 366LL * 86400) {
                fprintf(stderr, "wsgw token: --ttl: expected 1..31622400 seconds\n");
                return 2;
            }
            break;
        case 'h': usage(stdout); return 1;
        default:
            fprintf(stderr, "wsgw token: unknown or incomplete option '%s'\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    return 0;
}

static int check_opts(const token_opts *o)
{
    if (!o->secret_file || !o->sub) {
        fprintf(stderr, "wsgw token: --secret-file and --sub are required\n");
        return 2;
    }
    if (!auth_sub_valid(o->sub, strlen(o->sub))) {
        fprintf(stderr, "wsgw token: --sub: 1..128 of A-Z a-z 0-9 _ . @ - expected\n");
        return 2;
    }
    if (o->channel && !auth_channel_valid(o->channel, strlen(o->channel))) {
        fprintf(stderr, "wsgw token: --channel: not a valid channel name\n");
        return 2;
    }
    return 0;
}

static int sign_and_print(const token_opts *o)
{
    char err[512], *secret = NULL, *claims_txt = NULL, *token = NULL;
    size_t len;
    json_t *claims = NULL;
    int rc = 1;

    if (gw_read_secret(o->secret_file, &secret, &len, err, sizeof(err)) < 0) {
        fprintf(stderr, "wsgw token: %s\n", err);
        goto out;
    }
    if (len < AUTH_MIN_HMAC_SECRET) {
        fprintf(stderr, "wsgw token: %s: secret shorter than %d bytes\n", o->secret_file,
                AUTH_MIN_HMAC_SECRET);
        goto out;
    }
    if (!(claims = build_claims(o)) || !(claims_txt = json_dumps(claims, JSON_COMPACT)))
        goto out;
    if (auth_sign_hs256((unsigned char *)secret, len, o->kid, claims_txt, &token) != AUTH_OK) {
        fprintf(stderr, "wsgw token: signing failed\n");
        goto out;
    }
    printf("%s\n", token);
    rc = 0;
out:
    free(token);
    free(claims_txt);
    json_decref(claims);
    free(secret);
    return rc;
}

int gw_token_main(int argc, char **argv)
{
    token_opts o = {0};
    int rc = parse_args(&o, argc, argv);
    if (rc != 0)
        return rc == 1 ? 0 : rc;
    rc = check_opts(&o);
    if (rc != 0)
        return rc;
    return sign_and_print(&o);
}
