/* A RESP2 reply buffer: growable up to a limit, never fails loudly. */
#ifndef RR_SERVICE_REPLY_H
#define RR_SERVICE_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A reply buffer. Writers append complete RESP2 values; when an append would take len past
 * `limit`, or memory cannot be grown, `overflow` is set and that write and every later one
 * are dropped (len stays at the last complete value written before the overflow). */
struct reply {
    uint8_t *buf;  /* owned; NULL until the first write */
    size_t len;    /* bytes written; <= cap */
    size_t cap;    /* bytes allocated */
    size_t limit;  /* most bytes this buffer may hold; beyond it `overflow` is set and later
                      writes are dropped */
    bool overflow; /* a write was dropped (limit reached or out of memory) */
};

void reply_init(struct reply *r, size_t limit);
void reply_free(struct reply *r);
/* len = 0, overflow = false; keeps memory. */
void reply_reset(struct reply *r);
/* +s\r\n. s must not contain CR or LF. */
void reply_simple(struct reply *r, const char *s);
/* -s\r\n (s includes the prefix word, e.g. "ERR syntax error"). CR and LF in s are written
 * as spaces, as Redis does, so an error can never break the framing. */
void reply_error(struct reply *r, const char *s);
/* printf-style reply_error. Messages longer than 4 KiB are truncated. */
void reply_errorf(struct reply *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* :v\r\n */
void reply_int(struct reply *r, int64_t v);
/* $n\r\n...\r\n */
void reply_bulk(struct reply *r, const void *p, size_t n);
void reply_bulk_cstr(struct reply *r, const char *s);
/* A bulk string holding the decimal form of v (Redis's addReplyBulkLongLong). */
void reply_bulk_int(struct reply *r, int64_t v);
/* $-1\r\n */
void reply_null(struct reply *r);
/* *-1\r\n */
void reply_null_array(struct reply *r);
/* *n\r\n */
void reply_array(struct reply *r, int64_t n);
/* Already-encoded bytes. */
void reply_raw(struct reply *r, const void *p, size_t n);

#endif
