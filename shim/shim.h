/* Internal interface of the shim (libllmguard.so), shared by its files and by
 * nothing else.  The shim moves bytes between the client, the kernel and the
 * sans-I/O engine (core/conn.h); every decision is the engine's.
 *
 * Layout: interpose_<platform>.c exports the libc names and resolves the real
 * functions into lg__real; the lg__hook_* functions hold the logic and are
 * platform-neutral (io.c: connect, send and receive families, close, dup;
 * ready.c: poll, select, epoll); fdtab.c is the fd table; config.c reads the
 * environment and the policy and delivers events.
 *
 * Outside facts this relies on: an fd number is an index below RLIMIT_NOFILE;
 * a process may close an fd behind libc's back (Node's raw syscall(SYS_close),
 * close_range), so a table entry is only trusted after its socket identity
 * (st_dev, st_ino) is re-checked on the slow path. */
#ifndef LG_SHIM_H
#define LG_SHIM_H

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#include "buf.h"
#include "conn.h"

/* ==== Real functions ==== */

/* Every hooked function's next definition (libc's).  Filled by
 * lg__resolve() (interpose_<platform>.c) from the constructor, or lazily by
 * LG_REAL() when a hook runs before it (another library's constructor). */
struct lg__real {
    int (*connect)(int, const struct sockaddr *, socklen_t);
    ssize_t (*send)(int, const void *, size_t, int);
    ssize_t (*sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
    ssize_t (*sendmsg)(int, const struct msghdr *, int);
    ssize_t (*write)(int, const void *, size_t);
    ssize_t (*writev)(int, const struct iovec *, int);
    ssize_t (*recv)(int, void *, size_t, int);
    ssize_t (*recvfrom)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
    ssize_t (*recvmsg)(int, struct msghdr *, int);
    ssize_t (*read)(int, void *, size_t);
    ssize_t (*readv)(int, const struct iovec *, int);
    ssize_t (*read_chk)(int, void *, size_t, size_t);
    ssize_t (*recv_chk)(int, void *, size_t, size_t, int);
    ssize_t (*recvfrom_chk)(int, void *, size_t, size_t, int, struct sockaddr *, socklen_t *);
    int (*close)(int);
    int (*close_range)(unsigned, unsigned, int);
    int (*shutdown)(int, int);
    int (*dup)(int);
    int (*dup2)(int, int);
    int (*dup3)(int, int, int);
    int (*fcntl)(int, int, ...);
    int (*poll)(struct pollfd *, nfds_t, int);
    int (*ppoll)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
    int (*poll_chk)(struct pollfd *, nfds_t, int, size_t);
    int (*ppoll_chk)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *, size_t);
    int (*select)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
    int (*pselect)(int, fd_set *, fd_set *, fd_set *, const struct timespec *, const sigset_t *);
    int (*epoll_ctl)(int, int, int, struct epoll_event *);
    int (*epoll_wait)(int, struct epoll_event *, int, int);
    int (*epoll_pwait)(int, struct epoll_event *, int, int, const sigset_t *);
    int (*epoll_pwait2)(int, struct epoll_event *, int, const struct timespec *, const sigset_t *);
};
extern struct lg__real lg__real;

/* Fill lg__real.  Idempotent, cheap after the first call; must not be called
 * from a signal handler before the constructor ran (dlsym is not
 * async-signal-safe), which is why the constructor calls it first. */
void lg__resolve(void);

#define LG_REAL(name) \
    (__builtin_expect(lg__real.name != NULL, 1) ? lg__real.name : (lg__resolve(), lg__real.name))

/* ==== Recursion guard ==== */

/* Set while the shim itself runs engine code or its own I/O, so that any
 * hooked call made from inside (the emitter's sendto, a library the engine
 * uses) goes straight to libc.  initial-exec: no __tls_get_addr (which may
 * allocate) on the hot path; fine for a library loaded at startup. */
extern __thread int lg__in_shim __attribute__((tls_model("initial-exec")));

/* ==== The fd table ==== */

#define LG__MAX_FDS_PER_ENTRY 8 /* fd numbers sharing one socket (dup) */
#define LG__MAX_REGS 8          /* epoll registrations per socket */

/* One epoll registration of a tracked fd, as seen in epoll_ctl. */
struct lg__reg {
    int epfd;            /* the epoll instance */
    int fd;              /* fd number registered (dups have their own) */
    uint32_t events;     /* as registered (EPOLLIN, EPOLLET, EPOLLONESHOT, ...) */
    epoll_data_t data;   /* returned to the client with each event */
    unsigned seen_edge;  /* EPOLLET: the entry's edge counter when last reported */
    int armed;           /* EPOLLONESHOT: 0 after one report until EPOLL_CTL_MOD */
};

/* A tracked socket.  Entries are type-stable: once allocated they are never
 * returned to malloc, only recycled through a free list, so a thread holding
 * a stale pointer can always lock it and find out it is stale (live == 0 or
 * the table no longer points at it).  All fields but pending/edge are
 * guarded by mu. */
typedef struct lg__fd {
    pthread_mutex_t mu;      /* slow path; never held across a blocking syscall
                                except the bounded flush */
    int live;                /* 0: released (on the free list or about to be) */
    dev_t dev;               /* socket identity, from fstat at connect */
    ino_t ino;
    int fds[LG__MAX_FDS_PER_ENTRY]; /* fd numbers pointing at this entry */
    int nfds;
    lg_conn *conn;           /* NULL: fail-closed entry (policy did not load) */
    lg_buf to_server;        /* engine output not yet accepted by the kernel */
    lg_buf to_client;        /* bytes for the client, from to_client_off */
    size_t to_client_off;    /* served prefix of to_client (avoids memmove per read) */
    atomic_size_t pending;   /* to_client.len - to_client_off, readable without mu */
    atomic_uint edge;        /* bumped whenever pending grows (EPOLLET) */
    int closing;             /* real socket shut down; serve to_client, then EOF */
    int server_eof;          /* kernel said EOF; engine told */
    int client_eof;          /* client shut down its sending side */
    int err;                 /* sticky errno after an engine failure, 0 if none */
    int sniffed;             /* fail-closed entries: first bytes seen */
    struct lg__reg regs[LG__MAX_REGS];
    int nregs;
    char endpoint[64];       /* "127.0.0.1:11434" for logs and events */
    lg_buf events;           /* engine events not yet delivered, each followed by '\n' */
    atomic_int nevents;      /* events in `events` (written under mu; read without it
                                to skip entries with none) */
    struct lg__fd *next_all; /* every entry ever allocated (append-only) */
    struct lg__fd *next_free;
} lg__fd;

extern _Atomic(lg__fd *) *lg__tab; /* indexed by fd; NULL before init */
extern atomic_size_t lg__tabsz;      /* entries in lg__tab; 0 before init */
extern atomic_int lg__npending;      /* entries with pending > 0 (readiness fast path) */
extern _Atomic(lg__fd *) lg__all;    /* head of the next_all list */
extern atomic_int lg__ndeferred;     /* entries with events not yet delivered */

/* The fast path: one bounds check and one load.  Async-signal-safe. */
static inline lg__fd *lg__fd_peek(int fd)
{
    if ((size_t)(unsigned)fd >= atomic_load_explicit(&lg__tabsz, memory_order_relaxed))
        return NULL;
    return atomic_load_explicit(&lg__tab[fd], memory_order_acquire);
}

void lg__fdtab_init(void);
/* Register the fork handlers; after the emitter's and the vault's (see
 * fdtab.c for why the order matters). */
void lg__fdtab_atfork(void);
/* A fresh entry (live, locked, with empty buffers), or NULL. */
lg__fd *lg__fd_alloc(void);
/* Publish e under fd (e locked by the caller).  Drops any stale entry that
 * held the number.  Returns 0, or -1 if fd is out of the table's range. */
int lg__fd_publish(int fd, lg__fd *e);
/* Lock e and check it still is fd's live entry and the socket behind fd is
 * the one tracked.  Returns e locked, or NULL (untracked; stale entries are
 * dropped).  errno is preserved. */
lg__fd *lg__fd_acquire(int fd, lg__fd *e);
/* Lock e again after the caller unlocked it around its own syscall on fd
 * (a recv), when the identity was checked by the lg__fd_acquire that
 * preceded it in the same hook: only checks that e is still fd's live entry
 * (close, dup2 or an untrack meanwhile), not the socket identity: that
 * could only have changed through a close the table did not see (a raw
 * SYS_close) racing this very call on the same fd, a window that also
 * exists between acquire's fstat and the syscall and that no check closes.
 * Saves an fstat per kernel read.  Returns e locked, or NULL.  errno is
 * preserved. */
lg__fd *lg__fd_relock(int fd, lg__fd *e);
void lg__fd_unlock(lg__fd *e);
/* Forget fd (close, dup2 over it).  No-op when fd is not tracked. */
void lg__fd_untrack(int fd);
/* The same for an entry the caller holds locked: every fd number that
 * points at e is cleared and e is released; e is unlocked on return. */
void lg__fd_untrack_all_locked(lg__fd *e);
/* Add fd as another number for e (dup); e locked.  0 or -1 (too many). */
int lg__fd_add_alias(lg__fd *e, int fd);
/* Recompute pending after to_client changed; e locked. */
void lg__fd_sync_pending(lg__fd *e);

/* ==== Events ====
 *
 * The engine's events are queued in their entry (the engine's on_event,
 * with the entry as user data, called under the entry lock).  Only events
 * whose decision is "allow" are queued; any other goes out at once, after
 * what its entry has queued.
 *
 * Queued events are delivered by the hooks when an entry has gathered a
 * few (four requests' worth), when the fd is closed, shut down or dropped,
 * and at exit; and by the flush thread (fdtab.c), for every entry at once,
 * at most LLMGUARD_EVENTS_DELAY_MS (default 50) after the first of them
 * was queued.  What is lost: allow events queued when the process dies
 * abruptly (SIGKILL, a crash, _exit, exec) before one of those.
 *
 * Without the thread (delay 0, or it could not be started) the hooks
 * deliver them as before: when the hook that produced them ends -- except
 * in the write hooks: a request's event waits for the answer, so that the
 * request reaches the server first and a request and its answer cost the
 * collector one wake-up, not two -- and never across a blocking call:
 * before the shim waits (a read with nothing to read, a flush that must
 * wait for room) and when any thread enters a readiness call (poll,
 * select, epoll). */

/* 1 when the flush thread runs (queued events may wait for it). */
int lg__events_wait(void);

/* on_event for an entry's engine: ud is the entry, locked by the caller. */
void lg__fd_event(void *ud, const char *json, size_t n);
/* Deliver e's queued events; e locked. */
void lg__fd_deliver_locked(lg__fd *e);
/* Deliver every entry's queued events (readiness hooks, exit).  Takes each
 * entry's lock in turn, so the caller must hold none; with `wait` 0 it skips
 * entries another thread holds (their holder delivers them). */
void lg__fd_deliver_all(int wait);

/* ==== Configuration, engine, events ==== */

/* Decide whether a connect() destination is guarded; loads the
 * configuration (environment, policy) on first use.  1 or 0. */
int lg__config_guarded(const struct sockaddr *sa, socklen_t len);
/* A new engine for an endpoint, or NULL (out of memory, or no policy: the
 * caller then makes a fail-closed entry and *why says why).  Its events go
 * to lg__fd_event with `entry` as user data. */
lg_conn *lg__config_new_conn(const char *endpoint, lg__fd *entry, const char **why);
/* Why there is no policy (for fail-closed answers); "" when there is one. */
const char *lg__config_policy_error(void);
/* Flush timeout for to_server, in milliseconds. */
int lg__config_flush_ms(void);
/* Debug log to stderr through the real write (LLMGUARD_DEBUG=1). */
extern int lg__debug;
void lg__log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Events (each iovec one JSON event) to the collector, or the spool. */
void lg__events_send(const struct iovec *ev, size_t n);

/* ==== Hooks (platform-neutral logic) ==== */

int lg__hook_connect(int fd, const struct sockaddr *sa, socklen_t len);
ssize_t lg__hook_send(int fd, const void *p, size_t n, int flags);
ssize_t lg__hook_sendto(int fd, const void *p, size_t n, int flags,
                        const struct sockaddr *sa, socklen_t len);
ssize_t lg__hook_sendmsg(int fd, const struct msghdr *m, int flags);
ssize_t lg__hook_write(int fd, const void *p, size_t n);
ssize_t lg__hook_writev(int fd, const struct iovec *iov, int cnt);
ssize_t lg__hook_recv(int fd, void *p, size_t n, int flags);
ssize_t lg__hook_recvfrom(int fd, void *p, size_t n, int flags,
                          struct sockaddr *sa, socklen_t *len);
ssize_t lg__hook_recvmsg(int fd, struct msghdr *m, int flags);
ssize_t lg__hook_read(int fd, void *p, size_t n);
ssize_t lg__hook_readv(int fd, const struct iovec *iov, int cnt);
ssize_t lg__hook_read_chk(int fd, void *p, size_t n, size_t buflen);
ssize_t lg__hook_recv_chk(int fd, void *p, size_t n, size_t buflen, int flags);
ssize_t lg__hook_recvfrom_chk(int fd, void *p, size_t n, size_t buflen, int flags,
                              struct sockaddr *sa, socklen_t *len);
int lg__hook_close(int fd);
int lg__hook_close_range(unsigned first, unsigned last, int flags);
int lg__hook_shutdown(int fd, int how);
int lg__hook_dup(int fd);
int lg__hook_dup2(int fd, int fd2);
int lg__hook_dup3(int fd, int fd2, int flags);
int lg__hook_fcntl(int fd, int cmd, void *arg);
int lg__hook_poll(struct pollfd *fds, nfds_t n, int timeout);
int lg__hook_ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *mask);
int lg__hook_poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen);
int lg__hook_ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *ts,
                       const sigset_t *mask, size_t fdslen);
int lg__hook_select(int n, fd_set *r, fd_set *w, fd_set *x, struct timeval *tv);
int lg__hook_pselect(int n, fd_set *r, fd_set *w, fd_set *x, const struct timespec *ts,
                     const sigset_t *mask);
int lg__hook_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
int lg__hook_epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout);
int lg__hook_epoll_pwait(int epfd, struct epoll_event *ev, int max, int timeout,
                         const sigset_t *mask);
int lg__hook_epoll_pwait2(int epfd, struct epoll_event *ev, int max,
                          const struct timespec *ts, const sigset_t *mask);

/* fstat(2) for the socket identity checks (interpose_<platform>.c): they
 * run twice per guarded request, so each platform uses its cheapest way.
 * 0, or -1 with errno. */
int lg__fd_stat(int fd, struct stat *st);

/* Library constructor work shared by every platform file. */
void lg__init(void);

#endif
