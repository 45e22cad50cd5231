/* The normalised view rules match against, and the map back to the
 * original text.
 *
 * Normalisation is per character and only ever shortens text:
 * - full-width ASCII U+FF01..U+FF5E becomes the ASCII character U+0021..U+007E
 *   (NFKC width folding; 3 bytes become 1), and the ideographic space U+3000
 *   becomes a space;
 * - invisible characters are removed: zero-width space/non-joiner/joiner
 *   U+200B..U+200D, word joiner U+2060, BOM/ZWNBSP U+FEFF, soft hyphen
 *   U+00AD, bidi controls U+202A..U+202E and U+2066..U+2069, and tag
 *   characters U+E0000..U+E007F -- except one followed by a UTF-8
 *   continuation byte (0x80..0xBF), which is kept as it is;
 * - every other byte, including invalid UTF-8, is copied unchanged.
 * Case is not folded here: a rule that wants it says (?i).
 *
 * The exception is the rule that keeps invalid bytes apart: the view never
 * makes a valid character out of invalid bytes.  Removing a character
 * joins the bytes before it to the bytes after it; when the byte after it
 * is not a continuation byte, every decoder starts a new sequence there,
 * so each side decodes as it did with the character between them.  When
 * it is one, the bytes before might be a stray lead (E4 U+200C BD A0 would
 * become U+4F60): the character stays and separates them, as in the
 * original.  PCRE2's MATCH_INVALID_UTF then treats the stray bytes on
 * either side as barriers.  Valid UTF-8 never puts a continuation byte
 * after a complete character, so on valid text the exception never applies.
 *
 * The decision rests on the character and the one byte after it, never on
 * what precedes it (a stream window's left edge may have cut that away),
 * so it is the same in a whole text and in any window holding that byte.
 * Hence locality: normalising a text cut at a character boundary gives the
 * concatenation of the pieces' normalisations, unless the first piece ends
 * with a removable character and the second starts with a continuation
 * byte (invalid text); even then the first piece's view is a prefix of the
 * whole's.  A stream that has not yet seen the byte after a trailing
 * removable character holds that character back (lg_norm_pending), so no
 * window judges text whose view the next byte could change.
 *
 * The map is a list of segments: a verbatim segment maps normalised bytes
 * one to one onto original bytes; a folded segment is one normalised byte
 * standing for one whole original character.  Removed characters belong to
 * no segment (the next segment's original offset jumps over them).
 *
 * Ownership: lg_nmap holds heap arrays, released by lg_nmap_free. */
#ifndef LG_NORMALIZE_H
#define LG_NORMALIZE_H

#include <stddef.h>

typedef struct lg_nmap {
    size_t *nofs;          /* segment start in the normalised text (heap, owned) */
    size_t *oofs;          /* segment start in the original text (heap, owned) */
    unsigned char *olen;   /* 0: verbatim segment; else original bytes of the one folded character */
    size_t n, cap;         /* segments used / allocated */
    size_t nlen, olen_all; /* lengths of the normalised and the original text */
} lg_nmap;

void lg_nmap_init(lg_nmap *m);
void lg_nmap_free(lg_nmap *m);

/* What normalisation does to the character at p[0..avail): returns the
 * original length of a character it changes (2, 3 or 4) and sets *repl to
 * the replacement byte (or -1 when the character is removed); returns 0
 * when the byte at p starts nothing normalisation touches (copied as is),
 * including a removable character followed by a continuation byte.  A
 * removable character ending exactly at avail is removed: callers that
 * may see more text later use lg_norm_pending. */
int lg_norm_char(const unsigned char *p, size_t avail, int *repl);

/* Length (2..4) of a removable character that ends p[0..n) exactly, else
 * 0.  Whether it is removed depends on the byte after it, not yet known:
 * a streaming caller holds these bytes back, as it holds a truncated
 * character, until more text arrives or the text ends. */
size_t lg_norm_pending(const char *p, size_t n);

/* Offset of the first byte at or after p[from] that may start a character
 * normalisation changes (n when there is none).  Cheap: memchr per lead
 * byte, so callers can skip building a view for text that needs none. */
size_t lg_norm_find(const char *p, size_t n, size_t from);

/* Normalise in[0..n) into out (room for n bytes: the result is never
 * longer), setting *outlen.  map (may be NULL) is rebuilt.  LG_OK or
 * LG_E_NOMEM. */
int lg_normalize(const char *in, size_t n, char *out, size_t *outlen, lg_nmap *map);

/* Original offset where the character holding normalised byte npos starts
 * (npos == nlen gives the end of the last segment's source). */
size_t lg_nmap_start(const lg_nmap *m, size_t npos);

/* Original offset just after the character holding normalised byte
 * npos - 1 (npos > 0; 0 gives the original start of the first segment). */
size_t lg_nmap_end(const lg_nmap *m, size_t npos);

/* Smallest normalised offset whose source starts at or after original
 * offset opos (nlen when none). */
size_t lg_nmap_from_orig(const lg_nmap *m, size_t opos);

#endif
