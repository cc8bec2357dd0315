/*
 * http_api: POST /api/publish, how backends publish through a gateway.
 *
 * A request goes READING (the body arrives in HTTP_BODY chunks, bounded by
 * the size limit) -> PUBLISHING (one ps_bus_publish per message; the answer
 * waits for every bus callback) -> HEADERS -> BODY (one lws_write per
 * WRITEABLE callback, as the platform notes require) -> done. Errors known
 * from the headers alone (method, key, length) skip straight to HEADERS.
 *
 * Lifetime: the request's state is a heap object (gw_api_req), not lws's
 * per-session data, because the bus may answer after the connection has
 * gone. The connection points at it through gw_conn.api (HTTP connections
 * use nothing else of their zeroed gw_conn); the request points back at its
 * wsi. lws frees the per-session data at every HTTP_DROP_PROTOCOL (at the
 * end of each keep-alive transaction and at close): there, and in
 * CLOSED_HTTP, the connection detaches, setting the request's wsi to NULL.
 * A detached request with no bus callback outstanding is freed at once; one
 * still waiting is an orphan that the last bus callback frees without
 * touching any wsi. The answer of a finished request is written, then the
 * request is detached and freed before lws_http_transaction_completed, which
 * fires DROP_PROTOCOL itself. ps_bus_stop completes every pending publish
 * with PS_ECLOSED, so no orphan outlives the bus.
 *
 * API keys are kept only as SHA-256 digests; a presented key is hashed and
 * compared with every stored digest by CRYPTO_memcmp, without early exit, so
 * the time taken says nothing about which key matched or how much of one.
 */
#include "http_api.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <auth/auth.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "conn.h"
#include "keyfile.h"
#include "log.h"

#define KEY_FILE_MAX (1024 * 1024)
/* "Bearer " plus the longest key, with room to spare. */
#define AUTH_HEADER_MAX (GW_API_KEY_MAX + 64)

/* ------------------------------------------------------------ API keys */

struct gw_api_keys {
    unsigned char (*digests)[SHA256_DIGEST_LENGTH];
    size_t n, cap;
};

gw_api_keys *gw_api_keys_new(void)
{
    return calloc(1, sizeof(gw_api_keys));
}

void gw_api_keys_free(gw_api_keys *k)
{
    if (!k)
        return;
    if (k->digests)
        OPENSSL_cleanse(k->digests, k->cap * sizeof(*k->digests));
    free(k->digests);
    free(k);
}

size_t gw_api_keys_count(const gw_api_keys *k)
{
    return k ? k->n : 0;
}

static int keys_add(gw_api_keys *k, const char *key, size_t len)
{
    if (k->n == k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 4;
        void *d = realloc(k->digests, cap * sizeof(*k->digests));
        if (!d)
            return -1;
        k->digests = d;
        k->cap = cap;
    }
    SHA256((const unsigned char *)key, len, k->digests[k->n++]);
    return 0;
}

static int visible_ascii(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return 0;
    }
    return 1;
}

/* Checks one trimmed, non-empty, non-comment line. Never echoes the key. */
static const char *key_line_error(const char *line, size_t len)
{
    if (len < GW_API_KEY_MIN)
        return "key shorter than 16 bytes";
    if (len > GW_API_KEY_MAX)
        return "key longer than 1024 bytes";
    if (!visible_ascii(line, len))
        return "key contains spaces or control characters";
    return NULL;
}

int gw_api_keys_add_text(gw_api_keys *k, const char *text, size_t len, const char *name, char *err,
                         size_t errlen)
{
    size_t lineno = 0;
    int added = 0;
    for (size_t pos = 0; pos < len;) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        const char *why;
        pos += n + (nl != NULL);
        lineno++;
        while (n && (line[n - 1] == ' ' || line[n - 1] == '\t' || line[n - 1] == '\r'))
            n--;
        if (n == 0 || line[0] == '#')
            continue;
        if ((why = key_line_error(line, n)) != NULL) {
            snprintf(err, errlen, "--api-key-file %s line %zu: %s", name, lineno, why);
            return -1;
        }
        if (keys_add(k, line, n) < 0) {
            snprintf(err, errlen, "--api-key-file %s: out of memory", name);
            return -1;
        }
        added++;
    }
    return added;
}

static int load_one(gw_api_keys *k, const char *path, char *err, size_t errlen)
{
    char *buf;
    size_t len;
    int n;
    if (gw_read_file(path, KEY_FILE_MAX, &buf, &len, err, errlen) < 0) {
        /* gw_read_file says "<path>: <why>"; name the flag too. */
        char why[512];
        snprintf(why, sizeof(why), "%s", err);
        snprintf(err, errlen, "--api-key-file %s", why);
        return -1;
    }
    n = gw_api_keys_add_text(k, buf, len, path, err, errlen);
    OPENSSL_cleanse(buf, len);
    free(buf);
    if (n == 0)
        snprintf(err, errlen, "--api-key-file %s: no key in the file", path);
    return n > 0 ? 0 : -1;
}

int gw_api_keys_load(const gw_strlist *files, gw_api_keys **out, char *err, size_t errlen)
{
    gw_api_keys *k;
    *out = NULL;
    if (files->n == 0)
        return 0;
    if (!(k = gw_api_keys_new())) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < files->n; i++) {
        if (load_one(k, files->items[i], err, errlen) < 0) {
            gw_api_keys_free(k);
            return -1;
        }
    }
    *out = k;
    return 0;
}

int gw_api_keys_match(const gw_api_keys *k, const char *key, size_t len)
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    unsigned found = 0;
    if (!k)
        return 0;
    SHA256((const unsigned char *)key, len, d);
    for (size_t i = 0; i < k->n; i++)
        found |= (unsigned)(CRYPTO_memcmp(d, k->digests[i], sizeof(d)) == 0);
    OPENSSL_cleanse(d, sizeof(d));
    return found != 0;
}

int gw_api_bearer(const char *header, size_t len, const char **key, size_t *key_len)
{
    const char *p = header, *end = header + len;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if ((size_t)(end - p) < 7 || strncasecmp(p, "bearer", 6) != 0 || (p[6] != ' ' && p[6] != '\t'))
        return -1;
    p += 7;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (p == end)
        return -1;
    *key = p;
    *key_len = (size_t)(end - p);
    return 0;
}

/* ------------------------------------------------------------ request bodies */

/* Why one message object cannot be published, or NULL when it can. */
static const char *check_message(json_t *m, gw_api_msg *out)
{
    json_t *ch, *data;
    const char *s;
    if (!json_is_object(m))
        return "message is not an object";
    ch = json_object_get(m, "channel");
    if (!ch)
        return "missing channel";
    s = json_string_value(ch);
    if (!s || strlen(s) != json_string_length(ch) || !auth_channel_valid(s, strlen(s)))
        return "bad channel name";
    data = json_object_get(m, "data");
    if (!data)
        return "missing data";
    out->channel = s;
    out->data = data;
    return NULL;
}

static int parse_single(gw_api_body *b, size_t len, size_t max_single, const char **why)
{
    if (len > max_single) {
        *why = "message larger than --max-message-bytes";
        return 413;
    }
    if (!(b->msgs = calloc(1, sizeof(*b->msgs)))) {
        *why = "out of memory";
        return 500;
    }
    b->n = 1;
    if ((*why = check_message(b->root, &b->msgs[0])) != NULL)
        return 400;
    return 0;
}

static int parse_batch(gw_api_body *b, json_t *list, size_t len, const char **why)
{
    size_t n;
    if (json_object_get(b->root, "channel") || json_object_get(b->root, "data")) {
        *why = "give either channel and data, or messages";
        return 400;
    }
    if (!json_is_array(list)) {
        *why = "messages must be an array";
        return 400;
    }
    n = json_array_size(list);
    if (n == 0) {
        *why = "messages is empty";
        return 400;
    }
    if (n > GW_API_BATCH_MAX) {
        *why = "more than 1000 messages in one batch";
        return 413;
    }
    if (len > GW_API_BATCH_MAX_BYTES) {
        *why = "batch larger than 1 MiB";
        return 413;
    }
    if (!(b->msgs = calloc(n, sizeof(*b->msgs)))) {
        *why = "out of memory";
        return 500;
    }
    b->batch = 1;
    b->n = n;
    for (size_t i = 0; i < n; i++)
        b->msgs[i].error = check_message(json_array_get(list, i), &b->msgs[i]);
    return 0;
}

int gw_api_parse_body(const char *body, size_t len, size_t max_single, gw_api_body *out,
                      const char **why)
{
    json_error_t jerr;
    json_t *list;
    int rc;

    memset(out, 0, sizeof(*out));
    if (len > max_single && len > GW_API_BATCH_MAX_BYTES) {
        *why = "body too large";
        return 413;
    }
    out->root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(out->root)) {
        json_decref(out->root);
        out->root = NULL;
        *why = "body is not a JSON object";
        return 400;
    }
    list = json_object_get(out->root, "messages");
    rc = list ? parse_batch(out, list, len, why) : parse_single(out, len, max_single, why);
    if (rc != 0)
        gw_api_body_clear(out);
    return rc;
}

void gw_api_body_clear(gw_api_body *b)
{
    free(b->msgs);
    json_decref(b->root);
    memset(b, 0, sizeof(*b));
}

/* ------------------------------------------------------------ publishing */

/* The envelope a backend's message travels in: no "from", whatever the
 * body said, since backends publish as the system. On PS_OK *out is
 * malloc'd (the caller frees it); PS_ETOOBIG when over max_bytes. */
static int encode_message(json_t *data, size_t max_bytes, ps_payload *out)
{
    char *text;
    size_t len;
    int rc = ps_envelope_encode(data, NULL, ps_now_ms(), &text, &len);

    if (rc != PS_OK)
        return rc;
    if (len > max_bytes) {
        free(text);
        return PS_ETOOBIG;
    }
    *out = (ps_payload){text, len};
    return PS_OK;
}

/* The history policy of channel's namespace in *p, or NULL when it keeps
 * none. */
static const gw_namespace *history_of(const gw_config *cfg, const char *channel,
                                      ps_history_policy *p)
{
    const gw_namespace *ns = gw_config_namespace(cfg, channel);

    if (ns)
        *p = (ps_history_policy){ns->size, ns->ttl_s};
    return ns;
}

int gw_api_publish(ps_bus *bus, const gw_config *cfg, const char *channel, json_t *data,
                   size_t max_bytes, int with_history, ps_publish_cb *cb, void *udata)
{
    ps_history_policy policy;
    const gw_namespace *ns = with_history ? history_of(cfg, channel, &policy) : NULL;
    ps_payload msg;
    int rc = encode_message(data, max_bytes, &msg);

    if (rc != PS_OK)
        return rc;
    rc = ps_bus_publish(bus, channel, msg.text, msg.len, ns ? &policy : NULL, cb, udata);
    free((char *)msg.text);
    return rc;
}

json_t *gw_api_result_json(const ps_publish_result *res)
{
    if (!res)
        return json_object();
    return json_pack("{s:I,s:s}", "offset", (json_int_t)res->offset, "epoch", res->epoch);
}

/* ------------------------------------------------------------ requests */

typedef enum req_phase {
    REQ_CHECKING,   /* headers being checked */
    REQ_READING,    /* the body is arriving */
    REQ_PUBLISHING, /* waiting for the bus to answer every message */
    REQ_HEADERS,    /* the answer is ready: status line and headers next */
    REQ_BODY,       /* headers sent: the JSON body next */
} req_phase;

/* The outcome of one message. */
typedef struct api_slot {
    unsigned http;     /* 200, or the status this message alone gets */
    const char *error; /* NULL: published */
    int has_res;       /* offset and epoch are set (history channel) */
    ps_publish_result res;
} api_slot;

struct gw_api_req {
    gw_server *srv;
    struct lws *wsi; /* NULL once the connection has gone: an orphan */
    req_phase phase;
    int close_after; /* unread body bytes may follow: close after answering */
    char *body;
    size_t body_len, body_cap, body_max;
    int batch;
    api_slot *slots;
    size_t n_slots;
    size_t pending; /* bus publishes (runs) not yet answered */
    unsigned status;
    unsigned char *resp; /* LWS_PRE bytes of headroom, then resp_len bytes of JSON */
    size_t resp_len;
};

static void req_free(gw_api_req *r)
{
    free(r->body);
    free(r->slots);
    free(r->resp);
    free(r);
}

/* The connection lets go of its request (transaction over, or gone). */
static void detach(gw_conn *c)
{
    gw_api_req *r = c->api;
    c->api = NULL;
    if (!r)
        return;
    r->wsi = NULL;
    if (r->pending == 0)
        req_free(r);
}

/* Sets the answer (takes body) and asks for a WRITEABLE callback. */
static void respond(gw_api_req *r, unsigned status, json_t *body)
{
    size_t n = body ? json_dumpb(body, NULL, 0, JSON_COMPACT) : 0;
    free(r->resp);
    r->resp = n ? malloc(LWS_PRE + n + 1) : NULL;
    if (r->resp) {
        r->resp_len = json_dumpb(body, (char *)r->resp + LWS_PRE, n, JSON_COMPACT);
        r->status = status;
    } else {
        r->resp_len = 0; /* write_body sends a fixed out-of-memory answer */
        r->status = HTTP_STATUS_INTERNAL_SERVER_ERROR;
    }
    json_decref(body);
    gw_debug("api_publish", NULL, "%u, %zu message(s)", r->status, r->n_slots);
    r->phase = REQ_HEADERS;
    lws_callback_on_writable(r->wsi);
}

static void respond_error(gw_api_req *r, unsigned status, const char *why)
{
    respond(r, status, json_pack("{s:s}", "error", why));
}

static json_t *slot_json(const api_slot *s)
{
    if (s->error)
        return json_pack("{s:s}", "error", s->error);
    return gw_api_result_json(s->has_res ? &s->res : NULL);
}

/* Every message has its outcome: build the answer. */
static void finish(gw_api_req *r)
{
    json_t *results;
    if (!r->batch) {
        if (r->slots[0].error)
            respond_error(r, r->slots[0].http, r->slots[0].error);
        else
            respond(r, HTTP_STATUS_OK, slot_json(&r->slots[0]));
        return;
    }
    results = json_array();
    for (size_t i = 0; i < r->n_slots; i++)
        json_array_append_new(results, slot_json(&r->slots[i]));
    respond(r, HTTP_STATUS_OK, json_pack("{s:o}", "results", results));
}

static void slot_fail(api_slot *s, int status)
{
    switch (status) {
    case PS_EUNAVAILABLE:
    case PS_ECLOSED:
        s->http = HTTP_STATUS_SERVICE_UNAVAILABLE;
        s->error = "message bus unavailable";
        break;
    case PS_ETOOBIG:
        s->http = HTTP_STATUS_REQ_ENTITY_TOO_LARGE;
        s->error = "message too large";
        break;
    case PS_ENOMEM:
        s->http = HTTP_STATUS_INTERNAL_SERVER_ERROR;
        s->error = "out of memory";
        break;
    default: /* PS_EINVAL: Redis refused the publish script */
        s->http = HTTP_STATUS_INTERNAL_SERVER_ERROR;
        s->error = "message bus refused the message";
        break;
    }
}

/* ------------------------------------------------------------ runs */

/* Consecutive messages of a request to one history channel go to the bus
 * as one batch (one Redis script: one meta read, one stream entry, one
 * PUBLISH), which is what makes batched history publishing
 * cheap. A run is bounded so that a single script call stays short for
 * everyone else on that Redis (it copies at most RUN_MAX_BYTES into the
 * stream and into the PUBLISH) and its payload well under the bus's 1 MiB.
 * Only consecutive messages form a run (bad ones in between aside, as they
 * are not published): across channels the request's order is kept too, as
 * documented. */
#define RUN_MAX 100
#define RUN_MAX_BYTES (256 * 1024)

/* One bus publish: a run, or a single message. Owned by its bus
 * callback. */
typedef struct api_run {
    gw_api_req *req;
    size_t n;
    api_slot *slots[]; /* in offset order */
} api_run;

/* One more bus publish of r answered: answer r when it was the last. */
static void settle(gw_api_req *r)
{
    if (--r->pending)
        return;
    if (!r->wsi) {
        /* The connection went away: nobody to answer. */
        gw_debug("api_publish", NULL, "client gone before the bus answered %zu message(s)",
                 r->n_slots);
        req_free(r);
    } else
        finish(r);
}

/* A batch's result names its first offset; the others follow on. */
static void on_run_published(void *udata, int status, const ps_publish_result *res)
{
    api_run *run = udata;
    gw_api_req *r = run->req;

    for (size_t k = 0; k < run->n; k++) {
        api_slot *s = run->slots[k];
        if (status != PS_OK) {
            slot_fail(s, status);
        } else if (res) {
            s->has_res = 1;
            s->res = *res;
            s->res.offset = res->offset + (int64_t)k;
        }
    }
    free(run);
    settle(r);
}

/* Where the run that starts at message i ends (the index after its last
 * member), with its members and their envelopes in run and list. A
 * channel without history runs one message at a time. */
static size_t collect_run(gw_api_req *r, const gw_api_body *b, const ps_payload *enc, size_t i,
                          int batched, api_run *run, ps_payload *list)
{
    size_t j, bytes = 0;

    for (j = i; j < b->n && run->n < RUN_MAX; j++) {
        if (r->slots[j].error)
            continue; /* refused on its own: not published, breaks nothing */
        if (run->n > 0 && (!batched || strcmp(b->msgs[j].channel, b->msgs[i].channel) != 0 ||
                           bytes + enc[j].len > RUN_MAX_BYTES))
            break;
        bytes += enc[j].len;
        list[run->n] = enc[j];
        run->slots[run->n++] = &r->slots[j];
    }
    return j;
}

/* Publishes the run that starts at message i (which is not refused).
 * Returns the index of the first message after it. */
static size_t publish_run(gw_api_req *r, const gw_api_body *b, const ps_payload *enc, size_t i)
{
    gw_server *s = r->srv;
    const char *channel = b->msgs[i].channel;
    ps_history_policy policy;
    const gw_namespace *ns = history_of(s->cfg, channel, &policy);
    api_run *run = malloc(sizeof(*run) + RUN_MAX * sizeof(run->slots[0]));
    ps_payload list[RUN_MAX];
    size_t next;
    int rc;

    if (!run) {
        slot_fail(&r->slots[i], PS_ENOMEM);
        return i + 1;
    }
    *run = (api_run){.req = r};
    next = collect_run(r, b, enc, i, ns != NULL, run, list);
    /* Counted before the call; the bus never calls back from inside it. */
    r->pending++;
    rc = ns ? ps_bus_publish_batch(s->bus, channel, list, run->n, &policy, on_run_published, run)
            : ps_bus_publish(s->bus, channel, list[0].text, list[0].len, NULL, on_run_published,
                             run);
    if (rc != PS_OK) {
        r->pending--;
        for (size_t k = 0; k < run->n; k++)
            slot_fail(run->slots[k], rc);
        free(run);
    }
    return next;
}

/* Each message's outcome starts as 200, or 400 when it was refused on its
 * own; each that is not gets its envelope in enc (NULL text: refused now). */
static void prepare_slots(gw_api_req *r, const gw_api_body *b, ps_payload *enc)
{
    size_t max = (size_t)r->srv->cfg->max_message_bytes;

    for (size_t i = 0; i < b->n; i++) {
        api_slot *slot = &r->slots[i];
        int rc;
        *slot = (api_slot){.http = HTTP_STATUS_OK, .error = b->msgs[i].error};
        if (slot->error)
            slot->http = HTTP_STATUS_BAD_REQUEST;
        else if ((rc = encode_message(b->msgs[i].data, max, &enc[i])) != PS_OK)
            slot_fail(slot, rc);
    }
}

static void publish_all(gw_api_req *r, const gw_api_body *b)
{
    gw_server *s = r->srv;
    ps_payload *enc;

    if (!ps_bus_is_up(s->bus)) {
        respond_error(r, HTTP_STATUS_SERVICE_UNAVAILABLE, "message bus unavailable");
        return;
    }
    r->slots = calloc(b->n, sizeof(*r->slots));
    enc = calloc(b->n, sizeof(*enc));
    if (!r->slots || !enc) {
        free(enc);
        respond_error(r, HTTP_STATUS_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    r->n_slots = b->n;
    r->batch = b->batch;
    r->phase = REQ_PUBLISHING;
    prepare_slots(r, b, enc);
    for (size_t i = 0; i < b->n;)
        i = r->slots[i].error ? i + 1 : publish_run(r, b, enc, i);
    for (size_t i = 0; i < b->n; i++)
        free((char *)enc[i].text);
    free(enc);
    if (r->pending == 0)
        finish(r);
}

static void on_body_complete(gw_api_req *r)
{
    gw_api_body b;
    const char *why;
    int status;
    if (r->phase != REQ_READING)
        return;
    status = gw_api_parse_body(r->body ? r->body : "", r->body_len,
                               (size_t)r->srv->cfg->max_message_bytes, &b, &why);
    free(r->body);
    r->body = NULL;
    if (status != 0) {
        respond_error(r, (unsigned)status, why);
        return;
    }
    publish_all(r, &b);
    gw_api_body_clear(&b);
}

static void on_body(gw_api_req *r, const void *in, size_t len)
{
    /* Answered early: the rest goes with the connection. lws reports an
     * empty body as one chunk of 0 bytes at NULL. */
    if (r->phase != REQ_READING || len == 0)
        return;
    if (r->body_len + len > r->body_max) {
        r->close_after = 1;
        respond_error(r, HTTP_STATUS_REQ_ENTITY_TOO_LARGE, "body too large");
        return;
    }
    if (r->body_len + len > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 4096;
        char *b;
        while (cap < r->body_len + len)
            cap *= 2;
        if (cap > r->body_max)
            cap = r->body_max;
        if (!(b = realloc(r->body, cap))) {
            r->close_after = 1;
            respond_error(r, HTTP_STATUS_INTERNAL_SERVER_ERROR, "out of memory");
            return;
        }
        r->body = b;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, in, len);
    r->body_len += len;
}

/* ------------------------------------------------------------ headers */

/* Content-Length: its value, -1 when absent, -2 when not a number. */
static long long content_length(struct lws *wsi)
{
    char v[32], *end;
    unsigned long long n;
    int len = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH);
    if (len <= 0)
        return -1;
    if ((size_t)len >= sizeof(v) ||
        lws_hdr_copy(wsi, v, sizeof(v), WSI_TOKEN_HTTP_CONTENT_LENGTH) < 0 || v[0] < '0' ||
        v[0] > '9')
        return -2;
    errno = 0;
    n = strtoull(v, &end, 10);
    if (errno || *end || n > LLONG_MAX)
        return -2;
    return (long long)n;
}

/* NULL when the request carries one of the keys, else why not. */
static const char *check_key(const gw_server *s, struct lws *wsi)
{
    char hdr[AUTH_HEADER_MAX];
    const char *key, *why = NULL;
    size_t key_len;
    int n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
    if (n <= 0)
        return "missing API key";
    /* No key is this long, so refusing it unread says nothing about any key. */
    if ((size_t)n >= sizeof(hdr) ||
        lws_hdr_copy(wsi, hdr, sizeof(hdr), WSI_TOKEN_HTTP_AUTHORIZATION) != n)
        return "invalid API key";
    if (gw_api_bearer(hdr, (size_t)n, &key, &key_len) < 0)
        why = "expected Authorization: Bearer <API key>";
    else if (!gw_api_keys_match(s->api_keys, key, key_len))
        why = "invalid API key";
    OPENSSL_cleanse(hdr, sizeof(hdr));
    return why;
}

static void log_refused(struct lws *wsi, const char *why)
{
    char peer[64] = "";
    lws_get_peer_simple(wsi, peer, sizeof(peer));
    gw_info("api_unauthorized", NULL, "%s from %s", why, peer);
}

/* Decides from the headers alone: answer at once, or read the body. */
static void check_request(gw_api_req *r, struct lws *wsi)
{
    const gw_server *s = r->srv;
    long long cl = content_length(wsi);
    const char *why;

    /* A body we answer without reading would be taken for the next request. */
    r->close_after =
        cl > 0 || cl == -2 || lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) <= 0) {
        respond_error(r, HTTP_STATUS_METHOD_NOT_ALLOWED, "method not allowed");
        return;
    }
    if (!s->api_keys) {
        respond_error(r, HTTP_STATUS_UNAUTHORIZED, "publish API disabled");
        return;
    }
    if ((why = check_key(s, wsi)) != NULL) {
        log_refused(wsi, why);
        respond_error(r, HTTP_STATUS_UNAUTHORIZED, why);
        return;
    }
    if (cl == -2) {
        respond_error(r, HTTP_STATUS_BAD_REQUEST, "bad Content-Length");
        return;
    }
    if (cl == -1) {
        /* lws 4.1 does not decode chunked request bodies. */
        respond_error(r, HTTP_STATUS_LENGTH_REQUIRED, "Content-Length required");
        return;
    }
    r->body_max = (size_t)s->cfg->max_message_bytes;
    if (r->body_max < GW_API_BATCH_MAX_BYTES)
        r->body_max = GW_API_BATCH_MAX_BYTES;
    if ((unsigned long long)cl > r->body_max) {
        respond_error(r, HTTP_STATUS_REQ_ENTITY_TOO_LARGE, "body too large");
        return;
    }
    r->close_after = 0;
    r->phase = REQ_READING;
}

int gw_api_on_http(gw_server *s, struct lws *wsi, gw_conn *c)
{
    gw_api_req *r;
    if (!c)
        return -1;
    detach(c);
    if (!(r = calloc(1, sizeof(*r))))
        return -1;
    r->srv = s;
    r->wsi = wsi;
    r->phase = REQ_CHECKING;
    c->api = r;
    check_request(r, wsi);
    return 0;
}

/* ------------------------------------------------------------ writing */

static int write_headers(gw_api_req *r, struct lws *wsi)
{
    unsigned char buf[LWS_PRE + 512];
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf) - 1;
    size_t len = r->resp ? r->resp_len : strlen("{\"error\":\"out of memory\"}");

    if (lws_add_http_common_headers(wsi, r->status, "application/json", (lws_filepos_t)len, &p,
                                    end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                     (const unsigned char *)"no-store", 8, &p, end))
        return -1;
    if (r->status == HTTP_STATUS_UNAUTHORIZED &&
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_WWW_AUTHENTICATE,
                                     (const unsigned char *)"Bearer", 6, &p, end))
        return -1;
    if (r->status == HTTP_STATUS_METHOD_NOT_ALLOWED &&
        lws_add_http_header_by_name(
            wsi, (const unsigned char *)"allow:", (const unsigned char *)"POST", 4, &p, end))
        return -1;
    if (r->close_after && lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION,
                                                       (const unsigned char *)"close", 5, &p, end))
        return -1;
    return lws_finalize_write_http_header(wsi, start, &p, end) ? -1 : 0;
}

static int write_body(gw_api_req *r, struct lws *wsi)
{
    static const char oom[] = "{\"error\":\"out of memory\"}";
    unsigned char small[LWS_PRE + sizeof(oom)];
    unsigned char *data = r->resp ? r->resp + LWS_PRE : small + LWS_PRE;
    size_t len = r->resp ? r->resp_len : sizeof(oom) - 1;
    if (!r->resp)
        memcpy(data, oom, len);
    return lws_write(wsi, data, len, LWS_WRITE_HTTP_FINAL) == (int)len ? 0 : -1;
}

static int on_writable(gw_conn *c, struct lws *wsi)
{
    gw_api_req *r = c->api;
    int rc, close;
    if (r->phase == REQ_HEADERS) {
        if (write_headers(r, wsi) < 0)
            return -1;
        r->phase = REQ_BODY;
        lws_callback_on_writable(wsi);
        return 0;
    }
    if (r->phase != REQ_BODY)
        return 0;
    rc = write_body(r, wsi);
    close = r->close_after;
    /* Freed before lws_http_transaction_completed: it drops the protocol,
     * which would detach the request from inside this callback. */
    detach(c);
    if (rc < 0 || close)
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

int gw_api_owns(enum lws_callback_reasons reason, const gw_conn *c)
{
    switch (reason) {
    case LWS_CALLBACK_HTTP_BODY:
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
    case LWS_CALLBACK_HTTP_WRITEABLE:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        return c && c->api;
    default:
        return 0;
    }
}

int gw_api_callback(gw_server *s, struct lws *wsi, enum lws_callback_reasons reason, gw_conn *c,
                    void *in, size_t len)
{
    (void)s;
    switch (reason) {
    case LWS_CALLBACK_HTTP_BODY:
        on_body(c->api, in, len);
        return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        on_body_complete(c->api);
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return on_writable(c, wsi);
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        detach(c);
        break;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, c, in, len);
}

int gw_api_init(gw_server *s)
{
    char err[512];
    if (gw_api_keys_load(&s->cfg->api_key_files, &s->api_keys, err, sizeof(err)) < 0) {
        gw_error("config", NULL, "%s", err);
        return -1;
    }
    if (s->api_keys)
        gw_info("api", NULL, "POST %s enabled with %zu key(s)", GW_API_PATH,
                gw_api_keys_count(s->api_keys));
    else
        gw_info("api", NULL, "POST %s disabled: no --api-key-file", GW_API_PATH);
    return 0;
}
