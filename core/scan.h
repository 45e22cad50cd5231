/* Scanning text against a policy's rules, whole or as a stream, and
 * applying what was found (redaction, restoration of placeholders).
 *
 * Streaming with bounded hold-back: text arrives in deltas (tokens).  After
 * each delta every rule is run on the unreleased window with
 * PCRE2_PARTIAL_HARD; a partial match means "a match could still be growing
 * from here", so text from the earliest partial start (or the start of a
 * complete match that straddles it) is held and everything before it is
 * released, transformed.  A complete match that touches the end of the
 * window is reported as partial by PARTIAL_HARD, so a value is never
 * judged before it can no longer grow.  Lookbehinds and \b see up to
 * policy->max_lookbehind bytes of already released text as context.  The
 * window never holds more than max_hold bytes: beyond that the oldest text is
 * judged with complete matches only and released (logged as a hold-back
 * overflow).  Whole-text scanning is the same code with final = 1, so a
 * value split at any token boundaries gives exactly the result it gives
 * when scanned whole.
 *
 * Details the streaming contract depends on:
 * - Findings are reported when the text they cover is released, once, in
 *   order of position (start, end, rule).  Overlapping findings from
 *   different rules are all reported; only one is applied: stronger action
 *   first, then earlier start, then longer.  A validator (rule->validator)
 *   that rejects a match makes it no finding; the search goes on one
 *   character after its start, so a valid value inside is still found.
 * - Invalid UTF-8 never stops scanning: patterns are compiled with
 *   PCRE2_MATCH_INVALID_UTF, so an invalid sequence is a barrier no match
 *   crosses.  A valid but incomplete character at the end of a delta is
 *   held until it completes.  Released text and context are never cut
 *   inside a character.
 * - Released context kept for lookbehinds: twice the longest lookbehind
 *   plus one character (nested lookbehinds), and at least
 *   policy->max_lookbehind bytes.  ^ matches only at the start of the field.
 * - A pcre2_match error (match, depth or heap limit: a pathological
 *   pattern or input) is never taken as "no match": the feed returns
 *   LG_E_MATCH and the error is sticky; the caller applies the fail mode.
 * - Exceptions to whole/stream parity: a release forced by max_hold (then
 *   ss->overflows > 0); a limit error in one run but not the other; and a
 *   field scanned with both placeholder-issuing and restore rules, since
 *   a restore rule asks the vault when it finds a placeholder, and a
 *   stream may have issued that placeholder by then (policies restore on
 *   the response side and issue on the prompt side, so this does not
 *   arise with them).
 *
 * Ownership: lg_scanner holds per-thread match state for a policy (the
 * policy must outlive it), including what lg_scan_text reuses from call to
 * call (its window, kept while at most 64 KiB, and per-rule scratch; all
 * freed by lg_scanner_free); an lg_sscan belongs to one text field of one
 * message and uses one scanner.  Neither is thread-safe; the policy is. */
#ifndef LG_SCAN_H
#define LG_SCAN_H

#include <stddef.h>

#include "buf.h"
#include "policy.h"
#include "vault.h"

typedef struct lg_finding {
    const lg_rule *rule;  /* points into the policy */
    size_t start, end;    /* byte span in the field's original text (whole stream) */
    int action;           /* what was done: the rule's action, or LG_ACT_LOG in monitor mode */
} lg_finding;

typedef struct lg_findings {
    lg_finding *v;  /* heap array, owned */
    size_t n, cap;
    size_t max;     /* further findings are counted in `dropped`, not stored */
    size_t dropped;
} lg_findings;

void lg_findings_init(lg_findings *f, size_t max);
void lg_findings_reset(lg_findings *f);
void lg_findings_free(lg_findings *f);
int lg_findings_add(lg_findings *f, const lg_rule *rule, size_t start, size_t end, int action);

/* Compile r->pattern into r->code: PCRE2 with UTF and UCP.  JIT code
 * (complete and partial modes) is made later, in a copy, once the scanner
 * has matched enough text with the rule to pay for it, or at the rule's
 * first partial match (streaming); until then, and where JIT is
 * unavailable, the interpreter runs.
 * On a bad pattern returns LG_E_REGEX with PCRE2's message in err and the
 * offset in the pattern in *err_off.  The policy loader calls this for
 * every rule.  Not thread-safe against scans of the same rule. */
int lg_rule_compile(lg_rule *r, char *err, size_t errlen, size_t *err_off);

/* Release r->code and its JIT copy (safe on a rule never compiled). */
void lg_rule_free_code(lg_rule *r);

/* The rule's JIT-compiled code (a pcre2_code *, owned by the rule), made
 * now when make is set and it does not exist yet; NULL when there is none
 * (not made yet, JIT unavailable, or being made by another thread).
 * Thread-safe.  For benchmarks that match rules directly, and tests. */
const void *lg_rule_jit_code(const lg_rule *r, int make);

/* PCRE2_INFO_MAXLOOKBEHIND of a compiled rule, in bytes (upper bound). */
size_t lg_rule_lookbehind(const lg_rule *r);

typedef struct lg_scanner lg_scanner;

/* Build the policy's prefilter tables once (they depend only on the
 * policy and take milliseconds to build); every lg_scanner_new for the
 * policy then borrows them read-only instead of building its own.  The
 * policy loader calls this after compiling the rules; lg_policy_free
 * calls lg_scan_release.  LG_OK or LG_E_NOMEM. */
int lg_scan_prepare(lg_policy *p);
void lg_scan_release(lg_policy *p);

/* Match state for every rule of p.  NULL on allocation failure. */
lg_scanner *lg_scanner_new(const lg_policy *p);
void lg_scanner_free(lg_scanner *s);
const lg_policy *lg_scanner_policy(const lg_scanner *s);

/* Test-only: with on != 0, s searches every rule over the whole window
 * with one pcre2_match call at a time, without literal prefilters (the
 * reference the prefiltered search is checked against; results must be
 * identical, only slower). */
void lg_scanner_set_reference(lg_scanner *s, int on);

/* Flags for lg_scan_text and lg_sscan_init. */
enum {
    LG_SCAN_ENFORCE = 1  /* apply redactions/restorations; without it findings are only reported */
};

/* Result of a scan: the strongest action found, or a negative error. */

/* Scan text whole (a stream of one final feed with max_hold = n, so the
 * result is the streaming result with no hold-back bound).  Appends the
 * transformed text (== text when nothing changes or without
 * LG_SCAN_ENFORCE) to out, and findings to f.  on is
 * LG_ON_PROMPT or LG_ON_RESPONSE; role one LG_ROLE_* bit.  The vault (may
 * be NULL: placeholder redaction then falls back to the rule's mask) gives
 * placeholders and restores them.  Returns the strongest action among the
 * findings (LG_ACT_ALLOW when none), or an error.
 *
 * Decode and rescan: on the prompt side, when the policy's decode is on
 * and the scan did not block, encoded runs in the text (base64, hex,
 * escapes, percent-encoding, binary; decode.h) are decoded, at most
 * LG_DECODE_RUNS of them and LG_DECODE_OUT bytes each, nested once more
 * (base64 of hex), and the decoded text is scanned with the same rules.
 * Each finding there is reported with its rule on the encoded run's span
 * in the original text.  A block there blocks the text (the return
 * value); other actions are reported as LG_ACT_LOG, since the decoded
 * text is never rewritten.  Answers are never decoded: a stream cannot
 * know a run is complete before it ends, and held-back text must not
 * wait for that. */
#define LG_DECODE_RUNS 256
#define LG_DECODE_OUT 8192
int lg_scan_text(lg_scanner *s, unsigned on, unsigned role, unsigned flags,
                 const char *text, size_t n, lg_vault *v, lg_buf *out,
                 lg_findings *f);

typedef struct lg_sscan {
    lg_scanner *sc;     /* not owned */
    unsigned on, role, flags;
    size_t max_hold;    /* bytes of unreleased text at most */
    lg_buf win;         /* released context followed by unreleased text */
    size_t ctx;         /* bytes at the start of win that were already released */
    size_t base;        /* offset in the whole stream of win.data[0] */
    int blocked;        /* a blocking finding was seen; later feeds release nothing */
    size_t overflows;   /* times max_hold forced a release */
    size_t *resume;     /* per rule: stream offset where its search goes on (heap, owned) */
    lg_finding *pend;   /* findings not yet released, offsets in the stream (heap, owned) */
    size_t npend, cpend;
    int err;            /* sticky error: once a feed fails every later feed returns it */
    int done;           /* the final feed was seen */
} lg_sscan;

/* Start scanning one field.  role: one LG_ROLE_* bit (prompt side; a rule
 * with roles == 0 applies to every role).  max_hold 0 means the policy's
 * max_hold (4096 when that is 0 too); values below 16 are raised to 16 so a
 * character and a little text always fit.  LG_OK, LG_E_INVAL, LG_E_NOMEM;
 * call lg_sscan_free afterwards in every case. */
int lg_sscan_init(lg_sscan *ss, lg_scanner *sc, unsigned on, unsigned role,
                  unsigned flags, size_t max_hold);

/* Feed one delta.  Appends to out the text that became safe to release
 * (transformed), and the findings completed by this delta to f (offsets in
 * the whole stream).  final = 1 ends the field: everything is judged and
 * released.  Returns the strongest action among the new findings (or
 * LG_ACT_ALLOW), or an error.  When it returns LG_ACT_BLOCK with
 * LG_SCAN_ENFORCE, out holds only text before the blocked match and the
 * stream should be cut; later feeds release nothing and return
 * LG_ACT_ALLOW, and findings after the blocked match are not reported.
 * Without LG_SCAN_ENFORCE text is released unchanged (with the same
 * hold-back) and findings carry LG_ACT_LOG.  A delta larger than max_hold
 * is processed in max_hold slices.  Errors are sticky: LG_E_MATCH (see
 * above), LG_E_LIMIT (out full), LG_E_NOMEM; LG_E_STATE after the final
 * feed. */
int lg_sscan_feed(lg_sscan *ss, const char *p, size_t n, int final,
                  lg_vault *v, lg_buf *out, lg_findings *f);

/* Bytes currently held back (not yet released). */
size_t lg_sscan_held(const lg_sscan *ss);

void lg_sscan_free(lg_sscan *ss);

#endif
