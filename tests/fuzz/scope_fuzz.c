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
 * - a protected secret value, written out alone, is found. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fuzz_util.h"
#include "scope.h"

static lg_scope a, b; /* large: static rather than on the stack */

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
    if (lg_scope_match(&b, text, tn, &h2))
        CHECK(h2.start < h2.end && h2.end <= tn);
    return 0;
}
