#include "core/base/histogram.h"

#include <stdbool.h>
#include <string.h>

#include "core/base/assert.h"
#include "core/base/errors.h"

/* Bucket layout: for value v < 2^SUB_BITS the bucket is v. Otherwise let e be the position of
 * v's top bit (e >= SUB_BITS); the bucket is (e - SUB_BITS + 1) * SUB_COUNT plus the SUB_BITS
 * bits below the top bit. A bucket then spans 2^(e - SUB_BITS) values, at most 1/128 of v. */

void histogram_init(struct histogram *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

uint32_t histogram_bucket_of(uint64_t value)
{
    if (value < HIST_SUB_COUNT) {
        return (uint32_t)value;
    }
    uint32_t top = 63u - (uint32_t)__builtin_clzll(value);
    uint32_t shift = top - HIST_SUB_BITS;
    uint32_t sub = (uint32_t)(value >> shift) & (HIST_SUB_COUNT - 1u);
    uint32_t bucket = (shift + 1u) * HIST_SUB_COUNT + sub;
    RR_ASSERT(bucket < HIST_BUCKET_COUNT);
    return bucket;
}

uint64_t histogram_bucket_low(uint32_t bucket)
{
    RR_ASSERT(bucket < HIST_BUCKET_COUNT);
    if (bucket < HIST_SUB_COUNT) {
        return bucket;
    }
    uint32_t shift = bucket / HIST_SUB_COUNT - 1u;
    uint64_t sub = bucket % HIST_SUB_COUNT;
    return (HIST_SUB_COUNT + sub) << shift;
}

uint64_t histogram_bucket_high(uint32_t bucket)
{
    RR_ASSERT(bucket < HIST_BUCKET_COUNT);
    if (bucket < HIST_SUB_COUNT) {
        return bucket;
    }
    uint32_t shift = bucket / HIST_SUB_COUNT - 1u;
    return histogram_bucket_low(bucket) + ((1ULL << shift) - 1u);
}

void histogram_record_n(struct histogram *h, uint64_t value, uint64_t n)
{
    if (n == 0) {
        return;
    }
    h->buckets[histogram_bucket_of(value)] += n;
    h->count += n;
    h->sum += value * n;
    if (value < h->min) {
        h->min = value;
    }
    if (value > h->max) {
        h->max = value;
    }
}

void histogram_record(struct histogram *h, uint64_t value)
{
    histogram_record_n(h, value, 1);
}

void histogram_merge(struct histogram *dst, const struct histogram *src)
{
    for (uint32_t i = 0; i < HIST_BUCKET_COUNT; i++) {
        dst->buckets[i] += src->buckets[i];
    }
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min) {
        dst->min = src->min;
    }
    if (src->max > dst->max) {
        dst->max = src->max;
    }
}

uint64_t histogram_quantile(const struct histogram *h, double q)
{
    if (h->count == 0) {
        return 0;
    }
    if (q <= 0.0) {
        return h->min;
    }
    if (q >= 1.0) {
        return h->max;
    }
    /* Rank of the wanted value, 1-based: the smallest value with at least q of all at or
     * below it (the "nearest rank" definition). */
    uint64_t rank = (uint64_t)(q * (double)h->count);
    if ((double)rank < q * (double)h->count) {
        rank++;
    }
    if (rank == 0) {
        rank = 1;
    }
    uint64_t seen = 0;
    for (uint32_t i = 0; i < HIST_BUCKET_COUNT; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            /* The midpoint halves the worst-case error; clamp to what was really seen. */
            uint64_t low = histogram_bucket_low(i);
            uint64_t mid = low + (histogram_bucket_high(i) - low) / 2;
            if (mid < h->min) {
                mid = h->min;
            }
            if (mid > h->max) {
                mid = h->max;
            }
            return mid;
        }
    }
    return h->max;
}

double histogram_mean(const struct histogram *h)
{
    return h->count == 0 ? 0.0 : (double)h->sum / (double)h->count;
}

/* ---- text form ---------------------------------------------------------------------------- */

/* Appends v in decimal, preceded by a space unless first. pos may run past cap (counted, not
 * written), so the caller learns the length needed. */
static uint64_t encode_u64(char *buf, uint64_t cap, uint64_t pos, uint64_t v, bool first)
{
    char digits[20];
    uint32_t n = 0;
    do {
        digits[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0);
    if (!first) {
        if (pos < cap) {
            buf[pos] = ' ';
        }
        pos++;
    }
    while (n > 0) {
        if (pos < cap) {
            buf[pos] = digits[n - 1];
        }
        pos++;
        n--;
    }
    return pos;
}

uint64_t histogram_encode(const struct histogram *h, char *buf, uint64_t cap)
{
    static const char magic[] = "hist1";
    uint64_t pos = 0;
    for (uint32_t i = 0; magic[i] != '\0'; i++, pos++) {
        if (pos < cap) {
            buf[pos] = magic[i];
        }
    }
    uint64_t nonempty = 0;
    for (uint32_t i = 0; i < HIST_BUCKET_COUNT; i++) {
        nonempty += h->buckets[i] != 0;
    }
    const uint64_t head[] = {h->count, h->sum, h->min, h->max, nonempty};
    for (uint32_t i = 0; i < sizeof(head) / sizeof(head[0]); i++) {
        pos = encode_u64(buf, cap, pos, head[i], false);
    }
    uint32_t prev = 0;
    for (uint32_t i = 0; i < HIST_BUCKET_COUNT; i++) {
        if (h->buckets[i] != 0) {
            pos = encode_u64(buf, cap, pos, i - prev, false);
            pos = encode_u64(buf, cap, pos, h->buckets[i], false);
            prev = i;
        }
    }
    RR_ASSERT(pos <= HIST_ENCODED_MAX);
    if (cap > 0) {
        buf[pos < cap ? pos : cap - 1] = '\0';
    }
    return pos;
}

/* Reads " <digits>" (or "<digits>" when first) at *pos into *v; false on a missing space,
 * no digit, a leading zero or a value past 2^64 - 1. */
static bool decode_u64(const char *text, uint64_t len, uint64_t *pos, bool first, uint64_t *v)
{
    uint64_t p = *pos;
    if (!first) {
        if (p >= len || text[p] != ' ') {
            return false;
        }
        p++;
    }
    uint64_t start = p;
    uint64_t value = 0;
    while (p < len && text[p] >= '0' && text[p] <= '9') {
        uint64_t d = (uint64_t)(text[p] - '0');
        if (value > (UINT64_MAX - d) / 10u) {
            return false;
        }
        value = value * 10u + d;
        p++;
    }
    if (p == start || (p - start > 1 && text[start] == '0')) {
        return false;
    }
    *pos = p;
    *v = value;
    return true;
}

/* The bucket list of the text form into h, checked; h's header fields are already set. */
static bool decode_buckets(
    struct histogram *h, const char *text, uint64_t len, uint64_t *pos, uint64_t nonempty)
{
    if (nonempty > HIST_BUCKET_COUNT) {
        return false;
    }
    uint64_t index = 0;
    uint64_t total = 0;
    uint64_t first = 0;
    for (uint64_t k = 0; k < nonempty; k++) {
        uint64_t delta = 0;
        uint64_t n = 0;
        if (!decode_u64(text, len, pos, false, &delta) || !decode_u64(text, len, pos, false, &n)) {
            return false;
        }
        if ((k > 0 && delta == 0) || delta >= HIST_BUCKET_COUNT - index || n == 0 ||
            n > UINT64_MAX - total) {
            return false;
        }
        index += delta;
        if (k == 0) {
            first = index;
        }
        h->buckets[index] = n;
        total += n;
    }
    if (total != h->count) {
        return false;
    }
    if (h->count == 0) {
        return h->min == UINT64_MAX && h->max == 0 && h->sum == 0;
    }
    return h->min <= h->max && histogram_bucket_of(h->min) == first &&
           histogram_bucket_of(h->max) == index;
}

int histogram_decode(struct histogram *h, const char *text, uint64_t len)
{
    histogram_init(h);
    static const char magic[] = "hist1";
    uint64_t pos = 0;
    for (; magic[pos] != '\0'; pos++) {
        if (pos >= len || text[pos] != magic[pos]) {
            return RR_ECORRUPT;
        }
    }
    uint64_t nonempty = 0;
    bool ok = decode_u64(text, len, &pos, false, &h->count) &&
              decode_u64(text, len, &pos, false, &h->sum) &&
              decode_u64(text, len, &pos, false, &h->min) &&
              decode_u64(text, len, &pos, false, &h->max) &&
              decode_u64(text, len, &pos, false, &nonempty) &&
              decode_buckets(h, text, len, &pos, nonempty);
    if (ok && pos < len && text[pos] == '\n') {
        pos++;
    }
    if (!ok || pos != len) {
        histogram_init(h);
        return RR_ECORRUPT;
    }
    return 0;
}
