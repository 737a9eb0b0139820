/* The node's runtime: shared types of the worker loop (worker.c), connections (conn.c),
 * peers (peer.c), clients (client.c) and request routing (route.c). docs/node.md describes
 * the design; this header is internal to io/.
 *
 * Threads. A node is one process with W workers, each a thread that owns one io_uring, one
 * group table (core/multi), one WAL, its groups' state machines, its peer connections (one
 * per other node) and the client connections it accepted. Workers share nothing mutable
 * except: the SPSC hand-off queues between them (route.c), and the published per-group view
 * (struct group_pub: written only by the owning worker, read by anyone, relaxed atomics) that
 * CLUSTER SLOTS, RAFT STATUS and routing decisions of other workers read. */
#ifndef RR_IO_NODE_H
#define RR_IO_NODE_H

#include <liburing.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>

#include "core/base/version.h"
#include "core/drain.h"
#include "core/multi.h"
#include "io/config.h"
#include "io/kernel.h"
#include "io/service/cmd.h"
#include "io/service/reply.h"
#include "io/service/resp.h"
#include "io/service/sm.h"
#include "io/slowlog.h"
#include "storage/wal.h"

#define NODE_WORKERS_MAX 64

/* Applying a group's committed batch (worker.c, op_apply_ahead), how many entries ahead of
 * the apply the entries' bytes are prefetched, then sm_ahead_start, sm_ahead_finish and
 * sm_ahead_deep run. */
#define APPLY_AHEAD_FETCH  12u
#define APPLY_AHEAD_START  8u
#define APPLY_AHEAD_FINISH 4u
#define APPLY_AHEAD_DEEP   2u
#define APPLY_AHEAD_RING   16u /* a power of two above APPLY_AHEAD_START */

/* Top byte of an SQE's user_data: what completed. The rest is a pointer (user space
 * pointers fit 56 bits) or a small value. */
enum ud_tag {
    UD_WAL = 0x01, /* the WAL's own (wal_config.user_data_tag) */
    UD_RECV = 0x10,
    UD_SEND = 0x11,
    UD_CLOSE = 0x12,
    UD_CONNECT = 0x13,
    UD_SNAP = 0x14,     /* a snapshot file operation: the pointer is a struct snap_op */
    UD_SHUTDOWN = 0x15, /* a lingering close's shutdown of the write side */
    UD_ACCEPT_CLIENT = 0x20,
    UD_ACCEPT_PEER = 0x21,
    UD_ACCEPT_METRICS = 0x22,
    UD_TICK = 0x30,
    UD_WAKE = 0x31,   /* MSG_RING from another worker, or the wake eventfd read */
    UD_IGNORE = 0x3f, /* completions nobody waits for (cancels, MSG_RING sender side) */
};
#define UD_MAKE(tag, ptr) (((uint64_t)(tag) << 56) | (uint64_t)(uintptr_t)(ptr))
#define UD_TAG(ud)        ((uint8_t)((ud) >> 56))
#define UD_PTR(ud)        ((void *)(uintptr_t)((ud) & ((1ull << 56) - 1)))

/* ---- connections (conn.c) ---------------------------------------------------------- */

enum conn_kind { CONN_CLIENT = 1, CONN_PEER = 2, CONN_METRICS = 3 };

struct conn_buf {
    uint8_t *buf;
    size_t len, cap;
    uint32_t frames; /* peer frames in it (peer connections): one send batch once it is sent */
};

/* A socket with an input buffer and double-buffered output: bytes are appended to `out[fill]`
 * while `out[!fill]` is being sent; a send in flight is one SQE at a time. */
struct conn {
    struct worker *w;
    int fd;
    uint8_t kind;
    bool recv_pending;
    bool send_pending;
    bool closing; /* close requested: no new I/O; freed when nothing is in flight */
    bool close_submitted;
    bool paused;            /* the owner stopped reading (limits); it resumes it */
    bool multishot;         /* the recv in flight is multishot (provided buffers) */
    bool cancel_sent;       /* a cancel of that recv is in flight (paused) */
    bool close_after_flush; /* close once the output is sent (a refusal, QUIT) */
    bool lingering;         /* output sent and write side shut: input discarded until EOF */
    bool shutdown_pending;  /* that shutdown is in flight: the fd is not closed before it ends */
    uint8_t *in;
    size_t in_len, in_cap, in_max;
    struct conn_buf out[2];
    uint8_t fill;             /* which out buffer collects new bytes */
    size_t sent;              /* bytes of out[!fill] already sent */
    size_t out_max;           /* bytes both buffers may hold together */
    uint64_t id;              /* unique within the node */
    void *owner;              /* struct client or struct peer */
    struct conn *next;        /* worker's list of connections with output to flush */
    bool queued;              /* on that list */
    struct conn *linger_next; /* worker's list of lingering connections */
    int64_t linger_until_ms;
    size_t linger_bytes; /* input discarded while lingering */
    bool busy;           /* bytes came in or were queued out since the last conn_trim */
};

/* ---- requests (route.c) --------------------------------------------------------------- */

enum req_state {
    REQ_NEW = 0,
    REQ_WAITING,   /* no leader known (or busy): retried on a leader change or a tick */
    REQ_PROPOSED,  /* this node leads: entry at (index, term) */
    REQ_READING,   /* this node leads: ReadIndex with ctx = req id */
    REQ_FORWARDED, /* sent to the leader's node, id in the forward map */
    REQ_BLOCKED,   /* an XREAD BLOCK with nothing to return yet: on its group's blocked list */
    REQ_PARKED,    /* a membership part this leader cannot place yet (a change in flight, a
                      learner catching up, a transfer under way): on the worker's parked
                      list, placed again at every sweep without holding up the group */
    REQ_DONE,
};

enum req_origin {
    ORIGIN_CLIENT = 1, /* a client connection of worker `origin_worker` on this node */
    ORIGIN_PEER = 2,   /* forwarded to us by node `origin_node` (same worker) */
    ORIGIN_FANOUT = 3, /* one group's part of a node command over every group */
};

struct req {
    /* First 64 bytes (pooled requests are 64-byte aligned): what finding a request by id
     * and taking it off its lists touches, so a forward's reply, arriving when the request
     * has long left the cache, misses one line of it instead of three. */
    uint64_t id; /* unique within the node: read ctx and forward id */
    uint8_t state;
    uint8_t origin;
    uint8_t cls;        /* CMD_WRITE / CMD_READ, or REQ_INTERNAL_* for fan-out parts */
    bool not_leader;    /* ORIGIN_PEER: answer "not the leader" instead of a reply */
    bool answered;      /* set on the origin worker only: the reply may be written (the owner's
                           `state` is not read across threads) */
    bool maybe_applied; /* was proposed or forwarded once: a failure must say "unknown" */
    bool redirect_ok;   /* may answer -MOVED (client in redirect mode) */
    bool pooled;        /* its allocation is REQ_POOL_BYTES: it goes back to the worker's pool */
    struct req *hnext;  /* id map chain */
    struct req *list_prev, *list_next; /* the owner's list for `state` */
    struct req *conn_next;             /* client's in-order list */
    raft_node forwarded_to;
    raft_node forwarded_before; /* where it went before a leader change sent it elsewhere */
    raft_group group;
    uint32_t origin_worker;
    /* Then the reply and what completing it reads. */
    struct reply reply;
    void *client;       /* ORIGIN_CLIENT: the struct client, on origin_worker */
    struct req *parent; /* ORIGIN_FANOUT */
    uint64_t cost;      /* bytes charged to the worker's in-flight budget */
    int64_t start_ns;   /* monotonic: when it was parsed (latency, SLOWLOG) */
    bool failed;        /* fan-out parent: a part failed (its error is the reply) */
    bool scan_cursor;   /* a SCAN: the reply's cursor is turned into the node-wide one */
    bool budget_waited; /* held back at worker-uncommitted-limit (counted once) */
    uint16_t slot;
    raft_node origin_node;
    uint64_t origin_id; /* ORIGIN_PEER: the forwarder's id */
    int64_t sum;        /* fan-out parent: DBSIZE total, or keys gathered */
    uint64_t client_id, seq;
    uint64_t first_unacked; /* writes: the client's oldest write without a delivered reply */
    int64_t deadline_ms;
    raft_index index; /* REQ_PROPOSED */
    raft_term term;
    uint32_t argc;
    const uint8_t **argv;
    uint32_t *argl;
    uint8_t *args;          /* argv points into this copy */
    struct member_job *job; /* a RAFT ADDNODE/PROMOTE/REMOVENODE/TRANSFER parent (members.c) */
    uint32_t children_left;
    struct req *all_prev, *all_next; /* the owner worker's in-flight list (timeouts) */
    struct sm_xread_wait *wait;      /* REQ_BLOCKED: what it waits for (owned) */
    /* Set by the origin worker when the client goes away while the request is in flight:
     * the owner then ends a blocked read at once instead of at its timeout. */
    _Atomic bool cancelled;
};

/* Internal classes of fan-out parts (not in the command table). */
enum {
    REQ_INTERNAL_DBSIZE = 0x40,
    REQ_INTERNAL_SCAN = 0x41,
    REQ_INTERNAL_SNAPSHOT = 0x42, /* RAFT SNAPSHOT g: served by the owner worker, locally */
    REQ_INTERNAL_DIGEST = 0x43,   /* RAFT DIGEST g: the same */
    REQ_INTERNAL_MEMBER = 0x44,   /* args: op (learner, voter, remove, transfer), node id */
    REQ_INTERNAL_NODESET = 0x45,  /* group 0; args: op (add, remove), id, host, port, peer port */
};
/* How long a membership part may take (a learner catching up before its promotion). */
#define MEMBER_TIMEOUT_MS 60000

struct req_list {
    struct req *head, *tail;
    uint32_t count;
};

/* ---- peers (peer.c) -------------------------------------------------------------------- */

enum peer_state { PEER_DOWN = 0, PEER_CONNECTING, PEER_HANDSHAKE, PEER_UP };

struct peer {
    raft_node id;
    uint8_t state;
    bool dialer; /* this node dials (lower id dials) */
    struct conn *conn;
    bool removed;            /* no longer in the node set: never dialed, its handshakes refused */
    bool resolved;           /* addr holds at's address (dialers resolve before dialing) */
    bool resolving;          /* a lookup of at.host for resolve_gen is with the resolver */
    uint64_t resolve_gen;    /* the peer's generation: an answer of another one is stale */
    struct node_address at;  /* its address in the node set */
    struct sockaddr_in addr; /* its peer port for this worker */
    int64_t next_dial_ms;
    uint32_t backoff_ms;
    uint64_t frames_in, frames_out, bytes_in, bytes_out;
    uint64_t dropped_frames; /* output over the limit, or down */
    uint64_t bad_frames;     /* closed for a failed check */
    uint64_t connects;
    struct req_list forwarded; /* requests forwarded to this peer, oldest first */
    /* Forward batching (io/wire/forward.h): the peer announced FORWARD_FEATURE_BATCH on this
     * connection; the batch frame being filled at the end of the connection's output (type
     * 0: none), at batch_off of out[fill], batch_len payload bytes so far. */
    bool batch_ok;
    uint16_t batch_type;
    size_t batch_off, batch_len;
};

/* ---- snapshots (snapshot.c) ------------------------------------------------------------ */

struct worker;

/* A snapshot file operation on the worker's ring; its completion calls cb. */
struct snap_op {
    void (*cb)(struct worker *w, struct snap_op *op, int res);
    void *owner; /* what cb works on */
};

/* A point in the worker's persist queue that waits until a snapshot file is durable (the
 * WAL records behind it must not become durable before the file). */
struct snap_barrier {
    bool done;
};

struct snap_job;  /* the local snapshot being written */
struct snap_rx;   /* a snapshot being received from the leader */
struct snap_read; /* a chunk being read from a snapshot file, for a follower */
struct snap_fd;   /* a snapshot file open for sending */

/* The node's verdict on a received snapshot, given to the core outside drains. */
struct snap_verdict {
    raft_group g;
    raft_index index;  /* the snapshot's (for the log) */
    uint64_t transfer; /* the transfer it is about (raft_snapshot_chunk.transfer) */
    bool ok;
};

/* ---- per-group state on the owner worker ------------------------------------------------ */

struct group_state {
    raft_group g;
    raft_node leader;
    raft_node hs_vote; /* the hard state last written to the WAL (with hs_term) */
    uint8_t role;
    raft_term term;
    raft_term hs_term;
    /* Created when the worker opens, or loaded from the group's newest snapshot file; a
     * snapshot from the leader is loaded into it. Never NULL while the worker runs. */
    struct sm *sm;
    struct req_list proposed; /* by index */
    struct req_list reading;
    struct req_list waiting;
    /* Snapshots (snapshot.c). */
    raft_index snap_index;    /* the durable snapshot file's index (0: none) */
    raft_term snap_term;      /* its term */
    uint64_t snap_file_bytes; /* its size */
    uint64_t log_bytes;       /* entry bytes applied since it was taken (the policy's count) */
    int64_t snap_retry_ms;    /* a failed snapshot is not retried before this */
    bool snap_wanted;         /* RAFT SNAPSHOT or the policy asked for one */
    bool snap_running;        /* a local snapshot of it is being written */
    struct snap_rx *rx;       /* a snapshot from the leader being installed, or NULL */
    struct req_list blocked;  /* XREAD BLOCK waiting for writes, oldest first */
    bool wake_queued;         /* on the worker's wake list */
    struct group_state *wake_next;
    /* On the worker's queue of groups held back at worker-uncommitted-limit (route.c). */
    bool budget_queued;
    struct group_state *budget_next;
};

/* What any thread may read about a group (written by the owner only). */
struct group_pub {
    _Atomic uint32_t leader;
    _Atomic uint32_t role;
    _Atomic uint64_t term, commit, applied, last_index, snapshot_index;
    _Atomic uint32_t voters, learners; /* in the configuration in force */
    _Atomic uint32_t config_pending;   /* 1: that configuration is not committed yet */
};

/* ---- worker --------------------------------------------------------------------------- */

/* Single-producer single-consumer queue of request pointers between two workers. */
#define XQ_SLOTS 16384
struct xq {
    _Alignas(64) _Atomic uint64_t head; /* consumer */
    _Alignas(64) _Atomic uint64_t tail; /* producer */
    _Alignas(64) struct req *slot[XQ_SLOTS];
};

struct pending_append; /* worker.c */
struct held_unit;

/* A latency histogram published for INFO and the metrics endpoint: cumulative counts at the
 * fixed bounds of metrics.c (Prometheus's `le` buckets), the count and the sum. */
#define PUB_HIST_BOUNDS 16
/* A size distribution (records per WAL flush, frames per peer send batch) published the same
 * way at the bounds of metrics.c's metric_size_bounds: cumulative counts, since start, so a
 * reader subtracts two readings to get the distribution over the time between them. */
#define PUB_SIZE_BOUNDS 24
struct pub_sizes {
    _Atomic uint64_t le[PUB_SIZE_BOUNDS]; /* values <= metric_size_bounds[i] */
    _Atomic uint64_t count;
    _Atomic uint64_t sum;
    _Atomic uint64_t p50, p99, max;
};
struct pub_hist {
    _Atomic uint64_t le[PUB_HIST_BOUNDS]; /* values <= metric_bounds_ns[i] */
    _Atomic uint64_t count;
    _Atomic uint64_t sum_ns;
    _Atomic uint64_t p50_ns, p99_ns, p999_ns;
};

struct worker_stats {
    uint64_t loops, submits, cqes, ticks, drains;
    uint64_t proposals, applied, reads, forwards_out, forwards_in, redirects, reforwards;
    uint64_t timeouts, busy_rejects, handoffs, transfers;
    uint64_t uncommitted_waits; /* proposals put off at worker-uncommitted-limit */
    uint64_t clients_accepted, clients_closed, client_errors, commands;
    uint64_t frames_sent, frame_bytes_sent, peer_sends;
    uint64_t snapshots_taken, snapshots_installed, snapshot_failures, snapshot_bytes;
    uint64_t snapshot_last_ms;    /* duration of the last local snapshot */
    uint64_t snapshot_last_bytes; /* its file size */
    uint64_t snapshot_chunks_sent, snapshot_chunks_dropped, snapshots_refused;
    uint64_t log_reads, log_read_entries, log_reads_dropped; /* released entries (log_read.c) */
    uint64_t snapshots_dropped;        /* received transfers the core dropped, left behind */
    uint64_t snapshot_chunks_received; /* received chunks written and synced */
    uint64_t snapshot_bytes_received;  /* their bytes */
    uint64_t install_last_us;          /* the last install's barrier: WAL operations held (us) */
    uint64_t install_last_bytes;       /* that snapshot's size */
    uint64_t install_max_us;           /* the longest barrier since start */
};

/* Counters any thread may read (INFO), written by the worker once per tick. */
struct worker_pub {
    _Atomic uint64_t proposals, applied, reads, forwards_out, forwards_in, redirects, reforwards;
    _Atomic uint64_t timeouts, busy_rejects, clients_accepted, client_errors, commands;
    _Atomic uint64_t uncommitted_waits, uncommitted_bytes; /* multi_uncommitted_bytes */
    _Atomic uint64_t blocked; /* XREAD BLOCK requests waiting on this worker */
    _Atomic uint64_t wal_flushes, wal_records, wal_bytes;
    _Atomic bool wal_direct; /* the WAL writes with O_DIRECT (wal_direct_io) */
    _Atomic uint64_t frames_sent, frame_bytes_sent, peer_sends;
    _Atomic uint64_t frames_dropped, frames_bad, handshakes_refused;
    /* Raft messages received from peers, by type (multi_received), and empty APPENDs. */
    _Atomic uint64_t msgs_received[RAFT_MSG_TYPE_MAX + 1], appends_empty_received;
    /* Snapshots (local ones taken, received ones installed) and the WAL's disk use. */
    _Atomic uint64_t snapshots_taken, snapshots_installed, snapshot_failures, snapshot_bytes;
    _Atomic uint64_t snapshot_last_ms, snapshot_last_bytes;
    _Atomic uint64_t snapshot_chunks_sent, snapshot_chunks_dropped, snapshots_refused;
    _Atomic uint64_t log_reads, log_read_entries, log_reads_dropped;
    _Atomic uint64_t snapshots_dropped;
    _Atomic uint64_t snapshot_chunks_received, snapshot_bytes_received;
    _Atomic uint64_t install_last_us, install_last_bytes, install_max_us;
    _Atomic uint64_t wal_disk_bytes, wal_segments;
    _Atomic uint64_t log_freed_bytes;
    /* Latencies since start: client requests from parse to reply (by class), WAL flushes
     * (write + sync) and the wait of a unit before its flush. */
    struct pub_hist write_latency, read_latency, wal_flush, wal_queue;
    /* Batch sizes since start: records per WAL flush, frames per peer send batch. */
    struct pub_sizes wal_batch_records, peer_send_frames;
};

struct worker {
    struct worker_pub pub;
    struct node *node;
    uint32_t id;
    pthread_t thread;
    struct io_uring ring;
    bool ring_ready;
    bool use_multishot_accept;          /* configured, and not refused by the kernel */
    bool use_msg_ring;                  /* configured, and IORING_OP_MSG_RING probed */
    bool use_recv_multishot;            /* configured, and the provided-buffer ring registered */
    struct io_uring_buf_ring *buf_ring; /* provided receive buffers (conn.c) */
    uint8_t *buf_base;
    bool buf_used;     /* a provided buffer was filled since the last conn_release_buffers */
    bool buf_released; /* their pages were given back and none was filled since */
    int wake_fd;       /* eventfd: the main thread's stop signal (and the wake fallback) */
    uint64_t wake_buf;
    _Atomic bool sleeping;
    struct multi *multi;
    struct wal *wal;
    struct group_state *groups; /* by slot */
    uint32_t group_count;
    int client_lfd, peer_lfd;
    struct peer peers[RAFT_MEMBERS_MAX];
    uint32_t peer_count;              /* slots used, removed peers included */
    const struct node_set *peers_set; /* the node set `peers` was last synced with */
    struct conn *flush_list;
    struct conn *linger_list; /* connections in a lingering close (conn.c) */
    /* persistence */
    uint64_t persist_issued;                          /* WAL units issued (appended or queued) */
    uint64_t persist_durable;                         /* WAL units acknowledged */
    struct pending_append *append_head, *append_tail; /* refused with RR_EBUSY, in order */
    struct held_unit *held_head, *held_tail;          /* drain units waiting for durability */
    /* snapshots (snapshot.c) */
    int snap_dirfd; /* the WAL directory, where snapshot files live */
    char snap_dir[NODE_PATH_MAX + 32];
    struct snap_job *snap_jobs; /* local snapshots being written (SNAP_JOBS_MAX at most) */
    uint32_t snap_job_count;
    uint32_t snap_serializing;   /* jobs whose image is still being serialized */
    uint32_t snap_seq;           /* numbers temporary file names */
    uint32_t snap_scan;          /* the policy's next slot */
    uint32_t snap_wanted_count;  /* groups with snap_wanted set */
    uint64_t snap_log_bytes;     /* sum of the groups' log_bytes */
    uint64_t log_freed_bytes;    /* entry bytes compacted away by snapshots and not yet taken
                                    again by new entries: free heap, as heap_trim sees it */
    int64_t snap_pin_ms;         /* when the WAL's oldest pin was last looked up */
    raft_index *snap_candidates; /* start-up only: newest snapshot indexes per slot */
    /* Received chunks' writes, numbered so that acknowledgements wait for them (snapshot.c). */
    uint64_t fop_issued;
    uint64_t fop_done; /* every write up to this one completed */
    uint8_t *fop_ring; /* completion marks, FOP_RING entries */
    struct snap_verdict *verdicts;
    uint32_t verdict_count, verdict_cap;
    /* Sending: chunk reads waiting and in flight, and the files open for them. */
    struct snap_read *snap_read_head, *snap_read_tail;
    uint32_t snap_read_queued, snap_reads_inflight;
    /* Released entries read back from the WAL for an append (log_read.c). */
    struct log_read *log_read; /* allocated when such an append comes, freed when idle */
    bool log_read_busy;        /* its WAL read is in flight */
    int64_t log_read_used_ms;  /* when an append last needed it */
    struct snap_fd *snap_fds;
    int fatal;
    bool fatal_reported;
    /* time */
    int64_t now_ms; /* monotonic, refreshed each iteration */
    int64_t next_tick_ms;
    bool ticks_parked; /* the last wait ran past next_tick_ms: no group was awake */
    int64_t next_sweep_ms;
    int64_t next_balance_ms;
    /* Every group this worker leads prefers this node: the balance sweep has nothing to look
     * for until a group is won here or a configuration changes (both clear it). */
    bool balance_settled;
    int64_t next_publish_ms;
    uint64_t heap_trim_rss; /* worker 0: resident bytes after the last malloc_trim */
    int64_t heap_trim_ms;   /* and when */
    int statm_fd;           /* worker 0: /proc/self/statm (used_memory); -1 elsewhere */
    /* requests */
    uint64_t next_req_id;
    struct req *req_pool; /* freed requests of REQ_POOL_BYTES, linked by list_next */
    uint32_t req_pool_count;
    struct req **req_map; /* id -> req (reading, forwarded, and peer-originated) */
    uint32_t req_map_mask;
    struct req_list all;           /* every request this worker owns and has not completed */
    bool reforward_due;            /* a group's leader changed: re-check what was forwarded */
    struct req_list retry;         /* to execute again at the next iteration (decided in a drain) */
    struct req_list parked;        /* REQ_PARKED membership parts, placed again at each sweep */
    struct group_state *wake_head; /* groups with blocked reads that applied writes */
    uint32_t blocked;              /* requests in REQ_BLOCKED */
    uint64_t inflight_bytes;
    /* Groups whose next proposal waits for worker-uncommitted-limit, in the order they first
     * had to (route.c): they propose again in that order as commits make room, and no other
     * group proposes before them. budget_need: the bytes the head's refused entry needs. */
    struct group_state *budget_head, *budget_tail;
    uint64_t budget_need;
    bool budget_refused; /* a proposal was held back since route_uncommitted_resume cleared it */
    uint64_t next_client_seq;
    /* hand-off queues: in[j] from worker j, out[j] to worker j */
    struct xq **in;
    struct xq **out;
    bool wake_pending[NODE_WORKERS_MAX];
    struct req_list *outbox;    /* [W]: requests for a worker whose queue was full, in order */
    struct client *resume_head; /* clients whose paused input is parsed next iteration */
    /* clients */
    uint32_t clients;
    struct reply scratch;       /* apply replies on replicas */
    struct reply sm_scratch;    /* where every group's state machine builds a reply */
    struct sm_limits sm_limits; /* of every group's state machine */
    /* The group batch of committed entries being applied (worker.c, op_apply_ahead), and how
     * far each prefetching step has gone (APPLY_AHEAD_*); ring[i % APPLY_AHEAD_RING] is what
     * sm_ahead_start learned of entries[i]. */
    struct {
        const struct raft_entry *entries; /* NULL: no batch */
        struct group_state *gs;
        uint32_t n;
        uint32_t next;     /* entries[next] is applied next */
        uint32_t fetched;  /* bytes prefetched for entries[0, fetched) */
        uint32_t started;  /* sm_ahead_start done for entries[0, started) */
        uint32_t finished; /* sm_ahead_finish done for entries[0, finished) */
        uint32_t deep;     /* sm_ahead_deep done for entries[0, deep) */
        struct sm_ahead ring[APPLY_AHEAD_RING];
    } ahead;
    struct resp_args args;
    uint8_t *args_scratch;
    struct worker_stats st;
    struct histogram write_latency, read_latency; /* client requests, parse to reply, ns */
    struct histogram peer_send_frames;            /* frames per peer send batch */
    struct slowlog slowlog;
    int metrics_lfd; /* worker 0 with metrics-port set; else -1 */
    bool stopping;
    uint32_t accept_retries;
    uint64_t resolve_gen; /* the last peer generation given out (peer.c) */
};

/* Rates INFO and the metrics endpoint report (node.rate). */
enum node_rate {
    RATE_COMMANDS = 0,
    RATE_WAL_FLUSHES,
    RATE_WAL_BYTES,
    RATE_PEER_FRAMES,
    RATE_APPLIED,
    RATE_COUNT
};

struct node {
    struct node_config cfg;
    struct worker *workers[NODE_WORKERS_MAX];
    struct group_pub *pub; /* [G] */
    _Atomic bool stop;
    int64_t start_ms;
    char run_id[41];
    _Atomic uint64_t next_client_id;
    uint32_t boot;       /* starts of this data directory, this one included (dir/BOOT) */
    _Atomic bool failed; /* a worker hit a fatal error: the node is stopping */
    /* Resident bytes of the process, sampled by worker 0 once a second: what maxmemory is
     * compared with. */
    _Atomic uint64_t used_memory;
    /* Rare events, counted node-wide. */
    _Atomic uint64_t auth_failures;   /* AUTH or HELLO AUTH with a wrong user or password */
    _Atomic uint64_t oom_rejects;     /* writes refused past maxmemory */
    _Atomic uint64_t rejected_conns;  /* maxclients reached */
    _Atomic uint64_t protected_conns; /* non-loopback clients refused by protected mode */
    _Atomic uint64_t next_slowlog_id; /* SLOWLOG entry ids, node-wide */
    /* Per-second rates over the last 1.6 s (Redis's instantaneous_*), kept by worker 0. */
    struct rate_meter {
        uint64_t value[16];
        int64_t at_ms[16];
        uint32_t next, count;
    } meters[RATE_COUNT];
    _Atomic double rate[RATE_COUNT]; /* enum node_rate */
    _Atomic uint32_t clients;
    struct raft_config initial; /* the bootstrap configuration (DIR/BOOTSTRAP, nodeset.c) */
    /* The node set (nodeset.c): replaced, never changed in place, by worker 0 when group 0
     * applies a node-set entry; any thread reads the current one. Replaced sets are kept
     * (linked by `older`) until the process ends, so a reader's pointer stays valid. */
    _Atomic(struct node_set *) set;
    /* Fault-test build: SIGUSR1 came and the workers revert their WALs (faults.c). */
    _Atomic bool power_loss;
    /* The resolver thread (io/resolver.h): peers' host names, looked up off the loops. */
    struct resolver *resolver;
};

/* ---- the node set (nodeset.c) ------------------------------------------------------- */
/* struct node_set, its FRAME_NODESET payload, its log entry and its DIR/NODES lines:
 * io/wire/nodeset.h. */

/* Start-up: reads DIR/BOOTSTRAP into n->initial and DIR/NODES into n->set, creating them
 * from the configuration at the first start (`fresh`: the directory was just initialised).
 * -1 (logged) if a file is damaged or `join yes` lists no other node. */
int nodeset_open(struct node *n, bool fresh);
void nodeset_close(struct node *n);
const struct node_set *nodeset_get(const struct node *n);
/* Group 0 applied a node-set entry (worker 0 only): a new set is written to DIR/NODES and
 * published; entries at or below the set's index (a replay) are skipped. */
void nodeset_apply(struct worker *w, raft_index index, const uint8_t *p, size_t len);
/* A peer's set (worker 0 only): adopted, written and published if its index is above this
 * node's, else ignored. */
void nodeset_adopt(struct worker *w, const struct node_set *in, raft_node from);

/* node.c */
/* A worker can no longer do its job safely (storage failed): log why and stop the node, which
 * then exits with status 1 (its peers elect other leaders). */
void node_fail(struct node *n, const char *why);

/* faults.c: hooks of the fault-test build (RR_FAULT_TESTING, tests/faults, docs/faults.md).
 * In any other build the unsafe modes compile to false and faults_power_loss to nothing. */
#ifdef RR_FAULT_TESTING
#define FAULTS_UNSAFE(w, mode) ((w)->node->cfg.unsafe_test_mode == (mode))
#else
#define FAULTS_UNSAFE(w, mode) ((void)(w), false)
#endif
/* Called when a worker's loop has ended: if the node is losing power (SIGUSR1 with
 * test-power-loss), reaps the ring without letting the WAL see another completion, reverts
 * every byte the WAL had not synced, and returns true (the worker then exits at once). */
bool faults_power_loss(struct worker *w);

/* worker.c */
void *worker_main(void *arg);
struct io_uring_sqe *worker_sqe(struct worker *w);
struct group_state *worker_group(struct worker *w, raft_group g);
void worker_wake(struct worker *w, uint32_t to);
/* Group g's preferred leader (leader balance): the (g mod V)-th voter by id. */
raft_node worker_preferred_leader(const struct raft *r, raft_group g);

/* Persist queue (worker.c): WAL operations issued in order behind the drains' units, each
 * counted as a unit; a barrier holds everything behind it until its snapshot file is
 * durable. */
void worker_persist_compact(struct worker *w, raft_group g, raft_index index, raft_term term);
void worker_persist_truncate(struct worker *w, raft_group g, raft_index index);
void worker_persist_barrier(struct worker *w, struct snap_barrier *b);

/* snapshot.c */
/* Start-up: opens the snapshot directory (the WAL's), removes unfinished temporary files,
 * and lists each slot's snapshot files. Blocking. */
int snapshot_worker_open(struct worker *w, const char *dir);
/* What start-up restored for one group from its newest valid snapshot. */
struct snapshot_restored {
    struct raft_snapshot_meta meta; /* index 0: none found */
    struct sm *sm;                  /* the state machine loaded from it */
    uint64_t file_bytes;
    bool wal_stale; /* the WAL's entries after meta.index are of another history: dropped */
};
/* Start-up: loads group g's newest valid snapshot (blocking reads). 0 (out->meta.index 0
 * if there is none), or an error after which the node must not start (a snapshot of
 * another format version, out of memory). */
int snapshot_startup_load(struct worker *w, raft_group g, struct snapshot_restored *out);
/* The drain's persist of RAFT_READY_SNAPSHOT_DROPPED: frees the transfer being received. */
void snapshot_persist_dropped(struct worker *w, struct group_state *gs);
/* RAFT SNAPSHOT: asks for a snapshot of gs; *index is the applied index it will cover, 0
 * if the latest snapshot already covers it. */
void snapshot_request(struct worker *w, struct group_state *gs, raft_index *index);
/* A committed entry of `bytes` payload was applied to gs (the policy counts log bytes). */
void snapshot_on_apply(struct worker *w, struct group_state *gs, uint32_t bytes);
/* True while a snapshot's serialization can go on now: the loop must not sleep. */
bool snapshot_busy(const struct worker *w);
/* Each loop iteration: starts a wanted snapshot, advances the one being written. */
void snapshot_pump(struct worker *w);
void snapshot_handle_cqe(struct worker *w, struct snap_op *op, int res);
/* The drain's persist of a received snapshot chunk: checked, loaded into a fresh state
 * machine, written to the transfer's temporary file (its acknowledgement waits for it). */
void snapshot_persist_chunk(struct worker *w,
                            struct group_state *gs,
                            const struct raft_snapshot_chunk *ch);
/* Gives the core the verdicts on received snapshots (outside drains). */
void snapshot_verdicts(struct worker *w);
/* The drain's persist of a snapshot installed from the leader: its file becomes the group's
 * snapshot, and the WAL's truncation and compaction wait behind the file's durability. */
void snapshot_persist_install(struct worker *w,
                              struct group_state *gs,
                              const struct raft_ready *rd);
/* The drain's request for a chunk of gs's snapshot to send (core/drain.h, snapshot_read). */
void snapshot_read_chunk(struct worker *w, struct group_state *gs, const struct raft_msg *m);
/* Every sweep: closes idle snapshot files. */
void snapshot_sweep(struct worker *w);

/* log_read.c: the drain's request to send an append whose entries' data the core released
 * (core/drain.h, entries_read): reads them back from the WAL and sends it, now or when the
 * read completes, or drops it (the core sends again). */
void log_read_entries(struct worker *w, raft_group g, const struct raft_msg *m);
/* Every sweep: frees the read slot (about 1 MiB) once no append has needed it for a while. */
void log_read_sweep(struct worker *w);
/* The drain's restore: swaps the loaded state in. */
void snapshot_restore(struct worker *w, struct group_state *gs, const struct raft_snapshot_meta *m);

/* conn.c */
struct conn *conn_new(struct worker *w, int fd, uint8_t kind, size_t in_max, size_t out_max);
void conn_start_recv(struct conn *c);
/* Registers the worker's provided-buffer ring for multishot recv; false if unavailable. */
bool conn_setup_buffers(struct worker *w);
/* Start-up: whether the kernel takes a multishot recv on the buffer ring (1, 0, or a
 * negative errno if the probe could not run; kernel_probe_multishot_recv). */
int conn_probe_recv_multishot(struct worker *w);
/* Gives the provided receive buffers' pages back to the kernel if none was filled since
 * the previous call and nothing can fill one meanwhile (see conn.c). Called about once a
 * second. */
void conn_release_buffers(struct worker *w);
/* Stops a multishot recv of a connection the owner paused (its input stays bounded). */
void conn_pause(struct conn *c);
/* Appends bytes to the output; false if over the limit (nothing appended). */
bool conn_write(struct conn *c, const void *p, size_t n);
/* Reserves n bytes at the end of the output and returns them (NULL: over the limit). */
uint8_t *conn_reserve(struct conn *c, size_t n);
void conn_flush_later(struct conn *c);
void conn_flush_all(struct worker *w);
/* Starts a send now if none is in flight (net-batching none). */
void conn_send_now(struct conn *c);
void conn_close(struct conn *c);
/* Closes once the output already queued has been sent; reads no more. */
void conn_close_after_flush(struct conn *c);
/* A descriptor that never became a connection: closed through the ring. */
void conn_close_fd(struct worker *w, int fd);
/* Sends msg (static storage: it must outlive the send) and closes fd, through the ring,
 * without waiting: a refusal at accept. */
void conn_refuse_fd(struct worker *w, int fd, const char *msg, size_t len);
void conn_linger_expire(struct worker *w);
/* After an operation of a closing connection completed outside conn_handle_cqe. */
void conn_settle(struct conn *c);
void conn_consume(struct conn *c, size_t n);
/* Gives back buffer space a connection holds without using it (an idle connection's share
 * of a past burst): output buffers above a small size that hold nothing and are not being
 * sent, and an empty input buffer grown past its initial size, once there was no traffic
 * since the previous call. Called about once a second. */
void conn_trim(struct conn *c);
size_t conn_output_bytes(const struct conn *c);
/* CQE handlers; return the conn's events to its owner. */
void conn_handle_cqe(struct worker *w, uint8_t tag, struct conn *c, int res, uint32_t flags);

/* peer.c */
int peer_setup(struct worker *w);
/* Brings the worker's peers in line with the node set after it changed (cheap otherwise):
 * new nodes get a peer (dialed if this node's id is lower), removed ones are disconnected
 * and never dialed again, a changed address reconnects. Called every tick. */
void peer_sync(struct worker *w);
/* A listening TCP socket on host:port (start-up only: resolves and binds, blocking). -1 on
 * failure (logged). */
int node_listen(const char *host, uint16_t port, bool reuseport);
void peer_tick(struct worker *w);
/* Whether a peer connection waits to be dialled (peer_tick dials it when its backoff ends). */
bool peer_dial_waiting(const struct worker *w);
void peer_on_recv(struct conn *c);
void peer_on_closed(struct conn *c);
void peer_on_connected(struct worker *w, struct conn *c, int res);
void peer_accepted(struct worker *w, int fd);
struct peer *peer_find(struct worker *w, raft_node id);
void peer_send_raft(struct worker *w, raft_node to, const uint8_t *batch, size_t len);
/* Sends one Raft message alone in a batch (a snapshot chunk or an append read back from the
 * WAL, sent outside a drain); false if it could not be encoded. */
bool peer_send_msg(struct worker *w, const struct raft_msg *m);
/* Sends a frame of `type` whose payload is the concatenation of the parts. */
bool peer_send_frame(
    struct peer *p, uint16_t type, const void *a, size_t alen, const void *b, size_t blen);
/* Most bytes of a forward batch's payload. */
#define PEER_BATCH_MAX (64u << 10)
/* A forward (batch_type FRAME_FORWARD_BATCH) or a forward's reply (FRAME_FORWARD_REPLY_BATCH)
 * of len bytes for p, built in place: a record of the batch frame being filled for p when p
 * takes batches (it announced them, and net-batching is not none) and the record fits, else
 * a frame of its own (FRAME_FORWARD, FRAME_FORWARD_REPLY). Returns where the len bytes go
 * (NULL: not sent, counted as peer_send_frame counts it); the caller writes them at once and
 * calls peer_forward_end with the same `batched`. A batch frame is finished (its length and
 * checksum) before anything else is written to p's output and before that output is sent
 * (peer_batch_close). */
uint8_t *peer_forward_begin(struct peer *p, uint16_t batch_type, size_t len, bool *batched);
void peer_forward_end(struct peer *p, uint8_t *payload, bool batched);
void peer_batch_close(struct peer *p);
/* Counts a failed check of a peer's frame, logs why, and closes the connection. */
void peer_bad_frame(struct peer *p, const char *why);

/* client.c */
void client_accepted(struct worker *w, int fd);
void client_on_recv(struct conn *c);
void client_on_closed(struct conn *c);
void client_req_done(struct worker *w, struct req *r);

/* route.c */
struct req *
req_new(struct worker *w, uint32_t argc, const uint8_t *const argv[], const size_t argl[]);
void req_free(struct worker *w, struct req *r);
void route_submit(struct worker *w, struct req *r);  /* on the origin worker */
void route_execute(struct worker *w, struct req *r); /* on the owner worker */
void route_complete(struct worker *w, struct req *r);
void route_handoffs(struct worker *w);
/* ahead: what sm_ahead_start/finish learned of e, or NULL. */
void route_on_apply(struct worker *w,
                    struct group_state *gs,
                    const struct raft_entry *e,
                    const struct sm_ahead *ahead);
void route_on_read(struct worker *w, struct group_state *gs, uint64_t ctx);
void route_on_role(struct worker *w, struct group_state *gs);
void route_on_read_failed(struct worker *w, struct group_state *gs, uint64_t ctx);
/* The group's state machine was replaced by a snapshot at meta's (index, term): proposals it
 * may cover, or that it proves failed, are retried (client sessions keep them exactly once). */
void route_on_restore(struct worker *w, struct group_state *gs, raft_index index, raft_term term);
void route_sweep(struct worker *w);
/* After drains: the groups held back at worker-uncommitted-limit propose again, in order,
 * while commits have made room. */
void route_uncommitted_resume(struct worker *w);
void route_on_forward(struct peer *p, const uint8_t *payload, size_t len);
void route_on_forward_reply(struct peer *p, const uint8_t *payload, size_t len);
/* A FRAME_FORWARD_BATCH or FRAME_FORWARD_REPLY_BATCH: each record as route_on_forward or
 * route_on_forward_reply; an empty or malformed batch closes the connection. */
void route_on_forward_batch(struct peer *p, uint16_t type, const uint8_t *payload, size_t len);
void route_on_forward_cancel(struct peer *p, const uint8_t *payload, size_t len);
void route_wake_blocked(struct worker *w);
void route_peer_down(struct worker *w, struct peer *p);
/* route_submit from anywhere, a drain included: placed at the next iteration. */
void route_submit_later(struct worker *w, struct req *r);

/* members.c: RAFT ADDNODE / PROMOTE / REMOVENODE / TRANSFER at the origin worker. Takes r
 * (a RAFT command's request, not yet enqueued) and answers it when the job ends: true. False
 * (r not taken) with an error in r->reply if the command is malformed. */
bool members_request(struct client *cl,
                     struct req *r,
                     uint32_t argc,
                     const uint8_t *const argv[],
                     const size_t argl[]);
/* A part of a membership job completed (on the origin worker). */
void members_part_done(struct worker *w, struct req *part);
/* client.c */
void client_enqueue_req(struct client *cl, struct req *r);
void req_list_push(struct req_list *l, struct req *r);
void req_list_remove(struct req_list *l, struct req *r);

#endif
