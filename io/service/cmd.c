/* The command table and Redis Cluster's key-slot rules. Arities, key positions and flags
 * are Redis 7.0's (COMMAND INFO on redis-server 7.0.15), so COMMAND and cluster-aware
 * clients see what they expect. */
#include "io/service/cmd.h"

#include <string.h>

#include "core/base/assert.h"
#include "core/base/errors.h"

#define CMD_NAME_MAX       16u  /* longest command name, for the case-folded copy */
#define CMD_UNKNOWN_ARGMAX 128u /* Redis's cut for the name and the argument listing */

/* clang-format off */
static const struct cmd_spec cmd_table[] = {
    /* name, arity, class, first, last, step, id, flags */
    {"set", -3, CMD_WRITE, 1, 1, 1, CMD_ID_SET, "write denyoom"},
    {"del", -2, CMD_WRITE, 1, -1, 1, CMD_ID_DEL, "write"},
    {"unlink", -2, CMD_WRITE, 1, -1, 1, CMD_ID_UNLINK, "write fast"},
    {"incr", 2, CMD_WRITE, 1, 1, 1, CMD_ID_INCR, "write denyoom fast"},
    {"incrby", 3, CMD_WRITE, 1, 1, 1, CMD_ID_INCRBY, "write denyoom fast"},
    {"decr", 2, CMD_WRITE, 1, 1, 1, CMD_ID_DECR, "write denyoom fast"},
    {"decrby", 3, CMD_WRITE, 1, 1, 1, CMD_ID_DECRBY, "write denyoom fast"},
    {"append", 3, CMD_WRITE, 1, 1, 1, CMD_ID_APPEND, "write denyoom fast"},
    {"mset", -3, CMD_WRITE, 1, -1, 2, CMD_ID_MSET, "write denyoom"},
    {"setnx", 3, CMD_WRITE, 1, 1, 1, CMD_ID_SETNX, "write denyoom fast"},
    {"getset", 3, CMD_WRITE, 1, 1, 1, CMD_ID_GETSET, "write denyoom fast"},
    {"getdel", 2, CMD_WRITE, 1, 1, 1, CMD_ID_GETDEL, "write fast"},
    {"expire", -3, CMD_WRITE, 1, 1, 1, CMD_ID_EXPIRE, "write fast"},
    {"pexpire", -3, CMD_WRITE, 1, 1, 1, CMD_ID_PEXPIRE, "write fast"},
    {"expireat", -3, CMD_WRITE, 1, 1, 1, CMD_ID_EXPIREAT, "write fast"},
    {"pexpireat", -3, CMD_WRITE, 1, 1, 1, CMD_ID_PEXPIREAT, "write fast"},
    {"persist", 2, CMD_WRITE, 1, 1, 1, CMD_ID_PERSIST, "write fast"},
    {"xadd", -5, CMD_WRITE, 1, 1, 1, CMD_ID_XADD, "write denyoom fast"},
    {"xdel", -3, CMD_WRITE, 1, 1, 1, CMD_ID_XDEL, "write fast"},
    {"xtrim", -4, CMD_WRITE, 1, 1, 1, CMD_ID_XTRIM, "write"},
    {"get", 2, CMD_READ, 1, 1, 1, CMD_ID_GET, "readonly fast"},
    {"exists", -2, CMD_READ, 1, -1, 1, CMD_ID_EXISTS, "readonly fast"},
    {"strlen", 2, CMD_READ, 1, 1, 1, CMD_ID_STRLEN, "readonly fast"},
    {"mget", -2, CMD_READ, 1, -1, 1, CMD_ID_MGET, "readonly fast"},
    {"getrange", 4, CMD_READ, 1, 1, 1, CMD_ID_GETRANGE, "readonly"},
    {"ttl", 2, CMD_READ, 1, 1, 1, CMD_ID_TTL, "readonly fast"},
    {"pttl", 2, CMD_READ, 1, 1, 1, CMD_ID_PTTL, "readonly fast"},
    {"expiretime", 2, CMD_READ, 1, 1, 1, CMD_ID_EXPIRETIME, "readonly fast"},
    {"pexpiretime", 2, CMD_READ, 1, 1, 1, CMD_ID_PEXPIRETIME, "readonly fast"},
    {"type", 2, CMD_READ, 1, 1, 1, CMD_ID_TYPE, "readonly fast"},
    {"xrange", -4, CMD_READ, 1, 1, 1, CMD_ID_XRANGE, "readonly"},
    {"xrevrange", -4, CMD_READ, 1, 1, 1, CMD_ID_XREVRANGE, "readonly"},
    {"xlen", 2, CMD_READ, 1, 1, 1, CMD_ID_XLEN, "readonly fast"},
    /* Keys after STREAMS: cmd_request_slot finds them (Redis: movablekeys). */
    {"xread", -4, CMD_READ, 0, 0, 0, CMD_ID_XREAD, "readonly blocking movablekeys"},
    {"ping", -1, CMD_NODE, 0, 0, 0, CMD_ID_PING, "fast"},
    {"echo", 2, CMD_NODE, 0, 0, 0, CMD_ID_ECHO, "loading stale fast"},
    {"info", -1, CMD_NODE, 0, 0, 0, CMD_ID_INFO, "loading stale"},
    {"config", -2, CMD_NODE, 0, 0, 0, CMD_ID_CONFIG, ""},
    {"command", -1, CMD_NODE, 0, 0, 0, CMD_ID_COMMAND, "loading stale"},
    {"client", -2, CMD_NODE, 0, 0, 0, CMD_ID_CLIENT, ""},
    {"cluster", -2, CMD_NODE, 0, 0, 0, CMD_ID_CLUSTER, ""},
    {"raft", -2, CMD_NODE, 0, 0, 0, CMD_ID_RAFT, "admin"},
    {"select", 2, CMD_NODE, 0, 0, 0, CMD_ID_SELECT, "loading stale fast"},
    {"dbsize", 1, CMD_NODE, 0, 0, 0, CMD_ID_DBSIZE, "readonly fast"},
    {"keys", 2, CMD_NODE, 0, 0, 0, CMD_ID_KEYS, "readonly"},
    {"scan", -2, CMD_NODE, 0, 0, 0, CMD_ID_SCAN, "readonly"},
    {"flushdb", -1, CMD_NODE, 0, 0, 0, CMD_ID_FLUSHDB, "write"},
    {"flushall", -1, CMD_NODE, 0, 0, 0, CMD_ID_FLUSHALL, "write"},
    {"quit", -1, CMD_NODE, 0, 0, 0, CMD_ID_QUIT, "noscript loading stale fast no_auth allow_busy"},
    {"hello", -1, CMD_NODE, 0, 0, 0, CMD_ID_HELLO, "noscript loading stale fast no_auth allow_busy"},
    {"auth", -2, CMD_NODE, 0, 0, 0, CMD_ID_AUTH, "noscript loading stale fast no_auth allow_busy"},
    {"readonly", 1, CMD_NODE, 0, 0, 0, CMD_ID_READONLY, "loading stale fast"},
    {"readwrite", 1, CMD_NODE, 0, 0, 0, CMD_ID_READWRITE, "loading stale fast"},
    {"wait", 3, CMD_NODE, 0, 0, 0, CMD_ID_WAIT, "noscript"},
    {"slowlog", -2, CMD_NODE, 0, 0, 0, CMD_ID_SLOWLOG, "admin loading stale"},
};
/* clang-format on */

#define CMD_TABLE_COUNT (sizeof(cmd_table) / sizeof(cmd_table[0]))
_Static_assert(CMD_TABLE_COUNT == CMD_ID_COUNT_ - 1, "one table row per command id");

static uint8_t ascii_lower(uint8_t c)
{
    return (uint8_t)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
}

const struct cmd_spec *cmd_lookup(const uint8_t *name, size_t len)
{
    if (len == 0 || len > CMD_NAME_MAX) {
        return NULL;
    }
    char lower[CMD_NAME_MAX];
    for (size_t i = 0; i < len; i++) {
        lower[i] = (char)ascii_lower(name[i]);
    }
    for (size_t i = 0; i < CMD_TABLE_COUNT; i++) {
        const char *n = cmd_table[i].name;
        if (strlen(n) == len && memcmp(n, lower, len) == 0) {
            return &cmd_table[i];
        }
    }
    return NULL;
}

size_t cmd_count(void)
{
    return CMD_TABLE_COUNT;
}

const struct cmd_spec *cmd_at(size_t i)
{
    RR_ASSERT(i < CMD_TABLE_COUNT);
    return &cmd_table[i];
}

/* Bytes of an argument as C's "%.*s" would print them: up to the first NUL, at most max. */
static size_t cstr_prefix(const uint8_t *p, size_t len, size_t max)
{
    size_t n = 0;
    while (n < len && n < max && p[n] != 0) {
        n++;
    }
    return n;
}

void cmd_reply_unknown(struct reply *r,
                       uint32_t argc,
                       const uint8_t *const argv[],
                       const uint32_t argl[])
{
    RR_ASSERT(argc >= 1);
    /* Redis 7.0 processCommand: the name cut with "%.128s", then "'%.*s' " per argument
     * with the precision 128 - bytes listed so far, while fewer than 128 are listed. */
    char msg[64 + 2 * CMD_UNKNOWN_ARGMAX + 8];
    size_t n = 0;
    const char *head = "ERR unknown command '";
    memcpy(msg, head, strlen(head));
    n += strlen(head);
    size_t name_len = cstr_prefix(argv[0], argl[0], CMD_UNKNOWN_ARGMAX);
    memcpy(msg + n, argv[0], name_len);
    n += name_len;
    const char *mid = "', with args beginning with: ";
    memcpy(msg + n, mid, strlen(mid));
    n += strlen(mid);
    size_t args_len = 0;
    for (uint32_t i = 1; i < argc && args_len < CMD_UNKNOWN_ARGMAX; i++) {
        size_t a = cstr_prefix(argv[i], argl[i], CMD_UNKNOWN_ARGMAX - args_len);
        msg[n++] = '\'';
        memcpy(msg + n, argv[i], a);
        n += a;
        msg[n++] = '\'';
        msg[n++] = ' ';
        args_len += a + 3;
    }
    RR_ASSERT(n < sizeof(msg));
    msg[n] = '\0';
    reply_error(r, msg);
}

int cmd_check_arity(const struct cmd_spec *c, uint32_t argc, struct reply *r)
{
    bool ok = c->arity >= 0 ? argc == (uint32_t)c->arity : argc >= (uint32_t)-c->arity;
    if (ok) {
        return 0;
    }
    reply_errorf(r, "ERR wrong number of arguments for '%s' command", c->name);
    return RR_EINVAL;
}

/* CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, no reflection, as Redis
 * Cluster's crc16.c. Bitwise: keys are short and this runs once per key. */
static uint16_t crc16_xmodem(const uint8_t *p, size_t len)
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

uint16_t cmd_keyslot(const uint8_t *key, size_t len)
{
    /* Redis Cluster spec: hash only what is between the first '{' and the first '}' after
     * it, if that is non-empty; otherwise the whole key. */
    size_t open = 0;
    while (open < len && key[open] != '{') {
        open++;
    }
    if (open < len) {
        size_t close = open + 1;
        while (close < len && key[close] != '}') {
            close++;
        }
        if (close < len && close != open + 1) {
            return (uint16_t)(crc16_xmodem(key + open + 1, close - open - 1) & 0x3FFF);
        }
    }
    return (uint16_t)(crc16_xmodem(key, len) & 0x3FFF);
}

static bool arg_is(const uint8_t *p, uint32_t len, const char *word)
{
    size_t n = strlen(word);
    if (len != n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (ascii_lower(p[i]) != (uint8_t)word[i]) {
            return false;
        }
    }
    return true;
}

/* XREAD's keys, as Redis's xreadGetKeys finds them: the options before STREAMS are skipped
 * with their values, the keys are the first half of what follows. Returns the first key's
 * index and sets *key_count; 0 on a syntax error left for the command to report. */
static uint32_t
xread_keys(uint32_t argc, const uint8_t *const argv[], const uint32_t argl[], uint32_t *key_count)
{
    uint32_t streams = 0;
    for (uint32_t i = 1; i < argc; i++) {
        if (arg_is(argv[i], argl[i], "block") || arg_is(argv[i], argl[i], "count")) {
            i++;
        } else if (arg_is(argv[i], argl[i], "streams")) {
            streams = i;
            break;
        } else {
            break;
        }
    }
    if (streams == 0) {
        return 0;
    }
    *key_count = argc - streams - 1;
    return streams + 1;
}

int cmd_request_slot(const struct cmd_spec *c,
                     uint32_t argc,
                     const uint8_t *const argv[],
                     const uint32_t argl[],
                     uint16_t *slot,
                     struct reply *r)
{
    uint32_t first, last, step;
    if (c->id == CMD_ID_XREAD) {
        uint32_t n = 0;
        first = xread_keys(argc, argv, argl, &n);
        if (first == 0 || n == 0) {
            return 0;
        }
        if (n % 2 != 0) {
            reply_error(r, "ERR Unbalanced XREAD list of streams: for each stream key an ID "
                           "or '$' must be specified.");
            return RR_EINVAL;
        }
        last = first + n / 2 - 1;
        step = 1;
    } else {
        if (c->first_key <= 0 || argc <= (uint32_t)c->first_key) {
            return 0;
        }
        first = (uint32_t)c->first_key;
        last = c->last_key < 0 ? (uint32_t)((int64_t)argc + c->last_key) : (uint32_t)c->last_key;
        step = (uint32_t)c->key_step;
        if (last >= argc) {
            last = argc - 1;
        }
    }
    RR_ASSERT(step >= 1);
    uint16_t s = cmd_keyslot(argv[first], argl[first]);
    for (uint32_t i = first + step; i <= last; i += step) {
        if (cmd_keyslot(argv[i], argl[i]) != s) {
            reply_error(r, "CROSSSLOT Keys in request don't hash to the same slot");
            return CMD_CROSSSLOT;
        }
    }
    *slot = s;
    return 1;
}

uint32_t cmd_slot_group(uint16_t slot, uint32_t group_count)
{
    RR_ASSERT(group_count >= 1);
    RR_ASSERT(group_count <= CMD_SLOTS);
    RR_ASSERT(slot < CMD_SLOTS);
    return (uint32_t)(((uint64_t)slot * group_count) / CMD_SLOTS);
}

void cmd_group_slots(uint32_t g, uint32_t group_count, uint16_t *first, uint16_t *last)
{
    RR_ASSERT(group_count >= 1);
    RR_ASSERT(group_count <= CMD_SLOTS);
    RR_ASSERT(g < group_count);
    /* slot s is in g iff g <= s*G/16384 < g+1, i.e. s >= ceil(g*16384/G). */
    uint64_t lo = ((uint64_t)g * CMD_SLOTS + group_count - 1) / group_count;
    uint64_t hi = ((uint64_t)(g + 1) * CMD_SLOTS + group_count - 1) / group_count - 1;
    *first = (uint16_t)lo;
    *last = (uint16_t)hi;
}
