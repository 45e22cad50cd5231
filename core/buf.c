/* lg_buf implementation.  Growth doubles, bounded by max, so a buffer near
 * its cap does not over-allocate by more than the cap itself. */
#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

void lg_buf_init(lg_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

static int grow(lg_buf *b, size_t need)
{
    /* data may still be NULL with need == 0: allocate anyway, so that the
     * NUL terminator always has somewhere to go. */
    if (need <= b->cap && b->data)
        return LG_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > ((size_t)-1) / 4 ? need : cap * 2;
    if (cap > b->max)
        cap = b->max;
    char *d = realloc(b->data, cap + 1);
    if (!d)
        return LG_E_NOMEM;
    b->data = d;
    b->cap = cap;
    return LG_OK;
}

char *lg_buf_reserve(lg_buf *b, size_t n)
{
    if (n > b->max || b->len > b->max - n)
        return NULL;
    if (grow(b, b->len + n) != LG_OK)
        return NULL;
    return b->data + b->len;
}

void lg_buf_commit(lg_buf *b, size_t n)
{
    b->len += n;
    b->data[b->len] = '\0';
}

int lg_buf_append(lg_buf *b, const void *p, size_t n)
{
    if (n > b->max || b->len > b->max - n)
        return LG_E_LIMIT;
    int rc = grow(b, b->len + n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return LG_OK;
}

int lg_buf_puts(lg_buf *b, const char *s)
{
    return lg_buf_append(b, s, strlen(s));
}

int lg_buf_vprintf(lg_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    /* Events are built from many small printf-style appends: format
     * straight into the spare capacity, and only when that is too small
     * measure, grow and format again (vsnprintf twice costs twice). */
    va_copy(ap2, ap);
    if (b->data && b->cap > b->len) {
        size_t room = b->cap - b->len + 1;
        int k = vsnprintf(b->data + b->len, room, fmt, ap2);
        if (k >= 0 && (size_t)k < room && (size_t)k <= b->max - b->len) {
            va_end(ap2);
            b->len += (size_t)k;
            return LG_OK;
        }
        b->data[b->len] = '\0';
    }
    va_end(ap2);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return LG_E_INVAL;
    char *p = lg_buf_reserve(b, (size_t)n);
    if (!p)
        return (size_t)n > b->max - b->len ? LG_E_LIMIT : LG_E_NOMEM;
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    lg_buf_commit(b, (size_t)n);
    return LG_OK;
}

int lg_buf_printf(lg_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = lg_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

void lg_buf_consume(lg_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
    }
    if (b->data)
        b->data[b->len] = '\0';
}

void lg_buf_reset(lg_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void lg_buf_free(lg_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

char *lg_buf_steal(lg_buf *b, size_t *len)
{
    char *d = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return d;
}
