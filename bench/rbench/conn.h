/* Connections of one ringraft-bench loop on its io_uring: dial, queue requests, send,
 * receive and parse replies, fail and reconnect. Every buffer is sized once (conn_open):
 * output for a full pipeline, input for one recv (the reply parser streams). */
#ifndef RB_CONN_H
#define RB_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "bench/rbench/thread.h"

/* A connection of client to node, dialled at once; its index, or -1 (table full, no
 * memory). */
int conn_open(struct rb_thread *t, uint32_t client, uint8_t node);
/* Where the next request's bytes go (room for request_max), or NULL while the connection is
 * closing (the caller tries again later). Then conn_commit with the bytes written. */
uint8_t *conn_reserve(struct rb_conn *c, size_t request_max);
void conn_commit(struct rb_thread *t, struct rb_conn *c, uint32_t slot, size_t len);
/* Starts a send on every connection with queued bytes and none in flight. */
void conn_flush(struct rb_thread *t);
/* Fails every request waiting on c with kind, closes c (once its operations are done) and
 * schedules a reconnect. */
void conn_fail(struct rb_thread *t, struct rb_conn *c, const char *kind);
/* Requests past --timeout fail (their connection with them); down connections are dialled
 * again when their backoff is over. */
void conn_housekeeping(struct rb_thread *t);
void conn_handle_cqe(struct rb_thread *t, uint64_t user_data, int32_t res);
/* True when every connection is up or has failed at least once (the start-up wait). */
bool conn_all_settled(const struct rb_thread *t);
/* At exit: closes every socket, frees every buffer. */
void conn_close_all(struct rb_thread *t);

#endif
