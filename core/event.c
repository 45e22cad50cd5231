/* Serialising events.  Hand-written rather than through a cJSON tree: an
 * event is emitted for every inspected message, and building it directly
 * into a buffer costs one pass and no allocations beyond the buffer. */
#include "event.h"

#include <string.h>
#include <time.h>

#include "error.h"
#include "json.h"
#include "policy.h"
#include "sha256.h"

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
    return lg_buf_append(o, t + i, sizeof t - (size_t)i);
}

static int append_int(lg_buf *o, long long v)
{
    if (v < 0) {
        int rc = lg_buf_append(o, "-", 1);
        return rc ? rc : append_ull(o, 0ULL - (unsigned long long)v);
    }
    return append_ull(o, (unsigned long long)v);
}

int lg_event_time(uint64_t ts_us, lg_buf *out)
{
    time_t secs = (time_t)(ts_us / 1000000);
    struct tm tm;
    if (!gmtime_r(&secs, &tm) || tm.tm_year + 1900 > 9999)
        return LG_E_INVAL;
    char b[27]; /* 2025-01-02T03:04:05.123456Z */
    digits(b, (unsigned)(tm.tm_year + 1900), 4);
    b[4] = '-';
    digits(b + 5, (unsigned)tm.tm_mon + 1, 2);
    b[7] = '-';
    digits(b + 8, (unsigned)tm.tm_mday, 2);
    b[10] = 'T';
    digits(b + 11, (unsigned)tm.tm_hour, 2);
    b[13] = ':';
    digits(b + 14, (unsigned)tm.tm_min, 2);
    b[16] = ':';
    digits(b + 17, (unsigned)tm.tm_sec, 2);
    b[19] = '.';
    digits(b + 20, ts_us % 1000000, 6);
    b[26] = 'Z';
    return lg_buf_append(out, b, sizeof b);
}

static int str(lg_buf *o, const char *key, const char *v, size_t n)
{
    int rc = lg_buf_puts(o, ",\"");
    if (!rc)
        rc = lg_buf_puts(o, key);
    if (!rc)
        rc = lg_buf_puts(o, "\":");
    if (rc)
        return rc;
    if (!v)
        return lg_buf_puts(o, "null");
    return lg_json_escape(v, n, 0, o);
}

static int cstr(lg_buf *o, const char *key, const char *v)
{
    return str(o, key, v, v ? strlen(v) : 0);
}

static size_t utf8_chars(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
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
            rc = lg_buf_printf(&tmp, "\xc2\xab%s\xc2\xbb", next->rule->id);
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
    int rc = lg_buf_puts(o, ",\"findings\":[");
    int first = 1;
    for (size_t i = 0; !rc && i < e->ntexts; i++) {
        const lg_event_text *t = &e->texts[i];
        for (size_t k = 0; !rc && k < t->nfindings; k++) {
            const lg_finding *f = &t->findings[k];
            rc = lg_buf_printf(o, "%s{\"rule\":", first ? "" : ",");
            first = 0;
            if (!rc)
                rc = lg_json_escape(f->rule->id, strlen(f->rule->id), 0, o);
            if (!rc)
                rc = cstr(o, "category", f->rule->category);
            if (!rc)
                rc = cstr(o, "severity", lg_severity_name(f->rule->severity));
            if (!rc)
                rc = cstr(o, "action", lg_action_name(f->action));
            if (!rc)
                rc = cstr(o, "field", t->path ? t->path : t->field);
            if (!rc)
                rc = lg_buf_printf(o, ",\"start\":%zu,\"end\":%zu", f->start, f->end);
            if (!rc && e->log_text != LG_LOG_TEXT_NONE && f->end <= t->len) {
                rc = lg_buf_puts(o, ",\"excerpt\":");
                if (!rc)
                    rc = excerpt(o, e, t, k);
            }
            if (!rc)
                rc = lg_buf_puts(o, "}");
        }
    }
    return rc ? rc : lg_buf_puts(o, "]");
}

/* The text summary: total characters, one hash over all inspected texts
 * (each followed by a NUL so that ["ab","c"] and ["a","bc"] differ). */
static int text_summary(lg_buf *o, const lg_event *e)
{
    lg_sha256 s;
    uint8_t d[32];
    size_t chars = 0;
    lg_sha256_init(&s);
    for (size_t i = 0; i < e->ntexts; i++) {
        lg_sha256_update(&s, e->texts[i].text, e->texts[i].len);
        lg_sha256_update(&s, "", 1);
        chars += utf8_chars(e->texts[i].text, e->texts[i].len);
    }
    lg_sha256_final(&s, d);
    int rc = lg_buf_puts(o, ",\"text\":{\"fields\":");
    if (!rc)
        rc = append_ull(o, e->ntexts);
    if (!rc)
        rc = lg_buf_puts(o, ",\"chars\":");
    if (!rc)
        rc = append_ull(o, chars);
    if (!rc)
        rc = lg_buf_puts(o, ",\"sha256\":\"");
    char hex[65];
    static const char hx[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = hx[d[i] >> 4];
        hex[2 * i + 1] = hx[d[i] & 15];
    }
    hex[64] = 0;
    if (!rc)
        rc = lg_buf_append(o, hex, 64);
    return rc ? rc : lg_buf_puts(o, "\"}");
}

int lg_event_json(const lg_event *e, lg_buf *o)
{
    int rc = lg_buf_puts(o, "{\"v\":");
    if (!rc)
        rc = append_int(o, LG_EVENT_VERSION);
    if (!rc)
        rc = cstr(o, "id", e->id);
    if (!rc)
        rc = lg_buf_puts(o, ",\"ts\":\"");
    if (!rc)
        rc = lg_event_time(e->ts_us, o);
    if (!rc)
        rc = lg_buf_puts(o, "\",\"pid\":");
    if (!rc)
        rc = append_int(o, e->pid);
    if (!rc)
        rc = lg_buf_puts(o, ",\"uid\":");
    if (!rc)
        rc = append_int(o, e->uid);
    if (!rc)
        rc = cstr(o, "exe", e->exe);
    if (!rc)
        rc = cstr(o, "endpoint", e->endpoint);
    if (!rc)
        rc = str(o, "method", e->method, e->method_len);
    if (!rc)
        rc = str(o, "path", e->path, e->path_len);
    if (!rc && e->status) {
        rc = lg_buf_puts(o, ",\"status\":");
        if (!rc)
            rc = append_int(o, e->status);
    }
    if (!rc)
        rc = cstr(o, "api", e->api);
    if (!rc)
        rc = str(o, "model", e->model, e->model_len);
    if (!rc)
        rc = cstr(o, "direction", e->direction);
    if (!rc)
        rc = cstr(o, "decision", e->decision);
    if (!rc)
        rc = cstr(o, "mode", e->mode);
    if (!rc && e->reason)
        rc = cstr(o, "reason", e->reason);
    if (!rc)
        rc = findings(o, e);
    if (!rc && e->ntexts)
        rc = text_summary(o, e);
    if (!rc)
        rc = lg_buf_puts(o, ",\"timing_us\":{\"inspect\":");
    if (!rc)
        rc = append_ull(o, (unsigned long long)e->inspect_us);
    if (!rc)
        rc = lg_buf_puts(o, ",\"held\":");
    if (!rc)
        rc = append_ull(o, (unsigned long long)e->held_us);
    if (!rc)
        rc = lg_buf_puts(o, "}");
    if (!rc && e->holdback_max)
        rc = lg_buf_printf(o, ",\"holdback_max\":%zu", e->holdback_max);
    return rc ? rc : lg_buf_puts(o, "}");
}
