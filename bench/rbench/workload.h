/* What ringraft-bench sends: the operation mix, the key choice (uniform or Zipf) and the
 * RESP encoding of each request. Pure: no I/O, no clock; randomness from the caller's PRNG. */
#ifndef RB_WORKLOAD_H
#define RB_WORKLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "core/base/prng.h"

enum rb_op {
    RB_OP_SET,    /* SET key:N value */
    RB_OP_GET,    /* GET key:N */
    RB_OP_INCR,   /* INCR counter:N */
    RB_OP_XADD,   /* XADD stream:N * f value */
    RB_OP_XRANGE, /* XRANGE stream:N - + COUNT c */
    RB_OP_XREAD,  /* XREAD COUNT c STREAMS stream:N 0-0 */
    RB_OP_COUNT
};

#define RB_KEY_MAX 32 /* "counter:" + 12+ digits; keys < 10^13 */

/* Rejection-inversion sampling of Zipf(n, s) (Hörmann and Derflinger 1996, as in Apache
 * Commons RNG): O(1) per draw, no table, any s > 0. */
struct rb_zipf {
    double s;       /* exponent */
    double n;       /* number of elements */
    double h_x1;    /* H(1.5) - 1 */
    double h_n;     /* H(n + 0.5) */
    double squeeze; /* the accept-at-once bound */
};

struct rb_workload {
    uint32_t weight[RB_OP_COUNT]; /* relative weight of each operation */
    uint32_t weight_total;        /* > 0 */
    uint64_t keys;                /* keys and counters: indexes [0, keys) */
    uint64_t streams;             /* streams: indexes [0, streams) */
    double zipf_s;                /* 0: uniform */
    struct rb_zipf zipf_keys;     /* when zipf_s > 0 */
    struct rb_zipf zipf_streams;  /* when zipf_s > 0 */
    uint32_t value_size;          /* SET and XADD value bytes */
    uint32_t count;               /* COUNT of XRANGE and XREAD */
    char *value;                  /* value_size bytes of 'x' (owned) */
};

/* Sets w up from --mix ("set", "get:90,set:10"), --dist ("uniform", "zipf:0.99") and the
 * sizes. 0, or 1 with the reason in err. */
int workload_init(struct rb_workload *w,
                  const char *mix,
                  const char *dist,
                  uint64_t keys,
                  uint64_t streams,
                  uint32_t value_size,
                  uint32_t count,
                  char *err,
                  size_t err_size);
void workload_free(struct rb_workload *w);

const char *workload_op_name(enum rb_op op);
/* The type byte of a successful reply: '+', '$', ':' or '*'. */
char workload_reply_type(enum rb_op op);

enum rb_op workload_pick_op(const struct rb_workload *w, struct rr_prng *p);
/* A key (or stream) index for op: uniform or Zipf (index 0 the most frequent). */
uint64_t workload_pick_key(const struct rb_workload *w, enum rb_op op, struct rr_prng *p);
/* The key's name ("key:000000000042") into buf[RB_KEY_MAX]; returns its length. */
size_t workload_key_name(enum rb_op op, uint64_t key, char *buf);
/* Bytes of the longest request encoding. */
size_t workload_request_max(const struct rb_workload *w);
/* Encodes op on key as a RESP multibulk into out (cap >= workload_request_max); returns the
 * bytes written. */
size_t
workload_encode(const struct rb_workload *w, enum rb_op op, uint64_t key, uint8_t *out, size_t cap);

/* "AUTH password" as a RESP multibulk into out (cap >= strlen(password) + 64); returns the
 * bytes written. */
size_t workload_encode_auth(const char *password, uint8_t *out, size_t cap);

void zipf_init(struct rb_zipf *z, uint64_t n, double s);
/* A value in [1, n]; 1 is the most frequent. */
uint64_t zipf_draw(const struct rb_zipf *z, struct rr_prng *p);

#endif
