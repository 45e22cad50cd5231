/* What the fuzz targets share: an invariant check that aborts (so
 * libFuzzer and the seed replay both report it), and one UTF-8 decoder for
 * their independent checks, written apart from the code under test so
 * that a shared bug cannot hide. */
#ifndef FUZZ_UTIL_H
#define FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                             \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                     \
            abort();                                                            \
        }                                                                       \
    } while (0)

/* The character at s[i] (i < n): its length, with the code point in *cp;
 * 0 when it is not well-formed UTF-8 (overlong, surrogate, > U+10FFFF,
 * truncated). */
static inline size_t fz_utf8_char(const uint8_t *s, size_t n, size_t i, uint32_t *cp)
{
    uint32_t c = s[i], min;
    size_t k;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        k = 2, c &= 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        k = 3, c &= 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        k = 4, c &= 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n - i < k)
        return 0;
    for (size_t j = 1; j < k; j++) {
        if ((s[i + j] & 0xC0) != 0x80)
            return 0;
        c = c << 6 | (s[i + j] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return k;
}

#endif
