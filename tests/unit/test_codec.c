/* Codec tests: round trips of every wire message, batches with coalesced heartbeats,
 * configurations, rejection of malformed input, and a deterministic mutation fuzz loop. */
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

#include "core/base/assert.h"
#include "core/base/errors.h"
#include "core/base/prng.h"
#include "core/codec.h"

#define HEADER_BYTES 22u /* message header: version, type, group, from, to, term */

static uint8_t payload[RAFT_APPEND_BYTES_MAX]; /* pattern bytes entries and chunks point into */
static struct codec_scratch scratch;

static void fill_payload(void)
{
    struct rr_prng p;
    rr_prng_seed(&p, 7);
    for (size_t i = 0; i < sizeof(payload); i++) {
        payload[i] = (uint8_t)rr_prng_next(&p);
    }
}

/* A broken codec invariant fails the test with its location instead of a bare trap. */
static void on_assert(const char *file, int line, const char *expr)
{
    fail_msg("RR_ASSERT failed at %s:%d: %s", file, line, expr);
}

static int setup(void **state)
{
    (void)state;
    rr_assert_set_handler(on_assert);
    fill_payload();
    return 0;
}

/* ---- helpers -------------------------------------------------------------------------- */

static void
config_simple(struct raft_config *c, uint32_t voters, uint32_t learners, uint32_t old_voters)
{
    memset(c, 0, sizeof(*c));
    for (uint32_t i = 0; i < voters + learners; i++) {
        c->members[i].id = i + 1;
        c->members[i].role = i < voters ? RAFT_VOTER : RAFT_LEARNER;
    }
    c->member_count = voters + learners;
    for (uint32_t i = 0; i < old_voters; i++) {
        c->old_members[i].id = RAFT_NODE_ID_MAX - i;
        c->old_members[i].role = RAFT_VOTER;
    }
    c->old_member_count = old_voters;
}

static void msg_base(struct raft_msg *m, uint8_t type)
{
    memset(m, 0, sizeof(*m));
    m->type = type;
    m->group = 42;
    m->from = 1;
    m->to = 2;
    m->term = 7;
}

static void config_equal(const struct raft_config *a, const struct raft_config *b)
{
    assert_int_equal(a->member_count, b->member_count);
    assert_int_equal(a->old_member_count, b->old_member_count);
    for (uint32_t i = 0; i < a->member_count; i++) {
        assert_int_equal(a->members[i].id, b->members[i].id);
        assert_int_equal(a->members[i].role, b->members[i].role);
    }
    for (uint32_t i = 0; i < a->old_member_count; i++) {
        assert_int_equal(a->old_members[i].id, b->old_members[i].id);
        assert_int_equal(a->old_members[i].role, b->old_members[i].role);
    }
}

static void buf_equal(struct raft_buf a, struct raft_buf b)
{
    assert_int_equal(a.len, b.len);
    if (a.len > 0) {
        assert_memory_equal(a.base, b.base, a.len);
    }
}

static void body_equal(const struct raft_msg *a, const struct raft_msg *b)
{
    switch ((enum raft_msg_type)a->type) {
    case RAFT_MSG_VOTE:
    case RAFT_MSG_PRE_VOTE:
        assert_true(a->vote.last_log_index == b->vote.last_log_index);
        assert_true(a->vote.last_log_term == b->vote.last_log_term);
        assert_int_equal(a->vote.transfer, b->vote.transfer);
        return;
    case RAFT_MSG_VOTE_RESP:
    case RAFT_MSG_PRE_VOTE_RESP:
        assert_int_equal(a->vote_resp.granted, b->vote_resp.granted);
        return;
    case RAFT_MSG_APPEND:
        assert_true(a->append.prev_index == b->append.prev_index);
        assert_true(a->append.prev_term == b->append.prev_term);
        assert_true(a->append.commit == b->append.commit);
        assert_int_equal(a->append.entry_count, b->append.entry_count);
        for (uint32_t i = 0; i < a->append.entry_count; i++) {
            assert_true(a->append.entries[i].term == b->append.entries[i].term);
            assert_true(a->append.entries[i].index == b->append.entries[i].index);
            assert_int_equal(a->append.entries[i].type, b->append.entries[i].type);
            buf_equal(a->append.entries[i].data, b->append.entries[i].data);
        }
        return;
    case RAFT_MSG_APPEND_RESP:
        assert_int_equal(a->append_resp.rejected, b->append_resp.rejected);
        assert_true(a->append_resp.index == b->append_resp.index);
        assert_true(a->append_resp.hint_index == b->append_resp.hint_index);
        assert_true(a->append_resp.hint_term == b->append_resp.hint_term);
        return;
    case RAFT_MSG_HEARTBEAT:
        assert_true(a->heartbeat.commit == b->heartbeat.commit);
        assert_true(a->heartbeat.read_ctx == b->heartbeat.read_ctx);
        assert_true(a->heartbeat.quiesce == b->heartbeat.quiesce);
        return;
    case RAFT_MSG_HEARTBEAT_RESP:
        assert_true(a->heartbeat_resp.read_ctx == b->heartbeat_resp.read_ctx);
        return;
    case RAFT_MSG_SNAPSHOT:
        assert_true(a->snapshot.last_index == b->snapshot.last_index);
        assert_true(a->snapshot.last_term == b->snapshot.last_term);
        config_equal(a->snapshot.config, b->snapshot.config);
        assert_true(a->snapshot.offset == b->snapshot.offset);
        assert_true(a->snapshot.total_bytes == b->snapshot.total_bytes);
        assert_int_equal(a->snapshot.done, b->snapshot.done);
        buf_equal(a->snapshot.chunk, b->snapshot.chunk);
        return;
    case RAFT_MSG_SNAPSHOT_RESP:
        assert_true(a->snapshot_resp.index == b->snapshot_resp.index);
        assert_true(a->snapshot_resp.next_offset == b->snapshot_resp.next_offset);
        assert_int_equal(a->snapshot_resp.rejected, b->snapshot_resp.rejected);
        assert_int_equal(a->snapshot_resp.done, b->snapshot_resp.done);
        return;
    case RAFT_MSG_TIMEOUT_NOW:
        return;
    case RAFT_MSG_PERSISTED:
        break;
    }
    fail_msg("unexpected type %u", a->type);
}

static void msg_equal(const struct raft_msg *a, const struct raft_msg *b)
{
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->group, b->group);
    assert_int_equal(a->from, b->from);
    assert_int_equal(a->to, b->to);
    assert_true(a->term == b->term);
    body_equal(a, b);
}

/* Decodes from an exact-size heap copy, so ASan sees any read past the end. */
static int decode_copy(const uint8_t *in, size_t len, struct raft_msg *m)
{
    uint8_t *copy = malloc(len > 0 ? len : 1);
    assert_non_null(copy);
    if (len > 0) {
        memcpy(copy, in, len);
    }
    int rc = codec_msg_decode(len > 0 ? copy : NULL, len, m, &scratch);
    free(copy);
    return rc;
}

/* Prefix lengths to try: all of them for small inputs, a stride plus the edges otherwise. */
static size_t prefix_step(size_t len, size_t at)
{
    return len <= 8192 || at < 256 || at + 256 > len ? 1 : 997;
}

/* Encodes m, checks the size, decodes it back equal, then rejects every truncation and a
 * trailing byte. */
static void roundtrip(const struct raft_msg *m)
{
    struct rr_bytes b;
    rr_bytes_init(&b);
    size_t bytes = 0;
    assert_int_equal(codec_msg_encoded_bytes(m, &bytes), 0);
    assert_int_equal(codec_msg_encode(&b, m), 0);
    assert_int_equal(b.len, bytes);

    struct raft_msg d;
    assert_int_equal(codec_msg_decode(b.base, b.len, &d, &scratch), 0);
    msg_equal(m, &d);

    for (size_t n = 0; n < b.len; n += prefix_step(b.len, n)) {
        assert_int_equal(codec_msg_decode(b.base, n, &d, &scratch), RR_ETRUNCATED);
    }
    assert_int_equal(rr_bytes_reserve(&b, 1), 0);
    b.base[b.len] = 0;
    assert_int_equal(codec_msg_decode(b.base, b.len + 1, &d, &scratch), RR_ECORRUPT);
    rr_bytes_free(&b);
}

static void encode_or_fail(struct rr_bytes *b, const struct raft_msg *m)
{
    rr_bytes_init(b);
    assert_int_equal(codec_msg_encode(b, m), 0);
}

/* Encodes m, lets `mutate` damage the bytes, and returns the decode result. */
static int decode_mutated(const struct raft_msg *m, size_t at, uint8_t value)
{
    struct rr_bytes b;
    encode_or_fail(&b, m);
    assert_true(at < b.len);
    b.base[at] = value;
    struct raft_msg d;
    int rc = decode_copy(b.base, b.len, &d);
    rr_bytes_free(&b);
    return rc;
}

static void put_le(uint8_t *p, uint64_t v, unsigned width)
{
    for (unsigned i = 0; i < width; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static int decode_with_field(const struct raft_msg *m, size_t at, uint64_t v, unsigned width)
{
    struct rr_bytes b;
    encode_or_fail(&b, m);
    assert_true(at + width <= b.len);
    put_le(b.base + at, v, width);
    struct raft_msg d;
    int rc = decode_copy(b.base, b.len, &d);
    rr_bytes_free(&b);
    return rc;
}

/* entries[i] for an APPEND after prev_index, each `each` bytes of the payload. */
static void make_append(struct raft_msg *m,
                        struct raft_entry *entries,
                        uint32_t count,
                        raft_index prev_index,
                        uint32_t each)
{
    msg_base(m, RAFT_MSG_APPEND);
    m->append.prev_index = prev_index;
    m->append.prev_term = prev_index > 0 ? 3 : 0;
    m->append.commit = prev_index;
    m->append.entry_count = count;
    m->append.entries = entries;
    for (uint32_t i = 0; i < count; i++) {
        entries[i].term = i < count / 2 ? 3 : 7;
        entries[i].index = prev_index + 1 + i;
        entries[i].type = RAFT_ENTRY_NORMAL;
        entries[i].data.base = payload + ((size_t)i * each) % (sizeof(payload) - each + 1);
        entries[i].data.len = each;
    }
}

/* The configuration make_snapshot's message points to (tests change it in place). */
static struct raft_config snap_config;

static void
make_snapshot(struct raft_msg *m, uint64_t offset, uint32_t chunk, uint64_t total, bool done)
{
    msg_base(m, RAFT_MSG_SNAPSHOT);
    m->snapshot.last_index = 1000;
    m->snapshot.last_term = 6;
    config_simple(&snap_config, 3, 1, 0);
    m->snapshot.config = &snap_config;
    m->snapshot.offset = offset;
    m->snapshot.total_bytes = total;
    m->snapshot.done = done;
    m->snapshot.chunk.base = payload;
    m->snapshot.chunk.len = chunk;
}

/* ---- round trips ---------------------------------------------------------------------- */

static void test_roundtrip_vote(void **state)
{
    (void)state;
    struct raft_msg m;
    for (uint8_t type = RAFT_MSG_VOTE; type <= RAFT_MSG_PRE_VOTE; type += 2) {
        msg_base(&m, type);
        m.term = 0;
        roundtrip(&m);
        m.group = UINT32_MAX;
        m.from = RAFT_NODE_ID_MAX;
        m.to = 1;
        m.term = UINT64_MAX;
        m.vote.last_log_index = UINT64_MAX;
        m.vote.last_log_term = UINT64_MAX - 1;
        m.vote.transfer = true;
        roundtrip(&m);
    }
    for (uint8_t type = RAFT_MSG_VOTE_RESP; type <= RAFT_MSG_PRE_VOTE_RESP; type += 2) {
        msg_base(&m, type);
        roundtrip(&m);
        m.vote_resp.granted = true;
        roundtrip(&m);
    }
}

static void test_roundtrip_append(void **state)
{
    (void)state;
    static struct raft_entry entries[RAFT_APPEND_ENTRIES_MAX];
    struct raft_msg m;
    make_append(&m, entries, 0, 0, 0); /* a probe with no entries */
    roundtrip(&m);
    make_append(&m, NULL, 0, 0, 0); /* no entries array at all is fine when empty */
    roundtrip(&m);
    make_append(&m, entries, 1, 0, 0); /* the leader's empty no-op */
    roundtrip(&m);
    make_append(&m, entries, 3, 99, 17);
    roundtrip(&m);
    make_append(&m, entries, RAFT_APPEND_ENTRIES_MAX, 5, 1);
    roundtrip(&m);
    make_append(&m, entries, RAFT_APPEND_ENTRIES_MAX, 5,
                RAFT_APPEND_BYTES_MAX / RAFT_APPEND_ENTRIES_MAX); /* both limits at once */
    roundtrip(&m);
    make_append(&m, entries, 1, 0, RAFT_ENTRY_BYTES_MAX);
    roundtrip(&m);
    make_append(&m, entries, 2, UINT64_MAX - 2, 8); /* last index UINT64_MAX */
    m.term = UINT64_MAX;
    m.append.commit = UINT64_MAX;
    roundtrip(&m);
}

static void test_roundtrip_append_config_entry(void **state)
{
    (void)state;
    struct raft_entry entries[2];
    struct raft_config c;
    config_simple(&c, 3, 0, 5); /* joint */
    struct rr_bytes cb;
    rr_bytes_init(&cb);
    assert_int_equal(codec_config_encode(&cb, &c), 0);
    struct raft_msg m;
    make_append(&m, entries, 2, 10, 4);
    entries[1].type = RAFT_ENTRY_CONFIG;
    entries[1].data.base = cb.base;
    entries[1].data.len = (uint32_t)cb.len;
    roundtrip(&m);

    /* A configuration entry whose payload is not a configuration is refused both ways. */
    entries[1].data.base = payload;
    size_t bytes = 0;
    assert_int_equal(codec_msg_encoded_bytes(&m, &bytes), RR_EINVAL);
    entries[1].type = RAFT_ENTRY_NORMAL;
    struct rr_bytes b;
    encode_or_fail(&b, &m);
    size_t type_at = HEADER_BYTES + 28 + (13 + 4) + 8;
    assert_int_equal(b.base[type_at], RAFT_ENTRY_NORMAL);
    b.base[type_at] = RAFT_ENTRY_CONFIG;
    struct raft_msg d;
    assert_int_equal(decode_copy(b.base, b.len, &d), RR_ECORRUPT);
    rr_bytes_free(&b);
    rr_bytes_free(&cb);
}

static void test_roundtrip_small_types(void **state)
{
    (void)state;
    struct raft_msg m;
    msg_base(&m, RAFT_MSG_APPEND_RESP);
    roundtrip(&m);
    m.append_resp.rejected = true;
    m.append_resp.index = UINT64_MAX;
    m.append_resp.hint_index = 12;
    m.append_resp.hint_term = 3;
    roundtrip(&m);

    msg_base(&m, RAFT_MSG_HEARTBEAT);
    roundtrip(&m);
    m.heartbeat.commit = UINT64_MAX;
    m.heartbeat.read_ctx = UINT64_MAX;
    roundtrip(&m);
    m.heartbeat.quiesce = true; /* the quiescing heartbeat travels as a single message */
    roundtrip(&m);

    msg_base(&m, RAFT_MSG_HEARTBEAT_RESP);
    m.heartbeat_resp.read_ctx = 0x0123456789abcdefULL;
    roundtrip(&m);

    msg_base(&m, RAFT_MSG_SNAPSHOT_RESP);
    m.snapshot_resp.index = 77;
    m.snapshot_resp.next_offset = RAFT_SNAPSHOT_BYTES_MAX;
    m.snapshot_resp.done = true;
    roundtrip(&m);
    m.snapshot_resp.done = false;
    m.snapshot_resp.rejected = true;
    m.snapshot_resp.next_offset = 0;
    roundtrip(&m);

    msg_base(&m, RAFT_MSG_TIMEOUT_NOW);
    roundtrip(&m);
}

static void test_roundtrip_snapshot(void **state)
{
    (void)state;
    struct raft_msg m;
    make_snapshot(&m, 0, 1000, 5000, false); /* first chunk */
    roundtrip(&m);
    make_snapshot(&m, 4000, 1000, 5000, true); /* last chunk */
    roundtrip(&m);
    make_snapshot(&m, 0, 0, 0, true); /* empty snapshot data */
    roundtrip(&m);
    make_snapshot(&m, RAFT_SNAPSHOT_BYTES_MAX - RAFT_SNAPSHOT_CHUNK_BYTES,
                  RAFT_SNAPSHOT_CHUNK_BYTES, RAFT_SNAPSHOT_BYTES_MAX, true);
    roundtrip(&m);
    make_snapshot(&m, 0, 10, 10, true);
    config_simple(&snap_config, 8, RAFT_MEMBERS_MAX - 8, RAFT_MEMBERS_MAX);
    roundtrip(&m);
}

/* ---- encoder refusals ----------------------------------------------------------------- */

static void expect_encode_refused(const struct raft_msg *m)
{
    struct rr_bytes b;
    rr_bytes_init(&b);
    size_t bytes = 0;
    assert_int_equal(codec_msg_encoded_bytes(m, &bytes), RR_EINVAL);
    assert_int_equal(codec_msg_encode(&b, m), RR_EINVAL);
    assert_int_equal(b.len, 0);
    rr_bytes_free(&b);
}

static void test_encode_refuses_invalid(void **state)
{
    (void)state;
    static struct raft_entry entries[RAFT_APPEND_ENTRIES_MAX + 1];
    struct raft_msg m;
    msg_base(&m, RAFT_MSG_PERSISTED);
    expect_encode_refused(&m);
    msg_base(&m, 0);
    expect_encode_refused(&m);
    msg_base(&m, RAFT_MSG_TYPE_MAX + 1);
    expect_encode_refused(&m);
    msg_base(&m, RAFT_MSG_TIMEOUT_NOW);
    m.from = 0;
    expect_encode_refused(&m);
    m.from = 1;
    m.to = RAFT_NODE_ID_MAX + 1;
    expect_encode_refused(&m);

    make_append(&m, entries, RAFT_APPEND_ENTRIES_MAX + 1, 0, 0);
    expect_encode_refused(&m);
    make_append(&m, entries, 2, 0, RAFT_APPEND_BYTES_MAX / 2 + 1);
    expect_encode_refused(&m);
    make_append(&m, entries, 1, 0, RAFT_ENTRY_BYTES_MAX);
    entries[0].data.len++;
    expect_encode_refused(&m);
    make_append(&m, entries, 3, 10, 1);
    entries[2].index = 12; /* not prev_index + 3 */
    expect_encode_refused(&m);
    make_append(&m, entries, 3, 10, 1);
    entries[1].type = 3;
    expect_encode_refused(&m);
    make_append(&m, entries, 3, 10, 1);
    entries[1].term = m.term + 1; /* above the sender's term */
    expect_encode_refused(&m);
    make_append(&m, entries, 3, 10, 1);
    entries[0].term = 0;
    expect_encode_refused(&m);
    make_append(&m, entries, 3, 10, 1);
    entries[2].term = 2; /* terms go backwards */
    expect_encode_refused(&m);
    make_append(&m, entries, 1, UINT64_MAX, 1); /* index would wrap */
    expect_encode_refused(&m);
    make_append(&m, entries, 1, 0, 1);
    m.append.entries = NULL;
    expect_encode_refused(&m);

    make_snapshot(&m, 0, RAFT_SNAPSHOT_CHUNK_BYTES + 1, RAFT_SNAPSHOT_BYTES_MAX, false);
    expect_encode_refused(&m);
    make_snapshot(&m, 4000, 1000, 4500, false); /* chunk past the end */
    expect_encode_refused(&m);
    make_snapshot(&m, 0, 1000, 5000, true); /* done before the end */
    expect_encode_refused(&m);
    make_snapshot(&m, 0, 10, 10, true);
    m.snapshot.last_index = 0;
    expect_encode_refused(&m);
    make_snapshot(&m, 0, 10, 10, true);
    snap_config.member_count = 0;
    expect_encode_refused(&m);
    make_snapshot(&m, 0, 10, 10, true);
    m.snapshot.config = NULL;
    expect_encode_refused(&m);
    make_snapshot(&m, 0, 10, 10, true);
    m.snapshot.chunk.base = NULL;
    expect_encode_refused(&m);
    msg_base(&m, RAFT_MSG_SNAPSHOT_RESP);
    m.snapshot_resp.rejected = true;
    m.snapshot_resp.done = true;
    expect_encode_refused(&m);
}

/* ---- malformed messages --------------------------------------------------------------- */

static void test_decode_bad_header(void **state)
{
    (void)state;
    struct raft_msg m;
    msg_base(&m, RAFT_MSG_TIMEOUT_NOW);
    assert_int_equal(decode_mutated(&m, 0, 0), RR_EBADVERSION);
    assert_int_equal(decode_mutated(&m, 0, CODEC_VERSION + 1), RR_EBADVERSION);
    assert_int_equal(decode_mutated(&m, 1, 0), RR_EBADTYPE);
    assert_int_equal(decode_mutated(&m, 1, RAFT_MSG_PERSISTED), RR_EBADTYPE);
    assert_int_equal(decode_mutated(&m, 1, RAFT_MSG_TYPE_MAX + 1), RR_EBADTYPE);
    assert_int_equal(decode_mutated(&m, 1, 255), RR_EBADTYPE);
    assert_int_equal(decode_with_field(&m, 6, 0, 4), RR_ECORRUPT);                     /* from */
    assert_int_equal(decode_with_field(&m, 10, RAFT_NODE_ID_MAX + 1, 4), RR_ECORRUPT); /* to */
    assert_int_equal(decode_with_field(&m, 10, RAFT_NODE_ID_MAX, 4), 0);

    /* The type byte of a valid TIMEOUT_NOW changed to one with a body: short, not corrupt. */
    assert_int_equal(decode_mutated(&m, 1, RAFT_MSG_VOTE), RR_ETRUNCATED);
    struct raft_msg d;
    assert_int_equal(codec_msg_decode(NULL, 0, &d, &scratch), RR_ETRUNCATED);
}

static void test_decode_bad_bool(void **state)
{
    (void)state;
    struct raft_msg m;
    msg_base(&m, RAFT_MSG_VOTE);
    assert_int_equal(decode_mutated(&m, HEADER_BYTES + 16, 2), RR_ECORRUPT);
    assert_int_equal(decode_mutated(&m, HEADER_BYTES + 16, 0xff), RR_ECORRUPT);
    assert_int_equal(decode_mutated(&m, HEADER_BYTES + 16, 1), 0);
    msg_base(&m, RAFT_MSG_PRE_VOTE_RESP);
    assert_int_equal(decode_mutated(&m, HEADER_BYTES, 2), RR_ECORRUPT);
    msg_base(&m, RAFT_MSG_APPEND_RESP);
    assert_int_equal(decode_mutated(&m, HEADER_BYTES, 0x80), RR_ECORRUPT);
    msg_base(&m, RAFT_MSG_SNAPSHOT_RESP);
    assert_int_equal(decode_mutated(&m, HEADER_BYTES + 16, 2), RR_ECORRUPT);
    assert_int_equal(decode_mutated(&m, HEADER_BYTES + 17, 2), RR_ECORRUPT);
    make_snapshot(&m, 0, 10, 20, false);
    size_t done_at = HEADER_BYTES + 16 + 2 + 5 * 4 + 16;
    assert_int_equal(decode_mutated(&m, done_at, 2), RR_ECORRUPT);
}

static void test_decode_append_limits(void **state)
{
    (void)state;
    struct raft_entry entries[4];
    struct raft_msg m;
    make_append(&m, entries, 2, 10, 4);
    const size_t count_at = HEADER_BYTES + 24;
    const size_t entry0 = count_at + 4;
    assert_int_equal(decode_with_field(&m, count_at, RAFT_APPEND_ENTRIES_MAX + 1, 4), RR_ETOOBIG);
    assert_int_equal(decode_with_field(&m, count_at, UINT32_MAX, 4), RR_ETOOBIG);
    assert_int_equal(decode_with_field(&m, count_at, 3, 4), RR_ETRUNCATED);
    assert_int_equal(decode_with_field(&m, count_at, 1, 4), RR_ECORRUPT); /* trailing entry */
    assert_int_equal(decode_with_field(&m, entry0 + 9, RAFT_ENTRY_BYTES_MAX + 1, 4), RR_ETOOBIG);
    assert_int_equal(decode_with_field(&m, entry0 + 9, UINT32_MAX, 4), RR_ETOOBIG);
    assert_true(decode_with_field(&m, entry0 + 9, 5, 4) < 0);         /* misframes the next entry */
    assert_int_equal(decode_mutated(&m, entry0 + 8, 0), RR_ECORRUPT); /* entry type */
    assert_int_equal(decode_mutated(&m, entry0 + 8, 3), RR_ECORRUPT);
    assert_int_equal(decode_with_field(&m, entry0, 0, 8), RR_ECORRUPT);          /* term 0 */
    assert_int_equal(decode_with_field(&m, entry0, m.term + 1, 8), RR_ECORRUPT); /* > term */
    assert_int_equal(decode_with_field(&m, entry0, 7, 8), 0);
    assert_int_equal(decode_with_field(&m, entry0 + 17, 2, 8), RR_ECORRUPT); /* backwards */
    /* prev_term above the first entry's term breaks Log Matching. */
    assert_int_equal(decode_with_field(&m, HEADER_BYTES + 8, 4, 8), RR_ECORRUPT);
    /* prev_index + count past UINT64_MAX. */
    assert_int_equal(decode_with_field(&m, HEADER_BYTES, UINT64_MAX - 1, 8), RR_ECORRUPT);
    assert_int_equal(decode_with_field(&m, HEADER_BYTES, UINT64_MAX - 2, 8), 0);
}

/* Two full-size entries: each within RAFT_ENTRY_BYTES_MAX, together over the message's bytes. */
static void test_decode_append_total_bytes(void **state)
{
    (void)state;
    struct raft_entry entries[2];
    struct raft_msg m;
    make_append(&m, entries, 1, 0, RAFT_ENTRY_BYTES_MAX);
    struct rr_bytes b;
    encode_or_fail(&b, &m);
    size_t one = 13 + (size_t)RAFT_ENTRY_BYTES_MAX;
    assert_int_equal(rr_bytes_reserve(&b, one), 0);
    memcpy(b.base + b.len, b.base + b.len - one, one);
    b.len += one;
    put_le(b.base + HEADER_BYTES + 24, 2, 4);
    struct raft_msg d;
    assert_int_equal(codec_msg_decode(b.base, b.len, &d, &scratch), RR_ETOOBIG);
    /* Sanity: the same bytes with the count at 1 are a valid message plus trailing bytes. */
    put_le(b.base + HEADER_BYTES + 24, 1, 4);
    assert_int_equal(codec_msg_decode(b.base, b.len, &d, &scratch), RR_ECORRUPT);
    assert_int_equal(codec_msg_decode(b.base, b.len - one, &d, &scratch), 0);
    rr_bytes_free(&b);
}

static void test_decode_snapshot_limits(void **state)
{
    (void)state;
    struct raft_msg m;
    make_snapshot(&m, 0, 10, 20, false); /* config: 4 members */
    const size_t config_at = HEADER_BYTES + 16;
    const size_t offset_at = config_at + 2 + 5 * 4;
    const size_t total_at = offset_at + 8;
    const size_t chunk_len_at = total_at + 9;
    assert_int_equal(decode_mutated(&m, config_at, RAFT_MEMBERS_MAX + 1), RR_ETOOBIG);
    assert_int_equal(decode_mutated(&m, config_at + 1, 255), RR_ETOOBIG);
    assert_true(decode_mutated(&m, config_at, 0) < 0); /* no members, and misframed */
    assert_int_equal(decode_mutated(&m, config_at + 2 + 4, 0), RR_ECORRUPT); /* role 0 */
    assert_int_equal(decode_mutated(&m, config_at + 2 + 4, 3), RR_ECORRUPT);
    assert_int_equal(decode_with_field(&m, config_at + 2, 0, 4), RR_ECORRUPT); /* id 0 */
    assert_int_equal(decode_with_field(&m, config_at + 2, 2, 4), RR_ECORRUPT); /* duplicate */
    assert_int_equal(decode_with_field(&m, chunk_len_at, RAFT_SNAPSHOT_CHUNK_BYTES + 1, 4),
                     RR_ETOOBIG);
    assert_int_equal(decode_with_field(&m, total_at, RAFT_SNAPSHOT_BYTES_MAX + 1ull, 8),
                     RR_ETOOBIG);
    assert_int_equal(decode_with_field(&m, offset_at, 11, 8), RR_ECORRUPT); /* past total */
    assert_int_equal(decode_with_field(&m, offset_at, UINT64_MAX, 8), RR_ECORRUPT);
    assert_int_equal(decode_with_field(&m, HEADER_BYTES, 0, 8), RR_ECORRUPT);     /* index 0 */
    assert_int_equal(decode_with_field(&m, HEADER_BYTES + 8, 0, 8), RR_ECORRUPT); /* term 0 */
    assert_int_equal(decode_with_field(&m, HEADER_BYTES + 8, m.term + 1, 8), RR_ECORRUPT);
    assert_int_equal(decode_mutated(&m, total_at + 8, 1), RR_ECORRUPT); /* done too early */
}

/* ---- configurations ------------------------------------------------------------------- */

static void config_roundtrip(const struct raft_config *c)
{
    struct rr_bytes b;
    rr_bytes_init(&b);
    assert_int_equal(codec_config_encode(&b, c), 0);
    struct raft_config d;
    assert_int_equal(codec_config_decode(b.base, b.len, &d), 0);
    config_equal(c, &d);
    for (size_t n = 0; n < b.len; n++) {
        assert_int_equal(codec_config_decode(b.base, n, &d), RR_ETRUNCATED);
    }
    assert_int_equal(rr_bytes_reserve(&b, 1), 0);
    b.base[b.len] = 0;
    assert_int_equal(codec_config_decode(b.base, b.len + 1, &d), RR_ECORRUPT);
    b.base[0] = CODEC_VERSION + 1;
    assert_int_equal(codec_config_decode(b.base, b.len, &d), RR_EBADVERSION);
    rr_bytes_free(&b);
}

static void test_config_roundtrip(void **state)
{
    (void)state;
    struct raft_config c;
    config_simple(&c, 1, 0, 0);
    config_roundtrip(&c);
    config_simple(&c, 3, 2, 0);
    config_roundtrip(&c);
    config_simple(&c, 3, 0, 3); /* joint */
    config_roundtrip(&c);
    config_simple(&c, RAFT_MEMBERS_MAX, 0, RAFT_MEMBERS_MAX);
    config_roundtrip(&c);
    config_simple(&c, 1, RAFT_MEMBERS_MAX - 1, 1);
    c.old_members[0].id = 1; /* the same node in both halves is normal in a joint config */
    config_roundtrip(&c);
}

static void expect_config_refused(const struct raft_config *c)
{
    struct rr_bytes b;
    rr_bytes_init(&b);
    assert_int_equal(codec_config_encode(&b, c), RR_EINVAL);
    assert_int_equal(b.len, 0);
    rr_bytes_free(&b);
}

static void test_config_invalid(void **state)
{
    (void)state;
    struct raft_config c;
    config_simple(&c, 0, 0, 0);
    expect_config_refused(&c);
    config_simple(&c, 0, 2, 0); /* learners only */
    expect_config_refused(&c);
    config_simple(&c, 2, 0, 0);
    c.old_member_count = 1;
    c.old_members[0].id = 9;
    c.old_members[0].role = RAFT_LEARNER; /* old half without voters */
    expect_config_refused(&c);
    config_simple(&c, 3, 0, 0);
    c.members[2].id = 1;
    expect_config_refused(&c);
    config_simple(&c, 3, 0, 0);
    c.members[1].role = 0;
    expect_config_refused(&c);
    config_simple(&c, 3, 0, 0);
    c.members[1].id = RAFT_NODE_ID_MAX + 1;
    expect_config_refused(&c);
    config_simple(&c, 3, 0, 0);
    c.member_count = RAFT_MEMBERS_MAX + 1;
    expect_config_refused(&c);

    /* Decoding bytes built by hand. */
    struct raft_config d;
    uint8_t over[3] = {CODEC_VERSION, RAFT_MEMBERS_MAX + 1, 0};
    assert_int_equal(codec_config_decode(over, sizeof(over), &d), RR_ETOOBIG);
    uint8_t none[3] = {CODEC_VERSION, 0, 0};
    assert_int_equal(codec_config_decode(none, sizeof(none), &d), RR_ECORRUPT);
    uint8_t one[8] = {CODEC_VERSION, 1, 0, 5, 0, 0, 0, RAFT_VOTER};
    assert_int_equal(codec_config_decode(one, sizeof(one), &d), 0);
    assert_int_equal(d.members[0].id, 5);
    one[7] = 3;
    assert_int_equal(codec_config_decode(one, sizeof(one), &d), RR_ECORRUPT);
    one[7] = RAFT_VOTER;
    one[6] = 0x80; /* id 2^31 + 5 */
    assert_int_equal(codec_config_decode(one, sizeof(one), &d), RR_ECORRUPT);
    assert_int_equal(codec_config_decode(NULL, 0, &d), RR_ETRUNCATED);
}

/* ---- rr_bytes ------------------------------------------------------------------------- */

static void test_bytes_limit(void **state)
{
    (void)state;
    struct rr_bytes b;
    rr_bytes_init(&b);
    assert_int_equal(rr_bytes_reserve(&b, 0), 0);
    assert_int_equal(rr_bytes_reserve(&b, RAFT_BATCH_BYTES_MAX + 1ul), RR_ETOOBIG);
    assert_int_equal(rr_bytes_reserve(&b, SIZE_MAX), RR_ETOOBIG);
    assert_int_equal(rr_bytes_reserve(&b, 10), 0);
    assert_true(b.cap >= 10);
    b.len = 10;
    assert_int_equal(rr_bytes_reserve(&b, RAFT_BATCH_BYTES_MAX - 10), 0);
    assert_int_equal(b.cap, RAFT_BATCH_BYTES_MAX);
    b.base[RAFT_BATCH_BYTES_MAX - 1] = 1; /* the whole capacity is addressable */
    assert_int_equal(rr_bytes_reserve(&b, RAFT_BATCH_BYTES_MAX - 9), RR_ETOOBIG);
    b.len = RAFT_BATCH_BYTES_MAX;
    assert_int_equal(rr_bytes_reserve(&b, 0), 0);
    assert_int_equal(rr_bytes_reserve(&b, 1), RR_ETOOBIG);
    rr_bytes_free(&b);
    assert_null(b.base);
    assert_int_equal(b.len, 0);
    rr_bytes_free(&b); /* freeing twice is harmless */
}

/* ---- batches -------------------------------------------------------------------------- */

#define MIXED_HB      1000u
#define MIXED_HB_RESP 500u
#define MIXED_MSGS    5u

struct mixed {
    struct raft_entry entries[8];
    struct raft_msg msgs[MIXED_MSGS];
    struct codec_heartbeat hb[MIXED_HB];
    struct codec_heartbeat hb_resp[MIXED_HB_RESP];
};

static void mixed_init(struct mixed *x)
{
    msg_base(&x->msgs[0], RAFT_MSG_VOTE);
    x->msgs[0].vote.last_log_index = 9;
    make_append(&x->msgs[1], x->entries, 8, 40, 100);
    make_snapshot(&x->msgs[2], 0, 300, 300, true);
    msg_base(&x->msgs[3], RAFT_MSG_APPEND_RESP);
    x->msgs[3].group = 7;
    x->msgs[3].append_resp.index = 48;
    msg_base(&x->msgs[4], RAFT_MSG_TIMEOUT_NOW);
    for (uint32_t i = 0; i < MIXED_HB; i++) {
        x->hb[i] = (struct codec_heartbeat){
            .group = i * 3, .term = 5 + i % 2, .commit = 1000 + i, .read_ctx = i % 5};
    }
    for (uint32_t i = 0; i < MIXED_HB_RESP; i++) {
        x->hb_resp[i] =
            (struct codec_heartbeat){.group = i * 7 + 1, .term = 9, .read_ctx = UINT64_MAX - i};
    }
}

/* Writes: msg0, n_hb heartbeats, msg1, msg2, n_resp heartbeat responses, msg3, msg4. */
static void mixed_write(const struct mixed *x, struct rr_bytes *out, uint32_t n_hb, uint32_t n_resp)
{
    struct codec_batch_writer w;
    assert_int_equal(codec_batch_begin(&w, out, 1, 2), 0);
    assert_true(codec_batch_is_empty(&w));
    assert_int_equal(codec_batch_add_msg(&w, &x->msgs[0]), 0);
    assert_false(codec_batch_is_empty(&w));
    assert_int_equal(codec_batch_add_heartbeats(&w, false, x->hb, n_hb), 0);
    assert_int_equal(codec_batch_add_msg(&w, &x->msgs[1]), 0);
    assert_int_equal(codec_batch_add_msg(&w, &x->msgs[2]), 0);
    assert_int_equal(codec_batch_add_heartbeats(&w, true, x->hb_resp, n_resp), 0);
    assert_int_equal(codec_batch_add_msg(&w, &x->msgs[3]), 0);
    assert_int_equal(codec_batch_add_msg(&w, &x->msgs[4]), 0);
    codec_batch_end(&w);
}

static void expect_heartbeat(const struct raft_msg *m, const struct codec_heartbeat *hb, bool resp)
{
    assert_int_equal(m->type, resp ? RAFT_MSG_HEARTBEAT_RESP : RAFT_MSG_HEARTBEAT);
    assert_int_equal(m->from, 1);
    assert_int_equal(m->to, 2);
    assert_int_equal(m->group, hb->group);
    assert_true(m->term == hb->term);
    if (resp) {
        assert_true(m->heartbeat_resp.read_ctx == hb->read_ctx);
    } else {
        assert_true(m->heartbeat.commit == hb->commit);
        assert_true(m->heartbeat.read_ctx == hb->read_ctx);
    }
}

static void
mixed_check(const struct mixed *x, const uint8_t *in, size_t len, uint32_t n_hb, uint32_t n_resp)
{
    struct codec_batch_reader r;
    struct raft_msg m;
    assert_int_equal(codec_batch_open(&r, in, len), 0);
    assert_int_equal(r.from, 1);
    assert_int_equal(r.to, 2);
    assert_int_equal(codec_batch_next(&r, &m, &scratch), 1);
    msg_equal(&x->msgs[0], &m);
    for (uint32_t i = 0; i < n_hb; i++) {
        assert_int_equal(codec_batch_next(&r, &m, &scratch), 1);
        expect_heartbeat(&m, &x->hb[i], false);
    }
    for (uint32_t k = 1; k <= 2; k++) {
        assert_int_equal(codec_batch_next(&r, &m, &scratch), 1);
        msg_equal(&x->msgs[k], &m);
    }
    for (uint32_t i = 0; i < n_resp; i++) {
        assert_int_equal(codec_batch_next(&r, &m, &scratch), 1);
        expect_heartbeat(&m, &x->hb_resp[i], true);
    }
    for (uint32_t k = 3; k <= 4; k++) {
        assert_int_equal(codec_batch_next(&r, &m, &scratch), 1);
        msg_equal(&x->msgs[k], &m);
    }
    assert_int_equal(codec_batch_next(&r, &m, &scratch), 0);
    assert_int_equal(codec_batch_next(&r, &m, &scratch), 0);
}

/* Reads a whole batch; returns the first result <= 0 and counts messages. */
static int batch_drain(const uint8_t *in, size_t len, uint32_t *msgs)
{
    struct codec_batch_reader r;
    struct raft_msg m;
    int rc = codec_batch_open(&r, in, len);
    *msgs = 0;
    while (rc >= 0) {
        rc = codec_batch_next(&r, &m, &scratch);
        if (rc <= 0) {
            break;
        }
        (*msgs)++;
        assert_true(*msgs <= len); /* every message costs at least one byte */
    }
    return rc;
}

static void test_batch_mixed(void **state)
{
    (void)state;
    static struct mixed x;
    mixed_init(&x);
    struct rr_bytes b;
    rr_bytes_init(&b);
    assert_int_equal(rr_bytes_reserve(&b, 3), 0);
    b.len = 3; /* the batch need not start at offset 0 of the buffer */
    mixed_write(&x, &b, MIXED_HB, MIXED_HB_RESP);
    mixed_check(&x, b.base + 3, b.len - 3, MIXED_HB, MIXED_HB_RESP);
    uint32_t msgs = 0;
    assert_int_equal(batch_drain(b.base + 3, b.len - 3, &msgs), 0);
    assert_int_equal(msgs, MIXED_MSGS + MIXED_HB + MIXED_HB_RESP);
    rr_bytes_free(&b);
}

static void test_batch_empty(void **state)
{
    (void)state;
    struct rr_bytes b;
    rr_bytes_init(&b);
    struct codec_batch_writer w;
    assert_int_equal(codec_batch_begin(&w, &b, 3, RAFT_NODE_ID_MAX), 0);
    assert_int_equal(codec_batch_add_heartbeats(&w, false, NULL, 0), 0);
    assert_true(codec_batch_is_empty(&w));
    codec_batch_end(&w);
    struct codec_batch_reader r;
    struct raft_msg m;
    assert_int_equal(codec_batch_open(&r, b.base, b.len), 0);
    assert_int_equal(r.from, 3);
    assert_int_equal(r.to, RAFT_NODE_ID_MAX);
    assert_int_equal(codec_batch_next(&r, &m, &scratch), 0);
    rr_bytes_free(&b);

    assert_int_equal(codec_batch_begin(&w, &b, 0, 1), RR_EINVAL);
    assert_int_equal(codec_batch_begin(&w, &b, 1, RAFT_NODE_ID_MAX + 1), RR_EINVAL);
    assert_int_equal(b.len, 0);
    rr_bytes_free(&b);
}

static void test_batch_heartbeats_all_groups(void **state)
{
    (void)state;
    struct codec_heartbeat *hb = calloc(RAFT_GROUPS_MAX + 1, sizeof(*hb));
    assert_non_null(hb);
    for (uint32_t g = 0; g <= RAFT_GROUPS_MAX; g++) {
        hb[g] = (struct codec_heartbeat){
            .group = g, .term = g + 1ull, .commit = 2ull * g, .read_ctx = g % 3};
    }
    struct rr_bytes b;
    rr_bytes_init(&b);
    struct codec_batch_writer w;
    assert_int_equal(codec_batch_begin(&w, &b, 2, 1), 0);
    size_t before = b.len;
    assert_int_equal(codec_batch_add_heartbeats(&w, false, hb, RAFT_GROUPS_MAX + 1), RR_EINVAL);
    assert_int_equal(b.len, before);
    assert_int_equal(codec_batch_add_heartbeats(&w, false, hb, RAFT_GROUPS_MAX), 0);
    assert_int_equal(codec_batch_add_heartbeats(&w, true, hb, RAFT_GROUPS_MAX), 0);
    codec_batch_end(&w);
    /* Coalescing: 28 (or 20) bytes per group instead of a 43 (or 35) byte message record. */
    assert_int_equal(b.len, 13 + 2 * (5 + 4) + (28 + 20) * (size_t)RAFT_GROUPS_MAX);

    struct codec_batch_reader r;
    struct raft_msg m;
    assert_int_equal(codec_batch_open(&r, b.base, b.len), 0);
    for (uint32_t pass = 0; pass < 2; pass++) {
        for (uint32_t g = 0; g < RAFT_GROUPS_MAX; g++) {
            assert_int_equal(codec_batch_next(&r, &m, &scratch), 1);
            assert_int_equal(m.from, 2);
            assert_int_equal(m.to, 1);
            assert_int_equal(m.group, g);
            assert_true(m.term == g + 1ull);
            if (pass == 0) {
                assert_int_equal(m.type, RAFT_MSG_HEARTBEAT);
                assert_true(m.heartbeat.commit == 2ull * g);
                assert_true(m.heartbeat.read_ctx == g % 3);
            } else {
                assert_int_equal(m.type, RAFT_MSG_HEARTBEAT_RESP);
                assert_true(m.heartbeat_resp.read_ctx == g % 3);
            }
        }
    }
    assert_int_equal(codec_batch_next(&r, &m, &scratch), 0);
    rr_bytes_free(&b);
    free(hb);
}

static void test_batch_writer_refusals(void **state)
{
    (void)state;
    struct rr_bytes b;
    rr_bytes_init(&b);
    struct codec_batch_writer w;
    assert_int_equal(codec_batch_begin(&w, &b, 1, 2), 0);
    size_t before = b.len;
    struct raft_msg m;
    msg_base(&m, RAFT_MSG_HEARTBEAT);
    m.from = 3; /* not the batch's sender */
    assert_int_equal(codec_batch_add_msg(&w, &m), RR_EINVAL);
    msg_base(&m, RAFT_MSG_HEARTBEAT);
    m.to = 1;
    assert_int_equal(codec_batch_add_msg(&w, &m), RR_EINVAL);
    msg_base(&m, RAFT_MSG_PERSISTED);
    assert_int_equal(codec_batch_add_msg(&w, &m), RR_EINVAL);
    assert_int_equal(b.len, before);
    assert_true(codec_batch_is_empty(&w));
    rr_bytes_free(&b);
}

/* A batch that would pass RAFT_BATCH_BYTES_MAX is refused record by record, intact. */
static void test_batch_full(void **state)
{
    (void)state;
    static struct raft_entry entries[RAFT_APPEND_ENTRIES_MAX];
    struct raft_msg m;
    make_append(&m, entries, 1, 0, RAFT_ENTRY_BYTES_MAX);
    struct rr_bytes b;
    rr_bytes_init(&b);
    struct codec_batch_writer w;
    assert_int_equal(codec_batch_begin(&w, &b, 1, 2), 0);
    uint32_t added = 0;
    int rc = 0;
    while ((rc = codec_batch_add_msg(&w, &m)) == 0) {
        added++;
    }
    assert_int_equal(rc, RR_ETOOBIG);
    assert_int_equal(added,
                     (RAFT_BATCH_BYTES_MAX - 13) / (5 + 22 + 28 + 13 + RAFT_ENTRY_BYTES_MAX));
    size_t len = b.len;
    codec_batch_end(&w);
    assert_int_equal(b.len, len);
    uint32_t msgs = 0;
    assert_int_equal(batch_drain(b.base, b.len, &msgs), 0);
    assert_int_equal(msgs, added);
    rr_bytes_free(&b);
}

/* Damage at a known offset of a small batch: header, then a message record at 13, then a
 * heartbeat record. */
static void small_batch(struct rr_bytes *b, size_t *hb_at)
{
    struct raft_msg m;
    msg_base(&m, RAFT_MSG_VOTE);
    struct codec_heartbeat hb[2] = {{.group = 1, .term = 2, .commit = 3, .read_ctx = 4},
                                    {.group = 5, .term = 6, .commit = 7, .read_ctx = 8}};
    rr_bytes_init(b);
    struct codec_batch_writer w;
    assert_int_equal(codec_batch_begin(&w, b, 1, 2), 0);
    assert_int_equal(codec_batch_add_msg(&w, &m), 0);
    *hb_at = b->len;
    assert_int_equal(codec_batch_add_heartbeats(&w, false, hb, 2), 0);
    codec_batch_end(&w);
    assert_int_equal(b->len, 13 + 5 + 22 + 17 + 5 + 4 + 2 * 28);
}

static int small_batch_with(size_t at, uint64_t v, unsigned width)
{
    struct rr_bytes b;
    size_t hb_at = 0;
    small_batch(&b, &hb_at);
    put_le(b.base + at, v, width);
    uint8_t *copy = malloc(b.len);
    assert_non_null(copy);
    memcpy(copy, b.base, b.len);
    uint32_t msgs = 0;
    int rc = batch_drain(copy, b.len, &msgs);
    free(copy);
    rr_bytes_free(&b);
    return rc;
}

static void test_batch_malformed(void **state)
{
    (void)state;
    struct rr_bytes b;
    size_t hb = 0;
    small_batch(&b, &hb);
    const size_t rec = 13; /* the message record */
    uint32_t msgs = 0;
    assert_int_equal(batch_drain(b.base, b.len, &msgs), 0);
    assert_int_equal(msgs, 3);

    assert_int_equal(small_batch_with(0, CODEC_VERSION + 1, 1), RR_EBADVERSION);
    assert_int_equal(small_batch_with(1, 0, 4), RR_ECORRUPT);                    /* from */
    assert_int_equal(small_batch_with(5, RAFT_NODE_ID_MAX + 1, 4), RR_ECORRUPT); /* to */
    assert_int_equal(small_batch_with(9, 1, 4), RR_ECORRUPT);   /* fewer records: trailing */
    assert_int_equal(small_batch_with(9, 3, 4), RR_ETRUNCATED); /* more records than bytes */
    assert_int_equal(small_batch_with(9, UINT32_MAX, 4), RR_ETRUNCATED);
    assert_int_equal(small_batch_with(rec, 0, 1), RR_EBADTYPE); /* record kind */
    assert_int_equal(small_batch_with(rec, 4, 1), RR_EBADTYPE);
    assert_int_equal(small_batch_with(rec + 1, 38, 4), RR_ETRUNCATED); /* length < body */
    assert_int_equal(small_batch_with(rec + 1, 40, 4), RR_ECORRUPT);   /* length > body */
    assert_int_equal(small_batch_with(rec + 1, UINT32_MAX, 4), RR_ETRUNCATED);
    assert_int_equal(small_batch_with(rec + 5 + 6, 3, 4), RR_ECORRUPT);  /* msg from != batch */
    assert_int_equal(small_batch_with(rec + 5 + 10, 1, 4), RR_ECORRUPT); /* msg to != batch */
    assert_int_equal(small_batch_with(rec + 5 + 1, RAFT_MSG_PERSISTED, 1), RR_EBADTYPE);
    assert_int_equal(small_batch_with(rec + 5 + 0, 0, 1), RR_EBADVERSION);
    assert_int_equal(small_batch_with(hb, RAFT_MSG_HEARTBEAT, 1), RR_EBADTYPE);
    assert_int_equal(small_batch_with(hb + 1, 4 + 2 * 28 + 1, 4), RR_ETRUNCATED);
    assert_int_equal(small_batch_with(hb + 1, 4 + 28 + 1, 4), RR_ECORRUPT); /* length < set */
    assert_int_equal(small_batch_with(hb + 5, 1, 4), RR_ECORRUPT);          /* count vs length */
    assert_int_equal(small_batch_with(hb + 5, 3, 4), RR_ECORRUPT);
    assert_int_equal(small_batch_with(hb + 5, 0, 4), RR_ECORRUPT); /* empty set */
    assert_int_equal(small_batch_with(hb + 5, RAFT_GROUPS_MAX + 1, 4), RR_ETOOBIG);
    assert_int_equal(small_batch_with(hb + 1, 3, 4), RR_ETRUNCATED); /* shorter than count */
    /* The heartbeat record re-labelled as a set of responses no longer divides evenly. */
    assert_int_equal(small_batch_with(hb, 3, 1), RR_ECORRUPT);

    /* Trailing bytes after the last record. */
    assert_int_equal(rr_bytes_reserve(&b, 1), 0);
    b.base[b.len] = 0;
    assert_int_equal(batch_drain(b.base, b.len + 1, &msgs), RR_ECORRUPT);
    struct codec_batch_reader r;
    assert_int_equal(codec_batch_open(&r, b.base, RAFT_BATCH_BYTES_MAX + 1ul), RR_ETOOBIG);
    assert_int_equal(codec_batch_open(&r, NULL, 0), RR_ETRUNCATED);
    rr_bytes_free(&b);
}

/* Every proper prefix of a valid batch is refused, by open or by some next. */
static void test_batch_every_prefix(void **state)
{
    (void)state;
    static struct mixed x;
    mixed_init(&x);
    struct rr_bytes b;
    rr_bytes_init(&b);
    mixed_write(&x, &b, 20, 10); /* small enough to drain every prefix quickly */
    mixed_check(&x, b.base, b.len, 20, 10);
    uint8_t *copy = malloc(b.len);
    assert_non_null(copy);
    uint32_t msgs = 0;
    for (size_t n = 0; n < b.len; n++) {
        memcpy(copy, b.base, n);
        int rc = batch_drain(n > 0 ? copy : NULL, n, &msgs);
        assert_true(rc < 0);
    }
    free(copy);
    rr_bytes_free(&b);
}

/* ---- fuzz ----------------------------------------------------------------------------- */

/* Longer or different runs: build with -DFUZZ_ITERATIONS=... -DFUZZ_SEED=... */
#ifndef FUZZ_ITERATIONS
#define FUZZ_ITERATIONS 100000u
#endif
#ifndef FUZZ_SEED
#define FUZZ_SEED 0x5eed0c0dec5eedULL
#endif

struct corpus {
    uint32_t count;
    struct rr_bytes items[32];
    uint8_t kind[32]; /* 0 message, 1 batch, 2 configuration */
};

static void corpus_add_msg(struct corpus *c, const struct raft_msg *m)
{
    assert_true(c->count < 32);
    rr_bytes_init(&c->items[c->count]);
    assert_int_equal(codec_msg_encode(&c->items[c->count], m), 0);
    c->kind[c->count++] = 0;
}

static void corpus_build(struct corpus *c, struct mixed *x)
{
    static struct raft_entry entries[16];
    struct raft_msg m;
    memset(c, 0, sizeof(*c));
    mixed_init(x);
    for (uint32_t i = 0; i < MIXED_MSGS; i++) {
        corpus_add_msg(c, &x->msgs[i]);
    }
    msg_base(&m, RAFT_MSG_HEARTBEAT);
    m.heartbeat.commit = 5;
    corpus_add_msg(c, &m);
    msg_base(&m, RAFT_MSG_SNAPSHOT_RESP);
    corpus_add_msg(c, &m);
    make_append(&m, entries, 16, 3, 2);
    corpus_add_msg(c, &m);
    make_snapshot(&m, 0, 8, 8, true);
    config_simple(&snap_config, 2, 1, 3);
    corpus_add_msg(c, &m);

    size_t hb_at = 0;
    small_batch(&c->items[c->count], &hb_at);
    c->kind[c->count++] = 1;
    struct codec_batch_writer w;
    rr_bytes_init(&c->items[c->count]);
    assert_int_equal(codec_batch_begin(&w, &c->items[c->count], 1, 2), 0);
    assert_int_equal(codec_batch_add_msg(&w, &x->msgs[1]), 0);
    assert_int_equal(codec_batch_add_heartbeats(&w, true, x->hb_resp, 3), 0);
    assert_int_equal(codec_batch_add_msg(&w, &x->msgs[3]), 0);
    codec_batch_end(&w);
    c->kind[c->count++] = 1;

    struct raft_config config;
    config_simple(&config, 3, 1, 2);
    rr_bytes_init(&c->items[c->count]);
    assert_int_equal(codec_config_encode(&c->items[c->count], &config), 0);
    c->kind[c->count++] = 2;
}

static void mutate(struct rr_prng *p, uint8_t *buf, size_t *len, size_t cap)
{
    static const uint8_t interesting[] = {0, 1, 2, 3, 0x7f, 0x80, 0xfe, 0xff};
    uint64_t op = rr_prng_range(p, 0, 6);
    if (*len == 0 || op == 5) { /* grow by random bytes */
        size_t add = (size_t)rr_prng_range(p, 1, 9);
        for (size_t i = 0; i < add && *len < cap; i++) {
            buf[(*len)++] = (uint8_t)rr_prng_next(p);
        }
        return;
    }
    size_t at = (size_t)rr_prng_range(p, 0, *len);
    switch (op) {
    case 0:
        buf[at] ^= (uint8_t)(1u << rr_prng_range(p, 0, 8));
        break;
    case 1:
        buf[at] = interesting[rr_prng_range(p, 0, sizeof(interesting))];
        break;
    case 2:
        buf[at] = (uint8_t)rr_prng_next(p);
        break;
    case 3:
        *len = at; /* truncate */
        break;
    default: /* delete one byte */
        memmove(buf + at, buf + at + 1, *len - at - 1);
        (*len)--;
        break;
    }
}

/* A decoded message re-encodes to the very bytes it came from: the encoding is canonical,
 * so whatever the decoder accepts it understood completely. */
static void check_canonical(const uint8_t *in, size_t len)
{
    struct raft_msg m;
    if (codec_msg_decode(in, len, &m, &scratch) != 0) {
        return;
    }
    struct rr_bytes b;
    rr_bytes_init(&b);
    assert_int_equal(codec_msg_encode(&b, &m), 0);
    assert_int_equal(b.len, len);
    assert_memory_equal(b.base, in, len);
    rr_bytes_free(&b);
}

static void check_config_canonical(const uint8_t *in, size_t len)
{
    struct raft_config c;
    if (codec_config_decode(in, len, &c) != 0) {
        return;
    }
    struct rr_bytes b;
    rr_bytes_init(&b);
    assert_int_equal(codec_config_encode(&b, &c), 0);
    assert_int_equal(b.len, len);
    assert_memory_equal(b.base, in, len);
    rr_bytes_free(&b);
}

static void fuzz_one(const uint8_t *in, size_t len, uint32_t *accepted)
{
    struct raft_msg m;
    struct raft_config c;
    uint32_t msgs = 0;
    *accepted += codec_msg_decode(in, len, &m, &scratch) == 0;
    *accepted += codec_config_decode(in, len, &c) == 0;
    *accepted += batch_drain(in, len, &msgs) == 0;
    check_canonical(in, len);
    check_config_canonical(in, len);
}

static void test_fuzz_mutations(void **state)
{
    (void)state;
    static struct mixed x;
    struct corpus c;
    corpus_build(&c, &x);
    struct rr_prng p;
    rr_prng_seed(&p, FUZZ_SEED);
    uint32_t accepted = 0;
    for (uint32_t it = 0; it < FUZZ_ITERATIONS; it++) {
        const struct rr_bytes *src = &c.items[rr_prng_range(&p, 0, c.count)];
        size_t cap = src->len + 64;
        size_t len = src->len;
        uint8_t *work = malloc(cap);
        assert_non_null(work);
        memcpy(work, src->base, src->len);
        uint64_t rounds = rr_prng_range(&p, 1, 5);
        for (uint64_t k = 0; k < rounds; k++) {
            mutate(&p, work, &len, cap);
        }
        /* An exact-size copy: ASan flags any read past the end. */
        uint8_t *exact = malloc(len > 0 ? len : 1);
        assert_non_null(exact);
        memcpy(exact, work, len);
        fuzz_one(len > 0 ? exact : NULL, len, &accepted);
        free(exact);
        free(work);
    }
    /* Some mutations (a flipped payload bit, a changed term) keep the input valid; if none
     * did the loop would be testing nothing but the first checks. */
    assert_true(accepted > FUZZ_ITERATIONS / 100);
    print_message("fuzz: %u iterations, %u accepted decodes\n", FUZZ_ITERATIONS, accepted);
    for (uint32_t i = 0; i < c.count; i++) {
        rr_bytes_free(&c.items[i]);
    }
}

/* Random bytes behind a plausible header, so decoding gets past the first checks. */
static void test_fuzz_random_bytes(void **state)
{
    (void)state;
    struct rr_prng p;
    rr_prng_seed(&p, FUZZ_SEED + 1);
    uint32_t accepted = 0;
    for (uint32_t it = 0; it < FUZZ_ITERATIONS; it++) {
        /* Lengths cluster on the fixed sizes (header + 0, 1, 8, 16, 17, 18, 25 bytes). */
        size_t len = rr_prng_chance(&p, 500000) ? (size_t)rr_prng_range(&p, 0, 120)
                                                : HEADER_BYTES + (size_t)rr_prng_range(&p, 0, 26);
        uint8_t *buf = malloc(len > 0 ? len : 1);
        assert_non_null(buf);
        for (size_t i = 0; i < len; i++) {
            uint64_t r = rr_prng_next(&p);
            buf[i] = (uint8_t)((r & 0x300) == 0 ? (r >> 16) % 4 : r); /* many small values */
        }
        if (len > 1 && rr_prng_chance(&p, 900000)) {
            buf[0] = CODEC_VERSION;
            buf[1] = (uint8_t)rr_prng_range(&p, 0, RAFT_MSG_TYPE_MAX + 2);
        }
        if (len >= HEADER_BYTES && rr_prng_chance(&p, 500000)) {
            put_le(buf + 6, 1, 4); /* valid from and to */
            put_le(buf + 10, rr_prng_range(&p, 1, 4), 4);
        }
        fuzz_one(len > 0 ? buf : NULL, len, &accepted);
        free(buf);
    }
    assert_true(accepted > 0);
    print_message("random: %u iterations, %u accepted decodes\n", FUZZ_ITERATIONS, accepted);
}

/* Random structured messages: whatever the encoder accepts decodes back equal. */
static void random_msg(struct rr_prng *p, struct raft_msg *m, struct raft_entry *entries)
{
    static const uint64_t edges[] = {0, 1, 2, 100, UINT32_MAX, UINT64_MAX - 1, UINT64_MAX};
#define PICK() (rr_prng_chance(p, 500000) ? edges[rr_prng_range(p, 0, 7)] : rr_prng_next(p) % 64)
    msg_base(m, (uint8_t)rr_prng_range(p, RAFT_MSG_VOTE, RAFT_MSG_TIMEOUT_NOW + 1));
    m->term = PICK();
    m->from = (raft_node)rr_prng_range(p, 0, RAFT_NODE_ID_MAX + 2);
    m->to = (raft_node)rr_prng_range(p, 1, 4);
    if (m->type == RAFT_MSG_APPEND) {
        uint32_t count = (uint32_t)rr_prng_range(p, 0, 6);
        make_append(m, entries, count, rr_prng_next(p) % 50, (uint32_t)rr_prng_range(p, 0, 9));
        m->term = PICK();
        for (uint32_t i = 0; i < count; i++) {
            entries[i].term = rr_prng_chance(p, 800000) ? m->term : PICK();
        }
    } else if (m->type == RAFT_MSG_SNAPSHOT) {
        uint64_t total = rr_prng_range(p, 0, 100);
        uint64_t offset = rr_prng_range(p, 0, total + 2);
        uint32_t chunk = (uint32_t)rr_prng_range(p, 0, 50);
        make_snapshot(m, offset, chunk, total, rr_prng_chance(p, 500000));
        m->term = PICK();
        m->snapshot.last_term = rr_prng_range(p, 0, 8);
    } else if (m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PRE_VOTE) {
        m->vote.last_log_index = PICK();
        m->vote.last_log_term = PICK();
        m->vote.transfer = rr_prng_chance(p, 500000);
    } else if (m->type == RAFT_MSG_VOTE_RESP || m->type == RAFT_MSG_PRE_VOTE_RESP) {
        m->vote_resp.granted = rr_prng_chance(p, 500000);
    } else if (m->type == RAFT_MSG_APPEND_RESP) {
        m->append_resp.rejected = rr_prng_chance(p, 500000);
        m->append_resp.index = PICK();
        m->append_resp.hint_index = PICK();
        m->append_resp.hint_term = PICK();
    } else if (m->type == RAFT_MSG_HEARTBEAT) {
        m->heartbeat.commit = PICK();
        m->heartbeat.read_ctx = PICK();
    } else if (m->type == RAFT_MSG_HEARTBEAT_RESP) {
        m->heartbeat_resp.read_ctx = PICK();
    } else if (m->type == RAFT_MSG_SNAPSHOT_RESP) {
        m->snapshot_resp.index = PICK();
        m->snapshot_resp.next_offset = PICK();
        m->snapshot_resp.rejected = rr_prng_chance(p, 300000);
        m->snapshot_resp.done = rr_prng_chance(p, 300000);
    }
#undef PICK
}

static void test_fuzz_structured(void **state)
{
    (void)state;
    struct raft_entry entries[8];
    struct rr_prng p;
    rr_prng_seed(&p, FUZZ_SEED + 2);
    uint32_t encoded = 0;
    for (uint32_t it = 0; it < FUZZ_ITERATIONS / 4; it++) {
        struct raft_msg m;
        random_msg(&p, &m, entries);
        struct rr_bytes b;
        rr_bytes_init(&b);
        int rc = codec_msg_encode(&b, &m);
        if (rc == 0) {
            encoded++;
            struct raft_msg d;
            assert_int_equal(codec_msg_decode(b.base, b.len, &d, &scratch), 0);
            msg_equal(&m, &d);
        } else {
            assert_int_equal(rc, RR_EINVAL);
            assert_int_equal(b.len, 0);
        }
        rr_bytes_free(&b);
    }
    assert_true(encoded > FUZZ_ITERATIONS / 20);
    print_message("structured: %u of %u encoded\n", encoded, FUZZ_ITERATIONS / 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_vote),
        cmocka_unit_test(test_roundtrip_append),
        cmocka_unit_test(test_roundtrip_append_config_entry),
        cmocka_unit_test(test_roundtrip_small_types),
        cmocka_unit_test(test_roundtrip_snapshot),
        cmocka_unit_test(test_encode_refuses_invalid),
        cmocka_unit_test(test_decode_bad_header),
        cmocka_unit_test(test_decode_bad_bool),
        cmocka_unit_test(test_decode_append_limits),
        cmocka_unit_test(test_decode_append_total_bytes),
        cmocka_unit_test(test_decode_snapshot_limits),
        cmocka_unit_test(test_config_roundtrip),
        cmocka_unit_test(test_config_invalid),
        cmocka_unit_test(test_bytes_limit),
        cmocka_unit_test(test_batch_mixed),
        cmocka_unit_test(test_batch_empty),
        cmocka_unit_test(test_batch_heartbeats_all_groups),
        cmocka_unit_test(test_batch_writer_refusals),
        cmocka_unit_test(test_batch_full),
        cmocka_unit_test(test_batch_malformed),
        cmocka_unit_test(test_batch_every_prefix),
        cmocka_unit_test(test_fuzz_mutations),
        cmocka_unit_test(test_fuzz_random_bytes),
        cmocka_unit_test(test_fuzz_structured),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
