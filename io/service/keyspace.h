/* The keyspace of one state machine: a chained hash table of objects (strings and streams)
 * with optional expiry times, and Redis's reverse-binary SCAN cursor over its buckets. */
#ifndef RR_SERVICE_KEYSPACE_H
#define RR_SERVICE_KEYSPACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/service/stream.h"

enum obj_type { OBJ_STRING = 1, OBJ_STREAM = 2 };

struct obj {
    struct obj *next;      /* hash chain */
    uint64_t hash;         /* of the key */
    int64_t expire_at;     /* unix ms; meaningful only if has_expire */
    bool has_expire;       /* the key has a TTL */
    bool val_inline;       /* OBJ_STRING: val lies in this allocation, after the key */
    uint8_t type;          /* enum obj_type */
    uint8_t snap_mark;     /* == keyspace.snap_parity: already in (or not part of) the
                              serialization in progress; see ks_touch */
    uint32_t key_len;      /* bytes in key */
    size_t val_len;        /* OBJ_STRING: bytes in val */
    uint8_t *val;          /* OBJ_STRING: the value bytes (never NULL): inline, or a buffer
                              of its own (ks_val_drop frees either way) */
    struct stream *stream; /* OBJ_STREAM: owned */
    uint8_t key[];         /* the key bytes */
};

/* A table of one key or none uses the one bucket inside the struct (mask 0): most groups'
 * state machines are empty or nearly so, and a bucket array would cost every group. The
 * first key beyond one moves the table to a heap array of KS_BUCKETS_MIN buckets. */
struct keyspace {
    struct obj **buckets;  /* mask + 1 chains: &bucket0 or a malloc'd array */
    uint64_t mask;         /* bucket count - 1 (a power of two minus one) */
    struct obj *bucket0;   /* the chain of the one-bucket table */
    uint64_t count;        /* objects in the table, expired or not */
    uint64_t expire_count; /* objects with has_expire */
    uint64_t expire_scan;  /* next bucket the active expiry step examines */
    /* Serialization in progress (sm_snapshot.c): before a write changes or deletes an object
     * whose snap_mark differs from snap_parity, snap_hook serializes it and marks it. Objects
     * inserted get the current parity, so they are never part of it. NULL: none. */
    void (*snap_hook)(void *ctx, struct obj *o);
    void *snap_ctx;
    uint8_t snap_parity;
    /* A key whose hash is known already (ks_hint): ks_key_hash gives hint_hash for exactly
     * these bytes at this address instead of hashing them again. sm_apply sets it to the
     * entry's first key for the time of one apply. NULL: none. */
    const uint8_t *hint_key;
    size_t hint_len;
    uint64_t hint_hash;
};

/* An empty table (allocates nothing; cannot fail, returns 0). */
int ks_init(struct keyspace *ks);
/* Frees every object and the table. */
void ks_free(struct keyspace *ks);
uint64_t ks_hash(const uint8_t *key, size_t len);

/* Tells ks that key[0, len) hashes to h (= ks_hash(key, len)) for as long as those bytes
 * stay unchanged at that address; ks_hint(ks, NULL, 0, 0) forgets it. */
static inline void ks_hint(struct keyspace *ks, const uint8_t *key, size_t len, uint64_t h)
{
    ks->hint_key = key;
    ks->hint_len = len;
    ks->hint_hash = h;
}

/* ks_hash(key, len), without hashing when key is the hinted key. */
static inline uint64_t ks_key_hash(const struct keyspace *ks, const uint8_t *key, size_t len)
{
    return key == ks->hint_key && len == ks->hint_len && key != NULL ? ks->hint_hash
                                                                     : ks_hash(key, len);
}

/* Prefetches (into the cache, changing nothing) the bucket of a key hashing to h. */
static inline void ks_prefetch_bucket(const struct keyspace *ks, uint64_t h)
{
    __builtin_prefetch(&ks->buckets[h & ks->mask]);
}

/* Prefetches the first object of the bucket of a key hashing to h, and the part of it where
 * a key of len bytes ends. Loads the bucket: call it once ks_prefetch_bucket had time. */
static inline void ks_prefetch_chain(const struct keyspace *ks, uint64_t h, size_t len)
{
    const struct obj *o = ks->buckets[h & ks->mask];
    if (o != NULL) {
        __builtin_prefetch(o);
        __builtin_prefetch(o->key + len);
    }
}

/* The object for key, expired or not; NULL if none. */
struct obj *ks_find(const struct keyspace *ks, const uint8_t *key, size_t len);
/* ks_find of a key whose hash h (ks_hash) is known. */
struct obj *ks_find_hashed(const struct keyspace *ks, const uint8_t *key, size_t len, uint64_t h);
/* True if o is expired at now_ms. */
bool ks_expired(const struct obj *o, int64_t now_ms);
/* The live object at now_ms, or NULL (never deletes). */
struct obj *ks_lookup(const struct keyspace *ks, const uint8_t *key, size_t len, int64_t now);

/* Values up to this size are made in the object's own allocation, after the key: a new key
 * then costs one allocation, not two, and reading its value follows no second pointer. */
#define KS_VAL_INLINE_MAX 64u

/* A new, unlinked string object for key with an empty value buffer of val_len bytes (the
 * caller fills it). NULL when out of memory. */
struct obj *ks_obj_new(const uint8_t *key, size_t len, size_t val_len);
/* ks_obj_new of a key whose hash h (ks_hash) is known. */
struct obj *ks_obj_new_hashed(const uint8_t *key, size_t len, size_t val_len, uint64_t h);
void ks_obj_free(struct obj *o);
/* Releases o's value (its buffer, if it has one of its own); val becomes NULL. */
void ks_val_drop(struct obj *o);
/* Gives o the value val[0, len), a malloc'd buffer it now owns, releasing the old one. */
void ks_val_replace(struct obj *o, uint8_t *val, size_t len);
/* Links o (whose key must not be in the table). Grows the table when it can. */
void ks_insert(struct keyspace *ks, struct obj *o);
/* Unlinks and frees o. */
void ks_delete(struct keyspace *ks, struct obj *o);
/* Sets or clears o's expiry, keeping expire_count right. */
void ks_set_expire(struct keyspace *ks, struct obj *o, bool has, int64_t at);
/* Deletes expired objects in up to `buckets` buckets, resuming where the last call stopped. */
void ks_expire_step(struct keyspace *ks, int64_t now, uint32_t buckets);
/* Empties the table (keeps it allocated at its minimum size when possible). */
void ks_clear(struct keyspace *ks);
/* Moves every object into *out (an uninitialized struct, then owning them: ks_free it) and
 * leaves ks empty; the hook and parity stay with ks. */
void ks_detach(struct keyspace *ks, struct keyspace *out);

/* A write is about to change or delete o: calls the serialization hook first if o is not
 * yet serialized (see struct keyspace). Every write path calls it (ks_delete and
 * ks_set_expire do). */
static inline void ks_touch(struct keyspace *ks, struct obj *o)
{
    if (ks->snap_hook != NULL && o->snap_mark != ks->snap_parity) {
        ks->snap_hook(ks->snap_ctx, o);
    }
}

/* v with its 64 bits in reverse order. */
static inline uint64_t ks_rev64(uint64_t v)
{
    v = ((v >> 1) & 0x5555555555555555uLL) | ((v & 0x5555555555555555uLL) << 1);
    v = ((v >> 2) & 0x3333333333333333uLL) | ((v & 0x3333333333333333uLL) << 2);
    v = ((v >> 4) & 0x0F0F0F0F0F0F0F0FuLL) | ((v & 0x0F0F0F0F0F0F0F0FuLL) << 4);
    v = ((v >> 8) & 0x00FF00FF00FF00FFuLL) | ((v & 0x00FF00FF00FF00FFuLL) << 8);
    v = ((v >> 16) & 0x0000FFFF0000FFFFuLL) | ((v & 0x0000FFFF0000FFFFuLL) << 16);
    return (v >> 32) | (v << 32);
}

/* The scan cursor after v (Redis's dictScan): the bits above the mask are set and the
 * reversed value incremented, so a bucket's children after a grow, or its parent after a
 * shrink, come later in the order. 0 once the whole table was visited. */
static inline uint64_t ks_cursor_next(const struct keyspace *ks, uint64_t v)
{
    return ks_rev64(ks_rev64(v | ~ks->mask) + 1);
}

/* One SCAN step over the buckets from *cursor; see sm_scan. fn gets every object in the
 * visited buckets. */
void ks_scan(const struct keyspace *ks,
             uint64_t *cursor,
             uint32_t count,
             void (*fn)(void *ctx, const struct obj *o),
             void *ctx);

#endif
