/* Test helper: emits N events through the shim's emitter (shim/emit.c),
 * as fast as allowed by an optional rate, and prints how many went as
 * datagrams, to the spool, or were dropped.  Each event carries the writer
 * tag and its sequence number so a test can check that exactly the
 * expected set arrived.
 *   collector_writer TAG COUNT [RATE_PER_S] [EXTRA_JSON_MEMBERS]
 * Socket and spool paths come from LLMGUARD_COLLECTOR / LLMGUARD_SPOOL_DIR.
 * COLLECTOR_WRITER_LINGER_MS keeps the process alive that long after the
 * last event, so the collector can still read its /proc/<pid>/exe. */
#include "emit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long long now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s TAG COUNT [RATE] [EXTRA]\n", argv[0]);
        return 2;
    }
    const char *tag = argv[1];
    long count = atol(argv[2]);
    double rate = argc > 3 ? atof(argv[3]) : 0;
    const char *extra = argc > 4 ? argv[4] : "";
    lg_emitter *e = lg_emit_open(NULL, NULL);
    if (!e) {
        perror("lg_emit_open");
        return 1;
    }
    long long t0 = now_us();
    char id[LG_EMIT_ID_SIZE], ts[32], buf[1024];
    long failed = 0;
    for (long i = 0; i < count; i++) {
        if (rate > 0) {
            long long due = t0 + (long long)(i * 1e6 / rate);
            long long now = now_us();
            if (due > now) {
                struct timespec d = {(time_t)((due - now) / 1000000),
                                     (long)((due - now) % 1000000) * 1000};
                nanosleep(&d, NULL);
            }
        }
        lg_emit_new_id(id);
        lg_emit_format_ts(ts, now_us());
        int n = snprintf(buf, sizeof buf,
            "{\"v\":1,\"id\":\"%s\",\"ts\":\"%s\",\"writer\":\"%s\",\"seq\":%ld,"
            "\"api\":\"ollama.chat\",\"model\":\"llama3\",\"direction\":\"request\","
            "\"decision\":\"allow\",\"mode\":\"enforce\",\"findings\":[]%s%s}",
            id, ts, tag, i, *extra ? "," : "", extra);
        if (lg_emit_send(e, buf, (size_t)n) < 0)
            failed++;
    }
    lg_emit_stats st;
    lg_emit_get_stats(e, &st);
    printf("%s sent=%llu spooled=%llu dropped=%llu\n", tag,
           (unsigned long long)st.sent, (unsigned long long)st.spooled,
           (unsigned long long)st.dropped);
    lg_emit_close(e);
    const char *linger = getenv("COLLECTOR_WRITER_LINGER_MS");
    if (linger) {
        long ms = atol(linger);
        struct timespec d = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&d, NULL);
    }
    return failed ? 1 : 0;
}
