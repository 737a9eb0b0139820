#include "io/config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/assert.h"
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
    c->wal_sync = WAL_SYNC_RWF_DSYNC;
    c->wal_prepare = WAL_PREP_ZERO;
    c->wal_direct_io = true;
    c->lazy_commit = true;
    c->log_release = true;
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
    c->malloc_hugepages = true;
    c->protected_mode = true;
    c->maxclients = 10000;
    c->client_query_buffer_max = 1ull << 30;
    c->client_output_buffer_max = 256ull << 20;
    c->proto_max_bulk_len = RAFT_ENTRY_BYTES_MAX - 4096;
    c->pipeline_max = 4096;
    c->peer_output_max = 64ull << 20;
    c->worker_inflight_max = 256ull << 20;
    c->worker_uncommitted_max = 128ull << 20;
    c->snapshot_log_bytes = 64ull << 20;
    c->snapshot_trailing = 256;
    c->snapshot_wal_segments = 8;
    c->snapshot_slice_bytes = 16u << 10;
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
    if (!nodeset_host_valid(host, strlen(host))) {
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

static int parse_node_list(struct node_config *c, const char *value)
{
    struct node_address tmp[RAFT_MEMBERS_MAX];
    memset(tmp, 0, sizeof(tmp)); /* whole structs: a parsed config compares with memcmp */
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

/* ---- the settings ------------------------------------------------------------------------
 *
 * Every setting is one row of config_options[] below: its name, how its value is parsed and
 * printed, its argument and its one-line description. config_set, config_write (--dump-config),
 * config_write_sample (--sample-config) and config_write_help (--help) all walk the table, so
 * a setting added here is parsed, dumped, listed and put in the sample config at once.
 * tests/service/test_config.c checks that every row round-trips through config_write and
 * config_load_file and is named by the sample config (tools/dist/ringraft.conf) and
 * ringraftd(8); the install tests (tests/install) check the sample config, ringraftd(8),
 * --help and docs/node.md against the table too. */

enum config_kind {
    CONFIG_U16,    /* uint16_t in [lo, hi] */
    CONFIG_U32,    /* uint32_t in [lo, hi] */
    CONFIG_U64,    /* uint64_t in [lo, hi] */
    CONFIG_HEX64,  /* uint64_t in [lo, hi], printed as 0x and 16 hex digits */
    CONFIG_BYTES,  /* uint64_t in [lo, hi], printed with a k, m or g suffix when exact */
    CONFIG_BOOL,   /* bool: yes or no (also on/off, 1/0) */
    CONFIG_STR,    /* char[size], NUL-terminated */
    CONFIG_CUSTOM, /* parsed and printed by the row's own functions */
};

struct config_option {
    const char *name; /* the key in a file; "--" + name on the command line */
    enum config_kind kind;
    size_t offset;   /* of the field in struct node_config (all kinds but CUSTOM) */
    size_t size;     /* of that field: checked against the kind on every access */
    uint64_t lo, hi; /* accepted range (integer kinds) */
    int (*parse)(struct node_config *c, const char *value, char *err, size_t len); /* CUSTOM */
    void (*format)(const struct node_config *c, char *buf, size_t len);            /* CUSTOM */
    bool shorthand;      /* sets part of another setting: left out of --dump-config */
    bool only_when_set;  /* --dump-config writes it only when it is not the default */
    const char *arg;     /* the value's placeholder in --help */
    const char *help;    /* one short line, lower case, no final period (--help, the sample) */
    const char *doc;     /* NULL, or sentences the sample adds after help */
    const char *section; /* a heading row (no name): starts a group of settings in the sample */
};

#define FIELD(field)                                                                               \
    .offset = offsetof(struct node_config, field),                                                 \
    .size = sizeof(((struct node_config *)NULL)->field)

static int parse_nodes(struct node_config *c, const char *value, char *err, size_t len)
{
    if (parse_node_list(c, value) != 0) {
        return fail(err, len, "bad value for nodes: '%s' (ID=host:port[@peerport],...)", value);
    }
    return 0;
}

static void format_nodes(const struct node_config *c, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (uint32_t i = 0; i < c->node_count && used < len; i++) {
        int n = snprintf(buf + used, len - used, "%s%u=%s:%u@%u", i ? "," : "", c->nodes[i].id,
                         c->nodes[i].host, c->nodes[i].port, c->nodes[i].peer_port);
        if (n < 0) {
            break;
        }
        used += (size_t)n;
    }
}

/* Shorthand: this node's client port (peer port follows at +10000). */
static int parse_port(struct node_config *c, const char *value, char *err, size_t len)
{
    uint64_t v;
    if (parse_u64(value, 1, 65535 - 10000, &v) != 0) {
        return fail(err, len, "bad value for port: '%s'", value);
    }
    for (uint32_t i = 0; i < c->node_count; i++) {
        if (c->nodes[i].id == c->node_id) {
            c->nodes[i].port = (uint16_t)v;
            c->nodes[i].peer_port = (uint16_t)(v + 10000);
            return 0;
        }
    }
    return fail(err, len, "port: node %u is not in the node list", c->node_id);
}

static void format_port(const struct node_config *c, char *buf, size_t len)
{
    const struct node_address *self = config_self(c);
    snprintf(buf, len, "%u", self != NULL ? self->port : 0);
}

static int parse_loglevel(struct node_config *c, const char *value, char *err, size_t len)
{
    int l = log_level_parse(value);
    if (l < 0) {
        return fail(err, len, "bad value for loglevel: '%s' (debug, info, notice, warning, error)",
                    value);
    }
    c->log_level = l;
    return 0;
}

static void format_loglevel(const struct node_config *c, char *buf, size_t len)
{
    snprintf(buf, len, "%s", log_level_name((enum log_level)c->log_level));
}

static int parse_disk_batching(struct node_config *c, const char *value, char *err, size_t len)
{
    if (wal_strategy_parse(value, &c->disk_batching) != 0) {
        return fail(err, len,
                    "bad value for disk-batching: '%s' (none, fixed:N, linger:USEC, adaptive)",
                    value);
    }
    return 0;
}

static void format_disk_batching(const struct node_config *c, char *buf, size_t len)
{
    wal_strategy_format(&c->disk_batching, buf, len);
}

/* Settings that name one of two choices: the value of names[i] is i. */
static const char *const wal_sync_names[] = {
    [WAL_SYNC_LINKED_FDATASYNC] = "fdatasync", [WAL_SYNC_RWF_DSYNC] = "dsync"};
static const char *const wal_prepare_names[] = {
    [WAL_PREP_ZERO] = "zero", [WAL_PREP_FALLOCATE] = "fallocate"};
static const char *const net_batching_names[] = {
    [NET_BATCHING_NONE] = "none", [NET_BATCHING_ADAPTIVE] = "adaptive"};

static int parse_choice(const char *setting,
                        const char *const names[2],
                        const char *value,
                        unsigned *out,
                        char *err,
                        size_t len)
{
    for (unsigned i = 0; i < 2; i++) {
        if (strcmp(value, names[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    return fail(err, len, "bad value for %s: '%s' (%s or %s)", setting, value, names[0], names[1]);
}

/* config_FIELD_name, and the parse_FIELD / format_FIELD of a CUSTOM row, for the enum field
 * FIELD (of type TYPE) of a two-choice setting named by FIELD_names. */
#define CHOICE_SETTING(field, setting, type)                                                       \
    const char *config_##field##_name(type v)                                                      \
    {                                                                                              \
        return field##_names[v];                                                                   \
    }                                                                                              \
    static int parse_##field(struct node_config *c, const char *value, char *err, size_t len)      \
    {                                                                                              \
        unsigned v;                                                                                \
        int rc = parse_choice(setting, field##_names, value, &v, err, len);                        \
        c->field = rc == 0 ? (type)v : c->field;                                                   \
        return rc;                                                                                 \
    }                                                                                              \
    static void format_##field(const struct node_config *c, char *buf, size_t len)                 \
    {                                                                                              \
        snprintf(buf, len, "%s", field##_names[c->field]);                                         \
    }

CHOICE_SETTING(wal_sync, "wal-sync", enum wal_sync_method)
CHOICE_SETTING(wal_prepare, "wal-prepare", enum wal_prep_method)
CHOICE_SETTING(net_batching, "net-batching", enum net_batching)

/* Microseconds; a negative value turns the log off (as Redis's). */
static int
parse_slowlog_slower_than(struct node_config *c, const char *value, char *err, size_t len)
{
    uint64_t v;
    if (strcmp(value, "-1") == 0 ||
        (value[0] == '-' && parse_u64(value + 1, 1, UINT32_MAX, &v) == 0)) {
        c->slowlog_slower_than_us = -1;
        return 0;
    }
    if (parse_u64(value, 0, 3600ull * 1000 * 1000, &v) != 0) {
        return fail(err, len, "bad value for slowlog-log-slower-than: '%s'", value);
    }
    c->slowlog_slower_than_us = (int64_t)v;
    return 0;
}

static void format_bytes(uint64_t v, char *buf, size_t len);

static int parse_wal_segment_bytes(struct node_config *c, const char *value, char *err, size_t len)
{
    uint64_t v;
    if (parse_u64(value, 1u << 20, 1ull << 32, &v) != 0 || v % 4096 != 0) {
        return fail(err, len,
                    "bad value for wal-segment-bytes: '%s' (1 MiB to 4 GiB, a multiple of 4096)",
                    value);
    }
    c->wal_segment_bytes = v;
    return 0;
}

static void format_wal_segment_bytes(const struct node_config *c, char *buf, size_t len)
{
    format_bytes(c->wal_segment_bytes, buf, len);
}

static void format_slowlog_slower_than(const struct node_config *c, char *buf, size_t len)
{
    snprintf(buf, len, "%" PRId64, c->slowlog_slower_than_us);
}

static const char *const unsafe_test_modes[] = {
    [UNSAFE_TEST_NONE] = "none",
    [UNSAFE_TEST_ACK_BEFORE_FSYNC] = "ack-before-fsync",
    [UNSAFE_TEST_READS_WITHOUT_READINDEX] = "reads-without-readindex",
};

static int parse_unsafe_test_mode(struct node_config *c, const char *value, char *err, size_t len)
{
    for (uint8_t m = 0; m < sizeof(unsafe_test_modes) / sizeof(unsafe_test_modes[0]); m++) {
        if (strcmp(value, unsafe_test_modes[m]) == 0) {
            c->unsafe_test_mode = m;
            return 0;
        }
    }
    return fail(err, len,
                "bad value for unsafe-test-mode: '%s' (none, ack-before-fsync, "
                "reads-without-readindex)",
                value);
}

static void format_unsafe_test_mode(const struct node_config *c, char *buf, size_t len)
{
    RR_ASSERT(c->unsafe_test_mode < sizeof(unsafe_test_modes) / sizeof(unsafe_test_modes[0]));
    snprintf(buf, len, "%s", unsafe_test_modes[c->unsafe_test_mode]);
}

#define U32(name_, field, lo_, hi_, arg_, help_, doc_)                                             \
    {                                                                                              \
        .name = name_, .kind = CONFIG_U32, FIELD(field), .lo = (lo_), .hi = (hi_), .arg = arg_,    \
        .help = help_, .doc = doc_                                                                 \
    }
#define U64(name_, field, kind_, lo_, hi_, arg_, help_, doc_)                                      \
    {                                                                                              \
        .name = name_, .kind = kind_, FIELD(field), .lo = (lo_), .hi = (hi_), .arg = arg_,         \
        .help = help_, .doc = doc_                                                                 \
    }
#define BOOL(name_, field, help_, doc_)                                                            \
    {                                                                                              \
        .name = name_, .kind = CONFIG_BOOL, FIELD(field), .arg = "yes|no", .help = help_,          \
        .doc = doc_                                                                                \
    }
#define STR(name_, field, arg_, help_, doc_)                                                       \
    {                                                                                              \
        .name = name_, .kind = CONFIG_STR, FIELD(field), .arg = arg_, .help = help_, .doc = doc_   \
    }
#define CUSTOM(name_, fn, arg_, help_, doc_)                                                       \
    {                                                                                              \
        .name = name_, .kind = CONFIG_CUSTOM, .parse = parse_##fn, .format = format_##fn,          \
        .arg = arg_, .help = help_, .doc = doc_                                                    \
    }
#define SECTION(title)                                                                             \
    {                                                                                              \
        .section = title                                                                           \
    }

/* In the order --dump-config and --sample-config write them; "port" after "node-id" and
 * "nodes", which it depends on. Kept one row per setting (clang-format would put every
 * argument on a line of its own). */
/* clang-format off */
static const struct config_option config_options[] = {
    SECTION("identity and membership"),
    U32("node-id", node_id, 1, RAFT_NODE_ID_MAX, "ID", "this node's id (1..1024), listed in nodes",
        NULL),
    CUSTOM("nodes", nodes, "ID=HOST:PORT[@PEERPORT],...", "every node of the cluster",
           "HOST is where clients and peers reach the node (advertised in CLUSTER SLOTS, CLUSTER "
           "NODES and -MOVED). PEERPORT defaults to PORT + 10000; worker w listens for peers on "
           "PEERPORT + w. Read at the data directory's first start; later starts take the "
           "members and addresses from the data directory and only this node's ports from here."),
    {.name = "port", .kind = CONFIG_CUSTOM, .parse = parse_port, .format = format_port,
     .shorthand = true, .arg = "PORT", .help = "shorthand: this node's client port in nodes",
     .doc = "Its peer port becomes PORT + 10000. Applies to the node-id and nodes set before it."},
    U64("cluster-id", cluster_id, CONFIG_HEX64, 1, UINT64_MAX, "ID",
        "the cluster's identity: set your own, the same on every node",
        "Checked in every WAL segment and every peer handshake: a peer of another cluster is "
        "refused."),
    STR("cluster-secret", cluster_secret, "SECRET",
        "shared secret of the nodes: set your own, keep it private",
        "Proven in every peer handshake; a peer that cannot prove it is refused. Keep this file "
        "readable only by root and the service's group."),
    BOOL("join", join, "a new data directory joins an existing cluster",
         "Its bootstrap voters are then the other nodes of nodes; add it with RAFT ADDNODE and "
         "RAFT PROMOTE through a member. No: a new data directory bootstraps with every node."),

    SECTION("network and files"),
    STR("bind", bind, "ADDRESS", "address the client and peer listeners bind",
        "Clients and peers of other hosts need an address they can reach (0.0.0.0 for all)."),
    STR("dir", dir, "PATH", "data directory (WAL, IDENTITY, LOCK, BOOT)",
        "Created if missing. A relative path is taken from the working directory."),
    STR("logfile", logfile, "PATH", "log file; \"\" for standard error",
        "Under systemd, standard error goes to the journal."),
    CUSTOM("loglevel", loglevel, "LEVEL", "log level: debug, info, notice, warning, error",
           "The name verbose also means info."),

    SECTION("workers and groups: fixed when the cluster is created, the same on every node"),
    U32("workers", workers, 1, 64, "N", "event loops per node (W), 1..64",
        "Each worker is one thread with its own io_uring, WAL (DIR/wal-w) and connections; group "
        "g lives on worker g % W."),
    U32("groups", groups, 1, 16384, "N", "Raft groups in the cluster (G), W..16384",
        "Keys map to groups by Redis Cluster's key slots (slot * G / 16384)."),
    STR("cpus", cpus, "off|LIST", "CPUs to pin the workers to (0-3, 2,3), or off",
        "Worker w pins itself to the w-th CPU of the list."),

    SECTION("storage"),
    CUSTOM("disk-batching", disk_batching, "STRATEGY",
           "WAL flushes: none, fixed:N, linger:USEC or adaptive",
           "How appends are grouped into one write and fdatasync (docs/storage.md)."),
    U32("disk-flushes-in-flight", disk_flushes_in_flight, 1, WAL_FLUSHES_MAX, "N",
        "WAL flushes in flight at once: 1 or 2", NULL),
    CUSTOM("wal-sync", wal_sync, "fdatasync|dsync",
           "WAL flush: write + linked fdatasync, or one RWF_DSYNC write",
           "Both are durable when they complete; dsync hands one request to the kernel's "
           "workers instead of two, which shortens every write's path (docs/storage.md)."),
    CUSTOM("wal-prepare", wal_prepare, "zero|fallocate",
           "a new WAL segment: written with zeros, or fallocate'd",
           "Zeros (each 256 KiB written back before the next) cost one extra write of every "
           "new segment; fallocate costs nothing up front but leaves unwritten extents that "
           "the first fdatasync over each block converts (docs/storage.md)."),
    BOOL("wal-direct-io", wal_direct_io, "write WAL flushes with O_DIRECT",
         "Whole 4 KiB blocks from an aligned buffer: the write goes straight to the device "
         "instead of through the page cache and a kernel worker thread. A filesystem that "
         "refuses O_DIRECT gets buffered writes (INFO's disk_direct_io says which; "
         "docs/storage.md)."),
    BOOL("lazy-commit", lazy_commit, "skip hard states that change only the commit index",
         "Term and vote are always written before the messages that depend on them; the commit "
         "index may lag and is learnt again from the leader after a restart."),
    BOOL("log-release", log_release, "free the data of entries every replica has in memory",
         "Applied and durable here, and as leader matched by every follower: kept on disk only, "
         "read back from the WAL for a follower that falls behind later (docs/node.md)."),

    SECTION("snapshots and the WAL's segments"),
    U64("snapshot-log-bytes", snapshot_log_bytes, CONFIG_BYTES, 0, 1ull << 40, "BYTES",
        "snapshot a group past this many applied bytes; 0: never",
        "Counted since the group's last snapshot; the log is compacted behind it."),
    U32("snapshot-trailing-entries", snapshot_trailing, 0, 1u << 20, "N",
        "entries kept in memory before a snapshot's index",
        "For followers that lag a little: they catch up from the log, not a snapshot."),
    U32("snapshot-wal-segments", snapshot_wal_segments, 0, 4096, "N",
        "snapshot the oldest segment's group past N segments; 0: off",
        "Keeps the WAL's disk use bounded under any mix of busy and idle groups."),
    U64("snapshot-slice-bytes", snapshot_slice_bytes, CONFIG_BYTES, 4096, 1ull << 30, "BYTES",
        "image bytes serialized per loop iteration",
        "Shared by the snapshots in progress; the requests of that iteration wait for it."),
    U64("snapshot-worker-log-bytes", snapshot_worker_log_bytes, CONFIG_BYTES, 0, 1ull << 44,
        "BYTES", "snapshot a worker's biggest group past BYTES; 0: never",
        "Counted over all the worker's groups since their snapshots: bounds the memory of "
        "in-memory logs."),
    CUSTOM("wal-segment-bytes", wal_segment_bytes, "BYTES",
           "WAL segment file size: 1m..4g, a multiple of 4096", NULL),

    SECTION("Raft"),
    U32("tick-ms", tick_ms, 1, 1000, "MS", "Raft tick in milliseconds (1..1000)", NULL),
    U32("election-ticks", election_ticks, 3, 10000, "N",
        "election timeout: random in [N, 2N) ticks", NULL),
    U32("heartbeat-ticks", heartbeat_ticks, 1, 10000, "N",
        "leader heartbeat period in ticks, below election-ticks", NULL),
    BOOL("quiesce", quiesce, "idle groups stop ticking and heartbeating",
         "A message, a request or a failed peer connection wakes them."),
    BOOL("leader-balance", leader_balance, "move each group's leader to its preferred node",
         "Group g prefers the (g mod V)-th of the V voters of its own configuration, sorted "
         "by id; checked once a second."),

    SECTION("clients and peers"),
    U32("request-timeout-ms", request_timeout_ms, 10, 3600 * 1000, "MS",
        "deadline of a client request in milliseconds",
        "Past it the client gets -TIMEOUT (the outcome is unknown) or -CLUSTERDOWN (the request "
        "never left this node)."),
    BOOL("redirect", redirect, "answer -MOVED instead of forwarding to the leader",
         "A request whose group elects no leader for twice the longest election timeout gets "
         "-TRYAGAIN."),
    CUSTOM("net-batching", net_batching, "none|adaptive",
           "peer frames: adaptive batching, or none (send at once)",
           "Adaptive: frames queued while a send is in flight leave together in the next send."),

    SECTION("io_uring features: each is probed at start; no means the plain path"),
    BOOL("uring-defer-taskrun", uring_defer_taskrun,
         "rings with IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN", NULL),
    BOOL("uring-multishot-accept", uring_multishot_accept, "multishot accept", NULL),
    BOOL("uring-msg-ring", uring_msg_ring, "wake workers with IORING_OP_MSG_RING, not eventfd",
         NULL),
    BOOL("uring-multishot-recv", uring_multishot_recv,
         "multishot recv into a provided-buffer ring", NULL),

    SECTION("security"),
    STR("requirepass", requirepass, "PASSWORD",
        "password clients give with AUTH or HELLO AUTH; \"\" for none",
        "Only the default user exists; the password is compared in constant time. Nodes do not "
        "use it among themselves (they prove cluster-secret)."),
    BOOL("protected-mode", protected_mode, "without requirepass, serve loopback clients only",
         "Nodes on several hosts need requirepass (recommended) or protected-mode no."),

    SECTION("memory"),
    BOOL("malloc-hugepages", malloc_hugepages,
         "one malloc arena, its heap in transparent huge pages",
         "ringraftd then starts itself again with GLIBC_TUNABLES glibc.malloc.hugetlb=1, "
         "glibc.malloc.arena_max=1, glibc.malloc.mmap_threshold=33554432 and "
         "glibc.malloc.trim_threshold=1073741824, unless GLIBC_TUNABLES already sets a "
         "glibc.malloc tunable. A node under writes touches fresh memory all the time (log, "
         "keys); in 4 KiB pages each first touch is a page fault, the costliest part of a "
         "write on a virtual machine. Blocks below 32 MiB then come from that heap, and "
         "glibc leaves its top alone: the node trims the heap itself while idle."),

    SECTION("limits: sizes take a k, m or g suffix"),
    U32("maxclients", maxclients, 1, 1000000, "N", "client connections per node",
        "One more is answered -ERR max number of clients reached and closed."),
    U64("maxmemory", maxmemory, CONFIG_BYTES, 0, UINT64_MAX, "BYTES",
        "resident memory limit for writes that add data; 0: none",
        "Past it such writes (SET, INCR, XADD, ...) get -OOM; reads, DEL, EXPIRE, XDEL, XTRIM "
        "and FLUSHDB are still served. The resident set is sampled once a second."),
    U64("client-query-buffer-limit", client_query_buffer_max, CONFIG_BYTES, 4096, 1ull << 32,
        "BYTES", "unparsed input per client", "Past it: protocol error, connection closed."),
    U64("client-output-buffer-limit", client_output_buffer_max, CONFIG_BYTES, 4096, 1ull << 34,
        "BYTES", "output queued per client",
        "The client is not read past half of it, and closed past it."),
    U64("proto-max-bulk-len", proto_max_bulk_len, CONFIG_BYTES, 1, RAFT_ENTRY_BYTES_MAX - 4096,
        "BYTES", "largest bulk argument, at most 1020k",
        "A write and its arguments must fit one log entry (1m)."),
    U32("pipeline-max", pipeline_max, 1, 1u << 20, "N", "requests of one client in flight",
        "The client is not read until replies drain."),
    U64("peer-output-limit", peer_output_max, CONFIG_BYTES, 1u << 20, 1ull << 34, "BYTES",
        "bytes queued for one peer connection",
        "Frames past it are dropped and counted (Raft retransmits; forwards time out)."),
    U64("worker-inflight-limit", worker_inflight_max, CONFIG_BYTES, 1u << 20, 1ull << 36, "BYTES",
        "client request bytes in flight on one worker", "Past it requests get -BUSY."),
    U64("worker-uncommitted-limit", worker_uncommitted_max, CONFIG_BYTES, 1u << 16, 1ull << 36,
        "BYTES", "entry bytes a worker's leaders proposed, not committed",
        "Past it proposals wait for commits (at most one larger entry goes alone)."),

    SECTION("observability"),
    {.name = "metrics-port", .kind = CONFIG_U16, FIELD(metrics_port), .lo = 0, .hi = 65535,
     .arg = "PORT", .help = "Prometheus endpoint (GET /metrics) on bind:PORT; 0: off",
     .doc = "Served by worker 0's loop; not this node's client or peer port."},
    CUSTOM("slowlog-log-slower-than", slowlog_slower_than, "USEC",
           "SLOWLOG requests at least this slow (us); negative: none",
           "The time from parse to reply: what a client waits, replication and fsyncs included."),
    U32("slowlog-max-len", slowlog_max_len, 0, SLOWLOG_LEN_CEILING, "N",
        "SLOWLOG entries kept per worker", NULL),

    SECTION("fault-test build only (docs/faults.md): other builds refuse to start with one set"),
    {.name = "unsafe-test-mode", .kind = CONFIG_CUSTOM, .parse = parse_unsafe_test_mode,
     .format = format_unsafe_test_mode, .only_when_set = true,
     .arg = "MODE", .help = "fault-test build: a deliberate safety bug; none: off",
     .doc = "The fault suite must catch each: ack-before-fsync releases held messages before "
            "the WAL syncs; reads-without-readindex serves a leader's reads from its own "
            "state."},
    {.name = "test-power-loss", .kind = CONFIG_BOOL, FIELD(test_power_loss),
     .only_when_set = true, .arg = "yes|no",
     .help = "fault-test build: SIGUSR1 is a power loss",
     .doc = "The node reverts every WAL byte not yet synced and exits, as if the machine had "
            "lost power."},
    {.name = "test-wal-segment-bytes", .kind = CONFIG_U64, FIELD(test_wal_segment_bytes),
     .lo = 0, .hi = 1ull << 32, .only_when_set = true, .arg = "BYTES",
     .help = "fault-test build: WAL segment size; 0: the WAL's default",
     .doc = "Small segments make short runs rotate and reclaim segments."},
    {.name = "test-resolve-delay-ms", .kind = CONFIG_U32, FIELD(test_resolve_delay_ms),
     .lo = 0, .hi = 600000, .only_when_set = true, .arg = "MS",
     .help = "fault-test build: peer name lookups wait this long; 0: off",
     .doc = "The resolver thread waits before each lookup, as for a slow DNS server: the "
            "loops must go on serving meanwhile."},
};
/* clang-format on */
#undef U32
#undef U64
#undef BOOL
#undef STR
#undef CUSTOM
#undef SECTION
#undef FIELD

#define CONFIG_OPTION_COUNT (sizeof(config_options) / sizeof(config_options[0]))

static const struct config_option *option_find(const char *name)
{
    for (size_t i = 0; i < CONFIG_OPTION_COUNT; i++) {
        if (config_options[i].name != NULL && strcmp(config_options[i].name, name) == 0) {
            return &config_options[i];
        }
    }
    return NULL;
}

/* The field's size matches what its kind reads and writes (a wrong row is our bug). */
static void option_check(const struct config_option *o)
{
    switch (o->kind) {
    case CONFIG_U16:
        RR_ASSERT(o->size == sizeof(uint16_t));
        break;
    case CONFIG_U32:
        RR_ASSERT(o->size == sizeof(uint32_t));
        break;
    case CONFIG_U64:
    case CONFIG_HEX64:
    case CONFIG_BYTES:
        RR_ASSERT(o->size == sizeof(uint64_t));
        break;
    case CONFIG_BOOL:
        RR_ASSERT(o->size == sizeof(bool));
        break;
    case CONFIG_STR:
        RR_ASSERT(o->size > 0);
        break;
    case CONFIG_CUSTOM:
        RR_ASSERT(o->parse != NULL);
        RR_ASSERT(o->format != NULL);
        break;
    }
}

int config_set(struct node_config *c, const char *key, const char *value, char *err, size_t len)
{
    const struct config_option *o = option_find(key);
    if (o == NULL) {
        return fail(err, len, "unknown setting '%s'", key);
    }
    option_check(o);
    char *field = (char *)c + o->offset;
    uint64_t v;
    bool b;
    switch (o->kind) {
    case CONFIG_U16:
    case CONFIG_U32:
    case CONFIG_U64:
    case CONFIG_HEX64:
    case CONFIG_BYTES:
        if (parse_u64(value, o->lo, o->hi, &v) != 0) {
            return fail(err, len, "bad value for %s: '%s'", key, value);
        }
        if (o->kind == CONFIG_U16) {
            uint16_t v16 = (uint16_t)v;
            memcpy(field, &v16, sizeof(v16));
        } else if (o->kind == CONFIG_U32) {
            uint32_t v32 = (uint32_t)v;
            memcpy(field, &v32, sizeof(v32));
        } else {
            memcpy(field, &v, sizeof(v));
        }
        return 0;
    case CONFIG_BOOL:
        if (parse_bool(value, &b) != 0) {
            return fail(err, len, "bad value for %s: '%s' (yes or no)", key, value);
        }
        memcpy(field, &b, sizeof(b));
        return 0;
    case CONFIG_STR:
        if (strlen(value) >= o->size) {
            return fail(err, len, "value for %s too long: '%s'", key, value);
        }
        snprintf(field, o->size, "%s", value);
        return 0;
    case CONFIG_CUSTOM:
        return o->parse(c, value, err, len);
    }
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
        c->test_wal_segment_bytes != 0 || c->test_resolve_delay_ms != 0) {
        snprintf(err, len,
                 "unsafe-test-mode, test-power-loss, test-wal-segment-bytes and "
                 "test-resolve-delay-ms exist only in the fault-test build (ringraftd-faults, "
                 "docs/faults.md)");
        return -1;
    }
#endif
    return 0;
}

/* Bytes with the largest k/m/g suffix that divides them exactly ("256m"), else plain. */
static void format_bytes(uint64_t v, char *buf, size_t len)
{
    static const char suffix[] = {'g', 'm', 'k'};
    for (int i = 0; i < 3; i++) {
        uint64_t unit = 1ull << (10 * (3 - i));
        if (v != 0 && v % unit == 0) {
            snprintf(buf, len, "%" PRIu64 "%c", v / unit, suffix[i]);
            return;
        }
    }
    snprintf(buf, len, "%" PRIu64, v);
}

/* A string value as the file reader takes it back: quoted when empty, when it holds
 * white space, or when it is itself quoted (the reader strips one pair of quotes). */
static void format_str(const char *s, char *buf, size_t len)
{
    size_t n = strlen(s);
    bool quote = n == 0 || strpbrk(s, " \t") != NULL || (s[0] == '"' && s[n - 1] == '"');
    snprintf(buf, len, quote ? "\"%s\"" : "%s", s);
}

/* The value of o in c, as a config file holds it. */
static void
option_format(const struct config_option *o, const struct node_config *c, char *buf, size_t len)
{
    option_check(o);
    const char *field = (const char *)c + o->offset;
    uint64_t v = 0;
    uint32_t v32 = 0;
    uint16_t v16 = 0;
    bool b = false;
    switch (o->kind) {
    case CONFIG_U16:
        memcpy(&v16, field, sizeof(v16));
        snprintf(buf, len, "%u", (unsigned)v16);
        return;
    case CONFIG_U32:
        memcpy(&v32, field, sizeof(v32));
        snprintf(buf, len, "%" PRIu32, v32);
        return;
    case CONFIG_U64:
        memcpy(&v, field, sizeof(v));
        snprintf(buf, len, "%" PRIu64, v);
        return;
    case CONFIG_HEX64:
        memcpy(&v, field, sizeof(v));
        snprintf(buf, len, "0x%016" PRIx64, v);
        return;
    case CONFIG_BYTES:
        memcpy(&v, field, sizeof(v));
        format_bytes(v, buf, len);
        return;
    case CONFIG_BOOL:
        memcpy(&b, field, sizeof(b));
        snprintf(buf, len, "%s", b ? "yes" : "no");
        return;
    case CONFIG_STR:
        format_str(field, buf, len);
        return;
    case CONFIG_CUSTOM:
        o->format(c, buf, len);
        return;
    }
}

/* Longest formatted value: the node list (RAFT_MEMBERS_MAX entries of at most
 * "1024=" + host + ":65535@65535,"). */
#define CONFIG_VALUE_MAX (RAFT_MEMBERS_MAX * (NODE_HOST_MAX + 24) + 16)

void config_write(const struct node_config *c, FILE *f)
{
    struct node_config def;
    config_default(&def);
    char value[CONFIG_VALUE_MAX], value_def[CONFIG_VALUE_MAX];
    for (size_t i = 0; i < CONFIG_OPTION_COUNT; i++) {
        const struct config_option *o = &config_options[i];
        if (o->name == NULL || o->shorthand) {
            continue;
        }
        option_format(o, c, value, sizeof(value));
        if (o->only_when_set) {
            /* The fault-test switches: a file any build accepts unless one is set. */
            option_format(o, &def, value_def, sizeof(value_def));
            if (strcmp(value, value_def) == 0) {
                continue;
            }
        }
        fprintf(f, "%s %s\n", o->name, value);
    }
}

/* The line at p starts with a setting's name and a space: it would read as "# setting value",
 * a commented-out setting. */
static bool starts_like_setting(const char *p)
{
    char word[64];
    size_t n = strcspn(p, " ");
    if (n == 0 || n >= sizeof(word) || p[n] != ' ') {
        return false;
    }
    memcpy(word, p, n);
    word[n] = '\0';
    return option_find(word) != NULL;
}

/* Writes text as "# " comment lines of at most 90 columns, broken at spaces, never so that a
 * line starts like a commented-out setting (the sample's "# setting value" lines stay the
 * only ones that do). */
static void write_comment(FILE *f, const char *text)
{
    const size_t width = 88;
    const char *p = text;
    while (*p != '\0') {
        size_t n = strlen(p);
        if (n > width) {
            n = width;
            while (n > 0 && (p[n] != ' ' || starts_like_setting(p + n + 1))) {
                n--;
            }
            if (n == 0) {
                n = strcspn(p, " "); /* one word longer than a line */
            }
        }
        fprintf(f, "# %.*s\n", (int)n, p);
        p += n;
        while (*p == ' ') {
            p++;
        }
    }
}

void config_write_sample(const struct node_config *c, FILE *f)
{
    struct node_config def;
    config_default(&def);
    fprintf(f, "# ringraftd configuration file.\n#\n");
    write_comment(f, "One setting per line, \"setting value\"; a value may be quoted (\"\"). "
                     "Lines starting with '#' are comments. Settings apply in order: the built-in "
                     "default, then this file, then --setting value flags on the command line. A "
                     "setting commented out below shows its built-in default: remove the '#' to "
                     "change it.");
    fprintf(f, "#\n"
               "#   ringraftd FILE --check-config   checks this file and exits\n"
               "#   ringraftd FILE --dump-config    prints the effective configuration\n"
               "#\n"
               "# ringraftd(8) and docs/node.md describe every setting.\n");
    char value[CONFIG_VALUE_MAX], value_def[CONFIG_VALUE_MAX], text[1024];
    for (size_t i = 0; i < CONFIG_OPTION_COUNT; i++) {
        const struct config_option *o = &config_options[i];
        if (o->name == NULL) {
            fprintf(f, "\n# ---- %s\n", o->section);
            continue;
        }
        /* The description as sentences: capital first letter, final period. */
        snprintf(text, sizeof(text), "%c%s.%s%s", toupper((unsigned char)o->help[0]), o->help + 1,
                 o->doc != NULL ? " " : "", o->doc != NULL ? o->doc : "");
        fprintf(f, "\n");
        write_comment(f, text);
        option_format(o, c, value, sizeof(value));
        option_format(o, &def, value_def, sizeof(value_def));
        bool changed = !o->shorthand && strcmp(value, value_def) != 0;
        fprintf(f, "%s%s %s\n", changed ? "" : "# ", o->name, value);
    }
}

void config_write_help(FILE *f)
{
    for (size_t i = 0; i < CONFIG_OPTION_COUNT; i++) {
        const struct config_option *o = &config_options[i];
        if (o->name == NULL) {
            continue;
        }
        char flag[64];
        snprintf(flag, sizeof(flag), "--%s %s", o->name, o->arg);
        fprintf(f, "  %-37s %s\n", flag, o->help);
    }
}
