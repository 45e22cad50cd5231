/* Configuration of the shim, read once: the environment (LLMGUARD_POLICY,
 * LLMGUARD_MODE, LLMGUARD_ENDPOINTS, LLMGUARD_COLLECTOR, LLMGUARD_DEBUG,
 * LLMGUARD_FLUSH_TIMEOUT_MS; LLMGUARD_EVENTS_DELAY_MS is read in fdtab.c)
 * and the policy file, found as design.md §6 says
 * (LLMGUARD_POLICY, $XDG_CONFIG_HOME/llmguard/policy.json, /etc/llmguard/
 * policy.json, then the built-in default).  The policy is loaded lazily, on
 * the first connect() to an inet address, so a process that never talks to
 * the network pays nothing at start-up (compiling the packs costs
 * milliseconds).  A policy that does not load never means "no policy":
 * guarded connections then fail closed (io.c) and the reason is said once on
 * stderr.
 *
 * Also here: the process-wide vault, engine construction, the debug log and
 * the emitter (lg__events_send; when events are sent is fdtab.c's matter). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "emit.h"
#include "error.h"
#include "shim.h"

__thread int lg__in_shim __attribute__((tls_model("initial-exec")));
int lg__debug;

/* ==== Debug log ==== */

void lg__log(const char *fmt, ...)
{
    char line[512];
    int saved = errno;
    int k = snprintf(line, sizeof line, "llmguard[%d]: ", (int)getpid());
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + k, sizeof line - (size_t)k - 1, fmt, ap);
    va_end(ap);
    size_t n = (size_t)k + (m < 0 ? 0 : (size_t)m);
    if (n > sizeof line - 2)
        n = sizeof line - 2;
    line[n++] = '\n';
    ssize_t w = LG_REAL(write)(2, line, n);
    (void)w;
    errno = saved;
}

/* ==== Endpoints ==== */

/* One guarded destination.  port 0 = any port. */
struct ep {
    int kind;           /* EP_LOOPBACK, EP_ANY, EP_ADDR */
    int family;         /* AF_INET or AF_INET6 for EP_ADDR */
    unsigned char a[16];
    unsigned port;
};
enum { EP_LOOPBACK, EP_ANY, EP_ADDR };
#define MAX_EPS 64

static struct ep eps[MAX_EPS];
static int neps;

static int is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s = (const void *)sa;
        return (ntohl(s->sin_addr.s_addr) >> 24) == 127;
    }
    const struct sockaddr_in6 *s6 = (const void *)sa;
    if (IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr))
        return 1;
    return IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) && s6->sin6_addr.s6_addr[12] == 127;
}

/* Parse one endpoint: "loopback", "loopback:P", "localhost:P", "*:P", "P",
 * "1.2.3.4", "1.2.3.4:P", "[::1]", "[::1]:P", "::1".  0 or -1. */
static int parse_ep(const char *s, struct ep *e)
{
    char host[128];
    const char *port = NULL;
    memset(e, 0, sizeof *e);
    if (*s == '[') {
        const char *close = strchr(s, ']');
        if (!close || (size_t)(close - s - 1) >= sizeof host)
            return -1;
        memcpy(host, s + 1, (size_t)(close - s - 1));
        host[close - s - 1] = '\0';
        if (close[1] == ':')
            port = close + 2;
        else if (close[1])
            return -1;
    } else {
        const char *c = strchr(s, ':');
        if (c && strchr(c + 1, ':')) { /* bare IPv6 */
            if (strlen(s) >= sizeof host)
                return -1;
            strcpy(host, s);
        } else {
            size_t hl = c ? (size_t)(c - s) : strlen(s);
            if (hl >= sizeof host)
                return -1;
            memcpy(host, s, hl);
            host[hl] = '\0';
            if (c)
                port = c + 1;
        }
    }
    if (port) {
        char *end;
        long v = strtol(port, &end, 10);
        if (!*port || *end || v < 1 || v > 65535)
            return -1;
        e->port = (unsigned)v;
    }
    if (!host[0] && port) { /* ":P" */
        e->kind = EP_LOOPBACK;
        return 0;
    }
    if (!port && host[0] >= '0' && host[0] <= '9' && !strchr(host, '.')) {
        char *end; /* "P" alone */
        long v = strtol(host, &end, 10);
        if (*end || v < 1 || v > 65535)
            return -1;
        e->kind = EP_LOOPBACK;
        e->port = (unsigned)v;
        return 0;
    }
    if (!strcasecmp(host, "loopback") || !strcasecmp(host, "localhost")) {
        e->kind = EP_LOOPBACK;
        return 0;
    }
    if (!strcmp(host, "*")) {
        e->kind = EP_ANY;
        return 0;
    }
    e->kind = EP_ADDR;
    if (inet_pton(AF_INET, host, e->a) == 1) {
        e->family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, host, e->a) == 1) {
        e->family = AF_INET6;
        return 0;
    }
    return -1; /* host names are not resolved inside a hook */
}

static void add_ep_string(const char *s)
{
    if (neps >= MAX_EPS)
        return;
    if (parse_ep(s, &eps[neps]) == 0)
        neps++;
    else
        lg__log("endpoint '%s' not understood (use loopback, IP[:port], [IPv6][:port], *:port); ignored", s);
}

static int ep_match(const struct ep *e, const struct sockaddr *sa)
{
    unsigned port;
    if (sa->sa_family == AF_INET)
        port = ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port);
    else
        port = ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
    if (e->port && e->port != port)
        return 0;
    switch (e->kind) {
    case EP_ANY:
        return 1;
    case EP_LOOPBACK:
        return is_loopback(sa);
    default:
        break;
    }
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s = (const void *)sa;
        return e->family == AF_INET && !memcmp(&s->sin_addr, e->a, 4);
    }
    const struct sockaddr_in6 *s6 = (const void *)sa;
    if (e->family == AF_INET6)
        return !memcmp(&s6->sin6_addr, e->a, 16);
    return IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) && !memcmp(&s6->sin6_addr.s6_addr[12], e->a, 4);
}

/* ==== Policy and process-wide state ==== */

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static lg_policy *policy;
static char policy_error[700]; /* why there is no policy (fail closed) */
static lg_vault *vault;
static pthread_mutex_t vault_mu = PTHREAD_MUTEX_INITIALIZER;
static char exe_path[512];
static int flush_ms = 10000;
static lg_emitter *emitter; /* opened with the policy; NULL: events dropped */

static void vault_lock(void *ud) { pthread_mutex_lock(ud); }
static void vault_unlock(void *ud) { pthread_mutex_unlock(ud); }
static void vault_fork_lock(void) { pthread_mutex_lock(&vault_mu); }
static void vault_fork_unlock(void) { pthread_mutex_unlock(&vault_mu); }

static int file_exists(const char *p)
{
    return access(p, F_OK) == 0;
}

/* The canary marker for this process ("LGC-" + 16 hex digits), made once
 * when the policy loads; empty when the policy does not ask for one. */
static char canary[LG_CANARY_SIZE];

static void make_canary(void)
{
    unsigned char r[8] = { 0 };
    /* Raw syscall: no libc wrapper on older glibc, and never a hooked call. */
    if (syscall(SYS_getrandom, r, sizeof r, 0) != (long)sizeof r) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32) ^ (uint64_t)ts.tv_sec;
        memcpy(r, &x, sizeof r);
    }
    lg_canary_format(r, canary);
}

static void load(void)
{
    lg__in_shim++;
    char path[600];
    const char *file = getenv("LLMGUARD_POLICY");
    if (file && !*file)
        file = NULL;
    if (!file) {
        const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
        path[0] = '\0';
        if (xdg && *xdg)
            snprintf(path, sizeof path, "%s/llmguard/policy.json", xdg);
        else if (home && *home)
            snprintf(path, sizeof path, "%s/.config/llmguard/policy.json", home);
        if (path[0] && file_exists(path))
            file = path;
        else if (file_exists("/etc/llmguard/policy.json"))
            file = "/etc/llmguard/policy.json";
    }
    lg_diag d;
    memset(&d, 0, sizeof d);
    int rc = file ? lg_policy_load_file(file, &policy, &d) : lg_policy_builtin(&policy, &d);
    if (rc != LG_OK) {
        char msg[600];
        lg_diag_format(&d, msg, sizeof msg);
        snprintf(policy_error, sizeof policy_error, "policy %s did not load (%s)",
                 file ? file : "<built-in>", msg[0] ? msg : lg_strerror(rc));
        policy = NULL;
    }
    const char *mode = getenv("LLMGUARD_MODE");
    if (policy && mode && *mode) {
        if (!strcmp(mode, "enforce"))
            policy->mode = LG_MODE_ENFORCE;
        else if (!strcmp(mode, "monitor"))
            policy->mode = LG_MODE_MONITOR;
        else {
            snprintf(policy_error, sizeof policy_error,
                     "LLMGUARD_MODE='%.40s' is not enforce or monitor", mode);
            lg_policy_free(policy);
            policy = NULL;
        }
    }
    const char *env_eps = getenv("LLMGUARD_ENDPOINTS");
    if (env_eps && *env_eps) {
        char tmp[1024];
        snprintf(tmp, sizeof tmp, "%s", env_eps);
        for (char *sp, *t = strtok_r(tmp, ", \t", &sp); t; t = strtok_r(NULL, ", \t", &sp))
            add_ep_string(t);
    } else if (policy && policy->nendpoints) {
        for (size_t i = 0; i < policy->nendpoints; i++)
            add_ep_string(policy->endpoints[i]);
    } else {
        add_ep_string("loopback");
    }
    emitter = lg_emit_open(NULL, NULL); /* LLMGUARD_COLLECTOR is read by the emitter */
    if (policy && policy->canary)
        make_canary();
    if (policy) {
        vault = lg_vault_new(4096);
        if (vault)
            lg_vault_set_lock(vault, vault_lock, vault_unlock, &vault_mu);
    } else {
        lg__log("%s; connections to guarded endpoints will be refused", policy_error);
    }
    /* Lock order under fork: entries, then vault, then emitter (fdtab.c). */
    pthread_atfork(vault_fork_lock, vault_fork_unlock, vault_fork_unlock);
    lg__fdtab_atfork();
    if (lg__debug)
        lg__log("policy %s, mode %s, %d endpoint(s)", policy ? policy->source : "(none)",
                policy ? lg_mode_name(policy->mode) : "-", neps);
    lg__in_shim--;
}

int lg__config_guarded(const struct sockaddr *sa, socklen_t len)
{
    if (sa->sa_family == AF_INET) {
        if (len < sizeof(struct sockaddr_in))
            return 0;
    } else if (sa->sa_family == AF_INET6) {
        if (len < sizeof(struct sockaddr_in6))
            return 0;
    } else {
        return 0;
    }
    pthread_once(&load_once, load);
    for (int i = 0; i < neps; i++)
        if (ep_match(&eps[i], sa))
            return 1;
    return 0;
}

static uint64_t now_us(void *ud)
{
    (void)ud;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

lg_conn *lg__config_new_conn(const char *endpoint, lg__fd *entry, const char **why)
{
    *why = NULL;
    if (!policy) {
        *why = policy_error;
        return NULL;
    }
    /* The engine numbers its events per connection, so every connection
     * gets a prefix unique across threads, forks and reboots. */
    char prefix[LG_EMIT_ID_SIZE];
    lg_emit_new_id(prefix);
    lg_conn_cfg cfg = {
        .policy = policy,
        .vault = vault,
        .endpoint = endpoint,
        .on_event = lg__fd_event,
        .ud = entry,
        .now_us = now_us,
        .id_prefix = prefix,
        .pid = (int)getpid(),
        .uid = (int)getuid(),
        .exe = exe_path,
        .canary = canary[0] ? canary : NULL,
    };
    lg_conn *c = lg_conn_new(&cfg);
    if (!c)
        *why = "out of memory";
    return c;
}

const char *lg__config_policy_error(void)
{
    return policy_error;
}

int lg__config_flush_ms(void)
{
    return flush_ms;
}

/* ==== Events ==== */

void lg__events_send(const struct iovec *ev, size_t n)
{
    if (emitter && n) {
        lg__in_shim++;
        lg_emit_sendv(emitter, ev, n);
        lg__in_shim--;
    }
}

/* ==== Constructor ==== */

void lg__init(void)
{
    int saved = errno;
    lg__in_shim++;
    const char *d = getenv("LLMGUARD_DEBUG");
    lg__debug = d && *d && strcmp(d, "0") != 0;
    const char *f = getenv("LLMGUARD_FLUSH_TIMEOUT_MS");
    if (f && *f) {
        long v = strtol(f, NULL, 10);
        if (v > 0 && v < 3600000)
            flush_ms = (int)v;
    }
    ssize_t k = readlink("/proc/self/exe", exe_path, sizeof exe_path - 1);
    exe_path[k > 0 ? k : 0] = '\0';
    lg__fdtab_init();
    lg__in_shim--;
    errno = saved;
}
