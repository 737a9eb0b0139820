/* The command table: names, arities, key positions and classes of every command the node
 * accepts, plus the Redis Cluster key-slot rules and the slot -> group map. */
#ifndef RR_SERVICE_CMD_H
#define RR_SERVICE_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/service/reply.h"

enum cmd_class {
    CMD_WRITE = 1, /* goes through the log: the node encodes it with sm_entry_encode and
                      proposes it */
    CMD_READ = 2,  /* served by sm_read after a linearizable ReadIndex */
    CMD_NODE = 3,  /* handled by the node itself (PING, ECHO, INFO, CONFIG, COMMAND, CLIENT,
                      CLUSTER, RAFT, SELECT, DBSIZE, KEYS, SCAN, FLUSHDB, FLUSHALL, QUIT,
                      HELLO, ...) */
};

/* Every command in the table, for switch statements. Values are stable only within a build:
 * never put them on disk or on the wire (log entries carry the command name). */
enum cmd_id {
    CMD_ID_NONE = 0,
    /* CMD_WRITE */
    CMD_ID_SET,
    CMD_ID_DEL,
    CMD_ID_UNLINK,
    CMD_ID_INCR,
    CMD_ID_INCRBY,
    CMD_ID_DECR,
    CMD_ID_DECRBY,
    CMD_ID_APPEND,
    CMD_ID_MSET,
    CMD_ID_SETNX,
    CMD_ID_GETSET,
    CMD_ID_GETDEL,
    CMD_ID_EXPIRE,
    CMD_ID_PEXPIRE,
    CMD_ID_EXPIREAT,
    CMD_ID_PEXPIREAT,
    CMD_ID_PERSIST,
    CMD_ID_XADD,
    CMD_ID_XDEL,
    CMD_ID_XTRIM,
    CMD_ID_XREADGROUP,
    CMD_ID_XACK,
    CMD_ID_XCLAIM,
    CMD_ID_XAUTOCLAIM,
    CMD_ID_XGROUP_CREATE, /* XGROUP's subcommands (the container XGROUP is a CMD_NODE) */
    CMD_ID_XGROUP_SETID,
    CMD_ID_XGROUP_DESTROY,
    CMD_ID_XGROUP_CREATECONSUMER,
    CMD_ID_XGROUP_DELCONSUMER,
    /* CMD_READ */
    CMD_ID_GET,
    CMD_ID_EXISTS,
    CMD_ID_STRLEN,
    CMD_ID_MGET,
    CMD_ID_GETRANGE,
    CMD_ID_TTL,
    CMD_ID_PTTL,
    CMD_ID_EXPIRETIME,
    CMD_ID_PEXPIRETIME,
    CMD_ID_TYPE,
    CMD_ID_XRANGE,
    CMD_ID_XREVRANGE,
    CMD_ID_XLEN,
    CMD_ID_XREAD,
    CMD_ID_XPENDING,
    CMD_ID_XINFO_STREAM, /* XINFO's subcommands */
    CMD_ID_XINFO_GROUPS,
    CMD_ID_XINFO_CONSUMERS,
    /* CMD_NODE */
    CMD_ID_PING,
    CMD_ID_ECHO,
    CMD_ID_INFO,
    CMD_ID_CONFIG,
    CMD_ID_COMMAND,
    CMD_ID_CLIENT,
    CMD_ID_CLUSTER,
    CMD_ID_RAFT,
    CMD_ID_SELECT,
    CMD_ID_DBSIZE,
    CMD_ID_KEYS,
    CMD_ID_SCAN,
    CMD_ID_FLUSHDB, /* a CMD_NODE, but sm_apply also accepts an entry whose argv is
                       ["flushdb"] (optionally with ASYNC or SYNC): the node proposes one to
                       every group for FLUSHDB and FLUSHALL */
    CMD_ID_FLUSHALL,
    CMD_ID_QUIT,
    CMD_ID_HELLO,
    CMD_ID_AUTH,
    CMD_ID_READONLY,
    CMD_ID_READWRITE,
    CMD_ID_WAIT,
    CMD_ID_SLOWLOG,
    CMD_ID_XGROUP, /* containers: only argv[1] says what runs (cmd_resolve) */
    CMD_ID_XINFO,
    CMD_ID_XGROUP_HELP, /* answered by the node (sm_reply_help) */
    CMD_ID_XINFO_HELP,
    CMD_ID_COUNT_ /* number of ids; not a command */
};

struct cmd_spec {
    const char *name;  /* lower case, as Redis's COMMAND reports it ("xgroup|create" for a
                          subcommand) */
    int32_t arity;     /* Redis convention: n = exactly n args incl. the name, -n = at least n */
    uint8_t cls;       /* enum cmd_class */
    int8_t first_key;  /* Redis's key spec (0: no keys) */
    int8_t last_key;   /* -1: last argument */
    int8_t key_step;   /* distance between keys (0 when first_key is 0) */
    uint16_t id;       /* enum cmd_id, for switch statements */
    const char *flags; /* COMMAND's flags, space separated, e.g. "write denyoom" */
    const struct cmd_spec *subcommands; /* a container (XGROUP, XINFO): its subcommands, in
                                           the order Redis's COMMAND lists them; else NULL */
    uint8_t subcommand_count;
};

/* Case-insensitive lookup of a command (not of a subcommand), NULL if unknown. */
const struct cmd_spec *cmd_lookup(const uint8_t *name, size_t len);
/* The same, and a "container|subcommand" name finds the subcommand (COMMAND INFO). */
const struct cmd_spec *cmd_lookup_fullname(const uint8_t *name, size_t len);

/* What a request runs, as Redis 7 decides it (lookupCommand and processCommand's checks):
 * argv[0], and for a container with argc >= 2 the subcommand argv[1]; then the arity. NULL
 * after writing the error into r: "ERR unknown command ...", "ERR unknown subcommand 'x'.
 * Try XGROUP HELP." or "ERR wrong number of arguments for 'xgroup|create' command". */
const struct cmd_spec *
cmd_resolve(uint32_t argc, const uint8_t *const argv[], const uint32_t argl[], struct reply *r);

/* COMMAND DOCS [name ...] (argv and argl: the names, argc of them; none: every command):
 * the commands' documentation as Redis 7 answers it in RESP2, a flat map of name to
 * summary, since, group, arguments and subcommands (io/service/cmd_docs.c). Unknown names
 * are left out; at most CMD_DOCS_NAMES_MAX commands are answered. */
#define CMD_DOCS_NAMES_MAX 256u
void cmd_docs(uint32_t argc, const uint8_t *const argv[], const size_t argl[], struct reply *r);
/* Whether the command or subcommand `name` ("xgroup|create") has its documentation, and
 * its syntax line parses (it asserts otherwise): for the tests. */
bool cmd_docs_check(const char *name);

/* Iteration for COMMAND / COMMAND COUNT / COMMAND DOCS: i in [0, cmd_count()). */
size_t cmd_count(void);
const struct cmd_spec *cmd_at(size_t i);

/* Writes Redis's error for an unknown command into r: "ERR unknown command 'foo', with args
 * beginning with: 'a' 'b' " (exact Redis 7 wording, including its truncation rules: the name
 * and each argument are cut to 128 bytes, and arguments are listed only while the listing
 * stays under 128 bytes). argc >= 1. */
void cmd_reply_unknown(struct reply *r,
                       uint32_t argc,
                       const uint8_t *const argv[],
                       const uint32_t argl[]);

/* 0 if argc fits the arity, else writes "ERR wrong number of arguments for 'set' command"
 * into r and returns RR_EINVAL. */
int cmd_check_arity(const struct cmd_spec *c, uint32_t argc, struct reply *r);

/* Redis Cluster's key slot: CRC16-XMODEM of the key, or of its first non-empty {hash tag},
 * mod 16384. */
uint16_t cmd_keyslot(const uint8_t *key, size_t len);

/* Returned by cmd_request_slot when keys hash to different slots. Not an rr_error code. */
#define CMD_CROSSSLOT (-1100)

/* The slot all keys of the request hash to: returns 1 and sets *slot, 0 if the command has
 * no keys (or, for XREAD and XREADGROUP, a syntax error their own parser reports), or
 * CMD_CROSSSLOT after writing "CROSSSLOT Keys in request don't hash to the same slot" into
 * r. For XREAD and XREADGROUP the keys are those after STREAMS; an odd count there writes
 * "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be
 * specified." and returns RR_EINVAL. c is what cmd_resolve returned (arity checked). */
int cmd_request_slot(const struct cmd_spec *c,
                     uint32_t argc,
                     const uint8_t *const argv[],
                     const uint32_t argl[],
                     uint16_t *slot,
                     struct reply *r);

#define CMD_SLOTS 16384

/* Fixed slot -> group table: contiguous ranges, group = slot * G / 16384 (1 <= G <= 16384). */
uint32_t cmd_slot_group(uint16_t slot, uint32_t group_count);

/* First and last slot of group g (g < group_count). */
void cmd_group_slots(uint32_t g, uint32_t group_count, uint16_t *first, uint16_t *last);

#endif
