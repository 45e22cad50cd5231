/* Incremental HTTP/1.1 head parser, body decoder and the two writers the
 * engine needs (head rewrite, chunk framing); the contract is in http.h.
 *
 * The head parser is stateless: the caller hands it everything received so
 * far, and it scans from the first byte each time (a head is at most
 * LG_HTTP_MAX_HEAD bytes, so O(n) per call is cheap).  It validates strictly
 * in byte order and checks each field's meaning (Content-Length,
 * Transfer-Encoding, ...) as soon as the field's line is complete, so an
 * error on a prefix is exactly the error the whole input gives, at the same
 * offset, whatever way the bytes were split.  It never looks at buf[len]:
 * every read is preceded by a bounds check (the NEED macro).
 *
 * The body decoder is a byte-driven state machine over the raw body; the data
 * of a chunk is passed to on_data as large slices, never copied.  Only
 * trailers are kept (bounded), so a caller can hand them on. */
#include "http.h"

#include <string.h>

#include "error.h"

#define MAX_LENGTH ((uint64_t)INT64_MAX)

/* ==== Character classes ==== */

/* tchar (RFC 9110 §5.6.2): what a method, a field name or a coding is made
 * of.  A table, because field names are most of a head's bytes. */
static const unsigned char tchar_map[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1,
    ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
    ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
    ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
    ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
};

static int is_tchar(unsigned char c)
{
    return tchar_map[c];
}

/* field-vchar and obs-text: what a field value, a reason phrase or a chunk
 * extension may hold besides SP and HTAB.  DEL and C0 controls are refused. */
static int is_vchar(unsigned char c)
{
    return (c > 0x20 && c < 0x7f) || c >= 0x80;
}

/* ASCII case-insensitive equality of two bytes known to differ: only a
 * letter and its other case qualify. */
static int case_pair(unsigned char x, unsigned char y)
{
    return (x ^ y) == 0x20 && (unsigned)((x | 0x20) - 'a') < 26;
}

/* Does a[0..alen) equal the NUL-terminated b, ignoring ASCII case?  Walks
 * both at once, without measuring b first: every field of every head is
 * compared with several names, and most differ early. */
static int ieq(const char *a, size_t alen, const char *b)
{
    for (size_t i = 0; i < alen; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x != y && (!y || !case_pair(x, y)))
            return 0;
        if (!y)
            return 0;
    }
    return b[alen] == '\0';
}

/* The same with b's length known: a different length answers at once. */
static int ieqn(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return 0;
    for (size_t i = 0; i < alen; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x != y && !case_pair(x, y))
            return 0;
    }
    return 1;
}

/* A field name against a literal. */
#define NAME_IS(f, lit) ieqn((f)->name, (f)->name_len, (lit), sizeof(lit) - 1)

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Iterate the elements of a comma-separated list (RFC 9110 §5.6.1): returns
 * 1 with [*el, *el + *ellen) trimmed of OWS (possibly empty), 0 at the end.
 * *pos is the cursor, 0 at the start. */
static int list_next(const char *v, size_t vlen, size_t *pos, const char **el, size_t *ellen)
{
    size_t i = *pos;
    if (i > vlen)
        return 0;
    size_t s = i;
    while (i < vlen && v[i] != ',')
        i++;
    size_t e = i;
    *pos = i + 1;
    while (s < e && is_ows(v[s]))
        s++;
    while (e > s && is_ows(v[e - 1]))
        e--;
    *el = v + s;
    *ellen = e - s;
    return 1;
}

/* ==== Head parser ==== */

/* What the fields said, gathered as their lines complete. */
typedef struct head_state {
    int cl_seen;
    uint64_t cl;
    int te_seen;
    int te_chunked;       /* the last coding so far is chunked */
    int te_other;         /* a coding other than chunked */
    size_t te_last;       /* offset of the last coding */
    int conn_close, conn_keep_alive;
} head_state;

/* Content-Length: 1*DIGIT, or a list of identical such values (RFC 9110
 * §8.6).  Returns 0 or an error with *off set. */
static int field_content_length(head_state *st, const char *buf, size_t vs, size_t ve, size_t *off)
{
    size_t pos = 0, vlen = ve - vs;
    const char *v = buf + vs, *el;
    size_t ellen;
    while (list_next(v, vlen, &pos, &el, &ellen)) {
        size_t eo = (size_t)(el - buf);
        if (ellen == 0) {
            *off = eo;
            return LG_E_HTTP_LENGTH;
        }
        uint64_t n = 0;
        for (size_t k = 0; k < ellen; k++) {
            unsigned char c = (unsigned char)el[k];
            if (c < '0' || c > '9') {
                *off = eo + k;
                return LG_E_HTTP_LENGTH;
            }
            if (n > (MAX_LENGTH - (uint64_t)(c - '0')) / 10) {
                *off = eo + k;
                return LG_E_HTTP_OVERFLOW;
            }
            n = n * 10 + (uint64_t)(c - '0');
        }
        if (st->cl_seen && n != st->cl) {
            *off = eo;
            return LG_E_HTTP_LENGTH;
        }
        st->cl_seen = 1;
        st->cl = n;
    }
    return 0;
}

/* Transfer-Encoding: a list of codings; chunked, when present, must be last
 * and only once (RFC 9112 §6.1).  Parameters are refused: no coding we
 * could decode has any, and chunked must not have them. */
static int field_transfer_encoding(head_state *st, const char *buf, size_t vs, size_t ve, size_t *off)
{
    size_t pos = 0, vlen = ve - vs, n = 0;
    const char *v = buf + vs, *el;
    size_t ellen;
    while (list_next(v, vlen, &pos, &el, &ellen)) {
        size_t eo = (size_t)(el - buf);
        if (ellen == 0)
            continue;
        for (size_t k = 0; k < ellen; k++) {
            if (!is_tchar((unsigned char)el[k])) {
                *off = eo + k;
                return LG_E_HTTP_TE;
            }
        }
        if (st->te_chunked) {
            *off = eo;
            return LG_E_HTTP_TE;
        }
        if (ieq(el, ellen, "chunked"))
            st->te_chunked = 1;
        else
            st->te_other = 1;
        st->te_last = eo;
        n++;
    }
    if (n == 0) {
        *off = vs;
        return LG_E_HTTP_TE;
    }
    return 0;
}

static int list_has(const char *v, size_t vlen, const char *token)
{
    size_t pos = 0, ellen;
    const char *el;
    while (list_next(v, vlen, &pos, &el, &ellen))
        if (ieq(el, ellen, token))
            return 1;
    return 0;
}

/* The meaning of one complete field line.  name at offset no. */
static int field_semantics(lg_http_head *h, head_state *st, const char *buf, size_t no,
                           const lg_http_header *f, size_t *off)
{
    size_t vs = (size_t)(f->value - buf), ve = vs + f->value_len;
    int rc;
    if (NAME_IS(f, "content-length")) {
        if (st->te_seen) {
            *off = no;
            return LG_E_HTTP_SMUGGLE;
        }
        if ((rc = field_content_length(st, buf, vs, ve, off)) != 0)
            return rc;
    } else if (NAME_IS(f, "transfer-encoding")) {
        if (st->cl_seen) {
            *off = no;
            return LG_E_HTTP_SMUGGLE;
        }
        /* RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means faulty framing. */
        if (h->minor == 0) {
            *off = no;
            return LG_E_HTTP_TE;
        }
        if ((rc = field_transfer_encoding(st, buf, vs, ve, off)) != 0)
            return rc;
        st->te_seen = 1;
    } else if (NAME_IS(f, "connection")) {
        if (list_has(f->value, f->value_len, "close"))
            st->conn_close = 1;
        if (list_has(f->value, f->value_len, "keep-alive"))
            st->conn_keep_alive = 1;
    } else if (NAME_IS(f, "expect")) {
        if (h->is_request && ieq(f->value, f->value_len, "100-continue"))
            h->expect_continue = 1;
    } else if (NAME_IS(f, "upgrade")) {
        if (h->is_request)
            h->upgrade = 1;
    } else if (NAME_IS(f, "content-encoding")) {
        size_t pos = 0, ellen;
        const char *el;
        while (list_next(f->value, f->value_len, &pos, &el, &ellen))
            if (ellen && !ieq(el, ellen, "identity"))
                h->encoded = 1;
    }
    return 0;
}

#define NEED()                 \
    do {                       \
        if (i >= n)            \
            goto incomplete;   \
    } while (0)
#define FAIL(code, at)         \
    do {                       \
        rc = (code);           \
        eo = (at);             \
        goto fail;             \
    } while (0)

/* "HTTP/1.x" at buf[i]; on success sets h->minor and advances *pi. */
static int parse_version(const char *buf, size_t n, size_t *pi, lg_http_head *h, size_t *off)
{
    static const char name[] = "HTTP/";
    size_t i = *pi;
    for (size_t k = 0; k < 5; k++, i++) {
        if (i >= n)
            return LG_E_NEEDMORE;
        if (buf[i] != name[k]) {
            *off = i;
            return LG_E_HTTP_LINE;
        }
    }
    for (int part = 0; part < 3; part++, i++) {
        if (i >= n)
            return LG_E_NEEDMORE;
        char c = buf[i];
        if (part == 1) {
            if (c != '.') {
                *off = i;
                return LG_E_HTTP_LINE;
            }
            continue;
        }
        if (c < '0' || c > '9') {
            *off = i;
            return LG_E_HTTP_LINE;
        }
        /* A well-formed version we do not speak (HTTP/2.0 preface, 1.2):
         * said at once, so that a prefix gives the same answer. */
        if ((part == 0 && c != '1') || (part == 2 && c > '1')) {
            *off = i;
            return LG_E_HTTP_VERSION;
        }
        if (part == 2)
            h->minor = c - '0';
    }
    *pi = i;
    return 0;
}

/* CRLF or bare LF at buf[i].  0 and *pi past it, NEEDMORE, or code. */
static int parse_eol(const char *buf, size_t n, size_t *pi, int code, size_t *off)
{
    size_t i = *pi;
    if (i >= n)
        return LG_E_NEEDMORE;
    if (buf[i] == '\r') {
        if (i + 1 >= n)
            return LG_E_NEEDMORE;
        if (buf[i + 1] != '\n') {
            *off = i;
            return code;
        }
        *pi = i + 2;
        return 0;
    }
    if (buf[i] == '\n') {
        *pi = i + 1;
        return 0;
    }
    *off = i;
    return code;
}

static int parse_head(const char *buf, size_t len, int is_request, const char *req_method,
                      size_t req_method_len, lg_http_head *h, size_t *err_off)
{
    size_t n = len < LG_HTTP_MAX_HEAD ? len : LG_HTTP_MAX_HEAD;
    size_t i = 0, eo = 0;
    int rc;
    head_state st;
    memset(&st, 0, sizeof st);

    h->raw = buf;
    h->is_request = is_request;
    h->method = h->target = h->reason = NULL;
    h->method_len = h->target_len = h->reason_len = 0;
    h->minor = 0;
    h->status = 0;
    h->nheaders = 0;
    h->head_len = 0;
    h->body_kind = LG_BODY_NONE;
    h->content_length = 0;
    h->keep_alive = 0;
    h->expect_continue = 0;
    h->upgrade = 0;
    h->encoded = 0;
    h->interim = 0;

    if (is_request) {
        /* RFC 9112 §2.2: ignore empty lines before the request-line. */
        for (;;) {
            NEED();
            if (buf[i] == '\r') {
                if (i + 1 >= n)
                    goto incomplete;
                if (buf[i + 1] != '\n')
                    FAIL(LG_E_HTTP_LINE, i);
                i += 2;
            } else if (buf[i] == '\n') {
                i++;
            } else {
                break;
            }
        }
        size_t s = i;
        for (;; i++) {
            NEED();
            if (!is_tchar((unsigned char)buf[i]))
                break;
        }
        if (i == s || buf[i] != ' ')
            FAIL(LG_E_HTTP_LINE, i);
        h->method = buf + s;
        h->method_len = i - s;
        s = ++i;
        for (;; i++) {
            NEED();
            if (!is_vchar((unsigned char)buf[i]))
                break;
        }
        if (i == s || buf[i] != ' ')
            FAIL(LG_E_HTTP_LINE, i);
        h->target = buf + s;
        h->target_len = i - s;
        i++;
        if ((rc = parse_version(buf, n, &i, h, &eo)) != 0) {
            if (rc == LG_E_NEEDMORE)
                goto incomplete;
            goto fail;
        }
        if ((rc = parse_eol(buf, n, &i, LG_E_HTTP_LINE, &eo)) != 0) {
            if (rc == LG_E_NEEDMORE)
                goto incomplete;
            goto fail;
        }
    } else {
        if ((rc = parse_version(buf, n, &i, h, &eo)) != 0) {
            if (rc == LG_E_NEEDMORE)
                goto incomplete;
            goto fail;
        }
        NEED();
        if (buf[i] != ' ')
            FAIL(LG_E_HTTP_LINE, i);
        i++;
        int status = 0;
        for (int k = 0; k < 3; k++, i++) {
            NEED();
            if (buf[i] < '0' || buf[i] > '9' || (k == 0 && buf[i] == '0'))
                FAIL(LG_E_HTTP_LINE, i);
            status = status * 10 + (buf[i] - '0');
        }
        h->status = status;
        NEED();
        size_t s = i;
        if (buf[i] == ' ') {
            /* reason-phrase = *( HTAB / SP / VCHAR / obs-text ) */
            s = ++i;
            for (;; i++) {
                NEED();
                unsigned char c = (unsigned char)buf[i];
                if (!is_vchar(c) && c != ' ' && c != '\t')
                    break;
            }
        }
        /* Else no reason at all ("HTTP/1.1 200\r\n"): sent by some servers,
         * accepted by Go's and curl's clients. */
        h->reason = buf + s;
        h->reason_len = i - s;
        if ((rc = parse_eol(buf, n, &i, LG_E_HTTP_LINE, &eo)) != 0) {
            if (rc == LG_E_NEEDMORE)
                goto incomplete;
            goto fail;
        }
    }

    /* ==== Field lines ==== */
    for (;;) {
        NEED();
        char c = buf[i];
        if (c == '\r' || c == '\n') {
            if ((rc = parse_eol(buf, n, &i, LG_E_HTTP_HEADER, &eo)) != 0) {
                if (rc == LG_E_NEEDMORE)
                    goto incomplete;
                goto fail;
            }
            break;
        }
        /* A line starting with whitespace is obs-fold (or whitespace before
         * the first field): refused, RFC 9112 §5.2 and §2.2. */
        if (c == ' ' || c == '\t')
            FAIL(LG_E_HTTP_HEADER, i);
        if (h->nheaders == LG_HTTP_MAX_HEADERS)
            FAIL(LG_E_HTTP_TOO_MANY_HEADERS, i);
        size_t ns = i;
        for (;; i++) {
            NEED();
            if (!is_tchar((unsigned char)buf[i]))
                break;
        }
        /* Whitespace between name and colon is a smuggling vector (RFC 9112
         * §5.1: MUST reject). */
        if (i == ns || buf[i] != ':')
            FAIL(LG_E_HTTP_HEADER, i);
        size_t ne = i++;
        for (;; i++) {
            NEED();
            if (!is_ows(buf[i]))
                break;
        }
        size_t vs = i, ve = i;
        for (;;) {
            NEED();
            unsigned char v = (unsigned char)buf[i];
            if (is_vchar(v)) {
                ve = ++i;
            } else if (is_ows((char)v)) {
                i++;
            } else if (v == '\r' || v == '\n') {
                if ((rc = parse_eol(buf, n, &i, LG_E_HTTP_HEADER, &eo)) != 0) {
                    if (rc == LG_E_NEEDMORE)
                        goto incomplete;
                    goto fail;
                }
                break;
            } else {
                FAIL(LG_E_HTTP_HEADER, i);
            }
        }
        lg_http_header *f = &h->headers[h->nheaders++];
        f->name = buf + ns;
        f->name_len = ne - ns;
        f->value = buf + vs;
        f->value_len = ve - vs;
        if ((rc = field_semantics(h, &st, buf, ns, f, &eo)) != 0)
            goto fail;
    }
    h->head_len = i;

    /* ==== Framing (RFC 9112 §6.3) ==== */
    int ka = h->minor >= 1 ? !st.conn_close : (st.conn_keep_alive && !st.conn_close);
    if (st.te_seen) {
        h->encoded |= st.te_other;
        if (is_request && !st.te_chunked)
            FAIL(LG_E_HTTP_TE, st.te_last);
    }
    if (is_request) {
        if (st.te_seen) {
            h->body_kind = LG_BODY_CHUNKED;
        } else if (st.cl_seen) {
            h->body_kind = LG_BODY_LENGTH;
            h->content_length = st.cl;
        }
    } else {
        int s = h->status;
        int head = req_method && ieq(req_method, req_method_len, "HEAD");
        int connect = req_method && ieq(req_method, req_method_len, "CONNECT");
        if (st.cl_seen)
            h->content_length = st.cl;
        if (s == 101 || (connect && s >= 200 && s < 300)) {
            /* The connection leaves HTTP: nothing after this head is ours to
             * frame. */
            h->upgrade = 1;
            ka = 0;
        } else if (s < 200) {
            h->interim = 1;
        } else if (head || s == 204 || s == 304) {
            /* no body, whatever the fields say */
        } else if (st.te_seen) {
            if (st.te_chunked) {
                h->body_kind = LG_BODY_CHUNKED;
            } else {
                h->body_kind = LG_BODY_CLOSE;
                ka = 0;
            }
        } else if (st.cl_seen) {
            h->body_kind = LG_BODY_LENGTH;
        } else {
            h->body_kind = LG_BODY_CLOSE;
            ka = 0;
        }
    }
    h->keep_alive = ka;
    return (int)i;

incomplete:
    if (len >= LG_HTTP_MAX_HEAD) {
        rc = LG_E_HTTP_HEAD_TOO_LARGE;
        eo = LG_HTTP_MAX_HEAD;
        goto fail;
    }
    return LG_E_NEEDMORE;

fail:
    if (err_off)
        *err_off = eo;
    return rc;
}

#undef NEED
#undef FAIL

int lg_http_parse_request(const char *buf, size_t len, lg_http_head *h, size_t *err_off)
{
    return parse_head(buf, len, 1, NULL, 0, h, err_off);
}

int lg_http_parse_response(const char *buf, size_t len, const char *req_method,
                           size_t req_method_len, lg_http_head *h, size_t *err_off)
{
    return parse_head(buf, len, 0, req_method, req_method_len, h, err_off);
}

const lg_http_header *lg_http_find(const lg_http_head *h, const char *name)
{
    size_t nl = strlen(name);
    for (size_t k = 0; k < h->nheaders; k++)
        if (ieqn(h->headers[k].name, h->headers[k].name_len, name, nl))
            return &h->headers[k];
    return NULL;
}

int lg_http_has_token(const lg_http_head *h, const char *name, const char *token)
{
    for (size_t k = 0; k < h->nheaders; k++) {
        const lg_http_header *f = &h->headers[k];
        if (ieq(f->name, f->name_len, name) && list_has(f->value, f->value_len, token))
            return 1;
    }
    return 0;
}

/* ==== Body decoder ==== */

enum {
    B_START,      /* NONE, or LENGTH not yet fed */
    B_DATA,       /* LENGTH / CLOSE data */
    C_SIZE,       /* chunk-size hex digits */
    C_SIZE_WS,    /* whitespace after the size */
    C_EXT,        /* chunk extension, ignored */
    C_SIZE_LF,    /* LF of the size line */
    C_DATA,
    C_DATA_CR,
    C_DATA_LF,
    C_TR_START,   /* start of a trailer line or of the final CRLF */
    C_TR_NAME,
    C_TR_VALUE,
    C_TR_LF,
    C_FINAL_LF,
    B_DONE
};

void lg_http_body_init(lg_http_body *d, const lg_http_head *h)
{
    d->kind = h->body_kind;
    d->remaining = h->body_kind == LG_BODY_LENGTH ? h->content_length : 0;
    d->err = 0;
    d->offset = 0;
    d->size_acc = 0;
    d->digits = 0;
    d->line_len = 0;
    d->trailer_len = 0;
    switch (h->body_kind) {
    case LG_BODY_CHUNKED: d->state = C_SIZE; break;
    case LG_BODY_CLOSE: d->state = B_DATA; break;
    case LG_BODY_LENGTH: d->state = d->remaining ? B_DATA : B_START; break;
    default: d->kind = LG_BODY_NONE; d->state = B_START; break;
    }
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long lg_http_body_feed(lg_http_body *d, const char *p, size_t n,
                       const lg_http_body_cb *cb, void *ud)
{
    if (d->err)
        return d->err;
    uint64_t base = d->offset;
    size_t i = 0;
    int rc = 0;

#define BFAIL(code)                      \
    do {                                 \
        d->err = (code);                 \
        d->offset = base + i;            \
        return d->err;                   \
    } while (0)
    /* Bytes [0, i) are consumed before any callback runs, so a callback
     * that stops us leaves the decoder ready for p + i. */
#define CALL(expr)                       \
    do {                                 \
        d->offset = base + i;            \
        if ((rc = (expr)) != 0)          \
            return rc;                   \
    } while (0)

    if (d->state == B_DONE)
        return 0;
    if (d->state == B_START) {
        d->state = B_DONE;
        if (cb && cb->on_end)
            CALL(cb->on_end(ud, NULL, 0));
        return 0;
    }
    while (i < n) {
        unsigned char c = (unsigned char)p[i];
        switch (d->state) {
        case B_DATA: {
            size_t k = n - i;
            if (d->kind == LG_BODY_LENGTH && d->remaining < k)
                k = (size_t)d->remaining;
            const char *s = p + i;
            i += k;
            if (d->kind == LG_BODY_LENGTH) {
                d->remaining -= k;
                /* The end is pending until on_end is delivered, also when
                 * on_data stops us: the next call delivers it. */
                if (d->remaining == 0)
                    d->state = B_START;
            }
            if (cb && cb->on_data)
                CALL(cb->on_data(ud, s, k));
            if (d->state == B_START) {
                d->state = B_DONE;
                if (cb && cb->on_end)
                    CALL(cb->on_end(ud, NULL, 0));
                d->offset = base + i;
                return (long)i;
            }
            break;
        }
        case C_SIZE:
        case C_SIZE_WS:
        case C_EXT:
            if (++d->line_len > LG_HTTP_MAX_CHUNK_LINE)
                BFAIL(LG_E_HTTP_CHUNK);
            if (d->state == C_SIZE && hexval(c) >= 0) {
                if (d->digits == 16)
                    BFAIL(LG_E_HTTP_OVERFLOW);
                uint64_t v = (d->size_acc << 4) | (uint64_t)hexval(c);
                if (v > MAX_LENGTH)
                    BFAIL(LG_E_HTTP_OVERFLOW);
                d->size_acc = v;
                d->digits++;
            } else if (d->state == C_SIZE && d->digits == 0) {
                BFAIL(LG_E_HTTP_CHUNK);
            } else if (c == '\r') {
                d->state = C_SIZE_LF;
            } else if (d->state == C_EXT) {
                /* Extensions are ignored, but only printable bytes pass:
                 * a bare LF or CR here is how parsers get desynchronised. */
                if (!is_vchar(c) && c != ' ' && c != '\t')
                    BFAIL(LG_E_HTTP_CHUNK);
            } else if (c == ';') {
                d->state = C_EXT;
            } else if (c == ' ' || c == '\t') {
                d->state = C_SIZE_WS; /* BWS; Go trims it too */
            } else {
                BFAIL(LG_E_HTTP_CHUNK);
            }
            i++;
            break;
        case C_SIZE_LF:
            if (c != '\n')
                BFAIL(LG_E_HTTP_CHUNK);
            i++;
            d->line_len = 0;
            d->digits = 0;
            if (d->size_acc == 0) {
                d->state = C_TR_START;
                d->trailer_len = 0;
            } else {
                d->remaining = d->size_acc;
                d->size_acc = 0;
                d->state = C_DATA;
            }
            break;
        case C_DATA: {
            size_t k = n - i;
            if (d->remaining < k)
                k = (size_t)d->remaining;
            const char *s = p + i;
            i += k;
            d->remaining -= k;
            if (d->remaining == 0)
                d->state = C_DATA_CR;
            if (cb && cb->on_data)
                CALL(cb->on_data(ud, s, k));
            break;
        }
        case C_DATA_CR:
            if (c != '\r')
                BFAIL(LG_E_HTTP_CHUNK);
            i++;
            d->state = C_DATA_LF;
            break;
        case C_DATA_LF:
            if (c != '\n')
                BFAIL(LG_E_HTTP_CHUNK);
            i++;
            d->state = C_SIZE;
            if (cb && cb->on_chunk_end)
                CALL(cb->on_chunk_end(ud));
            break;
        case C_TR_START:
        case C_TR_NAME:
        case C_TR_VALUE:
        case C_TR_LF:
            if (d->state == C_TR_START && c == '\r') {
                d->state = C_FINAL_LF;
                i++;
                break;
            }
            if (d->state == C_TR_LF) {
                if (c != '\n')
                    BFAIL(LG_E_HTTP_CHUNK);
                d->state = C_TR_START;
            } else if (d->state == C_TR_VALUE) {
                if (c == '\r')
                    d->state = C_TR_LF;
                else if (!is_vchar(c) && c != ' ' && c != '\t')
                    BFAIL(c == '\n' ? LG_E_HTTP_CHUNK : LG_E_HTTP_HEADER);
            } else if (is_tchar(c)) {
                d->state = C_TR_NAME;
            } else if (d->state == C_TR_NAME && c == ':') {
                d->state = C_TR_VALUE;
            } else {
                BFAIL(c == '\n' ? LG_E_HTTP_CHUNK : LG_E_HTTP_HEADER);
            }
            if (d->trailer_len == sizeof d->trailer)
                BFAIL(LG_E_HTTP_HEAD_TOO_LARGE);
            d->trailer[d->trailer_len++] = (char)c;
            i++;
            break;
        case C_FINAL_LF:
            if (c != '\n')
                BFAIL(LG_E_HTTP_CHUNK);
            i++;
            d->state = B_DONE;
            if (cb && cb->on_end)
                CALL(cb->on_end(ud, d->trailer, d->trailer_len));
            d->offset = base + i;
            return (long)i;
        default:
            BFAIL(LG_E_STATE);
        }
    }
    d->offset = base + i;
    return (long)i;
#undef BFAIL
#undef CALL
}

int lg_http_body_eof(lg_http_body *d, const lg_http_body_cb *cb, void *ud)
{
    if (d->err)
        return d->err;
    if (d->state == B_DONE)
        return LG_OK;
    if (d->state == B_START || (d->state == B_DATA && d->kind == LG_BODY_CLOSE)) {
        d->state = B_DONE;
        if (cb && cb->on_end)
            return cb->on_end(ud, NULL, 0);
        return LG_OK;
    }
    d->err = LG_E_HTTP_EOF;
    return d->err;
}

int lg_http_body_done(const lg_http_body *d)
{
    return d->state == B_DONE;
}

/* ==== Writing ==== */

static int edit_valid(const lg_http_edit *e)
{
    if (!e->name || !*e->name)
        return 0;
    for (const char *s = e->name; *s; s++)
        if (!is_tchar((unsigned char)*s))
            return 0;
    if (e->value)
        for (const unsigned char *s = (const unsigned char *)e->value; *s; s++)
            if (!is_vchar(*s) && *s != ' ' && *s != '\t')
                return 0;
    return 1;
}

/* "name: value" and the line end, without printf (every forwarded request
 * and every re-lengthed answer goes through here). */
static int put_field(lg_buf *out, const char *name, size_t name_len, const char *value, int crlf)
{
    size_t vl = strlen(value), n = name_len + 2 + vl + (crlf ? 2 : 1);
    char *p = lg_buf_reserve(out, n);
    if (!p)
        return n > out->max || out->len > out->max - n ? LG_E_LIMIT : LG_E_NOMEM;
    memcpy(p, name, name_len);
    p += name_len;
    *p++ = ':';
    *p++ = ' ';
    memcpy(p, value, vl);
    p += vl;
    if (crlf)
        *p++ = '\r';
    *p = '\n';
    lg_buf_commit(out, n);
    return LG_OK;
}

int lg_http_head_rewrite(const lg_http_head *h, const lg_http_edit *edits,
                         size_t nedits, lg_buf *out)
{
    if (!h->raw || h->head_len < 2)
        return LG_E_INVAL;
    for (size_t k = 0; k < nedits; k++)
        if (!edit_valid(&edits[k]))
            return LG_E_INVAL;
    const char *raw = h->raw;
    size_t end = h->head_len;
    /* The final empty line is "\r\n" or "\n"; a CR in a valid head is always
     * followed by LF, so raw[end-2] == '\r' belongs to the final line. */
    size_t final = raw[end - 2] == '\r' ? end - 2 : end - 1;
    size_t old_len = out->len;
    /* Untouched lines are copied in runs: [keep, line start) is pending. */
    size_t keep = 0;
    int rc = LG_OK;
    (void)lg_buf_reserve(out, end + 128); /* one growth at most, usually */

    for (size_t f = 0; rc == 0 && f < h->nheaders; f++) {
        const lg_http_header *hf = &h->headers[f];
        size_t ei = nedits;
        for (size_t k = 0; k < nedits; k++) {
            if (ieq(hf->name, hf->name_len, edits[k].name)) {
                ei = k;
                break;
            }
        }
        if (ei == nedits)
            continue;
        size_t ls = (size_t)(hf->name - raw);
        size_t le = (size_t)(hf->value - raw) + hf->value_len;
        while (raw[le] != '\n')
            le++;
        le++;
        rc = lg_buf_append(out, raw + keep, ls - keep);
        keep = le;
        if (rc || !edits[ei].value)
            continue;
        /* Applied already if an earlier field had this name. */
        int seen = 0;
        for (size_t g = 0; g < f && !seen; g++)
            seen = ieq(h->headers[g].name, h->headers[g].name_len, edits[ei].name);
        if (seen)
            continue;
        rc = put_field(out, hf->name, hf->name_len, edits[ei].value, raw[le - 2] == '\r');
    }
    if (rc == 0)
        rc = lg_buf_append(out, raw + keep, final - keep);
    for (size_t k = 0; rc == 0 && k < nedits; k++) {
        if (!edits[k].value)
            continue;
        int dup = 0;
        for (size_t j = 0; j < k && !dup; j++)
            dup = ieq(edits[j].name, strlen(edits[j].name), edits[k].name);
        if (dup || lg_http_find(h, edits[k].name))
            continue;
        rc = put_field(out, edits[k].name, strlen(edits[k].name), edits[k].value, 1);
    }
    if (rc == 0)
        rc = lg_buf_append(out, raw + final, end - final);
    if (rc != 0) {
        out->len = old_len;
        if (out->data)
            out->data[old_len] = '\0';
    }
    return rc;
}

int lg_http_chunk(lg_buf *out, const char *p, size_t n)
{
    size_t old_len = out->len;
    /* The size line in hex, without printf: once per streamed token. */
    char t[2 * sizeof n + 2];
    size_t k = sizeof t;
    t[--k] = '\n';
    t[--k] = '\r';
    size_t v = n;
    do {
        t[--k] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    int rc = lg_buf_append(out, t + k, sizeof t - k);
    if (rc == 0 && n) {
        rc = lg_buf_append(out, p, n);
        if (rc == 0)
            rc = lg_buf_append(out, "\r\n", 2);
    }
    if (rc != 0) {
        out->len = old_len;
        if (out->data)
            out->data[old_len] = '\0';
    }
    return rc;
}
