/*
 * app: the routes of wsgw-demo and the wiring of its parts (see app.h).
 *
 * Every handler answers synchronously: signing a token is fast, and
 * starting a job only queues its first message. Request bodies are small
 * JSON objects read with jansson; answers are built with jansson too, so a
 * user name never breaks the JSON.
 *
 * The page learns the gateways' URLs from the login answer. With
 * --gateway-ports they are built from the host name the page itself was
 * loaded from (as lws's mount-origin does), so the demo works on
 * 127.0.0.1, localhost or a LAN name alike; the Content-Security-Policy's
 * connect-src lists exactly those URLs.
 */
#include "app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "http.h"
#include "jobs.h"
#include "log.h"
#include "publisher.h"
#include "static_files.h"
#include "tokens.h"

struct demo_app {
    const demo_config *cfg;
    demo_static files;
    demo_tokens *tokens;
    demo_publisher *pub;
    demo_jobs *jobs;
    demo_http_server *http;
};

/* ------------------------------------------------------------ gateway URLs */

/* The host name of a Host header ("name:port", "[v6]:port"), when it is made
 * only of characters that cannot break a URL or a header; "127.0.0.1" when
 * absent or odd. */
static void request_hostname(const char *host, char *out, size_t len)
{
    size_t n = host[0] == '[' ? strcspn(host, "]") + 1 : strcspn(host, ":");
    int ok = n > 0 && n < len && n <= strlen(host);
    for (size_t i = 0; ok && i < n; i++)
        ok = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-[]:",
                    host[i]) != NULL;
    if (!ok) {
        snprintf(out, len, "127.0.0.1");
        return;
    }
    memcpy(out, host, n);
    out[n] = '\0';
}

/* Gateway i's browser URL for a page loaded through `host`. */
static void gateway_url(const demo_app *a, size_t i, const char *host, char *out, size_t len)
{
    const demo_gateway *g = &a->cfg->gateways[i];
    char name[256];
    if (!a->cfg->by_ports) {
        snprintf(out, len, "%s", g->url);
        return;
    }
    request_hostname(host, name, sizeof(name));
    snprintf(out, len, "ws://%s:%d/ws", name, g->port);
}

/* [{"name":"A","url":"ws://..."}, ...] in failover order. */
static json_t *gateways_json(const demo_app *a, const char *host)
{
    json_t *arr = json_array();
    char url[300], name[2] = "A";
    for (size_t i = 0; arr && i < a->cfg->n_gateways; i++) {
        gateway_url(a, i, host, url, sizeof(url));
        name[0] = (char)('A' + i);
        json_array_append_new(arr, json_pack("{s:s,s:s}", "name", name, "url", url));
    }
    return arr;
}

/* The page's policy: its own scripts and styles only, no inline code, and
 * WebSockets to the gateways only. */
static void csp_header(const demo_app *a, const char *host, demo_http_reply *r)
{
    char csp[900], url[300];
    size_t used = (size_t)snprintf(csp, sizeof(csp),
                                   "default-src 'none'; script-src 'self'; style-src 'self'; "
                                   "img-src 'self'; base-uri 'none'; form-action 'none'; "
                                   "frame-ancestors 'none'; connect-src 'self'");
    for (size_t i = 0; i < a->cfg->n_gateways && used < sizeof(csp); i++) {
        gateway_url(a, i, host, url, sizeof(url));
        /* Origins only: "ws://host:port" without the path. */
        char *path = strchr(url + 5, '/');
        if (path)
            *path = '\0';
        used += (size_t)snprintf(csp + used, sizeof(csp) - used, " %s", url);
    }
    demo_http_reply_header(r, "Content-Security-Policy", csp);
}

/* ------------------------------------------------------------ helpers */

static void reply_json(demo_http_reply *r, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) {
        demo_http_reply_error(r, 500, "out of memory");
        return;
    }
    demo_http_reply_set(r, status, "application/json", text, strlen(text));
    free(text);
}

/* The request's JSON object body, or NULL after setting an error reply. */
static json_t *json_body(const demo_http_request *req, demo_http_reply *r)
{
    json_t *body;
    /* A JSON type cannot be sent by a plain cross-site form: a cheap guard. */
    if (strncmp(req->content_type, "application/json", 16) != 0) {
        demo_http_reply_error(r, 415, "expected Content-Type: application/json");
        return NULL;
    }
    body = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(body)) {
        json_decref(body);
        demo_http_reply_error(r, 400, "body is not a JSON object");
        return NULL;
    }
    return body;
}

/* ------------------------------------------------------------ routes */

static void route_static(demo_app *a, const demo_http_request *req, demo_http_reply *r)
{
    const demo_static_file *f = demo_static_find(&a->files, req->path);
    if (!f) {
        demo_http_reply_error(r, 404, "not found");
        return;
    }
    demo_http_reply_set(r, 200, f->type, f->data, f->len);
    demo_http_reply_header(r, "Cache-Control", "no-cache");
    if (strcmp(f->path, "/index.html") == 0)
        csp_header(a, req->host, r);
}

static void route_login(demo_app *a, const demo_http_request *req, demo_http_reply *r)
{
    json_t *body = json_body(req, r);
    const char *name;
    char *token = NULL;
    int64_t exp;
    if (!body)
        return;
    name = json_string_value(json_object_get(body, "name"));
    if (!name || !demo_name_valid(name)) {
        demo_http_reply_error(r, 400, "name: 1 to 32 of letters, digits, _ . @ -");
    } else if (demo_tokens_connection(a->tokens, name, &token, &exp) < 0) {
        demo_http_reply_error(r, 500, "could not sign a token");
    } else {
        reply_json(r, 200,
                   json_pack("{s:s,s:s,s:I,s:o}", "user", name, "token", token, "exp",
                             (json_int_t)exp, "gateways", gateways_json(a, req->host)));
        demo_info("login", "token for %s", name);
    }
    free(token);
    json_decref(body);
}

static void route_jobs(demo_app *a, const demo_http_request *req, demo_http_reply *r)
{
    char sub[DEMO_NAME_MAX + 1], id[DEMO_JOB_ID_LEN + 1], channel[64], *token = NULL;
    const char *why;
    int64_t exp;
    if (demo_tokens_user(a->tokens, req->authorization, sub, sizeof(sub), &why) < 0) {
        demo_http_reply_error(r, 401, why);
        return;
    }
    if (demo_jobs_start(a->jobs, sub, id) < 0) {
        demo_http_reply_error(r, 429, "too many jobs running; try again shortly");
        return;
    }
    snprintf(channel, sizeof(channel), "job:%s", id);
    if (demo_tokens_subscription(a->tokens, sub, channel, &token, &exp) < 0) {
        demo_http_reply_error(r, 500, "could not sign a token");
        return;
    }
    reply_json(r, 201,
               json_pack("{s:s,s:s,s:s,s:I}", "id", id, "channel", channel, "token", token, "exp",
                         (json_int_t)exp));
    free(token);
}

static void handle(void *ud, const demo_http_request *req, demo_http_reply *r)
{
    demo_app *a = ud;
    int get = strcmp(req->method, "GET") == 0;
    int post = strcmp(req->method, "POST") == 0;
    if (strcmp(req->path, "/demo/login") == 0 && post)
        route_login(a, req, r);
    else if (strcmp(req->path, "/demo/jobs") == 0 && post)
        route_jobs(a, req, r);
    else if (strcmp(req->path, "/healthz") == 0 && get)
        demo_http_reply_set(r, 200, NULL, "ok\n", 3);
    else if (strcmp(req->path, "/favicon.ico") == 0 && get)
        r->status = 204; /* no icon, and no 404 in the browser's console */
    else if (strncmp(req->path, "/demo/", 6) == 0)
        demo_http_reply_error(r, 405, "method not allowed");
    else if (get)
        route_static(a, req, r);
    else
        demo_http_reply_error(r, 405, "method not allowed");
}

/* ------------------------------------------------------------ lifetime */

demo_app *demo_app_start(uv_loop_t *loop, const demo_config *cfg, char *err, size_t errlen)
{
    demo_app *a = calloc(1, sizeof(*a));
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    a->cfg = cfg;
    if (demo_static_load(&a->files, cfg->static_dir, err, errlen) < 0 ||
        !(a->tokens = demo_tokens_new(cfg, err, errlen)) ||
        !(a->pub = demo_publisher_new(loop, cfg, err, errlen)))
        goto err;
    if (!(a->jobs = demo_jobs_new(loop, cfg, a->pub))) {
        snprintf(err, errlen, "out of memory");
        goto err;
    }
    a->http = demo_http_start(loop, cfg->listen_host, cfg->listen_port, handle, a, err, errlen);
    if (!a->http)
        goto err;
    return a;
err:
    demo_app_stop(a);
    return NULL;
}

void demo_app_stop(demo_app *a)
{
    if (!a)
        return;
    if (a->http)
        demo_http_stop(a->http);
    demo_jobs_close(a->jobs);
    demo_publisher_close(a->pub);
    demo_tokens_free(a->tokens);
    demo_static_free(&a->files);
    free(a);
}
