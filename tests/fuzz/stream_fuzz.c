/* libFuzzer target for core/stream.  The first byte chooses the decoder
 * (bit 0: NDJSON or SSE), a small or large event limit (bit 1) and a split
 * point (bits 2-7, scaled to the input); the rest is the body.  The body is
 * decoded five ways: whole, in two pieces at the split point, one byte at a
 * time, in pieces of varying sizes taken from the body itself, and whole
 * again with the callback stopping at every event and feeding resumed at
 * lg_stream_fed().  All five must report the same events (raw, data and
 * every field, serialised and compared) and end in the same result with
 * the same error offset; after every feed the raw bytes reported so far
 * followed by the pending bytes must equal the input so far, and each event
 * must be internally consistent (fields inside raw, NDJSON data a prefix of
 * raw, done only for "[DONE]"). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "stream.h"

typedef struct out {
    char *log;      /* serialised events */
    size_t log_len, log_cap;
    const char *in; /* the body, to check raw concatenation against */
    size_t raw_len; /* raw bytes reported so far */
    int kind;
    int stop;       /* stop (return 1) after every event */
} out;

static void put(out *o, const void *p, size_t n)
{
    if (o->log_len + n > o->log_cap) {
        size_t cap = o->log_cap ? o->log_cap : 256;
        while (cap < o->log_len + n)
            cap *= 2;
        o->log = realloc(o->log, cap);
        if (!o->log)
            abort();
        o->log_cap = cap;
    }
    memcpy(o->log + o->log_len, p, n);
    o->log_len += n;
}

static void put_slice(out *o, const char *p, size_t n)
{
    uint8_t present = p != NULL;
    put(o, &present, 1);
    put(o, &n, sizeof n);
    if (p)
        put(o, p, n);
}

static int inside(const lg_stream_event *ev, const char *p, size_t n)
{
    return !p || (p >= ev->raw && p + n <= ev->raw + ev->raw_len);
}

static int on_event(void *ud, const lg_stream_event *ev)
{
    out *o = ud;
    if (!ev->raw || ev->raw_len == 0 || !ev->data)
        abort();
    if (memcmp(ev->raw, o->in + o->raw_len, ev->raw_len) != 0)
        abort();
    o->raw_len += ev->raw_len;
    if (ev->data_len > ev->raw_len)
        abort();
    if (!inside(ev, ev->event, ev->event_len) || !inside(ev, ev->id, ev->id_len) ||
        !inside(ev, ev->error, ev->error_len))
        abort();
    if (o->kind == LG_STREAM_SSE &&
        ev->done != (ev->has_data && ev->data_len == 6 && !memcmp(ev->data, "[DONE]", 6)))
        abort();
    if (o->kind == LG_STREAM_NDJSON) {
        if (ev->data != ev->raw || ev->event || ev->id || ev->error || ev->done)
            abort();
        /* Only the last byte may be an LF, and only a partial line lacks it. */
        if (memchr(ev->raw, '\n', ev->raw_len - 1))
            abort();
        if ((ev->raw[ev->raw_len - 1] == '\n') == ev->partial)
            abort();
    } else if (ev->id && memchr(ev->id, '\0', ev->id_len)) {
        abort();
    }
    put_slice(o, ev->raw, ev->raw_len);
    put_slice(o, ev->data, ev->data_len);
    put_slice(o, ev->event, ev->event_len);
    put_slice(o, ev->id, ev->id_len);
    put_slice(o, ev->error, ev->error_len);
    int flags[3] = { ev->has_data, ev->done, ev->partial };
    put(o, flags, sizeof flags);
    return o->stop;
}

typedef struct result {
    int rc;
    size_t err_off;
} result;

/* Feed `in` in pieces chosen by mode (0 whole, 1 two pieces cut at split,
 * 2 byte by byte, 3 sizes 1..13 taken from the input), then finish. */
static result run(int kind, size_t max, const char *in, size_t len, int mode,
                  size_t split, out *o)
{
    lg_stream s;
    if (lg_stream_init(&s, kind, max) != LG_OK)
        abort();
    o->in = in;
    o->kind = kind;
    size_t at = 0, step = 0;
    int rc = LG_OK;
    while (at < len) {
        size_t n;
        switch (mode) {
        case 1: n = at < split ? split - at : len - at; break;
        case 2: n = 1; break;
        case 3: n = 1 + ((unsigned char)in[step++ % len] % 13); break;
        default: n = len - at; break;
        }
        if (n > len - at)
            n = len - at;
        rc = lg_stream_feed(&s, in + at, n, on_event, o);
        if (o->stop && rc == 1) {
            size_t f = lg_stream_fed(&s);
            if (f > n)
                abort();
            at += f;
            rc = LG_OK;
        } else if (rc != LG_OK) {
            break;
        } else {
            if (lg_stream_fed(&s) != n)
                abort();
            at += n;
        }
        if (o->raw_len + lg_stream_pending(&s) != at)
            abort();
        /* Comparing the pending bytes after every one-byte feed would make
         * the harness quadratic; the final comparison below covers them. */
        if (mode != 2 && s.raw.len && memcmp(s.raw.data, in + o->raw_len, s.raw.len) != 0)
            abort();
        if (s.raw.len > max)
            abort();
    }
    if (rc == LG_OK) {
        if (s.raw.len && memcmp(s.raw.data, in + o->raw_len, s.raw.len) != 0)
            abort();
        rc = lg_stream_finish(&s, on_event, o);
        if (o->stop && rc == 1)
            rc = LG_OK;
        if (rc == LG_OK && (lg_stream_pending(&s) != 0 || o->raw_len != len))
            abort();
    }
    if (rc != LG_OK && rc != LG_E_LIMIT)
        abort();
    result r = { rc, lg_stream_error_offset(&s) };
    if (rc == LG_E_LIMIT && (lg_stream_feed(&s, "x", 1, on_event, o) != rc ||
                             lg_stream_finish(&s, on_event, o) != rc))
        abort();
    lg_stream_free(&s);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int kind = (data[0] & 1) ? LG_STREAM_SSE : LG_STREAM_NDJSON;
    size_t max = (data[0] & 2) ? 48 : 4096;
    const char *in = (const char *)data + 1;
    size_t len = size - 1;
    size_t split = ((size_t)(data[0] >> 2) * len) / 63;

    out ref = { 0 };
    result r0 = run(kind, max, in, len, 0, 0, &ref);
    for (int mode = 1; mode <= 4; mode++) {
        out o = { 0 };
        o.stop = mode == 4;
        result r = run(kind, max, in, len, mode == 4 ? 0 : mode, split, &o);
        if (r.rc != r0.rc || r.err_off != r0.err_off || o.log_len != ref.log_len ||
            (o.log_len && memcmp(o.log, ref.log, o.log_len) != 0))
            abort();
        free(o.log);
    }
    free(ref.log);
    return 0;
}
