/*
 * Frames: the reference-counted buffers a message is written into once and
 * then queued, unchanged, to every subscriber that should receive it. The
 * headroom in front of the text belongs to the writer (lws wants LWS_PRE
 * bytes there), the NUL after it only serves logs.
 *
 * The count is a plain integer: frames live on one loop thread.
 */
#include <stdint.h>
#include <stdlib.h>

#include "pubsub/pubsub.h"

ps_frame *ps_frame_new(size_t headroom, size_t len)
{
    ps_frame *f;

    /* Refuse sizes whose sum would wrap rather than allocate too little. */
    if (headroom > SIZE_MAX / 2 || len > SIZE_MAX / 2 - headroom - sizeof(*f) - 1)
        return NULL;
    f = malloc(sizeof(*f) + headroom + len + 1);
    if (!f)
        return NULL;
    f->refs = 1;
    f->headroom = headroom;
    f->len = len;
    f->buf[headroom + len] = '\0';
    return f;
}

void ps_frame_unref(ps_frame *f)
{
    if (f && --f->refs == 0)
        free(f);
}
