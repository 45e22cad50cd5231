/* SHA-256 (FIPS 180-4), so that events can identify a text without
 * storing it.  Small and self-contained: one hash per inspected message
 * does not justify a crypto library dependency. */
#ifndef LG_SHA256_H
#define LG_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct lg_sha256 {
    uint32_t h[8];      /* chaining state */
    uint64_t bytes;     /* message length so far */
    uint8_t block[64];  /* partial block */
    size_t fill;        /* bytes in block */
} lg_sha256;

void lg_sha256_init(lg_sha256 *s);
void lg_sha256_update(lg_sha256 *s, const void *p, size_t n);
void lg_sha256_final(lg_sha256 *s, uint8_t out[32]);

/* One-shot, as 64 lowercase hex digits plus NUL. */
void lg_sha256_hex(const void *p, size_t n, char out[65]);

/* ==== Internal: the block functions (sha256.c, sha256_x86.c, tests) ==== */

/* The round constants (FIPS 180-4 §4.2.2), for both block functions. */
extern const uint32_t lg__sha256_k[64];
/* 1 when the CPU has SHA-256 instructions lg__sha256_blocks_hw can use. */
int lg__sha256_hw_available(void);
/* Hash nblocks whole 64-byte blocks at p into h on those instructions;
 * call only when lg__sha256_hw_available() said 1. */
void lg__sha256_blocks_hw(uint32_t h[8], const uint8_t *p, size_t nblocks);
/* Which block function lg_sha256_* use: on != 0 the instructions when the
 * CPU has them (the default), 0 the portable C.  Returns 1 when the
 * instructions are now in use.  For tests, which check both; not to be
 * called while another thread hashes. */
int lg__sha256_use_hw(int on);

#endif
