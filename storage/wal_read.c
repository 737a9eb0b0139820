/* Reads of entries: from the ring when it still holds them, else from the segment files
 * (through the ring asynchronously, or with blocking preads at start-up and in tools). */
#include <errno.h>
#include <unistd.h>

#include "core/base/assert.h"
#include "core/base/errors.h"
#include "storage/wal_internal.h"

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
int wal_pread_full(int fd, uint8_t *buf, size_t len, off_t off)
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
            wal_ring_read(wal, loc->lsn, rd->buf + slot->pos[k], loc->size);
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
            int rc = wal_pread_full(seg->fd, rd->buf + slot->pos[k], slot->run[k], off);
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

void wal_read_handle(struct wal *wal, uint64_t id, int res)
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
