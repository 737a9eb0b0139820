/* The consumer group commands. Each follows its Redis 7.0 function in t_stream.c step for
 * step, so that errors come in the same order and replies are the same bytes; the comments
 * name the Redis function and say where ringraft differs.
 *
 * All or nothing. A write first parses and checks everything, then allocates all it may need
 * (a consumer per group that will get one, a pending entry node per entry that may be
 * delivered or forced into a PEL; upper bounds, the rest freed after), and only then changes
 * the state, with operations that cannot fail. So RR_ENOMEM leaves the state unchanged, and
 * a limit (cgroup.h) refuses a command before any of it is applied. Replies whose length is
 * known only at the end are built in a second buffer first.
 *
 * Time. `now` is the state machine's clock (struct cg_db): delivery times, seen times and
 * XCLAIM's IDLE are measured with the clock the log's entries carry, so every replica
 * computes the same state; reads report idle times against the same clock (the time of the
 * last applied write), not the reading node's. */
#include "io/service/cgroup_cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/assert.h"
#include "core/base/errors.h"
#include "io/service/cgroup.h"
#include "io/service/cmd.h"
#include "io/service/util.h"

#define CG_IDS_STACK             8u               /* Redis's STREAMID_STATIC_VECTOR_LEN */
#define CG_AUTOCLAIM_COUNT       100              /* XAUTOCLAIM's default COUNT */
#define CG_AUTOCLAIM_ATTEMPTS    10               /* PEL entries examined per COUNT */
#define CG_AUTOCLAIM_COUNT_MAX   (INT64_MAX / 16) /* LONG_MAX / sizeof(streamID) */
#define CG_INFO_FULL_COUNT       10               /* XINFO STREAM FULL's default COUNT */
#define CG_RADIX_ENTRIES_PER_KEY 100              /* Redis's stream-node-max-entries */

static const char err_wrongtype[] =
    "WRONGTYPE Operation against a key holding the wrong kind of value";
static const char err_notint[] = "ERR value is not an integer or out of range";
static const char err_syntax[] = "ERR syntax error";
static const char err_key_missing[] =
    "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want "
    "to use the MKSTREAM option to create an empty stream automatically.";

struct cg_args {
    uint32_t argc;
    const uint8_t *const *argv;
    const uint32_t *argl;
};

static const struct stream_id id_max = {UINT64_MAX, UINT64_MAX};

static bool arg_is(const struct cg_args *a, uint32_t i, const char *word)
{
    return util_arg_is(a->argv[i], a->argl[i], word);
}

/* Bytes of an argument as Redis's "%s" prints it (it is a C string there): up to a NUL. */
static size_t cstr_len(const uint8_t *p, size_t len)
{
    const uint8_t *nul = memchr(p, 0, len);
    return nul != NULL ? (size_t)(nul - p) : len;
}

/* strcmp(argv[i], s) == 0, with Redis's C-string view of the argument. */
static bool arg_cstr_is(const struct cg_args *a, uint32_t i, const char *s)
{
    size_t n = strlen(s);
    return cstr_len(a->argv[i], a->argl[i]) == n && memcmp(a->argv[i], s, n) == 0;
}

/* ---- errors ------------------------------------------------------------------------------ */

/* An error message assembled from text and arguments (printed as "%s" would print them),
 * of any length: arguments are keys and names. */
struct msg {
    struct reply buf;
};

static void msg_init(struct msg *m)
{
    reply_init(&m->buf, (size_t)1 << 30);
}

static void msg_text(struct msg *m, const char *s)
{
    reply_raw(&m->buf, s, strlen(s));
}

static void msg_arg(struct msg *m, const uint8_t *p, size_t len, size_t max)
{
    size_t n = cstr_len(p, len);
    reply_raw(&m->buf, p, n < max ? n : max);
}

static void msg_reply(struct msg *m, struct reply *r)
{
    reply_raw(&m->buf, "", 1);
    if (m->buf.overflow) {
        reply_error(r, "ERR out of memory");
    } else {
        reply_error(r, (const char *)m->buf.buf);
    }
    reply_free(&m->buf);
}

/* "NOGROUP No such key '<key>' or consumer group '<group>'<suffix>" */
static void err_no_key_or_group(
    struct reply *r, const struct cg_args *a, uint32_t key, uint32_t group, const char *suffix)
{
    struct msg m;
    msg_init(&m);
    msg_text(&m, "NOGROUP No such key '");
    msg_arg(&m, a->argv[key], a->argl[key], SIZE_MAX);
    msg_text(&m, "' or consumer group '");
    msg_arg(&m, a->argv[group], a->argl[group], SIZE_MAX);
    msg_text(&m, "'");
    msg_text(&m, suffix);
    msg_reply(&m, r);
}

/* "NOGROUP No such consumer group '<group>' for key name '<key>'" */
static void err_no_group(struct reply *r, const struct cg_args *a, uint32_t key, uint32_t group)
{
    struct msg m;
    msg_init(&m);
    msg_text(&m, "NOGROUP No such consumer group '");
    msg_arg(&m, a->argv[group], a->argl[group], SIZE_MAX);
    msg_text(&m, "' for key name '");
    msg_arg(&m, a->argv[key], a->argl[key], SIZE_MAX);
    msg_text(&m, "'");
    msg_reply(&m, r);
}

/* addReplySubcommandSyntaxError: the subcommand as typed ("%.128s"), the command upper-cased. */
static void err_subcommand(struct reply *r, const struct cg_args *a, const char *command)
{
    struct msg m;
    msg_init(&m);
    msg_text(&m, "ERR unknown subcommand or wrong number of arguments for '");
    msg_arg(&m, a->argv[1], a->argl[1], 128);
    msg_text(&m, "'. Try ");
    msg_text(&m, command);
    msg_text(&m, " HELP.");
    msg_reply(&m, r);
}

/* ringraft's limits (cgroup.h): Redis has none. */
/* Whether g's PEL has room for `add` more pending entries; writes the error if not. */
static bool
check_pel_room(const struct cg_db *db, const struct cg_group *g, uint64_t add, struct reply *r)
{
    uint64_t pending = cg_pel_count(g);
    if (pending >= db->pel_max || add > db->pel_max - pending) {
        reply_errorf(r, "ERR too many pending entries in the consumer group (limit %llu)",
                     (unsigned long long)db->pel_max);
        return false;
    }
    return true;
}

static bool check_consumer_limits(const struct cg_group *g, size_t name_len, struct reply *r)
{
    if (name_len > CG_NAME_BYTES_MAX) {
        reply_errorf(r, "ERR consumer name too long (limit %u bytes)", CG_NAME_BYTES_MAX);
        return false;
    }
    if (cg_consumer_count(g) >= CG_CONSUMERS_MAX) {
        reply_errorf(r, "ERR too many consumers in the consumer group (limit %u)",
                     CG_CONSUMERS_MAX);
        return false;
    }
    return true;
}

static bool check_group_limits(const struct stream *s, size_t name_len, struct reply *r)
{
    if (name_len > CG_NAME_BYTES_MAX) {
        reply_errorf(r, "ERR consumer group name too long (limit %u bytes)", CG_NAME_BYTES_MAX);
        return false;
    }
    if (s != NULL && cg_group_count(s) >= CG_GROUPS_MAX) {
        reply_errorf(r, "ERR too many consumer groups for the stream (limit %u)", CG_GROUPS_MAX);
        return false;
    }
    return true;
}

/* ---- small reply helpers ------------------------------------------------------------------ */

/* *n then the body built aside (its overflow carries over). */
static void reply_array_body(struct reply *r, int64_t n, struct reply *body)
{
    reply_array(r, n);
    reply_raw(r, body->buf, body->len);
    if (body->overflow) {
        r->overflow = true;
    }
}

static void reply_bulk_str(struct reply *r, const char *s)
{
    reply_bulk(r, s, strlen(s));
}

static void reply_help(struct reply *r, const char *command, const char *const lines[], size_t n)
{
    reply_array(r, (int64_t)n + 3);
    char head[96];
    int len = snprintf(head, sizeof(head),
                       "%s <subcommand> [<arg> [value] [opt] ...]. Subcommands are:", command);
    RR_ASSERT(len > 0 && (size_t)len < sizeof(head));
    reply_simple(r, head);
    for (size_t i = 0; i < n; i++) {
        reply_simple(r, lines[i]);
    }
    reply_simple(r, "HELP");
    reply_simple(r, "    Prints this help.");
}

void cg_cmd_help(uint16_t cmd_id, struct reply *r)
{
    static const char *const xgroup[] = {
        "CREATE <key> <groupname> <id|$> [option]",
        "    Create a new consumer group. Options are:",
        "    * MKSTREAM",
        "      Create the empty stream if it does not exist.",
        "    * ENTRIESREAD entries_read",
        "      Set the group's entries_read counter (internal use).",
        "CREATECONSUMER <key> <groupname> <consumer>",
        "    Create a new consumer in the specified group.",
        "DELCONSUMER <key> <groupname> <consumer>",
        "    Remove the specified consumer.",
        "DESTROY <key> <groupname>",
        "    Remove the specified group.",
        "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
        "    Set the current group ID and entries_read counter.",
    };
    static const char *const xinfo[] = {
        "CONSUMERS <key> <groupname>",
        "    Show consumers of <groupname>.",
        "GROUPS <key>",
        "    Show the stream consumer groups.",
        "STREAM <key> [FULL [COUNT <count>]",
        "    Show information about the stream.",
    };
    if (cmd_id == CMD_ID_XGROUP_HELP) {
        reply_help(r, "XGROUP", xgroup, sizeof(xgroup) / sizeof(xgroup[0]));
    } else {
        RR_ASSERT(cmd_id == CMD_ID_XINFO_HELP);
        reply_help(r, "XINFO", xinfo, sizeof(xinfo) / sizeof(xinfo[0]));
    }
}

/* ---- pre-allocated pending entries ------------------------------------------------------ */

/* Nodes allocated before a command changes anything, chained through in_group.child[0]. */
struct nack_pool {
    struct cg_nack *head;
    uint64_t count;
};

static int pool_fill(struct nack_pool *p, uint64_t n)
{
    for (; p->count < n; p->count++) {
        struct cg_nack *x = cg_nack_new();
        if (x == NULL) {
            return RR_ENOMEM;
        }
        x->in_group.child[0] = (struct avl_node *)(void *)p->head;
        p->head = x;
    }
    return 0;
}

static struct cg_nack *pool_take(struct nack_pool *p)
{
    struct cg_nack *x = p->head;
    RR_ASSERT(x != NULL); /* the plan counted every node the command may need */
    p->head = (struct cg_nack *)(void *)x->in_group.child[0];
    p->count--;
    memset(x, 0, sizeof(*x));
    return x;
}

static void pool_free(struct nack_pool *p)
{
    while (p->head != NULL) {
        struct cg_nack *x = p->head;
        p->head = (struct cg_nack *)(void *)x->in_group.child[0];
        free(x);
    }
    p->count = 0;
}

/* The consumer a command reads or claims for: found (seen time refreshed) or, if absent,
 * the one the plan allocated for it (created). Redis's streamLookupConsumer + create. */
static struct cg_consumer *consumer_touch(
    struct cg_group *g, const uint8_t *name, size_t len, struct cg_consumer **fresh, int64_t now)
{
    struct cg_consumer *c = cg_consumer_find(g, name, len);
    if (c == NULL) {
        RR_ASSERT(fresh != NULL && *fresh != NULL);
        c = *fresh;
        *fresh = NULL;
        cg_consumer_link(g, c);
    }
    c->seen_time = now;
    return c;
}

/* ---- XGROUP (xgroupCommand) -------------------------------------------------------------- */

static int xgroup_create(const struct cg_db *db,
                         const struct cg_args *a,
                         struct stream *s,
                         int64_t entries_read,
                         struct reply *r)
{
    if (a->argc > 8) {
        err_subcommand(r, a, "XGROUP");
        return 0;
    }
    struct stream_id id;
    if (arg_cstr_is(a, 4, "$")) {
        id = s != NULL ? stream_last_id(s) : (struct stream_id){0, 0};
    } else if (stream_id_parse(a->argv[4], a->argl[4], 0, true, &id, r) != 0) {
        return 0;
    }
    if (s != NULL && cg_group_find(s, a->argv[3], a->argl[3]) != NULL) {
        reply_error(r, "BUSYGROUP Consumer Group name already exists");
        return 0;
    }
    if (!check_group_limits(s, a->argl[3], r)) {
        return 0;
    }
    struct cg_group *g = cg_group_new(a->argv[3], a->argl[3], id, entries_read);
    if (g == NULL) {
        return RR_ENOMEM;
    }
    if (s == NULL) {
        /* MKSTREAM, now that the command can no longer fail. */
        s = db->mkstream(db->ctx, a->argv[2], a->argl[2]);
        if (s == NULL) {
            cg_group_free(g);
            return RR_ENOMEM;
        }
    }
    cg_group_link(s, g);
    reply_simple(r, "OK");
    return 0;
}

static int xgroup_setid(const struct cg_args *a,
                        struct stream *s,
                        struct cg_group *g,
                        int64_t entries_read,
                        struct reply *r)
{
    if (a->argc != 5 && a->argc != 7) {
        err_subcommand(r, a, "XGROUP");
        return 0;
    }
    struct stream_id id;
    if (arg_cstr_is(a, 4, "$")) {
        id = stream_last_id(s);
    } else if (stream_id_parse(a->argv[4], a->argl[4], 0, false, &id, r) != 0) {
        return 0;
    }
    g->last_id = id;
    g->entries_read = entries_read; /* without ENTRIESREAD: unknown again */
    reply_simple(r, "OK");
    return 0;
}

static int xgroup_createconsumer(const struct cg_db *db,
                                 const struct cg_args *a,
                                 struct cg_group *g,
                                 struct reply *r)
{
    if (cg_consumer_find(g, a->argv[4], a->argl[4]) != NULL) {
        reply_int(r, 0);
        return 0;
    }
    if (!check_consumer_limits(g, a->argl[4], r)) {
        return 0;
    }
    struct cg_consumer *c = cg_consumer_new(a->argv[4], a->argl[4], db->now);
    if (c == NULL) {
        return RR_ENOMEM;
    }
    cg_consumer_link(g, c);
    reply_int(r, 1);
    return 0;
}

static int xgroup(uint16_t id, const struct cg_db *db, const struct cg_args *a, struct reply *r)
{
    RR_ASSERT(a->argc >= 4); /* the subcommands' arities */
    bool create = id == CMD_ID_XGROUP_CREATE;
    bool setid = id == CMD_ID_XGROUP_SETID;
    bool mkstream = false;
    int64_t entries_read = CG_ENTRIES_READ_UNKNOWN;
    /* CREATE's and SETID's options first, so that their errors come before any other. */
    for (uint32_t i = 5; i < a->argc;) {
        if (create && arg_is(a, i, "mkstream")) {
            mkstream = true;
            i++;
        } else if ((create || setid) && arg_is(a, i, "entriesread") && i + 1 < a->argc) {
            if (!util_parse_i64(a->argv[i + 1], a->argl[i + 1], &entries_read)) {
                reply_error(r, err_notint);
                return 0;
            }
            if (entries_read < 0 && entries_read != CG_ENTRIES_READ_UNKNOWN) {
                reply_error(r, "ERR value for ENTRIESREAD must be positive or -1");
                return 0;
            }
            i += 2;
        } else {
            err_subcommand(r, a, "XGROUP");
            return 0;
        }
    }
    bool wrong_type;
    struct stream *s = db->lookup(db->ctx, a->argv[2], a->argl[2], &wrong_type);
    if (wrong_type) {
        reply_error(r, err_wrongtype);
        return 0;
    }
    struct cg_group *g = NULL;
    if (!mkstream) {
        if (s == NULL) {
            reply_error(r, err_key_missing);
            return 0;
        }
        g = cg_group_find(s, a->argv[3], a->argl[3]);
        if (g == NULL && !create && id != CMD_ID_XGROUP_DESTROY) {
            err_no_group(r, a, 2, 3);
            return 0;
        }
    }
    switch (id) {
    case CMD_ID_XGROUP_CREATE:
        return xgroup_create(db, a, s, entries_read, r);
    case CMD_ID_XGROUP_SETID:
        return xgroup_setid(a, s, g, entries_read, r);
    case CMD_ID_XGROUP_DESTROY:
        if (g != NULL) {
            cg_group_destroy(s, g);
        }
        reply_int(r, g != NULL ? 1 : 0);
        return 0;
    case CMD_ID_XGROUP_CREATECONSUMER:
        return xgroup_createconsumer(db, a, g, r);
    case CMD_ID_XGROUP_DELCONSUMER: {
        struct cg_consumer *c = cg_consumer_find(g, a->argv[4], a->argl[4]);
        reply_int(r, c != NULL ? (int64_t)cg_consumer_delete(g, c) : 0);
        return 0;
    }
    default:
        RR_ASSERT(false && "not an XGROUP write subcommand");
        return 0;
    }
}

/* ---- XACK (xackCommand) ------------------------------------------------------------------- */

/* Parses argv[first..argc) as strict IDs into *out (stack when few); 0, RR_EINVAL after
 * writing the error, or RR_ENOMEM. */
static int parse_ids(const struct cg_args *a,
                     uint32_t first,
                     struct stream_id *stack,
                     struct stream_id **out,
                     struct reply *r)
{
    uint32_t n = a->argc - first;
    *out = n <= CG_IDS_STACK ? stack : malloc((size_t)n * sizeof(**out));
    if (*out == NULL) {
        return RR_ENOMEM;
    }
    for (uint32_t j = 0; j < n; j++) {
        if (stream_id_parse(a->argv[first + j], a->argl[first + j], 0, true, &(*out)[j], r) != 0) {
            if (*out != stack) {
                free(*out);
            }
            return RR_EINVAL;
        }
    }
    return 0;
}

static int xack(const struct cg_db *db, const struct cg_args *a, struct reply *r)
{
    bool wrong_type;
    struct stream *s = db->lookup(db->ctx, a->argv[1], a->argl[1], &wrong_type);
    if (wrong_type) {
        reply_error(r, err_wrongtype);
        return 0;
    }
    struct cg_group *g = s != NULL ? cg_group_find(s, a->argv[2], a->argl[2]) : NULL;
    if (g == NULL) {
        reply_int(r, 0); /* nothing to acknowledge */
        return 0;
    }
    /* Every ID is parsed before any is acknowledged: all or nothing. */
    struct stream_id stack[CG_IDS_STACK];
    struct stream_id *ids;
    int rc = parse_ids(a, 3, stack, &ids, r);
    if (rc != 0) {
        return rc == RR_ENOMEM ? RR_ENOMEM : 0;
    }
    int64_t acked = 0;
    for (uint32_t j = 0; j < a->argc - 3; j++) {
        struct cg_nack *n = cg_nack_find(g, ids[j]);
        if (n != NULL) {
            cg_nack_delete(g, n);
            acked++;
        }
    }
    if (ids != stack) {
        free(ids);
    }
    reply_int(r, acked);
    return 0;
}

/* ---- XREADGROUP (xreadCommand with GROUP, streamReplyWithRange) ------------------------- */

struct xrg_key {
    struct stream *s;
    struct cg_group *g;
    struct stream_id id; /* the ID argument; the maximum ID stands for ">" */
};

struct xrg {
    const uint8_t *group;
    size_t group_len;
    const uint8_t *consumer;
    size_t consumer_len;
    int64_t count; /* 0: no limit */
    bool noack;
    bool block; /* BLOCK given: delivering nothing sets db->blocked */
    uint32_t first_key;
    uint32_t keys;
};

/* xreadCommand's option loop. 0, or RR_EINVAL after writing the error. */
static int
xrg_parse(const struct cg_db *db, const struct cg_args *a, struct xrg *x, struct reply *r)
{
    (void)db;
    memset(x, 0, sizeof(*x));
    for (uint32_t i = 1; i < a->argc; i++) {
        uint32_t more = a->argc - i - 1;
        if (arg_is(a, i, "block") && more > 0) {
            /* Checked here; the waiting is the node's (sm_apply_blocked). */
            int64_t t;
            i++;
            if (!util_parse_i64(a->argv[i], a->argl[i], &t)) {
                reply_error(r, "ERR timeout is not an integer or out of range");
                return RR_EINVAL;
            }
            if (t < 0) {
                reply_error(r, "ERR timeout is negative");
                return RR_EINVAL;
            }
            x->block = true;
        } else if (arg_is(a, i, "count") && more > 0) {
            i++;
            if (!util_parse_i64(a->argv[i], a->argl[i], &x->count)) {
                reply_error(r, err_notint);
                return RR_EINVAL;
            }
            if (x->count < 0) {
                x->count = 0;
            }
        } else if (arg_is(a, i, "streams") && more > 0) {
            x->first_key = i + 1;
            if ((a->argc - x->first_key) % 2 != 0) {
                reply_error(r, "ERR Unbalanced XREAD list of streams: for each stream key an ID "
                               "or '$' must be specified.");
                return RR_EINVAL;
            }
            x->keys = (a->argc - x->first_key) / 2;
            break;
        } else if (arg_is(a, i, "group") && more >= 2) {
            x->group = a->argv[i + 1];
            x->group_len = a->argl[i + 1];
            x->consumer = a->argv[i + 2];
            x->consumer_len = a->argl[i + 2];
            i += 2;
        } else if (arg_is(a, i, "noack")) {
            x->noack = true;
        } else {
            reply_error(r, err_syntax);
            return RR_EINVAL;
        }
    }
    if (x->first_key == 0) {
        reply_error(r, err_syntax);
        return RR_EINVAL;
    }
    if (x->group == NULL) {
        reply_error(r, "ERR Missing GROUP option for XREADGROUP");
        return RR_EINVAL;
    }
    return 0;
}

/* Each key's stream, group and ID, checked in Redis's order. 0 or RR_EINVAL (error written). */
static int xrg_keys(const struct cg_db *db,
                    const struct cg_args *a,
                    const struct xrg *x,
                    struct xrg_key *k,
                    struct reply *r)
{
    for (uint32_t i = 0; i < x->keys; i++) {
        uint32_t key = x->first_key + i;
        uint32_t arg = key + x->keys;
        bool wrong_type;
        k[i].s = db->lookup(db->ctx, a->argv[key], a->argl[key], &wrong_type);
        if (wrong_type) {
            reply_error(r, err_wrongtype);
            return RR_EINVAL;
        }
        k[i].g = k[i].s != NULL ? cg_group_find(k[i].s, x->group, x->group_len) : NULL;
        if (k[i].g == NULL) {
            struct msg m;
            msg_init(&m);
            msg_text(&m, "NOGROUP No such key '");
            msg_arg(&m, a->argv[key], a->argl[key], SIZE_MAX);
            msg_text(&m, "' or consumer group '");
            msg_arg(&m, x->group, x->group_len, SIZE_MAX);
            msg_text(&m, "' in XREADGROUP with GROUP option");
            msg_reply(&m, r);
            return RR_EINVAL;
        }
        if (arg_cstr_is(a, arg, "$")) {
            reply_error(r, "ERR The $ ID is meaningless in the context of XREADGROUP: you want to "
                           "read the history of this consumer by specifying a proper ID, or use "
                           "the > ID to get new messages. The $ ID would just return an empty "
                           "result set.");
            return RR_EINVAL;
        }
        if (arg_cstr_is(a, arg, ">")) {
            k[i].id = id_max;
        } else if (stream_id_parse(a->argv[arg], a->argl[arg], 0, true, &k[i].id, r) != 0) {
            return RR_EINVAL;
        }
    }
    return 0;
}

static bool id_is_max(struct stream_id id)
{
    return id.ms == UINT64_MAX && id.seq == UINT64_MAX;
}

/* Whether key k is served: a history read (any ID but the maximum, which Redis takes for
 * ">"), or ">" with entries after the group's last delivered ID. */
static bool xrg_served(const struct xrg_key *k)
{
    return !id_is_max(k->id) || stream_has_after(k->s, k->g->last_id);
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (void *const *)a;
    uintptr_t y = (uintptr_t) * (void *const *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

/* What serving may allocate: a consumer per group (sorted by address, each once) that gets
 * one, and pending entry nodes for ">" reads. Limits are checked here. */
struct xrg_plan {
    struct cg_group **groups;   /* groups that get a new consumer, sorted */
    struct cg_consumer **fresh; /* fresh[i] for groups[i]; NULL once linked */
    uint32_t n;
    struct nack_pool pool;
};

static void xrg_plan_free(struct xrg_plan *p)
{
    for (uint32_t i = 0; i < p->n; i++) {
        free(p->fresh[i]);
    }
    free(p->groups);
    free(p->fresh);
    pool_free(&p->pool);
}

/* How many new entries xrg_serve_new delivers from key k now: those after the group's last
 * delivered ID, at most COUNT and (unless NOACK) the room left in the group's PEL. */
static uint64_t xrg_new_max(const struct cg_db *db, const struct xrg *x, const struct xrg_key *k)
{
    uint64_t n = stream_length(k->s) - stream_pos_after(k->s, k->g->last_id);
    if (x->count > 0 && (uint64_t)x->count < n) {
        n = (uint64_t)x->count;
    }
    if (!x->noack) {
        uint64_t pending = cg_pel_count(k->g);
        uint64_t room = pending < db->pel_max ? db->pel_max - pending : 0;
        n = room < n ? room : n;
    }
    return n;
}

static int xrg_plan(const struct cg_db *db,
                    const struct xrg *x,
                    const struct xrg_key *k,
                    struct xrg_plan *p,
                    struct reply *r)
{
    memset(p, 0, sizeof(*p));
    p->groups = calloc(x->keys, sizeof(*p->groups));
    p->fresh = calloc(x->keys, sizeof(*p->fresh));
    if (p->groups == NULL || p->fresh == NULL) {
        return RR_ENOMEM;
    }
    uint64_t nodes = 0;
    for (uint32_t i = 0; i < x->keys; i++) {
        /* A group's consumer is created by the first key of that group that is served; a
         * later key of the same group is served only if an earlier one was or it reads
         * history, so checking each key against the state before the command is exact. */
        bool served = xrg_served(&k[i]);
        if (served && cg_consumer_find(k[i].g, x->consumer, x->consumer_len) == NULL) {
            p->groups[p->n++] = k[i].g;
        }
        if (served && id_is_max(k[i].id) && !x->noack) {
            if (!check_pel_room(db, k[i].g, 1, r)) {
                return RR_EINVAL;
            }
            /* xrg_serve_new delivers at most this (COUNT, the PEL's room) from this key. */
            nodes += xrg_new_max(db, x, &k[i]);
        }
    }
    qsort(p->groups, p->n, sizeof(*p->groups), cmp_ptr);
    uint32_t unique = 0;
    for (uint32_t i = 0; i < p->n; i++) {
        if (unique == 0 || p->groups[unique - 1] != p->groups[i]) {
            p->groups[unique++] = p->groups[i];
        }
    }
    p->n = unique;
    for (uint32_t i = 0; i < p->n; i++) {
        if (!check_consumer_limits(p->groups[i], x->consumer_len, r)) {
            return RR_EINVAL;
        }
        p->fresh[i] = cg_consumer_new(x->consumer, x->consumer_len, 0);
        if (p->fresh[i] == NULL) {
            return RR_ENOMEM;
        }
    }
    return pool_fill(&p->pool, nodes);
}

static struct cg_consumer **xrg_fresh_for(struct xrg_plan *p, const struct cg_group *g)
{
    struct cg_group *const *at = bsearch(&g, p->groups, p->n, sizeof(*p->groups), cmp_ptr);
    return at == NULL ? NULL : &p->fresh[at - p->groups];
}

/* ">": the entries after the group's last delivered ID (streamReplyWithRange with a group). */
static void xrg_serve_new(const struct cg_db *db,
                          const struct xrg *x,
                          struct xrg_key *k,
                          struct cg_consumer *c,
                          struct xrg_plan *p,
                          struct reply *body)
{
    struct stream *s = k->s;
    struct cg_group *g = k->g;
    uint64_t pos = stream_pos_after(s, g->last_id);
    uint64_t n = xrg_new_max(db, x, k);
    reply_array(body, (int64_t)n);
    for (uint64_t i = 0; i < n; i++) {
        struct stream_id id = stream_id_at(s, pos + i);
        cg_group_advance(s, g, id);
        stream_reply_entry_at(s, pos + i, body);
        if (x->noack) {
            continue;
        }
        /* Already pending (the group's ID was set back, or XCLAIM FORCE): it moves to this
         * consumer and counts as a first delivery, as in Redis. */
        struct cg_nack *nack = cg_nack_find(g, id);
        if (nack != NULL) {
            cg_nack_move(nack, c);
        } else {
            nack = pool_take(&p->pool);
            nack->id = id;
            cg_nack_link(g, nack, c);
        }
        nack->delivery_time = db->now;
        nack->delivery_count = 1;
    }
}

/* An ID: the consumer's own pending entries after it (streamReplyWithRangeFromConsumerPEL).
 * An entry the stream no longer has is reported as [id, nil] and not counted as delivered. */
static void xrg_serve_history(const struct cg_db *db,
                              const struct xrg *x,
                              struct xrg_key *k,
                              struct cg_consumer *c,
                              struct reply *body)
{
    struct stream_id start = k->id;
    stream_id_incr(&start);
    uint64_t n = 0;
    for (const struct cg_nack *e = cg_consumer_nack_ceil(c, start);
         e != NULL && (x->count == 0 || n < (uint64_t)x->count); e = cg_consumer_nack_next(c, e)) {
        n++;
    }
    reply_array(body, (int64_t)n);
    struct cg_nack *e = cg_consumer_nack_ceil(c, start);
    for (uint64_t i = 0; i < n; i++, e = cg_consumer_nack_next(c, e)) {
        if (stream_reply_entry(k->s, e->id, body)) {
            e->delivery_time = db->now;
            e->delivery_count++;
        } else {
            reply_array(body, 2);
            stream_reply_id(body, e->id);
            reply_null_array(body);
        }
    }
}

static int xreadgroup(const struct cg_db *db, const struct cg_args *a, struct reply *r)
{
    struct xrg x;
    if (xrg_parse(db, a, &x, r) != 0) {
        return 0;
    }
    struct xrg_key stack[CG_IDS_STACK];
    struct xrg_key *k = x.keys <= CG_IDS_STACK ? stack : calloc(x.keys, sizeof(*k));
    if (k == NULL) {
        return RR_ENOMEM;
    }
    struct xrg_plan plan;
    memset(&plan, 0, sizeof(plan));
    struct reply body;
    reply_init(&body, r->limit);
    int rc = xrg_keys(db, a, &x, k, r);
    if (rc == 0) {
        rc = xrg_plan(db, &x, k, &plan, r);
    }
    if (rc != 0) {
        goto out;
    }
    /* From here on nothing can fail. */
    int64_t served = 0;
    for (uint32_t i = 0; i < x.keys; i++) {
        if (!xrg_served(&k[i])) {
            continue;
        }
        served++;
        struct cg_consumer *c = consumer_touch(k[i].g, x.consumer, x.consumer_len,
                                               xrg_fresh_for(&plan, k[i].g), db->now);
        reply_array(&body, 2);
        reply_bulk(&body, a->argv[x.first_key + i], a->argl[x.first_key + i]);
        if (id_is_max(k[i].id)) {
            xrg_serve_new(db, &x, &k[i], c, &plan, &body);
        } else {
            xrg_serve_history(db, &x, &k[i], c, &body);
        }
    }
    if (served == 0) {
        reply_null_array(r); /* a timeout's reply, if the node does not make it wait */
        if (x.block && db->blocked != NULL) {
            *db->blocked = true;
        }
    } else {
        reply_array_body(r, served, &body);
    }
out:
    xrg_plan_free(&plan);
    reply_free(&body);
    if (k != stack) {
        free(k);
    }
    return rc == RR_ENOMEM ? RR_ENOMEM : 0;
}

/* ---- XCLAIM (xclaimCommand) --------------------------------------------------------------- */

struct xclaim {
    int64_t min_idle;
    int64_t delivery_time; /* -1: now */
    int64_t retry_count;   /* -1: not given */
    bool force;
    bool justid;
    bool last_id_given;
    struct stream_id last_id;
    uint32_t ids; /* argv[5 .. 5 + ids) are the IDs */
};

/* The options after the IDs: the IDs are the arguments from argv[5] that parse as IDs. */
static int
xclaim_parse(const struct cg_db *db, const struct cg_args *a, struct xclaim *x, struct reply *r)
{
    memset(x, 0, sizeof(*x));
    x->delivery_time = -1;
    x->retry_count = -1;
    if (!util_parse_i64(a->argv[4], a->argl[4], &x->min_idle)) {
        reply_error(r, "ERR Invalid min-idle-time argument for XCLAIM");
        return RR_EINVAL;
    }
    if (x->min_idle < 0) {
        x->min_idle = 0;
    }
    uint32_t j = 5;
    struct stream_id id;
    while (j < a->argc && stream_id_parse(a->argv[j], a->argl[j], 0, true, &id, NULL) == 0) {
        j++;
    }
    x->ids = j - 5;
    for (; j < a->argc; j++) {
        uint32_t more = a->argc - 1 - j;
        int64_t v;
        if (arg_is(a, j, "force")) {
            x->force = true;
        } else if (arg_is(a, j, "justid")) {
            x->justid = true;
        } else if (arg_is(a, j, "idle") && more > 0) {
            j++;
            if (!util_parse_i64(a->argv[j], a->argl[j], &v)) {
                reply_error(r, "ERR Invalid IDLE option argument for XCLAIM");
                return RR_EINVAL;
            }
            x->delivery_time = (int64_t)((uint64_t)db->now - (uint64_t)v);
        } else if (arg_is(a, j, "time") && more > 0) {
            j++;
            if (!util_parse_i64(a->argv[j], a->argl[j], &x->delivery_time)) {
                reply_error(r, "ERR Invalid TIME option argument for XCLAIM");
                return RR_EINVAL;
            }
        } else if (arg_is(a, j, "retrycount") && more > 0) {
            j++;
            if (!util_parse_i64(a->argv[j], a->argl[j], &x->retry_count)) {
                reply_error(r, "ERR Invalid RETRYCOUNT option argument for XCLAIM");
                return RR_EINVAL;
            }
        } else if (arg_is(a, j, "lastid") && more > 0) {
            j++;
            if (stream_id_parse(a->argv[j], a->argl[j], 0, true, &x->last_id, r) != 0) {
                return RR_EINVAL;
            }
            x->last_id_given = true;
        } else {
            struct msg m;
            msg_init(&m);
            msg_text(&m, "ERR Unrecognized XCLAIM option '");
            msg_arg(&m, a->argv[j], a->argl[j], SIZE_MAX);
            msg_text(&m, "'");
            msg_reply(&m, r);
            return RR_EINVAL;
        }
    }
    /* A bogus time (negative, or in the future) becomes now, as in Redis. */
    if (x->delivery_time < 0 || x->delivery_time > db->now) {
        x->delivery_time = db->now;
    }
    return 0;
}

static struct stream_id xclaim_id(const struct cg_args *a, uint32_t i)
{
    struct stream_id id;
    int rc = stream_id_parse(a->argv[5 + i], a->argl[5 + i], 0, true, &id, NULL);
    RR_ASSERT(rc == 0); /* parsed once already */
    return id;
}

/* now - then in milliseconds, without overflow whatever an image held: 0 if then is later,
 * at most INT64_MAX. */
static int64_t idle_ms(int64_t now, int64_t then)
{
    if (then >= now) {
        return 0;
    }
    uint64_t d = (uint64_t)now - (uint64_t)then;
    return d > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)d;
}

/* An existing pending entry is claimable unless MIN-IDLE says it is too recent. */
static bool idle_enough(const struct cg_nack *n, int64_t min_idle, int64_t now)
{
    return min_idle == 0 || idle_ms(now, n->delivery_time) >= min_idle;
}

static int xclaim(const struct cg_db *db, const struct cg_args *a, struct reply *r)
{
    bool wrong_type;
    struct stream *s = db->lookup(db->ctx, a->argv[1], a->argl[1], &wrong_type);
    if (wrong_type) {
        reply_error(r, err_wrongtype);
        return 0;
    }
    struct cg_group *g = s != NULL ? cg_group_find(s, a->argv[2], a->argl[2]) : NULL;
    if (g == NULL) {
        err_no_key_or_group(r, a, 1, 2, "");
        return 0;
    }
    struct xclaim x;
    if (xclaim_parse(db, a, &x, r) != 0) {
        return 0;
    }
    /* The plan. Before the first claim the command only drops pending entries whose stream
     * entry is gone, which changes no other ID's fate: so whether it claims anything (and
     * needs its consumer) is known from the state now. FORCE may add one node per ID. */
    const uint8_t *name = a->argv[3];
    size_t name_len = a->argl[3];
    bool claims = false;
    uint64_t nodes = 0;
    for (uint32_t i = 0; i < x.ids; i++) {
        struct stream_id id = xclaim_id(a, i);
        const struct cg_nack *n = cg_nack_find(g, id);
        if (!stream_contains(s, id)) {
            continue;
        }
        nodes += n == NULL && x.force ? 1 : 0;
        claims =
            claims || (n != NULL && idle_enough(n, x.min_idle, db->now)) || (n == NULL && x.force);
    }
    if (nodes > 0 && !check_pel_room(db, g, nodes, r)) {
        return 0;
    }
    struct cg_consumer *fresh = NULL;
    struct nack_pool pool = {NULL, 0};
    struct reply body;
    reply_init(&body, r->limit);
    int rc = 0;
    if (claims && cg_consumer_find(g, name, name_len) == NULL) {
        if (!check_consumer_limits(g, name_len, r)) {
            return 0;
        }
        fresh = cg_consumer_new(name, name_len, db->now);
        rc = fresh == NULL ? RR_ENOMEM : 0;
    }
    if (rc == 0) {
        rc = pool_fill(&pool, nodes);
    }
    if (rc != 0) {
        goto out;
    }
    /* From here on nothing can fail. */
    if (x.last_id_given && stream_id_cmp(x.last_id, g->last_id) > 0) {
        g->last_id = x.last_id; /* the read counter is left as it is */
    }
    struct cg_consumer *c = NULL;
    int64_t claimed = 0;
    for (uint32_t i = 0; i < x.ids; i++) {
        struct stream_id id = xclaim_id(a, i);
        struct cg_nack *n = cg_nack_find(g, id);
        if (!stream_contains(s, id)) {
            if (n != NULL) {
                cg_nack_delete(g, n); /* the entry is gone: so is its pending entry */
            }
            continue;
        }
        bool forced = n == NULL;
        if (forced) {
            if (!x.force) {
                continue;
            }
            n = pool_take(&pool);
            n->id = id;
            n->delivery_count = 1; /* streamCreateNACK */
        } else if (!idle_enough(n, x.min_idle, db->now)) {
            continue;
        }
        if (c == NULL) {
            c = consumer_touch(g, name, name_len, &fresh, db->now);
        }
        if (forced) {
            cg_nack_link(g, n, c);
        } else {
            cg_nack_move(n, c);
        }
        n->delivery_time = x.delivery_time;
        if (x.retry_count >= 0) {
            n->delivery_count = (uint64_t)x.retry_count;
        } else if (!x.justid) {
            n->delivery_count++;
        }
        if (x.justid) {
            stream_reply_id(&body, id);
        } else {
            bool found = stream_reply_entry(s, id, &body);
            RR_ASSERT(found);
        }
        claimed++;
    }
    reply_array_body(r, claimed, &body);
out:
    free(fresh);
    pool_free(&pool);
    reply_free(&body);
    return rc;
}

/* ---- XAUTOCLAIM (xautoclaimCommand) ------------------------------------------------------- */

struct xautoclaim {
    int64_t min_idle;
    struct stream_id start;
    int64_t count;
    bool justid;
};

static int xautoclaim_parse(const struct cg_args *a, struct xautoclaim *x, struct reply *r)
{
    x->count = CG_AUTOCLAIM_COUNT;
    x->justid = false;
    if (!util_parse_i64(a->argv[4], a->argl[4], &x->min_idle)) {
        reply_error(r, "ERR Invalid min-idle-time argument for XAUTOCLAIM");
        return RR_EINVAL;
    }
    if (x->min_idle < 0) {
        x->min_idle = 0;
    }
    if (stream_parse_range_bound(a->argv[5], a->argl[5], false, &x->start, r) != 0) {
        return RR_EINVAL;
    }
    for (uint32_t j = 6; j < a->argc; j++) {
        uint32_t more = a->argc - 1 - j;
        if (arg_is(a, j, "count") && more > 0) {
            if (!util_parse_i64(a->argv[j + 1], a->argl[j + 1], &x->count) || x->count < 1 ||
                x->count > CG_AUTOCLAIM_COUNT_MAX) {
                reply_error(r, "ERR COUNT must be > 0");
                return RR_EINVAL;
            }
            j++;
        } else if (arg_is(a, j, "justid")) {
            x->justid = true;
        } else {
            reply_error(r, err_syntax);
            return RR_EINVAL;
        }
    }
    return 0;
}

/* Whether the scan claims anything: the same walk without the changes (dropping entries
 * whose stream entry is gone changes nothing for the others). */
static bool xautoclaim_claims(const struct stream *s,
                              const struct cg_group *g,
                              const struct xautoclaim *x,
                              int64_t now)
{
    int64_t attempts = x->count * CG_AUTOCLAIM_ATTEMPTS;
    int64_t count = x->count;
    for (const struct cg_nack *n = cg_nack_ceil(g, x->start);
         attempts-- > 0 && count > 0 && n != NULL; n = cg_nack_next(g, n)) {
        if (!stream_contains(s, n->id)) {
            count--;
        } else if (idle_enough(n, x->min_idle, now)) {
            return true;
        }
    }
    return false;
}

static int xautoclaim(const struct cg_db *db, const struct cg_args *a, struct reply *r)
{
    struct xautoclaim x;
    if (xautoclaim_parse(a, &x, r) != 0) {
        return 0;
    }
    bool wrong_type;
    struct stream *s = db->lookup(db->ctx, a->argv[1], a->argl[1], &wrong_type);
    if (wrong_type) {
        reply_error(r, err_wrongtype);
        return 0;
    }
    struct cg_group *g = s != NULL ? cg_group_find(s, a->argv[2], a->argl[2]) : NULL;
    if (g == NULL) {
        err_no_key_or_group(r, a, 1, 2, "");
        return 0;
    }
    const uint8_t *name = a->argv[3];
    size_t name_len = a->argl[3];
    struct cg_consumer *fresh = NULL;
    if (xautoclaim_claims(s, g, &x, db->now) && cg_consumer_find(g, name, name_len) == NULL) {
        if (!check_consumer_limits(g, name_len, r)) {
            return 0;
        }
        fresh = cg_consumer_new(name, name_len, db->now);
        if (fresh == NULL) {
            return RR_ENOMEM;
        }
    }
    /* From here on nothing can fail. The loop is Redis's
     *   while (attempts-- && count && raxNext(&ri))
     * and the cursor is the PEL entry after the last one examined (0-0 at the end). */
    struct reply claimed_body;
    struct reply deleted_body;
    reply_init(&claimed_body, r->limit);
    reply_init(&deleted_body, r->limit);
    int64_t attempts = x.count * CG_AUTOCLAIM_ATTEMPTS;
    int64_t count = x.count;
    int64_t claimed = 0;
    int64_t deleted = 0;
    struct cg_consumer *c = NULL;
    struct cg_nack *n = cg_nack_ceil(g, x.start);
    while (attempts-- > 0 && count > 0 && n != NULL) {
        struct cg_nack *next = cg_nack_next(g, n);
        struct stream_id id = n->id;
        if (!stream_contains(s, id)) {
            cg_nack_delete(g, n); /* the entry is gone: so is its pending entry */
            stream_reply_id(&deleted_body, id);
            deleted++;
            count--;
        } else if (idle_enough(n, x.min_idle, db->now)) {
            if (c == NULL) {
                c = consumer_touch(g, name, name_len, &fresh, db->now);
            }
            cg_nack_move(n, c);
            n->delivery_time = db->now;
            if (!x.justid) {
                n->delivery_count++;
            }
            if (x.justid) {
                stream_reply_id(&claimed_body, id);
            } else {
                bool found = stream_reply_entry(s, id, &claimed_body);
                RR_ASSERT(found);
            }
            claimed++;
            count--;
        }
        n = next;
    }
    reply_array(r, 3);
    stream_reply_id(r, n != NULL ? n->id : (struct stream_id){0, 0});
    reply_array_body(r, claimed, &claimed_body);
    reply_array_body(r, deleted, &deleted_body);
    reply_free(&claimed_body);
    reply_free(&deleted_body);
    free(fresh);
    return 0;
}

int cg_cmd_write(uint16_t cmd_id,
                 const struct cg_db *db,
                 uint32_t argc,
                 const uint8_t *const argv[],
                 const uint32_t argl[],
                 struct reply *r)
{
    RR_ASSERT(db->mkstream != NULL);
    struct cg_args a = {argc, argv, argl};
    switch (cmd_id) {
    case CMD_ID_XREADGROUP:
        return xreadgroup(db, &a, r);
    case CMD_ID_XACK:
        return xack(db, &a, r);
    case CMD_ID_XCLAIM:
        return xclaim(db, &a, r);
    case CMD_ID_XAUTOCLAIM:
        return xautoclaim(db, &a, r);
    case CMD_ID_XGROUP_CREATE:
    case CMD_ID_XGROUP_SETID:
    case CMD_ID_XGROUP_DESTROY:
    case CMD_ID_XGROUP_CREATECONSUMER:
    case CMD_ID_XGROUP_DELCONSUMER:
        return xgroup(cmd_id, db, &a, r);
    default:
        RR_ASSERT(false && "not a consumer group write");
        return 0;
    }
}

/* ---- XPENDING (xpendingCommand) ----------------------------------------------------------- */

struct xpending {
    bool summary;
    int64_t min_idle;
    struct stream_id start;
    struct stream_id end;
    int64_t count;
    uint32_t consumer; /* argument index, 0: none */
};

static int xpending_parse(const struct cg_args *a, struct xpending *x, struct reply *r)
{
    memset(x, 0, sizeof(*x));
    x->summary = a->argc == 3;
    if (a->argc != 3 && (a->argc < 6 || a->argc > 9)) {
        reply_error(r, err_syntax);
        return RR_EINVAL;
    }
    if (a->argc < 6) {
        return 0;
    }
    uint32_t start = 3;
    if (arg_is(a, 3, "idle")) {
        if (!util_parse_i64(a->argv[4], a->argl[4], &x->min_idle)) {
            reply_error(r, err_notint);
            return RR_EINVAL;
        }
        if (a->argc < 8) {
            reply_error(r, err_syntax);
            return RR_EINVAL;
        }
        start += 2;
    }
    if (!util_parse_i64(a->argv[start + 2], a->argl[start + 2], &x->count)) {
        reply_error(r, err_notint);
        return RR_EINVAL;
    }
    if (x->count < 0) {
        x->count = 0;
    }
    if (stream_parse_range_bound(a->argv[start], a->argl[start], false, &x->start, r) != 0 ||
        stream_parse_range_bound(a->argv[start + 1], a->argl[start + 1], true, &x->end, r) != 0) {
        return RR_EINVAL;
    }
    x->consumer = start + 3 < a->argc ? start + 3 : 0;
    return 0;
}

static void xpending_summary(const struct cg_group *g, struct reply *r)
{
    reply_array(r, 4);
    reply_int(r, (int64_t)cg_pel_count(g));
    if (cg_pel_count(g) == 0) {
        reply_null(r);
        reply_null(r);
        reply_null_array(r);
        return;
    }
    stream_reply_id(r, cg_nack_first(g)->id);
    stream_reply_id(r, cg_nack_last(g)->id);
    int64_t with = 0;
    for (const struct cg_consumer *c = cg_consumer_first(g); c != NULL;
         c = cg_consumer_next(g, c)) {
        with += cg_consumer_pel_count(c) > 0 ? 1 : 0;
    }
    reply_array(r, with);
    for (const struct cg_consumer *c = cg_consumer_first(g); c != NULL;
         c = cg_consumer_next(g, c)) {
        if (cg_consumer_pel_count(c) > 0) {
            reply_array(r, 2);
            reply_bulk(r, c->name, c->name_len);
            reply_bulk_int(r, (int64_t)cg_consumer_pel_count(c));
        }
    }
}

static void xpending_range(const struct cg_db *db,
                           const struct cg_group *g,
                           const struct cg_consumer *c,
                           const struct xpending *x,
                           struct reply *r)
{
    struct reply body;
    reply_init(&body, r->limit);
    int64_t n = 0;
    int64_t count = x->count;
    const struct cg_nack *e =
        c != NULL ? cg_consumer_nack_ceil(c, x->start) : cg_nack_ceil(g, x->start);
    for (; count > 0 && e != NULL && stream_id_cmp(e->id, x->end) <= 0;
         e = c != NULL ? cg_consumer_nack_next(c, e) : cg_nack_next(g, e)) {
        int64_t idle = idle_ms(db->now, e->delivery_time);
        if (x->min_idle != 0 && idle < x->min_idle) {
            continue;
        }
        n++;
        count--;
        reply_array(&body, 4);
        stream_reply_id(&body, e->id);
        reply_bulk(&body, e->consumer->name, e->consumer->name_len);
        reply_int(&body, idle < 0 ? 0 : idle);
        reply_int(&body, (int64_t)e->delivery_count);
    }
    reply_array_body(r, n, &body);
    reply_free(&body);
}

static void xpending(const struct cg_db *db, const struct cg_args *a, struct reply *r)
{
    struct xpending x;
    if (xpending_parse(a, &x, r) != 0) {
        return;
    }
    bool wrong_type;
    struct stream *s = db->lookup(db->ctx, a->argv[1], a->argl[1], &wrong_type);
    if (wrong_type) {
        reply_error(r, err_wrongtype);
        return;
    }
    const struct cg_group *g = s != NULL ? cg_group_find(s, a->argv[2], a->argl[2]) : NULL;
    if (g == NULL) {
        err_no_key_or_group(r, a, 1, 2, "");
        return;
    }
    if (x.summary) {
        xpending_summary(g, r);
        return;
    }
    const struct cg_consumer *c = NULL;
    if (x.consumer != 0) {
        c = cg_consumer_find(g, a->argv[x.consumer], a->argl[x.consumer]);
        if (c == NULL) {
            reply_array(r, 0);
            return;
        }
    }
    xpending_range(db, g, c, &x, r);
}

/* ---- XINFO (xinfoCommand) ----------------------------------------------------------------- */

static void reply_entries_read(struct reply *r, const struct cg_group *g)
{
    if (g->entries_read != CG_ENTRIES_READ_UNKNOWN) {
        reply_int(r, g->entries_read);
    } else {
        reply_null(r);
    }
}

static void reply_lag(struct reply *r, const struct stream *s, const struct cg_group *g)
{
    int64_t lag;
    if (cg_group_lag(s, g, &lag)) {
        reply_int(r, lag);
    } else {
        reply_null(r);
    }
}

static void xinfo_consumers(const struct cg_db *db,
                            const struct cg_args *a,
                            const struct stream *s,
                            struct reply *r)
{
    const struct cg_group *g = cg_group_find(s, a->argv[3], a->argl[3]);
    if (g == NULL) {
        err_no_group(r, a, 2, 3);
        return;
    }
    reply_array(r, (int64_t)cg_consumer_count(g));
    for (const struct cg_consumer *c = cg_consumer_first(g); c != NULL;
         c = cg_consumer_next(g, c)) {
        int64_t idle = idle_ms(db->now, c->seen_time);
        reply_array(r, 6);
        reply_bulk_str(r, "name");
        reply_bulk(r, c->name, c->name_len);
        reply_bulk_str(r, "pending");
        reply_int(r, (int64_t)cg_consumer_pel_count(c));
        reply_bulk_str(r, "idle");
        reply_int(r, idle < 0 ? 0 : idle);
    }
}

static void xinfo_groups(const struct stream *s, struct reply *r)
{
    reply_array(r, (int64_t)cg_group_count(s));
    for (const struct cg_group *g = cg_group_first(s); g != NULL; g = cg_group_next(s, g)) {
        reply_array(r, 12);
        reply_bulk_str(r, "name");
        reply_bulk(r, g->name, g->name_len);
        reply_bulk_str(r, "consumers");
        reply_int(r, (int64_t)cg_consumer_count(g));
        reply_bulk_str(r, "pending");
        reply_int(r, (int64_t)cg_pel_count(g));
        reply_bulk_str(r, "last-delivered-id");
        stream_reply_id(r, g->last_id);
        reply_bulk_str(r, "entries-read");
        reply_entries_read(r, g);
        reply_bulk_str(r, "lag");
        reply_lag(r, s, g);
    }
}

/* Redis reports the shape of its radix tree of listpacks; ringraft keeps entries in an
 * array, so these are Redis's values for entries appended in order, at most 100 per
 * listpack (exact up to 100 entries, an estimate beyond; docs/client-protocol.md). */
static void reply_radix_tree(struct reply *r, const struct stream *s)
{
    uint64_t keys = (stream_length(s) + CG_RADIX_ENTRIES_PER_KEY - 1) / CG_RADIX_ENTRIES_PER_KEY;
    reply_bulk_str(r, "radix-tree-keys");
    reply_int(r, (int64_t)keys);
    reply_bulk_str(r, "radix-tree-nodes");
    reply_int(r, (int64_t)keys + 1);
}

static void xinfo_stream_head(const struct stream *s, struct reply *r)
{
    reply_bulk_str(r, "length");
    reply_int(r, (int64_t)stream_length(s));
    reply_radix_tree(r, s);
    reply_bulk_str(r, "last-generated-id");
    stream_reply_id(r, stream_last_id(s));
    reply_bulk_str(r, "max-deleted-entry-id");
    stream_reply_id(r, stream_max_deleted_id(s));
    reply_bulk_str(r, "entries-added");
    reply_int(r, (int64_t)stream_entries_added(s));
    reply_bulk_str(r, "recorded-first-entry-id");
    stream_reply_id(r, stream_first_id(s));
}

static void
xinfo_full_group(const struct stream *s, const struct cg_group *g, int64_t count, struct reply *r)
{
    reply_array(r, 14);
    reply_bulk_str(r, "name");
    reply_bulk(r, g->name, g->name_len);
    reply_bulk_str(r, "last-delivered-id");
    stream_reply_id(r, g->last_id);
    reply_bulk_str(r, "entries-read");
    reply_entries_read(r, g);
    reply_bulk_str(r, "lag");
    reply_lag(r, s, g);
    reply_bulk_str(r, "pel-count");
    reply_int(r, (int64_t)cg_pel_count(g));
    reply_bulk_str(r, "pending");
    uint64_t limit = count > 0 ? (uint64_t)count : UINT64_MAX;
    uint64_t pel = cg_pel_count(g);
    reply_array(r, (int64_t)(pel < limit ? pel : limit));
    uint64_t k = 0;
    for (const struct cg_nack *n = cg_nack_first(g); n != NULL && k < limit;
         n = cg_nack_next(g, n), k++) {
        reply_array(r, 4);
        stream_reply_id(r, n->id);
        reply_bulk(r, n->consumer->name, n->consumer->name_len);
        reply_int(r, n->delivery_time);
        reply_int(r, (int64_t)n->delivery_count);
    }
    reply_bulk_str(r, "consumers");
    reply_array(r, (int64_t)cg_consumer_count(g));
    for (const struct cg_consumer *c = cg_consumer_first(g); c != NULL;
         c = cg_consumer_next(g, c)) {
        reply_array(r, 8);
        reply_bulk_str(r, "name");
        reply_bulk(r, c->name, c->name_len);
        reply_bulk_str(r, "seen-time");
        reply_int(r, c->seen_time);
        reply_bulk_str(r, "pel-count");
        reply_int(r, (int64_t)cg_consumer_pel_count(c));
        reply_bulk_str(r, "pending");
        uint64_t cpel = cg_consumer_pel_count(c);
        reply_array(r, (int64_t)(cpel < limit ? cpel : limit));
        uint64_t j = 0;
        for (const struct cg_nack *n = cg_consumer_nack_ceil(c, (struct stream_id){0, 0});
             n != NULL && j < limit; n = cg_consumer_nack_next(c, n), j++) {
            reply_array(r, 3);
            stream_reply_id(r, n->id);
            reply_int(r, n->delivery_time);
            reply_int(r, (int64_t)n->delivery_count);
        }
    }
}

/* XINFO STREAM key [FULL [COUNT n]] (xinfoReplyWithStreamInfo). */
static void xinfo_stream(const struct cg_args *a, const struct stream *s, struct reply *r)
{
    bool full = a->argc > 3;
    int64_t count = CG_INFO_FULL_COUNT;
    if (full) {
        if ((a->argc != 4 && a->argc != 6) || !arg_is(a, 3, "full") ||
            (a->argc == 6 && !arg_is(a, 4, "count"))) {
            err_subcommand(r, a, "XINFO");
            return;
        }
        if (a->argc == 6) {
            if (!util_parse_i64(a->argv[5], a->argl[5], &count)) {
                reply_error(r, err_notint);
                return;
            }
            if (count < 0) {
                count = CG_INFO_FULL_COUNT;
            }
        }
    }
    const struct stream_id zero = {0, 0};
    reply_array(r, full ? 18 : 20);
    xinfo_stream_head(s, r);
    if (!full) {
        reply_bulk_str(r, "groups");
        reply_int(r, (int64_t)cg_group_count(s));
        reply_bulk_str(r, "first-entry");
        if (stream_length(s) > 0) {
            stream_reply_entry_at(s, 0, r);
        } else {
            reply_null(r);
        }
        reply_bulk_str(r, "last-entry");
        if (stream_length(s) > 0) {
            stream_reply_entry_at(s, stream_length(s) - 1, r);
        } else {
            reply_null(r);
        }
        return;
    }
    reply_bulk_str(r, "entries");
    stream_reply_range(s, zero, id_max, (uint64_t)count, false, r);
    reply_bulk_str(r, "groups");
    reply_array(r, (int64_t)cg_group_count(s));
    for (const struct cg_group *g = cg_group_first(s); g != NULL; g = cg_group_next(s, g)) {
        xinfo_full_group(s, g, count, r);
    }
}

static void xinfo(uint16_t id, const struct cg_db *db, const struct cg_args *a, struct reply *r)
{
    bool wrong_type;
    const struct stream *s = db->lookup(db->ctx, a->argv[2], a->argl[2], &wrong_type);
    if (wrong_type) {
        reply_error(r, err_wrongtype);
        return;
    }
    if (s == NULL) {
        reply_error(r, "ERR no such key");
        return;
    }
    switch (id) {
    case CMD_ID_XINFO_CONSUMERS:
        xinfo_consumers(db, a, s, r);
        return;
    case CMD_ID_XINFO_GROUPS:
        xinfo_groups(s, r);
        return;
    case CMD_ID_XINFO_STREAM:
        xinfo_stream(a, s, r);
        return;
    default:
        RR_ASSERT(false && "not an XINFO subcommand");
    }
}

void cg_cmd_read(uint16_t cmd_id,
                 const struct cg_db *db,
                 uint32_t argc,
                 const uint8_t *const argv[],
                 const uint32_t argl[],
                 struct reply *r)
{
    struct cg_args a = {argc, argv, argl};
    if (cmd_id == CMD_ID_XPENDING) {
        xpending(db, &a, r);
    } else {
        xinfo(cmd_id, db, &a, r);
    }
}
