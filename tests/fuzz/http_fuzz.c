/* libFuzzer target for core/http.  The input is run through a connection
 * simulator twice over, as pipelined requests and as a sequence of
 * responses (request methods for the responses are derived from the first
 * byte), and each time fed whole, in two pieces and in three pieces (split
 * points taken from the last four bytes) and, up to 512 bytes, one byte at
 * a time; the transcripts (heads, de-chunked data,
 * chunk ends, trailers, errors with absolute offsets) must be identical.
 * Every parser call sees an exactly sized heap copy so that ASan catches a
 * read past len.  For each head parsed it also checks that a rewrite with no
 * edits reproduces the head byte for byte and that a rewrite with edits
 * parses again with the edited values; for each chunked body that ends, that
 * re-framing the data with lg_http_chunk decodes to the same bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                            \
    do {                                                                    \
        if (!(c)) {                                                         \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
            abort();                                                        \
        }                                                                   \
    } while (0)

enum { ST_HEAD, ST_BODY, ST_STOP, ST_DEAD };

typedef struct sim {
    int response;
    unsigned methods;      /* bit k: the k-th response answers HEAD */
    unsigned nresp;
    lg_buf acc;
    uint64_t base;
    int state;
    lg_http_body body;
    uint64_t body_start;
    int ka, interim, upgrade, chunked;
    lg_buf log, data, all;  /* transcript; pending data; whole body (chunked) */
} sim;

static void put(sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sim *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    CHECK(lg_buf_vprintf(&s->log, fmt, ap) == LG_OK);
    va_end(ap);
}

static void flush(sim *s)
{
    if (s->data.len) {
        put(s, "D%zu[", s->data.len);
        CHECK(lg_buf_append(&s->log, s->data.data, s->data.len) == LG_OK);
        put(s, "]");
        lg_buf_reset(&s->data);
    }
}

static int on_data(void *ud, const char *p, size_t n)
{
    sim *s = ud;
    CHECK(n > 0);
    CHECK(lg_buf_append(&s->data, p, n) == LG_OK);
    if (s->chunked)
        CHECK(lg_buf_append(&s->all, p, n) == LG_OK);
    return 0;
}

static int on_chunk_end(void *ud)
{
    sim *s = ud;
    CHECK(s->chunked);
    flush(s);
    put(s, "c");
    return 0;
}

/* Re-frame a finished chunked body and decode it again. */
static void check_reframe(sim *s, const char *tr, size_t trn)
{
    lg_buf out;
    lg_buf_init(&out, 1 << 24);
    if (s->all.len)
        CHECK(lg_http_chunk(&out, s->all.data, s->all.len) == LG_OK);
    CHECK(lg_http_chunk(&out, NULL, 0) == LG_OK);
    if (trn)
        CHECK(lg_buf_append(&out, tr, trn) == LG_OK);
    CHECK(lg_buf_append(&out, "\r\n", 2) == LG_OK);
    static lg_http_body d;
    lg_http_head h;
    memset(&h, 0, sizeof h);
    h.body_kind = LG_BODY_CHUNKED;
    lg_http_body_init(&d, &h);
    sim t;
    memset(&t, 0, sizeof t);
    lg_buf_init(&t.log, 1 << 24);
    lg_buf_init(&t.data, 1 << 24);
    lg_buf_init(&t.all, 1 << 24);
    t.chunked = 1;
    lg_http_body_cb cb = {on_data, NULL, NULL};
    long r = lg_http_body_feed(&d, out.data, out.len, &cb, &t);
    CHECK(r == (long)out.len);
    CHECK(lg_http_body_done(&d));
    CHECK(t.all.len == s->all.len);
    CHECK(t.all.len == 0 || memcmp(t.all.data, s->all.data, t.all.len) == 0);
    lg_buf_free(&out);
    lg_buf_free(&t.log);
    lg_buf_free(&t.data);
    lg_buf_free(&t.all);
}

static int on_end(void *ud, const char *t, size_t n)
{
    sim *s = ud;
    flush(s);
    CHECK(n == 0 || s->chunked);
    put(s, "E%zu{", n);
    if (n)
        CHECK(lg_buf_append(&s->log, t, n) == LG_OK);
    put(s, "}|");
    if (s->chunked)
        check_reframe(s, t, n);
    return 0;
}

static const lg_http_body_cb cbs = {on_data, on_chunk_end, on_end};

/* An exactly sized copy, so that reading p[n] is a heap overflow. */
static char *exact(const char *p, size_t n)
{
    char *c = malloc(n ? n : 1);
    CHECK(c);
    if (n)
        memcpy(c, p, n);
    return c;
}

static void check_rewrite(const lg_http_head *h, int response, const char *m, size_t ml)
{
    lg_buf out;
    lg_buf_init(&out, 1 << 20);
    CHECK(lg_http_head_rewrite(h, NULL, 0, &out) == LG_OK);
    CHECK(out.len == h->head_len && memcmp(out.data, h->raw, h->head_len) == 0);
    lg_buf_reset(&out);
    lg_http_edit e[] = {{"Accept-Encoding", "identity"}, {"Content-Length", "7"},
                        {"Transfer-Encoding", NULL}};
    CHECK(lg_http_head_rewrite(h, e, 3, &out) == LG_OK);
    if (out.len <= LG_HTTP_MAX_HEAD && h->nheaders < LG_HTTP_MAX_HEADERS - 2) {
        static lg_http_head h2;
        size_t eo;
        int r = response ? lg_http_parse_response(out.data, out.len, m, ml, &h2, &eo)
                         : lg_http_parse_request(out.data, out.len, &h2, &eo);
        CHECK(r == (int)out.len);
        CHECK(!lg_http_find(&h2, "transfer-encoding"));
        CHECK(h2.content_length == 7);
        CHECK(lg_http_has_token(&h2, "accept-encoding", "identity"));
        CHECK(h2.nheaders <= h->nheaders + 2);
    }
    lg_buf_free(&out);
}

static void push(sim *s, const char *p, size_t n)
{
    if (n)
        CHECK(lg_buf_append(&s->acc, p, n) == LG_OK);
    for (;;) {
        if (s->state == ST_HEAD) {
            if (!s->acc.len)
                return;
            char *c = exact(s->acc.data, s->acc.len);
            static lg_http_head h;
            size_t eo = (size_t)-1;
            int r;
            const char *m = NULL;
            size_t ml = 0;
            if (s->response) {
                if (s->nresp < 32 && (s->methods >> s->nresp) & 1) {
                    m = "HEAD";
                    ml = 4;
                } else if (s->nresp == 0 && (s->methods >> 31)) {
                    m = "CONNECT";
                    ml = 7;
                }
                r = lg_http_parse_response(c, s->acc.len, m, ml, &h, &eo);
            } else {
                r = lg_http_parse_request(c, s->acc.len, &h, &eo);
            }
            if (r == LG_E_NEEDMORE) {
                CHECK(s->acc.len < LG_HTTP_MAX_HEAD);
                free(c);
                return;
            }
            if (r < 0) {
                CHECK(eo <= s->acc.len && eo <= LG_HTTP_MAX_HEAD);
                put(s, "!%s@%llu", lg_errname(r), (unsigned long long)(s->base + eo));
                s->state = ST_DEAD;
                free(c);
                return;
            }
            CHECK((size_t)r == h.head_len && h.head_len <= s->acc.len &&
                  h.head_len <= LG_HTTP_MAX_HEAD && h.nheaders <= LG_HTTP_MAX_HEADERS);
            CHECK(h.raw == c && h.minor >= 0 && h.minor <= 1);
            CHECK(h.body_kind != LG_BODY_CLOSE || (!h.is_request && !h.keep_alive));
            CHECK(h.content_length <= (uint64_t)INT64_MAX);
            for (size_t k = 0; k < h.nheaders; k++) {
                const lg_http_header *f = &h.headers[k];
                CHECK(f->name >= c && f->name + f->name_len <= c + h.head_len && f->name_len);
                CHECK(f->value >= c && f->value + f->value_len <= c + h.head_len);
                CHECK(f->value_len == 0 || (f->value[0] != ' ' && f->value[f->value_len - 1] != ' '));
            }
            put(s, "%c%d/%.*s/%.*s/%d/k%d/%llu/%d%d%d%d%d|", h.is_request ? 'Q' : 'R', h.status,
                (int)h.method_len, h.method ? h.method : "", (int)h.target_len,
                h.target ? h.target : "", h.minor, h.body_kind,
                (unsigned long long)h.content_length, h.keep_alive, h.expect_continue,
                h.upgrade, h.encoded, h.interim);
            check_rewrite(&h, s->response, m, ml);
            s->ka = h.keep_alive;
            s->interim = h.interim;
            s->upgrade = h.upgrade;
            s->chunked = h.body_kind == LG_BODY_CHUNKED;
            lg_buf_reset(&s->all);
            lg_buf_consume(&s->acc, (size_t)r);
            s->base += (size_t)r;
            lg_http_body_init(&s->body, &h);
            s->body_start = s->base;
            s->state = ST_BODY;
            free(c);
        }
        if (s->state == ST_BODY) {
            char *c = exact(s->acc.data, s->acc.len);
            uint64_t before = s->body.offset;
            long r = lg_http_body_feed(&s->body, c, s->acc.len, &cbs, s);
            free(c);
            if (r < 0) {
                flush(s);
                put(s, "!%s@%llu", lg_errname((int)r),
                    (unsigned long long)(s->body_start + s->body.offset));
                CHECK(s->body.offset - before <= s->acc.len);
                CHECK(lg_http_body_feed(&s->body, "x", 1, &cbs, s) == r);
                s->state = ST_DEAD;
                return;
            }
            CHECK((size_t)r <= s->acc.len && s->body.offset - before == (uint64_t)r);
            lg_buf_consume(&s->acc, (size_t)r);
            s->base += (size_t)r;
            if (!lg_http_body_done(&s->body)) {
                CHECK(s->acc.len == 0);
                return;
            }
            if (s->response && !s->interim)
                s->nresp++;
            s->state = (s->upgrade || (!s->ka && !s->interim)) ? ST_STOP : ST_HEAD;
            continue;
        }
        return;
    }
}

static char *run(int response, unsigned methods, const char *in, size_t n, const size_t *cuts,
                 size_t ncuts)
{
    static sim s;
    memset(&s, 0, sizeof s);
    s.response = response;
    s.methods = methods;
    lg_buf_init(&s.acc, 1 << 24);
    lg_buf_init(&s.log, 1 << 24);
    lg_buf_init(&s.data, 1 << 24);
    lg_buf_init(&s.all, 1 << 24);
    size_t at = 0;
    for (size_t k = 0; k <= ncuts; k++) {
        size_t end = k < ncuts ? cuts[k] : n;
        push(&s, in + at, end - at);
        at = end;
    }
    if (s.state == ST_BODY) {
        int r = lg_http_body_eof(&s.body, &cbs, &s);
        if (r < 0) {
            flush(&s);
            put(&s, "!%s@%llu", lg_errname(r), (unsigned long long)(s.body_start + s.body.offset));
        }
    } else if (s.state == ST_HEAD && s.acc.len) {
        put(&s, "~%zu", s.acc.len);
    } else if (s.state == ST_STOP && s.acc.len) {
        put(&s, "+%zu", s.acc.len);
    }
    char *out = exact(s.log.data ? s.log.data : "", s.log.len + 1);
    out[s.log.len] = '\0';
    lg_buf_free(&s.acc);
    lg_buf_free(&s.log);
    lg_buf_free(&s.data);
    lg_buf_free(&s.all);
    return out;
}

static void compare(int response, unsigned methods, const char *in, size_t n, size_t c1, size_t c2)
{
    char *whole = run(response, methods, in, n, NULL, 0);
    size_t one[1] = {c1};
    char *two = run(response, methods, in, n, one, 1);
    size_t cuts[2] = {c1 < c2 ? c1 : c2, c1 < c2 ? c2 : c1};
    char *three = run(response, methods, in, n, cuts, 2);
    char *bytes = NULL;
    if (n > 1 && n <= 512) {
        size_t every[512];
        for (size_t k = 0; k + 1 < n; k++)
            every[k] = k + 1;
        bytes = run(response, methods, in, n, every, n - 1);
    }
    if (strcmp(whole, two) != 0 || strcmp(whole, three) != 0 || (bytes && strcmp(whole, bytes) != 0)) {
        fprintf(stderr, "split mismatch (%s, cuts %zu %zu)\nwhole: %s\ntwo:   %s\nthree: %s\nbytes: %s\n",
                response ? "response" : "request", c1, c2, whole, two, three, bytes ? bytes : "-");
        abort();
    }
    free(whole);
    free(two);
    free(three);
    free(bytes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 200000)
        return 0;
    const char *in = (const char *)data;
    /* Split points come from the last bytes, so that the fuzzer can steer
     * them independently of the message it is building; inputs up to 512
     * bytes are also fed one byte at a time. */
    size_t c1 = 0, c2 = 0;
    if (size >= 4) {
        c1 = ((size_t)data[size - 1] | (size_t)data[size - 2] << 8) % (size + 1);
        c2 = ((size_t)data[size - 3] | (size_t)data[size - 4] << 8) % (size + 1);
    }
    compare(0, 0, in, size, c1, c2);
    unsigned methods = size ? (unsigned)data[0] * 0x01010101u : 0;
    compare(1, methods & 0x8000002au, in, size, c1, c2);
    return 0;
}
