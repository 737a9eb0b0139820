/* Where a client request goes and how it comes back.
 *
 * The origin worker (the one that accepted the client) hands a keyed request to the worker
 * that owns its group (g % W) through an SPSC queue. The owner either
 *   - proposes it (a write, this node leads the group): it completes when the entry at its
 *     (index, term) is applied; an entry of another term at that index means it was replaced
 *     and it is retried;
 *   - queues a ReadIndex (a read, this node leads): it completes when the read is released
 *     (an XREAD BLOCK with nothing to return then waits on its group's blocked list and is
 *     served again after drains that applied writes to the group);
 *   - forwards it to the leader's node over this worker's peer connection, or answers
 *     -MOVED in redirect mode;
 *   - or parks it until a leader is known.
 * Retries keep the request's (client id, seq), so a write applied once and retried after a
 * failover is answered from the state machine's session instead of applied again. Every
 * request has a deadline; one that passes it is answered with an error saying the outcome is
 * unknown. A completed request goes back to its origin: the client's worker, or the node that
 * forwarded it. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/assert.h"
#include "core/base/errors.h"
#include "io/log.h"
#include "io/node.h"
#include "io/wire/forward.h"
#include "io/wire/frame.h"
#include "io/wire/le.h"

/* FORWARD payload header: id, client id, seq, first unacked, group, class, argc. */

/* ---- lists and the id map --------------------------------------------------------------- */

void req_list_push(struct req_list *l, struct req *r)
{
    r->list_next = NULL;
    r->list_prev = l->tail;
    if (l->tail != NULL) {
        l->tail->list_next = r;
    } else {
        l->head = r;
    }
    l->tail = r;
    l->count++;
}

void req_list_remove(struct req_list *l, struct req *r)
{
    if (r->list_prev != NULL) {
        r->list_prev->list_next = r->list_next;
    } else {
        l->head = r->list_next;
    }
    if (r->list_next != NULL) {
        r->list_next->list_prev = r->list_prev;
    } else {
        l->tail = r->list_prev;
    }
    r->list_prev = r->list_next = NULL;
    l->count--;
}

static void all_push(struct worker *w, struct req *r)
{
    r->all_next = NULL;
    r->all_prev = w->all.tail;
    if (w->all.tail != NULL) {
        w->all.tail->all_next = r;
    } else {
        w->all.head = r;
    }
    w->all.tail = r;
    w->all.count++;
}

static void all_remove(struct worker *w, struct req *r)
{
    if (r->all_prev != NULL) {
        r->all_prev->all_next = r->all_next;
    } else {
        w->all.head = r->all_next;
    }
    if (r->all_next != NULL) {
        r->all_next->all_prev = r->all_prev;
    } else {
        w->all.tail = r->all_prev;
    }
    r->all_prev = r->all_next = NULL;
    w->all.count--;
}

/* Ids are sequential per origin worker (req_new), so their low bits index the table
 * directly: the requests in flight then occupy a few adjacent cache lines of it instead of
 * one random line of the 512 KiB table each (a multiplicative hash made every insert and
 * lookup a cache miss). The origin's boot and worker bits are folded in so that two origins'
 * sequences do not land on the same slots. */
static uint32_t map_slot(const struct worker *w, uint64_t id)
{
    return (uint32_t)(id ^ (id >> 40)) & w->req_map_mask;
}

static void map_insert(struct worker *w, struct req *r)
{
    uint32_t s = map_slot(w, r->id);
    r->hnext = w->req_map[s];
    w->req_map[s] = r;
}

static struct req *map_take(struct worker *w, uint64_t id)
{
    struct req **pp = &w->req_map[map_slot(w, id)];
    while (*pp != NULL) {
        if ((*pp)->id == id) {
            struct req *r = *pp;
            *pp = r->hnext;
            r->hnext = NULL;
            return r;
        }
        pp = &(*pp)->hnext;
    }
    return NULL;
}

/* ---- requests --------------------------------------------------------------------------- */

/* Requests up to REQ_POOL_BYTES (a SET or GET with short arguments, with room to spare) are
 * recycled through a per-worker pool with their reply buffers, so the steady state allocates
 * nothing per request; the pool is bounded, larger requests are plain allocations. */
#define REQ_POOL_BYTES       512u
#define REQ_POOL_MAX         4096u /* free requests a worker keeps */
#define REQ_POOL_REPLY_BYTES 512u  /* reply buffers a pooled request keeps */

_Static_assert(REQ_POOL_BYTES % 64 == 0, "aligned_alloc takes a multiple of the alignment");
_Static_assert(offsetof(struct req, origin_worker) + sizeof(uint32_t) <= 64,
               "the fields the id map and the lists touch fit in one cache line");

struct req *
req_new(struct worker *w, uint32_t argc, const uint8_t *const argv[], const size_t argl[])
{
    size_t bytes = 0;
    for (uint32_t i = 0; i < argc; i++) {
        bytes += argl[i];
    }
    size_t head = sizeof(struct req) + argc * (sizeof(uint8_t *) + sizeof(uint32_t));
    /* Each argument is NUL-terminated as well (internal arguments are parsed as strings). */
    size_t need = head + bytes + argc + 1;
    bool pooled = need <= REQ_POOL_BYTES;
    struct req *r;
    struct reply reply;
    reply_init(&reply, (size_t)w->node->cfg.client_output_buffer_max);
    if (pooled && w->req_pool != NULL) {
        r = w->req_pool;
        w->req_pool = r->list_next;
        w->req_pool_count--;
        /* The next one is popped soon (a pipeline parses request after request): start its
         * miss now rather than stall on it then. NULL is fine to prefetch. */
        __builtin_prefetch(w->req_pool, 1);
        reply.buf = r->reply.buf; /* keeps its buffer */
        reply.cap = r->reply.cap;
    } else {
        /* Pooled ones start on a cache line (the hot fields first: struct req). */
        r = pooled ? aligned_alloc(64, REQ_POOL_BYTES) : malloc(need);
        if (r == NULL) {
            return NULL;
        }
    }
    memset(r, 0, sizeof(*r));
    r->pooled = pooled;
    r->reply = reply;
    /* boot (16 bits) | worker (8) | counter (40): unique across restarts of this node (a
     * forward reply from before a restart never matches), increasing on one worker. */
    r->id = ((uint64_t)(w->node->boot & 0xffff) << 48) | ((uint64_t)(w->id & 0xff) << 40) |
            (++w->next_req_id & ((1ull << 40) - 1));
    r->argv = (const uint8_t **)(void *)(r + 1);
    r->argl = (uint32_t *)(void *)(r->argv + argc);
    r->args = (uint8_t *)(r->argl + argc);
    r->argc = argc;
    size_t off = 0;
    for (uint32_t i = 0; i < argc; i++) {
        memcpy(r->args + off, argv[i], argl[i]);
        r->args[off + argl[i]] = '\0';
        r->argv[i] = r->args + off;
        r->argl[i] = (uint32_t)argl[i];
        off += argl[i] + 1;
    }
    r->start_ns = node_clock_ns();
    r->deadline_ms = r->start_ns / 1000000 + w->node->cfg.request_timeout_ms;
    return r;
}

void req_free(struct worker *w, struct req *r)
{
    if (r->wait != NULL) {
        sm_xread_wait_free(r->wait);
        free(r->wait);
        r->wait = NULL;
    }
    /* Only the worker that made a request frees it: the pool is not shared. */
    RR_ASSERT(((r->id >> 40) & 0xff) == (w->id & 0xff));
    if (r->pooled && w->req_pool_count < REQ_POOL_MAX) {
        if (r->reply.cap > REQ_POOL_REPLY_BYTES) {
            reply_free(&r->reply);
        }
        r->list_next = w->req_pool;
        w->req_pool = r;
        w->req_pool_count++;
        return;
    }
    reply_free(&r->reply);
    free(r);
}

static bool xq_push(struct xq *q, struct req *r)
{
    uint64_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&q->head, memory_order_acquire);
    if (tail - head >= XQ_SLOTS) {
        return false;
    }
    q->slot[tail % XQ_SLOTS] = r;
    atomic_store_explicit(&q->tail, tail + 1, memory_order_release);
    return true;
}

static struct req *xq_pop(struct xq *q)
{
    uint64_t head = atomic_load_explicit(&q->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&q->tail, memory_order_acquire);
    if (head == tail) {
        return NULL;
    }
    struct req *r = q->slot[head % XQ_SLOTS];
    atomic_store_explicit(&q->head, head + 1, memory_order_release);
    return r;
}

static void reply_error_and_complete(struct worker *w, struct req *r, const char *err)
{
    reply_reset(&r->reply);
    reply_error(&r->reply, err);
    route_complete(w, r);
}

/* Hands r to worker `to`. A full queue (the other worker is far behind) keeps r in this
 * worker's outbox for `to`, in order; the budget of bytes in flight bounds it. */
static void hand_to(struct worker *w, uint32_t to, struct req *r)
{
    struct req_list *box = &w->outbox[to];
    if (box->head != NULL || !xq_push(w->out[to], r)) {
        req_list_push(box, r);
        return;
    }
    w->st.handoffs++;
    worker_wake(w, to);
}

static void flush_outboxes(struct worker *w)
{
    for (uint32_t to = 0; to < w->node->cfg.workers; to++) {
        struct req_list *box = &w->outbox[to];
        struct req *r;
        while ((r = box->head) != NULL && xq_push(w->out[to], r)) {
            req_list_remove(box, r);
            w->st.handoffs++;
            worker_wake(w, to);
        }
    }
}

void route_submit(struct worker *w, struct req *r)
{
    uint32_t owner = r->group % w->node->cfg.workers;
    r->origin_worker = w->id;
    if (owner == w->id) {
        route_execute(w, r);
    } else {
        hand_to(w, owner, r);
    }
}

void route_submit_later(struct worker *w, struct req *r)
{
    uint32_t owner = r->group % w->node->cfg.workers;
    r->origin_worker = w->id;
    if (owner == w->id) {
        r->state = REQ_NEW;
        req_list_push(&w->retry, r);
    } else {
        hand_to(w, owner, r);
    }
}

static void route_reforward(struct worker *w);

void route_handoffs(struct worker *w)
{
    flush_outboxes(w);
    /* Requests whose retry was decided inside a drain (which must not propose) go back to
     * their groups' waiting lists first, in id order, ahead of anything newer. */
    if (w->reforward_due) {
        w->reforward_due = false;
        route_reforward(w);
    }
    struct req_list retry = w->retry;
    memset(&w->retry, 0, sizeof(w->retry));
    struct req *r = retry.head;
    while (r != NULL) {
        struct req *next = r->list_next;
        r->list_prev = r->list_next = NULL;
        route_execute(w, r);
        r = next;
    }
    for (uint32_t j = 0; j < w->node->cfg.workers; j++) {
        if (j == w->id) {
            continue;
        }
        while ((r = xq_pop(w->in[j])) != NULL) {
            if (r->state == REQ_DONE) {
                client_req_done(w, r);
            } else {
                route_execute(w, r);
            }
        }
    }
}

/* Queues r to be executed again at the next iteration (state REQ_NEW on the retry list). */
static void retry_later(struct worker *w, struct req *r)
{
    r->state = REQ_NEW;
    req_list_push(&w->retry, r);
}

/* A group's waiting list is kept in request id order. Ids grow in arrival order on each
 * origin worker, so one client's requests stay in their order; almost every insert is at
 * the tail. */
static void waiting_insert(struct group_state *gs, struct req *r)
{
    struct req *after = gs->waiting.tail;
    while (after != NULL && after->id > r->id) {
        after = after->list_prev;
    }
    if (after == gs->waiting.tail) {
        req_list_push(&gs->waiting, r);
        return;
    }
    struct req *before = after == NULL ? gs->waiting.head : after->list_next;
    r->list_prev = after;
    r->list_next = before;
    before->list_prev = r;
    if (after == NULL) {
        gs->waiting.head = r;
    } else {
        after->list_next = r;
    }
    gs->waiting.count++;
}

/* Puts r back on its group's waiting list, to be placed at the next leader change or sweep
 * (called where placing now is not allowed or would loop: inside a drain, or on a "not the
 * leader" answer). */
static void retry_later_parked(struct worker *w, struct req *r)
{
    r->state = REQ_WAITING;
    waiting_insert(worker_group(w, r->group), r);
}

/* ---- execution at the owner ---------------------------------------------------------- */

static void moved(struct worker *w, struct req *r, raft_node leader)
{
    const struct node_address *a = nodeset_find(nodeset_get(w->node), leader);
    reply_reset(&r->reply);
    if (a == NULL) {
        reply_error(&r->reply, "TRYAGAIN leader unknown");
    } else {
        reply_errorf(&r->reply, "MOVED %u %s:%u", r->slot, a->host, a->port);
    }
    w->st.redirects++;
    route_complete(w, r);
}

static bool forward(struct worker *w, struct req *r, raft_node leader)
{
    struct peer *p = peer_find(w, leader);
    if (p == NULL || p->state != PEER_UP) {
        return false;
    }
    size_t args = forward_args_bytes(r->argc, r->argl);
    struct forward_header h = {.id = r->id,
                               .client_id = r->client_id,
                               .seq = r->seq,
                               .first_unacked = r->first_unacked,
                               .group = r->group,
                               .cls = r->cls,
                               .argc = r->argc};
    /* Encoded straight into the connection's output: into the batch of forwards for this
     * peer if it takes them (one frame and checksum for all that leave together), else a
     * frame of its own. */
    bool batched;
    uint8_t *payload =
        peer_forward_begin(p, FRAME_FORWARD_BATCH, FORWARD_HEADER_BYTES + args, &batched);
    if (payload == NULL) {
        return false;
    }
    forward_header_encode(payload, &h);
    forward_args_encode(payload + FORWARD_HEADER_BYTES, r->argc, (const uint8_t *const *)r->argv,
                        r->argl);
    peer_forward_end(p, payload, batched);
    r->state = REQ_FORWARDED;
    r->maybe_applied = true;
    r->forwarded_to = leader;
    req_list_push(&p->forwarded, r);
    map_insert(w, r);
    w->st.forwards_out++;
    /* A quiesced group here has no election timer: wake it, so that if the leader does not
     * answer (stopped, cut off with its connection still open) this node campaigns and the
     * request moves on to the next leader (route_reforward) instead of waiting out its
     * deadline. */
    const struct raft *follower = multi_group_peek(w->multi, r->group);
    if (follower != NULL && raft_quiesced(follower)) {
        raft_unquiesce(multi_group(w->multi, r->group));
    }
    return true;
}

/* r's entry was proposed at index: it waits among the proposed for its outcome. */
static void mark_proposed(struct worker *w, struct group_state *gs, struct req *r, raft_index index)
{
    req_list_remove(&gs->waiting, r);
    r->state = REQ_PROPOSED;
    r->maybe_applied = true;
    r->index = index;
    r->term = raft_term_at(multi_group_peek(w->multi, gs->g), index);
    RR_ASSERT(r->term != 0);
    req_list_push(&gs->proposed, r);
}

/* ---- worker-uncommitted-limit ------------------------------------------------------------
 *
 * A proposal the budget refuses (multi_propose: RR_EBUSY) stays first in its group's waiting
 * list, and its group joins the worker's queue of held-back groups. While that queue is not
 * empty only its head group may propose: the others wait their turn even if a small entry
 * would fit, so a group of large entries is not passed over for ever. After each round of
 * drains the head proposes again once its refused entry fits (route_uncommitted_resume). */

/* May gs propose now? Only if no group is held back, or it is the head of the queue. */
static bool budget_turn(const struct worker *w, const struct group_state *gs)
{
    return w->budget_head == NULL || w->budget_head == gs;
}

/* r's proposal of `len` bytes in gs waits for the budget. */
static void budget_hold(struct worker *w, struct group_state *gs, struct req *r, size_t len)
{
    if (!r->budget_waited) {
        r->budget_waited = true;
        w->st.uncommitted_waits++;
    }
    w->budget_refused = true;
    if (w->budget_head == gs || w->budget_head == NULL) {
        w->budget_need = len; /* what the head's entry needs */
    }
    if (gs->budget_queued) {
        return;
    }
    gs->budget_queued = true;
    gs->budget_next = NULL;
    if (w->budget_tail == NULL) {
        w->budget_head = gs;
    } else {
        w->budget_tail->budget_next = gs;
    }
    w->budget_tail = gs;
}

static void budget_pop(struct worker *w)
{
    struct group_state *gs = w->budget_head;
    w->budget_head = gs->budget_next;
    if (w->budget_head == NULL) {
        w->budget_tail = NULL;
    }
    gs->budget_queued = false;
    gs->budget_next = NULL;
}

/* Proposes r's encoded entry in gs in its turn at the budget: 0 with *index set, RR_EBUSY
 * when held back (gs joins the queue), or multi_propose's other refusals. */
static int propose_in_turn(struct worker *w,
                           struct group_state *gs,
                           struct req *r,
                           const uint8_t *entry,
                           size_t len,
                           raft_index *index)
{
    int rc =
        budget_turn(w, gs) ? multi_propose(w->multi, gs->g, entry, (uint32_t)len, index) : RR_EBUSY;
    if (rc == RR_EBUSY) {
        budget_hold(w, gs, r, len);
    }
    return rc;
}

/* Each place_* returns true if the request left the waiting list (proposed, reading,
 * forwarded, or answered), false if it must wait (not leader any more, a transfer in
 * progress, over the uncommitted limit, the leader's peer connection down). */
static bool place_write(struct worker *w, struct group_state *gs, struct req *r)
{
    struct sm_entry_header h = {.client_id = r->client_id,
                                .seq = r->seq,
                                .first_unacked = r->first_unacked,
                                .time_ms = node_wall_ms()};
    size_t len = sm_entry_size(r->argc, r->argl);
    if (len > RAFT_ENTRY_BYTES_MAX) {
        req_list_remove(&gs->waiting, r);
        reply_error_and_complete(w, r, "ERR command too large for the log");
        return true;
    }
    uint8_t stack[4096];
    uint8_t *buf = len <= sizeof(stack) ? stack : malloc(len);
    if (buf == NULL) {
        return false;
    }
    size_t n = sm_entry_encode(&h, r->argc, r->argv, r->argl, buf, len);
    RR_ASSERT(n == len);
    raft_index index = 0;
    int rc = propose_in_turn(w, gs, r, buf, n, &index);
    if (buf != stack) {
        free(buf);
    }
    if (rc != 0) {
        return false;
    }
    mark_proposed(w, gs, r, index);
    w->st.proposals++;
    return true;
}

static bool serve_read(struct group_state *gs, struct req *r);
static void block(struct worker *w, struct group_state *gs, struct req *r);
static void block_write(struct worker *w, struct group_state *gs, struct req *r, int64_t block_ms);

static bool place_read(struct worker *w, struct group_state *gs, struct req *r)
{
    if (FAULTS_UNSAFE(w, UNSAFE_TEST_READS_WITHOUT_READINDEX)) {
        /* Fault-test build only: answer from this leader's state machine without confirming
         * leadership, the stale read tests/faults must catch (docs/faults.md). */
        req_list_remove(&gs->waiting, r);
        if (serve_read(gs, r)) {
            block(w, gs, r);
        } else {
            route_complete(w, r);
        }
        return true;
    }
    if (multi_read_index(w->multi, gs->g, r->id) != 0) {
        return false;
    }
    req_list_remove(&gs->waiting, r);
    r->state = REQ_READING;
    req_list_push(&gs->reading, r);
    map_insert(w, r);
    w->st.reads++;
    return true;
}

/* ---- membership parts at the leader ------------------------------------------------------
 *
 * A membership part changes one group (docs/membership.md): it is placed like a write, at the
 * group's leader, but one that cannot be placed yet (another change in flight, the 2015 rule's
 * own-term commit, a learner still catching up, a transfer) is parked on the worker's list
 * and placed again at each sweep, instead of holding up the writes queued behind it. Each
 * part checks the configuration in force first, so a part retried after its reply was lost
 * (a forward connection broke) answers +OK instead of failing. */

/* A promoted learner must be this close to the leader's log (thesis §4.2.1: a new server
 * would otherwise hold up commitment while it catches up). */
#define MEMBER_CATCH_UP_SLACK 64

static void park(struct worker *w, struct group_state *gs, struct req *r)
{
    req_list_remove(&gs->waiting, r);
    r->state = REQ_PARKED;
    req_list_push(&w->parked, r);
}

static void member_done(struct worker *w, struct group_state *gs, struct req *r, const char *err)
{
    req_list_remove(&gs->waiting, r);
    reply_reset(&r->reply);
    if (err == NULL) {
        reply_simple(&r->reply, "OK");
    } else {
        reply_error(&r->reply, err);
    }
    route_complete(w, r);
}

static uint8_t member_role(const struct raft_config *c, raft_node id)
{
    for (uint32_t i = 0; i < c->member_count; i++) {
        if (c->members[i].id == id) {
            return c->members[i].role;
        }
    }
    return 0;
}

static bool place_transfer(struct worker *w, struct group_state *gs, struct req *r, raft_node id)
{
    if (id == w->node->cfg.node_id) {
        member_done(w, gs, r, NULL); /* this node leads: done */
        return true;
    }
    const struct raft *ro = multi_group_peek(w->multi, gs->g);
    struct raft_config now;
    raft_config(ro, &now);
    if (!raft_config_is_voter(&now, id)) {
        char err[96];
        snprintf(err, sizeof(err), "ERR node %u is not a voter of group %u", id, gs->g);
        member_done(w, gs, r, err);
        return true;
    }
    if (raft_transfer_target(ro) != id) {
        int rc = raft_transfer_leader(multi_group(w->multi, gs->g), id);
        if (rc != 0 && rc != RR_ETRANSFER) {
            char err[96];
            snprintf(err, sizeof(err), "ERR transfer refused: %s", rr_strerror(rc));
            member_done(w, gs, r, err);
            return true;
        }
        w->st.transfers++;
    }
    /* Done once `id` leads: placed again at the next sweep, it is forwarded there. */
    r->maybe_applied = true;
    park(w, gs, r);
    return true;
}

static bool place_member(struct worker *w, struct group_state *gs, struct req *r)
{
    const char *op = (const char *)r->argv[0];
    raft_node id = (raft_node)strtoul((const char *)r->argv[1], NULL, 10);
    if (strcmp(op, "transfer") == 0) {
        return place_transfer(w, gs, r, id);
    }
    uint8_t want = strcmp(op, "voter") == 0     ? RAFT_VOTER
                   : strcmp(op, "learner") == 0 ? RAFT_LEARNER
                                                : 0;
    const struct raft *ro = multi_group_peek(w->multi, gs->g);
    struct raft_config now;
    raft_config(ro, &now);
    uint8_t have = member_role(&now, id);
    char err[128];
    if (have == want && !raft_config_is_joint(&now)) {
        if (raft_config_pending(ro)) {
            park(w, gs, r); /* done once that configuration commits */
        } else {
            member_done(w, gs, r, NULL);
        }
        return true;
    }
    if (want == RAFT_VOTER && have != RAFT_LEARNER) {
        snprintf(err, sizeof(err), "ERR node %u is not a learner of group %u (RAFT ADDNODE first)",
                 id, gs->g);
        member_done(w, gs, r, err);
        return true;
    }
    if (want == RAFT_LEARNER && have == RAFT_VOTER) {
        snprintf(err, sizeof(err), "ERR node %u is already a voter of group %u", id, gs->g);
        member_done(w, gs, r, err);
        return true;
    }
    struct raft_status st;
    raft_status(ro, &st);
    struct raft_progress_view pv;
    if (want == RAFT_VOTER &&
        (!raft_progress(ro, id, &pv) || pv.match + MEMBER_CATCH_UP_SLACK < st.last_index)) {
        park(w, gs, r); /* still catching up */
        return true;
    }
    raft_index index = 0;
    int rc = raft_change_member(multi_group(w->multi, gs->g), id, want, &index);
    if (rc == RR_ECONFIG || rc == RR_ETRANSFER) {
        park(w, gs, r); /* a change or transfer in flight, or no own-term commit yet */
        return true;
    }
    if (rc != 0) {
        snprintf(err, sizeof(err), "ERR group %u refused the change: %s", gs->g, rr_strerror(rc));
        member_done(w, gs, r, err);
        return true;
    }
    mark_proposed(w, gs, r, index);
    return true;
}

/* A node-set entry (group 0 only), proposed like a write. */
static bool place_nodeset(struct worker *w, struct group_state *gs, struct req *r)
{
    struct node_address a = {0};
    a.id = (raft_node)strtoul((const char *)r->argv[1], NULL, 10);
    snprintf(a.host, sizeof(a.host), "%s", (const char *)r->argv[2]);
    a.port = (uint16_t)strtoul((const char *)r->argv[3], NULL, 10);
    a.peer_port = (uint16_t)strtoul((const char *)r->argv[4], NULL, 10);
    uint8_t op = strcmp((const char *)r->argv[0], "add") == 0 ? NODESET_ADD : NODESET_REMOVE;
    uint8_t buf[16 + NODE_HOST_MAX];
    size_t n = nodeset_entry_encode(op, &a, buf, sizeof(buf));
    if (gs->g != 0 || n == 0) {
        member_done(w, gs, r, "ERR malformed node-set change");
        return true;
    }
    raft_index index = 0;
    if (propose_in_turn(w, gs, r, buf, n, &index) != 0) {
        return false;
    }
    mark_proposed(w, gs, r, index);
    w->st.proposals++;
    return true;
}

static bool place(struct worker *w, struct group_state *gs, struct req *r)
{
    raft_node self = w->node->cfg.node_id;
    if (gs->role == RAFT_LEADER) {
        if (r->cls == REQ_INTERNAL_MEMBER) {
            return place_member(w, gs, r);
        }
        if (r->cls == REQ_INTERNAL_NODESET) {
            return place_nodeset(w, gs, r);
        }
        return r->cls == CMD_WRITE ? place_write(w, gs, r) : place_read(w, gs, r);
    }
    if (gs->leader == RAFT_NODE_NONE || gs->leader == self) {
        return false;
    }
    if (r->origin == ORIGIN_PEER) {
        /* Never forward a forwarded request: the forwarder retries at the leader it learns
         * of, which keeps requests from circling during elections. */
        req_list_remove(&gs->waiting, r);
        reply_reset(&r->reply);
        r->not_leader = true;
        route_complete(w, r);
        return true;
    }
    if (r->redirect_ok) {
        req_list_remove(&gs->waiting, r);
        moved(w, r, gs->leader);
        return true;
    }
    req_list_remove(&gs->waiting, r);
    if (forward(w, r, gs->leader)) {
        return true;
    }
    r->state = REQ_WAITING;
    waiting_insert(gs, r);
    return false;
}

/* Places the group's waiting requests in order until one must wait. One order per group
 * keeps each client's writes to a group in sequence order, as its session expects. */
static void group_pump(struct worker *w, struct group_state *gs)
{
    struct req *r;
    while ((r = gs->waiting.head) != NULL && place(w, gs, r)) {
    }
}

void route_uncommitted_resume(struct worker *w)
{
    uint64_t max = w->node->cfg.worker_uncommitted_max;
    while (w->budget_head != NULL) {
        uint64_t total = multi_uncommitted_bytes(w->multi);
        if (total != 0 && total + w->budget_need > max) {
            return; /* the head's entry does not fit yet (one larger than max goes alone) */
        }
        w->budget_refused = false;
        group_pump(w, w->budget_head);
        if (w->budget_refused) {
            return; /* it proposed what fitted and holds the head's place for the rest */
        }
        budget_pop(w); /* all proposed, or waiting for something else (a leader, a transfer) */
    }
}

/* RAFT SNAPSHOT / RAFT DIGEST: this node's copy of the group, answered at once. */
static void serve_local(struct worker *w, struct group_state *gs, struct req *r)
{
    reply_reset(&r->reply);
    if (r->cls == REQ_INTERNAL_SNAPSHOT) {
        raft_index index;
        snapshot_request(w, gs, &index);
        reply_int(&r->reply, (int64_t)index);
    } else {
        char text[128];
        int n = snprintf(text, sizeof(text), "applied:%llu digest:%016llx snapshot:%llu",
                         (unsigned long long)sm_applied_index(gs->sm),
                         (unsigned long long)sm_digest(gs->sm), (unsigned long long)gs->snap_index);
        reply_bulk(&r->reply, text, (size_t)n);
    }
    route_complete(w, r);
}

void route_execute(struct worker *w, struct req *r)
{
    if (r->all_prev == NULL && w->all.head != r) {
        all_push(w, r);
    }
    struct group_state *gs = worker_group(w, r->group);
    RR_ASSERT(gs != NULL);
    if (r->cls == REQ_INTERNAL_SNAPSHOT || r->cls == REQ_INTERNAL_DIGEST) {
        serve_local(w, gs, r);
        return;
    }
    if (w->fatal != 0) {
        reply_error_and_complete(w, r, "ERR this node's storage failed; see its log");
        return;
    }
    r->state = REQ_WAITING;
    waiting_insert(gs, r);
    group_pump(w, gs);
}

/* ---- outcomes ------------------------------------------------------------------------- */

void route_complete(struct worker *w, struct req *r)
{
    if (r->all_prev != NULL || w->all.head == r) {
        all_remove(w, r);
    }
    r->state = REQ_DONE;
    if (r->origin == ORIGIN_PEER) {
        RR_ASSERT(w->inflight_bytes >= r->cost);
        w->inflight_bytes -= r->cost;
        struct peer *p = peer_find(w, r->origin_node);
        if (p != NULL && p->state == PEER_UP) {
            struct group_state *gs = worker_group(w, r->group);
            struct forward_reply_header h = {.id = r->origin_id,
                                             .not_leader = r->not_leader ? 1 : 0,
                                             .leader = gs != NULL ? gs->leader : 0};
            size_t body = r->not_leader ? 0 : r->reply.len;
            bool batched;
            uint8_t *dst = peer_forward_begin(p, FRAME_FORWARD_REPLY_BATCH,
                                              FORWARD_REPLY_HEADER_BYTES + body, &batched);
            /* NULL: dropped and counted; the request times out at the forwarder. */
            if (dst != NULL) {
                forward_reply_header_encode(dst, &h);
                if (body > 0) {
                    memcpy(dst + FORWARD_REPLY_HEADER_BYTES, r->reply.buf, body);
                }
                peer_forward_end(p, dst, batched);
            }
        }
        req_free(w, r);
        return;
    }
    if (r->origin_worker == w->id) {
        client_req_done(w, r);
    } else {
        hand_to(w, r->origin_worker, r);
    }
}

/* The group's blocked reads try again after this drain (route_wake_blocked). */
static void queue_wake(struct worker *w, struct group_state *gs)
{
    if (gs->blocked.head != NULL && !gs->wake_queued) {
        gs->wake_queued = true;
        gs->wake_next = w->wake_head;
        w->wake_head = gs;
    }
}

void route_on_apply(struct worker *w,
                    struct group_state *gs,
                    const struct raft_entry *e,
                    const struct sm_ahead *ahead)
{
    struct req *head = gs->proposed.head;
    bool mine = head != NULL && head->index == e->index && head->term == e->term;
    struct reply *out = mine ? &head->reply : &w->scratch;
    reply_reset(out);
    queue_wake(w, gs);
    bool blocked = false;
    int64_t block_ms = 0;
    if (e->type == RAFT_ENTRY_CONFIG) {
        w->balance_settled = false; /* the voters, so the preferred leaders, may differ */
        sm_apply_empty(gs->sm, e->index);
        reply_simple(out, "OK"); /* a membership part's answer */
    } else if (e->type == RAFT_ENTRY_NORMAL && nodeset_entry_is(e->data.base, e->data.len)) {
        if (gs->g == 0) {
            nodeset_apply(w, e->index, e->data.base, e->data.len);
        }
        sm_apply_empty(gs->sm, e->index);
        reply_simple(out, "OK");
    } else if (e->type == RAFT_ENTRY_NORMAL && e->data.len > 0) {
        int rc = sm_apply_ahead(gs->sm, e->index, e->data.base, e->data.len, ahead, out);
        if (rc != 0) {
            /* The entry cannot be skipped: the state machine would diverge. */
            LOG_E("group %u: applying entry %llu failed: %s; stopping", gs->g,
                  (unsigned long long)e->index, rr_strerror(rc));
            abort();
        }
        blocked = mine && sm_apply_blocked(gs->sm, &block_ms);
    } else {
        sm_apply_empty(gs->sm, e->index);
    }
    /* Resolve proposals (core/raft.h, "Outcome of a proposal"): at this index, ours
     * completes and any other was replaced; beyond it, a proposal of an older term than this
     * committed entry has failed too, since committed terms never decrease with the index
     * (a new leader's no-op below our index). Failed ones are executed again. */
    while ((head = gs->proposed.head) != NULL &&
           (head->index <= e->index || head->term < e->term)) {
        req_list_remove(&gs->proposed, head);
        if (head->index == e->index && head->term == e->term) {
            if (blocked) {
                block_write(w, gs, head, block_ms);
            } else {
                route_complete(w, head);
            }
        } else {
            retry_later(w, head);
        }
    }
}

void route_on_restore(struct worker *w, struct group_state *gs, raft_index index, raft_term term)
{
    /* core/raft.h, "Outcome of a proposal": a proposal (i, t) with i <= index has an unknown
     * outcome, one with i > index and t < term has failed. Both are executed again; the
     * client's session applies each at most once. The rest stay: entries after the snapshot
     * are applied as usual. */
    struct req *r = gs->proposed.head;
    while (r != NULL) {
        struct req *next = r->list_next;
        if (r->index <= index || r->term < term) {
            req_list_remove(&gs->proposed, r);
            retry_later(w, r);
        }
        r = next;
    }
    /* The state changed without entries being applied: blocked reads look again. */
    queue_wake(w, gs);
}

/* An XREAD BLOCK found nothing: it waits on its group until a write gives it entries, its
 * BLOCK timeout passes, or its client goes away. It stays this worker's (timeouts). */
static void block(struct worker *w, struct group_state *gs, struct req *r)
{
    r->state = REQ_BLOCKED;
    req_list_push(&gs->blocked, r);
    w->blocked++;
    r->deadline_ms = r->wait->block_ms == 0 ? INT64_MAX : node_clock_ms() + r->wait->block_ms;
}

/* An XREADGROUP BLOCK whose entry delivered nothing (sm_apply_blocked: applied, changed
 * nothing, reply not kept): it waits on its group like a blocked XREAD until
 * sm_xreadgroup_wake finds entries for it, and is then proposed again with the same (client
 * id, seq); its BLOCK timeout counts from when it arrived. Its reply is already the null
 * array a timeout gives. */
static void block_write(struct worker *w, struct group_state *gs, struct req *r, int64_t block_ms)
{
    int64_t deadline =
        block_ms == 0 || block_ms > INT64_MAX / 4 ? INT64_MAX : r->start_ns / 1000000 + block_ms;
    if (node_clock_ms() >= deadline) {
        route_complete(w, r);
        return;
    }
    r->state = REQ_BLOCKED;
    req_list_push(&gs->blocked, r);
    w->blocked++;
    r->deadline_ms = deadline;
}

static void unblock(struct worker *w, struct group_state *gs, struct req *r)
{
    RR_ASSERT(r->state == REQ_BLOCKED);
    req_list_remove(&gs->blocked, r);
    RR_ASSERT(w->blocked > 0);
    w->blocked--;
}

void route_on_read(struct worker *w, struct group_state *gs, uint64_t ctx)
{
    struct req *r = map_take(w, ctx);
    if (r == NULL || r->state != REQ_READING) {
        return; /* timed out meanwhile */
    }
    req_list_remove(&gs->reading, r);
    if (serve_read(gs, r)) {
        block(w, gs, r);
        return;
    }
    route_complete(w, r);
}

/* A blocked XREADGROUP after writes to its group were applied: proposed again if it would
 * deliver, answered if its stream or group is gone, or left waiting. */
static void wake_write(struct worker *w, struct group_state *gs, struct req *r, int64_t now)
{
    reply_reset(&r->reply);
    switch (sm_xreadgroup_wake(gs->sm, now, r->argc, r->argv, r->argl, &r->reply)) {
    case SM_WAKE_WAIT:
        reply_null_array(&r->reply); /* what its timeout answers */
        return;
    case SM_WAKE_PROPOSE:
        unblock(w, gs, r);
        r->deadline_ms = node_clock_ms() + w->node->cfg.request_timeout_ms;
        retry_later(w, r); /* not from here: this may run inside a drain's aftermath */
        return;
    case SM_WAKE_REPLIED:
        unblock(w, gs, r);
        route_complete(w, r);
        return;
    }
}

/* After the drains: the blocked reads of groups that applied writes try again. A read that
 * finds entries is answered from the applied state, which holds only committed entries. */
void route_wake_blocked(struct worker *w)
{
    struct group_state *gs;
    while ((gs = w->wake_head) != NULL) {
        w->wake_head = gs->wake_next;
        gs->wake_next = NULL;
        gs->wake_queued = false;
        struct req *r = gs->blocked.head;
        const struct sm *sm = gs->sm;
        int64_t now = node_wall_ms();
        while (r != NULL) {
            struct req *next = r->list_next;
            if (r->cls == CMD_WRITE) {
                wake_write(w, gs, r, now);
                r = next;
                continue;
            }
            reply_reset(&r->reply);
            if (sm_xread_retry(sm, now, r->argc, r->argv, r->argl, r->wait, &r->reply)) {
                unblock(w, gs, r);
                route_complete(w, r);
            }
            r = next;
        }
    }
}

struct scan_ctx {
    struct reply *keys;
    uint64_t count;
};

static void collect_key(void *arg, const uint8_t *key, size_t len)
{
    struct scan_ctx *c = arg;
    reply_bulk(c->keys, key, len);
    c->count++;
}

/* Writes r's reply, or returns true (no reply) for an XREAD BLOCK that must wait (r->wait
 * set). */
static bool serve_read(struct group_state *gs, struct req *r)
{
    struct sm *sm = gs->sm;
    int64_t now = node_wall_ms();
    reply_reset(&r->reply);
    if (r->cls == REQ_INTERNAL_DBSIZE) {
        reply_int(&r->reply, (int64_t)sm_key_count(sm, now));
        return false;
    }
    if (r->cls == REQ_INTERNAL_SCAN) {
        /* args: cursor-within-group, count, pattern (may be empty: all), type (may be empty).
         * KEYS is a scan with count 0 (everything). Reply: *2 :next-cursor *n keys. */
        uint64_t cursor = strtoull((const char *)r->argv[0], NULL, 10);
        uint64_t count = strtoull((const char *)r->argv[1], NULL, 10);
        char type[16] = "";
        if (r->argl[3] > 0 && r->argl[3] < sizeof(type)) {
            memcpy(type, r->argv[3], r->argl[3]);
        }
        struct reply keys;
        reply_init(&keys, r->reply.limit);
        struct scan_ctx c = {.keys = &keys};
        do {
            sm_scan(sm, now, &cursor, count ? (uint32_t)count : 1024,
                    r->argl[2] ? r->argv[2] : NULL, r->argl[2], r->argl[3] ? type : NULL,
                    collect_key, &c);
        } while (count == 0 && cursor != 0);
        reply_array(&r->reply, 2);
        reply_int(&r->reply, (int64_t)cursor);
        reply_array(&r->reply, (int64_t)c.count);
        reply_raw(&r->reply, keys.buf, keys.len);
        reply_free(&keys);
        return false;
    }
    struct sm_xread_wait wait;
    if (!sm_read_wait(sm, now, r->argc, r->argv, r->argl, &wait, &r->reply)) {
        return false;
    }
    r->wait = malloc(sizeof(*r->wait));
    if (r->wait == NULL) {
        sm_xread_wait_free(&wait);
        reply_error(&r->reply, "OOM out of memory");
        return false;
    }
    *r->wait = wait;
    return true;
}

void route_on_read_failed(struct worker *w, struct group_state *gs, uint64_t ctx)
{
    struct req *r = map_take(w, ctx);
    if (r == NULL || r->state != REQ_READING) {
        return; /* timed out meanwhile */
    }
    /* This node stopped leading before the read was confirmed: read at the new leader. */
    req_list_remove(&gs->reading, r);
    retry_later(w, r);
}

/* Called from a drain (the role event), where proposing is not allowed: the group's waiting
 * requests are queued to be placed at the next iteration, now that a leader may be known. */
void route_on_role(struct worker *w, struct group_state *gs)
{
    struct req *r;
    while ((r = gs->waiting.head) != NULL) {
        req_list_remove(&gs->waiting, r);
        retry_later(w, r);
    }
    w->reforward_due = true;
}

/* The leader's node can end a forwarded blocked read whose client went away. */
static void send_cancel(struct worker *w, struct req *r)
{
    struct peer *p = peer_find(w, r->forwarded_to);
    if (p != NULL && p->state == PEER_UP) {
        uint8_t body[FORWARD_CANCEL_BYTES];
        forward_cancel_encode(body, &(struct forward_cancel){.id = r->id, .group = r->group});
        peer_send_frame(p, FRAME_FORWARD_CANCEL, body, sizeof(body), NULL, 0);
    }
}

/* After leader changes: a request forwarded to a node that no longer leads its group (as far
 * as this node knows) goes to the new leader, or is served here, instead of waiting for an
 * answer that a stopped or cut-off node may never send. It keeps its id, client id and
 * sequence number: a write the old leader did commit is answered from the session, never
 * applied twice; a late answer from the old leader is dropped (route_on_forward_reply). */
static void route_reforward(struct worker *w)
{
    for (uint32_t i = 0; i < w->peer_count; i++) {
        struct peer *p = &w->peers[i];
        struct req *r = p->forwarded.head;
        while (r != NULL) {
            struct req *next = r->list_next;
            raft_node leader = worker_group(w, r->group)->leader;
            if (leader != 0 && leader != p->id) {
                send_cancel(w, r); /* ends it there if it is a blocked read */
                req_list_remove(&p->forwarded, r);
                map_take(w, r->id);
                r->forwarded_before = p->id;
                w->st.reforwards++;
                retry_later(w, r);
            }
            r = next;
        }
    }
}

static void unlink_req(struct worker *w, struct req *r)
{
    struct group_state *gs = worker_group(w, r->group);
    switch (r->state) {
    case REQ_NEW: /* on the retry list */
        req_list_remove(&w->retry, r);
        return;
    case REQ_WAITING:
        req_list_remove(&gs->waiting, r);
        return;
    case REQ_PROPOSED:
        req_list_remove(&gs->proposed, r);
        return;
    case REQ_READING:
        req_list_remove(&gs->reading, r);
        map_take(w, r->id);
        return;
    case REQ_FORWARDED: {
        struct peer *p = peer_find(w, r->forwarded_to);
        req_list_remove(&p->forwarded, r);
        map_take(w, r->id);
        return;
    }
    case REQ_BLOCKED:
        unblock(w, gs, r);
        return;
    case REQ_PARKED:
        req_list_remove(&w->parked, r);
        return;
    default:
        RR_ASSERT(false);
    }
}

/* Does r's owner know a leader for its group to serve or redirect r (itself leading)? */
static bool leader_known(struct worker *w, const struct req *r)
{
    const struct group_state *gs = worker_group(w, r->group);
    if (gs == NULL) {
        return true; /* not this worker's group: not waiting for an election here */
    }
    return gs->role == RAFT_LEADER ||
           (gs->leader != RAFT_NODE_NONE && gs->leader != w->node->cfg.node_id);
}

void route_sweep(struct worker *w)
{
    int64_t now = node_clock_ms();
    /* How long a request in redirect mode waits for its group's election: the longest
     * randomized election timeout twice over (a split vote), then -TRYAGAIN. */
    int64_t tryagain_ms = 4 * (int64_t)w->node->cfg.election_ticks * w->node->cfg.tick_ms;
    struct req *r = w->all.head;
    while (r != NULL) {
        struct req *next = r->all_next;
        bool cancelled = atomic_load_explicit(&r->cancelled, memory_order_relaxed);
        if (cancelled && (r->state == REQ_BLOCKED || r->state == REQ_FORWARDED)) {
            /* Its client is gone: nobody waits for a blocked read (a forwarded one may be
             * blocked at the leader, which is told to end it). */
            if (r->state == REQ_FORWARDED) {
                send_cancel(w, r);
            }
            unlink_req(w, r);
            reply_reset(&r->reply);
            reply_error(&r->reply, "ERR client closed");
            route_complete(w, r);
        } else if (r->state == REQ_BLOCKED && r->deadline_ms <= now) {
            unlink_req(w, r);
            reply_reset(&r->reply);
            reply_null_array(&r->reply); /* BLOCK's timeout: Redis's nil */
            route_complete(w, r);
        } else if (r->state == REQ_WAITING && r->redirect_ok && !r->maybe_applied &&
                   !leader_known(w, r) && (int64_t)(r->start_ns / 1000000) + tryagain_ms <= now &&
                   r->deadline_ms > now) {
            /* Redirect mode, and no leader to send it to for a while: an election. A cluster
             * client retries on -TRYAGAIN (a plain one gets the error) rather than waiting
             * out request-timeout-ms for -CLUSTERDOWN. Never proposed, so never applied. */
            unlink_req(w, r);
            w->st.redirects++;
            reply_reset(&r->reply);
            reply_error(&r->reply, "TRYAGAIN no leader for this slot yet (an election is in "
                                   "progress); try again");
            route_complete(w, r);
        } else if (r->deadline_ms <= now) {
            unlink_req(w, r);
            w->st.timeouts++;
            reply_reset(&r->reply);
            if (r->maybe_applied) {
                reply_error(&r->reply, "TIMEOUT no answer in time; the command may or may not "
                                       "have been applied");
            } else if (r->budget_waited) {
                reply_error(&r->reply, "BUSY too many uncommitted bytes on this node; try again");
            } else {
                reply_error(&r->reply, "CLUSTERDOWN no leader for this slot; try again");
            }
            route_complete(w, r);
        }
        r = next;
    }
    /* Membership parts that could not be placed try again, ahead of the waiting lists. */
    struct req_list parked = w->parked;
    memset(&w->parked, 0, sizeof(w->parked));
    while ((r = parked.head) != NULL) {
        req_list_remove(&parked, r);
        route_execute(w, r);
    }
    /* Parked requests try again: a leader may be known now, a transfer over, the leader's
     * connection back. */
    if (w->all.count > 0) {
        for (uint32_t s = 0; s < w->group_count; s++) {
            if (w->groups[s].waiting.head != NULL) {
                group_pump(w, &w->groups[s]);
            }
        }
    }
}

/* ---- forwarding over the peer transport ------------------------------------------------- */

void route_on_forward(struct peer *p, const uint8_t *payload, size_t len)
{
    struct worker *w = p->conn->w;
    struct forward_header h;
    if (forward_header_decode(payload, len, &h) != 0) {
        peer_bad_frame(p, "malformed forward");
        return;
    }
    uint8_t cls = h.cls;
    uint32_t argc = h.argc;
    if (worker_group(w, h.group) == NULL ||
        (cls != CMD_WRITE && cls != CMD_READ && cls != REQ_INTERNAL_DBSIZE &&
         cls != REQ_INTERNAL_SCAN && cls != REQ_INTERNAL_MEMBER && cls != REQ_INTERNAL_NODESET) ||
        (cls == REQ_INTERNAL_SCAN && argc != 4) || (cls == REQ_INTERNAL_MEMBER && argc != 2) ||
        (cls == REQ_INTERNAL_NODESET && (argc != 5 || h.group != 0))) {
        peer_bad_frame(p, "forward for a group or class this worker does not serve");
        return;
    }
    /* forward_header_decode bounded argc by the payload's size: at most len / 4 slots. */
    const uint8_t *argv_stack[16];
    size_t argl_stack[16];
    bool small = argc <= 16;
    const uint8_t **argv = small ? argv_stack : malloc(argc * sizeof(*argv));
    size_t *argl = small ? argl_stack : malloc(argc * sizeof(*argl));
    if (argv == NULL || argl == NULL) {
        if (!small) {
            free(argv), free(argl);
        }
        return;
    }
    if (forward_args_decode(payload, len, &h, argv, argl) != 0) {
        if (!small) {
            free(argv), free(argl);
        }
        peer_bad_frame(p, "malformed forward arguments");
        return;
    }
    struct req *r = req_new(w, argc, argv, argl);
    if (!small) {
        free(argv), free(argl);
    }
    if (r == NULL) {
        return; /* the forwarder times out */
    }
    r->origin = ORIGIN_PEER;
    r->origin_node = p->id;
    r->origin_id = h.id;
    r->origin_worker = w->id;
    r->client_id = h.client_id;
    r->seq = h.seq;
    r->first_unacked = h.first_unacked;
    r->group = h.group;
    r->cls = cls;
    if (cls == REQ_INTERNAL_MEMBER || cls == REQ_INTERNAL_NODESET) {
        r->deadline_ms = r->start_ns / 1000000 + MEMBER_TIMEOUT_MS;
    }
    w->st.forwards_in++;
    /* Forwarded requests count against this worker's budget like its own clients' do. */
    r->cost = sizeof(*r) + len;
    if (w->inflight_bytes + r->cost > w->node->cfg.worker_inflight_max) {
        w->st.busy_rejects++;
        r->cost = 0;
        reply_error(&r->reply, "BUSY too many bytes in flight on the leader; try again");
        route_complete(w, r);
        return;
    }
    w->inflight_bytes += r->cost;
    route_execute(w, r);
}

void route_on_forward_reply(struct peer *p, const uint8_t *payload, size_t len)
{
    struct worker *w = p->conn->w;
    struct forward_reply_header h;
    const uint8_t *reply;
    size_t reply_len;
    if (forward_reply_decode(payload, len, &h, &reply, &reply_len) != 0) {
        peer_bad_frame(p, "malformed forward reply");
        return;
    }
    struct req *r = map_take(w, h.id);
    if (r == NULL) {
        return; /* timed out meanwhile */
    }
    if (r->state != REQ_FORWARDED || r->forwarded_to != p->id) {
        map_insert(w, r);
        if (r->forwarded_before == p->id) {
            return; /* moved on after a leader change (route_reforward): a late answer */
        }
        peer_bad_frame(p, "forward reply for a request not forwarded to this peer");
        return;
    }
    req_list_remove(&p->forwarded, r);
    if (h.not_leader) {
        /* Not the leader (any more): try again once we know better. */
        retry_later_parked(w, r);
        return;
    }
    reply_reset(&r->reply);
    reply_raw(&r->reply, reply, reply_len);
    route_complete(w, r);
}

/* Every record must decode before any is acted on: a malformed batch is refused whole. A
 * record the node refuses after that (a group its worker does not serve, a reply to a
 * request not forwarded to that peer) closes the connection as it would have as a frame of
 * its own, after the records before it. */
static bool batch_decodes(uint16_t type, const uint8_t *payload, size_t len)
{
    size_t off = 0;
    const uint8_t *rec;
    size_t rec_len;
    int rc;
    while ((rc = forward_record_next(payload, len, &off, &rec, &rec_len)) == 1) {
        struct forward_reply_header h;
        const uint8_t *reply;
        size_t reply_len;
        if ((type == FRAME_FORWARD_BATCH
                 ? forward_check(rec, rec_len)
                 : forward_reply_decode(rec, rec_len, &h, &reply, &reply_len)) != 0) {
            return false;
        }
    }
    return rc == 0 && len > 0;
}

void route_on_forward_batch(struct peer *p, uint16_t type, const uint8_t *payload, size_t len)
{
    if (!batch_decodes(type, payload, len)) {
        peer_bad_frame(p, "malformed forward batch");
        return;
    }
    struct conn *c = p->conn;
    size_t off = 0;
    const uint8_t *rec;
    size_t rec_len;
    while (forward_record_next(payload, len, &off, &rec, &rec_len) == 1) {
        if (type == FRAME_FORWARD_BATCH) {
            route_on_forward(p, rec, rec_len);
        } else {
            route_on_forward_reply(p, rec, rec_len);
        }
        if (p->conn != c) {
            return; /* a record was refused: the connection is closed */
        }
    }
}

/* A blocked read that `p` forwarded here and then cancelled, found by its id there. */
static struct req *
find_blocked_from(struct worker *w, struct group_state *gs, raft_node from, uint64_t origin_id)
{
    for (struct req *r = gs->blocked.head; r != NULL; r = r->list_next) {
        if (r->origin == ORIGIN_PEER && r->origin_node == from && r->origin_id == origin_id) {
            return r;
        }
    }
    (void)w;
    return NULL;
}

void route_on_forward_cancel(struct peer *p, const uint8_t *payload, size_t len)
{
    struct worker *w = p->conn->w;
    struct forward_cancel fc;
    if (forward_cancel_decode(payload, len, &fc) != 0) {
        peer_bad_frame(p, "bad forward cancel");
        return;
    }
    struct group_state *gs = worker_group(w, fc.group);
    if (gs == NULL) {
        peer_bad_frame(p, "forward cancel for a group this worker does not serve");
        return;
    }
    struct req *r = find_blocked_from(w, gs, p->id, fc.id);
    if (r != NULL) {
        unlink_req(w, r);
        reply_reset(&r->reply);
        reply_null_array(&r->reply);
        route_complete(w, r);
    }
}

void route_peer_down(struct worker *w, struct peer *p)
{
    /* The outcome of what was forwarded is unknown: retry with the same (client id, seq), so
     * the state machine's session answers a write that was applied instead of applying it
     * again. */
    struct req *r;
    while ((r = p->forwarded.head) != NULL) {
        req_list_remove(&p->forwarded, r);
        map_take(w, r->id);
        retry_later_parked(w, r);
    }
    /* Blocked reads that node forwarded here: nobody can take their replies any more. */
    for (uint32_t s = 0; s < w->group_count; s++) {
        struct group_state *gs = &w->groups[s];
        struct req *b = gs->blocked.head;
        while (b != NULL) {
            struct req *next = b->list_next;
            if (b->origin == ORIGIN_PEER && b->origin_node == p->id) {
                unlink_req(w, b);
                route_complete(w, b);
            }
            b = next;
        }
    }
}
