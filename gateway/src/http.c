/*
 * http: the plain HTTP endpoints of a gateway process.
 *
 * Responses here are a few hundred bytes to a few kilobytes, sent on a
 * connection that has written nothing yet, so the header and the body are
 * written in the HTTP callback itself: the kernel's empty socket buffer takes
 * both whole. Any other GET is one of --static-dir's files when it names
 * one (static_dir.c, which lws sends as the socket takes it), else 404.
 * POST /api/publish, which answers only once the bus has, lives in
 * http_api.c; this file routes its callbacks there.
 */
#include "http.h"

#include <stdio.h>
#include <string.h>

#include "conn.h"
#include "http_api.h"
#include "client_limits.h"
#include "metrics.h"
#include "static_dir.h"

#define BODY_MAX 32768

static int respond(struct lws *wsi, unsigned int status, const char *type, const char *body,
                   size_t len)
{
    unsigned char hdr[LWS_PRE + 512];
    unsigned char *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof(hdr) - 1;

    if (lws_add_http_common_headers(wsi, status, type, (lws_filepos_t)len, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                     (const unsigned char *)"no-store", 8, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    if (len) {
        unsigned char buf[LWS_PRE + BODY_MAX];
        if (len > BODY_MAX)
            return -1;
        memcpy(buf + LWS_PRE, body, len);
        if (lws_write(wsi, buf + LWS_PRE, len, LWS_WRITE_HTTP_FINAL) != (int)len)
            return -1;
    }
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int respond_text(struct lws *wsi, unsigned int status, const char *text)
{
    return respond(wsi, status, "text/plain; charset=utf-8", text, strlen(text));
}

static int serve_metrics(gw_server *s, struct lws *wsi)
{
    char body[BODY_MAX];
    size_t n = gw_metrics_render(s, body, sizeof(body));
    return respond(wsi, HTTP_STATUS_OK, "text/plain; version=0.0.4; charset=utf-8", body, n);
}

static int on_http(gw_server *s, struct lws *wsi, const char *path)
{
    if (strcmp(path, "/healthz") == 0)
        return respond_text(wsi, HTTP_STATUS_OK, "ok\n");
    if (strcmp(path, "/readyz") == 0) {
        if (gw_server_ready(s))
            return respond_text(wsi, HTTP_STATUS_OK, "ready\n");
        return respond_text(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE,
                            s->stopping ? "draining\n" : "message bus unavailable\n");
    }
    if (strcmp(path, "/metrics") == 0)
        return serve_metrics(s, wsi);
    if (s->statics) {
        int rc = gw_static_serve(s->statics, wsi, path);
        if (rc <= 0)
            return rc;
    }
    return respond_text(wsi, HTTP_STATUS_NOT_FOUND, "not found\n");
}

int gw_http_filter_upgrade(gw_server *s, struct lws *wsi)
{
    char uri[64];
    unsigned int status;
    int n = lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI);
    /* Tokens never travel in the URL; only the path is checked. */
    if (n < 3 || strncmp(uri, "/ws", 3) != 0 || (uri[3] && uri[3] != '?'))
        return 1;
    /* Draining (drain.c) or a limit (client_limits.c): the client learns
     * why (503: try another process, or later; 403: this page may not
     * connect); lws closes the connection after the nonzero return. */
    status = s->stopping ? HTTP_STATUS_SERVICE_UNAVAILABLE : gw_limits_check_upgrade(s, wsi);
    if (status) {
        lws_return_http_status(wsi, status, NULL);
        return 1;
    }
    return 0;
}

int gw_http_callback(gw_server *s, struct lws *wsi, enum lws_callback_reasons reason, void *user,
                     void *in, size_t len)
{
    gw_conn *c = user;
    /* /api/publish answers after the bus does: it keeps its own state. */
    if (reason == LWS_CALLBACK_HTTP && strcmp((const char *)in, GW_API_PATH) == 0)
        return gw_api_on_http(s, wsi, c);
    if (gw_api_owns(reason, c))
        return gw_api_callback(s, wsi, reason, c, in, len);
    if (reason == LWS_CALLBACK_HTTP)
        return on_http(s, wsi, (const char *)in);
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}
