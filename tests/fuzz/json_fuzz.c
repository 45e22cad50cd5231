/* Fuzz target for core/json: walks the input and checks invariants, not
 * just survival.  For every input: the verdict does not depend on the
 * callback; prefixes behave as a whole-document parser must (a prefix of a
 * valid document can only fail at its end; past the error offset the error
 * stays put); a small depth limit only ever turns success into
 * LG_E_JSON_DEPTH at an opening bracket; escaping any bytes gives one valid
 * string that decodes back to the input (bad bytes as U+FFFD).  For valid
 * documents: every span is in bounds and is itself a valid document of the
 * reported type; string spans unescape, and escape(unescape(s)) walks as
 * one string decoding to the same text; well-formed paths match
 * themselves as patterns; and cJSON (1.7.15, laxer than RFC 8259) accepts
 * it too, with the same values and string contents.  The converse is not
 * asserted: cJSON accepts leading zeros, control characters and invalid
 * UTF-8.  It rejects escaped lone surrogates and numbers over 63
 * characters, which we accept, so those inputs skip the comparison. */
#include <cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fuzz_util.h"
#include "json.h"

struct val {
    int type;
    size_t start, end;
    int depth;
    int truncated;
    size_t path_len;
    char path[LG_JSON_MAX_PATH + 1];
};

struct col {
    struct val *v;
    size_t n, cap;
};

static int collect(void *ud, const lg_json_value *v)
{
    struct col *c = ud;
    CHECK(v->path && v->path_len <= LG_JSON_MAX_PATH && v->path[v->path_len] == '\0');
    CHECK(strlen(v->path) <= v->path_len);
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 64;
        c->v = realloc(c->v, c->cap * sizeof *c->v);
        CHECK(c->v);
    }
    struct val *d = &c->v[c->n++];
    d->type = v->type;
    d->start = v->start;
    d->end = v->end;
    d->depth = v->depth;
    d->truncated = v->truncated;
    d->path_len = v->path_len;
    memcpy(d->path, v->path, v->path_len + 1);
    return 0;
}

struct one {
    int n;
    lg_json_value v;
};

static int one_cb(void *ud, const lg_json_value *v)
{
    struct one *o = ud;
    o->n++;
    o->v = *v;
    return 0;
}

/* An independent UTF-8 check (decode, then reject by value). */
static int utf8_ok(const uint8_t *s, size_t n)
{
    uint32_t cp;
    for (size_t i = 0, k; i < n; i += k)
        if (!(k = fz_utf8_char(s, n, i, &cp)))
            return 0;
    return 1;
}

/* Escape, then walk and unescape the result; returns the decoded text. */
static void escape_roundtrip(const char *t, size_t n, unsigned flags, lg_buf *dec)
{
    lg_buf e;
    lg_buf_init(&e, (size_t)1 << 26);
    CHECK(lg_json_escape(t, n, flags, &e) == LG_OK);
    struct one o = {0};
    CHECK(lg_json_walk(e.data, e.len, 0, one_cb, &o, NULL) == LG_OK);
    CHECK(o.n == 1 && o.v.type == LG_JSON_STRING && o.v.start == 0 && o.v.end == e.len);
    CHECK(o.v.path_len == 0 && o.v.depth == 0);
    if (flags & LG_JSON_ESC_HTML)
        CHECK(!memchr(e.data, '<', e.len) && !memchr(e.data, '>', e.len) &&
              !memchr(e.data, '&', e.len));
    CHECK(lg_json_unescape(e.data, e.len, dec) == LG_OK);
    lg_buf_free(&e);
    /* The plain prefix (copied as is by the event writer) is what the
     * byte-wise definition says, at every start offset's alignment. */
    for (size_t a = 0; a < 8 && a <= n; a++) {
        const unsigned char *u = (const unsigned char *)t + a;
        size_t k = 0;
        while (k < n - a && u[k] >= 0x20 && u[k] < 0x80 && u[k] != '"' && u[k] != '\\')
            k++;
        CHECK(lg__json_plain_len(t + a, n - a) == k);
    }
}

static void check_prefixes(const char *d, size_t n, int rc, size_t off)
{
    size_t step = n <= 256 ? 1 : n / 61 + 1;
    for (size_t k = 0; k < n; k += step) {
        size_t o = 0;
        int r = lg_json_walk(d, k, 0, NULL, NULL, &o);
        if (rc != LG_OK && k > off) {
            /* The error is decided by the bytes up to its offset. */
            CHECK(r == rc && o == off);
        } else if (r != LG_OK) {
            /* A viable prefix can only fail for running out. */
            CHECK(r == LG_E_JSON && o == k);
        }
    }
}

/* `[A-Za-z0-9_]+` keys and `[digits]` indexes only: then the path is also
 * an exact pattern for itself. */
static int is_word(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static int plain_path(const char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        if (p[i] == '[') {
            size_t j = i + 1;
            while (j < n && p[j] >= '0' && p[j] <= '9')
                j++;
            if (j == i + 1 || j >= n || p[j] != ']')
                return 0;
            i = j + 1;
            continue;
        }
        if (i > 0 && p[i++] != '.')
            return 0;
        size_t j = i;
        while (j < n && is_word(p[j]))
            j++;
        if (j == i)
            return 0;
        i = j;
    }
    return 1;
}

static void check_path(const struct val *v)
{
    CHECK(lg_json_path_match("**", v->path, v->path_len) == 1);
    if (v->truncated)
        CHECK(v->path_len + 4 > LG_JSON_MAX_PATH);
    if (v->truncated || !plain_path(v->path, v->path_len))
        return;
    CHECK(lg_json_path_match(v->path, v->path, v->path_len) == 1);
    /* Generalised: every index as [*] still matches; one more byte does not. */
    char pat[2 * LG_JSON_MAX_PATH + 8];
    size_t k = 0;
    for (size_t i = 0; i < v->path_len; i++) {
        if (v->path[i] == '[') {
            memcpy(pat + k, "[*]", 3);
            k += 3;
            while (v->path[i] != ']')
                i++;
        } else {
            pat[k++] = v->path[i];
        }
    }
    pat[k] = '\0';
    CHECK(lg_json_path_match(pat, v->path, v->path_len) == 1);
    if (v->path_len) {
        memcpy(pat + k, ".**", 4);
        CHECK(lg_json_path_match(pat, v->path, v->path_len) == 1);
        pat[k] = 'x';
        pat[k + 1] = '\0';
        CHECK(lg_json_path_match(pat, v->path, v->path_len) == 0);
        CHECK(lg_json_path_match(v->path, v->path, v->path_len - 1) == 0);
    }
}

/* ==== cJSON comparison ==== */

static int cjson_skip(const uint8_t *d, size_t n)
{
    for (size_t i = 0; i + 2 < n; i++) {
        /* \uD800-\uDFFF: cJSON fails on unpaired ones; skip all. */
        if (d[i] != '\\' || d[i + 1] != 'u' || i + 3 >= n || (d[i + 2] | 0x20) != 'd')
            continue;
        uint8_t h = d[i + 3] | 0x20;
        if (h == '8' || h == '9' || (h >= 'a' && h <= 'f'))
            return 1;
    }
    return 0;
}

/* Document-order scalars and containers as cJSON sees them: strings and
 * counts are compared with ours. */
static void cjson_flatten(const cJSON *j, const cJSON **out, size_t *k, size_t cap)
{
    for (; j; j = j->next) {
        if (cJSON_IsArray(j) || cJSON_IsObject(j))
            cjson_flatten(j->child, out, k, cap);
        CHECK(*k < cap);
        out[(*k)++] = j;
    }
}

static void compare_cjson(const uint8_t *data, size_t size, const struct col *c)
{
    if (cjson_skip(data, size))
        return;
    for (size_t i = 0; i < c->n; i++)
        if (c->v[i].type == LG_JSON_NUMBER && c->v[i].end - c->v[i].start > 63)
            return;
    char *z = malloc(size + 1);
    CHECK(z);
    memcpy(z, data, size);
    z[size] = '\0';
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(z, size + 1, &end, 1);
    CHECK(j != NULL);
    const cJSON **flat = malloc((c->n + 1) * sizeof *flat);
    CHECK(flat);
    size_t k = 0;
    cjson_flatten(j, flat, &k, c->n + 1);
    CHECK(k == c->n);
    /* Post-order on both sides, so entries pair up one to one. */
    for (size_t i = 0; i < k; i++) {
        const struct val *v = &c->v[i];
        switch (v->type) {
        case LG_JSON_STRING: {
            CHECK(cJSON_IsString(flat[i]));
            lg_buf u;
            lg_buf_init(&u, (size_t)1 << 26);
            CHECK(lg_json_unescape((const char *)data + v->start, v->end - v->start, &u) == LG_OK);
            if (!memchr(u.data ? u.data : "", '\0', u.len))
                CHECK(strcmp(flat[i]->valuestring, u.data ? u.data : "") == 0);
            lg_buf_free(&u);
            break;
        }
        case LG_JSON_NUMBER: CHECK(cJSON_IsNumber(flat[i])); break;
        case LG_JSON_TRUE: CHECK(cJSON_IsTrue(flat[i])); break;
        case LG_JSON_FALSE: CHECK(cJSON_IsFalse(flat[i])); break;
        case LG_JSON_NULL: CHECK(cJSON_IsNull(flat[i])); break;
        case LG_JSON_OBJECT: CHECK(cJSON_IsObject(flat[i])); break;
        case LG_JSON_ARRAY: CHECK(cJSON_IsArray(flat[i])); break;
        default: CHECK(0);
        }
    }
    free(flat);
    cJSON_Delete(j);
    free(z);
}

/* ==== Per-value checks ==== */

static void check_value(const uint8_t *data, size_t size, const struct val *v)
{
    const char *d = (const char *)data;
    CHECK(v->start < v->end && v->end <= size);
    CHECK(v->depth >= 0 && v->depth <= LG_JSON_MAX_DEPTH);
    size_t n = v->end - v->start;
    const char *s = d + v->start;
    /* The span alone is a document of the same type, reported last. */
    struct one o = {0};
    CHECK(lg_json_walk(s, n, 0, one_cb, &o, NULL) == LG_OK);
    CHECK(o.v.type == v->type && o.v.start == 0 && o.v.end == n && o.v.depth == 0);
    switch (v->type) {
    case LG_JSON_STRING: {
        CHECK(n >= 2 && s[0] == '"' && s[n - 1] == '"');
        lg_buf u, u2;
        lg_buf_init(&u, (size_t)1 << 26);
        lg_buf_init(&u2, (size_t)1 << 26);
        CHECK(lg_json_unescape(s, n, &u) == LG_OK);
        CHECK(u.len <= n - 2);
        CHECK(utf8_ok((const uint8_t *)(u.data ? u.data : ""), u.len));
        for (unsigned flags = 0; flags < 2; flags++) {
            lg_buf_reset(&u2);
            escape_roundtrip(u.data ? u.data : "", u.len, flags, &u2);
            CHECK(u2.len == u.len && (u.len == 0 || memcmp(u.data, u2.data, u.len) == 0));
        }
        lg_buf_free(&u);
        lg_buf_free(&u2);
        break;
    }
    case LG_JSON_NUMBER: CHECK(s[0] == '-' || (s[0] >= '0' && s[0] <= '9')); break;
    case LG_JSON_TRUE: CHECK(n == 4 && !memcmp(s, "true", 4)); break;
    case LG_JSON_FALSE: CHECK(n == 5 && !memcmp(s, "false", 5)); break;
    case LG_JSON_NULL: CHECK(n == 4 && !memcmp(s, "null", 4)); break;
    case LG_JSON_OBJECT: CHECK(s[0] == '{' && s[n - 1] == '}'); break;
    case LG_JSON_ARRAY: CHECK(s[0] == '[' && s[n - 1] == ']'); break;
    default: CHECK(0);
    }
    check_path(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *d = (const char *)data;
    struct col c = {0};
    size_t off = 0, off2 = 0, off3 = 0;
    int rc = lg_json_walk(d, size, 0, collect, &c, &off);
    int rc2 = lg_json_walk(d, size, 0, NULL, NULL, &off2);
    CHECK(rc == rc2);
    CHECK(rc == LG_OK || rc == LG_E_JSON || rc == LG_E_JSON_DEPTH);
    if (rc == LG_OK) {
        CHECK(off == 0 && off2 == 0);
    } else {
        CHECK(off == off2 && off <= size);
        if (rc == LG_E_JSON_DEPTH)
            CHECK(d[off] == '[' || d[off] == '{');
    }
    check_prefixes(d, size, rc, off);

    /* A tighter depth limit only turns success into a depth error. */
    int rc3 = lg_json_walk(d, size, 3, NULL, NULL, &off3);
    if (rc3 == LG_OK)
        CHECK(rc == LG_OK);
    else if (rc3 == LG_E_JSON_DEPTH)
        CHECK((d[off3] == '[' || d[off3] == '{') && (rc == LG_OK || off > off3));
    else
        CHECK(rc3 == rc && off3 == off);

    if (rc == LG_OK) {
        CHECK(c.n >= 1);
        const struct val *top = &c.v[c.n - 1];
        CHECK(top->depth == 0 && top->path_len == 0);
        for (size_t i = 0; i < c.n; i++) {
            check_value(data, size, &c.v[i]);
            if (i + 1 < c.n)
                CHECK(c.v[i].depth >= 1);
        }
        compare_cjson(data, size, &c);
    }
    free(c.v);

    /* Any bytes escape to one valid string that decodes to the input, or,
     * when the input is not UTF-8, to valid UTF-8 of no greater length
     * ratio than one U+FFFD per byte. */
    lg_buf dec;
    lg_buf_init(&dec, (size_t)1 << 26);
    escape_roundtrip(d, size, LG_JSON_ESC_HTML, &dec);
    if (utf8_ok(data, size))
        CHECK(dec.len == size && (size == 0 || memcmp(dec.data, d, size) == 0));
    else
        CHECK(dec.len <= 3 * size && utf8_ok((const uint8_t *)dec.data, dec.len));
    lg_buf_reset(&dec);
    escape_roundtrip(d, size, 0, &dec);
    if (utf8_ok(data, size))
        CHECK(dec.len == size && (size == 0 || memcmp(dec.data, d, size) == 0));
    lg_buf_free(&dec);

    /* Patterns from the input: must not crash; `**` matches all. */
    size_t half = size / 2;
    char *pat = malloc(half + 1);
    CHECK(pat);
    memcpy(pat, d, half);
    pat[half] = '\0';
    (void)lg_json_path_match(pat, d + half, size - half);
    CHECK(lg_json_path_match("**", d + half, size - half) == 1);
    free(pat);
    return 0;
}
