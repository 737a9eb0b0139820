/* libFuzzer target: the payloads of the forwarding frames (io/wire/forward.c), which a peer
 * node sends and io/route.c acts on.
 *
 * Input: 1 control byte (which payload: 0 FORWARD, 1 FORWARD_REPLY, 2 FORWARD_CANCEL, by
 * its value mod 3), then the payload, copied to an exact-size buffer so a read past its end
 * is caught. Properties checked:
 *   - a FORWARD header that decodes has 1 <= argc <= FORWARD_ARGC_MAX and room in the
 *     payload for argc length fields (what the node sizes its argument arrays from);
 *   - arguments that decode lie inside the payload, end exactly at its end, and the header
 *     and arguments re-encode to exactly the payload's bytes;
 *   - a reply that decodes has not_leader 0 or 1, no reply bytes beside not_leader, its
 *     reply inside the payload, and re-encodes to the payload;
 *   - a cancel decodes only from 12 bytes, and re-encodes to them;
 *   - forward_check accepts a FORWARD exactly when both its decoders do;
 *   - the payload walked as a batch (whatever the control byte): every record lies inside
 *     it, after the previous one, and the walk ends without error only exactly at its end. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/errors.h"
#include "io/wire/forward.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_setup();
    return 0;
}

static void check_forward(const uint8_t *p, size_t len)
{
    struct forward_header h;
    int checked = forward_check(p, len);
    int rc = forward_header_decode(p, len, &h);
    FUZZ_CHECK(rc == 0 || rc == RR_ETRUNCATED || rc == RR_ECORRUPT,
               "forward_header_decode returned %d", rc);
    if (rc != 0) {
        FUZZ_CHECK(rc != RR_ETRUNCATED || len < FORWARD_HEADER_BYTES, "truncated at %zu", len);
        FUZZ_CHECK(checked == rc, "forward_check %d, header decode %d", checked, rc);
        return;
    }
    FUZZ_CHECK(h.argc >= 1 && h.argc <= FORWARD_ARGC_MAX, "argc %u", h.argc);
    FUZZ_CHECK((size_t)h.argc * 4 <= len - FORWARD_HEADER_BYTES, "argc %u does not fit %zu bytes",
               h.argc, len);
    const uint8_t **argv = malloc(h.argc * sizeof(*argv));
    size_t *argl = malloc(h.argc * sizeof(*argl));
    uint32_t *argl32 = malloc(h.argc * sizeof(*argl32));
    FUZZ_CHECK(argv != NULL && argl != NULL && argl32 != NULL, "out of memory");
    int args_rc = forward_args_decode(p, len, &h, argv, argl);
    FUZZ_CHECK(checked == args_rc, "forward_check %d, argument decode %d", checked, args_rc);
    if (args_rc == 0) {
        for (uint32_t i = 0; i < h.argc; i++) {
            FUZZ_CHECK(argv[i] >= p + FORWARD_HEADER_BYTES && argv[i] + argl[i] <= p + len,
                       "argument %u outside the payload", i);
            argl32[i] = (uint32_t)argl[i];
        }
        size_t args = forward_args_bytes(h.argc, argl32);
        FUZZ_CHECK(FORWARD_HEADER_BYTES + args == len, "arguments end at %zu of %zu",
                   FORWARD_HEADER_BYTES + args, len);
        uint8_t *enc = malloc(len);
        FUZZ_CHECK(enc != NULL, "out of memory");
        forward_header_encode(enc, &h);
        forward_args_encode(enc + FORWARD_HEADER_BYTES, h.argc, argv, argl32);
        FUZZ_CHECK(memcmp(enc, p, len) == 0, "forward does not re-encode");
        free(enc);
    }
    free(argv);
    free(argl);
    free(argl32);
}

static void check_reply(const uint8_t *p, size_t len)
{
    struct forward_reply_header h;
    const uint8_t *reply;
    size_t reply_len;
    int rc = forward_reply_decode(p, len, &h, &reply, &reply_len);
    FUZZ_CHECK(rc == 0 || rc == RR_ETRUNCATED || rc == RR_ECORRUPT,
               "forward_reply_decode returned %d", rc);
    if (rc != 0) {
        return;
    }
    FUZZ_CHECK(h.not_leader <= 1 && (h.not_leader == 0 || reply_len == 0),
               "not_leader %u with %zu reply bytes", h.not_leader, reply_len);
    FUZZ_CHECK(reply == p + FORWARD_REPLY_HEADER_BYTES &&
                   FORWARD_REPLY_HEADER_BYTES + reply_len == len,
               "reply outside the payload");
    uint8_t enc[FORWARD_REPLY_HEADER_BYTES];
    forward_reply_header_encode(enc, &h);
    FUZZ_CHECK(memcmp(enc, p, sizeof(enc)) == 0, "reply header does not re-encode");
}

static void check_cancel(const uint8_t *p, size_t len)
{
    struct forward_cancel c;
    int rc = forward_cancel_decode(p, len, &c);
    FUZZ_CHECK((rc == 0) == (len == FORWARD_CANCEL_BYTES), "cancel of %zu bytes: %d", len, rc);
    if (rc == 0) {
        uint8_t enc[FORWARD_CANCEL_BYTES];
        forward_cancel_encode(enc, &c);
        FUZZ_CHECK(memcmp(enc, p, len) == 0, "cancel does not re-encode");
    }
}

static void check_batch(const uint8_t *p, size_t len)
{
    size_t off = 0, prev = 0;
    const uint8_t *rec;
    size_t rec_len;
    int rc;
    while ((rc = forward_record_next(p, len, &off, &rec, &rec_len)) == 1) {
        FUZZ_CHECK(rec == p + prev + FORWARD_RECORD_BYTES && rec + rec_len == p + off && off <= len,
                   "record at %zu outside the batch", prev);
        prev = off;
    }
    FUZZ_CHECK(rc == 0 || rc == RR_ECORRUPT, "forward_record_next returned %d", rc);
    FUZZ_CHECK(rc != 0 || off == len, "batch walk ended at %zu of %zu", off, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    uint8_t which = fuzz_u8(&in) % 3;
    uint8_t *p = malloc(in.left > 0 ? in.left : 1);
    FUZZ_CHECK(p != NULL, "out of memory");
    if (in.left > 0) {
        memcpy(p, in.p, in.left);
    }
    switch (which) {
    case 0:
        check_forward(p, in.left);
        break;
    case 1:
        check_reply(p, in.left);
        break;
    default:
        check_cancel(p, in.left);
        break;
    }
    check_batch(p, in.left);
    free(p);
    return 0;
}
