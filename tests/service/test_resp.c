/* RESP parser tests: tables of good and malformed requests (each also fed at every split
 * point and byte by byte), every limit at its value and one past it, resumption without
 * rescanning, and seeded random pipelines and garbage. */
/* cmocka.h needs these four first, in this order. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/assert.h"
#include "core/base/errors.h"
#include "core/base/prng.h"
#include "io/service/resp.h"

#define RANDOM_SEED      0x5eed0001u
#define RANDOM_PIPELINES 400u
#define GARBAGE_RUNS     3000u
#define END_OF_CASES     ((const char *)0)
#define REQ_END          ((const char *)0)
#define EXPECT_SLOTS     24

static const uint8_t *argv_store[RESP_ARGS_MAX_DEFAULT];
static size_t argl_store[RESP_ARGS_MAX_DEFAULT];
static uint8_t scratch_store[RESP_INLINE_MAX_DEFAULT];

static void on_assert(const char *file, int line, const char *expr)
{
    fail_msg("RR_ASSERT failed at %s:%d: %s", file, line, expr);
}

static int setup(void **state)
{
    (void)state;
    rr_assert_set_handler(on_assert);
    return 0;
}

/* ---- a byte sink: requests serialised as "argc{len:bytes}" for comparison --------------- */

struct sink {
    uint8_t *b;
    size_t len;
    size_t cap;
};

static void sink_put(struct sink *s, const void *p, size_t n)
{
    if (s->len + n > s->cap) {
        size_t cap = s->cap < 256 ? 256 : s->cap;
        while (cap < s->len + n) {
            cap *= 2;
        }
        s->b = realloc(s->b, cap);
        assert_non_null(s->b);
        s->cap = cap;
    }
    if (n > 0) {
        memcpy(s->b + s->len, p, n);
    }
    s->len += n;
}

static void sink_arg(struct sink *s, const uint8_t *a, size_t n)
{
    char hdr[32];
    int h = snprintf(hdr, sizeof(hdr), "%zu:", n);
    sink_put(s, hdr, (size_t)h);
    sink_put(s, a, n);
    sink_put(s, ";", 1);
}

static void sink_begin(struct sink *s, uint32_t argc)
{
    char hdr[32];
    int h = snprintf(hdr, sizeof(hdr), "\n%u|", argc);
    sink_put(s, hdr, (size_t)h);
}

static void sink_free(struct sink *s)
{
    free(s->b);
    memset(s, 0, sizeof(*s));
}

static void sink_equal(const struct sink *a, const struct sink *b)
{
    assert_int_equal(a->len, b->len);
    if (a->len > 0) {
        assert_memory_equal(a->b, b->b, a->len);
    }
}

/* ---- a simulated connection: input buffer that moves, parser, output sink --------------- */

struct conn {
    struct resp_parser p;
    struct resp_limits limits;
    uint8_t *buf; /* unconsumed input, buf[0..len) */
    size_t len;
    size_t cap;
    struct resp_args args;
    struct sink out;
    enum resp_status status; /* of the last parse */
    struct resp_result res;  /* of the last parse */
    uint32_t requests;
};

static void conn_init(struct conn *c, const struct resp_limits *l)
{
    memset(c, 0, sizeof(*c));
    c->limits = *l;
    resp_parser_init(&c->p, l);
    c->args.argv = argv_store;
    c->args.argl = argl_store;
    c->args.capacity = RESP_ARGS_MAX_DEFAULT;
    c->args.scratch = scratch_store;
    c->args.scratch_bytes = sizeof(scratch_store);
    assert_true(l->args_max <= c->args.capacity);
    assert_true(l->inline_max <= c->args.scratch_bytes);
}

static void conn_free(struct conn *c)
{
    free(c->buf);
    sink_free(&c->out);
}

/* Appends data. Small buffers move to a new allocation on every append (so nothing can
 * depend on addresses surviving between calls); large ones grow in place. */
static void conn_append(struct conn *c, const uint8_t *data, size_t n)
{
    if (c->len + n <= 4096) {
        uint8_t *nb = malloc(c->len + n + 1);
        assert_non_null(nb);
        if (c->len > 0) {
            memcpy(nb, c->buf, c->len);
        }
        free(c->buf);
        c->buf = nb;
        c->cap = c->len + n + 1;
    } else if (c->len + n > c->cap) {
        size_t cap = c->cap < 8192 ? 8192 : c->cap;
        while (cap < c->len + n) {
            cap *= 2;
        }
        c->buf = realloc(c->buf, cap);
        assert_non_null(c->buf);
        c->cap = cap;
    }
    if (n > 0) {
        memcpy(c->buf + c->len, data, n);
    }
    c->len += n;
}

static bool points_into(const uint8_t *p, size_t n, const uint8_t *base, size_t len)
{
    return p >= base && (size_t)(p - base) <= len && n <= len - (size_t)(p - base);
}

/* Parses everything complete; records requests; compacts. Returns the last status. */
static enum resp_status conn_parse(struct conn *c)
{
    assert_int_not_equal(c->status, RESP_ERROR);
    size_t fed = c->len;
    for (size_t guard = 0;; guard++) {
        assert_true(guard <= fed + 1); /* each request is at least one byte */
        enum resp_status st = resp_parse(&c->p, c->buf, c->len, &c->args, &c->res);
        size_t used = c->res.consumed_bytes;
        assert_true(used <= c->len);
        if (st == RESP_REQUEST) {
            assert_true(used > 0);
            assert_true(c->res.argc >= 1);
            assert_true(c->res.argc <= c->limits.args_max);
            sink_begin(&c->out, c->res.argc);
            for (uint32_t i = 0; i < c->res.argc; i++) {
                const uint8_t *a = c->args.argv[i];
                size_t n = c->args.argl[i];
                assert_true(points_into(a, n, c->buf, used) ||
                            points_into(a, n, c->args.scratch, c->args.scratch_bytes));
                sink_arg(&c->out, a, n);
            }
            c->requests++;
        } else if (st == RESP_NEED_MORE) {
            assert_true(c->len - used <= resp_input_bytes_max(&c->limits));
        } else {
            assert_int_equal(st, RESP_ERROR);
            assert_int_equal(strlen(resp_error_str(c->res.error)), c->res.message_len);
        }
        memmove(c->buf, c->buf + used, c->len - used);
        c->len -= used;
        c->status = st;
        if (st != RESP_REQUEST) {
            return st;
        }
    }
}

static enum resp_status conn_feed(struct conn *c, const uint8_t *data, size_t n)
{
    conn_append(c, data, n);
    return conn_parse(c);
}

/* Feeds in[0..len) in pieces of the given sizes (cycled), stopping at an error. */
static enum resp_status
feed_pieces(struct conn *c, const uint8_t *in, size_t len, const size_t *sizes, size_t nsizes)
{
    size_t off = 0;
    enum resp_status st = RESP_NEED_MORE;
    for (size_t k = 0; off < len; k++) {
        size_t n = sizes[k % nsizes];
        if (n > len - off) {
            n = len - off;
        }
        st = conn_feed(c, in + off, n);
        off += n;
        if (st == RESP_ERROR) {
            break;
        }
    }
    return st;
}

/* ---- tables ------------------------------------------------------------------------------ */

/* Expected requests: each request's arguments then REQ_END; two REQ_ENDs end the list. */
static void expect_sink(struct sink *s, const char *const *expect)
{
    for (size_t i = 0; expect[i] != REQ_END;) {
        uint32_t argc = 0;
        while (expect[i + argc] != REQ_END) {
            argc++;
        }
        sink_begin(s, argc);
        for (uint32_t k = 0; k < argc; k++) {
            sink_arg(s, (const uint8_t *)expect[i + k], strlen(expect[i + k]));
        }
        i += argc + 1;
    }
}

struct good_case {
    const char *name;
    const char *in;
    size_t in_len; /* 0: strlen(in) */
    const char *expect[EXPECT_SLOTS];
};

static const struct good_case good_cases[] = {
    {"multibulk", "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n", 0, {"SET", "k", "value"}},
    {"pipeline",
     "*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\nGET x\r\n",
     0,
     {"PING", REQ_END, "ECHO", "hi", REQ_END, "GET", "x"}},
    {"inline crlf", "PING\r\n", 0, {"PING"}},
    {"inline lf", "PING\n", 0, {"PING"}},
    {"inline spaces", "  GET \t key  \r\n", 0, {"GET", "key"}},
    {"inline quotes", "SET \"a b\" 'c d'\r\n", 0, {"SET", "a b", "c d"}},
    {"inline escapes",
     "ECHO \"\\x41\\x7a\\n\\r\\t\\b\\a\\\\\\\"q\" 'it\\'s'\r\n",
     0,
     {"ECHO", "Az\n\r\t\b\a\\\"q", "it's"}},
    {"inline bad hex is an escaped x", "ECHO \"\\xZZ\\x4\"\n", 0, {"ECHO", "xZZx4"}},
    {"single quotes keep backslashes", "ECHO 'a\\b\\n'\n", 0, {"ECHO", "a\\b\\n"}},
    {"quote inside an argument", "ECHO a\"b c\" d'e'\n", 0, {"ECHO", "ab c", "de"}},
    {"empty quoted arguments", "SET k \"\" ''\r\n", 0, {"SET", "k", "", ""}},
    {"quote then tab", "ECHO \"a\"\t'b'\n", 0, {"ECHO", "a", "b"}},
    {"vertical tab and form feed", "\vGET\fx \v\r\n", 0, {"GET\fx"}},
    {"cr inside an inline line", "GET a\rb\r\n", 0, {"GET", "a", "b"}},
    {"nul ends inline arguments", "GET a\0b c\r\nPING\n", 16, {"GET", "a", REQ_END, "PING"}},
    {"empty requests skipped",
     "*0\r\n*-1\r\n\r\n\n   \r\n*-100\r\n*1\r\n$4\r\nPING\r\n\n",
     0,
     {"PING"}},
    {"binary bulk with crlf inside",
     "*2\r\n$4\r\nECHO\r\n$6\r\na\r\nb\r\n\r\n",
     0,
     {"ECHO", "a\r\nb\r\n"}},
    {"empty bulk", "*2\r\n$3\r\nGET\r\n$0\r\n\r\n", 0, {"GET", ""}},
    {"bulk with a quote and spaces", "*1\r\n$5\r\n\"a b'\r\n", 0, {"\"a b'"}},
    {"bytes after a cr are not checked (as Redis)", "*1\rX$4\rYPINGzz", 0, {"PING"}},
    {"inline star later in the line", " *1\r\n", 0, {"*1"}},
    {"mixed pipeline",
     "PING\n*2\r\n$3\r\nGET\r\n$1\r\na\r\n\nSET b \"c\"\r\n*0\r\n",
     0,
     {"PING", REQ_END, "GET", "a", REQ_END, "SET", "b", "c"}},
};

struct bad_case {
    const char *name;
    const char *in;
    size_t in_len;
    const char *message;
};

static const struct bad_case bad_cases[] = {
    {"count not a number", "*abc\r\n", 0, "Protocol error: invalid multibulk length"},
    {"count empty", "*\r\n", 0, "Protocol error: invalid multibulk length"},
    {"count with plus", "*+1\r\n", 0, "Protocol error: invalid multibulk length"},
    {"count with leading zero", "*01\r\n", 0, "Protocol error: invalid multibulk length"},
    {"count minus zero", "*-0\r\n", 0, "Protocol error: invalid multibulk length"},
    {"count with space", "* 1\r\n", 0, "Protocol error: invalid multibulk length"},
    {"count lf only", "*1\n$1\r\na\r\n", 0, "Protocol error: invalid multibulk length"},
    {"count overflow", "*99999999999999999999\r\n", 0, "Protocol error: invalid multibulk length"},
    {"count over args_max", "*65537\r\n", 0, "Protocol error: invalid multibulk length"},
    {"count over Redis 6 limit", "*1048577\r\n", 0, "Protocol error: invalid multibulk length"},
    {"bulk length not a number", "*1\r\n$abc\r\n", 0, "Protocol error: invalid bulk length"},
    {"bulk length negative", "*1\r\n$-1\r\n", 0, "Protocol error: invalid bulk length"},
    {"bulk length empty", "*1\r\n$\r\n", 0, "Protocol error: invalid bulk length"},
    {"bulk length over bulk_max", "*1\r\n$16777217\r\n", 0, "Protocol error: invalid bulk length"},
    {"wrong bulk header", "*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n", 0,
     "Protocol error: expected '$', got 'f'"},
    {"bulk header is cr", "*1\r\n\r\n", 0, "Protocol error: expected '$', got ' '"},
    {"bulk header is lf", "*1\r\n\nX\r\n", 0, "Protocol error: expected '$', got ' '"},
    {"bulk header is star", "*2\r\n*1\r\n", 0, "Protocol error: expected '$', got '*'"},
    {"unterminated double quote", "SET \"abc\r\n", 0,
     "Protocol error: unbalanced quotes in request"},
    {"unterminated single quote", "SET 'abc\r\n", 0,
     "Protocol error: unbalanced quotes in request"},
    {"double quote then letter", "SET \"a\"b\r\n", 0,
     "Protocol error: unbalanced quotes in request"},
    {"single quote then letter", "SET 'a'b\r\n", 0, "Protocol error: unbalanced quotes in request"},
    {"escaped closing quote", "SET \"abc\\\"\r\n", 0,
     "Protocol error: unbalanced quotes in request"},
    {"backslash at end", "SET \"abc\\\r\n", 0, "Protocol error: unbalanced quotes in request"},
    {"nul inside quotes", "SET \"a\0b\"\r\n", 11, "Protocol error: unbalanced quotes in request"},
    {"error after a good request", "PING\r\n*1\r\n$x\r\n", 0,
     "Protocol error: invalid bulk length"},
};

static size_t case_len(const char *in, size_t in_len)
{
    return in_len != 0 ? in_len : strlen(in);
}

static void run_good(const struct good_case *g, const size_t *sizes, size_t nsizes)
{
    struct resp_limits l;
    resp_limits_default(&l);
    struct sink want = {0};
    expect_sink(&want, g->expect);
    struct conn c;
    conn_init(&c, &l);
    size_t len = case_len(g->in, g->in_len);
    enum resp_status st = feed_pieces(&c, (const uint8_t *)g->in, len, sizes, nsizes);
    if (st != RESP_NEED_MORE || c.len != 0) {
        fail_msg("%s: status %d, %zu bytes left", g->name, (int)st, c.len);
    }
    sink_equal(&c.out, &want);
    conn_free(&c);
    sink_free(&want);
}

static void test_good_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(good_cases) / sizeof(good_cases[0]); i++) {
        const struct good_case *g = &good_cases[i];
        size_t len = case_len(g->in, g->in_len);
        size_t whole = len;
        run_good(g, &whole, 1);
        size_t one = 1;
        run_good(g, &one, 1); /* byte by byte */
        for (size_t k = 1; k < len; k++) {
            size_t two[2] = {k, len};
            run_good(g, two, 2); /* split at every point */
        }
    }
}

static void run_bad(const struct bad_case *b, const size_t *sizes, size_t nsizes)
{
    struct resp_limits l;
    resp_limits_default(&l);
    struct conn c;
    conn_init(&c, &l);
    size_t len = case_len(b->in, b->in_len);
    enum resp_status st = feed_pieces(&c, (const uint8_t *)b->in, len, sizes, nsizes);
    if (st != RESP_ERROR) {
        fail_msg("%s: status %d, want an error", b->name, (int)st);
    }
    assert_int_equal(c.res.message_len, strlen(b->message));
    assert_string_equal(c.res.message, b->message);
    conn_free(&c);
}

static void test_bad_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *b = &bad_cases[i];
        size_t len = case_len(b->in, b->in_len);
        run_bad(b, &len, 1);
        size_t one = 1;
        run_bad(b, &one, 1);
        for (size_t k = 1; k < len; k++) {
            size_t two[2] = {k, len};
            run_bad(b, two, 2);
        }
    }
}

/* ---- limits ------------------------------------------------------------------------------ */

static const struct resp_limits small_limits = {
    .inline_max = 32,
    .args_max = 4,
    .bulk_max = 64,
    .request_max = 100,
};

/* Feeds in one piece and byte by byte; both must end in `want` (and `message`). */
static void
expect_outcome(const uint8_t *in, size_t len, enum resp_status want, const char *message)
{
    for (int mode = 0; mode < 2; mode++) {
        struct conn c;
        conn_init(&c, &small_limits);
        size_t one = 1;
        enum resp_status st = feed_pieces(&c, in, len, mode == 0 ? &len : &one, 1);
        assert_int_equal(st, want);
        if (want == RESP_ERROR) {
            assert_string_equal(c.res.message, message);
        }
        conn_free(&c);
    }
}

static void expect_request(const char *in, size_t len)
{
    struct conn c;
    conn_init(&c, &small_limits);
    assert_int_equal(conn_feed(&c, (const uint8_t *)in, len), RESP_NEED_MORE);
    assert_int_equal(c.requests, 1);
    assert_int_equal(c.len, 0);
    conn_free(&c);
    expect_outcome((const uint8_t *)in, len, RESP_NEED_MORE, NULL);
}

static void test_limit_inline(void **state)
{
    (void)state;
    char line[64];
    /* 32 bytes then LF: accepted; 33: refused. */
    memset(line, 'a', sizeof(line));
    line[32] = '\n';
    expect_request(line, 33);
    line[32] = 'a';
    line[33] = '\n';
    expect_outcome((const uint8_t *)line, 34, RESP_ERROR, "Protocol error: too big inline request");
    /* The CR before the LF counts: 31 + CR + LF accepted, 32 + CR + LF refused. */
    memset(line, 'a', sizeof(line));
    memcpy(line + 31, "\r\n", 2);
    expect_request(line, 33);
    memcpy(line + 32, "\r\n", 2);
    expect_outcome((const uint8_t *)line, 34, RESP_ERROR, "Protocol error: too big inline request");
    /* Without a LF: 32 bytes wait, 33 are refused. */
    memset(line, 'a', sizeof(line));
    expect_outcome((const uint8_t *)line, 32, RESP_NEED_MORE, NULL);
    expect_outcome((const uint8_t *)line, 33, RESP_ERROR, "Protocol error: too big inline request");
}

static void test_limit_header_lines(void **state)
{
    (void)state;
    char line[64];
    /* '*' line: 32 bytes before CR are judged on their value, 33 are too big. */
    memset(line, '1', sizeof(line));
    line[0] = '*';
    memcpy(line + 32, "\r\n", 2);
    expect_outcome((const uint8_t *)line, 34, RESP_ERROR,
                   "Protocol error: invalid multibulk length");
    memset(line, '1', sizeof(line));
    line[0] = '*';
    memcpy(line + 33, "\r\n", 2);
    expect_outcome((const uint8_t *)line, 35, RESP_ERROR,
                   "Protocol error: too big mbulk count string");
    memset(line, '1', sizeof(line));
    line[0] = '*';
    expect_outcome((const uint8_t *)line, 32, RESP_NEED_MORE, NULL);
    expect_outcome((const uint8_t *)line, 33, RESP_ERROR,
                   "Protocol error: too big mbulk count string");
    /* '$' line, the same; the size applies before the '$' is checked (as Redis). */
    memcpy(line, "*1\r\n", 4);
    memset(line + 4, 'X', sizeof(line) - 4);
    expect_outcome((const uint8_t *)line, 4 + 32, RESP_NEED_MORE, NULL);
    expect_outcome((const uint8_t *)line, 4 + 33, RESP_ERROR,
                   "Protocol error: too big bulk count string");
    memcpy(line + 4 + 32, "\r\n", 2);
    expect_outcome((const uint8_t *)line, 4 + 34, RESP_ERROR,
                   "Protocol error: expected '$', got 'X'");
}

static void test_limit_args(void **state)
{
    (void)state;
    const char *four = "*4\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n";
    expect_request(four, strlen(four));
    /* Refused from the count alone, before any argument arrives. */
    expect_outcome((const uint8_t *)"*5\r\n", 4, RESP_ERROR,
                   "Protocol error: invalid multibulk length");
    expect_request("a b c d\r\n", 9);
    expect_outcome((const uint8_t *)"a b c d e\r\n", 11, RESP_ERROR,
                   "Protocol error: too many arguments in inline request");
}

static void test_limit_bulk(void **state)
{
    (void)state;
    char req[128];
    int n = snprintf(req, sizeof(req), "*1\r\n$64\r\n");
    memset(req + n, 'v', 64);
    memcpy(req + n + 64, "\r\n", 2);
    expect_request(req, (size_t)n + 66);
    /* Refused as soon as the header line is in. */
    expect_outcome((const uint8_t *)"*1\r\n$65\r\n", 9, RESP_ERROR,
                   "Protocol error: invalid bulk length");
}

/* A client that has not authenticated gets Redis's tighter limits: 10 arguments, bulks of
 * 16 KiB; one that has gets the configured ones. */
static void test_limits_before_authentication(void **state)
{
    (void)state;
    struct resp_limits lim;
    resp_limits_default(&lim);
    static char big[RESP_UNAUTH_BULK_MAX + 64];
    int h = snprintf(big, sizeof(big), "*1\r\n$%u\r\n", RESP_UNAUTH_BULK_MAX);
    memset(big + h, 'p', RESP_UNAUTH_BULK_MAX);
    memcpy(big + h + RESP_UNAUTH_BULK_MAX, "\r\n", 2);
    size_t big_len = (size_t)h + RESP_UNAUTH_BULK_MAX + 2;
    const char *ten =
        "*10\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na"
        "\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n";
    const char *over[] = {"*11\r\n", "*1\r\n$16385\r\n"};
    const char *why[] = {"Protocol error: unauthenticated multibulk length",
                         "Protocol error: unauthenticated bulk length"};
    for (int unauth = 0; unauth < 2; unauth++) {
        struct conn c;
        conn_init(&c, &lim);
        c.p.unauthenticated = unauth == 1;
        assert_int_equal(conn_feed(&c, (const uint8_t *)ten, strlen(ten)), RESP_NEED_MORE);
        assert_int_equal(conn_feed(&c, (const uint8_t *)big, big_len), RESP_NEED_MORE);
        assert_int_equal(c.requests, 2);
        conn_free(&c);
        for (int k = 0; k < 2; k++) {
            conn_init(&c, &lim);
            c.p.unauthenticated = unauth == 1;
            enum resp_status st = conn_feed(&c, (const uint8_t *)over[k], strlen(over[k]));
            if (unauth) {
                assert_int_equal(st, RESP_ERROR);
                assert_string_equal(c.res.message, why[k]);
            } else {
                assert_int_equal(st, RESP_NEED_MORE);
            }
            conn_free(&c);
        }
        /* A malformed count is still "invalid", whoever sends it (Redis's order). */
        conn_init(&c, &lim);
        c.p.unauthenticated = unauth == 1;
        assert_int_equal(conn_feed(&c, (const uint8_t *)"*x\r\n", 4), RESP_ERROR);
        assert_string_equal(c.res.message, "Protocol error: invalid multibulk length");
        conn_free(&c);
    }
}

/* "*2\r\n$40\r\n<40>\r\n$N\r\n<N>\r\n" is 58 + N bytes. */
static size_t two_bulks(char *out, size_t cap, unsigned n)
{
    int h = snprintf(out, cap, "*2\r\n$40\r\n");
    memset(out + h, 'a', 40);
    size_t len = (size_t)h + 40;
    memcpy(out + len, "\r\n", 2);
    len += 2;
    len += (size_t)snprintf(out + len, cap - len, "$%u\r\n", n);
    memset(out + len, 'b', n);
    len += n;
    memcpy(out + len, "\r\n", 2);
    return len + 2;
}

static void test_limit_request(void **state)
{
    (void)state;
    char req[256];
    size_t len = two_bulks(req, sizeof(req), 42);
    assert_int_equal(len, 100);
    expect_request(req, len);
    len = two_bulks(req, sizeof(req), 43);
    assert_int_equal(len, 101);
    /* Refused at the header line that announces it, before the payload is awaited. */
    expect_outcome((const uint8_t *)req, 58, RESP_ERROR, "Protocol error: too big request");
    expect_outcome((const uint8_t *)req, len, RESP_ERROR, "Protocol error: too big request");
    /* A header line that cannot end within the limit. */
    char three[256];
    len = two_bulks(three, sizeof(three), 42);
    three[1] = '3';
    memcpy(three + len, "$", 1);
    expect_outcome((const uint8_t *)three, len - 1, RESP_NEED_MORE, NULL);
    expect_outcome((const uint8_t *)three, len + 1, RESP_ERROR, "Protocol error: too big request");
}

/* A '$' line that breaks both inline_max and request_max: the limit it reaches first names
 * the error, in one piece and byte by byte alike. (Found by fuzz_resp: in one piece the
 * parser said "too big bulk count string", byte by byte "too big request".) */
static void test_limit_line_and_request(void **state)
{
    (void)state;
    char req[256];
    size_t len = two_bulks(req, sizeof(req), 40);
    assert_int_equal(len, 98);
    req[1] = '3';
    /* The third '$' line starts at 98: its CRLF cannot end by 100 once it holds a byte
     * (offset 99), long before it passes inline_max (offset 131). */
    req[len] = '$';
    memset(req + len + 1, 'X', 40);
    memcpy(req + len + 41, "\r\n", 2);
    expect_outcome((const uint8_t *)req, len + 43, RESP_ERROR, "Protocol error: too big request");
    /* Early in a request the line passes inline_max (offset 37) before request_max. */
    char early[256];
    memcpy(early, "*2\r\n$", 5);
    memset(early + 5, '1', 120);
    memcpy(early + 125, "\r\n", 2);
    expect_outcome((const uint8_t *)early, 127, RESP_ERROR,
                   "Protocol error: too big bulk count string");
}

static void test_limits_check(void **state)
{
    (void)state;
    struct resp_limits l;
    resp_limits_default(&l);
    assert_int_equal(resp_limits_check(&l), 0);
    assert_int_equal(l.inline_max, 64u << 10);
    assert_int_equal(l.args_max, 65536);
    assert_int_equal(l.bulk_max, 16u << 20);
    assert_int_equal(l.request_max, 64u << 20);
    assert_int_equal(resp_input_bytes_max(&l), l.request_max);
    assert_int_equal(resp_limits_check(&small_limits), 0);
    struct resp_limits bad = l;
    bad.inline_max = 0;
    assert_int_equal(resp_limits_check(&bad), RR_EINVAL);
    bad = l;
    bad.args_max = RESP_ARGS_MAX_CEILING + 1;
    assert_int_equal(resp_limits_check(&bad), RR_EINVAL);
    bad = l;
    bad.bulk_max = l.request_max + 1;
    assert_int_equal(resp_limits_check(&bad), RR_EINVAL);
    bad = l;
    bad.request_max = l.inline_max + 1;
    assert_int_equal(resp_limits_check(&bad), RR_EINVAL);
    bad = l;
    bad.request_max = (uint64_t)RESP_REQUEST_MAX_CEILING + 1;
    assert_int_equal(resp_limits_check(&bad), RR_EINVAL);
}

/* ---- resumption ---------------------------------------------------------------------------- */

/* consumed_bytes reports skipped empty requests even when the next one is incomplete. */
static void test_consumed_on_need_more(void **state)
{
    (void)state;
    struct resp_limits l;
    resp_limits_default(&l);
    struct resp_parser p;
    resp_parser_init(&p, &l);
    struct resp_args a = {argv_store, argl_store, RESP_ARGS_MAX_DEFAULT, scratch_store,
                          sizeof(scratch_store)};
    struct resp_result r;
    const char *in = "*0\r\n\r\n*1\r\n$4\r\nPI";
    assert_int_equal(resp_parse(&p, (const uint8_t *)in, strlen(in), &a, &r), RESP_NEED_MORE);
    assert_int_equal(r.consumed_bytes, 6);
    const char *rest = "*1\r\n$4\r\nPING\r\n";
    assert_int_equal(resp_parse(&p, (const uint8_t *)rest, strlen(rest), &a, &r), RESP_REQUEST);
    assert_int_equal(r.consumed_bytes, strlen(rest));
    assert_int_equal(r.argc, 1);
    assert_ptr_equal(a.argv[0], (const uint8_t *)rest + 8);
    assert_int_equal(a.argl[0], 4);
    assert_int_equal(resp_parse(&p, NULL, 0, &a, &r), RESP_NEED_MORE);
    assert_int_equal(r.consumed_bytes, 0);
}

/* While a line has no end yet, the parser remembers how far it looked: a long line arriving
 * a byte at a time is searched once, not once per byte. */
static void test_no_rescan(void **state)
{
    (void)state;
    struct resp_limits l;
    resp_limits_default(&l);
    struct resp_parser p;
    resp_parser_init(&p, &l);
    struct resp_args a = {argv_store, argl_store, RESP_ARGS_MAX_DEFAULT, scratch_store,
                          sizeof(scratch_store)};
    struct resp_result r;
    static uint8_t line[RESP_INLINE_MAX_DEFAULT];
    memset(line, 'x', sizeof(line));
    line[sizeof(line) - 1] = '\n';
    for (size_t n = 1; n < sizeof(line); n++) {
        assert_int_equal(resp_parse(&p, line, n, &a, &r), RESP_NEED_MORE);
        assert_int_equal(p.scan, n);
    }
    assert_int_equal(resp_parse(&p, line, sizeof(line), &a, &r), RESP_REQUEST);
    assert_int_equal(r.argc, 1);
    assert_int_equal(a.argl[0], sizeof(line) - 1);
    assert_ptr_equal(a.argv[0], scratch_store);
}

/* A 4 MiB request of many arguments fed one byte per call: O(bytes) overall, and every
 * argument points at its payload in the caller's buffer. */
static void test_large_request_byte_by_byte(void **state)
{
    (void)state;
    const uint32_t args = 1024;
    const size_t arg_bytes = 4096;
    size_t cap = 16 + args * (arg_bytes + 16);
    uint8_t *in = malloc(cap);
    assert_non_null(in);
    size_t len = (size_t)snprintf((char *)in, cap, "*%u\r\n", args);
    for (uint32_t i = 0; i < args; i++) {
        len += (size_t)snprintf((char *)in + len, cap - len, "$%zu\r\n", arg_bytes);
        memset(in + len, (int)('a' + i % 26), arg_bytes);
        len += arg_bytes;
        memcpy(in + len, "\r\n", 2);
        len += 2;
    }
    struct resp_limits l;
    resp_limits_default(&l);
    struct resp_parser p;
    resp_parser_init(&p, &l);
    struct resp_args a = {argv_store, argl_store, RESP_ARGS_MAX_DEFAULT, scratch_store,
                          sizeof(scratch_store)};
    struct resp_result r;
    for (size_t n = 1; n < len; n++) {
        assert_int_equal(resp_parse(&p, in, n, &a, &r), RESP_NEED_MORE);
    }
    assert_int_equal(resp_parse(&p, in, len, &a, &r), RESP_REQUEST);
    assert_int_equal(r.consumed_bytes, len);
    assert_int_equal(r.argc, args);
    for (uint32_t i = 0; i < args; i++) {
        assert_int_equal(a.argl[i], arg_bytes);
        assert_true(a.argv[i] > in && a.argv[i] + arg_bytes < in + len);
        assert_int_equal(a.argv[i][0], 'a' + i % 26);
        assert_int_equal(a.argv[i][arg_bytes - 1], 'a' + i % 26);
    }
    free(in);
}

/* ---- random pipelines -------------------------------------------------------------------- */

static void random_arg(struct rr_prng *g, uint8_t *out, size_t *n, bool binary)
{
    static const char plain[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_:.";
    size_t len = (size_t)rr_prng_range(g, 0, rr_prng_range(g, 0, 4) == 0 ? 200 : 12);
    for (size_t i = 0; i < len; i++) {
        if (binary && rr_prng_range(g, 0, 4) == 0) {
            out[i] = (uint8_t)rr_prng_next(g);
        } else {
            out[i] = (uint8_t)plain[rr_prng_range(g, 0, sizeof(plain) - 1)];
        }
    }
    *n = len;
}

/* Writes arg as an inline token sdssplitargs reads back exactly. */
static void inline_token(struct sink *s, const uint8_t *a, size_t n, struct rr_prng *g)
{
    bool simple = n > 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = a[i];
        if (c <= ' ' || c >= 0x7f || c == '"' || c == '\'' || c == '\\') {
            simple = false;
        }
    }
    if (simple && rr_prng_range(g, 0, 3) != 0) {
        sink_put(s, a, n);
        return;
    }
    sink_put(s, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = a[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            sink_put(s, esc, 2);
        } else if (c == '\n' && rr_prng_range(g, 0, 2) == 0) {
            sink_put(s, "\\n", 2);
        } else if (c < ' ' || c >= 0x7f || rr_prng_range(g, 0, 20) == 0) {
            int h = snprintf(esc, sizeof(esc), "\\x%02x", c);
            sink_put(s, esc, (size_t)h);
        } else {
            sink_put(s, &c, 1);
        }
    }
    sink_put(s, "\"", 1);
}

/* A random request appended to `wire`, its parse appended to `want`. */
static void random_request(struct rr_prng *g, struct sink *wire, struct sink *want)
{
    static uint8_t arg[256];
    uint32_t kind = (uint32_t)rr_prng_range(g, 0, 10);
    if (kind == 0) {
        static const char *const empties[] = {"*0\r\n", "*-1\r\n", "\r\n", "\n", "  \t\r\n"};
        const char *e = empties[rr_prng_range(g, 0, 5)];
        sink_put(wire, e, strlen(e));
        return;
    }
    uint32_t argc = (uint32_t)rr_prng_range(g, 1, rr_prng_range(g, 0, 8) == 0 ? 200 : 6);
    bool inline_req = kind <= 3;
    if (inline_req && argc > 20) {
        argc = 20; /* 20 arguments of at most 200 bytes, escaped, stay under inline_max */
    }
    char hdr[32];
    if (!inline_req) {
        int h = snprintf(hdr, sizeof(hdr), "*%u\r\n", argc);
        sink_put(wire, hdr, (size_t)h);
    }
    sink_begin(want, argc);
    for (uint32_t i = 0; i < argc; i++) {
        size_t n = 0;
        random_arg(g, arg, &n, true);
        if (inline_req && i == 0 && n == 0) {
            arg[0] = 'x'; /* keep the line from starting with "*" or being empty */
            n = 1;
        }
        if (inline_req) {
            if (i > 0) {
                const char *sep = rr_prng_range(g, 0, 3) == 0 ? " \t " : " ";
                sink_put(wire, sep, strlen(sep));
            } else if (arg[0] == '*') {
                arg[0] = 'y';
            }
            inline_token(wire, arg, n, g);
        } else {
            int h = snprintf(hdr, sizeof(hdr), "$%zu\r\n", n);
            sink_put(wire, hdr, (size_t)h);
            sink_put(wire, arg, n);
            sink_put(wire, "\r\n", 2);
        }
        sink_arg(want, arg, n);
    }
    if (inline_req) {
        const char *end = rr_prng_range(g, 0, 2) == 0 ? "\r\n" : "\n";
        sink_put(wire, end, strlen(end));
    }
}

static void test_random_pipelines(void **state)
{
    (void)state;
    struct rr_prng g;
    rr_prng_seed(&g, RANDOM_SEED);
    struct resp_limits l;
    resp_limits_default(&l);
    uint64_t requests = 0;
    for (uint32_t it = 0; it < RANDOM_PIPELINES; it++) {
        struct sink wire = {0};
        struct sink want = {0};
        uint32_t n = (uint32_t)rr_prng_range(&g, 1, 40);
        for (uint32_t i = 0; i < n; i++) {
            random_request(&g, &wire, &want);
        }
        struct conn c;
        conn_init(&c, &l);
        size_t off = 0;
        while (off < wire.len) {
            size_t max = rr_prng_range(&g, 0, 3) == 0 ? 2 : 300;
            size_t k = (size_t)rr_prng_range(&g, 1, max + 1);
            if (k > wire.len - off) {
                k = wire.len - off;
            }
            assert_int_equal(conn_feed(&c, wire.b + off, k), RESP_NEED_MORE);
            off += k;
        }
        assert_int_equal(c.len, 0);
        if (c.out.len != want.len || (want.len > 0 && memcmp(c.out.b, want.b, want.len) != 0)) {
            fail_msg("pipeline %u differs (seed %u)", it, RANDOM_SEED);
        }
        requests += c.requests;
        conn_free(&c);
        sink_free(&wire);
        sink_free(&want);
    }
    print_message("random pipelines: %u pipelines, %llu requests\n", RANDOM_PIPELINES,
                  (unsigned long long)requests);
}

/* ---- garbage ------------------------------------------------------------------------------- */

/* Feeds in[0..len) whole or in random pieces; returns the final status, the requests
 * parsed in `c` (which the caller frees). */
static enum resp_status garbage_feed(struct conn *c,
                                     const struct resp_limits *l,
                                     struct rr_prng *g,
                                     const uint8_t *in,
                                     size_t len,
                                     bool pieces)
{
    conn_init(c, l);
    size_t off = 0;
    enum resp_status st = RESP_NEED_MORE;
    while (off < len && st != RESP_ERROR) {
        size_t k = pieces ? (size_t)rr_prng_range(g, 1, 64) : len;
        if (k > len - off) {
            k = len - off;
        }
        st = conn_feed(c, in + off, k);
        off += k;
    }
    return st;
}

/* Random bytes, protocol-alphabet bytes and mutated valid pipelines: no crash (ASan and
 * UBSan in the debug build), every invariant conn_parse checks holds, and the outcome
 * (requests, final status, error text) does not depend on how the bytes were split. */
static void test_random_garbage(void **state)
{
    (void)state;
    static const uint8_t alphabet[] = "*$\r\n\"'\\x0123456789-  aZ\t";
    struct rr_prng g;
    rr_prng_seed(&g, RANDOM_SEED + 1);
    struct resp_limits dflt;
    resp_limits_default(&dflt);
    uint32_t outcomes[3] = {0, 0, 0};
    static uint8_t buf[2048];
    for (uint32_t it = 0; it < GARBAGE_RUNS; it++) {
        size_t len = (size_t)rr_prng_range(&g, 1, sizeof(buf));
        uint32_t mode = it % 3;
        if (mode == 2) {
            struct sink wire = {0};
            struct sink want = {0};
            while (wire.len < len) {
                random_request(&g, &wire, &want);
            }
            memcpy(buf, wire.b, len);
            sink_free(&wire);
            sink_free(&want);
            for (uint32_t f = (uint32_t)rr_prng_range(&g, 1, 5); f > 0; f--) {
                buf[rr_prng_range(&g, 0, len)] =
                    alphabet[rr_prng_range(&g, 0, sizeof(alphabet) - 1)];
            }
        } else {
            for (size_t i = 0; i < len; i++) {
                buf[i] = mode == 0 ? (uint8_t)rr_prng_next(&g)
                                   : alphabet[rr_prng_range(&g, 0, sizeof(alphabet) - 1)];
            }
        }
        const struct resp_limits *l = it % 2 == 0 ? &small_limits : &dflt;
        struct conn whole;
        struct conn split;
        enum resp_status a = garbage_feed(&whole, l, &g, buf, len, false);
        enum resp_status b = garbage_feed(&split, l, &g, buf, len, true);
        if (a != b) {
            fail_msg("garbage run %u: status %d whole, %d split (seed %u)", it, (int)a, (int)b,
                     RANDOM_SEED + 1);
        }
        sink_equal(&whole.out, &split.out);
        if (a == RESP_ERROR) {
            assert_string_equal(whole.res.message, split.res.message);
        }
        outcomes[a]++;
        conn_free(&whole);
        conn_free(&split);
    }
    print_message("garbage: %u runs waiting for more, %u ended in an error\n",
                  outcomes[RESP_NEED_MORE], outcomes[RESP_ERROR]);
    assert_true(outcomes[RESP_NEED_MORE] > 0);
    assert_true(outcomes[RESP_ERROR] > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_cases),
        cmocka_unit_test(test_bad_cases),
        cmocka_unit_test(test_limit_inline),
        cmocka_unit_test(test_limit_header_lines),
        cmocka_unit_test(test_limit_args),
        cmocka_unit_test(test_limit_bulk),
        cmocka_unit_test(test_limits_before_authentication),
        cmocka_unit_test(test_limit_request),
        cmocka_unit_test(test_limit_line_and_request),
        cmocka_unit_test(test_limits_check),
        cmocka_unit_test(test_consumed_on_need_more),
        cmocka_unit_test(test_no_rescan),
        cmocka_unit_test(test_large_request_byte_by_byte),
        cmocka_unit_test(test_random_pipelines),
        cmocka_unit_test(test_random_garbage),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
