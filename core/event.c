/* Serialising events.  Hand-written rather than through a cJSON tree: an
 * event is emitted for every inspected message, and building it directly
 * into a buffer costs one pass and no allocations beyond the buffer.  Keys
 * are literals appended whole, and strings that need no escaping (the
 * common case: names, paths, ids) are copied in one piece; only the others
 * go through lg_json_escape.  The output is the same either way. */
#include "event.h"

#include <string.h>

#include "error.h"
#include "json.h"
#include "policy.h"
#include "sha256.h"

/* lg_buf_append without the call when the room is there, which it nearly
 * always is: lg_event_json reserves a typical event's worth first, and an
 * event is some forty small appends.  cap never exceeds max, so room below
 * cap is room below the limit. */
static inline int put(lg_buf *o, const void *p, size_t n)
{
    if (o->data && o->cap - o->len >= n) {
        memcpy(o->data + o->len, p, n);
        o->len += n;
        o->data[o->len] = '\0';
        return LG_OK;
    }
    return lg_buf_append(o, p, n);
}

/* Append a string literal (its length known at compile time). */
#define LIT(o, s) put((o), (s), sizeof(s) - 1)

/* Fixed-width decimal digits, right to left. */
static void digits(char *p, unsigned long long v, int w)
{
    while (w-- > 0) {
        p[w] = (char)('0' + v % 10);
        v /= 10;
    }
}

static int append_ull(lg_buf *o, unsigned long long v)
{
    char t[24];
    int i = (int)sizeof t;
    do {
        t[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return put(o, t + i, sizeof t - (size_t)i);
}

static int append_int(lg_buf *o, long long v)
{
    if (v < 0) {
        int rc = put(o, "-", 1);
        return rc ? rc : append_ull(o, 0ULL - (unsigned long long)v);
    }
    return append_ull(o, (unsigned long long)v);
}

/* Days since 1970-01-01 to a civil date (proleptic Gregorian; H. Hinnant's
 * days_from_civil inverted).  Pure arithmetic: gmtime_r takes a lock. */
static void civil(long long z, long long *y, unsigned *m, unsigned *d)
{
    z += 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (long long)yoe + era * 400 + (*m <= 2);
}

int lg_event_time(uint64_t ts_us, lg_buf *out)
{
    unsigned long long secs = ts_us / 1000000;
    long long y;
    unsigned mo, d;
    civil((long long)(secs / 86400), &y, &mo, &d);
    unsigned sod = (unsigned)(secs % 86400);
    if (y > 9999)
        return LG_E_INVAL;
    char b[27]; /* 2025-01-02T03:04:05.123456Z */
    digits(b, (unsigned long long)y, 4);
    b[4] = '-';
    digits(b + 5, mo, 2);
    b[7] = '-';
    digits(b + 8, d, 2);
    b[10] = 'T';
    digits(b + 11, sod / 3600, 2);
    b[13] = ':';
    digits(b + 14, sod / 60 % 60, 2);
    b[16] = ':';
    digits(b + 17, sod % 60, 2);
    b[19] = '.';
    digits(b + 20, ts_us % 1000000, 6);
    b[26] = 'Z';
    return put(out, b, sizeof b);
}

/* v[0..n) as a JSON string. */
static int jstr(lg_buf *o, const char *v, size_t n)
{
    if (lg__json_plain_len(v, n) < n)
        return lg_json_escape(v, n, 0, o);
    char *p = o->data && o->cap - o->len >= n + 2 ? o->data + o->len : lg_buf_reserve(o, n + 2);
    if (!p)
        return n + 2 > o->max || o->len > o->max - (n + 2) ? LG_E_LIMIT : LG_E_NOMEM;
    p[0] = '"';
    memcpy(p + 1, v, n);
    p[n + 1] = '"';
    o->len += n + 2;
    o->data[o->len] = '\0';
    return LG_OK;
}

/* A member: key is the literal `,"name":`; v NULL gives null. */
#define STR(o, key, v, n) str_((o), (key), sizeof(key) - 1, (v), (n))
#define CSTR(o, key, v) str_((o), (key), sizeof(key) - 1, (v), (v) ? strlen(v) : 0)

static int str_(lg_buf *o, const char *key, size_t kn, const char *v, size_t n)
{
    int rc = put(o, key, kn);
    if (rc)
        return rc;
    if (!v)
        return LIT(o, "null");
    return jstr(o, v, n);
}

/* Characters in UTF-8 text: bytes that are not continuation bytes
 * (10xxxxxx), counted eight at a time. */
static size_t utf8_chars(const char *s, size_t n)
{
    size_t c = 0, i = 0;
    for (; n - i >= 8; i += 8) {
        uint64_t x;
        memcpy(&x, s + i, sizeof x);
        /* bit 7 of each byte: set, with bit 6 clear */
        uint64_t cont = x & ~(x << 1) & 0x8080808080808080ULL;
        c += 8 - (size_t)(((cont >> 7) * 0x0101010101010101ULL) >> 56); /* sum of bytes */
    }
    for (; i < n; i++)
        c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

/* Step back/forward to a UTF-8 character boundary so excerpts never cut a
 * character in half. */
static size_t char_floor(const char *s, size_t i)
{
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80)
        i--;
    return i;
}

/* Excerpt around finding k: up to excerpt_chars bytes of context in all,
 * centred on the match.  In redacted mode every finding inside the window
 * is replaced by «rule-id». */
static int excerpt(lg_buf *o, const lg_event *e, const lg_event_text *t, size_t k)
{
    const lg_finding *f = &t->findings[k];
    size_t half = e->excerpt_chars / 2;
    size_t from = f->start > half ? char_floor(t->text, f->start - half) : 0;
    size_t to = f->end + half < t->len ? char_floor(t->text, f->end + half) : t->len;
    lg_buf tmp;
    lg_buf_init(&tmp, to - from + 64 * (t->nfindings + 1) + 1024);
    int rc = LG_OK;
    size_t pos = from;
    while (!rc && pos < to) {
        /* Next finding starting at or after pos inside the window. */
        const lg_finding *next = NULL;
        if (e->log_text == LG_LOG_TEXT_REDACTED) {
            for (size_t i = 0; i < t->nfindings; i++) {
                const lg_finding *g = &t->findings[i];
                if (g->end > pos && g->start < to && (!next || g->start < next->start))
                    next = g;
            }
        }
        size_t stop = next ? (next->start > pos ? next->start : pos) : to;
        rc = lg_buf_append(&tmp, t->text + pos, stop - pos);
        if (!rc && next) {
            rc = LIT(&tmp, "\xc2\xab");
            if (!rc)
                rc = lg_buf_puts(&tmp, next->rule->id);
            if (!rc)
                rc = LIT(&tmp, "\xc2\xbb");
            pos = next->end > to ? to : next->end;
        } else {
            pos = stop;
        }
    }
    if (!rc)
        rc = lg_json_escape(tmp.data ? tmp.data : "", tmp.len, 0, o);
    lg_buf_free(&tmp);
    return rc;
}

static int findings(lg_buf *o, const lg_event *e)
{
    int rc = LIT(o, ",\"findings\":[");
    int first = 1;
    for (size_t i = 0; !rc && i < e->ntexts; i++) {
        const lg_event_text *t = &e->texts[i];
        for (size_t k = 0; !rc && k < t->nfindings; k++) {
            const lg_finding *f = &t->findings[k];
            rc = first ? LIT(o, "{\"rule\":") : LIT(o, ",{\"rule\":");
            first = 0;
            if (!rc)
                rc = jstr(o, f->rule->id, strlen(f->rule->id));
            if (!rc)
                rc = CSTR(o, ",\"category\":", f->rule->category);
            if (!rc)
                rc = CSTR(o, ",\"severity\":", lg_severity_name(f->rule->severity));
            if (!rc)
                rc = CSTR(o, ",\"action\":", lg_action_name(f->action));
            if (!rc)
                rc = CSTR(o, ",\"field\":", t->path ? t->path : t->field);
            if (!rc)
                rc = LIT(o, ",\"start\":");
            if (!rc)
                rc = append_ull(o, f->start);
            if (!rc)
                rc = LIT(o, ",\"end\":");
            if (!rc)
                rc = append_ull(o, f->end);
            if (!rc && e->log_text != LG_LOG_TEXT_NONE && f->end <= t->len) {
                rc = LIT(o, ",\"excerpt\":");
                if (!rc)
                    rc = excerpt(o, e, t, k);
            }
            if (!rc)
                rc = LIT(o, "}");
        }
    }
    return rc ? rc : LIT(o, "]");
}

/* Fold texts[from..n) into sum: each text, then a NUL. */
static void sum_more(lg_event_sum *sum, const lg_event_text *texts, size_t from, size_t n)
{
    for (size_t i = from; i < n; i++) {
        lg_sha256_update(&sum->sha, texts[i].text, texts[i].len);
        lg_sha256_update(&sum->sha, "", 1);
        sum->chars += utf8_chars(texts[i].text, texts[i].len);
    }
    sum->ntexts = n;
}

void lg_event_sum_texts(lg_event_sum *sum, const lg_event_text *texts, size_t n)
{
    lg_sha256_init(&sum->sha);
    sum->chars = 0;
    sum_more(sum, texts, 0, n);
}

/* The text summary: total characters, one hash over all inspected texts
 * (each followed by a NUL so that ["ab","c"] and ["a","bc"] differ),
 * continued from e->sum_prefix when there is one. */
static int text_summary(lg_buf *o, const lg_event *e)
{
    lg_event_sum sum;
    uint8_t d[32];
    if (e->sum_prefix && e->sum_prefix->ntexts <= e->ntexts) {
        sum = *e->sum_prefix;
        sum_more(&sum, e->texts, sum.ntexts, e->ntexts);
    } else {
        lg_event_sum_texts(&sum, e->texts, e->ntexts);
    }
    size_t chars = sum.chars;
    lg_sha256_final(&sum.sha, d);
    int rc = LIT(o, ",\"text\":{\"fields\":");
    if (!rc)
        rc = append_ull(o, e->ntexts);
    if (!rc)
        rc = LIT(o, ",\"chars\":");
    if (!rc)
        rc = append_ull(o, chars);
    if (!rc)
        rc = LIT(o, ",\"sha256\":\"");
    char hex[64];
    static const char hx[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = hx[d[i] >> 4];
        hex[2 * i + 1] = hx[d[i] & 15];
    }
    if (!rc)
        rc = put(o, hex, sizeof hex);
    return rc ? rc : LIT(o, "\"}");
}

int lg_event_json(const lg_event *e, lg_buf *o)
{
    /* Room for a typical event at once, so that it grows once at most;
     * should this fail, the appends below report why. */
    (void)lg_buf_reserve(o, 640);
    int rc = LIT(o, "{\"v\":");
    if (!rc)
        rc = append_int(o, LG_EVENT_VERSION);
    if (!rc)
        rc = CSTR(o, ",\"id\":", e->id);
    if (!rc)
        rc = LIT(o, ",\"ts\":\"");
    if (!rc)
        rc = lg_event_time(e->ts_us, o);
    if (!rc)
        rc = LIT(o, "\",\"pid\":");
    if (!rc)
        rc = append_int(o, e->pid);
    if (!rc)
        rc = LIT(o, ",\"uid\":");
    if (!rc)
        rc = append_int(o, e->uid);
    if (!rc)
        rc = CSTR(o, ",\"exe\":", e->exe);
    if (!rc)
        rc = CSTR(o, ",\"endpoint\":", e->endpoint);
    if (!rc)
        rc = STR(o, ",\"method\":", e->method, e->method_len);
    if (!rc)
        rc = STR(o, ",\"path\":", e->path, e->path_len);
    if (!rc && e->status) {
        rc = LIT(o, ",\"status\":");
        if (!rc)
            rc = append_int(o, e->status);
    }
    if (!rc)
        rc = CSTR(o, ",\"api\":", e->api);
    if (!rc)
        rc = STR(o, ",\"model\":", e->model, e->model_len);
    if (!rc)
        rc = CSTR(o, ",\"direction\":", e->direction);
    if (!rc)
        rc = CSTR(o, ",\"decision\":", e->decision);
    if (!rc)
        rc = CSTR(o, ",\"mode\":", e->mode);
    if (!rc && e->reason)
        rc = CSTR(o, ",\"reason\":", e->reason);
    if (!rc)
        rc = findings(o, e);
    if (!rc && e->ntexts)
        rc = text_summary(o, e);
    if (!rc)
        rc = LIT(o, ",\"timing_us\":{\"inspect\":");
    if (!rc)
        rc = append_ull(o, (unsigned long long)e->inspect_us);
    if (!rc)
        rc = LIT(o, ",\"held\":");
    if (!rc)
        rc = append_ull(o, (unsigned long long)e->held_us);
    if (!rc)
        rc = LIT(o, "}");
    if (!rc && e->holdback_max) {
        rc = LIT(o, ",\"holdback_max\":");
        if (!rc)
            rc = append_ull(o, e->holdback_max);
    }
    return rc ? rc : LIT(o, "}");
}
