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
 * `messages[3].content`, `choices[0].delta.content`.  A key containing '.',
 * '[' or ']' is written as-is (ambiguous but harmless for matching). */
#ifndef LG_JSON_H
#define LG_JSON_H

#include <stddef.h>

#include "buf.h"

#define LG_JSON_MAX_DEPTH 64   /* default nesting limit */
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
    size_t start, end;  /* byte span in the source; strings include their quotes */
    const char *path;   /* NUL-terminated; valid only during the callback */
    size_t path_len;
    int depth;          /* 0 for the top-level value */
    int truncated;      /* path was longer than LG_JSON_MAX_PATH */
} lg_json_value;

/* Return 0 to continue; any other value stops the walk and is returned. */
typedef int (*lg_json_cb)(void *ud, const lg_json_value *v);

/* Validate buf[0..len) as one JSON document and call cb for every value
 * (scalars when seen; objects and arrays after their last member, so a
 * container is reported after its children).  cb may be NULL (validate
 * only).  Returns LG_OK, a non-zero callback return, LG_E_JSON (syntax,
 * including invalid UTF-8 in strings and control characters) or
 * LG_E_JSON_DEPTH, with *err_off (may be NULL) set to the offending byte.
 * max_depth 0 means LG_JSON_MAX_DEPTH. */
int lg_json_walk(const char *buf, size_t len, int max_depth, lg_json_cb cb,
                 void *ud, size_t *err_off);

/* Decode the string token src[0..n) (quotes included) to UTF-8, appended to
 * out.  Lone surrogates become U+FFFD.  LG_OK, LG_E_JSON (not a string
 * token), or lg_buf errors. */
int lg_json_unescape(const char *src, size_t n, lg_buf *out);

enum {
    LG_JSON_ESC_HTML = 1 /* escape < > & as \u003c \u003e \u0026, as Go's encoder does */
};

/* Append text (UTF-8) as a JSON string token, quotes included.  Escapes
 * " \ and control characters (\n \r \t \b \f, others \u00XX); U+2028 and
 * U+2029 as \u2028 \u2029 (as Go does); invalid UTF-8 becomes \ufffd.
 * flags: LG_JSON_ESC_*. */
int lg_json_escape(const char *text, size_t n, unsigned flags, lg_buf *out);

/* Does path match pattern?  Pattern segments: literal keys, `[N]`, `[*]`
 * (any index), `*` (any one key), and a final `**` (anything below, zero or
 * more segments).  Example: `messages[*].content[*].text`. */
int lg_json_path_match(const char *pattern, const char *path, size_t path_len);

#endif
