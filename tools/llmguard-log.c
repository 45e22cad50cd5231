/* llmguard-log: reads the collector's JSONL files directly (so it works
 * whether or not the collector runs) and answers "what happened":
 *   tail [-n N] [-f]   the newest events, then follow the current file
 *                      across rotations
 *   query              matching events in time order, across rotated files
 *   stats              counts by decision, rule, program and model, with
 *                      bars
 *   status             the collector's status file and whether it runs
 * Filters: --since/--until (durations or timestamps), --decision, --rule
 * (glob over finding rules), --pid, --exe (glob over the path or its
 * basename), --model, --api (globs).  --json gives JSONL (query, tail) or
 * a JSON object (stats, status) for scripts; on a terminal the table is
 * aligned and coloured.  Lines that do not parse (a torn last line after a
 * crash) are skipped.
 *
 * Events the collector has not stored yet (it is not running, or has not
 * scanned the spool since) are still in the emitters' spool files
 * (shim/emit.h).  They are read too, read-only and without a lock: the
 * collector owns ingestion, and taking the writers' flock would only make
 * them start new files.  Only complete lines are taken (a writer appends
 * a whole line with one writev, so a line without its newline is still
 * being written).  Each is stamped the way the collector will store it
 * (pid from the file name, uid/gid from its owner, "src":"spool") and
 * marked "pending":true.  The spool is read before the log files, so an
 * event ingested while we read is in one or the other; one found in both
 * (stored, spool file not yet unlinked) is shown once, as stored.  A
 * missing log directory is an empty store.
 *
 * Ownership: everything allocated here (file list, records, pending
 * events, their id index) lives until the process exits. */
#include "common/logfiles.h"
#include "emit.h"
#include "version.h"

#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ==== Options ==== */
static struct {
    char dir[4096];
    char spool[4096]; /* spool directory read for pending events; "" none */
    int json, color, utf8;
    int fit;          /* rows after the header: cut cells to column width */
    int64_t since, until;
    int has_since, has_until;
    char *decision;   /* comma list */
    char *rule, *exe, *model, *api;
    long pid;         /* -1: any */
    long n;           /* tail count */
    int follow;
    long limit;       /* query: at most this many (0: all) */
    int top;          /* stats: rows per section */
} opt = {.pid = -1, .n = 10, .top = 10};

/* ==== Event access ==== */
static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const char *exe_of(const cJSON *e)
{
    const char *x = jstr(e, "exe");
    return x ? x : jstr(e, "exe_claimed");
}

static const char *base(const char *p)
{
    const char *s = p ? strrchr(p, '/') : NULL;
    return s ? s + 1 : p;
}

static int in_list(const char *list, const char *v)
{
    if (!v)
        return 0;
    size_t vl = strlen(v);
    for (const char *p = list; *p;) {
        const char *c = strchr(p, ',');
        size_t l = c ? (size_t)(c - p) : strlen(p);
        if (l == vl && !strncmp(p, v, l))
            return 1;
        p += l + (c ? 1 : 0);
    }
    return 0;
}

static int glob(const char *pat, const char *v)
{
    return v && fnmatch(pat, v, 0) == 0;
}

/* Quick check on the raw line (time range) before the full parse. */
static int pre_match(const char *line, size_t n, int64_t *ts)
{
    const char *v;
    size_t vl;
    *ts = 0;
    if (lg_line_field(line, n, "ts", 256, &v, &vl) == 0)
        lg_parse_rfc3339(v, vl, ts);
    if (opt.has_since && *ts < opt.since)
        return 0;
    if (opt.has_until && *ts >= opt.until)
        return 0;
    return 1;
}

static int match(const cJSON *e)
{
    if (!cJSON_IsObject(e))
        return 0;
    if (opt.decision && !in_list(opt.decision, jstr(e, "decision")))
        return 0;
    if (opt.pid >= 0) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "pid");
        if (!cJSON_IsNumber(p) || (long)p->valuedouble != opt.pid)
            return 0;
    }
    if (opt.exe) {
        const char *x = exe_of(e);
        if (!glob(opt.exe, x) && !glob(opt.exe, base(x)))
            return 0;
    }
    if (opt.model && !glob(opt.model, jstr(e, "model")))
        return 0;
    if (opt.api && !glob(opt.api, jstr(e, "api")))
        return 0;
    if (opt.rule) {
        const cJSON *f, *fs = cJSON_GetObjectItemCaseSensitive(e, "findings");
        int any = 0;
        cJSON_ArrayForEach(f, fs) any |= glob(opt.rule, jstr(f, "rule"));
        if (!any)
            return 0;
    }
    return 1;
}

/* ==== Table output ==== */
/* DIRECTION tells a request from its answer: one guarded exchange gives
 * two events, and without it they read as duplicates. */
#define NCOL 8
static const char *col_name[NCOL] = {"TIME", "DECISION", "DIRECTION", "PID", "PROGRAM",
                                     "API", "MODEL", "RULES"};
static int col_w[NCOL] = {20, 8, 9, 7, 16, 14, 12, 0};
#define COL_API 5
/* Longest API name in core/api.c ("llamacpp.completion"); tail -f sizes
 * the API column for it, since rows arrive after the header is out. */
#define API_NAME_MAX 19

static const char *dec_color(const char *d)
{
    if (!opt.color || !d)
        return "";
    if (!strcmp(d, "block")) return "\033[1;31m";
    if (!strcmp(d, "redact")) return "\033[33m";
    if (!strcmp(d, "log")) return "\033[36m";
    if (!strcmp(d, "allow")) return "\033[32m";
    if (!strcmp(d, "error")) return "\033[35m";
    return "";
}

static void cells(const cJSON *e, char c[NCOL][256])
{
    const char *ts = jstr(e, "ts");
    /* 2025-01-02T03:04:05.123456Z -> 2025-01-02 03:04:05Z */
    if (ts && strlen(ts) >= 19)
        snprintf(c[0], 256, "%.10s %.8sZ", ts, ts + 11);
    else
        snprintf(c[0], 256, "%s", ts ? ts : "-");
    snprintf(c[1], 256, "%s", jstr(e, "decision") ? jstr(e, "decision") : "-");
    snprintf(c[2], 256, "%s", jstr(e, "direction") ? jstr(e, "direction") : "-");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "pid");
    if (cJSON_IsNumber(p))
        snprintf(c[3], 256, "%.0f", p->valuedouble);
    else
        strcpy(c[3], "-");
    snprintf(c[4], 256, "%s", exe_of(e) ? base(exe_of(e)) : "-");
    snprintf(c[5], 256, "%s", jstr(e, "api") ? jstr(e, "api") : "-");
    snprintf(c[6], 256, "%s", jstr(e, "model") ? jstr(e, "model") : "-");
    c[7][0] = 0;
    const cJSON *f, *fs = cJSON_GetObjectItemCaseSensitive(e, "findings");
    size_t l = 0;
    cJSON_ArrayForEach(f, fs)
    {
        /* One rule often has several findings in an event (each match, or
         * each restored vault token): list it once. */
        const char *r = jstr(f, "rule");
        int seen = 0;
        for (const cJSON *g = fs ? fs->child : NULL; r && g != f && !seen; g = g->next) {
            const char *q = jstr(g, "rule");
            seen = q && !strcmp(q, r);
        }
        if (r && !seen && l + strlen(r) + 2 < 256)
            l += (size_t)snprintf(c[7] + l, 256 - l, "%s%s", l ? "," : "", r);
    }
    if (!l)
        strcpy(c[7], "-");
}

static void widen(const cJSON *e)
{
    char c[NCOL][256];
    cells(e, c);
    for (int i = 0; i < NCOL - 1; i++)
        if ((int)strlen(c[i]) > col_w[i])
            col_w[i] = (int)strlen(c[i]);
}

static void print_header(void)
{
    if (opt.json)
        return;
    for (int i = 0; i < NCOL - 1; i++)
        printf("%-*s  ", col_w[i], col_name[i]);
    printf("%s\n", col_name[NCOL - 1]);
    if (opt.color)
        fflush(stdout);
}

static void print_event(const cJSON *e, const char *line, size_t n)
{
    if (opt.json) {
        fwrite(line, 1, n, stdout);
        fputc('\n', stdout);
        return;
    }
    char c[NCOL][256];
    cells(e, c);
    if (opt.fit) /* keep the columns under the header already printed */
        for (int i = 0; i < NCOL - 1; i++)
            if ((int)strlen(c[i]) > col_w[i] && col_w[i] > 1) {
                int k = col_w[i] - 1;
                while (k > 0 && (c[i][k] & 0xc0) == 0x80) /* not mid-UTF-8 */
                    k--;
                strcpy(c[i] + k, "~");
            }
    for (int i = 0; i < NCOL; i++) {
        const char *pre = i == 1 ? dec_color(c[1]) : "";
        const char *post = *pre ? "\033[0m" : "";
        if (i == NCOL - 1)
            printf("%s\n", c[i]);
        else
            printf("%s%-*s%s  ", pre, col_w[i], c[i], post);
    }
}

/* ==== Reading files ==== */
typedef struct {
    int64_t ts;
    int file;
    long long off;
    size_t len;
    size_t seq;
} rec;

typedef int (*line_fn)(int file, long long off, const char *line, size_t n,
                       void *ctx);

static char **files; /* events files, oldest first (lg_logfiles_list) */
static int nfiles;

/* ==== Pending events (still in spool files) ==== */
typedef struct {
    char *line;  /* stamped JSON line without newline, malloc'd */
    size_t len;
    char *id;    /* its id, malloc'd */
    int64_t ts;
    size_t seq;  /* read order, to keep the sort stable */
    int skip;    /* also in the log (stored) or a repeat: not shown */
} pending;
static pending *pend;
static size_t npend, cappend;
static size_t *pidx;   /* open-addressing id index: pend index + 1, 0 empty */
static size_t pidx_cap; /* power of two > 2 * npend */

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q) {
        fprintf(stderr, "llmguard-log: out of memory\n");
        exit(1);
    }
    return q;
}

static size_t id_hash(const char *s, size_t n)
{
    size_t h = 14695981039346656037ULL & SIZE_MAX; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * (size_t)1099511628211ULL;
    return h;
}

/* The pending event with this id, or -1. */
static long pend_find(const char *id, size_t n)
{
    if (!pidx_cap)
        return -1;
    for (size_t h = id_hash(id, n) & (pidx_cap - 1);; h = (h + 1) & (pidx_cap - 1)) {
        if (!pidx[h])
            return -1;
        const pending *p = &pend[pidx[h] - 1];
        if (strlen(p->id) == n && !memcmp(p->id, id, n))
            return (long)(pidx[h] - 1);
    }
}

/* The collector's rule for ids (it drops events with others). */
static int valid_id(const char *s, size_t n)
{
    if (n == 0 || n > 96)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= 'A' && s[i] <= 'Z') || strchr("-_.:", s[i])))
            return 0;
    return 1;
}

/* One spool line: checked as the collector checks it, and stamped as it
 * would be stored from a spool file (no verified exe: the sender's claim
 * stays as exe_claimed), plus "pending":true. */
static void spool_line(const char *data, size_t n, long pid, long uid, long gid)
{
    if (n > LG_EMIT_MAX_EVENT || !lg_utf8_valid(data, n))
        return;
    const char *end = NULL;
    cJSON *in = cJSON_ParseWithLengthOpts(data, n, &end, 0);
    while (in && end && end < data + n && strchr(" \t\r", *end))
        end++;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(in, "id");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, "v");
    if (!in || end != data + n || !cJSON_IsObject(in) || !cJSON_IsString(id) ||
        !cJSON_IsNumber(v) || !valid_id(id->valuestring, strlen(id->valuestring))) {
        cJSON_Delete(in);
        return;
    }
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(in, "ts");
    int64_t tus;
    char tsbuf[32];
    int ts_ok = cJSON_IsString(ts) &&
                lg_parse_rfc3339(ts->valuestring, strlen(ts->valuestring), &tus) == 0;
    /* The collector stamps an unusable time with the time it ingests. */
    lg_emit_format_ts(tsbuf, ts_ok ? tus : lg_now_us());
    const cJSON *cpid = cJSON_GetObjectItemCaseSensitive(in, "pid");
    const cJSON *cuid = cJSON_GetObjectItemCaseSensitive(in, "uid");
    const cJSON *cgid = cJSON_GetObjectItemCaseSensitive(in, "gid");
    const cJSON *cexe = cJSON_GetObjectItemCaseSensitive(in, "exe");
    cJSON *out = cJSON_CreateObject();
    cJSON_AddNumberToObject(out, "v", v->valuedouble);
    cJSON_AddStringToObject(out, "id", id->valuestring);
    cJSON_AddStringToObject(out, "ts", tsbuf);
    if (!ts_ok && cJSON_IsString(ts))
        cJSON_AddStringToObject(out, "ts_claimed", ts->valuestring);
    cJSON_AddNumberToObject(out, "pid", (double)pid);
    cJSON_AddNumberToObject(out, "uid", (double)uid);
    cJSON_AddNumberToObject(out, "gid", (double)gid);
    if (cJSON_IsString(cexe))
        cJSON_AddStringToObject(out, "exe_claimed", cexe->valuestring);
    if (cJSON_IsNumber(cpid) && cpid->valuedouble != (double)pid)
        cJSON_AddNumberToObject(out, "pid_claimed", cpid->valuedouble);
    if (cJSON_IsNumber(cuid) && cuid->valuedouble != (double)uid)
        cJSON_AddNumberToObject(out, "uid_claimed", cuid->valuedouble);
    if (cJSON_IsNumber(cgid) && cgid->valuedouble != (double)gid)
        cJSON_AddNumberToObject(out, "gid_claimed", cgid->valuedouble);
    cJSON_AddStringToObject(out, "src", "spool");
    cJSON_AddBoolToObject(out, "pending", 1);
    static const char *const stamped[] = {"v", "id", "ts", "pid", "uid", "gid",
        "exe", "exe_claimed", "pid_claimed", "uid_claimed", "gid_claimed",
        "ts_claimed", "src", "pending", NULL};
    for (cJSON *it = in->child, *next; it; it = next) {
        next = it->next;
        int st = !it->string;
        for (int i = 0; !st && stamped[i]; i++)
            st = !strcmp(stamped[i], it->string);
        if (st)
            continue;
        cJSON_DetachItemViaPointer(in, it);
        cJSON_AddItemToObject(out, it->string, it);
    }
    char *line = cJSON_PrintUnformatted(out);
    char *idc = strdup(id->valuestring);
    cJSON_Delete(out);
    cJSON_Delete(in);
    if (!line || !idc) {
        fprintf(stderr, "llmguard-log: out of memory\n");
        exit(1);
    }
    if (npend == cappend) {
        cappend = cappend ? cappend * 2 : 256;
        pend = xrealloc(pend, cappend * sizeof *pend);
    }
    pend[npend] = (pending){line, strlen(line), idc, ts_ok ? tus : lg_now_us(), npend, 0};
    npend++;
}

/* Every complete line of one spool file (<pid>-<start µs>-<n>.spool). */
static void spool_file(int dfd, const char *name, void *ctx)
{
    (void)ctx;
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return;
    struct stat st;
    FILE *f = NULL;
    /* The collector ingests only our own files (unless root): the same. */
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        (geteuid() != 0 && st.st_uid != geteuid()) || !(f = fdopen(fd, "r"))) {
        close(fd);
        return;
    }
    long pid = strtol(name, NULL, 10);
    char *line = NULL;
    size_t cap = 0;
    ssize_t k;
    while ((k = getline(&line, &cap, f)) > 0) {
        if (line[k - 1] != '\n') /* still being written, or torn */
            break;
        if (k > 1)
            spool_line(line, (size_t)k - 1, pid, (long)st.st_uid, (long)st.st_gid);
    }
    free(line);
    fclose(f);
}

static int cmp_pend(const void *a, const void *b)
{
    const pending *x = a, *y = b;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Reads the spool directory (a missing or unreadable one has nothing
 * pending: the system spool is not listable by users), orders the events
 * by time and indexes their ids; a repeated id is shown once, as the
 * collector would store it once. */
static void load_spool(void)
{
    if (!opt.spool[0])
        return;
    lg_spool_each(opt.spool, spool_file, NULL);
    if (!npend)
        return;
    qsort(pend, npend, sizeof *pend, cmp_pend);
    for (pidx_cap = 64; pidx_cap <= 2 * npend; pidx_cap *= 2)
        ;
    pidx = calloc(pidx_cap, sizeof *pidx);
    if (!pidx) {
        fprintf(stderr, "llmguard-log: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < npend; i++) {
        size_t n = strlen(pend[i].id);
        if (pend_find(pend[i].id, n) >= 0) {
            pend[i].skip = 1;
            continue;
        }
        size_t h = id_hash(pend[i].id, n) & (pidx_cap - 1);
        while (pidx[h])
            h = (h + 1) & (pidx_cap - 1);
        pidx[h] = i + 1;
    }
}

/* The pending event a stored line duplicates (same id), or -1.  The
 * collector writes "v", "id", "ts" first, so the id is near the start. */
static long pend_of_line(const char *line, size_t n)
{
    const char *v;
    size_t vl;
    if (!npend || lg_line_field(line, n, "id", 128, &v, &vl) != 0)
        return -1;
    return pend_find(v, vl);
}

/* Hands the pending events not already seen in the log to fn, as lines of
 * the pseudo-file `nfiles` at offset = their index. */
static void scan_pending(line_fn fn, void *ctx)
{
    for (size_t i = 0; i < npend; i++)
        if (!pend[i].skip)
            fn(nfiles, (long long)i, pend[i].line, pend[i].len, ctx);
}

/* ==== Log files ==== */
/* Calls fn for every complete line of path.  Returns bytes consumed. */
static long long scan_file(int file, const char *path, long long from,
                           line_fn fn, void *ctx)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return from;
    if (from && fseeko(f, from, SEEK_SET) != 0) {
        fclose(f);
        return from;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t k;
    long long off = from;
    while ((k = getline(&line, &cap, f)) > 0) {
        if (line[k - 1] != '\n') /* incomplete: being written or torn */
            break;
        long p = pend_of_line(line, (size_t)k - 1);
        if (p >= 0)
            pend[p].skip = 1; /* stored: show this copy, not the spool's */
        fn(file, off, line, (size_t)k - 1, ctx);
        off += k;
    }
    free(line);
    fclose(f);
    return off;
}

/* Spool first, then the log files (see the top of the file for why this
 * order loses nothing). */
static int load_files(void)
{
    load_spool();
    nfiles = lg_logfiles_list(opt.dir, &files);
    if (nfiles == -ENOENT) { /* nothing stored yet */
        nfiles = 0;
        files = NULL;
    }
    if (nfiles < 0) {
        fprintf(stderr, "llmguard-log: %s: %s\n", opt.dir, strerror(-nfiles));
        return -1;
    }
    return 0;
}

/* ==== query ==== */
static rec *recs;
static size_t nrec, caprec;

static int collect(int file, long long off, const char *line, size_t n, void *ctx)
{
    (void)ctx;
    int64_t ts;
    if (!pre_match(line, n, &ts))
        return 0;
    cJSON *e = cJSON_ParseWithLength(line, n);
    if (e && match(e)) {
        if (nrec == caprec) {
            caprec = caprec ? caprec * 2 : 1024;
            recs = realloc(recs, caprec * sizeof *recs);
            if (!recs) {
                fprintf(stderr, "llmguard-log: out of memory\n");
                exit(1);
            }
        }
        recs[nrec] = (rec){ts, file, off, n, nrec};
        nrec++;
        if (!opt.json)
            widen(e);
    }
    cJSON_Delete(e);
    return 0;
}

static int cmp_rec(const void *a, const void *b)
{
    const rec *x = a, *y = b;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void print_rec(const rec *r, FILE **fh)
{
    if (r->file == nfiles) { /* pending: kept in memory, as its spool file
                              * may be ingested and gone by now */
        const pending *p = &pend[r->off];
        cJSON *e = cJSON_ParseWithLength(p->line, p->len);
        if (e)
            print_event(e, p->line, p->len);
        cJSON_Delete(e);
        return;
    }
    char *buf = malloc(r->len + 1);
    if (!buf)
        return;
    if (!fh[r->file])
        fh[r->file] = fopen(files[r->file], "re");
    if (fh[r->file] && fseeko(fh[r->file], r->off, SEEK_SET) == 0 &&
        fread(buf, 1, r->len, fh[r->file]) == r->len) {
        cJSON *e = cJSON_ParseWithLength(buf, r->len);
        if (e)
            print_event(e, buf, r->len);
        cJSON_Delete(e);
    }
    free(buf);
}

static int cmd_query(void)
{
    if (load_files())
        return 1;
    for (int i = 0; i < nfiles; i++)
        scan_file(i, files[i], 0, collect, NULL);
    scan_pending(collect, NULL);
    /* Files are in order and mostly so inside; spooled events arrive late
     * and break it, so sort by event time (stable on file order). */
    int sorted = 1;
    for (size_t i = 1; i < nrec && sorted; i++)
        sorted = recs[i - 1].ts <= recs[i].ts;
    if (!sorted)
        qsort(recs, nrec, sizeof *recs, cmp_rec);
    size_t n = nrec;
    if (opt.limit > 0 && (size_t)opt.limit < n)
        n = (size_t)opt.limit;
    FILE **fh = calloc((size_t)nfiles + 1, sizeof *fh);
    if (n || isatty(1))
        print_header();
    for (size_t i = 0; i < n; i++)
        print_rec(&recs[i], fh);
    for (int i = 0; i < nfiles; i++)
        if (fh[i])
            fclose(fh[i]);
    free(fh);
    return 0;
}

/* ==== tail ==== */
static int follow_line(int file, long long off, const char *line, size_t n, void *ctx);

/* Print the whole lines appended to fd from *pos on; a partial last line
 * stays in buf.  1 when something was read, 0 when nothing, -1 on
 * allocation failure. */
static int follow_read(int fd, long long *pos, char **buf, size_t *have, size_t *cap)
{
    if (*cap - *have < 65536) {
        size_t nc = *cap ? *cap * 2 : 1 << 20;
        char *nb = realloc(*buf, nc);
        if (!nb)
            return -1;
        *buf = nb;
        *cap = nc;
    }
    ssize_t k = pread(fd, *buf + *have, *cap - *have, *pos);
    if (k <= 0)
        return 0;
    *pos += k;
    *have += (size_t)k;
    size_t start = 0;
    char *nl;
    while ((nl = memchr(*buf + start, '\n', *have - start))) {
        size_t ln = (size_t)(nl - *buf - start);
        follow_line(0, 0, *buf + start, ln, NULL);
        start += ln + 1;
    }
    memmove(*buf, *buf + start, *have - start);
    *have -= start;
    fflush(stdout);
    return 1;
}

static int follow_line(int file, long long off, const char *line, size_t n,
                       void *ctx)
{
    (void)file, (void)off, (void)ctx;
    int64_t ts;
    /* Pending events were dealt with before following began: printed if
     * among the last N, and older than what follows otherwise. */
    if (pend_of_line(line, n) >= 0)
        return 0;
    if (pre_match(line, n, &ts)) {
        cJSON *e = cJSON_ParseWithLength(line, n);
        if (e && match(e))
            print_event(e, line, n);
        cJSON_Delete(e);
    }
    return 0;
}

static int cmd_tail(void)
{
    if (load_files())
        return 1;
    /* Newest files first until we have n matches. */
    int first = nfiles;
    size_t got = 0;
    while (first > 0 && got < (size_t)opt.n) {
        first--;
        size_t before = nrec;
        scan_file(first, files[first], 0, collect, NULL);
        got += nrec - before;
    }
    /* Not stored yet, so newer than anything stored (in time order). */
    scan_pending(collect, NULL);
    /* collect() appended per file; order by (file, offset) */
    size_t n = nrec;
    for (size_t i = 0; i < n; i++)
        recs[i].ts = (int64_t)recs[i].file << 40 | recs[i].off;
    if (n)
        qsort(recs, n, sizeof *recs, cmp_rec);
    size_t from = n > (size_t)opt.n ? n - (size_t)opt.n : 0;
    FILE **fh = calloc((size_t)nfiles + 1, sizeof *fh);
    if (opt.follow) {
        /* Rows still to come cannot widen the header: make room for every
         * API name, and cut longer program and model names (print_event). */
        if (col_w[COL_API] < API_NAME_MAX)
            col_w[COL_API] = API_NAME_MAX;
        opt.fit = 1;
    }
    print_header();
    for (size_t i = from; i < n; i++)
        print_rec(&recs[i], fh);
    for (int i = 0; i < nfiles; i++)
        if (fh[i])
            fclose(fh[i]);
    free(fh);
    fflush(stdout);
    if (!opt.follow)
        return 0;
    /* Follow events.jsonl: read what is appended; when it is rotated away
     * (a different inode at the path), finish the old file, print the
     * files rotated after it (several rotations can happen between two
     * polls), then continue with the new current file. */
    char cur[4200];
    snprintf(cur, sizeof cur, "%s/%s", opt.dir, LG_LOG_CURRENT);
    int fd = open(cur, O_RDONLY | O_CLOEXEC);
    struct stat st;
    long long pos = 0;
    if (fd >= 0 && fstat(fd, &st) == 0)
        pos = st.st_size;
    char *buf = NULL;
    size_t have = 0, cap = 0;
    for (;;) {
        int progressed = fd >= 0 ? follow_read(fd, &pos, &buf, &have, &cap) : 0;
        if (progressed < 0)
            return 1;
        if (progressed)
            continue;
        struct stat s1, s2;
        if (fd < 0 || stat(cur, &s1) != 0 || fstat(fd, &s2) != 0 ||
            s1.st_ino != s2.st_ino || s1.st_dev != s2.st_dev) {
            /* Rotated.  The collector may have appended to the old file
             * after the read above found nothing and before it rotated:
             * read the old file to its end first (lines were lost here
             * under load, test_collector_log). */
            int r = 0;
            while (fd >= 0 && (r = follow_read(fd, &pos, &buf, &have, &cap)) > 0)
                ;
            if (fd >= 0 && r < 0)
                return 1;
            int nfd = open(cur, O_RDONLY | O_CLOEXEC);
            struct stat ns = {0};
            if (nfd >= 0)
                fstat(nfd, &ns);
            if (fd >= 0) {
                char **fl;
                int nf = lg_logfiles_list(opt.dir, &fl);
                int after = 0;
                for (int i = 0; i < nf; i++) {
                    struct stat fs;
                    if (stat(fl[i], &fs) != 0)
                        continue;
                    if (nfd >= 0 && fs.st_ino == ns.st_ino && fs.st_dev == ns.st_dev)
                        break;
                    if (after && strcmp(fl[i], cur))
                        scan_file(0, fl[i], 0, follow_line, NULL);
                    if (fs.st_ino == s2.st_ino && fs.st_dev == s2.st_dev)
                        after = 1;
                }
                if (nf > 0)
                    lg_logfiles_free(fl, nf);
                close(fd);
                fflush(stdout);
            }
            fd = nfd;
            pos = 0;
            have = 0;
            if (fd >= 0)
                continue;
        } else if (s2.st_size < pos)
            pos = 0, have = 0; /* truncated */
        struct timespec d = {0, 200 * 1000 * 1000};
        nanosleep(&d, NULL);
    }
}

/* ==== stats ==== */
typedef struct {
    char *key;
    long n;
} kv;
typedef struct {
    const char *title;
    kv *v;
    size_t n, cap;
} table;
static table t_dec = {"decision", 0, 0, 0}, t_rule = {"rule", 0, 0, 0},
             t_prog = {"program", 0, 0, 0}, t_model = {"model", 0, 0, 0};
static long total, total_pending;

static void bump(table *t, const char *k)
{
    if (!k)
        k = "-";
    for (size_t i = 0; i < t->n; i++)
        if (!strcmp(t->v[i].key, k)) {
            t->v[i].n++;
            return;
        }
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->v = realloc(t->v, t->cap * sizeof *t->v);
    }
    t->v[t->n++] = (kv){strdup(k), 1};
}

static int count(int file, long long off, const char *line, size_t n, void *ctx)
{
    (void)file, (void)off, (void)ctx;
    int64_t ts;
    if (!pre_match(line, n, &ts))
        return 0;
    cJSON *e = cJSON_ParseWithLength(line, n);
    if (e && match(e)) {
        total++;
        total_pending += file == nfiles;
        bump(&t_dec, jstr(e, "decision"));
        bump(&t_prog, exe_of(e) ? base(exe_of(e)) : NULL);
        bump(&t_model, jstr(e, "model"));
        const cJSON *f, *fs = cJSON_GetObjectItemCaseSensitive(e, "findings");
        cJSON_ArrayForEach(f, fs) bump(&t_rule, jstr(f, "rule"));
    }
    cJSON_Delete(e);
    return 0;
}

static int cmp_kv(const void *a, const void *b)
{
    const kv *x = a, *y = b;
    if (x->n != y->n)
        return x->n > y->n ? -1 : 1;
    return strcmp(x->key, y->key);
}

static void print_table(table *t)
{
    if (t->n) /* qsort(NULL, 0) is undefined */
        qsort(t->v, t->n, sizeof *t->v, cmp_kv);
    printf("%sby %s%s\n", opt.color ? "\033[1m" : "", t->title,
           opt.color ? "\033[0m" : "");
    if (!t->n) {
        printf("  (none)\n");
        return;
    }
    size_t rows = t->n < (size_t)opt.top ? t->n : (size_t)opt.top;
    int kw = 4;
    for (size_t i = 0; i < rows; i++)
        if ((int)strlen(t->v[i].key) > kw)
            kw = (int)strlen(t->v[i].key);
    if (kw > 40)
        kw = 40;
    long max = t->v[0].n;
    for (size_t i = 0; i < rows; i++) {
        int bar = max ? (int)((t->v[i].n * 40 + max - 1) / max) : 0;
        const char *col = t == &t_dec ? dec_color(t->v[i].key) : "";
        printf("  %-*.*s %8ld  %s", kw, kw, t->v[i].key, t->v[i].n, col);
        for (int b = 0; b < bar; b++)
            fputs(opt.utf8 ? "\u2588" : "#", stdout);
        printf("%s\n", *col ? "\033[0m" : "");
    }
    if (t->n > rows)
        printf("  ... %zu more\n", t->n - rows);
}

static cJSON *table_json(table *t)
{
    if (t->n) /* qsort(NULL, 0) is undefined */
        qsort(t->v, t->n, sizeof *t->v, cmp_kv);
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; i < t->n; i++)
        cJSON_AddNumberToObject(o, t->v[i].key, (double)t->v[i].n);
    return o;
}

static int cmd_stats(void)
{
    if (load_files())
        return 1;
    for (int i = 0; i < nfiles; i++)
        scan_file(i, files[i], 0, count, NULL);
    scan_pending(count, NULL);
    if (opt.json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "total", (double)total);
        cJSON_AddNumberToObject(o, "pending", (double)total_pending);
        cJSON_AddItemToObject(o, "by_decision", table_json(&t_dec));
        cJSON_AddItemToObject(o, "by_rule", table_json(&t_rule));
        cJSON_AddItemToObject(o, "by_program", table_json(&t_prog));
        cJSON_AddItemToObject(o, "by_model", table_json(&t_model));
        char *s = cJSON_Print(o);
        puts(s);
        free(s);
        cJSON_Delete(o);
        return 0;
    }
    if (total_pending)
        printf("%ld events (%ld not stored yet: in the spool)\n", total, total_pending);
    else
        printf("%ld events\n", total);
    print_table(&t_dec);
    print_table(&t_rule);
    print_table(&t_prog);
    print_table(&t_model);
    return 0;
}

/* ==== status ==== */
static int cmd_status(void)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", opt.dir, LG_LOG_LOCK);
    int running = 0, fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        running = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
        close(fd);
    }
    snprintf(p, sizeof p, "%s/%s", opt.dir, LG_LOG_STATUS);
    FILE *f = fopen(p, "re");
    cJSON *st = NULL;
    if (f) {
        static char buf[65536];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = 0;
        fclose(f);
        st = cJSON_Parse(buf);
    }
    if (!st)
        st = cJSON_CreateObject();
    cJSON_DeleteItemFromObject(st, "running");
    cJSON_AddBoolToObject(st, "running", running);
    load_spool();
    size_t waiting = 0;
    for (size_t i = 0; i < npend; i++)
        waiting += !pend[i].skip;
    if (opt.json) {
        cJSON_DeleteItemFromObject(st, "spool_pending");
        cJSON_AddNumberToObject(st, "spool_pending", (double)waiting);
        char *s = cJSON_Print(st);
        puts(s);
        free(s);
    } else {
        printf("collector: %s\n", running ? "running" : "not running");
        printf("log dir:   %s\n", opt.dir);
        if (waiting)
            printf("pending:   %zu events in %s, not stored yet (%s)\n", waiting,
                   opt.spool, running ? "the collector stores them at its next spool scan"
                                      : "start llmguard-collectord to store them");
        const cJSON *it;
        cJSON_ArrayForEach(it, st)
        {
            if (cJSON_IsNumber(it))
                printf("%-18s %.0f\n", it->string, it->valuedouble);
            else if (cJSON_IsString(it))
                printf("%-18s %s\n", it->string, it->valuestring);
            else if (cJSON_IsObject(it)) {
                const cJSON *s;
                cJSON_ArrayForEach(s, it) if (cJSON_IsNumber(s))
                    printf("%-18s %.0f\n", s->string, s->valuedouble);
            }
        }
    }
    cJSON_Delete(st);
    return running ? 0 : 3;
}

/* ==== main ==== */
static void usage(FILE *o)
{
    fprintf(o,
"usage: llmguard-log [options] tail|query|stats|status [filters]\n"
"  tail [-n N] [-f]        last N events (default 10), then follow\n"
"  query [--limit N]       matching events in time order\n"
"  stats [--top N]         counts by decision, rule, program and model\n"
"  status                  is the collector running, its counters\n"
"filters:\n"
"  --since WHEN --until WHEN   durations (90s, 15m, 2h, 7d, 1w) or timestamps\n"
"  --decision LIST   allow,log,redact,block,error     --rule GLOB\n"
"  --pid N   --exe GLOB   --model GLOB   --api GLOB\n"
"output:\n"
"  --json            JSONL (query, tail) or a JSON object (stats, status)\n"
"  --color WHEN      auto (default), always, never\n"
"  --dir DIR         log directory (default $LLMGUARD_LOG_DIR or\n"
"                    $XDG_STATE_HOME/llmguard); --system: /var/log/llmguard\n"
"  --spool-dir DIR   spool of events not stored yet (default: the shim's);\n"
"                    --no-spool: stored events only\n");
}

/* The values --decision takes: the policy's actions (core/policy.c) and
 * "error" for exchanges that could not be inspected. */
static const char *const decisions[] = {"allow", "log", "redact", "block", "error", NULL};

/* A typo in a value list must not quietly match nothing. */
static int check_decisions(const char *list)
{
    for (const char *p = list;;) {
        const char *c = strchr(p, ',');
        size_t l = c ? (size_t)(c - p) : strlen(p);
        int ok = 0;
        for (int i = 0; decisions[i] && !ok; i++)
            ok = strlen(decisions[i]) == l && !strncmp(decisions[i], p, l);
        if (!ok) {
            fprintf(stderr, "llmguard-log: unknown --decision value '%.*s' (valid: "
                    "allow, log, redact, block, error; comma-separated)\n", (int)l, p);
            return -1;
        }
        if (!c)
            return 0;
        p = c + 1;
    }
}

/* A count option: a non-negative decimal number, else a usage error. */
static int count_arg(const char *name, const char *s, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < 0 || errno) {
        fprintf(stderr, "llmguard-log: bad %s %s (a number >= 0)\n", name, s);
        return -1;
    }
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    enum { OPT_SINCE = 256, OPT_UNTIL, OPT_DEC, OPT_RULE, OPT_PID, OPT_EXE,
           OPT_MODEL, OPT_API, OPT_JSON, OPT_COLOR, OPT_DIR, OPT_SYSTEM,
           OPT_LIMIT, OPT_TOP, OPT_VERSION, OPT_SPOOL, OPT_NOSPOOL };
    static const struct option lo[] = {
        {"since", required_argument, 0, OPT_SINCE},
        {"until", required_argument, 0, OPT_UNTIL},
        {"decision", required_argument, 0, OPT_DEC},
        {"rule", required_argument, 0, OPT_RULE},
        {"pid", required_argument, 0, OPT_PID},
        {"exe", required_argument, 0, OPT_EXE},
        {"model", required_argument, 0, OPT_MODEL},
        {"api", required_argument, 0, OPT_API},
        {"json", no_argument, 0, OPT_JSON},
        {"color", required_argument, 0, OPT_COLOR},
        {"colour", required_argument, 0, OPT_COLOR},
        {"dir", required_argument, 0, OPT_DIR},
        {"system", no_argument, 0, OPT_SYSTEM},
        {"spool-dir", required_argument, 0, OPT_SPOOL},
        {"no-spool", no_argument, 0, OPT_NOSPOOL},
        {"limit", required_argument, 0, OPT_LIMIT},
        {"top", required_argument, 0, OPT_TOP},
        {"follow", no_argument, 0, 'f'},
        {"lines", required_argument, 0, 'n'},
        {"version", no_argument, 0, OPT_VERSION},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *dir = NULL, *since = NULL, *until = NULL, *color = "auto";
    const char *spool = NULL;
    int system = 0, nospool = 0, c;
    long num;
    while ((c = getopt_long(argc, argv, "fn:h", lo, NULL)) != -1) {
        switch (c) {
        case OPT_SINCE: since = optarg; break;
        case OPT_UNTIL: until = optarg; break;
        case OPT_DEC:
            if (check_decisions(optarg))
                return 2;
            opt.decision = optarg;
            break;
        case OPT_RULE: opt.rule = optarg; break;
        case OPT_PID: {
            char *end;
            opt.pid = strtol(optarg, &end, 10);
            if (*end || opt.pid < 0) {
                fprintf(stderr, "llmguard-log: bad --pid %s\n", optarg);
                return 2;
            }
            break;
        }
        case OPT_EXE: opt.exe = optarg; break;
        case OPT_MODEL: opt.model = optarg; break;
        case OPT_API: opt.api = optarg; break;
        case OPT_JSON: opt.json = 1; break;
        case OPT_COLOR: color = optarg; break;
        case OPT_DIR: dir = optarg; break;
        case OPT_SYSTEM: system = 1; break;
        case OPT_SPOOL: spool = optarg, nospool = 0; break; /* last wins */
        case OPT_NOSPOOL: spool = NULL, nospool = 1; break;
        case OPT_LIMIT:
            if (count_arg("--limit", optarg, &opt.limit))
                return 2;
            break;
        case OPT_TOP:
            if (count_arg("--top", optarg, &num))
                return 2;
            opt.top = num > 0 && num <= INT_MAX ? (int)num : 10;
            break;
        case 'f': opt.follow = 1; break;
        case 'n':
            if (count_arg("-n", optarg, &opt.n))
                return 2;
            break;
        case OPT_VERSION: printf("llmguard-log %s\n", LG_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[optind];
    if (dir)
        snprintf(opt.dir, sizeof opt.dir, "%s", dir);
    else if (lg_logdir_default(opt.dir, sizeof opt.dir, system) != 0) {
        fprintf(stderr, "llmguard-log: no log directory (use --dir)\n");
        return 2;
    }
    /* Pending events are wherever this environment's shims spool them. */
    lg_emit_paths ep;
    if (nospool)
        opt.spool[0] = 0;
    else if (spool)
        snprintf(opt.spool, sizeof opt.spool, "%s", spool);
    else if (lg_emit_default_paths(&ep, system) == 0)
        memcpy(opt.spool, ep.spool, sizeof opt.spool);
    int64_t now = lg_now_us();
    if (since && lg_parse_when(since, now, &opt.since) != 0) {
        fprintf(stderr, "llmguard-log: bad --since %s\n", since);
        return 2;
    }
    if (until && lg_parse_when(until, now, &opt.until) != 0) {
        fprintf(stderr, "llmguard-log: bad --until %s\n", until);
        return 2;
    }
    opt.has_since = since != NULL;
    opt.has_until = until != NULL;
    if (!strcmp(color, "always"))
        opt.color = 1;
    else if (!strcmp(color, "never"))
        opt.color = 0;
    else if (!strcmp(color, "auto"))
        opt.color = isatty(1) && getenv("NO_COLOR") == NULL &&
                    (!getenv("TERM") || strcmp(getenv("TERM"), "dumb"));
    else {
        fprintf(stderr, "llmguard-log: --color auto|always|never\n");
        return 2;
    }
    const char *lang = getenv("LC_ALL");
    if (!lang || !*lang) lang = getenv("LC_CTYPE");
    if (!lang || !*lang) lang = getenv("LANG");
    opt.utf8 = isatty(1) && lang && (strstr(lang, "UTF-8") || strstr(lang, "utf8"));
    signal(SIGPIPE, SIG_DFL);
    if (!strcmp(cmd, "query"))
        return cmd_query();
    if (!strcmp(cmd, "tail"))
        return cmd_tail();
    if (!strcmp(cmd, "stats"))
        return cmd_stats();
    if (!strcmp(cmd, "status"))
        return cmd_status();
    fprintf(stderr, "llmguard-log: unknown command %s\n", cmd);
    usage(stderr);
    return 2;
}
