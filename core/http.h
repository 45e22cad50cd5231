/* Incremental HTTP/1.1 parsing for both directions of a connection.
 *
 * Two layers, as in picohttpparser:
 *  - the head parsers take the bytes accumulated so far and either say "need
 *    more", fail with an error code and the byte offset of the fault, or fill
 *    an lg_http_head whose slices point into the caller's buffer;
 *  - the body decoder is a small state machine fed raw body bytes in pieces
 *    of any size; it reports de-chunked data, the end of each chunk and the
 *    end of the message through callbacks, and returns how many bytes it
 *    consumed so that the caller can find the start of the next (pipelined or
 *    keep-alive) message in the same buffer.
 *
 * It refuses what enables request smuggling (RFC 9112 §6.3, §11.2): both
 * Content-Length and Transfer-Encoding, differing Content-Length values, a
 * Transfer-Encoding whose final coding is not chunked on a request, bad or
 * overflowing chunk sizes, obs-fold, whitespace before the colon, and bare
 * CR.  No allocation anywhere in this module.
 *
 * Line endings: in a head, a bare LF is accepted as a line terminator (RFC
 * 9112 §2.2 allows it, and Go's net/textproto, Python and cpp-httplib, the
 * servers we sit in front of, accept it too, so we frame the message as they
 * do); a CR not followed by LF is refused.  Inside a chunked body (size
 * lines, the CRLF after data, trailers) only CRLF is accepted: a bare LF in a
 * chunk line is the known smuggling vector fixed in Go by CVE-2025-22871.
 * Lengths (Content-Length, chunk sizes) are limited to INT64_MAX. */
#ifndef LG_HTTP_H
#define LG_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define LG_HTTP_MAX_HEADERS   100    /* header fields per head */
#define LG_HTTP_MAX_HEAD      65536  /* bytes of a head, CRLFCRLF included */
#define LG_HTTP_MAX_CHUNK_LINE 4096  /* bytes of a chunk-size line with extensions */
#define LG_HTTP_MAX_TRAILERS  8192   /* bytes of a chunked trailer section */

typedef struct lg_http_header {
    const char *name;   /* slice into the caller's buffer */
    size_t name_len;
    const char *value;  /* leading and trailing OWS removed */
    size_t value_len;
} lg_http_header;

enum lg_http_body_kind {
    LG_BODY_NONE = 0,  /* no body (GET without length, HEAD response, 1xx, 204, 304) */
    LG_BODY_LENGTH,    /* Content-Length bytes */
    LG_BODY_CHUNKED,   /* Transfer-Encoding: chunked */
    LG_BODY_CLOSE      /* response delimited by connection close */
};

typedef struct lg_http_head {
    const char *raw;         /* buf as passed to the parser: the head is raw[0..head_len) */
    int is_request;          /* 1 request, 0 response */
    const char *method;      /* request: method token */
    size_t method_len;
    const char *target;      /* request: request-target as sent */
    size_t target_len;
    int minor;               /* HTTP/1.<minor>: 0 or 1 */
    int status;              /* response: 100..999 */
    const char *reason;      /* response: reason phrase (may be empty) */
    size_t reason_len;
    lg_http_header headers[LG_HTTP_MAX_HEADERS];
    size_t nheaders;
    size_t head_len;         /* bytes of the head, final CRLFCRLF included */

    /* Derived from the headers by the parser: */
    int body_kind;           /* enum lg_http_body_kind */
    uint64_t content_length; /* with LG_BODY_LENGTH */
    int keep_alive;          /* the connection may carry another message after this one */
    int expect_continue;     /* request: "Expect: 100-continue" */
    int upgrade;             /* request has an Upgrade field (h2c, websocket); response is a
                                101, or a 2xx to CONNECT: the bytes after it are not HTTP */
    int encoded;             /* Content-Encoding other than identity is present, or a
                                transfer coding other than chunked: body bytes are not plain */
    int interim;             /* response: 1xx other than 101; another head follows */
} lg_http_head;

/* Parse a request head from buf[0..len).
 * Returns head_len (> 0) when the head is complete and valid; LG_E_NEEDMORE
 * when buf is a valid prefix of a head; a negative error code otherwise, with
 * *err_off (may be NULL) set to the offset of the offending byte.
 * Leading empty lines (CRLF) before the request line are skipped, as RFC
 * 9112 §2.2 allows; they count in head_len.  A head longer than
 * LG_HTTP_MAX_HEAD fails with LG_E_HTTP_HEAD_TOO_LARGE even when incomplete
 * (err_off LG_HTTP_MAX_HEAD).
 * body_kind for requests: CHUNKED, LENGTH, or NONE.
 *
 * Meant to be called again with the grown buffer as bytes arrive: each call
 * is O(len), never reads buf[len] or beyond, and the result for a buffer
 * does not depend on how it was delivered (a prefix returns NEEDMORE or the
 * very error, with the same offset, that the whole returns).  *h is only
 * meaningful when the return is > 0; its slices point into buf.
 *
 * Errors: HTTP_LINE (request/status line), HTTP_VERSION (well-formed but not
 * HTTP/1.0 or 1.1, e.g. "PRI * HTTP/2.0": err_off at the offending digit),
 * HTTP_HEADER (bad field syntax, obs-fold, space before colon, control
 * bytes, bare CR), HTTP_TOO_MANY_HEADERS (err_off at the extra field),
 * HTTP_HEAD_TOO_LARGE, HTTP_LENGTH (non-digit, empty or conflicting
 * Content-Length; repeats of one value, also as a comma list, are accepted),
 * HTTP_OVERFLOW (Content-Length > INT64_MAX), HTTP_SMUGGLE (Content-Length
 * and Transfer-Encoding; err_off at the later field's name), HTTP_TE (a
 * request whose final transfer coding is not chunked, chunked not last or
 * twice, Transfer-Encoding in an HTTP/1.0 message, malformed coding list). */
int lg_http_parse_request(const char *buf, size_t len, lg_http_head *h, size_t *err_off);

/* Parse a response head.  req_method is the method of the request this
 * response answers (needed for HEAD: no body); NULL means GET.  body_kind for
 * responses also covers 1xx/204/304 (NONE) and CLOSE.  A 1xx response other
 * than 101 is interim (h->interim): the caller parses another head after it,
 * for the same request.  A 101, or a 2xx to CONNECT, sets upgrade, clears
 * keep_alive and has no body: what follows is not HTTP.  A response without
 * Content-Length or chunked framing, or whose final transfer coding is not
 * chunked (then encoded is set), is CLOSE-delimited and not keep_alive.
 * content_length is filled whenever the field is present, also when the
 * body is NONE (HEAD, 204, 304).  Returns and errors as for requests;
 * empty lines before the status line are refused (HTTP_LINE), as Go's client
 * does; a status line without reason ("HTTP/1.1 200\r\n") is accepted. */
int lg_http_parse_response(const char *buf, size_t len, const char *req_method,
                           size_t req_method_len, lg_http_head *h, size_t *err_off);

/* Case-insensitive header lookup: the first field named `name`, or NULL. */
const lg_http_header *lg_http_find(const lg_http_head *h, const char *name);

/* Does the comma-separated list in header `name` contain `token`
 * (case-insensitive, across repeated fields)? */
int lg_http_has_token(const lg_http_head *h, const char *name, const char *token);

/* ==== Body decoder ==== */

typedef struct lg_http_body_cb {
    /* De-chunked body bytes, in order; may be called with small pieces. */
    int (*on_data)(void *ud, const char *p, size_t n);
    /* Chunked only: the data of one chunk is complete (called after its
     * last on_data).  May be NULL. */
    int (*on_chunk_end)(void *ud);
    /* The message is complete.  For chunked bodies, trailers points at the
     * raw trailer section (header lines, each with CRLF, without the final
     * empty line; n == 0 when there are none).  May be NULL. */
    int (*on_end)(void *ud, const char *trailers, size_t n);
} lg_http_body_cb;
/* A callback returning non-zero stops lg_http_body_feed, which returns that
 * value; the decoder stays usable.  Return negative values (a positive one
 * looks like a byte count).  The bytes up to the stop are consumed, and
 * d->offset has advanced by their number: resume at p + (d->offset - the
 * offset before the call). */

typedef struct lg_http_body {
    int kind;              /* enum lg_http_body_kind */
    uint64_t remaining;    /* LENGTH: body bytes left; CHUNKED: bytes left in this chunk */
    int state;             /* internal */
    int err;               /* sticky error, 0 when none */
    uint64_t offset;       /* body bytes consumed so far; after an error, where it is */
    uint64_t size_acc;     /* internal: chunk size being read */
    unsigned digits;       /* internal */
    size_t line_len;       /* internal: bytes of the current chunk-size line */
    size_t trailer_len;    /* internal */
    char trailer[LG_HTTP_MAX_TRAILERS]; /* internal: chunked trailers, bounded */
} lg_http_body;

/* Prepare for the body of the message whose head is h.  A zero-filled
 * lg_http_body is not valid; always call this. */
void lg_http_body_init(lg_http_body *d, const lg_http_head *h);

/* Feed raw body bytes.  Returns the number of bytes consumed (< n when the
 * message ended inside p: the rest belongs to the next message), a callback's
 * non-zero return, or a negative error (sticky: every later call returns it;
 * d->offset says where).  A NONE body, or a LENGTH body of 0, ends at once:
 * the first call (even with n == 0) calls on_end and returns 0.  After the
 * end every call returns 0.  on_chunk_end is called once the CRLF after the
 * chunk's data has been checked.
 * Errors: HTTP_CHUNK (bad size line or extension byte, missing CRLF after
 * data, bad line ending in trailers, size line over LG_HTTP_MAX_CHUNK_LINE),
 * HTTP_OVERFLOW (more than 16 hex digits, or a size > INT64_MAX),
 * HTTP_HEADER (malformed trailer field), HTTP_HEAD_TOO_LARGE (trailers over
 * LG_HTTP_MAX_TRAILERS). */
long lg_http_body_feed(lg_http_body *d, const char *p, size_t n,
                       const lg_http_body_cb *cb, void *ud);

/* The peer closed the connection.  For CLOSE bodies this ends the message
 * (on_end) and returns LG_OK; for LENGTH/CHUNKED bodies that are not
 * complete it returns LG_E_HTTP_EOF.  A finished body returns LG_OK. */
int lg_http_body_eof(lg_http_body *d, const lg_http_body_cb *cb, void *ud);

/* 1 once on_end has been delivered. */
int lg_http_body_done(const lg_http_body *d);

/* ==== Writing ==== */

typedef struct lg_http_edit {
    const char *name;   /* header name, matched case-insensitively */
    const char *value;  /* new value; NULL removes every field with this name */
} lg_http_edit;

/* Append to out a copy of the head h (raw bytes at h's slices, i.e. the
 * buffer it was parsed from) with edits applied: each edit replaces the
 * first field of that name in place and removes later ones, or is appended
 * before the final CRLF when absent.  Fields not edited keep their exact
 * bytes and order.  A replaced field keeps its name's spelling and its line
 * ending and becomes "Name: value"; appended fields end in CRLF.  When two
 * edits name the same field the first wins.  The buffer h was parsed from
 * must still be valid and must not be out's own memory.
 * Returns LG_OK; LG_E_INVAL (an edit name that is not a token or a value
 * with CR, LF, NUL or other control bytes: header injection), LG_E_LIMIT or
 * LG_E_NOMEM, and then out is left as it was. */
int lg_http_head_rewrite(const lg_http_head *h, const lg_http_edit *edits,
                         size_t nedits, lg_buf *out);

/* Append one chunk (size line, data, CRLF) to out, lowercase hex as Go
 * writes it.  n == 0 writes the last-chunk "0\r\n" only (caller adds the
 * trailers and the final CRLF).  LG_OK, or LG_E_LIMIT / LG_E_NOMEM with out
 * left as it was. */
int lg_http_chunk(lg_buf *out, const char *p, size_t n);

#endif
