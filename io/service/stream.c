/* Streams. A stream is an array of entry pointers sorted by ID (IDs only grow, so appends go
 * at the end), with a head offset so trimming from the front is O(entries trimmed); XDEL in
 * the middle moves the tail. Each entry is one allocation: its ID and its fields as
 * (u32 length, bytes) pairs.
 *
 * Approximate trimming ("~") trims exactly, up to LIMIT entries (default 10000, Redis's
 * 100 * stream-node-max-entries): Redis trims only whole radix-tree nodes, so its "~" may
 * leave more entries; both keep at least the requested length. */
#include "io/service/stream.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "core/base/assert.h"
#include "core/base/errors.h"
#include "io/service/cgroup.h"

#define STREAM_ID_TEXT_MAX      127u  /* Redis parses IDs in a 128-byte buffer */
#define STREAM_APPROX_LIMIT     10000 /* Redis: 100 * stream-node-max-entries (100) */
#define STREAM_MIN_CAP          8u
#define STREAM_ENTRY_FIELDS_MAX (UINT32_MAX / 8u)

struct stream_entry {
    struct stream_id id;  /* unique, increasing along the array */
    uint32_t field_count; /* fields + values (even) */
    uint32_t data_len;    /* bytes in data */
    uint8_t data[];       /* field_count * (u32 length, bytes) */
};

struct stream {
    struct stream_entry **slots;     /* entries live at [head, head + count) */
    uint64_t head;                   /* first live slot */
    uint64_t count;                  /* live entries */
    uint64_t cap;                    /* slots allocated */
    struct stream_id last_id;        /* largest ID ever added */
    uint64_t entries_added;          /* entries ever added (Redis 7's entries-added) */
    struct stream_id max_deleted_id; /* largest ID XDEL removed (Redis 7's
                                        max-deleted-entry-id); 0-0 if none; <= last_id */
    struct avl_tree cgroups;         /* consumer groups (cgroup.c), by name */
};

static struct stream_entry *entry_at(const struct stream *s, uint64_t i)
{
    RR_ASSERT(i < s->count);
    return s->slots[s->head + i];
}

struct stream *stream_create(void)
{
    struct stream *s = calloc(1, sizeof(*s));
    return s;
}

void stream_destroy(struct stream *s)
{
    if (s == NULL) {
        return;
    }
    for (uint64_t i = 0; i < s->count; i++) {
        free(entry_at(s, i));
    }
    free(s->slots);
    cg_free_groups(&s->cgroups);
    free(s);
}

uint64_t stream_length(const struct stream *s)
{
    return s->count;
}

struct stream_id stream_last_id(const struct stream *s)
{
    return s->last_id;
}

uint64_t stream_entries_added(const struct stream *s)
{
    return s->entries_added;
}

struct stream_id stream_first_id(const struct stream *s)
{
    /* Redis keeps a "recorded first entry ID" that XADD, XDEL and trimming maintain: it is
     * always the first entry's ID, or 0-0 for an empty stream, so it is derived here. */
    return s->count > 0 ? entry_at(s, 0)->id : (struct stream_id){0, 0};
}

struct stream_id stream_max_deleted_id(const struct stream *s)
{
    return s->max_deleted_id;
}

struct avl_tree *stream_cgroups(struct stream *s)
{
    return &s->cgroups;
}

const struct avl_tree *stream_cgroups_const(const struct stream *s)
{
    return &s->cgroups;
}

int stream_id_cmp(struct stream_id a, struct stream_id b)
{
    if (a.ms != b.ms) {
        return a.ms < b.ms ? -1 : 1;
    }
    if (a.seq != b.seq) {
        return a.seq < b.seq ? -1 : 1;
    }
    return 0;
}

/* Redis's streamIncrID / streamDecrID: false at the ends of the ID space. */
bool stream_id_incr(struct stream_id *id)
{
    if (id->seq == UINT64_MAX) {
        if (id->ms == UINT64_MAX) {
            id->ms = 0;
            id->seq = 0;
            return false;
        }
        id->ms++;
        id->seq = 0;
        return true;
    }
    id->seq++;
    return true;
}

bool stream_id_decr(struct stream_id *id)
{
    if (id->seq == 0) {
        if (id->ms == 0) {
            id->ms = UINT64_MAX;
            id->seq = UINT64_MAX;
            return false;
        }
        id->ms--;
        id->seq = UINT64_MAX;
        return true;
    }
    id->seq--;
    return true;
}

static const char stream_invalid_id[] =
    "ERR Invalid stream ID specified as stream command argument";

/* streamGenericParseIDOrReply with the "<ms>-*" form when seq_given is not NULL. */
static int id_parse(const uint8_t *p,
                    size_t len,
                    uint64_t missing_seq,
                    bool strict,
                    bool *seq_given,
                    struct stream_id *id,
                    struct reply *r)
{
    if (seq_given != NULL) {
        *seq_given = true;
    }
    /* Redis copies the argument into a C string: it ends at the first NUL. */
    const uint8_t *nul = memchr(p, 0, len);
    if (len > STREAM_ID_TEXT_MAX) {
        goto invalid;
    }
    if (nul != NULL) {
        len = (size_t)(nul - p);
    }
    if (len == 1 && (p[0] == '-' || p[0] == '+')) {
        if (strict) {
            goto invalid;
        }
        id->ms = p[0] == '-' ? 0 : UINT64_MAX;
        id->seq = p[0] == '-' ? 0 : UINT64_MAX;
        return 0;
    }
    const uint8_t *dash = memchr(p, '-', len);
    size_t ms_len = dash == NULL ? len : (size_t)(dash - p);
    if (!util_parse_u64(p, ms_len, &id->ms)) {
        goto invalid;
    }
    if (dash == NULL) {
        id->seq = missing_seq;
        return 0;
    }
    const uint8_t *sp = dash + 1;
    size_t seq_len = len - ms_len - 1;
    if (seq_given != NULL && seq_len == 1 && sp[0] == '*') {
        id->seq = 0;
        *seq_given = false;
        return 0;
    }
    if (!util_parse_u64(sp, seq_len, &id->seq)) {
        goto invalid;
    }
    return 0;
invalid:
    if (r != NULL) {
        reply_error(r, stream_invalid_id);
    }
    return RR_EINVAL;
}

int stream_id_parse(const uint8_t *p,
                    size_t len,
                    uint64_t missing_seq,
                    bool strict,
                    struct stream_id *id,
                    struct reply *r)
{
    return id_parse(p, len, missing_seq, strict, NULL, id, r);
}

/* One MAXLEN / MINID option (streamParseAddOrTrimArgsOrReply); *i at the option name. */
static int parse_strategy(uint32_t argc,
                          const uint8_t *const argv[],
                          const uint32_t argl[],
                          uint32_t *i,
                          bool maxlen,
                          struct stream_trim_args *a,
                          struct reply *r)
{
    uint32_t more = argc - 1 - *i;
    if (a->strategy != STREAM_TRIM_NONE) {
        reply_error(r, "ERR syntax error, MAXLEN and MINID options at the same time are not "
                       "compatible");
        return RR_EINVAL;
    }
    a->approx = false;
    const uint8_t *next = argv[*i + 1];
    if (more >= 2 && argl[*i + 1] >= 1 && (next[0] == '~' || next[0] == '=') &&
        (argl[*i + 1] == 1 || next[1] == 0)) {
        a->approx = next[0] == '~';
        (*i)++;
    }
    uint32_t v = *i + 1;
    if (maxlen) {
        if (!util_parse_i64(argv[v], argl[v], &a->maxlen)) {
            reply_error(r, "ERR value is not an integer or out of range");
            return RR_EINVAL;
        }
        if (a->maxlen < 0) {
            reply_error(r, "ERR The MAXLEN argument must be >= 0.");
            return RR_EINVAL;
        }
        a->strategy = STREAM_TRIM_MAXLEN;
    } else {
        if (id_parse(argv[v], argl[v], 0, true, NULL, &a->minid, r) != 0) {
            return RR_EINVAL;
        }
        a->strategy = STREAM_TRIM_MINID;
    }
    (*i)++;
    return 0;
}

static int parse_limit(const uint8_t *p, uint32_t len, struct stream_trim_args *a, struct reply *r)
{
    if (!util_parse_i64(p, len, &a->limit)) {
        reply_error(r, "ERR value is not an integer or out of range");
        return RR_EINVAL;
    }
    if (a->limit < 0) {
        reply_error(r, "ERR The LIMIT argument must be >= 0.");
        return RR_EINVAL;
    }
    return 0;
}

/* The checks after the options, in Redis's order. */
static int parse_finish(uint32_t argc,
                        bool xadd,
                        bool limit_given,
                        uint32_t idpos,
                        struct stream_trim_args *a,
                        struct reply *r)
{
    if (a->limit != 0 && a->strategy == STREAM_TRIM_NONE) {
        reply_error(r, "ERR syntax error, LIMIT cannot be used without specifying a trimming "
                       "strategy");
        return RR_EINVAL;
    }
    if (!xadd && a->strategy == STREAM_TRIM_NONE) {
        reply_error(r, "ERR syntax error, XTRIM must be called with a trimming strategy");
        return RR_EINVAL;
    }
    if (limit_given && !a->approx) {
        reply_error(r, "ERR syntax error, LIMIT cannot be used without the special ~ option");
        return RR_EINVAL;
    }
    if (!limit_given) {
        a->limit = a->approx ? STREAM_APPROX_LIMIT : 0;
    }
    if (xadd) {
        a->field_pos = idpos + 1;
        if (argc < a->field_pos || argc - a->field_pos < 2 || (argc - a->field_pos) % 2 == 1) {
            reply_error(r, "ERR wrong number of arguments for 'xadd' command");
            return RR_EINVAL;
        }
        if (a->id_given && a->seq_given && a->id.ms == 0 && a->id.seq == 0) {
            reply_error(r, "ERR The ID specified in XADD must be greater than 0-0");
            return RR_EINVAL;
        }
    }
    return 0;
}

int stream_parse_add_or_trim(uint32_t argc,
                             const uint8_t *const argv[],
                             const uint32_t argl[],
                             bool xadd,
                             struct stream_trim_args *a,
                             struct reply *r)
{
    memset(a, 0, sizeof(*a));
    a->seq_given = true;
    bool limit_given = false;
    uint32_t i = 2;
    for (; i < argc; i++) {
        uint32_t more = argc - 1 - i;
        const uint8_t *o = argv[i];
        uint32_t ol = argl[i];
        if (xadd && ol == 1 && o[0] == '*') {
            break;
        } else if (util_arg_is(o, ol, "maxlen") && more > 0) {
            if (parse_strategy(argc, argv, argl, &i, true, a, r) != 0) {
                return RR_EINVAL;
            }
        } else if (util_arg_is(o, ol, "minid") && more > 0) {
            if (parse_strategy(argc, argv, argl, &i, false, a, r) != 0) {
                return RR_EINVAL;
            }
        } else if (util_arg_is(o, ol, "limit") && more > 0) {
            if (parse_limit(argv[i + 1], argl[i + 1], a, r) != 0) {
                return RR_EINVAL;
            }
            limit_given = true;
            i++;
        } else if (xadd && util_arg_is(o, ol, "nomkstream")) {
            a->no_mkstream = true;
        } else if (xadd) {
            if (id_parse(o, ol, 0, true, &a->seq_given, &a->id, r) != 0) {
                return RR_EINVAL;
            }
            a->id_given = true;
            break;
        } else {
            reply_error(r, "ERR syntax error");
            return RR_EINVAL;
        }
    }
    return parse_finish(argc, xadd, limit_given, i, a, r);
}

int stream_next_id(const struct stream *s,
                   const struct stream_trim_args *a,
                   int64_t clock_ms,
                   struct stream_id *id,
                   struct reply *r)
{
    struct stream_id last = s->last_id;
    if (last.ms == UINT64_MAX && last.seq == UINT64_MAX) {
        reply_error(r, "ERR The stream has exhausted the last possible ID, unable to add "
                       "more items");
        return RR_EINVAL;
    }
    if (!a->id_given) {
        /* streamNextID with the entry's clock: ms = max(clock, last.ms). */
        uint64_t ms = clock_ms > 0 ? (uint64_t)clock_ms : 0;
        if (ms > last.ms) {
            id->ms = ms;
            id->seq = 0;
        } else {
            *id = last;
            stream_id_incr(id);
        }
        return 0;
    }
    *id = a->id;
    if (!a->seq_given && a->id.ms == last.ms) {
        if (last.seq == UINT64_MAX) {
            goto too_small;
        }
        id->seq = last.seq + 1;
    }
    if (stream_id_cmp(*id, last) <= 0) {
        goto too_small;
    }
    return 0;
too_small:
    reply_error(r, "ERR The ID specified in XADD is equal or smaller than the target stream "
                   "top item");
    return RR_EINVAL;
}

/* Room for one more slot at the end; RR_ENOMEM changes nothing. */
static int reserve_slot(struct stream *s)
{
    if (s->head + s->count < s->cap) {
        return 0;
    }
    if (s->head > 0 && s->head >= s->cap / 2) {
        memmove(s->slots, s->slots + s->head, (size_t)s->count * sizeof(*s->slots));
        s->head = 0;
        return 0;
    }
    uint64_t cap = s->cap < STREAM_MIN_CAP ? STREAM_MIN_CAP : s->cap * 2;
    if (cap > SIZE_MAX / sizeof(*s->slots)) {
        return RR_ENOMEM;
    }
    struct stream_entry **slots = realloc(s->slots, (size_t)cap * sizeof(*slots));
    if (slots == NULL) {
        return RR_ENOMEM;
    }
    s->slots = slots;
    s->cap = cap;
    return 0;
}

static struct stream_entry *entry_new(struct stream_id id,
                                      uint32_t argc,
                                      const uint8_t *const argv[],
                                      const uint32_t argl[],
                                      uint32_t first)
{
    size_t bytes = 0;
    for (uint32_t i = first; i < argc; i++) {
        bytes += 4 + (size_t)argl[i];
        if (bytes > UINT32_MAX) {
            return NULL;
        }
    }
    struct stream_entry *e = malloc(sizeof(*e) + bytes);
    if (e == NULL) {
        return NULL;
    }
    e->id = id;
    e->field_count = argc - first;
    e->data_len = (uint32_t)bytes;
    uint8_t *p = e->data;
    for (uint32_t i = first; i < argc; i++) {
        for (unsigned b = 0; b < 4; b++) {
            *p++ = (uint8_t)(argl[i] >> (8 * b));
        }
        if (argl[i] > 0) {
            memcpy(p, argv[i], argl[i]);
        }
        p += argl[i];
    }
    return e;
}

int stream_append(struct stream *s,
                  struct stream_id id,
                  uint32_t argc,
                  const uint8_t *const argv[],
                  const uint32_t argl[],
                  uint32_t first,
                  const struct stream_trim_args *a)
{
    RR_ASSERT(stream_id_cmp(id, s->last_id) > 0);
    RR_ASSERT(first <= argc);
    struct stream_entry *e = entry_new(id, argc, argv, argl, first);
    if (e == NULL) {
        return RR_ENOMEM;
    }
    if (reserve_slot(s) != 0) {
        free(e);
        return RR_ENOMEM;
    }
    s->slots[s->head + s->count] = e;
    s->count++;
    s->last_id = id;
    if (s->entries_added < STREAM_ENTRIES_ADDED_MAX) {
        s->entries_added++;
    }
    if (a != NULL && a->strategy != STREAM_TRIM_NONE) {
        stream_trim(s, a);
    }
    return 0;
}

uint64_t stream_trim(struct stream *s, const struct stream_trim_args *a)
{
    uint64_t removed = 0;
    uint64_t limit = a->limit > 0 ? (uint64_t)a->limit : UINT64_MAX;
    while (s->count > 0 && removed < limit) {
        if (a->strategy == STREAM_TRIM_MAXLEN) {
            if (s->count <= (uint64_t)a->maxlen) {
                break;
            }
        } else {
            RR_ASSERT(a->strategy == STREAM_TRIM_MINID);
            if (stream_id_cmp(entry_at(s, 0)->id, a->minid) >= 0) {
                break;
            }
        }
        free(entry_at(s, 0));
        s->head++;
        s->count--;
        removed++;
    }
    if (s->count == 0) {
        s->head = 0;
    }
    return removed;
}

/* First position whose ID is >= id (count if none). */
static uint64_t lower_bound(const struct stream *s, struct stream_id id)
{
    uint64_t lo = 0;
    uint64_t hi = s->count;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (stream_id_cmp(entry_at(s, mid)->id, id) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

bool stream_delete(struct stream *s, struct stream_id id)
{
    uint64_t i = lower_bound(s, id);
    if (i == s->count || stream_id_cmp(entry_at(s, i)->id, id) != 0) {
        return false;
    }
    free(entry_at(s, i));
    if (stream_id_cmp(id, s->max_deleted_id) > 0) {
        s->max_deleted_id = id;
    }
    struct stream_entry **base = s->slots + s->head;
    memmove(base + i, base + i + 1, (size_t)(s->count - i - 1) * sizeof(*base));
    s->count--;
    if (s->count == 0) {
        s->head = 0;
    }
    return true;
}

void stream_reply_id(struct reply *r, struct stream_id id)
{
    char buf[48];
    size_t n = util_fmt_u64(buf, id.ms);
    buf[n++] = '-';
    n += util_fmt_u64(buf + n, id.seq);
    reply_bulk(r, buf, n);
}

static void reply_entry(struct reply *r, const struct stream_entry *e)
{
    reply_array(r, 2);
    stream_reply_id(r, e->id);
    reply_array(r, e->field_count);
    struct util_cursor c = {e->data, e->data + e->data_len, false};
    for (uint32_t f = 0; f < e->field_count; f++) {
        uint32_t len;
        const uint8_t *p = util_get_blob(&c, &len);
        RR_ASSERT(!c.bad);
        reply_bulk(r, p, len);
    }
}

uint64_t stream_reply_range(const struct stream *s,
                            struct stream_id start,
                            struct stream_id end,
                            uint64_t count,
                            bool rev,
                            struct reply *r)
{
    uint64_t lo = lower_bound(s, start);
    uint64_t hi = lo; /* one past the last entry <= end */
    if (stream_id_cmp(start, end) <= 0) {
        hi = end.ms == UINT64_MAX && end.seq == UINT64_MAX ? s->count : lower_bound(s, end);
        if (hi < s->count && stream_id_cmp(entry_at(s, hi)->id, end) == 0) {
            hi++;
        }
        if (hi < lo) {
            hi = lo;
        }
    }
    uint64_t n = hi - lo;
    if (count > 0 && n > count) {
        n = count;
    }
    reply_array(r, (int64_t)n);
    for (uint64_t k = 0; k < n; k++) {
        reply_entry(r, entry_at(s, rev ? hi - 1 - k : lo + k));
    }
    return n;
}

bool stream_has_after(const struct stream *s, struct stream_id after)
{
    return s->count > 0 && stream_id_cmp(entry_at(s, s->count - 1)->id, after) > 0;
}

uint64_t stream_pos_after(const struct stream *s, struct stream_id after)
{
    uint64_t i = lower_bound(s, after);
    if (i < s->count && stream_id_cmp(entry_at(s, i)->id, after) == 0) {
        i++;
    }
    return i;
}

struct stream_id stream_id_at(const struct stream *s, uint64_t pos)
{
    return entry_at(s, pos)->id;
}

void stream_reply_entry_at(const struct stream *s, uint64_t pos, struct reply *r)
{
    reply_entry(r, entry_at(s, pos));
}

bool stream_contains(const struct stream *s, struct stream_id id)
{
    uint64_t i = lower_bound(s, id);
    return i < s->count && stream_id_cmp(entry_at(s, i)->id, id) == 0;
}

bool stream_reply_entry(const struct stream *s, struct stream_id id, struct reply *r)
{
    uint64_t i = lower_bound(s, id);
    if (i == s->count || stream_id_cmp(entry_at(s, i)->id, id) != 0) {
        return false;
    }
    reply_entry(r, entry_at(s, i));
    return true;
}

int stream_parse_range_bound(
    const uint8_t *p, size_t len, bool end, struct stream_id *id, struct reply *r)
{
    /* streamParseIntervalIDOrReply: "(" makes the bound exclusive (and the ID strict). */
    bool exclusive = len > 1 && p[0] == '(';
    if (stream_id_parse(p + exclusive, len - exclusive, end ? UINT64_MAX : 0, exclusive, id, r) !=
        0) {
        return RR_EINVAL;
    }
    if (exclusive && !(end ? stream_id_decr(id) : stream_id_incr(id))) {
        reply_error(r, end ? "ERR invalid end ID for the interval"
                           : "ERR invalid start ID for the interval");
        return RR_EINVAL;
    }
    return 0;
}

uint64_t stream_digest(const struct stream *s)
{
    uint64_t h = XXH3_64bits_withSeed(&s->count, sizeof(s->count), 0x5354524541uLL);
    uint64_t last[5] = {s->last_id.ms, s->last_id.seq, s->entries_added, s->max_deleted_id.ms,
                        s->max_deleted_id.seq};
    h = XXH3_64bits_withSeed(last, sizeof(last), h);
    if (s->cgroups.count > 0) {
        uint64_t g = cg_digest(&s->cgroups);
        h = XXH3_64bits_withSeed(&g, sizeof(g), h);
    }
    for (uint64_t i = 0; i < s->count; i++) {
        const struct stream_entry *e = entry_at(s, i);
        uint64_t head[3] = {e->id.ms, e->id.seq, e->field_count};
        h = XXH3_64bits_withSeed(head, sizeof(head), h);
        h = XXH3_64bits_withSeed(e->data, e->data_len, h);
    }
    return h;
}

/* Layout: u8 version, u64 last ms, u64 last seq, u64 entries_added, u64 count,
 * count * (u64 ms, u64 seq, u32 field_count, u32 data_len, data),
 * then, in version 2 only, the extension: u64 ext_len and ext_len bytes (see ext_serialize).
 * Version 1 (no extension) is still loaded: no consumer groups, no XDEL recorded. */
int stream_serialize(const struct stream *s, struct reply *out)
{
    util_put_u8(out, STREAM_SERIAL_VERSION);
    util_put_u64(out, s->last_id.ms);
    util_put_u64(out, s->last_id.seq);
    util_put_u64(out, s->entries_added);
    util_put_u64(out, s->count);
    for (uint64_t i = 0; i < s->count && !out->overflow; i++) {
        const struct stream_entry *e = entry_at(s, i);
        util_put_u64(out, e->id.ms);
        util_put_u64(out, e->id.seq);
        util_put_u32(out, e->field_count);
        util_put_blob(out, e->data, e->data_len);
    }
    stream_ext_serialize(s, out);
    return out->overflow ? RR_ENOMEM : 0;
}

/* ---- the extension (stream version 2): XDEL's record and the consumer groups ------------
 *
 * ext = u64 max deleted ms, u64 max deleted seq, consumer groups (cg_serialize, cgroup.c).
 * It is written after the entries with its length in front, so that a loader receiving an
 * image in pieces can gather it whole and hand it to stream_ext_load. */
void stream_ext_serialize(const struct stream *s, struct reply *out)
{
    util_put_u64(out, 0); /* ext_len, patched once the extension is written */
    size_t start = out->len;
    util_put_u64(out, s->max_deleted_id.ms);
    util_put_u64(out, s->max_deleted_id.seq);
    cg_serialize(&s->cgroups, out);
    if (out->overflow) {
        return;
    }
    RR_ASSERT(start >= 8);
    uint64_t n = out->len - start;
    for (unsigned b = 0; b < 8; b++) {
        out->buf[start - 8 + b] = (uint8_t)(n >> (8 * b));
    }
}

int stream_ext_load(struct stream *s, const uint8_t *p, size_t len)
{
    struct util_cursor c = {p, p + len, false};
    struct stream_id md;
    md.ms = util_get_u64(&c);
    md.seq = util_get_u64(&c);
    /* An XDEL'd ID is at most the last ID, and no entry can have it any more. */
    if (c.bad || stream_id_cmp(md, s->last_id) > 0 ||
        ((md.ms != 0 || md.seq != 0) && stream_contains(s, md))) {
        return RR_ECORRUPT;
    }
    struct avl_tree groups = AVL_TREE_INIT;
    int rc = cg_load(s, &c, &groups);
    if (rc == 0 && c.p != c.end) {
        rc = RR_ECORRUPT;
    }
    if (rc != 0) {
        cg_free_groups(&groups);
        return rc;
    }
    RR_ASSERT(s->cgroups.count == 0);
    s->max_deleted_id = md;
    s->cgroups = groups;
    return 0;
}

/* An entry's data must be exactly field_count (u32 length, bytes) pairs. */
static bool entry_data_valid(const uint8_t *data, uint32_t len, uint32_t field_count)
{
    if (field_count % 2 != 0 || field_count == 0) {
        return false;
    }
    struct util_cursor c = {data, data + len, false};
    for (uint32_t f = 0; f < field_count; f++) {
        uint32_t n;
        util_get_blob(&c, &n);
        if (c.bad) {
            return false;
        }
    }
    return c.p == c.end;
}

int stream_load_entry(
    struct stream *s, struct stream_id id, uint32_t field_count, const uint8_t *data, uint32_t len)
{
    if (field_count > STREAM_ENTRY_FIELDS_MAX || !entry_data_valid(data, len, field_count) ||
        (s->count > 0 && stream_id_cmp(id, entry_at(s, s->count - 1)->id) <= 0) ||
        (id.ms == 0 && id.seq == 0)) {
        return RR_ECORRUPT;
    }
    struct stream_entry *e = malloc(sizeof(*e) + len);
    if (e == NULL) {
        return RR_ENOMEM;
    }
    e->id = id;
    e->field_count = field_count;
    e->data_len = len;
    if (len > 0) {
        memcpy(e->data, data, len);
    }
    if (reserve_slot(s) != 0) {
        free(e);
        return RR_ENOMEM;
    }
    s->slots[s->head + s->count++] = e;
    return 0;
}

int stream_load_finish(struct stream *s, struct stream_id last, uint64_t added)
{
    /* Entries are at most the last ID, and no more than were ever added (the consumer
     * groups' checks rely on both); the count of additions is within its range. */
    if ((s->count > 0 && stream_id_cmp(entry_at(s, s->count - 1)->id, last) > 0) ||
        added < s->count || added > STREAM_ENTRIES_ADDED_MAX) {
        return RR_ECORRUPT;
    }
    s->last_id = last;
    s->entries_added = added;
    return 0;
}

static int load_entries(struct stream *s, struct util_cursor *c, uint64_t count)
{
    for (uint64_t i = 0; i < count; i++) {
        struct stream_id id;
        id.ms = util_get_u64(c);
        id.seq = util_get_u64(c);
        uint32_t field_count = util_get_u32(c);
        uint32_t len;
        const uint8_t *data = util_get_blob(c, &len);
        int rc = c->bad ? RR_ECORRUPT : stream_load_entry(s, id, field_count, data, len);
        if (rc != 0) {
            c->bad = c->bad || rc == RR_ECORRUPT;
            return rc;
        }
    }
    return 0;
}

struct stream *stream_load(struct util_cursor *c, int *err)
{
    *err = RR_ECORRUPT;
    uint8_t version = util_get_u8(c);
    if (version != 1 && version != STREAM_SERIAL_VERSION) {
        c->bad = true;
        return NULL;
    }
    struct stream_id last;
    last.ms = util_get_u64(c);
    last.seq = util_get_u64(c);
    uint64_t added = util_get_u64(c);
    uint64_t count = util_get_u64(c);
    /* Every entry takes at least 24 bytes: a count beyond that is a lie. */
    if (c->bad || count > (uint64_t)(c->end - c->p) / 24) {
        c->bad = true;
        return NULL;
    }
    struct stream *s = stream_create();
    if (s == NULL) {
        *err = RR_ENOMEM;
        return NULL;
    }
    int rc = load_entries(s, c, count);
    /* Entries are at most the last ID, and no more than were ever added; the count of
     * additions is within its range. */
    if (rc == 0 && ((s->count > 0 && stream_id_cmp(entry_at(s, s->count - 1)->id, last) > 0) ||
                    added < s->count || added > STREAM_ENTRIES_ADDED_MAX)) {
        rc = RR_ECORRUPT;
        c->bad = true;
    }
    s->last_id = last;
    s->entries_added = added;
    if (rc == 0 && version == 2) {
        uint64_t ext_len = util_get_u64(c);
        const uint8_t *ext = c->bad || ext_len > (uint64_t)(c->end - c->p)
                                 ? NULL
                                 : util_get_bytes(c, (size_t)ext_len);
        rc = ext == NULL ? RR_ECORRUPT : stream_ext_load(s, ext, (size_t)ext_len);
        c->bad = c->bad || rc == RR_ECORRUPT;
    }
    if (rc != 0) {
        *err = rc;
        stream_destroy(s);
        return NULL;
    }
    *err = 0;
    return s;
}
