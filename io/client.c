/* Client connections: parse RESP requests, answer node commands at once, route keyed
 * commands to their group (route.c) and write replies back in request order. A client's
 * pipeline and output are bounded: past pipeline-max requests in flight, or output over
 * half its limit, the connection stops reading until replies drain; output over the limit
 * closes it (as Redis's client-output-buffer-limit does). */
#include "io/client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/base/assert.h"
#include "io/log.h"
#include "io/service/util.h"

static void client_parse(struct client *cl);
static void scan_fix_reply(struct worker *w, struct req *r);
static void immediate(struct client *cl, struct req *r);

static const char protected_mode_error[] =
    "-DENIED ringraft is running in protected mode because protected mode is enabled and no "
    "password is set for the default user. In this mode connections are only accepted from "
    "the loopback interface. If you want to connect from external computers, either set a "
    "password with the requirepass setting (and authenticate with AUTH), or disable protected "
    "mode with 'protected-mode no' in the configuration file or the --protected-mode no flag, "
    "after making sure that the node is not reachable from networks you do not trust.\r\n";

void client_accepted(struct worker *w, int fd)
{
    struct node *n = w->node;
    if (atomic_fetch_add(&n->clients, 1) >= n->cfg.maxclients) {
        atomic_fetch_add_explicit(&n->rejected_conns, 1, memory_order_relaxed);
        atomic_fetch_sub(&n->clients, 1);
        static const char msg[] = "-ERR max number of clients reached\r\n";
        conn_refuse_fd(w, fd, msg, sizeof(msg) - 1);
        return;
    }
    /* TCP_NODELAY is inherited from the listening socket (node_listen). */
    struct client *cl = calloc(1, sizeof(*cl));
    struct resp_limits lim;
    resp_limits_default(&lim);
    lim.bulk_max = n->cfg.proto_max_bulk_len;
    if (lim.request_max > n->cfg.client_query_buffer_max) {
        lim.request_max = n->cfg.client_query_buffer_max;
    }
    if (lim.bulk_max > lim.request_max) {
        lim.bulk_max = lim.request_max;
    }
    struct conn *c = cl == NULL ? NULL
                                : conn_new(w, fd, CONN_CLIENT, (size_t)resp_input_bytes_max(&lim),
                                           (size_t)n->cfg.client_output_buffer_max);
    if (c == NULL) {
        free(cl);
        conn_close_fd(w, fd);
        atomic_fetch_sub(&n->clients, 1);
        return;
    }
    cl->conn = c;
    cl->w = w;
    cl->id = atomic_fetch_add(&n->next_client_id, 1);
    cl->created_ms = node_clock_ms();
    resp_parser_init(&cl->parser, &lim);
    c->owner = cl;
    w->clients++;
    w->st.clients_accepted++;
    cl->authenticated = n->cfg.requirepass[0] == '\0';
    bool loopback = kernel_peer_address(fd, cl->addr, sizeof(cl->addr));
    if (n->cfg.protected_mode && n->cfg.requirepass[0] == '\0' && !loopback) {
        atomic_fetch_add_explicit(&n->protected_conns, 1, memory_order_relaxed);
        conn_write(c, protected_mode_error, sizeof(protected_mode_error) - 1);
        conn_close_after_flush(c);
        return;
    }
    conn_start_recv(c);
}

static void client_free_if_done(struct client *cl)
{
    if (cl->conn == NULL && cl->inflight == 0) {
        struct req *r = cl->head;
        while (r != NULL) {
            struct req *next = r->conn_next;
            req_free(cl->w, r);
            r = next;
        }
        free(cl);
    }
}

void client_on_closed(struct conn *c)
{
    struct client *cl = c->owner;
    struct worker *w = cl->w;
    cl->conn = NULL;
    /* Requests still in flight may belong to other workers now: a flag they read. */
    for (struct req *r = cl->head; r != NULL; r = r->conn_next) {
        atomic_store_explicit(&r->cancelled, true, memory_order_relaxed);
    }
    w->clients--;
    w->st.clients_closed++;
    atomic_fetch_sub(&w->node->clients, 1);
    client_free_if_done(cl);
}

/* A request's reply is ready: its latency (by class) and, if slow, a SLOWLOG entry. */
static void note_latency(struct client *cl, const struct req *r)
{
    struct worker *w = cl->w;
    int64_t ns = node_clock_ns() - r->start_ns;
    if (ns < 0) {
        ns = 0;
    }
    if (r->cls == CMD_WRITE) {
        histogram_record(&w->write_latency, (uint64_t)ns);
    } else if (r->cls == CMD_READ) {
        histogram_record(&w->read_latency, (uint64_t)ns);
    }
    int64_t limit = w->node->cfg.slowlog_slower_than_us;
    /* AUTH and HELLO carry passwords: never logged (Redis redacts them). */
    bool secret = r->argc > 0 &&
                  ((r->argl[0] == 4 && strncasecmp((const char *)r->argv[0], "auth", 4) == 0) ||
                   (r->argl[0] == 5 && strncasecmp((const char *)r->argv[0], "hello", 5) == 0));
    if (limit >= 0 && ns / 1000 >= limit && r->argc > 0 && !secret) {
        uint64_t id = atomic_fetch_add_explicit(&w->node->next_slowlog_id, 1, memory_order_relaxed);
        slowlog_add(&w->slowlog, id, (uint64_t)ns / 1000, r->argc, r->argv, r->argl, cl->addr,
                    cl->name);
    }
}

/* Writes the replies of the completed requests at the head of the pipeline. */
static void client_flush(struct client *cl)
{
    struct req *r;
    while ((r = cl->head) != NULL && r->answered) {
        cl->head = r->conn_next;
        if (cl->head == NULL) {
            cl->tail = NULL;
        }
        if (r == cl->oldest_write) {
            /* Its reply is delivered: the next write in the list is the oldest unacked one.
             * Each element is passed over at most once, so this is O(1) amortised. */
            struct req *x = cl->head;
            while (x != NULL && x->cls != CMD_WRITE) {
                x = x->conn_next;
            }
            cl->oldest_write = x;
        }
        if (cl->conn != NULL && !cl->conn->closing) {
            if (r->reply.overflow) {
                static const char e[] = "-ERR reply exceeds client-output-buffer-limit\r\n";
                conn_write(cl->conn, e, sizeof(e) - 1);
            } else if (!conn_write(cl->conn, r->reply.buf, r->reply.len)) {
                LOG_N("client %llu closed: output over client-output-buffer-limit",
                      (unsigned long long)cl->id);
                conn_close(cl->conn);
            }
        }
        note_latency(cl, r);
        req_free(cl->w, r);
    }
    if (cl->conn != NULL && cl->quit && cl->head == NULL) {
        conn_close_after_flush(cl->conn);
    }
}

static void client_maybe_resume(struct client *cl)
{
    if (!cl->paused || cl->conn == NULL || cl->conn->closing) {
        return;
    }
    struct node_config *cfg = &cl->w->node->cfg;
    if (cl->inflight >= cfg->pipeline_max ||
        conn_output_bytes(cl->conn) > cfg->client_output_buffer_max / 2) {
        return;
    }
    /* Not here: this may run inside a drain (a reply completed on apply), where proposing
     * is not allowed. The loop resumes it before its next drain. */
    if (!cl->resume_queued) {
        cl->resume_queued = true;
        cl->resume_next = cl->w->resume_head;
        cl->w->resume_head = cl;
        cl->inflight++; /* keeps the client alive while queued */
    }
}

void client_resume_pending(struct worker *w)
{
    struct client *cl = w->resume_head;
    w->resume_head = NULL;
    while (cl != NULL) {
        struct client *next = cl->resume_next;
        cl->resume_queued = false;
        cl->inflight--;
        if (cl->conn != NULL && !cl->conn->closing && cl->paused) {
            cl->paused = false;
            cl->conn->paused = false;
            client_parse(cl);
            if (!cl->paused) {
                conn_start_recv(cl->conn);
            }
        }
        client_free_if_done(cl);
        cl = next;
    }
}

/* ---- fan-out over every group ------------------------------------------------------------ */

static void fanout_child_done(struct worker *w, struct req *child)
{
    struct req *parent = child->parent;
    if (parent->job != NULL) {
        members_part_done(w, child);
        return;
    }
    struct reply *pr = &parent->reply;
    const struct reply *cr = &child->reply;
    if (cr->len > 0 && cr->buf[0] == '-') {
        /* The first error wins; the parent's accumulated bytes are replaced. */
        if (!parent->failed) {
            parent->failed = true;
            reply_reset(pr);
            reply_raw(pr, cr->buf, cr->len);
        }
    } else if (!parent->failed) {
        if (parent->cls == REQ_INTERNAL_DBSIZE && cr->len > 1 && cr->buf[0] == ':') {
            parent->sum += strtoll((const char *)cr->buf + 1, NULL, 10);
        } else if (parent->cls == REQ_INTERNAL_SCAN) {
            /* *2 :cursor *n keys...: keep the keys. */
            const uint8_t *p = cr->buf, *end = cr->buf + cr->len;
            for (int lines = 0; lines < 3 && p < end; p++) {
                if (*p == '\n') {
                    lines++;
                    if (lines == 2) {
                        parent->sum += strtoll((const char *)p + 2, NULL, 10);
                    }
                }
            }
            reply_raw(pr, p, (size_t)(end - p));
        }
    }
    req_free(w, child);
    if (--parent->children_left > 0) {
        return;
    }
    if (!parent->failed) {
        if (parent->cls == REQ_INTERNAL_DBSIZE) {
            reply_reset(pr);
            reply_int(pr, parent->sum);
        } else if (parent->cls == REQ_INTERNAL_SCAN) {
            struct reply out;
            reply_init(&out, pr->limit);
            reply_array(&out, parent->sum);
            reply_raw(&out, pr->buf, pr->len);
            reply_free(pr);
            parent->reply = out;
        } else {
            reply_reset(pr);
            reply_simple(pr, "OK");
        }
    }
    parent->state = REQ_DONE;
    client_req_done(w, parent);
}

void client_req_done(struct worker *w, struct req *r)
{
    if (r->parent != NULL) {
        fanout_child_done(w, r);
        return;
    }
    struct client *cl = r->client;
    RR_ASSERT(cl != NULL && cl->w == w);
    r->state = REQ_DONE;
    r->answered = true;
    if (r->scan_cursor) {
        scan_fix_reply(w, r);
    }
    cl->inflight--;
    RR_ASSERT(w->inflight_bytes >= r->cost);
    w->inflight_bytes -= r->cost;
    client_flush(cl);
    client_maybe_resume(cl);
    client_free_if_done(cl);
}

static struct req *client_enqueue(struct client *cl, struct req *r)
{
    r->origin = ORIGIN_CLIENT;
    r->client = cl;
    r->origin_worker = cl->w->id;
    r->conn_next = NULL;
    if (cl->tail == NULL) {
        cl->head = r;
    } else {
        cl->tail->conn_next = r;
    }
    cl->tail = r;
    cl->inflight++;
    return r;
}

void client_enqueue_req(struct client *cl, struct req *r)
{
    client_enqueue(cl, r);
}

/* SCAN walks the groups in order: the cursor's low 14 bits are the group, the rest the
 * cursor within that group's table. One SCAN call reads one group (at its leader). */
#define SCAN_GROUP_BITS 14

static bool scan_request(struct client *cl,
                         struct req *r,
                         uint32_t argc,
                         const uint8_t *const argv[],
                         const size_t argl[])
{
    struct worker *w = cl->w;
    char num[32];
    if (argl[1] == 0 || argl[1] >= sizeof(num)) {
        reply_error(&r->reply, "ERR invalid cursor");
        return false;
    }
    memcpy(num, argv[1], argl[1]);
    num[argl[1]] = '\0';
    char *end;
    unsigned long long cursor = strtoull(num, &end, 10);
    if (*end != '\0' || num[0] == '-') {
        reply_error(&r->reply, "ERR invalid cursor");
        return false;
    }
    const uint8_t *pattern = (const uint8_t *)"";
    size_t pattern_len = 0, type_len = 0;
    const uint8_t *type = (const uint8_t *)"";
    long long count = 10;
    for (uint32_t i = 2; i < argc; i += 2) {
        if (i + 1 >= argc) {
            reply_error(&r->reply, "ERR syntax error");
            return false;
        }
        if (argl[i] == 5 && strncasecmp((const char *)argv[i], "match", 5) == 0) {
            pattern = argv[i + 1];
            pattern_len = argl[i + 1];
            if (pattern_len == 1 && pattern[0] == '*') {
                pattern_len = 0;
            }
        } else if (argl[i] == 5 && strncasecmp((const char *)argv[i], "count", 5) == 0) {
            if (argl[i + 1] >= sizeof(num)) {
                reply_error(&r->reply, "ERR value is not an integer or out of range");
                return false;
            }
            memcpy(num, argv[i + 1], argl[i + 1]);
            num[argl[i + 1]] = '\0';
            count = strtoll(num, &end, 10);
            if (*end != '\0' || argl[i + 1] == 0) {
                reply_error(&r->reply, "ERR value is not an integer or out of range");
                return false;
            }
            if (count < 1) {
                reply_error(&r->reply, "ERR syntax error");
                return false;
            }
        } else if (argl[i] == 4 && strncasecmp((const char *)argv[i], "type", 4) == 0) {
            type = argv[i + 1];
            type_len = argl[i + 1];
        } else {
            reply_error(&r->reply, "ERR syntax error");
            return false;
        }
    }
    raft_group g = (raft_group)(cursor & ((1u << SCAN_GROUP_BITS) - 1));
    if (g >= w->node->cfg.groups) {
        reply_error(&r->reply, "ERR invalid cursor");
        return false;
    }
    char inner[32], cnt[32];
    int il = snprintf(inner, sizeof(inner), "%llu", cursor >> SCAN_GROUP_BITS);
    int cl2 = snprintf(cnt, sizeof(cnt), "%lld", count);
    const uint8_t *a[4] = {(const uint8_t *)inner, (const uint8_t *)cnt, pattern, type};
    size_t l[4] = {(size_t)il, (size_t)cl2, pattern_len, type_len};
    struct req *s = req_new(w, 4, a, l);
    if (s == NULL) {
        reply_error(&r->reply, "OOM out of memory");
        return false;
    }
    req_free(w, r);
    s->cls = REQ_INTERNAL_SCAN;
    s->group = g;
    s->scan_cursor = true;
    client_enqueue(cl, s);
    route_submit(w, s);
    return true;
}

/* The owner answered *2 :inner-cursor *n keys; the client wants *2 $cursor *n keys. */
static void scan_fix_reply(struct worker *w, struct req *r)
{
    const uint8_t *p = r->reply.buf, *end = p + r->reply.len;
    if (r->reply.len < 8 || p[0] != '*' || p[4] != ':') {
        return; /* an error */
    }
    unsigned long long inner = strtoull((const char *)p + 5, NULL, 10);
    const uint8_t *rest = memchr(p + 5, '\n', (size_t)(end - p - 5));
    if (rest == NULL) {
        return;
    }
    rest++;
    uint64_t next;
    if (inner != 0) {
        next = ((uint64_t)inner << SCAN_GROUP_BITS) | r->group;
    } else {
        next = r->group + 1 < w->node->cfg.groups ? r->group + 1 : 0;
    }
    char num[32];
    int nl = snprintf(num, sizeof(num), "%llu", (unsigned long long)next);
    struct reply out;
    reply_init(&out, r->reply.limit);
    reply_array(&out, 2);
    reply_bulk(&out, num, (size_t)nl);
    reply_raw(&out, rest, (size_t)(end - rest));
    reply_free(&r->reply);
    r->reply = out;
}

/* RAFT SNAPSHOT g and RAFT DIGEST g act on this node's copy of one group, so they go to the
 * group's worker on this node (never to its leader). False if the command is not one of them
 * (another RAFT subcommand: node_command answers it). */
static bool raft_group_request(struct client *cl,
                               struct req *r,
                               uint32_t argc,
                               const uint8_t *const argv[],
                               const size_t argl[])
{
    uint8_t cls;
    if (argc == 3 && argl[1] == 8 && strncasecmp((const char *)argv[1], "snapshot", 8) == 0) {
        cls = REQ_INTERNAL_SNAPSHOT;
    } else if (argc == 3 && argl[1] == 6 && strncasecmp((const char *)argv[1], "digest", 6) == 0) {
        cls = REQ_INTERNAL_DIGEST;
    } else {
        return false;
    }
    char num[16];
    char *end;
    unsigned long g = 0;
    if (argl[2] > 0 && argl[2] < sizeof(num)) {
        memcpy(num, argv[2], argl[2]);
        num[argl[2]] = '\0';
        g = strtoul(num, &end, 10);
    }
    if (argl[2] == 0 || argl[2] >= sizeof(num) || *end != '\0' || g >= cl->w->node->cfg.groups) {
        reply_error(&r->reply, "ERR invalid group");
        immediate(cl, r);
        return true;
    }
    r->cls = cls;
    r->group = (raft_group)g;
    client_enqueue(cl, r);
    route_submit(cl->w, r);
    return true;
}

/* Splits a node command over every group: DBSIZE, KEYS, FLUSHDB / FLUSHALL. */
static void fanout(struct client *cl,
                   struct req *parent,
                   uint8_t child_cls,
                   uint32_t argc,
                   const uint8_t *const argv[],
                   const size_t argl[])
{
    struct worker *w = cl->w;
    uint32_t groups = w->node->cfg.groups;
    parent->cls = child_cls;
    parent->children_left = groups;
    client_enqueue(cl, parent);
    for (raft_group g = 0; g < groups; g++) {
        struct req *c = req_new(w, argc, argv, argl);
        RR_ASSERT(c != NULL);
        c->origin = ORIGIN_CLIENT;
        c->parent = parent;
        c->group = g;
        c->cls = child_cls == REQ_INTERNAL_SCAN || child_cls == REQ_INTERNAL_DBSIZE ? child_cls
                                                                                    : CMD_WRITE;
        route_submit(w, c);
    }
}

static void immediate(struct client *cl, struct req *r)
{
    r->state = REQ_DONE;
    client_enqueue(cl, r);
    client_req_done(cl->w, r);
}

/* An XREAD or XREADGROUP with BLOCK may wait that long at the leader: its deadline here is
 * the BLOCK timeout plus the usual request timeout (none for BLOCK 0). The leader answers
 * nil when the BLOCK timeout passes. */
static void xread_deadline(struct req *r, uint32_t request_timeout_ms)
{
    for (uint32_t i = 1; i + 1 < r->argc; i++) {
        if (r->argl[i] == 7 && strncasecmp((const char *)r->argv[i], "streams", 7) == 0) {
            return;
        }
        if (r->argl[i] == 5 && strncasecmp((const char *)r->argv[i], "group", 5) == 0) {
            i += 2; /* XREADGROUP's group and consumer names */
            continue;
        }
        if (r->argl[i] == 5 && strncasecmp((const char *)r->argv[i], "block", 5) == 0) {
            char *end = NULL;
            long long ms = strtoll((const char *)r->argv[i + 1], &end, 10);
            if (end == NULL || *end != '\0' || ms < 0) {
                return; /* the state machine answers the error */
            }
            r->deadline_ms = ms == 0 || ms > INT64_MAX / 4
                                 ? INT64_MAX
                                 : r->start_ns / 1000000 + ms + request_timeout_ms;
            return;
        }
    }
}

static void
handle_request(struct client *cl, uint32_t argc, const uint8_t *const argv[], const size_t argl[])
{
    struct worker *w = cl->w;
    struct node *n = w->node;
    cl->commands++;
    w->st.commands++;
    struct req *r = req_new(w, argc, argv, argl);
    if (r == NULL) {
        LOG_W("out of memory for a request; closing client %llu", (unsigned long long)cl->id);
        conn_close(cl->conn);
        return;
    }
    /* The command (and a container's subcommand, XGROUP CREATE), and its arity. */
    const struct cmd_spec *cmd = cmd_resolve(argc, r->argv, r->argl, &r->reply);
    if (cmd == NULL) {
        immediate(cl, r);
        return;
    }
    if (!cl->authenticated && cmd->id != CMD_ID_AUTH && cmd->id != CMD_ID_HELLO &&
        cmd->id != CMD_ID_QUIT) {
        reply_error(&r->reply, "NOAUTH Authentication required.");
        immediate(cl, r);
        return;
    }
    if (cmd->cls == CMD_NODE) {
        static const uint8_t empty[1];
        switch (cmd->id) {
        case CMD_ID_DBSIZE: {
            const uint8_t *a[1] = {(const uint8_t *)"dbsize"};
            size_t l[1] = {6};
            fanout(cl, r, REQ_INTERNAL_DBSIZE, 1, a, l);
            return;
        }
        case CMD_ID_KEYS: {
            const uint8_t *a[4] = {(const uint8_t *)"0", (const uint8_t *)"0", argv[1], empty};
            size_t l[4] = {1, 1, argl[1], 0};
            if (argl[1] == 1 && argv[1][0] == '*') {
                l[2] = 0; /* everything */
            }
            fanout(cl, r, REQ_INTERNAL_SCAN, 4, a, l);
            return;
        }
        case CMD_ID_FLUSHDB:
        case CMD_ID_FLUSHALL: {
            /* [ASYNC|SYNC], as Redis 7.0 takes them (both flush through every group's log);
             * anything else flushes nothing. */
            if (argc > 2 || (argc == 2 && !util_arg_is(argv[1], argl[1], "async") &&
                             !util_arg_is(argv[1], argl[1], "sync"))) {
                reply_error(&r->reply, "ERR syntax error");
                immediate(cl, r);
                return;
            }
            const uint8_t *a[1] = {(const uint8_t *)"flushdb"};
            size_t l[1] = {7};
            fanout(cl, r, 0, 1, a, l);
            return;
        }
        case CMD_ID_SCAN:
            if (scan_request(cl, r, argc, argv, argl)) {
                return;
            }
            immediate(cl, r);
            return;
        case CMD_ID_RAFT:
            if (raft_group_request(cl, r, argc, argv, argl)) {
                return;
            }
            if (argl[1] == 6 && strncasecmp((const char *)argv[1], "status", 6) == 0) {
                break;
            }
            if (!members_request(cl, r, argc, argv, argl)) {
                immediate(cl, r);
            }
            return;
        default:
            break;
        }
        bool keep = node_command(cl, cmd, argc, argv, argl, &r->reply);
        immediate(cl, r);
        if (!keep) {
            cl->quit = true;
            client_flush(cl);
        }
        return;
    }
    uint16_t slot = 0;
    int rc = cmd_request_slot(cmd, argc, r->argv, r->argl, &slot, &r->reply);
    if (rc < 0) {
        immediate(cl, r);
        return;
    }
    /* As Redis: past maxmemory, commands that may add data are refused at admission (an
     * entry already in the log is always applied: every replica must apply the same log). */
    if (cmd->cls == CMD_WRITE && n->cfg.maxmemory > 0 &&
        atomic_load_explicit(&n->used_memory, memory_order_relaxed) > n->cfg.maxmemory &&
        strstr(cmd->flags, "denyoom") != NULL) {
        atomic_fetch_add_explicit(&n->oom_rejects, 1, memory_order_relaxed);
        reply_error(&r->reply, "OOM command not allowed when used memory > 'maxmemory'.");
        immediate(cl, r);
        return;
    }
    if (cmd->id == CMD_ID_XREAD || cmd->id == CMD_ID_XREADGROUP) {
        xread_deadline(r, n->cfg.request_timeout_ms);
    }
    r->cls = cmd->cls;
    r->slot = slot;
    r->group = cmd_slot_group(slot, n->cfg.groups);
    r->redirect_ok = n->cfg.redirect;
    r->client_id = cl->id;
    if (cmd->cls == CMD_WRITE) {
        r->seq = ++cl->seq;
    }
    r->cost = sizeof(*r);
    for (uint32_t i = 0; i < argc; i++) {
        r->cost += argl[i];
    }
    if (cmd->cls == CMD_WRITE) {
        /* Requests are delivered in order, so the oldest write still in the list is the
         * client's lowest sequence number without a reply (thesis §6.3): the state machine
         * keeps the replies from there on for retries. */
        r->first_unacked = cl->oldest_write != NULL ? cl->oldest_write->seq : r->seq;
    }
    if (w->inflight_bytes + r->cost > n->cfg.worker_inflight_max) {
        w->st.busy_rejects++;
        r->cost = 0; /* never counted in flight, so not taken back when answered */
        reply_error(&r->reply, "BUSY too many bytes in flight on this node; try again");
        immediate(cl, r);
        return;
    }
    w->inflight_bytes += r->cost;
    client_enqueue(cl, r);
    if (cmd->cls == CMD_WRITE && cl->oldest_write == NULL) {
        cl->oldest_write = r;
    }
    route_submit(w, r);
}

static void client_parse(struct client *cl)
{
    struct conn *c = cl->conn;
    struct worker *w = cl->w;
    struct node_config *cfg = &w->node->cfg;
    size_t off = 0;
    while (!c->closing && !cl->quit) {
        if (cl->inflight >= cfg->pipeline_max ||
            conn_output_bytes(c) > cfg->client_output_buffer_max / 2) {
            cl->paused = true;
            conn_pause(c);
            break;
        }
        struct resp_result res;
        cl->parser.unauthenticated = !cl->authenticated;
        enum resp_status st = resp_parse(&cl->parser, c->in + off, c->in_len - off, &w->args, &res);
        off += res.consumed_bytes;
        if (st == RESP_NEED_MORE) {
            break;
        }
        if (st == RESP_ERROR) {
            w->st.client_errors++;
            char msg[RESP_ERROR_MESSAGE_BYTES + 8];
            memcpy(msg, "-ERR ", 5);
            memcpy(msg + 5, res.message, res.message_len);
            memcpy(msg + 5 + res.message_len, "\r\n", 2);
            /* Replies already queued go first; then the error; then the connection closes. */
            struct req *r = req_new(w, 0, NULL, NULL);
            if (r != NULL) {
                reply_raw(&r->reply, msg, res.message_len + 7);
                immediate(cl, r);
            }
            cl->quit = true;
            client_flush(cl);
            break;
        }
        handle_request(cl, res.argc, w->args.argv, w->args.argl);
    }
    conn_consume(c, off);
}

void client_on_sent(struct conn *c)
{
    struct client *cl = c->owner;
    if (cl->paused) {
        client_maybe_resume(cl);
    } else {
        conn_start_recv(c);
    }
}

void client_on_recv(struct conn *c)
{
    struct client *cl = c->owner;
    client_parse(cl);
}
