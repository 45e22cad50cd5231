/* Policy loader: JSON text (a user file, or a built-in pack compiled in by
 * packs.c) to an immutable, fully validated lg_policy.  The document is
 * parsed with cJSON, then walked once more with the span-aware walker
 * (json.h) because cJSON keeps no source positions: every diagnostic is
 * located by the JSON path of the offending value ("rules[3].regex") and
 * converted to line and column.  Loading is strict on purpose: unknown
 * keys, wrong types, duplicate keys and duplicate rule ids are errors, since
 * a typo that silently disabled a rule would be worse than a refusal.
 *
 * Order of assembly: the selected packs' rules, then the file's rules (one
 * whose id equals a built-in rule's replaces it in place), then overrides
 * (globs, shortest prefix first, then exact ids, so the most specific
 * wins), then `disable`, then the internal placeholder-restore rule when any
 * rule redacts with placeholders, then every pattern is compiled
 * (lg_rule_compile, scan.c).  No globals: cJSON's error position is taken
 * from return_parse_end, not the thread-unsafe cJSON_GetErrorPtr(). */
#include "policy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>

#include "buf.h"
#include "error.h"
#include "json.h"
#include "scan.h"
#include "scope.h"
#include "vault.h"

/* ==== Names ==== */

static const char *const action_names[] = {"allow", "log", "redact", "block", NULL};
static const char *const mode_names[] = {"enforce", "monitor", NULL};
static const char *const fail_names[] = {"open", "closed", NULL};
static const char *const sev_names[] = {"info", "low", "medium", "high", "critical", NULL};
static const char *const redact_names[] = {"placeholder", "mask", NULL};
static const char *const logtext_names[] = {"none", "redacted", "full", NULL};
static const char *const val_names[] = {"none", "luhn", "cn_id", "iban", "cn_uscc", NULL};
static const char *const on_names[] = {"prompt", "response", NULL};
static const char *const role_names[] = {"system", "user", "assistant", "tool", "other", NULL};

static const char *name_of(const char *const *names, int v)
{
    for (int i = 0; names[i]; i++)
        if (i == v)
            return names[i];
    return "unknown";
}

static int index_of(const char *const *names, const char *s)
{
    if (!s)
        return -1;
    for (int i = 0; names[i]; i++)
        if (strcmp(names[i], s) == 0)
            return i;
    return -1;
}

const char *lg_action_name(int action) { return name_of(action_names, action); }
const char *lg_severity_name(int sev) { return name_of(sev_names, sev); }
const char *lg_mode_name(int mode) { return name_of(mode_names, mode); }
const char *lg_fail_name(int fail) { return name_of(fail_names, fail); }
const char *lg_log_text_name(int t) { return name_of(logtext_names, t); }
int lg_action_parse(const char *s) { return index_of(action_names, s); }
int lg_mode_parse(const char *s) { return index_of(mode_names, s); }
int lg_fail_parse(const char *s) { return index_of(fail_names, s); }

/* ==== Loader state ==== */

#define DEF_MAX_BODY (8u << 20)
#define DEF_MAX_HOLD 4096u
#define DEF_EXCERPT 120u
#define MAX_ID 127
#define MAX_LABEL 32
#define RESTORE_ID "vault.restore"
#define INTERNAL_SRC "<internal>"

/* Where a rule came from, kept while loading so that errors found after
 * merging (overrides, compilation) still point into the right document. */
typedef struct rinfo {
    const char *text;     /* source document (pack text or the user's copy) */
    size_t len;
    const char *name;     /* diagnostic file name */
    char pat_path[64];    /* "rules[3].regex" or "rules[3].keywords" */
    int user;             /* defined in the user document */
    int disabled;
} rinfo;

typedef struct doc {
    const char *name;     /* diagnostic file name */
    const char *text;     /* NUL-terminated copy */
    size_t len;
} doc;

typedef struct loader {
    lg_policy *p;
    lg_diag *d;
    const doc *cur;       /* document being read */
    char path[LG_JSON_MAX_PATH + 1];
    size_t plen;
    int ptrunc;           /* path did not fit */
    const char *rule_id;  /* rule being read, for diagnostics */
    lg_rule *rules;
    rinfo *info;
    size_t n, cap;
    int injection_pack;   /* the injection pack is loaded (the scope rule joins it) */
} loader;

/* ==== Positions and diagnostics ==== */

/* Advance a (line, column) position from byte `from` to byte `to`. */
static void pos_advance(const char *t, size_t from, size_t to, int *line, int *col)
{
    int l = *line, c = *col;
    for (size_t i = from; i < to; i++) {
        unsigned char ch = (unsigned char)t[i];
        if (ch == '\n') {
            l++;
            c = 1;
        } else if ((ch & 0xC0) != 0x80) {
            c++;
        }
    }
    *line = l;
    *col = c;
}

/* 1-based line and column of byte off; columns count UTF-8 characters. */
static void offset_pos(const char *t, size_t len, size_t off, int *line, int *col)
{
    int l = 1, c = 1;
    if (off > len)
        off = len;
    for (size_t i = 0; i < off; i++) {
        unsigned char ch = (unsigned char)t[i];
        if (ch == '\n') {
            l++;
            c = 1;
        } else if ((ch & 0xC0) != 0x80) {
            c++;
        }
    }
    *line = l;
    *col = c;
}

typedef struct finder {
    const char *path;
    size_t plen;
    int want;     /* occurrence wanted (duplicate keys share a path) */
    int seen;
    size_t start;
} finder;

static int find_cb(void *ud, const lg_json_value *v)
{
    finder *f = ud;
    if (v->path_len == f->plen && memcmp(v->path, f->path, f->plen) == 0 &&
        f->seen++ == f->want) {
        f->start = v->start;
        return 1;
    }
    return 0;
}

/* Byte offset of the value at path (or of its nearest enclosing value that
 * can be found); 0 and returns 0 when nothing is found. */
static int locate(const char *text, size_t len, const char *path, size_t plen,
                  int occurrence, size_t *off)
{
    for (;;) {
        finder f = {path, plen, occurrence, 0, 0};
        if (lg_json_walk(text, len, 0, find_cb, &f, NULL) == 1) {
            *off = f.start;
            return 1;
        }
        if (plen == 0)
            return 0;
        /* Drop the last segment and try the parent. */
        size_t i = plen;
        while (i > 0 && path[i - 1] != '.' && path[i - 1] != '[')
            i--;
        plen = i > 0 ? i - 1 : 0;
        occurrence = 0;
    }
}

/* From a member's value back to the opening quote of its key. */
static size_t key_start(const char *t, size_t vstart)
{
    size_t i = vstart;
    while (i > 0 && strchr(" \t\r\n", t[i - 1]))
        i--;
    if (i == 0 || t[i - 1] != ':')
        return vstart;
    i--;
    while (i > 0 && strchr(" \t\r\n", t[i - 1]))
        i--;
    if (i == 0 || t[i - 1] != '"')
        return vstart;
    i--; /* at the closing quote */
    while (i > 0) {
        i--;
        if (t[i] == '"') {
            size_t bs = 0;
            while (bs < i && t[i - 1 - bs] == '\\')
                bs++;
            if (bs % 2 == 0)
                return i;
        }
    }
    return vstart;
}

static void set_str(char *dst, size_t n, const char *s)
{
    snprintf(dst, n, "%s", s ? s : "");
}

__attribute__((format(printf, 6, 0)))
static void vdiag(loader *L, const doc *dc, const char *path, int occurrence,
                  int at_key, const char *fmt, va_list ap)
{
    lg_diag *d = L->d;
    memset(d, 0, sizeof *d);
    if (dc) {
        set_str(d->file, sizeof d->file, dc->name);
        size_t off;
        if (path && locate(dc->text, dc->len, path, strlen(path), occurrence, &off)) {
            if (at_key)
                off = key_start(dc->text, off);
            offset_pos(dc->text, dc->len, off, &d->line, &d->col);
        }
    }
    set_str(d->rule, sizeof d->rule, L->rule_id);
    vsnprintf(d->msg, sizeof d->msg, fmt, ap);
}

/* An error at the current path of the current document. */
__attribute__((format(printf, 2, 3)))
static int fail(loader *L, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vdiag(L, L->cur, L->ptrunc ? NULL : L->path, 0, 0, fmt, ap);
    va_end(ap);
    return LG_E_POLICY;
}

/* The same, pointing at the key of the current path's member. */
__attribute__((format(printf, 3, 4)))
static int fail_key(loader *L, int occurrence, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vdiag(L, L->cur, L->ptrunc ? NULL : L->path, occurrence, 1, fmt, ap);
    va_end(ap);
    return LG_E_POLICY;
}

static int nomem(loader *L)
{
    memset(L->d, 0, sizeof *L->d);
    if (L->cur)
        set_str(L->d->file, sizeof L->d->file, L->cur->name);
    set_str(L->d->msg, sizeof L->d->msg, "out of memory");
    return LG_E_NOMEM;
}

/* Append pre and seg to the current path; the returned mark restores it
 * (path_pop).  A path that no longer fits is cut and marked truncated. */
static size_t path_push(loader *L, const char *pre, const char *seg)
{
    size_t mark = L->plen;
    int w = snprintf(L->path + L->plen, sizeof L->path - L->plen, "%s%s", pre, seg);
    if (w < 0 || (size_t)w >= sizeof L->path - L->plen) {
        L->ptrunc++;
        L->path[L->plen] = '\0';
        return mark | ((size_t)1 << (sizeof(size_t) * 8 - 1));
    }
    L->plen += (size_t)w;
    return mark;
}

static size_t path_key(loader *L, const char *key)
{
    return path_push(L, L->plen ? "." : "", key);
}

static size_t path_index(loader *L, size_t i)
{
    char seg[32];
    snprintf(seg, sizeof seg, "[%zu]", i);
    return path_push(L, "", seg);
}

static void path_pop(loader *L, size_t mark)
{
    size_t hi = (size_t)1 << (sizeof(size_t) * 8 - 1);
    if (mark & hi) {
        L->ptrunc--;
        mark &= ~hi;
    }
    L->plen = mark;
    L->path[mark] = '\0';
}

void lg_diag_format(const lg_diag *d, char *buf, size_t n)
{
    if (!buf || n == 0)
        return;
    buf[0] = '\0';
    if (!d)
        return;
    char tmp[1024];
    size_t k = 0;
    tmp[0] = '\0';
    if (d->file[0]) {
        if (d->line > 0 && d->col > 0)
            k = (size_t)snprintf(tmp, sizeof tmp, "%s:%d:%d: ", d->file, d->line, d->col);
        else if (d->line > 0)
            k = (size_t)snprintf(tmp, sizeof tmp, "%s:%d: ", d->file, d->line);
        else
            k = (size_t)snprintf(tmp, sizeof tmp, "%s: ", d->file);
    }
    if (k < sizeof tmp && d->rule[0])
        k += (size_t)snprintf(tmp + k, sizeof tmp - k, "rule '%s': ", d->rule);
    if (k < sizeof tmp)
        snprintf(tmp + k, sizeof tmp - k, "%s", d->msg);
    snprintf(buf, n, "%s", tmp);
}

/* ==== Typed getters ==== */

/* The current path's last segment ("roles[1]", "mode"), for messages. */
static const char *cur_name(const loader *L)
{
    const char *dot = strrchr(L->path, '.');
    const char *s = dot ? dot + 1 : L->path;
    return *s ? s : "value";
}

static const char *type_name(const cJSON *v)
{
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "an invalid value";
}

static int want_type(loader *L, const cJSON *v, int ok, const char *what)
{
    if (ok)
        return LG_OK;
    return fail(L, "%s: expected %s, got %s", cur_name(L), what, type_name(v));
}

static int get_string(loader *L, const cJSON *v, const char **out)
{
    int rc = want_type(L, v, cJSON_IsString(v), "a string");
    if (rc == LG_OK)
        *out = v->valuestring;
    return rc;
}

static void list_names(char *buf, size_t n, const char *const *names, int skip0)
{
    size_t k = 0;
    buf[0] = '\0';
    for (int i = skip0 ? 1 : 0; names[i] && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%s", k ? ", " : "", names[i]);
}

static int get_enum(loader *L, const cJSON *v, const char *const *names, int skip0, int *out)
{
    const char *s;
    int rc = get_string(L, v, &s);
    if (rc != LG_OK)
        return rc;
    int i = index_of(names, s);
    if (i < (skip0 ? 1 : 0)) {
        char list[256];
        list_names(list, sizeof list, names, skip0);
        return fail(L, "%s: bad value \"%.64s\" (expected one of: %s)", cur_name(L), s, list);
    }
    *out = i;
    return LG_OK;
}

/* An integer in [lo, hi]. */
static int get_uint(loader *L, const cJSON *v, double lo, double hi, size_t *out)
{
    int rc = want_type(L, v, cJSON_IsNumber(v), "a number");
    if (rc != LG_OK)
        return rc;
    double x = v->valuedouble;
    if (!(x >= lo && x <= hi) || (double)(long long)x != x)
        return fail(L, "%s: expected an integer from %.0f to %.0f", cur_name(L), lo, hi);
    *out = (size_t)x;
    return LG_OK;
}

/* A non-empty array of names from the list, as a bit mask. */
static int get_mask(loader *L, const cJSON *v, const char *const *names, unsigned *out)
{
    int rc = want_type(L, v, cJSON_IsArray(v), "an array");
    if (rc != LG_OK)
        return rc;
    unsigned m = 0;
    size_t i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        size_t mark = path_index(L, i++);
        int bit;
        rc = get_enum(L, e, names, 0, &bit);
        path_pop(L, mark);
        if (rc != LG_OK)
            return rc;
        m |= 1u << bit;
    }
    if (!m)
        return fail(L, "%s: must not be empty", cur_name(L));
    *out = m;
    return LG_OK;
}

/* Every member's key is in `allowed`, and no key appears twice. */
static int check_keys(loader *L, const cJSON *obj, const char *const *allowed)
{
    const cJSON *c, *e;
    cJSON_ArrayForEach(c, obj) {
        int occ = 0;
        for (e = obj->child; e != c; e = e->next)
            if (strcmp(e->string, c->string) == 0)
                occ++;
        if (occ) {
            size_t mark = path_key(L, c->string);
            int rc = fail_key(L, occ, "duplicate key \"%.64s\"", c->string);
            path_pop(L, mark);
            return rc;
        }
        if (allowed && index_of(allowed, c->string) < 0) {
            char list[384];
            list_names(list, sizeof list, allowed, 0);
            size_t mark = path_key(L, c->string);
            int rc = fail_key(L, 0, "unknown key \"%.64s\" (expected one of: %s)",
                              c->string, list);
            path_pop(L, mark);
            return rc;
        }
    }
    return LG_OK;
}

/* ==== Rules ==== */

static int id_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
}

static int valid_name(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max || s[0] == '.' || s[n - 1] == '.' || strstr(s, ".."))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!id_char((unsigned char)s[i]))
            return 0;
    return 1;
}

static int valid_label(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MAX_LABEL || !(s[0] >= 'A' && s[0] <= 'Z'))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    return 1;
}

/* Uppercased last id segment, non-alphanumerics as '_' (pii.email -> EMAIL),
 * prefixed with 'R' when it would not start with a letter, at most 32. */
static char *default_label(const char *id)
{
    const char *seg = strrchr(id, '.');
    seg = seg ? seg + 1 : id;
    char *l = malloc(MAX_LABEL + 1);
    if (!l)
        return NULL;
    size_t k = 0;
    if (!((*seg >= 'a' && *seg <= 'z') || (*seg >= 'A' && *seg <= 'Z')))
        l[k++] = 'R';
    for (; *seg && k < MAX_LABEL; seg++) {
        int c = (unsigned char)*seg;
        if (c >= 'a' && c <= 'z')
            c -= 'a' - 'A';
        else if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
            c = '_';
        l[k++] = (char)c;
    }
    l[k] = '\0';
    return l;
}

static int replace_str(char **dst, const char *s)
{
    char *c = strdup(s);
    if (!c)
        return LG_E_NOMEM;
    free(*dst);
    *dst = c;
    return LG_OK;
}

static void rule_free(lg_rule *r)
{
    lg_rule_free_code(r);
    free(r->id);
    free(r->category);
    free(r->message);
    free(r->label);
    free(r->mask);
    free(r->pattern);
    free(r->note);
    memset(r, 0, sizeof *r);
}

typedef struct kw {
    const char *s;
    size_t n, idx;
} kw;

static int kw_cmp(const void *a, const void *b)
{
    const kw *x = a, *y = b;
    if (x->n != y->n)
        return x->n > y->n ? -1 : 1;   /* longest first: "foobar" before "foo" */
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* One alternation of escaped keywords.  Every ASCII character other than a
 * letter or digit is escaped with a backslash, which PCRE2 always reads as
 * the literal character (\Q...\E would break on a keyword containing \E);
 * control characters become \x{hh}; bytes >= 0x80 (UTF-8) pass through. */
static int keyword_pattern(loader *L, const cJSON *arr, int icase, char **out)
{
    size_t n = (size_t)cJSON_GetArraySize(arr), i = 0;
    if (n == 0)
        return fail(L, "keywords: must not be empty");
    kw *v = calloc(n, sizeof *v);
    if (!v)
        return nomem(L);
    const cJSON *e;
    int rc = LG_OK;
    cJSON_ArrayForEach(e, arr) {
        size_t mark = path_index(L, i);
        if (!cJSON_IsString(e))
            rc = fail(L, "keywords[%zu]: expected a string, got %s", i, type_name(e));
        else if (!e->valuestring[0])
            rc = fail(L, "keywords[%zu]: must not be empty", i);
        path_pop(L, mark);
        if (rc != LG_OK) {
            free(v);
            return rc;
        }
        v[i].s = e->valuestring;
        v[i].n = strlen(e->valuestring);
        v[i].idx = i;
        i++;
    }
    qsort(v, n, sizeof *v, kw_cmp);
    lg_buf b;
    lg_buf_init(&b, (size_t)LG_POLICY_MAX_FILE * 6);
    rc = lg_buf_puts(&b, icase ? "(?i)(?:" : "(?:");
    for (i = 0; i < n && rc == LG_OK; i++) {
        if (i)
            rc = lg_buf_puts(&b, "|");
        for (size_t j = 0; j < v[i].n && rc == LG_OK; j++) {
            unsigned char c = (unsigned char)v[i].s[j];
            if (c >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                (c >= 'A' && c <= 'Z')) {
                rc = lg_buf_append(&b, &c, 1);
            } else if (c >= 0x20 && c < 0x7f) {
                char esc[2] = {'\\', (char)c};
                rc = lg_buf_append(&b, esc, 2);
            } else {
                rc = lg_buf_printf(&b, "\\x{%02x}", c);
            }
        }
    }
    if (rc == LG_OK)
        rc = lg_buf_puts(&b, ")");
    free(v);
    if (rc != LG_OK) {
        lg_buf_free(&b);
        return nomem(L);
    }
    *out = lg_buf_steal(&b, NULL);
    return *out ? LG_OK : nomem(L);
}

/* Keys a rule may have, and the subset an override may change. */
static const char *const rule_keys[] = {
    "id", "category", "on", "roles", "regex", "keywords", "ignore_case", "validate",
    "raw", "action", "redact", "mask", "label", "severity", "message", "note", NULL};
static const char *const override_keys[] = {
    "category", "on", "roles", "action", "redact", "mask", "label", "severity",
    "message", "note", NULL};

/* Apply the members of obj (already key-checked) that rules and overrides
 * share; other members (id, regex, ...) are the caller's. */
static int apply_fields(loader *L, lg_rule *r, const cJSON *obj)
{
    const cJSON *c;
    int rc = LG_OK;
    cJSON_ArrayForEach(c, obj) {
        const char *k = c->string, *s = NULL;
        int e;
        if (index_of(override_keys, k) < 0)
            continue;
        size_t mark = path_key(L, k);
        if (!strcmp(k, "category")) {
            if ((rc = get_string(L, c, &s)) == LG_OK && !valid_name(s, 63))
                rc = fail(L, "category: \"%.64s\" is not a valid name (1-63 of A-Z a-z 0-9 _ - .)", s);
            if (rc == LG_OK && replace_str(&r->category, s) != LG_OK)
                rc = nomem(L);
        } else if (!strcmp(k, "on")) {
            rc = get_mask(L, c, on_names, &r->on);
        } else if (!strcmp(k, "roles")) {
            rc = get_mask(L, c, role_names, &r->roles);
        } else if (!strcmp(k, "action")) {
            if ((rc = get_enum(L, c, action_names, 0, &e)) == LG_OK)
                r->action = e;
        } else if (!strcmp(k, "redact")) {
            if ((rc = get_enum(L, c, redact_names, 0, &e)) == LG_OK)
                r->redact = e;
        } else if (!strcmp(k, "severity")) {
            if ((rc = get_enum(L, c, sev_names, 0, &e)) == LG_OK)
                r->severity = e;
        } else if (!strcmp(k, "mask")) {
            if ((rc = get_string(L, c, &s)) == LG_OK && strlen(s) > 256)
                rc = fail(L, "mask: longer than 256 bytes");
            if (rc == LG_OK && replace_str(&r->mask, s) != LG_OK)
                rc = nomem(L);
        } else if (!strcmp(k, "label")) {
            if ((rc = get_string(L, c, &s)) == LG_OK && !valid_label(s))
                rc = fail(L, "label: \"%.64s\" must be 1-32 of A-Z 0-9 _ starting with A-Z", s);
            if (rc == LG_OK && replace_str(&r->label, s) != LG_OK)
                rc = nomem(L);
        } else if (!strcmp(k, "message")) {
            if ((rc = get_string(L, c, &s)) == LG_OK && strlen(s) > 1024)
                rc = fail(L, "message: longer than 1024 bytes");
            if (rc == LG_OK && replace_str(&r->message, s) != LG_OK)
                rc = nomem(L);
        } else if (!strcmp(k, "note")) {
            if ((rc = get_string(L, c, &s)) == LG_OK && replace_str(&r->note, s) != LG_OK)
                rc = nomem(L);
        }
        path_pop(L, mark);
        if (rc != LG_OK)
            return rc;
    }
    return LG_OK;
}

static int push_rule(loader *L, lg_rule **r, rinfo **ri)
{
    if (L->n == L->cap) {
        size_t cap = L->cap ? L->cap * 2 : 16;
        lg_rule *nr = realloc(L->rules, cap * sizeof *nr);
        if (!nr)
            return nomem(L);
        L->rules = nr;
        rinfo *ni = realloc(L->info, cap * sizeof *ni);
        if (!ni)
            return nomem(L);
        L->info = ni;
        L->cap = cap;
    }
    *r = &L->rules[L->n];
    *ri = &L->info[L->n];
    memset(*r, 0, sizeof **r);
    memset(*ri, 0, sizeof **ri);
    L->n++;
    return LG_OK;
}

/* Parse rules[idx] (path already pointing at it) into r. */
static int parse_rule(loader *L, const cJSON *obj, const char *src, int builtin,
                      lg_rule *r, rinfo *ri)
{
    int rc;
    if (!cJSON_IsObject(obj))
        return fail(L, "rule: expected an object, got %s", type_name(obj));
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(obj, "id");
    /* The id first, so that every later diagnostic can name the rule. */
    if (id && cJSON_IsString(id))
        L->rule_id = id->valuestring;
    if ((rc = check_keys(L, obj, rule_keys)) != LG_OK)
        return rc;
    if (!id)
        return fail(L, "rule: missing required key \"id\"");
    size_t mark = path_key(L, "id");
    const char *s = NULL;
    rc = get_string(L, id, &s);
    if (rc == LG_OK && !valid_name(s, MAX_ID))
        rc = fail(L, "id: \"%.64s\" is not a valid rule id (1-127 of A-Z a-z 0-9 _ - ., "
                     "dot-separated, e.g. corp.codenames)", s);
    if (rc == LG_OK && strcmp(s, RESTORE_ID) == 0)
        rc = fail(L, "id: \"%s\" is reserved for the internal restore rule", RESTORE_ID);
    path_pop(L, mark);
    if (rc != LG_OK)
        return rc;

    /* Defaults (see docs/policy.md). */
    r->src = src;
    r->builtin = builtin;
    r->on = LG_ON_PROMPT;
    r->roles = LG_ROLE_ALL;
    r->severity = LG_SEV_MEDIUM;
    r->action = LG_ACT_LOG;
    r->redact = LG_REDACT_PLACEHOLDER;
    r->validator = LG_VAL_NONE;
    r->id = strdup(s);
    r->category = strndup(s, strcspn(s, "."));
    r->label = default_label(s);
    r->mask = strdup("[REDACTED]");
    r->note = strdup("");
    r->message = NULL;
    if (!r->id || !r->category || !r->label || !r->mask || !r->note)
        return nomem(L);
    char msg[200];
    snprintf(msg, sizeof msg, "matched rule %s", s);
    if (!(r->message = strdup(msg)))
        return nomem(L);

    const cJSON *re = cJSON_GetObjectItemCaseSensitive(obj, "regex");
    const cJSON *kws = cJSON_GetObjectItemCaseSensitive(obj, "keywords");
    const cJSON *ic = cJSON_GetObjectItemCaseSensitive(obj, "ignore_case");
    if (re && kws) {
        mark = path_key(L, "keywords");
        rc = fail_key(L, 0, "rule: has both \"regex\" and \"keywords\" (exactly one is allowed)");
        path_pop(L, mark);
        return rc;
    }
    if (!re && !kws)
        return fail(L, "rule: needs \"regex\" or \"keywords\"");
    int icase = 0;
    if (ic) {
        mark = path_key(L, "ignore_case");
        if (!cJSON_IsBool(ic))
            rc = fail(L, "ignore_case: expected a boolean, got %s", type_name(ic));
        else if (re)
            rc = fail(L, "ignore_case: applies to \"keywords\"; in a regex write (?i)");
        icase = cJSON_IsTrue(ic);
        path_pop(L, mark);
        if (rc != LG_OK)
            return rc;
    }
    if (re) {
        mark = path_key(L, "regex");
        rc = get_string(L, re, &s);
        if (rc == LG_OK && !s[0])
            rc = fail(L, "regex: must not be empty");
        if (rc == LG_OK && !(r->pattern = strdup(s)))
            rc = nomem(L);
    } else {
        mark = path_key(L, "keywords");
        rc = want_type(L, kws, cJSON_IsArray(kws), "an array");
        if (rc == LG_OK)
            rc = keyword_pattern(L, kws, icase, &r->pattern);
    }
    if (!L->ptrunc && L->plen < sizeof ri->pat_path)
        memcpy(ri->pat_path, L->path, L->plen + 1);
    path_pop(L, mark);
    if (rc != LG_OK)
        return rc;

    /* Remaining fields; validate is rule-only. */
    const cJSON *val = cJSON_GetObjectItemCaseSensitive(obj, "validate");
    if (val) {
        int e;
        mark = path_key(L, "validate");
        rc = get_enum(L, val, val_names, 1, &e);
        path_pop(L, mark);
        if (rc != LG_OK)
            return rc;
        r->validator = e;
    }
    /* raw: match the original text instead of the normalised view, for
     * rules that look for what normalisation removes (invisible
     * characters).  Rule-only, like validate. */
    const cJSON *rawv = cJSON_GetObjectItemCaseSensitive(obj, "raw");
    if (rawv) {
        mark = path_key(L, "raw");
        rc = want_type(L, rawv, cJSON_IsBool(rawv), "true or false");
        path_pop(L, mark);
        if (rc != LG_OK)
            return rc;
        r->raw = cJSON_IsTrue(rawv);
    }
    return apply_fields(L, r, obj);
}

/* ==== Documents ==== */

/* cJSON would silently cut a string or key at an escaped NUL (\\u0000): a
 * regex "a\\u0000b" would become "a", a key "mode\\u0000x" would become
 * "mode".  In a valid document backslashes occur only inside strings, so a
 * linear scan that steps over escape pairs finds every such escape.
 * Returns the offset of the first one, or (size_t)-1. */
static size_t find_nul_escape(const char *t, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (t[i] != '\\')
            continue;
        if (t[i + 1] == 'u' && i + 6 <= len && memcmp(t + i + 2, "0000", 4) == 0)
            return i;
        i++;
    }
    return (size_t)-1;
}

/* Parse text into a cJSON tree; on failure fill the diagnostic. */
static int parse_doc(loader *L, const doc *dc, cJSON **root)
{
    const char *t = dc->text;
    size_t len = dc->len, i = 0;
    L->cur = dc;
    const char *nul = memchr(t, '\0', len);
    if (nul) {
        memset(L->d, 0, sizeof *L->d);
        set_str(L->d->file, sizeof L->d->file, dc->name);
        offset_pos(t, len, (size_t)(nul - t), &L->d->line, &L->d->col);
        set_str(L->d->msg, sizeof L->d->msg, "NUL byte in policy text");
        return LG_E_POLICY;
    }
    while (i < len && strchr(" \t\r\n", t[i]))
        i++;
    if (i == len) {
        memset(L->d, 0, sizeof *L->d);
        set_str(L->d->file, sizeof L->d->file, dc->name);
        offset_pos(t, len, len, &L->d->line, &L->d->col);
        set_str(L->d->msg, sizeof L->d->msg, "empty policy (expected a JSON object)");
        return LG_E_POLICY;
    }
    /* Syntax first with the walker: its error offsets are exact (cJSON's
     * point at the end of the text for many errors), it is stricter (UTF-8,
     * nesting), and positions come from it, so it must accept the document. */
    size_t eoff = 0;
    int rc = lg_json_walk(t, len, 0, NULL, NULL, &eoff);
    size_t nul_at = rc == LG_OK ? find_nul_escape(t, len) : (size_t)-1;
    if (nul_at != (size_t)-1) {
        memset(L->d, 0, sizeof *L->d);
        set_str(L->d->file, sizeof L->d->file, dc->name);
        offset_pos(t, len, nul_at, &L->d->line, &L->d->col);
        set_str(L->d->msg, sizeof L->d->msg, "string contains \\u0000 (NUL is not allowed)");
        return LG_E_POLICY;
    }
    if (rc != LG_OK) {
        memset(L->d, 0, sizeof *L->d);
        set_str(L->d->file, sizeof L->d->file, dc->name);
        offset_pos(t, len, eoff, &L->d->line, &L->d->col);
        unsigned char c = eoff < len ? (unsigned char)t[eoff] : 0;
        if (rc == LG_E_JSON_DEPTH)
            set_str(L->d->msg, sizeof L->d->msg, "malformed JSON: nested too deeply");
        else if (eoff >= len)
            set_str(L->d->msg, sizeof L->d->msg, "malformed JSON: unexpected end of text");
        else if (c >= 0x80)
            set_str(L->d->msg, sizeof L->d->msg, "malformed JSON: invalid UTF-8");
        else if (c >= 0x20 && c < 0x7f)
            snprintf(L->d->msg, sizeof L->d->msg, "malformed JSON: unexpected '%c'", c);
        else
            snprintf(L->d->msg, sizeof L->d->msg, "malformed JSON: unexpected byte 0x%02x", c);
        return LG_E_POLICY;
    }
    const char *end = NULL;
    /* cJSON should accept whatever the walker accepted; if not, its own
     * error position is the best we have.  len + 1 includes the copy's
     * terminating NUL, so that require_null_terminated rejects trailing
     * garbage. */
    *root = cJSON_ParseWithLengthOpts(t, len + 1, &end, 1);
    if (!*root) {
        size_t off = end && end >= t && end <= t + len ? (size_t)(end - t) : len;
        memset(L->d, 0, sizeof *L->d);
        set_str(L->d->file, sizeof L->d->file, dc->name);
        offset_pos(t, len, off, &L->d->line, &L->d->col);
        if (off >= len)
            set_str(L->d->msg, sizeof L->d->msg, "malformed JSON: unexpected end of text");
        else
            snprintf(L->d->msg, sizeof L->d->msg, "malformed JSON near '%.1s'", t + off);
        return LG_E_POLICY;
    }
    if (!cJSON_IsObject(*root)) {
        L->plen = 0;
        L->path[0] = '\0';
        rc = fail(L, "policy: expected a JSON object at the top, got %s", type_name(*root));
        cJSON_Delete(*root);
        *root = NULL;
        return rc;
    }
    return LG_OK;
}

static const char *add_source(loader *L, const char *name)
{
    for (size_t i = 0; i < L->p->nsources; i++)
        if (strcmp(L->p->sources[i], name) == 0)
            return L->p->sources[i];
    char **ns = realloc(L->p->sources, (L->p->nsources + 1) * sizeof *ns);
    if (!ns)
        return NULL;
    L->p->sources = ns;
    if (!(ns[L->p->nsources] = strdup(name)))
        return NULL;
    return ns[L->p->nsources++];
}

typedef struct rulepos {
    size_t *off;  /* start of rules[i], or SIZE_MAX */
    size_t n;
} rulepos;

/* One walk records where every top-level rules[i] starts (a walk per rule
 * would make a file with many rules quadratic). */
static int rulepos_cb(void *ud, const lg_json_value *v)
{
    rulepos *rp = ud;
    if (v->depth != 2 || v->path_len < 8 || memcmp(v->path, "rules[", 6) != 0)
        return 0;
    size_t i = 0, k = 6;
    for (; k < v->path_len && v->path[k] >= '0' && v->path[k] <= '9'; k++)
        i = i * 10 + (size_t)(v->path[k] - '0');
    if (k + 1 == v->path_len && v->path[k] == ']' && i < rp->n)
        rp->off[i] = v->start;
    return 0;
}

/* rules: [...] of document dc; user = 1 for the policy file. */
static int load_rules(loader *L, const doc *dc, const cJSON *arr, int builtin, int user)
{
    const char *src = add_source(L, dc->name);
    if (!src)
        return nomem(L);
    size_t mark = path_key(L, "rules");
    int rc = want_type(L, arr, cJSON_IsArray(arr), "an array");
    size_t idx = 0;
    const cJSON *e;
    rulepos rp = {NULL, 0};
    size_t at_off = 0;   /* rules come in text order: positions advance */
    int at_line = 1, at_col = 1;
    if (rc == LG_OK) {
        rp.n = (size_t)cJSON_GetArraySize(arr);
        rp.off = malloc((rp.n ? rp.n : 1) * sizeof *rp.off);
        if (!rp.off)
            rc = nomem(L);
        for (size_t i = 0; i < rp.n && rp.off; i++)
            rp.off[i] = (size_t)-1;
        if (rc == LG_OK)
            (void)lg_json_walk(dc->text, dc->len, 0, rulepos_cb, &rp, NULL);
    }
    if (rc == LG_OK) {
        cJSON_ArrayForEach(e, arr) {
            size_t m2 = path_index(L, idx);
            lg_rule *r;
            rinfo *ri;
            L->rule_id = NULL;
            if ((rc = push_rule(L, &r, &ri)) != LG_OK)
                break;
            ri->text = dc->text;
            ri->len = dc->len;
            ri->name = dc->name;
            ri->user = user;
            rc = parse_rule(L, e, src, builtin, r, ri);
            if (rc == LG_OK && idx < rp.n && rp.off[idx] != (size_t)-1 &&
                rp.off[idx] >= at_off && rp.off[idx] <= dc->len) {
                pos_advance(dc->text, at_off, rp.off[idx], &at_line, &at_col);
                at_off = rp.off[idx];
                r->line = at_line;
                r->col = at_col;
            }
            if (rc != LG_OK) {
                rule_free(r);
                L->n--;
                path_pop(L, m2);
                break;
            }
            /* Duplicates: within a document (or across packs) an error; a
             * user rule with a built-in rule's id replaces it in place. */
            size_t at;
            lg_rule *old = NULL;
            for (at = 0; at + 1 < L->n; at++)
                if (strcmp(L->rules[at].id, r->id) == 0) {
                    old = &L->rules[at];
                    break;
                }
            if (old && user && !L->info[at].user) {
                rule_free(old);
                *old = *r;
                L->info[at] = *ri;
                L->n--;
            } else if (old) {
                size_t m3 = path_key(L, "id");
                rc = fail(L, "duplicate rule id \"%s\" (first defined in %s at line %d)",
                          r->id, L->info[at].name, old->line);
                path_pop(L, m3);
                rule_free(r);
                L->n--;
                path_pop(L, m2);
                break;
            }
            path_pop(L, m2);
            idx++;
        }
    }
    free(rp.off);
    L->rule_id = NULL;
    path_pop(L, mark);
    return rc;
}

static int load_pack(loader *L, const char *pname)
{
    const char *json = NULL, *nm;
    size_t len = 0, i;
    for (i = 0; (nm = lg_policy_pack(i, &json, &len)); i++)
        if (strcmp(nm, pname) == 0)
            break;
    if (!nm)
        return LG_E_INVAL;
    if (strcmp(pname, "injection") == 0)
        L->injection_pack = 1;
    char dname[128];
    snprintf(dname, sizeof dname, "<built-in:%s>", pname);
    doc dc = {dname, json, len};
    const doc *saved = L->cur;
    char spath[sizeof L->path];
    size_t splen = L->plen;
    int strunc = L->ptrunc;
    memcpy(spath, L->path, sizeof spath);
    L->plen = 0;
    L->ptrunc = 0;
    L->path[0] = '\0';

    cJSON *root = NULL;
    int rc = parse_doc(L, &dc, &root);
    static const char *const pack_keys[] = {"pack", "description", "rules", NULL};
    if (rc == LG_OK)
        rc = check_keys(L, root, pack_keys);
    if (rc == LG_OK) {
        const cJSON *pn = cJSON_GetObjectItemCaseSensitive(root, "pack");
        if (!cJSON_IsString(pn) || strcmp(pn->valuestring, pname) != 0)
            rc = fail(L, "pack: name does not match \"%s\"", pname);
    }
    if (rc == LG_OK) {
        const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rules");
        if (rs) {
            /* The pack's name must outlive its text: keep it in sources
             * (load_rules does), and point rinfo names there. */
            const char *src = add_source(L, dname);
            if (!src)
                rc = nomem(L);
            else {
                dc.name = src;
                rc = load_rules(L, &dc, rs, 1, 0);
            }
        }
    }
    cJSON_Delete(root);
    L->cur = saved;
    memcpy(L->path, spath, sizeof spath);
    L->plen = splen;
    L->ptrunc = strunc;
    return rc;
}

/* ==== Top level ==== */

static const char *const top_keys[] = {"version", "mode", "fail", "endpoints", "packs", "log",
                                       "limits", "rules", "overrides", "disable", "canary",
                                       "decode", "scope", NULL};

static int valid_endpoint(const char *s)
{
    if (strcmp(s, "loopback") == 0)
        return 1;
    const char *colon;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb == s + 1 || rb[1] != ':')
            return 0;
        for (const char *q = s + 1; q < rb; q++)
            if (!strchr("0123456789abcdefABCDEF:.", *q))
                return 0;
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || colon == s)
            return 0;
        for (const char *q = s; q < colon; q++)
            if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
                  (*q >= '0' && *q <= '9') || *q == '.' || *q == '-' || *q == '_'))
                return 0;
    }
    const char *q = colon + 1;
    if (!*q || strlen(q) > 5)
        return 0;
    long port = 0;
    for (; *q; q++) {
        if (*q < '0' || *q > '9')
            return 0;
        port = port * 10 + (*q - '0');
    }
    return port >= 1 && port <= 65535 && colon[1] != '0';
}

static int load_endpoints(loader *L, const cJSON *v)
{
    int rc = want_type(L, v, cJSON_IsArray(v), "an array");
    if (rc != LG_OK)
        return rc;
    size_t n = (size_t)cJSON_GetArraySize(v), i = 0;
    if (n == 0)
        return fail(L, "endpoints: must not be empty (an empty list would guard nothing)");
    lg_policy *p = L->p;
    for (i = 0; i < p->nendpoints; i++)
        free(p->endpoints[i]);
    free(p->endpoints);
    p->nendpoints = 0;
    if (!(p->endpoints = calloc(n, sizeof *p->endpoints)))
        return nomem(L);
    const cJSON *e;
    i = 0;
    cJSON_ArrayForEach(e, v) {
        size_t mark = path_index(L, i++);
        const char *s = NULL;
        rc = get_string(L, e, &s);
        if (rc == LG_OK && !valid_endpoint(s))
            rc = fail(L, "endpoints: \"%.64s\" is not \"loopback\", \"host:port\", "
                         "\"a.b.c.d:port\" or \"[v6]:port\"", s);
        path_pop(L, mark);
        if (rc != LG_OK)
            return rc;
        if (!(p->endpoints[p->nendpoints] = strdup(s)))
            return nomem(L);
        p->nendpoints++;
    }
    return LG_OK;
}

static int glob_match(const char *pat, const char *id)
{
    size_t n = strlen(pat);
    if (n && pat[n - 1] == '*')
        return strncmp(pat, id, n - 1) == 0;
    return strcmp(pat, id) == 0;
}

/* A rule name or a glob with one trailing '*'. */
static int check_glob(loader *L, const char *pat)
{
    size_t n = strlen(pat);
    const char *star = strchr(pat, '*');
    if (star && star != pat + n - 1)
        return fail(L, "\"%.64s\": only a trailing '*' is supported", pat);
    if (n == 0)
        return fail(L, "rule name must not be empty");
    return LG_OK;
}

typedef struct ov {
    const cJSON *item;
    size_t order;  /* position in the object */
} ov;

static int ov_cmp(const void *a, const void *b)
{
    const ov *x = a, *y = b;
    size_t nx = strlen(x->item->string), ny = strlen(y->item->string);
    int gx = nx && x->item->string[nx - 1] == '*', gy = ny && y->item->string[ny - 1] == '*';
    if (gx != gy)
        return gx ? -1 : 1;            /* globs before exact ids */
    if (gx && nx != ny)
        return nx < ny ? -1 : 1;       /* shorter (broader) globs first */
    return x->order < y->order ? -1 : x->order > y->order;
}

static int load_overrides(loader *L, const cJSON *v)
{
    int rc = want_type(L, v, cJSON_IsObject(v), "an object");
    if (rc == LG_OK)
        rc = check_keys(L, v, NULL);
    if (rc != LG_OK)
        return rc;
    size_t n = (size_t)cJSON_GetArraySize(v), i = 0;
    if (n == 0)
        return LG_OK;
    ov *o = calloc(n, sizeof *o);
    if (!o)
        return nomem(L);
    const cJSON *c;
    cJSON_ArrayForEach(c, v) {
        o[i].item = c;
        o[i].order = i;
        i++;
    }
    qsort(o, n, sizeof *o, ov_cmp);
    for (i = 0; i < n && rc == LG_OK; i++) {
        c = o[i].item;
        size_t mark = path_key(L, c->string);
        L->rule_id = c->string;
        rc = check_glob(L, c->string);
        if (rc == LG_OK)
            rc = want_type(L, c, cJSON_IsObject(c), "an object");
        if (rc == LG_OK)
            rc = check_keys(L, c, override_keys);
        size_t hits = 0;
        for (size_t j = 0; j < L->n && rc == LG_OK; j++) {
            if (!glob_match(c->string, L->rules[j].id))
                continue;
            hits++;
            rc = apply_fields(L, &L->rules[j], c);
        }
        if (rc == LG_OK && hits == 0)
            rc = fail_key(L, 0, "override names no rule (no loaded rule matches \"%.64s\")",
                          c->string);
        path_pop(L, mark);
    }
    L->rule_id = NULL;
    free(o);
    return rc;
}

static int load_disable(loader *L, const cJSON *v)
{
    int rc = want_type(L, v, cJSON_IsArray(v), "an array");
    size_t i = 0;
    const cJSON *e;
    if (rc != LG_OK)
        return rc;
    cJSON_ArrayForEach(e, v) {
        size_t mark = path_index(L, i++);
        const char *s = NULL;
        rc = get_string(L, e, &s);
        if (rc == LG_OK) {
            L->rule_id = s;
            rc = check_glob(L, s);
        }
        size_t hits = 0;
        for (size_t j = 0; j < L->n && rc == LG_OK; j++)
            if (glob_match(s, L->rules[j].id)) {
                L->info[j].disabled = 1;
                hits++;
            }
        if (rc == LG_OK && hits == 0)
            rc = fail(L, "disable names no rule (no loaded rule matches \"%.64s\")", s);
        L->rule_id = NULL;
        path_pop(L, mark);
        if (rc != LG_OK)
            return rc;
    }
    return LG_OK;
}

static int load_packs(loader *L, const cJSON *packs)
{
    const char *nm;
    int rc = LG_OK;
    if (!packs) {
        for (size_t i = 0; rc == LG_OK && (nm = lg_policy_pack(i, NULL, NULL)); i++)
            rc = load_pack(L, nm);
        return rc;
    }
    size_t mark = path_key(L, "packs");
    rc = want_type(L, packs, cJSON_IsArray(packs), "an array");
    size_t i = 0;
    const cJSON *e, *f;
    if (rc == LG_OK) {
        cJSON_ArrayForEach(e, packs) {
            size_t m2 = path_index(L, i++);
            const char *s = NULL;
            rc = get_string(L, e, &s);
            for (f = packs->child; rc == LG_OK && f != e; f = f->next)
                if (cJSON_IsString(f) && strcmp(f->valuestring, s) == 0)
                    rc = fail(L, "packs: \"%.64s\" listed twice", s);
            if (rc == LG_OK) {
                rc = load_pack(L, s);
                if (rc == LG_E_INVAL) {
                    char list[256];
                    size_t k = 0;
                    list[0] = '\0';
                    for (size_t j = 0; (nm = lg_policy_pack(j, NULL, NULL)) && k < sizeof list; j++)
                        k += (size_t)snprintf(list + k, sizeof list - k, "%s%s", j ? ", " : "", nm);
                    rc = fail(L, "packs: unknown pack \"%.64s\" (built-in packs: %s)", s, list);
                }
            }
            path_pop(L, m2);
            if (rc != LG_OK)
                break;
        }
    }
    path_pop(L, mark);
    return rc;
}

static int load_settings(loader *L, const cJSON *root)
{
    lg_policy *p = L->p;
    const cJSON *c;
    int rc = LG_OK, e;
    cJSON_ArrayForEach(c, root) {
        const char *k = c->string;
        size_t mark = path_key(L, k);
        if (!strcmp(k, "version")) {
            size_t ver;
            rc = want_type(L, c, cJSON_IsNumber(c), "a number");
            if (rc == LG_OK && (get_uint(L, c, 1, 1, &ver) != LG_OK))
                rc = fail(L, "version: unsupported version %g (this llmguard reads version 1)",
                          c->valuedouble);
        } else if (!strcmp(k, "mode")) {
            if ((rc = get_enum(L, c, mode_names, 0, &e)) == LG_OK)
                p->mode = e;
        } else if (!strcmp(k, "fail")) {
            if ((rc = get_enum(L, c, fail_names, 0, &e)) == LG_OK)
                p->fail = e;
        } else if (!strcmp(k, "endpoints")) {
            rc = load_endpoints(L, c);
        } else if (!strcmp(k, "canary") || !strcmp(k, "decode") || !strcmp(k, "scope")) {
            rc = want_type(L, c, cJSON_IsBool(c), "true or false");
            if (rc == LG_OK)
                *(!strcmp(k, "canary") ? &p->canary : !strcmp(k, "decode") ? &p->decode : &p->scope) =
                    cJSON_IsTrue(c);
        } else if (!strcmp(k, "log")) {
            static const char *const log_keys[] = {"text", "excerpt_chars", NULL};
            rc = want_type(L, c, cJSON_IsObject(c), "an object");
            if (rc == LG_OK)
                rc = check_keys(L, c, log_keys);
            const cJSON *m;
            for (m = rc == LG_OK ? c->child : NULL; m && rc == LG_OK; m = m->next) {
                size_t m2 = path_key(L, m->string);
                if (!strcmp(m->string, "text")) {
                    if ((rc = get_enum(L, m, logtext_names, 0, &e)) == LG_OK)
                        p->log_text = e;
                } else {
                    rc = get_uint(L, m, 0, 4096, &p->excerpt_chars);
                }
                path_pop(L, m2);
            }
        } else if (!strcmp(k, "limits")) {
            static const char *const lim_keys[] = {"max_body", "max_hold", NULL};
            rc = want_type(L, c, cJSON_IsObject(c), "an object");
            if (rc == LG_OK)
                rc = check_keys(L, c, lim_keys);
            const cJSON *m;
            for (m = rc == LG_OK ? c->child : NULL; m && rc == LG_OK; m = m->next) {
                size_t m2 = path_key(L, m->string);
                if (!strcmp(m->string, "max_body"))
                    rc = get_uint(L, m, 1024, 1024.0 * 1024 * 1024, &p->max_body);
                else
                    rc = get_uint(L, m, 64, 1024.0 * 1024, &p->max_hold);
                path_pop(L, m2);
            }
        }
        path_pop(L, mark);
        if (rc != LG_OK)
            return rc;
    }
    return LG_OK;
}

/* An internal rule (not from any pack or file), added at the end. */
static int add_internal_rule(loader *L, const lg_rule *tpl, const char *category,
                             const char *message, const char *label, const char *mask,
                             const char *pattern, const char *note, const char *id)
{
    lg_rule *r;
    rinfo *ri;
    int rc = push_rule(L, &r, &ri);
    if (rc != LG_OK)
        return rc;
    r->on = tpl->on;
    r->roles = LG_ROLE_ALL;
    r->severity = tpl->severity;
    r->action = tpl->action;
    r->redact = tpl->redact;
    r->restore = tpl->restore;
    r->builtin = 1;
    r->src = add_source(L, INTERNAL_SRC);
    r->id = strdup(id);
    r->category = strdup(category);
    r->message = strdup(message);
    r->label = strdup(label);
    r->mask = strdup(mask);
    r->pattern = strdup(pattern);
    r->note = strdup(note);
    if (!r->src || !r->id || !r->category || !r->message || !r->label || !r->mask ||
        !r->pattern || !r->note)
        return nomem(L);
    ri->name = INTERNAL_SRC;
    return LG_OK;
}

static int add_restore_rule(loader *L)
{
    int need = 0;
    for (size_t i = 0; i < L->n; i++)
        if (L->rules[i].action == LG_ACT_REDACT && L->rules[i].redact == LG_REDACT_PLACEHOLDER)
            need = 1;
    if (!need)
        return LG_OK;
    const lg_rule tpl = { .on = LG_ON_RESPONSE, .severity = LG_SEV_INFO, .action = LG_ACT_REDACT,
                          .redact = LG_REDACT_PLACEHOLDER, .restore = 1 };
    return add_internal_rule(L, &tpl, "vault", "placeholder restored", "RESTORE", "",
                             LG_VAULT_PATTERN,
                             "Internal: matches placeholders issued by the vault in answers and "
                             "puts the original values back. Added when a rule redacts with "
                             "placeholders.",
                             RESTORE_ID);
}

/* With "canary": true, an internal rule blocks answers carrying a canary
 * marker, unless the policy defines a rule with that id itself. */
static int add_canary_rule(loader *L)
{
    if (!L->p->canary)
        return LG_OK;
    for (size_t i = 0; i < L->n; i++)
        if (strcmp(L->rules[i].id, LG_CANARY_ID) == 0)
            return LG_OK;
    const lg_rule tpl = { .on = LG_ON_RESPONSE, .severity = LG_SEV_HIGH, .action = LG_ACT_BLOCK,
                          .redact = LG_REDACT_MASK };
    return add_internal_rule(L, &tpl, "output",
                             "the answer repeats the canary marker from the system prompt "
                             "(system prompt leak)",
                             "CANARY", "[REDACTED]", LG_CANARY_PATTERN,
                             "Internal: added by \"canary\": true. Matches the shape of the "
                             "marker the engine appends to system prompts; a model that repeats "
                             "it is leaking its instructions. Nothing else has this shape by "
                             "accident.",
                             LG_CANARY_ID);
}

/* With the injection pack and "scope" on (the default), the rule the
 * system-prompt scope check (scope.h) reports under.  It joins the pack's
 * rules, so overrides, disable and replacement by a file rule treat it like
 * any of them; its matching is done by scope.c, not by a pattern. */
static int add_scope_rule(loader *L)
{
    if (!L->p->scope || !L->injection_pack)
        return LG_OK;
    const lg_rule tpl = { .on = LG_ON_PROMPT, .severity = LG_SEV_HIGH, .action = LG_ACT_BLOCK,
                          .redact = LG_REDACT_MASK };
    int rc = add_internal_rule(L, &tpl, "injection",
                               "the request asks for something its system prompt rules out "
                               "(a restricted topic or a protected value)",
                               "SYSTEM_SCOPE", "[REDACTED]", "",
                               "Internal: matched by the scope check (core/scope.c), not by a "
                               "pattern. Reads the restrictions the request's own system prompt "
                               "states (never / do not / avoid / is not allowed + discuss, share, "
                               "reveal, ... + a topic; protected passwords and personal details; "
                               "English and Chinese) and flags user and tool text asking about "
                               "them. It must not fire without a system prompt, on system "
                               "prompts that restrict nothing, or on allow-lists (\"only discuss "
                               "X\"), which are not read as prohibitions of everything else.",
                               LG_SCOPE_RULE_ID);
    if (rc == LG_OK) {
        lg_rule *r = &L->rules[L->n - 1];
        r->scope = 1;
        r->roles = LG_ROLE_USER | LG_ROLE_TOOL | LG_ROLE_OTHER; /* as every injection rule */
    }
    return rc;
}

static int compile_all(loader *L)
{
    for (size_t i = 0; i < L->n; i++) {
        lg_rule *r = &L->rules[i];
        if (r->scope)
            continue; /* matched by scope.c; "" would match everywhere */
        char err[256] = "";
        size_t off = 0;
        int rc = lg_rule_compile(r, err, sizeof err, &off);
        if (rc == LG_OK) {
            size_t lb = lg_rule_lookbehind(r);
            if (lb > L->p->max_lookbehind)
                L->p->max_lookbehind = lb;
            continue;
        }
        if (rc == LG_E_NOMEM)
            return nomem(L);
        rinfo *ri = &L->info[i];
        doc dc = {ri->name, ri->text, ri->len};
        L->rule_id = r->id;
        L->cur = ri->text ? &dc : NULL;
        snprintf(L->path, sizeof L->path, "%s", ri->pat_path);
        L->plen = strlen(L->path);
        L->ptrunc = 0;
        if (!ri->text) {
            memset(L->d, 0, sizeof *L->d);
            set_str(L->d->file, sizeof L->d->file, ri->name);
            set_str(L->d->rule, sizeof L->d->rule, r->id);
            snprintf(L->d->msg, sizeof L->d->msg, "regex: %s at offset %zu", err, off);
        } else {
            fail(L, "regex: %s at offset %zu", err, off);
        }
        return rc == LG_E_REGEX ? LG_E_REGEX : LG_E_POLICY;
    }
    return LG_OK;
}

void lg_policy_free(lg_policy *p)
{
    if (!p)
        return;
    lg_scan_release(p); /* it refers to the rules */
    for (size_t i = 0; i < p->nrules; i++)
        rule_free(&p->rules[i]);
    free(p->rules);
    for (size_t i = 0; i < p->nendpoints; i++)
        free(p->endpoints[i]);
    free(p->endpoints);
    for (size_t i = 0; i < p->nsources; i++)
        free(p->sources[i]);
    free(p->sources);
    free(p->source);
    free(p);
}

int lg_policy_load(const char *name, const char *json, size_t len, lg_policy **out,
                   lg_diag *d)
{
    lg_diag scratch;
    loader L;
    memset(&L, 0, sizeof L);
    L.d = d ? d : &scratch;
    memset(L.d, 0, sizeof *L.d);
    if (out)
        *out = NULL;
    if (!name)
        name = "<policy>";
    if (!out || (!json && len)) {
        set_str(L.d->msg, sizeof L.d->msg, "invalid argument");
        return LG_E_INVAL;
    }
    if (len > LG_POLICY_MAX_FILE) {
        set_str(L.d->file, sizeof L.d->file, name);
        snprintf(L.d->msg, sizeof L.d->msg, "policy too large (%zu bytes; the limit is %u)",
                 len, LG_POLICY_MAX_FILE);
        return LG_E_POLICY;
    }
    lg_policy *p = calloc(1, sizeof *p);
    char *text = malloc(len + 1);
    if (!p || !text) {
        free(p);
        free(text);
        return nomem(&L);
    }
    if (len)
        memcpy(text, json, len);
    text[len] = '\0';
    L.p = p;
    p->version = 1;
    p->mode = LG_MODE_ENFORCE;
    p->fail = LG_FAIL_OPEN;
    p->log_text = LG_LOG_TEXT_REDACTED;
    p->excerpt_chars = DEF_EXCERPT;
    p->max_body = DEF_MAX_BODY;
    p->max_hold = DEF_MAX_HOLD;
    p->decode = 1;
    p->scope = 1;
    int rc = LG_OK;
    doc user = {NULL, text, len};
    cJSON *root = NULL;
    if (!(p->source = strdup(name)) || !(p->endpoints = calloc(1, sizeof *p->endpoints)) ||
        !(p->endpoints[0] = strdup("loopback"))) {
        rc = nomem(&L);
        goto out;
    }
    p->nendpoints = 1;
    /* Rules point at the names in p->sources; so does the user document. */
    if (!(user.name = add_source(&L, name))) {
        rc = nomem(&L);
        goto out;
    }
    if ((rc = parse_doc(&L, &user, &root)) != LG_OK)
        goto out;
    if ((rc = check_keys(&L, root, top_keys)) != LG_OK ||
        (rc = load_settings(&L, root)) != LG_OK ||
        (rc = load_packs(&L, cJSON_GetObjectItemCaseSensitive(root, "packs"))) != LG_OK ||
        (rc = add_scope_rule(&L)) != LG_OK)
        goto out;
    const cJSON *v;
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "rules")) &&
        (rc = load_rules(&L, &user, v, 0, 1)) != LG_OK)
        goto out;
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "overrides"))) {
        size_t mark = path_key(&L, "overrides");
        rc = load_overrides(&L, v);
        path_pop(&L, mark);
        if (rc != LG_OK)
            goto out;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "disable"))) {
        size_t mark = path_key(&L, "disable");
        rc = load_disable(&L, v);
        path_pop(&L, mark);
        if (rc != LG_OK)
            goto out;
    }
    /* Drop disabled rules, keeping order. */
    size_t k = 0;
    for (size_t i = 0; i < L.n; i++) {
        if (L.info[i].disabled) {
            rule_free(&L.rules[i]);
            continue;
        }
        L.rules[k] = L.rules[i];
        L.info[k] = L.info[i];
        k++;
    }
    L.n = k;
    if ((rc = add_restore_rule(&L)) != LG_OK || (rc = add_canary_rule(&L)) != LG_OK ||
        (rc = compile_all(&L)) != LG_OK)
        goto out;
out:
    cJSON_Delete(root);
    p->rules = L.rules;
    p->nrules = L.n;
    free(L.info);
    free(text);
    if (rc != LG_OK) {
        lg_policy_free(p);
        return rc;
    }
    if (p->nrules == 0) {
        free(p->rules);
        p->rules = NULL;
    }
    if (lg_scan_prepare(p) != LG_OK) {
        lg_policy_free(p);
        if (d) {
            memset(d, 0, sizeof *d);
            snprintf(d->file, sizeof d->file, "%s", name ? name : "");
            snprintf(d->msg, sizeof d->msg, "out of memory");
        }
        return LG_E_NOMEM;
    }
    *out = p;
    return LG_OK;
}

int lg_policy_builtin(lg_policy **out, lg_diag *d)
{
    return lg_policy_load("<built-in>", "{}", 2, out, d);
}

int lg_policy_load_file(const char *path, lg_policy **out, lg_diag *d)
{
    lg_diag scratch;
    if (!d)
        d = &scratch;
    memset(d, 0, sizeof *d);
    if (out)
        *out = NULL;
    if (!path || !out) {
        set_str(d->msg, sizeof d->msg, "invalid argument");
        return LG_E_INVAL;
    }
    set_str(d->file, sizeof d->file, path);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        snprintf(d->msg, sizeof d->msg, "cannot open policy: %s", strerror(errno));
        return LG_E_POLICY;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(d->msg, sizeof d->msg, "cannot read policy: %s",
                 S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file");
        close(fd);
        return LG_E_POLICY;
    }
    /* Read to EOF rather than trusting st_size, with a hard cap. */
    size_t cap = (size_t)LG_POLICY_MAX_FILE + 1, len = 0;
    size_t alloc = st.st_size > 0 && (size_t)st.st_size < cap ? (size_t)st.st_size + 1 : 4096;
    char *buf = malloc(alloc);
    int rc = LG_OK;
    while (buf) {
        if (len == alloc) {
            size_t na = alloc * 2 > cap ? cap : alloc * 2;
            if (na == alloc)
                break;
            char *nb = realloc(buf, na);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            alloc = na;
        }
        ssize_t r = read(fd, buf + len, alloc - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(d->msg, sizeof d->msg, "cannot read policy: %s", strerror(errno));
            rc = LG_E_POLICY;
            break;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    if (!buf) {
        set_str(d->msg, sizeof d->msg, "out of memory");
        return LG_E_NOMEM;
    }
    if (rc == LG_OK && len > LG_POLICY_MAX_FILE) {
        snprintf(d->msg, sizeof d->msg, "policy file too large (more than %u bytes)",
                 LG_POLICY_MAX_FILE);
        rc = LG_E_POLICY;
    }
    if (rc == LG_OK)
        rc = lg_policy_load(path, buf, len, out, d);
    free(buf);
    return rc;
}

const lg_rule *lg_policy_rule(const lg_policy *p, const char *id)
{
    if (!p || !id)
        return NULL;
    for (size_t i = 0; i < p->nrules; i++)
        if (strcmp(p->rules[i].id, id) == 0)
            return &p->rules[i];
    return NULL;
}
