/* One group's state machine: the framework (entry codec, sessions, apply and read dispatch,
 * digest, snapshots) and the string/key commands. Stream commands' parsing and contents are
 * in stream.c; the hash table in keyspace.c.
 *
 * Determinism. Everything sm_apply does depends only on the state and the entry: the clock
 * is the largest time_ms applied, never a system clock. Expired keys are invisible to every
 * command; writes delete the expired keys they touch and a small active-expiry step runs per
 * entry. Neither deletion is observable: digests, snapshots, key counts and scans skip
 * expired keys, so replicas whose tables differ only in expired garbage have equal states.
 *
 * Out of memory. A command allocates everything it needs before changing anything, so
 * RR_ENOMEM leaves the state as it was and the node may apply the same entry again. Each
 * reply is built in sm->scratch (limit: sm_limits.reply_limit; the caller's buffer shared
 * by its state machines, or the sm's own), copied to the caller's reply buffer, and then
 * kept by the session: copied into an exact-size buffer, or, if that allocation fails, by
 * taking scratch's buffer, so keeping a reply never fails after the command ran (the
 * session's array has room for it before the command runs).
 *
 * Sessions (the Raft thesis, section 6.3). Per client: a floor (the highest first_unacked
 * seen) and the replies of every applied seq >= floor, in an array sorted by seq (binary
 * search per apply; seqs of one client are sparse in one group, as the client's counter is
 * shared by all groups). Replies arrive mostly in seq order, so inserts land at or near the
 * end and floor raises drop from the front: the array is kept[lo .. lo + n), with lo
 * advancing on drops and the live part moved back to 0 only when the end is reached.
 * Invariant: every applied seq >= floor has a kept reply, so a seq >= floor without one was
 * never applied, or was an XREADGROUP BLOCK that delivered nothing and changed nothing
 * (sm_apply_blocked), which may be applied again.
 *
 * Entry layout (little-endian):
 *   command = u8 1, u64 client_id, u64 seq, u64 first_unacked, i64 time_ms, u32 argc,
 *             argc * (u32 len, bytes)
 *   noop    = u8 2, i64 time_ms */
#include "io/service/sm.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "core/base/assert.h"
#include "core/base/errors.h"
#include "io/service/cgroup.h"
#include "io/service/cgroup_cmd.h"
#include "io/service/cmd.h"
#include "io/service/keyspace.h"
#include "io/service/sm_internal.h"
#include "io/service/stream.h"
#include "io/service/util.h"

#define SM_ENTRY_HEADER_BYTES 37u /* type, client_id, seq, first_unacked, time_ms, argc */
#define SM_ARGV_STACK         16u
#define SM_EXPIRE_BUCKETS     4u  /* buckets the active expiry examines per applied entry */
#define SM_SESSION_BUCKETS    64u /* the first bucket array (beyond the inline bucket) */

static const char err_wrongtype[] =
    "WRONGTYPE Operation against a key holding the wrong kind of value";
static const char err_notint[] = "ERR value is not an integer or out of range";
static const char err_syntax[] = "ERR syntax error";
static const char err_too_large[] = "ERR reply too large to replay";
static const char err_not_kept[] = "ERR request already applied; reply not kept";

/* A command's arguments. */
struct args {
    uint32_t argc;
    const uint8_t *const *argv;
    const uint32_t *argl;
};

void sm_limits_default(struct sm_limits *l)
{
    l->sessions_max = SM_SESSIONS_MAX_DEFAULT;
    l->session_reply_max = SM_SESSION_REPLY_MAX_DEFAULT;
    l->reply_limit = SM_REPLY_LIMIT_DEFAULT;
    l->pel_max = CG_PEL_MAX;
}

/* ---- sessions -------------------------------------------------------------------------- */

static uint64_t session_hash(uint64_t client_id)
{
    return XXH3_64bits(&client_id, sizeof(client_id));
}

static uint64_t session_bucket(const struct sm *sm, uint64_t client_id)
{
    return session_hash(client_id) & sm->session_mask;
}

struct session *session_find(const struct sm *sm, uint64_t client_id)
{
    struct session *s = sm->sessions[session_bucket(sm, client_id)];
    while (s != NULL && s->client_id != client_id) {
        s = s->hnext;
    }
    return s;
}

/* Marks s as the most recently used session. */
static void session_touch(struct sm *sm, struct session *s)
{
    s->used = ++sm->use_clock;
}

static void session_grow(struct sm *sm)
{
    bool inline_table = sm->sessions == &sm->session0;
    uint64_t buckets = inline_table ? SM_SESSION_BUCKETS : (sm->session_mask + 1) * 2;
    struct session **nb = calloc((size_t)buckets, sizeof(*nb));
    if (nb == NULL) {
        return; /* longer chains; nothing observable */
    }
    for (uint64_t b = 0; b <= sm->session_mask; b++) {
        struct session *s = sm->sessions[b];
        while (s != NULL) {
            struct session *next = s->hnext;
            uint64_t nbk = XXH3_64bits(&s->client_id, sizeof(s->client_id)) & (buckets - 1);
            s->hnext = nb[nbk];
            nb[nbk] = s;
            s = next;
        }
    }
    if (!inline_table) {
        free(sm->sessions);
    }
    sm->sessions = nb;
    sm->session_mask = buckets - 1;
}

/* Links a new session as the most recently used one. */
void session_insert(struct sm *sm, struct session *s)
{
    uint64_t b = session_bucket(sm, s->client_id);
    s->hnext = sm->sessions[b];
    sm->sessions[b] = s;
    session_touch(sm, s);
    sm->session_count++;
    if (sm->session_count > sm->session_mask + 1) {
        session_grow(sm);
    }
}

/* The kept reply for seq, or NULL. */
static const struct kept_reply *kept_find(const struct session *s, uint64_t seq)
{
    uint32_t a = s->lo;
    uint32_t b = s->lo + s->n;
    while (a < b) {
        uint32_t m = a + (b - a) / 2;
        if (s->kept[m].seq < seq) {
            a = m + 1;
        } else {
            b = m;
        }
    }
    return a < s->lo + s->n && s->kept[a].seq == seq ? &s->kept[a] : NULL;
}

/* Forgets the lowest kept reply. */
static void kept_drop_lowest(struct session *s)
{
    RR_ASSERT(s->n > 0);
    kept_release(&s->kept[s->lo]);
    s->lo++;
    s->n--;
    if (s->n == 0) {
        s->lo = 0;
    }
}

void session_free_kept(struct session *s)
{
    for (uint32_t i = s->lo; i < s->lo + s->n; i++) {
        kept_release(&s->kept[i]);
    }
    free(s->kept);
    s->kept = NULL;
    s->lo = 0;
    s->n = 0;
    s->cap = 0;
}

/* Raises the floor to f (if higher) and drops the replies below it. */
static void session_raise_floor(struct session *s, uint64_t f)
{
    if (f <= s->floor) {
        return;
    }
    s->floor = f;
    while (s->n > 0 && s->kept[s->lo].seq < f) {
        kept_drop_lowest(s);
    }
}

/* Makes room for one more kept reply (nothing observable changes). 0 or RR_ENOMEM. */
static int session_reserve(struct session *s)
{
    if (s->lo + s->n < s->cap) {
        return 0;
    }
    if (s->lo > 0) {
        memmove(s->kept, s->kept + s->lo, (size_t)s->n * sizeof(*s->kept));
        s->lo = 0;
        return 0;
    }
    uint32_t cap = s->cap == 0 ? SM_KEPT_MIN : s->cap * 2;
    if (cap > SM_SESSION_REPLIES_MAX + 1) {
        cap = SM_SESSION_REPLIES_MAX + 1;
    }
    RR_ASSERT(cap > s->n);
    struct kept_reply *k = realloc(s->kept, (size_t)cap * sizeof(*k));
    if (k == NULL) {
        return RR_ENOMEM;
    }
    s->kept = k;
    s->cap = cap;
    return 0;
}

void session_remove(struct sm *sm, struct session *s)
{
    struct session **pp = &sm->sessions[session_bucket(sm, s->client_id)];
    while (*pp != s) {
        RR_ASSERT(*pp != NULL);
        pp = &(*pp)->hnext;
    }
    *pp = s->hnext;
    sm->session_count--;
    session_free_kept(s);
    free(s);
}

int session_evict_reserve(struct sm *sm)
{
    if (sm->evict_buf == NULL) {
        sm->evict_buf = malloc(((size_t)sm->limits.sessions_max + 1) * sizeof(*sm->evict_buf));
        if (sm->evict_buf == NULL) {
            return RR_ENOMEM;
        }
    }
    return 0;
}

void session_evict(struct sm *sm)
{
    uint32_t max = sm->limits.sessions_max;
    if (sm->session_count <= max) {
        return;
    }
    RR_ASSERT(sm->evict_buf != NULL && sm->session_count <= max + 1);
    sessions_by_age(sm, sm->evict_buf);
    uint32_t keep = max - max / 16; /* >= 1, as max >= 1 */
    uint32_t forget = sm->session_count - keep;
    for (uint32_t i = 0; i < forget; i++) {
        session_remove(sm, sm->evict_buf[i]);
    }
}

static int session_age_cmp(const void *a, const void *b)
{
    const struct session *x = *(const struct session *const *)a;
    const struct session *y = *(const struct session *const *)b;
    return (x->used > y->used) - (x->used < y->used);
}

void sessions_by_age(const struct sm *sm, struct session **out)
{
    uint32_t n = 0;
    for (uint64_t b = 0; b <= sm->session_mask; b++) {
        for (struct session *s = sm->sessions[b]; s != NULL; s = s->hnext) {
            out[n++] = s;
        }
    }
    RR_ASSERT(n == sm->session_count);
    qsort(out, n, sizeof(*out), session_age_cmp);
}

struct session **sessions_by_age_new(const struct sm *sm)
{
    struct session **out = malloc(((size_t)sm->session_count + 1) * sizeof(*out));
    if (out != NULL) {
        sessions_by_age(sm, out);
    }
    return out;
}

/* The session used least recently after `after` (NULL: the least recently used of all). */
static const struct session *session_next_by_age(const struct sm *sm, const struct session *after)
{
    uint64_t floor = after != NULL ? after->used : 0;
    const struct session *best = NULL;
    for (uint64_t b = 0; b <= sm->session_mask; b++) {
        for (const struct session *s = sm->sessions[b]; s != NULL; s = s->hnext) {
            if (s->used > floor && (best == NULL || s->used < best->used)) {
                best = s;
            }
        }
    }
    RR_ASSERT(best != NULL);
    return best;
}

static void sessions_free(struct sm *sm)
{
    for (uint64_t b = 0; b <= sm->session_mask; b++) {
        while (sm->sessions[b] != NULL) {
            session_remove(sm, sm->sessions[b]);
        }
    }
    free(sm->evict_buf);
    sm->evict_buf = NULL;
    if (sm->sessions != &sm->session0) {
        free(sm->sessions);
    }
    sm->sessions = NULL;
}

/* ---- create / destroy ------------------------------------------------------------------ */

int sm_create(struct sm **out, const struct sm_limits *l, struct reply *scratch)
{
    struct sm *sm = calloc(1, sizeof(*sm));
    if (sm == NULL) {
        return RR_ENOMEM;
    }
    if (l != NULL) {
        sm->limits = *l;
    } else {
        sm_limits_default(&sm->limits);
    }
    RR_ASSERT(sm->limits.sessions_max >= 1);
    RR_ASSERT(sm->limits.session_reply_max >= 1);
    RR_ASSERT(sm->limits.pel_max >= 1 && sm->limits.pel_max <= CG_PEL_MAX);
    sm->scratch = scratch;
    if (scratch == NULL) {
        sm->scratch = malloc(sizeof(*sm->scratch));
        if (sm->scratch == NULL) {
            free(sm);
            return RR_ENOMEM;
        }
        reply_init(sm->scratch, sm->limits.reply_limit);
        sm->own_scratch = true;
    }
    sm->sessions = &sm->session0;
    sm->session_mask = 0;
    (void)ks_init(&sm->ks); /* allocates nothing */
    *out = sm;
    return 0;
}

void sm_destroy(struct sm *sm)
{
    if (sm == NULL) {
        return;
    }
    sm_snap_free(sm->snap);
    ks_free(&sm->ks);
    sessions_free(sm);
    if (sm->own_scratch) {
        reply_free(sm->scratch);
        free(sm->scratch);
    }
    free(sm);
}

int64_t sm_clock(const struct sm *sm)
{
    return sm->clock;
}

raft_index sm_applied_index(const struct sm *sm)
{
    return sm->applied;
}

void sm_apply_empty(struct sm *sm, raft_index index)
{
    RR_ASSERT(index > sm->applied);
    sm->applied = index;
}

static int64_t read_clock(const struct sm *sm, int64_t now_ms)
{
    return now_ms > sm->clock ? now_ms : sm->clock;
}

/* ---- entry codec ----------------------------------------------------------------------- */

size_t sm_entry_size(uint32_t argc, const uint32_t argl[])
{
    size_t n = SM_ENTRY_HEADER_BYTES;
    for (uint32_t i = 0; i < argc; i++) {
        n += 4 + (size_t)argl[i];
    }
    return n;
}

static uint8_t *put_le(uint8_t *p, uint64_t v, unsigned bytes)
{
    for (unsigned i = 0; i < bytes; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
    return p + bytes;
}

static uint64_t get_le(const uint8_t *p, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

size_t sm_entry_encode(const struct sm_entry_header *h,
                       uint32_t argc,
                       const uint8_t *const argv[],
                       const uint32_t argl[],
                       uint8_t *out,
                       size_t cap)
{
    RR_ASSERT(argc >= 1);
    size_t need = sm_entry_size(argc, argl);
    if (need > cap) {
        return 0;
    }
    uint8_t *p = out;
    *p++ = SM_ENTRY_COMMAND;
    p = put_le(p, h->client_id, 8);
    p = put_le(p, h->seq, 8);
    p = put_le(p, h->first_unacked, 8);
    p = put_le(p, (uint64_t)h->time_ms, 8);
    p = put_le(p, argc, 4);
    for (uint32_t i = 0; i < argc; i++) {
        p = put_le(p, argl[i], 4);
        if (argl[i] > 0) {
            memcpy(p, argv[i], argl[i]);
        }
        p += argl[i];
    }
    RR_ASSERT((size_t)(p - out) == need);
    return need;
}

size_t sm_entry_encode_noop(int64_t time_ms, uint8_t *out, size_t cap)
{
    if (cap < SM_ENTRY_NOOP_BYTES) {
        return 0;
    }
    out[0] = SM_ENTRY_NOOP;
    put_le(out + 1, (uint64_t)time_ms, 8);
    return SM_ENTRY_NOOP_BYTES;
}

/* Checks a command entry's framing and counts; 0 or RR_ECORRUPT. */
static int entry_check(const uint8_t *e, size_t len, struct sm_entry_header *h, uint32_t *argc)
{
    if (len < SM_ENTRY_HEADER_BYTES) {
        return RR_ECORRUPT;
    }
    h->client_id = get_le(e + 1, 8);
    h->seq = get_le(e + 9, 8);
    h->first_unacked = get_le(e + 17, 8);
    h->time_ms = (int64_t)get_le(e + 25, 8);
    *argc = (uint32_t)get_le(e + 33, 4);
    if (h->first_unacked > h->seq) {
        return RR_ECORRUPT;
    }
    if (*argc == 0 || *argc > (len - SM_ENTRY_HEADER_BYTES) / 4) {
        return RR_ECORRUPT;
    }
    size_t off = SM_ENTRY_HEADER_BYTES;
    for (uint32_t i = 0; i < *argc; i++) {
        if (len - off < 4) {
            return RR_ECORRUPT;
        }
        uint32_t n = (uint32_t)get_le(e + off, 4);
        off += 4;
        if (n > len - off) {
            return RR_ECORRUPT;
        }
        off += n;
    }
    return off == len ? 0 : RR_ECORRUPT;
}

/* Fills argv/argl from a checked entry. */
static void entry_args(const uint8_t *e, uint32_t argc, const uint8_t **argv, uint32_t *argl)
{
    size_t off = SM_ENTRY_HEADER_BYTES;
    for (uint32_t i = 0; i < argc; i++) {
        argl[i] = (uint32_t)get_le(e + off, 4);
        argv[i] = e + off + 4;
        off += 4 + (size_t)argl[i];
    }
}

/* ---- key helpers ----------------------------------------------------------------------- */

/* The live object for a write: an expired one is deleted first (deterministically: the
 * clock is the entry's). */
static struct obj *lookup_write(struct sm *sm, const uint8_t *key, size_t len)
{
    struct obj *o = ks_find(&sm->ks, key, len);
    if (o != NULL) {
        ks_touch(&sm->ks, o); /* a serialization in progress takes it as it was first */
    }
    if (o != NULL && ks_expired(o, sm->clock)) {
        ks_delete(&sm->ks, o);
        return NULL;
    }
    return o;
}

/* A prepared string write: everything allocated, nothing changed yet. */
struct put {
    struct obj *fresh; /* a new object when the key is absent */
    uint8_t *val;      /* the new value buffer when the key exists */
    size_t val_len;
};

/* Allocates what setting key to a val_len-byte value needs. The caller writes the value
 * into put_buf() and then calls put_commit, or put_abort. */
static int put_prepare(struct sm *sm, const uint8_t *key, size_t len, size_t val_len, struct put *p)
{
    p->fresh = NULL;
    p->val = NULL;
    p->val_len = val_len;
    if (lookup_write(sm, key, len) != NULL) {
        p->val = malloc(val_len > 0 ? val_len : 1);
        return p->val == NULL ? RR_ENOMEM : 0;
    }
    p->fresh = ks_obj_new_hashed(key, len, val_len, ks_key_hash(&sm->ks, key, len));
    return p->fresh == NULL ? RR_ENOMEM : 0;
}

static uint8_t *put_buf(struct put *p)
{
    return p->fresh != NULL ? p->fresh->val : p->val;
}

static void put_abort(struct put *p)
{
    ks_obj_free(p->fresh);
    free(p->val);
    p->fresh = NULL;
    p->val = NULL;
}

/* Stores the prepared value. keep_ttl: an existing key keeps its expiry (else it loses it).
 * A key that appeared since put_prepare (MSET naming it twice) is overwritten in place. */
static struct obj *
put_commit(struct sm *sm, const uint8_t *key, size_t len, struct put *p, bool keep_ttl)
{
    struct obj *o = ks_find(&sm->ks, key, len);
    if (o == NULL) {
        RR_ASSERT(p->fresh != NULL);
        o = p->fresh;
        p->fresh = NULL;
        ks_insert(&sm->ks, o);
        free(p->val);
        p->val = NULL;
        return o;
    }
    if (p->val == NULL) {
        /* Prepared as new, but an earlier part of the same command created the key: the
         * prepared object (whose value may lie inside it) takes the existing one's place. */
        RR_ASSERT(p->fresh != NULL);
        bool had_ttl = keep_ttl && o->has_expire;
        int64_t at = o->expire_at;
        ks_delete(&sm->ks, o);
        o = p->fresh;
        p->fresh = NULL;
        ks_insert(&sm->ks, o);
        if (had_ttl) {
            ks_set_expire(&sm->ks, o, true, at);
        }
        return o;
    }
    if (o->type == OBJ_STREAM) {
        stream_destroy(o->stream);
        o->stream = NULL;
        o->type = OBJ_STRING;
    }
    ks_val_replace(o, p->val, p->val_len);
    p->val = NULL;
    if (!keep_ttl) {
        ks_set_expire(&sm->ks, o, false, 0);
    }
    return o;
}

/* Sets key to the given bytes (SET, GETSET, SETNX, MSET's single keys). */
static int set_string(struct sm *sm,
                      const uint8_t *key,
                      size_t len,
                      const uint8_t *val,
                      size_t val_len,
                      bool keep_ttl,
                      struct obj **out)
{
    struct put p;
    if (put_prepare(sm, key, len, val_len, &p) != 0) {
        return RR_ENOMEM;
    }
    if (val_len > 0) {
        memcpy(put_buf(&p), val, val_len);
    }
    struct obj *o = put_commit(sm, key, len, &p, keep_ttl);
    if (out != NULL) {
        *out = o;
    }
    return 0;
}

static void reply_string(struct reply *r, const struct obj *o)
{
    reply_bulk(r, o->val, o->val_len);
}

/* ---- write commands: strings and keys -------------------------------------------------- */

enum set_flags {
    SET_NX = 1 << 0,
    SET_XX = 1 << 1,
    SET_GET = 1 << 2,
    SET_KEEPTTL = 1 << 3,
    SET_EX = 1 << 4,
    SET_PX = 1 << 5,
    SET_EXAT = 1 << 6,
    SET_PXAT = 1 << 7,
};

#define SET_ANY_EXPIRE (SET_EX | SET_PX | SET_EXAT | SET_PXAT)

/* parseExtendedStringArgumentsOrReply for SET; *expire_arg: index of the time (0: none). */
static int set_parse(const struct args *a, unsigned *flags, uint32_t *expire_arg, struct reply *r)
{
    static const struct {
        const char *word;
        unsigned flag;
        unsigned excludes;
    } opts[] = {
        {"nx", SET_NX, SET_XX},
        {"xx", SET_XX, SET_NX},
        {"get", SET_GET, 0},
        {"keepttl", SET_KEEPTTL, SET_ANY_EXPIRE},
        {"ex", SET_EX, SET_KEEPTTL | SET_PX | SET_EXAT | SET_PXAT},
        {"px", SET_PX, SET_KEEPTTL | SET_EX | SET_EXAT | SET_PXAT},
        {"exat", SET_EXAT, SET_KEEPTTL | SET_EX | SET_PX | SET_PXAT},
        {"pxat", SET_PXAT, SET_KEEPTTL | SET_EX | SET_PX | SET_EXAT},
    };
    *flags = 0;
    *expire_arg = 0;
    for (uint32_t j = 3; j < a->argc; j++) {
        bool matched = false;
        for (size_t k = 0; k < sizeof(opts) / sizeof(opts[0]); k++) {
            if (!util_arg_is(a->argv[j], a->argl[j], opts[k].word) ||
                (*flags & opts[k].excludes) != 0) {
                continue;
            }
            bool timed = (opts[k].flag & SET_ANY_EXPIRE) != 0;
            if (timed && j == a->argc - 1) {
                continue;
            }
            *flags |= opts[k].flag;
            if (timed) {
                *expire_arg = ++j;
            }
            matched = true;
            break;
        }
        if (!matched) {
            reply_error(r, err_syntax);
            return RR_EINVAL;
        }
    }
    return 0;
}

/* getExpireMillisecondsOrReply: the absolute expiry in ms. */
static int set_expire_ms(struct sm *sm,
                         const struct args *a,
                         unsigned flags,
                         uint32_t at,
                         int64_t *when,
                         struct reply *r)
{
    int64_t v;
    if (!util_parse_i64(a->argv[at], a->argl[at], &v)) {
        reply_error(r, err_notint);
        return RR_EINVAL;
    }
    bool seconds = (flags & (SET_EX | SET_EXAT)) != 0;
    if (v <= 0 || (seconds && v > INT64_MAX / 1000)) {
        goto invalid;
    }
    if (seconds) {
        v *= 1000;
    }
    if ((flags & (SET_EX | SET_PX)) != 0) {
        if (v > INT64_MAX - sm->clock) {
            goto invalid;
        }
        v += sm->clock;
    }
    if (v <= 0) {
        goto invalid;
    }
    *when = v;
    return 0;
invalid:
    reply_error(r, "ERR invalid expire time in 'set' command");
    return RR_EINVAL;
}

static int cmd_set(struct sm *sm, const struct args *a, struct reply *r)
{
    unsigned flags;
    uint32_t at;
    int64_t when = 0;
    if (set_parse(a, &flags, &at, r) != 0 ||
        (at != 0 && set_expire_ms(sm, a, flags, at, &when, r) != 0)) {
        return 0;
    }
    const uint8_t *key = a->argv[1];
    size_t klen = a->argl[1];
    struct obj *o = lookup_write(sm, key, klen);
    if ((flags & SET_GET) != 0) {
        if (o != NULL && o->type != OBJ_STRING) {
            reply_error(r, err_wrongtype);
            return 0;
        }
        if (o != NULL) {
            reply_string(r, o);
        } else {
            reply_null(r);
        }
    }
    if (((flags & SET_NX) != 0 && o != NULL) || ((flags & SET_XX) != 0 && o == NULL)) {
        if ((flags & SET_GET) == 0) {
            reply_null(r);
        }
        return 0;
    }
    if (set_string(sm, key, klen, a->argv[2], a->argl[2], (flags & SET_KEEPTTL) != 0, &o) != 0) {
        return RR_ENOMEM;
    }
    if (at != 0) {
        ks_set_expire(&sm->ks, o, true, when);
    }
    if ((flags & SET_GET) == 0) {
        reply_simple(r, "OK");
    }
    return 0;
}

static int cmd_setnx(struct sm *sm, const struct args *a, struct reply *r)
{
    if (lookup_write(sm, a->argv[1], a->argl[1]) != NULL) {
        reply_int(r, 0);
        return 0;
    }
    if (set_string(sm, a->argv[1], a->argl[1], a->argv[2], a->argl[2], false, NULL) != 0) {
        return RR_ENOMEM;
    }
    reply_int(r, 1);
    return 0;
}

/* GET's reply for GETSET / GETDEL; false (error written) on a wrong type. */
static bool reply_get(struct reply *r, const struct obj *o)
{
    if (o == NULL) {
        reply_null(r);
        return true;
    }
    if (o->type != OBJ_STRING) {
        reply_error(r, err_wrongtype);
        return false;
    }
    reply_string(r, o);
    return true;
}

static int cmd_getset(struct sm *sm, const struct args *a, struct reply *r)
{
    struct obj *o = lookup_write(sm, a->argv[1], a->argl[1]);
    if (o != NULL && o->type != OBJ_STRING) {
        reply_error(r, err_wrongtype);
        return 0;
    }
    struct put p;
    if (put_prepare(sm, a->argv[1], a->argl[1], a->argl[2], &p) != 0) {
        return RR_ENOMEM;
    }
    reply_get(r, o); /* before the old value is freed */
    if (a->argl[2] > 0) {
        memcpy(put_buf(&p), a->argv[2], a->argl[2]);
    }
    put_commit(sm, a->argv[1], a->argl[1], &p, false);
    return 0;
}

static int cmd_getdel(struct sm *sm, const struct args *a, struct reply *r)
{
    struct obj *o = lookup_write(sm, a->argv[1], a->argl[1]);
    if (reply_get(r, o) && o != NULL) {
        ks_delete(&sm->ks, o);
    }
    return 0;
}

static int cmd_del(struct sm *sm, const struct args *a, struct reply *r)
{
    int64_t deleted = 0;
    for (uint32_t i = 1; i < a->argc; i++) {
        struct obj *o = lookup_write(sm, a->argv[i], a->argl[i]);
        if (o != NULL) {
            ks_delete(&sm->ks, o);
            deleted++;
        }
    }
    reply_int(r, deleted);
    return 0;
}

static int cmd_mset(struct sm *sm, const struct args *a, struct reply *r)
{
    if (a->argc % 2 == 0) {
        reply_error(r, "ERR wrong number of arguments for 'mset' command");
        return 0;
    }
    uint32_t pairs = (a->argc - 1) / 2;
    struct put stack[SM_ARGV_STACK];
    struct put *puts = pairs <= SM_ARGV_STACK ? stack : calloc(pairs, sizeof(*puts));
    if (puts == NULL) {
        return RR_ENOMEM;
    }
    /* All allocations first: MSET either sets every key or changes nothing. */
    uint32_t ready = 0;
    int rc = 0;
    for (; ready < pairs; ready++) {
        uint32_t k = 1 + 2 * ready;
        rc = put_prepare(sm, a->argv[k], a->argl[k], a->argl[k + 1], &puts[ready]);
        if (rc != 0) {
            break;
        }
        if (a->argl[k + 1] > 0) {
            memcpy(put_buf(&puts[ready]), a->argv[k + 1], a->argl[k + 1]);
        }
    }
    for (uint32_t i = 0; i < ready; i++) {
        if (rc == 0) {
            put_commit(sm, a->argv[1 + 2 * i], a->argl[1 + 2 * i], &puts[i], false);
        } else {
            put_abort(&puts[i]);
        }
    }
    if (puts != stack) {
        free(puts);
    }
    if (rc == 0) {
        reply_simple(r, "OK");
    }
    return rc;
}

static int incr_by(struct sm *sm, const struct args *a, int64_t incr, struct reply *r)
{
    struct obj *o = lookup_write(sm, a->argv[1], a->argl[1]);
    if (o != NULL && o->type != OBJ_STRING) {
        reply_error(r, err_wrongtype);
        return 0;
    }
    int64_t v = 0;
    if (o != NULL && !util_parse_i64(o->val, o->val_len, &v)) {
        reply_error(r, err_notint);
        return 0;
    }
    if ((incr < 0 && v < 0 && incr < INT64_MIN - v) ||
        (incr > 0 && v > 0 && incr > INT64_MAX - v)) {
        reply_error(r, "ERR increment or decrement would overflow");
        return 0;
    }
    v += incr;
    char buf[24];
    size_t n = util_fmt_i64(buf, v);
    /* INCR keeps the key's TTL (Redis overwrites the value only). */
    if (set_string(sm, a->argv[1], a->argl[1], (const uint8_t *)buf, n, true, NULL) != 0) {
        return RR_ENOMEM;
    }
    reply_int(r, v);
    return 0;
}

static int cmd_incr(struct sm *sm, const struct args *a, uint16_t id, struct reply *r)
{
    int64_t incr = id == CMD_ID_DECR ? -1 : 1;
    if (id == CMD_ID_INCRBY || id == CMD_ID_DECRBY) {
        if (!util_parse_i64(a->argv[2], a->argl[2], &incr)) {
            reply_error(r, err_notint);
            return 0;
        }
        if (id == CMD_ID_DECRBY) {
            if (incr == INT64_MIN) {
                reply_error(r, "ERR decrement would overflow");
                return 0;
            }
            incr = -incr;
        }
    }
    return incr_by(sm, a, incr, r);
}

static int cmd_append(struct sm *sm, const struct args *a, struct reply *r)
{
    struct obj *o = lookup_write(sm, a->argv[1], a->argl[1]);
    if (o == NULL) {
        if (set_string(sm, a->argv[1], a->argl[1], a->argv[2], a->argl[2], false, NULL) != 0) {
            return RR_ENOMEM;
        }
        reply_int(r, (int64_t)a->argl[2]);
        return 0;
    }
    if (o->type != OBJ_STRING) {
        reply_error(r, err_wrongtype);
        return 0;
    }
    size_t total = o->val_len + a->argl[2];
    if (total > SM_STRING_MAX) {
        reply_error(r, "ERR string exceeds maximum allowed size (proto-max-bulk-len)");
        return 0;
    }
    if (a->argl[2] > 0) {
        uint8_t *v = o->val_inline ? malloc(total) : realloc(o->val, total);
        if (v == NULL) {
            return RR_ENOMEM;
        }
        if (o->val_inline) {
            memcpy(v, o->val, o->val_len);
            o->val_inline = false; /* the inline bytes stay unused until the key goes */
        }
        memcpy(v + o->val_len, a->argv[2], a->argl[2]);
        o->val = v;
        o->val_len = total;
    }
    reply_int(r, (int64_t)total);
    return 0;
}

enum expire_flags { EXP_NX = 1, EXP_XX = 2, EXP_GT = 4, EXP_LT = 8 };

static int expire_parse(const struct args *a, unsigned *flags, struct reply *r)
{
    *flags = 0;
    for (uint32_t j = 3; j < a->argc; j++) {
        const uint8_t *o = a->argv[j];
        uint32_t n = a->argl[j];
        if (util_arg_is(o, n, "nx")) {
            *flags |= EXP_NX;
        } else if (util_arg_is(o, n, "xx")) {
            *flags |= EXP_XX;
        } else if (util_arg_is(o, n, "gt")) {
            *flags |= EXP_GT;
        } else if (util_arg_is(o, n, "lt")) {
            *flags |= EXP_LT;
        } else {
            /* Redis prints the option as a C string: it ends at a NUL byte. */
            const uint8_t *nul = memchr(o, 0, n);
            int shown = (int)(nul != NULL ? (size_t)(nul - o) : (n > 1024 ? 1024 : n));
            reply_errorf(r, "ERR Unsupported option %.*s", shown, (const char *)o);
            return RR_EINVAL;
        }
    }
    if ((*flags & EXP_NX) != 0 && (*flags & (EXP_XX | EXP_GT | EXP_LT)) != 0) {
        reply_error(r, "ERR NX and XX, GT or LT options at the same time are not compatible");
        return RR_EINVAL;
    }
    if ((*flags & EXP_GT) != 0 && (*flags & EXP_LT) != 0) {
        reply_error(r, "ERR GT and LT options at the same time are not compatible");
        return RR_EINVAL;
    }
    return 0;
}

/* False when NX/XX/GT/LT say no (expireGenericCommand). */
static bool expire_allowed(const struct obj *o, unsigned flags, int64_t when)
{
    bool has = o->has_expire;
    if ((flags & EXP_NX) != 0 && has) {
        return false;
    }
    if ((flags & EXP_XX) != 0 && !has) {
        return false;
    }
    if ((flags & EXP_GT) != 0 && (!has || when <= o->expire_at)) {
        return false;
    }
    if ((flags & EXP_LT) != 0 && has && when >= o->expire_at) {
        return false;
    }
    return true;
}

static int
cmd_expire(struct sm *sm, const struct args *a, const struct cmd_spec *c, struct reply *r)
{
    unsigned flags;
    if (expire_parse(a, &flags, r) != 0) {
        return 0;
    }
    int64_t when;
    if (!util_parse_i64(a->argv[2], a->argl[2], &when)) {
        reply_error(r, err_notint);
        return 0;
    }
    bool seconds = c->id == CMD_ID_EXPIRE || c->id == CMD_ID_EXPIREAT;
    int64_t base = c->id == CMD_ID_EXPIRE || c->id == CMD_ID_PEXPIRE ? sm->clock : 0;
    if (seconds) {
        if (when > INT64_MAX / 1000 || when < INT64_MIN / 1000) {
            goto invalid;
        }
        when *= 1000;
    }
    if (when > INT64_MAX - base) {
        goto invalid;
    }
    when += base;
    struct obj *o = lookup_write(sm, a->argv[1], a->argl[1]);
    if (o == NULL || !expire_allowed(o, flags, when)) {
        reply_int(r, 0);
        return 0;
    }
    if (when <= sm->clock) {
        ks_delete(&sm->ks, o);
    } else {
        ks_set_expire(&sm->ks, o, true, when);
    }
    reply_int(r, 1);
    return 0;
invalid:
    reply_errorf(r, "ERR invalid expire time in '%s' command", c->name);
    return 0;
}

static int cmd_persist(struct sm *sm, const struct args *a, struct reply *r)
{
    struct obj *o = lookup_write(sm, a->argv[1], a->argl[1]);
    if (o == NULL || !o->has_expire) {
        reply_int(r, 0);
        return 0;
    }
    ks_set_expire(&sm->ks, o, false, 0);
    reply_int(r, 1);
    return 0;
}

static int cmd_flushdb(struct sm *sm, const struct args *a, struct reply *r)
{
    if (a->argc > 2 || (a->argc == 2 && !util_arg_is(a->argv[1], a->argl[1], "async") &&
                        !util_arg_is(a->argv[1], a->argl[1], "sync"))) {
        reply_error(r, err_syntax);
        return 0;
    }
    if (sm->snap != NULL) {
        sm_snap_detach_keys(sm); /* the serialization in progress still needs them */
    } else {
        ks_clear(&sm->ks);
    }
    reply_simple(r, "OK");
    return 0;
}

/* ---- write commands: streams ----------------------------------------------------------- */

/* A new, unlinked key holding an empty stream; NULL when out of memory. */
static struct obj *stream_obj_new(const uint8_t *key, size_t len)
{
    struct obj *o = ks_obj_new(key, len, 0);
    struct stream *s = o != NULL ? stream_create() : NULL;
    if (s == NULL) {
        ks_obj_free(o);
        return NULL;
    }
    ks_val_drop(o);
    o->type = OBJ_STREAM;
    o->stream = s;
    return o;
}

static int cmd_xadd(struct sm *sm, const struct args *a, struct reply *r)
{
    struct stream_trim_args t;
    if (stream_parse_add_or_trim(a->argc, a->argv, a->argl, true, &t, r) != 0) {
        return 0;
    }
    struct obj *o = lookup_write(sm, a->argv[1], a->argl[1]);
    if (o != NULL && o->type != OBJ_STREAM) {
        reply_error(r, err_wrongtype);
        return 0;
    }
    if (o == NULL && t.no_mkstream) {
        reply_null(r);
        return 0;
    }
    struct obj *fresh = NULL;
    if (o == NULL) {
        /* A new, empty stream: the only ID error (0-0) was refused by the parser. */
        fresh = stream_obj_new(a->argv[1], a->argl[1]);
        if (fresh == NULL) {
            return RR_ENOMEM;
        }
        o = fresh;
    }
    struct stream_id id;
    if (stream_next_id(o->stream, &t, sm->clock, &id, r) != 0) {
        ks_obj_free(fresh);
        return 0;
    }
    if (stream_append(o->stream, id, a->argc, a->argv, a->argl, t.field_pos, &t) != 0) {
        ks_obj_free(fresh);
        return RR_ENOMEM;
    }
    if (fresh != NULL) {
        ks_insert(&sm->ks, fresh);
    }
    stream_reply_id(r, id);
    return 0;
}

static int cmd_xtrim(struct sm *sm, const struct args *a, struct reply *r)
{
    struct stream_trim_args t;
    if (stream_parse_add_or_trim(a->argc, a->argv, a->argl, false, &t, r) != 0) {
        return 0;
    }
    struct obj *o = lookup_write(sm, a->argv[1], a->argl[1]);
    if (o == NULL) {
        reply_int(r, 0);
    } else if (o->type != OBJ_STREAM) {
        reply_error(r, err_wrongtype);
    } else {
        reply_int(r, (int64_t)stream_trim(o->stream, &t));
    }
    return 0;
}

static int cmd_xdel(struct sm *sm, const struct args *a, struct reply *r)
{
    struct obj *o = lookup_write(sm, a->argv[1], a->argl[1]);
    if (o == NULL) {
        reply_int(r, 0);
        return 0;
    }
    if (o->type != OBJ_STREAM) {
        reply_error(r, err_wrongtype);
        return 0;
    }
    /* Every ID is checked before any is deleted, as Redis does. */
    for (uint32_t j = 2; j < a->argc; j++) {
        struct stream_id id;
        if (stream_id_parse(a->argv[j], a->argl[j], 0, true, &id, r) != 0) {
            return 0;
        }
    }
    int64_t deleted = 0;
    for (uint32_t j = 2; j < a->argc; j++) {
        struct stream_id id;
        stream_id_parse(a->argv[j], a->argl[j], 0, true, &id, NULL);
        deleted += stream_delete(o->stream, id) ? 1 : 0;
    }
    reply_int(r, deleted);
    return 0;
}

/* ---- consumer groups (cgroup_cmd.c): the keys they see ---------------------------------- */

static struct stream *cg_lookup_write(void *ctx, const uint8_t *key, size_t len, bool *wrong_type)
{
    struct obj *o = lookup_write(ctx, key, len);
    *wrong_type = o != NULL && o->type != OBJ_STREAM;
    return o != NULL && !*wrong_type ? o->stream : NULL;
}

static struct stream *cg_mkstream(void *ctx, const uint8_t *key, size_t len)
{
    struct sm *sm = ctx;
    RR_ASSERT(lookup_write(sm, key, len) == NULL);
    struct obj *o = stream_obj_new(key, len);
    if (o == NULL) {
        return NULL;
    }
    ks_insert(&sm->ks, o);
    return o->stream;
}

static int cmd_cgroup(struct sm *sm, const struct args *a, uint16_t id, struct reply *r)
{
    struct cg_db db = {sm,          sm->clock,          cg_lookup_write,
                       cg_mkstream, sm->limits.pel_max, &sm->blocked};
    return cg_cmd_write(id, &db, a->argc, a->argv, a->argl, r);
}

/* ---- apply ----------------------------------------------------------------------------- */

static int apply_command(struct sm *sm, const struct args *a, struct reply *r)
{
    const struct cmd_spec *c = cmd_resolve(a->argc, a->argv, a->argl, r);
    if (c == NULL) {
        return 0;
    }
    if (c->cls != CMD_WRITE && c->id != CMD_ID_FLUSHDB) {
        reply_errorf(r, "ERR '%s' is not a replicated write command", c->name);
        return 0;
    }
    switch (c->id) {
    case CMD_ID_SET:
        return cmd_set(sm, a, r);
    case CMD_ID_DEL:
    case CMD_ID_UNLINK:
        return cmd_del(sm, a, r);
    case CMD_ID_INCR:
    case CMD_ID_INCRBY:
    case CMD_ID_DECR:
    case CMD_ID_DECRBY:
        return cmd_incr(sm, a, c->id, r);
    case CMD_ID_APPEND:
        return cmd_append(sm, a, r);
    case CMD_ID_MSET:
        return cmd_mset(sm, a, r);
    case CMD_ID_SETNX:
        return cmd_setnx(sm, a, r);
    case CMD_ID_GETSET:
        return cmd_getset(sm, a, r);
    case CMD_ID_GETDEL:
        return cmd_getdel(sm, a, r);
    case CMD_ID_EXPIRE:
    case CMD_ID_PEXPIRE:
    case CMD_ID_EXPIREAT:
    case CMD_ID_PEXPIREAT:
        return cmd_expire(sm, a, c, r);
    case CMD_ID_PERSIST:
        return cmd_persist(sm, a, r);
    case CMD_ID_XADD:
        return cmd_xadd(sm, a, r);
    case CMD_ID_XDEL:
        return cmd_xdel(sm, a, r);
    case CMD_ID_XTRIM:
        return cmd_xtrim(sm, a, r);
    case CMD_ID_FLUSHDB:
        return cmd_flushdb(sm, a, r);
    case CMD_ID_XREADGROUP:
    case CMD_ID_XACK:
    case CMD_ID_XCLAIM:
    case CMD_ID_XAUTOCLAIM:
    case CMD_ID_XGROUP_CREATE:
    case CMD_ID_XGROUP_SETID:
    case CMD_ID_XGROUP_DESTROY:
    case CMD_ID_XGROUP_CREATECONSUMER:
    case CMD_ID_XGROUP_DELCONSUMER:
        return cmd_cgroup(sm, a, c->id, r);
    default:
        RR_ASSERT(false && "a write command without a handler");
        return 0;
    }
}

/* Writes a kept reply again. */
static void reply_kept(const struct kept_reply *k, struct reply *r)
{
    if (k->too_large) {
        reply_error(r, err_too_large);
    } else {
        reply_raw(r, kept_bytes(k), k->len);
    }
}

/* Keeps the reply just built in scratch as seq's (seq >= floor, not kept yet; room reserved
 * by session_reserve), then enforces SM_SESSION_REPLIES_MAX. Cannot fail. */
static void session_keep_reply(struct sm *sm, struct session *s, uint64_t seq)
{
    struct reply *sc = sm->scratch;
    struct kept_reply k = {.seq = seq};
    if (sc->overflow || sc->len > sm->limits.session_reply_max) {
        k.too_large = true;
        if (sc->cap > 2 * (size_t)sm->limits.session_reply_max) {
            reply_free(sc); /* do not keep a huge scratch buffer around */
        }
    } else if (kept_store(&k, sc->buf, (uint32_t)sc->len) != 0) {
        k.data.heap = sc->buf; /* no memory for a copy: take scratch's buffer */
        k.len = (uint32_t)sc->len;
        sc->buf = NULL;
        sc->cap = 0;
    }
    sc->len = 0;
    /* Insert in seq order: usually at the end. */
    RR_ASSERT(s->lo + s->n < s->cap);
    uint32_t end = s->lo + s->n;
    uint32_t i = end;
    while (i > s->lo && s->kept[i - 1].seq > seq) {
        i--;
    }
    RR_ASSERT(i == s->lo || s->kept[i - 1].seq < seq);
    memmove(s->kept + i + 1, s->kept + i, (size_t)(end - i) * sizeof(*s->kept));
    s->kept[i] = k;
    s->n++;
    if (s->n > SM_SESSION_REPLIES_MAX) {
        /* Forget the oldest; refuse it from now on rather than apply it twice. The floor
         * goes just past it (not to the next kept seq): a seq in between was never applied
         * (every applied seq >= floor is kept), so it may still be. */
        uint64_t dropped = s->kept[s->lo].seq;
        kept_drop_lowest(s);
        if (dropped + 1 > s->floor) {
            s->floor = dropped + 1;
        }
    }
}

static int64_t xreadgroup_block_ms(const struct args *a);

/* Applies one decoded command entry with its session bookkeeping. */
static int
apply_entry(struct sm *sm, const struct sm_entry_header *h, const struct args *a, struct reply *r)
{
    struct session *s = NULL;
    struct session *fresh = NULL;
    if (h->client_id != 0) {
        s = session_find(sm, h->client_id);
        if (s != NULL) {
            uint64_t floor = h->first_unacked > s->floor ? h->first_unacked : s->floor;
            const struct kept_reply *k = NULL;
            if (h->seq < floor || (k = kept_find(s, h->seq)) != NULL) {
                /* Not applied: acknowledged (a stale duplicate) or a retry of a kept one. */
                if (k != NULL) {
                    reply_kept(k, r); /* seq >= floor: the raise below keeps it */
                } else {
                    reply_error(r, err_not_kept);
                }
                session_raise_floor(s, floor);
                /* A retry is a use: the client is alive, keep its session. */
                session_touch(sm, s);
                return 0;
            }
        } else {
            fresh = calloc(1, sizeof(*fresh));
            if (fresh == NULL) {
                return RR_ENOMEM;
            }
            fresh->client_id = h->client_id;
            s = fresh;
        }
        if (session_reserve(s) != 0 ||
            (fresh != NULL && sm->session_count >= sm->limits.sessions_max &&
             session_evict_reserve(sm) != 0)) {
            if (fresh != NULL) {
                session_free_kept(fresh);
            }
            free(fresh);
            return RR_ENOMEM;
        }
    }
    int64_t clock_before = sm->clock;
    if (h->time_ms > sm->clock) {
        sm->clock = h->time_ms;
    }
    struct reply *sc = sm->scratch;
    sc->limit = sm->limits.reply_limit; /* it may serve state machines with other limits */
    reply_reset(sc);
    if (apply_command(sm, a, sc) != 0) {
        sm->blocked = false;
        sm->clock = clock_before;
        if (fresh != NULL) {
            session_free_kept(fresh);
            free(fresh);
        }
        reply_reset(sc);
        return RR_ENOMEM;
    }
    reply_raw(r, sc->buf, sc->len);
    if (sc->overflow) {
        r->overflow = true;
    }
    if (sm->blocked) {
        sm->blocked_ms = xreadgroup_block_ms(a);
    }
    if (s != NULL) {
        session_raise_floor(s, h->first_unacked);
        if (!sm->blocked) {
            session_keep_reply(sm, s, h->seq); /* a blocked one is proposed again */
        }
        if (fresh != NULL) {
            session_insert(sm, fresh);
            session_evict(sm);
        } else {
            session_touch(sm, s);
        }
    }
    ks_expire_step(&sm->ks, sm->clock, SM_EXPIRE_BUCKETS);
    return 0;
}

int sm_apply(struct sm *sm, raft_index index, const uint8_t *entry, size_t len, struct reply *r)
{
    return sm_apply_ahead(sm, index, entry, len, NULL, r);
}

void sm_ahead_start(const struct sm *sm, const uint8_t *entry, size_t len, struct sm_ahead *a)
{
    a->entry = NULL;
    /* Only as much of the framing as reaching the first key needs (entry_check is sm_apply's);
     * argv[0], the command name, comes first. */
    if (len < SM_ENTRY_HEADER_BYTES + 8 || entry[0] != SM_ENTRY_COMMAND ||
        get_le(entry + 33, 4) < 2) {
        return;
    }
    size_t off = SM_ENTRY_HEADER_BYTES;
    uint64_t name_len = get_le(entry + off, 4);
    if (name_len > len - off - 8) {
        return;
    }
    off += 4 + name_len;
    uint64_t key_len = get_le(entry + off, 4);
    off += 4;
    if (key_len > len - off) {
        return;
    }
    a->entry = entry;
    a->key = entry + off;
    a->key_len = (uint32_t)key_len;
    a->key_hash = ks_hash(a->key, key_len);
    a->client_id = get_le(entry + 1, 8);
    ks_prefetch_bucket(&sm->ks, a->key_hash);
    if (a->client_id != 0) {
        a->session_hash = session_hash(a->client_id);
        __builtin_prefetch(&sm->sessions[a->session_hash & sm->session_mask]);
    }
}

void sm_ahead_finish(const struct sm *sm, const struct sm_ahead *a)
{
    if (a->entry == NULL) {
        return;
    }
    ks_prefetch_chain(&sm->ks, a->key_hash, a->key_len);
    if (a->client_id != 0) {
        const struct session *s = sm->sessions[a->session_hash & sm->session_mask];
        if (s != NULL) {
            __builtin_prefetch(s);
        }
    }
}

void sm_ahead_deep(const struct sm *sm, const struct sm_ahead *a)
{
    if (a->entry == NULL) {
        return;
    }
    const struct obj *o = sm->ks.buckets[a->key_hash & sm->ks.mask];
    if (o != NULL && o->hash != a->key_hash && o->next != NULL) {
        __builtin_prefetch(o->next); /* the key is further down the chain, or absent */
    }
    if (a->client_id == 0) {
        return;
    }
    const struct session *s = sm->sessions[a->session_hash & sm->session_mask];
    if (s == NULL) {
        return;
    }
    if (s->client_id != a->client_id) {
        if (s->hnext != NULL) {
            __builtin_prefetch(s->hnext);
        }
        return;
    }
    /* kept_find starts in the middle of the replies and session_keep_reply appends after
     * the last. */
    if (s->kept != NULL) {
        __builtin_prefetch(&s->kept[s->lo + s->n / 2]);
        __builtin_prefetch(&s->kept[s->lo + s->n], 1);
    }
}

int sm_apply_ahead(struct sm *sm,
                   raft_index index,
                   const uint8_t *entry,
                   size_t len,
                   const struct sm_ahead *ahead,
                   struct reply *r)
{
    sm->blocked = false;
    if (len == SM_ENTRY_NOOP_BYTES && entry[0] == SM_ENTRY_NOOP) {
        int64_t t = (int64_t)get_le(entry + 1, 8);
        if (t > sm->clock) {
            sm->clock = t;
        }
        sm->applied = index;
        return 0;
    }
    struct sm_entry_header h;
    uint32_t argc = 0;
    if (len == 0 || entry[0] != SM_ENTRY_COMMAND || entry_check(entry, len, &h, &argc) != 0) {
        reply_error(r, "ERR malformed log entry");
        sm->applied = index;
        return 0;
    }
    const uint8_t *argv_stack[SM_ARGV_STACK];
    uint32_t argl_stack[SM_ARGV_STACK];
    const uint8_t **argv = argv_stack;
    uint32_t *argl = argl_stack;
    if (argc > SM_ARGV_STACK) {
        argv = malloc((size_t)argc * sizeof(*argv));
        argl = malloc((size_t)argc * sizeof(*argl));
        if (argv == NULL || argl == NULL) {
            free(argv);
            free(argl);
            return RR_ENOMEM;
        }
    }
    entry_args(entry, argc, argv, argl);
    struct args a = {argc, argv, argl};
    if (argc >= 2) {
        /* Most commands look their first key up more than once: hash it once. */
        bool known = ahead != NULL && ahead->entry == entry && ahead->key == argv[1] &&
                     ahead->key_len == argl[1];
        ks_hint(&sm->ks, argv[1], argl[1], known ? ahead->key_hash : ks_hash(argv[1], argl[1]));
    }
    int rc = apply_entry(sm, &h, &a, r);
    ks_hint(&sm->ks, NULL, 0, 0);
    if (argv != argv_stack) {
        free(argv);
        free(argl);
    }
    if (rc == 0) {
        sm->applied = index;
    }
    return rc;
}

/* ---- reads ----------------------------------------------------------------------------- */

struct cg_read_ctx {
    const struct sm *sm;
    int64_t now; /* expiry decided at this time */
};

static struct stream *cg_lookup_read(void *ctx, const uint8_t *key, size_t len, bool *wrong_type)
{
    const struct cg_read_ctx *rc = ctx;
    struct obj *o = ks_lookup(&rc->sm->ks, key, len, rc->now);
    *wrong_type = o != NULL && o->type != OBJ_STREAM;
    return o != NULL && !*wrong_type ? o->stream : NULL;
}

/* The live object at now, or NULL; a wrong type writes WRONGTYPE and sets *bad. */
static const struct obj *read_typed(const struct sm *sm,
                                    const uint8_t *key,
                                    size_t len,
                                    int64_t now,
                                    uint8_t type,
                                    bool *bad,
                                    struct reply *r)
{
    const struct obj *o = ks_lookup(&sm->ks, key, len, now);
    *bad = o != NULL && o->type != type;
    if (*bad) {
        reply_error(r, err_wrongtype);
    }
    return *bad ? NULL : o;
}

static void read_getrange(const struct sm *sm, int64_t now, const struct args *a, struct reply *r)
{
    int64_t start, end;
    if (!util_parse_i64(a->argv[2], a->argl[2], &start) ||
        !util_parse_i64(a->argv[3], a->argl[3], &end)) {
        reply_error(r, err_notint);
        return;
    }
    bool bad;
    const struct obj *o = read_typed(sm, a->argv[1], a->argl[1], now, OBJ_STRING, &bad, r);
    if (bad) {
        return;
    }
    int64_t len = o != NULL ? (int64_t)o->val_len : 0;
    /* Redis 7.0 getrangeCommand, step by step. */
    if (o == NULL || (start < 0 && end < 0 && start > end)) {
        reply_bulk(r, "", 0);
        return;
    }
    if (start < 0) {
        start = len + start;
    }
    if (end < 0) {
        end = len + end;
    }
    if (start < 0) {
        start = 0;
    }
    if (end < 0) {
        end = 0;
    }
    if (end >= len) {
        end = len - 1;
    }
    if (start > end || len == 0) {
        reply_bulk(r, "", 0);
        return;
    }
    reply_bulk(r, o->val + start, (size_t)(end - start + 1));
}

static void
read_ttl(const struct sm *sm, int64_t now, const struct args *a, uint16_t id, struct reply *r)
{
    const struct obj *o = ks_lookup(&sm->ks, a->argv[1], a->argl[1], now);
    if (o == NULL) {
        reply_int(r, -2);
        return;
    }
    if (!o->has_expire) {
        reply_int(r, -1);
        return;
    }
    bool absolute = id == CMD_ID_EXPIRETIME || id == CMD_ID_PEXPIRETIME;
    bool ms = id == CMD_ID_PTTL || id == CMD_ID_PEXPIRETIME;
    int64_t ttl = absolute ? o->expire_at : o->expire_at - now;
    if (ttl < 0) {
        ttl = 0;
    }
    reply_int(r, ms ? ttl : (ttl + 500) / 1000);
}

/* XRANGE / XREVRANGE (xrangeGenericCommand). */
static void
read_xrange(const struct sm *sm, int64_t now, const struct args *a, bool rev, struct reply *r)
{
    uint32_t si = rev ? 3 : 2;
    uint32_t ei = rev ? 2 : 3;
    struct stream_id start, end;
    if (stream_parse_range_bound(a->argv[si], a->argl[si], false, &start, r) != 0 ||
        stream_parse_range_bound(a->argv[ei], a->argl[ei], true, &end, r) != 0) {
        return;
    }
    int64_t count = -1;
    for (uint32_t j = 4; j < a->argc; j++) {
        if (util_arg_is(a->argv[j], a->argl[j], "count") && j + 1 < a->argc) {
            if (!util_parse_i64(a->argv[j + 1], a->argl[j + 1], &count)) {
                reply_error(r, err_notint);
                return;
            }
            if (count < 0) {
                count = 0;
            }
            j++;
        } else {
            reply_error(r, err_syntax);
            return;
        }
    }
    bool bad;
    const struct obj *o = read_typed(sm, a->argv[1], a->argl[1], now, OBJ_STREAM, &bad, r);
    if (bad) {
        return;
    }
    if (o == NULL) {
        reply_array(r, 0);
    } else if (count == 0) {
        reply_null_array(r);
    } else {
        stream_reply_range(o->stream, start, end, count < 0 ? 0 : (uint64_t)count, rev, r);
    }
}

/* XREAD's options before STREAMS (xreadCommand). Returns the index of the first key, or 0
 * after writing an error. *block_ms is -1 without BLOCK. */
static uint32_t
xread_parse(const struct args *a, int64_t *count, int64_t *block_ms, struct reply *r)
{
    *count = 0;
    *block_ms = -1;
    for (uint32_t i = 1; i < a->argc; i++) {
        uint32_t more = a->argc - i - 1;
        const uint8_t *o = a->argv[i];
        uint32_t n = a->argl[i];
        if (util_arg_is(o, n, "block") && more > 0) {
            int64_t t;
            i++;
            if (!util_parse_i64(a->argv[i], a->argl[i], &t)) {
                reply_error(r, "ERR timeout is not an integer or out of range");
                return 0;
            }
            if (t < 0) {
                reply_error(r, "ERR timeout is negative");
                return 0;
            }
            *block_ms = t;
        } else if (util_arg_is(o, n, "count") && more > 0) {
            i++;
            if (!util_parse_i64(a->argv[i], a->argl[i], count)) {
                reply_error(r, err_notint);
                return 0;
            }
            if (*count < 0) {
                *count = 0;
            }
        } else if (util_arg_is(o, n, "streams") && more > 0) {
            if ((a->argc - i - 1) % 2 != 0) {
                reply_error(r, "ERR Unbalanced XREAD list of streams: for each stream key an "
                               "ID or '$' must be specified.");
                return 0;
            }
            return i + 1;
        } else if (util_arg_is(o, n, "group") && more >= 2) {
            reply_error(r, "ERR The GROUP option is only supported by XREADGROUP. You called "
                           "XREAD instead.");
            return 0;
        } else if (util_arg_is(o, n, "noack")) {
            reply_error(r, "ERR The NOACK option is only supported by XREADGROUP. You called "
                           "XREAD instead.");
            return 0;
        } else {
            reply_error(r, err_syntax);
            return 0;
        }
    }
    reply_error(r, err_syntax);
    return 0;
}

/* Writes XREAD's reply for the streams a->argv[first..first+n) read after ids[]: the
 * streams with entries, or nothing (returns false) if none has any. */
static bool xread_serve(const struct sm *sm,
                        int64_t now,
                        const struct args *a,
                        uint32_t first,
                        uint32_t n,
                        const struct stream_id *ids,
                        int64_t count,
                        struct reply *r)
{
    uint32_t ready = 0;
    for (uint32_t k = 0; k < n; k++) {
        const struct obj *o = ks_lookup(&sm->ks, a->argv[first + k], a->argl[first + k], now);
        ready += o != NULL && o->type == OBJ_STREAM && stream_has_after(o->stream, ids[k]) ? 1 : 0;
    }
    if (ready == 0) {
        return false;
    }
    reply_array(r, ready);
    for (uint32_t k = 0; k < n; k++) {
        const struct obj *o = ks_lookup(&sm->ks, a->argv[first + k], a->argl[first + k], now);
        if (o == NULL || o->type != OBJ_STREAM || !stream_has_after(o->stream, ids[k])) {
            continue;
        }
        struct stream_id start = ids[k];
        stream_id_incr(&start);
        reply_array(r, 2);
        reply_bulk(r, a->argv[first + k], a->argl[first + k]);
        stream_reply_range(o->stream, start, (struct stream_id){UINT64_MAX, UINT64_MAX},
                           (uint64_t)count, false, r);
    }
    return true;
}

/* XREAD. With BLOCK and nothing to return: if wait is NULL, SM_XREAD_BLOCK_ERROR; else
 * returns true with *wait filled (the ids resolved, '$' as the stream's last ID now), no
 * reply written. */
static bool read_xread(const struct sm *sm,
                       int64_t now,
                       const struct args *a,
                       struct sm_xread_wait *wait,
                       struct reply *r)
{
    int64_t count;
    int64_t block_ms;
    uint32_t first = xread_parse(a, &count, &block_ms, r);
    if (first == 0) {
        return false;
    }
    uint32_t n = (a->argc - first) / 2;
    struct stream_id *ids = malloc((size_t)n * sizeof(*ids));
    if (ids == NULL) {
        reply_error(r, "ERR out of memory");
        return false;
    }
    for (uint32_t k = 0; k < n; k++) {
        bool bad;
        const struct obj *o =
            read_typed(sm, a->argv[first + k], a->argl[first + k], now, OBJ_STREAM, &bad, r);
        const uint8_t *idp = a->argv[first + n + k];
        uint32_t idl = a->argl[first + n + k];
        if (bad) {
            free(ids);
            return false;
        }
        if (idl == 1 && idp[0] == '$') {
            ids[k] = o != NULL ? stream_last_id(o->stream) : (struct stream_id){0, 0};
        } else if (idl == 1 && idp[0] == '>') {
            reply_error(r, "ERR The > ID can be specified only when calling XREADGROUP using "
                           "the GROUP <group> <consumer> option.");
            free(ids);
            return false;
        } else if (stream_id_parse(idp, idl, 0, true, &ids[k], r) != 0) {
            free(ids);
            return false;
        }
    }
    if (xread_serve(sm, now, a, first, n, ids, count, r)) {
        free(ids);
        return false;
    }
    if (block_ms < 0) {
        reply_null_array(r);
    } else if (wait == NULL) {
        reply_error(r, SM_XREAD_BLOCK_ERROR);
    } else {
        wait->block_ms = block_ms;
        wait->count = count;
        wait->first = first;
        wait->streams = n;
        wait->ids = ids;
        return true;
    }
    free(ids);
    return false;
}

bool sm_xread_retry(const struct sm *sm,
                    int64_t now_ms,
                    uint32_t argc,
                    const uint8_t *const argv[],
                    const uint32_t argl[],
                    const struct sm_xread_wait *wait,
                    struct reply *r)
{
    struct args a = {argc, argv, argl};
    RR_ASSERT(wait->first + 2 * wait->streams == argc);
    return xread_serve(sm, read_clock(sm, now_ms), &a, wait->first, wait->streams, wait->ids,
                       wait->count, r);
}

void sm_xread_wait_free(struct sm_xread_wait *wait)
{
    free(wait->ids);
    wait->ids = NULL;
}

/* ---- a blocked XREADGROUP ---------------------------------------------------------------- */

/* An applied XREADGROUP's options (it parsed): its BLOCK timeout, group name and first key.
 * Options come before STREAMS; GROUP takes two arguments, BLOCK and COUNT one. */
struct xrg_opts {
    int64_t block_ms;
    uint32_t group; /* argv index of the group name */
    uint32_t first; /* argv index of the first key */
};

static void xrg_opts(const struct args *a, struct xrg_opts *o)
{
    memset(o, 0, sizeof(*o));
    for (uint32_t i = 1; i < a->argc; i++) {
        if (util_arg_is(a->argv[i], a->argl[i], "streams")) {
            o->first = i + 1;
            return;
        }
        if (util_arg_is(a->argv[i], a->argl[i], "group")) {
            o->group = i + 1;
            i += 2;
        } else if (util_arg_is(a->argv[i], a->argl[i], "block")) {
            (void)util_parse_i64(a->argv[i + 1], a->argl[i + 1], &o->block_ms);
            i++;
        } else if (util_arg_is(a->argv[i], a->argl[i], "count")) {
            i++;
        }
    }
}

static int64_t xreadgroup_block_ms(const struct args *a)
{
    struct xrg_opts o;
    xrg_opts(a, &o);
    return o.block_ms;
}

bool sm_apply_blocked(const struct sm *sm, int64_t *block_ms)
{
    if (sm->blocked) {
        *block_ms = sm->blocked_ms;
    }
    return sm->blocked;
}

enum sm_wake sm_xreadgroup_wake(const struct sm *sm,
                                int64_t now_ms,
                                uint32_t argc,
                                const uint8_t *const argv[],
                                const uint32_t argl[],
                                struct reply *r)
{
    struct args a = {argc, argv, argl};
    struct xrg_opts o;
    xrg_opts(&a, &o);
    RR_ASSERT(o.group > 0 && o.group < argc && o.first > 0 && o.first <= argc);
    uint32_t keys = (argc - o.first) / 2;
    int64_t now = read_clock(sm, now_ms);
    for (uint32_t i = 0; i < keys; i++) {
        uint32_t k = o.first + i;
        const struct obj *obj = ks_lookup(&sm->ks, argv[k], argl[k], now);
        if (obj == NULL || obj->type != OBJ_STREAM) {
            reply_error(r, "UNBLOCKED the stream key no longer exists");
            return SM_WAKE_REPLIED;
        }
        const struct cg_group *g = cg_group_find(obj->stream, argv[o.group], argl[o.group]);
        if (g == NULL) {
            reply_error(r, "NOGROUP the consumer group this client was blocked on no longer "
                           "exists");
            return SM_WAKE_REPLIED;
        }
        if (stream_has_after(obj->stream, g->last_id)) {
            return SM_WAKE_PROPOSE;
        }
    }
    return SM_WAKE_WAIT;
}

static void
read_simple(const struct sm *sm, int64_t now, const struct args *a, uint16_t id, struct reply *r)
{
    bool bad;
    const struct obj *o;
    switch (id) {
    case CMD_ID_GET:
        o = read_typed(sm, a->argv[1], a->argl[1], now, OBJ_STRING, &bad, r);
        if (!bad) {
            reply_get(r, o);
        }
        return;
    case CMD_ID_STRLEN:
        o = read_typed(sm, a->argv[1], a->argl[1], now, OBJ_STRING, &bad, r);
        if (!bad) {
            reply_int(r, o != NULL ? (int64_t)o->val_len : 0);
        }
        return;
    case CMD_ID_XLEN:
        o = read_typed(sm, a->argv[1], a->argl[1], now, OBJ_STREAM, &bad, r);
        if (!bad) {
            reply_int(r, o != NULL ? (int64_t)stream_length(o->stream) : 0);
        }
        return;
    case CMD_ID_TYPE:
        o = ks_lookup(&sm->ks, a->argv[1], a->argl[1], now);
        reply_simple(r, o == NULL ? "none" : o->type == OBJ_STRING ? "string" : "stream");
        return;
    default:
        RR_ASSERT(false && "not a simple read");
    }
}

bool sm_read_wait(struct sm *sm,
                  int64_t now_ms,
                  uint32_t argc,
                  const uint8_t *const argv[],
                  const uint32_t argl[],
                  struct sm_xread_wait *wait,
                  struct reply *r)
{
    RR_ASSERT(argc >= 1);
    const struct cmd_spec *c = cmd_resolve(argc, argv, argl, r);
    if (c == NULL) {
        return false;
    }
    if (c->cls != CMD_READ) {
        reply_errorf(r, "ERR '%s' is not a read command", c->name);
        return false;
    }
    int64_t now = read_clock(sm, now_ms);
    struct args a = {argc, argv, argl};
    switch (c->id) {
    case CMD_ID_GET:
    case CMD_ID_STRLEN:
    case CMD_ID_XLEN:
    case CMD_ID_TYPE:
        read_simple(sm, now, &a, c->id, r);
        return false;
    case CMD_ID_EXISTS: {
        int64_t n = 0;
        for (uint32_t i = 1; i < argc; i++) {
            n += ks_lookup(&sm->ks, argv[i], argl[i], now) != NULL ? 1 : 0;
        }
        reply_int(r, n);
        return false;
    }
    case CMD_ID_MGET:
        reply_array(r, argc - 1);
        for (uint32_t i = 1; i < argc; i++) {
            const struct obj *o = ks_lookup(&sm->ks, argv[i], argl[i], now);
            if (o != NULL && o->type == OBJ_STRING) {
                reply_string(r, o);
            } else {
                reply_null(r);
            }
        }
        return false;
    case CMD_ID_GETRANGE:
        read_getrange(sm, now, &a, r);
        return false;
    case CMD_ID_TTL:
    case CMD_ID_PTTL:
    case CMD_ID_EXPIRETIME:
    case CMD_ID_PEXPIRETIME:
        read_ttl(sm, now, &a, c->id, r);
        return false;
    case CMD_ID_XRANGE:
    case CMD_ID_XREVRANGE:
        read_xrange(sm, now, &a, c->id == CMD_ID_XREVRANGE, r);
        return false;
    case CMD_ID_XREAD:
        return read_xread(sm, now, &a, wait, r);
    case CMD_ID_XPENDING:
    case CMD_ID_XINFO_STREAM:
    case CMD_ID_XINFO_GROUPS:
    case CMD_ID_XINFO_CONSUMERS: {
        /* Keys expire at the read clock as for every read; idle times are measured with the
         * state machine's clock (the last applied write's time), as writes measure them. */
        struct cg_read_ctx rc = {sm, now};
        struct cg_db db = {&rc, sm->clock, cg_lookup_read, NULL, sm->limits.pel_max, NULL};
        cg_cmd_read(c->id, &db, argc, argv, argl, r);
        return false;
    }
    default:
        RR_ASSERT(false && "a read command without a handler");
        return false;
    }
}

void sm_read(struct sm *sm,
             int64_t now_ms,
             uint32_t argc,
             const uint8_t *const argv[],
             const uint32_t argl[],
             struct reply *r)
{
    (void)sm_read_wait(sm, now_ms, argc, argv, argl, NULL, r);
}

uint64_t sm_key_count(const struct sm *sm, int64_t now_ms)
{
    if (sm->ks.expire_count == 0) {
        return sm->ks.count;
    }
    int64_t now = read_clock(sm, now_ms);
    uint64_t n = 0;
    for (uint64_t b = 0; b <= sm->ks.mask; b++) {
        for (const struct obj *o = sm->ks.buckets[b]; o != NULL; o = o->next) {
            n += ks_expired(o, now) ? 0 : 1;
        }
    }
    return n;
}

/* ---- scan ------------------------------------------------------------------------------ */

struct scan_ctx {
    int64_t now;
    const uint8_t *pattern; /* NULL: every key */
    size_t pattern_len;
    int type; /* 0: any, else enum obj_type; -1: matches nothing */
    void (*fn)(void *ctx, const uint8_t *key, size_t len);
    void *ctx;
};

static void scan_cb(void *ctx, const struct obj *o)
{
    const struct scan_ctx *sc = ctx;
    if (ks_expired(o, sc->now) || sc->type < 0 || (sc->type > 0 && o->type != sc->type)) {
        return;
    }
    if (sc->pattern != NULL &&
        !sm_glob_match(sc->pattern, sc->pattern_len, o->key, o->key_len, false)) {
        return;
    }
    sc->fn(sc->ctx, o->key, o->key_len);
}

void sm_scan(const struct sm *sm,
             int64_t now_ms,
             uint64_t *cursor,
             uint32_t count,
             const uint8_t *pattern,
             size_t pattern_len,
             const char *type_filter,
             void (*fn)(void *ctx, const uint8_t *key, size_t len),
             void *ctx)
{
    struct scan_ctx sc = {read_clock(sm, now_ms), pattern, pattern_len, 0, fn, ctx};
    if (pattern != NULL && pattern_len == 1 && pattern[0] == '*') {
        sc.pattern = NULL;
    }
    if (type_filter != NULL) {
        const uint8_t *t = (const uint8_t *)type_filter;
        sc.type = util_arg_is(t, strlen(type_filter), "string")   ? OBJ_STRING
                  : util_arg_is(t, strlen(type_filter), "stream") ? OBJ_STREAM
                                                                  : -1;
    }
    ks_scan(&sm->ks, cursor, count, scan_cb, &sc);
}

/* Redis's stringmatchlen (util.c), with bounds checks where Redis relies on the NUL after
 * its strings, and its skip-longer-matches cut so no pattern takes exponential time. The
 * recursion depth is bounded by the number of '*' runs, capped at GLOB_NESTING_MAX (Redis
 * 7.2 has the same guard). */
#define GLOB_NESTING_MAX 1000

static uint8_t glob_lower(uint8_t c)
{
    return (uint8_t)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
}

/* Bytes compare as C chars do on this platform (signed), as Redis's do in ranges. */
static int glob_char(uint8_t c, bool nocase)
{
    return (int)(signed char)(nocase ? glob_lower(c) : c);
}

/* One [...] class at p (just past '['); advances *pp and *plen to its ']' (or the end). */
static bool glob_class(const uint8_t **pp, size_t *plen, uint8_t c, bool nocase)
{
    const uint8_t *p = *pp;
    size_t n = *plen;
    bool negate = n > 0 && p[0] == '^';
    if (negate) {
        p++;
        n--;
    }
    bool match = false;
    while (true) {
        if (n >= 2 && p[0] == '\\') {
            p++;
            n--;
            match |= p[0] == c;
        } else if (n == 0) {
            p--; /* Redis steps back so the caller's advance lands on the end */
            n++;
            break;
        } else if (p[0] == ']') {
            break;
        } else if (n >= 3 && p[1] == '-') {
            int start = glob_char(p[0], nocase);
            int end = glob_char(p[2], nocase);
            int x = glob_char(c, nocase);
            if (start > end) {
                int t = start;
                start = end;
                end = t;
            }
            p += 2;
            n -= 2;
            match |= x >= start && x <= end;
        } else {
            match |= nocase ? glob_lower(p[0]) == glob_lower(c) : p[0] == c;
        }
        p++;
        n--;
    }
    *pp = p;
    *plen = n;
    return negate ? !match : match;
}

static bool glob_impl(const uint8_t *p,
                      size_t plen,
                      const uint8_t *s,
                      size_t slen,
                      bool nocase,
                      bool *skip_longer,
                      int nesting)
{
    if (nesting > GLOB_NESTING_MAX) {
        return false;
    }
    while (plen > 0 && slen > 0) {
        switch (p[0]) {
        case '*':
            while (plen > 1 && p[1] == '*') {
                p++;
                plen--;
            }
            if (plen == 1) {
                return true;
            }
            while (slen > 0) {
                if (glob_impl(p + 1, plen - 1, s, slen, nocase, skip_longer, nesting + 1)) {
                    return true;
                }
                if (*skip_longer) {
                    return false;
                }
                s++;
                slen--;
            }
            *skip_longer = true;
            return false;
        case '?':
            s++;
            slen--;
            break;
        case '[':
            p++;
            plen--;
            if (!glob_class(&p, &plen, s[0], nocase)) {
                return false;
            }
            s++;
            slen--;
            break;
        case '\\':
            if (plen >= 2) {
                p++;
                plen--;
            }
            __attribute__((fallthrough)); /* a backslash escapes the next byte */
        default:
            if (nocase ? glob_lower(p[0]) != glob_lower(s[0]) : p[0] != s[0]) {
                return false;
            }
            s++;
            slen--;
            break;
        }
        p++;
        plen--;
        if (slen == 0) {
            while (plen > 0 && p[0] == '*') {
                p++;
                plen--;
            }
            break;
        }
    }
    return plen == 0 && slen == 0;
}

bool sm_glob_match(
    const uint8_t *pattern, size_t pattern_len, const uint8_t *str, size_t str_len, bool nocase)
{
    bool skip_longer = false;
    return glob_impl(pattern, pattern_len, str, str_len, nocase, &skip_longer, 0);
}

/* ---- digest and snapshots -------------------------------------------------------------- */

/* Hash of one live key with its value and TTL; keys are combined by addition, so the
 * digest does not depend on table order. */
static uint64_t obj_digest(const struct obj *o)
{
    uint64_t h = XXH3_64bits_withSeed(o->key, o->key_len, o->type);
    int64_t ttl[2] = {o->has_expire ? 1 : 0, o->has_expire ? o->expire_at : 0};
    h = XXH3_64bits_withSeed(ttl, sizeof(ttl), h);
    if (o->type == OBJ_STRING) {
        return XXH3_64bits_withSeed(o->val, o->val_len, h);
    }
    uint64_t sh = stream_digest(o->stream);
    return XXH3_64bits_withSeed(&sh, sizeof(sh), h);
}

uint64_t sm_digest(const struct sm *sm)
{
    uint64_t keys = 0;
    uint64_t live = 0;
    for (uint64_t b = 0; b <= sm->ks.mask; b++) {
        for (const struct obj *o = sm->ks.buckets[b]; o != NULL; o = o->next) {
            if (!ks_expired(o, sm->clock)) {
                keys += obj_digest(o);
                live++;
            }
        }
    }
    /* Sessions in eviction order: the order decides future evictions, so it is state. */
    uint64_t sessions = 0;
    struct session **aged = sessions_by_age_new(sm);
    const struct session *s = NULL;
    for (uint32_t j = 0; j < sm->session_count; j++) {
        /* Without memory for the sort, the next by age is found by a scan. */
        s = aged != NULL ? aged[j] : session_next_by_age(sm, s);
        uint64_t head[3] = {s->client_id, s->floor, s->n};
        sessions = XXH3_64bits_withSeed(head, sizeof(head), sessions);
        for (uint32_t i = s->lo; i < s->lo + s->n; i++) {
            const struct kept_reply *k = &s->kept[i];
            uint64_t kh[3] = {k->seq, k->too_large ? 1u : 0u, k->len};
            sessions = XXH3_64bits_withSeed(kh, sizeof(kh), sessions);
            sessions = XXH3_64bits_withSeed(kept_bytes(k), k->len, sessions);
        }
    }
    free(aged);
    uint64_t all[5] = {keys, live, sessions, sm->session_count, (uint64_t)sm->clock};
    return XXH3_64bits(all, sizeof(all));
}
