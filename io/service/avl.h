/* An intrusive AVL tree: the nodes live inside the caller's structs, so one object can be in
 * several trees at once (a pending entry is in its group's and its consumer's). Worst case
 * O(log n) for every operation; the tree never allocates, so inserting and removing cannot
 * fail. Keys are the caller's: each call takes the ops that read a node's key and compare. */
#ifndef RR_SERVICE_AVL_H
#define RR_SERVICE_AVL_H

#include <stdbool.h>
#include <stdint.h>

struct avl_node {
    struct avl_node *child[2]; /* left (smaller keys), right (larger keys) */
    uint8_t height;            /* of the subtree rooted here; 1 for a leaf */
};

struct avl_tree {
    struct avl_node *root; /* NULL when empty */
    uint64_t count;        /* nodes in the tree */
};

/* How a tree reads and orders its keys. */
struct avl_ops {
    /* The key of a node in this tree (a pointer into the containing object). */
    const void *(*key)(const struct avl_node *n);
    /* <0, 0, >0 as key a sorts before, equal to, after key b. */
    int (*cmp)(const void *a, const void *b);
};

#define AVL_TREE_INIT                                                                              \
    {                                                                                              \
        NULL, 0                                                                                    \
    }

/* The node with this key, or NULL. */
struct avl_node *avl_find(const struct avl_tree *t, const void *key, const struct avl_ops *ops);
/* The first node whose key is >= key (lower bound), or NULL. */
struct avl_node *avl_ceil(const struct avl_tree *t, const void *key, const struct avl_ops *ops);
/* The first node whose key is > key, or NULL. */
struct avl_node *avl_higher(const struct avl_tree *t, const void *key, const struct avl_ops *ops);
/* The smallest / largest node, or NULL. */
struct avl_node *avl_first(const struct avl_tree *t);
struct avl_node *avl_last(const struct avl_tree *t);
/* The node after n in key order (n in t), or NULL. O(log n): safe even if the caller removes
 * n right after reading its successor, since it searches by key. */
struct avl_node *
avl_next(const struct avl_tree *t, const struct avl_node *n, const struct avl_ops *ops);

/* Links n (not in any tree through this node; its key not in t). */
void avl_insert(struct avl_tree *t, struct avl_node *n, const struct avl_ops *ops);
/* Unlinks n, which must be in t. */
void avl_remove(struct avl_tree *t, struct avl_node *n, const struct avl_ops *ops);

/* O(n) check of the order, the heights, the balance and the count (tests). */
bool avl_valid(const struct avl_tree *t, const struct avl_ops *ops);

#endif
