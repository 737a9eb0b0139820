/* Cluster membership changes (paper §6, thesis §4): proposing configurations at the leader,
 * joint consensus and leaving it, the leader's progress set following the configuration,
 * a removed leader stepping down, and the committed / pending configuration queries.
 *
 * The configuration is not hard state: it is the latest RAFT_ENTRY_CONFIG in the log, else
 * the snapshot's, else the bootstrap one (raft_config_refresh). It takes effect when its
 * entry is appended (replication_append_entry) and is reverted when the entry is truncated
 * (append_new_entries). What is committed follows from the commit index. */
#include <stdlib.h>
#include <string.h>

#include "core/base/assert.h"
#include "core/base/errors.h"
#include "core/codec.h"
#include "core/raft_internal.h"

raft_index membership_config_at(const struct raft *r, raft_index index, struct raft_config *c)
{
    raft_index last = log_last_index(&r->log);
    for (raft_index i = index < last ? index : last; i > r->log.prev_index; i--) {
        const struct raft_entry *e = log_entry(&r->log, i);
        if (e->type == RAFT_ENTRY_CONFIG) {
            int rv = raft_config_from_entry(e, c);
            RR_ASSERT(rv == 0); /* validated before it entered the log */
            return i;
        }
    }
    if (r->snap.index > 0) {
        *c = r->snap.store->meta.config;
        return r->snap.index;
    }
    raft_config_unpack(&r->bootstrap, c);
    return 0;
}

/* ---- the leader's progress set ------------------------------------------------------- */

/* Whether id is in c's slots [0, end). */
static bool slots_have(const struct raft_config_packed *c, uint32_t end, raft_node id)
{
    for (uint32_t i = 0; i < end; i++) {
        if (config_member_id(c->members[i]) == id) {
            return true;
        }
    }
    return false;
}

/* The followers of a progress set for c and departing: every member but `self`, once. */
static uint32_t progress_count(raft_node self,
                               const struct raft_config_packed *c,
                               const struct raft_config_packed *departing)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < config_slot_count(c); i++) {
        raft_node id = config_member_id(c->members[i]);
        n += id != self && !slots_have(c, i, id) ? 1u : 0u;
    }
    for (uint32_t i = 0; departing != NULL && i < config_slot_count(departing); i++) {
        raft_node id = config_member_id(departing->members[i]);
        n += id != self && !slots_have(departing, i, id) && !slots_have(c, config_slot_count(c), id)
                 ? 1u
                 : 0u;
    }
    return n;
}

struct raft_progress *membership_progress_alloc(raft_node self,
                                                const struct raft_config_packed *c,
                                                const struct raft_config_packed *departing)
{
    uint32_t n = progress_count(self, c, departing);
    return calloc(n > 0 ? n : 1, sizeof(struct raft_progress)); /* a lone voter has none */
}

/* Moves p's progress for `id` (if any) into *dst; returns false if there is none. */
static bool progress_take(struct raft *r, raft_node id, struct raft_progress *dst)
{
    struct raft_progress *p = raft_progress_of(r, id);
    if (p == NULL) {
        return false;
    }
    *dst = *p; /* moves the in-flight ring too */
    p->id = RAFT_NODE_NONE;
    p->inflights.ring = NULL;
    return true;
}

/* Thesis §4.2.1: new servers join with empty logs; a follower new to the leader starts in
 * probe, so the leader finds where its log matches (or sends a snapshot) before
 * pipelining. Followers that stay keep their progress; removed ones are dropped. */
void membership_progress_install(struct raft *r,
                                 struct raft_progress *prs,
                                 raft_index next,
                                 const struct raft_config_packed *departing)
{
    uint32_t count = 0;
    for (uint32_t k = 0; k < 2; k++) {
        const struct raft_config_packed *c = k == 0 ? &r->config : departing;
        for (uint32_t i = 0; c != NULL && i < config_slot_count(c); i++) {
            raft_node id = config_member_id(c->members[i]);
            bool seen = false;
            for (uint32_t j = 0; j < count; j++) {
                seen = seen || prs[j].id == id;
            }
            if (id == r->opt.id || seen) {
                continue;
            }
            if (!progress_take(r, id, &prs[count])) {
                progress_init(&prs[count], id, next, r->opt.inflight_count_max,
                              r->opt.inflight_bytes_max);
            }
            count++;
        }
    }
    /* The array was sized by membership_progress_alloc for these same members. */
    RR_ASSERT(count == progress_count(r->opt.id, &r->config, departing));
    for (uint32_t i = 0; i < r->pr_count; i++) {
        progress_free(&r->prs[i]);
    }
    free(r->prs);
    r->prs = prs;
    r->pr_count = count;
    r->prs_departing = departing != NULL;
}

void membership_progress_drop(struct raft *r)
{
    for (uint32_t i = 0; i < r->pr_count; i++) {
        progress_free(&r->prs[i]);
    }
    free(r->prs);
    r->prs = NULL;
    r->pr_count = 0;
}

bool membership_progress_rebuild(struct raft *r)
{
    RR_ASSERT(r->role == RAFT_LEADER && r->prs == NULL && r->pr_count == 0);
    RR_ASSERT(!r->prs_departing);
    struct raft_progress *prs = membership_progress_alloc(r->opt.id, &r->config, NULL);
    if (prs == NULL) {
        return false;
    }
    raft_index last = log_last_index(&r->log);
    membership_progress_install(r, prs, last + 1, NULL);
    for (uint32_t i = 0; i < r->pr_count; i++) {
        r->prs[i].match = last;
        progress_become_replicate(&r->prs[i]);
    }
    return true;
}

/* ---- proposing ----------------------------------------------------------------------- */

/* Appends `c` as a configuration entry at the leader and rebuilds the progress set for it.
 * Everything that can fail is done before the log changes. */
static int leader_append_config(struct raft *r, const struct raft_config *c, raft_index *index)
{
    quiesce_wake(r);
    if (r->role != RAFT_LEADER) {
        return RR_ENOMEM; /* could not rebuild its progress set on waking (quiesce.c) */
    }
    struct raft_config_packed old = r->config;
    struct raft_config_packed next;
    struct rr_bytes buf;
    rr_bytes_init(&buf);
    int rv = raft_config_pack(c, &next) ? codec_config_encode(&buf, c) : RR_EINVAL;
    struct raft_progress *prs = rv == 0 ? membership_progress_alloc(r->opt.id, &next, &old) : NULL;
    if (rv == 0 && prs == NULL) {
        rv = RR_ENOMEM;
    }
    if (rv == 0) {
        rv = replication_append_local(r, RAFT_ENTRY_CONFIG, buf.base, (uint32_t)buf.len);
    }
    rr_bytes_free(&buf);
    if (rv != 0) {
        free(prs);
        return rv;
    }
    struct raft_config now;
    raft_config_unpack(&r->config, &now);
    RR_ASSERT(raft_config_equal(&now, c));
    /* New followers are probed from the configuration entry itself. Departing ones are
     * still sent the log until the entry commits, so that they learn of their removal and
     * do not time out and campaign (paper §6: removed servers "can disrupt the cluster");
     * quorums never count them. */
    membership_progress_install(r, prs, log_last_index(&r->log), &old);
    r->bcast_pending = true;
    read_index_on_config(r);
    if (r->transfer_target != RAFT_NODE_NONE &&
        config_role(&r->config, r->transfer_target) != RAFT_VOTER) {
        election_transfer_abort(r);
    }
    if (index != NULL) {
        *index = log_last_index(&r->log);
    }
    return 0;
}

/* Thesis §4.1 (and the 2015 correction to it, raft-dev "bug in single-server membership
 * changes"): "a leader may not append a new configuration entry until it has committed an
 * entry from its current term". And one change at a time: "the leader will not begin a new
 * configuration change until the previous one has committed"; leaving a joint
 * configuration is part of the change that entered it. */
static int change_allowed(const struct raft *r)
{
    if (r->role != RAFT_LEADER) {
        return RR_ENOTLEADER;
    }
    if (r->transfer_target != RAFT_NODE_NONE) {
        return RR_ETRANSFER;
    }
    if (raft_term_at(r, r->commit) != r->term) {
        return RR_ECONFIG; /* no entry of this term committed yet */
    }
    if (r->config_index > r->commit || config_is_joint(&r->config)) {
        return RR_ECONFIG; /* a change in flight */
    }
    return 0;
}

/* Servers whose vote changes between a and b (voter in one, not in the other). */
static uint32_t voter_changes(const struct raft_config *a, const struct raft_config *b)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < a->member_count; i++) {
        bool va = a->members[i].role == RAFT_VOTER;
        n += va != (raft_config_role(b, a->members[i].id) == RAFT_VOTER) ? 1u : 0u;
    }
    for (uint32_t i = 0; i < b->member_count; i++) {
        bool in_a = raft_config_is_member(a, b->members[i].id);
        n += !in_a && b->members[i].role == RAFT_VOTER ? 1u : 0u;
    }
    return n;
}

int raft_change_config(struct raft *r, const struct raft_config *target, raft_index *index)
{
    RR_ASSERT(!r->handed.pending);
    int rv = change_allowed(r);
    if (rv != 0) {
        return rv;
    }
    struct raft_config cur;
    raft_config_unpack(&r->config, &cur);
    if (target == NULL || target->old_member_count != 0 || !raft_config_valid(target) ||
        raft_config_equal(&cur, target)) {
        return RR_EINVAL;
    }
    struct raft_config next = *target;
    /* Thesis §4.1: a change of one voter keeps every majority of the old configuration
     * overlapping every majority of the new one, so it applies directly. Paper §6: any other
     * change first "transitions to ... joint consensus". */
    if (voter_changes(&cur, target) > 1) {
        memcpy(next.old_members, cur.members, sizeof(next.old_members));
        next.old_member_count = cur.member_count;
    }
    return leader_append_config(r, &next, index);
}

int raft_change_member(struct raft *r, raft_node id, uint8_t role, raft_index *index)
{
    RR_ASSERT(!r->handed.pending);
    int rv = change_allowed(r);
    if (rv != 0) {
        return rv;
    }
    if (id == RAFT_NODE_NONE || id > RAFT_NODE_ID_MAX ||
        (role != 0 && role != RAFT_VOTER && role != RAFT_LEARNER)) {
        return RR_EINVAL;
    }
    struct raft_config next; /* not joint: change_allowed */
    raft_config_unpack(&r->config, &next);
    uint32_t k = 0;
    for (uint32_t i = 0; i < next.member_count; i++) {
        if (next.members[i].id != id) {
            next.members[k++] = next.members[i];
        }
    }
    next.member_count = k;
    if (role != 0) {
        if (k == RAFT_MEMBERS_MAX) {
            return RR_EINVAL;
        }
        next.members[next.member_count++] = (struct raft_member){id, role};
    }
    return raft_change_config(r, &next, index);
}

/* ---- after a step -------------------------------------------------------------------- */

/* Paper §6: "Once C_old,new has been committed ... it is now safe for the leader to create
 * a log entry describing C_new and replicate it to the cluster." Like any change it waits
 * for an entry of the leader's own term to commit (a new leader inheriting a committed
 * joint configuration leaves it once its no-op commits). */
static void leave_joint(struct raft *r)
{
    struct raft_config next;
    raft_config_unpack(&r->config, &next);
    memset(next.old_members, 0, sizeof(next.old_members));
    next.old_member_count = 0;
    /* On failure (out of memory) the next step tries again. */
    (void)leader_append_config(r, &next, NULL);
}

/* Drops the progress of servers that left with the configuration entry just committed. */
static void prune_departed(struct raft *r)
{
    if (!r->prs_departing) {
        return;
    }
    uint32_t kept = 0;
    for (uint32_t i = 0; i < r->pr_count; i++) {
        kept += config_is_member(&r->config, r->prs[i].id) ? 1u : 0u;
    }
    if (kept == r->pr_count) {
        r->prs_departing = false;
        return;
    }
    struct raft_progress *prs = membership_progress_alloc(r->opt.id, &r->config, NULL);
    if (prs == NULL) {
        return; /* the next step tries again */
    }
    /* A last word to those leaving: the commit index, so that those holding the entry know
     * that it is committed and stop counting themselves as possibly needed (thesis §4.2.2:
     * a server outside its latest configuration campaigns while that one is pending). */
    for (uint32_t i = 0; i < r->pr_count; i++) {
        const struct raft_progress *p = &r->prs[i];
        if (!config_is_member(&r->config, p->id)) {
            struct raft_msg m = raft_msg_new(r, RAFT_MSG_HEARTBEAT, p->id);
            m.heartbeat.commit = r->commit < p->match ? r->commit : p->match;
            raft_send(r, &m, false, false);
        }
    }
    membership_progress_install(r, prs, log_last_index(&r->log) + 1, NULL);
    read_index_on_config(r);
}

void membership_check(struct raft *r)
{
    if (r->role != RAFT_LEADER || r->config_index > r->commit) {
        return;
    }
    prune_departed(r);
    /* Paper §6: "the leader ... steps down (returns to follower state) once it has committed
     * the C_new log entry"; until then it manages the cluster without counting itself. */
    if (!config_is_voter(&r->config, r->opt.id)) {
        election_become_follower(r, r->term, RAFT_NODE_NONE);
        return;
    }
    if (config_is_joint(&r->config) && raft_term_at(r, r->commit) == r->term) {
        leave_joint(r);
    }
}

/* ---- queries ------------------------------------------------------------------------- */

raft_index raft_config_index(const struct raft *r)
{
    return r->config_index;
}

bool raft_config_pending(const struct raft *r)
{
    return r->config_index > r->commit;
}

raft_index raft_config_committed(const struct raft *r, struct raft_config *c)
{
    if (r->config_index <= r->commit) {
        raft_config_unpack(&r->config, c);
        return r->config_index;
    }
    return membership_config_at(r, r->commit, c);
}

int raft_members_progress(const struct raft *r, struct raft_member_progress *out, uint32_t cap)
{
    if (r->role != RAFT_LEADER) {
        return RR_ENOTLEADER;
    }
    raft_index last = log_last_index(&r->log);
    if (r->quiesced) {
        return quiesce_members_progress(r, out, cap);
    }
    for (uint32_t i = 0; i < r->pr_count && i < cap; i++) {
        const struct raft_progress *p = &r->prs[i];
        out[i] = (struct raft_member_progress){
            .id = p->id,
            .role = config_is_voter(&r->config, p->id)    ? RAFT_VOTER
                    : config_is_member(&r->config, p->id) ? RAFT_LEARNER
                                                          : 0,
            .state = p->state,
            .match = p->match,
            .lag = last > p->match ? last - p->match : 0,
            .recent_active = p->recent_active,
        };
    }
    return (int)r->pr_count;
}
