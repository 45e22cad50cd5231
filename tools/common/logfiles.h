/* Shared by llmguard-collectord and llmguard-log: where the event logs
 * live, how the files in a log directory are named and ordered, and the
 * timestamp formats both programs accept.  On-disk layout of a log
 * directory (written only by the collector):
 *   events.jsonl                       current file, appended to
 *   events-YYYYmmddTHHMMSS.uuuuuuZ.jsonl rotated files; names sort in time
 *   collectord.lock                    flock()ed while a collector runs
 *   collectord.status                  JSON counters, rewritten each second
 * Every line of an events file is one JSON object whose first members are
 * "v", "id" and "ts" in that order (the collector writes them first), so
 * readers can find the id and timestamp without parsing the whole line. */
#ifndef LG_LOGFILES_H
#define LG_LOGFILES_H

#include <stddef.h>
#include <stdint.h>

#define LG_LOG_CURRENT "events.jsonl"
#define LG_LOG_LOCK "collectord.lock"
#define LG_LOG_STATUS "collectord.status"

/* Default log directory: $LLMGUARD_LOG_DIR, else (system) /var/log/llmguard,
 * else $XDG_STATE_HOME/llmguard, else $HOME/.local/state/llmguard.
 * Returns 0 or -ENAMETOOLONG / -ENOENT (no HOME). */
int lg_logdir_default(char *out, size_t cap, int system);

/* Calls fn(dfd, name, ctx) for each "*.spool" file (a shim's per-process
 * spool, shim/emit.c) in the directory `dir`, with dfd open on the
 * directory for *at() calls; the order is readdir's.  A missing or
 * unreadable directory has none.  Returns the number of files visited. */
int lg_spool_each(const char *dir, void (*fn)(int dfd, const char *name, void *ctx), void *ctx);

/* The events files of `dir` in time order (rotated files oldest first, the
 * current file last), as full paths.  *out is a malloc'd array of malloc'd
 * strings; free with lg_logfiles_free.  Returns the count (>= 0) or -errno. */
int lg_logfiles_list(const char *dir, char ***out);
void lg_logfiles_free(char **list, int n);

/* Parse an RFC 3339 timestamp ("2025-01-02T03:04:05.123456Z", offsets
 * "+01:00", fraction optional, 'T' or ' ') or a date "2025-01-02" (midnight
 * UTC) into µs since the epoch.  Returns 0 or -1. */
int lg_parse_rfc3339(const char *s, size_t n, int64_t *us);

/* --since/--until values: a duration back from now ("90s", "15m", "2h",
 * "7d", "1w", "1h30m") or an absolute time accepted by lg_parse_rfc3339.
 * Returns 0 or -1. */
int lg_parse_when(const char *s, int64_t now_us, int64_t *us);

/* Current time in µs since the epoch. */
int64_t lg_now_us(void);

/* Find the string value of top-level-looking member `key` near the start
 * of an event line (within the first `scan` bytes) without a full parse.
 * Sets *val and *len to the raw (still escaped) characters.  Returns 0 or -1. */
int lg_line_field(const char *line, size_t n, const char *key, size_t scan,
                  const char **val, size_t *len);

/* Is `s` (n bytes) well-formed UTF-8 (no overlongs, no surrogates)? */
int lg_utf8_valid(const char *s, size_t n);

#endif
