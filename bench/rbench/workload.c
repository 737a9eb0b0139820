/* What ringraft-bench sends. Key names follow redis-benchmark's (key:NNNNNNNNNNNN with 12
 * digits, counter:... for INCR), so the two tools touch the same keys for the same -r/--keys;
 * values are 'x' repeated, as redis-benchmark's -d. */
#include "bench/rbench/workload.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/base/assert.h"

static const char *const op_names[RB_OP_COUNT] = {"set", "get", "incr", "xadd", "xrange", "xread"};
static const char op_reply_type[RB_OP_COUNT] = {'+', '$', ':', '$', '*', '*'};

const char *workload_op_name(enum rb_op op)
{
    RR_ASSERT(op < RB_OP_COUNT);
    return op_names[op];
}

char workload_reply_type(enum rb_op op)
{
    RR_ASSERT(op < RB_OP_COUNT);
    return op_reply_type[op];
}

/* ---- Zipf ----------------------------------------------------------------------------------- */

static double zipf_helper1(double x) /* log1p(x) / x, stable near 0 */
{
    return fabs(x) > 1e-8 ? log1p(x) / x : 1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x));
}

static double zipf_helper2(double x) /* expm1(x) / x, stable near 0 */
{
    return fabs(x) > 1e-8 ? expm1(x) / x : 1.0 + x * 0.5 * (1.0 + x / 3.0 * (1.0 + 0.25 * x));
}

static double zipf_h(const struct rb_zipf *z, double x)
{
    return exp(-z->s * log(x));
}

static double zipf_h_integral(const struct rb_zipf *z, double x)
{
    double log_x = log(x);
    return zipf_helper2((1.0 - z->s) * log_x) * log_x;
}

static double zipf_h_integral_inverse(const struct rb_zipf *z, double x)
{
    double t = x * (1.0 - z->s);
    if (t < -1.0) {
        t = -1.0;
    }
    return exp(zipf_helper1(t) * x);
}

void zipf_init(struct rb_zipf *z, uint64_t n, double s)
{
    RR_ASSERT(n >= 1);
    RR_ASSERT(s > 0.0);
    z->s = s;
    z->n = (double)n;
    z->h_x1 = zipf_h_integral(z, 1.5) - 1.0;
    z->h_n = zipf_h_integral(z, z->n + 0.5);
    z->squeeze = 2.0 - zipf_h_integral_inverse(z, zipf_h_integral(z, 2.5) - zipf_h(z, 2.0));
}

uint64_t zipf_draw(const struct rb_zipf *z, struct rr_prng *p)
{
    /* Accepts with probability > 0.9 for every n and s, so a bound of 1000 tries is never
     * reached in practice; past it the last candidate is returned (still in range). */
    double k = 1.0;
    for (int tries = 0; tries < 1000; tries++) {
        double r = (double)(rr_prng_next(p) >> 11) * 0x1.0p-53;
        double u = z->h_n + r * (z->h_x1 - z->h_n);
        double x = zipf_h_integral_inverse(z, u);
        k = floor(x + 0.5);
        if (k < 1.0) {
            k = 1.0;
        } else if (k > z->n) {
            k = z->n;
        }
        if (k - x <= z->squeeze || u >= zipf_h_integral(z, k + 0.5) - zipf_h(z, k)) {
            break;
        }
    }
    return (uint64_t)k;
}

/* ---- set-up --------------------------------------------------------------------------------- */

static int
parse_mix_item(struct rb_workload *w, const char *item, size_t len, char *err, size_t err_size)
{
    const char *colon = memchr(item, ':', len);
    size_t name_len = colon != NULL ? (size_t)(colon - item) : len;
    uint32_t weight = 1;
    if (colon != NULL) {
        char num[16];
        size_t num_len = len - name_len - 1;
        char *end = NULL;
        if (num_len == 0 || num_len >= sizeof(num)) {
            snprintf(err, err_size, "bad weight in --mix item '%.*s'", (int)len, item);
            return 1;
        }
        memcpy(num, colon + 1, num_len);
        num[num_len] = '\0';
        unsigned long v = strtoul(num, &end, 10);
        if (*end != '\0' || num[0] == '-' || v > 1000000) {
            snprintf(err, err_size, "bad weight in --mix item '%.*s'", (int)len, item);
            return 1;
        }
        weight = (uint32_t)v;
    }
    for (int op = 0; op < RB_OP_COUNT; op++) {
        if (strlen(op_names[op]) == name_len && strncasecmp(op_names[op], item, name_len) == 0) {
            w->weight[op] += weight;
            w->weight_total += weight;
            return 0;
        }
    }
    snprintf(err, err_size, "unknown operation '%.*s' (set, get, incr, xadd, xrange, xread)",
             (int)name_len, item);
    return 1;
}

static int parse_mix(struct rb_workload *w, const char *mix, char *err, size_t err_size)
{
    const char *p = mix;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (len == 0 || parse_mix_item(w, p, len, err, err_size) != 0) {
            if (len == 0) {
                snprintf(err, err_size, "empty item in --mix '%s'", mix);
            }
            return 1;
        }
        if (comma == NULL) {
            break;
        }
        p = comma + 1;
    }
    if (w->weight_total == 0) {
        snprintf(err, err_size, "--mix '%s' has no weight", mix);
        return 1;
    }
    return 0;
}

static int parse_dist(struct rb_workload *w, const char *dist, char *err, size_t err_size)
{
    if (strcmp(dist, "uniform") == 0) {
        w->zipf_s = 0.0;
        return 0;
    }
    char *end = NULL;
    if (strncmp(dist, "zipf:", 5) == 0) {
        double s = strtod(dist + 5, &end);
        if (end != dist + 5 && *end == '\0' && s > 0.0 && s <= 10.0) {
            w->zipf_s = s;
            zipf_init(&w->zipf_keys, w->keys, s);
            zipf_init(&w->zipf_streams, w->streams, s);
            return 0;
        }
    }
    snprintf(err, err_size, "--dist '%s': expected uniform or zipf:S with 0 < S <= 10", dist);
    return 1;
}

int workload_init(struct rb_workload *w,
                  const char *mix,
                  const char *dist,
                  uint64_t keys,
                  uint64_t streams,
                  uint32_t value_size,
                  uint32_t count,
                  char *err,
                  size_t err_size)
{
    memset(w, 0, sizeof(*w));
    w->keys = keys;
    w->streams = streams;
    w->value_size = value_size;
    w->count = count;
    if (parse_mix(w, mix, err, err_size) != 0 || parse_dist(w, dist, err, err_size) != 0) {
        return 1;
    }
    w->value = malloc(value_size + 1u);
    if (w->value == NULL) {
        snprintf(err, err_size, "out of memory");
        return 1;
    }
    memset(w->value, 'x', value_size);
    w->value[value_size] = '\0';
    return 0;
}

void workload_free(struct rb_workload *w)
{
    free(w->value);
    w->value = NULL;
}

/* ---- per request ---------------------------------------------------------------------------- */

enum rb_op workload_pick_op(const struct rb_workload *w, struct rr_prng *p)
{
    uint64_t r = rr_prng_range(p, 0, w->weight_total);
    for (int op = 0; op < RB_OP_COUNT; op++) {
        if (r < w->weight[op]) {
            return (enum rb_op)op;
        }
        r -= w->weight[op];
    }
    RR_ASSERT(0 && "weights add up to weight_total");
    return RB_OP_SET;
}

static bool op_is_stream(enum rb_op op)
{
    return op == RB_OP_XADD || op == RB_OP_XRANGE || op == RB_OP_XREAD;
}

uint64_t workload_pick_key(const struct rb_workload *w, enum rb_op op, struct rr_prng *p)
{
    bool stream = op_is_stream(op);
    if (w->zipf_s > 0.0) {
        return zipf_draw(stream ? &w->zipf_streams : &w->zipf_keys, p) - 1u;
    }
    return rr_prng_range(p, 0, stream ? w->streams : w->keys);
}

/* Decimal digits of v into out, at least `width` of them (zero-padded); returns the count. */
static size_t put_digits(char *out, uint64_t v, size_t width)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0);
    while (n < width) {
        tmp[n++] = '0';
    }
    for (size_t i = 0; i < n; i++) {
        out[i] = tmp[n - 1 - i];
    }
    return n;
}

size_t workload_key_name(enum rb_op op, uint64_t key, char *buf)
{
    const char *prefix = op == RB_OP_INCR ? "counter:" : op_is_stream(op) ? "stream:" : "key:";
    size_t len = strlen(prefix);
    memcpy(buf, prefix, len);
    len += put_digits(buf + len, key, 12);
    RR_ASSERT(len < RB_KEY_MAX);
    buf[len] = '\0';
    return len;
}

size_t workload_request_max(const struct rb_workload *w)
{
    /* XADD: 5 arguments, headers of at most 16 bytes each, the key, the value. */
    return 6u * 16u + RB_KEY_MAX + w->value_size + 64u;
}

struct enc {
    uint8_t *p;
};

static void enc_bytes(struct enc *e, const void *data, size_t len)
{
    memcpy(e->p, data, len);
    e->p += len;
}

static void enc_header(struct enc *e, char kind, uint64_t n)
{
    *e->p++ = (uint8_t)kind;
    e->p += put_digits((char *)e->p, n, 0);
    *e->p++ = '\r';
    *e->p++ = '\n';
}

static void enc_arg(struct enc *e, const void *data, size_t len)
{
    enc_header(e, '$', len);
    enc_bytes(e, data, len);
    enc_bytes(e, "\r\n", 2);
}

static void enc_str(struct enc *e, const char *s)
{
    enc_arg(e, s, strlen(s));
}

size_t
workload_encode(const struct rb_workload *w, enum rb_op op, uint64_t key, uint8_t *out, size_t cap)
{
    RR_ASSERT(cap >= workload_request_max(w));
    char name[RB_KEY_MAX];
    size_t name_len = workload_key_name(op, key, name);
    char count[24];
    count[put_digits(count, w->count, 0)] = '\0';
    struct enc e = {out};
    static const uint8_t argc[RB_OP_COUNT] = {3, 2, 2, 5, 6, 6};
    enc_header(&e, '*', argc[op]);
    switch (op) {
    case RB_OP_SET:
    case RB_OP_GET:
    case RB_OP_INCR:
        enc_str(&e, op == RB_OP_SET ? "SET" : op == RB_OP_GET ? "GET" : "INCR");
        enc_arg(&e, name, name_len);
        if (op == RB_OP_SET) {
            enc_arg(&e, w->value, w->value_size);
        }
        break;
    case RB_OP_XADD:
        enc_str(&e, "XADD");
        enc_arg(&e, name, name_len);
        enc_str(&e, "*");
        enc_str(&e, "f");
        enc_arg(&e, w->value, w->value_size);
        break;
    case RB_OP_XRANGE:
        enc_str(&e, "XRANGE");
        enc_arg(&e, name, name_len);
        enc_str(&e, "-");
        enc_str(&e, "+");
        enc_str(&e, "COUNT");
        enc_str(&e, count);
        break;
    case RB_OP_XREAD:
        enc_str(&e, "XREAD");
        enc_str(&e, "COUNT");
        enc_str(&e, count);
        enc_str(&e, "STREAMS");
        enc_arg(&e, name, name_len);
        enc_str(&e, "0-0");
        break;
    case RB_OP_COUNT:
        RR_ASSERT(0 && "not an operation");
        break;
    }
    size_t len = (size_t)(e.p - out);
    RR_ASSERT(len <= workload_request_max(w));
    return len;
}

size_t workload_encode_auth(const char *password, uint8_t *out, size_t cap)
{
    size_t len = strlen(password);
    RR_ASSERT(cap >= len + 64u);
    struct enc e = {out};
    enc_header(&e, '*', 2);
    enc_str(&e, "AUTH");
    enc_arg(&e, password, len);
    return (size_t)(e.p - out);
}
