/* Shared helpers of the libFuzzer targets (tests/fuzz/fuzz_*.c; docs/fuzzing.md): the entry
 * point prototypes, property checks that abort with a message (so libFuzzer keeps the input),
 * RR_ASSERT failures reported the same way, and a reader that takes control bytes off the
 * front of an input without ever reading past its end. Header-only: every target is one
 * translation unit. */
#ifndef RR_TESTS_FUZZ_FUZZ_H
#define RR_TESTS_FUZZ_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/assert.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A broken property: print it and abort, which libFuzzer reports as a crash with the input
 * saved. Used for the targets' own checks; the code under test uses RR_ASSERT. */
#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz property failed at %s:%d: %s: ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static inline void fuzz_assert_handler(const char *file, int line, const char *expr)
{
    fprintf(stderr, "RR_ASSERT failed at %s:%d: %s\n", file, line, expr);
    abort();
}

/* Call from LLVMFuzzerInitialize. */
static inline void fuzz_setup(void)
{
    rr_assert_set_handler(fuzz_assert_handler);
}

/* Consumes an input from the front: control bytes first, the rest as data. Reads past the
 * end give zeros, so every input is usable whatever its length. */
struct fuzz_in {
    const uint8_t *p;
    size_t left;
};

static inline uint8_t fuzz_u8(struct fuzz_in *in)
{
    if (in->left == 0) {
        return 0;
    }
    in->left--;
    return *in->p++;
}

static inline uint16_t fuzz_u16(struct fuzz_in *in)
{
    uint16_t lo = fuzz_u8(in);
    return (uint16_t)(lo | (uint16_t)(fuzz_u8(in) << 8));
}

/* Up to n bytes (fewer at the end); *got says how many. */
static inline const uint8_t *fuzz_bytes(struct fuzz_in *in, size_t n, size_t *got)
{
    const uint8_t *p = in->p;
    *got = n < in->left ? n : in->left;
    in->p += *got;
    in->left -= *got;
    return p;
}

/* A small deterministic generator for choices made from a control byte (chunk sizes). */
static inline uint32_t fuzz_rand(uint32_t *state)
{
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return x;
}

/* An exact-size copy, so AddressSanitizer flags any read past the end. */
static inline uint8_t *fuzz_dup(const uint8_t *p, size_t n)
{
    uint8_t *d = malloc(n > 0 ? n : 1);
    if (d == NULL) {
        abort();
    }
    if (n > 0) {
        memcpy(d, p, n);
    }
    return d;
}

#endif
