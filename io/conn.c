/* Buffered sockets on the worker's ring: one recv and at most one send in flight per
 * connection, output double-buffered so new bytes never wait for a send to finish, every
 * buffer bounded. A connection is freed, and its fd closed, only once no SQE refers to them. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/base/assert.h"
#include "io/client.h"
#include "io/log.h"
#include "io/metrics.h"
#include "io/node.h"

#define CONN_IN_INITIAL  (16u << 10)
#define CONN_OUT_INITIAL (16u << 10)
#define CONN_RECV_MIN    (16u << 10)
/* What a connection's buffers keep. A burst grows them (at start-up a node's groups elect
 * their leaders at once and their messages leave in large batches); once the bytes are gone
 * the rest is given back: the input after a small read left nothing unconsumed, the output
 * by conn_trim (once a second for peers). Steady traffic keeps what it uses, up to
 * CONN_BUF_KEEP; a connection without traffic for a whole conn_trim period keeps only its
 * initial input buffer (a node with thousands of quiesced groups sends nothing for long
 * stretches, and every worker has a connection to every peer). */
#define CONN_BUF_KEEP (64u << 10)

/* Provided receive buffers for multishot recv: one ring per worker, shared by all its
 * connections. A completion names the buffer it filled; its bytes are copied into the
 * connection's input (which must be contiguous for the parsers) and the buffer goes back to
 * the ring at once. */
#define BUF_RING_ENTRIES 256
#define BUF_SIZE         (16u << 10)
#define BUF_GROUP        1

static uint64_t conn_next_id = 1; /* per thread is enough for uniqueness with the worker id */

struct conn *conn_new(struct worker *w, int fd, uint8_t kind, size_t in_max, size_t out_max)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->w = w;
    c->fd = fd;
    c->kind = kind;
    c->in_max = in_max;
    c->out_max = out_max;
    c->in_cap = CONN_IN_INITIAL;
    c->in = malloc(c->in_cap);
    if (c->in == NULL) {
        free(c);
        return NULL;
    }
    c->id = ((uint64_t)w->id << 48) | __atomic_fetch_add(&conn_next_id, 1, __ATOMIC_RELAXED);
    return c;
}

static void conn_free(struct conn *c)
{
    free(c->in);
    free(c->out[0].buf);
    free(c->out[1].buf);
    free(c);
}

/* Nothing in flight names the connection's fd: it may be closed. An operation that names an
 * fd may resolve the number only when it runs (IORING_OP_SHUTDOWN always goes to an io-wq
 * thread and looks the fd up there), so closing the fd before it completes would let it act
 * on whatever socket is given that number next. */
static bool conn_idle(const struct conn *c)
{
    return !c->recv_pending && !c->send_pending && !c->shutdown_pending;
}

static void conn_submit_close(struct conn *c)
{
    if (c->close_submitted) {
        return;
    }
    c->close_submitted = true;
    struct io_uring_sqe *sqe = worker_sqe(c->w);
    io_uring_prep_close(sqe, c->fd);
    io_uring_sqe_set_data64(sqe, UD_MAKE(UD_CLOSE, c));
}

void conn_settle(struct conn *c)
{
    if (c->closing && conn_idle(c)) {
        conn_submit_close(c);
    }
}

/* A lingering close: closing a socket whose receive queue holds unread bytes makes the
 * kernel send a reset, and a reset can destroy the answer (an error, a refusal) before
 * the peer reads it. So once the answer is sent, the write side is shut (the peer sees
 * EOF after the answer) and input is read and dropped until the peer closes, for at most
 * CONN_LINGER_MS and CONN_LINGER_MAX_BYTES. */
#define CONN_LINGER_MS        1000
#define CONN_LINGER_MAX_BYTES (256u * 1024)

static void conn_linger(struct conn *c)
{
    RR_ASSERT(!c->lingering && !c->closing);
    struct io_uring_sqe *sqe = worker_sqe(c->w);
    io_uring_prep_shutdown(sqe, c->fd, SHUT_WR);
    io_uring_sqe_set_data64(sqe, UD_MAKE(UD_SHUTDOWN, c));
    c->shutdown_pending = true;
    c->lingering = true;
    c->linger_until_ms = c->w->now_ms + CONN_LINGER_MS;
    c->linger_next = c->w->linger_list;
    c->w->linger_list = c;
    c->paused = false;
    conn_start_recv(c);
}

/* Input that arrives once the connection is to close (answered, lingering): dropped. */
static void conn_linger_discard(struct conn *c, size_t n)
{
    c->in_len = 0;
    c->linger_bytes += n;
    if (c->linger_bytes > CONN_LINGER_MAX_BYTES) {
        conn_close(c);
    }
}

void conn_linger_expire(struct worker *w)
{
    for (struct conn *c = w->linger_list; c != NULL; c = c->linger_next) {
        if (w->now_ms >= c->linger_until_ms) {
            conn_close(c); /* unlinked when the close completes */
        }
    }
}

static void conn_linger_unlink(struct conn *c)
{
    struct conn **pp = &c->w->linger_list;
    while (*pp != c) {
        pp = &(*pp)->linger_next;
    }
    *pp = c->linger_next;
    c->lingering = false;
}

/* The answer is sent: linger, or close at once when there is no socket left to shut. */
static void conn_flushed_close(struct conn *c)
{
    if (c->closing || c->lingering) {
        return;
    }
    conn_linger(c);
}

void conn_close_after_flush(struct conn *c)
{
    c->close_after_flush = true;
    c->paused = true; /* nothing more is read */
    if (conn_output_bytes(c) == 0 && !c->send_pending) {
        conn_flushed_close(c);
    }
}

void conn_close_fd(struct worker *w, int fd)
{
    struct io_uring_sqe *sqe = worker_sqe(w);
    io_uring_prep_close(sqe, fd);
    io_uring_sqe_set_data64(sqe, UD_MAKE(UD_IGNORE, 0));
}

void conn_refuse_fd(struct worker *w, int fd, const char *msg, size_t len)
{
    /* A hard link: the close runs whether or not the send went through. */
    struct io_uring_sqe *sqe = worker_sqe(w);
    io_uring_prep_send(sqe, fd, msg, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, UD_MAKE(UD_IGNORE, 0));
    sqe->flags |= IOSQE_IO_HARDLINK;
    conn_close_fd(w, fd);
}

void conn_close(struct conn *c)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    if (c->recv_pending || c->send_pending) {
        /* Cancel what is in flight; the close follows once both completions are in. */
        struct io_uring_sqe *sqe = worker_sqe(c->w);
        io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL);
        io_uring_sqe_set_data64(sqe, UD_MAKE(UD_IGNORE, 0));
        return;
    }
    conn_settle(c); /* or once a shutdown in flight has completed */
}

bool conn_setup_buffers(struct worker *w)
{
    size_t ring_bytes = BUF_RING_ENTRIES * sizeof(struct io_uring_buf);
    void *ring = NULL;
    if (posix_memalign(&ring, 4096, ring_bytes) != 0) {
        return false;
    }
    w->buf_base = malloc((size_t)BUF_RING_ENTRIES * BUF_SIZE);
    if (w->buf_base == NULL) {
        free(ring);
        return false;
    }
    memset(ring, 0, ring_bytes);
    struct io_uring_buf_reg reg = {.ring_addr = (uint64_t)(uintptr_t)ring,
                                   .ring_entries = BUF_RING_ENTRIES,
                                   .bgid = BUF_GROUP};
    int rc = io_uring_register_buf_ring(&w->ring, &reg, 0);
    if (rc != 0) {
        LOG_W("io_uring: provided buffer ring refused (%s); one recv per connection",
              strerror(-rc));
        free(ring);
        free(w->buf_base);
        w->buf_base = NULL;
        return false;
    }
    w->buf_ring = ring;
    io_uring_buf_ring_init(w->buf_ring);
    int mask = io_uring_buf_ring_mask(BUF_RING_ENTRIES);
    for (unsigned i = 0; i < BUF_RING_ENTRIES; i++) {
        io_uring_buf_ring_add(w->buf_ring, w->buf_base + (size_t)i * BUF_SIZE, BUF_SIZE,
                              (unsigned short)i, mask, (int)i);
    }
    io_uring_buf_ring_advance(w->buf_ring, BUF_RING_ENTRIES);
    return true;
}

/* The provided buffers are one block of plain user memory (the kernel copies into it, it
 * pins nothing), so a burst leaves all BUF_RING_ENTRIES * BUF_SIZE bytes resident: the
 * kernel takes buffers in ring order. When the worker has received nothing for a while
 * their pages are dropped (MADV_DONTNEED: the next write into one gets a zeroed page).
 * That must not race with the kernel filling a buffer: with DEFER_TASKRUN the kernel runs
 * a recv's completion work, and so copies into a buffer, only inside this thread's
 * io_uring_enter; and an empty CQ without overflow means every buffer it filled was copied
 * out and returned already. Without DEFER_TASKRUN the buffers are kept. */
void conn_release_buffers(struct worker *w)
{
    bool used = w->buf_used;
    w->buf_used = false;
    if (used) {
        w->buf_released = false;
        return;
    }
    if (!w->use_recv_multishot || w->buf_released ||
        (w->ring.flags & IORING_SETUP_DEFER_TASKRUN) == 0 || kernel_cq_pending(&w->ring)) {
        return;
    }
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)w->buf_base + page - 1) & ~(page - 1);
    uintptr_t hi = ((uintptr_t)w->buf_base + (size_t)BUF_RING_ENTRIES * BUF_SIZE) & ~(page - 1);
    if (hi > lo && madvise((void *)lo, hi - lo, MADV_DONTNEED) == 0) {
        w->buf_released = true;
    }
}

static void buffer_return(struct worker *w, unsigned short bid)
{
    io_uring_buf_ring_add(w->buf_ring, w->buf_base + (size_t)bid * BUF_SIZE, BUF_SIZE, bid,
                          io_uring_buf_ring_mask(BUF_RING_ENTRIES), 0);
    io_uring_buf_ring_advance(w->buf_ring, 1);
}

static void buffer_give_back(void *arg, unsigned short bid)
{
    buffer_return(arg, bid);
}

int conn_probe_recv_multishot(struct worker *w)
{
    return kernel_probe_multishot_recv(&w->ring, UD_MAKE(UD_IGNORE, 1), UD_MAKE(UD_IGNORE, 2),
                                       BUF_GROUP, buffer_give_back, w);
}

/* Makes room for n more input bytes (the limit plus one buffer of slack: a multishot recv
 * may deliver a buffer after the owner paused). */
static bool input_room(struct conn *c, size_t n)
{
    if (c->in_cap - c->in_len >= n) {
        return true;
    }
    size_t cap = c->in_cap * 2;
    while (cap - c->in_len < n) {
        cap *= 2;
    }
    if (cap > c->in_max + 2 * CONN_RECV_MIN) {
        cap = c->in_max + 2 * CONN_RECV_MIN;
    }
    if (cap - c->in_len < n) {
        return false;
    }
    uint8_t *in = realloc(c->in, cap);
    if (in == NULL) {
        return false;
    }
    c->in = in;
    c->in_cap = cap;
    return true;
}

void conn_pause(struct conn *c)
{
    c->paused = true;
    if (c->recv_pending && c->multishot && !c->cancel_sent && !c->closing) {
        struct io_uring_sqe *sqe = worker_sqe(c->w);
        io_uring_prep_cancel64(sqe, UD_MAKE(UD_RECV, c), 0);
        io_uring_sqe_set_data64(sqe, UD_MAKE(UD_IGNORE, 0));
        c->cancel_sent = true;
    }
}

void conn_start_recv(struct conn *c)
{
    if (c->recv_pending || c->closing || c->paused) {
        return;
    }
    if (c->w->use_recv_multishot) {
        if (c->in_len >= c->in_max && !c->close_after_flush) {
            return; /* the owner consumes first */
        }
        struct io_uring_sqe *sqe = worker_sqe(c->w);
        io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = BUF_GROUP;
        io_uring_sqe_set_data64(sqe, UD_MAKE(UD_RECV, c));
        c->recv_pending = true;
        c->multishot = true;
        c->cancel_sent = false;
        return;
    }
    if (c->close_after_flush) {
        /* What arrives now is dropped (conn_linger_discard): read over the whole buffer. */
        struct io_uring_sqe *sqe = worker_sqe(c->w);
        io_uring_prep_recv(sqe, c->fd, c->in, c->in_cap, 0);
        io_uring_sqe_set_data64(sqe, UD_MAKE(UD_RECV, c));
        c->recv_pending = true;
        return;
    }
    if (c->in_cap - c->in_len < CONN_RECV_MIN) {
        size_t cap = c->in_cap * 2;
        while (cap - c->in_len < CONN_RECV_MIN) {
            cap *= 2;
        }
        if (cap > c->in_max + CONN_RECV_MIN) {
            cap = c->in_max + CONN_RECV_MIN;
        }
        if (cap <= c->in_cap) {
            /* The input limit is reached: the owner stops reading until it consumes. */
            return;
        }
        uint8_t *in = realloc(c->in, cap);
        if (in == NULL) {
            LOG_W("connection %llx: out of memory for input; closing", (unsigned long long)c->id);
            conn_close(c);
            return;
        }
        c->in = in;
        c->in_cap = cap;
    }
    struct io_uring_sqe *sqe = worker_sqe(c->w);
    io_uring_prep_recv(sqe, c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
    io_uring_sqe_set_data64(sqe, UD_MAKE(UD_RECV, c));
    c->recv_pending = true;
}

void conn_consume(struct conn *c, size_t n)
{
    RR_ASSERT(n <= c->in_len);
    if (n == 0) {
        return;
    }
    memmove(c->in, c->in + n, c->in_len - n);
    c->in_len -= n;
}

/* After a read of `res` bytes was consumed: an input buffer grown by a burst shrinks back
 * once a read much smaller than it leaves it empty (a failed realloc keeps it). */
static void conn_shrink_input(struct conn *c, size_t res)
{
    if (c->in_len > 0 || c->in_cap <= CONN_BUF_KEEP || res * 4 > c->in_cap) {
        return;
    }
    uint8_t *in = realloc(c->in, CONN_IN_INITIAL);
    if (in != NULL) {
        c->in = in;
        c->in_cap = CONN_IN_INITIAL;
    }
}

void conn_trim(struct conn *c)
{
    bool idle = !c->busy;
    c->busy = false;
    if (c->closing) {
        return;
    }
    /* A one-shot recv in flight writes into the input buffer: it stays. A multishot recv
     * writes into the worker's provided buffers. */
    bool input_free = !c->recv_pending || c->multishot;
    if (idle && input_free && c->in_len == 0 && c->in_cap > CONN_IN_INITIAL) {
        uint8_t *in = realloc(c->in, CONN_IN_INITIAL);
        if (in != NULL) {
            c->in = in;
            c->in_cap = CONN_IN_INITIAL;
        }
    }
    if (c->send_pending) {
        return;
    }
    for (int k = 0; k < 2; k++) {
        struct conn_buf *o = &c->out[k];
        if (o->len == 0 && (o->cap > CONN_BUF_KEEP || (idle && o->cap > 0))) {
            free(o->buf);
            o->buf = NULL;
            o->cap = 0;
        }
    }
}

size_t conn_output_bytes(const struct conn *c)
{
    return c->out[0].len + c->out[1].len - c->sent;
}

uint8_t *conn_reserve(struct conn *c, size_t n)
{
    if (c->closing || conn_output_bytes(c) + n > c->out_max) {
        return NULL;
    }
    struct conn_buf *o = &c->out[c->fill];
    if (o->cap - o->len < n) {
        size_t cap = o->cap ? o->cap : CONN_OUT_INITIAL;
        while (cap - o->len < n) {
            cap *= 2;
        }
        uint8_t *buf = realloc(o->buf, cap);
        if (buf == NULL) {
            return NULL;
        }
        o->buf = buf;
        o->cap = cap;
    }
    uint8_t *p = o->buf + o->len;
    o->len += n;
    c->busy = true;
    conn_flush_later(c);
    return p;
}

bool conn_write(struct conn *c, const void *p, size_t n)
{
    uint8_t *dst = conn_reserve(c, n);
    if (dst == NULL) {
        return false;
    }
    memcpy(dst, p, n);
    return true;
}

void conn_flush_later(struct conn *c)
{
    if (!c->queued) {
        c->queued = true;
        c->next = c->w->flush_list;
        c->w->flush_list = c;
    }
}

static void conn_submit_send(struct conn *c)
{
    if (c->send_pending || c->closing) {
        return;
    }
    uint8_t sending = (uint8_t)!c->fill;
    if (c->out[sending].len == c->sent) {
        /* Nothing left in the sending buffer: swap if the other has bytes. */
        c->out[sending].len = 0;
        c->sent = 0;
        if (c->out[c->fill].len == 0) {
            return;
        }
        if (c->kind == CONN_PEER && c->owner != NULL && ((struct peer *)c->owner)->conn == c) {
            /* Its output is about to be sent: a forward batch in it is finished first. */
            peer_batch_close(c->owner);
        }
        c->fill = sending;
        sending = (uint8_t)!c->fill;
        if (c->kind == CONN_PEER && c->out[sending].frames > 0) {
            /* A new send batch: what was queued while the last one was in flight (or since
             * the loop iteration began, net-batching adaptive). The handshake is no frame. */
            histogram_record(&c->w->peer_send_frames, c->out[sending].frames);
            c->out[sending].frames = 0;
        }
    }
    struct io_uring_sqe *sqe = worker_sqe(c->w);
    io_uring_prep_send(sqe, c->fd, c->out[sending].buf + c->sent, c->out[sending].len - c->sent,
                       MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, UD_MAKE(UD_SEND, c));
    c->send_pending = true;
    if (c->kind == CONN_PEER) {
        c->w->st.peer_sends++;
    }
}

void conn_send_now(struct conn *c)
{
    conn_submit_send(c);
}

void conn_flush_all(struct worker *w)
{
    struct conn *c = w->flush_list;
    w->flush_list = NULL;
    while (c != NULL) {
        struct conn *next = c->next;
        c->queued = false;
        conn_submit_send(c);
        c = next;
    }
}

/* New input for the connection's owner. */
static void conn_on_recv(struct conn *c)
{
    switch ((enum conn_kind)c->kind) {
    case CONN_CLIENT:
        client_on_recv(c);
        break;
    case CONN_PEER:
        peer_on_recv(c);
        break;
    case CONN_METRICS:
        metrics_on_recv(c);
        break;
    }
}

void conn_handle_cqe(struct worker *w, uint8_t tag, struct conn *c, int res, uint32_t flags)
{
    switch (tag) {
    case UD_RECV:
        if (c->multishot) {
            if ((flags & IORING_CQE_F_BUFFER) != 0) {
                unsigned short bid = (unsigned short)(flags >> IORING_CQE_BUFFER_SHIFT);
                w->buf_used = true;
                if (res > 0 && !c->closing && c->close_after_flush) {
                    conn_linger_discard(c, (size_t)res);
                } else if (res > 0 && !c->closing) {
                    if (input_room(c, (size_t)res)) {
                        memcpy(c->in + c->in_len, w->buf_base + (size_t)bid * BUF_SIZE,
                               (size_t)res);
                        c->in_len += (size_t)res;
                        c->busy = true;
                    } else {
                        LOG_W("connection %llx: input over its limit; closing",
                              (unsigned long long)c->id);
                        buffer_return(w, bid);
                        conn_close(c);
                        break;
                    }
                }
                buffer_return(w, bid);
            }
            bool more = (flags & IORING_CQE_F_MORE) != 0;
            if (!more) {
                c->recv_pending = false;
                c->multishot = false;
            }
            if (c->closing) {
                break;
            }
            if (res == 0 || (res < 0 && res != -ENOBUFS && res != -ECANCELED && res != -EINTR &&
                             res != -EAGAIN)) {
                conn_close(c);
                break;
            }
            if (res > 0 && !c->close_after_flush) {
                conn_on_recv(c);
                if (!c->closing) {
                    conn_shrink_input(c, (size_t)res); /* the kernel writes elsewhere */
                }
            }
            if (!c->closing && !c->recv_pending) {
                conn_start_recv(c); /* ended (no buffers, cancelled for a pause, ...) */
            }
            break;
        }
        c->recv_pending = false;
        if (c->closing) {
            break;
        }
        if (res <= 0) {
            if (res == -EAGAIN || res == -EINTR || res == -ENOBUFS) {
                conn_start_recv(c);
                return;
            }
            conn_close(c);
            break;
        }
        if (c->close_after_flush) {
            conn_linger_discard(c, (size_t)res);
            conn_start_recv(c);
            break;
        }
        c->in_len += (size_t)res;
        c->busy = true;
        conn_on_recv(c);
        if (!c->closing) {
            conn_shrink_input(c, (size_t)res);
            conn_start_recv(c);
        }
        break;
    case UD_SEND:
        c->send_pending = false;
        if (c->closing) {
            break;
        }
        if (res < 0) {
            if (res == -EAGAIN || res == -EINTR) {
                conn_submit_send(c);
                return;
            }
            conn_close(c);
            break;
        }
        c->sent += (size_t)res;
        conn_submit_send(c);
        if (c->close_after_flush && !c->send_pending) {
            conn_flushed_close(c);
            break;
        }
        if (c->kind == CONN_CLIENT && !c->send_pending) {
            client_on_sent(c); /* a client paused for output room may read again */
        }
        break;
    case UD_SHUTDOWN:
        /* Its result does not matter: the peer sees EOF, or the socket is gone already. */
        c->shutdown_pending = false;
        break;
    case UD_CLOSE:
        if (c->queued) {
            /* Still on the flush list (queued before it closed): unlink before freeing. */
            struct conn **pp = &c->w->flush_list;
            while (*pp != c) {
                pp = &(*pp)->next;
            }
            *pp = c->next;
            c->queued = false;
        }
        if (c->lingering) {
            conn_linger_unlink(c);
        }
        if (c->kind == CONN_CLIENT) {
            client_on_closed(c);
        } else if (c->kind == CONN_PEER) {
            peer_on_closed(c);
        }
        conn_free(c);
        return;
    default:
        RR_ASSERT(false);
    }
    if (c->closing && conn_idle(c)) {
        conn_submit_close(c);
    }
}
