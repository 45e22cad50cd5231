/* The byte-moving hooks: connect decides what is tracked; the send family
 * feeds the engine and flushes what it releases; the receive family serves
 * bytes the shim holds for the client, or reads the kernel, feeds the engine
 * and serves its output; close, close_range, shutdown and the dup family keep
 * the fd table true.  design.md §5.1-5.5.
 *
 * Contract with the client, whatever the engine does:
 *  - a write to a tracked fd returns its full length (the engine holds a
 *    request until it is complete); what the engine releases is flushed to
 *    the kernel at once, waiting at most LLMGUARD_FLUSH_TIMEOUT_MS (default
 *    10 s) even on a non-blocking socket; what is left is retried on the next
 *    call.
 *  - a read serves pending bytes first; otherwise it reads the kernel.  When
 *    the engine held everything back, a non-blocking read keeps reading
 *    until the kernel says EAGAIN (so an edge-triggered waiter gets a new
 *    edge) and then returns EAGAIN; a blocking read keeps reading.
 *  - when the engine answers itself and wants the connection closed (a
 *    blocked request), the real socket is shut down (SHUT_RDWR): every
 *    readiness API then reports it readable, and reads return the
 *    synthesized bytes, then EOF.
 * The shim's own reads of the kernel use a heap buffer, cached per thread:
 * a thread's stack may be small and static TLS is carved out of it. */
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "shim.h"

#define READ_CHUNK 65536

/* The untracked fast path of every byte-moving hook: the real function is
 * resolved and the table knows nothing of fd, so tail-call libc and do
 * nothing else.  The rest of each hook lives in a never-inlined *_slow
 * function, so that the fast path needs no stack frame (about 20
 * instructions fewer than a hook that is one function). */
#define LG__SLOW __attribute__((noinline))
#define FAST_PATH(name, fd, ...)                                                 \
    do {                                                                         \
        __typeof__(lg__real.name) real_ = lg__real.name;                         \
        if (__builtin_expect(real_ != NULL, 1) &&                                \
            __builtin_expect(lg__fd_peek(fd) == NULL, 1))                        \
            return real_(__VA_ARGS__);                                           \
    } while (0)

/* ==== Helpers ==== */

static size_t iov_total(const struct iovec *iov, int cnt)
{
    size_t t = 0;
    for (int i = 0; i < cnt; i++) {
        if (iov[i].iov_len > SSIZE_MAX - t)
            return SSIZE_MAX;
        t += iov[i].iov_len;
    }
    return t;
}

/* The kernel read buffer, cached per thread: a 64 KiB malloc/free per read
 * costs more than it looks (glibc consolidates its heap on every free of a
 * chunk this size).  Taken out of the slot while in use, so a nested user (a
 * signal handler reading a tracked fd) gets its own; the key's destructor
 * frees it when the thread ends. */
static __thread char *read_buf_slot __attribute__((tls_model("initial-exec")));
static pthread_key_t read_buf_key;
static pthread_once_t read_buf_once = PTHREAD_ONCE_INIT;
static int read_buf_key_ok;

static void read_buf_destroy(void *p)
{
    free(p);
    read_buf_slot = NULL;
}

static void read_buf_init(void)
{
    read_buf_key_ok = pthread_key_create(&read_buf_key, read_buf_destroy) == 0;
}

static char *read_buf_take(void)
{
    char *b = read_buf_slot;
    if (b) {
        read_buf_slot = NULL;
        return b;
    }
    return malloc(READ_CHUNK);
}

static void read_buf_give(char *b)
{
    if (!b)
        return;
    pthread_once(&read_buf_once, read_buf_init);
    if (read_buf_slot || !read_buf_key_ok || pthread_setspecific(read_buf_key, b) != 0) {
        free(b);
        return;
    }
    read_buf_slot = b;
}

static int ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int)((t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000);
}

/* Send to_server to the kernel.  wait: allowed to wait for POLLOUT up to
 * the flush timeout.  Returns 0 (all sent, or the rest kept for later) or
 * -1 with errno (the socket failed). */
static int flush_locked(lg__fd *e, int fd, int nosig, int wait)
{
    struct timespec t0 = {0, 0}; /* read at the first EAGAIN: most flushes never wait */
    while (e->to_server.len) {
        ssize_t w = LG_REAL(send)(fd, e->to_server.data, e->to_server.len, MSG_DONTWAIT | nosig);
        if (w > 0) {
            lg_buf_consume(&e->to_server, (size_t)w);
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!t0.tv_sec && !t0.tv_nsec)
                clock_gettime(CLOCK_MONOTONIC, &t0);
            int left = lg__config_flush_ms() - ms_since(&t0);
            if (!wait || left <= 0) {
                if (wait && lg__debug)
                    lg__log("fd %d: flush timed out, %zu bytes kept", fd, e->to_server.len);
                return 0;
            }
            if (!lg__events_wait()) /* else the flush thread has them */
                lg__fd_deliver_locked(e); /* never hold events across a wait */
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            int r = LG_REAL(poll)(&p, 1, left);
            if (r < 0 && errno != EINTR)
                return -1;
            continue;
        }
        return -1;
    }
    return 0;
}

/* The engine failed (memory, buffer limits): the connection cannot go on
 * correctly, so it is cut rather than passed half-inspected. */
static void engine_failed(lg__fd *e, int fd, int rc)
{
    lg__log("fd %d: engine error %d (%s); connection reset", fd, rc, lg_strerror(rc));
    e->err = ECONNRESET;
    if (!e->closing) {
        e->closing = 1;
        LG_REAL(shutdown)(fd, SHUT_RDWR);
    }
}

/* After engine calls: honour closing, publish pending, stop tracking a
 * pass-through connection once nothing is held.  Returns 1 when e was
 * released (and unlocked). */
static int post_engine(lg__fd *e, int fd, int nosig)
{
    if (e->conn && !e->closing && lg_conn_closing(e->conn)) {
        flush_locked(e, fd, nosig, 1);
        e->closing = 1;
        LG_REAL(shutdown)(fd, SHUT_RDWR);
        if (lg__debug)
            lg__log("fd %d: engine closes the connection (%zu bytes for the client)", fd,
                    e->to_client.len - e->to_client_off);
    }
    lg__fd_sync_pending(e);
    if (e->conn && !e->closing && !e->err && lg_conn_passthrough(e->conn) &&
        atomic_load(&e->pending) == 0 && e->to_server.len == 0) {
        lg__fd_untrack_all_locked(e);
        return 1;
    }
    return 0;
}

/* ==== Fail-closed entries (no policy) ==== */

static void json_escape(lg_buf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            lg_buf_printf(b, "\\%c", c);
        else if (c < 0x20)
            lg_buf_printf(b, "\\u%04x", c);
        else
            lg_buf_append(b, s, 1);
    }
}

/* Without a policy nothing can be inspected, so HTTP to a guarded endpoint
 * is refused with a 403 the client can show; anything else is not ours to
 * judge and passes.  Decided on the first request-line token. */
static void failclosed_from_client(lg__fd *e, const char *p, size_t n)
{
    lg_buf_append(&e->to_server, p, n);
    if (e->sniffed)
        return;
    const char *d = e->to_server.data;
    size_t len = e->to_server.len, i = 0;
    while (i < len && i < 16 && d[i] >= 'A' && d[i] <= 'Z')
        i++;
    if (i == len && len < 16)
        return; /* need more */
    e->sniffed = 1;
    if (i >= 3 && i < len && d[i] == ' ') {
        lg_buf body;
        lg_buf_init(&body, 4096);
        lg_buf_puts(&body, "{\"error\":\"llmguard: ");
        json_escape(&body, lg__config_policy_error());
        lg_buf_puts(&body, "\"}");
        lg_buf_printf(&e->to_client,
                      "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                      body.len, body.data ? body.data : "");
        lg_buf_free(&body);
        lg_buf_reset(&e->to_server);
        e->closing = 2; /* shut down by the caller */
    }
}

/* ==== Writes ==== */

/* Returns 1 when handled (*out set, errno set on error), 0 when the fd
 * turned out not to be tracked (the caller does the real call). */
static int tracked_write(int fd, lg__fd *e, const struct iovec *iov, int cnt, int flags, ssize_t *out)
{
    int saved = errno;
    e = lg__fd_acquire(fd, e);
    if (!e)
        return 0;
    lg__in_shim++;
    int nosig = flags & MSG_NOSIGNAL;
    size_t total = iov_total(iov, cnt);
    *out = (ssize_t)total;
    if (e->err) {
        *out = -1;
        saved = e->err;
    } else if (e->closing) {
        /* The engine already answered; the rest of the request is moot. */
    } else if (e->client_eof) {
        *out = -1;
        saved = EPIPE;
    } else if (!e->conn) {
        for (int i = 0; i < cnt; i++)
            failclosed_from_client(e, iov[i].iov_base, iov[i].iov_len);
        if (e->closing == 2) {
            e->closing = 1;
            LG_REAL(shutdown)(fd, SHUT_RDWR);
        } else if (e->sniffed) {
            /* Not HTTP: send what was held and stop tracking. */
            if (flush_locked(e, fd, nosig, 1) < 0) {
                *out = -1;
                saved = errno;
            }
            lg__fd_sync_pending(e);
            lg__fd_untrack_all_locked(e);
            lg__in_shim--;
            errno = saved;
            return 1;
        }
        lg__fd_sync_pending(e);
    } else {
        int rc = LG_OK;
        for (int i = 0; i < cnt && rc >= 0; i++)
            if (iov[i].iov_len)
                rc = lg_conn_from_client(e->conn, iov[i].iov_base, iov[i].iov_len,
                                         &e->to_server, &e->to_client);
        if (rc < 0) { /* only negative codes are failures */
            engine_failed(e, fd, rc);
            *out = -1;
            saved = e->err;
        } else if (flush_locked(e, fd, nosig, 1) < 0) {
            *out = -1;
            saved = errno;
        }
        if (post_engine(e, fd, nosig)) {
            lg__in_shim--;
            errno = saved;
            return 1;
        }
    }
    lg__fd_unlock(e);
    lg__in_shim--;
    errno = saved;
    return 1;
}

static LG__SLOW ssize_t write_slow(int fd, const void *p, size_t n)
{
    lg__fd *e = lg__fd_peek(fd);
    if (__builtin_expect(e == NULL, 1) || lg__in_shim)
        return LG_REAL(write)(fd, p, n);
    struct iovec v = {(void *)p, n};
    ssize_t r;
    if (tracked_write(fd, e, &v, 1, 0, &r))
        return r;
    return LG_REAL(write)(fd, p, n);
}

ssize_t lg__hook_write(int fd, const void *p, size_t n)
{
    FAST_PATH(write, fd, fd, p, n);
    return write_slow(fd, p, n);
}

static LG__SLOW ssize_t writev_slow(int fd, const struct iovec *iov, int cnt)
{
    lg__fd *e = lg__fd_peek(fd);
    if (__builtin_expect(e == NULL, 1) || lg__in_shim || cnt < 0 || cnt > IOV_MAX)
        return LG_REAL(writev)(fd, iov, cnt);
    ssize_t r;
    if (tracked_write(fd, e, iov, cnt, 0, &r))
        return r;
    return LG_REAL(writev)(fd, iov, cnt);
}

ssize_t lg__hook_writev(int fd, const struct iovec *iov, int cnt)
{
    FAST_PATH(writev, fd, fd, iov, cnt);
    return writev_slow(fd, iov, cnt);
}

static LG__SLOW ssize_t send_slow(int fd, const void *p, size_t n, int flags)
{
    lg__fd *e = lg__fd_peek(fd);
    if (__builtin_expect(e == NULL, 1) || lg__in_shim || (flags & MSG_OOB))
        return LG_REAL(send)(fd, p, n, flags);
    struct iovec v = {(void *)p, n};
    ssize_t r;
    if (tracked_write(fd, e, &v, 1, flags, &r))
        return r;
    return LG_REAL(send)(fd, p, n, flags);
}

ssize_t lg__hook_send(int fd, const void *p, size_t n, int flags)
{
    FAST_PATH(send, fd, fd, p, n, flags);
    return send_slow(fd, p, n, flags);
}

static LG__SLOW ssize_t sendto_slow(int fd, const void *p, size_t n, int flags,
                                    const struct sockaddr *sa, socklen_t len)
{
    lg__fd *e = lg__fd_peek(fd);
    if (__builtin_expect(e == NULL, 1) || lg__in_shim || (flags & MSG_OOB))
        return LG_REAL(sendto)(fd, p, n, flags, sa, len);
    struct iovec v = {(void *)p, n};
    ssize_t r;
    if (tracked_write(fd, e, &v, 1, flags, &r))
        return r;
    return LG_REAL(sendto)(fd, p, n, flags, sa, len);
}

ssize_t lg__hook_sendto(int fd, const void *p, size_t n, int flags, const struct sockaddr *sa,
                        socklen_t len)
{
    FAST_PATH(sendto, fd, fd, p, n, flags, sa, len);
    return sendto_slow(fd, p, n, flags, sa, len);
}

static LG__SLOW ssize_t sendmsg_slow(int fd, const struct msghdr *m, int flags)
{
    lg__fd *e = lg__fd_peek(fd);
    if (__builtin_expect(e == NULL, 1) || lg__in_shim || (flags & MSG_OOB) || !m ||
        m->msg_controllen || m->msg_iovlen > IOV_MAX)
        return LG_REAL(sendmsg)(fd, m, flags);
    ssize_t r;
    if (tracked_write(fd, e, m->msg_iov, (int)m->msg_iovlen, flags, &r))
        return r;
    return LG_REAL(sendmsg)(fd, m, flags);
}

ssize_t lg__hook_sendmsg(int fd, const struct msghdr *m, int flags)
{
    FAST_PATH(sendmsg, fd, fd, m, flags);
    return sendmsg_slow(fd, m, flags);
}

/* ==== Reads ==== */

static size_t serve(lg__fd *e, const struct iovec *iov, int cnt, int peek)
{
    const char *src = e->to_client.data + e->to_client_off;
    size_t avail = e->to_client.len - e->to_client_off, done = 0;
    for (int i = 0; i < cnt && done < avail; i++) {
        size_t k = iov[i].iov_len < avail - done ? iov[i].iov_len : avail - done;
        memcpy(iov[i].iov_base, src + done, k);
        done += k;
    }
    if (!peek)
        e->to_client_off += done;
    lg__fd_sync_pending(e);
    return done;
}

/* Scatter raw bytes into the client's buffers (the entry vanished while we
 * read the kernel: the bytes are the client's, untouched). */
static size_t scatter(const char *src, size_t n, const struct iovec *iov, int cnt)
{
    size_t done = 0;
    for (int i = 0; i < cnt && done < n; i++) {
        size_t k = iov[i].iov_len < n - done ? iov[i].iov_len : n - done;
        memcpy(iov[i].iov_base, src + done, k);
        done += k;
    }
    return done;
}

/* Returns 1 when handled (*out set), 0 when the fd is not tracked. */
static int tracked_read(int fd, lg__fd *e, const struct iovec *iov, int cnt, int flags, ssize_t *out)
{
    int saved = errno;
    e = lg__fd_acquire(fd, e);
    if (!e)
        return 0;
    lg__in_shim++;
    int peek = flags & MSG_PEEK;
    size_t want = iov_total(iov, cnt);
    char *buf = NULL;
    if (e->to_server.len && flush_locked(e, fd, 0, 0) < 0 && !e->err)
        e->err = errno;
    for (;;) {
        if (atomic_load(&e->pending)) {
            *out = (ssize_t)serve(e, iov, cnt, peek);
            if (!peek && e->conn && atomic_load(&e->pending) == 0 && post_engine(e, fd, 0))
                goto released;
            break;
        }
        if (e->err) {
            *out = -1;
            saved = e->err;
            break;
        }
        if (e->closing || e->server_eof || want == 0) {
            *out = 0;
            break;
        }
        if (!e->conn) { /* fail-closed entry and the server spoke first: not HTTP */
            lg__fd_untrack_all_locked(e);
            lg__in_shim--;
            read_buf_give(buf);
            errno = saved;
            return 0;
        }
        if (!buf && !(buf = read_buf_take())) {
            *out = -1;
            saved = ENOMEM;
            break;
        }
        ssize_t r = -1;
        int rerr = EAGAIN;
        if (atomic_load_explicit(&e->nevents, memory_order_relaxed) && !lg__events_wait()) {
            /* Without the flush thread, queued events (a request's) go out
             * before any wait, and with the answer's when it is already
             * here: look without waiting first, holding the entry (the call
             * cannot block). */
            r = LG_REAL(recv)(fd, buf, READ_CHUNK, MSG_DONTWAIT);
            rerr = errno;
            if (r < 0 && (rerr == EAGAIN || rerr == EWOULDBLOCK))
                lg__fd_deliver_locked(e);
        }
        if (r < 0 && (rerr == EAGAIN || rerr == EWOULDBLOCK)) {
            lg__fd_unlock(e);
            /* The socket's own O_NONBLOCK (however it was set: fcntl, ioctl
             * FIONBIO, SOCK_NONBLOCK) makes recv return EAGAIN by itself, so
             * only the caller's per-call flag needs passing on. */
            r = LG_REAL(recv)(fd, buf, READ_CHUNK, flags & MSG_DONTWAIT);
            rerr = errno;
            lg__fd *again = lg__fd_relock(fd, e);
            if (!again) {
                /* Closed or untracked meanwhile: hand over what we read as is. */
                *out = r > 0 ? (ssize_t)scatter(buf, (size_t)r, iov, cnt) : r;
                if (r < 0)
                    saved = rerr;
                goto released;
            }
        }
        if (r < 0) {
            *out = -1;
            saved = rerr;
            break;
        }
        int rc = r == 0 ? lg_conn_server_eof(e->conn, &e->to_client)
                        : lg_conn_from_server(e->conn, buf, (size_t)r, &e->to_client);
        if (r == 0)
            e->server_eof = 1;
        if (rc < 0)
            engine_failed(e, fd, rc);
        if (e->conn && !e->closing && lg_conn_closing(e->conn)) {
            e->closing = 1;
            LG_REAL(shutdown)(fd, SHUT_RDWR);
        }
        lg__fd_sync_pending(e);
        /* loop: serve, or read again (non-blocking: until EAGAIN) */
    }
    if (!lg__events_wait())
        lg__fd_deliver_locked(e);
    lg__fd_unlock(e);
released:
    lg__in_shim--;
    read_buf_give(buf);
    errno = saved;
    return 1;
}

#define READ_HOOK_BODY(realcall, iovp, cnt, flags)                   \
    lg__fd *e = lg__fd_peek(fd);                                     \
    if (__builtin_expect(e == NULL, 1) || lg__in_shim)               \
        return realcall;                                             \
    ssize_t r;                                                       \
    if (tracked_read(fd, e, iovp, cnt, flags, &r))                   \
        return r;                                                    \
    return realcall;

static LG__SLOW ssize_t read_slow(int fd, void *p, size_t n)
{
    struct iovec v = {p, n};
    READ_HOOK_BODY(LG_REAL(read)(fd, p, n), &v, 1, 0)
}

ssize_t lg__hook_read(int fd, void *p, size_t n)
{
    FAST_PATH(read, fd, fd, p, n);
    return read_slow(fd, p, n);
}

static LG__SLOW ssize_t readv_slow(int fd, const struct iovec *iov, int cnt)
{
    if (cnt < 0 || cnt > IOV_MAX)
        return LG_REAL(readv)(fd, iov, cnt);
    READ_HOOK_BODY(LG_REAL(readv)(fd, iov, cnt), iov, cnt, 0)
}

ssize_t lg__hook_readv(int fd, const struct iovec *iov, int cnt)
{
    FAST_PATH(readv, fd, fd, iov, cnt);
    return readv_slow(fd, iov, cnt);
}

static LG__SLOW ssize_t recv_slow(int fd, void *p, size_t n, int flags)
{
    struct iovec v = {p, n};
    if (flags & (MSG_OOB | MSG_ERRQUEUE))
        return LG_REAL(recv)(fd, p, n, flags);
    READ_HOOK_BODY(LG_REAL(recv)(fd, p, n, flags), &v, 1, flags)
}

ssize_t lg__hook_recv(int fd, void *p, size_t n, int flags)
{
    FAST_PATH(recv, fd, fd, p, n, flags);
    return recv_slow(fd, p, n, flags);
}

static LG__SLOW ssize_t recvfrom_slow(int fd, void *p, size_t n, int flags, struct sockaddr *sa,
                                      socklen_t *len)
{
    struct iovec v = {p, n};
    if (flags & (MSG_OOB | MSG_ERRQUEUE))
        return LG_REAL(recvfrom)(fd, p, n, flags, sa, len);
    lg__fd *e = lg__fd_peek(fd);
    if (__builtin_expect(e == NULL, 1) || lg__in_shim)
        return LG_REAL(recvfrom)(fd, p, n, flags, sa, len);
    ssize_t r;
    if (tracked_read(fd, e, &v, 1, flags, &r)) {
        if (r >= 0 && sa && len)
            *len = 0; /* connected stream: no source address, as the kernel does */
        return r;
    }
    return LG_REAL(recvfrom)(fd, p, n, flags, sa, len);
}

ssize_t lg__hook_recvfrom(int fd, void *p, size_t n, int flags, struct sockaddr *sa, socklen_t *len)
{
    FAST_PATH(recvfrom, fd, fd, p, n, flags, sa, len);
    return recvfrom_slow(fd, p, n, flags, sa, len);
}

static LG__SLOW ssize_t recvmsg_slow(int fd, struct msghdr *m, int flags)
{
    if (!m || (flags & (MSG_OOB | MSG_ERRQUEUE)) || m->msg_iovlen > IOV_MAX)
        return LG_REAL(recvmsg)(fd, m, flags);
    lg__fd *e = lg__fd_peek(fd);
    if (__builtin_expect(e == NULL, 1) || lg__in_shim)
        return LG_REAL(recvmsg)(fd, m, flags);
    ssize_t r;
    if (tracked_read(fd, e, m->msg_iov, (int)m->msg_iovlen, flags, &r)) {
        if (r >= 0) {
            m->msg_namelen = 0;
            m->msg_controllen = 0;
            m->msg_flags = 0;
        }
        return r;
    }
    return LG_REAL(recvmsg)(fd, m, flags);
}

ssize_t lg__hook_recvmsg(int fd, struct msghdr *m, int flags)
{
    FAST_PATH(recvmsg, fd, fd, m, flags);
    return recvmsg_slow(fd, m, flags);
}

static LG__SLOW ssize_t read_chk_slow(int fd, void *p, size_t n, size_t buflen)
{
    if (n > buflen) /* let glibc report the overflow as it would */
        return LG_REAL(read_chk)(fd, p, n, buflen);
    struct iovec v = {p, n};
    READ_HOOK_BODY(LG_REAL(read_chk)(fd, p, n, buflen), &v, 1, 0)
}

ssize_t lg__hook_read_chk(int fd, void *p, size_t n, size_t buflen)
{
    FAST_PATH(read_chk, fd, fd, p, n, buflen);
    return read_chk_slow(fd, p, n, buflen);
}

static LG__SLOW ssize_t recv_chk_slow(int fd, void *p, size_t n, size_t buflen, int flags)
{
    if (n > buflen || (flags & (MSG_OOB | MSG_ERRQUEUE)))
        return LG_REAL(recv_chk)(fd, p, n, buflen, flags);
    struct iovec v = {p, n};
    READ_HOOK_BODY(LG_REAL(recv_chk)(fd, p, n, buflen, flags), &v, 1, flags)
}

ssize_t lg__hook_recv_chk(int fd, void *p, size_t n, size_t buflen, int flags)
{
    FAST_PATH(recv_chk, fd, fd, p, n, buflen, flags);
    return recv_chk_slow(fd, p, n, buflen, flags);
}

static LG__SLOW ssize_t recvfrom_chk_slow(int fd, void *p, size_t n, size_t buflen, int flags,
                                          struct sockaddr *sa, socklen_t *len)
{
    if (n > buflen || (flags & (MSG_OOB | MSG_ERRQUEUE)))
        return LG_REAL(recvfrom_chk)(fd, p, n, buflen, flags, sa, len);
    lg__fd *e = lg__fd_peek(fd);
    if (__builtin_expect(e == NULL, 1) || lg__in_shim)
        return LG_REAL(recvfrom_chk)(fd, p, n, buflen, flags, sa, len);
    struct iovec v = {p, n};
    ssize_t r;
    if (tracked_read(fd, e, &v, 1, flags, &r)) {
        if (r >= 0 && sa && len)
            *len = 0;
        return r;
    }
    return LG_REAL(recvfrom_chk)(fd, p, n, buflen, flags, sa, len);
}

ssize_t lg__hook_recvfrom_chk(int fd, void *p, size_t n, size_t buflen, int flags,
                              struct sockaddr *sa, socklen_t *len)
{
    FAST_PATH(recvfrom_chk, fd, fd, p, n, buflen, flags, sa, len);
    return recvfrom_chk_slow(fd, p, n, buflen, flags, sa, len);
}

/* ==== connect ==== */

static void format_endpoint(const struct sockaddr *sa, char *out, size_t n)
{
    char a[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s = (const void *)sa;
        inet_ntop(AF_INET, &s->sin_addr, a, sizeof a);
        snprintf(out, n, "%s:%u", a, ntohs(s->sin_port));
    } else {
        const struct sockaddr_in6 *s = (const void *)sa;
        inet_ntop(AF_INET6, &s->sin6_addr, a, sizeof a);
        snprintf(out, n, "[%s]:%u", a, ntohs(s->sin6_port));
    }
}

static void track(int fd, const struct sockaddr *sa, socklen_t len)
{
    if (!lg__config_guarded(sa, len))
        return;
    int type = 0;
    socklen_t tl = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0 || type != SOCK_STREAM)
        return;
    struct stat st;
    if (lg__fd_stat(fd, &st) != 0)
        return;
    lg__fd *e = lg__fd_alloc();
    if (!e)
        return;
    e->dev = st.st_dev;
    e->ino = st.st_ino;
    format_endpoint(sa, e->endpoint, sizeof e->endpoint);
    const char *why = NULL;
    e->conn = lg__config_new_conn(e->endpoint, e, &why);
    if (lg__fd_publish(fd, e) != 0) {
        lg__fd_untrack_all_locked(e);
        return;
    }
    if (lg__debug)
        lg__log("track fd %d -> %s%s%s", fd, e->endpoint, e->conn ? "" : " (fail closed: ",
                e->conn ? "" : (why ? why : "?"));
    lg__fd_unlock(e);
}

int lg__hook_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    int r = LG_REAL(connect)(fd, sa, len);
    if (lg__in_shim || !sa || !atomic_load_explicit(&lg__tabsz, memory_order_relaxed))
        return r;
    int saved = errno;
    lg__fd *e = lg__fd_peek(fd);
    if (e) {
        /* Still ours (connect called again to learn the outcome of a
         * non-blocking connect)?  acquire drops a stale entry. */
        lg__fd *held = lg__fd_acquire(fd, e);
        if (held) {
            lg__fd_unlock(held);
            errno = saved;
            return r;
        }
    }
    if ((r == 0 || saved == EINPROGRESS) &&
        (sa->sa_family == AF_INET || sa->sa_family == AF_INET6)) {
        lg__in_shim++;
        track(fd, sa, len);
        lg__in_shim--;
    }
    errno = saved;
    return r;
}

/* ==== close, shutdown, dup ==== */

static LG__SLOW int close_slow(int fd)
{
    lg__fd *e = lg__fd_peek(fd);
    if (__builtin_expect(e == NULL, 1))
        return LG_REAL(close)(fd);
    int saved = errno;
    lg__fd *held = lg__fd_acquire(fd, e);
    if (held) {
        if (held->to_server.len)
            flush_locked(held, fd, MSG_NOSIGNAL, 0);
        lg__fd_unlock(held);
        lg__fd_untrack(fd);
    }
    errno = saved;
    return LG_REAL(close)(fd);
}

int lg__hook_close(int fd)
{
    FAST_PATH(close, fd, fd);
    return close_slow(fd);
}

int lg__hook_close_range(unsigned first, unsigned last, int flags)
{
    if (!(flags & CLOSE_RANGE_CLOEXEC) && atomic_load(&lg__tabsz)) {
        int saved = errno;
        /* Walk the (small) pool, not the range, which may be 0..~0U. */
        for (lg__fd *e = atomic_load(&lg__all); e; e = e->next_all) {
            int fds[LG__MAX_FDS_PER_ENTRY], n = 0;
            pthread_mutex_lock(&e->mu);
            if (e->live)
                for (int i = 0; i < e->nfds; i++)
                    if ((unsigned)e->fds[i] >= first && (unsigned)e->fds[i] <= last)
                        fds[n++] = e->fds[i];
            pthread_mutex_unlock(&e->mu);
            for (int i = 0; i < n; i++)
                lg__fd_untrack(fds[i]);
        }
        errno = saved;
    }
    return LG_REAL(close_range)(first, last, flags);
}

int lg__hook_shutdown(int fd, int how)
{
    lg__fd *e = lg__fd_peek(fd);
    if (__builtin_expect(e == NULL, 1) || lg__in_shim)
        return LG_REAL(shutdown)(fd, how);
    int saved = errno;
    e = lg__fd_acquire(fd, e);
    if (!e)
        return LG_REAL(shutdown)(fd, how);
    lg__in_shim++;
    int r = 0;
    if (e->closing) {
        /* Already shut down for the synthesized answer. */
    } else {
        if ((how == SHUT_WR || how == SHUT_RDWR) && !e->client_eof) {
            e->client_eof = 1;
            if (e->conn) {
                int rc = lg_conn_client_eof(e->conn, &e->to_server, &e->to_client);
                if (rc < 0)
                    engine_failed(e, fd, rc);
            }
            flush_locked(e, fd, MSG_NOSIGNAL, 1);
            lg__fd_sync_pending(e);
        }
        if (!e->closing) {
            r = LG_REAL(shutdown)(fd, how);
            saved = errno;
        }
    }
    lg__fd_deliver_locked(e);
    lg__fd_unlock(e);
    lg__in_shim--;
    errno = saved;
    return r;
}

/* newfd now refers to oldfd's socket: share the entry when oldfd is
 * tracked. */
static void alias(int oldfd, int newfd)
{
    lg__fd *e = lg__fd_peek(oldfd);
    if (!e)
        return;
    int saved = errno;
    e = lg__fd_acquire(oldfd, e);
    if (e) {
        if (lg__fd_add_alias(e, newfd) != 0)
            lg__log("fd %d: too many duplicates of a tracked socket; fd %d unguarded", oldfd, newfd);
        lg__fd_unlock(e);
    }
    errno = saved;
}

int lg__hook_dup(int fd)
{
    int r = LG_REAL(dup)(fd);
    if (r >= 0 && lg__fd_peek(fd))
        alias(fd, r);
    return r;
}

int lg__hook_dup2(int fd, int fd2)
{
    if (fd == fd2 || (!lg__fd_peek(fd) && !lg__fd_peek(fd2)))
        return LG_REAL(dup2)(fd, fd2);
    int r = LG_REAL(dup2)(fd, fd2);
    if (r >= 0) {
        int saved = errno;
        lg__fd_untrack(fd2);
        alias(fd, fd2);
        errno = saved;
    }
    return r;
}

int lg__hook_dup3(int fd, int fd2, int flags)
{
    if (!lg__fd_peek(fd) && !lg__fd_peek(fd2))
        return LG_REAL(dup3)(fd, fd2, flags);
    int r = LG_REAL(dup3)(fd, fd2, flags);
    if (r >= 0) {
        int saved = errno;
        lg__fd_untrack(fd2);
        alias(fd, fd2);
        errno = saved;
    }
    return r;
}

int lg__hook_fcntl(int fd, int cmd, void *arg)
{
    int r = LG_REAL(fcntl)(fd, cmd, arg);
    if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) && lg__fd_peek(fd))
        alias(fd, r);
    return r;
}
