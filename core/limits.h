/* Every limit of the core, in one place: what it bounds, why this value. Decoders enforce
 * them on input from peers; the core asserts them on its own output. */
#ifndef RR_CORE_LIMITS_H
#define RR_CORE_LIMITS_H

/* Members (voters + learners) of one configuration. A joint configuration is the union of
 * old and new, so replacing all of a 7-node cluster needs 14; 16 leaves room. */
#define RAFT_MEMBERS_MAX 16

/* Largest node id accepted on the wire. Ids are small integers chosen by the operator. */
#define RAFT_NODE_ID_MAX 1024

/* Entries in one AppendEntries message, and their payload bytes. A follower in the
 * replicate state receives a stream of these; the values keep one message well under the
 * frame limit while amortising per-message costs. */
#define RAFT_APPEND_ENTRIES_MAX 256
#define RAFT_APPEND_BYTES_MAX   (1u << 20)

/* Payload bytes of one entry (a client command). Redis's default proto-max-bulk-len is
 * 512 MiB; a replicated log keeps entries small so one cannot stall a pipeline. */
#define RAFT_ENTRY_BYTES_MAX (1u << 20)

/* Per-follower in-flight window (etcd's MaxInflightMsgs / MaxInflightBytes). */
#define RAFT_INFLIGHT_COUNT_MAX 64
#define RAFT_INFLIGHT_BYTES_MAX (8u << 20)

/* Bytes of one InstallSnapshot chunk (a follower's core holds one at most while a transfer
 * runs), and of a whole snapshot image: a bound on sizes and offsets only, since the core
 * keeps no image (the caller stores and reads it). */
#define RAFT_SNAPSHOT_CHUNK_BYTES (256u << 10)
#define RAFT_SNAPSHOT_BYTES_MAX   (1ull << 40)

/* Entries handed out to apply in one ready batch: bounds the work of one drain. */
#define RAFT_APPLY_ENTRIES_MAX 1024

/* Outstanding ReadIndex requests per group. */
#define RAFT_READS_MAX 4096

/* Uncommitted proposal bytes a leader accepts before refusing with RR_EBUSY. */
#define RAFT_UNCOMMITTED_BYTES_MAX (64u << 20)

/* Messages one group may emit in one ready batch (a leader with 15 followers emits a few
 * per follower per tick). */
#define RAFT_READY_MSGS_MAX 256

/* Groups in one group table (one worker). */
#define RAFT_GROUPS_MAX 65536

/* Bytes of one encoded batch (all messages of one drain for one peer). */
#define RAFT_BATCH_BYTES_MAX (64u << 20)

_Static_assert(RAFT_APPEND_BYTES_MAX >= RAFT_ENTRY_BYTES_MAX, "an entry must fit a message");
_Static_assert(RAFT_BATCH_BYTES_MAX > RAFT_APPEND_BYTES_MAX + RAFT_SNAPSHOT_CHUNK_BYTES,
               "a message must fit a batch");
_Static_assert(RAFT_MEMBERS_MAX <= 64, "member sets are 64-bit masks in places");

#endif
