/* Flushing: the write and sync of queued records, the strategies' timers that decide when,
 * and the acknowledgement of persist units once their records are durable. */
#include <errno.h>
#include <string.h>

#include "core/base/assert.h"
#include "core/base/errors.h"
#include "storage/wal_internal.h"

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

static struct wal_flush *flush_slot(struct wal *wal, uint32_t i)
{
    return &wal->flushes[(wal->flush_head + i) % WAL_FLUSHES_MAX];
}

/* Where the next flush starts: the end of the last one planned, or what is durable. */
static uint64_t planned_end(struct wal *wal)
{
    return wal->flush_count > 0 ? flush_slot(wal, wal->flush_count - 1)->hi : wal->durable;
}

/* Chooses [lo, hi) of the next flush, lo in segment s: whole records in that segment, at
 * most WAL_FLUSH_BYTES_MAX, a single record under `none`. */
static uint64_t plan_flush(struct wal *wal, uint64_t lo, int s, uint32_t *records)
{
    const struct wal_segment *seg = &wal->segs[s];
    uint64_t end = seg->sealed ? seg->lsn_end : wal->head;
    if (!seg->sealed && wal->strategy.kind != WAL_STRATEGY_NONE &&
        end - lo <= WAL_FLUSH_BYTES_MAX) {
        /* Everything queued fits one flush in the active segment: no walk over the record
         * headers. queued_records counts exactly the records of [lo, head) here (an
         * unsealed segment holds no seal). */
        *records = (uint32_t)wal->queued_records;
#ifdef RR_SLOW_ASSERTS
        uint64_t walked = lo;
        uint32_t n = 0;
        uint8_t h[WAL_RECORD_HEADER_BYTES];
        while (walked < end) {
            wal_ring_read(wal, walked, h, sizeof(h));
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
        wal_ring_read(wal, hi, hdr, sizeof(hdr));
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
    *records = n;
    return hi;
}

/* The segment a flush writes. Looked up again each time: retiring the oldest segment when
 * an earlier flush completes shifts wal->segs under a flush still in flight. */
static const struct wal_segment *flush_segment(const struct wal *wal, const struct wal_flush *f)
{
    int s = wal_segment_find(wal, f->lo);
    RR_ASSERT(s >= 0 && wal->segs[s].seq == f->seq);
    return &wal->segs[s];
}

/* ---- direct I/O: whole blocks from an aligned buffer (docs/storage.md "Direct I/O") -------- */

static uint8_t *dio_buf(struct wal *wal, const struct wal_flush *f)
{
    return wal->dio_bufs + (size_t)(f - wal->flushes) * WAL_DIO_BUF_BYTES;
}

static uint64_t dio_block(uint64_t off)
{
    return off & ~(uint64_t)(WAL_DIO_ALIGN - 1u);
}

/* Whether a flush from lsn lo in seg must wait: its first block is only partly new, and the
 * flush in flight before it writes that block too. Two writes of one block in flight at once
 * may reach the disk in either order, and the earlier one's padding would then overwrite the
 * later one's records. */
static bool dio_must_wait(const struct wal *wal, const struct wal_segment *seg, uint64_t lo)
{
    uint64_t off = WAL_SEGMENT_HEADER_BYTES + lo - seg->lsn_start;
    return seg->dfd >= 0 && wal->flush_count > 0 && dio_block(off) != off;
}

/* Builds flush f's buffer: the bytes already in its first block before lo (kept from the
 * flush before it), the records, then zeros to the end of the last block; and keeps that
 * last block's bytes for the next flush. */
static void dio_plan(struct wal *wal, struct wal_flush *f, const struct wal_segment *seg)
{
    uint64_t off_lo = WAL_SEGMENT_HEADER_BYTES + f->lo - seg->lsn_start;
    uint64_t off_hi = off_lo + (f->hi - f->lo);
    uint64_t start = dio_block(off_lo);
    uint64_t end = dio_block(off_hi + WAL_DIO_ALIGN - 1u);
    uint32_t before = (uint32_t)(off_lo - start);
    uint8_t *buf = dio_buf(wal, f);
    RR_ASSERT(end - start <= WAL_DIO_BUF_BYTES);
    if (before > 0) {
        /* Only the first flush in flight starts inside a block (dio_must_wait), so the
         * block's earlier bytes are those the last planned flush ended with. */
        RR_ASSERT(wal->dio_tail_seq == seg->seq && wal->dio_tail_off == start &&
                  wal->dio_tail_len == before);
        memcpy(buf, wal->dio_tail, before);
    }
    wal_ring_read(wal, f->lo, buf + before, (uint32_t)(f->hi - f->lo));
    memset(buf + (off_hi - start), 0, (size_t)(end - off_hi));
    wal->dio_tail_seq = seg->seq;
    wal->dio_tail_off = dio_block(off_hi);
    wal->dio_tail_len = (uint32_t)(off_hi - wal->dio_tail_off);
    memcpy(wal->dio_tail, buf + (wal->dio_tail_off - start), wal->dio_tail_len);
    f->dio_off = start;
    f->dio_len = (uint32_t)(end - start);
}

/* Prepares flush f's write (and linked sync) from f->cur; false if the ring had no room
 * (f->resubmit then makes wal_submit try again). The SQEs carry f's slot as their id. */
static bool submit_write(struct wal *wal, struct wal_flush *f)
{
    uint64_t id = (uint64_t)(f - wal->flushes);
    f->resubmit = !wal_sq_room(wal, wal->cfg.sync_method == WAL_SYNC_RWF_DSYNC ? 1u : 2u);
    if (f->resubmit) {
        wal->stats.deferred++;
        return false;
    }
    const struct wal_segment *seg = flush_segment(wal, f);
    int fd = seg->fd;
    unsigned nr;
    off_t off;
    if (f->dio_len > 0) {
        fd = seg->dfd;
        f->iov[0].iov_base = dio_buf(wal, f);
        f->iov[0].iov_len = f->dio_len;
        nr = 1;
        off = (off_t)f->dio_off;
    } else {
        uint64_t ring_size = wal->ring_mask + 1;
        uint64_t pos = f->cur & wal->ring_mask;
        uint64_t len = f->hi - f->cur;
        uint64_t first = ring_size - pos < len ? ring_size - pos : len;
        f->iov[0].iov_base = wal->ring_buf + pos;
        f->iov[0].iov_len = (size_t)first;
        f->iov[1].iov_base = wal->ring_buf;
        f->iov[1].iov_len = (size_t)(len - first);
        nr = len > first ? 2u : 1u;
        off = (off_t)(WAL_SEGMENT_HEADER_BYTES + f->cur - seg->lsn_start);
    }
    f->write_done = false;
    f->sync_done = false;
    f->short_write = false;
    f->sync_cancelled = false;
    f->write_res = 0;
    if (wal->cfg.sync_method == WAL_SYNC_RWF_DSYNC) {
        struct io_uring_sqe *sqe = wal_sqe(wal, WAL_OP_WRITE, id);
        io_uring_prep_writev2(sqe, fd, f->iov, nr, (uint64_t)off, RWF_DSYNC);
        f->sync_done = true; /* the write itself is the sync */
        return true;
    }
    /* Both SQEs go to the kernel in one submission (room for both was made above), or the
     * link would break. */
    struct io_uring_sqe *w = wal_sqe(wal, WAL_OP_WRITE, id);
    io_uring_prep_writev(w, fd, f->iov, nr, (uint64_t)off);
    w->flags |= IOSQE_IO_LINK;
    struct io_uring_sqe *s = wal_sqe(wal, WAL_OP_SYNC, id);
    io_uring_prep_fsync(s, fd, IORING_FSYNC_DATASYNC);
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
 * tail of the flushes that were in flight (wal_recover.c). */
static void stamp_flush_base(struct wal *wal, const struct wal_segment *seg, uint64_t lo)
{
    uint8_t hdr[WAL_REC_OFF_LEN];
    uint64_t d = wal->durable;
    uint64_t base = d > seg->lsn_start ? d - seg->lsn_start : 0;
    wal_ring_read(wal, lo, hdr, sizeof(hdr));
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

void wal_flush_maybe(struct wal *wal)
{
    if (wal->error != 0) {
        return;
    }
    for (uint32_t i = 0; i < wal->flush_count; i++) {
        struct wal_flush *f = flush_slot(wal, i);
        if (f->resubmit) {
            submit_write(wal, f); /* the ring had no room for it earlier */
        }
    }
    uint64_t lo = planned_end(wal);
    if (wal->flush_count == wal->flush_max || lo == wal->head) {
        return;
    }
    int s = wal_segment_find(wal, lo);
    RR_ASSERT(s >= 0);
    if (wal->flush_count > 0 && flush_slot(wal, 0)->seq != wal->segs[s].seq) {
        /* A flush starts in a new segment only once every earlier one is durable: recovery
         * takes a segment that ends without its seal, followed by one holding records, for
         * corruption. */
        return;
    }
    if (dio_must_wait(wal, &wal->segs[s], lo)) {
        return; /* the flush in flight completes first, then calls again */
    }
    if (!strategy_ready(wal)) {
        return;
    }
    if (!wal_sq_room(wal, 3)) { /* write, sync and the timer's removal */
        wal->stats.deferred++;
        return;
    }
    struct wal_flush *f = flush_slot(wal, wal->flush_count);
    RR_ASSERT(!f->active);
    f->lo = lo;
    f->cur = f->lo;
    f->hi = plan_flush(wal, lo, s, &f->records);
    f->seq = wal->segs[s].seq;
    RR_ASSERT(f->hi > f->lo);
    f->active = true;
    f->done = false;
    f->resubmit = false;
    f->started_ns = wal_now_ns(wal);
    wal->stats.overlapped += wal->flush_count > 0 ? 1u : 0u;
    wal->flush_count++;
    stamp_flush_base(wal, &wal->segs[s], f->lo);
    f->dio_len = 0;
    if (wal->segs[s].dfd >= 0) {
        dio_plan(wal, f, &wal->segs[s]); /* after the stamp: the buffer holds the records */
    }
    wal->timer_fired = false;
    disarm_timer(wal);
    wal->queued_records -= f->records;
    record_queue_delays(wal, f->hi, f->started_ns);
    submit_write(wal, f);
}

static void ack_units(struct wal *wal, int status);

void wal_submit(struct wal *wal)
{
    wal->append_ns = 0;
    if (wal->error != 0) {
        wal_fail_units(wal);
        return;
    }
    ack_units(wal, RR_OK); /* units that queued no record of their own */
    wal_flush_maybe(wal);
    wal_meta_kick(wal); /* a step the ring had no room for */
}

/* After a fatal error every queued unit fails, once no flush has an SQE in flight: a
 * flush whose write waits for ring room (resubmit) has none and never will, now. */
void wal_fail_units(struct wal *wal)
{
    if (wal->error == 0) {
        return;
    }
    for (uint32_t i = 0; i < wal->flush_count; i++) {
        const struct wal_flush *f = flush_slot(wal, i);
        if (!f->done && !f->resubmit) {
            return; /* its completion calls again */
        }
    }
    for (uint32_t i = 0; i < wal->flush_count; i++) {
        struct wal_flush *f = flush_slot(wal, i);
        f->active = false;
        f->done = false;
        f->resubmit = false;
    }
    wal->flush_count = 0;
    ack_units(wal, wal->error);
}

static void ack_units(struct wal *wal, int status)
{
    while (wal->unit_count > 0) {
        struct wal_unit *u = &wal->units[wal->unit_head];
        if (status == RR_OK && u->end_lsn > wal->durable) {
            break;
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

/* Flushes complete in any order; they become durable in the order they were planned. */
static void flush_done(struct wal *wal, struct wal_flush *f)
{
    f->done = true;
    bool advanced = false;
    while (wal->flush_count > 0 && flush_slot(wal, 0)->done) {
        struct wal_flush *h = flush_slot(wal, 0);
        (void)flush_segment(wal, h); /* asserts the flush's segment is still in place */
        uint64_t now = wal_now_ns(wal);
        wal->stats.flushes++;
        wal->stats.records += h->records;
        wal->stats.bytes += h->hi - h->lo;
        histogram_record(&wal->stats.batch_records, h->records);
        histogram_record(&wal->stats.batch_bytes, h->hi - h->lo);
        histogram_record(&wal->stats.flush_ns, now - h->started_ns);
        RR_ASSERT(h->lo == wal->durable);
        wal->durable = h->hi;
        h->active = false;
        h->done = false;
        wal->flush_head = (wal->flush_head + 1u) % WAL_FLUSHES_MAX;
        wal->flush_count--;
        advanced = true;
    }
    if (!advanced) {
        return; /* an earlier flush is still in flight */
    }
    ack_units(wal, RR_OK);
    if (wal->collect_wanted) {
        wal_collect(wal);
    }
    wal_flush_maybe(wal);
}

/* Both halves of a linked flush have completed (or the single RWF_DSYNC write). */
static void flush_settle(struct wal *wal, struct wal_flush *f)
{
    if (!f->write_done || !f->sync_done) {
        return;
    }
    if (wal->error != 0) {
        f->done = true;
        wal_fail_units(wal); /* stopped: once nothing is left in flight, every unit fails */
        return;
    }
    if (f->short_write || f->sync_cancelled) {
        submit_write(wal, f); /* resume from the first byte not written, then sync again */
        return;
    }
    flush_done(wal, f);
}

static struct wal_flush *flush_of(struct wal *wal, uint64_t id)
{
    RR_ASSERT(id < WAL_FLUSHES_MAX);
    struct wal_flush *f = &wal->flushes[id];
    RR_ASSERT(f->active);
    return f;
}

void wal_flush_handle_write(struct wal *wal, uint64_t id, int res)
{
    struct wal_flush *f = flush_of(wal, id);
    res = WAL_FAULT(WAL_FP_WRITE_CQE, res);
    f->write_done = true;
    const struct wal_segment *seg = flush_segment(wal, f);
    uint64_t want = f->dio_len > 0 ? f->dio_len : f->hi - f->cur;
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
        if (f->dio_len == 0) {
            f->cur += (uint64_t)res; /* direct I/O writes its whole blocks again */
        }
        f->short_write = true;
    }
    if (wal->cfg.sync_method == WAL_SYNC_RWF_DSYNC) {
        f->sync_done = true;
    }
    flush_settle(wal, f);
}

void wal_flush_handle_sync(struct wal *wal, uint64_t id, int res)
{
    struct wal_flush *f = flush_of(wal, id);
    res = WAL_FAULT(WAL_FP_SYNC_CQE, res);
    f->sync_done = true;
    if (res < 0 && res != -ECANCELED) {
        /* Never retried: after a failed fsync the kernel may have dropped the dirty pages,
         * so a later successful fsync would prove nothing (the "fsyncgate" lesson). */
        char name[32];
        wal_segment_name(name, sizeof(name), f->seq);
        wal_fail(wal, RR_EIO, "%s: fdatasync failed: %s; the WAL stops (fsync is never retried)",
                 name, strerror(-res));
    } else if (res == -ECANCELED) {
        /* A short or failed write breaks the link. Should the write have succeeded after
         * all, the range is written and synced again: never acknowledge without a sync. */
        f->sync_cancelled = true;
    }
    flush_settle(wal, f);
}

void wal_flush_handle_timer(struct wal *wal, uint64_t gen)
{
    if (gen == wal->timer_gen) {
        wal->timer_armed = false;
        wal->timer_fired = true;
        wal_flush_maybe(wal);
    }
}
