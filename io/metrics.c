/* Latency histograms and the Prometheus endpoint (metrics.h). Names follow Prometheus's
 * conventions: a ringraft_ prefix, base units in the name (_seconds, _bytes), _total on
 * counters, histograms as cumulative _bucket{le=...} series with _sum and _count. */
#include "io/metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/base/errors.h"
#include "io/log.h"

#define METRICS_REQUEST_MAX (8u * 1024) /* bytes of an HTTP request head */
#define METRICS_OUTPUT_MAX  (4u << 20)

const uint64_t metric_bounds_ns[PUB_HIST_BOUNDS] = {
    100000,   250000,    500000,    1000000,   2500000,    5000000,    10000000,   25000000,
    50000000, 100000000, 250000000, 500000000, 1000000000, 2500000000, 5000000000, 10000000000,
};

const uint64_t metric_size_bounds[PUB_SIZE_BOUNDS] = {
    1,  2,   3,   4,   6,   8,   12,  16,   24,   32,   48,   64,
    96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096,
};

/* le[i] = values of h at or below bounds[i], in one pass over h's buckets: a bucket counts
 * below a bound when its highest value does. */
static void
cumulate(const struct histogram *h, const uint64_t *bounds, uint32_t nbounds, uint64_t *le)
{
    for (uint32_t i = 0; i < nbounds; i++) {
        le[i] = 0;
    }
    if (h->count == 0) {
        return;
    }
    uint32_t last = histogram_bucket_of(h->max);
    for (uint32_t b = histogram_bucket_of(h->min); b <= last; b++) {
        uint64_t n = h->buckets[b];
        if (n == 0) {
            continue;
        }
        uint64_t high = histogram_bucket_high(b);
        for (uint32_t i = 0; i < nbounds; i++) {
            if (high <= bounds[i]) {
                le[i] += n;
            }
        }
    }
}

void metrics_publish_sizes(struct pub_sizes *p, const struct histogram *h)
{
    if (atomic_load_explicit(&p->count, memory_order_relaxed) == h->count) {
        return; /* histograms only grow: nothing recorded since the last publication */
    }
    /* Values below 128 have a bucket each, so the small bounds are exact; above, a bucket
     * is 1% wide and counts below a bound when its highest value does. */
    uint64_t le[PUB_SIZE_BOUNDS];
    cumulate(h, metric_size_bounds, PUB_SIZE_BOUNDS, le);
    for (uint32_t i = 0; i < PUB_SIZE_BOUNDS; i++) {
        atomic_store_explicit(&p->le[i], le[i], memory_order_relaxed);
    }
    atomic_store_explicit(&p->count, h->count, memory_order_relaxed);
    atomic_store_explicit(&p->sum, h->sum, memory_order_relaxed);
    atomic_store_explicit(&p->p50, histogram_quantile(h, 0.5), memory_order_relaxed);
    atomic_store_explicit(&p->p99, histogram_quantile(h, 0.99), memory_order_relaxed);
    atomic_store_explicit(&p->max, h->max, memory_order_relaxed);
}

void metrics_sum_sizes(const struct node *n,
                       size_t offset,
                       uint64_t le[PUB_SIZE_BOUNDS],
                       uint64_t *count,
                       uint64_t *sum)
{
    for (uint32_t i = 0; i < PUB_SIZE_BOUNDS; i++) {
        le[i] = 0;
    }
    *count = *sum = 0;
    for (uint32_t w = 0; w < n->cfg.workers; w++) {
        const struct pub_sizes *p =
            (const struct pub_sizes *)(const void *)((const char *)&n->workers[w]->pub + offset);
        for (uint32_t i = 0; i < PUB_SIZE_BOUNDS; i++) {
            le[i] += atomic_load_explicit(&p->le[i], memory_order_relaxed);
        }
        *count += atomic_load_explicit(&p->count, memory_order_relaxed);
        *sum += atomic_load_explicit(&p->sum, memory_order_relaxed);
    }
}

void metrics_publish_hist(struct pub_hist *p, const struct histogram *h)
{
    if (atomic_load_explicit(&p->count, memory_order_relaxed) == h->count) {
        return; /* as in metrics_publish_sizes */
    }
    /* One pass over the buckets: a bucket counts below a bound when its highest value is
     * (buckets are 1% wide, so a bound falls inside one by at most that much). */
    uint64_t le[PUB_HIST_BOUNDS];
    cumulate(h, metric_bounds_ns, PUB_HIST_BOUNDS, le);
    for (uint32_t i = 0; i < PUB_HIST_BOUNDS; i++) {
        atomic_store_explicit(&p->le[i], le[i], memory_order_relaxed);
    }
    atomic_store_explicit(&p->count, h->count, memory_order_relaxed);
    atomic_store_explicit(&p->sum_ns, h->sum, memory_order_relaxed);
    atomic_store_explicit(&p->p50_ns, histogram_quantile(h, 0.5), memory_order_relaxed);
    atomic_store_explicit(&p->p99_ns, histogram_quantile(h, 0.99), memory_order_relaxed);
    atomic_store_explicit(&p->p999_ns, histogram_quantile(h, 0.999), memory_order_relaxed);
}

/* ---- rendering ------------------------------------------------------------------------ */

__attribute__((format(printf, 2, 3))) static void put(struct reply *r, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n > 0) {
        reply_raw(r, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
    }
}

static void head(struct reply *r, const char *name, const char *type, const char *help)
{
    put(r, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void counter(struct reply *r, const char *name, const char *help, uint64_t v)
{
    head(r, name, "counter", help);
    put(r, "%s %" PRIu64 "\n", name, v);
}

static void gauge(struct reply *r, const char *name, const char *help, double v)
{
    head(r, name, "gauge", help);
    put(r, "%s %.17g\n", name, v);
}

/* The sum over the node's workers of one published counter (at `offset` in worker_pub). */
static uint64_t sum_workers(const struct node *n, size_t offset)
{
    uint64_t s = 0;
    for (uint32_t i = 0; i < n->cfg.workers; i++) {
        const _Atomic uint64_t *v =
            (const _Atomic uint64_t *)(const void *)((const char *)&n->workers[i]->pub + offset);
        s += atomic_load_explicit(v, memory_order_relaxed);
    }
    return s;
}
#define SUM_WORKERS(field) sum_workers(n, offsetof(struct worker_pub, field))

/* One histogram family with a label per series; the series are the node's workers merged
 * (label value `label_value`). */
static void histogram_series(
    struct reply *r, const char *name, const char *labels, struct node *n, size_t offset)
{
    uint64_t le[PUB_HIST_BOUNDS] = {0}, count = 0, sum = 0;
    for (uint32_t w = 0; w < n->cfg.workers; w++) {
        const struct pub_hist *p =
            (const struct pub_hist *)(const void *)((const char *)&n->workers[w]->pub + offset);
        for (uint32_t i = 0; i < PUB_HIST_BOUNDS; i++) {
            le[i] += atomic_load_explicit(&p->le[i], memory_order_relaxed);
        }
        count += atomic_load_explicit(&p->count, memory_order_relaxed);
        sum += atomic_load_explicit(&p->sum_ns, memory_order_relaxed);
    }
    const char *sep = labels[0] != '\0' ? "," : "";
    for (uint32_t i = 0; i < PUB_HIST_BOUNDS; i++) {
        put(r, "%s_bucket{%s%sle=\"%g\"} %" PRIu64 "\n", name, labels, sep,
            (double)metric_bounds_ns[i] / 1e9, le[i]);
    }
    put(r, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name, labels, sep, count);
    if (labels[0] != '\0') {
        put(r, "%s_sum{%s} %.9f\n%s_count{%s} %" PRIu64 "\n", name, labels, (double)sum / 1e9, name,
            labels, count);
    } else {
        put(r, "%s_sum %.9f\n%s_count %" PRIu64 "\n", name, (double)sum / 1e9, name, count);
    }
}

#define HIST_OFFSET(field) offsetof(struct worker_pub, field)

/* A size distribution (no unit): the node's workers merged. */
static void
sizes_series(struct reply *r, const char *name, const char *help, struct node *n, size_t offset)
{
    uint64_t le[PUB_SIZE_BOUNDS], count, sum;
    metrics_sum_sizes(n, offset, le, &count, &sum);
    head(r, name, "histogram", help);
    for (uint32_t i = 0; i < PUB_SIZE_BOUNDS; i++) {
        put(r, "%s_bucket{le=\"%" PRIu64 "\"} %" PRIu64 "\n", name, metric_size_bounds[i], le[i]);
    }
    put(r, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n%s_sum %" PRIu64 "\n%s_count %" PRIu64 "\n", name,
        count, name, sum, name, count);
}

void metrics_render(struct node *n, struct reply *r)
{
    const struct node_config *c = &n->cfg;
    head(r, "ringraft_info", "gauge", "Constant 1, labelled with the node's identity.");
    put(r, "ringraft_info{version=\"%s\",node_id=\"%u\",cluster_id=\"0x%016" PRIx64 "\"} 1\n",
        RINGRAFT_VERSION, c->node_id, c->cluster_id);
    gauge(r, "ringraft_uptime_seconds", "Seconds since the node started.",
          (double)(node_clock_ms() - n->start_ms) / 1000.0);
    gauge(r, "ringraft_workers", "Worker threads (W).", c->workers);
    gauge(r, "ringraft_groups", "Raft groups (G).", c->groups);

    uint32_t known = 0;
    for (raft_group g = 0; g < c->groups; g++) {
        known += atomic_load_explicit(&n->pub[g].leader, memory_order_relaxed) != 0;
    }
    gauge(r, "ringraft_groups_with_leader", "Groups whose leader this node knows.", known);
    head(r, "ringraft_groups_led", "gauge", "Groups led by each node, as this node sees it.");
    const struct node_set *ns = nodeset_get(n);
    for (uint32_t i = 0; i < ns->count; i++) {
        uint32_t led = 0;
        for (raft_group g = 0; g < c->groups; g++) {
            led += atomic_load_explicit(&n->pub[g].leader, memory_order_relaxed) == ns->nodes[i].id;
        }
        put(r, "ringraft_groups_led{node=\"%u\"} %u\n", ns->nodes[i].id, led);
    }

    gauge(r, "ringraft_connected_clients", "Client connections open.", atomic_load(&n->clients));
    gauge(r, "ringraft_maxclients", "Limit on client connections.", c->maxclients);
    gauge(r, "ringraft_blocked_clients", "XREAD BLOCK requests waiting.",
          (double)SUM_WORKERS(blocked));
    counter(r, "ringraft_clients_accepted_total", "Client connections accepted.",
            SUM_WORKERS(clients_accepted));
    counter(r, "ringraft_rejected_connections_total", "Clients refused at maxclients.",
            atomic_load(&n->rejected_conns));
    counter(r, "ringraft_protected_mode_refusals_total",
            "Non-loopback clients refused by protected mode.", atomic_load(&n->protected_conns));
    counter(r, "ringraft_auth_failures_total", "AUTH or HELLO AUTH with wrong credentials.",
            atomic_load(&n->auth_failures));
    counter(r, "ringraft_protocol_errors_total", "Clients closed for malformed requests.",
            SUM_WORKERS(client_errors));

    counter(r, "ringraft_commands_processed_total", "Client commands received.",
            SUM_WORKERS(commands));
    counter(r, "ringraft_proposals_total", "Entries proposed by this node's leaders.",
            SUM_WORKERS(proposals));
    counter(r, "ringraft_applied_entries_total", "Entries applied to the state machines.",
            SUM_WORKERS(applied));
    counter(r, "ringraft_read_index_requests_total", "Linearizable reads started.",
            SUM_WORKERS(reads));
    counter(r, "ringraft_forwarded_out_total", "Requests forwarded to a leader elsewhere.",
            SUM_WORKERS(forwards_out));
    counter(r, "ringraft_forwarded_in_total", "Requests received from other nodes.",
            SUM_WORKERS(forwards_in));
    counter(r, "ringraft_forwarded_again_total",
            "Forwarded requests sent on to a new leader after a leader change.",
            SUM_WORKERS(reforwards));
    counter(r, "ringraft_redirects_total", "MOVED and TRYAGAIN answers.", SUM_WORKERS(redirects));
    counter(r, "ringraft_request_timeouts_total", "Requests failed at request-timeout-ms.",
            SUM_WORKERS(timeouts));
    counter(r, "ringraft_busy_rejects_total", "Requests refused at worker-inflight-limit.",
            SUM_WORKERS(busy_rejects));
    counter(r, "ringraft_oom_rejects_total", "Writes refused past maxmemory.",
            atomic_load(&n->oom_rejects));

    gauge(r, "ringraft_resident_memory_bytes", "Resident set size (sampled once a second).",
          (double)atomic_load(&n->used_memory));
    gauge(r, "ringraft_maxmemory_bytes", "maxmemory (0: no limit).", (double)c->maxmemory);

    counter(r, "ringraft_wal_flushes_total", "WAL flushes (write + sync).",
            SUM_WORKERS(wal_flushes));
    counter(r, "ringraft_wal_records_total", "Records written to the WAL.",
            SUM_WORKERS(wal_records));
    counter(r, "ringraft_wal_bytes_total", "Bytes written to the WAL.", SUM_WORKERS(wal_bytes));
    counter(r, "ringraft_peer_frames_sent_total", "Frames sent to peers.",
            SUM_WORKERS(frames_sent));
    counter(r, "ringraft_peer_sent_bytes_total", "Frame bytes sent to peers.",
            SUM_WORKERS(frame_bytes_sent));
    counter(r, "ringraft_peer_sends_total", "Send operations on peer connections.",
            SUM_WORKERS(peer_sends));
    counter(r, "ringraft_peer_frames_dropped_total", "Frames dropped at peer-output-limit.",
            SUM_WORKERS(frames_dropped));
    counter(r, "ringraft_peer_frames_rejected_total", "Peer frames that failed a check.",
            SUM_WORKERS(frames_bad));
    counter(r, "ringraft_peer_handshakes_refused_total", "Peer handshakes refused.",
            SUM_WORKERS(handshakes_refused));

    counter(r, "ringraft_snapshots_taken_total", "Snapshots of a group written by this node.",
            SUM_WORKERS(snapshots_taken));
    counter(r, "ringraft_snapshots_installed_total",
            "Snapshots received from a leader and installed.", SUM_WORKERS(snapshots_installed));
    counter(r, "ringraft_snapshot_failures_total", "Local snapshots that failed (retried later).",
            SUM_WORKERS(snapshot_failures));
    counter(r, "ringraft_snapshot_written_bytes_total", "Bytes of snapshot files written.",
            SUM_WORKERS(snapshot_bytes));
    counter(r, "ringraft_snapshot_chunks_sent_total", "InstallSnapshot chunks sent to followers.",
            SUM_WORKERS(snapshot_chunks_sent));
    counter(r, "ringraft_snapshot_chunks_dropped_total",
            "Snapshot chunks this node as leader did not send (no durable file of that "
            "snapshot yet, or too many reads queued); the follower asks again.",
            SUM_WORKERS(snapshot_chunks_dropped));
    counter(r, "ringraft_log_reads_total",
            "Appends to a lagging follower whose entries (released from memory) were read back "
            "from the WAL and sent.",
            SUM_WORKERS(log_reads));
    counter(r, "ringraft_log_read_entries_total", "Entries those appends carried.",
            SUM_WORKERS(log_read_entries));
    counter(r, "ringraft_log_reads_dropped_total",
            "Appends of released entries not sent (a read in flight, or the WAL busy); the "
            "follower is sent them again.",
            SUM_WORKERS(log_reads_dropped));
    counter(r, "ringraft_snapshots_refused_total",
            "Snapshots received from a leader and refused (damaged, or not written).",
            SUM_WORKERS(snapshots_refused));
    counter(r, "ringraft_snapshots_dropped_total",
            "Snapshots being received that were left behind (the commit index reached them or "
            "the term changed) and dropped with their temporary files.",
            SUM_WORKERS(snapshots_dropped));
    counter(r, "ringraft_snapshot_chunks_received_total",
            "InstallSnapshot chunks received from a leader, written and synced.",
            SUM_WORKERS(snapshot_chunks_received));
    counter(r, "ringraft_snapshot_received_bytes_total",
            "Bytes of InstallSnapshot chunks received, written and synced.",
            SUM_WORKERS(snapshot_bytes_received));
    head(r, "ringraft_snapshot_install_barrier_seconds", "gauge",
         "How long each worker's last install of a received snapshot held its WAL operations "
         "(every group's) behind the snapshot file's fsync, rename and directory fsync.");
    for (uint32_t w = 0; w < c->workers; w++) {
        put(r, "ringraft_snapshot_install_barrier_seconds{worker=\"%u\"} %.6f\n", w,
            (double)atomic_load(&n->workers[w]->pub.install_last_us) / 1e6);
    }
    head(r, "ringraft_snapshot_last_duration_seconds", "gauge",
         "Duration of each worker's last local snapshot.");
    for (uint32_t w = 0; w < c->workers; w++) {
        put(r, "ringraft_snapshot_last_duration_seconds{worker=\"%u\"} %.3f\n", w,
            (double)atomic_load(&n->workers[w]->pub.snapshot_last_ms) / 1000.0);
    }
    gauge(r, "ringraft_wal_disk_bytes", "Bytes of the WAL's segment files on disk.",
          (double)SUM_WORKERS(wal_disk_bytes));
    gauge(r, "ringraft_wal_segments", "WAL segment files.", (double)SUM_WORKERS(wal_segments));

    head(r, "ringraft_request_duration_seconds", "histogram",
         "Client requests from parse to reply (writes: until committed on a majority and "
         "applied).");
    histogram_series(r, "ringraft_request_duration_seconds", "class=\"write\"", n,
                     HIST_OFFSET(write_latency));
    histogram_series(r, "ringraft_request_duration_seconds", "class=\"read\"", n,
                     HIST_OFFSET(read_latency));
    head(r, "ringraft_wal_flush_duration_seconds", "histogram",
         "WAL flushes from submission to the sync's completion.");
    histogram_series(r, "ringraft_wal_flush_duration_seconds", "", n, HIST_OFFSET(wal_flush));
    head(r, "ringraft_wal_queue_delay_seconds", "histogram",
         "Wait of a WAL unit from its append to the start of its flush.");
    histogram_series(r, "ringraft_wal_queue_delay_seconds", "", n, HIST_OFFSET(wal_queue));
    sizes_series(r, "ringraft_wal_flush_records", "Records per WAL flush (the disk batch size).", n,
                 HIST_OFFSET(wal_batch_records));
    sizes_series(r, "ringraft_peer_send_frames",
                 "Frames per send batch on peer connections (the network batch size).", n,
                 HIST_OFFSET(peer_send_frames));
}

/* ---- the HTTP endpoint -------------------------------------------------------------- */

int metrics_setup(struct worker *w)
{
    w->metrics_lfd = -1;
    const struct node_config *c = &w->node->cfg;
    if (w->id != 0 || c->metrics_port == 0) {
        return 0;
    }
    w->metrics_lfd = node_listen(c->bind, c->metrics_port, false);
    return w->metrics_lfd < 0 ? RR_EIO : 0;
}

void metrics_accepted(struct worker *w, int fd)
{
    struct conn *c = conn_new(w, fd, CONN_METRICS, METRICS_REQUEST_MAX, METRICS_OUTPUT_MAX);
    if (c == NULL) {
        conn_close_fd(w, fd);
        return;
    }
    c->owner = NULL;
    conn_start_recv(c);
}

static void
respond(struct conn *c, const char *status, const char *type, const void *body, size_t len)
{
    char h[256];
    int n = snprintf(h, sizeof(h),
                     "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status, type, len);
    if (conn_write(c, h, (size_t)n) && (len == 0 || conn_write(c, body, len))) {
        conn_close_after_flush(c);
    } else {
        conn_close(c);
    }
}

static void respond_text(struct conn *c, const char *status, const char *text)
{
    respond(c, status, "text/plain; charset=utf-8", text, strlen(text));
}

void metrics_on_recv(struct conn *c)
{
    if (c->close_after_flush) {
        return; /* answered: whatever else arrives is ignored */
    }
    const char *in = (const char *)c->in;
    size_t len = c->in_len;
    const char *end = memmem(in, len, "\r\n\r\n", 4);
    if (end == NULL) {
        if (len >= METRICS_REQUEST_MAX - 1) {
            respond_text(c, "431 Request Header Fields Too Large", "request too large\n");
        }
        return; /* wait for the rest of the head */
    }
    const char *eol = memchr(in, '\r', (size_t)(end - in) + 1);
    size_t line = (size_t)(eol - in);
    char req[256];
    if (line >= sizeof(req)) {
        respond_text(c, "414 URI Too Long", "request line too long\n");
        return;
    }
    memcpy(req, in, line);
    req[line] = '\0';
    char method[16], path[200], version[16];
    if (sscanf(req, "%15s %199s %15s", method, path, version) != 3 ||
        strncmp(version, "HTTP/1.", 7) != 0) {
        respond_text(c, "400 Bad Request", "bad request\n");
        return;
    }
    if (strcmp(method, "GET") != 0) {
        respond_text(c, "405 Method Not Allowed", "only GET\n");
        return;
    }
    if (strcmp(path, "/metrics") != 0) {
        respond_text(c, "404 Not Found", "try /metrics\n");
        return;
    }
    struct reply r;
    reply_init(&r, METRICS_OUTPUT_MAX - 1024);
    metrics_render(c->w->node, &r);
    if (r.overflow) {
        respond_text(c, "500 Internal Server Error", "metrics too large\n");
    } else {
        respond(c, "200 OK", "text/plain; version=0.0.4; charset=utf-8", r.buf, r.len);
    }
    reply_free(&r);
}
