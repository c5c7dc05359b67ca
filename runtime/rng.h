/* Philox-4x32-10 and the mapping from (seed, stream, index) to numbers.
 *
 * The reference implementation of ../docs/rng.md: every backend must give
 * the same words and uniforms bit for bit, and normals within the stated
 * tolerance. Nothing here holds state. */
#ifndef DFLOW_RUNTIME_RNG_H
#define DFLOW_RUNTIME_RNG_H

#include <stdint.h>

/* out = Philox4x32-10(counter ctr, key key). */
void rt_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);
/* The 32-bit word for element `index` of (seed, stream). */
uint32_t rt_rng_word(uint64_t seed, uint32_t stream, uint64_t index);
/* ((x >> 8) + 0.5) * 2^-24: in (0, 1), exact in f32. */
float rt_rng_uniform_from_word(uint32_t x);
float rt_rng_uniform(uint64_t seed, uint32_t stream, uint64_t index);
/* Box-Muller on the element's pair (words 0,1 or 2,3 of its block), in f32. */
float rt_rng_normal(uint64_t seed, uint32_t stream, uint64_t index);
/* The Box-Muller transform alone, for kernels that already hold a block's
 * words: w_radius/w_angle are words (0,1) or (2,3); odd selects sin over cos.
 * rt_rng_normal(s, st, i) == this on its pair with odd = i & 1, bit for bit. */
float rt_rng_normal_from_words(uint32_t w_radius, uint32_t w_angle, int odd);
/* Double-precision normal, for reference checks. */
double rt_rng_normal_f64(uint64_t seed, uint32_t stream, uint64_t index);
/* The k-th fresh seed of step t of a run with seed S. */
uint64_t rt_fresh_seed(uint64_t run_seed, uint64_t t, uint32_t k);
/* FNV-1a 32-bit hash: the stream of a parameter path or a source location. */
uint32_t rt_fnv1a32(const char *s);

#endif
