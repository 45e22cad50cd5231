/* Core benchmarks (make bench).  Figures are printed as ratios against a
 * baseline measured in the same process, because these machines are
 * noisy: absolute numbers vary run to run, ratios much less.
 *
 *  1. Scan throughput of the built-in policy over 1 MiB of mixed English
 *     and Chinese text, against a naive loop running every rule's PCRE2
 *     pattern (same JIT code) over the text one after another.
 *  2. Engine time per streamed event: an Ollama NDJSON answer of many
 *     tokens through lg_conn, per chunk, p50/p99 in microseconds, with the
 *     same answer through a policy with no rules as the baseline. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
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

static void bench_scan(const lg_policy *pol)
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
    size_t pl = 4096;
    while (pl > 0 && ((unsigned char)text[pl] & 0xC0) == 0x80)
        pl--;
    double *pt = malloc(sizeof(double) * PROMPTS);
    for (int r = 0; r < PROMPTS; r++) {
        const char *pr = text + (size_t)(r % 64) * 8192;
        size_t off = (size_t)(pr - text), l = pl;
        while (off > 0 && ((unsigned char)text[off] & 0xC0) == 0x80)
            off++, l--;
        lg_buf_reset(&out);
        lg_findings_reset(&f);
        double t0 = now_s();
        lg_scan_text(sc, LG_ON_PROMPT, LG_ROLE_USER, LG_SCAN_ENFORCE, text + off, l, NULL, &out, &f);
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

/* Feed one streamed answer chunk by chunk; per-chunk times in us. */
static void stream_times(const lg_policy *pol, const char *resp, size_t n, double *times, int *count)
{
    lg_vault *v = lg_vault_new(100);
    lg_conn_cfg cfg = { 0 };
    cfg.policy = pol;
    cfg.vault = v;
    lg_conn *c = lg_conn_new(&cfg);
    lg_buf ts, tc;
    lg_buf_init(&ts, 1 << 20);
    lg_buf_init(&tc, 1 << 28);
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

int main(void)
{
    lg_policy *pol;
    lg_diag d;
    if (lg_policy_builtin(&pol, &d) != LG_OK) {
        fprintf(stderr, "bench: built-in policy: %s\n", d.msg);
        return 1;
    }
    bench_scan(pol);
    bench_stream(pol);
    lg_policy_free(pol);
    return 0;
}
