/* The I/O-model matrix client: one streamed /api/generate request per
 * combination of blocking or non-blocking socket x write call (send, write,
 * writev, sendmsg) x read call (recv, read, readv, recvmsg) x readiness API
 * (poll, select, epoll level-triggered, edge-triggered, one-shot,
 * epoll_pwait) x read buffer size (1, 7, 4096, 65536).  Run under the shim
 * against llmguard-fakellm's echo model, every combination must finish
 * within its deadline with the answer equal to the prompt (or, with
 * --expect-block, a 403 and EOF).  Level-triggered and one-shot waits read
 * once per wake-up, so bytes the shim holds must make the fd readable;
 * edge-triggered waits read until EAGAIN, as edge-triggered code must.
 * Blocking x edge-triggered is skipped: it is not a valid way to use ET.
 *
 * Prints one line per combination: "<name> ok <fnv1a of the raw response>"
 * or "<name> FAIL <why>"; exit status 1 if any failed. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <signal.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

static const char *wnames[] = {"send", "write", "writev", "sendmsg"};
static const char *rnames[] = {"recv", "read", "readv", "recvmsg"};
static const char *pnames[] = {"poll", "select", "epoll-lt", "epoll-et", "epoll-oneshot", "epoll-pwait"};
static const size_t bufsizes[] = {1, 7, 4096, 65536};

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int do_write(int fd, int how, const char *h, size_t hn, const char *b, size_t bn)
{
    switch (how) {
    case 0: {
        ssize_t r = send(fd, h, hn, MSG_NOSIGNAL);
        if (r >= 0 && bn) {
            ssize_t r2 = send(fd, b, bn, MSG_NOSIGNAL);
            if (r2 < 0)
                return -1;
            r += r2;
        }
        return (int)r;
    }
    case 1: {
        ssize_t r = write(fd, h, hn);
        if (r >= 0 && bn) {
            ssize_t r2 = write(fd, b, bn);
            if (r2 < 0)
                return -1;
            r += r2;
        }
        return (int)r;
    }
    case 2: {
        struct iovec v[2] = {{(void *)h, hn}, {(void *)b, bn}};
        return (int)writev(fd, v, 2);
    }
    default: {
        struct iovec v[2] = {{(void *)h, hn}, {(void *)b, bn}};
        struct msghdr m = {.msg_iov = v, .msg_iovlen = 2};
        return (int)sendmsg(fd, &m, MSG_NOSIGNAL);
    }
    }
}

static ssize_t do_read(int fd, int how, char *p, size_t n)
{
    switch (how) {
    case 0:
        return recv(fd, p, n, 0);
    case 1:
        return read(fd, p, n);
    case 2: {
        size_t a = n / 2 ? n / 2 : n;
        struct iovec v[2] = {{p, a}, {p + a, n - a}};
        return readv(fd, v, n - a ? 2 : 1);
    }
    default: {
        size_t a = n / 2 ? n / 2 : n;
        struct iovec v[2] = {{p, a}, {p + a, n - a}};
        struct msghdr m = {.msg_iov = v, .msg_iovlen = n - a ? 2 : 1};
        return recvmsg(fd, &m, 0);
    }
    }
}

/* Wait until fd is readable.  1 ready, 0 timeout, -1 error. */
static int wait_in(int how, int fd, int ep, int ms)
{
    if (how == 0) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        return poll(&p, 1, ms);
    }
    if (how == 1) {
        fd_set r;
        FD_ZERO(&r);
        FD_SET(fd, &r);
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
        return select(fd + 1, &r, NULL, NULL, &tv);
    }
    struct epoll_event ev[4];
    int r;
    if (how == 5) {
        sigset_t none;
        sigemptyset(&none);
        r = epoll_pwait(ep, ev, 4, ms, &none);
    } else {
        r = epoll_wait(ep, ev, 4, ms);
    }
    if (r > 0 && ev[0].data.u64 != 0xfeedfacecafeULL)
        return -1;
    return r > 0 ? 1 : r;
}

/* Decode the chunked body and concatenate the "response" fields. */
static int check_echo(const char *raw, size_t n, const char *prompt, char *why, size_t wn)
{
    if (n < 12 || memcmp(raw, "HTTP/1.1 200", 12) != 0) {
        snprintf(why, wn, "status: %.40s", raw);
        return -1;
    }
    const char *body = memmem(raw, n, "\r\n\r\n", 4);
    if (!body)
        return snprintf(why, wn, "no header end"), -1;
    body += 4;
    char *plain = malloc(n + 1), *text = malloc(n + 1);
    size_t pl = 0, tl = 0;
    const char *p = body, *end = raw + n;
    for (;;) {
        char *e;
        unsigned long sz = strtoul(p, &e, 16);
        const char *crlf = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (!crlf || e == p) {
            free(plain), free(text);
            return snprintf(why, wn, "bad chunk"), -1;
        }
        p = crlf + 2;
        if (sz == 0)
            break;
        if ((size_t)(end - p) < sz + 2) {
            free(plain), free(text);
            return snprintf(why, wn, "short chunk"), -1;
        }
        memcpy(plain + pl, p, sz);
        pl += sz;
        p += sz + 2;
    }
    plain[pl] = 0;
    for (const char *q = plain; (q = strstr(q, "\"response\":\"")); ) {
        q += 12;
        while (*q && *q != '"') {
            if (*q == '\\' && q[1]) {
                q++;
                if (*q == 'u') {
                    text[tl++] = (char)strtol((char[]){q[1], q[2], q[3], q[4], 0}, NULL, 16);
                    q += 5;
                    continue;
                }
                text[tl++] = *q == 'n' ? '\n' : *q;
                q++;
                continue;
            }
            text[tl++] = *q++;
        }
    }
    text[tl] = 0;
    int ok = strcmp(text, prompt) == 0;
    if (!ok)
        snprintf(why, wn, "echo mismatch: got '%.60s'", text);
    free(plain);
    free(text);
    return ok ? 0 : -1;
}

static int run_one(int port, int nb, int w, int r, int pw, size_t bs, int expect_block,
                   const char *prompt_base, int verbose)
{
    char name[128], why[200] = "";
    snprintf(name, sizeof name, "%s/%s/%s/%s/%zu", nb ? "nonblock" : "block", wnames[w], rnames[r],
             pnames[pw], bs);
    char prompt[256], body[512], head[512];
    snprintf(prompt, sizeof prompt, "%s %s", prompt_base, name);
    int bn = snprintf(body, sizeof body, "{\"model\":\"echo\",\"prompt\":\"%s\"}", prompt);
    int hn = snprintf(head, sizeof head,
                      "POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                      "Content-Length: %d\r\nConnection: close\r\n\r\n", port, bn);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        printf("%s FAIL connect: %s\n", name, strerror(errno));
        close(fd);
        return -1;
    }
    if (nb)
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    int ep = -1;
    uint32_t evmask = EPOLLIN;
    if (pw >= 2) {
        ep = epoll_create1(EPOLL_CLOEXEC);
        if (pw == 3)
            evmask |= EPOLLET;
        if (pw == 4)
            evmask |= EPOLLONESHOT;
        struct epoll_event ev = {.events = evmask, .data.u64 = 0xfeedfacecafeULL};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
    int rc = -1;
    long long deadline = now_ms() + 10000;
    int wr = do_write(fd, w, head, (size_t)hn, body, (size_t)bn);
    if (wr != hn + bn) {
        snprintf(why, sizeof why, "write returned %d of %d (%s)", wr, hn + bn, strerror(errno));
        goto out;
    }
    size_t cap = 1 << 20, len = 0;
    char *raw = malloc(cap), *buf = malloc(bs);
    int eof = 0;
    while (!eof) {
        int left = (int)(deadline - now_ms());
        if (left <= 0) {
            snprintf(why, sizeof why, "hang (%zu bytes so far)", len);
            break;
        }
        int wt = wait_in(pw, fd, ep, left);
        if (wt < 0) {
            snprintf(why, sizeof why, "wait: %s", strerror(errno));
            break;
        }
        if (wt == 0)
            continue;
        /* ET reads until EAGAIN; LT and one-shot read once per wake-up. */
        for (;;) {
            ssize_t k = do_read(fd, r, buf, bs);
            if (k > 0) {
                if (len + (size_t)k > cap)
                    break;
                memcpy(raw + len, buf, (size_t)k);
                len += (size_t)k;
                if (pw == 3 && nb)
                    continue;
                break;
            }
            if (k == 0) {
                eof = 1;
                break;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                break;
            snprintf(why, sizeof why, "read: %s", strerror(errno));
            eof = 2;
            break;
        }
        if (eof == 2)
            break;
        if (pw == 4) {
            struct epoll_event ev = {.events = evmask, .data.u64 = 0xfeedfacecafeULL};
            epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
        }
    }
    if (eof == 1) {
        if (expect_block) {
            if (len >= 12 && memcmp(raw, "HTTP/1.1 403", 12) == 0)
                rc = 0;
            else
                snprintf(why, sizeof why, "expected 403, got '%.30s'", len ? raw : "");
        } else {
            rc = check_echo(raw, len, prompt, why, sizeof why);
        }
    }
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)raw[i]) * 1099511628211ULL;
    if (rc == 0)
        printf("%s ok %016llx\n", name, (unsigned long long)h);
    else
        printf("%s FAIL %s\n", name, why);
    if (verbose && rc)
        fwrite(raw, 1, len, stderr);
    free(raw);
    free(buf);
out:
    if (rc && why[0] && !strstr(why, "hang") && wr != hn + bn)
        printf("%s FAIL %s\n", name, why);
    if (ep >= 0)
        close(ep);
    close(fd);
    return rc;
}

int main(int argc, char **argv)
{
    int port = 0, expect_block = 0, verbose = 0;
    const char *prompt = "hello from the matrix", *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--prompt") && i + 1 < argc)
            prompt = argv[++i];
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(argv[i], "--expect-block"))
            expect_block = 1;
        else if (!strcmp(argv[i], "-v"))
            verbose = 1;
        else {
            fprintf(stderr, "usage: shim_matrix --port N [--prompt TEXT] [--expect-block] [--only SUBSTR] [-v]\n");
            return 2;
        }
    }
    if (!port) {
        fprintf(stderr, "shim_matrix: --port required\n");
        return 2;
    }
    int fails = 0, runs = 0;
    for (int nb = 0; nb < 2; nb++)
        for (int w = 0; w < 4; w++)
            for (int r = 0; r < 4; r++)
                for (int pw = 0; pw < 6; pw++)
                    for (int b = 0; b < 4; b++) {
                        if (!nb && pw == 3)
                            continue;
                        char name[128];
                        snprintf(name, sizeof name, "%s/%s/%s/%s/%zu", nb ? "nonblock" : "block",
                                 wnames[w], rnames[r], pnames[pw], bufsizes[b]);
                        if (only && !strstr(name, only))
                            continue;
                        runs++;
                        if (run_one(port, nb, w, r, pw, bufsizes[b], expect_block, prompt, verbose))
                            fails++;
                        fflush(stdout);
                    }
    fprintf(stderr, "shim_matrix: %d combinations, %d failed\n", runs, fails);
    return fails ? 1 : 0;
}
