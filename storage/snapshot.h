/* Per-group snapshot files: written atomically (temporary file, fsync, rename, directory
 * fsync), checksummed, carrying (index, term) and the group's configuration as opaque
 * bytes. Blocking I/O: call off the event loop (or at start-up). */
#ifndef RR_STORAGE_SNAPSHOT_H
#define RR_STORAGE_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "core/base/types.h"

/* Bounds what one load allocates: the core's snapshot limit (core/limits.h). */
#define SNAPSHOT_BYTES_MAX  (1ull << 30)
#define SNAPSHOT_CONFIG_MAX (64u << 10)

struct snapshot {
    raft_group group;
    raft_index index; /* last entry the snapshot covers */
    raft_term term;   /* its term */
    uint8_t *config;  /* the group's configuration, opaque; malloc'ed by load */
    uint32_t config_len;
    uint8_t *data; /* the state machine image; malloc'ed by load */
    uint64_t data_len;
};

/* Writes dir/snap-<group>-<index> atomically and durably. */
int snapshot_save(const char *dir, const struct snapshot *s, char *err, size_t err_len);

/* Loads the newest valid snapshot of group (damaged or unfinished files are skipped and
 * named in err). RR_ENOTFOUND if there is none; RR_EBADVERSION, naming the file and its
 * version in err, if the newest file that is not damaged has another format version (a
 * version-1 file, say): older snapshots are then not tried. The caller frees with
 * snapshot_free. */
int snapshot_load(
    const char *dir, raft_group group, struct snapshot *out, char *err, size_t err_len);
void snapshot_free(struct snapshot *s);

/* Deletes group's snapshots older than index, and leftover temporary files. */
int snapshot_prune(const char *dir, raft_group group, raft_index index);

#endif
