/* A small deterministic PRNG (splitmix64 seeding xoshiro256**). The caller seeds it; the
 * core never draws randomness from anywhere else. */
#ifndef RR_BASE_PRNG_H
#define RR_BASE_PRNG_H

#include <stdint.h>

struct rr_prng {
    uint64_t s[4];
};

static inline uint64_t rr_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline void rr_prng_seed(struct rr_prng *p, uint64_t seed)
{
    for (int i = 0; i < 4; i++) {
        p->s[i] = rr_splitmix64(&seed);
    }
}

static inline uint64_t rr_prng_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t rr_prng_next(struct rr_prng *p)
{
    uint64_t *s = p->s;
    uint64_t result = rr_prng_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rr_prng_rotl(s[3], 45);
    return result;
}

/* Uniform in [lo, hi). Requires lo < hi. Bias is negligible for the small ranges used. */
static inline uint64_t rr_prng_range(struct rr_prng *p, uint64_t lo, uint64_t hi)
{
    return lo + rr_prng_next(p) % (hi - lo);
}

/* True with probability per_million / 1e6. */
static inline int rr_prng_chance(struct rr_prng *p, uint32_t per_million)
{
    return rr_prng_next(p) % 1000000u < per_million;
}

#endif
