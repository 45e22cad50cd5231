/* The engine's share of a guarded request, for callgrind: one lg_conn set
 * up as the shim sets it up (built-in policy unless a file is given, a
 * 4096-entry vault, a wall clock, events copied into a queue the way
 * shim/fdtab.c queues them), fed the request and answer that
 * tests/bench/shim_bench.c and llmguard-fakellm (echo model) exchange, each
 * in one piece as one write() and one read() deliver them on loopback.
 *
 *   conn_bench request N [POLICY]   N non-streamed POST /api/chat, each the
 *                                   system prompt of shim_bench and a
 *                                   numbered user turn (no two alike, as
 *                                   there: the engine keeps texts it found
 *                                   clean, and a repeated turn would hit)
 *   conn_bench nosys N [POLICY]     the same without the system prompt
 *   conn_bench stream N W [POLICY]  N streamed POST /api/generate of W words
 *                                   (and a number, so that no two are
 *                                   alike), the answer one NDJSON chunk per
 *                                   word
 *
 * Build it with `make build/bench/conn_bench`.  The measured exchanges run
 * inside measured(), after warm-up ones, so
 *   valgrind --tool=callgrind --toggle-collect=measured build/bench/conn_bench request 100
 * counts instructions per exchange (divide by N; valgrind hides the SHA
 * extensions from the program, so SHA-256 is the portable code there).
 * Without valgrind it prints the wall time per exchange.  Exits non-zero if
 * the engine did not forward the request and the answer unchanged (so a
 * profile never measures a refusal by mistake; the request gains only
 * "Accept-Encoding: identity"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "conn.h"
#include "error.h"
#include "policy.h"
#include "vault.h"

static lg_buf events; /* what the shim queues: each event and a newline */
static size_t nevents;

static void on_event(void *ud, const char *json, size_t n)
{
    (void)ud;
    if (events.len > (1 << 20))
        lg_buf_reset(&events);
    char *at = lg_buf_reserve(&events, n + 1);
    if (at) {
        memcpy(at, json, n);
        at[n] = '\n';
        lg_buf_commit(&events, n + 1);
    }
    nevents++;
}

static uint64_t wall_us(void *ud)
{
    (void)ud;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void die(const char *what)
{
    fprintf(stderr, "conn_bench: %s\n", what);
    exit(1);
}

struct exchange {
    lg_buf req, resp;
};

/* Distinct requests cycled through: more than the engine keeps clean texts
 * (conn.c), so a user turn is never one it has seen. */
#define NREQ 256

/* Request k: as tests/bench/shim_bench.c sends it, and the answer
 * llmguard-fakellm's echo model gives (the last message's content). */
static void make_request(struct exchange *x, int sys, int k)
{
    static const char system[] =
        "{\"role\":\"system\",\"content\":\"You are a helpful customer support assistant for "
        "Acme Corp, a company that sells garden tools. Answer questions about orders, returns and "
        "products politely and concisely. Never discuss politics or religion. Do not provide legal "
        "or medical advice. If you do not know the answer, say so and offer to connect the user "
        "with a human agent.\"},";
    char user[128], body[1024], answer[1024];
    snprintf(user, sizeof user, "Question %d: what is the capital of France? Answer in one word.",
             k + 1);
    snprintf(body, sizeof body,
             "{\"model\":\"m\",\"stream\":false,\"messages\":[%s{\"role\":\"user\","
             "\"content\":\"%s\"}]}",
             sys ? system : "", user);
    snprintf(answer, sizeof answer,
             "{\"model\":\"m\",\"created_at\":\"2023-11-14T22:13:20.1234567Z\",\"message\":{"
             "\"role\":\"assistant\",\"content\":\"%s\"},\"done_reason\":\"stop\",\"done\":true,"
             "\"total_duration\":462153701,\"load_duration\":12345678,\"prompt_eval_count\":21,"
             "\"prompt_eval_duration\":8350000,\"eval_count\":21,\"eval_duration\":441001234}",
             user);
    lg_buf_printf(&x->req,
                  "POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  "Content-Length: %zu\r\n\r\n%s",
                  strlen(body), body);
    lg_buf_printf(&x->resp,
                  "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n"
                  "Date: Tue, 14 Nov 2023 22:13:20 GMT\r\nContent-Length: %zu\r\n\r\n%s",
                  strlen(answer), answer);
}

static void make_stream(struct exchange *x, int words, int k)
{
    lg_buf body, ch;
    lg_buf_init(&body, 1 << 20);
    lg_buf_init(&ch, 1 << 20);
    lg_buf_printf(&body, "{\"model\":\"m\",\"prompt\":\"turn%d", k + 1);
    for (int i = 0; i < words; i++)
        lg_buf_printf(&body, " word%d", i);
    lg_buf_puts(&body, "\"}");
    lg_buf_printf(&x->req,
                  "POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  "Content-Length: %zu\r\n\r\n%s",
                  body.len, body.data);
    lg_buf_puts(&x->resp, "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
                          "Date: Tue, 14 Nov 2023 22:13:20 GMT\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < words; i++) {
        lg_buf_reset(&ch);
        lg_buf_printf(&ch,
                      "{\"model\":\"m\",\"created_at\":\"2023-11-14T22:13:20.1234567Z\","
                      "\"response\":\"%sword%d\",\"done\":false}\n",
                      i ? " " : "", i);
        lg_buf_printf(&x->resp, "%zx\r\n%s\r\n", ch.len, ch.data);
    }
    lg_buf_reset(&ch);
    lg_buf_puts(&ch, "{\"model\":\"m\",\"created_at\":\"2023-11-14T22:13:20.1234567Z\","
                     "\"response\":\"\",\"done\":true,\"done_reason\":\"stop\"}\n");
    lg_buf_printf(&x->resp, "%zx\r\n%s\r\n0\r\n\r\n", ch.len, ch.data);
    lg_buf_free(&body);
    lg_buf_free(&ch);
}

/* The answer is delivered per chunk when streaming (the server writes one
 * chunk per token and a reader on loopback mostly sees them one by one),
 * whole otherwise. */
static void run_one(lg_conn *c, const struct exchange *x, int streamed, lg_buf *to_server,
                    lg_buf *to_client)
{
    lg_buf_reset(to_server);
    lg_buf_reset(to_client);
    if (lg_conn_from_client(c, x->req.data, x->req.len, to_server, to_client) != LG_OK)
        die("from_client failed");
    /* forwarded with "Accept-Encoding: identity" added, nothing else */
    if (to_server->len != x->req.len + 27 || to_client->len)
        die("the request was not forwarded as it came");
    if (!streamed) {
        if (lg_conn_from_server(c, x->resp.data, x->resp.len, to_client) != LG_OK)
            die("from_server failed");
    } else {
        const char *p = x->resp.data, *end = p + x->resp.len;
        while (p < end) {
            /* the head, then each "<size>\r\n<data>\r\n" */
            size_t n;
            if (p == x->resp.data) {
                n = (size_t)(strstr(p, "\r\n\r\n") + 4 - p);
            } else {
                size_t sz = strtoul(p, NULL, 16);
                n = (size_t)(strstr(p, "\r\n") + 2 - p) + sz + 2;
            }
            if (lg_conn_from_server(c, p, n, to_client) != LG_OK)
                die("from_server failed");
            p += n;
        }
    }
    if (to_client->len != x->resp.len)
        die("the answer was not passed as it came");
}

static lg_conn *conn;
static struct exchange ex[NREQ];
static int nex = 1; /* exchanges in ex[], used in turn */
static int streamed;
static lg_buf ts, tc;

static double mono_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

/* Separate functions (of different bodies, so that the compiler does not
 * fold them into one) so that callgrind's --toggle-collect can count the
 * measured exchanges alone. */
static void __attribute__((noinline)) warm_up(int n)
{
    for (int i = 0; i < n; i++)
        run_one(conn, &ex[i % nex], streamed, &ts, &tc);
}

/* Returns the wall time per exchange, µs. */
static double __attribute__((noinline)) measured(int n)
{
    double t0 = mono_us();
    for (int i = 0; i < n; i++)
        run_one(conn, &ex[(i + 7) % nex], streamed, &ts, &tc);
    return (mono_us() - t0) / n;
}

int main(int argc, char **argv)
{
    if (argc < 3 || (strcmp(argv[1], "request") && strcmp(argv[1], "nosys") &&
                     strcmp(argv[1], "stream")))
        die("usage: conn_bench request N [POLICY] | nosys N [POLICY] | stream N WORDS [POLICY]");
    streamed = strcmp(argv[1], "stream") == 0;
    if (streamed && argc < 4)
        die("stream needs N and WORDS");
    int n = atoi(argv[2]);
    const char *file = argc > 3 + streamed ? argv[3 + streamed] : NULL;
    lg_policy *pol = NULL;
    lg_diag d;
    memset(&d, 0, sizeof d);
    if ((file ? lg_policy_load_file(file, &pol, &d) : lg_policy_builtin(&pol, &d)) != LG_OK)
        die("policy did not load");
    pol->mode = LG_MODE_ENFORCE;
    lg_vault *v = lg_vault_new(4096);
    lg_buf_init(&events, 1 << 24);
    lg_buf_init(&ts, 1 << 24);
    lg_buf_init(&tc, 1 << 24);
    nex = streamed ? 64 : NREQ; /* streamed: fewer, they are large */
    for (int k = 0; k < nex; k++) {
        lg_buf_init(&ex[k].req, 1 << 24);
        lg_buf_init(&ex[k].resp, 1 << 24);
        if (streamed)
            make_stream(&ex[k], atoi(argv[3]), k);
        else
            make_request(&ex[k], strcmp(argv[1], "request") == 0, k);
    }
    lg_conn_cfg cfg = {
        .policy = pol,
        .vault = v,
        .endpoint = "127.0.0.1:11434",
        .on_event = on_event,
        .now_us = wall_us,
        .id_prefix = "0123456789abcdef-1",
        .pid = 4242,
        .uid = 1000,
        .exe = "/usr/local/bin/shim_bench",
    };
    conn = lg_conn_new(&cfg);
    if (!v || !conn)
        die("out of memory");
    warm_up(300); /* past the scanner's lazy JIT compilation (scan.h) */
    double us = measured(n);
    printf("%s: %.2f us per exchange, %zu events in all\n", argv[1], us, nevents);
    lg_conn_free(conn);
    lg_vault_free(v);
    lg_policy_free(pol);
    lg_buf_free(&events);
    lg_buf_free(&ts);
    lg_buf_free(&tc);
    for (int k = 0; k < nex; k++) {
        lg_buf_free(&ex[k].req);
        lg_buf_free(&ex[k].resp);
    }
    return 0;
}
