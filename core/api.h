/* The model APIs llmguard understands, as one table: how to recognise a
 * request (method and path), where the user-controlled text lives in its
 * JSON body, whether and how its answer streams, and where the generated
 * text lives in each answer event.  Adding an API is one table entry.
 *
 * Text locations are JSON path patterns (json.h): `messages[*].content`,
 * `choices[*].delta.content`.  Base64 image fields (`images`, image_url
 * parts) are never listed, so they are never scanned as text.  Roles of
 * chat messages come from the sibling `role` of the same message.
 *
 * Ownership: the table is static; lg_api_fields_* results are caller-owned
 * structs holding slices into the caller's body buffer. */
#ifndef LG_API_H
#define LG_API_H

#include <stddef.h>

#include "buf.h"

enum lg_api_family {
    LG_FAM_OLLAMA = 1,  /* errors {"error":"..."}; NDJSON streams */
    LG_FAM_OPENAI,      /* errors {"error":{"message","type","code"}}; SSE with [DONE] */
    LG_FAM_LLAMACPP     /* SSE without [DONE]; errors as OpenAI's shape */
};

/* How a text location is scanned. */
enum lg_api_text_mode {
    LG_TEXT_STREAM = 0, /* successive events carry deltas of one text (tokens) */
    LG_TEXT_WHOLE       /* each value is a complete text on its own */
};

typedef struct lg_api_loc {
    const char *pattern;  /* JSON path pattern */
    const char *field;    /* name in events and hold-back key: "content", "thinking", "tool" */
    unsigned role;        /* LG_ROLE_* for request text; 0 = from messages[i].role */
    int mode;             /* enum lg_api_text_mode (responses) */
} lg_api_loc;

typedef struct lg_api {
    const char *name;          /* "ollama.chat", used in events */
    const char *method;        /* "POST" */
    const char *path;          /* exact path; the query string is ignored */
    int family;                /* enum lg_api_family */
    int stream_default;        /* streams when the request says nothing */
    int stream_kind;           /* enum lg_stream_kind when streaming */
    const lg_api_loc *req;     /* request text; terminated by a zero entry */
    const lg_api_loc *resp;    /* answer text (stream events and whole bodies); zero-terminated */
} lg_api;

/* The API a request addresses, or NULL (not a model API: framing only). */
const lg_api *lg_api_lookup(const char *method, size_t mlen, const char *target, size_t tlen);

/* Lookup by name ("openai.chat"), for tests and tools. */
const lg_api *lg_api_by_name(const char *name);

/* One text value found in a JSON document. */
typedef struct lg_api_text {
    size_t start, end;       /* span of the JSON string token (quotes included) */
    const lg_api_loc *loc;   /* which table location matched */
    unsigned role;           /* LG_ROLE_* (requests) */
    int index;               /* first array index in the path (message or choice), -1 if none */
    char path[96];           /* path, possibly truncated, for events */
} lg_api_text;

#define LG_API_MAX_TEXTS 256

typedef struct lg_api_doc {
    lg_api_text texts[LG_API_MAX_TEXTS];
    size_t ntexts;
    size_t dropped;          /* text values beyond LG_API_MAX_TEXTS (not inspected) */
    int stream;              /* request: -1 absent, 0 false, 1 true */
    size_t model_start, model_end; /* span of "model" string token, 0/0 if absent */
    int done;                /* answer event: done:true, stop:true, or a finish_reason */
    int has_error;           /* answer event: carries an "error" member */
} lg_api_doc;

/* Find the request's text fields, its stream flag and model.  Returns
 * LG_OK, or LG_E_JSON / LG_E_JSON_DEPTH for a body that is not JSON. */
int lg_api_scan_request(const lg_api *api, const char *body, size_t n, lg_api_doc *doc);

/* Same for one answer event or a whole non-streamed answer. */
int lg_api_scan_response(const lg_api *api, const char *json, size_t n, lg_api_doc *doc);

/* Does this request stream its answer? */
int lg_api_streams(const lg_api *api, const lg_api_doc *req);

/* Append the body of a refusal in the API's own error shape:
 * Ollama {"error":"..."}; OpenAI/llama.cpp
 * {"error":{"message":"...","type":"llmguard_policy","code":"<code>"}}. */
int lg_api_error_body(const lg_api *api, const char *message, const char *code, lg_buf *out);

/* Append an in-stream error that ends an answer in this API's stream form
 * (NDJSON line; SSE data event followed by [DONE] for OpenAI). */
int lg_api_stream_error(const lg_api *api, const char *message, const char *code, lg_buf *out);

#endif
