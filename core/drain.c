/* The drain: the one place that orders a group table's ready batches (core/drain.h).
 *
 * For each dirty group, in dirty-list order:
 *   raft_ready -> ops->persist (hard state, snapshot, entries into the open persist unit)
 *   -> msgs encoded into this drain's per-peer batches (heartbeats set aside to coalesce)
 *   -> msgs_after_persist encoded into the held unit's per-peer batches (or, when addressed
 *      to this node, copied as local messages)
 *   -> ops->restore (snapshot) -> ops->apply_ahead, ops->apply (committed) -> ops->read (reads)
 *   -> ops->read_failed (read failures) -> ops->role_changed (role event) -> raft_advance.
 * Then every peer's batch gets its heartbeat-set and heartbeat-response-set records and is
 * sent: one batch per peer per drain. Then, if anything was persisted or held, the held unit
 * closes the persist unit (ops->persist_submit). drain_persisted releases it later.
 *
 * Why apply before the sends leave: applying needs nothing from the network and the sends
 * of all groups must be gathered before one batch per peer can be written; a group's
 * committed entries are durable locally already (raft.h), so applying them early is safe.
 *
 * Errors: an encode that fails (RR_ENOMEM) drops that peer message, as a lossy network
 * would; Raft retransmits. The drain still finishes every group (a half-drained group would
 * be left between raft_ready and raft_advance) and returns the first error. A local message
 * that cannot be stored is also dropped, which stalls its group: RR_ENOMEM from the drain is
 * fatal for the node. */
#include "core/drain.h"

#include <stdlib.h>
#include <string.h>

#include "core/base/assert.h"
#include "core/base/errors.h"
#include "core/multi_internal.h"

/* Heartbeats per heartbeat-set record. One group sends at most one heartbeat per peer per
 * tick, so a drain after one tick writes one record per peer; a drain that gathers more
 * (several ticks without a drain) splits them. */
#define DRAIN_HB_RECORD_MAX       RAFT_GROUPS_MAX
#define DRAIN_HB_RECORD_BYTES_MAX (DRAIN_HB_RECORD_MAX * (uint64_t)DRAIN_HEARTBEAT_BYTES_MAX)

_Static_assert(DRAIN_HB_RECORD_BYTES_MAX < RAFT_BATCH_BYTES_MAX / 2,
               "a full heartbeat record must fit an empty batch");

struct drain_pass {
    struct multi *m;
    const struct drain_ops *ops;
    void *ctx;
    struct drain_held *held; /* acquired on first use in this drain */
    bool unit;               /* something was persisted or held */
    int rc;                  /* first error */
    uint64_t applied;        /* entries applied so far in this drain */
};

static void drain_note(int *first, int rc)
{
    if (rc != 0 && *first == 0) {
        *first = rc;
    }
}

void drain_outbox_init(struct drain_outbox *out, raft_node self)
{
    memset(out, 0, sizeof(*out));
    out->self = self;
}

void drain_outbox_fini(struct drain_outbox *out)
{
    for (uint32_t i = 0; i < out->peer_count; i++) {
        struct drain_peer *p = &out->peers[i];
        rr_bytes_free(&p->bytes);
        free(p->hb[0]);
        free(p->hb[1]);
    }
    for (uint32_t i = 0; i < out->sealed_count; i++) {
        rr_bytes_free(&out->sealed[i].bytes);
    }
    free(out->peers);
    free(out->sealed);
    memset(out, 0, sizeof(*out));
}

/* Grows *arr (elements of `size` bytes) to hold at least `need`, doubling. */
static int drain_grow(void **arr, uint32_t *cap, uint32_t need, size_t size, uint32_t first)
{
    if (need <= *cap) {
        return 0;
    }
    uint64_t want = *cap == 0 ? first : (uint64_t)*cap * 2;
    if (want < need) {
        want = need;
    }
    if (want > UINT32_MAX / size) {
        return RR_ETOOBIG;
    }
    void *p = realloc(*arr, (size_t)want * size);
    if (p == NULL) {
        return RR_ENOMEM;
    }
    *arr = p;
    *cap = (uint32_t)want;
    return 0;
}

/* Frees *arr (cap elements of `size` bytes) if it is above DRAIN_SCRATCH_KEEP_BYTES and the
 * drain that just ended used `used` elements, a quarter of it or less. */
static void drain_scratch_trim(void **arr, uint32_t *cap, uint32_t used, size_t size)
{
    if ((size_t)*cap * size > DRAIN_SCRATCH_KEEP_BYTES && (uint64_t)used * 4 <= *cap) {
        free(*arr);
        *arr = NULL;
        *cap = 0;
    }
}

static int drain_peer_get(struct drain_outbox *out, raft_node to, struct drain_peer **peer)
{
    RR_ASSERT(to != RAFT_NODE_NONE);
    RR_ASSERT(to <= RAFT_NODE_ID_MAX);
    RR_ASSERT(to != out->self);
    if (out->peer_of[to] == 0) {
        void *arr = out->peers;
        int rc = drain_grow(&arr, &out->peer_cap, out->peer_count + 1, sizeof(*out->peers), 4);
        out->peers = arr;
        if (rc != 0) {
            return rc;
        }
        /* Each open batch writer points at its own peer's bytes; the array may have moved. */
        for (uint32_t i = 0; i < out->peer_count; i++) {
            out->peers[i].w.out = &out->peers[i].bytes;
        }
        struct drain_peer *p = &out->peers[out->peer_count];
        memset(p, 0, sizeof(*p));
        p->to = to;
        rr_bytes_init(&p->bytes);
        out->peer_count++;
        out->peer_of[to] = (uint16_t)out->peer_count;
    }
    *peer = &out->peers[out->peer_of[to] - 1];
    RR_ASSERT((*peer)->to == to);
    return 0;
}

/* Closes the peer's full batch and keeps it aside so a new one can start. */
static int drain_peer_seal(struct drain_outbox *out, struct drain_peer *p)
{
    RR_ASSERT(p->open);
    void *arr = out->sealed;
    int rc = drain_grow(&arr, &out->sealed_cap, out->sealed_count + 1, sizeof(*out->sealed), 2);
    out->sealed = arr;
    if (rc != 0) {
        return rc;
    }
    codec_batch_end(&p->w);
    out->sealed[out->sealed_count].to = p->to;
    out->sealed[out->sealed_count].bytes = p->bytes;
    out->sealed_count++;
    rr_bytes_init(&p->bytes);
    p->open = false;
    return 0;
}

/* Makes sure the peer has an open batch with room for `more` bytes. */
static int drain_peer_room(struct drain_outbox *out, struct drain_peer *p, size_t more)
{
    if (p->open && p->bytes.len + more > RAFT_BATCH_BYTES_MAX) {
        int rc = drain_peer_seal(out, p);
        if (rc != 0) {
            return rc;
        }
    }
    if (!p->open) {
        p->bytes.len = 0;
        int rc = codec_batch_begin(&p->w, &p->bytes, out->self, p->to);
        if (rc != 0) {
            return rc;
        }
        p->open = true;
    }
    return 0;
}

static int drain_add_heartbeat(struct drain_peer *p, const struct raft_msg *m)
{
    unsigned k = m->type == RAFT_MSG_HEARTBEAT_RESP ? 1u : 0u;
    void *arr = p->hb[k];
    int rc = drain_grow(&arr, &p->hb_cap[k], p->hb_count[k] + 1, sizeof(*p->hb[k]), 64);
    p->hb[k] = arr;
    if (rc != 0) {
        return rc;
    }
    struct codec_heartbeat *h = &p->hb[k][p->hb_count[k]++];
    h->group = m->group;
    h->term = m->term;
    h->commit = k == 0 ? m->heartbeat.commit : 0;
    h->read_ctx = k == 0 ? m->heartbeat.read_ctx : m->heartbeat_resp.read_ctx;
    return 0;
}

/* Adds one message to the peer's batch, or to its heartbeat set. On failure the message is
 * dropped and the batch left as it was. */
static int drain_outbox_add(struct drain_outbox *out, const struct raft_msg *m)
{
    RR_ASSERT(m->from == out->self);
    struct drain_peer *p = NULL;
    int rc = drain_peer_get(out, m->to, &p);
    if (rc != 0) {
        return rc;
    }
    /* A quiescing heartbeat (rare: once per group going idle) travels as a message of its
     * own: heartbeat sets carry no flags. */
    bool quiesce = m->type == RAFT_MSG_HEARTBEAT && m->heartbeat.quiesce;
    if ((m->type == RAFT_MSG_HEARTBEAT && !quiesce) || m->type == RAFT_MSG_HEARTBEAT_RESP) {
        return drain_add_heartbeat(p, m);
    }
    size_t bytes = 0;
    rc = codec_msg_encoded_bytes(m, &bytes);
    RR_ASSERT(rc == 0); /* the core's own output is within the limits */
    rc = drain_peer_room(out, p, bytes + DRAIN_RECORD_SLACK_BYTES);
    if (rc != 0) {
        return rc;
    }
    size_t len = p->bytes.len;
    uint32_t records = p->w.record_count;
    rc = codec_batch_add_msg(&p->w, m);
    if (rc != 0) {
        p->bytes.len = len;
        p->w.record_count = records;
    }
    return rc;
}

/* Writes one peer's heartbeat sets (k = 0: heartbeats, 1: responses) in records of at most
 * DRAIN_HB_RECORD_MAX. */
static int drain_peer_write_hb(struct drain_outbox *out, struct drain_peer *p, unsigned k)
{
    int first = 0;
    for (uint32_t done = 0; done < p->hb_count[k];) {
        uint32_t n = p->hb_count[k] - done;
        n = n < DRAIN_HB_RECORD_MAX ? n : DRAIN_HB_RECORD_MAX;
        size_t more = (size_t)n * DRAIN_HEARTBEAT_BYTES_MAX + DRAIN_RECORD_SLACK_BYTES;
        int rc = drain_peer_room(out, p, more);
        if (rc == 0) {
            size_t len = p->bytes.len;
            uint32_t records = p->w.record_count;
            rc = codec_batch_add_heartbeats(&p->w, k == 1, p->hb[k] + done, n);
            if (rc != 0) {
                p->bytes.len = len;
                p->w.record_count = records;
            }
        }
        drain_note(&first, rc);
        done += n;
    }
    void *arr = p->hb[k];
    drain_scratch_trim(&arr, &p->hb_cap[k], p->hb_count[k], sizeof(*p->hb[k]));
    p->hb[k] = arr;
    p->hb_count[k] = 0;
    return first;
}

/* Finishes every peer's batch: heartbeat records last, then the header's count. */
static int drain_outbox_finish(struct drain_outbox *out)
{
    int first = 0;
    for (uint32_t i = 0; i < out->peer_count; i++) {
        struct drain_peer *p = &out->peers[i];
        drain_note(&first, drain_peer_write_hb(out, p, 0));
        drain_note(&first, drain_peer_write_hb(out, p, 1));
        if (p->open) {
            codec_batch_end(&p->w);
            p->open = false;
        }
    }
    return first;
}

/* Sends the finished batches (sealed ones first: they filled first) and empties the outbox,
 * keeping the peers' buffers for the next drain. */
static void drain_outbox_send(struct drain_outbox *out, const struct drain_ops *ops, void *ctx)
{
    for (uint32_t i = 0; i < out->sealed_count; i++) {
        struct drain_sealed *s = &out->sealed[i];
        ops->send(ctx, s->to, s->bytes.base, s->bytes.len);
        rr_bytes_free(&s->bytes);
    }
    out->sealed_count = 0;
    for (uint32_t i = 0; i < out->peer_count; i++) {
        struct drain_peer *p = &out->peers[i];
        RR_ASSERT(!p->open);
        size_t used = p->bytes.len;
        if (p->bytes.len > 0) {
            ops->send(ctx, p->to, p->bytes.base, p->bytes.len);
            p->bytes.len = 0;
        }
        if (p->bytes.cap > DRAIN_RETAIN_BYTES_MAX ||
            (p->bytes.cap > DRAIN_SCRATCH_KEEP_BYTES && used * 4 <= p->bytes.cap)) {
            rr_bytes_free(&p->bytes);
        }
    }
}

static int
drain_local_push(struct raft_msg **arr, uint32_t *count, uint32_t *cap, const struct raft_msg *m)
{
    /* Local messages are acknowledgements and votes: no entries or chunks to copy. */
    RR_ASSERT(m->type != RAFT_MSG_APPEND || m->append.entry_count == 0);
    RR_ASSERT(m->type != RAFT_MSG_SNAPSHOT);
    void *p = *arr;
    int rc = drain_grow(&p, cap, *count + 1, sizeof(**arr), 16);
    *arr = p;
    if (rc != 0) {
        return rc;
    }
    (*arr)[(*count)++] = *m;
    return 0;
}

static struct drain_held *drain_held_get(struct multi *m)
{
    struct drain_held *h = m->held_pool;
    if (h != NULL) {
        m->held_pool = h->next;
        m->held_pool_count--;
        h->next = NULL;
        return h;
    }
    h = calloc(1, sizeof(*h));
    if (h != NULL) {
        drain_outbox_init(&h->out, m->o.id);
    }
    return h;
}

static void drain_held_put(struct multi *m, struct drain_held *h)
{
    RR_ASSERT(h->out.sealed_count == 0);
    void *arr = h->local;
    drain_scratch_trim(&arr, &h->local_cap, h->local_count, sizeof(*h->local));
    h->local = arr;
    h->local_count = 0;
    if (m->held_pool_count >= MULTI_HELD_POOL_MAX) {
        drain_held_free(h);
        return;
    }
    h->next = m->held_pool;
    m->held_pool = h;
    m->held_pool_count++;
}

static int drain_hold(struct drain_pass *d, const struct raft_msg *msg)
{
    if (d->held == NULL) {
        d->held = drain_held_get(d->m);
        if (d->held == NULL) {
            return RR_ENOMEM;
        }
    }
    struct drain_held *h = d->held;
    if (msg->to == d->m->o.id) {
        return drain_local_push(&h->local, &h->local_count, &h->local_cap, msg);
    }
    return drain_outbox_add(&h->out, msg);
}

static void drain_messages(struct drain_pass *d, raft_group g, const struct raft_ready *rd)
{
    struct multi *m = d->m;
    uint32_t n = (rd->flags & RAFT_READY_MSGS) != 0 ? rd->msg_count : 0;
    for (uint32_t i = 0; i < n; i++) {
        const struct raft_msg *msg = &rd->msgs[i];
        RR_ASSERT(msg->group == g);
        if (msg->type == RAFT_MSG_SNAPSHOT && msg->snapshot.chunk.len > 0 &&
            msg->snapshot.chunk.base == NULL) {
            /* The core keeps no image: the caller reads the chunk and sends it itself. */
            RR_ASSERT(msg->to != m->o.id);
            d->ops->snapshot_read(d->ctx, g, msg);
            continue;
        }
        if (msg->type == RAFT_MSG_APPEND && msg->append.data_released) {
            /* Entries the core released: the caller reads them back from its durable log. */
            RR_ASSERT(msg->to != m->o.id);
            if (d->ops->entries_read != NULL) {
                d->ops->entries_read(d->ctx, g, msg);
            }
            continue;
        }
        int rc = msg->to == m->o.id
                     ? drain_local_push(&m->local, &m->local_count, &m->local_cap, msg)
                     : drain_outbox_add(&m->out, msg);
        drain_note(&d->rc, rc);
    }
    n = (rd->flags & RAFT_READY_MSGS_AFTER_PERSIST) != 0 ? rd->msg_after_persist_count : 0;
    for (uint32_t i = 0; i < n; i++) {
        RR_ASSERT(rd->msgs_after_persist[i].group == g);
        d->unit = true;
        drain_note(&d->rc, drain_hold(d, &rd->msgs_after_persist[i]));
    }
}

static void drain_apply(struct drain_pass *d, raft_group g, const struct raft_ready *rd)
{
    const struct drain_ops *ops = d->ops;
    if ((rd->flags & RAFT_READY_SNAPSHOT) != 0) {
        ops->restore(d->ctx, g, rd->snapshot, rd->snapshot_bytes);
    }
    uint32_t n = (rd->flags & RAFT_READY_COMMITTED) != 0 ? rd->committed_count : 0;
    if (n > 0 && ops->apply_ahead != NULL) {
        ops->apply_ahead(d->ctx, g, rd->committed, n);
    }
    for (uint32_t i = 0; i < n; i++) {
        ops->apply(d->ctx, g, &rd->committed[i]);
    }
    d->applied += n;
    /* Named `release` so the call does not read as the read(2) syscall. */
    void (*release)(void *, raft_group, const struct raft_read_state *) = ops->read;
    n = (rd->flags & RAFT_READY_READS) != 0 ? rd->read_count : 0;
    for (uint32_t i = 0; i < n; i++) {
        release(d->ctx, g, &rd->reads[i]);
    }
    n = (rd->flags & RAFT_READY_READ_FAILURES) != 0 ? rd->read_failure_count : 0;
    for (uint32_t i = 0; i < n; i++) {
        ops->read_failed(d->ctx, g, rd->read_failures[i]);
    }
    /* Last: clients still waiting after this batch's applies and reads are redirected. */
    if ((rd->flags & RAFT_READY_ROLE) != 0) {
        ops->role_changed(d->ctx, g, rd->role, rd->term, rd->leader);
    }
}

static void drain_group(struct drain_pass *d, uint32_t slot)
{
    struct multi *m = d->m;
    struct raft *r = multi_at(m, slot);
    /* Whatever marked the slot may have woken (or quiesced) the group. */
    multi_awake_sync(m, slot);
    if (!raft_has_ready(r)) {
        return;
    }
    raft_group g = multi_group_id(m, slot);
    struct raft_ready rd;
    raft_ready(r, &rd);
    uint32_t durable = RAFT_READY_HARD_STATE | RAFT_READY_ENTRIES | RAFT_READY_SNAPSHOT |
                       RAFT_READY_SNAPSHOT_CHUNK;
    if ((rd.flags & (durable | RAFT_READY_SNAPSHOT_DROPPED)) != 0) {
        /* (A dropped transfer's stored pieces go; nothing of it needs a persist unit.) */
        d->ops->persist(d->ctx, g, &rd);
        d->unit = d->unit || (rd.flags & durable) != 0;
    }
    drain_messages(d, g, &rd);
    drain_apply(d, g, &rd);
    raft_advance(r, &rd);
    /* More output than one ready may carry (RAFT_APPLY_ENTRIES_MAX): the next drain. */
    if (raft_has_ready(r)) {
        multi_mark_slot(m, slot);
    }
}

/* Steps messages this node addressed to itself into their groups. */
static int drain_step_local(struct multi *m, const struct raft_msg *msgs, uint32_t count)
{
    int first = 0;
    for (uint32_t i = 0; i < count; i++) {
        int64_t slot = multi_slot_of(m, msgs[i].group);
        RR_ASSERT(slot >= 0);
        multi_mark_slot(m, (uint32_t)slot);
        drain_note(&first, raft_step(multi_at(m, (uint32_t)slot), &msgs[i]));
    }
    return first;
}

/* Closes the persist unit: the held batches are finished now, sent by drain_persisted. */
static void drain_submit(struct drain_pass *d)
{
    if (!d->unit) {
        RR_ASSERT(d->held == NULL);
        return;
    }
    if (d->held == NULL) {
        d->held = drain_held_get(d->m);
    }
    if (d->held == NULL) {
        /* Cannot even hold an empty unit: persist acknowledgements are lost anyway. */
        drain_note(&d->rc, RR_ENOMEM);
        return;
    }
    drain_note(&d->rc, drain_outbox_finish(&d->held->out));
    d->held->seq = ++d->m->held_submitted;
    d->ops->persist_submit(d->ctx, d->held);
    d->held = NULL;
}

/* Puts the slots a bounded drain did not reach back at the front of the dirty list, ahead of
 * the groups marked during the drain, so that the next drain starts with them: a group with
 * a long backlog cannot keep the others waiting. Their dirty bits are still set. */
static void requeue_front(struct multi *m, const uint32_t *slots, uint32_t n)
{
    RR_ASSERT(m->dirty_count + n <= m->count);
    memmove(m->dirty_list + n, m->dirty_list, m->dirty_count * sizeof(*m->dirty_list));
    memcpy(m->dirty_list, slots, n * sizeof(*slots));
    m->dirty_count += n;
}

int drain_run(struct multi *m, const struct drain_ops *ops, void *ctx)
{
    return drain_run_bounded(m, ops, ctx, UINT64_MAX, NULL);
}

int drain_run_bounded(struct multi *m,
                      const struct drain_ops *ops,
                      void *ctx,
                      uint64_t apply_budget,
                      uint64_t *applied)
{
    RR_ASSERT(!m->draining);
    RR_ASSERT(apply_budget > 0);
    m->draining = true;
    struct drain_pass d = {.m = m, .ops = ops, .ctx = ctx};
    /* Walk a snapshot of the dirty list; groups marked meanwhile go on the fresh list. */
    uint32_t *walk = m->dirty_list;
    uint32_t n = m->dirty_count;
    m->dirty_list = m->drain_list;
    m->drain_list = walk;
    m->dirty_count = 0;
    uint32_t i = 0;
    for (; i < n && d.applied < apply_budget; i++) {
        uint32_t slot = walk[i];
        RR_ASSERT(m->dirty_bit[slot] != 0);
        m->dirty_bit[slot] = 0;
        drain_group(&d, slot);
    }
    if (i < n) {
        requeue_front(m, walk + i, n - i);
    }
    if (applied != NULL) {
        *applied = d.applied;
    }
    drain_note(&d.rc, drain_outbox_finish(&m->out));
    drain_outbox_send(&m->out, ops, ctx);
    drain_submit(&d);
    uint32_t local_count = m->local_count;
    m->local_count = 0;
    drain_note(&d.rc, drain_step_local(m, m->local, local_count));
    void *arr = m->local;
    drain_scratch_trim(&arr, &m->local_cap, local_count, sizeof(*m->local));
    m->local = arr;
    m->draining = false;
    return d.rc;
}

int drain_persisted(struct multi *m,
                    struct drain_held *held,
                    const struct drain_ops *ops,
                    void *ctx)
{
    RR_ASSERT(!m->draining);
    RR_ASSERT(held->next == NULL);
    RR_ASSERT(held->out.self == m->o.id);
    /* Units complete in submission order; releasing one early would let a later batch's
     * acknowledgement claim an earlier batch's entries durable. */
    RR_ASSERT(held->seq == m->held_done + 1);
    m->held_done++;
    m->draining = true;
    drain_outbox_send(&held->out, ops, ctx);
    int rc = drain_step_local(m, held->local, held->local_count);
    drain_held_put(m, held);
    m->draining = false;
    return rc;
}

void drain_held_free(struct drain_held *held)
{
    if (held == NULL) {
        return;
    }
    drain_outbox_fini(&held->out);
    free(held->local);
    free(held);
}
