/* llmguard-fakellm: a small local model server for demos and tests.  It speaks
 * the wire formats of the local LLM servers llmguard guards, byte for byte as
 * far as the framing goes (design.md §4), with a fake model behind them:
 *
 *   - Ollama (/api/generate, /api/chat, /api/embed, /api/embeddings,
 *     /api/tags, /api/version, GET /): Go net/http + gin.  Go's response
 *     writer is a 2048-byte bufio in front of the "chunkWriter", which writes
 *     into a 4096-byte bufio on the socket.  A response whose body is complete
 *     when the handler returns and fits the first buffer gets Content-Length;
 *     anything flushed earlier (streaming) or larger gets chunked encoding,
 *     and an explicit Flush turns what is buffered into exactly one chunk.
 *     The headers travel in the same write(2) as the first chunk and
 *     "0\r\n\r\n" comes in its own write.  We model those two buffers (see
 *     "Go's response writer" below) instead of hand-placing the bytes, so
 *     the odd cases (a body just over 2 KiB, an SSE final event plus
 *     [DONE] sharing one chunk) come out as Go produces them.  JSON strings
 *     are escaped as encoding/json does: <, >, & as \u003c \u003e \u0026,
 *     U+2028/2029 escaped, invalid UTF-8 as \ufffd, fields in struct order.
 *   - Ollama's OpenAI compatibility layer (/v1/chat/completions,
 *     /v1/completions, /v1/models): SSE "data: {json}\n\n" with a final
 *     event, then "data: [DONE]\n\n".
 *   - llama.cpp's server (/completion, /health): cpp-httplib, which writes
 *     the headers, then each chunk, then the terminator in separate writes;
 *     SSE without [DONE], final event "stop":true; nlohmann::ordered_json
 *     escaping (no \u003c, UTF-8 raw).
 *
 * The model: "echo" answers with the text it received (the last user
 * message of a chat, the prompt of a completion); "script:FILE" answers with
 * the file's content.  The answer is cut into deterministic tokens of 1-4
 * characters or one word, so words are split mid-way as real tokenisers do.
 * --record appends every request body as one line, so a test can see what
 * reached the model.  --split none|bytes|merge changes how the same bytes
 * are cut into write(2) calls (bytes: adversarial random splits with
 * TCP_NODELAY; merge: several writes coalesced, SSE events sharing chunks).
 *
 * Two magic model names exercise error paths: "fail-notfound" gets a 404
 * model-not-found error, "fail-midstream" streams half the answer and then
 * an error event.
 *
 * One thread per connection (bounded), blocking I/O, HTTP/1.1 keep-alive
 * and pipelining, request bodies with Content-Length or chunked encoding.
 * Malformed requests get Go's plain "400 Bad Request" and the connection is
 * closed.  Only libc, pthreads and cJSON. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>

#include "buf.h"
#include "error.h"

#define MAX_CONNS 128              /* concurrent connections served */
#define MAX_HEAD (64u * 1024)      /* request line + headers */
#define MAX_BODY (16u * 1024 * 1024) /* decoded request body */
#define MAX_IN (MAX_HEAD + MAX_BODY + 1024 * 1024) /* raw bytes incl. chunk framing */
#define MAX_OUT (64u * 1024 * 1024) /* one response being built */
#define MAX_SCRIPT (4u * 1024 * 1024)
#define GO_RESP_BUF 2048           /* net/http bufferBeforeChunkingSize */
#define GO_CONN_BUF 4096           /* net/http conn bufw size */
#define MERGE_WRITES 3             /* --split merge: writes per write(2) */
#define MERGE_EVENTS 3             /* --split merge: SSE events per chunk */
#define IDLE_TIMEOUT_S 120

enum split_mode { SPLIT_NONE, SPLIT_BYTES, SPLIT_MERGE };

/* ==== Configuration (set once in main; afterwards only seed changes, under
 * g_lock, as the source of chatcmpl-N ids) ==== */
static struct {
    char listen_host[64];
    int listen_port;
    const char *port_file;
    char *script;         /* script:FILE content, NULL for echo */
    size_t script_len;
    unsigned delay_ms;
    enum split_mode split;
    bool once;
    int record_fd;        /* -1 when not recording */
    uint64_t seed;
    long long fixed_time; /* <0: real clock */
    const char *models;   /* comma-separated list for /api/tags, /v1/models */
    const char *version;
} cfg;

static volatile sig_atomic_t g_stop;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_active;                 /* connections being served */
static int g_fds[MAX_CONNS];         /* their sockets, -1 = free slot */
static unsigned g_conn_seq;

/* ==== Small helpers ==== */

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64*: tiny, deterministic, good enough for split points. */
    uint64_t x = *s ? *s : 0x9E3779B97F4A7C15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static uint64_t fnv1a(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static void now_ts(struct timespec *ts)
{
    if (cfg.fixed_time >= 0) {
        ts->tv_sec = (time_t)cfg.fixed_time;
        ts->tv_nsec = 123456700; /* trailing zeros are trimmed by RFC3339Nano */
        return;
    }
    clock_gettime(CLOCK_REALTIME, ts);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !g_stop) {
    }
}

static void sleep_us(unsigned us)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)us * 1000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !g_stop) {
    }
}

/* Go's http.TimeFormat: "Mon, 02 Jan 2006 15:04:05 GMT". */
static void http_date(char *out, size_t n)
{
    struct timespec ts;
    struct tm tm;
    now_ts(&ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(out, n, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* Go's time.RFC3339Nano in UTC: fraction with trailing zeros trimmed,
 * omitted entirely when zero. */
static void rfc3339nano(char *out, size_t n)
{
    struct timespec ts;
    struct tm tm;
    now_ts(&ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t k = strftime(out, n, "%Y-%m-%dT%H:%M:%S", &tm);
    if (ts.tv_nsec) {
        char frac[16];
        snprintf(frac, sizeof frac, ".%09ld", ts.tv_nsec);
        size_t fl = strlen(frac);
        while (fl > 1 && frac[fl - 1] == '0')
            frac[--fl] = '\0';
        snprintf(out + k, n - k, "%sZ", frac);
    } else {
        snprintf(out + k, n - k, "Z");
    }
}

static long long unix_now(void)
{
    struct timespec ts;
    now_ts(&ts);
    return (long long)ts.tv_sec;
}

/* ==== JSON string encoders ==== */

/* Decode one UTF-8 sequence as Go's utf8.DecodeRune does: returns the
 * length (1..4) and the code point, or length 1 and -1 for an invalid or
 * truncated sequence (overlongs, surrogates and > U+10FFFF are invalid). */
static int utf8_decode(const unsigned char *s, size_t n, long *cp)
{
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int len;
    long v, min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2; v = c & 0x1F; min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3; v = c & 0x0F; min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4; v = c & 0x07; min = 0x10000;
    } else {
        *cp = -1;
        return 1;
    }
    if ((size_t)len > n) {
        *cp = -1;
        return 1;
    }
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = -1;
            return 1;
        }
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
        *cp = -1;
        return 1;
    }
    *cp = v;
    return len;
}

/* Append s as a JSON string the way Go's encoding/json (HTML-safe, Go 1.22+)
 * writes it. */
static void go_str(lg_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    lg_buf_append(b, "\"", 1);
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        if (c < 0x80) {
            char esc[8];
            const char *e = NULL;
            switch (c) {
            case '"': e = "\\\""; break;
            case '\\': e = "\\\\"; break;
            case '\n': e = "\\n"; break;
            case '\r': e = "\\r"; break;
            case '\t': e = "\\t"; break;
            case '\b': e = "\\b"; break;
            case '\f': e = "\\f"; break;
            default:
                if (c < 0x20 || c == '<' || c == '>' || c == '&') {
                    snprintf(esc, sizeof esc, "\\u00%c%c", hex[c >> 4], hex[c & 15]);
                    e = esc;
                }
            }
            if (e)
                lg_buf_puts(b, e);
            else
                lg_buf_append(b, &p[i], 1);
            i++;
            continue;
        }
        long cp;
        int len = utf8_decode(p + i, n - i, &cp);
        if (cp < 0)
            lg_buf_puts(b, "\\ufffd");
        else if (cp == 0x2028)
            lg_buf_puts(b, "\\u2028");
        else if (cp == 0x2029)
            lg_buf_puts(b, "\\u2029");
        else
            lg_buf_append(b, p + i, (size_t)len);
        i += (size_t)len;
    }
    lg_buf_append(b, "\"", 1);
}

/* Append s as nlohmann::json dump(-1, ' ', false, replace) writes it:
 * short escapes, other controls as lowercase \u00xx, UTF-8 raw, invalid
 * bytes replaced by U+FFFD (raw). */
static void nl_str(lg_buf *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    lg_buf_append(b, "\"", 1);
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        if (c < 0x80) {
            switch (c) {
            case '"': lg_buf_puts(b, "\\\""); break;
            case '\\': lg_buf_puts(b, "\\\\"); break;
            case '\n': lg_buf_puts(b, "\\n"); break;
            case '\r': lg_buf_puts(b, "\\r"); break;
            case '\t': lg_buf_puts(b, "\\t"); break;
            case '\b': lg_buf_puts(b, "\\b"); break;
            case '\f': lg_buf_puts(b, "\\f"); break;
            default:
                if (c < 0x20)
                    lg_buf_printf(b, "\\u%04x", c);
                else
                    lg_buf_append(b, &p[i], 1);
            }
            i++;
            continue;
        }
        long cp;
        int len = utf8_decode(p + i, n - i, &cp);
        if (cp < 0)
            lg_buf_puts(b, "\xEF\xBF\xBD");
        else
            lg_buf_append(b, p + i, (size_t)len);
        i += (size_t)len;
    }
    lg_buf_append(b, "\"", 1);
}

static void go_cstr(lg_buf *b, const char *s)
{
    go_str(b, s, strlen(s));
}

/* nlohmann prints doubles shortest-round-trip, with ".0" for integral values. */
static void nl_double(lg_buf *b, double v)
{
    char tmp[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    lg_buf_puts(b, tmp);
    if (!strpbrk(tmp, ".eEni"))
        lg_buf_puts(b, ".0");
}

/* ==== The fake model ==== */

typedef struct {
    size_t off, len;
} tok_span;

typedef struct {
    tok_span *v;
    size_t n;
} tok_list;

static size_t cp_len(const char *s, size_t n, size_t i)
{
    long cp;
    return (size_t)utf8_decode((const unsigned char *)s + i, n - i, &cp);
}

static bool is_word_byte(unsigned char c)
{
    return c >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
           (c >= 'A' && c <= 'Z') || c == '_';
}

/* Cut text into tokens: either a word (with one leading space, at most 12
 * bytes) or 1-4 code points.  Deterministic for a given text, never splits a
 * UTF-8 sequence, and often splits words (like BPE does). */
static int tokenize(const char *s, size_t n, tok_list *out)
{
    out->v = NULL;
    out->n = 0;
    if (n == 0)
        return 0;
    out->v = calloc(n, sizeof *out->v);
    if (!out->v)
        return -1;
    uint64_t rng = 0x5DEECE66Dull;
    size_t i = 0;
    while (i < n) {
        uint64_t r = rng_next(&rng);
        size_t start = i;
        if (r % 3 == 0) {
            if (s[i] == ' ')
                i++;
            size_t w = i;
            while (i < n && is_word_byte((unsigned char)s[i]) && i - start < 12)
                i += cp_len(s, n, i);
            if (i == w && i < n)
                i += cp_len(s, n, i);
        } else {
            unsigned k = 1 + (unsigned)((r >> 8) % 4);
            for (unsigned j = 0; j < k && i < n; j++)
                i += cp_len(s, n, i);
        }
        if (i > n)
            i = n;
        out->v[out->n].off = start;
        out->v[out->n].len = i - start;
        out->n++;
    }
    return 0;
}

/* A fake token id for a piece of text (for "context" and llama.cpp "tokens"). */
static unsigned tok_id(const char *s, size_t n)
{
    return (unsigned)(fnv1a(s, n) % 128000u) + 100u;
}

/* Text content of an OpenAI/Ollama message: a string, or the "text" parts of
 * an array joined with "\n". */
static void message_text(const cJSON *content, lg_buf *out)
{
    if (cJSON_IsString(content)) {
        lg_buf_puts(out, content->valuestring);
        return;
    }
    if (!cJSON_IsArray(content))
        return;
    bool first = true;
    const cJSON *part;
    cJSON_ArrayForEach(part, content) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (cJSON_IsString(t)) {
            if (!first)
                lg_buf_puts(out, "\n");
            lg_buf_puts(out, t->valuestring);
            first = false;
        } else if (cJSON_IsString(part)) {
            lg_buf_puts(out, part->valuestring);
        }
    }
}

/* What the echo model answers to a chat: the content of the last message
 * whose role is "user", or of the last message when there is none.  System
 * prompts and tool results are not echoed (they are visible in --record). */
static void chat_input(const cJSON *messages, lg_buf *out)
{
    const cJSON *m, *pick = NULL, *last = NULL;
    cJSON_ArrayForEach(m, messages) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        last = m;
        if (cJSON_IsString(role) && strcmp(role->valuestring, "user") == 0)
            pick = m;
    }
    if (!pick)
        pick = last;
    if (pick)
        message_text(cJSON_GetObjectItemCaseSensitive(pick, "content"), out);
}

/* A completion prompt: string, or array of strings (joined). */
static void prompt_input(const cJSON *prompt, lg_buf *out)
{
    if (cJSON_IsString(prompt)) {
        lg_buf_puts(out, prompt->valuestring);
        return;
    }
    const cJSON *p;
    if (cJSON_IsArray(prompt))
        cJSON_ArrayForEach(p, prompt) if (cJSON_IsString(p)) lg_buf_puts(out, p->valuestring);
}

/* The answer for what the model received: echo or the script. */
static void model_answer(const lg_buf *input, lg_buf *answer)
{
    if (cfg.script)
        lg_buf_append(answer, cfg.script, cfg.script_len);
    else if (input->len)
        lg_buf_append(answer, input->data, input->len);
}

/* ==== Connections and the wire ==== */

typedef struct gobufio {
    char buf[GO_CONN_BUF];
    size_t n;   /* bytes buffered */
    size_t cap; /* 2048 or 4096 */
    int level;  /* 1 = response bufio (sink: chunkWriter), 2 = conn bufw (sink: wire) */
} gobufio;

typedef struct conn {
    int fd;
    unsigned id;
    uint64_t rng;         /* seeds --split bytes points */
    bool dead;            /* a write failed: stop producing output */
    lg_buf in;            /* raw request bytes not yet consumed */
    lg_buf body;          /* decoded body of the current request */
    /* current request */
    char method[16];
    char path[2048];      /* without the query string */
    bool http10;
    bool head;            /* HEAD: headers as for GET, no body bytes */
    bool want_close;      /* Connection: close (or HTTP/1.0) */
    bool expect100;
    bool sent100;
    /* Go response writer model */
    gobufio l1, l2;
    bool go_header_done;
    bool go_chunked;
    bool go_handler_done;
    int go_status;
    const char *go_ctype;
    /* --split merge */
    lg_buf merge;
    int merge_count;
} conn;

static int send_all(conn *c, const char *p, size_t n)
{
    while (n && !c->dead) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            c->dead = true;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return c->dead ? -1 : 0;
}

/* One "logical write": what the real server would hand to write(2) at
 * once.  The split mode decides how it really reaches the socket. */
static void wire_write(conn *c, const char *p, size_t n)
{
    if (c->dead || n == 0)
        return;
    switch (cfg.split) {
    case SPLIT_NONE:
        send_all(c, p, n);
        break;
    case SPLIT_MERGE:
        if (lg_buf_append(&c->merge, p, n) != LG_OK) {
            send_all(c, c->merge.data, c->merge.len);
            lg_buf_reset(&c->merge);
            send_all(c, p, n);
            c->merge_count = 0;
            break;
        }
        if (++c->merge_count >= MERGE_WRITES) {
            send_all(c, c->merge.data, c->merge.len);
            lg_buf_reset(&c->merge);
            c->merge_count = 0;
        }
        break;
    case SPLIT_BYTES:
        while (n && !c->dead) {
            size_t k = 1 + (size_t)(rng_next(&c->rng) % 23);
            if (k > n)
                k = n;
            send_all(c, p, k);
            p += k;
            n -= k;
            if (n)
                sleep_us(200);
        }
        break;
    }
}

/* End of a response: whatever --split merge still holds goes out. */
static void wire_end(conn *c)
{
    if (cfg.split == SPLIT_MERGE && c->merge.len) {
        send_all(c, c->merge.data, c->merge.len);
        lg_buf_reset(&c->merge);
    }
    c->merge_count = 0;
}

/* ==== Go's response writer (net/http response + chunkWriter + bufio) ==== */

static void cw_write(conn *c, const char *p, size_t n);

static void bufio_sink(conn *c, gobufio *b, const char *p, size_t n)
{
    if (b->level == 1)
        cw_write(c, p, n);
    else
        wire_write(c, p, n);
}

static void bufio_flush(conn *c, gobufio *b)
{
    if (b->n == 0)
        return;
    size_t n = b->n;
    b->n = 0;
    bufio_sink(c, b, b->buf, n);
}

/* bufio.Writer.Write, same algorithm: a write larger than the free space
 * goes straight to the sink when the buffer is empty, otherwise it tops the
 * buffer up and flushes. */
static void bufio_write(conn *c, gobufio *b, const char *p, size_t n)
{
    while (n > b->cap - b->n) {
        if (b->n == 0) {
            bufio_sink(c, b, p, n);
            return;
        }
        size_t k = b->cap - b->n;
        memcpy(b->buf + b->n, p, k);
        b->n += k;
        p += k;
        n -= k;
        bufio_flush(c, b);
    }
    memcpy(b->buf + b->n, p, n);
    b->n += n;
}

static const char *status_text(int st)
{
    switch (st) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Request Entity Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

/* chunkWriter.writeHeader: explicit headers (sorted; we only set
 * Content-Type), then Date, Content-Length, Connection, Transfer-Encoding. */
static void cw_header(conn *c, size_t plen)
{
    char date[64], line[256];
    http_date(date, sizeof date);
    c->go_header_done = true;
    int k = snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nDate: %s\r\n",
                     c->go_status, status_text(c->go_status), c->go_ctype, date);
    bufio_write(c, &c->l2, line, (size_t)k);
    if (c->go_handler_done) {
        k = snprintf(line, sizeof line, "Content-Length: %zu\r\n", plen);
        bufio_write(c, &c->l2, line, (size_t)k);
    }
    if (c->want_close && !c->http10)
        bufio_write(c, &c->l2, "Connection: close\r\n", 19);
    if (!c->go_handler_done && !c->http10) {
        c->go_chunked = true;
        bufio_write(c, &c->l2, "Transfer-Encoding: chunked\r\n", 28);
    }
    if (!c->go_handler_done && c->http10)
        c->want_close = true; /* unknown length on HTTP/1.0: close delimits */
    bufio_write(c, &c->l2, "\r\n", 2);
}

static void cw_write(conn *c, const char *p, size_t n)
{
    if (!c->go_header_done)
        cw_header(c, n);
    if (n == 0 || c->head)
        return;
    if (c->go_chunked) {
        char h[24];
        int k = snprintf(h, sizeof h, "%zx\r\n", n);
        bufio_write(c, &c->l2, h, (size_t)k);
        bufio_write(c, &c->l2, p, n);
        bufio_write(c, &c->l2, "\r\n", 2);
    } else {
        bufio_write(c, &c->l2, p, n);
    }
}

static void go_begin(conn *c, int status, const char *ctype)
{
    c->l1.n = 0;
    c->l1.cap = GO_RESP_BUF;
    c->l1.level = 1;
    c->l2.n = 0;
    c->l2.cap = GO_CONN_BUF;
    c->l2.level = 2;
    c->go_header_done = false;
    c->go_chunked = false;
    c->go_handler_done = false;
    c->go_status = status;
    c->go_ctype = ctype;
}

static void go_write(conn *c, const char *p, size_t n)
{
    bufio_write(c, &c->l1, p, n);
}

/* http.Flusher.Flush: the response buffer becomes one chunk, the
 * connection buffer one write(2). */
static void go_flush(conn *c)
{
    bufio_flush(c, &c->l1);
    if (!c->go_header_done)
        cw_header(c, 0);
    bufio_flush(c, &c->l2);
}

/* The handler returned: finishRequest. */
static void go_finish(conn *c)
{
    c->go_handler_done = true;
    bufio_flush(c, &c->l1);
    if (!c->go_header_done)
        cw_header(c, 0);
    if (c->go_chunked && !c->head)
        bufio_write(c, &c->l2, "0\r\n\r\n", 5);
    bufio_flush(c, &c->l2);
    wire_end(c);
}

/* gin c.JSON(status, body): no trailing newline, charset in Content-Type. */
static void gin_json(conn *c, int status, const lg_buf *body)
{
    go_begin(c, status, "application/json; charset=utf-8");
    go_write(c, body->data ? body->data : "", body->len);
    go_finish(c);
}

static void gin_error(conn *c, int status, const char *msg)
{
    lg_buf b;
    lg_buf_init(&b, 1 << 20);
    lg_buf_puts(&b, "{\"error\":");
    go_cstr(&b, msg);
    lg_buf_puts(&b, "}");
    gin_json(c, status, &b);
    lg_buf_free(&b);
}

/* The OpenAI layer's errors: json.Encoder (newline), plain application/json. */
static void oai_error(conn *c, int status, const char *msg)
{
    const char *type = status == 400 ? "invalid_request_error"
                       : status == 404 ? "not_found_error" : "api_error";
    lg_buf b;
    lg_buf_init(&b, 1 << 20);
    lg_buf_puts(&b, "{\"error\":{\"message\":");
    go_cstr(&b, msg);
    lg_buf_puts(&b, ",\"type\":");
    go_cstr(&b, type);
    lg_buf_puts(&b, ",\"param\":null,\"code\":null}}\n");
    go_begin(c, status, "application/json");
    go_write(c, b.data, b.len);
    go_finish(c);
    lg_buf_free(&b);
}

/* Go's own reply to a request it cannot parse; the connection is closed. */
static void go_bad_request(conn *c, int status)
{
    char msg[256];
    int k = snprintf(msg, sizeof msg,
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Connection: close\r\n\r\n%d %s",
                     status, status_text(status), status, status_text(status));
    wire_write(c, msg, (size_t)k);
    wire_end(c);
}

/* ==== cpp-httplib (llama.cpp) writer ==== */

static void httplib_head(conn *c, int status, const char *ctype, long long clen)
{
    lg_buf h;
    lg_buf_init(&h, 4096);
    lg_buf_printf(&h, "HTTP/1.1 %d %s\r\nAccess-Control-Allow-Origin: \r\n", status,
                  status_text(status));
    if (c->want_close)
        lg_buf_puts(&h, "Connection: close\r\n");
    if (clen >= 0)
        lg_buf_printf(&h, "Content-Length: %lld\r\n", clen);
    lg_buf_printf(&h, "Content-Type: %s\r\n", ctype);
    if (!c->want_close)
        lg_buf_puts(&h, "Keep-Alive: timeout=5, max=100\r\n");
    lg_buf_puts(&h, "Server: llama.cpp\r\n");
    if (clen < 0)
        lg_buf_puts(&h, "Transfer-Encoding: chunked\r\n");
    lg_buf_puts(&h, "\r\n");
    wire_write(c, h.data, h.len);
    lg_buf_free(&h);
}

static void httplib_chunk(conn *c, const char *p, size_t n)
{
    lg_buf ch;
    lg_buf_init(&ch, n + 64);
    lg_buf_printf(&ch, "%zx\r\n", n);
    lg_buf_append(&ch, p, n);
    lg_buf_puts(&ch, "\r\n");
    wire_write(c, ch.data, ch.len);
    lg_buf_free(&ch);
}

static void httplib_json(conn *c, int status, const lg_buf *body)
{
    httplib_head(c, status, "application/json; charset=utf-8", (long long)body->len);
    if (!c->head)
        wire_write(c, body->data, body->len);
    wire_end(c);
}

static void llama_error(conn *c, int status, const char *type, const char *msg)
{
    lg_buf b;
    lg_buf_init(&b, 1 << 20);
    lg_buf_printf(&b, "{\"error\":{\"code\":%d,\"message\":", status);
    nl_str(&b, msg, strlen(msg));
    lg_buf_puts(&b, ",\"type\":");
    nl_str(&b, type, strlen(type));
    lg_buf_puts(&b, "}}");
    httplib_json(c, status, &b);
    lg_buf_free(&b);
}

/* ==== Request bookkeeping ==== */

static void record_body(const conn *c)
{
    if (cfg.record_fd < 0 || c->body.len == 0)
        return;
    /* One line per body: raw newlines can only be JSON whitespace in valid
     * JSON, so turning them into spaces keeps the document equivalent. */
    char *line = malloc(c->body.len + 1);
    if (!line)
        return;
    for (size_t i = 0; i < c->body.len; i++) {
        char ch = c->body.data[i];
        line[i] = (ch == '\n' || ch == '\r') ? ' ' : ch;
    }
    line[c->body.len] = '\n';
    pthread_mutex_lock(&g_lock);
    ssize_t w = write(cfg.record_fd, line, c->body.len + 1);
    pthread_mutex_unlock(&g_lock);
    (void)w;
    free(line);
}

typedef struct {
    cJSON *root;
    const char *model;
    bool stream;
    bool include_usage;
    lg_buf input;   /* what the model reads */
    lg_buf answer;  /* what it says */
    tok_list toks;  /* answer tokens */
    tok_list ptoks; /* input tokens (for counts) */
} gen;

static void gen_free(gen *g)
{
    cJSON_Delete(g->root);
    lg_buf_free(&g->input);
    lg_buf_free(&g->answer);
    free(g->toks.v);
    free(g->ptoks.v);
}

enum api { API_OLLAMA, API_OPENAI, API_LLAMA };

/* Parse the body and fill g.  On failure the error reply has been sent and
 * -1 is returned. */
static int gen_parse(conn *c, gen *g, enum api api, bool stream_default, bool is_chat)
{
    memset(g, 0, sizeof *g);
    lg_buf_init(&g->input, MAX_BODY);
    lg_buf_init(&g->answer, MAX_BODY + MAX_SCRIPT);
    const char *err = NULL;
    if (c->body.len == 0)
        err = "missing request body";
    else if (!(g->root = cJSON_ParseWithLength(c->body.data, c->body.len)) ||
             !cJSON_IsObject(g->root))
        err = "invalid JSON in request body";
    if (err) {
        if (api == API_OLLAMA)
            gin_error(c, 400, err);
        else if (api == API_OPENAI)
            oai_error(c, 400, err);
        else
            llama_error(c, 400, "invalid_request_error", err);
        return -1;
    }
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(g->root, "model");
    g->model = cJSON_IsString(m) ? m->valuestring : "";
    if (api == API_LLAMA && !*g->model)
        g->model = "gpt-3.5-turbo"; /* llama.cpp's default oaicompat model name */
    if (api != API_LLAMA && !*g->model) {
        if (api == API_OLLAMA)
            gin_error(c, 400, "model is required");
        else
            oai_error(c, 400, "model is required");
        return -1;
    }
    if (strcmp(g->model, "fail-notfound") == 0) {
        char msg[512];
        snprintf(msg, sizeof msg, "model \"%.400s\" not found, try pulling it first", g->model);
        if (api == API_OLLAMA)
            gin_error(c, 404, msg);
        else if (api == API_OPENAI)
            oai_error(c, 404, msg);
        else
            llama_error(c, 404, "not_found_error", msg);
        return -1;
    }
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(g->root, "stream");
    g->stream = cJSON_IsBool(s) ? cJSON_IsTrue(s) : stream_default;
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(g->root, "stream_options");
    const cJSON *iu = cJSON_GetObjectItemCaseSensitive(so, "include_usage");
    g->include_usage = cJSON_IsTrue(iu);
    if (is_chat)
        chat_input(cJSON_GetObjectItemCaseSensitive(g->root, "messages"), &g->input);
    else
        prompt_input(cJSON_GetObjectItemCaseSensitive(g->root, "prompt"), &g->input);
    model_answer(&g->input, &g->answer);
    if (tokenize(g->answer.data, g->answer.len, &g->toks) < 0 ||
        tokenize(g->input.data, g->input.len, &g->ptoks) < 0) {
        if (api == API_OLLAMA)
            gin_error(c, 500, "out of memory");
        else if (api == API_OPENAI)
            oai_error(c, 500, "out of memory");
        else
            llama_error(c, 500, "server_error", "out of memory");
        return -1;
    }
    return 0;
}

static bool fail_midstream(const gen *g)
{
    return strcmp(g->model, "fail-midstream") == 0;
}

static const char *tok_ptr(const gen *g, size_t i)
{
    return g->answer.data + g->toks.v[i].off;
}

/* ==== Ollama native API ==== */

/* Metrics with Go's omitempty: zero values are left out. */
static void ollama_metrics(lg_buf *b, const gen *g)
{
    long long pc = (long long)g->ptoks.n, ec = (long long)g->toks.n;
    long long load = 12345678, ped = 1000000 + pc * 350000, ed = ec * 21000000 + 1234;
    long long total = load + ped + ed + 456789;
    lg_buf_printf(b, ",\"total_duration\":%lld,\"load_duration\":%lld", total, load);
    if (pc)
        lg_buf_printf(b, ",\"prompt_eval_count\":%lld", pc);
    lg_buf_printf(b, ",\"prompt_eval_duration\":%lld", ped);
    if (ec)
        lg_buf_printf(b, ",\"eval_count\":%lld", ec);
    if (ed)
        lg_buf_printf(b, ",\"eval_duration\":%lld", ed);
}

static void ollama_head(lg_buf *b, const gen *g)
{
    char ts[64];
    rfc3339nano(ts, sizeof ts);
    lg_buf_puts(b, "{\"model\":");
    go_cstr(b, g->model);
    lg_buf_puts(b, ",\"created_at\":");
    go_cstr(b, ts);
}

/* One streamed or final object.  text/len: the token (or whole answer);
 * final: done object with metrics. */
static void ollama_object(lg_buf *b, const gen *g, bool chat, const char *text, size_t len,
                          bool final, const char *reason)
{
    ollama_head(b, g);
    if (chat) {
        lg_buf_puts(b, ",\"message\":{\"role\":\"assistant\",\"content\":");
        go_str(b, text, len);
        lg_buf_puts(b, "}");
        if (final) {
            lg_buf_puts(b, ",\"done_reason\":");
            go_cstr(b, reason);
        }
        lg_buf_puts(b, final ? ",\"done\":true" : ",\"done\":false");
    } else {
        lg_buf_puts(b, ",\"response\":");
        go_str(b, text, len);
        lg_buf_puts(b, final ? ",\"done\":true" : ",\"done\":false");
        if (final) {
            lg_buf_puts(b, ",\"done_reason\":");
            go_cstr(b, reason);
        }
        if (final && strcmp(reason, "load") != 0 && (g->ptoks.n || g->toks.n)) {
            lg_buf_puts(b, ",\"context\":[");
            size_t k = 0;
            /* Real contexts list every token; ours is capped so that a huge
             * prompt cannot push the reply past MAX_OUT. */
            for (size_t i = 0; i < g->ptoks.n && k < 8192; i++, k++)
                lg_buf_printf(b, "%s%u", k ? "," : "",
                              tok_id(g->input.data + g->ptoks.v[i].off, g->ptoks.v[i].len));
            for (size_t i = 0; i < g->toks.n && k < 16384; i++, k++)
                lg_buf_printf(b, "%s%u", k ? "," : "", tok_id(tok_ptr(g, i), g->toks.v[i].len));
            lg_buf_puts(b, "]");
        }
    }
    if (final && strcmp(reason, "load") != 0)
        ollama_metrics(b, g);
    lg_buf_puts(b, "}");
}

static void ollama_generate(conn *c, bool chat)
{
    gen g;
    if (gen_parse(c, &g, API_OLLAMA, true, chat) < 0) {
        gen_free(&g);
        return;
    }
    lg_buf b;
    lg_buf_init(&b, MAX_OUT);
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(g.root, "messages");
    const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(g.root, "prompt");
    bool empty = chat ? cJSON_GetArraySize(msgs) == 0
                      : !(cJSON_IsString(prompt) && prompt->valuestring[0]);
    if (empty) {
        /* Ollama answers an empty request by loading the model. */
        ollama_object(&b, &g, chat, "", 0, true, "load");
        gin_json(c, 200, &b);
    } else if (!g.stream) {
        ollama_object(&b, &g, chat, g.answer.data ? g.answer.data : "", g.answer.len, true, "stop");
        gin_json(c, 200, &b);
    } else {
        go_begin(c, 200, "application/x-ndjson");
        size_t stop_at = fail_midstream(&g) ? g.toks.n / 2 : g.toks.n;
        for (size_t i = 0; i < stop_at && !c->dead && !g_stop; i++) {
            if (i && cfg.delay_ms)
                sleep_ms(cfg.delay_ms);
            lg_buf_reset(&b);
            ollama_object(&b, &g, chat, tok_ptr(&g, i), g.toks.v[i].len, false, NULL);
            lg_buf_puts(&b, "\n");
            go_write(c, b.data, b.len);
            go_flush(c);
        }
        lg_buf_reset(&b);
        if (fail_midstream(&g)) {
            lg_buf_puts(&b, "{\"error\":\"an error was encountered while running the model\"}\n");
        } else {
            ollama_object(&b, &g, chat, "", 0, true, "stop");
            lg_buf_puts(&b, "\n");
        }
        go_write(c, b.data, b.len);
        go_flush(c);
        go_finish(c);
    }
    lg_buf_free(&b);
    gen_free(&g);
}

/* Deterministic fake embedding: values k/1000 in [-1, 1], printed as Go
 * prints a float32 that is exactly such a decimal. */
static void fake_vector(lg_buf *b, const char *s, size_t n, int dim)
{
    uint64_t h = fnv1a(s, n);
    lg_buf_puts(b, "[");
    for (int i = 0; i < dim; i++) {
        int v = (int)(rng_next(&h) % 2001) - 1000;
        char tmp[16];
        if (v == 0) {
            strcpy(tmp, "0");
        } else {
            snprintf(tmp, sizeof tmp, "%s0.%03d", v < 0 ? "-" : "", abs(v));
            if (abs(v) == 1000)
                snprintf(tmp, sizeof tmp, "%s1", v < 0 ? "-" : "");
            size_t l = strlen(tmp);
            while (strchr(tmp, '.') && tmp[l - 1] == '0')
                tmp[--l] = '\0';
        }
        lg_buf_printf(b, "%s%s", i ? "," : "", tmp);
    }
    lg_buf_puts(b, "]");
}

static void ollama_embed(conn *c, bool legacy)
{
    cJSON *root = c->body.len ? cJSON_ParseWithLength(c->body.data, c->body.len) : NULL;
    if (!cJSON_IsObject(root)) {
        gin_error(c, 400, c->body.len ? "invalid JSON in request body" : "missing request body");
        cJSON_Delete(root);
        return;
    }
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsString(m) || !m->valuestring[0]) {
        gin_error(c, 400, "model is required");
        cJSON_Delete(root);
        return;
    }
    lg_buf b;
    lg_buf_init(&b, MAX_OUT);
    if (legacy) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "prompt");
        const char *t = cJSON_IsString(p) ? p->valuestring : "";
        lg_buf_puts(&b, "{\"embedding\":");
        fake_vector(&b, t, strlen(t), 16);
        lg_buf_puts(&b, "}");
    } else {
        const cJSON *in = cJSON_GetObjectItemCaseSensitive(root, "input");
        size_t count = 0;
        lg_buf_puts(&b, "{\"model\":");
        go_cstr(&b, m->valuestring);
        lg_buf_puts(&b, ",\"embeddings\":[");
        if (cJSON_IsString(in)) {
            fake_vector(&b, in->valuestring, strlen(in->valuestring), 16);
            count = strlen(in->valuestring) / 4 + 1;
        } else {
            const cJSON *e;
            size_t k = 0;
            cJSON_ArrayForEach(e, in) if (cJSON_IsString(e)) {
                if (k++)
                    lg_buf_puts(&b, ",");
                fake_vector(&b, e->valuestring, strlen(e->valuestring), 16);
                count += strlen(e->valuestring) / 4 + 1;
            }
        }
        lg_buf_printf(&b, "],\"total_duration\":%zu,\"load_duration\":1234567", 2000000 + count * 1000);
        if (count)
            lg_buf_printf(&b, ",\"prompt_eval_count\":%zu", count);
        lg_buf_puts(&b, "}");
    }
    gin_json(c, 200, &b);
    lg_buf_free(&b);
    cJSON_Delete(root);
}

/* Iterate the configured model names. */
static const char *next_model(const char *p, char *out, size_t n)
{
    if (!p || !*p)
        return NULL;
    const char *e = strchr(p, ',');
    size_t l = e ? (size_t)(e - p) : strlen(p);
    snprintf(out, n, "%.*s", (int)(l < n ? l : n - 1), p);
    return e ? e + 1 : p + l;
}

static void ollama_tags(conn *c)
{
    lg_buf b;
    lg_buf_init(&b, 1 << 20);
    lg_buf_puts(&b, "{\"models\":[");
    char name[256];
    const char *p = cfg.models;
    int k = 0;
    while ((p = next_model(p, name, sizeof name))) {
        if (!*name)
            continue;
        char digest[65];
        uint64_t h = fnv1a(name, strlen(name));
        for (int i = 0; i < 64; i++)
            digest[i] = "0123456789abcdef"[rng_next(&h) & 15];
        digest[64] = '\0';
        lg_buf_puts(&b, k++ ? ",{\"name\":" : "{\"name\":");
        go_cstr(&b, name);
        lg_buf_puts(&b, ",\"model\":");
        go_cstr(&b, name);
        lg_buf_puts(&b, ",\"modified_at\":\"2025-01-15T10:20:30.123456789Z\",\"size\":2019393189,"
                        "\"digest\":");
        go_cstr(&b, digest);
        lg_buf_puts(&b, ",\"details\":{\"parent_model\":\"\",\"format\":\"gguf\",\"family\":\"llama\","
                        "\"families\":[\"llama\"],\"parameter_size\":\"3.2B\","
                        "\"quantization_level\":\"Q4_K_M\"}}");
    }
    lg_buf_puts(&b, "]}");
    gin_json(c, 200, &b);
    lg_buf_free(&b);
}

/* ==== OpenAI compatibility layer (as Ollama writes it) ==== */

static void oai_chunk_head(lg_buf *b, const char *id, const char *object, long long created,
                           const char *model)
{
    lg_buf_puts(b, "{\"id\":");
    go_cstr(b, id);
    lg_buf_puts(b, ",\"object\":");
    go_cstr(b, object);
    lg_buf_printf(b, ",\"created\":%lld,\"model\":", created);
    go_cstr(b, model);
    lg_buf_puts(b, ",\"system_fingerprint\":\"fp_ollama\"");
}

static void oai_usage(lg_buf *b, const gen *g)
{
    lg_buf_printf(b, "{\"prompt_tokens\":%zu,\"completion_tokens\":%zu,\"total_tokens\":%zu}",
                  g->ptoks.n, g->toks.n, g->ptoks.n + g->toks.n);
}

/* One chat event or body.  delta: streaming chunk; else a full completion. */
static void oai_chat_obj(lg_buf *b, const gen *g, const char *id, const char *text, size_t len,
                         bool stream, const char *finish)
{
    oai_chunk_head(b, id, stream ? "chat.completion.chunk" : "chat.completion", unix_now(),
                   g->model);
    lg_buf_puts(b, stream ? ",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":"
                          : ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
    go_str(b, text, len);
    lg_buf_puts(b, "},\"finish_reason\":");
    if (finish)
        go_cstr(b, finish);
    else
        lg_buf_puts(b, "null");
    lg_buf_puts(b, "}]");
    if (!stream) {
        lg_buf_puts(b, ",\"usage\":");
        oai_usage(b, g);
    }
    lg_buf_puts(b, "}");
}

/* Legacy completions: CompletionChunk puts choices before model. */
static void oai_cmpl_obj(lg_buf *b, const gen *g, const char *id, const char *text, size_t len,
                         bool stream, const char *finish)
{
    long long created = unix_now();
    lg_buf_puts(b, "{\"id\":");
    go_cstr(b, id);
    lg_buf_printf(b, ",\"object\":\"text_completion\",\"created\":%lld", created);
    if (!stream) {
        lg_buf_puts(b, ",\"model\":");
        go_cstr(b, g->model);
        lg_buf_puts(b, ",\"system_fingerprint\":\"fp_ollama\"");
    }
    lg_buf_puts(b, ",\"choices\":[{\"text\":");
    go_str(b, text, len);
    lg_buf_puts(b, ",\"index\":0,\"finish_reason\":");
    if (finish)
        go_cstr(b, finish);
    else
        lg_buf_puts(b, "null");
    lg_buf_puts(b, "}]");
    if (stream) {
        lg_buf_puts(b, ",\"model\":");
        go_cstr(b, g->model);
        lg_buf_puts(b, ",\"system_fingerprint\":\"fp_ollama\"");
    } else {
        lg_buf_puts(b, ",\"usage\":");
        oai_usage(b, g);
    }
    lg_buf_puts(b, "}");
}

static void openai_generate(conn *c, bool chat)
{
    gen g;
    if (gen_parse(c, &g, API_OPENAI, false, chat) < 0) {
        gen_free(&g);
        return;
    }
    char id[32];
    pthread_mutex_lock(&g_lock);
    unsigned n = (unsigned)(rng_next(&cfg.seed) % 999);
    pthread_mutex_unlock(&g_lock);
    snprintf(id, sizeof id, "%s-%u", chat ? "chatcmpl" : "cmpl", n);
    void (*obj)(lg_buf *, const gen *, const char *, const char *, size_t, bool, const char *) =
        chat ? oai_chat_obj : oai_cmpl_obj;
    lg_buf b;
    lg_buf_init(&b, MAX_OUT);
    if (!g.stream) {
        obj(&b, &g, id, g.answer.data ? g.answer.data : "", g.answer.len, false, "stop");
        lg_buf_puts(&b, "\n");
        go_begin(c, 200, "application/json");
        go_write(c, b.data, b.len);
        go_finish(c);
    } else {
        go_begin(c, 200, "text/event-stream");
        size_t stop_at = fail_midstream(&g) ? g.toks.n / 2 : g.toks.n;
        size_t unflushed = 0;
        for (size_t i = 0; i < stop_at && !c->dead && !g_stop; i++) {
            if (i && cfg.delay_ms)
                sleep_ms(cfg.delay_ms);
            lg_buf_reset(&b);
            lg_buf_puts(&b, "data: ");
            obj(&b, &g, id, tok_ptr(&g, i), g.toks.v[i].len, true, NULL);
            lg_buf_puts(&b, "\n\n");
            go_write(c, b.data, b.len);
            /* --split merge: like servers that batch events, several
             * events go into one chunk. */
            if (cfg.split != SPLIT_MERGE || ++unflushed >= MERGE_EVENTS) {
                go_flush(c);
                unflushed = 0;
            }
        }
        lg_buf_reset(&b);
        if (fail_midstream(&g)) {
            lg_buf_puts(&b, "data: {\"error\":{\"message\":\"an error was encountered while running "
                            "the model\",\"type\":\"api_error\",\"param\":null,\"code\":null}}\n\n");
        } else {
            lg_buf_puts(&b, "data: ");
            obj(&b, &g, id, "", 0, true, "stop");
            lg_buf_puts(&b, "\n\n");
            if (g.include_usage) {
                lg_buf_puts(&b, "data: ");
                oai_chunk_head(&b, id, chat ? "chat.completion.chunk" : "text_completion",
                               unix_now(), g.model);
                lg_buf_puts(&b, ",\"choices\":[],\"usage\":");
                oai_usage(&b, &g);
                lg_buf_puts(&b, "}\n\n");
            }
            lg_buf_puts(&b, "data: [DONE]\n\n");
        }
        /* Ollama writes the final event and [DONE] without a flush between
         * them: both land in the same chunk. */
        go_write(c, b.data, b.len);
        go_flush(c);
        go_finish(c);
    }
    lg_buf_free(&b);
    gen_free(&g);
}

static void openai_models(conn *c)
{
    lg_buf b;
    lg_buf_init(&b, 1 << 20);
    lg_buf_puts(&b, "{\"object\":\"list\",\"data\":[");
    char name[256];
    const char *p = cfg.models;
    int k = 0;
    while ((p = next_model(p, name, sizeof name))) {
        if (!*name)
            continue;
        lg_buf_puts(&b, k++ ? ",{\"id\":" : "{\"id\":");
        go_cstr(&b, name);
        lg_buf_puts(&b, ",\"object\":\"model\",\"created\":1736936430,\"owned_by\":\"library\"}");
    }
    lg_buf_puts(&b, "]}\n");
    go_begin(c, 200, "application/json");
    go_write(c, b.data, b.len);
    go_finish(c);
    lg_buf_free(&b);
}

/* ==== llama.cpp server ==== */

static void llama_timings(lg_buf *b, const gen *g)
{
    double pn = (double)g->ptoks.n, en = (double)g->toks.n;
    double pms = 1.5 + pn * 0.25, ems = 2.0 + en * 12.5;
    lg_buf_printf(b, "{\"prompt_n\":%zu,\"prompt_ms\":", g->ptoks.n);
    nl_double(b, pms);
    lg_buf_puts(b, ",\"prompt_per_token_ms\":");
    nl_double(b, pn ? pms / pn : 0.0);
    lg_buf_puts(b, ",\"prompt_per_second\":");
    nl_double(b, pn ? 1000.0 * pn / pms : 0.0);
    lg_buf_printf(b, ",\"predicted_n\":%zu,\"predicted_ms\":", g->toks.n);
    nl_double(b, ems);
    lg_buf_puts(b, ",\"predicted_per_token_ms\":");
    nl_double(b, en ? ems / en : 0.0);
    lg_buf_puts(b, ",\"predicted_per_second\":");
    nl_double(b, en ? 1000.0 * en / ems : 0.0);
    lg_buf_puts(b, "}");
}

/* The final result (to_json_non_oaicompat_final, ordered_json). */
static void llama_final(lg_buf *b, const gen *g, bool stream)
{
    lg_buf_puts(b, "{\"index\":0,\"content\":");
    if (stream)
        lg_buf_puts(b, "\"\"");
    else
        nl_str(b, g->answer.data ? g->answer.data : "", g->answer.len);
    lg_buf_puts(b, ",\"tokens\":[");
    if (!stream)
        for (size_t i = 0; i < g->toks.n && i < 16384; i++)
            lg_buf_printf(b, "%s%u", i ? "," : "", tok_id(tok_ptr(g, i), g->toks.v[i].len));
    lg_buf_puts(b, "],\"id_slot\":0,\"stop\":true,\"model\":");
    nl_str(b, g->model, strlen(g->model));
    lg_buf_printf(b, ",\"tokens_predicted\":%zu,\"tokens_evaluated\":%zu,\"prompt\":", g->toks.n,
                  g->ptoks.n);
    nl_str(b, g->input.data ? g->input.data : "", g->input.len);
    lg_buf_printf(b, ",\"has_new_line\":%s,\"truncated\":false,\"stop_type\":\"eos\","
                     "\"stopping_word\":\"\",\"tokens_cached\":%zu,\"timings\":",
                  g->answer.len && memchr(g->answer.data, '\n', g->answer.len) ? "true" : "false",
                  g->ptoks.n + g->toks.n);
    llama_timings(b, g);
    lg_buf_puts(b, "}");
}

static void llama_completion(conn *c)
{
    gen g;
    if (gen_parse(c, &g, API_LLAMA, false, false) < 0) {
        gen_free(&g);
        return;
    }
    lg_buf b;
    lg_buf_init(&b, MAX_OUT);
    if (!g.stream) {
        llama_final(&b, &g, false);
        httplib_json(c, 200, &b);
    } else {
        httplib_head(c, 200, "text/event-stream", -1);
        size_t stop_at = fail_midstream(&g) ? g.toks.n / 2 : g.toks.n;
        lg_buf ev;
        lg_buf_init(&ev, MAX_OUT);
        size_t batched = 0;
        for (size_t i = 0; i < stop_at && !c->dead && !g_stop; i++) {
            if (i && cfg.delay_ms)
                sleep_ms(cfg.delay_ms);
            lg_buf_puts(&ev, "data: {\"index\":0,\"content\":");
            nl_str(&ev, tok_ptr(&g, i), g.toks.v[i].len);
            lg_buf_printf(&ev, ",\"tokens\":[%u],\"stop\":false,\"id_slot\":-1,"
                               "\"tokens_predicted\":%zu,\"tokens_evaluated\":%zu}\n\n",
                          tok_id(tok_ptr(&g, i), g.toks.v[i].len), i + 1, g.ptoks.n);
            if (cfg.split != SPLIT_MERGE || ++batched >= MERGE_EVENTS) {
                httplib_chunk(c, ev.data, ev.len);
                lg_buf_reset(&ev);
                batched = 0;
            }
        }
        if (fail_midstream(&g)) {
            lg_buf_puts(&ev, "error: {\"code\":500,\"message\":\"an error was encountered while "
                             "running the model\",\"type\":\"server_error\"}\n\n");
        } else {
            lg_buf_puts(&ev, "data: ");
            llama_final(&ev, &g, true);
            lg_buf_puts(&ev, "\n\n");
        }
        httplib_chunk(c, ev.data, ev.len);
        wire_write(c, "0\r\n\r\n", 5);
        wire_end(c);
        lg_buf_free(&ev);
    }
    lg_buf_free(&b);
    gen_free(&g);
}

/* ==== Routing ==== */

static bool is(const conn *c, const char *method, const char *path)
{
    return strcmp(c->method, method) == 0 && strcmp(c->path, path) == 0;
}

static void not_found(conn *c)
{
    if (strncmp(c->path, "/v1/", 4) == 0) {
        oai_error(c, 404, "404 page not found");
    } else if (strncmp(c->path, "/api/", 5) == 0) {
        gin_error(c, 404, "404 page not found");
    } else {
        llama_error(c, 404, "not_found_error", "File Not Found");
    }
}

static void dispatch(conn *c)
{
    record_body(c);
    if ((is(c, "GET", "/") || is(c, "HEAD", "/"))) {
        go_begin(c, 200, "text/plain; charset=utf-8");
        go_write(c, "Ollama is running", 17);
        go_finish(c);
    } else if (is(c, "POST", "/api/generate")) {
        ollama_generate(c, false);
    } else if (is(c, "POST", "/api/chat")) {
        ollama_generate(c, true);
    } else if (is(c, "POST", "/api/embed")) {
        ollama_embed(c, false);
    } else if (is(c, "POST", "/api/embeddings")) {
        ollama_embed(c, true);
    } else if (is(c, "GET", "/api/tags")) {
        ollama_tags(c);
    } else if (is(c, "GET", "/api/version") || is(c, "HEAD", "/api/version")) {
        lg_buf b;
        lg_buf_init(&b, 4096);
        lg_buf_puts(&b, "{\"version\":");
        go_cstr(&b, cfg.version);
        lg_buf_puts(&b, "}");
        gin_json(c, 200, &b);
        lg_buf_free(&b);
    } else if (is(c, "POST", "/v1/chat/completions")) {
        openai_generate(c, true);
    } else if (is(c, "POST", "/v1/completions")) {
        openai_generate(c, false);
    } else if (is(c, "GET", "/v1/models")) {
        openai_models(c);
    } else if (is(c, "POST", "/completion") || is(c, "POST", "/completions")) {
        llama_completion(c);
    } else if (is(c, "GET", "/health")) {
        lg_buf b;
        lg_buf_init(&b, 64);
        lg_buf_puts(&b, "{\"status\":\"ok\"}");
        httplib_json(c, 200, &b);
        lg_buf_free(&b);
    } else {
        not_found(c);
    }
}

/* ==== HTTP/1.1 request reader ==== */

#define PARSE_NEEDMORE 0
#define PARSE_BAD (-400)
#define PARSE_HEAD_TOO_LARGE (-431)
#define PARSE_BODY_TOO_LARGE (-413)

static bool is_tchar(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* Next line in p[*i..n): returns its length without CR LF (bare LF is
 * accepted as Go does), or -1 if no LF yet. */
static long next_line(const char *p, size_t n, size_t *i, const char **line)
{
    const char *lf = memchr(p + *i, '\n', n - *i);
    if (!lf)
        return -1;
    *line = p + *i;
    size_t len = (size_t)(lf - (p + *i));
    *i += len + 1;
    if (len && (*line)[len - 1] == '\r')
        len--;
    return (long)len;
}

static bool hdr_eq(const char *name, size_t nl, const char *want)
{
    return strlen(want) == nl && strncasecmp(name, want, nl) == 0;
}

static bool has_token(const char *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok);
    for (size_t i = 0; i + tl <= n; i++) {
        if ((i == 0 || v[i - 1] == ',' || v[i - 1] == ' ') && strncasecmp(v + i, tok, tl) == 0 &&
            (i + tl == n || v[i + tl] == ',' || v[i + tl] == ' '))
            return true;
    }
    return false;
}

/* Decode a chunked body starting at p[i]; returns bytes through the end of
 * the trailers, PARSE_NEEDMORE or an error.  With copy false it only
 * validates (hopping over chunk data), so a big body trickling in costs a
 * walk over its chunk headers per recv, not a copy of everything so far. */
static long parse_chunked(conn *c, const char *p, size_t n, size_t i, bool copy)
{
    size_t total = 0;
    lg_buf_reset(&c->body);
    for (;;) {
        const char *line;
        long ll = next_line(p, n, &i, &line);
        if (ll < 0)
            return n - i > 1024 ? PARSE_BAD : PARSE_NEEDMORE;
        size_t sz = 0, k = 0;
        while (k < (size_t)ll && isxdigit((unsigned char)line[k])) {
            if (sz > (MAX_BODY >> 4))
                return PARSE_BODY_TOO_LARGE;
            char ch = line[k++];
            sz = sz * 16 + (size_t)(ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10);
        }
        if (k == 0 || (k < (size_t)ll && line[k] != ';' && line[k] != ' ' && line[k] != '\t'))
            return PARSE_BAD;
        if (sz == 0) {
            for (;;) { /* trailers */
                ll = next_line(p, n, &i, &line);
                if (ll < 0)
                    return n - i > MAX_HEAD ? PARSE_BAD : PARSE_NEEDMORE;
                if (ll == 0)
                    return (long)i;
            }
        }
        if (total + sz > MAX_BODY)
            return PARSE_BODY_TOO_LARGE;
        total += sz;
        if (n - i < sz + 1)
            return PARSE_NEEDMORE;
        if (copy && lg_buf_append(&c->body, p + i, sz) != LG_OK)
            return PARSE_BODY_TOO_LARGE;
        i += sz;
        if (p[i] == '\n') {
            i++;
        } else if (p[i] == '\r') {
            if (n - i < 2)
                return PARSE_NEEDMORE;
            if (p[i + 1] != '\n')
                return PARSE_BAD;
            i += 2;
        } else {
            return PARSE_BAD;
        }
    }
}

/* Try to parse one whole request at the start of c->in.  Returns the bytes
 * it spans (> 0), PARSE_NEEDMORE, or a negative status to answer with. */
static long parse_request(conn *c)
{
    const char *p = c->in.data;
    size_t n = c->in.len, i = 0;
    const char *line;
    long ll;
    /* Go skips empty lines before a request line (RFC 7230 §3.5). */
    while (n - i >= 1 && (p[i] == '\r' || p[i] == '\n') && i < 16)
        i++;
    ll = next_line(p, n, &i, &line);
    if (ll < 0)
        return n > MAX_HEAD ? PARSE_HEAD_TOO_LARGE : PARSE_NEEDMORE;
    /* METHOD SP target SP HTTP/1.x */
    const char *sp1 = memchr(line, ' ', (size_t)ll);
    if (!sp1 || sp1 == line || (size_t)(sp1 - line) >= sizeof c->method)
        return PARSE_BAD;
    for (const char *q = line; q < sp1; q++)
        if (!is_tchar((unsigned char)*q))
            return PARSE_BAD;
    const char *tgt = sp1 + 1;
    const char *end = line + ll;
    const char *sp2 = memchr(tgt, ' ', (size_t)(end - tgt));
    if (!sp2 || sp2 == tgt || end - sp2 != 9)
        return PARSE_BAD;
    if (memcmp(sp2 + 1, "HTTP/1.1", 8) == 0)
        c->http10 = false;
    else if (memcmp(sp2 + 1, "HTTP/1.0", 8) == 0)
        c->http10 = true;
    else
        return PARSE_BAD;
    for (const char *q = tgt; q < sp2; q++)
        if ((unsigned char)*q <= 0x20 || *q == 0x7f)
            return PARSE_BAD;
    size_t tl = (size_t)(sp2 - tgt);
    const char *qm = memchr(tgt, '?', tl);
    size_t pl = qm ? (size_t)(qm - tgt) : tl;
    if (pl >= sizeof c->path)
        return PARSE_BAD;
    memcpy(c->method, line, (size_t)(sp1 - line));
    c->method[sp1 - line] = '\0';
    memcpy(c->path, tgt, pl);
    c->path[pl] = '\0';
    c->head = strcmp(c->method, "HEAD") == 0;

    bool have_cl = false, chunked = false, te = false;
    size_t cl = 0;
    c->want_close = c->http10;
    c->expect100 = false;
    int nhdr = 0;
    for (;;) {
        ll = next_line(p, n, &i, &line);
        if (ll < 0)
            return n > MAX_HEAD ? PARSE_HEAD_TOO_LARGE : PARSE_NEEDMORE;
        if (i > MAX_HEAD)
            return PARSE_HEAD_TOO_LARGE;
        if (ll == 0)
            break;
        if (++nhdr > 200)
            return PARSE_HEAD_TOO_LARGE;
        const char *colon = memchr(line, ':', (size_t)ll);
        if (!colon || colon == line)
            return PARSE_BAD;
        for (const char *q = line; q < colon; q++)
            if (!is_tchar((unsigned char)*q))
                return PARSE_BAD; /* also rejects obs-fold and "Name :" */
        size_t nl = (size_t)(colon - line);
        const char *v = colon + 1, *ve = line + ll;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        for (const char *q = v; q < ve; q++)
            if (((unsigned char)*q < 0x20 && *q != '\t') || *q == 0x7f)
                return PARSE_BAD;
        size_t vl = (size_t)(ve - v);
        if (hdr_eq(line, nl, "Content-Length")) {
            if (vl == 0 || vl > 12)
                return PARSE_BAD;
            size_t x = 0;
            for (size_t k = 0; k < vl; k++) {
                if (v[k] < '0' || v[k] > '9')
                    return PARSE_BAD;
                x = x * 10 + (size_t)(v[k] - '0');
            }
            if (have_cl && x != cl)
                return PARSE_BAD;
            have_cl = true;
            cl = x;
        } else if (hdr_eq(line, nl, "Transfer-Encoding")) {
            if (te || !(vl == 7 && strncasecmp(v, "chunked", 7) == 0))
                return PARSE_BAD;
            te = chunked = true;
        } else if (hdr_eq(line, nl, "Connection")) {
            if (has_token(v, vl, "close"))
                c->want_close = true;
            else if (c->http10 && has_token(v, vl, "keep-alive"))
                c->want_close = false;
        } else if (hdr_eq(line, nl, "Expect")) {
            if (vl == 12 && strncasecmp(v, "100-continue", 12) == 0)
                c->expect100 = true;
        }
    }
    if (have_cl && chunked)
        return PARSE_BAD; /* request smuggling shape: refuse */
    if (cl > MAX_BODY)
        return PARSE_BODY_TOO_LARGE;
    if (c->expect100 && !c->sent100 && !c->http10 && (cl > 0 || chunked) && n - i == 0) {
        c->sent100 = true;
        wire_write(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        wire_end(c);
    }
    if (chunked) {
        long r = parse_chunked(c, p, n, i, false);
        return r > 0 ? parse_chunked(c, p, n, i, true) : r;
    }
    if (n - i < cl)
        return PARSE_NEEDMORE;
    lg_buf_reset(&c->body);
    if (cl && lg_buf_append(&c->body, p + i, cl) != LG_OK)
        return PARSE_BODY_TOO_LARGE;
    return (long)(i + cl);
}

/* ==== Connection loop ==== */

static void conn_serve(int fd)
{
    conn *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->fd = fd;
    pthread_mutex_lock(&g_lock);
    c->id = ++g_conn_seq;
    pthread_mutex_unlock(&g_lock);
    c->rng = cfg.seed * 0x9E3779B97F4A7C15ull + c->id;
    lg_buf_init(&c->in, MAX_IN);
    lg_buf_init(&c->body, MAX_BODY);
    lg_buf_init(&c->merge, 1u << 20);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {.tv_sec = IDLE_TIMEOUT_S, .tv_usec = 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

    while (!c->dead && !g_stop) {
        long r = c->in.len ? parse_request(c) : PARSE_NEEDMORE;
        if (r == PARSE_NEEDMORE) {
            size_t room = c->in.max - c->in.len;
            if (room == 0) {
                go_bad_request(c, 413);
                break;
            }
            char *dst = lg_buf_reserve(&c->in, room < 65536 ? room : 65536);
            if (!dst)
                break;
            ssize_t got = recv(fd, dst, room < 65536 ? room : 65536, 0);
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0)
                break; /* EOF, reset or idle timeout */
            lg_buf_commit(&c->in, (size_t)got);
            continue;
        }
        if (r < 0) {
            if (r == PARSE_BODY_TOO_LARGE) {
                c->want_close = true;
                gin_error(c, 413, "request body too large");
            } else {
                go_bad_request(c, (int)-r);
            }
            break;
        }
        dispatch(c);
        c->sent100 = false;
        lg_buf_consume(&c->in, (size_t)r);
        if (c->want_close)
            break;
    }
    shutdown(fd, SHUT_WR);
    lg_buf_free(&c->in);
    lg_buf_free(&c->body);
    lg_buf_free(&c->merge);
    free(c);
}

static void *conn_thread(void *arg)
{
    int fd = (int)(intptr_t)arg;
    conn_serve(fd);
    pthread_mutex_lock(&g_lock);
    for (int i = 0; i < MAX_CONNS; i++)
        if (g_fds[i] == fd) {
            g_fds[i] = -1;
            break;
        }
    g_active--;
    pthread_mutex_unlock(&g_lock);
    close(fd);
    return NULL;
}

/* ==== Startup ==== */

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void usage(FILE *f)
{
    fputs("usage: llmguard-fakellm [--listen HOST:PORT] [--port-file FILE]\n"
          "                        [--model echo|script:FILE] [--delay-ms N]\n"
          "                        [--split none|bytes|merge] [--record FILE] [--once]\n"
          "                        [--seed N] [--fixed-time UNIX_SECONDS]\n"
          "                        [--models NAME,NAME...] [--version]\n",
          f);
}

/* --help: what a newcomer needs without the man page. */
static void help(void)
{
    usage(stdout);
    fputs("\n"
          "A local model server for demos and tests: Ollama (/api/generate, /api/chat,\n"
          "/api/tags, /api/version), OpenAI-compatible (/v1/chat/completions, streamed\n"
          "or not, /v1/completions, /v1/models) and llama.cpp (/completion) wire formats.\n"
          "\n"
          "  --listen HOST:PORT   IPv4 address and port (default 127.0.0.1:11434; port 0\n"
          "                       picks a free one); prints 'listening on HOST:PORT'\n"
          "  --port-file FILE     write the port number to FILE once listening\n"
          "  --model echo         answer with what the model received, token by token\n"
          "                       (default), so a test sees what reached the model\n"
          "  --model script:FILE  answer every request with FILE's content\n"
          "  --delay-ms N         sleep N ms between tokens of a streamed answer\n"
          "  --split MODE         none (one write per flush), bytes (adversarial: writes cut\n"
          "                       at random points, chunk headers and JSON lines split), or\n"
          "                       merge (writes and SSE events coalesced)\n"
          "  --record FILE        append each request body to FILE, one per line\n"
          "  --once               serve one connection, then exit\n"
          "  --seed N             seed for split points and ids (default 1)\n"
          "  --fixed-time SECS    fixed clock, for byte-for-byte reproducible replies\n"
          "  --models A,B         models listed by /api/tags and /v1/models\n"
          "\n"
          "See llmguard-fakellm(1).\n",
          stdout);
}

static char *read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    lg_buf b;
    lg_buf_init(&b, MAX_SCRIPT);
    for (;;) {
        char *d = lg_buf_reserve(&b, 4096);
        if (!d) {
            errno = EFBIG;
            goto fail;
        }
        ssize_t r = read(fd, d, 4096);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            goto fail;
        if (r == 0)
            break;
        lg_buf_commit(&b, (size_t)r);
    }
    close(fd);
    *len = b.len;
    if (!b.len) {
        lg_buf_free(&b);
        return strdup("");
    }
    return lg_buf_steal(&b, len);
fail:
    close(fd);
    lg_buf_free(&b);
    return NULL;
}

static int parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
    char *e;
    errno = 0;
    if (!s || !*s || *s == '-')
        return -1;
    unsigned long long v = strtoull(s, &e, 10);
    if (errno || *e || v > max)
        return -1;
    *out = v;
    return 0;
}

static int write_port_file(const char *path, int port)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f, "%d\n", port);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    snprintf(cfg.listen_host, sizeof cfg.listen_host, "127.0.0.1");
    cfg.listen_port = 11434;
    cfg.record_fd = -1;
    cfg.seed = 1;
    cfg.fixed_time = -1;
    cfg.models = "llama3.2:latest,qwen2.5:0.5b";
    cfg.version = "0.6.5";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        unsigned long long x;
#define NEED_ARG()                                                    \
    do {                                                              \
        if (!v) {                                                     \
            fprintf(stderr, "llmguard-fakellm: %s needs a value\n", a); \
            return 2;                                                 \
        }                                                             \
        i++;                                                          \
    } while (0)
        if (strcmp(a, "--listen") == 0) {
            NEED_ARG();
            const char *colon = strrchr(v, ':');
            if (!colon || (size_t)(colon - v) >= sizeof cfg.listen_host ||
                parse_uint(colon + 1, 65535, &x) < 0) {
                fprintf(stderr, "llmguard-fakellm: --listen wants HOST:PORT, got '%s'\n", v);
                return 2;
            }
            snprintf(cfg.listen_host, sizeof cfg.listen_host, "%.*s", (int)(colon - v), v);
            cfg.listen_port = (int)x;
        } else if (strcmp(a, "--port-file") == 0) {
            NEED_ARG();
            cfg.port_file = v;
        } else if (strcmp(a, "--model") == 0) {
            NEED_ARG();
            if (strcmp(v, "echo") == 0) {
                cfg.script = NULL;
            } else if (strncmp(v, "script:", 7) == 0) {
                cfg.script = read_file(v + 7, &cfg.script_len);
                if (!cfg.script) {
                    fprintf(stderr, "llmguard-fakellm: cannot read script %s: %s\n", v + 7,
                            strerror(errno));
                    return 2;
                }
            } else {
                fprintf(stderr, "llmguard-fakellm: unknown model '%s' (echo or script:FILE)\n", v);
                return 2;
            }
        } else if (strcmp(a, "--delay-ms") == 0) {
            NEED_ARG();
            if (parse_uint(v, 60000, &x) < 0) {
                fprintf(stderr, "llmguard-fakellm: bad --delay-ms '%s'\n", v);
                return 2;
            }
            cfg.delay_ms = (unsigned)x;
        } else if (strcmp(a, "--split") == 0) {
            NEED_ARG();
            if (strcmp(v, "none") == 0)
                cfg.split = SPLIT_NONE;
            else if (strcmp(v, "bytes") == 0)
                cfg.split = SPLIT_BYTES;
            else if (strcmp(v, "merge") == 0)
                cfg.split = SPLIT_MERGE;
            else {
                fprintf(stderr, "llmguard-fakellm: --split is none, bytes or merge\n");
                return 2;
            }
        } else if (strcmp(a, "--record") == 0) {
            NEED_ARG();
            cfg.record_fd = open(v, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
            if (cfg.record_fd < 0) {
                fprintf(stderr, "llmguard-fakellm: cannot open %s: %s\n", v, strerror(errno));
                return 2;
            }
        } else if (strcmp(a, "--seed") == 0) {
            NEED_ARG();
            if (parse_uint(v, UINT64_MAX, &x) < 0) {
                fprintf(stderr, "llmguard-fakellm: bad --seed '%s'\n", v);
                return 2;
            }
            cfg.seed = x ? x : 1;
        } else if (strcmp(a, "--fixed-time") == 0) {
            NEED_ARG();
            if (parse_uint(v, 4102444800ull, &x) < 0) {
                fprintf(stderr, "llmguard-fakellm: bad --fixed-time '%s'\n", v);
                return 2;
            }
            cfg.fixed_time = (long long)x;
        } else if (strcmp(a, "--models") == 0) {
            NEED_ARG();
            cfg.models = v;
        } else if (strcmp(a, "--once") == 0) {
            cfg.once = true;
        } else if (strcmp(a, "--version") == 0) {
            printf("llmguard-fakellm (reports Ollama version %s)\n", cfg.version);
            return 0;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            help();
            return 0;
        } else {
            fprintf(stderr, "llmguard-fakellm: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
#undef NEED_ARG
    }

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)cfg.listen_port);
    if (inet_pton(AF_INET, cfg.listen_host, &addr.sin_addr) != 1) {
        fprintf(stderr, "llmguard-fakellm: --listen host must be an IPv4 address: %s\n",
                cfg.listen_host);
        return 2;
    }
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 128) < 0) {
        fprintf(stderr, "llmguard-fakellm: cannot listen on %s:%d: %s\n", cfg.listen_host,
                cfg.listen_port, strerror(errno));
        return 1;
    }
    socklen_t alen = sizeof addr;
    getsockname(lfd, (struct sockaddr *)&addr, &alen);
    int port = ntohs(addr.sin_port);
    if (cfg.port_file && write_port_file(cfg.port_file, port) < 0) {
        fprintf(stderr, "llmguard-fakellm: cannot write %s: %s\n", cfg.port_file, strerror(errno));
        return 1;
    }
    printf("listening on %s:%d\n", cfg.listen_host, port);
    fflush(stdout);

    for (int i = 0; i < MAX_CONNS; i++)
        g_fds[i] = -1;
    /* Connection threads leave the signals to this one. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);

    while (!g_stop) {
        pthread_mutex_lock(&g_lock);
        int active = g_active;
        pthread_mutex_unlock(&g_lock);
        if (active >= MAX_CONNS) {
            sleep_ms(10); /* bounded: let the backlog wait */
            continue;
        }
        struct pollfd pfd = {.fd = lfd, .events = POLLIN};
        int pr = poll(&pfd, 1, 200);
        if (pr <= 0)
            continue;
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        if (cfg.once) {
            close(lfd);
            lfd = -1;
            conn_serve(fd);
            close(fd);
            break;
        }
        pthread_mutex_lock(&g_lock);
        int slot = -1;
        for (int i = 0; i < MAX_CONNS; i++)
            if (g_fds[i] < 0) {
                slot = i;
                break;
            }
        if (slot >= 0) {
            g_fds[slot] = fd;
            g_active++;
        }
        pthread_mutex_unlock(&g_lock);
        if (slot < 0) {
            close(fd);
            continue;
        }
        pthread_t th;
        pthread_sigmask(SIG_BLOCK, &block, &old);
        int e = pthread_create(&th, &attr, conn_thread, (void *)(intptr_t)fd);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (e != 0) {
            close(fd);
            pthread_mutex_lock(&g_lock);
            g_fds[slot] = -1;
            g_active--;
            pthread_mutex_unlock(&g_lock);
        }
    }
    if (lfd >= 0)
        close(lfd);
    /* Wake connection threads blocked in recv and give them a moment. */
    pthread_mutex_lock(&g_lock);
    for (int i = 0; i < MAX_CONNS; i++)
        if (g_fds[i] >= 0)
            shutdown(g_fds[i], SHUT_RDWR);
    pthread_mutex_unlock(&g_lock);
    for (int w = 0; w < 100; w++) {
        pthread_mutex_lock(&g_lock);
        int active = g_active;
        pthread_mutex_unlock(&g_lock);
        if (!active)
            break;
        sleep_ms(20);
    }
    pthread_attr_destroy(&attr);
    free(cfg.script);
    return 0;
}
