/* Where the policy comes from, the same way for every program: the first
 * hit wins among --policy, $LLMGUARD_POLICY, $XDG_CONFIG_HOME/llmguard/
 * policy.json (default ~/.config/llmguard/policy.json), /etc/llmguard/
 * policy.json; none means the built-in default.  Also applies the
 * LLMGUARD_MODE override. */
#ifndef LG_POLICY_PATH_H
#define LG_POLICY_PATH_H

#include <stddef.h>

#include "policy.h"

/* Fill buf with the policy file to load, or "" for the built-in default.
 * explicit_path may be NULL.  Returns 0, or -1 when the path does not fit. */
int lg_policy_locate(const char *explicit_path, char *buf, size_t n);

/* Locate and load; applies LLMGUARD_MODE ("enforce"/"monitor") when set.
 * On failure fills msg with a one-line diagnostic ("file:line:col: ...")
 * and returns the error. *where receives the file used ("" = built-in). */
int lg_policy_open(const char *explicit_path, lg_policy **out, char *where, size_t wn,
                   char *msg, size_t mn);

#endif
