/* Log directory layout, file ordering and time parsing shared by the
 * collector and llmguard-log (see logfiles.h for the on-disk contract).
 * Rotated file names embed the UTC rotation time in a fixed-width form, so
 * plain string order is time order. */
#include "logfiles.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return (v && *v) ? v : NULL;
}

static int put(char *out, size_t cap, const char *a, const char *b)
{
    int n = snprintf(out, cap, "%s%s", a, b);
    return (n < 0 || (size_t)n >= cap) ? -ENAMETOOLONG : 0;
}

int lg_logdir_default(char *out, size_t cap, int system)
{
    const char *v;
    if ((v = env("LLMGUARD_LOG_DIR")))
        return put(out, cap, v, "");
    if (system)
        return put(out, cap, "/var/log/llmguard", "");
    if ((v = env("XDG_STATE_HOME")))
        return put(out, cap, v, "/llmguard");
    if ((v = env("HOME")))
        return put(out, cap, v, "/.local/state/llmguard");
    return -ENOENT;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int lg_logfiles_list(const char *dir, char ***out)
{
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    char **v = NULL;
    int n = 0, cap = 0, have_cur = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *nm = de->d_name;
        size_t l = strlen(nm);
        if (strcmp(nm, LG_LOG_CURRENT) == 0) {
            have_cur = 1;
            continue;
        }
        if (l < 13 || strncmp(nm, "events-", 7) != 0 ||
            strcmp(nm + l - 6, ".jsonl") != 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nv = realloc(v, (size_t)(cap + 1) * sizeof *v);
            if (!nv)
                goto nomem;
            v = nv;
        }
        if (!(v[n] = malloc(strlen(dir) + l + 2)))
            goto nomem;
        sprintf(v[n++], "%s/%s", dir, nm);
    }
    closedir(d);
    if (n)
        qsort(v, (size_t)n, sizeof *v, cmp_str);
    if (have_cur) {
        if (n == cap) {
            char **nv = realloc(v, (size_t)(n + 1) * sizeof *v);
            if (!nv) {
                lg_logfiles_free(v, n);
                return -ENOMEM;
            }
            v = nv;
        }
        if (!(v[n] = malloc(strlen(dir) + sizeof LG_LOG_CURRENT + 1))) {
            lg_logfiles_free(v, n);
            return -ENOMEM;
        }
        sprintf(v[n++], "%s/%s", dir, LG_LOG_CURRENT);
    }
    *out = v;
    return n;
nomem:
    closedir(d);
    lg_logfiles_free(v, n);
    return -ENOMEM;
}

void lg_logfiles_free(char **list, int n)
{
    for (int i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

int64_t lg_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int digits(const char *s, size_t n, size_t *i, int k, int *out)
{
    int v = 0;
    for (int j = 0; j < k; j++, (*i)++) {
        if (*i >= n || s[*i] < '0' || s[*i] > '9')
            return -1;
        v = v * 10 + (s[*i] - '0');
    }
    *out = v;
    return 0;
}

/* Days since 1970-01-01 (proleptic Gregorian; Howard Hinnant's algorithm). */
static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int lg_parse_rfc3339(const char *s, size_t n, int64_t *us)
{
    size_t i = 0;
    int Y, M, D, h = 0, mi = 0, sec = 0;
    int64_t frac = 0;
    if (digits(s, n, &i, 4, &Y) || i >= n || s[i++] != '-' ||
        digits(s, n, &i, 2, &M) || i >= n || s[i++] != '-' ||
        digits(s, n, &i, 2, &D))
        return -1;
    if (M < 1 || M > 12 || D < 1 || D > 31)
        return -1;
    int64_t off = 0;
    if (i < n) {
        if (s[i] != 'T' && s[i] != 't' && s[i] != ' ')
            return -1;
        i++;
        if (digits(s, n, &i, 2, &h) || i >= n || s[i++] != ':' ||
            digits(s, n, &i, 2, &mi))
            return -1;
        if (i < n && s[i] == ':') {
            i++;
            if (digits(s, n, &i, 2, &sec))
                return -1;
        }
        if (h > 23 || mi > 59 || sec > 60)
            return -1;
        if (i < n && s[i] == '.') {
            i++;
            int k = 0;
            while (i < n && s[i] >= '0' && s[i] <= '9') {
                if (k < 6) {
                    frac = frac * 10 + (s[i] - '0');
                    k++;
                }
                i++;
            }
            if (k == 0)
                return -1;
            while (k++ < 6)
                frac *= 10;
        }
        if (i < n && (s[i] == 'Z' || s[i] == 'z'))
            i++;
        else if (i < n && (s[i] == '+' || s[i] == '-')) {
            int sign = s[i++] == '-' ? -1 : 1, oh, om;
            if (digits(s, n, &i, 2, &oh) || i >= n || s[i++] != ':' ||
                digits(s, n, &i, 2, &om))
                return -1;
            off = sign * ((int64_t)oh * 3600 + om * 60);
        }
        if (i != n)
            return -1;
    }
    int64_t t = days_from_civil(Y, M, D) * 86400 + h * 3600 + mi * 60 + sec -
                off;
    *us = t * 1000000 + frac;
    return 0;
}

int lg_parse_when(const char *s, int64_t now_us, int64_t *us)
{
    size_t n = strlen(s);
    if (n && lg_parse_rfc3339(s, n, us) == 0)
        return 0;
    /* duration: one or more <number><unit> */
    int64_t total = 0;
    size_t i = 0;
    if (n == 0)
        return -1;
    while (i < n) {
        int64_t v = 0;
        size_t st = i;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            v = v * 10 + (s[i] - '0');
            if (v > 1000000000LL)
                return -1;
            i++;
        }
        if (i == st || i >= n)
            return -1;
        int64_t mult;
        switch (s[i++]) {
        case 's': mult = 1; break;
        case 'm': mult = 60; break;
        case 'h': mult = 3600; break;
        case 'd': mult = 86400; break;
        case 'w': mult = 7 * 86400; break;
        default: return -1;
        }
        total += v * mult;
    }
    *us = now_us - total * 1000000;
    return 0;
}

int lg_line_field(const char *line, size_t n, const char *key, size_t scan,
                  const char **val, size_t *len)
{
    char pat[64];
    int pl = snprintf(pat, sizeof pat, "\"%s\":\"", key);
    if (pl < 0 || (size_t)pl >= sizeof pat)
        return -1;
    size_t lim = n < scan ? n : scan;
    const char *p = memmem(line, lim, pat, (size_t)pl);
    if (!p)
        return -1;
    p += pl;
    const char *end = line + n, *q = p;
    while (q < end && *q != '"') {
        if (*q == '\\')
            q++;
        q++;
    }
    if (q >= end)
        return -1;
    *val = p;
    *len = (size_t)(q - p);
    return 0;
}

int lg_utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        /* fast path for ASCII runs, 8 bytes at a time */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ULL)
                break;
            i += 8;
        }
        if (i >= n)
            break;
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        unsigned cp;
        if (c >= 0xc2 && c <= 0xdf) {
            k = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3;
            cp = c & 0x07;
        } else
            return 0;
        for (size_t j = 1; j <= k; j++) {
            if (i + j >= n || (s[i + j] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += k + 1;
    }
    return 1;
}

int lg_spool_each(const char *dir, void (*fn)(int dfd, const char *name, void *ctx), void *ctx)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return 0;
    /* fdopendir takes over its descriptor; dfd stays ours for fn's *at() */
    int dup_fd = dup(dfd);
    DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
    int n = 0;
    if (d) {
        struct dirent *de;
        while ((de = readdir(d))) {
            size_t l = strlen(de->d_name);
            if (l > 6 && !strcmp(de->d_name + l - 6, ".spool")) {
                fn(dfd, de->d_name, ctx);
                n++;
            }
        }
        closedir(d);
    } else if (dup_fd >= 0) {
        close(dup_fd);
    }
    close(dfd);
    return n;
}
