/* ringraftd's configuration: a built-in default (a single-node cluster on 127.0.0.1:7001,
 * data in ./ringraft-data), overridden by a redis.conf-like file ("key value" lines, '#'
 * comments) and then by command-line flags ("--key value"), in that order. docs/node.md
 * lists every option. */
#ifndef RR_IO_CONFIG_H
#define RR_IO_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/limits.h"
#include "io/wire/nodeset.h"
#include "storage/wal.h"

#define NODE_PATH_MAX 512

enum net_batching { NET_BATCHING_NONE = 0, NET_BATCHING_ADAPTIVE = 1 };

/* Deliberately unsafe behaviours for the fault suite (tests/faults) to catch. Accepted only
 * by the fault-test build (RR_FAULT_TESTING: build/FLAVOUR/ringraftd-faults); any other
 * build refuses to start with one set. */
enum unsafe_test_mode {
    UNSAFE_TEST_NONE = 0,
    UNSAFE_TEST_ACK_BEFORE_FSYNC = 1,        /* release held messages before the WAL syncs */
    UNSAFE_TEST_READS_WITHOUT_READINDEX = 2, /* a leader serves reads from its own state */
};

struct node_config {
    raft_node node_id;
    uint64_t cluster_id;
    char cluster_secret[128];
    struct node_address nodes[RAFT_MEMBERS_MAX]; /* the initial membership, this node included */
    uint32_t node_count;
    char bind[NODE_HOST_MAX]; /* address the client and peer listeners bind */
    char dir[NODE_PATH_MAX];
    char logfile[NODE_PATH_MAX]; /* "" : stderr */
    int log_level;
    uint32_t workers; /* W */
    uint32_t groups;  /* G */
    char cpus[128];   /* "off", or a CPU list ("0-3", "2,3") the workers pin to in order */
    struct wal_strategy disk_batching;
    uint32_t disk_flushes_in_flight;  /* 1 or 2 (storage/wal.h) */
    enum wal_sync_method wal_sync;    /* how a WAL flush is made durable (storage/wal.h) */
    enum wal_prep_method wal_prepare; /* how a new WAL segment is prepared (storage/wal.h) */
    bool wal_direct_io;               /* WAL flushes through O_DIRECT where the filesystem allows */
    bool lazy_commit; /* do not write hard states that change only the commit index */
    bool log_release; /* free entry data every replica has (raft_options.release_applied) */
    bool quiesce;     /* idle groups stop ticking and heartbeating (core/raft.h) */
    enum net_batching net_batching;
    uint32_t tick_ms;
    uint32_t election_ticks;
    uint32_t heartbeat_ticks;
    uint32_t request_timeout_ms; /* a client request still unanswered after this fails */
    bool redirect;               /* answer -MOVED for groups led elsewhere instead of forwarding */
    bool leader_balance;         /* hand each group's leadership to its preferred node */
    bool join; /* a fresh data directory joins an existing cluster (not a bootstrap voter) */
    /* io_uring features (each probed at start; off means the plain path). */
    bool uring_defer_taskrun;
    bool uring_multishot_accept;
    bool uring_msg_ring;
    bool uring_multishot_recv; /* multishot recv into a provided-buffer ring */
    /* Memory. */
    bool malloc_hugepages; /* start under glibc malloc's one arena in huge pages (main.c) */
    /* Security. */
    char requirepass[512]; /* "": clients need not authenticate */
    bool protected_mode;   /* without requirepass, only loopback clients are accepted */
    /* Limits. */
    uint32_t maxclients; /* per node */
    uint64_t maxmemory;  /* heap bytes in use past which writes that add data get -OOM; 0: none */
    uint64_t client_query_buffer_max; /* bytes of unparsed input per client */
    uint64_t client_output_buffer_max;
    uint64_t proto_max_bulk_len;
    uint32_t pipeline_max;           /* requests of one client in flight */
    uint64_t peer_output_max;        /* bytes queued for one peer connection */
    uint64_t worker_inflight_max;    /* bytes of client requests in flight on one worker */
    uint64_t worker_uncommitted_max; /* bytes proposed by one worker's leaders, not committed */
    /* Snapshots (docs/node.md, "Snapshots"). */
    uint64_t snapshot_log_bytes;        /* snapshot a group once this many entry bytes were
                                           applied since its last snapshot (0: never for that) */
    uint32_t snapshot_trailing;         /* entries kept in memory before a snapshot's index for
                                           followers that lag a little */
    uint32_t snapshot_wal_segments;     /* snapshot the group pinning the WAL's oldest segment
                                           while the WAL has more segment files (0: never) */
    uint64_t snapshot_slice_bytes;      /* image bytes serialized per loop iteration */
    uint64_t snapshot_worker_log_bytes; /* when a worker's groups together applied this many
                                           entry bytes since their snapshots, the group with
                                           the most is snapshotted (0: never for that) */
    uint64_t wal_segment_bytes;         /* size of a WAL segment file */
    /* Observability. */
    uint16_t metrics_port;          /* Prometheus endpoint on bind:metrics_port; 0: off */
    int64_t slowlog_slower_than_us; /* requests at least this slow are logged; < 0: none */
    uint32_t slowlog_max_len;       /* entries kept per worker */
    /* Test-only switches (tests/faults, docs/faults.md); refused unless RR_FAULT_TESTING. */
    uint8_t unsafe_test_mode;        /* enum unsafe_test_mode */
    bool test_power_loss;            /* SIGUSR1: revert what the WAL had not synced, exit */
    uint64_t test_wal_segment_bytes; /* 0: the WAL's default size */
    uint32_t test_resolve_delay_ms;  /* the resolver thread waits this long before a lookup */
};

/* The built-in default. */
void config_default(struct node_config *c);
/* Applies one "key value..." setting. Returns 0, or -1 with a message in err. */
int config_set(struct node_config *c, const char *key, const char *value, char *err, size_t len);
/* Reads a file of settings. Returns 0 or -1 with "file:line: message" in err. */
int config_load_file(struct node_config *c, const char *path, char *err, size_t len);
/* Checks the whole configuration (this node in the node list, ports, G and W). */
int config_validate(const struct node_config *c, char *err, size_t len);
/* Writes every setting as a config file would hold it (--dump-config). */
void config_write(const struct node_config *c, FILE *f);
/* Writes a commented config file (--sample-config): a heading per group of settings, and per
 * setting its description and a "setting value" line, commented out where c holds the
 * built-in default. */
void config_write_sample(const struct node_config *c, FILE *f);
/* Writes one line per setting: "--setting ARG" and a short description (--help). */
void config_write_help(FILE *f);
/* A setting's value as the config file names it (INFO prints them too). */
const char *config_wal_sync_name(enum wal_sync_method m);
const char *config_wal_prepare_name(enum wal_prep_method m);
const char *config_net_batching_name(enum net_batching b);
/* This node's entry in the node list (validated to exist). */
const struct node_address *config_self(const struct node_config *c);
const struct node_address *config_node(const struct node_config *c, raft_node id);
/* Parses "ID=host:port[@peerport]" (peer port defaults to port + 10000). 0 or -1. */
int config_parse_node(const char *item, struct node_address *a);

#endif
