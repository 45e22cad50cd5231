/* Error codes shared by every core module.  One X-macro list generates the
 * enum and lg_strerror() so that the two can never drift apart (libuv's
 * UV_ERRNO_MAP, http-parser's HTTP_ERRNO_MAP).  Success is 0, errors are
 * negative; parsers that consume input return a byte count (>= 0) instead of
 * LG_OK.  LG_E_NEEDMORE is not a failure: an incremental parser uses it to
 * say "the input so far is a valid prefix, give me more". */
#ifndef LG_ERROR_H
#define LG_ERROR_H

#define LG_ERRNO_MAP(XX)                                                        \
    XX(NEEDMORE, -1, "need more bytes")                                         \
    XX(NOMEM, -2, "out of memory")                                              \
    XX(INVAL, -3, "invalid argument")                                           \
    XX(LIMIT, -4, "size limit exceeded")                                        \
    XX(STATE, -5, "operation not valid in this state")                          \
    XX(HTTP_LINE, -10, "malformed request or status line")                      \
    XX(HTTP_VERSION, -11, "unsupported HTTP version")                           \
    XX(HTTP_HEADER, -12, "malformed header field")                              \
    XX(HTTP_TOO_MANY_HEADERS, -13, "too many header fields")                    \
    XX(HTTP_HEAD_TOO_LARGE, -14, "header section too large")                   \
    XX(HTTP_LENGTH, -15, "invalid or conflicting Content-Length")               \
    XX(HTTP_SMUGGLE, -16, "both Content-Length and Transfer-Encoding")          \
    XX(HTTP_TE, -17, "unsupported Transfer-Encoding")                           \
    XX(HTTP_CHUNK, -18, "malformed chunk")                                      \
    XX(HTTP_OVERFLOW, -19, "length overflows")                                  \
    XX(HTTP_EOF, -20, "connection closed inside a message")                     \
    XX(JSON, -30, "malformed JSON")                                             \
    XX(JSON_DEPTH, -31, "JSON nested too deeply")                               \
    XX(STREAM, -32, "malformed event stream")                                   \
    XX(POLICY, -40, "invalid policy")                                           \
    XX(REGEX, -41, "invalid regular expression")                                \
    XX(MATCH, -42, "regular expression match failed")                           \
    XX(UNSUPPORTED, -50, "message cannot be inspected")

enum lg_err {
    LG_OK = 0,
#define LG__ERR_ENUM(name, val, msg) LG_E_##name = (val),
    LG_ERRNO_MAP(LG__ERR_ENUM)
#undef LG__ERR_ENUM
};

/* Human-readable text for an error code; never NULL ("unknown error" for
 * codes not in the list).  The string is static. */
const char *lg_strerror(int err);

/* The code's name without prefix ("HTTP_CHUNK"), for logs and events. */
const char *lg_errname(int err);

#endif
