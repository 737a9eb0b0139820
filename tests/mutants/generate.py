#!/usr/bin/env python3
# Regenerates tests/mutants/*.patch from the real core/ source: each mutant names a file, an
# exact snippet and its replacement; the patch is `diff -u` of the file before and after,
# under a header (expect: CHECKER, optional seeds: N, optional safety: N — with the rule
# checkers off, election_safety, state_machine_safety or commit_quorum must catch it within
# N seeds — and a sentence on the bug).
# Run from the repository root when core/ has moved and a patch no longer applies; a snippet
# that is no longer found stops the script, and the mutant must be rewritten by hand.
import os
import shutil
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORK = tempfile.mkdtemp(prefix='mutants-')


def mutant(name, expect, desc, path, old, new, seeds=None, safety=None):
    src=open(os.path.join(ROOT,path)).read()
    assert src.count(old)==1, (name, 'pattern count', src.count(old))
    d=f'{WORK}/{name}'
    shutil.rmtree(d, ignore_errors=True); os.makedirs(os.path.dirname(f'{d}/{path}'), exist_ok=True)
    open(f'{d}/{path}','w').write(src.replace(old,new))
    diff=subprocess.run(['diff','-u','--label',f'a/{path}','--label',f'b/{path}',os.path.join(ROOT,path),f'{d}/{path}'],capture_output=True,text=True).stdout
    assert diff
    head=f'expect: {expect}\n'+(f'seeds: {seeds}\n' if seeds else '')+(f'safety: {safety}\n' if safety else '')
    open(f'{ROOT}/tests/mutants/{name}.patch','w').write(head+f'{desc}\n\n'+diff)
    print(name, 'ok')

mutant('double_vote','persisted_hard_state',
 'A follower grants its vote to any candidate while no leader is known, even after voting for\nanother in the same term (Figure 2: "each server will vote for at most one candidate in a given term").',
 'core/election.c',
 "(r->vote == RAFT_NODE_NONE && r->leader == RAFT_NODE_NONE) ||",
 "((r->vote == RAFT_NODE_NONE || r->role == RAFT_FOLLOWER) && r->leader == RAFT_NODE_NONE) ||")

mutant('commit_previous_term','leader_completeness',
 'Commits an entry of an earlier term by counting replicas (paper §5.4.2, Figure 8: a leader\ncommits only entries of its own term that way). Losing such an entry takes three leaders\nwith divergent logs in a row, about one seed in three hundred: hence the larger budget.',
 'core/replication.c',
 """    if (log_term(&r->log, index) != r->term) {
        return;
    }
    uncommitted_release""",
 """    uncommitted_release""", seeds=1000)

mutant('no_truncate','log_matching',
 'Keeps a conflicting suffix instead of deleting it (Figure 2 AppendEntries receiver, step 3),\nthen acknowledges the leader\'s entries as if it held them.',
 'core/replication.c',
 """    if (conflict) {
        raft_index from = a->entries[first].index;
        bool config_removed = log_has_config_from(r, from);
        log_truncate_from(&r->log, from);
        if (config_removed) {
            raft_config_refresh(r); /* back to the configuration before the removed entry */
        }
    }""",
 """    if (conflict) {
        (void)log_has_config_from;
        first = a->entry_count; /* keep ours */
    }""")

mutant('ack_before_persist','persisted_before_ack',
 'Acknowledges an append at once instead of after its entries are durable (the ack lets the\nleader count this node toward a commit that a crash here could undo).',
 'core/replication.c',
 """    resp.append_resp.index = index;
    /* It acknowledges entries: it leaves once they (and our term) are durable. */
    raft_send(r, &resp, true, false);""",
 """    resp.append_resp.index = index;
    raft_send(r, &resp, false, false);""")

mutant('read_without_confirmation','read_linearizable',
 'Serves ReadIndex reads at the leader\'s commit index without the heartbeat round that proves\nit is still the leader (thesis §6.4 step 3).',
 'core/read_index.c',
 """    round_check(r); /* a single voter confirms at once */
}""",
 """    q->confirmed = q->assigned;
    q->round = 0;
}""")

mutant('drop_read_failures','read_outcome',
 'A leader that steps down drops its unconfirmed ReadIndex requests silently instead of\nreturning them as read_failures (core/raft.h: every accepted read comes back exactly once,\nreleased or failed); their clients would wait forever.',
 'core/read_index.c',
 """    for (uint32_t i = q->confirmed; i < q->count; i++) {
        RR_ASSERT(q->failed_count < q->cap);
        q->failed[q->failed_count++] = q->queue[i].ctx;
    }
""",
 "")

mutant('ignore_peer_down','quiesce_failover',
 'Ignores the node\'s report that a peer is down (raft_peer_down does nothing): a quiesced\ngroup has no timers, so a group whose leader crashed while it slept is never woken by Raft\nitself, and a quiesced leader never notices that its followers are gone.',
 'core/quiesce.c',
 """    RR_ASSERT(!r->handed.pending);
    if (id == RAFT_NODE_NONE || id == r->opt.id) {
        return;
    }""",
 """    RR_ASSERT(!r->handed.pending);
    if (id != RAFT_NODE_NONE) {
        return;
    }""")

mutant('vote_not_persisted','persisted_hard_state',
 'Leaves the vote out of the persisted hard state: after a crash the node may vote again in a\nterm it already voted in (Figure 2: votedFor is persistent state).',
 'core/raft.c',
 """    rd->hard_state = (struct raft_hard_state){r->term, r->vote, r->commit};""",
 """    rd->hard_state = (struct raft_hard_state){r->term, RAFT_NODE_NONE, r->commit};""")

mutant('count_rejected_votes','election_safety',
 'Counts every vote response as a grant, so two candidates of one term can both win (paper\n§5.2: "a candidate wins an election if it receives votes from a majority").',
 'core/election.c',
 """    record_vote(r, m->from, m->vote_resp.granted);""",
 """    record_vote(r, m->from, true);""")

mutant('apply_before_persist','persisted_before_apply',
 'Applies committed entries before they are durable locally (core/raft.h: committed entries\nhanded out "are already durable locally"); a crash could then leave the state machine ahead\nof the log it restarts from.',
 'core/raft.c',
 """    raft_index to = r->commit < r->log.persisted ? r->commit : r->log.persisted;""",
 """    raft_index to = r->commit;""")

# ---- membership (paper §6, thesis §4) ----

mutant('config_before_own_term_commit','config_after_own_term_commit',
 'Lets a leader propose a configuration change before an entry of its own term is committed\n(the 2015 fix to single-server changes, thesis §4.1 erratum: a new leader may otherwise\nappend C_new on top of a configuration an earlier leader left uncommitted).\nWith the rule checkers off, leader_completeness (a leader without a committed entry) fires\nfirst on about one seed in eight; the divergence it leads to (state_machine_safety) plays\nout on seed 689 of the debug build since the leader stopped heartbeating followers it is\nsending entries (core/replication.c), hence the budget of 800.',
 'core/membership.c',
 """    if (raft_term_at(r, r->commit) != r->term) {
        return RR_ECONFIG; /* no entry of this term committed yet */
    }
""",
 "", safety=800)

mutant('config_on_commit','config_on_append',
 'Puts a follower\'s configuration in force only once its entry is committed, instead of when\nit is appended (paper §6: "a server always uses the latest configuration in its log,\nregardless of whether the entry is committed").',
 'core/membership.c',
 """void membership_check(struct raft *r)
{
""",
 """void membership_check(struct raft *r)
{
    if (r->role != RAFT_LEADER) {
        struct raft_config committed;
        r->config_index = membership_config_at(r, r->commit, &committed);
        (void)raft_config_pack(&committed, &r->config);
    }
""", safety=300)

mutant('learner_in_quorum','commit_quorum',
 'Counts learners toward quorums (a learner never votes and never counts toward a majority,\nthesis §4.2.1), so a leader commits entries a majority of the voters does not hold.',
 'core/progress.c',
 """        if (config_member_role(members[i]) != RAFT_VOTER) {
            continue;
        }
        /* Insertion sort""",
 """        /* Insertion sort""")

mutant('two_changes_in_flight','single_config_change',
 'Allows a configuration change while another is uncommitted (thesis §4.1: "the leader will\nnot begin a new configuration change until the previous one has committed"); two\nsingle-server changes in flight no longer keep every pair of majorities overlapping.',
 'core/membership.c',
 """    if (r->config_index > r->commit || config_is_joint(&r->config)) {""",
 """    if (config_is_joint(&r->config)) {""", safety=300)

mutant('keep_truncated_config','config_on_append',
 'Keeps the configuration of a truncated entry in force instead of reverting to the one\nbefore it (a configuration lives in the log: when its entry goes, so does it).',
 'core/replication.c',
 """        if (config_removed) {
            raft_config_refresh(r); /* back to the configuration before the removed entry */
        }""",
 """        (void)config_removed;""", safety=300)

mutant('send_released_covered_by_snapshot','released_durable',
 'Resolves an append queued before its entries were released and a snapshot covered them,\ninstead of dropping it: the durable log is compacted to the snapshot, so the caller may no\nlonger be able to read those entries back (options.release_applied).',
 'core/raft.c',
 """        if (released_in_snapshot(r, a->prev_index + 1)) {""",
 """        if (false && released_in_snapshot(r, a->prev_index + 1)) {""")
