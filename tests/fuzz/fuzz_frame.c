/* libFuzzer target: the peer frame decoder and the handshake codec (io/wire/frame.c).
 *
 * Input: 2 control bytes, then the bytes a peer sends.
 *   byte 0  bit 0: fix checksums: before decoding, every frame whose header and payload
 *           are complete gets its correct checksum (the fuzzer cannot forge xxh3, and
 *           without this nothing past the checksum would be reached); bits 1..2:
 *           payload_max: the default, HANDSHAKE_BYTES, HANDSHAKE_ACK_BYTES, or 1 + byte 1
 *   byte 1  see above; also the length of the reason buffer given to handshake_check
 *
 * The stream is decoded frame after frame as a peer connection does (io/peer.c), each
 * decode given only the bytes from the frame's start (an exact-size copy, so reads past
 * the end are caught). Properties checked:
 *   - a complete frame has a known type, a payload within payload_max inside the input,
 *     and re-encodes (frame_encode) to exactly its bytes;
 *   - every prefix of a complete frame is FRAME_NEED_MORE, and every prefix of a refused
 *     one is FRAME_NEED_MORE or the same refusal (a refusal never needs more bytes, and
 *     more bytes never turn a refusal into a frame);
 *   - on every payload and on the raw stream: a handshake that decodes re-encodes to the
 *     same 56 bytes; handshake_check answers a known refusal with a NUL-terminated reason
 *     within its buffer, accepts only a proof made with the secret, and names the version
 *     when the decoder refused one; an ack that decodes has a printable, NUL-terminated
 *     reason of at most 95 bytes, no refusal when accepted, and decodes the same after
 *     re-encoding. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#include "core/base/errors.h"
#include "core/limits.h"
#include "io/wire/frame.h"
#include "tests/fuzz/fuzz.h"

static const uint8_t secret[] = "fuzz-cluster-secret";

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Writes the right checksum into every complete frame of buf (the framing the encoder
 * uses: xxh3 of header bytes [0, 16) and the payload, little-endian at 16). */
static void fix_checksums(uint8_t *buf, size_t len)
{
    size_t off = 0;
    while (len - off >= FRAME_HEADER_BYTES) {
        uint32_t payload_len = get32(buf + off + 8);
        if (len - off - FRAME_HEADER_BYTES < payload_len) {
            return;
        }
        XXH3_state_t st;
        XXH3_INITSTATE(&st);
        (void)XXH3_64bits_reset(&st);
        (void)XXH3_64bits_update(&st, buf + off, FRAME_HASHED_HEADER);
        (void)XXH3_64bits_update(&st, buf + off + FRAME_HEADER_BYTES, payload_len);
        uint64_t sum = XXH3_64bits_digest(&st);
        for (unsigned i = 0; i < 8; i++) {
            buf[off + 16 + i] = (uint8_t)(sum >> (8 * i));
        }
        off += FRAME_HEADER_BYTES + payload_len;
    }
}

static void check_handshake(const uint8_t *p, size_t len, size_t reason_len)
{
    struct handshake hs;
    int rc = handshake_decode(p, len, &hs);
    FUZZ_CHECK(rc == 0 || rc == RR_ETRUNCATED || rc == RR_EBADVERSION || rc == RR_ECORRUPT,
               "handshake_decode returned %d", rc);
    if (rc == 0) {
        FUZZ_CHECK(len == HANDSHAKE_BYTES && hs.version == HANDSHAKE_VERSION,
                   "accepted a handshake of %zu bytes, version %u", len, hs.version);
        uint8_t enc[HANDSHAKE_BYTES];
        handshake_encode(enc, &hs);
        FUZZ_CHECK(memcmp(enc, p, HANDSHAKE_BYTES) == 0, "handshake does not re-encode");
    }
    if (rc != 0 && rc != RR_EBADVERSION) {
        return;
    }
    /* What the node checks a handshake against (io/peer.c accept_handshake). */
    struct handshake_expect mine = {.cluster_id = hs.cluster_id ^ (len & 1u),
                                    .secret = secret,
                                    .secret_len = sizeof(secret) - 1,
                                    .self_node = 1 + (hs.receiver_node % RAFT_NODE_ID_MAX),
                                    .peer_node = hs.nonce & 1u ? 0 : hs.node,
                                    .group_count = hs.group_count,
                                    .worker_count = hs.worker_count};
    char reason[HANDSHAKE_REASON_BYTES + 1];
    memset(reason, 'x', sizeof(reason));
    enum handshake_refusal r =
        handshake_check(&hs, &mine, reason_len > 0 ? reason : NULL, reason_len);
    FUZZ_CHECK((unsigned)r <= HANDSHAKE_REFUSE_WORKER_ID && r != HANDSHAKE_REFUSE_MALFORMED,
               "handshake_check answered %d", (int)r);
    FUZZ_CHECK(reason_len == 0 || memchr(reason, '\0', reason_len) != NULL,
               "reason not NUL-terminated within its %zu bytes", reason_len);
    FUZZ_CHECK(reason_len > sizeof(reason) - 1 || reason[reason_len] == 'x',
               "reason written past its %zu bytes", reason_len);
    if (rc == RR_EBADVERSION) {
        FUZZ_CHECK(r == HANDSHAKE_REFUSE_VERSION, "another version passed handshake_check");
    }
    if (r > HANDSHAKE_REFUSE_SECRET || r == HANDSHAKE_OK) {
        uint8_t proof[HANDSHAKE_PROOF_BYTES];
        handshake_proof(secret, sizeof(secret) - 1, mine.cluster_id, hs.nonce, hs.node, hs.worker,
                        proof);
        FUZZ_CHECK(memcmp(proof, hs.proof, sizeof(proof)) == 0,
                   "a handshake without the secret's proof got past the secret check");
    }
}

static void check_ack(const uint8_t *p, size_t len)
{
    struct handshake_ack ack;
    int rc = handshake_ack_decode(p, len, &ack);
    FUZZ_CHECK(rc == 0 || rc == RR_ETRUNCATED || rc == RR_EBADVERSION || rc == RR_ECORRUPT,
               "handshake_ack_decode returned %d", rc);
    if (rc != 0) {
        return;
    }
    FUZZ_CHECK(len == HANDSHAKE_ACK_BYTES, "accepted an ack of %zu bytes", len);
    FUZZ_CHECK(!ack.accepted || ack.refusal == HANDSHAKE_OK, "accepted with refusal %u",
               ack.refusal);
    size_t n = strnlen(ack.reason, sizeof(ack.reason));
    FUZZ_CHECK(n <= HANDSHAKE_REASON_BYTES - 1, "reason not NUL-terminated");
    FUZZ_CHECK(n == p[5], "reason of %zu bytes, the ack said %u", n, p[5]);
    for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK(ack.reason[i] >= 0x20 && ack.reason[i] < 0x7f, "reason byte %zu unprintable", i);
    }
    uint8_t enc[HANDSHAKE_ACK_BYTES];
    handshake_ack_encode(enc, &ack);
    struct handshake_ack again;
    FUZZ_CHECK(handshake_ack_decode(enc, sizeof(enc), &again) == 0, "re-encoded ack refused");
    FUZZ_CHECK(again.accepted == ack.accepted && again.refusal == ack.refusal &&
                   strcmp(again.reason, ack.reason) == 0,
               "ack changed through re-encoding");
    /* Bytes are the same unless the decoder replaced unprintable ones with '?'. */
    for (size_t i = 0; i < HANDSHAKE_ACK_BYTES; i++) {
        FUZZ_CHECK(enc[i] == p[i] || (i >= 8 && i < 8 + n && enc[i] == '?'),
                   "re-encoded ack differs at byte %zu", i);
    }
}

static void check_frame(const uint8_t *p, size_t len, size_t payload_max, const struct frame *f)
{
    FUZZ_CHECK(f->type >= FRAME_TYPE_MIN && f->type <= FRAME_TYPE_MAX, "frame type %u", f->type);
    FUZZ_CHECK(f->payload_len <= payload_max, "payload %u over %zu", f->payload_len, payload_max);
    FUZZ_CHECK(f->frame_bytes == FRAME_HEADER_BYTES + (size_t)f->payload_len &&
                   f->frame_bytes <= len && f->payload == p + FRAME_HEADER_BYTES,
               "frame of %zu bytes, payload %u, input %zu", f->frame_bytes, f->payload_len, len);
    uint8_t *enc = malloc(f->frame_bytes);
    FUZZ_CHECK(enc != NULL, "out of memory");
    size_t n = frame_encode(enc, (enum frame_type)f->type, f->payload, f->payload_len);
    FUZZ_CHECK(n == f->frame_bytes && memcmp(enc, p, n) == 0, "frame does not re-encode");
    free(enc);
}

/* Prefixes of the frame at p: needing more bytes, or the same refusal as the whole. */
static void check_prefixes(const uint8_t *p, size_t len, size_t payload_max, enum frame_status st)
{
    size_t upto = st == FRAME_COMPLETE ? FRAME_HEADER_BYTES + (size_t)get32(p + 8) : len;
    size_t probes[FRAME_HEADER_BYTES + 2];
    size_t count = 0;
    for (size_t k = 0; k <= FRAME_HEADER_BYTES && k < upto; k++) {
        probes[count++] = k;
    }
    if (upto > FRAME_HEADER_BYTES + 1) {
        probes[count++] = upto - 1;
    }
    for (size_t i = 0; i < count; i++) {
        uint8_t *cut = fuzz_dup(p, probes[i]);
        struct frame f;
        enum frame_status s = frame_decode(cut, probes[i], payload_max, &f);
        free(cut);
        FUZZ_CHECK(s == FRAME_NEED_MORE || (st != FRAME_COMPLETE && s == st),
                   "prefix of %zu bytes: %s, whole: %s", probes[i], frame_status_str(s),
                   frame_status_str(st));
    }
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
    static const size_t maxes[3] = {FRAME_PAYLOAD_MAX_DEFAULT, HANDSHAKE_BYTES,
                                    HANDSHAKE_ACK_BYTES};
    size_t payload_max = ((flags >> 1) & 3u) < 3 ? maxes[(flags >> 1) & 3u] : 1u + b1;
    size_t reason_len = b1 % (HANDSHAKE_REASON_BYTES + 1);

    uint8_t *buf = fuzz_dup(in.p, in.left);
    size_t len = in.left;
    if (flags & 1u) {
        fix_checksums(buf, len);
    }
    check_handshake(buf, len, reason_len);
    check_ack(buf, len);
    size_t off = 0;
    for (;;) { /* bounded: every frame is at least FRAME_HEADER_BYTES */
        uint8_t *rest = fuzz_dup(buf + off, len - off);
        struct frame f;
        enum frame_status st = frame_decode(rest, len - off, payload_max, &f);
        FUZZ_CHECK(st >= -FRAME_ERROR_COUNT && st <= FRAME_COMPLETE, "status %d", (int)st);
        check_prefixes(rest, len - off, payload_max, st);
        if (st == FRAME_COMPLETE) {
            check_frame(rest, len - off, payload_max, &f);
            check_handshake(f.payload, f.payload_len, reason_len);
            check_ack(f.payload, f.payload_len);
            off += f.frame_bytes;
        }
        free(rest);
        if (st != FRAME_COMPLETE) {
            break;
        }
    }
    free(buf);
    return 0;
}
