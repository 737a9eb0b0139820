/* Peer frames and handshake. Layouts (docs/wire-format.md, "Peer frames and handshake"),
 * all integers little-endian, written and read byte by byte (no struct casts):
 *
 *   frame header (24):  u32 magic "RRF1", u16 version 1, u16 type, u32 payload length,
 *                       u32 flags 0, u64 checksum = XXH3_64bits(header[0,16) || payload)
 *   handshake (56):     u32 version 1, u64 cluster id, u32 node, u32 worker,
 *                       u32 group count, u32 worker count, u32 receiver node, u64 nonce,
 *                       u8 proof[16]
 *   handshake ack (104): u32 version 1, u8 accepted, u8 reason length (<= 95),
 *                       u16 refusal, u8 reason[96] (zero after its length)
 *
 * The decoder trusts nothing: each header field is checked as soon as its bytes are in
 * (the magic byte by byte), the length against the caller's limit before any payload is
 * awaited, and the checksum before the payload is handed out. */
#include "io/wire/frame.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack: no allocation per frame */
#include <xxhash.h>

#include "core/base/assert.h"
#include "core/base/errors.h"
#include "core/limits.h"

/* Header field offsets. */
#define OFF_MAGIC    0u
#define OFF_VERSION  4u
#define OFF_TYPE     6u
#define OFF_LENGTH   8u
#define OFF_FLAGS    12u
#define OFF_CHECKSUM 16u

/* Handshake field offsets. */
#define HS_OFF_VERSION  0u
#define HS_OFF_CLUSTER  4u
#define HS_OFF_NODE     12u
#define HS_OFF_WORKER   16u
#define HS_OFF_GROUPS   20u
#define HS_OFF_WORKERS  24u
#define HS_OFF_RECEIVER 28u
#define HS_OFF_NONCE    32u
#define HS_OFF_PROOF    40u

/* Ack field offsets. */
#define ACK_OFF_VERSION  0u
#define ACK_OFF_ACCEPTED 4u
#define ACK_OFF_LEN      5u
#define ACK_OFF_REFUSAL  6u
#define ACK_OFF_REASON   8u

_Static_assert(OFF_CHECKSUM == FRAME_HASHED_HEADER, "the checksum follows the hashed header");
_Static_assert(OFF_CHECKSUM + 8 == FRAME_HEADER_BYTES, "the payload follows the checksum");
_Static_assert(HS_OFF_PROOF + HANDSHAKE_PROOF_BYTES == HANDSHAKE_BYTES, "handshake size");
_Static_assert(ACK_OFF_REASON + HANDSHAKE_REASON_BYTES == HANDSHAKE_ACK_BYTES, "ack size");
_Static_assert(HANDSHAKE_REASON_BYTES - 1 <= UINT8_MAX, "reason length fits its u8");
_Static_assert(FRAME_PAYLOAD_MAX_DEFAULT >= RAFT_BATCH_BYTES_MAX,
               "a frame carries the largest batch the codec writes");
_Static_assert(FRAME_PAYLOAD_MAX_DEFAULT <= FRAME_PAYLOAD_MAX_CEILING, "default under ceiling");
_Static_assert(FRAME_PAYLOAD_MAX_CEILING <= UINT32_MAX, "payload length is a u32");

/* ---- little-endian access ----------------------------------------------------------------- */

static void put_le(uint8_t *p, uint64_t v, unsigned width)
{
    for (unsigned i = 0; i < width; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint64_t get_le(const uint8_t *p, unsigned width)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < width; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)get_le(p, 2);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)get_le(p, 4);
}

static uint64_t get64(const uint8_t *p)
{
    return get_le(p, 8);
}

/* ---- frames -------------------------------------------------------------------------------- */

/* The checksum covers header[0,16) and the payload, which the checksum field separates. XXH3's
 * streaming form (reset, two updates, digest) costs several times its one-shot form on the
 * small frames that dominate the peer traffic (forwards, their replies, acks), so both
 * sides hash one contiguous run instead, with the same result: the encoder moves the 16
 * header bytes next to the payload for the hash (frame_finalize), the decoder copies a
 * frame of up to CHECKSUM_COPY_MAX bytes so (larger frames stream: the copy would cost more
 * than the streaming overhead it saves). */
#define CHECKSUM_COPY_MAX 1024u

static uint64_t frame_checksum_streamed(const uint8_t *frame, uint32_t payload_len)
{
    XXH3_state_t st;
    XXH3_INITSTATE(&st);
    (void)XXH3_64bits_reset(&st);
    (void)XXH3_64bits_update(&st, frame, FRAME_HASHED_HEADER);
    (void)XXH3_64bits_update(&st, frame + FRAME_HEADER_BYTES, payload_len);
    return XXH3_64bits_digest(&st);
}

static uint64_t frame_checksum(const uint8_t *frame, uint32_t payload_len)
{
    if (payload_len > CHECKSUM_COPY_MAX - FRAME_HASHED_HEADER) {
        return frame_checksum_streamed(frame, payload_len);
    }
    uint8_t flat[CHECKSUM_COPY_MAX];
    memcpy(flat, frame, FRAME_HASHED_HEADER);
    memcpy(flat + FRAME_HASHED_HEADER, frame + FRAME_HEADER_BYTES, payload_len);
    return XXH3_64bits(flat, FRAME_HASHED_HEADER + (size_t)payload_len);
}

void frame_header_encode(uint8_t *buf, enum frame_type type, uint32_t payload_len)
{
    RR_ASSERT((unsigned)type >= FRAME_TYPE_MIN);
    RR_ASSERT((unsigned)type <= FRAME_TYPE_MAX);
    RR_ASSERT(payload_len <= FRAME_PAYLOAD_MAX_CEILING);
    put_le(buf + OFF_MAGIC, FRAME_MAGIC, 4);
    put_le(buf + OFF_VERSION, FRAME_VERSION, 2);
    put_le(buf + OFF_TYPE, (uint64_t)type, 2);
    put_le(buf + OFF_LENGTH, payload_len, 4);
    put_le(buf + OFF_FLAGS, 0, 4);
    put_le(buf + OFF_CHECKSUM, 0, 8);
}

size_t frame_finalize(uint8_t *buf)
{
    RR_ASSERT(get32(buf + OFF_MAGIC) == FRAME_MAGIC);
    RR_ASSERT(get32(buf + OFF_FLAGS) == 0);
    uint32_t payload_len = get32(buf + OFF_LENGTH);
    /* The hashed header goes to [8,24), right before the payload, for one contiguous hash,
     * then back to [0,16) with the checksum after it. */
    _Static_assert(FRAME_HEADER_BYTES - FRAME_HASHED_HEADER == 8, "the checksum is 8 bytes");
    uint8_t head[FRAME_HASHED_HEADER];
    memcpy(head, buf, sizeof(head));
    memcpy(buf + FRAME_HEADER_BYTES - FRAME_HASHED_HEADER, head, sizeof(head));
    uint64_t sum = XXH3_64bits(buf + FRAME_HEADER_BYTES - FRAME_HASHED_HEADER,
                               FRAME_HASHED_HEADER + (size_t)payload_len);
    memcpy(buf, head, sizeof(head));
    put_le(buf + OFF_CHECKSUM, sum, 8);
    return FRAME_HEADER_BYTES + (size_t)payload_len;
}

size_t
frame_encode(uint8_t *buf, enum frame_type type, const uint8_t *payload, uint32_t payload_len)
{
    RR_ASSERT(payload != NULL || payload_len == 0);
    frame_header_encode(buf, type, payload_len);
    if (payload_len > 0) {
        memmove(buf + FRAME_HEADER_BYTES, payload, payload_len);
    }
    return frame_finalize(buf);
}

/* Header checks, each made once the field's bytes are in. */
static enum frame_status header_check(const uint8_t *buf, size_t len, size_t payload_max)
{
    static const uint8_t magic[4] = {'R', 'R', 'F', '1'};
    for (size_t i = 0; i < 4 && i < len; i++) {
        if (buf[i] != magic[i]) {
            return FRAME_E_MAGIC;
        }
    }
    if (len >= OFF_VERSION + 2 && get16(buf + OFF_VERSION) != FRAME_VERSION) {
        return FRAME_E_VERSION;
    }
    if (len >= OFF_TYPE + 2) {
        uint16_t type = get16(buf + OFF_TYPE);
        if (type < FRAME_TYPE_MIN || type > FRAME_TYPE_MAX) {
            return FRAME_E_TYPE;
        }
    }
    if (len >= OFF_LENGTH + 4 && get32(buf + OFF_LENGTH) > payload_max) {
        return FRAME_E_TOO_LONG;
    }
    if (len >= OFF_FLAGS + 4 && get32(buf + OFF_FLAGS) != 0) {
        return FRAME_E_FLAGS;
    }
    return FRAME_NEED_MORE;
}

enum frame_status
frame_decode(const uint8_t *buf, size_t len, size_t payload_max, struct frame *out)
{
    RR_ASSERT(payload_max > 0);
    RR_ASSERT(payload_max <= FRAME_PAYLOAD_MAX_CEILING);
    RR_ASSERT(buf != NULL || len == 0);
    enum frame_status s = header_check(buf, len, payload_max);
    if (s != FRAME_NEED_MORE || len < FRAME_HEADER_BYTES) {
        return s;
    }
    uint32_t payload_len = get32(buf + OFF_LENGTH);
    if (len - FRAME_HEADER_BYTES < payload_len) {
        return FRAME_NEED_MORE;
    }
    if (frame_checksum(buf, payload_len) != get64(buf + OFF_CHECKSUM)) {
        return FRAME_E_CHECKSUM;
    }
    out->type = get16(buf + OFF_TYPE);
    out->payload = buf + FRAME_HEADER_BYTES;
    out->payload_len = payload_len;
    out->frame_bytes = FRAME_HEADER_BYTES + (size_t)payload_len;
    RR_ASSERT(out->frame_bytes <= len);
    return FRAME_COMPLETE;
}

const char *frame_status_str(enum frame_status s)
{
    switch (s) {
    case FRAME_COMPLETE:
        return "complete";
    case FRAME_NEED_MORE:
        return "need more";
    case FRAME_E_MAGIC:
        return "bad magic";
    case FRAME_E_VERSION:
        return "bad version";
    case FRAME_E_TYPE:
        return "bad type";
    case FRAME_E_TOO_LONG:
        return "payload too long";
    case FRAME_E_FLAGS:
        return "reserved flags set";
    case FRAME_E_CHECKSUM:
        return "bad checksum";
    }
    return "unknown frame status";
}

/* ---- handshake ----------------------------------------------------------------------------- */

void handshake_proof(const uint8_t *secret,
                     size_t secret_len,
                     uint64_t cluster_id,
                     uint64_t nonce,
                     uint32_t node,
                     uint32_t worker,
                     uint8_t proof[HANDSHAKE_PROOF_BYTES])
{
    RR_ASSERT(secret != NULL || secret_len == 0);
    uint8_t tail[16];
    put_le(tail, nonce, 8);
    put_le(tail + 8, node, 4);
    put_le(tail + 12, worker, 4);
    /* Streamed, so the secret may have any length and is never copied. */
    XXH3_state_t st;
    XXH3_INITSTATE(&st);
    (void)XXH3_128bits_reset_withSeed(&st, cluster_id);
    if (secret_len > 0) {
        (void)XXH3_128bits_update(&st, secret, secret_len);
    }
    (void)XXH3_128bits_update(&st, tail, sizeof(tail));
    XXH128_hash_t h = XXH3_128bits_digest(&st);
    put_le(proof, h.low64, 8);
    put_le(proof + 8, h.high64, 8);
}

void handshake_sign(struct handshake *hs, const uint8_t *secret, size_t secret_len)
{
    handshake_proof(secret, secret_len, hs->cluster_id, hs->nonce, hs->node, hs->worker, hs->proof);
}

void handshake_encode(uint8_t buf[HANDSHAKE_BYTES], const struct handshake *hs)
{
    put_le(buf + HS_OFF_VERSION, hs->version, 4);
    put_le(buf + HS_OFF_CLUSTER, hs->cluster_id, 8);
    put_le(buf + HS_OFF_NODE, hs->node, 4);
    put_le(buf + HS_OFF_WORKER, hs->worker, 4);
    put_le(buf + HS_OFF_GROUPS, hs->group_count, 4);
    put_le(buf + HS_OFF_WORKERS, hs->worker_count, 4);
    put_le(buf + HS_OFF_RECEIVER, hs->receiver_node, 4);
    put_le(buf + HS_OFF_NONCE, hs->nonce, 8);
    memcpy(buf + HS_OFF_PROOF, hs->proof, HANDSHAKE_PROOF_BYTES);
}

int handshake_decode(const uint8_t *buf, size_t len, struct handshake *hs)
{
    RR_ASSERT(buf != NULL || len == 0);
    memset(hs, 0, sizeof(*hs));
    if (len < 4) {
        return RR_ETRUNCATED;
    }
    hs->version = get32(buf + HS_OFF_VERSION);
    if (hs->version != HANDSHAKE_VERSION) {
        return RR_EBADVERSION;
    }
    if (len != HANDSHAKE_BYTES) {
        return len < HANDSHAKE_BYTES ? RR_ETRUNCATED : RR_ECORRUPT;
    }
    hs->cluster_id = get64(buf + HS_OFF_CLUSTER);
    hs->node = get32(buf + HS_OFF_NODE);
    hs->worker = get32(buf + HS_OFF_WORKER);
    hs->group_count = get32(buf + HS_OFF_GROUPS);
    hs->worker_count = get32(buf + HS_OFF_WORKERS);
    hs->receiver_node = get32(buf + HS_OFF_RECEIVER);
    hs->nonce = get64(buf + HS_OFF_NONCE);
    memcpy(hs->proof, buf + HS_OFF_PROOF, HANDSHAKE_PROOF_BYTES);
    return 0;
}

/* Compares without an early exit, so the time taken says nothing about where they differ. */
static bool proof_equal(const uint8_t *a, const uint8_t *b)
{
    uint8_t diff = 0;
    for (size_t i = 0; i < HANDSHAKE_PROOF_BYTES; i++) {
        diff |= (uint8_t)(a[i] ^ b[i]);
    }
    return diff == 0;
}

static bool node_valid(uint32_t node)
{
    return node >= 1 && node <= RAFT_NODE_ID_MAX;
}

/* Writes the reason (cut to fit) and returns the refusal. */
__attribute__((format(printf, 4, 5))) static enum handshake_refusal
refuse(enum handshake_refusal r, char *reason, size_t reason_len, const char *fmt, ...)
{
    if (reason_len > 0) {
        va_list ap;
        va_start(ap, fmt);
        (void)vsnprintf(reason, reason_len, fmt, ap);
        va_end(ap);
    }
    return r;
}

/* Identity of the sender: who it says it is and whom it addressed. */
static enum handshake_refusal handshake_check_nodes(const struct handshake *got,
                                                    const struct handshake_expect *mine,
                                                    char *reason,
                                                    size_t reason_len)
{
    if (got->receiver_node != mine->self_node) {
        return refuse(HANDSHAKE_REFUSE_RECEIVER, reason, reason_len,
                      "peer addressed node %" PRIu32 " but this is node %" PRIu32,
                      got->receiver_node, mine->self_node);
    }
    if (!node_valid(got->node)) {
        return refuse(HANDSHAKE_REFUSE_NODE, reason, reason_len,
                      "peer node id %" PRIu32 " is out of range 1..%u", got->node,
                      (unsigned)RAFT_NODE_ID_MAX);
    }
    if (got->node == mine->self_node) {
        return refuse(HANDSHAKE_REFUSE_NODE, reason, reason_len,
                      "peer claims node %" PRIu32 ", which is this node", got->node);
    }
    if (mine->peer_node != 0 && got->node != mine->peer_node) {
        return refuse(HANDSHAKE_REFUSE_NODE, reason, reason_len,
                      "peer claims node %" PRIu32 " but is configured as node %" PRIu32, got->node,
                      mine->peer_node);
    }
    return HANDSHAKE_OK;
}

/* The shape of the cluster: groups, workers, and the sender's worker within it. */
static enum handshake_refusal handshake_check_shape(const struct handshake *got,
                                                    const struct handshake_expect *mine,
                                                    char *reason,
                                                    size_t reason_len)
{
    if (got->group_count != mine->group_count) {
        return refuse(HANDSHAKE_REFUSE_GROUPS, reason, reason_len,
                      "group count mismatch: peer %" PRIu32 ", ours %" PRIu32, got->group_count,
                      mine->group_count);
    }
    if (got->worker_count != mine->worker_count) {
        return refuse(HANDSHAKE_REFUSE_WORKERS, reason, reason_len,
                      "worker count mismatch: peer %" PRIu32 ", ours %" PRIu32, got->worker_count,
                      mine->worker_count);
    }
    if (got->worker >= got->worker_count) {
        return refuse(HANDSHAKE_REFUSE_WORKER_ID, reason, reason_len,
                      "peer worker %" PRIu32 " is out of range (worker count %" PRIu32 ")",
                      got->worker, got->worker_count);
    }
    return HANDSHAKE_OK;
}

enum handshake_refusal handshake_check(const struct handshake *got,
                                       const struct handshake_expect *mine,
                                       char *reason,
                                       size_t reason_len)
{
    RR_ASSERT(reason != NULL || reason_len == 0);
    RR_ASSERT(node_valid(mine->self_node));
    if (reason_len > 0) {
        reason[0] = '\0';
    }
    if (got->version != HANDSHAKE_VERSION) {
        return refuse(HANDSHAKE_REFUSE_VERSION, reason, reason_len,
                      "unsupported protocol version %" PRIu32, got->version);
    }
    if (got->cluster_id != mine->cluster_id) {
        return refuse(HANDSHAKE_REFUSE_CLUSTER, reason, reason_len,
                      "cluster id mismatch: peer 0x%" PRIx64 ", ours 0x%" PRIx64, got->cluster_id,
                      mine->cluster_id);
    }
    uint8_t want[HANDSHAKE_PROOF_BYTES];
    handshake_proof(mine->secret, mine->secret_len, mine->cluster_id, got->nonce, got->node,
                    got->worker, want);
    if (!proof_equal(want, got->proof)) {
        return refuse(HANDSHAKE_REFUSE_SECRET, reason, reason_len, "bad cluster secret");
    }
    enum handshake_refusal r = handshake_check_nodes(got, mine, reason, reason_len);
    if (r != HANDSHAKE_OK) {
        return r;
    }
    return handshake_check_shape(got, mine, reason, reason_len);
}

/* ---- handshake ack ------------------------------------------------------------------------- */

void handshake_ack_encode(uint8_t buf[HANDSHAKE_ACK_BYTES], const struct handshake_ack *ack)
{
    RR_ASSERT(!ack->accepted || ack->refusal == HANDSHAKE_OK);
    size_t n = strnlen(ack->reason, HANDSHAKE_REASON_BYTES - 1);
    memset(buf, 0, HANDSHAKE_ACK_BYTES);
    put_le(buf + ACK_OFF_VERSION, HANDSHAKE_VERSION, 4);
    buf[ACK_OFF_ACCEPTED] = ack->accepted ? 1 : 0;
    buf[ACK_OFF_LEN] = (uint8_t)n;
    put_le(buf + ACK_OFF_REFUSAL, ack->refusal, 2);
    memcpy(buf + ACK_OFF_REASON, ack->reason, n);
}

int handshake_ack_decode(const uint8_t *buf, size_t len, struct handshake_ack *ack)
{
    RR_ASSERT(buf != NULL || len == 0);
    memset(ack, 0, sizeof(*ack));
    if (len < 4) {
        return RR_ETRUNCATED;
    }
    if (get32(buf + ACK_OFF_VERSION) != HANDSHAKE_VERSION) {
        return RR_EBADVERSION;
    }
    if (len != HANDSHAKE_ACK_BYTES) {
        return len < HANDSHAKE_ACK_BYTES ? RR_ETRUNCATED : RR_ECORRUPT;
    }
    uint8_t accepted = buf[ACK_OFF_ACCEPTED];
    uint8_t n = buf[ACK_OFF_LEN];
    uint16_t refusal = get16(buf + ACK_OFF_REFUSAL);
    if (accepted > 1 || (accepted == 1 && refusal != HANDSHAKE_OK)) {
        return RR_ECORRUPT;
    }
    if (n > HANDSHAKE_REASON_BYTES - 1) {
        return RR_ECORRUPT;
    }
    for (size_t i = n; i < HANDSHAKE_REASON_BYTES; i++) {
        if (buf[ACK_OFF_REASON + i] != 0) {
            return RR_ECORRUPT;
        }
    }
    ack->accepted = accepted == 1;
    ack->refusal = refusal;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = buf[ACK_OFF_REASON + i];
        ack->reason[i] = (char)(c >= 0x20 && c < 0x7f ? c : '?');
    }
    ack->reason[n] = '\0';
    return 0;
}
