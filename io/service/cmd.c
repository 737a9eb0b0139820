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
/* Subcommands, in the order COMMAND INFO lists them on redis-server 7.0.15. */
static const struct cmd_spec xgroup_subcommands[] = {
    {"xgroup|help", 2, CMD_NODE, 0, 0, 0, CMD_ID_XGROUP_HELP, "loading stale", NULL, 0},
    {"xgroup|createconsumer", 5, CMD_WRITE, 2, 2, 1, CMD_ID_XGROUP_CREATECONSUMER, "write denyoom", NULL, 0},
    {"xgroup|delconsumer", 5, CMD_WRITE, 2, 2, 1, CMD_ID_XGROUP_DELCONSUMER, "write", NULL, 0},
    {"xgroup|destroy", 4, CMD_WRITE, 2, 2, 1, CMD_ID_XGROUP_DESTROY, "write", NULL, 0},
    {"xgroup|setid", -5, CMD_WRITE, 2, 2, 1, CMD_ID_XGROUP_SETID, "write", NULL, 0},
    {"xgroup|create", -5, CMD_WRITE, 2, 2, 1, CMD_ID_XGROUP_CREATE, "write denyoom", NULL, 0},
};

static const struct cmd_spec xinfo_subcommands[] = {
    {"xinfo|help", 2, CMD_NODE, 0, 0, 0, CMD_ID_XINFO_HELP, "loading stale", NULL, 0},
    {"xinfo|groups", 3, CMD_READ, 2, 2, 1, CMD_ID_XINFO_GROUPS, "readonly", NULL, 0},
    {"xinfo|consumers", 4, CMD_READ, 2, 2, 1, CMD_ID_XINFO_CONSUMERS, "readonly", NULL, 0},
    {"xinfo|stream", -3, CMD_READ, 2, 2, 1, CMD_ID_XINFO_STREAM, "readonly", NULL, 0},
};

#define CMD_SUBS(t) (t), (uint8_t)(sizeof(t) / sizeof((t)[0]))

static const struct cmd_spec cmd_table[] = {
    /* name, arity, class, first, last, step, id, flags */
    {"set", -3, CMD_WRITE, 1, 1, 1, CMD_ID_SET, "write denyoom", NULL, 0},
    {"del", -2, CMD_WRITE, 1, -1, 1, CMD_ID_DEL, "write", NULL, 0},
    {"unlink", -2, CMD_WRITE, 1, -1, 1, CMD_ID_UNLINK, "write fast", NULL, 0},
    {"incr", 2, CMD_WRITE, 1, 1, 1, CMD_ID_INCR, "write denyoom fast", NULL, 0},
    {"incrby", 3, CMD_WRITE, 1, 1, 1, CMD_ID_INCRBY, "write denyoom fast", NULL, 0},
    {"decr", 2, CMD_WRITE, 1, 1, 1, CMD_ID_DECR, "write denyoom fast", NULL, 0},
    {"decrby", 3, CMD_WRITE, 1, 1, 1, CMD_ID_DECRBY, "write denyoom fast", NULL, 0},
    {"append", 3, CMD_WRITE, 1, 1, 1, CMD_ID_APPEND, "write denyoom fast", NULL, 0},
    {"mset", -3, CMD_WRITE, 1, -1, 2, CMD_ID_MSET, "write denyoom", NULL, 0},
    {"setnx", 3, CMD_WRITE, 1, 1, 1, CMD_ID_SETNX, "write denyoom fast", NULL, 0},
    {"getset", 3, CMD_WRITE, 1, 1, 1, CMD_ID_GETSET, "write denyoom fast", NULL, 0},
    {"getdel", 2, CMD_WRITE, 1, 1, 1, CMD_ID_GETDEL, "write fast", NULL, 0},
    {"expire", -3, CMD_WRITE, 1, 1, 1, CMD_ID_EXPIRE, "write fast", NULL, 0},
    {"pexpire", -3, CMD_WRITE, 1, 1, 1, CMD_ID_PEXPIRE, "write fast", NULL, 0},
    {"expireat", -3, CMD_WRITE, 1, 1, 1, CMD_ID_EXPIREAT, "write fast", NULL, 0},
    {"pexpireat", -3, CMD_WRITE, 1, 1, 1, CMD_ID_PEXPIREAT, "write fast", NULL, 0},
    {"persist", 2, CMD_WRITE, 1, 1, 1, CMD_ID_PERSIST, "write fast", NULL, 0},
    {"xadd", -5, CMD_WRITE, 1, 1, 1, CMD_ID_XADD, "write denyoom fast", NULL, 0},
    {"xdel", -3, CMD_WRITE, 1, 1, 1, CMD_ID_XDEL, "write fast", NULL, 0},
    {"xtrim", -4, CMD_WRITE, 1, 1, 1, CMD_ID_XTRIM, "write", NULL, 0},
    /* Keys after STREAMS: cmd_request_slot finds them (Redis: movablekeys). */
    {"xreadgroup", -7, CMD_WRITE, 0, 0, 0, CMD_ID_XREADGROUP, "write blocking movablekeys", NULL, 0},
    {"xack", -4, CMD_WRITE, 1, 1, 1, CMD_ID_XACK, "write fast", NULL, 0},
    {"xclaim", -6, CMD_WRITE, 1, 1, 1, CMD_ID_XCLAIM, "write fast", NULL, 0},
    {"xautoclaim", -6, CMD_WRITE, 1, 1, 1, CMD_ID_XAUTOCLAIM, "write fast", NULL, 0},
    {"get", 2, CMD_READ, 1, 1, 1, CMD_ID_GET, "readonly fast", NULL, 0},
    {"exists", -2, CMD_READ, 1, -1, 1, CMD_ID_EXISTS, "readonly fast", NULL, 0},
    {"strlen", 2, CMD_READ, 1, 1, 1, CMD_ID_STRLEN, "readonly fast", NULL, 0},
    {"mget", -2, CMD_READ, 1, -1, 1, CMD_ID_MGET, "readonly fast", NULL, 0},
    {"getrange", 4, CMD_READ, 1, 1, 1, CMD_ID_GETRANGE, "readonly", NULL, 0},
    {"ttl", 2, CMD_READ, 1, 1, 1, CMD_ID_TTL, "readonly fast", NULL, 0},
    {"pttl", 2, CMD_READ, 1, 1, 1, CMD_ID_PTTL, "readonly fast", NULL, 0},
    {"expiretime", 2, CMD_READ, 1, 1, 1, CMD_ID_EXPIRETIME, "readonly fast", NULL, 0},
    {"pexpiretime", 2, CMD_READ, 1, 1, 1, CMD_ID_PEXPIRETIME, "readonly fast", NULL, 0},
    {"type", 2, CMD_READ, 1, 1, 1, CMD_ID_TYPE, "readonly fast", NULL, 0},
    {"xrange", -4, CMD_READ, 1, 1, 1, CMD_ID_XRANGE, "readonly", NULL, 0},
    {"xrevrange", -4, CMD_READ, 1, 1, 1, CMD_ID_XREVRANGE, "readonly", NULL, 0},
    {"xlen", 2, CMD_READ, 1, 1, 1, CMD_ID_XLEN, "readonly fast", NULL, 0},
    /* Keys after STREAMS: cmd_request_slot finds them (Redis: movablekeys). */
    {"xread", -4, CMD_READ, 0, 0, 0, CMD_ID_XREAD, "readonly blocking movablekeys", NULL, 0},
    {"xpending", -3, CMD_READ, 1, 1, 1, CMD_ID_XPENDING, "readonly", NULL, 0},
    {"ping", -1, CMD_NODE, 0, 0, 0, CMD_ID_PING, "fast", NULL, 0},
    {"echo", 2, CMD_NODE, 0, 0, 0, CMD_ID_ECHO, "loading stale fast", NULL, 0},
    {"info", -1, CMD_NODE, 0, 0, 0, CMD_ID_INFO, "loading stale", NULL, 0},
    {"config", -2, CMD_NODE, 0, 0, 0, CMD_ID_CONFIG, "", NULL, 0},
    {"command", -1, CMD_NODE, 0, 0, 0, CMD_ID_COMMAND, "loading stale", NULL, 0},
    {"client", -2, CMD_NODE, 0, 0, 0, CMD_ID_CLIENT, "", NULL, 0},
    {"cluster", -2, CMD_NODE, 0, 0, 0, CMD_ID_CLUSTER, "", NULL, 0},
    {"raft", -2, CMD_NODE, 0, 0, 0, CMD_ID_RAFT, "admin", NULL, 0},
    {"select", 2, CMD_NODE, 0, 0, 0, CMD_ID_SELECT, "loading stale fast", NULL, 0},
    {"dbsize", 1, CMD_NODE, 0, 0, 0, CMD_ID_DBSIZE, "readonly fast", NULL, 0},
    {"keys", 2, CMD_NODE, 0, 0, 0, CMD_ID_KEYS, "readonly", NULL, 0},
    {"scan", -2, CMD_NODE, 0, 0, 0, CMD_ID_SCAN, "readonly", NULL, 0},
    {"flushdb", -1, CMD_NODE, 0, 0, 0, CMD_ID_FLUSHDB, "write", NULL, 0},
    {"flushall", -1, CMD_NODE, 0, 0, 0, CMD_ID_FLUSHALL, "write", NULL, 0},
    {"quit", -1, CMD_NODE, 0, 0, 0, CMD_ID_QUIT, "noscript loading stale fast no_auth allow_busy", NULL, 0},
    {"hello", -1, CMD_NODE, 0, 0, 0, CMD_ID_HELLO, "noscript loading stale fast no_auth allow_busy", NULL, 0},
    {"auth", -2, CMD_NODE, 0, 0, 0, CMD_ID_AUTH, "noscript loading stale fast no_auth allow_busy", NULL, 0},
    {"readonly", 1, CMD_NODE, 0, 0, 0, CMD_ID_READONLY, "loading stale fast", NULL, 0},
    {"readwrite", 1, CMD_NODE, 0, 0, 0, CMD_ID_READWRITE, "loading stale fast", NULL, 0},
    {"wait", 3, CMD_NODE, 0, 0, 0, CMD_ID_WAIT, "noscript", NULL, 0},
    {"slowlog", -2, CMD_NODE, 0, 0, 0, CMD_ID_SLOWLOG, "admin loading stale", NULL, 0},
    {"xgroup", -2, CMD_NODE, 0, 0, 0, CMD_ID_XGROUP, "", CMD_SUBS(xgroup_subcommands)},
    {"xinfo", -2, CMD_NODE, 0, 0, 0, CMD_ID_XINFO, "", CMD_SUBS(xinfo_subcommands)},
};
/* clang-format on */

#define CMD_TABLE_COUNT (sizeof(cmd_table) / sizeof(cmd_table[0]))
#define CMD_SUB_COUNT                                                                              \
    (sizeof(xgroup_subcommands) / sizeof(xgroup_subcommands[0]) +                                  \
     sizeof(xinfo_subcommands) / sizeof(xinfo_subcommands[0]))
_Static_assert(CMD_TABLE_COUNT + CMD_SUB_COUNT == CMD_ID_COUNT_ - 1,
               "one table row per command id");

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

/* Bytes of an argument as C's "%.*s" would print them: up to the first NUL, at most max. */
static size_t cstr_prefix(const uint8_t *p, size_t len, size_t max)
{
    size_t n = 0;
    while (n < len && n < max && p[n] != 0) {
        n++;
    }
    return n;
}

/* The subcommand of container c named p (case-insensitive), or NULL. */
static const struct cmd_spec *subcommand(const struct cmd_spec *c, const uint8_t *p, size_t len)
{
    size_t prefix = strlen(c->name) + 1; /* "xgroup|" */
    for (uint8_t i = 0; i < c->subcommand_count; i++) {
        const char *sub = c->subcommands[i].name + prefix;
        if (strlen(sub) != len) {
            continue;
        }
        size_t k = 0;
        while (k < len && ascii_lower(p[k]) == (uint8_t)sub[k]) {
            k++;
        }
        if (k == len) {
            return &c->subcommands[i];
        }
    }
    return NULL;
}

const struct cmd_spec *cmd_lookup_fullname(const uint8_t *name, size_t len)
{
    const uint8_t *bar = memchr(name, '|', len);
    if (bar == NULL) {
        return cmd_lookup(name, len);
    }
    const struct cmd_spec *c = cmd_lookup(name, (size_t)(bar - name));
    if (c == NULL || c->subcommands == NULL) {
        return NULL;
    }
    return subcommand(c, bar + 1, len - (size_t)(bar - name) - 1);
}

const struct cmd_spec *
cmd_resolve(uint32_t argc, const uint8_t *const argv[], const uint32_t argl[], struct reply *r)
{
    RR_ASSERT(argc >= 1);
    const struct cmd_spec *c = cmd_lookup(argv[0], argl[0]);
    if (c == NULL) {
        cmd_reply_unknown(r, argc, argv, argl);
        return NULL;
    }
    if (c->subcommands != NULL && argc >= 2) {
        const struct cmd_spec *sub = subcommand(c, argv[1], argl[1]);
        if (sub == NULL) {
            /* Redis prints the subcommand with "%.128s" (a C string: it ends at a NUL) and
             * the container's name upper-cased. */
            size_t shown = cstr_prefix(argv[1], argl[1], CMD_UNKNOWN_ARGMAX);
            char upper[CMD_NAME_MAX + 1];
            size_t n = strlen(c->name);
            for (size_t i = 0; i < n; i++) {
                char ch = c->name[i];
                upper[i] = (char)(ch >= 'a' && ch <= 'z' ? ch - ('a' - 'A') : ch);
            }
            upper[n] = '\0';
            reply_errorf(r, "ERR unknown subcommand '%.*s'. Try %s HELP.", (int)shown,
                         (const char *)argv[1], upper);
            return NULL;
        }
        c = sub;
    }
    return cmd_check_arity(c, argc, r) == 0 ? c : NULL;
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
 * Cluster's crc16.c, table-driven as there: crc16_table[i] is the CRC of the byte i. The
 * bitwise form (8 data-dependent branches per byte) took 1.5% of a forwarding node's CPU
 * under a SET load; tests/service/test_cmd.c checks the table against it. */
/* clang-format off */
static const uint16_t crc16_table[256] = {
    0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50a5, 0x60c6, 0x70e7,
    0x8108, 0x9129, 0xa14a, 0xb16b, 0xc18c, 0xd1ad, 0xe1ce, 0xf1ef,
    0x1231, 0x0210, 0x3273, 0x2252, 0x52b5, 0x4294, 0x72f7, 0x62d6,
    0x9339, 0x8318, 0xb37b, 0xa35a, 0xd3bd, 0xc39c, 0xf3ff, 0xe3de,
    0x2462, 0x3443, 0x0420, 0x1401, 0x64e6, 0x74c7, 0x44a4, 0x5485,
    0xa56a, 0xb54b, 0x8528, 0x9509, 0xe5ee, 0xf5cf, 0xc5ac, 0xd58d,
    0x3653, 0x2672, 0x1611, 0x0630, 0x76d7, 0x66f6, 0x5695, 0x46b4,
    0xb75b, 0xa77a, 0x9719, 0x8738, 0xf7df, 0xe7fe, 0xd79d, 0xc7bc,
    0x48c4, 0x58e5, 0x6886, 0x78a7, 0x0840, 0x1861, 0x2802, 0x3823,
    0xc9cc, 0xd9ed, 0xe98e, 0xf9af, 0x8948, 0x9969, 0xa90a, 0xb92b,
    0x5af5, 0x4ad4, 0x7ab7, 0x6a96, 0x1a71, 0x0a50, 0x3a33, 0x2a12,
    0xdbfd, 0xcbdc, 0xfbbf, 0xeb9e, 0x9b79, 0x8b58, 0xbb3b, 0xab1a,
    0x6ca6, 0x7c87, 0x4ce4, 0x5cc5, 0x2c22, 0x3c03, 0x0c60, 0x1c41,
    0xedae, 0xfd8f, 0xcdec, 0xddcd, 0xad2a, 0xbd0b, 0x8d68, 0x9d49,
    0x7e97, 0x6eb6, 0x5ed5, 0x4ef4, 0x3e13, 0x2e32, 0x1e51, 0x0e70,
    0xff9f, 0xefbe, 0xdfdd, 0xcffc, 0xbf1b, 0xaf3a, 0x9f59, 0x8f78,
    0x9188, 0x81a9, 0xb1ca, 0xa1eb, 0xd10c, 0xc12d, 0xf14e, 0xe16f,
    0x1080, 0x00a1, 0x30c2, 0x20e3, 0x5004, 0x4025, 0x7046, 0x6067,
    0x83b9, 0x9398, 0xa3fb, 0xb3da, 0xc33d, 0xd31c, 0xe37f, 0xf35e,
    0x02b1, 0x1290, 0x22f3, 0x32d2, 0x4235, 0x5214, 0x6277, 0x7256,
    0xb5ea, 0xa5cb, 0x95a8, 0x8589, 0xf56e, 0xe54f, 0xd52c, 0xc50d,
    0x34e2, 0x24c3, 0x14a0, 0x0481, 0x7466, 0x6447, 0x5424, 0x4405,
    0xa7db, 0xb7fa, 0x8799, 0x97b8, 0xe75f, 0xf77e, 0xc71d, 0xd73c,
    0x26d3, 0x36f2, 0x0691, 0x16b0, 0x6657, 0x7676, 0x4615, 0x5634,
    0xd94c, 0xc96d, 0xf90e, 0xe92f, 0x99c8, 0x89e9, 0xb98a, 0xa9ab,
    0x5844, 0x4865, 0x7806, 0x6827, 0x18c0, 0x08e1, 0x3882, 0x28a3,
    0xcb7d, 0xdb5c, 0xeb3f, 0xfb1e, 0x8bf9, 0x9bd8, 0xabbb, 0xbb9a,
    0x4a75, 0x5a54, 0x6a37, 0x7a16, 0x0af1, 0x1ad0, 0x2ab3, 0x3a92,
    0xfd2e, 0xed0f, 0xdd6c, 0xcd4d, 0xbdaa, 0xad8b, 0x9de8, 0x8dc9,
    0x7c26, 0x6c07, 0x5c64, 0x4c45, 0x3ca2, 0x2c83, 0x1ce0, 0x0cc1,
    0xef1f, 0xff3e, 0xcf5d, 0xdf7c, 0xaf9b, 0xbfba, 0x8fd9, 0x9ff8,
    0x6e17, 0x7e36, 0x4e55, 0x5e74, 0x2e93, 0x3eb2, 0x0ed1, 0x1ef0,
};
/* clang-format on */

static uint16_t crc16_xmodem(const uint8_t *p, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc = (uint16_t)((crc << 8) ^ crc16_table[((crc >> 8) ^ p[i]) & 0xff]);
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

/* XREAD's and XREADGROUP's keys, as Redis's xreadGetKeys finds them: the options before
 * STREAMS are skipped with their values (BLOCK n, COUNT n, GROUP g c, NOACK), the keys are
 * the first half of what follows. Returns the first key's index and sets *key_count; 0 on a
 * syntax error left for the command to report. */
static uint32_t
xread_keys(uint32_t argc, const uint8_t *const argv[], const uint32_t argl[], uint32_t *key_count)
{
    uint32_t streams = 0;
    for (uint32_t i = 1; i < argc; i++) {
        if (arg_is(argv[i], argl[i], "block") || arg_is(argv[i], argl[i], "count")) {
            i++;
        } else if (arg_is(argv[i], argl[i], "group")) {
            i += 2;
        } else if (arg_is(argv[i], argl[i], "noack")) {
            continue;
        } else if (arg_is(argv[i], argl[i], "streams")) {
            streams = i;
            break;
        } else {
            break;
        }
    }
    if (streams == 0 || streams >= argc) {
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
    if (c->id == CMD_ID_XREAD || c->id == CMD_ID_XREADGROUP) {
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
