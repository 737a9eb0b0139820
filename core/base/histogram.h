/* A log-linear latency histogram: values below 2^HIST_SUB_BITS are exact; above, each power of
 * two is split into 2^HIST_SUB_BITS linear buckets, so a reported percentile is within 1% of
 * the exact one. Fixed size, no allocation, mergeable. Pure: used by storage, io and bench. */
#ifndef RR_BASE_HISTOGRAM_H
#define RR_BASE_HISTOGRAM_H

#include <stdint.h>

#define HIST_SUB_BITS     7 /* 128 sub-buckets per power of two: error <= 1/256 at midpoint */
#define HIST_SUB_COUNT    (1u << HIST_SUB_BITS)
#define HIST_BUCKET_COUNT ((64u - HIST_SUB_BITS + 1u) * HIST_SUB_COUNT)

struct histogram {
    uint64_t count;                      /* values recorded */
    uint64_t sum;                        /* sum of values (wraps only past 2^64) */
    uint64_t min;                        /* smallest value; UINT64_MAX when empty */
    uint64_t max;                        /* largest value; 0 when empty */
    uint64_t buckets[HIST_BUCKET_COUNT]; /* per-bucket counts */
};

void histogram_init(struct histogram *h);
void histogram_record(struct histogram *h, uint64_t value);
void histogram_record_n(struct histogram *h, uint64_t value, uint64_t n);
/* Adds every value of src into dst. */
void histogram_merge(struct histogram *dst, const struct histogram *src);
/* Value at quantile q in [0, 1] (q = 0.99 for p99); 0 when empty. Within 1% of exact. */
uint64_t histogram_quantile(const struct histogram *h, double q);
/* Mean of recorded values; 0 when empty. */
double histogram_mean(const struct histogram *h);

/* Bucket helpers, exposed for tests. */
uint32_t histogram_bucket_of(uint64_t value);
uint64_t histogram_bucket_low(uint32_t bucket);  /* smallest value in bucket */
uint64_t histogram_bucket_high(uint32_t bucket); /* largest value in bucket */

#endif
