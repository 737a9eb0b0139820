/* ringraft-bench's streaming reply parser: every reply kind, every split of the input into
 * reads, the visitor's view of nested replies, and malformed input refused without a crash. */
/* cmocka.h needs these four first, in this order. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <stdio.h>
#include <string.h>

#include "bench/rbench/resp_reply.h"
#include "core/base/prng.h"

/* Feeds text in pieces of at most `piece` bytes; returns the number of complete replies, or
 * -1 on RESP_REPLY_BAD. The last reply is copied to *last (text into last_text). */
static int
feed_all(const char *text, size_t len, size_t piece, struct resp_reply *last, char *last_text)
{
    struct resp_reply_parser p;
    resp_reply_init(&p);
    int replies = 0;
    size_t pos = 0;
    while (pos < len) {
        size_t n = len - pos < piece ? len - pos : piece;
        size_t off = 0;
        while (off < n) {
            size_t used = 0;
            struct resp_reply r;
            int rc = resp_reply_feed(&p, (const uint8_t *)text + pos + off, n - off, &used, &r,
                                     NULL, NULL);
            assert_true(used <= n - off);
            off += used;
            if (rc == RESP_REPLY_BAD) {
                return -1;
            }
            if (rc == RESP_REPLY_DONE) {
                replies++;
                *last = r;
                memcpy(last_text, r.text, r.text_len);
                last_text[r.text_len] = '\0';
            } else {
                assert_int_equal(off, n); /* MORE consumes everything */
            }
        }
        pos += n;
    }
    return replies;
}

struct sample {
    const char *text;
    int replies;      /* complete replies in text */
    char type;        /* of the last */
    bool nil;         /* of the last */
    const char *last; /* text of the last (+ or -) */
};

static const struct sample good[] = {
    {"+OK\r\n", 1, '+', false, "OK"},
    {"-ERR unknown command\r\n", 1, '-', false, "ERR unknown command"},
    {"-MOVED 3999 127.0.0.1:7002\r\n", 1, '-', false, "MOVED 3999 127.0.0.1:7002"},
    {":1000\r\n", 1, ':', false, ""},
    {":-5\r\n", 1, ':', false, ""},
    {"$5\r\nhello\r\n", 1, '$', false, ""},
    {"$0\r\n\r\n", 1, '$', false, ""},
    {"$-1\r\n", 1, '$', true, ""},
    {"*-1\r\n", 1, '*', true, ""},
    {"*0\r\n", 1, '*', false, ""},
    {"$4\r\na\r\nb\r\n", 1, '$', false, ""}, /* CRLF inside a payload */
    {"*2\r\n$3\r\nfoo\r\n:7\r\n", 1, '*', false, ""},
    /* XRANGE: [[id, [f, v]], [id, [f, v]]] */
    {"*2\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n*2\r\n$3\r\n2-0\r\n*2\r\n$1\r\nf\r\n$"
     "1\r\n"
     "v\r\n",
     1, '*', false, ""},
    /* XREAD: [[key, [[id, [f, v]]]]] */
    {"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n", 1, '*', false,
     ""},
    {"*3\r\n*0\r\n*-1\r\n$-1\r\n", 1, '*', false, ""},
    {"+OK\r\n+OK\r\n:1\r\n-BUSY try again\r\n", 4, '-', false, "BUSY try again"},
    {"+OK\n", 1, '+', false, "OK"}, /* bare \n ends a line */
    {"+\r\n", 1, '+', false, ""},
};

static void test_every_split(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        const struct sample *s = &good[i];
        size_t len = strlen(s->text);
        for (size_t piece = 1; piece <= len; piece++) {
            struct resp_reply r;
            char text[RESP_REPLY_KEEP + 1];
            int n = feed_all(s->text, len, piece, &r, text);
            if (n != s->replies) {
                fail_msg("sample %zu piece %zu: %d replies, expected %d", i, piece, n, s->replies);
            }
            assert_int_equal(r.type, s->type);
            assert_int_equal(r.nil, s->nil);
            assert_string_equal(text, s->last);
        }
    }
}

static void test_long_lines_and_bulks_are_streamed(void **state)
{
    (void)state;
    /* A 1 MB error line keeps its first RESP_REPLY_KEEP bytes; a 3 MB bulk is skipped. */
    static char text[(4u << 20) + 64];
    size_t len = 0;
    text[len++] = '-';
    memcpy(text + len, "ERR ", 4);
    len += 4;
    memset(text + len, 'e', 1u << 20);
    len += 1u << 20;
    len += (size_t)sprintf(text + len, "\r\n$%u\r\n", 3u << 20);
    memset(text + len, 'b', 3u << 20);
    len += 3u << 20;
    memcpy(text + len, "\r\n+OK\r\n", 7);
    len += 7;
    struct resp_reply r;
    char last[RESP_REPLY_KEEP + 1];
    assert_int_equal(feed_all(text, len, 65536, &r, last), 3);
    assert_int_equal(r.type, '+');
    struct resp_reply_parser p;
    resp_reply_init(&p);
    size_t used = 0;
    assert_int_equal(resp_reply_feed(&p, (const uint8_t *)text, len, &used, &r, NULL, NULL),
                     RESP_REPLY_DONE);
    assert_int_equal(r.type, '-');
    assert_int_equal(r.text_len, RESP_REPLY_KEEP);
    assert_memory_equal(r.text, "ERR eeee", 8);
}

static void test_malformed_is_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "!oops\r\n",                         /* unknown type */
        "\r\n",                              /* no type */
        ":abc\r\n",                          /* not a number */
        ":\r\n",                             /* empty number */
        ":+5\r\n",                           /* no '+' */
        "$-2\r\n",                           /* negative length */
        "*-7\r\n",                           /* negative count */
        "$3\r\nfooXY",                       /* payload not followed by CRLF */
        "$3\r\nfoo\rX",                      /* half a CRLF */
        "$99999999999999999999\r\n",         /* past the bulk limit (and the number) */
        "$1099511627777\r\n",                /* 2^40 + 1: past the bulk limit */
        ":1234567890123456789012345678\r\n", /* header line too long */
        "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", /* 9 deep */
        "*2\r\n:1\r\n?\r\n",                                            /* bad nested type */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t len = strlen(bad[i]);
        for (size_t piece = 1; piece <= len; piece++) {
            struct resp_reply r;
            char text[RESP_REPLY_KEEP + 1];
            if (feed_all(bad[i], len, piece, &r, text) != -1) {
                fail_msg("accepted bad sample %zu (piece %zu)", i, piece);
            }
        }
    }
}

/* Random bytes never crash the parser nor make it consume more than it was given. */
static void test_random_bytes(void **state)
{
    (void)state;
    struct rr_prng prng;
    rr_prng_seed(&prng, 42);
    static const char alphabet[] = "+-:$*0123456789\r\n-abc";
    uint8_t buf[512];
    for (int round = 0; round < 20000; round++) {
        size_t len = (size_t)rr_prng_range(&prng, 1, sizeof(buf));
        for (size_t i = 0; i < len; i++) {
            buf[i] = (uint8_t)alphabet[rr_prng_range(&prng, 0, sizeof(alphabet) - 1)];
        }
        struct resp_reply_parser p;
        resp_reply_init(&p);
        size_t pos = 0;
        while (pos < len) {
            size_t used = 0;
            struct resp_reply r;
            int rc = resp_reply_feed(&p, buf + pos, len - pos, &used, &r, NULL, NULL);
            assert_true(used <= len - pos);
            pos += used;
            if (rc != RESP_REPLY_DONE) {
                break;
            }
        }
    }
}

/* CLUSTER SLOTS as the slot map reads it: scalars with their depth and position. */
struct walk {
    char log[1024];
    size_t len;
};

static void walk_cb(void *arg, const struct resp_reply_parser *p, const struct resp_scalar *s)
{
    struct walk *w = arg;
    w->len += (size_t)snprintf(w->log + w->len, sizeof(w->log) - w->len, "%u:", p->depth);
    for (uint8_t d = 0; d < p->depth; d++) {
        w->len += (size_t)snprintf(w->log + w->len, sizeof(w->log) - w->len, "%u.", p->index[d]);
    }
    if (s->type == ':') {
        w->len += (size_t)snprintf(w->log + w->len, sizeof(w->log) - w->len, "%lld ",
                                   (long long)s->integer);
    } else {
        w->len += (size_t)snprintf(w->log + w->len, sizeof(w->log) - w->len, "%.*s ", (int)s->len,
                                   s->data);
    }
}

static void test_visitor_positions(void **state)
{
    (void)state;
    const char *text =
        "*2\r\n"
        "*3\r\n:0\r\n:99\r\n*3\r\n$9\r\n127.0.0.1\r\n:7001\r\n$2\r\nid\r\n"
        "*4\r\n:100\r\n:16383\r\n*2\r\n$1\r\nh\r\n:7002\r\n*2\r\n$1\r\nr\r\n:7003\r\n";
    struct resp_reply_parser p;
    resp_reply_init(&p);
    struct walk w = {.len = 0};
    size_t used = 0;
    struct resp_reply r;
    assert_int_equal(
        resp_reply_feed(&p, (const uint8_t *)text, strlen(text), &used, &r, walk_cb, &w),
        RESP_REPLY_DONE);
    assert_int_equal(used, strlen(text));
    assert_string_equal(w.log, "2:0.0.0 2:0.1.99 3:0.2.0.127.0.0.1 3:0.2.1.7001 3:0.2.2.id "
                               "2:1.0.100 2:1.1.16383 3:1.2.0.h 3:1.2.1.7002 3:1.3.0.r "
                               "3:1.3.1.7003 ");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_split),
        cmocka_unit_test(test_long_lines_and_bulks_are_streamed),
        cmocka_unit_test(test_malformed_is_refused),
        cmocka_unit_test(test_random_bytes),
        cmocka_unit_test(test_visitor_positions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
