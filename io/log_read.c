/* Appends whose entries the core released (raft_options.release_applied): their data is read
 * back from the worker's WAL, which holds every released entry above the group's snapshot,
 * and the append is sent once it is (core/drain.h, entries_read).
 *
 * A follower needs released entries only when it fell behind after they were released: a
 * new leader finds it lagging, or it was restarted or cut off. So one read at a time per
 * worker is enough; an append that finds the slot busy is dropped and the core sends again
 * (after a heartbeat's answer or a probe). Entries still in the WAL's ring of recent records
 * are read at once; older ones are read from the segment files through the ring, and the
 * append leaves when the reads complete. */
#include <stdlib.h>
#include <string.h>

#include "core/base/assert.h"
#include "core/base/errors.h"
#include "core/limits.h"
#include "io/log.h"
#include "io/node.h"
#include "storage/wal.h"

/* The read slot is freed after this long without an append that needed it: a follower
 * catching up needs one read after another, an idle node none. */
#define LOG_READ_IDLE_MS 10000

/* Room for a whole append's records: its payload bytes plus a record header and padding
 * per entry. */
#define LOG_READ_BUF_BYTES (RAFT_APPEND_BYTES_MAX + RAFT_APPEND_ENTRIES_MAX * 64u)

struct log_read {
    struct wal_read rd;
    struct raft_msg m; /* the append, its entries in ents */
    struct raft_entry ents[RAFT_APPEND_ENTRIES_MAX];
    uint8_t buf[LOG_READ_BUF_BYTES];
};

/* Fills the released entries of lr->m from the read and sends what could be filled: the
 * entries up to the first one the read did not deliver. An entry read back with another
 * index, term, type or length than the core's is never sent. */
static void send_filled(struct worker *w, struct log_read *lr)
{
    struct raft_msg_append *a = &lr->m.append;
    const struct wal_read *rd = &lr->rd;
    uint32_t n = 0;
    for (; n < a->entry_count; n++) {
        struct raft_entry *e = &lr->ents[n];
        if (!raft_entry_released(e)) {
            continue;
        }
        raft_index k = e->index - rd->lo;
        if (rd->status != RR_OK || e->index < rd->lo || k >= rd->count) {
            break;
        }
        const struct wal_entry *we = &rd->entries[k];
        if (we->index != e->index || we->term != e->term || we->type != e->type ||
            we->len != e->data.len) {
            LOG_E("group %u: entry %llu read back from the WAL is %llu/%llu, %u bytes; the log "
                  "has %llu/%llu, %u bytes: not sent",
                  lr->m.group, (unsigned long long)e->index, (unsigned long long)we->index,
                  (unsigned long long)we->term, we->len, (unsigned long long)e->index,
                  (unsigned long long)e->term, e->data.len);
            break;
        }
        e->data.base = we->data;
    }
    if (n == 0) {
        w->st.log_reads_dropped++;
        return;
    }
    a->entry_count = n;
    a->entries = lr->ents;
    a->data_released = false;
    if (peer_send_msg(w, &lr->m)) {
        w->st.log_reads++;
        w->st.log_read_entries += n;
    } else {
        w->st.log_reads_dropped++;
    }
}

static void read_done(struct wal_read *rd)
{
    struct worker *w = rd->arg;
    struct log_read *lr = w->log_read;
    RR_ASSERT(lr != NULL && &lr->rd == rd && w->log_read_busy);
    w->log_read_busy = false;
    if (rd->status != RR_OK) {
        LOG_W("group %u: reading entries %llu..%llu from the WAL failed: %s", rd->group,
              (unsigned long long)rd->lo, (unsigned long long)rd->hi, rr_strerror(rd->status));
    }
    send_filled(w, lr);
}

void log_read_entries(struct worker *w, raft_group g, const struct raft_msg *m)
{
    const struct raft_msg_append *a = &m->append;
    RR_ASSERT(m->type == RAFT_MSG_APPEND && a->data_released);
    RR_ASSERT(a->entry_count > 0 && a->entry_count <= RAFT_APPEND_ENTRIES_MAX);
    if (w->log_read_busy) {
        w->st.log_reads_dropped++;
        return;
    }
    if (w->log_read == NULL) {
        w->log_read = malloc(sizeof(*w->log_read));
        if (w->log_read == NULL) {
            w->st.log_reads_dropped++;
            return;
        }
    }
    struct log_read *lr = w->log_read;
    w->log_read_used_ms = w->now_ms;
    lr->m = *m;
    memcpy(lr->ents, a->entries, a->entry_count * sizeof(*lr->ents));
    raft_index hi = 0;
    for (uint32_t k = 0; k < a->entry_count; k++) {
        if (raft_entry_released(&lr->ents[k])) {
            hi = lr->ents[k].index;
        }
    }
    RR_ASSERT(hi > 0);
    memset(&lr->rd, 0, offsetof(struct wal_read, entries));
    lr->rd.group = g;
    lr->rd.lo = a->prev_index + 1;
    lr->rd.hi = hi;
    lr->rd.buf = lr->buf;
    lr->rd.buf_len = sizeof(lr->buf);
    lr->rd.cb = read_done;
    lr->rd.arg = w;
    int rc = wal_read(w->wal, &lr->rd);
    if (rc == 1) {
        w->log_read_busy = true; /* read_done sends it */
        return;
    }
    if (rc < 0) {
        /* RR_EBUSY (the WAL's read slots or ring are full): the core sends again. Anything
         * else means the WAL lacks entries the core released. */
        if (rc != RR_EBUSY) {
            LOG_W("group %u: cannot read entries %llu..%llu from the WAL: %s", g,
                  (unsigned long long)lr->rd.lo, (unsigned long long)hi, rr_strerror(rc));
        }
        w->st.log_reads_dropped++;
        return;
    }
    send_filled(w, lr);
}

void log_read_sweep(struct worker *w)
{
    if (w->log_read != NULL && !w->log_read_busy &&
        w->now_ms > w->log_read_used_ms + LOG_READ_IDLE_MS) {
        free(w->log_read);
        w->log_read = NULL;
    }
}
