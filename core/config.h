/* Configurations as a group keeps them, 2 bytes per member, and the queries the core runs
 * on them (the unpacked struct raft_config of core/msg.h is for the API and the wire). */
#ifndef RR_CORE_CONFIG_H
#define RR_CORE_CONFIG_H

#include "core/msg.h"

/* A configuration in 2 bytes per member: the id in the low 14 bits, the role in the top 2.
 * A struct raft_config is 264 bytes, most of them empty slots, and every group keeps two
 * (the one in force and the bootstrap one), so groups keep this form: 66 bytes. Packing is
 * lossless for valid configurations (ids <= RAFT_NODE_ID_MAX, roles 1 or 2, halves of at
 * most RAFT_MEMBERS_MAX, which fit the counts' 8 bits); an invalid one packs as an empty
 * (invalid) one. Members keep their order. */
struct raft_config_packed {
    uint8_t member_count;                   /* C_new's members: members[0, member_count) */
    uint8_t old_member_count;               /* 0: not joint; else C_old's follow C_new's */
    uint16_t members[2 * RAFT_MEMBERS_MAX]; /* id | role << 14 */
};
#define RAFT_CONFIG_ID_MASK 0x3fffu
_Static_assert(RAFT_NODE_ID_MAX <= RAFT_CONFIG_ID_MASK && RAFT_LEARNER < 4,
               "a member packs in 16 bits");
_Static_assert(RAFT_MEMBERS_MAX <= UINT8_MAX, "a half's count packs in 8 bits");

static inline raft_node config_member_id(uint16_t m)
{
    return m & RAFT_CONFIG_ID_MASK;
}

static inline uint8_t config_member_role(uint16_t m)
{
    return (uint8_t)(m >> 14);
}

/* Members of both halves (the same server may be in both). */
static inline uint32_t config_slot_count(const struct raft_config_packed *c)
{
    return (uint32_t)c->member_count + c->old_member_count;
}

/* Returns false (and packs nothing: an empty configuration) if c is not valid. */
bool raft_config_pack(const struct raft_config *c, struct raft_config_packed *p);
void raft_config_unpack(const struct raft_config_packed *p, struct raft_config *c);

/* As raft_config_is_voter, _is_member, _is_joint and _role of core/msg.h. */
bool config_is_voter(const struct raft_config_packed *c, raft_node id);
bool config_is_member(const struct raft_config_packed *c, raft_node id);
bool config_is_joint(const struct raft_config_packed *c);
uint8_t config_role(const struct raft_config_packed *c, raft_node id);

#endif
