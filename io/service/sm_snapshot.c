/* A state machine's image: writing it while writes go on, and loading it from pieces.
 *
 * Image layout, version 4 (little-endian; blob = u32 length, bytes):
 *   head    = u8 1, u64 magic 0x4d53525252 ("RRRSM"), u8 version 4, u64 applied index,
 *             i64 clock
 *   key     = u8 2, blob key, u8 type (1 string, 2 stream), u8 has_expire, i64 expire_at,
 *             string: blob value
 *             stream: u8 2, u64 last ms, u64 last seq, u64 entries added (<= INT64_MAX),
 *                     u64 count,
 *                     count * (u64 ms, u64 seq, u32 field count, blob fields),
 *                     u64 n, n bytes of extension: max deleted ID and the consumer groups
 *                     (stream_ext_serialize, io/service/stream.c and cgroup.c)
 *   session = u8 3, u64 client id, u64 floor, u32 n, n * (u64 seq, u8 too_large, blob reply)
 *   end     = u8 4, u64 keys, u32 sessions, u64 XXH3 of every byte before this field
 *   image   = head, then keys and sessions in any order (sessions oldest first, their order
 *             being state: it decides evictions), then end.
 * Version 3 is the same with streams in stream format 1 (u8 1, no extension: no consumer
 * groups, no max deleted ID); it still loads. Version 2 (one buffer, counts up front) was
 * never written to disk by a node and is refused.
 * Keys expired at the image's clock are not part of the state and are left out. There is no
 * count up front: the serializer does not walk the table before it starts (that would stall
 * the loop on a large keyspace); the end gives the counts, and a loader checks them.
 *
 * Writing while writes go on (Dragonfly's snapshot scheme, per key). sm_snap_begin writes the
 * head and the sessions (a bounded, small part of the state) and flips the keyspace's
 * snap_parity: every existing key now differs from it, i.e. is not serialized yet; keys
 * inserted later get the new parity and are not part of the image. sm_snap_step walks the
 * table with Redis's reverse-binary SCAN cursor, which visits every key present for the
 * whole walk at least once across resizes; the parity makes repeats harmless. Every write
 * path calls ks_touch before it changes or deletes a key (lookup_write, ks_delete — also
 * active expiry —, ks_set_expire), which serializes a key not reached yet into `pending`,
 * as it was at the image's point. FLUSHDB hands the whole table to the image. So the image
 * is exactly the state at sm_snap_begin. Invariant between images: every key's mark equals
 * the parity (a finished walk marked them all, and inserts take the parity), which is what
 * makes one flip enough; stopping an image early restores it with a mark-only walk.
 *
 * Loading. The loader is a resumable parser: fixed-size fields are staged (at most 33
 * bytes), variable-size ones (keys, values, stream entries, replies) are gathered in a
 * buffer that grows with the bytes received, never with what a length claims. It builds a
 * fresh state machine and swaps it in only once the end item checked out. */
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "core/base/assert.h"
#include "core/base/errors.h"
#include "io/service/sm_internal.h"
#include "io/service/stream.h"
#include "io/service/util.h"

#define IMG_MAGIC      0x4d53525252uLL /* "RRRSM" */
#define IMG_VERSION    4u
#define IMG_VERSION_V3 3u /* streams in stream format 1: still loaded */

enum img_tag { TAG_HEAD = 1, TAG_KEY = 2, TAG_SESSION = 3, TAG_END = 4 };

/* ---- writing ---------------------------------------------------------------------------- */

struct sm_snap {
    struct sm *sm;
    raft_index applied;        /* the image's point */
    int64_t clock;             /* keys expired at it are not in the image */
    struct reply pending;      /* serialized by begin and by writes; handed out first */
    uint64_t cursor;           /* the walk over sm->ks (reverse-binary) */
    bool walked;               /* the walk over sm->ks is over */
    struct keyspace *detached; /* tables FLUSHDB handed over, walked after sm->ks */
    uint32_t detached_count;   /* entries of detached */
    uint32_t detached_at;      /* the one being walked */
    uint64_t detached_bucket;  /* its next bucket */
    uint64_t keys;             /* keys serialized */
    uint32_t sessions;         /* sessions serialized */
    XXH3_state_t *hash;        /* over every byte handed out */
    int error;                 /* first failure (sticky) */
    bool done;                 /* the end was handed out */
};

static void put_key(struct reply *out, const struct obj *o)
{
    util_put_u8(out, TAG_KEY);
    util_put_blob(out, o->key, o->key_len);
    util_put_u8(out, o->type);
    util_put_u8(out, o->has_expire ? 1 : 0);
    util_put_u64(out, (uint64_t)o->expire_at);
    if (o->type == OBJ_STRING) {
        util_put_blob(out, o->val, o->val_len);
    } else {
        stream_serialize(o->stream, out);
    }
}

/* Serializes o into out unless it is already in (or not part of) the image. */
static void snap_key(struct sm_snap *s, struct obj *o, struct reply *out)
{
    if (o->snap_mark == s->sm->ks.snap_parity) {
        return;
    }
    o->snap_mark = s->sm->ks.snap_parity;
    if (ks_expired(o, s->clock)) {
        return;
    }
    put_key(out, o);
    s->keys++;
    if (out->overflow && s->error == 0) {
        s->error = RR_ENOMEM;
    }
}

/* The keyspace hook: a write is about to change or delete o. */
static void before_change(void *ctx, struct obj *o)
{
    struct sm_snap *s = ctx;
    snap_key(s, o, &s->pending);
}

static void put_session(struct reply *out, const struct session *se)
{
    util_put_u8(out, TAG_SESSION);
    util_put_u64(out, se->client_id);
    util_put_u64(out, se->floor);
    util_put_u32(out, se->n);
    for (uint32_t i = se->lo; i < se->lo + se->n; i++) {
        util_put_u64(out, se->kept[i].seq);
        util_put_u8(out, se->kept[i].too_large ? 1 : 0);
        util_put_blob(out, kept_bytes(&se->kept[i]), se->kept[i].len);
    }
}

int sm_snap_begin(struct sm *sm, struct sm_snap **out)
{
    if (sm->snap != NULL) {
        return RR_EBUSY;
    }
    struct sm_snap *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->hash = XXH3_createState()) == NULL) {
        free(s);
        return RR_ENOMEM;
    }
    XXH3_64bits_reset(s->hash);
    s->sm = sm;
    s->applied = sm->applied;
    s->clock = sm->clock;
    reply_init(&s->pending, (size_t)1 << 40);
    util_put_u8(&s->pending, TAG_HEAD);
    util_put_u64(&s->pending, IMG_MAGIC);
    util_put_u8(&s->pending, IMG_VERSION);
    util_put_u64(&s->pending, (uint64_t)s->applied);
    util_put_u64(&s->pending, (uint64_t)s->clock);
    struct session **aged = sessions_by_age_new(sm);
    if (aged != NULL) {
        for (uint32_t i = 0; i < sm->session_count; i++) {
            put_session(&s->pending, aged[i]);
            s->sessions++;
        }
        free(aged);
    }
    if (aged == NULL || s->pending.overflow) {
        reply_free(&s->pending);
        XXH3_freeState(s->hash);
        free(s);
        return RR_ENOMEM;
    }
    sm->ks.snap_parity ^= 1u; /* every key now differs: none is serialized yet */
    sm->ks.snap_hook = before_change;
    sm->ks.snap_ctx = s;
    sm->snap = s;
    *out = s;
    return 0;
}

void sm_snap_detach_keys(struct sm *sm)
{
    struct sm_snap *s = sm->snap;
    RR_ASSERT(s != NULL);
    struct keyspace *d =
        realloc(s->detached, (size_t)(s->detached_count + 1) * sizeof(*s->detached));
    if (d == NULL) {
        /* No room to keep the table: serialize what is left of it now (a stall, but only
         * when memory is short), then empty it. */
        for (uint64_t b = 0; b <= sm->ks.mask; b++) {
            for (struct obj *o = sm->ks.buckets[b]; o != NULL; o = o->next) {
                snap_key(s, o, &s->pending);
            }
        }
        ks_clear(&sm->ks);
        return;
    }
    s->detached = d;
    ks_detach(&sm->ks, &s->detached[s->detached_count]);
    /* The copy's inline bucket moved with the struct: re-point it after the realloc too. */
    for (uint32_t i = 0; i <= s->detached_count; i++) {
        if (s->detached[i].mask == 0) {
            s->detached[i].buckets = &s->detached[i].bucket0;
        }
    }
    s->detached_count++;
}

/* Buckets the walk asks memory for before serializing them. The table is far larger than
 * the caches and the cursor jumps across it, so every bucket and every object is a cache
 * miss; requesting a batch of them at once lets the misses overlap instead of queueing. */
#define WALK_BATCH 16

/* Up to WALK_BATCH buckets of the main table, until out holds `budget` bytes past `from`;
 * false once the walk is over. */
static bool walk_main(struct sm_snap *s, struct reply *out, size_t from, size_t budget)
{
    struct keyspace *ks = &s->sm->ks;
    uint64_t cursors[WALK_BATCH];
    uint32_t n = 0;
    uint64_t v = s->cursor;
    do {
        cursors[n++] = v;
        __builtin_prefetch(&ks->buckets[v & ks->mask]);
        v = ks_cursor_next(ks, v);
    } while (v != 0 && n < WALK_BATCH);
    for (uint32_t i = 0; i < n; i++) {
        const struct obj *o = ks->buckets[cursors[i] & ks->mask];
        if (o != NULL) {
            /* The struct, then the key and a short value that follow it, which an
             * allocation not aligned to a cache line spreads over up to three lines. */
            __builtin_prefetch(o);
            __builtin_prefetch((const uint8_t *)o + 64);
            __builtin_prefetch((const uint8_t *)o + 127);
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        for (struct obj *o = ks->buckets[cursors[i] & ks->mask]; o != NULL; o = o->next) {
            snap_key(s, o, out);
        }
        s->cursor = i + 1 < n ? cursors[i + 1] : v;
        if (out->len - from >= budget || out->overflow) {
            break;
        }
    }
    return s->cursor != 0;
}

/* One bucket of the detached tables; false once all are walked (and freed). */
static bool walk_detached(struct sm_snap *s, struct reply *out)
{
    while (s->detached_at < s->detached_count) {
        struct keyspace *d = &s->detached[s->detached_at];
        if (s->detached_bucket <= d->mask) {
            for (struct obj *o = d->buckets[s->detached_bucket]; o != NULL; o = o->next) {
                snap_key(s, o, out);
            }
            s->detached_bucket++;
            return true;
        }
        ks_free(d);
        s->detached_at++;
        s->detached_bucket = 0;
    }
    return false;
}

/* A step of the walk (the main table, then the detached ones); false once it is over. */
static bool walk_one(struct sm_snap *s, struct reply *out, size_t from, size_t budget)
{
    if (!s->walked) {
        s->walked = !walk_main(s, out, from, budget);
        return true;
    }
    return walk_detached(s, out);
}

static void hand_out(struct sm_snap *s, struct reply *out, size_t from)
{
    XXH3_64bits_update(s->hash, out->buf + from, out->len - from);
}

int sm_snap_step(struct sm_snap *s, struct reply *out, size_t budget)
{
    if (s->error != 0) {
        return s->error;
    }
    if (s->done) {
        return 1;
    }
    size_t from = out->len;
    if (s->pending.len > 0) {
        reply_raw(out, s->pending.buf, s->pending.len);
        reply_reset(&s->pending);
    }
    bool more = true;
    while (more && out->len - from < budget && !out->overflow) {
        more = walk_one(s, out, from, budget);
    }
    if (!more && s->pending.len > 0) {
        /* A write during this step cannot have run, but stay safe: hand it out first. */
        reply_raw(out, s->pending.buf, s->pending.len);
        reply_reset(&s->pending);
    }
    if (out->overflow) {
        s->error = RR_ENOMEM;
        return s->error;
    }
    if (more) {
        hand_out(s, out, from);
        return 0;
    }
    util_put_u8(out, TAG_END);
    util_put_u64(out, s->keys);
    util_put_u32(out, s->sessions);
    hand_out(s, out, from);
    util_put_u64(out, XXH3_64bits_digest(s->hash));
    if (out->overflow) {
        s->error = RR_ENOMEM;
        return s->error;
    }
    s->done = true;
    /* Every key is marked now: the invariant between images holds; stop watching writes. */
    s->sm->ks.snap_hook = NULL;
    s->sm->ks.snap_ctx = NULL;
    return 1;
}

size_t sm_snap_pending(const struct sm_snap *s)
{
    return s->pending.len;
}

raft_index sm_snap_index(const struct sm_snap *s)
{
    return s->applied;
}

/* Marks every key not reached yet (no serialization), so that the next image's flip makes
 * every key unserialized again. */
static void mark_rest(struct sm_snap *s)
{
    struct keyspace *ks = &s->sm->ks;
    for (uint64_t b = 0; b <= ks->mask; b++) {
        for (struct obj *o = ks->buckets[b]; o != NULL; o = o->next) {
            o->snap_mark = ks->snap_parity;
        }
    }
}

void sm_snap_free(struct sm_snap *s)
{
    if (s == NULL) {
        return;
    }
    if (!s->done) {
        mark_rest(s);
    }
    for (uint32_t i = s->detached_at; i < s->detached_count; i++) {
        ks_free(&s->detached[i]);
    }
    free(s->detached);
    if (s->sm->snap == s) {
        s->sm->snap = NULL;
        s->sm->ks.snap_hook = NULL;
        s->sm->ks.snap_ctx = NULL;
    }
    reply_free(&s->pending);
    XXH3_freeState(s->hash);
    free(s);
}

int sm_serialize(struct sm *sm, struct reply *out)
{
    struct sm_snap *s;
    int rc = sm_snap_begin(sm, &s);
    if (rc != 0) {
        return rc;
    }
    while ((rc = sm_snap_step(s, out, (size_t)1 << 20)) == 0) {
    }
    sm_snap_free(s);
    return rc == 1 ? 0 : rc;
}

/* ---- loading ---------------------------------------------------------------------------- */

enum load_state {
    L_TAG = 0,
    L_HEAD,
    L_KEY_LEN,
    L_KEY,
    L_KEY_META,
    L_STR_LEN,
    L_STR,
    L_STREAM_HEAD,
    L_ENTRY_HEAD,
    L_ENTRY_DATA,
    L_EXT_LEN,
    L_EXT,
    L_SESSION_HEAD,
    L_KEPT_HEAD,
    L_KEPT_DATA,
    L_END,
    L_END_SUM,
    L_DONE,
};

#define STAGE_MAX 40u

struct sm_loader {
    struct sm *fresh;   /* built here, swapped in by finish */
    XXH3_state_t *hash; /* every byte before the end's checksum */
    uint8_t state;      /* enum load_state: what the current need is for */
    bool blob_mode;     /* the need is gathered in blob, else in stage */
    bool have_head;     /* the head item was read */
    uint8_t version;    /* the image's, once the head was read */
    int error;          /* sticky */
    uint8_t stage[STAGE_MAX];
    uint32_t stage_len, stage_need;
    uint8_t *blob; /* grows with the bytes received, up to blob_need */
    uint64_t blob_len, blob_need, blob_cap;
    /* The item being built. */
    struct obj *obj;       /* a key, not yet in the table */
    struct stream *stream; /* its stream */
    uint8_t stream_version;
    uint64_t entries_left; /* stream entries still to come */
    struct stream_id entry_id, last_id;
    uint64_t added;
    uint32_t field_count;
    struct session *session; /* a session, not yet linked */
    uint32_t kept_left;      /* its replies still to come */
    uint64_t kept_seq;
    bool kept_too_large;
    uint64_t keys, sessions; /* items loaded */
};

static void need_stage(struct sm_loader *ld, uint8_t state, uint32_t n)
{
    RR_ASSERT(n > 0 && n <= STAGE_MAX);
    ld->state = state;
    ld->blob_mode = false;
    ld->stage_len = 0;
    ld->stage_need = n;
}

static void need_blob(struct sm_loader *ld, uint8_t state, uint64_t n)
{
    ld->state = state;
    ld->blob_mode = true;
    ld->blob_len = 0;
    ld->blob_need = n;
}

static uint64_t st_u64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static uint32_t st_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Takes the gathered blob (the loader forgets it). Never NULL on success. */
static uint8_t *take_blob(struct sm_loader *ld)
{
    uint8_t *b = ld->blob;
    if (b == NULL) {
        b = malloc(1);
    }
    ld->blob = NULL;
    ld->blob_cap = 0;
    return b;
}

static int key_done(struct sm_loader *ld)
{
    ks_insert(&ld->fresh->ks, ld->obj);
    ld->obj = NULL;
    ld->keys++;
    need_stage(ld, L_TAG, 1);
    return 0;
}

static int stream_key_done(struct sm_loader *ld)
{
    ld->obj->type = OBJ_STREAM;
    ld->obj->stream = ld->stream;
    ld->stream = NULL;
    return key_done(ld);
}

/* The stream's entries are in: its extension follows in stream format 2. */
static int stream_done(struct sm_loader *ld)
{
    if (stream_load_finish(ld->stream, ld->last_id, ld->added) != 0) {
        return RR_ECORRUPT;
    }
    if (ld->stream_version == 1) {
        return stream_key_done(ld);
    }
    need_stage(ld, L_EXT_LEN, 8);
    return 0;
}

static int on_ext(struct sm_loader *ld)
{
    int rc = stream_ext_load(ld->stream, ld->blob, (size_t)ld->blob_len);
    if (rc != 0) {
        return rc;
    }
    return stream_key_done(ld);
}

static int session_done(struct sm_loader *ld)
{
    session_insert(ld->fresh, ld->session);
    ld->session = NULL;
    ld->sessions++;
    need_stage(ld, L_TAG, 1);
    return 0;
}

static int on_tag(struct sm_loader *ld)
{
    uint8_t tag = ld->stage[0];
    if (!ld->have_head && tag != TAG_HEAD) {
        return RR_ECORRUPT;
    }
    switch (tag) {
    case TAG_HEAD:
        if (ld->have_head) {
            return RR_ECORRUPT;
        }
        need_stage(ld, L_HEAD, 25);
        return 0;
    case TAG_KEY:
        need_stage(ld, L_KEY_LEN, 4);
        return 0;
    case TAG_SESSION:
        need_stage(ld, L_SESSION_HEAD, 20);
        return 0;
    case TAG_END:
        need_stage(ld, L_END, 12);
        return 0;
    default:
        return RR_ECORRUPT;
    }
}

static int on_head(struct sm_loader *ld)
{
    if (st_u64(ld->stage) != IMG_MAGIC) {
        return RR_ECORRUPT;
    }
    if (ld->stage[8] != IMG_VERSION && ld->stage[8] != IMG_VERSION_V3) {
        return RR_EBADVERSION;
    }
    ld->version = ld->stage[8];
    ld->fresh->applied = st_u64(ld->stage + 9);
    ld->fresh->clock = (int64_t)st_u64(ld->stage + 17);
    ld->have_head = true;
    need_stage(ld, L_TAG, 1);
    return 0;
}

static int on_key(struct sm_loader *ld)
{
    if (ks_find(&ld->fresh->ks, ld->blob, (size_t)ld->blob_len) != NULL) {
        return RR_ECORRUPT; /* a key twice */
    }
    ld->obj = ks_obj_new(ld->blob, (size_t)ld->blob_len, 0);
    if (ld->obj == NULL) {
        return RR_ENOMEM;
    }
    need_stage(ld, L_KEY_META, 10);
    return 0;
}

static int on_key_meta(struct sm_loader *ld)
{
    uint8_t type = ld->stage[0], has_expire = ld->stage[1];
    if (has_expire > 1 || (type != OBJ_STRING && type != OBJ_STREAM)) {
        return RR_ECORRUPT;
    }
    ld->obj->has_expire = has_expire == 1;
    ld->obj->expire_at = ld->obj->has_expire ? (int64_t)st_u64(ld->stage + 2) : 0;
    if (type == OBJ_STRING) {
        need_stage(ld, L_STR_LEN, 4);
    } else {
        ks_val_drop(ld->obj);
        need_stage(ld, L_STREAM_HEAD, 33);
    }
    return 0;
}

static int on_str(struct sm_loader *ld)
{
    uint8_t *v = take_blob(ld);
    if (v == NULL) {
        return RR_ENOMEM;
    }
    ks_val_replace(ld->obj, v, (size_t)ld->blob_need);
    return key_done(ld);
}

static int on_stream_head(struct sm_loader *ld)
{
    /* Image version 3 holds streams in format 1, version 4 in format 2. */
    ld->stream_version = ld->stage[0];
    if (ld->stream_version != (ld->version == IMG_VERSION_V3 ? 1 : STREAM_SERIAL_VERSION)) {
        return RR_ECORRUPT;
    }
    ld->last_id = (struct stream_id){st_u64(ld->stage + 1), st_u64(ld->stage + 9)};
    ld->added = st_u64(ld->stage + 17);
    ld->entries_left = st_u64(ld->stage + 25);
    ld->stream = stream_create();
    if (ld->stream == NULL) {
        return RR_ENOMEM;
    }
    if (ld->entries_left == 0) {
        return stream_done(ld);
    }
    need_stage(ld, L_ENTRY_HEAD, 24);
    return 0;
}

static int on_entry_head(struct sm_loader *ld)
{
    ld->entry_id = (struct stream_id){st_u64(ld->stage), st_u64(ld->stage + 8)};
    ld->field_count = st_u32(ld->stage + 16);
    uint32_t len = st_u32(ld->stage + 20);
    if (len > SM_STRING_MAX) {
        return RR_ECORRUPT;
    }
    need_blob(ld, L_ENTRY_DATA, len);
    return 0;
}

static int on_entry_data(struct sm_loader *ld)
{
    int rc = stream_load_entry(ld->stream, ld->entry_id, ld->field_count, ld->blob,
                               (uint32_t)ld->blob_len);
    if (rc != 0) {
        return rc;
    }
    if (--ld->entries_left == 0) {
        return stream_done(ld);
    }
    need_stage(ld, L_ENTRY_HEAD, 24);
    return 0;
}

static int on_session_head(struct sm_loader *ld)
{
    uint64_t client_id = st_u64(ld->stage), floor = st_u64(ld->stage + 8);
    uint32_t n = st_u32(ld->stage + 16);
    if (client_id == 0 || n > SM_SESSION_REPLIES_MAX ||
        session_find(ld->fresh, client_id) != NULL) {
        return RR_ECORRUPT;
    }
    struct session *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return RR_ENOMEM;
    }
    s->client_id = client_id;
    s->floor = floor;
    s->cap = n + 1 > SM_KEPT_MIN ? n + 1 : SM_KEPT_MIN;
    s->kept = malloc((size_t)s->cap * sizeof(*s->kept));
    if (s->kept == NULL) {
        free(s);
        return RR_ENOMEM;
    }
    ld->session = s;
    ld->kept_left = n;
    if (n == 0) {
        return session_done(ld);
    }
    need_stage(ld, L_KEPT_HEAD, 13);
    return 0;
}

static int on_kept_head(struct sm_loader *ld)
{
    struct session *s = ld->session;
    uint64_t seq = st_u64(ld->stage);
    uint8_t too_large = ld->stage[8];
    uint32_t len = st_u32(ld->stage + 9);
    if (seq < s->floor || (s->n > 0 && seq <= s->kept[s->n - 1].seq) || too_large > 1 ||
        (too_large == 1 && len != 0) || len > SM_STRING_MAX) {
        return RR_ECORRUPT;
    }
    ld->kept_seq = seq;
    ld->kept_too_large = too_large == 1;
    need_blob(ld, L_KEPT_DATA, len);
    return 0;
}

static int on_kept_data(struct sm_loader *ld)
{
    struct session *s = ld->session;
    struct kept_reply k = {.seq = ld->kept_seq, .too_large = ld->kept_too_large};
    if (kept_store(&k, ld->blob, (uint32_t)ld->blob_len) != 0) {
        return RR_ENOMEM;
    }
    s->kept[s->n++] = k;
    if (--ld->kept_left == 0) {
        return session_done(ld);
    }
    need_stage(ld, L_KEPT_HEAD, 13);
    return 0;
}

static int on_end(struct sm_loader *ld)
{
    if (st_u64(ld->stage) != ld->keys || st_u32(ld->stage + 8) != ld->sessions) {
        return RR_ECORRUPT;
    }
    need_stage(ld, L_END_SUM, 8);
    return 0;
}

static int on_complete(struct sm_loader *ld)
{
    switch (ld->state) {
    case L_TAG:
        return on_tag(ld);
    case L_HEAD:
        return on_head(ld);
    case L_KEY_LEN: {
        uint32_t len = st_u32(ld->stage);
        if (len > SM_STRING_MAX) {
            return RR_ECORRUPT;
        }
        need_blob(ld, L_KEY, len);
        return 0;
    }
    case L_KEY:
        return on_key(ld);
    case L_KEY_META:
        return on_key_meta(ld);
    case L_STR_LEN: {
        uint32_t len = st_u32(ld->stage);
        if (len > SM_STRING_MAX) {
            return RR_ECORRUPT;
        }
        need_blob(ld, L_STR, len);
        return 0;
    }
    case L_STR:
        return on_str(ld);
    case L_STREAM_HEAD:
        return on_stream_head(ld);
    case L_ENTRY_HEAD:
        return on_entry_head(ld);
    case L_ENTRY_DATA:
        return on_entry_data(ld);
    case L_EXT_LEN:
        need_blob(ld, L_EXT, st_u64(ld->stage));
        return 0;
    case L_EXT:
        return on_ext(ld);
    case L_SESSION_HEAD:
        return on_session_head(ld);
    case L_KEPT_HEAD:
        return on_kept_head(ld);
    case L_KEPT_DATA:
        return on_kept_data(ld);
    case L_END:
        return on_end(ld);
    case L_END_SUM:
        if (st_u64(ld->stage) != XXH3_64bits_digest(ld->hash)) {
            return RR_ECORRUPT;
        }
        ld->state = L_DONE;
        return 0;
    default:
        return RR_ECORRUPT;
    }
}

/* Makes room in blob for `more` bytes: doubling, but never beyond what was received plus
 * this piece (so a length that lies costs nothing until the bytes come). */
static int blob_reserve(struct sm_loader *ld, uint64_t more)
{
    uint64_t need = ld->blob_len + more;
    if (need <= ld->blob_cap) {
        return 0;
    }
    uint64_t cap = ld->blob_cap > 0 ? ld->blob_cap * 2 : 256;
    cap = cap < need ? need : cap;
    cap = cap > ld->blob_need ? ld->blob_need : cap;
    uint8_t *b = realloc(ld->blob, (size_t)cap);
    if (b == NULL) {
        return RR_ENOMEM;
    }
    ld->blob = b;
    ld->blob_cap = cap;
    return 0;
}

int sm_loader_new(struct sm_loader **out, const struct sm_limits *l)
{
    struct sm_loader *ld = calloc(1, sizeof(*ld));
    if (ld == NULL) {
        return RR_ENOMEM;
    }
    ld->hash = XXH3_createState();
    if (ld->hash == NULL || sm_create(&ld->fresh, l, NULL) != 0) {
        sm_loader_free(ld);
        return RR_ENOMEM;
    }
    XXH3_64bits_reset(ld->hash);
    need_stage(ld, L_TAG, 1);
    *out = ld;
    return 0;
}

static size_t feed_blob(struct sm_loader *ld, const uint8_t *p, size_t n)
{
    uint64_t left = ld->blob_need - ld->blob_len;
    size_t take = left < n ? (size_t)left : n;
    if (take > 0) {
        if (blob_reserve(ld, take) != 0) {
            ld->error = RR_ENOMEM;
            return 0;
        }
        memcpy(ld->blob + ld->blob_len, p, take);
        ld->blob_len += take;
        XXH3_64bits_update(ld->hash, p, take);
    }
    return take;
}

static size_t feed_stage(struct sm_loader *ld, const uint8_t *p, size_t n)
{
    uint32_t left = ld->stage_need - ld->stage_len;
    size_t take = left < n ? left : n;
    memcpy(ld->stage + ld->stage_len, p, take);
    ld->stage_len += (uint32_t)take;
    if (ld->state != L_END_SUM) {
        XXH3_64bits_update(ld->hash, p, take);
    }
    return take;
}

static bool need_met(const struct sm_loader *ld)
{
    return ld->blob_mode ? ld->blob_len == ld->blob_need : ld->stage_len == ld->stage_need;
}

int sm_loader_feed(struct sm_loader *ld, const uint8_t *p, size_t n)
{
    while (ld->error == 0) {
        /* A need of zero bytes (an empty key, value or reply) is met without input. */
        if (ld->state != L_DONE && need_met(ld)) {
            int rc = on_complete(ld);
            if (rc != 0) {
                ld->error = rc;
            }
            continue;
        }
        if (n == 0) {
            break;
        }
        if (ld->state == L_DONE) {
            ld->error = RR_ECORRUPT; /* bytes after the end */
            break;
        }
        size_t took = ld->blob_mode ? feed_blob(ld, p, n) : feed_stage(ld, p, n);
        p += took;
        n -= took;
    }
    return ld->error;
}

/* Exchanges two state machines' contents. The inline buckets (session0, ks.bucket0) move
 * with the struct, so a table using one must point into its new home. */
static void sm_swap(struct sm *a, struct sm *b)
{
    bool a_sessions = a->sessions == &a->session0, b_sessions = b->sessions == &b->session0;
    bool a_keys = a->ks.buckets == &a->ks.bucket0, b_keys = b->ks.buckets == &b->ks.bucket0;
    struct sm tmp = *a;
    *a = *b;
    *b = tmp;
    if (b_sessions) {
        a->sessions = &a->session0;
    }
    if (a_sessions) {
        b->sessions = &b->session0;
    }
    if (b_keys) {
        a->ks.buckets = &a->ks.bucket0;
    }
    if (a_keys) {
        b->ks.buckets = &b->ks.bucket0;
    }
    /* Each keeps the reply scratch it was created with (its worker's, or its own). */
    struct reply *scratch = a->scratch;
    bool own = a->own_scratch;
    a->scratch = b->scratch;
    a->own_scratch = b->own_scratch;
    b->scratch = scratch;
    b->own_scratch = own;
}

bool sm_loader_done(const struct sm_loader *ld)
{
    return ld->error == 0 && ld->state == L_DONE;
}

int sm_loader_finish(struct sm_loader *ld, struct sm *sm)
{
    int rc = ld->error != 0 ? ld->error : (ld->state == L_DONE ? 0 : RR_ECORRUPT);
    if (rc != 0) {
        return rc;
    }
    ld->fresh->limits = sm->limits;
    struct sm *fresh = ld->fresh;
    if (fresh->session_count > fresh->limits.sessions_max) {
        /* An image made under a larger limit: forget the least recently used. */
        struct session **aged = sessions_by_age_new(fresh);
        if (aged == NULL) {
            return RR_ENOMEM;
        }
        uint32_t over = fresh->session_count - fresh->limits.sessions_max;
        for (uint32_t i = 0; i < over; i++) {
            session_remove(fresh, aged[i]);
        }
        free(aged);
    }
    sm_snap_free(sm->snap);
    sm_swap(sm, ld->fresh);
    ld->error = RR_EINVAL; /* spent */
    return 0;
}

void sm_loader_free(struct sm_loader *ld)
{
    if (ld == NULL) {
        return;
    }
    ks_obj_free(ld->obj);
    stream_destroy(ld->stream);
    if (ld->session != NULL) {
        session_free_kept(ld->session);
        free(ld->session);
    }
    free(ld->blob);
    sm_destroy(ld->fresh);
    if (ld->hash != NULL) {
        XXH3_freeState(ld->hash);
    }
    free(ld);
}

int sm_load(struct sm *sm, const uint8_t *data, size_t len)
{
    struct sm_loader *ld;
    int rc = sm_loader_new(&ld, &sm->limits);
    if (rc != 0) {
        return rc;
    }
    rc = sm_loader_feed(ld, data, len);
    if (rc == 0) {
        rc = sm_loader_finish(ld, sm);
    }
    sm_loader_free(ld);
    return rc;
}
