/* Configuration queries. */
#include "core/msg.h"

static bool members_have(const struct raft_member *m, uint32_t n, raft_node id, bool voter_only)
{
    for (uint32_t i = 0; i < n; i++) {
        if (m[i].id == id) {
            return !voter_only || m[i].role == RAFT_VOTER;
        }
    }
    return false;
}

bool raft_config_is_voter(const struct raft_config *c, raft_node id)
{
    return members_have(c->members, c->member_count, id, true) ||
           members_have(c->old_members, c->old_member_count, id, true);
}

bool raft_config_is_member(const struct raft_config *c, raft_node id)
{
    return members_have(c->members, c->member_count, id, false) ||
           members_have(c->old_members, c->old_member_count, id, false);
}

bool raft_config_is_joint(const struct raft_config *c)
{
    return c->old_member_count > 0;
}
