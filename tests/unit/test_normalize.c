/* Tests for the normalised view (core/normalize.c): what is folded, what is
 * removed, what must stay byte for byte (everything else, invalid UTF-8
 * included), the map back to original offsets, locality (normalising the
 * pieces of a text cut at character boundaries gives the normalisation of
 * the whole), and the scanner using it: a rule written for "ignore" matches
 * full-width and zero-width-split spellings, and redaction replaces the
 * original bytes. */
#include <criterion/criterion.h>
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
