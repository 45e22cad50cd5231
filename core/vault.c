/* The redaction vault (see vault.h): two open-addressing hash tables over
 * one entry array, (label, value) -> entry and placeholder -> entry, and a
 * counter per label so that placeholders number 1, 2, 3 per label.
 * Entries are never removed, so indices stay valid and the tables only
 * grow, up to max_entries.  The hash is FNV-1a with a final mix; inputs
 * can be chosen by whoever writes prompts, but the table is bounded and
 * linear probing degrades to O(n) per look-up at worst, not to failure. */
#include "vault.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

#define LABEL_MAX 32          /* LG_VAULT_PATTERN: [A-Z][A-Z0-9_]{0,31} */
#define COUNTER_MAX 999999999 /* LG_VAULT_PATTERN: [1-9][0-9]{0,8} */

typedef struct ventry {
    char *value;      /* heap copy, NUL-terminated */
    size_t vlen;
    char *ph;         /* "[LABEL_n]", heap */
    size_t phlen;
    size_t label;     /* index in labels */
    uint64_t hv, hp;  /* hashes of (label, value) and of ph */
} ventry;

typedef struct vlabel {
    char name[LABEL_MAX + 1];
    size_t count;     /* placeholders issued under this label */
} vlabel;

struct lg_vault {
    size_t max_entries;
    ventry *e;
    size_t n, cap;
    uint32_t *tv, *tp; /* slots hold entry index + 1; 0 is empty */
    size_t tsize;      /* power of two, > 2 * n */
    vlabel *labels;
    size_t nlabels, clabels;
    void (*lock)(void *);
    void (*unlock)(void *);
    void *ud;
};

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

#define FNV0 0xcbf29ce484222325ULL

static uint64_t hash_value(const char *label, const char *v, size_t n)
{
    uint64_t h = fnv(FNV0, label, strlen(label) + 1); /* the NUL separates */
    return mix(fnv(h, v, n));
}

static uint64_t hash_ph(const char *ph, size_t n)
{
    return mix(fnv(FNV0, ph, n));
}

lg_vault *lg_vault_new(size_t max_entries)
{
    lg_vault *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    if (max_entries > UINT32_MAX - 1)
        max_entries = UINT32_MAX - 1;
    v->max_entries = max_entries;
    return v;
}

void lg_vault_free(lg_vault *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n; i++) {
        free(v->e[i].value);
        free(v->e[i].ph);
    }
    free(v->e);
    free(v->tv);
    free(v->tp);
    free(v->labels);
    free(v);
}

void lg_vault_set_lock(lg_vault *v, void (*lock)(void *), void (*unlock)(void *), void *ud)
{
    if (!v)
        return;
    v->lock = lock;
    v->unlock = unlock;
    v->ud = ud;
}

static void vlock(const lg_vault *v)
{
    if (v->lock)
        v->lock(v->ud);
}

static void vunlock(const lg_vault *v)
{
    if (v->unlock)
        v->unlock(v->ud);
}

/* Normalise a label into buf (ASCII letters upper-cased); 0 when it cannot
 * form a placeholder LG_VAULT_PATTERN matches. */
static int norm_label(const char *label, char *buf)
{
    size_t n = label ? strlen(label) : 0;
    if (n == 0 || n > LABEL_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = label[i];
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        int ok = (c >= 'A' && c <= 'Z') || (i > 0 && ((c >= '0' && c <= '9') || c == '_'));
        if (!ok)
            return 0;
        buf[i] = c;
    }
    buf[n] = '\0';
    return 1;
}

static int rehash(lg_vault *v, size_t nsize)
{
    uint32_t *tv = calloc(nsize, sizeof *tv), *tp = calloc(nsize, sizeof *tp);
    if (!tv || !tp) {
        free(tv);
        free(tp);
        return LG_E_NOMEM;
    }
    for (size_t i = 0; i < v->n; i++) {
        size_t j = v->e[i].hv & (nsize - 1);
        while (tv[j])
            j = (j + 1) & (nsize - 1);
        tv[j] = (uint32_t)(i + 1);
        j = v->e[i].hp & (nsize - 1);
        while (tp[j])
            j = (j + 1) & (nsize - 1);
        tp[j] = (uint32_t)(i + 1);
    }
    free(v->tv);
    free(v->tp);
    v->tv = tv;
    v->tp = tp;
    v->tsize = nsize;
    return LG_OK;
}

static ventry *find_value(const lg_vault *v, const char *label, uint64_t h, const char *val, size_t n)
{
    if (!v->tsize)
        return NULL;
    for (size_t j = h & (v->tsize - 1); v->tv[j]; j = (j + 1) & (v->tsize - 1)) {
        ventry *e = &v->e[v->tv[j] - 1];
        if (e->hv == h && e->vlen == n && memcmp(e->value, val, n) == 0 &&
            strcmp(v->labels[e->label].name, label) == 0)
            return e;
    }
    return NULL;
}

static ventry *find_ph(const lg_vault *v, uint64_t h, const char *ph, size_t n)
{
    if (!v->tsize)
        return NULL;
    for (size_t j = h & (v->tsize - 1); v->tp[j]; j = (j + 1) & (v->tsize - 1)) {
        ventry *e = &v->e[v->tp[j] - 1];
        if (e->hp == h && e->phlen == n && memcmp(e->ph, ph, n) == 0)
            return e;
    }
    return NULL;
}

static int label_index(lg_vault *v, const char *name, size_t *idx)
{
    for (size_t i = 0; i < v->nlabels; i++)
        if (strcmp(v->labels[i].name, name) == 0) {
            *idx = i;
            return LG_OK;
        }
    if (v->nlabels == v->clabels) {
        size_t cap = v->clabels ? v->clabels * 2 : 8;
        vlabel *nl = realloc(v->labels, cap * sizeof *nl);
        if (!nl)
            return LG_E_NOMEM;
        v->labels = nl;
        v->clabels = cap;
    }
    memcpy(v->labels[v->nlabels].name, name, strlen(name) + 1);
    v->labels[v->nlabels].count = 0;
    *idx = v->nlabels++;
    return LG_OK;
}

/* Add a new entry; the caller holds the lock and checked the limit. */
static int add_entry(lg_vault *v, const char *label, uint64_t h, const char *val, size_t n,
                     ventry **out)
{
    size_t li;
    int rc = label_index(v, label, &li);
    if (rc)
        return rc;
    if (v->labels[li].count >= COUNTER_MAX)
        return LG_E_LIMIT;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        ventry *ne = realloc(v->e, cap * sizeof *ne);
        if (!ne)
            return LG_E_NOMEM;
        v->e = ne;
        v->cap = cap;
    }
    if (2 * (v->n + 1) >= v->tsize) {
        rc = rehash(v, v->tsize ? v->tsize * 2 : 64);
        if (rc)
            return rc;
    }
    char ph[LABEL_MAX + 16];
    int phl = snprintf(ph, sizeof ph, "[%s_%zu]", label, v->labels[li].count + 1);
    ventry e = { .vlen = n, .label = li, .hv = h, .phlen = (size_t)phl };
    e.value = malloc(n + 1);
    e.ph = malloc((size_t)phl + 1);
    if (!e.value || !e.ph) {
        free(e.value);
        free(e.ph);
        return LG_E_NOMEM;
    }
    if (n)
        memcpy(e.value, val, n);
    e.value[n] = '\0';
    memcpy(e.ph, ph, (size_t)phl + 1);
    e.hp = hash_ph(e.ph, e.phlen);
    v->labels[li].count++;
    size_t idx = v->n++;
    v->e[idx] = e;
    size_t j = h & (v->tsize - 1);
    while (v->tv[j])
        j = (j + 1) & (v->tsize - 1);
    v->tv[j] = (uint32_t)(idx + 1);
    j = e.hp & (v->tsize - 1);
    while (v->tp[j])
        j = (j + 1) & (v->tsize - 1);
    v->tp[j] = (uint32_t)(idx + 1);
    *out = &v->e[idx];
    return LG_OK;
}

int lg_vault_placeholder(lg_vault *v, const char *label, const char *value,
                         size_t n, lg_buf *out)
{
    char lab[LABEL_MAX + 1];
    if (!v || !out || (!value && n) || !norm_label(label, lab))
        return LG_E_INVAL;
    if (!value)
        value = "";
    uint64_t h = hash_value(lab, value, n);
    vlock(v);
    ventry *e = find_value(v, lab, h, value, n);
    int rc = LG_OK;
    if (!e) {
        if (v->n >= v->max_entries)
            rc = LG_E_LIMIT;
        else
            rc = add_entry(v, lab, h, value, n, &e);
    }
    if (rc == LG_OK)
        rc = lg_buf_append(out, e->ph, e->phlen);
    vunlock(v);
    return rc;
}

int lg_vault_restore(lg_vault *v, const char *ph, size_t n, lg_buf *out)
{
    if (!v || !out || !ph)
        return LG_E_INVAL;
    uint64_t h = hash_ph(ph, n);
    vlock(v);
    ventry *e = find_ph(v, h, ph, n);
    /* (an empty value appends nothing: lg_buf_append(b, p, 0) on a fresh
     * buffer would write the NUL through a NULL pointer) */
    int rc = !e ? LG_E_INVAL : e->vlen ? lg_buf_append(out, e->value, e->vlen) : LG_OK;
    vunlock(v);
    return rc;
}

size_t lg_vault_count(const lg_vault *v)
{
    if (!v)
        return 0;
    vlock(v);
    size_t n = v->n;
    vunlock(v);
    return n;
}
