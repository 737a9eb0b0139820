/* Intrusive AVL tree (Adelson-Velsky and Landis): every subtree's two children differ in
 * height by at most one, so the height is below 1.45 log2(n + 2) and every operation is
 * O(log n) in the worst case. Insert and remove are recursive (the depth is that height, at
 * most 90 for 2^64 nodes) and rebalance on the way back up with at most two rotations per
 * level. Nodes carry no parent pointer: the successor is found by searching for the next key,
 * which keeps the node at three words. */
#include "io/service/avl.h"

#include <stddef.h>

#include "core/base/assert.h"

static unsigned height(const struct avl_node *n)
{
    return n == NULL ? 0 : n->height;
}

static void update_height(struct avl_node *n)
{
    unsigned l = height(n->child[0]);
    unsigned r = height(n->child[1]);
    n->height = (uint8_t)((l > r ? l : r) + 1);
}

/* Rotates n's child on side `dir` up into n's place; returns the new subtree root. */
static struct avl_node *rotate(struct avl_node *n, int dir)
{
    struct avl_node *c = n->child[dir];
    n->child[dir] = c->child[!dir];
    c->child[!dir] = n;
    update_height(n);
    update_height(c);
    return c;
}

/* Restores the AVL property at n (its children are AVL trees differing by at most two in
 * height); returns the subtree's new root. */
static struct avl_node *rebalance(struct avl_node *n)
{
    update_height(n);
    int balance = (int)height(n->child[0]) - (int)height(n->child[1]);
    if (balance > 1 || balance < -1) {
        int dir = balance > 1 ? 0 : 1; /* the taller side */
        struct avl_node *c = n->child[dir];
        /* Zig-zag: make the taller grandchild the outer one first. */
        if (height(c->child[!dir]) > height(c->child[dir])) {
            n->child[dir] = rotate(c, !dir);
        }
        n = rotate(n, dir);
    }
    return n;
}

struct avl_node *avl_find(const struct avl_tree *t, const void *key, const struct avl_ops *ops)
{
    struct avl_node *n = t->root;
    while (n != NULL) {
        int c = ops->cmp(key, ops->key(n));
        if (c == 0) {
            return n;
        }
        n = n->child[c > 0];
    }
    return NULL;
}

/* The first node whose key is >= key (strict false) or > key (strict true). */
static struct avl_node *
bound(const struct avl_tree *t, const void *key, bool strict, const struct avl_ops *ops)
{
    struct avl_node *best = NULL;
    struct avl_node *n = t->root;
    while (n != NULL) {
        int c = ops->cmp(key, ops->key(n));
        if (c < 0 || (c == 0 && !strict)) {
            best = n;
            n = n->child[0];
        } else {
            n = n->child[1];
        }
    }
    return best;
}

struct avl_node *avl_ceil(const struct avl_tree *t, const void *key, const struct avl_ops *ops)
{
    return bound(t, key, false, ops);
}

struct avl_node *avl_higher(const struct avl_tree *t, const void *key, const struct avl_ops *ops)
{
    return bound(t, key, true, ops);
}

struct avl_node *avl_first(const struct avl_tree *t)
{
    struct avl_node *n = t->root;
    while (n != NULL && n->child[0] != NULL) {
        n = n->child[0];
    }
    return n;
}

struct avl_node *avl_last(const struct avl_tree *t)
{
    struct avl_node *n = t->root;
    while (n != NULL && n->child[1] != NULL) {
        n = n->child[1];
    }
    return n;
}

struct avl_node *
avl_next(const struct avl_tree *t, const struct avl_node *n, const struct avl_ops *ops)
{
    /* Within n's right subtree when it has one; else the search from the root. */
    if (n->child[1] != NULL) {
        struct avl_node *m = n->child[1];
        while (m->child[0] != NULL) {
            m = m->child[0];
        }
        return m;
    }
    return bound(t, ops->key(n), true, ops);
}

static struct avl_node *
insert_at(struct avl_node *root, struct avl_node *n, const void *key, const struct avl_ops *ops)
{
    if (root == NULL) {
        n->child[0] = NULL;
        n->child[1] = NULL;
        n->height = 1;
        return n;
    }
    int c = ops->cmp(key, ops->key(root));
    RR_ASSERT(c != 0); /* the key is not in the tree yet */
    root->child[c > 0] = insert_at(root->child[c > 0], n, key, ops);
    return rebalance(root);
}

void avl_insert(struct avl_tree *t, struct avl_node *n, const struct avl_ops *ops)
{
    t->root = insert_at(t->root, n, ops->key(n), ops);
    t->count++;
}

/* Unlinks the smallest node of the subtree into *min; returns the new subtree root. */
static struct avl_node *remove_min(struct avl_node *root, struct avl_node **min)
{
    if (root->child[0] == NULL) {
        *min = root;
        return root->child[1];
    }
    root->child[0] = remove_min(root->child[0], min);
    return rebalance(root);
}

static struct avl_node *remove_at(struct avl_node *root,
                                  const struct avl_node *n,
                                  const void *key,
                                  const struct avl_ops *ops)
{
    RR_ASSERT(root != NULL); /* n is in the tree */
    int c = ops->cmp(key, ops->key(root));
    if (c != 0) {
        root->child[c > 0] = remove_at(root->child[c > 0], n, key, ops);
        return rebalance(root);
    }
    RR_ASSERT(root == n); /* keys are unique: the node with n's key is n */
    if (root->child[0] == NULL) {
        return root->child[1];
    }
    if (root->child[1] == NULL) {
        return root->child[0];
    }
    /* Two children: n's successor takes its place (the nodes are the caller's objects, so
     * the successor node moves, not its key). */
    struct avl_node *succ;
    struct avl_node *right = remove_min(root->child[1], &succ);
    succ->child[0] = root->child[0];
    succ->child[1] = right;
    return rebalance(succ);
}

void avl_remove(struct avl_tree *t, struct avl_node *n, const struct avl_ops *ops)
{
    RR_ASSERT(t->count > 0);
    t->root = remove_at(t->root, n, ops->key(n), ops);
    t->count--;
    n->child[0] = NULL;
    n->child[1] = NULL;
    n->height = 0;
}

/* Checks the subtree; returns its node count, or UINT64_MAX if it is not a valid AVL tree
 * with keys in (lo, hi) (NULL: unbounded). */
static uint64_t valid_at(const struct avl_node *n,
                         const void *lo,
                         const void *hi,
                         const struct avl_ops *ops,
                         unsigned depth)
{
    if (n == NULL) {
        return 0;
    }
    const void *k = ops->key(n);
    if (depth > 128 || (lo != NULL && ops->cmp(lo, k) >= 0) ||
        (hi != NULL && ops->cmp(k, hi) >= 0)) {
        return UINT64_MAX;
    }
    uint64_t l = valid_at(n->child[0], lo, k, ops, depth + 1);
    uint64_t r = valid_at(n->child[1], k, hi, ops, depth + 1);
    int balance = (int)height(n->child[0]) - (int)height(n->child[1]);
    unsigned hl = height(n->child[0]);
    unsigned hr = height(n->child[1]);
    if (l == UINT64_MAX || r == UINT64_MAX || balance > 1 || balance < -1 ||
        n->height != (hl > hr ? hl : hr) + 1) {
        return UINT64_MAX;
    }
    return l + r + 1;
}

bool avl_valid(const struct avl_tree *t, const struct avl_ops *ops)
{
    return valid_at(t->root, NULL, NULL, ops, 0) == t->count;
}
