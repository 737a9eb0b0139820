/* The keyspace hash table. Chained, power-of-two sized, hashed with XXH3 under a fixed seed
 * (replicas must agree on nothing here, but a fixed seed keeps runs reproducible). It grows
 * at load 1 and shrinks below 1/8, rehashing at once; a failed resize just leaves the table
 * as it was (longer chains), which no reader can observe. An empty table (and one of a
 * single key) is one bucket inside struct keyspace; the array is allocated at the second
 * key and given back when the table empties.
 *
 * SCAN uses Redis's reverse-binary cursor (dict.c dictScan): the cursor's high bits are
 * incremented, so a bucket's children after a grow, or its parent after a shrink, come later
 * in the order, and every key present for the whole scan is visited at least once. */
#include "io/service/keyspace.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "core/base/assert.h"
#include "core/base/errors.h"

#define KS_BUCKETS_MIN 16u
#define KS_HASH_SEED   0x72696e6772616674uLL /* "ringraft" */

uint64_t ks_hash(const uint8_t *key, size_t len)
{
    return XXH3_64bits_withSeed(key, len, KS_HASH_SEED);
}

/* The one-bucket table, without freeing anything. */
static void use_inline(struct keyspace *ks)
{
    ks->bucket0 = NULL;
    ks->buckets = &ks->bucket0;
    ks->mask = 0;
    ks->expire_scan = 0;
}

static bool is_inline(const struct keyspace *ks)
{
    return ks->buckets == &ks->bucket0;
}

int ks_init(struct keyspace *ks)
{
    memset(ks, 0, sizeof(*ks));
    use_inline(ks);
    return 0;
}

void ks_obj_free(struct obj *o)
{
    if (o == NULL) {
        return;
    }
    ks_val_drop(o);
    stream_destroy(o->stream);
    free(o);
}

void ks_val_drop(struct obj *o)
{
    if (!o->val_inline) {
        free(o->val);
    }
    o->val = NULL;
    o->val_inline = false;
}

void ks_val_replace(struct obj *o, uint8_t *val, size_t len)
{
    ks_val_drop(o);
    o->val = val;
    o->val_len = len;
}

static void free_chains(struct keyspace *ks)
{
    for (uint64_t b = 0; b <= ks->mask; b++) {
        struct obj *o = ks->buckets[b];
        while (o != NULL) {
            struct obj *next = o->next;
            ks_obj_free(o);
            o = next;
        }
        ks->buckets[b] = NULL;
    }
    ks->count = 0;
    ks->expire_count = 0;
}

void ks_free(struct keyspace *ks)
{
    if (ks->buckets != NULL) {
        free_chains(ks);
        if (!is_inline(ks)) {
            free(ks->buckets);
        }
    }
    ks->buckets = NULL;
}

void ks_clear(struct keyspace *ks)
{
    free_chains(ks);
    if (!is_inline(ks)) {
        free(ks->buckets);
    }
    use_inline(ks);
}

void ks_detach(struct keyspace *ks, struct keyspace *out)
{
    *out = *ks;
    if (is_inline(ks)) {
        out->buckets = &out->bucket0;
    }
    out->snap_hook = NULL;
    out->snap_ctx = NULL;
    ks_hint(out, NULL, 0, 0);
    use_inline(ks);
    ks->count = 0;
    ks->expire_count = 0;
}

struct obj *ks_find(const struct keyspace *ks, const uint8_t *key, size_t len)
{
    return ks_find_hashed(ks, key, len, ks_key_hash(ks, key, len));
}

struct obj *ks_find_hashed(const struct keyspace *ks, const uint8_t *key, size_t len, uint64_t h)
{
    RR_ASSERT_SLOW(h == ks_hash(key, len));
    for (struct obj *o = ks->buckets[h & ks->mask]; o != NULL; o = o->next) {
        if (o->hash == h && o->key_len == len && memcmp(o->key, key, len) == 0) {
            return o;
        }
    }
    return NULL;
}

bool ks_expired(const struct obj *o, int64_t now_ms)
{
    return o->has_expire && o->expire_at <= now_ms;
}

struct obj *ks_lookup(const struct keyspace *ks, const uint8_t *key, size_t len, int64_t now)
{
    struct obj *o = ks_find(ks, key, len);
    return o == NULL || ks_expired(o, now) ? NULL : o;
}

struct obj *ks_obj_new(const uint8_t *key, size_t len, size_t val_len)
{
    return ks_obj_new_hashed(key, len, val_len, ks_hash(key, len));
}

struct obj *ks_obj_new_hashed(const uint8_t *key, size_t len, size_t val_len, uint64_t h)
{
    RR_ASSERT_SLOW(h == ks_hash(key, len));
    if (len > UINT32_MAX) {
        return NULL;
    }
    bool inline_val = val_len <= KS_VAL_INLINE_MAX;
    struct obj *o = malloc(sizeof(*o) + len + (inline_val ? val_len : 0));
    if (o == NULL) {
        return NULL;
    }
    memset(o, 0, sizeof(*o));
    if (inline_val) {
        o->val = o->key + len; /* non-NULL even for an empty value */
        o->val_inline = true;
    } else if ((o->val = malloc(val_len)) == NULL) {
        free(o);
        return NULL;
    }
    o->type = OBJ_STRING;
    o->val_len = val_len;
    o->key_len = (uint32_t)len;
    if (len > 0) {
        memcpy(o->key, key, len);
    }
    o->hash = h;
    return o;
}

/* Rehashes into `buckets` (a power of two, >= KS_BUCKETS_MIN) buckets if memory allows. */
static void resize(struct keyspace *ks, uint64_t buckets)
{
    if (buckets < KS_BUCKETS_MIN || buckets > SIZE_MAX / sizeof(struct obj *)) {
        return;
    }
    struct obj **nb = calloc((size_t)buckets, sizeof(*nb));
    if (nb == NULL) {
        return;
    }
    for (uint64_t b = 0; b <= ks->mask; b++) {
        struct obj *o = ks->buckets[b];
        while (o != NULL) {
            struct obj *next = o->next;
            o->next = nb[o->hash & (buckets - 1)];
            nb[o->hash & (buckets - 1)] = o;
            o = next;
        }
    }
    if (!is_inline(ks)) {
        free(ks->buckets);
    }
    ks->buckets = nb;
    ks->mask = buckets - 1;
    ks->expire_scan &= ks->mask;
}

void ks_insert(struct keyspace *ks, struct obj *o)
{
    RR_ASSERT_SLOW(ks_find(ks, o->key, o->key_len) == NULL);
    o->snap_mark = ks->snap_parity; /* not part of a serialization already running */
    uint64_t b = o->hash & ks->mask;
    o->next = ks->buckets[b];
    ks->buckets[b] = o;
    ks->count++;
    if (o->has_expire) {
        ks->expire_count++;
    }
    if (ks->count > ks->mask + 1 && ks->mask < UINT64_MAX / 4) {
        resize(ks, is_inline(ks) ? KS_BUCKETS_MIN : (ks->mask + 1) * 2);
    }
}

void ks_delete(struct keyspace *ks, struct obj *o)
{
    ks_touch(ks, o);
    struct obj **pp = &ks->buckets[o->hash & ks->mask];
    while (*pp != o) {
        RR_ASSERT(*pp != NULL);
        pp = &(*pp)->next;
    }
    *pp = o->next;
    RR_ASSERT(ks->count > 0);
    ks->count--;
    if (o->has_expire) {
        RR_ASSERT(ks->expire_count > 0);
        ks->expire_count--;
    }
    ks_obj_free(o);
    if (ks->count == 0 && !is_inline(ks)) {
        free(ks->buckets); /* empty: back to the one-bucket table */
        use_inline(ks);
    } else if (ks->mask + 1 > KS_BUCKETS_MIN && ks->count < (ks->mask + 1) / 8) {
        resize(ks, (ks->mask + 1) / 2);
    }
}

void ks_set_expire(struct keyspace *ks, struct obj *o, bool has, int64_t at)
{
    ks_touch(ks, o);
    if (o->has_expire && !has) {
        ks->expire_count--;
    } else if (!o->has_expire && has) {
        ks->expire_count++;
    }
    o->has_expire = has;
    o->expire_at = has ? at : 0;
}

void ks_expire_step(struct keyspace *ks, int64_t now, uint32_t buckets)
{
    for (uint32_t i = 0; i < buckets && ks->expire_count > 0; i++) {
        uint64_t b = ks->expire_scan & ks->mask;
        struct obj *o = ks->buckets[b];
        while (o != NULL) {
            struct obj *next = o->next;
            if (ks_expired(o, now)) {
                ks_delete(ks, o); /* may shrink the table: b stays a valid start */
            }
            o = next;
        }
        ks->expire_scan = (b + 1) & ks->mask;
    }
}

void ks_scan(const struct keyspace *ks,
             uint64_t *cursor,
             uint32_t count,
             void (*fn)(void *ctx, const struct obj *o),
             void *ctx)
{
    uint64_t v = *cursor;
    uint64_t examined = 0;
    uint64_t visits = 0;
    /* Redis's SCAN stops after count keys or 10 * count buckets, whichever comes first. */
    uint64_t visits_max = (uint64_t)(count > 0 ? count : 1) * 10;
    do {
        for (const struct obj *o = ks->buckets[v & ks->mask]; o != NULL; o = o->next) {
            fn(ctx, o);
            examined++;
        }
        visits++;
        v = ks_cursor_next(ks, v);
    } while (v != 0 && examined < count && visits < visits_max);
    *cursor = v;
}
