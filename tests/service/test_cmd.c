/* Command table, key slots, CROSSSLOT and the reply writer. Error strings were checked
 * against redis-server 7.0.15. */
#include "tests/service/sm_helpers.h"

static const char *reply_str(struct reply *r, char *buf, size_t cap)
{
    assert_true(r->len < cap);
    memcpy(buf, r->buf, r->len);
    buf[r->len] = '\0';
    reply_reset(r);
    return buf;
}

static void test_lookup_is_case_insensitive(void **state)
{
    (void)state;
    const struct cmd_spec *c = cmd_lookup((const uint8_t *)"SeT", 3);
    assert_non_null(c);
    assert_string_equal(c->name, "set");
    assert_int_equal(c->arity, -3);
    assert_int_equal(c->cls, CMD_WRITE);
    assert_null(cmd_lookup((const uint8_t *)"sett", 4));
    assert_null(cmd_lookup((const uint8_t *)"", 0));
    /* Every row is reachable by its name and ids are unique. */
    for (size_t i = 0; i < cmd_count(); i++) {
        const struct cmd_spec *s = cmd_at(i);
        assert_ptr_equal(cmd_lookup((const uint8_t *)s->name, strlen(s->name)), s);
        for (size_t j = 0; j < i; j++) {
            assert_int_not_equal(cmd_at(j)->id, s->id);
        }
    }
    assert_int_equal(cmd_lookup((const uint8_t *)"raft", 4)->arity, -2);
    assert_int_equal(cmd_lookup((const uint8_t *)"flushdb", 7)->cls, CMD_NODE);
    assert_int_equal(cmd_lookup((const uint8_t *)"xread", 5)->cls, CMD_READ);
}

static void test_arity_and_unknown_errors(void **state)
{
    (void)state;
    struct reply r;
    reply_init(&r, 1 << 16);
    char buf[1024];
    const struct cmd_spec *set = cmd_lookup((const uint8_t *)"set", 3);
    assert_int_equal(cmd_check_arity(set, 3, &r), 0);
    assert_int_equal(cmd_check_arity(set, 5, &r), 0);
    assert_int_equal(cmd_check_arity(set, 2, &r), RR_EINVAL);
    assert_string_equal(reply_str(&r, buf, sizeof(buf)),
                        "-ERR wrong number of arguments for 'set' command\r\n");
    const struct cmd_spec *get = cmd_lookup((const uint8_t *)"get", 3);
    assert_int_equal(cmd_check_arity(get, 3, &r), RR_EINVAL);
    reply_reset(&r);

    struct t_cmd c;
    t_split(&c, "foo a b");
    cmd_reply_unknown(&r, c.argc, c.argv, c.argl);
    assert_string_equal(reply_str(&r, buf, sizeof(buf)),
                        "-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n");
    t_split(&c, "nope");
    cmd_reply_unknown(&r, c.argc, c.argv, c.argl);
    assert_string_equal(reply_str(&r, buf, sizeof(buf)),
                        "-ERR unknown command 'nope', with args beginning with: \r\n");
    /* Truncation: the name at 128 bytes, the listing while under 128 bytes (Redis 7.0.15:
     * a 130-byte name, then 100 a's, 40 b's and "c"). */
    char name[131], a[101], b[41];
    memset(name, 'x', 130);
    memset(a, 'a', 100);
    memset(b, 'b', 40);
    const uint8_t *argv[4] = {(const uint8_t *)name, (const uint8_t *)a, (const uint8_t *)b,
                              (const uint8_t *)"c"};
    const uint32_t argl[4] = {130, 100, 40, 1};
    cmd_reply_unknown(&r, 4, argv, argl);
    char expect[512];
    snprintf(expect, sizeof(expect),
             "-ERR unknown command '%.128s', with args beginning with: '%.100s' '%.25s' \r\n", name,
             a, b);
    assert_string_equal(reply_str(&r, buf, sizeof(buf)), expect);
    /* CR/LF become spaces, a NUL ends an argument. */
    const uint8_t *argv2[4] = {(const uint8_t *)"nope", (const uint8_t *)"a\r\nb",
                               (const uint8_t *)"x\0y", (const uint8_t *)"z"};
    const uint32_t argl2[4] = {4, 4, 3, 1};
    cmd_reply_unknown(&r, 4, argv2, argl2);
    assert_string_equal(
        reply_str(&r, buf, sizeof(buf)),
        "-ERR unknown command 'nope', with args beginning with: 'a  b' 'x' 'z' \r\n");
    reply_free(&r);
}

static uint16_t slot(const char *key)
{
    return cmd_keyslot((const uint8_t *)key, strlen(key));
}

/* Redis Cluster specification values. */
static void test_keyslot_known_values(void **state)
{
    (void)state;
    assert_int_equal(slot("123456789"), 12739);
    assert_int_equal(slot("foo"), 12182);
    assert_int_equal(slot("bar"), 5061);
    assert_int_equal(slot("{user1000}.following"), slot("{user1000}.followers"));
    assert_int_equal(slot("{user1000}.following"), slot("user1000"));
    assert_int_not_equal(slot("foo{}{bar}"), slot("bar")); /* empty tag: whole key */
    assert_int_equal(slot("foo{{bar}}zap"), slot("{bar"));
    assert_int_equal(slot("foo{bar}{zap}"), slot("bar"));
    assert_int_equal(slot(""), 0);
}

/* The bitwise CRC16-XMODEM of the Redis Cluster specification, as a reference for the
 * table-driven one in cmd.c. */
static uint16_t crc16_bitwise(const uint8_t *p, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc = (uint16_t)(crc ^ (uint16_t)(p[i] << 8));
        for (int b = 0; b < 8; b++) {
            crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
        }
    }
    return crc;
}

/* Every single byte (each table entry) and pseudo-random keys of 1-64 bytes without '{'. */
static void test_keyslot_matches_bitwise_crc(void **state)
{
    (void)state;
    uint8_t key[64];
    for (unsigned b = 0; b < 256; b++) {
        key[0] = (uint8_t)b;
        if (b != '{') {
            assert_int_equal(cmd_keyslot(key, 1), crc16_bitwise(key, 1) & 0x3FFF);
        }
    }
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int round = 0; round < 10000; round++) {
        size_t len = 1 + (size_t)(round % 64);
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            key[i] = (uint8_t)(x >> 24) == '{' ? 'x' : (uint8_t)(x >> 24);
        }
        assert_int_equal(cmd_keyslot(key, len), crc16_bitwise(key, len) & 0x3FFF);
    }
}

static int request_slot(const char *line, uint16_t *s, struct reply *r)
{
    struct t_cmd c;
    t_split(&c, line);
    const struct cmd_spec *spec = cmd_resolve(c.argc, c.argv, c.argl, r);
    assert_non_null(spec);
    return cmd_request_slot(spec, c.argc, c.argv, c.argl, s, r);
}

static void test_request_slot(void **state)
{
    (void)state;
    struct reply r;
    reply_init(&r, 1 << 16);
    char buf[512];
    uint16_t s = 0;
    assert_int_equal(request_slot("get foo", &s, &r), 1);
    assert_int_equal(s, 12182);
    assert_int_equal(request_slot("mset {a}x 1 {a}y 2", &s, &r), 1);
    assert_int_equal(s, slot("a"));
    assert_int_equal(request_slot("ping", &s, &r), 0);
    assert_int_equal(request_slot("mset a 1 b 2", &s, &r), CMD_CROSSSLOT);
    assert_string_equal(reply_str(&r, buf, sizeof(buf)),
                        "-CROSSSLOT Keys in request don't hash to the same slot\r\n");
    /* MSET's values are not keys. */
    assert_int_equal(request_slot("mset {a}x foo {a}y bar", &s, &r), 1);
    assert_int_equal(request_slot("xread count 5 streams {s}1 {s}2 0 $", &s, &r), 1);
    assert_int_equal(s, slot("s"));
    assert_int_equal(request_slot("xread block 0 streams a b 0 0", &s, &r), CMD_CROSSSLOT);
    reply_reset(&r);
    assert_int_equal(request_slot("xread streams a b 0", &s, &r), RR_EINVAL);
    assert_string_equal(reply_str(&r, buf, sizeof(buf)),
                        "-ERR Unbalanced XREAD list of streams: for each stream key an ID or "
                        "'$' must be specified.\r\n");
    assert_int_equal(request_slot("xread foo streams a 0", &s, &r), 0);
    /* XREADGROUP: the keys after STREAMS, past GROUP's two arguments and NOACK. */
    assert_int_equal(
        request_slot("xreadgroup group streams c count 1 noack streams {s}1 {s}2 > >", &s, &r), 1);
    assert_int_equal(s, slot("s"));
    assert_int_equal(request_slot("xreadgroup group g c streams a b > >", &s, &r), CMD_CROSSSLOT);
    reply_reset(&r);
    assert_int_equal(request_slot("xreadgroup group g c streams a b >", &s, &r), RR_EINVAL);
    reply_reset(&r);
    assert_int_equal(request_slot("xreadgroup group g c foo streams a >", &s, &r), 0);
    /* Subcommands: the key is the third argument. */
    assert_int_equal(request_slot("xgroup create foo g $ mkstream", &s, &r), 1);
    assert_int_equal(s, 12182);
    assert_int_equal(request_slot("xinfo consumers foo g", &s, &r), 1);
    assert_int_equal(s, 12182);
    assert_int_equal(request_slot("xgroup help", &s, &r), 0);
    assert_int_equal(request_slot("xack foo g 1", &s, &r), 1);
    assert_int_equal(s, 12182);
    reply_free(&r);
}

static const struct cmd_spec *resolve(const char *line, struct reply *r)
{
    struct t_cmd c;
    t_split(&c, line);
    return cmd_resolve(c.argc, c.argv, c.argl, r);
}

/* Containers (XGROUP, XINFO) as Redis 7 resolves them: the subcommand decides the class,
 * arity and keys; errors name the subcommand. Checked against redis-server 7.0.15. */
static void test_subcommands(void **state)
{
    (void)state;
    struct reply r;
    reply_init(&r, 1 << 16);
    char buf[1024];
    const struct cmd_spec *c = resolve("XGroup CREATE k g 0", &r);
    assert_non_null(c);
    assert_string_equal(c->name, "xgroup|create");
    assert_int_equal(c->cls, CMD_WRITE);
    assert_int_equal(c->id, CMD_ID_XGROUP_CREATE);
    c = resolve("xinfo stream k", &r);
    assert_non_null(c);
    assert_int_equal(c->cls, CMD_READ);
    assert_int_equal(c->first_key, 2);
    c = resolve("xinfo help", &r);
    assert_non_null(c);
    assert_int_equal(c->cls, CMD_NODE);
    assert_null(resolve("xgroup", &r));
    assert_string_equal(reply_str(&r, buf, sizeof(buf)),
                        "-ERR wrong number of arguments for 'xgroup' command\r\n");
    assert_null(resolve("xgroup foo a b", &r));
    assert_string_equal(reply_str(&r, buf, sizeof(buf)),
                        "-ERR unknown subcommand 'foo'. Try XGROUP HELP.\r\n");
    assert_null(resolve("xinfo groups k extra", &r));
    assert_string_equal(reply_str(&r, buf, sizeof(buf)),
                        "-ERR wrong number of arguments for 'xinfo|groups' command\r\n");
    assert_null(resolve("xgroup create k g", &r));
    assert_string_equal(reply_str(&r, buf, sizeof(buf)),
                        "-ERR wrong number of arguments for 'xgroup|create' command\r\n");
    /* The subcommand as a C string, cut at 128 bytes. */
    char sub[201];
    memset(sub, 's', 200);
    sub[200] = '\0';
    const uint8_t *argv[2] = {(const uint8_t *)"xinfo", (const uint8_t *)sub};
    uint32_t argl[2] = {5, 200};
    assert_null(cmd_resolve(2, argv, argl, &r));
    char expect[512];
    snprintf(expect, sizeof(expect), "-ERR unknown subcommand '%.128s'. Try XINFO HELP.\r\n", sub);
    assert_string_equal(reply_str(&r, buf, sizeof(buf)), expect);
    argv[1] = (const uint8_t *)"a\0b";
    argl[1] = 3;
    assert_null(cmd_resolve(2, argv, argl, &r));
    assert_string_equal(reply_str(&r, buf, sizeof(buf)),
                        "-ERR unknown subcommand 'a'. Try XINFO HELP.\r\n");
    /* Full names find subcommands (COMMAND INFO); plain lookups do not. */
    assert_ptr_equal(cmd_lookup_fullname((const uint8_t *)"XGROUP|create", 13),
                     resolve("xgroup create k g 0", &r));
    assert_null(cmd_lookup((const uint8_t *)"xgroup|create", 13));
    assert_null(cmd_lookup_fullname((const uint8_t *)"xgroup|nope", 11));
    assert_null(cmd_lookup_fullname((const uint8_t *)"get|x", 5));
    assert_non_null(cmd_lookup_fullname((const uint8_t *)"get", 3));
    /* Every subcommand is reachable by its full name; ids are unique over all commands. */
    bool seen[CMD_ID_COUNT_] = {false};
    for (size_t i = 0; i < cmd_count(); i++) {
        const struct cmd_spec *top = cmd_at(i);
        assert_false(seen[top->id]);
        seen[top->id] = true;
        for (uint8_t k = 0; k < top->subcommand_count; k++) {
            const struct cmd_spec *sc = &top->subcommands[k];
            assert_ptr_equal(cmd_lookup_fullname((const uint8_t *)sc->name, strlen(sc->name)), sc);
            assert_false(seen[sc->id]);
            seen[sc->id] = true;
        }
    }
    for (unsigned id = 1; id < CMD_ID_COUNT_; id++) {
        assert_true(seen[id]);
    }
    reply_free(&r);
}

/* ---- COMMAND DOCS, read back as redis-cli 7.0 reads it -------------------------------- */

/* A RESP2 value of a COMMAND DOCS reply: arrays, bulk and simple strings. */
struct rv {
    char kind; /* '*', '$', '+' */
    const char *str;
    size_t len;
    struct rv *items;
    size_t count;
};

static struct rv *rv_parse(const char **p)
{
    struct rv *v = calloc(1, sizeof(*v));
    assert_non_null(v);
    v->kind = **p;
    const char *line = *p + 1;
    const char *end = strstr(line, "\r\n");
    assert_non_null(end);
    if (v->kind == '+') {
        v->str = line;
        v->len = (size_t)(end - line);
        *p = end + 2;
    } else if (v->kind == '$') {
        v->len = strtoul(line, NULL, 10);
        v->str = end + 2;
        *p = end + 2 + v->len + 2;
    } else {
        assert_int_equal(v->kind, '*');
        v->count = strtoul(line, NULL, 10);
        *p = end + 2;
        v->items = calloc(v->count + 1, sizeof(*v->items));
        for (size_t i = 0; i < v->count; i++) {
            struct rv *item = rv_parse(p);
            v->items[i] = *item;
            free(item);
        }
    }
    return v;
}

static void rv_free_items(struct rv *v)
{
    for (size_t i = 0; i < v->count; i++) {
        rv_free_items(&v->items[i]);
    }
    free(v->items);
}

static bool rv_is(const struct rv *v, const char *s)
{
    return v->len == strlen(s) && memcmp(v->str, s, v->len) == 0;
}

static const struct rv *rv_get(const struct rv *map, const char *key)
{
    assert_int_equal(map->kind, '*');
    assert_int_equal(map->count % 2, 0);
    for (size_t i = 0; i < map->count; i += 2) {
        assert_int_equal(map->items[i].kind, '$');
        if (rv_is(&map->items[i], key)) {
            return &map->items[i + 1];
        }
    }
    return NULL;
}

static void hint_add(char *out, size_t cap, const char *s, size_t n)
{
    size_t used = strlen(out);
    assert_true(used + n < cap);
    memcpy(out + used, s, n);
    out[used + n] = '\0';
}

static void hint_arg(char *out, size_t cap, const struct rv *arg);

static void hint_list(char *out, size_t cap, const struct rv *args, const char *sep)
{
    assert_int_equal(args->kind, '*');
    for (size_t i = 0; i < args->count; i++) {
        hint_arg(out, cap, &args->items[i]);
        if (i + 1 < args->count) {
            hint_add(out, cap, sep, strlen(sep));
        }
    }
}

/* redis-cli's cliAddArgument: the text it shows for one argument. */
static void hint_arg(char *out, size_t cap, const struct rv *arg)
{
    const struct rv *name = rv_get(arg, "name");
    const struct rv *type = rv_get(arg, "type");
    const struct rv *token = rv_get(arg, "token");
    const struct rv *flags = rv_get(arg, "flags");
    assert_non_null(name);
    assert_non_null(type);
    bool optional = false, multiple = false;
    if (flags != NULL) {
        assert_int_equal(flags->kind, '*');
        for (size_t i = 0; i < flags->count; i++) {
            assert_int_equal(flags->items[i].kind, '+'); /* redis-cli asserts a status */
            optional = optional || rv_is(&flags->items[i], "optional");
            multiple = multiple || rv_is(&flags->items[i], "multiple");
        }
    }
    char repeat[512] = "";
    if (rv_is(type, "key") || rv_is(type, "string")) {
        hint_add(repeat, sizeof(repeat), name->str, name->len);
    } else if (rv_is(type, "oneof")) {
        hint_list(repeat, sizeof(repeat), rv_get(arg, "arguments"), "|");
    } else if (rv_is(type, "block")) {
        hint_list(repeat, sizeof(repeat), rv_get(arg, "arguments"), " ");
    } else {
        assert_true(rv_is(type, "pure-token"));
        assert_non_null(token);
    }
    char tok[64] = "";
    if (token != NULL) {
        hint_add(tok, sizeof(tok), token->str, token->len);
        if (!rv_is(type, "pure-token")) {
            hint_add(tok, sizeof(tok), " ", 1);
        }
    }
    if (optional) {
        hint_add(out, cap, "[", 1);
    }
    hint_add(out, cap, tok, strlen(tok));
    hint_add(out, cap, repeat, strlen(repeat));
    if (multiple) {
        hint_add(out, cap, " [", 2);
        hint_add(out, cap, repeat, strlen(repeat));
        hint_add(out, cap, " ...]", 5);
    }
    if (optional) {
        hint_add(out, cap, "]", 1);
    }
}

/* The hint redis-cli shows for `name` (a command, or "container|sub"). */
static void docs_hint(const char *name, char *out, size_t cap)
{
    char top[32];
    snprintf(top, sizeof(top), "%s", name);
    char *bar = strchr(top, '|');
    if (bar != NULL) {
        *bar = '\0';
    }
    const uint8_t *argv[1] = {(const uint8_t *)top};
    size_t argl[1] = {strlen(top)};
    struct reply r;
    reply_init(&r, 1 << 20);
    cmd_docs(1, argv, argl, &r);
    char *text = malloc(r.len + 1);
    assert_non_null(text);
    memcpy(text, r.buf, r.len);
    text[r.len] = '\0';
    const char *p = text;
    struct rv *v = rv_parse(&p);
    assert_ptr_equal(p, text + r.len);
    assert_int_equal(v->count, 2);
    const struct rv *doc = &v->items[1];
    if (bar != NULL) {
        doc = rv_get(rv_get(doc, "subcommands"), name);
        assert_non_null(doc);
    }
    assert_non_null(rv_get(doc, "summary"));
    assert_non_null(rv_get(doc, "since"));
    assert_non_null(rv_get(doc, "group"));
    out[0] = '\0';
    const struct rv *args = rv_get(doc, "arguments");
    if (args != NULL) {
        hint_list(out, cap, args, " ");
    }
    rv_free_items(v);
    free(v);
    free(text);
    reply_free(&r);
}

static void test_command_docs_hints(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"set", "key value [NX|XX] [GET] [EX seconds|PX milliseconds|EXAT unix-time-seconds|"
                "PXAT unix-time-milliseconds|KEEPTTL]"},
        {"get", "key"},
        {"dbsize", ""},
        {"mset", "key value [key value ...]"},
        {"del", "key [key ...]"},
        {"xadd", "key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]] *|id field value "
                 "[field value ...]"},
        {"xread", "[COUNT count] [BLOCK milliseconds] STREAMS key [key ...] id [id ...]"},
        {"xpending", "key group [[IDLE min-idle-time] start end count [consumer]]"},
        {"command", "[COUNT|INFO [command-name [command-name ...]]|DOCS [command-name "
                    "[command-name ...]]]"},
        {"client", "ID|GETNAME|SETNAME connection-name|SETINFO LIB-NAME libname|LIB-VER libver"},
        {"hello", "[protover [AUTH username password] [SETNAME clientname]]"},
        {"xgroup|create", "key group id|$ [MKSTREAM] [ENTRIESREAD entries-read]"},
        {"xinfo|stream", "key [FULL [COUNT count]]"},
    };
    char hint[1024];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        docs_hint(cases[i][0], hint, sizeof(hint));
        assert_string_equal(hint, cases[i][1]);
    }
    /* Every command and subcommand has docs that redis-cli can read. */
    for (size_t i = 0; i < cmd_count(); i++) {
        const struct cmd_spec *c = cmd_at(i);
        assert_true(cmd_docs_check(c->name));
        docs_hint(c->name, hint, sizeof(hint));
        for (uint8_t k = 0; k < c->subcommand_count; k++) {
            assert_true(cmd_docs_check(c->subcommands[k].name));
            docs_hint(c->subcommands[k].name, hint, sizeof(hint));
        }
    }
    assert_false(cmd_docs_check("nosuchcommand"));
}

static void test_command_docs_names(void **state)
{
    (void)state;
    struct reply r;
    reply_init(&r, 1 << 20);
    /* No names: every command; unknown names are left out; case does not matter. */
    cmd_docs(0, NULL, NULL, &r);
    char head[32];
    snprintf(head, sizeof(head), "*%zu\r\n", 2 * cmd_count());
    assert_memory_equal(r.buf, head, strlen(head));
    assert_false(r.overflow);
    reply_reset(&r);
    const uint8_t *argv[3] = {(const uint8_t *)"GET", (const uint8_t *)"nope",
                              (const uint8_t *)"xlen"};
    size_t argl[3] = {3, 4, 4};
    cmd_docs(3, argv, argl, &r);
    assert_memory_equal(r.buf, "*4\r\n$3\r\nget\r\n", 13);
    assert_non_null(memmem(r.buf, r.len, "$4\r\nxlen\r\n", 10));
    /* A subcommand by its full name, as Redis answers it. */
    reply_reset(&r);
    const uint8_t *sub[1] = {(const uint8_t *)"XGROUP|create"};
    size_t subl[1] = {13};
    cmd_docs(1, sub, subl, &r);
    assert_memory_equal(r.buf, "*2\r\n$13\r\nxgroup|create\r\n", 24);
    reply_free(&r);
}

static void test_slot_groups_are_contiguous(void **state)
{
    (void)state;
    const uint32_t counts[] = {1, 2, 3, 7, 100, 1000, 16383, 16384};
    for (size_t k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
        uint32_t g_count = counts[k];
        uint32_t next = 0;
        for (uint32_t g = 0; g < g_count; g++) {
            uint16_t first, last;
            cmd_group_slots(g, g_count, &first, &last);
            assert_int_equal(first, next);
            assert_true(last >= first);
            assert_int_equal(cmd_slot_group(first, g_count), g);
            assert_int_equal(cmd_slot_group(last, g_count), g);
            next = (uint32_t)last + 1;
        }
        assert_int_equal(next, CMD_SLOTS);
    }
}

static void test_reply_encoding_and_limit(void **state)
{
    (void)state;
    struct reply r;
    reply_init(&r, 64);
    char buf[128];
    reply_simple(&r, "OK");
    reply_int(&r, INT64_MIN);
    reply_bulk(&r, "ab", 2);
    reply_null(&r);
    reply_null_array(&r);
    reply_array(&r, 3);
    assert_string_equal(reply_str(&r, buf, sizeof(buf)),
                        "+OK\r\n:-9223372036854775808\r\n$2\r\nab\r\n$-1\r\n*-1\r\n*3\r\n");
    reply_errorf(&r, "ERR %s\nx", "bad");
    reply_bulk_int(&r, -12);
    assert_string_equal(reply_str(&r, buf, sizeof(buf)), "-ERR bad x\r\n$3\r\n-12\r\n");
    /* A value past the limit is dropped whole, and so is everything after it. */
    reply_simple(&r, "0123456789");
    reply_bulk(&r, buf, 60);
    assert_true(r.overflow);
    reply_simple(&r, "x");
    assert_int_equal(r.len, 13);
    reply_reset(&r);
    assert_false(r.overflow);
    reply_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup_is_case_insensitive),
        cmocka_unit_test(test_arity_and_unknown_errors),
        cmocka_unit_test(test_keyslot_known_values),
        cmocka_unit_test(test_keyslot_matches_bitwise_crc),
        cmocka_unit_test(test_request_slot),
        cmocka_unit_test(test_subcommands),
        cmocka_unit_test(test_command_docs_hints),
        cmocka_unit_test(test_command_docs_names),
        cmocka_unit_test(test_slot_groups_are_contiguous),
        cmocka_unit_test(test_reply_encoding_and_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
