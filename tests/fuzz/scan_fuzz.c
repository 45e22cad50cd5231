/* Fuzz target for the scanner: the input's first two bytes choose the mode
 * (enforce or monitor, prompt or response side) and seed the token lengths;
 * the rest is the text.  The text is scanned whole and streamed in tokens
 * of data-derived lengths (1..16 bytes), and the two runs must give the
 * same output bytes, the same findings and the same action, with the
 * hold-back never above its bound.  A fixed rule set covering validators,
 * placeholders and restoration, lookbehind, \b, anchors, a block rule,
 * possibly long matches, literals gated by other literals (some shared by
 * two rules), runs with and without literals and a rule found by its
 * lead characters, one matching the invisible characters the view keeps
 * and one found by its start gate (spaced-out letters) is compiled once. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "policy.h"
#include "scan.h"
#include "vault.h"

static lg_rule rules[] = {
    { .id = "email", .pattern = "[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)*\\.[A-Za-z]{2,}",
      .action = LG_ACT_REDACT, .redact = LG_REDACT_PLACEHOLDER, .label = "EMAIL" },
    { .id = "card", .pattern = "\\b\\d(?:[ -]?\\d){11,18}\\b", .action = LG_ACT_REDACT,
      .validator = LG_VAL_LUHN, .mask = "[CARD]" },
    { .id = "cnid", .pattern = "\\d{17}[\\dXx]", .action = LG_ACT_REDACT,
      .validator = LG_VAL_CN_ID, .redact = LG_REDACT_PLACEHOLDER, .label = "CN_ID" },
    { .id = "iban", .pattern = "\\b[A-Z]{2}\\d{2}(?: ?[A-Z0-9]{1,4}){3,8}\\b", .action = LG_ACT_REDACT,
      .validator = LG_VAL_IBAN, .mask = "[IBAN]" },
    { .id = "uscc", .pattern = "[0-9A-Z]{18}", .action = LG_ACT_LOG, .validator = LG_VAL_CN_USCC },
    { .id = "key", .pattern = "\\bsk-[A-Za-z0-9]{8,48}", .action = LG_ACT_REDACT, .mask = "[KEY]" },
    { .id = "restore", .pattern = LG_VAULT_PATTERN, .action = LG_ACT_REDACT, .restore = 1 },
    { .id = "block", .pattern = "(?i)\\bproject\\s+falcon\\b", .action = LG_ACT_BLOCK },
    { .id = "lb", .pattern = "(?<=token=)[a-z0-9]{4,}", .action = LG_ACT_REDACT },
    { .id = "word", .pattern = "\\bcat\\b|^dog|end$|(?m)^line", .action = LG_ACT_LOG },
    { .id = "uni", .pattern = "\\p{Han}{2,}|caf\\x{e9}", .action = LG_ACT_REDACT, .mask = "[U]" },
    { .id = "xy", .pattern = "x[a-z]*y", .action = LG_ACT_REDACT, .mask = "" },
    /* factor gates: each branch needs several literals */
    { .id = "factors", .pattern = "(?i)\\b(?:ignore|skip)\\s{1,3}(?:all\\s)?(?:previous|prior)\\s"
                                  "(?:rules|orders)\\b|note\\sto\\s(?:ai|bot)[^\\n]{0,20}?ignore",
      .action = LG_ACT_BLOCK },
    /* a factor string ("previous", "rules", ...) shared with "factors" */
    { .id = "factors2", .pattern = "(?i)\\bforget\\s{1,3}(?:previous|prior)\\s(?:rules|orders)\\b",
      .action = LG_ACT_LOG },
    /* a run gate on a rule with literals: every match is 12 of [ 0-9A-Z] */
    { .id = "acct", .pattern = "(?<![0-9A-Z])[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,3}(?![0-9A-Z])",
      .action = LG_ACT_REDACT, .mask = "[ACCT]" },
    /* lead strings: no literal, every match starts with a listed character */
    { .id = "zw", .pattern = "(?<=[a-z])[\\x{200B}\\x{FEFF}\\x{180E}]{1,4}", .raw = 1,
      .action = LG_ACT_REDACT, .mask = "" },
    /* the invisible characters on the normalised view, which keeps only
     * those a continuation byte follows (normalize.h): a stream that
     * judged one before seeing that byte would miss it */
    { .id = "kept", .pattern = "[\\x{ad}\\x{200b}-\\x{200d}\\x{202a}-\\x{202e}\\x{2060}"
                               "\\x{2066}-\\x{2069}\\x{feff}\\x{e0000}-\\x{e007f}]",
      .action = LG_ACT_LOG },
    /* a start gate: no literal, letters spaced out by separators (the
     * classes as PCRE2 has them: Unicode spaces, U+212A for k, four-byte
     * characters), each letter with its full-width form */
    { .id = "spaced",
      .pattern = "(?i)(?<![\\p{L}\\p{N}])(?:[c\\x{FF43}][\\s.\\x{200B}]{0,2}[a\\x{FF41}][\\s.\\x{200B}]"
                 "{0,2}[t\\x{FF54}]|[k\\x{FF4B}][\\s._]{0,2}[o\\x{FF4F}][\\s._]{0,2}[i\\x{FF49}])"
                 "[\\s\\x{3000}]{1,3}[x\\x{FF58}\\x{1F600}]",
      .action = LG_ACT_REDACT, .mask = "[S]" },
    /* a run gate: no literal, a long run of one class */
    { .id = "blob", .pattern = "(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{16,64}(?![A-Za-z0-9+/])|(?:%[0-9A-F]{2}){6,}",
      .action = LG_ACT_LOG },
};
#define NRULES (sizeof rules / sizeof rules[0])

static lg_policy pol;
static lg_scanner *sc; /* reused for every input, as a thread's scanner is */
static lg_scanner *ref; /* the same policy without literal prefilters */

static void init_once(void)
{
    if (pol.rules)
        return;
    for (size_t i = 0; i < NRULES; i++) {
        /* Placeholders are issued on the prompt side and restored on the
         * response side, as in real policies: a field that did both would
         * see the vault change under its own scan (documented in scan.h). */
        if (rules[i].restore)
            rules[i].on = LG_ON_RESPONSE;
        else if (rules[i].redact == LG_REDACT_PLACEHOLDER && rules[i].action == LG_ACT_REDACT)
            rules[i].on = LG_ON_PROMPT;
        else
            rules[i].on = LG_ON_PROMPT | LG_ON_RESPONSE;
        char err[256];
        size_t off;
        if (lg_rule_compile(&rules[i], err, sizeof err, &off) != LG_OK) {
            fprintf(stderr, "rule %s: %s at %zu\n", rules[i].id, err, off);
            abort();
        }
        size_t lb = lg_rule_lookbehind(&rules[i]);
        if (lb > pol.max_lookbehind)
            pol.max_lookbehind = lb;
    }
    pol.version = 1;
    pol.rules = rules;
    pol.nrules = NRULES;
    pol.max_hold = 4096;
    sc = lg_scanner_new(&pol);
    ref = lg_scanner_new(&pol);
    if (!sc || !ref)
        abort();
    lg_scanner_set_reference(ref, 1);
}

static lg_vault *mk_vault(void)
{
    lg_vault *v = lg_vault_new(64);
    lg_buf b;
    lg_buf_init(&b, 64);
    if (!v || lg_vault_placeholder(v, "EMAIL", "alice@example.com", 17, &b) != LG_OK)
        abort();
    lg_buf_free(&b);
    return v;
}

#define MAXTEXT 2048

/* The built-in policy (real rules, whose prefilters and candidate windows
 * are much more involved than the fixed set's), with and without
 * prefilters: both must agree on every input, whole and streamed. */
static lg_policy *bpol;
static lg_scanner *bsc, *bref;

static void builtin_once(void)
{
    if (bpol)
        return;
    lg_diag d;
    if (lg_policy_builtin(&bpol, &d) != LG_OK)
        abort();
    bsc = lg_scanner_new(bpol);
    bref = lg_scanner_new(bpol);
    if (!bsc || !bref)
        abort();
    lg_scanner_set_reference(bref, 1);
}

/* One run over text: whole (maxtok 0) or streamed in seeded tokens. */
static int run_builtin(lg_scanner *s, unsigned on, unsigned flags, const char *text, size_t n,
                       size_t maxtok, uint32_t seed, lg_buf *o, lg_findings *f)
{
    if (!maxtok)
        return lg_scan_text(s, on, LG_ROLE_USER, flags, text, n, NULL, o, f);
    lg_sscan ss;
    if (lg_sscan_init(&ss, s, on, LG_ROLE_USER, flags, 0) != LG_OK)
        abort();
    int a = LG_ACT_ALLOW;
    size_t pos = 0;
    for (;;) {
        seed = seed * 1103515245u + 12345u;
        size_t tok = 1 + (seed >> 16) % maxtok;
        if (tok > n - pos)
            tok = n - pos;
        int fin = pos + tok == n;
        int rc = lg_sscan_feed(&ss, text + pos, tok, fin, NULL, o, f);
        if (rc < 0) {
            a = rc;
            break;
        }
        if (rc > a)
            a = rc;
        pos += tok;
        if (fin)
            break;
    }
    lg_sscan_free(&ss);
    return a;
}

static void check_builtin(unsigned on, unsigned flags, const char *text, size_t n, size_t maxtok,
                          uint32_t seed)
{
    builtin_once();
    lg_buf o1, o2;
    lg_findings f1, f2;
    lg_buf_init(&o1, 1 << 20);
    lg_buf_init(&o2, 1 << 20);
    lg_findings_init(&f1, 4096);
    lg_findings_init(&f2, 4096);
    int a1 = run_builtin(bsc, on, flags, text, n, maxtok, seed, &o1, &f1);
    int a2 = run_builtin(bref, on, flags, text, n, maxtok, seed, &o2, &f2);
    if (a1 != a2 || o1.len != o2.len || (o1.len && memcmp(o1.data, o2.data, o1.len) != 0) ||
        f1.n != f2.n) {
        fprintf(stderr, "builtin: prefiltered %d/%zu findings vs reference %d/%zu\n", a1, f1.n,
                a2, f2.n);
        abort();
    }
    for (size_t i = 0; i < f1.n; i++)
        if (f1.v[i].rule != f2.v[i].rule || f1.v[i].start != f2.v[i].start ||
            f1.v[i].end != f2.v[i].end)
            abort();
    lg_findings_free(&f1);
    lg_findings_free(&f2);
    lg_buf_free(&o1);
    lg_buf_free(&o2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    if (size < 2)
        return 0;
    unsigned mode = data[0];
    uint32_t seed = data[1] | (uint32_t)mode << 8;
    const char *text = (const char *)data + 2;
    size_t n = size - 2;
    if (n > MAXTEXT)
        n = MAXTEXT;
    unsigned flags = mode & 1 ? 0 : LG_SCAN_ENFORCE;
    unsigned on = mode & 2 ? LG_ON_RESPONSE : LG_ON_PROMPT;
    size_t maxtok = 1 + (mode >> 4);

    /* whole */
    lg_vault *v1 = mk_vault();
    lg_buf o1;
    lg_buf_init(&o1, 1 << 20);
    lg_findings f1;
    lg_findings_init(&f1, 4096);
    int a1 = lg_scan_text(sc, on, LG_ROLE_USER, flags, text, n, v1, &o1, &f1);

    /* the reference path (no prefilters) must give the same, always */
    {
        lg_vault *v3 = mk_vault();
        lg_buf o3;
        lg_buf_init(&o3, 1 << 20);
        lg_findings f3;
        lg_findings_init(&f3, 4096);
        int a3 = lg_scan_text(ref, on, LG_ROLE_USER, flags, text, n, v3, &o3, &f3);
        if (a3 != a1 || o3.len != o1.len || (o1.len && memcmp(o1.data, o3.data, o1.len) != 0) ||
            f3.n != f1.n)
            abort();
        for (size_t i = 0; i < f1.n; i++)
            if (f1.v[i].rule != f3.v[i].rule || f1.v[i].start != f3.v[i].start ||
                f1.v[i].end != f3.v[i].end)
                abort();
        lg_findings_free(&f3);
        lg_buf_free(&o3);
        lg_vault_free(v3);
    }

    check_builtin(on, flags, text, n, mode & 4 ? maxtok : 0, seed);

    /* streamed */
    lg_vault *v2 = mk_vault();
    lg_buf o2;
    lg_buf_init(&o2, 1 << 20);
    lg_findings f2;
    lg_findings_init(&f2, 4096);
    lg_sscan ss;
    if (lg_sscan_init(&ss, sc, on, LG_ROLE_USER, flags, 0) != LG_OK)
        abort();
    int a2 = LG_ACT_ALLOW;
    size_t pos = 0;
    for (;;) {
        seed = seed * 1103515245u + 12345u;
        size_t tok = 1 + (seed >> 16) % maxtok;
        if (tok > n - pos)
            tok = n - pos;
        int fin = pos + tok == n;
        int rc = lg_sscan_feed(&ss, text + pos, tok, fin, v2, &o2, &f2);
        if (rc < 0) {
            a2 = rc;
            break;
        }
        if (rc > a2)
            a2 = rc;
        if (lg_sscan_held(&ss) > ss.max_hold)
            abort();
        pos += tok;
        if (fin)
            break;
    }
    size_t overflows = ss.overflows;
    lg_sscan_free(&ss);

    /* Parity holds unless the hold-back bound forced a release, or the
     * match limit stopped one run (both are documented exceptions). */
    if (overflows == 0 && a1 != LG_E_MATCH && a2 != LG_E_MATCH) {
        if (a1 != a2) {
            fprintf(stderr, "action %d vs %d\n", a1, a2);
            abort();
        }
        if (o1.len != o2.len || (o1.len && memcmp(o1.data, o2.data, o1.len) != 0)) {
            fprintf(stderr, "output differs: [%.*s] vs [%.*s]\n", (int)o1.len,
                    o1.data ? o1.data : "", (int)o2.len, o2.data ? o2.data : "");
            abort();
        }
        if (f1.n != f2.n)
            abort();
        for (size_t i = 0; i < f1.n; i++)
            if (f1.v[i].rule != f2.v[i].rule || f1.v[i].start != f2.v[i].start ||
                f1.v[i].end != f2.v[i].end || f1.v[i].action != f2.v[i].action)
                abort();
    }
    /* Findings lie inside the text, in order. */
    for (size_t i = 0; i < f1.n; i++) {
        if (f1.v[i].start >= f1.v[i].end || f1.v[i].end > n)
            abort();
        if (i && f1.v[i].start < f1.v[i - 1].start)
            abort();
    }
    if (!(flags & LG_SCAN_ENFORCE) && a1 >= 0 &&
        (o1.len != n || (n && memcmp(o1.data, text, n) != 0)))
        abort(); /* monitor mode never changes text */

    lg_findings_free(&f1);
    lg_findings_free(&f2);
    lg_buf_free(&o1);
    lg_buf_free(&o2);
    lg_vault_free(v1);
    lg_vault_free(v2);
    return 0;
}
