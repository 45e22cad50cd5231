/* Tests for core/json: the walker (validity tables in the JSONTestSuite
 * y_/n_ style, error offsets, every prefix of every vector, paths and spans
 * of real chat requests, depth and path limits, over-reads against a guard
 * page), string unescaping and escaping (Go encoding/json vectors), and
 * path patterns.  The walker takes whole documents, so "split at every
 * offset" becomes: every prefix of a vector either is itself a document or
 * fails exactly at its end (a viable prefix), until the prefix reaches the
 * vector's own error offset, after which the error stays put. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "error.h"
#include "json.h"

/* ==== Helpers ==== */

struct vec {
    const char *name;
    const char *doc;
    size_t len;    /* 0: strlen(doc) */
    int rc;        /* expected return */
    size_t off;    /* expected error offset (when rc != LG_OK) */
};

static size_t vlen(const struct vec *v)
{
    return v->len ? v->len : strlen(v->doc);
}

static int walk(const char *d, size_t n, size_t *off)
{
    return lg_json_walk(d, n, 0, NULL, NULL, off);
}

/* Every prefix of a document whose verdict is (rc, off) on the full length. */
static void check_prefixes(const char *name, const char *d, size_t n, int rc, size_t off)
{
    for (size_t k = 0; k < n; k++) {
        size_t o = (size_t)-7;
        int r = walk(d, k, &o);
        if (rc != LG_OK && k > off) {
            cr_expect_eq(r, rc, "%s: prefix %zu: rc %d", name, k, r);
            cr_expect_eq(o, off, "%s: prefix %zu: off %zu want %zu", name, k, o, off);
        } else if (r != LG_OK) {
            /* A viable prefix can only fail for running out. */
            cr_expect_eq(r, LG_E_JSON, "%s: prefix %zu: rc %d", name, k, r);
            cr_expect_eq(o, k, "%s: prefix %zu: off %zu", name, k, o);
        }
    }
}

/* Records each callback as one line: "<t> <path> <start> <end> <depth>[ T]". */
struct rec {
    char out[1 << 20];
    size_t len;
    int count;
    int stop_at;   /* stop with 99 at this count (0: never) */
    const char *doc;
};

static int rec_cb(void *ud, const lg_json_value *v)
{
    struct rec *r = ud;
    static const char tc[] = "?sntfzoa";
    cr_assert_eq(strlen(v->path), v->path_len);
    cr_assert_leq(v->path_len, LG_JSON_MAX_PATH);
    int k = snprintf(r->out + r->len, sizeof r->out - r->len, "%c %s %zu %zu %d%s\n",
                     tc[v->type], v->path_len ? v->path : "-", v->start, v->end, v->depth,
                     v->truncated ? " T" : "");
    cr_assert(k > 0 && (size_t)k < sizeof r->out - r->len);
    r->len += (size_t)k;
    r->count++;
    if (r->stop_at && r->count == r->stop_at)
        return 99;
    return 0;
}

/* Expected callback, by the token text it must span. */
struct want {
    char type;
    const char *path;
    int depth;
    const char *text;  /* scalars: exact token; containers: unique prefix */
};

/* End of the container starting at d[i], by a scanner independent of the
 * walker's (strings skipped, brackets counted). */
static size_t match_close(const char *d, size_t i)
{
    int lvl = 0, str = 0;
    for (;; i++) {
        char c = d[i];
        if (str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                str = 0;
        } else if (c == '"') {
            str = 1;
        } else if (c == '{' || c == '[') {
            lvl++;
        } else if (c == '}' || c == ']') {
            if (--lvl == 0)
                return i + 1;
        }
    }
}

static void expect_walk(const char *doc, const struct want *w, size_t nw)
{
    static struct rec r;
    memset(&r, 0, sizeof r);
    size_t off = 1;
    cr_assert_eq(lg_json_walk(doc, strlen(doc), 0, rec_cb, &r, &off), LG_OK);
    cr_assert_eq(off, 0);
    char want[16384];
    size_t wl = 0, from = 0;
    for (size_t i = 0; i < nw; i++) {
        const char *hit;
        size_t s, e;
        if (w[i].type == 'o' || w[i].type == 'a') {
            hit = strstr(doc, w[i].text);
            cr_assert(hit, "prefix %s not in doc", w[i].text);
            cr_assert_null(strstr(hit + 1, w[i].text), "prefix %s not unique", w[i].text);
            s = (size_t)(hit - doc);
            e = match_close(doc, s);
        } else {
            hit = strstr(doc + from, w[i].text);
            cr_assert(hit, "token %s not found after %zu", w[i].text, from);
            s = (size_t)(hit - doc);
            e = s + strlen(w[i].text);
            from = e;
        }
        wl += (size_t)snprintf(want + wl, sizeof want - wl, "%c %s %zu %zu %d\n", w[i].type,
                               *w[i].path ? w[i].path : "-", s, e, w[i].depth);
    }
    cr_expect_str_eq(r.out, want);
    cr_expect_eq(r.count, (int)nw);
}

/* ==== Validity tables ==== */

static const struct vec y_vecs[] = {
    {"y_array_empty", "[]", 0, 0, 0},
    {"y_object_empty", "{}", 0, 0, 0},
    {"y_ws_around", " \t\r\n[ ]\n\t ", 0, 0, 0},
    {"y_scalar_int", "1", 0, 0, 0},
    {"y_scalar_neg_zero", "-0", 0, 0, 0},
    {"y_scalar_string", "\"x\"", 0, 0, 0},
    {"y_scalar_true", "true", 0, 0, 0},
    {"y_scalar_false", " false ", 0, 0, 0},
    {"y_scalar_null", "null", 0, 0, 0},
    {"y_numbers", "[0,-0,1,-1,0.5,-0.0e0,1e10,1E-10,1e+5,-1.25e-3,10,"
                  "123456789012345678901234567890,1.0E+300]", 0, 0, 0},
    {"y_string_escapes", "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0000\\uFFFF\\u00e9\\uD83D\\uDE00\"", 0, 0, 0},
    {"y_string_escaped_lone_surrogate", "[\"\\ud800\",\"\\udc00x\",\"\\ud800\\ud800\"]", 0, 0, 0},
    {"y_string_utf8", "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"", 0, 0, 0},
    {"y_string_u_ffff", "\"\xef\xbf\xbf\"", 0, 0, 0},
    {"y_string_u_10ffff", "\"\xf4\x8f\xbf\xbf\"", 0, 0, 0},
    {"y_string_u_d7ff_e000", "\"\xed\x9f\xbf\xee\x80\x80\"", 0, 0, 0},
    {"y_string_del", "\"\x7f\"", 0, 0, 0},
    {"y_string_long_plain", "\"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOP+/=\"", 0, 0, 0},
    {"y_nested", "{\"a\":{\"b\":[1,{\"c\":null},[],{}]},\"d\":[[[\"e\"]]]}", 0, 0, 0},
    {"y_duplicate_keys", "{\"a\":1,\"a\":2}", 0, 0, 0},
    {"y_empty_key", "{\"\":0}", 0, 0, 0},
    {"y_ws_everywhere", " { \"a\" : [ 1 , 2 ] , \"b\" : { } } ", 0, 0, 0},
};

static const struct vec n_vecs[] = {
    {"n_empty", "", 0, LG_E_JSON, 0},
    {"n_ws_only", "  ", 0, LG_E_JSON, 2},
    {"n_trailing_comma_array", "[1,]", 0, LG_E_JSON, 3},
    {"n_trailing_comma_object", "{\"a\":1,}", 0, LG_E_JSON, 7},
    {"n_comment_block", "/*x*/1", 0, LG_E_JSON, 0},
    {"n_comment_after", "[1]//x", 0, LG_E_JSON, 3},
    {"n_nan", "NaN", 0, LG_E_JSON, 0},
    {"n_minus_nan", "[-NaN]", 0, LG_E_JSON, 2},
    {"n_infinity", "Infinity", 0, LG_E_JSON, 0},
    {"n_leading_zero", "01", 0, LG_E_JSON, 1},
    {"n_leading_zero_neg", "-01", 0, LG_E_JSON, 2},
    {"n_leading_zeros_array", "[00]", 0, LG_E_JSON, 2},
    {"n_plus", "+1", 0, LG_E_JSON, 0},
    {"n_dot_first", ".5", 0, LG_E_JSON, 0},
    {"n_dot_last", "1.", 0, LG_E_JSON, 2},
    {"n_dot_exp", "1.e3", 0, LG_E_JSON, 2},
    {"n_exp_empty", "1e", 0, LG_E_JSON, 2},
    {"n_exp_sign_only", "[1e+]", 0, LG_E_JSON, 4},
    {"n_minus_only", "-", 0, LG_E_JSON, 1},
    {"n_minus_in_array", "[-]", 0, LG_E_JSON, 2},
    {"n_hex", "0x1", 0, LG_E_JSON, 1},
    {"n_single_quote", "'a'", 0, LG_E_JSON, 0},
    {"n_unquoted_key", "{a:1}", 0, LG_E_JSON, 1},
    {"n_key_number", "{1:1}", 0, LG_E_JSON, 1},
    {"n_missing_colon", "{\"a\" 1}", 0, LG_E_JSON, 5},
    {"n_missing_value", "{\"a\":}", 0, LG_E_JSON, 5},
    {"n_two_values", "1 2", 0, LG_E_JSON, 2},
    {"n_unclosed_array", "[1", 0, LG_E_JSON, 2},
    {"n_open_bracket", "[", 0, LG_E_JSON, 1},
    {"n_unclosed_object", "{\"a\":1", 0, LG_E_JSON, 6},
    {"n_unclosed_string", "\"abc", 0, LG_E_JSON, 4},
    {"n_bad_escape", "\"\\x\"", 0, LG_E_JSON, 2},
    {"n_escape_ctrl", "\"\\\x01\"", 0, LG_E_JSON, 2},
    {"n_bad_u_hex", "\"\\u12G4\"", 0, LG_E_JSON, 5},
    {"n_short_u", "\"\\u12\"", 0, LG_E_JSON, 5},
    {"n_u_eof", "\"\\u1", 0, LG_E_JSON, 4},
    {"n_backslash_eof", "\"\\", 0, LG_E_JSON, 2},
    {"n_raw_tab_in_string", "\"a\tb\"", 0, LG_E_JSON, 2},
    {"n_raw_newline_in_string", "[\"a\nb\"]", 0, LG_E_JSON, 3},
    {"n_nul_in_string", "\"a\0\"", 4, LG_E_JSON, 2},
    {"n_nul_after", "1\0", 2, LG_E_JSON, 1},
    {"n_utf8_overlong_2", "\"\xc0\xaf\"", 0, LG_E_JSON, 1},
    {"n_utf8_overlong_c1", "\"\xc1\xbf\"", 0, LG_E_JSON, 1},
    {"n_utf8_overlong_3", "\"\xe0\x80\xaf\"", 0, LG_E_JSON, 2},
    {"n_utf8_overlong_4", "\"\xf0\x80\x80\xaf\"", 0, LG_E_JSON, 2},
    {"n_utf8_surrogate_high", "\"\xed\xa0\x80\"", 0, LG_E_JSON, 2},
    {"n_utf8_surrogate_low", "\"\xed\xbf\xbf\"", 0, LG_E_JSON, 2},
    {"n_utf8_above_10ffff", "\"\xf4\x90\x80\x80\"", 0, LG_E_JSON, 2},
    {"n_utf8_f5", "\"\xf5\x80\x80\x80\"", 0, LG_E_JSON, 1},
    {"n_utf8_ff", "\"\xff\"", 0, LG_E_JSON, 1},
    {"n_utf8_lone_continuation", "\"\x80\"", 0, LG_E_JSON, 1},
    {"n_utf8_truncated", "\"\xe2\x82\"", 0, LG_E_JSON, 3},
    {"n_utf8_truncated_eof", "\"\xe2\x82", 0, LG_E_JSON, 3},
    {"n_utf8_bad_cont_4", "\"\xf0\x9f\x98\x28\"", 0, LG_E_JSON, 4},
    {"n_utf8_in_key", "{\"\xff\":1}", 0, LG_E_JSON, 2},
    {"n_bom", "\xef\xbb\xbf{}", 0, LG_E_JSON, 0},
    {"n_true_truncated", "tru", 0, LG_E_JSON, 3},
    {"n_true_bad", "trux", 0, LG_E_JSON, 3},
    {"n_true_capital", "True", 0, LG_E_JSON, 0},
    {"n_null_trailing", "nullx", 0, LG_E_JSON, 4},
    {"n_array_colon", "[1:2]", 0, LG_E_JSON, 2},
    {"n_object_missing_comma", "{\"a\":1 \"b\":2}", 0, LG_E_JSON, 7},
    {"n_close_mismatch_array", "[1}", 0, LG_E_JSON, 2},
    {"n_close_mismatch_object", "{\"a\":1]", 0, LG_E_JSON, 6},
    {"n_extra_close", "[1]]", 0, LG_E_JSON, 3},
    {"n_leading_comma", "[,1]", 0, LG_E_JSON, 1},
    {"n_double_comma", "[1,,2]", 0, LG_E_JSON, 3},
    {"n_formfeed_ws", "\x0c" "1", 0, LG_E_JSON, 0},
    {"n_vtab_ws", " \x0b" "1", 0, LG_E_JSON, 1},
    {"n_nbsp_ws", "\xc2\xa0" "1", 0, LG_E_JSON, 0},
    {"n_key_trailing_comma", "{\"a\",1}", 0, LG_E_JSON, 4},
    {"n_object_in_key", "{{}:1}", 0, LG_E_JSON, 1},
};

Test(json_valid, y_table)
{
    for (size_t i = 0; i < sizeof y_vecs / sizeof *y_vecs; i++) {
        const struct vec *v = &y_vecs[i];
        size_t off = 77;
        cr_expect_eq(walk(v->doc, vlen(v), &off), LG_OK, "%s", v->name);
        cr_expect_eq(off, 0, "%s", v->name);
        check_prefixes(v->name, v->doc, vlen(v), LG_OK, 0);
    }
}

Test(json_invalid, n_table)
{
    for (size_t i = 0; i < sizeof n_vecs / sizeof *n_vecs; i++) {
        const struct vec *v = &n_vecs[i];
        size_t off = 777;
        int rc = walk(v->doc, vlen(v), &off);
        cr_expect_eq(rc, v->rc, "%s: rc %d", v->name, rc);
        cr_expect_eq(off, v->off, "%s: off %zu want %zu", v->name, off, v->off);
        check_prefixes(v->name, v->doc, vlen(v), v->rc, v->off);
    }
}

Test(json_invalid, args)
{
    size_t off;
    cr_expect_eq(lg_json_walk(NULL, 1, 0, NULL, NULL, &off), LG_E_INVAL);
    cr_expect_eq(lg_json_walk("1", 1, -1, NULL, NULL, &off), LG_E_INVAL);
    cr_expect_eq(lg_json_walk(NULL, 0, 0, NULL, NULL, &off), LG_E_JSON);
    cr_expect_eq(off, 0);
    cr_expect_eq(lg_json_walk("[1", 2, 0, NULL, NULL, NULL), LG_E_JSON);
}

/* A long plain string with one bad byte at every position relative to the
 * eight-byte steps of the fast scanner. */
Test(json_invalid, bad_byte_every_alignment)
{
    char d[80];
    static const char bad[] = {'\x01', '\x1f', '\xff', '\x80', '\n'};
    for (size_t b = 0; b < sizeof bad; b++) {
        for (size_t at = 1; at < 70; at++) {
            memset(d, 'a', sizeof d);
            d[0] = '"';
            d[75] = '"';
            d[at] = bad[b];
            size_t off = 0;
            cr_expect_eq(walk(d, 76, &off), LG_E_JSON);
            cr_expect_eq(off, at, "bad %02x at %zu: off %zu", (unsigned char)bad[b], at, off);
            d[at] = '"';
            d[at + 1] = ']';
            cr_expect_eq(walk(d, 76, &off), LG_E_JSON);
            cr_expect_eq(off, at + 1);
            cr_expect_eq(walk(d, at + 1, &off), LG_OK);
        }
    }
}

/* ==== Paths and spans ==== */

Test(json_paths, openai_chat_request)
{
    const char *doc =
        "{\"model\":\"llama3.2\",\"messages\":["
        "{\"role\":\"system\",\"content\":\"Be brief.\"},"
        "{\"role\":\"user\",\"content\":["
        "{\"type\":\"text\",\"text\":\"What is in this image?\"},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,iVBORw0KGgo=\"}}]}],"
        "\"stream\":true,\"temperature\":0.2,\"stop\":null}";
    const struct want w[] = {
        {'s', "model", 1, "\"llama3.2\""},
        {'s', "messages[0].role", 3, "\"system\""},
        {'s', "messages[0].content", 3, "\"Be brief.\""},
        {'o', "messages[0]", 2, "{\"role\":\"system\""},
        {'s', "messages[1].role", 3, "\"user\""},
        {'s', "messages[1].content[0].type", 5, "\"text\""},
        {'s', "messages[1].content[0].text", 5, "\"What is in this image?\""},
        {'o', "messages[1].content[0]", 4, "{\"type\":\"text\""},
        {'s', "messages[1].content[1].type", 5, "\"image_url\""},
        {'s', "messages[1].content[1].image_url.url", 6, "\"data:image/png;base64,iVBORw0KGgo=\""},
        {'o', "messages[1].content[1].image_url", 5, "{\"url\""},
        {'o', "messages[1].content[1]", 4, "{\"type\":\"image_url\""},
        {'a', "messages[1].content", 3, "[{\"type\":\"text\""},
        {'o', "messages[1]", 2, "{\"role\":\"user\""},
        {'a', "messages", 1, "[{\"role\":\"system\""},
        {'t', "stream", 1, "true"},
        {'n', "temperature", 1, "0.2"},
        {'z', "stop", 1, "null"},
        {'o', "", 0, "{\"model\""},
    };
    expect_walk(doc, w, sizeof w / sizeof *w);
}

Test(json_paths, ollama_chat_request)
{
    const char *doc =
        "{\n  \"model\": \"llava\",\n  \"messages\": [\n"
        "    {\"role\": \"user\", \"content\": \"what is this?\",\n"
        "     \"images\": [\"iVBORw0KGgoAAAANSUhEUg==\", \"R0lGODlh\"]},\n"
        "    {\"role\": \"assistant\", \"content\": \"\", \"tool_calls\": [{\"function\": "
        "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 3}}}]},\n"
        "    {\"role\": \"tool\", \"content\": \"{\\\"temp\\\": 21}\",\n"
        "     \"tool_name\": \"get_weather\"}\n"
        "  ],\n  \"options\": {\"temperature\": 0},\n  \"stream\": false\n}\n";
    const struct want w[] = {
        {'s', "model", 1, "\"llava\""},
        {'s', "messages[0].role", 3, "\"user\""},
        {'s', "messages[0].content", 3, "\"what is this?\""},
        {'s', "messages[0].images[0]", 4, "\"iVBORw0KGgoAAAANSUhEUg==\""},
        {'s', "messages[0].images[1]", 4, "\"R0lGODlh\""},
        {'a', "messages[0].images", 3, "[\"iVBOR"},
        {'o', "messages[0]", 2, "{\"role\": \"user\""},
        {'s', "messages[1].role", 3, "\"assistant\""},
        {'s', "messages[1].content", 3, "\"\""},
        {'s', "messages[1].tool_calls[0].function.name", 6, "\"get_weather\""},
        {'s', "messages[1].tool_calls[0].function.arguments.city", 7, "\"Paris\""},
        {'n', "messages[1].tool_calls[0].function.arguments.days", 7, "3"},
        {'o', "messages[1].tool_calls[0].function.arguments", 6, "{\"city\""},
        {'o', "messages[1].tool_calls[0].function", 5, "{\"name\""},
        {'o', "messages[1].tool_calls[0]", 4, "{\"function\""},
        {'a', "messages[1].tool_calls", 3, "[{\"function\""},
        {'o', "messages[1]", 2, "{\"role\": \"assistant\""},
        {'s', "messages[2].role", 3, "\"tool\""},
        {'s', "messages[2].content", 3, "\"{\\\"temp\\\": 21}\""},
        {'s', "messages[2].tool_name", 3, "\"get_weather\""},
        {'o', "messages[2]", 2, "{\"role\": \"tool\""},
        {'a', "messages", 1, "[\n    {"},
        {'n', "options.temperature", 2, "0"},
        {'o', "options", 1, "{\"temperature\""},
        {'f', "stream", 1, "false"},
        {'o', "", 0, "{\n  \"model\""},
    };
    expect_walk(doc, w, sizeof w / sizeof *w);
}

Test(json_paths, escaped_keys_are_decoded)
{
    const char *doc = "{\"messages\":[{\"\\u0063ontent\":\"x\",\"a\\\"b\":1,\"\\ud83d\\ude00\":2,"
                      "\"\\ud800\":3,\"\\n\":4}]}";
    const struct want w[] = {
        {'s', "messages[0].content", 3, "\"x\""},
        {'n', "messages[0].a\"b", 3, "1"},
        {'n', "messages[0].\xf0\x9f\x98\x80", 3, "2"},
        {'n', "messages[0].\xef\xbf\xbd", 3, "3"},
        {'n', "messages[0].\n", 3, "4"},
        {'o', "messages[0]", 2, "{\"\\u0063"},
        {'a', "messages", 1, "[{"},
        {'o', "", 0, "{\"messages\""},
    };
    expect_walk(doc, w, sizeof w / sizeof *w);
    cr_expect(lg_json_path_match("messages[*].content", "messages[0].content", 19));
}

Test(json_paths, top_level_and_indexes)
{
    static struct rec r;
    memset(&r, 0, sizeof r);
    const char *doc = " [1,[2,[]],{\"\":{}},\"s\"] ";
    cr_assert_eq(lg_json_walk(doc, strlen(doc), 0, rec_cb, &r, NULL), LG_OK);
    cr_expect_str_eq(r.out,
                     "n [0] 2 3 1\n"
                     "n [1][0] 5 6 2\n"
                     "a [1][1] 7 9 2\n"
                     "a [1] 4 10 1\n"
                     "o [2]. 15 17 2\n" /* key "" */
                     "o [2] 11 18 1\n"
                     "s [3] 19 22 1\n"
                     "a - 1 23 0\n");
    memset(&r, 0, sizeof r);
    cr_assert_eq(lg_json_walk(" \"x\" ", 5, 0, rec_cb, &r, NULL), LG_OK);
    cr_expect_str_eq(r.out, "s - 1 4 0\n");
}

Test(json_paths, many_indexes)
{
    static char doc[40000];
    size_t n = 0;
    doc[n++] = '[';
    for (int i = 0; i < 12000; i++)
        n += (size_t)sprintf(doc + n, i ? ",%d" : "%d", i % 10);
    doc[n++] = ']';
    static struct rec r;
    memset(&r, 0, sizeof r);
    r.stop_at = 11235;
    size_t off = 0;
    cr_assert_eq(lg_json_walk(doc, n, 0, rec_cb, &r, &off), 99);
    const char *last = r.out + r.len - 1;
    while (last > r.out && last[-1] != '\n')
        last--;
    size_t at = 1 + 2 * 11234;
    char want[64];
    snprintf(want, sizeof want, "n [11234] %zu %zu 1\n", at, at + 1);
    cr_expect_str_eq(last, want);
    cr_expect_eq(off, at + 1, "callback stop reports the value's end");
}

Test(json_paths, callback_stop_in_container)
{
    static struct rec r;
    memset(&r, 0, sizeof r);
    r.stop_at = 2;
    size_t off = 0;
    cr_expect_eq(lg_json_walk("[[1],2", 6, 0, rec_cb, &r, &off), 99);
    cr_expect_eq(off, 4);
    cr_expect_eq(r.count, 2);
}

/* ==== Limits ==== */

static char *nest(size_t levels, const char *open, const char *mid, const char *close,
                  size_t *n)
{
    size_t lo = strlen(open), lm = strlen(mid), lc = strlen(close);
    char *d = malloc(levels * (lo + lc) + lm + 1);
    cr_assert(d);
    size_t k = 0;
    for (size_t i = 0; i < levels; i++, k += lo)
        memcpy(d + k, open, lo);
    memcpy(d + k, mid, lm);
    k += lm;
    for (size_t i = 0; i < levels; i++, k += lc)
        memcpy(d + k, close, lc);
    d[k] = '\0';
    *n = k;
    return d;
}

static int max_depth_seen;
static int depth_cb(void *ud, const lg_json_value *v)
{
    (void)ud;
    if (v->depth > max_depth_seen)
        max_depth_seen = v->depth;
    return 0;
}

Test(json_limits, depth)
{
    size_t n, off;
    char *d = nest(LG_JSON_MAX_DEPTH, "[", "1", "]", &n);
    max_depth_seen = 0;
    cr_expect_eq(lg_json_walk(d, n, 0, depth_cb, NULL, &off), LG_OK);
    cr_expect_eq(max_depth_seen, LG_JSON_MAX_DEPTH);
    cr_expect_eq(lg_json_walk(d, n, LG_JSON_MAX_DEPTH - 1, NULL, NULL, &off), LG_E_JSON_DEPTH);
    cr_expect_eq(off, LG_JSON_MAX_DEPTH - 1);
    free(d);

    d = nest(LG_JSON_MAX_DEPTH + 1, "[", "", "]", &n);
    cr_expect_eq(lg_json_walk(d, n, 0, NULL, NULL, &off), LG_E_JSON_DEPTH);
    cr_expect_eq(off, LG_JSON_MAX_DEPTH);
    free(d);

    d = nest(LG_JSON_MAX_DEPTH + 1, "{\"a\":", "1", "}", &n);
    cr_expect_eq(lg_json_walk(d, n, 0, NULL, NULL, &off), LG_E_JSON_DEPTH);
    cr_expect_eq(off, 5 * LG_JSON_MAX_DEPTH);
    cr_expect_eq(lg_json_walk(d, n, LG_JSON_MAX_DEPTH + 1, NULL, NULL, &off), LG_OK);
    free(d);

    cr_expect_eq(lg_json_walk("[1]", 3, 1, NULL, NULL, &off), LG_OK);
    cr_expect_eq(lg_json_walk("[[1]]", 5, 1, NULL, NULL, &off), LG_E_JSON_DEPTH);
    cr_expect_eq(off, 1);
    cr_expect_eq(lg_json_walk("1", 1, 1, NULL, NULL, &off), LG_OK);
}

Test(json_limits, depth_cap_and_hostile_nesting)
{
    size_t n, off;
    char *d = nest(LG_JSON_DEPTH_CAP, "[", "", "]", &n);
    cr_expect_eq(lg_json_walk(d, n, 100000, NULL, NULL, &off), LG_OK);
    free(d);
    d = nest(LG_JSON_DEPTH_CAP + 1, "[", "", "]", &n);
    cr_expect_eq(lg_json_walk(d, n, 100000, NULL, NULL, &off), LG_E_JSON_DEPTH);
    cr_expect_eq(off, LG_JSON_DEPTH_CAP);
    free(d);
    /* A megabyte of '[' must fail fast at the limit, not recurse. */
    size_t big = 1 << 20;
    d = malloc(big);
    memset(d, '[', big);
    cr_expect_eq(lg_json_walk(d, big, 0, NULL, NULL, &off), LG_E_JSON_DEPTH);
    cr_expect_eq(off, LG_JSON_MAX_DEPTH);
    free(d);
}

struct trunc_rec {
    int n;
    char path[8][LG_JSON_MAX_PATH + 1];
    size_t plen[8];
    int trunc[8];
};

static int trunc_cb(void *ud, const lg_json_value *v)
{
    struct trunc_rec *t = ud;
    cr_assert_lt(t->n, 8);
    cr_assert_leq(v->path_len, LG_JSON_MAX_PATH);
    cr_assert_eq(v->path[v->path_len], '\0');
    memcpy(t->path[t->n], v->path, v->path_len + 1);
    t->plen[t->n] = v->path_len;
    t->trunc[t->n] = v->truncated;
    t->n++;
    return 0;
}

Test(json_limits, truncated_paths)
{
    /* {"<600 a>":{"x":1,"y":[2]},"z":3} */
    static char doc[2048];
    size_t n = 0;
    n += (size_t)sprintf(doc + n, "{\"");
    for (int i = 0; i < 600; i++)
        doc[n++] = 'a';
    n += (size_t)sprintf(doc + n, "\":{\"x\":1,\"y\":[2]},\"z\":3}");
    static struct trunc_rec t;
    memset(&t, 0, sizeof t);
    cr_assert_eq(lg_json_walk(doc, n, 0, trunc_cb, &t, NULL), LG_OK);
    cr_assert_eq(t.n, 6);
    for (int i = 0; i < 4; i++) {  /* x, y[0], y, the 600-a object */
        cr_expect_eq(t.plen[i], LG_JSON_MAX_PATH, "value %d", i);
        cr_expect(t.trunc[i], "value %d", i);
        cr_expect_eq(strspn(t.path[i], "a"), LG_JSON_MAX_PATH);
    }
    cr_expect_str_eq(t.path[4], "z");
    cr_expect_not(t.trunc[4]);
    cr_expect_str_eq(t.path[5], "");
    cr_expect_not(t.trunc[5]);
}

Test(json_limits, truncation_keeps_whole_characters)
{
    /* {"p":{"<509 a>é":1, "b":2}}: "p." + 509 + 2 = 513 does not fit. */
    static char doc[2048];
    size_t n = (size_t)sprintf(doc, "{\"p\":{\"");
    for (int i = 0; i < 509; i++)
        doc[n++] = 'a';
    n += (size_t)sprintf(doc + n, "\\u00e9x\":1,\"b\":2}}");
    static struct trunc_rec t;
    memset(&t, 0, sizeof t);
    cr_assert_eq(lg_json_walk(doc, n, 0, trunc_cb, &t, NULL), LG_OK);
    cr_assert_eq(t.n, 4);
    cr_expect_eq(t.plen[0], 511, "the 2-byte character is dropped whole");
    cr_expect(t.trunc[0]);
    cr_expect_eq(t.path[0][510], 'a');
    cr_expect_str_eq(t.path[1], "p.b");
    cr_expect_not(t.trunc[1]);

    /* The same with the character raw, and a 4-byte one straddling. */
    for (int four = 0; four < 2; four++) {
        n = (size_t)sprintf(doc, "{\"p\":{\"");
        for (int i = 0; i < 509; i++)
            doc[n++] = 'a';
        n += (size_t)sprintf(doc + n, "%sx\":1,\"b\":2}}", four ? "\xf0\x9f\x98\x80" : "\xc3\xa9");
        memset(&t, 0, sizeof t);
        cr_assert_eq(lg_json_walk(doc, n, 0, trunc_cb, &t, NULL), LG_OK);
        cr_expect_eq(t.plen[0], 511);
        cr_expect(t.trunc[0]);
        cr_expect_str_eq(t.path[1], "p.b");
    }
    n = (size_t)sprintf(doc, "{\"p\":{\"");
    for (int i = 0; i < 508; i++)
        doc[n++] = 'a';
    n += (size_t)sprintf(doc + n, "\xc3\xa9\":1}}");
    memset(&t, 0, sizeof t);
    cr_assert_eq(lg_json_walk(doc, n, 0, trunc_cb, &t, NULL), LG_OK);
    cr_expect_eq(t.plen[0], LG_JSON_MAX_PATH, "fits exactly");
    cr_expect_not(t.trunc[0]);

    /* Exactly LG_JSON_MAX_PATH is not truncated. */
    n = (size_t)sprintf(doc, "{\"p\":{\"");
    for (int i = 0; i < LG_JSON_MAX_PATH - 2; i++)
        doc[n++] = 'a';
    n += (size_t)sprintf(doc + n, "\":[1]}}");
    memset(&t, 0, sizeof t);
    cr_assert_eq(lg_json_walk(doc, n, 0, trunc_cb, &t, NULL), LG_OK);
    cr_expect_eq(t.plen[0], LG_JSON_MAX_PATH);
    cr_expect(t.trunc[0], "[0] does not fit");
    cr_expect_eq(t.plen[1], LG_JSON_MAX_PATH);
    cr_expect_not(t.trunc[1]);
}

Test(json_limits, deep_paths_truncate_then_recover)
{
    /* 200 levels of {"abc": ...} then a sibling at depth 1. */
    size_t n;
    char *inner = nest(200, "{\"abc\":", "7", "}", &n);
    char *doc = malloc(n + 64);
    size_t k = (size_t)sprintf(doc, "{\"root\":%s,\"tail\":true}", inner);
    static struct rec r;
    memset(&r, 0, sizeof r);
    cr_assert_eq(lg_json_walk(doc, k, LG_JSON_DEPTH_CAP, rec_cb, &r, NULL), LG_OK);
    cr_expect(strstr(r.out, "t tail ") != NULL);
    cr_expect(strstr(r.out, " T\n") != NULL);
    free(inner);
    free(doc);
}

/* ==== Over-reads ==== */

static char *guard_page(size_t *page)
{
    long ps = sysconf(_SC_PAGESIZE);
    *page = (size_t)ps;
    char *m = mmap(NULL, 2 * (size_t)ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(m, MAP_FAILED);
    cr_assert_eq(mprotect(m + ps, (size_t)ps, PROT_NONE), 0);
    return m;
}

static void at_end(char *m, size_t page, const char *d, size_t n, int expect_rc, size_t expect_off)
{
    for (size_t k = 0; k <= n; k++) {
        char *p = m + page - k;
        memcpy(p, d, k);
        size_t off = 0;
        int rc = lg_json_walk(p, k, 0, NULL, NULL, &off);
        if (k == n) {
            cr_expect_eq(rc, expect_rc);
            if (rc != LG_OK)
                cr_expect_eq(off, expect_off);
        }
        lg_buf b;
        lg_buf_init(&b, 1 << 20);
        if (k >= 2 && p[0] == '"')
            (void)lg_json_unescape(p, k, &b);
        (void)lg_json_escape(p, k, LG_JSON_ESC_HTML, &b);
        (void)lg_json_escape(p, k, 0, &b);
        lg_buf_free(&b);
        (void)lg_json_path_match("a[*].**", p, k);
        (void)lg_json_path_match("*[*]", p, k);
    }
}

Test(json_guard, vectors_at_page_end)
{
    size_t page;
    char *m = guard_page(&page);
    for (size_t i = 0; i < sizeof y_vecs / sizeof *y_vecs; i++)
        at_end(m, page, y_vecs[i].doc, vlen(&y_vecs[i]), LG_OK, 0);
    for (size_t i = 0; i < sizeof n_vecs / sizeof *n_vecs; i++)
        at_end(m, page, n_vecs[i].doc, vlen(&n_vecs[i]), n_vecs[i].rc, n_vecs[i].off);
    static const char *more[] = {
        "\"\\u", "\"\\ud83d\\u", "\"\\ud83d\\ude0", "\"\xf0\x9f\x98", "\"\xe2", "123.",
        "1e-", "-0.5E+1", "fals", "[\"\\ud83d\\ude00\"]", "\"abcdefghijklmnopqrstuvwxyz\"",
        "\"<&>\xe2\x80\xa8\"",
    };
    for (size_t i = 0; i < sizeof more / sizeof *more; i++) {
        size_t off;
        int rc = walk(more[i], strlen(more[i]), &off);
        at_end(m, page, more[i], strlen(more[i]), rc, off);
    }
    munmap(m, 2 * page);
}

/* ==== Unescape ==== */

struct unesc {
    const char *tok;
    const char *want;
    size_t want_len; /* 0: strlen(want) */
};

static const struct unesc unesc_vecs[] = {
    {"\"\"", "", 0},
    {"\"plain text\"", "plain text", 0},
    {"\"\\u0063ontent\"", "content", 0},
    {"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\/\b\f\n\r\t", 0},
    {"\"\\u00e9\\u00E9\\u20ac\"", "\xc3\xa9\xc3\xa9\xe2\x82\xac", 0},
    {"\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80", 0},
    {"\"\\uD83D\\uDE00x\"", "\xf0\x9f\x98\x80x", 0},
    {"\"\\udbff\\udfff\"", "\xf4\x8f\xbf\xbf", 0},
    {"\"\\ud800\\udc00\"", "\xf0\x90\x80\x80", 0},
    {"\"\\ud83d\"", "\xef\xbf\xbd", 0},
    {"\"\\ude00\"", "\xef\xbf\xbd", 0},
    {"\"\\ude00\\ud83d\"", "\xef\xbf\xbd\xef\xbf\xbd", 0},
    {"\"\\ud83dx\"", "\xef\xbf\xbdx", 0},
    {"\"\\ud83d\\u0041\"", "\xef\xbf\xbd" "A", 0},
    {"\"\\ud83d\\n\"", "\xef\xbf\xbd\n", 0},
    {"\"\\ud83d\\ud83d\\ude00\"", "\xef\xbf\xbd\xf0\x9f\x98\x80", 0},
    {"\"a\\u0000b\"", "a\0b", 3},
    {"\"\\u007f\\u0080\\u07ff\\u0800\\uffff\"", "\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf", 0},
    {"\"\xc3\xa9\\n\xf0\x9f\x98\x80\"", "\xc3\xa9\n\xf0\x9f\x98\x80", 0},
};

Test(json_unescape, vectors)
{
    for (size_t i = 0; i < sizeof unesc_vecs / sizeof *unesc_vecs; i++) {
        const struct unesc *u = &unesc_vecs[i];
        size_t wl = u->want_len ? u->want_len : strlen(u->want);
        lg_buf b;
        lg_buf_init(&b, 1 << 16);
        lg_buf_puts(&b, "pre:");
        cr_expect_eq(lg_json_unescape(u->tok, strlen(u->tok), &b), LG_OK, "%s", u->tok);
        cr_expect_eq(b.len, 4 + wl, "%s: len %zu", u->tok, b.len);
        cr_expect(b.len == 4 + wl && memcmp(b.data + 4, u->want, wl) == 0, "%s", u->tok);
        cr_expect_eq(b.data[b.len], '\0');
        lg_buf_free(&b);
    }
}

Test(json_unescape, rejects_non_tokens)
{
    static const char *bad[] = {
        "", "\"", "abc", "\"abc", "abc\"", "\"a\"b\"", "\"\\x\"", "\"\\\"", "\"a\x01\"",
        "\"\xff\"", "\"\xed\xa0\x80\"", "\"a\" ", " \"a\"", "\"\\u12\"", "\"a\"\"",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        lg_buf b;
        lg_buf_init(&b, 1 << 10);
        lg_buf_puts(&b, "keep");
        cr_expect_eq(lg_json_unescape(bad[i], strlen(bad[i]), &b), LG_E_JSON, "[%s]", bad[i]);
        cr_expect_str_eq(b.data, "keep");
        lg_buf_free(&b);
    }
    lg_buf b;
    lg_buf_init(&b, 16);
    cr_expect_eq(lg_json_unescape(NULL, 2, &b), LG_E_JSON);
}

Test(json_unescape, buffer_limits)
{
    /* 12 bytes of escapes decode to 4: fits a cap of 5 even though the
     * token is longer than the room left. */
    lg_buf b;
    lg_buf_init(&b, 5);
    lg_buf_puts(&b, "x");
    cr_expect_eq(lg_json_unescape("\"\\ud83d\\ude00\"", 14, &b), LG_OK);
    cr_expect_eq(b.len, 5);
    cr_expect_eq(lg_json_unescape("\"a\"", 3, &b), LG_E_LIMIT);
    cr_expect_eq(b.len, 5, "nothing appended on failure");
    cr_expect_eq(lg_json_unescape("\"\"", 2, &b), LG_OK, "empty text needs no room");
    lg_buf_free(&b);
}

/* ==== Escape ==== */

struct esc {
    const char *in;
    size_t in_len; /* 0: strlen */
    unsigned flags;
    const char *want;
};

/* Expected outputs follow Go's encoding/json encodeState.string (Go 1.22+):
 * htmlSafeSet / safeSet, short escapes for \b \f \n \r \t, hex "0123456789abcdef",
 * \ufffd per invalid byte (utf8.DecodeRuneInString returns size 1), U+2028/9. */
static const struct esc esc_vecs[] = {
    {"", 0, LG_JSON_ESC_HTML, "\"\""},
    {"<a&b>", 0, LG_JSON_ESC_HTML, "\"\\u003ca\\u0026b\\u003e\""},
    {"<a&b>", 0, 0, "\"<a&b>\""},
    {"<script>alert('x')</script>", 0, LG_JSON_ESC_HTML,
     "\"\\u003cscript\\u003ealert('x')\\u003c/script\\u003e\""},
    {"say \"hi\"\\", 0, LG_JSON_ESC_HTML, "\"say \\\"hi\\\"\\\\\""},
    {"a/b", 0, LG_JSON_ESC_HTML, "\"a/b\""},
    {"\b\f\n\r\t", 0, LG_JSON_ESC_HTML, "\"\\b\\f\\n\\r\\t\""},
    {"\x00\x01\x0b\x1a\x1f", 5, 0, "\"\\u0000\\u0001\\u000b\\u001a\\u001f\""},
    {"\x7f", 0, LG_JSON_ESC_HTML, "\"\x7f\""},
    {"\xe2\x80\xa8|\xe2\x80\xa9", 0, 0, "\"\\u2028|\\u2029\""},
    {"\xe2\x80\xa8", 0, LG_JSON_ESC_HTML, "\"\\u2028\""},
    {"\xe2\x80\xaa", 0, 0, "\"\xe2\x80\xaa\""},
    {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 0, LG_JSON_ESC_HTML,
     "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\""},
    {"\xef\xbf\xbd", 0, 0, "\"\xef\xbf\xbd\""},
    {"a\xffz", 0, 0, "\"a\\ufffdz\""},
    {"\xe2\x82", 0, 0, "\"\\ufffd\\ufffd\""},
    {"\xe2\x82x", 0, 0, "\"\\ufffd\\ufffdx\""},
    {"\xed\xa0\x80", 0, 0, "\"\\ufffd\\ufffd\\ufffd\""},
    {"\xc0\x80", 0, 0, "\"\\ufffd\\ufffd\""},
    {"\xf4\x90\x80\x80", 0, 0, "\"\\ufffd\\ufffd\\ufffd\\ufffd\""},
    {"\xf0\x9f\x98", 0, 0, "\"\\ufffd\\ufffd\\ufffd\""},
    {"\x80\xc3\xa9", 0, 0, "\"\\ufffd\xc3\xa9\""},
    {"0123456789abcdef<0123456789abcdef&", 0, LG_JSON_ESC_HTML,
     "\"0123456789abcdef\\u003c0123456789abcdef\\u0026\""},
};

Test(json_escape, go_vectors)
{
    for (size_t i = 0; i < sizeof esc_vecs / sizeof *esc_vecs; i++) {
        const struct esc *e = &esc_vecs[i];
        size_t n = e->in_len ? e->in_len : strlen(e->in);
        lg_buf b;
        lg_buf_init(&b, 1 << 16);
        cr_expect_eq(lg_json_escape(e->in, n, e->flags, &b), LG_OK);
        cr_expect_str_eq(b.data, e->want, "vector %zu", i);
        lg_buf_free(&b);
    }
}

/* Without the HTML flag the output equals Python's
 * json.dumps(s, ensure_ascii=False) except for U+2028/9 (Python leaves
 * them raw).  Expected strings produced by CPython 3. */
Test(json_escape, python_ensure_ascii_false)
{
    lg_buf b;
    lg_buf_init(&b, 1 << 16);
    const char *in = "a<>&\x01\x7f\xc3\xa9\b\f\"\\/\x1f";
    cr_assert_eq(lg_json_escape(in, strlen(in), 0, &b), LG_OK);
    cr_expect_str_eq(b.data, "\"a<>&\\u0001\x7f\xc3\xa9\\b\\f\\\"\\\\/\\u001f\"");
    lg_buf_free(&b);
}

Test(json_escape, buffer_limits)
{
    lg_buf b;
    lg_buf_init(&b, 8);
    cr_expect_eq(lg_json_escape("abcdef", 6, 0, &b), LG_OK);
    cr_expect_str_eq(b.data, "\"abcdef\"");
    cr_expect_eq(lg_json_escape("", 0, 0, &b), LG_E_LIMIT);
    cr_expect_eq(b.len, 8);
    lg_buf_reset(&b);
    cr_expect_eq(lg_json_escape("<", 1, LG_JSON_ESC_HTML, &b), LG_OK);
    cr_expect_str_eq(b.data, "\"\\u003c\"");
    lg_buf_reset(&b);
    cr_expect_eq(lg_json_escape("<<", 2, LG_JSON_ESC_HTML, &b), LG_E_LIMIT);
    cr_expect_eq(b.len, 0, "nothing appended");
    cr_expect_eq(lg_json_escape(NULL, 1, 0, &b), LG_E_INVAL);
    cr_expect_eq(lg_json_escape(NULL, 0, 0, &b), LG_OK);
    cr_expect_str_eq(b.data, "\"\"");
    lg_buf_free(&b);
}

/* ==== Round trips ==== */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

struct one {
    int n;
    lg_json_value v;
};

static int one_cb(void *ud, const lg_json_value *v)
{
    struct one *o = ud;
    o->n++;
    o->v = *v;
    return 0;
}

/* Valid UTF-8 text of random code points from interesting ranges. */
static size_t rand_text(unsigned char *t, size_t cap)
{
    static const uint32_t pick[] = {0, 0x1f, '"', '\\', '/', '<', '>', '&', 0x7f, 0x80, 0x7ff,
                                    0x800, 0x2028, 0x2029, 0xd7ff, 0xe000, 0xfffd, 0xffff,
                                    0x10000, 0x1f600, 0x10ffff};
    size_t n = 0, want = rnd() % (cap / 4);
    while (n < want) {
        uint32_t r = rnd() % 4, cp;
        if (r == 0)
            cp = pick[rnd() % (sizeof pick / sizeof *pick)];
        else if (r == 1)
            cp = 0x20 + rnd() % 0x60;
        else if (r == 2)
            cp = rnd() % 0x110000;
        else
            cp = rnd() % 0x20;
        if (cp >= 0xd800 && cp <= 0xdfff)
            cp = 'x';
        if (cp < 0x80) {
            t[n++] = (unsigned char)cp;
        } else if (cp < 0x800) {
            t[n++] = (unsigned char)(0xc0 | cp >> 6);
            t[n++] = (unsigned char)(0x80 | (cp & 63));
        } else if (cp < 0x10000) {
            t[n++] = (unsigned char)(0xe0 | cp >> 12);
            t[n++] = (unsigned char)(0x80 | ((cp >> 6) & 63));
            t[n++] = (unsigned char)(0x80 | (cp & 63));
        } else {
            t[n++] = (unsigned char)(0xf0 | cp >> 18);
            t[n++] = (unsigned char)(0x80 | ((cp >> 12) & 63));
            t[n++] = (unsigned char)(0x80 | ((cp >> 6) & 63));
            t[n++] = (unsigned char)(0x80 | (cp & 63));
        }
    }
    return n;
}

Test(json_roundtrip, escape_then_unescape)
{
    static unsigned char t[4096];
    for (int iter = 0; iter < 3000; iter++) {
        size_t n = rand_text(t, sizeof t);
        for (unsigned flags = 0; flags < 2; flags++) {
            lg_buf e, u;
            lg_buf_init(&e, 1 << 16);
            lg_buf_init(&u, 1 << 16);
            cr_assert_eq(lg_json_escape((char *)t, n, flags, &e), LG_OK);
            struct one o = {0};
            size_t off = 0;
            cr_assert_eq(lg_json_walk(e.data, e.len, 0, one_cb, &o, &off), LG_OK,
                         "iter %d off %zu", iter, off);
            cr_assert_eq(o.n, 1);
            cr_assert_eq(o.v.type, LG_JSON_STRING);
            cr_assert_eq(o.v.start, 0);
            cr_assert_eq(o.v.end, e.len);
            cr_assert_eq(lg_json_unescape(e.data, e.len, &u), LG_OK);
            cr_assert_eq(u.len, n, "iter %d", iter);
            cr_assert(n == 0 || memcmp(u.data, t, n) == 0, "iter %d", iter);
            if (flags)
                cr_assert_null(memchr(e.data, '<', e.len));
            lg_buf_free(&e);
            lg_buf_free(&u);
        }
    }
}

/* Random bytes (mostly invalid UTF-8): the escaped form is always one valid
 * string whose decoded text is the input with each bad byte as U+FFFD. */
Test(json_roundtrip, arbitrary_bytes)
{
    static unsigned char t[256];
    for (int iter = 0; iter < 5000; iter++) {
        size_t n = rnd() % sizeof t;
        for (size_t i = 0; i < n; i++)
            t[i] = (unsigned char)rnd();
        lg_buf e, u, e2;
        lg_buf_init(&e, 1 << 16);
        lg_buf_init(&u, 1 << 16);
        lg_buf_init(&e2, 1 << 16);
        cr_assert_eq(lg_json_escape((char *)t, n, LG_JSON_ESC_HTML, &e), LG_OK);
        cr_assert_eq(lg_json_walk(e.data, e.len, 0, NULL, NULL, NULL), LG_OK);
        cr_assert_eq(lg_json_unescape(e.data, e.len, &u), LG_OK);
        /* The decoded text is valid UTF-8 (each bad byte became one
         * U+FFFD, which is then written raw), so it round-trips. */
        size_t bad = 0;
        for (size_t i = 0; i + 5 < e.len; i++)
            bad += memcmp(e.data + i, "\\ufffd", 6) == 0;
        cr_assert_eq(lg_json_escape(u.data ? u.data : "", u.len, LG_JSON_ESC_HTML, &e2), LG_OK);
        cr_assert_eq(e2.len + 3 * bad, e.len);
        lg_buf_reset(&u);
        cr_assert_eq(lg_json_unescape(e2.data, e2.len, &u), LG_OK);
        lg_buf_reset(&e);
        cr_assert_eq(lg_json_escape(u.data ? u.data : "", u.len, LG_JSON_ESC_HTML, &e), LG_OK);
        cr_assert_eq(e2.len, e.len);
        cr_assert(memcmp(e.data, e2.data, e.len) == 0);
        lg_buf_free(&e);
        lg_buf_free(&u);
        lg_buf_free(&e2);
    }
}

/* A long base64 string (the images case) is one value with the right span. */
Test(json_roundtrip, megabyte_string)
{
    size_t n = 3 << 20;
    char *d = malloc(n + 32);
    size_t k = (size_t)sprintf(d, "{\"images\":[\"");
    for (size_t i = 0; i < n; i++)
        d[k + i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[i % 64];
    k += n;
    k += (size_t)sprintf(d + k, "\"]}");
    struct one o = {0};
    cr_assert_eq(lg_json_walk(d, k, 0, one_cb, &o, NULL), LG_OK);
    cr_expect_eq(o.n, 3);
    d[k - 1000] = '\n';
    size_t off;
    cr_expect_eq(lg_json_walk(d, k, 0, NULL, NULL, &off), LG_E_JSON);
    cr_expect_eq(off, k - 1000);
    free(d);
}

/* ==== Path patterns ==== */

struct pm {
    const char *pat;
    const char *path;
    int want;
};

static const struct pm pm_vecs[] = {
    {"messages[*].content", "messages[0].content", 1},
    {"messages[*].content", "messages[12].content", 1},
    {"messages[*].content", "messages[0].content_x", 0},
    {"messages[*].content", "messages[0].content[1]", 0},
    {"messages[*].content", "messages[0].contents", 0},
    {"messages[*].content", "messages[0].conten", 0},
    {"messages[*].content", "messages[0]", 0},
    {"messages[*].content", "messages.content", 0},
    {"messages[*].content", "messages[].content", 0},
    {"messages[*].content", "messages[x].content", 0},
    {"messages[*].content", "xmessages[0].content", 0},
    {"messages[*].content", "messages[0][1].content", 0},
    {"messages[*].content[*].text", "messages[1].content[0].text", 1},
    {"messages[*].content[*].text", "messages[1].content.text", 0},
    {"messages[1].content", "messages[1].content", 1},
    {"messages[1].content", "messages[2].content", 0},
    {"messages[1].content", "messages[10].content", 0},
    {"choices[*].delta.content", "choices[0].delta.content", 1},
    {"choices[*].delta.*", "choices[0].delta.reasoning", 1},
    {"choices[*].delta.*", "choices[0].delta", 0},
    {"choices[*].delta.*", "choices[0].delta.a.b", 0},
    {"choices[*].delta.*", "choices[0].delta.a[0]", 0},
    {"*.content", "message.content", 1},
    {"*.content", "content", 0},
    {"*", "prompt", 1},
    {"*", "", 0},
    {"*", "a.b", 0},
    {"*", "[0]", 0},
    {"prompt", "prompt", 1},
    {"prompt", "prompt2", 0},
    {"prompt", "", 0},
    {"", "", 1},
    {"", "a", 0},
    {"[*]", "[3]", 1},
    {"[*]", "[3].a", 0},
    {"[*].a", "[3].a", 1},
    {"[0]", "[0]", 1},
    {"**", "", 1},
    {"**", "anything[1].at.all", 1},
    {"tools.**", "tools", 1},
    {"tools.**", "tools[0].function.name", 1},
    {"tools.**", "tools.a", 1},
    {"tools.**", "toolsx", 0},
    {"tools.**", "tool", 0},
    {"tools.**", "x.tools", 0},
    {"messages[*].**", "messages[0]", 1},
    {"messages[*].**", "messages[0].content[2].text", 1},
    {"messages[*].**", "messages", 0},
    {"messages[*].**", "messages[0]x", 0},
    {"a.**.b", "a.x.b", 0},
    {"**.b", "a.b", 0},
    {"a**", "a", 0},
    {"a[*", "a[0]", 0},
    {"a[*]b", "a[0]b", 0},
    {"a..b", "a..b", 1},
    {"message.tool_calls[*].function.arguments",
     "message.tool_calls[0].function.arguments", 1},
};

Test(json_path_match, table)
{
    for (size_t i = 0; i < sizeof pm_vecs / sizeof *pm_vecs; i++) {
        const struct pm *p = &pm_vecs[i];
        cr_expect_eq(lg_json_path_match(p->pat, p->path, strlen(p->path)), p->want,
                     "pattern [%s] path [%s]", p->pat, p->path);
    }
    /* path_len, not NUL, bounds the path. */
    cr_expect_eq(lg_json_path_match("a.b", "a.bc", 3), 1);
    cr_expect_eq(lg_json_path_match("a[*]", "a[12]", 4), 0);
    cr_expect_eq(lg_json_path_match(NULL, "a", 1), 0);
    cr_expect_eq(lg_json_path_match("a", NULL, 1), 0);
    cr_expect_eq(lg_json_path_match("", NULL, 0), 1);
}

/* Paths the walker produces are matched by the patterns users write. */
static int count_cb(void *ud, const lg_json_value *v)
{
    int *c = ud;
    if (v->type == LG_JSON_STRING && lg_json_path_match("messages[*].content", v->path, v->path_len))
        c[0]++;
    if (v->type == LG_JSON_STRING &&
        lg_json_path_match("messages[*].content[*].text", v->path, v->path_len))
        c[1]++;
    if (lg_json_path_match("tools.**", v->path, v->path_len))
        c[2]++;
    return 0;
}

Test(json_path_match, with_walker)
{
    const char *doc = "{\"messages\":[{\"content\":\"a\"},{\"content\":[{\"text\":\"b\"},"
                      "{\"text\":\"c\"}]},{\"content\":\"d\",\"content_x\":\"e\"}],"
                      "\"tools\":[{\"name\":\"f\"}]}";
    int c[3] = {0};
    cr_assert_eq(lg_json_walk(doc, strlen(doc), 0, count_cb, c, NULL), LG_OK);
    cr_expect_eq(c[0], 2);
    cr_expect_eq(c[1], 2);
    cr_expect_eq(c[2], 3); /* tools[0].name, tools[0], tools; not the root */
}
