/* Log replication and commitment (Raft §5.3, §5.4.2, Figure 2, Figure 8; thesis §10.2.1)
 * as named tests on single core instances. */
#include "tests/unit/raft_fixture.h"

static struct raft_entry g_e[16]; /* scratch entries for inbound appends (tests are serial) */

static const struct raft_entry *ents(raft_index first, const raft_term *terms, uint32_t n)
{
    assert_true(n <= 16);
    fx_entries(g_e, first, terms, n);
    return g_e;
}

static const struct raft_msg *append_resp_to(const struct fx *f, raft_node to)
{
    return fx_expect(f, RAFT_MSG_APPEND_RESP, to);
}

/* ---- leader side ---------------------------------------------------------------------- */

/* "Having a leader commit a blank no-op entry into the log at the start of its term."
 * Reference: §5.4.2 via thesis §6.4, §8 */
static void test_leader_appends_noop_at_term_start(void **state)
{
    (void)state;
    struct fx *f = fx_new(1, 3);
    fx_make_leader(f);
    assert_int_equal(fx_last(f), 1);
    const struct raft_entry *e = raft_entry_at(f->r, 1);
    FX_NONNULL(e);
    assert_int_equal(e->term, 1);
    assert_int_equal(e->type, RAFT_ENTRY_NORMAL);
    assert_int_equal(e->data.len, 0);
    const struct raft_msg *m = fx_expect(f, RAFT_MSG_APPEND, 2);
    assert_int_equal(m->append.entry_count, 1);
    assert_int_equal(m->append.entries[0].index, 1);
    assert_int_equal(m->append.entries[0].term, 1);
    assert_non_null(fx_find(f, RAFT_MSG_APPEND, 3));
    fx_free(f);
}

/* Campaigns, persists the vote, wins with node 2's grant; the leader's first batch is
 * taken but not yet durable. */
static struct fx *leader_before_own_persist(uint32_t voters)
{
    struct fx *f = fx_new(1, voters);
    raft_campaign(f->r);
    fx_drain(f);
    fx_clear(f);
    for (raft_node id = 2; id <= voters / 2 + 1; id++) {
        struct raft_msg g = fx_vote_resp(RAFT_MSG_VOTE_RESP, id, 1, 1, true);
        fx_step(f, &g);
    }
    assert_int_equal(fx_role(f), RAFT_LEADER);
    fx_drain_nopersist(f);
    return f;
}

/* "The leader can send AppendEntries to followers in parallel with writing to its own
 * disk." Reference: thesis §10.2.1 */
static void test_leader_sends_append_before_own_persist(void **state)
{
    (void)state;
    struct fx *f = leader_before_own_persist(3);
    assert_true(f->durable_last < 1);
    const struct fx_msg *m = fx_find(f, RAFT_MSG_APPEND, 2);
    FX_NONNULL(m);
    assert_false(m->after_persist);
    assert_int_equal(m->m.append.entry_count, 1);
    assert_non_null(fx_find(f, RAFT_MSG_APPEND, 3));
    bool persisted_held = false;
    for (uint32_t i = 0; i < f->held_count; i++) {
        const struct raft_msg *h = &f->held[i].m;
        if (h->type == RAFT_MSG_PERSISTED && h->to == 1 && h->persisted.index == 1) {
            persisted_held = true;
        }
    }
    assert_true(persisted_held);
    fx_free(f);
}

/* "The leader may even commit an entry before it has been written to its own disk, if a
 * majority of followers have written it" -- but it counts itself only once its own write
 * is durable. Reference: thesis §10.2.1, docs/decisions/002 */
static void test_leader_counts_itself_only_after_persist(void **state)
{
    (void)state;
    struct fx *f = leader_before_own_persist(3);
    struct raft_msg ack = fx_append_resp(2, 1, 1, false, 1);
    fx_step(f, &ack);
    fx_drain_nopersist(f);
    assert_int_equal(fx_commit(f), 0); /* one durable copy of three */
    fx_persist(f);
    fx_drain(f);
    assert_int_equal(fx_commit(f), 1);
    assert_int_equal(f->applied_count, 1);
    fx_free(f);
}

/* "Committed entries to apply ... are already durable locally": a leader whose followers
 * committed an entry still hands it out only after its own write completes.
 * Reference: thesis §10.2.1, core/raft.h */
static void test_leader_applies_only_after_local_persist(void **state)
{
    (void)state;
    struct fx *f = leader_before_own_persist(3);
    struct raft_msg a2 = fx_append_resp(2, 1, 1, false, 1);
    struct raft_msg a3 = fx_append_resp(3, 1, 1, false, 1);
    fx_step(f, &a2);
    fx_step(f, &a3);
    fx_drain_nopersist(f);
    assert_int_equal(fx_commit(f), 1); /* a majority of followers has it */
    assert_int_equal(f->applied_count, 0);
    fx_persist(f);
    fx_drain(f);
    assert_int_equal(f->applied_count, 1);
    assert_int_equal(f->applied[0], 1);
    fx_free(f);
}

/* "A log entry is committed once the leader that created the entry has replicated it on a
 * majority of the servers." Reference: §5.3 */
static void test_leader_commits_on_majority(void **state)
{
    (void)state;
    struct fx *f = fx_new(1, 5);
    fx_make_leader(f);
    fx_clear(f);
    struct raft_msg a2 = fx_append_resp(2, 1, 1, false, 1);
    struct raft_msg a3 = fx_append_resp(3, 1, 1, false, 1);
    fx_step(f, &a2);
    fx_drain(f);
    assert_int_equal(fx_commit(f), 0); /* 2 of 5 */
    fx_step(f, &a3);
    fx_drain(f);
    assert_int_equal(fx_commit(f), 1); /* 3 of 5 */
    fx_free(f);
}

/* "Once a follower learns that a log entry is committed, it applies the entry": the
 * leader tells followers its commit index in later AppendEntries. Reference: §5.3 */
static void test_leader_propagates_commit_index(void **state)
{
    (void)state;
    struct raft_options o = fx_options(1);
    struct fx *f = fx_new_leader(&o, 3);
    raft_index idx = 0;
    assert_int_equal(raft_propose(f->r, (const uint8_t *)"x", 1, &idx), 0);
    assert_int_equal(idx, 2);
    fx_drain(f);
    const struct raft_msg *m = fx_expect(f, RAFT_MSG_APPEND, 2);
    assert_int_equal(m->append.prev_index, 1);
    assert_int_equal(m->append.prev_term, 1);
    assert_int_equal(m->append.commit, 1);
    assert_int_equal(m->append.entry_count, 1);
    assert_int_equal(m->append.entries[0].data.len, 1);
    assert_memory_equal(m->append.entries[0].data.base, "x", 1);
    fx_free(f);
}

/* Each follower of a 3-voter leader was sent one append, of `entries` entries, carrying
 * `commit`. */
static void expect_append_to_each(const struct fx *f, uint32_t entries, raft_index commit)
{
    for (raft_node to = 2; to <= 3; to++) {
        const struct raft_msg *m = fx_expect(f, RAFT_MSG_APPEND, to);
        assert_int_equal(m->append.entry_count, entries);
        assert_int_equal(m->append.commit, commit);
    }
}

/* A new commit index goes to the followers with the next append if one leaves before the
 * leader's next tick, else in an empty append at that tick; never in a message of its own
 * at once (an empty append and its answer per follower and per commit, under load).
 * Reference: core/replication.c, commit_tick */
static void test_commit_index_told_by_next_append_or_at_next_tick(void **state)
{
    (void)state;
    struct raft_options o = fx_options(1);
    o.election_ticks = 20;
    o.heartbeat_ticks = 8; /* no heartbeat in this test: they carry the commit too */
    struct fx *f = fx_new_leader(&o, 3);
    /* The no-op committed as the followers answered; nothing told them yet. The tick does. */
    assert_int_equal(fx_commit(f), 1);
    raft_tick(f->r);
    fx_drain(f);
    expect_append_to_each(f, 0, 1);
    fx_clear(f);
    raft_tick(f->r);
    fx_drain(f);
    assert_int_equal(fx_count(f, RAFT_MSG_APPEND, 0), 0);

    /* Entry 2 commits with follower 2's answer: no append leaves for that alone. */
    raft_index idx = 0;
    assert_int_equal(raft_propose(f->r, (const uint8_t *)"x", 1, &idx), 0);
    fx_drain(f);
    fx_clear(f);
    struct raft_msg a2 = fx_append_resp(2, 1, fx_term(f), false, idx);
    fx_step(f, &a2);
    fx_drain(f);
    assert_int_equal(fx_commit(f), 2);
    assert_int_equal(fx_count(f, RAFT_MSG_APPEND, 0), 0);

    /* The next proposal's appends carry it, so the tick has nobody left to tell. */
    assert_int_equal(raft_propose(f->r, (const uint8_t *)"y", 1, &idx), 0);
    fx_drain(f);
    expect_append_to_each(f, 1, 2);
    fx_clear(f);
    raft_tick(f->r);
    fx_drain(f);
    assert_int_equal(fx_count(f, RAFT_MSG_APPEND, 0), 0);
    fx_free(f);
}

/* Figure 8's setting: S1 restarts with [1:1, 2:2] (index 2 from term 2, uncommitted),
 * wins term 3 and appends its no-op at 3. Follower 2 holds only [1:1]. A scripted follower
 * answers S1's AppendEntries (one entry per message) until it holds `target`. */
struct fig8 {
    struct fx *f;
    raft_term fol_term[8]; /* follower 2's log */
    raft_index fol_last;
};

static void fig8_answer_one(struct fig8 *s)
{
    const struct raft_msg *m = fx_expect(s->f, RAFT_MSG_APPEND, 2);
    struct raft_msg resp;
    raft_index prev = m->append.prev_index;
    if (prev > s->fol_last || s->fol_term[prev] != m->append.prev_term) {
        raft_index hint = prev < s->fol_last ? prev : s->fol_last;
        resp = fx_append_resp(2, 1, m->term, true, prev);
        resp.append_resp.hint_index = hint;
        resp.append_resp.hint_term = s->fol_term[hint];
    } else {
        for (uint32_t i = 0; i < m->append.entry_count; i++) {
            s->fol_term[prev + 1 + i] = m->append.entries[i].term;
        }
        s->fol_last = prev + m->append.entry_count;
        resp = fx_append_resp(2, 1, m->term, false, s->fol_last);
    }
    fx_clear(s->f);
    fx_step(s->f, &resp);
    fx_drain(s->f);
}

static void fig8_setup(struct fig8 *s, raft_index target)
{
    memset(s, 0, sizeof(*s));
    const raft_term terms[] = {1, 2};
    struct raft_options o = fx_options(1);
    o.append_entries_max = 1;
    s->f = fx_new_log(&o, 3, terms, 2, 2, RAFT_NODE_NONE);
    fx_make_leader(s->f);
    assert_int_equal(fx_term(s->f), 3);
    assert_int_equal(fx_last(s->f), 3);
    s->fol_term[1] = 1;
    s->fol_last = 1;
    for (int i = 0; i < 8 && s->fol_last < target; i++) {
        fig8_answer_one(s);
    }
    assert_int_equal(s->fol_last, target);
    assert_int_equal(fx_progress(s->f, 2).match, target);
}

/* "Raft never commits log entries from previous terms by counting replicas." Index 2 (term
 * 2) is on S1 and S2, a majority, yet S1 at term 3 must not commit it. Reference: §5.4.2,
 * Figure 8 */
static void test_leader_does_not_commit_previous_term_by_counting(void **state)
{
    (void)state;
    struct fig8 s;
    fig8_setup(&s, 2);
    assert_int_equal(fx_commit(s.f), 0);
    assert_int_equal(s.f->applied_count, 0);
    fx_free(s.f);
}

/* "Once an entry from the current term has been committed in this way, then all prior
 * entries are committed indirectly because of the Log Matching Property."
 * Reference: §5.4.2, Figure 8 */
static void test_leader_commits_previous_term_via_current_term_entry(void **state)
{
    (void)state;
    struct fig8 s;
    fig8_setup(&s, 3);
    assert_int_equal(fx_commit(s.f), 3);
    assert_int_equal(s.f->applied_count, 3);
    assert_int_equal(s.f->applied_term[1], 2);
    fx_free(s.f);
}

/* Node 1, leader of 3 with a heartbeat every 2 ticks, past the period in which it sent the
 * followers its first entry (which ends without heartbeats:
 * test_no_heartbeat_to_follower_sent_entries), with no messages pending: idle from here. */
static struct fx *idle_leader_heartbeating_every_2_ticks(void)
{
    struct raft_options o = fx_options(1);
    o.heartbeat_ticks = 2;
    struct fx *f = fx_new_leader(&o, 3);
    raft_tick(f->r);
    raft_tick(f->r);
    fx_drain(f);
    fx_clear(f);
    return f;
}

/* "Leaders send periodic heartbeats (AppendEntries RPCs that carry no log entries)"; here
 * every heartbeat_ticks ticks. Reference: §5.2 */
static void test_leader_sends_heartbeats_every_heartbeat_ticks(void **state)
{
    (void)state;
    struct fx *f = idle_leader_heartbeating_every_2_ticks();
    raft_tick(f->r);
    fx_drain(f);
    assert_int_equal(fx_count(f, RAFT_MSG_HEARTBEAT, 0), 0);
    raft_tick(f->r);
    fx_drain(f);
    assert_int_equal(fx_count(f, RAFT_MSG_HEARTBEAT, 2), 1);
    assert_int_equal(fx_count(f, RAFT_MSG_HEARTBEAT, 3), 1);
    assert_int_equal(fx_expect(f, RAFT_MSG_HEARTBEAT, 2)->term, fx_term(f));
    fx_free(f);
}

/* A heartbeat carries min(leader commit, follower match), so a follower never learns a
 * commit index beyond what the leader knows it holds. Reference: core/msg.h (etcd's
 * sendHeartbeat), Figure 2 */
static void test_heartbeat_commit_capped_by_match(void **state)
{
    (void)state;
    struct fx *f = fx_new(1, 3);
    fx_make_leader(f);
    fx_clear(f);
    struct raft_msg a2 = fx_append_resp(2, 1, 1, false, 1);
    fx_step(f, &a2);
    fx_drain(f);
    assert_int_equal(fx_commit(f), 1);
    raft_tick(f->r); /* the period of the first entry's appends (no heartbeat to 2) */
    fx_drain(f);
    fx_clear(f);
    raft_tick(f->r);
    fx_drain(f);
    assert_int_equal(fx_expect(f, RAFT_MSG_HEARTBEAT, 2)->heartbeat.commit, 1);
    assert_int_equal(fx_expect(f, RAFT_MSG_HEARTBEAT, 3)->heartbeat.commit, 0);
    fx_free(f);
}

/* A follower in REPLICATE that was sent entries during a heartbeat period gets no heartbeat
 * when the period ends (the append reset its election timer, carried the commit index and
 * is answered); one sent none does, and while a ReadIndex round waits every follower does.
 * Reference: core/replication.c, heartbeat_period */
static void test_no_heartbeat_to_follower_sent_entries(void **state)
{
    (void)state;
    struct fx *f = idle_leader_heartbeating_every_2_ticks();
    /* Entries to both followers, not acknowledged (their windows stay open). */
    raft_index idx = 0;
    assert_int_equal(raft_propose(f->r, (const uint8_t *)"x", 1, &idx), 0);
    fx_drain(f);
    assert_int_equal(fx_count_appends(f, 2), 1);
    assert_int_equal(fx_count_appends(f, 3), 1);
    fx_clear(f);
    raft_tick(f->r);
    raft_tick(f->r);
    fx_drain(f);
    assert_int_equal(fx_count(f, RAFT_MSG_HEARTBEAT, 0), 0);
    fx_clear(f);
    /* A period without entries: heartbeats again. */
    raft_tick(f->r);
    raft_tick(f->r);
    fx_drain(f);
    assert_int_equal(fx_count(f, RAFT_MSG_HEARTBEAT, 2), 1);
    assert_int_equal(fx_count(f, RAFT_MSG_HEARTBEAT, 3), 1);
    fx_clear(f);
    /* Entries again, and a read round: the round's heartbeats go at once, and the period's
     * too, both carrying the round. */
    assert_int_equal(raft_propose(f->r, (const uint8_t *)"y", 1, &idx), 0);
    fx_drain(f);
    fx_clear(f);
    assert_int_equal(raft_read_index(f->r, 7), 0);
    fx_drain(f);
    assert_int_equal(fx_count(f, RAFT_MSG_HEARTBEAT, 2), 1);
    uint64_t round = fx_expect(f, RAFT_MSG_HEARTBEAT, 2)->heartbeat.read_ctx;
    assert_true(round != 0);
    fx_clear(f);
    raft_tick(f->r);
    raft_tick(f->r);
    fx_drain(f);
    assert_int_equal(fx_count(f, RAFT_MSG_HEARTBEAT, 2), 1);
    assert_int_equal(fx_count(f, RAFT_MSG_HEARTBEAT, 3), 1);
    assert_int_equal(fx_expect(f, RAFT_MSG_HEARTBEAT, 3)->heartbeat.read_ctx, round);
    fx_free(f);
}

/* Only the leader accepts client commands. Reference: §5.1 ("the leader handles all client
 * requests"), core/raft.h */
static void test_propose_refused_when_not_leader(void **state)
{
    (void)state;
    struct fx *f = fx_new(2, 3);
    fx_drain(f);
    raft_index idx = 0;
    assert_int_equal(raft_propose(f->r, (const uint8_t *)"x", 1, &idx), RR_ENOTLEADER);
    assert_int_equal(fx_last(f), 0);
    assert_false(raft_has_ready(f->r));
    fx_free(f);
}

/* Leader Append-Only: "a leader never overwrites or deletes entries in its log; it only
 * appends new entries." An AppendEntries from another node claiming the same term is
 * refused and leaves the leader's log as it was. Reference: §5.3, Figure 3 */
static void test_leader_never_overwrites_its_log(void **state)
{
    (void)state;
    struct raft_options o = fx_options(1);
    struct fx *f = fx_new_log(&o, 3, NULL, 0, 3, RAFT_NODE_NONE);
    fx_make_leader(f);
    fx_ack_appends(f);
    raft_index idx = 0;
    assert_int_equal(raft_propose(f->r, (const uint8_t *)"x", 1, &idx), 0);
    fx_drain(f);
    assert_int_equal(fx_term(f), 4);
    struct raft_entry e[1];
    const raft_term et[] = {3};
    fx_entries(e, 1, et, 1); /* conflicts with the leader's no-op 1:4 */
    struct raft_msg rival = fx_append(2, 1, 4, 0, 0, 0, e, 1);
    raft_step(f->r, &rival); /* an error or a no-op; either way nothing may change */
    fx_drain(f);
    assert_int_equal(fx_role(f), RAFT_LEADER);
    assert_int_equal(fx_last(f), 2);
    assert_int_equal(raft_term_at(f->r, 1), 4);
    const struct raft_entry *mine = raft_entry_at(f->r, 2);
    FX_NONNULL(mine);
    assert_int_equal(mine->data.len, 1);
    assert_int_equal(f->truncations, 0);
    fx_free(f);
}

/* ---- follower side --------------------------------------------------------------------- */

/* "Append any new entries not already in the log" and reply success with the new match.
 * Reference: §5.3, Figure 2 */
static void test_follower_appends_entries(void **state)
{
    (void)state;
    struct fx *f = fx_new(2, 3);
    const raft_term t[] = {1, 1};
    struct raft_msg app = fx_append(1, 2, 1, 0, 0, 0, ents(1, t, 2), 2);
    fx_step(f, &app);
    fx_drain(f);
    assert_int_equal(fx_last(f), 2);
    assert_int_equal(f->disk_last, 2);
    const struct raft_msg *r = append_resp_to(f, 1);
    assert_false(r->append_resp.rejected);
    assert_int_equal(r->append_resp.index, 2);
    assert_int_equal(r->term, 1);
    fx_free(f);
}

/* The success reply acknowledges durable entries, so it leaves only after the write:
 * "before responding to RPCs". Reference: Figure 2, docs/decisions/002 */
static void test_follower_append_response_only_after_persist(void **state)
{
    (void)state;
    struct fx *f = fx_new(2, 3);
    const raft_term t[] = {1};
    struct raft_msg app = fx_append(1, 2, 1, 0, 0, 0, ents(1, t, 1), 1);
    fx_step(f, &app);
    fx_drain_nopersist(f);
    assert_int_equal(fx_count(f, RAFT_MSG_APPEND_RESP, 0), 0);
    fx_persist(f);
    const struct fx_msg *r = fx_find(f, RAFT_MSG_APPEND_RESP, 1);
    FX_NONNULL(r);
    assert_true(r->after_persist);
    assert_false(r->m.append_resp.rejected);
    fx_free(f);
}

/* "If the follower does not find an entry in its log with the same index and term, then it
 * refuses the new entries" -- here the term at prevLogIndex differs. Reference: §5.3 */
static void test_follower_rejects_prev_term_mismatch(void **state)
{
    (void)state;
    const raft_term terms[] = {1, 1};
    struct raft_options o = fx_options(2);
    struct fx *f = fx_new_log(&o, 3, terms, 2, 1, RAFT_NODE_NONE);
    const raft_term t[] = {2};
    struct raft_msg app = fx_append(1, 2, 2, 2, 2, 0, ents(3, t, 1), 1);
    fx_step(f, &app);
    fx_drain(f);
    const struct raft_msg *r = append_resp_to(f, 1);
    assert_true(r->append_resp.rejected);
    assert_int_equal(r->append_resp.index, 2);
    assert_int_equal(fx_last(f), 2);
    assert_int_equal(raft_term_at(f->r, 2), 1);
    assert_int_equal(f->entry_writes, 0);
    fx_free(f);
}

/* Same rule when the follower lacks prevLogIndex altogether. Reference: §5.3 */
static void test_follower_rejects_prev_beyond_log(void **state)
{
    (void)state;
    const raft_term terms[] = {1};
    struct raft_options o = fx_options(2);
    struct fx *f = fx_new_log(&o, 3, terms, 1, 1, RAFT_NODE_NONE);
    const raft_term t[] = {1};
    struct raft_msg app = fx_append(1, 2, 1, 3, 1, 0, ents(4, t, 1), 1);
    fx_step(f, &app);
    fx_drain(f);
    assert_true(append_resp_to(f, 1)->append_resp.rejected);
    assert_int_equal(fx_last(f), 1);
    assert_int_equal(f->entry_writes, 0);
    fx_free(f);
}

/* "If an existing entry conflicts with a new one (same index but different terms), delete
 * the existing entry and all that follow it." Reference: §5.3, Figure 2 */
static void test_follower_truncates_conflicting_suffix(void **state)
{
    (void)state;
    const raft_term terms[] = {1, 1, 1};
    struct raft_options o = fx_options(2);
    struct fx *f = fx_new_log(&o, 3, terms, 3, 1, RAFT_NODE_NONE);
    const raft_term t[] = {2};
    struct raft_msg app = fx_append(1, 2, 2, 1, 1, 0, ents(2, t, 1), 1);
    fx_step(f, &app);
    fx_drain(f);
    assert_int_equal(fx_last(f), 2);
    assert_int_equal(raft_term_at(f->r, 2), 2);
    assert_int_equal(raft_term_at(f->r, 3), 0);
    assert_int_equal(f->truncations, 1);
    assert_int_equal(f->disk_last, 2);
    const struct raft_msg *r = append_resp_to(f, 1);
    assert_false(r->append_resp.rejected);
    assert_int_equal(r->append_resp.index, 2);
    fx_free(f);
}

/* "If a follower receives an AppendEntries request that includes log entries already
 * present in its log, it ignores those entries in the new request": a delayed, duplicate
 * append must not truncate what follows. Reference: thesis §3.5, Figure 2 */
static void test_follower_keeps_suffix_on_stale_append(void **state)
{
    (void)state;
    const raft_term terms[] = {1, 1, 1};
    struct raft_options o = fx_options(2);
    struct fx *f = fx_new_log(&o, 3, terms, 3, 1, RAFT_NODE_NONE);
    const raft_term t[] = {1};
    struct raft_msg app = fx_append(1, 2, 1, 0, 0, 0, ents(1, t, 1), 1);
    fx_step(f, &app);
    fx_drain(f);
    assert_int_equal(fx_last(f), 3);
    assert_int_equal(raft_term_at(f->r, 3), 1);
    assert_int_equal(f->truncations, 0);
    assert_int_equal(f->entry_writes, 0);
    const struct raft_msg *r = append_resp_to(f, 1);
    assert_false(r->append_resp.rejected);
    assert_in_range(r->append_resp.index, 1, 3);
    fx_free(f);
}

/* "If leaderCommit > commitIndex, set commitIndex = min(leaderCommit, index of last new
 * entry)": entry 3 is from an old term and not vouched for by this append, so the commit
 * stops at 2. Reference: Figure 2 */
static void test_follower_commit_is_min_of_leader_commit_and_last_new(void **state)
{
    (void)state;
    const raft_term terms[] = {1, 1, 1};
    struct raft_options o = fx_options(2);
    struct fx *f = fx_new_log(&o, 3, terms, 3, 1, RAFT_NODE_NONE);
    const raft_term t[] = {1};
    struct raft_msg app = fx_append(1, 2, 2, 1, 1, 5, ents(2, t, 1), 1);
    fx_step(f, &app);
    fx_drain(f);
    assert_int_equal(fx_commit(f), 2);
    assert_int_equal(f->applied_count, 2);
    fx_free(f);
}

/* "Committed entries to apply ... are already durable locally": a follower told of a
 * commit hands the entries out only after its write of them completes.
 * Reference: core/raft.h, Figure 2 ("apply log[lastApplied] to state machine") */
static void test_follower_applies_only_after_local_persist(void **state)
{
    (void)state;
    struct fx *f = fx_new(2, 3);
    const raft_term t[] = {1, 1};
    struct raft_msg app = fx_append(1, 2, 1, 0, 0, 2, ents(1, t, 2), 2);
    fx_step(f, &app);
    fx_drain_nopersist(f);
    assert_int_equal(f->applied_count, 0);
    fx_persist(f);
    fx_drain(f);
    assert_int_equal(fx_commit(f), 2);
    assert_int_equal(f->applied_count, 2);
    assert_int_equal(f->applied[1], 2);
    fx_free(f);
}

/* A heartbeat's commit index advances a follower whose log matches. Reference: §5.3 */
static void test_follower_learns_commit_from_heartbeat(void **state)
{
    (void)state;
    struct fx *f = fx_new(2, 3);
    const raft_term t[] = {1, 1};
    struct raft_msg app = fx_append(1, 2, 1, 0, 0, 0, ents(1, t, 2), 2);
    fx_step(f, &app);
    fx_drain(f);
    assert_int_equal(fx_commit(f), 0);
    struct raft_msg hb = fx_heartbeat(1, 2, 1, 2, 0);
    fx_step(f, &hb);
    fx_drain(f);
    assert_int_equal(fx_commit(f), 2);
    assert_int_equal(f->applied_count, 2);
    assert_non_null(fx_find(f, RAFT_MSG_HEARTBEAT_RESP, 1));
    fx_free(f);
}

/* State Machine Safety: "if a server has applied a log entry at a given index to its state
 * machine, no other server will ever apply a different log entry for the same index". A
 * committed entry is never truncated, even by a (faulty) append that conflicts with it.
 * Reference: §5.4.3, Figure 3 */
static void test_follower_never_truncates_committed_entry(void **state)
{
    (void)state;
    const raft_term terms[] = {1, 1};
    struct raft_options o = fx_options(2);
    struct fx *f = fx_new_log(&o, 3, terms, 2, 1, RAFT_NODE_NONE);
    struct raft_msg hb = fx_heartbeat(1, 2, 1, 2, 0);
    fx_step(f, &hb);
    fx_drain(f);
    assert_int_equal(fx_commit(f), 2);
    const raft_term t[] = {2};
    struct raft_msg bad = fx_append(3, 2, 2, 1, 1, 0, ents(2, t, 1), 1);
    raft_step(f->r, &bad); /* refused as corrupt, or ignored */
    fx_drain(f);
    assert_int_equal(raft_term_at(f->r, 2), 1);
    assert_int_equal(fx_last(f), 2);
    assert_int_equal(fx_commit(f), 2);
    assert_int_equal(f->truncations, 0);
    fx_free(f);
}

/* "If a server receives a request with a stale term number, it rejects the request" --
 * responses too: an acknowledgement from an older term does not count toward commitment.
 * Reference: §5.1 */
static void test_leader_ignores_stale_term_response(void **state)
{
    (void)state;
    struct raft_options o = fx_options(1);
    struct fx *f = fx_new_log(&o, 3, NULL, 0, 1, RAFT_NODE_NONE);
    fx_make_leader(f);
    assert_int_equal(fx_term(f), 2);
    fx_clear(f);
    struct raft_msg old = fx_append_resp(2, 1, 1, false, 1);
    raft_step(f->r, &old);
    fx_drain(f);
    assert_int_equal(fx_progress(f, 2).match, 0);
    assert_int_equal(fx_commit(f), 0);
    assert_int_equal(fx_role(f), RAFT_LEADER);
    struct raft_msg cur = fx_append_resp(2, 1, 2, false, 1);
    fx_step(f, &cur);
    fx_drain(f);
    assert_int_equal(fx_commit(f), 1);
    fx_free(f);
}

/* A delayed rejection of an index below the follower's known match is stale: nextIndex is
 * never moved back past matchIndex (etcd's maybeDecrTo). Reference: §5.3 */
static void test_leader_ignores_stale_rejection(void **state)
{
    (void)state;
    struct raft_options o = fx_options(1);
    struct fx *f = fx_new_leader(&o, 3);
    for (int i = 0; i < 3; i++) {
        raft_index idx = 0;
        assert_int_equal(raft_propose(f->r, (const uint8_t *)"x", 1, &idx), 0);
        fx_drain(f);
    }
    fx_ack_appends(f);
    fx_clear(f);
    assert_int_equal(fx_progress(f, 2).match, 4);
    struct raft_msg rej = fx_append_resp(2, 1, 1, true, 1);
    rej.append_resp.hint_index = 1;
    rej.append_resp.hint_term = 1;
    raft_step(f->r, &rej);
    fx_drain(f);
    struct raft_progress_view p = fx_progress(f, 2);
    assert_int_equal(p.match, 4);
    assert_int_equal(p.next, 5);
    assert_int_equal(p.state, RAFT_PROGRESS_REPLICATE);
    assert_int_equal(fx_count_appends(f, 2), 0); /* nothing re-sent */
    fx_free(f);
}

/* Proposes n entries of 200 bytes (several of the log's chunks) and acknowledges them from
 * the followers in `from` only. */
static void propose_acked_by(struct fx *f, uint32_t n, raft_node from_a, raft_node from_b)
{
    uint8_t data[200];
    memset(data, 'r', sizeof(data));
    for (uint32_t i = 0; i < n; i++) {
        raft_index idx = 0;
        assert_int_equal(raft_propose(f->r, data, sizeof(data), &idx), 0);
        fx_drain(f);
    }
    struct raft_msg resp[2];
    uint32_t k = 0;
    if (from_a != 0) {
        resp[k++] = fx_append_resp(from_a, 1, fx_term(f), false, fx_last(f));
    }
    if (from_b != 0) {
        resp[k++] = fx_append_resp(from_b, 1, fx_term(f), false, fx_last(f));
    }
    fx_clear(f);
    for (uint32_t i = 0; i < k; i++) {
        fx_step(f, &resp[i]);
    }
    fx_drain(f);
}

/* options.release_applied: the leader frees the data of entries that are applied, durable
 * and matched by every follower, and only those; their terms stay. Reference: core/raft.h */
static void test_leader_releases_only_what_every_follower_has(void **state)
{
    (void)state;
    struct raft_options o = fx_options(1);
    o.release_applied = true;
    struct fx *f = fx_new_leader(&o, 3);
    propose_acked_by(f, 40, 2, 0);
    assert_int_equal(fx_commit(f), 41);
    assert_int_equal(f->applied_last, 41);
    for (raft_index i = 2; i <= 41; i++) {
        assert_false(raft_entry_released(raft_entry_at(f->r, i))); /* node 3 lacks them */
    }
    struct raft_msg a3 = fx_append_resp(3, 1, 1, false, 41);
    fx_step(f, &a3);
    fx_drain(f);
    assert_true(raft_entry_released(raft_entry_at(f->r, 2)));
    assert_int_equal(raft_entry_at(f->r, 2)->data.len, 200);
    assert_int_equal(raft_term_at(f->r, 2), 1);
    assert_false(raft_entry_released(raft_entry_at(f->r, 41))); /* the newest chunk stays */
    fx_free(f);
}

/* A follower found lagging after the release (here by a new term's leader) is sent the
 * released entries without data, flagged for the caller to read back; one that needs
 * entries the snapshot covers (perhaps gone from the durable log) gets the snapshot. */
static void test_append_of_released_entries_is_flagged(void **state)
{
    (void)state;
    for (int snapshot = 0; snapshot <= 1; snapshot++) {
        struct raft_options o = fx_options(1);
        o.release_applied = true;
        struct fx *f = fx_new_leader(&o, 3);
        propose_acked_by(f, 40, 2, 3);
        assert_true(raft_entry_released(raft_entry_at(f->r, 2)));
        if (snapshot) {
            assert_int_equal(fx_snapshot_taken(f, 30, "image", 5, 1000), 0);
        }
        struct raft_msg hb = fx_heartbeat(2, 1, 2, 0, 0);
        fx_step(f, &hb);
        fx_drain(f);
        fx_make_leader(f); /* term 3: every follower's progress starts over */
        fx_clear(f);
        struct raft_msg rej = fx_append_resp(3, 1, fx_term(f), true, 41);
        rej.append_resp.hint_index = 1;
        rej.append_resp.hint_term = 1;
        fx_step(f, &rej);
        fx_drain(f);
        if (snapshot) {
            assert_null(fx_find(f, RAFT_MSG_APPEND, 3));
            assert_int_equal(fx_expect(f, RAFT_MSG_SNAPSHOT, 3)->snapshot.last_index, 30);
        } else {
            const struct raft_msg *m = fx_expect(f, RAFT_MSG_APPEND, 3);
            assert_int_equal(m->append.prev_index, 1);
            assert_true(m->append.data_released);
            assert_true(raft_entry_released(&m->append.entries[0]));
            assert_int_equal(m->append.entries[0].term, 1);
            assert_int_equal(m->append.entries[0].data.len, 200);
        }
        fx_free(f);
    }
}

/* An entry over RAFT_ENTRY_BYTES_MAX is refused at the leader and never enters the log.
 * Reference: core/limits.h */
static void test_propose_refuses_oversized_entry(void **state)
{
    (void)state;
    struct raft_options o = fx_options(1);
    struct fx *f = fx_new_leader(&o, 3);
    uint8_t *big = calloc(1, RAFT_ENTRY_BYTES_MAX + 1u);
    FX_NONNULL(big);
    raft_index idx = 0;
    assert_int_equal(raft_propose(f->r, big, RAFT_ENTRY_BYTES_MAX + 1u, &idx), RR_ETOOBIG);
    assert_int_equal(fx_last(f), 1);
    assert_false(raft_has_ready(f->r));
    free(big);
    fx_free(f);
}

/* A restarting node applies what its persisted commit index covers, and nothing beyond it
 * until a leader says so. Reference: core/raft.h raft_hard_state.commit, Figure 2 */
static void test_restart_applies_up_to_persisted_commit(void **state)
{
    (void)state;
    struct raft_entry e[3];
    const raft_term t[] = {1, 1, 1};
    fx_entries(e, 1, t, 3);
    struct raft_restore rs;
    memset(&rs, 0, sizeof(rs));
    rs.hard_state.term = 1;
    rs.hard_state.commit = 2;
    rs.entries = e;
    rs.entry_count = 3;
    struct raft_options o = fx_options(2);
    struct fx *f = fx_new_restore(&o, 3, &rs);
    fx_drain(f);
    assert_int_equal(fx_commit(f), 2);
    assert_int_equal(f->applied_count, 2);
    assert_int_equal(f->applied[1], 2);
    assert_int_equal(f->entry_writes, 0); /* restored entries are already durable */
    fx_free(f);
}

/* "Raft RPCs are idempotent, so this causes no harm": the same AppendEntries delivered twice
 * leaves the log as once, and both replies agree. Reference: §5.5 */
static void test_append_is_idempotent(void **state)
{
    (void)state;
    struct fx *f = fx_new(2, 3);
    const raft_term t[] = {1, 1};
    struct raft_msg app = fx_append(1, 2, 1, 0, 0, 0, ents(1, t, 2), 2);
    fx_step(f, &app);
    fx_drain(f);
    fx_clear(f);
    uint32_t writes = f->entry_writes;
    app = fx_append(1, 2, 1, 0, 0, 0, ents(1, t, 2), 2);
    fx_step(f, &app);
    fx_drain(f);
    assert_int_equal(fx_last(f), 2);
    assert_int_equal(f->entry_writes, writes);
    assert_int_equal(f->truncations, 0);
    const struct raft_msg *r = append_resp_to(f, 1);
    assert_false(r->append_resp.rejected);
    assert_int_equal(r->append_resp.index, 2);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_leader_appends_noop_at_term_start),
        cmocka_unit_test(test_leader_sends_append_before_own_persist),
        cmocka_unit_test(test_leader_counts_itself_only_after_persist),
        cmocka_unit_test(test_leader_applies_only_after_local_persist),
        cmocka_unit_test(test_leader_commits_on_majority),
        cmocka_unit_test(test_leader_propagates_commit_index),
        cmocka_unit_test(test_leader_does_not_commit_previous_term_by_counting),
        cmocka_unit_test(test_leader_commits_previous_term_via_current_term_entry),
        cmocka_unit_test(test_leader_sends_heartbeats_every_heartbeat_ticks),
        cmocka_unit_test(test_heartbeat_commit_capped_by_match),
        cmocka_unit_test(test_commit_index_told_by_next_append_or_at_next_tick),
        cmocka_unit_test(test_no_heartbeat_to_follower_sent_entries),
        cmocka_unit_test(test_propose_refused_when_not_leader),
        cmocka_unit_test(test_leader_never_overwrites_its_log),
        cmocka_unit_test(test_follower_appends_entries),
        cmocka_unit_test(test_follower_append_response_only_after_persist),
        cmocka_unit_test(test_follower_rejects_prev_term_mismatch),
        cmocka_unit_test(test_follower_rejects_prev_beyond_log),
        cmocka_unit_test(test_follower_truncates_conflicting_suffix),
        cmocka_unit_test(test_follower_keeps_suffix_on_stale_append),
        cmocka_unit_test(test_follower_commit_is_min_of_leader_commit_and_last_new),
        cmocka_unit_test(test_follower_applies_only_after_local_persist),
        cmocka_unit_test(test_follower_learns_commit_from_heartbeat),
        cmocka_unit_test(test_append_is_idempotent),
        cmocka_unit_test(test_follower_never_truncates_committed_entry),
        cmocka_unit_test(test_leader_ignores_stale_term_response),
        cmocka_unit_test(test_leader_ignores_stale_rejection),
        cmocka_unit_test(test_leader_releases_only_what_every_follower_has),
        cmocka_unit_test(test_append_of_released_entries_is_flagged),
        cmocka_unit_test(test_propose_refuses_oversized_entry),
        cmocka_unit_test(test_restart_applies_up_to_persisted_commit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
