/* Encoding of messages and batches in a compact, versioned, little-endian binary form.
 * Decoding checks every bound: malformed input is an error result, never a crash.
 *
 * A batch is everything one worker sends to one peer's worker in one drain: a header
 * (version, from, to, record count) and records. A record is one message, or a coalesced
 * set of heartbeats (or heartbeat responses) for many groups. The layout is in
 * docs/wire-format.md. The frame around a batch (magic, length, checksum) and the
 * connection's handshake (cluster id, sender node and worker) are io/wire/frame.c's. */
#ifndef RR_CORE_CODEC_H
#define RR_CORE_CODEC_H

#include "core/msg.h"

#define CODEC_VERSION 1

/* A growable byte buffer (allocated with malloc; limited to RAFT_BATCH_BYTES_MAX). */
struct rr_bytes {
    uint8_t *base;
    size_t len;
    size_t cap;
};
void rr_bytes_init(struct rr_bytes *b);
void rr_bytes_free(struct rr_bytes *b);
/* Ensures room for `more` bytes; RR_ENOMEM or RR_ETOOBIG past RAFT_BATCH_BYTES_MAX. */
int rr_bytes_reserve(struct rr_bytes *b, size_t more);

/* Storage a decode may point entries and a snapshot's configuration into (entry data and
 * chunks point into the input bytes). */
struct codec_scratch {
    struct raft_entry entries[RAFT_APPEND_ENTRIES_MAX];
    struct raft_config config;
};

/* Encoded size of m; RR_EINVAL for a local-only type (RAFT_MSG_PERSISTED) or a message
 * over the limits. */
int codec_msg_encoded_bytes(const struct raft_msg *m, size_t *bytes);
/* Appends m to out. */
int codec_msg_encode(struct rr_bytes *out, const struct raft_msg *m);
/* Decodes exactly one message occupying all of in[0..len). Entries, chunks and a snapshot's
 * configuration point into `in` and `scratch`. Returns 0, RR_ETRUNCATED, RR_EBADTYPE,
 * RR_EBADVERSION, RR_ETOOBIG or RR_ECORRUPT (bad counts, trailing bytes, invalid values). */
int codec_msg_decode(const uint8_t *in,
                     size_t len,
                     struct raft_msg *m,
                     struct codec_scratch *scratch);

/* One group's heartbeat (or heartbeat response: commit is then unused) in a coalesced set. */
struct codec_heartbeat {
    raft_group group;
    raft_term term;
    raft_index commit;
    uint64_t read_ctx;
};

/* Batch writer: begin, add records, end. The header's record count is fixed up by end. */
struct codec_batch_writer {
    struct rr_bytes *out;
    size_t start; /* offset of the batch header in out */
    uint32_t record_count;
};
int codec_batch_begin(struct codec_batch_writer *w,
                      struct rr_bytes *out,
                      raft_node from,
                      raft_node to);
int codec_batch_add_msg(struct codec_batch_writer *w, const struct raft_msg *m);
/* resp=false: RAFT_MSG_HEARTBEAT set; resp=true: RAFT_MSG_HEARTBEAT_RESP set. */
int codec_batch_add_heartbeats(struct codec_batch_writer *w,
                               bool resp,
                               const struct codec_heartbeat *hb,
                               uint32_t count);
void codec_batch_end(struct codec_batch_writer *w);
/* True if nothing was added since begin. */
bool codec_batch_is_empty(const struct codec_batch_writer *w);

/* Batch reader: yields every message, expanding heartbeat sets into single messages. */
struct codec_batch_reader {
    const uint8_t *in;
    size_t len;
    size_t pos;
    raft_node from;
    raft_node to;
    uint32_t records_left;
    /* Inside a heartbeat set: */
    bool hb_resp;
    uint32_t hb_left;
};
int codec_batch_open(struct codec_batch_reader *r, const uint8_t *in, size_t len);
/* 1: *m filled; 0: end of batch (all bytes consumed); < 0: malformed batch. */
int codec_batch_next(struct codec_batch_reader *r,
                     struct raft_msg *m,
                     struct codec_scratch *scratch);

/* Configuration entries' payload. */
int codec_config_encode(struct rr_bytes *out, const struct raft_config *c);
int codec_config_decode(const uint8_t *in, size_t len, struct raft_config *c);

#endif
