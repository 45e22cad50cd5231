/* SHA-256 per FIPS 180-4.  The portable block function is written for
 * clarity over speed; on CPUs with the x86 SHA extensions the blocks go to
 * sha256_x86.c instead (chosen once, at the first hash), since every event
 * hashes its texts and the portable function was a tenth of the engine's
 * work on a short request. */
#include "sha256.h"

#include <stdatomic.h>
#include <string.h>

const uint32_t lg__sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void compress(uint32_t h[8], const uint8_t b[64])
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)b[4 * i] << 24 | (uint32_t)b[4 * i + 1] << 16 |
               (uint32_t)b[4 * i + 2] << 8 | b[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], bb = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = hh + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + lg__sha256_k[i] + w[i];
        uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & bb) ^ (a & c) ^ (bb & c));
        hh = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = bb;
        bb = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += bb;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += hh;
}

/* Which block function: 0 not chosen yet, 1 portable, 2 the instructions.
 * Relaxed is enough: every thread that chooses chooses the same. */
static atomic_int impl;

static void blocks(uint32_t h[8], const uint8_t *p, size_t n)
{
    int m = atomic_load_explicit(&impl, memory_order_relaxed);
    if (__builtin_expect(m == 0, 0)) {
        m = lg__sha256_hw_available() ? 2 : 1;
        atomic_store_explicit(&impl, m, memory_order_relaxed);
    }
    if (m == 2) {
        lg__sha256_blocks_hw(h, p, n);
        return;
    }
    for (; n; n--, p += 64)
        compress(h, p);
}

int lg__sha256_use_hw(int on)
{
    int m = on && lg__sha256_hw_available() ? 2 : 1;
    atomic_store_explicit(&impl, m, memory_order_relaxed);
    return m == 2;
}

void lg_sha256_init(lg_sha256 *s)
{
    static const uint32_t iv[8] = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 };
    memcpy(s->h, iv, sizeof iv);
    s->bytes = 0;
    s->fill = 0;
}

void lg_sha256_update(lg_sha256 *s, const void *p, size_t n)
{
    const uint8_t *in = p;
    if (!n)
        return;
    s->bytes += n;
    if (s->fill) {
        size_t take = 64 - s->fill < n ? 64 - s->fill : n;
        memcpy(s->block + s->fill, in, take);
        s->fill += take;
        in += take;
        n -= take;
        if (s->fill < 64)
            return;
        blocks(s->h, s->block, 1);
        s->fill = 0;
    }
    /* Whole blocks straight from the input, without copying them. */
    if (n >= 64) {
        blocks(s->h, in, n / 64);
        in += n / 64 * 64;
        n %= 64;
    }
    memcpy(s->block, in, n);
    s->fill = n;
}

void lg_sha256_final(lg_sha256 *s, uint8_t out[32])
{
    /* 0x80, zeros to 56 mod 64, the bit length: a block at a time (one
     * hash per event; padding byte by byte cost more than compressing) */
    uint64_t bits = s->bytes * 8;
    s->block[s->fill++] = 0x80;
    if (s->fill > 56) {
        memset(s->block + s->fill, 0, 64 - s->fill);
        blocks(s->h, s->block, 1);
        s->fill = 0;
    }
    memset(s->block + s->fill, 0, 56 - s->fill);
    for (int i = 0; i < 8; i++)
        s->block[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
    blocks(s->h, s->block, 1);
    s->fill = 0;
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(s->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)s->h[i];
    }
}

void lg_sha256_hex(const void *p, size_t n, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    lg_sha256 s;
    uint8_t d[32];
    lg_sha256_init(&s);
    lg_sha256_update(&s, p, n);
    lg_sha256_final(&s, d);
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[64] = '\0';
}
