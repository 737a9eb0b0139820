/* Forwarding payload tests (io/wire/forward.c): round trips, every truncation, argument
 * counts the payload cannot hold refused before any allocation is sized from them, bytes
 * after the last argument, and the reply and cancel payloads' checks. */
/* cmocka.h needs these four first, in this order. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <stdbool.h>
#include <string.h>

#include "core/base/errors.h"
#include "io/wire/forward.h"
#include "io/wire/le.h"

static const struct forward_header H = {.id = 0x0102030405060708ull,
                                        .client_id = 42,
                                        .seq = 9,
                                        .first_unacked = 7,
                                        .group = 511,
                                        .cls = 1,
                                        .argc = 3};
static const uint8_t *const ARGV[3] = {(const uint8_t *)"SET", (const uint8_t *)"key",
                                       (const uint8_t *)""};
static const uint32_t ARGL[3] = {3, 3, 0};

/* Encodes H and ARGV into buf; returns the payload's length. */
static size_t encode(uint8_t *buf)
{
    forward_header_encode(buf, &H);
    forward_args_encode(buf + FORWARD_HEADER_BYTES, H.argc, ARGV, ARGL);
    return FORWARD_HEADER_BYTES + forward_args_bytes(H.argc, ARGL);
}

static void test_round_trip(void **state)
{
    (void)state;
    uint8_t buf[128];
    size_t len = encode(buf);
    assert_int_equal(len, FORWARD_HEADER_BYTES + 4 + 3 + 4 + 3 + 4);
    struct forward_header h;
    assert_int_equal(forward_header_decode(buf, len, &h), 0);
    assert_int_equal(h.id, H.id);
    assert_int_equal(h.client_id, H.client_id);
    assert_int_equal(h.seq, H.seq);
    assert_int_equal(h.first_unacked, H.first_unacked);
    assert_int_equal(h.group, H.group);
    assert_int_equal(h.cls, H.cls);
    assert_int_equal(h.argc, H.argc);
    const uint8_t *argv[3];
    size_t argl[3];
    assert_int_equal(forward_args_decode(buf, len, &h, argv, argl), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(argl[i], ARGL[i]);
        assert_memory_equal(argv[i], ARGV[i], ARGL[i]);
    }
}

static void test_every_truncation_refused(void **state)
{
    (void)state;
    uint8_t buf[128];
    size_t len = encode(buf);
    for (size_t n = 0; n < len; n++) {
        struct forward_header h;
        int rc = forward_header_decode(buf, n, &h);
        if (n < FORWARD_HEADER_BYTES) {
            assert_int_equal(rc, RR_ETRUNCATED);
            continue;
        }
        if (rc == 0) {
            const uint8_t *argv[3];
            size_t argl[3];
            rc = forward_args_decode(buf, n, &h, argv, argl);
        }
        assert_int_equal(rc, RR_ECORRUPT);
    }
}

/* A count the payload cannot hold is refused by the header decoder itself: the node sizes
 * its argument arrays from argc before decoding the arguments. */
static void test_argc_bounded_by_payload(void **state)
{
    (void)state;
    uint8_t buf[FORWARD_HEADER_BYTES + 16] = {0};
    struct forward_header h = H;
    h.argc = 4;
    forward_header_encode(buf, &h);
    assert_int_equal(forward_header_decode(buf, FORWARD_HEADER_BYTES + 16, &h), 0);
    assert_int_equal(forward_header_decode(buf, FORWARD_HEADER_BYTES + 15, &h), RR_ECORRUPT);
    le_put_u32(buf + 37, FORWARD_ARGC_MAX); /* 4 MiB of slots for a 57-byte payload */
    assert_int_equal(forward_header_decode(buf, sizeof(buf), &h), RR_ECORRUPT);
    le_put_u32(buf + 37, 0);
    assert_int_equal(forward_header_decode(buf, sizeof(buf), &h), RR_ECORRUPT);
}

static void test_bytes_after_the_last_argument_refused(void **state)
{
    (void)state;
    uint8_t buf[128];
    size_t len = encode(buf);
    buf[len] = 'x';
    struct forward_header h;
    assert_int_equal(forward_header_decode(buf, len + 1, &h), 0);
    const uint8_t *argv[3];
    size_t argl[3];
    assert_int_equal(forward_args_decode(buf, len + 1, &h, argv, argl), RR_ECORRUPT);
}

static void test_argument_length_past_the_end_refused(void **state)
{
    (void)state;
    uint8_t buf[128];
    size_t len = encode(buf);
    le_put_u32(buf + FORWARD_HEADER_BYTES, 0xffffffffu);
    struct forward_header h;
    assert_int_equal(forward_header_decode(buf, len, &h), 0);
    const uint8_t *argv[3];
    size_t argl[3];
    assert_int_equal(forward_args_decode(buf, len, &h, argv, argl), RR_ECORRUPT);
}

static void test_reply(void **state)
{
    (void)state;
    uint8_t buf[FORWARD_REPLY_HEADER_BYTES + 5];
    struct forward_reply_header h = {.id = 77, .not_leader = 0, .leader = 2};
    forward_reply_header_encode(buf, &h);
    memcpy(buf + FORWARD_REPLY_HEADER_BYTES, "+OK\r\n", 5);
    struct forward_reply_header got;
    const uint8_t *reply;
    size_t reply_len;
    assert_int_equal(forward_reply_decode(buf, sizeof(buf), &got, &reply, &reply_len), 0);
    assert_int_equal(got.id, 77);
    assert_int_equal(got.leader, 2);
    assert_int_equal(reply_len, 5);
    assert_memory_equal(reply, "+OK\r\n", 5);
    assert_int_equal(
        forward_reply_decode(buf, FORWARD_REPLY_HEADER_BYTES - 1, &got, &reply, &reply_len),
        RR_ETRUNCATED);
    buf[8] = 1; /* not the leader, yet a reply */
    assert_int_equal(forward_reply_decode(buf, sizeof(buf), &got, &reply, &reply_len), RR_ECORRUPT);
    assert_int_equal(
        forward_reply_decode(buf, FORWARD_REPLY_HEADER_BYTES, &got, &reply, &reply_len), 0);
    assert_int_equal(got.not_leader, 1);
    buf[8] = 2;
    assert_int_equal(
        forward_reply_decode(buf, FORWARD_REPLY_HEADER_BYTES, &got, &reply, &reply_len),
        RR_ECORRUPT);
}

static void test_cancel(void **state)
{
    (void)state;
    uint8_t buf[FORWARD_CANCEL_BYTES + 1];
    forward_cancel_encode(buf, &(struct forward_cancel){.id = 5, .group = 9});
    struct forward_cancel c;
    assert_int_equal(forward_cancel_decode(buf, FORWARD_CANCEL_BYTES, &c), 0);
    assert_int_equal(c.id, 5);
    assert_int_equal(c.group, 9);
    assert_int_equal(forward_cancel_decode(buf, FORWARD_CANCEL_BYTES - 1, &c), RR_ECORRUPT);
    assert_int_equal(forward_cancel_decode(buf, FORWARD_CANCEL_BYTES + 1, &c), RR_ECORRUPT);
}

/* forward_check agrees with the two decoders on every truncation and on a byte appended. */
static void test_check(void **state)
{
    (void)state;
    uint8_t buf[128];
    size_t len = encode(buf);
    assert_int_equal(forward_check(buf, len), 0);
    for (size_t n = 0; n < len; n++) {
        assert_int_not_equal(forward_check(buf, n), 0);
    }
    buf[len] = 0;
    assert_int_equal(forward_check(buf, len + 1), RR_ECORRUPT);
    le_put_u32(buf + FORWARD_HEADER_BYTES, 1000); /* the first argument runs past the end */
    assert_int_equal(forward_check(buf, len), RR_ECORRUPT);
}

/* A batch: records of a length field and that many bytes, ending exactly at the payload's
 * end; a record whose length runs past it, or a length field cut short, is refused. */
static void test_batch_records(void **state)
{
    (void)state;
    uint8_t batch[256];
    size_t len = 0;
    size_t fwd = encode(batch + len + FORWARD_RECORD_BYTES);
    forward_record_encode(batch + len, (uint32_t)fwd);
    len += FORWARD_RECORD_BYTES + fwd;
    forward_record_encode(batch + len, 0); /* an empty record: its decoder refuses it */
    len += FORWARD_RECORD_BYTES;
    uint8_t reply[FORWARD_REPLY_HEADER_BYTES + 5];
    forward_reply_header_encode(reply, &(struct forward_reply_header){.id = 3, .leader = 2});
    memcpy(reply + FORWARD_REPLY_HEADER_BYTES, "+OK\r\n", 5);
    forward_record_encode(batch + len, sizeof(reply));
    memcpy(batch + len + FORWARD_RECORD_BYTES, reply, sizeof(reply));
    len += FORWARD_RECORD_BYTES + sizeof(reply);

    size_t off = 0;
    const uint8_t *rec;
    size_t rec_len;
    assert_int_equal(forward_record_next(batch, len, &off, &rec, &rec_len), 1);
    assert_ptr_equal(rec, batch + FORWARD_RECORD_BYTES);
    assert_int_equal(rec_len, fwd);
    assert_int_equal(forward_check(rec, rec_len), 0);
    assert_int_equal(forward_record_next(batch, len, &off, &rec, &rec_len), 1);
    assert_int_equal(rec_len, 0);
    assert_int_not_equal(forward_check(rec, rec_len), 0);
    assert_int_equal(forward_record_next(batch, len, &off, &rec, &rec_len), 1);
    assert_int_equal(rec_len, sizeof(reply));
    assert_memory_equal(rec, reply, sizeof(reply));
    assert_int_equal(forward_record_next(batch, len, &off, &rec, &rec_len), 0);
    assert_int_equal(off, len);

    /* Cut anywhere but at a record's end, the walk fails at the cut. */
    size_t ends[3] = {FORWARD_RECORD_BYTES + fwd, 2 * FORWARD_RECORD_BYTES + fwd, len};
    for (size_t cut = 0; cut < len; cut++) {
        off = 0;
        int rc;
        while ((rc = forward_record_next(batch, cut, &off, &rec, &rec_len)) == 1) {
        }
        bool at_end = cut == 0 || cut == ends[0] || cut == ends[1] || cut == ends[2];
        assert_int_equal(rc, at_end ? 0 : RR_ECORRUPT);
    }
}

static void test_features(void **state)
{
    (void)state;
    uint8_t buf[FORWARD_FEATURES_BYTES + 3] = {0};
    forward_features_encode(buf, FORWARD_FEATURE_BATCH | (1ull << 40));
    assert_true(forward_features_decode(buf, sizeof(buf)) ==
                (FORWARD_FEATURE_BATCH | (1ull << 40)));
    assert_true(forward_features_decode(buf, FORWARD_FEATURES_BYTES) ==
                (FORWARD_FEATURE_BATCH | (1ull << 40)));
    /* Shorter (an empty PING): no features. */
    assert_true(forward_features_decode(buf, FORWARD_FEATURES_BYTES - 1) == 0);
    assert_true(forward_features_decode(buf, 0) == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_every_truncation_refused),
        cmocka_unit_test(test_argc_bounded_by_payload),
        cmocka_unit_test(test_bytes_after_the_last_argument_refused),
        cmocka_unit_test(test_argument_length_past_the_end_refused),
        cmocka_unit_test(test_reply),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_batch_records),
        cmocka_unit_test(test_features),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
