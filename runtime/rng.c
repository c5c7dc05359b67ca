/* Reference Philox-4x32-10 and the (seed, stream, index) -> number mapping.
 *
 * This is the plain C oracle for rng.md: the interpreter calls it directly and
 * every kernel emitter is tested against it. Philox is ten rounds of two
 * 32x32->64 multiplies with a Weyl-sequence key schedule; element i of a
 * stream reads word i % 4 of block i / 4, so any element can be regenerated
 * alone. Normals use Box-Muller in f32 with the project's own log, sin and
 * cos (runtime/vmath.c), never the C library's, so that the interpreter and
 * every compiled kernel give the same bits whatever libm the machine has.
 * Nothing here holds state. */
#include "runtime/rng.h"

#include <math.h>

#include "runtime/vmath.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u /* golden ratio */
#define PHILOX_W1 0xBB67AE85u /* sqrt(3) - 1 */
#define FRESH_SEED_TAG 0x5EED5EEDu

void rt_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0, p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/* The four words of block j of (seed, stream). */
static void block(uint64_t seed, uint32_t stream, uint64_t j, uint32_t out[4]) {
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    const uint32_t ctr[4] = {(uint32_t)j, (uint32_t)(j >> 32), stream, 0};
    rt_philox4x32_10(ctr, key, out);
}

uint32_t rt_rng_word(uint64_t seed, uint32_t stream, uint64_t index) {
    uint32_t w[4];
    block(seed, stream, index / 4, w);
    return w[index % 4];
}

/* 24 random bits plus one half, scaled: the sum is rounded to f32 (ties to
 * even), so the top word values round up to exactly 1.0f; 0 never occurs,
 * which is what the logarithm in Box-Muller needs. */
float rt_rng_uniform_from_word(uint32_t x) {
    return ((float)(x >> 8) + 0.5f) * 0x1p-24f;
}

float rt_rng_uniform(uint64_t seed, uint32_t stream, uint64_t index) {
    return rt_rng_uniform_from_word(rt_rng_word(seed, stream, index));
}

float rt_rng_normal_from_words(uint32_t w_radius, uint32_t w_angle, int odd) {
    return rt_vm_normal_from_words(w_radius, w_angle, odd);
}

float rt_rng_normal(uint64_t seed, uint32_t stream, uint64_t index) {
    uint32_t w[4];
    block(seed, stream, index / 4, w);
    unsigned pair = (unsigned)(index % 4) & 2u; /* words (0,1) or (2,3) */
    return rt_rng_normal_from_words(w[pair], w[pair + 1], (int)(index & 1));
}

/* The same pair and uniforms (as f32 values, exactly), transformed in double. */
double rt_rng_normal_f64(uint64_t seed, uint32_t stream, uint64_t index) {
    uint32_t w[4];
    block(seed, stream, index / 4, w);
    unsigned pair = (unsigned)(index % 4) & 2u;
    double u1 = rt_rng_uniform_from_word(w[pair]);
    double u2 = rt_rng_uniform_from_word(w[pair + 1]);
    double r = sqrt(-2.0 * log(u1));
    double theta = 6.28318530717958647692 * u2;
    return (index & 1) ? r * sin(theta) : r * cos(theta);
}

uint64_t rt_fresh_seed(uint64_t run_seed, uint64_t t, uint32_t k) {
    const uint32_t key[2] = {(uint32_t)run_seed, (uint32_t)(run_seed >> 32)};
    const uint32_t ctr[4] = {(uint32_t)t, (uint32_t)(t >> 32), k, FRESH_SEED_TAG};
    uint32_t out[4];
    rt_philox4x32_10(ctr, key, out);
    return (uint64_t)out[0] | ((uint64_t)out[1] << 32);
}

uint32_t rt_fnv1a32(const char *s) {
    uint32_t h = 0x811C9DC5u;
    for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) {
        h ^= *p;
        h *= 0x01000193u;
    }
    return h;
}
