/* Unit tests for core/stream: NDJSON and SSE decoding.  Every vector is fed
 * whole, one byte at a time and split in two at every offset, each piece
 * copied to the end of a readable page followed by an unmapped guard page
 * (picohttpparser's over-read trap); each way must give the same events
 * (raw, data and every field), and after every feed the raw bytes reported
 * so far followed by the pending bytes must equal the input so far.  The
 * vectors follow the wire formats of design.md §4: Ollama NDJSON, OpenAI
 * style SSE ending in [DONE], llama.cpp SSE without [DONE] and with
 * `error:` lines. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "stream.h"

/* ==== Recording events ==== */

typedef struct rec_ev {
    char *raw, *data, *event, *id, *error; /* copies; NULL mirrors NULL */
    size_t raw_len, data_len, event_len, id_len, error_len;
    int has_data, done, partial;
} rec_ev;

typedef struct rec {
    rec_ev ev[64];
    int n;
    char *all;      /* concatenation of reported raws */
    size_t all_len;
    int stop_at;    /* return 99 from the callback for event number stop_at (1-based) */
} rec;

static char *dup_n(const char *p, size_t n)
{
    if (!p)
        return NULL;
    char *d = malloc(n + 1);
    cr_assert_not_null(d);
    memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

static int on_event(void *ud, const lg_stream_event *ev)
{
    rec *r = ud;
    cr_assert_lt(r->n, 64, "too many events");
    cr_assert_not_null(ev->raw);
    cr_assert_gt(ev->raw_len, 0);
    cr_assert_not_null(ev->data, "data is never NULL");
    cr_assert_leq(ev->data_len, ev->raw_len);
    rec_ev *e = &r->ev[r->n++];
    e->raw = dup_n(ev->raw, ev->raw_len);
    e->raw_len = ev->raw_len;
    e->data = dup_n(ev->data, ev->data_len);
    e->data_len = ev->data_len;
    e->event = dup_n(ev->event, ev->event_len);
    e->event_len = ev->event_len;
    e->id = dup_n(ev->id, ev->id_len);
    e->id_len = ev->id_len;
    e->error = dup_n(ev->error, ev->error_len);
    e->error_len = ev->error_len;
    e->has_data = ev->has_data;
    e->done = ev->done;
    e->partial = ev->partial;
    char *a = realloc(r->all, r->all_len + ev->raw_len + 1);
    cr_assert_not_null(a);
    memcpy(a + r->all_len, ev->raw, ev->raw_len);
    r->all = a;
    r->all_len += ev->raw_len;
    return r->n == r->stop_at ? 99 : 0;
}

static void rec_free(rec *r)
{
    for (int i = 0; i < r->n; i++) {
        free(r->ev[i].raw);
        free(r->ev[i].data);
        free(r->ev[i].event);
        free(r->ev[i].id);
        free(r->ev[i].error);
    }
    free(r->all);
    memset(r, 0, sizeof *r);
}

/* ==== Guarded input ==== */

static char *guard_base;
static size_t guard_size; /* readable bytes before the guard page */

static void guard_setup(void)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    guard_size = 16 * pg;
    guard_base = mmap(NULL, guard_size + pg, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(guard_base, MAP_FAILED);
    cr_assert_eq(mprotect(guard_base + guard_size, pg, PROT_NONE), 0);
}

static void guard_teardown(void)
{
    munmap(guard_base, guard_size + (size_t)sysconf(_SC_PAGESIZE));
}

/* The piece ends exactly at the guard page: reading one byte past it faults. */
static const char *guarded(const char *p, size_t n)
{
    cr_assert_leq(n, guard_size);
    char *d = guard_base + guard_size - n;
    memcpy(d, p, n);
    return d;
}

/* ==== Feeding ==== */

/* Feed `in` in pieces ending at the offsets in cuts[] (ascending, the last
 * one == len), then finish.  Returns the first non-OK code (feed or finish).
 * Checks the raw-concatenation invariant after every call. */
static int run_cuts(int kind, size_t max, const char *in, size_t len,
                    const size_t *cuts, size_t ncuts, rec *r)
{
    lg_stream s;
    cr_assert_eq(lg_stream_init(&s, kind, max), LG_OK);
    size_t at = 0;
    int rc = LG_OK;
    for (size_t c = 0; c < ncuts && rc == LG_OK; c++) {
        size_t n = cuts[c] - at;
        rc = lg_stream_feed(&s, guarded(in + at, n), n, on_event, r);
        if (rc == LG_OK) {
            cr_assert_eq(lg_stream_fed(&s), n);
            at = cuts[c];
            /* reported raws + pending == input so far */
            cr_assert_eq(r->all_len + lg_stream_pending(&s), at);
            cr_assert(r->all_len == 0 || memcmp(r->all, in, r->all_len) == 0);
            cr_assert(lg_stream_pending(&s) == 0 ||
                      memcmp(s.raw.data, in + r->all_len, s.raw.len) == 0);
        }
    }
    if (rc == LG_OK) {
        rc = lg_stream_finish(&s, on_event, r);
        if (rc == LG_OK) {
            cr_assert_eq(lg_stream_pending(&s), 0);
            cr_assert_eq(r->all_len, len);
            cr_assert(len == 0 || memcmp(r->all, in, len) == 0);
        }
    } else {
        /* Sticky. */
        cr_assert_eq(lg_stream_feed(&s, "x", 1, on_event, r), rc);
        cr_assert_eq(lg_stream_finish(&s, on_event, r), rc);
    }
    lg_stream_free(&s);
    return rc;
}

static void rec_eq(const rec *a, const rec *b, const char *how)
{
    cr_assert_eq(a->n, b->n, "%s: %d events vs %d", how, a->n, b->n);
    for (int i = 0; i < a->n; i++) {
        const rec_ev *x = &a->ev[i], *y = &b->ev[i];
        cr_assert(x->raw_len == y->raw_len && memcmp(x->raw, y->raw, x->raw_len) == 0,
                  "%s: event %d raw differs", how, i);
        cr_assert(x->data_len == y->data_len && memcmp(x->data, y->data, x->data_len) == 0,
                  "%s: event %d data differs", how, i);
        cr_assert_eq(x->has_data, y->has_data, "%s: event %d has_data", how, i);
        cr_assert_eq(x->done, y->done, "%s: event %d done", how, i);
        cr_assert_eq(x->partial, y->partial, "%s: event %d partial", how, i);
        cr_assert_eq(!x->event, !y->event, "%s: event %d event presence", how, i);
        cr_assert(!x->event || (x->event_len == y->event_len &&
                                memcmp(x->event, y->event, x->event_len) == 0));
        cr_assert_eq(!x->id, !y->id, "%s: event %d id presence", how, i);
        cr_assert(!x->id || (x->id_len == y->id_len && memcmp(x->id, y->id, x->id_len) == 0));
        cr_assert_eq(!x->error, !y->error, "%s: event %d error presence", how, i);
        cr_assert(!x->error || (x->error_len == y->error_len &&
                                memcmp(x->error, y->error, x->error_len) == 0));
    }
}

/* ==== Vectors ==== */

typedef struct xev {
    const char *raw, *data; /* data NULL means "" */
    int has_data;
    const char *event, *id, *error;
    int done, partial;
} xev;

typedef struct vec {
    const char *name;
    int kind;
    size_t max;       /* 0: LG_STREAM_DEFAULT_MAX_EVENT */
    const char *in;
    int err;          /* expected result of the run (LG_OK or an error) */
    xev ev[10];       /* terminated by raw == NULL */
} vec;

#define ND LG_STREAM_NDJSON
#define SSE LG_STREAM_SSE
/* data event: raw, data */
#define D(r, d) { r, d, 1, NULL, NULL, NULL, 0, 0 }
/* event without data */
#define N(r) { r, NULL, 0, NULL, NULL, NULL, 0, 0 }

static const vec vectors[] = {
    /* ---- NDJSON (Ollama) ---- */
    { "ollama generate", ND, 0,
      "{\"model\":\"llama3.2\",\"created_at\":\"2024-08-04T08:52:19.385406455Z\",\"response\":\"The\",\"done\":false}\n"
      "{\"model\":\"llama3.2\",\"created_at\":\"2024-08-04T08:52:19.4Z\",\"response\":\" sky \\u003cb\\u003e\",\"done\":false}\n"
      "{\"model\":\"llama3.2\",\"response\":\"\",\"done\":true,\"done_reason\":\"stop\",\"eval_count\":290}\n",
      LG_OK,
      { D("{\"model\":\"llama3.2\",\"created_at\":\"2024-08-04T08:52:19.385406455Z\",\"response\":\"The\",\"done\":false}\n",
          "{\"model\":\"llama3.2\",\"created_at\":\"2024-08-04T08:52:19.385406455Z\",\"response\":\"The\",\"done\":false}"),
        D("{\"model\":\"llama3.2\",\"created_at\":\"2024-08-04T08:52:19.4Z\",\"response\":\" sky \\u003cb\\u003e\",\"done\":false}\n",
          "{\"model\":\"llama3.2\",\"created_at\":\"2024-08-04T08:52:19.4Z\",\"response\":\" sky \\u003cb\\u003e\",\"done\":false}"),
        D("{\"model\":\"llama3.2\",\"response\":\"\",\"done\":true,\"done_reason\":\"stop\",\"eval_count\":290}\n",
          "{\"model\":\"llama3.2\",\"response\":\"\",\"done\":true,\"done_reason\":\"stop\",\"eval_count\":290}") } },
    { "ollama chat with mid-stream error", ND, 0,
      "{\"message\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"done\":false}\n"
      "{\"error\":\"an error was encountered while running the model\"}\n",
      LG_OK,
      { D("{\"message\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"done\":false}\n",
          "{\"message\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"done\":false}"),
        D("{\"error\":\"an error was encountered while running the model\"}\n",
          "{\"error\":\"an error was encountered while running the model\"}") } },
    { "ndjson CRLF and blank lines", ND, 0,
      "{\"a\":1}\r\n\n\r\n{\"b\":2}\n",
      LG_OK,
      { D("{\"a\":1}\r\n", "{\"a\":1}"), N("\n"), N("\r\n"), D("{\"b\":2}\n", "{\"b\":2}") } },
    { "ndjson whitespace-only line is blank", ND, 0,
      " \t \n{}\n",
      LG_OK,
      { { " \t \n", " \t ", 0, NULL, NULL, NULL, 0, 0 }, D("{}\n", "{}") } },
    { "ndjson CR inside a line is data", ND, 0,
      "{\"a\":\"x\"}\r{\"b\":1}\n",
      LG_OK,
      { D("{\"a\":\"x\"}\r{\"b\":1}\n", "{\"a\":\"x\"}\r{\"b\":1}") } },
    { "ndjson final line without LF", ND, 0,
      "{\"a\":1}\n{\"done\":true}",
      LG_OK,
      { D("{\"a\":1}\n", "{\"a\":1}"),
        { "{\"done\":true}", "{\"done\":true}", 1, NULL, NULL, NULL, 0, 1 } } },
    { "ndjson final CR without LF", ND, 0,
      "{}\r",
      LG_OK,
      { { "{}\r", "{}", 1, NULL, NULL, NULL, 0, 1 } } },
    { "ndjson SSE-looking text is just lines", ND, 0,
      "data: x\n\n",
      LG_OK,
      { D("data: x\n", "data: x"), N("\n") } },
    { "ndjson limit", ND, 16,
      "{\"a\":1}\n{\"long\":\"0123456789\"}\n",
      LG_E_LIMIT,
      { D("{\"a\":1}\n", "{\"a\":1}") } },
    { "ndjson line exactly at limit", ND, 8,
      "{\"a\":1}\n{\"b\":22}\n",
      LG_E_LIMIT,
      { D("{\"a\":1}\n", "{\"a\":1}") } },

    /* ---- SSE, OpenAI style ---- */
    { "openai chat stream", SSE, 0,
      "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n"
      "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"}}]}\n\n"
      "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
      "data: [DONE]\n\n",
      LG_OK,
      { D("data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
          "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}"),
        D("data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"}}]}\n\n",
          "{\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"}}]}"),
        D("data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
          "{\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}"),
        { "data: [DONE]\n\n", "[DONE]", 1, NULL, NULL, NULL, 1, 0 } } },
    { "openai error in data", SSE, 0,
      "data: {\"error\":{\"message\":\"model not found\",\"type\":\"invalid_request_error\"}}\n\n",
      LG_OK,
      { D("data: {\"error\":{\"message\":\"model not found\",\"type\":\"invalid_request_error\"}}\n\n",
          "{\"error\":{\"message\":\"model not found\",\"type\":\"invalid_request_error\"}}") } },
    { "DONE only when exact", SSE, 0,
      "data:[DONE]\n\ndata: [DONE] \n\ndata: [DONE]\ndata: x\n\n",
      LG_OK,
      { { "data:[DONE]\n\n", "[DONE]", 1, NULL, NULL, NULL, 1, 0 },
        D("data: [DONE] \n\n", "[DONE] "),
        D("data: [DONE]\ndata: x\n\n", "[DONE]\nx") } },

    /* ---- SSE, llama.cpp ---- */
    { "llamacpp completion without DONE", SSE, 0,
      "data: {\"content\":\"Hel\",\"stop\":false}\n\n"
      "data: {\"content\":\"lo\",\"stop\":false}\n\n"
      "data: {\"content\":\"\",\"stop\":true,\"tokens_predicted\":2}\n\n",
      LG_OK,
      { D("data: {\"content\":\"Hel\",\"stop\":false}\n\n", "{\"content\":\"Hel\",\"stop\":false}"),
        D("data: {\"content\":\"lo\",\"stop\":false}\n\n", "{\"content\":\"lo\",\"stop\":false}"),
        D("data: {\"content\":\"\",\"stop\":true,\"tokens_predicted\":2}\n\n",
          "{\"content\":\"\",\"stop\":true,\"tokens_predicted\":2}") } },
    { "llamacpp error line", SSE, 0,
      "data: {\"content\":\"a\"}\n\n"
      "error: {\"code\":500,\"message\":\"context shift disabled\",\"type\":\"server_error\"}\n\n",
      LG_OK,
      { D("data: {\"content\":\"a\"}\n\n", "{\"content\":\"a\"}"),
        { "error: {\"code\":500,\"message\":\"context shift disabled\",\"type\":\"server_error\"}\n\n",
          NULL, 0, NULL, NULL, "{\"code\":500,\"message\":\"context shift disabled\",\"type\":\"server_error\"}", 0, 0 } } },
    { "llamacpp ends with a single LF", SSE, 0,
      "data: {\"content\":\"a\"}\n\ndata: {\"stop\":true}\n",
      LG_OK,
      { D("data: {\"content\":\"a\"}\n\n", "{\"content\":\"a\"}"),
        { "data: {\"stop\":true}\n", "{\"stop\":true}", 1, NULL, NULL, NULL, 0, 1 } } },

    /* ---- SSE fields ---- */
    { "comments pass through", SSE, 0,
      ": ping\n\n:\n\ndata: x\n: mid-event comment\n\n",
      LG_OK,
      { N(": ping\n\n"), N(":\n\n"), D("data: x\n: mid-event comment\n\n", "x") } },
    { "event id retry and unknown fields", SSE, 0,
      "event: add\nid: 7\nretry: 1000\nfoo: bar\ndata: 1\n\n"
      "event: a\nevent: b\n\n",
      LG_OK,
      { { "event: add\nid: 7\nretry: 1000\nfoo: bar\ndata: 1\n\n", "1", 1, "add", "7", NULL, 0, 0 },
        { "event: a\nevent: b\n\n", NULL, 0, "b", NULL, NULL, 0, 0 } } },
    { "multi-line data (spec example)", SSE, 0,
      "data: YHOO\ndata: +2\ndata: 10\n\n",
      LG_OK,
      { D("data: YHOO\ndata: +2\ndata: 10\n\n", "YHOO\n+2\n10") } },
    { "colon and space rules", SSE, 0,
      "data\n\ndata:\ndata:\n\ndata:  two\n\ndata:x:y\n\nevent\ndata: z\n\n",
      LG_OK,
      { D("data\n\n", ""), D("data:\ndata:\n\n", "\n"), D("data:  two\n\n", " two"),
        D("data:x:y\n\n", "x:y"), { "event\ndata: z\n\n", "z", 1, "", NULL, NULL, 0, 0 } } },
    { "field names are case-sensitive", SSE, 0,
      "Data: x\nDATA: y\n\n",
      LG_OK,
      { N("Data: x\nDATA: y\n\n") } },
    { "CRLF stream", SSE, 0,
      "data: a\r\n\r\n: ping\r\n\r\nevent: e\r\ndata: b\r\ndata: c\r\n\r\n",
      LG_OK,
      { D("data: a\r\n\r\n", "a"), N(": ping\r\n\r\n"),
        { "event: e\r\ndata: b\r\ndata: c\r\n\r\n", "b\nc", 1, "e", NULL, NULL, 0, 0 } } },
    { "CR-only stream dispatches at the CR", SSE, 0,
      "data: a\r\rdata: b\rdata: c\r\r",
      LG_OK,
      { D("data: a\r\r", "a"), D("data: b\rdata: c\r\r", "b\nc") } },
    { "LF after a bare-CR dispatch goes to the next event", SSE, 0,
      "data: a\r\r\ndata: b\n\n",
      LG_OK,
      { D("data: a\r\r", "a"), D("\ndata: b\n\n", "b") } },
    { "CR blank line after LF waits for the next byte", SSE, 0,
      "data: a\n\rdata: b\n\n",
      LG_OK,
      { D("data: a\n\r", "a"), D("data: b\n\n", "b") } },
    { "waiting CR event dispatched by finish", SSE, 0,
      "data: a\r\n\r",
      LG_OK,
      { D("data: a\r\n\r", "a") } },
    { "mixed terminators", SSE, 0,
      "data: a\r\ndata: b\rdata: c\n\r\n",
      LG_OK,
      { D("data: a\r\ndata: b\rdata: c\n\r\n", "a\nb\nc") } },
    { "leading blank lines", SSE, 0,
      "\n\r\n\rdata: x\n\n",
      LG_OK,
      { N("\n"), N("\r\n"), N("\r"), D("data: x\n\n", "x") } },
    { "BOM at start", SSE, 0,
      "\xEF\xBB\xBF" "data: x\n\ndata: y\n\n",
      LG_OK,
      { D("\xEF\xBB\xBF" "data: x\n\n", "x"), D("data: y\n\n", "y") } },
    { "only one BOM is stripped", SSE, 0,
      "\xEF\xBB\xBF\xEF\xBB\xBF" "data: x\n\n",
      LG_OK,
      { N("\xEF\xBB\xBF\xEF\xBB\xBF" "data: x\n\n") } },
    { "BOM later in the stream is not stripped", SSE, 0,
      "data: x\n\n\xEF\xBB\xBF" "data: y\n\n",
      LG_OK,
      { D("data: x\n\n", "x"), N("\xEF\xBB\xBF" "data: y\n\n") } },
    { "BOM then blank line", SSE, 0,
      "\xEF\xBB\xBF\n",
      LG_OK,
      { N("\xEF\xBB\xBF\n") } },
    { "finish with partial unterminated line", SSE, 0,
      "data: a\n\ndata: {\"content\":\"tr",
      LG_OK,
      { D("data: a\n\n", "a"),
        { "data: {\"content\":\"tr", "{\"content\":\"tr", 1, NULL, NULL, NULL, 0, 1 } } },
    { "finish with partial comment", SSE, 0,
      ": keep",
      LG_OK,
      { { ": keep", NULL, 0, NULL, NULL, NULL, 0, 1 } } },
    { "sse limit", SSE, 20,
      "data: 1\n\ndata: 0123456789abcdef\n\n",
      LG_E_LIMIT,
      { D("data: 1\n\n", "1") } },
    { "sse limit counts the LF attached to a waiting CR", SSE, 10,
      "data: 1\r\n\r\n",
      LG_E_LIMIT,
      { { NULL } } },
    { "sse event exactly at limit", SSE, 10,
      "data: 12\n\ndata: 3\n\n",
      LG_OK,
      { D("data: 12\n\n", "12"), D("data: 3\n\n", "3") } },
    { "empty input", SSE, 0, "", LG_OK, { { NULL } } },
};

#define NVEC (sizeof vectors / sizeof vectors[0])

static void check_expected(const vec *v, const rec *r)
{
    int n = 0;
    while (n < 10 && v->ev[n].raw)
        n++;
    cr_assert_eq(r->n, n, "%s: %d events, expected %d", v->name, r->n, n);
    for (int i = 0; i < n; i++) {
        const xev *x = &v->ev[i];
        const rec_ev *e = &r->ev[i];
        const char *data = x->data ? x->data : "";
        cr_assert_str_eq(e->raw, x->raw, "%s: event %d raw", v->name, i);
        cr_assert_eq(e->raw_len, strlen(x->raw));
        cr_assert_eq(e->data_len, strlen(data), "%s: event %d data_len", v->name, i);
        cr_assert_str_eq(e->data, data, "%s: event %d data", v->name, i);
        cr_assert_eq(e->has_data, x->has_data, "%s: event %d has_data", v->name, i);
        cr_assert_eq(e->done, x->done, "%s: event %d done", v->name, i);
        cr_assert_eq(e->partial, x->partial, "%s: event %d partial", v->name, i);
        if (x->event)
            cr_assert(e->event && strcmp(e->event, x->event) == 0, "%s: event %d event", v->name, i);
        else
            cr_assert_null(e->event, "%s: event %d event", v->name, i);
        if (x->id)
            cr_assert(e->id && strcmp(e->id, x->id) == 0, "%s: event %d id", v->name, i);
        else
            cr_assert_null(e->id, "%s: event %d id", v->name, i);
        if (x->error)
            cr_assert(e->error && strcmp(e->error, x->error) == 0, "%s: event %d error", v->name, i);
        else
            cr_assert_null(e->error, "%s: event %d error", v->name, i);
    }
}

ParameterizedTestParameters(stream_vectors, every_split)
{
    static size_t idx[NVEC];
    for (size_t i = 0; i < NVEC; i++)
        idx[i] = i;
    return cr_make_param_array(size_t, idx, NVEC);
}

ParameterizedTest(size_t *ip, stream_vectors, every_split,
                  .init = guard_setup, .fini = guard_teardown)
{
    const vec *v = &vectors[*ip];
    size_t len = strlen(v->in);
    size_t max = v->max ? v->max : LG_STREAM_DEFAULT_MAX_EVENT;
    size_t cuts[1024];
    cr_assert_lt(len, 1024);

    /* Whole. */
    rec whole = { 0 };
    cuts[0] = len;
    int rc = run_cuts(v->kind, max, v->in, len, cuts, len ? 1 : 0, &whole);
    cr_assert_eq(rc, v->err, "%s: whole returned %d", v->name, rc);
    check_expected(v, &whole);

    /* One byte at a time. */
    rec bytes = { 0 };
    for (size_t i = 0; i < len; i++)
        cuts[i] = i + 1;
    rc = run_cuts(v->kind, max, v->in, len, cuts, len, &bytes);
    cr_assert_eq(rc, v->err, "%s: byte by byte returned %d", v->name, rc);
    rec_eq(&whole, &bytes, "byte by byte");
    rec_free(&bytes);

    /* Two pieces, split at every offset (an empty first piece included). */
    for (size_t k = 0; k <= len; k++) {
        rec split = { 0 };
        cuts[0] = k;
        cuts[1] = len;
        rc = run_cuts(v->kind, max, v->in, len, cuts, 2, &split);
        cr_assert_eq(rc, v->err, "%s: split at %zu returned %d", v->name, k, rc);
        rec_eq(&whole, &split, "split");
        rec_free(&split);
    }
    rec_free(&whole);
}

/* ==== Targeted behaviour ==== */

static rec g_rec;

static void rec_reset(void)
{
    rec_free(&g_rec);
}

TestSuite(stream_api, .fini = rec_reset);

Test(stream_api, init_rejects_bad_arguments)
{
    lg_stream s;
    cr_assert_eq(lg_stream_init(&s, 0, 100), LG_E_INVAL);
    cr_assert_eq(lg_stream_feed(&s, "x\n", 2, on_event, &g_rec), LG_E_INVAL);
    lg_stream_free(&s);
    cr_assert_eq(lg_stream_init(&s, 3, 100), LG_E_INVAL);
    lg_stream_free(&s);
    cr_assert_eq(lg_stream_init(&s, LG_STREAM_SSE, 0), LG_E_INVAL);
    lg_stream_free(&s);
    cr_assert_eq(g_rec.n, 0);
}

Test(stream_api, feed_after_finish_is_a_state_error)
{
    lg_stream s;
    cr_assert_eq(lg_stream_init(&s, LG_STREAM_SSE, 100), LG_OK);
    cr_assert_eq(lg_stream_feed(&s, "data: a\n\n", 9, on_event, &g_rec), LG_OK);
    cr_assert_eq(lg_stream_finish(&s, on_event, &g_rec), LG_OK);
    cr_assert_eq(lg_stream_feed(&s, "data: b\n\n", 9, on_event, &g_rec), LG_E_STATE);
    cr_assert_eq(lg_stream_finish(&s, on_event, &g_rec), LG_OK);
    cr_assert_eq(g_rec.n, 1);
    lg_stream_free(&s);
}

Test(stream_api, limit_is_sticky_with_offset)
{
    lg_stream s;
    cr_assert_eq(lg_stream_init(&s, LG_STREAM_SSE, 16), LG_OK);
    const char *in = "data: 1\n\ndata: 0123456789abcdef\n\ndata: 2\n\n";
    cr_assert_eq(lg_stream_feed(&s, in, strlen(in), on_event, &g_rec), LG_E_LIMIT);
    cr_assert_eq(g_rec.n, 1);
    /* The second event starts at 9; its 17th byte is the first too many. */
    cr_assert_eq(lg_stream_error_offset(&s), 9 + 16);
    cr_assert_eq(lg_stream_fed(&s), 9 + 16);
    cr_assert_eq(lg_stream_feed(&s, "data: 3\n\n", 9, on_event, &g_rec), LG_E_LIMIT);
    cr_assert_eq(lg_stream_finish(&s, on_event, &g_rec), LG_E_LIMIT);
    cr_assert_eq(g_rec.n, 1);
    lg_stream_free(&s);
}

Test(stream_api, limit_offset_same_when_byte_by_byte)
{
    lg_stream s;
    cr_assert_eq(lg_stream_init(&s, LG_STREAM_NDJSON, 8), LG_OK);
    const char *in = "{}\n{\"aaaaaaaa\":1}\n";
    int rc = LG_OK;
    size_t i;
    for (i = 0; in[i] && rc == LG_OK; i++)
        rc = lg_stream_feed(&s, in + i, 1, on_event, &g_rec);
    cr_assert_eq(rc, LG_E_LIMIT);
    cr_assert_eq(i - 1, 3 + 8, "failed on the byte at offset %zu", i - 1);
    cr_assert_eq(lg_stream_error_offset(&s), 3 + 8);
    cr_assert_eq(lg_stream_fed(&s), 0);
    cr_assert_eq(g_rec.n, 1);
    lg_stream_free(&s);
}

Test(stream_api, no_error_offset_without_error)
{
    lg_stream s;
    cr_assert_eq(lg_stream_init(&s, LG_STREAM_NDJSON, 8), LG_OK);
    cr_assert_eq(lg_stream_error_offset(&s), 0);
    lg_stream_free(&s);
}

Test(stream_api, callback_stop_and_resume)
{
    const char *in = "data: a\n\n: c\n\ndata: b\n\ndata: [DONE]\n\n";
    size_t len = strlen(in);
    for (int kind = LG_STREAM_NDJSON; kind <= LG_STREAM_SSE; kind++) {
        rec ref = { 0 };
        lg_stream s;
        cr_assert_eq(lg_stream_init(&s, kind, 100), LG_OK);
        cr_assert_eq(lg_stream_feed(&s, in, len, on_event, &ref), LG_OK);
        cr_assert_eq(lg_stream_finish(&s, on_event, &ref), LG_OK);
        lg_stream_free(&s);

        /* Stop at every event in turn; resume with the bytes not taken. */
        for (int stop = 1; stop <= ref.n; stop++) {
            rec r = { 0 };
            r.stop_at = stop;
            cr_assert_eq(lg_stream_init(&s, kind, 100), LG_OK);
            size_t at = 0;
            int rc = lg_stream_feed(&s, in, len, on_event, &r);
            while (rc == 99) {
                at += lg_stream_fed(&s);
                cr_assert_eq(r.all_len + lg_stream_pending(&s), at);
                rc = lg_stream_feed(&s, in + at, len - at, on_event, &r);
            }
            cr_assert_eq(rc, LG_OK);
            cr_assert_eq(lg_stream_finish(&s, on_event, &r), LG_OK);
            rec_eq(&ref, &r, "stop and resume");
            lg_stream_free(&s);
            rec_free(&r);
        }
        rec_free(&ref);
    }
}

Test(stream_api, callback_stop_on_waiting_cr_event)
{
    /* The CRLF-stream event waits on its CR; the next piece's first byte is
     * not LF, so it is dispatched before any of that piece is taken. */
    lg_stream s;
    g_rec.stop_at = 1;
    cr_assert_eq(lg_stream_init(&s, LG_STREAM_SSE, 100), LG_OK);
    cr_assert_eq(lg_stream_feed(&s, "data: a\n\r", 9, on_event, &g_rec), LG_OK);
    cr_assert_eq(g_rec.n, 0);
    cr_assert_eq(lg_stream_pending(&s), 9);
    cr_assert_eq(lg_stream_feed(&s, "data: b\n\n", 9, on_event, &g_rec), 99);
    cr_assert_eq(lg_stream_fed(&s), 0);
    cr_assert_eq(g_rec.n, 1);
    cr_assert_eq(lg_stream_pending(&s), 0);
    cr_assert_eq(lg_stream_feed(&s, "data: b\n\n", 9, on_event, &g_rec), LG_OK);
    cr_assert_eq(g_rec.n, 2);
    cr_assert_str_eq(g_rec.ev[1].data, "b");
    lg_stream_free(&s);
}

Test(stream_api, callback_stop_in_finish)
{
    lg_stream s;
    g_rec.stop_at = 1;
    cr_assert_eq(lg_stream_init(&s, LG_STREAM_NDJSON, 100), LG_OK);
    cr_assert_eq(lg_stream_feed(&s, "{}", 2, on_event, &g_rec), LG_OK);
    cr_assert_eq(lg_stream_finish(&s, on_event, &g_rec), 99);
    cr_assert_eq(lg_stream_pending(&s), 0);
    cr_assert_eq(g_rec.n, 1);
    lg_stream_free(&s);
}

Test(stream_api, id_with_nul_is_ignored)
{
    static const char in[] = "id: 1\nid: a\0b\ndata: x\n\nid: q\0\n\n";
    size_t len = sizeof in - 1;
    lg_stream s;
    cr_assert_eq(lg_stream_init(&s, LG_STREAM_SSE, 100), LG_OK);
    cr_assert_eq(lg_stream_feed(&s, in, len, on_event, &g_rec), LG_OK);
    cr_assert_eq(lg_stream_finish(&s, on_event, &g_rec), LG_OK);
    cr_assert_eq(g_rec.n, 2);
    cr_assert_str_eq(g_rec.ev[0].id, "1");
    cr_assert_str_eq(g_rec.ev[0].data, "x");
    cr_assert_null(g_rec.ev[1].id);
    cr_assert_eq(g_rec.all_len, len);
    cr_assert(memcmp(g_rec.all, in, len) == 0);
    lg_stream_free(&s);
}

Test(stream_api, nul_bytes_in_data_are_kept)
{
    static const char in[] = "data: a\0b\n\n{\"x\":\"\0\"}\n";
    lg_stream s;
    cr_assert_eq(lg_stream_init(&s, LG_STREAM_SSE, 100), LG_OK);
    cr_assert_eq(lg_stream_feed(&s, in, 11, on_event, &g_rec), LG_OK);
    cr_assert_eq(g_rec.n, 1);
    cr_assert_eq(g_rec.ev[0].data_len, 3);
    cr_assert(memcmp(g_rec.ev[0].data, "a\0b", 3) == 0);
    lg_stream_free(&s);
    cr_assert_eq(lg_stream_init(&s, LG_STREAM_NDJSON, 100), LG_OK);
    cr_assert_eq(lg_stream_feed(&s, in + 11, sizeof in - 12, on_event, &g_rec), LG_OK);
    cr_assert_eq(g_rec.n, 2);
    cr_assert_eq(g_rec.ev[1].data_len, 9);
    lg_stream_free(&s);
}

Test(stream_api, null_callback_still_consumes)
{
    lg_stream s;
    cr_assert_eq(lg_stream_init(&s, LG_STREAM_SSE, 100), LG_OK);
    cr_assert_eq(lg_stream_feed(&s, "data: a\n\ndata: b", 16, NULL, NULL), LG_OK);
    cr_assert_eq(lg_stream_pending(&s), 7);
    cr_assert_eq(lg_stream_finish(&s, NULL, NULL), LG_OK);
    cr_assert_eq(lg_stream_pending(&s), 0);
    lg_stream_free(&s);
}

Test(stream_api, zero_length_feed)
{
    lg_stream s;
    cr_assert_eq(lg_stream_init(&s, LG_STREAM_SSE, 100), LG_OK);
    cr_assert_eq(lg_stream_feed(&s, NULL, 0, on_event, &g_rec), LG_OK);
    cr_assert_eq(lg_stream_feed(&s, "data: a\n\r", 9, on_event, &g_rec), LG_OK);
    /* An empty piece settles nothing: the CR still waits. */
    cr_assert_eq(lg_stream_feed(&s, "", 0, on_event, &g_rec), LG_OK);
    cr_assert_eq(g_rec.n, 0);
    cr_assert_eq(lg_stream_feed(&s, "\n", 1, on_event, &g_rec), LG_OK);
    cr_assert_eq(g_rec.n, 1);
    cr_assert_eq(g_rec.ev[0].raw_len, 10);
    lg_stream_free(&s);
}

Test(stream_api, buffers_are_reused_and_bounded)
{
    /* Many events through one stream never hold more than one event. */
    lg_stream s;
    cr_assert_eq(lg_stream_init(&s, LG_STREAM_SSE, 64), LG_OK);
    for (int i = 0; i < 10000; i++) {
        cr_assert_eq(lg_stream_feed(&s, "data: {\"content\":\"tok\"}\n\n", 26, NULL, NULL), LG_OK);
    }
    cr_assert_leq(s.raw.cap, 64);
    cr_assert_leq(s.data.cap, 64);
    lg_stream_free(&s);
}

/* A quadratic decoder would take minutes here (4 MiB fed one byte at a time,
 * a single line); the linear one takes well under a second. */
Test(stream_api, byte_by_byte_long_line_is_linear, .timeout = 20)
{
    size_t n = (size_t)4 << 20;
    for (int kind = LG_STREAM_NDJSON; kind <= LG_STREAM_SSE; kind++) {
        lg_stream s;
        cr_assert_eq(lg_stream_init(&s, kind, n + 16), LG_OK);
        cr_assert_eq(lg_stream_feed(&s, "data: ", 6, on_event, &g_rec), LG_OK);
        for (size_t i = 0; i < n; i++)
            cr_assert_eq(lg_stream_feed(&s, "x", 1, on_event, &g_rec), LG_OK);
        cr_assert_eq(lg_stream_feed(&s, "\n\n", 2, on_event, &g_rec), LG_OK);
        lg_stream_free(&s);
    }
    cr_assert_geq(g_rec.n, 2);
    cr_assert_eq(g_rec.ev[0].data_len, n + 6);
    cr_assert_eq(g_rec.ev[2].data_len, n);
}
