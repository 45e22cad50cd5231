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
 *   policy's fail mode. */
#include "scan.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "validate.h"

/* ==== Rule compilation ==== */

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
    /* Forbid \C: it matches one code unit and could cut a character. */
    int ecode = 0;
    PCRE2_SIZE eoff = 0;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)r->pattern, PCRE2_ZERO_TERMINATED,
                                     PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF |
                                         PCRE2_NEVER_BACKSLASH_C,
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
    /* JIT failure (no JIT on this platform, or out of executable memory) is
     * not an error: pcre2_match falls back to the interpreter. */
    (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE | PCRE2_JIT_PARTIAL_HARD);
    r->code = code;
    return LG_OK;
}

void lg_rule_free_code(lg_rule *r)
{
    if (!r || !r->code)
        return;
    pcre2_code_free((pcre2_code *)r->code);
    r->code = NULL;
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

/* ==== Scanner ==== */

/* Work bounds for one pcre2_match call.  A catastrophic pattern stops
 * with an error after about this much work instead of hanging the host
 * program; the error is reported (LG_E_MATCH), and the caller's fail mode
 * decides.  Real rules stay orders of magnitude below. */
#define MATCH_LIMIT 1000000u
#define DEPTH_LIMIT 100000u
#define HEAP_LIMIT_KIB 20480u

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
};

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
    return s;
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

int lg_sscan_init(lg_sscan *ss, lg_scanner *sc, unsigned on, unsigned role,
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

/* Search rule r from window position pos to end.  partial: use
 * PCRE2_PARTIAL_HARD.  Complete matches starting before stop become
 * pending findings.  *hold gets the position before which this rule can
 * find nothing more (partial start, or end), and the rule's resume point
 * is set there; *next (may be NULL) where the search stopped.  Returns LG_OK or LG_E_MATCH / LG_E_NOMEM. */
static int rule_pass(lg_sscan *ss, size_t ri, size_t pos, size_t end, int partial,
                     size_t stop, lg_vault *v, size_t *hold, size_t *next)
{
    lg_scanner *sc = ss->sc;
    const lg_rule *r = &sc->p->rules[ri];
    const char *w = ss->win.data;
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
        int rc = pcre2_match(r->code, (PCRE2_SPTR)w, end, pos, opts, sc->md, sc->mctx);
        if (rc == PCRE2_ERROR_NOMATCH) {
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
            pos = next_char(w, s, end);
            continue;
        }
        if (accept(ss, r, w + s, e - s, v)) {
            int arc = pend_add(ss, r, ss->base + s, ss->base + e);
            if (arc)
                return arc;
            pos = e;
        } else {
            /* A failed candidate must not hide a valid one starting
             * inside it. */
            pos = next_char(w, s, end);
        }
    }
    ss->resume[ri] = ss->base + *hold;
    if (next)
        *next = pos;
    return LG_OK;
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
        qsort(ss->pend, ss->npend, sizeof *ss->pend, cmp_pos);
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

/* Move rel back to the start of any pending finding that straddles it
 * (a value is released whole or not at all). */
static size_t unstraddle(const lg_sscan *ss, size_t rel)
{
    int moved;
    do {
        moved = 0;
        for (size_t i = 0; i < ss->npend; i++) {
            size_t s = ss->pend[i].start - ss->base, e = ss->pend[i].end - ss->base;
            if (s < rel && e > rel) {
                rel = s;
                moved = 1;
            }
        }
    } while (moved);
    return rel;
}

/* Move f forward past any pending finding that straddles it (forced
 * release: the bound wins, and a value is still released whole). */
static size_t restraddle(const lg_sscan *ss, size_t f)
{
    int moved;
    do {
        moved = 0;
        for (size_t i = 0; i < ss->npend; i++) {
            size_t s = ss->pend[i].start - ss->base, e = ss->pend[i].end - ss->base;
            if (s < f && e > f) {
                f = e;
                moved = 1;
            }
        }
    } while (moved);
    return f;
}

/* One step: append p[0..n) and release what is safe. */
static int step(lg_sscan *ss, const char *p, size_t n, int final, lg_vault *v,
                lg_buf *out, lg_findings *f, int *best)
{
    lg_scanner *sc = ss->sc;
    const lg_policy *pol = sc->p;
    int rc = put(&ss->win, p, n);
    if (rc)
        return rc;
    if (!ss->win.data) /* nothing ever appended */
        return LG_OK;
    size_t len = ss->win.len, u = ss->ctx;
    size_t end = final ? len : len - incomplete_tail(ss->win.data, u, len);
    int partial = !final;

    size_t rel = end;
    for (size_t i = 0; i < pol->nrules; i++) {
        if (!applies(&pol->rules[i], ss->on, ss->role))
            continue;
        size_t pos = ss->resume[i] > ss->base + u ? ss->resume[i] - ss->base : u;
        rc = rule_pass(ss, i, pos, end, partial, (size_t)-1, v, &sc->hold[i], NULL);
        if (rc)
            return rc;
        if (sc->hold[i] < rel)
            rel = sc->hold[i];
    }
    rel = unstraddle(ss, rel);

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
        for (size_t i = 0; i < pol->nrules; i++) {
            if (!applies(&pol->rules[i], ss->on, ss->role))
                continue;
            size_t pos = ss->resume[i] - ss->base;
            if (pos < fl) {
                size_t h, nx;
                rc = rule_pass(ss, i, pos, end, 0, fl, v, &h, &nx);
                if (rc)
                    return rc;
                pos = nx > fl ? nx : fl;
                rc = rule_pass(ss, i, pos, end, 1, (size_t)-1, v, &sc->hold[i], NULL);
                if (rc)
                    return rc;
            }
            if (sc->hold[i] < rel2)
                rel2 = sc->hold[i];
        }
        fl = restraddle(ss, fl);
        rel2 = unstraddle(ss, rel2);
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

    /* Keep as context what lookbehinds and \b may look at. */
    size_t cut = rel;
    for (size_t k = 0; k < sc->ctx_chars && cut > 0; k++)
        cut = char_start(ss->win.data, len, cut - 1);
    if (sc->ctx_bytes && rel - cut < sc->ctx_bytes)
        cut = rel > sc->ctx_bytes ? char_start(ss->win.data, len, rel - sc->ctx_bytes) : 0;
    lg_buf_consume(&ss->win, cut);
    ss->base += cut;
    ss->ctx = rel - cut;
    for (size_t i = 0; i < pol->nrules; i++)
        if (ss->resume[i] < ss->base + ss->ctx)
            ss->resume[i] = ss->base + ss->ctx;
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

int lg_scan_text(lg_scanner *s, unsigned on, unsigned role, unsigned flags,
                 const char *text, size_t n, lg_vault *v, lg_buf *out,
                 lg_findings *f)
{
    lg_sscan ss;
    /* Whole text: hold it all, so the result is the streaming result
     * without the hold-back bound. */
    int rc = lg_sscan_init(&ss, s, on, role, flags, n);
    if (rc == LG_OK)
        rc = lg_sscan_feed(&ss, text, n, 1, v, out, f);
    lg_sscan_free(&ss);
    return rc;
}
