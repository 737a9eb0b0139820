/* RESP2 request parser. The grammar and its edge cases follow Redis 7's processInputBuffer,
 * processInlineBuffer, processMultibulkBuffer and sdssplitargs (src/networking.c, sds.c):
 *
 *   request   = multibulk | inline           chosen by the first byte: '*' is multibulk
 *   multibulk = '*' count CR any (bulk){count}
 *   bulk      = '$' length CR any  byte{length} any any
 *   inline    = byte* LF                      a CR right before the LF is dropped
 *
 * "any" is the byte after a CR, or the two bytes after a bulk's payload: like Redis, the
 * parser skips them without checking that they are "\n" / "\r\n". count and length are
 * parsed as Redis's string2ll does (optional '-', no '+', no leading zeros, no spaces).
 * A count <= 0 is an empty request (skipped); a count above args_max is "invalid
 * multibulk length" (Redis 6's rule with 1024*1024). A length < 0 or above bulk_max is
 * "invalid bulk length". An inline line is split by sdssplitargs's rules (quotes, escapes,
 * and a NUL byte ending the line's arguments); a line with no arguments is skipped.
 *
 * Where Redis's outcome depends on how the bytes were split into reads (it checks a line's
 * length only while the line has no terminator yet), this parser applies the check to the
 * line itself, so every split of the same bytes gives the same result: a line longer than
 * inline_max is refused even if it arrived in one piece. Redis also stops its line search
 * at a NUL byte (strchr); this parser does not (memchr).
 *
 * Resumption: the state keeps `pos` (next line or bulk) and `scan` (how far the current
 * line has been searched for its end) as offsets from the request's first byte. Bulk
 * payloads are skipped by length. When a multibulk request completes, a second walk over
 * its header lines (never its payloads) fills argv, so no per-argument state is kept
 * between calls and the parser needs no heap. Each header byte is thus read twice in all,
 * and each payload byte never: O(bytes) per request however the bytes arrive. */
#include "io/service/resp.h"

#include <string.h>

#include "core/base/assert.h"
#include "core/base/errors.h"

#define CRLF_BYTES 2u
#define NOT_FOUND  SIZE_MAX

/* Outcome of one step of the state machine. */
enum step {
    STEP_MORE,  /* need more bytes */
    STEP_DONE,  /* the request (or the part asked for) is complete */
    STEP_EMPTY, /* an empty request ended at p->pos: skip it */
    STEP_ERROR  /* result holds the error */
};

static const char *const error_text[RESP_ERR_COUNT] = {
    [RESP_ERR_NONE] = "",
    [RESP_ERR_INLINE_TOO_BIG] = "Protocol error: too big inline request",
    [RESP_ERR_UNBALANCED_QUOTES] = "Protocol error: unbalanced quotes in request",
    [RESP_ERR_INLINE_TOO_MANY_ARGS] = "Protocol error: too many arguments in inline request",
    [RESP_ERR_MBULK_COUNT_TOO_BIG] = "Protocol error: too big mbulk count string",
    [RESP_ERR_MBULK_LENGTH] = "Protocol error: invalid multibulk length",
    [RESP_ERR_BULK_COUNT_TOO_BIG] = "Protocol error: too big bulk count string",
    [RESP_ERR_EXPECTED_DOLLAR] = "Protocol error: expected '$', got '?'",
    [RESP_ERR_BULK_LENGTH] = "Protocol error: invalid bulk length",
    [RESP_ERR_REQUEST_TOO_BIG] = "Protocol error: too big request",
    [RESP_ERR_UNAUTH_MBULK_LENGTH] = "Protocol error: unauthenticated multibulk length",
    [RESP_ERR_UNAUTH_BULK_LENGTH] = "Protocol error: unauthenticated bulk length",
};

/* ---- limits ----------------------------------------------------------------------------- */

void resp_limits_default(struct resp_limits *l)
{
    l->inline_max = RESP_INLINE_MAX_DEFAULT;
    l->args_max = RESP_ARGS_MAX_DEFAULT;
    l->bulk_max = RESP_BULK_MAX_DEFAULT;
    l->request_max = RESP_REQUEST_MAX_DEFAULT;
}

int resp_limits_check(const struct resp_limits *l)
{
    if (l->inline_max == 0 || l->inline_max > RESP_INLINE_MAX_CEILING) {
        return RR_EINVAL;
    }
    if (l->args_max == 0 || l->args_max > RESP_ARGS_MAX_CEILING) {
        return RR_EINVAL;
    }
    /* An inline request (line + CRLF) always fits a request, so only multibulk requests
     * can meet request_max. */
    if (l->request_max < (uint64_t)l->inline_max + CRLF_BYTES) {
        return RR_EINVAL;
    }
    if (l->request_max > RESP_REQUEST_MAX_CEILING || l->bulk_max > l->request_max) {
        return RR_EINVAL;
    }
    return 0;
}

uint64_t resp_input_bytes_max(const struct resp_limits *l)
{
    RR_ASSERT(resp_limits_check(l) == 0);
    return l->request_max;
}

const char *resp_error_str(enum resp_error e)
{
    if ((unsigned)e >= RESP_ERR_COUNT) {
        return "unknown RESP error";
    }
    return error_text[e];
}

_Static_assert(sizeof("Protocol error: too many arguments in inline request") <=
                   RESP_ERROR_MESSAGE_BYTES,
               "the longest message fits resp_result.message");
_Static_assert(RESP_REQUEST_MAX_CEILING <= SIZE_MAX / 2, "request offsets fit size_t");

/* ---- parser state ------------------------------------------------------------------------ */

static void parser_reset(struct resp_parser *p)
{
    p->kind = RESP_KIND_NONE;
    p->have_bulk_len = false;
    p->args_total = 0;
    p->args_done = 0;
    p->bulk_len = 0;
    p->pos = 0;
    p->scan = 0;
}

void resp_parser_init(struct resp_parser *p, const struct resp_limits *limits)
{
    RR_ASSERT(resp_limits_check(limits) == 0);
    p->limits = *limits;
    p->unauthenticated = false;
    parser_reset(p);
}

static enum step fail(struct resp_result *res, enum resp_error e, uint8_t got)
{
    RR_ASSERT(e > RESP_ERR_NONE);
    RR_ASSERT(e < RESP_ERR_COUNT);
    size_t n = strlen(error_text[e]);
    memcpy(res->message, error_text[e], n + 1);
    if (e == RESP_ERR_EXPECTED_DOLLAR) {
        /* Redis formats the raw byte with %c, then turns \r and \n into spaces so the
         * error line stays one line. */
        RR_ASSERT(res->message[n - 2] == '?');
        res->message[n - 2] = (char)(got == '\r' || got == '\n' ? ' ' : got);
    }
    res->message_len = n;
    res->error = e;
    return STEP_ERROR;
}

/* Redis's string2ll on s[0..n): "0", or an optional '-' then a digit 1-9 and more digits;
 * at most 20 bytes; within long long. */
static bool parse_ll(const uint8_t *s, size_t n, int64_t *out)
{
    if (n == 0 || n > 20) {
        return false;
    }
    if (n == 1 && s[0] == '0') {
        *out = 0;
        return true;
    }
    size_t i = s[0] == '-' ? 1 : 0;
    if (i == n || s[i] < '1' || s[i] > '9') {
        return false;
    }
    uint64_t v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    if (s[0] == '-') {
        if (v > (uint64_t)INT64_MAX + 1) {
            return false;
        }
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
        return true;
    }
    if (v > (uint64_t)INT64_MAX) {
        return false;
    }
    *out = (int64_t)v;
    return true;
}

/* Offset of the first `end` byte in in[p->scan..len), or NOT_FOUND; remembers how far it
 * looked so the next call resumes there. */
static size_t line_find(struct resp_parser *p, const uint8_t *in, size_t len, uint8_t end)
{
    RR_ASSERT(p->pos <= p->scan);
    RR_ASSERT(p->scan <= len);
    const uint8_t *hit = memchr(in + p->scan, end, len - p->scan);
    if (hit == NULL) {
        p->scan = len;
        return NOT_FOUND;
    }
    p->scan = (size_t)(hit - in);
    return p->scan;
}

/* ---- multibulk --------------------------------------------------------------------------- */

/* Finds the CR ending the '*' or '$' line at p->pos, with the byte after it buffered.
 * Refuses a line longer than inline_max (too_big), and a line that would end the request
 * past request_max. A line can break both limits; each is broken at a fixed offset of the
 * request (the line's end reaching it), and the one broken at the lower offset names the
 * error, so the result is the same whether the line arrives whole or in pieces (checking
 * one limit before the other on what has arrived so far would not be). */
static enum step header_line(struct resp_parser *p,
                             const uint8_t *in,
                             size_t len,
                             enum resp_error too_big,
                             size_t *cr,
                             struct resp_result *res)
{
    size_t r = line_find(p, in, len, '\r');
    uint64_t seen = r == NOT_FOUND ? len : r; /* the line runs at least to here */
    /* Offsets at which the line breaks each limit: longer than inline_max, or its CRLF
     * ending the request past request_max (request_max >= inline_max + 2 >= 3). */
    uint64_t line_limit = (uint64_t)p->pos + p->limits.inline_max + 1;
    uint64_t request_limit = p->limits.request_max - CRLF_BYTES + 1;
    if (seen >= line_limit || seen >= request_limit) {
        return fail(res, line_limit <= request_limit ? too_big : RESP_ERR_REQUEST_TOO_BIG, 0);
    }
    if (r == NOT_FOUND || r + 1 >= len) {
        return STEP_MORE;
    }
    *cr = r;
    return STEP_DONE;
}

static enum step
count_line(struct resp_parser *p, const uint8_t *in, size_t len, struct resp_result *res)
{
    size_t cr = 0;
    enum step s = header_line(p, in, len, RESP_ERR_MBULK_COUNT_TOO_BIG, &cr, res);
    if (s != STEP_DONE) {
        return s;
    }
    RR_ASSERT(in[p->pos] == '*');
    int64_t n = 0;
    if (!parse_ll(in + p->pos + 1, cr - p->pos - 1, &n) || n > (int64_t)p->limits.args_max) {
        return fail(res, RESP_ERR_MBULK_LENGTH, 0);
    }
    if (p->unauthenticated && n > (int64_t)RESP_UNAUTH_ARGS_MAX) {
        return fail(res, RESP_ERR_UNAUTH_MBULK_LENGTH, 0);
    }
    p->pos = cr + CRLF_BYTES;
    p->scan = p->pos;
    if (n <= 0) {
        return STEP_EMPTY;
    }
    p->args_total = (uint32_t)n;
    return STEP_DONE;
}

static enum step
bulk_line(struct resp_parser *p, const uint8_t *in, size_t len, struct resp_result *res)
{
    size_t cr = 0;
    enum step s = header_line(p, in, len, RESP_ERR_BULK_COUNT_TOO_BIG, &cr, res);
    if (s != STEP_DONE) {
        return s;
    }
    if (in[p->pos] != '$') {
        return fail(res, RESP_ERR_EXPECTED_DOLLAR, in[p->pos]);
    }
    int64_t n = 0;
    if (!parse_ll(in + p->pos + 1, cr - p->pos - 1, &n) || n < 0 ||
        (uint64_t)n > p->limits.bulk_max) {
        return fail(res, RESP_ERR_BULK_LENGTH, 0);
    }
    if (p->unauthenticated && (uint64_t)n > RESP_UNAUTH_BULK_MAX) {
        return fail(res, RESP_ERR_UNAUTH_BULK_LENGTH, 0);
    }
    p->pos = cr + CRLF_BYTES;
    p->scan = p->pos;
    RR_ASSERT(p->pos <= p->limits.request_max);
    /* Refused before its bytes are awaited, as an over-long bulk is. */
    if ((uint64_t)n + CRLF_BYTES > p->limits.request_max - p->pos) {
        return fail(res, RESP_ERR_REQUEST_TOO_BIG, 0);
    }
    p->bulk_len = (uint64_t)n;
    p->have_bulk_len = true;
    return STEP_DONE;
}

static enum step
multibulk_step(struct resp_parser *p, const uint8_t *in, size_t len, struct resp_result *res)
{
    if (p->args_total == 0) {
        enum step s = count_line(p, in, len, res);
        if (s != STEP_DONE) {
            return s;
        }
    }
    while (p->args_done < p->args_total) {
        if (!p->have_bulk_len) {
            enum step s = bulk_line(p, in, len, res);
            if (s != STEP_DONE) {
                return s;
            }
        }
        RR_ASSERT(p->pos <= len);
        if ((uint64_t)(len - p->pos) < p->bulk_len + CRLF_BYTES) {
            return STEP_MORE;
        }
        p->pos += (size_t)p->bulk_len + CRLF_BYTES;
        p->scan = p->pos;
        p->have_bulk_len = false;
        p->args_done++;
    }
    return STEP_DONE;
}

/* Second walk over a complete, already validated multibulk request in in[0..p->pos):
 * points argv at each payload. Reads header lines only. */
static uint32_t
multibulk_collect(const struct resp_parser *p, const uint8_t *in, const struct resp_args *a)
{
    const uint8_t *cr = memchr(in, '\r', p->pos);
    RR_ASSERT(cr != NULL);
    size_t pos = (size_t)(cr - in) + CRLF_BYTES;
    for (uint32_t k = 0; k < p->args_total; k++) {
        RR_ASSERT(pos < p->pos);
        RR_ASSERT(in[pos] == '$');
        cr = memchr(in + pos, '\r', p->pos - pos);
        RR_ASSERT(cr != NULL);
        int64_t n = -1;
        bool ok = parse_ll(in + pos + 1, (size_t)(cr - in) - pos - 1, &n);
        RR_ASSERT(ok);
        RR_ASSERT(n >= 0);
        pos = (size_t)(cr - in) + CRLF_BYTES;
        a->argv[k] = in + pos;
        a->argl[k] = (size_t)n;
        pos += (size_t)n + CRLF_BYTES;
    }
    RR_ASSERT(pos == p->pos);
    return p->args_total;
}

/* ---- inline ------------------------------------------------------------------------------ */

/* Byte i of the line, or 0 past its end: sdssplitargs reads a NUL-terminated copy. */
static uint8_t at(const uint8_t *s, size_t n, size_t i)
{
    return i < n ? s[i] : 0;
}

/* isspace() in the C locale. */
static bool is_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static bool is_hex(uint8_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static uint8_t hex_value(uint8_t c)
{
    if (c >= '0' && c <= '9') {
        return (uint8_t)(c - '0');
    }
    return (uint8_t)((c | 0x20) - 'a' + 10);
}

static uint8_t unescape(uint8_t c)
{
    switch (c) {
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    case 'b':
        return '\b';
    case 'a':
        return '\a';
    default:
        return c;
    }
}

enum quote { QUOTE_NONE, QUOTE_DOUBLE, QUOTE_SINGLE };

/* A closing quote must be followed by a space or the end of the line. */
static bool quote_closes_ok(const uint8_t *s, size_t n, size_t i)
{
    uint8_t next = at(s, n, i + 1);
    return next == 0 || is_space(next);
}

/* One byte of a double-quoted run at s[*i]: sdssplitargs's escapes. Returns -1 on an
 * unbalanced quote, 1 at the closing quote, 0 otherwise. */
static int double_quoted(const uint8_t *s, size_t n, size_t *i, uint8_t *out, size_t *o)
{
    uint8_t c = at(s, n, *i);
    if (c == '\\' && at(s, n, *i + 1) == 'x' && is_hex(at(s, n, *i + 2)) &&
        is_hex(at(s, n, *i + 3))) {
        out[(*o)++] = (uint8_t)(hex_value(at(s, n, *i + 2)) * 16 + hex_value(at(s, n, *i + 3)));
        *i += 3;
    } else if (c == '\\' && at(s, n, *i + 1) != 0) {
        *i += 1;
        out[(*o)++] = unescape(at(s, n, *i));
    } else if (c == '"') {
        return quote_closes_ok(s, n, *i) ? 1 : -1;
    } else if (c == 0) {
        return -1;
    } else {
        out[(*o)++] = c;
    }
    return 0;
}

/* One byte of a single-quoted run: only \' is an escape. Same returns as double_quoted. */
static int single_quoted(const uint8_t *s, size_t n, size_t *i, uint8_t *out, size_t *o)
{
    uint8_t c = at(s, n, *i);
    if (c == '\\' && at(s, n, *i + 1) == '\'') {
        *i += 1;
        out[(*o)++] = '\'';
    } else if (c == '\'') {
        return quote_closes_ok(s, n, *i) ? 1 : -1;
    } else if (c == 0) {
        return -1;
    } else {
        out[(*o)++] = c;
    }
    return 0;
}

/* One argument starting at s[*i] (neither a space nor the end), unquoted into out[*o..).
 * False on unbalanced quotes. Writes at most one byte per byte read. */
static bool split_arg(const uint8_t *s, size_t n, size_t *i, uint8_t *out, size_t *o)
{
    enum quote q = QUOTE_NONE;
    bool done = false;
    while (!done) { /* bounded: every pass reads a byte or ends the argument */
        uint8_t c = at(s, n, *i);
        int r = 0;
        if (q == QUOTE_DOUBLE) {
            r = double_quoted(s, n, i, out, o);
        } else if (q == QUOTE_SINGLE) {
            r = single_quoted(s, n, i, out, o);
        } else if (c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == 0) {
            r = 1;
        } else if (c == '"' || c == '\'') {
            q = c == '"' ? QUOTE_DOUBLE : QUOTE_SINGLE;
        } else {
            out[(*o)++] = c;
        }
        if (r < 0) {
            return false;
        }
        done = r > 0;
        if (at(s, n, *i) != 0) {
            *i += 1;
        }
        RR_ASSERT(*o <= *i);
    }
    return true;
}

/* sdssplitargs over the line s[0..n): arguments into a->argv, bytes into a->scratch. */
static enum step inline_split(const uint8_t *s,
                              size_t n,
                              const struct resp_args *a,
                              uint32_t args_max,
                              uint32_t *argc,
                              struct resp_result *res)
{
    size_t i = 0;
    size_t o = 0;
    uint32_t count = 0;
    while (i < n) { /* bounded: every argument reads at least one byte */
        while (at(s, n, i) != 0 && is_space(at(s, n, i))) {
            i++;
        }
        if (at(s, n, i) == 0) {
            break;
        }
        if (count == args_max) {
            return fail(res, RESP_ERR_INLINE_TOO_MANY_ARGS, 0);
        }
        size_t start = o;
        if (!split_arg(s, n, &i, a->scratch, &o)) {
            return fail(res, RESP_ERR_UNBALANCED_QUOTES, 0);
        }
        RR_ASSERT(o <= a->scratch_bytes);
        a->argv[count] = a->scratch + start;
        a->argl[count] = o - start;
        count++;
    }
    *argc = count;
    return STEP_DONE;
}

static enum step inline_step(struct resp_parser *p,
                             const uint8_t *in,
                             size_t len,
                             const struct resp_args *a,
                             uint32_t *argc,
                             struct resp_result *res)
{
    size_t nl = line_find(p, in, len, '\n');
    size_t line_bytes = (nl == NOT_FOUND ? len : nl) - p->pos;
    if (line_bytes > p->limits.inline_max) {
        return fail(res, RESP_ERR_INLINE_TOO_BIG, 0);
    }
    if (nl == NOT_FOUND) {
        return STEP_MORE;
    }
    size_t end = nl;
    if (end > p->pos && in[end - 1] == '\r') {
        end--;
    }
    enum step s = inline_split(in + p->pos, end - p->pos, a, p->limits.args_max, argc, res);
    p->pos = nl + 1;
    if (s == STEP_DONE && *argc == 0) {
        return STEP_EMPTY;
    }
    return s;
}

/* ---- entry point ------------------------------------------------------------------------- */

enum resp_status resp_parse(struct resp_parser *p,
                            const uint8_t *in,
                            size_t len,
                            const struct resp_args *args,
                            struct resp_result *result)
{
    RR_ASSERT(args->capacity >= p->limits.args_max);
    RR_ASSERT(args->scratch_bytes >= p->limits.inline_max);
    result->consumed_bytes = 0;
    result->argc = 0;
    result->error = RESP_ERR_NONE;
    result->message[0] = '\0';
    result->message_len = 0;
    if (len == 0) {
        RR_ASSERT(p->kind == RESP_KIND_NONE); /* bytes already seen cannot vanish */
        return RESP_NEED_MORE;
    }
    RR_ASSERT(in != NULL);
    size_t base = 0; /* start of the request in progress */
    for (;;) {       /* bounded: each pass ends a request of at least one byte, or returns */
        const uint8_t *req = in + base;
        size_t req_len = len - base;
        if (p->kind == RESP_KIND_NONE) {
            if (req_len == 0) {
                result->consumed_bytes = base;
                return RESP_NEED_MORE;
            }
            p->kind = req[0] == '*' ? RESP_KIND_MULTIBULK : RESP_KIND_INLINE;
        }
        uint32_t argc = 0;
        enum step s = p->kind == RESP_KIND_INLINE
                          ? inline_step(p, req, req_len, args, &argc, result)
                          : multibulk_step(p, req, req_len, result);
        result->consumed_bytes = base;
        switch (s) {
        case STEP_MORE:
            RR_ASSERT(req_len <= p->limits.request_max);
            return RESP_NEED_MORE;
        case STEP_ERROR:
            return RESP_ERROR;
        case STEP_EMPTY:
            RR_ASSERT(p->pos > 0);
            base += p->pos;
            parser_reset(p);
            continue;
        case STEP_DONE:
            break;
        }
        if (p->kind == RESP_KIND_MULTIBULK) {
            argc = multibulk_collect(p, req, args);
        }
        RR_ASSERT(argc >= 1);
        RR_ASSERT(p->pos <= p->limits.request_max);
        result->argc = argc;
        result->consumed_bytes = base + p->pos;
        parser_reset(p);
        return RESP_REQUEST;
    }
}
