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

/* Text form, for merging histograms of separate runs or processes (the bench writes it to a
 * file and reads it back). ASCII, one line, decimal numbers separated by single spaces:
 *
 *     hist1 COUNT SUM MIN MAX N  D1 C1  D2 C2 ... DN CN
 *
 * N is the number of non-empty buckets; each follows as the distance of its index from the
 * previous non-empty bucket's (from 0 for the first) and its count. An empty histogram is
 * "hist1 0 0 18446744073709551615 0 0". The form is exact: decoding an encoding gives back
 * the same histogram, byte for byte. */
#define HIST_ENCODED_MAX (6u + 5u * 21u + HIST_BUCKET_COUNT * 2u * 21u)

/* Writes h's text form into buf (at most cap bytes, NUL-terminated when cap > 0, cut short
 * like snprintf) and returns its length without the NUL. A buffer of HIST_ENCODED_MAX + 1
 * bytes always suffices. */
uint64_t histogram_encode(const struct histogram *h, char *buf, uint64_t cap);
/* Parses the text form in text[0, len) into h (overwritten). Outside input: returns 0, or
 * RR_ECORRUPT when anything does not fit the form (bad token, bucket index out of range or
 * not increasing, a zero count, counts not adding up to COUNT, MIN or MAX outside the first
 * or last bucket, trailing bytes; a trailing newline is allowed), leaving h empty. */
int histogram_decode(struct histogram *h, const char *text, uint64_t len);

/* Bucket helpers, exposed for tests. */
uint32_t histogram_bucket_of(uint64_t value);
uint64_t histogram_bucket_low(uint32_t bucket);  /* smallest value in bucket */
uint64_t histogram_bucket_high(uint32_t bucket); /* largest value in bucket */

#endif
