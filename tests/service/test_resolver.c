/* Tests of the resolver thread (io/resolver.c) and the seam's kernel_resolve_numeric: an
 * IPv4 literal is parsed without a lookup and a name is not; an answer goes to the worker
 * that asked, and only to it; of two lookups for one peer (readdressed while the first ran)
 * only the answer of its current generation is taken, and none once it was removed; the
 * queue is bounded; a stop during a long lookup delay returns at once. Resolves
 * `localhost` (/etc/hosts). */
/* clang-format off */
/* cmocka.h needs these four first, in this order. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <arpa/inet.h>
#include <string.h>
#include <unistd.h>

#include "io/kernel.h"
#include "io/resolver.h"

#define ANSWER_WAIT_MS 10000

static uint32_t ip_of(const struct sockaddr_in *a)
{
    return ntohl(a->sin_addr.s_addr);
}

/* Collects worker's answers until `want` came (or ANSWER_WAIT_MS passed); returns how many. */
static uint32_t
wait_answers(struct resolver *r, uint32_t worker, struct resolve_result *out, uint32_t want)
{
    uint32_t got = 0;
    int64_t deadline = node_clock_ms() + ANSWER_WAIT_MS;
    while (got < want && node_clock_ms() < deadline) {
        got += resolver_collect(r, worker, out + got, want - got);
        if (got < want) {
            usleep(1000);
        }
    }
    return got;
}

static void test_literals_are_parsed_without_a_lookup(void **state)
{
    (void)state;
    struct sockaddr_in a;
    assert_int_equal(kernel_resolve_numeric("127.0.0.1", 17001, &a), 0);
    assert_int_equal(ip_of(&a), 0x7f000001u);
    assert_int_equal(ntohs(a.sin_port), 17001);
    assert_int_equal(a.sin_family, AF_INET);
    assert_int_equal(kernel_resolve_numeric("10.77.0.3", 1, &a), 0);
    assert_int_equal(ip_of(&a), 0x0a4d0003u);
    /* Names (even one /etc/hosts has) and IPv6 literals are not IPv4 literals. */
    assert_int_equal(kernel_resolve_numeric("localhost", 1, &a), -1);
    assert_int_equal(kernel_resolve_numeric("node-2.example", 1, &a), -1);
    assert_int_equal(kernel_resolve_numeric("::1", 1, &a), -1);
}

static void test_an_answer_goes_to_the_worker_that_asked(void **state)
{
    (void)state;
    struct resolver *r = resolver_start(2, 0);
    assert_non_null(r);
    assert_int_equal(resolver_post(r, 1, 7, 5, "localhost", 17002), 0);
    struct resolve_result res[2];
    assert_int_equal(wait_answers(r, 1, res, 1), 1);
    assert_int_equal(res[0].peer, 7);
    assert_int_equal(res[0].gen, 5);
    assert_true(res[0].ok);
    assert_int_equal(ip_of(&res[0].addr), 0x7f000001u);
    assert_int_equal(ntohs(res[0].addr.sin_port), 17002);
    /* Worker 0 asked nothing and gets nothing; the answer was taken once. */
    assert_int_equal(resolver_collect(r, 0, res, 2), 0);
    assert_int_equal(resolver_collect(r, 1, res, 2), 0);
    /* A name that cannot resolve is answered with the reason. */
    assert_int_equal(resolver_post(r, 0, 3, 9, "-bad-", 1), 0);
    assert_int_equal(wait_answers(r, 0, res, 1), 1);
    assert_false(res[0].ok);
    assert_int_equal(res[0].gen, 9);
    assert_true(strlen(res[0].error) > 0);
    resolver_stop(r);
}

static void test_only_the_current_generation_is_taken(void **state)
{
    (void)state;
    struct resolver *r = resolver_start(1, 0);
    assert_non_null(r);
    /* Peer 4 added at port 1000 (generation 1), then readdressed to port 2000 (generation
     * 2) before the first answer was taken, as peer.c posts them. */
    assert_int_equal(resolver_post(r, 0, 4, 1, "localhost", 1000), 0);
    assert_int_equal(resolver_post(r, 0, 4, 2, "localhost", 2000), 0);
    struct resolve_result res[2];
    assert_int_equal(wait_answers(r, 0, res, 2), 2);
    uint32_t current = 0;
    for (uint32_t i = 0; i < 2; i++) {
        assert_true(res[i].ok);
        if (resolve_answer_current(&res[i], true, 2)) {
            current++;
            assert_int_equal(ntohs(res[i].addr.sin_port), 2000);
        }
        /* Removed meanwhile: the peer waits for nothing, and takes neither. */
        assert_false(resolve_answer_current(&res[i], false, 2));
        assert_false(resolve_answer_current(&res[i], false, res[i].gen));
    }
    assert_int_equal(current, 1);
    resolver_stop(r);
}

static void test_the_queue_is_bounded_and_stop_is_prompt(void **state)
{
    (void)state;
    /* Every lookup waits 10 minutes first: the thread holds one request, the rest queue. */
    struct resolver *r = resolver_start(1, 600000);
    assert_non_null(r);
    for (uint32_t i = 0; i < RESOLVE_QUEUE_MAX; i++) {
        assert_int_equal(resolver_post(r, 0, i, i, "localhost", 1), 0);
    }
    assert_int_equal(resolver_post(r, 0, 9999, 9999, "localhost", 1), -1);
    struct resolve_result res[4];
    assert_int_equal(resolver_collect(r, 0, res, 4), 0);
    int64_t t0 = node_clock_ms();
    resolver_stop(r);
    assert_true(node_clock_ms() - t0 < 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literals_are_parsed_without_a_lookup),
        cmocka_unit_test(test_an_answer_goes_to_the_worker_that_asked),
        cmocka_unit_test(test_only_the_current_generation_is_taken),
        cmocka_unit_test(test_the_queue_is_bounded_and_stop_is_prompt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
