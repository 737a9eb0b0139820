/* The simulated world: N nodes, each a group table per worker with a virtual disk, a state
 * machine per group and clients, connected by a lossy virtual network, advanced one event at
 * a time from a single seeded PRNG. An event (a step) is one tick of one node, one batch
 * delivery or one persist completion (plus the fault scheduler's turn once per tick); after
 * every step the node it touched is drained through core/drain.h and the checkers run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/assert.h"
#include "core/base/errors.h"
#include "tests/sim/sim.h"

#define SIM_SNAPSHOT_GAP     16u /* applied entries past the durable snapshot before another */
#define SIM_TRAILING_MAX     5u  /* entries kept before a snapshot index, chosen per snapshot */
#define SIM_DRAIN_ROUNDS     8   /* drain_run calls per step while groups still have a ready */
#define SIM_DOWN_TICKS_MAX   25u
#define SIM_HEALED_DELAY_MAX 50u /* network and disk delay bound after heal: half a tick */
#define SIM_UNCOMMITTED_MAX  8u  /* clients propose only while the leader's tail is shorter */

static uint64_t sim_rand(struct sim *s, uint64_t lo, uint64_t hi) /* in [lo, hi] */
{
    return rr_prng_range(&s->prng, lo, hi + 1);
}

static bool sim_chance(struct sim *s, uint32_t per_million)
{
    return rr_prng_chance(&s->prng, per_million) != 0;
}

static void sim_mix(struct sim *s, uint64_t x)
{
    s->digest = (s->digest ^ x) * 0x100000001b3ULL;
    s->digest ^= s->digest >> 29;
}

const struct raft_config *sim_config_in_force(const struct raft *r)
{
    static struct raft_config ring[4];
    static unsigned next;
    struct raft_config *c = &ring[next++ % 4];
    raft_config(r, c);
    return c;
}

struct raft *sim_group(struct sim *s, uint32_t node, raft_group g)
{
    struct sim_node *nd = &s->node[node];
    RR_ASSERT(nd->up);
    RR_ASSERT(g < s->cfg.groups);
    return nd->raft[g]; /* cached: multi_group() would mark the slot dirty */
}

/* ---- event queue: a binary heap ordered by (time, seq) ---- */

static bool ev_before(const struct sim_event *a, const struct sim_event *b)
{
    return a->time < b->time || (a->time == b->time && a->seq < b->seq);
}

static void ev_push(struct sim *s, struct sim_event e)
{
    if (s->ev_count == s->ev_cap) {
        s->ev_cap = s->ev_cap == 0 ? 1024 : s->ev_cap * 2;
        s->ev = realloc(s->ev, s->ev_cap * sizeof(*s->ev));
        RR_ASSERT(s->ev != NULL);
    }
    e.seq = s->ev_seq++;
    size_t i = s->ev_count++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!ev_before(&e, &s->ev[p])) {
            break;
        }
        s->ev[i] = s->ev[p];
        i = p;
    }
    s->ev[i] = e;
}

static struct sim_event ev_pop(struct sim *s)
{
    RR_ASSERT(s->ev_count > 0);
    struct sim_event top = s->ev[0];
    struct sim_event last = s->ev[--s->ev_count];
    size_t n = s->ev_count;
    size_t i = 0;
    if (n == 0) {
        return top;
    }
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) {
            break;
        }
        if (c + 1 < n && ev_before(&s->ev[c + 1], &s->ev[c])) {
            c++;
        }
        if (!ev_before(&s->ev[c], &last)) {
            break;
        }
        s->ev[i] = s->ev[c];
        i = c;
    }
    s->ev[i] = last;
    return top;
}

static void ev_at(struct sim *s,
                  uint64_t time,
                  uint8_t type,
                  uint32_t node,
                  uint32_t worker,
                  struct sim_packet *pkt)
{
    struct sim_event e = {
        .time = time,
        .type = type,
        .node = node,
        .worker = worker,
        .incarnation = s->node[node].incarnation,
        .pkt = pkt,
    };
    ev_push(s, e);
}

/* ---- network ---- */

static void net_send(
    struct sim *s, uint32_t from, uint32_t worker, raft_node to_id, const uint8_t *b, size_t len)
{
    if (to_id == RAFT_NODE_NONE || to_id > s->cfg.pool || to_id - 1 == from) {
        sim_fail(s, "node %u sent a batch to node %u", from + 1, to_id);
    }
    uint32_t to = to_id - 1;
    s->n.batches++;
    sim_mix(s, sim_hash_bytes(to_id, b, len));
    check_outgoing(s, from, b, len);
    if (s->blocked[from][to] || sim_chance(s, s->rates.loss)) {
        s->n.dropped++;
        return;
    }
    uint32_t copies = 1;
    if (sim_chance(s, s->rates.dup)) {
        copies = 2;
        s->n.duplicated++;
    }
    for (uint32_t c = 0; c < copies; c++) {
        struct sim_packet *p = malloc(sizeof(*p) + len);
        RR_ASSERT(p != NULL);
        p->from = from;
        p->to = to;
        p->worker = worker;
        p->epoch = s->conn_epoch[from][to];
        p->len = len;
        memcpy(p->bytes, b, len);
        ev_at(s, s->now + sim_rand(s, 1, s->rates.delay_max), SIM_EV_DELIVER, to, worker, p);
    }
}

/* ---- state machine ---- */

static void sm_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint64_t sm_get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

/* The image's checksum over its first 24 bytes. */
static uint64_t sm_sum(const uint8_t *p)
{
    uint64_t x = 0x736e617073696d31ull; /* "snapsim1" */
    for (int i = 0; i < 3; i++) {
        x ^= sm_get64(p + 8 * i);
        x = rr_splitmix64(&x);
    }
    return x;
}

static void sm_save(const struct sim_sm *sm, uint8_t out[SIM_SM_BYTES])
{
    sm_put64(out, sm->applied);
    sm_put64(out + 8, sm->hash);
    sm_put64(out + 16, sm->count);
    sm_put64(out + 24, sm_sum(out));
}

static void sm_load(struct sim *s,
                    uint32_t node,
                    raft_group g,
                    const struct raft_snapshot_meta *meta,
                    const uint8_t *data,
                    uint64_t bytes)
{
    if (bytes != SIM_SM_BYTES || data == NULL) {
        sim_fail(s, "node %u group %u: snapshot of %llu bytes, not a state machine image", node + 1,
                 g, (unsigned long long)bytes);
    }
    if (sm_get64(data + 24) != sm_sum(data)) {
        /* A snapshot received from a leader is installed only after the receiver checked
         * the whole image (core/raft.h, raft_snapshot_received): a corrupted chunk must never
         * get this far. */
        sim_violation(s, "snapshot_integrity",
                      "node %u group %u restores snapshot %llu from an image that does not check "
                      "out (a corrupted chunk was installed)",
                      node + 1, g, (unsigned long long)meta->index);
    }
    struct sim_sm *sm = &s->node[node].sm[g];
    sm->applied = sm_get64(data);
    sm->hash = sm_get64(data + 8);
    sm->count = sm_get64(data + 16);
    if (sm->applied != meta->index) {
        sim_fail(s, "node %u group %u: snapshot meta index %llu holds a state at %llu", node + 1, g,
                 (unsigned long long)meta->index, (unsigned long long)sm->applied);
    }
    check_restore(s, node, g, meta->index);
}

/* ---- snapshot transfers ---- */

/* A chunk the core handed out: stored in order in the group's receive buffer (a temporary
 * file on a real node). After the last one, the group waits for its verdict. */
static void
store_chunk(struct sim *s, uint32_t node, raft_group g, const struct raft_snapshot_chunk *ch)
{
    struct sim_node *nd = &s->node[node];
    struct sim_rx *rx = &nd->rx[g];
    if (ch->offset == 0) {
        memset(rx, 0, sizeof(*rx));
        rx->index = ch->meta->index;
        rx->transfer = ch->transfer;
        rx->total = ch->total_bytes;
    }
    if (rx->index != ch->meta->index || rx->transfer != ch->transfer ||
        ch->offset != rx->received || rx->total != ch->total_bytes) {
        sim_fail(s,
                 "node %u group %u: snapshot chunk %llu+%u of %llu handed out after %llu of %llu",
                 node + 1, g, (unsigned long long)ch->offset, ch->len,
                 (unsigned long long)ch->meta->index, (unsigned long long)rx->received,
                 (unsigned long long)rx->index);
    }
    if (ch->offset + ch->len > SIM_SM_BYTES) {
        rx->overflow = true;
    } else if (ch->len > 0) {
        memcpy(rx->data + ch->offset, ch->data, ch->len);
    }
    rx->received += ch->len;
    if (ch->done) {
        nd->verdict[nd->verdict_count++] = g;
    }
}

/* After a drain: the verdict on every image whose last chunk was handed out. An image whose
 * checksum does not match (a chunk was corrupted on the way) is refused, never installed. */
static void give_verdicts(struct sim *s, uint32_t node)
{
    struct sim_node *nd = &s->node[node];
    for (uint32_t i = 0; i < nd->verdict_count; i++) {
        raft_group g = nd->verdict[i];
        struct sim_rx *rx = &nd->rx[g];
        bool ok = !rx->overflow && rx->total == SIM_SM_BYTES && rx->received == rx->total &&
                  sm_get64(rx->data + 24) == sm_sum(rx->data) && sm_get64(rx->data) == rx->index;
        int rc = raft_snapshot_received(nd->raft[g], rx->transfer, ok);
        if (rc == RR_ENOTFOUND && rx->dropped) {
            continue; /* left behind (caught up, or a new term) before its verdict */
        }
        if (rc != 0) {
            sim_fail(s, "node %u group %u: raft_snapshot_received(%llu, %d): %s", node + 1, g,
                     (unsigned long long)rx->index, ok, rr_strerror(rc));
        }
        if (!ok) {
            s->n.snapshots_refused++; /* the buffer is reused by the next transfer's offset 0 */
        }
        multi_mark_dirty(nd->m[g % s->cfg.workers], g);
        sim_mix(s, ((uint64_t)g << 32) ^ rx->index ^ (ok ? 1u : 2u));
    }
    nd->verdict_count = 0;
}

/* ---- drain ops ---- */

static struct sim_unit *unit_cur(struct sim_node *nd, uint32_t w)
{
    if (nd->cur[w] == NULL) {
        nd->cur[w] = calloc(1, sizeof(*nd->cur[w]));
        RR_ASSERT(nd->cur[w] != NULL);
    }
    return nd->cur[w];
}

static void op_persist(void *ctx, raft_group g, const struct raft_ready *rd)
{
    struct sim_wctx *c = ctx;
    struct sim *s = c->s;
    if ((rd->flags & RAFT_READY_SNAPSHOT_DROPPED) != 0) {
        s->node[c->node].rx[g].dropped = true; /* a verdict pending on it finds nothing */
    }
    if ((rd->flags & (RAFT_READY_HARD_STATE | RAFT_READY_ENTRIES | RAFT_READY_SNAPSHOT |
                      RAFT_READY_SNAPSHOT_CHUNK)) == 0) {
        return; /* a drop alone opens no persist unit */
    }
    struct sim_unit *u = unit_cur(&s->node[c->node], c->worker);
    /* Per group: snapshot, entries, then hard state, as a WAL writes them, so a torn unit
     * never leaves a durable commit index past the durable entries. */
    if ((rd->flags & RAFT_READY_SNAPSHOT_CHUNK) != 0) {
        store_chunk(s, c->node, g, rd->snapshot_chunk);
    }
    if ((rd->flags & RAFT_READY_SNAPSHOT) != 0) {
        /* The installed image is the one received through the chunks: it becomes the
         * group's snapshot (durable with the unit) and what this node sends from now on. */
        struct sim_node *nd = &s->node[c->node];
        struct sim_rx *rx = &nd->rx[g];
        if (rx->index != rd->snapshot->index || rx->received != rx->total ||
            rd->snapshot_bytes != rx->total) {
            sim_fail(s, "node %u group %u: snapshot %llu installed without its image received",
                     c->node + 1, g, (unsigned long long)rd->snapshot->index);
        }
        struct sim_rec *r = sim_unit_add(u);
        r->kind = SIM_REC_SNAPSHOT;
        r->g = g;
        r->meta = *rd->snapshot;
        sim_rec_set_data(r, rx->data, rx->total);
        nd->img[g].index = rd->snapshot->index;
        memcpy(nd->img[g].data, rx->data, SIM_SM_BYTES);
        memset(rx, 0, sizeof(*rx));
        nd->watch[g].snap_index = rd->snapshot->index;
        nd->watch[g].snap_config = rd->snapshot->config;
    }
    if ((rd->flags & RAFT_READY_ENTRIES) != 0) {
        for (uint32_t i = 0; i < rd->entry_count; i++) {
            const struct raft_entry *e = &rd->entries[i];
            struct sim_rec *r = sim_unit_add(u);
            r->kind = SIM_REC_ENTRY;
            r->g = g;
            r->index = e->index;
            r->term = e->term;
            r->type = e->type;
            sim_rec_set_data(r, e->data.base, e->data.len);
        }
        check_persist_entries(s, c->node, g, rd);
    }
    if ((rd->flags & RAFT_READY_HARD_STATE) != 0) {
        struct sim_rec *r = sim_unit_add(u);
        r->kind = SIM_REC_HARD_STATE;
        r->g = g;
        r->hs = rd->hard_state;
    }
}

static void op_send(void *ctx, raft_node to, const uint8_t *batch, size_t len)
{
    struct sim_wctx *c = ctx;
    net_send(c->s, c->node, c->worker, to, batch, len);
}

static void op_persist_submit(void *ctx, struct drain_held *held)
{
    struct sim_wctx *c = ctx;
    struct sim *s = c->s;
    struct sim_node *nd = &s->node[c->node];
    uint32_t w = c->worker;
    struct sim_unit *u = unit_cur(nd, w);
    nd->cur[w] = NULL;
    u->held = held;
    /* The device works on several units at once but completes them in order: a unit is
     * durable after its own delay and never before the unit submitted ahead of it. */
    u->done_at = s->now + sim_rand(s, 1, s->rates.disk_max);
    if (u->done_at < nd->disk_free_at[w]) {
        u->done_at = nd->disk_free_at[w];
    }
    nd->disk_free_at[w] = u->done_at;
    if (nd->tail[w] == NULL) {
        nd->head[w] = u;
    } else {
        nd->tail[w]->next = u;
    }
    nd->tail[w] = u;
    s->n.persists++;
    ev_at(s, u->done_at, SIM_EV_PERSIST, c->node, w, NULL);
}

static void
op_restore(void *ctx, raft_group g, const struct raft_snapshot_meta *meta, uint64_t bytes)
{
    struct sim_wctx *c = ctx;
    struct sim_image *img = &c->s->node[c->node].img[g];
    if (img->index != meta->index) {
        sim_fail(c->s, "node %u group %u: restore of snapshot %llu without its image", c->node + 1,
                 g, (unsigned long long)meta->index);
    }
    c->s->n.snapshots_installed++;
    check_proposals_snapshot(c->s, c->node, g, meta);
    sm_load(c->s, c->node, g, meta, img->data, bytes);
}

/* A chunk to send: read from this node's image of that snapshot, sometimes fewer bytes than
 * allowed, sometimes with a byte flipped (the receiver's check must refuse the image). */
/* Sends one message alone in a batch, as the node sends what it read for the core (a
 * snapshot chunk, an append of released entries). */
static void send_alone(struct sim *s, const struct sim_wctx *c, const struct raft_msg *m)
{
    struct rr_bytes b;
    rr_bytes_init(&b);
    struct codec_batch_writer w;
    if (codec_batch_begin(&w, &b, m->from, m->to) != 0 || codec_batch_add_msg(&w, m) != 0) {
        sim_fail(s, "node %u group %u: cannot encode a %s", c->node + 1, m->group,
                 raft_msg_type_name(m->type));
    }
    codec_batch_end(&w);
    net_send(s, c->node, c->worker, m->to, b.base, b.len);
    rr_bytes_free(&b);
}

static void op_snapshot_read(void *ctx, raft_group g, const struct raft_msg *m)
{
    struct sim_wctx *c = ctx;
    struct sim *s = c->s;
    const struct sim_image *img = &s->node[c->node].img[g];
    const struct raft_msg_snapshot *sn = &m->snapshot;
    if (img->index != sn->last_index || sn->total_bytes != SIM_SM_BYTES ||
        sn->offset >= SIM_SM_BYTES) {
        s->n.chunks_dropped++; /* not this node's image any more: the core sends again */
        return;
    }
    struct raft_msg out = *m;
    uint32_t len = sn->chunk.len;
    if (len > 1 && sim_chance(s, s->rates.shorten)) {
        len = (uint32_t)sim_rand(s, 1, len - 1);
    }
    uint8_t buf[SIM_SM_BYTES];
    memcpy(buf, img->data + sn->offset, len);
    if (sim_chance(s, s->rates.corrupt)) {
        buf[sim_rand(s, 0, len - 1)] ^= (uint8_t)sim_rand(s, 1, 255);
        s->n.chunks_corrupted++;
    }
    out.snapshot.chunk.base = buf;
    out.snapshot.chunk.len = len;
    out.snapshot.done = sn->offset + len == sn->total_bytes;
    s->n.chunks_sent++;
    send_alone(s, c, &out);
}

/* drain_ops.entries_read: a leader's append names entries whose data its core released; they
 * come from this node's durable log, as the node reads them from its WAL. Every released
 * entry above the core's snapshot is durable (the core releases only persisted entries and
 * sends the snapshot for those it covers), so one missing or of another term is a
 * violation. The read may still come up short or not at all (the node drops the message
 * when its one read slot is busy): the core sends again. */
static void op_entries_read(void *ctx, raft_group g, const struct raft_msg *m)
{
    struct sim_wctx *c = ctx;
    struct sim *s = c->s;
    const struct sim_dlog *d = &s->node[c->node].dlog[g];
    const struct raft_msg_append *a = &m->append;
    RR_ASSERT(a->data_released && a->entry_count <= RAFT_APPEND_ENTRIES_MAX);
    if (sim_chance(s, s->rates.loss)) {
        s->n.entries_reads_dropped++;
        return;
    }
    struct raft_entry ents[RAFT_APPEND_ENTRIES_MAX];
    for (uint32_t k = 0; k < a->entry_count; k++) {
        const struct raft_entry *e = &a->entries[k];
        ents[k] = *e;
        if (!raft_entry_released(e)) {
            continue;
        }
        const struct sim_dentry *de = NULL;
        if (e->index > d->snap.index && e->index <= sim_dlog_last(d)) {
            de = &d->e[e->index - d->snap.index - 1];
        }
        if (de == NULL || de->term != e->term || de->type != e->type || de->len != e->data.len) {
            sim_violation(s, "released_durable",
                          "node %u group %u: released entry %llu/%llu is not in the durable log "
                          "(durable snapshot %llu, last %llu)",
                          c->node + 1, g, (unsigned long long)e->index, (unsigned long long)e->term,
                          (unsigned long long)d->snap.index, (unsigned long long)sim_dlog_last(d));
        }
        ents[k].data.base = de->data;
    }
    struct raft_msg out = *m;
    out.append.entries = ents;
    out.append.data_released = false;
    if (a->entry_count > 1 && sim_chance(s, s->rates.shorten)) {
        out.append.entry_count = (uint32_t)sim_rand(s, 1, a->entry_count - 1);
    }
    s->n.entries_reads++;
    send_alone(s, c, &out);
}

static void op_apply(void *ctx, raft_group g, const struct raft_entry *e)
{
    struct sim_wctx *c = ctx;
    c->s->n.applied++;
    sim_mix(c->s, e->index ^ (e->term << 40) ^ ((uint64_t)g << 20));
    check_apply(c->s, c->node, g, e);
}

static void op_read(void *ctx, raft_group g, const struct raft_read_state *rs)
{
    struct sim_wctx *c = ctx;
    check_read_served(c->s, c->node, g, rs->ctx, rs->index);
}

static void op_read_failed(void *ctx, raft_group g, uint64_t read_ctx)
{
    struct sim_wctx *c = ctx;
    check_read_failed(c->s, c->node, g, read_ctx);
}

static void op_role_changed(void *ctx, raft_group g, uint8_t role, raft_term term, raft_node leader)
{
    struct sim_wctx *c = ctx;
    sim_mix(c->s, ((uint64_t)role << 56) ^ (term << 16) ^ leader ^ ((uint64_t)g << 40));
    check_role_event(c->s, c->node, g, role, term, leader);
}

static const struct drain_ops sim_ops = {
    .persist = op_persist,
    .send = op_send,
    .persist_submit = op_persist_submit,
    .restore = op_restore,
    .snapshot_read = op_snapshot_read,
    .entries_read = op_entries_read,
    .apply = op_apply,
    .read = op_read,
    .read_failed = op_read_failed,
    .role_changed = op_role_changed,
};

static bool table_has_ready(struct sim *s, uint32_t node, uint32_t w)
{
    for (raft_group g = w; g < s->cfg.groups; g += s->cfg.workers) {
        if (raft_has_ready(s->node[node].raft[g])) {
            return true;
        }
    }
    return false;
}

static void node_drain(struct sim *s, uint32_t node, uint32_t w)
{
    struct sim_node *nd = &s->node[node];
    for (int round = 0; round < SIM_DRAIN_ROUNDS; round++) {
        int rc = s->drain_budget == 0
                     ? drain_run(nd->m[w], &sim_ops, &nd->wctx[w])
                     : drain_run_bounded(nd->m[w], &sim_ops, &nd->wctx[w], s->drain_budget, NULL);
        if (rc != 0) {
            sim_fail(s, "node %u: drain_run: %s", node + 1, rr_strerror(rc));
        }
        if (nd->cur[w] != NULL) {
            sim_fail(s, "node %u: drain_run persisted without persist_submit", node + 1);
        }
        give_verdicts(s, node);
        if (!table_has_ready(s, node, w)) {
            return;
        }
    }
}

static void node_drain_all(struct sim *s, uint32_t node)
{
    for (uint32_t w = 0; w < s->cfg.workers; w++) {
        node_drain(s, node, w);
    }
}

/* ---- node lifecycle ---- */

static bool dlog_is_empty(const struct sim_dlog *d)
{
    return d->snap.index == 0 && d->count == 0 && d->hs.term == 0 && d->hs.vote == 0 &&
           d->hs.commit == 0;
}

/* multi_create's callback: the group's durable state, and its state machine rebuilt from the
 * durable snapshot (the core re-applies the committed entries after it). */
static const struct raft_restore *restore_cb(void *ctx, raft_group g)
{
    struct sim_wctx *c = ctx;
    struct sim *s = c->s;
    struct sim_node *nd = &s->node[c->node];
    struct sim_dlog *d = &nd->dlog[g];
    memset(&nd->sm[g], 0, sizeof(nd->sm[g]));
    memset(&nd->watch[g], 0, sizeof(nd->watch[g]));
    nd->watch[g].handed_last = sim_dlog_last(d);
    nd->watch[g].snap_index = d->snap.index;
    nd->watch[g].snap_config = d->snap.config;
    memset(&nd->rx[g], 0, sizeof(nd->rx[g]));
    memset(&nd->img[g], 0, sizeof(nd->img[g]));
    if (d->snap.index > 0) {
        sm_load(s, c->node, g, &d->snap, d->snap_data, d->snap_bytes);
        nd->img[g].index = d->snap.index;
        memcpy(nd->img[g].data, d->snap_data, SIM_SM_BYTES);
    }
    if (dlog_is_empty(d)) {
        return NULL;
    }
    if (d->count > nd->restore_cap) {
        nd->restore_cap = d->count;
        nd->restore_entries =
            realloc(nd->restore_entries, nd->restore_cap * sizeof(*nd->restore_entries));
        RR_ASSERT(nd->restore_entries != NULL);
    }
    for (uint32_t k = 0; k < d->count; k++) {
        struct raft_entry *e = &nd->restore_entries[k];
        e->term = d->e[k].term;
        e->index = d->snap.index + 1 + k;
        e->type = d->e[k].type;
        e->data.base = d->e[k].data;
        e->data.len = d->e[k].len;
    }
    struct raft_restore *rs = &nd->restore;
    memset(rs, 0, sizeof(*rs));
    rs->hard_state = d->hs;
    rs->snapshot = d->snap;
    rs->snapshot_bytes = d->snap.index > 0 ? d->snap_bytes : 0;
    rs->entries = nd->restore_entries;
    rs->entry_count = d->count;
    return rs;
}

static void print_durable(const struct sim *s, uint32_t node)
{
    for (raft_group g = 0; g < s->cfg.groups; g++) {
        const struct sim_dlog *d = &s->node[node].dlog[g];
        printf("  node %u group %u durable: hs %llu/%u/%llu snapshot %llu/%llu entries %llu..%llu "
               "last term %llu\n",
               node + 1, g, (unsigned long long)d->hs.term, d->hs.vote,
               (unsigned long long)d->hs.commit, (unsigned long long)d->snap.index,
               (unsigned long long)d->snap.term, (unsigned long long)d->snap.index + 1,
               (unsigned long long)sim_dlog_last(d),
               (unsigned long long)sim_dlog_term(d, sim_dlog_last(d)));
    }
}

static void peer_down_later(struct sim *s, uint32_t observer, uint32_t peer);

static void node_start(struct sim *s, uint32_t node)
{
    struct sim_node *nd = &s->node[node];
    RR_ASSERT(!nd->up);
    for (uint32_t w = 0; w < s->cfg.workers; w++) {
        struct multi_options mo = s->mo;
        uint64_t seed = s->cfg.seed ^ ((uint64_t)node << 48) ^ ((uint64_t)nd->incarnation << 32);
        mo.id = node + 1;
        mo.worker = w;
        mo.seed = rr_splitmix64(&seed);
        nd->wctx[w] = (struct sim_wctx){.s = s, .node = node, .worker = w};
        int rc = multi_create(&nd->m[w], &mo, &s->config, restore_cb, &nd->wctx[w]);
        if (rc != 0) {
            print_durable(s, node);
            sim_fail(s, "node %u: multi_create: %s", node + 1, rr_strerror(rc));
        }
        for (raft_group g = w; g < s->cfg.groups; g += s->cfg.workers) {
            nd->raft[g] = multi_group(nd->m[w], g);
            RR_ASSERT(nd->raft[g] != NULL);
            struct raft_status st;
            raft_status(nd->raft[g], &st);
            nd->watch[g].ev_role = st.role;
            nd->watch[g].ev_term = st.term;
            nd->watch[g].ev_leader = st.leader;
        }
    }
    nd->up = true;
    nd->joined = true;
    nd->up_at = s->now;
    memset(nd->pending_count, 0, sizeof(nd->pending_count));
    /* Its connection attempts to peers that are down or cut off fail. */
    for (uint32_t i = 0; i < s->cfg.pool; i++) {
        bool cut = s->blocked[node][i] || s->blocked[i][node];
        if (i != node && s->node[i].joined && (!s->node[i].up || cut)) {
            peer_down_later(s, node, i);
        }
    }
    node_drain_all(s, node);
    check_node(s, node);
}

static void node_free_units(struct sim_node *nd, uint32_t w)
{
    while (nd->head[w] != NULL) {
        struct sim_unit *u = nd->head[w];
        nd->head[w] = u->next;
        drain_held_free(u->held);
        sim_unit_free(u);
    }
    nd->tail[w] = NULL;
    sim_unit_free(nd->cur[w]);
    nd->cur[w] = NULL;
}

/* The transport of `observer` notices, within two ticks, that its connection to `peer`
 * failed: the node-level failure detection quiesced groups depend on (core/raft.h). */
static void peer_down_later(struct sim *s, uint32_t observer, uint32_t peer)
{
    if (observer == peer || !s->node[observer].up) {
        return;
    }
    ev_at(s, s->now + sim_rand(s, 0, 2 * SIM_TICK), SIM_EV_PEER_DOWN, observer, peer, NULL);
}

static void step_peer_down(struct sim *s, const struct sim_event *e)
{
    struct sim_node *nd = &s->node[e->node];
    if (!nd->up || nd->incarnation != e->incarnation) {
        return; /* the observer crashed meanwhile: its groups are new */
    }
    s->n.peer_downs++;
    s->reported_at[e->node][e->worker] = s->now;
    /* The connection is gone both ways: what was in flight on it is lost. */
    s->conn_epoch[e->node][e->worker]++;
    s->conn_epoch[e->worker][e->node]++;
    if (s->cfg.verbose) {
        printf("  t=%llu node %u: peer %u down\n", (unsigned long long)s->now, e->node + 1,
               e->worker + 1);
    }
    for (uint32_t w = 0; w < s->cfg.workers; w++) {
        multi_peer_down(nd->m[w], e->worker + 1);
    }
    node_drain_all(s, e->node);
    check_node(s, e->node);
}

/* A crash loses every persist unit not yet durable; the first may be torn. */
static void node_crash(struct sim *s, uint32_t node)
{
    struct sim_node *nd = &s->node[node];
    RR_ASSERT(nd->up);
    for (uint32_t w = 0; w < s->cfg.workers; w++) {
        struct sim_unit *u = nd->head[w];
        if (u != NULL && u->count > 0 && sim_chance(s, s->rates.tear)) {
            /* Any prefix of records, as a torn WAL tail leaves: a group's entries may be
             * durable without the hard state written after them, or the reverse. */
            uint32_t keep = (uint32_t)sim_rand(s, 0, u->count - 1);
            sim_unit_apply(s, node, u, keep);
            s->n.torn += keep > 0;
        }
        node_free_units(nd, w);
        nd->disk_free_at[w] = 0; /* the lost units no longer occupy the device */
        multi_destroy(nd->m[w]);
        nd->m[w] = NULL;
    }
    memset(nd->raft, 0, sizeof(nd->raft));
    nd->verdict_count = 0; /* the chunks it received are lost with it */
    nd->up = false;
    nd->churn_at = 0;
    nd->incarnation++;
    nd->restart_at = s->now + sim_rand(s, 3, SIM_DOWN_TICKS_MAX) * SIM_TICK;
    nd->down_at = s->now;
    s->n.crashes++;
    for (uint32_t i = 0; i < s->cfg.pool; i++) {
        peer_down_later(s, i, node);
    }
    if (s->cfg.verbose) {
        printf("  t=%llu crash node %u\n", (unsigned long long)s->now, node + 1);
    }
}

static void node_restart(struct sim *s, uint32_t node)
{
    s->n.restarts++;
    if (s->cfg.verbose) {
        printf("  t=%llu restart node %u\n", (unsigned long long)s->now, node + 1);
    }
    node_start(s, node);
}

/* ---- clients and snapshots ---- */

/* Returns multi_propose's result (0, or a refusal a leader may legitimately give). */
static int client_propose(struct sim *s, uint32_t node, raft_group g, uint64_t id)
{
    struct sim_node *nd = &s->node[node];
    uint8_t p[SIM_PAYLOAD_BYTES];
    sm_put64(p, id);
    sm_put64(p + 8, ((uint64_t)g << 32) | (node + 1));
    raft_index index = 0;
    struct raft_status st;
    raft_status(sim_group(s, node, g), &st);
    int rc = multi_propose(nd->m[g % s->cfg.workers], g, p, SIM_PAYLOAD_BYTES, &index);
    if (rc == 0) {
        if (st.role != RAFT_LEADER) {
            sim_fail(s, "node %u group %u accepted a proposal as role %u", node + 1, g, st.role);
        }
        s->n.proposals++;
        /* The leader appended at `index`: its log was cut there, so earlier proposals of
         * this node at or past it (from an earlier term) are lost. */
        for (uint32_t k = 0; k < nd->pending_count[g];) {
            if (nd->pending[g][k].index >= index) {
                nd->pending[g][k] = nd->pending[g][--nd->pending_count[g]];
            } else {
                k++;
            }
        }
        if (nd->pending_count[g] == SIM_PENDING_MAX) {
            /* Only the liveness proposal comes here with a full list: it must be tracked. */
            nd->pending[g][0] = nd->pending[g][--nd->pending_count[g]];
        }
        nd->pending[g][nd->pending_count[g]++] =
            (struct sim_pending){.index = index, .term = st.term, .payload_id = id};
        return 0;
    }
    if (rc != RR_ENOTLEADER && rc != RR_ETRANSFER && rc != RR_EBUSY && rc != RR_ETOOBIG) {
        sim_fail(s, "node %u group %u: multi_propose: %s", node + 1, g, rr_strerror(rc));
    }
    return rc;
}

static void client_read(struct sim *s, uint32_t node, raft_group g)
{
    uint64_t ctx = check_read_begin(s, node, g);
    int rc = multi_read_index(s->node[node].m[g % s->cfg.workers], g, ctx);
    if (rc == 0) {
        check_read_accepted(s, ctx);
        s->n.reads++;
        return;
    }
    if (rc != RR_ENOTLEADER && rc != RR_EBUSY) {
        sim_fail(s, "node %u group %u: multi_read_index: %s", node + 1, g, rr_strerror(rc));
    }
}

static void clients(struct sim *s, uint32_t node)
{
    struct sim_node *nd = &s->node[node];
    for (raft_group g = 0; g < s->cfg.groups; g++) {
        struct raft_status st;
        raft_status(sim_group(s, node, g), &st);
        bool leader = st.role == RAFT_LEADER;
        /* Followers get a few proposals too: they must refuse them. Clients hold back while
         * the leader's uncommitted tail is long (flow control, as a real client would see
         * from latency), and after heal only the liveness proposals are made. */
        uint32_t rate = leader ? s->rates.propose : s->rates.propose / 16;
        bool room = st.last_index - st.commit < SIM_UNCOMMITTED_MAX;
        if (!s->healed && room && nd->pending_count[g] < SIM_PENDING_MAX && sim_chance(s, rate)) {
            (void)client_propose(s, node, g, ++s->payload_next);
        }
        /* After heal no new reads start, so that the run can end with every read accepted
         * released or failed (read_outcome). */
        if (!s->healed && sim_chance(s, leader ? s->rates.read : s->rates.read / 16)) {
            client_read(s, node, g);
        }
    }
}

static void take_snapshot(struct sim *s, uint32_t node, raft_group g)
{
    struct sim_node *nd = &s->node[node];
    struct raft *r = sim_group(s, node, g);
    struct raft_snapshot_meta meta;
    memset(&meta, 0, sizeof(meta));
    meta.index = nd->sm[g].applied;
    meta.term = raft_term_at(r, meta.index);
    /* The configuration at the snapshot index, not the one in force (a later entry may
     * still be truncated). */
    if (!sim_config_at(s, node, g, meta.index, &meta.config)) {
        sim_fail(s, "node %u group %u: no configuration known at applied index %llu", node + 1, g,
                 (unsigned long long)meta.index);
    }
    if (meta.term == 0) {
        sim_fail(s, "node %u group %u: no term for applied index %llu", node + 1, g,
                 (unsigned long long)meta.index);
    }
    uint8_t data[SIM_SM_BYTES];
    sm_save(&nd->sm[g], data);
    /* Durable first: the core may drop its log prefix as soon as it is told. */
    sim_dlog_install_snapshot(&nd->dlog[g], &meta, data, SIM_SM_BYTES);
    int rc = raft_snapshot_taken(r, meta.index, SIM_SM_BYTES, sim_rand(s, 0, SIM_TRAILING_MAX));
    nd->img[g].index = meta.index;
    memcpy(nd->img[g].data, data, SIM_SM_BYTES);
    if (rc != 0) {
        sim_fail(s, "node %u group %u: raft_snapshot_taken(%llu): %s", node + 1, g,
                 (unsigned long long)meta.index, rr_strerror(rc));
    }
    nd->watch[g].snap_index = meta.index;
    nd->watch[g].snap_config = meta.config;
    multi_mark_dirty(nd->m[g % s->cfg.workers], g);
    s->n.snapshots_taken++;
}

static void snapshots(struct sim *s, uint32_t node)
{
    struct sim_node *nd = &s->node[node];
    for (raft_group g = 0; g < s->cfg.groups; g++) {
        /* The core's snapshot may be ahead of the durable one (a leader's snapshot whose
         * unit is still in flight): count from the later of the two. */
        struct raft_status st;
        raft_status(sim_group(s, node, g), &st);
        raft_index base =
            st.snapshot_index > nd->dlog[g].snap.index ? st.snapshot_index : nd->dlog[g].snap.index;
        if (nd->sm[g].applied >= base + SIM_SNAPSHOT_GAP && sim_chance(s, s->rates.snapshot)) {
            take_snapshot(s, node, g);
        }
    }
}

/* ---- steps ---- */

static void step_tick(struct sim *s, uint32_t node)
{
    struct sim_node *nd = &s->node[node];
    /* A little jitter per tick: nodes' clocks drift against each other. */
    ev_at(s, s->now + SIM_TICK - 10 + sim_rand(s, 0, 20), SIM_EV_TICK, node, 0, NULL);
    if (!nd->up) {
        return;
    }
    s->n.ticks++;
    for (uint32_t w = 0; w < s->cfg.workers; w++) {
        s->n.quiesced_ticks += multi_group_count(nd->m[w]) - multi_awake_count(nd->m[w]);
        multi_tick(nd->m[w]);
    }
    clients(s, node);
    snapshots(s, node);
    node_drain_all(s, node);
    check_node(s, node);
}

static void step_deliver(struct sim *s, struct sim_packet *p)
{
    struct sim_node *nd = &s->node[p->to];
    uint32_t to = p->to;
    uint32_t w = p->worker;
    if (!nd->up || s->blocked[p->from][p->to] || p->epoch != s->conn_epoch[p->from][p->to]) {
        s->n.dropped++;
        free(p);
        return;
    }
    s->n.deliveries++;
    s->heard_at[p->from][p->to] = s->now;
    int rc = multi_receive(nd->m[w], p->bytes, p->len);
    if (rc != 0) {
        sim_fail(s, "node %u worker %u: multi_receive of a batch from node %u: %s", to + 1, w,
                 p->from + 1, rr_strerror(rc));
    }
    free(p);
    node_drain(s, to, w);
    check_node(s, to);
}

static void step_persist(struct sim *s, const struct sim_event *e)
{
    struct sim_node *nd = &s->node[e->node];
    uint32_t w = e->worker;
    if (!nd->up || nd->incarnation != e->incarnation) {
        return; /* the unit was lost in a crash */
    }
    struct sim_unit *u = nd->head[w];
    RR_ASSERT(u != NULL);
    RR_ASSERT(u->done_at == s->now);
    nd->head[w] = u->next;
    if (nd->head[w] == NULL) {
        nd->tail[w] = NULL;
    }
    sim_unit_apply(s, e->node, u, u->count);
    int rc = drain_persisted(nd->m[w], u->held, &sim_ops, &nd->wctx[w]);
    u->held = NULL;
    sim_unit_free(u);
    if (rc != 0) {
        sim_fail(s, "node %u: drain_persisted: %s", e->node + 1, rr_strerror(rc));
    }
    node_drain(s, e->node, w);
    check_node(s, e->node);
}

/* Cuts the network: along `side` (bit i: node i on side one) if it is not 0, else half the
 * time along a random split into two non-empty sides and half the time one-way on 1..N-1
 * random directed links. Lasts 3-40 ticks (`min_ticks`-40 when given). */
static void partition_start(struct sim *s, uint64_t side, uint64_t min_ticks)
{
    uint32_t n = s->cfg.pool;
    memset(s->blocked, 0, sizeof(s->blocked));
    if (side == 0 && sim_chance(s, 500000)) {
        side = sim_rand(s, 1, (1u << n) - 2); /* both sides non-empty */
    }
    if (side != 0) {
        for (uint32_t a = 0; a < n; a++) {
            for (uint32_t b = 0; b < n; b++) {
                s->blocked[a][b] = ((side >> a) & 1) != ((side >> b) & 1);
            }
        }
    } else {
        uint64_t links = sim_rand(s, 1, n - 1);
        for (uint64_t k = 0; k < links; k++) {
            uint32_t a = (uint32_t)sim_rand(s, 0, n - 1);
            uint32_t b = (uint32_t)sim_rand(s, 0, n - 2);
            b += b >= a;
            s->blocked[a][b] = true;
        }
        s->n.one_way++;
    }
    s->partition_until = s->now + sim_rand(s, min_ticks > 3 ? min_ticks : 3,
                                           2 * min_ticks > 40 ? 2 * min_ticks : 40) *
                                      SIM_TICK;
    s->partition_group = UINT32_MAX;
    s->partition_at = s->now;
    s->n.partitions++;
    /* A cut link fails the connection at both ends. */
    for (uint32_t a = 0; a < n; a++) {
        for (uint32_t b = 0; b < n; b++) {
            if (s->blocked[a][b]) {
                peer_down_later(s, a, b);
                peer_down_later(s, b, a);
            }
        }
    }
    if (s->cfg.verbose) {
        printf("  t=%llu partition until %llu (side %llx)\n", (unsigned long long)s->now,
               (unsigned long long)s->partition_until, (unsigned long long)side);
    }
}

static void heal_all(struct sim *s)
{
    memset(s->blocked, 0, sizeof(s->blocked));
    s->partition_until = 0;
    s->rates.loss = 0;
    s->rates.dup = 0;
    /* Raft's timing requirement (§5.6): broadcast time well under the election timeout. The
     * fault phase may break it (slow links and disks); a healed cluster must meet it. */
    if (s->rates.delay_max > SIM_HEALED_DELAY_MAX) {
        s->rates.delay_max = SIM_HEALED_DELAY_MAX;
    }
    if (s->rates.disk_max > SIM_HEALED_DELAY_MAX) {
        s->rates.disk_max = SIM_HEALED_DELAY_MAX;
    }
    s->healed = true;
    s->heal_tick = s->tick_no;
    s->heal_payload = s->payload_next;
    for (uint32_t i = 0; i < s->cfg.pool; i++) {
        if (!s->node[i].up && s->node[i].joined) {
            node_restart(s, i);
        }
    }
    if (s->cfg.verbose) {
        printf("  t=%llu heal\n", (unsigned long long)s->now);
    }
}

/* A follower (or candidate) that campaigns at once, as a leadership transfer target does. */
static void force_campaign_in(struct sim *s, uint32_t node, raft_group g)
{
    struct sim_node *nd = &s->node[node];
    if (!nd->up) {
        return;
    }
    struct raft_status st;
    raft_status(sim_group(s, node, g), &st);
    if (st.role == RAFT_LEADER) {
        return;
    }
    s->n.campaigns++;
    raft_campaign(sim_group(s, node, g));
    multi_mark_dirty(nd->m[g % s->cfg.workers], g);
    node_drain(s, node, g % s->cfg.workers);
    check_node(s, node);
}

static void force_campaign(struct sim *s)
{
    uint32_t node = (uint32_t)sim_rand(s, 0, s->cfg.pool - 1);
    raft_group g = (raft_group)sim_rand(s, 0, s->cfg.groups - 1);
    force_campaign_in(s, node, g);
}

static uint32_t voters_of(const struct raft_config *c)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < c->member_count; i++) {
        n += c->members[i].role == RAFT_VOTER;
    }
    return n;
}

/* A new node id joins: it starts empty, with the cluster's bootstrap configuration (which
 * does not hold it), and waits for a leader to replicate to it. */
static void node_join(struct sim *s, uint32_t node)
{
    struct sim_node *nd = &s->node[node];
    if (nd->joined) {
        return;
    }
    s->n.joins++;
    if (s->cfg.verbose) {
        printf("  t=%llu node %u joins\n", (unsigned long long)s->now, node + 1);
    }
    node_start(s, node);
}

/* A pool id in neither half of c, joined or not; 0 if every id is a member. */
static raft_node outsider(struct sim *s, const struct raft_config *c)
{
    raft_node ids[SIM_NODES_MAX];
    uint32_t k = 0;
    for (raft_node id = 1; id <= s->cfg.pool; id++) {
        if (!raft_config_is_member(c, id)) {
            ids[k++] = id;
        }
    }
    return k == 0 ? 0 : ids[sim_rand(s, 0, k - 1)];
}

/* A random member of the new half with the given role (0: any), or 0. */
static raft_node member_with(struct sim *s, const struct raft_config *c, uint8_t role)
{
    raft_node ids[RAFT_MEMBERS_MAX];
    uint32_t k = 0;
    for (uint32_t i = 0; i < c->member_count; i++) {
        if (role == 0 || c->members[i].role == role) {
            ids[k++] = c->members[i].id;
        }
    }
    return k == 0 ? 0 : ids[sim_rand(s, 0, k - 1)];
}

static void config_remove(struct raft_config *c, raft_node id)
{
    for (uint32_t i = 0; i < c->member_count; i++) {
        if (c->members[i].id == id) {
            c->members[i] = c->members[--c->member_count];
            return;
        }
    }
}

#define SIM_VOTERS_MIN  2u /* membership faults keep at least two voters... */
#define SIM_VOTERS_MAX  7u /* ...and at most seven */
#define SIM_PROMOTE_LAG 4u /* a learner is promoted once this close to the leader's log */

/* Whether g is one of the seed's hot groups (membership schedules, below). */
static bool is_hot(const struct sim *s, raft_group g)
{
    for (uint32_t k = 0; k < s->hot_count; k++) {
        if (s->hot[k] == g) {
            return true;
        }
    }
    return false;
}

static void member_accepted(struct sim *s, uint32_t leader, raft_group g);
static bool one_voter_change(
    struct sim *s, raft_group g, uint32_t leader, const struct raft_config *c, raft_node *id);

/* A leader of group g starts a configuration change (paper §6, thesis §4), chosen at
 * random: add a pool node as a learner (starting it empty if it never ran), promote a
 * caught-up learner, demote a voter, remove a member (the leader itself included), or
 * replace one or two voters at once through joint consensus (raft_change_config). Changes are
 * per group: each group's membership wanders on its own over the shared pool of nodes.
 * `prefer` (a node index, or the pool size for none) is the leader asked if it leads g; with
 * `one_voter` the change adds or removes one voter (membership schedules, below). */
static void member_change(struct sim *s, raft_group g, uint32_t prefer, bool one_voter)
{
    uint32_t leader = s->cfg.pool;
    for (uint32_t i = 0; i < s->cfg.pool; i++) {
        struct raft_status st;
        if (!s->node[i].up) {
            continue;
        }
        raft_status(sim_group(s, i, g), &st);
        bool settled = leader != s->cfg.pool && leader == prefer;
        if (st.role == RAFT_LEADER && !settled &&
            (leader == s->cfg.pool || i == prefer || sim_chance(s, 500000))) {
            leader = i; /* a stale leader of an earlier term may be picked: it must refuse */
        }
    }
    if (leader == s->cfg.pool) {
        return;
    }
    struct raft *r = sim_group(s, leader, g);
    struct raft_config c;
    raft_config(r, &c);
    if (raft_config_is_joint(&c)) {
        c.old_member_count = 0; /* refused below (a change in flight), as it must be */
    }
    uint32_t voters = voters_of(&c);
    raft_node id = 0;
    uint8_t role = 0;
    bool joint = false;
    bool promote = false;
    /* Hot groups (membership schedules) change one voter more often: add a learner, promote,
     * remove or demote, replace, one in four each. */
    uint64_t kind = is_hot(s, g) ? sim_rand(s, 1, 4) : sim_rand(s, 0, 5);
    if (one_voter) {
        kind = 6;
    }
    switch (kind) {
    case 0: /* add a new server as a learner */
    case 1:
        id = outsider(s, &c);
        role = RAFT_LEARNER;
        break;
    case 2: { /* promote a learner once it has caught up (thesis §4.2.1) */
        struct raft_member_progress mp[RAFT_MEMBERS_MAX];
        int n = raft_members_progress(r, mp, RAFT_MEMBERS_MAX);
        for (int k = 0; k < n && k < (int)RAFT_MEMBERS_MAX; k++) {
            if (mp[k].role == RAFT_LEARNER && mp[k].lag <= SIM_PROMOTE_LAG &&
                voters < SIM_VOTERS_MAX) {
                id = mp[k].id;
                role = RAFT_VOTER;
                promote = true;
                break;
            }
        }
        break;
    }
    case 3: /* demote or remove a member: the leader itself is as likely as any */
        id = member_with(s, &c, 0);
        role = sim_chance(s, 300000) ? RAFT_LEARNER : 0;
        if (id != 0 && raft_config_role(&c, id) == RAFT_VOTER && voters <= SIM_VOTERS_MIN) {
            id = 0;
        }
        if (id != 0 && role == RAFT_LEARNER && raft_config_role(&c, id) == RAFT_LEARNER) {
            role = 0;
        }
        break;
    case 6: /* one voter more or less, chosen against configurations others hold */
        if (one_voter_change(s, g, leader, &c, &id)) {
            promote = raft_config_role(&c, id) == RAFT_LEARNER;
            role = promote ? RAFT_VOTER : 0;
        }
        break;
    default: /* replace one or two voters at once, through C_old,new */
        joint = true;
        break;
    }
    int rc;
    raft_index index = 0;
    uint64_t sent_removal = 0;
    if (joint) {
        struct raft_config t = c;
        uint32_t out = (uint32_t)sim_rand(s, 1, 2);
        uint32_t changed = 0;
        for (uint32_t k = 0; k < out && voters_of(&t) > SIM_VOTERS_MIN - 1; k++) {
            raft_node v = member_with(s, &t, RAFT_VOTER);
            if (v == leader + 1) {
                sent_removal = 1;
            }
            config_remove(&t, v);
            changed++;
        }
        for (uint32_t k = 0; k < 2 && voters_of(&t) < SIM_VOTERS_MIN + 1; k++) {
            /* A learner promoted, or a server never seen (or once removed) added as a voter. */
            raft_node in = sim_chance(s, 500000) ? member_with(s, &t, RAFT_LEARNER) : 0;
            if (in == 0) {
                in = outsider(s, &t);
            }
            if (in == 0) {
                break;
            }
            config_remove(&t, in);
            t.members[t.member_count++] = (struct raft_member){.id = in, .role = RAFT_VOTER};
            changed++;
        }
        if (changed < 2 || voters_of(&t) < 1) {
            return;
        }
        for (uint32_t i = 0; i < t.member_count; i++) {
            node_join(s, t.members[i].id - 1);
        }
        rc = raft_change_config(r, &t, &index);
    } else {
        if (id == 0) {
            return;
        }
        node_join(s, id - 1);
        sent_removal = role == 0 && id == leader + 1;
        rc = raft_change_member(r, id, role, &index);
    }
    if (rc != 0 && rc != RR_ECONFIG && rc != RR_ETRANSFER && rc != RR_ENOTLEADER &&
        rc != RR_EINVAL) {
        sim_fail(s, "node %u group %u: configuration change: %s", leader + 1, g, rr_strerror(rc));
    }
    s->n.config_refused += rc == RR_ECONFIG;
    if (rc == 0) {
        struct raft_status st;
        raft_status(r, &st);
        s->n.member_changes++;
        s->n.promotions += promote;
        s->n.leader_removals += sent_removal;
        s->n.joint_changes += raft_config_is_joint(sim_config_in_force(r));
        check_config_started(s, g, index, st.term);
        if (s->cfg.verbose) {
            const struct raft_config *in = sim_config_in_force(r);
            printf("  t=%llu group %u: node %u (term %llu commit %llu) starts a change at %llu:",
                   (unsigned long long)s->now, g, leader + 1, (unsigned long long)st.term,
                   (unsigned long long)st.commit, (unsigned long long)index);
            for (uint32_t k = 0; k < in->member_count; k++) {
                printf(" %u%s", in->members[k].id, in->members[k].role == RAFT_VOTER ? "" : "L");
            }
            printf("%s\n", raft_config_is_joint(in) ? " (joint)" : "");
        }
    }
    multi_mark_dirty(s->node[leader].m[g % s->cfg.workers], g);
    node_drain(s, leader, g % s->cfg.workers);
    check_node(s, leader);
    if (rc == 0) {
        member_accepted(s, leader, g);
    }
}

/* The membership fault of a tick: a random group, a hot one (membership schedules) with
 * probability one half. */
static void membership_fault(struct sim *s)
{
    raft_group g = (raft_group)sim_rand(s, 0, s->cfg.groups - 1);
    if (s->hot_count > 0 && sim_chance(s, 500000)) {
        g = s->hot[sim_rand(s, 0, s->hot_count - 1)];
    }
    member_change(s, g, s->cfg.pool, false);
}

/* ---- membership schedules ----
 *
 * Membership bugs break safety only through an interleaving. The 2015 single-server bug: a
 * leader's change reaches a minority; the leader is replaced by one that never saw it; the new
 * leader changes the configuration before committing an entry of its term; the two
 * configurations have disjoint majorities, and each elects a leader. Two changes in flight
 * give the same disjoint majorities within one leader's log; a configuration kept after its
 * entry is truncated, or put in force only when committed, gives a node a configuration its
 * log does not have. Random faults alone almost never line this up: a group sees a change
 * every hundred ticks or so, and a change is in flight for a round trip. In two membership
 * seeds of three the schedules below do:
 *
 * - one or two hot groups change configuration every few ticks, mostly by one voter;
 * - a leader elected in a hot group tries a change of one voter at once, before its own-term
 *   commit (the real core refuses: RR_ECONFIG), choosing, if it can, one whose majorities
 *   are disjoint from those of a configuration another node holds and it never saw;
 * - if another node holds a configuration entry that leader lacks, the leader is disrupted
 *   one to three ticks later, once its entries have replaced that one: a partition between
 *   its majority and that of a configuration another node still holds, or a crash, or it is
 *   cut off;
 * - a change accepted in a hot group is followed by another attempt within a tick (refused
 *   while the first is in flight), and by a disruption of its leader: at once, a partition
 *   between its new configuration's majority and the majority of a configuration another
 *   node holds that its log lacks, if there is such a split; else a third of the time it is
 *   cut off at once (the change stays on a minority: the 2015 report's first step); else, at
 *   once or within two ticks, a crash, a cut-off, a partition between two configurations'
 *   majorities, or a campaign by another voter.
 *
 * "Holds" means in force or committed as far as the node knows, or in force by the durable
 * log of a node that is down; a split needs some node on each side that could lead there. A
 * partition started for one hot group is not replaced by another group's disruption until it
 * ends. Background crashes and partitions are rarer in these seeds and leaders are not
 * churned, so that each disruption plays out. The real core refuses what it must and survives
 * every split; a core that accepts too much is caught by the safety checkers
 * (docs/simulator.md). */

/* What a node holds of group g's configuration, for the schedules below. */
struct sim_held {
    struct raft_config c[2]; /* in force, and committed as far as it knows (down: in force) */
    raft_index index;        /* the entry c[0] comes from (the snapshot's index; 0: bootstrap) */
    raft_term term;          /* its term (0 for the bootstrap configuration) */
};

/* What node `node` holds for g: from the core if it is up, else from its durable log (the
 * latest configuration entry, else the snapshot's, else the bootstrap one). Returns false if
 * the node never ran. */
static bool node_held(struct sim *s, uint32_t node, raft_group g, struct sim_held *h)
{
    const struct sim_node *nd = &s->node[node];
    if (nd->up) {
        struct raft *r = sim_group(s, node, g);
        raft_config(r, &h->c[0]);
        (void)raft_config_committed(r, &h->c[1]);
        h->index = raft_config_index(r);
        h->term = raft_term_at(r, h->index);
        return true;
    }
    if (!nd->joined) {
        return false;
    }
    const struct sim_dlog *d = &nd->dlog[g];
    h->c[0] = d->snap.index > 0 ? d->snap.config : s->config;
    h->index = d->snap.index;
    h->term = d->snap.term;
    for (uint32_t k = d->count; k > 0; k--) {
        const struct sim_dentry *e = &d->e[k - 1];
        if (e->type == RAFT_ENTRY_CONFIG) {
            memset(&h->c[0], 0, sizeof(h->c[0]));
            if (codec_config_decode(e->data, e->len, &h->c[0]) != 0) {
                sim_fail(s, "node %u group %u: undecodable durable configuration", node + 1, g);
            }
            h->index = d->snap.index + k;
            h->term = e->term;
            break;
        }
    }
    h->c[1] = h->c[0];
    return true;
}

/* A configuration's voters as node masks (bit i: node i), per half. */
struct sim_voters {
    uint64_t half[2]; /* C_new, C_old (0 unless joint) */
};

static struct sim_voters voters_mask(const struct raft_config *c)
{
    struct sim_voters v = {{0, 0}};
    for (uint32_t i = 0; i < c->member_count + c->old_member_count; i++) {
        raft_node id =
            i < c->member_count ? c->members[i].id : c->old_members[i - c->member_count].id;
        RR_ASSERT(id >= 1 && id <= SIM_NODES_MAX); /* pool ids only */
    }
    for (uint32_t i = 0; i < c->member_count; i++) {
        v.half[0] |= c->members[i].role == RAFT_VOTER ? 1ull << (c->members[i].id - 1) : 0;
    }
    for (uint32_t i = 0; i < c->old_member_count; i++) {
        v.half[1] |= c->old_members[i].role == RAFT_VOTER ? 1ull << (c->old_members[i].id - 1) : 0;
    }
    return v;
}

/* Whether the nodes in `side` hold a majority of the voters (of each half when joint). */
static bool side_has_majority(struct sim_voters v, uint64_t side)
{
    for (uint32_t h = 0; h < 2; h++) {
        int all = __builtin_popcountll(v.half[h]);
        if (all > 0 && 2 * __builtin_popcountll(v.half[h] & side) <= all) {
            return false;
        }
    }
    return v.half[0] != 0;
}

/* Whether r's log lacks the entry (index, term): it holds another term there, or ends
 * before it (an index it compacted counts as held). */
static bool lacks_entry(struct raft *r, raft_index index, raft_term term)
{
    struct raft_status st;
    raft_status(r, &st);
    raft_term t = raft_term_at(r, index);
    return index > st.last_index || (t != 0 && t != term);
}

#define SIM_CONFIGS_MAX (2 * SIM_NODES_MAX)

/* The configurations of group g held by the nodes other than `leader` (in force and
 * committed), who holds each, and whether the leader's log lacks the entry it comes from. */
struct sim_held_set {
    struct sim_voters v[SIM_CONFIGS_MAX];
    uint64_t holders[SIM_CONFIGS_MAX]; /* bit i: node i holds v[k] */
    bool lacked[SIM_CONFIGS_MAX];
    uint32_t count;
};

static void held_set(struct sim *s, raft_group g, uint32_t leader, struct sim_held_set *hs)
{
    struct raft *lr = s->node[leader].up ? sim_group(s, leader, g) : NULL;
    hs->count = 0;
    for (uint32_t i = 0; i < s->cfg.pool; i++) {
        struct sim_held h;
        if (i == leader || !node_held(s, i, g, &h)) {
            continue;
        }
        bool lacks = lr != NULL && h.index > 0 && lacks_entry(lr, h.index, h.term);
        for (uint32_t j = 0; j < 2; j++) {
            struct sim_voters v = voters_mask(&h.c[j]);
            uint32_t k = 0;
            while (k < hs->count &&
                   (hs->v[k].half[0] != v.half[0] || hs->v[k].half[1] != v.half[1])) {
                k++;
            }
            if (k == hs->count) {
                hs->v[k] = v;
                hs->holders[k] = 0;
                hs->lacked[k] = false;
                hs->count++;
            }
            hs->holders[k] |= 1ull << i;
            hs->lacked[k] = hs->lacked[k] || (j == 0 && lacks);
        }
    }
}

/* A split of the pool whose side with `leader` holds a majority of `mine`, and whose other
 * side, for some node on it, a majority of a configuration that node holds (one the
 * leader's log lacks if `lacked_only`): each side could then elect or keep a leader and
 * commit. With `pick`, chosen uniformly among all such splits; else the first found, without
 * drawing from the PRNG. 0 if there is none. */
static uint64_t split_find(struct sim *s,
                           const struct sim_held_set *hs,
                           uint32_t leader,
                           struct sim_voters mine,
                           bool lacked_only,
                           bool pick)
{
    uint64_t full = (1ull << s->cfg.pool) - 1;
    uint64_t chosen = 0;
    uint64_t found = 0;
    for (uint64_t side = 1; side < full; side++) {
        uint64_t other = full & ~side;
        if (((side >> leader) & 1) == 0 || !side_has_majority(mine, side)) {
            continue;
        }
        bool split = false;
        for (uint32_t k = 0; k < hs->count && !split; k++) {
            split = (!lacked_only || hs->lacked[k]) && (hs->holders[k] & other) != 0 &&
                    (hs->v[k].half[0] != mine.half[0] || hs->v[k].half[1] != mine.half[1]) &&
                    side_has_majority(hs->v[k], other);
        }
        if (split && !pick) {
            return side;
        }
        /* Reservoir sampling: uniform over the splits found. */
        if (split && sim_chance(s, (uint32_t)(1000000 / ++found))) {
            chosen = side;
        }
    }
    return chosen;
}

/* A split for g's leader `leader` and its configuration in force (split_find), against a
 * configuration its log lacks if possible, else against any; 0 if there is none. */
static uint64_t config_split(struct sim *s, raft_group g, uint32_t leader, bool lacked_only)
{
    struct sim_held mine;
    if (!node_held(s, leader, g, &mine)) {
        return 0;
    }
    struct sim_held_set hs;
    held_set(s, g, leader, &hs);
    uint64_t side = split_find(s, &hs, leader, voters_mask(&mine.c[0]), true, true);
    if (side == 0 && !lacked_only) {
        side = split_find(s, &hs, leader, voters_mask(&mine.c[0]), false, true);
    }
    return side;
}

/* For a leader just elected, with configuration c (not joint): a voter to remove or a
 * caught-up learner to promote, preferring one after which its configuration has a majority
 * disjoint from one of a configuration another node holds and its log lacks (the second
 * change of the 2015 report). Returns false if there is no candidate. */
static bool one_voter_change(
    struct sim *s, raft_group g, uint32_t leader, const struct raft_config *c, raft_node *id)
{
    struct raft_member_progress mp[RAFT_MEMBERS_MAX];
    int n = raft_members_progress(sim_group(s, leader, g), mp, RAFT_MEMBERS_MAX);
    uint32_t voters = voters_of(c);
    raft_node cand[RAFT_MEMBERS_MAX];
    uint32_t count = 0;
    for (uint32_t i = 0; i < c->member_count; i++) {
        const struct raft_member *m = &c->members[i];
        bool promotable = false;
        for (int k = 0; k < n && k < (int)RAFT_MEMBERS_MAX; k++) {
            promotable = promotable || (mp[k].id == m->id && mp[k].lag <= SIM_PROMOTE_LAG);
        }
        if (m->role == RAFT_VOTER ? voters > SIM_VOTERS_MIN
                                  : promotable && voters < SIM_VOTERS_MAX) {
            cand[count++] = m->id;
        }
    }
    if (count == 0) {
        return false;
    }
    struct sim_held_set hs;
    held_set(s, g, leader, &hs);
    raft_node good[RAFT_MEMBERS_MAX];
    uint32_t good_count = 0;
    for (uint32_t k = 0; k < count; k++) {
        struct sim_voters v = voters_mask(c);
        v.half[0] ^= 1ull << (cand[k] - 1); /* a voter leaves, or a learner becomes one */
        if (v.half[0] != 0 && split_find(s, &hs, leader, v, true, false) != 0) {
            good[good_count++] = cand[k];
        }
    }
    *id = good_count > 0 ? good[sim_rand(s, 0, good_count - 1)] : cand[sim_rand(s, 0, count - 1)];
    return true;
}

/* The side that cuts `leader` off, with the voters its configuration in force adds to its
 * committed one (a change in flight) half the time, else alone. */
static uint64_t cut_off_side(struct sim *s, uint32_t leader, const struct sim_held *h)
{
    uint64_t side = 1ull << leader;
    if (sim_chance(s, 500000)) {
        side |= voters_mask(&h->c[0]).half[0] & ~voters_mask(&h->c[1]).half[0];
    }
    return side;
}

static bool crash_allowed(const struct sim *s)
{
    uint32_t down = 0;
    uint32_t joined = 0;
    for (uint32_t i = 0; i < s->cfg.pool; i++) {
        down += s->node[i].joined && !s->node[i].up;
        joined += s->node[i].joined;
    }
    return down < joined / 2 + 1; /* up to a bare majority down, as faults() allows */
}

/* Starts a partition for a disruption of hot group g, unless one started for another hot
 * group is still on (each runs its course; the 2015 sequence takes two in a row in one
 * group). Long enough for an election on each side, or two (timeout 10-20 ticks). */
static void disrupt_partition(struct sim *s, raft_group g, uint64_t side)
{
    if (s->partition_until != 0 && s->partition_group != g) {
        return;
    }
    partition_start(s, side, 20);
    s->partition_group = g;
}

/* A change was accepted by `leader` in g: in a hot group, another attempt and a disruption. */
static void member_accepted(struct sim *s, uint32_t leader, raft_group g)
{
    if (!is_hot(s, g)) {
        return;
    }
    if (sim_chance(s, s->rates.member_follow)) {
        ev_at(s, s->now + sim_rand(s, 0, SIM_TICK), SIM_EV_MEMBER, leader, g, NULL);
    }
    if (!sim_chance(s, s->rates.member_disrupt)) {
        return;
    }
    /* At once, before the entry (or the new leader's first entries) reach anyone: batches in
     * flight when a partition starts are dropped. */
    uint64_t side = config_split(s, g, leader, true);
    if (side != 0) {
        s->n.disruptions++;
        s->n.config_splits++;
        if (s->cfg.verbose) {
            printf("  t=%llu group %u: split %llx against a configuration node %u lacks\n",
                   (unsigned long long)s->now, g, (unsigned long long)side, leader + 1);
        }
        disrupt_partition(s, g, side);
        return;
    }
    /* Else, a third of the time, the leader is cut off at once, so that the change stays on
     * a minority while the others elect a leader that never saw it (the 2015 report's first
     * step); otherwise a disruption of any kind within two ticks. */
    if (sim_chance(s, 333333)) {
        struct sim_held h;
        if (node_held(s, leader, g, &h)) {
            s->n.disruptions++;
            disrupt_partition(s, g, cut_off_side(s, leader, &h));
        }
        return;
    }
    uint64_t delay = sim_chance(s, 500000) ? 0 : sim_rand(s, 1, 2 * SIM_TICK);
    ev_at(s, s->now + delay, SIM_EV_DISRUPT, leader, g, NULL);
}

/* A leader elected in a hot group tries a change of one voter right after this step, before
 * it commits an entry of its term (the window of the 2015 bug). If another node holds a
 * configuration entry this leader lacks (a change in flight it will truncate there), the
 * leader is disrupted in turn one to three ticks later, once its first entries have
 * replaced that one: the node that held it may then lead. */
static void member_on_election(struct sim *s, uint32_t node, raft_group g)
{
    if (!is_hot(s, g)) {
        return;
    }
    if (sim_chance(s, s->rates.member_elect)) {
        ev_at(s, s->now, SIM_EV_MEMBER_ELECTED, node, g, NULL);
    }
    struct sim_held_set hs;
    held_set(s, g, node, &hs);
    bool lacks = false;
    for (uint32_t k = 0; k < hs.count; k++) {
        lacks = lacks || hs.lacked[k];
    }
    if (lacks && sim_chance(s, s->rates.member_disrupt)) {
        ev_at(s, s->now + sim_rand(s, SIM_TICK, 3 * SIM_TICK), SIM_EV_DISRUPT_ELECTED, node, g,
              NULL);
    }
}

/* The leader `node` of g, elected lacking a configuration entry another node holds, has
 * had time to replace it there. Half the time the network is split between its majority
 * and that of a configuration another node still holds (in force or committed; the one it
 * lacked, if it is still in force there), so that the holder may lead on its side; else
 * the leader is crashed or cut off, and the others elect someone else. */
static void disrupt_elected(struct sim *s, uint32_t node, raft_group g)
{
    struct sim_held h;
    if (!node_held(s, node, g, &h)) {
        return;
    }
    s->n.disruptions++;
    uint64_t side = sim_chance(s, 500000) ? config_split(s, g, node, false) : 0;
    s->n.config_splits += side != 0;
    if (s->cfg.verbose) {
        printf("  t=%llu group %u: disrupt node %u elected (%s)\n", (unsigned long long)s->now, g,
               node + 1, side != 0 ? "split" : "crash or cut off");
    }
    if (side == 0 && sim_chance(s, 500000)) {
        if (s->node[node].up && crash_allowed(s)) {
            node_crash(s, node);
        }
        return;
    }
    disrupt_partition(s, g, side != 0 ? side : cut_off_side(s, node, &h));
}

/* Group g's leader `node` started a change that may still be in flight: crash it, cut it off
 * (with the voters it is adding, half the time), split the network between two
 * configurations' majorities (else cut it off), or have another voter campaign. */
static void disrupt(struct sim *s, uint32_t node, raft_group g)
{
    struct sim_held h;
    if (!node_held(s, node, g, &h)) {
        return;
    }
    s->n.disruptions++;
    uint64_t pick = sim_rand(s, 0, 9);
    if (s->cfg.verbose) {
        printf("  t=%llu group %u: disrupt node %u (%s)\n", (unsigned long long)s->now, g, node + 1,
               pick < 2   ? "crash"
               : pick < 5 ? "cut off"
               : pick < 8 ? "split"
                          : "campaign");
    }
    if (pick < 2) {
        if (s->node[node].up && crash_allowed(s)) {
            node_crash(s, node);
        }
    } else if (pick < 8) {
        uint64_t side = pick < 5 ? 0 : config_split(s, g, node, false);
        s->n.config_splits += side != 0;
        disrupt_partition(s, g, side != 0 ? side : cut_off_side(s, node, &h));
    } else {
        raft_node v = member_with(s, &h.c[0], RAFT_VOTER);
        if (v != 0 && v != node + 1) {
            force_campaign_in(s, v - 1, g);
        }
    }
}

static void step_member(struct sim *s, const struct sim_event *e)
{
    if (s->healed || !s->cfg.membership) {
        return;
    }
    if (e->type == SIM_EV_MEMBER) {
        member_change(s, e->worker, s->cfg.pool, false);
    } else if (e->type == SIM_EV_MEMBER_ELECTED) {
        member_change(s, e->worker, e->node, true);
    } else if (e->type == SIM_EV_DISRUPT_ELECTED) {
        disrupt_elected(s, e->node, e->worker);
    } else {
        disrupt(s, e->node, e->worker);
    }
}

/* A random group's leader hands leadership to a random other voter (thesis §3.10). */
static void transfer_leader(struct sim *s)
{
    raft_group g = (raft_group)sim_rand(s, 0, s->cfg.groups - 1);
    uint32_t target = (uint32_t)sim_rand(s, 0, s->cfg.pool - 1);
    for (uint32_t i = 0; i < s->cfg.pool; i++) {
        struct raft_status st;
        if (!s->node[i].up || i == target) {
            continue;
        }
        raft_status(sim_group(s, i, g), &st);
        if (st.role != RAFT_LEADER) {
            continue;
        }
        struct raft *r = sim_group(s, i, g);
        int rc = raft_transfer_leader(r, target + 1);
        /* Only a voter of the new half (C_new when joint) may be a target. */
        bool learner = raft_config_role(sim_config_in_force(r), target + 1) != RAFT_VOTER;
        if (rc != 0 && rc != RR_ETRANSFER && rc != RR_ENOTLEADER && !(learner && rc == RR_EINVAL)) {
            sim_fail(s, "node %u group %u: raft_transfer_leader(%u): %s", i + 1, g, target + 1,
                     rr_strerror(rc));
        }
        s->n.transfers += rc == 0;
        multi_mark_dirty(s->node[i].m[g % s->cfg.workers], g);
        node_drain(s, i, g % s->cfg.workers);
        check_node(s, i);
    }
}

void sim_on_election(struct sim *s, uint32_t node, raft_group g)
{
    struct sim_node *nd = &s->node[node];
    if (!s->healed && nd->churn_at == 0 && sim_chance(s, s->rates.churn)) {
        nd->churn_at = s->now + sim_rand(s, 1, 2 * SIM_TICK);
    }
    if (!s->healed && s->cfg.membership) {
        member_on_election(s, node, g);
    }
}

static void faults(struct sim *s)
{
    uint32_t n = s->cfg.pool;
    uint32_t down = 0;
    uint32_t joined = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (!s->node[i].up && s->now >= s->node[i].restart_at) {
            node_restart(s, i);
        }
        down += s->node[i].joined && !s->node[i].up;
        joined += s->node[i].joined;
    }
    if (s->partition_until != 0 && s->now >= s->partition_until) {
        memset(s->blocked, 0, sizeof(s->blocked));
        s->partition_until = 0;
    }
    if (s->partition_until == 0 && sim_chance(s, s->rates.partition)) {
        partition_start(s, 0, 0);
    }
    /* Up to a bare majority down: quorum is sometimes lost, never for long. */
    if (down < joined / 2 + 1 && sim_chance(s, s->rates.crash)) {
        uint32_t victim = (uint32_t)sim_rand(s, 0, n - 1);
        if (s->node[victim].up) {
            node_crash(s, victim);
            down++;
        }
    }
    if (sim_chance(s, s->rates.campaign)) {
        force_campaign(s);
    }
    if (sim_chance(s, s->rates.transfer)) {
        transfer_leader(s);
    }
    if (s->cfg.membership && sim_chance(s, s->rates.member)) {
        membership_fault(s);
    }
    for (uint32_t k = 0; s->cfg.membership && k < s->hot_count; k++) {
        if (sim_chance(s, s->rates.member_hot)) {
            member_change(s, s->hot[k], s->cfg.pool, false);
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        struct sim_node *nd = &s->node[i];
        if (nd->up && nd->churn_at != 0 && s->now >= nd->churn_at && down < joined / 2 + 1) {
            s->n.churns++;
            node_crash(s, i);
            down++;
        }
    }
}

/* The group's state on every node, for a liveness report. */
static void print_group(struct sim *s, raft_group g)
{
    for (uint32_t i = 0; i < s->cfg.pool; i++) {
        struct raft_status st;
        if (!s->node[i].up) {
            continue;
        }
        raft_status(sim_group(s, i, g), &st);
        struct raft_config now;
        raft_config(sim_group(s, i, g), &now);
        const struct raft_config *c = &now;
        printf("  node %u group %u: config at %llu pending %d joint %d members", i + 1, g,
               (unsigned long long)raft_config_index(sim_group(s, i, g)),
               raft_config_pending(sim_group(s, i, g)), raft_config_is_joint(c));
        for (uint32_t k = 0; k < c->member_count; k++) {
            printf(" %u%s", c->members[k].id, c->members[k].role == RAFT_VOTER ? "" : "L");
        }
        printf("\n");
        printf("  node %u group %u: role %u term %llu vote %u leader %u commit %llu applied "
               "%llu last %llu/%llu persisted %llu snapshot %llu pending %u\n",
               i + 1, g, st.role, (unsigned long long)st.term, st.vote, st.leader,
               (unsigned long long)st.commit, (unsigned long long)st.applied,
               (unsigned long long)st.last_index, (unsigned long long)st.last_term,
               (unsigned long long)st.persisted_index, (unsigned long long)st.snapshot_index,
               s->node[i].pending_count[g]);
        const struct sim_unit *u = s->node[i].head[g % s->cfg.workers];
        printf("    has_ready %d durable last %llu unit %s done_at %llu\n",
               raft_has_ready(sim_group(s, i, g)),
               (unsigned long long)sim_dlog_last(&s->node[i].dlog[g]),
               u != NULL ? "queued" : "none", u != NULL ? (unsigned long long)u->done_at : 0ULL);
        struct raft_progress_view pv;
        for (uint32_t k = 1; k <= s->cfg.pool; k++) {
            if (raft_progress(sim_group(s, i, g), k, &pv)) {
                printf("    progress %u: state %u match %llu next %llu inflight %u active %d\n", k,
                       pv.state, (unsigned long long)pv.match, (unsigned long long)pv.next,
                       pv.inflight_count, pv.recent_active);
            }
        }
    }
}

/* After heal: every group must come to exactly one leader and ack a new proposal. */
static void liveness(struct sim *s)
{
    for (raft_group g = 0; g < s->cfg.groups; g++) {
        if (s->live_done[g]) {
            continue;
        }
        uint32_t leaders = 0;
        uint32_t leader = 0;
        raft_term term = 0;
        for (uint32_t i = 0; i < s->cfg.pool; i++) {
            struct raft_status st;
            if (!s->node[i].up) {
                continue; /* a pool node that never joined */
            }
            raft_status(sim_group(s, i, g), &st);
            if (st.role == RAFT_LEADER) {
                leaders++;
                leader = i;
                term = st.term;
            }
        }
        /* Propose again whenever leadership moved: the last proposal may be lost. */
        /* A refused proposal (a transfer in progress) is retried on the next tick. */
        if (leaders == 1 && (s->live_node[g] != leader + 1 || s->live_term[g] != term) &&
            client_propose(s, leader, g, ++s->payload_next) == 0) {
            s->live_node[g] = leader + 1;
            s->live_term[g] = term;
            node_drain_all(s, leader);
            check_node(s, leader);
        }
    }
    /* Every change started has completed or been abandoned cleanly: each group's single
     * leader is in a committed, non-joint configuration. */
    raft_group stuck = s->cfg.groups;
    for (raft_group g = 0; g < s->cfg.groups && stuck == s->cfg.groups; g++) {
        uint32_t leaders = 0;
        bool settled = false;
        for (uint32_t i = 0; i < s->cfg.pool; i++) {
            if (!s->node[i].up) {
                continue;
            }
            struct raft *r = sim_group(s, i, g);
            struct raft_status st;
            raft_status(r, &st);
            if (st.role == RAFT_LEADER) {
                leaders++;
                settled = !raft_config_pending(r) && !raft_config_is_joint(sim_config_in_force(r));
            }
        }
        if (leaders != 1 || !settled) {
            stuck = g;
        }
    }
    s->live_over = s->live_left == 0 && stuck == s->cfg.groups && sim_read_outstanding(s) == NULL;
    if (s->tick_no > s->heal_tick + SIM_LIVENESS_TICKS && !s->live_over) {
        if (s->live_left == 0 && stuck == s->cfg.groups) {
            read_outcome(s);
        }
        for (raft_group g = 0; g < s->cfg.groups; g++) {
            if (!s->live_done[g]) {
                print_group(s, g);
                sim_violation(s, "liveness",
                              "group %u: no single leader acked a proposal within %u ticks of "
                              "healing",
                              g, SIM_LIVENESS_TICKS);
            }
        }
        print_group(s, stuck);
        sim_violation(s, "liveness",
                      "group %u: a configuration change is still joint or pending %u ticks after "
                      "healing",
                      stuck, SIM_LIVENESS_TICKS);
    }
}

static void step_fault(struct sim *s)
{
    s->tick_no++;
    ev_at(s, s->now + SIM_TICK, SIM_EV_FAULT, 0, 0, NULL);
    if (!s->healed && s->tick_no >= s->cfg.ticks) {
        heal_all(s);
    }
    if (!s->healed) {
        faults(s);
    } else {
        liveness(s);
    }
}

/* ---- a run ---- */

static void rates_init(struct sim *s)
{
    struct sim_rates *r = &s->rates;
    r->loss = (uint32_t)sim_rand(s, 0, 80000);
    r->dup = (uint32_t)sim_rand(s, 0, 30000);
    r->delay_max = sim_rand(s, 20, 300);
    r->disk_max = sim_rand(s, 10, 300);
    r->crash = (uint32_t)sim_rand(s, 5000, 50000);
    r->tear = 500000;
    r->partition = (uint32_t)sim_rand(s, 10000, 50000);
    r->churn = (uint32_t)sim_rand(s, 0, 500000);
    r->campaign = (uint32_t)sim_rand(s, 0, 50000);
    r->transfer = (uint32_t)sim_rand(s, 0, 100000);
    r->member = (uint32_t)sim_rand(s, 20000, 200000);
    /* Membership schedules (above) in two membership seeds of three: one or two hot groups. */
    if (s->cfg.membership && sim_chance(s, 666667)) {
        s->hot_count = (uint32_t)sim_rand(s, 1, SIM_HOT_GROUPS_MAX);
        for (uint32_t k = 0; k < s->hot_count; k++) {
            s->hot[k] = (raft_group)sim_rand(s, 0, s->cfg.groups - 1);
        }
        /* Fewer background crashes, so that hot groups have leaders to disrupt. */
        r->crash = (uint32_t)sim_rand(s, 1000, 5000);
        r->churn = 0;
        r->partition = (uint32_t)sim_rand(s, 2000, 10000);
        r->member_hot = (uint32_t)sim_rand(s, 100000, 500000);
        r->member_elect = (uint32_t)sim_rand(s, 300000, 1000000);
        r->member_follow = (uint32_t)sim_rand(s, 200000, 800000);
        r->member_disrupt = (uint32_t)sim_rand(s, 500000, 1000000);
    }
    r->propose = 300000;
    r->read = 100000;
    r->snapshot = 200000;
    r->shorten = (uint32_t)sim_rand(s, 0, 500000);
    r->corrupt = (uint32_t)sim_rand(s, 0, 100000);
}

static void options_init(struct sim *s)
{
    static const uint32_t inflight[] = {1, 4, RAFT_INFLIGHT_COUNT_MAX};
    static const uint32_t per_msg[] = {1, 2, 64};
    struct multi_options *mo = &s->mo;
    memset(mo, 0, sizeof(*mo));
    mo->worker_count = s->cfg.workers;
    mo->group_count = s->cfg.groups;
    raft_options_default(&mo->group);
    mo->group.election_ticks = SIM_ELECTION_TICKS;
    mo->group.heartbeat_ticks = 1;
    mo->group.pre_vote = sim_chance(s, 500000);
    mo->group.check_quorum = sim_chance(s, 500000);
    /* A removed server that never learned of its removal times out and campaigns with ever
     * higher terms; PreVote or CheckQuorum's lease is what keeps it from deposing leaders
     * (docs/membership.md). With membership faults, one of them is always on. */
    if (s->cfg.membership && !mo->group.pre_vote && !mo->group.check_quorum) {
        if (sim_chance(s, 500000)) {
            mo->group.pre_vote = true;
        } else {
            mo->group.check_quorum = true;
        }
    }
    mo->group.inflight_count_max = inflight[sim_rand(s, 0, 2)];
    mo->group.append_entries_max = per_msg[sim_rand(s, 0, 2)];
    /* Quiescence in two seeds of three; those seeds also get quieter clients (1-30 % of
     * leader ticks propose) so that groups go idle, quiesce and wake under every fault. */
    mo->group.quiesce = s->cfg.quiesce >= 0 ? s->cfg.quiesce != 0 : sim_chance(s, 666667);
    /* Released entry data in half of the seeds, chosen from the seed without a draw so that
     * the other choices of a seed stay what they were. */
    mo->group.release_applied = s->cfg.release >= 0
                                    ? s->cfg.release != 0
                                    : ((s->cfg.seed * 0x9e3779b97f4a7c15ull) >> 63) != 0;
    if (mo->group.quiesce) {
        s->rates.propose = (uint32_t)sim_rand(s, 10000, 300000);
        s->rates.read = s->rates.propose / 3;
    }
    /* Drains bounded in work (as the node's are) in half of the seeds, from a budget of one
     * entry, so that groups left dirty for the next drain meet every fault. */
    s->drain_budget = sim_chance(s, 500000) ? (uint64_t)sim_rand(s, 1, 64) : 0;
    memset(&s->config, 0, sizeof(s->config));
    s->config.member_count = s->cfg.nodes;
    for (uint32_t i = 0; i < s->cfg.nodes; i++) {
        s->config.members[i] = (struct raft_member){.id = i + 1, .role = RAFT_VOTER};
    }
}

static void sim_dispatch(struct sim *s, const struct sim_event *e)
{
    sim_mix(s, e->time ^ ((uint64_t)e->type << 56) ^ ((uint64_t)e->node << 48) ^
                   ((uint64_t)e->worker << 44));
    switch ((enum sim_ev_type)e->type) {
    case SIM_EV_TICK:
        step_tick(s, e->node);
        break;
    case SIM_EV_DELIVER:
        step_deliver(s, e->pkt);
        break;
    case SIM_EV_PERSIST:
        step_persist(s, e);
        break;
    case SIM_EV_FAULT:
        step_fault(s);
        break;
    case SIM_EV_PEER_DOWN:
        step_peer_down(s, e);
        break;
    case SIM_EV_MEMBER:
    case SIM_EV_MEMBER_ELECTED:
    case SIM_EV_DISRUPT:
    case SIM_EV_DISRUPT_ELECTED:
        step_member(s, e);
        break;
    }
}

static void sim_teardown(struct sim *s)
{
    for (uint32_t i = 0; i < s->cfg.pool; i++) {
        struct sim_node *nd = &s->node[i];
        for (uint32_t w = 0; w < s->cfg.workers && nd->up; w++) {
            node_free_units(nd, w);
            multi_destroy(nd->m[w]);
        }
        for (raft_group g = 0; g < s->cfg.groups; g++) {
            sim_dlog_free(&nd->dlog[g]);
        }
        free(nd->restore_entries);
    }
    for (size_t k = 0; k < s->ev_count; k++) {
        free(s->ev[k].pkt);
    }
    free(s->ev);
    check_free(s);
}

int sim_run(const struct sim_config *cfg, struct sim_counts *out, uint64_t *digest)
{
    struct sim *s = calloc(1, sizeof(*s));
    RR_ASSERT(s != NULL);
    RR_ASSERT(cfg->nodes >= 1 && cfg->nodes <= cfg->pool && cfg->pool <= SIM_NODES_MAX);
    RR_ASSERT(cfg->workers >= 1 && cfg->workers <= SIM_WORKERS_MAX);
    RR_ASSERT(cfg->groups >= cfg->workers && cfg->groups <= SIM_GROUPS_MAX);
    s->cfg = *cfg;
    s->digest = 0xcbf29ce484222325ULL;
    rr_prng_seed(&s->prng, cfg->seed);
    rates_init(s);
    options_init(s);
    check_init(s);
    s->live_left = cfg->groups;
    if (cfg->verbose && s->hot_count > 0) {
        printf("  hot groups:");
        for (uint32_t k = 0; k < s->hot_count; k++) {
            printf(" %u", s->hot[k]);
        }
        printf("\n");
    }
    /* The cluster's nodes start; the rest of the pool joins when a leader adds it. */
    for (uint32_t i = 0; i < cfg->pool; i++) {
        s->node[i].restart_at = UINT64_MAX;
        if (i < cfg->nodes) {
            node_start(s, i);
        }
        ev_at(s, sim_rand(s, 0, SIM_TICK - 1), SIM_EV_TICK, i, 0, NULL);
    }
    ev_at(s, SIM_TICK / 2, SIM_EV_FAULT, 0, 0, NULL);
    while (s->ev_count > 0 && !(s->healed && s->live_over)) {
        struct sim_event e = ev_pop(s);
        s->now = e.time;
        s->n.steps++;
        sim_dispatch(s, &e);
    }
    check_config_finish(s);
    *out = s->n;
    *digest = s->digest;
    sim_teardown(s);
    free(s);
    return 0;
}
