/* The fd table: which fds the shim tracks.  An array of atomic pointers
 * indexed by fd number, sized from RLIMIT_NOFILE's hard limit (capped) and
 * mapped with mmap so untouched pages cost nothing.  The untracked path is
 * one bounds check and one load (lg__fd_peek in shim.h): no locks, no
 * allocation, async-signal-safe.
 *
 * Entries are type-stable (never freed, recycled through a free list), so a
 * pointer loaded without a lock stays safe to lock; the slow path then checks
 * that the table still points at the entry and that the socket behind the fd
 * number is the one that was tracked (st_dev/st_ino), because a process may
 * close an fd without calling close() (Node: syscall(SYS_close)) and the
 * number may now be a file.  Never buffer bytes for an fd not provably ours.
 *
 * fork(): pthread_atfork takes the pool lock and every entry lock before the
 * fork and releases them on both sides, so the child inherits consistent
 * entries and keeps tracking.  Engine code runs under an entry lock and
 * takes the vault's and the emitter's locks inside it, so those must be
 * taken after ours in the prepare phase: prepare handlers run in reverse
 * order of registration, hence lg__fdtab_atfork is registered last
 * (config.c).  The child drops the events its entries hold: they are the
 * parent's, and the parent delivers them.
 *
 * Events (shim.h): queued per entry, delivered by lg__fd_deliver_locked with
 * one emitter call; an entry that holds some is counted in lg__ndeferred, so
 * the readiness hooks know in one load whether there is anything to send. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>

#include "shim.h"

#define LG__TAB_MAX (1u << 20) /* fds beyond this are never tracked */
#define LG__TAB_MIN 1024

_Atomic(lg__fd *) *lg__tab;
atomic_size_t lg__tabsz;
atomic_int lg__npending;
_Atomic(lg__fd *) lg__all;
atomic_int lg__ndeferred;

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static lg__fd *free_list;

/* Output buffers are capped: the engine never holds more than its own
 * limits (max_body) plus framing; 64 MiB bounds a runaway. */
#define LG__BUF_MAX ((size_t)64 << 20)
/* Queued events: at most this many bytes or events wait; a write hook that
 * would go past them delivers first (a client pipelining without reading). */
#define LG__EVENTS_MAX ((size_t)256 << 10)
#define LG__EVENTS_BATCH 16
/* With the flush thread, an entry's queue holds this many before its hook
 * delivers them itself: four requests and their answers in one send.  Not
 * more: the collector's socket queues 10 datagrams by default
 * (net.unix.max_dgram_qlen) and a larger send spills into the spool file
 * (512 sent 972 of 1,040 events there), and big deliveries stall a client
 * that shares its CPU with the thread (p99 +154 us instead of +38). */
#define LG__EVENTS_QUEUE 8

/* ==== The flush thread ====
 * Delivering a request's events before the client waits for the answer
 * costs one send and wakes the collector: 7 us of a guarded request's 26
 * (p50) on the 2-core VM of the benchmarks, where client and server share
 * a CPU, and as much with the collector away (the spool file takes seven
 * system calls).  So allow events wait: an entry's hook delivers them
 * when LG__EVENTS_QUEUE have gathered, and a thread of ours delivers what
 * waits longer than fl_delay_ms, for every entry at once, so that a client
 * that goes quiet still has its events logged at once.  Events that are
 * not allow still go out at once, from the hook (shim.h).
 *
 * The thread is started at the first queued event, with every signal
 * blocked (it must never take a signal meant for the program); if it
 * cannot be started, hooks deliver as before.  It waits on fl_cv while
 * nothing is queued: a hook that queues the first event of an entry
 * (lg__ndeferred up) signals it only when it is waiting (fl_waiting, set
 * before it looks at lg__ndeferred again: one of the two sees the other's
 * store), so a busy connection costs no wake-up per request.  A fork()ed
 * child has no thread; it starts its own when it queues. */
static pthread_mutex_t fl_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fl_cv = PTHREAD_COND_INITIALIZER;
static atomic_int fl_state;   /* 0 not started, 1 running, -1 off (could not start, or delay 0) */
static atomic_int fl_waiting; /* the thread waits on fl_cv */
static atomic_int fl_busy;    /* the thread is delivering */
static int fl_delay_ms = 50;

static void atfork_prepare(void)
{
    pthread_mutex_lock(&pool_mu);
    for (lg__fd *e = atomic_load(&lg__all); e; e = e->next_all)
        pthread_mutex_lock(&e->mu);
}

static void atfork_release(void)
{
    for (lg__fd *e = atomic_load(&lg__all); e; e = e->next_all)
        pthread_mutex_unlock(&e->mu);
    pthread_mutex_unlock(&pool_mu);
}

static void atfork_child(void)
{
    for (lg__fd *e = atomic_load(&lg__all); e; e = e->next_all) {
        lg_buf_reset(&e->events);
        atomic_store_explicit(&e->nevents, 0, memory_order_relaxed);
    }
    atomic_store(&lg__ndeferred, 0);
    /* the parent's thread is not here, and may have held fl_mu */
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    fl_mu = m;
    fl_cv = c;
    atomic_store(&fl_waiting, 0);
    atomic_store(&fl_busy, 0);
    if (atomic_load(&fl_state) == 1)
        atomic_store(&fl_state, 0);
    atfork_release();
}

void lg__fdtab_init(void)
{
    if (atomic_load(&lg__tabsz))
        return;
    /* read here, in the constructor: getenv races with a program's setenv */
    const char *v = getenv("LLMGUARD_EVENTS_DELAY_MS");
    if (v && *v) {
        char *end;
        long ms = strtol(v, &end, 10);
        if (*end == '\0' && ms >= 0 && ms <= 1000)
            fl_delay_ms = (int)ms;
    }
    struct rlimit rl;
    size_t n = LG__TAB_MAX;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY && rl.rlim_max < n)
        n = rl.rlim_max < LG__TAB_MIN ? LG__TAB_MIN : (size_t)rl.rlim_max;
    void *p = mmap(NULL, n * sizeof(*lg__tab), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return; /* nothing is ever tracked: the shim is inert */
    lg__tab = p;
    atomic_store_explicit(&lg__tabsz, n, memory_order_release);
}

void lg__fdtab_atfork(void)
{
    pthread_atfork(atfork_prepare, atfork_release, atfork_child);
}

lg__fd *lg__fd_alloc(void)
{
    pthread_mutex_lock(&pool_mu);
    lg__fd *e = free_list;
    if (e) {
        free_list = e->next_free;
    } else {
        e = calloc(1, sizeof(*e));
        if (e) {
            pthread_mutex_init(&e->mu, NULL);
            e->next_all = atomic_load(&lg__all);
            atomic_store(&lg__all, e);
        }
    }
    pthread_mutex_unlock(&pool_mu);
    if (!e)
        return NULL;
    pthread_mutex_lock(&e->mu);
    e->live = 1;
    e->dev = 0;
    e->ino = 0;
    e->nfds = 0;
    e->conn = NULL;
    lg_buf_init(&e->to_server, LG__BUF_MAX);
    lg_buf_init(&e->to_client, LG__BUF_MAX);
    lg_buf_init(&e->events, LG__EVENTS_MAX);
    atomic_store_explicit(&e->nevents, 0, memory_order_relaxed);
    e->to_client_off = 0;
    atomic_store(&e->pending, 0);
    e->closing = e->server_eof = e->client_eof = e->err = e->sniffed = 0;
    e->nregs = 0;
    e->endpoint[0] = '\0';
    e->next_free = NULL;
    return e;
}

/* e locked, already unlinked from every fd number. */
static void release_locked(lg__fd *e)
{
    lg__fd_deliver_locked(e);
    lg__in_shim++;
    if (e->conn)
        lg_conn_free(e->conn);
    lg__in_shim--;
    e->conn = NULL;
    lg_buf_free(&e->to_server);
    lg_buf_free(&e->to_client);
    lg_buf_free(&e->events);
    e->to_client_off = 0;
    if (atomic_exchange(&e->pending, 0))
        atomic_fetch_sub(&lg__npending, 1);
    e->live = 0;
    e->nregs = 0;
}

static void to_free_list(lg__fd *e)
{
    pthread_mutex_lock(&pool_mu);
    e->next_free = free_list;
    free_list = e;
    pthread_mutex_unlock(&pool_mu);
}

/* Remove fd from e's numbers and registrations; e locked.  Returns the
 * remaining count. */
static int drop_alias_locked(lg__fd *e, int fd)
{
    for (int i = 0; i < e->nfds; i++)
        if (e->fds[i] == fd) {
            e->fds[i] = e->fds[--e->nfds];
            break;
        }
    for (int i = 0; i < e->nregs;)
        if (e->regs[i].fd == fd)
            e->regs[i] = e->regs[--e->nregs];
        else
            i++;
    return e->nfds;
}

static void untrack_entry(int fd, lg__fd *e)
{
    lg__fd *want = e;
    if (!atomic_compare_exchange_strong(&lg__tab[fd], &want, NULL))
        return; /* someone else already did */
    pthread_mutex_lock(&e->mu);
    int left = e->live ? drop_alias_locked(e, fd) : 0;
    int freed = 0;
    if (e->live && left == 0) {
        release_locked(e);
        freed = 1;
    }
    pthread_mutex_unlock(&e->mu);
    if (freed) {
        if (lg__debug)
            lg__log("untrack fd %d", fd);
        to_free_list(e);
    }
}

void lg__fd_untrack(int fd)
{
    lg__fd *e = lg__fd_peek(fd);
    if (e)
        untrack_entry(fd, e);
}

void lg__fd_untrack_all_locked(lg__fd *e)
{
    for (int i = 0; i < e->nfds; i++) {
        lg__fd *want = e;
        atomic_compare_exchange_strong(&lg__tab[e->fds[i]], &want, NULL);
    }
    if (lg__debug)
        lg__log("untrack fd %d (pass-through)", e->nfds ? e->fds[0] : -1);
    e->nfds = 0;
    release_locked(e);
    pthread_mutex_unlock(&e->mu);
    to_free_list(e);
}

int lg__fd_publish(int fd, lg__fd *e)
{
    if ((size_t)(unsigned)fd >= atomic_load(&lg__tabsz))
        return -1;
    lg__fd *old = atomic_load(&lg__tab[fd]);
    if (old && old != e)
        untrack_entry(fd, old);
    e->fds[0] = fd;
    e->nfds = 1;
    atomic_store_explicit(&lg__tab[fd], e, memory_order_release);
    return 0;
}

int lg__fd_add_alias(lg__fd *e, int fd)
{
    if ((size_t)(unsigned)fd >= atomic_load(&lg__tabsz) || e->nfds >= LG__MAX_FDS_PER_ENTRY)
        return -1;
    e->fds[e->nfds++] = fd;
    atomic_store_explicit(&lg__tab[fd], e, memory_order_release);
    return 0;
}

lg__fd *lg__fd_acquire(int fd, lg__fd *e)
{
    int saved = errno;
    pthread_mutex_lock(&e->mu);
    if (!e->live || atomic_load(&lg__tab[fd]) != e) {
        pthread_mutex_unlock(&e->mu);
        errno = saved;
        return NULL;
    }
    struct stat st;
    if (lg__fd_stat(fd, &st) != 0 || st.st_dev != e->dev || st.st_ino != e->ino) {
        /* The number was closed behind our back and reused (or is gone). */
        pthread_mutex_unlock(&e->mu);
        if (lg__debug)
            lg__log("fd %d is no longer the tracked socket; dropped", fd);
        untrack_entry(fd, e);
        errno = saved;
        return NULL;
    }
    errno = saved;
    return e;
}

lg__fd *lg__fd_relock(int fd, lg__fd *e)
{
    pthread_mutex_lock(&e->mu);
    if (!e->live || atomic_load(&lg__tab[fd]) != e) {
        pthread_mutex_unlock(&e->mu);
        return NULL;
    }
    return e;
}

void lg__fd_unlock(lg__fd *e)
{
    pthread_mutex_unlock(&e->mu);
}

void lg__fd_sync_pending(lg__fd *e)
{
    size_t now = e->to_client.len - e->to_client_off;
    if (now == 0 && e->to_client.len) {
        lg_buf_reset(&e->to_client);
        e->to_client_off = 0;
    }
    size_t old = atomic_exchange(&e->pending, now);
    if (now > old)
        atomic_fetch_add(&e->edge, 1);
    if (!old && now)
        atomic_fetch_add(&lg__npending, 1);
    else if (old && !now)
        atomic_fetch_sub(&lg__npending, 1);
}

/* ==== Events ==== */

static void *flush_main(void *arg)
{
    (void)arg;
    lg__in_shim++; /* for good measure: the thread makes no hooked call */
    for (;;) {
        pthread_mutex_lock(&fl_mu);
        atomic_store(&fl_waiting, 1);
        while (atomic_load(&lg__ndeferred) == 0)
            pthread_cond_wait(&fl_cv, &fl_mu);
        atomic_store(&fl_waiting, 0);
        pthread_mutex_unlock(&fl_mu);
        struct timespec d = {fl_delay_ms / 1000, (long)(fl_delay_ms % 1000) * 1000000L};
        while (nanosleep(&d, &d) != 0 && errno == EINTR)
            ;
        atomic_store(&fl_busy, 1);
        lg__fd_deliver_all(1);
        atomic_store(&fl_busy, 0);
    }
    return NULL;
}

/* Start the flush thread; 1 when it runs. */
static int flush_start(void)
{
    int st = atomic_load(&fl_state);
    if (st)
        return st == 1;
    pthread_mutex_lock(&fl_mu);
    if ((st = atomic_load(&fl_state)) == 0) {
        st = -1;
        if (fl_delay_ms > 0) {
            sigset_t all, old;
            sigfillset(&all);
            pthread_attr_t at;
            pthread_t t;
            /* the thread inherits the blocked mask: no window in which a
             * signal could land on it */
            if (pthread_attr_init(&at) == 0) {
                pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
                pthread_attr_setstacksize(&at, 256 << 10);
                pthread_sigmask(SIG_SETMASK, &all, &old);
                if (pthread_create(&t, &at, flush_main, NULL) == 0) {
                    st = 1;
                    pthread_setname_np(t, "llmguard-flush"); /* as top and gdb show it */
                }
                pthread_sigmask(SIG_SETMASK, &old, NULL);
                pthread_attr_destroy(&at);
            }
            if (st != 1 && lg__debug)
                lg__log("no event flush thread: events go out from the hooks");
        }
        atomic_store(&fl_state, st);
    }
    pthread_mutex_unlock(&fl_mu);
    return st == 1;
}

int lg__events_wait(void)
{
    return atomic_load_explicit(&fl_state, memory_order_relaxed) == 1;
}

void lg__fd_event(void *ud, const char *json, size_t n)
{
    lg__fd *e = ud;
    if (lg__debug)
        lg__log("event %.*s", (int)(n > 400 ? 400 : n), json);
    /* Only routine events wait (shim.h).  A block, redaction or finding is
     * in the kernel before the hook returns, after what is queued (order
     * holds), so a program killed right after cannot take it with it.
     * Inside a JSON string the quotes would be escaped: no false match. */
    static const char allow[] = "\"decision\":\"allow\"";
    if (!memmem(json, n, allow, sizeof allow - 1)) {
        lg__fd_deliver_locked(e);
        struct iovec v = {(void *)json, n};
        lg__events_send(&v, 1);
        return;
    }
    int waits = flush_start();
    if (atomic_load_explicit(&e->nevents, memory_order_relaxed) >=
            (waits ? LG__EVENTS_QUEUE : LG__EVENTS_BATCH) ||
        e->events.len + n + 1 > LG__EVENTS_MAX)
        lg__fd_deliver_locked(e);
    char *at = lg_buf_reserve(&e->events, n + 1);
    if (!at) {
        /* No memory to queue it, or larger than the queue: send it now,
         * after what is queued, so the order holds. */
        lg__fd_deliver_locked(e);
        struct iovec v = {(void *)json, n};
        lg__events_send(&v, 1);
        return;
    }
    memcpy(at, json, n);
    at[n] = '\n';
    lg_buf_commit(&e->events, n + 1);
    if (atomic_fetch_add_explicit(&e->nevents, 1, memory_order_relaxed) == 0) {
        atomic_fetch_add(&lg__ndeferred, 1);
        if (waits && atomic_load(&fl_waiting)) {
            pthread_mutex_lock(&fl_mu);
            pthread_cond_signal(&fl_cv);
            pthread_mutex_unlock(&fl_mu);
        }
    }
}

void lg__fd_deliver_locked(lg__fd *e)
{
    if (!atomic_load_explicit(&e->nevents, memory_order_relaxed))
        return;
    struct iovec v[LG__EVENTS_BATCH];
    size_t k = 0;
    char *p = e->events.data, *end = p + e->events.len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            break;
        v[k++] = (struct iovec){p, (size_t)(nl - p)};
        p = nl + 1;
        if (k == LG__EVENTS_BATCH) {
            lg__events_send(v, k);
            k = 0;
        }
    }
    lg__events_send(v, k);
    lg_buf_reset(&e->events);
    atomic_store_explicit(&e->nevents, 0, memory_order_relaxed);
    atomic_fetch_sub(&lg__ndeferred, 1);
}

void lg__fd_deliver_all(int wait)
{
    int saved = errno;
    lg__in_shim++;
    for (lg__fd *e = atomic_load(&lg__all); e && atomic_load(&lg__ndeferred); e = e->next_all) {
        /* Only entries holding events are locked: one in a bounded flush
         * wait has sent its events before waiting, and is not waited for. */
        if (!atomic_load_explicit(&e->nevents, memory_order_relaxed))
            continue;
        if (wait)
            pthread_mutex_lock(&e->mu);
        else if (pthread_mutex_trylock(&e->mu) != 0)
            continue;
        lg__fd_deliver_locked(e);
        pthread_mutex_unlock(&e->mu);
    }
    lg__in_shim--;
    errno = saved;
}

/* exit(): what is still queued goes now.  Another thread may be inside a
 * hook holding its entry (or this thread, exiting from a signal handler):
 * such entries are skipped rather than waited for. */
__attribute__((destructor)) static void deliver_at_exit(void)
{
    /* the flush thread may be sending some now: let it finish (briefly) */
    for (int k = 0; k < 100 && atomic_load(&fl_busy); k++) {
        struct timespec d = {0, 1000000L};
        nanosleep(&d, NULL);
    }
    if (atomic_load(&lg__ndeferred))
        lg__fd_deliver_all(0);
}
