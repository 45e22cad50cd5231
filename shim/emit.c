/* The event emitter (see emit.h for the contract and the spool protocol).
 * Everything here runs inside the guarded client, from whatever thread the
 * shim happens to be on, so it must not block, must not disturb errno, and
 * must not call through the shim's own hooks: on Linux the I/O is done with
 * syscall(2) directly.
 *
 * The datagram socket is connected to the collector once and kept: a
 * sendto() with an address resolves the socket's path on every call, which
 * costs more than the send itself.  Facts relied on: a Unix datagram send
 * with MSG_DONTWAIT returns EAGAIN when the receiver's queue is full
 * (net.unix.max_dgram_qlen, only 10 by default); connect() fails with ENOENT
 * when the socket file is gone and ECONNREFUSED when nobody has it open; a
 * send on a socket whose peer was closed fails once with ECONNREFUSED and
 * leaves it unconnected (ENOTCONN after that).  The collector's socket
 * normally outlives the collector (its keeper or systemd holds it), so a
 * connection stays valid across collector restarts; when a new socket was
 * bound at the path instead, the old peer either is dead (ECONNREFUSED:
 * connect again at once) or, held by a stale keeper, stays full (EAGAIN for
 * a second: connect again, so the path is looked up afresh). */
#include "emit.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/random.h>
#include <sys/syscall.h>
#endif

/* ==== Raw I/O (bypasses the shim's libc hooks) ==== */
#if defined(__linux__)
#define R_SOCKET(d, t, p) ((int)syscall(SYS_socket, (d), (t), (p)))
#define R_CONNECT(f, a, al) ((int)syscall(SYS_connect, (f), (a), (al)))
#define R_SEND(f, b, n, fl) ((ssize_t)syscall(SYS_sendto, (f), (b), (n), (fl), NULL, 0))
#define R_SENDMMSG(f, v, n, fl) ((int)syscall(SYS_sendmmsg, (f), (v), (n), (fl)))
#define R_OPEN(p, fl, m) ((int)syscall(SYS_openat, AT_FDCWD, (p), (fl), (m)))
#define R_WRITEV(f, v, c) ((ssize_t)syscall(SYS_writev, (f), (v), (c)))
#define R_CLOSE(f) syscall(SYS_close, (f))
#define R_FLOCK(f, o) syscall(SYS_flock, (f), (o))
#define R_FSTAT(f, st) ((int)syscall(SYS_fstat, (f), (st)))
#define R_GETPID() ((pid_t)syscall(SYS_getpid))
#else
#define R_SOCKET(d, t, p) socket((d), (t), (p))
#define R_CONNECT(f, a, al) connect((f), (a), (al))
#define R_SEND(f, b, n, fl) send((f), (b), (n), (fl))
#define R_SENDMMSG(f, v, n, fl) sendmmsg_loop((f), (v), (n), (fl))
#define R_OPEN(p, fl, m) open((p), (fl), (m))
#define R_WRITEV(f, v, c) writev((f), (v), (c))
#define R_CLOSE(f) close(f)
#define R_FLOCK(f, o) flock((f), (o))
#define R_FSTAT(f, st) fstat((f), (st))
#define R_GETPID() getpid()
#endif

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

/* After the collector was found absent, go straight to the spool for this
 * long instead of trying the socket on every event. */
#define RETRY_NS (100 * 1000 * 1000LL)
/* A connected socket whose peer stays full this long is connected again, in
 * case the path now names another socket (see the top of the file). */
#define FULL_RECONNECT_NS (1000 * 1000 * 1000LL)
/* Events handled per system call (sendmmsg, writev of spool lines). */
#define BATCH 16

#if !defined(__linux__)
/* No sendmmsg: one send per datagram, same return convention. */
static int sendmmsg_loop(int fd, struct mmsghdr *v, unsigned n, int fl)
{
    unsigned i = 0;
    for (; i < n; i++) {
        ssize_t w = sendmsg(fd, &v[i].msg_hdr, fl);
        if (w < 0)
            return i ? (int)i : -1;
        v[i].msg_len = (unsigned)w;
    }
    return (int)i;
}
#endif

struct lg_emitter {
    pthread_mutex_t mu;          /* guards everything below */
    struct sockaddr_un addr;     /* collector socket address */
    socklen_t addrlen;           /* bytes of addr in use */
    char spool_dir[4096];        /* directory for spool files */
    int sock;                    /* datagram socket or -1 */
    int connected;               /* sock is connected to addr */
    long long full_since;        /* CLOCK_MONOTONIC ns since the peer is full, 0 if not */
    int spool;                   /* current spool file or -1 */
    unsigned spool_seq;          /* <n> of the current spool file name */
    long long spool_t0;          /* <start µs> of this process's spool names */
    pid_t pid;                   /* process that owns sock/spool */
    long long retry_at;          /* CLOCK_MONOTONIC ns before which we spool */
    lg_emit_stats st;            /* counters */
    struct lg_emitter *next;     /* registry link (for fork) */
};

/* ==== Ids ==== */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER; /* registry */
static struct lg_emitter *g_list;                         /* open emitters */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static char g_prefix[17];          /* random hex, per process */
static atomic_int g_prefix_pid;    /* pid g_prefix was drawn for */
static atomic_ullong g_counter;    /* per-process id counter */

static long long mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long real_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static void draw_prefix(pid_t pid)
{
    unsigned char r[8];
    size_t got = 0;
#if defined(__linux__)
    while (got < sizeof r) {
        ssize_t k = getrandom(r + got, sizeof r - got, GRND_NONBLOCK);
        if (k <= 0)
            break;
        got += (size_t)k;
    }
#endif
    if (got < sizeof r) {
        /* No entropy yet (very early boot): time and pid still make the
         * prefix unique in practice. */
        unsigned long long x = (unsigned long long)real_us() ^
                               ((unsigned long long)pid << 40) ^
                               (unsigned long long)mono_ns();
        for (size_t i = 0; i < sizeof r; i++) {
            x ^= x >> 33;
            x *= 0xff51afd7ed558ccdULL;
            r[i] = (unsigned char)(x >> 56);
        }
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof r; i++) {
        g_prefix[2 * i] = hex[r[i] >> 4];
        g_prefix[2 * i + 1] = hex[r[i] & 15];
    }
    g_prefix[16] = 0;
    atomic_store(&g_counter, 0);
    atomic_store(&g_prefix_pid, (int)pid);
}

size_t lg_emit_new_id(char buf[LG_EMIT_ID_SIZE])
{
    int saved = errno;
    pid_t pid = R_GETPID();
    if (atomic_load(&g_prefix_pid) != (int)pid) {
        pthread_mutex_lock(&g_mu);
        if (atomic_load(&g_prefix_pid) != (int)pid)
            draw_prefix(pid);
        pthread_mutex_unlock(&g_mu);
    }
    unsigned long long c = atomic_fetch_add(&g_counter, 1) + 1;
    int n = snprintf(buf, LG_EMIT_ID_SIZE, "%s-%d-%llu", g_prefix, (int)pid, c);
    errno = saved;
    return n < 0 ? 0 : (size_t)n;
}

size_t lg_emit_format_ts(char buf[32], int64_t unix_us)
{
    time_t secs = (time_t)(unix_us / 1000000);
    long us = (long)(unix_us % 1000000);
    if (us < 0) {
        us += 1000000;
        secs--;
    }
    struct tm tm;
    gmtime_r(&secs, &tm);
    int n = snprintf(buf, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, us);
    return n < 0 ? 0 : (size_t)n;
}

/* ==== Paths ==== */
static int join(char *out, size_t cap, const char *a, const char *b)
{
    int n = snprintf(out, cap, "%s%s", a, b);
    return (n < 0 || (size_t)n >= cap) ? -ENAMETOOLONG : 0;
}

static const char *env(const char *name)
{
    const char *v = secure_getenv(name);
    return (v && *v) ? v : NULL;
}

int lg_emit_default_paths(lg_emit_paths *out, int system)
{
    char base[4096];
    const char *rt = env("XDG_RUNTIME_DIR");
    int rc;
    if (system)
        rc = join(base, sizeof base, "/run/llmguard", "");
    else if (rt)
        rc = join(base, sizeof base, rt, "/llmguard");
    else {
        int n = snprintf(base, sizeof base, "/tmp/llmguard-%u",
                         (unsigned)getuid());
        rc = (n < 0 || (size_t)n >= sizeof base) ? -ENAMETOOLONG : 0;
    }
    if (rc)
        return rc;
    const char *s = env("LLMGUARD_COLLECTOR");
    rc = s ? join(out->socket, sizeof out->socket, s, "")
           : join(out->socket, sizeof out->socket, base, "/events.sock");
    if (rc)
        return rc;
    const char *sp = env("LLMGUARD_SPOOL_DIR");
    return sp ? join(out->spool, sizeof out->spool, sp, "")
              : join(out->spool, sizeof out->spool, base, "/spool");
}

static int check_dir(const char *dir, int follow)
{
    struct stat st;
    if ((follow ? stat(dir, &st) : lstat(dir, &st)) != 0)
        return -errno;
    if (!S_ISDIR(st.st_mode))
        return -ENOTDIR;
    uid_t me = geteuid();
    if (st.st_uid != me && st.st_uid != 0)
        return -EPERM;
    if ((st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX))
        return -EPERM;
    return 0;
}

int lg_emit_mkdir_private(const char *dir, unsigned mode)
{
    int saved = errno;
    char tmp[4096];
    size_t n = strlen(dir);
    int rc = 0;
    if (n == 0 || n >= sizeof tmp) {
        errno = saved;
        return -ENAMETOOLONG;
    }
    memcpy(tmp, dir, n + 1);
    while (n > 1 && tmp[n - 1] == '/')
        tmp[--n] = 0;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
            rc = -errno;
        else /* every ancestor must be ours, root's, or sticky */
            rc = check_dir(tmp, 1);
        *p = '/';
        if (rc)
            goto out;
    }
    if (mkdir(tmp, (mode_t)mode) == 0) {
        /* mkdir honours the umask; the mode asked for is the contract. */
        if (chmod(tmp, (mode_t)mode) != 0)
            rc = -errno;
    } else if (errno != EEXIST)
        rc = -errno;
    if (rc == 0)
        rc = check_dir(tmp, 0);
out:
    errno = saved;
    return rc;
}

/* ==== Fork handling ==== */
static void close_fds(struct lg_emitter *e)
{
    if (e->sock >= 0)
        R_CLOSE(e->sock);
    if (e->spool >= 0)
        R_CLOSE(e->spool);
    e->sock = e->spool = -1;
    e->connected = 0;
    e->full_since = 0;
}

/* The child inherits copies of our descriptors: drop them so it gets its
 * own socket and its own spool file name (a shared spool file would mix
 * two processes' flock state and pid in one name). */
static void reset_after_fork(struct lg_emitter *e, pid_t pid)
{
    close_fds(e);
    e->pid = pid;
    e->spool_seq = 0;
    e->spool_t0 = real_us();
    e->retry_at = 0;
    memset(&e->st, 0, sizeof e->st);
}

static void atfork_prepare(void)
{
    pthread_mutex_lock(&g_mu);
    for (struct lg_emitter *e = g_list; e; e = e->next)
        pthread_mutex_lock(&e->mu);
}

static void atfork_parent(void)
{
    for (struct lg_emitter *e = g_list; e; e = e->next)
        pthread_mutex_unlock(&e->mu);
    pthread_mutex_unlock(&g_mu);
}

static void atfork_child(void)
{
    pid_t pid = R_GETPID();
    for (struct lg_emitter *e = g_list; e; e = e->next) {
        reset_after_fork(e, pid);
        pthread_mutex_unlock(&e->mu);
    }
    draw_prefix(pid);
    pthread_mutex_unlock(&g_mu);
}

static void register_atfork(void)
{
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

/* ==== Open / close ==== */
lg_emitter *lg_emit_open(const char *socket_path, const char *spool_dir)
{
    int saved = errno;
    lg_emit_paths def;
    if (!socket_path || !spool_dir) {
        int rc = lg_emit_default_paths(&def, 0);
        if (rc) {
            errno = -rc;
            return NULL;
        }
        if (!socket_path)
            socket_path = def.socket;
        if (!spool_dir)
            spool_dir = def.spool;
    }
    if (strlen(socket_path) >= sizeof(((struct sockaddr_un *)0)->sun_path) ||
        strlen(spool_dir) + 64 >= sizeof(((lg_emitter *)0)->spool_dir)) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    lg_emitter *e = calloc(1, sizeof *e);
    if (!e) {
        errno = ENOMEM;
        return NULL;
    }
    pthread_mutex_init(&e->mu, NULL);
    e->addr.sun_family = AF_UNIX;
    strcpy(e->addr.sun_path, socket_path);
    e->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
                             strlen(socket_path) + 1);
    strcpy(e->spool_dir, spool_dir);
    e->sock = e->spool = -1;
    e->pid = R_GETPID();
    e->spool_t0 = real_us();
    pthread_once(&g_once, register_atfork);
    pthread_mutex_lock(&g_mu);
    e->next = g_list;
    g_list = e;
    pthread_mutex_unlock(&g_mu);
    errno = saved;
    return e;
}

void lg_emit_close(lg_emitter *e)
{
    if (!e)
        return;
    int saved = errno;
    pthread_mutex_lock(&g_mu);
    for (struct lg_emitter **p = &g_list; *p; p = &(*p)->next)
        if (*p == e) {
            *p = e->next;
            break;
        }
    pthread_mutex_unlock(&g_mu);
    if (e->pid == R_GETPID())
        close_fds(e);
    pthread_mutex_destroy(&e->mu);
    free(e);
    errno = saved;
}

void lg_emit_get_stats(lg_emitter *e, lg_emit_stats *out)
{
    pthread_mutex_lock(&e->mu);
    *out = e->st;
    pthread_mutex_unlock(&e->mu);
}

/* ==== Sending ==== */
static int open_spool(lg_emitter *e)
{
    char path[4096 + 96];
    for (int tries = 0; tries < 64; tries++) {
        snprintf(path, sizeof path, "%s/%d-%lld-%u.spool", e->spool_dir,
                 (int)e->pid, e->spool_t0, e->spool_seq++);
        int fd = R_OPEN(path,
                        O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC |
                            O_NOFOLLOW,
                        0600);
        if (fd >= 0)
            return fd;
        if (errno == ENOENT) {
            /* First spill ever: the directory may not exist yet. */
            int rc = lg_emit_mkdir_private(e->spool_dir, 0700);
            if (rc)
                return rc;
            continue;
        }
        if (errno != EEXIST)
            return -errno;
    }
    return -EEXIST;
}

/* Append the events v[0..n) (n <= BATCH) as lines, with one writev under
 * the spool lock.  Returns how many were appended whole (the rest are the
 * caller's to count as dropped) and sets *err to the failure, if any. */
static size_t spool_append(lg_emitter *e, const struct iovec *v, size_t n, int *err)
{
    struct iovec iov[2 * BATCH];
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        iov[2 * i] = v[i];
        iov[2 * i + 1] = (struct iovec){(void *)"\n", 1};
        total += v[i].iov_len + 1;
    }
    *err = 0;
    for (int tries = 0; tries < 8; tries++) {
        if (e->spool < 0) {
            int fd = open_spool(e);
            if (fd < 0) {
                *err = -fd;
                return 0;
            }
            e->spool = fd;
        }
        struct stat st;
        if (R_FLOCK(e->spool, LOCK_EX | LOCK_NB) != 0 ||
            R_FSTAT(e->spool, &st) != 0 || st.st_nlink == 0) {
            /* The collector holds it or has consumed it: start a new file
             * rather than wait. */
            R_CLOSE(e->spool);
            e->spool = -1;
            continue;
        }
        ssize_t w = R_WRITEV(e->spool, iov, (int)(2 * n));
        int werr = errno;
        R_FLOCK(e->spool, LOCK_UN);
        if (w == (ssize_t)total)
            return n;
        if (w < 0) {
            *err = werr;
            return 0;
        }
        /* Short write (disk full): lines written whole count; the torn one
         * is skipped by the collector, and nothing may follow it. */
        size_t whole = 0, at = 0;
        while (whole < n && at + v[whole].iov_len + 1 <= (size_t)w)
            at += v[whole++].iov_len + 1;
        R_CLOSE(e->spool);
        e->spool = -1;
        *err = ENOSPC;
        return whole;
    }
    *err = EAGAIN;
    return 0;
}

/* The collector is not there (no socket file, nobody has it open, no
 * permission): spool for RETRY_NS before trying the socket again. */
static void collector_absent(lg_emitter *e, long long *now)
{
    if (!*now)
        *now = mono_ns();
    e->retry_at = *now + RETRY_NS;
    if (e->connected) {
        R_CLOSE(e->sock);
        e->sock = -1;
        e->connected = 0;
    }
}

/* Connect the socket if it is not.  0, or -1 (the collector is absent and
 * the back-off is set). */
static int ensure_connected(lg_emitter *e, long long *now)
{
    if (e->connected)
        return 0;
    if (e->sock < 0)
        e->sock = R_SOCKET(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (e->sock < 0 || R_CONNECT(e->sock, (struct sockaddr *)&e->addr, e->addrlen) != 0) {
        collector_absent(e, now);
        return -1;
    }
    e->connected = 1;
    e->full_since = 0;
    return 0;
}

/* Send v[0..n) (n <= BATCH) as datagrams, one system call for all.  Returns
 * how many went, in order; *dropped_at is set to the index of an event the
 * kernel refused for its size (EMSGSIZE), or n when none was. */
static size_t send_dgrams(lg_emitter *e, const struct iovec *v, size_t n, size_t *dropped_at,
                          long long *now)
{
    *dropped_at = n;
    if (e->retry_at) {
        if (!*now)
            *now = mono_ns();
        if (*now < e->retry_at)
            return 0;
        e->retry_at = 0;
    }
    size_t done = 0;
    int reconnects = 0;
    while (done < n) {
        if (ensure_connected(e, now) != 0)
            return done;
        int k;
        if (n - done == 1) {
            ssize_t w = R_SEND(e->sock, v[done].iov_base, v[done].iov_len,
                               MSG_DONTWAIT | MSG_NOSIGNAL);
            k = w < 0 ? -1 : 1;
        } else {
            struct mmsghdr mm[BATCH];
            memset(mm, 0, sizeof(struct mmsghdr) * (n - done));
            for (size_t i = done; i < n; i++) {
                mm[i - done].msg_hdr.msg_iov = (struct iovec *)&v[i];
                mm[i - done].msg_hdr.msg_iovlen = 1;
            }
            k = R_SENDMMSG(e->sock, mm, (unsigned)(n - done), MSG_DONTWAIT | MSG_NOSIGNAL);
        }
        if (k > 0) {
            done += (size_t)k;
            e->full_since = 0;
            continue;
        }
        int err = errno;
        if (err == EINTR)
            continue;
        if (err == EMSGSIZE) {
            /* This one can never go: skip it, send the rest. */
            *dropped_at = done;
            return done;
        }
        if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) {
            /* A full queue is transient: spool, and keep the socket.  If
             * it stays full, the path may name another socket by now. */
            if (!*now)
                *now = mono_ns();
            if (!e->full_since)
                e->full_since = *now;
            else if (*now - e->full_since >= FULL_RECONNECT_NS) {
                R_CLOSE(e->sock);
                e->sock = -1;
                e->connected = 0;
            }
            return done;
        }
        if ((err == ECONNREFUSED || err == ENOTCONN || err == ECONNRESET || err == EPIPE ||
             err == EDESTADDRREQ) && reconnects++ == 0) {
            /* The peer went away (the collector restarted without its
             * keeper): look the path up again, once. */
            R_CLOSE(e->sock);
            e->sock = -1;
            e->connected = 0;
            continue;
        }
        collector_absent(e, now);
        return done;
    }
    return done;
}

/* Send up to BATCH valid events; the caller holds e->mu.  Returns as
 * lg_emit_sendv. */
static int send_locked(lg_emitter *e, const struct iovec *v, size_t n)
{
    long long now = 0;
    int rc = 0;
    size_t at = 0;
    while (at < n) {
        size_t left = n - at, bad;
        size_t k = send_dgrams(e, v + at, left, &bad, &now);
        e->st.sent += k;
        at += k;
        if (bad < left) { /* v[at] was refused for its size */
            e->st.dropped++;
            e->st.last_errno = EMSGSIZE;
            rc = -EMSGSIZE;
            at++;
            continue;
        }
        break;
    }
    if (at == n)
        return rc;
    /* A child made by a raw clone (no pthread_atfork handlers) still has
     * our descriptors.  Sharing the datagram socket is harmless (the
     * collector learns the sender from SCM_CREDENTIALS, not from the
     * socket), so the pid is only checked here, where it names the spool
     * file and owns its lock, and not on every datagram. */
    pid_t pid = R_GETPID();
    if (pid != e->pid)
        reset_after_fork(e, pid);
    int err;
    size_t k = spool_append(e, v + at, n - at, &err);
    e->st.spooled += k;
    if (k < n - at) {
        e->st.dropped += n - at - k;
        e->st.last_errno = err;
        return -err;
    }
    return rc ? rc : 1;
}

int lg_emit_sendv(lg_emitter *e, const struct iovec *ev, size_t n)
{
    int saved = errno;
    int rc = 0, worst = 0;
    if (!e || (n && !ev)) {
        errno = saved;
        return -EINVAL;
    }
    struct iovec ok[BATCH];
    size_t k = 0;
    pthread_mutex_lock(&e->mu);
    for (size_t i = 0; i <= n; i++) {
        if (i < n) {
            const char *json = ev[i].iov_base;
            size_t len = ev[i].iov_len;
            if (!json || len == 0 || memchr(json, '\n', len)) {
                worst = worst ? worst : -EINVAL;
                continue;
            }
            if (len > LG_EMIT_MAX_EVENT) {
                e->st.dropped++;
                e->st.last_errno = EMSGSIZE;
                worst = -EMSGSIZE;
                continue;
            }
            ok[k++] = ev[i];
        }
        if (k && (k == BATCH || i == n)) {
            int r = send_locked(e, ok, k);
            if (r < 0)
                worst = r;
            else if (r > rc)
                rc = r;
            k = 0;
        }
    }
    pthread_mutex_unlock(&e->mu);
    errno = saved;
    return worst ? worst : rc;
}

int lg_emit_send(lg_emitter *e, const char *json, size_t n)
{
    struct iovec v = {(void *)json, n};
    return lg_emit_sendv(e, &v, 1);
}
