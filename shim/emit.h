/* The event emitter: how a guarded process hands one JSON event to
 * llmguard-collectord without ever blocking or losing it (design.md §5.9).
 *
 * Each event is one datagram on a Unix datagram socket (connected once and
 * kept; several events can go in one sendmmsg).  When the collector
 * is absent (ENOENT, ECONNREFUSED) or its queue is full (EAGAIN, ENOBUFS),
 * the event is appended instead, as one line, to a per-process spool file
 * `<spool_dir>/<pid>-<start µs>-<n>.spool` which the collector ingests (and
 * removes) when it comes back; event ids make that ingestion idempotent.
 *
 * Spool protocol (shared with the collector, tools/llmguard-collectord.c):
 * the writer appends a whole line with one writev() while holding
 * flock(LOCK_EX|LOCK_NB) on the file, after checking with fstat() that the
 * file is still linked; the collector takes the same lock, reads, stores,
 * fsyncs and unlinks.  A writer that finds the lock busy or the file
 * unlinked starts a new file (next <n>) rather than wait, so an append can
 * never land in a file the collector has already consumed, and the caller
 * never blocks on the collector.
 *
 * Shim constraints honoured here: all I/O goes through raw syscall(2) on
 * Linux (socket, connect, sendto, sendmmsg, openat, writev, flock, fstat,
 * close), so none of it passes through the shim's libc hooks; the emitter
 * only ever touches descriptors it created (all O_CLOEXEC / SOCK_CLOEXEC);
 * errno is preserved across every call; it is safe from several threads
 * (one mutex per emitter, held only around non-blocking work); and it
 * survives fork(): a pthread_atfork handler gives the child a fresh socket,
 * a new spool file name and a new id prefix.  The shim must still set its own recursion guard
 * around calls into this module if it hooks anything else used here
 * (pthread mutexes, getrandom, clock_gettime).  Not async-signal-safe. */
#ifndef LG_EMIT_H
#define LG_EMIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Largest event the collector accepts (bytes of JSON, without newline).
 * lg_emit_send refuses larger ones with -EMSGSIZE. */
#define LG_EMIT_MAX_EVENT (64 * 1024)

/* Size of the buffer lg_emit_new_id fills (including the NUL). */
#define LG_EMIT_ID_SIZE 48

/* Where the socket and spool directory are.  PATH_MAX-free fixed sizes:
 * sun_path is 108 bytes on Linux, so longer socket paths are an error. */
typedef struct lg_emit_paths {
    char socket[108];  /* collector's datagram socket */
    char spool[4096];  /* directory for spool files */
} lg_emit_paths;

/* Resolve the default paths, the same way for the shim and every tool.
 *   socket: $LLMGUARD_COLLECTOR, else (system) /run/llmguard/events.sock,
 *           else $XDG_RUNTIME_DIR/llmguard/events.sock, else
 *           /tmp/llmguard-<uid>/events.sock.
 *   spool:  $LLMGUARD_SPOOL_DIR, else (system) /run/llmguard/spool, else
 *           $XDG_RUNTIME_DIR/llmguard/spool, else /tmp/llmguard-<uid>/spool.
 * `system` non-zero selects the system-wide collector.  Nothing is created.
 * Returns 0, or -ENAMETOOLONG.  Environment lookups use secure_getenv so a
 * setuid program is not steered by its caller. */
int lg_emit_default_paths(lg_emit_paths *out, int system);

/* Create `dir` and its missing parents; the last component gets `mode`,
 * parents 0700.  If the last component exists it must be a directory owned
 * by us (or by root when we are root) and not writable by others unless
 * sticky; returns 0 or -errno (-EPERM for a directory that fails those
 * checks, so a /tmp fallback cannot be hijacked by another user). */
int lg_emit_mkdir_private(const char *dir, unsigned mode);

typedef struct lg_emitter lg_emitter;

/* Counters since open (or since fork, in a child). */
typedef struct lg_emit_stats {
    uint64_t sent;     /* datagrams accepted by the kernel */
    uint64_t spooled;  /* events appended to a spool file */
    uint64_t dropped;  /* events neither sent nor spooled (see last_errno) */
    int last_errno;    /* errno of the last drop, 0 if none */
} lg_emit_stats;

/* Open an emitter.  Either path may be NULL for the default from
 * lg_emit_default_paths(…, 0).  No descriptor is opened yet (the socket is
 * created on the first send, the spool file on the first spill), so opening
 * is cheap and works when the collector is not running.  Returns NULL with
 * errno set (ENOMEM, ENAMETOOLONG).  Free with lg_emit_close. */
lg_emitter *lg_emit_open(const char *socket_path, const char *spool_dir);

/* Send one event: `json` is n bytes of compact JSON on a single line (no
 * raw LF, no NUL needed).  Never blocks on the collector.
 * Returns 0 when sent as a datagram, 1 when appended to the spool file,
 * or a negative errno when the event was dropped: -EINVAL (contains LF,
 * empty), -EMSGSIZE (n > LG_EMIT_MAX_EVENT), or the spool's write error.
 * errno is unchanged on return in every case. */
int lg_emit_send(lg_emitter *e, const char *json, size_t n);

/* Send several events in order, as lg_emit_send would one by one, with one
 * system call for as many datagrams as the collector takes (sendmmsg) and
 * one spool append for the rest.  Each iovec is one event.  Returns 0 when
 * all were sent as datagrams, 1 when some were spooled and none dropped, or
 * a negative errno when at least one was not delivered (-EINVAL for an
 * invalid one, which is skipped; the others still go).  errno is unchanged. */
int lg_emit_sendv(lg_emitter *e, const struct iovec *ev, size_t n);

/* Close the emitter's descriptors and free it.  NULL is a no-op. */
void lg_emit_close(lg_emitter *e);

/* Copy the counters. */
void lg_emit_get_stats(lg_emitter *e, lg_emit_stats *out);

/* Write a new unique event id into buf: "<16 hex random>-<pid>-<counter>",
 * NUL-terminated, at most LG_EMIT_ID_SIZE bytes.  The random part is drawn
 * once per process (again after fork), the counter is atomic, so ids are
 * unique across threads, forks and reboots.  Returns the length. */
size_t lg_emit_new_id(char buf[LG_EMIT_ID_SIZE]);

/* Format `unix_us` (µs since the epoch) as RFC 3339 UTC with microseconds,
 * "2025-01-02T03:04:05.123456Z" (27 chars + NUL).  Returns the length. */
size_t lg_emit_format_ts(char buf[32], int64_t unix_us);

#endif
