/* Group table: slot math, ownership, seeds, and what multi_receive refuses. */
/* cmocka.h needs these four first, in this order. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <string.h>

#include "core/base/errors.h"
#include "core/codec.h"
#include "core/multi.h"

static struct raft_config three_voters(void)
{
    struct raft_config c;
    memset(&c, 0, sizeof(c));
    c.member_count = 3;
    for (uint32_t i = 0; i < 3; i++) {
        c.members[i].id = i + 1;
        c.members[i].role = RAFT_VOTER;
    }
    return c;
}

static struct multi_options
options(raft_node id, uint32_t worker, uint32_t workers, uint32_t groups)
{
    struct multi_options o;
    memset(&o, 0, sizeof(o));
    raft_options_default(&o.group);
    o.id = id;
    o.worker = worker;
    o.worker_count = workers;
    o.group_count = groups;
    o.seed = 42;
    return o;
}

static struct multi *create(raft_node id, uint32_t worker, uint32_t workers, uint32_t groups)
{
    struct raft_config c = three_voters();
    struct multi_options o = options(id, worker, workers, groups);
    struct multi *m = NULL;
    assert_int_equal(multi_create(&m, &o, &c, NULL, NULL), 0);
    assert_non_null(m);
    return m;
}

/* Worker 1 of 3 with G = 10 owns groups 1, 4, 7 in slots 0, 1, 2. */
static void test_slot_math(void **state)
{
    (void)state;
    struct multi *m = create(1, 1, 3, 10);
    assert_int_equal(multi_group_count(m), 3);
    for (uint32_t s = 0; s < 3; s++) {
        raft_group g = multi_group_id(m, s);
        assert_int_equal(g, s * 3 + 1);
        struct raft *r = multi_group(m, g);
        assert_non_null(r);
        struct raft_status st;
        raft_status(r, &st);
        assert_int_equal(st.group, g);
        assert_int_equal(st.id, 1);
    }
    assert_ptr_not_equal(multi_group(m, 1), multi_group(m, 4));
    /* Other workers' groups and groups beyond G are not here. */
    for (raft_group g = 0; g < 20; g++) {
        bool mine = g < 10 && g % 3 == 1;
        assert_int_equal(multi_group(m, g) != NULL, mine);
    }
    multi_destroy(m);
}

/* The last worker may own one group fewer: G = 10, W = 4: worker 3 owns 3 and 7. */
static void test_uneven_split(void **state)
{
    (void)state;
    uint32_t total = 0;
    for (uint32_t w = 0; w < 4; w++) {
        struct multi *m = create(2, w, 4, 10);
        total += multi_group_count(m);
        multi_destroy(m);
    }
    assert_int_equal(total, 10);
    struct multi *m = create(2, 3, 4, 10);
    assert_int_equal(multi_group_count(m), 2);
    assert_int_equal(multi_group_id(m, 1), 7);
    multi_destroy(m);
}

static void test_create_rejects_bad_options(void **state)
{
    (void)state;
    struct raft_config c = three_voters();
    struct multi *m = NULL;
    struct multi_options o = options(1, 3, 3, 10); /* worker >= worker_count */
    assert_int_equal(multi_create(&m, &o, &c, NULL, NULL), RR_EINVAL);
    o = options(1, 0, 0, 10);
    assert_int_equal(multi_create(&m, &o, &c, NULL, NULL), RR_EINVAL);
    o = options(1, 5, 8, 4); /* worker 5 of 8 owns nothing when G = 4 */
    assert_int_equal(multi_create(&m, &o, &c, NULL, NULL), RR_EINVAL);
    o = options(RAFT_NODE_NONE, 0, 1, 4);
    assert_int_equal(multi_create(&m, &o, &c, NULL, NULL), RR_EINVAL);
    o = options(1, 0, 1, RAFT_GROUPS_MAX + 1);
    assert_int_equal(multi_create(&m, &o, &c, NULL, NULL), RR_EINVAL);
    assert_null(m);
}

struct restore_log {
    raft_group seen[16];
    uint32_t count;
};

static const struct raft_restore *restore_cb(void *ctx, raft_group g)
{
    struct restore_log *log = ctx;
    assert_true(log->count < 16);
    log->seen[log->count++] = g;
    return NULL;
}

static void test_restore_called_per_group(void **state)
{
    (void)state;
    struct raft_config c = three_voters();
    struct multi_options o = options(3, 2, 4, 16);
    struct restore_log log = {.count = 0};
    struct multi *m = NULL;
    assert_int_equal(multi_create(&m, &o, &c, restore_cb, &log), 0);
    assert_int_equal(log.count, 4);
    for (uint32_t i = 0; i < 4; i++) {
        assert_int_equal(log.seen[i], i * 4 + 2);
    }
    multi_destroy(m);
}

/* Ticks until each group leaves the follower role; returns the ticks it took, per slot. */
static void first_campaign_ticks(struct multi *m, uint32_t *ticks, uint32_t n)
{
    memset(ticks, 0, n * sizeof(*ticks));
    for (uint32_t t = 1; t <= 100; t++) {
        multi_tick(m);
        for (uint32_t s = 0; s < n; s++) {
            struct raft_status st;
            raft_status(multi_group(m, multi_group_id(m, s)), &st);
            if (ticks[s] == 0 && st.role != RAFT_FOLLOWER) {
                ticks[s] = t;
            }
        }
    }
    for (uint32_t s = 0; s < n; s++) {
        assert_true(ticks[s] > 0);
    }
}

/* Seeds differ per group and per node even when every node gets the same table seed:
 * otherwise the same group on every node would time out in lockstep. */
static void test_seeds_differ(void **state)
{
    (void)state;
    enum { N = 32 };
    uint32_t a[N], b[N];
    struct multi *m1 = create(1, 0, 1, N);
    struct multi *m2 = create(2, 0, 1, N);
    first_campaign_ticks(m1, a, N);
    first_campaign_ticks(m2, b, N);
    uint32_t same_group = 0, same_node = 0;
    for (uint32_t s = 0; s < N; s++) {
        same_group += a[s] == b[s];
        same_node += a[s] == a[0];
    }
    /* Timeouts are drawn from 10 values: some coincide, not all. */
    assert_true(same_group < N);
    assert_true(same_node < N);
    multi_destroy(m1);
    multi_destroy(m2);
}

static size_t heartbeat_batch(uint8_t *buf, size_t cap, raft_node from, raft_node to, raft_group g)
{
    struct rr_bytes out;
    rr_bytes_init(&out);
    struct codec_batch_writer w;
    assert_int_equal(codec_batch_begin(&w, &out, from, to), 0);
    struct codec_heartbeat hb = {.group = g, .term = 1, .commit = 0, .read_ctx = 0};
    assert_int_equal(codec_batch_add_heartbeats(&w, false, &hb, 1), 0);
    codec_batch_end(&w);
    assert_true(out.len <= cap);
    memcpy(buf, out.base, out.len);
    size_t len = out.len;
    rr_bytes_free(&out);
    return len;
}

static void test_receive_routes_and_rejects(void **state)
{
    (void)state;
    struct multi *m = create(1, 1, 3, 10); /* groups 1, 4, 7 */
    uint8_t buf[256];
    size_t len = heartbeat_batch(buf, sizeof(buf), 2, 1, 4);
    assert_int_equal(multi_receive(m, buf, len), 0);
    struct raft_status st;
    raft_status(multi_group(m, 4), &st);
    assert_int_equal(st.term, 1);
    assert_int_equal(st.leader, 2);
    raft_status(multi_group(m, 7), &st);
    assert_int_equal(st.term, 0); /* only the addressed group was stepped */

    /* Another worker's group, and a group beyond G. */
    len = heartbeat_batch(buf, sizeof(buf), 2, 1, 5);
    assert_int_equal(multi_receive(m, buf, len), RR_ENOTFOUND);
    len = heartbeat_batch(buf, sizeof(buf), 2, 1, 10);
    assert_int_equal(multi_receive(m, buf, len), RR_ENOTFOUND);
    /* A batch addressed to another node, and one claiming to come from this node. */
    len = heartbeat_batch(buf, sizeof(buf), 2, 3, 4);
    assert_int_equal(multi_receive(m, buf, len), RR_EMISMATCH);
    len = heartbeat_batch(buf, sizeof(buf), 1, 1, 4);
    assert_int_equal(multi_receive(m, buf, len), RR_EMISMATCH);
    /* A sender outside the configuration is not an error (a server being added hears from
     * leaders it does not know yet): refusing it would close the connection for every
     * group. */
    len = heartbeat_batch(buf, sizeof(buf), 9, 1, 7);
    assert_int_equal(multi_receive(m, buf, len), 0);
    raft_status(multi_group(m, 7), &st);
    assert_int_equal(st.leader, 9);
    multi_destroy(m);
}

static void test_receive_rejects_malformed(void **state)
{
    (void)state;
    struct multi *m = create(1, 1, 3, 10);
    uint8_t buf[256];
    size_t len = heartbeat_batch(buf, sizeof(buf), 2, 1, 4);
    /* Every truncation of a valid batch is refused without stepping anything. */
    for (size_t cut = 0; cut < len; cut++) {
        assert_true(multi_receive(m, buf, cut) < 0);
    }
    struct raft_status st;
    raft_status(multi_group(m, 4), &st);
    assert_int_equal(st.term, 0);
    /* Trailing garbage, a wrong version, an unknown record kind. */
    buf[len] = 0xAB;
    assert_true(multi_receive(m, buf, len + 1) < 0);
    uint8_t bad[256];
    memcpy(bad, buf, len);
    bad[0] = CODEC_VERSION + 1;
    assert_int_equal(multi_receive(m, bad, len), RR_EBADVERSION);
    memcpy(bad, buf, len);
    bad[13] = 0x7F; /* first record's kind (after the 13-byte batch header) */
    assert_true(multi_receive(m, bad, len) < 0);
    multi_destroy(m);
}

static void test_propose_routes(void **state)
{
    (void)state;
    struct multi *m = create(1, 1, 3, 10);
    raft_index idx = 0;
    uint8_t data[4] = {1, 2, 3, 4};
    assert_int_equal(multi_propose(m, 5, data, 4, &idx), RR_ENOTFOUND);
    assert_int_equal(multi_read_index(m, 5, 1), RR_ENOTFOUND);
    assert_int_equal(multi_propose(m, 4, data, 4, &idx), RR_ENOTLEADER);
    assert_int_equal(multi_read_index(m, 4, 1), RR_ENOTLEADER);
    multi_destroy(m);
}

/* Runs every group's ready batches to quiescence, as if each persist completed at once:
 * messages to this node (persist notices, own votes) are stepped back, others dropped. */
static void settle(struct multi *m)
{
    for (uint32_t s = 0; s < multi_group_count(m); s++) {
        struct raft *r = multi_group(m, multi_group_id(m, s));
        for (int i = 0; i < 32 && raft_has_ready(r); i++) {
            struct raft_ready rd;
            raft_ready(r, &rd);
            struct raft_msg self[8];
            uint32_t n = 0;
            for (uint32_t k = 0; k < rd.msg_after_persist_count; k++) {
                const struct raft_msg *msg = &rd.msgs_after_persist[k];
                if (msg->to == 1) {
                    assert_true(n < 8);
                    self[n++] = *msg;
                }
            }
            raft_advance(r, &rd);
            for (uint32_t k = 0; k < n; k++) {
                assert_int_equal(raft_step(r, &self[k]), 0);
            }
        }
        assert_false(raft_has_ready(r));
    }
}

/* The same change is proposed in every group this node leads, and the table reports where
 * each group stands: not started where it does not lead, pending until committed, then
 * done; a second change while one is in flight is refused per group. Reference: paper §6
 * (one change per group at a time), docs/multi.md */
static void test_change_config_every_group_with_progress(void **state)
{
    (void)state;
    struct raft_config one;
    memset(&one, 0, sizeof(one));
    one.member_count = 1;
    one.members[0] = (struct raft_member){1, RAFT_VOTER};
    struct multi_options o = options(1, 0, 1, 4);
    struct multi *m = NULL;
    assert_int_equal(multi_create(&m, &o, &one, NULL, NULL), 0);
    for (raft_group g = 0; g < 3; g++) {
        raft_campaign(multi_group(m, g)); /* group 3 stays without a leader */
    }
    settle(m);
    struct raft_config target = one; /* add learner 2: committed by the single voter */
    target.members[target.member_count++] = (struct raft_member){2, RAFT_LEARNER};
    struct multi_config_result res[4];
    assert_int_equal(multi_change_config(m, &target, res, 3), RR_EINVAL); /* too small */
    assert_int_equal(multi_change_config(m, &target, res, 4), 3);
    for (uint32_t s = 0; s < 3; s++) {
        assert_int_equal(res[s].group, s);
        assert_int_equal(res[s].result, 0);
        assert_int_equal(res[s].index, 2); /* after the no-op */
    }
    assert_int_equal(res[3].result, RR_ENOTLEADER);
    struct multi_config_progress p;
    uint8_t phases[4];
    multi_config_progress(m, &target, &p, phases, 4);
    assert_int_equal(p.groups, 4);
    assert_int_equal(p.pending, 3);
    assert_int_equal(p.other, 1);
    assert_int_equal(phases[3], MULTI_CONFIG_OTHER);
    assert_int_equal(multi_change_config(m, &one, res, 4), 0); /* one change in flight */
    assert_int_equal(res[0].result, RR_ECONFIG);
    settle(m);
    multi_config_progress(m, &target, &p, phases, 4);
    assert_int_equal(p.done, 3);
    assert_int_equal(phases[0], MULTI_CONFIG_DONE);
    assert_int_equal(phases[3], MULTI_CONFIG_OTHER);
    multi_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slot_math),
        cmocka_unit_test(test_uneven_split),
        cmocka_unit_test(test_create_rejects_bad_options),
        cmocka_unit_test(test_restore_called_per_group),
        cmocka_unit_test(test_seeds_differ),
        cmocka_unit_test(test_receive_routes_and_rejects),
        cmocka_unit_test(test_receive_rejects_malformed),
        cmocka_unit_test(test_propose_routes),
        cmocka_unit_test(test_change_config_every_group_with_progress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
