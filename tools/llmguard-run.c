/* llmguard-run: run a program with libllmguard.so preloaded, so that its
 * traffic to local model servers is guarded (design.md §1, §5).
 *
 * It finds the library (next to this binary, then ../lib/llmguard/, then the
 * compiled-in $(libdir)/llmguard/), prepends it to LD_PRELOAD, passes the
 * options to the shim through the environment (LLMGUARD_POLICY, _MODE,
 * _ENDPOINTS, _COLLECTOR, _DEBUG), validates the policy before anything runs
 * (a broken policy is an error, never "no policy"), and execs the command,
 * so the command's exit status is ours.
 *
 * It also says plainly when the shim cannot work: the dynamic loader ignores
 * LD_PRELOAD for setuid/setgid programs and programs with file capabilities
 * (AT_SECURE), a statically linked program has no loader at all, and Go
 * programs (the `ollama` CLI among them) make raw system calls that no libc
 * hook sees.  The command is resolved through PATH and #! scripts are
 * followed to their interpreter before the checks.
 *
 * Host names among the endpoints ("gpu-box:8000") are resolved here, before
 * the exec: the shim decides inside connect() and must not wait on DNS
 * there, so it understands addresses only.  The resolved list reaches it as
 * LLMGUARD_ENDPOINTS; a name that does not resolve stops us, since the
 * alternative is a server silently left unguarded. */
#include <arpa/inet.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "error.h"
#include "policy.h"
#include "policy_path.h"
#include "version.h"

#ifndef LG_LIBDIR
#define LG_LIBDIR "/usr/local/lib"
#endif
#define LIBNAME "libllmguard.so"

#ifdef __APPLE__
#define PRELOAD_VAR "DYLD_INSERT_LIBRARIES"
#else
#define PRELOAD_VAR "LD_PRELOAD"
#endif

static const char *prog = "llmguard-run";

static void usage(FILE *f)
{
    fprintf(f,
            "usage: llmguard-run [options] [--] command [args...]\n"
            "Run command with llmguard's shim preloaded: requests to local model servers\n"
            "are inspected and guarded according to the policy.\n\n"
            "  --policy FILE       policy file (default: $LLMGUARD_POLICY, then\n"
            "                      ~/.config/llmguard/policy.json, /etc/llmguard/policy.json,\n"
            "                      then the built-in default)\n"
            "  --mode MODE         enforce or monitor (overrides the policy)\n"
            "  --endpoint ADDR     guard this endpoint (repeatable): loopback, IP:PORT,\n"
            "                      [IPv6]:PORT, *:PORT, PORT (default: the policy's, or any\n"
            "                      loopback address)\n"
            "  --collector PATH    collector socket (default: see llmguard-collectord(8))\n"
            "  --debug             log the shim's decisions to stderr\n"
            "  --strict            refuse to run a program the shim cannot guard\n"
            "  --help, --version\n");
}

/* ==== Finding things ==== */

static int exe_dir(char *out, size_t n)
{
    char p[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", p, sizeof p - 1);
    if (k <= 0)
        return -1;
    p[k] = '\0';
    char *slash = strrchr(p, '/');
    if (!slash)
        return -1;
    *slash = '\0';
    return snprintf(out, n, "%s", p) < (int)n ? 0 : -1;
}

static int find_lib(char *out, size_t n)
{
    const char *env = getenv("LLMGUARD_LIB");
    if (env && *env && access(env, R_OK) == 0)
        return snprintf(out, n, "%s", env) < (int)n ? 0 : -1;
    char dir[PATH_MAX];
    if (exe_dir(dir, sizeof dir) == 0) {
        char cand[PATH_MAX + 64];
        snprintf(cand, sizeof cand, "%s/" LIBNAME, dir);
        if (access(cand, R_OK) == 0 && realpath(cand, out))
            return 0;
        snprintf(cand, sizeof cand, "%s/../lib/llmguard/" LIBNAME, dir);
        if (access(cand, R_OK) == 0 && realpath(cand, out))
            return 0;
    }
    snprintf(out, n, "%s/llmguard/" LIBNAME, LG_LIBDIR);
    return access(out, R_OK) == 0 ? 0 : -1;
}

/* Resolve a command name through PATH as execvp would. */
static int resolve(const char *cmd, char *out, size_t n)
{
    if (strchr(cmd, '/'))
        return snprintf(out, n, "%s", cmd) < (int)n && access(out, X_OK) == 0 ? 0 : -1;
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    for (const char *p = path;;) {
        const char *c = strchr(p, ':');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        snprintf(out, n, "%.*s%s%s", (int)len, len ? p : "", len ? "/" : "", cmd);
        struct stat st;
        if (stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0)
            return 0;
        if (!c)
            return -1;
        p = c + 1;
    }
}

/* ==== What the loader will do ==== */

static int warnings;

static void warn_target(const char *path, const char *what)
{
    fprintf(stderr, "%s: warning: %s %s: LD_PRELOAD cannot reach it, so its traffic to "
            "model servers is NOT guarded%s\n", prog, path, what,
            strstr(what, "Go") ? " (use a proxy in front of the server instead)" : "");
    warnings++;
}

/* Read n bytes at off; 0 or -1. */
static int pread_all(int fd, void *p, size_t n, off_t off)
{
    return pread(fd, p, n, off) == (ssize_t)n ? 0 : -1;
}

/* Inspect an ELF file: no PT_INTERP means statically linked; a
 * .go.buildinfo or .note.go.buildid section means Go. */
static void check_elf(const char *path, int fd)
{
    unsigned char id[EI_NIDENT];
    if (pread_all(fd, id, sizeof id, 0) || memcmp(id, ELFMAG, SELFMAG))
        return;
    int is64 = id[EI_CLASS] == ELFCLASS64;
    uint64_t phoff, shoff;
    unsigned phnum, phentsize, shnum, shentsize, shstrndx;
    uint16_t type;
    if (is64) {
        Elf64_Ehdr h;
        if (pread_all(fd, &h, sizeof h, 0))
            return;
        phoff = h.e_phoff, shoff = h.e_shoff, phnum = h.e_phnum, phentsize = h.e_phentsize;
        shnum = h.e_shnum, shentsize = h.e_shentsize, shstrndx = h.e_shstrndx, type = h.e_type;
    } else {
        Elf32_Ehdr h;
        if (pread_all(fd, &h, sizeof h, 0))
            return;
        phoff = h.e_phoff, shoff = h.e_shoff, phnum = h.e_phnum, phentsize = h.e_phentsize;
        shnum = h.e_shnum, shentsize = h.e_shentsize, shstrndx = h.e_shstrndx, type = h.e_type;
    }
    if (type != ET_EXEC && type != ET_DYN)
        return;
    int interp = 0;
    for (unsigned i = 0; i < phnum && i < 4096; i++) {
        uint32_t pt;
        if (pread_all(fd, &pt, sizeof pt, (off_t)(phoff + (uint64_t)i * phentsize)))
            return;
        if (pt == PT_INTERP)
            interp = 1;
    }
    int go = 0;
    if (shoff && shnum && shstrndx < shnum && shnum < 65536) {
        uint64_t stroff, strsize;
        if (is64) {
            Elf64_Shdr s;
            if (pread_all(fd, &s, sizeof s, (off_t)(shoff + (uint64_t)shstrndx * shentsize)))
                goto done;
            stroff = s.sh_offset, strsize = s.sh_size;
        } else {
            Elf32_Shdr s;
            if (pread_all(fd, &s, sizeof s, (off_t)(shoff + (uint64_t)shstrndx * shentsize)))
                goto done;
            stroff = s.sh_offset, strsize = s.sh_size;
        }
        if (strsize > (1u << 20))
            goto done;
        char *names = calloc(1, strsize + 1);
        if (!names || pread_all(fd, names, strsize, (off_t)stroff)) {
            free(names);
            goto done;
        }
        for (unsigned i = 0; i < shnum && !go; i++) {
            uint32_t nm;
            if (pread_all(fd, &nm, sizeof nm, (off_t)(shoff + (uint64_t)i * shentsize)))
                break;
            if (nm < strsize && (!strcmp(names + nm, ".go.buildinfo") ||
                                 !strcmp(names + nm, ".note.go.buildid")))
                go = 1;
        }
        free(names);
    }
done:
    if (go)
        warn_target(path, "is a Go program (Go makes raw system calls)");
    else if (!interp)
        warn_target(path, "is statically linked");
}

static void check_target(const char *path, int depth)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return;
    if (((st.st_mode & S_ISUID) && st.st_uid != geteuid()) ||
        ((st.st_mode & S_ISGID) && st.st_gid != getegid()))
        warn_target(path, (st.st_mode & S_ISUID) ? "is setuid" : "is setgid");
    else if (getxattr(path, "security.capability", NULL, 0) > 0)
        warn_target(path, "has file capabilities");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char line[512];
    ssize_t k = pread(fd, line, sizeof line - 1, 0);
    if (k > 2 && line[0] == '#' && line[1] == '!' && depth < 4) {
        close(fd);
        line[k] = '\0';
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        char *p = line + 2;
        while (*p == ' ' || *p == '\t')
            p++;
        char *interp = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        char *arg = NULL;
        if (*p) {
            *p++ = '\0';
            while (*p == ' ' || *p == '\t')
                p++;
            arg = *p ? p : NULL;
            if (arg)
                arg[strcspn(arg, " \t")] = '\0';
        }
        char resolved[PATH_MAX];
        const char *base = strrchr(interp, '/');
        if (base && !strcmp(base + 1, "env") && arg && arg[0] != '-') {
            if (resolve(arg, resolved, sizeof resolved) == 0)
                check_target(resolved, depth + 1);
        } else {
            check_target(interp, depth + 1);
        }
        return;
    }
    check_elf(path, fd);
    close(fd);
}

/* ==== Main ==== */

static int set_env(const char *k, const char *v)
{
    if (setenv(k, v, 1) != 0) {
        fprintf(stderr, "%s: setenv %s: %s\n", prog, k, strerror(errno));
        return -1;
    }
    return 0;
}

static const char *optarg_of(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    if (!strncmp(argv[*i], name, n) && argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (*i + 1 >= argc) {
        fprintf(stderr, "%s: %s needs an argument\n", prog, name);
        exit(2);
    }
    return argv[++*i];
}

/* Append s to out (a comma-separated list of size cap).  0 or -1 (full). */
static int list_add(char *out, size_t cap, const char *s)
{
    size_t l = strlen(out);
    if (l + strlen(s) + 2 > cap)
        return -1;
    snprintf(out + l, cap - l, "%s%s", l ? "," : "", s);
    return 0;
}

/* Add endpoint e to out, its host name (if it has one) replaced by every
 * address it resolves to.  Entries the shim reads as they are (loopback,
 * localhost, *, a port alone, IPv4 and IPv6 literals) are copied.
 * 1 when a name was resolved, 0 copied, -1 error (message printed). */
static int resolve_one(const char *e, char *out, size_t cap)
{
    char host[256];
    const char *colon = strchr(e, ':');
    if (e[0] == '[' || (colon && strchr(colon + 1, ':')))
        return list_add(out, cap, e) ? -1 : 0; /* IPv6 literal */
    size_t hl = colon ? (size_t)(colon - e) : strlen(e);
    if (hl >= sizeof host) {
        fprintf(stderr, "%s: endpoint '%s': host name too long\n", prog, e);
        return -1;
    }
    memcpy(host, e, hl);
    host[hl] = '\0';
    unsigned char a[16];
    int digits = hl > 0 && strspn(host, "0123456789") == hl;
    if (!hl || digits || !strcasecmp(host, "loopback") || !strcasecmp(host, "localhost") ||
        !strcmp(host, "*") || inet_pton(AF_INET, host, a) == 1)
        return list_add(out, cap, e) ? -1 : 0;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc) {
        fprintf(stderr, "%s: endpoint '%s': cannot resolve '%s': %s (not starting: its traffic "
                "would go unguarded)\n", prog, e, host, gai_strerror(rc));
        return -1;
    }
    int n = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        char ip[INET6_ADDRSTRLEN], item[INET6_ADDRSTRLEN + 16];
        const void *src = ai->ai_family == AF_INET
                              ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
                              : (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            !inet_ntop(ai->ai_family, src, ip, sizeof ip))
            continue;
        snprintf(item, sizeof item, ai->ai_family == AF_INET6 ? "[%s]%s%s" : "%s%s%s", ip,
                 colon ? ":" : "", colon ? colon + 1 : "");
        if (strstr(out, item)) /* getaddrinfo repeats addresses per protocol */
            continue;
        if (list_add(out, cap, item)) {
            freeaddrinfo(res);
            fprintf(stderr, "%s: too many endpoints\n", prog);
            return -1;
        }
        n++;
    }
    freeaddrinfo(res);
    if (!n) {
        fprintf(stderr, "%s: endpoint '%s': '%s' has no IPv4 or IPv6 address\n", prog, e, host);
        return -1;
    }
    return 1;
}

/* The endpoints the shim will use (--endpoint, else $LLMGUARD_ENDPOINTS,
 * else the policy's), host names resolved.  When a name was resolved the
 * result is exported as LLMGUARD_ENDPOINTS.  0 or -1 (message printed). */
static int resolve_endpoints(const char *given, const lg_policy *pol, int debug)
{
    char out[4096] = "", tmp[4096];
    int any = 0, rc = 0;
    if (given && *given) {
        snprintf(tmp, sizeof tmp, "%s", given);
        for (char *sp, *t = strtok_r(tmp, ", \t", &sp); t && rc >= 0; t = strtok_r(NULL, ", \t", &sp))
            if ((rc = resolve_one(t, out, sizeof out)) > 0)
                any = 1;
    } else {
        for (size_t k = 0; k < pol->nendpoints && rc >= 0; k++)
            if ((rc = resolve_one(pol->endpoints[k], out, sizeof out)) > 0)
                any = 1;
    }
    if (rc < 0)
        return -1;
    if (!any)
        return 0;
    if (debug)
        fprintf(stderr, "%s: endpoints %s\n", prog, out);
    return set_env("LLMGUARD_ENDPOINTS", out) ? -1 : 0;
}

static int is_opt(const char *a, const char *name)
{
    size_t n = strlen(name);
    return !strncmp(a, name, n) && (a[n] == '\0' || a[n] == '=');
}

int main(int argc, char **argv)
{
    const char *policy_file = NULL, *mode = NULL, *collector = NULL;
    char endpoints[4096] = "";
    int debug = 0, strict = 0, i;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) {
            i++;
            break;
        } else if (a[0] != '-' || !a[1]) {
            break;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--version")) {
            printf("llmguard-run %s\n", LG_VERSION);
            return 0;
        } else if (is_opt(a, "--policy")) {
            policy_file = optarg_of(argc, argv, &i, "--policy");
        } else if (is_opt(a, "--mode")) {
            mode = optarg_of(argc, argv, &i, "--mode");
            if (strcmp(mode, "enforce") && strcmp(mode, "monitor")) {
                fprintf(stderr, "%s: --mode must be enforce or monitor, not '%s'\n", prog, mode);
                return 2;
            }
        } else if (is_opt(a, "--endpoint")) {
            const char *e = optarg_of(argc, argv, &i, "--endpoint");
            size_t l = strlen(endpoints);
            if (l + strlen(e) + 2 > sizeof endpoints) {
                fprintf(stderr, "%s: too many endpoints\n", prog);
                return 2;
            }
            snprintf(endpoints + l, sizeof endpoints - l, "%s%s", l ? "," : "", e);
        } else if (is_opt(a, "--collector")) {
            collector = optarg_of(argc, argv, &i, "--collector");
        } else if (!strcmp(a, "--debug")) {
            debug = 1;
        } else if (!strcmp(a, "--strict")) {
            strict = 1;
        } else {
            fprintf(stderr, "%s: unknown option '%s' (see --help)\n", prog, a);
            return 2;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }

    /* The shim runs in the child's working directory, which may differ:
     * hand it an absolute path. */
    char policy_abs[PATH_MAX];
    if (policy_file) {
        if (!realpath(policy_file, policy_abs)) {
            fprintf(stderr, "%s: %s: %s\n", prog, policy_file, strerror(errno));
            return 2;
        }
        if (set_env("LLMGUARD_POLICY", policy_abs))
            return 2;
    }
    if (mode && set_env("LLMGUARD_MODE", mode))
        return 2;
    if (endpoints[0] && set_env("LLMGUARD_ENDPOINTS", endpoints))
        return 2;
    if (collector && set_env("LLMGUARD_COLLECTOR", collector))
        return 2;
    if (debug && set_env("LLMGUARD_DEBUG", "1"))
        return 2;

    /* Validate exactly what the shim will load (same lookup, same mode
     * override), so a broken policy stops us here with its diagnostic. */
    lg_policy *pol = NULL;
    char where[PATH_MAX], msg[1024];
    int rc = lg_policy_open(policy_file ? policy_abs : NULL, &pol, where, sizeof where, msg, sizeof msg);
    if (rc != LG_OK) {
        fprintf(stderr, "%s: %s\n", prog, msg[0] ? msg : lg_strerror(rc));
        return 2;
    }
    if (debug)
        fprintf(stderr, "%s: policy %s (%zu rules, %s)\n", prog, where[0] ? where : "<built-in>",
                pol->nrules, lg_mode_name(pol->mode));
    rc = resolve_endpoints(getenv("LLMGUARD_ENDPOINTS"), pol, debug);
    lg_policy_free(pol);
    if (rc)
        return 2;

    char lib[PATH_MAX];
    if (find_lib(lib, sizeof lib) != 0) {
        fprintf(stderr, "%s: cannot find " LIBNAME " (looked next to %s, in ../lib/llmguard/ and "
                "in " LG_LIBDIR "/llmguard/)\n", prog, argv[0]);
        return 2;
    }
    const char *old = getenv(PRELOAD_VAR);
    size_t need = strlen(lib) + (old ? strlen(old) : 0) + 2;
    char *preload = malloc(need);
    if (!preload)
        return 2;
    if (old && *old)
        snprintf(preload, need, "%s:%s", lib, old);
    else
        snprintf(preload, need, "%s", lib);
    if (set_env(PRELOAD_VAR, preload))
        return 2;

    char path[PATH_MAX];
    if (resolve(argv[i], path, sizeof path) != 0) {
        fprintf(stderr, "%s: %s: command not found\n", prog, argv[i]);
        return 127;
    }
    check_target(path, 0);
    if (warnings && strict) {
        fprintf(stderr, "%s: --strict: not running a program that cannot be guarded\n", prog);
        return 3;
    }
    execv(path, argv + i);
    int err = errno;
    fprintf(stderr, "%s: cannot run %s: %s\n", prog, argv[i], strerror(err));
    return err == ENOENT ? 127 : 126;
}
