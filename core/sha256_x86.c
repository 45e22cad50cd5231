/* SHA-256 block function on the x86 SHA extensions (SHA-NI: sha256rnds2,
 * sha256msg1, sha256msg2), used by sha256.c when the CPU has them.  Every
 * event hashes the texts it reports, once per request and once per answer,
 * and the portable block function costs some 4,000 instructions a block;
 * these instructions do a block in a few hundred.
 *
 * Outside facts: CPUID leaf 7 (subleaf 0) EBX bit 29 says the SHA
 * extensions are there; they come with SSSE3 (pshufb, palignr) and SSE4.1
 * (pblendw), which this code also uses and checks for (leaf 1 ECX bits 9
 * and 19).  The state layout the instructions want (ABEF / CDGH in two
 * registers) and the message-schedule recurrence are Intel's ("Intel SHA
 * Extensions", 2013).  Compilers for other targets get a stub that says
 * the extensions are absent, so sha256.c never calls the block function. */
#include "sha256.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))

#include <cpuid.h>
#include <immintrin.h>

int lg__sha256_hw_available(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    int ssse3 = (c >> 9) & 1, sse41 = (c >> 19) & 1;
    if (!ssse3 || !sse41 || __get_cpuid_max(0, NULL) < 7)
        return 0;
    __cpuid_count(7, 0, a, b, c, d);
    return (b >> 29) & 1;
}

/* Four rounds on the schedule words in m (W[4g..4g+3]): the instruction
 * does two rounds with the two low lanes of its message operand. */
#define ROUNDS4(m, g)                                                          \
    do {                                                                       \
        __m128i k4 = _mm_loadu_si128((const __m128i *)&lg__sha256_k[4 * (g)]); \
        __m128i wk = _mm_add_epi32((m), k4);                                   \
        s1 = _mm_sha256rnds2_epu32(s1, s0, wk);                                \
        s0 = _mm_sha256rnds2_epu32(s0, s1, _mm_shuffle_epi32(wk, 0x0E));       \
    } while (0)

/* W[4g..4g+3] from the four groups before it, held in a (g-4), b (g-3),
 * c (g-2) and d (g-1); the result replaces a. */
#define SCHEDULE(a, b, c, d)                                                   \
    (a) = _mm_sha256msg2_epu32(                                                \
        _mm_add_epi32(_mm_sha256msg1_epu32((a), (b)), _mm_alignr_epi8((d), (c), 4)), (d))

__attribute__((target("sha,ssse3,sse4.1")))
void lg__sha256_blocks_hw(uint32_t h[8], const uint8_t *p, size_t nblocks)
{
    /* Big-endian words: reverse the bytes of each 32-bit lane. */
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    /* Lanes named high to low, as Intel does. */
    __m128i t = _mm_loadu_si128((const __m128i *)&h[0]);  /* DCBA */
    __m128i s1 = _mm_loadu_si128((const __m128i *)&h[4]); /* HGFE */
    t = _mm_shuffle_epi32(t, 0xB1);                       /* CDAB */
    s1 = _mm_shuffle_epi32(s1, 0x1B);                     /* EFGH */
    __m128i s0 = _mm_alignr_epi8(t, s1, 8);               /* ABEF */
    s1 = _mm_blend_epi16(s1, t, 0xF0);                    /* CDGH */
    for (; nblocks; nblocks--, p += 64) {
        __m128i save0 = s0, save1 = s1;
        __m128i m0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 0)), bswap);
        __m128i m1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16)), bswap);
        __m128i m2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 32)), bswap);
        __m128i m3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 48)), bswap);
        ROUNDS4(m0, 0);
        ROUNDS4(m1, 1);
        ROUNDS4(m2, 2);
        ROUNDS4(m3, 3);
        for (int g = 4; g < 16; g += 4) {
            SCHEDULE(m0, m1, m2, m3);
            ROUNDS4(m0, g);
            SCHEDULE(m1, m2, m3, m0);
            ROUNDS4(m1, g + 1);
            SCHEDULE(m2, m3, m0, m1);
            ROUNDS4(m2, g + 2);
            SCHEDULE(m3, m0, m1, m2);
            ROUNDS4(m3, g + 3);
        }
        s0 = _mm_add_epi32(s0, save0);
        s1 = _mm_add_epi32(s1, save1);
    }
    t = _mm_shuffle_epi32(s0, 0x1B);         /* FEBA */
    s1 = _mm_shuffle_epi32(s1, 0xB1);        /* DCHG */
    s0 = _mm_blend_epi16(t, s1, 0xF0);       /* DCBA */
    s1 = _mm_alignr_epi8(s1, t, 8);          /* HGFE */
    _mm_storeu_si128((__m128i *)&h[0], s0);
    _mm_storeu_si128((__m128i *)&h[4], s1);
}

#else

int lg__sha256_hw_available(void)
{
    return 0;
}

void lg__sha256_blocks_hw(uint32_t h[8], const uint8_t *p, size_t nblocks)
{
    (void)h;
    (void)p;
    (void)nblocks;
}

#endif
