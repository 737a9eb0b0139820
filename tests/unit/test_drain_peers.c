/* The drain with many peers: one batch per peer however many peers a drain reaches. A
 * 9-voter group's campaign sends to 8 peers in one drain, more than the outbox's initial
 * capacity, so the per-peer array grows while batches are open (a use-after-free once:
 * the open batch writers kept pointing into the old array). */
/* cmocka.h needs these four first, in this order. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <string.h>

#include "core/codec.h"
#include "core/drain.h"

#define VOTERS 9u

struct sent {
    uint32_t batches[VOTERS + 1];   /* batches sent to each node */
    uint32_t pre_votes[VOTERS + 1]; /* PRE_VOTE messages decoded per destination */
};

static void persist_cb(void *ctx, raft_group g, const struct raft_ready *rd)
{
    (void)ctx;
    (void)g;
    (void)rd;
}

static void send_cb(void *ctx, raft_node to, const uint8_t *batch, size_t len)
{
    struct sent *s = ctx;
    assert_true(to >= 2 && to <= VOTERS);
    s->batches[to]++;
    struct codec_batch_reader r;
    assert_int_equal(codec_batch_open(&r, batch, len), 0);
    assert_int_equal(r.to, to);
    static struct codec_scratch scratch;
    struct raft_msg m;
    int rc;
    while ((rc = codec_batch_next(&r, &m, &scratch)) == 1) {
        assert_int_equal(m.to, to);
        if (m.type == RAFT_MSG_PRE_VOTE) {
            s->pre_votes[to]++;
        }
    }
    assert_int_equal(rc, 0);
}

static void persist_submit_cb(void *ctx, struct drain_held *held)
{
    (void)ctx;
    drain_held_free(held);
}

static void
restore_cb(void *ctx, raft_group g, const struct raft_snapshot_meta *meta, uint64_t bytes)
{
    (void)ctx;
    (void)g;
    (void)meta;
    (void)bytes;
}

static void snapshot_read_cb(void *ctx, raft_group g, const struct raft_msg *m)
{
    (void)ctx;
    (void)g;
    (void)m;
}

static void apply_cb(void *ctx, raft_group g, const struct raft_entry *e)
{
    (void)ctx;
    (void)g;
    (void)e;
}

static void read_cb(void *ctx, raft_group g, const struct raft_read_state *rs)
{
    (void)ctx;
    (void)g;
    (void)rs;
}

static void read_failed_cb(void *ctx, raft_group g, uint64_t read_ctx)
{
    (void)ctx;
    (void)g;
    (void)read_ctx;
}

static void role_changed_cb(void *ctx, raft_group g, uint8_t role, raft_term term, raft_node leader)
{
    (void)ctx;
    (void)g;
    (void)role;
    (void)term;
    (void)leader;
}

static const struct drain_ops ops = {
    .persist = persist_cb,
    .send = send_cb,
    .persist_submit = persist_submit_cb,
    .restore = restore_cb,
    .snapshot_read = snapshot_read_cb,
    .apply = apply_cb,
    .read = read_cb,
    .read_failed = read_failed_cb,
    .role_changed = role_changed_cb,
};

static void test_campaign_reaches_every_peer_in_one_batch_each(void **state)
{
    (void)state;
    struct raft_config c;
    memset(&c, 0, sizeof(c));
    c.member_count = VOTERS;
    for (uint32_t i = 0; i < VOTERS; i++) {
        c.members[i].id = i + 1;
        c.members[i].role = RAFT_VOTER;
    }
    struct multi_options o;
    memset(&o, 0, sizeof(o));
    raft_options_default(&o.group);
    o.id = 1;
    o.worker_count = 1;
    o.group_count = 4;
    o.seed = 7;
    struct multi *m = NULL;
    assert_int_equal(multi_create(&m, &o, &c, NULL, NULL), 0);
    for (raft_group g = 0; g < 4; g++) {
        raft_campaign(multi_group(m, g));
    }
    struct sent s;
    memset(&s, 0, sizeof(s));
    assert_int_equal(drain_run(m, &ops, &s), 0);
    for (raft_node to = 2; to <= VOTERS; to++) {
        assert_int_equal(s.batches[to], 1);
        assert_int_equal(s.pre_votes[to], 4); /* one per group, all in the one batch */
    }
    multi_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_campaign_reaches_every_peer_in_one_batch_each),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
