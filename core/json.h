/* A span-aware JSON walker, and JSON string escaping.
 *
 * Why not cJSON here: to rewrite one string inside a request body and leave
 * every other byte as the client wrote it, we need the byte span of each
 * value in the source, which cJSON does not keep.  This walker validates the
 * document (RFC 8259: one value, optional surrounding whitespace) and calls
 * back for every scalar with its path and span.  It does not allocate: the
 * path lives in a fixed buffer inside the walker's stack frame.
 * cJSON is still used where a tree is convenient (policies, events).
 *
 * Paths: object keys joined with '.', array indexes in brackets:
 * `messages[3].content`, `choices[0].delta.content`.  Keys are the decoded
 * key text ("\u0063ontent" gives `content`).  The top-level value has the
 * empty path.  A key containing '.', '[' or ']' is written as-is (ambiguous
 * but harmless for matching). */
#ifndef LG_JSON_H
#define LG_JSON_H

#include <stddef.h>

#include "buf.h"

#define LG_JSON_MAX_DEPTH 64   /* default nesting limit */
#define LG_JSON_DEPTH_CAP 256  /* hard ceiling: a larger max_depth is clamped to it */
#define LG_JSON_MAX_PATH  512  /* longer paths are truncated; `truncated` says so */

enum lg_json_type {
    LG_JSON_STRING = 1,
    LG_JSON_NUMBER,
    LG_JSON_TRUE,
    LG_JSON_FALSE,
    LG_JSON_NULL,
    LG_JSON_OBJECT,  /* reported at its end: span covers { ... } */
    LG_JSON_ARRAY    /* reported at its end: span covers [ ... ] */
};

typedef struct lg_json_value {
    int type;           /* enum lg_json_type */
    size_t start, end;  /* byte span [start, end) in the source; strings include their quotes */
    const char *path;   /* NUL-terminated; valid only during the callback */
    size_t path_len;    /* <= LG_JSON_MAX_PATH */
    int depth;          /* 0 for the top-level value; containers enclosing it otherwise */
    int truncated;      /* path was longer than LG_JSON_MAX_PATH: path holds
                           its first bytes, cut at a character boundary */
} lg_json_value;

/* Return 0 to continue; any other value stops the walk and is returned. */
typedef int (*lg_json_cb)(void *ud, const lg_json_value *v);

/* Validate buf[0..len) as one JSON document and call cb for every value
 * (scalars when seen; objects and arrays after their last member, so a
 * container is reported after its children).  cb may be NULL (validate
 * only).  Returns LG_OK, a non-zero callback return, LG_E_JSON (syntax,
 * including invalid UTF-8 in strings and control characters) or
 * LG_E_JSON_DEPTH, with *err_off (may be NULL) set to the offending byte
 * (len when the input ends too early; the value's end when the callback
 * stopped the walk).  Strict RFC 8259: no comments, trailing commas, NaN,
 * leading zeros or byte order mark; strings must be well-formed UTF-8
 * (no overlongs, no UTF-8-encoded surrogates, nothing above U+10FFFF).
 * Escaped lone surrogates (\ud800) are grammatical and accepted.
 * max_depth is the number of containers that may be open at once
 * ([[1]] needs 2); 0 means LG_JSON_MAX_DEPTH, larger than
 * LG_JSON_DEPTH_CAP means LG_JSON_DEPTH_CAP.  The opening bracket that
 * goes one level too deep is the error offset.  Uses a fixed explicit
 * stack (about 7 KiB), never recursion.  LG_E_INVAL for buf NULL with
 * len > 0 or max_depth < 0. */
int lg_json_walk(const char *buf, size_t len, int max_depth, lg_json_cb cb,
                 void *ud, size_t *err_off);

/* Decode the string token src[0..n) (quotes included) to UTF-8, appended to
 * out.  \uXXXX escapes are decoded, surrogate pairs combined; lone
 * surrogates become U+FFFD.  The token is checked as lg_json_walk checks
 * strings (so every string span the walker reports decodes).  LG_OK,
 * LG_E_JSON (not exactly one valid string token), or lg_buf errors
 * (LG_E_LIMIT, LG_E_NOMEM); on error nothing is appended. */
int lg_json_unescape(const char *src, size_t n, lg_buf *out);

enum {
    LG_JSON_ESC_HTML = 1 /* escape < > & as \u003c \u003e \u0026, as Go's encoder does */
};

/* Append text (UTF-8) as a JSON string token, quotes included.  Escapes
 * " \ and control characters (\n \r \t \b \f, others \u00XX with lowercase
 * hex); U+2028 and U+2029 as \u2028 \u2029 (as Go does); each byte that
 * is not part of a well-formed UTF-8 sequence becomes \ufffd (one per
 * byte, as Go does).  Everything else, DEL and non-ASCII included, is
 * copied as is.  With LG_JSON_ESC_HTML the output is byte for byte Go's
 * encoding/json (Go >= 1.22, which writes \b and \f short; Ollama's
 * server); without it, Go's with SetEscapeHTML(false), which for valid
 * UTF-8 equals Python's json.dumps(s, ensure_ascii=False) except that
 * U+2028/U+2029 are escaped.  flags: LG_JSON_ESC_*.  LG_OK or lg_buf
 * errors; on error nothing is appended. */
int lg_json_escape(const char *text, size_t n, unsigned flags, lg_buf *out);

/* Does path[0..path_len) match the NUL-terminated pattern?  1 or 0.
 * Pattern segments, joined like paths: literal keys, `[N]` (compared as
 * written), `[*]` (any index), `*` (any one non-empty key, no '.' or '[' in it), and a
 * final `**` (`a.**` or `a[*].**`: the path so far and anything below, zero
 * or more segments; `**` alone matches every path).  Segments match whole:
 * `messages[*].content` matches `messages[0].content`, not
 * `messages[0].content_x` nor `messages[0].content[1]`.  A `**` anywhere
 * but at the end, or a malformed pattern, matches nothing.  The empty
 * pattern matches only the top-level value's empty path. */
int lg_json_path_match(const char *pattern, const char *path, size_t path_len);

/* Internal (json.c, event.c): how many bytes from the start of s[0..n) go
 * into a JSON string as they are (printable ASCII other than " and \),
 * tested eight at a time. */
size_t lg__json_plain_len(const char *s, size_t n);

#endif
