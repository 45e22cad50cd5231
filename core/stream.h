/* Incremental decoders for streamed model answers: newline-delimited JSON
 * (Ollama) and Server-Sent Events (OpenAI-compatible servers, llama.cpp).
 *
 * Input is the de-chunked response body in pieces of any size (TCP and HTTP
 * chunking split anywhere).  Each complete event is reported with its exact
 * raw bytes, so that an event the engine does not change can be forwarded
 * byte for byte, and with its decoded data.  Splitting the input anywhere
 * gives the same events.
 *
 * SSE (WHATWG HTML §9.2.6): lines end in CRLF, LF or CR; an empty line ends
 * an event; `data:` values (one leading space removed) are joined with LF;
 * `event:` and `id:` are kept; lines starting with ':' are comments; other
 * fields are ignored except `error:`, which llama.cpp uses for errors.  An
 * event with no data, event or error field (comments, retry) is still
 * reported (has_data == 0) so that its bytes can pass through.
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

typedef struct lg_stream_event {
    const char *raw;      /* the event's bytes as received, terminator(s) included */
    size_t raw_len;
    const char *data;     /* NDJSON: the line without its LF (and CR); SSE: joined data */
    size_t data_len;
    int has_data;         /* SSE: at least one data: line; NDJSON: line not blank */
    const char *event;    /* SSE event: field (last one wins); NULL when absent */
    size_t event_len;
    const char *id;       /* SSE id: field; NULL when absent */
    size_t id_len;
    const char *error;    /* SSE error: field (llama.cpp); NULL when absent */
    size_t error_len;
    int done;             /* SSE: data is exactly "[DONE]" */
} lg_stream_event;

/* Return 0 to continue; non-zero stops lg_stream_feed and is returned. */
typedef int (*lg_stream_cb)(void *ud, const lg_stream_event *ev);

typedef struct lg_stream {
    int kind;        /* enum lg_stream_kind */
    lg_buf raw;      /* bytes of the event being assembled */
    lg_buf data;     /* SSE: joined data of the event being assembled */
    int err;         /* sticky error */
    /* internal line-parsing state follows */
    size_t scan;     /* offset in raw up to which lines were parsed */
    int cr;          /* SSE: last byte seen was CR (a following LF belongs to it) */
    size_t ev_off, ev_len, id_off, id_len, err_off, err_len;
    int has_data, has_event, has_id, has_error;
} lg_stream;

/* max_event bounds the bytes of one event (raw and data each); beyond it
 * lg_stream_feed fails with LG_E_LIMIT. */
int lg_stream_init(lg_stream *s, int kind, size_t max_event);

/* Feed body bytes; calls cb for each event completed by them.  Returns LG_OK,
 * a callback's non-zero return, or a negative error (sticky). */
int lg_stream_feed(lg_stream *s, const char *p, size_t n, lg_stream_cb cb, void *ud);

/* End of body.  NDJSON: a final line without LF is reported as an event.
 * SSE: an unterminated event is reported too (servers such as llama.cpp may
 * end with a single LF), after which no bytes remain. */
int lg_stream_finish(lg_stream *s, lg_stream_cb cb, void *ud);

/* Bytes received but not yet part of a reported event. */
size_t lg_stream_pending(const lg_stream *s);

void lg_stream_free(lg_stream *s);

#endif
