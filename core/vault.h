/* The redaction vault: maps original values to placeholders ("[EMAIL_1]")
 * and back.  The same value under the same label always gets the same
 * placeholder, so a conversation that mentions one address three times
 * still reads coherently to the model, and the answer can be restored for
 * the user.  One vault per process (the shim's), shared by its connections.
 *
 * Bounded: at most max_entries values; when full, new values get the
 * rule's mask instead (lg_vault_placeholder returns LG_E_LIMIT) and are
 * never restorable.  Core is single-threaded; an owner that shares a vault
 * between threads installs lock callbacks (lg_vault_set_lock).
 *
 * Ownership: lg_vault_new allocates, lg_vault_free releases everything;
 * values are copied in. */
#ifndef LG_VAULT_H
#define LG_VAULT_H

#include <stddef.h>

#include "buf.h"

typedef struct lg_vault lg_vault;

lg_vault *lg_vault_new(size_t max_entries);
void lg_vault_free(lg_vault *v);

/* Install lock/unlock callbacks called around every access (may be NULL). */
void lg_vault_set_lock(lg_vault *v, void (*lock)(void *), void (*unlock)(void *), void *ud);

/* Append to out the placeholder for value (label e.g. "EMAIL": letters,
 * digits, '_').  LG_OK, LG_E_LIMIT (vault full; nothing appended), LG_E_INVAL
 * (bad label), LG_E_NOMEM. */
int lg_vault_placeholder(lg_vault *v, const char *label, const char *value,
                         size_t n, lg_buf *out);

/* Append to out the original value behind placeholder ph[0..n) (e.g.
 * "[EMAIL_1]").  LG_OK, or LG_E_INVAL when the vault does not know it
 * (nothing appended). */
int lg_vault_restore(lg_vault *v, const char *ph, size_t n, lg_buf *out);

size_t lg_vault_count(const lg_vault *v);

/* The PCRE2 pattern matching placeholders this vault issues; the policy
 * uses it for its internal restore rule. */
#define LG_VAULT_PATTERN "\\[[A-Z][A-Z0-9_]{0,31}_[1-9][0-9]{0,8}\\]"

#endif
