/* Membership and leadership from the command line: RAFT ADDNODE, PROMOTE, REMOVENODE and
 * TRANSFER, run by the worker that accepted the client (docs/client-protocol.md, decision
 * 008).
 *
 * A job is a parent request with one part per group (or one part in group 0 for the node
 * set), each routed like a write to its group's leader (route.c, place_member and
 * place_nodeset), and runs in phases:
 *   ADDNODE id addr:   node set += id (group 0), then every group adds id as a learner;
 *   PROMOTE id:        every group makes learner id a voter once it has caught up;
 *   REMOVENODE id:     every group removes id, then, if every group did, node set -= id;
 *   TRANSFER g id:     group g's leadership moves to id.
 * The address is in the node set before any group replicates to the node, and leaves it
 * only after no group has it as a member. The answer lists every group's outcome. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/base/assert.h"
#include "io/client.h"
#include "io/log.h"
#include "io/node.h"

enum job_op { JOB_ADD = 1, JOB_PROMOTE, JOB_REMOVE, JOB_TRANSFER };
enum job_phase { PHASE_NODESET_ADD = 1, PHASE_GROUPS, PHASE_NODESET_REMOVE };

#define JOB_LINE_BYTES 112

struct member_job {
    uint8_t op;    /* enum job_op */
    uint8_t phase; /* enum job_phase */
    struct node_address at;
    raft_group transfer_group;
    uint32_t ok, failed;          /* parts of the groups phase */
    char nodeset[JOB_LINE_BYTES]; /* the node-set part's outcome ("" if none ran) */
    char *lines;                  /* [G][JOB_LINE_BYTES]: each group's outcome */
};

static bool arg_is(const uint8_t *a, size_t l, const char *s)
{
    return l == strlen(s) && strncasecmp((const char *)a, s, l) == 0;
}

static bool parse_id(const uint8_t *a, size_t l, uint32_t max, uint32_t *out)
{
    char num[16];
    if (l == 0 || l >= sizeof(num)) {
        return false;
    }
    memcpy(num, a, l);
    num[l] = '\0';
    char *end;
    unsigned long v = strtoul(num, &end, 10);
    if (*end != '\0' || num[0] == '-' || v > max) {
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

static void part_submit(struct worker *w,
                        struct req *parent,
                        uint8_t cls,
                        raft_group g,
                        uint32_t argc,
                        const char *const args[])
{
    const uint8_t *argv[5];
    size_t argl[5];
    RR_ASSERT(argc <= 5);
    for (uint32_t i = 0; i < argc; i++) {
        argv[i] = (const uint8_t *)args[i];
        argl[i] = strlen(args[i]);
    }
    struct req *c = req_new(w, argc, argv, argl);
    RR_ASSERT(c != NULL);
    c->origin = ORIGIN_CLIENT;
    c->parent = parent;
    c->group = g;
    c->cls = cls;
    c->deadline_ms = c->start_ns / 1000000 + MEMBER_TIMEOUT_MS;
    parent->children_left++;
    /* Never placed here and now: a part completes inside a drain, where the next phase
     * starts and no group may be proposed to. */
    route_submit_later(w, c);
}

static void nodeset_part(struct worker *w, struct req *parent, const char *op)
{
    struct member_job *job = parent->job;
    char id[16], port[8], peer[8];
    snprintf(id, sizeof(id), "%u", job->at.id);
    snprintf(port, sizeof(port), "%u", job->at.port);
    snprintf(peer, sizeof(peer), "%u", job->at.peer_port);
    const char *args[5] = {op, id, job->at.host, port, peer};
    part_submit(w, parent, REQ_INTERNAL_NODESET, 0, 5, args);
}

static void groups_phase(struct worker *w, struct req *parent)
{
    struct member_job *job = parent->job;
    job->phase = PHASE_GROUPS;
    char id[16];
    snprintf(id, sizeof(id), "%u", job->at.id);
    if (job->op == JOB_TRANSFER) {
        const char *args[2] = {"transfer", id};
        part_submit(w, parent, REQ_INTERNAL_MEMBER, job->transfer_group, 2, args);
        return;
    }
    const char *op = job->op == JOB_ADD ? "learner" : job->op == JOB_PROMOTE ? "voter" : "remove";
    const char *args[2] = {op, id};
    for (raft_group g = 0; g < w->node->cfg.groups; g++) {
        part_submit(w, parent, REQ_INTERNAL_MEMBER, g, 2, args);
    }
}

/* "ok", or the error without its '-' and line end. */
static void outcome(const struct reply *r, char *out, size_t cap)
{
    if (r->len > 0 && r->buf[0] == '-') {
        size_t n = r->len - 1;
        while (n > 0 && (r->buf[n] == '\n' || r->buf[n] == '\r')) {
            n--;
        }
        snprintf(out, cap, "error:%.*s", (int)n, (const char *)r->buf + 1);
    } else {
        snprintf(out, cap, "ok");
    }
}

static const char *op_name(uint8_t op)
{
    switch (op) {
    case JOB_ADD:
        return "addnode";
    case JOB_PROMOTE:
        return "promote";
    case JOB_REMOVE:
        return "removenode";
    default:
        return "transfer";
    }
}

static void finish(struct worker *w, struct req *parent)
{
    struct member_job *job = parent->job;
    uint32_t G = w->node->cfg.groups;
    size_t cap = 256 + (size_t)G * (JOB_LINE_BYTES + 16), len = 0;
    char *text = malloc(cap);
    RR_ASSERT(text != NULL);
    len += (size_t)snprintf(text, cap, "%s %u: %u ok, %u failed\n", op_name(job->op), job->at.id,
                            job->ok, job->failed);
    if (job->nodeset[0] != '\0') {
        len += (size_t)snprintf(text + len, cap - len, "nodeset %s\n", job->nodeset);
    }
    for (raft_group g = 0; g < G; g++) {
        const char *line = job->lines + (size_t)g * JOB_LINE_BYTES;
        if (line[0] != '\0') {
            len += (size_t)snprintf(text + len, cap - len, "group:%u %s\n", g, line);
        }
    }
    reply_reset(&parent->reply);
    reply_bulk(&parent->reply, text, len);
    free(text);
    LOG_N("raft %s %u: %u groups ok, %u failed%s%s", op_name(job->op), job->at.id, job->ok,
          job->failed, job->nodeset[0] ? "; node set " : "", job->nodeset);
    free(job->lines);
    free(job);
    parent->job = NULL;
    parent->state = REQ_DONE;
    client_req_done(w, parent);
}

void members_part_done(struct worker *w, struct req *part)
{
    struct req *parent = part->parent;
    struct member_job *job = parent->job;
    char line[JOB_LINE_BYTES];
    outcome(&part->reply, line, sizeof(line));
    bool ok = strcmp(line, "ok") == 0;
    if (part->cls == REQ_INTERNAL_NODESET) {
        snprintf(job->nodeset, sizeof(job->nodeset), "%s", line);
        job->failed += !ok; /* the summary's count says whether the whole command worked */
    } else {
        snprintf(job->lines + (size_t)part->group * JOB_LINE_BYTES, JOB_LINE_BYTES, "%s", line);
        if (ok) {
            job->ok++;
        } else {
            job->failed++;
        }
    }
    req_free(w, part);
    RR_ASSERT(parent->children_left > 0);
    if (--parent->children_left > 0) {
        return;
    }
    if (job->phase == PHASE_NODESET_ADD && ok) {
        groups_phase(w, parent);
        return;
    }
    if (job->phase == PHASE_GROUPS && job->op == JOB_REMOVE && job->failed == 0) {
        /* No group has the node any more: its address can go. */
        job->phase = PHASE_NODESET_REMOVE;
        nodeset_part(w, parent, "remove");
        return;
    }
    finish(w, parent);
}

/* Parses the command into a job; false with an error in r->reply if it is malformed. */
static bool parse_job(struct worker *w,
                      struct req *r,
                      uint32_t argc,
                      const uint8_t *const argv[],
                      const size_t argl[],
                      struct member_job *job)
{
    struct node *n = w->node;
    uint32_t v = 0;
    if (arg_is(argv[1], argl[1], "addnode") && argc == 4) {
        char item[160];
        if (!parse_id(argv[2], argl[2], RAFT_NODE_ID_MAX, &v) || v == 0 ||
            argl[3] >= sizeof(item) - 16) {
            reply_error(&r->reply, "ERR usage: RAFT ADDNODE id host:port[@peerport]");
            return false;
        }
        snprintf(item, sizeof(item), "%u=%.*s", v, (int)argl[3], (const char *)argv[3]);
        if (config_parse_node(item, &job->at) != 0) {
            reply_error(&r->reply, "ERR bad address: host:port[@peerport] expected");
            return false;
        }
        const struct node_set *ns = nodeset_get(n);
        const struct node_address *known = nodeset_find(ns, v);
        if (known != NULL &&
            (strcmp(known->host, job->at.host) != 0 || known->port != job->at.port ||
             known->peer_port != job->at.peer_port)) {
            /* Changing a member's address here would cut it off: remove it first. */
            reply_errorf(&r->reply,
                         "ERR node %u is in the node set at %s:%u@%u; RAFT REMOVENODE it first", v,
                         known->host, known->port, known->peer_port);
            return false;
        }
        if (known == NULL && ns->count == RAFT_MEMBERS_MAX) {
            reply_errorf(&r->reply, "ERR the cluster has %u nodes already", RAFT_MEMBERS_MAX);
            return false;
        }
        job->op = JOB_ADD;
        return true;
    }
    if ((arg_is(argv[1], argl[1], "promote") || arg_is(argv[1], argl[1], "removenode")) &&
        argc == 3) {
        if (!parse_id(argv[2], argl[2], RAFT_NODE_ID_MAX, &v) || v == 0) {
            reply_error(&r->reply, "ERR bad node id");
            return false;
        }
        job->op = arg_is(argv[1], argl[1], "promote") ? JOB_PROMOTE : JOB_REMOVE;
        job->at.id = v;
        const struct node_address *a = nodeset_find(nodeset_get(n), v);
        if (a != NULL) {
            job->at = *a; /* the node-set removal names the address it removes */
        }
        return true;
    }
    if (arg_is(argv[1], argl[1], "transfer") && argc == 4) {
        uint32_t g = 0;
        if (!parse_id(argv[2], argl[2], n->cfg.groups - 1, &g) ||
            !parse_id(argv[3], argl[3], RAFT_NODE_ID_MAX, &v) || v == 0) {
            reply_error(&r->reply, "ERR usage: RAFT TRANSFER group node");
            return false;
        }
        job->op = JOB_TRANSFER;
        job->transfer_group = g;
        job->at.id = v;
        return true;
    }
    reply_errorf(&r->reply,
                 "ERR unknown subcommand or wrong number of arguments for '%.*s'. Try RAFT "
                 "STATUS, SNAPSHOT group, DIGEST group, ADDNODE id host:port[@peerport], "
                 "PROMOTE id, REMOVENODE id, TRANSFER group node.",
                 (int)argl[1], (const char *)argv[1]);
    return false;
}

bool members_request(struct client *cl,
                     struct req *r,
                     uint32_t argc,
                     const uint8_t *const argv[],
                     const size_t argl[])
{
    struct worker *w = cl->w;
    struct member_job *job = calloc(1, sizeof(*job));
    RR_ASSERT(job != NULL);
    if (!parse_job(w, r, argc, argv, argl, job)) {
        free(job);
        return false;
    }
    job->lines = calloc(w->node->cfg.groups, JOB_LINE_BYTES);
    RR_ASSERT(job->lines != NULL);
    r->job = job;
    r->cls = REQ_INTERNAL_MEMBER;
    r->children_left = 0;
    client_enqueue_req(cl, r);
    if (job->op == JOB_ADD) {
        job->phase = PHASE_NODESET_ADD;
        nodeset_part(w, r, "add");
    } else {
        groups_phase(w, r);
    }
    return true;
}
