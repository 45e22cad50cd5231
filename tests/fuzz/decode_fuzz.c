/* Fuzz target for core/decode: walks every run in the input and checks
 * invariants, not just survival.  For every input: calls return 1 until
 * they return 0, then keep returning 0 with pos at the end; runs are
 * non-empty, inside the input, in order and disjoint, and pos is each
 * run's end; the span's first bytes fit its kind; the output is valid
 * UTF-8 (checked independently), looks like text by an independent count
 * (a letter, at most 15% controls and U+FFFD), is no longer than 3 bytes
 * per input byte, and with a large buffer is never truncated.  The same
 * walk with a tiny buffer and with no buffer finds the same runs, kinds and
 * decoded lengths, and writes a prefix of the full output cut at a
 * character boundary (at most 3 bytes short of the buffer).  The reference
 * search without pre-filters gives exactly the same runs and output.  Each
 * run copied alone (into a buffer of its exact size, so reads past it
 * fault under ASan) is found again at offset 0, identical when the first
 * detector to accept it is the same.  Outputs are decoded again, three
 * levels deep, as a caller nesting decodes would. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "fuzz_util.h"
#include "error.h"

#define MAX_RUNS 4096

struct run {
    lg_decoded d;
    size_t off; /* where its output starts in the walk's output store */
};

struct walk {
    struct run r[MAX_RUNS];
    size_t n;
    char *store; /* every run's output, one after another */
    size_t used;
};

typedef int (*next_fn)(const char *, size_t, lg_decode_iter *, lg_decoded *, char *, size_t);

/* Decode a code point sequence; returns 0 on invalid UTF-8.  Counts
 * characters, letters and obviously bad ones (controls, U+FFFD). */
static int utf8_count(const unsigned char *s, size_t n, size_t *chars, size_t *bad, size_t *letters)
{
    *chars = *bad = *letters = 0;
    uint32_t cp;
    for (size_t i = 0, k; i < n; i += k) {
        if (!(k = fz_utf8_char(s, n, i, &cp)))
            return 0;
        ++*chars;
        if ((cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') || (cp >= 0x7F && cp < 0xA0) ||
            cp == 0xFFFD)
            ++*bad;
        else if (cp >= 0x80 || (cp | 0x20) - 'a' < 26)
            ++*letters;
    }
    return 1;
}

static int ishex(unsigned char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

static void check_kind(const unsigned char *s, size_t n, int kind)
{
    switch (kind) {
    case LG_ENC_BASE64:
    case LG_ENC_BASE64URL: CHECK(n >= 16 && s[0] != '=' && s[0] != '\n'); break;
    case LG_ENC_HEX:
        CHECK(n >= 16 && (ishex(s[0]) || (s[0] == '0' && (s[1] | 0x20) == 'x')));
        break;
    case LG_ENC_HEX_SPACED: CHECK(n >= 17 && ishex(s[0]) && ishex(s[n - 1])); break;
    case LG_ENC_ESC_X: CHECK(n >= 16 && n % 4 == 0 && s[0] == '\\' && s[1] == 'x'); break;
    case LG_ENC_ESC_U: CHECK(n >= 24 && s[0] == '\\' && (s[1] | 0x20) == 'u'); break;
    case LG_ENC_PERCENT: CHECK(n >= 9 && memchr(s, '%', n)); break;
    case LG_ENC_BINARY: CHECK(n >= 32 && (s[0] == '0' || s[0] == '1')); break;
    default: CHECK(0);
    }
    CHECK(strcmp(lg_enc_name(kind), "unknown") != 0);
}

/* All runs of text[0..len) with an output buffer of cap bytes (out may be
 * NULL when cap is 0); the outputs are kept in w->store. */
static void walk(next_fn fn, const char *text, size_t len, size_t cap, struct walk *w)
{
    char *out = cap ? malloc(cap) : NULL;
    CHECK(!cap || out);
    w->n = 0;
    w->used = 0;
    w->store = malloc(3 * len + 1);
    CHECK(w->store);
    lg_decode_iter it;
    memset(&it, 0, sizeof it);
    size_t prev_end = 0;
    for (;;) {
        lg_decoded d;
        int rc = fn(text, len, &it, &d, out, cap);
        CHECK(rc == 0 || rc == 1);
        if (rc == 0) {
            CHECK(it.pos == len);
            CHECK(fn(text, len, &it, &d, out, cap) == 0 && it.pos == len);
            break;
        }
        CHECK(d.start >= prev_end && d.start < d.end && d.end <= len && it.pos == d.end);
        CHECK(d.outlen <= cap && d.outlen <= d.declen && d.truncated == (d.declen > d.outlen));
        CHECK(d.declen <= 3 * (d.end - d.start));
        CHECK(!d.truncated || d.outlen + 4 > cap);
        check_kind((const unsigned char *)text + d.start, d.end - d.start, d.kind);
        size_t chars, bad, letters;
        CHECK(utf8_count((const unsigned char *)out, d.outlen, &chars, &bad, &letters));
        if (!d.truncated) {
            CHECK(letters > 0 && bad * 20 <= chars * 3);
        }
        CHECK(w->n < MAX_RUNS && w->used + d.outlen <= 3 * len + 1);
        w->r[w->n].d = d;
        w->r[w->n].off = w->used;
        if (d.outlen)
            memcpy(w->store + w->used, out, d.outlen);
        w->used += d.outlen;
        w->n++;
        prev_end = d.end;
    }
    free(out);
}

static void nest(const char *text, size_t len, int depth)
{
    if (depth == 0 || len == 0)
        return;
    char *out = malloc(len * 3);
    CHECK(out);
    lg_decode_iter it;
    memset(&it, 0, sizeof it);
    lg_decoded d;
    int n = 0;
    while (n++ < 64 && lg_decode_next(text, len, &it, &d, out, len * 3) == 1)
        nest(out, d.outlen, depth - 1);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy: the replay driver's buffers are larger. */
    char *text = calloc(size ? size : 1, 1);
    CHECK(text);
    if (size)
        memcpy(text, data, size);

    static struct walk full, small, none, ref;
    walk(lg_decode_next, text, size, 3 * size + 16, &full);
    for (size_t i = 0; i < full.n; i++)
        CHECK(!full.r[i].d.truncated && full.r[i].d.outlen == full.r[i].d.declen);

    /* Other buffer sizes: the same runs, the output a prefix. */
    size_t cap = size ? data[0] % 19 : 5;
    walk(lg_decode_next, text, size, cap, &small);
    walk(lg_decode_next, text, size, 0, &none);
    CHECK(small.n == full.n && none.n == full.n);
    for (size_t i = 0; i < full.n; i++) {
        const lg_decoded *f = &full.r[i].d, *s = &small.r[i].d, *z = &none.r[i].d;
        CHECK(s->start == f->start && s->end == f->end && s->kind == f->kind &&
              s->declen == f->declen);
        CHECK(z->start == f->start && z->end == f->end && z->kind == f->kind &&
              z->declen == f->declen && z->outlen == 0 && z->truncated == (f->declen > 0));
        CHECK(s->outlen <= f->outlen);
        CHECK(memcmp(small.store + small.r[i].off, full.store + full.r[i].off, s->outlen) == 0);
        CHECK(s->outlen == f->outlen || s->outlen + 4 > cap);
    }

    /* The pre-filters never change the result. */
    walk(lg__decode_next_ref, text, size, 3 * size + 16, &ref);
    CHECK(ref.n == full.n && ref.used == full.used);
    for (size_t i = 0; i < full.n; i++)
        CHECK(memcmp(&ref.r[i].d, &full.r[i].d, sizeof(lg_decoded)) == 0);
    CHECK(full.used == 0 || memcmp(ref.store, full.store, full.used) == 0);

    /* A run alone is still found where it starts. */
    for (size_t i = 0; i < full.n && i < 32; i++) {
        const lg_decoded *f = &full.r[i].d;
        size_t n = f->end - f->start;
        char *one = malloc(n), *out = malloc(3 * n + 16);
        CHECK(one && out);
        memcpy(one, text + f->start, n);
        lg_decode_iter it;
        memset(&it, 0, sizeof it);
        lg_decoded d;
        CHECK(lg_decode_next(one, n, &it, &d, out, 3 * n + 16) == 1);
        CHECK(d.start == 0);
        if (d.kind == f->kind) {
            CHECK(d.end == n && d.outlen == f->outlen &&
                  memcmp(out, full.store + full.r[i].off, d.outlen) == 0);
        }
        free(one);
        free(out);
    }

    for (size_t i = 0; i < full.n && i < 16; i++)
        nest(full.store + full.r[i].off, full.r[i].d.outlen, 3);

    /* Bad arguments are refused, not followed. */
    lg_decode_iter it;
    memset(&it, 0, sizeof it);
    lg_decoded d;
    CHECK(lg_decode_next(NULL, 1, &it, &d, NULL, 0) == LG_E_INVAL);
    CHECK(lg_decode_next(text, size, &it, &d, NULL, 1) == LG_E_INVAL);
    it.pos = size + 1;
    CHECK(lg_decode_next(text, size, &it, &d, NULL, 0) == LG_E_INVAL);

    free(full.store);
    free(small.store);
    free(none.store);
    free(ref.store);
    free(text);
    return 0;
}
