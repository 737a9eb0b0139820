/* COMMAND DOCS: each command's summary, group, the Redis version that introduced it, and
 * its arguments in Redis 7's nested form (name, type, token, flags, arguments), which
 * redis-cli turns back into the hint it shows after a typed command name.
 *
 * The arguments are written once, as the syntax line a user reads ("key [key ...]"), and
 * parsed into that form when asked for, so the two cannot disagree. The syntax: words with a
 * lower-case letter are values ("key", "seconds"), other words are tokens ("NX", "*", "=");
 * a token followed by a value is one argument with a token ("EX seconds"); `[x]` is optional;
 * `a|b` is one of; `<a|b>` groups without making optional; `x [x ...]` repeats x (and
 * `a b [a b ...]` repeats the pair). Unlike Redis's own documentation, alternatives have no
 * spaces around the bar. */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/base/assert.h"
#include "core/base/version.h"
#include "io/service/cmd.h"

struct cmd_doc {
    const char *name; /* as in the command table */
    const char *group;
    const char *since;
    const char *summary;
    const char *syntax; /* the arguments after the name(s); "" for none */
};

/* clang-format off */
static const struct cmd_doc docs[] = {
    {"set", "string", "1.0.0", "Sets a key to a string value, with an optional condition and expiry.",
     "key value [NX|XX] [GET] [EX seconds|PX milliseconds|EXAT unix-time-seconds|PXAT unix-time-milliseconds|KEEPTTL]"},
    {"del", "generic", "1.0.0", "Deletes keys; answers how many existed.", "key [key ...]"},
    {"unlink", "generic", "4.0.0", "Deletes keys (the same as DEL here).", "key [key ...]"},
    {"incr", "string", "1.0.0", "Adds one to the integer stored at a key.", "key"},
    {"incrby", "string", "1.0.0", "Adds an integer to the integer stored at a key.", "key increment"},
    {"decr", "string", "1.0.0", "Subtracts one from the integer stored at a key.", "key"},
    {"decrby", "string", "1.0.0", "Subtracts an integer from the integer stored at a key.", "key decrement"},
    {"append", "string", "2.0.0", "Appends to the string stored at a key; answers its new length.", "key value"},
    {"mset", "string", "1.0.1", "Sets several keys of one hash slot at once.", "key value [key value ...]"},
    {"setnx", "string", "1.0.0", "Sets a key only if it does not exist.", "key value"},
    {"getset", "string", "1.0.0", "Sets a key and answers its previous string value.", "key value"},
    {"getdel", "string", "6.2.0", "Answers a key's string value and deletes the key.", "key"},
    {"expire", "generic", "1.0.0", "Gives a key a time to live in seconds.", "key seconds [NX|XX|GT|LT]"},
    {"pexpire", "generic", "2.6.0", "Gives a key a time to live in milliseconds.", "key milliseconds [NX|XX|GT|LT]"},
    {"expireat", "generic", "1.2.0", "Makes a key expire at a Unix time in seconds.", "key unix-time-seconds [NX|XX|GT|LT]"},
    {"pexpireat", "generic", "2.6.0", "Makes a key expire at a Unix time in milliseconds.", "key unix-time-milliseconds [NX|XX|GT|LT]"},
    {"persist", "generic", "2.2.0", "Removes a key's expiry.", "key"},
    {"xadd", "stream", "5.0.0", "Appends an entry to a stream, creating it if needed, and may trim the stream.",
     "key [NOMKSTREAM] [<MAXLEN|MINID> [=|~] threshold [LIMIT count]] <*|id> field value [field value ...]"},
    {"xdel", "stream", "5.0.0", "Deletes entries from a stream; answers how many existed.", "key id [id ...]"},
    {"xtrim", "stream", "5.0.0", "Trims a stream to a length or a lowest ID.", "key <MAXLEN|MINID> [=|~] threshold [LIMIT count]"},
    {"xreadgroup", "stream", "5.0.0", "Reads entries of streams for a consumer of a consumer group.",
     "GROUP group consumer [COUNT count] [BLOCK milliseconds] [NOACK] STREAMS key [key ...] id [id ...]"},
    {"xack", "stream", "5.0.0", "Acknowledges entries delivered to a consumer group.", "key group id [id ...]"},
    {"xclaim", "stream", "5.0.0", "Gives pending entries of a consumer group to another consumer.",
     "key group consumer min-idle-time id [id ...] [IDLE ms] [TIME unix-time-milliseconds] [RETRYCOUNT count] [FORCE] [JUSTID] [LASTID lastid]"},
    {"xautoclaim", "stream", "6.2.0", "Claims a consumer group's entries pending longer than a time, scanning from an ID.",
     "key group consumer min-idle-time start [COUNT count] [JUSTID]"},
    {"get", "string", "1.0.0", "Answers the string value of a key.", "key"},
    {"exists", "generic", "1.0.0", "Answers how many of the keys exist.", "key [key ...]"},
    {"strlen", "string", "2.2.0", "Answers the length of a key's string value.", "key"},
    {"mget", "string", "1.0.0", "Answers the string values of several keys of one hash slot.", "key [key ...]"},
    {"getrange", "string", "2.4.0", "Answers a substring of a key's string value.", "key start end"},
    {"ttl", "generic", "1.0.0", "Answers a key's time to live in seconds.", "key"},
    {"pttl", "generic", "2.6.0", "Answers a key's time to live in milliseconds.", "key"},
    {"expiretime", "generic", "7.0.0", "Answers the Unix time in seconds at which a key expires.", "key"},
    {"pexpiretime", "generic", "7.0.0", "Answers the Unix time in milliseconds at which a key expires.", "key"},
    {"type", "generic", "1.0.0", "Answers the type of a key's value.", "key"},
    {"xrange", "stream", "5.0.0", "Answers a stream's entries in an ID range.", "key start end [COUNT count]"},
    {"xrevrange", "stream", "5.0.0", "Answers a stream's entries in an ID range, newest first.", "key end start [COUNT count]"},
    {"xlen", "stream", "5.0.0", "Answers the number of entries in a stream.", "key"},
    {"xread", "stream", "5.0.0", "Reads entries of streams after the given IDs.",
     "[COUNT count] [BLOCK milliseconds] STREAMS key [key ...] id [id ...]"},
    {"xpending", "stream", "5.0.0", "Answers a consumer group's pending entries: a summary, or a range.",
     "key group [[IDLE min-idle-time] start end count [consumer]]"},
    {"ping", "connection", "1.0.0", "Answers PONG, or the message.", "[message]"},
    {"echo", "connection", "1.0.0", "Answers the message.", "message"},
    {"info", "server", "1.0.0", "Answers the node's information and statistics.", "[section]"},
    {"config", "server", "2.0.0", "Answers the settings clients ask for.", "GET parameter [parameter ...]"},
    {"command", "server", "2.8.13", "Answers what the node knows of its commands.",
     "[COUNT|INFO [command-name [command-name ...]]|DOCS [command-name [command-name ...]]]"},
    {"client", "connection", "2.4.0", "Answers or sets this connection's ID, name and library.",
     "ID|GETNAME|SETNAME connection-name|SETINFO <LIB-NAME libname|LIB-VER libver>"},
    {"cluster", "cluster", "3.0.0", "Answers the slots, shards and nodes of the cluster, and keys' slots.",
     "SLOTS|SHARDS|NODES|INFO|MYID|KEYSLOT key"},
    {"raft", "raft", RINGRAFT_VERSION, "Shows the node's Raft groups; snapshots; changes membership and leadership.",
     "STATUS|SNAPSHOT group|DIGEST group|ADDNODE id address|PROMOTE id|REMOVENODE id|TRANSFER group node"},
    {"select", "connection", "1.0.0", "Selects database 0, the only one.", "index"},
    {"dbsize", "server", "1.0.0", "Answers the number of keys in the cluster.", ""},
    {"keys", "generic", "1.0.0", "Answers the keys that match a pattern.", "pattern"},
    {"scan", "generic", "2.8.0", "Iterates over the keys of every group.", "cursor [MATCH pattern] [COUNT count] [TYPE type]"},
    {"flushdb", "server", "1.0.0", "Deletes every key, through the log of every group.", "[ASYNC|SYNC]"},
    {"flushall", "server", "1.0.0", "Deletes every key, through the log of every group.", "[ASYNC|SYNC]"},
    {"quit", "connection", "1.0.0", "Closes the connection.", ""},
    {"hello", "connection", "6.0.0", "Handshakes with the node (protocol 2 only), authenticates and names the connection.",
     "[protover [AUTH username password] [SETNAME clientname]]"},
    {"auth", "connection", "1.0.0", "Authenticates the connection.", "[username] password"},
    {"readonly", "cluster", "3.0.0", "Accepted; reads always go to the group's leader.", ""},
    {"readwrite", "cluster", "3.0.0", "Accepted; reads always go to the group's leader.", ""},
    {"wait", "generic", "3.0.0", "Answers the number of other nodes: acknowledged writes are already on a majority.",
     "numreplicas timeout"},
    {"slowlog", "server", "2.2.12", "Answers or resets the log of slow commands.", "GET [count]|LEN|RESET|HELP"},
    {"xgroup", "stream", "5.0.0", "Creates, changes and destroys consumer groups and their consumers.", ""},
    {"xgroup|create", "stream", "5.0.0", "Creates a consumer group.", "key group <id|$> [MKSTREAM] [ENTRIESREAD entries-read]"},
    {"xgroup|setid", "stream", "5.0.0", "Sets a consumer group's last delivered ID.", "key group <id|$> [ENTRIESREAD entries-read]"},
    {"xgroup|destroy", "stream", "5.0.0", "Destroys a consumer group.", "key group"},
    {"xgroup|createconsumer", "stream", "6.2.0", "Creates a consumer in a consumer group.", "key group consumer"},
    {"xgroup|delconsumer", "stream", "5.0.0", "Deletes a consumer from a consumer group.", "key group consumer"},
    {"xgroup|help", "stream", "5.0.0", "Answers XGROUP's help.", ""},
    {"xinfo", "stream", "5.0.0", "Answers information about streams, consumer groups and consumers.", ""},
    {"xinfo|stream", "stream", "5.0.0", "Answers information about a stream.", "key [FULL [COUNT count]]"},
    {"xinfo|groups", "stream", "5.0.0", "Answers a stream's consumer groups.", "key"},
    {"xinfo|consumers", "stream", "5.0.0", "Answers the consumers of a consumer group.", "key group"},
    {"xinfo|help", "stream", "5.0.0", "Answers XINFO's help.", ""},
};
/* clang-format on */

#define DOCS_COUNT     (sizeof(docs) / sizeof(docs[0]))
#define DOC_ARGS_MAX   48u /* arguments of the longest syntax, nested ones included */
#define DOC_WORDS_MAX  64u
#define DOC_NAME_BYTES 40u

enum doc_kind { DOC_VALUE, DOC_PURE_TOKEN, DOC_ONEOF, DOC_BLOCK };

struct doc_word {
    const char *p;
    uint32_t len;
};

struct doc_arg {
    uint8_t kind;
    bool optional;
    bool multiple;
    struct doc_word value; /* DOC_VALUE: its name */
    struct doc_word token; /* DOC_PURE_TOKEN, or a DOC_VALUE with a token */
    int first_child;       /* DOC_ONEOF, DOC_BLOCK: -1 if none */
    int next_sibling;      /* -1 if last */
    uint32_t child_count;
};

struct doc_parse {
    struct doc_word words[DOC_WORDS_MAX];
    uint32_t word_count;
    uint32_t at;
    struct doc_arg args[DOC_ARGS_MAX];
    uint32_t arg_count;
};

static bool is_mark(char c)
{
    return c == '[' || c == ']' || c == '<' || c == '>' || c == '|';
}

static void doc_split(struct doc_parse *d, const char *s)
{
    d->word_count = 0;
    while (*s != '\0') {
        if (*s == ' ') {
            s++;
            continue;
        }
        size_t len = 1;
        if (!is_mark(*s)) {
            while (s[len] != '\0' && s[len] != ' ' && !is_mark(s[len])) {
                len++;
            }
        }
        RR_ASSERT(d->word_count < DOC_WORDS_MAX);
        d->words[d->word_count++] = (struct doc_word){s, (uint32_t)len};
        s += len;
    }
}

static bool word_is(const struct doc_word *w, const char *s)
{
    return w->len == strlen(s) && memcmp(w->p, s, w->len) == 0;
}

static const struct doc_word *doc_peek(const struct doc_parse *d)
{
    return d->at < d->word_count ? &d->words[d->at] : NULL;
}

static int doc_new(struct doc_parse *d, uint8_t kind)
{
    RR_ASSERT(d->arg_count < DOC_ARGS_MAX);
    int i = (int)d->arg_count++;
    d->args[i] = (struct doc_arg){.kind = kind, .first_child = -1, .next_sibling = -1};
    return i;
}

/* A container of the given items (linked through next_sibling), or the item alone. */
static int doc_group(struct doc_parse *d, uint8_t kind, int first, uint32_t count)
{
    if (count == 1) {
        return first;
    }
    int g = doc_new(d, kind);
    d->args[g].first_child = first;
    d->args[g].child_count = count;
    return g;
}

static int doc_alternatives(struct doc_parse *d);

/* Does the bracket at d->at hold only a repetition, "[x ... ...]"? Then its word count. */
static uint32_t doc_repeat_words(const struct doc_parse *d)
{
    uint32_t n = 0;
    for (uint32_t i = d->at + 1; i < d->word_count; i++) {
        const struct doc_word *w = &d->words[i];
        if (word_is(w, "...")) {
            return i + 1 < d->word_count && word_is(&d->words[i + 1], "]") ? n : 0;
        }
        if (w->len == 1 && is_mark(w->p[0])) {
            return 0;
        }
        n++;
    }
    return 0;
}

/* A sequence of items up to '|', ']', '>' or the end; returns its first item (the rest are
 * linked) and sets *count. */
static int doc_sequence(struct doc_parse *d, uint32_t *count)
{
    int items[DOC_WORDS_MAX];
    uint32_t n = 0;
    const struct doc_word *w;
    while ((w = doc_peek(d)) != NULL && !word_is(w, "|") && !word_is(w, "]") && !word_is(w, ">")) {
        uint32_t repeat = word_is(w, "[") ? doc_repeat_words(d) : 0;
        if (repeat > 0) {
            /* "x [x ...]": the last `repeat` items repeat. */
            RR_ASSERT(repeat <= n);
            d->at += repeat + 3;
            uint32_t from = n - repeat;
            for (uint32_t i = from; i + 1 < n; i++) {
                d->args[items[i]].next_sibling = items[i + 1];
            }
            int rep = doc_group(d, DOC_BLOCK, items[from], repeat);
            d->args[rep].multiple = true;
            n = from;
            items[n++] = rep;
            continue;
        }
        int item;
        if (word_is(w, "[") || word_is(w, "<")) {
            bool optional = word_is(w, "[");
            d->at++;
            item = doc_alternatives(d);
            w = doc_peek(d);
            RR_ASSERT(w != NULL && word_is(w, optional ? "]" : ">"));
            d->at++;
            d->args[item].optional = d->args[item].optional || optional;
        } else {
            bool value = false;
            for (uint32_t i = 0; i < w->len; i++) {
                value = value || islower((unsigned char)w->p[i]);
            }
            item = doc_new(d, value ? DOC_VALUE : DOC_PURE_TOKEN);
            if (value) {
                d->args[item].value = *w;
            } else {
                d->args[item].token = *w;
            }
            d->at++;
        }
        RR_ASSERT(n < DOC_WORDS_MAX);
        items[n++] = item;
    }
    /* A token followed by a plain value is one argument: "EX seconds". */
    uint32_t out = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct doc_arg *a = &d->args[items[i]];
        if (i + 1 < n && a->kind == DOC_PURE_TOKEN && !a->optional && !a->multiple &&
            d->args[items[i + 1]].kind == DOC_VALUE && !d->args[items[i + 1]].optional &&
            d->args[items[i + 1]].token.p == NULL) {
            d->args[items[i + 1]].token = a->token; /* (the token's own node goes unused) */
            continue;
        }
        items[out++] = items[i];
    }
    for (uint32_t i = 0; i + 1 < out; i++) {
        d->args[items[i]].next_sibling = items[i + 1];
    }
    RR_ASSERT(out > 0);
    *count = out;
    return items[0];
}

/* Sequences separated by '|': one of them, or the sequence alone. */
static int doc_alternatives(struct doc_parse *d)
{
    int alts[DOC_WORDS_MAX];
    uint32_t n = 0;
    for (;;) {
        uint32_t count;
        int first = doc_sequence(d, &count);
        RR_ASSERT(n < DOC_WORDS_MAX);
        alts[n++] = doc_group(d, DOC_BLOCK, first, count);
        const struct doc_word *w = doc_peek(d);
        if (w == NULL || !word_is(w, "|")) {
            break;
        }
        d->at++;
    }
    for (uint32_t i = 0; i + 1 < n; i++) {
        d->args[alts[i]].next_sibling = alts[i + 1];
    }
    return doc_group(d, DOC_ONEOF, alts[0], n);
}

/* ---- the reply ------------------------------------------------------------------------ */

static void reply_word(struct reply *r, const struct doc_word *w)
{
    reply_bulk(r, w->p, w->len);
}

/* An argument's name: its value's, a pure token's in lower case, a group's made of its
 * first child's ("nx-group"). */
static void doc_name(const struct doc_parse *d, int i, char out[DOC_NAME_BYTES])
{
    const struct doc_arg *a = &d->args[i];
    if (a->kind == DOC_VALUE) {
        snprintf(out, DOC_NAME_BYTES, "%.*s", (int)a->value.len, a->value.p);
    } else if (a->kind == DOC_PURE_TOKEN) {
        uint32_t n = a->token.len < DOC_NAME_BYTES - 1 ? a->token.len : DOC_NAME_BYTES - 1;
        for (uint32_t k = 0; k < n; k++) {
            out[k] = (char)tolower((unsigned char)a->token.p[k]);
        }
        out[n] = '\0';
    } else {
        char first[DOC_NAME_BYTES];
        doc_name(d, a->first_child, first);
        snprintf(out, DOC_NAME_BYTES, "%.*s-group", (int)(DOC_NAME_BYTES - 7), first);
    }
}

static void doc_reply_args(const struct doc_parse *d, int first, uint32_t count, struct reply *r);

static void doc_reply_arg(const struct doc_parse *d, int i, struct reply *r)
{
    static const char *const types[] = {"string", "pure-token", "oneof", "block"};
    const struct doc_arg *a = &d->args[i];
    bool token = a->token.p != NULL;
    bool flags = a->optional || a->multiple;
    bool children = a->kind == DOC_ONEOF || a->kind == DOC_BLOCK;
    reply_array(r, 2 * (2 + (token ? 1 : 0) + (flags ? 1 : 0) + (children ? 1 : 0)));
    char name[DOC_NAME_BYTES];
    doc_name(d, i, name);
    reply_bulk_cstr(r, "name");
    reply_bulk_cstr(r, name);
    reply_bulk_cstr(r, "type");
    reply_bulk_cstr(r, a->kind == DOC_VALUE && strcmp(name, "key") == 0 ? "key" : types[a->kind]);
    if (token) {
        reply_bulk_cstr(r, "token");
        reply_word(r, &a->token);
    }
    if (flags) {
        reply_bulk_cstr(r, "flags");
        reply_array(r, (a->optional ? 1 : 0) + (a->multiple ? 1 : 0));
        if (a->optional) {
            reply_simple(r, "optional");
        }
        if (a->multiple) {
            reply_simple(r, "multiple");
        }
    }
    if (children) {
        reply_bulk_cstr(r, "arguments");
        doc_reply_args(d, a->first_child, a->child_count, r);
    }
}

static void doc_reply_args(const struct doc_parse *d, int first, uint32_t count, struct reply *r)
{
    reply_array(r, count);
    for (int i = first; i >= 0; i = d->args[i].next_sibling) {
        doc_reply_arg(d, i, r);
    }
}

static const struct cmd_doc *doc_find(const char *name)
{
    for (size_t i = 0; i < DOCS_COUNT; i++) {
        if (strcmp(docs[i].name, name) == 0) {
            return &docs[i];
        }
    }
    return NULL;
}

/* Parses a syntax line; returns the first top-level argument (-1: none) and their count. */
static int doc_parse_syntax(struct doc_parse *d, const char *syntax, uint32_t *count)
{
    doc_split(d, syntax);
    d->at = 0;
    d->arg_count = 0;
    *count = 0;
    if (d->word_count == 0) {
        return -1;
    }
    int top = doc_alternatives(d);
    RR_ASSERT(d->at == d->word_count); /* a stray ']' or '>' */
    const struct doc_arg *a = &d->args[top];
    if (a->kind == DOC_BLOCK && !a->optional && !a->multiple) {
        *count = a->child_count; /* a plain sequence: its items are the arguments */
        return a->first_child;
    }
    *count = 1;
    return top;
}

static void doc_reply(const struct cmd_spec *c, struct reply *r)
{
    const struct cmd_doc *doc = doc_find(c->name);
    RR_ASSERT(doc != NULL); /* every command has its docs (tests/service/test_cmd_docs.c) */
    struct doc_parse d;
    uint32_t count;
    int first = doc_parse_syntax(&d, doc->syntax, &count);
    reply_array(r, 2 * (3 + (count > 0 ? 1 : 0) + (c->subcommand_count > 0 ? 1 : 0)));
    reply_bulk_cstr(r, "summary");
    reply_bulk_cstr(r, doc->summary);
    reply_bulk_cstr(r, "since");
    reply_bulk_cstr(r, doc->since);
    reply_bulk_cstr(r, "group");
    reply_bulk_cstr(r, doc->group);
    if (count > 0) {
        reply_bulk_cstr(r, "arguments");
        doc_reply_args(&d, first, count, r);
    }
    if (c->subcommand_count > 0) {
        reply_bulk_cstr(r, "subcommands");
        reply_array(r, 2 * (int64_t)c->subcommand_count);
        for (uint8_t i = 0; i < c->subcommand_count; i++) {
            reply_bulk_cstr(r, c->subcommands[i].name);
            doc_reply(&c->subcommands[i], r);
        }
    }
}

void cmd_docs(uint32_t argc, const uint8_t *const argv[], const size_t argl[], struct reply *r)
{
    const struct cmd_spec *found[CMD_DOCS_NAMES_MAX];
    uint32_t n = 0;
    if (argc == 0) {
        for (size_t i = 0; i < cmd_count() && n < CMD_DOCS_NAMES_MAX; i++) {
            found[n++] = cmd_at(i);
        }
    } else {
        /* Unknown names are left out, as Redis does. */
        for (uint32_t i = 0; i < argc && n < CMD_DOCS_NAMES_MAX; i++) {
            const struct cmd_spec *c = cmd_lookup_fullname(argv[i], argl[i]);
            if (c != NULL) {
                found[n++] = c;
            }
        }
    }
    reply_array(r, 2 * (int64_t)n);
    for (uint32_t i = 0; i < n; i++) {
        reply_bulk_cstr(r, found[i]->name);
        doc_reply(found[i], r);
    }
}

bool cmd_docs_check(const char *name)
{
    const struct cmd_doc *doc = doc_find(name);
    if (doc == NULL) {
        return false;
    }
    struct doc_parse d;
    uint32_t count;
    (void)doc_parse_syntax(&d, doc->syntax, &count);
    return true;
}
