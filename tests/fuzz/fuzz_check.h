/*
 * fuzz_check: what every fuzz target shares. CHECK aborts with the failed
 * condition, so that libFuzzer keeps the input as a crash: a target's own
 * invariants (a reply that is not JSON, data that changed on the way) are
 * bugs just as much as what the sanitizers find.
 */
#ifndef FUZZ_CHECK_H
#define FUZZ_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);              \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 1 when obj[key] is the string want. */
static inline int member_is(const json_t *obj, const char *key, const char *want)
{
    const json_t *v = json_object_get(obj, key);

    return json_is_string(v) && strcmp(json_string_value(v), want) == 0;
}

#endif
