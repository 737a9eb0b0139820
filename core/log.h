/* The in-memory Raft log of one group: every entry since the last compaction, owned copies. */
#ifndef RR_CORE_LOG_H
#define RR_CORE_LOG_H

#include "core/msg.h"

/* entries[i] has index prev_index + 1 + i. Entry data lives in a list of chunks, appended
 * in index order (NULL when empty): one allocation per chunk, not per entry. Chunks grow
 * from LOG_CHUNK_MIN to LOG_CHUNK_MAX bytes as the log does (an idle group's log stays
 * small); an entry larger than that gets a chunk of its own. A compaction frees the chunks
 * below it, a truncation frees the chunks above it and rewinds the one it falls in.
 *
 * Persistence bookkeeping: entries up to `handed` were handed out in a ready batch for the
 * caller to persist; entries up to `persisted` are known durable (persisted <= handed <=
 * last). A truncation of handed-out entries raises a barrier: a persist notice from a batch
 * handed out before the truncation vouches only for the entries below the barrier, because
 * the same (index, term) may reappear later from another leader (an A-B-A replacement).
 *
 * Released data: log_release_to frees the chunks of entries every replica is known to have
 * (raft_options.release_applied), up to `released`. Those entries keep their slots (term,
 * type, length) with data.base NULL, except configuration entries, whose data is copied into
 * an allocation of its own (`owned` of them) so that the configuration at any index stays
 * known. The caller reads released data back from its durable log when a follower needs it
 * (core/drain.h, drain_ops.entries_read). */
struct log_chunk;

struct raft_log {
    struct raft_entry *entries; /* malloc'd array, `cap` slots, `count` used */
    struct log_chunk *oldest;   /* entry data, oldest chunk first; NULL when none */
    struct log_chunk *newest;   /* where the next entry's data goes */
    /* Entries in memory and slots: below 2^31, as log_reserve refuses more (RR_ENOMEM: the
     * array alone would take 80 GiB). */
    uint32_t count;
    uint32_t cap;
    raft_index prev_index;    /* last compacted index (0 at the start of time) */
    raft_term prev_term;      /* its term */
    raft_index persisted;     /* last index known durable; <= handed */
    raft_index handed;        /* last index handed out for persistence; <= last */
    raft_index released;      /* data of the entries up to here released (<= persisted) */
    uint32_t owned;           /* released configuration entries holding a copy of their data */
    raft_index barrier_index; /* 0: none; else the lowest index replaced since ... */
    uint64_t barrier_seq;     /* ... the batch with this sequence number was handed out */
    uint64_t seq_next;        /* sequence number of the next batch handed out; from 1 */
};

void log_init(struct raft_log *l, raft_index prev_index, raft_term prev_term);
void log_free(struct raft_log *l);

raft_index log_first_index(const struct raft_log *l);
raft_index log_last_index(const struct raft_log *l);
raft_term log_last_term(const struct raft_log *l);
/* Term at index; 0 when unknown (compacted, or past the end). prev_index's term is known. */
raft_term log_term(const struct raft_log *l, raft_index index);
/* Entry at index, or NULL if not in memory. */
const struct raft_entry *log_entry(const struct raft_log *l, raft_index index);

/* Appends one entry at last + 1 with a copy of data. RR_ENOMEM leaves the log unchanged. */
int log_append(struct raft_log *l, raft_term term, uint8_t type, const uint8_t *data, uint32_t len);
/* Makes room for `more` entries so that the next `more` appends cannot fail on the array. */
int log_reserve(struct raft_log *l, uint64_t more);
/* Removes the entries from index on (index > prev_index). Lowers handed/persisted and raises
 * the persistence barrier if handed-out entries are removed. */
void log_truncate_from(struct raft_log *l, raft_index index);
/* Releases the data of entries up to index (<= persisted; see `released`): frees each chunk
 * whose entries are all at or below it, except the newest, which the next append fills.
 * Returns the bytes of entry data freed. */
uint64_t log_release_to(struct raft_log *l, raft_index index);
/* Drops entries up to index (prev_index < index <= last) after a snapshot. */
void log_compact_to(struct raft_log *l, raft_index index);
/* After installing a snapshot at (index, term): keeps the entries after index if the log
 * holds (index, term), else drops them all. The entries kept are to be handed out again,
 * because the snapshot replaces the whole durable log. */
void log_install_snapshot(struct raft_log *l, raft_index index, raft_term term);

/* Paper §5.4.1: "the log with the later term is more up-to-date; if the logs end with the
 * same term, then whichever log is longer is more up-to-date". True if (last_index,
 * last_term) is at least as up to date as this log. */
bool log_is_up_to_date(const struct raft_log *l, raft_index last_index, raft_term last_term);
/* The largest index <= index whose term is <= term (or prev_index if none is known): the
 * fast back-tracking hint (etcd's findConflictByTerm). */
raft_index log_find_conflict_by_term(const struct raft_log *l, raft_index index, raft_term term);

/* Chunks holding entry data (for tests and accounting). */
uint32_t log_chunk_count(const struct raft_log *l);

/* A persist notice: batch `seq` (0: unsequenced) made entries up to (index, term) durable.
 * Returns true if `persisted` advanced. */
bool log_persisted_to(struct raft_log *l, raft_index index, raft_term term, uint64_t seq);

#endif
