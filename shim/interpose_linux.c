/* Linux interposition: libllmguard.so is preloaded (LD_PRELOAD), so the
 * functions defined here take the place of libc's for the whole process.
 * Each one is a thin trampoline into the platform-neutral hook logic
 * (io.c, ready.c); the real libc functions come from dlsym(RTLD_NEXT).
 *
 * Outside facts: glibc's fortified wrappers (_FORTIFY_SOURCE) call
 * __read_chk and friends instead of read, so they are hooked too; a hook can
 * run before our constructor (another preloaded library's constructor
 * writing to stderr), hence LG_REAL's lazy resolution; dlsym may allocate
 * but never calls the functions we hook. */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"

struct lg__real lg__real;

/* glibc (2.33 on) implements fstat as fstatat(fd, "", AT_EMPTY_PATH), and
 * the kernel's handling of that empty path (copying and checking the name
 * from user memory) costs about as much as the stat itself.  On x86-64 the
 * plain fstat system call fills the same struct stat glibc declares; other
 * targets keep libc's call (on i386, for one, the layouts differ). */
int lg__fd_stat(int fd, struct stat *st)
{
#if defined(__x86_64__) && defined(SYS_fstat)
    return (int)syscall(SYS_fstat, fd, st);
#else
    return fstat(fd, st);
#endif
}

#define RESOLVE(field, sym)                                                          \
    do {                                                                             \
        if (!lg__real.field) {                                                       \
            void *p_ = dlsym(RTLD_NEXT, sym);                                        \
            __atomic_store_n((void **)&lg__real.field, p_, __ATOMIC_RELEASE);        \
        }                                                                            \
    } while (0)

void lg__resolve(void)
{
    RESOLVE(connect, "connect");
    RESOLVE(send, "send");
    RESOLVE(sendto, "sendto");
    RESOLVE(sendmsg, "sendmsg");
    RESOLVE(write, "write");
    RESOLVE(writev, "writev");
    RESOLVE(recv, "recv");
    RESOLVE(recvfrom, "recvfrom");
    RESOLVE(recvmsg, "recvmsg");
    RESOLVE(read, "read");
    RESOLVE(readv, "readv");
    RESOLVE(read_chk, "__read_chk");
    RESOLVE(recv_chk, "__recv_chk");
    RESOLVE(recvfrom_chk, "__recvfrom_chk");
    RESOLVE(close, "close");
    RESOLVE(close_range, "close_range");
    RESOLVE(shutdown, "shutdown");
    RESOLVE(dup, "dup");
    RESOLVE(dup2, "dup2");
    RESOLVE(dup3, "dup3");
    RESOLVE(fcntl, "fcntl");
    RESOLVE(poll, "poll");
    RESOLVE(ppoll, "ppoll");
    RESOLVE(poll_chk, "__poll_chk");
    RESOLVE(ppoll_chk, "__ppoll_chk");
    RESOLVE(select, "select");
    RESOLVE(pselect, "pselect");
    RESOLVE(epoll_ctl, "epoll_ctl");
    RESOLVE(epoll_wait, "epoll_wait");
    RESOLVE(epoll_pwait, "epoll_pwait");
    RESOLVE(epoll_pwait2, "epoll_pwait2");
}

__attribute__((constructor)) static void lg_ctor(void)
{
    lg__resolve();
    lg__init();
}

/* ==== Exported trampolines ==== */

#define EXPORT __attribute__((visibility("default")))

/* The prototypes come from the system headers; glibc declares some of the
 * fortified ones only under _FORTIFY_SOURCE, so declare those here. */
ssize_t __read_chk(int, void *, size_t, size_t);
ssize_t __recv_chk(int, void *, size_t, size_t, int);
ssize_t __recvfrom_chk(int, void *, size_t, size_t, int, struct sockaddr *, socklen_t *);
int __poll_chk(struct pollfd *, nfds_t, int, size_t);
int __ppoll_chk(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *, size_t);

EXPORT int connect(int fd, const struct sockaddr *sa, socklen_t len) { return lg__hook_connect(fd, sa, len); }
EXPORT ssize_t send(int fd, const void *p, size_t n, int fl) { return lg__hook_send(fd, p, n, fl); }
EXPORT ssize_t sendto(int fd, const void *p, size_t n, int fl, const struct sockaddr *sa, socklen_t len)
{ return lg__hook_sendto(fd, p, n, fl, sa, len); }
EXPORT ssize_t sendmsg(int fd, const struct msghdr *m, int fl) { return lg__hook_sendmsg(fd, m, fl); }
EXPORT ssize_t write(int fd, const void *p, size_t n) { return lg__hook_write(fd, p, n); }
EXPORT ssize_t writev(int fd, const struct iovec *iov, int cnt) { return lg__hook_writev(fd, iov, cnt); }
EXPORT ssize_t recv(int fd, void *p, size_t n, int fl) { return lg__hook_recv(fd, p, n, fl); }
EXPORT ssize_t recvfrom(int fd, void *p, size_t n, int fl, struct sockaddr *sa, socklen_t *len)
{ return lg__hook_recvfrom(fd, p, n, fl, sa, len); }
EXPORT ssize_t recvmsg(int fd, struct msghdr *m, int fl) { return lg__hook_recvmsg(fd, m, fl); }
EXPORT ssize_t read(int fd, void *p, size_t n) { return lg__hook_read(fd, p, n); }
EXPORT ssize_t readv(int fd, const struct iovec *iov, int cnt) { return lg__hook_readv(fd, iov, cnt); }
EXPORT ssize_t __read_chk(int fd, void *p, size_t n, size_t bl) { return lg__hook_read_chk(fd, p, n, bl); }
EXPORT ssize_t __recv_chk(int fd, void *p, size_t n, size_t bl, int fl) { return lg__hook_recv_chk(fd, p, n, bl, fl); }
EXPORT ssize_t __recvfrom_chk(int fd, void *p, size_t n, size_t bl, int fl, struct sockaddr *sa, socklen_t *len)
{ return lg__hook_recvfrom_chk(fd, p, n, bl, fl, sa, len); }
EXPORT int close(int fd) { return lg__hook_close(fd); }
EXPORT int close_range(unsigned a, unsigned b, int fl) { return lg__hook_close_range(a, b, fl); }
EXPORT int shutdown(int fd, int how) { return lg__hook_shutdown(fd, how); }
EXPORT int dup(int fd) { return lg__hook_dup(fd); }
EXPORT int dup2(int fd, int fd2) { return lg__hook_dup2(fd, fd2); }
EXPORT int dup3(int fd, int fd2, int fl) { return lg__hook_dup3(fd, fd2, fl); }
/* fcntl's third argument is an int or a pointer depending on cmd; every
 * ABI we run on passes both in the same register, so forwarding a pointer-
 * sized value is what glibc's own fcntl wrappers do. */
EXPORT int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return lg__hook_fcntl(fd, cmd, arg);
}
EXPORT int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return lg__hook_fcntl(fd, cmd, arg);
}
EXPORT int poll(struct pollfd *f, nfds_t n, int t) { return lg__hook_poll(f, n, t); }
EXPORT int ppoll(struct pollfd *f, nfds_t n, const struct timespec *ts, const sigset_t *m)
{ return lg__hook_ppoll(f, n, ts, m); }
EXPORT int __poll_chk(struct pollfd *f, nfds_t n, int t, size_t fl) { return lg__hook_poll_chk(f, n, t, fl); }
EXPORT int __ppoll_chk(struct pollfd *f, nfds_t n, const struct timespec *ts, const sigset_t *m, size_t fl)
{ return lg__hook_ppoll_chk(f, n, ts, m, fl); }
EXPORT int select(int n, fd_set *r, fd_set *w, fd_set *x, struct timeval *tv) { return lg__hook_select(n, r, w, x, tv); }
EXPORT int pselect(int n, fd_set *r, fd_set *w, fd_set *x, const struct timespec *ts, const sigset_t *m)
{ return lg__hook_pselect(n, r, w, x, ts, m); }
EXPORT int epoll_ctl(int ep, int op, int fd, struct epoll_event *ev) { return lg__hook_epoll_ctl(ep, op, fd, ev); }
EXPORT int epoll_wait(int ep, struct epoll_event *ev, int max, int t) { return lg__hook_epoll_wait(ep, ev, max, t); }
EXPORT int epoll_pwait(int ep, struct epoll_event *ev, int max, int t, const sigset_t *m)
{ return lg__hook_epoll_pwait(ep, ev, max, t, m); }
EXPORT int epoll_pwait2(int ep, struct epoll_event *ev, int max, const struct timespec *ts, const sigset_t *m)
{ return lg__hook_epoll_pwait2(ep, ev, max, ts, m); }
