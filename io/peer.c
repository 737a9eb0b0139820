/* Peer transport: one TCP connection between worker w of this node and worker w of each
 * other node. The node with the lower id dials (with exponential backoff, 50 ms to 2 s) the
 * other's peer port + w; the other accepts. The dialer's first frame is a handshake (cluster
 * id, node ids, worker, G, W, protocol version, proof of the cluster secret); the acceptor
 * answers with an ack or a refusal naming the mismatch, logged on both sides. After that both
 * directions carry frames (io/wire/frame.h): Raft batches, forwarded client requests and
 * their replies. A frame that fails any check closes the connection and is counted; nothing
 * in it is applied. Output per connection is bounded: a frame that does not fit is dropped
 * and counted (Raft recovers from loss; forwarded requests time out and are retried). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/base/assert.h"
#include "core/base/errors.h"
#include "core/codec.h"
#include "io/log.h"
#include "io/node.h"
#include "io/resolver.h"
#include "io/wire/forward.h"
#include "io/wire/frame.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000
/* Answers of the resolver taken per tick (the rest wait for the next one). */
#define RESOLVE_COLLECT_MAX 16

struct peer *peer_find(struct worker *w, raft_node id)
{
    for (uint32_t i = 0; i < w->peer_count; i++) {
        if (w->peers[i].id == id) {
            return &w->peers[i];
        }
    }
    return NULL;
}

int node_listen(const char *host, uint16_t port, bool reuseport)
{
    struct sockaddr_in a;
    if (kernel_resolve(host, port, &a) != 0) {
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* Accepted sockets inherit it: nothing to set per connection in the loop. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (reuseport) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    }
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 1024) != 0) {
        LOG_E("cannot listen on %s:%u: %s", host, port, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static void peer_down(struct worker *w, struct peer *p);

/* The next dial after a failure: now + the backoff, which doubles up to its maximum. */
static void peer_backoff(struct worker *w, struct peer *p)
{
    p->next_dial_ms = w->now_ms + p->backoff_ms;
    p->backoff_ms = p->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : p->backoff_ms * 2;
}

/* A new generation for p: an answer of the resolver to an older request is stale. */
static void peer_new_generation(struct worker *w, struct peer *p)
{
    p->resolve_gen = ++w->resolve_gen;
    p->resolving = false;
    p->resolved = false;
}

/* Resolves p's address for this worker's peer port before a dial. An IPv4 literal is parsed
 * at once; a name goes to the resolver thread, and peer_collect_resolved gives the answer.
 * The policy (docs/operations.md "Several hosts"): a name is looked up again before every
 * dial that follows a failed or lost connection, so that a changed DNS record is used. */
static void peer_resolve(struct worker *w, struct peer *p)
{
    RR_ASSERT(p->dialer);
    RR_ASSERT(!p->resolving);
    uint16_t port = (uint16_t)(p->at.peer_port + w->id);
    if (kernel_resolve_numeric(p->at.host, port, &p->addr) == 0) {
        p->resolved = true;
        return;
    }
    p->resolve_gen = ++w->resolve_gen;
    if (resolver_post(w->node->resolver, w->id, p->id, p->resolve_gen, p->at.host, port) != 0) {
        LOG_W("peer %u: too many host-name lookups waiting (%u); retrying in %u ms", p->id,
              RESOLVE_QUEUE_MAX, p->backoff_ms);
        peer_backoff(w, p);
        return;
    }
    p->resolving = true;
}

/* Takes the resolver's answers for this worker: one for a peer's current generation gives
 * its address (dialed at once if due) or, failed, is logged once and retried after the
 * backoff; an answer to an older generation is dropped. */
static void peer_collect_resolved(struct worker *w)
{
    struct resolve_result res[RESOLVE_COLLECT_MAX];
    uint32_t n = resolver_collect(w->node->resolver, w->id, res, RESOLVE_COLLECT_MAX);
    for (uint32_t i = 0; i < n; i++) {
        struct peer *p = peer_find(w, res[i].peer);
        if (p == NULL || p->removed ||
            !resolve_answer_current(&res[i], p->resolving, p->resolve_gen)) {
            continue; /* stale: removed, re-added or readdressed since the request */
        }
        RR_ASSERT(p->dialer);
        p->resolving = false;
        if (res[i].ok) {
            p->resolved = true;
            p->addr = res[i].addr;
            continue;
        }
        LOG_W("peer %u: cannot resolve %s: %s; retrying in %u ms", p->id, p->at.host, res[i].error,
              p->backoff_ms);
        peer_backoff(w, p);
    }
}

/* A peer slot for `a` (new, or a removed one of the same id coming back). */
static void peer_add(struct worker *w, const struct node_address *a)
{
    struct node *n = w->node;
    struct peer *p = peer_find(w, a->id);
    if (p == NULL) {
        if (w->peer_count == RAFT_MEMBERS_MAX) {
            LOG_E("node %u: no room for another peer (%u)", a->id, RAFT_MEMBERS_MAX);
            return;
        }
        p = &w->peers[w->peer_count++];
        memset(p, 0, sizeof(*p));
    }
    p->id = a->id;
    p->removed = false;
    p->at = *a;
    p->dialer = n->cfg.node_id < a->id;
    p->backoff_ms = BACKOFF_MIN_MS;
    p->next_dial_ms = w->now_ms;
    peer_new_generation(w, p);
    if (p->dialer) {
        peer_resolve(w, p);
    }
}

/* What this node takes on the connection (io/wire/forward.h): sent by both sides once the
 * handshake is done. A node that predates it ignores a PING's payload, so neither sends
 * the other a batch. */
static void send_features(struct peer *p)
{
    uint8_t buf[FORWARD_FEATURES_BYTES];
    forward_features_encode(buf, FORWARD_FEATURE_BATCH);
    peer_send_frame(p, FRAME_PING, buf, sizeof(buf), NULL, 0);
}

/* Worker 0 tells a peer its node set (the peer adopts it if newer; nodeset.c). */
static void send_nodeset(struct worker *w, struct peer *p)
{
    if (w->id != 0 || p->state != PEER_UP) {
        return;
    }
    uint8_t buf[NODESET_BYTES_MAX];
    size_t len = nodeset_encode(nodeset_get(w->node), buf, sizeof(buf));
    RR_ASSERT(len > 0);
    peer_send_frame(p, FRAME_NODESET, buf, len, NULL, 0);
}

void peer_sync(struct worker *w)
{
    struct node *n = w->node;
    const struct node_set *s = nodeset_get(n);
    if (s == w->peers_set) {
        return;
    }
    bool changed = w->peers_set != NULL;
    w->peers_set = s;
    for (uint32_t i = 0; i < w->peer_count; i++) {
        struct peer *p = &w->peers[i];
        if (p->removed) {
            continue;
        }
        const struct node_address *a = nodeset_find(s, p->id);
        if (a == NULL) {
            if (w->id == 0) {
                LOG_N("peer %u: removed from the node set; disconnecting", p->id);
            }
            peer_down(w, p);
            p->removed = true;
            peer_new_generation(w, p);
        } else if (strcmp(a->host, p->at.host) != 0 || a->peer_port != p->at.peer_port ||
                   a->port != p->at.port) {
            peer_down(w, p);
            peer_add(w, a);
        }
    }
    for (uint32_t i = 0; i < s->count; i++) {
        const struct node_address *a = &s->nodes[i];
        struct peer *p = peer_find(w, a->id);
        if (a->id != n->cfg.node_id && (p == NULL || p->removed)) {
            if (w->id == 0) {
                LOG_N("peer %u: added at %s:%u", a->id, a->host, a->peer_port);
            }
            peer_add(w, a);
        }
    }
    for (uint32_t i = 0; changed && i < w->peer_count; i++) {
        send_nodeset(w, &w->peers[i]);
    }
}

int peer_setup(struct worker *w)
{
    struct node *n = w->node;
    const struct node_address *self = config_self(&n->cfg);
    w->client_lfd = node_listen(n->cfg.bind, self->port, true);
    if (w->client_lfd < 0) {
        return RR_EIO;
    }
    w->peer_lfd = node_listen(n->cfg.bind, (uint16_t)(self->peer_port + w->id), false);
    if (w->peer_lfd < 0) {
        return RR_EIO;
    }
    peer_sync(w);
    return 0;
}

static void send_handshake(struct worker *w, struct peer *p)
{
    struct node *n = w->node;
    struct handshake hs = {
        .version = HANDSHAKE_VERSION,
        .cluster_id = n->cfg.cluster_id,
        .node = n->cfg.node_id,
        .worker = w->id,
        .group_count = n->cfg.groups,
        .worker_count = n->cfg.workers,
        .receiver_node = p->id,
        .nonce = ((uint64_t)node_wall_ms() << 20) ^ ((uint64_t)kernel_pid() << 8) ^ p->connects,
    };
    handshake_sign(&hs, (const uint8_t *)n->cfg.cluster_secret, strlen(n->cfg.cluster_secret));
    uint8_t buf[HANDSHAKE_BYTES];
    handshake_encode(buf, &hs);
    uint8_t *dst = conn_reserve(p->conn, FRAME_HEADER_BYTES + HANDSHAKE_BYTES);
    if (dst != NULL) {
        frame_encode(dst, FRAME_HANDSHAKE, buf, HANDSHAKE_BYTES);
    }
}

static void peer_down(struct worker *w, struct peer *p)
{
    /* A batch being filled goes with the connection; the next one announces itself again. */
    p->batch_type = 0;
    p->batch_len = 0;
    p->batch_ok = false;
    if (p->state == PEER_DOWN) {
        return;
    }
    if (p->state == PEER_UP) {
        LOG_N("peer %u: connection lost", p->id);
    }
    p->state = PEER_DOWN;
    if (p->conn != NULL) {
        p->conn->owner = NULL;
        conn_close(p->conn);
        p->conn = NULL;
    }
    peer_backoff(w, p);
    /* Looked up again before the next dial (peer_resolve: a changed record is picked up). */
    p->resolved = false;
    route_peer_down(w, p);
    /* Groups led by that peer wake (quiesced ones included) and elect a leader if it is
     * gone; groups led here run CheckQuorum again. */
    multi_peer_down(w->multi, p->id);
}

void peer_bad_frame(struct peer *p, const char *why)
{
    struct worker *w = p->conn != NULL ? p->conn->w : NULL;
    p->bad_frames++;
    LOG_W("peer %u: %s; closing the connection", p->id, why);
    if (w != NULL) {
        atomic_fetch_add_explicit(&w->pub.frames_bad, 1, memory_order_relaxed);
        peer_down(w, p);
    }
}

bool peer_dial_waiting(const struct worker *w)
{
    for (uint32_t i = 0; i < w->peer_count; i++) {
        const struct peer *p = &w->peers[i];
        if (p->dialer && !p->removed && p->state == PEER_DOWN) {
            return true;
        }
    }
    return false;
}

void peer_tick(struct worker *w)
{
    peer_collect_resolved(w);
    for (uint32_t i = 0; i < w->peer_count; i++) {
        struct peer *p = &w->peers[i];
        if (!p->dialer || p->removed || p->state != PEER_DOWN || w->now_ms < p->next_dial_ms ||
            w->stopping || p->resolving) {
            continue;
        }
        if (!p->resolved) {
            peer_resolve(w, p);
            if (!p->resolved) {
                continue; /* the resolver answers at a later tick, or the backoff runs */
            }
        }
        int fd = kernel_dial_socket();
        if (fd < 0) {
            p->next_dial_ms = w->now_ms + BACKOFF_MAX_MS;
            continue;
        }
        struct conn *c = conn_new(w, fd, CONN_PEER, FRAME_PAYLOAD_MAX_DEFAULT + FRAME_HEADER_BYTES,
                                  (size_t)w->node->cfg.peer_output_max);
        if (c == NULL) {
            kernel_close(fd);
            continue;
        }
        c->owner = p;
        p->conn = c;
        p->state = PEER_CONNECTING;
        p->connects++;
        struct io_uring_sqe *sqe = worker_sqe(w);
        io_uring_prep_connect(sqe, fd, (struct sockaddr *)&p->addr, sizeof(p->addr));
        io_uring_sqe_set_data64(sqe, UD_MAKE(UD_CONNECT, c));
        c->recv_pending = true; /* the connect counts as in flight until it completes */
    }
}

void peer_on_connected(struct worker *w, struct conn *c, int res)
{
    c->recv_pending = false;
    struct peer *p = c->owner;
    if (c->closing || p == NULL) {
        conn_close(c);
        conn_settle(c);
        return;
    }
    if (res < 0) {
        LOG_D("peer %u: connect failed: %s", p->id, strerror(-res));
        peer_down(w, p);
        return;
    }
    p->state = PEER_HANDSHAKE;
    send_handshake(w, p);
    conn_start_recv(c);
}

void peer_accepted(struct worker *w, int fd)
{
    /* TCP_NODELAY is inherited from the listening socket (node_listen). */
    struct conn *c = conn_new(w, fd, CONN_PEER, FRAME_PAYLOAD_MAX_DEFAULT + FRAME_HEADER_BYTES,
                              (size_t)w->node->cfg.peer_output_max);
    if (c == NULL) {
        conn_close_fd(w, fd);
        return;
    }
    c->owner = NULL; /* unknown until its handshake */
    conn_start_recv(c);
}

static void refuse(struct worker *w, struct conn *c, uint16_t why, const char *reason)
{
    struct handshake_ack ack = {.accepted = false, .refusal = why};
    snprintf(ack.reason, sizeof(ack.reason), "%s", reason);
    uint8_t buf[HANDSHAKE_ACK_BYTES];
    handshake_ack_encode(buf, &ack);
    uint8_t *dst = conn_reserve(c, FRAME_HEADER_BYTES + HANDSHAKE_ACK_BYTES);
    if (dst != NULL) {
        frame_encode(dst, FRAME_HANDSHAKE_ACK, buf, HANDSHAKE_ACK_BYTES);
    }
    atomic_fetch_add_explicit(&w->pub.handshakes_refused, 1, memory_order_relaxed);
    conn_close_after_flush(c);
}

/* An inbound connection's first frame. Returns the peer it turned out to be, or NULL. */
static struct peer *accept_handshake(struct worker *w, struct conn *c, const struct frame *f)
{
    struct node *n = w->node;
    char reason[HANDSHAKE_REASON_BYTES];
    struct handshake hs;
    if (f->type != FRAME_HANDSHAKE || handshake_decode(f->payload, f->payload_len, &hs) != 0) {
        LOG_W("inbound peer connection: first frame is not a valid handshake; closing");
        refuse(w, c, HANDSHAKE_REFUSE_MALFORMED, "expected a handshake");
        return NULL;
    }
    struct handshake_expect mine = {
        .cluster_id = n->cfg.cluster_id,
        .secret = (const uint8_t *)n->cfg.cluster_secret,
        .secret_len = strlen(n->cfg.cluster_secret),
        .self_node = n->cfg.node_id,
        .peer_node = 0,
        .group_count = n->cfg.groups,
        .worker_count = n->cfg.workers,
    };
    enum handshake_refusal why = handshake_check(&hs, &mine, reason, sizeof(reason));
    struct peer *p = why == HANDSHAKE_OK ? peer_find(w, hs.node) : NULL;
    if (why == HANDSHAKE_OK && (p == NULL || p->dialer || p->removed)) {
        why = HANDSHAKE_REFUSE_NODE;
        snprintf(reason, sizeof(reason), "node %u is not a peer that dials node %u", hs.node,
                 n->cfg.node_id);
    }
    if (why == HANDSHAKE_OK && hs.worker != w->id) {
        why = HANDSHAKE_REFUSE_WORKER_ID;
        snprintf(reason, sizeof(reason), "worker %u dialed the port of worker %u", hs.worker,
                 w->id);
    }
    if (why != HANDSHAKE_OK) {
        LOG_W("refused peer handshake: %s", reason);
        refuse(w, c, (uint16_t)why, reason);
        return NULL;
    }
    if (p->conn != NULL) {
        /* The peer reconnected (it restarted, or saw the old connection fail first). */
        peer_down(w, p);
    }
    p->conn = c;
    c->owner = p;
    p->state = PEER_UP;
    p->backoff_ms = BACKOFF_MIN_MS;
    struct handshake_ack ack = {.accepted = true, .refusal = HANDSHAKE_OK};
    uint8_t buf[HANDSHAKE_ACK_BYTES];
    handshake_ack_encode(buf, &ack);
    uint8_t *dst = conn_reserve(c, FRAME_HEADER_BYTES + HANDSHAKE_ACK_BYTES);
    if (dst != NULL) {
        frame_encode(dst, FRAME_HANDSHAKE_ACK, buf, HANDSHAKE_ACK_BYTES);
    }
    LOG_N("peer %u: connected (inbound)", p->id);
    send_features(p);
    send_nodeset(w, p);
    return p;
}

void peer_on_recv(struct conn *c)
{
    struct worker *w = c->w;
    size_t off = 0;
    while (!c->closing && !c->close_after_flush) {
        struct frame f;
        enum frame_status st =
            frame_decode(c->in + off, c->in_len - off, FRAME_PAYLOAD_MAX_DEFAULT, &f);
        if (st == FRAME_NEED_MORE) {
            break;
        }
        struct peer *p = c->owner;
        if (st != FRAME_COMPLETE) {
            if (p != NULL) {
                char why[96];
                snprintf(why, sizeof(why), "bad frame (%s)", frame_status_str(st));
                peer_bad_frame(p, why);
            } else {
                atomic_fetch_add_explicit(&w->pub.frames_bad, 1, memory_order_relaxed);
                LOG_W("inbound peer connection: bad frame (%s); closing", frame_status_str(st));
                conn_close(c);
            }
            return;
        }
        off += f.frame_bytes;
        if (p == NULL) {
            if (accept_handshake(w, c, &f) == NULL) {
                break;
            }
            continue;
        }
        p->frames_in++;
        p->bytes_in += f.frame_bytes;
        if (p->state == PEER_HANDSHAKE) {
            struct handshake_ack ack;
            if (f.type != FRAME_HANDSHAKE_ACK ||
                handshake_ack_decode(f.payload, f.payload_len, &ack) != 0) {
                peer_bad_frame(p, "expected a handshake ack");
                return;
            }
            if (!ack.accepted) {
                LOG_W("peer %u refused our handshake: %s", p->id, ack.reason);
                p->backoff_ms = BACKOFF_MAX_MS;
                peer_down(w, p);
                return;
            }
            p->state = PEER_UP;
            p->backoff_ms = BACKOFF_MIN_MS;
            LOG_N("peer %u: connected (outbound)", p->id);
            send_features(p);
            send_nodeset(w, p);
            continue;
        }
        int rc;
        switch (f.type) {
        case FRAME_RAFT:
            rc = multi_receive(w->multi, f.payload, f.payload_len);
            if (rc != 0) {
                char why[96];
                snprintf(why, sizeof(why), "Raft batch refused (%s)", rr_strerror(rc));
                peer_bad_frame(p, why);
                return;
            }
            break;
        case FRAME_FORWARD:
            route_on_forward(p, f.payload, f.payload_len);
            break;
        case FRAME_FORWARD_REPLY:
            route_on_forward_reply(p, f.payload, f.payload_len);
            break;
        case FRAME_FORWARD_CANCEL:
            route_on_forward_cancel(p, f.payload, f.payload_len);
            break;
        case FRAME_FORWARD_BATCH:
        case FRAME_FORWARD_REPLY_BATCH:
            route_on_forward_batch(p, f.type, f.payload, f.payload_len);
            break;
        case FRAME_PING:
            p->batch_ok =
                (forward_features_decode(f.payload, f.payload_len) & FORWARD_FEATURE_BATCH) != 0;
            break;
        case FRAME_NODESET: {
            struct node_set s;
            if (nodeset_decode(f.payload, f.payload_len, &s) != 0) {
                peer_bad_frame(p, "malformed node set");
                return;
            }
            if (w->id == 0) {
                nodeset_adopt(w, &s, p->id);
            }
            break;
        }
        default:
            peer_bad_frame(p, "unexpected frame type after the handshake");
            return;
        }
        if (c->owner != p) {
            return; /* closed by a handler */
        }
    }
    conn_consume(c, off);
}

void peer_on_closed(struct conn *c)
{
    struct peer *p = c->owner;
    if (p != NULL && p->conn == c) {
        p->conn = NULL;
        peer_down(c->w, p);
    }
}

/* Reserves a frame of payload_len bytes in p's output and returns where its payload goes
 * (NULL: not sent, counted); the caller writes exactly payload_len bytes there and calls
 * peer_frame_end, with nothing else written to p's output in between. */
static uint8_t *peer_frame_begin(struct peer *p, uint16_t type, size_t payload_len)
{
    struct worker *w;
    peer_batch_close(p); /* frames leave in the order they were made */
    if (p->state != PEER_UP || p->conn == NULL) {
        p->dropped_frames++;
        return NULL;
    }
    w = p->conn->w;
    if (payload_len > FRAME_PAYLOAD_MAX_DEFAULT) {
        p->dropped_frames++;
        atomic_fetch_add_explicit(&w->pub.frames_dropped, 1, memory_order_relaxed);
        return NULL;
    }
    uint8_t *dst = conn_reserve(p->conn, FRAME_HEADER_BYTES + payload_len);
    if (dst == NULL) {
        /* A slow peer: drop rather than grow; Raft retransmits from its progress state. */
        p->dropped_frames++;
        atomic_fetch_add_explicit(&w->pub.frames_dropped, 1, memory_order_relaxed);
        return NULL;
    }
    frame_header_encode(dst, (enum frame_type)type, (uint32_t)payload_len);
    return dst + FRAME_HEADER_BYTES;
}

static void count_frame(struct peer *p, size_t bytes);

static void peer_frame_end(struct peer *p, uint8_t *payload)
{
    struct worker *w = p->conn->w;
    count_frame(p, frame_finalize(payload - FRAME_HEADER_BYTES));
    if (w->node->cfg.net_batching == NET_BATCHING_NONE) {
        conn_send_now(p->conn);
    }
}

/* The frame's counters, once it is complete in the output. */
static void count_frame(struct peer *p, size_t bytes)
{
    struct worker *w = p->conn->w;
    p->conn->out[p->conn->fill].frames++;
    p->frames_out++;
    p->bytes_out += bytes;
    w->st.frames_sent++;
    w->st.frame_bytes_sent += bytes;
}

static bool peer_batches(const struct peer *p)
{
    return p->batch_ok && p->conn != NULL &&
           p->conn->w->node->cfg.net_batching != NET_BATCHING_NONE;
}

/* Adds a record of rec_len bytes to the batch frame of `type` being filled for p, starting
 * one if there is none or it is full; returns where the record's bytes go (NULL: not sent,
 * counted). */
static uint8_t *peer_batch_record(struct peer *p, uint16_t type, size_t rec_len)
{
    RR_ASSERT(type == FRAME_FORWARD_BATCH || type == FRAME_FORWARD_REPLY_BATCH);
    RR_ASSERT(FORWARD_RECORD_BYTES + rec_len <= PEER_BATCH_MAX);
    if (p->batch_type != 0 &&
        (p->batch_type != type || p->batch_len + FORWARD_RECORD_BYTES + rec_len > PEER_BATCH_MAX)) {
        peer_batch_close(p);
    }
    size_t add = FORWARD_RECORD_BYTES + rec_len;
    uint8_t *dst;
    if (p->batch_type == 0) {
        /* A new frame with this record; its header is written again, with the length, when
         * it is closed. */
        dst = peer_frame_begin(p, type, add);
        if (dst == NULL) {
            return NULL;
        }
        p->batch_type = type;
        p->batch_off = (size_t)(dst - FRAME_HEADER_BYTES - p->conn->out[p->conn->fill].buf);
        p->batch_len = 0;
    } else {
        /* Appended right after the batch: nothing else was written since (peer_frame_begin
         * closes the batch first), and out[fill] changes only when a send takes it, which
         * closes the batch too. The buffer may move (realloc): the batch is found by its
         * offset. */
        dst = conn_reserve(p->conn, add);
        if (dst == NULL) {
            p->dropped_frames++;
            atomic_fetch_add_explicit(&p->conn->w->pub.frames_dropped, 1, memory_order_relaxed);
            return NULL;
        }
    }
    RR_ASSERT(dst ==
              p->conn->out[p->conn->fill].buf + p->batch_off + FRAME_HEADER_BYTES + p->batch_len);
    p->batch_len += add;
    forward_record_encode(dst, (uint32_t)rec_len);
    return dst + FORWARD_RECORD_BYTES;
}

void peer_batch_close(struct peer *p)
{
    if (p->batch_type == 0) {
        return;
    }
    RR_ASSERT(p->conn != NULL);
    if (p->conn->closing) {
        p->batch_type = 0; /* nothing more is sent on it */
        return;
    }
    uint8_t *frame = p->conn->out[p->conn->fill].buf + p->batch_off;
    RR_ASSERT(p->batch_len > 0); /* a batch is opened for a record that is then added */
    frame_header_encode(frame, (enum frame_type)p->batch_type, (uint32_t)p->batch_len);
    count_frame(p, frame_finalize(frame));
    p->batch_type = 0;
    p->batch_len = 0;
}

uint8_t *peer_forward_begin(struct peer *p, uint16_t batch_type, size_t len, bool *batched)
{
    RR_ASSERT(batch_type == FRAME_FORWARD_BATCH || batch_type == FRAME_FORWARD_REPLY_BATCH);
    *batched = peer_batches(p) && FORWARD_RECORD_BYTES + len <= PEER_BATCH_MAX;
    if (*batched) {
        return peer_batch_record(p, batch_type, len);
    }
    return peer_frame_begin(
        p, batch_type == FRAME_FORWARD_BATCH ? FRAME_FORWARD : FRAME_FORWARD_REPLY, len);
}

void peer_forward_end(struct peer *p, uint8_t *payload, bool batched)
{
    if (!batched) {
        peer_frame_end(p, payload);
    }
}

bool peer_send_frame(
    struct peer *p, uint16_t type, const void *a, size_t alen, const void *b, size_t blen)
{
    uint8_t *dst = peer_frame_begin(p, type, alen + blen);
    if (dst == NULL) {
        return false;
    }
    if (alen > 0) {
        memcpy(dst, a, alen);
    }
    if (blen > 0) {
        memcpy(dst + alen, b, blen);
    }
    peer_frame_end(p, dst);
    return true;
}

void peer_send_raft(struct worker *w, raft_node to, const uint8_t *batch, size_t len)
{
    struct peer *p = peer_find(w, to);
    if (p == NULL) {
        return;
    }
    peer_send_frame(p, FRAME_RAFT, batch, len, NULL, 0);
}

bool peer_send_msg(struct worker *w, const struct raft_msg *m)
{
    struct rr_bytes b;
    rr_bytes_init(&b);
    struct codec_batch_writer bw;
    bool ok = codec_batch_begin(&bw, &b, m->from, m->to) == 0 && codec_batch_add_msg(&bw, m) == 0;
    if (ok) {
        codec_batch_end(&bw);
        peer_send_raft(w, m->to, b.base, b.len);
    }
    rr_bytes_free(&b);
    return ok;
}
