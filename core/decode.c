/* Encoded-run detection and decoding for decode-and-rescan (contract in
 * decode.h).  Ordinary text must cost almost nothing, so the search has
 * three levels.  A pre-filter (skip_plain) passes over 16-byte blocks with
 * SSE2 (a portable byte loop elsewhere) until it sees what every run needs
 * somewhere in its first 16 bytes: a stretch of base64-like or
 * spaced-hex-like bytes, or a '%' or '\'.  From the token holding that
 * (a maximal run of printable non-space ASCII), tokens that could start a
 * run are examined (scan_token), jumping from word start to word start,
 * and a detector is called only where the bytes at hand can hold its
 * minimum.  The detectors (try_*) find the end of their run while decoding
 * it into a sink that validates UTF-8 and counts good and bad characters,
 * so a run is read once whether it is accepted or not.
 *
 * Linear time for any input and any sequence of calls: each detector
 * records in the iterator where the run it last examined ended and never
 * starts before that, so the runs one detector examines are disjoint (two
 * exceptions read a little twice: a spaced detector restarts at the last
 * byte of its run, and a base64 run accepted without its last line lets
 * that line be examined again).  The pre-filters never change the result:
 * lg__decode_next_ref runs without them, and the fuzz target compares. */
#include "decode.h"

#include <stdint.h>
#include <string.h>

#include "error.h"

#if defined(__SSE2__) && !defined(LG_DECODE_NO_SIMD) /* the define tests the fallback */
#define DECODE_SSE2 1
#include <emmintrin.h>
#endif

/* ==== Character classes ==== */

enum {
    C_TOK = 0x001,     /* printable ASCII other than space: token bytes */
    C_B64 = 0x002,     /* A-Z a-z 0-9 + / - _ */
    C_HEX = 0x004,     /* 0-9 a-f A-F */
    C_ALNUM = 0x008,   /* A-Z a-z 0-9 */
    C_URL = 0x010,     /* characters a URL may hold unescaped, and % */
    C_PCT = 0x020,     /* % */
    C_BSL = 0x040,     /* backslash */
    C_BIN = 0x080,     /* 0 1 */
    C_B64STD = 0x100,  /* + / */
    C_B64URL = 0x200,  /* - _ */
    C_SPS = 0x400,     /* what spaced hex and binary are made of: hex digits x X , ; : - space */
    C_NSPEC = 0x800,   /* neither % nor backslash */
    C_B64Q = 0x1000    /* base64 or '=' */
};

#define IS_DIG(c) ((c) >= '0' && (c) <= '9')
#define IS_ALPHA(c) (((c) >= 'A' && (c) <= 'Z') || ((c) >= 'a' && (c) <= 'z'))
#define IS_ALNUM(c) (IS_DIG(c) || IS_ALPHA(c))
#define IS_HEXC(c) (IS_DIG(c) || ((c) >= 'a' && (c) <= 'f') || ((c) >= 'A' && (c) <= 'F'))
#define IS_STD(c) ((c) == '+' || (c) == '/')
#define IS_URLSAFE(c) ((c) == '-' || (c) == '_')
/* RFC 3986 unreserved, reserved, and % (the escapes themselves). */
#define IS_URLC(c)                                                                            \
    (IS_ALNUM(c) || (c) == '-' || (c) == '.' || (c) == '_' || (c) == '~' || (c) == '!' ||     \
     (c) == '$' || (c) == '&' || (c) == '\'' || (c) == '(' || (c) == ')' || (c) == '*' ||     \
     (c) == '+' || (c) == ',' || (c) == ';' || (c) == '=' || (c) == ':' || (c) == '@' ||      \
     (c) == '/' || (c) == '?' || (c) == '#' || (c) == '[' || (c) == ']' || (c) == '%')

#define CLS(c)                                                                                \
    (((c) >= 0x21 && (c) <= 0x7e ? C_TOK : 0) |                                              \
     (IS_ALNUM(c) || IS_STD(c) || IS_URLSAFE(c) ? C_B64 : 0) | (IS_HEXC(c) ? C_HEX : 0) |    \
     (IS_ALNUM(c) ? C_ALNUM : 0) | (IS_URLC(c) ? C_URL : 0) | ((c) == '%' ? C_PCT : 0) |     \
     ((c) == '\\' ? C_BSL : 0) | ((c) == '0' || (c) == '1' ? C_BIN : 0) |                   \
     (IS_STD(c) ? C_B64STD : 0) | (IS_URLSAFE(c) ? C_B64URL : 0) |                          \
     (IS_HEXC(c) || (c) == 'x' || (c) == 'X' || (c) == ',' || (c) == ';' || (c) == ':' ||     \
              (c) == '-' || (c) == ' '                                                        \
          ? C_SPS                                                                             \
          : 0) |                                                                              \
     ((c) == '%' || (c) == '\\' ? 0 : C_NSPEC) |                                           \
     (IS_ALNUM(c) || IS_STD(c) || IS_URLSAFE(c) || (c) == '=' ? C_B64Q : 0))

#define B64V(c)                                                                               \
    (((c) >= 'A' && (c) <= 'Z'   ? (c) - 'A'                                                  \
      : (c) >= 'a' && (c) <= 'z' ? (c) - 'a' + 26                                             \
      : IS_DIG(c)                ? (c) - '0' + 52                                             \
      : (c) == '+' || (c) == '-' ? 62                                                         \
      : (c) == '/' || (c) == '_' ? 63                                                         \
                                 : 0) & 63)

#define T4(F, b) F(b), F((b) + 1), F((b) + 2), F((b) + 3)
#define T16(F, b) T4(F, b), T4(F, (b) + 4), T4(F, (b) + 8), T4(F, (b) + 12)
#define T64(F, b) T16(F, b), T16(F, (b) + 16), T16(F, (b) + 32), T16(F, (b) + 48)
#define T256(F) T64(F, 0), T64(F, 64), T64(F, 128), T64(F, 192)

static const uint16_t cls[256] = { T256(CLS) };
static const uint8_t b64v[256] = { T256(B64V) };

static unsigned hexv(unsigned c)
{
    return (c & 0xF) + (c > '9' ? 9 : 0);
}

/* ==== Detectors and minimums ==== */

enum { D_ESC, D_BIN, D_HEX, D_HEXSP, D_PCT, D_B64 };
_Static_assert(D_B64 + 1 == LG__DECODE_DETECTORS, "lg_decode_iter.seen has one slot per detector");

#define MIN_B64 16   /* characters, padding included */
#define MIN_HEX 16   /* digits */
#define MIN_HEXSP 6  /* bytes */
#define MIN_ESC 4    /* escapes */
#define MIN_PCT 3    /* %HH escapes in one URL run */
#define MIN_BIN 4    /* octets */
#define CLEAN_HEAD 8 /* a text this short may hold no bad character */

/* ==== Sink: output, UTF-8 validation, text statistics ==== */

struct sink {
    unsigned char *out;
    size_t cap;
    size_t w;                /* bytes written: whole characters only */
    size_t total;            /* bytes of the whole decoded text */
    int full;                /* a character did not fit: nothing more is written */
    unsigned char pend[4];   /* the character being assembled */
    unsigned npend, need;    /* its bytes so far, continuation bytes still due */
    unsigned lo, hi;         /* allowed range of the next continuation byte */
    size_t chars, bad, letters;
};

static void sink_init(struct sink *s, unsigned char *out, size_t cap)
{
    memset(s, 0, sizeof *s);
    s->out = out;
    s->cap = cap;
}

/* Which characters make a run look like something other than text. */
static int cp_bad(uint32_t cp)
{
    if (cp < 0x80)
        return (cp < 0x20 || cp == 0x7f) && cp != '\t' && cp != '\n' && cp != '\r';
    return cp < 0xA0 || (cp >= 0xE000 && cp <= 0xF8FF) || (cp >= 0xFDD0 && cp <= 0xFDEF) ||
           (cp & 0xFFFE) == 0xFFFE || cp == 0xFFFD || (cp >= 0x40000 && cp <= 0xDFFFF) ||
           cp >= 0xF0000;
}

static void emit(struct sink *s, const unsigned char *p, unsigned n, uint32_t cp)
{
    s->total += n;
    if (!s->full) {
        if (s->cap - s->w >= n) {
            for (unsigned k = 0; k < n; k++)
                s->out[s->w++] = p[k];
        } else {
            s->full = 1;
        }
    }
    s->chars++;
    if (cp_bad(cp))
        s->bad++;
    else if (cp >= 0x80 || IS_ALPHA(cp))
        s->letters++;
}

static void emit_fffd(struct sink *s)
{
    static const unsigned char r[3] = { 0xEF, 0xBF, 0xBD };
    emit(s, r, 3, 0xFFFD);
    s->need = s->npend = 0;
}

/* Feed one decoded byte.  Invalid sequences become one U+FFFD per maximal
 * subpart (Unicode 3.9, table 3-7 ranges), so the output is valid UTF-8. */
static void put(struct sink *s, unsigned b)
{
    if (s->need) {
        if (b >= s->lo && b <= s->hi) {
            s->pend[s->npend++] = (unsigned char)b;
            s->lo = 0x80;
            s->hi = 0xBF;
            if (--s->need == 0) {
                uint32_t cp;
                if (s->npend == 2)
                    cp = (uint32_t)(s->pend[0] & 0x1F) << 6 | (s->pend[1] & 0x3F);
                else if (s->npend == 3)
                    cp = (uint32_t)(s->pend[0] & 0x0F) << 12 | (uint32_t)(s->pend[1] & 0x3F) << 6 |
                         (s->pend[2] & 0x3F);
                else
                    cp = (uint32_t)(s->pend[0] & 0x07) << 18 | (uint32_t)(s->pend[1] & 0x3F) << 12 |
                         (uint32_t)(s->pend[2] & 0x3F) << 6 | (s->pend[3] & 0x3F);
                emit(s, s->pend, s->npend, cp);
                s->npend = 0;
            }
            return;
        }
        emit_fffd(s); /* then b starts afresh */
    }
    if (b < 0x80) {
        unsigned char c = (unsigned char)b;
        emit(s, &c, 1, b);
        return;
    }
    s->lo = 0x80;
    s->hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
        s->need = 1;
    } else if (b >= 0xE0 && b <= 0xEF) {
        s->need = 2;
        if (b == 0xE0)
            s->lo = 0xA0; /* no overlongs */
        if (b == 0xED)
            s->hi = 0x9F; /* no surrogates */
    } else if (b >= 0xF0 && b <= 0xF4) {
        s->need = 3;
        if (b == 0xF0)
            s->lo = 0x90;
        if (b == 0xF4)
            s->hi = 0x8F; /* <= U+10FFFF */
    } else {
        emit_fffd(s);
        return;
    }
    s->pend[0] = (unsigned char)b;
    s->npend = 1;
}

static void put_cp(struct sink *s, uint32_t cp)
{
    if (cp < 0x80) {
        put(s, cp);
    } else if (cp < 0x800) {
        put(s, 0xC0 | cp >> 6);
        put(s, 0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        put(s, 0xE0 | cp >> 12);
        put(s, 0x80 | (cp >> 6 & 0x3F));
        put(s, 0x80 | (cp & 0x3F));
    } else {
        put(s, 0xF0 | cp >> 18);
        put(s, 0x80 | (cp >> 12 & 0x3F));
        put(s, 0x80 | (cp >> 6 & 0x3F));
        put(s, 0x80 | (cp & 0x3F));
    }
}

/* Text: a letter, and bad characters (invalid UTF-8 included) at most 15%
 * of those beyond the first CLEAN_HEAD.  Random bytes fail this almost
 * always (a random byte is printable ASCII with probability 95/256, and
 * high bytes rarely form valid UTF-8), while a stray byte or two cannot
 * hide a long payload. */
static int texty(const struct sink *s)
{
    size_t allow = s->chars > CLEAN_HEAD ? (s->chars - CLEAN_HEAD) * 3 / 20 : 0;
    return s->letters > 0 && s->bad <= allow;
}

/* ==== The search ==== */

struct ctx {
    const unsigned char *t;
    size_t len;
    lg_decode_iter *it;
    lg_decoded *d;
    unsigned char *out;
    size_t cap;
    struct sink s;
};

static int finish(struct ctx *c, size_t start, size_t end, int kind)
{
    struct sink *s = &c->s;
    if (s->need)
        emit_fffd(s);
    if (!texty(s))
        return 0;
    c->d->start = start;
    c->d->end = end;
    c->d->kind = kind;
    c->d->outlen = s->w;
    c->d->declen = s->total;
    c->d->truncated = s->total > s->w;
    return 1;
}

/* Separator between the bytes of spaced hex and binary; its length or 0. */
static size_t sep_at(const unsigned char *t, size_t len, size_t q)
{
    if (q >= len)
        return 0;
    switch (t[q]) {
    case ' ':
    case ':':
    case '-': return 1;
    case ',':
    case ';': return q + 1 < len && t[q + 1] == ' ' ? 2 : 1;
    default: return 0;
    }
}

/* \uHHHH (6) or \UHHHHHHHH (10) at q: its length, 0 when none. */
static size_t uesc(const unsigned char *t, size_t len, size_t q, uint32_t *cp)
{
    size_t n;
    if (q + 6 <= len && t[q] == '\\' && t[q + 1] == 'u')
        n = 4;
    else if (q + 10 <= len && t[q] == '\\' && t[q + 1] == 'U')
        n = 8;
    else
        return 0;
    uint32_t v = 0;
    for (size_t k = 0; k < n; k++) {
        if (!(cls[t[q + 2 + k]] & C_HEX))
            return 0;
        v = v << 4 | hexv(t[q + 2 + k]);
    }
    *cp = v;
    return n + 2;
}

static int try_esc(struct ctx *c, size_t i)
{
    const unsigned char *t = c->t;
    size_t len = c->len, q = i, n = 0;
    int kind;
    sink_init(&c->s, c->out, c->cap);
    if (t[i + 1] == 'x') {
        kind = LG_ENC_ESC_X;
        while (q + 4 <= len && t[q] == '\\' && t[q + 1] == 'x' && (cls[t[q + 2]] & C_HEX) &&
               (cls[t[q + 3]] & C_HEX)) {
            put(&c->s, hexv(t[q + 2]) << 4 | hexv(t[q + 3]));
            q += 4;
            n++;
        }
    } else {
        kind = LG_ENC_ESC_U;
        uint32_t cp, lo;
        size_t k;
        while ((k = uesc(t, len, q, &cp)) != 0) {
            q += k;
            n++;
            if (cp >= 0xD800 && cp <= 0xDBFF && (k = uesc(t, len, q, &lo)) == 6 && lo >= 0xDC00 &&
                lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                q += k;
                n++;
            } else if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
                cp = 0xFFFD;
            }
            put_cp(&c->s, cp);
        }
    }
    c->it->seen[D_ESC] = q > i ? q : i + 1;
    return n >= MIN_ESC && finish(c, i, q, kind);
}

/* Hex digits (after an optional 0x), not followed by a letter or digit. */
static int try_hex(struct ctx *c, size_t i)
{
    const unsigned char *t = c->t;
    size_t len = c->len, q = i;
    if (t[i] == '0' && i + 1 < len && (t[i + 1] | 0x20) == 'x')
        q = i + 2;
    size_t h = q;
    int letter = 0;
    while (q < len && (cls[t[q]] & C_HEX)) {
        letter |= t[q] > '9';
        q++;
    }
    c->it->seen[D_HEX] = q;
    size_t r = q - h;
    if (r < MIN_HEX || (r & 1) || !letter || (q < len && (cls[t[q]] & C_ALNUM)))
        return 0;
    sink_init(&c->s, c->out, c->cap);
    for (size_t k = h; k < q; k += 2)
        put(&c->s, hexv(t[k]) << 4 | hexv(t[k + 1]));
    return finish(c, i, q, LG_ENC_HEX);
}

/* Bytes of `width` digits (2 hex, or 8 binary), 0x on all or none (hex),
 * one separator throughout.  Returns the run's end; *ntok, *letter. */
static size_t spaced(struct ctx *c, size_t i, int bin, size_t *ntok, int *letter, int *pre0x,
                     size_t *last)
{
    const unsigned char *t = c->t;
    size_t len = c->len, q = i, end = i, sepl = 0;
    unsigned char sep0 = 0;
    int pre = -1;
    unsigned width = bin ? 8 : 2, need = bin ? C_BIN : C_HEX;
    *ntok = 0;
    *letter = 0;
    for (;;) {
        int p2 = !bin && q + 1 < len && t[q] == '0' && (t[q + 1] | 0x20) == 'x' ? 2 : 0;
        if (pre < 0)
            pre = p2;
        else if (p2 != pre)
            break;
        size_t a = q + (size_t)p2;
        if (len - a < width)
            break;
        unsigned v = 0, k;
        for (k = 0; k < width && (cls[t[a + k]] & need); k++)
            v = bin ? v << 1 | (t[a + k] - '0') : v << 4 | hexv(t[a + k]);
        if (k < width || (a + width < len && (cls[t[a + width]] & C_ALNUM)))
            break;
        if (!bin)
            *letter |= t[a] > '9' || t[a + 1] > '9';
        put(&c->s, v);
        ++*ntok;
        *last = q;
        end = a + width;
        size_t sl = sep_at(t, len, end);
        if (!sl)
            break;
        if (!sepl) {
            sepl = sl;
            sep0 = t[end];
        } else if (sl != sepl || t[end] != sep0) {
            break;
        }
        q = end + sl;
    }
    *pre0x = pre > 0;
    return end;
}

/* Where a spaced detector may start again: at the last byte of the run it
 * examined, since a run with another separator may start there (48 65
 * 6c-6c-6f-...); so each byte is examined at most twice. */
static size_t spaced_resume(size_t i, size_t ntok, size_t last, size_t end)
{
    return ntok >= 2 ? last : end > i ? end : i + 1;
}

static int try_hexsp(struct ctx *c, size_t i)
{
    size_t ntok, last = i;
    int letter, pre;
    sink_init(&c->s, c->out, c->cap);
    size_t end = spaced(c, i, 0, &ntok, &letter, &pre, &last);
    c->it->seen[D_HEXSP] = spaced_resume(i, ntok, last, end);
    return ntok >= MIN_HEXSP && (letter || pre) && finish(c, i, end, LG_ENC_HEX_SPACED);
}

static int try_bin(struct ctx *c, size_t i)
{
    const unsigned char *t = c->t;
    size_t len = c->len, q = i;
    while (q < len && (cls[t[q]] & C_BIN))
        q++;
    size_t r = q - i;
    sink_init(&c->s, c->out, c->cap);
    if (r == 8) {
        size_t ntok, last = i;
        int letter, pre;
        size_t end = spaced(c, i, 1, &ntok, &letter, &pre, &last);
        c->it->seen[D_BIN] = spaced_resume(i, ntok, last, end);
        return ntok >= MIN_BIN && finish(c, i, end, LG_ENC_BINARY);
    }
    c->it->seen[D_BIN] = q;
    if (r < 8 * MIN_BIN || r % 8 || (q < len && (cls[t[q]] & C_ALNUM)))
        return 0;
    for (size_t k = i; k < q; k += 8) {
        unsigned v = 0;
        for (size_t j = 0; j < 8; j++)
            v = v << 1 | (t[k + j] - '0');
        put(&c->s, v);
    }
    return finish(c, i, q, LG_ENC_BINARY);
}

static int try_pct(struct ctx *c, size_t i)
{
    const unsigned char *t = c->t;
    size_t len = c->len, q = i, n = 0;
    sink_init(&c->s, c->out, c->cap);
    while (q < len && (cls[t[q]] & C_URL)) {
        if (t[q] == '%' && len - q > 2 && (cls[t[q + 1]] & cls[t[q + 2]] & C_HEX)) {
            put(&c->s, hexv(t[q + 1]) << 4 | hexv(t[q + 2]));
            q += 3;
            n++;
        } else {
            put(&c->s, t[q] == '+' ? ' ' : t[q]);
            q++;
        }
    }
    c->it->seen[D_PCT] = q;
    return n >= MIN_PCT && finish(c, i, q, LG_ENC_PERCENT);
}

static int b64_kind(unsigned fl)
{
    return fl & C_B64URL ? LG_ENC_BASE64URL : LG_ENC_BASE64;
}

static int b64_mixed(unsigned fl)
{
    return (fl & C_B64STD) && (fl & C_B64URL);
}

/* Base64 from i, over line breaks as the tools wrap it: every line but the
 * last as long as the first (a multiple of 4, at least MIN_B64), the last
 * no longer.  Each full line is whole quanta, so the decoded text up to any
 * line break is kept (snap) in case the last line turns out not to belong:
 * a word on the line after a blob that happens to be base64 (it spoils the
 * padding, or decodes to bad characters). */
static int try_b64(struct ctx *c, size_t i)
{
    const unsigned char *t = c->t;
    size_t len = c->len, q = i, line0 = i, linelen = 0, nch = 0, seg;
    size_t snap_end = 0;
    unsigned fl = 0, snap_fl = 0, k = 0;
    uint32_t acc = 0;
    struct sink snap;
    int have_snap = 0;
    sink_init(&c->s, c->out, c->cap);
    memset(&snap, 0, sizeof snap);
    for (;;) {
        while (q < len && (cls[t[q]] & C_B64)) {
            fl |= cls[t[q]];
            acc = acc << 6 | b64v[t[q]];
            if (++k == 4) {
                put(&c->s, acc >> 16);
                put(&c->s, acc >> 8 & 0xFF);
                put(&c->s, acc & 0xFF);
                k = 0;
                acc = 0;
            }
            q++;
        }
        seg = q - line0;
        nch += seg;
        if (q < len && seg >= MIN_B64 && seg % 4 == 0 && (!linelen || seg == linelen)) {
            size_t nx = t[q] == '\n' ? q + 1
                        : t[q] == '\r' && q + 1 < len && t[q + 1] == '\n' ? q + 2
                                                                          : q;
            if (nx > q && nx < len && (cls[t[nx]] & C_B64)) {
                linelen = seg;
                snap = c->s;
                snap_end = q;
                snap_fl = fl;
                have_snap = 1;
                q = line0 = nx;
                continue;
            }
        }
        break;
    }
    size_t npad = 0;
    while (q < len && t[q] == '=' && npad < 3) {
        q++;
        npad++;
    }
    c->it->seen[D_B64] = q;
    int ok = nch + npad >= MIN_B64 && !b64_mixed(fl) && !(have_snap && seg + npad > linelen);
    if (npad)
        ok = ok && ((k == 2 && npad == 2) || (k == 3 && npad == 1));
    /* The bits after the last byte are zero in every encoder's output. */
    if (k == 1 || (k == 2 && (acc & 0xF)) || (k == 3 && (acc & 0x3)))
        ok = 0;
    if (ok && k == 2) {
        put(&c->s, acc >> 4);
    } else if (ok && k == 3) {
        put(&c->s, acc >> 10);
        put(&c->s, acc >> 2 & 0xFF);
    }
    if (ok && c->s.need)
        emit_fffd(&c->s);
    /* A last line that is a third or more bad characters is a word, not
     * the end of the blob (a stray bad byte in a real last line is not). */
    int snap_ok = have_snap && !b64_mixed(snap_fl);
    int word = snap_ok && c->s.bad > snap.bad &&
               3 * (c->s.bad - snap.bad) >= c->s.chars - snap.chars;
    if (ok && !word && finish(c, i, q, b64_kind(fl)))
        return 1;
    if (snap_ok) {
        struct sink full = c->s;
        c->s = snap;
        if (finish(c, i, snap_end, b64_kind(snap_fl))) {
            c->it->seen[D_B64] = snap_end;
            return 1;
        }
        c->s = full;
        if (ok && finish(c, i, q, b64_kind(fl)))
            return 1;
    }
    return 0;
}

/* Base64 characters (and padding) from i: enough for a run? */
static int b64_long(const unsigned char *t, size_t len, size_t i)
{
    size_t q = i;
    while (q < len && (cls[t[q]] & C_B64))
        q++;
    for (size_t pad = 0; pad < 2 && q < len && t[q] == '='; pad++)
        q++;
    return q - i >= MIN_B64;
}

/* Every position of t[t0..t1) where a run may start.  A run starts at a
 * backslash or after a byte that is not a letter or digit, so the loop
 * jumps over letters and digits, and a detector is called only when the
 * bytes at hand can hold its minimum (skipping a call that would fail
 * changes nothing: no position it would have passed over starts a run of
 * its kind). */
static int scan_token(struct ctx *c, size_t t0, size_t t1, unsigned tokcls)
{
    const unsigned char *t = c->t;
    size_t len = c->len, i = t0;
    const size_t *seen = c->it->seen;
    while (i < t1) {
        unsigned k = cls[t[i]], pk = i ? cls[t[i - 1]] : 0;
        size_t j = i + 1;
        if (k & C_ALNUM) {
            unsigned a = k;
            while (j < t1 && (cls[t[j]] & C_ALNUM))
                a &= cls[t[j++]];
            if (pk & C_ALNUM) { /* resumed inside a word */
                i = j;
                continue;
            }
            size_t r = j - i;
            int ox = r >= 4 && t[i] == '0' && (t[i + 1] | 0x20) == 'x';
            if ((a & C_BIN) && (r == 8 || (r >= 8 * MIN_BIN && r % 8 == 0)) && i >= seen[D_BIN] &&
                try_bin(c, i))
                return 1;
            if (((r >= MIN_HEX && (a & C_HEX)) || (ox && r >= MIN_HEX + 2)) && i >= seen[D_HEX] &&
                try_hex(c, i))
                return 1;
            if (((r == 2 && (a & C_HEX)) || (ox && r == 4)) && i >= seen[D_HEXSP] &&
                try_hexsp(c, i))
                return 1;
        } else if (t[i] == '\\') {
            if (i >= seen[D_ESC] && j < len && (t[j] == 'x' || t[j] == 'u' || t[j] == 'U') &&
                try_esc(c, i))
                return 1;
        }
        if ((tokcls & C_PCT) && (k & C_URL) && !(pk & C_URL) && i >= seen[D_PCT] && try_pct(c, i))
            return 1;
        if ((k & C_B64) && !(pk & C_B64) && i >= seen[D_B64] && b64_long(t, len, i) &&
            try_b64(c, i))
            return 1;
        i = j;
    }
    return 0;
}

/* Could the token t[t0..p) end with the first byte of a spaced run
 * (" 48 65", "0x48, 0x65", "01001000 01100101")? */
static int spaced_tail(const unsigned char *t, size_t len, size_t t0, size_t p)
{
    if (p >= len || t[p] != ' ')
        return 0;
    size_t q = p;
    if (t[q - 1] == ',' || t[q - 1] == ';')
        q--;
    if (q - t0 < 2 || !(cls[t[q - 1]] & cls[t[q - 2]] & C_HEX))
        return 0;
    size_t s = q - 2;
    if (s == t0 || !(cls[t[s - 1]] & C_ALNUM))
        return 1;
    if ((t[s - 1] | 0x20) == 'x' && s - t0 >= 2 && t[s - 2] == '0' &&
        (s - 2 == t0 || !(cls[t[s - 3]] & C_ALNUM)))
        return 1;
    if (q - t0 < 8)
        return 0;
    for (size_t b = q - 8; b < q; b++)
        if (!(cls[t[b]] & C_BIN))
            return 0;
    return q - 8 == t0 || !(cls[t[q - 9]] & C_ALNUM);
}

/* ==== The pre-filter ==== */

/* The first offset at or after p where a run may start, or len when none
 * can.  A run needs one of: 16 bytes in a row of base64 characters or '='
 * (base64, hex, unspaced binary, spaced runs with '-'); 15 bytes in a row of
 * hex digits, x, X, ',', ';', ':', '-' or space (a spaced run of 6 bytes is
 * 17); or a '%' or '\' (escapes, percent-encoding).  The offset returned is
 * the start of the first such stretch, or the '%' or '\'; the run itself
 * may start earlier in the same token. */
#ifdef DECODE_SSE2
/* Bytes of v in [lo, hi], as a 16-bit mask: one add and one signed compare
 * (v - lo, shifted into the signed range, below hi - lo + 1). */
#define IN_RANGE(v, lo, hi)                                                                   \
    _mm_cmpgt_epi8(_mm_set1_epi8((char)((hi) - (lo)-127)),                                    \
                   _mm_add_epi8((v), _mm_set1_epi8((char)(128 - (lo)))))

/* 16 bytes at a time; the masks of the previous block make a 32-byte
 * window, in which a shift-and cascade finds the stretches.  Both byte sets
 * are supersets here, one range where the exact set needs several tests
 * ('+' to '9' holds , . as well; ' ' to ';' holds ! to / as well), which
 * only costs a closer look at some punctuated numbers and paths. */
static size_t skip_plain(const unsigned char *t, size_t p, size_t len)
{
    uint32_t pt = 0, ps = 0; /* the previous block's masks */
    unsigned char tail[16];
    for (size_t b = p; b < len; b += 16) {
        const unsigned char *blk = t + b;
        if (len - b < 16) { /* zeros are none of the bytes looked for */
            memset(tail, 0, sizeof tail);
            memcpy(tail, t + b, len - b);
            blk = tail;
        }
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)blk);
        if (_mm_movemask_epi8(v) == 0xFFFF) { /* no ASCII at all (CJK text) */
            pt = ps = 0;
            continue;
        }
        __m128i lc = _mm_or_si128(v, _mm_set1_epi8(0x20)); /* ASCII letters to lower case */
        __m128i sps = _mm_or_si128(_mm_or_si128(IN_RANGE(v, 0x20, 0x3B), IN_RANGE(lc, 'a', 'f')),
                                   _mm_cmpeq_epi8(lc, _mm_set1_epi8('x')));
        __m128i b64 =
            _mm_or_si128(_mm_or_si128(IN_RANGE(v, '+', '9'), IN_RANGE(lc, 'a', 'z')),
                         _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('_')),
                                      _mm_cmpeq_epi8(v, _mm_set1_epi8('='))));
        __m128i spec = _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('%')),
                                    _mm_cmpeq_epi8(v, _mm_set1_epi8('\\')));
        uint32_t mt = (uint32_t)_mm_movemask_epi8(b64);
        uint32_t ms = (uint32_t)_mm_movemask_epi8(sps);
        uint32_t mp = (uint32_t)_mm_movemask_epi8(spec);
        uint32_t w = pt | mt << 16, s = ps | ms << 16;
        w &= w >> 1; /* bit i: window bytes i..i+1 all in the set */
        w &= w >> 2;
        w &= w >> 4;
        w &= w >> 8; /* i..i+15 */
        s &= s >> 1;
        s &= s >> 2;
        s &= s >> 4;
        s &= s >> 7; /* i..i+14 */
        if (w | s | mp) {
            /* Window bit 0 is byte b - 16; a stretch can only begin in the
             * previous block when there was one (pt, ps are 0 otherwise). */
            unsigned h = 32;
            if (w)
                h = (unsigned)__builtin_ctz(w);
            if (s && (unsigned)__builtin_ctz(s) < h)
                h = (unsigned)__builtin_ctz(s);
            if (mp && 16 + (unsigned)__builtin_ctz(mp) < h)
                h = 16 + (unsigned)__builtin_ctz(mp);
            return b + h - 16;
        }
        pt = mt;
        ps = ms;
    }
    return len;
}
#else
/* Portable version, the same window over 8-byte blocks: a table packs
 * each byte's three memberships so that eight lookups make the masks. */
#define PACK(c)                                                                               \
    ((CLS(c) & C_B64Q ? 1u : 0) | (CLS(c) & C_SPS ? 0x100u : 0) |                             \
     (CLS(c) & C_NSPEC ? 0 : 0x10000u))
static const uint32_t pack[256] = { T256(PACK) };

static size_t skip_plain(const unsigned char *t, size_t p, size_t len)
{
    uint32_t pb = 0, ps = 0; /* the two previous blocks' masks, older in bits 0-7 */
    for (size_t b = p; b < len; b += 8) {
        uint32_t m = 0;
        if (len - b >= 8) {
            const unsigned char *q = t + b;
            m = pack[q[0]] | pack[q[1]] << 1 | pack[q[2]] << 2 | pack[q[3]] << 3 |
                pack[q[4]] << 4 | pack[q[5]] << 5 | pack[q[6]] << 6 | pack[q[7]] << 7;
        } else {
            for (size_t i = 0; i < len - b; i++)
                m |= pack[t[b + i]] << i;
        }
        uint32_t mb = m & 0xFF, ms = m >> 8 & 0xFF, mp = m >> 16 & 0xFF;
        uint32_t w = pb | mb << 16, s = ps | ms << 16; /* bit 0: byte b - 16 */
        w &= w >> 1;
        w &= w >> 2;
        w &= w >> 4;
        w &= w >> 8; /* bytes i..i+15 */
        s &= s >> 1;
        s &= s >> 2;
        s &= s >> 4;
        s &= s >> 7; /* bytes i..i+14 */
        if (w | s | mp) {
            size_t h = mp ? 16 + (size_t)__builtin_ctz(mp) : 32;
            if (w && (size_t)__builtin_ctz(w) < h)
                h = (size_t)__builtin_ctz(w);
            if (s && (size_t)__builtin_ctz(s) < h)
                h = (size_t)__builtin_ctz(s);
            return b + h - 16;
        }
        pb = pb >> 8 | mb << 8;
        ps = ps >> 8 | ms << 8;
    }
    return len;
}
#endif

/* ==== Entry points ==== */

static int next(const char *text, size_t len, lg_decode_iter *it, lg_decoded *d, char *out,
                size_t outcap, int ref)
{
    if (!it || !d || (!text && len) || (!out && outcap) || it->pos > len)
        return LG_E_INVAL;
    struct ctx c = { (const unsigned char *)text, len, it, d, (unsigned char *)out, outcap, { 0 } };
    const unsigned char *t = c.t;
    size_t p = it->pos;
    while (p < len) {
        size_t hint = len;
        if (!ref) {
            size_t floor = p;
            hint = skip_plain(t, p, len);
            if (hint >= len)
                break;
            for (p = hint; p > floor && (cls[t[p - 1]] & C_TOK); p--)
                ;
        }
        /* Tokens up to the first one that ends past the hint (the
         * reference mode: all of them). */
        while (p < len) {
            if (!(cls[t[p]] & C_TOK)) {
                p++;
                continue;
            }
            size_t t0 = p;
            unsigned o = 0;
            do
                o |= cls[t[p++]];
            while (p < len && (cls[t[p]] & C_TOK));
            if ((ref || p - t0 >= MIN_B64 || (o & (C_PCT | C_BSL)) ||
                 spaced_tail(t, len, t0, p)) &&
                scan_token(&c, t0, p, o)) {
                it->pos = d->end;
                return 1;
            }
            if (p > hint)
                break;
        }
    }
    it->pos = len;
    return 0;
}

int lg_decode_next(const char *text, size_t len, lg_decode_iter *it, lg_decoded *d, char *out,
                   size_t outcap)
{
    return next(text, len, it, d, out, outcap, 0);
}

int lg__decode_next_ref(const char *text, size_t len, lg_decode_iter *it, lg_decoded *d,
                        char *out, size_t outcap)
{
    return next(text, len, it, d, out, outcap, 1);
}

const char *lg_enc_name(int kind)
{
    switch (kind) {
    case LG_ENC_BASE64: return "base64";
    case LG_ENC_BASE64URL: return "base64url";
    case LG_ENC_HEX: return "hex";
    case LG_ENC_HEX_SPACED: return "hex_spaced";
    case LG_ENC_ESC_X: return "esc_x";
    case LG_ENC_ESC_U: return "esc_u";
    case LG_ENC_PERCENT: return "percent";
    case LG_ENC_BINARY: return "binary";
    default: return "unknown";
    }
}
