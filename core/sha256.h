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

#endif
