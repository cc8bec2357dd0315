/*
 * static_dir: the --static-dir table and GET of its files (see static_dir.h).
 *
 * The walk is our own rather than nftw(3), which has no way to pass state
 * to its callback but a global. It follows symlinks (stat, not lstat), so a
 * folder that links back to itself or an ancestor would recurse: each
 * folder's device and inode are kept for its descendants, which skip a
 * folder they have already entered on their way down. MAX_DEPTH and the
 * entry bound (files and folders both) limit whatever else an operator's
 * links multiply.
 */
#include "static_dir.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <uthash.h>

#define MAX_DEPTH 16
#define MAX_PATH 1024

typedef struct static_file {
    char *url;  /* "/js/app.js": the key */
    char *file; /* the path lws opens */
    const char *type;
    UT_hash_handle hh;
} static_file;

struct gw_static {
    static_file *files; /* uthash by url */
    size_t n;
    size_t dirs; /* folders entered, against the same bound */
};

/* The folders above the one being listed, by identity. */
typedef struct ancestry {
    dev_t dev[MAX_DEPTH + 1];
    ino_t ino[MAX_DEPTH + 1];
    int n;
} ancestry;

static int entered(const ancestry *up, const struct stat *sb)
{
    for (int i = 0; i < up->n; i++) {
        if (up->dev[i] == sb->st_dev && up->ino[i] == sb->st_ino)
            return 1;
    }
    return 0;
}

/* Types browsers must get right (scripts and styles are refused under a
 * wrong one with nosniff); lws's own table for the rest. */
static const char *type_of(const char *file)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},  {".htm", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"}, {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},    {".json", "application/json"},
        {".map", "application/json"},           {".svg", "image/svg+xml"},
        {".txt", "text/plain; charset=utf-8"},  {".wasm", "application/wasm"},
        {".webmanifest", "application/manifest+json"},
    };
    const char *dot = strrchr(file, '.'), *t;
    if (dot && !strchr(dot, '/')) {
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
            if (strcmp(dot, types[i].ext) == 0)
                return types[i].type;
        }
    }
    t = lws_get_mimetype(file, NULL);
    return t ? t : "application/octet-stream";
}

static void file_free(static_file *f)
{
    free(f->url);
    free(f->file);
    free(f);
}

void gw_static_free(gw_static *st)
{
    static_file *f, *tmp;
    if (!st)
        return;
    HASH_ITER(hh, st->files, f, tmp) {
        HASH_DEL(st->files, f);
        file_free(f);
    }
    free(st);
}

size_t gw_static_count(const gw_static *st)
{
    return st ? st->n : 0;
}

static int over_bound(const gw_static *st, char *err, size_t errlen)
{
    if (st->n + st->dirs < GW_STATIC_MAX_FILES)
        return 0;
    snprintf(err, errlen, "--static-dir: more than %d files and folders", GW_STATIC_MAX_FILES);
    return 1;
}

static int add_file(gw_static *st, const char *url, const char *file, char *err, size_t errlen)
{
    static_file *f;
    if (over_bound(st, err, errlen))
        return -1;
    f = calloc(1, sizeof(*f));
    if (!f || !(f->url = strdup(url)) || !(f->file = strdup(file))) {
        if (f)
            file_free(f);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    f->type = type_of(file);
    HASH_ADD_KEYPTR(hh, st->files, f->url, strlen(f->url), f);
    st->n++;
    return 0;
}

/* Lists dir (the file-system path, whose stat is *self) as url (its
 * request path, ending in '/'). Entries that cannot be read are left out,
 * as a web server would answer 404 for them; only the top folder must be
 * readable. */
static int walk(gw_static *st, const char *dir, const struct stat *self, const char *url,
                ancestry *up, char *err, size_t errlen)
{
    char file[MAX_PATH], sub[MAX_PATH];
    struct dirent *e;
    struct stat sb;
    int rc = 0;
    DIR *d;

    if (over_bound(st, err, errlen))
        return -1;
    st->dirs++;
    if (!(d = opendir(dir)))
        return 0;
    up->dev[up->n] = self->st_dev;
    up->ino[up->n] = self->st_ino;
    up->n++;
    while (rc == 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue; /* ., .., dot files, ..data */
        if ((size_t)snprintf(file, sizeof(file), "%s/%s", dir, e->d_name) >= sizeof(file) ||
            (size_t)snprintf(sub, sizeof(sub), "%s%s", url, e->d_name) >= sizeof(sub) - 1 ||
            stat(file, &sb) != 0)
            continue;
        if (S_ISREG(sb.st_mode)) {
            rc = add_file(st, sub, file, err, errlen);
        } else if (S_ISDIR(sb.st_mode) && up->n <= MAX_DEPTH && !entered(up, &sb)) {
            strcat(sub, "/");
            rc = walk(st, file, &sb, sub, up, err, errlen);
        }
    }
    up->n--;
    closedir(d);
    return rc;
}

gw_static *gw_static_load(const char *dir, char *err, size_t errlen)
{
    struct stat sb;
    ancestry up = {.n = 0};
    DIR *d;
    gw_static *st;

    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode) || !(d = opendir(dir))) {
        snprintf(err, errlen, "--static-dir %s: not a readable folder", dir);
        return NULL;
    }
    closedir(d);
    st = calloc(1, sizeof(*st));
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (walk(st, dir, &sb, "/", &up, err, errlen) < 0) {
        gw_static_free(st);
        return NULL;
    }
    return st;
}

/* The file for a request path: "/" and paths ending in '/' name that
 * folder's index.html. NULL when none. */
static const static_file *find(const gw_static *st, const char *path)
{
    char key[MAX_PATH];
    static_file *f = NULL;
    size_t len = strlen(path);

    if (!st || len == 0 || len >= sizeof(key) - sizeof("index.html"))
        return NULL;
    memcpy(key, path, len + 1);
    if (key[len - 1] == '/')
        memcpy(key + len, "index.html", sizeof("index.html"));
    HASH_FIND_STR(st->files, key, f);
    return f;
}

int gw_static_serve(const gw_static *st, struct lws *wsi, const char *path)
{
    /* nosniff: a file is only ever what its name says; no-cache: browsers
     * revalidate, so a deploy is seen at the next load. */
    static const char headers[] = "x-content-type-options: nosniff\x0d\x0a"
                                  "cache-control: no-cache\x0d\x0a";
    const static_file *f;

    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0 &&
        lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) <= 0)
        return 1; /* neither GET nor HEAD */
    f = find(st, path);
    if (!f)
        return 1;
    /* 0: lws sends the file as the socket takes it. Anything else (it could
     * not open the file, which went after the start, and answered 404; or it
     * finished at once) ends this connection, as lws asks. */
    return lws_serve_http_file(wsi, f->file, f->type, headers, (int)sizeof(headers) - 1) ? -1 : 0;
}
