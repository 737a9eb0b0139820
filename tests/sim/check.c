/* The simulator's property checkers (paper §5.4, Figure 3, and the ack/read contracts of
 * core/raft.h). Each is a named function; a violation prints "VIOLATION <name> ...", the
 * command that replays the seed, and exits with SIM_EXIT_VIOLATION. They run after every step
 * on the node the step touched, and from the drain callbacks as writes, sends, applies and
 * reads happen, so they are incremental: registries keyed by (group, index, term) rather than
 * rescans of every log. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/base/assert.h"
#include "tests/sim/sim.h"

typedef unsigned long long ull; /* printf's %llu */

void sim_print_replay(const struct sim_config *cfg)
{
    printf(
        "replay: %s --seed %llu --nodes %u --pool %u --groups %u --workers %u --ticks %u%s%s%s%s\n",
        cfg->argv0, (ull)cfg->seed, cfg->nodes, cfg->pool, cfg->groups, cfg->workers, cfg->ticks,
        cfg->membership ? "" : " --no-membership",
        cfg->quiesce < 0 ? "" : (cfg->quiesce != 0 ? " --quiesce 1" : " --quiesce 0"),
        cfg->release < 0 ? "" : (cfg->release != 0 ? " --release 1" : " --release 0"),
        cfg->rule_checkers ? "" : " --no-rule-checkers");
}

_Noreturn void sim_violation(struct sim *s, const char *checker, const char *fmt, ...)
{
    printf("VIOLATION %s seed=%llu t=%llu tick=%llu step=%llu: ", checker, (ull)s->cfg.seed,
           (ull)s->now, (ull)s->tick_no, (ull)s->n.steps);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    sim_print_replay(&s->cfg);
    fflush(stdout);
    _exit(SIM_EXIT_VIOLATION); /* no leak report: the world is left as it was */
}

_Noreturn void sim_fail(struct sim *s, const char *fmt, ...)
{
    printf("SIMFAIL seed=%llu t=%llu: ", (ull)s->cfg.seed, (ull)s->now);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    sim_print_replay(&s->cfg);
    fflush(stdout);
    _exit(SIM_EXIT_SIMFAIL);
}

uint64_t sim_hash_bytes(uint64_t h, const void *p, size_t len)
{
    const uint8_t *b = p;
    h ^= 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h = (h ^ b[i]) * 0x100000001b3ULL;
    }
    return h;
}

/* Identity of an entry's content (its term is compared separately). */
uint64_t sim_entry_hash(const struct raft_entry *e)
{
    return sim_hash_bytes(e->type, e->data.base, e->data.len);
}

static uint64_t sim_get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

void check_init(struct sim *s)
{
    sim_map_init(&s->leaders);
    sim_map_init(&s->entries);
    sim_map_init(&s->payloads);
    sim_map_init(&s->failed);
    sim_map_init(&s->changes);
    s->scratch = malloc(sizeof(*s->scratch));
    RR_ASSERT(s->scratch != NULL);
}

void check_free(struct sim *s)
{
    sim_map_free(&s->leaders);
    sim_map_free(&s->entries);
    sim_map_free(&s->payloads);
    sim_map_free(&s->failed);
    sim_map_free(&s->changes);
    for (raft_group g = 0; g < SIM_GROUPS_MAX; g++) {
        free(s->committed[g]);
    }
    free(s->reads);
    free(s->scratch);
}

static struct sim_committed *committed_at(struct sim *s, raft_group g, raft_index i)
{
    if (i >= s->committed_cap[g]) {
        raft_index cap = s->committed_cap[g] == 0 ? 256 : s->committed_cap[g];
        while (cap <= i) {
            cap *= 2;
        }
        s->committed[g] = realloc(s->committed[g], (size_t)cap * sizeof(*s->committed[g]));
        RR_ASSERT(s->committed[g] != NULL);
        memset(s->committed[g] + s->committed_cap[g], 0,
               (size_t)(cap - s->committed_cap[g]) * sizeof(*s->committed[g]));
        s->committed_cap[g] = cap;
    }
    return &s->committed[g][i];
}

/* ---- the named checkers ---- */

/* Election Safety (§5.2): at most one leader per (group, term), over the whole run. */
void election_safety(struct sim *s, uint32_t node, raft_group g, const struct raft_status *st)
{
    if (st->role != RAFT_LEADER) {
        return;
    }
    bool fresh = false;
    struct sim_val *v = sim_map_put(&s->leaders, (struct sim_key){g, st->term, 0}, &fresh);
    if (fresh) {
        v->x = node + 1;
        s->n.elections++;
        sim_on_election(s, node, g);
        if (s->cfg.verbose) {
            printf("  t=%llu group %u term %llu: leader %u\n", (ull)s->now, g, (ull)st->term,
                   node + 1);
        }
        return;
    }
    if (v->x != node + 1) {
        sim_violation(s, "election_safety", "group %u term %llu has two leaders: %llu and %u", g,
                      (ull)st->term, (ull)v->x, node + 1);
    }
}

/* Leader Append-Only (§5.3): during its term a leader's log only grows; the entry that was
 * last when we looked before is still there, unchanged. */
void leader_append_only(struct sim *s, uint32_t node, raft_group g, const struct raft_status *st)
{
    struct sim_watch *w = &s->node[node].watch[g];
    if (st->role != RAFT_LEADER || w->leader_term != st->term) {
        return;
    }
    if (st->last_index < w->leader_last) {
        sim_violation(s, "leader_append_only",
                      "node %u group %u term %llu: leader's last index went from %llu to %llu",
                      node + 1, g, (ull)st->term, (ull)w->leader_last, (ull)st->last_index);
    }
    raft_term t = raft_term_at(sim_group(s, node, g), w->leader_last);
    if (t != 0 && t != w->leader_last_term) {
        sim_violation(s, "leader_append_only",
                      "node %u group %u term %llu: leader's entry %llu changed term %llu -> %llu",
                      node + 1, g, (ull)st->term, (ull)w->leader_last, (ull)w->leader_last_term,
                      (ull)t);
    }
}

/* Log Matching (§5.3): an (index, term) names one entry, whose predecessor has one term, on
 * every node. By induction on the predecessor, equal (index, term) means equal prefixes. */
void log_matching(struct sim *s,
                  raft_group g,
                  raft_index index,
                  raft_term term,
                  uint64_t hash,
                  raft_term prev_term)
{
    bool fresh = false;
    struct sim_val *v = sim_map_put(&s->entries, (struct sim_key){g, index, term}, &fresh);
    if (fresh) {
        v->x = hash;
        v->y = prev_term;
        return;
    }
    if (v->x != hash) {
        sim_violation(s, "log_matching", "group %u index %llu term %llu: two different entries", g,
                      (ull)index, (ull)term);
    }
    if (prev_term == 0) {
        return; /* predecessor unknown (compacted) */
    }
    if (v->y == 0) {
        v->y = prev_term;
    } else if (v->y != prev_term) {
        sim_violation(s, "log_matching",
                      "group %u index %llu term %llu: preceded by term %llu and by term %llu", g,
                      (ull)index, (ull)term, (ull)v->y, (ull)prev_term);
    }
}

static void completeness_at(struct sim *s,
                            uint32_t node,
                            raft_group g,
                            const struct raft_status *st,
                            raft_index i,
                            raft_term term)
{
    if (i > st->last_index) {
        sim_violation(s, "leader_completeness",
                      "node %u leads group %u in term %llu without committed entry %llu (term "
                      "%llu); its last index is %llu",
                      node + 1, g, (ull)st->term, (ull)i, (ull)term, (ull)st->last_index);
    }
    raft_term t = raft_term_at(sim_group(s, node, g), i);
    if (t != 0 && t != term) {
        sim_violation(s, "leader_completeness",
                      "node %u leads group %u in term %llu with term %llu at committed index "
                      "%llu, which was applied with term %llu",
                      node + 1, g, (ull)st->term, (ull)t, (ull)i, (ull)term);
    }
}

/* Leader Completeness (§5.4): "if a log entry is committed in a given term, then that entry
 * will be present in the logs of the leaders for all higher-numbered terms". Committed =
 * applied by some node; the commit term is at most the term of the node that first applied it
 * (commit_term_max), so a leader of a later term must hold the entry. A stale leader of an
 * earlier term need not. Checked when a node is first seen leading a term. */
void leader_completeness(struct sim *s, uint32_t node, raft_group g)
{
    struct raft_status st;
    raft_status(sim_group(s, node, g), &st);
    raft_index from = st.first_index > 0 ? st.first_index : 1;
    for (raft_index i = from; i <= s->committed_max[g]; i++) {
        const struct sim_committed *c = committed_at(s, g, i);
        if (c->set && c->commit_term_max < st.term) {
            completeness_at(s, node, g, &st, i, c->term);
        }
    }
}

/* State Machine Safety (§5.4.3): no two nodes apply different entries at one index, and the
 * state after an index is the same everywhere (so snapshots carry the right state too). */
void state_machine_safety(struct sim *s,
                          uint32_t node,
                          raft_group g,
                          raft_index index,
                          raft_term term,
                          uint64_t entry_hash,
                          uint64_t state_hash)
{
    struct sim_committed *c = committed_at(s, g, index);
    if (!c->set) {
        *c = (struct sim_committed){term, entry_hash, state_hash, 0, true};
        if (index > s->committed_max[g]) {
            s->committed_max[g] = index;
        }
        return;
    }
    if (c->term != term || c->entry_hash != entry_hash) {
        sim_violation(s, "state_machine_safety",
                      "node %u applied a different entry (term %llu) at group %u index %llu than "
                      "was applied before (term %llu)",
                      node + 1, (ull)term, g, (ull)index, (ull)c->term);
    }
    if (c->state_hash != state_hash) {
        sim_violation(s, "state_machine_safety",
                      "node %u group %u: state after index %llu differs from another node's",
                      node + 1, g, (ull)index);
    }
}

/* Durable hard state: the durable term never goes back, and a durable vote for a term never
 * changes, across crashes and restarts (the disk outlives incarnations). */
void persisted_hard_state(struct sim *s,
                          uint32_t node,
                          raft_group g,
                          const struct raft_hard_state *old,
                          const struct raft_hard_state *new_hs)
{
    if (new_hs->term < old->term) {
        sim_violation(s, "persisted_hard_state",
                      "node %u group %u: durable term went back from %llu to %llu", node + 1, g,
                      (ull)old->term, (ull)new_hs->term);
    }
    if (new_hs->term == old->term && old->vote != RAFT_NODE_NONE && new_hs->vote != old->vote) {
        sim_violation(s, "persisted_hard_state",
                      "node %u group %u: durable vote in term %llu changed from %u to %u", node + 1,
                      g, (ull)old->term, old->vote, new_hs->vote);
    }
}

/* Log Matching, as the leader relies on it: a follower that accepts an append in term T
 * claims its log equals the leader of T's log up to the acked index, so while that leader
 * still leads T (its log only grows) the two hold the same term there. */
static void
ack_matches_leader(struct sim *s, uint32_t node, const struct raft_msg *m, raft_term mine)
{
    uint32_t leader = m->to - 1;
    if (m->to == RAFT_NODE_NONE || leader >= s->cfg.pool || !s->node[leader].up || mine == 0) {
        return;
    }
    struct raft *lr = sim_group(s, leader, m->group);
    struct raft_status ls;
    raft_status(lr, &ls);
    raft_term theirs = raft_term_at(lr, m->append_resp.index);
    if (ls.role != RAFT_LEADER || ls.term != m->term || theirs == 0 || theirs == mine) {
        return;
    }
    sim_violation(s, "log_matching",
                  "node %u acked group %u index %llu to leader %u of term %llu holding term "
                  "%llu there; the leader holds term %llu",
                  node + 1, m->group, (ull)m->append_resp.index, m->to, (ull)m->term, (ull)mine,
                  (ull)theirs);
}

/* What leaves a node must already be durable there: a granted vote (its term and vote), an
 * accepted append (the entries up to the acked index, with the terms the node now has),
 * an installed snapshot. */
void persisted_before_send(struct sim *s, uint32_t node, const struct raft_msg *m)
{
    if (m->group >= s->cfg.groups) {
        sim_fail(s, "node %u sent a message for group %u", node + 1, m->group);
    }
    const struct sim_dlog *d = &s->node[node].dlog[m->group];
    if (m->type == RAFT_MSG_VOTE_RESP && m->vote_resp.granted &&
        (d->hs.term != m->term || d->hs.vote != m->to)) {
        sim_violation(s, "persisted_hard_state",
                      "node %u granted its vote in group %u term %llu to %u while its durable "
                      "term is %llu and vote %u",
                      node + 1, m->group, (ull)m->term, m->to, (ull)d->hs.term, d->hs.vote);
    }
    raft_index acked = 0;
    if (m->type == RAFT_MSG_APPEND_RESP && !m->append_resp.rejected) {
        acked = m->append_resp.index;
    } else if (m->type == RAFT_MSG_SNAPSHOT_RESP && m->snapshot_resp.done &&
               !m->snapshot_resp.rejected) {
        acked = m->snapshot_resp.index;
    } else {
        return;
    }
    if (acked > sim_dlog_last(d)) {
        sim_violation(s, "persisted_before_ack",
                      "node %u acked group %u index %llu (term %llu) to %u with durable log "
                      "ending at %llu",
                      node + 1, m->group, (ull)acked, (ull)m->term, m->to, (ull)sim_dlog_last(d));
    }
    struct raft *r = sim_group(s, node, m->group);
    struct raft_status st;
    raft_status(r, &st);
    raft_term mem = raft_term_at(r, acked);
    if (m->type == RAFT_MSG_APPEND_RESP && st.term == m->term) {
        ack_matches_leader(s, node, m, mem);
    }
    if (st.term == m->term && acked > d->snap.index && mem != 0 && mem != sim_dlog_term(d, acked)) {
        sim_violation(s, "persisted_before_ack",
                      "node %u acked group %u index %llu in term %llu holding term %llu there, "
                      "but term %llu is durable",
                      node + 1, m->group, (ull)acked, (ull)m->term, (ull)mem,
                      (ull)sim_dlog_term(d, acked));
    }
}

/* Linearizable reads (thesis §6.4): a read serves a state that includes every write acked
 * before it began, and is released only once its read index is applied. */
void read_linearizable(struct sim *s, uint32_t node, raft_group g, uint64_t ctx, raft_index index)
{
    const struct sim_read *rd = &s->reads[ctx - 1];
    raft_index applied = s->node[node].sm[g].applied;
    if (applied < index) {
        sim_violation(s, "read_linearizable",
                      "node %u group %u: read released at applied %llu before its read index "
                      "%llu",
                      node + 1, g, (ull)applied, (ull)index);
    }
    if (applied < rd->min_index) {
        sim_violation(s, "read_linearizable",
                      "node %u group %u: read served the state at %llu, but a write at %llu was "
                      "acked before the read began",
                      node + 1, g, (ull)applied, (ull)rd->min_index);
    }
}

/* ---- membership (paper §6, thesis §4) ---- */

/* The configuration a node's own log puts in force, read from the log itself: the latest
 * configuration entry at or below `below`, else the snapshot's, else the bootstrap one.
 * Returns false if it cannot be known (the core's snapshot is not the one the harness saw). */
static bool log_config_at(struct sim *s,
                          uint32_t node,
                          raft_group g,
                          raft_index below,
                          struct raft_config *c,
                          raft_index *at,
                          bool *in_log)
{
    *in_log = false;
    struct raft *r = sim_group(s, node, g);
    struct raft_status st;
    raft_status(r, &st);
    raft_index i = below < st.last_index ? below : st.last_index;
    for (; i > 0; i--) {
        const struct raft_entry *e = raft_entry_at(r, i);
        if (e == NULL) {
            break;
        }
        if (e->type == RAFT_ENTRY_CONFIG) {
            memset(c, 0, sizeof(*c));
            if (codec_config_decode(e->data.base, e->data.len, c) != 0) {
                sim_fail(s, "node %u group %u: undecodable configuration entry at %llu", node + 1,
                         g, (ull)i);
            }
            *at = i;
            *in_log = true;
            return true;
        }
    }
    if (i > st.snapshot_index) {
        return false; /* an entry the log should hold is missing: nothing to compare */
    }
    const struct sim_watch *w = &s->node[node].watch[g];
    if (st.snapshot_index == 0) {
        *c = s->config;
        *at = 0;
        return true;
    }
    if (w->snap_index != st.snapshot_index) {
        return false;
    }
    *c = w->snap_config;
    *at = st.snapshot_index;
    return true;
}

bool sim_config_at(
    struct sim *s, uint32_t node, raft_group g, raft_index index, struct raft_config *c)
{
    raft_index at = 0;
    bool in_log = false;
    return log_config_at(s, node, g, index, c, &at, &in_log);
}

/* Configurations take effect when appended (paper §6: "a server always uses the latest
 * configuration in its log, regardless of whether the entry is committed") and a truncated
 * entry reverts to the one before: the configuration in force (raft_config) is the latest
 * configuration entry in the node's log, else its snapshot's, else the bootstrap one.
 * *out receives the configuration the log puts in force. */
void config_on_append(struct sim *s, uint32_t node, raft_group g, struct raft_config *out)
{
    struct raft *r = sim_group(s, node, g);
    raft_index at = 0;
    bool in_log = false;
    if (!log_config_at(s, node, g, UINT64_MAX, out, &at, &in_log)) {
        raft_config(r, out);
        return;
    }
    /* From the snapshot, the core may still name the compacted entry it came from. */
    raft_index ci = raft_config_index(r);
    if (!s->cfg.rule_checkers) {
        return;
    }
    if (!raft_config_equal(out, sim_config_in_force(r)) || (in_log ? ci != at : ci > at)) {
        sim_violation(s, "config_on_append",
                      "node %u group %u: configuration in force is the one of index %llu (%u "
                      "members, joint %d), but the latest in its log is at %llu (%u members, "
                      "joint %d)",
                      node + 1, g, (ull)raft_config_index(r), sim_config_in_force(r)->member_count,
                      raft_config_is_joint(sim_config_in_force(r)), (ull)at, out->member_count,
                      raft_config_is_joint(out));
    }
}

static bool durable_on(const struct sim *s, uint32_t node, raft_group g, raft_index i, raft_term t)
{
    const struct sim_dlog *d = &s->node[node].dlog[g];
    return d->snap.index >= i || sim_dlog_term(d, i) == t;
}

static bool majority_durable(const struct sim *s,
                             const struct raft_member *m,
                             uint32_t count,
                             raft_group g,
                             raft_index i,
                             raft_term t,
                             uint32_t *have,
                             uint32_t *voters)
{
    *have = 0;
    *voters = 0;
    for (uint32_t k = 0; k < count; k++) {
        if (m[k].role != RAFT_VOTER) {
            continue;
        }
        (*voters)++;
        if (m[k].id >= 1 && m[k].id <= s->cfg.pool && durable_on(s, m[k].id - 1, g, i, t)) {
            (*have)++;
        }
    }
    return 2 * *have > *voters;
}

/* Every entry a leader commits is durable on a majority of the voters (of both halves when
 * joint) of the configuration in force in its own log (paper §5.3, §6): checked whenever a
 * leader's commit index moves, on the entry at the new commit index, against the disks. */
void commit_quorum(struct sim *s,
                   uint32_t node,
                   raft_group g,
                   const struct raft_status *st,
                   const struct raft_config *c)
{
    struct sim_watch *w = &s->node[node].watch[g];
    if (st->role != RAFT_LEADER) {
        w->cq_term = 0;
        return;
    }
    if (w->cq_term != st->term) {
        w->cq_term = st->term;
        w->cq_commit = st->commit;
        return;
    }
    if (st->commit <= w->cq_commit) {
        return;
    }
    w->cq_commit = st->commit;
    raft_term t = raft_term_at(sim_group(s, node, g), st->commit);
    uint32_t have = 0;
    uint32_t voters = 0;
    if (!majority_durable(s, c->members, c->member_count, g, st->commit, t, &have, &voters) ||
        (c->old_member_count > 0 && !majority_durable(s, c->old_members, c->old_member_count, g,
                                                      st->commit, t, &have, &voters))) {
        sim_violation(s, "commit_quorum",
                      "node %u group %u term %llu committed %llu (term %llu), durable on only %u "
                      "of %u voters of %s of its configuration",
                      node + 1, g, (ull)st->term, (ull)st->commit, (ull)t, have, voters,
                      c->old_member_count > 0 ? "a half" : "the whole");
    }
}

/* Two rules on a configuration entry a leader appends in its own term: the 2015 fix (a leader
 * appends no configuration entry until an entry of its term is committed) and one change at
 * a time (no configuration entry beyond an uncommitted one, except the C_new that follows
 * the leader's own joint C_old,new). Called as the entry is handed to the disk. */
void config_change_rules(struct sim *s, uint32_t node, raft_group g, const struct raft_entry *e)
{
    if (!s->cfg.rule_checkers) {
        return;
    }
    struct raft *r = sim_group(s, node, g);
    struct raft_status st;
    raft_status(r, &st);
    if (e->type != RAFT_ENTRY_CONFIG || st.role != RAFT_LEADER || e->term != st.term) {
        return;
    }
    if (raft_term_at(r, st.commit) != st.term) {
        sim_violation(s, "config_after_own_term_commit",
                      "node %u group %u term %llu appended a configuration at %llu with commit "
                      "index %llu of term %llu",
                      node + 1, g, (ull)st.term, (ull)e->index, (ull)st.commit,
                      (ull)raft_term_at(r, st.commit));
    }
    for (raft_index i = e->index - 1; i > st.commit; i--) {
        const struct raft_entry *p = raft_entry_at(r, i);
        if (p == NULL || p->type != RAFT_ENTRY_CONFIG) {
            continue;
        }
        struct raft_config pc;
        struct raft_config ec;
        memset(&pc, 0, sizeof(pc));
        memset(&ec, 0, sizeof(ec));
        bool ok = codec_config_decode(p->data.base, p->data.len, &pc) == 0 &&
                  codec_config_decode(e->data.base, e->data.len, &ec) == 0;
        struct raft_config pnew = pc;
        pnew.old_member_count = 0;
        if (ok && raft_config_is_joint(&pc) && !raft_config_is_joint(&ec) && p->term == st.term &&
            raft_config_equal(&pnew, &ec)) {
            return; /* leaving its own joint configuration */
        }
        sim_violation(s, "single_config_change",
                      "node %u group %u term %llu appended a configuration at %llu while the one "
                      "at %llu is uncommitted (commit %llu)",
                      node + 1, g, (ull)st.term, (ull)e->index, (ull)i, (ull)st.commit);
    }
}

void check_config_started(struct sim *s, raft_group g, raft_index index, raft_term term)
{
    bool fresh = false;
    (void)sim_map_put(&s->changes, (struct sim_key){g, index, term}, &fresh);
    if (fresh) {
        s->n.config_started++;
    }
}

/* End of a run: every started change whose entry never committed was truncated or lost. */
void check_config_finish(struct sim *s)
{
    for (size_t k = 0; k < s->changes.cap; k++) {
        const struct sim_slot *sl = &s->changes.slots[k];
        if (sl->used && sl->v.x == 0) {
            s->n.config_aborted++;
        }
    }
}

/* ---- hooks ---- */

void check_node(struct sim *s, uint32_t node)
{
    struct sim_node *nd = &s->node[node];
    if (!nd->up) {
        return;
    }
    for (raft_group g = 0; g < s->cfg.groups; g++) {
        struct raft *r = sim_group(s, node, g);
        struct raft_status st;
        raft_status(r, &st);
        election_safety(s, node, g, &st);
        leader_append_only(s, node, g, &st);
        struct raft_config c;
        config_on_append(s, node, g, &c);
        commit_quorum(s, node, g, &st, &c);
        role_events(s, node, g, &st);
        quiesce_failover(s, node, g, &st);
        struct sim_watch *w = &nd->watch[g];
        if (st.role == RAFT_LEADER && w->leader_term != st.term) {
            w->leader_term = st.term;
            leader_completeness(s, node, g);
        } else if (st.role != RAFT_LEADER) {
            w->leader_term = 0;
        }
        w->leader_last = st.last_index;
        w->leader_last_term = st.last_term;
        const struct raft_entry *e = st.last_index > 0 ? raft_entry_at(r, st.last_index) : NULL;
        if (e != NULL) {
            log_matching(s, g, e->index, e->term, sim_entry_hash(e), 0);
        }
    }
}

void check_persist_entries(struct sim *s, uint32_t node, raft_group g, const struct raft_ready *rd)
{
    if (rd->entry_count == 0) {
        return;
    }
    struct sim_watch *w = &s->node[node].watch[g];
    struct raft *r = sim_group(s, node, g);
    struct raft_status st;
    raft_status(r, &st);
    raft_index first = rd->entries[0].index;
    if (first <= w->handed_last) {
        s->n.truncations++;
        if (st.role == RAFT_LEADER && w->handed_leader == st.term) {
            sim_violation(s, "leader_append_only",
                          "node %u group %u term %llu: leader rewrites its log from %llu (last "
                          "handed out %llu)",
                          node + 1, g, (ull)st.term, (ull)first, (ull)w->handed_last);
        }
    }
    if ((int64_t)g == s->cfg.trace) {
        printf("  t=%llu node %u writes %llu..%llu (term %llu..%llu) hs %d %llu/%u/%llu\n",
               (ull)s->now, node + 1, (ull)first, (ull)rd->entries[rd->entry_count - 1].index,
               (ull)rd->entries[0].term, (ull)rd->entries[rd->entry_count - 1].term,
               (rd->flags & RAFT_READY_HARD_STATE) != 0, (ull)rd->hard_state.term,
               rd->hard_state.vote, (ull)rd->hard_state.commit);
    }
    for (uint32_t i = 0; i < rd->entry_count; i++) {
        const struct raft_entry *e = &rd->entries[i];
        if (i > 0 && e->index != rd->entries[i - 1].index + 1) {
            sim_fail(s, "node %u group %u: ready entries not contiguous at %llu", node + 1, g,
                     (ull)e->index);
        }
        raft_term prev = i > 0 ? rd->entries[i - 1].term : raft_term_at(r, e->index - 1);
        log_matching(s, g, e->index, e->term, sim_entry_hash(e), prev);
        config_change_rules(s, node, g, e);
    }
    w->handed_last = rd->entries[rd->entry_count - 1].index;
    w->handed_leader = st.role == RAFT_LEADER ? st.term : 0;
}

void check_durable_hard_state(struct sim *s,
                              uint32_t node,
                              raft_group g,
                              const struct raft_hard_state *old,
                              const struct raft_hard_state *new_hs)
{
    persisted_hard_state(s, node, g, old, new_hs);
}

static void trace_msg(const struct sim *s, const struct raft_msg *m)
{
    printf("  t=%llu send %s %u->%u term %llu", (ull)s->now, raft_msg_type_name(m->type), m->from,
           m->to, (ull)m->term);
    switch ((enum raft_msg_type)m->type) {
    case RAFT_MSG_VOTE:
    case RAFT_MSG_PRE_VOTE:
        printf(" last %llu/%llu", (ull)m->vote.last_log_index, (ull)m->vote.last_log_term);
        break;
    case RAFT_MSG_VOTE_RESP:
    case RAFT_MSG_PRE_VOTE_RESP:
        printf(" granted %d", m->vote_resp.granted);
        break;
    case RAFT_MSG_APPEND:
        printf(" prev %llu/%llu commit %llu entries %u", (ull)m->append.prev_index,
               (ull)m->append.prev_term, (ull)m->append.commit, m->append.entry_count);
        for (uint32_t i = 0; i < m->append.entry_count; i++) {
            printf(" %llu/%llu", (ull)m->append.entries[i].index, (ull)m->append.entries[i].term);
        }
        break;
    case RAFT_MSG_APPEND_RESP:
        printf(" rejected %d index %llu hint %llu/%llu", m->append_resp.rejected,
               (ull)m->append_resp.index, (ull)m->append_resp.hint_index,
               (ull)m->append_resp.hint_term);
        break;
    case RAFT_MSG_HEARTBEAT:
        printf(" commit %llu ctx %llu%s", (ull)m->heartbeat.commit, (ull)m->heartbeat.read_ctx,
               m->heartbeat.quiesce ? " quiesce" : "");
        break;
    case RAFT_MSG_HEARTBEAT_RESP:
        printf(" ctx %llu", (ull)m->heartbeat_resp.read_ctx);
        break;
    case RAFT_MSG_SNAPSHOT:
        printf(" snapshot %llu/%llu offset %llu done %d", (ull)m->snapshot.last_index,
               (ull)m->snapshot.last_term, (ull)m->snapshot.offset, m->snapshot.done);
        break;
    case RAFT_MSG_SNAPSHOT_RESP:
        printf(" index %llu next %llu rejected %d done %d", (ull)m->snapshot_resp.index,
               (ull)m->snapshot_resp.next_offset, m->snapshot_resp.rejected, m->snapshot_resp.done);
        break;
    case RAFT_MSG_TIMEOUT_NOW:
    case RAFT_MSG_PERSISTED:
        break;
    }
    printf("\n");
}

/* core/quiesce.c: a leader quiesces only with its whole log committed and durable, so the
 * quiescing heartbeat's commit index is its last index, in its own term, and every follower
 * it quiesces can hold exactly that log; a leader woken before the heartbeat leaves keeps it
 * (it is still quiesced when it sends one). Checked as the heartbeat leaves. */
static void quiesce_heartbeat(struct sim *s, uint32_t node, const struct raft_msg *m)
{
    s->n.quiesce_hbs++;
    if (!s->cfg.rule_checkers) {
        return;
    }
    struct raft_status st;
    raft_status(sim_group(s, node, m->group), &st);
    if (!st.quiesced || st.role != RAFT_LEADER || st.term != m->term ||
        m->heartbeat.commit != st.commit || st.commit != st.last_index ||
        st.persisted_index != st.last_index || st.last_term != st.term ||
        m->heartbeat.read_ctx != 0) {
        sim_violation(s, "quiesce_rule",
                      "node %u group %u sent a quiescing heartbeat (term %llu commit %llu) as "
                      "role %u term %llu commit %llu last %llu/%llu persisted %llu",
                      node + 1, m->group, (ull)m->term, (ull)m->heartbeat.commit, st.role,
                      (ull)st.term, (ull)st.commit, (ull)st.last_index, (ull)st.last_term,
                      (ull)st.persisted_index);
    }
}

void check_outgoing(struct sim *s, uint32_t node, const uint8_t *batch, size_t len)
{
    struct codec_batch_reader rd;
    int rc = codec_batch_open(&rd, batch, len);
    if (rc != 0) {
        sim_fail(s, "node %u sent a batch that does not open (%d)", node + 1, rc);
    }
    struct raft_msg m;
    while ((rc = codec_batch_next(&rd, &m, s->scratch)) == 1) {
        if ((int64_t)m.group == s->cfg.trace) {
            trace_msg(s, &m);
        }
        persisted_before_send(s, node, &m);
        if (m.type == RAFT_MSG_HEARTBEAT && m.heartbeat.quiesce) {
            quiesce_heartbeat(s, node, &m);
        }
    }
    if (rc < 0) {
        sim_fail(s, "node %u sent a malformed batch (%d)", node + 1, rc);
    }
}

/* A payload id names one client proposal: applied at one (group, index) at most. */
static void
check_payload_once(struct sim *s, uint32_t node, raft_group g, const struct raft_entry *e)
{
    if (e->type != RAFT_ENTRY_NORMAL || e->data.len != SIM_PAYLOAD_BYTES) {
        return;
    }
    bool fresh = false;
    uint64_t id = sim_get64(e->data.base);
    struct sim_val *v = sim_map_put(&s->payloads, (struct sim_key){id, 0, 0}, &fresh);
    if (fresh) {
        v->x = g;
        v->y = e->index;
    } else if (v->x != g || v->y != e->index) {
        sim_violation(s, "state_machine_safety",
                      "node %u: payload %llu applied at group %u index %llu and at group %llu "
                      "index %llu",
                      node + 1, (ull)id, g, (ull)e->index, (ull)v->x, (ull)v->y);
    }
    if (sim_map_get(&s->failed, (struct sim_key){id, 0, 0}) != NULL) {
        sim_violation(s, "proposal_outcome",
                      "node %u group %u applies payload %llu at %llu, a proposal the outcome rule "
                      "had declared failed",
                      node + 1, g, (ull)id, (ull)e->index);
    }
}

/* A proposal the rule declares failed: no node may have applied it, nor ever apply it. */
static void proposal_failed(struct sim *s, uint32_t node, raft_group g, const struct sim_pending *p)
{
    const struct sim_val *v = sim_map_get(&s->payloads, (struct sim_key){p->payload_id, 0, 0});
    if (v != NULL) {
        sim_violation(s, "proposal_outcome",
                      "node %u group %u: proposal (%llu, term %llu) declared failed, but its "
                      "payload %llu was applied at group %llu index %llu",
                      node + 1, g, (ull)p->index, (ull)p->term, (ull)p->payload_id, (ull)v->x,
                      (ull)v->y);
    }
    bool fresh = false;
    (void)sim_map_put(&s->failed, (struct sim_key){p->payload_id, 0, 0}, &fresh);
    s->n.outcome_failed++;
}

/* core/raft.h, raft_propose: the proposing node decides each proposal (i, t) from the entry
 * (j, u) it applies: committed iff j == i and u == t (then it must be the proposal's own
 * entry); failed if j == i and u != t, or j < i and u > t (then it must never be applied
 * anywhere). Undecided proposals stay pending. */
static void proposal_outcome(struct sim *s, uint32_t node, raft_group g, const struct raft_entry *e)
{
    struct sim_node *nd = &s->node[node];
    for (uint32_t k = 0; k < nd->pending_count[g];) {
        struct sim_pending p = nd->pending[g][k];
        bool ours = e->data.len == SIM_PAYLOAD_BYTES && sim_get64(e->data.base) == p.payload_id;
        if (p.index == e->index && e->term == p.term && !ours) {
            sim_violation(s, "proposal_outcome",
                          "node %u group %u: applies (%llu, term %llu) which is not its proposal "
                          "(payload %llu) of that index and term",
                          node + 1, g, (ull)e->index, (ull)e->term, (ull)p.payload_id);
        }
        bool failed =
            (p.index == e->index && e->term != p.term) || (p.index > e->index && e->term > p.term);
        if (failed) {
            proposal_failed(s, node, g, &p);
            nd->pending[g][k] = nd->pending[g][--nd->pending_count[g]];
        } else {
            k++;
        }
    }
}

void check_proposals_snapshot(struct sim *s,
                              uint32_t node,
                              raft_group g,
                              const struct raft_snapshot_meta *meta)
{
    struct sim_node *nd = &s->node[node];
    for (uint32_t k = 0; k < nd->pending_count[g];) {
        struct sim_pending p = nd->pending[g][k];
        bool unknown = p.index <= meta->index;
        bool failed = !unknown && meta->term > p.term;
        if (failed) {
            proposal_failed(s, node, g, &p);
        }
        s->n.outcome_unknown += unknown;
        if (failed || unknown) {
            nd->pending[g][k] = nd->pending[g][--nd->pending_count[g]];
        } else {
            k++;
        }
    }
}

static void check_client_ack(struct sim *s, uint32_t node, raft_group g, const struct raft_entry *e)
{
    proposal_outcome(s, node, g, e);
    /* At most one pending proposal per index: client_propose drops older ones. */
    struct sim_node *nd = &s->node[node];
    uint32_t k = 0;
    while (k < nd->pending_count[g] && nd->pending[g][k].index != e->index) {
        k++;
    }
    if (k == nd->pending_count[g]) {
        return;
    }
    struct sim_pending p = nd->pending[g][k];
    nd->pending[g][k] = nd->pending[g][--nd->pending_count[g]];
    if (e->data.len != SIM_PAYLOAD_BYTES || sim_get64(e->data.base) != p.payload_id) {
        return; /* another entry took the index: the proposal was lost, not acked */
    }
    s->n.acks++;
    if (e->index > s->acked_max[g]) {
        s->acked_max[g] = e->index;
    }
    if (s->healed && p.payload_id > s->heal_payload && !s->live_done[g]) {
        s->live_done[g] = true;
        s->live_left--;
    }
}

/* core/raft.h: committed entries handed out to apply "are already durable locally" (the
 * snapshot the state machine was restored from covers the rest). */
void persisted_before_apply(struct sim *s, uint32_t node, raft_group g, const struct raft_entry *e)
{
    const struct sim_dlog *d = &s->node[node].dlog[g];
    if (e->index <= d->snap.index) {
        return;
    }
    raft_term t = sim_dlog_term(d, e->index);
    if (t != e->term) {
        sim_violation(s, "persisted_before_apply",
                      "node %u group %u applies %llu (term %llu) while its durable log holds "
                      "term %llu there (durable last %llu)",
                      node + 1, g, (ull)e->index, (ull)e->term, (ull)t, (ull)sim_dlog_last(d));
    }
}

void check_apply(struct sim *s, uint32_t node, raft_group g, const struct raft_entry *e)
{
    persisted_before_apply(s, node, g, e);
    struct sim_sm *sm = &s->node[node].sm[g];
    if (e->index != sm->applied + 1) {
        sim_violation(s, "state_machine_safety",
                      "node %u group %u applied index %llu right after %llu", node + 1, g,
                      (ull)e->index, (ull)sm->applied);
    }
    uint64_t h = sim_entry_hash(e);
    if ((int64_t)g == s->cfg.trace) {
        printf("  t=%llu node %u applies %llu/%llu\n", (ull)s->now, node + 1, (ull)e->index,
               (ull)e->term);
    }
    sm->applied = e->index;
    sm->hash = sim_hash_bytes(sm->hash ^ e->term, &h, sizeof(h));
    sm->count++;
    bool fresh = e->index > s->committed_max[g] || !committed_at(s, g, e->index)->set;
    state_machine_safety(s, node, g, e->index, e->term, h, sm->hash);
    log_matching(s, g, e->index, e->term, h, 0);
    if (fresh) {
        struct raft_status st;
        raft_status(sim_group(s, node, g), &st);
        struct sim_committed *c = committed_at(s, g, e->index);
        /* The commit index came from a leader of a term <= ours (or we lead): the entry was
         * committed in a term no later than our current one. */
        c->commit_term_max = st.term;
        check_payload_once(s, node, g, e);
        struct sim_val *ch = e->type == RAFT_ENTRY_CONFIG
                                 ? sim_map_get(&s->changes, (struct sim_key){g, e->index, e->term})
                                 : NULL;
        if (ch != NULL && ch->x == 0) {
            ch->x = 1;
            s->n.config_completed++;
        }
    }
    check_client_ack(s, node, g, e);
}

void check_restore(struct sim *s, uint32_t node, raft_group g, raft_index index)
{
    const struct sim_sm *sm = &s->node[node].sm[g];
    if (index > s->committed_max[g]) {
        sim_violation(s, "state_machine_safety",
                      "node %u group %u restored a snapshot at %llu, past every applied index "
                      "(%llu)",
                      node + 1, g, (ull)index, (ull)s->committed_max[g]);
    }
    const struct sim_committed *c = committed_at(s, g, index);
    if (c->set && c->state_hash != sm->hash) {
        sim_violation(s, "state_machine_safety",
                      "node %u group %u restored a snapshot at %llu whose state differs from "
                      "the state applied there",
                      node + 1, g, (ull)index);
    }
}

uint64_t check_read_begin(struct sim *s, uint32_t node, raft_group g)
{
    if (s->read_count == s->read_cap) {
        s->read_cap = s->read_cap == 0 ? 256 : s->read_cap * 2;
        s->reads = realloc(s->reads, s->read_cap * sizeof(*s->reads));
        RR_ASSERT(s->reads != NULL);
    }
    s->reads[s->read_count++] = (struct sim_read){.node = node,
                                                  .g = g,
                                                  .min_index = s->acked_max[g],
                                                  .incarnation = s->node[node].incarnation};
    return s->read_count; /* ctx = position + 1: 0 is never a context */
}

void check_read_accepted(struct sim *s, uint64_t ctx)
{
    RR_ASSERT(ctx >= 1 && ctx <= s->read_count);
    s->reads[ctx - 1].accepted = true;
}

/* The read `ctx` comes back from node/g: it must be one that node accepted for g and that
 * has not come back before (core/raft.h: exactly once, released or failed). */
static struct sim_read *read_returned(struct sim *s, uint32_t node, raft_group g, uint64_t ctx)
{
    if (ctx == 0 || ctx > s->read_count) {
        sim_fail(s, "node %u group %u returned unknown read %llu", node + 1, g, (ull)ctx);
    }
    struct sim_read *rd = &s->reads[ctx - 1];
    if (rd->node != node || rd->g != g || !rd->accepted ||
        rd->incarnation != s->node[node].incarnation) {
        sim_fail(s, "node %u group %u returned read %llu of node %u group %u (accepted %d)",
                 node + 1, g, (ull)ctx, rd->node + 1, rd->g, rd->accepted);
    }
    if (rd->served || rd->failed) {
        sim_violation(s, "read_outcome",
                      "node %u group %u: read %llu returned twice (served %d, "
                      "failed %d)",
                      node + 1, g, (ull)ctx, rd->served, rd->failed);
    }
    return rd;
}

void check_read_failed(struct sim *s, uint32_t node, raft_group g, uint64_t ctx)
{
    struct sim_read *rd = read_returned(s, node, g, ctx);
    rd->failed = true;
    s->n.reads_failed++;
}

const struct sim_read *sim_read_outstanding(struct sim *s)
{
    for (; s->read_resolved < s->read_count; s->read_resolved++) {
        const struct sim_read *rd = &s->reads[s->read_resolved];
        bool lost = rd->incarnation != s->node[rd->node].incarnation; /* the node crashed */
        if (rd->accepted && !rd->served && !rd->failed && !lost) {
            return rd;
        }
    }
    return NULL;
}

/* core/raft.h: every read a node accepts comes back exactly once, released (`reads`) or
 * failed (`read_failures`), unless the node crashes first. Checked when the liveness
 * deadline passes with reads still outstanding: by then every group has had a single
 * leader for long enough to confirm or fail any round. */
void read_outcome(struct sim *s)
{
    const struct sim_read *rd = sim_read_outstanding(s);
    if (rd != NULL) {
        struct raft_status st;
        raft_status(sim_group(s, rd->node, rd->g), &st);
        sim_violation(s, "read_outcome",
                      "node %u group %u: read %llu accepted, never released nor failed (node "
                      "now role %u term %llu applied %llu)",
                      rd->node + 1, rd->g, (ull)(rd - s->reads + 1), st.role, (ull)st.term,
                      (ull)st.applied);
    }
}

void check_role_event(
    struct sim *s, uint32_t node, raft_group g, uint8_t role, raft_term term, raft_node leader)
{
    struct sim_watch *w = &s->node[node].watch[g];
    if (term < w->ev_term || (role == w->ev_role && term == w->ev_term && leader == w->ev_leader)) {
        sim_violation(s, "role_events",
                      "node %u group %u: role event %u/%llu/%u after %u/%llu/%u (term back or "
                      "no change)",
                      node + 1, g, role, (ull)term, leader, w->ev_role, (ull)w->ev_term,
                      w->ev_leader);
    }
    w->ev_role = role;
    w->ev_term = term;
    w->ev_leader = leader;
}

/* When the link between `node` and `peer` broke (peer crashed, or a partition cut it either
 * way), or UINT64_MAX if it is fine; never before `node` (re)started: a node learns of a
 * failure when it first fails to connect. */
static uint64_t link_broken_since(const struct sim *s, uint32_t node, uint32_t peer)
{
    const struct sim_node *p = &s->node[peer];
    uint64_t since = UINT64_MAX;
    if (p->joined && !p->up) {
        since = p->down_at;
    }
    if ((s->blocked[node][peer] || s->blocked[peer][node]) && s->partition_at < since) {
        since = s->partition_at;
    }
    if (since != UINT64_MAX && since < s->node[node].up_at) {
        since = s->node[node].up_at;
    }
    return since;
}

/* A quiesced group has no timers: only the node's failure detector (multi_peer_down, which
 * the simulator delivers within two ticks of a crash or cut) can wake it when its leader, or
 * at a leader one of its followers, is gone. So no group may stay quiesced following a
 * leader it has not been able to reach for three ticks, nor lead one asleep while a follower
 * it replicates to has been unreachable that long (CheckQuorum must run) — unless that peer
 * has been heard from since the report (a one-way cut leaves the other direction open: the
 * peer is alive, and the group behaves as plain Raft with a lossy link). */
void quiesce_failover(struct sim *s, uint32_t node, raft_group g, const struct raft_status *st)
{
    if (!st->quiesced) {
        return;
    }
    const uint64_t bound = 3 * SIM_TICK;
    for (uint32_t k = 0; k < s->cfg.pool; k++) {
        struct raft_progress_view pv;
        bool watched = st->role == RAFT_LEADER ? raft_progress(sim_group(s, node, g), k + 1, &pv)
                                               : st->leader == k + 1;
        if (k == node || !watched) {
            continue;
        }
        uint64_t since = link_broken_since(s, node, k);
        /* Heard from after the report of this failure (which comes within two ticks). */
        uint64_t reported = s->reported_at[node][k];
        bool heard = since != UINT64_MAX && reported >= since && s->heard_at[k][node] > reported;
        if (since != UINT64_MAX && s->now - since > bound && !heard) {
            sim_violation(s, "quiesce_failover",
                          "node %u group %u is quiesced as %s node %u, unreachable since t=%llu",
                          node + 1, g, st->role == RAFT_LEADER ? "leader of" : "follower of", k + 1,
                          (ull)since);
        }
    }
}

/* core/raft.h RAFT_READY_ROLE: once a group has no ready left, the role, term and leader its
 * role events reported are its current ones. */
void role_events(struct sim *s, uint32_t node, raft_group g, const struct raft_status *st)
{
    const struct sim_watch *w = &s->node[node].watch[g];
    if (raft_has_ready(sim_group(s, node, g))) {
        return;
    }
    if (w->ev_role != st->role || w->ev_term != st->term || w->ev_leader != st->leader) {
        sim_violation(s, "role_events",
                      "node %u group %u: reported %u/%llu/%u, but it is %u/%llu/%u with no ready",
                      node + 1, g, w->ev_role, (ull)w->ev_term, w->ev_leader, st->role,
                      (ull)st->term, st->leader);
    }
}

void check_read_served(struct sim *s, uint32_t node, raft_group g, uint64_t ctx, raft_index index)
{
    if (ctx == 0 || ctx > s->read_count) {
        sim_fail(s, "node %u group %u released unknown read %llu", node + 1, g, (ull)ctx);
    }
    struct sim_read *rd = read_returned(s, node, g, ctx);
    rd->served = true;
    s->n.reads_served++;
    read_linearizable(s, node, g, ctx, index);
}
