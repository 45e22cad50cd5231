/* Tests for the normalised view (core/normalize.c): what is folded, what is
 * removed, what must stay byte for byte (everything else, invalid UTF-8
 * included), the map back to original offsets, locality (normalising the
 * pieces of a text cut at character boundaries gives the normalisation of
 * the whole), and the scanner using it: a rule written for "ignore" matches
 * full-width and zero-width-split spellings, and redaction replaces the
 * original bytes. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "normalize.h"
#include "policy.h"
#include "scan.h"

static char *norm(const char *in, size_t n, size_t *outlen, lg_nmap *m)
{
    char *out = malloc(n + 1);
    cr_assert_not_null(out);
    cr_assert_eq(lg_normalize(in, n, out, outlen, m), LG_OK);
    out[*outlen] = '\0';
    return out;
}

struct vec {
    const char *in;
    const char *out;
};

static const struct vec vectors[] = {
    { "plain ascii", "plain ascii" },
    { "\xef\xbd\x89\xef\xbd\x87\xef\xbd\x8e\xef\xbd\x8f\xef\xbd\x92\xef\xbd\x85", "ignore" }, /* ｉｇｎｏｒｅ */
    { "\xef\xbc\xa1\xef\xbc\x91\xef\xbc\x81", "A1!" },                                    /* Ａ１！ */
    { "a\xe3\x80\x80" "b", "a b" },                                                       /* ideographic space */
    { "ig\xe2\x80\x8bno\xe2\x80\x8cre\xe2\x80\x8d", "ignore" },                           /* ZWSP ZWNJ ZWJ */
    { "x\xe2\x81\xa0y\xef\xbb\xbfz\xc2\xad!", "xyz!" },                                   /* WJ, BOM, soft hyphen */
    { "\xe2\x80\xae" "evil\xe2\x80\xac\xe2\x81\xa6ok\xe2\x81\xa9", "evilok" },               /* bidi controls */
    { "hi\xf3\xa0\x81\x81\xf3\xa0\x81\xbf!", "hi!" },                                     /* tag characters */
    { "\xe4\xbd\xa0\xe5\xa5\xbd\xef\xbc\x8c\xe4\xb8\x96\xe7\x95\x8c", "\xe4\xbd\xa0\xe5\xa5\xbd,\xe4\xb8\x96\xe7\x95\x8c" }, /* 你好，世界 */
    { "caf\xc3\xa9 \xf0\x9f\x98\x80", "caf\xc3\xa9 \xf0\x9f\x98\x80" },                   /* untouched */
    { "bad \xff\xfe utf8 \xe2\x80", "bad \xff\xfe utf8 \xe2\x80" },                      /* invalid stays */
    { "\xef\xbd\x9f", "\xef\xbd\x9f" },                                                   /* U+FF5F is past the fold range */
    { "", "" },
};

Test(normalize, vectors)
{
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        size_t n;
        lg_nmap m;
        lg_nmap_init(&m);
        char *out = norm(vectors[i].in, strlen(vectors[i].in), &n, &m);
        cr_assert_eq(n, strlen(vectors[i].out), "vector %zu: length %zu", i, n);
        cr_assert(memcmp(out, vectors[i].out, n) == 0, "vector %zu: got \"%s\"", i, out);
        cr_assert_eq(m.nlen, n, "vector %zu", i);
        cr_assert_eq(m.olen_all, strlen(vectors[i].in), "vector %zu", i);
        free(out);
        lg_nmap_free(&m);
    }
}

/* Every normalised byte maps back to the original character it came from,
 * and the mapping is monotonic. */
Test(normalize, map_points_at_original_bytes)
{
    const char in[] = "a\xef\xbd\x82\xe2\x80\x8b" "c\xe3\x80\x80\xef\xbc\xa4"; /* a ｂ ZWSP c IDSP Ｄ */
    size_t n;
    lg_nmap m;
    lg_nmap_init(&m);
    char *out = norm(in, strlen(in), &n, &m);
    cr_assert_str_eq(out, "abc D");
    /* normalised byte -> [start, end) of its original character */
    const size_t want_start[] = { 0, 1, 7, 8, 11 };
    const size_t want_end[] = { 1, 4, 8, 11, 14 };
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(lg_nmap_start(&m, i), want_start[i], "start of %zu", i);
        cr_assert_eq(lg_nmap_end(&m, i + 1), want_end[i], "end of %zu", i);
    }
    cr_assert_eq(lg_nmap_start(&m, n), strlen(in));
    /* The ZWSP (original 4..7) belongs to no segment: the first normalised
     * byte whose source starts at or after it is 'c'. */
    cr_assert_eq(lg_nmap_from_orig(&m, 4), 2);
    cr_assert_eq(lg_nmap_from_orig(&m, 0), 0);
    cr_assert_eq(lg_nmap_from_orig(&m, strlen(in)), n);
    free(out);
    lg_nmap_free(&m);
}

/* Normalisation is local: cutting the input at any character boundary and
 * normalising the pieces gives the same bytes as normalising the whole. */
Test(normalize, local_at_every_character_boundary)
{
    const char in[] = "I\xef\xbd\x87\xe2\x80\x8bnore \xe4\xbd\xa0\xe5\xa5\xbd\xef\xbc\x81 all\xf3\xa0\x81\x81!";
    size_t n = strlen(in), wn;
    char *whole = norm(in, n, &wn, NULL);
    for (size_t cut = 1; cut < n; cut++) {
        if (((unsigned char)in[cut] & 0xC0) == 0x80)
            continue; /* not a character boundary */
        size_t an, bn;
        char *a = norm(in, cut, &an, NULL);
        char *b = norm(in + cut, n - cut, &bn, NULL);
        cr_assert_eq(an + bn, wn, "cut %zu", cut);
        cr_assert(memcmp(a, whole, an) == 0 && memcmp(b, whole + an, bn) == 0, "cut %zu", cut);
        free(a);
        free(b);
    }
    free(whole);
}

Test(normalize, find_and_char)
{
    const char t[] = "abc \xe2\x80\x8b x";
    cr_assert_eq(lg_norm_find(t, strlen(t), 0), 4);
    cr_assert_eq(lg_norm_find("plain", 5, 0), 5, "nothing to normalise");
    int repl = 0;
    cr_assert_eq(lg_norm_char((const unsigned char *)"\xef\xbd\x81", 3, &repl), 3);
    cr_assert_eq(repl, 'a');
    cr_assert_eq(lg_norm_char((const unsigned char *)"\xe2\x80\x8b", 3, &repl), 3);
    cr_assert_eq(repl, -1, "zero-width space is removed");
    cr_assert_eq(lg_norm_char((const unsigned char *)"a", 1, &repl), 0);
    cr_assert_eq(lg_norm_char((const unsigned char *)"\xef\xbd", 2, &repl), 0,
                 "a cut character is not normalised");
}

/* The scanner matches rules on the view and redacts the original bytes;
 * raw rules see the original. */
Test(normalize, scanner_matches_view_and_redacts_original)
{
    static const char json[] =
        "{\"version\":1,\"packs\":[],\"rules\":["
        "{\"id\":\"t.ignore\",\"regex\":\"(?i)ignore previous\",\"action\":\"redact\","
        "\"redact\":\"mask\",\"mask\":\"[X]\"},"
        "{\"id\":\"t.zwsp\",\"regex\":\"\\\\x{200b}\",\"raw\":true,\"action\":\"log\"}]}";
    lg_policy *p;
    lg_diag d;
    cr_assert_eq(lg_policy_load("t", json, strlen(json), &p, &d), LG_OK, "%s", d.msg);
    lg_scanner *sc = lg_scanner_new(p);
    const char in[] = "ok \xef\xbc\xa9gn\xe2\x80\x8bore previous! end"; /* Ｉgn<ZWSP>ore previous */
    lg_buf out;
    lg_findings f;
    lg_buf_init(&out, 1 << 16);
    lg_findings_init(&f, 16);
    int a = lg_scan_text(sc, LG_ON_PROMPT, LG_ROLE_USER, LG_SCAN_ENFORCE, in, strlen(in), NULL, &out, &f);
    cr_assert_eq(a, LG_ACT_REDACT);
    cr_assert_str_eq(out.data, "ok [X]! end", "the original bytes are replaced, invisible ones included");
    int saw_ignore = 0, saw_zwsp = 0;
    for (size_t i = 0; i < f.n; i++) {
        if (!strcmp(f.v[i].rule->id, "t.ignore")) {
            saw_ignore = 1;
            cr_assert_eq(f.v[i].start, 3, "finding starts at the full-width I");
            cr_assert_eq(f.v[i].end, strlen(in) - 5, "and ends after 'previous'");
        }
        saw_zwsp |= !strcmp(f.v[i].rule->id, "t.zwsp");
    }
    cr_assert(saw_ignore && saw_zwsp, "the raw rule sees the zero-width space");
    lg_findings_free(&f);
    lg_buf_free(&out);
    lg_scanner_free(sc);
    lg_policy_free(p);
}

/* ==== Invalid bytes never merge across a removal ==== */

/* Removing a character joins its two sides; where a continuation byte
 * follows it, that could complete a stray lead before it into a valid
 * character (E4 U+200C BD A0 into U+4F60), so there the character stays.
 * One vector per shape the scan fuzzer found and the ones around it. */
static const struct vec invalid_vectors[] = {
    /* stray lead, removed character, the lead's continuation bytes */
    { "\xe4\xe2\x80\x8c\xbd\xa0", "\xe4\xe2\x80\x8c\xbd\xa0" },
    /* lead and one continuation byte before, the last one after */
    { "\xe5\xa5\xe2\x80\x8b\xbd", "\xe5\xa5\xe2\x80\x8b\xbd" },
    { "\xe3\x80\xe2\x80\x8b\x82", "\xe3\x80\xe2\x80\x8b\x82" }, /* would make U+3002 */
    { "\xf0\x9f\xe2\x80\x8b\x98\x80", "\xf0\x9f\xe2\x80\x8b\x98\x80" },
    /* every kind of removed character */
    { "\xe4\xe2\x80\xaa\xbd\xa0", "\xe4\xe2\x80\xaa\xbd\xa0" },         /* LRE */
    { "\xe6\xe2\x81\xa7\x8c\x87", "\xe6\xe2\x81\xa7\x8c\x87" },         /* RLI */
    { "\xe4\xe2\x81\xa0\xbd\xa0", "\xe4\xe2\x81\xa0\xbd\xa0" },         /* WJ */
    { "\xe4\xef\xbb\xbf\xbd\xa0", "\xe4\xef\xbb\xbf\xbd\xa0" },         /* BOM */
    { "\xc3\xc2\xad\xa9", "\xc3\xc2\xad\xa9" },                         /* soft hyphen */
    { "\xe4\xf3\xa0\x80\x81\xbd\xa0", "\xe4\xf3\xa0\x80\x81\xbd\xa0" }, /* tag */
    /* the decision looks only after the character: a continuation byte
     * there keeps it even after a complete character */
    { "a\xe2\x80\x8d\xbd\xa0", "a\xe2\x80\x8d\xbd\xa0" },
    /* whatever else follows, the removal joins nothing */
    { "\xe4\xe2\x80\x8c" "A", "\xe4" "A" },
    { "\xe4\xe2\x80\x8c", "\xe4" },
    { "\xe4\xe2\x80\x8c\xe4\xbd\xa0", "\xe4\xe4\xbd\xa0" },
    /* several removals in a row: only the last is followed by the
     * continuation byte */
    { "\xe4\xe2\x80\x8b\xe2\x80\x8c\xbd\xa0", "\xe4\xe2\x80\x8c\xbd\xa0" },
    { "\xe4\xe2\x80\x8b\xef\xbb\xbf\xe2\x81\xa0z", "\xe4z" },
    { "\xe5\xe2\x80\x8b\xe2\x80\x8b\xe2\x80\x8b\xa5\xbd", "\xe5\xe2\x80\x8b\xa5\xbd" },
    /* a fold gives ASCII, which joins nothing: it still happens */
    { "\xe4\xef\xbc\xa1\xbd\xa0", "\xe4" "A\xbd\xa0" },
};
#define NINVALID (sizeof invalid_vectors / sizeof invalid_vectors[0])

/* A strict decoder (the one scan.c's u8len implements): each unit is a
 * valid code point, or -1 - b for an invalid byte b, taken alone. */
static size_t decode(const unsigned char *s, size_t n, long *u)
{
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t need = c < 0x80 ? 1 : c < 0xC2 ? 0 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF5 ? 4 : 0;
        unsigned char lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
        unsigned char hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
        long cp = need == 1 ? c : need == 2 ? c & 0x1F : need == 3 ? c & 0x0F : c & 0x07;
        for (size_t j = 1; need && j < need; j++) {
            unsigned char b = i + j < n ? s[i + j] : 0;
            if (i + j >= n || b < (j == 1 ? lo : 0x80) || b > (j == 1 ? hi : 0xBF))
                need = 0;
            else
                cp = cp << 6 | (b & 0x3F);
        }
        u[k++] = need ? cp : -1 - (long)c;
        i += need ? need : 1;
    }
    return k;
}

static int removable(long cp)
{
    return (cp >= 0x200B && cp <= 0x200D) || cp == 0x2060 || cp == 0xFEFF || cp == 0xAD ||
           (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069) ||
           (cp >= 0xE0000 && cp <= 0xE007F);
}

/* The rule in normalize.h, stated on decoded units: removable code points
 * go unless a stray continuation byte follows, folds fold. */
static size_t model(const long *u, size_t n, long *v)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        long nx = i + 1 < n ? u[i + 1] : 0;
        if (removable(u[i]) && !(nx <= -1 - 0x80 && nx >= -1 - 0xBF))
            continue;
        v[k++] = u[i] >= 0xFF01 && u[i] <= 0xFF5E ? u[i] - 0xFF01 + 0x21 : u[i] == 0x3000 ? ' ' : u[i];
    }
    return k;
}

static void assert_commutes(const char *in, size_t n, const char *what)
{
    size_t vn;
    char *view = norm(in, n, &vn, NULL);
    long *u = malloc((n + 1) * sizeof *u), *want = malloc((n + 1) * sizeof *want);
    long *got = malloc((n + 1) * sizeof *got);
    cr_assert(u && want && got);
    size_t nu = decode((const unsigned char *)in, n, u);
    size_t nw = model(u, nu, want);
    size_t ng = decode((const unsigned char *)view, vn, got);
    cr_assert_eq(ng, nw, "%s: %zu units in the view, %zu expected", what, ng, nw);
    for (size_t i = 0; i < nw; i++)
        cr_assert_eq(got[i], want[i], "%s: unit %zu is %ld, expected %ld", what, i, got[i], want[i]);
    free(u);
    free(want);
    free(got);
    free(view);
}

Test(normalize_invalid, vectors)
{
    for (size_t i = 0; i < NINVALID; i++) {
        const struct vec *v = &invalid_vectors[i];
        size_t n;
        lg_nmap m;
        lg_nmap_init(&m);
        char *out = norm(v->in, strlen(v->in), &n, &m);
        cr_assert_eq(n, strlen(v->out), "vector %zu: length %zu", i, n);
        cr_assert(memcmp(out, v->out, n) == 0, "vector %zu", i);
        /* a kept character is copied verbatim: the map still covers
         * every original byte that is in the view */
        for (size_t j = 0; j < n; j++)
            cr_assert_lt(lg_nmap_start(&m, j), strlen(v->in), "vector %zu byte %zu", i, j);
        free(out);
        lg_nmap_free(&m);
        char what[32];
        snprintf(what, sizeof what, "vector %zu", i);
        assert_commutes(v->in, strlen(v->in), what);
    }
}

/* Decoding the view gives exactly the decoded original with the rule
 * applied: no valid character appears that was not in the original, for
 * every stray prefix, run of removable characters and stray suffix. */
Test(normalize_invalid, never_makes_a_character)
{
    static const char *pre[] = { "", "a", "\xe4", "\xe5\xa5", "\xf0", "\xf0\x9f", "\xf0\x9f\x98",
                                 "\xc3", "\xe4\xbd\xa0", "\xbd", "\xe0", "\xed", "\xc2" };
    static const char *mid[] = { "\xe2\x80\x8b", "\xe2\x80\x8c\xe2\x80\x8d", "\xc2\xad",
                                 "\xf3\xa0\x81\x81", "\xef\xbb\xbf\xe2\x81\xa6",
                                 "\xef\xbc\xa1", "\xe2\x80\x8b\xef\xbc\xa1\xe2\x80\xae" };
    static const char *post[] = { "", "b", "\xbd", "\xbd\xa0", "\xa0", "\x98\x80", "\x80\x80\x80",
                                  "\xad", "\xa9" "c", "\xe4\xbd\xa0" };
    char buf[64], what[64];
    for (size_t a = 0; a < sizeof pre / sizeof *pre; a++)
        for (size_t b = 0; b < sizeof mid / sizeof *mid; b++)
            for (size_t c = 0; c < sizeof post / sizeof *post; c++) {
                int len = snprintf(buf, sizeof buf, "%s%s%s", pre[a], mid[b], post[c]);
                snprintf(what, sizeof what, "pre %zu mid %zu post %zu", a, b, c);
                assert_commutes(buf, (size_t)len, what);
            }
}

/* What a stream does: hold a trailing removable character (its fate is
 * the next byte's) and normalise the rest.  Cut at every boundary between
 * the text's decoded units, the two pieces' views then concatenate to the
 * whole's; without the hold, the first piece's view is still a prefix. */
Test(normalize_invalid, local_at_every_split_with_pending_held)
{
    for (size_t i = 0; i < NINVALID; i++) {
        const char *in = invalid_vectors[i].in;
        size_t n = strlen(in), wn;
        char *whole = norm(in, n, &wn, NULL);
        long u[64];
        size_t nu = decode((const unsigned char *)in, n, u), at = 0;
        for (size_t k = 0; k <= nu; k++) {
            size_t cut = at;
            if (k < nu)
                at += u[k] >= 0 ? (u[k] < 0x80 ? 1 : u[k] < 0x800 ? 2 : u[k] < 0x10000 ? 3 : 4) : 1;
            size_t pn, an, bn;
            char *p = norm(in, cut, &pn, NULL);
            cr_assert(pn <= wn && memcmp(p, whole, pn) == 0, "vector %zu cut %zu: not a prefix", i, cut);
            size_t held = lg_norm_pending(in, cut);
            char *a = norm(in, cut - held, &an, NULL);
            char *b = norm(in + cut - held, n - cut + held, &bn, NULL);
            cr_assert_eq(an + bn, wn, "vector %zu cut %zu", i, cut);
            cr_assert(memcmp(a, whole, an) == 0 && memcmp(b, whole + an, bn) == 0,
                      "vector %zu cut %zu", i, cut);
            free(p);
            free(a);
            free(b);
        }
        free(whole);
    }
}

Test(normalize_invalid, char_and_pending)
{
    int repl = 0;
    const unsigned char zwsp_cont[] = "\xe2\x80\x8b\xbd";
    cr_assert_eq(lg_norm_char(zwsp_cont, 4, &repl), 0, "a continuation byte follows: kept");
    cr_assert_eq(lg_norm_char(zwsp_cont, 3, &repl), 3, "nothing follows yet: removed");
    cr_assert_eq(repl, -1);
    cr_assert_eq(lg_norm_char((const unsigned char *)"\xe2\x80\x8b" "a", 4, &repl), 3);
    cr_assert_eq(lg_norm_char((const unsigned char *)"\xef\xbc\xa1\xbd", 4, &repl), 3,
                 "a fold does not look ahead");
    cr_assert_eq(repl, 'A');
    cr_assert_eq(lg_norm_find("\xe4\xe2\x80\x8c\xbd\xa0", 6, 0), 6, "nothing to normalise");

    cr_assert_eq(lg_norm_pending("ab\xe2\x80\x8b", 5), 3);
    cr_assert_eq(lg_norm_pending("\xe4\xc2\xad", 3), 2);
    cr_assert_eq(lg_norm_pending("x\xf3\xa0\x81\x81", 5), 4);
    cr_assert_eq(lg_norm_pending("\xe2\x80\x8b", 3), 3);
    cr_assert_eq(lg_norm_pending("ab", 2), 0);
    cr_assert_eq(lg_norm_pending("", 0), 0);
    cr_assert_eq(lg_norm_pending("a\xe2\x80", 3), 0, "a truncated character is not pending");
    cr_assert_eq(lg_norm_pending("a\xef\xbc\xa1", 4), 0, "a fold does not wait");
    cr_assert_eq(lg_norm_pending("\xe2\x80\x8b" "a", 4), 0);
}

/* ==== The scanner on these shapes, whole and at every split ==== */

/* Texts around each shape: a Han run the join would have lengthened (or
 * made), a rule matching the invisible characters themselves (it sees
 * only those the view keeps, so it catches a stream dropping one the
 * whole text keeps), and the evasion the removal is for. */
static const char *const scan_texts[] = {
    "ab\xe4\xe2\x80\x8c\xbd\xa0\xe5\xa5\xbd!",                  /* stray lead, ZWNJ, continuations */
    "\xe4\xbd\xa0\xe5\xa5\xe2\x80\x8b\xbd\xe4\xb8\x96 x",         /* lead and continuation before */
    "\xe4\xb8\x96\xe3\x80\xe2\x80\x8b\x82\xe8\xba\xab",           /* would make U+3002 */
    "\xe4\xe2\x80\x8b\xe2\x80\x8c\xe2\x80\xae\xbd\xa0\xe5\xa5\xbd", /* several in a row */
    "ig\xe2\x80\x8bnore \xe4\xe2\x80\x8c" "A \xc3\xc2\xad\xa9 \xe4\xf3\xa0\x80\x81\xbd\xa0.",
    "a\xe2\x80\x8d\xbd\xa0" "b\xe2\x81\xa7",                     /* after a valid character */
    "\xe2\x80\x8b\xbd\xe2\x80\x8b",
};
#define NSCAN (sizeof scan_texts / sizeof scan_texts[0])

typedef struct run {
    int act;
    lg_buf out;
    size_t nf;
    struct {
        const lg_rule *rule;
        size_t start, end;
    } f[32];
} run;

static lg_policy *shape_policy(void)
{
    static const char json[] =
        "{\"version\":1,\"packs\":[],\"rules\":["
        "{\"id\":\"t.han\",\"regex\":\"\\\\p{Han}{2,}\",\"action\":\"redact\","
        "\"redact\":\"mask\",\"mask\":\"[U]\"},"
        "{\"id\":\"t.invisible\",\"regex\":\"[\\\\x{ad}\\\\x{200b}-\\\\x{200d}\\\\x{202a}-\\\\x{202e}"
        "\\\\x{2060}\\\\x{2066}-\\\\x{2069}\\\\x{feff}\\\\x{e0000}-\\\\x{e007f}]\",\"action\":\"log\"},"
        "{\"id\":\"t.ignore\",\"regex\":\"(?i)\\\\bignore\\\\b\",\"action\":\"redact\","
        "\"redact\":\"mask\",\"mask\":\"[X]\"}]}";
    lg_policy *p;
    lg_diag d;
    cr_assert_eq(lg_policy_load("t", json, strlen(json), &p, &d), LG_OK, "%s", d.msg);
    return p;
}

/* Scan text fed in pieces ending at cuts[0..ncuts) and then n (ncuts 0
 * and whole set: lg_scan_text). */
static void scan_cuts(lg_scanner *sc, const char *text, size_t n, const size_t *cuts,
                      size_t ncuts, int whole, run *r)
{
    lg_findings f;
    lg_findings_init(&f, 32);
    lg_buf_init(&r->out, 1 << 16);
    if (whole) {
        r->act = lg_scan_text(sc, LG_ON_PROMPT, LG_ROLE_USER, LG_SCAN_ENFORCE, text, n, NULL,
                              &r->out, &f);
    } else {
        lg_sscan ss;
        cr_assert_eq(lg_sscan_init(&ss, sc, LG_ON_PROMPT, LG_ROLE_USER, LG_SCAN_ENFORCE, 0), LG_OK);
        r->act = LG_ACT_ALLOW;
        for (size_t i = 0, prev = 0; i <= ncuts; i++) {
            size_t c = i < ncuts ? cuts[i] : n;
            int rc = lg_sscan_feed(&ss, text + prev, c - prev, i == ncuts, NULL, &r->out, &f);
            cr_assert_geq(rc, 0);
            if (rc > r->act)
                r->act = rc;
            prev = c;
        }
        lg_sscan_free(&ss);
    }
    cr_assert_leq(f.n, 32);
    r->nf = f.n;
    for (size_t i = 0; i < f.n; i++) {
        r->f[i].rule = f.v[i].rule;
        r->f[i].start = f.v[i].start;
        r->f[i].end = f.v[i].end;
    }
    lg_findings_free(&f);
}

static void assert_same_run(const run *a, const run *b, const char *what)
{
    cr_assert_eq(a->act, b->act, "%s: action %d vs %d", what, a->act, b->act);
    cr_assert(a->out.len == b->out.len && memcmp(a->out.data, b->out.data, a->out.len) == 0,
              "%s: output differs", what);
    cr_assert_eq(a->nf, b->nf, "%s: %zu findings vs %zu", what, a->nf, b->nf);
    for (size_t i = 0; i < a->nf; i++)
        cr_assert(a->f[i].rule == b->f[i].rule && a->f[i].start == b->f[i].start &&
                      a->f[i].end == b->f[i].end,
                  "%s: finding %zu differs", what, i);
}

ParameterizedTestParameters(normalize_invalid, scan_every_split)
{
    static size_t idx[NSCAN];
    for (size_t i = 0; i < NSCAN; i++)
        idx[i] = i;
    return cr_make_param_array(size_t, idx, NSCAN);
}

ParameterizedTest(size_t *ip, normalize_invalid, scan_every_split)
{
    const char *s = scan_texts[*ip];
    size_t n = strlen(s);
    lg_policy *p = shape_policy();
    lg_scanner *sc = lg_scanner_new(p);
    cr_assert_not_null(sc);
    run w;
    scan_cuts(sc, s, n, NULL, 0, 1, &w);
    /* Whole: no Han match covers a stray byte, so none was manufactured. */
    for (size_t i = 0; i < w.nf; i++) {
        if (strcmp(w.f[i].rule->id, "t.han"))
            continue;
        long u[64];
        size_t nu = decode((const unsigned char *)s + w.f[i].start, w.f[i].end - w.f[i].start, u);
        for (size_t k = 0; k < nu; k++)
            cr_assert_geq(u[k], 0, "text %zu: a Han match covers stray byte %ld", *ip, -1 - u[k]);
    }
    char what[64];
    for (size_t a = 0; a <= n; a++)
        for (size_t b = a; b <= n; b++) {
            size_t cuts[2] = { a, b };
            run r;
            scan_cuts(sc, s, n, cuts, 2, 0, &r);
            snprintf(what, sizeof what, "text %zu cuts %zu,%zu", *ip, a, b);
            assert_same_run(&w, &r, what);
            lg_buf_free(&r.out);
        }
    size_t cuts[64];
    cr_assert_lt(n, 64);
    for (size_t i = 0; i < n; i++)
        cuts[i] = i;
    run r;
    scan_cuts(sc, s, n, cuts, n, 0, &r);
    snprintf(what, sizeof what, "text %zu byte by byte", *ip);
    assert_same_run(&w, &r, what);
    lg_buf_free(&r.out);
    lg_buf_free(&w.out);
    lg_scanner_free(sc);
    lg_policy_free(p);
}

/* The fix keeps the shapes' meaning: the first text's stray bytes stay
 * apart (one Han character after them, no run), and a removal between
 * valid characters still lets "ignore" match. */
Test(normalize_invalid, scan_expectations)
{
    lg_policy *p = shape_policy();
    lg_scanner *sc = lg_scanner_new(p);
    run r;
    scan_cuts(sc, scan_texts[0], strlen(scan_texts[0]), NULL, 0, 1, &r);
    cr_assert_eq(r.act, LG_ACT_LOG, "only the kept ZWNJ is found");
    cr_assert_eq(r.nf, 1);
    cr_assert_str_eq(r.f[0].rule->id, "t.invisible");
    cr_assert_eq(r.f[0].start, 3);
    cr_assert_eq(r.f[0].end, 6);
    lg_buf_free(&r.out);
    scan_cuts(sc, scan_texts[4], strlen(scan_texts[4]), NULL, 0, 1, &r);
    cr_assert(r.out.len >= 4 && memcmp(r.out.data, "[X] ", 4) == 0, "ig<ZWSP>nore is redacted");
    lg_buf_free(&r.out);
    lg_scanner_free(sc);
    lg_policy_free(p);
}
