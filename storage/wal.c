/* The write-ahead log of one worker: appends, the strategies' settings, statistics, the
 * completion dispatcher, open and close. The on-disk format, the replay rule and the
 * recovery rules are described once, at the top of storage/wal_format.h. The other files:
 *   wal_index.c    the in-memory index of each group's retained entries and its pins
 *   wal_flush.c    flushing (write + sync), the strategies' timers, acknowledging units
 *   wal_read.c     reads of entries, from the ring or from the segment files
 *   wal_segment.c  segment files, their preparation and deletion, and segment lifetime
 *   wal_recover.c  the start-up scan
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
#include <sys/mman.h>
#include <unistd.h>

#include "core/base/assert.h"
#include "core/base/errors.h"
#include "storage/wal_internal.h"

uint64_t wal_now_ns(struct wal *wal)
{
    return wal->kernel.now_ns(wal->kernel.ctx);
}

void wal_close_fd(struct wal *wal, int fd)
{
    wal->kernel.close(wal->kernel.ctx, fd);
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

bool wal_sq_room(struct wal *wal, unsigned n)
{
    if (wal->kernel.sq_space_left(wal->kernel.ctx) >= n) {
        return true;
    }
    /* SQ full: hand what is queued to the kernel. That can fail (say, -EBUSY while the CQ
     * overflows): the work then waits for the caller's next submit and wal_submit. */
    WAL_BEFORE_SUBMIT(wal->ring);
    int rc = WAL_FAULT(WAL_FP_SUBMIT, wal->kernel.submit(wal->kernel.ctx));
    return rc >= 0 && wal->kernel.sq_space_left(wal->kernel.ctx) >= n;
}

struct io_uring_sqe *wal_sqe(struct wal *wal, enum wal_op op, uint64_t id)
{
    struct io_uring_sqe *sqe = wal->kernel.get_sqe(wal->kernel.ctx);
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

bool wal_direct_io(const struct wal *wal)
{
    return wal->direct;
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

/* ---- giving the ring back when idle ---------------------------------------------------- */

/* Drops the whole pages inside [p, p + len) (MADV_DONTNEED: they read back as zeros);
 * returns their bytes. A failure loses nothing: the memory just stays resident. */
static size_t release_pages(void *p, size_t len)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)p + page - 1) & ~(page - 1);
    uintptr_t hi = ((uintptr_t)p + len) & ~(page - 1);
    if (hi <= lo || madvise((void *)lo, hi - lo, MADV_DONTNEED) != 0) {
        return 0;
    }
    return hi - lo;
}

size_t wal_release_cache(struct wal *wal)
{
    bool appended = wal->head != wal->release_seen_head;
    wal->release_seen_head = wal->head;
    if (appended || wal->head == wal->release_done_head || wal->durable != wal->head ||
        wal->flush_count > 0) {
        return 0;
    }
    /* Every byte of the ring is durable, and none is in a write in flight: forget them all
     * (reads below ring_lo go to the files). The next record is encoded at head, so no page
     * has to survive. */
    RR_ASSERT(wal->queued_records == 0);
    wal->ring_lo = wal->head;
    wal->release_done_head = wal->head;
    size_t released = release_pages(wal->ring_buf, wal->ring_mask + 1);
    /* So can the unit FIFO's pages, once every unit was acknowledged: its slots are written
     * before they are read, and a burst leaves as many of them touched as it queued units,
     * up to WAL_UNITS_MAX. */
    if (wal->unit_count == 0) {
        released += release_pages(wal->units, sizeof(wal->units));
    }
    if (wal->dio_bufs != NULL) { /* no flush is in flight: each is rebuilt when planned */
        released += release_pages(wal->dio_bufs, (size_t)WAL_FLUSHES_MAX * WAL_DIO_BUF_BYTES);
    }
    return released;
}

/* ---- encoding into the ring ------------------------------------------------------------ */

/* Copies len bytes at lsn out of the ring (the caller checked they are held). */
void wal_ring_read(const struct wal *wal, uint64_t lsn, uint8_t *dst, uint32_t len)
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
int wal_reserve(struct wal *wal, uint64_t bytes, bool maint)
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
            return wal->prep.error == -ENOSPC ? RR_ENOSPACE : RR_EIO;
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
        wal->append_ns = wal_now_ns(wal); /* one clock read per loop iteration's appends */
    }
    u->queued_ns = wal->append_ns;
    u->cb = cb;
    u->arg = arg;
    wal->unit_count++;
}

int wal_put_hard_state(struct wal *wal, raft_group group, const struct wal_hard_state *hs)
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
    return wal_reserve(wal, bytes, maint);
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
        rc = wal_put_hard_state(wal, group, hs);
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

int wal_put_marker(
    struct wal *wal, raft_group group, uint8_t type, raft_index index, raft_term term)
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
    rc = wal_put_marker(wal, group, WAL_REC_TRUNCATE, index, 0);
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
        rc = wal_put_marker(wal, group, WAL_REC_COMPACT, index, term);
        RR_ASSERT(rc == RR_OK);
        wal_index_shrink(gs);
        wal->collect_wanted = true; /* may free the oldest segment once durable */
    }
    /* Already compacted that far: the unit still completes in order, with what precedes. */
    push_unit(wal, cb, arg);
    return RR_OK;
}

/* ---- completions ---------------------------------------------------------------------- */

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
        wal_flush_handle_write(wal, id, cqe->res);
        break;
    case WAL_OP_SYNC:
        wal_flush_handle_sync(wal, id, cqe->res);
        break;
    case WAL_OP_TIMER:
        wal_flush_handle_timer(wal, id);
        break;
    case WAL_OP_READ:
        wal_read_handle(wal, id, cqe->res);
        break;
    case WAL_OP_META:
        wal_meta_handle(wal, cqe->res);
        wal_flush_maybe(wal); /* records may have waited for the spare */
        break;
    case WAL_OP_TIMER_REMOVE:
        break; /* the removed timer's own completion is stale (timer_gen) */
    default:
        RR_ASSERT(false && "unknown WAL op in user_data");
    }
    wal_fail_units(wal);
    return wal->error;
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
    if (cfg->flushes_in_flight > WAL_FLUSHES_MAX) {
        snprintf(err, err_len, "wal: flushes in flight must be 1 or %u", WAL_FLUSHES_MAX);
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
        if (wal_index_init(&wal->groups[g]) != RR_OK) {
            return RR_ENOMEM;
        }
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
    wal->kernel = cfg->kernel != NULL ? *cfg->kernel : wal_kernel_ring(ring);
    wal->cfg.kernel = NULL; /* the copy above is the one in use */
    wal->dir_fd = -1;
    wal->lock_fd = -1;
    wal->prep.fd = -1;
    wal->prep.dfd = -1;
    wal->meta.fd = -1;
    wal->meta.dfd = -1;
    wal->user_tag = (uint64_t)cfg->user_data_tag << WAL_USER_DATA_TAG_SHIFT;
    if (wal->cfg.segment_bytes == 0) {
        wal->cfg.segment_bytes = WAL_SEGMENT_BYTES_DEFAULT;
    }
    if (wal->cfg.cache_bytes == 0) {
        wal->cfg.cache_bytes = WAL_CACHE_BYTES_DEFAULT;
    }
    wal_set_strategy(wal, &cfg->strategy);
    wal->flush_max = cfg->flushes_in_flight == 0 ? 1u : cfg->flushes_in_flight;
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
        rc = wal_direct_probe(wal, err, err_len);
    }
    if (rc == RR_OK) {
        rc = wal_recover(wal, err, err_len);
    }
    if (rc == RR_OK) {
        rc = wal_direct_start(wal, err, err_len);
    }
    if (rc != RR_OK) {
        wal_close(wal);
        return rc;
    }
    wal_meta_kick(wal);
    *out = wal;
    return RR_OK;
}

/* wal_close's: blocking, after the loop. */
static void close_if_open(int fd)
{
    if (fd >= 0) {
        close(fd);
    }
}

void wal_close(struct wal *wal)
{
    if (wal == NULL) {
        return;
    }
    for (uint32_t i = 0; i < wal->seg_count; i++) {
        close(wal->segs[i].fd);
        close_if_open(wal->segs[i].dfd);
    }
    close_if_open(wal->prep.fd);
    close_if_open(wal->prep.dfd);
    close_if_open(wal->meta.fd);
    close_if_open(wal->meta.dfd);
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
    free(wal->dio_bufs);
    free(wal->prep.header);
    free(wal->dir);
    free(wal);
}
