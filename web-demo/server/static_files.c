/*
 * static_files: the page's files, loaded at start (see static_files.h).
 */
#include "static_files.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *path, *name, *type;
} table[DEMO_STATIC_COUNT] = {
    {"/index.html", "index.html", "text/html; charset=utf-8"},
    {"/app.js", "app.js", "text/javascript; charset=utf-8"},
    {"/style.css", "style.css", "text/css; charset=utf-8"},
    {"/wsgw-client.js", "wsgw-client.js", "text/javascript; charset=utf-8"},
};

static int load_one(demo_static_file *f, const char *dir, const char *name, char *err,
                    size_t errlen)
{
    char path[4096];
    FILE *fp;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fp = fopen(path, "rb");
    if (!fp) {
        snprintf(err, errlen, "%s: %s (see --static-dir)", path, strerror(errno));
        return -1;
    }
    f->data = malloc(DEMO_STATIC_MAX + 1);
    if (f->data)
        f->len = fread(f->data, 1, DEMO_STATIC_MAX + 1, fp);
    fclose(fp);
    if (!f->data || f->len > DEMO_STATIC_MAX) {
        snprintf(err, errlen, "%s: %s", path, f->data ? "larger than 1 MiB" : "out of memory");
        return -1;
    }
    return 0;
}

int demo_static_load(demo_static *s, const char *dir, char *err, size_t errlen)
{
    memset(s, 0, sizeof(*s));
    for (size_t i = 0; i < DEMO_STATIC_COUNT; i++) {
        s->files[i].path = table[i].path;
        s->files[i].type = table[i].type;
        if (load_one(&s->files[i], dir, table[i].name, err, errlen) < 0)
            return -1;
    }
    return 0;
}

const demo_static_file *demo_static_find(const demo_static *s, const char *path)
{
    if (strcmp(path, "/") == 0)
        path = "/index.html";
    for (size_t i = 0; i < DEMO_STATIC_COUNT; i++)
        if (s->files[i].path && strcmp(s->files[i].path, path) == 0)
            return &s->files[i];
    return NULL;
}

void demo_static_free(demo_static *s)
{
    for (size_t i = 0; i < DEMO_STATIC_COUNT; i++) {
        free(s->files[i].data);
        s->files[i].data = NULL;
    }
}
