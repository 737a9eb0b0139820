/* The in-memory log's entry storage: random appends, truncations, compactions, releases and
 * snapshot installations checked against a model of every entry's bytes; chunk counts (one
 * allocation per chunk, not per entry); and, under ASan, that a truncated entry's bytes are
 * poisoned. */
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

#include "core/base/prng.h"
#include "core/log.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

#define MODEL_MAX 4096u

/* Entry i of the model (index i + 1): its term and a length; the bytes are a function of
 * (index, term, offset), so any misplaced or overwritten byte shows. */
struct model {
    raft_index prev;
    raft_term prev_term;
    raft_term term[MODEL_MAX + 1];
    uint32_t len[MODEL_MAX + 1];
    uint8_t type[MODEL_MAX + 1];
    raft_index last;
};

static uint8_t byte_of(raft_index index, raft_term term, uint32_t off)
{
    return (uint8_t)(index * 131u + term * 7u + off * 13u + (off >> 8));
}

static void fill(uint8_t *buf, raft_index index, raft_term term, uint32_t len)
{
    for (uint32_t i = 0; i < len; i++) {
        buf[i] = byte_of(index, term, i);
    }
}

static void check(const struct raft_log *l, const struct model *m)
{
    assert_int_equal(log_last_index(l), m->last);
    assert_int_equal(log_first_index(l), m->prev + 1);
    for (raft_index i = m->prev + 1; i <= m->last; i++) {
        const struct raft_entry *e = log_entry(l, i);
        assert_non_null(e);
        assert_int_equal(e->index, i);
        assert_int_equal(e->term, m->term[i]);
        assert_int_equal(e->data.len, m->len[i]);
        assert_int_equal(e->type, m->type[i]);
        if (m->len[i] == 0) {
            assert_null(e->data.base);
        }
        if (i <= l->released && e->type != RAFT_ENTRY_CONFIG) {
            assert_int_equal(raft_entry_released(e), m->len[i] > 0);
            continue;
        }
        assert_false(raft_entry_released(e)); /* above `released`, or a configuration */
        for (uint32_t k = 0; k < m->len[i]; k++) {
            if (e->data.base[k] != byte_of(i, m->term[i], k)) {
                fail_msg("entry %llu byte %u differs", (unsigned long long)i, k);
            }
        }
    }
}

static void
append_typed(struct raft_log *l, struct model *m, raft_term term, uint8_t type, uint32_t len)
{
    static uint8_t buf[70000];
    raft_index i = m->last + 1;
    fill(buf, i, term, len);
    assert_int_equal(log_append(l, term, type, buf, len), 0);
    m->term[i] = term;
    m->len[i] = len;
    m->type[i] = type;
    m->last = i;
}

static void append(struct raft_log *l, struct model *m, raft_term term, uint32_t len)
{
    append_typed(l, m, term, RAFT_ENTRY_NORMAL, len);
}

static void test_random_operations(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 12; seed++) {
        struct rr_prng p;
        rr_prng_seed(&p, seed);
        struct raft_log l;
        log_init(&l, 0, 0);
        struct model *m = calloc(1, sizeof(*m));
        assert_non_null(m);
        raft_term term = 1;
        for (int step = 0; step < 3000; step++) {
            uint64_t op = rr_prng_range(&p, 0, 100);
            if (op < 70 && m->last < MODEL_MAX) {
                uint64_t kind = rr_prng_range(&p, 0, 10);
                /* empty, small, chunk-sized, and larger than a chunk */
                uint32_t len = kind < 2   ? 0
                               : kind < 8 ? (uint32_t)rr_prng_range(&p, 1, 600)
                               : kind < 9 ? (uint32_t)rr_prng_range(&p, 600, 40000)
                                          : (uint32_t)rr_prng_range(&p, 65536, 69000);
                bool config = rr_prng_range(&p, 0, 20) == 0;
                append_typed(&l, m, term, config ? RAFT_ENTRY_CONFIG : RAFT_ENTRY_NORMAL, len);
            } else if (op < 82 && m->last > m->prev && m->last > l.released) {
                /* Released entries are committed: a truncation stays above them. */
                raft_index low = (l.released > m->prev ? l.released : m->prev) + 1;
                raft_index from = rr_prng_range(&p, low, m->last + 1);
                log_truncate_from(&l, from);
                m->last = from - 1;
                term++; /* a new leader's entries replace the old ones */
            } else if (op < 92 && m->last > m->prev) {
                raft_index to = rr_prng_range(&p, m->prev + 1, m->last + 1);
                l.handed = m->last;
                l.persisted = m->last;
                m->prev_term = m->term[to];
                log_compact_to(&l, to);
                m->prev = to;
            } else if (op < 88 && m->last > m->prev) {
                l.handed = m->last;
                l.persisted = m->last;
                raft_index before = l.released;
                log_release_to(&l, rr_prng_range(&p, m->prev, m->last + 1));
                assert_true(l.released >= before && l.released <= m->last);
            } else if (op < 95) {
                /* A snapshot at or past the end (drops everything) or inside (keeps a tail),
                 * above the released entries (a snapshot is installed above the commit). */
                raft_index low = l.released > m->prev ? l.released : m->prev;
                raft_index at = rr_prng_range(&p, low, m->last + 3);
                if (at > MODEL_MAX) {
                    at = MODEL_MAX;
                }
                bool matches = at <= m->last && rr_prng_range(&p, 0, 2) == 0;
                raft_term t = matches ? (at == m->prev ? m->prev_term : m->term[at]) : term + 1;
                log_install_snapshot(&l, at, t);
                if (!matches) {
                    term = t;
                    m->last = at;
                }
                m->prev = at;
                m->prev_term = t;
            } else {
                term++;
            }
            if (step % 8 == 0) {
                check(&l, m);
            }
        }
        check(&l, m);
        log_free(&l);
        assert_int_equal(log_chunk_count(&l), 0);
        free(m);
    }
}

/* Thousands of small entries share a handful of chunks; compaction gives them back. */
static void test_chunks_per_entries(void **state)
{
    (void)state;
    struct raft_log l;
    log_init(&l, 0, 0);
    struct model *m = calloc(1, sizeof(*m));
    assert_non_null(m);
    for (int i = 0; i < 4000; i++) {
        append(&l, m, 1, 100);
    }
    /* 400 000 bytes: 256 + 512 + ... + 32768 (65 280), then 64 KiB chunks (6 more). */
    assert_int_equal(log_chunk_count(&l), 14);
    check(&l, m);
    l.handed = l.persisted = m->last;
    log_compact_to(&l, 3999);
    m->prev = 3999;
    assert_int_equal(log_chunk_count(&l), 1);
    check(&l, m);
    log_free(&l);
    free(m);
}

/* Releasing frees every chunk below the index but the newest (the next append fills it);
 * configuration entries keep a copy of their data, freed with the entry (ASan's leak check). */
static void test_release_keeps_terms_and_configurations(void **state)
{
    (void)state;
    struct raft_log l;
    log_init(&l, 0, 0);
    struct model *m = calloc(1, sizeof(*m));
    assert_non_null(m);
    for (raft_term i = 0; i < 4000; i++) {
        append_typed(&l, m, 1 + i / 1000, i == 1500 ? RAFT_ENTRY_CONFIG : RAFT_ENTRY_NORMAL, 100);
    }
    assert_int_equal(log_chunk_count(&l), 14);
    l.handed = l.persisted = 3000;
    uint64_t freed = log_release_to(&l, 3000);
    /* The chunks up to 3000 go, the one holding 3000 and later stay. */
    assert_true(l.released < 3000 && l.released > 2000);
    assert_true(freed >= (uint64_t)(l.released - 1) * 100);
    assert_int_equal(log_term(&l, 1200), 2);
    assert_true(raft_entry_released(log_entry(&l, 1200)));
    assert_non_null(log_entry(&l, 1501)->data.base); /* the configuration (i == 1500) */
    assert_int_equal(l.owned, 1);
    check(&l, m);
    l.handed = l.persisted = 4000;
    log_release_to(&l, 4000);
    assert_int_equal(log_chunk_count(&l), 1); /* the newest stays */
    check(&l, m);
    append(&l, m, 4, 100);
    assert_int_equal(log_chunk_count(&l), 1);
    log_compact_to(&l, 2000);
    m->prev = 2000;
    m->prev_term = m->term[2000];
    assert_int_equal(l.owned, 0);
    check(&l, m);
    log_free(&l);
    free(m);
}

/* An idle group's log of empty entries (no-ops) holds no chunk at all. */
static void test_empty_entries_allocate_no_chunk(void **state)
{
    (void)state;
    struct raft_log l;
    log_init(&l, 0, 0);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(log_append(&l, 1, 1, NULL, 0), 0);
    }
    assert_int_equal(log_chunk_count(&l), 0);
    log_free(&l);
}

/* Truncation rewinds the chunk: the next append reuses the bytes, and (under ASan) the
 * removed entry's bytes are poisoned until then. */
static void test_truncation_rewinds_and_poisons(void **state)
{
    (void)state;
    struct raft_log l;
    log_init(&l, 0, 0);
    struct model *m = calloc(1, sizeof(*m));
    assert_non_null(m);
    append(&l, m, 1, 10);
    append(&l, m, 1, 20);
    const uint8_t *removed = log_entry(&l, 2)->data.base;
    log_truncate_from(&l, 2);
    m->last = 1;
#if defined(__SANITIZE_ADDRESS__)
    assert_true(__asan_address_is_poisoned(removed));
#endif
    append(&l, m, 2, 20);
    assert_ptr_equal(log_entry(&l, 2)->data.base, removed);
    assert_int_equal(log_chunk_count(&l), 1);
    check(&l, m);
    log_free(&l);
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_operations),
        cmocka_unit_test(test_chunks_per_entries),
        cmocka_unit_test(test_release_keeps_terms_and_configurations),
        cmocka_unit_test(test_empty_entries_allocate_no_chunk),
        cmocka_unit_test(test_truncation_rewinds_and_poisons),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
