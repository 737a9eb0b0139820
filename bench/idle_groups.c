/* Idle-group cost: memory per group and time per tick for G idle groups on a 3-node cluster
 * run in one process through multi_* and drain_* (in-memory disk and network).
 *
 * Usage: idle_groups [groups] [runs] [quiesce]   (defaults 4096, 51, quiescence off)
 * Memory is the heap growth (mallinfo2 uordblks) of one node's table, at creation and once
 * leaders are elected, divided by its groups. Time is CLOCK_MONOTONIC around one node's
 * multi_tick + drain_run (the leader side of a tick) and around a whole cluster round (all
 * three nodes tick and drain, the heartbeats are delivered, the responses drained and
 * delivered), reported as medians over `runs` ticks. */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/base/errors.h"
#include "core/drain.h"

#define NODES 3

struct bench_batch {
    raft_node to;
    uint8_t *bytes;
    size_t len;
};

struct bench_node {
    raft_node id;
    struct multi *m;
    struct drain_held *disk[64]; /* submitted units, oldest first */
    uint32_t disk_count;
    uint64_t batches; /* sent */
    uint64_t bytes;   /* sent */
};

static struct bench_batch *net;
static uint32_t net_count, net_cap;

static void die(const char *what, int rc)
{
    fprintf(stderr, "idle_groups: %s: %s\n", what, rr_strerror(rc));
    exit(1);
}

static void persist_cb(void *ctx, raft_group g, const struct raft_ready *rd)
{
    (void)ctx, (void)g, (void)rd;
}

static void send_cb(void *ctx, raft_node to, const uint8_t *batch, size_t len)
{
    struct bench_node *n = ctx;
    n->batches++;
    n->bytes += len;
    if (net_count == net_cap) {
        net_cap = net_cap == 0 ? 64 : net_cap * 2;
        net = realloc(net, net_cap * sizeof(*net));
        if (net == NULL) {
            die("network queue", RR_ENOMEM);
        }
    }
    uint8_t *copy = malloc(len);
    if (copy == NULL) {
        die("network queue", RR_ENOMEM);
    }
    memcpy(copy, batch, len);
    net[net_count++] = (struct bench_batch){.to = to, .bytes = copy, .len = len};
}

static void persist_submit_cb(void *ctx, struct drain_held *held)
{
    struct bench_node *n = ctx;
    if (n->disk_count == 64) {
        die("fake disk full", RR_EBUSY);
    }
    n->disk[n->disk_count++] = held;
}

static void
restore_cb(void *ctx, raft_group g, const struct raft_snapshot_meta *meta, uint64_t bytes)
{
    (void)ctx, (void)g, (void)meta, (void)bytes;
}

static void snapshot_read_cb(void *ctx, raft_group g, const struct raft_msg *m)
{
    (void)ctx, (void)g, (void)m;
}

static void apply_cb(void *ctx, raft_group g, const struct raft_entry *e)
{
    (void)ctx, (void)g, (void)e;
}

static void read_cb(void *ctx, raft_group g, const struct raft_read_state *rs)
{
    (void)ctx, (void)g, (void)rs;
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

static struct bench_node nodes[NODES];

static void node_drain(struct bench_node *n)
{
    int rc = drain_run(n->m, &ops, n);
    if (rc != 0) {
        die("drain_run", rc);
    }
}

static int round_once(void)
{
    int busy = 0;
    for (int i = 0; i < NODES; i++) {
        if (multi_has_dirty(nodes[i].m)) {
            node_drain(&nodes[i]);
            busy = 1;
        }
    }
    for (int i = 0; i < NODES; i++) {
        struct bench_node *n = &nodes[i];
        for (uint32_t k = 0; k < n->disk_count; k++) {
            int rc = drain_persisted(n->m, n->disk[k], &ops, n);
            if (rc != 0) {
                die("drain_persisted", rc);
            }
        }
        busy |= n->disk_count > 0;
        n->disk_count = 0;
    }
    uint32_t count = net_count;
    struct bench_batch *q = net;
    net = NULL;
    net_count = net_cap = 0;
    for (uint32_t k = 0; k < count; k++) {
        int rc = multi_receive(nodes[q[k].to - 1].m, q[k].bytes, q[k].len);
        if (rc != 0) {
            die("multi_receive", rc);
        }
        free(q[k].bytes);
    }
    free(q);
    return busy | (count > 0);
}

static void settle(void)
{
    for (int r = 0; r < 1000; r++) {
        if (!round_once()) {
            return;
        }
    }
    die("settle", RR_EBUSY);
}

static void tick_all(void)
{
    for (int i = 0; i < NODES; i++) {
        multi_tick(nodes[i].m);
    }
    settle();
}

static uint32_t leaders(uint32_t groups, uint32_t *led)
{
    uint32_t total = 0;
    for (raft_group g = 0; g < groups; g++) {
        for (int i = 0; i < NODES; i++) {
            struct raft_status st;
            raft_status(multi_group(nodes[i].m, g), &st);
            if (st.role == RAFT_LEADER) {
                led[i]++;
                total++;
            }
        }
    }
    return total;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static uint64_t median(uint64_t *v, uint32_t n)
{
    qsort(v, n, sizeof(*v), cmp_u64);
    return v[n / 2];
}

/* Bytes in use: small chunks (uordblks) plus large ones glibc maps directly (hblkhd), such
 * as the table's group array. */
static size_t heap_used(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

int main(int argc, char **argv)
{
    uint32_t groups = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 4096;
    uint32_t runs = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 51;
    bool quiesce = argc > 3 && strcmp(argv[3], "quiesce") == 0;
    if (groups == 0 || groups > RAFT_GROUPS_MAX || runs == 0 || runs > 100000) {
        fprintf(stderr, "usage: idle_groups [groups <= %u] [runs]\n", RAFT_GROUPS_MAX);
        return 2;
    }
    struct raft_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.member_count = NODES;
    for (uint32_t i = 0; i < NODES; i++) {
        cfg.members[i].id = i + 1;
        cfg.members[i].role = RAFT_VOTER;
    }
    size_t heap_create[NODES];
    for (uint32_t i = 0; i < NODES; i++) {
        struct multi_options o;
        memset(&o, 0, sizeof(o));
        raft_options_default(&o.group);
        o.group.quiesce = quiesce;
        o.id = i + 1;
        o.worker_count = 1;
        o.group_count = groups;
        o.seed = 2026;
        nodes[i].id = i + 1;
        size_t before = heap_used();
        int rc = multi_create(&nodes[i].m, &o, &cfg, NULL, NULL);
        if (rc != 0) {
            die("multi_create", rc);
        }
        heap_create[i] = heap_used() - before;
    }
    size_t heap_before_elect = heap_used();
    uint32_t led[NODES] = {0};
    uint32_t ticks = 0;
    for (; ticks < 500; ticks++) {
        tick_all();
        memset(led, 0, sizeof(led));
        if (ticks % 10 == 9 && leaders(groups, led) == groups) {
            break;
        }
    }
    if (led[0] + led[1] + led[2] != groups) {
        die("not every group elected a leader", RR_EUNAVAILABLE);
    }
    /* Steady state: with quiescence, long enough for every group to go quiet. */
    for (int t = 0; t < (quiesce ? 30 : 5); t++) {
        tick_all();
    }
    size_t heap_elected = heap_used();
    long elected_delta = (long)heap_elected - (long)heap_before_elect;

    uint64_t *tick_ns = calloc(runs, sizeof(uint64_t));
    uint64_t *node_ns = calloc(runs, sizeof(uint64_t));
    uint64_t *round_ns = calloc(runs, sizeof(uint64_t));
    if (tick_ns == NULL || node_ns == NULL || round_ns == NULL) {
        die("samples", RR_ENOMEM);
    }
    uint64_t batches0 = nodes[0].batches, bytes0 = nodes[0].bytes;
    for (uint32_t r = 0; r < runs; r++) {
        uint64_t t0 = now_ns();
        multi_tick(nodes[0].m);
        uint64_t tt = now_ns();
        node_drain(&nodes[0]);
        uint64_t t1 = now_ns();
        tick_ns[r] = tt - t0;
        node_ns[r] = t1 - t0;
        for (int i = 1; i < NODES; i++) {
            multi_tick(nodes[i].m);
            node_drain(&nodes[i]);
        }
        settle();
        round_ns[r] = now_ns() - t1 + node_ns[r];
    }
    uint64_t batches = nodes[0].batches - batches0, bytes = nodes[0].bytes - bytes0;
    uint32_t per_node = multi_group_count(nodes[0].m);

    printf("idle_groups: %u groups x %d nodes, leaders per node %u/%u/%u, elected after %u "
           "ticks, quiescence %s\n",
           groups, NODES, led[0], led[1], led[2], ticks + 1, quiesce ? "on" : "off");
    printf("awake groups           %u/%u/%u of %u per node\n", multi_awake_count(nodes[0].m),
           multi_awake_count(nodes[1].m), multi_awake_count(nodes[2].m), per_node);
    double table = (double)heap_create[0] / per_node;
    double grown = (double)elected_delta / (double)(per_node * NODES);
    printf("raft_sizeof            %zu bytes\n", raft_sizeof());
    printf("table at create        %.1f bytes/group (group slot + multi overhead %.1f)\n", table,
           table - (double)raft_sizeof());
    printf("core heap, elected     %+.1f bytes/group (averaged over leaders and followers)\n",
           grown);
    printf("total per group        %.1f bytes\n", table + grown);
    double med_tick = (double)median(tick_ns, runs);
    double med_node = (double)median(node_ns, runs);
    double med_round = (double)median(round_ns, runs);
    printf("node multi_tick        median %.0f ns (%.1f ns/group)\n", med_tick,
           med_tick / per_node);
    printf("node tick+drain        median %.0f ns (%.1f ns/group), %u runs\n", med_node,
           med_node / per_node, runs);
    printf("cluster round          median %.0f ns (%.1f ns/group/node)\n", med_round,
           med_round / (per_node * NODES));
    printf("node 1 sent            %.2f batches/tick, %.0f bytes/tick\n", (double)batches / runs,
           (double)bytes / runs);
    for (int i = 0; i < NODES; i++) {
        multi_destroy(nodes[i].m);
    }
    free(tick_ns);
    free(node_ns);
    free(round_ns);
    return 0;
}
