/* Finding encoded runs in text and decoding them, so that the scanner can
 * run the policy's rules over what the encoding hid ("decode and rescan"):
 * an attacker writes "ignore all previous instructions" as base64, hex,
 * escapes or percent-encoding and asks the model to decode and obey it.
 *
 * What counts as a run (the minimums keep ordinary words and numbers out):
 * - base64, standard or URL-safe alphabet (not both in one run), at least
 *   16 characters counting padding; padding only as RFC 4648 puts it, and
 *   the unused bits of the last quantum zero, as every encoder writes them.
 *   Line breaks (LF or CRLF) continue a run when every line before the last
 *   has the same length, a multiple of 4 and at least 16, and the last is
 *   no longer, as `base64`, `openssl base64` and MIME wrap it.  When the
 *   last line spoils the run (a word on the line after a blob), the run
 *   without it is taken.
 * - hex: at least 16 hex digits, an even count, optionally after 0x; not
 *   all decimal digits (that is a number).
 * - spaced hex: at least 6 bytes written as two hex digits (each may have
 *   0x, all or none), separated by one separator used throughout: a space,
 *   ",", ", ", ";", "; ", ":" or "-"; not all decimal digits unless 0x.
 * - \xHH escapes: at least 4 in a row.  \uHHHH (and \UHHHHHHHH) escapes:
 *   at least 4 in a row, surrogate pairs combined.
 * - percent-encoding: a run of URL characters holding at least 3 %HH
 *   escapes, decoded whole ("ignore%20all%20previous%20rules" gives
 *   "ignore all previous rules"; '+' gives a space).
 * - binary: at least 4 octets of 8 binary digits, separated like spaced
 *   hex, or written together (a multiple of 8 digits, at least 32).
 * A run starts where the previous character cannot belong to it (start of
 * text, space, punctuation outside its alphabet) and, for the hex and
 * binary forms, ends before a letter or digit.
 *
 * A run is accepted only when its decoded bytes look like text: at least
 * one letter (ASCII or any non-ASCII character), and few "bad" characters
 * (controls other than tab/CR/LF, C1 controls, private use, noncharacters,
 * U+FFFD, unassigned planes 4-13, and invalid UTF-8): none in a text of 8
 * characters or fewer, then one per 6.7 characters beyond the 8th (under
 * 15% however long).  So random bytes (hashes, keys, UUIDs, signatures,
 * binary base64) are rejected, while a stray byte cannot hide a long
 * payload.
 * Invalid UTF-8 is replaced by U+FFFD in the output (one per maximal
 * invalid subpart), so the output is always valid UTF-8, and at most 3
 * bytes per byte of the run (text decodes shorter than its encoding; only
 * replacements grow it): outcap = 3 * len never truncates.
 *
 * Cost: linear in the text, for any input and any sequence of calls with
 * one iterator (each detector remembers how far it has already looked).
 * Ordinary prose is passed over 16 bytes at a time (SSE2; 8 in the
 * portable fallback); only tokens that could start a run are examined
 * closely.  No allocation, no recursion, no globals; the caller decides
 * whether to decode the output again (nesting) and how deep.
 *
 * Ownership: text, the iterator, the result and the output buffer are all
 * the caller's; nothing is retained between calls except what the iterator
 * holds. */
#ifndef LG_DECODE_H
#define LG_DECODE_H

#include <stddef.h>

enum lg_enc {
    LG_ENC_BASE64 = 1, /* standard alphabet (+ /), or neither + / nor - _ */
    LG_ENC_BASE64URL,  /* URL-safe alphabet (- _) */
    LG_ENC_HEX,        /* 48656c6c6f..., 0x48656c... */
    LG_ENC_HEX_SPACED, /* 48 65 6c, 48:65:6c, 0x48, 0x65 */
    LG_ENC_ESC_X,      /* \x48\x65 */
    LG_ENC_ESC_U,      /* \u0048\u4e2d */
    LG_ENC_PERCENT,    /* ignore%20all%20... */
    LG_ENC_BINARY      /* 01001000 01100101, or unspaced */
};
#define LG_ENC_MAX LG_ENC_BINARY

/* Per-detector progress, internal to decode.c (sized here so the iterator
 * can live on the caller's stack). */
#define LG__DECODE_DETECTORS 6

/* Iteration state.  Zero-fill it before the first call (then the search
 * starts at offset 0), or set pos to start elsewhere.  Use one iterator
 * for one text: every call must pass the same text and len. */
typedef struct lg_decode_iter {
    size_t pos;                          /* where the next search starts; after a run, its end */
    size_t seen[LG__DECODE_DETECTORS];   /* internal: where each detector may start again */
} lg_decode_iter;

typedef struct lg_decoded {
    size_t start, end; /* the run is text[start..end) */
    int kind;          /* enum lg_enc */
    size_t outlen;     /* bytes written to out (<= outcap), whole UTF-8 characters */
    size_t declen;     /* length of the whole decoded text (> outlen when truncated) */
    int truncated;     /* 1 when the decoded text did not fit in outcap */
} lg_decoded;

/* Find the next encoded run that decodes to text, starting at it->pos in
 * text[0..len); write its decoded text to out[0..outcap) and advance
 * it->pos to its end.  Runs come in increasing order and never overlap.
 * The output is valid UTF-8, cut at a character boundary when it does not
 * fit (d->truncated).  out may be NULL when outcap is 0 (spans only).
 * Returns 1 (found, *d filled), 0 (no more runs; it->pos == len) or
 * LG_E_INVAL (NULL text with len > 0, NULL it or d, NULL out with
 * outcap > 0, it->pos > len).  out's contents beyond d->outlen, and all of
 * it when 0 is returned, are unspecified. */
int lg_decode_next(const char *text, size_t len, lg_decode_iter *it, lg_decoded *d, char *out,
                   size_t outcap);

/* Internal, for tests: the same search with the pre-filters that pass
 * over prose turned off (every token examined).  Same results as
 * lg_decode_next for every input; the fuzz target checks it. */
int lg__decode_next_ref(const char *text, size_t len, lg_decode_iter *it, lg_decoded *d,
                        char *out, size_t outcap);

/* "base64", "base64url", "hex", "hex_spaced", "esc_x", "esc_u",
 * "percent", "binary"; "unknown" otherwise.  Static strings. */
const char *lg_enc_name(int kind);

#endif
