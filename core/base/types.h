/* Fixed-width identifier types shared by every layer (core, storage, io). */
#ifndef RR_BASE_TYPES_H
#define RR_BASE_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint64_t raft_term;  /* Raft term; 0 means "none yet". */
typedef uint64_t raft_index; /* Log index; entries start at 1, 0 means "none". */
typedef uint32_t raft_node;  /* Node id; 1..RAFT_NODE_ID_MAX, 0 means "none". */
typedef uint32_t raft_group; /* Raft group id; 0..groups-1 within a cluster. */

#define RAFT_NODE_NONE ((raft_node)0)

#endif
