/* The span-aware JSON walker and JSON string escaping (see json.h).
 *
 * The walker runs on every guarded request body, which may be megabytes of
 * base64 inside one string, so the string scanner tests eight bytes at a
 * time for the only bytes that need attention (quote, backslash, control
 * characters, non-ASCII) and falls back to byte-wise checks only around
 * them.  Nesting is handled with an explicit stack of LG_JSON_DEPTH_CAP
 * frames, never recursion, so hostile input cannot exhaust the C stack of
 * whatever thread the shim happens to run on.  The path is kept in a fixed
 * buffer: each frame remembers the path length at its start, and appending
 * stops at the first character that does not fit (the "virtual" length
 * keeps counting, which is how `truncated` is known and how popping back
 * to a short prefix restores an exact path).  Escaping follows Go's
 * encoding/json byte for byte because Ollama's server writes that way and
 * a rewritten response should look like one it wrote. */
#include "json.h"

#include <stdint.h>
#include <string.h>

#include "error.h"

#define FAIL ((size_t)-1)

/* ==== Byte-level helpers ==== */

#define ONES  0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Non-zero when any byte of x is '"', '\\', below 0x20 or above 0x7f.
 * The zero-byte tricks are exact for "is there any", which is all we ask. */
static inline uint64_t word_special(uint64_t x)
{
    uint64_t q = x ^ (ONES * '"');
    uint64_t b = x ^ (ONES * '\\');
    uint64_t t = ((q - ONES) & ~q) | ((b - ONES) & ~b) | ((x - ONES * 0x20) & ~x) | x;
    return t & HIGHS;
}

/* The same plus '<', '>' and '&' (HTML-safe escaping). */
static inline uint64_t word_special_html(uint64_t x)
{
    uint64_t l = x ^ (ONES * '<');
    uint64_t g = x ^ (ONES * '>');
    uint64_t a = x ^ (ONES * '&');
    uint64_t t = ((l - ONES) & ~l) | ((g - ONES) & ~g) | ((a - ONES) & ~a);
    return (t & HIGHS) | word_special(x);
}

static inline uint64_t load64(const unsigned char *p)
{
    uint64_t x;
    memcpy(&x, p, sizeof x);
    return x;
}

/* Given m = word_special(load64(p)) != 0: how many bytes at p certainly
 * need no attention.  The lowest flagged byte is exact (the borrow that
 * may flag bytes wrongly only runs upwards from a true one), so on a
 * little-endian machine it is the count of trailing clear bytes; elsewhere
 * 0, and the caller goes byte by byte. */
static inline size_t plain_bytes(uint64_t m)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && \
    (defined(__GNUC__) || defined(__clang__))
    return (size_t)__builtin_ctzll(m) >> 3;
#else
    (void)m;
    return 0;
#endif
}

/* From s[i], past the whole words of bytes that need no attention (see
 * word_special), and into the word holding the next one as far as
 * plain_bytes can tell; the caller checks the rest byte by byte. */
static inline size_t skip_plain_words(const unsigned char *s, size_t i, size_t n)
{
    while (n - i >= 8) {
        uint64_t m = word_special(load64(s + i));
        if (m)
            return i + plain_bytes(m);
        i += 8;
    }
    return i;
}

static inline int is_ws(unsigned char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static inline int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Four hex digits already known to be valid. */
static unsigned hex4(const unsigned char *p)
{
    return (unsigned)(hexval(p[0]) << 12 | hexval(p[1]) << 8 | hexval(p[2]) << 4 | hexval(p[3]));
}

static size_t skip_ws(const unsigned char *s, size_t i, size_t n)
{
    while (i < n && is_ws(s[i]))
        i++;
    return i;
}

/* Length of the well-formed UTF-8 sequence whose lead byte (>= 0x80) is
 * s[i], per the Unicode table of well-formed byte sequences (no overlongs,
 * no surrogates, nothing above U+10FFFF); 0 with *bad at the offending
 * byte (n when the input ends inside the sequence). */
static size_t utf8_seq(const unsigned char *s, size_t i, size_t n, size_t *bad)
{
    unsigned c = s[i], lo = 0x80, hi = 0xBF;
    size_t k;
    if (c >= 0xC2 && c <= 0xDF) {
        k = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        k = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        k = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        *bad = i;
        return 0;
    }
    for (size_t j = 1; j < k; j++) {
        if (i + j >= n) {
            *bad = n;
            return 0;
        }
        unsigned d = s[i + j];
        if (d < lo || d > hi) {
            *bad = i + j;
            return 0;
        }
        lo = 0x80;
        hi = 0xBF;
    }
    return k;
}

/* Validate a string body starting just after its opening quote.  Returns
 * the index of the closing quote, or FAIL with *err at the offending byte. */
static size_t scan_string(const unsigned char *s, size_t i, size_t n, size_t *err)
{
    for (;;) {
        /* Long plain runs (base64 images, prose) go eight bytes a step. */
        i = skip_plain_words(s, i, n);
        if (i >= n) {
            *err = n;
            return FAIL;
        }
        unsigned char c = s[i];
        if (c == '"')
            return i;
        if (c == '\\') {
            if (i + 1 >= n) {
                *err = n;
                return FAIL;
            }
            switch (s[i + 1]) {
            case '"': case '\\': case '/': case 'b':
            case 'f': case 'n': case 'r': case 't':
                i += 2;
                continue;
            case 'u':
                for (size_t j = i + 2; j < i + 6; j++) {
                    if (j >= n) {
                        *err = n;
                        return FAIL;
                    }
                    if (hexval(s[j]) < 0) {
                        *err = j;
                        return FAIL;
                    }
                }
                i += 6;
                continue;
            default:
                *err = i + 1;
                return FAIL;
            }
        }
        if (c < 0x20) {
            *err = i;
            return FAIL;
        }
        if (c < 0x80) {
            i++;
            continue;
        }
        /* Non-Latin text is mostly multi-byte: stay byte-wise through it
         * rather than fail a word test per character. */
        do {
            size_t k = utf8_seq(s, i, n, err);
            if (!k)
                return FAIL;
            i += k;
        } while (i < n && s[i] >= 0x80);
    }
}

/* Decode the escape at s[i] (already validated; e bounds the string body)
 * into *cp; returns the bytes consumed.  A high surrogate followed by an
 * escaped low one combine; any other surrogate becomes U+FFFD. */
static size_t read_escape(const unsigned char *s, size_t i, size_t e, uint32_t *cp)
{
    switch (s[i + 1]) {
    case 'b': *cp = '\b'; return 2;
    case 'f': *cp = '\f'; return 2;
    case 'n': *cp = '\n'; return 2;
    case 'r': *cp = '\r'; return 2;
    case 't': *cp = '\t'; return 2;
    case 'u': break;
    default: *cp = s[i + 1]; return 2;
    }
    uint32_t u = hex4(s + i + 2);
    if (u >= 0xD800 && u <= 0xDBFF && i + 12 <= e && s[i + 6] == '\\' && s[i + 7] == 'u') {
        uint32_t lo = hex4(s + i + 8);
        if (lo >= 0xDC00 && lo <= 0xDFFF) {
            *cp = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
            return 12;
        }
    }
    *cp = (u >= 0xD800 && u <= 0xDFFF) ? 0xFFFD : u;
    return 6;
}

/* UTF-8 encoding of cp into out (may be NULL to count); returns its length. */
static size_t put_utf8(unsigned char *out, uint32_t cp)
{
    unsigned char t[4];
    size_t k;
    if (cp < 0x80) {
        t[0] = (unsigned char)cp;
        k = 1;
    } else if (cp < 0x800) {
        t[0] = (unsigned char)(0xC0 | cp >> 6);
        t[1] = (unsigned char)(0x80 | (cp & 0x3F));
        k = 2;
    } else if (cp < 0x10000) {
        t[0] = (unsigned char)(0xE0 | cp >> 12);
        t[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        t[2] = (unsigned char)(0x80 | (cp & 0x3F));
        k = 3;
    } else {
        t[0] = (unsigned char)(0xF0 | cp >> 18);
        t[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        t[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        t[3] = (unsigned char)(0x80 | (cp & 0x3F));
        k = 4;
    }
    if (out)
        memcpy(out, t, k);
    return k;
}

/* Decode the validated string body s[i..e) into out (NULL: just count). */
static size_t decode(const unsigned char *s, size_t i, size_t e, unsigned char *out)
{
    size_t o = 0;
    while (i < e) {
        const unsigned char *bs = memchr(s + i, '\\', e - i);
        size_t run = bs ? (size_t)(bs - (s + i)) : e - i;
        if (out && run)
            memcpy(out + o, s + i, run);
        o += run;
        i += run;
        if (i >= e)
            break;
        uint32_t cp;
        i += read_escape(s, i, e, &cp);
        o += put_utf8(out ? out + o : NULL, cp);
    }
    return o;
}

static size_t scan_number(const unsigned char *s, size_t i, size_t n, size_t *err)
{
    if (s[i] == '-')
        i++;
    if (i >= n) {
        *err = n;
        return FAIL;
    }
    if (s[i] == '0') {
        i++;
    } else if (s[i] >= '1' && s[i] <= '9') {
        while (i < n && is_digit(s[i]))
            i++;
    } else {
        *err = i;
        return FAIL;
    }
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || !is_digit(s[i])) {
            *err = i;
            return FAIL;
        }
        while (i < n && is_digit(s[i]))
            i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= n || !is_digit(s[i])) {
            *err = i;
            return FAIL;
        }
        while (i < n && is_digit(s[i]))
            i++;
    }
    return i;
}

static size_t scan_literal(const unsigned char *s, size_t i, size_t n, const char *word,
                           size_t *err)
{
    for (; *word; word++, i++) {
        if (i >= n || s[i] != (unsigned char)*word) {
            *err = i;
            return FAIL;
        }
    }
    return i;
}

/* ==== Walker ==== */

struct walker {
    char path[LG_JSON_MAX_PATH + 1];
    size_t len;   /* bytes of path held (complete characters only) */
    size_t vlen;  /* length the path would have without the cap */
    /* The stack: one frame per open container. */
    size_t start[LG_JSON_DEPTH_CAP];     /* offset of its '{' or '[' */
    size_t index[LG_JSON_DEPTH_CAP];     /* current array index */
    size_t svlen[LG_JSON_DEPTH_CAP];     /* vlen of the container's own path */
    uint16_t slen[LG_JSON_DEPTH_CAP];    /* len of the container's own path */
    unsigned char obj[LG_JSON_DEPTH_CAP]; /* 1 object, 0 array */
};

/* Append one character (or one ASCII byte).  Once something has not fit,
 * nothing more is held, so the held path is always a true prefix. */
static void path_put(struct walker *w, const void *p, size_t k)
{
    if (w->vlen == w->len && w->len + k <= LG_JSON_MAX_PATH) {
        memcpy(w->path + w->len, p, k);
        w->len += k;
    }
    w->vlen += k;
}

static void path_index(struct walker *w, size_t idx)
{
    char d[24];
    size_t k = sizeof d;
    d[--k] = ']';
    do {
        d[--k] = (char)('0' + idx % 10);
        idx /= 10;
    } while (idx);
    d[--k] = '[';
    for (; k < sizeof d; k++)
        path_put(w, d + k, 1);
}

/* Append the decoded text of the validated key body s[i..e). */
static void path_key(struct walker *w, const unsigned char *s, size_t i, size_t e)
{
    while (i < e) {
        if (w->vlen != w->len) {
            /* Already cut: only the virtual length matters. */
            w->vlen += decode(s, i, e, NULL);
            return;
        }
        unsigned char c = s[i];
        if (c == '\\') {
            unsigned char t[4];
            uint32_t cp;
            i += read_escape(s, i, e, &cp);
            path_put(w, t, put_utf8(t, cp));
        } else {
            const unsigned char *bs = memchr(s + i, '\\', e - i);
            size_t run = bs ? (size_t)(bs - (s + i)) : e - i;
            size_t cut = LG_JSON_MAX_PATH - w->len;
            if (run <= cut) {
                cut = run;
            } else {
                /* s[i + cut] is the first byte left out: do not split the
                 * character it continues. */
                while (cut > 0 && (s[i + cut] & 0xC0) == 0x80)
                    cut--;
            }
            memcpy(w->path + w->len, s + i, cut);
            w->len += cut;
            w->vlen += run;
            i += run;
        }
    }
}

static int report(struct walker *w, lg_json_cb cb, void *ud, int type, size_t start,
                  size_t end, int depth)
{
    if (!cb)
        return 0;
    w->path[w->len] = '\0';
    lg_json_value v = {
        .type = type,
        .start = start,
        .end = end,
        .path = w->path,
        .path_len = w->len,
        .depth = depth,
        .truncated = w->vlen != w->len,
    };
    return cb(ud, &v);
}

int lg_json_walk(const char *buf, size_t len, int max_depth, lg_json_cb cb, void *ud,
                 size_t *err_off)
{
    if ((!buf && len) || max_depth < 0)
        return LG_E_INVAL;
    if (max_depth == 0)
        max_depth = LG_JSON_MAX_DEPTH;
    if (max_depth > LG_JSON_DEPTH_CAP)
        max_depth = LG_JSON_DEPTH_CAP;

    const unsigned char *s = (const unsigned char *)buf;
    const size_t n = len;
    struct walker w;
    w.len = w.vlen = 0;
    w.path[0] = '\0';
    int sp = 0, rc = LG_E_JSON, type;
    size_t pos = 0, start, err = 0;

value:
    pos = skip_ws(s, pos, n);
    if (pos >= n) {
        err = n;
        goto fail;
    }
    start = pos;
    switch (s[pos]) {
    case '{':
    case '[':
        if (sp >= max_depth) {
            err = pos;
            rc = LG_E_JSON_DEPTH;
            goto fail;
        }
        w.start[sp] = pos;
        w.index[sp] = 0;
        w.slen[sp] = (uint16_t)w.len;
        w.svlen[sp] = w.vlen;
        w.obj[sp] = s[pos] == '{';
        sp++;
        pos = skip_ws(s, pos + 1, n);
        if (pos < n && s[pos] == (w.obj[sp - 1] ? '}' : ']')) {
            pos++;
            goto close;
        }
        if (w.obj[sp - 1])
            goto key;
        path_index(&w, 0);
        goto value;
    case '"':
        pos = scan_string(s, pos + 1, n, &err);
        if (pos == FAIL)
            goto fail;
        pos++;
        type = LG_JSON_STRING;
        break;
    case 't':
        pos = scan_literal(s, pos, n, "true", &err);
        type = LG_JSON_TRUE;
        break;
    case 'f':
        pos = scan_literal(s, pos, n, "false", &err);
        type = LG_JSON_FALSE;
        break;
    case 'n':
        pos = scan_literal(s, pos, n, "null", &err);
        type = LG_JSON_NULL;
        break;
    case '-': case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        pos = scan_number(s, pos, n, &err);
        type = LG_JSON_NUMBER;
        break;
    default:
        err = pos;
        goto fail;
    }
    if (pos == FAIL)
        goto fail;
    rc = report(&w, cb, ud, type, start, pos, sp);
    if (rc) {
        err = pos;
        goto fail;
    }
    rc = LG_E_JSON;

after:
    pos = skip_ws(s, pos, n);
    if (sp == 0) {
        if (pos != n) {
            err = pos;
            goto fail;
        }
        if (err_off)
            *err_off = 0;
        return LG_OK;
    }
    if (pos >= n) {
        err = n;
        goto fail;
    }
    if (s[pos] == ',') {
        pos++;
        w.len = w.slen[sp - 1];
        w.vlen = w.svlen[sp - 1];
        if (w.obj[sp - 1])
            goto key;
        path_index(&w, ++w.index[sp - 1]);
        goto value;
    }
    if (s[pos] != (w.obj[sp - 1] ? '}' : ']')) {
        err = pos;
        goto fail;
    }
    pos++;

close:
    sp--;
    w.len = w.slen[sp];
    w.vlen = w.svlen[sp];
    rc = report(&w, cb, ud, w.obj[sp] ? LG_JSON_OBJECT : LG_JSON_ARRAY, w.start[sp], pos, sp);
    if (rc) {
        err = pos;
        goto fail;
    }
    rc = LG_E_JSON;
    goto after;

key:
    pos = skip_ws(s, pos, n);
    if (pos >= n || s[pos] != '"') {
        err = pos;
        goto fail;
    }
    start = pos;
    pos = scan_string(s, pos + 1, n, &err);
    if (pos == FAIL)
        goto fail;
    if (sp > 1)
        path_put(&w, ".", 1);
    path_key(&w, s, start + 1, pos);
    pos = skip_ws(s, pos + 1, n);
    if (pos >= n || s[pos] != ':') {
        err = pos;
        goto fail;
    }
    pos++;
    goto value;

fail:
    if (err_off)
        *err_off = err;
    return rc;
}

/* ==== Unescape ==== */

static int reserve_err(const lg_buf *b, size_t need)
{
    return need > b->max - b->len ? LG_E_LIMIT : LG_E_NOMEM;
}

int lg_json_unescape(const char *src, size_t n, lg_buf *out)
{
    const unsigned char *s = (const unsigned char *)src;
    size_t err;
    if (!s || n < 2 || s[0] != '"' || scan_string(s, 1, n, &err) != n - 1)
        return LG_E_JSON;
    /* Decoding never grows text, so the body length is enough room; only
     * near the buffer's cap is the exact size worth a counting pass. */
    size_t need = n - 2;
    if (out->len > out->max || need > out->max - out->len)
        need = decode(s, 1, n - 1, NULL);
    if (!need)
        return LG_OK;
    unsigned char *p = (unsigned char *)lg_buf_reserve(out, need);
    if (!p)
        return reserve_err(out, need);
    lg_buf_commit(out, decode(s, 1, n - 1, p));
    return LG_OK;
}

/* ==== Escape ==== */

static const char hexdig[] = "0123456789abcdef";

/* Write the token for s[0..n) into out (NULL: just count); its length. */
static size_t escape_into(const unsigned char *s, size_t n, int html, char *out)
{
    size_t o = 0, i = 0;
#define PUT(str, k)                          \
    do {                                     \
        if (out)                             \
            memcpy(out + o, (str), (k));     \
        o += (k);                            \
    } while (0)
    PUT("\"", 1);
    while (i < n) {
        size_t j = i;
        if (html) {
            while (n - j >= 8 && !word_special_html(load64(s + j)))
                j += 8;
        } else {
            while (n - j >= 8 && !word_special(load64(s + j)))
                j += 8;
        }
        while (j < n && s[j] >= 0x20 && s[j] < 0x80 && s[j] != '"' && s[j] != '\\' &&
               !(html && (s[j] == '<' || s[j] == '>' || s[j] == '&')))
            j++;
        PUT(s + i, j - i);
        if (j >= n)
            break;
        i = j;
        unsigned char c = s[i];
        if (c < 0x80) {
            char e[6] = {'\\', 'u', '0', '0', hexdig[c >> 4], hexdig[c & 15]};
            switch (c) {
            case '"': PUT("\\\"", 2); break;
            case '\\': PUT("\\\\", 2); break;
            case '\b': PUT("\\b", 2); break;
            case '\f': PUT("\\f", 2); break;
            case '\n': PUT("\\n", 2); break;
            case '\r': PUT("\\r", 2); break;
            case '\t': PUT("\\t", 2); break;
            default: PUT(e, 6); break;
            }
            i++;
            continue;
        }
        size_t bad, k = utf8_seq(s, i, n, &bad);
        if (!k) {
            /* Go replaces each byte that does not start a valid sequence. */
            PUT("\\ufffd", 6);
            i++;
        } else if (k == 3 && c == 0xE2 && s[i + 1] == 0x80 && (s[i + 2] & 0xFE) == 0xA8) {
            PUT(s[i + 2] == 0xA8 ? "\\u2028" : "\\u2029", 6);
            i += 3;
        } else {
            PUT(s + i, k);
            i += k;
        }
    }
    PUT("\"", 1);
#undef PUT
    return o;
}

size_t lg__json_plain_len(const char *text, size_t n)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = skip_plain_words(s, 0, n);
    while (i < n && s[i] >= 0x20 && s[i] < 0x80 && s[i] != '"' && s[i] != '\\')
        i++;
    return i;
}

int lg_json_escape(const char *text, size_t n, unsigned flags, lg_buf *out)
{
    if (!text && n)
        return LG_E_INVAL;
    const unsigned char *s = (const unsigned char *)(text ? text : "");
    int html = (flags & LG_JSON_ESC_HTML) != 0;
    size_t need = escape_into(s, n, html, NULL);
    char *p = lg_buf_reserve(out, need);
    if (!p)
        return reserve_err(out, need);
    lg_buf_commit(out, escape_into(s, n, html, p));
    return LG_OK;
}

/* ==== Path patterns ==== */

int lg_json_path_match(const char *pattern, const char *path, size_t path_len)
{
    if (!pattern || (!path && path_len))
        return 0;
    const char *p = pattern;
    size_t i = 0;
    int first = 1;
    for (;;) {
        if (first && p[0] == '*' && p[1] == '*' && p[2] == '\0')
            return 1;
        if (!first && p[0] == '.' && p[1] == '*' && p[2] == '*' && p[3] == '\0')
            return i == path_len || path[i] == '.' || path[i] == '[';
        if (*p == '\0')
            return i == path_len;
        if (*p == '[') {
            const char *q = strchr(p, ']');
            if (!q || i >= path_len || path[i] != '[')
                return 0;
            if (q - p == 2 && p[1] == '*') {
                size_t j = i + 1;
                while (j < path_len && is_digit((unsigned char)path[j]))
                    j++;
                if (j == i + 1 || j >= path_len || path[j] != ']')
                    return 0;
                i = j + 1;
            } else {
                size_t k = (size_t)(q - p) + 1;
                if (path_len - i < k || memcmp(path + i, p, k) != 0)
                    return 0;
                i += k;
            }
            p = q + 1;
            first = 0;
            continue;
        }
        if (!first) {
            if (*p != '.' || i >= path_len || path[i] != '.')
                return 0;
            p++;
            i++;
        }
        size_t kl = strcspn(p, ".[");
        if (kl == 2 && p[0] == '*' && p[1] == '*')
            return 0; /* `**` not at the end */
        if (kl == 1 && p[0] == '*') {
            size_t j = i;
            while (j < path_len && path[j] != '.' && path[j] != '[')
                j++;
            if (j == i)
                return 0;
            i = j;
        } else {
            if (path_len - i < kl || memcmp(path + i, p, kl) != 0)
                return 0;
            i += kl;
        }
        p += kl;
        first = 0;
    }
}
