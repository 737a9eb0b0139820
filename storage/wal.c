/* The write-ahead log of one worker: appends, flushing, the strategies, segment lifetime,
 * open and close. The on-disk format, the replay rule and the recovery rules are described
 * once, at the top of storage/wal_format.h.
 *
 * WRITING: a flush is a write of consecutive records then a data sync, never larger than
 * WAL_FLUSH_BYTES_MAX, never spanning two segments; one is in flight at a time. A persist
 * unit is acknowledged only after the sync covering its last record completed, so units
 * complete in submission order. When a unit does not fit the active segment, a seal record
 * ends it and the prepared spare becomes active; the next spare is prepared through the ring
 * (wal_segment.c), from a retired segment when one is free.
 *
 * LOG POSITIONS: in memory a record is located by its lsn, a byte position that runs on
 * across segments: the first record byte of a segment has the lsn where the previous
 * segment's seal ended. File offset = 4096 + lsn - segment lsn_start. The same lsn indexes
 * the cache: a ring of the most recent cache_bytes of records (byte L at L mod size), which
 * doubles as the write buffer and serves reads of recent entries.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/base/assert.h"
#include "core/base/errors.h"
#include "storage/wal_internal.h"

uint64_t wal_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void wal_fail(struct wal *wal, int code, const char *fmt, ...)
{
    RR_ASSERT(code < 0);
    if (wal->error != 0) {
        return; /* the first fatal error is the one that explains the others */
    }
    wal->error = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(wal->error_msg, sizeof(wal->error_msg), fmt, ap);
    va_end(ap);
}

int wal_error(const struct wal *wal)
{
    return wal->error;
}

const struct wal_recovery *wal_recovery_report(const struct wal *wal)
{
    return &wal->recovery;
}

const char *wal_error_message(const struct wal *wal)
{
    return wal->error != 0 ? wal->error_msg : "";
}

size_t wal_index_bytes_per_entry(void)
{
    return sizeof(struct wal_loc);
}

bool wal_sq_room(struct wal *wal, unsigned n)
{
    if (io_uring_sq_space_left(wal->ring) >= n) {
        return true;
    }
    /* SQ full: hand what is queued to the kernel. That can fail (say, -EBUSY while the CQ
     * overflows): the work then waits for the caller's next submit and wal_submit. */
    WAL_BEFORE_SUBMIT(wal->ring);
    int rc = WAL_FAULT(WAL_FP_SUBMIT, io_uring_submit(wal->ring));
    return rc >= 0 && io_uring_sq_space_left(wal->ring) >= n;
}

struct io_uring_sqe *wal_sqe(struct wal *wal, enum wal_op op, uint64_t id)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(wal->ring);
    RR_ASSERT(sqe != NULL && "the caller reserved room with wal_sq_room");
    RR_ASSERT(id < (1ull << 48));
    io_uring_sqe_set_data64(sqe, wal->user_tag | ((uint64_t)op << 48) | id);
    wal->inflight++;
    return sqe;
}

bool wal_busy(const struct wal *wal)
{
    return wal->inflight > 0;
}

struct wal_group_state *wal_group(const struct wal *wal, raft_group group)
{
    if (group >= wal->cfg.group_count || group % wal->cfg.worker_count != wal->cfg.worker_id) {
        return NULL;
    }
    return &wal->groups[group / wal->cfg.worker_count];
}

/* ---- strategies ------------------------------------------------------------------------ */

int wal_strategy_parse(const char *text, struct wal_strategy *out)
{
    memset(out, 0, sizeof(*out));
    char *end = NULL;
    if (strcmp(text, "none") == 0) {
        out->kind = WAL_STRATEGY_NONE;
        return RR_OK;
    }
    if (strcmp(text, "adaptive") == 0) {
        out->kind = WAL_STRATEGY_ADAPTIVE;
        return RR_OK;
    }
    const char *arg = NULL;
    if (strncmp(text, "fixed:", 6) == 0) {
        out->kind = WAL_STRATEGY_FIXED;
        arg = text + 6;
    } else if (strncmp(text, "linger:", 7) == 0) {
        out->kind = WAL_STRATEGY_LINGER;
        arg = text + 7;
    } else {
        return RR_EINVAL;
    }
    errno = 0;
    unsigned long v = strtoul(arg, &end, 10);
    if (errno != 0 || end == arg || *end != '\0' || v == 0 || v > 10000000ul) {
        return RR_EINVAL;
    }
    out->param = (uint32_t)v;
    return RR_OK;
}

const char *wal_strategy_format(const struct wal_strategy *s, char *buf, size_t len)
{
    switch (s->kind) {
    case WAL_STRATEGY_NONE:
        snprintf(buf, len, "none");
        break;
    case WAL_STRATEGY_FIXED:
        snprintf(buf, len, "fixed:%u", s->param);
        break;
    case WAL_STRATEGY_LINGER:
        snprintf(buf, len, "linger:%u", s->param);
        break;
    case WAL_STRATEGY_ADAPTIVE:
        snprintf(buf, len, "adaptive");
        break;
    }
    return buf;
}

void wal_set_strategy(struct wal *wal, const struct wal_strategy *s)
{
    wal->strategy = *s;
    if (wal->strategy.kind == WAL_STRATEGY_FIXED && wal->strategy.max_delay_us == 0) {
        wal->strategy.max_delay_us = 1000;
    }
}

const struct wal_stats *wal_stats(const struct wal *wal)
{
    return &wal->stats;
}

void wal_stats_reset(struct wal *wal)
{
    memset(&wal->stats, 0, sizeof(wal->stats));
    histogram_init(&wal->stats.batch_records);
    histogram_init(&wal->stats.batch_bytes);
    histogram_init(&wal->stats.flush_ns);
    histogram_init(&wal->stats.queue_ns);
}

/* ---- the in-memory index --------------------------------------------------------------- */

static raft_index gs_last(const struct wal_group_state *gs)
{
    return gs->first_index + gs->count - 1;
}

static struct wal_loc *gs_loc(const struct wal_group_state *gs, raft_index index)
{
    RR_ASSERT(index >= gs->first_index);
    RR_ASSERT(index - gs->first_index < gs->count);
    uint32_t i = (uint32_t)(index - gs->first_index);
    return &gs->locs[(gs->head + i) & (gs->cap - 1u)];
}

/* Drops entries at index and above. */
static void gs_truncate(struct wal_group_state *gs, raft_index index)
{
    while (gs->count > 0 && gs_last(gs) >= index) {
        gs->bytes -= gs_loc(gs, gs_last(gs))->size;
        gs->count--;
    }
}

/* Drops entries at index and below; the log then starts at index + 1. */
static void gs_compact(struct wal_group_state *gs, raft_index index, raft_term term)
{
    while (gs->count > 0 && gs->first_index <= index) {
        gs->bytes -= gs->locs[gs->head].size;
        gs->head = (gs->head + 1u) & (gs->cap - 1u);
        gs->count--;
        gs->first_index++;
    }
    if (gs->count == 0) {
        gs->first_index = index + 1;
    }
    gs->snap_index = index;
    gs->snap_term = term;
}

/* Moves the deque into a new array of ncap locations (>= count), oldest first. */
static int gs_resize(struct wal_group_state *gs, uint32_t ncap)
{
    RR_ASSERT(ncap >= gs->count);
    struct wal_loc *n = malloc((size_t)ncap * sizeof(*n));
    if (n == NULL) {
        return RR_ENOMEM;
    }
    for (uint32_t i = 0; i < gs->count; i++) {
        n[i] = gs->locs[(gs->head + i) & (gs->cap - 1u)];
    }
    free(gs->locs);
    gs->locs = n;
    gs->head = 0;
    gs->cap = ncap;
    return RR_OK;
}

/* Gives memory back once compaction left the deque at a quarter of its capacity or less
 * (keeping the larger deque when that allocation fails is always correct). */
static void gs_shrink(struct wal_group_state *gs)
{
    uint32_t ncap = gs->cap;
    while (ncap > 16u && gs->count <= ncap / 4u) {
        ncap /= 2u;
    }
    if (ncap != gs->cap) {
        (void)gs_resize(gs, ncap);
    }
}

static int gs_push(struct wal_group_state *gs, const struct wal_loc *loc)
{
    if (gs->count == gs->cap) {
        /* Grows by doubling: amortised, and bounded by the retained entries of the group. */
        uint32_t ncap = gs->cap == 0 ? 16u : gs->cap * 2u;
        if (ncap == 0 || WAL_FAULT(WAL_FP_ALLOC, 0) != 0 || gs_resize(gs, ncap) != RR_OK) {
            return RR_ENOMEM;
        }
    }
    gs->locs[(gs->head + gs->count) & (gs->cap - 1u)] = *loc;
    gs->count++;
    gs->bytes += loc->size;
    return RR_OK;
}

/* Applies one record to the index: the replay rule (storage/wal_format.h). */
int wal_apply_record(struct wal *wal, const struct wal_record *r, uint64_t lsn, uint32_t size)
{
    if (r->type == WAL_REC_SEAL) {
        return RR_OK;
    }
    struct wal_group_state *gs = wal_group(wal, r->group);
    if (gs == NULL) {
        return RR_ECORRUPT;
    }
    switch ((enum wal_record_type)r->type) {
    case WAL_REC_ENTRY: {
        if (r->index <= gs->snap_index) {
            return RR_ECORRUPT;
        }
        if ((gs->count > 0 && r->index > gs_last(gs) + 1) ||
            (gs->count == 0 && gs->snap_index > 0 && r->index != gs->snap_index + 1)) {
            return RR_EUNAVAILABLE; /* a gap: recovery decides (wal_apply_gap) */
        }
        if (gs->count == 0) {
            gs->first_index = r->index;
        }
        gs_truncate(gs, r->index);
        struct wal_loc loc = {.term = r->term, .lsn = lsn, .size = size, .type = r->entry_type};
        return gs_push(gs, &loc);
    }
    case WAL_REC_HARD_STATE: {
        uint32_t vote = 0;
        if (r->payload_len != sizeof(vote)) {
            return RR_ECORRUPT;
        }
        memcpy(&vote, r->payload, sizeof(vote));
        gs->hs.term = r->term;
        gs->hs.commit = r->index;
        gs->hs.vote = vote;
        gs->hs_lsn = lsn;
        return RR_OK;
    }
    case WAL_REC_TRUNCATE:
        gs_truncate(gs, r->index);
        return RR_OK;
    case WAL_REC_COMPACT:
        gs_compact(gs, r->index, r->term);
        gs->snap_lsn = lsn;
        return RR_OK;
    case WAL_REC_SEAL:
        break;
    }
    return RR_ECORRUPT;
}

int wal_apply_gap(struct wal *wal, const struct wal_record *r, uint64_t lsn, uint32_t size)
{
    struct wal_group_state *gs = wal_group(wal, r->group);
    RR_ASSERT(gs != NULL);
    RR_ASSERT(r->type == WAL_REC_ENTRY);
    gs_truncate(gs, gs->first_index);
    gs->first_index = r->index;
    struct wal_loc loc = {.term = r->term, .lsn = lsn, .size = size, .type = r->entry_type};
    return gs_push(gs, &loc);
}

int wal_group_info(const struct wal *wal, raft_group group, struct wal_group_info *out)
{
    const struct wal_group_state *gs = wal_group(wal, group);
    if (gs == NULL) {
        return RR_EINVAL;
    }
    out->first_index = gs->first_index;
    out->last_index = gs_last(gs);
    out->snap_index = gs->snap_index;
    out->snap_term = gs->snap_term;
    out->hs = gs->hs;
    out->bytes = gs->bytes;
    return RR_OK;
}

/* ---- encoding into the ring ------------------------------------------------------------ */

/* Copies len bytes at lsn out of the ring (the caller checked they are held). */
static void ring_read(const struct wal *wal, uint64_t lsn, uint8_t *dst, uint32_t len)
{
    uint64_t size = wal->ring_mask + 1;
    uint64_t pos = lsn & wal->ring_mask;
    uint64_t first = size - pos < len ? size - pos : len;
    memcpy(dst, wal->ring_buf + pos, (size_t)first);
    memcpy(dst + first, wal->ring_buf, (size_t)(len - first));
}

/* Encodes r at wal->head and advances it. Space was checked by the caller. */
static uint64_t ring_put(struct wal *wal, const struct wal_record *r, uint64_t salt)
{
    uint32_t size = wal_record_size(r->payload_len);
    uint64_t ring_size = wal->ring_mask + 1;
    uint64_t lsn = wal->head;
    uint64_t pos = lsn & wal->ring_mask;
    if (lsn + size - wal->ring_lo > ring_size) {
        wal->ring_lo = lsn + size - ring_size; /* the cache forgets the oldest bytes */
    }
    if (pos + size <= ring_size) {
        wal_record_encode(r, salt, wal->ring_buf + pos);
    } else {
        wal_record_encode(r, salt, wal->scratch);
        uint64_t first = ring_size - pos;
        memcpy(wal->ring_buf + pos, wal->scratch, (size_t)first);
        memcpy(wal->ring_buf, wal->scratch + first, (size_t)(size - first));
    }
    wal->head += size;
    wal->queued_records++;
    return lsn;
}

static struct wal_segment *active_segment(struct wal *wal)
{
    RR_ASSERT(wal->seg_count > 0);
    return &wal->segs[wal->seg_count - 1];
}

/* Makes room for bytes of records in the active segment: seals it and activates the spare
 * when they do not fit. Entries leave WAL_MAINT_RESERVE bytes of each segment to
 * maintenance records (compaction, truncation, hard state alone), so that when no new
 * segment can be prepared (disk full) the node can still vote and compact to free space.
 * Returns 0, RR_EBUSY or RR_ENOSPACE; changes nothing on error. */
static int reserve(struct wal *wal, uint64_t bytes, bool maint)
{
    uint64_t ring_size = wal->ring_mask + 1;
    uint32_t seal = wal_record_size(0);
    if (wal->head + bytes + seal - wal->durable > ring_size) {
        return RR_EBUSY; /* unflushed bytes must stay in the ring until written */
    }
    struct wal_segment *seg = active_segment(wal);
    uint64_t keep = maint ? 0 : WAL_MAINT_RESERVE;
    if (wal->head + bytes + seal + keep <= seg->lsn_limit) {
        return RR_OK;
    }
    if (wal->prep.state != WAL_PREP_READY) {
        if (wal->prep.state == WAL_PREP_FAILED) {
            return wal->prep.error == -ENOSPC ? RR_ENOSPACE : wal->prep.error;
        }
        return RR_EBUSY;
    }
    if (wal->seg_count >= WAL_SEGMENT_LIMIT(WAL_SEGMENTS_MAX)) {
        return RR_ENOSPACE; /* the WAL's budget of open segment files is spent */
    }
    if (wal->prep.bytes - WAL_SEGMENT_HEADER_BYTES < bytes + seal + keep) {
        return RR_ETOOBIG;
    }
    struct wal_record r = {.type = WAL_REC_SEAL};
    ring_put(wal, &r, seg->salt);
    wal->queued_records--; /* a seal is bookkeeping, not a record the caller asked for */
    seg->lsn_end = wal->head;
    seg->sealed = true;
    wal_segment_activate(wal, wal->head);
    wal->collect_wanted = true;
    return RR_OK;
}

static int check_append(struct wal *wal,
                        const struct wal_group_state *gs,
                        const struct wal_entry *entries,
                        uint32_t n,
                        uint64_t *bytes)
{
    for (uint32_t i = 0; i < n; i++) {
        if (entries[i].len > WAL_PAYLOAD_MAX || (entries[i].len > 0 && entries[i].data == NULL) ||
            entries[i].index != entries[0].index + i || entries[i].index == 0) {
            return RR_EINVAL;
        }
        *bytes += wal_record_size(entries[i].len);
    }
    if (n > 0 && entries[0].index <= gs->snap_index) {
        return RR_ECOMPACTED;
    }
    if (n > 0 && entries[0].index > gs_last(gs) + 1) {
        /* A gap, or a log that would not start at snap_index + 1 (recovery refuses both):
         * after a snapshot, wal_compact first. */
        return RR_EINVAL;
    }
    /* A unit stays in the ring until written, with room for a seal: a larger one could
     * never be queued (RR_EBUSY forever), so it is refused outright. */
    if (*bytes > WAL_FLUSH_BYTES_MAX * 8ull || *bytes + wal_record_size(0) > wal->ring_mask + 1) {
        return RR_ETOOBIG;
    }
    return RR_OK;
}

static void push_unit(struct wal *wal, wal_persist_cb cb, void *arg)
{
    if (cb == NULL) {
        return;
    }
    RR_ASSERT(wal->unit_count < WAL_UNITS_MAX);
    struct wal_unit *u = &wal->units[(wal->unit_head + wal->unit_count) % WAL_UNITS_MAX];
    u->end_lsn = wal->head;
    if (wal->append_ns == 0) {
        wal->append_ns = wal_now_ns(); /* one clock read per loop iteration's appends */
    }
    u->queued_ns = wal->append_ns;
    u->cb = cb;
    u->arg = arg;
    wal->unit_count++;
}

static int put_hard_state(struct wal *wal, raft_group group, const struct wal_hard_state *hs)
{
    uint32_t vote = hs->vote;
    struct wal_record r = {.type = WAL_REC_HARD_STATE,
                           .group = group,
                           .term = hs->term,
                           .index = hs->commit,
                           .payload_len = sizeof(vote),
                           .payload = (const uint8_t *)&vote};
    uint64_t lsn = ring_put(wal, &r, active_segment(wal)->salt);
    return wal_apply_record(wal, &r, lsn, wal_record_size(r.payload_len));
}

static int start_unit(struct wal *wal, wal_persist_cb cb, uint64_t bytes, bool maint)
{
    if (wal->error != 0) {
        return wal->error;
    }
    if (cb != NULL && wal->unit_count == WAL_UNITS_MAX) {
        return RR_EBUSY;
    }
    return reserve(wal, bytes, maint);
}

int wal_append(struct wal *wal,
               raft_group group,
               const struct wal_hard_state *hs,
               const struct wal_entry *entries,
               uint32_t n,
               wal_persist_cb cb,
               void *arg)
{
    struct wal_group_state *gs = wal_group(wal, group);
    if (gs == NULL || (hs == NULL && n == 0)) {
        return RR_EINVAL;
    }
    uint64_t bytes = hs != NULL ? wal_record_size(sizeof(uint32_t)) : 0;
    int rc = check_append(wal, gs, entries, n, &bytes);
    if (rc == RR_OK) {
        rc = start_unit(wal, cb, bytes, n == 0);
    }
    if (rc != RR_OK) {
        return rc;
    }
    if (hs != NULL) {
        rc = put_hard_state(wal, group, hs);
        RR_ASSERT(rc == RR_OK);
    }
    uint64_t salt = active_segment(wal)->salt;
    for (uint32_t i = 0; i < n; i++) {
        struct wal_record r = {.type = WAL_REC_ENTRY,
                               .entry_type = entries[i].type,
                               .group = group,
                               .term = entries[i].term,
                               .index = entries[i].index,
                               .payload_len = entries[i].len,
                               .payload = entries[i].data};
        uint64_t lsn = ring_put(wal, &r, salt);
        rc = wal_apply_record(wal, &r, lsn, wal_record_size(r.payload_len));
        if (rc != RR_OK) {
            /* Only allocation can fail here; the record is queued but unindexed, so the
             * in-memory index no longer matches the log: stop rather than diverge. */
            wal_fail(wal, rc, "wal: out of memory indexing group %u index %llu", group,
                     (unsigned long long)entries[i].index);
            return rc;
        }
    }
    push_unit(wal, cb, arg);
    return RR_OK;
}

static int
put_marker(struct wal *wal, raft_group group, uint8_t type, raft_index index, raft_term term)
{
    struct wal_record r = {.type = type, .group = group, .term = term, .index = index};
    uint64_t lsn = ring_put(wal, &r, active_segment(wal)->salt);
    return wal_apply_record(wal, &r, lsn, wal_record_size(0));
}

int wal_truncate(struct wal *wal, raft_group group, raft_index index, wal_persist_cb cb, void *arg)
{
    struct wal_group_state *gs = wal_group(wal, group);
    if (gs == NULL || index == 0) {
        return RR_EINVAL;
    }
    if (index <= gs->snap_index) {
        return RR_ECOMPACTED;
    }
    int rc = start_unit(wal, cb, wal_record_size(0), true);
    if (rc != RR_OK) {
        return rc;
    }
    rc = put_marker(wal, group, WAL_REC_TRUNCATE, index, 0);
    RR_ASSERT(rc == RR_OK);
    wal->collect_wanted = true; /* dropped entries may have held the oldest segment */
    push_unit(wal, cb, arg);
    return RR_OK;
}

int wal_compact(struct wal *wal,
                raft_group group,
                raft_index index,
                raft_term term,
                wal_persist_cb cb,
                void *arg)
{
    struct wal_group_state *gs = wal_group(wal, group);
    if (gs == NULL || index == 0) {
        return RR_EINVAL;
    }
    int rc = start_unit(wal, cb, wal_record_size(0), true);
    if (rc != RR_OK) {
        return rc;
    }
    if (index > gs->snap_index) {
        rc = put_marker(wal, group, WAL_REC_COMPACT, index, term);
        RR_ASSERT(rc == RR_OK);
        gs_shrink(gs);
        wal->collect_wanted = true; /* may free the oldest segment once durable */
    }
    /* Already compacted that far: the unit still completes in order, with what precedes. */
    push_unit(wal, cb, arg);
    return RR_OK;
}

/* ---- flushing -------------------------------------------------------------------------- */

/* Arms the strategy's timer; false if the ring had no room (the caller flushes now). */
static bool arm_timer(struct wal *wal, uint32_t usec)
{
    if (wal->timer_armed) {
        return true;
    }
    if (!wal_sq_room(wal, 1)) {
        wal->stats.deferred++;
        return false;
    }
    wal->timer_ts.tv_sec = usec / 1000000u;
    wal->timer_ts.tv_nsec = (long long)(usec % 1000000u) * 1000;
    wal->timer_gen++;
    struct io_uring_sqe *sqe = wal_sqe(wal, WAL_OP_TIMER, wal->timer_gen);
    io_uring_prep_timeout(sqe, &wal->timer_ts, 0, 0);
    wal->timer_armed = true;
    return true;
}

/* A flush started before the timer fired: that timer belonged to records now in flight.
 * Its expiry is made stale (timer_gen) and it is removed, so the next records get a full
 * delay of their own instead of the old timer's remainder. */
static void disarm_timer(struct wal *wal)
{
    if (!wal->timer_armed) {
        return;
    }
    uint64_t old = wal->user_tag | ((uint64_t)WAL_OP_TIMER << 48) | wal->timer_gen;
    wal->timer_armed = false;
    wal->timer_gen++;
    if (wal_sq_room(wal, 1)) { /* else it expires later, ignored */
        struct io_uring_sqe *sqe = wal_sqe(wal, WAL_OP_TIMER_REMOVE, 0);
        io_uring_prep_timeout_remove(sqe, old, 0);
    }
}

/* Whether the strategy wants a flush of what is queued now. */
static bool strategy_ready(struct wal *wal)
{
    switch (wal->strategy.kind) {
    case WAL_STRATEGY_NONE:
    case WAL_STRATEGY_ADAPTIVE:
        return true;
    case WAL_STRATEGY_FIXED:
        if (wal->queued_records >= wal->strategy.param || wal->timer_fired) {
            return true;
        }
        return !arm_timer(wal, wal->strategy.max_delay_us);
    case WAL_STRATEGY_LINGER:
        if (wal->timer_fired) {
            return true;
        }
        return !arm_timer(wal, wal->strategy.param);
    }
    return true;
}

/* Chooses [lo, hi) of the next flush: whole records in one segment, at most
 * WAL_FLUSH_BYTES_MAX, a single record under `none`. */
static uint64_t plan_flush(struct wal *wal, uint32_t *seg_index, uint32_t *records)
{
    uint64_t lo = wal->durable;
    int s = wal_segment_find(wal, lo);
    RR_ASSERT(s >= 0);
    const struct wal_segment *seg = &wal->segs[s];
    uint64_t end = seg->sealed ? seg->lsn_end : wal->head;
    if (!seg->sealed && wal->strategy.kind != WAL_STRATEGY_NONE &&
        end - lo <= WAL_FLUSH_BYTES_MAX) {
        /* Everything queued fits one flush in the active segment: no walk over the record
         * headers. queued_records counts exactly the records of [durable, head) here (no
         * flush is in flight and an unsealed segment holds no seal). */
        *seg_index = (uint32_t)s;
        *records = (uint32_t)wal->queued_records;
#ifdef RR_SLOW_ASSERTS
        uint64_t walked = lo;
        uint32_t n = 0;
        uint8_t h[WAL_RECORD_HEADER_BYTES];
        while (walked < end) {
            ring_read(wal, walked, h, sizeof(h));
            walked += wal_record_peek_size(h);
            n++;
        }
        RR_ASSERT(walked == end && n == *records);
#endif
        return end;
    }
    uint64_t hi = lo;
    uint32_t n = 0;
    uint8_t hdr[WAL_RECORD_HEADER_BYTES];
    while (hi < end) {
        ring_read(wal, hi, hdr, sizeof(hdr));
        uint32_t size = wal_record_peek_size(hdr);
        if (n > 0 && hi + size - lo > WAL_FLUSH_BYTES_MAX) {
            break;
        }
        hi += size;
        if (wal_record_peek_type(hdr) != WAL_REC_SEAL) {
            n++;
        }
        if (wal->strategy.kind == WAL_STRATEGY_NONE && n == 1) {
            break;
        }
    }
    *seg_index = (uint32_t)s;
    *records = n;
    return hi;
}

/* Prepares the flush's write (and linked sync) from f->cur; false if the ring had no room
 * (f->resubmit then makes wal_submit try again). */
static bool submit_write(struct wal *wal)
{
    struct wal_flush *f = &wal->flush;
    f->resubmit = !wal_sq_room(wal, wal->cfg.sync_method == WAL_SYNC_RWF_DSYNC ? 1u : 2u);
    if (f->resubmit) {
        wal->stats.deferred++;
        return false;
    }
    const struct wal_segment *seg = &wal->segs[f->seg];
    RR_ASSERT(seg->seq == f->seq);
    uint64_t ring_size = wal->ring_mask + 1;
    uint64_t pos = f->cur & wal->ring_mask;
    uint64_t len = f->hi - f->cur;
    uint64_t first = ring_size - pos < len ? ring_size - pos : len;
    f->iov[0].iov_base = wal->ring_buf + pos;
    f->iov[0].iov_len = (size_t)first;
    f->iov[1].iov_base = wal->ring_buf;
    f->iov[1].iov_len = (size_t)(len - first);
    unsigned nr = len > first ? 2u : 1u;
    off_t off = (off_t)(WAL_SEGMENT_HEADER_BYTES + f->cur - seg->lsn_start);
    f->write_done = false;
    f->sync_done = false;
    f->short_write = false;
    f->sync_cancelled = false;
    f->write_res = 0;
    if (wal->cfg.sync_method == WAL_SYNC_RWF_DSYNC) {
        struct io_uring_sqe *sqe = wal_sqe(wal, WAL_OP_WRITE, 0);
        io_uring_prep_writev2(sqe, seg->fd, f->iov, nr, (uint64_t)off, RWF_DSYNC);
        f->sync_done = true; /* the write itself is the sync */
        return true;
    }
    /* Both SQEs go to the kernel in one submission (room for both was made above), or the
     * link would break. */
    struct io_uring_sqe *w = wal_sqe(wal, WAL_OP_WRITE, 0);
    io_uring_prep_writev(w, seg->fd, f->iov, nr, (uint64_t)off);
    w->flags |= IOSQE_IO_LINK;
    struct io_uring_sqe *s = wal_sqe(wal, WAL_OP_SYNC, 0);
    io_uring_prep_fsync(s, seg->fd, IORING_FSYNC_DATASYNC);
    return true;
}

/* Copies len bytes to lsn in the ring (wrapping). */
static void ring_write(struct wal *wal, uint64_t lsn, const uint8_t *src, uint32_t len)
{
    uint64_t size = wal->ring_mask + 1;
    uint64_t pos = lsn & wal->ring_mask;
    uint64_t first = size - pos < len ? size - pos : len;
    memcpy(wal->ring_buf + pos, src, (size_t)first);
    memcpy(wal->ring_buf, src + first, (size_t)(len - first));
}

/* Stamps the flush's first record with the segment offset durable when the flush starts:
 * a valid record whose flush base lies past a damaged one proves the damaged bytes had
 * been synced, so recovery refuses them as corruption instead of taking them for the torn
 * tail of the last flush (wal_recover.c). */
static void stamp_flush_base(struct wal *wal, const struct wal_segment *seg, uint64_t lo)
{
    uint8_t hdr[WAL_REC_OFF_LEN];
    uint64_t base = lo > seg->lsn_start ? lo - seg->lsn_start : 0;
    ring_read(wal, lo, hdr, sizeof(hdr));
    wal_record_set_flush_base(hdr, (uint32_t)(WAL_SEGMENT_HEADER_BYTES + base), seg->salt);
    ring_write(wal, lo, hdr, sizeof(hdr));
}

static void record_queue_delays(struct wal *wal, uint64_t hi, uint64_t now)
{
    while (wal->unit_started < wal->unit_count) {
        const struct wal_unit *u =
            &wal->units[(wal->unit_head + wal->unit_started) % WAL_UNITS_MAX];
        if (u->end_lsn > hi) {
            break;
        }
        histogram_record(&wal->stats.queue_ns, now - u->queued_ns);
        wal->unit_started++;
    }
}

static void maybe_flush(struct wal *wal)
{
    struct wal_flush *f = &wal->flush;
    if (wal->error != 0) {
        return;
    }
    if (f->active) {
        if (f->resubmit) {
            submit_write(wal); /* the ring had no room for it earlier */
        }
        return;
    }
    if (wal->durable == wal->head || !strategy_ready(wal)) {
        return;
    }
    if (!wal_sq_room(wal, 3)) { /* write, sync and the timer's removal */
        wal->stats.deferred++;
        return;
    }
    f->lo = wal->durable;
    f->cur = f->lo;
    f->hi = plan_flush(wal, &f->seg, &f->records);
    f->seq = wal->segs[f->seg].seq;
    RR_ASSERT(f->hi > f->lo);
    f->active = true;
    f->started_ns = wal_now_ns();
    stamp_flush_base(wal, &wal->segs[f->seg], f->lo);
    wal->timer_fired = false;
    disarm_timer(wal);
    wal->queued_records -= f->records;
    record_queue_delays(wal, f->hi, f->started_ns);
    submit_write(wal);
}

static void ack_units(struct wal *wal, int status);
static void fail_units(struct wal *wal);

void wal_submit(struct wal *wal)
{
    wal->append_ns = 0;
    if (wal->error != 0) {
        fail_units(wal);
        return;
    }
    ack_units(wal, RR_OK); /* units that queued no record of their own */
    maybe_flush(wal);
    wal_meta_kick(wal); /* a step the ring had no room for */
}

/* After a fatal error every queued unit fails, once no flush that could still complete
 * is in flight (its completion fails them itself). */
static void fail_units(struct wal *wal)
{
    if (wal->error != 0 && !wal->flush.active) {
        ack_units(wal, wal->error);
    }
}

static void ack_units(struct wal *wal, int status)
{
    while (wal->unit_count > 0) {
        struct wal_unit *u = &wal->units[wal->unit_head];
        if (status == RR_OK && u->end_lsn > wal->durable) {
            break;
        }
        if (status == RR_OK) {
            int s = wal_segment_find(wal, u->end_lsn - 1);
            RR_ASSERT(s >= 0);
            WAL_ACKED(wal->segs[s].seq,
                      WAL_SEGMENT_HEADER_BYTES + u->end_lsn - wal->segs[s].lsn_start);
        }
        wal_persist_cb cb = u->cb;
        void *arg = u->arg;
        wal->unit_head = (wal->unit_head + 1u) % WAL_UNITS_MAX;
        wal->unit_count--;
        if (wal->unit_started > 0) {
            wal->unit_started--;
        }
        if (status == RR_OK) {
            wal->stats.units++;
        }
        cb(arg, status);
    }
}

static void flush_done(struct wal *wal)
{
    struct wal_flush *f = &wal->flush;
    const struct wal_segment *seg = &wal->segs[f->seg];
    RR_ASSERT(seg->seq == f->seq);
    WAL_SYNCED(seg->seq, WAL_SEGMENT_HEADER_BYTES + f->hi - seg->lsn_start);
    uint64_t now = wal_now_ns();
    wal->stats.flushes++;
    wal->stats.records += f->records;
    wal->stats.bytes += f->hi - f->lo;
    histogram_record(&wal->stats.batch_records, f->records);
    histogram_record(&wal->stats.batch_bytes, f->hi - f->lo);
    histogram_record(&wal->stats.flush_ns, now - f->started_ns);
    wal->durable = f->hi;
    f->active = false;
    ack_units(wal, RR_OK);
    if (wal->collect_wanted) {
        wal_collect(wal);
    }
    maybe_flush(wal);
}

/* Both halves of a linked flush have completed (or the single RWF_DSYNC write). */
static void flush_settle(struct wal *wal)
{
    struct wal_flush *f = &wal->flush;
    if (!f->write_done || !f->sync_done) {
        return;
    }
    if (wal->error != 0) {
        f->active = false;
        ack_units(wal, wal->error);
        return;
    }
    if (f->short_write || f->sync_cancelled) {
        submit_write(wal); /* resume from the first byte not written, then sync again */
        return;
    }
    flush_done(wal);
}

static void handle_write(struct wal *wal, int res)
{
    struct wal_flush *f = &wal->flush;
    RR_ASSERT(f->active);
    res = WAL_FAULT(WAL_FP_WRITE_CQE, res);
    f->write_done = true;
    const struct wal_segment *seg = &wal->segs[f->seg];
    uint64_t want = f->hi - f->cur;
    if (res == -EINTR || res == -EAGAIN) {
        f->short_write = true; /* nothing written: rewrite the whole range */
    } else if (res < 0) {
        f->write_res = res;
        char name[32];
        wal_segment_name(name, sizeof(name), seg->seq);
        wal_fail(wal, res == -ENOSPC ? RR_ENOSPACE : RR_EIO, "%s: write at offset %llu failed: %s",
                 name, (unsigned long long)(WAL_SEGMENT_HEADER_BYTES + f->cur - seg->lsn_start),
                 strerror(-res));
    } else if ((uint64_t)res < want) {
        wal->stats.short_writes++;
        f->cur += (uint64_t)res;
        f->short_write = true;
    }
    if (wal->cfg.sync_method == WAL_SYNC_RWF_DSYNC) {
        f->sync_done = true;
    }
    flush_settle(wal);
}

static void handle_sync(struct wal *wal, int res)
{
    struct wal_flush *f = &wal->flush;
    RR_ASSERT(f->active);
    res = WAL_FAULT(WAL_FP_SYNC_CQE, res);
    f->sync_done = true;
    if (res < 0 && res != -ECANCELED) {
        /* Never retried: after a failed fsync the kernel may have dropped the dirty pages,
         * so a later successful fsync would prove nothing (the "fsyncgate" lesson). */
        char name[32];
        wal_segment_name(name, sizeof(name), wal->segs[f->seg].seq);
        wal_fail(wal, RR_EIO, "%s: fdatasync failed: %s; the WAL stops (fsync is never retried)",
                 name, strerror(-res));
    } else if (res == -ECANCELED) {
        /* A short or failed write breaks the link. Should the write have succeeded after
         * all, the range is written and synced again: never acknowledge without a sync. */
        f->sync_cancelled = true;
    }
    flush_settle(wal);
}

static void handle_timer(struct wal *wal, uint64_t gen)
{
    if (gen == wal->timer_gen) {
        wal->timer_armed = false;
        wal->timer_fired = true;
        maybe_flush(wal);
    }
}

/* ---- reads ----------------------------------------------------------------------------- */

static void read_finish(struct wal *wal, struct wal_read_slot *slot)
{
    struct wal_read *rd = slot->rd;
    for (uint32_t k = 0; k < rd->count && rd->status == RR_OK; k++) {
        int s = -1;
        for (uint32_t i = 0; i < wal->seg_count; i++) {
            if (wal->segs[i].seq == slot->seq[k]) {
                s = (int)i;
            }
        }
        struct wal_record r;
        int64_t n =
            s < 0 ? RR_EIO
                  : wal_record_decode(rd->buf + slot->pos[k], slot->size[k], wal->segs[s].salt, &r);
        if (n < 0 || r.type != WAL_REC_ENTRY || r.group != rd->group || r.index != rd->lo + k) {
            rd->status = RR_ECORRUPT;
            break;
        }
        rd->entries[k] = (struct wal_entry){.term = r.term,
                                            .index = r.index,
                                            .type = r.entry_type,
                                            .len = r.payload_len,
                                            .data = r.payload};
    }
    slot->rd = NULL;
    wal->reads_active--;
}

/* Blocking preads used at start-up and by tools; the loop uses the ring. */
static int pread_full(int fd, uint8_t *buf, size_t len, off_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, buf + done, len - done, off + (off_t)done);
        n = WAL_FAULT(WAL_FP_PREAD, n);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return n == 0 ? RR_ETRUNCATED : RR_EIO;
        }
        done += (size_t)n;
    }
    return RR_OK;
}

static int read_start(struct wal *wal, struct wal_read *rd, bool blocking)
{
    struct wal_group_state *gs = wal_group(wal, rd->group);
    if (gs == NULL || rd->lo == 0 || rd->hi < rd->lo) {
        return RR_EINVAL;
    }
    if (rd->lo <= gs->snap_index || rd->lo < gs->first_index) {
        return RR_ECOMPACTED;
    }
    if (rd->lo > gs_last(gs)) {
        return RR_EUNAVAILABLE;
    }
    if (wal->reads_active == WAL_READS_MAX) {
        return RR_EBUSY;
    }
    uint32_t slot_i = 0;
    while (wal->reads[slot_i].rd != NULL) {
        slot_i++;
    }
    struct wal_read_slot *slot = &wal->reads[slot_i];
    raft_index hi = rd->hi < gs_last(gs) ? rd->hi : gs_last(gs);
    /* Plan first: which entries come from the ring, and the disk reads, adjacent records of
     * one segment coalesced into one read. Nothing changes if the ring has no room. */
    uint32_t count = 0;
    uint32_t reads = 0;
    int last_seg = -1;
    uint64_t last_end = 0; /* lsn just past the previous disk-read record */
    uint32_t run_head = 0;
    size_t pos = 0;
    for (raft_index i = rd->lo; i <= hi && count < WAL_READ_ENTRIES_MAX; i++) {
        const struct wal_loc *loc = gs_loc(gs, i);
        if (pos + loc->size > rd->buf_len) {
            break;
        }
        int s = wal_segment_find(wal, loc->lsn);
        RR_ASSERT(s >= 0);
        uint32_t k = count++;
        slot->seq[k] = wal->segs[s].seq;
        slot->pos[k] = (uint32_t)pos;
        slot->size[k] = loc->size;
        slot->run[k] = 0;
        if (loc->lsn < wal->ring_lo) {
            if (s == last_seg && loc->lsn == last_end) {
                slot->run[run_head] += loc->size; /* continues the previous read */
            } else {
                run_head = k;
                slot->run[k] = loc->size;
                reads++;
            }
            last_seg = s;
            last_end = loc->lsn + loc->size;
        } else {
            last_seg = -1;
        }
        pos += loc->size;
    }
    if (count == 0) {
        return RR_ETOOBIG;
    }
    if (!blocking && reads > 0 && !wal_sq_room(wal, reads)) {
        wal->stats.deferred++;
        return RR_EBUSY;
    }
    rd->status = RR_OK;
    rd->count = count;
    rd->pending = 0;
    rd->slot = slot_i;
    for (uint32_t k = 0; k < count; k++) {
        const struct wal_loc *loc = gs_loc(gs, rd->lo + k);
        if (loc->lsn >= wal->ring_lo) {
            ring_read(wal, loc->lsn, rd->buf + slot->pos[k], loc->size);
            wal->stats.cache_hits++;
            continue;
        }
        wal->stats.disk_reads++;
        if (slot->run[k] == 0) {
            continue; /* read with the run it belongs to */
        }
        int s = wal_segment_find(wal, loc->lsn);
        struct wal_segment *seg = &wal->segs[s];
        off_t off = (off_t)(WAL_SEGMENT_HEADER_BYTES + loc->lsn - seg->lsn_start);
        if (blocking) {
            int rc = pread_full(seg->fd, rd->buf + slot->pos[k], slot->run[k], off);
            if (rc != RR_OK) {
                rd->status = rc;
            }
            continue;
        }
        struct io_uring_sqe *sqe = wal_sqe(wal, WAL_OP_READ, ((uint64_t)slot_i << 16) | k);
        io_uring_prep_read(sqe, seg->fd, rd->buf + slot->pos[k], slot->run[k], (uint64_t)off);
        seg->reads++;
        rd->pending++;
    }
    slot->rd = rd;
    wal->reads_active++;
    if (rd->pending == 0) {
        read_finish(wal, slot);
        return rd->status == RR_OK ? 0 : rd->status;
    }
    return 1;
}

int wal_read(struct wal *wal, struct wal_read *rd)
{
    return read_start(wal, rd, false);
}

int wal_read_blocking(struct wal *wal, struct wal_read *rd)
{
    return read_start(wal, rd, true);
}

static void handle_read(struct wal *wal, uint64_t id, int res)
{
    uint32_t slot_i = (uint32_t)(id >> 16);
    uint32_t k = (uint32_t)(id & 0xffffu);
    RR_ASSERT(slot_i < WAL_READS_MAX);
    struct wal_read_slot *slot = &wal->reads[slot_i];
    struct wal_read *rd = slot->rd;
    RR_ASSERT(rd != NULL);
    RR_ASSERT(k < rd->count);
    res = WAL_FAULT(WAL_FP_READ_CQE, res);
    for (uint32_t i = 0; i < wal->seg_count; i++) {
        if (wal->segs[i].seq == slot->seq[k]) {
            wal->segs[i].reads--;
        }
    }
    if (res < 0 && rd->status == RR_OK) {
        rd->status = res;
    } else if (res >= 0 && (uint32_t)res != slot->run[k] && rd->status == RR_OK) {
        rd->status = RR_ETRUNCATED; /* a record lies wholly inside a preallocated file */
    }
    if (--rd->pending > 0) {
        return;
    }
    read_finish(wal, slot);
    if (wal->collect_wanted) {
        wal_collect(wal); /* a retirement may have waited for this read */
    }
    rd->cb(rd);
}

int wal_handle_cqe(struct wal *wal, const struct io_uring_cqe *cqe)
{
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    RR_ASSERT((ud & (0xffull << WAL_USER_DATA_TAG_SHIFT)) == wal->user_tag);
    RR_ASSERT(wal->inflight > 0);
    wal->inflight--;
    wal->append_ns = 0;
    enum wal_op op = (enum wal_op)((ud >> 48) & 0xffu);
    uint64_t id = ud & ((1ull << 48) - 1);
    switch (op) {
    case WAL_OP_WRITE:
        handle_write(wal, cqe->res);
        break;
    case WAL_OP_SYNC:
        handle_sync(wal, cqe->res);
        break;
    case WAL_OP_TIMER:
        handle_timer(wal, id);
        break;
    case WAL_OP_READ:
        handle_read(wal, id, cqe->res);
        break;
    case WAL_OP_META:
        wal_meta_handle(wal, cqe->res);
        maybe_flush(wal); /* records may have waited for the spare */
        break;
    case WAL_OP_TIMER_REMOVE:
        break; /* the removed timer's own completion is stale (timer_gen) */
    default:
        RR_ASSERT(false && "unknown WAL op in user_data");
    }
    fail_units(wal);
    return wal->error;
}

/* ---- segment lifetime ------------------------------------------------------------------ */

/* Lowest lsn any group still needs; *marker_only tells whether only hard-state or compact
 * records (which can be rewritten) pin below limit. */
static uint64_t lowest_pin(const struct wal *wal, uint64_t limit, bool *entries_pin)
{
    uint64_t low = WAL_NO_LSN;
    *entries_pin = false;
    for (uint32_t g = 0; g < wal->local_groups; g++) {
        const struct wal_group_state *gs = &wal->groups[g];
        if (gs->count > 0 && gs->locs[gs->head].lsn < limit) {
            *entries_pin = true;
        }
        uint64_t pins[3] = {gs->count > 0 ? gs->locs[gs->head].lsn : WAL_NO_LSN, gs->hs_lsn,
                            gs->snap_lsn};
        for (int i = 0; i < 3; i++) {
            low = pins[i] < low ? pins[i] : low;
        }
    }
    return low;
}

/* Rewrites the hard-state and compact records that alone pin segment seg into the active
 * segment, so an idle group cannot hold the oldest file forever. */
static void carry_forward(struct wal *wal, const struct wal_segment *seg)
{
    uint32_t per_group = 2u * wal_record_size(sizeof(uint32_t));
    for (uint32_t g = 0; g < wal->local_groups; g++) {
        struct wal_group_state *gs = &wal->groups[g];
        raft_group group = g * wal->cfg.worker_count + wal->cfg.worker_id;
        bool hs = gs->hs_lsn < seg->lsn_end;
        bool snap = gs->snap_lsn < seg->lsn_end;
        if (!hs && !snap) {
            continue;
        }
        if (reserve(wal, per_group, true) != RR_OK) {
            return; /* try again after the next flush */
        }
        if (hs) {
            struct wal_hard_state h = gs->hs;
            put_hard_state(wal, group, &h);
        }
        if (snap) {
            put_marker(wal, group, WAL_REC_COMPACT, gs->snap_index, gs->snap_term);
        }
    }
}

/* Marks the oldest segments that no group needs: free once everything queued now is
 * durable. Carries idle groups' markers forward out of the first segment still needed. */
static void mark_free_segments(struct wal *wal)
{
    for (uint32_t i = 0; i + 1 < wal->seg_count && wal->error == 0; i++) {
        struct wal_segment *seg = &wal->segs[i];
        if (seg->retire_lsn != WAL_NO_LSN) {
            continue;
        }
        if (!seg->sealed) {
            break;
        }
        bool entries_pin = false;
        uint64_t low = lowest_pin(wal, seg->lsn_end, &entries_pin);
        if (low >= seg->lsn_end) {
            seg->retire_lsn = wal->head;
            wal->collect_wanted = true;
            continue;
        }
        if (!entries_pin) {
            carry_forward(wal, seg);
            wal->collect_wanted = true;
        }
        break;
    }
}

/* Retires segments no group needs. The in-memory index already reflects queued records (a
 * queued hard state, truncation or compaction moves a group's pins before it is durable), so
 * a segment found free here still holds the only durable copy of what supersedes nothing
 * yet: it is marked with retire_lsn = head and leaves only once everything queued now is
 * durable. Pins only move forward, so a segment once free stays free. */
void wal_collect(struct wal *wal)
{
    wal->collect_wanted = false;
    mark_free_segments(wal);
    while (wal->error == 0 && wal->seg_count > 1 && wal->segs[0].retire_lsn != WAL_NO_LSN) {
        const struct wal_segment *seg = &wal->segs[0];
        if (wal->durable < seg->retire_lsn || seg->reads > 0) {
            wal->collect_wanted = true; /* again after the next flush or read */
            break;
        }
        wal_segment_retire_oldest(wal);
    }
}

int wal_oldest_pin(const struct wal *wal, raft_group *group, raft_index *index)
{
    uint32_t first = 0;
    while (first < wal->seg_count && wal->segs[first].retire_lsn != WAL_NO_LSN) {
        first++;
    }
    if (first + 1 >= wal->seg_count) {
        return RR_ENOTFOUND;
    }
    const struct wal_segment *seg = &wal->segs[first];
    uint64_t best = WAL_NO_LSN;
    for (uint32_t g = 0; g < wal->local_groups; g++) {
        const struct wal_group_state *gs = &wal->groups[g];
        if (gs->count > 0 && gs->locs[gs->head].lsn < seg->lsn_end &&
            gs->locs[gs->head].lsn < best) {
            best = gs->locs[gs->head].lsn;
            *group = g * wal->cfg.worker_count + wal->cfg.worker_id;
            *index = gs->first_index;
        }
    }
    return best == WAL_NO_LSN ? RR_ENOTFOUND : RR_OK;
}

uint32_t wal_segment_count(const struct wal *wal)
{
    bool spare = wal->prep.state == WAL_PREP_READY || wal->prep.state == WAL_PREP_RUNNING;
    bool deleting = wal->meta.job == WAL_JOB_DELETE;
    return wal->seg_count + wal->retired_count + (spare ? 1u : 0u) + (deleting ? 1u : 0u);
}

uint64_t wal_disk_bytes(const struct wal *wal)
{
    uint64_t total = 0;
    for (uint32_t i = 0; i < wal->seg_count; i++) {
        total += wal->segs[i].bytes;
    }
    for (uint32_t i = 0; i < wal->retired_count; i++) {
        total += wal->retired[(wal->retired_head + i) % WAL_SEGMENTS_MAX].bytes;
    }
    if (wal->prep.state == WAL_PREP_READY || wal->prep.state == WAL_PREP_RUNNING) {
        total += wal->cfg.segment_bytes;
    }
    if (wal->meta.job == WAL_JOB_DELETE) {
        total += wal->meta.bytes;
    }
    return total;
}

/* ---- open and close -------------------------------------------------------------------- */

static int check_config(const struct wal_config *cfg, char *err, size_t err_len)
{
    if (cfg->dir == NULL || cfg->worker_count == 0 || cfg->worker_id >= cfg->worker_count ||
        cfg->group_count == 0 || cfg->group_count > RAFT_GROUPS_MAX * cfg->worker_count ||
        cfg->user_data_tag == 0) {
        snprintf(err, err_len, "wal: invalid configuration (dir, worker, group or tag)");
        return RR_EINVAL;
    }
    uint64_t seg = cfg->segment_bytes;
    if (seg != 0 &&
        (seg < WAL_SEGMENT_BYTES_MIN || seg > WAL_SEGMENT_BYTES_MAX || seg % 4096 != 0)) {
        snprintf(err, err_len, "wal: segment size %llu out of range or not 4 KiB aligned",
                 (unsigned long long)seg);
        return RR_EINVAL;
    }
    uint32_t cache = cfg->cache_bytes;
    if (cache != 0 && ((cache & (cache - 1u)) != 0 || cache < 2u * WAL_FLUSH_BYTES_MAX)) {
        snprintf(err, err_len, "wal: cache bytes must be a power of two >= %u",
                 2u * WAL_FLUSH_BYTES_MAX);
        return RR_EINVAL;
    }
    return RR_OK;
}

static int alloc_state(struct wal *wal)
{
    uint32_t w = wal->cfg.worker_count;
    wal->local_groups = (wal->cfg.group_count - wal->cfg.worker_id + w - 1u) / w;
    wal->groups = calloc(wal->local_groups, sizeof(*wal->groups));
    wal->ring_buf = malloc(wal->cfg.cache_bytes);
    wal->scratch = malloc(WAL_RECORD_MAX);
    wal->zeros = calloc(1, WAL_PREP_CHUNK);
    wal->prep.header = malloc(WAL_SEGMENT_HEADER_BYTES);
    wal->dir = strdup(wal->cfg.dir);
    if (WAL_FAULT(WAL_FP_ALLOC, 0) != 0 || wal->groups == NULL || wal->ring_buf == NULL ||
        wal->scratch == NULL || wal->zeros == NULL || wal->prep.header == NULL ||
        wal->dir == NULL) {
        return RR_ENOMEM;
    }
    wal->cfg.dir = wal->dir;
    for (uint32_t g = 0; g < wal->local_groups; g++) {
        wal->groups[g].first_index = 1;
        wal->groups[g].hs_lsn = WAL_NO_LSN;
        wal->groups[g].snap_lsn = WAL_NO_LSN;
    }
    wal->ring_mask = wal->cfg.cache_bytes - 1u;
    return RR_OK;
}

int wal_open(const struct wal_config *cfg,
             struct io_uring *ring,
             struct wal **out,
             char *err,
             size_t err_len)
{
    *out = NULL;
    int rc = check_config(cfg, err, err_len);
    if (rc != RR_OK) {
        return rc;
    }
    struct wal *wal = calloc(1, sizeof(*wal));
    if (wal == NULL) {
        snprintf(err, err_len, "wal: out of memory");
        return RR_ENOMEM;
    }
    wal->cfg = *cfg;
    wal->ring = ring;
    wal->dir_fd = -1;
    wal->lock_fd = -1;
    wal->prep.fd = -1;
    wal->meta.fd = -1;
    wal->user_tag = (uint64_t)cfg->user_data_tag << WAL_USER_DATA_TAG_SHIFT;
    if (wal->cfg.segment_bytes == 0) {
        wal->cfg.segment_bytes = WAL_SEGMENT_BYTES_DEFAULT;
    }
    if (wal->cfg.cache_bytes == 0) {
        wal->cfg.cache_bytes = WAL_CACHE_BYTES_DEFAULT;
    }
    wal_set_strategy(wal, &cfg->strategy);
    wal_stats_reset(wal);
    rc = alloc_state(wal);
    if (rc != RR_OK) {
        snprintf(err, err_len, "wal: out of memory");
        wal_close(wal);
        return rc;
    }
    if (cfg->iowq_max_workers > 0) {
        /* fsyncs run on io-wq threads; bound them so a stalled disk cannot spawn many. */
        unsigned int vals[2] = {cfg->iowq_max_workers, cfg->iowq_max_workers};
        io_uring_register_iowq_max_workers(ring, vals);
    }
    rc = wal_lock_dir(wal, err, err_len);
    if (rc == RR_OK) {
        rc = wal_recover(wal, err, err_len);
    }
    if (rc != RR_OK) {
        wal_close(wal);
        return rc;
    }
    wal_meta_kick(wal);
    *out = wal;
    return RR_OK;
}

void wal_close(struct wal *wal)
{
    if (wal == NULL) {
        return;
    }
    for (uint32_t i = 0; i < wal->seg_count; i++) {
        close(wal->segs[i].fd);
    }
    if (wal->prep.fd >= 0) {
        close(wal->prep.fd);
    }
    if (wal->meta.fd >= 0) {
        close(wal->meta.fd);
    }
    for (uint32_t i = 0; i < wal->retired_count; i++) {
        close(wal->retired[(wal->retired_head + i) % WAL_SEGMENTS_MAX].fd);
    }
    if (wal->groups != NULL) {
        for (uint32_t g = 0; g < wal->local_groups; g++) {
            free(wal->groups[g].locs);
        }
    }
    if (wal->dir_fd >= 0) {
        close(wal->dir_fd);
    }
    if (wal->lock_fd >= 0) {
        close(wal->lock_fd); /* releases the flock */
    }
    free(wal->groups);
    free(wal->ring_buf);
    free(wal->scratch);
    free(wal->zeros);
    free(wal->prep.header);
    free(wal->dir);
    free(wal);
}
