/* The order in which a group table's ready batches are handled, shared by the node (io/)
 * and the simulator so the simulator tests the node's real ordering. drain_run, for each
 * dirty group in turn:
 *
 *   1. persist: its hard state, snapshot, received snapshot chunk and entries go into the
 *      open persist unit (one unit for all groups of the drain);
 *   2. encode: its messages that need no persist join this drain's per-peer batches (a
 *      snapshot chunk to send goes to ops->snapshot_read instead: the caller reads it from
 *      its image and sends it); those that wait for the persist join the unit's held
 *      batches (or, addressed to this node, are copied to be stepped later);
 *   3. restore the snapshot if any, then apply committed entries (already durable locally;
 *      ops->apply_ahead, if set, sees the group's whole batch of them first);
 *   4. reads: read states whose index is now applied are released, then reads that will
 *      never be released are failed;
 *   5. a change of role, term or leader is reported;
 *   6. raft_advance.
 *   Then: send one batch per peer (heartbeats coalesced), close the persist unit
 *   (persist_submit), step local messages that needed no persist.
 *   Later, when the persist unit is durable, drain_persisted() sends the messages held for
 *   it (one batch per peer) and steps the local ones (persist acknowledgements, own vote).
 * Sends are issued after the applies of the same drain so that every group's messages to a
 * peer can share one batch; a node's loop submits them after drain_run returns anyway.
 */
#ifndef RR_CORE_DRAIN_H
#define RR_CORE_DRAIN_H

#include "core/multi.h"

struct drain_held; /* the messages waiting for one persist unit */

struct drain_ops {
    /* Adds one group's durable writes (rd->hard_state if flagged, rd->snapshot_chunk to
     * store, rd->snapshot to make the group's durable snapshot, rd->entries) to the current
     * persist unit, and drops what was stored of a transfer the core dropped (flag
     * RAFT_READY_SNAPSHOT_DROPPED, handled before the chunk; it needs no persist unit).
     * Called only if one of those is flagged. `rd` and all it points to live
     * only for the call (raft_advance frees them): copy. A received chunk with `done` asks
     * for a verdict (raft_snapshot_received) once drain_run returns (core/raft.h). */
    void (*persist)(void *ctx, raft_group g, const struct raft_ready *rd);
    /* Sends one encoded batch now; the bytes live only for the call. */
    void (*send)(void *ctx, raft_node to, const uint8_t *batch, size_t len);
    /* Closes the current persist unit (only if something was persisted or held). The caller
     * owns `held` and passes it to drain_persisted() once the whole unit is durable, or to
     * drain_held_free() if it never will be (crash). Units complete in submission order. */
    void (*persist_submit)(void *ctx, struct drain_held *held);
    /* Restores group g's state machine from the snapshot installed from the leader (its image
     * is the one the caller received through the chunks, `bytes` long), before applying later
     * entries. */
    void (*restore)(void *ctx, raft_group g, const struct raft_snapshot_meta *meta, uint64_t bytes);
    /* A chunk of group g's snapshot to send (m is RAFT_MSG_SNAPSHOT with chunk.base NULL;
     * core/raft.h, raft_ready.msgs): read up to chunk.len bytes at `offset` of the image of
     * snapshot meta.index and send the message (encoded alone in a batch, say) with chunk set
     * to them, now or later; or drop it. `m` lives only for the call. */
    void (*snapshot_read)(void *ctx, raft_group g, const struct raft_msg *m);
    /* Needed with raft_options.release_applied (else such messages are dropped). An append
     * of group g whose entries' data the core released (m->append.data_released; core/raft.h,
     * raft_ready.msgs): read the released entries from the durable log, check each index and
     * term against the message's, and send the message (encoded alone in a batch, say) with
     * them, or with the first k of them; now or later; or drop it. `m` and its entries live
     * only for the call. */
    void (*entries_read)(void *ctx, raft_group g, const struct raft_msg *m);
    /* Optional (NULL: not called). Group g's committed entries of this batch, entries[0, n)
     * with n > 0, just before they are applied (after `restore`): `apply` then gets
     * &entries[0], &entries[1], ... &entries[n - 1] in this order, and the array stays valid
     * until the last of them returns. A hint to prefetch what applying them will touch; it
     * must not change anything `apply` depends on. */
    void (*apply_ahead)(void *ctx, raft_group g, const struct raft_entry *entries, uint32_t n);
    /* Applies one committed entry of group g. */
    void (*apply)(void *ctx, raft_group g, const struct raft_entry *e);
    /* Releases one read: the state machine of g now includes rs->index. */
    void (*read)(void *ctx, raft_group g, const struct raft_read_state *rs);
    /* Fails one read (ctx from multi_read_index): g's node stopped leading before the read
     * was confirmed, and it will never come back through `read`. Answer the client (it
     * retries at the new leader). Every accepted read comes back exactly once, through
     * `read` or here, unless the table is destroyed first. */
    void (*read_failed)(void *ctx, raft_group g, uint64_t read_ctx);
    /* Group g's role, term or known leader changed (raft_ready's RAFT_READY_ROLE), after the
     * applies, releases and failures of the same batch: clients still waiting on this node
     * can be redirected to `leader`. A proposal's outcome is not implied (core/raft.h:
     * proposal outcomes are decided by what is applied). */
    void (*role_changed)(void *ctx, raft_group g, uint8_t role, raft_term term, raft_node leader);
};

/* Drains every dirty group once, in the order above (per group: ready, persist, encode,
 * restore, apply, reads, read failures, role change, advance; then the sends; then persist_submit),
 * and finally steps any message a group addressed to this node that needed no persist. Heartbeats
 * and heartbeat responses of all groups to one peer become one record each (codec heartbeat sets),
 * and all other messages to that peer join the same batch: one batch per peer per drain (more only
 * if it would exceed RAFT_BATCH_BYTES_MAX). Groups still having a ready after advance stay dirty
 * (multi_has_dirty). The ops must not call drain_run or drain_persisted; `send` must not keep the
 * bytes. Returns 0, or RR_ENOMEM / RR_ETOOBIG after finishing every group anyway: the messages that
 * could not be encoded were dropped (peers recover as from loss; a dropped local acknowledgement
 * stalls its group, so treat the error as fatal), or the first error of stepping a local message.
 */
int drain_run(struct multi *m, const struct drain_ops *ops, void *ctx);
/* drain_run, bounded in work so that sends are not held behind a long apply: once groups of
 * this drain have applied apply_budget entries (> 0), the groups not reached yet stay dirty
 * and go first in the next drain. A group's own batch is bounded by RAFT_APPLY_ENTRIES_MAX,
 * so a drain applies at most apply_budget + RAFT_APPLY_ENTRIES_MAX - 1 entries. Everything
 * else (sends, persist unit, local steps) is as in drain_run. *applied (if not NULL) gets
 * the entries applied. */
int drain_run_bounded(struct multi *m,
                      const struct drain_ops *ops,
                      void *ctx,
                      uint64_t apply_budget,
                      uint64_t *applied);
/* The unit holding `held` is durable: sends its batches (one per peer), steps its local
 * messages (persist acknowledgements, own votes) into their groups, and recycles `held`
 * (owned by `m` afterwards). Units must be passed in submission order. May leave groups
 * with new ready batches (multi_has_dirty: call drain_run again). Returns 0 or the first
 * raft_step error of a local message (all are stepped regardless). */
int drain_persisted(struct multi *m,
                    struct drain_held *held,
                    const struct drain_ops *ops,
                    void *ctx);
/* Frees a unit that will never be durable (crash, shutdown). NULL is a no-op. */
void drain_held_free(struct drain_held *held);

#endif
