/* Shared fixture for the Raft rule tests: one core instance with an in-memory disk and
 * captured output, message builders, and a tiny network of instances. Header-only because
 * every tests/unit/test_*.c is its own binary; all functions are static inline so a test
 * file that uses only some of them still builds warning-free.
 *
 * The fixture follows core/raft.h's contract: a ready batch's writes are "durable" only
 * when fx_persist() runs, which then releases the batch's msgs_after_persist (stepping
 * those addressed to this node). Every ready is checked against the contract on the way:
 * entries contiguous with the disk log, committed entries in order and already durable. */
#ifndef RR_TESTS_UNIT_RAFT_FIXTURE_H
#define RR_TESTS_UNIT_RAFT_FIXTURE_H

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

#include "core/base/errors.h"
#include "core/raft.h"

#define FX_GROUP       7     /* group id stamped on every message in these tests */
#define FX_MSGS_MAX    2048  /* captured messages per node between clears */
#define FX_LOG_MAX     1024  /* highest log index the fake disk tracks */
#define FX_APPLIED_MAX 1024  /* committed entries recorded per node */
#define FX_READS_MAX   256   /* read states recorded per node */
#define FX_NODES_MAX   5     /* nodes in a test cluster; ids are 1..FX_NODES_MAX */
#define FX_LOOPS_MAX   10000 /* bound on drain/deliver loops: a core that never quiesces fails */

/* A captured message with its own copy of the entries and chunk it points to. */
struct fx_msg {
    struct raft_msg m;
    bool after_persist;         /* came from msgs_after_persist */
    struct raft_entry *entries; /* owned copy (APPEND) */
    uint8_t *bytes;             /* owned copy of entry data or snapshot chunk */
    struct raft_config *config; /* owned copy of a snapshot's configuration */
};

struct fx {
    struct raft *r;
    struct raft_options o;
    struct raft_config cfg;
    struct fx_msg *out; /* released messages for peers, in release order */
    uint32_t out_count;
    struct fx_msg *held; /* msgs_after_persist not yet released */
    uint32_t held_count;
    /* The fake disk. */
    struct raft_hard_state hs;
    uint32_t hs_writes;              /* ready batches carrying a hard state */
    raft_term disk_term[FX_LOG_MAX]; /* term of each written index */
    raft_index disk_last;            /* last written index */
    raft_index durable_last;         /* last index whose write fx_persist() completed */
    uint32_t truncations;            /* writes that replaced a suffix */
    uint32_t entry_writes;           /* ready batches carrying entries */
    raft_index snap_index;           /* last snapshot written, 0 if none */
    raft_term snap_term;             /* its term */
    uint8_t *snap_data;              /* its bytes: the image this node sends chunks of */
    uint64_t snap_bytes;
    /* A snapshot being received: the chunks handed out, stored in order. */
    uint8_t *rx_data;
    uint64_t rx_len;
    raft_index rx_index;
    uint64_t rx_transfer;  /* its transfer (raft_snapshot_chunk.transfer) */
    bool refuse_snapshots; /* the verdict on a received image: refuse (a corrupt image) */
    bool hold_verdicts;    /* give no verdict: the test gives it (raft_snapshot_received) */
    uint32_t verdicts;     /* raft_snapshot_received calls */
    uint32_t rx_drops;     /* readies reporting RAFT_READY_SNAPSHOT_DROPPED */
    /* The fake state machine. */
    raft_index applied[FX_APPLIED_MAX]; /* committed entries handed out, in order */
    raft_term applied_term[FX_APPLIED_MAX];
    uint32_t applied_count;
    raft_index applied_last; /* last applied index (a snapshot moves it) */
    struct raft_read_state reads[FX_READS_MAX];
    uint32_t read_count;
    uint64_t read_failures[FX_READS_MAX]; /* contexts of failed reads, in order */
    uint32_t read_failure_count;
    /* Role events (RAFT_READY_ROLE): how many, and the last one. */
    uint32_t role_events;
    uint8_t ev_role;
    raft_term ev_term;
    raft_node ev_leader;
    uint32_t readies; /* ready batches taken */
};

/* assert_non_null that the compiler also understands (cmocka's failure is not _Noreturn,
 * so -Wnull-dereference would flag the uses that follow). */
#define FX_NONNULL(p)                                                                              \
    do {                                                                                           \
        assert_non_null(p);                                                                        \
        if ((p) == NULL) {                                                                         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* ---- configuration and options ---------------------------------------------------- */

static inline void fx_config(struct raft_config *c, uint32_t voters)
{
    memset(c, 0, sizeof(*c));
    c->member_count = voters;
    for (uint32_t i = 0; i < voters; i++) {
        c->members[i].id = i + 1;
        c->members[i].role = RAFT_VOTER;
    }
}

/* Defaults for the rule tests: small election timeout, heartbeat every tick, PreVote and
 * CheckQuorum off (tests of those turn them on), fixed seed per node. */
static inline struct raft_options fx_options(raft_node id)
{
    struct raft_options o;
    raft_options_default(&o);
    o.id = id;
    o.group = FX_GROUP;
    o.election_ticks = 5;
    o.heartbeat_ticks = 1;
    o.pre_vote = false;
    o.check_quorum = false;
    o.seed = 0x5eed0000u + id;
    return o;
}

/* A configuration of the given voters and learners. */
static inline void fx_config_ids(struct raft_config *c,
                                 const raft_node *voters,
                                 uint32_t voter_count,
                                 const raft_node *learners,
                                 uint32_t learner_count)
{
    memset(c, 0, sizeof(*c));
    for (uint32_t i = 0; i < voter_count; i++) {
        c->members[c->member_count++] = (struct raft_member){voters[i], RAFT_VOTER};
    }
    for (uint32_t i = 0; i < learner_count; i++) {
        c->members[c->member_count++] = (struct raft_member){learners[i], RAFT_LEARNER};
    }
}

/* Entries with the given terms at first.. (empty payloads). */
static inline void
fx_entries(struct raft_entry *e, raft_index first, const raft_term *terms, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        memset(&e[i], 0, sizeof(e[i]));
        e[i].index = first + i;
        e[i].term = terms[i];
        e[i].type = RAFT_ENTRY_NORMAL;
    }
}

/* ---- creation ----------------------------------------------------------------------- */

/* A node with bootstrap configuration `cfg` and optional durable state `rs`. */
static inline struct fx *fx_new_config(const struct raft_options *o,
                                       const struct raft_config *cfg,
                                       const struct raft_restore *rs)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->o = *o;
    f->cfg = *cfg;
    f->out = calloc(FX_MSGS_MAX, sizeof(*f->out));
    f->held = calloc(FX_MSGS_MAX, sizeof(*f->held));
    f->r = malloc(raft_sizeof());
    assert_non_null(f->out);
    assert_non_null(f->held);
    assert_non_null(f->r);
    assert_int_equal(raft_init(f->r, o, &f->cfg, rs), 0);
    struct raft_status st;
    raft_status(f->r, &st);
    f->ev_role = st.role;
    f->ev_term = st.term;
    f->ev_leader = st.leader;
    if (rs != NULL) {
        f->hs = rs->hard_state;
        f->snap_index = rs->snapshot.index;
        f->applied_last = rs->snapshot.index;
        for (uint32_t i = 0; i < rs->entry_count; i++) {
            raft_index idx = rs->entries[i].index;
            assert_true(idx < FX_LOG_MAX);
            f->disk_term[idx] = rs->entries[i].term;
            f->disk_last = idx;
        }
        if (rs->entry_count == 0) {
            f->disk_last = rs->snapshot.index;
        }
        f->durable_last = f->disk_last;
    }
    return f;
}

/* A node of a bootstrap cluster of voters 1..voters, with optional durable state. */
static inline struct fx *
fx_new_restore(const struct raft_options *o, uint32_t voters, const struct raft_restore *rs)
{
    struct raft_config c;
    fx_config(&c, voters);
    return fx_new_config(o, &c, rs);
}

/* A fresh node `id` of a `voters`-voter bootstrap cluster. */
static inline struct fx *fx_new(raft_node id, uint32_t voters)
{
    struct raft_options o = fx_options(id);
    return fx_new_restore(&o, voters, NULL);
}

/* A node restarting with a durable log of the given terms (indexes 1..n) and hard state. */
static inline struct fx *fx_new_log(const struct raft_options *o,
                                    uint32_t voters,
                                    const raft_term *terms,
                                    uint32_t n,
                                    raft_term term,
                                    raft_node vote)
{
    struct raft_entry e[FX_LOG_MAX];
    assert_true(n < FX_LOG_MAX);
    fx_entries(e, 1, terms, n);
    struct raft_restore rs;
    memset(&rs, 0, sizeof(rs));
    rs.hard_state.term = term;
    rs.hard_state.vote = vote;
    rs.entries = e;
    rs.entry_count = n;
    return fx_new_restore(o, voters, &rs);
}

static inline void fx_msg_release(struct fx_msg *m)
{
    free(m->entries);
    free(m->bytes);
    free(m->config);
    memset(m, 0, sizeof(*m));
}

/* The configuration in force (raft_config copies it out). */
static inline struct raft_config fx_config_now(const struct raft *r)
{
    struct raft_config c;
    raft_config(r, &c);
    return c;
}

/* The same in one of a few rotating buffers, for use inside an expression. */
static inline const struct raft_config *fx_config_in_force(const struct raft *r)
{
    static struct raft_config ring[4];
    static unsigned next;
    struct raft_config *c = &ring[next++ % 4];
    raft_config(r, c);
    return c;
}

/* Clears the pointers of a copy of a captured message (they point into the capture). */
static inline void fx_msg_forget_data(struct raft_msg *m)
{
    if (m->type == RAFT_MSG_APPEND) {
        m->append.entries = NULL;
    } else if (m->type == RAFT_MSG_SNAPSHOT) {
        m->snapshot.chunk.base = NULL;
        m->snapshot.config = NULL;
    }
}

/* Forgets the captured outbound messages. */
static inline void fx_clear(struct fx *f)
{
    for (uint32_t i = 0; i < f->out_count; i++) {
        fx_msg_release(&f->out[i]);
    }
    f->out_count = 0;
}

static inline void fx_free(struct fx *f)
{
    fx_clear(f);
    for (uint32_t i = 0; i < f->held_count; i++) {
        fx_msg_release(&f->held[i]);
    }
    raft_fini(f->r);
    free(f->r);
    free(f->out);
    free(f->held);
    free(f->snap_data);
    free(f->rx_data);
    free(f);
}

/* The caller's side of raft_snapshot_taken: the image is durable and kept (the core keeps
 * none, and asks for chunks of it to send). */
static inline int fx_snapshot_taken(
    struct fx *f, raft_index index, const void *data, uint64_t bytes, raft_index trailing)
{
    int rv = raft_snapshot_taken(f->r, index, bytes, trailing);
    if (rv == 0) {
        free(f->snap_data);
        f->snap_data = malloc(bytes + 1u);
        FX_NONNULL(f->snap_data);
        if (bytes > 0) {
            memcpy(f->snap_data, data, (size_t)bytes);
        }
        f->snap_bytes = bytes;
        f->snap_index = index;
    }
    return rv;
}

/* A node restored with a snapshot keeps its image too. */
static inline void fx_set_image(struct fx *f, const void *data, uint64_t bytes)
{
    free(f->snap_data);
    f->snap_data = malloc(bytes + 1u);
    FX_NONNULL(f->snap_data);
    if (bytes > 0) {
        memcpy(f->snap_data, data, (size_t)bytes);
    }
    f->snap_bytes = bytes;
}

/* ---- state ------------------------------------------------------------------------------ */

static inline struct raft_status fx_status(const struct fx *f)
{
    struct raft_status s;
    raft_status(f->r, &s);
    return s;
}

static inline uint8_t fx_role(const struct fx *f)
{
    return fx_status(f).role;
}

static inline raft_term fx_term(const struct fx *f)
{
    return fx_status(f).term;
}

static inline raft_index fx_commit(const struct fx *f)
{
    return fx_status(f).commit;
}

static inline raft_index fx_last(const struct fx *f)
{
    return fx_status(f).last_index;
}

static inline struct raft_progress_view fx_progress(const struct fx *f, raft_node id)
{
    struct raft_progress_view p;
    memset(&p, 0, sizeof(p));
    assert_true(raft_progress(f->r, id, &p));
    return p;
}

/* ---- draining ready batches ----------------------------------------------------------- */

static inline void fx_copy_msg(struct fx_msg *d, const struct raft_msg *m, bool after)
{
    memset(d, 0, sizeof(*d));
    d->m = *m;
    d->after_persist = after;
    if (m->type == RAFT_MSG_APPEND && m->append.entry_count > 0) {
        uint32_t n = m->append.entry_count;
        size_t total = 1;
        for (uint32_t i = 0; i < n; i++) {
            total += m->append.entries[i].data.len;
        }
        d->entries = calloc(n, sizeof(*d->entries));
        d->bytes = malloc(total);
        assert_non_null(d->entries);
        assert_non_null(d->bytes);
        size_t off = 0;
        for (uint32_t i = 0; i < n; i++) {
            d->entries[i] = m->append.entries[i];
            uint32_t len = m->append.entries[i].data.len;
            if (raft_entry_released(&m->append.entries[i])) {
                continue; /* released (options.release_applied): the caller reads it back */
            }
            if (len > 0) {
                memcpy(d->bytes + off, m->append.entries[i].data.base, len);
            }
            d->entries[i].data.base = d->bytes + off;
            off += len;
        }
        d->m.append.entries = d->entries;
    } else if (m->type == RAFT_MSG_SNAPSHOT) {
        d->bytes = malloc(m->snapshot.chunk.len + 1u);
        assert_non_null(d->bytes);
        if (m->snapshot.chunk.len > 0) {
            memcpy(d->bytes, m->snapshot.chunk.base, m->snapshot.chunk.len);
        }
        d->m.snapshot.chunk.base = d->bytes;
        d->config = malloc(sizeof(*d->config));
        assert_non_null(d->config);
        *d->config = *m->snapshot.config;
        d->m.snapshot.config = d->config;
    }
}

static inline void fx_record_entries(struct fx *f, const struct raft_ready *rd)
{
    raft_index first = rd->entries[0].index;
    assert_true(first >= 1);
    assert_true(first <= f->disk_last + 1); /* contiguous with what is on disk */
    if (first <= f->disk_last) {
        f->truncations++;
        if (f->durable_last >= first) {
            f->durable_last = first - 1;
        }
    }
    for (uint32_t i = 0; i < rd->entry_count; i++) {
        const struct raft_entry *e = &rd->entries[i];
        assert_int_equal(e->index, first + i);
        assert_true(e->index < FX_LOG_MAX);
        f->disk_term[e->index] = e->term;
    }
    f->disk_last = first + rd->entry_count - 1;
    f->entry_writes++;
}

/* A received chunk: stored in order (core/raft.h: chunks are handed out in order; offset 0
 * starts over). */
static inline void fx_record_chunk(struct fx *f, const struct raft_snapshot_chunk *ch)
{
    if (ch->offset == 0) {
        f->rx_len = 0;
        f->rx_index = ch->meta->index;
        f->rx_transfer = ch->transfer;
    }
    assert_int_equal(ch->offset, f->rx_len);
    assert_int_equal(ch->meta->index, f->rx_index);
    assert_int_equal(ch->transfer, f->rx_transfer);
    f->rx_data = realloc(f->rx_data, ch->offset + ch->len + 1u);
    FX_NONNULL(f->rx_data);
    if (ch->len > 0) {
        memcpy(f->rx_data + ch->offset, ch->data, ch->len);
    }
    f->rx_len = ch->offset + ch->len;
}

static inline void fx_record_snapshot(struct fx *f, const struct raft_ready *rd)
{
    /* The installed image is the one received. */
    assert_int_equal(f->rx_index, rd->snapshot->index);
    assert_int_equal(f->rx_len, rd->snapshot_bytes);
    fx_set_image(f, f->rx_data, rd->snapshot_bytes);
    f->snap_index = rd->snapshot->index;
    f->snap_term = rd->snapshot->term;
    f->disk_last = rd->snapshot->index;
    f->durable_last = 0; /* the snapshot is durable only at the next fx_persist */
    f->applied_last = rd->snapshot->index;
}

static inline void fx_record_committed(struct fx *f, const struct raft_ready *rd)
{
    for (uint32_t i = 0; i < rd->committed_count; i++) {
        const struct raft_entry *e = &rd->committed[i];
        /* Applied in order, without gaps, and only once locally durable. */
        assert_int_equal(e->index, f->applied_last + 1);
        assert_true(e->index <= f->durable_last);
        f->applied_last = e->index;
        if (f->applied_count < FX_APPLIED_MAX) {
            f->applied[f->applied_count] = e->index;
            f->applied_term[f->applied_count] = e->term;
            f->applied_count++;
        }
    }
}

/* Takes one ready batch: writes go to the fake disk (not yet durable), messages to `out`
 * or `held`, committed entries and reads are recorded. */
static inline void fx_take_ready(struct fx *f)
{
    struct raft_ready rd;
    memset(&rd, 0, sizeof(rd));
    raft_ready(f->r, &rd);
    f->readies++;
    if (rd.flags & RAFT_READY_HARD_STATE) {
        f->hs = rd.hard_state;
        f->hs_writes++;
    }
    bool verdict = false;
    if (rd.flags & RAFT_READY_SNAPSHOT_DROPPED) {
        f->rx_drops++;
        f->rx_len = 0; /* what was stored of it goes */
    }
    if (rd.flags & RAFT_READY_SNAPSHOT_CHUNK) {
        fx_record_chunk(f, rd.snapshot_chunk);
        verdict = rd.snapshot_chunk->done;
    }
    if ((rd.flags & RAFT_READY_SNAPSHOT) && rd.snapshot != NULL) {
        fx_record_snapshot(f, &rd);
    }
    if ((rd.flags & RAFT_READY_ENTRIES) && rd.entry_count > 0) {
        fx_record_entries(f, &rd);
    }
    for (uint32_t i = 0; i < rd.msg_count; i++) {
        struct raft_msg m = rd.msgs[i];
        if (m.type == RAFT_MSG_SNAPSHOT && m.snapshot.chunk.base == NULL &&
            m.snapshot.chunk.len > 0) {
            /* The core asks for a chunk of its image: read it from ours. */
            if (f->snap_data == NULL || f->snap_index != m.snapshot.last_index ||
                m.snapshot.offset + m.snapshot.chunk.len > f->snap_bytes) {
                continue; /* not ours any more: dropped, sent again later */
            }
            m.snapshot.chunk.base = f->snap_data + m.snapshot.offset;
        }
        assert_true(f->out_count < FX_MSGS_MAX);
        fx_copy_msg(&f->out[f->out_count++], &m, false);
    }
    for (uint32_t i = 0; i < rd.msg_after_persist_count; i++) {
        assert_true(f->held_count < FX_MSGS_MAX);
        fx_copy_msg(&f->held[f->held_count++], &rd.msgs_after_persist[i], true);
    }
    fx_record_committed(f, &rd);
    for (uint32_t i = 0; i < rd.read_count; i++) {
        assert_true(f->read_count < FX_READS_MAX);
        f->reads[f->read_count++] = rd.reads[i];
    }
    for (uint32_t i = 0; i < rd.read_failure_count; i++) {
        assert_true(rd.flags & RAFT_READY_READ_FAILURES);
        assert_true(f->read_failure_count < FX_READS_MAX);
        f->read_failures[f->read_failure_count++] = rd.read_failures[i];
    }
    if (rd.flags & RAFT_READY_ROLE) {
        /* A role event reports a change, and terms never go back. */
        assert_true(rd.role != f->ev_role || rd.term != f->ev_term || rd.leader != f->ev_leader);
        assert_true(rd.term >= f->ev_term);
        f->ev_role = rd.role;
        f->ev_term = rd.term;
        f->ev_leader = rd.leader;
        f->role_events++;
    }
    raft_advance(f->r, &rd);
    if (verdict && !f->hold_verdicts) {
        /* The whole image is stored: check it and give the verdict. */
        assert_int_equal(raft_snapshot_received(f->r, f->rx_transfer, !f->refuse_snapshots), 0);
        f->verdicts++;
    }
    /* Once nothing is left to hand out, the events reported are the group's state. */
    if (!raft_has_ready(f->r)) {
        struct raft_status st;
        raft_status(f->r, &st);
        assert_int_equal(f->ev_role, st.role);
        assert_int_equal(f->ev_term, st.term);
        assert_int_equal(f->ev_leader, st.leader);
    }
}

/* Takes every ready batch without completing any persist. */
static inline void fx_drain_nopersist(struct fx *f)
{
    for (uint32_t i = 0; i < FX_LOOPS_MAX && raft_has_ready(f->r); i++) {
        fx_take_ready(f);
    }
    assert_false(raft_has_ready(f->r));
}

/* Completes every write taken so far: releases the held messages, stepping those
 * addressed to this node (persist acknowledgements, own vote) and queueing the rest. */
static inline void fx_persist(struct fx *f)
{
    f->durable_last = f->disk_last;
    uint32_t n = f->held_count;
    for (uint32_t i = 0; i < n; i++) {
        struct fx_msg *h = &f->held[i];
        if (h->m.to == f->o.id) {
            assert_int_equal(raft_step(f->r, &h->m), 0);
            fx_msg_release(h);
        } else {
            assert_true(f->out_count < FX_MSGS_MAX);
            f->out[f->out_count++] = *h; /* ownership moves */
            memset(h, 0, sizeof(*h));
        }
    }
    f->held_count = 0;
}

/* Takes ready batches and completes their persists until nothing is left. */
static inline void fx_drain(struct fx *f)
{
    for (uint32_t i = 0; i < FX_LOOPS_MAX; i++) {
        if (raft_has_ready(f->r)) {
            fx_take_ready(f);
        } else if (f->held_count > 0) {
            fx_persist(f);
        } else {
            return;
        }
    }
    fail_msg("node %u never quiesced", (unsigned)f->o.id);
}

/* ---- inspecting captured messages ---------------------------------------------------- */

/* Matches type (0: any) and recipient (RAFT_NODE_NONE: any). */
static inline bool fx_match(const struct fx_msg *m, uint8_t type, raft_node to)
{
    return (type == 0 || m->m.type == type) && (to == RAFT_NODE_NONE || m->m.to == to);
}

static inline uint32_t fx_count(const struct fx *f, uint8_t type, raft_node to)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < f->out_count; i++) {
        n += fx_match(&f->out[i], type, to) ? 1u : 0u;
    }
    return n;
}

static inline const struct fx_msg *fx_find(const struct fx *f, uint8_t type, raft_node to)
{
    for (uint32_t i = 0; i < f->out_count; i++) {
        if (fx_match(&f->out[i], type, to)) {
            return &f->out[i];
        }
    }
    return NULL;
}

static inline const struct fx_msg *fx_find_last(const struct fx *f, uint8_t type, raft_node to)
{
    for (uint32_t i = f->out_count; i > 0; i--) {
        if (fx_match(&f->out[i - 1], type, to)) {
            return &f->out[i - 1];
        }
    }
    return NULL;
}

/* Like fx_find, but the message must exist; returns its raft_msg. */
static inline const struct raft_msg *fx_expect(const struct fx *f, uint8_t type, raft_node to)
{
    const struct fx_msg *m = fx_find_last(f, type, to);
    if (m == NULL) {
        fail_msg("node %u sent no %s to %u", (unsigned)f->o.id, raft_msg_type_name(type),
                 (unsigned)to);
        abort(); /* not reached: fail_msg ends the test; tells the compiler m is set */
    }
    return &m->m;
}

/* Number of APPENDs to `to` that carry at least one entry. */
static inline uint32_t fx_count_appends(const struct fx *f, raft_node to)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < f->out_count; i++) {
        const struct fx_msg *m = &f->out[i];
        if (fx_match(m, RAFT_MSG_APPEND, to) && m->m.append.entry_count > 0) {
            n++;
        }
    }
    return n;
}

/* ---- building inbound messages ------------------------------------------------------- */

static inline struct raft_msg fx_msg(uint8_t type, raft_node from, raft_node to, raft_term term)
{
    struct raft_msg m;
    memset(&m, 0, sizeof(m));
    m.type = type;
    m.group = FX_GROUP;
    m.from = from;
    m.to = to;
    m.term = term;
    return m;
}

static inline struct raft_msg fx_vote(uint8_t type,
                                      raft_node from,
                                      raft_node to,
                                      raft_term term,
                                      raft_index last_index,
                                      raft_term last_term)
{
    struct raft_msg m = fx_msg(type, from, to, term);
    m.vote.last_log_index = last_index;
    m.vote.last_log_term = last_term;
    return m;
}

static inline struct raft_msg
fx_vote_resp(uint8_t type, raft_node from, raft_node to, raft_term term, bool granted)
{
    struct raft_msg m = fx_msg(type, from, to, term);
    m.vote_resp.granted = granted;
    return m;
}

static inline struct raft_msg fx_append(raft_node from,
                                        raft_node to,
                                        raft_term term,
                                        raft_index prev_index,
                                        raft_term prev_term,
                                        raft_index commit,
                                        const struct raft_entry *e,
                                        uint32_t n)
{
    struct raft_msg m = fx_msg(RAFT_MSG_APPEND, from, to, term);
    m.append.prev_index = prev_index;
    m.append.prev_term = prev_term;
    m.append.commit = commit;
    m.append.entries = e;
    m.append.entry_count = n;
    return m;
}

static inline struct raft_msg
fx_append_resp(raft_node from, raft_node to, raft_term term, bool rejected, raft_index index)
{
    struct raft_msg m = fx_msg(RAFT_MSG_APPEND_RESP, from, to, term);
    m.append_resp.rejected = rejected;
    m.append_resp.index = index;
    return m;
}

static inline struct raft_msg
fx_heartbeat(raft_node from, raft_node to, raft_term term, raft_index commit, uint64_t read_ctx)
{
    struct raft_msg m = fx_msg(RAFT_MSG_HEARTBEAT, from, to, term);
    m.heartbeat.commit = commit;
    m.heartbeat.read_ctx = read_ctx;
    return m;
}

static inline struct raft_msg
fx_heartbeat_resp(raft_node from, raft_node to, raft_term term, uint64_t read_ctx)
{
    struct raft_msg m = fx_msg(RAFT_MSG_HEARTBEAT_RESP, from, to, term);
    m.heartbeat_resp.read_ctx = read_ctx;
    return m;
}

static inline void fx_step(struct fx *f, const struct raft_msg *m)
{
    assert_int_equal(raft_step(f->r, m), 0);
}

static inline void fx_tick(struct fx *f, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        raft_tick(f->r);
    }
}

/* ---- common scenarios --------------------------------------------------------------------- */

/* Answers every PRE_VOTE / VOTE request in `out` with a grant (from its recipient) and
 * steps the answers; returns how many were answered. */
static inline uint32_t fx_grant_votes(struct fx *f)
{
    struct raft_msg resp[FX_NODES_MAX * 4];
    uint32_t n = 0;
    for (uint32_t i = 0; i < f->out_count && n < FX_NODES_MAX * 4; i++) {
        const struct raft_msg *m = &f->out[i].m;
        if (m->type == RAFT_MSG_PRE_VOTE || m->type == RAFT_MSG_VOTE) {
            uint8_t t = m->type == RAFT_MSG_VOTE ? RAFT_MSG_VOTE_RESP : RAFT_MSG_PRE_VOTE_RESP;
            resp[n++] = fx_vote_resp(t, m->to, f->o.id, m->term, true);
        }
    }
    fx_clear(f);
    for (uint32_t i = 0; i < n; i++) {
        raft_step(f->r, &resp[i]);
    }
    return n;
}

/* Campaigns and grants every vote until the node leads; persists everything; clears `out`.
 * The leader's no-op is written locally but not yet acknowledged by any follower. */
static inline void fx_make_leader(struct fx *f)
{
    raft_campaign(f->r);
    for (int round = 0; round < 4 && fx_role(f) != RAFT_LEADER; round++) {
        fx_drain(f);
        fx_grant_votes(f);
    }
    assert_int_equal(fx_role(f), RAFT_LEADER);
    fx_drain(f);
}

/* Acknowledges (as the followers would) every APPEND in `out` that carries entries, then
 * drains; returns the number acknowledged. */
static inline uint32_t fx_ack_appends(struct fx *f)
{
    struct raft_msg resp[FX_MSGS_MAX / 8];
    uint32_t n = 0;
    for (uint32_t i = 0; i < f->out_count && n < FX_MSGS_MAX / 8; i++) {
        const struct raft_msg *m = &f->out[i].m;
        if (m->type == RAFT_MSG_APPEND) {
            raft_index idx = m->append.prev_index + m->append.entry_count;
            resp[n++] = fx_append_resp(m->to, f->o.id, m->term, false, idx);
        }
    }
    fx_clear(f);
    for (uint32_t i = 0; i < n; i++) {
        fx_step(f, &resp[i]);
    }
    fx_drain(f);
    return n;
}

/* A leader of a `voters` cluster whose no-op is committed (all followers acked), `out`
 * cleared, every follower in the replicate state. */
static inline struct fx *fx_new_leader(const struct raft_options *o, uint32_t voters)
{
    struct fx *f = fx_new_restore(o, voters, NULL);
    fx_make_leader(f);
    fx_ack_appends(f);
    fx_clear(f);
    assert_int_equal(fx_commit(f), fx_last(f));
    return f;
}

/* Makes a follower know `leader` at `term` by stepping an empty heartbeat. */
static inline void fx_hear_leader(struct fx *f, raft_node leader, raft_term term)
{
    struct raft_msg hb = fx_heartbeat(leader, f->o.id, term, 0, 0);
    fx_step(f, &hb);
    fx_drain(f);
}

/* ---- a tiny network of real instances ---------------------------------------------------- */

struct fx_net {
    struct fx *n[FX_NODES_MAX + 1]; /* indexed by node id; [0] unused */
    uint32_t count;
    bool cut[FX_NODES_MAX + 1][FX_NODES_MAX + 1]; /* cut[a][b]: messages a->b are dropped */
    uint32_t delivered[RAFT_MSG_TYPE_MAX + 1];    /* per message type */
    uint32_t rejected_appends;                    /* APPEND_RESPs with rejected set */
    uint32_t chunk_max;                           /* largest SNAPSHOT chunk delivered */
};

static inline void fx_net_cut(struct fx_net *net, raft_node a, raft_node b)
{
    net->cut[a][b] = true;
    net->cut[b][a] = true;
}

/* Drains every node and delivers their messages until no node has anything left. Returns
 * the number of messages delivered. */
static inline uint32_t fx_net_deliver(struct fx_net *net)
{
    uint32_t total = 0;
    for (uint32_t loop = 0; loop < FX_LOOPS_MAX; loop++) {
        uint32_t moved = 0;
        for (raft_node id = 1; id <= net->count; id++) {
            struct fx *f = net->n[id];
            fx_drain(f);
            for (uint32_t i = 0; i < f->out_count; i++) {
                const struct raft_msg *m = &f->out[i].m;
                assert_true(m->to >= 1 && m->to <= net->count);
                if (!net->cut[id][m->to]) {
                    fx_step(net->n[m->to], m);
                    net->delivered[m->type]++;
                    if (m->type == RAFT_MSG_APPEND_RESP && m->append_resp.rejected) {
                        net->rejected_appends++;
                    }
                    if (m->type == RAFT_MSG_SNAPSHOT && m->snapshot.chunk.len > net->chunk_max) {
                        net->chunk_max = m->snapshot.chunk.len;
                    }
                    moved++;
                }
            }
            fx_clear(f);
        }
        total += moved;
        if (moved == 0) {
            return total;
        }
    }
    fail_msg("network never quiesced");
    return total;
}

/* Ticks every node once, then delivers. */
static inline void fx_net_tick(struct fx_net *net)
{
    for (raft_node id = 1; id <= net->count; id++) {
        raft_tick(net->n[id]->r);
    }
    fx_net_deliver(net);
}

/* A network of `count` fresh nodes, all bootstrapped with voters 1..voters (nodes above
 * `voters` are servers waiting to be added). */
static inline void
fx_net_init(struct fx_net *net, uint32_t count, uint32_t voters, bool pre_vote, bool check_quorum)
{
    assert_true(count <= FX_NODES_MAX);
    memset(net, 0, sizeof(*net));
    net->count = count;
    for (raft_node id = 1; id <= count; id++) {
        struct raft_options o = fx_options(id);
        o.pre_vote = pre_vote;
        o.check_quorum = check_quorum;
        net->n[id] = fx_new_restore(&o, voters, NULL);
    }
}

/* Makes `id` campaign and win, then ticks until its no-op is committed everywhere. */
static inline void fx_net_elect(struct fx_net *net, raft_node id)
{
    raft_campaign(net->n[id]->r);
    fx_net_deliver(net);
    if (fx_role(net->n[id]) != RAFT_LEADER) {
        raft_campaign(net->n[id]->r); /* PreVote passed; now the real election */
        fx_net_deliver(net);
    }
    assert_int_equal(fx_role(net->n[id]), RAFT_LEADER);
    fx_net_tick(net);
    fx_net_tick(net);
    assert_int_equal(fx_commit(net->n[id]), fx_last(net->n[id]));
}

static inline void fx_net_free(struct fx_net *net)
{
    for (raft_node id = 1; id <= net->count; id++) {
        fx_free(net->n[id]);
    }
}

#endif
