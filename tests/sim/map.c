/* An open-addressing hash map for the checkers' registries (linear probing, grown at half
 * full). Keys are compared whole, so a hash collision can never hide a violation. */
#include <stdlib.h>
#include <string.h>

#include "core/base/assert.h"
#include "tests/sim/sim.h"

#define SIM_MAP_CAP_MIN 256u

static uint64_t sim_key_hash(struct sim_key k)
{
    uint64_t h = k.a * 0x9e3779b97f4a7c15ULL;
    h ^= (k.b + 0x632be59bd9b4e019ULL) * 0xbf58476d1ce4e5b9ULL;
    h ^= (k.c + 0x8cb92ba72f3d8dd7ULL) * 0x94d049bb133111ebULL;
    return h ^ (h >> 29);
}

static bool sim_key_eq(struct sim_key x, struct sim_key y)
{
    return x.a == y.a && x.b == y.b && x.c == y.c;
}

void sim_map_init(struct sim_map *m)
{
    memset(m, 0, sizeof(*m));
}

void sim_map_free(struct sim_map *m)
{
    free(m->slots);
    memset(m, 0, sizeof(*m));
}

static struct sim_slot *sim_map_find(struct sim_slot *slots, size_t cap, struct sim_key k)
{
    size_t i = (size_t)sim_key_hash(k) & (cap - 1);
    for (;;) { /* bounded: the table is never more than half full */
        if (!slots[i].used || sim_key_eq(slots[i].k, k)) {
            return &slots[i];
        }
        i = (i + 1) & (cap - 1);
    }
}

static void sim_map_grow(struct sim_map *m)
{
    size_t cap = m->cap == 0 ? SIM_MAP_CAP_MIN : m->cap * 2;
    struct sim_slot *slots = calloc(cap, sizeof(*slots));
    RR_ASSERT(slots != NULL);
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].used) {
            *sim_map_find(slots, cap, m->slots[i].k) = m->slots[i];
        }
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
}

struct sim_val *sim_map_get(struct sim_map *m, struct sim_key k)
{
    if (m->cap == 0) {
        return NULL;
    }
    struct sim_slot *s = sim_map_find(m->slots, m->cap, k);
    return s->used ? &s->v : NULL;
}

struct sim_val *sim_map_put(struct sim_map *m, struct sim_key k, bool *fresh)
{
    if ((m->count + 1) * 2 > m->cap) {
        sim_map_grow(m);
    }
    struct sim_slot *s = sim_map_find(m->slots, m->cap, k);
    *fresh = !s->used;
    if (!s->used) {
        s->used = true;
        s->k = k;
        memset(&s->v, 0, sizeof(s->v));
        m->count++;
    }
    return &s->v;
}
