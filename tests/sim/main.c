/* The simulator's command line: runs one seed or a range of seeds, prints each seed's digest
 * and coverage, and on failure the command that replays it.
 *
 *   sim --seed S | --seeds N [--start S]  [--nodes 3|5|7] [--groups G] [--workers 1|2]
 *       [--ticks T] [-v] [--trace G] [--no-membership] [--quiesce 0|1] [--no-rule-checkers]
 *
 * Without --nodes, seeds rotate 3, 5 and 7 nodes (seed % 3). Membership
 * faults are on unless --no-membership, over a pool of node ids 1..P (--pool; by default N + 2,
 * capped at SIM_POOL_DEFAULT_MAX, see sim.h). Without
 * --workers, one seed in four runs two workers per node to exercise routing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/base/assert.h"
#include "tests/sim/sim.h"

#define SIM_DEFAULT_GROUPS 24u
#define SIM_DEFAULT_TICKS  800u

typedef unsigned long long ull;

static struct sim_config current; /* for the assertion handler's replay line */

static void sim_assert_handler(const char *file, int line, const char *expr)
{
    printf("ASSERT %s:%d: %s (seed=%llu)\n", file, line, expr, (ull)current.seed);
    sim_print_replay(&current);
    fflush(stdout);
    _exit(SIM_EXIT_ASSERT);
}

struct sim_args {
    uint64_t start;
    uint64_t count;
    uint32_t nodes; /* 0: by seed */
    uint32_t pool;  /* 0: default */
    uint32_t groups;
    uint32_t workers; /* 0: by seed */
    uint32_t ticks;
    int32_t trace;
    bool verbose;
    bool membership;
    bool rule_checkers;
    int32_t quiesce; /* -1: per seed */
    int32_t release; /* -1: per seed */
};

static _Noreturn void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s --seed S | --seeds N [--start S] [--nodes 3|5|7] [--pool P] [--groups G]\n"
            "          [--workers 1|2] [--ticks T] [-v] [--trace GROUP] [--no-membership]\n"
            "          [--quiesce 0|1] [--release 0|1] [--no-rule-checkers]\n",
            argv0);
    exit(SIM_EXIT_USAGE);
}

static uint64_t parse_u64(const char *argv0, const char *s)
{
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (s[0] == '\0' || *end != '\0') {
        usage(argv0);
    }
    return v;
}

static void parse_args(int argc, char **argv, struct sim_args *a)
{
    *a = (struct sim_args){.start = 1,
                           .count = 1,
                           .groups = SIM_DEFAULT_GROUPS,
                           .ticks = SIM_DEFAULT_TICKS,
                           .trace = -1,
                           .membership = true,
                           .rule_checkers = true,
                           .quiesce = -1,
                           .release = -1};
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        if (strcmp(opt, "-v") == 0) {
            a->verbose = true;
            continue;
        }
        if (strcmp(opt, "--membership") == 0 || strcmp(opt, "--no-membership") == 0) {
            a->membership = opt[2] == 'm'; /* on by default; --membership kept for old replays */
            continue;
        }
        if (strcmp(opt, "--no-rule-checkers") == 0) {
            a->rule_checkers = false;
            continue;
        }
        if (i + 1 >= argc) {
            usage(argv[0]);
        }
        uint64_t v = parse_u64(argv[0], argv[++i]);
        if (strcmp(opt, "--seed") == 0) {
            a->start = v;
            a->count = 1;
        } else if (strcmp(opt, "--seeds") == 0) {
            a->count = v;
        } else if (strcmp(opt, "--start") == 0) {
            a->start = v;
        } else if (strcmp(opt, "--nodes") == 0 && (v == 3 || v == 5 || v == 7)) {
            a->nodes = (uint32_t)v;
        } else if (strcmp(opt, "--pool") == 0 && v >= 3 && v <= SIM_NODES_MAX) {
            a->pool = (uint32_t)v;
        } else if (strcmp(opt, "--groups") == 0 && v >= 2 && v <= SIM_GROUPS_MAX) {
            a->groups = (uint32_t)v;
        } else if (strcmp(opt, "--workers") == 0 && v >= 1 && v <= SIM_WORKERS_MAX) {
            a->workers = (uint32_t)v;
        } else if (strcmp(opt, "--ticks") == 0 && v >= 1 && v <= 1000000) {
            a->ticks = (uint32_t)v;
        } else if (strcmp(opt, "--quiesce") == 0 && v <= 1) {
            a->quiesce = (int32_t)v;
        } else if (strcmp(opt, "--release") == 0 && v <= 1) {
            a->release = (int32_t)v;
        } else if (strcmp(opt, "--trace") == 0 && v < SIM_GROUPS_MAX) {
            a->trace = (int32_t)v;
        } else {
            usage(argv[0]);
        }
    }
}

static void print_counts(const char *what, const struct sim_counts *n)
{
    printf("%s steps=%llu elections=%llu churns=%llu campaigns=%llu transfers=%llu "
           "member_changes=%llu config_started=%llu config_completed=%llu config_aborted=%llu "
           "joint_changes=%llu promotions=%llu leader_removals=%llu joins=%llu crashes=%llu "
           "restarts=%llu "
           "torn=%llu "
           "truncations=%llu partitions=%llu one_way=%llu dropped=%llu duplicated=%llu "
           "snapshots_taken=%llu snapshots_installed=%llu chunks_sent=%llu "
           "chunks_corrupted=%llu snapshots_refused=%llu chunks_dropped=%llu entries_reads=%llu "
           "entries_reads_dropped=%llu proposals=%llu "
           "acks=%llu "
           "reads=%llu reads_served=%llu reads_failed=%llu outcome_failed=%llu "
           "outcome_unknown=%llu quiesce_hbs=%llu peer_downs=%llu quiesced_ticks=%llu "
           "applied=%llu disruptions=%llu config_splits=%llu config_refused=%llu\n",
           what, (ull)n->steps, (ull)n->elections, (ull)n->churns, (ull)n->campaigns,
           (ull)n->transfers, (ull)n->member_changes, (ull)n->config_started,
           (ull)n->config_completed, (ull)n->config_aborted, (ull)n->joint_changes,
           (ull)n->promotions, (ull)n->leader_removals, (ull)n->joins, (ull)n->crashes,
           (ull)n->restarts, (ull)n->torn, (ull)n->truncations, (ull)n->partitions, (ull)n->one_way,
           (ull)n->dropped, (ull)n->duplicated, (ull)n->snapshots_taken,
           (ull)n->snapshots_installed, (ull)n->chunks_sent, (ull)n->chunks_corrupted,
           (ull)n->snapshots_refused, (ull)n->chunks_dropped, (ull)n->entries_reads,
           (ull)n->entries_reads_dropped, (ull)n->proposals, (ull)n->acks, (ull)n->reads,
           (ull)n->reads_served, (ull)n->reads_failed, (ull)n->outcome_failed,
           (ull)n->outcome_unknown, (ull)n->quiesce_hbs, (ull)n->peer_downs, (ull)n->quiesced_ticks,
           (ull)n->applied, (ull)n->disruptions, (ull)n->config_splits, (ull)n->config_refused);
}

static void add_counts(struct sim_counts *t, const struct sim_counts *n)
{
    const uint64_t *src = (const uint64_t *)(const void *)n;
    uint64_t *dst = (uint64_t *)(void *)t;
    for (size_t i = 0; i < sizeof(*n) / sizeof(uint64_t); i++) {
        dst[i] += src[i];
    }
}

int main(int argc, char **argv)
{
    struct sim_args a;
    parse_args(argc, argv, &a);
    rr_assert_set_handler(sim_assert_handler);
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct timespec t0;
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct sim_counts total;
    memset(&total, 0, sizeof(total));
    uint64_t all = 0;
    for (uint64_t k = 0; k < a.count; k++) {
        uint64_t seed = a.start + k;
        uint32_t nodes = a.nodes != 0 ? a.nodes : (uint32_t)(3 + 2 * (seed % 3));
        uint32_t pool = a.pool != 0 ? a.pool : nodes + (a.membership ? 2u : 0u);
        if (a.pool == 0 && pool > SIM_POOL_DEFAULT_MAX) {
            pool = nodes > SIM_POOL_DEFAULT_MAX ? nodes : SIM_POOL_DEFAULT_MAX;
        }
        if (pool < nodes) {
            usage(argv[0]);
        }
        current = (struct sim_config){
            .seed = seed,
            .nodes = nodes,
            .groups = a.groups,
            .workers = a.workers != 0 ? a.workers : ((seed / 2) % 4 == 3 ? 2 : 1),
            .ticks = a.ticks,
            .verbose = a.verbose,
            .trace = a.trace,
            .membership = a.membership,
            .rule_checkers = a.rule_checkers,
            .quiesce = a.quiesce,
            .release = a.release,
            .pool = pool,
            .argv0 = argv[0],
        };
        struct sim_counts n;
        uint64_t digest = 0;
        (void)sim_run(&current, &n, &digest);
        char what[160];
        snprintf(what, sizeof(what), "seed %llu nodes %u groups %u workers %u: ok digest %016llx",
                 (ull)seed, current.nodes, current.groups, current.workers, (ull)digest);
        print_counts(what, &n);
        add_counts(&total, &n);
        all = all * 31 + digest;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    char what[160];
    snprintf(what, sizeof(what), "total: %llu seeds from %llu passed in %.1fs, digest %016llx",
             (ull)a.count, (ull)a.start, secs, (ull)all);
    print_counts(what, &total);
    return 0;
}
