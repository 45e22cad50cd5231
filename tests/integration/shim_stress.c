/* Concurrency and process events under the shim: THREADS threads each run
 * ROUNDS echo requests on their own connections while (a) an interval timer
 * fires a signal whose handler writes to a pipe (async-signal-safe write on
 * an untracked fd, from inside whatever the thread was doing, hooks
 * included), and (b) the main thread forks in the middle of a session of its
 * own: the child finishes reading the answer the parent started and then
 * makes a fresh request (locks inherited sane, tracking kept); the parent
 * makes one too.  Usage: shim_stress PORT [THREADS] [ROUNDS] */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>
#include <sys/wait.h>

#include "shim_common.h"

static int port, rounds = 4;
static int sigpipe_fd[2];
static volatile sig_atomic_t nsig;

static void on_alarm(int s)
{
    (void)s;
    int saved = errno;
    char c = 's';
    if (write(sigpipe_fd[1], &c, 1) == 1)
        nsig++;
    errno = saved;
}

static int one_request(const char *prompt, size_t chunk)
{
    int fd = shim_connect(port);
    if (fd < 0 || shim_send_request(fd, port, prompt))
        return -1;
    char *raw;
    ssize_t n = shim_read_all(fd, &raw, chunk);
    close(fd);
    if (n < 0)
        return -1;
    int rc = shim_check_echo(raw, (size_t)n, prompt);
    if (rc)
        fprintf(stderr, "bad answer for '%s': %.*s\n", prompt, (int)(n > 300 ? 300 : n), raw);
    free(raw);
    return rc;
}

static void *worker(void *arg)
{
    long id = (long)arg;
    long fails = 0;
    for (int r = 0; r < rounds; r++) {
        char prompt[64];
        snprintf(prompt, sizeof prompt, "thread %ld round %d", id, r);
        if (one_request(prompt, (size_t)(1 + (id * 37 + r) % 5000)))
            fails++;
    }
    return (void *)fails;
}

/* Start a request, read part of its answer, fork; the child reads the rest. */
static int fork_mid_session(void)
{
    const char *prompt = "fork in the middle of a session";
    int fd = shim_connect(port);
    if (fd < 0 || shim_send_request(fd, port, prompt))
        return -1;
    char head[40];
    ssize_t got = 0;
    while (got < (ssize_t)sizeof head) {
        ssize_t k = recv(fd, head + got, sizeof head - (size_t)got, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        got += k;
    }
    pid_t pid = fork();
    if (pid == 0) {
        alarm(20);
        char *rest;
        ssize_t n = shim_read_all(fd, &rest, 512);
        if (n < 0)
            _exit(3);
        char *all = malloc((size_t)n + sizeof head);
        memcpy(all, head, sizeof head);
        memcpy(all + sizeof head, rest, (size_t)n);
        if (shim_check_echo(all, (size_t)n + sizeof head, prompt))
            _exit(4);
        _exit(one_request("the child after fork", 100) ? 5 : 0);
    }
    close(fd);
    int parent_ok = one_request("the parent after fork", 4096) == 0;
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "fork child failed: status %d\n", st);
        return -1;
    }
    return parent_ok ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    port = atoi(argv[1]);
    int threads = argc > 2 ? atoi(argv[2]) : 32;
    if (argc > 3)
        rounds = atoi(argv[3]);
    if (pipe(sigpipe_fd))
        return 1;
    fcntl(sigpipe_fd[1], F_SETFL, O_NONBLOCK);
    struct sigaction sa = {.sa_handler = on_alarm, .sa_flags = SA_RESTART};
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 2000}, {0, 2000}};
    setitimer(ITIMER_REAL, &it, NULL);

    pthread_t t[256];
    if (threads > 256)
        threads = 256;
    for (long i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, worker, (void *)i);
    int fork_fails = 0;
    for (int i = 0; i < 3; i++)
        if (fork_mid_session())
            fork_fails++;
    long fails = 0;
    for (int i = 0; i < threads; i++) {
        void *r;
        pthread_join(t[i], &r);
        fails += (long)r;
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    char buf[4096];
    ssize_t k = read(sigpipe_fd[0], buf, sizeof buf);
    printf("threads %d x %d requests: %ld failed; fork: %d failed; signals delivered %d (pipe %zd)\n",
           threads, rounds, fails, fork_fails, (int)nsig, k);
    return fails || fork_fails || nsig == 0 || k <= 0 ? 1 : 0;
}
