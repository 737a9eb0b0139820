#include "core/base/histogram.h"

#include <string.h>

#include "core/base/assert.h"

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
