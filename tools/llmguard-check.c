/* llmguard-check: run a policy over text, or over a recorded HTTP exchange,
 * offline.  Text mode answers "what would llmguard do with this prompt (or
 * answer)?"; transcript mode runs raw request/response bytes through the
 * same connection engine the shim uses and shows what would really be sent
 * each way, and the events.  Exit status: 0 nothing blocked, 1 something
 * was blocked, 2 usage, input or policy error. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "conn.h"
#include "error.h"
#include "json.h"
#include "policy.h"
#include "policy_path.h"
#include "scan.h"
#include "scope.h"
#include "vault.h"
#include "version.h"

#define MAX_INPUT (64u << 20)

static const char usage_text[] =
    "usage: llmguard-check [options] [FILE|-]\n"
    "       llmguard-check [options] --request REQ [--response RESP]\n"
    "\n"
    "Scan text with a policy (FILE or standard input), or run a raw HTTP\n"
    "request (and the server's raw response) through the engine.\n"
    "\n"
    "  -p, --policy FILE   policy file (default: $LLMGUARD_POLICY, then\n"
    "                      ~/.config/llmguard/policy.json, /etc/llmguard/policy.json,\n"
    "                      then the built-in policy)\n"
    "      --on WHERE      text mode: prompt (default) or response\n"
    "      --role ROLE     text mode: system, user (default), assistant, tool, other\n"
    "      --rewrite       text mode: print the text as it would be forwarded\n"
    "      --system TEXT   text mode: the system prompt sent with the text; its\n"
    "                      restrictions are checked as the engine does (scope check)\n"
    "      --system-file FILE  the same, read from FILE\n"
    "      --request FILE  raw HTTP request bytes to run through the engine\n"
    "      --response FILE raw HTTP response bytes answering that request\n"
    "      --split N       feed transcripts in pieces of N bytes (default: whole)\n"
    "  -j, --json          machine-readable output\n"
    "      --check-policy  only load and validate the policy\n"
    "  -h, --help          this text\n"
    "  -V, --version       print the version\n"
    "\n"
    "Exit status: 0 nothing blocked, 1 blocked, 2 usage, input or policy error.\n";

static int read_all(const char *path, char **out, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "llmguard-check: %s: %s\n", path, strerror(errno));
        return -1;
    }
    lg_buf b;
    lg_buf_init(&b, MAX_INPUT);
    char tmp[65536];
    size_t r;
    int rc = 0;
    while ((r = fread(tmp, 1, sizeof tmp, f)) > 0) {
        if (lg_buf_append(&b, tmp, r) != LG_OK) {
            fprintf(stderr, "llmguard-check: %s: larger than %u MiB\n", path, MAX_INPUT >> 20);
            rc = -1;
            break;
        }
    }
    if (ferror(f)) {
        fprintf(stderr, "llmguard-check: %s: %s\n", path, strerror(errno));
        rc = -1;
    }
    if (f != stdin)
        fclose(f);
    if (rc) {
        lg_buf_free(&b);
        return rc;
    }
    *out = lg_buf_steal(&b, len);
    if (!*out) {
        *out = strdup("");
        *len = 0;
    }
    return *out ? 0 : -1;
}

static unsigned parse_role(const char *s)
{
    static const struct { const char *n; unsigned r; } m[] = {
        { "system", LG_ROLE_SYSTEM }, { "user", LG_ROLE_USER },
        { "assistant", LG_ROLE_ASSISTANT }, { "tool", LG_ROLE_TOOL }, { "other", LG_ROLE_OTHER },
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        if (strcmp(m[i].n, s) == 0)
            return m[i].r;
    return 0;
}

/* 1-based line and column of a byte offset, for humans. */
static void line_col(const char *t, size_t off, size_t *line, size_t *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off; i++) {
        if (t[i] == '\n') {
            (*line)++;
            *col = 1;
        } else if (((unsigned char)t[i] & 0xC0) != 0x80) {
            (*col)++;
        }
    }
}

static void json_str(FILE *o, const char *s, size_t n)
{
    lg_buf b;
    lg_buf_init(&b, n * 6 + 16);
    if (lg_json_escape(s, n, 0, &b) == LG_OK)
        fwrite(b.data, 1, b.len, o);
    lg_buf_free(&b);
}

/* The scope check for text mode: the restrictions read from the system
 * prompt, and the finding lg_conn would add (scope.h).  *restr is the
 * restriction that matched, or -1.  Returns the finding's action or an
 * error. */
static int scope_step(const lg_policy *pol, lg_scope *sc, const char *system, unsigned role,
                      unsigned flags, const char *text, size_t n, lg_findings *f, int *restr)
{
    *restr = -1;
    (void)lg_scope_extract(sc, system, strlen(system));
    lg_scope_finish(sc);
    int a = lg_scope_scan(pol, sc, role, flags, text, n, f);
    lg_scope_hit h;
    if (a > LG_ACT_ALLOW && lg_scope_match(sc, text, n, &h))
        *restr = h.restr;
    return a;
}

static int text_mode(const lg_policy *pol, const char *text, size_t n, unsigned on,
                     unsigned role, int json, int rewrite, const char *system)
{
    lg_scanner *sc = lg_scanner_new(pol);
    lg_vault *v = lg_vault_new(10000);
    if (!sc || !v) {
        fprintf(stderr, "llmguard-check: out of memory\n");
        return 2;
    }
    lg_buf out;
    lg_buf_init(&out, (size_t)n * 4 + 65536);
    lg_findings f;
    lg_findings_init(&f, 100000);
    unsigned flags = pol->mode == LG_MODE_ENFORCE ? LG_SCAN_ENFORCE : 0;
    int a = lg_scan_text(sc, on, role, flags, text, n, v, &out, &f);
    lg_scope *scope = NULL;
    int restr = -1;
    if (a >= 0 && system) {
        if (!(scope = calloc(1, sizeof *scope))) {
            fprintf(stderr, "llmguard-check: out of memory\n");
            return 2;
        }
        int b = scope_step(pol, scope, system, role, flags, text, n, &f, &restr);
        a = b < 0 ? b : a;
    }
    if (a < 0) {
        fprintf(stderr, "llmguard-check: scan failed: %s\n", lg_strerror(a));
        free(scope);
        return 2;
    }
    /* What was done (enforce), or what the rule asks for (monitor: "would
     * have"); they differ for findings in decoded text, never rewritten. */
    int monitor = pol->mode == LG_MODE_MONITOR;
    int strongest = LG_ACT_ALLOW;
    for (size_t i = 0; i < f.n; i++) {
        int act = monitor ? f.v[i].rule->action : f.v[i].action;
        if (!f.v[i].rule->restore && act > strongest)
            strongest = act;
    }
    int blocked = strongest == LG_ACT_BLOCK;
    /* A blocked text is forwarded as nothing, whichever step blocked it:
     * the rules leave out empty, the scope check never rewrites. */
    if (blocked && !monitor)
        out.len = 0;
    if (json) {
        printf("{\"decision\":\"%s\",\"mode\":\"%s\",\"findings\":[", lg_action_name(strongest),
               lg_mode_name(pol->mode));
        for (size_t i = 0; i < f.n; i++) {
            const lg_finding *x = &f.v[i];
            size_t line, col;
            line_col(text, x->start, &line, &col);
            printf("%s{\"rule\":", i ? "," : "");
            json_str(stdout, x->rule->id, strlen(x->rule->id));
            printf(",\"category\":");
            json_str(stdout, x->rule->category, strlen(x->rule->category));
            printf(",\"severity\":\"%s\",\"action\":\"%s\",\"start\":%zu,\"end\":%zu,"
                   "\"line\":%zu,\"column\":%zu}",
                   lg_severity_name(x->rule->severity),
                   lg_action_name(monitor ? x->rule->action : x->action), x->start, x->end, line,
                   col);
        }
        printf("],\"output\":");
        json_str(stdout, out.data ? out.data : "", out.len);
        if (scope) {
            printf(",\"restrictions\":[");
            for (size_t i = 0; i < scope->nrestr; i++) {
                printf("%s", i ? "," : "");
                json_str(stdout, scope->what[i], strlen(scope->what[i]));
            }
            printf("],\"restriction\":%d", restr);
        }
        printf("}\n");
    } else if (rewrite) {
        fwrite(out.data ? out.data : "", 1, out.len, stdout);
        for (size_t i = 0; blocked && !monitor && i < f.n; i++)
            if (f.v[i].action == LG_ACT_BLOCK) {
                fprintf(stderr, "llmguard-check: blocked, nothing forwarded: %s (rule %s)\n",
                        f.v[i].rule->message ? f.v[i].rule->message : "", f.v[i].rule->id);
                break;
            }
    } else {
        if (scope) {
            printf("system prompt: %zu restriction%s read%s", scope->nrestr,
                   scope->nrestr == 1 ? "" : "s", scope->nrestr ? ":" : "");
            for (size_t i = 0; i < scope->nrestr; i++)
                printf("%s %s", i ? ";" : "", scope->what[i]);
            printf("\n");
        }
        for (size_t i = 0; i < f.n; i++) {
            const lg_finding *x = &f.v[i];
            size_t line, col;
            line_col(text, x->start, &line, &col);
            printf("%zu:%zu: %s [%s, %s] %s", line, col, x->rule->id,
                   lg_severity_name(x->rule->severity),
                   lg_action_name(monitor ? x->rule->action : x->action),
                   x->rule->message ? x->rule->message : "");
            if (x->rule->scope && scope && restr >= 0)
                printf(" (restriction: %s)", scope->what[restr]);
            printf("\n");
        }
        printf("decision: %s (%zu finding%s%s)\n", lg_action_name(strongest), f.n,
               f.n == 1 ? "" : "s", monitor ? ", monitor mode" : "");
    }
    free(scope);
    lg_findings_free(&f);
    lg_buf_free(&out);
    lg_vault_free(v);
    lg_scanner_free(sc);
    return blocked ? 1 : 0;
}

static uint64_t wall_us(void *ud)
{
    (void)ud;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* A fresh canary marker for this run (used when the policy asks for one). */
static void make_canary(char out[LG_CANARY_SIZE])
{
    unsigned char r[8] = { 0 };
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        memcpy(r, &ts.tv_nsec, sizeof ts.tv_nsec < sizeof r ? sizeof ts.tv_nsec : sizeof r);
    }
    lg_canary_format(r, out);
}

struct collect {
    lg_buf events;  /* one JSON event per line */
    int blocked;
};

static void on_event(void *ud, const char *json, size_t n)
{
    struct collect *c = ud;
    lg_buf_append(&c->events, json, n);
    lg_buf_append(&c->events, "\n", 1);
    if (strstr(json, "\"decision\":\"block\""))
        c->blocked = 1;
}

static int feed(lg_conn *conn, int client, const char *p, size_t n, size_t split,
                lg_buf *to_server, lg_buf *to_client)
{
    size_t step = split ? split : (n ? n : 1);
    for (size_t off = 0; off < n; off += step) {
        size_t k = n - off < step ? n - off : step;
        int rc = client ? lg_conn_from_client(conn, p + off, k, to_server, to_client)
                        : lg_conn_from_server(conn, p + off, k, to_client);
        if (rc)
            return rc;
    }
    return client ? lg_conn_client_eof(conn, to_server, to_client) : lg_conn_server_eof(conn, to_client);
}

static int transcript_mode(const lg_policy *pol, const char *req, size_t rn, const char *resp,
                           size_t sn, int has_resp, size_t split, int json)
{
    struct collect col;
    lg_buf_init(&col.events, 1u << 26);
    col.blocked = 0;
    lg_vault *v = lg_vault_new(10000);
    lg_conn_cfg cfg = { 0 };
    cfg.policy = pol;
    cfg.vault = v;
    cfg.endpoint = "transcript";
    cfg.on_event = on_event;
    cfg.ud = &col;
    cfg.now_us = wall_us;
    cfg.id_prefix = "check";
    cfg.pid = (int)getpid();
    cfg.uid = (int)getuid();
    cfg.exe = "llmguard-check";
    char canary[LG_CANARY_SIZE];
    make_canary(canary);
    cfg.canary = canary;
    lg_conn *conn = v ? lg_conn_new(&cfg) : NULL;
    if (!conn) {
        fprintf(stderr, "llmguard-check: out of memory\n");
        return 2;
    }
    lg_buf to_server, to_client;
    lg_buf_init(&to_server, 1u << 28);
    lg_buf_init(&to_client, 1u << 28);
    int rc = lg_conn_from_client(conn, "", 0, &to_server, &to_client);
    size_t step = split ? split : (rn ? rn : 1);
    for (size_t off = 0; !rc && off < rn; off += step) {
        size_t k = rn - off < step ? rn - off : step;
        rc = lg_conn_from_client(conn, req + off, k, &to_server, &to_client);
    }
    if (!rc && has_resp && !lg_conn_closing(conn))
        rc = feed(conn, 0, resp, sn, split, &to_server, &to_client);
    if (rc) {
        fprintf(stderr, "llmguard-check: engine error: %s\n", lg_strerror(rc));
        return 2;
    }
    if (json) {
        printf("{\"to_server\":");
        json_str(stdout, to_server.data ? to_server.data : "", to_server.len);
        printf(",\"to_client\":");
        json_str(stdout, to_client.data ? to_client.data : "", to_client.len);
        printf(",\"events\":[");
        /* events are JSON lines: join them with commas */
        const char *e = col.events.data ? col.events.data : "";
        size_t left = col.events.len;
        int first = 1;
        while (left) {
            const char *nl = memchr(e, '\n', left);
            size_t k = nl ? (size_t)(nl - e) : left;
            printf("%s%.*s", first ? "" : ",", (int)k, e);
            first = 0;
            e += k + (nl ? 1 : 0);
            left -= k + (nl ? 1 : 0);
        }
        printf("]}\n");
    } else {
        printf("--- to server (%zu bytes) ---\n", to_server.len);
        fwrite(to_server.data ? to_server.data : "", 1, to_server.len, stdout);
        printf("\n--- to client (%zu bytes) ---\n", to_client.len);
        fwrite(to_client.data ? to_client.data : "", 1, to_client.len, stdout);
        printf("\n--- events ---\n");
        fwrite(col.events.data ? col.events.data : "", 1, col.events.len, stdout);
    }
    int blocked = col.blocked;
    lg_conn_free(conn);
    lg_vault_free(v);
    lg_buf_free(&to_server);
    lg_buf_free(&to_client);
    lg_buf_free(&col.events);
    return blocked ? 1 : 0;
}

int main(int argc, char **argv)
{
    enum { O_ON = 256, O_ROLE, O_REWRITE, O_REQ, O_RESP, O_SPLIT, O_CHECK, O_SYSTEM, O_SYSFILE };
    static const struct option opts[] = {
        { "policy", required_argument, NULL, 'p' },
        { "json", no_argument, NULL, 'j' },
        { "on", required_argument, NULL, O_ON },
        { "role", required_argument, NULL, O_ROLE },
        { "rewrite", no_argument, NULL, O_REWRITE },
        { "request", required_argument, NULL, O_REQ },
        { "response", required_argument, NULL, O_RESP },
        { "split", required_argument, NULL, O_SPLIT },
        { "check-policy", no_argument, NULL, O_CHECK },
        { "system", required_argument, NULL, O_SYSTEM },
        { "system-file", required_argument, NULL, O_SYSFILE },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    const char *policy = NULL, *reqf = NULL, *respf = NULL, *system = NULL, *sysf = NULL;
    unsigned on = LG_ON_PROMPT, role = LG_ROLE_USER;
    int json = 0, rewrite = 0, check_only = 0;
    size_t split = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "p:jhV", opts, NULL)) != -1) {
        switch (ch) {
        case 'p': policy = optarg; break;
        case 'j': json = 1; break;
        case O_ON:
            if (strcmp(optarg, "prompt") == 0) {
                on = LG_ON_PROMPT;
            } else if (strcmp(optarg, "response") == 0) {
                on = LG_ON_RESPONSE;
                role = LG_ROLE_ASSISTANT;
            } else {
                fprintf(stderr, "llmguard-check: --on: expected prompt or response\n");
                return 2;
            }
            break;
        case O_ROLE:
            if (!(role = parse_role(optarg))) {
                fprintf(stderr, "llmguard-check: --role: unknown role '%s'\n", optarg);
                return 2;
            }
            break;
        case O_REWRITE: rewrite = 1; break;
        case O_REQ: reqf = optarg; break;
        case O_RESP: respf = optarg; break;
        case O_SPLIT: {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 1) {
                fprintf(stderr, "llmguard-check: --split: expected a positive number\n");
                return 2;
            }
            split = (size_t)v;
            break;
        }
        case O_CHECK: check_only = 1; break;
        case O_SYSTEM: system = optarg; break;
        case O_SYSFILE: sysf = optarg; break;
        case 'h': fputs(usage_text, stdout); return 0;
        case 'V': printf("llmguard-check %s\n", LG_VERSION); return 0;
        default: fputs(usage_text, stderr); return 2;
        }
    }
    if (respf && !reqf) {
        fprintf(stderr, "llmguard-check: --response needs the --request it answers\n");
        return 2;
    }
    if (reqf && optind < argc) {
        fprintf(stderr, "llmguard-check: give either a text FILE or --request, not both\n");
        return 2;
    }
    if (optind + 1 < argc) {
        fputs(usage_text, stderr);
        return 2;
    }
    if (system && sysf) {
        fprintf(stderr, "llmguard-check: give either --system or --system-file, not both\n");
        return 2;
    }
    if ((system || sysf) && (reqf || on != LG_ON_PROMPT || role == LG_ROLE_SYSTEM)) {
        /* say which of the three it is */
        fprintf(stderr, "llmguard-check: --system checks a prompt against the system prompt "
                        "sent with it, %s\n",
                reqf ? "and a --request carries its own system prompt"
                : on != LG_ON_PROMPT ? "not an answer: drop --on response"
                                     : "so the text cannot have --role system itself");
        return 2;
    }
    char *sysbuf = NULL;
    if (sysf) {
        size_t sl;
        if (read_all(sysf, &sysbuf, &sl))
            return 2;
        if (memchr(sysbuf, '\0', sl)) {
            fprintf(stderr, "llmguard-check: %s: holds a NUL byte\n", sysf);
            free(sysbuf);
            return 2;
        }
        system = sysbuf;
    }
    lg_policy *pol;
    char where[4096], msg[1024];
    if (lg_policy_open(policy, &pol, where, sizeof where, msg, sizeof msg) != LG_OK) {
        fprintf(stderr, "llmguard-check: %s\n", msg);
        free(sysbuf);
        return 2;
    }
    int rc;
    if (check_only) {
        printf("%s: ok (%zu rules, mode %s)\n", where[0] ? where : "<built-in>", pol->nrules,
               lg_mode_name(pol->mode));
        rc = 0;
    } else if (reqf) {
        char *req = NULL, *resp = NULL;
        size_t rn = 0, sn = 0;
        if (read_all(reqf, &req, &rn) || (respf && read_all(respf, &resp, &sn))) {
            rc = 2;
        } else {
            rc = transcript_mode(pol, req, rn, resp, sn, respf != NULL, split, json);
        }
        free(req);
        free(resp);
    } else {
        char *text = NULL;
        size_t n = 0;
        if (read_all(optind < argc ? argv[optind] : "-", &text, &n))
            rc = 2;
        else
            rc = text_mode(pol, text, n, on, role, json, rewrite, system);
        free(text);
    }
    free(sysbuf);
    lg_policy_free(pol);
    return rc;
}
