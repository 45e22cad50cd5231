/* Shared by the shim_ test helpers: one blocking echo request to
 * llmguard-fakellm and a check that the streamed answer repeats the
 * prompt.  Header-only so each helper stays one translation unit. */
#ifndef SHIM_COMMON_H
#define SHIM_COMMON_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static inline int shim_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    while (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        if (errno == EINTR)
            continue;
        close(fd);
        return -1;
    }
    return fd;
}

static inline int shim_send_request(int fd, int port, const char *prompt)
{
    char body[1024], req[2048];
    int bn = snprintf(body, sizeof body, "{\"model\":\"echo\",\"prompt\":\"%s\"}", prompt);
    int n = snprintf(req, sizeof req,
                     "POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                     "Content-Length: %d\r\nConnection: close\r\n\r\n%s", port, bn, body);
    for (int off = 0; off < n;) {
        ssize_t w = send(fd, req + off, (size_t)(n - off), MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        off += (int)w;
    }
    return 0;
}

/* Read to EOF into a malloc'd buffer; returns length or -1. */
static inline ssize_t shim_read_all(int fd, char **out, size_t chunk)
{
    size_t cap = 1 << 16, len = 0;
    char *p = malloc(cap);
    for (;;) {
        if (cap - len < chunk) {
            cap *= 2;
            p = realloc(p, cap);
        }
        ssize_t k = recv(fd, p + len, chunk, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            free(p);
            return -1;
        }
        if (k == 0)
            break;
        len += (size_t)k;
    }
    *out = p;
    return (ssize_t)len;
}

/* 0 when raw is a 200 chunked NDJSON answer whose "response" fields
 * concatenate to prompt. */
static inline int shim_check_echo(const char *raw, size_t n, const char *prompt)
{
    if (n < 12 || memcmp(raw, "HTTP/1.1 200", 12) != 0)
        return -1;
    const char *p = memmem(raw, n, "\r\n\r\n", 4), *end = raw + n;
    if (!p)
        return -1;
    p += 4;
    char *plain = malloc(n + 1), *text = malloc(n + 1);
    size_t pl = 0, tl = 0;
    int rc = -1;
    for (;;) {
        char *e;
        unsigned long sz = strtoul(p, &e, 16);
        const char *crlf = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (!crlf || e == p)
            goto out;
        p = crlf + 2;
        if (!sz)
            break;
        if ((size_t)(end - p) < sz + 2)
            goto out;
        memcpy(plain + pl, p, sz);
        pl += sz;
        p += sz + 2;
    }
    plain[pl] = 0;
    for (const char *q = plain; (q = strstr(q, "\"response\":\""));) {
        for (q += 12; *q && *q != '"'; q++) {
            if (*q == '\\' && q[1])
                q++;
            text[tl++] = *q;
        }
    }
    text[tl] = 0;
    rc = strcmp(text, prompt) == 0 ? 0 : -1;
out:
    free(plain);
    free(text);
    return rc;
}

#endif
