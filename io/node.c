/* The process: identity of the data directory, the workers and their hand-off queues,
 * start-up and a clean shutdown on SIGINT/SIGTERM. */
#include "io/node.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/base/assert.h"
#include "io/log.h"
#include "io/notify.h"
#include "io/resolver.h"
#include "io/ringraftd.h"

static pthread_mutex_t start_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t start_cv = PTHREAD_COND_INITIALIZER;
static uint32_t started;
static int start_status;

void node_fail(struct node *n, const char *why)
{
    if (!atomic_exchange(&n->failed, true)) {
        LOG_E("stopping the node: %s", why);
        kernel_stop_process(); /* the main thread's sigwait takes it */
    }
}

void node_worker_started(struct worker *w, int status);
void node_worker_started(struct worker *w, int status)
{
    (void)w;
    pthread_mutex_lock(&start_mu);
    started++;
    if (status != 0 && start_status == 0) {
        start_status = status;
    }
    pthread_cond_broadcast(&start_cv);
    pthread_mutex_unlock(&start_mu);
}

static int mkdir_p(const char *path)
{
    char buf[NODE_PATH_MAX];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
                return -1;
            }
            *p = '/';
        }
    }
    return mkdir(buf, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

/* dir/IDENTITY records who this data directory belongs to; written once, fsynced, and
 * checked on every later start. */
static int check_identity(const struct node_config *c)
{
    char path[NODE_PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/IDENTITY", c->dir);
    char want[256];
    int wl = snprintf(want, sizeof(want),
                      "cluster-id 0x%016" PRIx64 "\nnode-id %u\ngroups %u\nworkers %u\n",
                      c->cluster_id, c->node_id, c->groups, c->workers);
    FILE *f = fopen(path, "r");
    if (f != NULL) {
        char have[256];
        size_t n = fread(have, 1, sizeof(have) - 1, f);
        fclose(f);
        have[n] = '\0';
        if (n != (size_t)wl || memcmp(have, want, n) != 0) {
            LOG_E("data directory %s belongs to another cluster, node or shape.\n"
                  "  it holds:  %s\n  configured: %s",
                  c->dir, have, want);
            return -1;
        }
        return 0;
    }
    if (kernel_replace_file(c->dir, "IDENTITY", want, (size_t)wl) != 0) {
        return -1;
    }
    LOG_N("initialised data directory %s for node %u of cluster 0x%016" PRIx64, c->dir, c->node_id,
          c->cluster_id);
    return 0;
}

/* dir/BOOT counts the starts of this data directory (written atomically and durably before
 * the node serves). Client ids and request ids carry it, so ids handed out after a restart
 * never meet the sessions and forwards of an earlier run. */
static int next_boot(const char *dir, uint32_t *boot)
{
    char path[NODE_PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/BOOT", dir);
    unsigned long prev = 0;
    FILE *f = fopen(path, "r");
    if (f != NULL) {
        if (fscanf(f, "%lu", &prev) != 1) {
            prev = 0;
        }
        fclose(f);
    }
    *boot = (uint32_t)(prev + 1);
    char text[32];
    int len = snprintf(text, sizeof(text), "%u\n", *boot);
    return kernel_replace_file(dir, "BOOT", text, (size_t)len);
}

/* Tells a service manager (systemd Type=notify) the node's state; io/notify.h. */
static void node_notify(const char *state)
{
    int rc = notify_send(state);
    if (rc != 0) {
        LOG_W("cannot notify the service manager ($NOTIFY_SOCKET) of %s: %s", state, strerror(-rc));
    }
}

int node_run(const struct node_config *cfg)
{
    struct node *n = calloc(1, sizeof(*n));
    RR_ASSERT(n != NULL);
    n->cfg = *cfg;
    n->start_ms = node_clock_ms();
    snprintf(n->run_id, sizeof(n->run_id), "%016" PRIx64 "%08x%016" PRIx64,
             (uint64_t)node_wall_ms(), (unsigned)getpid(), cfg->cluster_id);
    if (mkdir_p(cfg->dir) != 0) {
        LOG_E("cannot create data directory %s: %s", cfg->dir, strerror(errno));
        return 1;
    }
    char lock_path[NODE_PATH_MAX + 16];
    snprintf(lock_path, sizeof(lock_path), "%s/LOCK", cfg->dir);
    int lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd < 0 || flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
        LOG_E("data directory %s is in use by another process", cfg->dir);
        return 1;
    }
    char identity[NODE_PATH_MAX + 16];
    snprintf(identity, sizeof(identity), "%s/IDENTITY", cfg->dir);
    bool fresh = access(identity, F_OK) != 0;
    if (check_identity(cfg) != 0 || next_boot(cfg->dir, &n->boot) != 0 ||
        nodeset_open(n, fresh) != 0) {
        return 1;
    }
    /* Client id: node (16 bits) | boot (16 bits) | counter (32 bits). */
    atomic_store(&n->next_client_id,
                 ((uint64_t)cfg->node_id << 48) | ((uint64_t)(n->boot & 0xffff) << 32) | 1);
    n->pub = calloc(cfg->groups, sizeof(*n->pub));
    RR_ASSERT(n->pub != NULL);
    uint32_t W = cfg->workers;
    struct xq **q = calloc((size_t)W * W, sizeof(*q));
    RR_ASSERT(q != NULL);
    for (uint32_t i = 0; i < W * W; i++) {
        if (i / W != i % W) {
            q[i] = aligned_alloc(64, sizeof(struct xq));
            RR_ASSERT(q[i] != NULL);
            memset(q[i], 0, sizeof(struct xq));
        }
    }
    for (uint32_t i = 0; i < W; i++) {
        struct worker *w = aligned_alloc(64, (sizeof(struct worker) + 63) / 64 * 64);
        RR_ASSERT(w != NULL);
        memset(w, 0, sizeof(*w));
        w->node = n;
        w->id = i;
        w->client_lfd = w->peer_lfd = w->metrics_lfd = -1;
        w->statm_fd = i == 0 ? open("/proc/self/statm", O_RDONLY | O_CLOEXEC) : -1;
        histogram_init(&w->write_latency);
        histogram_init(&w->peer_send_frames);
        histogram_init(&w->read_latency);
        RR_ASSERT(slowlog_init(&w->slowlog, cfg->slowlog_max_len) == 0);
        w->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        w->in = calloc(W, sizeof(*w->in));
        w->out = calloc(W, sizeof(*w->out));
        w->outbox = calloc(W, sizeof(*w->outbox));
        w->req_map_mask = (1u << 16) - 1;
        w->req_map = calloc(w->req_map_mask + 1u, sizeof(*w->req_map));
        RR_ASSERT(w->wake_fd >= 0 && w->in && w->out && w->outbox && w->req_map);
        for (uint32_t j = 0; j < W; j++) {
            w->out[j] = q[i * W + j];
            w->in[j] = q[j * W + i];
        }
        /* The parser's argument arrays, shared by all of this worker's clients. */
        struct resp_limits lim;
        resp_limits_default(&lim);
        w->args.capacity = lim.args_max;
        w->args.argv = calloc(lim.args_max, sizeof(*w->args.argv));
        w->args.argl = calloc(lim.args_max, sizeof(*w->args.argl));
        w->args.scratch_bytes = lim.inline_max;
        w->args.scratch = malloc(lim.inline_max);
        RR_ASSERT(w->args.argv && w->args.argl && w->args.scratch);
        n->workers[i] = w;
    }
    /* Signals go to the main thread only (sigwait below). */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
#ifdef RR_FAULT_TESTING
    if (cfg->test_power_loss) {
        sigaddset(&set, SIGUSR1);
    }
#endif
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* Before the workers: their peer_setup may post a lookup. Its signals are blocked too. */
    uint32_t resolve_delay_ms = 0;
#ifdef RR_FAULT_TESTING
    resolve_delay_ms = cfg->test_resolve_delay_ms;
#endif
    n->resolver = resolver_start(W, resolve_delay_ms);
    if (n->resolver == NULL) {
        return 1;
    }
    for (uint32_t i = 0; i < W; i++) {
        if (pthread_create(&n->workers[i]->thread, NULL, worker_main, n->workers[i]) != 0) {
            LOG_E("cannot start worker %u", i);
            return 1;
        }
    }
    pthread_mutex_lock(&start_mu);
    while (started < W) {
        pthread_cond_wait(&start_cv, &start_mu);
    }
    int status = start_status;
    pthread_mutex_unlock(&start_mu);
    if (status == 0) {
        const struct node_address *self = config_self(cfg);
        LOG_N("ringraftd node %u ready: clients on %s:%u, peers on %s:%u+, %u workers, %u groups, "
              "%u nodes",
              cfg->node_id, cfg->bind, self->port, cfg->bind, self->peer_port, W, cfg->groups,
              nodeset_get(n)->count);
        node_notify("READY=1");
        int sig = 0;
        sigwait(&set, &sig);
        const char *name = sig == SIGINT ? "SIGINT" : "SIGTERM";
#ifdef RR_FAULT_TESTING
        if (sig == SIGUSR1) {
            name = "SIGUSR1 (test-power-loss: losing power)";
            atomic_store(&n->power_loss, true);
        }
#endif
        LOG_N("received %s; shutting down", name);
        node_notify("STOPPING=1");
    } else {
        LOG_E("start-up failed; exiting");
    }
    atomic_store(&n->stop, true);
    for (uint32_t i = 0; i < W; i++) {
        uint64_t one = 1;
        ssize_t rc = write(n->workers[i]->wake_fd, &one, sizeof(one));
        (void)rc;
    }
    for (uint32_t i = 0; i < W; i++) {
        pthread_join(n->workers[i]->thread, NULL);
    }
    resolver_stop(n->resolver);
    n->resolver = NULL;
    LOG_N("stopped");
    nodeset_close(n);
    /* The process exits: the kernel reclaims rings, sockets and memory. */
    return status == 0 && !atomic_load(&n->failed) ? 0 : 1;
}
