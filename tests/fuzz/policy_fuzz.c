/* Fuzz target for the policy loader: arbitrary bytes as a policy file.
 * Must never crash or leak; a policy that loads is checked for the loader's
 * promises (every rule compiled but the scope check's, which has no pattern;
 * no NULL strings, valid placeholder labels,
 * the restore rule present exactly when placeholder redaction is in use,
 * ids unique) and freed; a failure must come with a diagnostic that names
 * the file and a position inside the text.  Loading the same bytes twice
 * must give the same result (no hidden state). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "policy.h"
#include "scope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_policy(const lg_policy *p)
{
    int want_restore = 0, restores = 0;
    for (size_t i = 0; i < p->nrules; i++) {
        const lg_rule *r = &p->rules[i];
        if (!r->id || !r->category || !r->message || !r->label || !r->mask || !r->pattern ||
            !r->note || !r->src || (!r->code && !r->scope))
            abort();
        /* the scope check's rule: no pattern, never compiled, the one the check reports under */
        if (r->scope && (r->code || r->pattern[0] || lg_scope_rule(p) != r))
            abort();
        if (r->label[0] < 'A' || r->label[0] > 'Z' || strlen(r->label) > 32)
            abort();
        if (!r->on || (r->on & ~3u) || !r->roles || (r->roles & ~31u))
            abort();
        if (r->action < LG_ACT_ALLOW || r->action > LG_ACT_BLOCK)
            abort();
        if (lg_policy_rule(p, r->id) != r)
            abort(); /* ids unique */
        if (r->restore)
            restores++;
        else if (r->action == LG_ACT_REDACT && r->redact == LG_REDACT_PLACEHOLDER)
            want_restore = 1;
    }
    if (restores != want_restore)
        abort();
    if (p->nendpoints == 0 || p->max_hold < 64 || p->max_body < 1024)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lg_policy *p = NULL, *q = NULL;
    lg_diag d, e;
    int rc = lg_policy_load("fuzz.json", (const char *)data, size, &p, &d);
    if (rc == LG_OK) {
        if (!p)
            abort();
        check_policy(p);
    } else {
        if (p)
            abort();
        if (rc == LG_E_NOMEM)
            return 0;
        if (strcmp(d.file, "fuzz.json") != 0 && strncmp(d.file, "<built-in:", 10) != 0)
            abort();
        if (!d.msg[0] || d.line < 0 || d.col < 0)
            abort();
        size_t lines = 1;
        for (size_t i = 0; i < size; i++)
            lines += data[i] == '\n';
        if (strcmp(d.file, "fuzz.json") == 0 && (size_t)d.line > lines)
            abort();
        char buf[1200];
        lg_diag_format(&d, buf, sizeof buf);
        lg_diag_format(&d, buf, 7);
    }
    /* Same bytes, same answer. */
    int rc2 = lg_policy_load("fuzz.json", (const char *)data, size, &q, &e);
    if (rc2 != rc)
        abort();
    if (rc == LG_OK) {
        if (q->nrules != p->nrules)
            abort();
        for (size_t i = 0; i < p->nrules; i++)
            if (strcmp(p->rules[i].id, q->rules[i].id) || strcmp(p->rules[i].pattern, q->rules[i].pattern))
                abort();
    } else if (d.line != e.line || d.col != e.col || strcmp(d.msg, e.msg) ||
               strcmp(d.rule, e.rule) || strcmp(d.file, e.file)) {
        abort();
    }
    lg_policy_free(p);
    lg_policy_free(q);
    return 0;
}
