/* Core benchmarks (make bench).  Figures are printed as ratios against a
 * baseline measured in the same process, because these machines are
 * noisy: absolute numbers vary run to run, ratios much less.
 *
 *  1. Scan throughput of the built-in policy over 1 MiB of mixed English
 *     and Chinese text, against a naive loop running every rule's PCRE2
 *     pattern (same JIT code) over the text one after another.
 *  2. Engine time per streamed event: an Ollama NDJSON answer of many
 *     tokens through lg_conn, per chunk, p50/p99 in microseconds, with the
 *     same answer through a policy with no rules as the baseline.
 *  3. The system-prompt scope check (scope.h), which runs on every request
 *     with a system prompt: reading a realistic system prompt, and
 *     matching the same 4 KiB prompts as in 1, beside the rule scan of
 *     those prompts as the baseline; and whole requests through lg_conn
 *     with that system prompt, unchanged (read once per connection) and
 *     changing every time (read each time), against the same request
 *     without a system prompt. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "conn.h"
#include "error.h"
#include "http.h"
#include "json.h"
#include "policy.h"
#include "scan.h"
#include "scope.h"
#include "vault.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *const en[] = {
    "The quarterly report shows steady growth in the northern region. ",
    "Please summarise the attached meeting notes for the team. ",
    "How do I ignore whitespace changes in git diff? ",
    "Our API returns JSON with a status field and a list of items. ",
    "Contact the support desk at help@example.com if the build fails. ",
    "The function parses the header and returns the number of bytes consumed. ",
    "Remember to rotate the logs every night at two o'clock. ",
};
static const char *const zh[] = {
    "请帮我总结一下这份会议纪要的要点。",
    "这个函数负责解析请求头并返回已读取的字节数。",
    "明天下午三点在三楼会议室讨论新版本的发布计划。",
    "如果构建失败，请联系技术支持，电话 13812345678。",
    "我们需要在月底之前完成数据迁移和回归测试。",
};

static char *mixed_text(size_t size, size_t *len)
{
    lg_buf b;
    lg_buf_init(&b, size + 1024);
    unsigned x = 12345;
    while (b.len < size) {
        x = x * 1103515245u + 12345u;
        const char *s = (x >> 16) % 3 ? en[(x >> 8) % 7] : zh[(x >> 8) % 5];
        lg_buf_puts(&b, s);
    }
    return lg_buf_steal(&b, len);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

/* The 4 KiB prompts of the scan benchmark: slice r of text, cut at
 * character boundaries. */
static const char *prompt_slice(const char *text, int r, size_t *len)
{
    size_t pl = 4096;
    while (pl > 0 && ((unsigned char)text[pl] & 0xC0) == 0x80)
        pl--;
    size_t off = (size_t)(r % 64) * 8192, l = pl;
    while (off > 0 && ((unsigned char)text[off] & 0xC0) == 0x80)
        off++, l--;
    *len = l;
    return text + off;
}

/* Returns the p50 of a 4 KiB prompt's scan, in us: the scope check's baseline. */
static double bench_scan(const lg_policy *pol)
{
    size_t n;
    char *text = mixed_text(1 << 20, &n);
    lg_scanner *sc = lg_scanner_new(pol);
    lg_buf out;
    lg_findings f;
    lg_buf_init(&out, n * 2 + 4096);
    lg_findings_init(&f, 1 << 20);
    enum { REPS = 5 };
    double eng[REPS], naive[REPS];
    size_t nf = 0, nnaive = 0;
    pcre2_match_data *md = pcre2_match_data_create(64, NULL);
    for (int r = 0; r < REPS; r++) {
        lg_buf_reset(&out);
        lg_findings_reset(&f);
        double t0 = now_s();
        lg_scan_text(sc, LG_ON_PROMPT | LG_ON_RESPONSE, LG_ROLE_USER, LG_SCAN_ENFORCE, text, n,
                     NULL, &out, &f);
        eng[r] = now_s() - t0;
        nf = f.n;

        t0 = now_s();
        nnaive = 0;
        for (size_t i = 0; i < pol->nrules; i++) {
            /* the JIT code, as the engine uses once a rule has worked */
            const pcre2_code *code = lg_rule_jit_code(&pol->rules[i], 1);
            if (!code)
                code = pol->rules[i].code;
            PCRE2_SIZE off = 0;
            while (off <= n) {
                int rc = pcre2_match(code, (PCRE2_SPTR)text, n, off, 0, md, NULL);
                if (rc < 0)
                    break;
                PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
                nnaive++;
                off = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
            }
        }
        naive[r] = now_s() - t0;
    }
    double te = median(eng, REPS), tn = median(naive, REPS);
    printf("scan: %zu rules over %.1f MiB mixed en/zh text\n", pol->nrules, n / 1048576.0);
    printf("  engine (lg_scan_text, redaction on): %8.1f MB/s  (%zu findings)\n", n / te / 1e6, nf);
    printf("  naive loop over each rule's pattern: %8.1f MB/s  (%zu matches)\n", n / tn / 1e6, nnaive);
    printf("  ratio engine/naive: %.2fx\n", tn / te);

    /* A 4 KiB prompt (a slice of the same text, cut at a character
     * boundary), scanned whole many times: p50 per scan. */
    enum { PROMPTS = 2001 };
    double *pt = malloc(sizeof(double) * PROMPTS);
    for (int r = 0; r < PROMPTS; r++) {
        size_t l;
        const char *pr = prompt_slice(text, r, &l);
        lg_buf_reset(&out);
        lg_findings_reset(&f);
        double t0 = now_s();
        lg_scan_text(sc, LG_ON_PROMPT, LG_ROLE_USER, LG_SCAN_ENFORCE, pr, l, NULL, &out, &f);
        pt[r] = (now_s() - t0) * 1e6;
    }
    double p50 = median(pt, PROMPTS); /* sorts pt */
    printf("  4 KiB prompt (lg_scan_text, prompt side): p50 %.2f us  p99 %.2f us\n", p50,
           pt[PROMPTS * 99 / 100]);
    free(pt);
    pcre2_match_data_free(md);
    lg_findings_free(&f);
    lg_buf_free(&out);
    lg_scanner_free(sc);
    free(text);
    return p50;
}

static char *ollama_stream(int tokens, size_t *len)
{
    lg_buf b;
    lg_buf_init(&b, 1 << 26);
    lg_buf_puts(&b, "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
                    "Date: Thu, 03 Dec 2026 13:00:00 GMT\r\nTransfer-Encoding: chunked\r\n\r\n");
    static const char *const words[] = { "The ", "answer ", "is ", "to ", "parse ", "the ",
                                         "header ", "first, ", "then ", "read ", "the ", "body. ",
                                         "请", "帮", "我", "总结", "。" };
    for (int i = 0; i < tokens; i++) {
        char line[512];
        lg_buf tok;
        lg_buf_init(&tok, 256);
        lg_json_escape(words[i % 17], strlen(words[i % 17]), LG_JSON_ESC_HTML, &tok);
        int k = snprintf(line, sizeof line,
                         "{\"model\":\"llama3.2\",\"created_at\":\"2026-12-03T13:00:00.123456789Z\","
                         "\"message\":{\"role\":\"assistant\",\"content\":%s},\"done\":false}\n",
                         tok.data);
        lg_buf_free(&tok);
        lg_http_chunk(&b, line, (size_t)k);
    }
    const char fin[] = "{\"model\":\"llama3.2\",\"created_at\":\"2026-12-03T13:00:00Z\","
                       "\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true}\n";
    lg_http_chunk(&b, fin, strlen(fin));
    lg_buf_puts(&b, "0\r\n\r\n");
    return lg_buf_steal(&b, len);
}

/* A connection under pol with its own vault (*v), and buffers for what it
 * sends to the server (ts) and the client (tc, up to tc_max bytes). */
static lg_conn *bench_conn(const lg_policy *pol, lg_vault **v, lg_buf *ts, lg_buf *tc, size_t tc_max)
{
    *v = lg_vault_new(100);
    lg_conn_cfg cfg = { 0 };
    cfg.policy = pol;
    cfg.vault = *v;
    lg_conn *c = lg_conn_new(&cfg);
    if (!*v || !c) {
        fprintf(stderr, "bench: no connection\n");
        exit(1);
    }
    lg_buf_init(ts, 1 << 20);
    lg_buf_init(tc, tc_max);
    return c;
}

/* Feed one streamed answer chunk by chunk; per-chunk times in us. */
static void stream_times(const lg_policy *pol, const char *resp, size_t n, double *times, int *count)
{
    lg_vault *v;
    lg_buf ts, tc;
    lg_conn *c = bench_conn(pol, &v, &ts, &tc, 1 << 28);
    const char body_json[] =
        "{\"model\":\"llama3.2\",\"messages\":[{\"role\":\"user\",\"content\":\"hi there\"}]}";
    char req[512];
    snprintf(req, sizeof req, "POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(body_json), body_json);
    lg_conn_from_client(c, req, strlen(req), &ts, &tc);
    if (!ts.len) {
        fprintf(stderr, "bench: the request did not reach the server side\n");
        exit(1);
    }
    const char *body = strstr(resp, "\r\n\r\n") + 4;
    lg_conn_from_server(c, resp, (size_t)(body - resp), &tc);
    int k = 0;
    const char *p = body;
    while (p < resp + n) {
        /* one chunk: size line, data, CRLF */
        size_t sz = strtoul(p, NULL, 16);
        const char *data = strstr(p, "\r\n") + 2;
        const char *next = data + sz + 2;
        double t0 = now_s();
        lg_conn_from_server(c, p, (size_t)(next - p), &tc);
        times[k++] = (now_s() - t0) * 1e6;
        p = next;
    }
    *count = k;
    lg_conn_stats st;
    lg_conn_get_stats(c, &st);
    /* The answer must really have gone through inspection. */
    if (st.inspected != 1 || tc.len < n / 2) {
        fprintf(stderr, "bench: the answer was not inspected\n");
        exit(1);
    }
    lg_buf_free(&ts);
    lg_buf_free(&tc);
    lg_conn_free(c);
    lg_vault_free(v);
}

static void bench_stream(const lg_policy *pol)
{
    enum { TOKENS = 20000 };
    size_t n;
    char *resp = ollama_stream(TOKENS, &n);
    double *t = malloc(sizeof(double) * (TOKENS + 8));
    double *b = malloc(sizeof(double) * (TOKENS + 8));
    int nt, nb;
    lg_policy *empty;
    lg_diag d;
    const char none[] = "{\"version\":1,\"packs\":[]}";
    if (lg_policy_load("empty", none, strlen(none), &empty, &d) != LG_OK) {
        fprintf(stderr, "bench: empty policy: %s\n", d.msg);
        exit(1);
    }
    stream_times(empty, resp, n, b, &nb);
    stream_times(pol, resp, n, t, &nt);
    qsort(t, (size_t)nt, sizeof *t, cmp_double);
    qsort(b, (size_t)nb, sizeof *b, cmp_double);
    printf("stream: Ollama NDJSON answer, %d events through lg_conn, one chunk per call\n", nt);
    printf("  built-in policy: p50 %6.2f us  p99 %6.2f us per event\n", t[nt / 2], t[nt * 99 / 100]);
    printf("  no rules       : p50 %6.2f us  p99 %6.2f us per event (framing and JSON only)\n",
           b[nb / 2], b[nb * 99 / 100]);
    printf("  ratio p50 built-in/no rules: %.2fx\n", t[nt / 2] / b[nb / 2]);
    lg_policy_free(empty);
    free(t);
    free(b);
    free(resp);
}

/* A system prompt as chat clients send one: a role, a task, and two
 * restrictions the scope check reads (the lexicon adds related terms). */
static const char scope_system[] =
    "You are a helpful customer support assistant for Acme Corp, a company that sells garden "
    "tools. Answer questions about orders, returns and products politely and concisely. Never "
    "discuss politics or religion. Do not provide legal or medical advice. If you do not know the "
    "answer, say so and offer to connect the user with a human agent.";

/* Time per lg_conn_from_client of a whole request on one connection, p50
 * in us: the system prompt as given (NULL: none), or when vary, with a
 * different last character each time, so that it must be read again.  The
 * user turn is numbered: a chat's new turn is never one the connection
 * has seen (conn.h keeps texts known clean). */
static double conn_request_p50(const lg_policy *pol, const char *system, int vary, uint64_t *reads)
{
    enum { REQS = 2001 };
    lg_vault *v;
    lg_buf ts, tc;
    lg_conn *c = bench_conn(pol, &v, &ts, &tc, 1 << 20);
    static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                               "Content-Length: 94\r\n\r\n{\"model\":\"m\",\"message\":"
                               "{\"role\":\"assistant\",\"content\":\"Paris.\"},\"done\":true,"
                               "\"total_duration\":1}";
    double *t = malloc(sizeof(double) * REQS);
    for (int i = 0; i < REQS; i++) {
        char body[2048], req[2560];
        if (system)
            snprintf(body, sizeof body,
                     "{\"model\":\"m\",\"stream\":false,\"messages\":[{\"role\":\"system\","
                     "\"content\":\"%s%c\"},{\"role\":\"user\",\"content\":\"Question %d: "
                     "what is the capital of France? Answer in one word.\"}]}",
                     system, vary ? 'a' + i % 26 : ' ', i + 1);
        else
            snprintf(body, sizeof body,
                     "{\"model\":\"m\",\"stream\":false,\"messages\":[{\"role\":\"user\","
                     "\"content\":\"Question %d: what is the capital of France? Answer in one "
                     "word.\"}]}",
                     i + 1);
        int k = snprintf(req, sizeof req,
                         "POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s",
                         strlen(body), body);
        lg_buf_reset(&ts);
        lg_buf_reset(&tc);
        double t0 = now_s();
        lg_conn_from_client(c, req, (size_t)k, &ts, &tc);
        t[i] = (now_s() - t0) * 1e6;
        lg_conn_from_server(c, resp, strlen(resp), &tc);
        if (!ts.len || !tc.len) {
            fprintf(stderr, "bench: request %d did not go through\n", i);
            exit(1);
        }
    }
    lg_conn_stats st;
    lg_conn_get_stats(c, &st);
    *reads = st.scope_reads;
    double p50 = median(t, REQS);
    free(t);
    lg_buf_free(&ts);
    lg_buf_free(&tc);
    lg_conn_free(c);
    lg_vault_free(v);
    return p50;
}

static void bench_scope(const lg_policy *pol, double scan_p50)
{
    enum { READS = 2001, MATCHES = 2001 };
    lg_scope *sc = calloc(1, sizeof *sc);
    double *t = malloc(sizeof(double) * (READS > MATCHES ? READS : MATCHES));
    if (!sc || !t)
        exit(1);
    /* the first reading in a new lg_scope also builds its word-list table
     * (and touches its pages): what a connection's first request pays */
    enum { FRESH = 41 };
    double t0;
    for (int r = 0; r < FRESH; r++) {
        lg_scope *fresh = calloc(1, sizeof *fresh);
        if (!fresh)
            exit(1);
        t0 = now_s();
        lg_scope_extract(fresh, scope_system, strlen(scope_system));
        lg_scope_finish(fresh);
        t[r] = (now_s() - t0) * 1e6;
        free(fresh);
    }
    double first = median(t, FRESH);
    for (int r = 0; r < READS; r++) {
        t0 = now_s();
        lg_scope_reset(sc);
        lg_scope_extract(sc, scope_system, strlen(scope_system));
        lg_scope_finish(sc);
        t[r] = (now_s() - t0) * 1e6;
    }
    double read = median(t, READS);
    size_t n;
    char *text = mixed_text(1 << 20, &n);
    lg_scope_hit h;
    int hits = 0;
    for (int r = 0; r < MATCHES; r++) {
        size_t l;
        const char *pr = prompt_slice(text, r, &l);
        t0 = now_s();
        hits += lg_scope_match(sc, pr, l, &h);
        t[r] = (now_s() - t0) * 1e6;
    }
    double match = median(t, MATCHES);
    double big[9];
    for (int r = 0; r < 9; r++) {
        t0 = now_s();
        hits += lg_scope_match(sc, text + (size_t)r * 65536, 65536, &h);
        big[r] = (now_s() - t0) * 1e6;
    }
    double match64 = median(big, 9);
    printf("scope: the system-prompt scope check, a %zu-byte system prompt (%zu topic phrases)\n",
           strlen(scope_system), sc->nph);
    printf("  read it (reset, extract, finish): p50 %6.2f us  (first in a new lg_scope %.2f us)\n",
           read, first);
    printf("  match a 4 KiB prompt:             p50 %6.2f us  (%d hits)  64 KiB: %.1f us\n", match,
           hits, match64);
    printf("  ratio to the rule scan of the same 4 KiB (p50 %.2f us): read %.2fx, match %.2fx\n",
           scan_p50, read / scan_p50, match / scan_p50);
    uint64_t r0, r1, r2;
    double none = conn_request_p50(pol, NULL, 0, &r0);
    double same = conn_request_p50(pol, scope_system, 0, &r1);
    double vary = conn_request_p50(pol, scope_system, 1, &r2);
    printf("  requests through lg_conn, one connection: p50 per request (lg_conn_from_client)\n");
    printf("    no system prompt:                    %6.2f us\n", none);
    printf("    the same system prompt every time:   %6.2f us  (%.2fx; read %llu times)\n", same,
           same / none, (unsigned long long)r1);
    printf("    a changed system prompt every time:  %6.2f us  (%.2fx; read %llu times)\n", vary,
           vary / none, (unsigned long long)r2);
    free(text);
    free(t);
    free(sc);
}

int main(void)
{
    lg_policy *pol;
    lg_diag d;
    if (lg_policy_builtin(&pol, &d) != LG_OK) {
        fprintf(stderr, "bench: built-in policy: %s\n", d.msg);
        return 1;
    }
    double scan_p50 = bench_scan(pol);
    bench_stream(pol);
    bench_scope(pol, scan_p50);
    lg_policy_free(pol);
    return 0;
}
