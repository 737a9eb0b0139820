#include "io/config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "io/log.h"
#include "io/slowlog.h"

void config_default(struct node_config *c)
{
    memset(c, 0, sizeof(*c));
    c->node_id = 1;
    c->cluster_id = 0x7269666172676e72ull; /* "rngrafir": any fixed value; set your own */
    snprintf(c->cluster_secret, sizeof(c->cluster_secret), "ringraft-default-secret");
    c->nodes[0] =
        (struct node_address){.id = 1, .host = "127.0.0.1", .port = 7001, .peer_port = 17001};
    c->node_count = 1;
    snprintf(c->bind, sizeof(c->bind), "127.0.0.1");
    snprintf(c->dir, sizeof(c->dir), "./ringraft-data");
    c->log_level = LOG_NOTICE;
    c->workers = 1;
    c->groups = 64;
    snprintf(c->cpus, sizeof(c->cpus), "off");
    c->disk_batching = (struct wal_strategy){.kind = WAL_STRATEGY_ADAPTIVE};
    c->net_batching = NET_BATCHING_ADAPTIVE;
    c->disk_flushes_in_flight = 1;
    c->lazy_commit = true;
    c->quiesce = true;
    c->tick_ms = 10;
    c->election_ticks = 20;
    c->heartbeat_ticks = 2;
    c->request_timeout_ms = 5000;
    c->redirect = false;
    c->leader_balance = true;
    c->uring_defer_taskrun = true;
    c->uring_multishot_accept = true;
    c->uring_msg_ring = true;
    c->uring_multishot_recv = true;
    c->protected_mode = true;
    c->maxclients = 10000;
    c->client_query_buffer_max = 1ull << 30;
    c->client_output_buffer_max = 256ull << 20;
    c->proto_max_bulk_len = RAFT_ENTRY_BYTES_MAX - 4096;
    c->pipeline_max = 4096;
    c->peer_output_max = 64ull << 20;
    c->worker_inflight_max = 256ull << 20;
    c->snapshot_log_bytes = 64ull << 20;
    c->snapshot_trailing = 256;
    c->snapshot_wal_segments = 8;
    c->snapshot_slice_bytes = 256u << 10;
    c->snapshot_worker_log_bytes = 512ull << 20;
    c->wal_segment_bytes = 64ull << 20;
    c->slowlog_slower_than_us = 10000;
    c->slowlog_max_len = 128;
}

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
    return -1;
}

static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    if (*s == '\0' || *s == '-') {
        return -1;
    }
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 0);
    uint64_t mul = 1;
    if (*end == 'k' || *end == 'K') {
        mul = 1024, end++;
    } else if (*end == 'm' || *end == 'M') {
        mul = 1024 * 1024, end++;
    } else if (*end == 'g' || *end == 'G') {
        mul = 1024ull * 1024 * 1024, end++;
    }
    if (*end == 'b' || *end == 'B') {
        end++;
    }
    if (errno != 0 || *end != '\0' || (mul > 1 && v > UINT64_MAX / mul)) {
        return -1;
    }
    v *= mul;
    if (v < lo || v > hi) {
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    if (strcmp(s, "yes") == 0 || strcmp(s, "on") == 0 || strcmp(s, "1") == 0) {
        *out = true;
        return 0;
    }
    if (strcmp(s, "no") == 0 || strcmp(s, "off") == 0 || strcmp(s, "0") == 0) {
        *out = false;
        return 0;
    }
    return -1;
}

/* "ID=host:port" or "ID=host:port@peerport" (peer port default: port + 10000). */
int config_parse_node(const char *s, struct node_address *a)
{
    char buf[160];
    if (strlen(s) >= sizeof(buf)) {
        return -1;
    }
    strcpy(buf, s);
    char *eq = strchr(buf, '=');
    if (eq == NULL) {
        return -1;
    }
    *eq = '\0';
    uint64_t v;
    if (parse_u64(buf, 1, RAFT_NODE_ID_MAX, &v) != 0) {
        return -1;
    }
    a->id = (raft_node)v;
    char *host = eq + 1;
    char *at = strchr(host, '@');
    char *colon = strrchr(host, ':');
    if (colon == NULL || (at != NULL && at < colon)) {
        return -1;
    }
    *colon = '\0';
    if (at != NULL) {
        *at = '\0';
    }
    if (*host == '\0' || strlen(host) >= sizeof(a->host)) {
        return -1;
    }
    snprintf(a->host, sizeof(a->host), "%s", host);
    if (parse_u64(colon + 1, 1, 65535, &v) != 0) {
        return -1;
    }
    a->port = (uint16_t)v;
    if (at != NULL) {
        if (parse_u64(at + 1, 1, 65535, &v) != 0) {
            return -1;
        }
        a->peer_port = (uint16_t)v;
    } else {
        if (a->port > 65535 - 10000) {
            return -1;
        }
        a->peer_port = (uint16_t)(a->port + 10000);
    }
    return 0;
}

static int parse_nodes(struct node_config *c, const char *value)
{
    struct node_address tmp[RAFT_MEMBERS_MAX];
    uint32_t n = 0;
    const char *p = value;
    while (*p != '\0') {
        while (*p == ',' || *p == ' ') {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        size_t k = strcspn(p, ", ");
        char item[160];
        if (k >= sizeof(item) || n == RAFT_MEMBERS_MAX) {
            return -1;
        }
        memcpy(item, p, k);
        item[k] = '\0';
        if (config_parse_node(item, &tmp[n]) != 0) {
            return -1;
        }
        for (uint32_t i = 0; i < n; i++) {
            if (tmp[i].id == tmp[n].id) {
                return -1;
            }
        }
        n++;
        p += k;
    }
    if (n == 0) {
        return -1;
    }
    memcpy(c->nodes, tmp, sizeof(tmp[0]) * n);
    c->node_count = n;
    return 0;
}

int config_set(struct node_config *c, const char *key, const char *value, char *err, size_t len)
{
    uint64_t v;
#define U64(name, field, lo, hi)                                                                   \
    if (strcmp(key, name) == 0) {                                                                  \
        if (parse_u64(value, (lo), (hi), &v) != 0) {                                               \
            return fail(err, len, "bad value for %s: '%s'", key, value);                           \
        }                                                                                          \
        c->field = v;                                                                              \
        return 0;                                                                                  \
    }
#define U32(name, field, lo, hi)                                                                   \
    if (strcmp(key, name) == 0) {                                                                  \
        if (parse_u64(value, (lo), (hi), &v) != 0) {                                               \
            return fail(err, len, "bad value for %s: '%s'", key, value);                           \
        }                                                                                          \
        c->field = (uint32_t)v;                                                                    \
        return 0;                                                                                  \
    }
#define BOOL(name, field)                                                                          \
    if (strcmp(key, name) == 0) {                                                                  \
        if (parse_bool(value, &c->field) != 0) {                                                   \
            return fail(err, len, "bad value for %s: '%s' (yes or no)", key, value);               \
        }                                                                                          \
        return 0;                                                                                  \
    }
#define STR(name, field)                                                                           \
    if (strcmp(key, name) == 0) {                                                                  \
        if (strlen(value) >= sizeof(c->field)) {                                                   \
            return fail(err, len, "value for %s too long: '%s'", key, value);                      \
        }                                                                                          \
        snprintf(c->field, sizeof(c->field), "%s", value);                                         \
        return 0;                                                                                  \
    }
    U32("node-id", node_id, 1, RAFT_NODE_ID_MAX)
    U64("cluster-id", cluster_id, 1, UINT64_MAX)
    STR("cluster-secret", cluster_secret)
    STR("bind", bind)
    STR("dir", dir)
    STR("logfile", logfile)
    U32("workers", workers, 1, 64)
    U32("groups", groups, 1, 16384)
    STR("cpus", cpus)
    U32("tick-ms", tick_ms, 1, 1000)
    U32("disk-flushes-in-flight", disk_flushes_in_flight, 1, WAL_FLUSHES_MAX)
    U32("election-ticks", election_ticks, 3, 10000)
    U32("heartbeat-ticks", heartbeat_ticks, 1, 10000)
    U32("request-timeout-ms", request_timeout_ms, 10, 3600 * 1000)
    BOOL("redirect", redirect)
    BOOL("lazy-commit", lazy_commit)
    BOOL("quiesce", quiesce)
    BOOL("leader-balance", leader_balance)
    BOOL("join", join)
    BOOL("uring-defer-taskrun", uring_defer_taskrun)
    BOOL("uring-multishot-accept", uring_multishot_accept)
    BOOL("uring-msg-ring", uring_msg_ring)
    BOOL("uring-multishot-recv", uring_multishot_recv)
    STR("requirepass", requirepass)
    BOOL("protected-mode", protected_mode)
    U32("maxclients", maxclients, 1, 1000000)
    U64("maxmemory", maxmemory, 0, UINT64_MAX)
    U64("client-query-buffer-limit", client_query_buffer_max, 4096, 1ull << 32)
    U64("client-output-buffer-limit", client_output_buffer_max, 4096, 1ull << 34)
    U64("proto-max-bulk-len", proto_max_bulk_len, 1, RAFT_ENTRY_BYTES_MAX - 4096)
    U32("pipeline-max", pipeline_max, 1, 1u << 20)
    U64("peer-output-limit", peer_output_max, 1u << 20, 1ull << 34)
    U64("worker-inflight-limit", worker_inflight_max, 1u << 20, 1ull << 36)
    U64("snapshot-log-bytes", snapshot_log_bytes, 0, 1ull << 40)
    U32("snapshot-trailing-entries", snapshot_trailing, 0, 1u << 20)
    U32("snapshot-wal-segments", snapshot_wal_segments, 0, 4096)
    U64("snapshot-slice-bytes", snapshot_slice_bytes, 4096, 1ull << 30)
    U64("snapshot-worker-log-bytes", snapshot_worker_log_bytes, 0, 1ull << 44)
    if (strcmp(key, "wal-segment-bytes") == 0) {
        if (parse_u64(value, 1u << 20, 1ull << 32, &v) != 0 || v % 4096 != 0) {
            return fail(err, len, "bad value for %s: '%s' (1 MiB to 4 GiB, a multiple of 4096)",
                        key, value);
        }
        c->wal_segment_bytes = v;
        return 0;
    }
    U32("slowlog-max-len", slowlog_max_len, 0, SLOWLOG_LEN_CEILING)
    if (strcmp(key, "metrics-port") == 0) {
        if (parse_u64(value, 0, 65535, &v) != 0) {
            return fail(err, len, "bad value for %s: '%s'", key, value);
        }
        c->metrics_port = (uint16_t)v;
        return 0;
    }
    if (strcmp(key, "slowlog-log-slower-than") == 0) {
        /* Microseconds; a negative value turns the log off (as Redis's). */
        if (strcmp(value, "-1") == 0 ||
            (value[0] == '-' && parse_u64(value + 1, 1, UINT32_MAX, &v) == 0)) {
            c->slowlog_slower_than_us = -1;
            return 0;
        }
        if (parse_u64(value, 0, 3600ull * 1000 * 1000, &v) != 0) {
            return fail(err, len, "bad value for %s: '%s'", key, value);
        }
        c->slowlog_slower_than_us = (int64_t)v;
        return 0;
    }
    BOOL("test-power-loss", test_power_loss)
    U64("test-wal-segment-bytes", test_wal_segment_bytes, 0, 1ull << 32)
    if (strcmp(key, "unsafe-test-mode") == 0) {
        static const char *const modes[] = {"none", "ack-before-fsync", "reads-without-readindex"};
        for (uint8_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
            if (strcmp(value, modes[m]) == 0) {
                c->unsafe_test_mode = m;
                return 0;
            }
        }
        return fail(err, len,
                    "bad value for %s: '%s' (none, ack-before-fsync, "
                    "reads-without-readindex)",
                    key, value);
    }
    if (strcmp(key, "port") == 0) {
        /* Shorthand: this node's client port (peer port follows at +10000). */
        if (parse_u64(value, 1, 65535 - 10000, &v) != 0) {
            return fail(err, len, "bad value for %s: '%s'", key, value);
        }
        for (uint32_t i = 0; i < c->node_count; i++) {
            if (c->nodes[i].id == c->node_id) {
                c->nodes[i].port = (uint16_t)v;
                c->nodes[i].peer_port = (uint16_t)(v + 10000);
                return 0;
            }
        }
        return fail(err, len, "%s: node %s is not in the node list", key, value);
    }
    if (strcmp(key, "nodes") == 0) {
        if (parse_nodes(c, value) != 0) {
            return fail(err, len, "bad value for %s: '%s' (ID=host:port[@peerport],...)", key,
                        value);
        }
        return 0;
    }
    if (strcmp(key, "loglevel") == 0) {
        int l = log_level_parse(value);
        if (l < 0) {
            return fail(err, len, "bad value for %s: '%s'", key, value);
        }
        c->log_level = l;
        return 0;
    }
    if (strcmp(key, "disk-batching") == 0) {
        if (wal_strategy_parse(value, &c->disk_batching) != 0) {
            return fail(err, len, "bad value for %s: '%s' (none, fixed:N, linger:USEC, adaptive)",
                        key, value);
        }
        return 0;
    }
    if (strcmp(key, "net-batching") == 0) {
        if (strcmp(value, "none") == 0) {
            c->net_batching = NET_BATCHING_NONE;
        } else if (strcmp(value, "adaptive") == 0) {
            c->net_batching = NET_BATCHING_ADAPTIVE;
        } else {
            return fail(err, len, "bad value for %s: '%s' (none or adaptive)", key, value);
        }
        return 0;
    }
#undef U64
#undef U32
#undef BOOL
#undef STR
    return fail(err, len, "unknown setting '%s'", key);
}

int config_load_file(struct node_config *c, const char *path, char *err, size_t len)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, len, "%s: %s", path, strerror(errno));
        return -1;
    }
    char line[1024];
    unsigned lineno = 0;
    int rc = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        size_t n = strlen(line);
        if (n == sizeof(line) - 1 && line[n - 1] != '\n') {
            snprintf(err, len, "%s:%u: line too long", path, lineno);
            rc = -1;
            break;
        }
        while (n > 0 && isspace((unsigned char)line[n - 1])) {
            line[--n] = '\0';
        }
        char *p = line;
        while (isspace((unsigned char)*p)) {
            p++;
        }
        if (*p == '\0' || *p == '#') {
            continue;
        }
        char *key = p;
        while (*p != '\0' && !isspace((unsigned char)*p)) {
            p++;
        }
        if (*p != '\0') {
            *p++ = '\0';
        }
        while (isspace((unsigned char)*p)) {
            p++;
        }
        size_t vl = strlen(p);
        if (vl >= 2 && p[0] == '"' && p[vl - 1] == '"') {
            p[vl - 1] = '\0';
            p++;
        }
        char msg[300];
        if (config_set(c, key, p, msg, sizeof(msg)) != 0) {
            snprintf(err, len, "%s:%u: %s", path, lineno, msg);
            rc = -1;
            break;
        }
    }
    fclose(f);
    return rc;
}

const struct node_address *config_node(const struct node_config *c, raft_node id)
{
    for (uint32_t i = 0; i < c->node_count; i++) {
        if (c->nodes[i].id == id) {
            return &c->nodes[i];
        }
    }
    return NULL;
}

const struct node_address *config_self(const struct node_config *c)
{
    return config_node(c, c->node_id);
}

int config_validate(const struct node_config *c, char *err, size_t len)
{
    if (config_self(c) == NULL) {
        snprintf(err, len, "node-id %u is not in the node list (nodes)", c->node_id);
        return -1;
    }
    if (c->groups < c->workers) {
        snprintf(err, len, "groups (%u) must be at least workers (%u)", c->groups, c->workers);
        return -1;
    }
    if (c->groups / c->workers + 1 > RAFT_GROUPS_MAX) {
        snprintf(err, len, "too many groups per worker");
        return -1;
    }
    if (c->heartbeat_ticks >= c->election_ticks) {
        snprintf(err, len, "heartbeat-ticks (%u) must be below election-ticks (%u)",
                 c->heartbeat_ticks, c->election_ticks);
        return -1;
    }
    for (uint32_t i = 0; i < c->node_count; i++) {
        if ((uint32_t)c->nodes[i].peer_port + c->workers - 1 > 65535) {
            snprintf(err, len, "node %u: peer ports %u+%u exceed 65535", c->nodes[i].id,
                     c->nodes[i].peer_port, c->workers);
            return -1;
        }
    }
    if (c->cluster_secret[0] == '\0') {
        snprintf(err, len, "cluster-secret must not be empty");
        return -1;
    }
    const struct node_address *me = config_self(c);
    if (c->metrics_port != 0 && me != NULL &&
        (c->metrics_port == me->port ||
         (c->metrics_port >= me->peer_port && c->metrics_port < me->peer_port + c->workers))) {
        snprintf(err, len, "metrics-port %u is this node's client or peer port", c->metrics_port);
        return -1;
    }
#ifndef RR_FAULT_TESTING
    if (c->unsafe_test_mode != UNSAFE_TEST_NONE || c->test_power_loss ||
        c->test_wal_segment_bytes != 0) {
        snprintf(err, len,
                 "unsafe-test-mode, test-power-loss and test-wal-segment-bytes exist "
                 "only in the fault-test build (ringraftd-faults, docs/faults.md)");
        return -1;
    }
#endif
    return 0;
}

void config_write(const struct node_config *c, FILE *f)
{
    char strat[64];
    fprintf(f, "node-id %u\n", c->node_id);
    fprintf(f, "cluster-id 0x%016" PRIx64 "\n", c->cluster_id);
    fprintf(f, "cluster-secret \"%s\"\n", c->cluster_secret);
    fprintf(f, "nodes ");
    for (uint32_t i = 0; i < c->node_count; i++) {
        fprintf(f, "%s%u=%s:%u@%u", i ? "," : "", c->nodes[i].id, c->nodes[i].host,
                c->nodes[i].port, c->nodes[i].peer_port);
    }
    fprintf(f, "\nbind %s\n", c->bind);
    fprintf(f, "dir %s\n", c->dir);
    fprintf(f, "logfile \"%s\"\n", c->logfile);
    fprintf(f, "loglevel %s\n", log_level_name((enum log_level)c->log_level));
    fprintf(f, "workers %u\ngroups %u\ncpus %s\n", c->workers, c->groups, c->cpus);
    fprintf(f, "disk-batching %s\n", wal_strategy_format(&c->disk_batching, strat, sizeof(strat)));
    fprintf(f, "disk-flushes-in-flight %u\n", c->disk_flushes_in_flight);
    fprintf(f, "lazy-commit %s\n", c->lazy_commit ? "yes" : "no");
    fprintf(f, "quiesce %s\n", c->quiesce ? "yes" : "no");
    fprintf(f, "net-batching %s\n", c->net_batching == NET_BATCHING_NONE ? "none" : "adaptive");
    fprintf(f, "tick-ms %u\nelection-ticks %u\nheartbeat-ticks %u\n", c->tick_ms, c->election_ticks,
            c->heartbeat_ticks);
    fprintf(f, "request-timeout-ms %u\n", c->request_timeout_ms);
    fprintf(f, "redirect %s\n", c->redirect ? "yes" : "no");
    fprintf(f, "leader-balance %s\n", c->leader_balance ? "yes" : "no");
    fprintf(f, "join %s\n", c->join ? "yes" : "no");
    fprintf(f, "uring-defer-taskrun %s\n", c->uring_defer_taskrun ? "yes" : "no");
    fprintf(f, "uring-multishot-accept %s\n", c->uring_multishot_accept ? "yes" : "no");
    fprintf(f, "uring-msg-ring %s\n", c->uring_msg_ring ? "yes" : "no");
    fprintf(f, "uring-multishot-recv %s\n", c->uring_multishot_recv ? "yes" : "no");
    fprintf(f, "requirepass \"%s\"\n", c->requirepass);
    fprintf(f, "protected-mode %s\n", c->protected_mode ? "yes" : "no");
    fprintf(f, "maxclients %u\n", c->maxclients);
    fprintf(f, "maxmemory %" PRIu64 "\n", c->maxmemory);
    fprintf(f, "client-query-buffer-limit %" PRIu64 "\n", c->client_query_buffer_max);
    fprintf(f, "client-output-buffer-limit %" PRIu64 "\n", c->client_output_buffer_max);
    fprintf(f, "proto-max-bulk-len %" PRIu64 "\n", c->proto_max_bulk_len);
    fprintf(f, "pipeline-max %u\n", c->pipeline_max);
    fprintf(f, "peer-output-limit %" PRIu64 "\n", c->peer_output_max);
    fprintf(f, "worker-inflight-limit %" PRIu64 "\n", c->worker_inflight_max);
    fprintf(f, "snapshot-log-bytes %" PRIu64 "\n", c->snapshot_log_bytes);
    fprintf(f, "snapshot-trailing-entries %u\n", c->snapshot_trailing);
    fprintf(f, "snapshot-wal-segments %u\n", c->snapshot_wal_segments);
    fprintf(f, "snapshot-slice-bytes %" PRIu64 "\n", c->snapshot_slice_bytes);
    fprintf(f, "snapshot-worker-log-bytes %" PRIu64 "\n", c->snapshot_worker_log_bytes);
    fprintf(f, "wal-segment-bytes %" PRIu64 "\n", c->wal_segment_bytes);
    fprintf(f, "metrics-port %u\n", c->metrics_port);
    fprintf(f, "slowlog-log-slower-than %" PRId64 "\n", c->slowlog_slower_than_us);
    fprintf(f, "slowlog-max-len %u\n", c->slowlog_max_len);
    /* The test-only switches are written only when set (only the fault-test build runs). */
    static const char *const modes[] = {"none", "ack-before-fsync", "reads-without-readindex"};
    if (c->unsafe_test_mode != UNSAFE_TEST_NONE) {
        fprintf(f, "unsafe-test-mode %s\n", modes[c->unsafe_test_mode]);
    }
    if (c->test_power_loss) {
        fprintf(f, "test-power-loss yes\n");
    }
    if (c->test_wal_segment_bytes != 0) {
        fprintf(f, "test-wal-segment-bytes %" PRIu64 "\n", c->test_wal_segment_bytes);
    }
}
