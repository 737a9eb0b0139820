/* RESP2 reply writer. Every writer appends one whole value or nothing: a value that would
 * take the buffer past its limit (or that cannot get memory) sets `overflow`, and from then
 * on every write is dropped, so a reader never sees a half-written value. */
#include "io/service/reply.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/assert.h"

#define REPLY_MIN_CAP   256u
#define REPLY_ERROR_MAX 4096u /* reply_errorf's message buffer */
#define REPLY_NUM_MAX   24u   /* digits of an int64 with its sign */

void reply_init(struct reply *r, size_t limit)
{
    r->buf = NULL;
    r->len = 0;
    r->cap = 0;
    r->limit = limit;
    r->overflow = false;
}

void reply_free(struct reply *r)
{
    free(r->buf);
    reply_init(r, r->limit);
}

void reply_reset(struct reply *r)
{
    r->len = 0;
    r->overflow = false;
}

/* Makes room for n more bytes; false (and overflow set) if the limit or memory says no. */
static bool reply_reserve(struct reply *r, size_t n)
{
    RR_ASSERT(r->len <= r->cap);
    if (r->overflow) {
        return false;
    }
    if (n > r->limit || r->len > r->limit - n) {
        r->overflow = true;
        return false;
    }
    size_t need = r->len + n;
    if (need <= r->cap) {
        return true;
    }
    size_t cap = r->cap < REPLY_MIN_CAP ? REPLY_MIN_CAP : r->cap;
    while (cap < need) {
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    }
    if (cap > r->limit) {
        cap = r->limit;
    }
    uint8_t *buf = realloc(r->buf, cap);
    if (buf == NULL) {
        r->overflow = true;
        return false;
    }
    r->buf = buf;
    r->cap = cap;
    return true;
}

static void put(struct reply *r, const void *p, size_t n)
{
    if (n > 0) {
        memcpy(r->buf + r->len, p, n);
        r->len += n;
    }
}

/* Decimal digits of v into buf (no terminator); returns their count. */
static size_t fmt_i64(char *buf, int64_t v)
{
    char tmp[REPLY_NUM_MAX];
    size_t n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + (u % 10));
        u /= 10;
    } while (u != 0);
    size_t out = 0;
    if (v < 0) {
        buf[out++] = '-';
    }
    while (n > 0) {
        buf[out++] = tmp[--n];
    }
    return out;
}

/* "<prefix><v>\r\n" */
static void reply_prefixed_int(struct reply *r, char prefix, int64_t v)
{
    char buf[REPLY_NUM_MAX + 3];
    buf[0] = prefix;
    size_t n = 1 + fmt_i64(buf + 1, v);
    buf[n++] = '\r';
    buf[n++] = '\n';
    reply_raw(r, buf, n);
}

void reply_raw(struct reply *r, const void *p, size_t n)
{
    if (reply_reserve(r, n)) {
        put(r, p, n);
    }
}

void reply_simple(struct reply *r, const char *s)
{
    size_t n = strlen(s);
    if (n > SIZE_MAX - 3 || !reply_reserve(r, n + 3)) {
        r->overflow = true;
        return;
    }
    put(r, "+", 1);
    put(r, s, n);
    put(r, "\r\n", 2);
}

void reply_error(struct reply *r, const char *s)
{
    size_t n = strlen(s);
    if (n > SIZE_MAX - 3 || !reply_reserve(r, n + 3)) {
        r->overflow = true;
        return;
    }
    put(r, "-", 1);
    for (size_t i = 0; i < n; i++) {
        /* Redis's addReplyErrorLength: an error is one line whatever its text holds. */
        r->buf[r->len++] = (uint8_t)(s[i] == '\r' || s[i] == '\n' ? ' ' : s[i]);
    }
    put(r, "\r\n", 2);
}

void reply_errorf(struct reply *r, const char *fmt, ...)
{
    char msg[REPLY_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0) {
        msg[0] = '\0';
    }
    reply_error(r, msg);
}

void reply_int(struct reply *r, int64_t v)
{
    reply_prefixed_int(r, ':', v);
}

void reply_bulk(struct reply *r, const void *p, size_t n)
{
    char head[REPLY_NUM_MAX + 3];
    head[0] = '$';
    size_t hn = 1 + fmt_i64(head + 1, (int64_t)n);
    head[hn++] = '\r';
    head[hn++] = '\n';
    if (n > SIZE_MAX - hn - 2 || !reply_reserve(r, hn + n + 2)) {
        r->overflow = true;
        return;
    }
    put(r, head, hn);
    put(r, p, n);
    put(r, "\r\n", 2);
}

void reply_bulk_cstr(struct reply *r, const char *s)
{
    reply_bulk(r, s, strlen(s));
}

void reply_bulk_int(struct reply *r, int64_t v)
{
    char buf[REPLY_NUM_MAX];
    size_t n = fmt_i64(buf, v);
    reply_bulk(r, buf, n);
}

void reply_null(struct reply *r)
{
    reply_raw(r, "$-1\r\n", 5);
}

void reply_null_array(struct reply *r)
{
    reply_raw(r, "*-1\r\n", 5);
}

void reply_array(struct reply *r, int64_t n)
{
    reply_prefixed_int(r, '*', n);
}
