/* Peer frame and handshake tests: round trips, each header field corrupted in turn, every
 * bit flipped, every truncation, handshake mismatches with their reasons, the ack, and
 * seeded random garbage. */
/* cmocka.h needs these four first, in this order. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "core/base/assert.h"
#include "core/base/errors.h"
#include "core/base/prng.h"
#include "io/wire/frame.h"

#define RANDOM_SEED  0x5eed0002u
#define GARBAGE_RUNS 20000u
#define SMALL_MAX    4096u

static uint8_t payload[SMALL_MAX + 1];
static uint8_t frame_buf[FRAME_HEADER_BYTES + SMALL_MAX + 64];

static void on_assert(const char *file, int line, const char *expr)
{
    fail_msg("RR_ASSERT failed at %s:%d: %s", file, line, expr);
}

static int setup(void **state)
{
    (void)state;
    rr_assert_set_handler(on_assert);
    struct rr_prng g;
    rr_prng_seed(&g, RANDOM_SEED);
    for (size_t i = 0; i < sizeof(payload); i++) {
        payload[i] = (uint8_t)rr_prng_next(&g);
    }
    return 0;
}

/* ---- frames ------------------------------------------------------------------------------- */

static size_t make_frame(enum frame_type type, uint32_t len)
{
    return frame_encode(frame_buf, type, payload, len);
}

static void test_frame_roundtrip(void **state)
{
    (void)state;
    static const uint32_t lens[] = {0, 1, 7, 100, 1000, SMALL_MAX};
    for (unsigned t = FRAME_TYPE_MIN; t <= FRAME_TYPE_MAX; t++) {
        for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
            size_t n = make_frame((enum frame_type)t, lens[i]);
            assert_int_equal(n, FRAME_HEADER_BYTES + lens[i]);
            struct frame f;
            assert_int_equal(frame_decode(frame_buf, n, SMALL_MAX, &f), FRAME_COMPLETE);
            assert_int_equal(f.type, t);
            assert_int_equal(f.payload_len, lens[i]);
            assert_int_equal(f.frame_bytes, n);
            assert_ptr_equal(f.payload, frame_buf + FRAME_HEADER_BYTES);
            if (lens[i] > 0) {
                assert_memory_equal(f.payload, payload, lens[i]);
            }
            /* Trailing bytes (the next frame) are not this frame's business. */
            assert_int_equal(frame_decode(frame_buf, n + 5, SMALL_MAX, &f), FRAME_COMPLETE);
            assert_int_equal(f.frame_bytes, n);
        }
    }
}

/* The wire bytes are the documented ones. */
static void test_frame_layout(void **state)
{
    (void)state;
    size_t n = make_frame(FRAME_RAFT, 3);
    assert_int_equal(n, 27);
    static const uint8_t want[16] = {'R', 'R', 'F', '1', 1, 0, 3, 0, 3, 0, 0, 0, 0, 0, 0, 0};
    assert_memory_equal(frame_buf, want, sizeof(want));
    /* The checksum is XXH3-64 of bytes [0,16) followed by the payload. */
    uint8_t flat[16 + 3];
    memcpy(flat, frame_buf, 16);
    memcpy(flat + 16, payload, 3);
    uint64_t sum = 0;
    for (int i = 7; i >= 0; i--) {
        sum = sum << 8 | frame_buf[16 + i];
    }
    uint8_t again[64];
    frame_header_encode(again, FRAME_RAFT, 3);
    memcpy(again + FRAME_HEADER_BYTES, payload, 3);
    assert_int_equal(frame_finalize(again), 27);
    assert_memory_equal(again, frame_buf, 27);
    assert_true(sum == XXH3_64bits(flat, sizeof(flat)));
    assert_int_equal(FRAME_MAGIC, 0x31465252u);
}

/* Every payload size from 0 past the decoder's copy bound (1024 bytes hashed, io/wire/frame.c)
 * to SMALL_MAX, with both sides' ways of hashing, agrees with XXH3-64 of the flat bytes,
 * computed here in one piece; a wrong checksum at each size is refused. */
static void test_frame_checksum_sizes(void **state)
{
    (void)state;
    static uint8_t flat[16 + SMALL_MAX];
    for (uint32_t len = 0; len <= SMALL_MAX; len += len < 1100 ? 1 : 97) {
        size_t n = make_frame(FRAME_FORWARD, len);
        memcpy(flat, frame_buf, 16);
        memcpy(flat + 16, payload, len);
        uint64_t sum = 0;
        for (int i = 7; i >= 0; i--) {
            sum = sum << 8 | frame_buf[16 + i];
        }
        assert_true(sum == XXH3_64bits(flat, 16 + (size_t)len));
        /* The encoder put its header back where it belongs. */
        static const uint8_t want[8] = {'R', 'R', 'F', '1', 1, 0, FRAME_FORWARD, 0};
        assert_memory_equal(frame_buf, want, sizeof(want));
        struct frame f;
        assert_int_equal(frame_decode(frame_buf, n, SMALL_MAX, &f), FRAME_COMPLETE);
        assert_int_equal(f.payload_len, len);
        frame_buf[16] ^= 1;
        assert_int_equal(frame_decode(frame_buf, n, SMALL_MAX, &f), FRAME_E_CHECKSUM);
        frame_buf[16] ^= 1;
        if (len > 0) {
            frame_buf[n - 1] ^= 0x80;
            assert_int_equal(frame_decode(frame_buf, n, SMALL_MAX, &f), FRAME_E_CHECKSUM);
            frame_buf[n - 1] ^= 0x80;
        }
    }
}

/* The node builds payloads in place after the header, then finalizes. */
static void test_frame_build_in_place(void **state)
{
    (void)state;
    uint8_t buf[FRAME_HEADER_BYTES + 64];
    frame_header_encode(buf, FRAME_FORWARD, 64);
    for (unsigned i = 0; i < 64; i++) {
        buf[FRAME_HEADER_BYTES + i] = (uint8_t)i;
    }
    assert_int_equal(frame_finalize(buf), sizeof(buf));
    struct frame f;
    assert_int_equal(frame_decode(buf, sizeof(buf), 64, &f), FRAME_COMPLETE);
    assert_int_equal(f.type, FRAME_FORWARD);
    assert_int_equal(f.payload[63], 63);
}

static void test_frame_pipelined(void **state)
{
    (void)state;
    static uint8_t buf[8192];
    size_t len = 0;
    for (uint32_t i = 0; i < 20; i++) {
        len += frame_encode(buf + len, (enum frame_type)(FRAME_TYPE_MIN + i % 6), payload, i * 13);
    }
    size_t off = 0;
    for (uint32_t i = 0; i < 20; i++) {
        struct frame f;
        assert_int_equal(frame_decode(buf + off, len - off, SMALL_MAX, &f), FRAME_COMPLETE);
        assert_int_equal(f.payload_len, i * 13);
        off += f.frame_bytes;
    }
    assert_int_equal(off, len);
}

static void test_frame_payload_max(void **state)
{
    (void)state;
    struct frame f;
    size_t n = make_frame(FRAME_RAFT, 100);
    assert_int_equal(frame_decode(frame_buf, n, 100, &f), FRAME_COMPLETE);
    assert_int_equal(frame_decode(frame_buf, n, 99, &f), FRAME_E_TOO_LONG);
    /* Refused from the length field alone, before any payload. */
    assert_int_equal(frame_decode(frame_buf, 12, 99, &f), FRAME_E_TOO_LONG);
    assert_int_equal(frame_decode(frame_buf, 11, 99, &f), FRAME_NEED_MORE);
    /* A length the u32 can hold but no node would accept. */
    frame_header_encode(frame_buf, FRAME_RAFT, FRAME_PAYLOAD_MAX_CEILING);
    assert_int_equal(frame_decode(frame_buf, 16, FRAME_PAYLOAD_MAX_DEFAULT, &f), FRAME_E_TOO_LONG);
    frame_buf[11] = 0xff;
    assert_int_equal(frame_decode(frame_buf, 16, FRAME_PAYLOAD_MAX_CEILING, &f), FRAME_E_TOO_LONG);
}

struct corruption {
    const char *name;
    size_t offset; /* byte to change */
    uint8_t value;
    enum frame_status want;
    size_t known_at; /* bytes needed to see it */
};

static const struct corruption corruptions[] = {
    {"magic byte 0", 0, 'r', FRAME_E_MAGIC, 1},
    {"magic byte 1", 1, 0, FRAME_E_MAGIC, 2},
    {"magic byte 2", 2, 'G', FRAME_E_MAGIC, 3},
    {"magic byte 3", 3, '2', FRAME_E_MAGIC, 4},
    {"version 2", 4, 2, FRAME_E_VERSION, 6},
    {"version 0", 4, 0, FRAME_E_VERSION, 6},
    {"version high byte", 5, 1, FRAME_E_VERSION, 6},
    {"type 0", 6, 0, FRAME_E_TYPE, 8},
    {"type 11", 6, 11, FRAME_E_TYPE, 8},
    {"type high byte", 7, 1, FRAME_E_TYPE, 8},
    {"length over the limit", 9, 0x10, FRAME_E_TOO_LONG, 12},
    {"length top byte", 11, 0x80, FRAME_E_TOO_LONG, 12},
    {"flags bit 0", 12, 1, FRAME_E_FLAGS, 16},
    {"flags top bit", 15, 0x80, FRAME_E_FLAGS, 16},
    {"checksum", 16, 0x5a, FRAME_E_CHECKSUM, 24 + 50},
    {"payload", 40, 0x00, FRAME_E_CHECKSUM, 24 + 50},
};

/* Each field corrupted in turn gives its own error, as soon as the field is in, and waits
 * before that. */
static void test_frame_corrupt_fields(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(corruptions) / sizeof(corruptions[0]); i++) {
        const struct corruption *c = &corruptions[i];
        size_t n = make_frame(FRAME_RAFT, 50);
        if (frame_buf[c->offset] == c->value) {
            frame_buf[c->offset] ^= 0xff;
        } else {
            frame_buf[c->offset] = c->value;
        }
        for (size_t len = 0; len <= n; len++) {
            struct frame f;
            enum frame_status s = frame_decode(len > 0 ? frame_buf : NULL, len, 1000, &f);
            enum frame_status want = len < c->known_at ? FRAME_NEED_MORE : c->want;
            if (s != want) {
                fail_msg("%s, %zu bytes: %s, want %s", c->name, len, frame_status_str(s),
                         frame_status_str(want));
            }
        }
    }
    /* The errors are distinct values with distinct names. */
    for (int a = -FRAME_ERROR_COUNT; a <= 1; a++) {
        for (int b = a + 1; b <= 1; b++) {
            assert_string_not_equal(frame_status_str((enum frame_status)a),
                                    frame_status_str((enum frame_status)b));
        }
    }
}

/* A valid frame cut anywhere is only ever "need more". */
static void test_frame_truncated(void **state)
{
    (void)state;
    size_t n = make_frame(FRAME_FORWARD_REPLY, 300);
    for (size_t len = 0; len < n; len++) {
        struct frame f;
        assert_int_equal(frame_decode(len > 0 ? frame_buf : NULL, len, 300, &f), FRAME_NEED_MORE);
    }
}

/* Every single-bit flip is caught: by the checksum in the payload and checksum field, by a
 * field check or the checksum in the header. The one flip that can look like "need more" is
 * a length made larger: the frame then waits for bytes, and the checksum fails once they come
 * (or the peer's liveness timeout ends the connection). */
static void test_frame_bit_flips(void **state)
{
    (void)state;
    const uint32_t plen = 40;
    size_t n = make_frame(FRAME_RAFT, plen);
    static uint8_t orig[FRAME_HEADER_BYTES + 40];
    memcpy(orig, frame_buf, n);
    for (size_t bit = 0; bit < n * 8; bit++) {
        memcpy(frame_buf, orig, n);
        frame_buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        struct frame f;
        enum frame_status s = frame_decode(frame_buf, n, 1u << 20, &f);
        size_t byte = bit / 8;
        if (byte >= 16) {
            assert_int_equal(s, FRAME_E_CHECKSUM);
        } else if (byte >= 8 && byte < 12 && frame_buf[byte] > orig[byte]) {
            assert_true(s == FRAME_NEED_MORE || s == FRAME_E_TOO_LONG);
            /* Once the bytes it waits for arrive, the checksum refuses it. */
            static uint8_t big[FRAME_HEADER_BYTES + (1u << 20)];
            if (s == FRAME_NEED_MORE) {
                uint32_t len = (uint32_t)frame_buf[8] | (uint32_t)frame_buf[9] << 8 |
                               (uint32_t)frame_buf[10] << 16 | (uint32_t)frame_buf[11] << 24;
                memcpy(big, frame_buf, n);
                memset(big + n, 0, FRAME_HEADER_BYTES + len - n);
                assert_int_equal(frame_decode(big, FRAME_HEADER_BYTES + len, 1u << 20, &f),
                                 FRAME_E_CHECKSUM);
            }
        } else {
            assert_true(s < 0);
        }
    }
}

/* ---- handshake ---------------------------------------------------------------------------- */

static const uint8_t secret[] = "correct horse battery staple";

static void expect_init(struct handshake_expect *e)
{
    memset(e, 0, sizeof(*e));
    e->cluster_id = 0x5678;
    e->secret = secret;
    e->secret_len = sizeof(secret) - 1;
    e->self_node = 3;
    e->peer_node = 2;
    e->group_count = 128;
    e->worker_count = 4;
}

/* A handshake from node 2 worker 1 to node 3 that `expect_init` accepts. */
static void hello(struct handshake *hs)
{
    memset(hs, 0, sizeof(*hs));
    hs->version = HANDSHAKE_VERSION;
    hs->cluster_id = 0x5678;
    hs->node = 2;
    hs->worker = 1;
    hs->group_count = 128;
    hs->worker_count = 4;
    hs->receiver_node = 3;
    hs->nonce = 0x0123456789abcdefULL;
    handshake_sign(hs, secret, sizeof(secret) - 1);
}

static void test_handshake_roundtrip(void **state)
{
    (void)state;
    struct handshake hs;
    hello(&hs);
    uint8_t buf[HANDSHAKE_BYTES];
    handshake_encode(buf, &hs);
    /* Carried in a frame like any other payload. */
    size_t n = frame_encode(frame_buf, FRAME_HANDSHAKE, buf, HANDSHAKE_BYTES);
    struct frame f;
    assert_int_equal(frame_decode(frame_buf, n, 64, &f), FRAME_COMPLETE);
    struct handshake got;
    assert_int_equal(handshake_decode(f.payload, f.payload_len, &got), 0);
    assert_memory_equal(&got, &hs, sizeof(hs));
    struct handshake_expect e;
    expect_init(&e);
    char reason[HANDSHAKE_REASON_BYTES];
    assert_int_equal(handshake_check(&got, &e, reason, sizeof(reason)), HANDSHAKE_OK);
    assert_string_equal(reason, "");
    /* peer_node 0: any valid node. */
    e.peer_node = 0;
    assert_int_equal(handshake_check(&got, &e, reason, sizeof(reason)), HANDSHAKE_OK);
}

static void test_handshake_decode_errors(void **state)
{
    (void)state;
    struct handshake hs;
    hello(&hs);
    uint8_t buf[HANDSHAKE_BYTES + 1];
    handshake_encode(buf, &hs);
    struct handshake got;
    for (size_t len = 0; len < HANDSHAKE_BYTES; len++) {
        assert_int_equal(handshake_decode(len > 0 ? buf : NULL, len, &got), RR_ETRUNCATED);
    }
    assert_int_equal(handshake_decode(buf, HANDSHAKE_BYTES + 1, &got), RR_ECORRUPT);
    /* Another version is named, whatever its length. */
    buf[0] = 7;
    assert_int_equal(handshake_decode(buf, 4, &got), RR_EBADVERSION);
    assert_int_equal(got.version, 7);
    struct handshake_expect e;
    expect_init(&e);
    char reason[HANDSHAKE_REASON_BYTES];
    assert_int_equal(handshake_check(&got, &e, reason, sizeof(reason)), HANDSHAKE_REFUSE_VERSION);
    assert_string_equal(reason, "unsupported protocol version 7");
}

struct mismatch {
    const char *name;
    void (*edit)(struct handshake *hs, struct handshake_expect *e);
    bool resign; /* sign again after the edit (the peer computed its proof honestly) */
    enum handshake_refusal want;
    const char *reason;
};

static void edit_cluster(struct handshake *hs, struct handshake_expect *e)
{
    (void)e;
    hs->cluster_id = 0x1234;
}

static void edit_secret(struct handshake *hs, struct handshake_expect *e)
{
    (void)hs;
    e->secret_len--; /* our secret differs from theirs */
}

static void edit_proof(struct handshake *hs, struct handshake_expect *e)
{
    (void)e;
    hs->proof[15] ^= 1;
}

static void edit_nonce_after_signing(struct handshake *hs, struct handshake_expect *e)
{
    (void)e;
    hs->nonce++;
}

static void edit_receiver(struct handshake *hs, struct handshake_expect *e)
{
    (void)e;
    hs->receiver_node = 4;
}

static void edit_node(struct handshake *hs, struct handshake_expect *e)
{
    (void)e;
    hs->node = 5;
}

static void edit_node_zero(struct handshake *hs, struct handshake_expect *e)
{
    e->peer_node = 0;
    hs->node = 0;
}

static void edit_node_self(struct handshake *hs, struct handshake_expect *e)
{
    e->peer_node = 0;
    hs->node = 3;
}

static void edit_groups(struct handshake *hs, struct handshake_expect *e)
{
    (void)e;
    hs->group_count = 64;
}

static void edit_workers(struct handshake *hs, struct handshake_expect *e)
{
    (void)e;
    hs->worker_count = 8;
}

static void edit_worker_id(struct handshake *hs, struct handshake_expect *e)
{
    (void)e;
    hs->worker = 4;
}

static const struct mismatch mismatches[] = {
    {"cluster", edit_cluster, true, HANDSHAKE_REFUSE_CLUSTER,
     "cluster id mismatch: peer 0x1234, ours 0x5678"},
    {"secret", edit_secret, false, HANDSHAKE_REFUSE_SECRET, "bad cluster secret"},
    {"proof", edit_proof, false, HANDSHAKE_REFUSE_SECRET, "bad cluster secret"},
    {"nonce", edit_nonce_after_signing, false, HANDSHAKE_REFUSE_SECRET, "bad cluster secret"},
    {"receiver", edit_receiver, true, HANDSHAKE_REFUSE_RECEIVER,
     "peer addressed node 4 but this is node 3"},
    {"node", edit_node, true, HANDSHAKE_REFUSE_NODE,
     "peer claims node 5 but is configured as node 2"},
    {"node zero", edit_node_zero, true, HANDSHAKE_REFUSE_NODE,
     "peer node id 0 is out of range 1..1024"},
    {"node self", edit_node_self, true, HANDSHAKE_REFUSE_NODE,
     "peer claims node 3, which is this node"},
    {"groups", edit_groups, true, HANDSHAKE_REFUSE_GROUPS,
     "group count mismatch: peer 64, ours 128"},
    {"workers", edit_workers, true, HANDSHAKE_REFUSE_WORKERS,
     "worker count mismatch: peer 8, ours 4"},
    {"worker id", edit_worker_id, true, HANDSHAKE_REFUSE_WORKER_ID,
     "peer worker 4 is out of range (worker count 4)"},
};

static void test_handshake_mismatches(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(mismatches) / sizeof(mismatches[0]); i++) {
        const struct mismatch *m = &mismatches[i];
        struct handshake hs;
        struct handshake_expect e;
        hello(&hs);
        expect_init(&e);
        m->edit(&hs, &e);
        if (m->resign) {
            handshake_sign(&hs, secret, sizeof(secret) - 1);
        }
        /* Through the wire format, as a peer would send it. */
        uint8_t buf[HANDSHAKE_BYTES];
        handshake_encode(buf, &hs);
        struct handshake got;
        assert_int_equal(handshake_decode(buf, sizeof(buf), &got), 0);
        char reason[HANDSHAKE_REASON_BYTES];
        enum handshake_refusal r = handshake_check(&got, &e, reason, sizeof(reason));
        if (r != m->want || strcmp(reason, m->reason) != 0) {
            fail_msg("%s: refusal %d \"%s\", want %d \"%s\"", m->name, (int)r, reason, (int)m->want,
                     m->reason);
        }
        /* A short reason buffer is cut and still terminated; none at all is allowed. */
        char tiny[8];
        assert_int_equal(handshake_check(&got, &e, tiny, sizeof(tiny)), m->want);
        assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
        assert_int_equal(handshake_check(&got, &e, NULL, 0), m->want);
    }
}

/* The proof binds the secret, the nonce, the sender's ids and the cluster id (the seed). */
static void test_handshake_proof_inputs(void **state)
{
    (void)state;
    uint8_t base[HANDSHAKE_PROOF_BYTES];
    uint8_t p[HANDSHAKE_PROOF_BYTES];
    handshake_proof(secret, 10, 1, 2, 3, 4, base);
    handshake_proof(secret, 10, 1, 2, 3, 4, p);
    assert_memory_equal(base, p, sizeof(p));
    handshake_proof(secret, 9, 1, 2, 3, 4, p);
    assert_memory_not_equal(base, p, sizeof(p));
    handshake_proof(secret, 10, 9, 2, 3, 4, p);
    assert_memory_not_equal(base, p, sizeof(p));
    handshake_proof(secret, 10, 1, 9, 3, 4, p);
    assert_memory_not_equal(base, p, sizeof(p));
    handshake_proof(secret, 10, 1, 2, 9, 4, p);
    assert_memory_not_equal(base, p, sizeof(p));
    handshake_proof(secret, 10, 1, 2, 3, 9, p);
    assert_memory_not_equal(base, p, sizeof(p));
    handshake_proof(NULL, 0, 1, 2, 3, 4, p); /* an empty secret is allowed */
    assert_memory_not_equal(base, p, sizeof(p));
    /* It is XXH3-128 of secret || nonce || node || worker, seeded with the cluster id. */
    uint8_t flat[10 + 16] = {0};
    memcpy(flat, secret, 10);
    flat[10] = 2; /* nonce, u64 LE */
    flat[18] = 3; /* node, u32 LE */
    flat[22] = 4; /* worker, u32 LE */
    XXH128_hash_t h = XXH3_128bits_withSeed(flat, sizeof(flat), 1);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(base[i], (uint8_t)(h.low64 >> (8 * i)));
        assert_int_equal(base[8 + i], (uint8_t)(h.high64 >> (8 * i)));
    }
    /* A secret of any length. */
    static uint8_t long_secret[100000];
    memset(long_secret, 's', sizeof(long_secret));
    handshake_proof(long_secret, sizeof(long_secret), 1, 2, 3, 4, p);
    assert_memory_not_equal(base, p, sizeof(p));
}

static void test_handshake_ack(void **state)
{
    (void)state;
    struct handshake_ack a = {.accepted = false, .refusal = HANDSHAKE_REFUSE_GROUPS};
    strcpy(a.reason, "group count mismatch: peer 64, ours 128");
    uint8_t buf[HANDSHAKE_ACK_BYTES + 1];
    handshake_ack_encode(buf, &a);
    struct handshake_ack got;
    assert_int_equal(handshake_ack_decode(buf, HANDSHAKE_ACK_BYTES, &got), 0);
    assert_false(got.accepted);
    assert_int_equal(got.refusal, HANDSHAKE_REFUSE_GROUPS);
    assert_string_equal(got.reason, a.reason);

    struct handshake_ack ok = {.accepted = true, .refusal = HANDSHAKE_OK};
    handshake_ack_encode(buf, &ok);
    assert_int_equal(handshake_ack_decode(buf, HANDSHAKE_ACK_BYTES, &got), 0);
    assert_true(got.accepted);
    assert_string_equal(got.reason, "");

    /* The longest reason, exactly; a longer one is cut. */
    memset(a.reason, 'r', sizeof(a.reason) - 1);
    a.reason[sizeof(a.reason) - 1] = '\0';
    handshake_ack_encode(buf, &a);
    assert_int_equal(handshake_ack_decode(buf, HANDSHAKE_ACK_BYTES, &got), 0);
    assert_int_equal(strlen(got.reason), HANDSHAKE_REASON_BYTES - 1);

    /* Malformed acks. */
    handshake_ack_encode(buf, &ok);
    for (size_t len = 0; len < HANDSHAKE_ACK_BYTES; len++) {
        assert_int_equal(handshake_ack_decode(len > 0 ? buf : NULL, len, &got), RR_ETRUNCATED);
    }
    assert_int_equal(handshake_ack_decode(buf, HANDSHAKE_ACK_BYTES + 1, &got), RR_ECORRUPT);
    uint8_t bad[HANDSHAKE_ACK_BYTES];
    memcpy(bad, buf, sizeof(bad));
    bad[0] = 2;
    assert_int_equal(handshake_ack_decode(bad, sizeof(bad), &got), RR_EBADVERSION);
    memcpy(bad, buf, sizeof(bad));
    bad[4] = 2; /* accepted not a bool */
    assert_int_equal(handshake_ack_decode(bad, sizeof(bad), &got), RR_ECORRUPT);
    memcpy(bad, buf, sizeof(bad));
    bad[6] = HANDSHAKE_REFUSE_CLUSTER; /* accepted with a refusal */
    assert_int_equal(handshake_ack_decode(bad, sizeof(bad), &got), RR_ECORRUPT);
    memcpy(bad, buf, sizeof(bad));
    bad[5] = HANDSHAKE_REASON_BYTES; /* reason length over the limit */
    assert_int_equal(handshake_ack_decode(bad, sizeof(bad), &got), RR_ECORRUPT);
    memcpy(bad, buf, sizeof(bad));
    bad[HANDSHAKE_ACK_BYTES - 1] = 'x'; /* bytes after the reason */
    assert_int_equal(handshake_ack_decode(bad, sizeof(bad), &got), RR_ECORRUPT);

    /* Unprintable reason bytes are made safe to log. */
    handshake_ack_encode(buf, &a);
    buf[5] = 4;
    memcpy(buf + 8, "a\n\0\xff", 4);
    memset(buf + 12, 0, HANDSHAKE_ACK_BYTES - 12);
    buf[4] = 0;
    assert_int_equal(handshake_ack_decode(buf, HANDSHAKE_ACK_BYTES, &got), 0);
    assert_string_equal(got.reason, "a???");
}

/* ---- garbage ------------------------------------------------------------------------------ */

/* Random bytes, random headers with plausible fields, and mutated valid frames: no crash
 * (ASan/UBSan in the debug build), and what is accepted is in bounds. */
static void test_frame_garbage(void **state)
{
    (void)state;
    struct rr_prng g;
    rr_prng_seed(&g, RANDOM_SEED + 1);
    static uint8_t buf[FRAME_HEADER_BYTES + 2048];
    uint32_t counts[FRAME_ERROR_COUNT + 2] = {0};
    for (uint32_t it = 0; it < GARBAGE_RUNS; it++) {
        size_t len = (size_t)rr_prng_range(&g, 0, sizeof(buf) + 1);
        uint32_t mode = it % 3;
        for (size_t i = 0; i < len; i++) {
            buf[i] = (uint8_t)rr_prng_next(&g);
        }
        if (mode >= 1 && len >= FRAME_HEADER_BYTES) {
            uint32_t plen = (uint32_t)rr_prng_range(&g, 0, len - FRAME_HEADER_BYTES + 1);
            frame_header_encode(buf, (enum frame_type)rr_prng_range(&g, 1, 7), plen);
            if (mode == 2) {
                frame_finalize(buf);
            }
            for (uint32_t f = (uint32_t)rr_prng_range(&g, 0, 3); f > 0; f--) {
                buf[rr_prng_range(&g, 0, len)] ^= (uint8_t)(1u << rr_prng_range(&g, 0, 8));
            }
        }
        size_t payload_max = (size_t)rr_prng_range(&g, 1, 4096);
        struct frame f;
        enum frame_status s = frame_decode(len > 0 ? buf : NULL, len, payload_max, &f);
        assert_true(s >= -FRAME_ERROR_COUNT);
        assert_true(s <= FRAME_COMPLETE);
        counts[s + FRAME_ERROR_COUNT]++;
        if (s == FRAME_COMPLETE) {
            assert_true(f.frame_bytes <= len);
            assert_true(f.payload_len <= payload_max);
            assert_int_equal(f.frame_bytes, FRAME_HEADER_BYTES + f.payload_len);
            assert_true(f.type >= FRAME_TYPE_MIN && f.type <= FRAME_TYPE_MAX);
        }
        struct handshake hs;
        int rc = handshake_decode(len > 0 ? buf : NULL, len % (HANDSHAKE_BYTES + 8), &hs);
        assert_true(rc == 0 || rc == RR_ETRUNCATED || rc == RR_EBADVERSION || rc == RR_ECORRUPT);
        struct handshake_ack ack;
        rc = handshake_ack_decode(len > 0 ? buf : NULL, len % (HANDSHAKE_ACK_BYTES + 8), &ack);
        assert_true(rc == 0 || rc == RR_ETRUNCATED || rc == RR_EBADVERSION || rc == RR_ECORRUPT);
        assert_true(strlen(ack.reason) < HANDSHAKE_REASON_BYTES);
    }
    print_message("garbage: complete %u, need more %u, magic %u, version %u, type %u, too long "
                  "%u, flags %u, checksum %u\n",
                  counts[FRAME_ERROR_COUNT + 1], counts[FRAME_ERROR_COUNT], counts[5], counts[4],
                  counts[3], counts[2], counts[1], counts[0]);
    assert_true(counts[FRAME_ERROR_COUNT + 1] > 0);
    assert_true(counts[0] > 0); /* some reached the checksum and failed it */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_roundtrip),      cmocka_unit_test(test_frame_layout),
        cmocka_unit_test(test_frame_build_in_place), cmocka_unit_test(test_frame_pipelined),
        cmocka_unit_test(test_frame_payload_max),    cmocka_unit_test(test_frame_corrupt_fields),
        cmocka_unit_test(test_frame_truncated),      cmocka_unit_test(test_frame_bit_flips),
        cmocka_unit_test(test_handshake_roundtrip),  cmocka_unit_test(test_handshake_decode_errors),
        cmocka_unit_test(test_handshake_mismatches), cmocka_unit_test(test_handshake_proof_inputs),
        cmocka_unit_test(test_handshake_ack),        cmocka_unit_test(test_frame_garbage),
        cmocka_unit_test(test_frame_checksum_sizes),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
