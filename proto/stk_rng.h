/* stk_rng.h: counter-based randomness for everything that must be random but
 * reproducible: the epoch order, every crop and flip, the train/val hash split, the
 * synthetic images.
 *
 * There is no generator state: a value is a pure function of (key, counter), so any
 * sample can be produced alone, by any process or thread, in any order, with identical
 * results (what lets N loaders produce byte-identical batches for any N). splitmix64's
 * finaliser is the mixing function (Steele, Lea, Flood 2014). Never rand(). */
#ifndef STK_RNG_H
#define STK_RNG_H

#include <stddef.h>
#include <stdint.h>

#define STK_RNG_GOLDEN 0x9E3779B97F4A7C15ull /* splitmix64's increment */

/* The mixing functions also compile for the GPU (cuda_elem.cu's dropout masks), so both
 * backends draw the same masks from one definition. */
#ifdef __CUDACC__
#define STK_RNG_HD __host__ __device__
#else
#define STK_RNG_HD
#endif

/* Returns splitmix64's finaliser of x: a bijection on 64 bits with good avalanche. */
STK_RNG_HD static inline uint64_t stk_rng_mix(uint64_t x) {
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBull;
    x ^= x >> 31;
    return x;
}

/* Returns the counter-th output of the splitmix64 stream seeded with key. */
STK_RNG_HD static inline uint64_t stk_rng_at(uint64_t key, uint64_t counter) {
    return stk_rng_mix(key + (counter + 1) * STK_RNG_GOLDEN);
}

/* Returns a key derived from a parent key and one more coordinate (epoch, sample...). */
STK_RNG_HD static inline uint64_t stk_rng_key(uint64_t parent, uint64_t coord) {
    return stk_rng_mix(stk_rng_mix(parent) ^ (coord + STK_RNG_GOLDEN));
}

/* Returns a uniform double in [0, 1) from the top 53 bits of h. */
STK_RNG_HD static inline double stk_rng_unit(uint64_t h) {
    return (double)(h >> 11) * 0x1.0p-53;
}

/* Returns a uniform integer in [0, n) for n >= 1 (bias below 2^-40 for n < 2^24). */
static inline uint64_t stk_rng_below(uint64_t h, uint64_t n) {
    return (uint64_t)(((unsigned __int128)h * n) >> 64);
}

/* Returns the 64-bit FNV-1a hash of a NUL-terminated string (stable across runs and
 * hosts, used to key a sample by its relative path). */
static inline uint64_t stk_rng_fnv1a(const char *s) {
    uint64_t h = 0xCBF29CE484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001B3ull;
    return h;
}

#endif
