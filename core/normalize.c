/* Normalised view for matching (see normalize.h): width folding and
 * removal of invisible characters, with a segment map back to original
 * offsets.  Only complete, valid UTF-8 sequences are recognised; anything
 * else (including a truncated sequence at the end) is copied.  A removal
 * is the one change that can join the bytes on its two sides, so it is
 * made only where that join cannot change how they decode (normalize.h),
 * decided from the character and the one byte after it: no look-back,
 * which a stream window's left edge could not always give. */
#include "normalize.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

void lg_nmap_init(lg_nmap *m)
{
    memset(m, 0, sizeof *m);
}

void lg_nmap_free(lg_nmap *m)
{
    free(m->nofs);
    free(m->oofs);
    free(m->olen);
    memset(m, 0, sizeof *m);
}

/* Remove the invisible character at p[0..len), unless a continuation
 * byte follows it: then it stays, because removing it would put that byte
 * after whatever precedes the character, where it might complete a stray
 * lead byte into a valid character (E4 U+200C BD A0 would become U+4F60).
 * A byte that is not a continuation byte starts a new sequence for any
 * decoder, so then the two sides decode apart exactly as they did around
 * the character.  Valid UTF-8 never has a continuation byte after a
 * complete character: this only ever keeps characters in invalid text. */
static int removal(const unsigned char *p, size_t avail, size_t len, int *repl)
{
    if (avail > len && (p[len] & 0xC0) == 0x80)
        return 0;
    *repl = -1;
    return (int)len;
}

int lg_norm_char(const unsigned char *p, size_t avail, int *repl)
{
    unsigned char c = p[0];
    if (c == 0xC2) {
        if (avail >= 2 && p[1] == 0xAD) /* U+00AD soft hyphen */
            return removal(p, avail, 2, repl);
        return 0;
    }
    if (c == 0xE2 || c == 0xE3 || c == 0xEF) {
        if (avail < 3)
            return 0;
        unsigned b1 = p[1], b2 = p[2];
        if (b2 < 0x80 || b2 > 0xBF)
            return 0;
        unsigned cp = (unsigned)(c & 0x0F) << 12 | (b1 & 0x3Fu) << 6 | (b2 & 0x3Fu);
        if (b1 < 0x80 || b1 > 0xBF)
            return 0;
        if ((cp >= 0x200B && cp <= 0x200D) || cp == 0x2060 || (cp >= 0x202A && cp <= 0x202E) ||
            (cp >= 0x2066 && cp <= 0x2069) || cp == 0xFEFF)
            return removal(p, avail, 3, repl);
        if (cp == 0x3000) {
            *repl = ' ';
            return 3;
        }
        if (cp >= 0xFF01 && cp <= 0xFF5E) {
            *repl = (int)(cp - 0xFF01 + 0x21);
            return 3;
        }
        return 0;
    }
    if (c == 0xF3) { /* U+E0000..U+E007F: F3 A0 80 80 .. F3 A0 81 BF */
        if (avail >= 4 && p[1] == 0xA0 && (p[2] == 0x80 || p[2] == 0x81) && p[3] >= 0x80 &&
            p[3] <= 0xBF)
            return removal(p, avail, 4, repl);
        return 0;
    }
    return 0;
}

size_t lg_norm_pending(const char *p, size_t n)
{
    /* A removable character is 2 (C2 AD), 3 (E2/EF ..) or 4 (F3 A0 ..)
     * bytes; lead bytes are never continuation bytes, so at most one of
     * these can end at n. */
    for (size_t k = 2; k <= 4 && k <= n; k++) {
        int r;
        if (lg_norm_char((const unsigned char *)p + n - k, k, &r) == (int)k && r < 0)
            return k;
    }
    return 0;
}

/* Lead bytes of every character normalisation changes. */
static const unsigned char leads[] = { 0xC2, 0xE2, 0xE3, 0xEF, 0xF3 };

size_t lg_norm_find(const char *p, size_t n, size_t from)
{
    size_t best = n;
    for (size_t k = 0; k < sizeof leads; k++) {
        size_t at = from;
        for (;;) {
            const char *q = at < best ? memchr(p + at, leads[k], best - at) : NULL;
            if (!q)
                break;
            size_t i = (size_t)(q - p);
            int r;
            if (lg_norm_char((const unsigned char *)q, n - i, &r)) {
                best = i;
                break;
            }
            at = i + 1;
        }
    }
    return best;
}

static int seg_add(lg_nmap *m, size_t no, size_t oo, unsigned char ol)
{
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        size_t *a = realloc(m->nofs, cap * sizeof *a);
        if (!a)
            return LG_E_NOMEM;
        m->nofs = a;
        size_t *b = realloc(m->oofs, cap * sizeof *b);
        if (!b)
            return LG_E_NOMEM;
        m->oofs = b;
        unsigned char *c = realloc(m->olen, cap);
        if (!c)
            return LG_E_NOMEM;
        m->olen = c;
        m->cap = cap;
    }
    m->nofs[m->n] = no;
    m->oofs[m->n] = oo;
    m->olen[m->n] = ol;
    m->n++;
    return LG_OK;
}

/* Next position >= from where some lead byte occurs; nx[] caches, per
 * lead byte, its next occurrence (n when none), so every byte of the text
 * is examined by memchr once per lead byte in all. */
static size_t next_lead(const char *p, size_t n, size_t from, size_t *nx)
{
    size_t best = n;
    for (size_t k = 0; k < sizeof leads; k++) {
        if (nx[k] < from) {
            const char *q = memchr(p + from, leads[k], n - from);
            nx[k] = q ? (size_t)(q - p) : n;
        }
        if (nx[k] < best)
            best = nx[k];
    }
    return best;
}

int lg_normalize(const char *in, size_t n, char *out, size_t *outlen, lg_nmap *map)
{
    size_t o = 0, j = 0;
    int open = 0; /* a verbatim segment is open */
    size_t nx[sizeof leads];
    for (size_t k = 0; k < sizeof leads; k++)
        nx[k] = 0;
    int first = 1;
    if (map) {
        map->n = 0;
        map->nlen = 0;
        map->olen_all = n;
    }
    size_t scan = 0; /* next position to look for a lead byte from */
    while (o < n) {
        /* the next character normalisation changes, at or after o */
        size_t c = n;
        int r = 0, l = 0;
        for (;;) {
            size_t at = next_lead(in, n, first ? 0 : scan, nx);
            first = 0;
            if (at >= n)
                break;
            scan = at + 1;
            l = lg_norm_char((const unsigned char *)in + at, n - at, &r);
            if (l) {
                c = at;
                break;
            }
        }
        if (c > o) {
            memcpy(out + j, in + o, c - o);
            if (map && !open && seg_add(map, j, o, 0))
                return LG_E_NOMEM;
            open = 1;
            j += c - o;
            o = c;
        }
        if (o >= n)
            break;
        if (r >= 0) {
            if (map && seg_add(map, j, o, (unsigned char)l))
                return LG_E_NOMEM;
            out[j++] = (char)r;
        }
        open = 0;
        o += (size_t)l;
        scan = o;
    }
    if (map)
        map->nlen = j;
    *outlen = j;
    return LG_OK;
}

/* Index of the last segment starting at or before normalised offset npos
 * (npos < nlen, so one exists). */
static size_t seg_of(const lg_nmap *m, size_t npos)
{
    size_t lo = 0, hi = m->n;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->nofs[mid] <= npos)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

size_t lg_nmap_end(const lg_nmap *m, size_t npos)
{
    if (m->n == 0)
        return m->olen_all;
    if (npos == 0)
        return m->oofs[0];
    size_t k = seg_of(m, npos - 1);
    if (m->olen[k])
        return m->oofs[k] + m->olen[k];
    return m->oofs[k] + (npos - m->nofs[k]);
}

size_t lg_nmap_start(const lg_nmap *m, size_t npos)
{
    if (m->n == 0)
        return m->olen_all;
    if (npos >= m->nlen)
        return lg_nmap_end(m, m->nlen);
    size_t k = seg_of(m, npos);
    if (m->olen[k])
        return m->oofs[k];
    return m->oofs[k] + (npos - m->nofs[k]);
}

size_t lg_nmap_from_orig(const lg_nmap *m, size_t opos)
{
    if (m->n == 0 || opos <= m->oofs[0])
        return 0;
    size_t lo = 0, hi = m->n;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->oofs[mid] <= opos)
            lo = mid;
        else
            hi = mid;
    }
    size_t nend = lo + 1 < m->n ? m->nofs[lo + 1] : m->nlen;
    if (m->olen[lo]) /* a folded character: at its start, or past it */
        return opos == m->oofs[lo] ? m->nofs[lo] : nend;
    size_t d = opos - m->oofs[lo];
    return d < nend - m->nofs[lo] ? m->nofs[lo] + d : nend;
}
