/* The in-memory Raft log: a growable array of entries after a compaction point. */
#include "core/log.h"

#include <stdlib.h>
#include <string.h>

#include "core/base/assert.h"
#include "core/base/errors.h"

void log_init(struct raft_log *l, raft_index prev_index, raft_term prev_term)
{
    memset(l, 0, sizeof(*l));
    l->prev_index = prev_index;
    l->prev_term = prev_term;
    l->persisted = prev_index;
    l->handed = prev_index;
    l->seq_next = 1;
}

static void log_free_range(struct raft_log *l, uint64_t from, uint64_t to)
{
    for (uint64_t i = from; i < to; i++) {
        free((void *)(uintptr_t)l->entries[i].data.base);
        l->entries[i].data.base = NULL;
    }
}

void log_free(struct raft_log *l)
{
    log_free_range(l, 0, l->count);
    free(l->entries);
    l->entries = NULL;
    l->count = 0;
    l->cap = 0;
}

raft_index log_first_index(const struct raft_log *l)
{
    return l->prev_index + 1;
}

raft_index log_last_index(const struct raft_log *l)
{
    return l->prev_index + l->count;
}

raft_term log_last_term(const struct raft_log *l)
{
    return l->count == 0 ? l->prev_term : l->entries[l->count - 1].term;
}

raft_term log_term(const struct raft_log *l, raft_index index)
{
    if (index == l->prev_index) {
        return l->prev_term;
    }
    if (index < l->prev_index || index > log_last_index(l)) {
        return 0;
    }
    return l->entries[index - l->prev_index - 1].term;
}

const struct raft_entry *log_entry(const struct raft_log *l, raft_index index)
{
    if (index <= l->prev_index || index > log_last_index(l)) {
        return NULL;
    }
    return &l->entries[index - l->prev_index - 1];
}

int log_reserve(struct raft_log *l, uint64_t more)
{
    if (l->count + more <= l->cap) {
        return 0;
    }
    if (more > UINT32_MAX / 2 - l->count) {
        return RR_ENOMEM; /* the count's width (struct raft_log) */
    }
    /* Doubling from what is there (raft_init reserves RAFT_LOG_SLOTS_INITIAL first). */
    uint32_t cap = l->cap < 1 ? 1 : l->cap;
    while (cap < l->count + more) {
        cap *= 2;
    }
    struct raft_entry *e = realloc(l->entries, cap * sizeof(*e));
    if (e == NULL) {
        return RR_ENOMEM;
    }
    l->entries = e;
    l->cap = cap;
    return 0;
}

int log_append(struct raft_log *l, raft_term term, uint8_t type, const uint8_t *data, uint32_t len)
{
    RR_ASSERT(term >= log_last_term(l));
    RR_ASSERT(len <= RAFT_ENTRY_BYTES_MAX);
    int rv = log_reserve(l, 1);
    if (rv != 0) {
        return rv;
    }
    uint8_t *copy = NULL;
    if (len > 0) {
        copy = malloc(len);
        if (copy == NULL) {
            return RR_ENOMEM;
        }
        memcpy(copy, data, len);
    }
    struct raft_entry *e = &l->entries[l->count];
    e->term = term;
    e->index = log_last_index(l) + 1;
    e->type = type;
    e->data.base = copy;
    e->data.len = len;
    l->count++;
    return 0;
}

static void log_raise_barrier(struct raft_log *l, raft_index index)
{
    if (l->barrier_index == 0 || index < l->barrier_index) {
        l->barrier_index = index;
    }
    /* Only batches handed out from now on carry the replacement. */
    l->barrier_seq = l->seq_next;
}

void log_truncate_from(struct raft_log *l, raft_index index)
{
    RR_ASSERT(index > l->prev_index);
    RR_ASSERT(index <= log_last_index(l));
    uint32_t keep = (uint32_t)(index - l->prev_index - 1); /* < count */
    log_free_range(l, keep, l->count);
    l->count = keep;
    if (l->handed >= index) {
        log_raise_barrier(l, index);
        l->handed = index - 1;
    }
    if (l->persisted >= index) {
        l->persisted = index - 1;
    }
}

/* Moves the entries after the first `drop` (already freed) to the front. */
static void log_shift(struct raft_log *l, uint32_t drop)
{
    if (drop > 0 && drop < l->count) {
        memmove(l->entries, l->entries + drop, (l->count - drop) * sizeof(*l->entries));
    }
}

void log_compact_to(struct raft_log *l, raft_index index)
{
    RR_ASSERT(index > l->prev_index);
    RR_ASSERT(index <= log_last_index(l));
    RR_ASSERT(index <= l->persisted);
    uint32_t drop = (uint32_t)(index - l->prev_index); /* <= count */
    raft_term term = log_term(l, index);
    log_free_range(l, 0, drop);
    log_shift(l, drop);
    l->count -= drop;
    l->prev_index = index;
    l->prev_term = term;
}

void log_install_snapshot(struct raft_log *l, raft_index index, raft_term term)
{
    RR_ASSERT(index >= l->prev_index);
    uint32_t drop = l->count;
    if (index <= log_last_index(l) && log_term(l, index) == term) {
        drop = (uint32_t)(index - l->prev_index); /* <= count */
    }
    log_free_range(l, 0, drop);
    log_shift(l, drop);
    l->count -= drop;
    l->prev_index = index;
    l->prev_term = term;
    log_raise_barrier(l, index + 1);
    l->handed = index;
    l->persisted = index;
}

bool log_is_up_to_date(const struct raft_log *l, raft_index last_index, raft_term last_term)
{
    raft_term my_term = log_last_term(l);
    return last_term > my_term || (last_term == my_term && last_index >= log_last_index(l));
}

raft_index log_find_conflict_by_term(const struct raft_log *l, raft_index index, raft_term term)
{
    if (index > log_last_index(l)) {
        index = log_last_index(l);
    }
    while (index > l->prev_index && log_term(l, index) > term) {
        index--;
    }
    return index;
}

bool log_persisted_to(struct raft_log *l, raft_index index, raft_term term, uint64_t seq)
{
    if (seq != 0 && l->barrier_index != 0) {
        if (seq >= l->barrier_seq) {
            l->barrier_index = 0; /* the batch carrying the replacement is durable */
        } else if (index >= l->barrier_index) {
            /* Handed out before the truncation: only the unchanged prefix is vouched for. */
            index = l->barrier_index - 1;
            term = log_term(l, index);
        }
    }
    if (index <= l->persisted || index > l->handed) {
        return false;
    }
    if (log_term(l, index) != term) {
        return false; /* replaced since that batch was handed out */
    }
    l->persisted = index;
    return true;
}
