/* The node set and the bootstrap configuration (docs/decisions/008-dynamic-node-set.md).
 *
 * DIR/BOOTSTRAP holds the bootstrap configuration every group starts from, written once at
 * the first start of a data directory and read back at every later start, whatever `nodes`
 * says then:
 *     voters 1,2,3
 *     join no
 * A node started fresh with `join yes` is a server being added: its bootstrap voters are
 * the other nodes of `nodes`, never itself, so it never campaigns before a leader's log
 * makes it a voter (core/raft.h raft_init).
 *
 * DIR/NODES holds the node set: the address of every node this node may have to talk to,
 * and the index of group 0's entry it reflects:
 *     index 0
 *     node 1 127.0.0.1 7001 17001
 * Written at the first start from `nodes`, then replaced (atomically and durably) each time
 * group 0 applies a node-set entry. Node-set entries are proposed in group 0 like writes
 * (RAFT ADDNODE before any group adds the node, RAFT REMOVENODE after every group removed
 * it), so every node learns every address from the log, in the same order, and the set is
 * always a superset of the members of every group's configuration.
 *
 * Peers also exchange their whole sets (FRAME_NODESET, worker 0's connections only, when a
 * connection comes up and whenever the set changes). The set at index I is a
 * function of group 0's committed entries up to I, so a node adopts any set with a higher
 * index than its own. This is how a node learns of changes whose entries it will never apply
 * because a snapshot of group 0 compacted them away, and how a joining node learns of
 * members missing from its `nodes`. The encodings of the entry, of the peers' payload and of
 * a DIR/NODES line are io/wire/nodeset.c's. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/assert.h"
#include "io/log.h"
#include "io/node.h"

const struct node_set *nodeset_get(const struct node *n)
{
    return atomic_load_explicit(&n->set, memory_order_acquire);
}

static int write_set(const char *dir, const struct node_set *s)
{
    char text[RAFT_MEMBERS_MAX * (NODE_HOST_MAX + 40) + 64];
    size_t len = (size_t)snprintf(text, sizeof(text), "index %" PRIu64 "\n", s->index);
    for (uint32_t i = 0; i < s->count; i++) {
        size_t n = nodeset_line_encode(&s->nodes[i], text + len, sizeof(text) - len);
        RR_ASSERT(n > 0);
        len += n;
    }
    return kernel_replace_file(dir, "NODES", text, len);
}

static int read_set(const char *path, struct node_set *s)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return errno == ENOENT ? 1 : -1;
    }
    memset(s, 0, sizeof(*s));
    char line[256];
    int rc = 0;
    unsigned long long index = 0;
    while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "index %llu", &index) == 1) {
            s->index = index;
        } else if (s->count < RAFT_MEMBERS_MAX &&
                   nodeset_line_decode(line, &s->nodes[s->count]) == 0) {
            s->count++;
        } else {
            rc = -1;
        }
    }
    fclose(f);
    return rc;
}

/* DIR/BOOTSTRAP: "voters 1,2,3\njoin no\n". 1 if absent. */
static int read_bootstrap(const char *path, struct raft_config *c, bool *join)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return errno == ENOENT ? 1 : -1;
    }
    char line[512], list[480], yn[8];
    bool have = false;
    memset(c, 0, sizeof(*c));
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "voters %479s", list) == 1) {
            have = true;
            for (char *p = list; *p != '\0';) {
                char *end;
                unsigned long id = strtoul(p, &end, 10);
                if (end == p || id == 0 || id > RAFT_NODE_ID_MAX ||
                    c->member_count == RAFT_MEMBERS_MAX) {
                    fclose(f);
                    return -1;
                }
                c->members[c->member_count++] =
                    (struct raft_member){.id = (raft_node)id, .role = RAFT_VOTER};
                p = *end == ',' ? end + 1 : end;
            }
        } else if (sscanf(line, "join %7s", yn) == 1) {
            *join = strcmp(yn, "yes") == 0;
        }
    }
    fclose(f);
    return have && raft_config_valid(c) ? 0 : -1;
}

static int write_bootstrap(const char *dir, const struct raft_config *c, bool join)
{
    char text[512];
    size_t len = (size_t)snprintf(text, sizeof(text), "voters ");
    for (uint32_t i = 0; i < c->member_count; i++) {
        len += (size_t)snprintf(text + len, sizeof(text) - len, "%s%u", i ? "," : "",
                                c->members[i].id);
    }
    len += (size_t)snprintf(text + len, sizeof(text) - len, "\njoin %s\n", join ? "yes" : "no");
    return kernel_replace_file(dir, "BOOTSTRAP", text, len);
}

int nodeset_open(struct node *n, bool fresh)
{
    const struct node_config *cfg = &n->cfg;
    char path[NODE_PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/BOOTSTRAP", cfg->dir);
    bool join = false;
    int rc = read_bootstrap(path, &n->initial, &join);
    if (rc < 0) {
        LOG_E("%s is damaged; the node cannot know its bootstrap configuration", path);
        return -1;
    }
    if (rc > 0) {
        /* First start of this directory (or a directory from before BOOTSTRAP existed, whose
         * groups started from every configured node as a voter). */
        struct raft_config c = {0};
        join = cfg->join && fresh;
        for (uint32_t i = 0; i < cfg->node_count; i++) {
            if (join && cfg->nodes[i].id == cfg->node_id) {
                continue;
            }
            c.members[c.member_count++] =
                (struct raft_member){.id = cfg->nodes[i].id, .role = RAFT_VOTER};
        }
        if (c.member_count == 0) {
            LOG_E("join yes: `nodes` must list the cluster's nodes as well as this one");
            return -1;
        }
        if (cfg->join && !fresh) {
            LOG_W("join yes ignored: %s already holds this node's data", cfg->dir);
        }
        if (write_bootstrap(cfg->dir, &c, join) != 0) {
            return -1;
        }
        n->initial = c;
    } else if (cfg->join && !join) {
        LOG_N("join yes ignored: %s was bootstrapped as a member", cfg->dir);
    }
    struct node_set *s = calloc(1, sizeof(*s));
    RR_ASSERT(s != NULL);
    snprintf(path, sizeof(path), "%s/NODES", cfg->dir);
    rc = read_set(path, s);
    if (rc < 0) {
        LOG_E("%s is damaged; the node cannot know its peers' addresses", path);
        free(s);
        return -1;
    }
    if (rc > 0) {
        s->count = cfg->node_count;
        memcpy(s->nodes, cfg->nodes, sizeof(s->nodes[0]) * cfg->node_count);
        if (write_set(cfg->dir, s) != 0) {
            free(s);
            return -1;
        }
    }
    if (nodeset_find(s, cfg->node_id) == NULL) {
        LOG_W("this node (%u) is not in its node set (%s): it was removed from the cluster",
              cfg->node_id, path);
    }
    atomic_store_explicit(&n->set, s, memory_order_release);
    LOG_N("bootstrap: %u voters%s; node set: %u nodes (group 0 index %" PRIu64 ")",
          n->initial.member_count, join ? " (joined)" : "", s->count, s->index);
    return 0;
}

void nodeset_close(struct node *n)
{
    struct node_set *s = atomic_load(&n->set);
    while (s != NULL) {
        struct node_set *older = s->older;
        free(s);
        s = older;
    }
    atomic_store(&n->set, NULL);
}

void nodeset_apply(struct worker *w, raft_index index, const uint8_t *p, size_t len)
{
    struct node *n = w->node;
    /* Only this worker replaces the set, so the current one is ours to link. */
    struct node_set *cur = atomic_load_explicit(&n->set, memory_order_acquire);
    if (index <= cur->index) {
        return; /* already in DIR/NODES: the log is being replayed after a restart */
    }
    uint8_t op;
    struct node_address a;
    if (nodeset_entry_decode(p, len, &op, &a) != 0) {
        LOG_E("group 0: node-set entry %" PRIu64 " is malformed; ignored", index);
        return;
    }
    struct node_set *s = malloc(sizeof(*s));
    RR_ASSERT(s != NULL);
    *s = *cur;
    s->older = cur;
    s->index = index;
    uint32_t k = 0;
    for (uint32_t i = 0; i < s->count; i++) {
        if (s->nodes[i].id != a.id) {
            s->nodes[k++] = s->nodes[i];
        }
    }
    s->count = k;
    if (op == NODESET_ADD) {
        if (s->count == RAFT_MEMBERS_MAX) {
            LOG_E("group 0: node-set entry %" PRIu64 " adds node %u past %u nodes; ignored", index,
                  a.id, RAFT_MEMBERS_MAX);
            free(s);
            return;
        }
        s->nodes[s->count++] = a;
    }
    /* The file is written before the set is used: a crash after this leaves the entry to be
     * applied again from the log (its index is above the file's). */
    if (write_set(n->cfg.dir, s) != 0) {
        free(s);
        node_fail(n, "cannot write the node set (DIR/NODES)");
        return;
    }
    atomic_store_explicit(&n->set, s, memory_order_release);
    if (op == NODESET_ADD) {
        LOG_N("node set: node %u at %s:%u (peers %u) added (group 0 entry %" PRIu64 ")", a.id,
              a.host, a.port, a.peer_port, index);
    } else {
        LOG_N("node set: node %u removed (group 0 entry %" PRIu64 ")", a.id, index);
    }
}

void nodeset_adopt(struct worker *w, const struct node_set *in, raft_node from)
{
    struct node *n = w->node;
    RR_ASSERT(w->id == 0);
    struct node_set *cur = atomic_load_explicit(&n->set, memory_order_acquire);
    if (in->index <= cur->index) {
        return;
    }
    struct node_set *s = malloc(sizeof(*s));
    RR_ASSERT(s != NULL);
    *s = *in;
    s->older = cur;
    if (write_set(n->cfg.dir, s) != 0) {
        free(s);
        node_fail(n, "cannot write the node set (DIR/NODES)");
        return;
    }
    atomic_store_explicit(&n->set, s, memory_order_release);
    LOG_N("node set: %u nodes as of group 0 entry %" PRIu64 ", from peer %u (was %" PRIu64 ")",
          s->count, s->index, from, cur->index);
}
