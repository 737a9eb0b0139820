/* Small helpers shared by the service modules: Redis's number parsing and argument
 * comparison. All pure. */
#ifndef RR_SERVICE_UTIL_H
#define RR_SERVICE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/service/reply.h"

/* Redis's string2ll: optional '-', no leading zeros or spaces, no '+', at most 20 chars,
 * must fit an int64. */
bool util_parse_i64(const uint8_t *p, size_t len, int64_t *out);

/* Redis's string2ull: string2ll when that succeeds (negative refused), else C's strtoull
 * rules (leading spaces, optional sign, negation modulo 2^64, overflow refused). The text
 * ends at the first NUL byte, as Redis's C string does. */
bool util_parse_u64(const uint8_t *p, size_t len, uint64_t *out);

/* Case-insensitive (ASCII) equality of an argument with a lower-case word. */
bool util_arg_is(const uint8_t *p, size_t len, const char *word);

/* Decimal form of v into buf (at least 21 bytes, no terminator); returns its length. */
size_t util_fmt_i64(char *buf, int64_t v);
size_t util_fmt_u64(char *buf, uint64_t v);

/* Little-endian writers onto a reply buffer used as a byte stream (serialization). */
void util_put_u8(struct reply *out, uint8_t v);
void util_put_u32(struct reply *out, uint32_t v);
void util_put_u64(struct reply *out, uint64_t v);
/* u32 length then the bytes. */
void util_put_blob(struct reply *out, const void *p, size_t n);

/* A reader that never reads past its end: a short read yields zeros / NULL and sets bad. */
struct util_cursor {
    const uint8_t *p;   /* next byte */
    const uint8_t *end; /* one past the last byte */
    bool bad;           /* a read ran past the end (or the caller found a bad value) */
};

uint8_t util_get_u8(struct util_cursor *c);
uint32_t util_get_u32(struct util_cursor *c);
uint64_t util_get_u64(struct util_cursor *c);
/* n bytes, or NULL (and bad set) if fewer remain. */
const uint8_t *util_get_bytes(struct util_cursor *c, size_t n);
/* A u32 length then that many bytes. */
const uint8_t *util_get_blob(struct util_cursor *c, uint32_t *len);

#endif
