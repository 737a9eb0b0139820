/* Consumer groups: the data. A stream's groups are an AVL tree by name (in struct stream:
 * linking a group never allocates), each group's consumers another one by name,
 * and each pending entry (struct cg_nack) one allocation linked into two AVL trees by ID: its
 * group's PEL and its consumer's PEL. So a consumer's PEL is a subset of the group's without a
 * copy, every lookup, insert, move and removal is O(log n) in the worst case, and the only
 * allocation an entry's delivery needs is its node: commands allocate every node they may
 * need before changing anything (cgroup_cmd.c), and moving an entry to another consumer or
 * removing it never allocates.
 *
 * Serialized groups (cg_serialize; little-endian, blob = u32 length, bytes):
 *   u32 group_count, group_count * group in name order:
 *     blob name, u64 last_id ms, u64 last_id seq, i64 entries_read (-1: unknown),
 *     u32 consumer_count, consumer_count * consumer in name order:
 *       blob name, i64 seen_time,
 *       u64 pending, pending * (u64 ms, u64 seq, i64 delivery_time, u64 delivery_count)
 *       in ID order: the entries it owns (the group's PEL is their union).
 * Loading refuses names out of order (so duplicates) or over CG_NAME_BYTES_MAX, counts over
 * the limits or the bytes left, pending IDs out of order, 0-0, above the stream's last ID,
 * owned twice, or more of them than the stream's entries-added. */
#include "io/service/cgroup.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "core/base/assert.h"
#include "core/base/errors.h"

#define CG_CONTAINER(ptr, type, member)                                                            \
    ((type *)(void *)((char *)(uintptr_t)(ptr)-offsetof(type, member)))

/* Bytes each serialized item takes at least, to refuse counts the data cannot hold. */
#define CG_GROUP_BYTES_MIN    (4u + 8u + 8u + 8u + 4u)
#define CG_CONSUMER_BYTES_MIN (4u + 8u + 8u)
#define CG_NACK_BYTES         (8u + 8u + 8u + 8u)

int cg_name_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n > 0 ? memcmp(a, b, n) : 0;
    if (c != 0) {
        return c;
    }
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

/* ---- tree keys -------------------------------------------------------------------------- */

struct name_key {
    const uint8_t *p;
    size_t len;
};

static int id_key_cmp(const void *a, const void *b)
{
    return stream_id_cmp(*(const struct stream_id *)a, *(const struct stream_id *)b);
}

/* Pending entries are keyed by their id, in both trees. */
static const void *nack_group_key(const struct avl_node *n)
{
    return &CG_CONTAINER(n, const struct cg_nack, in_group)->id;
}

static const void *nack_consumer_key(const struct avl_node *n)
{
    return &CG_CONTAINER(n, const struct cg_nack, in_consumer)->id;
}

static const struct avl_ops pel_ops = {nack_group_key, id_key_cmp};
static const struct avl_ops cpel_ops = {nack_consumer_key, id_key_cmp};

/* Groups and consumers are keyed by their name, which lives in the object: the key of a
 * node is the node itself, and two comparators read names from it. Tree maintenance
 * (insert, remove, next) compares nodes with nodes; searches compare a name_key with nodes. */
static const void *group_key(const struct avl_node *n)
{
    return n;
}

static const void *consumer_key(const struct avl_node *n)
{
    return n;
}

static int group_cmp_any(const void *a, const void *b, bool a_is_node)
{
    const struct cg_group *gb = CG_CONTAINER(b, const struct cg_group, in_set);
    if (a_is_node) {
        const struct cg_group *ga = CG_CONTAINER(a, const struct cg_group, in_set);
        return cg_name_cmp(ga->name, ga->name_len, gb->name, gb->name_len);
    }
    const struct name_key *k = a;
    return cg_name_cmp(k->p, k->len, gb->name, gb->name_len);
}

static int group_node_cmp(const void *a, const void *b)
{
    return group_cmp_any(a, b, true);
}

static int group_name_cmp(const void *a, const void *b)
{
    return group_cmp_any(a, b, false);
}

static int consumer_cmp_any(const void *a, const void *b, bool a_is_node)
{
    const struct cg_consumer *cb = CG_CONTAINER(b, const struct cg_consumer, in_group);
    if (a_is_node) {
        const struct cg_consumer *ca = CG_CONTAINER(a, const struct cg_consumer, in_group);
        return cg_name_cmp(ca->name, ca->name_len, cb->name, cb->name_len);
    }
    const struct name_key *k = a;
    return cg_name_cmp(k->p, k->len, cb->name, cb->name_len);
}

static int consumer_node_cmp(const void *a, const void *b)
{
    return consumer_cmp_any(a, b, true);
}

static int consumer_name_cmp(const void *a, const void *b)
{
    return consumer_cmp_any(a, b, false);
}

static const struct avl_ops group_ops = {group_key, group_node_cmp};
static const struct avl_ops group_search_ops = {group_key, group_name_cmp};
static const struct avl_ops consumer_ops = {consumer_key, consumer_node_cmp};
static const struct avl_ops consumer_search_ops = {consumer_key, consumer_name_cmp};

static struct cg_group *as_group(const struct avl_node *n)
{
    return n == NULL ? NULL : CG_CONTAINER(n, struct cg_group, in_set);
}

static struct cg_consumer *as_consumer(const struct avl_node *n)
{
    return n == NULL ? NULL : CG_CONTAINER(n, struct cg_consumer, in_group);
}

static struct cg_nack *as_nack(const struct avl_node *n)
{
    return n == NULL ? NULL : CG_CONTAINER(n, struct cg_nack, in_group);
}

static struct cg_nack *as_cnack(const struct avl_node *n)
{
    return n == NULL ? NULL : CG_CONTAINER(n, struct cg_nack, in_consumer);
}

/* ---- groups ----------------------------------------------------------------------------- */

uint64_t cg_group_count(const struct stream *s)
{
    return stream_cgroups_const(s)->count;
}

struct cg_group *cg_group_find(const struct stream *s, const uint8_t *name, size_t len)
{
    struct name_key k = {name, len};
    return as_group(avl_find(stream_cgroups_const(s), &k, &group_search_ops));
}

struct cg_group *cg_group_first(const struct stream *s)
{
    return as_group(avl_first(stream_cgroups_const(s)));
}

struct cg_group *cg_group_next(const struct stream *s, const struct cg_group *g)
{
    return as_group(avl_next(stream_cgroups_const(s), &g->in_set, &group_ops));
}

struct cg_group *
cg_group_new(const uint8_t *name, size_t len, struct stream_id last_id, int64_t entries_read)
{
    RR_ASSERT(len <= CG_NAME_BYTES_MAX);
    RR_ASSERT(entries_read >= CG_ENTRIES_READ_UNKNOWN);
    struct cg_group *g = calloc(1, sizeof(*g) + len);
    if (g == NULL) {
        return NULL;
    }
    g->last_id = last_id;
    g->entries_read = entries_read;
    g->name_len = (uint32_t)len;
    if (len > 0) {
        memcpy(g->name, name, len);
    }
    return g;
}

void cg_group_link(struct stream *s, struct cg_group *g)
{
    RR_ASSERT(cg_group_find(s, g->name, g->name_len) == NULL);
    avl_insert(stream_cgroups(s), &g->in_set, &group_ops);
}

/* Frees every object of a subtree (post-order), no unlinking: the tree goes with them. */
static void free_subtree(struct avl_node *n, size_t member_offset, void (*free_fn)(void *))
{
    if (n == NULL) {
        return;
    }
    free_subtree(n->child[0], member_offset, free_fn);
    free_subtree(n->child[1], member_offset, free_fn);
    free_fn((char *)n - member_offset);
}

static void free_consumer(void *p)
{
    free(p); /* its PEL's nodes are the group's: freed with the group's PEL */
}

void cg_group_free(struct cg_group *g)
{
    if (g == NULL) {
        return;
    }
    free_subtree(g->pel.root, offsetof(struct cg_nack, in_group), free);
    free_subtree(g->consumers.root, offsetof(struct cg_consumer, in_group), free_consumer);
    free(g);
}

void cg_group_destroy(struct stream *s, struct cg_group *g)
{
    avl_remove(stream_cgroups(s), &g->in_set, &group_ops);
    cg_group_free(g);
}

static void free_group(void *p)
{
    cg_group_free(p);
}

void cg_free_groups(struct avl_tree *groups)
{
    free_subtree(groups->root, offsetof(struct cg_group, in_set), free_group);
    groups->root = NULL;
    groups->count = 0;
}

/* ---- consumers -------------------------------------------------------------------------- */

uint64_t cg_consumer_count(const struct cg_group *g)
{
    return g->consumers.count;
}

struct cg_consumer *cg_consumer_find(const struct cg_group *g, const uint8_t *name, size_t len)
{
    struct name_key k = {name, len};
    return as_consumer(avl_find(&g->consumers, &k, &consumer_search_ops));
}

struct cg_consumer *cg_consumer_first(const struct cg_group *g)
{
    return as_consumer(avl_first(&g->consumers));
}

struct cg_consumer *cg_consumer_next(const struct cg_group *g, const struct cg_consumer *c)
{
    return as_consumer(avl_next(&g->consumers, &c->in_group, &consumer_ops));
}

struct cg_consumer *cg_consumer_new(const uint8_t *name, size_t len, int64_t seen_time)
{
    RR_ASSERT(len <= CG_NAME_BYTES_MAX);
    struct cg_consumer *c = calloc(1, sizeof(*c) + len);
    if (c == NULL) {
        return NULL;
    }
    c->seen_time = seen_time;
    c->name_len = (uint32_t)len;
    if (len > 0) {
        memcpy(c->name, name, len);
    }
    return c;
}

void cg_consumer_link(struct cg_group *g, struct cg_consumer *c)
{
    RR_ASSERT(cg_consumer_find(g, c->name, c->name_len) == NULL);
    avl_insert(&g->consumers, &c->in_group, &consumer_ops);
}

uint64_t cg_consumer_delete(struct cg_group *g, struct cg_consumer *c)
{
    uint64_t pending = c->pel.count;
    struct avl_node *n;
    while ((n = avl_first(&c->pel)) != NULL) {
        struct cg_nack *nack = as_cnack(n);
        avl_remove(&c->pel, &nack->in_consumer, &cpel_ops);
        avl_remove(&g->pel, &nack->in_group, &pel_ops);
        free(nack);
    }
    avl_remove(&g->consumers, &c->in_group, &consumer_ops);
    free(c);
    return pending;
}

/* ---- pending entries -------------------------------------------------------------------- */

uint64_t cg_pel_count(const struct cg_group *g)
{
    return g->pel.count;
}

struct cg_nack *cg_nack_find(const struct cg_group *g, struct stream_id id)
{
    return as_nack(avl_find(&g->pel, &id, &pel_ops));
}

struct cg_nack *cg_nack_ceil(const struct cg_group *g, struct stream_id id)
{
    return as_nack(avl_ceil(&g->pel, &id, &pel_ops));
}

struct cg_nack *cg_nack_first(const struct cg_group *g)
{
    return as_nack(avl_first(&g->pel));
}

struct cg_nack *cg_nack_last(const struct cg_group *g)
{
    return as_nack(avl_last(&g->pel));
}

struct cg_nack *cg_nack_next(const struct cg_group *g, const struct cg_nack *n)
{
    return as_nack(avl_next(&g->pel, &n->in_group, &pel_ops));
}

uint64_t cg_consumer_pel_count(const struct cg_consumer *c)
{
    return c->pel.count;
}

struct cg_nack *cg_consumer_nack_ceil(const struct cg_consumer *c, struct stream_id id)
{
    return as_cnack(avl_ceil(&c->pel, &id, &cpel_ops));
}

struct cg_nack *cg_consumer_nack_next(const struct cg_consumer *c, const struct cg_nack *n)
{
    return as_cnack(avl_next(&c->pel, &n->in_consumer, &cpel_ops));
}

struct cg_nack *cg_nack_new(void)
{
    return calloc(1, sizeof(struct cg_nack));
}

void cg_nack_link(struct cg_group *g, struct cg_nack *n, struct cg_consumer *c)
{
    RR_ASSERT(c != NULL);
    avl_insert(&g->pel, &n->in_group, &pel_ops);
    avl_insert(&c->pel, &n->in_consumer, &cpel_ops);
    n->consumer = c;
}

void cg_nack_move(struct cg_nack *n, struct cg_consumer *to)
{
    if (n->consumer == to) {
        return;
    }
    avl_remove(&n->consumer->pel, &n->in_consumer, &cpel_ops);
    avl_insert(&to->pel, &n->in_consumer, &cpel_ops);
    n->consumer = to;
}

void cg_nack_delete(struct cg_group *g, struct cg_nack *n)
{
    avl_remove(&n->consumer->pel, &n->in_consumer, &cpel_ops);
    avl_remove(&g->pel, &n->in_group, &pel_ops);
    free(n);
}

/* ---- Redis 7's read counter and lag ------------------------------------------------------ */

static bool id_is_zero(struct stream_id id)
{
    return id.ms == 0 && id.seq == 0;
}

bool cg_range_has_tombstones(const struct stream *s, struct stream_id start)
{
    struct stream_id md = stream_max_deleted_id(s);
    if (stream_length(s) == 0 || id_is_zero(md)) {
        return false; /* empty, or never XDEL'd */
    }
    if (stream_id_cmp(stream_first_id(s), md) > 0) {
        return false; /* the last tombstone is before the first entry */
    }
    return stream_id_cmp(start, md) <= 0; /* start <= tombstone <= the end of the stream */
}

int64_t cg_estimate_entries_read(const struct stream *s, struct stream_id id)
{
    uint64_t added = stream_entries_added(s);
    if (added == 0) {
        return 0; /* a new stream: every counter is 0 */
    }
    int cmp_last = stream_id_cmp(id, stream_last_id(s));
    if (stream_length(s) == 0 && cmp_last < 1) {
        return (int64_t)added; /* empty: any ID up to the last one read everything */
    }
    if (cmp_last == 0) {
        return (int64_t)added; /* the last entry's counter is exact */
    }
    if (cmp_last > 0) {
        return CG_ENTRIES_READ_UNKNOWN; /* a future ID */
    }
    struct stream_id first = stream_first_id(s);
    struct stream_id md = stream_max_deleted_id(s);
    int cmp_id_first = stream_id_cmp(id, first);
    if (id_is_zero(md) || stream_id_cmp(md, first) < 0) {
        /* No fragmentation ahead of the first entry. */
        if (cmp_id_first < 0) {
            return (int64_t)(added - stream_length(s));
        }
        if (cmp_id_first == 0) {
            return (int64_t)(added - stream_length(s) + 1);
        }
    }
    return CG_ENTRIES_READ_UNKNOWN;
}

void cg_group_advance(const struct stream *s, struct cg_group *g, struct stream_id id)
{
    RR_ASSERT(stream_id_cmp(id, g->last_id) > 0);
    /* A counter set to INT64_MAX (XGROUP CREATE or SETID ... ENTRIESREAD) cannot count on:
     * it is estimated again, as an unknown one is. */
    if (g->entries_read != CG_ENTRIES_READ_UNKNOWN && g->entries_read < INT64_MAX &&
        !cg_range_has_tombstones(s, id)) {
        g->entries_read++; /* a valid counter and no tombstone ahead: exact */
    } else if (stream_entries_added(s) != 0) {
        g->entries_read = cg_estimate_entries_read(s, id);
    }
    g->last_id = id;
}

bool cg_group_lag(const struct stream *s, const struct cg_group *g, int64_t *lag)
{
    uint64_t added = stream_entries_added(s);
    if (added == 0) {
        *lag = 0;
        return true;
    }
    int64_t read = g->entries_read;
    if (read == CG_ENTRIES_READ_UNKNOWN || cg_range_has_tombstones(s, g->last_id)) {
        read = cg_estimate_entries_read(s, g->last_id);
        if (read == CG_ENTRIES_READ_UNKNOWN) {
            return false;
        }
    }
    *lag = (int64_t)added - read;
    return true;
}

/* ---- digest ----------------------------------------------------------------------------- */

static uint64_t digest_group(const struct cg_group *g, uint64_t h)
{
    h = XXH3_64bits_withSeed(g->name, g->name_len, h);
    uint64_t head[5] = {g->last_id.ms, g->last_id.seq, (uint64_t)g->entries_read,
                        g->consumers.count, g->pel.count};
    h = XXH3_64bits_withSeed(head, sizeof(head), h);
    for (const struct cg_consumer *c = cg_consumer_first(g); c != NULL;
         c = cg_consumer_next(g, c)) {
        h = XXH3_64bits_withSeed(c->name, c->name_len, h);
        uint64_t ch[2] = {(uint64_t)c->seen_time, c->pel.count};
        h = XXH3_64bits_withSeed(ch, sizeof(ch), h);
    }
    for (const struct cg_nack *n = cg_nack_first(g); n != NULL; n = cg_nack_next(g, n)) {
        uint64_t nh[4] = {n->id.ms, n->id.seq, (uint64_t)n->delivery_time, n->delivery_count};
        h = XXH3_64bits_withSeed(nh, sizeof(nh), h);
        h = XXH3_64bits_withSeed(n->consumer->name, n->consumer->name_len, h);
    }
    return h;
}

uint64_t cg_digest(const struct avl_tree *groups)
{
    uint64_t h = XXH3_64bits_withSeed(&groups->count, sizeof(groups->count), 0x4347);
    for (const struct avl_node *n = avl_first(groups); n != NULL;
         n = avl_next(groups, n, &group_ops)) {
        h = digest_group(as_group(n), h);
    }
    return h;
}

/* ---- serialization ---------------------------------------------------------------------- */

static void serialize_group(const struct cg_group *g, struct reply *out)
{
    util_put_blob(out, g->name, g->name_len);
    util_put_u64(out, g->last_id.ms);
    util_put_u64(out, g->last_id.seq);
    util_put_u64(out, (uint64_t)g->entries_read);
    util_put_u32(out, (uint32_t)g->consumers.count);
    for (const struct cg_consumer *c = cg_consumer_first(g); c != NULL && !out->overflow;
         c = cg_consumer_next(g, c)) {
        util_put_blob(out, c->name, c->name_len);
        util_put_u64(out, (uint64_t)c->seen_time);
        util_put_u64(out, c->pel.count);
        for (const struct cg_nack *n = cg_consumer_nack_ceil(c, (struct stream_id){0, 0});
             n != NULL && !out->overflow; n = cg_consumer_nack_next(c, n)) {
            util_put_u64(out, n->id.ms);
            util_put_u64(out, n->id.seq);
            util_put_u64(out, (uint64_t)n->delivery_time);
            util_put_u64(out, n->delivery_count);
        }
    }
}

void cg_serialize(const struct avl_tree *groups, struct reply *out)
{
    util_put_u32(out, (uint32_t)groups->count);
    for (const struct avl_node *n = avl_first(groups); n != NULL && !out->overflow;
         n = avl_next(groups, n, &group_ops)) {
        serialize_group(as_group(n), out);
    }
}

static size_t bytes_left(const struct util_cursor *c)
{
    return (size_t)(c->end - c->p);
}

/* A name of at most CG_NAME_BYTES_MAX bytes, after prev (NULL: the first) in name order. */
static const uint8_t *
load_name(struct util_cursor *c, uint32_t *len, const uint8_t *prev, uint32_t prev_len)
{
    const uint8_t *p = util_get_blob(c, len);
    if (c->bad || *len > CG_NAME_BYTES_MAX ||
        (prev != NULL && cg_name_cmp(prev, prev_len, p, *len) >= 0)) {
        c->bad = true;
        return NULL;
    }
    return p;
}

/* One consumer's pending entries: into its PEL and the group's. */
static int load_pending(struct util_cursor *c,
                        const struct stream *s,
                        struct cg_group *g,
                        struct cg_consumer *cons)
{
    uint64_t n = util_get_u64(c);
    if (c->bad || n > stream_entries_added(s) - g->pel.count || n > CG_PEL_MAX - g->pel.count ||
        n > bytes_left(c) / CG_NACK_BYTES) {
        c->bad = true;
        return RR_ECORRUPT;
    }
    struct stream_id prev = {0, 0};
    for (uint64_t i = 0; i < n; i++) {
        struct stream_id id;
        id.ms = util_get_u64(c);
        id.seq = util_get_u64(c);
        int64_t time = (int64_t)util_get_u64(c);
        uint64_t count = util_get_u64(c);
        /* Every pending ID was an entry of the stream: above 0-0, at most its last ID, and
         * owned by one consumer only. */
        if (c->bad || stream_id_cmp(id, prev) <= 0 || stream_id_cmp(id, stream_last_id(s)) > 0 ||
            cg_nack_find(g, id) != NULL) {
            c->bad = true;
            return RR_ECORRUPT;
        }
        struct cg_nack *nack = cg_nack_new();
        if (nack == NULL) {
            return RR_ENOMEM;
        }
        nack->id = id;
        nack->delivery_time = time;
        nack->delivery_count = count;
        cg_nack_link(g, nack, cons);
        prev = id;
    }
    return 0;
}

static int load_consumers(struct util_cursor *c, const struct stream *s, struct cg_group *g)
{
    uint32_t n = util_get_u32(c);
    if (c->bad || n > CG_CONSUMERS_MAX || n > bytes_left(c) / CG_CONSUMER_BYTES_MIN) {
        c->bad = true;
        return RR_ECORRUPT;
    }
    for (uint32_t i = 0; i < n; i++) {
        const struct cg_consumer *last = as_consumer(avl_last(&g->consumers));
        uint32_t len;
        const uint8_t *name =
            load_name(c, &len, last != NULL ? last->name : NULL, last != NULL ? last->name_len : 0);
        int64_t seen = (int64_t)util_get_u64(c);
        if (c->bad) {
            return RR_ECORRUPT;
        }
        struct cg_consumer *cons = cg_consumer_new(name, len, seen);
        if (cons == NULL) {
            return RR_ENOMEM;
        }
        /* Linked first, so that the group frees it (and its entries) on a later failure. */
        avl_insert(&g->consumers, &cons->in_group, &consumer_ops);
        int rc = load_pending(c, s, g, cons);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static int load_group(struct util_cursor *c, const struct stream *s, struct avl_tree *groups)
{
    const struct cg_group *last = as_group(avl_last(groups));
    uint32_t len;
    const uint8_t *name =
        load_name(c, &len, last != NULL ? last->name : NULL, last != NULL ? last->name_len : 0);
    struct stream_id last_id;
    last_id.ms = util_get_u64(c);
    last_id.seq = util_get_u64(c);
    int64_t entries_read = (int64_t)util_get_u64(c);
    if (c->bad || entries_read < CG_ENTRIES_READ_UNKNOWN) {
        c->bad = true;
        return RR_ECORRUPT;
    }
    struct cg_group *g = cg_group_new(name, len, last_id, entries_read);
    if (g == NULL) {
        return RR_ENOMEM;
    }
    int rc = load_consumers(c, s, g);
    if (rc != 0) {
        cg_group_free(g);
        return rc;
    }
    avl_insert(groups, &g->in_set, &group_ops);
    return 0;
}

int cg_load(const struct stream *s, struct util_cursor *c, struct avl_tree *out)
{
    RR_ASSERT(out->count == 0);
    uint32_t n = util_get_u32(c);
    if (c->bad || n > CG_GROUPS_MAX || n > bytes_left(c) / CG_GROUP_BYTES_MIN) {
        c->bad = true;
        return RR_ECORRUPT;
    }
    for (uint32_t i = 0; i < n; i++) {
        int rc = load_group(c, s, out);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}
