/* Rule compilation and scanning (see scan.h for the streaming model).
 *
 * Outside facts this file relies on (PCRE2 10.42):
 * - Patterns are compiled with PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF.
 *   Subjects are client bytes and may be invalid UTF-8; with
 *   MATCH_INVALID_UTF, PCRE2 treats an invalid sequence as a barrier that
 *   nothing matches across, instead of refusing the whole subject, so a
 *   single bad byte cannot switch scanning off.  \C is forbidden
 *   (PCRE2_NEVER_BACKSLASH_C) because it could split a character.
 * - With PCRE2_PARTIAL_HARD, pcre2_match returns PCRE2_ERROR_PARTIAL as
 *   soon as any attempt reaches the end of the subject, so a complete match
 *   it returns cannot change when more text arrives; NOMATCH means no match
 *   can start anywhere before the end.  This is what makes streaming results
 *   equal whole-text results.
 * - Match, depth and heap limits bound every pcre2_match call; hitting one is
 *   an error (LG_E_MATCH), never "no match": the caller applies the
 *   policy's fail mode.
 * - A pattern's start bitmap (PCRE2_INFO_FIRSTBITMAP), or its first code
 *   unit, covers the first byte of every match: caseless_set and the start
 *   gates (sg_class) learn which characters a class matches by trying every
 *   character with such a lead byte, not by reading the class. */
#include "scan.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "error.h"
#include "normalize.h"
#include "validate.h"

/* ==== Rule compilation ==== */

/* A rule's JIT-compiled code, made on demand (rule_code).  Policies are
 * shared by every thread of a guarded program, so the copy is published
 * with an atomic pointer: a thread that finds it missing, or being made by
 * another thread, matches with the interpreted code meanwhile. */
typedef struct rjit {
    _Atomic(pcre2_code *) code; /* JIT-compiled copy of the rule's code; owned */
    atomic_size_t work;         /* bytes of work done without it */
    atomic_flag claimed;        /* a thread took on making it */
    uint32_t opts;              /* PCRE2_JIT_* */
} rjit;

#define RULE_OPTS                                                                              \
    (PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | PCRE2_NEVER_BACKSLASH_C |                \
     PCRE2_USE_OFFSET_LIMIT)

int lg_rule_compile(lg_rule *r, char *err, size_t errlen, size_t *err_off)
{
    if (err && errlen)
        err[0] = '\0';
    if (err_off)
        *err_off = 0;
    if (!r || !r->pattern) {
        if (err && errlen)
            snprintf(err, errlen, "no pattern");
        return LG_E_INVAL;
    }
    lg_rule_free_code(r);

    pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
    if (!cc)
        return LG_E_NOMEM;
    /* Forbid \C: it matches one code unit and could cut a character.
     * USE_OFFSET_LIMIT lets the prefiltered search bound where a match may
     * start (pcre2_set_offset_limit); it changes no result. */
    int ecode = 0;
    PCRE2_SIZE eoff = 0;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)r->pattern, PCRE2_ZERO_TERMINATED, RULE_OPTS,
                                     &ecode, &eoff, cc);
    pcre2_compile_context_free(cc);
    if (!code) {
        if (ecode == PCRE2_ERROR_NOMEMORY || ecode == PCRE2_ERROR_HEAP_FAILED)
            return LG_E_NOMEM;
        if (err && errlen) {
            PCRE2_UCHAR msg[256];
            if (pcre2_get_error_message(ecode, msg, sizeof msg) < 0)
                snprintf((char *)msg, sizeof msg, "error %d", ecode);
            snprintf(err, errlen, "%s", (const char *)msg);
        }
        if (err_off)
            *err_off = (size_t)eoff;
        return LG_E_REGEX;
    }
    rjit *j = calloc(1, sizeof *j);
    if (!j) {
        pcre2_code_free(code);
        return LG_E_NOMEM;
    }
    /* Partial-mode code too, whatever the rule is for: without it a
     * partial match runs in the interpreter, whose partial matching is
     * wrong on invalid UTF-8 (PCRE2 10.42: "a@b.cd\x99 " gives no match
     * where a complete one exists; found by the scan fuzzer streaming a
     * prompt).  Now that JIT code is made on demand this costs nothing for
     * rules never streamed. */
    j->opts = PCRE2_JIT_COMPLETE | PCRE2_JIT_PARTIAL_HARD;
    atomic_init(&j->code, NULL);
    atomic_init(&j->work, 0);
    atomic_flag_clear(&j->claimed);
    r->code = code;
    r->jit = j;
    return LG_OK;
}

void lg_rule_free_code(lg_rule *r)
{
    if (!r)
        return;
    rjit *j = r->jit;
    if (j) {
        pcre2_code_free(atomic_load(&j->code));
        free(j);
        r->jit = NULL;
    }
    pcre2_code_free((pcre2_code *)r->code);
    r->code = NULL;
}

/* Make the JIT-compiled copy unless another thread is making it (or made
 * it and failed: no JIT on this platform, or no executable memory; the
 * interpreter gives the same results). */
static const pcre2_code *jit_of(const pcre2_code *code, rjit *j)
{
    if (!j)
        return code;
    pcre2_code *c = atomic_load_explicit(&j->code, memory_order_acquire);
    if (c)
        return c;
    if (atomic_flag_test_and_set_explicit(&j->claimed, memory_order_acq_rel))
        return code;
    c = pcre2_code_copy(code);
    if (c && pcre2_jit_compile(c, j->opts) == 0) {
        atomic_store_explicit(&j->code, c, memory_order_release);
        return c;
    }
    pcre2_code_free(c);
    return code;
}

static const pcre2_code *jit_make(const lg_rule *r, rjit *j)
{
    return jit_of(r->code, j);
}

/* The code to match r with for a call over about `bytes` of subject: the
 * JIT copy once made, else the interpreted code, and the JIT copy is made
 * once the rule has done JIT_AFTER bytes of work.  Compiling a rule's JIT
 * code costs as much as matching hundreds of kilobytes in the
 * interpreter, and most rules of a policy never match more than a few
 * short candidate windows, so compiling every rule when the policy loads
 * (at a guarded program's first connection to a model) made that first
 * request slow for nothing.  JIT code and the interpreter find the same
 * complete matches; only the work limits count differently (a
 * pathological subject may stop on a limit in one and not the other,
 * reported as LG_E_MATCH either way).  Partial matching is another
 * matter: on subjects holding invalid UTF-8 the interpreter's partial
 * results differ from the JIT code's, and are sometimes wrong (see
 * lg_rule_compile), so streamed scans (partial mode) always use the JIT
 * code, made at the first such call, to stay identical to whole-text
 * scans.  Only while another thread is still making it, or where there is
 * no JIT, does a partial call run in the interpreter. */
#define JIT_AFTER (64u << 10)
#define JIT_CALL_COST 2048u /* per call: the interpreter's extra fixed cost, in bytes of work */

static const pcre2_code *code_for(const pcre2_code *code, rjit *j, size_t bytes)
{
    if (!j)
        return code;
    pcre2_code *c = atomic_load_explicit(&j->code, memory_order_acquire);
    if (c)
        return c;
    size_t before = atomic_fetch_add_explicit(&j->work, bytes + JIT_CALL_COST, memory_order_relaxed);
    if (before + bytes + JIT_CALL_COST < JIT_AFTER)
        return code;
    return jit_of(code, j);
}

static const pcre2_code *rule_code(const lg_rule *r, size_t bytes)
{
    return code_for(r->code, r->jit, bytes);
}

const void *lg_rule_jit_code(const lg_rule *r, int make)
{
    rjit *j = r ? r->jit : NULL;
    if (!j)
        return NULL;
    if (make) {
        const pcre2_code *c = jit_make(r, j);
        return c != r->code ? c : NULL;
    }
    return atomic_load_explicit(&j->code, memory_order_acquire);
}

/* Characters of lookbehind the pattern needs (\b and \B count one). */
static uint32_t rule_lookbehind_chars(const lg_rule *r)
{
    uint32_t lb = 0;
    if (!r || !r->code)
        return 0;
    if (pcre2_pattern_info((const pcre2_code *)r->code, PCRE2_INFO_MAXLOOKBEHIND, &lb) != 0)
        return 0;
    return lb;
}

size_t lg_rule_lookbehind(const lg_rule *r)
{
    /* UTF-8: a character is at most 4 bytes. */
    return (size_t)rule_lookbehind_chars(r) * 4;
}

/* ==== Findings ==== */

void lg_findings_init(lg_findings *f, size_t max)
{
    f->v = NULL;
    f->n = f->cap = 0;
    f->max = max;
    f->dropped = 0;
}

void lg_findings_reset(lg_findings *f)
{
    f->n = 0;
    f->dropped = 0;
}

void lg_findings_free(lg_findings *f)
{
    free(f->v);
    f->v = NULL;
    f->n = f->cap = 0;
    f->dropped = 0;
}

int lg_findings_add(lg_findings *f, const lg_rule *rule, size_t start, size_t end, int action)
{
    if (f->n >= f->max) {
        f->dropped++;
        return LG_OK;
    }
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        if (cap > f->max)
            cap = f->max;
        lg_finding *nv = realloc(f->v, cap * sizeof *nv);
        if (!nv)
            return LG_E_NOMEM;
        f->v = nv;
        f->cap = cap;
    }
    f->v[f->n++] = (lg_finding){ .rule = rule, .start = start, .end = end, .action = action };
    return LG_OK;
}

/* ==== UTF-8 ==== */

/* Length of the character at p[0..avail): > 0 for a complete valid UTF-8
 * character (RFC 3629: no overlongs, surrogates or code points above
 * U+10FFFF, the same definition PCRE2 uses), 0 for an invalid sequence, -1
 * for a valid prefix cut short by avail. */
static int u8len(const unsigned char *p, size_t avail)
{
    unsigned char c = p[0];
    int need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c < 0x80)
        return 1;
    if (c < 0xC2)
        return 0;
    if (c < 0xE0)
        need = 2;
    else if (c < 0xF0) {
        need = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c < 0xF5) {
        need = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    for (int i = 1; i < need; i++) {
        if ((size_t)i >= avail)
            return -1;
        unsigned char b = p[i];
        if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF))
            return 0;
    }
    return need;
}

/* Position of the first character after the one at s (an invalid byte
 * counts as one character).  Depends only on bytes of that character, so
 * whole and streamed scans step alike. */
static size_t next_char(const char *w, size_t s, size_t end)
{
    if (s >= end)
        return s + 1;
    int l = u8len((const unsigned char *)w + s, end - s);
    return s + (l > 0 ? (size_t)l : 1);
}

/* Start of the valid character containing position q (q itself when q
 * starts a character or lies in an invalid sequence). */
static size_t char_start(const char *w, size_t len, size_t q)
{
    for (size_t k = 1; k <= 3 && k <= q; k++) {
        unsigned char b = (unsigned char)w[q - k];
        if ((b & 0xC0) == 0x80)
            continue;
        int l = u8len((const unsigned char *)w + q - k, len - (q - k));
        return (l > 0 && (size_t)l > k) ? q - k : q;
    }
    return q;
}

/* Bytes at the end of w[lo..len) that are a valid but incomplete character:
 * they are held until the character completes (or proves invalid), so a
 * pattern never sees a character that later text would change. */
static size_t incomplete_tail(const char *w, size_t lo, size_t len)
{
    for (size_t k = 1; k <= 3 && len - lo >= k; k++) {
        unsigned char b = (unsigned char)w[len - k];
        if ((b & 0xC0) == 0x80)
            continue;
        return u8len((const unsigned char *)w + len - k, k) < 0 ? k : 0;
    }
    return 0;
}

/* ==== Literal prefilters ====
 *
 * A conservative reading of a rule's pattern gives, when it can, a set of
 * literal strings X such that every match consumes one of them at a fixed
 * place in its top-level sequence of items: the items before that place
 * (the "prefix") consume at most back_max bytes, all drawn from the byte
 * set back[].  So a match starting at s has an occurrence of some x in X
 * at f >= s, and every byte of [s, f) is in back[] with f - s <= back_max:
 * the only possible starts lie in [f - extent, f], where extent is how far
 * back from f the bytes stay in back[] (capped at back_max).  Anything the
 * reader does not understand (backreferences, \K, \G, inline options other
 * than a leading (?i), verbs, ...) makes it give up: the rule is then
 * searched everywhere, as without a prefilter.  Soundness rests on two
 * over-approximations only: the exact sets (every string an item can
 * consume is listed) and the byte sets (every byte an item can consume is
 * in the set; a class that can match any non-ASCII character contributes
 * every byte 0x80..0xFF).  Under (?i) with UCP, ASCII k and s also match
 * U+212A and U+017F, so they are never part of an exact string.
 * A non-ASCII letter under (?i) stands for its whole caseless set, which
 * PCRE2 itself enumerates (caseless_set; letters of caseless scripts
 * stand for themselves); when that fails the letter is a byte class, as
 * before.  A prefix set that grows too large is cut to shorter prefixes
 * rather than dropped (pf_union).  For lead_strs only (pp.hx), a class
 * of a few listed non-ASCII characters is the exact set of their
 * encodings (as literals they would give the raw-view rules for invisible
 * characters a literal pass of their own over every prompt).
 *
 * Which literal run of a branch is used is a cost choice only (branch_pick):
 * rare byte pairs, long strings (each byte makes a full occurrence rarer),
 * and few bytes before the literal (each candidate costs one pcre2_match
 * over up to back_max start positions).
 *
 * reach bounds how far past a start position the matcher can look
 * (consumption plus lookaheads, \b and $ counted as one character), used
 * for partial matching: only a start within reach of the end of the text
 * can give a partial match. */

#define PF_INF ((size_t)1 << 40)
#define XMAX 64 /* strings in an exact set */
#define XLEN 24 /* bytes in an exact string */

typedef struct xset {
    size_t n;
    unsigned char len[XMAX];
    unsigned char ic[XMAX]; /* compared ASCII-caselessly (stored lower case) */
    char s[XMAX][XLEN];
} xset;

typedef struct an {
    unsigned char bytes[32]; /* bytes a match may consume */
    size_t minb, maxb, reach;
    int zw;                  /* zero-width item */
    xset *x;                 /* every string the item can consume; NULL: unknown */
    xset *pf;                /* every match begins with one of these; NULL: unknown */
} an;

/* Caseless sets already worked out while one scanner is built (most
 * patterns share their letters). */
#define CCMAX 256
typedef struct ccache {
    size_t n;
    unsigned cp[CCMAX];
    xset *x[CCMAX]; /* NULL: no usable set */
} ccache;

typedef struct pp {
    const unsigned char *p;
    size_t i, n;
    int icase, fail, depth;
    int hx;     /* classes of a few explicit non-ASCII characters are exact sets */
    ccache *cc; /* may be NULL */
} pp;

static size_t sat_add(size_t a, size_t b)
{
    return a >= PF_INF || b >= PF_INF || a + b >= PF_INF ? PF_INF : a + b;
}

static size_t sat_mul(size_t a, size_t b)
{
    if (!a || !b)
        return 0;
    return a >= PF_INF || b >= PF_INF || a > PF_INF / b ? PF_INF : a * b;
}

static void bset(unsigned char *b, unsigned c)
{
    b[c >> 3] |= (unsigned char)(1u << (c & 7));
}

static int bget(const unsigned char *b, unsigned c)
{
    return b[c >> 3] >> (c & 7) & 1;
}

static void set_high(unsigned char *b)
{
    memset(b + 16, 0xFF, 16);
}

/* Sets are made and dropped by the thousand while a policy loads (two per
 * literal character); only the first n entries are ever read, so neither
 * making nor copying one touches the rest of its 1.7 KB. */
static xset *x_new(void)
{
    xset *x = malloc(sizeof *x);
    if (x)
        x->n = 0;
    return x;
}

static void x_copy(xset *d, const xset *x)
{
    d->n = x->n;
    memcpy(d->len, x->len, x->n);
    memcpy(d->ic, x->ic, x->n);
    for (size_t i = 0; i < x->n; i++)
        memcpy(d->s[i], x->s[i], x->len[i]);
}

static void an_free(an *a)
{
    free(a->x);
    free(a->pf);
    a->x = a->pf = NULL;
}

static xset *x_dup(const xset *x)
{
    xset *r = x ? x_new() : NULL;
    if (r)
        x_copy(r, x);
    return r;
}

/* Every exact item also gives its prefix set. */
static void an_pf_from_x(an *a)
{
    free(a->pf);
    a->pf = x_dup(a->x);
}

static void lower(char *s, size_t l)
{
    for (size_t i = 0; i < l; i++)
        if (s[i] >= 'A' && s[i] <= 'Z')
            s[i] = (char)(s[i] | 0x20);
}

/* Add s (caseless when ic); a caseless string stands for a superset of
 * the case-sensitive one, so merging keeps the caseless one. */
static int x_add(xset *x, const char *s0, size_t l, int ic)
{
    if (l > XLEN)
        return -1;
    char s[XLEN];
    memcpy(s, s0, l);
    if (ic)
        lower(s, l);
    for (size_t i = 0; i < x->n; i++) {
        if (x->len[i] != l)
            continue;
        /* most entries differ in their first byte (the sets are products
         * of alternatives), so reject on it before comparing */
        if (l && x->s[i][0] != s[0] &&
            (!ic || x->ic[i] || (x->s[i][0] | 0x20) != s[0] || x->s[i][0] < 'A' || x->s[i][0] > 'Z'))
            continue;
        if (memcmp(x->s[i], s, l) == 0 && (x->ic[i] || !ic)) {
            return 0;
        }
        if (ic && !x->ic[i]) {
            char t[XLEN];
            memcpy(t, x->s[i], l);
            lower(t, l);
            if (memcmp(t, s, l) == 0) {
                memcpy(x->s[i], t, l);
                x->ic[i] = 1;
                return 0;
            }
        }
    }
    if (x->n == XMAX)
        return -1;
    memcpy(x->s[x->n], s, l);
    x->ic[x->n] = (unsigned char)(ic != 0);
    x->len[x->n++] = (unsigned char)l;
    return 0;
}

/* a x b, or NULL when too large (a and b are kept). */
static xset *x_cat(const xset *a, const xset *b)
{
    if (a->n * b->n > XMAX)
        return NULL;
    xset *r = x_new();
    if (!r)
        return NULL;
    for (size_t i = 0; i < a->n; i++)
        for (size_t j = 0; j < b->n; j++) {
            char t[2 * XLEN];
            memcpy(t, a->s[i], a->len[i]);
            memcpy(t + a->len[i], b->s[j], b->len[j]);
            if (x_add(r, t, (size_t)a->len[i] + b->len[j], a->ic[i] || b->ic[j])) {
                free(r);
                return NULL;
            }
        }
    return r;
}

static void an_empty(an *a)
{
    memset(a, 0, sizeof *a);
    a->x = x_new();
    if (a->x)
        x_add(a->x, "", 0, 0);
    an_pf_from_x(a);
}

/* An item matching one character from a byte set (not exact). */
static void an_class(an *a, const unsigned char *bytes, int high)
{
    memset(a, 0, sizeof *a);
    memcpy(a->bytes, bytes, 32);
    if (high)
        set_high(a->bytes);
    a->minb = 1;
    a->maxb = a->reach = high ? 4 : 1;
}

static int is_alpha(unsigned c)
{
    return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
}

/* Decode one UTF-8 character of the pattern (patterns are valid UTF-8:
 * PCRE2 checked them). */
static unsigned dec(pp *P, char *raw, size_t *rl)
{
    const unsigned char *p = P->p + P->i;
    unsigned c = p[0];
    size_t l = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (P->i + l > P->n) {
        P->fail = 1;
        return 0;
    }
    unsigned cp = l == 1 ? c : l == 2 ? c & 0x1F : l == 3 ? c & 0x0F : c & 0x07;
    for (size_t k = 1; k < l; k++)
        cp = cp << 6 | (p[k] & 0x3Fu);
    memcpy(raw, p, l);
    *rl = l;
    P->i += l;
    return cp;
}

static size_t enc(unsigned cp, char *o)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Every encoding of a character that caselessly matches code point cp
 * (UTF, UCP: its other case, and members of a Unicode caseless set such as
 * U+1C80 for CYRILLIC SMALL LETTER VE), from PCRE2 itself: the start
 * bitmap of the one-character pattern bounds the lead bytes, and every
 * character with such a lead byte is tried.  Returns NULL when the set
 * cannot be found cheaply (4-byte leads, no bitmap, too many). */
static xset *caseless_set(unsigned cp)
{
    char pat[32];
    snprintf(pat, sizeof pat, "(?i)\\x{%X}", cp);
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
                                     PCRE2_UTF | PCRE2_UCP | PCRE2_NEVER_BACKSLASH_C, &ec, &eo, NULL);
    if (!code)
        return NULL;
    unsigned char lead[32] = { 0 };
    uint32_t type = 3, cu = 0;
    const uint8_t *bm = NULL;
    int ok = pcre2_pattern_info(code, PCRE2_INFO_FIRSTCODETYPE, &type) == 0;
    if (ok && type == 1 && pcre2_pattern_info(code, PCRE2_INFO_FIRSTCODEUNIT, &cu) == 0 && cu >= 0xC2)
        bset(lead, cu);
    else if (ok && type == 0 && pcre2_pattern_info(code, PCRE2_INFO_FIRSTBITMAP, &bm) == 0 && bm)
        memcpy(lead, bm, 32);
    else
        ok = 0;
    /* every character whose lead byte is in the bitmap, one after another */
    size_t cap = 0;
    for (unsigned b = 0; ok && b < 256; b++)
        if (bget(lead, b)) {
            if (b < 0xC2 || b > 0xEF)
                ok = 0; /* ASCII or 4-byte variants: not handled here */
            else
                cap += b < 0xE0 ? 64 * 2 : 4096 * 3;
        }
    char *subj = ok ? malloc(cap + 1) : NULL;
    pcre2_match_data *md = subj ? pcre2_match_data_create(1, NULL) : NULL;
    xset *x = md ? x_new() : NULL;
    if (x) {
        size_t n = 0;
        for (unsigned b = 0xC2; b <= 0xEF; b++) {
            if (!bget(lead, b))
                continue;
            unsigned lo = b < 0xE0 ? (b & 0x1F) << 6 : (b & 0x0F) << 12;
            unsigned cnt = b < 0xE0 ? 64 : 4096;
            for (unsigned c = lo; c < lo + cnt; c++)
                if (c >= 0x80 && (c < 0x800 || b >= 0xE0) && (c >= 0x800 || b < 0xE0) &&
                    (c < 0xD800 || c > 0xDFFF))
                    n += enc(c, subj + n);
        }
        PCRE2_SIZE off = 0;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        int found = 0;
        while (off < n) {
            int rc = pcre2_match(code, (PCRE2_SPTR)subj, n, off, 0, md, NULL);
            if (rc == PCRE2_ERROR_NOMATCH)
                break;
            if (rc < 0 || ov[1] <= ov[0] || x_add(x, subj + ov[0], ov[1] - ov[0], 0) || x->n > 8) {
                found = -1;
                break;
            }
            char self[4];
            size_t sl = enc(cp, self);
            if (ov[1] - ov[0] == sl && memcmp(subj + ov[0], self, sl) == 0)
                found = 1;
            off = ov[1];
        }
        if (found != 1) { /* cp itself must be among them */
            free(x);
            x = NULL;
        }
    }
    pcre2_match_data_free(md);
    free(subj);
    pcre2_code_free(code);
    return x;
}

/* Blocks of scripts without letter case (Hebrew to Sinhala, Thai to
 * Tibetan, Hangul, CJK): a character there matches only itself, even
 * caselessly (checked with caseless_set for every code point of these
 * blocks against PCRE2 10.42); skipping the probe keeps scanner set-up
 * cheap for such text. */
static int uncased(unsigned cp)
{
    return (cp >= 0x0590 && cp <= 0x0DFF) || (cp >= 0x0E00 && cp <= 0x0FFF) ||
           (cp >= 0x1100 && cp <= 0x11FF) || (cp >= 0x3000 && cp <= 0x9FFF) ||
           (cp >= 0xAC00 && cp <= 0xD7AF) || (cp >= 0xF900 && cp <= 0xFAFF);
}

/* One literal character of the pattern. */
static void an_lit(pp *P, an *a, unsigned cp)
{
    char raw[4];
    size_t l = enc(cp, raw);
    memset(a, 0, sizeof *a);
    a->minb = a->maxb = a->reach = l;
    if (P->icase && cp < 0x80 && is_alpha(cp)) {
        unsigned lo = cp | 0x20;
        bset(a->bytes, lo);
        bset(a->bytes, lo & ~0x20u);
        char c = (char)lo;
        a->x = x_new();
        if (a->x)
            x_add(a->x, &c, 1, 1);
        if (lo == 'k' || lo == 's') { /* also U+212A KELVIN SIGN, U+017F LONG S */
            set_high(a->bytes);
            a->maxb = a->reach = 3;
            if (a->x) {
                if (lo == 'k')
                    x_add(a->x, "\xE2\x84\xAA", 3, 0);
                else
                    x_add(a->x, "\xC5\xBF", 2, 0);
            }
        }
        an_pf_from_x(a);
        return;
    }
    if (P->icase && cp >= 0x80 && !uncased(cp)) {
        /* may have case variants of other lengths */
        xset *cs = NULL;
        size_t ci = 0;
        while (P->cc && ci < P->cc->n && P->cc->cp[ci] != cp)
            ci++;
        if (P->cc && ci < P->cc->n)
            cs = x_dup(P->cc->x[ci]);
        else {
            cs = caseless_set(cp);
            if (P->cc && ci < CCMAX) {
                P->cc->cp[ci] = cp;
                P->cc->x[ci] = x_dup(cs);
                P->cc->n++;
            }
        }
        if (cs) {
            a->x = cs;
            a->minb = 4;
            a->maxb = 0;
            for (size_t k = 0; k < cs->n; k++) {
                for (size_t q = 0; q < cs->len[k]; q++)
                    bset(a->bytes, (unsigned char)cs->s[k][q]);
                if (cs->len[k] < a->minb)
                    a->minb = cs->len[k];
                if (cs->len[k] > a->maxb)
                    a->maxb = cs->len[k];
            }
            a->reach = a->maxb;
            an_pf_from_x(a);
            return;
        }
        set_high(a->bytes);
        a->minb = 1;
        a->maxb = a->reach = 4;
        return;
    }
    for (size_t k = 0; k < l; k++)
        bset(a->bytes, (unsigned char)raw[k]);
    a->x = x_new();
    if (a->x)
        x_add(a->x, raw, l, 0);
    an_pf_from_x(a);
}

static const char *const SPACE = " \t\n\v\f\r";

/* \d \w \s \h \v (and negations) into set/high. */
static int esc_class(unsigned c, unsigned char *set, int *high, int *neg)
{
    unsigned lc = c | 0x20;
    *neg = c >= 'A' && c <= 'Z';
    if (lc == 'd') {
        for (unsigned k = '0'; k <= '9'; k++)
            bset(set, k);
    } else if (lc == 'w') {
        for (unsigned k = 0; k < 128; k++)
            if (is_alpha(k) || (k >= '0' && k <= '9') || k == '_')
                bset(set, k);
    } else if (lc == 's' || lc == 'h' || lc == 'v') {
        for (const char *s = SPACE; *s; s++)
            bset(set, (unsigned char)*s);
    } else
        return 0;
    *high = 1; /* UCP: Unicode digits, letters and spaces */
    return 1;
}

static unsigned parse_hex(pp *P)
{
    unsigned v = 0;
    if (P->i < P->n && P->p[P->i] == '{') {
        P->i++;
        size_t k = 0;
        while (P->i < P->n && P->p[P->i] != '}') {
            unsigned h = P->p[P->i++];
            unsigned d = h >= '0' && h <= '9' ? h - '0' : (h | 0x20) >= 'a' && (h | 0x20) <= 'f' ? (h | 0x20) - 'a' + 10 : 99;
            if (d > 15 || ++k > 6) {
                P->fail = 1;
                return 0;
            }
            v = v * 16 + d;
        }
        if (P->i >= P->n || k == 0)
            P->fail = 1;
        P->i++;
    } else {
        for (int k = 0; k < 2 && P->i < P->n; k++) {
            unsigned h = P->p[P->i];
            unsigned d = h >= '0' && h <= '9' ? h - '0' : (h | 0x20) >= 'a' && (h | 0x20) <= 'f' ? (h | 0x20) - 'a' + 10 : 99;
            if (d > 15)
                break;
            v = v * 16 + d;
            P->i++;
        }
    }
    if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        P->fail = 1;
    return v;
}

static int simple_esc(unsigned c, unsigned *cp)
{
    switch (c) {
    case 'n': *cp = '\n'; return 1;
    case 't': *cp = '\t'; return 1;
    case 'r': *cp = '\r'; return 1;
    case 'f': *cp = '\f'; return 1;
    case 'e': *cp = 27; return 1;
    case 'a': *cp = 7; return 1;
    default:
        if (c < 0x80 && !is_alpha(c) && !(c >= '0' && c <= '9')) {
            *cp = c;
            return 1;
        }
        return 0;
    }
}

/* [...] */
#define HX_MAX 16 /* non-ASCII characters in a class read as an exact set (pp.hx) */

static void parse_class(pp *P, an *a)
{
    unsigned char set[32] = { 0 };
    int high = 0, neg = 0, first = 1;
    unsigned hlo[HX_MAX], hhi[HX_MAX]; /* its explicit non-ASCII ranges */
    size_t nh = 0, hn = 0;             /* how many, and characters in them */
    int hany = 0;                      /* non-ASCII members not listed there */
    if (P->i < P->n && P->p[P->i] == '^') {
        neg = 1;
        P->i++;
    }
    for (;;) {
        if (P->i >= P->n) {
            P->fail = 1;
            return;
        }
        unsigned c = P->p[P->i];
        if (c == ']' && !first) {
            P->i++;
            break;
        }
        first = 0;
        unsigned lo;
        if (c == '[') { /* POSIX classes */
            P->fail = 1;
            return;
        }
        if (c == '\\') {
            P->i++;
            if (P->i >= P->n) {
                P->fail = 1;
                return;
            }
            unsigned e = P->p[P->i++];
            int h = 0, ng = 0;
            unsigned char s2[32] = { 0 };
            if (esc_class(e, s2, &h, &ng)) {
                if (ng) {
                    for (unsigned k = 0; k < 128; k++)
                        if (!bget(s2, k))
                            bset(set, k);
                } else
                    for (int k = 0; k < 32; k++)
                        set[k] |= s2[k];
                high = hany = 1;
                continue;
            }
            if (e == 'p' || e == 'P') {
                if (P->i < P->n && P->p[P->i] == '{') {
                    while (P->i < P->n && P->p[P->i] != '}')
                        P->i++;
                    P->i++;
                } else
                    P->i++;
                memset(set, 0xFF, 16);
                high = hany = 1;
                continue;
            }
            if (e == 'x')
                lo = parse_hex(P);
            else if (!simple_esc(e, &lo)) {
                P->fail = 1;
                return;
            }
        } else {
            char raw[4];
            size_t rl;
            lo = dec(P, raw, &rl);
        }
        if (P->fail)
            return;
        unsigned hi = lo;
        if (P->i + 1 < P->n && P->p[P->i] == '-' && P->p[P->i + 1] != ']') {
            P->i++;
            unsigned c2 = P->p[P->i];
            if (c2 == '\\') {
                P->i++;
                if (P->i >= P->n) {
                    P->fail = 1;
                    return;
                }
                unsigned e = P->p[P->i++];
                if (e == 'x')
                    hi = parse_hex(P);
                else if (!simple_esc(e, &hi)) {
                    P->fail = 1;
                    return;
                }
            } else {
                char raw[4];
                size_t rl;
                hi = dec(P, raw, &rl);
            }
            if (P->fail || hi < lo) {
                P->fail = 1;
                return;
            }
        }
        if (hi >= 0x80) {
            high = 1;
            unsigned l0 = lo < 0x80 ? 0x80 : lo;
            if (nh < HX_MAX && hi - l0 < HX_MAX) {
                hlo[nh] = l0;
                hhi[nh++] = hi;
                hn += hi - l0 + 1;
            } else
                hany = 1;
        }
        for (unsigned k = lo; k <= hi && k < 0x80; k++) {
            bset(set, k);
            if (P->icase && is_alpha(k)) {
                bset(set, k | 0x20);
                bset(set, k & ~0x20u);
                if ((k | 0x20) == 'k' || (k | 0x20) == 's')
                    high = hany = 1;
            }
        }
    }
    if (neg) {
        for (unsigned k = 0; k < 128; k++)
            set[k >> 3] ^= (unsigned char)(1u << (k & 7));
        high = hany = 1;
    }
    an_class(a, set, high);
    if (high && P->hx && !hany && !P->icase && hn <= HX_MAX) {
        /* only listed characters: each one's encoding, and the ASCII
         * members, are every string the class can consume */
        xset *x = x_new();
        int ok = x != NULL;
        for (unsigned k = 0; ok && k < 128; k++)
            if (bget(set, k)) {
                char c = (char)k;
                ok = x->n < 12 && x_add(x, &c, 1, 0) == 0;
            }
        for (size_t r = 0; ok && r < nh; r++)
            for (unsigned cp = hlo[r]; ok && cp <= hhi[r]; cp++) {
                char e[4];
                if (cp >= 0xD800 && cp <= 0xDFFF)
                    continue; /* no such character */
                ok = x_add(x, e, enc(cp, e), 0) == 0;
            }
        if (ok && x->n) {
            a->x = x;
            an_pf_from_x(a);
        } else
            free(x);
        return;
    }
    if (!high) {
        xset *x = x_new();
        int ok = x != NULL;
        for (unsigned k = 0; ok && k < 128; k++)
            if (bget(set, k) && (!P->icase || !is_alpha(k) || k == (k | 0x20))) {
                char c = (char)k;
                if (x_add(x, &c, 1, P->icase))
                    ok = 0;
            }
        if (ok && x->n <= 12) {
            a->x = x;
            an_pf_from_x(a);
        } else
            free(x);
    }
}

static void parse_alt(pp *P, an *out);

/* One atom (without its quantifier). */
static void parse_atom(pp *P, an *a)
{
    memset(a, 0, sizeof *a);
    unsigned c = P->p[P->i];
    if (c == '(') {
        P->i++;
        int kind = 0; /* 0 group, 1 lookahead, 2 lookbehind */
        int saved = P->icase;
        if (P->i < P->n && P->p[P->i] == '?') {
            P->i++;
            unsigned d = P->i < P->n ? P->p[P->i] : 0;
            /* (?i) (?-i) (?i: (?-i: : the only inline options understood */
            int neg = d == '-';
            size_t q = P->i + (size_t)neg;
            if (q + 1 < P->n && P->p[q] == 'i' && (P->p[q + 1] == ')' || P->p[q + 1] == ':')) {
                P->i = q + 2;
                if (P->p[q + 1] == ')') { /* to the end of the enclosing group */
                    P->icase = !neg;
                    an_empty(a);
                    a->zw = 1;
                    return;
                }
                P->icase = !neg;
                d = ':';
                P->i--; /* at ':' */
            }
            if (d == ':' || d == '>') {
                P->i++;
            } else if (d == '=' || d == '!') {
                P->i++;
                kind = 1;
            } else if (d == '<' && P->i + 1 < P->n && (P->p[P->i + 1] == '=' || P->p[P->i + 1] == '!')) {
                P->i += 2;
                kind = 2;
            } else {
                P->fail = 1;
                return;
            }
        } else if (P->i < P->n && P->p[P->i] == '*') {
            P->fail = 1;
            return;
        }
        if (++P->depth > 50) {
            P->fail = 1;
            return;
        }
        an in;
        parse_alt(P, &in);
        P->depth--;
        P->icase = saved;
        if (P->fail) {
            an_free(&in);
            return;
        }
        if (P->i >= P->n || P->p[P->i] != ')') {
            an_free(&in);
            P->fail = 1;
            return;
        }
        P->i++;
        if (kind == 0) {
            *a = in;
            return;
        }
        size_t reach = kind == 1 ? in.reach : 0;
        an_free(&in);
        an_empty(a);
        a->zw = 1;
        a->reach = reach;
        return;
    }
    if (c == '[') {
        P->i++;
        parse_class(P, a);
        return;
    }
    if (c == '.') {
        P->i++;
        unsigned char set[32];
        memset(set, 0xFF, sizeof set);
        an_class(a, set, 1);
        return;
    }
    if (c == '^' || c == '$') {
        P->i++;
        an_empty(a);
        a->zw = 1;
        a->reach = c == '$' ? 4 : 0;
        return;
    }
    if (c == '\\') {
        P->i++;
        if (P->i >= P->n) {
            P->fail = 1;
            return;
        }
        unsigned e = P->p[P->i++];
        unsigned char set[32] = { 0 };
        int high = 0, neg = 0;
        if (esc_class(e, set, &high, &neg)) {
            if (neg) {
                for (unsigned k = 0; k < 128; k++)
                    set[k >> 3] ^= (unsigned char)(1u << (k & 7));
            }
            an_class(a, set, 1);
            return;
        }
        if (e == 'b' || e == 'B' || e == 'A' || e == 'z' || e == 'Z' || e == 'K') {
            /* \K only moves the reported start: windows bound where the
             * attempt starts, which is what pcre2_set_offset_limit bounds */
            an_empty(a);
            a->zw = 1;
            a->reach = e == 'A' || e == 'K' ? 0 : 4;
            return;
        }
        if (e == 'p' || e == 'P') {
            if (P->i < P->n && P->p[P->i] == '{') {
                while (P->i < P->n && P->p[P->i] != '}')
                    P->i++;
                if (P->i >= P->n) {
                    P->fail = 1;
                    return;
                }
                P->i++;
            } else
                P->i++;
            memset(set, 0xFF, 16);
            an_class(a, set, 1);
            return;
        }
        unsigned cp;
        if (e == 'x')
            cp = parse_hex(P);
        else if (!simple_esc(e, &cp)) {
            P->fail = 1;
            return;
        }
        if (!P->fail)
            an_lit(P, a, cp);
        return;
    }
    if (c == '*' || c == '+' || c == '?' || c == '{' || c == ')' || c == '|') {
        P->fail = 1;
        return;
    }
    char raw[4];
    size_t rl;
    unsigned cp = dec(P, raw, &rl);
    if (!P->fail)
        an_lit(P, a, cp);
}

static int parse_num(pp *P, size_t *v)
{
    size_t k = 0, x = 0;
    while (P->i < P->n && P->p[P->i] >= '0' && P->p[P->i] <= '9' && k < 6) {
        x = x * 10 + (P->p[P->i++] - '0');
        k++;
    }
    *v = x;
    return k > 0;
}

/* Apply a quantifier following the atom, if any. */
static void parse_quant(pp *P, an *a)
{
    if (P->i >= P->n)
        return;
    unsigned c = P->p[P->i];
    size_t m, M;
    if (c == '?') {
        m = 0;
        M = 1;
        P->i++;
    } else if (c == '*') {
        m = 0;
        M = PF_INF;
        P->i++;
    } else if (c == '+') {
        m = 1;
        M = PF_INF;
        P->i++;
    } else if (c == '{') {
        P->i++;
        if (!parse_num(P, &m)) {
            P->fail = 1;
            return;
        }
        M = m;
        if (P->i < P->n && P->p[P->i] == ',') {
            P->i++;
            if (!parse_num(P, &M))
                M = PF_INF;
        }
        if (P->i >= P->n || P->p[P->i] != '}' || M < m) {
            P->fail = 1;
            return;
        }
        P->i++;
    } else
        return;
    if (P->i < P->n && (P->p[P->i] == '?' || P->p[P->i] == '+'))
        P->i++;
    if (a->zw) /* a quantified assertion: still zero-width */
        return;
    if (m == 0) { /* may match empty: no prefix */
        free(a->pf);
        a->pf = NULL;
    }
    a->minb = sat_mul(a->minb, m);
    a->maxb = M >= PF_INF ? (a->maxb ? PF_INF : 0) : sat_mul(a->maxb, M);
    a->reach = M >= PF_INF ? (a->reach ? PF_INF : 0) : sat_mul(a->reach, M);
    if (a->x) {
        xset *res = NULL;
        if (M <= 8) {
            res = x_new();
            xset *pw = x_new();
            if (res && pw) {
                x_add(pw, "", 0, 0);
                int ok = 1;
                for (size_t k = 0; ok && k <= M; k++) {
                    if (k >= m)
                        for (size_t j = 0; ok && j < pw->n; j++)
                            if (x_add(res, pw->s[j], pw->len[j], pw->ic[j]))
                                ok = 0;
                    if (k < M) {
                        xset *nx = x_cat(pw, a->x);
                        free(pw);
                        pw = nx;
                        if (!pw)
                            ok = 0;
                    }
                }
                if (!ok) {
                    free(res);
                    res = NULL;
                }
            } else {
                free(res);
                res = NULL;
            }
            free(pw);
        }
        free(a->x);
        a->x = res;
    }
}

static int x_has_empty(const xset *x)
{
    for (size_t i = 0; i < x->n; i++)
        if (!x->len[i])
            return 1;
    return 0;
}

static xset *pf_union(const xset *a, const xset *b);

/* Sequence b appended to a. */
static void an_seq(an *a, an *b)
{
    for (int k = 0; k < 32; k++)
        a->bytes[k] |= b->bytes[k];
    a->minb = sat_add(a->minb, b->minb);
    a->maxb = sat_add(a->maxb, b->maxb);
    a->reach = sat_add(a->reach, b->reach);
    a->zw = a->zw && b->zw;
    xset *x = a->x && b->x ? x_cat(a->x, b->x) : NULL;
    /* a's strings then b's prefix; else a's prefix alone */
    xset *pf = a->x && b->pf ? x_cat(a->x, b->pf) : NULL;
    if (!pf && a->x && b->pf && x_has_empty(a->x)) {
        /* too many to join, and a may be empty (a? before b): a match
         * begins with one of a's strings or, when a is empty, with b's
         * prefix; "[1-9]?[0-9]" still begins with a digit */
        xset *ne = x_new();
        int ok = ne != NULL;
        for (size_t i = 0; ok && i < a->x->n; i++)
            if (a->x->len[i])
                ok = x_add(ne, a->x->s[i], a->x->len[i], a->x->ic[i]) == 0;
        if (ok && ne->n)
            pf = pf_union(ne, b->pf);
        free(ne);
    }
    if (pf) {
        free(a->pf);
        a->pf = pf;
    }
    free(a->x);
    a->x = x;
    an_free(b);
}

/* Union of two prefix sets; when it does not fit, the strings are cut
 * to a common shorter length until it does (a prefix of a prefix is still
 * a prefix, so the set stays sound).  NULL when nothing fits. */
static xset *pf_union(const xset *a, const xset *b)
{
    static const size_t cut[] = { XLEN, 8, 6, 4, 3, 2, 1 };
    for (size_t c = 0; c < sizeof cut / sizeof cut[0]; c++) {
        xset *u = x_new();
        if (!u)
            return NULL;
        int bad = 0;
        for (int side = 0; side < 2 && !bad; side++) {
            const xset *s = side ? b : a;
            for (size_t i = 0; i < s->n && !bad; i++) {
                size_t l = s->len[i] < cut[c] ? s->len[i] : cut[c];
                /* never cut inside a UTF-8 character: the pair table and
                 * back_start look at bytes, but keep strings whole chars */
                while (l > 0 && l < s->len[i] && ((unsigned char)s->s[i][l] & 0xC0) == 0x80)
                    l--;
                bad = x_add(u, s->s[i], l, s->ic[i]) != 0;
            }
        }
        if (!bad)
            return u;
        free(u);
    }
    return NULL;
}

/* Alternative b merged into a. */
static void an_or(an *a, an *b)
{
    for (int k = 0; k < 32; k++)
        a->bytes[k] |= b->bytes[k];
    a->minb = a->minb < b->minb ? a->minb : b->minb;
    a->maxb = a->maxb > b->maxb ? a->maxb : b->maxb;
    a->reach = a->reach > b->reach ? a->reach : b->reach;
    a->zw = a->zw && b->zw;
    if (a->x && b->x) {
        for (size_t i = 0; i < b->x->n; i++)
            if (x_add(a->x, b->x->s[i], b->x->len[i], b->x->ic[i])) {
                free(a->x);
                a->x = NULL;
                break;
            }
    } else {
        free(a->x);
        a->x = NULL;
    }
    if (a->pf && b->pf) {
        xset *u = pf_union(a->pf, b->pf);
        free(a->pf);
        a->pf = u;
    } else {
        free(a->pf);
        a->pf = NULL;
    }
    an_free(b);
}

/* Items of one sequence, up to '|', ')' or the end. */
static size_t parse_items(pp *P, an *items, size_t max)
{
    size_t n = 0;
    while (!P->fail && P->i < P->n && P->p[P->i] != '|' && P->p[P->i] != ')') {
        if (n == max) {
            P->fail = 1;
            break;
        }
        parse_atom(P, &items[n]);
        if (P->fail) {
            an_free(&items[n]);
            break;
        }
        parse_quant(P, &items[n]);
        n++;
    }
    return n;
}

static void parse_seq(pp *P, an *out)
{
    an_empty(out);
    out->zw = 1;
    while (!P->fail && P->i < P->n && P->p[P->i] != '|' && P->p[P->i] != ')') {
        an it;
        parse_atom(P, &it);
        if (P->fail) {
            an_free(&it);
            return;
        }
        parse_quant(P, &it);
        an_seq(out, &it);
    }
}

static void parse_alt(pp *P, an *out)
{
    parse_seq(P, out);
    while (!P->fail && P->i < P->n && P->p[P->i] == '|') {
        P->i++;
        an b;
        parse_seq(P, &b);
        an_or(out, &b);
    }
}

/* Rough frequency of a byte in mixed English/Chinese UTF-8 text (per
 * mille), to pick the rarest literals; only speed depends on it. */
static unsigned byte_freq(unsigned c)
{
    static const unsigned char lower[26] = { 65, 12, 22, 35, 100, 18, 16, 50, 60, 1, 6, 33, 20,
                                             57, 60, 15, 1, 50, 50, 70, 23, 8, 18, 2, 16, 1 };
    if (c == ' ')
        return 150;
    if (c >= 'a' && c <= 'z')
        return lower[c - 'a'];
    if (c >= 'A' && c <= 'Z')
        return 1 + lower[c - 'A'] / 10;
    if (c >= '0' && c <= '9')
        return 5;
    if (c >= 0xE4 && c <= 0xE9)
        return 40;
    if (c >= 0x80 && c <= 0xBF)
        return 15;
    if (c == '.' || c == ',' || c == '\n')
        return 10;
    return 2;
}

/* The most frequent Chinese characters (simplified and traditional).
 * Byte pairs cannot tell them from rare ones, and a rule whose literal is
 * one of them (的, 是, 你) would run at almost every sentence. */
static const char FREQ_HAN[] =
    "的一是不了在人有我他这這个個们們中来來上大为為和国國地到以说說时時要就出会會可也你对對"
    "生能而子那得于於着著下自之年过過发發后後作里裡用道行所然家种種事成方多经經么麼去法学學"
    "如都同现現当當没沒动動面起看定天分还還进進好小部其些主样樣理心她本前开開但因只从從想实實";

static int freq_han(const char *s, size_t l)
{
    if (l != 3 || (unsigned char)s[0] < 0xE4 || (unsigned char)s[0] > 0xE9)
        return 0;
    for (size_t i = 0; i + 3 <= sizeof FREQ_HAN - 1; i += 3)
        if (memcmp(FREQ_HAN + i, s, 3) == 0)
            return 1;
    return 0;
}

/* Cost of looking for x (case-folded when icase): the rarest pair of
 * adjacent bytes, and which offset it is at. */
static unsigned str_cost(const char *s, size_t l, int icase, size_t *at)
{
    if (freq_han(s, l)) {
        *at = 0;
        return 40 * 40 * 20;
    }
    unsigned best = ~0u;
    *at = 0;
    for (size_t k = 0; k < l; k++) {
        unsigned a = (unsigned char)s[k];
        unsigned fa = byte_freq(a) + (icase && is_alpha(a) ? byte_freq(a & ~0x20u) : 0);
        unsigned c = fa * 1000;
        if (k + 1 < l) {
            unsigned b = (unsigned char)s[k + 1];
            unsigned fb = byte_freq(b) + (icase && is_alpha(b) ? byte_freq(b & ~0x20u) : 0);
            c = fa * fb;
        } else if (l > 1)
            continue;
        if (c < best) {
            best = c;
            *at = k;
        }
    }
    return best;
}

/* The most frequent letter pairs of English text: several times as
 * frequent as their letters' frequencies suggest ("ng" of every -ing word
 * is among the commonest pairs, though g is a rare letter). */
static const char COMMON_PAIRS[] = "th he in er an re on at en nd ti es or te of ed is it al ar "
                                   "st to nt ng se ha as ou io le ve co me de hi ri ro ic ne ea "
                                   "ra ce li ch ll be ma si om ur ca el ta la ns di fo ho pe ec "
                                   "pr no ct us ac ot il tr ly nc et ut ss so rs un lo wa ge ie";

static int common_pair(unsigned a, unsigned b)
{
    a |= 0x20;
    b |= 0x20;
    for (size_t i = 0; i + 2 <= sizeof COMMON_PAIRS - 1; i += 3)
        if ((unsigned char)COMMON_PAIRS[i] == a && (unsigned char)COMMON_PAIRS[i + 1] == b)
            return 1;
    return 0;
}

/* Where to file string s in the pair table: the offset of its rarest pair
 * of bytes, with common English letter pairs counted as eight times as
 * frequent as their letters make them.  Only speed depends on it: every
 * hit on a pair reads each string filed under it. */
static size_t str_pair(const char *s, size_t l, int icase)
{
    size_t at = 0;
    unsigned long best = ~0ul;
    for (size_t k = 0; k + 1 < l; k++) {
        unsigned a = (unsigned char)s[k], b = (unsigned char)s[k + 1];
        unsigned long fa = byte_freq(a) + (icase && is_alpha(a) ? byte_freq(a & ~0x20u) : 0);
        unsigned long fb = byte_freq(b) + (icase && is_alpha(b) ? byte_freq(b & ~0x20u) : 0);
        unsigned long c = fa * fb * (is_alpha(a) && is_alpha(b) && common_pair(a, b) ? 8 : 1);
        if (c < best) {
            best = c;
            at = k;
        }
    }
    return at;
}

/* The prefilter of one rule (see above).  A pattern that is a top-level
 * alternation gets one literal run per branch: every match is a match of
 * some branch, so the union of the branches' strings, each with its own
 * branch's prefix bound, is a prefilter for the whole. */
typedef struct rbranch {
    unsigned char back[32];  /* bytes the prefix may consume */
    size_t back_max;         /* bytes the prefix may consume at most (PF_INF: unbounded) */
} rbranch;

/* One top-level branch of a rule compiled on its own, for candidate
 * windows whose literals come from few branches: a call of the whole
 * pattern tries every branch at each start, which for a rule of many
 * branches costs far more than the call itself (ignore_previous failing
 * on "notes for the team": 700 cycles, against 90 for the one branch the
 * candidate "note" stands for).  Made on first use and shared like a
 * rule's JIT code (rjit). */
typedef struct bcode {
    _Atomic(pcre2_code *) code; /* interpreted; owned */
    atomic_flag claimed;        /* a thread took on making it */
    rjit jit;                   /* its JIT copy, made after some work as a rule's */
    uint32_t at, len;           /* the branch: pattern[at..at + len) */
    unsigned char icase;        /* (?i) in force where it starts */
} bcode;

typedef struct rpf {
    int ok;                  /* usable; otherwise the rule is searched everywhere */
    size_t nstr;             /* candidate strings: s[0..nstr) */
    size_t nfs;              /* factor strings: s[nstr..nstr + nfs) */
    char (*s)[XLEN];         /* the literal strings (heap) */
    unsigned char *len;      /* their lengths (heap) */
    unsigned char *ic;       /* compared ASCII-caselessly, stored lower case (heap) */
    unsigned char *br;       /* candidate string: its branch; factor string: its factor (heap) */
    rbranch *b;              /* per branch (heap) */
    uint64_t *need;          /* per branch: factors a match of it contains (heap) */
    uint32_t *fid;           /* per factor string: its number among the policy's (heap) */
    size_t nb;
    size_t nfac;             /* factors (at most 64) */
    size_t reach;            /* how far past a start the matcher may look (PF_INF: unbounded) */
    bcode *bc;               /* per branch: its own code, for windows of few branches
                              * (branch_code); NULL: not split (heap) */
} rpf;

#define MAX_ITEMS 128
#define MAX_BRANCHES 64
#define MAX_STRS 512 /* strings over all branches, candidates and factors */
#define MAX_FACTORS 64
#define FACTORS_PER_BRANCH 4

static void rpf_clear(rpf *f)
{
    free(f->s);
    free(f->len);
    free(f->ic);
    free(f->br);
    free(f->b);
    free(f->need);
    free(f->fid);
    if (f->bc)
        for (size_t b = 0; b < f->nb; b++) {
            pcre2_code_free(atomic_load(&f->bc[b].code));
            pcre2_code_free(atomic_load(&f->bc[b].jit.code));
        }
    free(f->bc);
    memset(f, 0, sizeof *f);
}

/* Best literal run of one branch's items: its strings into f (branch bi). */
static int branch_pick(an *items, size_t ni, size_t bi, rpf *f, size_t *picked)
{
    unsigned long long best = ~0ull;
    xset *bx = NULL;
    size_t ba = 0, pm = 0;
    for (size_t a = 0; a < ni; a++) {
        /* pm: bytes the items before a may consume.  Every candidate costs
         * one pcre2_match over up to pm start positions, so a literal far
         * from the start must be that much rarer to be worth it. */
        if (a > 0)
            pm = sat_add(pm, items[a - 1].maxb);
        unsigned long long wgt = 16 + (pm < 4096 ? pm : 4096);
        const xset *src = items[a].x ? items[a].x : items[a].pf;
        if (!src)
            continue;
        xset *x = x_dup(src);
        if (!x)
            break;
        for (size_t b = a;;) {
            int empty = 0;
            unsigned long long cost = 0;
            for (size_t k = 0; k < x->n; k++) {
                size_t at;
                if (!x->len[k])
                    empty = 1;
                else {
                    /* the rarest pair finds the candidates; each further
                     * byte makes a full occurrence (one pcre2_match call)
                     * rarer still */
                    unsigned long long c = str_cost(x->s[k], x->len[k], x->ic[k], &at);
                    size_t sh = x->len[k] > 2 ? 2 * (x->len[k] - 2) : 0;
                    c = ((c << 12) >> (sh < 12 ? sh : 12)) + 1;
                    cost += c;
                }
            }
            cost *= wgt;
            if (!empty && x->n && cost < best) {
                best = cost;
                free(bx);
                bx = x_dup(x);
                if (!bx)
                    break;
                ba = a;
            }
            if (!items[b].x || ++b >= ni)
                break;
            xset *nx = items[b].x ? x_cat(x, items[b].x) : items[b].pf ? x_cat(x, items[b].pf) : NULL;
            if (!nx)
                break;
            free(x);
            x = nx;
        }
        free(x);
    }
    if (!bx)
        return -1;
    *picked = ba;
    rbranch *rb = &f->b[bi];
    memset(rb, 0, sizeof *rb);
    for (size_t k = 0; k < ba; k++) {
        for (int j = 0; j < 32; j++)
            rb->back[j] |= items[k].bytes[j];
        rb->back_max = sat_add(rb->back_max, items[k].maxb);
    }
    int rc = 0;
    for (size_t k = 0; k < bx->n; k++) {
        if (f->nstr == MAX_STRS) {
            rc = -1;
            break;
        }
        memcpy(f->s[f->nstr], bx->s[k], XLEN);
        f->len[f->nstr] = bx->len[k];
        f->ic[f->nstr] = bx->ic[k];
        f->br[f->nstr] = (unsigned char)bi;
        f->nstr++;
    }
    free(bx);
    return rc;
}

/* Factors: besides the literal run that places candidates, a branch's
 * other items with a known non-empty set of strings are each consumed
 * by every match of that branch, so a branch can match only in a text
 * where one string of each of its factors occurs.  The scanner notes
 * which factors occur (in the same pass that finds candidates) and drops
 * the candidates of branches that lack one: "ignore" alone no longer
 * costs a pcre2_match call for a rule that also needs "instructions".
 * Which items become factors is a cost choice only (the rarest few);
 * equal sets in several branches share one factor. */
static int x_same(const xset *a, const xset *b)
{
    if (a->n != b->n)
        return 0;
    for (size_t i = 0; i < a->n; i++)
        if (a->len[i] != b->len[i] || a->ic[i] != b->ic[i] || memcmp(a->s[i], b->s[i], a->len[i]))
            return 0;
    return 1;
}

/* The set of strings the run of items starting at a consumes (exact
 * items joined while they are exact, like branch_pick), or NULL; *last
 * gets the run's last item. */
static xset *run_set(an *items, size_t ni, size_t a, size_t *last)
{
    const xset *src = items[a].x ? items[a].x : items[a].pf;
    *last = a;
    if (!src || !src->n)
        return NULL;
    xset *x = x_dup(src);
    if (!x || !items[a].x)
        return x;
    for (size_t b = a + 1; b < ni; b++) {
        const xset *nx = items[b].x ? items[b].x : items[b].pf;
        xset *cat = nx ? x_cat(x, nx) : NULL;
        if (!cat)
            break;
        free(x);
        x = cat;
        *last = b;
        if (!items[b].x)
            break;
    }
    return x;
}

static void branch_factors(an *items, size_t ni, size_t picked, size_t bi, rpf *f, xset **fx)
{
    xset *pick[FACTORS_PER_BRANCH];
    unsigned long long pc[FACTORS_PER_BRANCH];
    size_t np = 0;
    for (size_t a = 0, last; a < ni; a = last + 1) {
        xset *x = run_set(items, ni, a, &last);
        if (!x)
            continue;
        unsigned long long cost = 0;
        int empty = a <= picked && picked <= last; /* the candidates' own run */
        for (size_t k = 0; k < x->n && !empty; k++) {
            size_t at;
            if (!x->len[k])
                empty = 1;
            else
                cost += str_cost(x->s[k], x->len[k], x->ic[k], &at);
        }
        /* a set with common members ('.', a digit, a space, many
         * frequent characters) occurs almost everywhere: not worth it */
        if (empty || cost >= 10000) {
            free(x);
            continue;
        }
        size_t j = np < FACTORS_PER_BRANCH ? np++ : FACTORS_PER_BRANCH;
        if (j == FACTORS_PER_BRANCH) {
            size_t w = 0;
            for (size_t q = 1; q < np; q++)
                if (pc[q] > pc[w])
                    w = q;
            if (pc[w] <= cost) {
                free(x);
                continue;
            }
            free(pick[w]);
            j = w;
        }
        pick[j] = x;
        pc[j] = cost;
    }
    for (size_t q = 0; q < np; q++) {
        size_t id = 0;
        while (id < f->nfac && !x_same(fx[id], pick[q]))
            id++;
        if (id == f->nfac) {
            if (f->nfac == MAX_FACTORS) {
                free(pick[q]);
                continue;
            }
            fx[id] = pick[q];
            f->nfac++;
        } else
            free(pick[q]);
        f->need[bi] |= (uint64_t)1 << id;
    }
}

/* Run gates: when every branch must consume a run of at least min bytes
 * all drawn from an ASCII byte class (an item such as [A-Za-z0-9+/]{48,},
 * or consecutive items such as [A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}), a
 * text with no such run for any branch holds no match, and a whole-text
 * search can skip the rule: a rule without a literal prefilter (base64 or
 * hex blobs, say) altogether, a rule with one despite its candidates (a
 * digit rule at a phone number too short for it).  Looking for a run of
 * length L probes one byte in L where the class is absent, so prose costs
 * almost nothing.  Only complete matches are ruled out this way: a
 * partial match at the end of a stream's window needs no full run, so
 * streaming steps search as before (same result, by soundness). */
typedef struct rgate {
    size_t nb;                           /* branches; 0: no gate */
    unsigned char (*cls)[32];            /* per branch: the run's byte class (heap) */
    size_t *min;                         /* per branch: its least length (heap) */
    /* The branches whose class has no space, looked for at once first
     * (spaces end every run in prose, so one pass usually rules them all
     * out): the union of their classes and the least of their lengths. */
    unsigned char ucls[32];
    size_t umin;                         /* 0: not used (fewer than two such branches) */
} rgate;

#define GATE_MIN_RUN 12

static void rgate_branch(rgate *g, const an *items, size_t ni, int *ok);
static void rgate_union(rgate *g);
static void rgate_clear(rgate *g);

/* Whether a pattern's top-level branches mean the same compiled one by
 * one: nothing may refer to a group by number or name (numbers shift),
 * and a branch gets the (?i) state where it starts (branch_code).  The
 * analyser only accepts (?i) and (?-i) as inline options, so the case
 * state is the only one carried from branch to branch. */
static int branch_split_ok(const char *pattern)
{
    static const char *const bad[] = { "\\g", "\\k", "\\K", "(?P", "(?&", "(?R", "(?(", "(?|",
                                       "(?+", "(?-1", "(?0", "(?1", "(?2", "(?3", "(?4",
                                       "(?5", "(?6", "(?7", "(?8", "(?9" };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++)
        if (strstr(pattern, bad[k]))
            return 0;
    for (const char *q = pattern; (q = strchr(q, '\\')) != NULL; q += 2) {
        if (q[1] >= '1' && q[1] <= '9')
            return 0;
        if (!q[1])
            break;
    }
    return 1;
}

/* Fill f from pattern (f->ok = 0 when nothing usable is found), and g (may
 * be NULL) with its run gate when f is usable and every branch has a run
 * (rgate; from the same parse, which is most of the cost). */
static void rpf_analyse(const char *pattern, rpf *f, ccache *cc, rgate *g)
{
    int gok = 0;
    if (g) {
        memset(g, 0, sizeof *g);
        g->cls = calloc(MAX_BRANCHES, sizeof *g->cls);
        g->min = calloc(MAX_BRANCHES, sizeof *g->min);
        gok = g->cls && g->min;
    }
    memset(f, 0, sizeof *f);
    pp P = { .p = (const unsigned char *)pattern, .n = strlen(pattern), .cc = cc };
    an *items = calloc(MAX_ITEMS, sizeof *items);
    f->s = calloc(MAX_STRS, sizeof *f->s);
    f->len = malloc(MAX_STRS);
    f->ic = malloc(MAX_STRS);
    f->br = malloc(MAX_STRS);
    f->b = calloc(MAX_BRANCHES, sizeof *f->b);
    f->need = calloc(MAX_BRANCHES, sizeof *f->need);
    xset **fx = calloc(MAX_FACTORS, sizeof *fx);
    bcode *bc = calloc(MAX_BRANCHES, sizeof *bc); /* NULL: branches not split */
    if (!items || !f->s || !f->len || !f->ic || !f->br || !f->b || !f->need || !fx)
        goto fail;
    size_t reach = 0;
    for (;;) {
        size_t at = P.i;
        int ic = P.icase;
        size_t ni = parse_items(&P, items, MAX_ITEMS);
        if (bc && f->nb < MAX_BRANCHES) {
            bc[f->nb].at = (uint32_t)at;
            bc[f->nb].len = (uint32_t)(P.i - at);
            bc[f->nb].icase = (unsigned char)ic;
        }
        int bad = P.fail || ni == 0 || f->nb == MAX_BRANCHES ||
                  (P.i < P.n && P.p[P.i] != '|');
        size_t r = 0;
        for (size_t k = 0; k < ni; k++)
            r = sat_add(r, items[k].reach);
        if (r > reach)
            reach = r;
        size_t picked = 0;
        if (!bad && branch_pick(items, ni, f->nb, f, &picked))
            bad = 1;
        if (!bad)
            branch_factors(items, ni, picked, f->nb, f, fx);
        if (g)
            rgate_branch(g, items, ni, &gok);
        for (size_t k = 0; k < ni; k++)
            an_free(&items[k]);
        if (bad)
            goto fail;
        f->nb++;
        if (P.i >= P.n)
            break;
        P.i++; /* '|' */
    }
    f->reach = reach;
    f->ok = f->nstr > 0;
    if (f->ok && f->nb > 1 && bc && branch_split_ok(pattern)) {
        for (size_t b = 0; b < f->nb; b++) {
            atomic_init(&bc[b].code, NULL);
            atomic_flag_clear(&bc[b].claimed);
            atomic_init(&bc[b].jit.code, NULL);
            atomic_init(&bc[b].jit.work, 0);
            atomic_flag_clear(&bc[b].jit.claimed);
            bc[b].jit.opts = PCRE2_JIT_COMPLETE; /* complete matches only: split_match */
        }
        f->bc = bc;
        bc = NULL;
    }
    free(bc);
    /* factor strings go after the candidate strings */
    for (size_t id = 0; id < f->nfac; id++) {
        if (f->nstr + f->nfs + fx[id]->n > MAX_STRS) {
            /* no room: no branch waits for this factor */
            for (size_t q = 0; q < f->nb; q++)
                f->need[q] &= ~((uint64_t)1 << id);
            continue;
        }
        for (size_t k = 0; k < fx[id]->n; k++) {
            size_t j = f->nstr + f->nfs++;
            memcpy(f->s[j], fx[id]->s[k], XLEN);
            f->len[j] = fx[id]->len[k];
            f->ic[j] = fx[id]->ic[k];
            f->br[j] = (unsigned char)id;
        }
    }
    for (size_t id = 0; id < f->nfac; id++)
        free(fx[id]);
    free(fx);
    free(items);
    if (g && gok && f->ok)
        rgate_union(g);
    else if (g)
        rgate_clear(g);
    return;
fail:
    if (fx)
        for (size_t id = 0; id < f->nfac; id++)
            free(fx[id]);
    free(fx);
    free(items);
    free(bc);
    rpf_clear(f);
    if (g)
        rgate_clear(g);
}

static void rgate_clear(rgate *g)
{
    free(g->cls);
    free(g->min);
    memset(g, 0, sizeof *g);
}

/* The longest run of consecutive items that consume ASCII bytes of known
 * classes only: every match consumes their bytes one after another
 * (zero-width items in between consume none), all in the union of their
 * classes (into cls), at least the sum of their least lengths (returned):
 * "[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}" needs 12 of [ 0-9A-Z]. */
static size_t branch_run(const an *items, size_t ni, unsigned char *cls)
{
    size_t best = 0, run = 0;
    int in_run = 0;
    unsigned char rcls[32];
    for (size_t k = 0; k < ni; k++) {
        if (items[k].zw)
            continue;
        int high = 0;
        for (int j = 16; j < 32; j++)
            high |= items[k].bytes[j];
        if (high || items[k].minb >= PF_INF) {
            in_run = 0;
            continue;
        }
        if (!in_run) {
            memset(rcls, 0, sizeof rcls);
            run = 0;
            in_run = 1;
        }
        for (int j = 0; j < 32; j++)
            rcls[j] |= items[k].bytes[j];
        run += items[k].minb;
        if (run > best) {
            best = run;
            memcpy(cls, rcls, sizeof rcls);
        }
    }
    return best;
}

/* Add a branch's run to g (ok = 0 when it has none long enough). */
static void rgate_branch(rgate *g, const an *items, size_t ni, int *ok)
{
    unsigned char cls[32];
    size_t min = *ok ? branch_run(items, ni, cls) : 0;
    if (min >= GATE_MIN_RUN && g->nb < MAX_BRANCHES) {
        memcpy(g->cls[g->nb], cls, 32);
        g->min[g->nb++] = min;
    } else
        *ok = 0;
}

/* The union of the branches whose class has no space (see rgate). */
static void rgate_union(rgate *g)
{
    size_t nu = 0;
    for (size_t b = 0; b < g->nb; b++)
        if (!bget(g->cls[b], ' ')) {
            for (int j = 0; j < 32; j++)
                g->ucls[j] |= g->cls[b][j];
            if (!nu++ || g->min[b] < g->umin)
                g->umin = g->min[b];
        }
    if (nu < 2)
        g->umin = 0;
}

static void rgate_analyse(const char *pattern, rgate *g, ccache *cc)
{
    memset(g, 0, sizeof *g);
    pp P = { .p = (const unsigned char *)pattern, .n = strlen(pattern), .cc = cc };
    an *items = calloc(MAX_ITEMS, sizeof *items);
    g->cls = calloc(MAX_BRANCHES, sizeof *g->cls);
    g->min = calloc(MAX_BRANCHES, sizeof *g->min);
    int ok = items && g->cls && g->min;
    while (ok) {
        size_t ni = parse_items(&P, items, MAX_ITEMS);
        ok = !P.fail && ni && (P.i >= P.n || P.p[P.i] == '|');
        rgate_branch(g, items, ni, &ok);
        for (size_t k = 0; k < ni; k++)
            an_free(&items[k]);
        if (!ok || P.i >= P.n)
            break;
        P.i++; /* '|' */
    }
    free(items);
    if (ok)
        rgate_union(g);
    else
        rgate_clear(g);
}

/* Whether t[lo..end) has a run of at least min bytes of class cls.  A run
 * of min bytes starting at i or later covers i + min - 1, so that byte is
 * probed and the text walked back from it: reaching i finds a run, and a
 * byte outside the class at q rules out every start up to q.  No byte is
 * looked at twice, and prose (short words) costs a few bytes per probe. */
static int has_run(const unsigned char *t, size_t lo, size_t end, const unsigned char *cls, size_t min)
{
    size_t i = lo;
    while (i <= end && end - i >= min) {
        size_t q = i + min;
        while (q > i && bget(cls, t[q - 1]))
            q--;
        if (q == i)
            return 1;
        i = q; /* t[q - 1] is outside the class */
    }
    return 0;
}

static int rgate_pass(const rgate *g, const char *t, size_t lo, size_t end)
{
    /* a run of one branch's class is a run of the union, at least umin long */
    int some = !g->umin || has_run((const unsigned char *)t, lo, end, g->ucls, g->umin);
    for (size_t b = 0; b < g->nb; b++)
        if ((some || bget(g->cls[b], ' ')) &&
            has_run((const unsigned char *)t, lo, end, g->cls[b], g->min[b]))
            return 1;
    return 0;
}

/* ==== Start gates ====
 *
 * For a rule without a literal whose matches begin with a few
 * single-character items (the obfuscated-override rule: "ignore",
 * "disregard" or "forget", each letter a class of its ASCII and full-width
 * forms, up to two separators between letters), every match start s is
 * followed by the items of one branch in turn, item k matching between
 * qmin and qmax characters of its class.  The class of each item is not
 * read from the pattern text but asked of PCRE2: the item alone (under
 * the same (?i)) is compiled and tried on every ASCII character, and on
 * every character whose lead byte its start bitmap allows, so Unicode
 * spaces, case partners (U+212A, U+017F) and full-width forms are exactly
 * PCRE2's.  Zero-width items (lookarounds, \b, (?i)) are left out, which
 * only admits more, and so is everything from the first item that is not
 * a single character (a group, say) on, and everything past SG_ITEMS
 * items or SG_SPAN bytes (a start that gets that far counts as fitting).
 * A leading group taken at least once stands for its own branches, since
 * every match begins with one of them.  A whole-text search then asks
 * PCRE2 only at the starts where some branch fits, one start per call
 * (pcre2_set_offset_limit), instead of letting it try a match at every i,
 * d and f of the text.  A match starts on a character (it consumes at
 * least one from its start), never on a continuation byte.  The byte
 * pairs a fitting start begins with are a bitmap, walked as the literal
 * pass walks its own. */
#define SG_ITEMS 24
#define SG_BRANCHES 8
#define SG_SPAN 64
#define SG_CPS 64         /* non-ASCII characters of one class, at most */
#define SG_PAIRS_MAX 1024 /* pairs that may begin a fitting start, at most */

typedef struct sgitem {
    unsigned char ascii[16]; /* ASCII members */
    unsigned char lead[32];  /* lead bytes of its non-ASCII members */
    uint32_t cp0, ncp;       /* its non-ASCII members: sg->cps[cp0..cp0 + ncp), ascending */
    size_t qmin, qmax;       /* how many characters (qmax may be PF_INF) */
} sgitem;

/* Classes already asked of PCRE2 while one gate is made (the
 * obfuscated-override rule repeats its separator class 61 times). */
#define SG_MEMO 32
typedef struct sgmemo {
    size_t n;
    const char *pat[SG_MEMO];  /* the item's text in the pattern */
    size_t len[SG_MEMO];
    int icase[SG_MEMO];
    int ok[SG_MEMO];
    struct sgitem *it;         /* [SG_MEMO] their members (heap) */
} sgmemo;

typedef struct sgate {
    size_t nb;                 /* branches; 0: no gate */
    sgitem (*it)[SG_ITEMS];    /* per branch: its items in order (heap) */
    unsigned char *nit;        /* per branch: how many (heap) */
    uint32_t *cps;             /* the classes' non-ASCII members (heap) */
    size_t ncps;
    unsigned char *pairs;      /* [8192] byte pairs a fitting start begins with (heap) */
    unsigned char *tri;        /* [8192] its first three bytes, hashed (sg_tri) (heap) */
} sgate;

/* The hash of three bytes in sgate.tri (collisions only let more through). */
static unsigned sg_tri(const unsigned char *t)
{
    return ((uint32_t)(t[0] | t[1] << 8) * 0x9E3779B1u ^ (uint32_t)t[2] * 0x85EBCA6Bu) >> 16;
}

static void sgate_clear(sgate *g)
{
    free(g->it);
    free(g->nit);
    free(g->cps);
    free(g->pairs);
    free(g->tri);
    memset(g, 0, sizeof *g);
}

/* Whether a member of item it starts at t[0] (n bytes readable): 1 with
 * its length in *len, 0 if not, 2 when the text ends inside a character
 * that might be one. */
static inline int sg_char(const sgate *g, const sgitem *it, const unsigned char *t, size_t n,
                          size_t *len)
{
    unsigned b = t[0];
    if (b < 0x80) {
        *len = 1;
        return bget(it->ascii, b);
    }
    if (!bget(it->lead, b))
        return 0;
    /* members are valid characters: a lead byte and its continuation bytes */
    size_t l = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
    uint32_t cp = b & (l == 2 ? 0x1Fu : l == 3 ? 0x0Fu : 0x07u);
    for (size_t k = 1; k < l; k++) {
        if (k >= n)
            return 2;
        if ((t[k] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (t[k] & 0x3Fu);
    }
    if (l == 4) { /* 4-byte characters were not tried (sg_class) */
        *len = l;
        return 1;
    }
    const uint32_t *c = g->cps + it->cp0;
    size_t lo = 0, hi = it->ncp;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c[mid] < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    *len = l;
    return lo < it->ncp && c[lo] == cp;
}

/* Whether branch b of g fits from t[0], with n bytes of text.  prefix:
 * the text goes on past n unseen, so running out of it fits. */
static int sg_fit(const sgate *g, size_t b, const unsigned char *t, size_t n, int prefix)
{
    uint64_t cur = 1; /* byte offsets where item k may begin */
    for (size_t k = 0; k < g->nit[b]; k++) {
        const sgitem *it = &g->it[b][k];
        uint64_t nx = 0;
        for (uint64_t c = cur; c; c &= c - 1) {
            size_t q = (size_t)__builtin_ctzll(c);
            for (size_t m = 0;; m++) { /* m characters consumed, up to q */
                if (q >= SG_SPAN)
                    return 1;
                if (m >= it->qmin)
                    nx |= (uint64_t)1 << q;
                if (m == it->qmax)
                    break;
                if (q >= n) {
                    if (prefix)
                        return 1;
                    break;
                }
                size_t l = 0;
                int r = sg_char(g, it, t + q, n - q, &l);
                if (r == 2 && prefix)
                    return 1;
                if (r != 1)
                    break;
                q += l;
            }
        }
        if (!nx)
            return 0;
        cur = nx;
    }
    return 1;
}

/* Class members of one single-character item, pat[0..len) (under (?i)
 * when icase), from PCRE2: into it, its non-ASCII members appended to g's
 * list.  Every character of the Basic Multilingual Plane whose lead byte
 * the start bitmap allows (all of them when there is no bitmap, as for
 * \s under UCP) is tried; 4-byte characters are not, and count as members
 * when their lead byte is allowed.  0 when there are too many members. */
static int sg_class(sgate *g, sgitem *it, const char *pat, size_t len, int icase)
{
    char *src = malloc(len + 8);
    if (!src)
        return 0;
    int sl = snprintf(src, len + 8, "%s%.*s", icase ? "(?i)" : "", (int)len, pat);
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)src, (PCRE2_SIZE)sl,
                                     PCRE2_UTF | PCRE2_UCP | PCRE2_NEVER_BACKSLASH_C, &ec, &eo,
                                     NULL);
    free(src);
    if (!code)
        return 0;
    uint32_t type = 3, cu = 0;
    const uint8_t *bm = NULL;
    unsigned char lead[32];
    memset(lead, 0xFF, sizeof lead); /* unknown: any */
    if (pcre2_pattern_info(code, PCRE2_INFO_FIRSTCODETYPE, &type) == 0) {
        if (type == 0 && pcre2_pattern_info(code, PCRE2_INFO_FIRSTBITMAP, &bm) == 0 && bm)
            memcpy(lead, bm, 32);
        else if (type == 1 && pcre2_pattern_info(code, PCRE2_INFO_FIRSTCODEUNIT, &cu) == 0 &&
                 (cu < 0x80 || !icase)) {
            /* one first code unit (caseless for an ASCII letter: its other
             * case is ASCII too, or there would be a bitmap) */
            memset(lead, 0, sizeof lead);
            bset(lead, cu);
        }
    }
    size_t cap = 128;
    for (unsigned b = 0xC2; b <= 0xEF; b++)
        if (bget(lead, b))
            cap += b < 0xE0 ? 64 * 2 : 4096 * 3;
    if (cap > 3 * 16384)
        pcre2_jit_compile(code, PCRE2_JIT_COMPLETE); /* speed only: else interpreted */
    char *subj = malloc(cap);
    pcre2_match_data *md = subj ? pcre2_match_data_create(1, NULL) : NULL;
    int ok = md != NULL;
    size_t n = 0;
    for (unsigned c = 0; ok && c < 0x80; c++)
        subj[n++] = (char)c;
    for (unsigned b = 0xC2; ok && b <= 0xEF; b++) {
        if (!bget(lead, b))
            continue;
        unsigned lo = b < 0xE0 ? (b & 0x1F) << 6 : (b & 0x0F) << 12;
        unsigned cnt = b < 0xE0 ? 64 : 4096;
        for (unsigned c = lo; c < lo + cnt; c++)
            if (c >= (b < 0xE0 ? 0x80u : 0x800u) && (c < 0xD800 || c > 0xDFFF))
                n += enc(c, subj + n);
    }
    memset(it->ascii, 0, sizeof it->ascii);
    memset(it->lead, 0, sizeof it->lead);
    for (unsigned b = 0xF0; b <= 0xF4; b++)
        if (bget(lead, b))
            bset(it->lead, b); /* not tried: any 4-byte character with it may match */
    it->cp0 = (uint32_t)g->ncps;
    it->ncp = 0;
    PCRE2_SIZE off = 0, *ov = ok ? pcre2_get_ovector_pointer(md) : NULL;
    while (ok && off < n) {
        /* valid UTF-8 by construction: no need to check it at every call */
        int rc = pcre2_match(code, (PCRE2_SPTR)subj, n, off, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        if (rc < 0 || ov[1] <= ov[0]) {
            ok = 0;
            break;
        }
        const unsigned char *m = (const unsigned char *)subj + ov[0];
        size_t ml = ov[1] - ov[0];
        if (ml == 1 && m[0] < 0x80) {
            bset(it->ascii, m[0]);
        } else if (ml >= 2 && ml <= 3 && it->ncp < SG_CPS) {
            uint32_t cp = m[0] & (ml == 2 ? 0x1Fu : 0x0Fu);
            for (size_t k = 1; k < ml; k++)
                cp = cp << 6 | (m[k] & 0x3Fu);
            bset(it->lead, m[0]);
            g->cps[g->ncps++] = cp; /* in subject order: ascending */
            it->ncp++;
        } else
            ok = 0; /* more than one character, or too many */
        off = ov[1];
    }
    if (!ok)
        g->ncps = it->cp0;
    pcre2_match_data_free(md);
    free(subj);
    pcre2_code_free(code);
    return ok;
}

/* A quantifier at P (parse_quant's syntax): counts into *m, *M. */
static void sg_quant(pp *P, size_t *m, size_t *M)
{
    *m = *M = 1;
    size_t at = P->i;
    an dummy;
    memset(&dummy, 0, sizeof dummy);
    dummy.minb = dummy.maxb = 1;
    parse_quant(P, &dummy);
    an_free(&dummy);
    if (P->fail || P->i == at)
        return;
    unsigned c = P->p[at];
    if (c == '?' || c == '*')
        *m = 0;
    if (c == '*' || c == '+')
        *M = PF_INF;
    if (c == '?')
        *M = 1;
    if (c == '{') { /* parse_quant checked the syntax */
        pp Q = *P;
        Q.i = at + 1;
        parse_num(&Q, m);
        *M = *m;
        if (Q.p[Q.i] == ',') {
            Q.i++;
            if (!parse_num(&Q, M))
                *M = PF_INF;
        }
    }
}

/* The items of one sequence at P (up to '|', ')' or the end) as branch
 * b of g.  0 when unusable. */
static int sg_branch(pp *P, sgate *g, sgmemo *mo)
{
    if (g->nb == SG_BRANCHES)
        return 0;
    size_t ni = 0, chars = 0;
    int taking = 1;
    while (!P->fail && P->i < P->n && P->p[P->i] != '|' && P->p[P->i] != ')') {
        size_t at = P->i;
        int ic = P->icase;
        an a;
        parse_atom(P, &a);
        int zw = a.zw;
        an_free(&a);
        if (P->fail)
            return 0;
        size_t m, M;
        size_t end = P->i;
        sg_quant(P, &m, &M);
        if (P->fail)
            return 0;
        if (zw)
            continue; /* consumes nothing: leaving it out only admits more */
        if (P->p[at] == '(' || ni == SG_ITEMS)
            taking = 0; /* a prefix of the items is enough */
        if (!taking)
            continue;
        sgitem *it = &g->it[g->nb][ni];
        const char *pat = (const char *)P->p + at;
        size_t k = 0;
        while (k < mo->n && !(mo->len[k] == end - at && mo->icase[k] == ic &&
                              memcmp(mo->pat[k], pat, end - at) == 0))
            k++;
        int ok;
        if (k < mo->n) {
            ok = mo->ok[k];
            *it = mo->it[k]; /* the same members (cps shared) */
        } else {
            ok = sg_class(g, it, pat, end - at, ic);
            if (mo->n < SG_MEMO) {
                mo->pat[mo->n] = pat;
                mo->len[mo->n] = end - at;
                mo->icase[mo->n] = ic;
                mo->ok[mo->n] = ok;
                mo->it[mo->n++] = *it;
            }
        }
        if (!ok) {
            taking = 0; /* members unknown: the items before it are the prefix */
            continue;
        }
        it->qmin = m;
        it->qmax = M;
        chars = sat_add(chars, m);
        ni++;
    }
    /* a branch that may match fewer than two bytes has no pair to look for */
    if (P->fail || chars < 2)
        return 0;
    g->nit[g->nb++] = (unsigned char)ni;
    return 1;
}

/* One top-level branch at P: a leading group's branches, or the branch
 * itself.  0 when unusable. */
static int sg_top(pp *P, sgate *g, sgmemo *mo)
{
    size_t at;
    int ic, group;
    for (;;) { /* zero-width items first */
        at = P->i;
        ic = P->icase;
        if (P->i >= P->n || P->p[P->i] == '|' || P->p[P->i] == ')')
            return 0;
        an a;
        parse_atom(P, &a);
        if (!P->fail)
            parse_quant(P, &a);
        int zw = a.zw;
        size_t minb = a.minb;
        an_free(&a);
        if (P->fail)
            return 0;
        if (!zw) {
            /* a plain or capturing group, taken at least once */
            group = P->p[at] == '(' && (P->p[at + 1] != '?' || P->p[at + 2] == ':') && minb > 0;
            break;
        }
    }
    if (!group) {
        P->i = at;
        P->icase = ic;
        return sg_branch(P, g, mo);
    }
    pp Q = *P;
    Q.i = at + (P->p[at + 1] == '?' ? 3 : 1);
    Q.icase = ic;
    for (;;) {
        if (!sg_branch(&Q, g, mo))
            return 0;
        if (Q.i >= Q.n || Q.p[Q.i] != '|')
            break;
        Q.i++;
    }
    /* the rest of this branch is not needed: parse over it */
    while (!P->fail && P->i < P->n && P->p[P->i] != '|' && P->p[P->i] != ')') {
        an a;
        parse_atom(P, &a);
        if (!P->fail)
            parse_quant(P, &a);
        an_free(&a);
    }
    return !P->fail;
}

static void sgate_analyse(const char *pattern, sgate *g)
{
    memset(g, 0, sizeof *g);
    pp P = { .p = (const unsigned char *)pattern, .n = strlen(pattern) };
    g->it = calloc(SG_BRANCHES, sizeof *g->it);
    g->nit = calloc(SG_BRANCHES, 1);
    g->cps = malloc(SG_BRANCHES * SG_ITEMS * SG_CPS * sizeof *g->cps);
    g->pairs = calloc(8192, 1);
    g->tri = calloc(8192, 1);
    sgmemo mo = { .n = 0, .it = malloc(SG_MEMO * sizeof *mo.it) };
    int ok = g->it && g->nit && g->cps && g->pairs && g->tri && mo.it;
    while (ok) {
        ok = sg_top(&P, g, &mo);
        if (!ok || P.i >= P.n)
            break;
        ok = P.p[P.i] == '|';
        P.i++;
    }
    free(mo.it);
    if (ok && g->ncps) { /* the pool was made for the most members */
        uint32_t *c = realloc(g->cps, g->ncps * sizeof *c);
        if (c)
            g->cps = c;
    }
    /* the pairs: two bytes some branch may begin with */
    size_t npairs = 0;
    for (unsigned b0 = 0; ok && b0 < 256; b0++) {
        if (b0 >= 0x80 && b0 < 0xC0)
            continue; /* no character starts with a continuation byte */
        unsigned char t[2] = { (unsigned char)b0, 0 };
        int any = 0;
        for (size_t b = 0; b < g->nb && !any; b++)
            any = sg_fit(g, b, t, 1, 1);
        for (unsigned b1 = 0; any && b1 < 256; b1++) {
            unsigned char u[3] = { (unsigned char)b0, (unsigned char)b1, 0 };
            unsigned fits = 0; /* the branches the pair begins */
            for (size_t b = 0; b < g->nb; b++)
                if (sg_fit(g, b, u, 2, 1))
                    fits |= 1u << b;
            if (!fits)
                continue;
            bset(g->pairs, b0 | b1 << 8);
            npairs++;
            /* and the third bytes after it */
            for (unsigned b2 = 0; b2 < 256; b2++) {
                u[2] = (unsigned char)b2;
                for (size_t b = 0; b < g->nb; b++)
                    if (fits >> b & 1 && sg_fit(g, b, u, 3, 1)) {
                        bset(g->tri, sg_tri(u));
                        break;
                    }
            }
        }
    }
    /* a gate much text passes would cost more than it saves */
    if (!ok || npairs > SG_PAIRS_MAX)
        sgate_clear(g);
}

static size_t next_hit(const unsigned char *t, size_t i, size_t end, const unsigned char *bm);

/* The first position in w[from..end) where some branch of g fits (end
 * when none). */
static size_t sgate_find(const sgate *g, const char *w, size_t from, size_t end)
{
    const unsigned char *t = (const unsigned char *)w;
    if (from >= end || end - from < 2)
        return end;
    for (size_t i = from;; i++) {
        i = next_hit(t, i, end - 1, g->pairs);
        if (i >= end - 1)
            break;
        if (i + 2 < end && !bget(g->tri, sg_tri(t + i)))
            continue;
        for (size_t b = 0; b < g->nb; b++)
            if (sg_fit(g, b, t + i, end - i, 0))
                return i;
    }
    return end;
}

/* ==== Scanner ==== */

/* Work bounds for one pcre2_match call.  A catastrophic pattern stops
 * with an error after about this much work instead of hanging the host
 * program; the error is reported (LG_E_MATCH), and the caller's fail mode
 * decides.  Real rules stay orders of magnitude below. */
#define MATCH_LIMIT 1000000u
#define DEPTH_LIMIT 100000u
#define HEAP_LIMIT_KIB 20480u

/* One entry of the prefilter table: one of the policy's distinct
 * prefilter strings (see lstr), filed under its byte pair at offset k (a
 * one-byte string under every pair it starts).  The entries of one pair are
 * contiguous, so a hit reads one short array instead of chasing a chain,
 * and val/mask hold the string's first bytes so that one 64-bit compare at
 * the occurrence checks most strings whole (the rest of a longer one is
 * compared only when they agree). */
typedef struct pent {
    uint64_t val, mask; /* first min(len, 8) bytes; mask 0xDF on ASCII letters of a
                         * caseless string, 0 past len; both as loaded from memory */
    uint32_t sid;       /* the string's number (lstr) */
    uint8_t k, len;
    uint8_t fac;        /* it is a factor string of some rule */
} pent;

/* Strings are shared: "the" is a factor of eight injection rules and
 * "ignore" a candidate of several branches of some, and one entry per
 * distinct string serves them all.  An occurrence of a factor string is
 * noted once (sc->fseen), and each rule's factors are worked out from the
 * notes after the pass (factor_seen); an occurrence of a candidate string
 * is a candidate of each rule and branch that has it (the string's
 * targets). */
typedef struct lstr {
    char s[XLEN];
    unsigned char len, ic;
    unsigned char fac; /* a factor string of some rule */
} lstr;

typedef struct ptgt {
    uint32_t rule;
    uint16_t str;      /* index in the rule's prefilter strings */
} ptgt;

#define PAIRS 65536u /* byte pairs, first byte in the low 8 bits */

/* A literal occurrence at f, and the first position a match using it may
 * start at (window [ws, f]). */
typedef struct cand {
    size_t ws, f;
    size_t br; /* branch of the literal */
} cand;

typedef struct cvec {
    cand *v;
    size_t n, cap;
} cvec;

/* Positions (start-gate starts). */
typedef struct svec {
    size_t *v;
    size_t n, cap;
} svec;

/* Strings every match of a rule begins with (see lead_strs). */
#define LP_MAX 16
typedef struct lpre {
    unsigned char n;          /* how many; 0: unknown */
    unsigned char len[LP_MAX];
    char s[LP_MAX][4];        /* the first (at most 4) bytes of each */
} lpre;

/* One factor string's meaning for one rule (factor_seen). */
typedef struct fref {
    uint32_t rule;
    uint32_t fac;                /* the rule's factor number (< 64) */
} fref;

struct lg_scanner {
    const lg_policy *p;
    pcre2_match_data *md;        /* ovector for the rule with most captures */
    pcre2_match_context *mctx;   /* limits and the JIT stack */
    pcre2_jit_stack *js;         /* NULL when JIT stacks cannot be made */
    size_t ctx_chars;            /* characters of released text kept as context */
    size_t ctx_bytes;            /* and at least this many bytes (policy->max_lookbehind) */
    size_t *hold;                /* per rule, scratch for one feed */
    size_t *ord, *pmax;          /* scratch for overlap resolution */
    unsigned char *chosen;
    size_t scap;                 /* capacity of ord, pmax, chosen */
    lg_buf tmp;                  /* scratch for vault look-ups */
    int ref;                     /* test-only: no prefilters (lg_scanner_set_reference) */
    rpf *pf;                     /* per rule: literal prefilter */
    pent *ents;                  /* prefilter table entries, by pair (heap) */
    size_t nents;
    uint32_t *key;               /* while building: each entry's pair (heap) */
    uint32_t *pofs;              /* [PAIRS + 1] entries of pair x: ents[pofs[x]..pofs[x + 1]) */
    unsigned char *bm;           /* [8192] byte pairs with any entry (one-byte strings: every pair) */
    lstr *ls;                    /* the policy's distinct prefilter strings (heap) */
    size_t nls, cls;
    uint32_t *lhash;             /* while building: open-addressed index of ls (number + 1) */
    size_t lhcap;
    uint32_t *tofs;              /* targets of string x: tg[tofs[x]..tofs[x + 1]) (heap) */
    ptgt *tg;                    /* the rule strings each candidate string stands for (heap) */
    size_t ntg, ctg;
    uint32_t *tsid;              /* while building: each target's string */
    uint64_t *fseen;             /* per string, this pass: it occurs as a factor (scratch, own) */
    uint32_t *fofs;              /* factor string x stands for fref[fofs[x]..fofs[x + 1]) (heap) */
    fref *fref;                  /* (rule, factor) of every factor string, by string (heap) */
    size_t *act, nact;           /* the rules applying to (act_on, act_role) (scratch, own) */
    unsigned act_on, act_role;   /* what act is for; act_on 0: not computed yet */
    size_t *actx, nactx;         /* those of act without a prefilter (scratch, own) */
    size_t *hit, nhit;           /* this step: the rules that got candidates (scratch, own) */
    size_t *runl;                /* this step: the rules to run (scratch, own) */
    size_t *wres;                /* scan_whole's per-rule resume offsets (scratch, own) */
    lg_buf wwin;                 /* scan_whole's window, kept between calls while small
                                  * (scratch, own; see WWIN_KEEP) */
    cvec *cand;                  /* per rule: candidate literal positions of this step */
    uint64_t *seen;              /* per rule, this step: factors that occur in its view */
    unsigned char *rview;        /* per rule, this step: 0 idle, 1 raw view, 2 normalised view */
    size_t *vpos;                /* per rule, this step: search start in its view */
    char *nbuf;                  /* normalised view of the window */
    size_t ncap;
    lg_nmap nmap;                /* its map back to window offsets */
    unsigned char (*lead)[4];    /* per rule without a prefilter: the bytes every match
                                  * starts with, when all are non-ASCII */
    unsigned char *nlead;        /* per rule: how many (0: not used) */
    lpre *lp;                    /* per rule without a prefilter: strings every match
                                  * starts with, when known (lead_strs) */
    rgate *gate;                 /* per rule without a prefilter: its run gate */
    sgate *sg;                   /* per rule without a prefilter: its start gate */
    size_t *sgr, nsgr;           /* the rules with a start gate (heap) */
    unsigned char *sgbm;         /* [8192] the pairs of every start gate (heap; NULL: none) */
    unsigned char *bmx;          /* [8192] bm and sgbm together (heap; NULL: none) */
    svec *sgpos;                 /* per rule, this step: fitting starts its view's pass saw */
    unsigned char *sgok;         /* per rule, this step: sgpos holds every one from vpos on */
    size_t *sgi;                 /* per rule: the sgpos entry the search is at */
    /* The prefilter tables above (pf, ents, pofs, bm, ls, tofs, tg, lead, nlead, lp, gate, sg,
     * sgr, sgbm, bmx)
     * depend only on the policy.  Building them costs milliseconds, so the
     * policy loader builds them once (lg_scan_prepare) and every scanner
     * borrows them read-only; only the per-scan scratch is its own. */
    const lg_scanner *tmpl;      /* the policy's shared tables, or NULL: ours */
};

/* File string sid, x[0..l) (caseless when ic), under key, anchored at its
 * pair at offset k. */
static int ent_add(lg_scanner *s, uint32_t sid, const char *x, size_t l, int ic, size_t k,
                   uint32_t key)
{
    if ((s->nents & (s->nents - 1)) == 0 || s->nents == 0) {
        size_t cap = s->nents ? s->nents * 2 : 64;
        pent *ne = realloc(s->ents, cap * sizeof *ne);
        if (!ne)
            return LG_E_NOMEM;
        s->ents = ne;
        uint32_t *nk = realloc(s->key, cap * sizeof *nk);
        if (!nk)
            return LG_E_NOMEM;
        s->key = nk;
    }
    if (s->nents >= UINT32_MAX - 1)
        return LG_E_NOMEM;
    unsigned char vb[8] = { 0 }, mb[8] = { 0 };
    for (size_t q = 0; q < 8 && q < l; q++) {
        unsigned char c = (unsigned char)x[q];
        int letter = ic && c >= 'a' && c <= 'z';
        mb[q] = (unsigned char)(letter ? 0xDF : 0xFF);
        vb[q] = (unsigned char)(c & mb[q]);
    }
    pent *e = &s->ents[s->nents];
    memcpy(&e->val, vb, 8);
    memcpy(&e->mask, mb, 8);
    e->sid = sid;
    e->k = (uint8_t)k;
    e->len = (uint8_t)l;
    e->fac = 0; /* set by ent_group */
    s->key[s->nents++] = key;
    return LG_OK;
}

static uint32_t ls_hash(const char *x, size_t l, int ic)
{
    uint32_t h = 2166136261u;
    for (size_t c = 0; c < l; c++)
        h = (h ^ (unsigned char)x[c]) * 16777619u;
    return h ^ (uint32_t)(ic != 0);
}

/* The number of string x[0..l) (caseless when ic) among the policy's
 * prefilter strings, added when new (*fresh = 1).  -1 on allocation
 * failure. */
static long ls_intern(lg_scanner *s, const char *x, size_t l, int ic, int *fresh)
{
    *fresh = 0;
    if (2 * (s->nls + 1) > s->lhcap) {
        size_t cap = s->lhcap ? s->lhcap * 2 : 1024;
        uint32_t *nh = calloc(cap, sizeof *nh);
        if (!nh)
            return -1;
        free(s->lhash);
        s->lhash = nh;
        s->lhcap = cap;
        for (size_t q = 0; q < s->nls; q++) { /* rehash */
            size_t at = ls_hash(s->ls[q].s, s->ls[q].len, s->ls[q].ic) & (cap - 1);
            while (nh[at])
                at = (at + 1) & (cap - 1);
            nh[at] = (uint32_t)q + 1;
        }
    }
    size_t at = ls_hash(x, l, ic) & (s->lhcap - 1);
    for (; s->lhash[at]; at = (at + 1) & (s->lhcap - 1)) {
        const lstr *q = &s->ls[s->lhash[at] - 1];
        if (q->len == l && q->ic == (ic != 0) && memcmp(q->s, x, l) == 0)
            return (long)s->lhash[at] - 1;
    }
    if (s->nls == s->cls) {
        size_t cap = s->cls ? s->cls * 2 : 256;
        lstr *nl = realloc(s->ls, cap * sizeof *nl);
        if (!nl)
            return -1;
        s->ls = nl;
        s->cls = cap;
    }
    lstr *q = &s->ls[s->nls];
    memcpy(q->s, x, l);
    q->len = (unsigned char)l;
    q->ic = (unsigned char)(ic != 0);
    q->fac = 0;
    s->lhash[at] = (uint32_t)++s->nls;
    *fresh = 1;
    return (long)s->nls - 1;
}

/* Note that string sid stands for prefilter string str of rule. */
static int tg_add(lg_scanner *s, uint32_t sid, uint32_t rule, size_t str)
{
    if (s->ntg == s->ctg) {
        size_t cap = s->ctg ? s->ctg * 2 : 256;
        ptgt *nt = realloc(s->tg, cap * sizeof *nt);
        if (!nt)
            return LG_E_NOMEM;
        s->tg = nt;
        uint32_t *ns = realloc(s->tsid, cap * sizeof *ns);
        if (!ns)
            return LG_E_NOMEM;
        s->tsid = ns;
        s->ctg = cap;
    }
    s->tg[s->ntg] = (ptgt){ .rule = rule, .str = (uint16_t)str };
    s->tsid[s->ntg++] = sid;
    return LG_OK;
}

/* Group the targets by string (a counting sort, as ent_group). */
static int tg_group(lg_scanner *s)
{
    uint32_t *cnt = calloc(s->nls + 1, sizeof *cnt);
    ptgt *g = malloc((s->ntg ? s->ntg : 1) * sizeof *g);
    if (!cnt || !g) {
        free(cnt);
        free(g);
        return LG_E_NOMEM;
    }
    for (size_t q = 0; q < s->ntg; q++)
        cnt[s->tsid[q] + 1]++;
    for (size_t x = 0; x < s->nls; x++)
        cnt[x + 1] += cnt[x];
    for (size_t q = 0; q < s->ntg; q++)
        g[cnt[s->tsid[q]]++] = s->tg[q];
    for (size_t x = s->nls; x > 0; x--)
        cnt[x] = cnt[x - 1];
    cnt[0] = 0;
    free(s->tg);
    free(s->tsid);
    s->tsid = NULL;
    s->tg = g;
    s->tofs = cnt;
    return LG_OK;
}

/* Group the entries by key (a counting sort: the order within a pair does
 * not matter, candidates are sorted afterwards). */
static int ent_group(lg_scanner *s)
{
    uint32_t *cnt = s->pofs;
    pent *g = malloc((s->nents ? s->nents : 1) * sizeof *g);
    if (!g)
        return LG_E_NOMEM;
    for (size_t e = 0; e < s->nents; e++)
        cnt[s->key[e] + 1]++;
    for (size_t x = 0; x < PAIRS; x++)
        cnt[x + 1] += cnt[x];
    /* place each entry at its key's next free slot, then shift the starts
     * back */
    for (size_t e = 0; e < s->nents; e++) {
        s->ents[e].fac = s->ls[s->ents[e].sid].fac;
        g[cnt[s->key[e]]++] = s->ents[e];
    }
    for (size_t x = PAIRS; x > 0; x--)
        cnt[x] = cnt[x - 1];
    cnt[0] = 0;
    free(s->ents);
    free(s->key);
    s->key = NULL;
    s->ents = g;
    return LG_OK;
}

/* Case variants of byte c for a caseless string. */
static int variants(unsigned c, int icase, unsigned *v)
{
    v[0] = c;
    if (icase && is_alpha(c)) {
        v[0] = c | 0x20;
        v[1] = c & ~0x20u;
        return 2;
    }
    return 1;
}

/* Enter rule ri's prefilter strings in the table, each at its rarest pair
 * of bytes (one-byte strings under every pair starting with the byte); a
 * factor string only the first time any rule has it. */
static int pf_index(lg_scanner *s, size_t ri)
{
    rpf *f = &s->pf[ri];
    if (f->nfs && !(f->fid = malloc(f->nfs * sizeof *f->fid)))
        return LG_E_NOMEM;
    for (size_t j = 0; j < f->nstr + f->nfs; j++) {
        size_t l = f->len[j], k;
        int fresh;
        long id = ls_intern(s, f->s[j], l, f->ic[j], &fresh);
        if (id < 0)
            return LG_E_NOMEM;
        uint32_t sid = (uint32_t)id;
        if (j >= f->nstr) {
            f->fid[j - f->nstr] = sid;
            s->ls[sid].fac = 1;
        } else if (tg_add(s, sid, (uint32_t)ri, j) != LG_OK)
            return LG_E_NOMEM;
        if (!fresh)
            continue;
        k = str_pair(f->s[j], l, f->ic[j]);
        unsigned a[2], b[2];
        int na = variants((unsigned char)f->s[j][k], f->ic[j], a);
        if (l == 1) {
            /* under every pair it starts: the pass then looks up one list
             * per hit (a second look-up for these few strings, at every
             * hit, cost more than the copies) */
            for (int x = 0; x < na; x++)
                for (unsigned y = 0; y < 256; y++) {
                    unsigned idx = a[x] | y << 8;
                    int rc = ent_add(s, sid, f->s[j], l, f->ic[j], 0, idx);
                    if (rc)
                        return rc;
                    s->bm[idx >> 3] |= (unsigned char)(1u << (idx & 7));
                }
            continue;
        }
        int nb = variants((unsigned char)f->s[j][k + 1], f->ic[j], b);
        for (int x = 0; x < na; x++)
            for (int y = 0; y < nb; y++) {
                unsigned idx = a[x] | b[y] << 8;
                int rc = ent_add(s, sid, f->s[j], l, f->ic[j], k, idx);
                if (rc)
                    return rc;
                s->bm[idx >> 3] |= (unsigned char)(1u << (idx & 7));
            }
    }
    return LG_OK;
}

/* For a rule without a literal prefilter (the evasion rules: invisible
 * and control characters), PCRE2's own start bitmap: when every byte a
 * match can start with is a non-ASCII lead byte (at most four of them),
 * whole-text searches jump with memchr to the first one instead of letting
 * the matcher walk the text.  PCRE2 would skip those positions itself
 * (that is what the bitmap is for), so the result is the same. */
static void lead_bytes(lg_scanner *s, size_t ri)
{
    const pcre2_code *code = s->p->rules[ri].code;
    uint32_t type = 3, cu = 0;
    const uint8_t *bm = NULL;
    if (pcre2_pattern_info(code, PCRE2_INFO_FIRSTCODETYPE, &type) != 0)
        return;
    unsigned n = 0;
    if (type == 1 && pcre2_pattern_info(code, PCRE2_INFO_FIRSTCODEUNIT, &cu) == 0 && cu >= 0xC2 &&
        cu <= 0xF4) {
        s->lead[ri][n++] = (unsigned char)cu;
    } else if (type == 0 && pcre2_pattern_info(code, PCRE2_INFO_FIRSTBITMAP, &bm) == 0 && bm) {
        for (unsigned b = 0; b < 256; b++)
            if (bget(bm, b)) {
                if (b < 0xC2 || b > 0xF4 || n == 4)
                    return;
                s->lead[ri][n++] = (unsigned char)b;
            }
    }
    s->nlead[ri] = (unsigned char)n;
}

/* Sharper than the start bitmap, when the pattern says it: the strings
 * every match begins with (the analyser's prefix set, reading a class of a
 * few listed non-ASCII characters as the set of their encodings), when
 * there are few and all start with a non-ASCII byte.  A whole-text search
 * then starts at the first place one of them occurs: "，" (EF BC 8C) no
 * longer starts a search for zero-width characters (EF BB BF). */
static void lead_strs(lg_scanner *s, size_t ri, ccache *cc)
{
    const char *pattern = s->p->rules[ri].pattern;
    pp P = { .p = (const unsigned char *)pattern, .n = strlen(pattern), .cc = cc, .hx = 1 };
    an out;
    parse_alt(&P, &out);
    const xset *x = out.pf;
    int ok = !P.fail && P.i == P.n && x && x->n && x->n <= LP_MAX;
    unsigned char first[4];
    unsigned nf = 0;
    for (size_t k = 0; ok && k < x->n; k++) {
        unsigned char b = (unsigned char)x->s[k][0];
        ok = x->len[k] > 0 && b >= 0xC2 && !x->ic[k];
        unsigned q = 0;
        while (ok && q < nf && first[q] != b)
            q++;
        if (ok && q == nf)
            ok = nf < 4 ? (first[nf++] = b, 1) : 0;
    }
    if (ok) {
        lpre *L = &s->lp[ri];
        for (size_t k = 0; k < x->n; k++) {
            /* a prefix of a string every match begins with is one too */
            L->len[k] = (unsigned char)(x->len[k] < 4 ? x->len[k] : 4);
            memcpy(L->s[k], x->s[k], L->len[k]);
        }
        L->n = (unsigned char)x->n;
        memcpy(s->lead[ri], first, nf);
        s->nlead[ri] = (unsigned char)nf;
    }
    an_free(&out);
}

/* The first position in w[from..end) where one of L's strings occurs
 * whole (end when none): each lead byte found with memchr, its strings
 * compared there. */
static size_t lead_find(const lpre *L, const unsigned char *lead, unsigned nlead, const char *w,
                        size_t from, size_t end)
{
    size_t best = end;
    for (unsigned b = 0; b < nlead; b++)
        for (size_t p = from; p < best;) {
            const char *hit = memchr(w + p, lead[b], best - p);
            if (!hit)
                break;
            size_t q = (size_t)(hit - w);
            for (size_t k = 0; k < L->n; k++)
                if (end - q >= L->len[k] && memcmp(w + q, L->s[k], L->len[k]) == 0) {
                    best = q;
                    break;
                }
            p = q + 1;
        }
    return best;
}

static int build_index(lg_scanner *s);
static int sg_index(lg_scanner *s);
static int fac_index(lg_scanner *s);

lg_scanner *lg_scanner_new(const lg_policy *p)
{
    if (!p)
        return NULL;
    lg_scanner *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->p = p;
    uint32_t maxcap = 0, maxlb = 0;
    for (size_t i = 0; i < p->nrules; i++) {
        const lg_rule *r = &p->rules[i];
        uint32_t c = 0;
        if (r->code && pcre2_pattern_info(r->code, PCRE2_INFO_CAPTURECOUNT, &c) == 0 && c > maxcap)
            maxcap = c;
        uint32_t lb = rule_lookbehind_chars(r);
        if (lb > maxlb)
            maxlb = lb;
    }
    /* Nested lookbehinds can reach back further than the longest single
     * one (pcre2partial(3)); twice the maximum covers one level of nesting.
     * One more character so \b and (?m)^ see the character before. */
    s->ctx_chars = 2 * (size_t)maxlb + 1;
    s->ctx_bytes = p->max_lookbehind;
    s->md = pcre2_match_data_create(maxcap + 1, NULL);
    s->mctx = pcre2_match_context_create(NULL);
    s->hold = calloc(p->nrules ? p->nrules : 1, sizeof *s->hold);
    if (!s->md || !s->mctx || !s->hold) {
        lg_scanner_free(s);
        return NULL;
    }
    pcre2_set_match_limit(s->mctx, MATCH_LIMIT);
    pcre2_set_depth_limit(s->mctx, DEPTH_LIMIT);
    pcre2_set_heap_limit(s->mctx, HEAP_LIMIT_KIB);
    /* Without a JIT stack of our own JIT uses 32K on the machine stack;
     * a failure here only makes deep patterns hit the limit sooner. */
    s->js = pcre2_jit_stack_create(32 * 1024, 512 * 1024, NULL);
    if (s->js)
        pcre2_jit_stack_assign(s->mctx, NULL, s->js);
    lg_buf_init(&s->tmp, (size_t)-1 / 2);
    lg_nmap_init(&s->nmap);
    size_t nr = p->nrules ? p->nrules : 1;
    s->cand = calloc(nr, sizeof *s->cand);
    s->rview = calloc(nr, 1);
    s->vpos = calloc(nr, sizeof *s->vpos);
    s->seen = calloc(nr, sizeof *s->seen);
    s->sgpos = calloc(nr, sizeof *s->sgpos);
    s->sgok = calloc(nr, 1);
    s->sgi = calloc(nr, sizeof *s->sgi);
    s->act = malloc(nr * sizeof *s->act);
    s->hit = malloc(nr * sizeof *s->hit);
    s->actx = malloc(nr * sizeof *s->actx);
    s->runl = malloc(nr * sizeof *s->runl);
    s->wres = malloc(nr * sizeof *s->wres);
    lg_buf_init(&s->wwin, (size_t)-1 / 2);
    if (!s->cand || !s->rview || !s->vpos || !s->seen || !s->sgpos || !s->sgok || !s->sgi ||
        !s->act || !s->hit || !s->actx || !s->runl || !s->wres) {
        lg_scanner_free(s);
        return NULL;
    }
    const lg_scanner *t = p->scan_index;
    if (t) {
        s->tmpl = t;
        s->pf = t->pf;
        s->ents = t->ents;
        s->nents = t->nents;
        s->ls = t->ls;
        s->nls = t->nls;
        s->tofs = t->tofs;
        s->tg = t->tg;
        s->pofs = t->pofs;
        s->bm = t->bm;
        s->lead = t->lead;
        s->nlead = t->nlead;
        s->lp = t->lp;
        s->gate = t->gate;
        s->sg = t->sg;
        s->sgr = t->sgr;
        s->nsgr = t->nsgr;
        s->sgbm = t->sgbm;
        s->bmx = t->bmx;
        s->fofs = t->fofs;
        s->fref = t->fref;
        if (!(s->fseen = calloc(s->nls / 64 + 1, sizeof *s->fseen))) {
            lg_scanner_free(s);
            return NULL;
        }
        return s;
    }
    if (build_index(s) != LG_OK) {
        lg_scanner_free(s);
        return NULL;
    }
    if (!(s->fseen = calloc(s->nls / 64 + 1, sizeof *s->fseen))) {
        lg_scanner_free(s);
        return NULL;
    }
    return s;
}

/* The prefilter tables for s->p (see the end of struct lg_scanner). */
static int build_index(lg_scanner *s)
{
    const lg_policy *p = s->p;
    size_t nr = p->nrules ? p->nrules : 1;
    s->pf = calloc(nr, sizeof *s->pf);
    s->pofs = calloc(PAIRS + 1, sizeof *s->pofs);
    s->bm = calloc(8192, 1);
    s->lead = calloc(nr, sizeof *s->lead);
    s->nlead = calloc(nr, 1);
    s->lp = calloc(nr, sizeof *s->lp);
    s->gate = calloc(nr, sizeof *s->gate);
    s->sg = calloc(nr, sizeof *s->sg);
    if (!s->pf || !s->pofs || !s->bm || !s->lead || !s->nlead || !s->lp || !s->gate || !s->sg)
        return LG_E_NOMEM;
    ccache *cc = calloc(1, sizeof *cc); /* NULL: no cache, same result */
    int rc = LG_OK;
    for (size_t i = 0; i < p->nrules && rc == LG_OK; i++) {
        const lg_rule *r = &p->rules[i];
        if (!r->code || !r->pattern)
            continue;
        rpf_analyse(r->pattern, &s->pf[i], cc, &s->gate[i]);
        if (s->pf[i].ok)
            rc = pf_index(s, i);
        else {
            lead_bytes(s, i);
            lead_strs(s, i, cc);
            rgate_analyse(r->pattern, &s->gate[i], cc);
            /* a memchr for rare lead bytes does better, and a run gate
             * already rules out most texts for a rule of long runs */
            if (!s->nlead[i] && !s->gate[i].nb)
                sgate_analyse(r->pattern, &s->sg[i]);
        }
    }
    if (cc)
        for (size_t i = 0; i < cc->n; i++)
            free(cc->x[i]);
    free(cc);
    free(s->lhash);
    s->lhash = NULL;
    if (rc == LG_OK)
        rc = tg_group(s);
    if (rc == LG_OK)
        rc = sg_index(s);
    if (rc == LG_OK)
        rc = fac_index(s);
    return rc == LG_OK ? ent_group(s) : rc;
}

/* For each factor string, the rules and factors it stands for, so that
 * factor_seen visits only the strings a pass saw. */
static int fac_index(lg_scanner *s)
{
    const lg_policy *p = s->p;
    size_t n = 0;
    s->fofs = calloc(s->nls + 2, sizeof *s->fofs);
    if (!s->fofs)
        return LG_E_NOMEM;
    for (size_t i = 0; i < p->nrules; i++)
        if (s->pf[i].ok)
            for (size_t q = 0; q < s->pf[i].nfs; q++) {
                s->fofs[s->pf[i].fid[q] + 2]++;
                n++;
            }
    for (size_t x = 0; x < s->nls; x++)
        s->fofs[x + 2] += s->fofs[x + 1];
    s->fref = malloc((n ? n : 1) * sizeof *s->fref);
    if (!s->fref)
        return LG_E_NOMEM;
    /* fofs[x + 1] is now where x's entries start; filling moves it to
     * where they end, which is where x + 1's start */
    for (size_t i = 0; i < p->nrules; i++)
        if (s->pf[i].ok)
            for (size_t q = 0; q < s->pf[i].nfs; q++) {
                const rpf *pf = &s->pf[i];
                s->fref[s->fofs[pf->fid[q] + 1]++] =
                    (fref){ .rule = (uint32_t)i, .fac = pf->br[pf->nstr + q] };
            }
    return LG_OK;
}

/* The rules with a start gate, and their pairs beside the literal pass's
 * (the pass notes their fitting starts as it goes: cand_pass). */
static int sg_index(lg_scanner *s)
{
    const lg_policy *p = s->p;
    for (size_t i = 0; i < p->nrules; i++)
        if (s->sg[i].nb)
            s->nsgr++;
    if (!s->nsgr)
        return LG_OK;
    s->sgr = malloc(s->nsgr * sizeof *s->sgr);
    s->sgbm = calloc(8192, 1);
    s->bmx = malloc(8192);
    if (!s->sgr || !s->sgbm || !s->bmx)
        return LG_E_NOMEM;
    size_t k = 0;
    for (size_t i = 0; i < p->nrules; i++)
        if (s->sg[i].nb) {
            s->sgr[k++] = i;
            for (size_t j = 0; j < 8192; j++)
                s->sgbm[j] |= s->sg[i].pairs[j];
        }
    for (size_t j = 0; j < 8192; j++)
        s->bmx[j] = s->bm[j] | s->sgbm[j];
    return LG_OK;
}

int lg_scan_prepare(lg_policy *p)
{
    if (p->scan_index)
        return LG_OK;
    lg_scanner *t = lg_scanner_new(p);
    if (!t)
        return LG_E_NOMEM;
    p->scan_index = t;
    return LG_OK;
}

void lg_scan_release(lg_policy *p)
{
    lg_scanner_free(p->scan_index);
    p->scan_index = NULL;
}

void lg_scanner_set_reference(lg_scanner *s, int on)
{
    if (s)
        s->ref = on != 0;
}

void lg_scanner_free(lg_scanner *s)
{
    if (!s)
        return;
    pcre2_match_data_free(s->md);
    pcre2_match_context_free(s->mctx);
    pcre2_jit_stack_free(s->js);
    free(s->hold);
    free(s->ord);
    free(s->pmax);
    free(s->chosen);
    lg_buf_free(&s->tmp);
    if (s->cand)
        for (size_t i = 0; i < s->p->nrules; i++)
            free(s->cand[i].v);
    free(s->cand);
    free(s->rview);
    free(s->vpos);
    free(s->seen);
    if (s->sgpos)
        for (size_t i = 0; i < s->p->nrules; i++)
            free(s->sgpos[i].v);
    free(s->sgpos);
    free(s->sgok);
    free(s->sgi);
    free(s->nbuf);
    free(s->fseen);
    free(s->act);
    free(s->hit);
    free(s->actx);
    free(s->runl);
    free(s->wres);
    lg_buf_free(&s->wwin);
    lg_nmap_free(&s->nmap);
    if (!s->tmpl) {
        if (s->pf)
            for (size_t i = 0; i < s->p->nrules; i++)
                rpf_clear(&s->pf[i]);
        free(s->pf);
        free(s->pofs);
        free(s->bm);
        free(s->ents);
        free(s->key);
        free(s->ls);
        free(s->lhash);
        free(s->tofs);
        free(s->tg);
        free(s->tsid);
        free(s->lead);
        free(s->nlead);
        free(s->lp);
        if (s->gate)
            for (size_t i = 0; i < s->p->nrules; i++)
                rgate_clear(&s->gate[i]);
        free(s->gate);
        if (s->sg)
            for (size_t i = 0; i < s->p->nrules; i++)
                sgate_clear(&s->sg[i]);
        free(s->sg);
        free(s->sgr);
        free(s->sgbm);
        free(s->bmx);
        free(s->fofs);
        free(s->fref);
    }
    free(s);
}

const lg_policy *lg_scanner_policy(const lg_scanner *s)
{
    return s ? s->p : NULL;
}

static int scratch_reserve(lg_scanner *s, size_t n)
{
    if (n <= s->scap)
        return LG_OK;
    size_t cap = s->scap ? s->scap : 16;
    while (cap < n)
        cap *= 2;
    size_t *o = realloc(s->ord, cap * sizeof *o);
    if (!o)
        return LG_E_NOMEM;
    s->ord = o;
    size_t *m = realloc(s->pmax, cap * sizeof *m);
    if (!m)
        return LG_E_NOMEM;
    s->pmax = m;
    unsigned char *c = realloc(s->chosen, cap);
    if (!c)
        return LG_E_NOMEM;
    s->chosen = c;
    s->scap = cap;
    return LG_OK;
}

/* ==== Streaming scan ==== */

#define DEFAULT_MAX_HOLD 4096
#define MIN_MAX_HOLD 16 /* room for any character plus a little text */

/* lg_sscan_init but for ss->resume, left NULL. */
static int sscan_setup(lg_sscan *ss, lg_scanner *sc, unsigned on, unsigned role,
                       unsigned flags, size_t max_hold)
{
    if (!ss)
        return LG_E_INVAL;
    memset(ss, 0, sizeof *ss);
    if (!sc)
        return LG_E_INVAL;
    ss->sc = sc;
    ss->on = on;
    ss->role = role;
    ss->flags = flags;
    if (!max_hold)
        max_hold = sc->p->max_hold ? sc->p->max_hold : DEFAULT_MAX_HOLD;
    if (max_hold < MIN_MAX_HOLD)
        max_hold = MIN_MAX_HOLD;
    ss->max_hold = max_hold;
    /* The window is bounded by the feed logic (context + 2 * max_hold). */
    lg_buf_init(&ss->win, (size_t)-1 / 2);
    return LG_OK;
}

int lg_sscan_init(lg_sscan *ss, lg_scanner *sc, unsigned on, unsigned role,
                  unsigned flags, size_t max_hold)
{
    int rc = sscan_setup(ss, sc, on, role, flags, max_hold);
    if (rc)
        return rc;
    ss->resume = calloc(sc->p->nrules ? sc->p->nrules : 1, sizeof *ss->resume);
    if (!ss->resume)
        return LG_E_NOMEM;
    return LG_OK;
}

void lg_sscan_free(lg_sscan *ss)
{
    if (!ss)
        return;
    lg_buf_free(&ss->win);
    free(ss->resume);
    free(ss->pend);
    ss->resume = NULL;
    ss->pend = NULL;
    ss->npend = ss->cpend = 0;
}

size_t lg_sscan_held(const lg_sscan *ss)
{
    return ss->win.len - ss->ctx;
}

static int applies(const lg_rule *r, unsigned on, unsigned role)
{
    if (!r->code || !(r->on & on))
        return 0;
    if ((on & LG_ON_PROMPT) && r->roles && !(r->roles & role))
        return 0;
    return 1;
}

static int pend_add(lg_sscan *ss, const lg_rule *r, size_t start, size_t end)
{
    if (ss->npend == ss->cpend) {
        size_t cap = ss->cpend ? ss->cpend * 2 : 8;
        lg_finding *nv = realloc(ss->pend, cap * sizeof *nv);
        if (!nv)
            return LG_E_NOMEM;
        ss->pend = nv;
        ss->cpend = cap;
    }
    ss->pend[ss->npend++] = (lg_finding){ .rule = r, .start = start, .end = end, .action = r->action };
    return LG_OK;
}

/* Is the complete match w[s..e) a finding?  Validators filter; a
 * placeholder counts only when the vault knows it. */
static int accept(lg_sscan *ss, const lg_rule *r, const char *m, size_t n, lg_vault *v)
{
    if (r->validator != LG_VAL_NONE && !lg_validate(r->validator, m, n))
        return 0;
    if (r->restore) {
        if (!v)
            return 0;
        lg_buf_reset(&ss->sc->tmp);
        return lg_vault_restore(v, m, n, &ss->sc->tmp) == LG_OK;
    }
    return 1;
}

/* What rules match against in one step: the window itself (raw rules, and
 * every rule when the window needs no normalisation), or its normalised
 * copy.  Positions in a view map back to window positions. */
typedef struct view {
    const char *t;        /* the text */
    size_t end;           /* end of the text judged in this step */
    size_t oend;          /* the same end in the window */
    const lg_nmap *map;   /* NULL: t is the window */
} view;

/* Window offset where a match or partial match starting at p begins. */
static size_t v_ostart(const view *v, size_t p)
{
    if (!v->map)
        return p;
    return p >= v->end ? v->oend : lg_nmap_start(v->map, p);
}

/* Window offset where a match ending at p ends (just after the source of
 * its last character: removed characters after it are not part of it). */
static size_t v_oend(const view *v, size_t p)
{
    return v->map ? lg_nmap_end(v->map, p) : p;
}

static size_t v_from(const view *v, size_t o)
{
    if (!v->map)
        return o;
    return o >= v->oend ? v->end : lg_nmap_from_orig(v->map, o);
}

/* How far back from literal occurrence f a match using it may start
 * (never before pos). */
static size_t back_start(const rbranch *rb, const char *w, size_t end, size_t pos, size_t f)
{
    if (rb->back_max >= PF_INF)
        return pos;
    size_t lo = f - pos > rb->back_max ? f - rb->back_max : pos;
    size_t j = f;
    while (j > lo && bget(rb->back, (unsigned char)w[j - 1]))
        j--;
    j = char_start(w, end, j);
    return j < pos ? pos : j;
}

/* pcre2_match, calling the JIT code directly when code is a JIT copy
 * (jit).  pcre2_match checks its arguments and then hands such code to
 * pcre2_jit_match itself; its checks cannot fail here (JIT match options
 * only, the offset within the subject, patterns compiled with
 * USE_OFFSET_LIMIT, and no UTF check with MATCH_INVALID_UTF), so the
 * direct call gives the same result for about a hundred instructions
 * less, on some 90 calls a 4 KiB prompt.  A mode the copy lacks
 * (PCRE2_ERROR_JIT_BADOPTION) goes to pcre2_match, as it would. */
static int rmatch(const pcre2_code *code, int jit, const char *w, size_t len, size_t off,
                  uint32_t opts, pcre2_match_data *md, pcre2_match_context *mctx)
{
    if (jit && off <= len) {
        int rc = pcre2_jit_match(code, (PCRE2_SPTR)w, len, off, opts, md, mctx);
        if (rc != PCRE2_ERROR_JIT_BADOPTION)
            return rc;
    }
    return pcre2_match(code, (PCRE2_SPTR)w, len, off, opts, md, mctx);
}

/* The code of branch b (bcode) of pattern for a call over about `bytes`
 * of subject: made by the first thread to ask, interpreted until the
 * branch has done as much work as makes a rule's JIT copy worth making
 * (rule_code; JIT-compiling every branch a first request touches took
 * 1.4 ms of its 2).  NULL while another thread makes it, or when it could
 * not be made: the caller then matches the whole pattern, which gives the
 * same. */
static const pcre2_code *branch_code(const char *pattern, bcode *b, size_t bytes)
{
    pcre2_code *c = atomic_load_explicit(&b->code, memory_order_acquire);
    if (c)
        return code_for(c, &b->jit, bytes);
    if (atomic_flag_test_and_set_explicit(&b->claimed, memory_order_acq_rel))
        return NULL;
    char *src = malloc((size_t)b->len + 5);
    if (!src)
        return NULL;
    size_t n = 0;
    if (b->icase) {
        memcpy(src, "(?i)", 4);
        n = 4;
    }
    memcpy(src + n, pattern + b->at, b->len);
    n += b->len;
    int ecode;
    PCRE2_SIZE eoff;
    c = pcre2_compile((PCRE2_SPTR)src, n, RULE_OPTS, &ecode, &eoff, NULL);
    free(src);
    if (!c)
        return NULL;
    atomic_store_explicit(&b->code, c, memory_order_release);
    return code_for(c, &b->jit, bytes);
}

/* Windows whose candidates come from at most this many of a rule's
 * branches match those branches one by one (split_match). */
#define SPLIT_MAX 3

/* What the whole pattern gives over subject w[0..len) from ws with starts
 * up to lim, when only the branches in bm can match there: each of them
 * on its own, keeping the leftmost start, and of equal starts the first
 * branch (the order the whole pattern tries them in at each start).  A
 * later branch is only asked for starts before the best so far.  Leaves
 * the result in md's ovector[0..1] and returns its code; *done = 0 when a
 * branch's code is missing (nothing matched then). */
static int split_match(const rpf *pf, const char *pattern, uint64_t bm, const char *w,
                       size_t len, size_t ws, size_t lim, uint32_t opts, pcre2_match_data *md,
                       pcre2_match_context *mctx, int *done)
{
    const pcre2_code *code[SPLIT_MAX];
    int jit[SPLIT_MAX];
    size_t nc = 0;
    for (uint64_t m = bm; m; m &= m - 1) {
        bcode *b = &pf->bc[__builtin_ctzll(m)];
        code[nc] = branch_code(pattern, b, len - ws);
        jit[nc] = code[nc] && code[nc] != atomic_load_explicit(&b->code, memory_order_relaxed);
        if (!code[nc++]) {
            *done = 0;
            return PCRE2_ERROR_NOMATCH;
        }
    }
    *done = 1;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    int best = PCRE2_ERROR_NOMATCH;
    size_t bs = 0, be = 0;
    for (size_t k = 0; k < nc; k++) {
        pcre2_set_offset_limit(mctx, lim);
        int rc = rmatch(code[k], jit[k], w, len, ws, opts, md, mctx);
        if (rc == PCRE2_ERROR_NOMATCH)
            continue;
        if (rc < 0)
            return rc;
        best = rc;
        bs = ov[0];
        be = ov[1];
        if (bs <= ws)
            break;
        lim = bs - 1;
    }
    if (best >= 0) {
        ov[0] = bs;
        ov[1] = be;
    }
    return best;
}

/* Literal occurrences closer than this are searched with one pcre2_match
 * call (the engine's own start-of-match optimisations cover the gap).  It
 * was 64; once windows matched only their branches (split_match), a call
 * became cheaper than trying every start across such a gap ("Contact the
 * support desk": pii.phone_national tried each of the 20 starts between
 * its two words), and 4 to 16 gave the fewest instructions on the 4 KiB
 * benchmark prompts (-6%; 0 and 32 a little more). */
#define CLUSTER_GAP 16

/* Search rule r in view vw from pos to vw->end.  partial: use
 * PCRE2_PARTIAL_HARD.  Complete matches starting before stop become
 * pending findings (in stream offsets).  *hold gets the position in the
 * view before which this rule can find nothing more (partial start, or
 * end), and the rule's resume point is set there; *next (may be NULL)
 * where the search stopped.
 *
 * With a prefilter the search is split into windows, and each window is
 * one pcre2_match call whose start is bounded by pcre2_set_offset_limit:
 * - a candidate window [back_start(f), f] for literal occurrences f (a
 *   cluster of close ones: [back_start(f1), fk]); NOMATCH proves no
 *   match starts there, and no start between windows is possible (see
 *   the prefilter comment), so the search goes on after fk;
 * - in partial mode, the tail window [end - reach, end] with no limit: a
 *   start there may grow into a match whose literal has not arrived yet,
 *   so it must be tried even without an occurrence; a start before it
 *   cannot reach the end, so it cannot give a partial match.
 * Windows are visited in increasing order, so the first result is the
 * leftmost start, exactly what one call from pos returns: same start,
 * same outcome at that start (lookbehinds and \b see text before the
 * start offset either way).  Returns LG_OK or LG_E_MATCH / LG_E_NOMEM. */
static int rule_pass(lg_sscan *ss, size_t ri, const view *vw, size_t pos, int partial,
                     size_t stop, lg_vault *v, size_t *hold, size_t *next)
{
    lg_scanner *sc = ss->sc;
    const lg_rule *r = &sc->p->rules[ri];
    const char *w = vw->t;
    size_t end = vw->end;
    const rpf *pf = !sc->ref && sc->pf[ri].ok ? &sc->pf[ri] : NULL;
    const cand *cv = sc->cand[ri].v;
    size_t cn = pf ? sc->cand[ri].n : 0, ci = 0, ci0 = 0;
    uint32_t opts = PCRE2_NOTEMPTY;
    if (ss->base > 0)
        opts |= PCRE2_NOTBOL; /* the subject does not start the text */
    if (partial)
        opts |= PCRE2_PARTIAL_HARD;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(sc->md);
    for (;;) {
        if (pos > end) {
            *hold = end;
            break;
        }
        size_t ws = pos;
        PCRE2_SIZE lim = PCRE2_UNSET;
        if (pf) {
            while (ci < cn && cv[ci].f < pos)
                ci++;
            size_t tail = (size_t)-1;
            if (partial) {
                if (pf->reach >= PF_INF || end - pos <= pf->reach)
                    tail = pos;
                else {
                    tail = char_start(w, end, end - pf->reach);
                    if (tail < pos)
                        tail = pos;
                }
            }
            if (ci < cn) {
                /* candidates are in order of window start; those before
                 * pos now start at pos */
                ws = cv[ci].ws > pos ? cv[ci].ws : pos;
                lim = cv[ci].f;
                ci0 = ci; /* after a match, the cluster's later members still count */
                while (ci + 1 < cn && cv[ci + 1].ws <= lim + CLUSTER_GAP) {
                    ci++;
                    if (cv[ci].f > lim)
                        lim = cv[ci].f;
                }
                if (tail != (size_t)-1 && tail <= lim + CLUSTER_GAP) {
                    if (tail < ws)
                        ws = tail;
                    lim = PCRE2_UNSET;
                }
            } else if (tail != (size_t)-1) {
                ws = tail;
            } else {
                *hold = end;
                break;
            }
        }
        if (!pf && !partial && !sc->ref && sc->gate[ri].nb && !rgate_pass(&sc->gate[ri], w, ws, end)) {
            *hold = end; /* no branch's run: no complete match */
            break;
        }
        if (!pf && !partial && !sc->ref && sc->nlead[ri]) {
            size_t q = end;
            if (sc->lp[ri].n)
                q = lead_find(&sc->lp[ri], sc->lead[ri], sc->nlead[ri], w, ws, end);
            else
                for (unsigned k = 0; k < sc->nlead[ri]; k++) {
                    const char *hit = ws < q ? memchr(w + ws, sc->lead[ri][k], q - ws) : NULL;
                    if (hit)
                        q = (size_t)(hit - w);
                }
            if (q == end) { /* no match can start: as the matcher would find */
                *hold = end;
                break;
            }
            ws = q;
        }
        if (!pf && !partial && !sc->ref && sc->sg[ri].nb) {
            /* one start at a time, where one may be (see sgate): as
             * noted by this step's literal pass when it covered ws */
            size_t q;
            if (sc->sgok[ri] && ws >= sc->vpos[ri]) {
                const svec *L = &sc->sgpos[ri];
                size_t k = sc->sgi[ri];
                if (k > 0 && L->v[k - 1] >= ws)
                    k = 0;
                while (k < L->n && L->v[k] < ws)
                    k++;
                sc->sgi[ri] = k;
                q = k < L->n ? L->v[k] : end;
            } else
                q = sgate_find(&sc->sg[ri], w, ws, end);
            if (q >= end) {
                *hold = end;
                break;
            }
            ws = q;
            lim = q;
        }
        pcre2_set_offset_limit(sc->mctx, lim);
        /* A candidate window needs the text up to reach past its last
         * start only, and no further: PCRE2 looks for a pattern's required
         * character from the start offset onwards (far, on long texts) on
         * every call.  The cut leaves a few bytes of slack (reach counts a
         * lookahead or \b as one character) and ends on a character
         * boundary; nothing there can be partial, so partial matching is
         * off for such a call.  A match (or partial match) that touches the
         * cut anyway is redone on the whole text. */
        size_t mend = end;
        uint32_t mopts = opts;
        if (pf && lim != PCRE2_UNSET && pf->reach < PF_INF && end - lim > pf->reach + 16) {
            mend = lim + pf->reach + 8;
            while (mend < end && ((unsigned char)w[mend] & 0xC0) == 0x80)
                mend++;
            mopts &= ~(uint32_t)PCRE2_PARTIAL_HARD;
        }
        const pcre2_code *code = partial ? jit_make(r, r->jit) : rule_code(r, mend - ws);
        int jit = code != r->code;
        int rc = 0, done = 0;
        if (pf && pf->bc && lim != PCRE2_UNSET && !(mopts & PCRE2_PARTIAL_HARD)) {
            uint64_t bm = 0;
            for (size_t k = ci0; k <= ci; k++)
                bm |= (uint64_t)1 << cv[k].br;
            int nbm = __builtin_popcountll(bm);
            if (nbm <= SPLIT_MAX && (size_t)nbm < pf->nb)
                rc = split_match(pf, r->pattern, bm, w, mend, ws, lim, mopts, sc->md, sc->mctx,
                                 &done);
        }
        if (!done)
            rc = rmatch(code, jit, w, mend, ws, mopts, sc->md, sc->mctx);
        if (mend < end && (rc == PCRE2_ERROR_PARTIAL || (rc >= 0 && ov[1] + 4 >= mend))) {
            pcre2_set_offset_limit(sc->mctx, lim);
            rc = rmatch(code, jit, w, end, ws, opts, sc->md, sc->mctx);
        }
        if (rc == PCRE2_ERROR_NOMATCH) {
            if (lim != PCRE2_UNSET) {
                pos = next_char(w, lim, end);
                continue;
            }
            *hold = end;
            break;
        }
        if (rc == PCRE2_ERROR_PARTIAL) {
            *hold = ov[0] > pos ? ov[0] : pos;
            break;
        }
        if (rc < 0)
            return rc == PCRE2_ERROR_NOMEMORY ? LG_E_NOMEM : LG_E_MATCH;
        size_t s = ov[0], e = ov[1];
        if (s < pos)
            s = pos;
        if (s >= stop) {
            *hold = s;
            break;
        }
        if (e <= s) { /* \K games: nothing to report */
            ci = ci0;
            pos = next_char(w, s, end);
            continue;
        }
        ci = ci0;
        if (accept(ss, r, w + s, e - s, v)) {
            int arc = pend_add(ss, r, ss->base + v_ostart(vw, s), ss->base + v_oend(vw, e));
            if (arc)
                return arc;
            pos = e;
        } else {
            /* A failed candidate must not hide a valid one starting
             * inside it. */
            pos = next_char(w, s, end);
        }
    }
    ss->resume[ri] = ss->base + v_ostart(vw, *hold);
    if (next)
        *next = pos;
    return LG_OK;
}

/* The pair index of p[0], p[1]: p[0] | p[1] << 8, which is what a 16-bit
 * load gives on a little-endian machine, in one instruction. */
static unsigned pair_at(const unsigned char *p)
{
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
#else
    return p[0] | (unsigned)p[1] << 8;
#endif
}

/* Whether t[0..l) is x[0..l), ASCII-caselessly when ic (x is stored in
 * lower case). */
static int str_eq(const unsigned char *t, const char *x, size_t l, int ic)
{
    if (!ic)
        return memcmp(t, x, l) == 0;
    for (size_t q = 0; q < l; q++) {
        unsigned c = t[q];
        if (c >= 'A' && c <= 'Z')
            c |= 0x20;
        if (c != (unsigned char)x[q])
            return 0;
    }
    return 1;
}

/* Whether t[from..len) holds the rest of entry pe's string (t is where
 * the string would start). */
static int ent_eq(const lg_scanner *sc, const pent *pe, const unsigned char *t, size_t from)
{
    const lstr *x = &sc->ls[pe->sid];
    return str_eq(t + from, x->s + from, pe->len - from, x->ic);
}

/* The first position from i on (end when none) where the byte pair is
 * in bm.  A function of its own, so that its few variables stay in
 * registers whatever the size of the caller it is inlined into. */
static size_t next_hit(const unsigned char *t, size_t i, size_t end, const unsigned char *bm)
{
    for (; i < end; i++) {
        /* t[end] is readable: the NUL after a buffer's data, or held bytes */
        unsigned idx = pair_at(t + i);
        if (bm[idx >> 3] >> (idx & 7) & 1)
            break;
    }
    return i;
}

/* Note i in the start-gate lists of the rules of view kind `which` whose
 * gate fits there (sgate), each at or after its own search start: what
 * sgate_find would find, made on the literal pass's walk. */
static int sg_note(lg_scanner *sc, unsigned char which, const unsigned char *t, size_t i,
                   size_t end)
{
    unsigned idx = pair_at(t + i);
    for (size_t k = 0; k < sc->nsgr; k++) {
        size_t ru = sc->sgr[k];
        const sgate *g = &sc->sg[ru];
        if (sc->rview[ru] != which || i < sc->vpos[ru] || !bget(g->pairs, idx) ||
            (i + 2 < end && !bget(g->tri, sg_tri(t + i))))
            continue;
        size_t b = 0;
        while (b < g->nb && !sg_fit(g, b, t + i, end - i, 0))
            b++;
        if (b == g->nb)
            continue;
        svec *L = &sc->sgpos[ru];
        if (L->n == L->cap) {
            size_t cap = L->cap ? L->cap * 2 : 16;
            size_t *nv = realloc(L->v, cap * sizeof *nv);
            if (!nv)
                return LG_E_NOMEM;
            L->v = nv;
            L->cap = cap;
        }
        L->v[L->n++] = i;
    }
    return LG_OK;
}

/* Record literal occurrences in view vw (from lo) for the rules of view
 * kind `which`, each at or after its own search start; and, when sg, the
 * starts where start gates fit (sg_note). */
static int cand_pass(lg_scanner *sc, const view *vw, unsigned char which, size_t lo, int sg)
{
    const unsigned char *t = (const unsigned char *)vw->t;
    size_t end = vw->end;
    /* local copies: the stores below (seen, cand) could alias them */
    const unsigned char *bm = sg ? sc->bmx : sc->bm;
    const unsigned char *sgbm = sc->sgbm;
    const uint32_t *pofs = sc->pofs;
    const pent *ents = sc->ents;
    const unsigned char *rview = sc->rview;
    const size_t *vpos = sc->vpos;
    const rpf *pfs = sc->pf;
    const uint32_t *tofs = sc->tofs;
    const ptgt *tg = sc->tg;
    for (size_t i = lo;; i++) {
        i = next_hit(t, i, end, bm);
        if (i >= end)
            break;
        unsigned idx = pair_at(t + i);
        if (sg && bget(sgbm, idx) && i + 1 < end) {
            int rc = sg_note(sc, which, t, i, end);
            if (rc)
                return rc;
        }
        /* the strings filed under the pair (one-byte strings under every
         * pair they start) */
        for (uint32_t e = pofs[idx], ee = pofs[idx + 1]; e < ee; e++) {
            const pent *pe = &ents[e];
            if (i < pe->k)
                continue;
            size_t f = i - pe->k, l = pe->len;
            if (f + 8 <= end) {
                uint64_t w;
                memcpy(&w, t + f, 8);
                if ((w & pe->mask) != pe->val)
                    continue;
                if (l > 8 && (f + l > end || !ent_eq(sc, pe, t + f, 8)))
                    continue;
            } else if (f + l > end || !ent_eq(sc, pe, t + f, 0))
                continue;
            uint32_t sid = pe->sid;
            if (pe->fac) /* seen before a rule's search start too: the gate
                          * is then weaker, never wrong */
                sc->fseen[sid >> 6] |= (uint64_t)1 << (sid & 63);
            for (uint32_t q = tofs[sid], qe = tofs[sid + 1]; q < qe; q++) {
                uint32_t ru = tg[q].rule;
                if (rview[ru] != which || f < vpos[ru])
                    continue;
                const rpf *pf = &pfs[ru];
                size_t br = pf->br[tg[q].str];
                cvec *cv = &sc->cand[ru];
                if (cv->n == cv->cap) {
                    size_t cap = cv->cap ? cv->cap * 2 : 64;
                    cand *nv = realloc(cv->v, cap * sizeof *nv);
                    if (!nv)
                        return LG_E_NOMEM;
                    cv->v = nv;
                    cv->cap = cap;
                }
                /* ws comes later, for the candidates cand_gate keeps */
                cv->v[cv->n++] = (cand){ .ws = f, .f = f, .br = br };
            }
        }
    }
    return LG_OK;
}

/* Which factors of each rule of view kind w occur, from the factor
 * strings the pass saw (only rules with candidates need to know). */
static void factor_seen(lg_scanner *sc, unsigned char w)
{
    /* seen[] is zero for every applying rule (prepare); each string the
     * pass saw (few, on a short text) adds its factor to the rules it
     * stands for.  The pass itself only sets bits: its loop is the
     * scanner's hottest, and any more work there costs more on long
     * texts than this walk over the bitmap saves on short ones. */
    size_t nw = sc->nls / 64 + 1;
    for (size_t x = 0; x < nw; x++)
        for (uint64_t bits = sc->fseen[x]; bits; bits &= bits - 1) {
            size_t id = x * 64 + (size_t)__builtin_ctzll(bits);
            for (uint32_t e = sc->fofs[id], ee = sc->fofs[id + 1]; e < ee; e++) {
                uint32_t ru = sc->fref[e].rule;
                if (sc->rview[ru] == w && sc->cand[ru].n)
                    sc->seen[ru] |= (uint64_t)1 << sc->fref[e].fac;
            }
        }
}

/* The rules applying to (on, role), in rule order, into sc->act; rview
 * is left 0 for every other rule (cand_pass and sg_note look at rview of
 * any rule the tables name). */
static void act_set(lg_scanner *sc, unsigned on, unsigned role)
{
    if (sc->act_on == on && sc->act_role == role && on)
        return;
    const lg_policy *pol = sc->p;
    sc->nact = sc->nactx = 0;
    for (size_t i = 0; i < pol->nrules; i++) {
        sc->rview[i] = 0;
        sc->cand[i].n = 0;
        if (applies(&pol->rules[i], on, role)) {
            sc->act[sc->nact++] = i;
            if (!sc->pf[i].ok)
                sc->actx[sc->nactx++] = i;
        }
    }
    sc->act_on = on;
    sc->act_role = role;
}

/* Drop the candidates of branches missing one of their factors (see
 * branch_factors): no match of such a branch exists in this view. */
static void cand_gate(const rpf *pf, uint64_t seen, cvec *c)
{
    uint64_t alive = 0;
    for (size_t b = 0; b < pf->nb; b++)
        if ((pf->need[b] & seen) == pf->need[b])
            alive |= (uint64_t)1 << b;
    size_t m = 0;
    for (size_t i = 0; i < c->n; i++)
        if (alive >> c->v[i].br & 1)
            c->v[m++] = c->v[i];
    c->n = m;
}

static int cand_less(const cand *a, const cand *b)
{
    return a->ws != b->ws ? a->ws < b->ws : a->f != b->f ? a->f < b->f : a->br < b->br;
}

/* Sort by window start (the list is nearly sorted already) and drop
 * duplicates.  Equal windows of different branches both stay: a window
 * matches only the branches it has candidates of (split_match). */
static void cand_sort(cvec *c)
{
    cand *v = c->v;
    for (size_t i = 1; i < c->n; i++) {
        cand x = v[i];
        size_t j = i;
        while (j > 0 && cand_less(&x, &v[j - 1])) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
    size_t m = 0;
    for (size_t i = 0; i < c->n; i++)
        if (!m || v[m - 1].ws != v[i].ws || v[m - 1].f != v[i].f || v[m - 1].br != v[i].br)
            v[m++] = v[i];
    c->n = m;
}

static int cmp_pos(const void *a, const void *b)
{
    const lg_finding *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    if (x->rule != y->rule)
        return x->rule < y->rule ? -1 : 1;
    return 0;
}

/* Sort findings by cmp_pos, stably: an insertion sort for the few of a
 * step (most are nearly in order already), glibc's merge sort (stable
 * too, so the order is the same) for many. */
static void sort_pos(lg_finding *v, size_t n)
{
    if (n > 32) {
        qsort(v, n, sizeof *v, cmp_pos);
        return;
    }
    for (size_t i = 1; i < n; i++) {
        lg_finding x = v[i];
        size_t j = i;
        while (j > 0 && cmp_pos(&v[j - 1], &x) > 0) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
}

/* Priority for overlap resolution: stronger action, then earlier start,
 * then longer, then position order (a total order, so the outcome does not
 * depend on the sort). */
static int prio_before(const lg_finding *b, size_t i, size_t j)
{
    const lg_finding *x = &b[i], *y = &b[j];
    if (x->rule->action != y->rule->action)
        return x->rule->action > y->rule->action;
    if (x->start != y->start)
        return x->start < y->start;
    if (x->end != y->end)
        return x->end > y->end;
    return i < j;
}

/* Heapsort of index array o[0..n) by prio_before (no qsort: it has no
 * context argument, and the engine keeps no globals). */
static void sift(const lg_finding *b, size_t *o, size_t root, size_t n)
{
    for (;;) {
        size_t c = 2 * root + 1;
        if (c >= n)
            return;
        if (c + 1 < n && prio_before(b, o[c], o[c + 1]))
            c++;
        if (!prio_before(b, o[root], o[c]))
            return;
        size_t t = o[root];
        o[root] = o[c];
        o[c] = t;
        root = c;
    }
}

static void sort_prio(const lg_finding *b, size_t *o, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        sift(b, o, i, n);
    for (size_t k = n; k-- > 1;) {
        size_t t = o[0];
        o[0] = o[k];
        o[k] = t;
        sift(b, o, 0, k);
    }
}

/* Choose which findings of b[0..n) (sorted by position) are applied:
 * greedily in priority order, skipping any that overlap one already
 * chosen.  Findings of one rule never overlap each other, so the overlap
 * scans below stay short. */
static void choose(lg_scanner *sc, const lg_finding *b, size_t n)
{
    size_t *o = sc->ord, *pm = sc->pmax;
    unsigned char *ch = sc->chosen;
    for (size_t i = 0; i < n; i++) {
        o[i] = i;
        ch[i] = 0;
        pm[i] = i && pm[i - 1] > b[i].end ? pm[i - 1] : b[i].end;
    }
    sort_prio(b, o, n);
    for (size_t k = 0; k < n; k++) {
        size_t i = o[k];
        int clash = 0;
        for (size_t j = i; j-- > 0 && pm[j] > b[i].start;)
            if (ch[j] && b[j].end > b[i].start) {
                clash = 1;
                break;
            }
        for (size_t j = i + 1; !clash && j < n && b[j].start < b[i].end; j++)
            if (ch[j])
                clash = 1;
        ch[i] = (unsigned char)!clash;
    }
}

/* lg_buf_append, but a no-op for n == 0 (lg_buf_append writes the NUL
 * through a NULL data pointer when nothing was ever appended). */
static int put(lg_buf *b, const char *p, size_t n)
{
    return n ? lg_buf_append(b, p, n) : LG_OK;
}

/* Append the replacement for chosen finding c (window text m[0..n)). */
static int apply(const lg_rule *r, const char *m, size_t n, lg_vault *v, lg_buf *out)
{
    if (r->restore) {
        if (v && lg_vault_restore(v, m, n, out) == LG_OK)
            return LG_OK;
        return put(out, m, n);
    }
    if (r->action != LG_ACT_REDACT)
        return put(out, m, n);
    if (r->redact == LG_REDACT_PLACEHOLDER && v && r->label) {
        int rc = lg_vault_placeholder(v, r->label, m, n, out);
        if (rc == LG_OK || rc == LG_E_NOMEM)
            return rc;
        /* vault full or label unusable: mask, never the raw value */
    }
    const char *mask = r->mask ? r->mask : "[REDACTED]";
    return put(out, mask, strlen(mask));
}

/* Release window text [ss->ctx, rel): decide the pending findings that
 * start before rel (none of them extends past it), append the transformed
 * text to out and report the findings.  *best gets the strongest reported
 * action. */
static int release(lg_sscan *ss, size_t rel, lg_vault *v, lg_buf *out, lg_findings *f, int *best)
{
    lg_scanner *sc = ss->sc;
    const char *w = ss->win.data;
    size_t u = ss->ctx;
    int enforce = (ss->flags & LG_SCAN_ENFORCE) != 0;

    if (ss->npend > 1)
        sort_pos(ss->pend, ss->npend);
    size_t nb = 0;
    while (nb < ss->npend && ss->pend[nb].start < ss->base + rel)
        nb++;
    const lg_finding *b = ss->pend;

    size_t report_end = nb; /* findings after a block are not reported */
    if (enforce && nb) {
        int rc = scratch_reserve(sc, nb);
        if (rc)
            return rc;
        choose(sc, b, nb);
    }
    if (enforce) {
        size_t cur = u;
        for (size_t i = 0; i < nb; i++) {
            if (!sc->chosen[i])
                continue;
            size_t s = b[i].start - ss->base, e = b[i].end - ss->base;
            int rc = put(out, w + cur, s - cur);
            if (rc)
                return rc;
            if (b[i].rule->action == LG_ACT_BLOCK && !b[i].rule->restore) {
                ss->blocked = 1;
                report_end = i + 1;
                while (report_end < nb && b[report_end].start == b[i].start)
                    report_end++;
                cur = e;
                break;
            }
            rc = apply(b[i].rule, w + s, e - s, v, out);
            if (rc)
                return rc;
            cur = e;
        }
        if (!ss->blocked) {
            int rc = put(out, w + cur, rel - cur);
            if (rc)
                return rc;
        }
    } else {
        int rc = put(out, w + u, rel - u);
        if (rc)
            return rc;
    }

    for (size_t i = 0; i < report_end; i++) {
        int act = b[i].rule->action;
        if (!enforce && act > LG_ACT_LOG)
            act = LG_ACT_LOG;
        if (f) {
            int rc = lg_findings_add(f, b[i].rule, b[i].start, b[i].end, act);
            if (rc)
                return rc;
        }
        if (act > *best)
            *best = act;
    }
    if (ss->blocked) {
        ss->npend = 0;
        return LG_OK;
    }
    if (nb) {
        memmove(ss->pend, ss->pend + nb, (ss->npend - nb) * sizeof *ss->pend);
        ss->npend -= nb;
    }
    return LG_OK;
}

/* Move `at` off any pending finding that straddles it, so that a value is
 * released whole or not at all: back to the finding's start (normal
 * release), or forward past its end (forced release: the bound wins). */
static size_t straddle(const lg_sscan *ss, size_t at, int forward)
{
    int moved;
    do {
        moved = 0;
        for (size_t i = 0; i < ss->npend; i++) {
            size_t s = ss->pend[i].start - ss->base, e = ss->pend[i].end - ss->base;
            if (s < at && e > at) {
                at = forward ? e : s;
                moved = 1;
            }
        }
    } while (moved);
    return at;
}

/* Build this step's views and literal candidates: which view each rule
 * matches (sc->rview), where its search starts there (sc->vpos), and the
 * literal occurrences after that start (sc->cand). */
static int prepare(lg_sscan *ss, size_t u, size_t end, view *vr, view *vn)
{
    lg_scanner *sc = ss->sc;
    const lg_policy *pol = sc->p;
    *vr = (view){ .t = ss->win.data, .end = end, .oend = end, .map = NULL };
    *vn = *vr;
    int want_norm = 0;
    act_set(sc, ss->on, ss->role);
    const size_t *act = sc->act, nact = sc->nact;
    for (size_t k = 0; k < nact; k++) {
        const lg_rule *r = &pol->rules[act[k]];
        if (!r->raw && !r->restore) {
            want_norm = 1;
            break;
        }
    }
    int have_norm = 0;
    if (want_norm && lg_norm_find(ss->win.data, end, 0) < end) {
        if (sc->ncap < end + 1) {
            char *nb = realloc(sc->nbuf, end + 1);
            if (!nb)
                return LG_E_NOMEM;
            sc->nbuf = nb;
            sc->ncap = end + 1;
        }
        size_t nlen;
        int rc = lg_normalize(ss->win.data, end, sc->nbuf, &nlen, &sc->nmap);
        if (rc)
            return rc;
        sc->nbuf[nlen] = '\0';
        *vn = (view){ .t = sc->nbuf, .end = nlen, .oend = end, .map = &sc->nmap };
        have_norm = 1;
    }
    size_t lo[3] = { 0, (size_t)-1, (size_t)-1 };
    /* only applying rules get candidates (cand_pass looks at rview), so
     * only theirs need clearing */
    sc->nhit = 0;
    for (size_t k = 0; k < nact; k++) {
        size_t i = act[k];
        const lg_rule *r = &pol->rules[i];
        sc->cand[i].n = 0;
        sc->seen[i] = 0;
        unsigned char w = (r->raw || r->restore || !have_norm) ? 1 : 2;
        sc->rview[i] = w;
        size_t po = ss->resume[i] > ss->base + u ? ss->resume[i] - ss->base : u;
        sc->vpos[i] = v_from(w == 1 ? vr : vn, po);
        if (sc->pf[i].ok && sc->vpos[i] < lo[w])
            lo[w] = sc->vpos[i];
        sc->sgpos[i].n = 0;
        sc->sgok[i] = 0;
        sc->sgi[i] = 0;
    }
    if (sc->ref)
        return LG_OK;
    for (unsigned char w = 1; w <= 2; w++) {
        if (lo[w] == (size_t)-1)
            continue;
        /* start gates come along when the pass covers their search */
        int sg = 0;
        for (size_t k = 0; k < sc->nsgr; k++) {
            size_t ru = sc->sgr[k];
            if (sc->rview[ru] == w && sc->vpos[ru] >= lo[w])
                sg = sc->sgok[ru] = 1;
        }
        memset(sc->fseen, 0, (sc->nls / 64 + 1) * sizeof *sc->fseen);
        int rc = cand_pass(sc, w == 1 ? vr : vn, w, lo[w], sg);
        if (rc)
            return rc;
        factor_seen(sc, w);
    }
    for (size_t k = 0; k < nact; k++) /* in rule order */
        if (sc->cand[act[k]].n)
            sc->hit[sc->nhit++] = act[k];
    for (size_t h = 0; h < sc->nhit; h++) {
        size_t i = sc->hit[h];
        cvec *cv = &sc->cand[i];
        if (sc->pf[i].nfac)
            cand_gate(&sc->pf[i], sc->seen[i], cv);
        const view *vw = sc->rview[i] == 1 ? vr : vn;
        for (size_t k = 0; k < cv->n; k++)
            cv->v[k].ws = back_start(&sc->pf[i].b[cv->v[k].br], vw->t, vw->end, sc->vpos[i],
                                     cv->v[k].f);
        if (cv->n > 1)
            cand_sort(cv);
    }
    return LG_OK;
}

/* Whether the text near rule i's candidates holds the run its gate needs
 * (rgate): a match starts in a candidate window [ws, f] and consumes at
 * most reach bytes, so its run lies in [ws, f + reach]; only those
 * stretches (merged where they overlap) are looked at, not the whole
 * view. */
static int gate_near(const lg_scanner *sc, size_t i, const view *vw)
{
    const rpf *pf = &sc->pf[i];
    const cvec *cv = &sc->cand[i];
    const rgate *g = &sc->gate[i];
    if (pf->reach >= PF_INF)
        return rgate_pass(g, vw->t, sc->vpos[i], vw->end);
    size_t a = 0, b = 0;
    int open = 0;
    for (size_t k = 0; k < cv->n; k++) { /* in order of ws (cand_sort) */
        size_t lo = cv->v[k].ws, hi = sat_add(sat_add(cv->v[k].f, pf->reach), 4);
        if (hi > vw->end)
            hi = vw->end;
        if (open && lo <= b) {
            if (hi > b)
                b = hi;
            continue;
        }
        if (open && rgate_pass(g, vw->t, a, b))
            return 1;
        a = lo;
        b = hi;
        open = 1;
    }
    return open && rgate_pass(g, vw->t, a, b);
}

/* One step: append p[0..n) and release what is safe. */
static int step(lg_sscan *ss, const char *p, size_t n, int final, lg_vault *v,
                lg_buf *out, lg_findings *f, int *best)
{
    lg_scanner *sc = ss->sc;
    int rc = put(&ss->win, p, n);
    if (rc)
        return rc;
    if (!ss->win.data) /* nothing ever appended */
        return LG_OK;
    size_t len = ss->win.len, u = ss->ctx;
    size_t end = final ? len : len - incomplete_tail(ss->win.data, u, len);
    /* A removable character last in the window waits for the next byte,
     * which decides whether the view drops it (normalize.h). */
    if (end == len && !final)
        end -= lg_norm_pending(ss->win.data + u, len - u);
    int partial = !final;

    view vr, vn;
    rc = prepare(ss, u, end, &vr, &vn);
    if (rc)
        return rc;

    size_t rel = end;
    const size_t *act = sc->act, nact = sc->nact; /* set by prepare */
    const size_t *run = act;
    size_t nrun = nact;
    if (final && !sc->ref) {
        /* The last step skips every prefiltered rule without candidates
         * (below), and needs no hold or resume for it: run only the rules
         * without a prefilter and those with candidates, in rule order. */
        const size_t *hit = sc->hit;
        size_t *rl = sc->runl;
        size_t a = 0, b = 0;
        nrun = 0;
        while (a < sc->nactx || b < sc->nhit)
            rl[nrun++] = b == sc->nhit || (a < sc->nactx && sc->actx[a] < hit[b]) ? sc->actx[a++]
                                                                                   : hit[b++];
        run = rl;
    }
    for (size_t k = 0; k < nrun; k++) {
        size_t i = run[k];
        const view *vw = sc->rview[i] == 1 ? &vr : &vn;
        size_t h;
        if (final && !sc->ref && sc->pf[i].ok &&
            (!sc->cand[i].n || (sc->gate[i].nb && !gate_near(sc, i, vw)))) {
            /* what rule_pass finds without a candidate or a tail window:
             * nothing, so no call (most rules on most texts); nor with
             * candidates but without the run every match needs (the digit
             * rules at a phone number too short for them) */
            sc->hold[i] = v_ostart(vw, vw->end);
            ss->resume[i] = ss->base + sc->hold[i];
            continue;
        }
        rc = rule_pass(ss, i, vw, sc->vpos[i], partial, (size_t)-1, v, &h, NULL);
        if (rc)
            return rc;
        sc->hold[i] = v_ostart(vw, h);
        if (sc->hold[i] < rel)
            rel = sc->hold[i];
    }
    rel = straddle(ss, rel, 0);

    if (!final && len - rel > ss->max_hold) {
        /* Hold-back bound: judge the oldest text with complete matches
         * only and release it. */
        ss->overflows++;
        size_t fl = len - ss->max_hold;
        size_t cs = char_start(ss->win.data, len, fl);
        if (cs < fl)
            fl = cs + (size_t)u8len((const unsigned char *)ss->win.data + cs, len - cs);
        if (fl > end)
            fl = end;
        size_t rel2 = end;
        for (size_t k = 0; k < nact; k++) {
            size_t i = act[k];
            const view *vw = sc->rview[i] == 1 ? &vr : &vn;
            size_t po = ss->resume[i] - ss->base;
            if (po < fl) {
                size_t h, nx, flv = v_from(vw, fl);
                rc = rule_pass(ss, i, vw, v_from(vw, po), 0, flv, v, &h, &nx);
                if (rc)
                    return rc;
                size_t pos = nx > flv ? nx : flv;
                rc = rule_pass(ss, i, vw, pos, 1, (size_t)-1, v, &h, NULL);
                if (rc)
                    return rc;
                sc->hold[i] = v_ostart(vw, h);
            }
            if (sc->hold[i] < rel2)
                rel2 = sc->hold[i];
        }
        fl = straddle(ss, fl, 1);
        rel2 = straddle(ss, rel2, 0);
        rel = rel2 > fl ? rel2 : fl;
    }

    rc = release(ss, rel, v, out, f, best);
    if (rc)
        return rc;
    if (ss->blocked) {
        lg_buf_free(&ss->win);
        ss->ctx = 0;
        return LG_OK;
    }

    /* Keep as context what lookbehinds and \b may look at: characters the
     * normalised view removes do not count, so the view's context is as
     * long as in a whole-text scan. */
    size_t cut = rel;
    for (size_t k = 0; k < sc->ctx_chars && cut > 0; k++) {
        cut = char_start(ss->win.data, len, cut - 1);
        int repl;
        if (lg_norm_char((const unsigned char *)ss->win.data + cut, len - cut, &repl) && repl < 0)
            k--; /* unsigned wrap, undone by k++ */
    }
    if (sc->ctx_bytes && rel - cut < sc->ctx_bytes)
        cut = rel > sc->ctx_bytes ? char_start(ss->win.data, len, rel - sc->ctx_bytes) : 0;
    lg_buf_consume(&ss->win, cut);
    ss->base += cut;
    ss->ctx = rel - cut;
    /* other rules' resume is never read, nor any after the last step */
    for (size_t k = 0; k < nact && !final; k++)
        if (ss->resume[act[k]] < ss->base + ss->ctx)
            ss->resume[act[k]] = ss->base + ss->ctx;
    return LG_OK;
}

int lg_sscan_feed(lg_sscan *ss, const char *p, size_t n, int final,
                  lg_vault *v, lg_buf *out, lg_findings *f)
{
    if (!ss || !ss->sc || !out || (!p && n))
        return LG_E_INVAL;
    if (ss->err)
        return ss->err;
    if (ss->blocked)
        return LG_ACT_ALLOW;
    if (ss->done)
        return LG_E_STATE;
    int best = LG_ACT_ALLOW;
    /* A large delta goes in slices of max_hold so the window stays within
     * context + 2 * max_hold. */
    do {
        size_t take = n < ss->max_hold ? n : ss->max_hold;
        int last = take == n;
        int rc = step(ss, p, take, final && last, v, out, f, &best);
        if (rc) {
            ss->err = rc;
            return rc;
        }
        p += take;
        n -= take;
    } while (n > 0 && !ss->blocked);
    if (final)
        ss->done = 1;
    return best;
}

#define WWIN_KEEP (64u << 10) /* a larger window is freed after the scan */

static int scan_whole(lg_scanner *s, unsigned on, unsigned role, unsigned flags,
                      const char *text, size_t n, lg_vault *v, lg_buf *out, lg_findings *f)
{
    lg_sscan ss;
    /* Whole text: hold it all, so the result is the streaming result
     * without the hold-back bound. */
    int rc;
    if (!n) { /* an empty window stays unallocated (step) */
        rc = lg_sscan_init(&ss, s, on, role, flags, n);
        if (rc == LG_OK)
            rc = lg_sscan_feed(&ss, text, n, 1, v, out, f);
        lg_sscan_free(&ss);
        return rc;
    }
    /* Short texts (a chat turn) cost little to scan, so the allocations
     * of a stream's state would show: the scanner lends its own. */
    rc = sscan_setup(&ss, s, on, role, flags, n);
    if (rc) {
        lg_sscan_free(&ss);
        return rc;
    }
    memset(s->wres, 0, (s->p->nrules ? s->p->nrules : 1) * sizeof *s->wres);
    ss.resume = s->wres;
    ss.win = s->wwin;
    lg_buf_reset(&ss.win);
    rc = lg_sscan_feed(&ss, text, n, 1, v, out, f);
    s->wwin = ss.win; /* freed by step if blocked: then empty, still fine */
    if (s->wwin.cap > WWIN_KEEP)
        lg_buf_free(&s->wwin);
    lg_buf_init(&ss.win, 0);
    ss.resume = NULL;
    lg_sscan_free(&ss);
    return rc;
}

static int cmp_pos(const void *a, const void *b);

/* Decode and rescan (scan.h).  State shared by the nesting levels. */
typedef struct dscan {
    lg_scanner *s;
    unsigned role, flags;
    size_t runs;      /* runs decoded so far, at most LG_DECODE_RUNS */
    lg_findings *f;
    int best;
    lg_buf scratch;   /* the rescan's output, discarded */
    lg_findings inner;
} dscan;

#define DECODE_DEPTH 2

/* Runs in text[0..n); findings are reported on [ostart, oend) when the
 * text is itself decoded (depth > 0), else on the run's own span. */
static int decode_level(dscan *D, const char *text, size_t n, int depth, size_t ostart,
                        size_t oend)
{
    char *buf = NULL; /* allocated at the first run: most texts have none */
    lg_decode_iter it = { 0 };
    lg_decoded d;
    int rc = LG_OK, got;
    while (rc == LG_OK && D->runs < LG_DECODE_RUNS &&
           (got = lg_decode_next(text, n, &it, &d, buf, buf ? LG_DECODE_OUT : 0)) == 1) {
        if (!buf) {
            /* found with spans only: decode this run again, into a buffer */
            if (!(buf = malloc(LG_DECODE_OUT)))
                return LG_E_NOMEM;
            lg_decode_iter one = { .pos = d.start };
            lg_decoded d2;
            if (lg_decode_next(text, d.end, &one, &d2, buf, LG_DECODE_OUT) != 1 ||
                d2.start != d.start || d2.end != d.end) {
                free(buf); /* cannot happen: the same run, found again */
                return LG_E_STATE;
            }
            d = d2;
        }
        D->runs++;
        size_t a = depth ? ostart : d.start, b = depth ? oend : d.end;
        lg_buf_reset(&D->scratch);
        lg_findings_reset(&D->inner);
        /* report only: no vault (no placeholders issued), no rewriting */
        rc = scan_whole(D->s, LG_ON_PROMPT, D->role, 0, buf, d.outlen, NULL, &D->scratch,
                        &D->inner);
        if (rc < 0)
            break;
        rc = LG_OK;
        for (size_t i = 0; i < D->inner.n && rc == LG_OK; i++) {
            const lg_rule *r = D->inner.v[i].rule;
            int act = r->action == LG_ACT_BLOCK && (D->flags & LG_SCAN_ENFORCE) ? LG_ACT_BLOCK
                                                                                : LG_ACT_LOG;
            rc = lg_findings_add(D->f, r, a, b, act);
            if (act > D->best)
                D->best = act;
        }
        if (rc == LG_OK && depth + 1 < DECODE_DEPTH) {
            /* the decoded text may hold another encoding; buf is this
             * level's, the next level has its own */
            rc = decode_level(D, buf, d.outlen, depth + 1, a, b);
        }
    }
    if (rc == LG_OK && got < 0)
        rc = got;
    free(buf);
    return rc;
}

int lg_scan_text(lg_scanner *s, unsigned on, unsigned role, unsigned flags,
                 const char *text, size_t n, lg_vault *v, lg_buf *out,
                 lg_findings *f)
{
    size_t first = f ? f->n : 0;
    int rc = scan_whole(s, on, role, flags, text, n, v, out, f);
    /* no run is shorter than 16 bytes (decode.h) */
    if (rc < 0 || rc == LG_ACT_BLOCK || !(on & LG_ON_PROMPT) || !s->p->decode || n < 16)
        return rc;
    lg_findings none;
    lg_findings_init(&none, 0);
    dscan D = { .s = s, .role = role, .flags = flags, .f = f ? f : &none, .best = rc };
    lg_buf_init(&D.scratch, LG_DECODE_OUT * 4);
    lg_findings_init(&D.inner, 256);
    int drc = decode_level(&D, text, n, 0, 0, 0);
    lg_buf_free(&D.scratch);
    lg_findings_free(&D.inner);
    lg_findings_free(&none);
    if (drc < 0)
        return drc;
    /* findings stay in order of position, as a scan reports them */
    if (f && f->n > first + 1)
        qsort(f->v + first, f->n - first, sizeof *f->v, cmp_pos);
    return D.best > rc ? D.best : rc;
}
