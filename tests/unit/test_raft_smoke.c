/* Smoke tests for the single-group core: a small in-memory cluster that elects, replicates,
 * commits, restarts nodes, serves ReadIndex and ships snapshots, checking State Machine
 * Safety on every apply; and a randomized fault test (asynchronous persists lost on crash,
 * loss, duplication, reordering, partitions, snapshots) checking Election Safety, Leader
 * Completeness and ReadIndex linearizability after every step. RAFT_SMOKE_SEEDS,
 * RAFT_SMOKE_START and RAFT_SMOKE_VERBOSE tune the randomized test. */
/* cmocka.h needs these first. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */
#include <stdlib.h>
#include <string.h>

#include "core/base/errors.h"
#include "core/base/prng.h"
#include "core/progress.h"
#include "core/raft.h"

#define N_MAX     5
#define LOG_MAX   4096
#define GROUP     3
#define NET_MAX   65536
#define READS_MAX 64

/* A node's durable state. */
struct disk {
    struct raft_hard_state hs;
    struct raft_snapshot_meta snap;
    uint8_t *snap_data;
    uint64_t snap_bytes;
    struct raft_entry ents[LOG_MAX]; /* ents[i]: index snap.index + 1 + i; data owned */
    uint32_t count;
};

/* One ready batch's writes and held messages, waiting for its (asynchronous) persist. */
struct unit {
    struct raft_ready rd; /* flags, hard state; pointers to the copies below */
    struct raft_snapshot_meta snap;
    uint8_t *snap_data;
    struct raft_entry *ents; /* deep copies */
    struct raft_msg *held;   /* msgs_after_persist (they carry no pointers) */
};

struct node {
    struct raft *r;
    bool up;
    struct disk disk;
    /* The image of the core's current snapshot (the core keeps none; chunks are read from
     * here), and a snapshot being received: the chunks handed out, in order. */
    raft_index img_index;
    uint8_t *img;
    uint64_t img_bytes;
    raft_index rx_index;
    uint8_t *rx;
    uint64_t rx_len;
    raft_index applied;
    uint64_t reads[READS_MAX];
    raft_index read_index[READS_MAX];
    uint32_t read_count;
    struct unit *units; /* pending persists, oldest first (async mode) */
    uint32_t unit_count;
};

struct netmsg {
    struct raft_msg m;
    struct raft_entry *ents; /* owned copies */
    uint8_t *bytes;
    struct raft_config *cfg; /* SNAPSHOT: owned copy (the sender may crash meanwhile) */
};

struct cluster {
    uint32_t n;
    struct node nodes[N_MAX];
    struct raft_config cfg;
    struct netmsg *net; /* FIFO */
    uint32_t net_head, net_count;
    uint32_t loss_per_million;
    struct rr_prng prng;
    /* State Machine Safety: what was applied at each index, by anyone. */
    raft_term applied_term[LOG_MAX];
    uint64_t applied_sum[LOG_MAX];
    /* Fault injection for the randomized test. */
    bool async;                     /* persists complete later, in order, or are lost */
    bool random_order;              /* deliver messages in random order */
    uint32_t dup_per_million;       /* duplicate a delivered message */
    bool cut[N_MAX][N_MAX];         /* link i -> j drops everything */
    raft_node term_leader[LOG_MAX]; /* Election Safety: the leader seen for each term */
    /* ReadIndex: highest index applied anywhere when read ctx was requested. */
    raft_index read_floor[1024];
    raft_term applied_at_term[LOG_MAX]; /* a term >= the one the entry was committed in */
    uint32_t profile;                   /* chaos_weights row */
};

static uint8_t *dup_bytes(const uint8_t *p, uint64_t len)
{
    if (len == 0) {
        return NULL;
    }
    uint8_t *c = malloc(len);
    assert_non_null(c);
    memcpy(c, p, len);
    return c;
}

static uint64_t sum_of(const struct raft_entry *e)
{
    uint64_t s = e->type;
    for (uint32_t i = 0; i < e->data.len; i++) {
        s = s * 31 + e->data.base[i];
    }
    return s;
}

/* ---- network --------------------------------------------------------------------- */

static void net_push(struct cluster *c, const struct raft_msg *m)
{
    if (c->loss_per_million > 0 && rr_prng_chance(&c->prng, c->loss_per_million)) {
        return;
    }
    assert_true(c->net_count < NET_MAX);
    struct netmsg *q = &c->net[(c->net_head + c->net_count++) % NET_MAX];
    memset(q, 0, sizeof(*q));
    q->m = *m;
    if (m->type == RAFT_MSG_APPEND && m->append.entry_count > 0) {
        q->ents = calloc(m->append.entry_count, sizeof(*q->ents));
        assert_non_null(q->ents);
        for (uint32_t i = 0; i < m->append.entry_count; i++) {
            q->ents[i] = m->append.entries[i];
            q->ents[i].data.base =
                dup_bytes(m->append.entries[i].data.base, m->append.entries[i].data.len);
        }
        q->m.append.entries = q->ents;
    }
    if (m->type == RAFT_MSG_SNAPSHOT) {
        q->bytes = dup_bytes(m->snapshot.chunk.base, m->snapshot.chunk.len);
        q->m.snapshot.chunk.base = q->bytes;
        if (m->snapshot.config != NULL) {
            q->cfg = malloc(sizeof(*q->cfg));
            assert_non_null(q->cfg);
            *q->cfg = *m->snapshot.config;
            q->m.snapshot.config = q->cfg;
        }
    }
}

static void netmsg_free(struct netmsg *q)
{
    if (q->ents != NULL) {
        for (uint32_t i = 0; i < q->m.append.entry_count; i++) {
            free((void *)(uintptr_t)q->ents[i].data.base);
        }
        free(q->ents);
    }
    free(q->bytes);
    free(q->cfg);
}

/* ---- disk ------------------------------------------------------------------------ */

static void disk_free_from(struct disk *d, uint32_t from)
{
    for (uint32_t i = from; i < d->count; i++) {
        free((void *)(uintptr_t)d->ents[i].data.base);
    }
    if (from < d->count) {
        d->count = from;
    }
}

static void disk_persist(struct disk *d, const struct raft_ready *rd, const uint8_t *snap_data)
{
    if (rd->flags & RAFT_READY_HARD_STATE) {
        d->hs = rd->hard_state;
    }
    if (rd->flags & RAFT_READY_SNAPSHOT) {
        /* A snapshot replaces the whole durable log. */
        disk_free_from(d, 0);
        free(d->snap_data);
        d->snap = *rd->snapshot;
        d->snap_data = dup_bytes(snap_data, rd->snapshot_bytes);
        d->snap_bytes = rd->snapshot_bytes;
    }
    for (uint32_t i = 0; i < rd->entry_count; i++) {
        const struct raft_entry *e = &rd->entries[i];
        assert_true(e->index > d->snap.index);
        uint32_t slot = (uint32_t)(e->index - d->snap.index - 1);
        assert_true(slot <= d->count); /* contiguous */
        assert_true(slot < LOG_MAX);
        disk_free_from(d, slot);
        d->ents[slot] = *e;
        d->ents[slot].data.base = dup_bytes(e->data.base, e->data.len);
        d->count = slot + 1;
    }
}

static void disk_free(struct disk *d)
{
    disk_free_from(d, 0);
    free(d->snap_data);
    memset(d, 0, sizeof(*d));
}

/* ---- nodes ----------------------------------------------------------------------- */

static void node_start(struct cluster *c, uint32_t i)
{
    struct node *nd = &c->nodes[i];
    struct raft_options o;
    raft_options_default(&o);
    o.id = i + 1;
    o.group = GROUP;
    o.seed = 1000 + i * 7919 + (uint64_t)nd->disk.hs.term;
    struct raft_restore rs = {
        .hard_state = nd->disk.hs,
        .snapshot = nd->disk.snap,
        .snapshot_bytes = nd->disk.snap_bytes,
        .entries = nd->disk.ents,
        .entry_count = nd->disk.count,
    };
    nd->r = malloc(raft_sizeof());
    assert_non_null(nd->r);
    assert_int_equal(raft_init(nd->r, &o, &c->cfg, &rs), 0);
    nd->up = true;
    nd->applied = nd->disk.snap.index; /* the state machine restarts from the snapshot */
    free(nd->img);
    nd->img_index = nd->disk.snap.index;
    nd->img = dup_bytes(nd->disk.snap_data, nd->disk.snap_bytes);
    nd->img_bytes = nd->disk.snap_bytes;
    nd->rx_len = 0;
    nd->rx_index = 0;
}

/* The caller's side of raft_snapshot_taken: it keeps the image to send chunks of. */
static int node_snapshot_taken(
    struct node *nd, raft_index index, const uint8_t *data, uint64_t bytes, raft_index trailing)
{
    int rv = raft_snapshot_taken(nd->r, index, bytes, trailing);
    if (rv == 0) {
        free(nd->img);
        nd->img_index = index;
        nd->img = dup_bytes(data, bytes);
        nd->img_bytes = bytes;
    }
    return rv;
}

/* A received chunk, stored in order. */
static void node_store_chunk(struct node *nd, const struct raft_snapshot_chunk *ch)
{
    if (ch->offset == 0) {
        nd->rx_len = 0;
        nd->rx_index = ch->meta->index;
    }
    assert_int_equal(ch->offset, nd->rx_len);
    nd->rx = realloc(nd->rx, ch->offset + ch->len + 1u);
    assert_non_null(nd->rx);
    if (ch->len > 0) {
        memcpy(nd->rx + ch->offset, ch->data, ch->len);
    }
    nd->rx_len = ch->offset + ch->len;
}

/* Sends m, reading a snapshot chunk from the node's image when the core asks for one. */
static void node_send(struct cluster *c, struct node *nd, const struct raft_msg *m)
{
    if (m->type != RAFT_MSG_SNAPSHOT || m->snapshot.chunk.base != NULL ||
        m->snapshot.chunk.len == 0) {
        net_push(c, m);
        return;
    }
    if (nd->img_index != m->snapshot.last_index ||
        m->snapshot.offset + m->snapshot.chunk.len > nd->img_bytes) {
        return; /* not this node's image any more: the core sends again */
    }
    struct raft_msg out = *m;
    out.snapshot.chunk.base = nd->img + m->snapshot.offset;
    net_push(c, &out);
}

static void unit_free(struct unit *u)
{
    for (uint32_t k = 0; k < u->rd.entry_count; k++) {
        free((void *)(uintptr_t)u->ents[k].data.base);
    }
    free(u->ents);
    free(u->snap_data);
    free(u->held);
}

static void node_crash(struct cluster *c, uint32_t i)
{
    struct node *nd = &c->nodes[i];
    /* Writes not yet durable are lost, with the messages held for them. */
    for (uint32_t k = 0; k < nd->unit_count; k++) {
        unit_free(&nd->units[k]);
    }
    free(nd->units);
    nd->units = NULL;
    nd->unit_count = 0;
    raft_fini(nd->r);
    free(nd->r);
    nd->r = NULL;
    nd->up = false;
}

static void apply_entry(struct cluster *c, struct node *nd, const struct raft_entry *e)
{
    assert_int_equal(e->index, nd->applied + 1);
    assert_true(e->index < LOG_MAX);
    if (c->applied_term[e->index] == 0) {
        struct raft_status s;
        raft_status(nd->r, &s);
        c->applied_term[e->index] = e->term;
        c->applied_sum[e->index] = sum_of(e);
        c->applied_at_term[e->index] = s.term;
    }
    /* State Machine Safety: everyone applies the same entry at an index. */
    assert_int_equal(c->applied_term[e->index], e->term);
    assert_int_equal(c->applied_sum[e->index], sum_of(e));
    nd->applied = e->index;
}

/* Releases the messages held for a durable batch: peers' go out, ours are stepped. */
static void release_held(struct cluster *c, uint32_t i, const struct raft_msg *held, uint32_t count)
{
    for (uint32_t k = 0; k < count; k++) {
        if (held[k].to == i + 1) {
            assert_int_equal(raft_step(c->nodes[i].r, &held[k]), 0);
        } else {
            net_push(c, &held[k]);
        }
    }
}

/* Completes node i's oldest pending persist (async mode). */
static bool node_persist_one(struct cluster *c, uint32_t i)
{
    struct node *nd = &c->nodes[i];
    if (!nd->up || nd->unit_count == 0) {
        return false;
    }
    struct unit u = nd->units[0];
    memmove(nd->units, nd->units + 1, (nd->unit_count - 1) * sizeof(*nd->units));
    nd->unit_count--;
    /* The unit moved: point its ready at its own copies again. */
    u.rd.snapshot = u.rd.snapshot != NULL ? &u.snap : NULL;
    u.rd.entries = u.ents;
    disk_persist(&nd->disk, &u.rd, u.snap_data);
    release_held(c, i, u.held, u.rd.msg_after_persist_count);
    unit_free(&u);
    return true;
}

static void node_queue_unit(struct node *nd, const struct raft_ready *rd)
{
    struct unit u;
    memset(&u, 0, sizeof(u));
    u.rd = *rd;
    if (rd->snapshot != NULL) {
        u.snap = *rd->snapshot;
        u.snap_data = dup_bytes(nd->rx, rd->snapshot_bytes);
    }
    if (rd->entry_count > 0) {
        u.ents = calloc(rd->entry_count, sizeof(*u.ents));
        assert_non_null(u.ents);
        for (uint32_t k = 0; k < rd->entry_count; k++) {
            u.ents[k] = rd->entries[k];
            u.ents[k].data.base = dup_bytes(rd->entries[k].data.base, rd->entries[k].data.len);
        }
    }
    u.rd.entries = u.ents;
    if (rd->msg_after_persist_count > 0) {
        u.held = calloc(rd->msg_after_persist_count, sizeof(*u.held));
        assert_non_null(u.held);
        memcpy(u.held, rd->msgs_after_persist, rd->msg_after_persist_count * sizeof(*u.held));
    }
    nd->units = realloc(nd->units, (nd->unit_count + 1) * sizeof(*nd->units));
    assert_non_null(nd->units);
    nd->units[nd->unit_count++] = u;
}

static void check_read(struct cluster *c, struct node *nd, const struct raft_read_state *rs)
{
    assert_true(rs->index <= nd->applied);
    /* Linearizability: a read reflects every write applied anywhere before it was asked. */
    if (rs->ctx < 1024) {
        assert_true(rs->index >= c->read_floor[rs->ctx]);
    }
    if (nd->read_count < READS_MAX) {
        nd->reads[nd->read_count] = rs->ctx;
        nd->read_index[nd->read_count] = rs->index;
    }
    nd->read_count++;
}

static void node_handle_ready(struct cluster *c, uint32_t i, const struct raft_ready *rd)
{
    struct node *nd = &c->nodes[i];
    if (rd->flags & RAFT_READY_SNAPSHOT_CHUNK) {
        node_store_chunk(nd, rd->snapshot_chunk);
    }
    if (rd->snapshot != NULL) {
        /* The installed image is the one received; it is this node's to send from now on. */
        assert_int_equal(nd->rx_index, rd->snapshot->index);
        assert_int_equal(nd->rx_len, rd->snapshot_bytes);
        free(nd->img);
        nd->img_index = rd->snapshot->index;
        nd->img = dup_bytes(nd->rx, rd->snapshot_bytes);
        nd->img_bytes = rd->snapshot_bytes;
    }
    bool writes = rd->flags & (RAFT_READY_HARD_STATE | RAFT_READY_ENTRIES | RAFT_READY_SNAPSHOT |
                               RAFT_READY_SNAPSHOT_CHUNK | RAFT_READY_MSGS_AFTER_PERSIST);
    if (c->async && writes) {
        node_queue_unit(nd, rd);
    } else if (!c->async) {
        disk_persist(&nd->disk, rd, nd->rx);
    }
    for (uint32_t k = 0; k < rd->msg_count; k++) {
        assert_int_not_equal(rd->msgs[k].to, i + 1);
        node_send(c, nd, &rd->msgs[k]);
    }
    if (rd->snapshot != NULL) {
        nd->applied = rd->snapshot->index;
        if (c->async && c->applied_sum[rd->snapshot->index] != 0 && rd->snapshot_bytes >= 8) {
            uint64_t v;
            memcpy(&v, nd->img, 8);
            assert_int_equal(v, c->applied_sum[rd->snapshot->index]);
        }
    }
    for (uint32_t k = 0; k < rd->committed_count; k++) {
        apply_entry(c, nd, &rd->committed[k]);
    }
    for (uint32_t k = 0; k < rd->read_count; k++) {
        check_read(c, nd, &rd->reads[k]);
    }
}

/* Drains node i's ready batches. With a synchronous disk, held messages go right after. */
static bool node_drain(struct cluster *c, uint32_t i)
{
    struct node *nd = &c->nodes[i];
    bool any = false;
    for (int loops = 0; nd->up && raft_has_ready(nd->r); loops++) {
        assert_true(loops < 1000);
        any = true;
        struct raft_ready rd;
        raft_ready(nd->r, &rd);
        node_handle_ready(c, i, &rd);
        struct raft_msg held[RAFT_READY_MSGS_MAX + 8];
        uint32_t held_count = c->async ? 0 : rd.msg_after_persist_count;
        if (held_count > 0) {
            memcpy(held, rd.msgs_after_persist, held_count * sizeof(*held));
        }
        bool verdict = (rd.flags & RAFT_READY_SNAPSHOT_CHUNK) && rd.snapshot_chunk->done;
        uint64_t transfer = verdict ? rd.snapshot_chunk->transfer : 0;
        raft_advance(nd->r, &rd);
        if (verdict) {
            /* The whole image is stored: the node's check (none here) accepts it. */
            assert_int_equal(raft_snapshot_received(nd->r, transfer, true), 0);
        }
        release_held(c, i, held, held_count);
    }
    return any;
}

/* Delivers the next message (or a random one), perhaps twice. */
static void deliver_one(struct cluster *c)
{
    if (c->random_order && c->net_count > 1) {
        uint32_t k = (uint32_t)rr_prng_range(&c->prng, 0, c->net_count);
        struct netmsg t = c->net[c->net_head];
        c->net[c->net_head] = c->net[(c->net_head + k) % NET_MAX];
        c->net[(c->net_head + k) % NET_MAX] = t;
    }
    struct netmsg *q = &c->net[c->net_head];
    c->net_head = (c->net_head + 1) % NET_MAX;
    c->net_count--;
    struct node *to = &c->nodes[q->m.to - 1];
    if (c->dup_per_million > 0 && rr_prng_chance(&c->prng, c->dup_per_million)) {
        net_push(c, &q->m);
    }
    if (to->up && c->nodes[q->m.from - 1].up && !c->cut[q->m.from - 1][q->m.to - 1]) {
        assert_int_equal(raft_step(to->r, &q->m), 0);
    }
    netmsg_free(q);
}

static void deliver_all(struct cluster *c)
{
    for (int rounds = 0; rounds < 10000; rounds++) {
        bool any = false;
        for (uint32_t i = 0; i < c->n; i++) {
            any = node_drain(c, i) || any;
        }
        for (uint32_t i = 0; i < c->n; i++) {
            while (node_persist_one(c, i)) {
                any = true;
            }
        }
        uint32_t n = c->net_count;
        for (uint32_t k = 0; k < n; k++) {
            deliver_one(c);
            any = true;
        }
        if (!any) {
            return;
        }
    }
    fail_msg("cluster did not quiesce");
}

static void run_ticks(struct cluster *c, uint32_t ticks)
{
    for (uint32_t t = 0; t < ticks; t++) {
        for (uint32_t i = 0; i < c->n; i++) {
            if (c->nodes[i].up) {
                raft_tick(c->nodes[i].r);
            }
        }
        deliver_all(c);
    }
}

static struct cluster *cluster_new(uint32_t n)
{
    struct cluster *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    c->net = calloc(NET_MAX, sizeof(*c->net));
    assert_non_null(c->net);
    c->n = n;
    c->cfg.member_count = n;
    for (uint32_t i = 0; i < n; i++) {
        c->cfg.members[i] = (struct raft_member){i + 1, RAFT_VOTER};
    }
    rr_prng_seed(&c->prng, 42);
    for (uint32_t i = 0; i < n; i++) {
        node_start(c, i);
    }
    return c;
}

static void cluster_free(struct cluster *c)
{
    while (c->net_count > 0) {
        netmsg_free(&c->net[c->net_head]);
        c->net_head = (c->net_head + 1) % NET_MAX;
        c->net_count--;
    }
    for (uint32_t i = 0; i < c->n; i++) {
        if (c->nodes[i].up) {
            node_crash(c, i);
        }
        disk_free(&c->nodes[i].disk);
        free(c->nodes[i].img);
        free(c->nodes[i].rx);
    }
    free(c->net);
    free(c);
}

static struct raft_status status_of(struct cluster *c, uint32_t i)
{
    struct raft_status s;
    raft_status(c->nodes[i].r, &s);
    return s;
}

/* The single leader among the up nodes with the highest term, or -1. */
static int leader_of(struct cluster *c)
{
    int leader = -1;
    raft_term term = 0;
    for (uint32_t i = 0; i < c->n; i++) {
        if (!c->nodes[i].up) {
            continue;
        }
        struct raft_status s = status_of(c, i);
        if (s.role == RAFT_LEADER && s.term >= term) {
            assert_true(s.term != term || leader < 0); /* Election Safety */
            leader = (int)i;
            term = s.term;
        }
    }
    return leader;
}

static int wait_leader(struct cluster *c)
{
    for (int t = 0; t < 500; t++) {
        int l = leader_of(c);
        if (l >= 0) {
            return l;
        }
        run_ticks(c, 1);
    }
    fail_msg("no leader");
    return -1;
}

static raft_index propose(struct cluster *c, int leader, uint32_t k)
{
    uint8_t data[16];
    for (uint32_t i = 0; i < sizeof(data); i++) {
        data[i] = (uint8_t)(k * 13 + i);
    }
    raft_index index = 0;
    assert_int_equal(raft_propose(c->nodes[leader].r, data, (uint32_t)(k % 16 + 1), &index), 0);
    return index;
}

static void assert_all_applied(struct cluster *c, raft_index index)
{
    for (uint32_t i = 0; i < c->n; i++) {
        if (c->nodes[i].up) {
            assert_true(c->nodes[i].applied >= index);
        }
    }
}

/* ---- tests ----------------------------------------------------------------------- */

static void test_elect_replicate_commit(void **state)
{
    (void)state;
    struct cluster *c = cluster_new(3);
    int l = wait_leader(c);
    raft_index last = 0;
    for (uint32_t k = 0; k < 50; k++) {
        last = propose(c, l, k);
    }
    run_ticks(c, 3);
    assert_all_applied(c, last);
    for (uint32_t i = 0; i < c->n; i++) {
        struct raft_status s = status_of(c, i);
        assert_int_equal(s.commit, last);
        assert_int_equal(s.last_index, last);
        assert_int_equal(s.leader, (raft_node)l + 1);
    }
    cluster_free(c);
}

static void test_follower_restart_catches_up(void **state)
{
    (void)state;
    struct cluster *c = cluster_new(3);
    int l = wait_leader(c);
    for (uint32_t k = 0; k < 10; k++) {
        propose(c, l, k);
    }
    run_ticks(c, 2);
    uint32_t f = ((uint32_t)l + 1) % 3;
    node_crash(c, f);
    raft_index last = 0;
    for (uint32_t k = 10; k < 40; k++) {
        last = propose(c, l, k);
    }
    run_ticks(c, 2);
    assert_true(leader_of(c) == l); /* a majority is still up */
    node_start(c, f);
    /* Appends lost while it was down are noticed after an election timeout without
     * acknowledgement; the leader then probes again. */
    run_ticks(c, 15);
    assert_all_applied(c, last);
    assert_int_equal(status_of(c, f).last_index, last);
    cluster_free(c);
}

static void test_leader_crash_and_return(void **state)
{
    (void)state;
    struct cluster *c = cluster_new(5);
    int l = wait_leader(c);
    for (uint32_t k = 0; k < 10; k++) {
        propose(c, l, k);
    }
    run_ticks(c, 2);
    raft_term old_term = status_of(c, (uint32_t)l).term;
    node_crash(c, (uint32_t)l);
    int l2 = wait_leader(c);
    assert_int_not_equal(l2, l);
    assert_true(status_of(c, (uint32_t)l2).term > old_term);
    raft_index last = 0;
    for (uint32_t k = 10; k < 30; k++) {
        last = propose(c, l2, k);
    }
    node_start(c, (uint32_t)l);
    run_ticks(c, 10);
    assert_int_equal(leader_of(c), l2); /* the returning node does not disrupt (PreVote) */
    assert_all_applied(c, last);
    cluster_free(c);
}

static void test_lossy_network(void **state)
{
    (void)state;
    struct cluster *c = cluster_new(3);
    c->loss_per_million = 200000; /* 20% of messages lost */
    raft_index last = 0;
    uint32_t k = 0;
    for (int round = 0; round < 300; round++) {
        int l = leader_of(c);
        if (l >= 0 && round % 3 == 0) {
            raft_index idx = 0;
            uint8_t b = (uint8_t)k++;
            if (raft_propose(c->nodes[l].r, &b, 1, &idx) == 0) {
                last = idx > last ? idx : last;
            }
        }
        run_ticks(c, 1);
    }
    c->loss_per_million = 0;
    run_ticks(c, 60);
    int l = wait_leader(c);
    raft_index final = propose(c, l, 999);
    run_ticks(c, 5);
    assert_all_applied(c, final);
    cluster_free(c);
}

static void test_read_index(void **state)
{
    (void)state;
    struct cluster *c = cluster_new(3);
    int l = wait_leader(c);
    run_ticks(c, 2);
    raft_index last = propose(c, l, 1);
    assert_int_equal(raft_read_index(c->nodes[l].r, 77), 0);
    assert_int_equal(raft_read_index(c->nodes[l].r, 78), 0);
    uint32_t f = ((uint32_t)l + 1) % 3;
    assert_int_equal(raft_read_index(c->nodes[f].r, 1), RR_ENOTLEADER);
    run_ticks(c, 2);
    struct node *nd = &c->nodes[l];
    assert_int_equal(nd->read_count, 2);
    assert_int_equal(nd->reads[0], 77);
    assert_int_equal(nd->reads[1], 78);
    /* The read index is the commit index when the round started: the proposal was not yet
     * committed, so it may or may not be included, but never more. */
    assert_true(nd->read_index[0] <= last);
    assert_true(nd->read_index[0] >= last - 1);
    cluster_free(c);
}

static void test_single_node(void **state)
{
    (void)state;
    struct cluster *c = cluster_new(1);
    int l = wait_leader(c);
    assert_int_equal(l, 0);
    raft_index last = propose(c, l, 5);
    assert_int_equal(raft_read_index(c->nodes[0].r, 9), 0);
    deliver_all(c);
    assert_int_equal(c->nodes[0].applied, last);
    assert_int_equal(c->nodes[0].read_count, 1);
    /* Restart from the disk: the log and commit come back. */
    node_crash(c, 0);
    node_start(c, 0);
    l = wait_leader(c);
    last = propose(c, l, 6);
    deliver_all(c);
    assert_int_equal(c->nodes[0].applied, last);
    cluster_free(c);
}

static void test_snapshot_to_lagging_follower(void **state)
{
    (void)state;
    struct cluster *c = cluster_new(3);
    int l = wait_leader(c);
    uint32_t f = ((uint32_t)l + 1) % 3;
    node_crash(c, f);
    raft_index last = 0;
    for (uint32_t k = 0; k < 100; k++) {
        last = propose(c, l, k);
    }
    run_ticks(c, 2);
    assert_true(c->nodes[l].applied == last);
    /* A snapshot bigger than one chunk, so the transfer takes several round trips. */
    uint64_t bytes = RAFT_SNAPSHOT_CHUNK_BYTES * 2 + 1234;
    uint8_t *image = malloc(bytes);
    assert_non_null(image);
    for (uint64_t i = 0; i < bytes; i++) {
        image[i] = (uint8_t)(i * 7);
    }
    assert_int_equal(node_snapshot_taken(&c->nodes[l], last - 5, image, bytes, 2), 0);
    struct raft_status s = status_of(c, (uint32_t)l);
    assert_int_equal(s.snapshot_index, last - 5);
    assert_int_equal(s.first_index, last - 5 - 2 + 1);
    node_start(c, f);
    run_ticks(c, 10);
    assert_all_applied(c, last);
    struct node *nd = &c->nodes[f];
    assert_int_equal(nd->disk.snap.index, last - 5);
    assert_int_equal(nd->disk.snap_bytes, bytes);
    assert_memory_equal(nd->disk.snap_data, image, bytes);
    /* The follower restarts from its snapshot and keeps going. */
    node_crash(c, f);
    node_start(c, f);
    l = leader_of(c);
    last = propose(c, l, 1000);
    run_ticks(c, 5);
    assert_all_applied(c, last);
    free(image);
    cluster_free(c);
}

static void test_rejects_malformed(void **state)
{
    (void)state;
    struct cluster *c = cluster_new(3);
    struct raft *r = c->nodes[0].r;
    struct raft_status before = status_of(c, 0);
    struct raft_msg m;
    memset(&m, 0, sizeof(m));
    m.type = RAFT_MSG_APPEND;
    m.group = GROUP;
    m.from = 2;
    m.to = 1;
    m.term = 5;
    struct raft_entry e[2] = {{.term = 5, .index = 1, .type = RAFT_ENTRY_NORMAL},
                              {.term = 5, .index = 3, .type = RAFT_ENTRY_NORMAL}};
    m.append.entries = e;
    m.append.entry_count = 2; /* not contiguous */
    assert_int_equal(raft_step(r, &m), RR_EINVAL);
    e[1].index = 2;
    e[1].term = 6; /* newer than the message */
    assert_int_equal(raft_step(r, &m), RR_EINVAL);
    e[1].term = 5;
    m.group = GROUP + 1;
    assert_int_equal(raft_step(r, &m), RR_EINVAL);
    m.group = GROUP;
    m.from = RAFT_NODE_ID_MAX + 1; /* not a valid node id */
    assert_int_equal(raft_step(r, &m), RR_EINVAL);
    m.from = 2;
    m.type = 200;
    assert_int_equal(raft_step(r, &m), RR_EINVAL);
    struct raft_status after = status_of(c, 0);
    assert_memory_equal(&before, &after, sizeof(before));
    /* The well-formed message is accepted and adopts the term. */
    m.type = RAFT_MSG_APPEND;
    assert_int_equal(raft_step(r, &m), 0);
    assert_int_equal(status_of(c, 0).term, 5);
    assert_int_equal(status_of(c, 0).last_index, 2);
    cluster_free(c);
}

/* A crash tore a batch: its entries are durable but not the hard state written after them
 * (or, with another write order, the commit index is past the durable log). */
static void test_restore_after_torn_write(void **state)
{
    (void)state;
    struct raft_config cfg = {.member_count = 3,
                              .members = {{1, RAFT_VOTER}, {2, RAFT_VOTER}, {3, RAFT_VOTER}}};
    struct raft_entry ents[3] = {{.term = 1, .index = 1, .type = RAFT_ENTRY_NORMAL},
                                 {.term = 2, .index = 2, .type = RAFT_ENTRY_NORMAL},
                                 {.term = 3, .index = 3, .type = RAFT_ENTRY_NORMAL}};
    struct raft_restore rs = {
        .hard_state = {.term = 2, .vote = 2, .commit = 7}, .entries = ents, .entry_count = 3};
    struct raft_options o;
    raft_options_default(&o);
    o.id = 1;
    o.group = GROUP;
    struct raft *r = malloc(raft_sizeof());
    assert_non_null(r);
    assert_int_equal(raft_init(r, &o, &cfg, &rs), 0);
    struct raft_status s;
    raft_status(r, &s);
    assert_int_equal(s.term, 3);              /* raised to the log's last term */
    assert_int_equal(s.vote, RAFT_NODE_NONE); /* no vote was cast in term 3 */
    assert_int_equal(s.commit, 0);            /* past the durable log: forgotten */
    assert_true(raft_has_ready(r));
    struct raft_ready rd;
    raft_ready(r, &rd);
    assert_true(rd.flags & RAFT_READY_HARD_STATE);
    assert_int_equal(rd.hard_state.term, 3);
    assert_int_equal(rd.entry_count, 0); /* restored entries are durable already */
    raft_advance(r, &rd);
    /* Entries out of order are refused. */
    ents[2].index = 5;
    struct raft *r2 = malloc(raft_sizeof());
    assert_non_null(r2);
    assert_int_equal(raft_init(r2, &o, &cfg, &rs), RR_EINVAL);
    free(r2);
    raft_fini(r);
    free(r);
}

/* A leader of our term that contradicts an entry we know committed is faulty: refused with
 * nothing changed. The same message from a stale term is merely rejected. */
static void test_append_contradicting_commit_refused(void **state)
{
    (void)state;
    struct cluster *c = cluster_new(3);
    struct raft *r = c->nodes[0].r;
    struct raft_entry e[2] = {{.term = 2, .index = 1, .type = RAFT_ENTRY_NORMAL},
                              {.term = 2, .index = 2, .type = RAFT_ENTRY_NORMAL}};
    struct raft_msg m = {.type = RAFT_MSG_APPEND, .group = GROUP, .from = 2, .to = 1, .term = 2};
    m.append.entries = e;
    m.append.entry_count = 2;
    m.append.commit = 2;
    assert_int_equal(raft_step(r, &m), 0);
    deliver_all(c);
    assert_int_equal(status_of(c, 0).commit, 2);
    struct raft_status before = status_of(c, 0);
    e[1].term = 3; /* index 2 is committed with term 2 */
    m.term = 3;
    m.from = 3;
    assert_int_equal(raft_step(r, &m), RR_ECORRUPT);
    struct raft_status after = status_of(c, 0);
    assert_memory_equal(&before, &after, sizeof(before));
    m.term = 1; /* stale: no error, no change */
    e[0].term = 1;
    e[1].term = 1;
    assert_int_equal(raft_step(r, &m), 0);
    assert_int_equal(status_of(c, 0).term, 2);
    assert_int_equal(raft_term_at(r, 2), 2);
    cluster_free(c);
}

/* A candidate's RequestVote leaves only after its new term and own vote are durable
 * (regression: seed 608 of the randomized test won a term twice across a crash). */
static void test_vote_requests_wait_for_persist(void **state)
{
    (void)state;
    struct raft_config cfg = {.member_count = 3,
                              .members = {{1, RAFT_VOTER}, {2, RAFT_VOTER}, {3, RAFT_VOTER}}};
    struct raft_options o;
    raft_options_default(&o);
    o.id = 1;
    o.group = GROUP;
    o.pre_vote = false;
    struct raft *r = malloc(raft_sizeof());
    assert_non_null(r);
    assert_int_equal(raft_init(r, &o, &cfg, NULL), 0);
    raft_campaign(r);
    struct raft_ready rd;
    raft_ready(r, &rd);
    assert_true(rd.flags & RAFT_READY_HARD_STATE);
    assert_int_equal(rd.hard_state.term, 1);
    assert_int_equal(rd.hard_state.vote, 1);
    uint32_t votes = 0;
    for (uint32_t i = 0; i < rd.msg_count; i++) {
        assert_int_not_equal(rd.msgs[i].type, RAFT_MSG_VOTE);
    }
    for (uint32_t i = 0; i < rd.msg_after_persist_count; i++) {
        votes += rd.msgs_after_persist[i].type == RAFT_MSG_VOTE;
    }
    assert_int_equal(votes, 2);
    raft_advance(r, &rd);
    raft_fini(r);
    free(r);
}

static uint64_t value_by_id(void *ctx, raft_node id)
{
    const uint64_t *v = ctx;
    return v[id];
}

static int vote_by_id(void *ctx, raft_node id)
{
    const int *v = ctx;
    return v[id];
}

/* Quorums: a majority of voters; learners never count; a joint configuration needs a
 * majority of each half. */
static void test_quorum_arithmetic(void **state)
{
    (void)state;
    struct raft_config c = {
        .member_count = 4,
        .members = {{1, RAFT_VOTER}, {2, RAFT_VOTER}, {3, RAFT_VOTER}, {4, RAFT_LEARNER}}};
    struct raft_config_packed cp;
    assert_true(raft_config_pack(&c, &cp));
    uint64_t match[8] = {0, 10, 7, 3, 100};
    assert_int_equal(quorum_value(&cp, value_by_id, match), 7);
    int votes[8] = {-1, 1, 0, -1, 1};
    assert_int_equal(quorum_vote_result(&cp, vote_by_id, votes), QUORUM_PENDING);
    votes[3] = 1;
    assert_int_equal(quorum_vote_result(&cp, vote_by_id, votes), QUORUM_WON);
    votes[3] = 0;
    assert_int_equal(quorum_vote_result(&cp, vote_by_id, votes), QUORUM_LOST);
    /* Joint: C_new = {1, 2, 3}, C_old = {3, 4, 5}. */
    struct raft_config j = {.member_count = 3,
                            .members = {{1, RAFT_VOTER}, {2, RAFT_VOTER}, {3, RAFT_VOTER}},
                            .old_member_count = 3,
                            .old_members = {{3, RAFT_VOTER}, {4, RAFT_VOTER}, {5, RAFT_VOTER}}};
    struct raft_config_packed jp;
    assert_true(raft_config_pack(&j, &jp));
    uint64_t jm[8] = {0, 9, 9, 1, 2, 3};
    assert_int_equal(quorum_value(&jp, value_by_id, jm), 2); /* old half holds it back */
    int jv[8] = {-1, 1, 1, 0, 0, -1};
    assert_int_equal(quorum_vote_result(&jp, vote_by_id, jv), QUORUM_LOST);
    jv[3] = 1;
    jv[4] = 1;
    assert_int_equal(quorum_vote_result(&jp, vote_by_id, jv), QUORUM_WON);
}

/* ---- random peer input ------------------------------------------------------------ */

/* A random message from a peer: any type, mostly plausible (a member, a term near ours, an
 * append near our log's end) so that the core goes deep, with enough subtly wrong ones (gaps,
 * term inversions, bad offsets, unknown senders, other groups) to exercise validation. */
static raft_term random_term(struct rr_prng *p, raft_term cur)
{
    return rr_prng_chance(p, 700000) ? cur + rr_prng_range(p, 0, 2) : rr_prng_range(p, 0, cur + 3);
}

static void random_append(struct rr_prng *p,
                          const struct raft *r,
                          struct raft_msg *m,
                          struct raft_entry *ents,
                          uint8_t *buf)
{
    struct raft_status s;
    raft_status(r, &s);
    uint32_t n = (uint32_t)rr_prng_range(p, 0, 5);
    m->append.prev_index = rr_prng_range(p, 0, s.last_index + 3);
    m->append.prev_term = rr_prng_chance(p, 700000) ? raft_term_at(r, m->append.prev_index)
                                                    : rr_prng_range(p, 0, m->term + 1);
    m->append.commit = rr_prng_range(p, 0, s.last_index + n + 2);
    raft_term t = m->append.prev_term;
    for (uint32_t i = 0; i < n; i++) {
        t = rr_prng_chance(p, 800000) ? t : rr_prng_range(p, 0, m->term + 2);
        ents[i] = (struct raft_entry){
            .term = t,
            .index = m->append.prev_index + 1 + i + (rr_prng_chance(p, 30000) ? 1 : 0),
            .type = rr_prng_chance(p, 30000) ? (uint8_t)rr_prng_range(p, 0, 4) : RAFT_ENTRY_NORMAL,
            .data = {buf, (uint32_t)rr_prng_range(p, 0, 16)}};
    }
    m->append.entries = n > 0 ? ents : NULL;
    m->append.entry_count = n;
}

static void random_snapshot(struct rr_prng *p, struct raft_msg *m, uint8_t *buf)
{
    static struct raft_config config; /* the message points to it until the next call */
    m->snapshot.last_index = rr_prng_range(p, 0, 16);
    m->snapshot.last_term = rr_prng_range(p, 0, m->term + 1);
    config.member_count = (uint32_t)rr_prng_range(p, 0, 4);
    for (uint32_t i = 0; i < 3; i++) {
        config.members[i] = (struct raft_member){i + 1, RAFT_VOTER};
    }
    m->snapshot.config = rr_prng_chance(p, 50000) ? NULL : &config;
    m->snapshot.total_bytes = rr_prng_range(p, 0, 40);
    m->snapshot.offset = rr_prng_chance(p, 500000) ? 0 : rr_prng_range(p, 0, 40);
    m->snapshot.chunk = (struct raft_buf){buf, (uint32_t)rr_prng_range(p, 0, 20)};
    m->snapshot.done = m->snapshot.offset + m->snapshot.chunk.len == m->snapshot.total_bytes;
    if (rr_prng_chance(p, 100000)) {
        m->snapshot.done = !m->snapshot.done;
    }
}

static void random_msg(struct rr_prng *p,
                       const struct raft *r,
                       struct raft_msg *m,
                       struct raft_entry *ents,
                       uint8_t *buf)
{
    struct raft_status s;
    raft_status(r, &s);
    memset(m, 0, sizeof(*m));
    m->type = (uint8_t)rr_prng_range(p, 0, RAFT_MSG_TYPE_MAX + 2);
    m->group = rr_prng_chance(p, 20000) ? GROUP + 1 : GROUP;
    m->from = rr_prng_chance(p, 900000) ? (raft_node)rr_prng_range(p, 2, 4)
                                        : (raft_node)rr_prng_range(p, 0, 5);
    m->to = rr_prng_chance(p, 20000) ? 2 : 1;
    m->term = random_term(p, s.term);
    switch (m->type) {
    case RAFT_MSG_APPEND:
        random_append(p, r, m, ents, buf);
        break;
    case RAFT_MSG_APPEND_RESP:
        m->append_resp.rejected = rr_prng_chance(p, 300000);
        m->append_resp.index = rr_prng_range(p, 0, s.last_index + 2);
        m->append_resp.hint_index = rr_prng_range(p, 0, s.last_index + 2);
        m->append_resp.hint_term = rr_prng_range(p, 0, s.term + 1);
        break;
    case RAFT_MSG_SNAPSHOT:
        random_snapshot(p, m, buf);
        break;
    case RAFT_MSG_SNAPSHOT_RESP:
        m->snapshot_resp.index = rr_prng_range(p, 0, 16);
        m->snapshot_resp.next_offset = rr_prng_range(p, 0, 64);
        m->snapshot_resp.rejected = rr_prng_chance(p, 300000);
        m->snapshot_resp.done = rr_prng_chance(p, 300000);
        break;
    case RAFT_MSG_VOTE_RESP:
    case RAFT_MSG_PRE_VOTE_RESP:
        m->vote_resp.granted = rr_prng_chance(p, 700000);
        break;
    case RAFT_MSG_HEARTBEAT:
        m->heartbeat.commit = rr_prng_range(p, 0, s.last_index + 2);
        m->heartbeat.read_ctx = rr_prng_range(p, 0, 4);
        break;
    case RAFT_MSG_HEARTBEAT_RESP:
        m->heartbeat_resp.read_ctx = rr_prng_range(p, 0, 40);
        break;
    default:
        m->vote.last_log_index = rr_prng_range(p, 0, s.last_index + 2);
        m->vote.last_log_term = rr_prng_range(p, 0, m->term + 1);
        m->vote.transfer = rr_prng_chance(p, 100000);
        break;
    }
}

/* Whatever peers send, the core answers with 0 or an error and never trips an assertion
 * (RR_ASSERT traps; ASan/UBSan watch the rest). Its own output is drained as a node would. */
static void test_random_peer_input_never_asserts(void **state)
{
    (void)state;
    struct raft_config cfg = {.member_count = 3,
                              .members = {{1, RAFT_VOTER}, {2, RAFT_VOTER}, {3, RAFT_VOTER}}};
    struct rr_prng p;
    rr_prng_seed(&p, 7);
    uint8_t buf[64] = {0};
    struct raft_entry ents[8];
    for (int round = 0; round < 200; round++) {
        struct raft_options o;
        raft_options_default(&o);
        o.id = 1;
        o.group = GROUP;
        o.seed = (uint64_t)round;
        o.pre_vote = round % 2 == 0;
        struct raft *r = malloc(raft_sizeof());
        assert_non_null(r);
        assert_int_equal(raft_init(r, &o, &cfg, NULL), 0);
        for (int k = 0; k < 500; k++) {
            struct raft_msg m;
            random_msg(&p, r, &m, ents, buf);
            int rv = raft_step(r, &m);
            assert_true(rv == 0 || rv == RR_EINVAL || rv == RR_ECORRUPT);
            if (rr_prng_chance(&p, 100000)) {
                raft_tick(r);
            }
            if (rr_prng_chance(&p, 50000)) {
                raft_campaign(r);
            }
            if (rr_prng_chance(&p, 100000)) {
                (void)raft_propose(r, buf, 3, NULL);
                (void)raft_read_index(r, (uint64_t)k);
            }
            struct raft_status st;
            raft_status(r, &st);
            if (rr_prng_chance(&p, 20000) && st.applied > st.snapshot_index) {
                (void)raft_snapshot_taken(r, st.applied, 10, rr_prng_range(&p, 0, 3));
            }
            while (raft_has_ready(r)) {
                struct raft_ready rd;
                raft_ready(r, &rd);
                struct raft_msg local[RAFT_READY_MSGS_MAX + 8];
                uint32_t n = 0;
                for (uint32_t i = 0; i < rd.msg_after_persist_count; i++) {
                    if (rd.msgs_after_persist[i].to == 1) {
                        local[n++] = rd.msgs_after_persist[i];
                    }
                }
                bool verdict = (rd.flags & RAFT_READY_SNAPSHOT_CHUNK) && rd.snapshot_chunk->done;
                uint64_t vt = verdict ? rd.snapshot_chunk->transfer : 0;
                raft_advance(r, &rd);
                if (verdict) {
                    /* Either verdict, at random: a refused image and an installed one. */
                    bool ok = rr_prng_chance(&p, 500000) != 0;
                    assert_int_equal(raft_snapshot_received(r, vt, ok), 0);
                }
                for (uint32_t i = 0; i < n; i++) {
                    assert_int_equal(raft_step(r, &local[i]), 0);
                }
            }
        }
        raft_fini(r);
        free(r);
    }
}

/* ---- randomized faults ----------------------------------------------------------- */

static raft_index max_applied(const struct cluster *c)
{
    raft_index m = 0;
    for (uint32_t i = 0; i < c->n; i++) {
        m = c->nodes[i].applied > m ? c->nodes[i].applied : m;
    }
    return m;
}

/* Election Safety and Leader Completeness (paper Figure 3) over the live nodes. */
static void check_safety(struct cluster *c)
{
    for (uint32_t i = 0; i < c->n; i++) {
        if (!c->nodes[i].up) {
            continue;
        }
        struct raft_status s = status_of(c, i);
        assert_true(s.commit <= s.last_index);
        assert_true(s.applied <= s.commit);
        if (s.role != RAFT_LEADER) {
            continue;
        }
        assert_true(s.term < LOG_MAX);
        if (c->term_leader[s.term] == 0) {
            c->term_leader[s.term] = s.id;
        }
        assert_int_equal(c->term_leader[s.term], s.id);
        for (raft_index k = s.first_index; k < LOG_MAX && c->applied_term[k] != 0; k++) {
            if (c->applied_at_term[k] < s.term) {
                assert_int_equal(raft_term_at(c->nodes[i].r, k), c->applied_term[k]);
            }
        }
    }
}

static void chaos_snapshot(struct cluster *c, uint32_t i)
{
    struct node *nd = &c->nodes[i];
    raft_index back = rr_prng_range(&c->prng, 0, 4);
    if (nd->applied <= back) {
        return;
    }
    raft_index index = nd->applied - back;
    uint64_t bytes = rr_prng_chance(&c->prng, 200000) ? RAFT_SNAPSHOT_CHUNK_BYTES + 99 : 64;
    uint8_t *data = calloc(1, bytes);
    assert_non_null(data);
    memcpy(data, &c->applied_sum[index], 8);
    int rv = node_snapshot_taken(nd, index, data, bytes, rr_prng_range(&c->prng, 0, 6));
    assert_true(rv == 0 || rv == RR_ECOMPACTED);
    free(data);
}

static void chaos_crash_or_restart(struct cluster *c, uint32_t i)
{
    if (c->nodes[i].up) {
        node_crash(c, i);
    } else {
        node_start(c, i);
    }
}

static void chaos_client(struct cluster *c, uint32_t *next_ctx, bool read)
{
    int l = leader_of(c);
    if (l < 0) {
        return;
    }
    if (read && *next_ctx < 1024) {
        c->read_floor[*next_ctx] = max_applied(c);
        if (raft_read_index(c->nodes[l].r, *next_ctx) == 0) {
            (*next_ctx)++;
        }
        return;
    }
    uint8_t data[4];
    uint32_t k = (uint32_t)rr_prng_next(&c->prng);
    memcpy(data, &k, sizeof(data));
    int rv = raft_propose(c->nodes[l].r, data, sizeof(data), NULL);
    assert_int_equal(rv, 0);
}

/* Chaos actions, and their weights (per mille) in each profile: balanced, crash-heavy,
 * slow disk (persists rare against ticks, so much is in flight when a node crashes). */
enum chaos_action {
    CHAOS_TICK,
    CHAOS_DELIVER,
    CHAOS_PERSIST,
    CHAOS_PROPOSE,
    CHAOS_READ,
    CHAOS_CRASH,
    CHAOS_CUT,
    CHAOS_SNAPSHOT,
    CHAOS_HEAL_CUTS,
    CHAOS_ACTIONS,
};

static const uint16_t chaos_weights[3][CHAOS_ACTIONS] = {
    {250, 350, 200, 80, 20, 15, 25, 20, 10},
    {250, 350, 100, 80, 20, 60, 25, 20, 10},
    {300, 350, 110, 100, 40, 5, 20, 20, 10},
};

static enum chaos_action chaos_pick(struct cluster *c)
{
    const uint16_t *w = chaos_weights[c->profile];
    uint32_t total = 0;
    for (int k = 0; k < CHAOS_ACTIONS; k++) {
        total += w[k];
    }
    uint32_t x = (uint32_t)rr_prng_range(&c->prng, 0, total);
    int k = 0;
    while (x >= w[k]) {
        x -= w[k++];
    }
    return (enum chaos_action)k;
}

static void chaos_tick_all(struct cluster *c)
{
    for (uint32_t k = 0; k < c->n; k++) {
        if (c->nodes[k].up) {
            raft_tick(c->nodes[k].r);
        }
    }
}

static void chaos_step(struct cluster *c, uint32_t *next_ctx)
{
    uint32_t i = (uint32_t)rr_prng_range(&c->prng, 0, c->n);
    uint32_t j = (uint32_t)rr_prng_range(&c->prng, 0, c->n);
    switch (chaos_pick(c)) {
    case CHAOS_TICK:
        chaos_tick_all(c);
        break;
    case CHAOS_DELIVER:
        for (int k = 0; k < 5 && c->net_count > 0; k++) {
            deliver_one(c);
        }
        break;
    case CHAOS_PERSIST:
        node_persist_one(c, i);
        break;
    case CHAOS_PROPOSE:
        chaos_client(c, next_ctx, false);
        break;
    case CHAOS_READ:
        chaos_client(c, next_ctx, true);
        break;
    case CHAOS_CRASH:
        chaos_crash_or_restart(c, i);
        break;
    case CHAOS_CUT:
        c->cut[i][j] = !c->cut[i][j];
        break;
    case CHAOS_SNAPSHOT:
        if (c->nodes[i].up) {
            chaos_snapshot(c, i);
        }
        break;
    case CHAOS_HEAL_CUTS:
    case CHAOS_ACTIONS:
        memset(c->cut, 0, sizeof(c->cut));
        break;
    }
    for (uint32_t k = 0; k < c->n; k++) {
        node_drain(c, k);
    }
    check_safety(c);
}

/* Heals every fault and requires the cluster to commit and apply a new entry everywhere. */
static void chaos_heal(struct cluster *c)
{
    c->loss_per_million = 0;
    c->dup_per_million = 0;
    memset(c->cut, 0, sizeof(c->cut));
    for (uint32_t i = 0; i < c->n; i++) {
        if (!c->nodes[i].up) {
            node_start(c, i);
        }
    }
    raft_index final = 0;
    for (int t = 0; t < 3000; t++) {
        run_ticks(c, 1);
        check_safety(c);
        int l = leader_of(c);
        if (final == 0 && l >= 0) {
            uint8_t b = 0xee;
            assert_int_equal(raft_propose(c->nodes[l].r, &b, 1, &final), 0);
        }
        bool done = final != 0;
        for (uint32_t i = 0; i < c->n; i++) {
            done = done && c->nodes[i].applied >= final;
        }
        if (done) {
            return;
        }
        if (final != 0 && l < 0) {
            final = 0; /* the leader changed before committing it: propose again */
        }
    }
    fail_msg("no progress after healing");
}

static void chaos_run(uint64_t seed, uint32_t n, uint32_t steps)
{
    struct cluster *c = cluster_new(n);
    rr_prng_seed(&c->prng, seed);
    c->async = true;
    c->random_order = true;
    c->loss_per_million = 50000;
    c->dup_per_million = 20000;
    c->profile = (uint32_t)(seed / 2 % 3);
    uint32_t next_ctx = 1;
    for (uint32_t s = 0; s < steps; s++) {
        chaos_step(c, &next_ctx);
    }
    chaos_heal(c);
    if (getenv("RAFT_SMOKE_VERBOSE") != NULL) {
        raft_term terms = 0;
        for (raft_term t = 0; t < LOG_MAX; t++) {
            terms += c->term_leader[t] != 0;
        }
        struct raft_status st = status_of(c, 0);
        print_message("seed %llu: %u nodes, applied %llu, %llu leader terms, term %llu, "
                      "snapshot %llu\n",
                      (unsigned long long)seed, n, (unsigned long long)max_applied(c),
                      (unsigned long long)terms, (unsigned long long)st.term,
                      (unsigned long long)st.snapshot_index);
    }
    cluster_free(c);
}

static void test_randomized_faults(void **state)
{
    (void)state;
    const char *env = getenv("RAFT_SMOKE_SEEDS");
    uint64_t seeds = env != NULL ? strtoull(env, NULL, 10) : 20;
    const char *start_env = getenv("RAFT_SMOKE_START");
    uint64_t start = start_env != NULL ? strtoull(start_env, NULL, 10) : 1;
    for (uint64_t seed = start; seed < start + seeds; seed++) {
        chaos_run(seed, seed % 2 == 0 ? 3 : 5, 20000);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_elect_replicate_commit),
        cmocka_unit_test(test_follower_restart_catches_up),
        cmocka_unit_test(test_leader_crash_and_return),
        cmocka_unit_test(test_lossy_network),
        cmocka_unit_test(test_read_index),
        cmocka_unit_test(test_single_node),
        cmocka_unit_test(test_snapshot_to_lagging_follower),
        cmocka_unit_test(test_rejects_malformed),
        cmocka_unit_test(test_restore_after_torn_write),
        cmocka_unit_test(test_append_contradicting_commit_refused),
        cmocka_unit_test(test_quorum_arithmetic),
        cmocka_unit_test(test_vote_requests_wait_for_persist),
        cmocka_unit_test(test_random_peer_input_never_asserts),
        cmocka_unit_test(test_randomized_faults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
