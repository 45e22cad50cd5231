/* llmguard-collectord: receives the events the shim emits (one JSON object
 * per datagram on a Unix datagram socket), stamps each with the sender's
 * kernel-verified pid/uid/gid (SO_PASSCRED) and executable, and appends it
 * to JSONL files (tools/common/logfiles.h describes the layout), with
 * batched fsync, size rotation, retention, spool-file ingestion and
 * optional syslog forwarding (RFC 5424 over TCP with octet counting, or
 * UDP).
 *
 * How "no event is lost, even across SIGKILL" is obtained:
 *  - Datagrams are read with MSG_PEEK (SO_PEEK_OFF walks the queue), stored
 *    with write(2), and only then consumed.  A kill at any point leaves an
 *    event either in the kernel queue or in the page cache; the only
 *    window, between write and consume, yields a duplicate, which the id
 *    index (rebuilt from the newest log files at start) discards.
 *  - The queue must outlive the process, so the socket is held by someone
 *    else: systemd under socket activation (LISTEN_FDS), otherwise a tiny
 *    "keeper" child that owns a copy of the socket and hands it to the next
 *    collector over <socket>.keeper (SCM_RIGHTS).  A clean stop (SIGTERM)
 *    removes the socket path, drains the queue and ends the keeper.
 *  - Spool files are ingested under flock, stored, fsynced, then unlinked
 *    (shim/emit.h has the writer's side).
 * Single-threaded event loop around poll(2); signals arrive on a signalfd. */
#include "buf.h"
#include "error.h"
#include "emit.h"
#include "common/logfiles.h"
#include "version.h"

#include <cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/sockios.h>

#ifndef SO_PEEK_OFF
#define SO_PEEK_OFF 42
#endif

#define MAXEV LG_EMIT_MAX_EVENT
#define BATCH 64
#define MAX_FWD 4

/* ==== Configuration and counters ==== */
static struct {
    int system;
    char socket[108];
    char spool[4096];
    char logdir[4096];
    long fsync_ms;          /* -1: never (except rotation and exit) */
    long long max_size;     /* rotate when the current file reaches this */
    int keep;               /* rotated files kept */
    long long max_age_s;    /* rotated files older than this are removed */
    long spool_ms;          /* spool scan interval */
    long dedup;             /* ids remembered per generation */
    int keeper;             /* use a keeper process when not socket-activated */
    long backlog;           /* forward backlog, events */
    long backoff_max_ms;    /* forward reconnect backoff cap */
    int facility;           /* syslog facility number */
    int nfwd;
    char *fwd_url[MAX_FWD];
    int verbose;
} cfg = {
    .fsync_ms = 200,
    .max_size = 64LL << 20,
    .keep = 10,
    .max_age_s = 30LL * 86400,
    .spool_ms = 1000,
    .dedup = 1 << 19,
    .keeper = 1,
    .backlog = 10000,
    .backoff_max_ms = 5000,
    .facility = 16,
};

static struct {
    uint64_t received, stored, duplicates;
    uint64_t garbage, oversize, bad_utf8, invalid, nocred;
    uint64_t spool_files, spool_events, spool_bad;
    uint64_t rotations, write_errors;
} ctr;

static int64_t started_us;
static char hostname[256];

static void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logmsg(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("llmguard-collectord: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ==== Id index: two generations of 64-bit hashes ====
 * Bounded memory: when the current generation holds cfg.dedup ids it
 * becomes the old one and the old one is forgotten, so between dedup and
 * 2*dedup most recent ids are remembered.  A 64-bit hash collision would
 * drop an event; with a million ids remembered that is ~1e-8. */
typedef struct {
    uint64_t *slot;
    size_t mask, n;
} idset;
static idset gen[2];
static int cur_gen;

static uint64_t hash_id(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h ? h : 1;
}

static int idset_has(const idset *s, uint64_t h)
{
    for (size_t i = h & s->mask;; i = (i + 1) & s->mask) {
        if (s->slot[i] == h)
            return 1;
        if (!s->slot[i])
            return 0;
    }
}

static void idset_add(idset *s, uint64_t h)
{
    size_t i = h & s->mask;
    while (s->slot[i] && s->slot[i] != h)
        i = (i + 1) & s->mask;
    if (!s->slot[i]) {
        s->slot[i] = h;
        s->n++;
    }
}

static int dedup_init(void)
{
    size_t sz = 1;
    while (sz < (size_t)cfg.dedup * 2)
        sz <<= 1;
    for (int g = 0; g < 2; g++) {
        gen[g].slot = calloc(sz, sizeof(uint64_t));
        if (!gen[g].slot)
            return -1;
        gen[g].mask = sz - 1;
    }
    return 0;
}

/* Returns 1 if the id was seen, else remembers it and returns 0. */
static int dedup_check_add(const char *id, size_t n)
{
    uint64_t h = hash_id(id, n);
    if (idset_has(&gen[0], h) || idset_has(&gen[1], h))
        return 1;
    idset *c = &gen[cur_gen];
    if (c->n >= (size_t)cfg.dedup) {
        cur_gen ^= 1;
        c = &gen[cur_gen];
        memset(c->slot, 0, (c->mask + 1) * sizeof(uint64_t));
        c->n = 0;
    }
    idset_add(c, h);
    return 0;
}

/* ==== Executable cache ==== */
static struct exe_ent {
    pid_t pid;
    int64_t at;
    int ok;
    char path[PATH_MAX];
} exe_cache[128];

static const char *exe_of(pid_t pid)
{
    struct exe_ent *e = &exe_cache[(unsigned)pid % 128];
    int64_t now = mono_ms();
    if (e->pid == pid && now - e->at < 2000)
        return e->ok ? e->path : NULL;
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/exe", (int)pid);
    ssize_t k = readlink(p, e->path, sizeof e->path - 1);
    e->pid = pid;
    e->at = now;
    e->ok = k > 0;
    if (k > 0)
        e->path[k] = 0;
    return e->ok ? e->path : NULL;
}

/* ==== Forwarding (syslog, RFC 5424) ==== */
typedef struct {
    char *msg;
    size_t len;
} fmsg;

typedef struct {
    char url[512];
    int tcp;
    char host[256], port[16];
    int fd;
    int connecting;
    fmsg *q;           /* ring of framed messages, oldest first */
    size_t qcap, qhead, qlen;
    size_t nsent;      /* entries from head fully written (TCP: maybe unacked) */
    size_t partial;    /* bytes of entry [nsent] already written */
    size_t inflight;   /* bytes written but not yet known acked */
    int64_t next_try;  /* mono ms */
    long backoff;      /* ms */
    uint64_t forwarded, dropped, reconnects;
} fwd_t;
static fwd_t fwd[MAX_FWD];

static int fwd_parse(fwd_t *f, const char *url)
{
    const char *rest;
    if (strncmp(url, "syslog+tcp://", 13) == 0) {
        f->tcp = 1;
        rest = url + 13;
    } else if (strncmp(url, "syslog+udp://", 13) == 0) {
        f->tcp = 0;
        rest = url + 13;
    } else
        return -1;
    snprintf(f->url, sizeof f->url, "%s", url);
    const char *colon;
    if (*rest == '[') {
        const char *rb = strchr(rest, ']');
        if (!rb || rb[1] != ':')
            return -1;
        snprintf(f->host, sizeof f->host, "%.*s", (int)(rb - rest - 1), rest + 1);
        colon = rb + 1;
    } else {
        colon = strrchr(rest, ':');
        if (!colon || colon == rest)
            return -1;
        snprintf(f->host, sizeof f->host, "%.*s", (int)(colon - rest), rest);
    }
    snprintf(f->port, sizeof f->port, "%s", colon + 1);
    if (!*f->port || strspn(f->port, "0123456789") != strlen(f->port))
        return -1;
    f->fd = -1;
    f->qcap = (size_t)cfg.backlog;
    f->q = calloc(f->qcap, sizeof *f->q);
    f->backoff = 100;
    return f->q ? 0 : -1;
}

static int severity_of(const char *decision)
{
    if (!decision)
        return 6;
    if (!strcmp(decision, "block"))
        return 4;
    if (!strcmp(decision, "error"))
        return 3;
    if (!strcmp(decision, "redact") || !strcmp(decision, "log"))
        return 5;
    return 6;
}

static void fwd_enqueue(const char *line, size_t n, const char *ts,
                        long pid, const char *decision)
{
    if (!cfg.nfwd)
        return;
    char head[512];
    char msgid[33] = "-";
    if (decision && *decision && strlen(decision) < sizeof msgid) {
        int ok = 1;
        for (const char *p = decision; *p; p++)
            ok &= (*p > 32 && *p < 127);
        if (ok)
            strcpy(msgid, decision);
    }
    int hl = snprintf(head, sizeof head, "<%d>1 %s %s llmguard %ld %s - ",
                      cfg.facility * 8 + severity_of(decision),
                      ts && *ts ? ts : "-", hostname, pid, msgid);
    for (int i = 0; i < cfg.nfwd; i++) {
        fwd_t *f = &fwd[i];
        if (f->qlen == f->qcap) {
            f->dropped++;
            continue;
        }
        size_t body = (size_t)hl + n;
        char pre[24];
        int pl = f->tcp ? snprintf(pre, sizeof pre, "%zu ", body) : 0;
        char *m = malloc((size_t)pl + body);
        if (!m) {
            f->dropped++;
            continue;
        }
        memcpy(m, pre, (size_t)pl);
        memcpy(m + pl, head, (size_t)hl);
        memcpy(m + pl + hl, line, n);
        fmsg *slot = &f->q[(f->qhead + f->qlen) % f->qcap];
        slot->msg = m;
        slot->len = (size_t)pl + body;
        f->qlen++;
    }
}

static void fwd_pop(fwd_t *f)
{
    free(f->q[f->qhead].msg);
    f->q[f->qhead].msg = NULL;
    f->qhead = (f->qhead + 1) % f->qcap;
    f->qlen--;
}

static void fwd_disconnect(fwd_t *f, const char *why)
{
    if (f->fd >= 0) {
        if (cfg.verbose)
            logmsg("forward %s: %s", f->url, why);
        close(f->fd);
    }
    f->fd = -1;
    f->connecting = 0;
    /* Whatever the peer has not acknowledged is sent again (at least
     * once): duplicates are possible, silent loss is not. */
    f->nsent = 0;
    f->partial = 0;
    f->inflight = 0;
    f->next_try = mono_ms() + f->backoff;
    f->backoff = f->backoff * 2 > cfg.backoff_max_ms ? cfg.backoff_max_ms
                                                      : f->backoff * 2;
}

static void fwd_connect(fwd_t *f)
{
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_socktype = f->tcp ? SOCK_STREAM : SOCK_DGRAM;
    hints.ai_flags = AI_NUMERICSERV;
    if (getaddrinfo(f->host, f->port, &hints, &ai) != 0 || !ai) {
        f->next_try = mono_ms() + f->backoff;
        return;
    }
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(ai);
        f->next_try = mono_ms() + f->backoff;
        return;
    }
    int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    if (rc != 0 && errno != EINPROGRESS) {
        close(fd);
        f->fd = -1;
        f->next_try = mono_ms() + f->backoff;
        f->backoff = f->backoff * 2 > cfg.backoff_max_ms ? cfg.backoff_max_ms
                                                          : f->backoff * 2;
        return;
    }
    f->fd = fd;
    f->connecting = rc != 0;
    f->reconnects++;
}

/* Drop from the head whatever the TCP peer has acknowledged. */
static void fwd_ack(fwd_t *f)
{
    int outq = 0;
    if (!f->tcp) {
        return;
    }
    if (f->fd < 0 || ioctl(f->fd, SIOCOUTQ, &outq) != 0)
        return;
    size_t acked = f->inflight > (size_t)outq ? f->inflight - (size_t)outq : 0;
    while (f->nsent && f->q[f->qhead].len <= acked) {
        acked -= f->q[f->qhead].len;
        f->inflight -= f->q[f->qhead].len;
        fwd_pop(f);
        f->nsent--;
        f->forwarded++;
    }
}

static void fwd_service(fwd_t *f, short revents)
{
    if (f->fd < 0) {
        if (f->qlen && mono_ms() >= f->next_try)
            fwd_connect(f);
        if (f->fd < 0)
            return;
    }
    if (f->connecting) {
        if (!(revents & (POLLOUT | POLLERR | POLLHUP)))
            return;
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(f->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            fwd_disconnect(f, strerror(err));
            return;
        }
        f->connecting = 0;
    }
    if (f->tcp && (revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR))) {
        char tmp[256];
        ssize_t k = recv(f->fd, tmp, sizeof tmp, MSG_DONTWAIT);
        if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) {
            fwd_disconnect(f, "peer closed");
            return;
        }
    }
    while (f->nsent < f->qlen) {
        fmsg *m = &f->q[(f->qhead + f->nsent) % f->qcap];
        ssize_t k = send(f->fd, m->msg + f->partial, m->len - f->partial,
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            if (!f->tcp && errno != ECONNREFUSED && errno != EMSGSIZE) {
                fwd_disconnect(f, strerror(errno));
                return;
            }
            if (!f->tcp && errno == EMSGSIZE) {
                fwd_pop(f); /* can never be sent */
                f->dropped++;
                continue;
            }
            if (!f->tcp) { /* refused: receiver down; retry later */
                close(f->fd);
                f->fd = -1;
                f->next_try = mono_ms() + f->backoff;
                f->backoff = f->backoff * 2 > cfg.backoff_max_ms
                                 ? cfg.backoff_max_ms
                                 : f->backoff * 2;
                return;
            }
            fwd_disconnect(f, strerror(errno));
            return;
        }
        f->backoff = 100;
        if (!f->tcp) {
            fwd_pop(f);
            f->forwarded++;
            continue;
        }
        f->partial += (size_t)k;
        f->inflight += (size_t)k;
        if (f->partial < m->len)
            break;
        f->partial = 0;
        f->nsent++;
    }
    fwd_ack(f);
}

/* ==== Log file ==== */
static int logfd = -1;
static long long logsize;
static int dirty;
static int64_t last_sync_ms;
static lg_buf wbuf;

static int open_log(void)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", cfg.logdir, LG_LOG_CURRENT);
    logfd = open(p, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (logfd < 0) {
        logmsg("cannot open %s: %s", p, strerror(errno));
        return -1;
    }
    struct stat st;
    fstat(logfd, &st);
    logsize = st.st_size;
    if (logsize > 0) {
        /* A torn last line (killed mid-write) must not swallow the next
         * event: terminate it.  Its event was not consumed, so it will be
         * read again and stored whole. */
        char c = 0;
        int rfd = open(p, O_RDONLY | O_CLOEXEC);
        if (rfd >= 0) {
            if (pread(rfd, &c, 1, logsize - 1) == 1 && c != '\n' &&
                write(logfd, "\n", 1) == 1)
                logsize++;
            close(rfd);
        }
    }
    return 0;
}

static void sync_log(void)
{
    if (logfd >= 0 && dirty) {
        fdatasync(logfd);
        dirty = 0;
    }
    last_sync_ms = mono_ms();
}

static void retention(void)
{
    char **files;
    int n = lg_logfiles_list(cfg.logdir, &files);
    if (n <= 0)
        return;
    int rotated = n;
    char cur[4200];
    snprintf(cur, sizeof cur, "%s/%s", cfg.logdir, LG_LOG_CURRENT);
    if (!strcmp(files[n - 1], cur))
        rotated--;
    time_t now = time(NULL);
    for (int i = 0; i < rotated; i++) {
        struct stat st;
        int old = cfg.max_age_s > 0 && stat(files[i], &st) == 0 &&
                  now - st.st_mtime > cfg.max_age_s;
        if (rotated - i > cfg.keep || old) {
            if (unlink(files[i]) == 0 && cfg.verbose)
                logmsg("retention: removed %s", files[i]);
        }
    }
    lg_logfiles_free(files, n);
}

static void rotate(void)
{
    sync_log();
    char from[4200], to[4300], ts[32];
    snprintf(from, sizeof from, "%s/%s", cfg.logdir, LG_LOG_CURRENT);
    int64_t t = lg_now_us();
    for (int tries = 0; tries < 100; tries++, t++) {
        time_t s = (time_t)(t / 1000000);
        struct tm tm;
        gmtime_r(&s, &tm);
        strftime(ts, sizeof ts, "%Y%m%dT%H%M%S", &tm);
        snprintf(to, sizeof to, "%s/events-%s.%06ldZ.jsonl", cfg.logdir, ts,
                 (long)(t % 1000000));
        if (access(to, F_OK) != 0)
            break;
    }
    if (rename(from, to) != 0) {
        logmsg("rotate: %s", strerror(errno));
        return;
    }
    close(logfd);
    logfd = -1;
    ctr.rotations++;
    open_log();
    retention();
}

/* Write the pending batch.  0 on success, -1 (kept for retry) on error. */
static int flush_wbuf(void)
{
    size_t off = 0;
    while (off < wbuf.len) {
        if (logfd < 0 && open_log() != 0)
            goto fail;
        ssize_t k = write(logfd, wbuf.data + off, wbuf.len - off);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            goto fail;
        }
        off += (size_t)k;
        logsize += k;
        dirty = 1;
    }
    lg_buf_reset(&wbuf);
    if (cfg.fsync_ms == 0)
        sync_log();
    if (logsize >= cfg.max_size)
        rotate();
    return 0;
fail:
    lg_buf_consume(&wbuf, off);
    if (ctr.write_errors++ % 100 == 0)
        logmsg("write to log failed: %s (will retry)", strerror(errno));
    return -1;
}

/* ==== Event processing ==== */
struct cred {
    long pid;
    long uid, gid;
    int spool;
};

static int valid_id(const char *s, size_t n)
{
    if (n == 0 || n > 96)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("-_.:", s[i]))
            return 0;
    return 1;
}

static const char *const stamped[] = {"v", "id", "ts", "pid", "uid", "gid",
    "exe", "exe_claimed", "pid_claimed", "uid_claimed", "gid_claimed",
    "ts_claimed", "src", NULL};

static int is_stamped(const char *k)
{
    /* hot: called for every member of every event */
    switch (k[0]) {
    case 'v': case 'i': case 't': case 'p': case 'u': case 'g': case 'e':
    case 's': break;
    default: return 0;
    }
    for (int i = 0; stamped[i]; i++)
        if (!strcmp(stamped[i], k))
            return 1;
    return 0;
}

/* ==== Fast output: the stamped header plus the sender's other members
 * copied verbatim ====
 * Re-printing every event with cJSON costs more than parsing it (number
 * formatting alone is a third of the time), so the common case copies the
 * sender's remaining top-level members byte for byte from the datagram,
 * which cJSON has already validated.  Anything unusual (raw CR/LF, escaped
 * keys that could spell a stamped name) takes the cJSON path instead. */
static const char *skip_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

static const char *skip_string(const char *p, const char *e)
{
    for (p++; p < e; p++) {
        if (*p == '\\')
            p++;
        else if (*p == '"')
            return p + 1;
    }
    return NULL;
}

static const char *skip_value(const char *p, const char *e)
{
    if (p >= e)
        return NULL;
    if (*p == '"')
        return skip_string(p, e);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (p < e) {
            if (*p == '"') {
                if (!(p = skip_string(p, e)))
                    return NULL;
                continue;
            }
            if (*p == '{' || *p == '[')
                depth++;
            else if (*p == '}' || *p == ']') {
                if (--depth == 0)
                    return p + 1;
            }
            p++;
        }
        return NULL;
    }
    while (p < e && *p != ',' && *p != '}' && *p != ' ' && *p != '\t')
        p++;
    return p;
}

static int put_escaped(lg_buf *b, const char *s)
{
    int rc = lg_buf_append(b, "\"", 1);
    for (; *s && rc == LG_OK; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            rc = lg_buf_printf(b, "\\%c", c);
        else if (c < 0x20)
            rc = lg_buf_printf(b, "\\u%04x", c);
        else
            rc = lg_buf_append(b, s, 1);
    }
    return rc == LG_OK ? lg_buf_append(b, "\"", 1) : rc;
}

static int put_long(lg_buf *b, const char *key, long long v)
{
    char tmp[64];
    char *q = tmp + sizeof tmp;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        *--q = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--q = '-';
    size_t kl = strlen(key);
    char *w = lg_buf_reserve(b, kl + 4 + (size_t)(tmp + sizeof tmp - q));
    if (!w)
        return LG_E_LIMIT;
    size_t o = 0;
    w[o++] = ',';
    w[o++] = '"';
    memcpy(w + o, key, kl);
    o += kl;
    w[o++] = '"';
    w[o++] = ':';
    memcpy(w + o, q, (size_t)(tmp + sizeof tmp - q));
    o += (size_t)(tmp + sizeof tmp - q);
    lg_buf_commit(b, o);
    return LG_OK;
}

static int put_num(lg_buf *b, const char *key, double v)
{
    if (v == (double)(long long)v && v > -1e15 && v < 1e15)
        return lg_buf_printf(b, ",\"%s\":%lld", key, (long long)v);
    return lg_buf_printf(b, ",\"%s\":%.17g", key, v);
}

/* Appends the whole line to wbuf; on failure wbuf is restored and -1. */
static int splice_line(const char *data, size_t n, const cJSON *v, const char *id,
                       const char *ts, const char *ts_claimed,
                       const struct cred *c, const char *exe,
                       const cJSON *cexe, const cJSON *cpid, const cJSON *cuid,
                       const cJSON *cgid)
{
    if (memchr(data, '\n', n) || memchr(data, '\r', n))
        return -1;
    size_t mark = wbuf.len;
    const char *p = data, *e = data + n;
    p = skip_ws(p, e);
    if (p >= e || *p != '{')
        return -1;
    p++;
    if (v->valuedouble != (double)(long long)v->valuedouble)
        return -1;
    int rc = lg_buf_append(&wbuf, "{", 1);
    rc |= put_long(&wbuf, "v", (long long)v->valuedouble);
    if (rc == LG_OK) /* drop the separator put_long wrote before "v" */
        memmove(wbuf.data + mark + 1, wbuf.data + mark + 2, wbuf.len - mark - 2),
            wbuf.len--;
    rc |= lg_buf_puts(&wbuf, ",\"id\":\"");
    rc |= lg_buf_puts(&wbuf, id);
    rc |= lg_buf_puts(&wbuf, "\",\"ts\":\"");
    rc |= lg_buf_puts(&wbuf, ts);
    rc |= lg_buf_append(&wbuf, "\"", 1);
    if (ts_claimed) {
        rc |= lg_buf_puts(&wbuf, ",\"ts_claimed\":");
        rc |= put_escaped(&wbuf, ts_claimed);
    }
    rc |= put_long(&wbuf, "pid", c->pid);
    rc |= put_long(&wbuf, "uid", c->uid);
    rc |= put_long(&wbuf, "gid", c->gid);
    if (exe) {
        rc |= lg_buf_puts(&wbuf, ",\"exe\":");
        rc |= put_escaped(&wbuf, exe);
    }
    if (cJSON_IsString(cexe) && (!exe || strcmp(exe, cexe->valuestring))) {
        rc |= lg_buf_puts(&wbuf, ",\"exe_claimed\":");
        rc |= put_escaped(&wbuf, cexe->valuestring);
    }
    if (cJSON_IsNumber(cpid) && cpid->valuedouble != (double)c->pid)
        rc |= put_num(&wbuf, "pid_claimed", cpid->valuedouble);
    if (cJSON_IsNumber(cuid) && cuid->valuedouble != (double)c->uid)
        rc |= put_num(&wbuf, "uid_claimed", cuid->valuedouble);
    if (cJSON_IsNumber(cgid) && cgid->valuedouble != (double)c->gid)
        rc |= put_num(&wbuf, "gid_claimed", cgid->valuedouble);
    rc |= lg_buf_puts(&wbuf, c->spool ? ",\"src\":\"spool\"" : ",\"src\":\"socket\"");
    for (;;) {
        p = skip_ws(p, e);
        if (p < e && *p == '}')
            break;
        if (p >= e || *p != '"')
            goto fail;
        const char *k0 = p, *k1 = skip_string(p, e);
        if (!k1 || memchr(k0, '\\', (size_t)(k1 - k0)))
            goto fail;
        p = skip_ws(k1, e);
        if (p >= e || *p != ':')
            goto fail;
        const char *v0 = skip_ws(p + 1, e), *v1 = skip_value(v0, e);
        if (!v1)
            goto fail;
        char key[32];
        size_t kl = (size_t)(k1 - k0) - 2;
        int keep = 1;
        if (kl < sizeof key) {
            memcpy(key, k0 + 1, kl);
            key[kl] = 0;
            keep = !is_stamped(key);
        }
        if (keep) {
            rc |= lg_buf_append(&wbuf, ",", 1);
            rc |= lg_buf_append(&wbuf, k0, (size_t)(k1 - k0));
            rc |= lg_buf_append(&wbuf, ":", 1);
            rc |= lg_buf_append(&wbuf, v0, (size_t)(v1 - v0));
        }
        p = skip_ws(v1, e);
        if (p < e && *p == ',') {
            p++;
            continue;
        }
        if (p < e && *p == '}')
            break;
        goto fail;
    }
    rc |= lg_buf_append(&wbuf, "}\n", 2);
    if (rc != LG_OK)
        goto fail;
    return 0;
fail:
    wbuf.len = mark;
    if (wbuf.data)
        wbuf.data[mark] = 0;
    return -1;
}

/* One event from the socket or a spool line.  Returns 1 stored, 0 dropped. */
static int handle_event(const char *data, size_t n, const struct cred *c)
{
    ctr.received++;
    if (n > MAXEV) {
        ctr.oversize++;
        return 0;
    }
    if (!lg_utf8_valid(data, n)) {
        ctr.bad_utf8++;
        return 0;
    }
    const char *end = NULL;
    cJSON *in = cJSON_ParseWithLengthOpts(data, n, &end, 0);
    if (in && end) { /* cJSON stops after the first value: no trailing junk */
        while (end < data + n && strchr(" \t\r\n", *end))
            end++;
        if (end != data + n) {
            cJSON_Delete(in);
            in = NULL;
        }
    }
    if (!in) {
        ctr.garbage++;
        return 0;
    }
    cJSON *id = cJSON_GetObjectItemCaseSensitive(in, "id");
    cJSON *v = cJSON_GetObjectItemCaseSensitive(in, "v");
    if (!cJSON_IsObject(in) || !cJSON_IsString(id) || !cJSON_IsNumber(v) ||
        !valid_id(id->valuestring, strlen(id->valuestring))) {
        ctr.invalid++;
        cJSON_Delete(in);
        return 0;
    }
    if (dedup_check_add(id->valuestring, strlen(id->valuestring))) {
        ctr.duplicates++;
        cJSON_Delete(in);
        return 0;
    }
    cJSON *ts = cJSON_GetObjectItemCaseSensitive(in, "ts");
    int64_t tus;
    char tsbuf[32];
    const char *ts_claimed = NULL;
    if (cJSON_IsString(ts) &&
        lg_parse_rfc3339(ts->valuestring, strlen(ts->valuestring), &tus) == 0) {
        lg_emit_format_ts(tsbuf, tus); /* normalised to UTC µs */
    } else {
        lg_emit_format_ts(tsbuf, lg_now_us());
        if (cJSON_IsString(ts))
            ts_claimed = ts->valuestring;
    }
    cJSON *cpid = cJSON_GetObjectItemCaseSensitive(in, "pid");
    cJSON *cuid = cJSON_GetObjectItemCaseSensitive(in, "uid");
    cJSON *cgid = cJSON_GetObjectItemCaseSensitive(in, "gid");
    cJSON *cexe = cJSON_GetObjectItemCaseSensitive(in, "exe");
    const char *exe = c->spool ? NULL : exe_of((pid_t)c->pid);
    cJSON *dec = cJSON_GetObjectItemCaseSensitive(in, "decision");
    size_t mark = wbuf.len;
    if (splice_line(data, n, v, id->valuestring, tsbuf, ts_claimed, c, exe,
                    cexe, cpid, cuid, cgid) == 0) {
        ctr.stored++;
        fwd_enqueue(wbuf.data + mark, wbuf.len - mark - 1, tsbuf, c->pid,
                    cJSON_IsString(dec) ? dec->valuestring : NULL);
        cJSON_Delete(in);
        return 1;
    }
    cJSON *out = cJSON_CreateObject();
    cJSON_AddNumberToObject(out, "v", v->valuedouble);
    cJSON_AddStringToObject(out, "id", id->valuestring);
    cJSON_AddStringToObject(out, "ts", tsbuf);
    if (ts_claimed)
        cJSON_AddStringToObject(out, "ts_claimed", ts_claimed);
    cJSON_AddNumberToObject(out, "pid", (double)c->pid);
    cJSON_AddNumberToObject(out, "uid", (double)c->uid);
    cJSON_AddNumberToObject(out, "gid", (double)c->gid);
    if (exe)
        cJSON_AddStringToObject(out, "exe", exe);
    if (cJSON_IsString(cexe) && (!exe || strcmp(exe, cexe->valuestring)))
        cJSON_AddStringToObject(out, "exe_claimed", cexe->valuestring);
    if (cJSON_IsNumber(cpid) && cpid->valuedouble != (double)c->pid)
        cJSON_AddNumberToObject(out, "pid_claimed", cpid->valuedouble);
    if (cJSON_IsNumber(cuid) && cuid->valuedouble != (double)c->uid)
        cJSON_AddNumberToObject(out, "uid_claimed", cuid->valuedouble);
    if (cJSON_IsNumber(cgid) && cgid->valuedouble != (double)c->gid)
        cJSON_AddNumberToObject(out, "gid_claimed", cgid->valuedouble);
    cJSON_AddStringToObject(out, "src", c->spool ? "spool" : "socket");
    /* Move the remaining members over, keeping their order. */
    cJSON *it = in->child;
    while (it) {
        cJSON *next = it->next;
        if (!it->string || is_stamped(it->string)) {
            it = next;
            continue;
        }
        cJSON_DetachItemViaPointer(in, it);
        cJSON_AddItemToObject(out, it->string, it);
        it = next;
    }
    char *line = cJSON_PrintUnformatted(out);
    int ok = 0;
    if (line) {
        size_t ll = strlen(line);
        if (lg_buf_append(&wbuf, line, ll) == LG_OK &&
            lg_buf_append(&wbuf, "\n", 1) == LG_OK) {
            ok = 1;
            ctr.stored++;
            dec = cJSON_GetObjectItemCaseSensitive(out, "decision");
            fwd_enqueue(line, ll, tsbuf, c->pid,
                        cJSON_IsString(dec) ? dec->valuestring : NULL);
        }
        free(line);
    }
    cJSON_Delete(out);
    cJSON_Delete(in);
    return ok;
}

/* ==== Socket receive (peek, store, then consume) ==== */
static int evfd = -1;
static int peek_off_ok;
static char *rbuf[BATCH];
static struct iovec riov[BATCH];
static struct mmsghdr rmsg[BATCH];
static union {
    char buf[CMSG_SPACE(sizeof(struct ucred))];
    struct cmsghdr align;
} rctl[BATCH];
static unsigned pending_consume; /* peeked and stored, write not yet done */

static void reset_peek(void)
{
    if (peek_off_ok) {
        int z = 0;
        setsockopt(evfd, SOL_SOCKET, SO_PEEK_OFF, &z, sizeof z);
    }
}

static int consume(unsigned k)
{
    static char sink[BATCH][1];
    struct iovec iov[BATCH];
    struct mmsghdr mm[BATCH];
    while (k) {
        unsigned m = k > BATCH ? BATCH : k;
        memset(mm, 0, sizeof(struct mmsghdr) * m);
        for (unsigned i = 0; i < m; i++) {
            iov[i].iov_base = sink[i];
            iov[i].iov_len = 1;
            mm[i].msg_hdr.msg_iov = &iov[i];
            mm[i].msg_hdr.msg_iovlen = 1;
        }
        int r = recvmmsg(evfd, mm, m, MSG_DONTWAIT, NULL);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            break;
        }
        k -= (unsigned)r;
    }
    reset_peek();
    return 0;
}

/* Returns datagrams handled (> 0), 0 when the queue is empty, -1 when the
 * log cannot be written (nothing consumed; caller retries later). */
static int recv_batch(void)
{
    if (pending_consume) { /* a previous write failed */
        if (flush_wbuf() != 0)
            return -1;
        consume(pending_consume);
        pending_consume = 0;
    }
    unsigned want = peek_off_ok ? BATCH : 1;
    for (unsigned i = 0; i < want; i++) {
        riov[i].iov_base = rbuf[i];
        riov[i].iov_len = MAXEV + 1;
        memset(&rmsg[i].msg_hdr, 0, sizeof rmsg[i].msg_hdr);
        rmsg[i].msg_hdr.msg_iov = &riov[i];
        rmsg[i].msg_hdr.msg_iovlen = 1;
        rmsg[i].msg_hdr.msg_control = rctl[i].buf;
        rmsg[i].msg_hdr.msg_controllen = sizeof rctl[i].buf;
    }
    int n = recvmmsg(evfd, rmsg, want, MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC, NULL);
    if (n <= 0)
        return 0;
    unsigned take = 0;
    for (int i = 0; i < n; i++) {
        size_t len = rmsg[i].msg_len;
        take++;
        if (len > MAXEV) {
            /* The truncated peek left the peek offset inside this
             * datagram, so later entries of this batch are not
             * trustworthy: stop here, consume it as dropped. */
            ctr.received++;
            ctr.oversize++;
            break;
        }
        struct cred c = {.pid = -1};
        struct msghdr *mh = &rmsg[i].msg_hdr;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm))
            if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_CREDENTIALS) {
                struct ucred u;
                memcpy(&u, CMSG_DATA(cm), sizeof u);
                c.pid = u.pid;
                c.uid = u.uid;
                c.gid = u.gid;
            }
        if (c.pid < 0) {
            ctr.received++;
            ctr.nocred++;
            continue;
        }
        handle_event(rbuf[i], len, &c);
    }
    if (flush_wbuf() != 0) {
        pending_consume = take;
        return -1;
    }
    consume(take);
    return (int)take;
}

/* ==== Spool ingestion ==== */
static void ingest_file(int dfd, const char *name, void *ctx)
{
    (void)ctx;
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        (geteuid() != 0 && st.st_uid != geteuid()) ||
        flock(fd, LOCK_EX | LOCK_NB) != 0) {
        close(fd);
        return;
    }
    if (fstat(fd, &st) != 0 || st.st_nlink == 0) {
        close(fd);
        return;
    }
    struct cred c = {.pid = strtol(name, NULL, 10), .uid = st.st_uid,
                     .gid = st.st_gid, .spool = 1};
    size_t cap = 1 << 20, have = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        close(fd);
        return;
    }
    int ok = 1;
    for (;;) {
        if (have == cap) { /* a line longer than the buffer: garbage */
            ctr.spool_bad++;
            have = 0;
        }
        ssize_t k = read(fd, buf + have, cap - have);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            ok = 0;
            break;
        }
        if (k == 0)
            break;
        have += (size_t)k;
        size_t start = 0;
        char *nl;
        while ((nl = memchr(buf + start, '\n', have - start))) {
            size_t ln = (size_t)(nl - (buf + start));
            if (ln) {
                if (handle_event(buf + start, ln, &c))
                    ctr.spool_events++;
                else
                    ctr.spool_bad++;
                /* keep rotation sizes honest during a large ingest */
                if (logsize + (long long)wbuf.len >= cfg.max_size &&
                    flush_wbuf() != 0) {
                    ok = 0;
                    break;
                }
            }
            start += ln + 1;
        }
        if (!ok)
            break;
        memmove(buf, buf + start, have - start);
        have -= start;
        if (wbuf.len > (4u << 20) && flush_wbuf() != 0) {
            ok = 0;
            break;
        }
    }
    if (have) /* torn last line (writer died mid-write) */
        ctr.spool_bad++;
    free(buf);
    if (ok && flush_wbuf() == 0) {
        /* The spool file is the durable copy until this point. */
        if (cfg.fsync_ms >= 0)
            sync_log();
        unlinkat(dfd, name, 0);
        ctr.spool_files++;
    }
    close(fd); /* releases the lock */
}

static void ingest_spool(void)
{
    if (pending_consume)
        return;
    lg_spool_each(cfg.spool, ingest_file, NULL);
}

/* ==== Id index rebuild from the newest files ==== */
static void index_file(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    char *line = NULL;
    size_t cap = 0;
    ssize_t k;
    while ((k = getline(&line, &cap, f)) > 0) {
        if (line[k - 1] != '\n') /* torn: its event was not consumed */
            break;
        const char *v;
        size_t vl;
        if (lg_line_field(line, (size_t)k, "id", 64, &v, &vl) == 0)
            dedup_check_add(v, vl);
    }
    free(line);
    fclose(f);
}

static void rebuild_index(void)
{
    char **files;
    int n = lg_logfiles_list(cfg.logdir, &files);
    if (n <= 0)
        return;
    /* Newest two files: everything a crash could have left unconsumed
     * was written moments before it, in the current file (or just
     * rotated out). */
    for (int i = n >= 2 ? n - 2 : 0; i < n; i++)
        index_file(files[i]);
    lg_logfiles_free(files, n);
}

/* ==== Status file ==== */
static pid_t keeper_pid;
static int activated;

static void write_status(int running)
{
    cJSON *o = cJSON_CreateObject();
    char ts[32];
    cJSON_AddBoolToObject(o, "running", running);
    cJSON_AddNumberToObject(o, "pid", getpid());
    cJSON_AddNumberToObject(o, "keeper_pid", keeper_pid);
    cJSON_AddBoolToObject(o, "socket_activated", activated);
    lg_emit_format_ts(ts, started_us);
    cJSON_AddStringToObject(o, "started", ts);
    lg_emit_format_ts(ts, lg_now_us());
    cJSON_AddStringToObject(o, "updated", ts);
    cJSON_AddStringToObject(o, "version", LG_VERSION);
    cJSON_AddStringToObject(o, "socket", cfg.socket);
    cJSON_AddStringToObject(o, "spool_dir", cfg.spool);
    cJSON_AddStringToObject(o, "log_dir", cfg.logdir);
    cJSON_AddNumberToObject(o, "fsync_interval_ms", (double)cfg.fsync_ms);
    cJSON_AddNumberToObject(o, "received", (double)ctr.received);
    cJSON_AddNumberToObject(o, "stored", (double)ctr.stored);
    cJSON_AddNumberToObject(o, "duplicates", (double)ctr.duplicates);
    cJSON *dr = cJSON_AddObjectToObject(o, "dropped");
    cJSON_AddNumberToObject(dr, "total", (double)(ctr.garbage + ctr.oversize +
        ctr.bad_utf8 + ctr.invalid + ctr.nocred));
    cJSON_AddNumberToObject(dr, "garbage", (double)ctr.garbage);
    cJSON_AddNumberToObject(dr, "oversize", (double)ctr.oversize);
    cJSON_AddNumberToObject(dr, "bad_utf8", (double)ctr.bad_utf8);
    cJSON_AddNumberToObject(dr, "invalid", (double)ctr.invalid);
    cJSON_AddNumberToObject(dr, "no_credentials", (double)ctr.nocred);
    cJSON *sp = cJSON_AddObjectToObject(o, "spool");
    cJSON_AddNumberToObject(sp, "files", (double)ctr.spool_files);
    cJSON_AddNumberToObject(sp, "events", (double)ctr.spool_events);
    cJSON_AddNumberToObject(sp, "bad_lines", (double)ctr.spool_bad);
    cJSON_AddNumberToObject(o, "rotations", (double)ctr.rotations);
    cJSON_AddNumberToObject(o, "write_errors", (double)ctr.write_errors);
    cJSON *fa = cJSON_AddArrayToObject(o, "forward");
    for (int i = 0; i < cfg.nfwd; i++) {
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "url", fwd[i].url);
        cJSON_AddNumberToObject(f, "forwarded", (double)fwd[i].forwarded);
        cJSON_AddNumberToObject(f, "dropped", (double)fwd[i].dropped);
        cJSON_AddNumberToObject(f, "backlog", (double)fwd[i].qlen);
        cJSON_AddBoolToObject(f, "connected", fwd[i].fd >= 0 && !fwd[i].connecting);
        cJSON_AddItemToArray(fa, f);
    }
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    if (!s)
        return;
    char p[4200], tmp[4300];
    snprintf(p, sizeof p, "%s/%s", cfg.logdir, LG_LOG_STATUS);
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) {
        size_t l = strlen(s);
        if (write(fd, s, l) == (ssize_t)l && write(fd, "\n", 1) == 1)
            rename(tmp, p);
        close(fd);
    }
    free(s);
}

/* ==== Socket setup: activation, keeper, or bind ==== */
static int check_evsock(int fd)
{
    int type = 0, dom = 0;
    socklen_t l = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l) != 0 || type != SOCK_DGRAM)
        return -1;
    l = sizeof dom;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &l) != 0 || dom != AF_UNIX)
        return -1;
    return 0;
}

static int from_activation(void)
{
    const char *lp = getenv("LISTEN_PID"), *lf = getenv("LISTEN_FDS");
    if (!lp || !lf || strtol(lp, NULL, 10) != getpid() || strtol(lf, NULL, 10) < 1)
        return -1;
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    int fd = 3; /* SD_LISTEN_FDS_START */
    if (check_evsock(fd) != 0) {
        logmsg("LISTEN_FDS: fd 3 is not a Unix datagram socket");
        return -1;
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    struct sockaddr_un a;
    socklen_t al = sizeof a;
    if (getsockname(fd, (struct sockaddr *)&a, &al) == 0 && a.sun_path[0])
        snprintf(cfg.socket, sizeof cfg.socket, "%s", a.sun_path);
    activated = 1;
    return fd;
}

static void keeper_path(char *out, size_t cap)
{
    snprintf(out, cap, "%s.keeper", cfg.socket);
}

static int keeper_request(char cmd, int *fd_out)
{
    char kp[128];
    keeper_path(kp, sizeof kp);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(kp) >= sizeof a.sun_path)
        return -1;
    strcpy(a.sun_path, kp);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -1;
    struct timeval tv = {2, 0};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0 ||
        write(s, &cmd, 1) != 1) {
        close(s);
        return -1;
    }
    int rc = -1;
    if (cmd == 'G') {
        char b;
        union {
            char buf[CMSG_SPACE(sizeof(int))];
            struct cmsghdr al;
        } ctl;
        struct iovec iov = {&b, 1};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1,
                            .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
        if (recvmsg(s, &mh, MSG_CMSG_CLOEXEC) == 1) {
            struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
            if (cm && cm->cmsg_type == SCM_RIGHTS) {
                memcpy(fd_out, CMSG_DATA(cm), sizeof(int));
                rc = 0;
            }
        }
    } else {
        char b;
        rc = read(s, &b, 1) >= 0 ? 0 : -1;
    }
    close(s);
    return rc;
}

/* The keeper: holds a copy of the events socket so its queue survives the
 * collector, and hands it to the next one.  Exits on 'Q', or when the
 * socket path no longer names its socket. */
static void keeper_main(int ev, int ls)
{
    prctl(PR_SET_NAME, "lg-keeper");
    struct stat st0;
    stat(cfg.socket, &st0);
    for (;;) {
        struct pollfd p = {ls, POLLIN, 0};
        int r = poll(&p, 1, 1000);
        if (r == 0) {
            struct stat st;
            if (stat(cfg.socket, &st) != 0 || st.st_ino != st0.st_ino ||
                st.st_dev != st0.st_dev)
                break;
            continue;
        }
        if (r < 0)
            continue;
        int c = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            continue;
        struct ucred u;
        socklen_t ul = sizeof u;
        char cmd = 0;
        struct timeval tv = {1, 0};
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &u, &ul) != 0 ||
            (u.uid != geteuid() && u.uid != 0) || read(c, &cmd, 1) != 1) {
            close(c);
            continue;
        }
        if (cmd == 'G') {
            char b = 'F';
            union {
                char buf[CMSG_SPACE(sizeof(int))];
                struct cmsghdr al;
            } ctl;
            memset(&ctl, 0, sizeof ctl);
            struct iovec iov = {&b, 1};
            struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1,
                                .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
            struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
            cm->cmsg_level = SOL_SOCKET;
            cm->cmsg_type = SCM_RIGHTS;
            cm->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(cm), &ev, sizeof ev);
            sendmsg(c, &mh, MSG_NOSIGNAL);
            close(c);
        } else if (cmd == 'Q') {
            if (write(c, "q", 1) < 0) { /* best effort */ }
            close(c);
            break;
        } else
            close(c);
    }
    char kp[128];
    keeper_path(kp, sizeof kp);
    unlink(kp);
    _exit(0);
}

static pid_t start_keeper(int ev)
{
    char kp[128];
    keeper_path(kp, sizeof kp);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(kp) >= sizeof a.sun_path)
        return -1;
    strcpy(a.sun_path, kp);
    unlink(kp);
    int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(ls, 8) != 0) {
        if (ls >= 0)
            close(ls);
        return -1;
    }
    chmod(kp, 0600);
    pid_t pid = fork();
    if (pid == 0) {
        setsid();
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 0);
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        for (int fd = 3; fd < 1024; fd++)
            if (fd != ev && fd != ls)
                close(fd);
        sigset_t all;
        sigfillset(&all);
        sigprocmask(SIG_UNBLOCK, &all, NULL);
        signal(SIGHUP, SIG_IGN);
        signal(SIGINT, SIG_IGN);
        keeper_main(ev, ls);
    }
    close(ls);
    return pid;
}

static int bind_socket(void)
{
    char dir[128];
    snprintf(dir, sizeof dir, "%s", cfg.socket);
    char *sl = strrchr(dir, '/');
    if (sl && sl != dir) {
        *sl = 0;
        int rc = lg_emit_mkdir_private(dir, cfg.system ? 0755 : 0700);
        if (rc) {
            logmsg("socket directory %s: %s", dir, strerror(-rc));
            return -1;
        }
    }
    struct stat st;
    if (lstat(cfg.socket, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            logmsg("%s exists and is not a socket", cfg.socket);
            return -1;
        }
        unlink(cfg.socket); /* stale: we hold the instance lock */
    }
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strcpy(a.sun_path, cfg.socket);
    mode_t old = umask(cfg.system ? 0117 : 0177);
    int rc = bind(fd, (struct sockaddr *)&a, sizeof a);
    umask(old);
    if (rc != 0) {
        logmsg("bind %s: %s", cfg.socket, strerror(errno));
        close(fd);
        return -1;
    }
    if (cfg.system) {
        struct group *g = getgrnam("llmguard");
        if (g && chown(cfg.socket, 0, g->gr_gid) == 0)
            chmod(cfg.socket, 0660);
        else
            chmod(cfg.socket, 0666); /* no group: any local user may emit */
    } else
        chmod(cfg.socket, 0600);
    return fd;
}

static int setup_socket(void)
{
    int fd = from_activation();
    if (fd >= 0)
        return fd;
    if (cfg.keeper && keeper_request('G', &fd) == 0) {
        struct sockaddr_un a;
        socklen_t al = sizeof a;
        if (check_evsock(fd) == 0 &&
            getsockname(fd, (struct sockaddr *)&a, &al) == 0 &&
            !strcmp(a.sun_path, cfg.socket)) {
            if (cfg.verbose)
                logmsg("took over the socket from the keeper");
            char pidp[160];
            snprintf(pidp, sizeof pidp, "%s.keeper.pid", cfg.socket);
            FILE *f = fopen(pidp, "re");
            if (f) {
                int kp = 0;
                if (fscanf(f, "%d", &kp) == 1)
                    keeper_pid = kp;
                fclose(f);
            }
            return fd;
        }
        close(fd);
        keeper_request('Q', NULL);
    }
    fd = bind_socket();
    if (fd < 0)
        return -1;
    if (cfg.keeper) {
        keeper_pid = start_keeper(fd);
        char pidp[160];
        snprintf(pidp, sizeof pidp, "%s.keeper.pid", cfg.socket);
        FILE *f = fopen(pidp, "we");
        if (f) {
            fprintf(f, "%d\n", (int)keeper_pid);
            fclose(f);
        }
    }
    return fd;
}

/* ==== --status ==== */
static int lockfd = -1;

static int show_status(int json)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", cfg.logdir, LG_LOG_LOCK);
    int running = 0;
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        running = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
        close(fd);
    }
    snprintf(p, sizeof p, "%s/%s", cfg.logdir, LG_LOG_STATUS);
    FILE *f = fopen(p, "re");
    cJSON *st = NULL;
    if (f) {
        char buf[16384];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = 0;
        fclose(f);
        st = cJSON_Parse(buf);
    }
    if (json) {
        if (!st)
            st = cJSON_CreateObject();
        cJSON_DeleteItemFromObject(st, "running");
        cJSON_AddBoolToObject(st, "running", running);
        if (!cJSON_GetObjectItem(st, "log_dir"))
            cJSON_AddStringToObject(st, "log_dir", cfg.logdir);
        char *s = cJSON_Print(st);
        puts(s);
        free(s);
        cJSON_Delete(st);
        return running ? 0 : 3;
    }
#define NUM(o, k) (cJSON_IsNumber(cJSON_GetObjectItem((o), (k))) ? \
                   cJSON_GetObjectItem((o), (k))->valuedouble : 0)
#define STR(o, k) (cJSON_IsString(cJSON_GetObjectItem((o), (k))) ? \
                   cJSON_GetObjectItem((o), (k))->valuestring : "?")
    if (running)
        printf("llmguard-collectord: running (pid %.0f)\n", st ? NUM(st, "pid") : 0);
    else
        printf("llmguard-collectord: not running\n");
    printf("  log dir:    %s\n", cfg.logdir);
    if (st) {
        printf("  socket:     %s\n", STR(st, "socket"));
        printf("  spool dir:  %s\n", STR(st, "spool_dir"));
        printf("  %s %s, last update %s\n", running ? "started:   " : "last run:  ",
               STR(st, "started"), STR(st, "updated"));
        printf("  received:   %.0f   stored: %.0f   duplicates: %.0f\n",
               NUM(st, "received"), NUM(st, "stored"), NUM(st, "duplicates"));
        cJSON *d = cJSON_GetObjectItem(st, "dropped");
        if (d)
            printf("  dropped:    %.0f (garbage %.0f, oversize %.0f, bad utf-8 %.0f, "
                   "invalid %.0f, no credentials %.0f)\n",
                   NUM(d, "total"), NUM(d, "garbage"), NUM(d, "oversize"),
                   NUM(d, "bad_utf8"), NUM(d, "invalid"), NUM(d, "no_credentials"));
        cJSON *s = cJSON_GetObjectItem(st, "spool");
        if (s)
            printf("  spooled:    %.0f events from %.0f files (%.0f bad lines)\n",
                   NUM(s, "events"), NUM(s, "files"), NUM(s, "bad_lines"));
        cJSON *fa = cJSON_GetObjectItem(st, "forward"), *it;
        cJSON_ArrayForEach(it, fa) printf(
            "  forward:    %s: forwarded %.0f, dropped %.0f, backlog %.0f, %s\n",
            STR(it, "url"), NUM(it, "forwarded"), NUM(it, "dropped"),
            NUM(it, "backlog"),
            cJSON_IsTrue(cJSON_GetObjectItem(it, "connected")) ? "connected"
                                                                : "disconnected");
    } else
        printf("  (no status file: never started with this log directory)\n");
    cJSON_Delete(st);
    return running ? 0 : 3;
}

/* ==== main ==== */
static void usage(FILE *o)
{
    fprintf(o,
"usage: llmguard-collectord [options]\n"
"  --system               system-wide collector (/run/llmguard, /var/log/llmguard)\n"
"  --socket PATH          datagram socket (default: see llmguard-collectord(8))\n"
"  --spool-dir DIR        spool directory to ingest\n"
"  --log-dir DIR          where events*.jsonl go\n"
"  --fsync-interval MS|off  fsync at most this long after a write (default 200)\n"
"  --max-size BYTES[k|M|G]  rotate the current file at this size (default 64M)\n"
"  --keep N               rotated files kept (default 10)\n"
"  --max-age DAYS         rotated files older than this are removed (default 30)\n"
"  --spool-interval MS    how often the spool directory is scanned (default 1000)\n"
"  --dedup N              event ids remembered per generation (default 524288)\n"
"  --forward URL          syslog+tcp://HOST:PORT or syslog+udp://HOST:PORT (repeatable)\n"
"  --forward-backlog N    events held per destination while it is down (default 10000)\n"
"  --forward-backoff-max MS  cap on reconnect backoff (default 5000)\n"
"  --facility N           syslog facility number (default 16, local0)\n"
"  --no-keeper            do not keep the socket alive across crashes\n"
"  --status [--json]      report whether a collector runs and its counters\n"
"  -v, --verbose          log more to stderr\n"
"  --version, -h/--help\n");
}

static long long parse_size(const char *s)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s || v < 0)
        return -1;
    switch (*end) {
    case 0: return v;
    case 'k': case 'K': return v << 10;
    case 'm': case 'M': return v << 20;
    case 'g': case 'G': return v << 30;
    default: return -1;
    }
}

static volatile int stop;

int main(int argc, char **argv)
{
    enum { OPT_SOCK = 256, OPT_SPOOL, OPT_LOG, OPT_FSYNC, OPT_MAXSIZE, OPT_KEEP, OPT_MAXAGE,
           OPT_SPOOLMS, OPT_DEDUP, OPT_FWD, OPT_BACKLOG, OPT_BACKOFF, OPT_FAC, OPT_NOKEEP,
           OPT_STATUS, OPT_JSON, OPT_SYSTEM, OPT_VERSION };
    static const struct option opts[] = {
        {"system", no_argument, 0, OPT_SYSTEM},
        {"socket", required_argument, 0, OPT_SOCK},
        {"spool-dir", required_argument, 0, OPT_SPOOL},
        {"log-dir", required_argument, 0, OPT_LOG},
        {"fsync-interval", required_argument, 0, OPT_FSYNC},
        {"max-size", required_argument, 0, OPT_MAXSIZE},
        {"keep", required_argument, 0, OPT_KEEP},
        {"max-age", required_argument, 0, OPT_MAXAGE},
        {"spool-interval", required_argument, 0, OPT_SPOOLMS},
        {"dedup", required_argument, 0, OPT_DEDUP},
        {"forward", required_argument, 0, OPT_FWD},
        {"forward-backlog", required_argument, 0, OPT_BACKLOG},
        {"forward-backoff-max", required_argument, 0, OPT_BACKOFF},
        {"facility", required_argument, 0, OPT_FAC},
        {"no-keeper", no_argument, 0, OPT_NOKEEP},
        {"status", no_argument, 0, OPT_STATUS},
        {"json", no_argument, 0, OPT_JSON},
        {"verbose", no_argument, 0, 'v'},
        {"version", no_argument, 0, OPT_VERSION},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *o_sock = NULL, *o_spool = NULL, *o_log = NULL;
    int status = 0, json = 0, c;
    while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
        switch (c) {
        case OPT_SYSTEM: cfg.system = 1; break;
        case OPT_SOCK: o_sock = optarg; break;
        case OPT_SPOOL: o_spool = optarg; break;
        case OPT_LOG: o_log = optarg; break;
        case OPT_FSYNC:
            cfg.fsync_ms = !strcmp(optarg, "off") ? -1 : strtol(optarg, NULL, 10);
            if (cfg.fsync_ms < -1) cfg.fsync_ms = 200;
            break;
        case OPT_MAXSIZE:
            if ((cfg.max_size = parse_size(optarg)) <= 0) {
                logmsg("bad --max-size %s", optarg);
                return 2;
            }
            break;
        case OPT_KEEP: cfg.keep = atoi(optarg); break;
        case OPT_MAXAGE: cfg.max_age_s = (long long)(atof(optarg) * 86400); break;
        case OPT_SPOOLMS: cfg.spool_ms = strtol(optarg, NULL, 10); break;
        case OPT_DEDUP: cfg.dedup = strtol(optarg, NULL, 10); break;
        case OPT_FWD:
            if (cfg.nfwd == MAX_FWD) {
                logmsg("at most %d --forward", MAX_FWD);
                return 2;
            }
            cfg.fwd_url[cfg.nfwd++] = optarg;
            break;
        case OPT_BACKLOG: cfg.backlog = strtol(optarg, NULL, 10); break;
        case OPT_BACKOFF: cfg.backoff_max_ms = strtol(optarg, NULL, 10); break;
        case OPT_FAC: cfg.facility = atoi(optarg) & 23; break;
        case OPT_NOKEEP: cfg.keeper = 0; break;
        case OPT_STATUS: status = 1; break;
        case OPT_JSON: json = 1; break;
        case 'v': cfg.verbose = 1; break;
        case OPT_VERSION: printf("llmguard-collectord %s\n", LG_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    if (cfg.backlog < 1) cfg.backlog = 1;
    if (cfg.dedup < 1024) cfg.dedup = 1024;
    if (cfg.spool_ms < 10) cfg.spool_ms = 10;
    if (cfg.keep < 0) cfg.keep = 0;
    if (cfg.backoff_max_ms < 100) cfg.backoff_max_ms = 100;
    lg_emit_paths dp;
    if (lg_emit_default_paths(&dp, cfg.system) != 0) {
        logmsg("default paths too long");
        return 2;
    }
    snprintf(cfg.socket, sizeof cfg.socket, "%s", o_sock ? o_sock : dp.socket);
    if (o_sock && strlen(o_sock) >= sizeof cfg.socket - 16) {
        logmsg("socket path too long");
        return 2;
    }
    snprintf(cfg.spool, sizeof cfg.spool, "%s", o_spool ? o_spool : dp.spool);
    if (o_log)
        snprintf(cfg.logdir, sizeof cfg.logdir, "%s", o_log);
    else if (lg_logdir_default(cfg.logdir, sizeof cfg.logdir, cfg.system) != 0) {
        logmsg("cannot determine the log directory (set --log-dir)");
        return 2;
    }
    if (status)
        return show_status(json);

    umask(077);
    started_us = lg_now_us();
    gethostname(hostname, sizeof hostname - 1);
    if (!*hostname || strchr(hostname, ' '))
        strcpy(hostname, "-");
    int rc = lg_emit_mkdir_private(cfg.logdir, 0700);
    if (rc) {
        logmsg("log directory %s: %s", cfg.logdir, strerror(-rc));
        return 1;
    }
    char lp[4200];
    snprintf(lp, sizeof lp, "%s/%s", cfg.logdir, LG_LOG_LOCK);
    lockfd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lockfd < 0 || flock(lockfd, LOCK_EX | LOCK_NB) != 0) {
        logmsg("another collector is using %s", cfg.logdir);
        return 1;
    }
    rc = lg_emit_mkdir_private(cfg.spool, cfg.system ? 01733 : 0700);
    if (rc) {
        logmsg("spool directory %s: %s", cfg.spool, strerror(-rc));
        return 1;
    }
    if (cfg.system) {
        struct group *g = getgrnam("llmguard");
        if (g && chown(cfg.spool, 0, g->gr_gid) == 0)
            chmod(cfg.spool, 01730);
    }
    for (int i = 0; i < cfg.nfwd; i++)
        if (fwd_parse(&fwd[i], cfg.fwd_url[i]) != 0) {
            logmsg("bad --forward %s (want syslog+tcp://HOST:PORT or syslog+udp://HOST:PORT)",
                   cfg.fwd_url[i]);
            return 2;
        }
    if (dedup_init() != 0) {
        logmsg("out of memory");
        return 1;
    }
    lg_buf_init(&wbuf, 256u << 20);
    for (int i = 0; i < BATCH; i++)
        if (!(rbuf[i] = malloc(MAXEV + 1))) {
            logmsg("out of memory");
            return 1;
        }
    signal(SIGPIPE, SIG_IGN);
    sigset_t ss;
    sigemptyset(&ss);
    sigaddset(&ss, SIGTERM);
    sigaddset(&ss, SIGINT);
    sigaddset(&ss, SIGHUP);
    sigprocmask(SIG_BLOCK, &ss, NULL);
    int sfd = signalfd(-1, &ss, SFD_CLOEXEC | SFD_NONBLOCK);

    evfd = setup_socket();
    if (evfd < 0)
        return 1;
    int one = 1;
    setsockopt(evfd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one);
    int rcvbuf = 4 << 20;
    setsockopt(evfd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    int z = 0;
    peek_off_ok = setsockopt(evfd, SOL_SOCKET, SO_PEEK_OFF, &z, sizeof z) == 0;
    int fl = fcntl(evfd, F_GETFL);
    fcntl(evfd, F_SETFL, fl | O_NONBLOCK);

    if (open_log() != 0)
        return 1;
    rebuild_index();
    retention();
    ingest_spool();
    write_status(1);
    if (cfg.verbose)
        logmsg("listening on %s, writing to %s", cfg.socket, cfg.logdir);

    int64_t next_spool = mono_ms() + cfg.spool_ms, next_status = mono_ms() + 1000;
    int64_t next_retention = mono_ms() + 3600 * 1000, retry_at = 0;
    last_sync_ms = mono_ms();
    while (!stop) {
        struct pollfd p[2 + MAX_FWD];
        int np = 0;
        int64_t now = mono_ms();
        int blocked = pending_consume && now < retry_at;
        p[np++] = (struct pollfd){evfd, (short)(blocked ? 0 : POLLIN), 0};
        p[np++] = (struct pollfd){sfd, POLLIN, 0};
        int64_t deadline = next_spool < next_status ? next_spool : next_status;
        if (dirty && cfg.fsync_ms > 0 && last_sync_ms + cfg.fsync_ms < deadline)
            deadline = last_sync_ms + cfg.fsync_ms;
        if (blocked && retry_at < deadline)
            deadline = retry_at;
        for (int i = 0; i < cfg.nfwd; i++) {
            fwd_t *f = &fwd[i];
            short ev = 0;
            if (f->fd >= 0) {
                ev = f->tcp ? (POLLIN | POLLRDHUP) : 0;
                if (f->connecting || f->nsent < f->qlen)
                    ev |= POLLOUT;
                if (f->nsent && now + 50 < deadline)
                    deadline = now + 50; /* poll SIOCOUTQ for acks */
            } else if (f->qlen && f->next_try < deadline)
                deadline = f->next_try;
            p[np++] = (struct pollfd){f->fd, ev, 0};
        }
        int to = deadline > now ? (int)(deadline - now) : 0;
        if (poll(p, (nfds_t)np, to) < 0 && errno != EINTR)
            break;
        if (p[1].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) == sizeof si) {
                if (si.ssi_signo == SIGHUP) {
                    if (flush_wbuf() == 0) {
                        sync_log();
                        if (logfd >= 0)
                            close(logfd);
                        logfd = -1;
                        open_log();
                    }
                    retention();
                    next_spool = 0;
                    if (cfg.verbose)
                        logmsg("SIGHUP: reopened %s/%s", cfg.logdir, LG_LOG_CURRENT);
                } else
                    stop = 1;
            }
        }
        if (!blocked && (p[0].revents & POLLIN || pending_consume)) {
            for (int b = 0; b < 256; b++) {
                int r = recv_batch();
                if (r < 0) {
                    retry_at = mono_ms() + 1000;
                    break;
                }
                if (r == 0)
                    break;
                if (cfg.fsync_ms > 0 && dirty && mono_ms() - last_sync_ms >= cfg.fsync_ms)
                    sync_log();
                for (int i = 0; i < cfg.nfwd; i++)
                    if (fwd[i].fd >= 0 && !fwd[i].connecting)
                        fwd_service(&fwd[i], 0);
            }
        }
        for (int i = 0; i < cfg.nfwd; i++)
            fwd_service(&fwd[i], p[2 + i].revents);
        now = mono_ms();
        if (now >= next_spool) {
            ingest_spool();
            next_spool = now + cfg.spool_ms;
        }
        if (dirty && cfg.fsync_ms > 0 && now - last_sync_ms >= cfg.fsync_ms)
            sync_log();
        if (now >= next_status) {
            write_status(1);
            next_status = now + 1000;
        }
        if (now >= next_retention) {
            retention();
            next_retention = now + 3600 * 1000;
        }
    }

    /* Clean stop: no new datagrams (path gone), drain the queue, store,
     * sync, end the keeper.  Under socket activation the socket is
     * systemd's, so it stays and keeps queueing for the next start. */
    if (!activated)
        unlink(cfg.socket);
    for (int b = 0; b < 100000; b++)
        if (recv_batch() <= 0)
            break;
    ingest_spool();
    flush_wbuf();
    sync_log();
    if (!activated && cfg.keeper) {
        keeper_request('Q', NULL);
        if (keeper_pid > 0)
            waitpid(keeper_pid, NULL, WNOHANG); /* reap it if it is ours */
        char pidp[160];
        snprintf(pidp, sizeof pidp, "%s.keeper.pid", cfg.socket);
        unlink(pidp);
    }
    /* Last chance for forwarders: up to one second. */
    int64_t end = mono_ms() + 1000;
    for (int i = 0; i < cfg.nfwd; i++)
        while (fwd[i].qlen && fwd[i].fd >= 0 && mono_ms() < end) {
            struct pollfd p = {fwd[i].fd, POLLOUT, 0};
            poll(&p, 1, 50);
            fwd_service(&fwd[i], p.revents);
        }
    keeper_pid = 0;
    write_status(0);
    if (cfg.verbose)
        logmsg("stopped: %llu stored", (unsigned long long)ctr.stored);
    return 0;
}
