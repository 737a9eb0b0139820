/* Connections on the loop's ring (conn.h). At most one recv, one send and one connect (or
 * cancel) in flight per connection; a connection is closed only once none is, so a
 * completion always finds its connection as it left it (checked by the generation in its
 * user_data). */
#include "bench/rbench/conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/base/assert.h"

/* user_data: tag in the top byte, the socket's generation (24 bits), the connection index. */
enum conn_tag { UD_CONNECT = 1, UD_RECV, UD_SEND, UD_CANCEL };
#define UD_GEN_MASK 0xffffffu

static uint64_t ud_make(enum conn_tag tag, const struct rb_conn *c, uint32_t index)
{
    return ((uint64_t)tag << 56) | ((uint64_t)(c->gen & UD_GEN_MASK) << 32) | index;
}

static enum conn_tag ud_tag(uint64_t ud)
{
    return (enum conn_tag)(ud >> 56);
}

static uint32_t ud_gen(uint64_t ud)
{
    return (uint32_t)(ud >> 32) & UD_GEN_MASK;
}

static uint32_t ud_index(uint64_t ud)
{
    return (uint32_t)ud;
}

/* A fifo holds a pipeline of requests plus the connection's AUTH. */
static uint32_t fifo_cap(const struct rb_thread *t)
{
    return t->run->opts->pipeline + 1u;
}

static uint32_t fifo_pop(const struct rb_thread *t, struct rb_conn *c)
{
    RR_ASSERT(c->fifo_count > 0);
    uint32_t slot = c->fifo[c->fifo_head];
    c->fifo_head = (c->fifo_head + 1u) % fifo_cap(t);
    c->fifo_count--;
    return slot;
}

static uint32_t conn_index(const struct rb_thread *t, const struct rb_conn *c)
{
    return (uint32_t)(c - t->conns);
}

/* An SQE; when the submission queue is full, what is queued is submitted first. */
static struct io_uring_sqe *conn_sqe(struct rb_thread *t)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&t->ring);
    if (sqe == NULL) {
        io_uring_submit(&t->ring);
        sqe = io_uring_get_sqe(&t->ring);
    }
    RR_ASSERT(sqe != NULL);
    return sqe;
}

static void conn_arm_recv(struct rb_thread *t, struct rb_conn *c)
{
    RR_ASSERT(!c->recv_pending);
    struct io_uring_sqe *sqe = conn_sqe(t);
    io_uring_prep_recv(sqe, c->fd, c->in, RB_IN_BYTES, 0);
    io_uring_sqe_set_data64(sqe, ud_make(UD_RECV, c, conn_index(t, c)));
    c->recv_pending = true;
}

static void conn_mark_dirty(struct rb_thread *t, struct rb_conn *c)
{
    if (!c->dirty) {
        c->dirty = true;
        t->dirty[t->dirty_count++] = conn_index(t, c);
    }
}

static void conn_dial(struct rb_thread *t, struct rb_conn *c)
{
    const struct rb_node *node = &t->run->cluster->nodes.node[c->node];
    c->gen = (c->gen + 1u) & UD_GEN_MASK;
    c->fd = socket(node->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        c->state = CONN_CLOSING;
        conn_fail(t, c, "connect");
        return;
    }
    int one = 1;
    (void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct io_uring_sqe *sqe = conn_sqe(t);
    io_uring_prep_connect(sqe, c->fd, (const struct sockaddr *)&node->addr, node->addr_len);
    io_uring_sqe_set_data64(sqe, ud_make(UD_CONNECT, c, conn_index(t, c)));
    c->connect_pending = true;
    c->state = CONN_CONNECTING;
}

int conn_open(struct rb_thread *t, uint32_t client, uint8_t node)
{
    if (t->conn_count == t->conn_cap) {
        return -1;
    }
    const struct rb_opts *o = t->run->opts;
    struct rb_conn *c = &t->conns[t->conn_count];
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    c->client = client;
    c->node = node;
    c->backoff_ms = 100;
    c->out_cap = (uint32_t)(o->pipeline * t->run->request_max + t->run->cluster->auth_len);
    c->out = malloc(c->out_cap);
    c->in = malloc(RB_IN_BYTES);
    c->fifo = malloc(fifo_cap(t) * sizeof(*c->fifo));
    if (c->out == NULL || c->in == NULL || c->fifo == NULL) {
        free(c->out);
        free(c->in);
        free(c->fifo);
        return -1;
    }
    resp_reply_init(&c->parser);
    t->conn_count++;
    conn_dial(t, c);
    return (int)(t->conn_count - 1u);
}

uint8_t *conn_reserve(struct rb_conn *c, size_t request_max)
{
    if (c->state == CONN_CLOSING) {
        return NULL;
    }
    /* Queued bytes belong to requests in the fifo (and the AUTH), and the fifo holds fewer
     * than a pipeline of requests (the new request's slot is one of the client's): so
     * request_max more always fit. */
    RR_ASSERT(c->out_len + request_max <= c->out_cap);
    return c->out + c->out_len;
}

void conn_commit(struct rb_thread *t, struct rb_conn *c, uint32_t slot, size_t len)
{
    uint32_t cap = fifo_cap(t);
    RR_ASSERT(c->fifo_count < cap);
    RR_ASSERT(c->out_len + len <= c->out_cap);
    c->fifo[(c->fifo_head + c->fifo_count) % cap] = slot;
    c->fifo_count++;
    c->out_len += (uint32_t)len;
    if (c->state == CONN_UP) {
        conn_mark_dirty(t, c);
    }
}

void conn_flush(struct rb_thread *t)
{
    for (uint32_t i = 0; i < t->dirty_count; i++) {
        struct rb_conn *c = &t->conns[t->dirty[i]];
        c->dirty = false;
        if (c->state != CONN_UP || c->send_pending || c->out_len == 0) {
            continue;
        }
        struct io_uring_sqe *sqe = conn_sqe(t);
        io_uring_prep_send(sqe, c->fd, c->out, c->out_len, MSG_NOSIGNAL);
        io_uring_sqe_set_data64(sqe, ud_make(UD_SEND, c, t->dirty[i]));
        c->send_pending = true;
        c->out_sent = c->out_len;
    }
    t->dirty_count = 0;
}

/* A closing connection whose operations have all completed is closed; it is dialled again
 * after its backoff. */
static void conn_settle(struct rb_thread *t, struct rb_conn *c)
{
    if (c->state != CONN_CLOSING || c->recv_pending || c->send_pending || c->connect_pending) {
        return;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    c->state = CONN_DOWN;
    c->out_len = 0;
    c->reconnect_ns = t->now_ns + (uint64_t)c->backoff_ms * 1000000u;
    c->backoff_ms = c->backoff_ms >= 500 ? 1000 : c->backoff_ms * 2u;
}

void conn_fail(struct rb_thread *t, struct rb_conn *c, const char *kind)
{
    t->stats.conn_failures++;
    bool had_socket = c->fd >= 0;
    c->state = had_socket ? CONN_CLOSING : CONN_DOWN;
    /* Nothing queued will be sent: the bytes of a send in flight stay untouched (the kernel
     * may still read them) and nothing is queued while closing. */
    c->out_len = 0;
    resp_reply_init(&c->parser);
    while (c->fifo_count > 0) {
        uint32_t slot = fifo_pop(t, c);
        if (slot != RB_SLOT_AUTH) {
            loop_fail_request(t, c->client, slot, kind);
        }
    }
    if (!had_socket) {
        c->reconnect_ns = t->now_ns + (uint64_t)c->backoff_ms * 1000000u;
        return;
    }
    if (c->recv_pending || c->send_pending || c->connect_pending) {
        struct io_uring_sqe *sqe = conn_sqe(t);
        io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL);
        io_uring_sqe_set_data64(sqe, ud_make(UD_CANCEL, c, conn_index(t, c)));
    }
    conn_settle(t, c);
}

/* Replies in the bytes just received, each to the oldest request waiting on c. */
static void conn_on_bytes(struct rb_thread *t, struct rb_conn *c, size_t len)
{
    size_t pos = 0;
    while (pos < len && c->state == CONN_UP) {
        size_t used = 0;
        struct resp_reply r;
        int rc = resp_reply_feed(&c->parser, c->in + pos, len - pos, &used, &r, NULL, NULL);
        pos += used;
        if (rc == RESP_REPLY_MORE) {
            break;
        }
        if (rc == RESP_REPLY_BAD || c->fifo_count == 0) {
            conn_fail(t, c, "protocol"); /* no framing to trust, or a reply nobody asked for */
            return;
        }
        uint32_t slot = fifo_pop(t, c);
        if (slot != RB_SLOT_AUTH) {
            loop_on_reply(t, c, slot, &r);
        } else if (r.type == '-') {
            errors_add(&t->stats.errors, r.text, r.text_len, 1); /* WRONGPASS, NOAUTH ... */
            conn_fail(t, c, "auth");
            return;
        }
    }
}

/* With -a, AUTH goes first on a new connection, ahead of requests queued while it was
 * down; its reply is checked and dropped (conn_on_bytes). */
static void conn_queue_auth(struct rb_thread *t, struct rb_conn *c)
{
    uint32_t len = t->run->cluster->auth_len;
    if (len == 0) {
        return;
    }
    RR_ASSERT(c->out_len + len <= c->out_cap);
    RR_ASSERT(c->fifo_count < fifo_cap(t));
    memmove(c->out + len, c->out, c->out_len);
    memcpy(c->out, (const uint8_t *)t->run->cluster->auth, len);
    c->out_len += len;
    c->fifo_head = (c->fifo_head + fifo_cap(t) - 1u) % fifo_cap(t);
    c->fifo[c->fifo_head] = RB_SLOT_AUTH;
    c->fifo_count++;
}

static void conn_on_connect(struct rb_thread *t, struct rb_conn *c, int32_t res)
{
    c->connect_pending = false;
    if (c->state != CONN_CONNECTING) {
        conn_settle(t, c);
        return;
    }
    if (res < 0) {
        conn_fail(t, c, "connect");
        return;
    }
    c->state = CONN_UP;
    c->ever_up = true;
    c->backoff_ms = 100;
    c->reconnect_ns = t->now_ns;
    conn_queue_auth(t, c);
    conn_arm_recv(t, c);
    if (c->out_len > 0) {
        conn_mark_dirty(t, c);
    }
}

static void conn_on_recv(struct rb_thread *t, struct rb_conn *c, int32_t res)
{
    c->recv_pending = false;
    if (c->state != CONN_UP) {
        conn_settle(t, c);
        return;
    }
    if (res == -EINTR || res == -EAGAIN) {
        conn_arm_recv(t, c);
        return;
    }
    if (res <= 0) {
        conn_fail(t, c, "closed");
        return;
    }
    conn_on_bytes(t, c, (size_t)res);
    if (c->state == CONN_UP) {
        conn_arm_recv(t, c);
    }
}

static void conn_on_send(struct rb_thread *t, struct rb_conn *c, int32_t res)
{
    c->send_pending = false;
    if (c->state != CONN_UP) {
        conn_settle(t, c);
        return;
    }
    if (res < 0 && res != -EINTR && res != -EAGAIN) {
        conn_fail(t, c, "closed");
        return;
    }
    uint32_t done = res > 0 ? (uint32_t)res : 0;
    RR_ASSERT(done <= c->out_sent);
    RR_ASSERT(c->out_sent <= c->out_len);
    memmove(c->out, c->out + done, c->out_len - done); /* the rest, and what came meanwhile */
    c->out_len -= done;
    c->out_sent = 0;
    if (c->out_len > 0) {
        conn_mark_dirty(t, c);
    }
}

void conn_handle_cqe(struct rb_thread *t, uint64_t user_data, int32_t res)
{
    uint32_t index = ud_index(user_data);
    RR_ASSERT(index < t->conn_count);
    struct rb_conn *c = &t->conns[index];
    RR_ASSERT(ud_gen(user_data) == (c->gen & UD_GEN_MASK));
    switch (ud_tag(user_data)) {
    case UD_CONNECT:
        conn_on_connect(t, c, res);
        break;
    case UD_RECV:
        conn_on_recv(t, c, res);
        break;
    case UD_SEND:
        conn_on_send(t, c, res);
        break;
    case UD_CANCEL:
        break;
    default:
        RR_ASSERT(0 && "unknown user_data tag");
    }
}

void conn_housekeeping(struct rb_thread *t)
{
    for (uint32_t i = 0; i < t->conn_count; i++) {
        struct rb_conn *c = &t->conns[i];
        if (c->fifo_count > 0) {
            const struct rb_client *cl = &t->clients[c->client];
            uint32_t head = c->fifo[c->fifo_head];
            uint64_t oldest = head == RB_SLOT_AUTH ? c->reconnect_ns : cl->req[head].sent_ns;
            if (t->now_ns - oldest >= t->run->timeout_ns && c->state != CONN_CLOSING) {
                conn_fail(t, c, "timeout");
            }
        }
        if (c->state == CONN_DOWN && t->now_ns >= c->reconnect_ns && !t->stopping) {
            conn_dial(t, c);
        } else if (c->state == CONN_DOWN && t->stopping && c->fifo_count > 0) {
            conn_fail(t, c, "connect"); /* no more dialling once stopping */
        }
    }
}

bool conn_all_settled(const struct rb_thread *t)
{
    for (uint32_t i = 0; i < t->conn_count; i++) {
        if (t->conns[i].state != CONN_UP && t->conns[i].state != CONN_DOWN) {
            return false;
        }
    }
    return true;
}

void conn_close_all(struct rb_thread *t)
{
    for (uint32_t i = 0; i < t->conn_count; i++) {
        struct rb_conn *c = &t->conns[i];
        if (c->fd >= 0) {
            close(c->fd);
        }
        free(c->out);
        free(c->in);
        free(c->fifo);
    }
    t->conn_count = 0;
}
