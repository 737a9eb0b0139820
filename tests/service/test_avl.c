/* The intrusive AVL tree against a model (a bitmap of present keys): random inserts and
 * removes, with the tree checked (order, heights, balance, count) and every search compared
 * after each step; and an object in two trees at once. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <stdlib.h>
#include <string.h>

#include "io/service/avl.h"

#define T_KEYS 512u

struct item {
    struct avl_node a; /* tree A: by key */
    struct avl_node b; /* tree B: by key, only the even ones */
    uint32_t key;
};

static const void *item_key_a(const struct avl_node *n)
{
    return &((const struct item *)(const void *)((const char *)n - offsetof(struct item, a)))->key;
}

static const void *item_key_b(const struct avl_node *n)
{
    return &((const struct item *)(const void *)((const char *)n - offsetof(struct item, b)))->key;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a;
    uint32_t y = *(const uint32_t *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

static const struct avl_ops ops_a = {item_key_a, cmp_u32};
static const struct avl_ops ops_b = {item_key_b, cmp_u32};

static uint32_t key_of(const struct avl_node *n)
{
    return n == NULL ? UINT32_MAX : *(const uint32_t *)item_key_a(n);
}

/* xorshift64: the test's own deterministic randomness. */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* The model's smallest present key >= k, or UINT32_MAX. */
static uint32_t model_from(const bool *present, uint32_t k)
{
    for (uint32_t j = k; j < T_KEYS; j++) {
        if (present[j]) {
            return j;
        }
    }
    return UINT32_MAX;
}

static void check_against_model(const struct avl_tree *t, const bool *present)
{
    assert_true(avl_valid(t, &ops_a));
    /* In-order walk equals the model's keys in order. */
    const struct avl_node *n = avl_first(t);
    for (uint32_t k = 0; k < T_KEYS; k++) {
        if (present[k]) {
            assert_int_equal(key_of(n), k);
            n = avl_next(t, n, &ops_a);
        }
    }
    assert_null(n);
    /* ceil / higher / find for every key (and one past the end). */
    for (uint32_t k = 0; k <= T_KEYS; k++) {
        assert_int_equal(key_of(avl_ceil(t, &k, &ops_a)), model_from(present, k));
        assert_int_equal(key_of(avl_higher(t, &k, &ops_a)), model_from(present, k + 1));
        bool found = avl_find(t, &k, &ops_a) != NULL;
        assert_int_equal(found, k < T_KEYS && present[k]);
    }
}

static void test_random_ops_match_model(void **state)
{
    (void)state;
    static struct item items[T_KEYS];
    static bool present[T_KEYS];
    memset(present, 0, sizeof(present));
    struct avl_tree t = AVL_TREE_INIT;
    uint64_t seed = 0x9e3779b97f4a7c15uLL;
    for (uint32_t k = 0; k < T_KEYS; k++) {
        items[k].key = k;
    }
    for (int step = 0; step < 6000; step++) {
        uint32_t k = (uint32_t)(rnd(&seed) % T_KEYS);
        if (present[k]) {
            avl_remove(&t, &items[k].a, &ops_a);
            present[k] = false;
        } else {
            avl_insert(&t, &items[k].a, &ops_a);
            present[k] = true;
        }
        if (step % 97 == 0) {
            check_against_model(&t, present);
        } else {
            assert_true(avl_valid(&t, &ops_a));
        }
    }
    check_against_model(&t, present);
    /* Drain in order (removing the node just read). */
    for (struct avl_node *n = avl_first(&t); n != NULL;) {
        struct avl_node *next = avl_next(&t, n, &ops_a);
        avl_remove(&t, n, &ops_a);
        n = next;
    }
    assert_int_equal(t.count, 0);
    assert_null(t.root);
}

/* Ascending and descending inserts stay balanced: height <= 1.45 log2(n + 2). */
static void test_sorted_inserts_stay_balanced(void **state)
{
    (void)state;
    static struct item items[4096];
    struct avl_tree up = AVL_TREE_INIT;
    for (uint32_t k = 0; k < 4096; k++) {
        items[k].key = k;
        avl_insert(&up, &items[k].a, &ops_a);
    }
    assert_true(avl_valid(&up, &ops_a));
    assert_true(up.root->height <= 18);
    struct avl_tree down = AVL_TREE_INIT;
    for (uint32_t k = 4096; k-- > 0;) {
        avl_insert(&down, &items[k].b, &ops_b);
    }
    assert_true(avl_valid(&down, &ops_b));
    assert_true(down.root->height <= 18);
    assert_null(avl_first(&(struct avl_tree)AVL_TREE_INIT));
    assert_null(avl_last(&(struct avl_tree)AVL_TREE_INIT));
    assert_int_equal(key_of(avl_last(&up)), 4095);
}

/* One object in two trees: removing it from one leaves the other intact. */
static void test_object_in_two_trees(void **state)
{
    (void)state;
    static struct item items[200];
    struct avl_tree ta = AVL_TREE_INIT;
    struct avl_tree tb = AVL_TREE_INIT;
    for (uint32_t k = 0; k < 200; k++) {
        items[k].key = k;
        avl_insert(&ta, &items[k].a, &ops_a);
        if (k % 2 == 0) {
            avl_insert(&tb, &items[k].b, &ops_b);
        }
    }
    for (uint32_t k = 0; k < 200; k += 4) {
        avl_remove(&tb, &items[k].b, &ops_b);
    }
    assert_true(avl_valid(&ta, &ops_a));
    assert_true(avl_valid(&tb, &ops_b));
    assert_int_equal(ta.count, 200);
    assert_int_equal(tb.count, 50);
    uint32_t k = 3;
    const struct avl_node *n = avl_ceil(&tb, &k, &ops_b);
    assert_int_equal(*(const uint32_t *)item_key_b(n), 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_ops_match_model),
        cmocka_unit_test(test_sorted_inserts_stay_balanced),
        cmocka_unit_test(test_object_in_two_trees),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
