/*
 * static_dir: `GET /` and static files from --static-dir (protocol-v1.md's
 * endpoint table: "the web demo, when a static folder is configured").
 *
 * The folder is walked once at start. A request is answered only when its
 * path is exactly one of the files found then, so no part of a URL ever
 * becomes a file-system path: "..", encoded slashes and symlinks that lead
 * out cannot reach anything that was not listed. Names starting with '.'
 * (.git, .env, Kubernetes' ..data) are not listed. The files are read from
 * disk at each request by lws (lws_serve_http_file, which sends them as
 * the socket takes them), so an edited file is served new; a new file needs
 * a restart.
 */
#ifndef GW_STATIC_DIR_H
#define GW_STATIC_DIR_H

#include <stddef.h>

#include <libwebsockets.h>

#define GW_STATIC_MAX_FILES 10000

typedef struct gw_static gw_static;

/* Lists the regular files under dir (following symlinks, as a mounted
 * ConfigMap needs, but never into a folder it is already inside). Returns
 * the table, or NULL with a one-line reason in err (dir unreadable, not a
 * folder, more than GW_STATIC_MAX_FILES files and folders, out of memory).
 * The caller owns the table: gw_static_free. */
gw_static *gw_static_load(const char *dir, char *err, size_t errlen);
void gw_static_free(gw_static *st);
size_t gw_static_count(const gw_static *st);

/* Answers GET path from st when it names a file. Returns 1 when it did not
 * (the caller answers 404), else what the HTTP callback should return: 0,
 * or -1 to close the connection. */
int gw_static_serve(const gw_static *st, struct lws *wsi, const char *path);

#endif
