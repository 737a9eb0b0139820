/* ringraft-bench's workload and slot helpers: request bytes, key names (redis-benchmark's),
 * --mix and --dist parsing, the Zipf sampler against the exact distribution, -MOVED parsing
 * and key slots. */
/* cmocka.h needs these four first, in this order. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench/rbench/slots.h"
#include "bench/rbench/workload.h"

static void init_ok(struct rb_workload *w, const char *mix, const char *dist)
{
    char err[256] = "";
    if (workload_init(w, mix, dist, 1000, 4, 5, 10, err, sizeof(err)) != 0) {
        fail_msg("workload_init(%s, %s): %s", mix, dist, err);
    }
}

static void
check_encoding(const struct rb_workload *w, enum rb_op op, uint64_t key, const char *expect)
{
    uint8_t buf[1024];
    size_t len = workload_encode(w, op, key, buf, sizeof(buf));
    assert_true(len <= workload_request_max(w));
    assert_int_equal(len, strlen(expect));
    assert_memory_equal(buf, expect, len);
}

static void test_encodings(void **state)
{
    (void)state;
    struct rb_workload w;
    init_ok(&w, "set", "uniform");
    check_encoding(&w, RB_OP_SET, 42,
                   "*3\r\n$3\r\nSET\r\n$16\r\nkey:000000000042\r\n$5\r\nxxxxx\r\n");
    check_encoding(&w, RB_OP_GET, 7, "*2\r\n$3\r\nGET\r\n$16\r\nkey:000000000007\r\n");
    check_encoding(&w, RB_OP_INCR, 0, "*2\r\n$4\r\nINCR\r\n$20\r\ncounter:000000000000\r\n");
    check_encoding(&w, RB_OP_XADD, 3,
                   "*5\r\n$4\r\nXADD\r\n$19\r\nstream:000000000003\r\n$1\r\n*\r\n$1\r\nf\r\n$5\r\n"
                   "xxxxx\r\n");
    check_encoding(
        &w, RB_OP_XRANGE, 3,
        "*6\r\n$6\r\nXRANGE\r\n$19\r\nstream:000000000003\r\n$1\r\n-\r\n$1\r\n+\r\n$5\r\n"
        "COUNT\r\n$2\r\n10\r\n");
    check_encoding(&w, RB_OP_XREAD, 1,
                   "*6\r\n$5\r\nXREAD\r\n$5\r\nCOUNT\r\n$2\r\n10\r\n$7\r\nSTREAMS\r\n$19\r\n"
                   "stream:000000000001\r\n$3\r\n0-0\r\n");
    char name[RB_KEY_MAX];
    assert_int_equal(workload_key_name(RB_OP_GET, 999999999999ull, name), 16);
    assert_string_equal(name, "key:999999999999");
    workload_free(&w);
}

static void test_mix_and_dist_parsing(void **state)
{
    (void)state;
    struct rb_workload w;
    init_ok(&w, "get:90,set:10", "zipf:0.99");
    assert_int_equal(w.weight[RB_OP_GET], 90);
    assert_int_equal(w.weight[RB_OP_SET], 10);
    assert_int_equal(w.weight_total, 100);
    workload_free(&w);
    init_ok(&w, "XADD,xrange:3,xread:0", "uniform");
    assert_int_equal(w.weight[RB_OP_XADD], 1);
    assert_int_equal(w.weight_total, 4);
    workload_free(&w);
    static const char *const bad_mix[] = {"",     "sett", "get:",  "get:x",     "get:-1",
                                          ",get", "get,", "get:0", "get:1,,set"};
    for (size_t i = 0; i < sizeof(bad_mix) / sizeof(bad_mix[0]); i++) {
        char err[256] = "";
        if (workload_init(&w, bad_mix[i], "uniform", 10, 1, 1, 1, err, sizeof(err)) == 0) {
            fail_msg("accepted --mix '%s'", bad_mix[i]);
        }
        assert_true(err[0] != '\0');
    }
    static const char *const bad_dist[] = {"zipf",    "zipf:",  "zipf:0", "zipf:-1",
                                           "zipf:1x", "normal", "zipf:11"};
    for (size_t i = 0; i < sizeof(bad_dist) / sizeof(bad_dist[0]); i++) {
        char err[256] = "";
        if (workload_init(&w, "get", bad_dist[i], 10, 1, 1, 1, err, sizeof(err)) == 0) {
            fail_msg("accepted --dist '%s'", bad_dist[i]);
        }
    }
}

/* The sampled frequency of each of the first ranks is within 2% (relative) plus sampling
 * noise of 1/H(n,s) * k^-s, for several n and s; draws stay in [1, n]. */
static void test_zipf_matches_distribution(void **state)
{
    (void)state;
    const uint64_t ns[] = {1, 10, 1000, 1000000};
    const double ss[] = {0.5, 0.99, 1.0, 1.5};
    struct rr_prng p;
    rr_prng_seed(&p, 3);
    enum { DRAWS = 400000, RANKS = 5 };
    for (size_t a = 0; a < sizeof(ns) / sizeof(ns[0]); a++) {
        for (size_t b = 0; b < sizeof(ss) / sizeof(ss[0]); b++) {
            struct rb_zipf z;
            zipf_init(&z, ns[a], ss[b]);
            double harmonic = 0;
            for (uint64_t k = 1; k <= ns[a]; k++) {
                harmonic += pow((double)k, -ss[b]);
            }
            uint64_t hits[RANKS + 1] = {0};
            for (int i = 0; i < DRAWS; i++) {
                uint64_t k = zipf_draw(&z, &p);
                assert_true(k >= 1 && k <= ns[a]);
                if (k <= RANKS) {
                    hits[k]++;
                }
            }
            for (uint64_t k = 1; k <= RANKS && k <= ns[a]; k++) {
                double want = pow((double)k, -ss[b]) / harmonic;
                double got = (double)hits[k] / DRAWS;
                double noise = 4.0 * sqrt(want * (1 - want) / DRAWS);
                if (fabs(got - want) > want * 0.02 + noise) {
                    fail_msg("n=%llu s=%g rank %llu: %.5f, expected %.5f",
                             (unsigned long long)ns[a], ss[b], (unsigned long long)k, got, want);
                }
            }
        }
    }
}

static void test_pick_ranges(void **state)
{
    (void)state;
    struct rb_workload w;
    init_ok(&w, "get:1,xadd:1", "uniform");
    struct rr_prng p;
    rr_prng_seed(&p, 5);
    uint64_t per_op[RB_OP_COUNT] = {0};
    for (int i = 0; i < 100000; i++) {
        enum rb_op op = workload_pick_op(&w, &p);
        per_op[op]++;
        uint64_t k = workload_pick_key(&w, op, &p);
        assert_true(k < (op == RB_OP_XADD ? 4u : 1000u));
    }
    assert_int_equal(per_op[RB_OP_GET] + per_op[RB_OP_XADD], 100000);
    assert_true(per_op[RB_OP_GET] > 48000 && per_op[RB_OP_GET] < 52000);
    workload_free(&w);
}

static void test_moved_and_keyslot(void **state)
{
    (void)state;
    uint16_t slot = 0;
    uint16_t port = 0;
    char host[RB_HOST_MAX];
    size_t host_len = 0;
    const char *m = "MOVED 3999 127.0.0.1:6381";
    assert_true(slots_parse_moved(m, strlen(m), &slot, host, sizeof(host), &host_len, &port));
    assert_int_equal(slot, 3999);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(host_len, 9);
    assert_int_equal(port, 6381);
    m = "MOVED 0 [::1]:7001";
    assert_true(slots_parse_moved(m, strlen(m), &slot, host, sizeof(host), &host_len, &port));
    assert_string_equal(host, "::1");
    static const char *const bad[] = {"MOVED",           "MOVED 16384 h:1", "MOVED 1 h",
                                      "MOVED 1 h:",      "MOVED 1 :5",      "MOVED x h:1",
                                      "MOVED 1 h:70000", "ASK 1 h:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (slots_parse_moved(bad[i], strlen(bad[i]), &slot, host, sizeof(host), &host_len,
                              &port)) {
            fail_msg("accepted '%s'", bad[i]);
        }
    }
    /* Values from redis-server's CLUSTER KEYSLOT. */
    assert_int_equal(slots_keyslot("foo", 3), 12182);
    assert_int_equal(slots_keyslot("bar", 3), 5061);
    assert_int_equal(slots_keyslot("{foo}.bar", 9), 12182);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encodings),
        cmocka_unit_test(test_mix_and_dist_parsing),
        cmocka_unit_test(test_zipf_matches_distribution),
        cmocka_unit_test(test_pick_ranges),
        cmocka_unit_test(test_moved_and_keyslot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
