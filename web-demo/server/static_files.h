/*
 * static_files: the page's files (index.html, app.js, style.css,
 * wsgw-client.js), read once at start and served from memory.
 *
 * A fixed list rather than a folder walk: the demo serves exactly its own
 * page, so no path from a request ever reaches the file system, and no file
 * read blocks the loop while it runs. A change to a file needs a restart.
 */
#ifndef DEMO_STATIC_FILES_H
#define DEMO_STATIC_FILES_H

#include <stddef.h>

#define DEMO_STATIC_COUNT 4
#define DEMO_STATIC_MAX (1024 * 1024) /* per file */

typedef struct demo_static_file {
    const char *path; /* as requested, e.g. "/app.js" */
    const char *type; /* Content-Type */
    char *data;       /* owned */
    size_t len;
} demo_static_file;

typedef struct demo_static {
    demo_static_file files[DEMO_STATIC_COUNT];
} demo_static;

/* Reads every file from dir. Returns 0, or -1 with a reason (naming the
 * file) in err; free with demo_static_free in either case. */
int demo_static_load(demo_static *s, const char *dir, char *err, size_t errlen);

/* The file served at `path` ("/" is index.html), or NULL. */
const demo_static_file *demo_static_find(const demo_static *s, const char *path);

void demo_static_free(demo_static *s);

#endif
