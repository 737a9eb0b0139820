/* The in-memory Raft log: a growable array of entries after a compaction point, their data
 * in chunks appended in index order. */
#include "core/log.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/assert.h"
#include "core/base/errors.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define LOG_POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define LOG_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define LOG_POISON(p, n)   ((void)(p), (void)(n))
#define LOG_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define LOG_CHUNK_MIN 256u         /* first chunk of a log */
#define LOG_CHUNK_MAX (64u * 1024) /* chunks double up to this */

/* Data of the entries [first, last] that have any (bytes[0, used)); the rest of bytes is
 * free, and poisoned under ASan so that a pointer kept past its entry's removal is caught
 * as it would be with one allocation per entry. */
struct log_chunk {
    struct log_chunk *next; /* the next newer chunk */
    raft_index first;       /* index of the first entry whose data is here */
    raft_index last;        /* ... and of the last */
    uint32_t cap;
    uint32_t used;
    uint8_t bytes[];
};

static void chunk_free(struct log_chunk *c)
{
    LOG_UNPOISON(c->bytes, c->cap); /* the allocator may reuse it for anything */
    free(c);
}

/* Room for len bytes of entry `index` at the end of the newest chunk, or NULL. */
static uint8_t *chunk_put(struct raft_log *l, raft_index index, uint32_t len)
{
    struct log_chunk *c = l->newest;
    if (c == NULL || c->cap - c->used < len) {
        uint32_t cap = c == NULL ? LOG_CHUNK_MIN : c->cap * 2;
        if (cap > LOG_CHUNK_MAX) {
            cap = LOG_CHUNK_MAX;
        }
        if (cap < len) {
            cap = len;
        }
        struct log_chunk *n = malloc(sizeof(*n) + cap);
        if (n == NULL) {
            return NULL;
        }
        n->next = NULL;
        n->first = index;
        n->last = index;
        n->cap = cap;
        n->used = 0;
        LOG_POISON(n->bytes, cap);
        if (c == NULL) {
            l->oldest = n;
        } else {
            c->next = n;
        }
        l->newest = n;
        c = n;
    }
    uint8_t *p = c->bytes + c->used;
    LOG_UNPOISON(p, len);
    c->used += len;
    c->last = index;
    return p;
}

/* Frees the chunks whose entries are all <= index (compaction, snapshot installation). */
static void chunks_drop_through(struct raft_log *l, raft_index index)
{
    while (l->oldest != NULL && l->oldest->last <= index) {
        struct log_chunk *c = l->oldest;
        l->oldest = c->next;
        chunk_free(c);
    }
    if (l->oldest == NULL) {
        l->newest = NULL;
    }
}

/* Releases the data of entries[from..count), the log's tail: frees the chunks that hold only
 * their data and rewinds the one where it starts. */
static void chunks_drop_tail(struct raft_log *l, uint64_t from)
{
    const uint8_t *start = NULL; /* the lowest removed entry's data */
    raft_index from_index = l->prev_index + 1 + from;
    for (uint64_t i = from; i < l->count && start == NULL; i++) {
        start = l->entries[i].data.base;
    }
    if (start == NULL) {
        return; /* the removed entries hold no data */
    }
    struct log_chunk **pp = &l->oldest;
    struct log_chunk *keep = NULL;
    while (*pp != NULL && (*pp)->first < from_index) {
        keep = *pp;
        pp = &(*pp)->next;
    }
    for (struct log_chunk *c = *pp; c != NULL;) {
        struct log_chunk *next = c->next;
        chunk_free(c);
        c = next;
    }
    *pp = NULL;
    l->newest = keep;
    if (keep != NULL && start >= keep->bytes && start < keep->bytes + keep->cap) {
        uint32_t used = (uint32_t)(start - keep->bytes);
        LOG_POISON(keep->bytes + used, keep->used - used);
        keep->used = used;
        keep->last = from_index - 1;
    }
}

/* Frees the own copies of released configuration entries among the first `drop` entries. */
static void owned_free(struct raft_log *l, uint32_t drop)
{
    for (uint32_t i = 0; i < drop && l->owned > 0; i++) {
        struct raft_entry *e = &l->entries[i];
        if (e->index <= l->released && e->data.base != NULL) {
            free((void *)(uintptr_t)e->data.base); /* our own copy (release_entry) */
            e->data.base = NULL;
            l->owned--;
        }
    }
}

void log_init(struct raft_log *l, raft_index prev_index, raft_term prev_term)
{
    memset(l, 0, sizeof(*l));
    l->prev_index = prev_index;
    l->prev_term = prev_term;
    l->persisted = prev_index;
    l->handed = prev_index;
    l->seq_next = 1;
}

void log_free(struct raft_log *l)
{
    owned_free(l, l->count);
    chunks_drop_through(l, UINT64_MAX);
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
    raft_index index = log_last_index(l) + 1;
    uint8_t *copy = NULL;
    if (len > 0) {
        copy = chunk_put(l, index, len);
        if (copy == NULL) {
            return RR_ENOMEM;
        }
        memcpy(copy, data, len);
    }
    struct raft_entry *e = &l->entries[l->count];
    e->term = term;
    e->index = index;
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
    RR_ASSERT(index > l->released); /* released entries are durable and applied: committed */
    uint32_t keep = (uint32_t)(index - l->prev_index - 1); /* < count */
    chunks_drop_tail(l, keep);
    l->count = keep;
    if (l->handed >= index) {
        log_raise_barrier(l, index);
        l->handed = index - 1;
    }
    if (l->persisted >= index) {
        l->persisted = index - 1;
    }
}

/* Moves the entries after the first `drop` (their data already released) to the front. */
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
    owned_free(l, drop);
    chunks_drop_through(l, index);
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
    owned_free(l, drop);
    chunks_drop_through(l, l->prev_index + drop);
    log_shift(l, drop);
    l->count -= drop;
    l->prev_index = index;
    l->prev_term = term;
    log_raise_barrier(l, index + 1);
    l->handed = index;
    l->persisted = index;
    RR_ASSERT(l->released <= index); /* a snapshot is installed only above the commit index */
}

/* A released configuration entry keeps its data in an allocation of its own: the
 * configuration at an index is read from the log (membership_config_at). */
static bool release_entry(struct raft_log *l, struct raft_entry *e)
{
    if (e->type == RAFT_ENTRY_CONFIG && e->data.len > 0) {
        uint8_t *copy = malloc(e->data.len);
        if (copy == NULL) {
            return false;
        }
        memcpy(copy, e->data.base, e->data.len);
        e->data.base = copy;
        l->owned++;
        return true;
    }
    e->data.base = NULL;
    return true;
}

uint64_t log_release_to(struct raft_log *l, raft_index index)
{
    RR_ASSERT(index <= l->persisted);
    uint64_t freed = 0;
    while (l->oldest != NULL && l->oldest != l->newest && l->oldest->last <= index) {
        struct log_chunk *c = l->oldest;
        raft_index from = c->first > l->prev_index ? c->first : l->prev_index + 1;
        from = from > l->released ? from : l->released + 1; /* resumes after running out */
        for (raft_index i = from; i <= c->last; i++) {
            struct raft_entry *e = &l->entries[i - l->prev_index - 1];
            if (e->data.len > 0 && !release_entry(l, e)) {
                /* Out of memory for a configuration's copy: keep this chunk (and the entries
                 * already released from it stay released: their slots say so). */
                l->released = i - 1 > l->released ? i - 1 : l->released;
                return freed;
            }
        }
        l->released = c->last > l->released ? c->last : l->released;
        l->oldest = c->next;
        freed += c->cap;
        chunk_free(c);
    }
    return freed;
}

uint32_t log_chunk_count(const struct raft_log *l)
{
    uint32_t n = 0;
    for (const struct log_chunk *c = l->oldest; c != NULL; c = c->next) {
        n++;
    }
    return n;
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
