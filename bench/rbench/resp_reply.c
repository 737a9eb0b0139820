/* Streaming RESP2 reply parser (resp_reply.h). The bytes of a line are looked at once (memchr
 * for its end, a bounded copy of its start); bulk payloads are skipped by length. */
#include "bench/rbench/resp_reply.h"

#include <string.h>

#include "core/base/assert.h"

void resp_reply_init(struct resp_reply_parser *p)
{
    memset(p, 0, sizeof(*p));
}

/* A RESP integer: optional '-', 1 to 19 digits, no '+', no spaces. */
static bool parse_int(const char *s, size_t len, int64_t *out)
{
    size_t i = 0;
    bool neg = len > 0 && s[0] == '-';
    i += neg ? 1u : 0u;
    if (i == len || len - i > 18) {
        return false;
    }
    int64_t v = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = neg ? -v : v;
    return true;
}

/* The element just finished closes every array it completes; DONE when that reaches the
 * top level. */
static int element_done(struct resp_reply_parser *p)
{
    for (;;) {
        if (p->depth == 0) {
            return RESP_REPLY_DONE;
        }
        p->index[p->depth - 1]++;
        if (--p->left[p->depth - 1] > 0) {
            return RESP_REPLY_MORE;
        }
        p->depth--;
    }
}

static int scalar_done(struct resp_reply_parser *p,
                       const struct resp_scalar *s,
                       resp_reply_visit_fn visit,
                       void *arg)
{
    if (visit != NULL) {
        visit(arg, p, s);
    }
    return element_done(p);
}

static int
header_done(struct resp_reply_parser *p, char type, int64_t n, resp_reply_visit_fn visit, void *arg)
{
    if (n == -1) {
        p->top_nil = p->depth == 0 ? true : p->top_nil;
        struct resp_scalar s = {.type = type, .nil = true};
        return type == '$' ? scalar_done(p, &s, visit, arg) : element_done(p);
    }
    if (type == '$') {
        if (n < 0 || n > RESP_REPLY_BULK_MAX) {
            return RESP_REPLY_BAD;
        }
        p->in_bulk = true;
        p->bulk_len = (uint64_t)n;
        p->bulk_left = (uint64_t)n + 2u;
        p->keep_len = 0;
        return RESP_REPLY_MORE;
    }
    if (n < 0 || n > RESP_REPLY_COUNT_MAX) {
        return RESP_REPLY_BAD;
    }
    if (n == 0) {
        return element_done(p);
    }
    if (p->depth == RESP_REPLY_DEPTH_MAX) {
        return RESP_REPLY_BAD;
    }
    p->left[p->depth] = n;
    p->index[p->depth] = 0;
    p->depth++;
    return RESP_REPLY_MORE;
}

/* A whole line (its type byte in p->type, its start in p->keep) has been read. */
static int
line_done(struct resp_reply_parser *p, size_t text_len, resp_reply_visit_fn visit, void *arg)
{
    char type = (char)p->type;
    p->type = 0;
    if (p->keep_len > text_len) {
        p->keep_len = (uint32_t)text_len; /* the dropped '\r' */
    }
    if (p->depth == 0) {
        p->top = (uint8_t)type;
        p->top_nil = false;
        p->top_text_len = 0;
    }
    if (type == '+' || type == '-') {
        if (p->depth == 0) {
            memcpy(p->top_text, p->keep, p->keep_len);
            p->top_text_len = p->keep_len;
        }
        struct resp_scalar s = {
            .type = type, .data = p->keep, .len = p->keep_len, .truncated = text_len > p->keep_len};
        return scalar_done(p, &s, visit, arg);
    }
    int64_t n = 0;
    if (!parse_int(p->keep, p->keep_len, &n)) {
        return RESP_REPLY_BAD;
    }
    if (type == ':') {
        struct resp_scalar s = {.type = ':', .integer = n};
        return scalar_done(p, &s, visit, arg);
    }
    return header_done(p, type, n, visit, arg);
}

/* Bulk payload bytes and the CRLF after them; returns the bytes consumed, *rc the state. */
static size_t bulk_feed(struct resp_reply_parser *p,
                        const uint8_t *in,
                        size_t len,
                        int *rc,
                        resp_reply_visit_fn visit,
                        void *arg)
{
    *rc = RESP_REPLY_MORE;
    if (p->bulk_left > 2) {
        uint64_t payload_left = p->bulk_left - 2u;
        size_t take = payload_left < len ? (size_t)payload_left : len;
        size_t room = RESP_REPLY_KEEP - p->keep_len;
        size_t copy = take < room ? take : room;
        memcpy(p->keep + p->keep_len, in, copy);
        p->keep_len += (uint32_t)copy;
        p->bulk_left -= take;
        return take;
    }
    if (in[0] != (p->bulk_left == 2 ? '\r' : '\n')) {
        *rc = RESP_REPLY_BAD;
        return 0;
    }
    if (--p->bulk_left == 0) {
        p->in_bulk = false;
        struct resp_scalar s = {.type = '$',
                                .data = p->keep,
                                .len = p->keep_len,
                                .truncated = p->bulk_len > p->keep_len};
        *rc = scalar_done(p, &s, visit, arg);
    }
    return 1;
}

static bool type_ok(uint8_t c)
{
    return c == '+' || c == '-' || c == ':' || c == '$' || c == '*';
}

/* Line bytes up to and including its '\n' if present; returns the bytes consumed. */
static size_t line_feed(struct resp_reply_parser *p,
                        const uint8_t *in,
                        size_t len,
                        int *rc,
                        resp_reply_visit_fn visit,
                        void *arg)
{
    *rc = RESP_REPLY_MORE;
    if (p->type == 0) {
        if (!type_ok(in[0])) {
            *rc = RESP_REPLY_BAD;
            return 0;
        }
        p->type = in[0];
        p->line_len = 0;
        p->keep_len = 0;
        return 1;
    }
    const uint8_t *nl = memchr(in, '\n', len);
    size_t chunk = nl != NULL ? (size_t)(nl - in) : len;
    size_t room = RESP_REPLY_KEEP - p->keep_len;
    size_t copy = chunk < room ? chunk : room;
    memcpy(p->keep + p->keep_len, in, copy);
    p->keep_len += (uint32_t)copy;
    uint64_t line_len = (uint64_t)p->line_len + chunk;
    bool numeric = p->type == ':' || p->type == '$' || p->type == '*';
    if (numeric && line_len > RESP_REPLY_NUM_MAX) {
        *rc = RESP_REPLY_BAD;
        return 0;
    }
    /* A long + or - line only needs its length to drop a final '\r'; cap the count. */
    p->line_len = line_len > UINT32_MAX - 1u ? UINT32_MAX - 1u : (uint32_t)line_len;
    if (chunk > 0) {
        p->in_cr = in[chunk - 1] == '\r';
    }
    if (nl == NULL) {
        return chunk;
    }
    size_t text_len = p->line_len - (p->in_cr ? 1u : 0u);
    p->in_cr = false;
    *rc = line_done(p, text_len, visit, arg);
    return chunk + 1;
}

int resp_reply_feed(struct resp_reply_parser *p,
                    const uint8_t *in,
                    size_t len,
                    size_t *used,
                    struct resp_reply *out,
                    resp_reply_visit_fn visit,
                    void *arg)
{
    size_t pos = 0;
    while (pos < len) {
        int rc = RESP_REPLY_MORE;
        size_t n = p->in_bulk ? bulk_feed(p, in + pos, len - pos, &rc, visit, arg)
                              : line_feed(p, in + pos, len - pos, &rc, visit, arg);
        pos += n;
        if (rc == RESP_REPLY_BAD) {
            *used = pos;
            return RESP_REPLY_BAD;
        }
        if (rc == RESP_REPLY_DONE) {
            RR_ASSERT(p->depth == 0);
            out->type = (char)p->top;
            out->nil = p->top_nil;
            out->text = p->top_text;
            out->text_len = p->top_text_len;
            *used = pos;
            return RESP_REPLY_DONE;
        }
    }
    *used = len;
    return RESP_REPLY_MORE;
}
