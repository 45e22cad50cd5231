/* Load generator for scripts/bench-shim.sh, run once without and once under
 * libllmguard.so so the script can print ratios measured in the same run.
 *
 *   shim_bench syscalls N        N write()+read() pairs of one byte on a pipe
 *                                (fds the shim never tracks: the fast path);
 *                                prints "write_ns X read_ns Y"
 *   shim_bench requests PORT N   N non-streamed POST /api/chat on one
 *                                keep-alive connection, each the same
 *                                system prompt and a numbered user turn
 *                                (no two requests alike); prints "p50_us X
 *                                p99_us Y mean_us Z cpu_req_us C" (C: client
 *                                CPU time per request)
 *   shim_bench stream PORT N W   N streamed POST /api/generate, each a
 *                                numbered W+1-word prompt (the echo model
 *                                answers one token per word); prints
 *                                "tokens T mean_req_us X
 *                                p50_req_us Y cpu_req_us Z" (T counted in the first
 *                                answer; Z: client CPU time per answer)
 *
 * Plain blocking sockets, one connection, Content-Length requests; the
 * response is read to its end by its own framing (Content-Length, or the
 * chunked terminator), so the time is what a client waits for a whole
 * answer.  Outside facts: llmguard-fakellm's echo model streams one NDJSON
 * object per word, each with "done":false, then a final "done":true. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* CPU time (user + system) of this process, µs: the work the shim adds per
 * request or token, which wall time on an idle loopback hides behind the
 * server.  CLOCK_PROCESS_CPUTIME_ID is exact (the scheduler's runtime);
 * getrusage's split into user and system is sampled at ticks. */
static double cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* ==== Untracked fds: the fast path ==== */
static void bench_syscalls(long n)
{
    int p[2];
    char c = 'x';
    if (pipe(p) != 0)
        die("pipe");
    /* Time writes and reads separately: write n bytes in batches the pipe
     * can hold, then read them back. */
    const long batch = 4096;
    double tw = 0, tr = 0;
    for (long done = 0; done < n; done += batch) {
        long k = n - done < batch ? n - done : batch;
        double t0 = now_us();
        for (long i = 0; i < k; i++)
            if (write(p[1], &c, 1) != 1)
                die("write");
        double t1 = now_us();
        for (long i = 0; i < k; i++)
            if (read(p[0], &c, 1) != 1)
                die("read");
        double t2 = now_us();
        tw += t1 - t0;
        tr += t2 - t1;
    }
    printf("write_ns %.1f read_ns %.1f\n", tw * 1e3 / n, tr * 1e3 / n);
}

/* ==== HTTP on one keep-alive connection ==== */
static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0)
        die("socket");
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        die("connect");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static char rbuf[1 << 20];

/* Send one request and read its whole response; returns the body bytes
 * received into rbuf (headers stripped) or exits on an error. */
static size_t roundtrip(int fd, const char *path, const char *body)
{
    char req[65536];
    int len = snprintf(req, sizeof req,
                       "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                       "Content-Length: %zu\r\n\r\n%s",
                       path, strlen(body), body);
    if (len <= 0 || (size_t)len >= sizeof req)
        die("request too long");
    for (int off = 0; off < len;) {
        ssize_t w = write(fd, req + off, (size_t)(len - off));
        if (w <= 0)
            die("write request");
        off += (int)w;
    }
    size_t have = 0;
    char *body_at = NULL;
    long clen = -1;
    int chunked = 0;
    for (;;) {
        if (have == sizeof rbuf - 1) {
            fprintf(stderr, "response too large\n");
            exit(1);
        }
        ssize_t r = read(fd, rbuf + have, sizeof rbuf - 1 - have);
        if (r <= 0) {
            fprintf(stderr, "connection closed after %zu bytes\n", have);
            exit(1);
        }
        have += (size_t)r;
        rbuf[have] = 0;
        if (!body_at) {
            char *e = strstr(rbuf, "\r\n\r\n");
            if (!e)
                continue;
            body_at = e + 4;
            if (strncmp(rbuf, "HTTP/1.1 200", 12) != 0) {
                fprintf(stderr, "unexpected response: %.200s\n", rbuf);
                exit(1);
            }
            char *cl = strcasestr(rbuf, "\r\nContent-Length:");
            if (cl && cl < e)
                clen = strtol(cl + 17, NULL, 10);
            char *te = strcasestr(rbuf, "\r\nTransfer-Encoding: chunked");
            chunked = te && te < e;
        }
        size_t got = have - (size_t)(body_at - rbuf);
        if (clen >= 0 && got >= (size_t)clen)
            break;
        if (chunked && got >= 5 && memcmp(rbuf + have - 5, "0\r\n\r\n", 5) == 0 &&
            (got == 5 || memcmp(rbuf + have - 7, "\r\n", 2) == 0))
            break;
    }
    memmove(rbuf, body_at, have - (size_t)(body_at - rbuf));
    return have - (size_t)(body_at - rbuf);
}

static void bench_requests(int port, int n)
{
    /* As chat clients send it: the same system prompt, with a restriction
     * the scope check reads (scope.h), before every user turn.  The user
     * turn carries a counter, so that no two requests are the same bytes:
     * a real user does not repeat themselves, and the engine keeps texts it
     * found clean (conn.c), which an identical turn would unfairly hit. */
    const char *fmt =
        "{\"model\":\"m\",\"stream\":false,\"messages\":[{\"role\":\"system\","
        "\"content\":\"You are a helpful customer support assistant for Acme Corp, a company that "
        "sells garden tools. Answer questions about orders, returns and products politely and "
        "concisely. Never discuss politics or religion. Do not provide legal or medical advice. If "
        "you do not know the answer, say so and offer to connect the user with a human agent.\"},"
        "{\"role\":\"user\",\"content\":\"Question %d: what is the capital of France? Answer in one "
        "word.\"}]}";
    char body[1024];
    double *t = calloc((size_t)n, sizeof *t);
    int fd = dial(port);
    if (!t)
        die("calloc");
    int seq = 0;
    for (int i = 0; i < 20; i++) { /* warm up: first-use costs are not latency */
        snprintf(body, sizeof body, fmt, ++seq);
        roundtrip(fd, "/api/chat", body);
    }
    double sum = 0, c0 = cpu_us();
    for (int i = 0; i < n; i++) {
        snprintf(body, sizeof body, fmt, ++seq);
        double t0 = now_us();
        roundtrip(fd, "/api/chat", body);
        t[i] = now_us() - t0;
        sum += t[i];
    }
    double cpu = (cpu_us() - c0) / n;
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    printf("p50_us %.1f p99_us %.1f mean_us %.1f cpu_req_us %.2f\n", t[n / 2], t[(n * 99) / 100],
           sum / n, cpu);
    close(fd);
    free(t);
}

static void bench_stream(int port, int n, int words)
{
    /* Each prompt starts with its number, as in bench_requests: the engine
     * keeps texts it found clean (conn.c), and the same prompt every time
     * would not be scanned again.  Made before the clock starts. */
    char prompt[16384] = "";
    size_t pl = 0;
    for (int i = 0; i < words && pl + 16 < sizeof prompt; i++)
        pl += (size_t)snprintf(prompt + pl, sizeof prompt - pl, " word%d", i);
    const int warm = 3;
    char **body = calloc((size_t)(n + warm), sizeof *body);
    double *t = calloc((size_t)n, sizeof *t);
    if (!body || !t)
        die("calloc");
    for (int i = 0; i < n + warm; i++) {
        size_t cap = pl + 64;
        if (!(body[i] = malloc(cap)))
            die("malloc");
        snprintf(body[i], cap, "{\"model\":\"m\",\"prompt\":\"turn%d%s\"}", i + 1, prompt);
    }
    int fd = dial(port);
    long tokens = 0;
    for (int i = 0; i < warm; i++)
        roundtrip(fd, "/api/generate", body[i]);
    double sum = 0, c0 = cpu_us();
    for (int i = 0; i < n; i++) {
        double t0 = now_us();
        size_t len = roundtrip(fd, "/api/generate", body[warm + i]);
        t[i] = now_us() - t0;
        sum += t[i];
        if (i == 0) /* tokens the model sent: one object per word */
            for (char *p = rbuf; (p = memmem(p, len - (size_t)(p - rbuf), "\"done\":false", 12)); p++)
                tokens++;
    }
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    double cpu = (cpu_us() - c0) / n;
    printf("tokens %ld mean_req_us %.1f p50_req_us %.1f cpu_req_us %.1f\n", tokens, sum / n, t[n / 2], cpu);
    close(fd);
    for (int i = 0; i < n + warm; i++)
        free(body[i]);
    free(body);
    free(t);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "syscalls") == 0)
        bench_syscalls(atol(argv[2]));
    else if (argc == 4 && strcmp(argv[1], "requests") == 0)
        bench_requests(atoi(argv[2]), atoi(argv[3]));
    else if (argc == 5 && strcmp(argv[1], "stream") == 0)
        bench_stream(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]));
    else {
        fprintf(stderr, "usage: shim_bench syscalls N | requests PORT N | stream PORT N WORDS\n");
        return 2;
    }
    return 0;
}
