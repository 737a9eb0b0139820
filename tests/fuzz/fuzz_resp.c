/* libFuzzer target: the RESP request parser (io/service/resp.c).
 *
 * Input: 4 control bytes, then the bytes a client sends.
 *   byte 0  bit 0: small limits (else the defaults); bit 1: feed one byte at a time (else in
 *           chunks of 1..(1 + 4 * (byte 0 >> 2)) bytes drawn from bytes 1..3); bits 2..4 also
 *           pick bulk_max as a fraction of request_max
 *   byte 1  small limits: inline_max = 1 + byte 1 % 96
 *   byte 2  small limits: args_max = 1 + byte 2 % 24
 *   byte 3  small limits: request_max = inline_max + 2 + 8 * (byte 3 % 64)
 *
 * The stream is parsed twice the way a connection does (resp_parse on the unconsumed bytes,
 * consumed bytes dropped): all at once, then in chunks. The bytes outside the window the
 * parser was given are poisoned, so AddressSanitizer catches any read before the first
 * unconsumed byte or past the last one received. Properties checked:
 *   - both parses give the same requests and the same final outcome (error text, or the
 *     count of unconsumed bytes): the result does not depend on how the bytes arrive;
 *   - every request has 1..args_max arguments; a multibulk argument lies inside the consumed
 *     bytes and is at most bulk_max long, their sum at most request_max; inline arguments
 *     lie in the scratch area and sum to at most inline_max;
 *   - while the parser waits for more, the unconsumed bytes never exceed
 *     resp_input_bytes_max (the connection's buffer bound);
 *   - error results carry the documented text (resp_error_str, with the quoted byte);
 *   - every request re-encoded as multibulk, and again as a quoted inline line (Redis's
 *     sdscatrepr escaping), parses back to the same arguments. */
#include <sanitizer/asan_interface.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/service/resp.h"
#include "tests/fuzz/fuzz.h"

/* Argument storage big enough for the default limits; one set per use so a request's
 * arguments stay readable while its re-encodings are parsed. */
struct arg_store {
    const uint8_t *argv[RESP_ARGS_MAX_DEFAULT];
    size_t argl[RESP_ARGS_MAX_DEFAULT];
    uint8_t scratch[RESP_INLINE_MAX_DEFAULT];
};

static struct arg_store main_store;
static struct arg_store check_store;

static struct resp_args args_of(struct arg_store *s)
{
    return (struct resp_args){.argv = s->argv,
                              .argl = s->argl,
                              .capacity = RESP_ARGS_MAX_DEFAULT,
                              .scratch = s->scratch,
                              .scratch_bytes = sizeof(s->scratch)};
}

/* ---- a growable byte string: transcripts and encodings ---------------------------------- */

struct bytes {
    uint8_t *b;
    size_t len;
    size_t cap;
};

static void put(struct bytes *s, const void *p, size_t n)
{
    if (s->len + n > s->cap) {
        size_t cap = s->cap < 256 ? 256 : s->cap;
        while (cap < s->len + n) {
            cap *= 2;
        }
        s->b = realloc(s->b, cap);
        FUZZ_CHECK(s->b != NULL, "out of memory");
        s->cap = cap;
    }
    if (n > 0) {
        memcpy(s->b + s->len, p, n);
    }
    s->len += n;
}

static void put_u64(struct bytes *s, uint64_t v)
{
    put(s, &v, sizeof(v));
}

static void put_str(struct bytes *s, const char *str)
{
    put(s, str, strlen(str));
}

/* ---- checks on one request ---------------------------------------------------------------- */

static bool inside(const uint8_t *p, size_t n, const uint8_t *lo, size_t lo_len)
{
    return p >= lo && p <= lo + lo_len && n <= (size_t)(lo + lo_len - p);
}

static void check_request(const struct resp_limits *lim,
                          const struct resp_args *a,
                          uint32_t argc,
                          const uint8_t *in,
                          size_t consumed)
{
    FUZZ_CHECK(argc >= 1 && argc <= lim->args_max, "argc %u, args_max %u", argc, lim->args_max);
    bool is_inline = inside(a->argv[0], a->argl[0], a->scratch, a->scratch_bytes);
    uint64_t total = 0;
    for (uint32_t i = 0; i < argc; i++) {
        total += a->argl[i];
        if (is_inline) {
            FUZZ_CHECK(inside(a->argv[i], a->argl[i], a->scratch, lim->inline_max),
                       "inline argument %u outside the scratch area", i);
        } else {
            FUZZ_CHECK(inside(a->argv[i], a->argl[i], in, consumed),
                       "multibulk argument %u outside the consumed input", i);
            FUZZ_CHECK(a->argl[i] <= lim->bulk_max, "argument %u of %zu bytes, bulk_max %llu", i,
                       a->argl[i], (unsigned long long)lim->bulk_max);
        }
    }
    FUZZ_CHECK(total <= (is_inline ? lim->inline_max : lim->request_max),
               "arguments total %llu bytes", (unsigned long long)total);
}

static void encode_multibulk(struct bytes *out, const struct resp_args *a, uint32_t argc)
{
    char line[32];
    snprintf(line, sizeof(line), "*%u\r\n", argc);
    put_str(out, line);
    for (uint32_t i = 0; i < argc; i++) {
        snprintf(line, sizeof(line), "$%zu\r\n", a->argl[i]);
        put_str(out, line);
        put(out, a->argv[i], a->argl[i]);
        put_str(out, "\r\n");
    }
}

/* Redis's sdscatrepr: every argument double-quoted, with the escapes the inline parser
 * undoes. */
static void encode_inline(struct bytes *out, const struct resp_args *a, uint32_t argc)
{
    for (uint32_t i = 0; i < argc; i++) {
        put_str(out, i == 0 ? "\"" : " \"");
        for (size_t k = 0; k < a->argl[i]; k++) {
            uint8_t c = a->argv[i][k];
            char esc[8];
            switch (c) {
            case '\\':
                put_str(out, "\\\\");
                break;
            case '"':
                put_str(out, "\\\"");
                break;
            case '\n':
                put_str(out, "\\n");
                break;
            case '\r':
                put_str(out, "\\r");
                break;
            case '\t':
                put_str(out, "\\t");
                break;
            case '\a':
                put_str(out, "\\a");
                break;
            case '\b':
                put_str(out, "\\b");
                break;
            default:
                if (c >= 0x20 && c < 0x7f) {
                    put(out, &c, 1);
                } else {
                    snprintf(esc, sizeof(esc), "\\x%02x", c);
                    put_str(out, esc);
                }
                break;
            }
        }
        put_str(out, "\"");
    }
    put_str(out, "\r\n");
}

/* Parses enc as one request with the default limits; it must give a's arguments back. */
static void
check_reparse(const struct bytes *enc, const struct resp_args *a, uint32_t argc, bool inline_line)
{
    const char *how = inline_line ? "inline" : "multibulk";
    struct resp_limits lim;
    resp_limits_default(&lim);
    if (inline_line && enc->len > lim.inline_max) {
        return; /* an inline line this long is refused by design */
    }
    struct resp_parser p;
    resp_parser_init(&p, &lim);
    struct resp_args c = args_of(&check_store);
    struct resp_result res;
    enum resp_status st = resp_parse(&p, enc->b, enc->len, &c, &res);
    FUZZ_CHECK(st == RESP_REQUEST, "%s re-encoding: status %d (%s)", how, (int)st, res.message);
    FUZZ_CHECK(res.consumed_bytes == enc->len, "%s re-encoding: consumed %zu of %zu", how,
               res.consumed_bytes, enc->len);
    FUZZ_CHECK(res.argc == argc, "%s re-encoding: %u arguments, was %u", how, res.argc, argc);
    for (uint32_t i = 0; i < argc; i++) {
        FUZZ_CHECK(c.argl[i] == a->argl[i] &&
                       (a->argl[i] == 0 || memcmp(c.argv[i], a->argv[i], a->argl[i]) == 0),
                   "%s re-encoding: argument %u differs", how, i);
    }
}

/* ---- one parse of the whole stream -------------------------------------------------------- */

struct plan {
    bool byte_at_a_time;
    uint32_t chunk_max; /* 0: everything at once */
    uint32_t seed;
};

static size_t next_chunk(struct plan *pl, size_t left)
{
    size_t n = left;
    if (pl->byte_at_a_time) {
        n = 1;
    } else if (pl->chunk_max > 0) {
        n = 1 + fuzz_rand(&pl->seed) % pl->chunk_max;
    }
    return n < left ? n : left;
}

/* What the parser may read of buf: the bytes received and not yet consumed. The rest is
 * poisoned; the window only moves right, so each byte changes state at most twice. */
struct window {
    const uint8_t *buf;
    size_t lo; /* first unconsumed byte */
    size_t hi; /* bytes received */
};

static void window_move(struct window *w, size_t lo, size_t hi)
{
    if (hi > w->hi) {
        ASAN_UNPOISON_MEMORY_REGION(w->buf + w->hi, hi - w->hi);
    }
    if (lo > w->lo) {
        ASAN_POISON_MEMORY_REGION(w->buf + w->lo, lo - w->lo);
    }
    w->lo = lo;
    w->hi = hi;
}

/* Parses data as a connection receiving it per pl; writes each request and the outcome to
 * t. With check set, also re-encodes every request and parses it back. */
static void run(const uint8_t *data,
                size_t n,
                const struct resp_limits *lim,
                struct plan pl,
                bool check,
                struct bytes *t)
{
    uint8_t *buf = fuzz_dup(data, n);
    ASAN_POISON_MEMORY_REGION(buf, n);
    struct window win = {buf, 0, 0};
    struct resp_parser p;
    resp_parser_init(&p, lim);
    struct resp_args a = args_of(&main_store);
    size_t off = 0; /* first unconsumed byte */
    size_t fed = 0; /* bytes received so far */
    struct resp_result res;
    enum resp_status st = RESP_NEED_MORE;
    while (st != RESP_ERROR && fed < n) { /* bounded: every pass receives at least one byte */
        fed += next_chunk(&pl, n - fed);
        for (;;) { /* bounded: every request consumes at least one byte */
            window_move(&win, off, fed);
            st = resp_parse(&p, buf + off, fed - off, &a, &res);
            FUZZ_CHECK(res.consumed_bytes <= fed - off, "consumed %zu of %zu", res.consumed_bytes,
                       fed - off);
            if (st != RESP_REQUEST) {
                break;
            }
            check_request(lim, &a, res.argc, buf + off, res.consumed_bytes);
            put_str(t, "R");
            put_u64(t, res.argc);
            for (uint32_t i = 0; i < res.argc; i++) {
                put_u64(t, a.argl[i]);
                put(t, a.argv[i], a.argl[i]);
            }
            if (check) {
                struct bytes enc = {0};
                encode_multibulk(&enc, &a, res.argc);
                check_reparse(&enc, &a, res.argc, false);
                enc.len = 0;
                encode_inline(&enc, &a, res.argc);
                check_reparse(&enc, &a, res.argc, true);
                free(enc.b);
            }
            FUZZ_CHECK(res.consumed_bytes > 0, "a request consumed nothing");
            off += res.consumed_bytes;
        }
        if (st == RESP_NEED_MORE) {
            off += res.consumed_bytes;
            FUZZ_CHECK(fed - off <= resp_input_bytes_max(lim),
                       "waiting with %zu unconsumed bytes, bound %llu", fed - off,
                       (unsigned long long)resp_input_bytes_max(lim));
        }
    }
    ASAN_UNPOISON_MEMORY_REGION(buf, n);
    if (st == RESP_ERROR) {
        FUZZ_CHECK(res.error > RESP_ERR_NONE && res.error < RESP_ERR_COUNT, "error %d",
                   (int)res.error);
        const char *text = resp_error_str(res.error);
        FUZZ_CHECK(res.message_len == strlen(text) && res.message[res.message_len] == '\0',
                   "error message length %zu", res.message_len);
        size_t differ = 0;
        for (size_t i = 0; i < res.message_len; i++) {
            differ += res.message[i] != text[i];
        }
        /* Only "expected '$', got 'X'" quotes a byte of the input. */
        FUZZ_CHECK(differ == 0 || (differ == 1 && res.error == RESP_ERR_EXPECTED_DOLLAR),
                   "error message \"%s\" is not \"%s\"", res.message, text);
        put_str(t, "E");
        put(t, res.message, res.message_len);
    } else {
        put_str(t, "W");
        put_u64(t, fed - off);
    }
    free(buf);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_setup();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    uint8_t flags = fuzz_u8(&in);
    uint8_t b1 = fuzz_u8(&in);
    uint8_t b2 = fuzz_u8(&in);
    uint8_t b3 = fuzz_u8(&in);
    struct resp_limits lim;
    resp_limits_default(&lim);
    if (flags & 1u) {
        lim.inline_max = 1u + b1 % 96u;
        lim.args_max = 1u + b2 % 24u;
        lim.request_max = lim.inline_max + 2u + 8u * (b3 % 64u);
        lim.bulk_max = lim.request_max * ((flags >> 2) & 7u) / 7u;
    }
    FUZZ_CHECK(resp_limits_check(&lim) == 0, "limits chosen by the target are invalid");

    struct bytes whole = {0};
    struct bytes chunked = {0};
    run(in.p, in.left, &lim, (struct plan){0}, true, &whole);
    struct plan pl = {.byte_at_a_time = (flags & 2u) != 0,
                      .chunk_max = 1u + 4u * (flags >> 2),
                      .seed = ((uint32_t)b1 << 16 | (uint32_t)b2 << 8 | b3) | 1u};
    run(in.p, in.left, &lim, pl, false, &chunked);
    FUZZ_CHECK(whole.len == chunked.len && memcmp(whole.b, chunked.b, whole.len) == 0,
               "parsing in pieces gave another result than parsing at once");
    free(whole.b);
    free(chunked.b);
    return 0;
}
