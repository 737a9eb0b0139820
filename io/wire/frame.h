/* Peer frames and the connection handshake: the framing of everything nodes send each other
 * over TCP, checksummed, with every field checked before it is used.
 *
 * A frame is a 24-byte header and a payload (docs/wire-format.md, "Peer frames and
 * handshake"); all integers little-endian:
 *
 *   0  u32 magic     FRAME_MAGIC: the bytes "RRF1"
 *   4  u16 version   FRAME_VERSION (1)
 *   6  u16 type      enum frame_type
 *   8  u32 length    payload bytes, <= the decoder's payload_max
 *  12  u32 flags     reserved, 0
 *  16  u64 checksum  XXH3_64bits of header bytes [0,16) followed by the payload
 *  24  payload
 *
 * The decoder rejects a bad field as soon as that field's bytes are in (a peer speaking
 * another protocol is refused at its first wrong magic byte, never waited on), and checks
 * the checksum once the whole frame is in, before anyone looks at the payload.
 *
 * The handshake is the dialing side's first frame: FRAME_HANDSHAKE, answered by the
 * accepting side with FRAME_HANDSHAKE_ACK. Its proof of the cluster secret guards against
 * misconfigured or foreign nodes, not against an attacker on the network: it is not
 * cryptographic, the nonce is the sender's (a recorded handshake can be replayed), and
 * nothing after it is authenticated or encrypted. */
#ifndef RR_IO_WIRE_FRAME_H
#define RR_IO_WIRE_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FRAME_MAGIC         0x31465252u /* "RRF1" as bytes: 'R' 'R' 'F' '1' */
#define FRAME_VERSION       1u
#define FRAME_HEADER_BYTES  24u
#define FRAME_HASHED_HEADER 16u /* header bytes covered by the checksum */

/* Default and largest payload_max. The default fits the largest codec batch
 * (RAFT_BATCH_BYTES_MAX) so a FRAME_RAFT is never refused for a batch the core may make. */
#define FRAME_PAYLOAD_MAX_DEFAULT (64u << 20)
#define FRAME_PAYLOAD_MAX_CEILING (1u << 30)

enum frame_type {
    FRAME_HANDSHAKE = 1,            /* payload: struct handshake (HANDSHAKE_BYTES) */
    FRAME_HANDSHAKE_ACK = 2,        /* payload: struct handshake_ack (HANDSHAKE_ACK_BYTES) */
    FRAME_RAFT = 3,                 /* payload: a core/codec batch (opaque here) */
    FRAME_FORWARD = 4,              /* payload: defined by the node (opaque here) */
    FRAME_FORWARD_REPLY = 5,        /* payload: defined by the node (opaque here) */
    FRAME_PING = 6,                 /* payload: defined by the node (opaque here) */
    FRAME_FORWARD_CANCEL = 7,       /* payload: defined by the node (opaque here) */
    FRAME_NODESET = 8,              /* payload: defined by the node (opaque here) */
    FRAME_FORWARD_BATCH = 9,        /* payload: defined by the node (opaque here) */
    FRAME_FORWARD_REPLY_BATCH = 10, /* payload: defined by the node (opaque here) */
};
#define FRAME_TYPE_MIN 1u
#define FRAME_TYPE_MAX 10u

/* Outcome of frame_decode. The errors are distinct so the node can count each kind. */
enum frame_status {
    FRAME_COMPLETE = 1,  /* *out holds one frame */
    FRAME_NEED_MORE = 0, /* a valid prefix: read more */
    FRAME_E_MAGIC = -1,
    FRAME_E_VERSION = -2,
    FRAME_E_TYPE = -3,
    FRAME_E_TOO_LONG = -4, /* length > payload_max */
    FRAME_E_FLAGS = -5,    /* reserved bits set */
    FRAME_E_CHECKSUM = -6,
};
#define FRAME_ERROR_COUNT 6 /* errors are -1 .. -FRAME_ERROR_COUNT */

struct frame {
    uint16_t type;          /* enum frame_type */
    const uint8_t *payload; /* into the decoder's input; valid while the input is */
    uint32_t payload_len;   /* <= payload_max */
    size_t frame_bytes;     /* FRAME_HEADER_BYTES + payload_len: consume this many */
};

/* Decodes the frame at the start of buf[0..len) (len may be 0). payload_max is the node's
 * configured limit, 0 < payload_max <= FRAME_PAYLOAD_MAX_CEILING (asserted). Pure: looks at
 * buf only, keeps no state; a caller whose frames arrive in pieces calls again with more. */
enum frame_status
frame_decode(const uint8_t *buf, size_t len, size_t payload_max, struct frame *out);

/* Static name of a status ("complete", "bad magic", ...), for logs and counters. */
const char *frame_status_str(enum frame_status s);

/* Writes the 24-byte header of a frame with a payload_len-byte payload into buf, with a
 * zero checksum. The payload goes at buf + FRAME_HEADER_BYTES; then call frame_finalize. */
void frame_header_encode(uint8_t *buf, enum frame_type type, uint32_t payload_len);
/* Writes the checksum of the frame in buf (header from frame_header_encode, payload in
 * place after it). Returns the frame's total bytes. */
size_t frame_finalize(uint8_t *buf);
/* Header, payload copy and checksum into buf, which has room for FRAME_HEADER_BYTES +
 * payload_len bytes. Returns the frame's total bytes. */
size_t
frame_encode(uint8_t *buf, enum frame_type type, const uint8_t *payload, uint32_t payload_len);

/* ---- handshake ---------------------------------------------------------------------------- */

#define HANDSHAKE_VERSION      1u
#define HANDSHAKE_BYTES        56u
#define HANDSHAKE_ACK_BYTES    104u
#define HANDSHAKE_REASON_BYTES 96u /* reason text with its NUL */
#define HANDSHAKE_PROOF_BYTES  16u

/* What a node says about itself when it connects (payload of FRAME_HANDSHAKE). */
struct handshake {
    uint32_t version;       /* HANDSHAKE_VERSION */
    uint64_t cluster_id;    /* the cluster the sender belongs to */
    uint32_t node;          /* sender's node id, 1..RAFT_NODE_ID_MAX */
    uint32_t worker;        /* sender's worker (the connection's end), < worker_count */
    uint32_t group_count;   /* G: Raft groups in the cluster */
    uint32_t worker_count;  /* W: workers per node */
    uint32_t receiver_node; /* node id the sender believes it is talking to */
    uint64_t nonce;         /* chosen by the sender, different on every connection */
    uint8_t proof[HANDSHAKE_PROOF_BYTES]; /* handshake_proof() of the above */
};

/* Reasons a handshake is refused; sent in the ack. */
enum handshake_refusal {
    HANDSHAKE_OK = 0,
    HANDSHAKE_REFUSE_VERSION = 1,
    HANDSHAKE_REFUSE_MALFORMED = 2,
    HANDSHAKE_REFUSE_CLUSTER = 3,
    HANDSHAKE_REFUSE_SECRET = 4,
    HANDSHAKE_REFUSE_RECEIVER = 5, /* addressed to another node */
    HANDSHAKE_REFUSE_NODE = 6,     /* sender is not the node this connection is for */
    HANDSHAKE_REFUSE_GROUPS = 7,
    HANDSHAKE_REFUSE_WORKERS = 8,
    HANDSHAKE_REFUSE_WORKER_ID = 9,
    HANDSHAKE_REFUSE_OTHER = 10, /* the node's own reasons (shutting down, duplicate, ...) */
};

/* The receiving side's configuration, which a handshake must match. */
struct handshake_expect {
    uint64_t cluster_id;
    const uint8_t *secret; /* cluster secret, any length (0 allowed but pointless) */
    size_t secret_len;
    uint32_t self_node;   /* our node id: the peer must address this node */
    uint32_t peer_node;   /* node this connection is configured for; 0: any valid node */
    uint32_t group_count; /* ours */
    uint32_t worker_count;
};

/* XXH3_128bits_withSeed(secret || u64 nonce || u32 node || u32 worker, seed = cluster_id),
 * integers little-endian; written low 64 bits first, each little-endian. */
void handshake_proof(const uint8_t *secret,
                     size_t secret_len,
                     uint64_t cluster_id,
                     uint64_t nonce,
                     uint32_t node,
                     uint32_t worker,
                     uint8_t proof[HANDSHAKE_PROOF_BYTES]);
/* Fills hs->proof from the other fields and the secret. */
void handshake_sign(struct handshake *hs, const uint8_t *secret, size_t secret_len);

void handshake_encode(uint8_t buf[HANDSHAKE_BYTES], const struct handshake *hs);
/* Decodes a FRAME_HANDSHAKE payload. 0; RR_ETRUNCATED if shorter than its version field;
 * RR_EBADVERSION for another version (only hs->version is set, so handshake_check can still
 * name it); RR_ECORRUPT if not exactly HANDSHAKE_BYTES long. */
int handshake_decode(const uint8_t *buf, size_t len, struct handshake *hs);

/* 0 if `got` matches `mine`, else the refusal, with a message naming the mismatch written
 * to reason[0..reason_len) (always NUL-terminated if reason_len > 0), e.g.
 * "cluster id mismatch: peer 0x1234, ours 0x5678". Checks, in order: version, cluster id,
 * secret, receiver node, sender node, group count, worker count, sender worker. */
enum handshake_refusal handshake_check(const struct handshake *got,
                                       const struct handshake_expect *mine,
                                       char *reason,
                                       size_t reason_len);

/* The answer to a handshake (payload of FRAME_HANDSHAKE_ACK). */
struct handshake_ack {
    bool accepted;
    uint16_t refusal;                    /* enum handshake_refusal; HANDSHAKE_OK if accepted */
    char reason[HANDSHAKE_REASON_BYTES]; /* NUL-terminated; printable ASCII after decode */
};

/* Encodes ack; a reason longer than HANDSHAKE_REASON_BYTES - 1 is cut. */
void handshake_ack_encode(uint8_t buf[HANDSHAKE_ACK_BYTES], const struct handshake_ack *ack);
/* Decodes a FRAME_HANDSHAKE_ACK payload: 0, RR_ETRUNCATED, RR_EBADVERSION or RR_ECORRUPT
 * (wrong length, accepted not 0/1, accepted with a refusal, reason length over the limit,
 * bytes after the reason not zero). Bytes of the reason outside printable ASCII become '?'
 * so it can be logged as is. */
int handshake_ack_decode(const uint8_t *buf, size_t len, struct handshake_ack *ack);

#endif
