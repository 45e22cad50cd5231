/* Events: one JSON object per decision (design.md §7), the unit the shim
 * sends to the collector and llmguard-check prints.  Excerpts are redacted
 * by default — every matched value in an excerpt is replaced by the id of
 * the rule that matched it — so the log does not become the store of
 * personal data it exists to guard against.
 *
 * Ownership: lg_event borrows every pointer it holds; lg_event_json appends
 * to a caller-owned buffer. */
#ifndef LG_EVENT_H
#define LG_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "scan.h"
#include "sha256.h"

#define LG_EVENT_VERSION 1

typedef struct lg_event_text {
    const char *field;       /* "content", "prompt", ... */
    const char *path;        /* JSON path of the value, e.g. messages[2].content (may be NULL) */
    const char *text;        /* the original text (for excerpts and the hash) */
    size_t len;
    const lg_finding *findings; /* findings in this text; offsets into text */
    size_t nfindings;
} lg_event_text;

/* The text summary's state after the first `ntexts` texts (each hashed with
 * its NUL, chars counted): lets a caller that has seen those texts before
 * skip hashing them again.  Valid only for the same bytes. */
typedef struct lg_event_sum {
    lg_sha256 sha;           /* after texts[0..ntexts) and their NULs */
    size_t ntexts;
    size_t chars;            /* UTF-8 characters in those texts */
} lg_event_sum;

/* Compute *sum over texts[0..n). */
void lg_event_sum_texts(lg_event_sum *sum, const lg_event_text *texts, size_t n);

typedef struct lg_event {
    const char *id;
    uint64_t ts_us;          /* microseconds since the epoch, UTC */
    int pid, uid;
    const char *exe, *endpoint;
    const char *method; size_t method_len;
    const char *path; size_t path_len;   /* request target without the query string */
    int status;              /* HTTP status given to the client (0 unknown) */
    const char *api;         /* "ollama.chat" */
    const char *model; size_t model_len;
    const char *direction;   /* "request" or "response" */
    const char *decision;    /* "allow", "log", "redact", "block", "error" */
    const char *mode;        /* "enforce" / "monitor" */
    const char *reason;      /* why the engine could not inspect, or NULL */
    const lg_event_text *texts; /* inspected texts */
    size_t ntexts;
    int log_text;            /* enum lg_log_text */
    size_t excerpt_chars;
    uint64_t inspect_us;     /* time spent inspecting (0 unknown) */
    uint64_t held_us;        /* request: time from first byte to forwarding */
    size_t holdback_max;     /* response: largest hold-back seen, in bytes */
    /* Optional: the summary of texts[0..sum_prefix->ntexts), which must be
     * those very bytes (the event is the same with it or without it).
     * Borrowed; NULL when none. */
    const lg_event_sum *sum_prefix;
} lg_event;

/* Append e as one JSON object (no newline). */
int lg_event_json(const lg_event *e, lg_buf *out);

/* Append ts as RFC 3339 UTC with microseconds: 2026-12-03T13:02:55.123456Z. */
int lg_event_time(uint64_t ts_us, lg_buf *out);

#endif
