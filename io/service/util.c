/* Redis's number parsing rules, byte for byte (util.c string2ll / string2ull). */
#include "io/service/util.h"

#include <string.h>

#define UTIL_I64_CHARS_MAX 20u /* "-9223372036854775808" */

bool util_parse_i64(const uint8_t *p, size_t len, int64_t *out)
{
    if (len == 0 || len > UTIL_I64_CHARS_MAX) {
        return false;
    }
    if (len == 1 && p[0] == '0') {
        *out = 0;
        return true;
    }
    size_t i = 0;
    bool negative = false;
    if (p[0] == '-') {
        negative = true;
        i = 1;
        if (len == 1) {
            return false;
        }
    }
    if (p[i] < '1' || p[i] > '9') {
        return false;
    }
    uint64_t v = 0;
    for (; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return false;
        }
        uint64_t d = (uint64_t)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    if (negative) {
        if (v > (uint64_t)INT64_MAX + 1) {
            return false;
        }
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    } else {
        if (v > (uint64_t)INT64_MAX) {
            return false;
        }
        *out = (int64_t)v;
    }
    return true;
}

static bool is_c_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

bool util_parse_u64(const uint8_t *p, size_t len, uint64_t *out)
{
    const uint8_t *nul = memchr(p, 0, len);
    if (nul != NULL) {
        len = (size_t)(nul - p);
    }
    int64_t ll;
    if (util_parse_i64(p, len, &ll)) {
        if (ll < 0) {
            return false;
        }
        *out = (uint64_t)ll;
        return true;
    }
    /* strtoull(s, &end, 10) with errno checks: the whole text must be consumed. */
    size_t i = 0;
    while (i < len && is_c_space(p[i])) {
        i++;
    }
    bool negative = false;
    if (i < len && (p[i] == '+' || p[i] == '-')) {
        negative = p[i] == '-';
        i++;
    }
    if (i == len) {
        return false;
    }
    uint64_t v = 0;
    for (; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return false;
        }
        uint64_t d = (uint64_t)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return false; /* ERANGE */
        }
        v = v * 10 + d;
    }
    *out = negative ? (uint64_t)0 - v : v;
    return true;
}

bool util_arg_is(const uint8_t *p, size_t len, const char *word)
{
    size_t n = strlen(word);
    if (len != n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c >= 'A' && c <= 'Z') {
            c = (uint8_t)(c + ('a' - 'A'));
        }
        if (c != (uint8_t)word[i]) {
            return false;
        }
    }
    return true;
}

size_t util_fmt_u64(char *buf, uint64_t v)
{
    char tmp[UTIL_I64_CHARS_MAX + 1];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + (v % 10));
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++) {
        buf[i] = tmp[n - 1 - i];
    }
    return n;
}

size_t util_fmt_i64(char *buf, int64_t v)
{
    if (v >= 0) {
        return util_fmt_u64(buf, (uint64_t)v);
    }
    buf[0] = '-';
    return 1 + util_fmt_u64(buf + 1, (uint64_t)0 - (uint64_t)v);
}

void util_put_u8(struct reply *out, uint8_t v)
{
    reply_raw(out, &v, 1);
}

void util_put_u32(struct reply *out, uint32_t v)
{
    uint8_t b[4];
    for (unsigned i = 0; i < 4; i++) {
        b[i] = (uint8_t)(v >> (8 * i));
    }
    reply_raw(out, b, sizeof(b));
}

void util_put_u64(struct reply *out, uint64_t v)
{
    uint8_t b[8];
    for (unsigned i = 0; i < 8; i++) {
        b[i] = (uint8_t)(v >> (8 * i));
    }
    reply_raw(out, b, sizeof(b));
}

void util_put_blob(struct reply *out, const void *p, size_t n)
{
    if (n > UINT32_MAX) {
        out->overflow = true;
        return;
    }
    util_put_u32(out, (uint32_t)n);
    reply_raw(out, p, n);
}

const uint8_t *util_get_bytes(struct util_cursor *c, size_t n)
{
    if (c->bad || (size_t)(c->end - c->p) < n) {
        c->bad = true;
        return NULL;
    }
    const uint8_t *p = c->p;
    c->p += n;
    return p;
}

uint8_t util_get_u8(struct util_cursor *c)
{
    const uint8_t *p = util_get_bytes(c, 1);
    return p == NULL ? 0 : p[0];
}

uint32_t util_get_u32(struct util_cursor *c)
{
    const uint8_t *p = util_get_bytes(c, 4);
    uint32_t v = 0;
    for (unsigned i = 0; p != NULL && i < 4; i++) {
        v |= (uint32_t)p[i] << (8 * i);
    }
    return v;
}

uint64_t util_get_u64(struct util_cursor *c)
{
    const uint8_t *p = util_get_bytes(c, 8);
    uint64_t v = 0;
    for (unsigned i = 0; p != NULL && i < 8; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

const uint8_t *util_get_blob(struct util_cursor *c, uint32_t *len)
{
    *len = util_get_u32(c);
    const uint8_t *p = util_get_bytes(c, *len);
    if (p == NULL) {
        *len = 0;
    }
    return p;
}
