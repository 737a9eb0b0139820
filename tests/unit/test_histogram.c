/* Histogram tests: percentiles against exact ones from sorted samples for several
 * distributions, merging, the empty histogram, the bucket layout, and the text form
 * (round trips, merging decoded histograms, truncation, malformed input). */
/* cmocka.h needs these four first, in this order. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <stdlib.h>
#include <string.h>

#include "core/base/errors.h"
#include "core/base/histogram.h"
#include "core/base/prng.h"

#define SAMPLES 200000u

static const double quantiles[] = {0.0, 0.5, 0.9, 0.99, 0.999, 1.0};

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted[0..n): the smallest value with at least q of all values
 * at or below it (ceil(q * n), at least 1), which is what the histogram approximates. */
static uint64_t exact_quantile(const uint64_t *sorted, size_t n, double q)
{
    double want = q * (double)n;
    size_t rank = (size_t)want;
    if ((double)rank < want) {
        rank++;
    }
    if (rank == 0) {
        rank = 1;
    }
    if (rank > n) {
        rank = n;
    }
    return sorted[rank - 1];
}

/* |got - exact| <= exact / 100, computed without overflow near 2^64. */
static void assert_within_1pct(uint64_t got, uint64_t exact, double q)
{
    uint64_t diff = got > exact ? got - exact : exact - got;
    if (diff > exact / 100) {
        fail_msg("q=%g: got %llu, exact %llu", q, (unsigned long long)got,
                 (unsigned long long)exact);
    }
}

/* Records values[0..n) into a histogram and checks every quantile, mean, min and max. */
static void check_against_sorted(uint64_t *values, size_t n)
{
    static struct histogram h;
    histogram_init(&h);
    long double sum = 0;
    for (size_t i = 0; i < n; i++) {
        histogram_record(&h, values[i]);
        sum += (long double)values[i];
    }
    qsort(values, n, sizeof(*values), cmp_u64);
    assert_int_equal(h.count, n);
    assert_true(h.min == values[0]);
    assert_true(h.max == values[n - 1]);
    for (size_t i = 0; i < sizeof(quantiles) / sizeof(quantiles[0]); i++) {
        double q = quantiles[i];
        assert_within_1pct(histogram_quantile(&h, q), exact_quantile(values, n, q), q);
    }
    /* The sum wraps past 2^64 (documented); compare the mean only when it did not. */
    if (sum < 18446744073709551615.0L) {
        double mean = (double)(sum / (long double)n);
        double got = histogram_mean(&h);
        assert_true(got >= mean * 0.999999 && got <= mean * 1.000001);
    }
}

typedef uint64_t (*draw_fn)(struct rr_prng *p);

static void check_distribution(draw_fn draw, uint64_t seed)
{
    uint64_t *values = malloc(SAMPLES * sizeof(*values));
    assert_non_null(values);
    struct rr_prng p;
    rr_prng_seed(&p, seed);
    for (size_t i = 0; i < SAMPLES; i++) {
        values[i] = draw(&p);
    }
    check_against_sorted(values, SAMPLES);
    /* Small samples too: there a single value decides each percentile. */
    for (size_t n = 1; n <= 64; n++) {
        for (size_t i = 0; i < n; i++) {
            values[i] = draw(&p);
        }
        check_against_sorted(values, n);
    }
    free(values);
}

static uint64_t draw_uniform(struct rr_prng *p)
{
    return rr_prng_range(p, 0, 1000000000u);
}

/* Heavy right tail: a base value times 2^k with k geometric (P(k) = 2^-(k+1)), the shape of
 * latencies with rare long stalls. */
static uint64_t draw_exponential(struct rr_prng *p)
{
    uint64_t r = rr_prng_next(p) | (1ULL << 40);
    unsigned k = (unsigned)__builtin_ctzll(r);
    return (rr_prng_range(p, 1, 1000) << k) + rr_prng_range(p, 0, 1ULL << k);
}

/* Fast path around 100 us, slow path around 50 ms (e.g. fsync). */
static uint64_t draw_bimodal(struct rr_prng *p)
{
    if (rr_prng_chance(p, 900000)) {
        return rr_prng_range(p, 95000, 105000);
    }
    return rr_prng_range(p, 45000000, 55000000);
}

static uint64_t draw_huge(struct rr_prng *p)
{
    uint64_t r = rr_prng_next(p);
    if (r % 4 == 0) {
        return UINT64_MAX - rr_prng_range(p, 0, 1ULL << 50);
    }
    return (1ULL << 63) - (1ULL << 40) + rr_prng_range(p, 0, 1ULL << 41);
}

static uint64_t draw_small(struct rr_prng *p)
{
    return rr_prng_range(p, 0, 300); /* crosses the exact range (< 128) */
}

static void test_uniform(void **state)
{
    (void)state;
    check_distribution(draw_uniform, 1);
}

static void test_exponential(void **state)
{
    (void)state;
    check_distribution(draw_exponential, 2);
}

static void test_bimodal(void **state)
{
    (void)state;
    check_distribution(draw_bimodal, 3);
}

static void test_huge_values(void **state)
{
    (void)state;
    check_distribution(draw_huge, 4);
}

static void test_small_values_exact(void **state)
{
    (void)state;
    check_distribution(draw_small, 5);
    /* Below 2^HIST_SUB_BITS every value has its own bucket: percentiles are exact. */
    static struct histogram h;
    histogram_init(&h);
    for (uint64_t v = 0; v < HIST_SUB_COUNT; v++) {
        histogram_record(&h, v);
    }
    for (uint64_t v = 1; v <= HIST_SUB_COUNT; v++) {
        double q = (double)v / HIST_SUB_COUNT;
        assert_int_equal(histogram_quantile(&h, q), v - 1);
    }
}

static void test_all_equal(void **state)
{
    (void)state;
    const uint64_t values[] = {0, 1, 127, 128, 12345, 1ULL << 63, UINT64_MAX};
    static struct histogram h;
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        histogram_init(&h);
        histogram_record_n(&h, values[i], 1000000);
        for (size_t k = 0; k < sizeof(quantiles) / sizeof(quantiles[0]); k++) {
            assert_true(histogram_quantile(&h, quantiles[k]) == values[i]); /* clamped: exact */
        }
        assert_true(h.min == values[i]);
        assert_true(h.max == values[i]);
    }
}

static void test_record_n_equals_repeated_record(void **state)
{
    (void)state;
    static struct histogram a;
    static struct histogram b;
    histogram_init(&a);
    histogram_init(&b);
    const uint64_t values[] = {3, 200, 99999, 1ULL << 50};
    for (size_t i = 0; i < 4; i++) {
        histogram_record_n(&a, values[i], i + 1);
        for (size_t k = 0; k <= i; k++) {
            histogram_record(&b, values[i]);
        }
    }
    histogram_record_n(&a, 0, 0); /* n = 0 records nothing, not even min/max */
    histogram_record_n(&a, UINT64_MAX, 0);
    assert_memory_equal(&a, &b, sizeof(a));
}

static void test_merge_equals_single(void **state)
{
    (void)state;
    static struct histogram parts[4];
    static struct histogram all;
    static struct histogram merged;
    for (int i = 0; i < 4; i++) {
        histogram_init(&parts[i]);
    }
    histogram_init(&all);
    histogram_init(&merged);
    struct rr_prng p;
    rr_prng_seed(&p, 6);
    for (uint32_t i = 0; i < SAMPLES; i++) {
        uint64_t v = i % 3 == 0 ? draw_huge(&p) : draw_exponential(&p);
        histogram_record(&all, v);
        histogram_record(&parts[rr_prng_range(&p, 0, 3)], v); /* parts[3] stays empty */
    }
    for (int i = 0; i < 4; i++) {
        histogram_merge(&merged, &parts[i]);
    }
    assert_memory_equal(&merged, &all, sizeof(all));
    for (size_t k = 0; k < sizeof(quantiles) / sizeof(quantiles[0]); k++) {
        assert_true(histogram_quantile(&merged, quantiles[k]) ==
                    histogram_quantile(&all, quantiles[k]));
    }
    /* Merging an empty histogram changes nothing. */
    histogram_merge(&merged, &parts[3]);
    assert_memory_equal(&merged, &all, sizeof(all));
}

static void test_empty(void **state)
{
    (void)state;
    static struct histogram h;
    histogram_init(&h);
    assert_int_equal(h.count, 0);
    assert_true(h.min == UINT64_MAX);
    assert_int_equal(h.max, 0);
    for (size_t k = 0; k < sizeof(quantiles) / sizeof(quantiles[0]); k++) {
        assert_int_equal(histogram_quantile(&h, quantiles[k]), 0);
    }
    assert_true(histogram_mean(&h) == 0.0);
    static struct histogram e;
    histogram_init(&e);
    histogram_merge(&h, &e);
    assert_memory_equal(&h, &e, sizeof(h));
    histogram_record(&e, 5);
    histogram_merge(&h, &e); /* into an empty one */
    assert_memory_equal(&h, &e, sizeof(h));
}

/* Buckets tile [0, 2^64) in order with no gap or overlap, each at most 1/128 of its values
 * wide, and bucket_of agrees with low/high. */
static void test_bucket_layout(void **state)
{
    (void)state;
    assert_int_equal(histogram_bucket_low(0), 0);
    assert_true(histogram_bucket_high(HIST_BUCKET_COUNT - 1) == UINT64_MAX);
    for (uint32_t b = 0; b < HIST_BUCKET_COUNT; b++) {
        uint64_t low = histogram_bucket_low(b);
        uint64_t high = histogram_bucket_high(b);
        assert_true(low <= high);
        assert_int_equal(histogram_bucket_of(low), b);
        assert_int_equal(histogram_bucket_of(high), b);
        assert_int_equal(histogram_bucket_of(low + (high - low) / 2), b);
        if (b + 1 < HIST_BUCKET_COUNT) {
            assert_true(histogram_bucket_low(b + 1) == high + 1);
        }
        if (b < HIST_SUB_COUNT) {
            assert_true(low == b && high == b);
        } else {
            assert_true(high - low + 1 <= low / HIST_SUB_COUNT);
        }
    }
    struct rr_prng p;
    rr_prng_seed(&p, 7);
    for (uint32_t i = 0; i < 1000000; i++) {
        uint64_t v = rr_prng_next(&p) >> rr_prng_range(&p, 0, 64);
        uint32_t b = histogram_bucket_of(v);
        assert_true(b < HIST_BUCKET_COUNT);
        assert_true(histogram_bucket_low(b) <= v);
        assert_true(v <= histogram_bucket_high(b));
    }
}

/* Encodes h into a fresh buffer, decodes it back, and checks the copy is identical. Returns
 * the text (caller frees). */
static char *round_trip(const struct histogram *h)
{
    uint64_t need = histogram_encode(h, NULL, 0);
    assert_true(need <= HIST_ENCODED_MAX);
    char *text = malloc(need + 1);
    assert_non_null(text);
    assert_true(histogram_encode(h, text, need + 1) == need);
    assert_int_equal(strlen(text), need);
    static struct histogram back;
    memset(&back, 0xab, sizeof(back));
    assert_int_equal(histogram_decode(&back, text, need), 0);
    assert_memory_equal(&back, h, sizeof(back));
    return text;
}

static void test_encode_round_trip(void **state)
{
    (void)state;
    static struct histogram h;
    histogram_init(&h);
    char *text = round_trip(&h);
    assert_string_equal(text, "hist1 0 0 18446744073709551615 0 0");
    free(text);
    histogram_record(&h, 0);
    histogram_record_n(&h, 300, 2);
    text = round_trip(&h);
    /* 0 is bucket 0; 300 is bucket 2 * 128 + (300 >> 1) % 128 = 278. */
    assert_string_equal(text, "hist1 3 600 0 300 2 0 1 278 2");
    free(text);
    draw_fn draws[] = {draw_uniform, draw_exponential, draw_bimodal, draw_huge, draw_small};
    struct rr_prng p;
    rr_prng_seed(&p, 8);
    for (size_t d = 0; d < sizeof(draws) / sizeof(draws[0]); d++) {
        histogram_init(&h);
        for (uint32_t i = 0; i < 50000; i++) {
            histogram_record(&h, draws[d](&p));
        }
        free(round_trip(&h));
    }
    /* Every bucket non-empty: the longest text, within HIST_ENCODED_MAX. */
    histogram_init(&h);
    for (uint32_t b = 0; b < HIST_BUCKET_COUNT; b++) {
        histogram_record_n(&h, histogram_bucket_high(b), UINT64_MAX / HIST_BUCKET_COUNT);
    }
    free(round_trip(&h));
}

/* Histograms of separate runs, encoded and decoded, merge to the histogram of all values. */
static void test_decoded_merge_equals_single(void **state)
{
    (void)state;
    static struct histogram all;
    static struct histogram run;
    static struct histogram merged;
    static struct histogram back;
    histogram_init(&all);
    histogram_init(&merged);
    struct rr_prng p;
    rr_prng_seed(&p, 9);
    for (int r = 0; r < 3; r++) {
        histogram_init(&run);
        for (uint32_t i = 0; i < 20000; i++) {
            uint64_t v = draw_exponential(&p);
            histogram_record(&run, v);
            histogram_record(&all, v);
        }
        char *text = round_trip(&run);
        assert_int_equal(histogram_decode(&back, text, strlen(text)), 0);
        histogram_merge(&merged, &back);
        free(text);
    }
    assert_memory_equal(&merged, &all, sizeof(all));
}

static void test_encode_truncates_like_snprintf(void **state)
{
    (void)state;
    static struct histogram h;
    histogram_init(&h);
    histogram_record(&h, 5);
    const char *full = "hist1 1 5 5 5 1 5 1";
    char buf[32];
    for (uint64_t cap = 1; cap < sizeof(buf); cap++) {
        memset(buf, 'z', sizeof(buf));
        assert_int_equal(histogram_encode(&h, buf, cap), strlen(full));
        uint64_t kept = cap - 1 < strlen(full) ? cap - 1 : strlen(full);
        assert_memory_equal(buf, full, kept);
        assert_int_equal(buf[kept], '\0');
        assert_int_equal(buf[cap], 'z'); /* nothing written past cap */
    }
}

static void test_decode_refuses_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "hist1",
        "hist2 0 0 18446744073709551615 0 0",
        "hist1 0 0 18446744073709551615 0 0 ",    /* trailing space */
        "hist1 0 0 18446744073709551615 0 0\n\n", /* two newlines */
        "hist1  0 0 18446744073709551615 0 0",    /* double space */
        "hist1 0 0 18446744073709551616 0 0",     /* past 2^64 - 1 */
        "hist1 0 0 99999999999999999999999 0 0",  /* far past */
        "hist1 0 0 0 0 0",                        /* empty but min set */
        "hist1 1 5 5 5 1 5 2",                    /* counts do not add up */
        "hist1 2 5 5 5 1 5 1",                    /* count says 2 */
        "hist1 1 5 5 5 1 5 0",                    /* zero count */
        "hist1 1 5 5 5 2 5 1",                    /* fewer buckets than announced */
        "hist1 1 5 5 5 1 5 1 1 1",                /* more */
        "hist1 1 5 5 5 1 6 1",                    /* min/max outside the bucket */
        "hist1 2 10 5 5 2 5 1 0 1",               /* repeated bucket */
        "hist1 1 5 5 5 1 7424 1",                 /* bucket out of range */
        "hist1 1 5 5 5 1 05 1",                   /* leading zero */
        "hist1 1 5 5 5 1 -5 1",
        "hist1 1 5 5 5 1 5 1x",
        "hist1 1 5 6 5 1 5 1", /* min > max */
        "hist1 1 5 5 5 99999 5 1",
        "hist1 18446744073709551615 0 1 1 2 1 18446744073709551615 1 1", /* overflow */
    };
    static struct histogram h;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        histogram_record(&h, 1);
        if (histogram_decode(&h, bad[i], strlen(bad[i])) != RR_ECORRUPT) {
            fail_msg("accepted: \"%s\"", bad[i]);
        }
        static struct histogram empty;
        histogram_init(&empty);
        assert_memory_equal(&h, &empty, sizeof(h)); /* left empty */
    }
    /* A length that cuts a valid text short is refused too; one trailing newline is fine. */
    const char *good = "hist1 3 600 0 300 2 0 1 278 2\n";
    assert_int_equal(histogram_decode(&h, good, strlen(good)), 0);
    for (size_t n = 0; n < strlen(good) - 1; n++) {
        int rc = histogram_decode(&h, good, n);
        if (rc != RR_ECORRUPT) {
            fail_msg("accepted a prefix of %zu bytes", n);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uniform),
        cmocka_unit_test(test_exponential),
        cmocka_unit_test(test_bimodal),
        cmocka_unit_test(test_huge_values),
        cmocka_unit_test(test_small_values_exact),
        cmocka_unit_test(test_all_equal),
        cmocka_unit_test(test_record_n_equals_repeated_record),
        cmocka_unit_test(test_merge_equals_single),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_bucket_layout),
        cmocka_unit_test(test_encode_round_trip),
        cmocka_unit_test(test_decoded_merge_equals_single),
        cmocka_unit_test(test_encode_truncates_like_snprintf),
        cmocka_unit_test(test_decode_refuses_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
