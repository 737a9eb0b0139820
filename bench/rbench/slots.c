/* Nodes and the slot map (slots.h). The one blocking network call of ringraft-bench lives
 * here, CLUSTER SLOTS on the main thread; the event loops only copy its result. */
#include "bench/rbench/slots.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "bench/rbench/resp_reply.h"
#include "io/service/cmd.h"

#define CALL_REPLY_BYTES_MAX (64u << 20) /* a CLUSTER SLOTS answer larger than this is refused */

void cluster_init(struct rb_cluster *c)
{
    memset(c, 0, sizeof(*c));
    memset(c->map.node, RB_NODE_NONE, sizeof(c->map.node));
    pthread_mutex_init(&c->lock, NULL);
}

void cluster_destroy(struct rb_cluster *c)
{
    pthread_mutex_destroy(&c->lock);
}

uint32_t nodes_count(const struct rb_nodes *n)
{
    return __atomic_load_n(&n->count, __ATOMIC_ACQUIRE);
}

int nodes_find(const struct rb_nodes *n, const char *host, size_t host_len, uint16_t port)
{
    uint32_t count = nodes_count(n);
    for (uint32_t i = 0; i < count; i++) {
        const struct rb_node *x = &n->node[i];
        if (x->port == port && strlen(x->host) == host_len &&
            memcmp(x->host, host, host_len) == 0) {
            return (int)i;
        }
    }
    return -1;
}

int nodes_add(struct rb_nodes *n, const char *host, uint16_t port, char *err, size_t err_size)
{
    int found = nodes_find(n, host, strlen(host), port);
    if (found >= 0) {
        return found;
    }
    uint32_t count = nodes_count(n);
    if (count == RB_NODES_MAX || strlen(host) >= RB_HOST_MAX) {
        snprintf(err, err_size, "node %s:%u: too many nodes or too long a name", host, port);
        return -1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    char port_text[8];
    snprintf(port_text, sizeof(port_text), "%u", port);
    int rc = getaddrinfo(host, port_text, &hints, &res);
    if (rc != 0 || res == NULL) {
        snprintf(err, err_size, "node %s:%u: %s", host, port, gai_strerror(rc));
        return -1;
    }
    struct rb_node *x = &n->node[count];
    memset(x, 0, sizeof(*x));
    snprintf(x->host, sizeof(x->host), "%s", host);
    x->port = port;
    memcpy(&x->addr, res->ai_addr, res->ai_addrlen);
    x->addr_len = res->ai_addrlen;
    freeaddrinfo(res);
    __atomic_store_n(&n->count, count + 1u, __ATOMIC_RELEASE);
    return (int)count;
}

/* "host:port" or "[v6]:port" of len bytes into host and *port. */
static bool split_host_port(
    const char *s, size_t len, char *host, size_t host_cap, size_t *host_len, uint16_t *port)
{
    const char *colon = NULL;
    for (size_t i = len; i > 0; i--) {
        if (s[i - 1] == ':') {
            colon = s + i - 1;
            break;
        }
    }
    if (colon == NULL || colon == s || (size_t)(s + len - colon) < 2) {
        return false;
    }
    const char *h = s;
    size_t hl = (size_t)(colon - s);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    unsigned long v = 0;
    for (const char *p = colon + 1; p < s + len; p++) {
        if (*p < '0' || *p > '9' || v > 65535) {
            return false;
        }
        v = v * 10u + (unsigned long)(*p - '0');
    }
    if (hl == 0 || hl >= host_cap || v == 0 || v > 65535) {
        return false;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    *host_len = hl;
    *port = (uint16_t)v;
    return true;
}

int nodes_add_list(struct rb_nodes *n, const char *list, char *err, size_t err_size)
{
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        char host[RB_HOST_MAX];
        size_t host_len = 0;
        uint16_t port = 0;
        if (!split_host_port(p, len, host, sizeof(host), &host_len, &port)) {
            snprintf(err, err_size, "--nodes: bad item '%.*s' (host:port)", (int)len, p);
            return 1;
        }
        if (nodes_add(n, host, port, err, err_size) < 0) {
            return 1;
        }
        if (comma == NULL) {
            return 0;
        }
        p = comma + 1;
    }
}

bool slots_parse_moved(const char *text,
                       size_t len,
                       uint16_t *slot,
                       char *host,
                       size_t host_cap,
                       size_t *host_len,
                       uint16_t *port)
{
    if (len < 6 || memcmp(text, "MOVED ", 6) != 0) {
        return false;
    }
    size_t i = 6;
    unsigned long s = 0;
    size_t digits = 0;
    for (; i < len && text[i] >= '0' && text[i] <= '9' && digits < 6; i++, digits++) {
        s = s * 10u + (unsigned long)(text[i] - '0');
    }
    if (digits == 0 || s >= RB_SLOTS || i >= len || text[i] != ' ') {
        return false;
    }
    *slot = (uint16_t)s;
    return split_host_port(text + i + 1, len - i - 1, host, host_cap, host_len, port);
}

uint16_t slots_keyslot(const char *key, size_t len)
{
    return cmd_keyslot((const uint8_t *)key, len);
}

/* ---- CLUSTER SLOTS ------------------------------------------------------------------------- */

/* Reply shape: array of [start, end, [host, port, id, ...] (master), [replica]...]. */
struct slots_walk {
    struct rb_nodes *nodes;
    struct rb_slot_map *map;
    const char *via_host; /* for an empty host in the reply */
    int64_t start;
    int64_t end;
    char host[RB_HOST_MAX];
    bool bad;
    uint32_t ranges;
    char *err;
    size_t err_size;
};

static void slots_walk_master(struct slots_walk *w, int64_t port)
{
    if (w->start < 0 || w->end < w->start || w->end >= RB_SLOTS || port <= 0 || port > 65535) {
        w->bad = true;
        return;
    }
    const char *host = w->host[0] != '\0' ? w->host : w->via_host;
    int idx = nodes_add(w->nodes, host, (uint16_t)port, w->err, w->err_size);
    if (idx < 0) {
        w->bad = true;
        return;
    }
    memset(w->map->node + w->start, idx, (size_t)(w->end - w->start + 1));
    w->ranges++;
}

static void
slots_visit_cb(void *arg, const struct resp_reply_parser *p, const struct resp_scalar *s)
{
    struct slots_walk *w = arg;
    if (p->depth == 2 && s->type == ':') {
        if (p->index[1] == 0) {
            w->start = s->integer;
            w->end = -1;
            w->host[0] = '\0';
        } else if (p->index[1] == 1) {
            w->end = s->integer;
        }
    } else if (p->depth == 3 && p->index[1] == 2) {
        if (p->index[2] == 0 && s->type == '$' && !s->truncated && s->len < RB_HOST_MAX) {
            memcpy(w->host, s->data, s->len);
            w->host[s->len] = '\0';
        } else if (p->index[2] == 1 && s->type == ':') {
            slots_walk_master(w, s->integer);
        }
    }
}

/* Sends req (req_len bytes, `replies` requests) to node and reads as many replies, walking
 * the last with visit; every earlier one must not be an error (an AUTH). Blocking, each step
 * bounded by timeout_ms. 0, or 1 with err. */
static int call_blocking(const struct rb_node *node,
                         const char *req,
                         size_t req_len,
                         int replies,
                         int timeout_ms,
                         resp_reply_visit_fn visit,
                         void *arg,
                         struct resp_reply *out,
                         char *err,
                         size_t err_size)
{
    int fd = socket(node->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, err_size, "socket: %s", strerror(errno));
        return 1;
    }
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int rc = 1;
    if (connect(fd, (const struct sockaddr *)&node->addr, node->addr_len) != 0 ||
        write(fd, req, req_len) != (ssize_t)req_len) {
        snprintf(err, err_size, "%s:%u: %s", node->host, node->port, strerror(errno));
        goto out_close;
    }
    struct resp_reply_parser parser;
    resp_reply_init(&parser);
    uint8_t buf[16384];
    size_t total = 0;
    while (replies > 0) {
        ssize_t got = read(fd, buf, sizeof(buf));
        if (got <= 0 || total > CALL_REPLY_BYTES_MAX) {
            snprintf(err, err_size, "%s:%u: no complete reply (%s)", node->host, node->port,
                     got == 0  ? "closed"
                     : got < 0 ? "read failed or timed out"
                               : "too long");
            goto out_close;
        }
        total += (size_t)got;
        for (size_t pos = 0; pos < (size_t)got && replies > 0;) {
            size_t used = 0;
            int r = resp_reply_feed(&parser, buf + pos, (size_t)got - pos, &used, out,
                                    replies == 1 ? visit : NULL, arg);
            pos += used;
            if (r == RESP_REPLY_BAD) {
                snprintf(err, err_size, "%s:%u: malformed reply", node->host, node->port);
                goto out_close;
            }
            if (r == RESP_REPLY_DONE && --replies > 0 && out->type == '-') {
                snprintf(err, err_size, "%s:%u: AUTH: %.*s", node->host, node->port,
                         (int)out->text_len, out->text);
                goto out_close;
            }
        }
    }
    rc = 0;
out_close:
    close(fd);
    return rc;
}

int cluster_refresh(struct rb_cluster *c, uint32_t via, int timeout_ms, char *err, size_t err_size)
{
    static struct rb_slot_map map; /* main thread only */
    memset(map.node, RB_NODE_NONE, sizeof(map.node));
    const struct rb_node *node = &c->nodes.node[via];
    struct slots_walk w = {.nodes = &c->nodes,
                           .map = &map,
                           .via_host = node->host,
                           .start = -1,
                           .end = -1,
                           .err = err,
                           .err_size = err_size};
    struct resp_reply reply;
    static const char slots_req[] = "*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n";
    static char req[sizeof(c->auth) + sizeof(slots_req)];
    memcpy(req, c->auth, c->auth_len);
    memcpy(req + c->auth_len, slots_req, sizeof(slots_req) - 1);
    if (call_blocking(node, req, c->auth_len + sizeof(slots_req) - 1, c->auth_len > 0 ? 2 : 1,
                      timeout_ms, slots_visit_cb, &w, &reply, err, err_size) != 0) {
        return 1;
    }
    if (reply.type == '-') {
        snprintf(err, err_size, "%s:%u: CLUSTER SLOTS: %.*s", node->host, node->port,
                 (int)reply.text_len, reply.text);
        return 1;
    }
    if (reply.type != '*' || w.bad || w.ranges == 0) {
        if (!w.bad) {
            snprintf(err, err_size, "%s:%u: CLUSTER SLOTS: no usable slot range", node->host,
                     node->port);
        }
        return 1;
    }
    pthread_mutex_lock(&c->lock);
    c->map = map;
    __atomic_store_n(&c->gen, c->gen + 1u, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&c->lock);
    c->refreshes++;
    return 0;
}

void cluster_adopt(struct rb_cluster *c, struct rb_slot_map *local, uint64_t *gen)
{
    if (__atomic_load_n(&c->gen, __ATOMIC_ACQUIRE) == *gen) {
        return;
    }
    pthread_mutex_lock(&c->lock);
    *local = c->map;
    *gen = c->gen;
    pthread_mutex_unlock(&c->lock);
}

void cluster_want_node(struct rb_cluster *c, const char *host, size_t host_len, uint16_t port)
{
    if (host_len >= RB_HOST_MAX) {
        return;
    }
    pthread_mutex_lock(&c->lock);
    if (c->wanted_count < RB_WANTED_MAX) {
        memcpy(c->wanted[c->wanted_count].host, host, host_len);
        c->wanted[c->wanted_count].host[host_len] = '\0';
        c->wanted[c->wanted_count].port = port;
        c->wanted_count++;
    }
    pthread_mutex_unlock(&c->lock);
}

void cluster_add_wanted(struct rb_cluster *c)
{
    char host[RB_HOST_MAX];
    char err[256];
    for (;;) {
        pthread_mutex_lock(&c->lock);
        if (c->wanted_count == 0) {
            pthread_mutex_unlock(&c->lock);
            return;
        }
        c->wanted_count--;
        memcpy(host, c->wanted[c->wanted_count].host, sizeof(host));
        uint16_t port = c->wanted[c->wanted_count].port;
        pthread_mutex_unlock(&c->lock);
        (void)nodes_add(&c->nodes, host, port, err, sizeof(err)); /* resolving may block */
    }
}
