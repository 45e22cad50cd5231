/* Unit tests for shim/emit.c: path resolution, ids, datagram delivery, the
 * spool fallback (collector absent, queue full, spool file consumed or
 * locked by the collector), errno preservation, threads and fork; batches
 * (lg_emit_sendv) keep their order across datagrams and spool, and the kept
 * connection follows a collector whose socket was replaced. */
#include <criterion/criterion.h>

#include "emit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[128];

static void mk_tmp(void)
{
    snprintf(dir, sizeof dir, "/tmp/lg-emit-test.XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void rm_tmp(void)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

static int bind_dgram(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strcpy(a.sun_path, path);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* All lines of all spool files in d, concatenated; number of files in *nf. */
static char *read_spool(const char *d, int *nf)
{
    static char all[1 << 20];
    size_t n = 0;
    *nf = 0;
    DIR *dd = opendir(d);
    if (!dd) {
        all[0] = 0;
        return all;
    }
    struct dirent *de;
    while ((de = readdir(dd))) {
        if (!strstr(de->d_name, ".spool"))
            continue;
        (*nf)++;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", d, de->d_name);
        int fd = open(p, O_RDONLY);
        ssize_t k;
        while ((k = read(fd, all + n, sizeof all - 1 - n)) > 0)
            n += (size_t)k;
        close(fd);
    }
    closedir(dd);
    all[n] = 0;
    return all;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

TestSuite(emit, .init = mk_tmp, .fini = rm_tmp);

/* The collector socket and spool paths every test uses, in dir. */
static void paths(char sp[160], char sd[160])
{
    snprintf(sp, 160, "%s/ev.sock", dir);
    snprintf(sd, 160, "%s/spool", dir);
}

Test(emit, default_paths_env_and_fallbacks)
{
    lg_emit_paths p;
    unsetenv("LLMGUARD_COLLECTOR");
    unsetenv("LLMGUARD_SPOOL_DIR");
    setenv("XDG_RUNTIME_DIR", "/run/user/1234", 1);
    cr_assert_eq(lg_emit_default_paths(&p, 0), 0);
    cr_assert_str_eq(p.socket, "/run/user/1234/llmguard/events.sock");
    cr_assert_str_eq(p.spool, "/run/user/1234/llmguard/spool");
    unsetenv("XDG_RUNTIME_DIR");
    cr_assert_eq(lg_emit_default_paths(&p, 0), 0);
    char want[64];
    snprintf(want, sizeof want, "/tmp/llmguard-%u/events.sock", (unsigned)getuid());
    cr_assert_str_eq(p.socket, want);
    cr_assert_eq(lg_emit_default_paths(&p, 1), 0);
    cr_assert_str_eq(p.socket, "/run/llmguard/events.sock");
    cr_assert_str_eq(p.spool, "/run/llmguard/spool");
    setenv("LLMGUARD_COLLECTOR", "/x/y.sock", 1);
    setenv("LLMGUARD_SPOOL_DIR", "/x/spool", 1);
    cr_assert_eq(lg_emit_default_paths(&p, 1), 0);
    cr_assert_str_eq(p.socket, "/x/y.sock");
    cr_assert_str_eq(p.spool, "/x/spool");
    char longp[200];
    memset(longp, 'a', sizeof longp - 1);
    longp[0] = '/';
    longp[sizeof longp - 1] = 0;
    setenv("LLMGUARD_COLLECTOR", longp, 1);
    cr_assert_eq(lg_emit_default_paths(&p, 0), -ENAMETOOLONG);
    unsetenv("LLMGUARD_COLLECTOR");
    unsetenv("LLMGUARD_SPOOL_DIR");
}

Test(emit, ids_unique_and_formatted)
{
    char a[LG_EMIT_ID_SIZE], b[LG_EMIT_ID_SIZE];
    size_t n = lg_emit_new_id(a);
    lg_emit_new_id(b);
    cr_assert_eq(n, strlen(a));
    cr_assert_str_neq(a, b);
    char pid[32];
    snprintf(pid, sizeof pid, "-%d-", (int)getpid());
    cr_assert_not_null(strstr(a, pid), "id %s lacks pid", a);
    cr_assert_eq(strspn(a, "0123456789abcdef"), 16);
    char ts[32];
    cr_assert_eq(lg_emit_format_ts(ts, 1700000000123456LL), 27);
    cr_assert_str_eq(ts, "2023-11-14T22:13:20.123456Z");
    lg_emit_format_ts(ts, 0);
    cr_assert_str_eq(ts, "1970-01-01T00:00:00.000000Z");
}

#define NTH 4
#define PER 5000
static char tid[NTH][PER][LG_EMIT_ID_SIZE];
static void *id_thread(void *arg)
{
    long t = (long)arg;
    for (int i = 0; i < PER; i++)
        lg_emit_new_id(tid[t][i]);
    return NULL;
}
static int cmpid(const void *x, const void *y) { return strcmp(x, y); }

Test(emit, ids_unique_across_threads)
{
    pthread_t th[NTH];
    for (long t = 0; t < NTH; t++)
        pthread_create(&th[t], NULL, id_thread, (void *)t);
    for (int t = 0; t < NTH; t++)
        pthread_join(th[t], NULL);
    qsort(tid, NTH * PER, LG_EMIT_ID_SIZE, cmpid);
    char(*flat)[LG_EMIT_ID_SIZE] = &tid[0][0];
    for (int i = 1; i < NTH * PER; i++)
        cr_assert_str_neq(flat[i - 1], flat[i]);
}

Test(emit, datagram_delivered_and_errno_kept)
{
    char sp[160], sd[160];
    paths(sp, sd);
    int r = bind_dgram(sp);
    lg_emitter *e = lg_emit_open(sp, sd);
    cr_assert_not_null(e);
    const char *ev = "{\"v\":1,\"id\":\"x-1\"}";
    errno = 4242;
    cr_assert_eq(lg_emit_send(e, ev, strlen(ev)), 0);
    cr_assert_eq(errno, 4242);
    char buf[256];
    ssize_t k = recv(r, buf, sizeof buf, MSG_DONTWAIT);
    cr_assert_eq(k, (ssize_t)strlen(ev));
    cr_assert_eq(memcmp(buf, ev, (size_t)k), 0);
    lg_emit_stats st;
    lg_emit_get_stats(e, &st);
    cr_assert_eq(st.sent, 1);
    cr_assert_eq(st.spooled, 0);
    /* the socket is CLOEXEC and ours: no spool directory was created */
    struct stat sst;
    cr_assert_neq(stat(sd, &sst), 0);
    lg_emit_close(e);
    close(r);
}

Test(emit, rejects_newline_empty_and_oversize)
{
    char sp[160], sd[160];
    paths(sp, sd);
    lg_emitter *e = lg_emit_open(sp, sd);
    errno = 77;
    cr_assert_eq(lg_emit_send(e, "{\"a\":\n1}", 8), -EINVAL);
    cr_assert_eq(lg_emit_send(e, "", 0), -EINVAL);
    char *big = malloc(LG_EMIT_MAX_EVENT + 1);
    memset(big, 'a', LG_EMIT_MAX_EVENT + 1);
    cr_assert_eq(lg_emit_send(e, big, LG_EMIT_MAX_EVENT + 1), -EMSGSIZE);
    cr_assert_eq(errno, 77);
    lg_emit_stats st;
    lg_emit_get_stats(e, &st);
    cr_assert_eq(st.dropped, 1);
    cr_assert_eq(st.last_errno, EMSGSIZE);
    free(big);
    lg_emit_close(e);
}

Test(emit, spools_when_collector_absent)
{
    char sp[160], sd[160];
    snprintf(sp, sizeof sp, "%s/none.sock", dir);
    snprintf(sd, sizeof sd, "%s/a/b/spool", dir);
    lg_emitter *e = lg_emit_open(sp, sd);
    errno = 99;
    for (int i = 0; i < 100; i++) {
        char ev[64];
        int n = snprintf(ev, sizeof ev, "{\"v\":1,\"id\":\"s-%d\"}", i);
        cr_assert_eq(lg_emit_send(e, ev, (size_t)n), 1);
    }
    cr_assert_eq(errno, 99);
    int nf;
    char *all = read_spool(sd, &nf);
    cr_assert_eq(nf, 1);
    cr_assert_eq(count_lines(all), 100);
    cr_assert(strncmp(all, "{\"v\":1,\"id\":\"s-0\"}\n", 19) == 0);
    struct stat st;
    cr_assert_eq(stat(sd, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0700);
    lg_emit_close(e);
}

Test(emit, spools_when_queue_full_then_recovers)
{
    char sp[160], sd[160];
    paths(sp, sd);
    int r = bind_dgram(sp);
    lg_emitter *e = lg_emit_open(sp, sd);
    int sent = 0, spooled = 0;
    for (int i = 0; i < 2000; i++) {
        int rc = lg_emit_send(e, "{\"v\":1,\"id\":\"q\"}", 17);
        cr_assert(rc == 0 || rc == 1);
        rc ? spooled++ : sent++;
    }
    cr_assert_gt(sent, 0);
    cr_assert_gt(spooled, 0, "a never-read socket must fill and spill");
    char buf[64];
    while (recv(r, buf, sizeof buf, MSG_DONTWAIT) > 0)
        ;
    /* queue drained: the very next event goes by datagram again */
    cr_assert_eq(lg_emit_send(e, "{\"v\":1,\"id\":\"q2\"}", 18), 0);
    lg_emit_close(e);
    close(r);
}

Test(emit, consumed_or_locked_spool_starts_new_file)
{
    char sp[160], sd[160];
    snprintf(sp, sizeof sp, "%s/none.sock", dir);
    snprintf(sd, sizeof sd, "%s/spool", dir);
    lg_emitter *e = lg_emit_open(sp, sd);
    cr_assert_eq(lg_emit_send(e, "{\"n\":1}", 7), 1);
    /* the collector consumes the file: lock, unlink, unlock */
    DIR *d = opendir(sd);
    struct dirent *de;
    char p[512] = "";
    while ((de = readdir(d)))
        if (strstr(de->d_name, ".spool"))
            snprintf(p, sizeof p, "%s/%s", sd, de->d_name);
    closedir(d);
    int fd = open(p, O_RDONLY);
    cr_assert_eq(flock(fd, LOCK_EX), 0);
    cr_assert_eq(unlink(p), 0);
    close(fd);
    cr_assert_eq(lg_emit_send(e, "{\"n\":2}", 7), 1);
    int nf;
    char *all = read_spool(sd, &nf);
    cr_assert_eq(nf, 1);
    cr_assert_str_eq(all, "{\"n\":2}\n", "an unlinked file must not receive appends");
    /* the collector holds the lock on the current file: we must not wait */
    d = opendir(sd);
    while ((de = readdir(d)))
        if (strstr(de->d_name, ".spool"))
            snprintf(p, sizeof p, "%s/%s", sd, de->d_name);
    closedir(d);
    fd = open(p, O_RDONLY);
    cr_assert_eq(flock(fd, LOCK_EX), 0);
    cr_assert_eq(lg_emit_send(e, "{\"n\":3}", 7), 1);
    close(fd);
    all = read_spool(sd, &nf);
    cr_assert_eq(nf, 2);
    cr_assert_eq(count_lines(all), 2);
    lg_emit_close(e);
}

static lg_emitter *shared;
static void *send_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < 2000; i++) {
        char ev[80], id[LG_EMIT_ID_SIZE];
        lg_emit_new_id(id);
        int n = snprintf(ev, sizeof ev, "{\"v\":1,\"id\":\"%s\",\"pad\":\"xxxxxxxx\"}", id);
        lg_emit_send(shared, ev, (size_t)n);
    }
    return NULL;
}

Test(emit, threads_share_an_emitter)
{
    char sp[160], sd[160];
    snprintf(sp, sizeof sp, "%s/none.sock", dir);
    snprintf(sd, sizeof sd, "%s/spool", dir);
    shared = lg_emit_open(sp, sd);
    pthread_t th[4];
    for (int t = 0; t < 4; t++)
        pthread_create(&th[t], NULL, send_thread, NULL);
    for (int t = 0; t < 4; t++)
        pthread_join(th[t], NULL);
    int nf;
    char *all = read_spool(sd, &nf);
    cr_assert_eq(count_lines(all), 8000);
    for (char *l = all; *l;) { /* every line intact */
        char *nl = strchr(l, '\n');
        cr_assert(strncmp(l, "{\"v\":1,\"id\":\"", 13) == 0);
        cr_assert(nl[-1] == '}');
        l = nl + 1;
    }
    lg_emit_stats st;
    lg_emit_get_stats(shared, &st);
    cr_assert_eq(st.spooled, 8000);
    lg_emit_close(shared);
}

Test(emit, fork_child_gets_own_spool_file)
{
    char sp[160], sd[160];
    snprintf(sp, sizeof sp, "%s/none.sock", dir);
    snprintf(sd, sizeof sd, "%s/spool", dir);
    lg_emitter *e = lg_emit_open(sp, sd);
    cr_assert_eq(lg_emit_send(e, "{\"who\":\"parent\"}", 16), 1);
    char pid_id[LG_EMIT_ID_SIZE];
    lg_emit_new_id(pid_id);
    int pfd[2];
    cr_assert_eq(pipe(pfd), 0);
    pid_t c = fork();
    if (c == 0) {
        char id[LG_EMIT_ID_SIZE];
        lg_emit_new_id(id);
        int ok = lg_emit_send(e, "{\"who\":\"child\"}", 15) == 1 &&
                 strncmp(id, pid_id, 16) != 0; /* new random prefix */
        lg_emit_stats st;
        lg_emit_get_stats(e, &st);
        ok = ok && st.spooled == 1; /* counters restart in the child */
        if (write(pfd[1], ok ? "1" : "0", 1) != 1)
            _exit(2);
        _exit(0);
    }
    int status;
    waitpid(c, &status, 0);
    char okc = 0;
    cr_assert_eq(read(pfd[0], &okc, 1), 1);
    cr_assert_eq(okc, '1');
    cr_assert_eq(lg_emit_send(e, "{\"who\":\"parent\"}", 16), 1);
    int nf;
    char *all = read_spool(sd, &nf);
    cr_assert_eq(nf, 2, "parent and child each have their own spool file");
    cr_assert_eq(count_lines(all), 3);
    char pat[32];
    snprintf(pat, sizeof pat, "%d-", (int)c);
    DIR *d = opendir(sd);
    struct dirent *de;
    int childfile = 0;
    while ((de = readdir(d)))
        childfile |= strncmp(de->d_name, pat, strlen(pat)) == 0;
    closedir(d);
    cr_assert(childfile, "child's spool file is named after its pid");
    lg_emit_close(e);
    close(pfd[0]);
    close(pfd[1]);
}

/* Events of a batch arrive in order, one datagram each. */
Test(emit, sendv_delivers_in_order)
{
    char sp[160], sd[160];
    paths(sp, sd);
    int r = bind_dgram(sp);
    lg_emitter *e = lg_emit_open(sp, sd);
    char ev[20][32];
    struct iovec v[20];
    for (int i = 0; i < 20; i++) { /* more than one internal batch */
        int n = snprintf(ev[i], sizeof ev[i], "{\"n\":%d}", i);
        v[i] = (struct iovec){ev[i], (size_t)n};
    }
    errno = 31;
    cr_assert_eq(lg_emit_sendv(e, v, 10), 0);
    cr_assert_eq(errno, 31);
    char buf[64];
    for (int i = 0; i < 10; i++) {
        ssize_t k = recv(r, buf, sizeof buf, MSG_DONTWAIT);
        cr_assert_eq(k, (ssize_t)v[i].iov_len);
        cr_assert_eq(memcmp(buf, ev[i], (size_t)k), 0, "datagram %d out of order", i);
    }
    cr_assert_lt(recv(r, buf, sizeof buf, MSG_DONTWAIT), 0);
    lg_emit_stats st;
    lg_emit_get_stats(e, &st);
    cr_assert_eq(st.sent, 10);
    lg_emit_close(e);
    close(r);
}

/* A batch that meets a full queue: what the socket took comes first, the
 * rest is spooled, and together they are the batch in its order. */
Test(emit, sendv_spills_the_rest_in_order)
{
    char sp[160], sd[160];
    paths(sp, sd);
    int r = bind_dgram(sp); /* never read until the end */
    lg_emitter *e = lg_emit_open(sp, sd);
    enum { N = 100 };
    static char ev[N][32];
    struct iovec v[N];
    for (int i = 0; i < N; i++) {
        int n = snprintf(ev[i], sizeof ev[i], "{\"n\":%d}", i);
        v[i] = (struct iovec){ev[i], (size_t)n};
    }
    cr_assert_eq(lg_emit_sendv(e, v, N), 1, "a never-read socket must fill and spill");
    char got[N * 32] = "";
    size_t gl = 0;
    char buf[64];
    ssize_t k;
    while ((k = recv(r, buf, sizeof buf, MSG_DONTWAIT)) > 0) {
        memcpy(got + gl, buf, (size_t)k);
        gl += (size_t)k;
        got[gl++] = '\n';
    }
    cr_assert_gt(gl, 0);
    int nf;
    const char *sp_lines = read_spool(sd, &nf);
    cr_assert_eq(nf, 1);
    memcpy(got + gl, sp_lines, strlen(sp_lines) + 1);
    char want[N * 32] = "";
    for (int i = 0; i < N; i++) {
        strcat(want, ev[i]);
        strcat(want, "\n");
    }
    cr_assert_str_eq(got, want);
    lg_emit_stats st;
    lg_emit_get_stats(e, &st);
    cr_assert_eq(st.sent + st.spooled, N);
    cr_assert_eq(st.dropped, 0);
    lg_emit_close(e);
    close(r);
}

/* An invalid event is refused; the others of its batch still go. */
Test(emit, sendv_skips_invalid_events)
{
    char sp[160], sd[160];
    paths(sp, sd);
    int r = bind_dgram(sp);
    lg_emitter *e = lg_emit_open(sp, sd);
    struct iovec v[3] = {{(void *)"{\"a\":1}", 7}, {(void *)"{\"b\":\n2}", 8}, {(void *)"{\"c\":3}", 7}};
    cr_assert_eq(lg_emit_sendv(e, v, 3), -EINVAL);
    char buf[64];
    cr_assert_eq(recv(r, buf, sizeof buf, MSG_DONTWAIT), 7);
    cr_assert_eq(memcmp(buf, "{\"a\":1}", 7), 0);
    cr_assert_eq(recv(r, buf, sizeof buf, MSG_DONTWAIT), 7);
    cr_assert_eq(memcmp(buf, "{\"c\":3}", 7), 0);
    lg_emit_close(e);
    close(r);
}

/* The socket stays connected between events; when the collector comes back
 * on a new socket at the same path, the next event finds it at once. */
Test(emit, follows_a_replaced_collector_socket)
{
    char sp[160], sd[160];
    paths(sp, sd);
    int a = bind_dgram(sp);
    lg_emitter *e = lg_emit_open(sp, sd);
    cr_assert_eq(lg_emit_send(e, "{\"n\":1}", 7), 0);
    char buf[64];
    cr_assert_eq(recv(a, buf, sizeof buf, MSG_DONTWAIT), 7);
    close(a); /* the collector dies ... */
    unlink(sp);
    int b = bind_dgram(sp); /* ... and a new one binds the path */
    cr_assert_eq(lg_emit_send(e, "{\"n\":2}", 7), 0, "must reconnect, not spool");
    cr_assert_eq(recv(b, buf, sizeof buf, MSG_DONTWAIT), 7);
    cr_assert_eq(memcmp(buf, "{\"n\":2}", 7), 0);
    lg_emit_stats st;
    lg_emit_get_stats(e, &st);
    cr_assert_eq(st.sent, 2);
    cr_assert_eq(st.spooled, 0);
    lg_emit_close(e);
    close(b);
}

/* The old socket is still open somewhere (a stale keeper) and full, while
 * a new collector listens at the path: events spool (nothing lost) and,
 * once the old peer has stayed full for a second, go to the new one. */
Test(emit, leaves_a_peer_that_stays_full)
{
    char sp[160], sd[160], old[170];
    snprintf(sp, sizeof sp, "%s/ev.sock", dir);
    snprintf(sd, sizeof sd, "%s/spool", dir);
    snprintf(old, sizeof old, "%s/old.sock", dir);
    int a = bind_dgram(sp);
    lg_emitter *e = lg_emit_open(sp, sd);
    int rc;
    while ((rc = lg_emit_send(e, "{\"f\":1}", 7)) == 0)
        ;
    cr_assert_eq(rc, 1, "the queue filled up and the event was spooled");
    cr_assert_eq(rename(sp, old), 0); /* the old socket lives on elsewhere */
    int b = bind_dgram(sp);
    cr_assert_eq(lg_emit_send(e, "{\"f\":2}", 7), 1, "still the old peer: spooled");
    usleep(1100 * 1000);
    cr_assert_eq(lg_emit_send(e, "{\"f\":3}", 7), 1, "this one finds it still full");
    cr_assert_eq(lg_emit_send(e, "{\"f\":4}", 7), 0, "then the path is looked up again");
    char buf[64];
    cr_assert_eq(recv(b, buf, sizeof buf, MSG_DONTWAIT), 7);
    cr_assert_eq(memcmp(buf, "{\"f\":4}", 7), 0);
    lg_emit_close(e);
    close(a);
    close(b);
}

Test(emit, mkdir_private_refuses_foreign_dirs)
{
    char p[200];
    snprintf(p, sizeof p, "%s/x/y", dir);
    cr_assert_eq(lg_emit_mkdir_private(p, 0700), 0);
    struct stat st;
    cr_assert_eq(stat(p, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0700);
    cr_assert_eq(lg_emit_mkdir_private(p, 0700), 0, "existing own dir is fine");
    if (geteuid() == 0) {
        cr_assert_eq(chown(p, 65534, 65534), 0);
        cr_assert_eq(lg_emit_mkdir_private(p, 0700), -EPERM);
        char q[220];
        snprintf(q, sizeof q, "%s/z", p);
        cr_assert_eq(lg_emit_mkdir_private(q, 0700), -EPERM,
                     "a foreign ancestor is refused too");
    }
    snprintf(p, sizeof p, "%s/open", dir);
    cr_assert_eq(mkdir(p, 0777), 0);
    cr_assert_eq(chmod(p, 0777), 0);
    cr_assert_eq(lg_emit_mkdir_private(p, 0700), -EPERM, "world-writable, not sticky");
}
