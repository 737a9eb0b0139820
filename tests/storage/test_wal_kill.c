/* Crash test, process kill: a child process appends and reports each acknowledged unit to
 * the parent over a pipe; the parent kills it with SIGKILL at a random moment, recovers the
 * WAL itself and checks that every acknowledged entry and hard state survived, then starts
 * the next child on the same directory. RR_KILLS sets the number of kills (default 50);
 * RR_SOAK_SECONDS instead runs kills until that many seconds have passed (make soak). */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "tests/storage/wal_helpers.h"

#define GROUPS 8

struct ack_msg {
    uint32_t group;
    uint32_t pad;
    uint64_t last;
    uint64_t commit;
};

static int ack_fd = -1;

static void child_on_ack(struct th_work *w, const struct th_unit *u)
{
    (void)w;
    struct ack_msg m = {.group = u->group, .last = u->last, .commit = u->commit};
    if (write(ack_fd, &m, sizeof(m)) != (ssize_t)sizeof(m)) {
        _exit(3);
    }
}

static struct wal_config kill_config(const char *dir, uint32_t life)
{
    struct wal_config cfg = th_config(dir, GROUPS);
    cfg.segment_bytes = 256u << 10;
    const char *strategies[] = {"adaptive", "none", "fixed:8", "linger:200"};
    wal_strategy_parse(strategies[life % 4], &cfg.strategy);
    return cfg;
}

static _Noreturn void child(const char *dir, uint32_t life, int fd)
{
    ack_fd = fd;
    struct io_uring ring;
    if (io_uring_queue_init(128, &ring, 0) != 0) {
        _exit(4);
    }
    struct wal_config cfg = kill_config(dir, life);
    struct wal *wal = NULL;
    char err[512];
    if (wal_open(&cfg, &ring, &wal, err, sizeof(err)) != 0) {
        fprintf(stderr, "child: %s\n", err);
        _exit(5);
    }
    static struct th_work w;
    th_work_init(&w, wal, GROUPS, life + 1u);
    w.on_ack = child_on_ack;
    for (;;) { /* until the parent kills us */
        for (int k = 0; k < 8 && th_work_unit(&w) == 0; k++) {
        }
        if (th_step(&ring, wal) != 0 || w.failed != 0) {
            _exit(6);
        }
    }
}

static raft_index acked_last[GROUPS];
static raft_index acked_commit[GROUPS];

static void drain_acks(int fd)
{
    struct ack_msg m;
    ssize_t n;
    while ((n = read(fd, &m, sizeof(m))) == (ssize_t)sizeof(m)) {
        assert_true(m.group < GROUPS);
        if (m.last > acked_last[m.group]) {
            acked_last[m.group] = m.last;
        }
        if (m.commit > acked_commit[m.group]) {
            acked_commit[m.group] = m.commit;
        }
    }
    assert_int_equal(n, 0); /* EOF: the child is gone */
}

static void verify(const char *dir, uint32_t life)
{
    struct io_uring ring;
    assert_int_equal(io_uring_queue_init(8, &ring, 0), 0);
    struct wal_config cfg = kill_config(dir, life);
    struct wal *wal = NULL;
    char err[512];
    if (wal_open(&cfg, &ring, &wal, err, sizeof(err)) != 0) {
        fail_msg("kill %u: recovery failed: %s", life, err);
    }
    char msg[256];
    const char *bad = th_verify(wal, GROUPS, acked_last, acked_commit, msg, sizeof(msg));
    if (bad != NULL) {
        fail_msg("kill %u: acknowledged data lost: %s", life, bad);
    }
    th_quiesce(&ring, wal);
    wal_close(wal);
    io_uring_queue_exit(&ring);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_kill(void **state)
{
    (void)state;
    const char *k = getenv("RR_KILLS");
    const char *soak = getenv("RR_SOAK_SECONDS");
    uint32_t kills = k != NULL ? (uint32_t)strtoul(k, NULL, 10) : 50;
    double budget = soak != NULL ? strtod(soak, NULL) : 0;
    char dir[64];
    th_mkdtemp(dir);
    struct rr_prng prng;
    rr_prng_seed(&prng, 7);
    double start = now_s();
    uint64_t total_acks = 0;
    uint32_t life = 0;
    for (; budget > 0 ? now_s() - start < budget : life < kills; life++) {
        int p[2];
        assert_int_equal(pipe(p), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            child(dir, life, p[1]);
        }
        close(p[1]);
        /* Every fifth life, and every life until something was acknowledged, waits for the
         * child's first acknowledgement before the random delay: on a busy disk the first
         * one can take longer than the whole delay, and a run that never kills a child
         * after an acknowledgement checks nothing. */
        uint64_t acked_so_far = 0;
        for (raft_group g = 0; g < GROUPS; g++) {
            acked_so_far += acked_last[g];
        }
        if (life % 5 == 0 || acked_so_far == 0) {
            struct pollfd pfd = {.fd = p[0], .events = POLLIN};
            (void)poll(&pfd, 1, 10000);
        }
        usleep((useconds_t)rr_prng_range(&prng, 2000, 40000));
        assert_int_equal(kill(pid, SIGKILL), 0);
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
            fail_msg("kill %u: child ended on its own (status %d)", life, status);
        }
        drain_acks(p[0]);
        close(p[0]);
        verify(dir, life);
    }
    for (raft_group g = 0; g < GROUPS; g++) {
        total_acks += acked_last[g];
    }
    fprintf(stderr, "kill test: %u kills, %llu entries acknowledged and verified\n", life,
            (unsigned long long)total_acks);
    assert_true(total_acks > 0);
    th_rmrf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
