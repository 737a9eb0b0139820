/* The consumer group commands, with Redis 7.0's replies and errors byte for byte: XGROUP
 * (CREATE, SETID, DESTROY, CREATECONSUMER, DELCONSUMER, HELP), XREADGROUP, XACK, XCLAIM,
 * XAUTOCLAIM (writes) and XPENDING, XINFO (STREAM, GROUPS, CONSUMERS, HELP) (reads). The
 * state machine (sm.c) finds the keys; time is its clock. */
#ifndef RR_SERVICE_CGROUP_CMD_H
#define RR_SERVICE_CGROUP_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/service/reply.h"
#include "io/service/stream.h"

/* What a command sees of the state machine. */
struct cg_db {
    void *ctx;
    /* The state machine's clock (the largest time_ms applied): every delivery time, seen
     * time and idle time is measured with it, for reads as for writes. */
    int64_t now;
    /* The stream at key, or NULL if there is none (then *wrong_type says whether the key
     * holds another type). Writes see expired keys deleted first. */
    struct stream *(*lookup)(void *ctx, const uint8_t *key, size_t len, bool *wrong_type);
    /* Writes only (NULL for reads): adds an empty stream at key (absent); NULL when out of
     * memory (nothing changed). */
    struct stream *(*mkstream)(void *ctx, const uint8_t *key, size_t len);
    /* Pending entries a group may hold (<= CG_PEL_MAX): XREADGROUP delivers no more new
     * entries than its group has room for, XCLAIM FORCE is refused past it. */
    uint64_t pel_max;
    /* Writes only (may be NULL): set when an XREADGROUP with BLOCK delivered nothing (its
     * reply is the null array a timeout gives; the caller may make the client wait). */
    bool *blocked;
};

/* Runs a write (cmd_id one of CMD_ID_XREADGROUP, XACK, XCLAIM, XAUTOCLAIM, XGROUP_*; arity
 * checked by cmd_resolve). The reply, errors included, goes to r. 0, or RR_ENOMEM with
 * nothing changed: every allocation a command needs is made before it changes anything. */
int cg_cmd_write(uint16_t cmd_id,
                 const struct cg_db *db,
                 uint32_t argc,
                 const uint8_t *const argv[],
                 const uint32_t argl[],
                 struct reply *r);

/* Runs a read (CMD_ID_XPENDING, XINFO_*). */
void cg_cmd_read(uint16_t cmd_id,
                 const struct cg_db *db,
                 uint32_t argc,
                 const uint8_t *const argv[],
                 const uint32_t argl[],
                 struct reply *r);

/* XGROUP HELP / XINFO HELP (CMD_ID_XGROUP_HELP, CMD_ID_XINFO_HELP): Redis's help lines. */
void cg_cmd_help(uint16_t cmd_id, struct reply *r);

#endif
