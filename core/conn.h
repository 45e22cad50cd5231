/* lg_conn: the per-connection engine.  It sits between a client and a model
 * server and sees both directions as plain bytes: what the client writes
 * (requests) and what the server sends back (responses).  It returns the
 * bytes that should really go each way, and reports every decision as a
 * JSON event.  Sans-I/O: no sockets, no threads, no clocks of its own; the
 * shim (or a proxy, or llmguard-check) moves the bytes.
 *
 * Request side: a request to a model API is held until complete, inspected
 * once, then forwarded (rewritten when redacted: new Content-Length, chunked
 * bodies re-framed, Accept-Encoding forced to identity so answers stay
 * readable, Expect: 100-continue answered locally) or refused with a
 * synthesized 403 in the API's own error shape and `Connection: close`.
 * Requests to other paths (/api/tags, /v1/models, ...) pass with framing
 * only.  If the first bytes are not an HTTP/1.x request the connection
 * turns to pass-through for good (lg_conn_passthrough).
 *
 * Response side: streamed answers (NDJSON, SSE) are decoded event by event,
 * their text fields scanned with bounded hold-back (scan.h), changed events
 * re-encoded and chunks re-framed (one output chunk per input chunk, so an
 * answer nothing touched leaves byte for byte as it came).  Non-streamed
 * JSON answers are held whole (up to max_body), rewritten and re-lengthed.
 * A blocking finding cuts a stream with the API's in-stream error form and a
 * proper end of stream.
 *
 * Chat clients resend the system prompt and the history every turn: a
 * prompt text the rules found nothing in is remembered, by its bytes, and
 * not scanned again on this connection when it comes again in the same
 * role (lg_conn_stats.scan_cached); decisions, output and events are those
 * of a scan.
 *
 * Ownership: lg_conn_new copies what it needs from cfg except the policy,
 * vault and callbacks' user data, which must outlive the connection.  The
 * connection owns everything it allocates, the remembered texts included
 * (at most 32 texts, 128 KiB in all), and lg_conn_free frees it.
 * Output goes into caller-owned lg_bufs (appended).  Not thread-safe: one
 * connection is driven by one thread at a time. */
#ifndef LG_CONN_H
#define LG_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "policy.h"
#include "vault.h"

typedef struct lg_conn_cfg {
    const lg_policy *policy;  /* required */
    lg_vault *vault;          /* placeholders; NULL: placeholder redaction falls back to masks */
    const char *endpoint;     /* "127.0.0.1:11434", for events */
    /* One JSON event (no newline).  May be NULL. */
    void (*on_event)(void *ud, const char *json, size_t n);
    void *ud;
    /* Wall clock in microseconds since the epoch; NULL gives 0 (tests). */
    uint64_t (*now_us)(void *ud);
    const char *id_prefix;    /* event ids are "<id_prefix>-<counter>"; must be unique per process */
    int pid, uid;             /* claimed in events; the collector replaces them with verified ones */
    const char *exe;
    /* With policy->canary: the marker to append to system prompts, "LGC-"
     * followed by 16 lowercase hex digits (LG_CANARY_PATTERN), random per
     * process.  NULL: no marker is added (core has no randomness). */
    const char *canary;
} lg_conn_cfg;

typedef struct lg_conn lg_conn;

#define LG_CANARY_SIZE 21 /* "LGC-" + 16 hex digits + NUL */

/* Write the canary marker made from 8 random bytes (the caller's: core has
 * no randomness) into out, in the shape LG_CANARY_PATTERN matches. */
void lg_canary_format(const unsigned char rnd[8], char out[LG_CANARY_SIZE]);

/* NULL on allocation failure. */
lg_conn *lg_conn_new(const lg_conn_cfg *cfg);
void lg_conn_free(lg_conn *c);

/* Bytes the client wrote.  All n bytes are always taken (held internally
 * when needed).  Appends to to_server what should now be sent to the
 * server, and to to_client anything the engine answers itself (a blocked
 * request's 403, a local "100 Continue").  Returns LG_OK or an error
 * (LG_E_NOMEM, LG_E_LIMIT from the output buffers); the engine's own
 * decisions, including unparsable traffic, are not errors. */
int lg_conn_from_client(lg_conn *c, const char *p, size_t n,
                        lg_buf *to_server, lg_buf *to_client);

/* The client shut down its sending side (or closed).  Flushes a request
 * that can never complete according to the fail mode. */
int lg_conn_client_eof(lg_conn *c, lg_buf *to_server, lg_buf *to_client);

/* Bytes the server sent.  Appends to to_client what the client should now
 * read. */
int lg_conn_from_server(lg_conn *c, const char *p, size_t n, lg_buf *to_client);

/* The server closed its side: ends a close-delimited answer, flushes held
 * text, or reports a truncated one. */
int lg_conn_server_eof(lg_conn *c, lg_buf *to_client);

/* 1 when the traffic is not HTTP/1.x (or the engine gave up inspecting it
 * under fail-open): every later byte passes untouched, so the caller may stop
 * feeding the engine and forward directly (the shim untracks the fd).  Bytes
 * already given to the engine have been emitted to the output buffers. */
int lg_conn_passthrough(const lg_conn *c);

/* 1 once the engine has answered the client itself and wants the
 * connection closed after to_client is delivered (a blocked request, a cut
 * stream): the shim shuts the real socket down, serves the pending bytes,
 * then EOF.  Later input is discarded. */
int lg_conn_closing(const lg_conn *c);

/* Counters for tests and status output. */
typedef struct lg_conn_stats {
    uint64_t requests;    /* requests seen (any path) */
    uint64_t inspected;   /* requests to model APIs inspected */
    uint64_t blocked;     /* requests or answers blocked */
    uint64_t redacted;    /* requests or answers changed */
    uint64_t events;      /* events emitted */
    uint64_t uninspected; /* messages passed or refused because they could not be inspected */
    uint64_t scope_reads; /* requests whose system texts the scope check read */
    uint64_t scope_reused; /* requests whose system texts equalled the previous ones': not read again */
    uint64_t scan_cached; /* prompt texts the rules had found nothing in before on this
                             connection (same bytes, role, flags): not scanned again */
} lg_conn_stats;

void lg_conn_get_stats(const lg_conn *c, lg_conn_stats *st);

#endif
