/* lg_buf: a growable byte buffer with a hard cap fixed at init (curl's
 * curlx_dyn_init(s, toobig)).  Every buffer the engine grows is one of these,
 * so every piece of memory the engine holds on behalf of a connection has a
 * documented limit.  The data is always NUL-terminated (not counted in len)
 * so it can be handed to C string functions when it holds text.
 *
 * Ownership: the struct is the caller's (usually embedded in another
 * struct); `data` is owned by the lg_buf and released by lg_buf_free(). */
#ifndef LG_BUF_H
#define LG_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct lg_buf {
    char *data;  /* heap block, NULL until the first append */
    size_t len;  /* bytes in use */
    size_t cap;  /* bytes allocated (excluding the NUL slot) */
    size_t max;  /* hard limit on len; appends beyond it fail */
} lg_buf;

/* Zero the buffer and set its limit.  A zero-filled lg_buf has max 0 and
 * refuses every append; call this first. */
void lg_buf_init(lg_buf *b, size_t max);

/* Append n bytes.  LG_OK, LG_E_LIMIT (nothing appended: len + n > max) or
 * LG_E_NOMEM. */
int lg_buf_append(lg_buf *b, const void *p, size_t n);

/* Append a NUL-terminated string. */
int lg_buf_puts(lg_buf *b, const char *s);

/* Append printf-formatted text; same returns as lg_buf_append. */
int lg_buf_printf(lg_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int lg_buf_vprintf(lg_buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* Make room for n more bytes without changing len; returns a pointer to the
 * free space or NULL (limit or memory).  Follow with lg_buf_commit(). */
char *lg_buf_reserve(lg_buf *b, size_t n);
void lg_buf_commit(lg_buf *b, size_t n);

/* Drop the first n bytes (n > len drops everything). */
void lg_buf_consume(lg_buf *b, size_t n);

/* Length to zero; memory kept for reuse. */
void lg_buf_reset(lg_buf *b);

/* Release the memory; the buffer is left empty with the same max. */
void lg_buf_free(lg_buf *b);

/* Hand the heap block to the caller (who frees it with free()); the
 * buffer is left empty.  Returns NULL for an empty buffer. */
char *lg_buf_steal(lg_buf *b, size_t *len);

#endif
