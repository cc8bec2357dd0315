/*
 * fuzz_envelope: libFuzzer target for the Redis envelope parser
 * (pubsub/src/envelope.c), which reads every payload that arrives on a
 * subscribed Redis channel. Anyone who can PUBLISH to that Redis can send
 * it anything, so it must treat every payload as hostile.
 *
 * Each input is one Redis message: a payload, or a batch's JSON array of
 * payloads (headed by a first offset and an epoch, or, from older
 * versions, not), which the splitter (ps__envelopes_next) cuts into the
 * payloads the bus hands to the gateway, completing each with its offset
 * and the epoch after a header. For each payload the target parses it with
 * ps_envelope_parse and, when it is accepted, does what the
 * gateway does next: builds the one frame all subscribers of the channel
 * share (ps_envelope_frame, on a channel name that needs escaping), and, as
 * a publish with history would, splits the object to append "offset" and
 * "epoch" (ps__object_split) and parses the stored text again. Besides
 * memory errors, leaks and undefined behaviour, it aborts when a refused
 * payload leaves the envelope uncleared, when an accepted one has a field
 * outside its documented syntax, when the frame is not a JSON object
 * carrying exactly the envelope's client-visible fields (never "ts"), or
 * when a re-encoded envelope or the stored text does not parse back to the
 * same data.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "bus_internal.h"
#include "pubsub/pubsub.h"

#define HEADROOM 16 /* stands in for LWS_PRE */
/* Visible ASCII the bus accepts in a channel name, with the two characters
 * a JSON string must escape. */
#define CHANNEL "ns:\"quoted\\name\""
#define STORED_TAIL "\"offset\":7,\"epoch\":\"Ep-0_z\"}"



/* 1..max bytes of [A-Za-z0-9_-], plus the extra characters in `more`. */
static int word_valid(const char *s, size_t max, const char *more)
{
    size_t n = strlen(s);

    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || (c && strchr(more, c))))
            return 0;
    }
    return 1;
}

static void check_fields(const ps_envelope *env)
{
    CHECK(json_is_object(env->root));
    CHECK(env->data != NULL && env->data == json_object_get(env->root, "data"));
    CHECK(!env->from || word_valid(env->from, 128, ".@"));
    CHECK(!env->epoch || word_valid(env->epoch, PS_EPOCH_MAX, ""));
    CHECK(env->offset >= -1 && env->ts_ms >= -1);
}

/* The shared frame: {"type":"message","channel":...,"data":...} plus
 * exactly the optional fields the envelope had. */
static void check_frame(const ps_envelope *env)
{
    ps_frame *f = ps_envelope_frame(env, CHANNEL, HEADROOM);
    json_t *o, *off;

    CHECK(f != NULL);
    CHECK(f->refs == 1 && f->headroom == HEADROOM && ps_frame_data(f)[f->len] == '\0');
    o = json_loadb((const char *)ps_frame_data(f), f->len, JSON_REJECT_DUPLICATES, NULL);
    CHECK(json_is_object(o));
    CHECK(member_is(o, "type", "message") && member_is(o, "channel", CHANNEL));
    CHECK(json_equal(json_object_get(o, "data"), env->data));
    off = json_object_get(o, "offset");
    CHECK(env->offset >= 0 ? json_integer_value(off) == env->offset : off == NULL);
    CHECK(env->epoch ? member_is(o, "epoch", env->epoch) : !json_object_get(o, "epoch"));
    CHECK(env->from ? member_is(o, "from", env->from) : !json_object_get(o, "from"));
    CHECK(json_object_get(o, "ts") == NULL); /* for the gateway's metrics only */
    json_decref(o);
    ps_frame_unref(f);
}

/* Encoding the data again (as a publish through the gateway would) must
 * give an envelope that parses back to the same data, sender and time. */
static void check_reencode(const ps_envelope *env)
{
    char *text = NULL;
    size_t len = 0;
    ps_envelope back;

    CHECK(ps_envelope_encode(env->data, env->from, env->ts_ms, &text, &len) == PS_OK);
    CHECK(ps_envelope_parse(text, len, &back) == PS_OK);
    CHECK(json_equal(back.data, env->data) && back.ts_ms == env->ts_ms);
    CHECK(env->from ? back.from && strcmp(back.from, env->from) == 0 : back.from == NULL);
    ps_envelope_clear(&back);
    free(text);
}

/* History stores head + sep + "offset":N,"epoch":"E"}. For an envelope
 * that has neither key yet, that text must be an envelope with the same
 * data and the appended offset and epoch. */
static void check_stored(const char *payload, size_t len, const ps_envelope *env)
{
    size_t head_len;
    const char *sep;
    char *text;
    size_t n;
    ps_envelope st;

    CHECK(ps__object_split(payload, len, &head_len, &sep) == 0);
    if (json_object_get(env->root, "offset") || json_object_get(env->root, "epoch"))
        return;
    n = head_len + strlen(sep) + strlen(STORED_TAIL);
    text = malloc(n);
    CHECK(text != NULL);
    memcpy(text, payload, head_len);
    memcpy(text + head_len, sep, strlen(sep));
    memcpy(text + head_len + strlen(sep), STORED_TAIL, strlen(STORED_TAIL));
    CHECK(ps_envelope_parse(text, n, &st) == PS_OK);
    CHECK(json_equal(st.data, env->data));
    CHECK(st.offset == 7 && st.epoch && strcmp(st.epoch, "Ep-0_z") == 0);
    ps_envelope_clear(&st);
    free(text);
}

/* One envelope, as the bus hands it to the gateway. */
static void check_envelope(const char *payload, size_t size)
{
    ps_envelope env;
    int rc = ps_envelope_parse(payload, size, &env);

    if (rc != PS_OK) {
        CHECK(rc == PS_EENVELOPE);
        CHECK(!env.root && !env.data && !env.from && !env.epoch && env.offset == -1);
        return;
    }
    check_fields(&env);
    check_frame(&env);
    check_reencode(&env);
    check_stored(payload, size, &env);
    ps_envelope_clear(&env);
    CHECK(!env.root && !env.data);
}

/* After a header, an accepted envelope has the offset it was given and
 * the header's epoch: the splitter appended both, and a piece that had
 * either already is refused as a duplicate key. */
static void check_completed(const char *text, size_t len, const ps__splitter *sp)
{
    ps_envelope env;

    CHECK(text == sp->buf && len >= 2 && text[0] == '{' && text[len - 1] == '}');
    if (ps_envelope_parse(text, len, &env) != PS_OK)
        return;
    CHECK(env.offset == sp->offset - 1 && env.epoch && strlen(env.epoch) == sp->epoch_len &&
          memcmp(env.epoch, sp->epoch, sp->epoch_len) == 0);
    ps_envelope_clear(&env);
}

/* The input is a whole Redis message: one envelope, or a batch's array of
 * them. The splitter must give out pieces of the input, in order, without
 * overlap, each an object's brackets when the input is an array; after a
 * header, texts it built, each completed as check_completed says. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *payload = (const char *)data, *text, *prev_end = payload;
    ps__splitter sp;
    size_t len;

    ps__envelopes_begin(&sp, payload, size);
    while (ps__envelopes_next(&sp, &text, &len)) {
        if (sp.epoch) {
            check_completed(text, len, &sp);
        } else {
            CHECK(text >= prev_end && len <= size && text + len <= payload + size);
            CHECK(!sp.array || (len >= 2 && text[0] == '{' && text[len - 1] == '}'));
            prev_end = text + len;
        }
        check_envelope(text, len);
    }
    ps__envelopes_end(&sp);
    return 0;
}
