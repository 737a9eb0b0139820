/* ringraft-bench: an open- and closed-loop RESP load generator on io_uring (docs/benchmarks.md,
 * "ringraft-bench"). The main thread reads the options, finds the nodes (CLUSTER SLOTS with
 * --cluster), starts T event loops (loop.c), prints a progress line once a second, refreshes
 * the slot map when a loop saw -MOVED, and at the end merges the loops' measurements and
 * reports them. Only the main thread makes blocking calls. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench/rbench/rbench.h"
#include "bench/rbench/report.h"
#include "bench/rbench/slots.h"
#include "bench/rbench/thread.h"
#include "bench/rbench/workload.h"
#include "core/base/assert.h"

#define MONITOR_STEP_NS 100000000u  /* main thread: slot map refresh checks */
#define REFRESH_MIN_NS  1000000000u /* at most one CLUSTER SLOTS per second */
#define CALL_TIMEOUT_MS 2000

static struct rb_run *signal_run; /* for the signal handler */

static void on_signal(int sig)
{
    (void)sig;
    if (signal_run != NULL) {
        __atomic_store_n(&signal_run->stop, true, __ATOMIC_RELAXED);
    }
}

static void assert_handler(const char *file, int line, const char *expr)
{
    fprintf(stderr, "ringraft-bench: assertion failed at %s:%d: %s\n", file, line, expr);
    abort();
}

static enum rb_format format_of(const struct rb_opts *o)
{
    return o->json ? RB_FORMAT_JSON : o->csv ? RB_FORMAT_CSV : RB_FORMAT_TABLE;
}

static double seconds_of(const struct rusage *u, bool user)
{
    const struct timeval *tv = user ? &u->ru_utime : &u->ru_stime;
    return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

static void sleep_until(uint64_t t_ns)
{
    struct timespec ts = {.tv_sec = (time_t)(t_ns / 1000000000u),
                          .tv_nsec = (long)(t_ns % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

/* ---- --merge -------------------------------------------------------------------------------- */

static int merge_main(const struct rb_opts *o)
{
    static struct histogram all;
    static struct histogram one;
    static char text[HIST_ENCODED_MAX + 2];
    histogram_init(&all);
    for (int i = 0; i < o->merge_count; i++) {
        FILE *f = fopen(o->merge_files[i], "r");
        if (f == NULL) {
            fprintf(stderr, "ringraft-bench: %s: %s\n", o->merge_files[i], strerror(errno));
            return 1;
        }
        size_t n = fread(text, 1, sizeof(text), f);
        fclose(f);
        if (n == sizeof(text) || histogram_decode(&one, text, n) != 0) {
            fprintf(stderr, "ringraft-bench: %s: not a histogram written by --hist-out\n",
                    o->merge_files[i]);
            return 1;
        }
        histogram_merge(&all, &one);
    }
    report_histogram(stdout, &all, (uint32_t)o->merge_count, format_of(o));
    return 0;
}

/* ---- set-up --------------------------------------------------------------------------------- */

static int
find_nodes(const struct rb_opts *o, struct rb_cluster *cluster, char *err, size_t err_size)
{
    if (o->nodes != NULL) {
        if (nodes_add_list(&cluster->nodes, o->nodes, err, err_size) != 0) {
            return 1;
        }
    } else if (nodes_add(&cluster->nodes, o->host, o->port, err, err_size) < 0) {
        return 1;
    }
    if (!o->cluster) {
        return 0;
    }
    uint32_t given = nodes_count(&cluster->nodes);
    for (uint32_t i = 0; i < given; i++) {
        if (cluster_refresh(cluster, i, CALL_TIMEOUT_MS, err, err_size) == 0) {
            return 0;
        }
    }
    return 1;
}

/* Sockets, output buffers and file descriptors within their bounds. */
static int check_limits(
    const struct rb_opts *o, uint32_t nodes, size_t request_max, char *err, size_t err_size)
{
    uint64_t sockets = (uint64_t)o->clients * (o->cluster ? nodes : 1u);
    uint64_t out_bytes = sockets * o->pipeline * request_max;
    if (sockets > RB_SOCKETS_MAX || out_bytes > RB_OUT_BUDGET_MAX) {
        snprintf(err, err_size,
                 "%llu sockets with %llu bytes of output buffers: more than %u sockets or "
                 "%llu bytes (fewer clients, a smaller pipeline or value)",
                 (unsigned long long)sockets, (unsigned long long)out_bytes, RB_SOCKETS_MAX,
                 (unsigned long long)RB_OUT_BUDGET_MAX);
        return 1;
    }
    struct rlimit rl;
    uint64_t want = o->cluster ? (uint64_t)o->clients * RB_NODES_MAX + 64u : sockets + 64u;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want) {
        rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    return 0;
}

static void
describe_target(const struct rb_opts *o, const struct rb_cluster *c, char *buf, size_t size)
{
    uint32_t n = nodes_count(&c->nodes);
    if (o->cluster) {
        snprintf(buf, size, "cluster of %u nodes via %s:%u (by slot)", n, c->nodes.node[0].host,
                 c->nodes.node[0].port);
    } else if (n == 1) {
        snprintf(buf, size, "%s:%u", c->nodes.node[0].host, c->nodes.node[0].port);
    } else {
        snprintf(buf, size, "%u nodes from %s:%u", n, c->nodes.node[0].host, c->nodes.node[0].port);
    }
}

/* ---- while the loops run -------------------------------------------------------------------- */

struct monitor {
    uint64_t last_print_ns;
    uint64_t last_replies;
    uint64_t last_refresh_ns;
    struct rusage last_usage;
    struct rusage measure_usage; /* at t_measure */
    bool measure_sampled;
};

static bool all_done(struct rb_thread *threads, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        if (!__atomic_load_n(&threads[i].progress.done, __ATOMIC_ACQUIRE)) {
            return false;
        }
    }
    return true;
}

static void
monitor_progress(struct monitor *m, struct rb_run *run, struct rb_thread *threads, uint64_t now)
{
    uint64_t replies = 0;
    uint64_t errors = 0;
    uint64_t inflight = 0;
    uint64_t late = 0;
    for (uint32_t i = 0; i < run->opts->threads; i++) {
        struct rb_progress *p = &threads[i].progress;
        replies += __atomic_load_n(&p->replies, __ATOMIC_RELAXED);
        errors += __atomic_load_n(&p->errors, __ATOMIC_RELAXED);
        inflight += __atomic_load_n(&p->inflight, __ATOMIC_RELAXED);
        uint64_t l = __atomic_exchange_n(&p->late_max_ns, 0, __ATOMIC_RELAXED);
        late = l > late ? l : late;
    }
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    double dt = (double)(now - m->last_print_ns) / 1e9;
    double cpu = seconds_of(&u, true) + seconds_of(&u, false) - seconds_of(&m->last_usage, true) -
                 seconds_of(&m->last_usage, false);
    const char *phase = now < run->t_measure_ns ? "warm-up"
                        : now < run->t_end_ns   ? "measure"
                                                : "drain";
    if (run->t_end_ns == UINT64_MAX && now >= run->t_measure_ns) {
        phase = "measure";
    }
    if (!run->opts->quiet) {
        report_progress(stderr, (double)(now - run->t_start_ns) / 1e9, phase,
                        (double)(replies - m->last_replies) / dt, replies, errors, inflight, late,
                        cpu / dt);
    }
    m->last_replies = replies;
    m->last_usage = u;
    m->last_print_ns = now;
}

static void monitor_refresh(struct monitor *m, struct rb_run *run, uint64_t now)
{
    struct rb_cluster *c = run->cluster;
    if (run->opts->cluster) {
        cluster_add_wanted(c);
    }
    if (!run->opts->cluster || now - m->last_refresh_ns < REFRESH_MIN_NS ||
        !__atomic_exchange_n(&c->refresh_wanted, false, __ATOMIC_RELAXED)) {
        return;
    }
    m->last_refresh_ns = now;
    char err[256];
    uint32_t n = nodes_count(&c->nodes);
    for (uint32_t i = 0; i < n; i++) {
        if (cluster_refresh(c, i, CALL_TIMEOUT_MS, err, sizeof(err)) == 0) {
            return;
        }
    }
    if (!run->opts->quiet) {
        fprintf(stderr, "ringraft-bench: slot map refresh failed: %s\n", err);
    }
}

static void monitor_run(struct monitor *m, struct rb_run *run, struct rb_thread *threads)
{
    m->last_print_ns = run->t_start_ns;
    getrusage(RUSAGE_SELF, &m->last_usage);
    while (!all_done(threads, run->opts->threads)) {
        uint64_t next = rb_clock_ns() + MONITOR_STEP_NS;
        if (!m->measure_sampled && run->t_measure_ns < next) {
            next = run->t_measure_ns;
        }
        sleep_until(next);
        uint64_t now = rb_clock_ns();
        if (!m->measure_sampled && now >= run->t_measure_ns) {
            getrusage(RUSAGE_SELF, &m->measure_usage);
            m->measure_sampled = true;
        }
        if (now - m->last_print_ns >= 1000000000u) {
            monitor_progress(m, run, threads, now);
        }
        monitor_refresh(m, run, now);
    }
}

/* ---- the run -------------------------------------------------------------------------------- */

static void run_times(struct rb_run *run, const struct rb_opts *o)
{
    run->t_start_ns = rb_clock_ns() + 1000000u;
    run->t_measure_ns = run->t_start_ns + (uint64_t)(o->warmup_s * 1e9);
    run->t_end_ns =
        o->requests > 0 ? UINT64_MAX : run->t_measure_ns + (uint64_t)(o->duration_s * 1e9);
}

static int start_threads(struct rb_run *run, struct rb_thread *threads)
{
    const struct rb_opts *o = run->opts;
    for (uint32_t i = 0; i < o->threads; i++) {
        struct rb_thread *t = &threads[i];
        t->id = i;
        t->run = run;
        t->client_count = o->clients / o->threads + (i < o->clients % o->threads ? 1u : 0u);
        if (pthread_create(&t->pthread, NULL, loop_thread_main, t) != 0) {
            fprintf(stderr, "ringraft-bench: pthread_create failed\n");
            exit(1);
        }
    }
    pthread_barrier_wait(&run->ready);
    int rc = 0;
    for (uint32_t i = 0; i < o->threads; i++) {
        if (threads[i].rc != 0) {
            fprintf(stderr, "ringraft-bench: loop %u: %s\n", i, threads[i].err);
            __atomic_store_n(&run->stop, true, __ATOMIC_RELAXED);
            rc = 1;
        }
    }
    run_times(run, o);
    pthread_barrier_wait(&run->go);
    return rc;
}

static int report_run(const struct rb_opts *o,
                      struct rb_run *run,
                      struct rb_thread *threads,
                      const struct monitor *m,
                      uint64_t end_ns)
{
    static struct rb_stats all;
    static struct histogram all_ops;
    stats_init(&all);
    for (uint32_t i = 0; i < o->threads; i++) {
        stats_merge(&all, &threads[i].stats);
    }
    histogram_init(&all_ops);
    for (int op = 0; op < RB_OP_COUNT; op++) {
        histogram_merge(&all_ops, &all.latency[op]);
    }
    struct rusage end_usage;
    getrusage(RUSAGE_SELF, &end_usage);
    struct rusage start_usage = m->measure_sampled ? m->measure_usage : m->last_usage;
    uint64_t last = all.last_reply_ns > run->t_measure_ns ? all.last_reply_ns : end_ns;
    char target[160];
    describe_target(o, run->cluster, target, sizeof(target));
    struct rb_result r = {
        .opts = o,
        .target = target,
        .stats = &all,
        .all = &all_ops,
        .elapsed_s = last > run->t_measure_ns ? (double)(last - run->t_measure_ns) / 1e9 : 0.0,
        .cpu_user_s = seconds_of(&end_usage, true) - seconds_of(&start_usage, true),
        .cpu_sys_s = seconds_of(&end_usage, false) - seconds_of(&start_usage, false),
        .cpu_wall_s = end_ns > run->t_measure_ns ? (double)(end_ns - run->t_measure_ns) / 1e9 : 0.0,
        .nodes = nodes_count(&run->cluster->nodes),
        .refreshes = run->cluster->refreshes,
    };
    report_result(stdout, &r, format_of(o));
    if (o->hist_out != NULL) {
        static char text[HIST_ENCODED_MAX + 1];
        histogram_encode(&all_ops, text, sizeof(text));
        FILE *f = fopen(o->hist_out, "w");
        if (f == NULL || fprintf(f, "%s\n", text) < 0 || fclose(f) != 0) {
            fprintf(stderr, "ringraft-bench: cannot write %s\n", o->hist_out);
            return 1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    rr_assert_set_handler(assert_handler);
    static struct rb_opts o;
    int rc = opts_parse(&o, argc, argv);
    if (rc != 0) {
        return rc == 2 ? 0 : 1;
    }
    if (o.merge_files != NULL) {
        return merge_main(&o);
    }
    char err[512];
    static struct rb_workload wl;
    static struct rb_cluster cluster;
    cluster_init(&cluster);
    if (o.password != NULL) {
        cluster.auth_len = (uint32_t)workload_encode_auth(o.password, (uint8_t *)cluster.auth,
                                                          sizeof(cluster.auth));
    }
    if (workload_init(&wl, o.mix, o.dist, o.keys, o.streams, o.value_size, o.count, err,
                      sizeof(err)) != 0 ||
        find_nodes(&o, &cluster, err, sizeof(err)) != 0 ||
        check_limits(&o, nodes_count(&cluster.nodes), workload_request_max(&wl), err,
                     sizeof(err)) != 0) {
        fprintf(stderr, "ringraft-bench: %s\n", err);
        return 1;
    }
    if (o.threads > o.clients) {
        o.threads = o.clients;
    }
    static struct rb_run run;
    run.opts = &o;
    run.wl = &wl;
    run.cluster = &cluster;
    run.home_nodes = nodes_count(&cluster.nodes);
    run.timeout_ns = (uint64_t)(o.timeout_s * 1e9);
    run.interval_ns = o.rate > 0.0 ? (double)o.clients * 1e9 / o.rate : 0.0;
    run.request_max = workload_request_max(&wl);
    pthread_barrier_init(&run.ready, NULL, o.threads + 1u);
    pthread_barrier_init(&run.go, NULL, o.threads + 1u);
    signal_run = &run;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    struct rb_thread *threads = calloc(o.threads, sizeof(*threads));
    RR_ASSERT(threads != NULL);
    rc = start_threads(&run, threads);
    struct monitor m;
    memset(&m, 0, sizeof(m));
    monitor_run(&m, &run, threads);
    uint64_t end_ns = rb_clock_ns();
    for (uint32_t i = 0; i < o.threads; i++) {
        pthread_join(threads[i].pthread, NULL);
    }
    if (rc == 0) {
        rc = report_run(&o, &run, threads, &m, end_ns);
    }
    free(threads);
    workload_free(&wl);
    cluster_destroy(&cluster);
    return rc;
}
