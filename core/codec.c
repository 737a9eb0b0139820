/* Message, batch and configuration codec. docs/wire-format.md is the normative layout; in
 * short, all integers are fixed-width little-endian:
 *
 *   message   = u8 version, u8 type, u32 group, u32 from, u32 to, u64 term, body
 *   config    = u8 version, config_body
 *   config_body = u8 member_count, u8 old_member_count, (u32 id, u8 role) * (both counts)
 *   batch     = u8 version, u32 from, u32 to, u32 record_count, record * record_count
 *   record    = u8 kind, u32 body_len, body[body_len]
 *
 * The encoder and the decoder share one set of value checks (msg_check, config_check):
 * whatever the encoder accepts the decoder accepts, and the encoder refuses (RR_EINVAL)
 * whatever a peer would refuse, so a bad message is caught where it was made.
 *
 * Decoding reads through a cursor that never reads past its end: a read past the end
 * yields zeros and sets `truncated`, which is checked before any value is used as a length,
 * a count or a pointer. */
#include "core/codec.h"

#include <stdlib.h>
#include <string.h>

#include "core/base/assert.h"
#include "core/base/errors.h"

/* Fixed sizes of the layout, in bytes. */
#define MSG_HEADER_BYTES     22u /* version, type, group, from, to, term */
#define VOTE_BYTES           17u
#define VOTE_RESP_BYTES      1u
#define APPEND_FIXED_BYTES   28u /* prev_index, prev_term, commit, entry_count */
#define ENTRY_FIXED_BYTES    13u /* term, type, data length */
#define APPEND_RESP_BYTES    25u
#define HEARTBEAT_BYTES      17u
#define HEARTBEAT_RESP_BYTES 8u
#define SNAPSHOT_FIXED_BYTES 37u /* index, term, offset, total, done, chunk length */
#define SNAPSHOT_RESP_BYTES  18u
#define CONFIG_FIXED_BYTES   2u /* member counts, without the version byte */
#define MEMBER_BYTES         5u
#define BATCH_HEADER_BYTES   13u
#define RECORD_HEADER_BYTES  5u
#define HB_SET_FIXED_BYTES   4u  /* count */
#define HB_ITEM_BYTES        28u /* group, term, commit, read_ctx */
#define HB_RESP_ITEM_BYTES   20u /* group, term, read_ctx */

/* Record kinds in a batch. */
#define RECORD_MSG             1u
#define RECORD_HEARTBEATS      2u
#define RECORD_HEARTBEAT_RESPS 3u

/* A heartbeat set covers groups of one worker, so it never holds more than a group table. */
#define HB_SET_COUNT_MAX RAFT_GROUPS_MAX

#define RR_BYTES_MIN_CAP 256u

_Static_assert(RAFT_MEMBERS_MAX <= UINT8_MAX, "member counts are encoded in one byte");
_Static_assert((uint64_t)HB_SET_COUNT_MAX *HB_ITEM_BYTES + HB_SET_FIXED_BYTES < UINT32_MAX,
               "a heartbeat set's length fits its u32 length field");
_Static_assert(RAFT_BATCH_BYTES_MAX < UINT32_MAX, "record lengths are u32");

/* ---- rr_bytes ------------------------------------------------------------------------- */

void rr_bytes_init(struct rr_bytes *b)
{
    b->base = NULL;
    b->len = 0;
    b->cap = 0;
}

void rr_bytes_free(struct rr_bytes *b)
{
    free(b->base);
    rr_bytes_init(b);
}

int rr_bytes_reserve(struct rr_bytes *b, size_t more)
{
    RR_ASSERT(b->len <= b->cap);
    RR_ASSERT(b->cap <= RAFT_BATCH_BYTES_MAX);
    if (more > RAFT_BATCH_BYTES_MAX - b->len) {
        return RR_ETOOBIG;
    }
    size_t need = b->len + more;
    if (need <= b->cap) {
        return 0;
    }
    /* Doubling keeps appends amortised O(1); the limit caps the last step. */
    size_t cap = b->cap < RR_BYTES_MIN_CAP ? RR_BYTES_MIN_CAP : b->cap;
    while (cap < need) {
        cap = cap > RAFT_BATCH_BYTES_MAX / 2 ? RAFT_BATCH_BYTES_MAX : cap * 2;
    }
    uint8_t *base = realloc(b->base, cap);
    if (base == NULL) {
        return RR_ENOMEM;
    }
    b->base = base;
    b->cap = cap;
    return 0;
}

/* ---- little-endian writer (into space already reserved) ------------------------------- */

static uint8_t *put_u8(uint8_t *p, uint8_t v)
{
    *p = v;
    return p + 1;
}

static uint8_t *put_u32(uint8_t *p, uint32_t v)
{
    for (unsigned i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
    return p + 4;
}

static uint8_t *put_u64(uint8_t *p, uint64_t v)
{
    for (unsigned i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
    return p + 8;
}

static uint8_t *put_bytes(uint8_t *p, const uint8_t *src, uint32_t len)
{
    if (len > 0) {
        memcpy(p, src, len);
    }
    return p + len;
}

/* ---- bounded reader ------------------------------------------------------------------- */

struct cursor {
    const uint8_t *in;
    size_t len;
    size_t pos;     /* <= len */
    bool truncated; /* a read wanted bytes past len; every later read yields zeros */
};

static void cursor_init(struct cursor *c, const uint8_t *in, size_t len)
{
    RR_ASSERT(in != NULL || len == 0);
    c->in = in;
    c->len = len;
    c->pos = 0;
    c->truncated = false;
}

static size_t cursor_left(const struct cursor *c)
{
    return c->len - c->pos;
}

/* Pointer to the next n bytes and advances past them, or NULL (and truncated) if short. */
static const uint8_t *get_bytes(struct cursor *c, size_t n)
{
    if (c->truncated || n > cursor_left(c)) {
        c->truncated = true;
        return NULL;
    }
    const uint8_t *p = c->in + c->pos;
    c->pos += n;
    return p;
}

static uint64_t get_le(struct cursor *c, unsigned width)
{
    const uint8_t *p = get_bytes(c, width);
    uint64_t v = 0;
    if (p == NULL) {
        return 0;
    }
    for (unsigned i = 0; i < width; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

static uint8_t get_u8(struct cursor *c)
{
    return (uint8_t)get_le(c, 1);
}

static uint32_t get_u32(struct cursor *c)
{
    return (uint32_t)get_le(c, 4);
}

static uint64_t get_u64(struct cursor *c)
{
    return get_le(c, 8);
}

/* Booleans are one byte, 0 or 1; anything else is corrupt. */
static int get_bool(struct cursor *c, bool *out)
{
    uint8_t v = get_u8(c);
    *out = v == 1;
    return v > 1 ? RR_ECORRUPT : 0;
}

/* ---- value checks shared by encoder and decoder --------------------------------------- */

static bool node_valid(raft_node id)
{
    return id != RAFT_NODE_NONE && id <= RAFT_NODE_ID_MAX;
}

static int config_check(const struct raft_config *c)
{
    if (c->member_count > RAFT_MEMBERS_MAX || c->old_member_count > RAFT_MEMBERS_MAX) {
        return RR_ETOOBIG;
    }
    return raft_config_valid(c) ? 0 : RR_ECORRUPT;
}

static int entry_check(const struct raft_entry *e, raft_term msg_term, raft_term prev_term)
{
    if (e->data.len > RAFT_ENTRY_BYTES_MAX) {
        return RR_ETOOBIG;
    }
    /* Paper §5.3 Log Matching: a leader's log has non-decreasing terms, none above its own
     * current term, and entries have a term (term 0 is "none"). */
    if (e->term == 0 || e->term < prev_term || e->term > msg_term) {
        return RR_ECORRUPT;
    }
    if (e->type == RAFT_ENTRY_NORMAL) {
        return 0;
    }
    if (e->type != RAFT_ENTRY_CONFIG) {
        return RR_ECORRUPT;
    }
    /* A configuration entry is applied as soon as it is appended (thesis §4.1): refuse a bad
     * one here rather than store it. */
    struct raft_config config;
    return codec_config_decode(e->data.base, e->data.len, &config) == 0 ? 0 : RR_ECORRUPT;
}

static int append_check(const struct raft_msg *m)
{
    const struct raft_msg_append *a = &m->append;
    if (a->entry_count > RAFT_APPEND_ENTRIES_MAX) {
        return RR_ETOOBIG;
    }
    if (a->entry_count > 0 && a->prev_index > UINT64_MAX - a->entry_count) {
        return RR_ECORRUPT;
    }
    uint64_t bytes = 0;
    raft_term prev_term = a->prev_term;
    for (uint32_t i = 0; i < a->entry_count; i++) {
        const struct raft_entry *e = &a->entries[i];
        if (e->index != a->prev_index + 1 + i) {
            return RR_ECORRUPT;
        }
        int rc = entry_check(e, m->term, prev_term);
        if (rc != 0) {
            return rc;
        }
        bytes += e->data.len;
        prev_term = e->term;
    }
    return bytes > RAFT_APPEND_BYTES_MAX ? RR_ETOOBIG : 0;
}

static int snapshot_check(const struct raft_msg *m)
{
    const struct raft_msg_snapshot *s = &m->snapshot;
    if (s->chunk.len > RAFT_SNAPSHOT_CHUNK_BYTES || s->total_bytes > RAFT_SNAPSHOT_BYTES_MAX) {
        return RR_ETOOBIG;
    }
    if (s->config == NULL) {
        return RR_EINVAL; /* the sender's mistake; a decoded message always has one */
    }
    /* A snapshot covers at least one entry, of a term the sender has seen. */
    if (s->last_index == 0 || s->last_term == 0 || s->last_term > m->term) {
        return RR_ECORRUPT;
    }
    if (s->offset > s->total_bytes || s->chunk.len > s->total_bytes - s->offset) {
        return RR_ECORRUPT;
    }
    if (s->done && s->offset + s->chunk.len != s->total_bytes) {
        return RR_ECORRUPT;
    }
    return config_check(s->config);
}

static int snapshot_resp_check(const struct raft_msg *m)
{
    const struct raft_msg_snapshot_resp *s = &m->snapshot_resp;
    if (s->next_offset > RAFT_SNAPSHOT_BYTES_MAX) {
        return RR_ETOOBIG;
    }
    return s->rejected && s->done ? RR_ECORRUPT : 0;
}

static bool type_on_wire(uint8_t type)
{
    return type >= RAFT_MSG_VOTE && type <= RAFT_MSG_TIMEOUT_NOW;
}

/* Checks every value of m (type already known to be a wire type). */
static int msg_check(const struct raft_msg *m)
{
    if (!node_valid(m->from) || !node_valid(m->to)) {
        return RR_ECORRUPT;
    }
    switch ((enum raft_msg_type)m->type) {
    case RAFT_MSG_APPEND:
        return append_check(m);
    case RAFT_MSG_SNAPSHOT:
        return snapshot_check(m);
    case RAFT_MSG_SNAPSHOT_RESP:
        return snapshot_resp_check(m);
    case RAFT_MSG_VOTE:
    case RAFT_MSG_VOTE_RESP:
    case RAFT_MSG_PRE_VOTE:
    case RAFT_MSG_PRE_VOTE_RESP:
    case RAFT_MSG_APPEND_RESP:
    case RAFT_MSG_HEARTBEAT:
    case RAFT_MSG_HEARTBEAT_RESP:
    case RAFT_MSG_TIMEOUT_NOW:
        return 0;
    case RAFT_MSG_PERSISTED:
        break;
    }
    return RR_EBADTYPE;
}

/* ---- sizes ---------------------------------------------------------------------------- */

static size_t config_body_bytes(const struct raft_config *c)
{
    return CONFIG_FIXED_BYTES + MEMBER_BYTES * ((size_t)c->member_count + c->old_member_count);
}

/* Body size of a checked message. */
static size_t msg_body_bytes(const struct raft_msg *m)
{
    switch ((enum raft_msg_type)m->type) {
    case RAFT_MSG_VOTE:
    case RAFT_MSG_PRE_VOTE:
        return VOTE_BYTES;
    case RAFT_MSG_VOTE_RESP:
    case RAFT_MSG_PRE_VOTE_RESP:
        return VOTE_RESP_BYTES;
    case RAFT_MSG_APPEND: {
        size_t n = APPEND_FIXED_BYTES;
        for (uint32_t i = 0; i < m->append.entry_count; i++) {
            n += ENTRY_FIXED_BYTES + m->append.entries[i].data.len;
        }
        return n;
    }
    case RAFT_MSG_APPEND_RESP:
        return APPEND_RESP_BYTES;
    case RAFT_MSG_HEARTBEAT:
        return HEARTBEAT_BYTES;
    case RAFT_MSG_HEARTBEAT_RESP:
        return HEARTBEAT_RESP_BYTES;
    case RAFT_MSG_SNAPSHOT:
        return SNAPSHOT_FIXED_BYTES + config_body_bytes(m->snapshot.config) + m->snapshot.chunk.len;
    case RAFT_MSG_SNAPSHOT_RESP:
        return SNAPSHOT_RESP_BYTES;
    case RAFT_MSG_TIMEOUT_NOW:
        return 0;
    case RAFT_MSG_PERSISTED:
        break;
    }
    RR_ASSERT(false && "msg_body_bytes: not a wire type");
    return 0;
}

int codec_msg_encoded_bytes(const struct raft_msg *m, size_t *bytes)
{
    if (!type_on_wire(m->type)) {
        return RR_EINVAL;
    }
    /* Data the encoder would copy must exist. */
    if (m->type == RAFT_MSG_APPEND && m->append.entry_count > 0 && m->append.entries == NULL) {
        return RR_EINVAL;
    }
    if (m->type == RAFT_MSG_APPEND) {
        for (uint32_t i = 0; i < m->append.entry_count && i < RAFT_APPEND_ENTRIES_MAX; i++) {
            const struct raft_buf *d = &m->append.entries[i].data;
            if (d->len > 0 && d->base == NULL) {
                return RR_EINVAL;
            }
        }
    }
    if (m->type == RAFT_MSG_SNAPSHOT && m->snapshot.chunk.len > 0 &&
        m->snapshot.chunk.base == NULL) {
        return RR_EINVAL;
    }
    if (msg_check(m) != 0) {
        return RR_EINVAL;
    }
    *bytes = MSG_HEADER_BYTES + msg_body_bytes(m);
    return 0;
}

/* ---- encoding ------------------------------------------------------------------------- */

static uint8_t *put_config_body(uint8_t *p, const struct raft_config *c)
{
    p = put_u8(p, (uint8_t)c->member_count);
    p = put_u8(p, (uint8_t)c->old_member_count);
    for (uint32_t i = 0; i < c->member_count; i++) {
        p = put_u32(p, c->members[i].id);
        p = put_u8(p, c->members[i].role);
    }
    for (uint32_t i = 0; i < c->old_member_count; i++) {
        p = put_u32(p, c->old_members[i].id);
        p = put_u8(p, c->old_members[i].role);
    }
    return p;
}

static uint8_t *put_append(uint8_t *p, const struct raft_msg_append *a)
{
    p = put_u64(p, a->prev_index);
    p = put_u64(p, a->prev_term);
    p = put_u64(p, a->commit);
    p = put_u32(p, a->entry_count);
    /* Indexes are not sent: entry i is prev_index + 1 + i (checked by msg_check). */
    for (uint32_t i = 0; i < a->entry_count; i++) {
        const struct raft_entry *e = &a->entries[i];
        p = put_u64(p, e->term);
        p = put_u8(p, e->type);
        p = put_u32(p, e->data.len);
        p = put_bytes(p, e->data.base, e->data.len);
    }
    return p;
}

static uint8_t *put_snapshot(uint8_t *p, const struct raft_msg_snapshot *s)
{
    p = put_u64(p, s->last_index);
    p = put_u64(p, s->last_term);
    p = put_config_body(p, s->config);
    p = put_u64(p, s->offset);
    p = put_u64(p, s->total_bytes);
    p = put_u8(p, s->done);
    p = put_u32(p, s->chunk.len);
    return put_bytes(p, s->chunk.base, s->chunk.len);
}

static uint8_t *put_body(uint8_t *p, const struct raft_msg *m)
{
    switch ((enum raft_msg_type)m->type) {
    case RAFT_MSG_VOTE:
    case RAFT_MSG_PRE_VOTE:
        p = put_u64(p, m->vote.last_log_index);
        p = put_u64(p, m->vote.last_log_term);
        return put_u8(p, m->vote.transfer);
    case RAFT_MSG_VOTE_RESP:
    case RAFT_MSG_PRE_VOTE_RESP:
        return put_u8(p, m->vote_resp.granted);
    case RAFT_MSG_APPEND:
        return put_append(p, &m->append);
    case RAFT_MSG_APPEND_RESP:
        p = put_u8(p, m->append_resp.rejected);
        p = put_u64(p, m->append_resp.index);
        p = put_u64(p, m->append_resp.hint_index);
        return put_u64(p, m->append_resp.hint_term);
    case RAFT_MSG_HEARTBEAT:
        p = put_u64(p, m->heartbeat.commit);
        p = put_u64(p, m->heartbeat.read_ctx);
        return put_u8(p, m->heartbeat.quiesce);
    case RAFT_MSG_HEARTBEAT_RESP:
        return put_u64(p, m->heartbeat_resp.read_ctx);
    case RAFT_MSG_SNAPSHOT:
        return put_snapshot(p, &m->snapshot);
    case RAFT_MSG_SNAPSHOT_RESP:
        p = put_u64(p, m->snapshot_resp.index);
        p = put_u64(p, m->snapshot_resp.next_offset);
        p = put_u8(p, m->snapshot_resp.rejected);
        return put_u8(p, m->snapshot_resp.done);
    case RAFT_MSG_TIMEOUT_NOW:
        return p;
    case RAFT_MSG_PERSISTED:
        break;
    }
    RR_ASSERT(false && "put_body: not a wire type");
    return p;
}

/* Writes a checked message of `bytes` bytes at p. */
static void put_msg(uint8_t *p, const struct raft_msg *m, size_t bytes)
{
    uint8_t *start = p;
    p = put_u8(p, CODEC_VERSION);
    p = put_u8(p, m->type);
    p = put_u32(p, m->group);
    p = put_u32(p, m->from);
    p = put_u32(p, m->to);
    p = put_u64(p, m->term);
    p = put_body(p, m);
    RR_ASSERT((size_t)(p - start) == bytes);
}

int codec_msg_encode(struct rr_bytes *out, const struct raft_msg *m)
{
    size_t bytes = 0;
    int rc = codec_msg_encoded_bytes(m, &bytes);
    if (rc != 0) {
        return rc;
    }
    rc = rr_bytes_reserve(out, bytes);
    if (rc != 0) {
        return rc;
    }
    put_msg(out->base + out->len, m, bytes);
    out->len += bytes;
    return 0;
}

/* ---- decoding ------------------------------------------------------------------------- */

static int get_members(struct cursor *c, struct raft_member *m, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        m[i].id = get_u32(c);
        m[i].role = get_u8(c);
    }
    return c->truncated ? RR_ETRUNCATED : 0;
}

static int get_config_body(struct cursor *c, struct raft_config *config)
{
    memset(config, 0, sizeof(*config));
    config->member_count = get_u8(c);
    config->old_member_count = get_u8(c);
    if (c->truncated) {
        return RR_ETRUNCATED;
    }
    if (config->member_count > RAFT_MEMBERS_MAX || config->old_member_count > RAFT_MEMBERS_MAX) {
        return RR_ETOOBIG;
    }
    int rc = get_members(c, config->members, config->member_count);
    if (rc == 0) {
        rc = get_members(c, config->old_members, config->old_member_count);
    }
    return rc;
}

static int get_entries(struct cursor *c, struct raft_msg_append *a, struct raft_entry *entries)
{
    for (uint32_t i = 0; i < a->entry_count; i++) {
        struct raft_entry *e = &entries[i];
        e->index = a->prev_index + 1 + i;
        e->term = get_u64(c);
        e->type = get_u8(c);
        e->data.len = get_u32(c);
        if (c->truncated) {
            return RR_ETRUNCATED;
        }
        if (e->data.len > RAFT_ENTRY_BYTES_MAX) {
            return RR_ETOOBIG;
        }
        e->data.base = get_bytes(c, e->data.len);
        if (e->data.base == NULL) {
            return RR_ETRUNCATED;
        }
    }
    return 0;
}

static int get_append(struct cursor *c, struct raft_msg_append *a, struct codec_scratch *scratch)
{
    a->prev_index = get_u64(c);
    a->prev_term = get_u64(c);
    a->commit = get_u64(c);
    a->entry_count = get_u32(c);
    a->entries = scratch->entries;
    if (c->truncated) {
        return RR_ETRUNCATED;
    }
    /* Bound the count before it indexes scratch. */
    if (a->entry_count > RAFT_APPEND_ENTRIES_MAX) {
        return RR_ETOOBIG;
    }
    if (a->entry_count > 0 && a->prev_index > UINT64_MAX - a->entry_count) {
        return RR_ECORRUPT;
    }
    return get_entries(c, a, scratch->entries);
}

static int
get_snapshot(struct cursor *c, struct raft_msg_snapshot *s, struct codec_scratch *scratch)
{
    s->last_index = get_u64(c);
    s->last_term = get_u64(c);
    s->config = &scratch->config;
    int rc = get_config_body(c, &scratch->config);
    if (rc != 0) {
        return rc;
    }
    s->offset = get_u64(c);
    s->total_bytes = get_u64(c);
    rc = get_bool(c, &s->done);
    s->chunk.len = get_u32(c);
    if (c->truncated) {
        return RR_ETRUNCATED;
    }
    if (s->chunk.len > RAFT_SNAPSHOT_CHUNK_BYTES) {
        return RR_ETOOBIG;
    }
    s->chunk.base = get_bytes(c, s->chunk.len);
    if (s->chunk.base == NULL) {
        return RR_ETRUNCATED;
    }
    return rc;
}

/* Reads the fixed-size bodies; bad booleans are reported once the whole body is read, so a
 * short input is RR_ETRUNCATED whatever its bytes. */
static int get_fixed_body(struct cursor *c, struct raft_msg *m)
{
    int rc = 0;
    switch ((enum raft_msg_type)m->type) {
    case RAFT_MSG_VOTE:
    case RAFT_MSG_PRE_VOTE:
        m->vote.last_log_index = get_u64(c);
        m->vote.last_log_term = get_u64(c);
        rc = get_bool(c, &m->vote.transfer);
        break;
    case RAFT_MSG_VOTE_RESP:
    case RAFT_MSG_PRE_VOTE_RESP:
        rc = get_bool(c, &m->vote_resp.granted);
        break;
    case RAFT_MSG_APPEND_RESP:
        rc = get_bool(c, &m->append_resp.rejected);
        m->append_resp.index = get_u64(c);
        m->append_resp.hint_index = get_u64(c);
        m->append_resp.hint_term = get_u64(c);
        break;
    case RAFT_MSG_HEARTBEAT:
        m->heartbeat.commit = get_u64(c);
        m->heartbeat.read_ctx = get_u64(c);
        rc = get_bool(c, &m->heartbeat.quiesce);
        break;
    case RAFT_MSG_HEARTBEAT_RESP:
        m->heartbeat_resp.read_ctx = get_u64(c);
        break;
    case RAFT_MSG_SNAPSHOT_RESP: {
        m->snapshot_resp.index = get_u64(c);
        m->snapshot_resp.next_offset = get_u64(c);
        rc = get_bool(c, &m->snapshot_resp.rejected);
        int rc2 = get_bool(c, &m->snapshot_resp.done);
        rc = rc != 0 ? rc : rc2;
        break;
    }
    case RAFT_MSG_TIMEOUT_NOW:
        break;
    case RAFT_MSG_APPEND:
    case RAFT_MSG_SNAPSHOT:
    case RAFT_MSG_PERSISTED:
        RR_ASSERT(false && "get_fixed_body: not a fixed-size type");
        break;
    }
    return c->truncated ? RR_ETRUNCATED : rc;
}

static int get_body(struct cursor *c, struct raft_msg *m, struct codec_scratch *scratch)
{
    if (m->type == RAFT_MSG_APPEND) {
        return get_append(c, &m->append, scratch);
    }
    if (m->type == RAFT_MSG_SNAPSHOT) {
        return get_snapshot(c, &m->snapshot, scratch);
    }
    return get_fixed_body(c, m);
}

int codec_msg_decode(const uint8_t *in,
                     size_t len,
                     struct raft_msg *m,
                     struct codec_scratch *scratch)
{
    RR_ASSERT(scratch != NULL);
    struct cursor c;
    cursor_init(&c, in, len);
    memset(m, 0, sizeof(*m));
    uint8_t version = get_u8(&c);
    m->type = get_u8(&c);
    if (c.truncated) {
        return RR_ETRUNCATED;
    }
    if (version != CODEC_VERSION) {
        return RR_EBADVERSION;
    }
    if (!type_on_wire(m->type)) {
        return RR_EBADTYPE;
    }
    m->group = get_u32(&c);
    m->from = get_u32(&c);
    m->to = get_u32(&c);
    m->term = get_u64(&c);
    if (c.truncated) {
        return RR_ETRUNCATED;
    }
    int rc = get_body(&c, m, scratch);
    if (rc != 0) {
        return rc;
    }
    if (cursor_left(&c) != 0) {
        return RR_ECORRUPT;
    }
    return msg_check(m);
}

/* ---- configurations ------------------------------------------------------------------- */

int codec_config_encode(struct rr_bytes *out, const struct raft_config *c)
{
    if (config_check(c) != 0) {
        return RR_EINVAL;
    }
    size_t bytes = 1 + config_body_bytes(c);
    int rc = rr_bytes_reserve(out, bytes);
    if (rc != 0) {
        return rc;
    }
    uint8_t *p = out->base + out->len;
    p = put_u8(p, CODEC_VERSION);
    p = put_config_body(p, c);
    RR_ASSERT((size_t)(p - (out->base + out->len)) == bytes);
    out->len += bytes;
    return 0;
}

int codec_config_decode(const uint8_t *in, size_t len, struct raft_config *c)
{
    struct cursor cur;
    cursor_init(&cur, in, len);
    uint8_t version = get_u8(&cur);
    if (cur.truncated) {
        return RR_ETRUNCATED;
    }
    if (version != CODEC_VERSION) {
        return RR_EBADVERSION;
    }
    int rc = get_config_body(&cur, c);
    if (rc != 0) {
        return rc;
    }
    if (cursor_left(&cur) != 0) {
        return RR_ECORRUPT;
    }
    return config_check(c);
}

/* ---- batches: writer ------------------------------------------------------------------ */

int codec_batch_begin(struct codec_batch_writer *w,
                      struct rr_bytes *out,
                      raft_node from,
                      raft_node to)
{
    if (!node_valid(from) || !node_valid(to)) {
        return RR_EINVAL;
    }
    int rc = rr_bytes_reserve(out, BATCH_HEADER_BYTES);
    if (rc != 0) {
        return rc;
    }
    w->out = out;
    w->start = out->len;
    w->record_count = 0;
    uint8_t *p = out->base + out->len;
    p = put_u8(p, CODEC_VERSION);
    p = put_u32(p, from);
    p = put_u32(p, to);
    put_u32(p, 0); /* record count, fixed up by codec_batch_end */
    out->len += BATCH_HEADER_BYTES;
    return 0;
}

static uint32_t header_node(const struct codec_batch_writer *w, size_t at)
{
    struct cursor c;
    cursor_init(&c, w->out->base + w->start + at, 4);
    return get_u32(&c);
}

int codec_batch_add_msg(struct codec_batch_writer *w, const struct raft_msg *m)
{
    RR_ASSERT(w->out->len >= w->start + BATCH_HEADER_BYTES);
    /* Every message of a batch travels between the header's two nodes. */
    if (m->from != header_node(w, 1) || m->to != header_node(w, 5)) {
        return RR_EINVAL;
    }
    size_t bytes = 0;
    int rc = codec_msg_encoded_bytes(m, &bytes);
    if (rc != 0) {
        return rc;
    }
    if (w->record_count == UINT32_MAX) {
        return RR_ETOOBIG;
    }
    rc = rr_bytes_reserve(w->out, RECORD_HEADER_BYTES + bytes);
    if (rc != 0) {
        return rc;
    }
    uint8_t *p = w->out->base + w->out->len;
    p = put_u8(p, RECORD_MSG);
    p = put_u32(p, (uint32_t)bytes);
    put_msg(p, m, bytes);
    w->out->len += RECORD_HEADER_BYTES + bytes;
    w->record_count++;
    return 0;
}

static uint8_t *put_heartbeat(uint8_t *p, bool resp, const struct codec_heartbeat *hb)
{
    p = put_u32(p, hb->group);
    p = put_u64(p, hb->term);
    if (!resp) {
        p = put_u64(p, hb->commit);
    }
    return put_u64(p, hb->read_ctx);
}

int codec_batch_add_heartbeats(struct codec_batch_writer *w,
                               bool resp,
                               const struct codec_heartbeat *hb,
                               uint32_t count)
{
    RR_ASSERT(w->out->len >= w->start + BATCH_HEADER_BYTES);
    if (count == 0) {
        return 0; /* an empty set is not written: the reader refuses one */
    }
    if (count > HB_SET_COUNT_MAX) {
        return RR_EINVAL;
    }
    if (w->record_count == UINT32_MAX) {
        return RR_ETOOBIG;
    }
    size_t item = resp ? HB_RESP_ITEM_BYTES : HB_ITEM_BYTES;
    size_t body = HB_SET_FIXED_BYTES + item * count;
    int rc = rr_bytes_reserve(w->out, RECORD_HEADER_BYTES + body);
    if (rc != 0) {
        return rc;
    }
    uint8_t *p = w->out->base + w->out->len;
    p = put_u8(p, resp ? RECORD_HEARTBEAT_RESPS : RECORD_HEARTBEATS);
    p = put_u32(p, (uint32_t)body);
    p = put_u32(p, count);
    for (uint32_t i = 0; i < count; i++) {
        p = put_heartbeat(p, resp, &hb[i]);
    }
    RR_ASSERT((size_t)(p - (w->out->base + w->out->len)) == RECORD_HEADER_BYTES + body);
    w->out->len += RECORD_HEADER_BYTES + body;
    w->record_count++;
    return 0;
}

void codec_batch_end(struct codec_batch_writer *w)
{
    RR_ASSERT(w->out->len >= w->start + BATCH_HEADER_BYTES);
    put_u32(w->out->base + w->start + 9, w->record_count);
}

bool codec_batch_is_empty(const struct codec_batch_writer *w)
{
    return w->record_count == 0;
}

/* ---- batches: reader ------------------------------------------------------------------ */

int codec_batch_open(struct codec_batch_reader *r, const uint8_t *in, size_t len)
{
    memset(r, 0, sizeof(*r));
    if (len > RAFT_BATCH_BYTES_MAX) {
        return RR_ETOOBIG;
    }
    struct cursor c;
    cursor_init(&c, in, len);
    uint8_t version = get_u8(&c);
    if (c.truncated) {
        return RR_ETRUNCATED;
    }
    if (version != CODEC_VERSION) {
        return RR_EBADVERSION;
    }
    r->from = get_u32(&c);
    r->to = get_u32(&c);
    r->records_left = get_u32(&c);
    if (c.truncated) {
        return RR_ETRUNCATED;
    }
    if (!node_valid(r->from) || !node_valid(r->to)) {
        return RR_ECORRUPT;
    }
    /* Every record has at least its header: a larger count cannot be honest. */
    if (r->records_left > cursor_left(&c) / RECORD_HEADER_BYTES) {
        return RR_ETRUNCATED;
    }
    r->in = in;
    r->len = len;
    r->pos = c.pos;
    return 0;
}

/* Next heartbeat of the current set; its bytes were bounded when the set was opened. */
static void next_heartbeat(struct codec_batch_reader *r, struct raft_msg *m)
{
    struct cursor c;
    size_t item = r->hb_resp ? HB_RESP_ITEM_BYTES : HB_ITEM_BYTES;
    cursor_init(&c, r->in + r->pos, item);
    memset(m, 0, sizeof(*m));
    m->type = r->hb_resp ? RAFT_MSG_HEARTBEAT_RESP : RAFT_MSG_HEARTBEAT;
    m->from = r->from;
    m->to = r->to;
    m->group = get_u32(&c);
    m->term = get_u64(&c);
    if (r->hb_resp) {
        m->heartbeat_resp.read_ctx = get_u64(&c);
    } else {
        m->heartbeat.commit = get_u64(&c);
        m->heartbeat.read_ctx = get_u64(&c);
    }
    RR_ASSERT(!c.truncated);
    RR_ASSERT(cursor_left(&c) == 0);
    r->pos += item;
    r->hb_left--;
}

static int
open_heartbeats(struct codec_batch_reader *r, bool resp, const uint8_t *body, uint32_t body_len)
{
    struct cursor c;
    cursor_init(&c, body, body_len);
    uint32_t count = get_u32(&c);
    if (c.truncated) {
        return RR_ETRUNCATED;
    }
    if (count > HB_SET_COUNT_MAX) {
        return RR_ETOOBIG;
    }
    size_t item = resp ? HB_RESP_ITEM_BYTES : HB_ITEM_BYTES;
    if (count == 0 || cursor_left(&c) != item * count) {
        return RR_ECORRUPT;
    }
    r->hb_resp = resp;
    r->hb_left = count;
    r->pos += HB_SET_FIXED_BYTES;
    return 0;
}

static int next_msg(struct codec_batch_reader *r,
                    const uint8_t *body,
                    uint32_t body_len,
                    struct raft_msg *m,
                    struct codec_scratch *scratch)
{
    int rc = codec_msg_decode(body, body_len, m, scratch);
    if (rc != 0) {
        return rc;
    }
    if (m->from != r->from || m->to != r->to) {
        return RR_ECORRUPT;
    }
    r->pos += body_len;
    return 1;
}

int codec_batch_next(struct codec_batch_reader *r,
                     struct raft_msg *m,
                     struct codec_scratch *scratch)
{
    RR_ASSERT(r->in != NULL); /* only after a successful codec_batch_open */
    RR_ASSERT(r->pos <= r->len);
    if (r->hb_left > 0) {
        next_heartbeat(r, m);
        return 1;
    }
    struct cursor c;
    cursor_init(&c, r->in + r->pos, r->len - r->pos);
    if (r->records_left == 0) {
        return cursor_left(&c) == 0 ? 0 : RR_ECORRUPT;
    }
    uint8_t kind = get_u8(&c);
    uint32_t body_len = get_u32(&c);
    if (c.truncated) {
        return RR_ETRUNCATED;
    }
    const uint8_t *body = get_bytes(&c, body_len);
    if (body == NULL) {
        return RR_ETRUNCATED;
    }
    r->records_left--;
    switch (kind) {
    case RECORD_MSG:
        r->pos += RECORD_HEADER_BYTES;
        return next_msg(r, body, body_len, m, scratch);
    case RECORD_HEARTBEATS:
    case RECORD_HEARTBEAT_RESPS: {
        r->pos += RECORD_HEADER_BYTES;
        int rc = open_heartbeats(r, kind == RECORD_HEARTBEAT_RESPS, body, body_len);
        if (rc != 0) {
            return rc;
        }
        next_heartbeat(r, m);
        return 1;
    }
    default:
        return RR_EBADTYPE;
    }
}
