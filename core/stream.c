/* Incremental NDJSON and Server-Sent Events decoders (see stream.h for the
 * contract and the CR rule).  Both work the same way: bytes are copied into
 * `raw` one line (or the tail of a piece) at a time, so `raw` always holds
 * exactly the bytes of the event being assembled, which is what the event
 * reports and what lets the concatenation of reported raws equal the input.
 * A complete line is parsed once, when its terminator arrives: the
 * terminator search resumes where the previous piece ended, so byte-by-byte
 * feeding costs no more than feeding whole.  Field values (event, id, error)
 * are kept as offsets into `raw`, which only grows until the event is
 * reported; SSE data is copied into `data` because data lines are joined.
 * Nothing is parsed from where the caller's pieces happen to end, which is
 * why splitting the input anywhere gives the same events. */
#include "stream.h"

#include <string.h>

#include "error.h"

/* ==== Common ==== */

int lg_stream_init(lg_stream *s, int kind, size_t max_event)
{
    memset(s, 0, sizeof *s);
    lg_buf_init(&s->raw, max_event);
    lg_buf_init(&s->data, max_event);
    s->kind = kind;
    if ((kind != LG_STREAM_NDJSON && kind != LG_STREAM_SSE) || max_event == 0) {
        s->err = LG_E_INVAL;
        return LG_E_INVAL;
    }
    return LG_OK;
}

void lg_stream_free(lg_stream *s)
{
    lg_buf_free(&s->raw);
    lg_buf_free(&s->data);
}

size_t lg_stream_pending(const lg_stream *s)
{
    return s->raw.len;
}

size_t lg_stream_fed(const lg_stream *s)
{
    return s->fed;
}

size_t lg_stream_error_offset(const lg_stream *s)
{
    return s->err ? s->err_pos : 0;
}

static int fail(lg_stream *s, int err, size_t pos)
{
    s->err = err;
    s->err_pos = pos;
    return err;
}

/* Append p[0..n) (bytes at index i of the current piece) to the event being
 * assembled.  Over the limit, the error points at the first byte that does
 * not fit, so its offset does not depend on how the input was split. */
static int take(lg_stream *s, const char *p, size_t n, size_t i)
{
    if (n == 0)
        return LG_OK;
    if (n > s->raw.max - s->raw.len) {
        s->fed = i + (s->raw.max - s->raw.len);
        return fail(s, LG_E_LIMIT, s->off + s->raw.max);
    }
    int rc = lg_buf_append(&s->raw, p, n);
    if (rc) {
        s->fed = i;
        return fail(s, rc, s->off + s->raw.len);
    }
    return LG_OK;
}

/* Forget the reported event; raw and data keep their memory for the next. */
static void reset_event(lg_stream *s)
{
    s->off += s->raw.len;
    lg_buf_reset(&s->raw);
    lg_buf_reset(&s->data);
    s->scan = 0;
    s->has_data = s->has_event = s->has_id = s->has_error = 0;
    s->ev_off = s->ev_len = s->id_off = s->id_len = s->err_off = s->err_len = 0;
}

/* ==== NDJSON ==== */

static int ndjson_blank(const char *p, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (p[k] != ' ' && p[k] != '\t' && p[k] != '\r')
            return 0;
    return 1;
}

/* Report the whole of raw as one line; `terminated` says whether it ends in
 * LF (lg_stream_finish reports a last line without one). */
static int ndjson_emit(lg_stream *s, int terminated, lg_stream_cb cb, void *ud)
{
    size_t n = s->raw.len;
    if (terminated)
        n--;
    if (n && s->raw.data[n - 1] == '\r')
        n--;
    lg_stream_event ev;
    memset(&ev, 0, sizeof ev);
    ev.raw = s->raw.data;
    ev.raw_len = s->raw.len;
    ev.data = s->raw.data;
    ev.data_len = n;
    ev.has_data = !ndjson_blank(s->raw.data, n);
    ev.partial = !terminated;
    int rc = cb ? cb(ud, &ev) : 0;
    reset_event(s);
    return rc;
}

static int ndjson_feed(lg_stream *s, const char *p, size_t n, lg_stream_cb cb, void *ud)
{
    size_t i = 0;
    while (i < n) {
        const char *lf = memchr(p + i, '\n', n - i);
        size_t end = lf ? (size_t)(lf - p) + 1 : n;
        int rc = take(s, p + i, end - i, i);
        if (rc)
            return rc;
        i = end;
        if (!lf)
            break;
        rc = ndjson_emit(s, 1, cb, ud);
        if (rc) {
            s->fed = i;
            return rc;
        }
    }
    s->fed = n;
    return LG_OK;
}

/* ==== SSE ==== */

static int name_is(const char *p, size_t n, const char *name)
{
    size_t k = strlen(name);
    return n == k && memcmp(p, name, k) == 0;
}

/* Parse the complete line raw[b..e) (terminator excluded) into the event's
 * fields.  Returns 1 for a blank line (end of event), 0 otherwise, or an
 * error from growing `data`. */
static int sse_line(lg_stream *s, size_t b, size_t e)
{
    const char *r = s->raw.data;
    if (!s->bom_done) {
        s->bom_done = 1;
        if (e - b >= 3 && memcmp(r + b, "\xEF\xBB\xBF", 3) == 0)
            b += 3;
    }
    if (b == e)
        return 1;
    if (r[b] == ':')
        return 0;
    const char *colon = memchr(r + b, ':', e - b);
    size_t name_end = colon ? (size_t)(colon - r) : e;
    size_t v = colon ? name_end + 1 : e;
    if (v < e && r[v] == ' ')
        v++;
    const char *name = r + b;
    size_t name_len = name_end - b;
    if (name_is(name, name_len, "data")) {
        /* Data values can only be shorter than the raw line plus its
         * terminator, so `data` stays within the limit `raw` obeys. */
        if (s->has_data) {
            int rc = lg_buf_append(&s->data, "\n", 1);
            if (rc)
                return rc;
        }
        int rc = e > v ? lg_buf_append(&s->data, r + v, e - v) : LG_OK;
        if (rc)
            return rc;
        s->has_data = 1;
    } else if (name_is(name, name_len, "event")) {
        s->has_event = 1;
        s->ev_off = v;
        s->ev_len = e - v;
    } else if (name_is(name, name_len, "id")) {
        if (!memchr(r + v, '\0', e - v)) {
            s->has_id = 1;
            s->id_off = v;
            s->id_len = e - v;
        }
    } else if (name_is(name, name_len, "error")) {
        s->has_error = 1;
        s->err_off = v;
        s->err_len = e - v;
    }
    return 0;
}

static int sse_emit(lg_stream *s, int partial, lg_stream_cb cb, void *ud)
{
    const char *r = s->raw.data;
    lg_stream_event ev;
    memset(&ev, 0, sizeof ev);
    ev.raw = r;
    ev.raw_len = s->raw.len;
    ev.has_data = s->has_data;
    ev.data = s->data.data ? s->data.data : "";
    ev.data_len = s->data.len;
    if (s->has_event) {
        ev.event = r + s->ev_off;
        ev.event_len = s->ev_len;
    }
    if (s->has_id) {
        ev.id = r + s->id_off;
        ev.id_len = s->id_len;
    }
    if (s->has_error) {
        ev.error = r + s->err_off;
        ev.error_len = s->err_len;
    }
    ev.done = s->has_data && ev.data_len == 6 && memcmp(ev.data, "[DONE]", 6) == 0;
    ev.partial = partial;
    int rc = cb ? cb(ud, &ev) : 0;
    reset_event(s);
    return rc;
}

static size_t find_eol(const char *p, size_t n)
{
    size_t k = 0;
    while (k < n && p[k] != '\n' && p[k] != '\r')
        k++;
    return k;
}

static int sse_feed(lg_stream *s, const char *p, size_t n, lg_stream_cb cb, void *ud)
{
    size_t i = 0;
    while (i < n) {
        if (s->cr) {
            /* The byte after a line-ending CR settles what that CR was. */
            s->cr = 0;
            if (p[i] == '\n') {
                int rc = take(s, p + i, 1, i);
                if (rc)
                    return rc;
                i++;
                s->scan = s->raw.len;
                s->prev_bare = 0;
                if (s->hold) {
                    s->hold = 0;
                    rc = sse_emit(s, 0, cb, ud);
                    if (rc) {
                        s->fed = i;
                        return rc;
                    }
                }
                continue;
            }
            s->prev_bare = 1;
            if (s->hold) {
                /* p[i] is the next event's first byte, not yet taken. */
                s->hold = 0;
                int rc = sse_emit(s, 0, cb, ud);
                if (rc) {
                    s->fed = i;
                    return rc;
                }
            }
        }
        size_t k = find_eol(p + i, n - i);
        if (k == n - i) {
            int rc = take(s, p + i, k, i);
            if (rc)
                return rc;
            i = n;
            break;
        }
        char term = p[i + k];
        int rc = take(s, p + i, k + 1, i);
        if (rc)
            return rc;
        i += k + 1;
        size_t b = s->scan, e = s->raw.len - 1;
        s->scan = s->raw.len;
        rc = sse_line(s, b, e);
        if (rc < 0) {
            s->fed = i;
            return fail(s, rc, s->off + e);
        }
        if (term == '\r')
            s->cr = 1;
        else
            s->prev_bare = 0;
        if (rc == 1) {
            if (term == '\r' && !s->prev_bare) {
                s->hold = 1;
                continue;
            }
            rc = sse_emit(s, 0, cb, ud);
            if (rc) {
                s->fed = i;
                return rc;
            }
        }
    }
    s->fed = n;
    return LG_OK;
}

/* ==== Entry points ==== */

int lg_stream_feed(lg_stream *s, const char *p, size_t n, lg_stream_cb cb, void *ud)
{
    s->fed = 0;
    if (s->err)
        return s->err;
    if (s->finished)
        return LG_E_STATE;
    if (n == 0)
        return LG_OK;
    if (!p)
        return LG_E_INVAL;
    if (s->kind == LG_STREAM_NDJSON)
        return ndjson_feed(s, p, n, cb, ud);
    return sse_feed(s, p, n, cb, ud);
}

int lg_stream_finish(lg_stream *s, lg_stream_cb cb, void *ud)
{
    if (s->err)
        return s->err;
    if (s->finished)
        return LG_OK;
    s->finished = 1;
    if (s->kind == LG_STREAM_NDJSON)
        return s->raw.len ? ndjson_emit(s, 0, cb, ud) : LG_OK;
    s->cr = 0;
    if (s->hold) {
        s->hold = 0;
        return sse_emit(s, 0, cb, ud);
    }
    if (!s->raw.len)
        return LG_OK;
    if (s->scan < s->raw.len) {
        size_t e = s->raw.len;
        int rc = sse_line(s, s->scan, e);
        if (rc < 0)
            return fail(s, rc, s->off + e);
        s->scan = e;
    }
    return sse_emit(s, 1, cb, ud);
}
