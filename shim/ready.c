/* Readiness hooks: poll, ppoll, select, pselect and the epoll family report
 * a tracked fd readable while the shim holds bytes the client has not taken
 * (design.md §5.7): the kernel cannot know about them.  When nothing is
 * pending anywhere in the process (lg__npending == 0, the normal case) and
 * no event is queued (lg__ndeferred == 0) every hook is two loads and a
 * branch in front of libc.
 *
 * With something pending, the kernel is asked without waiting and its
 * answer is merged with ours; a waiter therefore never sleeps on bytes that
 * are already here.  epoll has no per-call fd list, so the registrations are
 * kept from epoll_ctl (per tracked fd, up to LG__MAX_REGS) and honoured:
 * EPOLLET reports pending bytes once per growth (the entry's edge counter),
 * EPOLLONESHOT once per arming (and the kernel's registration is disarmed
 * too, as the kernel would have done).
 *
 * Known gap: a registration whose epoll fd is closed and whose number is
 * reused for a new epoll instance, while the tracked socket stays open with
 * pending bytes, could report into the wrong instance; closing an epoll fd
 * is not hooked so as to keep close() on the fast path. */
#include <errno.h>
#include <string.h>

#include "shim.h"

static inline int nothing_pending(void)
{
    return atomic_load_explicit(&lg__npending, memory_order_relaxed) == 0;
}

/* A readiness call is where a client waits: events queued by a write hook
 * (a request's, shim.h) go out first, whatever fds are asked about --
 * unless the flush thread delivers them. */
static inline void deliver_queued(void)
{
    if (__builtin_expect(atomic_load_explicit(&lg__ndeferred, memory_order_relaxed) != 0, 0) &&
        !lg__in_shim && !lg__events_wait())
        lg__fd_deliver_all(1);
}

/* 1 when fd is tracked, verified and has bytes for the client. */
static int has_pending(int fd)
{
    lg__fd *e = lg__fd_peek(fd);
    if (!e || !atomic_load(&e->pending))
        return 0;
    e = lg__fd_acquire(fd, e);
    if (!e)
        return 0;
    int p = atomic_load(&e->pending) != 0;
    lg__fd_unlock(e);
    return p;
}

/* ==== poll ==== */

#define WANT_IN (POLLIN | POLLRDNORM)

static int poll_any_pending(const struct pollfd *f, nfds_t n)
{
    for (nfds_t i = 0; i < n; i++)
        if (f[i].fd >= 0 && (f[i].events & WANT_IN) && has_pending(f[i].fd))
            return 1;
    return 0;
}

static int poll_merge(struct pollfd *f, nfds_t n, int r)
{
    if (r < 0)
        return r;
    for (nfds_t i = 0; i < n; i++)
        if (f[i].fd >= 0 && (f[i].events & WANT_IN) && has_pending(f[i].fd)) {
            if (!f[i].revents)
                r++;
            f[i].revents |= (short)(f[i].events & WANT_IN);
        }
    return r;
}

int lg__hook_poll(struct pollfd *f, nfds_t n, int timeout)
{
    deliver_queued();
    if (__builtin_expect(nothing_pending(), 1) || lg__in_shim || !poll_any_pending(f, n))
        return LG_REAL(poll)(f, n, timeout);
    return poll_merge(f, n, LG_REAL(poll)(f, n, 0));
}

static const struct timespec zero_ts;

int lg__hook_ppoll(struct pollfd *f, nfds_t n, const struct timespec *ts, const sigset_t *mask)
{
    deliver_queued();
    if (__builtin_expect(nothing_pending(), 1) || lg__in_shim || !poll_any_pending(f, n))
        return LG_REAL(ppoll)(f, n, ts, mask);
    return poll_merge(f, n, LG_REAL(ppoll)(f, n, &zero_ts, mask));
}

int lg__hook_poll_chk(struct pollfd *f, nfds_t n, int timeout, size_t fdslen)
{
    deliver_queued();
    if (__builtin_expect(nothing_pending(), 1) || lg__in_shim ||
        fdslen / sizeof(*f) < n || !poll_any_pending(f, n))
        return LG_REAL(poll_chk)(f, n, timeout, fdslen);
    return poll_merge(f, n, LG_REAL(poll_chk)(f, n, 0, fdslen));
}

int lg__hook_ppoll_chk(struct pollfd *f, nfds_t n, const struct timespec *ts, const sigset_t *mask,
                       size_t fdslen)
{
    deliver_queued();
    if (__builtin_expect(nothing_pending(), 1) || lg__in_shim ||
        fdslen / sizeof(*f) < n || !poll_any_pending(f, n))
        return LG_REAL(ppoll_chk)(f, n, ts, mask, fdslen);
    return poll_merge(f, n, LG_REAL(ppoll_chk)(f, n, &zero_ts, mask, fdslen));
}

/* ==== select ==== */

/* Collect the fds in r that have pending bytes into `mine`; count them. */
static int select_pending(int n, const fd_set *r, fd_set *mine)
{
    int k = 0;
    FD_ZERO(mine);
    if (!r)
        return 0;
    if (n > FD_SETSIZE)
        n = FD_SETSIZE;
    for (int fd = 0; fd < n; fd++)
        if (FD_ISSET(fd, r) && has_pending(fd)) {
            FD_SET(fd, mine);
            k++;
        }
    return k;
}

static int select_merge(int n, int r, fd_set *rd, fd_set *wr, fd_set *ex, const fd_set *mine)
{
    if (r < 0)
        return r;
    if (n > FD_SETSIZE)
        n = FD_SETSIZE;
    for (int fd = 0; fd < n; fd++)
        if (FD_ISSET(fd, mine) && !FD_ISSET(fd, rd)) {
            FD_SET(fd, rd);
            r++;
        }
    (void)wr;
    (void)ex;
    return r;
}

int lg__hook_select(int n, fd_set *rd, fd_set *wr, fd_set *ex, struct timeval *tv)
{
    deliver_queued();
    fd_set mine;
    if (__builtin_expect(nothing_pending(), 1) || lg__in_shim || !select_pending(n, rd, &mine))
        return LG_REAL(select)(n, rd, wr, ex, tv);
    /* The kernel clears the bits of fds that are not ready. */
    struct timeval zero = {0, 0};
    int r = LG_REAL(select)(n, rd, wr, ex, &zero);
    if (r >= 0 && tv)
        *tv = zero; /* Linux reports the time left */
    return select_merge(n, r, rd, wr, ex, &mine);
}

int lg__hook_pselect(int n, fd_set *rd, fd_set *wr, fd_set *ex, const struct timespec *ts,
                     const sigset_t *mask)
{
    deliver_queued();
    fd_set mine;
    if (__builtin_expect(nothing_pending(), 1) || lg__in_shim || !select_pending(n, rd, &mine))
        return LG_REAL(pselect)(n, rd, wr, ex, ts, mask);
    return select_merge(n, LG_REAL(pselect)(n, rd, wr, ex, &zero_ts, mask), rd, wr, ex, &mine);
}

/* ==== epoll ==== */

int lg__hook_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    int r = LG_REAL(epoll_ctl)(epfd, op, fd, ev);
    lg__fd *e = lg__fd_peek(fd);
    if (__builtin_expect(e == NULL, 1) || r != 0 || lg__in_shim)
        return r;
    int saved = errno;
    e = lg__fd_acquire(fd, e);
    if (!e)
        return r;
    int i;
    for (i = 0; i < e->nregs; i++)
        if (e->regs[i].epfd == epfd && e->regs[i].fd == fd)
            break;
    if (op == EPOLL_CTL_DEL) {
        if (i < e->nregs)
            e->regs[i] = e->regs[--e->nregs];
    } else if ((op == EPOLL_CTL_ADD || op == EPOLL_CTL_MOD) && ev) {
        if (i == e->nregs && e->nregs < LG__MAX_REGS)
            e->nregs++;
        if (i < e->nregs) {
            struct lg__reg *g = &e->regs[i];
            g->epfd = epfd;
            g->fd = fd;
            g->events = ev->events;
            g->data = ev->data;
            g->armed = 1;
            /* Arming with bytes already pending is an edge, as in the kernel. */
            unsigned edge = atomic_load(&e->edge);
            g->seen_edge = atomic_load(&e->pending) ? edge - 1 : edge;
        } else {
            lg__log("fd %d: too many epoll registrations; readiness of held bytes not reported", fd);
        }
    }
    lg__fd_unlock(e);
    errno = saved;
    return r;
}

/* Synthetic events for epfd: registrations of tracked fds with pending
 * bytes that are due a report.  Marks them reported.  Returns the count. */
static int epoll_collect(int epfd, struct epoll_event *out, int max)
{
    int k = 0;
    for (lg__fd *e = atomic_load(&lg__all); e && k < max; e = e->next_all) {
        if (!atomic_load(&e->pending))
            continue;
        pthread_mutex_lock(&e->mu);
        if (!e->live || !atomic_load(&e->pending)) {
            pthread_mutex_unlock(&e->mu);
            continue;
        }
        unsigned edge = atomic_load(&e->edge);
        for (int i = 0; i < e->nregs && k < max; i++) {
            struct lg__reg *g = &e->regs[i];
            if (g->epfd != epfd || !(g->events & (EPOLLIN | EPOLLRDNORM)) || !g->armed)
                continue;
            if ((g->events & EPOLLET) && g->seen_edge == edge)
                continue;
            if (atomic_load(&lg__tab[g->fd]) != e)
                continue;
            struct stat st;
            if (lg__fd_stat(g->fd, &st) != 0 || st.st_dev != e->dev || st.st_ino != e->ino)
                continue;
            g->seen_edge = edge;
            out[k].events = g->events & (EPOLLIN | EPOLLRDNORM);
            out[k].data = g->data;
            k++;
            if (g->events & EPOLLONESHOT) {
                g->armed = 0;
                struct epoll_event off = {.events = EPOLLONESHOT, .data = g->data};
                LG_REAL(epoll_ctl)(epfd, EPOLL_CTL_MOD, g->fd, &off);
            }
        }
        pthread_mutex_unlock(&e->mu);
    }
    return k;
}

#define SYNTH_MAX 64

/* Ask the kernel without waiting (room left for ours), then merge. */
static int epoll_merge(int epfd, struct epoll_event *ev, int max, struct epoll_event *syn, int k,
                       int (*kernel)(int, struct epoll_event *, int, const void *), const void *arg)
{
    int r = 0;
    if (max - k > 0) {
        r = kernel(epfd, ev, max - k, arg);
        if (r < 0) {
            if (errno != EINTR)
                return r;
            r = 0;
        }
    }
    for (int j = 0; j < k; j++) {
        int i;
        for (i = 0; i < r; i++)
            if (ev[i].data.u64 == syn[j].data.u64)
                break;
        if (i < r)
            ev[i].events |= syn[j].events;
        else
            ev[r++] = syn[j];
    }
    return r;
}

static int k_wait(int epfd, struct epoll_event *ev, int max, const void *mask)
{
    return mask ? LG_REAL(epoll_pwait)(epfd, ev, max, 0, mask) : LG_REAL(epoll_wait)(epfd, ev, max, 0);
}

static int k_wait2(int epfd, struct epoll_event *ev, int max, const void *mask)
{
    return LG_REAL(epoll_pwait2)(epfd, ev, max, &zero_ts, mask);
}

static int epoll_common(int epfd, struct epoll_event *ev, int max, int *k, struct epoll_event *syn)
{
    int saved = errno;
    *k = 0;
    if (max <= 0 || !ev)
        return 0;
    lg__in_shim++;
    *k = epoll_collect(epfd, syn, max < SYNTH_MAX ? max : SYNTH_MAX);
    lg__in_shim--;
    errno = saved;
    return *k;
}

int lg__hook_epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout)
{
    deliver_queued();
    struct epoll_event syn[SYNTH_MAX];
    int k;
    if (__builtin_expect(nothing_pending(), 1) || lg__in_shim || !epoll_common(epfd, ev, max, &k, syn))
        return LG_REAL(epoll_wait)(epfd, ev, max, timeout);
    return epoll_merge(epfd, ev, max, syn, k, k_wait, NULL);
}

int lg__hook_epoll_pwait(int epfd, struct epoll_event *ev, int max, int timeout, const sigset_t *mask)
{
    deliver_queued();
    struct epoll_event syn[SYNTH_MAX];
    int k;
    if (__builtin_expect(nothing_pending(), 1) || lg__in_shim || !epoll_common(epfd, ev, max, &k, syn))
        return LG_REAL(epoll_pwait)(epfd, ev, max, timeout, mask);
    return epoll_merge(epfd, ev, max, syn, k, k_wait, mask);
}

int lg__hook_epoll_pwait2(int epfd, struct epoll_event *ev, int max, const struct timespec *ts,
                          const sigset_t *mask)
{
    if (!LG_REAL(epoll_pwait2)) {
        errno = ENOSYS;
        return -1;
    }
    deliver_queued();
    struct epoll_event syn[SYNTH_MAX];
    int k;
    if (__builtin_expect(nothing_pending(), 1) || lg__in_shim || !epoll_common(epfd, ev, max, &k, syn))
        return LG_REAL(epoll_pwait2)(epfd, ev, max, ts, mask);
    return epoll_merge(epfd, ev, max, syn, k, k_wait2, mask);
}
