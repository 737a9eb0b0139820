/* Commands the node answers itself, from its configuration and the published group view
 * (struct group_pub): PING, ECHO, SELECT, QUIT, AUTH, HELLO, CLIENT, CONFIG GET, COMMAND,
 * INFO, CLUSTER, RAFT STATUS, READONLY/READWRITE, WAIT. */
#include <ctype.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/base/assert.h"
#include "io/client.h"
#include "io/log.h"
#include "io/metrics.h"
#include "io/service/cgroup_cmd.h"
#include "io/service/util.h"

static bool arg_is(const uint8_t *a, size_t l, const char *s)
{
    return l == strlen(s) && strncasecmp((const char *)a, s, l) == 0;
}

/* The 40-character node id Redis Cluster clients expect, derived from cluster and node id. */
static void node_name(const struct node *n, raft_node id, char out[41])
{
    snprintf(out, 41, "%016" PRIx64 "%08x%016x", n->cfg.cluster_id, id, 0);
}

static void reply_pair(struct reply *r, const char *k, const char *v)
{
    reply_bulk_cstr(r, k);
    reply_bulk_cstr(r, v);
}

/* ---- authentication ---------------------------------------------------------------------- */

/* Compares in time independent of where the strings differ (a timing side channel must not
 * tell an attacker how much of a guess was right). */
static bool same_secret(const uint8_t *a, size_t al, const char *b)
{
    size_t bl = strlen(b);
    size_t n = al > bl ? al : bl;
    unsigned diff = al != bl;
    for (size_t i = 0; i < n; i++) {
        uint8_t x = i < al ? a[i] : 0;
        uint8_t y = i < bl ? (uint8_t)b[i] : 0;
        diff |= (unsigned)(x ^ y);
    }
    return diff == 0;
}

/* Only the "default" user exists; without requirepass it takes any password (Redis's
 * nopass). A success authenticates the client; a failure leaves it as it was. */
static bool authenticate(struct client *cl,
                         const uint8_t *user,
                         size_t ul,
                         const uint8_t *pass,
                         size_t pl,
                         struct reply *r)
{
    struct node *n = cl->w->node;
    bool ok = (user == NULL || (ul == 7 && memcmp(user, "default", 7) == 0)) &&
              (n->cfg.requirepass[0] == '\0' || same_secret(pass, pl, n->cfg.requirepass));
    if (!ok) {
        atomic_fetch_add_explicit(&n->auth_failures, 1, memory_order_relaxed);
        reply_error(r, "WRONGPASS invalid username-password pair or user is disabled.");
        return false;
    }
    cl->authenticated = true;
    return true;
}

static void auth_cmd(struct client *cl,
                     uint32_t argc,
                     const uint8_t *const argv[],
                     const size_t argl[],
                     struct reply *r)
{
    if (argc > 3) {
        reply_error(r, "ERR syntax error");
        return;
    }
    if (argc == 2 && cl->w->node->cfg.requirepass[0] == '\0') {
        reply_error(r, "ERR AUTH <password> called without any password configured for the "
                       "default user. Are you sure your configuration is correct?");
        return;
    }
    bool with_user = argc == 3;
    if (authenticate(cl, with_user ? argv[1] : NULL, with_user ? argl[1] : 0, argv[argc - 1],
                     argl[argc - 1], r)) {
        reply_simple(r, "OK");
    }
}

/* A client name Redis would refuse (spaces, newlines, other special characters), or one
 * longer than this node keeps: writes the error and returns true. */
static bool client_name_refused(const uint8_t *name, size_t len, size_t cap, struct reply *r)
{
    for (size_t i = 0; i < len; i++) {
        if (name[i] < '!' || name[i] > '~') {
            reply_error(r, "ERR Client names cannot contain spaces, newlines or special "
                           "characters.");
            return true;
        }
    }
    if (len >= cap) {
        reply_errorf(r, "ERR Client names are limited to %zu bytes", cap - 1);
        return true;
    }
    return false;
}

/* For a container command whose subcommand argv[1] is `sub`: false after writing Redis's
 * arity error if argc does not fit `arity` (Redis's convention: n exactly, -n at least);
 * true for any other subcommand. */
static bool subcommand_arity(uint32_t argc,
                             const uint8_t *const argv[],
                             const size_t argl[],
                             const char *sub,
                             int32_t arity,
                             struct reply *r)
{
    if (argc < 2 || !arg_is(argv[1], argl[1], sub)) {
        return true;
    }
    bool fits = arity >= 0 ? argc == (uint32_t)arity : argc >= (uint32_t)-arity;
    if (!fits) {
        char container[16];
        snprintf(container, sizeof(container), "%.*s", (int)argl[0], (const char *)argv[0]);
        for (char *c = container; *c != '\0'; c++) {
            *c = (char)tolower((unsigned char)*c);
        }
        reply_errorf(r, "ERR wrong number of arguments for '%s|%s' command", container, sub);
    }
    return fits;
}

static void set_client_name(struct client *cl, const uint8_t *name, size_t len)
{
    memcpy(cl->name, name, len);
    cl->name[len] = '\0';
}

/* HELLO [protover [AUTH username password] [SETNAME clientname]] (RESP2 only). */
static void hello_cmd(struct client *cl,
                      uint32_t argc,
                      const uint8_t *const argv[],
                      const size_t argl[],
                      struct reply *r)
{
    struct node *n = cl->w->node;
    if (argc >= 2 && !(argl[1] == 1 && argv[1][0] == '2')) {
        reply_error(r, "NOPROTO sorry, this protocol version is not supported");
        return;
    }
    uint32_t auth_at = 0, name_at = 0;
    for (uint32_t i = 2; i < argc; i++) {
        if (arg_is(argv[i], argl[i], "auth") && argc - i - 1 >= 2) {
            auth_at = i;
            i += 2;
        } else if (arg_is(argv[i], argl[i], "setname") && argc - i - 1 >= 1) {
            name_at = i;
            i += 1;
        } else {
            reply_errorf(r, "ERR Syntax error in HELLO option '%.*s'", (int)argl[i],
                         (const char *)argv[i]);
            return;
        }
    }
    if (auth_at != 0 && !authenticate(cl, argv[auth_at + 1], argl[auth_at + 1], argv[auth_at + 2],
                                      argl[auth_at + 2], r)) {
        return;
    }
    if (!cl->authenticated) {
        reply_error(r, "NOAUTH HELLO must be called with the client already authenticated, "
                       "otherwise the HELLO <proto> AUTH <user> <pass> option can be used to "
                       "authenticate the client and select the RESP protocol version at the "
                       "same time");
        return;
    }
    if (name_at != 0) {
        if (client_name_refused(argv[name_at + 1], argl[name_at + 1], sizeof(cl->name), r)) {
            return;
        }
        set_client_name(cl, argv[name_at + 1], argl[name_at + 1]);
    }
    char name[41];
    node_name(n, n->cfg.node_id, name);
    reply_array(r, 14);
    reply_pair(r, "server", "redis");
    reply_pair(r, "version", "7.0.15");
    reply_bulk_cstr(r, "proto");
    reply_int(r, 2);
    reply_bulk_cstr(r, "id");
    reply_int(r, (int64_t)cl->id);
    reply_pair(r, "mode", "cluster");
    reply_pair(r, "role", "master");
    reply_bulk_cstr(r, "modules");
    reply_array(r, 0);
}

/* Whether a setting's name matches any of CONFIG GET's patterns. */
static bool
config_matches(const char *name, uint32_t patterns, const uint8_t *const pat[], const size_t pl[])
{
    for (uint32_t i = 0; i < patterns; i++) {
        if (sm_glob_match(pat[i], pl[i], (const uint8_t *)name, strlen(name), true)) {
            return true;
        }
    }
    return false;
}

/* CONFIG GET pattern [pattern ...]: each matching setting once, as Redis 7 answers. */
static void config_get(struct node *n,
                       uint32_t patterns,
                       const uint8_t *const pat[],
                       const size_t pl[],
                       struct reply *r)
{
    struct config_item {
        const char *name;
        const char *value;
    } items[16];
    uint32_t k = 0;
    items[k++] = (struct config_item){"save", ""};
    items[k++] = (struct config_item){"appendonly", "yes"};
    items[k++] = (struct config_item){"appendfsync", "always"};
    items[k++] = (struct config_item){"databases", "1"};
    items[k++] = (struct config_item){"cluster-enabled", "yes"};
    static _Thread_local char port[16], maxclients[16], dir[NODE_PATH_MAX], bulk[24];
    snprintf(port, sizeof(port), "%u", config_self(&n->cfg)->port);
    snprintf(maxclients, sizeof(maxclients), "%u", n->cfg.maxclients);
    snprintf(dir, sizeof(dir), "%s", n->cfg.dir);
    snprintf(bulk, sizeof(bulk), "%" PRIu64, n->cfg.proto_max_bulk_len);
    items[k++] = (struct config_item){"port", port};
    items[k++] = (struct config_item){"maxclients", maxclients};
    items[k++] = (struct config_item){"dir", dir};
    items[k++] = (struct config_item){"proto-max-bulk-len", bulk};
    static _Thread_local char maxmemory[24];
    snprintf(maxmemory, sizeof(maxmemory), "%" PRIu64, n->cfg.maxmemory);
    items[k++] = (struct config_item){"maxmemory", maxmemory};
    items[k++] = (struct config_item){"maxmemory-policy", "noeviction"};
    items[k++] = (struct config_item){"protected-mode", n->cfg.protected_mode ? "yes" : "no"};
    items[k++] = (struct config_item){"requirepass", n->cfg.requirepass};
    RR_ASSERT(k <= sizeof(items) / sizeof(items[0]));
    uint32_t matched = 0;
    for (uint32_t i = 0; i < k; i++) {
        matched += config_matches(items[i].name, patterns, pat, pl) ? 1 : 0;
    }
    reply_array(r, 2 * (int64_t)matched);
    for (uint32_t i = 0; i < k; i++) {
        if (config_matches(items[i].name, patterns, pat, pl)) {
            reply_pair(r, items[i].name, items[i].value);
        }
    }
}

static void command_info(const struct cmd_spec *c, struct reply *r)
{
    reply_array(r, 10);
    reply_bulk_cstr(r, c->name);
    reply_int(r, c->arity);
    /* flags as a set of simple strings */
    uint32_t nf = 0;
    const char *f = c->flags ? c->flags : "";
    for (const char *p = f; *p != '\0';) {
        while (*p == ' ') {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        nf++;
        p += strcspn(p, " ");
    }
    reply_array(r, nf);
    for (const char *p = f; *p != '\0';) {
        while (*p == ' ') {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        size_t l = strcspn(p, " ");
        char word[32];
        snprintf(word, sizeof(word), "%.*s", (int)l, p);
        reply_simple(r, word);
        p += l;
    }
    reply_int(r, c->first_key);
    reply_int(r, c->last_key);
    reply_int(r, c->key_step);
    reply_array(r, 0); /* ACL categories */
    reply_array(r, 0); /* tips */
    reply_array(r, 0); /* key specs */
    reply_array(r, c->subcommand_count);
    for (uint8_t i = 0; i < c->subcommand_count; i++) {
        command_info(&c->subcommands[i], r);
    }
}

static void
command_cmd(uint32_t argc, const uint8_t *const argv[], const size_t argl[], struct reply *r)
{
    if (argc == 1) {
        reply_array(r, (int64_t)cmd_count());
        for (size_t i = 0; i < cmd_count(); i++) {
            command_info(cmd_at(i), r);
        }
        return;
    }
    if (arg_is(argv[1], argl[1], "count")) {
        reply_int(r, (int64_t)cmd_count());
        return;
    }
    if (arg_is(argv[1], argl[1], "docs")) {
        cmd_docs(argc - 2, argv + 2, argl + 2, r);
        return;
    }
    if (arg_is(argv[1], argl[1], "info")) {
        reply_array(r, argc - 2);
        for (uint32_t i = 2; i < argc; i++) {
            const struct cmd_spec *c = cmd_lookup_fullname(argv[i], argl[i]);
            if (c == NULL) {
                reply_null_array(r);
            } else {
                command_info(c, r);
            }
        }
        return;
    }
    reply_errorf(r, "ERR unknown subcommand '%.*s'. Try COMMAND HELP.", (int)argl[1],
                 (const char *)argv[1]);
}

static uint32_t groups_led_by(const struct node *n, raft_node id)
{
    uint32_t k = 0;
    for (raft_group g = 0; g < n->cfg.groups; g++) {
        k += atomic_load_explicit(&n->pub[g].leader, memory_order_relaxed) == id;
    }
    return k;
}

/* Redis's bytesToHuman: 1023B, 1.00K, 12.50M, 3.00G. */
static void human_bytes(uint64_t n, char out[32])
{
    static const char units[] = "KMGTP";
    if (n < 1024) {
        snprintf(out, 32, "%" PRIu64 "B", n);
        return;
    }
    double v = (double)n / 1024;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(out, 32, "%.2f%c", v, units[u]);
}

static void info(struct client *cl, const uint8_t *sec, size_t sl, struct reply *r)
{
    struct worker *w = cl->w;
    struct node *n = w->node;
    bool all = sl == 0 || arg_is(sec, sl, "all") || arg_is(sec, sl, "everything") ||
               arg_is(sec, sl, "default");
    char *text = malloc(64 << 10);
    if (text == NULL) {
        reply_error(r, "OOM out of memory");
        return;
    }
    size_t cap = 64 << 10, len = 0;
#define OUT(...) len += (size_t)snprintf(text + len, len < cap ? cap - len : 0, __VA_ARGS__)
    if (all || arg_is(sec, sl, "server")) {
        OUT("# Server\r\nredis_version:7.0.15\r\nringraft_version:" RINGRAFT_VERSION
            "\r\nredis_mode:cluster\r\nos:Linux\r\nprocess_id:%d\r\nrun_id:%s\r\n"
            "tcp_port:%u\r\nuptime_in_seconds:%" PRId64 "\r\nnode_id:%u\r\nworkers:%u\r\n"
            "groups:%u\r\n\r\n",
            (int)kernel_pid(), n->run_id, config_self(&n->cfg)->port,
            (node_clock_ms() - n->start_ms) / 1000, n->cfg.node_id, n->cfg.workers, n->cfg.groups);
    }
    if (all || arg_is(sec, sl, "clients")) {
        uint64_t blocked = 0;
        for (uint32_t i = 0; i < n->cfg.workers; i++) {
            blocked += atomic_load_explicit(&n->workers[i]->pub.blocked, memory_order_relaxed);
        }
        OUT("# Clients\r\nconnected_clients:%u\r\nmaxclients:%u\r\nblocked_clients:%" PRIu64
            "\r\n\r\n",
            atomic_load(&n->clients), n->cfg.maxclients, blocked);
    }
    if (all || arg_is(sec, sl, "stats")) {
        uint64_t prop = 0, appl = 0, reads = 0, fout = 0, fin = 0, refwd = 0, redir = 0, tmo = 0,
                 busy = 0, acc = 0, errs = 0, commands = 0;
        for (uint32_t i = 0; i < n->cfg.workers; i++) {
            const struct worker_pub *p = &n->workers[i]->pub;
            prop += atomic_load_explicit(&p->proposals, memory_order_relaxed);
            appl += atomic_load_explicit(&p->applied, memory_order_relaxed);
            reads += atomic_load_explicit(&p->reads, memory_order_relaxed);
            fout += atomic_load_explicit(&p->forwards_out, memory_order_relaxed);
            fin += atomic_load_explicit(&p->forwards_in, memory_order_relaxed);
            refwd += atomic_load_explicit(&p->reforwards, memory_order_relaxed);
            redir += atomic_load_explicit(&p->redirects, memory_order_relaxed);
            tmo += atomic_load_explicit(&p->timeouts, memory_order_relaxed);
            busy += atomic_load_explicit(&p->busy_rejects, memory_order_relaxed);
            acc += atomic_load_explicit(&p->clients_accepted, memory_order_relaxed);
            errs += atomic_load_explicit(&p->client_errors, memory_order_relaxed);
            commands += atomic_load_explicit(&p->commands, memory_order_relaxed);
        }
        OUT("# Stats\r\ntotal_connections_received:%" PRIu64 "\r\nproposals:%" PRIu64
            "\r\napplied_entries:%" PRIu64 "\r\nread_index_requests:%" PRIu64
            "\r\nforwarded_out:%" PRIu64 "\r\nforwarded_in:%" PRIu64 "\r\nforwarded_again:%" PRIu64
            "\r\nredirects:%" PRIu64 "\r\nrequest_timeouts:%" PRIu64 "\r\nbusy_rejects:%" PRIu64
            "\r\nprotocol_errors:%" PRIu64 "\r\nrejected_connections:%" PRIu64
            "\r\nacl_access_denied_auth:%" PRIu64 "\r\noom_rejects:%" PRIu64
            "\r\nprotected_mode_refusals:%" PRIu64 "\r\ntotal_commands_processed:%" PRIu64
            "\r\ninstantaneous_ops_per_sec:%.0f\r\n\r\n",
            acc, prop, appl, reads, fout, fin, refwd, redir, tmo, busy, errs,
            atomic_load_explicit(&n->rejected_conns, memory_order_relaxed),
            atomic_load_explicit(&n->auth_failures, memory_order_relaxed),
            atomic_load_explicit(&n->oom_rejects, memory_order_relaxed),
            atomic_load_explicit(&n->protected_conns, memory_order_relaxed), commands,
            atomic_load_explicit(&n->rate[RATE_COMMANDS], memory_order_relaxed));
    }
    if (all || arg_is(sec, sl, "memory")) {
        uint64_t used = atomic_load_explicit(&n->used_memory, memory_order_relaxed);
        char used_h[32], max_h[32];
        human_bytes(used, used_h);
        human_bytes(n->cfg.maxmemory, max_h);
        /* used_memory is the resident set, as used_memory_rss: see heap_trim (worker.c). */
        OUT("# Memory\r\nused_memory:%" PRIu64
            "\r\nused_memory_human:%s\r\nused_memory_rss:%" PRIu64
            "\r\nused_memory_rss_human:%s\r\nmaxmemory:%" PRIu64
            "\r\nmaxmemory_human:%s\r\nmaxmemory_policy:noeviction\r\n\r\n",
            used, used_h, used, used_h, n->cfg.maxmemory, max_h);
    }
    if (all || arg_is(sec, sl, "limits")) {
        const struct node_config *c = &n->cfg;
        uint64_t uncommitted_bytes = 0, uncommitted_waits = 0;
        for (uint32_t i = 0; i < c->workers; i++) {
            const struct worker_pub *p = &n->workers[i]->pub;
            uncommitted_bytes += atomic_load_explicit(&p->uncommitted_bytes, memory_order_relaxed);
            uncommitted_waits += atomic_load_explicit(&p->uncommitted_waits, memory_order_relaxed);
        }
        OUT("# Limits\r\nmaxclients:%u\r\nmaxmemory:%" PRIu64
            "\r\nclient_query_buffer_limit:%" PRIu64 "\r\nclient_output_buffer_limit:%" PRIu64
            "\r\nproto_max_bulk_len:%" PRIu64 "\r\npipeline_max:%u\r\npeer_output_limit:%" PRIu64
            "\r\nworker_inflight_limit:%" PRIu64 "\r\nworker_uncommitted_limit:%" PRIu64
            "\r\nuncommitted_bytes:%" PRIu64 "\r\nuncommitted_waits:%" PRIu64
            "\r\nrequest_timeout_ms:%u\r\n"
            "requirepass:%s\r\nprotected_mode:%s\r\n\r\n",
            c->maxclients, c->maxmemory, c->client_query_buffer_max, c->client_output_buffer_max,
            c->proto_max_bulk_len, c->pipeline_max, c->peer_output_max, c->worker_inflight_max,
            c->worker_uncommitted_max, uncommitted_bytes, uncommitted_waits, c->request_timeout_ms,
            c->requirepass[0] != '\0' ? "set" : "none", c->protected_mode ? "yes" : "no");
    }
    if (all || arg_is(sec, sl, "raft")) {
        uint32_t known = 0;
        for (raft_group g = 0; g < n->cfg.groups; g++) {
            known += atomic_load_explicit(&n->pub[g].leader, memory_order_relaxed) != 0;
        }
        OUT("# Raft\r\nnode_id:%u\r\ngroups:%u\r\ngroups_with_leader:%u\r\n", n->cfg.node_id,
            n->cfg.groups, known);
        const struct node_set *ns = nodeset_get(n);
        for (uint32_t i = 0; i < ns->count; i++) {
            OUT("groups_led_by_node_%u:%u\r\n", ns->nodes[i].id, groups_led_by(n, ns->nodes[i].id));
        }
        OUT("\r\n");
    }
    if (all || arg_is(sec, sl, "snapshots") || arg_is(sec, sl, "persistence")) {
        uint64_t taken = 0, installed = 0, failures = 0, bytes = 0, disk = 0, segments = 0,
                 chunks = 0, dropped = 0, refused = 0, left = 0, rx_chunks = 0, rx_bytes = 0,
                 log_reads = 0, log_entries = 0, log_dropped = 0;
        for (uint32_t i = 0; i < n->cfg.workers; i++) {
            const struct worker_pub *p = &n->workers[i]->pub;
            taken += atomic_load_explicit(&p->snapshots_taken, memory_order_relaxed);
            installed += atomic_load_explicit(&p->snapshots_installed, memory_order_relaxed);
            failures += atomic_load_explicit(&p->snapshot_failures, memory_order_relaxed);
            bytes += atomic_load_explicit(&p->snapshot_bytes, memory_order_relaxed);
            disk += atomic_load_explicit(&p->wal_disk_bytes, memory_order_relaxed);
            segments += atomic_load_explicit(&p->wal_segments, memory_order_relaxed);
            chunks += atomic_load_explicit(&p->snapshot_chunks_sent, memory_order_relaxed);
            dropped += atomic_load_explicit(&p->snapshot_chunks_dropped, memory_order_relaxed);
            refused += atomic_load_explicit(&p->snapshots_refused, memory_order_relaxed);
            left += atomic_load_explicit(&p->snapshots_dropped, memory_order_relaxed);
            rx_chunks += atomic_load_explicit(&p->snapshot_chunks_received, memory_order_relaxed);
            rx_bytes += atomic_load_explicit(&p->snapshot_bytes_received, memory_order_relaxed);
            log_reads += atomic_load_explicit(&p->log_reads, memory_order_relaxed);
            log_entries += atomic_load_explicit(&p->log_read_entries, memory_order_relaxed);
            log_dropped += atomic_load_explicit(&p->log_reads_dropped, memory_order_relaxed);
        }
        OUT("# Snapshots\r\nsnapshots_taken:%" PRIu64 "\r\nsnapshots_installed:%" PRIu64
            "\r\nsnapshot_failures:%" PRIu64 "\r\nsnapshot_bytes_written:%" PRIu64
            "\r\nwal_disk_bytes:%" PRIu64 "\r\nwal_segments:%" PRIu64
            "\r\nsnapshot_chunks_sent:%" PRIu64 "\r\nsnapshot_chunks_dropped:%" PRIu64
            "\r\nsnapshots_refused:%" PRIu64 "\r\nsnapshots_dropped:%" PRIu64
            "\r\nsnapshot_chunks_received:%" PRIu64 "\r\nsnapshot_bytes_received:%" PRIu64
            "\r\nlog_reads:%" PRIu64 "\r\nlog_read_entries:%" PRIu64
            "\r\nlog_reads_dropped:%" PRIu64 "\r\n",
            taken, installed, failures, bytes, disk, segments, chunks, dropped, refused, left,
            rx_chunks, rx_bytes, log_reads, log_entries, log_dropped);
        for (uint32_t i = 0; i < n->cfg.workers; i++) {
            const struct worker_pub *p = &n->workers[i]->pub;
            OUT("worker%u_last_snapshot:ms=%" PRIu64 ",bytes=%" PRIu64 "\r\n", i,
                atomic_load(&p->snapshot_last_ms), atomic_load(&p->snapshot_last_bytes));
            OUT("worker%u_last_install:us=%" PRIu64 ",bytes=%" PRIu64 ",max_us=%" PRIu64 "\r\n", i,
                atomic_load(&p->install_last_us), atomic_load(&p->install_last_bytes),
                atomic_load(&p->install_max_us));
        }
        OUT("\r\n");
    }
    if (all || arg_is(sec, sl, "storage") || arg_is(sec, sl, "batching") ||
        arg_is(sec, sl, "persistence")) {
        char strat[64];
        uint64_t flushes = 0, records = 0, bytes = 0, frames = 0, fbytes = 0, sends = 0,
                 dropped = 0, bad = 0, refused = 0;
        uint32_t direct = 0;
        for (uint32_t i = 0; i < n->cfg.workers; i++) {
            const struct worker_pub *p = &n->workers[i]->pub;
            direct += atomic_load_explicit(&p->wal_direct, memory_order_relaxed) ? 1u : 0u;
            flushes += atomic_load_explicit(&p->wal_flushes, memory_order_relaxed);
            records += atomic_load_explicit(&p->wal_records, memory_order_relaxed);
            bytes += atomic_load_explicit(&p->wal_bytes, memory_order_relaxed);
            frames += atomic_load_explicit(&p->frames_sent, memory_order_relaxed);
            fbytes += atomic_load_explicit(&p->frame_bytes_sent, memory_order_relaxed);
            sends += atomic_load_explicit(&p->peer_sends, memory_order_relaxed);
            dropped += atomic_load_explicit(&p->frames_dropped, memory_order_relaxed);
            bad += atomic_load_explicit(&p->frames_bad, memory_order_relaxed);
            refused += atomic_load_explicit(&p->handshakes_refused, memory_order_relaxed);
        }
        OUT("# "
            "Batching\r\ndisk_strategy:%s\r\ndisk_sync:%s\r\ndisk_prepare:%s\r\ndisk_direct_io:%s"
            "\r\nnet_strategy:%s"
            "\r\nwal_flushes:"
            "%" PRIu64 "\r\nwal_records:%" PRIu64 "\r\nwal_bytes:%" PRIu64
            "\r\nrecords_per_flush:%.2f\r\nbytes_per_flush:%.1f\r\npeer_frames_sent:%" PRIu64
            "\r\npeer_frame_bytes_sent:%" PRIu64 "\r\npeer_sends:%" PRIu64
            "\r\npeer_frames_dropped:%" PRIu64 "\r\npeer_frames_rejected:%" PRIu64
            "\r\npeer_handshakes_refused:%" PRIu64 "\r\ninstantaneous_wal_flushes_per_sec:%.1f"
            "\r\ninstantaneous_wal_bytes_per_sec:%.0f\r\ninstantaneous_peer_frames_per_sec:%.1f"
            "\r\n",
            wal_strategy_format(&n->cfg.disk_batching, strat, sizeof(strat)),
            config_wal_sync_name(n->cfg.wal_sync), config_wal_prepare_name(n->cfg.wal_prepare),
            direct == n->cfg.workers ? "yes"
            : direct == 0            ? "no"
                                     : "partly",
            config_net_batching_name(n->cfg.net_batching), flushes, records, bytes,
            flushes ? (double)records / (double)flushes : 0.0,
            flushes ? (double)bytes / (double)flushes : 0.0, frames, fbytes, sends, dropped, bad,
            refused, atomic_load_explicit(&n->rate[RATE_WAL_FLUSHES], memory_order_relaxed),
            atomic_load_explicit(&n->rate[RATE_WAL_BYTES], memory_order_relaxed),
            atomic_load_explicit(&n->rate[RATE_PEER_FRAMES], memory_order_relaxed));
        /* Raft messages received from peers since start, by kind: per committed entry they
         * show what batching across groups and clients saves (docs/node.md). */
        uint64_t by_type[RAFT_MSG_TYPE_MAX + 1] = {0}, empty = 0;
        for (uint32_t i = 0; i < n->cfg.workers; i++) {
            const struct worker_pub *p = &n->workers[i]->pub;
            for (uint32_t t = 0; t <= RAFT_MSG_TYPE_MAX; t++) {
                by_type[t] += atomic_load_explicit(&p->msgs_received[t], memory_order_relaxed);
            }
            empty += atomic_load_explicit(&p->appends_empty_received, memory_order_relaxed);
        }
        OUT("peer_msgs_received:append=%" PRIu64 ",append_empty=%" PRIu64 ",append_resp=%" PRIu64
            ",heartbeat=%" PRIu64 ",heartbeat_resp=%" PRIu64 ",vote=%" PRIu64 ",vote_resp=%" PRIu64
            ",snapshot=%" PRIu64 ",snapshot_resp=%" PRIu64 ",timeout_now=%" PRIu64 "\r\n",
            by_type[RAFT_MSG_APPEND], empty, by_type[RAFT_MSG_APPEND_RESP],
            by_type[RAFT_MSG_HEARTBEAT], by_type[RAFT_MSG_HEARTBEAT_RESP],
            by_type[RAFT_MSG_VOTE] + by_type[RAFT_MSG_PRE_VOTE],
            by_type[RAFT_MSG_VOTE_RESP] + by_type[RAFT_MSG_PRE_VOTE_RESP],
            by_type[RAFT_MSG_SNAPSHOT], by_type[RAFT_MSG_SNAPSHOT_RESP],
            by_type[RAFT_MSG_TIMEOUT_NOW]);
        /* Totals since start that a reader subtracts to get an interval's figures: the
         * flushes' write+sync time and the units' wait before their flush (means), and the
         * batch size distributions (cumulative counts at the bounds le_N). */
        uint64_t fcount = 0, fsum = 0, qcount = 0, qsum = 0;
        for (uint32_t i = 0; i < n->cfg.workers; i++) {
            const struct worker_pub *p = &n->workers[i]->pub;
            fcount += atomic_load_explicit(&p->wal_flush.count, memory_order_relaxed);
            fsum += atomic_load_explicit(&p->wal_flush.sum_ns, memory_order_relaxed);
            qcount += atomic_load_explicit(&p->wal_queue.count, memory_order_relaxed);
            qsum += atomic_load_explicit(&p->wal_queue.sum_ns, memory_order_relaxed);
        }
        OUT("wal_flush_usec:count=%" PRIu64 ",sum=%" PRIu64 "\r\nwal_queue_usec:count=%" PRIu64
            ",sum=%" PRIu64 "\r\n",
            fcount, fsum / 1000, qcount, qsum / 1000);
        const char *size_name[2] = {"wal_flush_records", "peer_send_frames"};
        const size_t size_off[2] = {offsetof(struct worker_pub, wal_batch_records),
                                    offsetof(struct worker_pub, peer_send_frames)};
        for (int k = 0; k < 2; k++) {
            uint64_t le[PUB_SIZE_BOUNDS], count, sum;
            metrics_sum_sizes(n, size_off[k], le, &count, &sum);
            OUT("%s:count=%" PRIu64 ",sum=%" PRIu64, size_name[k], count, sum);
            for (uint32_t i = 0; i < PUB_SIZE_BOUNDS; i++) {
                OUT(",le_%" PRIu64 "=%" PRIu64, metric_size_bounds[i], le[i]);
            }
            OUT("\r\n");
        }
        for (uint32_t i = 0; i < n->cfg.workers; i++) {
            const struct worker_pub *p = &n->workers[i]->pub;
            OUT("worker%u_wal_flush_us:p50=%" PRIu64 ",p99=%" PRIu64
                "\r\nworker%u_wal_queue_us:p50=%" PRIu64 ",p99=%" PRIu64 "\r\n",
                i, atomic_load(&p->wal_flush.p50_ns) / 1000,
                atomic_load(&p->wal_flush.p99_ns) / 1000, i,
                atomic_load(&p->wal_queue.p50_ns) / 1000, atomic_load(&p->wal_queue.p99_ns) / 1000);
            for (int k = 0; k < 2; k++) {
                const struct pub_sizes *s =
                    (const struct pub_sizes *)(const void *)((const char *)p + size_off[k]);
                OUT("worker%u_%s:p50=%" PRIu64 ",p99=%" PRIu64 ",max=%" PRIu64 "\r\n", i,
                    size_name[k], atomic_load(&s->p50), atomic_load(&s->p99), atomic_load(&s->max));
            }
        }
        OUT("\r\n");
    }
    if (all || arg_is(sec, sl, "latencystats")) {
        /* Per worker (quantiles do not add up across workers; the metrics endpoint has the
         * node-wide histograms): client requests from parse to reply, by class. */
        OUT("# Latencystats\r\n");
        for (uint32_t i = 0; i < n->cfg.workers; i++) {
            const struct worker_pub *p = &n->workers[i]->pub;
            const struct pub_hist *h[2] = {&p->write_latency, &p->read_latency};
            const char *name[2] = {"write", "read"};
            for (int k = 0; k < 2; k++) {
                OUT("worker%u_%s_usec:count=%" PRIu64 ",p50=%.3f,p99=%.3f,p99.9=%.3f\r\n", i,
                    name[k], atomic_load(&h[k]->count), (double)atomic_load(&h[k]->p50_ns) / 1e3,
                    (double)atomic_load(&h[k]->p99_ns) / 1e3,
                    (double)atomic_load(&h[k]->p999_ns) / 1e3);
            }
        }
        OUT("\r\n");
    }
    if (all || arg_is(sec, sl, "cluster")) {
        OUT("# Cluster\r\ncluster_enabled:1\r\n\r\n");
    }
    if (all || arg_is(sec, sl, "keyspace")) {
        OUT("# Keyspace\r\n");
    }
#undef OUT
    if (len >= cap) {
        len = cap - 1;
    }
    reply_bulk(r, text, len);
    free(text);
}

/* The leader of g as this node last heard, for the CLUSTER answers; while it knows none
 * (an election), itself: a client sent here waits for the election, then is served,
 * redirected or (redirect mode, none elected in time) answered -TRYAGAIN. The same in
 * SLOTS, SHARDS and NODES, so a cluster client sees one map. */
static raft_node cluster_leader(const struct node *n, raft_group g)
{
    raft_node leader = atomic_load_explicit(&n->pub[g].leader, memory_order_relaxed);
    return leader != 0 ? leader : n->cfg.node_id;
}

/* CLUSTER SLOTS: one range per group, its leader as master and the other nodes as replicas. */
static void cluster_slots(struct node *n, struct reply *r)
{
    const struct node_set *ns = nodeset_get(n);
    reply_array(r, n->cfg.groups);
    for (raft_group g = 0; g < n->cfg.groups; g++) {
        uint16_t first, last;
        cmd_group_slots(g, n->cfg.groups, &first, &last);
        raft_node leader = cluster_leader(n, g);
        const struct node_address *order[RAFT_MEMBERS_MAX];
        uint32_t k = 0;
        if (nodeset_find(ns, leader) != NULL) {
            order[k++] = nodeset_find(ns, leader);
        }
        for (uint32_t i = 0; i < ns->count; i++) {
            if (ns->nodes[i].id != leader) {
                order[k++] = &ns->nodes[i];
            }
        }
        reply_array(r, 2 + k);
        reply_int(r, first);
        reply_int(r, last);
        for (uint32_t i = 0; i < k; i++) {
            char name[41];
            node_name(n, order[i]->id, name);
            reply_array(r, 3);
            reply_bulk_cstr(r, order[i]->host);
            reply_int(r, order[i]->port);
            reply_bulk_cstr(r, name);
        }
    }
}

/* CLUSTER SHARDS (Redis 7): one shard per group, its leader as master, the others replicas. */
static void cluster_shards(struct node *n, struct reply *r)
{
    const struct node_set *ns = nodeset_get(n);
    reply_array(r, n->cfg.groups);
    for (raft_group g = 0; g < n->cfg.groups; g++) {
        uint16_t first, last;
        cmd_group_slots(g, n->cfg.groups, &first, &last);
        raft_node leader = cluster_leader(n, g);
        uint64_t applied = atomic_load_explicit(&n->pub[g].applied, memory_order_relaxed);
        reply_array(r, 4);
        reply_bulk_cstr(r, "slots");
        reply_array(r, 2);
        reply_int(r, first);
        reply_int(r, last);
        reply_bulk_cstr(r, "nodes");
        reply_array(r, ns->count);
        for (uint32_t i = 0; i < ns->count; i++) {
            const struct node_address *a = &ns->nodes[i];
            char name[41];
            node_name(n, a->id, name);
            reply_array(r, 14);
            reply_pair(r, "id", name);
            reply_bulk_cstr(r, "port");
            reply_int(r, a->port);
            reply_pair(r, "ip", a->host);
            reply_pair(r, "endpoint", a->host);
            reply_pair(r, "role", a->id == leader ? "master" : "replica");
            reply_bulk_cstr(r, "replication-offset");
            reply_int(r, (int64_t)applied);
            reply_pair(r, "health", "online");
        }
    }
}

/* CLUSTER NODES: every node a master owning the slot ranges of the groups it leads. */
static void cluster_nodes(struct node *n, struct reply *r)
{
    const struct node_set *ns = nodeset_get(n);
    size_t cap = 4096 + (size_t)n->cfg.groups * 16 * ns->count, len = 0;
    char *text = malloc(cap);
    if (text == NULL) {
        reply_error(r, "OOM out of memory");
        return;
    }
    for (uint32_t i = 0; i < ns->count; i++) {
        const struct node_address *a = &ns->nodes[i];
        char name[41];
        node_name(n, a->id, name);
        len += (size_t)snprintf(text + len, cap - len, "%s %s:%u@%u %smaster - 0 0 %u connected",
                                name, a->host, a->port, a->peer_port,
                                a->id == n->cfg.node_id ? "myself," : "", a->id);
        for (raft_group g = 0; g < n->cfg.groups; g++) {
            raft_node leader = cluster_leader(n, g);
            if (leader != a->id) {
                continue;
            }
            uint16_t first, last;
            cmd_group_slots(g, n->cfg.groups, &first, &last);
            len += (size_t)snprintf(text + len, cap - len, first == last ? " %u" : " %u-%u", first,
                                    last);
        }
        len += (size_t)snprintf(text + len, cap - len, "\n");
    }
    reply_bulk(r, text, len);
    free(text);
}

static void cluster_cmd(struct node *n,
                        uint32_t argc,
                        const uint8_t *const argv[],
                        const size_t argl[],
                        struct reply *r)
{
    if (arg_is(argv[1], argl[1], "slots")) {
        cluster_slots(n, r);
    } else if (arg_is(argv[1], argl[1], "shards")) {
        cluster_shards(n, r);
    } else if (arg_is(argv[1], argl[1], "nodes")) {
        cluster_nodes(n, r);
    } else if (arg_is(argv[1], argl[1], "keyslot") && argc == 3) {
        reply_int(r, cmd_keyslot(argv[2], argl[2]));
    } else if (arg_is(argv[1], argl[1], "myid")) {
        char name[41];
        node_name(n, n->cfg.node_id, name);
        reply_bulk_cstr(r, name);
    } else if (arg_is(argv[1], argl[1], "info")) {
        char text[512];
        int l = snprintf(text, sizeof(text),
                         "cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:"
                         "16384\r\ncluster_slots_pfail:0\r\ncluster_slots_fail:0\r\n"
                         "cluster_known_nodes:%u\r\ncluster_size:%u\r\ncluster_current_epoch:1\r\n"
                         "cluster_my_epoch:1\r\n",
                         nodeset_get(n)->count, nodeset_get(n)->count);
        reply_bulk(r, text, (size_t)l);
    } else {
        reply_errorf(r, "ERR unknown subcommand '%.*s'. Try CLUSTER HELP.", (int)argl[1],
                     (const char *)argv[1]);
    }
}

static const char *role_name(uint32_t role)
{
    switch (role) {
    case RAFT_LEADER:
        return "leader";
    case RAFT_CANDIDATE:
        return "candidate";
    case RAFT_PRE_CANDIDATE:
        return "pre-candidate";
    default:
        return "follower";
    }
}

/* SLOWLOG GET [count] | LEN | RESET | HELP, over every worker's log. */
static void slowlog_cmd(struct node *n,
                        uint32_t argc,
                        const uint8_t *const argv[],
                        const size_t argl[],
                        struct reply *r)
{
    struct slowlog *logs[NODE_WORKERS_MAX];
    for (uint32_t i = 0; i < n->cfg.workers; i++) {
        logs[i] = &n->workers[i]->slowlog;
    }
    if (arg_is(argv[1], argl[1], "get") && argc <= 3) {
        int64_t count = 10;
        if (argc == 3) {
            char num[24];
            size_t l = argl[2] < sizeof(num) - 1 ? argl[2] : sizeof(num) - 1;
            memcpy(num, argv[2], l);
            num[l] = '\0';
            char *end = NULL;
            long long v = strtoll(num, &end, 10);
            if (l == 0 || *end != '\0' || l != argl[2] || v < -1) {
                reply_error(r, "ERR count should be greater than or equal to -1");
                return;
            }
            count = v;
        }
        slowlog_reply_get(logs, n->cfg.workers, count, r);
    } else if (arg_is(argv[1], argl[1], "len") && argc == 2) {
        reply_int(r, (int64_t)slowlog_len(logs, n->cfg.workers));
    } else if (arg_is(argv[1], argl[1], "reset") && argc == 2) {
        slowlog_reset(logs, n->cfg.workers);
        reply_simple(r, "OK");
    } else if (arg_is(argv[1], argl[1], "help") && argc == 2) {
        static const char *const lines[] = {
            "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GET [<count>]",
            "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
            "    Entries are made of:",
            "    id, timestamp, time in microseconds, arguments array, client IP and port,",
            "    client name",
            "LEN",
            "    Return the length of the slowlog.",
            "RESET",
            "    Reset the slowlog.",
            "HELP",
            "    Prints this help."};
        reply_array(r, (int64_t)(sizeof(lines) / sizeof(lines[0])));
        for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
            reply_simple(r, lines[i]);
        }
    } else {
        reply_errorf(r,
                     "ERR unknown subcommand or wrong number of arguments for '%.*s'. Try "
                     "SLOWLOG HELP.",
                     (int)argl[1], (const char *)argv[1]);
    }
}

/* RAFT STATUS: one line per group, as a bulk string. */
static void raft_cmd(struct node *n,
                     uint32_t argc,
                     const uint8_t *const argv[],
                     const size_t argl[],
                     struct reply *r)
{
    (void)argc;
    (void)argv;
    (void)argl; /* STATUS: client.c sends every other subcommand to members.c */
    size_t cap = 256 + RAFT_MEMBERS_MAX * 24 + (size_t)n->cfg.groups * 200, len = 0;
    char *text = malloc(cap);
    if (text == NULL) {
        reply_error(r, "OOM out of memory");
        return;
    }
    len += (size_t)snprintf(text + len, cap - len, "node:%u groups:%u workers:%u\n", n->cfg.node_id,
                            n->cfg.groups, n->cfg.workers);
    /* The spread: groups led by each node of the node set, as this node sees it. */
    const struct node_set *ns = nodeset_get(n);
    len += (size_t)snprintf(text + len, cap - len, "leaders:");
    for (uint32_t i = 0; i < ns->count; i++) {
        len += (size_t)snprintf(text + len, cap - len, " %u=%u", ns->nodes[i].id,
                                groups_led_by(n, ns->nodes[i].id));
    }
    len += (size_t)snprintf(text + len, cap - len, "\n");
    for (raft_group g = 0; g < n->cfg.groups; g++) {
        const struct group_pub *p = &n->pub[g];
        len += (size_t)snprintf(
            text + len, cap - len,
            "group:%u role:%s term:%" PRIu64 " leader:%u commit:%" PRIu64 " applied:%" PRIu64
            " last:%" PRIu64 " snapshot:%" PRIu64 " voters:%u learners:%u%s\n",
            g, role_name(atomic_load(&p->role)), atomic_load(&p->term), atomic_load(&p->leader),
            atomic_load(&p->commit), atomic_load(&p->applied), atomic_load(&p->last_index),
            atomic_load(&p->snapshot_index), atomic_load(&p->voters), atomic_load(&p->learners),
            atomic_load(&p->config_pending) ? " config:pending" : "");
    }
    reply_bulk(r, text, len);
    free(text);
}

bool node_command(struct client *cl,
                  const struct cmd_spec *cmd,
                  uint32_t argc,
                  const uint8_t *const argv[],
                  const size_t argl[],
                  struct reply *r)
{
    struct node *n = cl->w->node;
    switch (cmd->id) {
    case CMD_ID_PING:
        if (argc == 1) {
            reply_simple(r, "PONG");
        } else {
            reply_bulk(r, argv[1], argl[1]);
        }
        return true;
    case CMD_ID_ECHO:
        reply_bulk(r, argv[1], argl[1]);
        return true;
    case CMD_ID_QUIT:
        reply_simple(r, "OK");
        return false;
    case CMD_ID_SELECT: {
        int64_t db;
        if (!util_parse_i64(argv[1], argl[1], &db)) {
            reply_error(r, "ERR value is not an integer or out of range");
        } else if (db == 0) {
            reply_simple(r, "OK");
        } else {
            reply_error(r, "ERR SELECT is not allowed in cluster mode");
        }
        return true;
    }
    case CMD_ID_AUTH:
        auth_cmd(cl, argc, argv, argl, r);
        return true;
    case CMD_ID_READONLY:
    case CMD_ID_READWRITE:
        reply_simple(r, "OK");
        return true;
    case CMD_ID_SLOWLOG:
        slowlog_cmd(n, argc, argv, argl, r);
        return true;
    case CMD_ID_WAIT:
        /* Writes are acknowledged only once a majority has them: report the other nodes. */
        reply_int(r, (int64_t)nodeset_get(n)->count - 1);
        return true;
    case CMD_ID_HELLO:
        hello_cmd(cl, argc, argv, argl, r);
        return true;
    case CMD_ID_CLIENT:
        if (!subcommand_arity(argc, argv, argl, "id", 2, r) ||
            !subcommand_arity(argc, argv, argl, "getname", 2, r) ||
            !subcommand_arity(argc, argv, argl, "setname", 3, r) ||
            !subcommand_arity(argc, argv, argl, "setinfo", 4, r)) {
            return true;
        }
        if (arg_is(argv[1], argl[1], "id")) {
            reply_int(r, (int64_t)cl->id);
        } else if (arg_is(argv[1], argl[1], "setname")) {
            if (client_name_refused(argv[2], argl[2], sizeof(cl->name), r)) {
                return true;
            }
            set_client_name(cl, argv[2], argl[2]);
            reply_simple(r, "OK");
        } else if (arg_is(argv[1], argl[1], "getname")) {
            if (cl->name[0] == '\0') {
                reply_null(r);
            } else {
                reply_bulk_cstr(r, cl->name);
            }
        } else if (arg_is(argv[1], argl[1], "setinfo")) {
            reply_simple(r, "OK");
        } else {
            reply_errorf(r, "ERR unknown subcommand '%.*s'. Try CLIENT HELP.", (int)argl[1],
                         (const char *)argv[1]);
        }
        return true;
    case CMD_ID_CONFIG:
        if (!subcommand_arity(argc, argv, argl, "get", -3, r)) {
            return true;
        }
        if (arg_is(argv[1], argl[1], "get")) {
            config_get(n, argc - 2, argv + 2, argl + 2, r);
        } else {
            reply_errorf(r, "ERR unknown subcommand '%.*s'. Try CONFIG HELP.", (int)argl[1],
                         (const char *)argv[1]);
        }
        return true;
    case CMD_ID_COMMAND:
        command_cmd(argc, argv, argl, r);
        return true;
    case CMD_ID_INFO:
        info(cl, argc > 1 ? argv[1] : NULL, argc > 1 ? argl[1] : 0, r);
        return true;
    case CMD_ID_CLUSTER:
        cluster_cmd(n, argc, argv, argl, r);
        return true;
    case CMD_ID_RAFT:
        raft_cmd(n, argc, argv, argl, r);
        return true;
    case CMD_ID_XGROUP_HELP:
    case CMD_ID_XINFO_HELP:
        cg_cmd_help(cmd->id, r);
        return true;
    default:
        reply_errorf(r, "ERR command '%s' is not supported", cmd->name);
        return true;
    }
}
