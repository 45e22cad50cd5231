/* Fuzz target for the connection engine: the input is client bytes and
 * server bytes separated by the first "\n@@@\n" (all client bytes when it
 * is absent).  Each run feeds them whole and again in pieces of a size
 * taken from the first byte, with the built-in policy in enforce mode, and
 * requires identical output and events: the engine's answer must not
 * depend on how TCP cut the bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "conn.h"
#include "error.h"
#include "policy.h"
#include "vault.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static lg_policy *pol;

static void on_event(void *ud, const char *json, size_t n)
{
    lg_buf *b = ud;
    lg_buf_append(b, json, n);
    lg_buf_append(b, "\n", 1);
}

static void run(const uint8_t *cli, size_t cn, const uint8_t *srv, size_t sn, size_t step,
                lg_buf *ts, lg_buf *tc, lg_buf *ev)
{
    lg_vault *v = lg_vault_new(64);
    lg_conn_cfg cfg = { 0 };
    cfg.policy = pol;
    cfg.vault = v;
    cfg.on_event = on_event;
    cfg.ud = ev;
    cfg.id_prefix = "f";
    lg_conn *c = lg_conn_new(&cfg);
    if (!c)
        abort();
    for (size_t off = 0; off < cn; off += step) {
        size_t k = cn - off < step ? cn - off : step;
        if (lg_conn_from_client(c, (const char *)cli + off, k, ts, tc) == LG_E_NOMEM)
            abort();
    }
    for (size_t off = 0; off < sn; off += step) {
        size_t k = sn - off < step ? sn - off : step;
        if (lg_conn_from_server(c, (const char *)srv + off, k, tc) == LG_E_NOMEM)
            abort();
    }
    lg_conn_server_eof(c, tc);
    lg_conn_free(c);
    lg_vault_free(v);
}

static int same(const lg_buf *a, const lg_buf *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!pol) {
        lg_diag d;
        if (lg_policy_builtin(&pol, &d) != LG_OK)
            abort();
        pol->max_body = 1 << 16;
    }
    if (size < 1)
        return 0;
    size_t step = (size_t)(data[0] % 17) + 1;
    data++;
    size--;
    const uint8_t *sep = memmem(data, size, "\n@@@\n", 5);
    size_t cn = sep ? (size_t)(sep - data) : size;
    const uint8_t *srv = sep ? sep + 5 : data + size;
    size_t sn = sep ? size - cn - 5 : 0;

    lg_buf ts1, tc1, ev1, ts2, tc2, ev2;
    lg_buf_init(&ts1, 1 << 24);
    lg_buf_init(&tc1, 1 << 24);
    lg_buf_init(&ev1, 1 << 24);
    lg_buf_init(&ts2, 1 << 24);
    lg_buf_init(&tc2, 1 << 24);
    lg_buf_init(&ev2, 1 << 24);
    run(data, cn, srv, sn, cn + sn + 1, &ts1, &tc1, &ev1);
    run(data, cn, srv, sn, step, &ts2, &tc2, &ev2);
    /* Event ids and times are equal by construction (same counter, no
     * clock), so whole texts compare. */
    if (!same(&ts1, &ts2) || !same(&tc1, &tc2) || !same(&ev1, &ev2))
        abort();
    lg_buf_free(&ts1);
    lg_buf_free(&tc1);
    lg_buf_free(&ev1);
    lg_buf_free(&ts2);
    lg_buf_free(&tc2);
    lg_buf_free(&ev2);
    return 0;
}
