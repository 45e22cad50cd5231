/* Incremental decoders for streamed model answers: newline-delimited JSON
 * (Ollama) and Server-Sent Events (OpenAI-compatible servers, llama.cpp).
 *
 * Input is the de-chunked response body in pieces of any size (TCP and HTTP
 * chunking split anywhere).  Each complete event is reported with its exact
 * raw bytes, so that an event the engine does not change can be forwarded
 * byte for byte, and with its decoded data.  Splitting the input anywhere
 * gives the same events (same raw, data and fields), and the raw bytes of
 * all reported events followed by lg_stream_pending() bytes are always
 * exactly the input so far.
 *
 * NDJSON: one event per line.  Only LF ends a line; data is the line without
 * its LF and one CR before it.  A line holding only spaces, tabs and CRs
 * (blank, or the whitespace JSON allows) is reported with has_data == 0 so
 * that its bytes pass through; a byte-order mark is not special.
 *
 * SSE (WHATWG HTML §9.2.6): lines end in CRLF, LF or CR; an empty line ends
 * an event; `data:` values (one leading space removed) are joined with LF;
 * `event:` and `id:` are kept (an id containing NUL is ignored, as the spec
 * says); lines starting with ':' are comments; a line without ':' is a field
 * with an empty value; other fields (`retry`, unknown ones) are ignored
 * except `error:`, which llama.cpp uses for errors.  One UTF-8 BOM at the
 * very start of the stream is ignored for parsing and stays in the first
 * event's raw bytes.  An event with no data, event or error field (comments,
 * retry, stray blank lines) is still reported (has_data == 0) so that its
 * bytes can pass through.
 *
 * A CR that ends the blank line ending an event cannot tell alone whether an
 * LF follows (CRLF) and belongs to the same event.  The rule, which depends
 * only on the bytes and never on where the input is split:
 *   - if the line before the blank line ended in a bare CR (a CR-only
 *     stream), the event is dispatched at once and an LF that happens to
 *     follow is swallowed as part of the terminator but belongs to the raw
 *     bytes of the next event;
 *   - otherwise (CRLF or LF streams, or a stream that begins with a blank
 *     line) dispatch waits for the next byte: an LF is attached to the event,
 *     anything else is the next event's first byte.  lg_stream_finish()
 *     dispatches a waiting event.  In practice the LF of a CRLF comes in the
 *     same server write, so the wait is one TCP segment at most.
 *
 * Bounds: max_event limits the raw bytes of one event, and so its data;
 * memory held is the two lg_bufs, each at most max_event bytes.  Work is
 * linear in the input: no byte is scanned or copied more than a constant
 * number of times.
 *
 * Ownership: an lg_stream owns its buffers (lg_stream_free).  Slices in an
 * lg_stream_event are valid only during the callback. */
#ifndef LG_STREAM_H
#define LG_STREAM_H

#include <stddef.h>

#include "buf.h"

enum lg_stream_kind {
    LG_STREAM_NDJSON = 1,
    LG_STREAM_SSE
};

/* A reasonable max_event for callers without an opinion: model servers send
 * events of a few hundred bytes, a final Ollama object a few KiB. */
#define LG_STREAM_DEFAULT_MAX_EVENT ((size_t)1 << 20)

typedef struct lg_stream_event {
    const char *raw;      /* the event's bytes as received, terminator(s) included */
    size_t raw_len;
    const char *data;     /* NDJSON: the line without its LF (and CR); SSE: joined
                             data ("" when has_data == 0); never NULL */
    size_t data_len;
    int has_data;         /* SSE: at least one data: line; NDJSON: line not blank */
    const char *event;    /* SSE event: field (last one wins); NULL when absent */
    size_t event_len;
    const char *id;       /* SSE id: field of this event (last one wins); NULL when absent */
    size_t id_len;
    const char *error;    /* SSE error: field (llama.cpp; last one wins); NULL when absent */
    size_t error_len;
    int done;             /* SSE: data is exactly "[DONE]" */
    int partial;          /* reported by lg_stream_finish without its end: NDJSON line
                             without LF, SSE event without the blank line (a
                             WHATWG client would discard it) */
} lg_stream_event;

/* Return 0 to continue; non-zero stops lg_stream_feed and is returned. */
typedef int (*lg_stream_cb)(void *ud, const lg_stream_event *ev);

/* Zero-filled or not, call lg_stream_init before use. */
typedef struct lg_stream {
    int kind;        /* enum lg_stream_kind */
    lg_buf raw;      /* bytes of the event being assembled */
    lg_buf data;     /* SSE: joined data of the event being assembled */
    int err;         /* sticky error */
    /* internal line-parsing state follows */
    size_t scan;     /* offset in raw where the current, unterminated line starts */
    int cr;          /* SSE: last byte seen was a CR ending a line (a following LF belongs to it) */
    size_t ev_off, ev_len, id_off, id_len, err_off, err_len; /* SSE fields, offsets into raw */
    int has_data, has_event, has_id, has_error;
    int hold;        /* SSE: event complete but for an LF that may follow its final CR */
    int prev_bare;   /* SSE: the last resolved line terminator was a bare CR */
    int bom_done;    /* SSE: the first line has been seen (BOM check done) */
    int finished;    /* lg_stream_finish has run */
    size_t off;      /* stream offset of raw.data[0] */
    size_t err_pos;  /* stream offset of the byte at fault */
    size_t fed;      /* bytes of the last lg_stream_feed input taken in */
} lg_stream;

/* max_event bounds the bytes of one event (raw and data each); beyond it
 * lg_stream_feed fails with LG_E_LIMIT.  Returns LG_OK, or LG_E_INVAL for an
 * unknown kind or max_event 0 (the stream is then unusable). */
int lg_stream_init(lg_stream *s, int kind, size_t max_event);

/* Feed body bytes; calls cb for each event completed by them.  Returns LG_OK,
 * a callback's non-zero return, or a negative error (sticky: LG_E_LIMIT,
 * LG_E_NOMEM).  After a callback's stop, lg_stream_fed() bytes of p were
 * taken (up to the end of the event that stopped it) and the stream is
 * intact: feed the rest again to go on.  Feeding after lg_stream_finish is
 * LG_E_STATE. */
int lg_stream_feed(lg_stream *s, const char *p, size_t n, lg_stream_cb cb, void *ud);

/* End of body.  NDJSON: a final line without LF is reported as an event.
 * SSE: an unterminated event is reported too (servers such as llama.cpp may
 * end with a single LF), its last line parsed even without a terminator;
 * afterwards no bytes remain.  Both carry partial = 1.  Returns LG_OK, the
 * sticky error, or a callback's non-zero return.  Calling it again is a
 * no-op. */
int lg_stream_finish(lg_stream *s, lg_stream_cb cb, void *ud);

/* Bytes received but not yet part of a reported event. */
size_t lg_stream_pending(const lg_stream *s);

/* Bytes of the last lg_stream_feed's input taken in: all of them after LG_OK;
 * after a callback's stop, those up to and including the stopped event's
 * last byte; after an error, those before the byte at fault. */
size_t lg_stream_fed(const lg_stream *s);

/* Stream offset (bytes since the start of the body) of the byte at which
 * the sticky error arose; 0 when there is none. */
size_t lg_stream_error_offset(const lg_stream *s);

void lg_stream_free(lg_stream *s);

#endif
