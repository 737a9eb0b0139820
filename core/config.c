/* Configuration queries, on the unpacked form (core/msg.h) and the packed one
 * (core/config.h). */
#include "core/config.h"

#include <string.h>

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

static uint8_t members_role(const struct raft_member *m, uint32_t n, raft_node id)
{
    for (uint32_t i = 0; i < n; i++) {
        if (m[i].id == id) {
            return m[i].role;
        }
    }
    return 0;
}

/* Every member of a is in b with the same role, and the counts agree (ids are unique). */
static bool
members_equal(const struct raft_member *a, uint32_t na, const struct raft_member *b, uint32_t nb)
{
    if (na != nb) {
        return false;
    }
    for (uint32_t i = 0; i < na; i++) {
        if (members_role(b, nb, a[i].id) != a[i].role) {
            return false;
        }
    }
    return true;
}

bool raft_config_equal(const struct raft_config *a, const struct raft_config *b)
{
    return members_equal(a->members, a->member_count, b->members, b->member_count) &&
           members_equal(a->old_members, a->old_member_count, b->old_members, b->old_member_count);
}

uint8_t raft_config_role(const struct raft_config *c, raft_node id)
{
    return members_role(c->members, c->member_count, id);
}

/* One half of a configuration: ids valid and distinct, roles known and, when need_voter, at
 * least one voter (a half without voters could never form a majority). */
static bool members_valid(const struct raft_member *m, uint32_t n, bool need_voter)
{
    if (n > RAFT_MEMBERS_MAX) {
        return false;
    }
    bool voter = false;
    for (uint32_t i = 0; i < n; i++) {
        if (m[i].id == RAFT_NODE_NONE || m[i].id > RAFT_NODE_ID_MAX) {
            return false;
        }
        if (m[i].role != RAFT_VOTER && m[i].role != RAFT_LEARNER) {
            return false;
        }
        voter = voter || m[i].role == RAFT_VOTER;
        for (uint32_t j = 0; j < i; j++) {
            if (m[j].id == m[i].id) {
                return false;
            }
        }
    }
    return voter || !need_voter;
}

bool raft_config_valid(const struct raft_config *c)
{
    return c->member_count > 0 && members_valid(c->members, c->member_count, true) &&
           members_valid(c->old_members, c->old_member_count, c->old_member_count > 0);
}

/* ---- packed ------------------------------------------------------------------------- */

bool raft_config_pack(const struct raft_config *c, struct raft_config_packed *p)
{
    memset(p, 0, sizeof(*p));
    if (!raft_config_valid(c)) {
        return false; /* unpacks as an empty configuration, which is invalid too */
    }
    p->member_count = (uint8_t)c->member_count;
    p->old_member_count = (uint8_t)c->old_member_count;
    for (uint32_t i = 0; i < c->member_count; i++) {
        p->members[i] = (uint16_t)(c->members[i].id | (uint32_t)c->members[i].role << 14);
    }
    for (uint32_t i = 0; i < c->old_member_count; i++) {
        p->members[c->member_count + i] =
            (uint16_t)(c->old_members[i].id | (uint32_t)c->old_members[i].role << 14);
    }
    return true;
}

static struct raft_member member_unpack(uint16_t m)
{
    return (struct raft_member){.id = config_member_id(m), .role = config_member_role(m)};
}

void raft_config_unpack(const struct raft_config_packed *p, struct raft_config *c)
{
    memset(c, 0, sizeof(*c));
    c->member_count = p->member_count;
    c->old_member_count = p->old_member_count;
    for (uint32_t i = 0; i < c->member_count; i++) {
        c->members[i] = member_unpack(p->members[i]);
    }
    for (uint32_t i = 0; i < c->old_member_count; i++) {
        c->old_members[i] = member_unpack(p->members[c->member_count + i]);
    }
}

/* The slot of id in members[from, to), or -1. */
static int packed_find(const struct raft_config_packed *c, uint32_t from, uint32_t to, raft_node id)
{
    for (uint32_t i = from; i < to; i++) {
        if (config_member_id(c->members[i]) == id) {
            return (int)i;
        }
    }
    return -1;
}

bool config_is_voter(const struct raft_config_packed *c, raft_node id)
{
    int a = packed_find(c, 0, c->member_count, id);
    int b = packed_find(c, c->member_count, config_slot_count(c), id);
    return (a >= 0 && config_member_role(c->members[a]) == RAFT_VOTER) ||
           (b >= 0 && config_member_role(c->members[b]) == RAFT_VOTER);
}

bool config_is_member(const struct raft_config_packed *c, raft_node id)
{
    return packed_find(c, 0, config_slot_count(c), id) >= 0;
}

bool config_is_joint(const struct raft_config_packed *c)
{
    return c->old_member_count > 0;
}

uint8_t config_role(const struct raft_config_packed *c, raft_node id)
{
    int a = packed_find(c, 0, c->member_count, id);
    return a >= 0 ? config_member_role(c->members[a]) : 0;
}
