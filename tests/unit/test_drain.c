/* Drain order, driven end to end: a 3-node cluster of N groups per node that runs only
 * through multi_* and drain_*, with a fake disk that completes persist units in order and a
 * fake network that passes batches. Checks elections and commits in every group, one batch
 * per peer per drain with heartbeats coalesced, and that held messages wait for the disk. */
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
#include "core/codec.h"
#include "core/drain.h"
#include "core/multi_internal.h" /* white-box: buffer capacities kept across drains */

#define NODES 3

struct net_batch {
    raft_node from;
    raft_node to;
    uint8_t *bytes;
    size_t len;
};

/* What one node sent in the current measuring window, per destination. */
struct send_stats {
    uint32_t batches;
    uint32_t records;
    uint32_t heartbeats;
    uint32_t heartbeat_resps;
    uint32_t others;
    uint32_t append_resps;
    size_t len_max; /* longest batch */
};

struct tnode {
    raft_node id;
    struct multi *m;
    struct cluster *c;
    struct drain_held **disk; /* submitted units, oldest first */
    uint32_t disk_count;
    uint32_t disk_cap;
    raft_index *applied; /* per group id: last applied index */
    uint64_t *value;     /* per group id: payload of the last non-empty entry */
    uint64_t persists;
    uint64_t submits;
    struct send_stats sent[NODES + 1];
    /* Per group id: the role, term and leader last reported by role_changed. */
    uint8_t *role;
    raft_term *term;
    raft_node *leader;
    uint64_t role_events;
    uint64_t read_failures;
    /* This drain: entries applied, groups that applied any, the last of them. */
    uint64_t drain_applied;
    uint32_t drain_groups_applied;
    raft_group drain_last_group;
    /* The batch announced by apply_ahead: entries[0, n) of group g, `next` applied so far. */
    const struct raft_entry *ahead;
    uint32_t ahead_n;
    uint32_t ahead_next;
    raft_group ahead_g;
    uint64_t ahead_entries; /* entries announced in all */
    uint64_t applies;       /* apply calls in all */
};

struct cluster {
    uint32_t groups;
    struct tnode n[NODES];
    struct net_batch *net;
    uint32_t net_count;
    uint32_t net_cap;
    bool hold_network; /* sends are counted but not delivered */
};

static struct tnode *node_of(struct cluster *c, raft_node id)
{
    assert_true(id >= 1 && id <= NODES);
    return &c->n[id - 1];
}

static void count_batch(struct send_stats *s, const uint8_t *batch, size_t len)
{
    struct codec_batch_reader r;
    assert_int_equal(codec_batch_open(&r, batch, len), 0);
    s->batches++;
    s->records += r.records_left;
    s->len_max = len > s->len_max ? len : s->len_max;
    static struct codec_scratch scratch;
    struct raft_msg m;
    int rc;
    while ((rc = codec_batch_next(&r, &m, &scratch)) == 1) {
        s->heartbeats += m.type == RAFT_MSG_HEARTBEAT;
        s->heartbeat_resps += m.type == RAFT_MSG_HEARTBEAT_RESP;
        s->others += m.type != RAFT_MSG_HEARTBEAT && m.type != RAFT_MSG_HEARTBEAT_RESP;
        s->append_resps += m.type == RAFT_MSG_APPEND_RESP;
    }
    assert_int_equal(rc, 0);
}

static void persist_cb(void *ctx, raft_group g, const struct raft_ready *rd)
{
    struct tnode *n = ctx;
    (void)g;
    assert_true((rd->flags & (RAFT_READY_HARD_STATE | RAFT_READY_ENTRIES | RAFT_READY_SNAPSHOT)) !=
                0);
    n->persists++;
}

static void send_cb(void *ctx, raft_node to, const uint8_t *batch, size_t len)
{
    struct tnode *n = ctx;
    struct cluster *c = n->c;
    assert_true(to != n->id);
    count_batch(&n->sent[to], batch, len);
    if (c->net_count == c->net_cap) {
        c->net_cap = c->net_cap == 0 ? 64 : c->net_cap * 2;
        c->net = realloc(c->net, c->net_cap * sizeof(*c->net));
        assert_non_null(c->net);
    }
    struct net_batch *b = &c->net[c->net_count++];
    b->from = n->id;
    b->to = to;
    b->len = len;
    b->bytes = malloc(len);
    assert_non_null(b->bytes);
    memcpy(b->bytes, batch, len);
}

static void persist_submit_cb(void *ctx, struct drain_held *held)
{
    struct tnode *n = ctx;
    if (n->disk_count == n->disk_cap) {
        n->disk_cap = n->disk_cap == 0 ? 16 : n->disk_cap * 2;
        n->disk = realloc(n->disk, n->disk_cap * sizeof(*n->disk));
        assert_non_null(n->disk);
    }
    n->disk[n->disk_count++] = held;
    n->submits++;
}

static void
restore_cb(void *ctx, raft_group g, const struct raft_snapshot_meta *meta, uint64_t bytes)
{
    (void)ctx, (void)g, (void)meta, (void)bytes;
    fail_msg("no snapshots in these tests");
}

static void snapshot_read_cb(void *ctx, raft_group g, const struct raft_msg *m)
{
    (void)ctx, (void)g, (void)m;
    fail_msg("no snapshots in these tests");
}

static void
apply_ahead_cb(void *ctx, raft_group g, const struct raft_entry *entries, uint32_t count)
{
    struct tnode *n = ctx;
    /* The previous batch was applied whole before the next is announced. */
    assert_int_equal(n->ahead_next, n->ahead_n);
    assert_true(count > 0);
    for (uint32_t i = 0; i < count; i++) {
        assert_int_equal(entries[i].index, n->applied[g] + 1 + i);
    }
    n->ahead = entries;
    n->ahead_n = count;
    n->ahead_next = 0;
    n->ahead_g = g;
    n->ahead_entries += count;
}

static void apply_cb(void *ctx, raft_group g, const struct raft_entry *e)
{
    struct tnode *n = ctx;
    /* Every applied entry was announced, in order, at the address apply_ahead saw. */
    assert_true(n->ahead_next < n->ahead_n);
    assert_int_equal(g, n->ahead_g);
    assert_ptr_equal(e, &n->ahead[n->ahead_next]);
    n->ahead_next++;
    n->applies++;
    /* Committed entries arrive in order, without gaps. */
    assert_int_equal(e->index, n->applied[g] + 1);
    n->applied[g] = e->index;
    if (n->drain_applied == 0 || g != n->drain_last_group) {
        n->drain_groups_applied++;
        n->drain_last_group = g;
    }
    n->drain_applied++;
    if (e->type == RAFT_ENTRY_NORMAL && e->data.len >= sizeof(uint64_t)) {
        memcpy(&n->value[g], e->data.base, sizeof(uint64_t));
    }
}

static void read_cb(void *ctx, raft_group g, const struct raft_read_state *rs)
{
    struct tnode *n = ctx;
    assert_true(rs->index <= n->applied[g]);
}

static void read_failed_cb(void *ctx, raft_group g, uint64_t read_ctx)
{
    struct tnode *n = ctx;
    (void)g;
    (void)read_ctx;
    n->read_failures++;
}

static void role_changed_cb(void *ctx, raft_group g, uint8_t role, raft_term term, raft_node leader)
{
    struct tnode *n = ctx;
    /* A term never goes back; a role event says something changed. */
    assert_true(term >= n->term[g]);
    assert_true(role != n->role[g] || term != n->term[g] || leader != n->leader[g]);
    n->role[g] = role;
    n->term[g] = term;
    n->leader[g] = leader;
    n->role_events++;
}

static const struct drain_ops ops = {
    .persist = persist_cb,
    .send = send_cb,
    .persist_submit = persist_submit_cb,
    .restore = restore_cb,
    .snapshot_read = snapshot_read_cb,
    .apply_ahead = apply_ahead_cb,
    .apply = apply_cb,
    .read = read_cb,
    .read_failed = read_failed_cb,
    .role_changed = role_changed_cb,
};

static bool cluster_quiesce;             /* options.quiesce for the next cluster_new */
static uint64_t cluster_uncommitted_max; /* multi_options.uncommitted_bytes_max, likewise */

static struct cluster *cluster_new(uint32_t groups, uint64_t seed)
{
    struct cluster *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    c->groups = groups;
    struct raft_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.member_count = NODES;
    for (uint32_t i = 0; i < NODES; i++) {
        cfg.members[i].id = i + 1;
        cfg.members[i].role = RAFT_VOTER;
    }
    for (uint32_t i = 0; i < NODES; i++) {
        struct tnode *n = &c->n[i];
        n->id = i + 1;
        n->c = c;
        n->applied = calloc(groups, sizeof(*n->applied));
        n->value = calloc(groups, sizeof(*n->value));
        n->role = calloc(groups, sizeof(*n->role));
        n->term = calloc(groups, sizeof(*n->term));
        n->leader = calloc(groups, sizeof(*n->leader));
        assert_non_null(n->applied);
        assert_non_null(n->value);
        assert_non_null(n->role);
        assert_non_null(n->term);
        assert_non_null(n->leader);
        for (uint32_t g = 0; g < groups; g++) {
            n->role[g] = RAFT_FOLLOWER; /* a fresh group's state at raft_init */
        }
        struct multi_options o;
        memset(&o, 0, sizeof(o));
        raft_options_default(&o.group);
        o.group.quiesce = cluster_quiesce;
        o.id = n->id;
        o.worker = 0;
        o.worker_count = 1;
        o.group_count = groups;
        o.seed = seed;
        o.uncommitted_bytes_max = cluster_uncommitted_max;
        assert_int_equal(multi_create(&n->m, &o, &cfg, NULL, NULL), 0);
    }
    return c;
}

static void cluster_free(struct cluster *c)
{
    for (uint32_t i = 0; i < NODES; i++) {
        struct tnode *n = &c->n[i];
        /* Every announced entry was applied, and nothing else. */
        assert_int_equal(n->ahead_next, n->ahead_n);
        assert_int_equal(n->ahead_entries, n->applies);
        for (uint32_t k = 0; k < n->disk_count; k++) {
            drain_held_free(n->disk[k]);
        }
        free(n->disk);
        multi_destroy(n->m);
        free(n->applied);
        free(n->value);
        free(n->role);
        free(n->term);
        free(n->leader);
    }
    for (uint32_t k = 0; k < c->net_count; k++) {
        free(c->net[k].bytes);
    }
    free(c->net);
    free(c);
}

static void reset_stats(struct cluster *c)
{
    for (uint32_t i = 0; i < NODES; i++) {
        memset(c->n[i].sent, 0, sizeof(c->n[i].sent));
    }
}

static uint64_t drain_budget; /* 0: drain_run; else drain_run_bounded with this budget */

static bool node_drain(struct tnode *n)
{
    if (!multi_has_dirty(n->m)) {
        return false;
    }
    n->drain_applied = 0;
    n->drain_groups_applied = 0;
    if (drain_budget == 0) {
        assert_int_equal(drain_run(n->m, &ops, n), 0);
        return true;
    }
    uint32_t walk_count = n->m->dirty_count;
    uint32_t *walk = malloc(walk_count * sizeof(*walk));
    assert_non_null(walk);
    memcpy(walk, n->m->dirty_list, walk_count * sizeof(*walk));
    uint64_t applied = 0;
    assert_int_equal(drain_run_bounded(n->m, &ops, n, drain_budget, &applied), 0);
    assert_int_equal(applied, n->drain_applied);
    /* The groups not reached (a tail of the walk) lead the dirty list, in walk order; there
     * are some only if the budget was used up. */
    uint32_t left = 0;
    for (uint32_t k = 1; k <= walk_count && k <= n->m->dirty_count; k++) {
        if (memcmp(n->m->dirty_list, walk + walk_count - k, k * sizeof(*walk)) == 0) {
            left = k;
        }
    }
    for (uint32_t k = 0; k < left; k++) {
        assert_int_equal(n->m->dirty_bit[walk[walk_count - left + k]], 1);
    }
    if (applied < drain_budget) {
        assert_int_equal(left, 0);
    }
    free(walk);
    /* Groups are drained until the budget is reached: the last one may overshoot it by
     * at most one ready batch. */
    assert_true(applied < drain_budget + RAFT_APPLY_ENTRIES_MAX);
    if (drain_budget == 1) {
        assert_true(n->drain_groups_applied <= 1);
    }
    return true;
}

/* The disk completes every submitted unit, in submission order. */
static bool node_complete_disk(struct tnode *n)
{
    uint32_t count = n->disk_count;
    if (count == 0) {
        return false;
    }
    for (uint32_t k = 0; k < count; k++) {
        assert_int_equal(drain_persisted(n->m, n->disk[k], &ops, n), 0);
    }
    memmove(n->disk, n->disk + count, (n->disk_count - count) * sizeof(*n->disk));
    n->disk_count -= count;
    return true;
}

static bool cluster_deliver(struct cluster *c)
{
    uint32_t count = c->net_count;
    if (count == 0 || c->hold_network) {
        return false;
    }
    struct net_batch *q = c->net;
    c->net = NULL;
    c->net_count = 0;
    c->net_cap = 0;
    for (uint32_t k = 0; k < count; k++) {
        struct tnode *to = node_of(c, q[k].to);
        assert_int_equal(multi_receive(to->m, q[k].bytes, q[k].len), 0);
        free(q[k].bytes);
    }
    free(q);
    return true;
}

/* Drains, completes persists and delivers until nothing moves. */
static void cluster_settle(struct cluster *c)
{
    for (int round = 0; round < 1000; round++) {
        bool busy = false;
        for (uint32_t i = 0; i < NODES; i++) {
            busy |= node_drain(&c->n[i]);
        }
        for (uint32_t i = 0; i < NODES; i++) {
            busy |= node_complete_disk(&c->n[i]);
        }
        busy |= cluster_deliver(c);
        if (!busy) {
            return;
        }
    }
    fail_msg("cluster did not settle");
}

static void cluster_tick(struct cluster *c)
{
    for (uint32_t i = 0; i < NODES; i++) {
        multi_tick(c->n[i].m);
    }
    cluster_settle(c);
}

/* Settles, then one tick and a settle more: a leader tells a follower a commit index that no
 * append carried at its next tick (core/replication.c, commit_tick), so only then have the
 * followers applied everything. */
static void cluster_settle_applied(struct cluster *c)
{
    cluster_settle(c);
    cluster_tick(c);
}

static void group_status(struct cluster *c, uint32_t i, raft_group g, struct raft_status *st)
{
    struct raft *r = multi_group(c->n[i].m, g);
    assert_non_null(r);
    raft_status(r, st);
}

/* The leader of g if every node agrees on one, else 0. Checks Election Safety on the way:
 * at most one leader per term. */
static raft_node agreed_leader(struct cluster *c, raft_group g)
{
    raft_node leader = RAFT_NODE_NONE;
    raft_term leader_term = 0;
    for (uint32_t i = 0; i < NODES; i++) {
        struct raft_status st;
        group_status(c, i, g, &st);
        if (st.role == RAFT_LEADER) {
            assert_true(leader == RAFT_NODE_NONE || st.term != leader_term);
            leader = st.id;
            leader_term = st.term;
        }
    }
    for (uint32_t i = 0; i < NODES && leader != RAFT_NODE_NONE; i++) {
        struct raft_status st;
        group_status(c, i, g, &st);
        if (st.leader != leader || st.term != leader_term) {
            return RAFT_NODE_NONE;
        }
    }
    return leader;
}

static uint32_t groups_with_leader(struct cluster *c)
{
    uint32_t count = 0;
    for (raft_group g = 0; g < c->groups; g++) {
        count += agreed_leader(c, g) != RAFT_NODE_NONE;
    }
    return count;
}

static uint32_t elect_all(struct cluster *c)
{
    for (uint32_t t = 1; t <= 300; t++) {
        cluster_tick(c);
        if (t % 5 == 0 && groups_with_leader(c) == c->groups) {
            return t;
        }
    }
    fail_msg("not every group elected a leader");
    return 0;
}

/* The sum of the uncommitted bytes of node i's groups, from each group's own status. */
static uint64_t uncommitted_sum(struct cluster *c, uint32_t i)
{
    uint64_t sum = 0;
    for (raft_group g = 0; g < c->groups; g++) {
        struct raft_status st;
        group_status(c, i, g, &st);
        sum += st.uncommitted_bytes;
    }
    return sum;
}

/* A table's budget of uncommitted bytes spans its groups: a proposal that would pass it is
 * refused whichever group it is for, the count falls as entries commit, a group that steps
 * down takes its share back, and one entry larger than the budget still goes alone. */
static void test_uncommitted_budget(void **state)
{
    (void)state;
    enum { G = 8, BUDGET = 1000, ENTRY = 100 };
    cluster_uncommitted_max = BUDGET;
    struct cluster *c = cluster_new(G, 19);
    cluster_uncommitted_max = 0;
    elect_all(c);
    cluster_settle_applied(c);
    /* The node leading the most groups. */
    uint32_t led[NODES + 1] = {0};
    for (raft_group g = 0; g < G; g++) {
        led[agreed_leader(c, g)]++;
    }
    raft_node l = 1;
    for (raft_node id = 2; id <= NODES; id++) {
        l = led[id] > led[l] ? id : l;
    }
    assert_true(led[l] >= 2);
    struct tnode *n = node_of(c, l);
    uint8_t data[4 * BUDGET];
    memset(data, 7, sizeof(data));
    c->hold_network = true; /* nothing commits */
    uint32_t accepted = 0;
    int rc = 0;
    for (uint32_t k = 0; rc == 0 && k < 100; k++) {
        raft_group g = 0;
        uint32_t seen = 0;
        for (raft_group h = 0; h < G; h++) { /* the (k mod led)-th group l leads */
            if (agreed_leader(c, h) == l && seen++ == k % led[l]) {
                g = h;
            }
        }
        rc = multi_propose(n->m, g, data, ENTRY, NULL);
        accepted += rc == 0 ? 1 : 0;
        assert_int_equal(multi_uncommitted_bytes(n->m), uncommitted_sum(c, l - 1));
    }
    assert_int_equal(rc, RR_EBUSY);
    assert_int_equal(accepted, BUDGET / ENTRY);
    assert_int_equal(multi_uncommitted_bytes(n->m), BUDGET);
    cluster_settle(c);
    assert_int_equal(multi_uncommitted_bytes(n->m), BUDGET);
    /* Committed: the budget is free again. */
    c->hold_network = false;
    cluster_settle_applied(c);
    assert_int_equal(multi_uncommitted_bytes(n->m), 0);
    assert_int_equal(uncommitted_sum(c, l - 1), 0);
    /* One entry larger than the whole budget goes through alone, and nothing after it. */
    raft_group g1 = 0;
    while (agreed_leader(c, g1) != l) {
        g1++;
    }
    c->hold_network = true;
    assert_int_equal(multi_propose(n->m, g1, data, 2 * BUDGET, NULL), 0);
    assert_int_equal(multi_uncommitted_bytes(n->m), 2 * BUDGET);
    assert_int_equal(multi_propose(n->m, g1, data, 1, NULL), RR_EBUSY);
    /* Cut off from its followers, the leader steps down (check-quorum): its share goes. */
    for (uint32_t t = 0; t < 100 && multi_uncommitted_bytes(n->m) != 0; t++) {
        cluster_tick(c);
    }
    assert_int_equal(multi_uncommitted_bytes(n->m), 0);
    assert_int_equal(uncommitted_sum(c, l - 1), 0);
    c->hold_network = false;
    cluster_free(c);
}

static void test_cluster_elects_and_commits(void **state)
{
    (void)state;
    enum { G = 16 };
    struct cluster *c = cluster_new(G, 7);
    elect_all(c);
    uint32_t led[NODES + 1] = {0};
    for (raft_group g = 0; g < G; g++) {
        raft_node l = agreed_leader(c, g);
        led[l]++;
        uint64_t v = 1000 + g;
        raft_index idx = 0;
        assert_int_equal(multi_propose(node_of(c, l)->m, g, (const uint8_t *)&v, sizeof(v), &idx),
                         0);
        assert_true(idx > 0);
        /* Proposing at a follower is refused. */
        raft_node f = l % NODES + 1;
        assert_int_equal(multi_propose(node_of(c, f)->m, g, (const uint8_t *)&v, sizeof(v), &idx),
                         RR_ENOTLEADER);
    }
    cluster_settle(c);
    /* Followers learn the commit index from the next append or heartbeat. */
    for (int t = 0; t < 3; t++) {
        cluster_tick(c);
    }
    for (uint32_t i = 0; i < NODES; i++) {
        for (raft_group g = 0; g < G; g++) {
            assert_int_equal(c->n[i].value[g], 1000 + g);
            struct raft_status st;
            group_status(c, i, g, &st);
            assert_int_equal(st.applied, c->n[i].applied[g]);
            assert_int_equal(st.commit, st.applied);
        }
    }
    /* With 16 groups, leadership does not all land on one node: every node serves writes. */
    assert_true(led[1] < G && led[2] < G && led[3] < G);
    cluster_free(c);
}

/* One tick of G idle groups: each node sends each peer one batch with one heartbeat record
 * carrying all the groups it leads; the replies come back as one batch with one response
 * record. */
static void check_heartbeat_coalescing(uint32_t groups)
{
    struct cluster *c = cluster_new(groups, 11);
    elect_all(c);
    cluster_settle(c);
    /* Idle from here: a heartbeat period in which a new leader sent its first entry ends
     * without a heartbeat to that follower (core/replication.c, heartbeat_period). */
    cluster_tick(c);
    uint32_t led[NODES + 1] = {0};
    for (raft_group g = 0; g < groups; g++) {
        led[agreed_leader(c, g)]++;
    }
    for (int tick = 0; tick < 3; tick++) {
        reset_stats(c);
        for (uint32_t i = 0; i < NODES; i++) {
            multi_tick(c->n[i].m);
            assert_true(node_drain(&c->n[i]));
        }
        for (uint32_t i = 0; i < NODES; i++) {
            for (raft_node to = 1; to <= NODES; to++) {
                struct send_stats *s = &c->n[i].sent[to];
                if (to == c->n[i].id || led[c->n[i].id] == 0) {
                    assert_int_equal(s->batches, 0);
                    continue;
                }
                assert_int_equal(s->batches, 1);
                assert_int_equal(s->records, 1);
                assert_int_equal(s->heartbeats, led[c->n[i].id]);
                assert_int_equal(s->others, 0);
            }
        }
        /* Deliver; the followers answer in their next drain (or after their persist). */
        reset_stats(c);
        assert_true(cluster_deliver(c));
        for (uint32_t i = 0; i < NODES; i++) {
            node_drain(&c->n[i]);
            node_complete_disk(&c->n[i]);
        }
        for (uint32_t i = 0; i < NODES; i++) {
            for (raft_node to = 1; to <= NODES; to++) {
                struct send_stats *s = &c->n[i].sent[to];
                if (to == c->n[i].id || led[to] == 0) {
                    assert_int_equal(s->batches, 0);
                    continue;
                }
                assert_int_equal(s->batches, 1);
                assert_int_equal(s->records, 1);
                assert_int_equal(s->heartbeat_resps, led[to]);
                assert_int_equal(s->others, 0);
            }
        }
        cluster_settle(c);
    }
    /* Idle: still the same leaders, nothing committed beyond the no-ops. */
    for (raft_group g = 0; g < groups; g++) {
        assert_true(agreed_leader(c, g) != RAFT_NODE_NONE);
    }
    cluster_free(c);
}

/* Role events: after every drain, what role_changed reported for each group is exactly the
 * group's role, term and leader (raft_status), so a node never has to poll for them. */
static void check_role_events_mirror_status(struct cluster *c)
{
    for (uint32_t i = 0; i < NODES; i++) {
        for (raft_group g = 0; g < c->groups; g++) {
            struct raft_status st;
            group_status(c, i, g, &st);
            assert_int_equal(c->n[i].role[g], st.role);
            assert_int_equal(c->n[i].term[g], st.term);
            assert_int_equal(c->n[i].leader[g], st.leader);
        }
    }
}

static void test_role_events_and_read_failures(void **state)
{
    (void)state;
    enum { G = 8 };
    struct cluster *c = cluster_new(G, 5);
    elect_all(c);
    cluster_settle(c);
    check_role_events_mirror_status(c);
    assert_true(c->n[0].role_events + c->n[1].role_events + c->n[2].role_events >= 3 * G);
    /* A leader with queued reads is deposed (a higher term arrives) before any round is
     * confirmed: each read comes back through read_failed, and the new term through
     * role_changed, in the same drain. */
    raft_group g = 0;
    raft_node l = agreed_leader(c, g);
    struct tnode *n = node_of(c, l);
    c->hold_network = true; /* the reads' heartbeat round never comes back */
    for (uint64_t k = 1; k <= 3; k++) {
        assert_int_equal(multi_read_index(n->m, g, k), 0);
    }
    node_drain(n);
    struct raft_status st;
    group_status(c, l - 1, g, &st);
    struct raft_msg hb;
    memset(&hb, 0, sizeof(hb));
    hb.type = RAFT_MSG_HEARTBEAT;
    hb.group = g;
    hb.from = l % NODES + 1;
    hb.to = l;
    hb.term = st.term + 1;
    assert_int_equal(raft_step(multi_group(n->m, g), &hb), 0);
    uint64_t failed = n->read_failures;
    node_drain(n);
    assert_int_equal(n->read_failures - failed, 3);
    assert_int_equal(n->role[g], RAFT_FOLLOWER);
    assert_int_equal(n->term[g], st.term + 1);
    assert_int_equal(n->leader[g], hb.from);
    cluster_free(c);
}

/* Quiescence through the table: idle groups leave multi_tick's list, so a tick of an idle
 * table visits nothing and sends nothing; a message wakes its group back onto the list; a
 * peer reported down wakes exactly the groups it leads here, and they elect new leaders. */
static void test_quiesced_groups_not_ticked(void **state)
{
    (void)state;
    enum { G = 32 };
    cluster_quiesce = true;
    struct cluster *c = cluster_new(G, 9);
    cluster_quiesce = false;
    elect_all(c);
    for (int t = 0; t < 30; t++) {
        cluster_tick(c);
    }
    for (uint32_t i = 0; i < NODES; i++) {
        assert_int_equal(multi_awake_count(c->n[i].m), 0);
    }
    reset_stats(c);
    for (int t = 0; t < 20; t++) {
        cluster_tick(c);
    }
    for (uint32_t i = 0; i < NODES; i++) {
        for (raft_node to = 1; to <= NODES; to++) {
            assert_int_equal(c->n[i].sent[to].batches, 0);
        }
    }
    /* A proposal wakes its group on every node, and only it. */
    raft_node l = agreed_leader(c, 3);
    uint64_t v = 7;
    assert_int_equal(multi_propose(node_of(c, l)->m, 3, (const uint8_t *)&v, sizeof(v), NULL), 0);
    cluster_settle_applied(c);
    for (uint32_t i = 0; i < NODES; i++) {
        assert_int_equal(multi_awake_count(c->n[i].m), 1);
        assert_int_equal(c->n[i].value[3], 7);
    }
    for (int t = 0; t < 30; t++) {
        cluster_tick(c);
    }
    assert_int_equal(multi_awake_count(c->n[0].m), 0);
    /* The others' transports report node `l` down (spuriously: it is alive). On each of
     * them exactly the groups `l` leads (they forget it) and the groups they lead themselves
     * (`l` is a member: CheckQuorum must run) wake; the third node's groups sleep on. */
    raft_node leaders[G];
    for (raft_group g = 0; g < G; g++) {
        leaders[g] = agreed_leader(c, g);
    }
    for (uint32_t i = 0; i < NODES; i++) {
        raft_node me = c->n[i].id;
        if (me == l) {
            continue;
        }
        uint32_t expect = 0;
        for (raft_group g = 0; g < G; g++) {
            expect += leaders[g] == l || leaders[g] == me;
        }
        assert_int_equal(multi_awake_count(c->n[i].m), 0);
        multi_peer_down(c->n[i].m, l);
        assert_int_equal(multi_awake_count(c->n[i].m), expect);
        for (raft_group g = 0; g < G; g++) {
            struct raft_status st;
            group_status(c, i, g, &st);
            assert_true(st.leader != l || st.role == RAFT_LEADER);
        }
    }
    /* `l` is alive: its groups hear it again (or elect anew), and everything sleeps again. */
    for (int t = 0; t < 60; t++) {
        cluster_tick(c);
    }
    for (raft_group g = 0; g < G; g++) {
        assert_true(agreed_leader(c, g) != RAFT_NODE_NONE);
    }
    for (uint32_t i = 0; i < NODES; i++) {
        assert_int_equal(multi_awake_count(c->n[i].m), 0);
    }
    cluster_free(c);
}

static void test_heartbeats_coalesce_64(void **state)
{
    (void)state;
    check_heartbeat_coalescing(64);
}

static void test_heartbeats_coalesce_4096(void **state)
{
    (void)state;
    check_heartbeat_coalescing(4096);
}

/* A follower's append response leaves only after its entries are durable: drain_run holds
 * it, drain_persisted sends it. */
static void test_held_until_persisted(void **state)
{
    (void)state;
    enum { G = 8 };
    struct cluster *c = cluster_new(G, 3);
    elect_all(c);
    cluster_settle(c);
    raft_group g = 5;
    raft_node l = agreed_leader(c, g);
    struct tnode *leader = node_of(c, l);
    struct tnode *follower = node_of(c, l % NODES + 1);
    uint64_t v = 77;
    raft_index idx = 0;
    assert_int_equal(multi_propose(leader->m, g, (const uint8_t *)&v, sizeof(v), &idx), 0);

    /* The leader's appends go out at once, before its own write is durable (§10.2.1). */
    reset_stats(c);
    assert_true(node_drain(leader));
    assert_int_equal(leader->disk_count, 1);
    assert_int_equal(leader->sent[follower->id].batches, 1);
    assert_int_equal(leader->sent[follower->id].others, 1);

    /* The follower persists the entry; its response waits for the disk. */
    c->hold_network = true;
    uint32_t kept = 0;
    for (uint32_t k = 0; k < c->net_count; k++) {
        struct net_batch b = c->net[k];
        if (b.to == follower->id) {
            assert_int_equal(multi_receive(follower->m, b.bytes, b.len), 0);
            free(b.bytes);
        } else {
            c->net[kept++] = b;
        }
    }
    c->net_count = kept;
    reset_stats(c);
    uint64_t persists = follower->persists;
    assert_true(node_drain(follower));
    assert_true(follower->persists > persists);
    assert_int_equal(follower->disk_count, 1);
    assert_int_equal(follower->sent[l].append_resps, 0);
    /* More drains do not release it either. */
    multi_tick(follower->m);
    node_drain(follower);
    assert_int_equal(follower->sent[l].append_resps, 0);

    /* The disk completes: exactly one batch to the leader carries the response. */
    uint32_t batches = follower->sent[l].batches;
    assert_true(node_complete_disk(follower));
    assert_int_equal(follower->sent[l].batches, batches + 1);
    assert_int_equal(follower->sent[l].append_resps, 1);
    c->hold_network = false;
    cluster_settle(c);
    for (int t = 0; t < 3; t++) {
        cluster_tick(c);
    }
    for (uint32_t i = 0; i < NODES; i++) {
        assert_int_equal(c->n[i].value[g], 77);
    }
    cluster_free(c);
}

/* A unit that never becomes durable (crash) is freed without sending or stepping anything. */
static void test_held_freed_on_crash(void **state)
{
    (void)state;
    enum { G = 4 };
    struct cluster *c = cluster_new(G, 5);
    elect_all(c);
    cluster_settle(c);
    raft_group g = 2;
    struct tnode *leader = node_of(c, agreed_leader(c, g));
    uint64_t v = 9;
    raft_index idx = 0;
    assert_int_equal(multi_propose(leader->m, g, (const uint8_t *)&v, sizeof(v), &idx), 0);
    assert_true(node_drain(leader));
    assert_int_equal(leader->disk_count, 1);
    struct raft_status before;
    raft_status(multi_group(leader->m, g), &before);
    drain_held_free(leader->disk[0]);
    leader->disk_count = 0;
    struct raft_status after;
    raft_status(multi_group(leader->m, g), &after);
    assert_int_equal(after.persisted_index, before.persisted_index);
    assert_true(after.persisted_index < idx);
    drain_held_free(NULL);
    cluster_free(c);
}

/* More committed entries than one ready may carry (RAFT_APPLY_ENTRIES_MAX): the group stays
 * dirty after its drain and the next drains apply the rest, with no tick to wake it. */
static void test_apply_backlog_redrains(void **state)
{
    (void)state;
    struct cluster *c = cluster_new(2, 9);
    elect_all(c);
    cluster_settle(c);
    raft_group g = 1;
    struct tnode *leader = node_of(c, agreed_leader(c, g));
    raft_index last = 0;
    for (uint64_t v = 1; v <= 2 * RAFT_APPLY_ENTRIES_MAX + 100; v++) {
        assert_int_equal(multi_propose(leader->m, g, (const uint8_t *)&v, sizeof(v), &last), 0);
    }
    cluster_settle(c);
    assert_int_equal(leader->applied[g], last);
    assert_int_equal(leader->value[g], 2 * RAFT_APPLY_ENTRIES_MAX + 100);
    assert_false(multi_has_dirty(leader->m));
    /* apply_ahead announced every entry of both groups, in batches of at most one ready's. */
    assert_true(leader->ahead_entries >= last);
    assert_int_equal(leader->ahead_entries, leader->applies);
    cluster_free(c);
}

/* A drain bounded in work applies at most about its budget, leaves the other groups dirty
 * and reaches them in the next drains: every group still applies everything, with no tick
 * to wake it, and the groups a drain did not reach go first in the next one. */
static void test_bounded_drain(void **state)
{
    (void)state;
    enum { G = 6, PER_GROUP = 300 };
    static const uint64_t budgets[] = {1, 100, RAFT_APPLY_ENTRIES_MAX};
    for (uint32_t b = 0; b < sizeof(budgets) / sizeof(budgets[0]); b++) {
        struct cluster *c = cluster_new(G, 21);
        struct tnode *leader = node_of(c, 1);
        for (raft_group g = 0; g < G; g++) {
            raft_campaign(multi_group(leader->m, g));
        }
        cluster_settle(c);
        drain_budget = budgets[b];
        raft_index last[G];
        for (raft_group g = 0; g < G; g++) {
            for (uint64_t v = 1; v <= PER_GROUP; v++) {
                uint64_t x = g * 1000 + v;
                assert_int_equal(
                    multi_propose(leader->m, g, (const uint8_t *)&x, sizeof(x), &last[g]), 0);
            }
            /* A backlog larger than one ready batch in one group. */
            if (g == 0) {
                for (uint64_t v = 1; v <= 2 * RAFT_APPLY_ENTRIES_MAX; v++) {
                    assert_int_equal(
                        multi_propose(leader->m, g, (const uint8_t *)&v, sizeof(v), &last[g]), 0);
                }
            }
        }
        cluster_settle_applied(c);
        for (uint32_t i = 0; i < NODES; i++) {
            for (raft_group g = 0; g < G; g++) {
                assert_int_equal(c->n[i].applied[g], last[g]);
            }
            assert_false(multi_has_dirty(c->n[i].m));
        }
        drain_budget = 0;
        cluster_free(c);
    }
}

/* A drain whose output to a peer exceeds RAFT_BATCH_BYTES_MAX closes the full batch and
 * starts another: every batch stays within the limit and everything still arrives. */
static void test_batches_split_at_limit(void **state)
{
    (void)state;
    enum { G = 24, PER_GROUP = 3 };
    struct cluster *c = cluster_new(G, 13);
    struct tnode *leader = node_of(c, 1);
    for (raft_group g = 0; g < G; g++) {
        raft_campaign(multi_group(leader->m, g));
    }
    cluster_settle(c);
    for (raft_group g = 0; g < G; g++) {
        assert_int_equal(agreed_leader(c, g), 1);
    }
    /* 24 groups x 3 entries of 1 MiB: 72 MiB to each follower in one drain. */
    uint8_t *data = calloc(1, RAFT_ENTRY_BYTES_MAX);
    assert_non_null(data);
    for (raft_group g = 0; g < G; g++) {
        for (uint64_t k = 1; k <= PER_GROUP; k++) {
            uint64_t v = g * 10 + k;
            memcpy(data, &v, sizeof(v));
            raft_index idx = 0;
            assert_int_equal(multi_propose(leader->m, g, data, RAFT_ENTRY_BYTES_MAX, &idx), 0);
        }
    }
    free(data);
    reset_stats(c);
    assert_true(node_drain(leader));
    for (raft_node to = 2; to <= NODES; to++) {
        struct send_stats *st = &leader->sent[to];
        assert_true(st->batches >= 2);
        assert_true(st->len_max <= RAFT_BATCH_BYTES_MAX);
        assert_int_equal(st->others, G * PER_GROUP);
    }
    cluster_settle(c);
    for (int t = 0; t < 3; t++) {
        cluster_tick(c);
    }
    for (uint32_t i = 0; i < NODES; i++) {
        for (raft_group g = 0; g < G; g++) {
            assert_int_equal(c->n[i].value[g], g * 10 + PER_GROUP);
        }
        /* The burst's buffers were not kept: the table and its pooled units hold little. */
        struct multi *m = c->n[i].m;
        for (uint32_t k = 0; k < m->out.peer_count; k++) {
            assert_true(m->out.peers[k].bytes.cap <= DRAIN_RETAIN_BYTES_MAX);
        }
        for (struct drain_held *h = m->held_pool; h != NULL; h = h->next) {
            for (uint32_t k = 0; k < h->out.peer_count; k++) {
                assert_true(h->out.peers[k].bytes.cap <= DRAIN_RETAIN_BYTES_MAX);
            }
        }
    }
    cluster_free(c);
}

/* Cross-group group commit: one drain puts every group's writes into one persist unit, and
 * a second drain while the first unit is in flight opens a second unit. */
static void test_one_unit_per_drain(void **state)
{
    (void)state;
    enum { G = 32 };
    struct cluster *c = cluster_new(G, 21);
    struct tnode *leader = node_of(c, 2);
    for (raft_group g = 0; g < G; g++) {
        raft_campaign(multi_group(leader->m, g));
    }
    cluster_settle(c);
    uint64_t persists = leader->persists, submits = leader->submits;
    for (raft_group g = 0; g < G; g++) {
        uint64_t v = 500 + g;
        raft_index idx = 0;
        assert_int_equal(multi_propose(leader->m, g, (const uint8_t *)&v, sizeof(v), &idx), 0);
    }
    assert_true(node_drain(leader));
    assert_int_equal(leader->persists - persists, G);
    assert_int_equal(leader->submits - submits, 1);
    for (raft_group g = 0; g < G; g += 2) {
        uint64_t v = 600 + g;
        raft_index idx = 0;
        assert_int_equal(multi_propose(leader->m, g, (const uint8_t *)&v, sizeof(v), &idx), 0);
    }
    assert_true(node_drain(leader));
    assert_int_equal(leader->persists - persists, G + G / 2);
    assert_int_equal(leader->submits - submits, 2);
    assert_int_equal(leader->disk_count, 2);
    cluster_settle(c);
    for (int t = 0; t < 3; t++) {
        cluster_tick(c);
    }
    for (uint32_t i = 0; i < NODES; i++) {
        for (raft_group g = 0; g < G; g++) {
            assert_int_equal(c->n[i].value[g], g % 2 == 0 ? 600 + g : 500 + g);
        }
    }
    cluster_free(c);
}

/* A drain with nothing to do sends nothing and submits no unit. */
static void test_quiet_drain(void **state)
{
    (void)state;
    struct cluster *c = cluster_new(4, 1);
    for (uint32_t i = 0; i < NODES; i++) {
        struct tnode *n = &c->n[i];
        node_drain(n); /* groups start dirty */
        assert_false(multi_has_dirty(n->m));
        assert_int_equal(drain_run(n->m, &ops, n), 0);
        assert_int_equal(n->submits, 0);
        for (raft_node to = 1; to <= NODES; to++) {
            assert_int_equal(n->sent[to].batches, 0);
        }
    }
    cluster_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quiet_drain),
        cmocka_unit_test(test_bounded_drain),
        cmocka_unit_test(test_cluster_elects_and_commits),
        cmocka_unit_test(test_uncommitted_budget),
        cmocka_unit_test(test_role_events_and_read_failures),
        cmocka_unit_test(test_quiesced_groups_not_ticked),
        cmocka_unit_test(test_heartbeats_coalesce_64),
        cmocka_unit_test(test_heartbeats_coalesce_4096),
        cmocka_unit_test(test_held_until_persisted),
        cmocka_unit_test(test_held_freed_on_crash),
        cmocka_unit_test(test_apply_backlog_redrains),
        cmocka_unit_test(test_batches_split_at_limit),
        cmocka_unit_test(test_one_unit_per_drain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
