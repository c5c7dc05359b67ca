/* Known answers for runtime/rng.c, straight from the rng.md contract.
 *
 * Philox-4x32-10 vectors (from the Random123 paper's tables), the golden
 * table for seed 42 / stream fnv1a("mlp.linear0.W"): words and uniforms bit
 * for bit, normals against the double-precision reference (f32 within 1e-6
 * relative, the f64 variant within 1e-12), the four fresh_seed values, and
 * a statistical sanity check on 1e5 normals and uniforms. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "runtime/rng.h"

static void check_philox(const uint32_t c[4], const uint32_t k[2], const uint32_t want[4]) {
    uint32_t out[4];
    rt_philox4x32_10(c, k, out);
    for (int i = 0; i < 4; i++)
        cr_expect_eq(out[i], want[i], "word %d: got %08x want %08x", i, out[i], want[i]);
}

Test(rng, philox_zero) {
    const uint32_t c[4] = {0, 0, 0, 0}, k[2] = {0, 0};
    const uint32_t w[4] = {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8};
    check_philox(c, k, w);
}

Test(rng, philox_ones) {
    const uint32_t c[4] = {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff};
    const uint32_t k[2] = {0xffffffff, 0xffffffff};
    const uint32_t w[4] = {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd};
    check_philox(c, k, w);
}

Test(rng, philox_pi) {
    const uint32_t c[4] = {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344};
    const uint32_t k[2] = {0xa4093822, 0x299f31d0};
    const uint32_t w[4] = {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1};
    check_philox(c, k, w);
}

Test(rng, fnv1a) {
    cr_expect_eq(rt_fnv1a32("mlp.linear0.W"), 0xabfe42a2u);
    cr_expect_eq(rt_fnv1a32(""), 0x811C9DC5u);  /* the offset basis */
    cr_expect_eq(rt_fnv1a32("a"), 0xe40c292cu); /* standard FNV-1a test value */
}

static const struct {
    uint32_t word;
    double uniform, normal;
} golden[6] = {
    {0xe653847c, 0.8997118473052979, 0.1529454605183685},
    {0xcdd15fe2, 0.8039760589599609, -0.43355410190025206},
    {0xb4055292, 0.7032061815261841, 0.8361811147001171},
    {0x0370f05f, 0.013442069292068481, 0.0707914372363717},
    {0x1823c60a, 0.09429588913917542, -0.6854580302806746},
    {0x4d131871, 0.3010726273059845, 2.0622275956299285},
};

Test(rng, golden_seed42) {
    const uint64_t seed = 42;
    const uint32_t stream = rt_fnv1a32("mlp.linear0.W");
    for (int i = 0; i < 6; i++) {
        cr_expect_eq(rt_rng_word(seed, stream, (uint64_t)i), golden[i].word, "word %d", i);
        float u = rt_rng_uniform(seed, stream, (uint64_t)i);
        float gu = (float)golden[i].uniform; /* the table prints the f32 exactly */
        cr_expect(memcmp(&u, &gu, sizeof u) == 0, "uniform %d: %.17g vs %.17g", i, (double)u,
                  golden[i].uniform);
        cr_expect_eq((double)u, golden[i].uniform, "uniform %d is exactly the golden value", i);
        double n32 = rt_rng_normal(seed, stream, (uint64_t)i);
        double n64 = rt_rng_normal_f64(seed, stream, (uint64_t)i);
        double ref = golden[i].normal;
        cr_expect(fabs(n32 - ref) <= 1e-6 * fabs(ref), "normal %d: f32 %.9g vs %.17g", i, n32, ref);
        cr_expect(fabs(n64 - ref) <= 1e-12 * fabs(ref), "normal %d: f64 %.17g vs %.17g", i, n64,
                  ref);
    }
}

/* The transform alone must reproduce rt_rng_normal bit for bit. */
Test(rng, normal_from_words) {
    const uint64_t seed = 7;
    for (uint64_t i = 0; i < 64; i++) {
        uint64_t base = i / 4 * 4 + (i % 4 & 2);
        float a = rt_rng_normal(seed, 3, i);
        float b = rt_rng_normal_from_words(rt_rng_word(seed, 3, base),
                                           rt_rng_word(seed, 3, base + 1), (int)(i & 1));
        cr_expect(memcmp(&a, &b, sizeof a) == 0, "index %llu", (unsigned long long)i);
    }
}

/* The mapping: element i is word i%4 of block i/4 with counter (j lo, j hi, stream, 0). */
Test(rng, mapping_counter_and_key) {
    const uint64_t seed = 0x0123456789abcdefull, j = 0x100000002ull;
    const uint32_t key[2] = {0x89abcdef, 0x01234567};
    const uint32_t ctr[4] = {2, 1, 99, 0};
    uint32_t out[4];
    rt_philox4x32_10(ctr, key, out);
    for (int w = 0; w < 4; w++)
        cr_expect_eq(rt_rng_word(seed, 99, j * 4 + (uint64_t)w), out[w]);
}

Test(rng, uniform_edges) {
    cr_expect_eq(rt_rng_uniform_from_word(0), 0x1p-25f);
    cr_expect(rt_rng_uniform_from_word(0x000000ff) > 0.0f);
    cr_expect(rt_rng_uniform_from_word(0x7fffff00) < 1.0f);
    /* f32 rounding (ties to even) takes the top 256 words to exactly 1.0f;
     * Box-Muller then gives r = 0, never a NaN. */
    cr_expect_eq(rt_rng_uniform_from_word(0xffffffff), 1.0f);
    cr_expect_eq(rt_rng_normal_from_words(0xffffffff, 0x12345678, 0), 0.0f);
    cr_expect(isfinite(rt_rng_normal_from_words(0, 0, 0)));
}

Test(rng, fresh_seed) {
    cr_expect_eq(rt_fresh_seed(0, 0, 0), 0x3ed3f23b51dc4d72ull);
    cr_expect_eq(rt_fresh_seed(0, 1, 0), 0xfc031d074b2a1a4cull);
    cr_expect_eq(rt_fresh_seed(42, 0, 0), 0x3fababe99983069bull);
    cr_expect_eq(rt_fresh_seed(42, 7, 1), 0xb40d6319921762d5ull);
}

Test(rng, statistics) {
    const int n = 100000;
    const uint64_t seed = 1234;
    const uint32_t stream = rt_fnv1a32("stats");
    double s = 0, s2 = 0, us = 0, s4 = 0;
    int tails = 0;
    for (int i = 0; i < n; i++) {
        double z = rt_rng_normal(seed, stream, (uint64_t)i);
        cr_assert(isfinite(z), "normal %d not finite", i);
        s += z;
        s2 += z * z;
        s4 += z * z * z * z;
        if (fabs(z) > 3) tails++;
        double u = rt_rng_uniform(seed, stream, (uint64_t)i);
        cr_assert(u > 0.0 && u <= 1.0);
        us += u;
    }
    double mean = s / n, var = s2 / n - mean * mean;
    /* standard errors: mean 0.0032, variance 0.0045, uniform mean 0.0009 */
    cr_expect(fabs(mean) < 0.02, "mean %g", mean);
    cr_expect(fabs(var - 1.0) < 0.03, "variance %g", var);
    cr_expect(fabs(s4 / n - 3.0) < 0.15, "fourth moment %g", s4 / n);
    cr_expect(tails > 200 && tails < 340, "|z| > 3: %d of %d (expect ~270)", tails, n);
    cr_expect(fabs(us / n - 0.5) < 0.005, "uniform mean %g", us / n);
}

/* Streams and seeds must not collide trivially. */
Test(rng, streams_differ) {
    int same = 0;
    for (uint64_t i = 0; i < 1000; i++)
        same += rt_rng_word(42, 1, i) == rt_rng_word(42, 2, i);
    cr_expect(same < 3);
    same = 0;
    for (uint64_t i = 0; i < 1000; i++)
        same += rt_rng_word(1, 7, i) == rt_rng_word(2, 7, i);
    cr_expect(same < 3);
}
