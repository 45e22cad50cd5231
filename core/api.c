/* The API table and the code that reads it.  Everything API-specific is in
 * the table at the top; the functions below only interpret it, walking a
 * body once with the span-aware JSON walker (json.h) and matching each
 * value's path against the table's patterns. */
#include "api.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "json.h"
#include "policy.h"
#include "stream.h"

/* ==== The table ==== */

#define END { NULL, NULL, 0, 0 }

static const lg_api_loc ollama_generate_req[] = {
    { "prompt", "prompt", LG_ROLE_USER, 0 },
    { "suffix", "suffix", LG_ROLE_USER, 0 },
    { "system", "system", LG_ROLE_SYSTEM, 0 },
    END
};
static const lg_api_loc ollama_generate_resp[] = {
    { "response", "content", 0, LG_TEXT_STREAM },
    { "thinking", "thinking", 0, LG_TEXT_STREAM },
    END
};
/* messages[].images holds base64 pictures: deliberately absent. */
static const lg_api_loc ollama_chat_req[] = {
    { "messages[*].content", "content", 0, 0 },
    { "messages[*].tool_calls[*].function.arguments.**", "tool_call", 0, 0 },
    END
};
/* Ollama sends tool calls whole, arguments as a JSON object. */
static const lg_api_loc ollama_chat_resp[] = {
    { "message.content", "content", 0, LG_TEXT_STREAM },
    { "message.thinking", "thinking", 0, LG_TEXT_STREAM },
    { "message.tool_calls[*].function.arguments.**", "tool_call", 0, LG_TEXT_WHOLE },
    END
};
static const lg_api_loc embed_req[] = {
    { "input", "input", LG_ROLE_OTHER, 0 },
    { "input[*]", "input", LG_ROLE_OTHER, 0 },
    END
};
static const lg_api_loc ollama_embeddings_req[] = {
    { "prompt", "prompt", LG_ROLE_OTHER, 0 },
    END
};
static const lg_api_loc no_text[] = { END };

/* Content is a string or an array of parts; image_url parts are skipped
 * because only `text` members are listed. */
static const lg_api_loc openai_chat_req[] = {
    { "messages[*].content", "content", 0, 0 },
    { "messages[*].content[*].text", "content", 0, 0 },
    { "messages[*].tool_calls[*].function.arguments", "tool_call", 0, 0 },
    END
};
static const lg_api_loc openai_chat_resp[] = {
    { "choices[*].delta.content", "content", 0, LG_TEXT_STREAM },
    { "choices[*].delta.reasoning", "thinking", 0, LG_TEXT_STREAM },
    { "choices[*].delta.reasoning_content", "thinking", 0, LG_TEXT_STREAM },
    { "choices[*].delta.tool_calls[*].function.arguments", "tool_call", 0, LG_TEXT_STREAM },
    { "choices[*].message.content", "content", 0, LG_TEXT_WHOLE },
    { "choices[*].message.reasoning", "thinking", 0, LG_TEXT_WHOLE },
    { "choices[*].message.reasoning_content", "thinking", 0, LG_TEXT_WHOLE },
    { "choices[*].message.tool_calls[*].function.arguments", "tool_call", 0, LG_TEXT_WHOLE },
    END
};
static const lg_api_loc completions_req[] = {
    { "prompt", "prompt", LG_ROLE_USER, 0 },
    { "prompt[*]", "prompt", LG_ROLE_USER, 0 },
    { "suffix", "suffix", LG_ROLE_USER, 0 },
    END
};
static const lg_api_loc openai_completions_resp[] = {
    { "choices[*].text", "content", 0, LG_TEXT_STREAM },
    END
};
static const lg_api_loc llamacpp_completion_resp[] = {
    { "content", "content", 0, LG_TEXT_STREAM },
    END
};

static const lg_api apis[] = {
    { "ollama.generate", "POST", "/api/generate", LG_FAM_OLLAMA, 1, LG_STREAM_NDJSON,
      ollama_generate_req, ollama_generate_resp },
    { "ollama.chat", "POST", "/api/chat", LG_FAM_OLLAMA, 1, LG_STREAM_NDJSON,
      ollama_chat_req, ollama_chat_resp },
    { "ollama.embed", "POST", "/api/embed", LG_FAM_OLLAMA, 0, LG_STREAM_NDJSON,
      embed_req, no_text },
    { "ollama.embeddings", "POST", "/api/embeddings", LG_FAM_OLLAMA, 0, LG_STREAM_NDJSON,
      ollama_embeddings_req, no_text },
    { "openai.chat", "POST", "/v1/chat/completions", LG_FAM_OPENAI, 0, LG_STREAM_SSE,
      openai_chat_req, openai_chat_resp },
    { "openai.chat", "POST", "/chat/completions", LG_FAM_OPENAI, 0, LG_STREAM_SSE,
      openai_chat_req, openai_chat_resp },
    { "openai.completions", "POST", "/v1/completions", LG_FAM_OPENAI, 0, LG_STREAM_SSE,
      completions_req, openai_completions_resp },
    { "openai.embeddings", "POST", "/v1/embeddings", LG_FAM_OPENAI, 0, LG_STREAM_SSE,
      embed_req, no_text },
    { "llamacpp.completion", "POST", "/completion", LG_FAM_LLAMACPP, 0, LG_STREAM_SSE,
      completions_req, llamacpp_completion_resp },
    { "llamacpp.completion", "POST", "/completions", LG_FAM_LLAMACPP, 0, LG_STREAM_SSE,
      completions_req, llamacpp_completion_resp },
};

/* ==== Lookup ==== */

const lg_api *lg_api_lookup(const char *method, size_t mlen, const char *target, size_t tlen)
{
    /* Absolute-form targets (proxies) carry scheme and authority first. */
    if (tlen > 7 && (memcmp(target, "http://", 7) == 0 || memcmp(target, "https://", 8) == 0)) {
        const char *slash = memchr(target + 8, '/', tlen - 8);
        if (!slash)
            return NULL;
        tlen -= (size_t)(slash - target);
        target = slash;
    }
    const char *q = memchr(target, '?', tlen);
    size_t plen = q ? (size_t)(q - target) : tlen;
    /* Tolerate one trailing slash: "/api/chat/" reaches the same handler in gin. */
    if (plen > 1 && target[plen - 1] == '/')
        plen--;
    for (size_t i = 0; i < sizeof apis / sizeof apis[0]; i++) {
        const lg_api *a = &apis[i];
        if (strlen(a->method) == mlen && memcmp(a->method, method, mlen) == 0 &&
            strlen(a->path) == plen && memcmp(a->path, target, plen) == 0)
            return a;
    }
    return NULL;
}

const lg_api *lg_api_by_name(const char *name)
{
    for (size_t i = 0; i < sizeof apis / sizeof apis[0]; i++)
        if (strcmp(apis[i].name, name) == 0)
            return &apis[i];
    return NULL;
}

/* ==== Walking bodies ==== */

#define MAX_ROLES 1024 /* messages whose role we remember; later ones count as OTHER */

struct walk {
    const lg_api *api;
    const lg_api_loc *locs;
    const char *buf;
    lg_api_doc *doc;
    int is_request;
    unsigned char roles[MAX_ROLES]; /* LG_ROLE_* bit per message index, 0 unknown */
};

/* The first array index in a path, -1 if none (or over 10^9).  Indexes
 * the walker writes are plain digits, read here without strtol; a key of
 * the client's that holds '[' goes through strtol as it always did. */
static int first_index(const char *path)
{
    const char *b = strchr(path, '[');
    if (!b)
        return -1;
    long v = 0;
    if (b[1] >= '0' && b[1] <= '9') {
        for (const char *p = b + 1; *p >= '0' && *p <= '9'; p++)
            if ((v = v * 10 + (*p - '0')) > 1000000000)
                return -1;
        return (int)v;
    }
    v = strtol(b + 1, NULL, 10);
    return v < 0 || v > 1000000000 ? -1 : (int)v;
}

/* Is the path exactly the literal? */
#define PATH_IS(v, lit) ((v)->path_len == sizeof(lit) - 1 && memcmp((v)->path, (lit), sizeof(lit) - 1) == 0)

static unsigned role_of(const char *s, size_t n)
{
    static const struct { const char *name; unsigned role; } map[] = {
        { "system", LG_ROLE_SYSTEM }, { "developer", LG_ROLE_SYSTEM },
        { "user", LG_ROLE_USER }, { "assistant", LG_ROLE_ASSISTANT },
        { "tool", LG_ROLE_TOOL }, { "function", LG_ROLE_TOOL }, { "ipython", LG_ROLE_TOOL },
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strlen(map[i].name) == n && memcmp(map[i].name, s, n) == 0)
            return map[i].role;
    return LG_ROLE_OTHER;
}

/* Is the path exactly `messages[N].role`? */
static int is_role_path(const char *path, size_t len)
{
    static const char pre[] = "messages[";
    if (len < sizeof pre || memcmp(path, pre, sizeof pre - 1) != 0)
        return 0;
    const char *p = path + sizeof pre - 1;
    const char *end = path + len;
    if (p == end || *p < '0' || *p > '9')
        return 0;
    while (p < end && *p >= '0' && *p <= '9')
        p++;
    return end - p == 6 && memcmp(p, "].role", 6) == 0;
}

static int on_value(void *ud, const lg_json_value *v)
{
    struct walk *w = ud;
    lg_api_doc *doc = w->doc;

    if (v->depth == 1 && PATH_IS(v, "model") && v->type == LG_JSON_STRING) {
        doc->model_start = v->start;
        doc->model_end = v->end;
        return 0;
    }
    if (w->is_request) {
        if (v->depth == 1 && PATH_IS(v, "stream")) {
            if (v->type == LG_JSON_TRUE)
                doc->stream = 1;
            else if (v->type == LG_JSON_FALSE)
                doc->stream = 0;
            return 0;
        }
        if (v->type == LG_JSON_STRING && is_role_path(v->path, v->path_len)) {
            int idx = first_index(v->path);
            if (idx >= 0 && idx < MAX_ROLES)
                w->roles[idx] = (unsigned char)role_of(w->buf + v->start + 1, v->end - v->start - 2);
            return 0;
        }
    } else {
        if (v->depth == 1 && v->type == LG_JSON_TRUE && (PATH_IS(v, "done") || PATH_IS(v, "stop")))
            doc->done = 1;
        if (v->type == LG_JSON_STRING && v->path[0] == 'c' &&
            lg_json_path_match("choices[*].finish_reason", v->path, v->path_len))
            doc->done = 1;
        if (v->depth == 1 && PATH_IS(v, "error"))
            doc->has_error = 1;
    }
    if (v->type != LG_JSON_STRING)
        return 0;
    for (const lg_api_loc *l = w->locs; l->pattern; l++) {
        /* A pattern that starts with a literal key or index matches only
         * paths that start with the same byte: most values end here. */
        if ((l->pattern[0] != '*' && l->pattern[0] != v->path[0]) ||
            !lg_json_path_match(l->pattern, v->path, v->path_len))
            continue;
        if (doc->ntexts == LG_API_MAX_TEXTS) {
            doc->dropped++;
            return 0;
        }
        lg_api_text *t = &doc->texts[doc->ntexts++];
        t->start = v->start;
        t->end = v->end;
        t->loc = l;
        t->role = l->role;
        t->index = first_index(v->path);
        size_t pl = v->path_len < sizeof t->path - 1 ? v->path_len : sizeof t->path - 1;
        memcpy(t->path, v->path, pl);
        t->path[pl] = '\0';
        return 0;
    }
    return 0;
}

static int walk(const lg_api *api, const lg_api_loc *locs, int is_request,
                const char *body, size_t n, lg_api_doc *doc)
{
    /* This runs for every streamed answer event: no allocation, and only
     * what is read before it is written gets cleared (every texts[] entry
     * is filled in whole by on_value; roles matter for requests only). */
    struct walk wk, *w = &wk;
    w->api = api;
    w->locs = locs;
    w->buf = body;
    w->doc = doc;
    w->is_request = is_request;
    if (is_request)
        memset(w->roles, 0, sizeof w->roles);
    doc->ntexts = 0;
    doc->dropped = 0;
    doc->stream = -1;
    doc->model_start = doc->model_end = 0;
    doc->done = 0;
    doc->has_error = 0;
    int rc = lg_json_walk(body, n, 0, on_value, w, NULL);
    if (rc == LG_OK && is_request) {
        /* Roles may follow content inside a message object: resolve last. */
        for (size_t i = 0; i < doc->ntexts; i++) {
            lg_api_text *t = &doc->texts[i];
            if (t->role)
                continue;
            t->role = t->index >= 0 && t->index < MAX_ROLES && w->roles[t->index]
                          ? w->roles[t->index] : LG_ROLE_OTHER;
        }
    }
    return rc;
}

int lg_api_scan_request(const lg_api *api, const char *body, size_t n, lg_api_doc *doc)
{
    return walk(api, api->req, 1, body, n, doc);
}

int lg_api_scan_response(const lg_api *api, const char *json, size_t n, lg_api_doc *doc)
{
    return walk(api, api->resp, 0, json, n, doc);
}

int lg_api_streams(const lg_api *api, const lg_api_doc *req)
{
    if (req->stream >= 0)
        return req->stream;
    return api->stream_default;
}

/* ==== Error shapes ==== */

static int openai_error(const char *message, const char *code, lg_buf *out)
{
    int rc = lg_buf_puts(out, "{\"error\":{\"message\":");
    if (!rc)
        rc = lg_json_escape(message, strlen(message), 0, out);
    if (!rc)
        rc = lg_buf_puts(out, ",\"type\":\"llmguard_policy\",\"param\":null,\"code\":");
    if (!rc)
        rc = lg_json_escape(code, strlen(code), 0, out);
    if (!rc)
        rc = lg_buf_puts(out, "}}");
    return rc;
}

int lg_api_error_body(const lg_api *api, const char *message, const char *code, lg_buf *out)
{
    if (!api || api->family == LG_FAM_OLLAMA) {
        int rc = lg_buf_puts(out, "{\"error\":");
        if (!rc)
            rc = lg_json_escape(message, strlen(message), LG_JSON_ESC_HTML, out);
        if (!rc)
            rc = lg_buf_puts(out, "}");
        return rc;
    }
    return openai_error(message, code, out);
}

int lg_api_stream_error(const lg_api *api, const char *message, const char *code, lg_buf *out)
{
    int rc;
    if (api->family == LG_FAM_OLLAMA) {
        rc = lg_api_error_body(api, message, code, out);
        return rc ? rc : lg_buf_puts(out, "\n");
    }
    rc = lg_buf_puts(out, "data: ");
    if (!rc)
        rc = openai_error(message, code, out);
    if (!rc)
        rc = lg_buf_puts(out, "\n\n");
    if (!rc && api->family == LG_FAM_OPENAI)
        rc = lg_buf_puts(out, "data: [DONE]\n\n");
    return rc;
}
