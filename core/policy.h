/* Policies: what to look for, where, and what to do about it.
 *
 * A policy is a JSON document (format: docs/policy.md, man llmguard-policy(5))
 * loaded with cJSON and validated completely before use: a policy that does
 * not load never silently becomes "no policy".  Errors name the file, line,
 * column and rule id (cJSON keeps no source positions, so positions come
 * from the span-aware walker in json.h).  Built-in packs are JSON documents
 * compiled into the library (core/packs/), loaded by the same code, so the
 * engine works with no file at all; a user policy selects packs, adds rules
 * and overrides built-in rules by id.
 *
 * Ownership: lg_policy_* loaders allocate the policy and everything in it;
 * lg_policy_free() releases it all.  A loaded policy is immutable and may be
 * shared by any number of threads and connections (compiled patterns are
 * read-only; per-thread match state lives in lg_scanner, scan.h). */
#ifndef LG_POLICY_H
#define LG_POLICY_H

#include <stddef.h>

/* Actions in increasing strength: when several rules hit the same text the
 * strongest wins (block > redact > log > allow). */
enum lg_action {
    LG_ACT_ALLOW = 0,
    LG_ACT_LOG = 1,
    LG_ACT_REDACT = 2,
    LG_ACT_BLOCK = 3
};

enum lg_mode { LG_MODE_ENFORCE = 0, LG_MODE_MONITOR = 1 };
enum lg_fail { LG_FAIL_OPEN = 0, LG_FAIL_CLOSED = 1 };

/* Where a rule looks (bitmask). */
enum lg_on { LG_ON_PROMPT = 1, LG_ON_RESPONSE = 2 };

/* Roles of prompt text (bitmask).  Response text is always ASSISTANT.
 * OTHER covers fields without a role (generate's prompt, embed input). */
enum lg_role {
    LG_ROLE_SYSTEM = 1,
    LG_ROLE_USER = 2,
    LG_ROLE_ASSISTANT = 4,
    LG_ROLE_TOOL = 8,
    LG_ROLE_OTHER = 16,
    LG_ROLE_ALL = 31
};

enum lg_severity {
    LG_SEV_INFO = 0,
    LG_SEV_LOW,
    LG_SEV_MEDIUM,
    LG_SEV_HIGH,
    LG_SEV_CRITICAL
};

enum lg_redact_style {
    LG_REDACT_PLACEHOLDER = 0, /* [LABEL_n], restored in answers via the vault */
    LG_REDACT_MASK             /* fixed text (rule's mask), never restored */
};

enum lg_validator {
    LG_VAL_NONE = 0,
    LG_VAL_LUHN,    /* payment cards: Luhn checksum over the digits */
    LG_VAL_CN_ID,   /* Chinese resident ID: GB 11643 checksum, plausible birth date */
    LG_VAL_IBAN,    /* ISO 13616 mod-97 */
    LG_VAL_CN_USCC  /* Chinese unified social credit code: GB 32100 checksum */
};

enum lg_log_text {
    LG_LOG_TEXT_NONE = 0,  /* no excerpts at all */
    LG_LOG_TEXT_REDACTED,  /* excerpts with matched values masked (default) */
    LG_LOG_TEXT_FULL       /* raw excerpts (debugging only) */
};

typedef struct lg_rule {
    char *id;          /* "pii.email"; unique in a policy */
    char *category;    /* "pii", "injection", ...; default: id up to the first '.' */
    char *message;     /* shown to the user when this rule blocks */
    char *label;       /* placeholder label: "EMAIL" gives [EMAIL_1] */
    char *mask;        /* text for LG_REDACT_MASK; default "[REDACTED]" */
    char *pattern;     /* PCRE2 source (keyword lists compiled into one) */
    unsigned on;       /* LG_ON_* mask */
    unsigned roles;    /* LG_ROLE_* mask; prompt side only */
    int severity;      /* enum lg_severity */
    int action;        /* enum lg_action */
    int redact;        /* enum lg_redact_style */
    int validator;     /* enum lg_validator */
    int restore;       /* internal: matches placeholders and restores them */
    int raw;           /* match the original text, not the normalised view (normalize.h) */
    int builtin;       /* from a compiled-in pack */
    int scope;         /* internal: the system-prompt scope check's rule (scope.h); its
                        * pattern is "" and never compiled, so the scanner skips it */
    const char *src;   /* file (or pack name) it was defined in; owned by the policy */
    int line, col;     /* where it was defined, for diagnostics */
    void *code;        /* pcre2_code * (interpreted); owned */
    void *jit;         /* internal (scan.c): its JIT-compiled copy, made on demand; owned */
    char *note;        /* what the rule catches and what it must not; may be "" */
} lg_rule;

typedef struct lg_policy {
    int version;            /* format version; 1 */
    int mode;               /* enum lg_mode */
    int fail;               /* enum lg_fail */
    char **endpoints;       /* "loopback", "127.0.0.1:11434", "[::1]:8080", "host:port" */
    size_t nendpoints;
    lg_rule *rules;         /* the restore rule, when present, is among them */
    size_t nrules;
    int log_text;           /* enum lg_log_text */
    size_t excerpt_chars;   /* characters of context in excerpts; default 120 */
    size_t max_body;        /* largest request/response body inspected; default 8 MiB */
    size_t max_hold;        /* streaming hold-back limit in bytes per field; default 4096 */
    size_t max_lookbehind;  /* largest PCRE2_INFO_MAXLOOKBEHIND over the rules, in bytes */
    int canary;             /* append a canary marker to system prompts; block answers repeating one */
    int decode;             /* rescan encoded runs (base64, hex, ...) in prompts, decoded; default 1 */
    int scope;              /* check prompts against their system prompt's restrictions (scope.h); default 1 */
    void *scan_index;       /* internal: prefilter tables shared by every scanner (scan.h) */
    char *source;           /* file the policy came from, or "<built-in>" */
    char **sources;         /* internal: names rules' src point at */
    size_t nsources;
} lg_policy;

/* The canary: a marker "LGC-" + 16 lowercase hex digits, made per process
 * by the engine's host (lg_conn_cfg.canary), appended to the system prompt
 * of outgoing chat and generate requests.  A model repeating it is leaking
 * its system prompt; the internal rule LG_CANARY_ID blocks answers that
 * carry anything of its shape. */
#define LG_CANARY_ID "output.canary"
#define LG_CANARY_PATTERN "LGC-[0-9a-f]{16}"

/* Where a load failed.  All strings NUL-terminated, possibly empty. */
typedef struct lg_diag {
    char file[256];  /* "policy.json" or "<built-in:pii>" */
    int line, col;   /* 1-based; 0 when unknown */
    char rule[128];  /* rule id, when the error is inside a rule */
    char msg[512];   /* what is wrong, e.g. "regex: missing closing parenthesis at offset 7" */
} lg_diag;

/* Every string of a loaded rule (id, category, message, label, mask,
 * pattern, note) is non-NULL; defaults are filled in by the loader. */

/* Load a policy from JSON text.  name is what diagnostics call it (file
 * name).  Returns LG_OK and *out, or LG_E_POLICY / LG_E_REGEX / LG_E_NOMEM
 * with *d filled (d may be NULL).  Unknown keys are errors (a typo must not
 * silently disable a rule). */
int lg_policy_load(const char *name, const char *json, size_t len,
                   lg_policy **out, lg_diag *d);

/* Read and load a file (errors reading it are reported in *d too). */
int lg_policy_load_file(const char *path, lg_policy **out, lg_diag *d);

/* The built-in default policy: every built-in pack, enforce mode, fail open. */
int lg_policy_builtin(lg_policy **out, lg_diag *d);

/* The i-th built-in pack (0-based, in default order): returns its name
 * ("injection", "pii", ...) and sets *json / *len (may be NULL) to its
 * JSON source (static, NUL-terminated); NULL past the last pack.
 * Defined in core/packs.c, which embeds core/packs/<name>.json. */
const char *lg_policy_pack(size_t i, const char **json, size_t *len);

/* Largest policy file lg_policy_load_file reads. */
#define LG_POLICY_MAX_FILE (4u << 20)

void lg_policy_free(lg_policy *p);

/* "file:line:col: rule 'id': message" (parts that are unknown left out). */
void lg_diag_format(const lg_diag *d, char *buf, size_t n);

/* Names used in policies, events and output ("block", "enforce", ...). */
const char *lg_action_name(int action);
const char *lg_severity_name(int sev);
const char *lg_mode_name(int mode);
const char *lg_fail_name(int fail);          /* "open", "closed" */
const char *lg_log_text_name(int log_text);  /* "none", "redacted", "full" */

/* The reverse: the enum value for a name, or -1 when s is not one (for
 * callers applying environment overrides such as LLMGUARD_MODE). */
int lg_action_parse(const char *s);
int lg_mode_parse(const char *s);
int lg_fail_parse(const char *s);

/* The rule with this id, or NULL. */
const lg_rule *lg_policy_rule(const lg_policy *p, const char *id);

#endif
