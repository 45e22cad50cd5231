/* Fuzz target for core/scope: the input is a system prompt and a text,
 * separated by the first NUL byte (without one, the input is both).  The
 * system prompt is read, whole and again in two pieces at a data-derived
 * point, and the text matched; invariants, not just survival:
 * - the tables stay within their documented limits, and every phrase,
 *   person term and value is well formed (lengths, restriction indexes,
 *   Han terms made of whole UTF-8 characters);
 * - at most LG_SCOPE_SYS_MAX bytes are read, over all pieces;
 * - a hit lies inside the text, is non-empty, and names a restriction;
 * - matching is deterministic: the same text matches the same way twice,
 *   and a fresh scope read from the same system prompt agrees;
 * - a protected secret value, written out alone, is found;
 * - the fast paths agree with the plain ones (lg_scope_set_reference):
 *   the same restrictions read, in the same order, and the same hit. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fuzz_util.h"
#include "scope.h"

static lg_scope a, b, r; /* large: static rather than on the stack */

static void check_word(const lg_scope_word *w)
{
    CHECK(w->len >= 1 && w->len <= LG_SCOPE_WORD);
    if (w->han) {
        uint32_t cp;
        for (size_t i = 0; i < w->len;) {
            size_t l = fz_utf8_char((const uint8_t *)w->s, w->len, i, &cp);
            CHECK(l > 0);
            i += l;
        }
    }
}

static void check_tables(const lg_scope *sc)
{
    CHECK(sc->nph <= LG_SCOPE_MAX_PHRASES);
    CHECK(sc->npeople <= LG_SCOPE_MAX_PEOPLE);
    CHECK(sc->nval <= LG_SCOPE_MAX_VALUES);
    CHECK(sc->nrestr <= LG_SCOPE_MAX_RESTR);
    CHECK(sc->sys_read <= LG_SCOPE_SYS_MAX);
    for (size_t i = 0; i < sc->nph; i++) {
        const lg_scope_phrase *p = &sc->ph[i];
        CHECK(p->nw >= 1 && p->nw <= LG_SCOPE_MAX_WORDS);
        CHECK(p->restr < sc->nrestr);
        for (size_t k = 0; k < p->nw; k++)
            check_word(&p->w[k]);
    }
    for (size_t i = 0; i < sc->npeople; i++) {
        const lg_scope_person *p = &sc->people[i];
        CHECK(p->nref <= LG_SCOPE_PERSON_TERMS && p->nattr <= LG_SCOPE_PERSON_TERMS);
        CHECK(p->nattr >= 1 && p->restr < sc->nrestr);
        for (size_t k = 0; k < p->nref; k++)
            check_word(&p->ref[k]);
        for (size_t k = 0; k < p->nattr; k++)
            check_word(&p->attr[k]);
    }
    for (size_t i = 0; i < sc->nval; i++)
        CHECK(sc->val[i].len >= 1 && sc->val[i].len <= LG_SCOPE_VALUE && sc->val[i].restr < sc->nrestr);
    for (size_t i = 0; i < sc->nrestr; i++)
        CHECK(memchr(sc->what[i], '\0', sizeof sc->what[i]) != NULL);
}

static int same_word(const lg_scope_word *x, const lg_scope_word *y)
{
    return x->len == y->len && x->han == y->han && memcmp(x->s, y->s, x->len) == 0;
}

/* The restrictions x and y read are the same, entry for entry. */
static void check_same(const lg_scope *x, const lg_scope *y)
{
    CHECK(x->nph == y->nph && x->npeople == y->npeople && x->nval == y->nval);
    CHECK(x->nrestr == y->nrestr && x->dropped == y->dropped && x->nuw == y->nuw);
    for (size_t i = 0; i < x->nph; i++) {
        const lg_scope_phrase *p = &x->ph[i], *q = &y->ph[i];
        CHECK(p->nw == q->nw && p->secret == q->secret && p->restr == q->restr);
        for (size_t k = 0; k < p->nw; k++)
            CHECK(same_word(&p->w[k], &q->w[k]) && p->id[k] == q->id[k]);
    }
    for (size_t i = 0; i < x->npeople; i++) {
        const lg_scope_person *p = &x->people[i], *q = &y->people[i];
        CHECK(p->nref == q->nref && p->nattr == q->nattr && p->restr == q->restr);
        for (size_t k = 0; k < p->nref; k++)
            CHECK(same_word(&p->ref[k], &q->ref[k]));
        for (size_t k = 0; k < p->nattr; k++)
            CHECK(same_word(&p->attr[k], &q->attr[k]));
    }
    for (size_t i = 0; i < x->nval; i++)
        CHECK(x->val[i].len == y->val[i].len && x->val[i].restr == y->val[i].restr &&
              memcmp(x->val[i].s, y->val[i].s, x->val[i].len) == 0);
    for (size_t i = 0; i < x->nrestr; i++)
        CHECK(strcmp(x->what[i], y->what[i]) == 0);
}

/* The same verdict: both match or neither, on the same span and restriction. */
static void check_same_hit(int m1, const lg_scope_hit *h1, int m2, const lg_scope_hit *h2)
{
    CHECK(m1 == m2);
    if (m1)
        CHECK(h1->start == h2->start && h1->end == h2->end && h1->restr == h2->restr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *sys = (const char *)data, *text = sys;
    size_t sn = size, tn = size;
    const uint8_t *nul = memchr(data, 0, size);
    if (nul) {
        sn = (size_t)(nul - data);
        text = (const char *)nul + 1;
        tn = size - sn - 1;
    }

    lg_scope_reset(&a);
    CHECK(lg_scope_extract(&a, sys, sn) >= 0);
    CHECK(a.sys_read == (sn < LG_SCOPE_SYS_MAX ? sn : LG_SCOPE_SYS_MAX));
    lg_scope_finish(&a);
    check_tables(&a);
    CHECK(lg_scope_extract(&a, sys, sn) == LG_E_STATE);

    lg_scope_hit h1, h2;
    int m1 = lg_scope_match(&a, text, tn, &h1);
    if (m1) {
        CHECK(h1.start < h1.end && h1.end <= tn);
        CHECK(h1.restr >= 0 && (size_t)h1.restr < a.nrestr);
    }
    int m2 = lg_scope_match(&a, text, tn, &h2);
    CHECK(m1 == m2);
    if (m1)
        CHECK(h1.start == h2.start && h1.end == h2.end && h1.restr == h2.restr);

    /* a fresh scope from the same prompt judges the same */
    lg_scope_reset(&b);
    CHECK(lg_scope_extract(&b, sys, sn) >= 0);
    m2 = lg_scope_match(&b, text, tn, &h2);
    CHECK(m1 == m2);
    if (m1)
        CHECK(h1.start == h2.start && h1.end == h2.end);

    /* the plain paths read and match the same; a is reset (not zeroed)
     * first, as lg_conn reuses its scope */
    lg_scope_set_reference(&r, 1);
    lg_scope_reset(&r);
    CHECK(lg_scope_extract(&r, sys, sn) >= 0);
    lg_scope_finish(&r);
    check_same(&a, &r);
    m2 = lg_scope_match(&r, text, tn, &h2);
    check_same_hit(m1, &h1, m2, &h2);
    /* and on the system prompt itself, which has every restricted word */
    m1 = lg_scope_match(&a, sys, sn, &h1);
    m2 = lg_scope_match(&r, sys, sn, &h2);
    check_same_hit(m1, &h1, m2, &h2);

    /* a protected value is found in a text that is just the value */
    for (size_t i = 0; i < a.nval; i++) {
        lg_scope_hit h;
        CHECK(lg_scope_match(&a, a.val[i].s, a.val[i].len, &h));
        CHECK(h.end <= a.val[i].len);
    }

    /* read in two pieces: still within limits and well formed */
    size_t cut = sn ? (size_t)data[0] * sn / 256 : 0;
    lg_scope_reset(&b);
    CHECK(lg_scope_extract(&b, sys, cut) >= 0);
    CHECK(lg_scope_extract(&b, sys + cut, sn - cut) >= 0);
    CHECK(b.sys_read == (sn < LG_SCOPE_SYS_MAX ? sn : LG_SCOPE_SYS_MAX));
    lg_scope_finish(&b);
    check_tables(&b);
    m1 = lg_scope_match(&b, text, tn, &h1);
    if (m1)
        CHECK(h1.start < h1.end && h1.end <= tn);
    lg_scope_reset(&r);
    CHECK(lg_scope_extract(&r, sys, cut) >= 0);
    CHECK(lg_scope_extract(&r, sys + cut, sn - cut) >= 0);
    lg_scope_finish(&r);
    check_same(&b, &r);
    m2 = lg_scope_match(&r, text, tn, &h2);
    check_same_hit(m1, &h1, m2, &h2);
    return 0;
}
